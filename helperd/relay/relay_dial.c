/* relay_dial: where a connection goes. Outbound: an instance of the
 * destination (local first, round robin, up to RELAY_DIAL_TRIES), a
 * session kept from an earlier stream (relay_stream.c), the same-node
 * link or a dial to a mesh port, waiting for the source's leaf if need be.
 * Inbound: the connection on the mesh port, then a local instance of the
 * service (published for the service's shim: ACCEPT). The steps after the
 * dial: relay.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/relay/policy.h"
#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls.h"

/* Dial a local service for c and publish the local port, so that a shim
 * in the service can ask whose connection it is (ACCEPT). One step under
 * port_mu: that shim asks (on the main thread, relay_inbound_lookup, under
 * port_mu too) as soon as its accept() returns, which on loopback can be
 * before connect() has even returned here. */
static int
dial_published(struct conn *c, const char *addr, int port, char *why,
    size_t whylen)
{
	struct relay *r = c->r;
	struct sockaddr_storage ss, ps;
	socklen_t len = sizeof(ss), plen = sizeof(ps);
	int fd;

	pthread_mutex_lock(&r->port_mu);
	fd = relay_dial(r, addr, port, why, whylen);
	/* Non-blocking: the peer may not be connected yet, but its address
	 * is set (getpeername says ENOTCONN only in SYN_SENT: then the
	 * address we dialled is the one). */
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    relay_sa_id(&ss, &c->app_id.src, &c->app_id.sport) == 0 &&
	    (getpeername(fd, (struct sockaddr *)&ps, &plen) == 0 ||
	    relay_resolve_dialled(addr, port, &ps) == 0) &&
	    relay_sa_id(&ps, &c->app_id.dst, &c->app_id.dport) == 0) {
		c->app_port = c->app_id.sport;
		if (c->app_port > 0 && c->app_port < RELAY_PORTS)
			r->inbound_by_port[c->app_port] = c;
	}
	pthread_mutex_unlock(&r->port_mu);
	return fd;
}


/* Round robin over the instances to dial, shared by the workers:
 * connection ids alternate between the halves of same-node pairs, a poor
 * spreader. spread_win moves the window of remote instances. */
static atomic_size_t spread_in, spread_out, spread_win;

static int
was_tried(const struct conn *c, const char *key)
{
	for (int t = 0; t < c->tries; t++)
		if (strcmp(c->tried[t], key) == 0)
			return 1;
	return 0;
}

/* Inbound: handshake done and authorised; dial a local instance of
 * c->dst not tried yet: a passing one (round robin), else any
 * (the source's helperd judged it passing). last: why the previous try
 * failed. 0, or -1 (closed). */
int
relay_inbound_dial(struct conn *c, const char *last)
{
	struct relay *r = c->r;
	const struct policy *pol = relay_policy(c->w);
	const struct policy_inst *all = NULL;
	size_t pick[POLICY_INST_MAX], n, k = 0;
	char why[256], addr[CONF_ADDR_MAX];
	int fd, port = 0;

	for (int pass = 0; pass < 2 && k == 0; pass++) {
		n = policy_instances(pol, c->dst, pass, &all);
		for (size_t i = 0; i < n; i++)
			if (all[i].local && all[i].svc_port > 0 &&
			    !was_tried(c, all[i].id))
				pick[k++] = i;
	}
	if (k > 0 && c->tries < RELAY_DIAL_TRIES) {
		const struct policy_inst *in = &all[pick[atomic_fetch_add(
		    &spread_in, 1) % k]];

		util_strlcpy(addr, in->svc_address, sizeof(addr));
		port = in->svc_port;
		util_strlcpy(c->tried[c->tries++], in->id,
		    sizeof(c->tried[0]));
	}
	if (port == 0) {
		if (last != NULL)
			relay_conn_close(c, 1, "local service %s: %s", c->dst,
			    last);
		else
			relay_conn_close(c, 1, "service %s is gone", c->dst);
		return -1;
	}
	fd = dial_published(c, addr, port, why, sizeof(why));
	if (fd >= 0 && relay_end_sock(c, &c->app, fd, EPOLLOUT) != 0) {
		snprintf(why, sizeof(why), "epoll: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		return relay_inbound_retry(c, why);
	/* Only the dialling end may wake us until the service answers. */
	c->net.x->watch(c->w, &c->net, 0);
	c->st = ST_DIAL;
	c->deadline = util_now_ms_mono() + r->env.conf->connect_timeout_ms;
	relay_obs_dial(c);
	return 0;
}

/* Inbound: the dial of local instance tried last failed (why): try
 * another instance of the service, if there is one. 0, or -1 (closed). */
int
relay_inbound_retry(struct conn *c, const char *why)
{
	char last[300];

	snprintf(last, sizeof(last), "%s (instance %s)", why,
	    c->tries > 0 ? c->tried[c->tries - 1] : "?");
	relay_end_close(c->w, &c->app, 1);
	relay_port_unpublish(c);
	c->app_port = 0;
	if (c->tries < RELAY_DIAL_TRIES)
		log_info("conn %llu %s => %s: local %s: trying another "
		    "instance", (unsigned long long)c->id, c->src, c->dst,
		    last);
	return relay_inbound_dial(c, last);
}

/* Worker: an outbound socket and its registration (pd, ours now). */
void
relay_outbound_start(struct worker *w, int fd, const struct sockaddr_storage *ss,
    struct pending *pd)
{
	struct conn *c;

	if ((c = relay_conn_new(w, CONN_OUT)) == NULL) {
		free(pd);
		close(fd);
		return;
	}
	util_strlcpy(c->src, pd->src, sizeof(c->src));
	util_strlcpy(c->dst, pd->dst, sizeof(c->dst));
	relay_addr_string(ss, c->peer_addr, sizeof(c->peer_addr), &c->peer_port);
	c->obs.pid = pd->pid;
	c->obs.uid = pd->uid;
	c->obs.has_uid = 1;
	util_strlcpy(c->obs.unit, pd->unit, sizeof(c->obs.unit));
	free(pd);
	if (relay_end_sock(c, &c->app, fd, 0) != 0) {
		close(fd);
		relay_conn_close(c, 1, "epoll: %s", strerror(errno));
		return;
	}
	relay_outbound_dial(c, NULL);
}

/* Inbound: a new connection from addr:port (colocated: the inbound half
 * of a same-node pair). */
static struct conn *
inbound_new(struct worker *w, const char *addr, int port, int colocated)
{
	struct conn *c = relay_conn_new(w, CONN_IN);

	if (c == NULL)
		return NULL;
	c->colocated = colocated;
	c->peer.same_process = colocated;
	util_strlcpy(c->peer_addr, addr, sizeof(c->peer_addr));
	c->peer_port = port;
	return c;
}

/* Inbound: c's TLS end is open; the client's hello is next. */
static void
inbound_shake(struct conn *c)
{
	c->st = ST_HANDSHAKE;
	c->deadline = util_now_ms_mono() + c->r->env.conf->handshake_timeout_ms;
	relay_obs_handshake(c);
}

/* Same node with mTLS: the inbound half of the pair, on c's worker, its
 * TLS server end joined to c's TLS client end through memory (no socket
 * between them: the pair holds the app's and the service's fds only).
 * c->peer is set. 0, or -1 with why (c->net not opened). */
static int
local_pair(struct conn *c, char *why, size_t whylen)
{
	struct mlink *ml = relay_mem_new();
	struct conn *in;
	int rc = -1;

	if (ml == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	in = inbound_new(c->w, c->peer_addr, c->peer_port, 1);
	if (in == NULL)
		snprintf(why, whylen, "cannot start the inbound half");
	else if (relay_end_mem_tls(in, &in->net, ml, 1, 1, EPOLLIN) != 0 ||
	    relay_end_mem_tls(c, &c->net, ml, 0, 0, EPOLLOUT) != 0) {
		snprintf(why, whylen, "TLS session setup failed");
		relay_conn_close(in, 1, "%s", why);
	} else {
		inbound_shake(in);
		c->pair = in;
		in->pair = c;
		rc = 0;
	}
	relay_mem_unref(c->w, ml);
	return rc;
}

/* The mesh side of c over a socket to host:port: a mesh port (tls: as
 * the mTLS client c->peer says), or a local service (published for its
 * shim's ACCEPT). 0, or -1 with why (an end opened is closed by the
 * retry). */
static int
dial_net(struct conn *c, int tls, const char *host, int port, char *why,
    size_t whylen)
{
	int fd = tls ? relay_dial(c->r, host, port, why, whylen) :
	    dial_published(c, host, port, why, whylen);

	if (fd < 0)
		return -1;
	if (relay_end_sock(c, &c->net, fd, EPOLLOUT) != 0) {
		snprintf(why, whylen, "epoll: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (tls && relay_end_tls(&c->net, 0) != 0) {
		snprintf(why, whylen, "TLS session setup failed");
		return -1;
	}
	return 0;
}

/* What a try of instance in is remembered by: its node, whose helperd
 * chooses among its own instances (and fails over); a plain same-node
 * try dials the instance itself: node/id. */
static void
dial_key(const struct conf *conf, const struct policy_inst *in,
    char *key, size_t len)
{
	if (in->local && !conf->same_node_mtls)
		snprintf(key, len, "%.63s/%.63s", in->node, in->id);
	else
		snprintf(key, len, "%s", in->node);
}

/* c needs a leaf for c->src that is not there yet: park it (ST_LEAF, only
 * the app's hang-up wakes it) until relay_leaf_ready, at most
 * connect_timeout from the first wait, and have the main loop get one.
 * 0, or -1 (closed). */
static int
leaf_wait(struct conn *c)
{
	struct relay *r = c->r;

	if (c->st != ST_LEAF) {
		c->st = ST_LEAF;
		c->deadline = util_now_ms_mono() +
		    r->env.conf->connect_timeout_ms;
		log_info("conn %llu %s => %s: waiting for a certificate for %s "
		    "(at most %ld ms)", (unsigned long long)c->id, c->src,
		    c->dst, c->src, r->env.conf->connect_timeout_ms);
	}
	if (relay_leaf_want(r, c->src) != 0) {
		relay_conn_close(c, 1, "no certificate for %s: too many "
		    "services wait for one", c->src);
		return -1;
	}
	return 0;
}

void
relay_leaf_redial(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->closed && c->st == ST_LEAF)
			(void)relay_outbound_dial(c, NULL);
	}
}

/* Choose an instance of c->dst not tried yet (a local one first, round
 * robin) and start dialling it. last: why the previous
 * try failed, for the message when none is left. 0, or -1 (closed). */
int
relay_outbound_dial(struct conn *c, const char *last)
{
	struct relay *r = c->r;
	const struct conf *conf = r->env.conf;
	const struct policy *pol = relay_policy(c->w);
	const struct policy_inst *all, *win[POLICY_INST_MAX];
	const struct policy_inst *in[POLICY_INST_MAX];
	char why[256], host[CONF_ADDR_MAX], key[128];
	struct ca_leaf *leaf = NULL;
	size_t n, k = 0;
	int port, local, tls;

	/* The snapshot does not change under us: choose from it and copy
	 * out what the dial needs (it is dropped after this round). A window
	 * of POLICY_INST_MAX that moves on with every connection: a service
	 * on more nodes gets its connections spread over all of them; local
	 * instances still come first. */
	n = policy_instances(pol, c->dst, 0, &all);
	{
		size_t nloc = 0, nrem, off, w = 0;

		while (nloc < n && all[nloc].local)
			nloc++;
		nrem = n - nloc;
		off = nrem > 0 ? (atomic_fetch_add(&spread_win, 1) + 1) %
		    nrem : 0;
		for (size_t i = 0; i < nloc && w < POLICY_INST_MAX; i++)
			win[w++] = &all[i];
		for (size_t i = 0; i < nrem && w < POLICY_INST_MAX; i++)
			win[w++] = &all[nloc + (off + i) % nrem];
		n = w;
	}
	for (size_t i = 0; i < n; i++) {
		dial_key(conf, win[i], key, sizeof(key));
		if (!was_tried(c, key))
			in[k++] = win[i];
	}
	if (k == 0 || c->tries >= RELAY_DIAL_TRIES) {
		if (last != NULL)
			relay_conn_close(c, 1, "%s", last);
		else
			relay_conn_close(c, 1, "no instance of %s", c->dst);
		return -1;
	}
	/* The local instances if there are any (they come first), else
	 * the remote ones; spread connections over them. */
	{
		size_t nl = 0;

		while (nl < k && in[nl]->local)
			nl++;
		/* Remote ones: the window already moved on (above). */
		n = nl > 0 ? atomic_fetch_add(&spread_out, 1) % nl : 0;
	}
	dial_key(conf, in[n], c->tried[c->tries++], sizeof(c->tried[0]));
	local = in[n]->local;
	tls = !local || conf->same_node_mtls;
	util_strlcpy(host, tls ? in[n]->address : in[n]->svc_address,
	    sizeof(host));
	port = tls ? in[n]->mesh_port : in[n]->svc_port;
	/* Never issue a key (or wait for a CA server) on a worker: without
	 * a leaf, the main loop is asked for one and the connection waits. */
	if (tls && (leaf = policy_leaf(pol, c->src)) == NULL) {
		c->tries--;
		return leaf_wait(c);
	}
	if (leaf != NULL)
		ca_leaf_ref(leaf);

	if (!tls && !relay_allows(c->w, c->src, c->dst, why, sizeof(why))) {
		relay_obs_check(c, 0, why);
		relay_conn_close(c, 1, "%s", why);
		return -1;
	}
	if (!tls)
		relay_obs_check(c, 1, NULL);
	if (tls) {
		util_strlcpy(c->peer.local_service, c->src,
		    sizeof(c->peer.local_service));
		util_strlcpy(c->peer.expect, c->dst, sizeof(c->peer.expect));
		c->peer.leaf = leaf;    /* released with a failed try */
		c->peer.same_process = local;
		c->peer.pol = pol;
	}
	/* Across nodes: a session kept from an earlier stream, if any. */
	if (tls && !local && !c->no_reuse) {
		if (relay_stream_take(c, host, port))
			return 0;
		util_strlcpy(c->sess_host, host, sizeof(c->sess_host));
		if (strcmp(c->sess_host, host) != 0)
			c->sess_host[0] = '\0';        /* too long: no pool */
		c->sess_port = port;
	}
	/* Same node with mTLS: both TLS ends run here, joined in memory,
	 * and both halves start on this worker (see relay_conn_relay). */
	if ((tls && local ? local_pair(c, why, sizeof(why)) :
	    dial_net(c, tls, host, port, why, sizeof(why))) != 0)
		return relay_outbound_retry(c, why) ? 0 : -1;
	c->peer.pol = NULL;     /* this round's: each handshake step sets it */
	c->st = ST_DIAL;
	c->deadline = util_now_ms_mono() + conf->connect_timeout_ms;
	relay_obs_dial(c);
	return 0;
}

/* Outbound dial of an instance failed (why): try another one, up to
 * RELAY_DIAL_TRIES in all, before the application sees an error. 1 if a
 * new dial is under way, 0 when the connection was closed. */
int
relay_outbound_retry(struct conn *c, const char *why)
{
	char last[300];

	snprintf(last, sizeof(last), "%s (node %s)", why,
	    c->tries > 0 ? c->tried[c->tries - 1] : "?");
	relay_end_close(c->w, &c->net, 1);
	/* The inbound half of a same-node try goes with it. */
	if (c->pair != NULL)
		relay_conn_close(c->pair, 1, "outbound half gave up: %s", why);
	tls_peer_release(&c->peer);
	/* A plain same-node try published its local port (ACCEPT): that
	 * port is no longer ours. */
	relay_port_unpublish(c);
	c->app_port = 0;
	if (c->tries < RELAY_DIAL_TRIES)
		log_info("conn %llu %s => %s: %s: trying another instance",
		    (unsigned long long)c->id, c->src, c->dst, last);
	return relay_outbound_dial(c, last) == 0;
}

/* Inbound: a connection on the mesh port. */
struct conn *
relay_inbound_start(struct worker *w, int fd, const char *addr, int port)
{
	struct conn *c = inbound_new(w, addr, port, 0);

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	if (relay_end_sock(c, &c->net, fd, EPOLLIN) != 0) {
		close(fd);
		relay_conn_close(c, 1, "epoll: %s", strerror(errno));
		return NULL;
	}
	if (relay_end_tls(&c->net, 1) != 0) {
		relay_conn_close(c, 1, "TLS session setup failed");
		return NULL;
	}
	inbound_shake(c);
	return c;
}
