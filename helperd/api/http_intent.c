/* http_intent: Consul's intention endpoints and the agent's authorize.
 *
 *   GET|POST        /v1/connect/intentions          (?replace=true on POST)
 *   GET|PUT|DELETE  /v1/connect/intentions/:id
 *   GET|PUT|DELETE  /v1/connect/intentions/exact?source=&destination=
 *   GET             /v1/connect/intentions/check?source=&destination=
 *   GET             /v1/connect/intentions/match?by=&name=
 *   POST            /v1/agent/connect/authorize
 *
 * Every change is saved by intent.c before it is applied, then reported to
 * the node (api_ops.intentions_changed); every rejected request changes
 * nothing.
 * With etcd the save is asynchronous (INTENT_EPENDING): the request is
 * suspended, the loop serves others, and it is answered when etcd has
 * (intent_db_wait); a change asked while one is being written waits for
 * it, then runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "helperd/identity/ca.h"
#include "helperd/api/http.h"
#include "helperd/model/intent.h"
#include "helperd/model/spiffe.h"

#define PFX "/v1/connect/intentions"
#define WHY_MAX 512

static int
method_is(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

static unsigned
err_status(enum intent_err c)
{
	switch (c) {
	case INTENT_EINVAL:
		return 400;
	case INTENT_ENOENT:
		return 404;
	case INTENT_EEXIST:
		return 409;
	case INTENT_ENOSPC:
		return 400;
	case INTENT_EUNKNOWN:
		return 504;     /* the store did not answer: may be applied */
	case INTENT_EPENDING:   /* never replied: see write_result */
	case INTENT_EIO:
		break;
	}
	return 500;
}

static void
changed(const struct api_env *e, const char *what, const struct intent *in)
{
	char s[INTENT_STR_MAX], why[INTENT_STR_MAX + 64];

	intent_string(in, s, sizeof(s));
	snprintf(why, sizeof(why), "intention %s: %s", what, s);
	log_info("%s (ID %s, via the HTTP API)", why, in->id);
	e->ops->intentions_changed(e->cookie, why);
}

static void reply_json(struct http_resp *resp, json_t *j);

/* A change the store is writing: the request waits for it. */
struct write_wait {
	struct http_later later;
	struct api_env env;         /* a copy: the answer may come after
	                             * the server stopped */
	char what[16];              /* "created", "updated", ... */
	struct intent in;           /* for the log line (meta NULL) */
	json_t *ok;                 /* the body when applied */
};

static void
write_settled(void *cookie, int rc, enum intent_err code, const char *why)
{
	struct write_wait *w = cookie;
	struct http_resp resp = { 0 };

	if (rc == 0) {
		changed(&w->env, w->what, &w->in);
		http_reply_json(&resp, 200, w->ok);
	} else {
		json_decref(w->ok);
		http_reply_text(&resp, err_status(code), "%s", why);
	}
	http_later_answer(&w->later, &resp);
	free(w);
}

/* Another change is being written: run this request again after it. */
static void
write_rerun(void *cookie, int rc, enum intent_err code, const char *why)
{
	struct http_later *l = cookie;

	(void)rc;
	(void)code;
	(void)why;
	http_later_answer(l, NULL);
	free(l);
}

/* 1 when the request waits (for the change being written, then runs
 * again): the route returns at once. */
static int
write_wait_turn(const struct api_env *e, struct http_resp *resp)
{
	struct http_later *l;

	if (!intent_db_busy(e->intents))
		return 0;
	if ((l = malloc(sizeof(*l))) == NULL ||
	    intent_db_wait(e->intents, write_rerun, l) != 0) {
		free(l);
		http_reply_text(resp, 503, "an intention change is being "
		    "written; try again");
		return 1;
	}
	http_reply_later(resp, l);
	return 1;
}

/* The result of a change: rc/code/why as intent_create & co. returned;
 * ok (consumed) is the body when it is applied, what and in for the log.
 * A pending change is answered when the store has. */
static void
write_result(const struct api_env *e, struct http_resp *resp, int rc,
    enum intent_err code, const char *why, const char *what,
    const struct intent *in, json_t *ok)
{
	struct write_wait *w;

	if (rc == 0) {
		changed(e, what, in);
		reply_json(resp, ok);
		return;
	}
	if (code != INTENT_EPENDING) {
		json_decref(ok);
		http_reply_text(resp, err_status(code), "%s", why);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL || ok == NULL ||
	    intent_db_wait(e->intents, write_settled, w) != 0) {
		/* Cannot wait: the write goes on without us. */
		free(w);
		json_decref(ok);
		http_reply_text(resp, 504, "out of memory while the change "
		    "was being written: it may have been applied; list the "
		    "intentions before trying again");
		return;
	}
	w->env = *e;
	util_strlcpy(w->what, what, sizeof(w->what));
	w->in = *in;
	w->in.meta = NULL;
	w->ok = ok;
	http_reply_later(resp, &w->later);
}

/* A required name parameter (service name or "*"); replies 400 and
 * returns NULL when missing or invalid. */
static const char *
name_param(const struct http_req *req, struct http_resp *resp,
    const char *key)
{
	const char *v = http_query(req, key);

	if (v == NULL || v[0] == '\0') {
		http_reply_text(resp, 400, "required query parameter '%s' not "
		    "set", key);
		return NULL;
	}
	if (!intent_valid_name(v)) {
		http_reply_text(resp, 400, "%s \"%.80s\": not a valid service "
		    "name (1-63 chars of [A-Za-z0-9_-], starting with a letter "
		    "or digit) or \"*\"", key, v);
		return NULL;
	}
	return v;
}

/* 200 with j (consumed), or 500 when building j failed. */
static void
reply_json(struct http_resp *resp, json_t *j)
{
	if (j == NULL)
		http_reply_text(resp, 500, "out of memory");
	else
		http_reply_json(resp, 200, j);
}

static void
reply_intent(struct http_resp *resp, const struct intent *in)
{
	reply_json(resp, intent_to_json(in));
}

/* Parse the body as an intention; replies 400 and returns -1 on error. */
static int
body_intent(const struct http_req *req, struct http_resp *resp,
    struct intent *in)
{
	char why[WHY_MAX];
	json_t *j = http_body_json(req, resp);
	int rc;

	if (j == NULL)
		return -1;
	rc = intent_from_json(j, in, why, sizeof(why));
	json_decref(j);
	if (rc != 0) {
		http_reply_text(resp, 400, "invalid intention: %s", why);
		return -1;
	}
	return 0;
}

static void
list(const struct api_env *e, struct http_resp *resp)
{
	json_t *arr = json_array();
	size_t n = intent_count(e->intents);

	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (json_array_append_new(arr,
		    intent_to_json(intent_at(e->intents, i))) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (arr == NULL) {
		http_reply_text(resp, 500, "out of memory");
		return;
	}
	http_reply_json(resp, 200, arr);
}

static void
create(const struct api_env *e, const struct http_req *req, struct http_resp *resp)
{
	const char *r = http_query(req, "replace");
	char id[37], why[WHY_MAX];
	enum intent_err code;
	struct intent in;
	int replace = 0, existed, rc;

	if (r != NULL) {
		if (strcmp(r, "true") == 0 || strcmp(r, "1") == 0 ||
		    r[0] == '\0') {
			replace = 1;
		} else if (strcmp(r, "false") != 0 && strcmp(r, "0") != 0) {
			http_reply_text(resp, 400, "replace must be true or "
			    "false");
			return;
		}
	}
	if (body_intent(req, resp, &in) != 0)
		return;
	if (!http_intent_allowed(e, req, resp, in.dst)) {
		intent_clear(&in);
		return;
	}
	if (write_wait_turn(e, resp)) {
		intent_clear(&in);
		return;
	}
	existed = intent_find_exact(e->intents, in.src, in.dst) != NULL;
	rc = intent_create(e->intents, &in, replace, id, &code, why,
	    sizeof(why));
	util_strlcpy(in.id, id, sizeof(in.id));
	write_result(e, resp, rc, code, why, existed ? "replaced" : "created",
	    &in, rc == 0 || code == INTENT_EPENDING ?
	    json_pack("{s:s}", "ID", id) : NULL);
	intent_clear(&in);
}

static void
route_by_id(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *id)
{
	const struct intent *cur;
	char why[WHY_MAX];
	enum intent_err code;
	struct intent in;
	int rc;

	if (!method_is(req, "GET") && write_wait_turn(e, resp))
		return;
	if (!intent_valid_id(id)) {
		http_reply_text(resp, 400, "invalid intention ID \"%.40s\": "
		    "expected a UUID", id);
		return;
	}
	if ((cur = intent_get(e->intents, id)) == NULL) {
		http_reply_text(resp, 404, "intention not found: %s", id);
		return;
	}
	if (method_is(req, "GET")) {
		reply_intent(resp, cur);
	} else if (method_is(req, "PUT")) {
		if (!http_intent_allowed(e, req, resp, cur->dst) ||
		    body_intent(req, resp, &in) != 0)
			return;
		if (!http_intent_allowed(e, req, resp, in.dst)) {
			intent_clear(&in);
			return;
		}
		rc = intent_update(e->intents, id, &in, &code, why,
		    sizeof(why));
		util_strlcpy(in.id, id, sizeof(in.id));
		write_result(e, resp, rc, code, why, "updated", &in,
		    json_true());
		intent_clear(&in);
	} else {
		if (!http_intent_allowed(e, req, resp, cur->dst))
			return;
		in = *cur;   /* for the message: cur dies with the delete */
		in.meta = NULL;
		rc = intent_delete(e->intents, id, &code, why, sizeof(why));
		write_result(e, resp, rc, code, why, "deleted", &in,
		    json_true());
	}
}

/* PUT .../exact: Consul 1.9's upsert by name; the body's names, when
 * present, must agree with the query. */
static void
exact_put(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *src, const char *dst)
{
	static const char *const keys[] = { "SourceName", "DestinationName" };
	const char *want[] = { src, dst };
	char why[WHY_MAX];
	enum intent_err code;
	struct intent in;
	json_t *j;
	int rc, existed;

	if ((j = http_body_json(req, resp)) == NULL)
		return;
	if (!json_is_object(j)) {
		json_decref(j);
		http_reply_text(resp, 400, "invalid intention: intention must "
		    "be a JSON object");
		return;
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++) {
		json_t *v = json_object_get(j, keys[i]);

		if (v == NULL || json_is_null(v)) {
			json_object_set_new(j, keys[i], json_string(want[i]));
		} else if (!json_is_string(v) ||
		    strcmp(json_string_value(v), want[i]) != 0) {
			json_decref(j);
			http_reply_text(resp, 400, "invalid intention: %s does "
			    "not match the query parameter", keys[i]);
			return;
		}
	}
	rc = intent_from_json(j, &in, why, sizeof(why));
	json_decref(j);
	if (rc != 0) {
		http_reply_text(resp, 400, "invalid intention: %s", why);
		return;
	}
	existed = intent_find_exact(e->intents, in.src, in.dst) != NULL;
	rc = intent_create(e->intents, &in, 1, in.id, &code, why,
	    sizeof(why));
	write_result(e, resp, rc, code, why, existed ? "replaced" : "created",
	    &in, json_true());
	intent_clear(&in);
}

static void
route_exact(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	const struct intent *cur;
	const char *src, *dst;
	char why[WHY_MAX];
	enum intent_err code;
	struct intent in;
	int rc;

	(void)rest;
	if ((src = name_param(req, resp, "source")) == NULL ||
	    (dst = name_param(req, resp, "destination")) == NULL)
		return;
	if (!method_is(req, "GET") && !http_intent_allowed(e, req, resp, dst))
		return;
	if (!method_is(req, "GET") && write_wait_turn(e, resp))
		return;
	if (method_is(req, "PUT")) {
		exact_put(e, req, resp, src, dst);
		return;
	}
	if ((cur = intent_find_exact(e->intents, src, dst)) == NULL) {
		http_reply_text(resp, 404, "intention not found: %s => %s",
		    src, dst);
		return;
	}
	if (method_is(req, "GET")) {
		reply_intent(resp, cur);
		return;
	}
	in = *cur;
	in.meta = NULL;
	rc = intent_delete(e->intents, in.id, &code, why, sizeof(why));
	write_result(e, resp, rc, code, why, "deleted", &in, json_true());
}

static void
route_check(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	const char *src, *dst;
	int ok;

	(void)rest;
	if ((src = name_param(req, resp, "source")) == NULL ||
	    (dst = name_param(req, resp, "destination")) == NULL)
		return;
	ok = intent_check(e->intents, src, dst, e->conf->default_allow, NULL);
	reply_json(resp, json_pack("{s:b}", "Allowed", ok));
}

static void
route_match(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	const struct intent **m = NULL;
	const char *by, *name;
	json_t *arr, *root;
	size_t n;
	int by_source;

	(void)rest;
	by = http_query(req, "by");
	if (by == NULL || by[0] == '\0') {
		http_reply_text(resp, 400, "required query parameter 'by' not "
		    "set");
		return;
	}
	if (strcmp(by, "source") == 0) {
		by_source = 1;
	} else if (strcmp(by, "destination") == 0) {
		by_source = 0;
	} else {
		http_reply_text(resp, 400, "'by' must be 'source' or "
		    "'destination'");
		return;
	}
	if ((name = name_param(req, resp, "name")) == NULL)
		return;
	n = intent_match(e->intents, by_source, name, NULL, 0);
	if (n > 0 && (m = calloc(n, sizeof(*m))) == NULL)
		goto oom;
	n = intent_match(e->intents, by_source, name, m, n);
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (json_array_append_new(arr, intent_to_json(m[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(m);
	if (arr == NULL || (root = json_object()) == NULL ||
	    json_object_set_new(root, name, arr) != 0) {
		json_decref(arr);
		goto oom;
	}
	http_reply_json(resp, 200, root);
	return;
oom:
	http_reply_text(resp, 500, "out of memory");
}

static void
authorized(struct http_resp *resp, int ok, const char *reason)
{
	reply_json(resp, json_pack("{s:b, s:s}", "Authorized", ok, "Reason",
	    reason));
}

static void
route_authorize(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	const struct intent *m;
	struct spiffe_id sid;
	const char *target, *uri, *td;
	char reason[WHY_MAX], s[INTENT_STR_MAX];
	json_t *j, *t, *u;
	int ok;

	(void)rest;
	if ((j = http_body_json(req, resp)) == NULL)
		return;
	t = json_object_get(j, "Target");
	u = json_object_get(j, "ClientCertURI");
	if (!json_is_object(j)) {
		http_reply_text(resp, 400, "request must be a JSON object");
	} else if (t == NULL || json_is_null(t) ||
	    (json_is_string(t) && json_string_length(t) == 0)) {
		http_reply_text(resp, 400, "Target service must be specified");
	} else if (!json_is_string(t)) {
		http_reply_text(resp, 400, "Target must be a string");
	} else if (!conf_valid_name(json_string_value(t))) {
		http_reply_text(resp, 400, "Target \"%.80s\": not a valid "
		    "service name", json_string_value(t));
	} else if (u == NULL || json_is_null(u)) {
		http_reply_text(resp, 400, "ClientCertURI must be specified");
	} else if (!json_is_string(u) ||
	    spiffe_parse(json_string_value(u), &sid) != 0) {
		http_reply_text(resp, 400, "ClientCertURI not a valid Connect "
		    "identifier");
	} else if ((*e->ca) == NULL || (td = ca_trust_domain((*e->ca))) == NULL) {
		http_reply_text(resp, 503, "the mesh CA is not ready");
	} else {
		target = json_string_value(t);
		uri = json_string_value(u);
		if (strcmp(sid.trust_domain, td) != 0) {
			snprintf(reason, sizeof(reason), "ClientCertURI %.256s "
			    "is outside this mesh's trust domain %s", uri, td);
			authorized(resp, 0, reason);
		} else if (strcmp(sid.ns, "default") != 0) {
			snprintf(reason, sizeof(reason), "ClientCertURI "
			    "namespace %s is not supported", sid.ns);
			authorized(resp, 0, reason);
		} else {
			ok = intent_check(e->intents, sid.service, target,
			    e->conf->default_allow, &m);
			if (m != NULL) {
				intent_string(m, s, sizeof(s));
				snprintf(reason, sizeof(reason),
				    "Matched intention: %s", s);
			} else {
				snprintf(reason, sizeof(reason), "Default "
				    "behavior configured by default_intention "
				    "(%s)", ok ? "allow" : "deny");
			}
			authorized(resp, ok, reason);
		}
	}
	json_decref(j);
}

/* The collection: GET lists, POST creates. */
static void
route_all(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	if (method_is(req, "GET"))
		list(e, resp);
	else
		create(e, req, resp);
}

static const struct http_route intent_routes[] = {
	{ "POST", "/v1/agent/connect/authorize", route_authorize, 0 },
	{ "GET|POST", PFX, route_all, 0 },
	{ "GET|POST", PFX "/", route_all, 1 },
	{ "GET|PUT|DELETE", PFX "/exact", route_exact, 0 },
	{ "GET", PFX "/check", route_check, 0 },
	{ "GET", PFX "/match", route_match, 0 },
	{ "GET|PUT|DELETE", PFX "/", route_by_id, 0 },
};

int
http_intent_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	return http_route_table(e, req, resp, intent_routes,
	    UTIL_ARRAY_LEN(intent_routes));
}
