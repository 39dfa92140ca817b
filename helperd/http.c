#include "helperd/http.h"

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/catalog.h"
#include "helperd/direct.h"
#include "helperd/dns.h"
#include "helperd/health.h"
#include "helperd/http_block.h"
#include "helperd/helperd.h"
#include "helperd/loop.h"
#include "helperd/relay.h"

#define HTTP_MAX_CONNS 256

struct http_server {
	struct helperd *h;
	struct MHD_Daemon *d;
	struct loop_watch w;
	struct http_block *blk;         /* blocking queries */
	struct http_ctx *held;          /* requests suspended until a change */
	int stopping;                   /* hold nothing more */
};

/* Per request: the body as it arrives, capped. */
struct http_ctx {
	char *body;
	size_t len;
	int too_big;
	/* A blocking query held (suspended) until its answer changes. */
	struct MHD_Connection *mc;
	int64_t deadline;               /* monotonic ms; 0: not blocking yet */
	int held;                       /* counted in blk (until released) */
	int suspended;                  /* in the server's held list */
	char client[64];
	struct http_ctx *hprev, *hnext;
};

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

/* PUT /v1/agent/check/{pass,warn,fail}/<id>[?note=...]: a TTL check. */
static void
agent_check_update(struct helperd *h, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	static const struct { const char *verb; enum catalog_status st; }
	    verbs[] = { { "pass/", CATALOG_PASSING },
	    { "warn/", CATALOG_WARNING }, { "fail/", CATALOG_CRITICAL } };
	char why[256];
	int status;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(verbs); i++) {
		size_t vl = strlen(verbs[i].verb);

		if (strncmp(rest, verbs[i].verb, vl) != 0)
			continue;
		if (health_ttl_update(h->health, rest + vl, verbs[i].st,
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
agent_register(struct helperd *h, const struct http_req *req,
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
	if (helperd_service_register(h, svcs, n, err, sizeof(err)) != 0) {
		http_reply_text(resp, 400, "%s", err);
		conf_services_free(svcs, n);
		return;
	}
	http_reply_text(resp, 200, "%s", "");
}

static int
route_agent_catalog(struct helperd *h, const struct http_req *req,
    struct http_resp *resp)
{
	const char *p = req->path;
	char err[CONF_ERR_MAX];

	if (strcmp(p, "/v1/agent/services") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200,
			    catalog_agent_services_json(h->catalog));
	} else if (strcmp(p, "/v1/agent/reload") == 0) {
		if (!method_is(req, resp, "PUT|POST"))
			return 1;
		if (helperd_reload(h, err, sizeof(err)) != 0)
			http_reply_text(resp, 500, "Reload failed, the running "
			    "configuration is kept: %s", err);
		else
			http_reply_text(resp, 200, "%s", "");
	} else if (strcmp(p, "/v1/agent/service/register") == 0) {
		if (method_is(req, resp, "PUT|POST"))
			agent_register(h, req, resp);
	} else if (strncmp(p, "/v1/agent/service/deregister/", 29) == 0) {
		if (!method_is(req, resp, "PUT|POST"))
			return 1;
		if (helperd_service_deregister(h, p + 29, err,
		    sizeof(err)) != 0)
			http_reply_text(resp, 404, "%s", err);
		else
			http_reply_text(resp, 200, "%s", "");
	} else if (strcmp(p, "/v1/agent/self") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200, json_pack(
			    "{s:{s:s, s:s, s:s, s:i}, s:{s:I, s:I, s:I, s:I}}",
			    "Config",
			    "NodeName", h->conf.node, "Datacenter",
			    h->conf.datacenter, "Version", "meshshim " MESHSHIM_VERSION,
			    "MeshPort", h->mesh_port_bound, "Stats",
			    "Connections", (json_int_t)relay_count(h->relay),
			    "DirectConnections",
			    (json_int_t)direct_count(h->direct),
			    "DNSAnswered", (json_int_t)dns_answered(h->dns),
			    "DNSDropped", (json_int_t)dns_dropped(h->dns)));
	} else if (strcmp(p, "/v1/catalog/services") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200,
			    catalog_services_json(h->catalog));
	} else if (strcmp(p, "/v1/catalog/nodes") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200,
			    catalog_nodes_json(h->catalog));
	} else if (strncmp(p, "/v1/catalog/service/", 20) == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200,
			    catalog_service_json(h->catalog, p + 20));
	} else if (strncmp(p, "/v1/health/connect/", 19) == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200, catalog_health_json(
			    h->catalog, p + 19, query_flag(req, "passing")));
	} else if (strncmp(p, "/v1/health/service/", 19) == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200, catalog_health_json(
			    h->catalog, p + 19, query_flag(req, "passing")));
	} else if (strcmp(p, "/v1/agent/checks") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200,
			    health_agent_checks_json(h->health));
	} else if (strncmp(p, "/v1/agent/check/", 16) == 0) {
		if (method_is(req, resp, "PUT"))
			agent_check_update(h, req, resp, p + 16);
	} else if (strcmp(p, "/v1/status/leader") == 0) {
		if (method_is(req, resp, "GET"))
			http_reply_json(resp, 200, json_string(
			    h->http_bound));
	} else {
		return 0;
	}
	return 1;
}

static void
dispatch(struct helperd *h, const struct http_req *req,
    struct http_resp *resp)
{
	if (route_agent_catalog(h, req, resp) ||
	    http_intent_route(h, req, resp) || http_ca_route(h, req, resp) ||
	    http_agent_route(h, req, resp))
		return;
	http_reply_text(resp, 404, "Unknown path: %s", req->path);
}

/* Blocking queries (http_block.h) ------------------------------------ */

static enum MHD_Result
key_arg(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	char *k = cls;
	size_t n = strlen(k);

	(void)kind;
	if (strcmp(key, "index") == 0 || strcmp(key, "wait") == 0)
		return MHD_YES;
	snprintf(k + n, n < 1024 ? 1024 - n : 0, "&%s=%s", key,
	    value != NULL ? value : "");
	return MHD_YES;
}

static void
held_unlink(struct http_server *s, struct http_ctx *ctx)
{
	if (!ctx->suspended)
		return;
	if (ctx->hprev != NULL)
		ctx->hprev->hnext = ctx->hnext;
	else
		s->held = ctx->hnext;
	if (ctx->hnext != NULL)
		ctx->hnext->hprev = ctx->hprev;
	ctx->hprev = ctx->hnext = NULL;
	ctx->suspended = 0;
}

/* A watched endpoint's answer: give it its X-Consul-Index, and hold the
 * request while the index is still the one the client sent (?index) and
 * its ?wait lasts. 1: held (resp dropped), 0: answer now. */
static int
block_or_index(struct http_server *s, struct http_ctx *ctx,
    const struct http_req *req, struct http_resp *resp)
{
	const union MHD_ConnectionInfo *ci;
	struct MHD_Connection *mc = req->mhd_conn;
	const char *idx_s = http_query(req, "index");
	char key[1024];
	long wait, want;
	int64_t now;

	if (ctx->held) {                /* back from a hold */
		http_block_release(s->blk, ctx->client);
		ctx->held = 0;
	}
	if (resp->status != 200 || !http_block_watched(req->method, req->path))
		return 0;
	snprintf(key, sizeof(key), "%s?", req->path);
	MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, key_arg, key);
	resp->index = http_block_index(s->blk, key, resp->body, resp->len);
	if (idx_s == NULL || util_parse_long(idx_s, 1, 0x7fffffffffffffffL,
	    &want) != 0 || (uint64_t)want != resp->index)
		return 0;
	now = util_now_ms_mono();
	if (ctx->deadline == 0) {
		if ((wait = http_block_wait_ms(http_query(req, "wait"))) < 0)
			return 0;       /* Consul answers at once too */
		ctx->deadline = now + wait;
		ci = MHD_get_connection_info(mc,
		    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		ctx->client[0] = '\0';
		if (ci != NULL && ci->client_addr != NULL) {
			const struct sockaddr *sa = ci->client_addr;

			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)
				    sa)->sin_addr, ctx->client,
				    sizeof(ctx->client));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct
				    sockaddr_in6 *)sa)->sin6_addr, ctx->client,
				    sizeof(ctx->client));
		}
	}
	if (now >= ctx->deadline || s->stopping ||
	    !http_block_may_hold(s->blk, ctx->client))
		return 0;
	free(resp->body);
	resp->body = NULL;
	http_block_hold(s->blk, ctx->client);
	ctx->held = 1;
	ctx->mc = mc;
	ctx->suspended = 1;
	ctx->hprev = NULL;
	ctx->hnext = s->held;
	if (s->held != NULL)
		s->held->hprev = ctx;
	s->held = ctx;
	MHD_suspend_connection(mc);
	return 1;
}

/* Every held request runs again: answered if its endpoint changed or
 * its wait ran out, else held once more. */
static void
held_resume_all(struct http_server *s)
{
	while (s->held != NULL) {
		struct http_ctx *ctx = s->held;

		held_unlink(s, ctx);
		MHD_resume_connection(ctx->mc);
	}
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *mc, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **con_cls)
{
	struct http_server *s = cls;
	struct http_ctx *ctx = *con_cls;
	struct http_resp resp = { 0 };
	struct http_req req;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)version;
	if (ctx == NULL) {
		if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
			return MHD_NO;
		*con_cls = ctx;
		return MHD_YES;
	}
	if (*upload_len > 0) {
		if (!ctx->too_big && ctx->len + *upload_len <= HTTP_BODY_MAX) {
			char *nb = realloc(ctx->body, ctx->len + *upload_len +
			    1);
			if (nb == NULL)
				return MHD_NO;
			ctx->body = nb;
			memcpy(ctx->body + ctx->len, upload, *upload_len);
			ctx->len += *upload_len;
			ctx->body[ctx->len] = '\0';
		} else {
			ctx->too_big = 1;
		}
		*upload_len = 0;
		return MHD_YES;
	}
	req.method = method;
	req.path = url;
	req.body = ctx->body != NULL ? ctx->body : "";
	req.body_len = ctx->len;
	req.mhd_conn = mc;
	if (ctx->too_big)
		http_reply_text(&resp, 413, "Request body over %d bytes",
		    HTTP_BODY_MAX);
	else
		dispatch(s->h, &req, &resp);
	if (resp.body == NULL && resp.stream_read == NULL)
		http_reply_text(&resp, 500, "out of memory");
	if (resp.body == NULL && resp.stream_read == NULL)
		return MHD_NO;
	if (resp.stream_read != NULL) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
		    resp.stream_read, resp.stream_arg, resp.stream_free);
		if (r == NULL) {
			resp.stream_free(resp.stream_arg);
			return MHD_NO;
		}
		MHD_add_response_header(r, "Content-Type", resp.ctype);
		ret = MHD_queue_response(mc, resp.status, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (block_or_index(s, ctx, &req, &resp))
		return MHD_YES;         /* held: called again on resume */
	if (resp.status >= 400)
		log_info("http %s %s: %u %.*s", method, url, resp.status,
		    (int)(resp.len > 0 ? resp.len - 1 : 0), resp.body);
	r = MHD_create_response_from_buffer(resp.len, resp.body,
	    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(resp.body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", resp.ctype);
	if (resp.index > 0) {
		char idx[32];

		snprintf(idx, sizeof(idx), "%llu",
		    (unsigned long long)resp.index);
		MHD_add_response_header(r, "X-Consul-Index", idx);
		MHD_add_response_header(r, "X-Consul-KnownLeader", "true");
		MHD_add_response_header(r, "X-Consul-LastContact", "0");
	}
	ret = MHD_queue_response(mc, resp.status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_ctx *ctx = *con_cls;

	struct http_server *s = cls;

	(void)mc;
	(void)toe;
	if (ctx != NULL) {
		held_unlink(s, ctx);
		if (ctx->held)
			http_block_release(s->blk, ctx->client);
		free(ctx->body);
		free(ctx);
		*con_cls = NULL;
	}
}

static void
on_event(void *arg, uint32_t events)
{
	struct http_server *s = arg;

	(void)events;
	MHD_run(s->d);
}

void
http_tick(struct http_server *s)
{
	if (s == NULL)
		return;
	held_resume_all(s);
	http_monitor_tick();
	MHD_run(s->d);
}

int
http_start(struct http_server **out, struct helperd *h, const char *addr,
    char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	const union MHD_DaemonInfo *info;
	struct http_server *s;
	char host[CONF_ADDR_MAX];
	int port;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO |
	    MHD_ALLOW_SUSPEND_RESUME;

	if (util_split_hostport(addr, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "http_addr: expected host:port, got %s",
		    addr);
		return -1;
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr)
	    == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "http_addr: %s is not an IP address",
		    host);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	if ((s->blk = http_block_new()) == NULL) {
		free(s);
		return -1;
	}
	s->h = h;
	s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    on_request, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		snprintf(err, errlen, "cannot listen on http_addr %s (in use?)",
		    addr);
		http_block_free(s->blk);
		free(s);
		return -1;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%u" :
	    "%s:%u", host, info != NULL ? (unsigned)info->port :
	    (unsigned)port);
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || loop_add(h->loop, &s->w, info->epoll_fd, EPOLLIN,
	    on_event, s) != 0) {
		snprintf(err, errlen, "http: cannot watch the epoll fd");
		MHD_stop_daemon(s->d);
		http_block_free(s->blk);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void
http_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	loop_del(s->h->loop, &s->w);
	/* MHD stops only with no connection suspended. */
	s->stopping = 1;
	held_resume_all(s);
	http_monitor_stop_all();
	MHD_run(s->d);
	MHD_stop_daemon(s->d);
	http_block_free(s->blk);
	free(s);
}
