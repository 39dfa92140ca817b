/* http_srv: the HTTP API's listeners (libmicrohttpd, driven by helperd's
 * event loop): TCP on http_addr and a unix socket whose callers' uid
 * (SO_PEERCRED) is their credential. Each connection knows its client
 * (a uid when the kernel can name it, else an IP address), which bounds
 * how many connections one client holds; a request's headers must
 * arrive within HTTP_HEADER_MS; a body over HTTP_BODY_MAX is answered
 * 413 (one over HTTP_DRAIN_MAX before it is read, then a close); a
 * control byte in the path is 400. */
#include "helperd/api/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/api/http_block.h"
#include "helperd/evloop/loop.h"
#include "helperd/evloop/sockdiag.h"

struct http_listener {
	struct http_server *s;
	struct MHD_Daemon *d;
	struct loop_watch w;
	int is_unix;
	int on_loop;
};

/* One client connection (MHD's socket context). */
struct http_conn {
	int fd;
	uid_t uid;                  /* ACL_NOUID: unknown */
	int on_unix;                /* the uid is a credential */
	int local;                  /* loopback or unix socket */
	char client[64];            /* "uid 65534" or "ip 10.0.0.1" */
	int64_t deadline;           /* headers due by then; 0: in a request */
	int refused;
	struct http_conn *prev, *next;
};

struct http_server {
	struct api_env env;         /* the node's handles and ops (http.h) */
	struct http_listener tcp, unx;
	char sockpath[108];
	long max_per_client;
	struct http_conn *conns;
	struct sockdiag *sd;
	int64_t refuse_log_at;      /* rate limit of the refusal log line */
	unsigned long refused;      /* since the last line */
	struct http_block *blk;     /* blocking queries */
	struct http_ctx *held;      /* requests suspended until a change */
	struct http_ctx *laters;    /* requests whose answer comes later */
	int stopping;               /* hold nothing more */
	struct loop_timer timer;    /* http_due: see http_arm */
};

/* Held blocking queries (their answer may change: helperd keeps no
 * change notice, only each answer's digest) and monitor streams (log
 * lines come from any thread) are looked at this often while any is
 * there. */
#define HTTP_POLL_MS 100

static void http_arm_at(struct http_server *s, int64_t when);
static void http_mhd_arm(struct http_server *s);

/* Per request: the body as it arrives, capped. */
struct http_ctx {
	char *body;
	size_t len;
	size_t seen;                /* body bytes received */
	int started;
	int bad_path;
	int too_big;                /* over HTTP_BODY_MAX: discarded */
	/* A blocking query held (suspended) until its answer changes. */
	struct MHD_Connection *mc;
	int64_t hold_until;         /* monotonic ms; 0: not blocking yet */
	int held;                   /* counted in blk (until released) */
	int suspended;              /* in the server's held list */
	char client[64];            /* whose hold it is (http_conn.client) */
	struct http_ctx *hprev, *hnext;
	/* An answer that comes later (http_reply_later). */
	struct http_later *later;   /* suspended for it; in s->laters */
	struct http_resp answer;    /* it came: queued on resume */
	int answered;
	struct http_ctx *lprev, *lnext;
};

/* ---- connections ---------------------------------------------------------- */

static void
conn_identify(struct http_server *s, struct http_conn *c,
    const struct sockaddr *peer, int is_unix)
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	char ip[INET6_ADDRSTRLEN] = "?";

	if (is_unix) {
		struct ucred cr;
		socklen_t l = sizeof(cr);

		c->local = c->on_unix = 1;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0)
			c->uid = cr.uid;
		snprintf(c->client, sizeof(c->client), "uid %ld",
		    (long)c->uid);
		return;
	}
	if (peer != NULL && peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)peer;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		c->local = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (peer != NULL && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)peer;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		c->local = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
		    a->sin6_addr.s6_addr[12] == 127);
	}
	snprintf(c->client, sizeof(c->client), "ip %s", ip);
	/* On loopback every user shares 127.0.0.1: ask the kernel whose
	 * socket the peer is, so that one uid cannot use up the limit. */
	if (c->local && s->sd != NULL && getsockname(c->fd,
	    (struct sockaddr *)&me, &ml) == 0) {
		struct sockdiag_id id = { .cookie = SOCKDIAG_NOCOOKIE };
		struct sockdiag_info info;
		char mine[INET6_ADDRSTRLEN] = "";

		if (me.ss_family == AF_INET) {
			const struct sockaddr_in *m = (const void *)&me;

			inet_ntop(AF_INET, &m->sin_addr, mine, sizeof(mine));
			id.dport = ntohs(m->sin_port);
			id.sport = ntohs(((const struct sockaddr_in *)
			    (const void *)peer)->sin_port);
		} else {
			const struct sockaddr_in6 *m = (const void *)&me;

			inet_ntop(AF_INET6, &m->sin6_addr, mine, sizeof(mine));
			id.dport = ntohs(m->sin6_port);
			id.sport = ntohs(((const struct sockaddr_in6 *)
			    (const void *)peer)->sin6_port);
		}
		if (sockdiag_parse_addr(ip, &id.src) == 0 &&
		    sockdiag_parse_addr(mine, &id.dst) == 0 &&
		    sockdiag_query(s->sd, &id, &info) == 0) {
			c->uid = info.uid;
			snprintf(c->client, sizeof(c->client), "uid %ld",
			    (long)info.uid);
		}
	}
}

static void
conn_refuse_log(struct http_server *s, const struct http_conn *c)
{
	int64_t now = util_now_ms_mono();

	s->refused++;
	if (now < s->refuse_log_at)
		return;
	log_warn("http: %s holds %ld connections (limits."
	    "http_max_conns_per_client): refused %lu connection(s)",
	    c->client, s->max_per_client, s->refused);
	s->refused = 0;
	s->refuse_log_at = now + 1000;
}

static void
on_connection(void *cls, struct MHD_Connection *mc, void **sctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_listener *l = cls;
	struct http_server *s = l->s;
	struct http_conn *c = *sctx;
	const union MHD_ConnectionInfo *ci;
	long same = 0;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (c == NULL)
			return;
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		free(c);
		*sctx = NULL;
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (ci = MHD_get_connection_info(mc,
	    MHD_CONNECTION_INFO_CONNECTION_FD)) == NULL) {
		free(c);
		return;                 /* no context: refused at request */
	}
	c->fd = ci->connect_fd;
	c->uid = ACL_NOUID;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	conn_identify(s, c, ci != NULL ? ci->client_addr : NULL, l->is_unix);
	c->deadline = util_now_ms_mono() + HTTP_HEADER_MS;
	http_arm_at(s, c->deadline + 1);
	for (const struct http_conn *o = s->conns; o != NULL; o = o->next)
		if (!o->refused && strcmp(o->client, c->client) == 0)
			same++;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	*sctx = c;
	if (same >= s->max_per_client) {
		/* MHD sees the end of the stream and closes it. */
		c->refused = 1;
		c->deadline = 0;
		shutdown(c->fd, SHUT_RDWR);
		conn_refuse_log(s, c);
	}
}

/* ---- requests ------------------------------------------------------------- */

/* The raw request target, before MHD decodes it: a control byte, raw or
 * %-encoded, makes the request a 400. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
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

static struct http_conn *
conn_of(struct MHD_Connection *mc)
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
	ctx->hprev = NULL;
	ctx->hnext = s->held;
	if (s->held != NULL)
		s->held->hprev = ctx;
	s->held = ctx;
	MHD_suspend_connection(mc);
	http_arm_at(s, now + HTTP_POLL_MS);
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
	http_arm_at(s, util_now_ms_mono());     /* MHD_run takes it back */
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *mc, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **con_cls)
{
	struct http_listener *l = cls;
	struct http_server *s = l->s;
	struct http_ctx *ctx = *con_cls;
	struct http_conn *c = conn_of(mc);
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
		http_arm_at(s, util_now_ms_mono() + HTTP_POLL_MS);
	if (resp.body != NULL && resp.stream_read == NULL &&
	    block_or_index(s, ctx, c, &req, &resp))
		return MHD_YES;         /* held: called again on resume */
	return queue(mc, method, url, &resp, 0);
}

static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_listener *l = cls;
	struct http_ctx *ctx = *con_cls;
	struct http_conn *c = conn_of(mc);

	(void)toe;
	/* Idle between requests: the next headers are due in time too. */
	if (c != NULL && !c->refused) {
		c->deadline = util_now_ms_mono() + HTTP_HEADER_MS;
		http_arm_at(l->s, c->deadline + 1);
	}
	if (ctx != NULL) {
		held_unlink(l->s, ctx);
		later_unlink(l->s, ctx);
		free(ctx->answer.body);
		if (ctx->held)
			http_block_release(l->s->blk, ctx->client);
		free(ctx->body);
		free(ctx);
		*con_cls = NULL;
	}
}

/* ---- listeners ------------------------------------------------------------ */

static void
on_event(void *arg, uint32_t events)
{
	struct http_listener *l = arg;

	(void)events;
	MHD_run(l->d);
	http_mhd_arm(l->s);
}

static void
http_arm_at(struct http_server *s, int64_t when)
{
	if (loop_timer_min(s->env.loop, &s->timer, when) != 0)
		log_err("http: out of memory: timeouts are late");
}

/* MHD's own timeouts (connection_timeout): it wants MHD_run by then. */
static void
http_mhd_arm(struct http_server *s)
{
	struct MHD_Daemon *d[2] = { s->tcp.d, s->unx.d };
	int64_t now = util_now_ms_mono();

	for (int i = 0; i < 2; i++) {
		MHD_UNSIGNED_LONG_LONG t;

		if (d[i] != NULL && MHD_get_timeout(d[i], &t) == MHD_YES)
			http_arm_at(s, now + (t > 3600000 ? 3600000 :
			    (int64_t)t));
	}
}

/* The server's timer: held queries and monitors looked at again,
 * headers that did not come in time, MHD's timeouts; then armed for the
 * earliest of what is left (nothing left: not armed). */
static void
http_due(void *arg)
{
	struct http_server *s = arg;
	int64_t now = util_now_ms_mono(), next = 0;
	int polling;

	held_resume_all(s);
	polling = http_monitor_tick() > 0;
	for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
		if (c->deadline != 0 && now > c->deadline) {
			log_debug("http: %s: no request within %d ms: closed",
			    c->client, HTTP_HEADER_MS);
			c->deadline = 0;
			shutdown(c->fd, SHUT_RDWR);
		} else if (c->deadline != 0 && (next == 0 ||
		    c->deadline + 1 < next)) {
			next = c->deadline + 1;
		}
	}
	if (s->tcp.d != NULL)
		MHD_run(s->tcp.d);
	if (s->unx.d != NULL)
		MHD_run(s->unx.d);
	/* MHD_run took the resumed ones back: those still waiting are held
	 * again. */
	if (s->held != NULL || polling)
		next = next == 0 || now + HTTP_POLL_MS < next ?
		    now + HTTP_POLL_MS : next;
	if (next != 0)
		http_arm_at(s, next);
	http_mhd_arm(s);
}

static int
listener_start(struct http_server *s, struct http_listener *l,
    unsigned flags, uint16_t port, const struct sockaddr *sa, int lfd,
    char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info;

	l->s = s;
	l->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, l,
	    sa != NULL ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_LISTEN_SOCKET,
	    sa != NULL ? (intptr_t)sa : (intptr_t)lfd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
	    MHD_OPTION_END);
	if (l->d == NULL) {
		snprintf(err, errlen, "libmicrohttpd refused to start");
		return -1;
	}
	info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || loop_add(s->env.loop, &l->w, info->epoll_fd,
	    EPOLLIN, on_event, l) != 0) {
		snprintf(err, errlen, "http: cannot watch the epoll fd");
		MHD_stop_daemon(l->d);
		l->d = NULL;
		return -1;
	}
	l->on_loop = 1;
	return 0;
}

/* The unix socket: a stale socket file is replaced, anything else at the
 * path is an error. Mode 0666: the uid, not the mode, is the check. */
static int
unix_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "http_socket: path too long: %s", path);
		return -1;
	}
	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	util_strlcpy(dir, path, sizeof(dir));
	if (strrchr(dir, '/') != NULL && strrchr(dir, '/') != dir) {
		*strrchr(dir, '/') = '\0';
		if (util_mkdirs(dir, 0755) != 0) {
			snprintf(err, errlen, "http_socket: %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "http_socket: %s exists and is "
			    "not a socket", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, 128) != 0) {
		snprintf(err, errlen, "http_socket: %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
http_start(struct http_server **out, const struct api_env *e,
    const char *addr, const char *sockpath, long max_per_client,
    char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	const union MHD_DaemonInfo *info;
	struct http_server *s;
	char host[CONF_ADDR_MAX], why[256];
	int port, lfd;
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
	s->env = *e;
	loop_timer_init(&s->timer, http_due, s);
	if ((s->blk = http_block_new()) == NULL) {
		free(s);
		snprintf(err, errlen, "http: out of memory");
		return -1;
	}
	s->max_per_client = max_per_client > 0 ? max_per_client : 200;
	if (sockdiag_open(&s->sd) != 0) {
		log_warn("http: sock_diag unavailable (%s): loopback clients "
		    "share one connection limit", strerror(errno));
		s->sd = NULL;
	}
	if (listener_start(s, &s->tcp, flags, (uint16_t)port,
	    (struct sockaddr *)&ss, -1, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "cannot listen on http_addr %s (in use?)",
		    addr);
		goto err;
	}
	info = MHD_get_daemon_info(s->tcp.d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%u" :
	    "%s:%u", host, info != NULL ? (unsigned)info->port :
	    (unsigned)port);
	if (sockpath[0] != '\0') {
		if ((lfd = unix_listen(sockpath, err, errlen)) < 0)
			goto err;
		s->unx.is_unix = 1;
		if (listener_start(s, &s->unx, MHD_USE_EPOLL |
		    MHD_ALLOW_SUSPEND_RESUME, 0, NULL, lfd,
		    err, errlen) != 0) {
			close(lfd);
			unlink(sockpath);
			goto err;
		}
		util_strlcpy(s->sockpath, sockpath, sizeof(s->sockpath));
	}
	*out = s;
	return 0;
err:
	http_stop(s);
	return -1;
}

static void
listener_stop(struct http_server *s, struct http_listener *l)
{
	if (l->on_loop)
		loop_del(s->env.loop, &l->w);
	if (l->d != NULL)
		MHD_stop_daemon(l->d);
	l->d = NULL;
	l->on_loop = 0;
}

void
http_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	/* MHD stops only with no connection suspended. */
	s->stopping = 1;
	held_resume_all(s);
	while (s->laters != NULL) {     /* their answer will not come */
		struct http_resp r = { 0 };

		http_reply_text(&r, 503, "helperd is stopping: the outcome is "
		    "not known");
		http_later_answer(s->laters->later, &r);
	}
	http_monitor_stop_all();
	if (s->tcp.d != NULL)
		MHD_run(s->tcp.d);
	if (s->unx.d != NULL)
		MHD_run(s->unx.d);
	listener_stop(s, &s->tcp);
	listener_stop(s, &s->unx);
	loop_timer_del(s->env.loop, &s->timer);
	if (s->sockpath[0] != '\0')
		unlink(s->sockpath);
	sockdiag_close(s->sd);
	http_block_free(s->blk);
	free(s);
}

struct metrics *
http_server_metrics(struct http_server *s)
{
	return s != NULL ? http_agent_metrics(&s->env) : NULL;
}
