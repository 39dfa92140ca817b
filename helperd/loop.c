#include "helperd/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define LOOP_EVENTS 256

struct deferred {
	void (*fn)(void *);
	void *arg;
};

struct loop {
	int epfd;
	void (*lock)(void *);
	void (*unlock)(void *);
	void *lock_arg;
	struct deferred *defer;
	size_t n_defer, cap_defer;
	int64_t woke_ms;        /* when the last epoll_wait returned */
};

int
loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return -1;
	}
	*out = l;
	return 0;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_defer; i++)
		l->defer[i].fn(l->defer[i].arg);
	free(l->defer);
	close(l->epfd);
	free(l);
}

void
loop_set_lock(struct loop *l, void (*lock)(void *), void (*unlock)(void *),
    void *arg)
{
	l->lock = lock;
	l->unlock = unlock;
	l->lock_arg = arg;
}

int
loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events,
    loop_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->events = events;
	w->parked = 0;
	w->cb = cb;
	w->arg = arg;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		w->fd = -1;
		return -1;
	}
	return 0;
}

int
loop_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->fd < 0)
		return 0;
	if (w->parked) {
		if (events == 0)
			return 0;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
			return -1;
		w->parked = 0;
		w->events = events;
		return 0;
	}
	if (w->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
		return -1;
	w->events = events;
	return 0;
}

void
loop_park(struct loop *l, struct loop_watch *w)
{
	if (w->fd < 0 || w->parked)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->parked = 1;
	w->events = 0;
}

void
loop_del(struct loop *l, struct loop_watch *w)
{
	if (w->fd < 0)
		return;
	if (!w->parked)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
	w->events = 0;
	w->parked = 0;
}

int
loop_defer(struct loop *l, void (*fn)(void *), void *arg)
{
	if (l->n_defer == l->cap_defer) {
		size_t cap = l->cap_defer ? l->cap_defer * 2 : 64;
		struct deferred *d = realloc(l->defer, cap * sizeof(*d));

		if (d == NULL)
			return -1;
		l->defer = d;
		l->cap_defer = cap;
	}
	l->defer[l->n_defer].fn = fn;
	l->defer[l->n_defer].arg = arg;
	l->n_defer++;
	return 0;
}

int64_t
loop_woke_ms(const struct loop *l)
{
	return l->woke_ms;
}

int
loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_EVENTS];
	int n;

	n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout_ms);
	l->woke_ms = util_now_ms_mono();
	if (n < 0) {
		if (errno == EINTR)
			n = 0;
		else {
			log_err("epoll_wait: %m");
			return -1;
		}
	}
	if (l->lock != NULL)
		l->lock(l->lock_arg);
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		/* A watch deleted earlier in this round has fd -1; its memory
		 * is still valid because frees are deferred. */
		if (w->fd < 0)
			continue;
		w->cb(w->arg, evs[i].events);
	}
	/* Deferred functions may defer more; run until none are left. */
	for (size_t i = 0; i < l->n_defer; i++)
		l->defer[i].fn(l->defer[i].arg);
	l->n_defer = 0;
	if (l->unlock != NULL)
		l->unlock(l->lock_arg);
	return 0;
}
