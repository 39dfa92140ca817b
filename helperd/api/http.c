#include "helperd/api/http.h"

#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/model/catalog.h"
#include "helperd/local/direct.h"
#include "helperd/local/dns.h"
#include "helperd/local/health.h"
#include "helperd/api/http_block.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay.h"

const char *
http_query(const struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->mhd_conn,
	    MHD_GET_ARGUMENT_KIND, key);
}

void
http_reply_json(struct http_resp *resp, unsigned status, json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_INDENT(2) |
	    JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	if (s == NULL) {
		http_reply_text(resp, 500, "cannot encode JSON");
		return;
	}
	free(resp->body);
	resp->status = status;
	resp->len = strlen(s);
	resp->body = s;
	resp->ctype = "application/json";
}

void
http_reply_text(struct http_resp *resp, unsigned status, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	buf[n] = '\0';
	free(resp->body);
	resp->status = status;
	resp->body = strdup(buf);
	resp->len = resp->body != NULL ? (size_t)n : 0;
	resp->ctype = "text/plain; charset=utf-8";
}

json_t *
http_body_json(const struct http_req *req, struct http_resp *resp)
{
	json_error_t e;
	json_t *j;

	if (req->body_len == 0) {
		http_reply_text(resp, 400, "Request body is empty; expected "
		    "a JSON object");
		return NULL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
	if (j == NULL) {
		http_reply_text(resp, 400, "Request decode failed: malformed "
		    "JSON: %s at line %d column %d", e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_reply_text(resp, 400, "Request decode failed: expected "
		    "a JSON object");
		return NULL;
	}
	return j;
}

static int
method_is(const struct http_req *req, struct http_resp *resp,
    const char *allowed)
{
	char m[16];
	const char *p = allowed;

	/* allowed: "GET" or "PUT|POST" */
	while (*p != '\0') {
		size_t n = strcspn(p, "|");
		if (n < sizeof(m)) {
			memcpy(m, p, n);
			m[n] = '\0';
			if (strcmp(m, req->method) == 0)
				return 1;
		}
		p += n;
		if (*p == '|')
			p++;
	}
	http_reply_text(resp, 405, "Method %s not allowed on %s (allowed: %s)",
	    req->method, req->path, allowed);
	return 0;
}

/* A boolean query flag as Consul reads it: "?passing", "?passing=true"
 * and "?passing=1" are set; absent or "false"/"0" are not. */
static int
query_flag(const struct http_req *req, const char *key)
{
	const char *v = NULL;
	size_t vl = 0;

	if (MHD_lookup_connection_value_n(req->mhd_conn, MHD_GET_ARGUMENT_KIND,
	    key, strlen(key), &v, &vl) != MHD_YES)
		return 0;
	return v == NULL || vl == 0 || (strcmp(v, "false") != 0 &&
	    strcmp(v, "0") != 0);
}

/* A local service by ID (API registrations and the configuration). */
static const struct conf_service *
service_by_id(const struct api_env *e, const char *id)
{
	for (size_t i = 0; i < catalog_local_count(e->catalog); i++) {
		const struct conf_service *s = catalog_local_at(e->catalog, i);

		if (strcmp(s->id, id) == 0)
			return s;
	}
	return NULL;
}

/* A TTL check is updated by its service's writers ("service:<id>" and
 * "service:<id>:<n>" are the IDs helperd gives) or operator:write. */
static int
check_allowed(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *verb_id)
{
	const char *id = strchr(verb_id, '/');
	const struct conf_service *s = NULL;
	char sid[CONF_NAME_MAX];

	if (acl_operator_write(e->acl, req->caller))
		return 1;
	if (id != NULL && strncmp(id + 1, "service:", 8) == 0) {
		util_strlcpy(sid, id + 9, sizeof(sid));
		sid[strcspn(sid, ":")] = '\0';
		s = service_by_id(e, sid);
	}
	if (s != NULL)
		return http_allowed(req, resp, acl_service_write(e->acl,
		    req->caller, s->name, s), "service:write", s->name);
	return http_allowed(req, resp, 0, "operator:write", NULL);
}

/* Registering (or replacing) services needs service:write on each name,
 * and on the name an existing ID had. A uid that has write only as the
 * `user` of a service keeps that `user` in the new definition. */
static int
register_allowed(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const struct conf_service *svcs, size_t n)
{
	const struct acl_caller *c = req->caller;

	for (size_t i = 0; i < n; i++) {
		const struct conf_service *old = catalog_local(e->catalog,
		    svcs[i].name), *byid = service_by_id(e, svcs[i].id);

		if (acl_is_management(e->acl, c))
			return 1;
		if (!http_allowed(req, resp, acl_service_write(e->acl, c,
		    svcs[i].name, old), "service:write", svcs[i].name))
			return 0;
		if (byid != NULL && !http_allowed(req, resp,
		    acl_service_write(e->acl, c, byid->name, byid),
		    "service:write", byid->name))
			return 0;
		if (old != NULL && old->user[0] != '\0' && c->uid == old->uid &&
		    (svcs[i].user[0] == '\0' || svcs[i].uid != c->uid) &&
		    !acl_service_write(e->acl, &(struct acl_caller){
		    .token = c->token, .uid = ACL_NOUID }, svcs[i].name, NULL)) {
			http_reply_text(resp, 403, "Permission denied: uid %ld "
			    "acts for %s as its user; the new definition must "
			    "keep \"user\": \"%s\"", (long)c->uid,
			    svcs[i].name, old->user);
			return 0;
		}
	}
	return 1;
}

/* PUT /v1/agent/check/{pass,warn,fail}/<id>[?note=...]: a TTL check. */
static void
agent_check_update(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	static const struct { const char *verb; enum catalog_status st; }
	    verbs[] = { { "pass/", CATALOG_PASSING },
	    { "warn/", CATALOG_WARNING }, { "fail/", CATALOG_CRITICAL } };
	char why[256];
	int status;

	if (!check_allowed(e, req, resp, rest))
		return;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(verbs); i++) {
		size_t vl = strlen(verbs[i].verb);

		if (strncmp(rest, verbs[i].verb, vl) != 0)
			continue;
		if (health_ttl_update(e->health, rest + vl, verbs[i].st,
		    http_query(req, "note"), &status, why, sizeof(why)) != 0)
			http_reply_text(resp, (unsigned)status, "%s", why);
		else
			http_reply_text(resp, 200, "%s", "");
		return;
	}
	http_reply_text(resp, 404, "Unknown path: %s", req->path);
}

/* /v1/agent/service/register: a Consul service definition. */
static void
agent_register(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	struct conf_service *svcs = NULL;
	size_t n = 0;
	char err[CONF_ERR_MAX];

	if (req->body_len == 0) {
		http_reply_text(resp, 400, "Request body is empty; expected "
		    "a service definition");
		return;
	}
	if (conf_parse_service_json(req->body, req->body_len, "request",
	    &svcs, &n, err, sizeof(err)) != 0) {
		http_reply_text(resp, 400, "Invalid service definition: %s",
		    err);
		return;
	}
	if (n == 0) {
		http_reply_text(resp, 400, "Invalid service definition: no "
		    "service in it");
		conf_services_free(svcs, n);
		return;
	}
	if (!register_allowed(e, req, resp, svcs, n)) {
		conf_services_free(svcs, n);
		return;
	}
	if (e->ops->service_register(e->cookie, svcs, n, err, sizeof(err)) != 0) {
		http_reply_text(resp, 400, "%s", err);
		conf_services_free(svcs, n);
		return;
	}
	http_reply_text(resp, 200, "%s", "");
}

/* The control socket as an absolute path (meshctl connect proxy finds
 * helperd by it): a relative "socket" is relative to helperd's working
 * directory, which it never changes. */
static const char *
ctl_socket_abs(const struct api_env *e, char *buf, size_t len)
{
	char cwd[PATH_MAX];

	if (e->conf->socket[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return e->conf->socket;
	snprintf(buf, len, "%s/%s", cwd, e->conf->socket);
	return buf;
}

/* The agent, catalog and health routes, one handler each (rest: what
 * follows a prefix route's path). */
static void
agent_services(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, catalog_agent_services_json(e->catalog));
}

static void
agent_reload(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	char err[CONF_ERR_MAX], note[1000];

	(void)rest;
	if (!http_allowed(req, resp, acl_operator_write(e->acl, req->caller),
	    "operator:write", NULL))
		return;
	if (e->ops->reload(e->cookie, note, sizeof(note), err,
	    sizeof(err)) != 0)
		http_reply_text(resp, 500, "Reload failed, the running "
		    "configuration is kept: %s", err);
	else    /* what it did not apply, if anything */
		http_reply_text(resp, 200, "%s", note);
}

static void
agent_register_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	agent_register(e, req, resp);
}

static void
agent_deregister(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *id)
{
	const struct conf_service *s = service_by_id(e, id);
	char err[CONF_ERR_MAX];

	if (s != NULL && !http_allowed(req, resp, acl_service_write(e->acl,
	    req->caller, s->name, s), "service:write", s->name))
		return;
	if (s == NULL && !http_allowed(req, resp, acl_is_management(e->acl,
	    req->caller), "service:write", id))
		return;
	if (e->ops->service_deregister(e->cookie, id, err, sizeof(err)) != 0)
		http_reply_text(resp, 404, "%s", err);
	else
		http_reply_text(resp, 200, "%s", "");
}

static void
agent_self(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	char ctlsock[PATH_MAX + 128];

	(void)req, (void)rest;
	http_reply_json(resp, 200, json_pack(
	    "{s:{s:s, s:s, s:s, s:i, s:s, s:s, s:b, s:s}, s:{s:I, s:I, "
	    "s:I, s:I, s:I}}",
	    "Config", "NodeName", e->conf->node, "Datacenter",
	    e->conf->datacenter, "Version", "meshshim " MESHSHIM_VERSION,
	    "MeshPort", e->mesh_port, "HTTPSocket", e->http_sock,
	    "ControlSocket", ctl_socket_abs(e, ctlsock, sizeof(ctlsock)),
	    "ACLsEnabled", acl_enabled(e->acl),
	    "DefaultIntention", e->conf->default_allow ? "allow" : "deny",
	    "Stats",
	    "Connections", (json_int_t)relay_count(e->relay),
	    "DirectConnections", (json_int_t)direct_count(e->direct),
	    "DNSAnswered", (json_int_t)dns_answered(e->dns),
	    "DNSDropped", (json_int_t)dns_dropped(e->dns),
	    "RefusedAllCritical",
	    (json_int_t)e->ops->refused_all_critical(e->cookie)));
}

static void
catalog_services(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, catalog_services_json(e->catalog));
}

static void
catalog_nodes(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, catalog_nodes_json(e->catalog));
}

static void
catalog_service(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *name)
{
	(void)req;
	http_reply_json(resp, 200, catalog_service_json(e->catalog, name));
}

/* /v1/health/service/<name> and /v1/health/connect/<name>. */
static void
health_service(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *name)
{
	http_reply_json(resp, 200, catalog_health_json(e->catalog, name,
	    query_flag(req, "passing")));
}

static void
agent_checks(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, health_agent_checks_json(e->health));
}

static void
status_leader(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, json_string(e->http_bound));
}

static const struct http_route agent_catalog_routes[] = {
	{ "GET", "/v1/agent/services", agent_services, 0 },
	{ "PUT|POST", "/v1/agent/reload", agent_reload, 0 },
	{ "PUT|POST", "/v1/agent/service/register", agent_register_route, 0 },
	{ "PUT|POST", "/v1/agent/service/deregister/", agent_deregister, 0 },
	{ "GET", "/v1/agent/self", agent_self, 0 },
	{ "GET", "/v1/catalog/services", catalog_services, 0 },
	{ "GET", "/v1/catalog/nodes", catalog_nodes, 0 },
	{ "GET", "/v1/catalog/service/", catalog_service, 0 },
	{ "GET", "/v1/health/connect/", health_service, 0 },
	{ "GET", "/v1/health/service/", health_service, 0 },
	{ "GET", "/v1/agent/checks", agent_checks, 0 },
	{ "PUT", "/v1/agent/check/", agent_check_update, 0 },
	{ "GET", "/v1/status/leader", status_leader, 0 },
};

int
http_route_table(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const struct http_route *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].path);
		int prefix = !t[i].exact && len > 0 && t[i].path[len - 1] == '/';

		if (prefix ? strncmp(req->path, t[i].path, len) != 0 :
		    strcmp(req->path, t[i].path) != 0)
			continue;
		if (method_is(req, resp, t[i].methods))
			t[i].handle(e, req, resp, req->path + len);
		return 1;
	}
	return 0;
}

int
http_allowed(const struct http_req *req, struct http_resp *resp, int ok,
    const char *perm, const char *what)
{
	char why[512];

	if (ok)
		return 1;
	acl_denied(req->caller, perm, what, why, sizeof(why));
	http_reply_text(resp, 403, "%s", why);
	return 0;
}

int
http_intent_allowed(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *dest)
{
	return http_allowed(req, resp, acl_intention_write(e->acl,
	    req->caller, dest), "intentions:write", dest);
}

void
http_dispatch(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	const struct acl_caller *c = req->caller;

	assert(loop_is_mine(e->loop));  /* the node's state: loop thread */
	if (http_ui_route(req, resp))
		return;
	/* An unknown token is refused everywhere, as Consul does; from
	 * another host even the reads need a token. */
	if (acl_enabled(e->acl) && (c->bad_token || (!c->local &&
	    c->token == NULL))) {
		http_reply_text(resp, 403, "%s", c->bad_token ?
		    "ACL not found" : "Permission denied: a token is required "
		    "from a non-loopback address (X-Consul-Token)");
		return;
	}
	if (http_route_table(e, req, resp, agent_catalog_routes,
	    UTIL_ARRAY_LEN(agent_catalog_routes)) ||
	    http_intent_route(e, req, resp) || http_ca_route(e, req, resp) ||
	    http_acl_route(e, req, resp) || http_agent_route(e, req, resp))
		return;
	http_reply_text(resp, 404, "Unknown path: %s", req->path);
}

