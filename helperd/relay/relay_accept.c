/* relay_accept: the listening sockets (the mesh port, polled by every
 * worker; the outbound port, by the main thread) and the registrations
 * that the shim's CONNECT leaves for the outbound sockets. */
#include "common/ctlproto.h"
#include <arpa/inet.h>
#include <errno.h>
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
#include "helperd/identity/ca.h"
#include "helperd/model/spiffe.h"

/* Warnings any local user can provoke once per connection (a socket on
 * the outbound port that nobody registers, or someone else's
 * registration): at most RL_PER_S a second each, then one line saying
 * how many were left out. Main thread. */
#define RL_PER_S 10
struct ratelim { int64_t sec; unsigned n; unsigned long dropped; };
static struct ratelim rl_unreg, rl_owner;

static int
rl_ok(struct ratelim *rl, const char *what)
{
	int64_t s = util_now_ms_mono() / 1000;

	if (s != rl->sec) {
		if (rl->dropped > 0)
			log_warn("... and %lu more %s in the last second(s), "
			    "not logged", rl->dropped, what);
		rl->sec = s;
		rl->n = 0;
		rl->dropped = 0;
	}
	if (rl->n < RL_PER_S) {
		rl->n++;
		return 1;
	}
	rl->dropped++;
	return 0;
}

/* A socket address as sock_diag names it (normalised, host order). */
static int
sa_id(const struct sockaddr_storage *ss, struct in6_addr *a, uint16_t *port)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		*a = in6->sin6_addr;
		*port = ntohs(in6->sin6_port);
		return 0;
	}
	return -1;
}

int
relay_sa_id(const struct sockaddr_storage *ss, struct in6_addr *a,
    uint16_t *port)
{
	return sa_id(ss, a, port);
}

/* Does the app socket at the other end of fd (accepted on the outbound
 * port from ss) belong to the registration pd? The kernel says (sock_diag,
 * in our network namespace) which socket has that 4-tuple, its owner's
 * uid and its cookie: the uid must be the registering client's (root may
 * register any) and, when the shim gave one, the cookie must be the one
 * it read from its socket (SO_COOKIE, never reused). A user who registers
 * ports in advance thus only ever gets connections from its own sockets.
 * Main thread. 1 yes, 0 no (logged). */
static int
owner_ok(struct relay *r, int fd, const struct sockaddr_storage *ss,
    const struct pending *pd)
{
	struct sockaddr_storage ls;
	socklen_t ll = sizeof(ls);
	struct sockdiag_id id;
	struct sockdiag_info info;
	const char *why;

	memset(&id, 0, sizeof(id));
	if (getsockname(fd, (struct sockaddr *)&ls, &ll) != 0 ||
	    sa_id(ss, &id.src, &id.sport) != 0 ||
	    sa_id(&ls, &id.dst, &id.dport) != 0)
		return 0;
	id.cookie = pd->cookie != 0 ? pd->cookie : SOCKDIAG_NOCOOKIE;
	if (r->sd == NULL)
		why = "no sock_diag to prove whose it is";
	else if (sockdiag_query(r->sd, &id, &info) != 0)
		why = errno == ESTALE ? "not the registered socket" :
		    "its socket is gone";
	else if (pd->cookie != 0 && info.cookie != pd->cookie)
		why = "not the registered socket";
	else if (pd->uid != 0 && info.uid != pd->uid)
		why = "another uid's socket";
	else
		return 1;
	if (rl_ok(&rl_owner, "unproven outbound connections"))
		log_warn("outbound connection from port %u: %s (registered by "
		    "uid %ld for %s => %s): not placed", id.sport, why,
		    (long)pd->uid, pd->src, pd->dst);
	return 0;
}

/* Hold an outbound socket until its registration arrives (loop
 * thread). 0, or -1 if it cannot be held (then it is reset). */
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
	relay_expire_arm(r, pk->expires);
	return 0;
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
		relay_reset_fd(fd);
		free(pd);
		return;
	}
	/* The worker reads what this thread did so far. */
	relay_assert_loop(r);
	policy_sync(r->env.policy);
	if (relay_worker_post(r->workers[r->next_worker], &j) != 0) {
		free(pd);
		relay_reset_fd(fd);
	}
	r->next_worker = (r->next_worker + 1) % r->n_workers;
}

/* Main thread: a socket on the outbound port. With its registration, to
 * a worker; without, held until its CONNECT comes (the shim connects
 * first and registers right after). */

/* An accepted outbound socket whose app is gone: reset (an error), or
 * closed without data while RELAY_UNREG_FLOOD others are parked. */
#define RELAY_UNREG_FLOOD 64
static int
unreg_gone(const struct relay *r, int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0)
		return errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR;
	return n == 0 && r->n_parked >= RELAY_UNREG_FLOOD;
}

static void
outbound_accepted(void *arg, int fd, const struct sockaddr_storage *ss)
{
	struct relay *r = arg;
	struct pending *pd;
	char addr[INET6_ADDRSTRLEN];
	int port;

	relay_addr_string(ss, addr, sizeof(addr), &port);
	if (!relay_is_loopback(ss) || port <= 0 || port >= RELAY_PORTS) {
		log_warn("outbound connection from %s:%d: not loopback: reset",
		    addr, port);
		relay_reset_fd(fd);
		return;
	}
	if ((pd = r->pending[port]) != NULL && owner_ok(r, fd, ss, pd)) {
		r->pending[port] = NULL;
		r->n_pending--;
		outbound_post(r, fd, ss, pd);
		return;
	}
	/* No registration, or someone else's: wait for its own. A socket
	 * reset while in the accept queue has nothing to wait for; one
	 * closed without a byte neither, when many wait already (a flood
	 * left a full queue of them: parking each for RELAY_PARK_MS kept
	 * helperd out of fds long after it ended). */
	if (unreg_gone(r, fd)) {
		close(fd);
		return;
	}
	if (park(r, fd, ss, port) != 0) {
		if (rl_ok(&rl_unreg, "unregistered outbound connections"))
			log_warn("outbound connection from %s:%d with no "
			    "registration: reset", addr, port);
		relay_reset_fd(fd);
	}
}

/* Accept up to 64 connections from lfd (whose sockets start with
 * congestion control lcc) and hand each, tuned, to got(arg, ...);
 * refused at once beyond max connections in all. */
static void
accept_some(struct relay *r, int lfd, const char *lcc, struct emfile *g,
    long max, void (*got)(void *, int, const struct sockaddr_storage *),
    void *arg)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (emfile_hit(g, errno))
				return;         /* paused, logged */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept: %m");
			return;
		}
		emfile_ok(g);
		if ((long)atomic_load(&r->n_conns) >= max) {
			log_warn("max_conns (%ld) reached: refusing a "
			    "connection", max);
			close(fd);
			continue;
		}
		relay_sock_tune(r, fd, &ss, lcc);
		got(arg, fd, &ss);
	}
}

static void
inbound_accepted(void *arg, int fd, const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN];
	int port;

	relay_addr_string(ss, addr, sizeof(addr), &port);
	relay_inbound_start(arg, fd, addr, port);
}

/* The mesh port is readable: accept on this worker. */
static void
acceptor_event(void *arg, uint32_t events)
{
	struct acceptor *a = arg;
	struct relay *r = a->wk->r;
	long max;

	(void)events;
	max = r->env.conf->max_conns;         /* set at start, never changed */
	accept_some(r, a->lfd, a->cc, &a->eg, max, inbound_accepted, a->wk);
}

/* Main thread: the outbound port is readable. */
static void
listener_event(void *arg, uint32_t events)
{
	struct listener *l = arg;

	(void)events;
	accept_some(l->r, l->fd, l->cc, &l->eg, l->r->env.conf->max_conns,
	    outbound_accepted, l->r);
}

static int
acceptor_add(struct worker *w, int which, const struct listener *l,
    uint32_t ev)
{
	struct acceptor *a = &w->acc[which];

	a->wk = w;
	a->mesh = l->mesh;
	a->lfd = l->fd;
	a->cc = l->cc;
	if (loop_add(w->loop, &a->w, l->fd, ev, acceptor_event, a) != 0)
		return -1;
	return emfile_init(&a->eg, w->loop, &a->w, l->fd, ev, acceptor_event,
	    a, "mesh port");
}

/* Listen on host:port; every worker polls the socket and whichever wakes
 * first accepts (EPOLLEXCLUSIVE: one is woken, not all). */
static int
listen_on(struct relay *r, struct listener *l, int which, const char *host,
    int port, int *bound, char *err, size_t errlen)
{
	int fd = relay_listen_socket(host, port, bound, err, errlen);

	if (fd < 0)
		return -1;
	l->fd = fd;
	l->r = r;
	l->mesh = which == ACC_MESH4;
	l->cc = relay_sock_listen_cc(r, fd, l->mesh);
	if (which < 0) {        /* the outbound port: the main loop's */
		if (loop_add(r->env.loop, &l->w, fd, EPOLLIN, listener_event,
		    l) != 0 || emfile_init(&l->eg, r->env.loop, &l->w, fd,
		    EPOLLIN, listener_event, l, "outbound port") != 0) {
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < r->n_workers; i++)
		if (acceptor_add(r->workers[i], which, l,
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

int
relay_pending_add(struct relay *r, int local_port, const char *src,
    const char *dst, uid_t uid, uint64_t cookie,
    pid_t pid, const char *unit)
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
	p->cookie = cookie;
	p->pid = pid;
	util_strlcpy(p->unit, unit != NULL ? unit : "", sizeof(p->unit));
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
	relay_expire_arm(r, p->expires);
	if (r->parked[local_port] != NULL &&
	    owner_ok(r, r->parked[local_port]->fd, &r->parked[local_port]->ss,
	    p)) {
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
relay_outbound_hand(struct relay *r, int fd,
    const struct sockaddr_storage *ss, const char *src, const char *dst,
    uid_t uid)
{
	struct pending *pd;

	if ((long)atomic_load(&r->n_conns) >= r->env.conf->max_conns) {
		log_warn("max_conns (%ld) reached: refusing a connection",
		    r->env.conf->max_conns);
		relay_reset_fd(fd);
		return -1;
	}
	if ((pd = calloc(1, sizeof(*pd))) == NULL) {
		relay_reset_fd(fd);
		return -1;
	}
	util_strlcpy(pd->src, src, sizeof(pd->src));
	util_strlcpy(pd->dst, dst, sizeof(pd->dst));
	pd->uid = uid;
	relay_sock_tune(r, fd, ss, "");
	outbound_post(r, fd, ss, pd);
	return 0;
}

int
relay_inbound_lookup(struct relay *r, const struct sockdiag_id *svc,
    char *spiffe, size_t spiffelen, char *addr, size_t addrlen,
    int *src_port)
{
	struct sockdiag_info info;
	struct sockdiag_id id;
	struct conn *c;
	enum conn_kind kind;
	char src[sizeof(c->src)], peer_spiffe[sizeof(c->peer.peer_spiffe)];
	char peer_addr[sizeof(c->peer_addr)];
	int peer_port;

	relay_assert_loop(r);
	if (svc->dport == 0)
		return -1;
	/* The connection's worker may close it meanwhile: copy out what we
	 * need under port_mu (it unpublishes the port under port_mu before
	 * the connection is freed). */
	pthread_mutex_lock(&r->port_mu);
	if ((c = r->inbound_by_port[svc->dport]) == NULL) {
		pthread_mutex_unlock(&r->port_mu);
		return -1;
	}
	id = c->app_id;
	kind = c->kind;
	util_strlcpy(src, c->src, sizeof(src));
	util_strlcpy(peer_spiffe, c->peer.peer_spiffe, sizeof(peer_spiffe));
	util_strlcpy(peer_addr, c->peer_addr, sizeof(peer_addr));
	peer_port = c->peer_port;
	pthread_mutex_unlock(&r->port_mu);
	/* The accepted socket's peer must be our socket, all four parts:
	 * a connection to the service from another loopback address that
	 * reuses our port is not ours. */
	if (id.sport != svc->dport || id.dport != svc->sport ||
	    memcmp(&id.src, &svc->dst, sizeof(svc->dst)) != 0 ||
	    memcmp(&id.dst, &svc->src, sizeof(svc->src)) != 0)
		return -1;
	/* And the socket the shim accepted (its cookie) must be the other
	 * end of ours in this network namespace: a 4-tuple is unique only
	 * within one. */
	if (svc->cookie != SOCKDIAG_NOCOOKIE && r->sd != NULL &&
	    (sockdiag_query(r->sd, svc, &info) != 0 ||
	    info.cookie != svc->cookie))
		return -1;
	/* Same node without TLS: the source is the app helperd accepted
	 * for c->src (its identity from its control connection). */
	if (kind == CONN_OUT) {
		if (spiffe_format(spiffe, spiffelen, ca_trust_domain(*r->env.ca),
		    r->env.conf->datacenter, src) != 0)
			return -1;
	} else
		util_strlcpy(spiffe, peer_spiffe, spiffelen);
	util_strlcpy(addr, peer_addr, addrlen);
	*src_port = peer_port;
	return 0;
}

void
relay_expire_arm(struct relay *r, int64_t when)
{
	if (loop_timer_min(r->env.loop, &r->exp_timer, when) != 0)
		log_err("relay: cannot arm the expiry timer: out of memory");
}

/* The expiry timer (main loop): parked sockets and
 * registrations past their time; then armed for the next one. */
void
relay_expire(void *arg)
{
	struct relay *r = arg;
	int64_t now = util_now_ms_mono();
	/* Sockets whose registration never came: reset them. Judged as of
	 * the last time the loop looked at the control sockets: a CONNECT
	 * that arrived while helperd was busy (a reload, a burst) is read
	 * in the next round, not beaten by the clock. */
	int64_t seen = loop_woke_ms(r->env.loop);

	if (seen > 0 && seen < now)
		now = seen;
	while (r->park_len > 0 && r->park_fifo[r->park_head].expires <= now) {
		int port = r->park_fifo[r->park_head].port;
		struct parked *pk = r->parked[port];

		if (pk != NULL &&
		    pk->expires == r->park_fifo[r->park_head].expires) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			if (rl_ok(&rl_unreg, "unregistered outbound "
			    "connections"))
				log_warn("outbound connection from port %d "
				    "was never registered: reset", port);
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
	if (r->park_len > 0)
		relay_expire_arm(r, r->park_fifo[r->park_head].expires);
	if (r->exp_len > 0)
		relay_expire_arm(r, r->expiry[r->exp_head].expires);
}
