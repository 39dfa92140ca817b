/* health: the health checks of this node's services, as Consul's, run
 * from the event loop without blocking. TCP: a connect within the
 * timeout; HTTP(S): an HTTP/1.0 GET, 2xx = passing, 429 = warning (the
 * reply read up to 4 KiB; https verifies the chain against the system
 * trust store and the name, tls_server_name or the URL's host, unless
 * tls_skip_verify); TTL: passing while PUT /v1/agent/check/pass/<id>
 * comes within the ttl. Host names are looked up off the loop (resolve.h).
 *
 * A check's status changes after success_before_passing passes in a row
 * and failures_before_critical failures in a row (Consul's; 0 or 1: at
 * once). A failure short of the threshold keeps the status (its output
 * says "1 of 3 failures before critical"). A service without checks and
 * with a port gets helperd's own TCP check of address:port every
 * check_interval, with failures_before_critical = HEALTH_DEFAULT_FAILURES;
 * port 0 and no checks: always passing.
 *
 * Before its first run a check is critical ("not checked yet"), as
 * Consul's. New checks run at once; health_sync waits briefly for those
 * of new instances, so a service that listens when it is registered (or
 * helperd starts, or reloads) is passing when that returns. A changed
 * instance is not waited for: its previous definition serves until the
 * new one passes (health_sync). A check that has
 * never passed probes every HEALTH_STARTUP_MS for its first
 * HEALTH_STARTUP_WINDOW_MS, so a service that starts after helperd is
 * dialled soon after it listens, and never before. Otherwise every check
 * runs every interval, passing or failing (Consul's); helperd's own check
 * confirms a failure short of its threshold after HEALTH_CONFIRM_MS.
 * A run past its timeout first handles events the loop has not handled
 * yet: a busy helperd is never blamed on the service.
 *
 * A service's status is the worst of its checks; changes are logged once
 * and published (cluster). The catalog asks for it through
 * catalog_health_ops. */
#ifndef MESH_HEALTH_H
#define MESH_HEALTH_H

#include <stdint.h>
#include <jansson.h>

#include "helperd/model/catalog.h"

#define HEALTH_SETTLE_MS 500   /* health_sync waits at most this long */
#define HEALTH_READ_MAX  4096  /* an HTTP check's reply is read up to this */
#define HEALTH_STARTUP_MS 200  /* a check that never passed probes this
                                * often (at most its interval) ... */
#define HEALTH_STARTUP_WINDOW_MS 60000  /* ... during its first minute */
#define HEALTH_CONFIRM_MS 2000 /* helperd's own check: a failure short of
                                * the threshold is confirmed this soon */
/* helperd's own check: failures in a row before critical. One SYN
 * dropped by a full accept queue under a burst costs a 1 s retransmit,
 * longer than the timeout; a loop stall can delay a run. Three failures
 * in a row, HEALTH_CONFIRM_MS apart, span 4 s or more: a service that is
 * really down, not a busy one. A dead service still fails fast: its
 * connections are refused by the kernel and the relay tries another
 * instance. */
#define HEALTH_DEFAULT_FAILURES 3

struct conf;
struct loop;
struct health;

/* Reports from health to the node; called on the loop thread. */
struct health_ops {
	/* A local instance's status as it is dialled changed, or the
	 * previous definition of a changed one was retired: what the node
	 * publishes of its services (the cluster's catalog) is stale. */
	void (*services_changed)(void *cookie);
};

/* What health needs from the node, set at health_new (copied). Each
 * handle outlives the module (the node frees health before them). */
struct health_env {
	const struct conf *conf;        /* the node's running config: node
	                                   and check_interval_ms, read when
	                                   used (loop thread, where a reload
	                                   changes it in place) */
	struct loop *loop;              /* the checks' sockets and timers */
	struct catalog *catalog;        /* the local services to check */
	const struct health_ops *ops;   /* may be NULL */
	void *cookie;                   /* passed back to every op */
};

int health_new(struct health **out, const struct health_env *env);
void health_free(struct health *hl);

/* Bring the checks in line with the catalog's local services (start,
 * reload, API). An instance whose address, port and checks did not change
 * keeps its checks (state, timers). One whose did gets new checks, run at
 * once; if it passed, its previous definition (and its checks) stays and
 * is dialled in its place (catalog_health_ops.previous) until the new one
 * passes, then is dropped. The new checks of instances with no previous
 * definition serving are waited for up to HEALTH_SETTLE_MS (loopback
 * answers in milliseconds). Checks of removed instances stop. */
void health_sync(struct health *hl);


/* Local instance s as it is dialled: the worst status of its checks
 * (and the output of the check that decided it), or passing while its
 * previous definition serves in its place. */
enum catalog_status health_status(const struct health *hl,
    const struct conf_service *s, const char **output);

/* The ops the catalog uses (health_status, the checks of a service). */
struct catalog_health_ops health_catalog_ops(struct health *hl);

/* /v1/agent/checks: {"service:socat": {"CheckID", "Name", "Status",
 * "Output", "ServiceID", "ServiceName", ...}, ...}. */
json_t *health_agent_checks_json(const struct health *hl);

/* PUT /v1/agent/check/{pass,warn,fail}/<check_id>: set a TTL check's
 * status (note: its output, may be NULL) and restart its ttl. 0, or -1
 * with *http_status (404 unknown check, 500 not a TTL check) and why. */
int health_ttl_update(struct health *hl, const char *check_id,
    enum catalog_status st, const char *note, int *http_status, char *why,
    size_t whylen);

#endif
