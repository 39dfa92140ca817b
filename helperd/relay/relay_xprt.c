/* relay_xprt: the transports an end of a relayed connection can have
 * (struct xprt, relay_int.h): a plain socket, TLS over a socket, and the
 * TLS record layer both TLS transports share (records through our
 * buffers, sealed and opened there by tls_rec.c when the cipher allows).
 * TLS over one side of an in-memory link (the two TLS ends of a same-node
 * pair): relay_xprt_mem.c. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls_rec.h"

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

/* An end's TLS session and the buffers it holds, whatever carries it. */
void
relay_end_release(struct worker *w, struct end *e)
{
	if (e->tls != NULL) {
		tls_rec_free(e->rec);
		e->rec = NULL;
		e->rec_tried = 0;
		gnutls_deinit(e->tls);
		e->tls = NULL;
	}
	relay_buf_put(w, e->rbuf);
	relay_buf_put(w, e->wbuf);
	e->rbuf = e->wbuf = NULL;
	e->rlen = e->wlen = 0;
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

/* Records in our buffers (tls_rec.c) --------------------------------
 * Once an end relays and its session's cipher allows, its records are
 * sealed straight into wbuf and opened straight out of rbuf into the
 * relay's buffer: GnuTLS keeps the session (keys, sequence numbers, every
 * record that is not application data) and is told the sequence numbers
 * after each batch, so that what it sends or reads itself stays in step.
 * Its own reads of a record we hand it go through relay_tls_pull_buffered, gated to
 * that record. */

/* e's records go through tls_rec (asked once per session). */
static int
rec_on(struct end *e)
{
	if (!e->rec_tried) {
		e->rec_tried = 1;
		e->rec = tls_rec_new(e->tls);
	}
	return e->rec != NULL;
}

static void
rbuf_consume(struct end *e, size_t n)
{
	e->roff += n;
	e->rlen -= n;
	if (e->rlen == 0) {
		relay_buf_put(e->c->w, e->rbuf);
		e->rbuf = NULL;
		e->roff = 0;
	}
}

/* A record that is not application data (a ticket, a key update, an
 * alert), whole at the head of rbuf (used bytes): GnuTLS reads it itself,
 * at the sequence number it came with, and may change its keys. */
static enum xio
rec_to_gnutls(struct end *e, struct pipe *p, size_t used)
{
	ssize_t n;

	if (tls_rec_commit(e->rec, TLS_REC_READ) != 0)
		return XIO_ERR;
	e->gated = 1;
	e->gate = used;
	n = gnutls_record_recv(e->tls, p->buf + p->len, RELAY_BUF - p->len);
	e->gated = 0;
	/* A key update may ask for ours: GnuTLS sends it with its next
	 * record. */
	e->rec_owed = 1;
	if (tls_rec_sync(e->rec, TLS_REC_READ) != 0)
		return XIO_ERR;
	if (n > 0) {
		p->len += (size_t)n;
		return XIO_OK;
	}
	if (n == 0) {
		e->rec_eof = 1;
		return XIO_EOF;
	}
	if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && e->gate == 0)
		return XIO_OK;
	return XIO_ERR;
}

/* The next record of rbuf into p, or more ciphertext from the carrier
 * (fill): XIO_OK (go on), XIO_AGAIN, XIO_EOF (close_notify), XIO_ERR (a
 * record failed to open, or the carrier ended inside the stream). */
static enum xio
rec_open_one(struct end *e, struct pipe *p, size_t before,
    ssize_t (*fill)(struct end *e))
{
	enum tls_rec_open k = TLS_REC_SHORT;
	size_t used = 0, plain = 0;
	ssize_t got;

	if (e->rlen > 0)
		k = tls_rec_open(e->rec, (unsigned char *)e->rbuf + e->roff,
		    e->rlen, (unsigned char *)p->buf + p->len, &used, &plain);
	if (k == TLS_REC_DATA) {
		p->len += plain;
		rbuf_consume(e, used);
		return XIO_OK;
	}
	if (k == TLS_REC_OTHER)
		return rec_to_gnutls(e, p, used);
	if (k == TLS_REC_BAD)
		return XIO_ERR;
	if (p->len > before && e->x->drained(e))
		return XIO_AGAIN;
	got = fill(e);
	if (got < 0)
		return errno == EAGAIN ? XIO_AGAIN : XIO_ERR;
	return got == 0 ? XIO_ERR : XIO_OK;
}

/* relay_tls_read_records through tls_rec. */
static enum xio
rec_read(struct end *e, struct pipe *p, ssize_t (*fill)(struct end *e))
{
	size_t before = p->len;
	enum xio rc = XIO_OK;

	if (e->rec_eof)
		return XIO_EOF;
	if (tls_rec_sync(e->rec, TLS_REC_READ) != 0)
		return XIO_ERR;
	while (rc == XIO_OK && RELAY_BUF - p->len >= TLS_REC_PLAIN_MAX)
		rc = rec_open_one(e, p, before, fill);
	if (tls_rec_commit(e->rec, TLS_REC_READ) != 0)
		return XIO_ERR;
	return p->len > before ? XIO_OK : rc;
}

/* Read into p from a TLS end: records until the buffer cannot take a
 * full one or nothing is left. queued: ciphertext waits in the carrier
 * (our buffer, the link); fill: brings more of it (relay_tls_pull_buffered). */
enum xio
relay_tls_read_records(struct end *e, struct pipe *p,
    int (*queued)(struct end *e), ssize_t (*fill)(struct end *e))
{
	size_t before = p->len;
	enum xio rc = XIO_OK;
	int spins = 0;

	if (rec_on(e) && gnutls_record_check_pending(e->tls) == 0)
		return rec_read(e, p, fill);
	while (RELAY_BUF - p->len >= TLS_RECORD_MAX) {
		ssize_t n;

		/* Nothing buffered and the carrier was drained: stop here
		 * rather than pay a read that would only say EAGAIN. */
		if (p->len > before && e->x->drained(e))
			break;
		n = gnutls_record_recv(e->tls, p->buf + p->len,
		    RELAY_BUF - p->len);
		if (n > 0) {
			p->len += (size_t)n;
			continue;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			/* GnuTLS also says AGAIN after handling a record
			 * that carried no data (a NewSessionTicket, a key
			 * update): records may still wait, and no event will
			 * come for them. */
			if ((queued(e) ||
			    gnutls_record_check_pending(e->tls) > 0) &&
			    ++spins < 64)
				continue;
			rc = XIO_AGAIN;
		} else if (n == 0)
			rc = XIO_EOF;
		else
			rc = XIO_ERR;
		break;
	}
	return p->len > before ? XIO_OK : rc;
}

/* TLS through our buffers ---------------------------------------------
 * Once a session relays, GnuTLS reads from and writes to our buffers
 * instead of its carrier (a socket, a link): one recv() brings several
 * records, several records leave in one send(); over a link a buffer of
 * records changes hands without a copy. Buffers come from the pool and go
 * back as soon as they are empty, so an idle connection holds none.
 * fill() brings ciphertext into the empty e->rbuf (or after the head of
 * a record tls_rec left there): its byte count, 0 at the end, or -1 with
 * errno. */

ssize_t
relay_tls_pull_buffered(struct end *e, void *data, size_t len,
    ssize_t (*fill)(struct end *e))
{
	size_t n;

	if (e->gated) {
		/* Reading one record for tls_rec: that record only. */
		if (e->gate == 0) {
			gnutls_transport_set_errno(e->tls, EAGAIN);
			return -1;
		}
		if (len > e->gate)
			len = e->gate;
	}
	if (e->rlen == 0) {
		ssize_t got = fill(e);

		if (got <= 0) {
			if (got < 0)
				gnutls_transport_set_errno(e->tls, errno);
			return got;
		}
	}
	n = len < e->rlen ? len : e->rlen;
	memcpy(data, e->rbuf + e->roff, n);
	if (e->gated)
		e->gate -= n;
	rbuf_consume(e, n);
	return (ssize_t)n;
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

ssize_t
relay_tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct end *e = ptr;
	struct worker *w = e->c->w;

	if (e->wbuf == NULL && (e->wbuf = relay_buf_get(w)) == NULL) {
		gnutls_transport_set_errno(e->tls, ENOMEM);
		return -1;
	}
	if (len > RELAY_BUF - e->wlen) {
		/* Never happens: records are only sent with room for one. */
		gnutls_transport_set_errno(e->tls, EAGAIN);
		return -1;
	}
	if (e->woff + e->wlen + len > RELAY_BUF) {
		/* A partial send left a head: move the rest to the front. */
		memmove(e->wbuf, e->wbuf + e->woff, e->wlen);
		e->woff = 0;
	}
	memcpy(e->wbuf + e->woff + e->wlen, data, len);
	e->wlen += len;
	return (ssize_t)len;
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

/* Room for one more record at the end of wbuf (TLS_RECORD_ROOM bytes,
 * RELAY_BUF - wlen >= TLS_RECORD_ROOM): where it goes, or NULL. */
static unsigned char *
wbuf_tail(struct end *e)
{
	if (e->wbuf == NULL && (e->wbuf = relay_buf_get(e->c->w)) == NULL)
		return NULL;
	if (e->woff + e->wlen + TLS_RECORD_ROOM > RELAY_BUF) {
		memmove(e->wbuf, e->wbuf + e->woff, e->wlen);
		e->woff = 0;
	}
	return (unsigned char *)e->wbuf + e->woff + e->wlen;
}

/* One record of p through GnuTLS: after it read a record of ours (it may
 * owe a key update of its own, sent first), or when our write key has
 * sealed enough (gnutls_session_key_update, then the keys are new). */
static enum xio
rec_by_gnutls(struct end *e, struct pipe *p)
{
	size_t chunk = p->len < TLS_RECORD_MAX ? p->len : TLS_RECORD_MAX;
	ssize_t n;

	if (tls_rec_commit(e->rec, TLS_REC_WRITE) != 0 || wbuf_tail(e) == NULL)
		return XIO_ERR;
	if (e->rec_owed) {
		n = gnutls_record_send(e->tls, p->buf + p->off, chunk);
		if (n <= 0)
			return XIO_ERR;
		p->off += (size_t)n;
		p->len -= (size_t)n;
		e->rec_owed = 0;
	} else if (gnutls_session_key_update(e->tls, 0) < 0)
		return XIO_ERR;
	return tls_rec_sync(e->rec, TLS_REC_WRITE) == 0 ? XIO_OK : XIO_ERR;
}

/* Seal records of p into wbuf while it has room (tls_rec). */
static enum xio
rec_seal(struct end *e, struct pipe *p)
{
	if (tls_rec_sync(e->rec, TLS_REC_WRITE) != 0)
		return XIO_ERR;
	if (p->len > 0 && RELAY_BUF - e->wlen >= TLS_RECORD_ROOM &&
	    (e->rec_owed || tls_rec_rekey_due(e->rec)) &&
	    rec_by_gnutls(e, p) != XIO_OK)
		return XIO_ERR;
	while (p->len > 0 && RELAY_BUF - e->wlen >= TLS_RECORD_ROOM) {
		size_t chunk = p->len < TLS_RECORD_MAX ? p->len :
		    TLS_RECORD_MAX;
		unsigned char *out = wbuf_tail(e);
		ssize_t n;

		/* The byte after the chunk is in p's buffer: sealed from
		 * there, no copy. */
		n = out == NULL ? -1 : tls_rec_seal(e->rec,
		    (unsigned char *)p->buf + p->off, chunk,
		    p->off + chunk < RELAY_BUF, out);
		if (n < 0)
			return XIO_ERR;
		e->wlen += (size_t)n;
		p->off += chunk;
		p->len -= chunk;
	}
	return tls_rec_commit(e->rec, TLS_REC_WRITE) == 0 ? XIO_OK : XIO_ERR;
}

/* Write p to a TLS end: encrypt records into wbuf while it has room, then
 * hand them to the carrier at once (flush). */
enum xio
relay_tls_write_records(struct worker *w, struct end *e, struct pipe *p,
    enum xio (*flush)(struct worker *w, struct end *e))
{
	int rec = rec_on(e);

	for (;;) {
		enum xio rc;

		if (rec && rec_seal(e, p) != XIO_OK)
			return XIO_ERR;
		while (!rec && p->len > 0 &&
		    RELAY_BUF - e->wlen >= TLS_RECORD_ROOM) {
			size_t chunk = p->len < TLS_RECORD_MAX ? p->len :
			    TLS_RECORD_MAX;
			ssize_t n = gnutls_record_send(e->tls, p->buf + p->off,
			    chunk);

			if (n <= 0)
				return XIO_ERR;
			p->off += (size_t)n;
			p->len -= (size_t)n;
		}
		rc = flush(w, e);
		if (rc != XIO_OK)
			return rc;
		if (p->len == 0)
			return XIO_OK;
	}
}

/* close_notify into wbuf, then the carrier's own end of stream (fin). */
enum xio
relay_tls_shutdown_records(struct worker *w, struct end *e,
    enum xio (*flush)(struct worker *w, struct end *e),
    void (*fin)(struct end *e))
{
	enum xio rc;

	if (!e->bye_queued) {
		if (gnutls_bye(e->tls, GNUTLS_SHUT_WR) < 0)
			return XIO_ERR;
		e->bye_queued = 1;
	}
	rc = flush(w, e);
	if (rc != XIO_OK)
		return rc;
	fin(e);
	e->shut_out = 1;
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

int
relay_tls_pending(const struct end *e)
{
	return e->wlen > 0;
}

/* A TLS operation that would block tells which way. */
void
relay_tls_direction(struct end *e)
{
	if (e->want_out && gnutls_record_get_direction(e->tls) == 0)
		e->want_in = 1;
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
