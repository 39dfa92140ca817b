/* acl_rules: the rules of one ACL policy, a subset of Consul's language,
 * in HCL or JSON form:
 *
 *   service "web" { policy = "write" intentions = "read" }
 *   service_prefix "" { policy = "read" }
 *   operator = "write"
 *   acl = "read"
 *
 *   {"service": {"web": {"policy": "write"}}, "operator": "write"}
 *
 * Anything else (key, node, agent, ...) is an error naming it: meshshim
 * has no such resource, and a rule silently ignored would mislead. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "helperd/identity/acl.h"

#define RULES_MAX 256               /* service rules per policy */

struct srule {
	char name[CONF_NAME_MAX];
	int prefix;
	enum acl_level policy, intentions;
};

struct acl_rules {
	struct srule v[RULES_MAX];
	size_t n;
	enum acl_level operator_, acl;
};

static int
level_parse(const char *s, enum acl_level *out)
{
	if (strcmp(s, "read") == 0)
		*out = ACL_READ;
	else if (strcmp(s, "write") == 0)
		*out = ACL_WRITE;
	else if (strcmp(s, "deny") == 0)
		*out = ACL_DENY;
	else
		return -1;
	return 0;
}

/* Names in rules: a service name, or for prefixes any prefix of one
 * (including ""). */
static int
rule_name_ok(const char *s, int prefix)
{
	size_t n = strlen(s);

	if (n >= CONF_NAME_MAX)
		return 0;
	if (prefix && n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return 0;
	return prefix || conf_valid_name(s);
}

static int
srule_set(struct acl_rules *r, const char *kind, const char *name,
    const char *field, const char *val, char *why, size_t whylen)
{
	int prefix = strcmp(kind, "service_prefix") == 0;
	enum acl_level lv;
	struct srule *s = NULL;

	if (!rule_name_ok(name, prefix)) {
		snprintf(why, whylen, "%s \"%.64s\": not a service name%s",
		    kind, name, prefix ? " prefix" : "");
		return -1;
	}
	if (level_parse(val, &lv) != 0) {
		snprintf(why, whylen, "%s \"%s\": %s = \"%.32s\": expected "
		    "\"read\", \"write\" or \"deny\"", kind, name, field, val);
		return -1;
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].prefix == prefix && strcmp(r->v[i].name, name) == 0)
			s = &r->v[i];
	if (s == NULL) {
		if (r->n == RULES_MAX) {
			snprintf(why, whylen, "more than %d service rules",
			    RULES_MAX);
			return -1;
		}
		s = &r->v[r->n++];
		memset(s, 0, sizeof(*s));
		util_strlcpy(s->name, name, sizeof(s->name));
		s->prefix = prefix;
	}
	if (strcmp(field, "policy") == 0) {
		s->policy = lv;
	} else if (strcmp(field, "intentions") == 0) {
		s->intentions = lv;
	} else {
		snprintf(why, whylen, "%s \"%s\": unknown field \"%.32s\" "
		    "(policy, intentions)", kind, name, field);
		return -1;
	}
	return 0;
}

static int
top_set(struct acl_rules *r, const char *key, const char *val, char *why,
    size_t whylen)
{
	enum acl_level *dst;

	if (strcmp(key, "operator") == 0)
		dst = &r->operator_;
	else if (strcmp(key, "acl") == 0)
		dst = &r->acl;
	else {
		snprintf(why, whylen, "unknown rule \"%.32s\" (meshshim has "
		    "service, service_prefix, operator, acl)", key);
		return -1;
	}
	if (level_parse(val, dst) != 0) {
		snprintf(why, whylen, "%s = \"%.32s\": expected \"read\", "
		    "\"write\" or \"deny\"", key, val);
		return -1;
	}
	return 0;
}

/* ---- HCL ---------------------------------------------------------------- */

enum tk { T_END, T_IDENT, T_STR, T_LBRACE, T_RBRACE, T_EQ, T_BAD };

struct lex {
	const char *p;
	int line;
	char text[CONF_NAME_MAX + 8];
};

static enum tk
lex_next(struct lex *l)
{
	size_t n = 0;

	for (;;) {
		while (isspace((unsigned char)*l->p) || *l->p == ',' ||
		    *l->p == ';') {
			if (*l->p == '\n')
				l->line++;
			l->p++;
		}
		if (*l->p == '#' || (l->p[0] == '/' && l->p[1] == '/')) {
			while (*l->p != '\0' && *l->p != '\n')
				l->p++;
			continue;
		}
		break;
	}
	switch (*l->p) {
	case '\0':
		return T_END;
	case '{':
		l->p++;
		return T_LBRACE;
	case '}':
		l->p++;
		return T_RBRACE;
	case '=':
		l->p++;
		return T_EQ;
	case '"':
		l->p++;
		while (*l->p != '"') {
			if (*l->p == '\0' || *l->p == '\n' || *l->p == '\\' ||
			    n + 1 >= sizeof(l->text))
				return T_BAD;
			l->text[n++] = *l->p++;
		}
		l->p++;
		l->text[n] = '\0';
		return T_STR;
	}
	if (!isalpha((unsigned char)*l->p) && *l->p != '_')
		return T_BAD;
	while (isalnum((unsigned char)*l->p) || *l->p == '_') {
		if (n + 1 >= sizeof(l->text))
			return T_BAD;
		l->text[n++] = *l->p++;
	}
	l->text[n] = '\0';
	return T_IDENT;
}

static int
hcl_parse(const char *text, struct acl_rules *r, char *why, size_t whylen)
{
	struct lex l = { .p = text, .line = 1 };
	char key[sizeof(l.text)], name[sizeof(l.text)], field[sizeof(l.text)];
	char e[256];
	enum tk t;

	while ((t = lex_next(&l)) != T_END) {
		if (t != T_IDENT)
			goto syntax;
		util_strlcpy(key, l.text, sizeof(key));
		t = lex_next(&l);
		if (t == T_EQ) {
			if (lex_next(&l) != T_STR)
				goto syntax;
			if (top_set(r, key, l.text, e, sizeof(e)) != 0)
				goto sem;
			continue;
		}
		if (t != T_STR)
			goto syntax;
		if (strcmp(key, "service") != 0 &&
		    strcmp(key, "service_prefix") != 0) {
			snprintf(e, sizeof(e), "unknown rule \"%s\" (meshshim "
			    "has service, service_prefix, operator, acl)", key);
			goto sem;
		}
		util_strlcpy(name, l.text, sizeof(name));
		if (lex_next(&l) != T_LBRACE)
			goto syntax;
		while ((t = lex_next(&l)) != T_RBRACE) {
			if (t != T_IDENT)
				goto syntax;
			util_strlcpy(field, l.text, sizeof(field));
			if (lex_next(&l) != T_EQ || lex_next(&l) != T_STR)
				goto syntax;
			if (srule_set(r, key, name, field, l.text, e,
			    sizeof(e)) != 0)
				goto sem;
		}
	}
	return 0;
syntax:
	snprintf(why, whylen, "rules line %d: syntax error (expected e.g. "
	    "service \"web\" { policy = \"write\" } or operator = \"write\")",
	    l.line);
	return -1;
sem:
	snprintf(why, whylen, "rules line %d: %s", l.line, e);
	return -1;
}

/* ---- JSON --------------------------------------------------------------- */

static int
json_parse_rules(const char *text, struct acl_rules *r, char *why,
    size_t whylen)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je), *v;
	const char *k;
	int rc = -1;

	if (j == NULL || !json_is_object(j)) {
		snprintf(why, whylen, "rules: malformed JSON: %s", j == NULL ?
		    je.text : "expected an object");
		goto out;
	}
	json_object_foreach(j, k, v) {
		const char *name, *field;
		json_t *blk, *lv;

		if (json_is_string(v)) {
			if (top_set(r, k, json_string_value(v), why,
			    whylen) != 0)
				goto out;
			continue;
		}
		if ((strcmp(k, "service") != 0 &&
		    strcmp(k, "service_prefix") != 0) || !json_is_object(v)) {
			snprintf(why, whylen, "rules: unknown rule \"%.32s\" "
			    "(meshshim has service, service_prefix, operator, "
			    "acl)", k);
			goto out;
		}
		json_object_foreach(v, name, blk) {
			if (!json_is_object(blk)) {
				snprintf(why, whylen, "rules: %s \"%.64s\": "
				    "expected an object", k, name);
				goto out;
			}
			json_object_foreach(blk, field, lv) {
				if (!json_is_string(lv)) {
					snprintf(why, whylen, "rules: %s "
					    "\"%.64s\": %.32s: expected a "
					    "string", k, name, field);
					goto out;
				}
				if (srule_set(r, k, name, field,
				    json_string_value(lv), why, whylen) != 0)
					goto out;
			}
		}
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int
acl_rules_parse(const char *text, struct acl_rules **out, char *why,
    size_t whylen)
{
	struct acl_rules *r;
	const char *p = text;

	if (strlen(text) > ACL_RULES_MAX) {
		snprintf(why, whylen, "rules over %d bytes", ACL_RULES_MAX);
		return -1;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	while (isspace((unsigned char)*p))
		p++;
	if ((*p == '{' ? json_parse_rules(text, r, why, whylen) :
	    hcl_parse(text, r, why, whylen)) != 0) {
		free(r);
		return -1;
	}
	*out = r;
	return 0;
}

void
acl_rules_free(struct acl_rules *r)
{
	free(r);
}

enum acl_level
acl_rules_service(const struct acl_rules *r, const char *name,
    int intentions)
{
	enum acl_level best = ACL_UNSET;
	long best_len = -1;

	for (size_t i = 0; r != NULL && i < r->n; i++) {
		const struct srule *s = &r->v[i];
		enum acl_level lv = intentions ? s->intentions : s->policy;
		long len;

		if (lv == ACL_UNSET)
			continue;
		if (s->prefix) {
			size_t pl = strlen(s->name);

			if (strncmp(name, s->name, pl) != 0)
				continue;
			len = (long)pl;
		} else {
			if (strcmp(name, s->name) != 0)
				continue;
			len = CONF_NAME_MAX;    /* exact beats any prefix */
		}
		if (len > best_len) {
			best_len = len;
			best = lv;
		} else if (len == best_len && lv == ACL_DENY) {
			best = ACL_DENY;
		}
	}
	return best;
}

enum acl_level
acl_rules_operator(const struct acl_rules *r)
{
	return r != NULL ? r->operator_ : ACL_UNSET;
}

enum acl_level
acl_rules_acl(const struct acl_rules *r)
{
	return r != NULL ? r->acl : ACL_UNSET;
}
