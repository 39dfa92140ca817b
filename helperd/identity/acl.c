/* acl: tokens, policies and the grants (acl.h). The /v1/acl endpoints
 * are in acl_api.c. */
#include "helperd/identity/acl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

const struct acl_token *
acl_token_by_secret(const struct acl *a, const char *secret)
{
	size_t sl = strlen(secret);

	if (a == NULL || sl != ACL_ID_LEN)
		return NULL;
	for (size_t i = 0; i < a->n_tok; i++) {
		const char *s = a->tok[i]->secret;
		unsigned char d = 0;

		/* Constant time over the secret: no early exit. */
		for (size_t k = 0; k < ACL_ID_LEN; k++)
			d |= (unsigned char)(s[k] ^ secret[k]);
		if (d == 0)
			return a->tok[i];
	}
	return NULL;
}

const char *
acl_token_accessor(const struct acl_token *t)
{
	return t != NULL ? t->accessor : "anonymous";
}

int
acl_enabled(const struct acl *a)
{
	return a != NULL && a->enabled;
}

struct acl_policy *
acl_policy_find(const struct acl *a, const char *id_or_name)
{
	for (size_t i = 0; i < a->n_pol; i++)
		if (strcmp(a->pol[i]->id, id_or_name) == 0 ||
		    strcmp(a->pol[i]->name, id_or_name) == 0)
			return a->pol[i];
	return NULL;
}

static int
token_has_mgmt(const struct acl_token *t)
{
	for (size_t i = 0; t != NULL && i < t->n_pol; i++)
		if (strcmp(t->pol[i], ACL_MGMT_POLICY_ID) == 0)
			return 1;
	return 0;
}

/* Combine over the token's policies: deny anywhere wins, else the
 * highest level. which: 0 service, 1 intentions, 2 operator, 3 acl. */
static enum acl_level
token_level(const struct acl *a, const struct acl_token *t, int which,
    const char *name)
{
	enum acl_level best = ACL_UNSET;

	for (size_t i = 0; t != NULL && i < t->n_pol; i++) {
		const struct acl_policy *p = acl_policy_find(a, t->pol[i]);
		enum acl_level lv;

		if (p == NULL || p->rules == NULL)
			continue;
		lv = which == 0 || which == 1 ? acl_rules_service(p->rules,
		    name, which) : which == 2 ? acl_rules_operator(p->rules) :
		    acl_rules_acl(p->rules);
		if (lv == ACL_DENY)
			return ACL_DENY;
		if (lv > best)
			best = lv;
	}
	if (which == 0 && best < ACL_WRITE)
		for (size_t i = 0; t != NULL && i < t->n_sid; i++)
			if (strcmp(t->sid[i], name) == 0)
				best = ACL_WRITE;
	return best;
}

int
acl_is_management(const struct acl *a, const struct acl_caller *c)
{
	if (!acl_enabled(a))
		return 1;
	return c->uid == 0 || token_has_mgmt(c->token);
}

int
acl_service_write(const struct acl *a, const struct acl_caller *c,
    const char *name, const struct conf_service *svc)
{
	if (acl_is_management(a, c))
		return 1;
	if (svc != NULL && svc->user[0] != '\0' && c->uid != ACL_NOUID &&
	    c->uid == svc->uid)
		return 1;
	return token_level(a, c->token, 0, name) == ACL_WRITE;
}

int
acl_leaf(const struct acl *a, const struct acl_caller *c, const char *name,
    const struct conf_service *svc)
{
	/* The same grant as service:write: the uid path needs `user`. */
	return acl_service_write(a, c, name, svc);
}

int
acl_intention_write(const struct acl *a, const struct acl_caller *c,
    const char *dest)
{
	if (acl_is_management(a, c))
		return 1;
	/* A wildcard destination needs write on every name. */
	if (strcmp(dest, "*") == 0)
		dest = "";
	return token_level(a, c->token, 1, dest) == ACL_WRITE;
}

int
acl_operator_write(const struct acl *a, const struct acl_caller *c)
{
	return acl_is_management(a, c) ||
	    token_level(a, c->token, 2, NULL) == ACL_WRITE;
}

int
acl_acl_write(const struct acl *a, const struct acl_caller *c)
{
	return acl_is_management(a, c) ||
	    token_level(a, c->token, 3, NULL) == ACL_WRITE;
}

int
acl_acl_read(const struct acl *a, const struct acl_caller *c)
{
	return acl_is_management(a, c) ||
	    token_level(a, c->token, 3, NULL) >= ACL_READ;
}

void
acl_denied(const struct acl_caller *c, const char *perm, const char *what,
    char *why, size_t whylen)
{
	char who[96];

	if (c->bad_token) {
		snprintf(why, whylen, "ACL not found");
		return;
	}
	if (c->token != NULL)
		snprintf(who, sizeof(who), "token with AccessorID '%s'",
		    c->token->accessor);
	else if (c->uid != ACL_NOUID)
		snprintf(who, sizeof(who), "uid %ld (no token)", (long)c->uid);
	else
		snprintf(who, sizeof(who), "anonymous token");
	snprintf(why, whylen, "Permission denied: %s lacks permission '%s'"
	    "%s%s%s (give a token with X-Consul-Token or -token, or use the "
	    "API's unix socket as root or as the service's user)", who, perm,
	    what != NULL ? " on \"" : "", what != NULL ? what : "",
	    what != NULL ? "\"" : "");
}

int
acl_claim(const struct acl *a, uid_t uid, const char *token,
    const char *name, const struct conf_service *svc,
    const char *remote_user, char *why, size_t whylen)
{
	struct acl_caller c = { .uid = uid, .local = 1 };

	if (svc != NULL && svc->user[0] != '\0') {
		if (uid == 0 || uid == svc->uid)
			return 0;
		snprintf(why, whylen, "uid %ld may not act as %s (user %s)",
		    (long)uid, name, svc->user);
		return -1;
	}
	if (svc != NULL)
		return 0;
	if (remote_user != NULL && remote_user[0] != '\0') {
		uid_t ru;

		/* Restricted on another node: the same user here. */
		if (uid == 0 || (conf_user_uid(remote_user, &ru) == 0 &&
		    ru == uid))
			return 0;
		snprintf(why, whylen, "uid %ld may not act as %s (user %s, "
		    "from the cluster catalog)", (long)uid, name, remote_user);
		return -1;
	}
	if (remote_user != NULL || !acl_enabled(a))
		return 0;
	if (token != NULL && token[0] != '\0')
		c.token = acl_token_by_secret(a, token);
	if (acl_service_write(a, &c, name, NULL))
		return 0;
	snprintf(why, whylen, "no configuration or registration defines %s; "
	    "only root or a token with service:write on it may claim it",
	    name);
	return -1;
}

/* ---- the store ----------------------------------------------------------- */

void
acl_token_free(struct acl_token *t)
{
	if (t == NULL)
		return;
	free(t->pol);
	free(t->sid);
	free(t);
}

void
acl_policy_free(struct acl_policy *p)
{
	if (p == NULL)
		return;
	acl_rules_free(p->rules);
	free(p->rules_text);
	free(p);
}

void
acl_free(struct acl *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n_tok; i++)
		acl_token_free(a->tok[i]);
	for (size_t i = 0; i < a->n_pol; i++)
		acl_policy_free(a->pol[i]);
	free(a->tok);
	free(a->pol);
	free(a);
}

int
acl_save(struct acl *a, char *why, size_t whylen)
{
	json_t *toks = json_array(), *pols = json_array(), *j;
	char *s;
	int rc;

	for (size_t i = 0; i < a->n_pol; i++)
		if (strcmp(a->pol[i]->id, ACL_MGMT_POLICY_ID) != 0)
			json_array_append_new(pols, acl_policy_json(a,
			    a->pol[i]));
	for (size_t i = 0; i < a->n_tok; i++)
		json_array_append_new(toks, acl_token_json(a, a->tok[i], 1));
	j = json_pack("{s:o, s:o}", "Policies", pols, "Tokens", toks);
	s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (s == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	rc = util_write_atomic(a->path, s, strlen(s), 0600);
	free(s);
	if (rc != 0) {
		snprintf(why, whylen, "cannot write %s: %s", a->path,
		    strerror(errno));
		log_err("acl: %s", why);
	}
	return rc;
}

static int
load(struct acl *a, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j, *v;
	size_t i;
	char why[256];
	unsigned st;

	if (access(a->path, F_OK) != 0)
		return 0;
	if ((j = json_load_file(a->path, JSON_REJECT_DUPLICATES, &je)) ==
	    NULL || !json_is_object(j)) {
		snprintf(err, errlen, "%s:%d: %s", a->path, je.line, j == NULL ?
		    je.text : "expected an object");
		json_decref(j);
		return -1;
	}
	json_array_foreach(json_object_get(j, "Policies"), i, v) {
		if (acl_policy_add(a, v, 1, &st, why, sizeof(why)) == NULL)
			goto bad;
	}
	json_array_foreach(json_object_get(j, "Tokens"), i, v) {
		if (acl_token_add(a, v, 1, &st, why, sizeof(why)) == NULL)
			goto bad;
	}
	json_decref(j);
	return 0;
bad:
	snprintf(err, errlen, "%s: %s", a->path, why);
	json_decref(j);
	return -1;
}

/* The management token: the first one linked to global-management, or a
 * new one. Its secret goes to management.token (0600), for root. */
static int
management_bootstrap(struct acl *a, const char *data_dir, char *err,
    size_t errlen)
{
	char path[CONF_PATH_MAX + 32], line[ACL_ID_LEN + 2], why[256];
	const struct acl_token *t = NULL;
	json_t *body;
	unsigned st;
	int fd;

	for (size_t i = 0; i < a->n_tok && t == NULL; i++)
		if (token_has_mgmt(a->tok[i]))
			t = a->tok[i];
	snprintf(path, sizeof(path), "%s/management.token", data_dir);
	if (t == NULL) {
		body = json_pack("{s:s, s:[{s:s}]}", "Description",
		    "Initial management token (created at first start)",
		    "Policies", "ID", ACL_MGMT_POLICY_ID);
		t = acl_token_add(a, body, 0, &st, why, sizeof(why));
		json_decref(body);
		if (t == NULL || acl_save(a, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "acl: management token: %s", why);
			return -1;
		}
		log_info("acl: created the management token (AccessorID %s);"
		    " its secret is in %s", t->accessor, path);
		/* A stale file from an older store is replaced. */
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(line, sizeof(line), "%s\n", t->secret);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) ||
	    fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* A management token with the configured SecretID, unless it exists. */
static int
initial_management(struct acl *a, const char *secret, char *err,
    size_t errlen)
{
	char why[256], acc[ACL_ID_LEN + 1];
	json_t *body;
	unsigned st;
	int rc;

	if (secret[0] == '\0' || acl_token_by_secret(a, secret) != NULL)
		return 0;
	if (util_uuid4(acc, sizeof(acc)) != 0) {
		snprintf(err, errlen, "acl: no randomness");
		return -1;
	}
	body = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s}]}", "AccessorID", acc,
	    "SecretID", secret, "CreateTime", "", "Description",
	    "acl.initial_management", "Policies", "ID", ACL_MGMT_POLICY_ID);
	rc = acl_token_add(a, body, 1, &st, why, sizeof(why)) != NULL &&
	    acl_save(a, why, sizeof(why)) == 0 ? 0 : -1;
	json_decref(body);
	if (rc != 0)
		snprintf(err, errlen, "acl.initial_management: %s", why);
	else
		log_info("acl: management token from acl.initial_management "
		    "(AccessorID %s)", acc);
	return rc;
}

int
acl_open(struct acl **out, const char *data_dir, int enabled,
    const char *initial, char *err, size_t errlen)
{
	struct acl *a = calloc(1, sizeof(*a));
	struct acl_policy *mp;

	if (a == NULL || (mp = calloc(1, sizeof(*mp))) == NULL ||
	    (a->pol = calloc(1, sizeof(*a->pol))) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (a != NULL)
			free(a->pol);
		free(a);
		return -1;
	}
	util_strlcpy(mp->id, ACL_MGMT_POLICY_ID, sizeof(mp->id));
	util_strlcpy(mp->name, "global-management", sizeof(mp->name));
	util_strlcpy(mp->desc, "Builtin Policy that grants unlimited access",
	    sizeof(mp->desc));
	a->pol[0] = mp;
	a->n_pol = 1;
	a->enabled = enabled;
	snprintf(a->path, sizeof(a->path), "%s/acl.json", data_dir);
	if (load(a, err, errlen) != 0 || (enabled && (initial_management(a,
	    initial, err, errlen) != 0 || management_bootstrap(a, data_dir,
	    err, errlen) != 0))) {
		acl_free(a);
		return -1;
	}
	*out = a;
	return 0;
}
