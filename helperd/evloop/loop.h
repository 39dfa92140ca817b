/* loop: a level-triggered epoll loop with per-fd watches and one-shot
 * timers. A watch or timer is owned by its caller; loop_del() makes any
 * event already fetched for it in this round a no-op, so a callback may
 * close other watches' fds safely; loop_timer_del() likewise stops a timer
 * that is due in this round. Objects freed from callbacks must be freed
 * only after the round (loop_defer).
 *
 * Timers are a binary min-heap of the callers' struct loop_timer, keyed on
 * (when, order armed); the earliest one bounds epoll_wait's timeout. No fd
 * and no syscall per timer (timerfd would cost one fd each and a
 * timerfd_settime per re-arm: relay deadlines are re-armed on every
 * connection step, and fds are what helperd runs out of). A loop with no
 * timer armed and no event waits for ever.
 *
 * Threads: a loop is run by one thread (the first to call loop_run_once).
 * Timers, loop_defer and loop_run_once are that thread's only (or any
 * thread's before the loop first runs): asserted. The watch functions
 * touch only the watch and epoll (epoll_ctl is thread-safe): another
 * thread may add a watch to a running loop (the main thread gives each
 * relay worker its acceptors), but a watch is changed by one thread at a
 * time. */
#ifndef MESH_LOOP_H
#define MESH_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;

typedef void (*loop_cb)(void *arg, uint32_t events);
typedef void (*loop_timer_cb)(void *arg);

struct loop_watch {
	int fd;                 /* -1 when not registered */
	uint32_t events;
	int parked;             /* fd kept, but out of epoll (loop_park) */
	loop_cb cb;
	void *arg;
};

/* A one-shot timer. Zero it, or loop_timer_init it, before first use. */
struct loop_timer {
	int64_t when;           /* util_now_ms_mono() it is due at */
	uint64_t seq;           /* order armed: equal whens run FIFO */
	size_t idx;             /* heap slot + 1; 0: not armed */
	loop_timer_cb cb;
	void *arg;
};

int loop_new(struct loop **out);
/* Runs what is deferred; every timer must have been disarmed. */
void loop_free(struct loop *l);

/* Register fd with events (EPOLLIN/EPOLLOUT/...). 0/-1. */
int loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events,
    loop_cb cb, void *arg);
/* Change the events of a registered watch (no syscall when unchanged). */
int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events);
/* Take a watch that wants no event out of epoll, keeping its fd: epoll
 * reports EPOLLHUP/EPOLLERR even for an empty interest set, over and over
 * on a socket shut down both ways. The next loop_mod() with events puts it
 * back. */
void loop_park(struct loop *l, struct loop_watch *w);
/* Unregister (does not close fd). Safe on an unregistered watch. */
void loop_del(struct loop *l, struct loop_watch *w);

/* Set a timer's callback (not armed). */
void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
/* Arm t to run cb(arg) once, in the first round at or after when_ms
 * (monotonic ms, util_now_ms_mono); re-arms an armed timer. A timer armed
 * from a timer callback for a time already past runs in the next round,
 * not this one. 0, or -1 (out of memory: t is not armed). */
int loop_timer_at(struct loop *l, struct loop_timer *t, int64_t when_ms);
/* loop_timer_at, delay_ms (>= 0) from now. */
int loop_timer_add(struct loop *l, struct loop_timer *t, int64_t delay_ms);
/* Arm t for when_ms unless it is armed for earlier already. 0/-1. */
int loop_timer_min(struct loop *l, struct loop_timer *t, int64_t when_ms);
/* Disarm (safe on a timer not armed; from any callback, t's own too). */
void loop_timer_del(struct loop *l, struct loop_timer *t);
static inline int
loop_timer_armed(const struct loop_timer *t)
{
	return t->idx != 0;
}
/* How many timers are armed (tests, stats). */
size_t loop_timer_count(const struct loop *l);

/* Whether the caller may use l: it is the thread running l, or l has not
 * run yet. For assert()s of "loop thread only". */
int loop_is_mine(const struct loop *l);

/* Run fn(arg) after the current round of events (used to free objects that
 * events of this round may still point to). 0/-1. */
int loop_defer(struct loop *l, void (*fn)(void *), void *arg);

/* Have loop_run_once call fn(arg) at the end of every round, after its
 * events, due timers and deferred functions (helperd publishes what the
 * round changed there). NULL: nothing. */
void loop_set_round_end(struct loop *l, void (*fn)(void *), void *arg);

/* Wait for events at most timeout_ms (-1: no limit) and until the
 * earliest timer is due; dispatch the events, then the timers that are due,
 * then the deferred functions. 0, or -1 on a fatal epoll error. */
int loop_run_once(struct loop *l, int timeout_ms);
/* After a round that handled events, poll for up to us microseconds
 * before sleeping, as long as such spins keep finding events (0: never;
 * the default). Saves the wake-up of a thread that would have slept
 * for less than that, at the cost of the CPU time spun. */
void loop_set_spin(struct loop *l, int us);
/* The round's handlers read n bytes: after a round that read more than
 * a TLS record's worth (a stream, not a request) the loop does not spin. */
void loop_note_bytes(struct loop *l, size_t n);

/* When the last loop_run_once's wait returned (util_now_ms_mono): what
 * had arrived by then has been dispatched. 0 before the first. */
int64_t loop_woke_ms(const struct loop *l);

#endif
