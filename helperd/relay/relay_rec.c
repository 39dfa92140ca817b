/* relay_rec: the TLS record layer both TLS transports share (the one
 * over a socket, relay_xprt.c, and the one over an in-memory link,
 * relay_xprt_mem.c). GnuTLS reads its records from and writes them to our
 * buffers (rbuf, wbuf) instead of its carrier; once an end relays and its
 * session's cipher allows, application data records are sealed straight
 * into wbuf and opened straight out of rbuf by tls_rec.c. */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls_rec.h"

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

/* Reads in pieces (stream sessions, relay_stream.c) -----------------------
 * A stream session's plaintext is read a piece at a time: a frame's
 * 4-byte header, a refusal's reason, a data frame's bytes up to its end.
 * A record whose plaintext fits where the caller reads is opened there by
 * tls_rec; any other record GnuTLS reads, gated to that one record, whole
 * in rbuf. So GnuTLS never holds the head of a record it began to read
 * (raw bytes that gnutls_record_check_pending() does not show), and the
 * next record is always at rbuf's head for tls_rec. */

/* Without tls_rec: GnuTLS reads through the carrier as it likes. */
static enum xio
recv_gnutls(struct end *e, void *buf, size_t len, size_t *got)
{
	int spins = 0;

	for (;;) {
		ssize_t n = gnutls_record_recv(e->tls, buf, len);

		if (n > 0) {
			*got = (size_t)n;
			return XIO_OK;
		}
		if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED)
			return n == 0 ? XIO_EOF : XIO_ERR;
		/* AGAIN also follows a record with no data (a ticket, a key
		 * update): more may wait where no event will announce it. */
		if ((e->rlen == 0 && gnutls_record_check_pending(e->tls) == 0) ||
		    ++spins >= 64)
			return XIO_AGAIN;
	}
}

/* GnuTLS reads into buf (len bytes at most) from the record whose size
 * bytes are whole at rbuf's head, or (size 0) from the plaintext it kept
 * of the last one. *got 0: the record carried no data. */
static enum xio
recv_gated(struct end *e, void *buf, size_t len, size_t size, size_t *got)
{
	ssize_t n;

	e->gated = 1;
	e->gate = size;
	n = gnutls_record_recv(e->tls, buf, len);
	e->gated = 0;
	if (size > 0)
		e->rec_owed = 1;        /* it may owe a key update */
	*got = 0;
	if (n > 0) {
		*got = (size_t)n;
		return XIO_OK;
	}
	if (n == 0)
		return XIO_EOF;
	if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) &&
	    size > 0 && e->gate == 0)
		return XIO_OK;
	return XIO_ERR;
}

enum xio
relay_tls_recv(struct end *e, void *buf, size_t want, size_t room,
    size_t *got, ssize_t (*fill)(struct end *e))
{
	if (!rec_on(e))
		return recv_gnutls(e, buf, want, got);
	for (;;) {
		const unsigned char *head =
		    (const unsigned char *)e->rbuf + e->roff;
		size_t size = 0, used = 0, plain = 0;
		enum tls_rec_open k;
		enum xio rc;

		if (gnutls_record_check_pending(e->tls) > 0)
			return recv_gated(e, buf, want, 0, got);
		if (e->rlen >= TLS_REC_HEADER && (size = tls_rec_size(head)) == 0)
			return XIO_ERR;
		if (e->rlen < TLS_REC_HEADER || e->rlen < size) {
			ssize_t n = fill(e);

			if (n < 0)
				return errno == EAGAIN ? XIO_AGAIN : XIO_ERR;
			if (n == 0)     /* the carrier ended: no close_notify */
				return XIO_ERR;
			continue;
		}
		/* Room for the most this record may hold, and for its inner
		 * content type (opened in place, then dropped). */
		if (size - TLS_REC_OVERHEAD <= want &&
		    size - TLS_REC_OVERHEAD + 1 <= room) {
			if (tls_rec_sync(e->rec, TLS_REC_READ) != 0)
				return XIO_ERR;
			k = tls_rec_open(e->rec, head, e->rlen, buf, &used,
			    &plain);
			if (k == TLS_REC_BAD)
				return XIO_ERR;
			if (k == TLS_REC_DATA) {
				if (tls_rec_commit(e->rec, TLS_REC_READ) != 0)
					return XIO_ERR;
				rbuf_consume(e, used);
				if (plain == 0)
					continue;
				*got = plain;
				return XIO_OK;
			}
		}
		rc = recv_gated(e, buf, want, size, got);
		if (rc != XIO_OK || *got > 0)
			return rc;
	}
}
