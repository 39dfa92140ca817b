/* store_etcd: a small blocking etcd v3 client over the JSON gateway
 * (etcd 3.4: POST /v3/kv/..., /v3/lease/..., /v3/watch), with libcurl.
 * Keys and values are base64 on the wire; this API takes and gives raw
 * bytes. Every call tries the endpoints in turn, starting with the last one
 * that answered, with connect and total timeouts. Not thread-safe: one
 * thread (cluster's worker) owns a client. */
#ifndef MESH_STORE_ETCD_H
#define MESH_STORE_ETCD_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "conf/conf.h"

#define ETCD_ERR_MAX 256

struct etcd;

/* One key-value as the gateway returns it, decoded. */
struct etcd_kv {
	char *key;
	char *value;            /* NUL-terminated (values are JSON text) */
	size_t vlen;
	int64_t mod_revision;
	int64_t lease;
};

/* Watch event callback: put (value != NULL) or delete (value == NULL). */
typedef void (*etcd_event_cb)(void *arg, const struct etcd_kv *kv);

int etcd_new(struct etcd **out, const struct conf_store_cfg *cfg, char *err,
    size_t errlen);
void etcd_free(struct etcd *e);
/* The endpoint that answered last (for log lines). */
const char *etcd_endpoint(const struct etcd *e);

/* key = value, attached to lease (0: none). 0/-1. */
int etcd_put(struct etcd *e, const char *key, const char *value,
    int64_t lease, char *err, size_t errlen);
/* Several puts (values[i]) and deletes (values[i] NULL) in one
 * transaction, the puts under lease (0: none): all applied or none. At
 * most ETCD_TXN_MAX operations (etcd's --max-txn-ops default is 128).
 * 0/-1; etcd_lease_missing() after a failure says why. */
#define ETCD_TXN_MAX 64
int etcd_txn_puts(struct etcd *e, const char *const *keys,
    const char *const *values, size_t n, int64_t lease, char *err,
    size_t errlen);
/* After a call failed: 1 if etcd answered that the lease is not found. */
int etcd_lease_missing(const struct etcd *e);
/* Delete one key. 0/-1. */
int etcd_delete(struct etcd *e, const char *key, char *err, size_t errlen);
/* Every key under prefix: *kvs (malloc'd, free with etcd_kvs_free), *n,
 * and the store revision of the answer in *rev. 0/-1. */
int etcd_range_prefix(struct etcd *e, const char *prefix,
    struct etcd_kv **kvs, size_t *n, int64_t *rev, char *err, size_t errlen);
void etcd_kvs_free(struct etcd_kv *kvs, size_t n);
/* Compare-and-swap: write key = value only if its mod_revision is still
 * mod_rev (0: the key must not exist). *won = 1 and *rev the new revision
 * when written, *won = 0 when another writer was first. 0/-1 (I/O). */
int etcd_cas(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int *won, int64_t *rev, char *err, size_t errlen);
/* The same, and when it loses, *cur is what key holds now (read in the
 * same transaction; cur->key NULL if the key is absent; free its key and
 * value). */
int etcd_cas_read(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int *won, int64_t *rev, struct etcd_kv *cur,
    char *err, size_t errlen);
/* The same, the key put under lease (0: none). */
int etcd_cas_lease(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int64_t lease, int *won, int64_t *rev,
    struct etcd_kv *cur, char *err, size_t errlen);
/* After a call failed: 1 if its request may have reached etcd (and a
 * write may so be applied, now or later), 0 if it surely never left
 * (no member could be connected to, or one refused it outright). */
int etcd_maybe_applied(const struct etcd *e);

int etcd_lease_grant(struct etcd *e, long ttl, int64_t *id, char *err,
    size_t errlen);
/* Refresh a lease: *ttl is what is left, 0 when the lease is gone. */
int etcd_lease_keepalive(struct etcd *e, int64_t id, long *ttl, char *err,
    size_t errlen);
int etcd_lease_revoke(struct etcd *e, int64_t id, char *err, size_t errlen);

/* Streaming watch on every key under prefix from revision start_rev: events
 * are delivered to cb from etcd_watch_poll. Only one watch per client.
 * It goes to the endpoint that answered last (etcd_endpoint_next moves
 * on). */
int etcd_watch_start(struct etcd *e, const char *prefix, int64_t start_rev,
    etcd_event_cb cb, void *arg, char *err, size_t errlen);
/* Wait up to timeout_ms for watch data (or etcd_wakeup) and deliver it.
 * 0 while the watch runs (or none was started), -1 once it has ended
 * (err says why); the watch is then stopped. */
int etcd_watch_poll(struct etcd *e, int timeout_ms, char *err, size_t errlen);
void etcd_watch_stop(struct etcd *e);
/* 1 once etcd confirmed the watch (its "created" message); *rev then
 * holds the store revision etcd was at (NULL: not wanted). */
int etcd_watch_created(const struct etcd *e, int64_t *rev);
/* After etcd_watch_poll returned -1: the revision etcd compacted to when
 * it canceled the watch for that (a full re-list is needed), else 0. */
int64_t etcd_watch_compacted(const struct etcd *e);
/* Use the next endpoint for the next watch (and first for calls). */
void etcd_endpoint_next(struct etcd *e);
size_t etcd_endpoint_count(const struct etcd *e);
/* Wake etcd_watch_poll from another thread. */
void etcd_wakeup(struct etcd *e);

/* base64 (standard alphabet, padded). Return malloc'd NUL-terminated
 * strings, or NULL (bad input for decode, out of memory). */
char *etcd_b64_encode(const void *data, size_t len);
char *etcd_b64_decode(const char *s, size_t *lenp);

#endif
