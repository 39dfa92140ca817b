/* cluster: this node's part in a multi-node mesh whose state lives in etcd
 * (store.backend = "etcd").
 *
 * Keys under store.prefix (P):
 *   P/services/<service>/<node>  one instance, JSON, under the node's lease
 *   P/intentions                 the whole intention document (as the
 *                                embedded store's file), written with a
 *                                compare-and-swap on its mod_revision
 *   P/ca/roots                   trust domain and root certificates
 *                                (public), written once by the first node
 *   P/ca/csr/<node>/<service>    a CA client's CSR (under its lease), with
 *                                an HMAC of it keyed by join_token
 *   P/ca/leaf/<node>/<service>   the certificate a CA server signed for it
 *                                (the client deletes both when installed)
 *   P/ca/leader                  the CA server that signs CSRs: created
 *                                under its lease by whichever CA server
 *                                finds it absent (leader election)
 *   P/ca/keys                    the root keys (ca_share), sealed with
 *                                ca.secret (seal.h), written once by the
 *                                first CA server that has ca.secret
 *
 * Threads of their own do the blocking etcd calls (cluster_int.h: the
 * lease keeper, the watcher, the worker, the intention writer) and hand
 * what they learn to the event loop through an eventfd; the loop applies
 * it (catalog, intentions) so helperd's state is touched by the loop
 * thread only. When etcd is unreachable the node runs on what it knows
 * (degraded, logged once) and catches up when etcd is back: the watch
 * resumes from the last revision it saw (a full re-list only when etcd
 * compacted past it), the lease is renewed or granted anew and the
 * registrations put again. */
#ifndef MESH_CLUSTER_H
#define MESH_CLUSTER_H

#include <stddef.h>

struct conf;
struct ca;
struct ca_leaf;
struct catalog;
struct cluster;
struct health;
struct intent_db;
struct loop;
struct served;

/* What the cluster reports to the node that created it. Called on the
 * loop thread only (from the eventfd callback), never from an etcd
 * thread. */
struct cluster_ops {
	/* The intentions changed in etcd (another node's write, or a
	 * listing after etcd was back): cut what is now denied. */
	void (*intentions_changed)(void *cookie, const char *why);
	/* A CA server took a newer (rotated) CA from etcd: ca (taken over)
	 * becomes the node's CA, the field env.ca points to; re-issue the
	 * leaves. */
	void (*ca_replace)(void *cookie, struct ca *ca, const char *why);
	/* CA client: a CA server signed leaf (a new reference, taken over)
	 * for one of this node's requests: make it its service's leaf. */
	void (*leaf_installed)(void *cookie, struct ca_leaf *leaf);
	/* CA client: new roots: get (or ask for) a leaf for every local
	 * service. */
	void (*leaves_warm)(void *cookie);
	/* Call fn for every leaf the node holds now (service, leaf); fn
	 * may call cluster_leaf_request. */
	void (*leaves_each)(void *cookie, void (*fn)(void *arg,
	    const char *service, const struct ca_leaf *leaf), void *arg);
};

/* What the cluster needs from the node, set once at cluster_start. The
 * handles stay the node's; the cluster only uses them on the loop thread
 * (its etcd threads work on copies taken at start: node name, keys,
 * lease TTL, store endpoints). */
struct cluster_env {
	/* The running config. A reload replaces some of its fields, on the
	 * loop thread; the cluster reads it on the loop thread only, at the
	 * time it needs a value (as it did reading h->conf). */
	const struct conf *conf;
	struct loop *loop;
	struct catalog *catalog;            /* remote instances go in */
	struct intent_db *intents;          /* replaced from etcd; its saver
	                                       is the cluster's */
	struct health *health;              /* status of local instances */
	struct served *served;              /* NULL: no served addresses */
	/* The node's CA field, not a copy: a rotation taken from etcd
	 * replaces the CA (ops->ca_replace stores the new one there), so the
	 * cluster reads *ca each time. */
	struct ca *const *ca;
	int mesh_port_bound;                /* advertised with instances */
	const struct cluster_ops *ops;
	void *cookie;                       /* passed back to every op */
};

/* Start the threads (after the catalog, intentions and CA are open and
 * the mesh port is bound); env is copied. Does not wait for etcd: a node
 * whose etcd is down starts degraded. 0, or -1 with err. */
int cluster_start(struct cluster **out, const struct cluster_env *env,
    char *err, size_t errlen);
/* Revoke the lease (this node's instances leave at once), stop the
 * worker. NULL is a no-op. */
void cluster_stop(struct cluster *c);
/* The local services changed (reload, API): publish the new set. */
void cluster_services_changed(struct cluster *c);
/* CA client: ask the CA servers to sign a new key for service (no-op if
 * asked less than 15 s ago, or if this node is a CA server, or c NULL).
 * The answer comes back through the watch: ops->leaf_installed. */
void cluster_leaf_request(struct cluster *c, const char *service);
/* CA server with ca.secret, before its CA opens: if etcd holds the
 * cluster's root keys (P/ca/keys, sealed with ca.secret), write them into
 * the CA directory dir when it has none or older ones. A different trust
 * domain in dir, a box that does not open, or no CA in dir while etcd is
 * unreachable: -1 with err (never a second root). */
int cluster_ca_fetch(const struct conf *conf, const char *dir, char *err,
    size_t errlen);
/* May this node rotate the CA root now? (the CA leader, with ca.secret)
 * 0, or -1 with err saying who may. */
int cluster_ca_rotate_check(struct cluster *c, char *err, size_t errlen);
/* After a rotation here: put the new roots and the sealed root keys. */
void cluster_ca_publish(struct cluster *c);
/* 1 while etcd is unreachable (the node runs on what it last knew). */
int cluster_degraded(const struct cluster *c);

#endif
