#include "helperd/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "helperd/ca.h"
#include "helperd/catalog.h"
#include "helperd/helperd.h"
#include "helperd/intent.h"
#include "helperd/loop.h"
#include "helperd/tls.h"
#include "helperd/relay_int.h"
#include "helperd/spiffe.h"

static void conn_step(struct conn *c, int dirs);
static struct conn *inbound_start(struct worker *w, int fd, const char *addr,
    int port, int colocated);
static int outbound_dial(struct conn *c, const char *last);
static int outbound_retry(struct conn *c, const char *why);
static void conn_event(void *arg, uint32_t events);
static int worker_post(struct worker *w, const struct job *j);
static void worker_adopt(struct worker *w, struct conn *c);
static int intention_allows(struct relay *r, const char *src, const char *dst,
    char *why, size_t whylen);

/* Sockets ------------------------------------------------------------ */

static void
sock_tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int
parse_addr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	    .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char p[8];

	snprintf(p, sizeof(p), "%d", port);
	if (getaddrinfo(host, p, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void
addr_string(const struct sockaddr_storage *ss, char *buf, size_t len,
    int *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
		*port = ntohs(s4->sin_port);
	}
}

static int
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* Start a non-blocking connect to host:port. fd or -1 with why. */
static int
dial(const char *host, int port, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (parse_addr(host, port, &ss, &len) != 0) {
		snprintf(why, whylen, "bad address %s:%d", host, port);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	sock_tune(fd);
	if (connect(fd, (struct sockaddr *)&ss, len) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "connect %s:%d: %s", host, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Teardown ----------------------------------------------------------- */

static void
conn_free(void *arg)
{
	free(arg);
}

static void
conn_unlink(struct worker *w, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->n_conns--;
}

static void
conn_link(struct worker *w, struct conn *c)
{
	c->w = w;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
}

static void
end_close(struct worker *w, struct end *e, int abortive)
{
	int fd = e->w.fd;

	if (fd < 0)
		return;
	loop_del(w->loop, &e->w);
	if (e->tls != NULL) {
		gnutls_deinit(e->tls);
		e->tls = NULL;
	}
	relay_buf_put(w, e->rbuf);
	relay_buf_put(w, e->wbuf);
	e->rbuf = e->wbuf = NULL;
	if (abortive) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
}

/* The one exit of every connection. abortive: reset both sockets (the
 * application sees ECONNRESET rather than a clean end of stream). */
static void
conn_close(struct conn *c, int abortive, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
conn_close(struct conn *c, int abortive, const char *fmt, ...)
{
	struct relay *r = c->r;
	struct worker *w = c->w;
	char reason[512];
	va_list ap;

	if (c->closed)
		return;
	c->closed = 1;
	if (c->pair != NULL)
		c->pair->pair = NULL;
	c->pair = NULL;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (abortive)
		log_info("conn %llu %s %s => %s closed: %s",
		    (unsigned long long)c->id, c->kind == CONN_OUT ? "out" : "in",
		    c->src[0] ? c->src : "?", c->dst[0] ? c->dst : "?", reason);
	else
		log_debug("conn %llu %s => %s done: %s",
		    (unsigned long long)c->id, c->src, c->dst, reason);
	end_close(w, &c->app, abortive);
	end_close(w, &c->net, abortive);
	relay_buf_put(w, c->up.buf);
	relay_buf_put(w, c->down.buf);
	c->up.buf = c->down.buf = NULL;
	relay_kpipe_put(w, c->up.kp, c->up.len == 0);
	relay_kpipe_put(w, c->down.kp, c->down.len == 0);
	helperd_lock(r->h);
	tls_peer_release(&c->peer);
	if (c->app_port > 0 && r->inbound_by_port[c->app_port] == c)
		r->inbound_by_port[c->app_port] = NULL;
	helperd_unlock(r->h);
	conn_unlink(w, c);
	atomic_fetch_sub(&r->n_conns, 1);
	loop_defer(w->loop, conn_free, c);
}

static struct conn *
conn_new(struct worker *w, enum conn_kind kind)
{
	struct relay *r = w->r;
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->r = r;
	c->w = w;
	c->id = atomic_fetch_add(&r->next_id, 1) + 1;
	c->kind = kind;
	c->app.w.fd = -1;
	c->net.w.fd = -1;
	c->up.kp[0] = c->up.kp[1] = c->down.kp[0] = c->down.kp[1] = -1;
	c->move_fd[0] = c->move_fd[1] = -1;
	c->peer.h = r->h;
	conn_link(w, c);
	atomic_fetch_add(&r->n_conns, 1);
	return c;
}

static void
end_interest(struct worker *w, struct end *e)
{
	uint32_t ev = 0;

	if (e->w.fd < 0)
		return;
	if (e->tls != NULL && (e->want_in || e->want_out)) {
		/* A TLS operation that would block tells which way. */
		if (e->want_out && gnutls_record_get_direction(e->tls) == 0)
			e->want_in = 1;
	}
	if (e->want_in)
		ev |= EPOLLIN;
	if (e->want_out)
		ev |= EPOLLOUT;
	loop_mod(w->loop, &e->w, ev);
}

static void conn_move(struct conn *c);

/* Directions of a relay round. */
#define DIR_UP   1      /* app -> net */
#define DIR_DOWN 2      /* net -> app */
#define DIR_BOTH (DIR_UP | DIR_DOWN)

/* Pump the directions in dirs (an event on one end concerns one of them:
 * the other is not read only to hear EAGAIN), then set what each end
 * waits for. */
static void
conn_relay(struct conn *c, int dirs)
{
	struct worker *w = c->w;
	const char *why = NULL;
	uint64_t before = c->up.moved + c->down.moved;
	/* Two plain sockets (same node, same_node_mtls = false): splice. */
	int (*fn)(struct worker *, struct end *, struct end *, struct pipe *,
	    const char **) = c->net.tls == NULL ? relay_pump_splice : relay_pump;

	if (dirs & DIR_DOWN) {
		c->net.want_in = c->app.want_out = 0;
		if (fn(w, &c->net, &c->app, &c->down, &why) != 0) {
			conn_close(c, 1, "%s", why);
			return;
		}
	}
	/* Reading may have queued records of GnuTLS's own (a key update
	 * answer) that only the upward pump sends. */
	if ((dirs & DIR_UP) || c->net.wlen > 0) {
		c->app.want_in = c->net.want_out = 0;
		if (fn(w, &c->app, &c->net, &c->up, &why) != 0) {
			conn_close(c, 1, "%s", why);
			return;
		}
	}
	if (c->app.eof_in && c->net.eof_in && c->app.shut_out &&
	    c->net.shut_out && c->up.len == 0 && c->down.len == 0) {
		conn_close(c, 0, "both sides finished");
		return;
	}
	if (c->kind == CONN_OUT && c->net.tls != NULL)
		tls_ticket_save(&c->peer, c->net.tls);
	end_interest(w, &c->app);
	end_interest(w, &c->net);
	/* A same-node pair starts on one worker: a small request and its
	 * answer then cross no thread. Once it carries bulk, its inbound
	 * half moves to another worker so that both TLS ends run at once. */
	if (c->colocated && w->r->n_workers > 1 &&
	    c->up.moved + c->down.moved - before >= RELAY_BULK_BYTES &&
	    ++c->bulky == RELAY_BULK_ROUNDS)
		conn_move(c);
}

/* Moving a connection to another worker ----------------------------- */

static void
end_detach(struct worker *w, struct end *e, int *fd, uint32_t *ev)
{
	*fd = e->w.fd;
	*ev = e->w.events;
	/* fd -1 from here on: events of this round still queued for it
	 * are skipped (loop_run_once). */
	loop_del(w->loop, &e->w);
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

	if (worker_post(to, &j) != 0)
		worker_adopt(from, c);          /* stopping: keep it */
}

static void
conn_move(struct conn *c)
{
	struct worker *w = c->w;

	if (c->pair != NULL)
		c->pair->pair = NULL;
	c->pair = NULL;
	end_detach(w, &c->app, &c->move_fd[0], &c->move_ev[0]);
	end_detach(w, &c->net, &c->move_fd[1], &c->move_ev[1]);
	conn_unlink(w, c);
	if (loop_defer(w->loop, conn_post_move, c) != 0)
		worker_adopt(w, c);
}

/* Take over a connection detached by another worker (or by this one,
 * when the move could not be made). */
static void
worker_adopt(struct worker *w, struct conn *c)
{
	struct end *ends[2] = { &c->app, &c->net };
	char why[256];
	int failed = 0;

	conn_link(w, c);
	for (int i = 0; i < 2; i++) {
		if (c->move_fd[i] < 0)
			continue;
		if (loop_add(w->loop, &ends[i]->w, c->move_fd[i],
		    c->move_ev[i], conn_event, ends[i]) != 0) {
			ends[i]->w.fd = c->move_fd[i];  /* closed below */
			failed = 1;
		}
		c->move_fd[i] = -1;
	}
	if (failed) {
		conn_close(c, 1, "epoll: %s", strerror(errno));
		return;
	}
	/* An intention change while it was in transit reached neither
	 * worker's list: check once more. */
	if (!intention_allows(c->r, c->src, c->dst, why, sizeof(why))) {
		conn_close(c, 1, "%s", why);
		return;
	}
	log_debug("conn %llu %s => %s moved to worker %d (bulk)",
	    (unsigned long long)c->id, c->src, c->dst, w->id);
	conn_relay(c, DIR_BOTH);
}

/* Connection steps ---------------------------------------------------- */

static int
watch_end(struct conn *c, struct end *e, int fd, uint32_t ev)
{
	e->c = c;
	return loop_add(c->w->loop, &e->w, fd, ev, conn_event, e);
}

static int
intention_allows(struct relay *r, const char *src, const char *dst,
    char *why, size_t whylen)
{
	const struct intent *m = NULL;
	int ok;

	helperd_lock(r->h);
	ok = intent_check(r->h->intents, src, dst, r->h->conf.default_allow,
	    &m);
	if (ok)
		;
	else if (m != NULL)
		snprintf(why, whylen, "denied by intention %s (%s => %s, deny)",
		    m->id, m->src, m->dst);
	else
		snprintf(why, whylen, "denied by default_intention = deny");
	helperd_unlock(r->h);
	return ok;
}

static void
start_relay(struct conn *c)
{
	c->st = ST_RELAY;
	if (c->net.tls != NULL)
		relay_tls_buffered(&c->net);
	c->deadline = c->r->h->conf.idle_timeout_s > 0 ?
	    util_now_ms_mono() + c->r->h->conf.idle_timeout_s * 1000 : 0;
	log_debug("conn %llu %s => %s relaying", (unsigned long long)c->id,
	    c->src, c->dst);
	conn_relay(c, DIR_BOTH);
}

/* Dial a local service for c and publish the local port, so that a shim
 * in the service can ask whose connection it is (ACCEPT). One locked
 * step: that shim asks (on the main thread, which holds the lock) as
 * soon as its accept() returns, which on loopback can be before
 * connect() has even returned here. */
static int
dial_published(struct conn *c, const char *addr, int port, char *why,
    size_t whylen)
{
	struct relay *r = c->r;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd;

	helperd_lock(r->h);
	fd = dial(addr, port, why, whylen);
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		char a[INET6_ADDRSTRLEN];
		addr_string(&ss, a, sizeof(a), &c->app_port);
		if (c->app_port > 0 && c->app_port < RELAY_PORTS)
			r->inbound_by_port[c->app_port] = c;
	}
	helperd_unlock(r->h);
	return fd;
}

/* Inbound: handshake done and authorised; dial the local service. */
static void
inbound_dial(struct conn *c)
{
	struct relay *r = c->r;
	const struct conf_service *svc;
	char why[256], addr[CONF_ADDR_MAX];
	int fd, port;

	helperd_lock(r->h);
	svc = catalog_local(r->h->catalog, c->dst);
	if (svc != NULL) {
		util_strlcpy(addr, svc->address, sizeof(addr));
		port = svc->port;
	}
	helperd_unlock(r->h);
	if (svc == NULL) {
		conn_close(c, 1, "service %s is gone", c->dst);
		return;
	}
	fd = dial_published(c, addr, port, why, sizeof(why));
	if (fd < 0 || watch_end(c, &c->app, fd, EPOLLOUT) != 0) {
		if (fd >= 0)
			close(fd);
		conn_close(c, 1, "local service %s: %s", c->dst, why);
		return;
	}
	/* Only the dialling end may wake us until the service answers. */
	loop_mod(c->w->loop, &c->net.w, 0);
	c->st = ST_DIAL;
	c->deadline = util_now_ms_mono() + r->h->conf.connect_timeout_ms;
}

static void
handshake_done(struct conn *c)
{
	char why[256];

	if (c->kind == CONN_OUT) {
		if (log_enabled(LOG_LVL_DEBUG)) {
			char *desc = gnutls_session_get_desc(c->net.tls);

			log_debug("conn %llu mTLS to %s established (%s%s)",
			    (unsigned long long)c->id, c->peer.peer_spiffe,
			    desc != NULL ? desc : "?",
			    c->peer.resumed ? ", resumed" : "");
			gnutls_free(desc);
		}
		start_relay(c);
		return;
	}
	util_strlcpy(c->src, c->peer.peer_service, sizeof(c->src));
	util_strlcpy(c->dst, c->peer.local_service, sizeof(c->dst));
	if (!intention_allows(c->r, c->src, c->dst, why, sizeof(why))) {
		log_warn("denied %s (%s:%d) => %s: %s", c->peer.peer_spiffe,
		    c->peer_addr, c->peer_port, c->dst, why);
		conn_close(c, 1, "%s", why);
		return;
	}
	inbound_dial(c);
}

static void
conn_handshake(struct conn *c)
{
	int rc = gnutls_handshake(c->net.tls);

	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		loop_mod(c->w->loop, &c->net.w,
		    gnutls_record_get_direction(c->net.tls) ? EPOLLOUT :
		    EPOLLIN);
		return;
	}
	if (rc == 0 && tls_handshake_done(&c->peer, c->net.tls) != 0)
		rc = GNUTLS_E_CERTIFICATE_ERROR;
	if (rc < 0) {
		if (c->kind == CONN_IN)
			log_warn("mesh handshake from %s:%d refused: %s%s%s",
			    c->peer_addr, c->peer_port, gnutls_strerror(rc),
			    c->peer.why[0] ? ": " : "", c->peer.why);
		conn_close(c, 1, "TLS handshake failed: %s%s%s",
		    gnutls_strerror(rc), c->peer.why[0] ? ": " : "",
		    c->peer.why);
		return;
	}
	handshake_done(c);
}

static void
conn_dialled(struct conn *c, struct end *e)
{
	int err = 0;
	socklen_t len = sizeof(err);

	struct pollfd pfd = { .fd = e->w.fd, .events = POLLOUT };

	/* SO_ERROR is 0 while a connect is still in progress too: only a
	 * writable (or failed) socket has an answer. */
	if (poll(&pfd, 1, 0) == 0)
		return;
	if (getsockopt(e->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err != 0 && c->kind == CONN_OUT) {
		char why[128];

		snprintf(why, sizeof(why), "connect to mesh peer failed: %s",
		    strerror(err));
		outbound_retry(c, why);
		return;
	}
	if (err != 0) {
		conn_close(c, 1, "connect to local service failed: %s",
		    strerror(err));
		return;
	}
	if (c->kind == CONN_IN || c->net.tls == NULL) {
		/* Inbound: the local service answered. Outbound plain
		 * (same node, same_node_mtls = false): the service did. */
		loop_mod(c->w->loop, &c->app.w, EPOLLIN);
		start_relay(c);
		return;
	}
	c->st = ST_HANDSHAKE;
	c->deadline = util_now_ms_mono() + c->r->h->conf.handshake_timeout_ms;
	conn_handshake(c);
}

static void
conn_step(struct conn *c, int dirs)
{
	switch (c->st) {
	case ST_DIAL:
		conn_dialled(c, c->kind == CONN_OUT ? &c->net : &c->app);
		break;
	case ST_HANDSHAKE:
		conn_handshake(c);
		break;
	case ST_RELAY:
		if (c->r->h->conf.idle_timeout_s > 0)
			c->deadline = util_now_ms_mono() +
			    c->r->h->conf.idle_timeout_s * 1000;
		conn_relay(c, dirs);
		break;
	}
}

/* The two halves of a same-node pair run on one thread: what one just
 * wrote to the socketpair is already in the other's receive queue, so
 * let the other read it now rather than after another epoll_wait. A few
 * turns at most (a handshake goes back and forth). */
static void
pair_kick(struct conn *c)
{
	for (int turn = 0; turn < 4; turn++) {
		struct conn *p = c->pair;
		uint64_t sent;

		if (p == NULL || c->closed)
			return;
		sent = p->net.sent;
		conn_step(p, DIR_DOWN);
		/* Relaying and nothing sent back: the turn ends here. */
		if (p->closed || (p->st == ST_RELAY && p->net.sent == sent))
			return;
		c = p;
	}
}

static void
conn_event(void *arg, uint32_t events)
{
	struct end *e = arg;
	struct conn *c = e->c;
	int dirs = DIR_BOTH;
	enum conn_state st;
	uint64_t sent;

	if (c->closed)
		return;
	/* The end that is not yet part of the relay (the app while we dial
	 * and shake hands) reports only hang-ups: the peer went away. */
	if (c->st != ST_RELAY && e->w.events == 0 &&
	    (events & (EPOLLHUP | EPOLLERR))) {
		conn_close(c, 1, "%s went away before the relay started",
		    e == &c->app ? "application" : "peer");
		return;
	}
	if (c->st == ST_RELAY && !(events & (EPOLLHUP | EPOLLERR))) {
		int app = e == &c->app;

		dirs = 0;
		if (events & EPOLLIN)
			dirs |= app ? DIR_UP : DIR_DOWN;
		if (events & EPOLLOUT)
			dirs |= app ? DIR_DOWN : DIR_UP;
		/* A TLS write that waits may wait for a read (end_interest). */
		if (!app && e->tls != NULL && e->want_out)
			dirs |= DIR_UP;
	}
	sent = c->net.sent;
	st = c->st;
	conn_step(c, dirs);
	if (c->pair != NULL && (st != ST_RELAY || c->net.sent != sent))
		pair_kick(c);
}

/* Hold an outbound socket until its registration arrives (caller holds
 * h->lock). 0, or -1 if it cannot be held (then it is reset). */
static int
park(struct relay *r, int fd, const struct sockaddr_storage *ss, int port)
{
	struct parked *pk;

	if (r->parked[port] != NULL || r->park_len == RELAY_PORTS ||
	    (pk = calloc(1, sizeof(*pk))) == NULL)
		return -1;
	pk->fd = fd;
	pk->ss = *ss;
	pk->expires = util_now_ms_mono() + RELAY_PARK_MS;
	r->parked[port] = pk;
	r->n_parked++;
	r->park_fifo[(r->park_head + r->park_len) % RELAY_PORTS].port = port;
	r->park_fifo[(r->park_head + r->park_len) % RELAY_PORTS].expires =
	    pk->expires;
	r->park_len++;
	return 0;
}

/* Reset a socket (the application sees ECONNRESET). */
static void
reset_fd(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Hand an outbound socket and its registration to the next worker
 * (main thread). */
static void
outbound_post(struct relay *r, int fd, const struct sockaddr_storage *ss,
    struct pending *pd)
{
	struct job j = { .fd = fd, .ss = *ss, .pd = pd };

	if (pd->dst[0] == '\0') {
		/* Refused at CONNECT (logged then): reset, as promised. */
		reset_fd(fd);
		free(pd);
		return;
	}
	if (worker_post(r->workers[r->next_worker], &j) != 0) {
		free(pd);
		reset_fd(fd);
	}
	r->next_worker = (r->next_worker + 1) % r->n_workers;
}

/* Main thread: a socket on the outbound port. With its registration, to
 * a worker; without, held until its CONNECT comes (the shim connects
 * first and registers right after). */
static void
outbound_accepted(void *arg, int fd, const struct sockaddr_storage *ss)
{
	struct relay *r = arg;
	struct pending *pd;
	char addr[INET6_ADDRSTRLEN];
	int port;

	addr_string(ss, addr, sizeof(addr), &port);
	if (!is_loopback(ss) || port <= 0 || port >= RELAY_PORTS) {
		log_warn("outbound connection from %s:%d: not loopback: reset",
		    addr, port);
		reset_fd(fd);
		return;
	}
	if ((pd = r->pending[port]) != NULL) {
		r->pending[port] = NULL;
		r->n_pending--;
		outbound_post(r, fd, ss, pd);
		return;
	}
	if (park(r, fd, ss, port) != 0) {
		log_warn("outbound connection from %s:%d with no registration: "
		    "reset", addr, port);
		reset_fd(fd);
	}
}

/* Worker: an outbound socket and its registration (pd, ours now). */
static void
outbound_start(struct worker *w, int fd, const struct sockaddr_storage *ss,
    struct pending *pd)
{
	struct conn *c;

	if ((c = conn_new(w, CONN_OUT)) == NULL) {
		free(pd);
		close(fd);
		return;
	}
	util_strlcpy(c->src, pd->src, sizeof(c->src));
	util_strlcpy(c->dst, pd->dst, sizeof(c->dst));
	addr_string(ss, c->peer_addr, sizeof(c->peer_addr), &c->peer_port);
	free(pd);
	if (watch_end(c, &c->app, fd, 0) != 0) {
		close(fd);
		conn_close(c, 1, "epoll: %s", strerror(errno));
		return;
	}
	outbound_dial(c, NULL);
}

/* The inbound half of a same-node pair, on c's worker: the other end of
 * a socketpair whose first end c dials. Its peer is c's application. fd,
 * or -1 with why. */
static int
local_pair(struct conn *c, char *why, size_t whylen)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) != 0) {
		snprintf(why, whylen, "socketpair: %s", strerror(errno));
		return -1;
	}
	c->pair = inbound_start(c->w, sv[1], c->peer_addr, c->peer_port, 1);
	if (c->pair != NULL)
		c->pair->pair = c;
	return sv[0];
}

/* Choose an instance of c->dst not tried yet (a local one first, else
 * spread by connection id) and start dialling it. last: why the previous
 * try failed, for the message when none is left. 0, or -1 (closed). */
static int
outbound_dial(struct conn *c, const char *last)
{
	struct relay *r = c->r;
	struct helperd *h = r->h;
	struct catalog_instance all[16], in[16];
	char why[256], err[256], host[CONF_ADDR_MAX];
	struct ca_leaf *leaf = NULL;
	size_t n, k = 0;
	int nfd, port, local, tls;

	/* Choose under the lock and copy out what the dial needs: the
	 * catalog may change under us once it is released. */
	helperd_lock(h);
	n = catalog_instances(h->catalog, c->dst, all, UTIL_ARRAY_LEN(all));
	for (size_t i = 0; i < n; i++) {
		int seen = 0;

		for (int t = 0; t < c->tries; t++)
			if (strcmp(c->tried[t], all[i].node) == 0)
				seen = 1;
		if (!seen)
			in[k++] = all[i];
	}
	if (k == 0 || c->tries >= RELAY_DIAL_TRIES) {
		helperd_unlock(h);
		if (last != NULL)
			conn_close(c, 1, "%s", last);
		else
			conn_close(c, 1, "no instance of %s", c->dst);
		return -1;
	}
	/* A local instance if there is one (it comes first), else spread
	 * connections over the remote instances. */
	n = in[0].local ? 0 : (size_t)(c->id % k);
	util_strlcpy(c->tried[c->tries++], in[n].node, sizeof(c->tried[0]));
	local = in[n].local;
	tls = !local || h->conf.same_node_mtls;
	util_strlcpy(host, tls ? in[n].address : in[n].svc->address,
	    sizeof(host));
	port = tls ? in[n].mesh_port : in[n].svc->port;
	if (tls && (leaf = helperd_leaf(h, c->src, err, sizeof(err))) != NULL)
		ca_leaf_ref(leaf);
	helperd_unlock(h);

	if (tls && leaf == NULL) {
		conn_close(c, 1, "no certificate for %s: %s", c->src, err);
		return -1;
	}
	if (!tls && !intention_allows(r, c->src, c->dst, why, sizeof(why))) {
		conn_close(c, 1, "%s", why);
		return -1;
	}
	/* Same node with mTLS: both TLS ends run here, over a socketpair,
	 * and both halves start on this worker (see conn_relay). */
	if (tls && local)
		nfd = local_pair(c, why, sizeof(why));
	else if (tls)
		nfd = dial(host, port, why, sizeof(why));
	else
		nfd = dial_published(c, host, port, why, sizeof(why));
	if (nfd < 0 || watch_end(c, &c->net, nfd, EPOLLOUT) != 0) {
		if (nfd >= 0)
			close(nfd);
		if (leaf != NULL) {
			helperd_lock(h);
			ca_leaf_unref(leaf);
			helperd_unlock(h);
		}
		return outbound_retry(c, why) ? 0 : -1;
	}
	if (tls) {
		util_strlcpy(c->peer.local_service, c->src,
		    sizeof(c->peer.local_service));
		util_strlcpy(c->peer.expect, c->dst, sizeof(c->peer.expect));
		c->peer.leaf = leaf;
		c->peer.same_process = local;
		c->net.tls = tls_client_new(nfd, &c->peer);
		if (c->net.tls == NULL) {
			conn_close(c, 1, "TLS session setup failed");
			return -1;
		}
	}
	c->st = ST_DIAL;
	c->deadline = util_now_ms_mono() + h->conf.connect_timeout_ms;
	return 0;
}

/* Outbound dial of an instance failed (why): try another one, up to
 * RELAY_DIAL_TRIES in all, before the application sees an error. 1 if a
 * new dial is under way, 0 when the connection was closed. */
static int
outbound_retry(struct conn *c, const char *why)
{
	char last[300];

	snprintf(last, sizeof(last), "%s (node %s)", why,
	    c->tries > 0 ? c->tried[c->tries - 1] : "?");
	end_close(c->w, &c->net, 1);
	c->net.w.fd = -1;
	helperd_lock(c->r->h);
	tls_peer_release(&c->peer);
	helperd_unlock(c->r->h);
	if (c->tries < RELAY_DIAL_TRIES)
		log_info("conn %llu %s => %s: %s: trying another instance",
		    (unsigned long long)c->id, c->src, c->dst, last);
	return outbound_dial(c, last) == 0;
}

/* Inbound: a connection on the mesh port. */
static struct conn *
inbound_start(struct worker *w, int fd, const char *addr, int port,
    int colocated)
{
	struct relay *r = w->r;
	struct conn *c = conn_new(w, CONN_IN);

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->colocated = colocated;
	c->peer.same_process = colocated;
	util_strlcpy(c->peer_addr, addr, sizeof(c->peer_addr));
	c->peer_port = port;
	if (watch_end(c, &c->net, fd, EPOLLIN) != 0) {
		close(fd);
		conn_close(c, 1, "epoll: %s", strerror(errno));
		return NULL;
	}
	c->net.tls = tls_server_new(fd, &c->peer);
	if (c->net.tls == NULL) {
		conn_close(c, 1, "TLS session setup failed");
		return NULL;
	}
	c->st = ST_HANDSHAKE;
	c->deadline = util_now_ms_mono() + r->h->conf.handshake_timeout_ms;
	return c;
}

/* Accept up to 64 connections from lfd and hand each, tuned, to
 * got(arg, ...); refused at once beyond max connections in all. */
static void
accept_some(struct relay *r, int lfd, long max,
    void (*got)(void *, int, const struct sockaddr_storage *), void *arg)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept: %m");
			return;
		}
		if ((long)atomic_load(&r->n_conns) >= max) {
			log_warn("max_conns (%ld) reached: refusing a "
			    "connection", max);
			close(fd);
			continue;
		}
		sock_tune(fd);
		got(arg, fd, &ss);
	}
}

static void
inbound_accepted(void *arg, int fd, const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN];
	int port;

	addr_string(ss, addr, sizeof(addr), &port);
	inbound_start(arg, fd, addr, port, 0);
}

/* The mesh port is readable: accept on this worker. */
static void
acceptor_event(void *arg, uint32_t events)
{
	struct acceptor *a = arg;
	struct relay *r = a->wk->r;
	long max;

	(void)events;
	helperd_lock(r->h);
	max = r->h->conf.max_conns;
	helperd_unlock(r->h);
	accept_some(r, a->w.fd, max, inbound_accepted, a->wk);
}

/* Main thread (holding h->lock): the outbound port is readable. */
static void
listener_event(void *arg, uint32_t events)
{
	struct listener *l = arg;

	(void)events;
	accept_some(l->r, l->w.fd, l->r->h->conf.max_conns,
	    outbound_accepted, l->r);
}

/* Listeners ------------------------------------------------------------ */

/* A listening TCP socket on host:port (0: any); the port in *bound. */
static int
listen_socket(const char *host, int port, int *bound, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;
	char a[INET6_ADDRSTRLEN];

	if (parse_addr(host, port, &ss, &len) != 0) {
		snprintf(err, errlen, "bad listen address %s", host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	len = sizeof(ss);
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(fd, RELAY_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(err, errlen, "listen on %s:%d: %s", host, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	addr_string(&ss, a, sizeof(a), bound);
	return fd;
}

static int
acceptor_add(struct worker *w, int which, int fd, int mesh, uint32_t ev)
{
	struct acceptor *a = &w->acc[which];

	a->wk = w;
	a->mesh = mesh;
	return loop_add(w->loop, &a->w, fd, ev, acceptor_event, a);
}

/* Listen on host:port; every worker polls the socket and whichever wakes
 * first accepts (EPOLLEXCLUSIVE: one is woken, not all). */
static int
listen_on(struct relay *r, struct listener *l, int which, const char *host,
    int port, int *bound, char *err, size_t errlen)
{
	int fd = listen_socket(host, port, bound, err, errlen);

	if (fd < 0)
		return -1;
	l->fd = fd;
	l->r = r;
	l->mesh = which == ACC_MESH4;
	if (!l->mesh) {
		if (loop_add(r->h->loop, &l->w, fd, EPOLLIN, listener_event,
		    l) != 0) {
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < r->n_workers; i++)
		if (acceptor_add(r->workers[i], which, fd, l->mesh,
		    EPOLLIN | EPOLLEXCLUSIVE) != 0) {
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			return -1;      /* relay_free closes fd */
		}
	return 0;
}

int
relay_listen_mesh(struct relay *r, const char *bind_addr, int port,
    int *bound, char *err, size_t errlen)
{
	return listen_on(r, &r->mesh4, ACC_MESH4, bind_addr, port, bound, err,
	    errlen);
}

int
relay_listen_outbound(struct relay *r, int *port, char *err, size_t errlen)
{
	char err6[256];
	int p6;

	if (listen_on(r, &r->out4, -1, "127.0.0.1", 0, port, err,
	    errlen) != 0)
		return -1;
	/* IPv6 loopback on the same port, for AF_INET6 app sockets; not
	 * every host has ::1, so this one is best effort. */
	if (listen_on(r, &r->out6, -1, "::1", *port, &p6, err6,
	    sizeof(err6)) != 0)
		log_info("outbound listener on [::1]:%d unavailable (%s); "
		    "IPv6 apps use v4-mapped addresses", *port, err6);
	return 0;
}

/* Workers ----------------------------------------------------------------- */

/* Queue j for w. -1 when w is stopping (or out of memory). */
static int
worker_post(struct worker *w, const struct job *j)
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
		if (intention_allows(w->r, c->src, c->dst, reason,
		    sizeof(reason)))
			continue;
		log_warn("closing %s connection %llu %s => %s (%s:%d): %s "
		    "after %s", c->kind == CONN_OUT ? "outbound" : "inbound",
		    (unsigned long long)c->id, c->src, c->dst,
		    c->peer_addr[0] ? c->peer_addr : "local", c->peer_port,
		    reason, why);
		conn_close(c, 1, "%s", reason);
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
	int recheck;

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
	util_strlcpy(why, w->recheck_why, sizeof(why));
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 0; i < n; i++) {
		if (q[i].c != NULL)
			worker_adopt(w, q[i].c);
		else
			outbound_start(w, q[i].fd, &q[i].ss, q[i].pd);
	}
	free(q);
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
		if (c->closed || c->deadline == 0 || now < c->deadline)
			continue;
		switch (c->st) {
		case ST_DIAL:
			if (c->kind == CONN_OUT) {
				char why[128];

				snprintf(why, sizeof(why), "connect timed out "
				    "after %ld ms",
				    r->h->conf.connect_timeout_ms);
				outbound_retry(c, why);
				break;
			}
			conn_close(c, 1, "connect timed out after %ld ms",
			    r->h->conf.connect_timeout_ms);
			break;
		case ST_HANDSHAKE:
			conn_close(c, 1, "TLS handshake timed out after %ld ms",
			    r->h->conf.handshake_timeout_ms);
			break;
		case ST_RELAY:
			conn_close(c, 1, "idle for %ld s",
			    r->h->conf.idle_timeout_s);
			break;
		}
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t all;
	int64_t next_tick = 0;

	/* Signals are the main thread's (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		int64_t now;
		int stop;

		pthread_mutex_lock(&w->qlock);
		stop = w->stop;
		pthread_mutex_unlock(&w->qlock);
		if (stop)
			break;
		if (loop_run_once(w->loop, 100) != 0)
			break;
		now = util_now_ms_mono();
		if (now >= next_tick) {
			worker_tick(w, now);
			next_tick = now + 100;
		}
	}
	/* Stopping: no more jobs are taken; close what is left (and what
	 * was on its way here), in this thread, and free it. */
	pthread_mutex_lock(&w->qlock);
	w->stop = 1;
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 0; i < w->qn; i++) {
		struct conn *c = w->q[i].c;

		if (c == NULL) {
			free(w->q[i].pd);
			close(w->q[i].fd);
			continue;
		}
		conn_link(w, c);
		c->app.w.fd = c->move_fd[0];
		c->net.w.fd = c->move_fd[1];
	}
	w->qn = 0;
	while (w->conns != NULL)
		conn_close(w->conns, 1, "helperd stopping");
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
	for (int i = 0; i < ACC_N; i++)
		w->acc[i].w.fd = -1;
	pthread_mutex_init(&w->qlock, NULL);
	if (loop_new(&w->loop) != 0)
		goto err;
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0 || loop_add(w->loop, &w->wake, efd, EPOLLIN, worker_wake,
	    w) != 0) {
		if (efd >= 0)
			close(efd);
		goto err;
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		goto err;
	return w;
err:
	worker_free(w);
	return NULL;
}

/* Public ---------------------------------------------------------------- */

int
relay_new(struct relay **out, struct helperd *h, int workers)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	r->h = h;
	r->mesh4.fd = r->out4.fd = r->out6.fd = -1;
	r->out4.w.fd = r->out6.w.fd = -1;
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
	*out = r;
	return 0;
}

/* Called by the main thread holding h->lock: the workers need it to
 * finish, so it is released while they stop. All stop before any is
 * freed (a worker may hand a connection to another until it stops). */
void
relay_free(struct relay *r)
{
	int locked;

	if (r == NULL)
		return;
	loop_del(r->h->loop, &r->out4.w);
	loop_del(r->h->loop, &r->out6.w);
	locked = helperd_unlock_all(r->h);
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
	helperd_relock(r->h, locked);
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
	free(r);
}

int
relay_pending_add(struct relay *r, int local_port, const char *src,
    const char *dst, uid_t uid)
{
	struct pending *p;

	if (local_port <= 0 || local_port >= RELAY_PORTS)
		return -1;
	p = r->pending[local_port];
	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return -1;
		r->n_pending++;
	}
	util_strlcpy(p->src, src, sizeof(p->src));
	util_strlcpy(p->dst, dst, sizeof(p->dst));
	p->uid = uid;
	p->expires = util_now_ms_mono() + CTL_PENDING_TTL_MS;
	r->pending[local_port] = p;
	if (r->exp_len == RELAY_PORTS) {        /* full: drop the oldest */
		r->exp_head = (r->exp_head + 1) % RELAY_PORTS;
		r->exp_len--;
	}
	r->expiry[(r->exp_head + r->exp_len) % RELAY_PORTS].port = local_port;
	r->expiry[(r->exp_head + r->exp_len) % RELAY_PORTS].expires =
	    p->expires;
	r->exp_len++;
	if (r->parked[local_port] != NULL) {
		/* The socket came first: place it now. */
		struct parked *pk = r->parked[local_port];

		r->parked[local_port] = NULL;
		r->n_parked--;
		r->pending[local_port] = NULL;
		r->n_pending--;
		outbound_post(r, pk->fd, &pk->ss, p);
		free(pk);
	}
	return 0;
}

int
relay_inbound_lookup(struct relay *r, int port, char *spiffe,
    size_t spiffelen, char *addr, size_t addrlen, int *src_port)
{
	struct conn *c;

	if (port <= 0 || port >= RELAY_PORTS ||
	    (c = r->inbound_by_port[port]) == NULL)
		return -1;
	/* Same node without TLS: the source is the app helperd accepted
	 * for c->src (its identity from its control connection). */
	if (c->kind == CONN_OUT) {
		if (spiffe_format(spiffe, spiffelen, ca_trust_domain(r->h->ca),
		    r->h->conf.datacenter, c->src) != 0)
			return -1;
	} else
		util_strlcpy(spiffe, c->peer.peer_spiffe, spiffelen);
	util_strlcpy(addr, c->peer_addr, addrlen);
	*src_port = c->peer_port;
	return 0;
}

void
relay_tick(struct relay *r, int64_t now)
{
	/* Sockets whose registration never came: reset them. */
	while (r->park_len > 0 && r->park_fifo[r->park_head].expires <= now) {
		int port = r->park_fifo[r->park_head].port;
		struct parked *pk = r->parked[port];

		if (pk != NULL &&
		    pk->expires == r->park_fifo[r->park_head].expires) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			log_warn("outbound connection from 127.0.0.1:%d was "
			    "never registered: reset", port);
			setsockopt(pk->fd, SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
			close(pk->fd);
			free(pk);
			r->parked[port] = NULL;
			r->n_parked--;
		}
		r->park_head = (r->park_head + 1) % RELAY_PORTS;
		r->park_len--;
	}
	/* Registrations whose app never connected. */
	while (r->exp_len > 0 && r->expiry[r->exp_head].expires <= now) {
		int port = r->expiry[r->exp_head].port;
		struct pending *p = r->pending[port];

		if (p != NULL && p->expires == r->expiry[r->exp_head].expires) {
			free(p);
			r->pending[port] = NULL;
			r->n_pending--;
		}
		r->exp_head = (r->exp_head + 1) % RELAY_PORTS;
		r->exp_len--;
	}
}

size_t
relay_recheck(struct relay *r, const char *why)
{
	/* Each worker re-checks its own connections, at once. */
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
