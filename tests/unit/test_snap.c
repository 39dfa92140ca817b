/* Unit tests of helperd/evloop/snap.c: one writer publishing many generations,
 * readers taking and dropping references concurrently. Each reader checks
 * that an object it holds is whole (every word of its payload is its
 * generation, and it was not freed) and that generations never go back;
 * at the end every object published was freed exactly once (and ASan's
 * leak check sees nothing left). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helperd/evloop/snap.h"

#define PAYLOAD 64

struct tobj {
	struct snap_obj obj;            /* first */
	uint64_t gen;
	atomic_int freed;
	uint64_t payload[PAYLOAD];
};

static atomic_ulong n_made, n_freed, n_double;

static void
tobj_free(struct snap_obj *o)
{
	struct tobj *t = (struct tobj *)o;

	/* A second free, or a free of an object still held, would show as
	 * freed != 0 here or in a reader (and as a double free in ASan). */
	if (atomic_exchange(&t->freed, 1) != 0)
		atomic_fetch_add(&n_double, 1);   /* checked on the main thread */
	for (size_t i = 0; i < PAYLOAD; i++)
		t->payload[i] = ~(uint64_t)0;
	atomic_fetch_add(&n_freed, 1);
	free(t);
}

static struct tobj *
tobj_new(uint64_t gen)
{
	struct tobj *t = calloc(1, sizeof(*t));

	cr_assert_not_null(t);
	snap_obj_init(&t->obj, tobj_free);
	t->gen = gen;
	atomic_init(&t->freed, 0);
	for (size_t i = 0; i < PAYLOAD; i++)
		t->payload[i] = gen;
	atomic_fetch_add(&n_made, 1);
	return t;
}

static void
reset_counts(void)
{
	atomic_store(&n_made, 0);
	atomic_store(&n_freed, 0);
	atomic_store(&n_double, 0);
}

TestSuite(snap, .init = reset_counts);

Test(snap, single_thread_refs)
{
	struct snap s;
	struct tobj *a = tobj_new(1), *b = tobj_new(2);
	struct snap_obj *ra, *rb;

	snap_init(&s);
	cr_assert_null(snap_get(&s, 0), "nothing published yet");
	cr_assert_eq(snap_gen(&s), 0);
	snap_publish(&s, &a->obj);
	cr_assert_eq(snap_gen(&s), 1);
	ra = snap_get(&s, 0);
	cr_assert_eq(ra, &a->obj);
	cr_assert_eq(atomic_load(&a->obj.refs), 2, "cell + reader");
	snap_publish(&s, &b->obj);
	/* a lost the cell's reference but the reader still holds it. */
	cr_assert_eq(atomic_load(&a->freed), 0);
	cr_assert_eq(atomic_load(&a->obj.refs), 1);
	cr_assert_eq(((struct tobj *)ra)->payload[PAYLOAD - 1], 1);
	snap_put(ra);
	cr_assert_eq(atomic_load(&n_freed), 1, "a freed at its last put");
	rb = snap_get(&s, 5);
	cr_assert_eq(rb, &b->obj);
	cr_assert_eq(snap_peek(&s), &b->obj);
	snap_fini(&s);
	cr_assert_eq(atomic_load(&n_freed), 1, "b still held");
	snap_put(rb);
	cr_assert_eq(atomic_load(&n_freed), 2);
	cr_assert_eq(atomic_load(&n_made), 2);
}

#define READERS 4
#define GENS    20000
#define HOLD    8               /* references a reader keeps for a while */

struct reader {
	struct snap *s;
	unsigned slot;
	atomic_int *stop, *started;
	unsigned long reads, torn, back, null_after;
	uint64_t last;
};

static void
check_whole(struct reader *rd, const struct tobj *t)
{
	if (atomic_load(&t->freed) != 0)
		rd->torn++;
	for (size_t i = 0; i < PAYLOAD; i++)
		if (t->payload[i] != t->gen) {
			rd->torn++;
			break;
		}
}

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	struct tobj *held[HOLD] = { NULL };
	unsigned k = 0;

	while (!atomic_load(rd->stop)) {
		struct tobj *t = (struct tobj *)snap_get(rd->s, rd->slot);

		if (t == NULL) {
			if (rd->last > 0)
				rd->null_after++;
			continue;
		}
		if (rd->reads++ == 0)
			atomic_fetch_add(rd->started, 1);
		check_whole(rd, t);
		if (t->gen < rd->last)
			rd->back++;
		rd->last = t->gen;
		/* Keep some references across publishes: they must stay
		 * whole until dropped. */
		if (held[k] != NULL) {
			check_whole(rd, held[k]);
			snap_put(&held[k]->obj);
		}
		held[k] = t;
		k = (k + 1) % HOLD;
	}
	for (unsigned i = 0; i < HOLD; i++)
		if (held[i] != NULL) {
			check_whole(rd, held[i]);
			snap_put(&held[i]->obj);
		}
	return NULL;
}

Test(snap, concurrent_readers_one_writer, .timeout = 120)
{
	struct snap s;
	struct reader rd[READERS];
	pthread_t th[READERS];
	atomic_int stop, started;

	atomic_init(&stop, 0);
	atomic_init(&started, 0);
	snap_init(&s);
	snap_publish(&s, &tobj_new(1)->obj);
	for (unsigned i = 0; i < READERS; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].s = &s;
		rd[i].slot = i * 7 % SNAP_READERS;  /* any slot, one each */
		rd[i].stop = &stop;
		rd[i].started = &started;
		cr_assert_eq(pthread_create(&th[i], NULL, reader_main, &rd[i]),
		    0);
	}
	/* Every reader reads while the writer publishes. */
	while (atomic_load(&started) < READERS)
		sched_yield();
	for (uint64_t g = 2; g <= GENS; g++)
		snap_publish(&s, &tobj_new(g)->obj);
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < READERS; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	cr_assert_eq(snap_gen(&s), GENS);
	cr_assert_eq(((struct tobj *)snap_peek(&s))->gen, GENS);
	snap_fini(&s);
	for (unsigned i = 0; i < READERS; i++) {
		cr_assert_gt(rd[i].reads, 0, "reader %u read nothing", i);
		cr_assert_eq(rd[i].torn, 0, "reader %u saw %lu torn or freed "
		    "objects", i, rd[i].torn);
		cr_assert_eq(rd[i].back, 0, "reader %u saw generations go "
		    "back %lu times", i, rd[i].back);
		cr_assert_eq(rd[i].null_after, 0);
	}
	cr_assert_eq(atomic_load(&n_made), GENS);
	cr_assert_eq(atomic_load(&n_freed), GENS, "%lu of %d objects freed",
	    atomic_load(&n_freed), GENS);
	cr_assert_eq(atomic_load(&n_double), 0);
}
