/* health: the health checks of this node's services, as Consul's, run
 * from the event loop without blocking. TCP: a connect within the
 * timeout; HTTP: an HTTP/1.0 GET, 2xx = passing, 429 = warning (the reply
 * read up to 4 KiB); TTL: passing while PUT /v1/agent/check/pass/<id>
 * comes within the ttl. A service without checks and with a port gets a
 * TCP check of address:port every check_interval; port 0 and no checks:
 * always passing. A new check is critical until its first run passes;
 * new checks run at once (health_sync waits briefly for them). A passing
 * check runs every interval; a failing one every HEALTH_RETRY_MS, so that
 * a service started after helperd (a strict inbound service must be) is
 * dialled within a second of listening, not an interval later. A service's
 * status is the worst of its checks; changes are logged once and published
 * (cluster). The catalog asks for it through catalog_health_ops. */
#ifndef MESH_HEALTH_H
#define MESH_HEALTH_H

#include <stdint.h>
#include <jansson.h>

#include "helperd/catalog.h"

#define HEALTH_SETTLE_MS 500   /* health_sync waits at most this long */
#define HEALTH_READ_MAX  4096  /* an HTTP check's reply is read up to this */
#define HEALTH_RETRY_MS  1000  /* a failing check runs again after this
                                * (or its interval, if shorter) */

struct helperd;
struct health;

int health_new(struct health **out, struct helperd *h);
void health_free(struct health *hl);

/* Bring the checks in line with the catalog's local services (start,
 * reload, API): unchanged checks keep their state, new ones run at once
 * and are waited for up to HEALTH_SETTLE_MS (loopback answers in
 * milliseconds), dropped ones stop. */
void health_sync(struct health *hl);

/* Start due checks, time out slow ones, expire TTLs. Every ~100 ms. */
void health_tick(struct health *hl, int64_t now_ms);

/* The worst status of local service s's checks (and the output of the
 * check that decided it). */
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
