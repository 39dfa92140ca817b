/* loop: one-shot timers (order, re-arm, delete from a callback, many)
 * and the watches beside them. Real time, short delays: what is checked
 * is order and count, never speed. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/util.h"
#include "helperd/evloop/loop.h"

#define MAXLOG 8192

struct rec {
	struct loop *l;
	int log[MAXLOG];
	int n;
};

struct tm {
	struct loop_timer t;
	struct rec *r;
	int id;
	struct loop_timer *victim;      /* deleted when this one runs */
	int rearm;                      /* times to re-arm itself */
	int64_t rearm_delay;
};

static void
on_timer(void *arg)
{
	struct tm *m = arg;

	cr_assert_lt(m->r->n, MAXLOG);
	m->r->log[m->r->n++] = m->id;
	if (m->victim != NULL)
		loop_timer_del(m->r->l, m->victim);
	if (m->rearm > 0) {
		m->rearm--;
		cr_assert_eq(loop_timer_add(m->r->l, &m->t, m->rearm_delay), 0);
	}
}

static void
tm_init(struct tm *m, struct rec *r, int id)
{
	*m = (struct tm){ .r = r, .id = id };
	loop_timer_init(&m->t, on_timer, m);
}

/* Run rounds until no timer is armed (bounded). */
static void
drain(struct loop *l)
{
	for (int i = 0; i < 1000 && loop_timer_count(l) > 0; i++)
		cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(loop_timer_count(l), 0, "timers left armed");
}

Test(loop_timer, order_by_time_then_fifo)
{
	struct rec r = { 0 };
	struct tm m[6];
	/* Armed in this order, due at these offsets (ms). */
	static const int64_t at[6] = { 30, 10, 20, 10, 0, 30 };
	static const int want[6] = { 4, 1, 3, 2, 0, 5 };
	int64_t base;

	cr_assert_eq(loop_new(&r.l), 0);
	base = util_now_ms_mono();
	for (int i = 0; i < 6; i++) {
		tm_init(&m[i], &r, i);
		cr_assert_eq(loop_timer_at(r.l, &m[i].t, base + at[i]), 0);
		cr_assert(loop_timer_armed(&m[i].t));
	}
	cr_assert_eq(loop_timer_count(r.l), 6);
	drain(r.l);
	cr_assert_eq(r.n, 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(r.log[i], want[i], "position %d: timer %d, "
		    "expected %d", i, r.log[i], want[i]);
	for (int i = 0; i < 6; i++)
		cr_assert_not(loop_timer_armed(&m[i].t));
	loop_free(r.l);
}

Test(loop_timer, never_early)
{
	struct rec r = { 0 };
	struct tm m;
	int64_t start, fired;

	cr_assert_eq(loop_new(&r.l), 0);
	tm_init(&m, &r, 7);
	start = util_now_ms_mono();
	cr_assert_eq(loop_timer_add(r.l, &m.t, 25), 0);
	/* A round with no event waits for the timer, not for the bound. */
	while (r.n == 0)
		cr_assert_eq(loop_run_once(r.l, -1), 0);
	fired = util_now_ms_mono();
	cr_assert_geq(fired - start, 25, "ran after %lld ms",
	    (long long)(fired - start));
	loop_free(r.l);
}

Test(loop_timer, rearm_moves_it)
{
	struct rec r = { 0 };
	struct tm a, b;

	cr_assert_eq(loop_new(&r.l), 0);
	tm_init(&a, &r, 1);
	tm_init(&b, &r, 2);
	cr_assert_eq(loop_timer_add(r.l, &a.t, 0), 0);
	cr_assert_eq(loop_timer_add(r.l, &b.t, 5), 0);
	/* Re-arming an armed timer moves it: a now runs after b, once. */
	cr_assert_eq(loop_timer_add(r.l, &a.t, 40), 0);
	cr_assert_eq(loop_timer_count(r.l), 2);
	/* loop_timer_min keeps the earlier time. */
	cr_assert_eq(loop_timer_min(r.l, &a.t, util_now_ms_mono() + 10000),
	    0);
	cr_assert_lt(a.t.when, util_now_ms_mono() + 1000);
	drain(r.l);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.log[0], 2);
	cr_assert_eq(r.log[1], 1);
	loop_free(r.l);
}

Test(loop_timer, rearm_from_its_callback)
{
	struct rec r = { 0 };
	struct tm m;
	int rounds = 0;

	cr_assert_eq(loop_new(&r.l), 0);
	tm_init(&m, &r, 3);
	m.rearm = 4;
	m.rearm_delay = 0;      /* due at once: still one run per round */
	cr_assert_eq(loop_timer_add(r.l, &m.t, 0), 0);
	while (loop_timer_count(r.l) > 0 && rounds < 100) {
		int before = r.n;

		cr_assert_eq(loop_run_once(r.l, 1000), 0);
		cr_assert_leq(r.n - before, 1, "a timer re-armed for now ran "
		    "twice in one round");
		rounds++;
	}
	cr_assert_eq(r.n, 5);
	loop_free(r.l);
}

Test(loop_timer, delete_from_inside_a_callback)
{
	struct rec r = { 0 };
	struct tm a, b, c;
	int64_t now;

	cr_assert_eq(loop_new(&r.l), 0);
	tm_init(&a, &r, 1);
	tm_init(&b, &r, 2);
	tm_init(&c, &r, 3);
	now = util_now_ms_mono();
	/* All three due in the same round: a deletes b (due, not yet run)
	 * and itself (already taken off: a no-op). */
	a.victim = &b.t;
	cr_assert_eq(loop_timer_at(r.l, &a.t, now - 5), 0);
	cr_assert_eq(loop_timer_at(r.l, &b.t, now - 4), 0);
	cr_assert_eq(loop_timer_at(r.l, &c.t, now - 3), 0);
	cr_assert_eq(loop_run_once(r.l, 0), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.log[0], 1);
	cr_assert_eq(r.log[1], 3);
	cr_assert_not(loop_timer_armed(&b.t));
	cr_assert_eq(loop_timer_count(r.l), 0);
	/* Deleting what is not armed is a no-op. */
	loop_timer_del(r.l, &b.t);
	loop_timer_del(r.l, &a.t);
	loop_free(r.l);
}

static int
by_when_seq(const void *a, const void *b)
{
	const struct loop_timer *x = *(struct loop_timer *const *)a;
	const struct loop_timer *y = *(struct loop_timer *const *)b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

Test(loop_timer, many_timers_random_deletes)
{
	enum { N = 5000 };
	static struct rec r;
	struct tm *m = calloc(N, sizeof(*m));
	struct loop_timer **want = calloc(N, sizeof(*want));
	int64_t base;
	unsigned seed = 12345;
	int n_del = 0, n_want = 0;

	cr_assert_not_null(m);
	cr_assert_not_null(want);
	cr_assert_eq(loop_new(&r.l), 0);
	base = util_now_ms_mono() - 1000;       /* all due already */
	for (int i = 0; i < N; i++) {
		tm_init(&m[i], &r, i);
		seed = seed * 1103515245u + 12345u;
		cr_assert_eq(loop_timer_at(r.l, &m[i].t,
		    base + (seed >> 16) % 500), 0);
	}
	/* Re-arm a tenth, delete another tenth. */
	for (int i = 0; i < N; i += 10) {
		seed = seed * 1103515245u + 12345u;
		cr_assert_eq(loop_timer_at(r.l, &m[i].t,
		    base + (seed >> 16) % 500), 0);
		loop_timer_del(r.l, &m[i + 5].t);
		n_del++;
	}
	cr_assert_eq(loop_timer_count(r.l), (size_t)(N - n_del));
	for (int i = 0; i < N; i++)
		if (loop_timer_armed(&m[i].t))
			want[n_want++] = &m[i].t;
	qsort(want, (size_t)n_want, sizeof(*want), by_when_seq);
	/* One round runs every due timer, earliest first. */
	cr_assert_eq(loop_run_once(r.l, 0), 0);
	cr_assert_eq(r.n, n_want);
	for (int k = 0; k < n_want; k++)
		cr_assert_eq(&m[r.log[k]].t, want[k], "position %d", k);
	for (int i = 5; i < N; i += 10)
		cr_assert_not(loop_timer_armed(&m[i].t));
	cr_assert_eq(loop_timer_count(r.l), 0);
	loop_free(r.l);
	free(want);
	free(m);
}

static void
on_pipe(void *arg, uint32_t events)
{
	struct tm *m = arg;
	char c;

	(void)events;
	cr_assert_eq(read(m->r->log[MAXLOG - 1], &c, 1), 1);
	m->r->log[m->r->n++] = -1;
	/* An event's callback may disarm a timer due in the same round. */
	loop_timer_del(m->r->l, m->victim);
}

Test(loop_timer, event_then_timer_same_round)
{
	static struct rec r;
	struct tm a, ev;
	struct loop_watch w = { .fd = -1 };
	int p[2];

	cr_assert_eq(loop_new(&r.l), 0);
	cr_assert_eq(pipe(p), 0);
	r.log[MAXLOG - 1] = p[0];
	tm_init(&a, &r, 1);
	tm_init(&ev, &r, 2);
	ev.victim = &a.t;
	cr_assert_eq(loop_add(r.l, &w, p[0], EPOLLIN, on_pipe, &ev), 0);
	cr_assert_eq(loop_timer_add(r.l, &a.t, 0), 0);
	cr_assert_eq(write(p[1], "x", 1), 1);
	cr_assert_eq(loop_run_once(r.l, 1000), 0);
	cr_assert_eq(r.n, 1, "the timer ran after the event disarmed it");
	cr_assert_eq(r.log[0], -1);
	cr_assert_eq(loop_timer_count(r.l), 0);
	loop_del(r.l, &w);
	close(p[0]);
	close(p[1]);
	loop_free(r.l);
}

/* loop_set_round_end: its function runs once at the end of every round,
 * after the round's timers and deferred functions (helperd publishes the
 * policy there: what a timer or a deferred function changed must be in
 * it). */
static void
log_id(struct rec *r, int id)
{
	cr_assert_lt(r->n, MAXLOG);
	r->log[r->n++] = id;
}

static void
on_defer(void *arg)
{
	log_id(arg, 100);
}

static void
on_round_end(void *arg)
{
	log_id(arg, 200);
}

Test(loop_round_end, after_timers_and_deferred)
{
	struct rec r = { 0 };
	struct tm m;

	cr_assert_eq(loop_new(&r.l), 0);
	loop_set_round_end(r.l, on_round_end, &r);
	tm_init(&m, &r, 1);
	cr_assert_eq(loop_timer_add(r.l, &m.t, 0), 0);
	cr_assert_eq(loop_defer(r.l, on_defer, &r), 0);
	cr_assert_eq(loop_run_once(r.l, 1000), 0);
	cr_assert_eq(r.n, 3, "%d calls in the first round", r.n);
	cr_assert_eq(r.log[0], 1);
	cr_assert_eq(r.log[1], 100);
	cr_assert_eq(r.log[2], 200, "the round's end ran before its work");
	/* An empty round ends too; a removed hook is not called. */
	cr_assert_eq(loop_run_once(r.l, 0), 0);
	cr_assert_eq(r.n, 4);
	cr_assert_eq(r.log[3], 200);
	loop_set_round_end(r.l, NULL, NULL);
	cr_assert_eq(loop_run_once(r.l, 0), 0);
	cr_assert_eq(r.n, 4);
	loop_free(r.l);
}
