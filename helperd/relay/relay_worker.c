/* relay_worker: the relay's event loops, one thread each, and moving a
 * connection from one to another; relay_new/free/recheck/count. */
#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls.h"

/* Moving a connection to another worker ----------------------------- */

static void
end_detach(struct worker *w, struct end *e, int *fd, uint32_t *ev)
{
	*fd = -1;
	*ev = 0;
	if (e->x != NULL)
		e->x->detach(w, e, fd, ev);
}

/* After this round (no event of c may still run here), hand c over. */
static void
conn_post_move(void *arg)
{
	struct conn *c = arg;
	struct worker *from = c->w;
	struct relay *r = from->r;
	struct worker *to = r->workers[(from->id + 1) % r->n_workers];
	struct job j = { .c = c, .fd = -1 };

	if (relay_worker_post(to, &j) != 0)
		relay_worker_adopt(from, c);          /* stopping: keep it */
}

void
relay_conn_move(struct conn *c)
{
	struct worker *w = c->w;

	if (c->pair != NULL)
		c->pair->pair = NULL;
	c->pair = NULL;
	end_detach(w, &c->app, &c->move_fd[0], &c->move_ev[0]);
	end_detach(w, &c->net, &c->move_fd[1], &c->move_ev[1]);
	relay_conn_unlink(w, c);
	if (loop_defer(w->loop, conn_post_move, c) != 0)
		relay_worker_adopt(w, c);
}

/* Take over a connection detached by another worker (or by this one,
 * when the move could not be made). */
void
relay_worker_adopt(struct worker *w, struct conn *c)
{
	struct end *ends[2] = { &c->app, &c->net };
	char why[256];
	int failed = 0;

	relay_conn_link(w, c);
	for (int i = 0; i < 2; i++) {
		if (ends[i]->x != NULL && ends[i]->x->attach(w, ends[i],
		    c->move_fd[i], c->move_ev[i]) != 0)
			failed = 1;     /* the end is closed below */
		c->move_fd[i] = -1;
	}
	if (failed) {
		relay_conn_close(c, 1, "epoll: %s", strerror(errno));
		return;
	}
	/* An intention change while it was in transit reached neither
	 * worker's list: check once more. */
	if (!relay_allows(w, c->src, c->dst, why, sizeof(why))) {
		relay_conn_close(c, 1, "%s", why);
		return;
	}
	log_debug("conn %llu %s => %s moved to worker %d (bulk)",
	    (unsigned long long)c->id, c->src, c->dst, w->id);
	relay_conn_relay(c, DIR_BOTH);
}

/* Queue j for w. -1 when w is stopping (or out of memory). */
/* Workers ---------------------------------------------------------- */

int
relay_worker_post(struct worker *w, const struct job *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->qlock);
	if (w->stop) {
		pthread_mutex_unlock(&w->qlock);
		return -1;
	}
	if (w->qn == w->qcap) {
		size_t cap = w->qcap ? w->qcap * 2 : 64;
		struct job *q = realloc(w->q, cap * sizeof(*q));

		if (q == NULL) {
			pthread_mutex_unlock(&w->qlock);
			return -1;
		}
		w->q = q;
		w->qcap = cap;
	}
	w->q[w->qn++] = *j;
	pthread_mutex_unlock(&w->qlock);
	if (write(w->wake.fd, &one, sizeof(one)) != sizeof(one))
		log_warn("worker %d: wake-up failed: %m", w->id);
	return 0;
}

static void
worker_kick(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->wake.fd, &one, sizeof(one)) != sizeof(one))
		log_warn("worker %d: wake-up failed: %m", w->id);
}

/* Close every connection of w whose pair is now denied. */
static size_t
worker_recheck(struct worker *w, const char *why)
{
	struct conn *c, *next;
	size_t closed = 0;

	for (c = w->conns; c != NULL; c = next) {
		char reason[256];

		next = c->next;
		if (c->closed || c->src[0] == '\0' || c->dst[0] == '\0')
			continue;
		/* A session between streams carries nothing: the check of
		 * its next stream decides (relay_stream.c). */
		if (c->pooled)
			continue;
		if (relay_allows(w, c->src, c->dst, reason,
		    sizeof(reason))) {
			relay_obs_check(c, 1, NULL);
			continue;
		}
		relay_obs_check(c, 0, reason);
		c->obs.result = OBS_CUT;
		log_warn("closing %s connection %llu %s => %s (%s:%d): %s "
		    "after %s", c->kind == CONN_OUT ? "outbound" : "inbound",
		    (unsigned long long)c->id, c->src, c->dst,
		    c->peer_addr[0] ? c->peer_addr : "local", c->peer_port,
		    reason, why);
		relay_conn_close(c, 1, "%s", reason);
		closed++;
	}
	return closed;
}

static void
worker_wake(void *arg, uint32_t events)
{
	struct worker *w = arg;
	struct job *q;
	size_t n;
	char why[sizeof(w->recheck_why)];
	uint64_t v;
	int recheck, leaf_ready;

	(void)events;
	if (read(w->wake.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("worker %d: eventfd: %m", w->id);
	pthread_mutex_lock(&w->qlock);
	q = w->q;
	n = w->qn;
	w->q = NULL;
	w->qn = w->qcap = 0;
	recheck = w->recheck;
	w->recheck = 0;
	leaf_ready = w->leaf_ready;
	w->leaf_ready = 0;
	util_strlcpy(why, w->recheck_why, sizeof(why));
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 0; i < n; i++) {
		if (q[i].c != NULL)
			relay_worker_adopt(w, q[i].c);
		else if (q[i].ml != NULL)
			relay_mem_job(w, q[i].ml, q[i].side);
		else
			relay_outbound_start(w, q[i].fd, &q[i].ss, q[i].pd);
	}
	free(q);
	if (leaf_ready)
		relay_leaf_redial(w);
	if (recheck) {
		size_t closed = worker_recheck(w, why);
		if (closed > 0)
			log_warn("%s: closed %zu connection(s) that are now "
			    "denied", why, closed);
	}
}

/* Timeouts of w's connections. */
static void
worker_tick(struct worker *w, int64_t now)
{
	struct relay *r = w->r;
	struct conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->closed && relay_obs_killed(c)) {
			c->obs.result = OBS_KILLED;
			relay_conn_close(c, 1, "killed through the API");
			continue;
		}
		if (c->closed || c->deadline == 0 || now < c->deadline)
			continue;
		switch (c->st) {
		case ST_DIAL:
			if (c->kind == CONN_OUT) {
				char why[128];

				snprintf(why, sizeof(why), "connect timed out "
				    "after %ld ms",
				    r->env.conf->connect_timeout_ms);
				relay_outbound_retry(c, why);
				break;
			}
			relay_conn_close(c, 1, "connect timed out after %ld ms",
			    r->env.conf->connect_timeout_ms);
			break;
		case ST_HANDSHAKE:
			relay_conn_close(c, 1, "TLS handshake timed out after %ld ms",
			    r->env.conf->handshake_timeout_ms);
			break;
		case ST_RELAY:
			relay_conn_close(c, 1, "idle for %ld s",
			    r->env.conf->idle_timeout_s);
			break;
		case ST_LEAF:
			relay_conn_close(c, 1, "no certificate for %s within "
			    "connect_timeout (%ld ms)", c->src,
			    r->env.conf->connect_timeout_ms);
			break;
		case ST_OPEN:
		case ST_IDLE:
		case ST_POOL:
			relay_stream_timeout(c);
			break;
		}
	}
}

/* The worker's timer, every WORKER_TICK_MS while it holds connections.
 * Deadlines are judged as of the last wait: what had arrived by then was
 * handled. A round that waited for a CPU (a loaded machine) must not
 * time out a dial whose answer came meanwhile; the next round sees it. */
#define WORKER_TICK_MS 100

static void
worker_due(void *arg)
{
	struct worker *w = arg;

	worker_tick(w, loop_woke_ms(w->loop));
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t all;

	/* Signals are the main thread's (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	loop_timer_init(&w->tick, worker_due, w);
	for (;;) {
		int stop;

		pthread_mutex_lock(&w->qlock);
		stop = w->stop;
		pthread_mutex_unlock(&w->qlock);
		if (stop)
			break;
		/* No connection: nothing is due, the wait has no end (a
		 * job or a stop comes through the eventfd). */
		if (w->conns != NULL && !loop_timer_armed(&w->tick) &&
		    loop_timer_add(w->loop, &w->tick, WORKER_TICK_MS) != 0)
			log_err("relay worker %d: cannot arm its timer", w->id);
		if (loop_run_once(w->loop, w->conns != NULL &&
		    !loop_timer_armed(&w->tick) ? WORKER_TICK_MS : -1) != 0)
			break;
	}
	loop_timer_del(w->loop, &w->tick);
	/* Stopping: no more sockets are accepted here (the listening
	 * sockets stay open until every worker has stopped), no more jobs
	 * are taken; close what is left (and what was on its way here), in
	 * this thread, and free it. */
	for (int i = 0; i < ACC_N; i++) {
		loop_del(w->loop, &w->acc[i].w);
		emfile_fini(&w->acc[i].eg);     /* no resume after this */
	}
	pthread_mutex_lock(&w->qlock);
	w->stop = 1;
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 0; i < w->qn; i++) {
		struct conn *c = w->q[i].c;

		if (c == NULL && w->q[i].ml != NULL) {
			relay_mem_job_drop(w, w->q[i].ml, w->q[i].side);
			continue;
		}
		if (c == NULL) {
			free(w->q[i].pd);
			close(w->q[i].fd);
			continue;
		}
		relay_conn_link(w, c);
		c->app.w.fd = c->move_fd[0];
		c->net.w.fd = c->move_fd[1];
	}
	w->qn = 0;
	while (w->conns != NULL)
		relay_conn_close(w->conns, 1, "helperd stopping");
	loop_run_once(w->loop, 0);
	return NULL;
}

static void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	free(w->q);

	for (size_t i = 0; i < w->n_pool; i++)
		free(w->pool[i]);
	for (size_t i = 0; i < w->n_pipes; i++) {
		close(w->pipes[i][0]);
		close(w->pipes[i][1]);
	}
	if (w->wake.fd >= 0) {
		loop_del(w->loop, &w->wake);
		close(w->wake.fd);
	}
	loop_free(w->loop);
	policy_put(w->pol);
	pthread_mutex_destroy(&w->qlock);
	free(w);
}

static struct worker *
worker_new(struct relay *r, int id)
{
	struct worker *w = calloc(1, sizeof(*w));
	int efd;

	if (w == NULL)
		return NULL;
	w->r = r;
	w->id = id;
	w->wake.fd = -1;
	for (int i = 0; i < ACC_N; i++) {
		w->acc[i].w.fd = -1;
	}
	pthread_mutex_init(&w->qlock, NULL);
	if (loop_new(&w->loop) != 0)
		goto err;
	loop_set_spin(w->loop, r->env.conf->busy_poll_us);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0 || loop_add(w->loop, &w->wake, efd, EPOLLIN, worker_wake,
	    w) != 0) {
		if (efd >= 0)
			close(efd);
		goto err;
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		goto err;
	{
		char name[16];          /* for top -H, perf, gdb */

		snprintf(name, sizeof(name), "relay%d", id);
		pthread_setname_np(w->thread, name);
	}
	return w;
err:
	worker_free(w);
	return NULL;
}

/* Public ----------------------------------------------------------- */

int
relay_new(struct relay **out, const struct relay_env *env, int workers)
{
	struct relay *r;

	assert(env->ops != NULL && env->ops->leaf != NULL);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->env = *env;
	pthread_mutex_init(&r->port_mu, NULL);
	pthread_mutex_init(&r->leaf_mu, NULL);
	pthread_mutex_init(&r->pool_mu, NULL);
	if (sockdiag_open(&r->sd) != 0) {
		/* Fail closed: without it no app connection can be proven
		 * to be the one its registration names. */
		log_err("sock_diag unavailable (%m): connections from the "
		    "shim cannot be checked against their registration and "
		    "are refused (mesh connections from other nodes still "
		    "work)");
		r->sd = NULL;
	}
	relay_obs_init(r);
	relay_sock_cc_init(r, env->conf->loopback_congestion,
	    env->conf->mesh_congestion);
	r->mesh4.fd = r->out4.fd = r->out6.fd = -1;
	r->out4.w.fd = r->out6.w.fd = -1;
	r->leaf_w.fd = -1;
	loop_timer_init(&r->exp_timer, relay_expire, r);
	if (workers < 1)
		workers = 1;
	if (workers > RELAY_MAX_WORKERS)
		workers = RELAY_MAX_WORKERS;
	for (int i = 0; i < workers; i++) {
		if ((r->workers[i] = worker_new(r, i)) == NULL) {
			relay_free(r);
			return -1;
		}
		r->n_workers++;
	}
	if (relay_leaf_init(r) != 0) {
		relay_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

/* Main thread. All workers stop before any is freed (a worker may hand a
 * connection to another until it stops). */
void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	relay_assert_loop(r);
	loop_del(r->env.loop, &r->out4.w);
	loop_del(r->env.loop, &r->out6.w);
	loop_timer_del(r->env.loop, &r->exp_timer);
	relay_leaf_fini(r);
	emfile_fini(&r->out4.eg);
	emfile_fini(&r->out6.eg);
	for (size_t i = 0; i < r->n_workers; i++) {
		struct worker *w = r->workers[i];

		pthread_mutex_lock(&w->qlock);
		w->stop = 1;
		pthread_mutex_unlock(&w->qlock);
		worker_kick(w);
	}
	for (size_t i = 0; i < r->n_workers; i++)
		pthread_join(r->workers[i]->thread, NULL);
	for (size_t i = 0; i < r->n_workers; i++)
		worker_free(r->workers[i]);
	relay_pool_fini(r);
	if (r->mesh4.fd >= 0)
		close(r->mesh4.fd);
	if (r->out4.fd >= 0)
		close(r->out4.fd);
	if (r->out6.fd >= 0)
		close(r->out6.fd);
	for (size_t i = 0; i < RELAY_PORTS; i++) {
		free(r->pending[i]);
		if (r->parked[i] != NULL) {
			close(r->parked[i]->fd);
			free(r->parked[i]);
		}
	}
	sockdiag_close(r->sd);
	relay_obs_fini(r);
	pthread_mutex_destroy(&r->port_mu);
	pthread_mutex_destroy(&r->leaf_mu);
	free(r);
}

size_t
relay_recheck(struct relay *r, const char *why)
{
	/* Each worker re-checks its own connections, at once, against a
	 * snapshot that holds the change. */
	relay_assert_loop(r);
	policy_sync(r->env.policy);
	for (size_t i = 0; i < r->n_workers; i++) {
		struct worker *w = r->workers[i];

		pthread_mutex_lock(&w->qlock);
		w->recheck = 1;
		util_strlcpy(w->recheck_why, why, sizeof(w->recheck_why));
		pthread_mutex_unlock(&w->qlock);
		worker_kick(w);
	}
	return 0;
}

size_t
relay_count(struct relay *r)
{
	return atomic_load(&r->n_conns);
}
