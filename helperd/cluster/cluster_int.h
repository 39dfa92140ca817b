/* cluster_int: what cluster.c (etcd worker, catalog, intentions) and
 * cluster_ca.c (CA roots, CSRs, leaves of CA clients) share: the state of
 * a node's cluster membership. Not for other modules. */
#ifndef MESH_CLUSTER_INT_H
#define MESH_CLUSTER_INT_H

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <jansson.h>

#include "conf/conf.h"
#include "helperd/evloop/loop.h"
#include "helperd/cluster/cluster.h"
#include "helperd/cluster/store_etcd.h"

#define RETRY_MS        1000   /* writer: ask etcd again (unsure write) */
#define BACKOFF_MIN_MS  250    /* first retry after a failed etcd call */
#define BACKOFF_MAX_MS  5000   /* ... doubling up to this, jittered */
#define SAVE_WAIT_MS    6000   /* an API write is answered "unknown" if
                                  etcd has not answered by then */
#define CSR_RETRY_MS    15000  /* ask again if no CA server answered */
#define REMOTE_SAVE_MS  5000   /* cluster-catalog.json: at most this often */
#define WATCH_CREATE_MS 2500   /* a watch etcd has not confirmed by then
                                  is tried on the next member */

enum ev_kind { EV_RESET, EV_PUT, EV_DEL, EV_DOWN, EV_UP };

struct ev {
	enum ev_kind kind;
	char *key;
	char *value;            /* EV_PUT: value; EV_DOWN/EV_UP: message */
	size_t vlen;
	int64_t rev;
	struct ev *next;
};

/* A put or delete for the worker to do (loop -> worker). */
struct op {
	char *key;
	char *value;            /* NULL: delete */
	int leased;             /* put under this node's lease */
	struct op *next;
};

/* A CA client's pending certificate request (loop only). */
struct leafreq {
	char service[64];
	char *key_pem;          /* the new key: stays on this node */
	int64_t asked_ms;
};

/* An intention write: the loop fills it, the writer answers (and wakes
 * the loop through the eventfd); the loop never waits for it. */
struct save_req {
	uint64_t seq;           /* which request an answer belongs to */
	char *doc;
	int64_t base_rev;
	int state;              /* 0 idle, 1 asked, 2 answered */
	int taken;              /* the worker has started sending it */
	int ok;
	int64_t rev;
	char why[ETCD_ERR_MAX];
};

/* An intention write sent to etcd whose answer never came (worker only):
 * retried, same compare-and-swap, until etcd says what became of it. */
struct unsure_write {
	char *doc;              /* NULL: none */
	int64_t base_rev;
	uint64_t seq;
	int64_t next_ms;        /* next attempt */
	int64_t since_ms;
};

/* Threads (cluster_sync.c, and the writer in cluster.c), each with an etcd
 * client of its own so that none waits behind another's call:
 *   keeper   the lease: granted, renewed every TTL/3, granted again when
 *            etcd says it is gone; nothing else, so that no slow call,
 *            sync or CSR delays a renewal;
 *   watcher  one full listing at start (and after etcd compacted past
 *            what it saw, or was rebuilt), then one watch resumed from the
 *            last revision it delivered; events go to the loop through
 *            the eventfd as they come; keeps cluster-catalog.json;
 *   worker   registrations (a diff, one transaction), CA documents, the
 *            CA leader election, queued puts and deletes (CSRs, leaves),
 *            retried with jittered exponential backoff;
 *   writer   intention writes (cluster.c). */
struct cluster {
	/* Loop thread only. */
	struct cluster_env env;  /* what the node gave; ops never NULL */
	struct loop_watch w;
	int64_t intent_rev;     /* mod_revision the local intentions are at */
	struct loop_timer save_timer;  /* an intention write's SAVE_WAIT_MS */
	/* Set at start, read-only after: every thread. */
	char key_root[CONF_PATH_MAX + 16];
	char key_services[CONF_PATH_MAX + 16];
	char key_intentions[CONF_PATH_MAX + 16];
	char key_ca[CONF_PATH_MAX + 16];
	char key_csr[CONF_PATH_MAX + 16];   /* P/ca/csr/ */
	char key_leaf[CONF_PATH_MAX + 16];  /* P/ca/leaf/ */
	char key_leader[CONF_PATH_MAX + 16]; /* P/ca/leader */
	char key_keys[CONF_PATH_MAX + 16];  /* P/ca/keys */
	char node[CONF_NAME_MAX];           /* this node's name */
	char remote_path[CONF_PATH_MAX + 32]; /* cluster-catalog.json */
	long ttl;
	int ca_server;                      /* this node may sign */
	struct leafreq *reqs;               /* loop only */
	size_t n_reqs;
	int warned_token;
	int synced_once;
	int served_dirty;                   /* loop: remote names changed */
	int64_t roots_rev;                  /* CA client: roots applied */
	char ca_leader[64];                 /* loop: the node that signs
	                                       CSRs ("" none elected) */
	json_t *csr_pending;                /* loop: CSR key -> value, kept
	                                       by a CA server that does not
	                                       sign (yet) */

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t ocv;     /* worker: work to do, or stop */
	pthread_cond_t kcv;     /* keeper: check the lease now, or stop */
	int efd;
	int stop;
	json_t *want;           /* key -> value string: our instances */
	int want_dirty;
	struct save_req save;
	struct ev *q_head, *q_tail;
	struct op *ops_head, *ops_tail;
	int degraded;
	uint64_t save_seq;
	char *ca_doc;           /* our roots, published if the key is absent */
	char *keys_doc;         /* our sealed root keys, the same */
	int64_t lease;          /* keeper: 0 while none */
	uint64_t lease_gen;     /* keeper: a new lease (register again) */
	int lease_check;        /* worker -> keeper: etcd said "no lease" */
	int watch_kick;         /* keeper -> watcher: restart the watch */
	int elect;              /* watcher -> worker: no CA leader: run */

	/* Keeper only. */
	pthread_t kthr;
	int kstarted;
	struct etcd *ketcd;

	/* Watcher only. */
	pthread_t vthr;
	int vstarted;
	struct etcd *vetcd;
	struct ev *batch_head, *batch_tail;  /* events being gathered */
	int saw_leader;         /* the listing had a leader */
	int64_t vrev;           /* last revision delivered to the loop */
	json_t *mirror;         /* remote instances: key -> value */
	int mirror_dirty;
	int64_t mirror_saved;   /* when cluster-catalog.json was written */

	/* Worker only. */
	pthread_t thr;
	int started;
	struct etcd *etcd;
	json_t *registered;     /* key -> value string, as put in etcd */
	uint64_t reg_gen;       /* lease generation registered under */

	/* Writer only: intention writes, on their own thread and etcd
	 * client, so that one is sent at once even while the worker waits
	 * for an etcd that does not answer. */
	pthread_t wthr;
	int wstarted;
	struct etcd *wetcd;
	pthread_cond_t wcv;     /* with mu: a write to send, or stop */
	struct unsure_write unsure;
};



/* The node's current CA (a rotation taken from etcd replaces it). */
#define CLUSTER_CA(c) (*(c)->env.ca)
/* The caller is the loop thread (what "loop thread only" says). */
#define cluster_assert_loop(c) assert(loop_is_mine((c)->env.loop))

/* cluster_sync.c: start the keeper, watcher and worker (0/-1); stop
 * and join them (the keeper revokes the lease); wake the worker. */
int cluster_sync_start(struct cluster *c);
void cluster_sync_stop(struct cluster *c);
void cluster_sync_wake(struct cluster *c);
void cluster_ev_free(struct ev *e);
/* The lease TTL asked of etcd for store.lease_ttl ttl (s). */
long cluster_lease_grant_ttl(long ttl);
/* Jittered backoff after fails failures in a row (ms). */
int64_t cluster_backoff_ms(int fails);

/* Queue a put (value) or delete (value NULL) of key for the worker;
 * leased: under this node's lease. Loop thread. */
void cluster_op_queue(struct cluster *c, const char *key, const char *value,
    int leased);

/* cluster_ca.c, called by the loop for keys under P/ca/: */
void cluster_ca_apply_roots(struct cluster *c, const struct ev *e);
void cluster_ca_apply_csr(struct cluster *c, const struct ev *e);
void cluster_ca_apply_leaf(struct cluster *c, const struct ev *e);
/* P/ca/leader put or deleted: who signs. */
void cluster_ca_apply_leader(struct cluster *c, const struct ev *e);
/* P/ca/keys put: a CA server takes a newer (rotated) CA. */
void cluster_ca_apply_keys(struct cluster *c, const struct ev *e);
/* A CSR key was deleted (answered, or its node's lease ended). */
void cluster_ca_csr_gone(struct cluster *c, const char *key);
/* A full listing follows: forget what the last one said. */
void cluster_ca_reset(struct cluster *c);
/* The key of the sealed root keys, P/ca/keys. */
void cluster_ca_keys_key(const struct conf *conf, char *buf, size_t len);
/* The sealed box of the root keys in the CA directory dir, or NULL. */
char *cluster_ca_keys_box(const struct conf *conf, const char *dir,
    char *err, size_t errlen);
/* Drop the pending requests (their keys are wiped). */
void cluster_ca_free(struct cluster *c);

#endif
