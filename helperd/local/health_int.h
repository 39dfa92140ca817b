/* health_int: what health's files share (not used outside them):
 * health.c (the checks in line with the catalog, the interface),
 * health_status.c (results, thresholds, statuses, what the catalog and
 * the API read), health_run.c (a run of a check, TCP, its timer) and
 * health_http.c (HTTP(S) checks). Everything here runs on the loop
 * thread. */
#ifndef MESH_HEALTH_INT_H
#define MESH_HEALTH_INT_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "conf/conf.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health.h"
#include "helperd/model/catalog.h"

#define CHECK_ID_MAX  (CONF_NAME_MAX + 16)   /* "service:<id>[:n]" */
#define REQ_MAX       (2 * CONF_ADDR_MAX + 128)

struct resolve;

enum phase { PH_IDLE, PH_RESOLVE, PH_CONNECT, PH_HANDSHAKE, PH_SEND,
	PH_READ };

struct hcheck {
	struct health *hl;
	char id[CHECK_ID_MAX];
	char svc_id[CONF_NAME_MAX];
	char svc_name[CONF_NAME_MAX];
	struct conf_check def;          /* as defined (compared on reload) */
	int is_default;                 /* helperd's own TCP check */
	long interval_ms, timeout_ms;
	int64_t no_verdict_log_at;      /* rate limit of check_no_verdict */
	int need_pass, need_fail;       /* consecutive results, >= 1 */
	char host[CONF_ADDR_MAX];       /* tcp and http */
	int port;
	int https;
	enum catalog_status status;
	char output[CATALOG_OUTPUT_MAX];
	int successes, failures;        /* consecutive, toward need_* */
	int passed_once;
	int logged;                     /* status last logged, -1: none */
	int64_t created, started, next_run, deadline, ttl_expiry;
	enum phase phase;
	int fd;
	struct loop_watch w;
	struct loop_timer t;            /* its next due time (check_arm) */
	struct resolve *res;            /* PH_RESOLVE */
	gnutls_session_t tls;           /* https */
	char req[REQ_MAX];              /* http: the GET request */
	size_t req_len, sent;
	char *buf;                      /* http: the reply, HEALTH_READ_MAX */
	size_t len;
	int vend;                       /* http: a step ended the run ... */
	enum catalog_status vst;        /* ... with this verdict */
	char vout[CATALOG_OUTPUT_MAX];
	int fresh;                      /* health_sync: new, settle on it */
	int prev;                       /* a check of the previous definition
	                                 * of a changed instance (see hsvc) */
};

/* A definition of a local instance as health last saw it: a copy, without
 * upstreams (health needs the address, port and checks). The current one
 * (prev 0), and for an instance whose address, port or checks changed
 * while it passed, the previous one (prev 1) with the checks it had: it is
 * dialled in place of the current one until that one passes its own
 * checks (success_before_passing), then retired. */
struct hsvc {
	struct conf_service def;
	int prev;
	int retire;                     /* prev: the current one passes */
};

struct health {
	struct health_env env;          /* set at health_new */
	struct hcheck **v;
	size_t n;
	struct hsvc **sv;               /* current and previous definitions */
	size_t nsv;
	int retire_pending;             /* a prev hsvc is marked retire */
	struct loop_timer sweep;        /* retire_sweep after the round */
	gnutls_certificate_credentials_t cred;  /* https: system trust */
	int cred_ready;
	uint64_t gen;                   /* bumped when what the catalog
	                                   dials may change */
};

/* health_status.c ---------------------------------------------------------- */

/* Tell the node that what it publishes may have changed (an instance's
 * status as it is dialled, a previous definition retired). */
void health_changed(struct health *hl);
/* The worst status of the checks of instance id's current (prev 0) or
 * previous (prev 1) definition, and its output. No checks: passing. */
enum catalog_status health_svc_status(const struct health *hl,
    const char *id, int prev, const char **output);
/* Instance id's current (prev 0) or previous (prev 1) definition, or
 * NULL. A previous one marked retire counts as gone. */
struct hsvc *health_sv_find(const struct health *hl, const char *id,
    int prev);
/* The previous definition of instance id dialled in place of the current
 * one (which does not pass, while it does), or NULL. */
const struct hsvc *health_serving_prev(const struct health *hl,
    const char *id, const char **output);
/* Set a check's status and output; log and report a change. */
void health_check_set(struct hcheck *c, enum catalog_status st,
    const char *out);
/* A run's result, counted toward the check's thresholds. */
void health_check_result(struct hcheck *c, enum catalog_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* health_run.c ------------------------------------------------------------- */

/* Start a run now: resolve (off the loop) or connect. */
void health_check_start(struct hcheck *c, int64_t now);
/* PH_RESOLVE: poll the name lookup; connect once it answered. */
void health_check_resolved(struct hcheck *c);
/* The run's socket is ready (the loop's callback; settle calls it too). */
void health_check_event(void *arg, uint32_t events);
/* 1 when the run waits to read, 0 to write. */
int health_check_pollin(const struct hcheck *c);
/* The one end of a run: release it, count the result, time the next. */
void health_check_done(struct hcheck *c, enum catalog_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Close what a run holds (socket, TLS session, lookup). */
void health_run_release(struct hcheck *c);
/* Arm c's timer for what comes next (the loop's callback:
 * health_check_timer). */
void health_check_arm(struct hcheck *c);
void health_check_timer(void *arg);
/* Stop c, free it after the loop's round (health_check_free) or now. */
void health_check_free(struct health *hl, struct hcheck *c);
void health_check_free_now(void *arg);

/* health_http.c ------------------------------------------------------------ */

/* An HTTP(S) check's host, port and request from c->def.target. 0/-1. */
int health_http_prepare(struct hcheck *c);
/* Connected: the TLS handshake (https) or the request. 1 when the run
 * ended (its verdict in c->vst, c->vout: the caller ends it), 0 when it
 * waits for its socket. */
int health_http_start(struct hcheck *c);
/* PH_HANDSHAKE, PH_SEND, PH_READ: go on; as health_http_start. */
int health_http_event(struct hcheck *c);

#endif
