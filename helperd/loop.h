/* loop: a level-triggered epoll loop with per-fd watches and a periodic
 * tick. A watch is owned by its caller; loop_del() makes any event already
 * fetched for it in this round a no-op, so a callback may close other
 * watches' fds safely. Objects freed from callbacks must be freed only after
 * the round (loop_defer). */
#ifndef MESH_LOOP_H
#define MESH_LOOP_H

#include <stdint.h>

struct loop;

typedef void (*loop_cb)(void *arg, uint32_t events);

struct loop_watch {
	int fd;                 /* -1 when not registered */
	uint32_t events;
	int parked;             /* fd kept, but out of epoll (loop_park) */
	loop_cb cb;
	void *arg;
};

int loop_new(struct loop **out);
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

/* Run fn(arg) after the current round of events (used to free objects that
 * events of this round may still point to). 0/-1. */
int loop_defer(struct loop *l, void (*fn)(void *), void *arg);

/* Have loop_run_once call lock(arg) after waiting and unlock(arg) before
 * returning: the events of a round are handled holding the lock. */
void loop_set_lock(struct loop *l, void (*lock)(void *),
    void (*unlock)(void *), void *arg);

/* Wait at most timeout_ms for events and dispatch them, then run the
 * deferred functions. 0, or -1 on a fatal epoll error. */
int loop_run_once(struct loop *l, int timeout_ms);

/* When the last loop_run_once's wait returned (util_now_ms_mono): what
 * had arrived by then has been dispatched. 0 before the first. */
int64_t loop_woke_ms(const struct loop *l);

#endif
