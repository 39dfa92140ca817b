/* loop: one-shot timers (order, re-arm, delete from a callback, many)
 * and the watches beside them. Real time, short delays: what is checked
 * is order and count, never speed. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/util.h"
#include "helperd/evloop/loop.h"

#define MAXLOG 8192

struct rec {
	struct loop *l;
	int log[MAXLOG];
	int n;
};

struct ttimer {
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
	struct ttimer *m = arg;

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
tm_init(struct ttimer *m, struct rec *r, int id)
{
	*m = (struct ttimer){ .r = r, .id = id };
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
	struct ttimer m[6];
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
	struct ttimer m;
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
	struct ttimer a, b;

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
	struct ttimer m;
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
	struct ttimer a, b, c;
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
	struct ttimer *m = calloc(N, sizeof(*m));
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
	struct ttimer *m = arg;
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
	struct ttimer a, ev;
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
	struct ttimer m;

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

/* Busy polling (loop_set_spin) ---------------------------------------- */

struct spin_rig {
	struct loop *l;
	struct loop_watch w;
	int efd;
	int seen;
	unsigned delay_us;
	size_t bytes;           /* each event reads this much (loop_note_bytes) */
};

static void
on_efd(void *arg, uint32_t ev)
{
	struct spin_rig *g = arg;
	uint64_t v;

	(void)ev;
	if (read(g->efd, &v, sizeof(v)) == sizeof(v))
		g->seen++;
	loop_note_bytes(g->l, g->bytes);
}

static void
spin_rig_init(struct spin_rig *g, int spin_us)
{
	memset(g, 0, sizeof(*g));
	cr_assert_eq(loop_new(&g->l), 0);
	g->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(g->efd, 0);
	cr_assert_eq(loop_add(g->l, &g->w, g->efd, EPOLLIN, on_efd, g), 0);
	loop_set_spin(g->l, spin_us);
}

static void
spin_rig_fini(struct spin_rig *g)
{
	loop_del(g->l, &g->w);
	close(g->efd);
	loop_free(g->l);
}

/* A round that handles an event: the next wait may spin. */
static void
busy_round(struct spin_rig *g)
{
	uint64_t one = 1;
	int before = g->seen;

	cr_assert_eq(write(g->efd, &one, sizeof(one)), sizeof(one));
	cr_assert_eq(loop_run_once(g->l, 1000), 0);
	cr_assert_eq(g->seen, before + 1);
}

static void *
write_later(void *arg)
{
	struct spin_rig *g = arg;
	uint64_t one = 1;

	usleep(g->delay_us);
	if (write(g->efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

static long
sleeps(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;     /* voluntary switches: the thread slept */
}

static int64_t
thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
two_cpus(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    CPU_COUNT(&set) >= 2;
}

Test(loop_spin, an_event_during_the_spin_costs_no_sleep)
{
	struct spin_rig g;
	pthread_t t;
	long s0;

	if (!two_cpus())
		cr_skip_test("one CPU: the loop never spins (next test)");
	/* A long spin (200 ms) so that the writer, 1 ms later, lands in it
	 * however loaded the machine is. */
	spin_rig_init(&g, 200000);
	busy_round(&g);
	g.delay_us = 1000;
	cr_assert_eq(pthread_create(&t, NULL, write_later, &g), 0);
	s0 = sleeps();
	cr_assert_eq(loop_run_once(g.l, 5000), 0);
	cr_assert_eq(sleeps(), s0, "the loop slept instead of spinning");
	cr_assert_eq(g.seen, 2);
	pthread_join(t, NULL);
	spin_rig_fini(&g);
}

/* How much CPU one idle wait of 30 ms burns after a busy round. */
static int64_t
idle_wait_cpu_us(struct spin_rig *g)
{
	int64_t c0;

	busy_round(g);
	c0 = thread_cpu_us();
	cr_assert_eq(loop_run_once(g->l, 30), 0);
	return thread_cpu_us() - c0;
}

Test(loop_spin, off_idle_or_confined_it_does_not_spin)
{
	struct spin_rig g;
	cpu_set_t one, all;
	int64_t us;

	/* Off. */
	spin_rig_init(&g, 0);
	us = idle_wait_cpu_us(&g);
	cr_assert_lt(us, 5000, "spun %lld us with spinning off", (long long)us);
	spin_rig_fini(&g);

	/* Confined to one CPU: it would spin on the CPU the thread it waits
	 * for needs. */
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	spin_rig_init(&g, 20000);
	us = idle_wait_cpu_us(&g);
	cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
	cr_assert_lt(us, 5000, "spun %lld us on one CPU", (long long)us);
	spin_rig_fini(&g);
}

Test(loop_spin, stops_when_spins_find_nothing)
{
	struct spin_rig g;
	int64_t us = 0;

	if (!two_cpus())
		cr_skip_test("one CPU: the loop never spins");
	spin_rig_init(&g, 20000);
	/* Two spins in a row find nothing: it stops spinning (until a
	 * probe, one round in 64). */
	(void)idle_wait_cpu_us(&g);
	(void)idle_wait_cpu_us(&g);
	for (int i = 0; i < 5; i++)
		us += idle_wait_cpu_us(&g);
	cr_assert_lt(us, 15000, "still spinning: %lld us of CPU in 5 idle "
	    "waits", (long long)us);
	spin_rig_fini(&g);
}

/* One wait after a round that read rd bytes, an event 1 ms into it:
 * whether the thread slept. */
static int
slept_after(struct spin_rig *g, size_t rd)
{
	pthread_t t;
	long s0, s1;

	g->bytes = rd;
	busy_round(g);
	g->bytes = 0;
	g->delay_us = 1000;
	cr_assert_eq(pthread_create(&t, NULL, write_later, g), 0);
	s0 = sleeps();
	cr_assert_eq(loop_run_once(g->l, 5000), 0);
	s1 = sleeps();
	pthread_join(t, NULL);
	return s1 != s0;
}

Test(loop_spin, not_after_a_round_that_moved_a_stream)
{
	struct spin_rig g;

	if (!two_cpus())
		cr_skip_test("one CPU: the loop never spins");
	spin_rig_init(&g, 200000);
	/* A request's worth: it spins (as in the first test). */
	cr_assert(!slept_after(&g, 512), "slept after a small read");
	/* A stream's (more than a TLS record): it sleeps at once. */
	cr_assert(slept_after(&g, 65536), "spun after a 64 KiB read");
	/* The next small round spins again. */
	cr_assert(!slept_after(&g, 512), "slept after a small read, later");
	spin_rig_fini(&g);
}
