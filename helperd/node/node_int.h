/* node_int.h: what the node's files share (node/ only).
 *   daemon.c    start, stop, stats
 *   wire.c      the modules' envs and the ops they report through
 *   publish.c   the workers' policy snapshot
 *   leaves.c    the current leaf of every local service, renewal,
 *               rotation, intention changes
 *   services.c  API registrations (services.json), reload */
#ifndef MESH_NODE_INT_H
#define MESH_NODE_INT_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "helperd/node/helperd.h"

/* The leaf timer looks again at least this often (the wall clock may
 * move under a renewal time) and at most every second (a CA client's
 * request for a leaf past its renewal time is repeated until answered). */
#define LEAF_CHECK_MAX_S 600

/* daemon.c */
void node_path_in(char *buf, size_t len, const struct helperd *h,
    const char *name);
int node_write_json(struct helperd *h, const char *name, json_t *j, mode_t mode,
    char *err, size_t errlen);
int node_acl_load(struct helperd *h, char *err, size_t errlen);

/* wire.c */
int node_start_data_path(struct helperd *h, char *err, size_t errlen);
int node_start_served(struct helperd *h, char *err, size_t errlen);
int node_start_api(struct helperd *h, char *err, size_t errlen);

/* publish.c */
void node_policy_refresh_cb(void *arg);
void node_policy_round_end(void *arg);

/* leaves.c */
void node_leaves_arm(struct helperd *h);
void node_leaves_due(void *arg);

/* services.c */
int node_catalog_refresh(struct helperd *h);
int node_api_services_load(struct helperd *h, char *err, size_t errlen);
int node_observe_apply(struct helperd *h, char *err, size_t errlen);

#endif
