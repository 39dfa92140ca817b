/* http_block: indexes and bounds of blocking queries (http_block.h). */
#include "helperd/api/http_block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct bkey {
	char *key;
	uint64_t digest;
	uint64_t index;
	uint64_t used;                  /* last use, for eviction */
};

struct bclient {
	char addr[64];
	size_t held;
};

struct http_block {
	struct bkey keys[HTTP_BLOCK_KEYS];
	size_t n_keys;
	uint64_t next_index;
	uint64_t clock;
	struct bclient clients[HTTP_BLOCK_MAX];
	size_t n_held;
};

struct http_block *
http_block_new(void)
{
	struct http_block *b = calloc(1, sizeof(*b));

	if (b != NULL)
		b->next_index = 1;
	return b;
}

void
http_block_free(struct http_block *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n_keys; i++)
		free(b->keys[i].key);
	free(b);
}

int
http_block_watched(const char *method, const char *path)
{
	static const char *prefixes[] = { "/v1/catalog/", "/v1/health/",
		"/v1/connect/intentions", "/v1/agent/connect/ca/roots",
		"/v1/connect/ca/roots", "/v1/agent/services",
		"/v1/agent/checks" };

	if (strcmp(method, "GET") != 0)
		return 0;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(prefixes); i++)
		if (strncmp(path, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* FNV-1a, 64 bits: a digest to notice a change, not a defence. */
static uint64_t
digest(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t
http_block_index(struct http_block *b, const char *key, const char *body,
    size_t len)
{
	uint64_t d = digest(body, len);
	struct bkey *k = NULL;
	char *copy;

	b->clock++;
	for (size_t i = 0; i < b->n_keys; i++)
		if (strcmp(b->keys[i].key, key) == 0) {
			k = &b->keys[i];
			break;
		}
	if (k != NULL) {
		k->used = b->clock;
		if (k->digest != d) {
			k->digest = d;
			k->index = b->next_index++;
		}
		return k->index;
	}
	if ((copy = strdup(key)) == NULL)
		return b->next_index++;
	if (b->n_keys < HTTP_BLOCK_KEYS) {
		k = &b->keys[b->n_keys++];
	} else {
		/* Forget the least recently asked: its next index is new,
		 * so a watcher of it gets an answer at once, never a stale
		 * hold. */
		k = &b->keys[0];
		for (size_t i = 1; i < b->n_keys; i++)
			if (b->keys[i].used < k->used)
				k = &b->keys[i];
		free(k->key);
	}
	k->key = copy;
	k->digest = d;
	k->index = b->next_index++;
	k->used = b->clock;
	return k->index;
}

long
http_block_wait_ms(const char *s)
{
	char *end;
	double v;

	if (s == NULL || s[0] == '\0')
		return HTTP_BLOCK_WAIT_MS;
	v = strtod(s, &end);
	if (end == s || v < 0 || v > 1e9)
		return -1;
	if (strcmp(end, "ms") == 0)
		;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		v *= 1000;
	else if (strcmp(end, "m") == 0)
		v *= 60 * 1000;
	else if (strcmp(end, "h") == 0)
		v *= 3600 * 1000;
	else
		return -1;
	return v > HTTP_BLOCK_WAIT_MAX_MS ? HTTP_BLOCK_WAIT_MAX_MS : (long)v;
}

static struct bclient *
client_find(struct http_block *b, const char *client)
{
	for (size_t i = 0; i < HTTP_BLOCK_MAX; i++)
		if (b->clients[i].held > 0 &&
		    strcmp(b->clients[i].addr, client) == 0)
			return &b->clients[i];
	return NULL;
}

int
http_block_may_hold(struct http_block *b, const char *client)
{
	struct bclient *c = client_find(b, client);

	return b->n_held < HTTP_BLOCK_MAX &&
	    (c == NULL || c->held < HTTP_BLOCK_PER_CLIENT);
}

void
http_block_hold(struct http_block *b, const char *client)
{
	struct bclient *c = client_find(b, client);

	for (size_t i = 0; c == NULL && i < HTTP_BLOCK_MAX; i++)
		if (b->clients[i].held == 0) {
			c = &b->clients[i];
			util_strlcpy(c->addr, client, sizeof(c->addr));
		}
	if (c == NULL)
		return;
	c->held++;
	b->n_held++;
}

void
http_block_release(struct http_block *b, const char *client)
{
	struct bclient *c = client_find(b, client);

	if (c == NULL)
		return;
	c->held--;
	b->n_held--;
}

size_t
http_block_held(const struct http_block *b)
{
	return b->n_held;
}
