/* http: the Consul-compatible HTTP API (libmicrohttpd, driven by helperd's
 * event loop). Routes are split by area: http.c (agent, catalog, health),
 * http_intent.c (intentions, authorize), http_ca.c (CA roots, leaves,
 * rotation), http_acl.c, http_agent.c (metrics, connections, members,
 * monitor), http_ui.c. Errors are plain text with the right status, as
 * Consul's. The API knows no node: what it reads and what it asks of the
 * node come in the api_env given to http_start (node/daemon.c fills it). */
#ifndef MESH_HTTP_H
#define MESH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#define HTTP_BODY_MAX (256 * 1024)
#define HTTP_DRAIN_MAX (1024 * 1024) /* over this (declared or sent), a
                                      * body is not read: 413/close now */
#define HTTP_HEADER_MS 5000         /* request line + headers, and the
                                     * idle time between requests */
#define HTTP_MAX_CONNS 1024         /* per listener, all clients */

struct http_server;
struct acl_caller;
struct acl;
struct accesslog;
struct ca;
struct ca_leaf;
struct catalog;
struct cluster;
struct conf;
struct conf_service;
struct direct;
struct dns_server;
struct health;
struct intent_db;
struct loop;
struct relay;

/* What the API asks of the node (node/daemon.c). Called on the loop
 * thread, from a request's handler; cookie is api_env.cookie. */
struct api_ops {
	/* Re-read the configuration (PUT /v1/agent/reload). 0, with what it
	 * did not apply in note ("" if all), or -1 with err; a failed reload
	 * keeps the running configuration. */
	int (*reload)(void *cookie, char *note, size_t notelen, char *err,
	    size_t errlen);
	/* Register services (taking svcs over on success) / deregister one
	 * by ID. 0/-1 with err. */
	int (*service_register)(void *cookie, struct conf_service *svcs,
	    size_t n, char *err, size_t errlen);
	int (*service_deregister)(void *cookie, const char *id, char *err,
	    size_t errlen);
	/* Rotate the CA root and re-issue the leaves. 0/-1 with err. */
	int (*ca_rotate)(void *cookie, char *err, size_t errlen);
	/* The current leaf of service (issued if needed): borrowed, valid
	 * for this request; NULL with err. */
	struct ca_leaf *(*leaf)(void *cookie, const char *service, char *err,
	    size_t errlen);
	/* The intentions changed (why: for the log): close what they now
	 * deny, publish them. */
	void (*intentions_changed)(void *cookie, const char *why);
	/* The node's current leaves, one per call: the next one from *pos
	 * on (*pos advanced past it), NULL at the end. The node's list
	 * changes between requests (renewal, rotation): an op, not a
	 * pointer. */
	const struct ca_leaf *(*leaf_next)(void *cookie, size_t *pos);
	/* Connections refused because every instance was critical. */
	uint64_t (*refused_all_critical)(void *cookie);
};

/* What the API reads, set once at http_start; the handles are the node's
 * and outlive the server. All of it is read on the loop thread only. */
struct api_env {
	const struct conf *conf;    /* the running config: the node's own,
	                             * whose fields a reload changes on this
	                             * same thread, between two requests */
	struct loop *loop;
	struct acl *acl;            /* NULL: ACLs off */
	struct catalog *catalog;
	struct intent_db *intents;
	struct health *health;
	struct relay *relay;
	struct direct *direct;
	struct dns_server *dns;     /* NULL: no DNS server */
	struct accesslog *alog;
	/* Pointers to the node's fields, read at each use: a CA server
	 * replaces its CA when another one rotated (cluster), the cluster
	 * starts after the API (NULL: no etcd), and the start time is
	 * taken once the node is up. */
	struct ca *const *ca;
	struct cluster *const *cluster;
	const int64_t *started_ms;  /* monotonic ms */
	int mesh_port;              /* the bound mesh port */
	const char *http_sock;      /* the API's unix socket path, or "" */
	const char *http_bound;     /* the node's copy of http_start's bound
	                             * (filled before any request) */
	const struct api_ops *ops;
	void *cookie;               /* passed back to every op */
};

struct http_req {
	const char *method;        /* "GET", "PUT", ... */
	const char *path;          /* URL path, no query string */
	const char *body;          /* NUL-terminated, body_len bytes */
	size_t body_len;
	void *mhd_conn;            /* struct MHD_Connection * */
	const struct acl_caller *caller;  /* who asks (acl.h) */
};

struct http_resp {
	unsigned status;
	char *body;                /* malloc'd, owned by the response */
	size_t len;
	const char *ctype;         /* "application/json" or "text/plain" */
	uint64_t index;            /* X-Consul-Index (blocking queries); 0:
	                              none */
	/* A streamed body (body NULL): MHD's content reader and its free. */
	ssize_t (*stream_read)(void *arg, uint64_t pos, char *buf, size_t max);
	void (*stream_free)(void *arg);
	void *stream_arg;
	/* Extra headers: static "Name", "value", ..., NULL (or NULL). */
	const char *const *headers;
	struct http_later *later;  /* set by http_reply_later */
};

/* An answer that comes later (an intention write etcd has not answered
 * yet): the route calls http_reply_later(resp, l) with an l of its own
 * and returns; the request is suspended (the server answers others
 * meanwhile) until the route calls http_later_answer(l, answer) on the
 * loop thread: answer's body is taken over, or, answer NULL, the route
 * is called anew with the same request. l's fields are the server's. */
struct http_later {
	void *srv;                 /* struct http_server * */
	void *ctx;                 /* the request; NULL: gone */
	void *mc;                  /* struct MHD_Connection * */
};
void http_reply_later(struct http_resp *resp, struct http_later *l);
void http_later_answer(struct http_later *l, struct http_resp *answer);

/* Query string argument, or NULL. */
const char *http_query(const struct http_req *req, const char *key);

/* Fill resp with JSON (j is consumed) / plain text (a '\n' is appended). */
void http_reply_json(struct http_resp *resp, unsigned status, json_t *j);
void http_reply_text(struct http_resp *resp, unsigned status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The body as JSON; on failure replies 400 "malformed JSON: <reason> at
 * line L column C" (or 400 "empty body") and returns NULL. */
json_t *http_body_json(const struct http_req *req, struct http_resp *resp);

/* Authorization: ok (a grant from acl.h) or reply 403 naming perm
 * ("service:write") and what (may be NULL). Returns ok. */
int http_allowed(const struct http_req *req, struct http_resp *resp, int ok,
    const char *perm, const char *what);
/* intentions:write on destination dest, or 403. */
int http_intent_allowed(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *dest);

/* Answer req (every route, authorization included). */
void http_dispatch(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp);

/* A route: the methods it takes ("GET", "PUT|POST"), its path (exact,
 * or a prefix when it ends in '/'), and its handler; rest is what follows
 * a prefix ("" for an exact path). */
struct http_route {
	const char *methods;    /* "GET", "PUT|POST" */
	const char *path;       /* ending in '/': a prefix (rest: what
	                           follows it), unless exact */
	void (*handle)(const struct api_env *e, const struct http_req *req,
	    struct http_resp *resp, const char *rest);
	int exact;              /* match path as written, '/' and all */
};
/* The first route of t[n] whose path matches req's: 405 naming the
 * allowed methods when req's is not one of them, else its handler. 1 if
 * a route matched (resp filled), 0 if none did. */
int http_route_table(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const struct http_route *t, size_t n);

/* Route handlers: return 1 when the path belongs to them (resp filled,
 * 405 on a wrong method), 0 otherwise. */
int http_intent_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp);
int http_ca_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp);
int http_acl_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp);
/* http_ui.c: the web UI at /ui/ (and / redirects there); answered
 * before any ACL check: the page is static and public. */
int http_ui_route(const struct http_req *req, struct http_resp *resp);
/* http_agent.c: metrics, connections, members. */
int http_agent_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp);

/* http_monitor.c: GET /v1/agent/monitor streams the log. 1: resp is a
 * stream; 0: resp holds an error. */
int http_monitor_start(const struct http_req *req, struct http_resp *resp);
/* Wake the streams that have lines (the server's timer: every 100 ms
 * while any is open); how many are open. End them all (stop). */
int http_monitor_tick(void);
void http_monitor_stop_all(void);

struct metrics;
/* A snapshot of every figure of the node (metrics_free it). */
struct metrics *http_agent_metrics(const struct api_env *e);
/* The same for a running server's node (SIGUSR1); NULL: no server. */
struct metrics *http_server_metrics(struct http_server *s);

/* Start listening on addr ("host:port", port 0 = any) and, when
 * sockpath is not "", on that unix socket (mode 0666: the caller's uid is
 * its credential); the chosen address is written to bound
 * (CONF_ADDR_MAX). Registers with the event loop. Each client (a uid when
 * the kernel names one, else an IP address) may hold max_per_client
 * connections; a request's headers must arrive within HTTP_HEADER_MS.
 * e is copied; its handles must outlive the server. */
int http_start(struct http_server **out, const struct api_env *e,
    const char *addr, const char *sockpath, long max_per_client,
    char *bound, size_t boundlen, char *err, size_t errlen);
void http_stop(struct http_server *s);

#endif
