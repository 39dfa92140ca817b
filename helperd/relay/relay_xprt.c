/* relay_xprt: the transports an end of a relayed connection can have
 * (struct xprt, relay_int.h): a plain socket and TLS over a socket. The
 * TLS record layer they share with TLS over one side of an in-memory link
 * (relay_xprt_mem.c, the two TLS ends of a same-node pair) is in
 * relay_rec.c. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "helperd/relay/relay_int.h"

/* Sockets: what plain and TLS ends share ------------------------------ */

static enum xio
sock_connected(struct end *e, int *err)
{
	struct pollfd pfd = { .fd = e->w.fd, .events = POLLOUT };
	socklen_t len = sizeof(*err);

	/* SO_ERROR is 0 while a connect is still in progress too: only a
	 * writable (or failed) socket has an answer. */
	if (poll(&pfd, 1, 0) == 0)
		return XIO_AGAIN;
	*err = 0;
	if (getsockopt(e->w.fd, SOL_SOCKET, SO_ERROR, err, &len) != 0)
		*err = errno;
	if (*err == EINPROGRESS || *err == EALREADY)
		return XIO_AGAIN;
	return *err != 0 ? XIO_ERR : XIO_OK;
}

static void
sock_watch(struct worker *w, struct end *e, uint32_t ev)
{
	loop_mod(w->loop, &e->w, ev);
}

static void
sock_interest(struct worker *w, struct end *e)
{
	uint32_t ev = (e->want_in ? EPOLLIN : 0) | (e->want_out ? EPOLLOUT : 0);

	/* Nothing to wait for on this end (its other direction is done, this
	 * one waits for the other end): out of epoll, or a socket shut down
	 * both ways reports EPOLLHUP in every round, a busy loop for as long
	 * as a slow reader takes. The pump reads and writes it directly when
	 * the other end moves. */
	if (ev == 0)
		loop_park(w->loop, &e->w);
	else
		loop_mod(w->loop, &e->w, ev);
}

static void
sock_detach(struct worker *w, struct end *e, int *fd, uint32_t *ev)
{
	*fd = e->w.fd;
	*ev = e->w.events;
	/* fd -1 from here on: events of this round still queued for it
	 * are skipped (loop_run_once). */
	loop_del(w->loop, &e->w);
}

static int
sock_attach(struct worker *w, struct end *e, int fd, uint32_t ev)
{
	if (loop_add(w->loop, &e->w, fd, ev, relay_conn_event, e) != 0) {
		e->w.fd = fd;           /* closed with the end */
		return -1;
	}
	return 0;
}

static void
sock_close(struct worker *w, struct end *e, int abortive)
{
	int fd = e->w.fd;

	loop_del(w->loop, &e->w);
	relay_end_release(w, e);
	if (fd < 0)
		return;
	if (abortive) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
}

static int
none_pending(const struct end *e)
{
	(void)e;
	return 0;
}

static void
none_start(struct end *e)
{
	(void)e;
}

/* Plain socket --------------------------------------------------------- */

static enum xio
plain_read(struct worker *w, struct end *e, struct pipe *p)
{
	size_t room = RELAY_BUF - p->len;
	ssize_t n;

	(void)w;
	do
		n = read(e->w.fd, p->buf + p->len, room);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? XIO_AGAIN : XIO_ERR;
	if (n == 0)
		return XIO_EOF;
	p->len += (size_t)n;
	e->short_read = (size_t)n < room;
	return XIO_OK;
}

static enum xio
plain_write(struct worker *w, struct end *e, struct pipe *p)
{
	(void)w;
	while (p->len > 0) {
		ssize_t n = send(e->w.fd, p->buf + p->off, p->len,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return XIO_AGAIN;
		if (n <= 0)
			return XIO_ERR;
		p->off += (size_t)n;
		p->len -= (size_t)n;
	}
	return XIO_OK;
}

static enum xio
plain_shutdown(struct worker *w, struct end *e)
{
	(void)w;
	shutdown(e->w.fd, SHUT_WR);
	e->shut_out = 1;
	return XIO_OK;
}

static int
plain_drained(const struct end *e)
{
	return e->short_read;
}

static enum xio
plain_rcv_pipe(struct end *e, int kp[2], size_t max, size_t *n)
{
	ssize_t k;

	do
		k = splice(e->w.fd, NULL, kp[1], NULL, max,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == EAGAIN ? XIO_AGAIN : XIO_ERR;
	*n = (size_t)k;
	return k == 0 ? XIO_EOF : XIO_OK;
}

static enum xio
plain_snd_pipe(struct end *e, int kp[2], size_t len, size_t *n)
{
	ssize_t k;

	do
		k = splice(kp[0], NULL, e->w.fd, NULL, len,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (k < 0 && errno == EINTR);
	if (k < 0 && errno == EAGAIN)
		return XIO_AGAIN;
	if (k <= 0)
		return XIO_ERR;
	*n = (size_t)k;
	return XIO_OK;
}

static const struct xprt xprt_plain = {
	.name = "plain",
	.connected = sock_connected,
	.handshake = NULL,
	.start = none_start,
	.read = plain_read,
	.write = plain_write,
	.shutdown = plain_shutdown,
	.pending = none_pending,
	.drained = plain_drained,
	.watch = sock_watch,
	.interest = sock_interest,
	.rcv_pipe = plain_rcv_pipe,
	.snd_pipe = plain_snd_pipe,
	.detach = sock_detach,
	.attach = sock_attach,
	.close = sock_close,
	.write_waits_read = 0,
	.read_failed = "read failed (peer reset)",
};

/* TLS, whatever carries it ---------------------------------------------- */

enum xio
relay_tls_handshake(struct worker *w, struct end *e, const char **err)
{
	int rc = gnutls_handshake(e->tls);

	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		e->x->watch(w, e, gnutls_record_get_direction(e->tls) ?
		    EPOLLOUT : EPOLLIN);
		return XIO_AGAIN;
	}
	if (rc == 0 && tls_handshake_done(&e->c->peer, e->tls) != 0)
		rc = GNUTLS_E_CERTIFICATE_ERROR;
	if (rc < 0) {
		*err = gnutls_strerror(rc);
		return XIO_ERR;
	}
	return XIO_OK;
}

/* A record's head left in rbuf (tls_rec: split across two recv()s) moves
 * to the front; the rest comes after it. */
static ssize_t
sock_fill(struct end *e)
{
	struct worker *w = e->c->w;
	size_t keep = e->rlen, room;
	ssize_t got;

	if (e->rbuf == NULL && (e->rbuf = relay_buf_get(w)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (keep > 0 && e->roff > 0)
		memmove(e->rbuf, e->rbuf + e->roff, keep);
	e->roff = 0;
	room = RELAY_BUF - keep;
	do
		got = recv(e->w.fd, e->rbuf + keep, room, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		int err = errno;

		if (keep == 0) {
			relay_buf_put(w, e->rbuf);
			e->rbuf = NULL;
		}
		errno = err;
		return got;
	}
	e->rlen = keep + (size_t)got;
	e->short_read = (size_t)got < room;
	return got;
}

static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	return relay_tls_pull_buffered(ptr, data, len, sock_fill);
}

/* Switch a TLS end, once its handshake is done, to our buffers. */
static void
tls_start(struct end *e)
{
	gnutls_transport_set_ptr(e->tls, e);
	gnutls_transport_set_pull_function(e->tls, tls_pull);
	gnutls_transport_set_push_function(e->tls, relay_tls_push);
}

/* Send the encrypted bytes waiting in e->wbuf. */
static enum xio
tls_flush(struct worker *w, struct end *e)
{
	while (e->wlen > 0) {
		ssize_t n = send(e->w.fd, e->wbuf + e->woff, e->wlen,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return XIO_AGAIN;
		if (n <= 0)
			return XIO_ERR;
		e->woff += (size_t)n;
		e->wlen -= (size_t)n;
	}
	e->woff = 0;
	relay_buf_put(w, e->wbuf);
	e->wbuf = NULL;
	return XIO_OK;
}

/* No ciphertext left in rbuf, no plaintext left in GnuTLS, and the last
 * recv() was short. */
static int
tls_drained(const struct end *e)
{
	return e->short_read && e->rlen == 0 &&
	    gnutls_record_check_pending(e->tls) == 0;
}

static int
tls_queued(struct end *e)
{
	return e->rlen > 0;
}

static enum xio
tls_read(struct worker *w, struct end *e, struct pipe *p)
{
	(void)w;
	return relay_tls_read_records(e, p, tls_queued, sock_fill);
}

static enum xio
tls_write(struct worker *w, struct end *e, struct pipe *p)
{
	return relay_tls_write_records(w, e, p, tls_flush);
}

static void
sock_fin(struct end *e)
{
	shutdown(e->w.fd, SHUT_WR);
}

/* close_notify, then TCP FIN. */
static enum xio
tls_shutdown(struct worker *w, struct end *e)
{
	return relay_tls_shutdown_records(w, e, tls_flush, sock_fin);
}

static void
tls_interest(struct worker *w, struct end *e)
{
	relay_tls_direction(e);
	sock_interest(w, e);
}

static const struct xprt xprt_tls = {
	.name = "tls",
	.connected = sock_connected,
	.handshake = relay_tls_handshake,
	.start = tls_start,
	.read = tls_read,
	.write = tls_write,
	.shutdown = tls_shutdown,
	.pending = relay_tls_pending,
	.drained = tls_drained,
	.watch = sock_watch,
	.interest = tls_interest,
	.rcv_pipe = NULL,
	.snd_pipe = NULL,
	.detach = sock_detach,
	.attach = sock_attach,
	.close = sock_close,
	.write_waits_read = 1,
	.read_failed = "TLS read failed or peer closed without close_notify",
};

const struct xprt *
relay_xprt_tls(void)
{
	return &xprt_tls;
}

enum xio
relay_tls_write(struct worker *w, struct end *e, struct pipe *p)
{
	return tls_write(w, e, p);
}

enum xio
relay_tls_flush(struct worker *w, struct end *e)
{
	return tls_flush(w, e);
}

enum xio
relay_tls_sock_recv(struct end *e, void *buf, size_t want, size_t room,
    size_t *got)
{
	return relay_tls_recv(e, buf, want, room, got, sock_fill);
}

/* Opening ends ------------------------------------------------------------ */

int
relay_end_sock(struct conn *c, struct end *e, int fd, uint32_t ev)
{
	e->c = c;
	if (loop_add(c->w->loop, &e->w, fd, ev, relay_conn_event, e) != 0)
		return -1;
	e->x = &xprt_plain;
	return 0;
}

int
relay_end_tls(struct end *e, int server)
{
	struct tls_peer *peer = &e->c->peer;

	e->tls = server ? tls_server_new(e->w.fd, peer) :
	    tls_client_new(e->w.fd, peer);
	if (e->tls == NULL)
		return -1;
	e->x = &xprt_tls;
	return 0;
}
