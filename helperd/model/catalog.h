/* catalog: the services this node knows and where their instances are.
 * On a single node every instance is local: this node's advertise_addr and
 * mesh_port. With the etcd store, other nodes' instances are merged in
 * (catalog_remote_*, fed by the cluster module from its watch). The JSON builders give the Consul shapes of the agent,
 * catalog and health endpoints. */
#ifndef MESH_CATALOG_H
#define MESH_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "conf/conf.h"

#define CATALOG_KEY_MAX    256    /* store key of a remote instance */
#define CATALOG_REMOTE_MAX 65536  /* remote instances kept */

#define CATALOG_OUTPUT_MAX 256    /* a check's output, kept per instance */

struct catalog;

/* An instance's health, as Consul's (worst of its checks). Only passing
 * instances are dialled. */
enum catalog_status { CATALOG_PASSING = 0, CATALOG_WARNING = 1,
	CATALOG_CRITICAL = 2 };

struct catalog_instance {
	const char *node;
	const char *address;          /* node address other nodes dial */
	int mesh_port;
	const struct conf_service *svc;
	int local;
	enum catalog_status status;
	const char *output;           /* of the check that decided status */
};

/* Where the catalog learns the health of local services (the health
 * module): status (with its output) and the Consul check objects of s.
 * Without ops every local instance is passing. */
struct catalog_health_ops {
	enum catalog_status (*status)(void *arg, const struct conf_service *s,
	    const char **output);
	/* The previous definition of local instance s (its address, port
	 * or checks changed) while it passes and s does not yet: dialled
	 * in place of s. NULL otherwise. Valid until the next change. */
	const struct conf_service *(*previous)(void *arg,
	    const struct conf_service *s, const char **output);
	json_t *(*checks_json)(void *arg, const struct conf_service *s);
	/* Changes whenever status or previous may answer differently
	 * (optional). */
	uint64_t (*generation)(void *arg);
	void *arg;
};

/* "passing", "warning", "critical". */
const char *catalog_status_name(enum catalog_status st);
/* The reverse; 0/-1. */
int catalog_status_parse(const char *s, enum catalog_status *out);

int catalog_new(struct catalog **out, const char *node, const char *dc);
void catalog_free(struct catalog *c);

/* Set (or clear, NULL) the health source of local instances. */
void catalog_set_health(struct catalog *c,
    const struct catalog_health_ops *ops);

/* Set this node's address and bound mesh port. */
void catalog_set_node(struct catalog *c, const char *address, int mesh_port);

/* Replace the local services with a merge of the config services and the
 * API-registered ones (the catalog keeps pointers: both arrays must live
 * until the next call). */
int catalog_set_local(struct catalog *c, const struct conf_service *cfg,
    size_t n_cfg, const struct conf_service *api, size_t n_api);

/* A local service by name (its first instance), or NULL. */
const struct conf_service *catalog_local(const struct catalog *c,
    const char *name);
size_t catalog_local_count(const struct catalog *c);
const struct conf_service *catalog_local_at(const struct catalog *c,
    size_t i);

/* The passing instances of service name (up to max), the ones to dial;
 * returns how many. Local instances come first, then remote ones. The
 * pointers stay valid until the next change of the catalog. */
size_t catalog_instances(const struct catalog *c, const char *name,
    struct catalog_instance *out, size_t max);
/* The same, the remote ones taken from the (spread mod their number)-th
 * on, wrapping: callers that keep only the first few still reach every
 * instance of a service on many nodes over successive calls. */
size_t catalog_instances_spread(const struct catalog *c, const char *name,
    size_t spread, struct catalog_instance *out, size_t max);
/* The same with every instance, whatever its health. */
size_t catalog_instances_all(const struct catalog *c, const char *name,
    struct catalog_instance *out, size_t max);

/* Add or replace the remote instance stored under key; value is its JSON
 * ({"Node","Address","MeshPort","Service","ID","Port","ServiceAddress",
 * "Status","Output"}; no Status: passing), len bytes. 0, or -1 with why (the catalog is unchanged). */
int catalog_remote_put(struct catalog *c, const char *key, const char *value,
    size_t len, char *why, size_t whylen);
/* The service port of the remote instance stored under key, -1 if none. */
int catalog_remote_port(const struct catalog *c, const char *key);
/* Drop the remote instance stored under key: 1 if there was one, 0. */
int catalog_remote_del(struct catalog *c, const char *key);
/* Drop every remote instance (before a full re-list). */
void catalog_remote_clear(struct catalog *c);
size_t catalog_remote_count(const struct catalog *c);
/* The i-th remote instance's service (name, port...), i < count. */
const struct conf_service *catalog_remote_at(const struct catalog *c,
    size_t i);
/* The service name of the i-th remote instance (i < remote count). */
const char *catalog_remote_name_at(const struct catalog *c, size_t i);
/* Changes with every change of what catalog_instances and catalog_local
 * answer (local or remote instances, this node's address, health). */
uint64_t catalog_generation(const struct catalog *c);
/* The `user` another node restricts service name to ("" when none), or
 * NULL when no other node has it. */
const char *catalog_remote_user(const struct catalog *c, const char *name);
/* The remote instances as {key: value} (values as catalog_remote_put
 * takes them), to keep them across a restart. New reference or NULL. */
json_t *catalog_remote_dump(const struct catalog *c);

json_t *catalog_agent_services_json(const struct catalog *c);
json_t *catalog_services_json(const struct catalog *c);
json_t *catalog_nodes_json(const struct catalog *c);
json_t *catalog_service_json(const struct catalog *c, const char *name);
/* /v1/health/service/:name and /v1/health/connect/:name: every instance
 * (only passing ones if passing_only) with its node and checks. */
json_t *catalog_health_json(const struct catalog *c, const char *name,
    int passing_only);

#endif
