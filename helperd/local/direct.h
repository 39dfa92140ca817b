/* direct: same-node connections that do not go through helperd.
 *
 * With same_node_mtls = false, when the destination has a passing local
 * instance that is not inbound = "strict" and the intention allows the
 * pair, the shim connects the application's socket straight to the
 * service (DIRECT) and then tells helperd the socket's 4-tuple (TRACK).
 * helperd carries no bytes, but keeps the power to cut: a change of
 * intentions that denies a pair destroys its tracked sockets (sock_diag
 * SOCK_DESTROY, CAP_NET_ADMIN). Without that power (probed at start) the
 * shim is never offered DIRECT and same-node pairs use the spliced relay.
 *
 * The table is fixed-size (DIRECT_MAX); entries whose socket is gone are
 * dropped by a sweep timer, a bounded number of kernel lookups every
 * 100 ms while any is tracked (none tracked: no timer). */
#ifndef MESH_DIRECT_H
#define MESH_DIRECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "helperd/evloop/sockdiag.h"

#define DIRECT_MAX 16384        /* tracked connections */

struct conf;
struct loop;
struct catalog;
struct intent_db;
struct direct;

/* What direct needs from the node, set at direct_new (copied). Each
 * handle outlives the module (the node frees direct before them). Used
 * on the loop thread only. */
struct direct_env {
	const struct conf *conf;        /* the node's running config: its
	                                   default_allow is read at each
	                                   call (a reload changes it in place,
	                                   on the loop thread);
	                                   same_node_mtls at direct_new */
	struct loop *loop;              /* the sweep timer */
	struct catalog *catalog;        /* local instances of a destination */
	const struct intent_db *intents; /* is the pair allowed */
};

/* With env->conf->same_node_mtls = false, probe whether sockets can be
 * destroyed and log the choice. 0, or -1 out of memory. */
int direct_new(struct direct **out, const struct direct_env *env);
void direct_free(struct direct *d);

/* 1 when the shim may be offered direct connections. */
int direct_on(const struct direct *d);

/* DIRECT: may src's new connection to dst go straight to a local
 * instance? 1 with its numeric address and port, else 0 (the relay). */
int direct_route(struct direct *d, const char *src, const char *dst,
    char *addr, size_t addrlen, int *port);

/* TRACK: record the socket id (seen from the app's side) that src, whose
 * control client has uid, connected to dst. 0, or an errno (EINVAL not a
 * local instance of dst, ECONNREFUSED denied now, ENOENT no such
 * connection, EACCES not uid's, ENOSPC table full, EPROTO direct off)
 * with a message in err; a refused connection that exists is destroyed. */
int direct_track(struct direct *d, const char *src, uid_t uid,
    const char *dst, const struct sockdiag_id *id, char *err,
    size_t errlen);

/* Intentions changed: destroy each tracked connection whose pair is now
 * denied, logging each. Returns how many. */
size_t direct_recheck(struct direct *d, const char *why);

/* Tracked connections (for /v1/agent/self and tests). */
size_t direct_count(const struct direct *d);

#endif
