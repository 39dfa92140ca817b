/* mem: the in-memory link between the two TLS ends of a same-node pair
 * (relay_mem.c) and the relay's buffer pools (relay_io.c), driven
 * directly: small writes share a chunk, large ones change hands without
 * a copy, a full link says EAGAIN until it is read, the end of stream
 * and a reset reach the other side, and buffers a worker hands on come
 * back to another worker through the shared pool instead of malloc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helperd/relay/relay_int.h"

struct rig {
	struct relay r;
	struct worker w;
	struct conn c;
	struct end e[2];
	struct mlink *ml;
};

static struct rig *
rig_new(void)
{
	struct rig *g = calloc(1, sizeof(*g));

	cr_assert_not_null(g);
	pthread_mutex_init(&g->r.pool_mu, NULL);
	g->w.r = &g->r;
	g->c.w = &g->w;
	cr_assert_not_null(g->ml = relay_mem_new());
	for (int i = 0; i < 2; i++) {
		g->e[i].c = &g->c;
		relay_mem_attach(g->ml, i, &g->e[i], &g->w);
		/* Nobody to tell: no loop in this test. */
		relay_mem_owner(&g->e[i], NULL);
	}
	return g;
}

static void
rig_free(struct rig *g)
{
	for (int i = 0; i < 2; i++)
		if (g->e[i].ml != NULL)
			relay_mem_close(&g->w, &g->e[i], 0);
	relay_mem_unref(&g->w, g->ml);
	for (size_t i = 0; i < g->w.n_pool; i++)
		free(g->w.pool[i]);
	relay_pool_fini(&g->r);
	free(g);
}

static char *
filled(int byte, size_t len)
{
	char *b = malloc(RELAY_BUF);

	cr_assert_not_null(b);
	memset(b, byte, len);
	return b;
}

Test(mem, large_writes_change_hands_small_ones_are_copied)
{
	struct rig *g = rig_new();
	char *big = filled('a', 40000), *given = big, *small = filled('b', 100);
	char *got;
	size_t off;
	ssize_t n;

	cr_assert_eq(relay_mem_give(&g->e[0], &big, 0, 40000), 0);
	cr_assert_null(big, "a large buffer is taken over");
	cr_assert_eq(relay_mem_give(&g->e[0], &small, 0, 100), 0);
	cr_assert_not_null(small, "a small write is copied into the last "
	    "chunk and stays the caller's");
	cr_assert_eq(relay_mem_avail(&g->e[1]), 40100);
	n = relay_mem_take(&g->e[1], &got, &off);
	cr_assert_eq(n, 40100);
	cr_assert_eq(got, given, "the very buffer comes out");
	cr_assert_eq(off, 0);
	cr_assert_eq(got[39999], 'a');
	cr_assert_eq(got[40000], 'b');
	cr_assert_eq(got[40099], 'b');
	cr_assert_eq(relay_mem_avail(&g->e[1]), 0);
	n = relay_mem_take(&g->e[1], &got, &off);
	cr_assert_eq(n, -1);
	cr_assert_eq(errno, EAGAIN);
	free(given);
	free(small);
	rig_free(g);
}

Test(mem, full_link_says_eagain_until_read)
{
	struct rig *g = rig_new();
	char *b = NULL, *got;
	size_t off;
	int k = 0;

	/* Large writes until the link is full. */
	for (;;) {
		b = filled('0' + k, RELAY_BUF - 100);
		if (relay_mem_give(&g->e[0], &b, 100, RELAY_BUF - 200) != 0)
			break;
		cr_assert_null(b);
		k++;
		cr_assert_lt(k, 64, "the link never fills");
	}
	cr_assert_eq(errno, EAGAIN);
	cr_assert_not_null(b, "a refused buffer stays the caller's");
	cr_assert_gt(k, 1);
	/* The first one out, from its offset, frees room for one more. */
	cr_assert_eq(relay_mem_take(&g->e[1], &got, &off),
	    (ssize_t)(RELAY_BUF - 200));
	cr_assert_eq(off, 100);
	cr_assert_eq(got[off], '0');
	free(got);
	cr_assert_eq(relay_mem_give(&g->e[0], &b, 100, RELAY_BUF - 200), 0,
	    "room for one more after a take");
	/* In order, every one. */
	for (int i = 1; i <= k; i++) {
		cr_assert_eq(relay_mem_take(&g->e[1], &got, &off),
		    (ssize_t)(RELAY_BUF - 200));
		cr_assert_eq(got[off + 5], '0' + i);
		free(got);
	}
	rig_free(g);
}

Test(mem, copies_and_hand_overs_mix_in_order)
{
	struct rig *g = rig_new();
	char out[300], *big = filled('y', 20000), *got;
	size_t off;

	/* Handshake-time writes are copies; relay-time ones hand over. */
	cr_assert_eq(relay_mem_push(&g->e[0], "hello", 5), 5);
	cr_assert_eq(relay_mem_give(&g->e[0], &big, 0, 20000), 0);
	cr_assert_eq(relay_mem_push(&g->e[0], "zz", 2), 2);
	cr_assert_eq(relay_mem_pull(&g->e[1], out, 3), 3);
	cr_assert_eq(memcmp(out, "hel", 3), 0);
	/* The rest of the first chunk, then the given one, then a copy. */
	cr_assert_eq(relay_mem_take(&g->e[1], &got, &off), 2);
	cr_assert_eq(memcmp(got + off, "lo", 2), 0);
	relay_buf_put(&g->w, got);
	cr_assert_eq(relay_mem_take(&g->e[1], &got, &off), 20002);
	cr_assert_eq(got[off], 'y');
	cr_assert_eq(memcmp(got + off + 20000, "zz", 2), 0);
	free(got);
	rig_free(g);
}

Test(mem, end_of_stream_and_reset_reach_the_other_side)
{
	struct rig *g = rig_new();
	char *b = filled('q', 8000), *got, out[16];
	size_t off;

	cr_assert_eq(relay_mem_give(&g->e[0], &b, 0, 8000), 0);
	relay_mem_shut(&g->e[0]);
	cr_assert(relay_mem_readable(&g->e[1]));
	cr_assert_eq(relay_mem_take(&g->e[1], &got, &off), 8000,
	    "bytes written before the end are still read");
	free(got);
	cr_assert_eq(relay_mem_take(&g->e[1], &got, &off), 0);
	cr_assert_eq(relay_mem_pull(&g->e[1], out, sizeof(out)), 0);
	/* A reset: what the other side reads fails, what it writes too. */
	b = filled('r', 8000);
	relay_mem_close(&g->w, &g->e[1], 1);
	cr_assert_eq(relay_mem_give(&g->e[0], &b, 0, 8000), -1);
	cr_assert_eq(errno, EPIPE);
	cr_assert_eq(relay_mem_push(&g->e[0], "x", 1), -1);
	cr_assert_eq(errno, EPIPE, "a copy to a reset side fails too");
	free(b);
	rig_free(g);

	g = rig_new();
	b = filled('s', 8000);
	cr_assert_eq(relay_mem_give(&g->e[1], &b, 0, 8000), 0);
	relay_mem_close(&g->w, &g->e[1], 1);
	cr_assert_eq(relay_mem_take(&g->e[0], &got, &off), -1);
	cr_assert_eq(errno, ECONNRESET, "a reset drops what was in flight");
	rig_free(g);
}

Test(mem, buffers_handed_on_come_back_through_the_shared_pool)
{
	struct relay *rp = calloc(1, sizeof(*rp));   /* large: not on the stack */
	struct worker a = { .r = rp }, b = { .r = rp };
	char *seen[RELAY_POOL_MAX + 1];

	cr_assert_not_null(rp);
	pthread_mutex_init(&rp->pool_mu, NULL);
	/* Worker a writes, worker b reads and gives the buffers back to
	 * its own pool: b's pool overflows into the shared one... */
	for (int i = 0; i <= RELAY_POOL_MAX; i++)
		seen[i] = relay_buf_get(&a);
	for (int i = 0; i <= RELAY_POOL_MAX; i++)
		relay_buf_put(&b, seen[i]);
	cr_assert_leq(b.n_pool, RELAY_POOL_MAX);
	cr_assert_gt(rp->n_shared, 0, "an overflowing pool spills");
	/* ... and a, run dry, takes its buffers from there, not malloc. */
	for (int i = 0; i < 4; i++) {
		char *x = relay_buf_get(&a);
		int known = 0;

		for (int j = 0; j <= RELAY_POOL_MAX; j++)
			known |= x == seen[j];
		cr_assert(known, "buffer %d came from malloc", i);
		relay_buf_put(&a, x);
	}
	for (size_t i = 0; i < a.n_pool; i++)
		free(a.pool[i]);
	for (size_t i = 0; i < b.n_pool; i++)
		free(b.pool[i]);
	relay_pool_fini(rp);
	free(rp);
}
