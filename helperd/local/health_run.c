/* health_run: one run of a check and when the next comes (see health.h).
 * A run is a small chain of non-blocking steps (resolve off the loop,
 * connect; for HTTP(S) health_http.c goes on) with one deadline and one
 * end, health_check_done(), that closes the socket and counts the result
 * (health_status.c). Each check has its own timer: start, poll its name
 * lookup, time out, expire its TTL. A TCP check passes when it connects. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health_int.h"
#include "helperd/local/resolve.h"

#define RESOLVE_POLL_MS 100     /* a name lookup is polled this often */

static void check_connect(struct hcheck *c, const struct sockaddr_storage *ss,
    socklen_t sl);

/* When a check runs next, from the start of the run that just ended.
 * Consul's rule: every interval, passing or failing. Two exceptions,
 * both bounded: a check that has never passed (a service starting after
 * helperd) probes every HEALTH_STARTUP_MS during its first
 * HEALTH_STARTUP_WINDOW_MS, so the service is dialled soon after it
 * listens; helperd's own check confirms a failure short of its threshold
 * after HEALTH_CONFIRM_MS rather than a whole interval. */
static int64_t
next_run(const struct hcheck *c)
{
	long d = c->interval_ms;

	if (!c->passed_once && c->started - c->created <
	    HEALTH_STARTUP_WINDOW_MS && d > HEALTH_STARTUP_MS)
		d = HEALTH_STARTUP_MS;
	else if (c->is_default && c->failures > 0 &&
	    c->status == CATALOG_PASSING && d > HEALTH_CONFIRM_MS)
		d = HEALTH_CONFIRM_MS;
	return c->started + d;
}

/* Close what a run holds (socket, TLS session, lookup). */
void
health_run_release(struct hcheck *c)
{
	if (c->w.fd >= 0)
		loop_del(c->hl->env.loop, &c->w);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	resolve_free(c->res);
	c->res = NULL;
	c->phase = PH_IDLE;
	c->len = 0;
	c->sent = 0;
}

/* The one end of a check run: release it, record the result. */
void
health_check_done(struct hcheck *c, enum catalog_status st,
    const char *fmt, ...)
{
	char out[CATALOG_OUTPUT_MAX];
	va_list ap;

	health_run_release(c);
	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	health_check_result(c, st, "%s", out);
	c->next_run = next_run(c);
	health_check_arm(c);
}

/* A run that helperd itself could not start (out of fds or memory: a
 * flood of connections, issue 12's emfile test) says nothing about the
 * service: no verdict, the status stays, and the run is tried again in a
 * second. A check that failed because helperd was starved would turn a
 * working service into a refused one after the flood (issue 19). */
static void
check_no_verdict(struct hcheck *c, const char *what, int err)
{
	int64_t now = util_now_ms_mono();

	health_run_release(c);
	if (now >= c->no_verdict_log_at) {
		log_warn("health: %s check %s not run: %s: %s (helperd's own "
		    "limit, not the service's: status kept, retried in 1 s)",
		    c->svc_name, c->id, what, strerror(err));
		c->no_verdict_log_at = now + 10000;
	}
	c->next_run = now + 1000;
	health_check_arm(c);
}

static int
local_errno(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM || err == ENOSPC;
}

/* Running a check ------------------------------------------------------ */

void
health_check_start(struct hcheck *c, int64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];

	c->started = now;
	c->deadline = now + c->timeout_ms;
	if (resolve_literal(c->host, c->port, &ss, &sl)) {
		check_connect(c, &ss, sl);
	} else if ((c->res = resolve_start(c->host, c->port, why,
	    sizeof(why))) == NULL) {
		health_check_done(c, CATALOG_CRITICAL, "resolve %s: %s",
		    c->host, why);
	} else {
		/* A name: looked up off the loop; its timer polls it. */
		c->phase = PH_RESOLVE;
	}
	health_check_arm(c);
}

void
health_check_resolved(struct hcheck *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];
	int rc = resolve_poll(c->res, &ss, &sl, why, sizeof(why));

	if (rc == 0)
		return;
	resolve_free(c->res);
	c->res = NULL;
	if (rc < 0) {
		health_check_done(c, CATALOG_CRITICAL, "resolve %s: %s",
		    c->host, why);
		return;
	}
	check_connect(c, &ss, sl);
}

static void
check_connect(struct hcheck *c, const struct sockaddr_storage *ss,
    socklen_t sl)
{
	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		if (local_errno(errno))
			check_no_verdict(c, "socket", errno);
		else
			health_check_done(c, CATALOG_CRITICAL, "socket: %s",
			    strerror(errno));
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		health_check_done(c, CATALOG_CRITICAL, "connect %s:%d: %s",
		    c->host, c->port, strerror(errno));
		return;
	}
	c->phase = PH_CONNECT;
	if (loop_add(c->hl->env.loop, &c->w, c->fd, EPOLLOUT,
	    health_check_event, c) != 0) {
		if (local_errno(errno))
			check_no_verdict(c, "epoll", errno);
		else
			health_check_done(c, CATALOG_CRITICAL, "epoll: %s",
			    strerror(errno));
	}
}

/* PH_CONNECT: the socket connected (a TCP check passes, an HTTP one goes
 * on) or failed. */
static void
check_connected(struct hcheck *c)
{
	socklen_t el = sizeof(int);
	int e = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
		e = errno;
	if (e == EINPROGRESS || e == EALREADY)
		return;
	if (e == 0) {
		/* SO_ERROR is 0 while connecting too: only a writable
		 * socket has connected. */
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };

		if (poll(&pf, 1, 0) != 1)
			return;
	}
	if (e != 0) {
		health_check_done(c, CATALOG_CRITICAL, "connect %s:%d: %s",
		    c->host, c->port, strerror(e));
		return;
	}
	if (c->def.type == CONF_CHECK_TCP) {
		health_check_done(c, CATALOG_PASSING, "TCP connect %s:%d: "
		    "Success", c->host, c->port);
		return;
	}
	if (health_http_start(c))
		health_check_done(c, c->vst, "%s", c->vout);
}

void
health_check_event(void *arg, uint32_t events)
{
	struct hcheck *c = arg;

	(void)events;
	switch (c->phase) {
	case PH_CONNECT:
		check_connected(c);
		return;
	case PH_HANDSHAKE:
	case PH_SEND:
	case PH_READ:
		if (health_http_event(c))
			health_check_done(c, c->vst, "%s", c->vout);
		return;
	case PH_IDLE:
	case PH_RESOLVE:
		return;
	}
}

int
health_check_pollin(const struct hcheck *c)
{
	return c->phase == PH_READ || (c->tls != NULL &&
	    !gnutls_record_get_direction(c->tls));
}

void
health_check_free_now(void *arg)
{
	struct hcheck *c = arg;

	free(c->buf);
	free(c);
}

/* Stop a check and free it once the loop has finished the round it may
 * be in (an event of its socket may be waiting in that round). */
void
health_check_free(struct health *hl, struct hcheck *c)
{
	if (c == NULL)
		return;
	health_run_release(c);
	loop_timer_del(hl->env.loop, &c->t);
	if (loop_defer(hl->env.loop, health_check_free_now, c) != 0)
		health_check_free_now(c);
}

/* When it runs ----------------------------------------------------------- */

/* A run past its deadline: events may be waiting that the loop has not
 * handled yet (it was busy: a reload, a burst of connections). Handle
 * them first, so that a stalled loop is never blamed on the service. */
static int
overdue_but_ready(struct hcheck *c)
{
	struct pollfd pf = { .fd = c->fd };

	if (c->phase == PH_RESOLVE) {
		health_check_resolved(c);
		return c->phase != PH_RESOLVE;
	}
	pf.events = health_check_pollin(c) ? POLLIN : POLLOUT;
	if (c->fd < 0 || poll(&pf, 1, 0) != 1)
		return 0;
	health_check_event(c, 0);
	return c->phase == PH_IDLE;
}

/* When c is due next, as its state says: a TTL that passes expires; a
 * name lookup is polled; a run times out; an idle check runs again. */
void
health_check_arm(struct hcheck *c)
{
	struct loop *l = c->hl->env.loop;
	int64_t when;

	if (c->def.type == CONF_CHECK_TTL) {
		if (c->status == CATALOG_CRITICAL) {
			loop_timer_del(l, &c->t);
			return;
		}
		when = c->ttl_expiry;
	} else if (c->phase == PH_RESOLVE) {
		when = util_now_ms_mono() + RESOLVE_POLL_MS;
		if (when > c->deadline)
			when = c->deadline;
	} else if (c->phase != PH_IDLE) {
		when = c->deadline;
	} else {
		when = c->next_run;
	}
	if (loop_timer_at(l, &c->t, when) != 0)
		log_err("health: out of memory: check %s is not timed", c->id);
}

/* A check's timer: start it, time it out, poll its lookup, expire its
 * TTL; then armed for what comes next. */
void
health_check_timer(void *arg)
{
	struct hcheck *c = arg;
	int64_t now = util_now_ms_mono();

	(void)resolve_reap(0);
	if (c->def.type == CONF_CHECK_TTL) {
		if (c->status != CATALOG_CRITICAL && now >= c->ttl_expiry) {
			char out[96];

			snprintf(out, sizeof(out), "TTL expired (no update "
			    "within %lds)", c->def.ttl_ms / 1000);
			health_check_set(c, CATALOG_CRITICAL, out);
		}
	} else if (c->phase == PH_RESOLVE && now < c->deadline) {
		health_check_resolved(c);
	} else if (c->phase != PH_IDLE && now >= c->deadline) {
		if (overdue_but_ready(c)) {
			health_check_arm(c);
			return;
		}
		if (c->phase == PH_RESOLVE)
			health_check_done(c, CATALOG_CRITICAL, "resolve %s: "
			    "timed out after %ldms", c->host, c->timeout_ms);
		else if (c->def.type == CONF_CHECK_HTTP)
			health_check_done(c, CATALOG_CRITICAL, "HTTP GET %s: "
			    "timed out after %ldms", c->def.target,
			    c->timeout_ms);
		else
			health_check_done(c, CATALOG_CRITICAL, "connect %s:%d: "
			    "timed out after %ldms", c->host, c->port,
			    c->timeout_ms);
	} else if (c->phase == PH_IDLE && now >= c->next_run) {
		health_check_start(c, now);
	}
	health_check_arm(c);
}
