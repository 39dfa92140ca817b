/* relay: the data path. Listeners for the mesh port (inbound mTLS, all
 * services, SNI) and the loopback outbound port (app sockets the shim sent
 * here), and every relayed connection: one state struct, one teardown
 * (relay_conn_close with a reason), bounded buffers from a pool, timeouts
 * on connect and handshake, half-close propagated both ways. */
#ifndef MESH_RELAY_H
#define MESH_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <jansson.h>

struct relay;
struct conf;
struct loop;
struct policy_cell;
struct ca;
struct ca_leaf;
struct accesslog;

/* What the relay reports up to its creator. Called on the creator's loop
 * thread (env.loop), never on a worker. */
struct relay_ops {
	/* The current leaf of service (a local or ad-hoc one), getting one
	 * if there is none: it may generate a key, or (a CA client) ask a
	 * CA server and return NULL meanwhile. Borrowed, or NULL with err.
	 * The relay asks when a connection waits for a leaf its policy
	 * snapshot lacks; once one is in place the creator calls
	 * relay_leaf_ready. */
	struct ca_leaf *(*leaf)(void *cookie, const char *service,
	    char *err, size_t errlen);
};

/* What the relay needs from the node, set at relay_new (copied). */
struct relay_env {
	/* The running config. The workers read it without a lock: only
	 * fields a reload never changes (node, datacenter, the timeouts,
	 * max_conns, same_node_mtls); a reload writes other fields (the
	 * services, default_intention, access_log, logging) on the loop
	 * thread. */
	const struct conf *conf;
	struct loop *loop;              /* the listeners' (creator's) loop */
	/* The published policy snapshot: the creator's loop thread is its
	 * writer, each worker a reader (slot = worker id). */
	struct policy_cell *policy;
	/* The field that holds the node's CA (a rotation or a cluster CA
	 * replaces the pointer, on the loop thread): read through it, on
	 * the loop thread only. */
	struct ca *const *ca;
	struct accesslog *alog;         /* never replaced while the relay
	                                   lives; any thread */
	const struct relay_ops *ops;    /* ops->leaf is required */
	void *cookie;                   /* passed back to every op */
};

/* workers: event loops on their own threads that carry the connections
 * (at least 1). The listeners stay on env->loop, which hands each
 * accepted socket to the next worker in turn. */
int relay_new(struct relay **out, const struct relay_env *env, int workers);
/* Close every connection and listener, stop the workers, free all. */
void relay_free(struct relay *r);
/* The congestion control set on loopback sockets (loopback_congestion;
 * "" when the system's default is left), fixed at relay_new: HELLO
 * passes it to the shims for the app's socket to helperd. */
const char *relay_loopback_cc(const struct relay *r);

/* Listen on bind_addr:port for mesh (TLS) connections; the bound port is
 * returned in *bound. 0/-1 with err. */
int relay_listen_mesh(struct relay *r, const char *bind_addr, int port,
    int *bound, char *err, size_t errlen);
/* Listen on 127.0.0.1 (and ::1 when available) on one free port for app
 * sockets sent by the shim. 0/-1 with err. */
int relay_listen_outbound(struct relay *r, int *port, char *err,
    size_t errlen);

/* Register the original destination of an app socket bound to loopback
 * local_port: the next connection from that port to the outbound listener
 * is relayed from src to dst, if that connection's socket belongs to uid
 * (sock_diag; any uid when uid is 0) and, when cookie is not 0, is the
 * socket with that SO_COOKIE. A connection that fails the check is not
 * placed (it waits for its own registration). Replaces a stale
 * registration. pid and unit: the registering process, for the access
 * log and the connections API. 0/-1. */
int relay_pending_add(struct relay *r, int local_port, const char *src,
    const char *dst, uid_t uid, uint64_t cookie,
    pid_t pid, const char *unit);

/* A connection accepted outside the relay (helperd's served addresses:
 * a program without the shim) whose source service helperd already
 * knows: relayed from src to dst exactly as an app socket the shim sent
 * (mTLS or same-node, intentions, live cuts). ss: the program's address.
 * Takes fd. Main thread. 0, or -1 (fd reset). */
int relay_outbound_hand(struct relay *r, int fd,
    const struct sockaddr_storage *ss, const char *src, const char *dst,
    uid_t uid);

/* The shim's ACCEPT: the accepted socket svc (src: the service's local
 * address, dst: its peer; cookie: its SO_COOKIE, SOCKDIAG_NOCOOKIE if not
 * given) is the other end of one of our connections to a local service:
 * its source SPIFFE ID and source address. The peer must be our socket,
 * 4-tuple and all, and (sock_diag) the service's socket must be the one
 * with that cookie. 0 found / -1. */
struct sockdiag_id;
int relay_inbound_lookup(struct relay *r, const struct sockdiag_id *svc,
    char *spiffe, size_t spiffelen, char *addr, size_t addrlen,
    int *src_port);


/* Intentions changed: every worker closes, at once, each open connection
 * whose pair is now denied, logging each (and how many). Returns 0: the
 * closing happens on the workers' threads. */
size_t relay_recheck(struct relay *r, const char *why);

/* A leaf was installed (issued here, or signed by a CA server): the
 * connections waiting for one dial again. Any thread; NULL is a no-op. */
void relay_leaf_ready(struct relay *r);

/* Open connections (outbound + inbound), for tests and /v1/agent/self. */
size_t relay_count(struct relay *r);

/* Observing (relay_obs.c) -------------------------------------------- */
struct metrics;
/* Add the relay's counters, summed over the workers, to m. */
void relay_metrics(struct relay *r, struct metrics *m);
/* The connections relaying now: a JSON array (docs/observability.md). */
json_t *relay_conns_json(struct relay *r);
/* Ask the worker of relaying connection id to close it (within ~100 ms,
 * logged, access log result "killed"). 0, or -1 when no such id. */
int relay_conn_kill(struct relay *r, uint64_t id);
/* The shim's CONNECT was refused here (main thread): src => dst denied
 * (why), before any connection existed. Counted and access-logged. */
void relay_obs_refused(struct relay *r, const char *src, const char *dst,
    pid_t pid, uid_t uid, const char *unit, const char *why);

#endif
