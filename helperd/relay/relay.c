/* relay: one relayed connection, from its first socket to its close: the
 * steps (dial, handshake, relay), the pumping of a relay round, and the
 * teardown; where it dials: relay_dial.c. Workers, moving and listeners: relay_worker.c, relay_accept.c;
 * sockets: relay_sock.c; bytes: relay_io.c, through each end's transport
 * (relay_xprt.c; the same-node link: relay_mem.c). */
#include "helperd/relay/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "helperd/identity/ca.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/policy.h"
#include "helperd/relay/tls.h"
#include "helperd/relay/relay_int.h"
#include "helperd/model/spiffe.h"

static void conn_step(struct conn *c, int dirs);

/* Teardown ----------------------------------------------------------- */

static void
conn_free(void *arg)
{
	free(arg);
}

void
relay_conn_unlink(struct worker *w, struct conn *c)
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

void
relay_conn_link(struct worker *w, struct conn *c)
{
	c->w = w;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
}

void
relay_end_close(struct worker *w, struct end *e, int abortive)
{
	if (e->x == NULL)
		return;
	e->x->close(w, e, abortive);
	e->x = NULL;
	e->w.fd = -1;
}

/* c no longer owns its local port towards the service (ACCEPT). */
void
relay_port_unpublish(struct conn *c)
{
	struct relay *r = c->r;

	if (c->app_port <= 0)
		return;
	pthread_mutex_lock(&r->port_mu);
	if (r->inbound_by_port[c->app_port] == c)
		r->inbound_by_port[c->app_port] = NULL;
	pthread_mutex_unlock(&r->port_mu);
}

/* Worker policy ---------------------------------------------------------- */

static void
policy_put_cb(void *arg)
{
	policy_put(arg);
}

const struct policy *
relay_policy(struct worker *w)
{
	struct policy_cell *pc = w->r->env.policy;
	uint64_t gen = policy_cell_gen(pc);
	const struct policy *old = w->pol;

	if (old != NULL && gen == w->pol_seen)
		return old;
	/* The old one may be borrowed by this round's callers: dropped
	 * after the round. If that cannot be queued, keep it for now. */
	if (old != NULL && loop_defer(w->loop, policy_put_cb,
	    (void *)old) != 0)
		return old;
	w->pol = policy_get(pc, (unsigned)w->id);
	w->pol_seen = gen;
	return w->pol;
}

/* The one exit of every connection. abortive: reset both sockets (the
 * application sees ECONNRESET rather than a clean end of stream). */
void
relay_conn_close(struct conn *c, int abortive, const char *fmt, ...)
{
	struct relay *r = c->r;
	struct worker *w = c->w;
	char reason[512];
	va_list ap;

	int net_abortive = abortive;

	if (c->closed)
		return;
	c->closed = 1;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	relay_stream_unpool(c);
	if (c->pooled)          /* a session between streams */
		log_debug("session %s => %s (%s) closed: %s", c->src, c->dst,
		    c->kind == CONN_OUT ? c->sess_host : c->peer_addr, reason);
	else
		relay_obs_close(c, abortive, reason);
	if (c->pair != NULL)
		c->pair->pair = NULL;
	c->pair = NULL;
	if (abortive && !c->pooled)
		log_info("conn %llu %s %s => %s closed: %s",
		    (unsigned long long)c->id, c->kind == CONN_OUT ? "out" : "in",
		    c->src[0] ? c->src : "?", c->dst[0] ? c->dst : "?", reason);
	else if (!c->pooled)
		log_debug("conn %llu %s => %s done: %s",
		    (unsigned long long)c->id, c->src, c->dst, reason);
	/* A stream refused before it relays: the client hears why (and
	 * reads it before the session's end). */
	if (abortive && c->kind == CONN_IN && c->st != ST_RELAY &&
	    !c->pooled && relay_is_stream(&c->net)) {
		relay_stream_refuse(c, reason);
		net_abortive = 0;
	}
	relay_end_close(w, &c->app, abortive);
	relay_end_close(w, &c->net, net_abortive);
	relay_buf_put(w, c->up.buf);
	relay_buf_put(w, c->down.buf);
	c->up.buf = c->down.buf = NULL;
	relay_kpipe_put(w, c->up.kp, c->up.len == 0);
	relay_kpipe_put(w, c->down.kp, c->down.len == 0);
	tls_peer_release(&c->peer);
	relay_port_unpublish(c);
	relay_conn_unlink(w, c);
	atomic_fetch_sub(&r->n_conns, 1);
	loop_defer(w->loop, conn_free, c);
}

struct conn *
relay_conn_new(struct worker *w, enum conn_kind kind)
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
	c->peer.datacenter = r->env.conf->datacenter;
	relay_obs_new(c);
	relay_conn_link(w, c);
	atomic_fetch_add(&r->n_conns, 1);
	return c;
}

/* Wait for what the last pump found each end waiting for (neither: for
 * nothing; the pump reads and writes it directly when the other end
 * moves). */
static void
end_interest(struct worker *w, struct end *e)
{
	if (e->x != NULL)
		e->x->interest(w, e);
}

/* Pump the directions in dirs (an event on one end concerns one of them:
 * the other is not read only to hear EAGAIN), then set what each end
 * waits for. */
void
relay_conn_relay(struct conn *c, int dirs)
{
	struct worker *w = c->w;
	const char *why = NULL;
	uint64_t before = c->up.moved + c->down.moved;

	if (dirs & DIR_DOWN) {
		c->net.want_in = c->app.want_out = 0;
		if (relay_pump(w, &c->net, &c->app, &c->down, &why) !=
		    PUMP_OK) {
			char buf[320];

			relay_conn_close(c, 1, "%s",
			    relay_stream_why(c, why, buf, sizeof(buf)));
			return;
		}
	}
	/* Reading may have queued records of GnuTLS's own (a key update
	 * answer) that only the upward pump sends. */
	if ((dirs & DIR_UP) || c->net.x->pending(&c->net)) {
		c->app.want_in = c->net.want_out = 0;
		if (relay_pump(w, &c->app, &c->net, &c->up, &why) != PUMP_OK) {
			relay_conn_close(c, 1, "%s", why);
			return;
		}
	}
	if (c->app.eof_in && c->net.eof_in && c->app.shut_out &&
	    c->net.shut_out && c->up.len == 0 && c->down.len == 0) {
		if (!relay_stream_done(c))
			relay_conn_close(c, 0, "both sides finished");
		return;
	}
	relay_obs_round(c);
	end_interest(w, &c->app);
	end_interest(w, &c->net);
	/* A same-node pair starts on one worker: a small request and its
	 * answer then cross no thread. Once it carries bulk, its inbound
	 * half moves to another worker so that both TLS ends run at once. */
	if (c->colocated && w->r->n_workers > 1 &&
	    c->up.moved + c->down.moved - before >= RELAY_BULK_BYTES &&
	    ++c->bulky == RELAY_BULK_ROUNDS)
		relay_conn_move(c);
}

/* Connection steps ---------------------------------------------------- */

int
relay_allows(struct worker *w, const char *src, const char *dst,
    char *why, size_t whylen)
{
	return policy_allows(relay_policy(w), src, dst, why, whylen);
}

void
relay_start(struct conn *c)
{
	if (c->kind == CONN_IN && relay_is_stream(&c->net) &&
	    relay_stream_ready(c) != 0) {
		relay_conn_close(c, 1, "TLS write failed");
		return;
	}
	c->st = ST_RELAY;
	c->net.x->start(&c->net);
	c->deadline = c->r->env.conf->idle_timeout_s > 0 ?
	    util_now_ms_mono() + c->r->env.conf->idle_timeout_s * 1000 : 0;
	log_debug("conn %llu %s => %s relaying", (unsigned long long)c->id,
	    c->src, c->dst);
	relay_obs_open(c);
	relay_conn_relay(c, DIR_BOTH);
}

static void
handshake_done(struct conn *c)
{
	if (c->peer.stream)
		relay_stream_begin(c);
	if (c->kind == CONN_OUT) {
		if (log_enabled(LOG_LVL_DEBUG)) {
			char *desc = gnutls_session_get_desc(c->net.tls);

			log_debug("conn %llu mTLS to %s established (%s%s)",
			    (unsigned long long)c->id, c->peer.peer_spiffe,
			    desc != NULL ? desc : "?",
			    c->peer.resumed ? ", resumed" : "");
			gnutls_free(desc);
		}
		relay_start(c);
		return;
	}
	util_strlcpy(c->src, c->peer.peer_service, sizeof(c->src));
	util_strlcpy(c->dst, c->peer.local_service, sizeof(c->dst));
	relay_inbound_admit(c);
}

void
relay_inbound_admit(struct conn *c)
{
	char why[256];

	if (!relay_allows(c->w, c->src, c->dst, why, sizeof(why))) {
		relay_obs_check(c, 0, why);
		log_warn("denied %s (%s:%d) => %s: %s", c->peer.peer_spiffe,
		    c->peer_addr, c->peer_port, c->dst, why);
		relay_conn_close(c, 1, "%s", why);
		return;
	}
	relay_obs_check(c, 1, NULL);
	(void)relay_inbound_dial(c, NULL);
}

static void
conn_handshake(struct conn *c)
{
	const char *err = "?";

	/* The TLS callbacks of this step read this round's snapshot. */
	c->peer.pol = relay_policy(c->w);

	switch (c->net.x->handshake(c->w, &c->net, &err)) {
	case XIO_OK:
		c->peer.pol = NULL;
		relay_obs_handshake_done(c);
		handshake_done(c);
		return;
	case XIO_AGAIN:
		return;
	default:
		break;
	}
	c->peer.pol = NULL;
	if (c->kind == CONN_IN)
		log_warn("mesh handshake from %s:%d refused: %s%s%s",
		    c->peer_addr, c->peer_port, err,
		    c->peer.why[0] ? ": " : "", c->peer.why);
	relay_conn_close(c, 1, "TLS handshake failed: %s%s%s", err,
	    c->peer.why[0] ? ": " : "", c->peer.why);
}

static void
conn_dialled(struct conn *c, struct end *e)
{
	int err = 0;

	if (e->x->connected(e, &err) == XIO_AGAIN)
		return;
	if (err != 0 && c->kind == CONN_OUT) {
		char why[128];

		snprintf(why, sizeof(why), "connect to mesh peer failed: %s",
		    strerror(err));
		relay_outbound_retry(c, why);
		return;
	}
	if (err != 0) {
		char why[128];

		snprintf(why, sizeof(why), "connect to local service failed: "
		    "%s", strerror(err));
		(void)relay_inbound_retry(c, why);
		return;
	}
	if (c->kind == CONN_IN || c->net.x->handshake == NULL) {
		/* Inbound: the local service answered. Outbound plain
		 * (same node, same_node_mtls = false): the service did. */
		c->app.x->watch(c->w, &c->app, EPOLLIN);
		relay_start(c);
		return;
	}
	c->st = ST_HANDSHAKE;
	c->deadline = util_now_ms_mono() + c->r->env.conf->handshake_timeout_ms;
	relay_obs_handshake(c);
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
	case ST_LEAF:
		break;          /* relay_leaf_redial moves it on */
	case ST_OPEN:
	case ST_IDLE:
	case ST_POOL:
		relay_stream_step(c);
		break;
	case ST_RELAY:
		if (c->r->env.conf->idle_timeout_s > 0)
			c->deadline = util_now_ms_mono() +
			    c->r->env.conf->idle_timeout_s * 1000;
		relay_conn_relay(c, dirs);
		break;
	}
}

void
relay_conn_event(void *arg, uint32_t events)
{
	struct end *e = arg;
	struct conn *c = e->c;
	int dirs = DIR_BOTH;

	if (c->closed)
		return;
	/* The end that is not yet part of the relay (the app while we dial
	 * and shake hands) reports only hang-ups: the peer went away. */
	if (c->st != ST_RELAY && e->w.events == 0 &&
	    (events & (EPOLLHUP | EPOLLERR))) {
		relay_conn_close(c, 1, "%s went away before the relay started",
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
		/* A TLS write that waits may wait for a read (its
		 * transport's interest). */
		if (!app && e->x->write_waits_read && e->want_out)
			dirs |= DIR_UP;
	}
	conn_step(c, dirs);
}
