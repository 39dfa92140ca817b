/* intent: Consul's model of intentions: names, precedence, which of two
 * wins, the hash of (source, destination) and the list order. Pure code:
 * no store, no threads. JSON: intent_json.c; the store: intent_db.c. */
#include "helperd/model/intent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "helperd/model/intent_int.h"

void
intent_set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

int
intent_fail(enum intent_err *code, enum intent_err c)
{
	if (code != NULL)
		*code = c;
	return -1;
}

int
intent_valid_name(const char *s)
{
	return s != NULL && (strcmp(s, "*") == 0 || conf_valid_name(s));
}

int
intent_valid_id(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return s[36] == '\0';
}

int
intent_precedence(const char *src, const char *dst)
{
	int sw = strcmp(src, "*") == 0, dw = strcmp(dst, "*") == 0;

	if (!sw && !dw)
		return 9;
	if (sw && !dw)
		return 8;
	if (!sw && dw)
		return 6;
	return 5;
}

void
intent_string(const struct intent *in, char *buf, size_t len)
{
	if (len == 0)
		return;
	snprintf(buf, len, "%s => %s (%s)", in->src, in->dst,
	    in->allow ? "allow" : "deny");
}

const struct intent *
intent_decide(const struct intent *a, const struct intent *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	if (a->precedence != b->precedence)
		return a->precedence > b->precedence ? a : b;
	if (a->allow != b->allow)
		return a->allow ? b : a;
	return a;
}

/* ---- hash of (src, dst) ---- */

static uint64_t
pair_hash(const char *src, const char *dst)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)src; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const unsigned char *p = (const unsigned char *)dst; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

const struct intent *
intent_ht_find(struct intent *const *ht, size_t cap, const char *src,
    const char *dst)
{
	size_t i;

	if (cap == 0)
		return NULL;
	for (i = (size_t)pair_hash(src, dst) & (cap - 1); ht[i] != NULL;
	    i = (i + 1) & (cap - 1)) {
		if (strcmp(ht[i]->src, src) == 0 &&
		    strcmp(ht[i]->dst, dst) == 0)
			return ht[i];
	}
	return NULL;
}

/* A table for v[0..n): load at most 1/2. NULL (ENOMEM) or the table. */
struct intent **
intent_ht_build(struct intent *const *v, size_t n, size_t *capp)
{
	struct intent **ht;
	size_t cap = 16;

	while (cap < 2 * n)
		cap *= 2;
	if ((ht = calloc(cap, sizeof(*ht))) == NULL)
		return NULL;
	for (size_t k = 0; k < n; k++) {
		size_t i = (size_t)pair_hash(v[k]->src, v[k]->dst) & (cap - 1);

		while (ht[i] != NULL)
			i = (i + 1) & (cap - 1);
		ht[i] = v[k];
	}
	*capp = cap;
	return ht;
}

/* ---- order ---- */

int
intent_list_cmp(const void *pa, const void *pb)
{
	const struct intent *a = *(struct intent *const *)pa;
	const struct intent *b = *(struct intent *const *)pb;
	int c;

	if (a->precedence != b->precedence)
		return a->precedence > b->precedence ? -1 : 1;
	if ((c = strcmp(a->src, b->src)) != 0)
		return c;
	return strcmp(a->dst, b->dst);
}
