/* ctl: the control socket the shim (and `meshctl connect proxy`) talk to;
 * protocol in common/ctlproto.h. Each client's uid comes from SO_PEERCRED
 * and is checked against the service's "user" at HELLO. */
#ifndef MESH_CTL_H
#define MESH_CTL_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct loop;
struct catalog;
struct intent_db;
struct acl;
struct relay;
struct direct;
struct ctl_server;

/* What the control socket needs from the node, set at ctl_start (copied).
 * Each handle outlives the server (the node stops it first). Used on the
 * loop thread only. */
struct ctl_env {
	const struct conf *conf;        /* the node's running config: read at
	                                   each request (dns_domain,
	                                   default_allow; a reload changes it
	                                   in place, on the loop thread) */
	struct loop *loop;
	struct catalog *catalog;        /* HELLO's service, CONNECT's dst */
	const struct intent_db *intents;
	struct acl *acl;                /* HELLO's claim */
	struct relay *relay;            /* CONNECT's pending port, PEER */
	struct direct *direct;          /* DIRECT, TRACK */
	int outbound_port;              /* the relay's loopback port for the
	                                   shims: bound before ctl_start and
	                                   never changes, so a value */
	uint64_t *refused_all_critical; /* the node's counter (it reports
	                                   it): CONNECTs refused because
	                                   every instance is critical;
	                                   incremented here, loop thread */
};

/* Listen on the unix socket path (parent created 0755, socket 0666; a
 * stale socket is replaced, a live one is an error). 0/-1 with err. */
int ctl_start(struct ctl_server **out, const struct ctl_env *env,
    const char *path, char *err, size_t errlen);
/* Close every client and the socket; unlink the path. */
void ctl_stop(struct ctl_server *s);

#endif
