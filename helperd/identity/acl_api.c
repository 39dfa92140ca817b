/* acl_api: tokens and policies as Consul's /v1/acl endpoints see them:
 *   PUT /v1/acl/policy {"Name","Description","Rules"}
 *   PUT /v1/acl/token  {"Description","Policies":[{"ID"|"Name"}],
 *                       "ServiceIdentities":[{"ServiceName"}]}
 * and their list/read/delete. Validation of what acl.json holds goes
 * through the same functions (loading = 1). */
#include "helperd/identity/acl_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static int
uuid_ok(const char *s)
{
	if (s == NULL || strlen(s) != ACL_ID_LEN)
		return 0;
	for (size_t i = 0; i < ACL_ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

static int
policy_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 127)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return 0;
	return 1;
}

/* A string member, or "" when absent; -1 when present but not a string
 * or too long. */
static int
member(json_t *o, const char *k, char *dst, size_t len)
{
	json_t *v = json_object_get(o, k);

	dst[0] = '\0';
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= len)
		return -1;
	util_strlcpy(dst, json_string_value(v), len);
	return 0;
}

#define FAIL(code, ...) do { *status = (code); \
	snprintf(why, whylen, __VA_ARGS__); goto err; } while (0)

struct acl_policy *
acl_policy_add(struct acl *a, json_t *body, int loading, unsigned *status,
    char *why, size_t whylen)
{
	struct acl_policy *p = calloc(1, sizeof(*p)), **np;
	json_t *rules = json_object_get(body, "Rules");
	char e[256];

	if (p == NULL)
		FAIL(500, "out of memory");
	if (!json_is_object(body))
		FAIL(400, "expected a JSON object");
	if (member(body, "Name", p->name, sizeof(p->name)) != 0 ||
	    !policy_name_ok(p->name))
		FAIL(400, "Invalid Policy: Name must be 1..127 of "
		    "[A-Za-z0-9_-]");
	if (member(body, "Description", p->desc, sizeof(p->desc)) != 0)
		FAIL(400, "Invalid Policy: Description must be a string under "
		    "%d bytes", ACL_DESC_MAX);
	if (rules != NULL && !json_is_string(rules))
		FAIL(400, "Invalid Policy: Rules must be a string");
	if ((p->rules_text = strdup(rules != NULL ?
	    json_string_value(rules) : "")) == NULL)
		FAIL(500, "out of memory");
	if (acl_rules_parse(p->rules_text, &p->rules, e, sizeof(e)) != 0)
		FAIL(400, "Invalid Policy: %s", e);
	if (acl_policy_find(a, p->name) != NULL)
		FAIL(409, "Invalid Policy: A Policy with Name \"%s\" already "
		    "exists", p->name);
	if (loading) {
		if (member(body, "ID", p->id, sizeof(p->id)) != 0 ||
		    !uuid_ok(p->id) || acl_policy_find(a, p->id) != NULL)
			FAIL(400, "policy %s: missing or duplicate ID",
			    p->name);
	} else if (util_uuid4(p->id, sizeof(p->id)) != 0) {
		FAIL(500, "no randomness for an ID");
	}
	if (a->n_pol >= ACL_MAX_POLICIES)
		FAIL(400, "at most %d policies", ACL_MAX_POLICIES);
	if ((np = realloc(a->pol, (a->n_pol + 1) * sizeof(*np))) == NULL)
		FAIL(500, "out of memory");
	a->pol = np;
	a->pol[a->n_pol++] = p;
	*status = 200;
	return p;
err:
	acl_policy_free(p);
	return NULL;
}

static int
token_links(struct acl *a, struct acl_token *t, json_t *body, int loading,
    unsigned *status, char *why, size_t whylen)
{
	json_t *pols = json_object_get(body, "Policies");
	json_t *sids = json_object_get(body, "ServiceIdentities");
	json_t *v;
	size_t i;

	if ((pols != NULL && !json_is_null(pols) && !json_is_array(pols)) ||
	    (sids != NULL && !json_is_null(sids) && !json_is_array(sids)))
		FAIL(400, "Invalid Token: Policies and ServiceIdentities must "
		    "be arrays");
	if (json_array_size(pols) > ACL_LINKS_MAX ||
	    json_array_size(sids) > ACL_LINKS_MAX)
		FAIL(400, "Invalid Token: at most %d links", ACL_LINKS_MAX);
	t->pol = calloc(json_array_size(pols) + 1, sizeof(*t->pol));
	t->sid = calloc(json_array_size(sids) + 1, sizeof(*t->sid));
	if (t->pol == NULL || t->sid == NULL)
		FAIL(500, "out of memory");
	json_array_foreach(pols, i, v) {
		char id[ACL_ID_LEN + 1], name[128];
		const struct acl_policy *p;

		if (!json_is_object(v) || member(v, "ID", id, sizeof(id)) ||
		    member(v, "Name", name, sizeof(name)))
			FAIL(400, "Invalid Token: a policy link is "
			    "{\"ID\": ...} or {\"Name\": ...}");
		p = acl_policy_find(a, id[0] != '\0' ? id : name);
		if (p == NULL && loading)
			continue;       /* deleted since: the link is dropped */
		if (p == NULL)
			FAIL(400, "Invalid Token: no policy with %s \"%s\"",
			    id[0] != '\0' ? "ID" : "Name",
			    id[0] != '\0' ? id : name);
		util_strlcpy(t->pol[t->n_pol++], p->id, sizeof(*t->pol));
	}
	json_array_foreach(sids, i, v) {
		char name[CONF_NAME_MAX];

		if (!json_is_object(v) || member(v, "ServiceName", name,
		    sizeof(name)) != 0 || !conf_valid_name(name))
			FAIL(400, "Invalid Token: a service identity is "
			    "{\"ServiceName\": \"<service name>\"}");
		util_strlcpy(t->sid[t->n_sid++], name, sizeof(*t->sid));
	}
	return 0;
err:
	return -1;
}

struct acl_token *
acl_token_add(struct acl *a, json_t *body, int loading, unsigned *status,
    char *why, size_t whylen)
{
	struct acl_token *t = calloc(1, sizeof(*t)), **nt;

	if (t == NULL)
		FAIL(500, "out of memory");
	if (!json_is_object(body))
		FAIL(400, "expected a JSON object");
	if (member(body, "Description", t->desc, sizeof(t->desc)) != 0)
		FAIL(400, "Invalid Token: Description must be a string under "
		    "%d bytes", ACL_DESC_MAX);
	if (token_links(a, t, body, loading, status, why, whylen) != 0)
		goto err;
	if (loading) {
		if (member(body, "AccessorID", t->accessor,
		    sizeof(t->accessor)) != 0 || !uuid_ok(t->accessor) ||
		    member(body, "SecretID", t->secret,
		    sizeof(t->secret)) != 0 || !uuid_ok(t->secret) ||
		    member(body, "CreateTime", t->create_time,
		    sizeof(t->create_time)) != 0)
			FAIL(400, "token: bad AccessorID, SecretID or "
			    "CreateTime");
	} else {
		if (util_uuid4(t->accessor, sizeof(t->accessor)) != 0 ||
		    util_uuid4(t->secret, sizeof(t->secret)) != 0)
			FAIL(500, "no randomness for a token");
		util_rfc3339((int64_t)time(NULL), t->create_time,
		    sizeof(t->create_time));
	}
	for (size_t i = 0; i < a->n_tok; i++)
		if (strcmp(a->tok[i]->accessor, t->accessor) == 0 ||
		    strcmp(a->tok[i]->secret, t->secret) == 0)
			FAIL(400, "token %s: duplicate ID", t->accessor);
	if (a->n_tok >= ACL_MAX_TOKENS)
		FAIL(400, "at most %d tokens", ACL_MAX_TOKENS);
	if ((nt = realloc(a->tok, (a->n_tok + 1) * sizeof(*nt))) == NULL)
		FAIL(500, "out of memory");
	a->tok = nt;
	a->tok[a->n_tok++] = t;
	*status = 200;
	return t;
err:
	acl_token_free(t);
	return NULL;
}

json_t *
acl_policy_json(const struct acl *a, const struct acl_policy *p)
{
	(void)a;
	return json_pack("{s:s, s:s, s:s, s:s}", "ID", p->id, "Name", p->name,
	    "Description", p->desc, "Rules", p->rules_text != NULL ?
	    p->rules_text : "");
}

json_t *
acl_token_json(const struct acl *a, const struct acl_token *t, int secret)
{
	json_t *pols = json_array(), *sids = json_array();
	json_t *j;

	for (size_t i = 0; i < t->n_pol; i++) {
		const struct acl_policy *p = acl_policy_find(a, t->pol[i]);

		json_array_append_new(pols, json_pack("{s:s, s:s}", "ID",
		    t->pol[i], "Name", p != NULL ? p->name : "(deleted)"));
	}
	for (size_t i = 0; i < t->n_sid; i++)
		json_array_append_new(sids, json_pack("{s:s}", "ServiceName",
		    t->sid[i]));
	j = json_pack("{s:s, s:s, s:o, s:o, s:b, s:s}", "AccessorID",
	    t->accessor, "Description", t->desc, "Policies", pols,
	    "ServiceIdentities", sids, "Local", 0, "CreateTime",
	    t->create_time);
	if (j != NULL)
		json_object_set_new(j, "SecretID", json_string(secret ?
		    t->secret : "<hidden>"));
	return j;
}

/* ---- the endpoints -------------------------------------------------------- */

static struct acl_token *
token_find(const struct acl *a, const char *accessor, size_t *idx)
{
	for (size_t i = 0; i < a->n_tok; i++)
		if (strcmp(a->tok[i]->accessor, accessor) == 0) {
			if (idx != NULL)
				*idx = i;
			return a->tok[i];
		}
	return NULL;
}

json_t *
acl_token_create(struct acl *a, json_t *body, unsigned *status, char *why,
    size_t whylen)
{
	struct acl_token *t = acl_token_add(a, body, 0, status, why, whylen);

	if (t == NULL)
		return NULL;
	if (acl_save(a, why, whylen) != 0) {
		a->n_tok--;
		acl_token_free(t);
		*status = 500;
		return NULL;
	}
	return acl_token_json(a, t, 1);
}

json_t *
acl_token_list(const struct acl *a)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < a->n_tok; i++)
		json_array_append_new(arr, acl_token_json(a, a->tok[i], 0));
	return arr;
}

json_t *
acl_token_read(const struct acl *a, const char *accessor, unsigned *status,
    char *why, size_t whylen)
{
	const struct acl_token *t = token_find(a, accessor, NULL);

	if (t == NULL) {
		*status = 404;
		snprintf(why, whylen, "ACL not found: no token with "
		    "AccessorID %.40s", accessor);
		return NULL;
	}
	*status = 200;
	return acl_token_json(a, t, 1);
}

json_t *
acl_token_self(const struct acl *a, const struct acl_caller *c,
    unsigned *status, char *why, size_t whylen)
{
	if (c->token == NULL) {
		*status = 403;
		snprintf(why, whylen, "ACL not found");
		return NULL;
	}
	*status = 200;
	return acl_token_json(a, c->token, 1);
}

int
acl_token_delete(struct acl *a, const char *accessor, unsigned *status,
    char *why, size_t whylen)
{
	size_t i;
	struct acl_token *t = token_find(a, accessor, &i);
	size_t n_mgmt = 0;

	if (t == NULL) {
		*status = 404;
		snprintf(why, whylen, "ACL not found: no token with "
		    "AccessorID %.40s", accessor);
		return -1;
	}
	for (size_t k = 0; k < a->n_tok; k++)
		for (size_t m = 0; m < a->tok[k]->n_pol; m++)
			if (strcmp(a->tok[k]->pol[m], ACL_MGMT_POLICY_ID) == 0)
				n_mgmt++;
	for (size_t m = 0; m < t->n_pol; m++)
		if (strcmp(t->pol[m], ACL_MGMT_POLICY_ID) == 0 && n_mgmt < 2) {
			*status = 400;
			snprintf(why, whylen, "cannot delete the last "
			    "management token");
			return -1;
		}
	memmove(&a->tok[i], &a->tok[i + 1], (a->n_tok - i - 1) *
	    sizeof(*a->tok));
	a->n_tok--;
	if (acl_save(a, why, whylen) != 0) {
		/* Put it back: memory and disk agree. */
		memmove(&a->tok[i + 1], &a->tok[i], (a->n_tok - i) *
		    sizeof(*a->tok));
		a->tok[i] = t;
		a->n_tok++;
		*status = 500;
		return -1;
	}
	acl_token_free(t);
	*status = 200;
	return 0;
}

json_t *
acl_policy_create(struct acl *a, json_t *body, unsigned *status, char *why,
    size_t whylen)
{
	struct acl_policy *p = acl_policy_add(a, body, 0, status, why, whylen);

	if (p == NULL)
		return NULL;
	if (acl_save(a, why, whylen) != 0) {
		a->n_pol--;
		acl_policy_free(p);
		*status = 500;
		return NULL;
	}
	return acl_policy_json(a, p);
}

json_t *
acl_policy_list(const struct acl *a)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < a->n_pol; i++)
		json_array_append_new(arr, acl_policy_json(a, a->pol[i]));
	return arr;
}

json_t *
acl_policy_read(const struct acl *a, const char *id_or_name,
    unsigned *status, char *why, size_t whylen)
{
	const struct acl_policy *p = acl_policy_find(a, id_or_name);

	if (p == NULL) {
		*status = 404;
		snprintf(why, whylen, "ACL not found: no policy %.128s",
		    id_or_name);
		return NULL;
	}
	*status = 200;
	return acl_policy_json(a, p);
}

int
acl_policy_delete(struct acl *a, const char *id_or_name, unsigned *status,
    char *why, size_t whylen)
{
	struct acl_policy *p = acl_policy_find(a, id_or_name);
	size_t i = 0;

	if (p == NULL) {
		*status = 404;
		snprintf(why, whylen, "ACL not found: no policy %.128s",
		    id_or_name);
		return -1;
	}
	if (strcmp(p->id, ACL_MGMT_POLICY_ID) == 0) {
		*status = 400;
		snprintf(why, whylen, "the builtin global-management policy "
		    "cannot be deleted");
		return -1;
	}
	while (a->pol[i] != p)
		i++;
	memmove(&a->pol[i], &a->pol[i + 1], (a->n_pol - i - 1) *
	    sizeof(*a->pol));
	a->n_pol--;
	if (acl_save(a, why, whylen) != 0) {
		memmove(&a->pol[i + 1], &a->pol[i], (a->n_pol - i) *
		    sizeof(*a->pol));
		a->pol[i] = p;
		a->n_pol++;
		*status = 500;
		return -1;
	}
	/* Tokens keep the link; a missing policy grants nothing. */
	acl_policy_free(p);
	*status = 200;
	return 0;
}
