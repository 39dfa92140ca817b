/* snap: one immutable, reference-counted object, published by one writer
 * thread and read by other threads without a lock.
 *
 * The writer replaces the current object with snap_publish(); a reader
 * takes a reference with snap_get() and drops it with snap_put() when it
 * likes; the last reference frees the object (on whichever thread drops
 * it). An object never changes once published: a reader sees one whole
 * generation or the next, never a mix.
 *
 * Taking a reference safely (the object may be replaced and its last
 * reference dropped between reading the pointer and counting it) uses one
 * hazard slot per reader thread: the reader announces the pointer in its
 * slot, checks it is still current, counts it, clears the slot; the
 * writer, after swapping the pointer, waits until no slot names the old
 * object before dropping the cell's reference to it. That wait is a few
 * instructions of a reader that was between the two loads (it yields if
 * the reader was preempted there). Plain C11 atomics: sanitizers (TSan)
 * see every ordering. */
#ifndef MESH_SNAP_H
#define MESH_SNAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define SNAP_READERS 64         /* reader slots: one thread each */

/* Embed first in the published object. */
struct snap_obj {
	atomic_long refs;
	void (*free)(struct snap_obj *o);   /* called at the last reference */
};

struct snap {
	_Atomic(struct snap_obj *) cur;
	atomic_uint_fast64_t gen;       /* bumped after each publish */
	_Atomic(struct snap_obj *) hazard[SNAP_READERS];
	pthread_t writer;               /* the one thread that publishes */
};

/* A new object with one reference (the caller's), freed by fn. */
void snap_obj_init(struct snap_obj *o, void (*fn)(struct snap_obj *));
/* Another reference to o (the caller already holds one). */
struct snap_obj *snap_obj_ref(struct snap_obj *o);
/* Drop a reference; any thread. NULL is a no-op. */
void snap_put(struct snap_obj *o);

/* An empty cell; the calling thread becomes its writer. */
void snap_init(struct snap *s);
/* Writer: make o (the caller's reference, taken over; may be NULL) the
 * current object; the previous one loses the cell's reference once no
 * reader can still be taking one. */
void snap_publish(struct snap *s, struct snap_obj *o);
/* Writer: the current object, borrowed (valid until its next publish). */
struct snap_obj *snap_peek(struct snap *s);
/* Writer: drop the current object (readers must have stopped). */
void snap_fini(struct snap *s);

/* Reader using slot (0 .. SNAP_READERS - 1, one thread per slot): a new
 * reference to the current object, or NULL if none. Never blocks. */
struct snap_obj *snap_get(struct snap *s, unsigned slot);
/* How many times the cell was published: cheap, to see whether a
 * reference held is still the current object. */
uint64_t snap_gen(const struct snap *s);

#endif
