/* http_req: a request's way through the HTTP API (http_req.h): its
 * target checked, its body read and capped (HTTP_BODY_MAX, then 413;
 * over HTTP_DRAIN_MAX the connection closes), its caller named (token,
 * uid on the unix socket), http_dispatch, then its answer queued, held
 * while a blocking query's index stays, or suspended until
 * http_later_answer. */
#include "helperd/api/http_req.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/api/http_block.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/model/intent.h"

void
http_req_arm_at(struct http_server *s, int64_t when)
{
	if (loop_timer_min(s->env.loop, &s->timer, when) != 0)
		log_err("http: out of memory: timeouts are late");
}

/* ---- requests ------------------------------------------------------------- */

/* The raw request target, before MHD decodes it: a control byte, raw or
 * %-encoded, makes the request a 400. */
void *
http_req_on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	struct http_ctx *ctx = calloc(1, sizeof(*ctx));

	(void)cls;
	(void)mc;
	if (ctx == NULL)
		return NULL;
	/* MHD hands the target NUL-terminated in its buffer of the request
	 * line, where " HTTP/1.x" followed: anything else after the NUL
	 * means the target itself held a NUL (tests/security checks it). */
	if (strncmp(uri + strlen(uri) + 1, "HTTP/", 5) != 0)
		ctx->bad_path = 1;
	for (const unsigned char *p = (const unsigned char *)uri;
	    *p != '\0' && *p != '?'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			ctx->bad_path = 1;
		if (p[0] == '%' && (((p[1] == '0' || p[1] == '1') &&
		    isxdigit(p[2])) || (p[1] == '7' && (p[2] == 'f' ||
		    p[2] == 'F'))))
			ctx->bad_path = 1;
	}
	return ctx;
}

struct http_conn *
http_req_conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

static void
add_headers(struct MHD_Response *r, const struct http_resp *resp)
{
	for (const char *const *h = resp->headers; h != NULL && h[0] != NULL &&
	    h[1] != NULL; h += 2)
		MHD_add_response_header(r, h[0], h[1]);
}

static enum MHD_Result
queue(struct MHD_Connection *mc, const char *method, const char *url,
    struct http_resp *resp, int close_after)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (resp->stream_read != NULL) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
		    resp->stream_read, resp->stream_arg, resp->stream_free);
		if (r == NULL) {
			resp->stream_free(resp->stream_arg);
			return MHD_NO;
		}
		MHD_add_response_header(r, "Content-Type", resp->ctype);
		add_headers(r, resp);
		ret = MHD_queue_response(mc, resp->status, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (resp->body == NULL)
		http_reply_text(resp, 500, "out of memory");
	if (resp->body == NULL)
		return MHD_NO;
	if (resp->status >= 400)
		log_info("http %s %s: %u %.*s", method, url, resp->status,
		    (int)(resp->len > 0 ? resp->len - 1 : 0), resp->body);
	r = MHD_create_response_from_buffer(resp->len, resp->body,
	    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(resp->body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", resp->ctype);
	if (close_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (resp->index > 0) {
		char idx[32];

		snprintf(idx, sizeof(idx), "%llu",
		    (unsigned long long)resp->index);
		MHD_add_response_header(r, "X-Consul-Index", idx);
		MHD_add_response_header(r, "X-Consul-KnownLeader", "true");
		MHD_add_response_header(r, "X-Consul-LastContact", "0");
	}
	add_headers(r, resp);
	ret = MHD_queue_response(mc, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The caller: its token (X-Consul-Token or Authorization: Bearer) and,
 * on the unix socket, its uid. */
static void
caller_of(struct http_server *s, struct MHD_Connection *mc,
    const struct http_conn *c, struct acl_caller *who)
{
	const char *tok = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
	    "X-Consul-Token");
	const char *auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);

	memset(who, 0, sizeof(*who));
	who->uid = c != NULL && c->on_unix ? c->uid : ACL_NOUID;
	who->local = c != NULL && c->local;
	if ((tok == NULL || tok[0] == '\0') && auth != NULL &&
	    strncasecmp(auth, "Bearer ", 7) == 0)
		tok = auth + 7;
	if (tok != NULL && tok[0] != '\0') {
		who->token = acl_token_by_secret(s->env.acl, tok);
		who->bad_token = who->token == NULL;
	}
}

/* ---- blocking queries (http_block.h) -------------------------------------- */

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
 * its ?wait lasts (bounded per client: http_block_may_hold). 1: held
 * (resp dropped), 0: answer now. */
static int
block_or_index(struct http_server *s, struct http_ctx *ctx,
    const struct http_conn *c, const struct http_req *req,
    struct http_resp *resp)
{
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
	if (ctx->hold_until == 0) {
		if ((wait = http_block_wait_ms(http_query(req, "wait"))) < 0)
			return 0;       /* Consul answers at once too */
		ctx->hold_until = now + wait;
		util_strlcpy(ctx->client, c->client, sizeof(ctx->client));
	}
	if (now >= ctx->hold_until || s->stopping ||
	    !http_block_may_hold(s->blk, ctx->client))
		return 0;
	free(resp->body);
	resp->body = NULL;
	http_block_hold(s->blk, ctx->client);
	ctx->held = 1;
	ctx->mc = mc;
	ctx->suspended = 1;
	ctx->held_gen = http_req_state_gen(s);
	ctx->held_ran = now;
	ctx->hprev = NULL;
	ctx->hnext = s->held;
	if (s->held != NULL)
		s->held->hprev = ctx;
	s->held = ctx;
	MHD_suspend_connection(mc);
	http_req_arm_at(s, now + HTTP_POLL_MS);
	return 1;
}

uint64_t
http_req_state_gen(const struct http_server *s)
{
	const struct api_env *e = &s->env;
	uint64_t g = 0;

	if (e->catalog != NULL)
		g += catalog_generation(e->catalog);
	if (e->intents != NULL)
		g += intent_db_index(e->intents);
	if (e->ca != NULL && *e->ca != NULL)
		g += ca_generation(*e->ca);
	return g;
}

/* Held requests run again (answered if their endpoint's answer changed
 * or their wait ran out, else held once more): all of them when the
 * server stops, else those whose state may have changed (see
 * HTTP_RECHECK_MS) or whose wait is over. */
void
http_req_resume_held(struct http_server *s)
{
	struct http_ctx *ctx = s->held, *next;
	uint64_t gen = http_req_state_gen(s);
	int64_t now = util_now_ms_mono();

	for (; ctx != NULL; ctx = next) {
		next = ctx->hnext;
		if (!s->stopping && ctx->held_gen == gen &&
		    now - ctx->held_ran < HTTP_RECHECK_MS &&
		    now < ctx->hold_until)
			continue;
		held_unlink(s, ctx);
		MHD_resume_connection(ctx->mc);
	}
}

/* ---- answers that come later (http.h) ---------------------------------- */

void
http_reply_later(struct http_resp *resp, struct http_later *l)
{
	*l = (struct http_later){ 0 };
	resp->later = l;
}

static void
later_unlink(struct http_server *s, struct http_ctx *ctx)
{
	if (ctx->later == NULL)
		return;
	if (ctx->lprev != NULL)
		ctx->lprev->lnext = ctx->lnext;
	else
		s->laters = ctx->lnext;
	if (ctx->lnext != NULL)
		ctx->lnext->lprev = ctx->lprev;
	ctx->lprev = ctx->lnext = NULL;
	ctx->later->ctx = NULL;
	ctx->later = NULL;
}

/* on_request: the route left the answer for later: suspend. */
static void
later_hold(struct http_server *s, struct http_ctx *ctx,
    struct MHD_Connection *mc, struct http_later *l)
{
	l->srv = s;
	l->ctx = ctx;
	l->mc = mc;
	ctx->later = l;
	ctx->lprev = NULL;
	ctx->lnext = s->laters;
	if (s->laters != NULL)
		s->laters->lprev = ctx;
	s->laters = ctx;
	MHD_suspend_connection(mc);
}

void
http_later_answer(struct http_later *l, struct http_resp *answer)
{
	struct http_server *s = l->srv;
	struct http_ctx *ctx = l->ctx;

	if (ctx == NULL) {              /* the request is gone */
		if (answer != NULL)
			free(answer->body);
		return;
	}
	later_unlink(s, ctx);
	if (answer != NULL) {
		ctx->answer = *answer;
		ctx->answered = 1;
	}
	MHD_resume_connection(l->mc);
	http_req_arm_at(s, util_now_ms_mono());     /* MHD_run takes it back */
}

enum MHD_Result
http_req_on_request(void *cls, struct MHD_Connection *mc, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **con_cls)
{
	struct http_listener *l = cls;
	struct http_server *s = l->s;
	struct http_ctx *ctx = *con_cls;
	struct http_conn *c = http_req_conn_of(mc);
	struct http_resp resp = { 0 };
	struct acl_caller who;
	struct http_req req;

	(void)version;
	if (c == NULL || c->refused)
		return MHD_NO;
	if (ctx == NULL) {
		if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
			return MHD_NO;
		*con_cls = ctx;
	}
	if (!ctx->started) {
		const char *cl = MHD_lookup_connection_value(mc,
		    MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		long n;

		ctx->started = 1;
		c->deadline = 0;
		if (ctx->bad_path) {
			http_reply_text(&resp, 400, "Invalid request path: a "
			    "control character (or %%00-%%1F, %%7F)");
			return queue(mc, method, "(path not shown)", &resp, 1);
		}
		if (cl != NULL && util_parse_long(cl, 0, HTTP_DRAIN_MAX,
		    &n) != 0) {
			/* Answer before reading it, then close. */
			http_reply_text(&resp, 413, "Request body over %d "
			    "bytes", HTTP_BODY_MAX);
			return queue(mc, method, url, &resp, 1);
		}
		return MHD_YES;
	}
	if (*upload_len > 0) {
		char *nb;

		ctx->seen += *upload_len;
		if (ctx->seen > HTTP_DRAIN_MAX) {
			/* Chunked past what we discard: too late for a
			 * reply (MHD answers only before or after a body). */
			log_info("http %s %s: body over %d bytes: closed",
			    method, url, HTTP_DRAIN_MAX);
			return MHD_NO;
		}
		if (ctx->too_big || ctx->len + *upload_len > HTTP_BODY_MAX) {
			/* A little over: read and dropped, then 413 (a
			 * close now could reset the answer away). */
			ctx->too_big = 1;
			*upload_len = 0;
			return MHD_YES;
		}
		if ((nb = realloc(ctx->body, ctx->len + *upload_len + 1)) ==
		    NULL)
			return MHD_NO;
		ctx->body = nb;
		memcpy(ctx->body + ctx->len, upload, *upload_len);
		ctx->len += *upload_len;
		ctx->body[ctx->len] = '\0';
		*upload_len = 0;
		return MHD_YES;
	}
	if (ctx->too_big) {
		http_reply_text(&resp, 413, "Request body over %d bytes",
		    HTTP_BODY_MAX);
		return queue(mc, method, url, &resp, 0);
	}
	if (ctx->answered) {            /* back with its later answer */
		resp = ctx->answer;
		ctx->answered = 0;
		ctx->answer = (struct http_resp){ 0 };
		return queue(mc, method, url, &resp, 0);
	}
	caller_of(s, mc, c, &who);
	req.method = method;
	req.path = url;
	req.body = ctx->body != NULL ? ctx->body : "";
	req.body_len = ctx->len;
	req.mhd_conn = mc;
	req.caller = &who;
	http_dispatch(&s->env, &req, &resp);
	if (resp.later != NULL) {       /* http_later_answer resumes it */
		later_hold(s, ctx, mc, resp.later);
		return MHD_YES;
	}
	if (resp.stream_read != NULL)   /* a monitor: woken when lines come */
		http_req_arm_at(s, util_now_ms_mono() + HTTP_POLL_MS);
	if (resp.body != NULL && resp.stream_read == NULL &&
	    block_or_index(s, ctx, c, &req, &resp))
		return MHD_YES;         /* held: called again on resume */
	return queue(mc, method, url, &resp, 0);
}

void
http_req_done(struct http_server *s, struct http_ctx *ctx)
{
	held_unlink(s, ctx);
	later_unlink(s, ctx);
	free(ctx->answer.body);
	if (ctx->held)
		http_block_release(s->blk, ctx->client);
	free(ctx->body);
	free(ctx);
}
