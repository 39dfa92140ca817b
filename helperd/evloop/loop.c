#include "helperd/evloop/loop.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
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
	void (*round_end)(void *);          /* loop_set_round_end */
	void *round_end_arg;
	struct deferred *defer;
	size_t n_defer, cap_defer;
	int64_t woke_ms;        /* when the last epoll_wait returned */
	struct loop_timer **heap;       /* min-heap on (when, seq) */
	size_t n_timers, cap_timers;
	uint64_t seq;           /* next timer's arming order */
	pthread_t owner;        /* the thread running the loop */
	int running;            /* owner is set */
	int spin_us;            /* loop_set_spin: 0 never spins */
	int spin_score;         /* how well spinning has paid lately */
	unsigned spin_skipped;  /* rounds not spun since the last probe */
	int spin_cpus;          /* CPUs this thread may run on */
	int64_t spin_cpus_ms;   /* ... as of then */
	int busy;               /* the last round handled events */
	size_t round_bytes;     /* loop_note_bytes during this round */
	size_t last_bytes;      /* ... during the last one */
};

/* Timers ------------------------------------------------------------------ */

static int
timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->idx = i + 1;
}

static void
heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void
heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->n_timers)
			break;
		if (c + 1 < l->n_timers && timer_before(l->heap[c + 1],
		    l->heap[c]))
			c++;
		if (!timer_before(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void
heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->idx - 1;
	struct loop_timer *last;

	assert(i < l->n_timers && l->heap[i] == t);
	t->idx = 0;
	last = l->heap[--l->n_timers];
	if (last == t)
		return;
	heap_set(l, i, last);
	if (i > 0 && timer_before(last, l->heap[(i - 1) / 2]))
		heap_up(l, i);
	else
		heap_down(l, i);
}

void
loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
	t->when = 0;
	t->seq = 0;
	t->idx = 0;
	t->cb = cb;
	t->arg = arg;
}

int
loop_timer_at(struct loop *l, struct loop_timer *t, int64_t when_ms)
{
	assert(loop_is_mine(l));
	assert(t->cb != NULL);
	if (t->idx != 0)
		heap_remove(l, t);
	if (l->n_timers == l->cap_timers) {
		size_t cap = l->cap_timers ? l->cap_timers * 2 : 64;
		struct loop_timer **v = realloc(l->heap, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->heap = v;
		l->cap_timers = cap;
	}
	t->when = when_ms;
	t->seq = l->seq++;
	l->heap[l->n_timers] = t;
	heap_up(l, l->n_timers++);
	return 0;
}

int
loop_timer_add(struct loop *l, struct loop_timer *t, int64_t delay_ms)
{
	return loop_timer_at(l, t, util_now_ms_mono() +
	    (delay_ms > 0 ? delay_ms : 0));
}

int
loop_timer_min(struct loop *l, struct loop_timer *t, int64_t when_ms)
{
	if (t->idx != 0 && t->when <= when_ms)
		return 0;
	return loop_timer_at(l, t, when_ms);
}

void
loop_timer_del(struct loop *l, struct loop_timer *t)
{
	assert(loop_is_mine(l));
	if (t->idx != 0)
		heap_remove(l, t);
}

size_t
loop_timer_count(const struct loop *l)
{
	return l->n_timers;
}

/* ms until the earliest timer, bounded by timeout_ms (-1: none). */
static int
timers_timeout(struct loop *l, int timeout_ms)
{
	int64_t d;

	if (l->n_timers == 0)
		return timeout_ms;
	d = l->heap[0]->when - util_now_ms_mono();
	if (d < 0)
		d = 0;
	if (d > INT_MAX)
		d = INT_MAX;
	return timeout_ms >= 0 && timeout_ms < d ? timeout_ms : (int)d;
}

/* The timers due now, earliest first. One armed by a callback of this
 * round waits for the next round, even if due: a timer re-armed for the
 * past cannot keep the loop here. */
static void
timers_run(struct loop *l)
{
	int64_t now = util_now_ms_mono();
	uint64_t limit = l->seq;

	while (l->n_timers > 0) {
		struct loop_timer *t = l->heap[0];

		if (t->when > now || t->seq >= limit)
			break;
		heap_remove(l, t);
		t->cb(t->arg);
	}
}

int
loop_is_mine(const struct loop *l)
{
	return !l->running || pthread_equal(l->owner, pthread_self());
}

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
	/* Every timer's owner disarmed it when it went: the heap would
	 * otherwise point into freed memory. */
	assert(l->n_timers == 0);
	free(l->heap);
	close(l->epfd);
	free(l);
}

void
loop_set_round_end(struct loop *l, void (*fn)(void *), void *arg)
{
	l->round_end = fn;
	l->round_end_arg = arg;
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
	assert(loop_is_mine(l));
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

/* Spinning pays when it finds work before it gives up: each hit raises
 * the score by one, each miss lowers it by SPIN_MISS, so the loop keeps
 * spinning only while at least SPIN_MISS of SPIN_MISS + 1 spins hit.
 * Below SPIN_ON it spins once every SPIN_PROBE rounds to find out
 * whether the traffic has changed. */
#define SPIN_MAX   16
#define SPIN_ON    4
#define SPIN_MISS  2
#define SPIN_PROBE 64
/* A round that read more than this is moving a stream: what comes next
 * is queued behind it in the socket buffers, so a wake-up's latency is
 * hidden and spinning would only burn the CPU the stream needs (a
 * cross-node stream's receiver spun for 15 % more CPU per GB). Requests
 * and answers are mostly smaller. */
#define SPIN_BYTES 16384

/* A thread that may run on one CPU only would spin on the CPU the
 * thread it waits for needs. Checked once a second (taskset may change
 * it any time). */
static int
spin_alone(struct loop *l)
{
	int64_t now = l->woke_ms;

	if (l->spin_cpus_ms == 0 || now - l->spin_cpus_ms >= 1000) {
		cpu_set_t set;

		l->spin_cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ?
		    CPU_COUNT(&set) : 1;
		l->spin_cpus_ms = now > 0 ? now : 1;
	}
	return l->spin_cpus < 2;
}

static int
spin_wanted(struct loop *l, int timeout)
{
	if (l->spin_us == 0 || !l->busy || timeout == 0 ||
	    l->last_bytes > SPIN_BYTES || spin_alone(l))
		return 0;
	if (l->spin_score >= SPIN_ON)
		return 1;
	if (++l->spin_skipped < SPIN_PROBE)
		return 0;
	l->spin_skipped = 0;
	return 1;
}

/* Poll without sleeping for up to spin_us (and never past the next
 * timer): the events found, or 0. */
static int
spin(struct loop *l, struct epoll_event *evs, int timeout)
{
	int64_t budget = timeout > 0 && (int64_t)timeout * 1000 < l->spin_us ?
	    (int64_t)timeout * 1000 : l->spin_us;
	int64_t until = util_now_us_mono() + budget;
	int n;

	do {
		n = epoll_wait(l->epfd, evs, LOOP_EVENTS, 0);
		if (n != 0)
			break;
		/* Whatever else is runnable on this CPU goes first. */
		sched_yield();
	} while (util_now_us_mono() < until);
	if (n > 0)
		l->spin_score += l->spin_score < SPIN_MAX;
	else
		l->spin_score -= l->spin_score >= SPIN_MISS ? SPIN_MISS :
		    l->spin_score;
	return n > 0 ? n : 0;
}

void
loop_set_spin(struct loop *l, int us)
{
	l->spin_us = us > 0 ? us : 0;
	l->spin_score = SPIN_ON;
}

void
loop_note_bytes(struct loop *l, size_t n)
{
	l->round_bytes += n;
}

int
loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_EVENTS];
	int n = 0, timeout;

	if (!l->running) {
		l->owner = pthread_self();
		l->running = 1;
	}
	assert(pthread_equal(l->owner, pthread_self()));
	timeout = timers_timeout(l, timeout_ms);
	if (spin_wanted(l, timeout))
		n = spin(l, evs, timeout);
	if (n == 0)
		n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout);
	l->woke_ms = util_now_ms_mono();
	if (n < 0) {
		if (errno == EINTR)
			n = 0;
		else {
			log_err("epoll_wait: %m");
			return -1;
		}
	}
	l->busy = n > 0;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		/* A watch deleted earlier in this round has fd -1; its memory
		 * is still valid because frees are deferred. */
		if (w->fd < 0)
			continue;
		w->cb(w->arg, evs[i].events);
	}
	timers_run(l);
	/* Deferred functions may defer more; run until none are left. */
	for (size_t i = 0; i < l->n_defer; i++)
		l->defer[i].fn(l->defer[i].arg);
	l->n_defer = 0;
	if (l->round_end != NULL)
		l->round_end(l->round_end_arg);
	l->last_bytes = l->round_bytes;
	l->round_bytes = 0;
	return 0;
}
