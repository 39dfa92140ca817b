/* store_etcd_int: what store_etcd.c (the KV, lease and watch calls)
 * and store_etcd_http.c (the HTTP/JSON transport to etcd) share. Internal
 * to cluster/: callers use store_etcd.h. */
#ifndef MESH_STORE_ETCD_INT_H
#define MESH_STORE_ETCD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "helperd/cluster/store_etcd.h"

#define ETCD_RESP_MAX    (64u << 20)   /* one unary answer */
#define ETCD_LINE_MAX    (64u << 20)   /* one watch message */
#define ETCD_CONNECT_MS  700
#define ETCD_CALL_MS     2500

struct buf {
	char *p;
	size_t len, cap, max;
	int too_big;
};

struct etcd {
	char *eps[CONF_MAX_ENDPOINTS];
	size_t n_eps, cur;
	struct conf_store_cfg cfg;      /* TLS and auth (endpoints unused) */
	char token[512];                /* auth token, "" without auth */
	int auth_off;                   /* etcd said auth is not enabled */
	CURL *easy;                     /* unary calls */
	CURLM *multi;                   /* the watch */
	CURL *watch;
	struct buf wbuf;
	struct curl_slist *whdr;
	char *wbody;
	etcd_event_cb cb;
	void *cb_arg;
	int watch_created;
	int64_t watch_created_rev;      /* store revision at "created" */
	int64_t watch_compacted;        /* canceled: compacted to this */
	char watch_err[ETCD_ERR_MAX];
	int lease_missing;              /* the last call: lease not found */
	int maybe_sent;                 /* the last call may have reached
	                                   etcd (see etcd_maybe_applied) */
};

/* CURLOPT_WRITEFUNCTION into a struct buf, up to its max (then too_big
 * and 0: curl stops). */
size_t etcd_http_buf_write(char *data, size_t sz, size_t nm, void *arg);
/* What every handle of e gets: timeouts, keepalive, no proxy, TLS. */
void etcd_http_easy_common(struct etcd *e, CURL *c);
/* POST req (a reference taken) to path on the current endpoint, failing
 * over to the others (authenticating first when store.username is set).
 * The answer (new reference), or NULL with err; e->maybe_sent and
 * e->lease_missing say more. */
json_t *etcd_http_call(struct etcd *e, const char *path, json_t *req,
    char *err, size_t errlen);

#endif
