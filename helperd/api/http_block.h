/* http_block: Consul's blocking queries. Each answer of a watched
 * endpoint (catalog, health, intentions, CA roots) gets an X-Consul-Index:
 * a number that changes when, and only when, that endpoint's answer
 * changes (helperd keeps a digest of the last answer per endpoint and
 * query, and takes a new index from one counter when it differs). A
 * request with ?index=N (the index it last saw) and an answer still at N
 * is held (suspended) until the answer changes or ?wait (default 5m, at
 * most 10m) runs out; held requests run again within 100 ms of a change
 * of the catalog, the intentions or the CA, and at least once a second
 * (http_req.h: HTTP_RECHECK_MS; the server's timer, armed only while
 * any is held).
 * Bounded: HTTP_BLOCK_MAX held in all, HTTP_BLOCK_PER_CLIENT per client
 * address; over that, the answer comes at once. */
#ifndef MESH_HTTP_BLOCK_H
#define MESH_HTTP_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_BLOCK_MAX        256
#define HTTP_BLOCK_PER_CLIENT 64
#define HTTP_BLOCK_KEYS       512     /* endpoints + queries remembered */
#define HTTP_BLOCK_WAIT_MS    (5 * 60 * 1000)
#define HTTP_BLOCK_WAIT_MAX_MS (10 * 60 * 1000)

struct http_block;

struct http_block *http_block_new(void);
void http_block_free(struct http_block *b);

/* Does path take X-Consul-Index and ?index (GET only)? */
int http_block_watched(const char *method, const char *path);
/* The index of the answer body[len] to key (path + query without index
 * and wait). */
uint64_t http_block_index(struct http_block *b, const char *key,
    const char *body, size_t len);
/* Parse ?wait ("30s", "5m", "500ms"; Consul's units). ms, or -1. */
long http_block_wait_ms(const char *s);

/* Held requests: may one more from client (an address string) be held?
 * Then hold/release count it. */
int http_block_may_hold(struct http_block *b, const char *client);
void http_block_hold(struct http_block *b, const char *client);
void http_block_release(struct http_block *b, const char *client);
size_t http_block_held(const struct http_block *b);

#endif
