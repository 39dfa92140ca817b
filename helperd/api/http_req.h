/* http_req: the HTTP API's requests, below http_srv (which drives
 * libmicrohttpd: daemons, connections, the timer): a request's target
 * checked, its body read and capped, its caller named, its answer
 * queued, held (blocking queries) or left for later (http_reply_later).
 * Internal to api/: the structs the two files share. */
#ifndef HELPERD_API_HTTP_REQ_H
#define HELPERD_API_HTTP_REQ_H

#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "helperd/api/http.h"
#include "helperd/evloop/loop.h"

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
/* A held query runs again within HTTP_POLL_MS when the state its answer
 * comes from changed (the catalog with health statuses, intentions, CA
 * roots: http_req_state_gen), and at least this often for what that
 * does not cover (a check's output, ACL changes). Not every 100 ms:
 * each run renders the whole answer, which one held query of a
 * 100-instance service on each of 90 nodes turned into 900 renders a
 * second on one machine (docs/SCALE.md). */
#define HTTP_RECHECK_MS 1000

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
	uint64_t held_gen;          /* http_req_state_gen when last run */
	int64_t held_ran;           /* ... at this monotonic ms */
	char client[64];            /* whose hold it is (http_conn.client) */
	struct http_ctx *hprev, *hnext;
	/* An answer that comes later (http_reply_later). */
	struct http_later *later;   /* suspended for it; in s->laters */
	struct http_resp answer;    /* it came: queued on resume */
	int answered;
	struct http_ctx *lprev, *lnext;
};

/* MHD_OPTION_URI_LOG_CALLBACK: a request's context, its target checked
 * (a control byte, raw or %-encoded, makes it a 400). */
void *http_req_on_uri(void *cls, const char *uri, struct MHD_Connection *mc);

/* MHD's access handler (cls: the struct http_listener). */
enum MHD_Result http_req_on_request(void *cls, struct MHD_Connection *mc,
    const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_len, void **con_cls);

/* The connection an MHD connection is (its socket context), or NULL. */
struct http_conn *http_req_conn_of(struct MHD_Connection *mc);

/* The request is over: its context unlinked, released and freed. */
void http_req_done(struct http_server *s, struct http_ctx *ctx);

/* Every held blocking query runs again (on the server's timer). */
void http_req_resume_held(struct http_server *s);
/* One number that changes with the catalog (instances, health
 * statuses), the intentions or the CA. */
uint64_t http_req_state_gen(const struct http_server *s);

/* The server's timer (http_due in http_srv.c) due by when at the latest. */
void http_req_arm_at(struct http_server *s, int64_t when);

#endif
