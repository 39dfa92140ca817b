/* relay_stream: connections one after another over one session between
 * two helperds. Without it every new connection across nodes paid a TCP
 * connect and a TLS handshake (resumed or full) on both nodes, three
 * quarters of helperd's CPU per connection.
 *
 * Both helperds offer ALPN "meshshim-stream/1" on sessions that cross a
 * network (tls.c). When it is agreed, the session carries streams in
 * frames, one stream at a time, and the end of a stream no longer ends the
 * session:
 *
 *   type (1 byte) | length (3 bytes, big-endian) | length bytes
 *   'D' data            either way, length > 0
 *   'F' end of stream   either way: this direction is done (half close)
 *   'O' open            client, on a session between streams, length 0
 *   'R' ready           server, length 0: the stream reached a local
 *                       instance (its first frame on every stream)
 *   'X' refused         server, instead of R or in the middle: why (at
 *                       most STREAM_WHY_MAX bytes); the session ends
 *
 * The handshake opens the first stream. Once both sides have sent and read
 * F, the client keeps the session in its worker's pool (ST_POOL), keyed by
 * source service and leaf, destination service and the node dialled; the
 * next connection with that key takes it, sends O and reads nothing from
 * its application until R comes: a session the peer closed meanwhile costs
 * a fresh dial, never the connection. The server waits for O (ST_IDLE),
 * checks the intention again for every stream, and dials a local instance
 * as for a new connection; the caller's identity is the session's
 * verified certificate, which only a connection of that same source
 * service and leaf may reuse.
 *
 * One stream at a time, not many at once as in HTTP/2 or Istio's HBONE:
 * each stream keeps TCP's flow and congestion control to itself, no
 * stream waits behind another's bytes, and no window protocol is needed.
 * Parallel connections take parallel sessions. What a stream no longer
 * pays is the TCP connect and the handshake. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include <gnutls/gnutls.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls.h"
#include "helperd/relay/tls_rec.h"

#define STREAM_SMALL     4096   /* data this small goes in one record
                                   with its header */
#define STREAM_WHY_MAX   200
#define STREAM_POOL_MAX  64     /* sessions a worker keeps between streams */
#define STREAM_POOL_IDLE_MS 15000       /* client: kept that long unused */
#define STREAM_IDLE_MS   30000  /* server: longer, so that it is the
                                   client that gives a session up */
#define STREAM_MAX_AGE_MS (10 * 60 * 1000)      /* then a new handshake */

#define BUMP(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)

/* end.fin_in: what ended the reading of a stream; it holds until the
 * next stream (a read that returns bytes first says it next time). */
enum { FIN_NONE, FIN_READ, FIN_REFUSED, FIN_BROKEN };

/* Frames --------------------------------------------------------------- */

/* Up to len bytes of plaintext: XIO_OK with *got > 0, XIO_AGAIN,
 * XIO_EOF (close_notify), XIO_ERR. */
static enum xio
srecv(struct end *e, void *buf, size_t len, size_t *got)
{
	return relay_tls_sock_recv(e, buf, len, len, got);
}

/* The next frame's header (it may come in pieces). */
static enum xio
frame_next(struct end *e, int *type, size_t *len)
{
	while (e->fh_got < sizeof(e->fh)) {
		size_t got;
		enum xio rc = srecv(e, e->fh + e->fh_got,
		    sizeof(e->fh) - e->fh_got, &got);

		if (rc != XIO_OK)
			return rc;
		e->fh_got += got;
	}
	e->fh_got = 0;
	*type = e->fh[0];
	*len = (size_t)e->fh[1] << 16 | (size_t)e->fh[2] << 8 | e->fh[3];
	return XIO_OK;
}

/* An X frame's reason (len bytes, sent in the header's record) into
 * c->stream_why, made printable. */
static enum xio
frame_why(struct end *e, size_t len)
{
	char *why = e->c->stream_why;
	size_t have = 0;

	if (len > STREAM_WHY_MAX)
		return XIO_ERR;
	while (have < len) {
		size_t got;

		if (srecv(e, why + have, len - have, &got) != XIO_OK)
			return XIO_ERR;
		have += got;
	}
	why[have] = '\0';
	for (size_t i = 0; i < have; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
			why[i] = '?';
	if (have == 0)
		util_strlcpy(why, "no reason given", sizeof(e->c->stream_why));
	return XIO_OK;
}

/* Queue a frame: header for len bytes, then dlen of them (at most
 * STREAM_SMALL) in the same record. XIO_OK, XIO_AGAIN (no room yet,
 * nothing queued) or XIO_ERR. */
static enum xio
frame_put(struct worker *w, struct end *e, int type, size_t len,
    const void *data, size_t dlen)
{
	unsigned char rec[4 + STREAM_SMALL];

	assert(dlen <= STREAM_SMALL && len < (1u << 24));
	if (RELAY_BUF - e->wlen < TLS_RECORD_ROOM) {
		enum xio rc = relay_tls_flush(w, e);

		if (rc != XIO_OK)
			return rc;
	}
	rec[0] = (unsigned char)type;
	rec[1] = (unsigned char)(len >> 16);
	rec[2] = (unsigned char)(len >> 8);
	rec[3] = (unsigned char)len;
	if (dlen > 0)
		memcpy(rec + 4, data, dlen);
	return gnutls_record_send(e->tls, rec, 4 + dlen) ==
	    (ssize_t)(4 + dlen) ? XIO_OK : XIO_ERR;
}

/* The transport ----------------------------------------------------------
 * TLS over a socket (relay_xprt.c) with reads, writes and the end of a
 * direction in frames. */

/* What a frame read in the middle of a stream means. */
static enum xio
frame_in(struct end *e, int type, size_t len)
{
	int client = e->c->kind == CONN_OUT;

	switch (type) {
	case 'D':
		if (len == 0)
			return XIO_ERR;
		e->in_left = len;
		return XIO_OK;
	case 'F':
		if (len != 0)
			return XIO_ERR;
		e->fin_in = FIN_READ;
		return XIO_OK;
	case 'R':       /* the first stream relays before it comes */
		return client && len == 0 ? XIO_OK : XIO_ERR;
	case 'X':
		if (client && frame_why(e, len) == XIO_OK) {
			e->fin_in = FIN_REFUSED;
			return XIO_OK;
		}
		return XIO_ERR;
	default:
		return XIO_ERR;
	}
}

static enum xio
stream_read(struct worker *w, struct end *e, struct pipe *p)
{
	size_t before = p->len;
	enum xio rc = XIO_OK;

	(void)w;
	while (e->fin_in == FIN_NONE && p->len < RELAY_BUF) {
		size_t got, want, room;

		if (e->in_left == 0) {
			int type;
			size_t len;

			rc = frame_next(e, &type, &len);
			if (rc == XIO_OK)
				rc = frame_in(e, type, len);
			if (rc != XIO_OK)
				break;
			continue;
		}
		room = RELAY_BUF - p->len;
		/* Less room than a record: what came so far goes first (the
		 * next read opens a whole record in place). */
		if (room < TLS_REC_PLAIN_MAX && p->len > before)
			break;
		want = room < e->in_left ? room : e->in_left;
		rc = relay_tls_sock_recv(e, p->buf + p->len, want, room, &got);
		if (rc != XIO_OK)
			break;
		p->len += got;
		e->in_left -= got;
	}
	/* A bad frame, or the session's end inside a stream (that stream
	 * was cut short): an error, now or after the bytes read before. */
	if (rc == XIO_ERR || rc == XIO_EOF)
		e->fin_in = FIN_BROKEN;
	if (p->len > before)
		return XIO_OK;
	if (e->fin_in != FIN_NONE)
		return e->fin_in == FIN_READ ? XIO_EOF : XIO_ERR;
	return rc;
}

static enum xio
stream_write(struct worker *w, struct end *e, struct pipe *p)
{
	while (p->len > 0) {
		struct pipe v;
		size_t n;
		enum xio rc;

		if (e->out_left == 0 && p->len <= STREAM_SMALL) {
			rc = frame_put(w, e, 'D', p->len, p->buf + p->off,
			    p->len);
			if (rc != XIO_OK)
				return rc;
			p->off += p->len;
			p->len = 0;
			break;
		}
		if (e->out_left == 0) {
			rc = frame_put(w, e, 'D', p->len, NULL, 0);
			if (rc != XIO_OK)
				return rc;
			e->out_left = p->len;
		}
		v = *p;
		if (v.len > e->out_left)
			v.len = e->out_left;
		n = v.len;
		rc = relay_tls_write(w, e, &v);
		n -= v.len;
		e->out_left -= n;
		p->off += n;
		p->len -= n;
		if (rc != XIO_OK)
			return rc;
	}
	return relay_tls_flush(w, e);
}

/* F instead of close_notify: the session lives on. */
static enum xio
stream_shutdown(struct worker *w, struct end *e)
{
	enum xio rc;

	if (!e->bye_queued) {
		rc = frame_put(w, e, 'F', 0, NULL, 0);
		if (rc != XIO_OK)
			return rc;
		e->bye_queued = 1;
	}
	rc = relay_tls_flush(w, e);
	if (rc == XIO_OK)
		e->shut_out = 1;
	return rc;
}

static int
stream_drained(const struct end *e)
{
	return e->fin_in == FIN_NONE && e->short_read && e->rlen == 0 &&
	    gnutls_record_check_pending(e->tls) == 0;
}

static struct xprt xprt_stream;
static pthread_once_t xprt_once = PTHREAD_ONCE_INIT;

static void
xprt_stream_init(void)
{
	xprt_stream = *relay_xprt_tls();
	xprt_stream.name = "tls-stream";
	xprt_stream.read = stream_read;
	xprt_stream.write = stream_write;
	xprt_stream.shutdown = stream_shutdown;
	xprt_stream.drained = stream_drained;
	xprt_stream.read_failed = "mesh session ended inside the stream";
}

const struct xprt *
relay_xprt_stream(void)
{
	pthread_once(&xprt_once, xprt_stream_init);
	return &xprt_stream;
}

int
relay_is_stream(const struct end *e)
{
	return e->x != NULL && e->x == relay_xprt_stream();
}

/* Between streams ----------------------------------------------------------- */

void
relay_stream_begin(struct conn *c)
{
	c->net.x = relay_xprt_stream();
	c->born_ms = util_now_ms_mono();
	c->tls_gen = tls_gen();
}

/* The stream on c is over: its observation ends (counted, access-logged)
 * and its application's socket closes; the session stays. */
static void
stream_end(struct conn *c)
{
	struct worker *w = c->w;
	struct end *e = &c->net;

	relay_obs_close(c, 0, "both sides finished");
	log_debug("conn %llu %s => %s done: both sides finished, session "
	    "kept", (unsigned long long)c->id, c->src, c->dst);
	relay_end_close(w, &c->app, 0);
	relay_port_unpublish(c);
	c->app_port = 0;
	relay_buf_put(w, c->up.buf);
	relay_buf_put(w, c->down.buf);
	c->up = c->down = (struct pipe){ .kp = { -1, -1 } };
	memset(&c->app, 0, sizeof(c->app));
	c->app.w.fd = -1;
	e->eof_in = e->shut_out = e->want_in = e->want_out = 0;
	e->bye_queued = 0;
	e->fh_got = e->in_left = e->out_left = 0;
	e->fin_in = FIN_NONE;
	memset(&c->obs, 0, sizeof(c->obs));
	c->stream_why[0] = '\0';
	c->tries = 0;
	c->pooled = 1;
}

static void
pool_unlink(struct conn *c)
{
	struct worker *w = c->w;

	if (c->sprev != NULL)
		c->sprev->snext = c->snext;
	else
		w->spool = c->snext;
	if (c->snext != NULL)
		c->snext->sprev = c->sprev;
	c->snext = c->sprev = NULL;
	w->n_spool--;
}

/* Client: keep c's session for the next stream of its key. */
static int
pool_put(struct conn *c)
{
	struct worker *w = c->w;
	int64_t now = util_now_ms_mono();

	if (w->n_spool >= STREAM_POOL_MAX || c->tls_gen != tls_gen() ||
	    now - c->born_ms > STREAM_MAX_AGE_MS || c->sess_host[0] == '\0' ||
	    c->net.rlen > 0 || gnutls_record_check_pending(c->net.tls) > 0)
		return 0;
	stream_end(c);
	c->st = ST_POOL;
	c->deadline = now + STREAM_POOL_IDLE_MS;
	c->snext = w->spool;
	c->sprev = NULL;
	if (w->spool != NULL)
		w->spool->sprev = c;
	w->spool = c;
	w->n_spool++;
	c->net.x->watch(w, &c->net, EPOLLIN);
	return 1;
}

static void idle_step(struct conn *c);

/* Server: wait for the next O. */
static int
idle_start(struct conn *c)
{
	stream_end(c);
	c->st = ST_IDLE;
	c->deadline = util_now_ms_mono() + STREAM_IDLE_MS;
	c->net.x->watch(c->w, &c->net, EPOLLIN);
	idle_step(c);   /* the O may be here already */
	return 1;
}

int
relay_stream_done(struct conn *c)
{
	struct end *e = &c->net;

	if (!relay_is_stream(e) || e->fin_in != FIN_READ || e->wlen > 0 ||
	    e->fh_got > 0)
		return 0;
	return c->kind == CONN_OUT ? pool_put(c) : idle_start(c);
}

/* Move s's session (its socket, TLS state and verified peer) to c. */
static int
session_move(struct conn *s, struct conn *c)
{
	struct worker *w = c->w;
	int fd;
	uint32_t ev;

	s->net.x->detach(w, &s->net, &fd, &ev);
	c->net = s->net;
	c->net.c = c;
	memset(&s->net, 0, sizeof(s->net));
	s->net.w.fd = -1;
	tls_peer_release(&c->peer);
	c->peer = s->peer;      /* with its leaf reference */
	c->peer.pol = NULL;
	s->peer.leaf = NULL;
	gnutls_transport_set_ptr(c->net.tls, &c->net);
	gnutls_session_set_ptr(c->net.tls, &c->peer);
	c->born_ms = s->born_ms;
	c->tls_gen = s->tls_gen;
	util_strlcpy(c->sess_host, s->sess_host, sizeof(c->sess_host));
	c->sess_port = s->sess_port;
	return c->net.x->attach(w, &c->net, fd, EPOLLIN);
}

int
relay_stream_take(struct conn *c, const char *host, int port)
{
	struct worker *w = c->w;
	int64_t now = util_now_ms_mono();
	struct conn *s, *next;

	for (s = w->spool; s != NULL; s = next) {
		next = s->snext;
		if (strcmp(s->src, c->src) != 0 ||
		    strcmp(s->dst, c->dst) != 0 ||
		    s->peer.leaf != c->peer.leaf ||
		    strcmp(s->sess_host, host) != 0 || s->sess_port != port)
			continue;
		if (s->tls_gen != tls_gen() ||
		    now - s->born_ms > STREAM_MAX_AGE_MS) {
			relay_conn_close(s, 0, "session too old");
			continue;
		}
		if (session_move(s, c) != 0 ||
		    frame_put(w, &c->net, 'O', 0, NULL, 0) != XIO_OK ||
		    relay_tls_flush(w, &c->net) == XIO_ERR) {
			relay_conn_close(s, 1, "session lost");
			relay_end_close(w, &c->net, 1);
			return 0;
		}
		relay_conn_close(s, 0, "session taken by conn %llu",
		    (unsigned long long)c->id);
		c->st = ST_OPEN;
		c->deadline = now + c->r->env.conf->connect_timeout_ms;
		relay_obs_dial(c);
		BUMP(w->obs.streams_reused[0], 1);
		return 1;
	}
	return 0;
}

/* Client, ST_OPEN: the session taken from the pool is gone or
 * misbehaves: dial afresh (the application never sees it). */
static void
open_failed(struct conn *c, const char *why)
{
	log_debug("conn %llu %s => %s: pooled session: %s; dialling",
	    (unsigned long long)c->id, c->src, c->dst, why);
	relay_end_close(c->w, &c->net, 1);
	tls_peer_release(&c->peer);
	c->peer = (struct tls_peer){ .datacenter = c->peer.datacenter };
	c->no_reuse = 1;
	if (c->tries > 0)
		c->tries--;     /* this node was not really tried */
	(void)relay_outbound_dial(c, NULL);
}

static void
open_step(struct conn *c)
{
	int type = 0;
	size_t len = 0;
	enum xio rc = frame_next(&c->net, &type, &len);

	if (rc == XIO_AGAIN) {
		c->net.x->watch(c->w, &c->net, EPOLLIN);
		return;
	}
	if (rc == XIO_OK && type == 'R' && len == 0) {
		relay_start(c);
		return;
	}
	if (rc == XIO_OK && type == 'X' && frame_why(&c->net, len) ==
	    XIO_OK) {
		/* Nothing of the application was sent yet: another instance
		 * may take it, as after a failed dial. */
		char why[320];

		relay_stream_why(c, NULL, why, sizeof(why));
		c->stream_why[0] = '\0';
		(void)relay_outbound_retry(c, why);
		return;
	}
	open_failed(c, rc == XIO_OK ? "unexpected frame" : "closed");
}

/* Server, ST_IDLE: O starts the next stream. */
static void
idle_step(struct conn *c)
{
	int type = 0;
	size_t len = 0;
	enum xio rc = frame_next(&c->net, &type, &len);

	if (rc == XIO_AGAIN)
		return;
	if (rc != XIO_OK || type != 'O' || len != 0) {
		relay_conn_close(c, rc != XIO_EOF, "session %s",
		    rc == XIO_EOF ? "closed by the peer" :
		    rc == XIO_OK ? "sent an unexpected frame" : "ended");
		return;
	}
	/* Trust changed (a leaf renewed, a root rotated): no new stream on
	 * what the old one verified; the client dials afresh. */
	if (c->tls_gen != tls_gen()) {
		relay_conn_close(c, 0, "session predates a trust change");
		return;
	}
	c->pooled = 0;
	c->id = atomic_fetch_add(&c->r->next_id, 1) + 1;
	relay_obs_new(c);
	BUMP(c->w->obs.streams_reused[1], 1);
	relay_inbound_admit(c);
}

void
relay_stream_step(struct conn *c)
{
	switch (c->st) {
	case ST_OPEN:
		open_step(c);
		break;
	case ST_IDLE:
		idle_step(c);
		break;
	default:        /* ST_POOL: the peer closed it, or misbehaves */
		relay_conn_close(c, 0, "pooled session closed by the peer");
		break;
	}
}

void
relay_stream_timeout(struct conn *c)
{
	if (c->st == ST_OPEN)
		open_failed(c, "no answer in time");
	else
		relay_conn_close(c, 0, "session idle");
}

int
relay_stream_ready(struct conn *c)
{
	return frame_put(c->w, &c->net, 'R', 0, NULL, 0) == XIO_OK ? 0 : -1;
}

void
relay_stream_refuse(struct conn *c, const char *why)
{
	size_t n = strlen(why);

	if (n > STREAM_WHY_MAX)
		n = STREAM_WHY_MAX;
	if (frame_put(c->w, &c->net, 'X', n, why, n) == XIO_OK)
		(void)relay_tls_flush(c->w, &c->net);
}

const char *
relay_stream_why(struct conn *c, const char *why, char *buf, size_t len)
{
	if (c->stream_why[0] == '\0')
		return why;
	snprintf(buf, len, "refused by %s's helperd: %s",
	    c->obs.node[0] ? c->obs.node : "the peer", c->stream_why);
	return buf;
}

void
relay_stream_unpool(struct conn *c)
{
	if (c->st == ST_POOL)
		pool_unlink(c);
}
