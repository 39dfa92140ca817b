/* snap: lock-free publication of an immutable, counted object (snap.h). */
#include "helperd/evloop/snap.h"

#include <assert.h>
#include <sched.h>
#include <stddef.h>

void
snap_obj_init(struct snap_obj *o, void (*fn)(struct snap_obj *))
{
	atomic_init(&o->refs, 1);
	o->free = fn;
}

struct snap_obj *
snap_obj_ref(struct snap_obj *o)
{
	if (o != NULL)
		atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	return o;
}

void
snap_put(struct snap_obj *o)
{
	if (o == NULL)
		return;
	/* Release: our reads of o happen before its free; acquire: the
	 * freeing thread sees every other thread's reads done. */
	if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
		o->free(o);
}

void
snap_init(struct snap *s)
{
	atomic_init(&s->cur, NULL);
	atomic_init(&s->gen, 0);
	for (unsigned i = 0; i < SNAP_READERS; i++)
		atomic_init(&s->hazard[i], NULL);
	s->writer = pthread_self();
}

struct snap_obj *
snap_get(struct snap *s, unsigned slot)
{
	_Atomic(struct snap_obj *) *hz;
	struct snap_obj *o;

	assert(slot < SNAP_READERS);
	hz = &s->hazard[slot];
	/* Announce, then check that it is still current: a writer that
	 * swapped it out either sees our slot (and waits for us) or we see
	 * its swap (and try again). Both sides are seq_cst (store, then
	 * load of the other's variable). */
	for (;;) {
		o = atomic_load_explicit(&s->cur, memory_order_acquire);
		if (o == NULL)
			return NULL;
		atomic_store_explicit(hz, o, memory_order_seq_cst);
		if (atomic_load_explicit(&s->cur, memory_order_seq_cst) == o)
			break;
	}
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	atomic_store_explicit(hz, NULL, memory_order_release);
	return o;
}

uint64_t
snap_gen(const struct snap *s)
{
	return atomic_load_explicit(&s->gen, memory_order_acquire);
}

struct snap_obj *
snap_peek(struct snap *s)
{
	assert(pthread_equal(pthread_self(), s->writer));
	return atomic_load_explicit(&s->cur, memory_order_relaxed);
}

void
snap_publish(struct snap *s, struct snap_obj *o)
{
	struct snap_obj *old;

	assert(pthread_equal(pthread_self(), s->writer));
	old = atomic_exchange_explicit(&s->cur, o, memory_order_seq_cst);
	atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
	if (old == NULL)
		return;
	/* A reader that announced old before our swap is about to count
	 * it (or to see the swap and retry): let it finish. */
	for (unsigned i = 0; i < SNAP_READERS; i++)
		while (atomic_load_explicit(&s->hazard[i],
		    memory_order_seq_cst) == old)
			sched_yield();
	snap_put(old);
}

void
snap_fini(struct snap *s)
{
	snap_publish(s, NULL);
}
