/* relay_io: moving the bytes of a relayed connection. Buffers and kernel
 * pipes come from per-relay pools and go back as soon as they are empty,
 * so an idle connection holds none. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "helperd/relay_int.h"

/* Buffers ------------------------------------------------------------ */

char *
relay_buf_get(struct worker *w)
{
	if (w->n_pool > 0)
		return w->pool[--w->n_pool];
	return malloc(RELAY_BUF);
}

void
relay_buf_put(struct worker *w, char *b)
{
	if (b == NULL)
		return;
	if (w->n_pool < RELAY_POOL_MAX)
		w->pool[w->n_pool++] = b;
	else
		free(b);
}

/* Kernel pipes for splice: taken while they hold bytes, pooled when
 * empty (an idle connection holds none). */
static int
kpipe_get(struct worker *w, int kp[2])
{
	if (w->n_pipes > 0) {
		w->n_pipes--;
		kp[0] = w->pipes[w->n_pipes][0];
		kp[1] = w->pipes[w->n_pipes][1];
		return 0;
	}
	return pipe2(kp, O_NONBLOCK | O_CLOEXEC);
}

void
relay_kpipe_put(struct worker *w, int kp[2], int empty)
{
	if (kp[0] < 0)
		return;
	if (empty && w->n_pipes < RELAY_POOL_MAX) {
		w->pipes[w->n_pipes][0] = kp[0];
		w->pipes[w->n_pipes][1] = kp[1];
		w->n_pipes++;
	} else {
		close(kp[0]);
		close(kp[1]);
	}
	kp[0] = kp[1] = -1;
}


/* TLS transport. Once a session relays, GnuTLS reads from and writes to
 * our buffers instead of the socket: one recv() brings several records,
 * several records leave in one send(). Buffers come from the pool and go
 * back as soon as they are empty, so an idle connection holds none. */

static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct end *e = ptr;
	struct worker *w = e->c->w;
	size_t n;

	if (e->rlen == 0) {
		ssize_t got;

		if (e->rbuf == NULL && (e->rbuf = relay_buf_get(w)) == NULL) {
			gnutls_transport_set_errno(e->tls, ENOMEM);
			return -1;
		}
		do
			got = recv(e->w.fd, e->rbuf, RELAY_BUF, 0);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			int err = errno;

			relay_buf_put(w, e->rbuf);
			e->rbuf = NULL;
			if (got == 0)
				return 0;
			gnutls_transport_set_errno(e->tls, err);
			return -1;
		}
		e->roff = 0;
		e->rlen = (size_t)got;
		e->short_read = (size_t)got < RELAY_BUF;
	}
	n = len < e->rlen ? len : e->rlen;
	memcpy(data, e->rbuf + e->roff, n);
	e->roff += n;
	e->rlen -= n;
	if (e->rlen == 0) {
		relay_buf_put(w, e->rbuf);
		e->rbuf = NULL;
	}
	return (ssize_t)n;
}

static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
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

void
relay_tls_buffered(struct end *e)
{
	gnutls_transport_set_ptr(e->tls, e);
	gnutls_transport_set_pull_function(e->tls, tls_pull);
	gnutls_transport_set_push_function(e->tls, tls_push);
}

/* Send the encrypted bytes waiting in e->wbuf. 0 all sent, -1 would
 * block, -2 error. */
static int
tls_flush(struct worker *w, struct end *e)
{
	while (e->wlen > 0) {
		ssize_t n = send(e->w.fd, e->wbuf + e->woff, e->wlen,
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return -1;
		if (n <= 0)
			return -2;
		e->woff += (size_t)n;
		e->wlen -= (size_t)n;
		e->sent += (uint64_t)n;
	}
	e->woff = 0;
	relay_buf_put(w, e->wbuf);
	e->wbuf = NULL;
	return 0;
}

/* Room left in wbuf for one more full record. */
#define TLS_RECORD_ROOM (TLS_RECORD_MAX + 256)

/* No ciphertext left in rbuf, no plaintext left in GnuTLS, and the last
 * recv() was short. */
static int
tls_drained(struct end *e)
{
	return e->short_read && e->rlen == 0 &&
	    gnutls_record_check_pending(e->tls) == 0;
}

/* Read into p from a TLS end: records until the buffer cannot take a
 * full one or nothing is left. >0 bytes, 0 end of stream, -1 would block,
 * -2 error. */
static ssize_t
tls_read(struct end *e, struct pipe *p)
{
	ssize_t total = 0;
	int spins = 0;

	while (RELAY_BUF - p->len >= TLS_RECORD_MAX) {
		ssize_t n;

		/* Nothing buffered and the socket was drained: stop here
		 * rather than pay a recv() that would only say EAGAIN. */
		if (total > 0 && tls_drained(e))
			return total;
		n = gnutls_record_recv(e->tls, p->buf + p->len,
		    RELAY_BUF - p->len);

		if (n > 0) {
			p->len += (size_t)n;
			total += n;
			continue;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			/* GnuTLS also says AGAIN after handling a record
			 * that carried no data (a NewSessionTicket, a key
			 * update): records may still wait in rbuf, and no
			 * epoll event will come for them. */
			if ((e->rlen > 0 ||
			    gnutls_record_check_pending(e->tls) > 0) &&
			    ++spins < 64)
				continue;
			return total > 0 ? total : -1;
		}
		if (n == 0)
			return total > 0 ? total : 0;
		errno = EPROTO;
		return total > 0 ? total : -2;
	}
	return total;
}

/* Write p to a TLS end: encrypt records into wbuf while it has room, then
 * send them with one send(). 0 all handed over, -1 would block, -2 error. */
static int
tls_write(struct worker *w, struct end *e, struct pipe *p)
{
	for (;;) {
		int rc;

		while (p->len > 0 && RELAY_BUF - e->wlen >= TLS_RECORD_ROOM) {
			size_t chunk = p->len < TLS_RECORD_MAX ? p->len :
			    TLS_RECORD_MAX;
			ssize_t n = gnutls_record_send(e->tls, p->buf + p->off,
			    chunk);

			if (n <= 0)
				return -2;
			p->off += (size_t)n;
			p->len -= (size_t)n;
		}
		rc = tls_flush(w, e);
		if (rc != 0)
			return rc;
		if (p->len == 0)
			return 0;
	}
}

/* Plain I/O: >0 bytes, 0 end of stream, -1 would block, -2 error. */
static ssize_t
plain_read(struct end *e, char *buf, size_t len)
{
	ssize_t n;

	do
		n = read(e->w.fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	return errno == EAGAIN ? -1 : -2;
}

static ssize_t
plain_write(struct end *e, const char *buf, size_t len)
{
	ssize_t n;

	do
		n = send(e->w.fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	return n < 0 && errno == EAGAIN ? -1 : -2;
}

/* Shut down writing towards e: TLS close_notify, then TCP FIN.
 * 0 done, -1 would block, -2 error. */
static int
end_shutdown(struct worker *w, struct end *e)
{
	if (e->tls != NULL) {
		if (!e->bye_queued) {
			if (gnutls_bye(e->tls, GNUTLS_SHUT_WR) < 0)
				return -2;
			e->bye_queued = 1;
		}
		int rc = tls_flush(w, e);
		if (rc != 0)
			return rc;
	}
	shutdown(e->w.fd, SHUT_WR);
	e->shut_out = 1;
	return 0;
}

/* Move bytes from one end to the other until something would block.
 * 0 ok, -1 the connection must be reset (reason in why). */
int
relay_pump(struct worker *w, struct end *from, struct end *to,
    struct pipe *p, const char **why)
{
	for (;;) {
		ssize_t n;

		if (p->len > 0 || (to->tls != NULL && to->wlen > 0)) {
			if (to->tls != NULL) {
				n = tls_write(w, to, p);
			} else {
				n = plain_write(to, p->buf + p->off, p->len);
				if (n > 0) {
					p->off += (size_t)n;
					p->len -= (size_t)n;
					if (p->len > 0)
						continue;
					n = 0;
				}
			}
			if (n == -1) {
				to->want_out = 1;
				return 0;
			}
			if (n < 0) {
				*why = "write failed (peer reset)";
				return -1;
			}
			p->off = 0;
			/* Everything read was written and the source was
			 * drained: wait for epoll instead of a read that
			 * would only say EAGAIN (saves a syscall per hop). */
			if (!from->eof_in && from->short_read &&
			    (from->tls == NULL || tls_drained(from))) {
				from->short_read = 0;
				from->want_in = 1;
				relay_buf_put(w, p->buf);
				p->buf = NULL;
				return 0;
			}
		}
		if (from->eof_in) {
			relay_buf_put(w, p->buf);
			p->buf = NULL;
			if (!to->shut_out) {
				int rc = end_shutdown(w, to);
				if (rc == -1)
					to->want_out = 1;
				else if (rc < 0) {
					*why = "shutdown failed";
					return -1;
				}
			}
			return 0;
		}
		if (p->buf == NULL && (p->buf = relay_buf_get(w)) == NULL) {
			*why = "out of memory";
			return -1;
		}
		if (from->tls != NULL)
			n = tls_read(from, p);
		else if ((n = plain_read(from, p->buf, RELAY_BUF)) > 0) {
			p->len = (size_t)n;
			from->short_read = (size_t)n < RELAY_BUF;
		}
		if (n == -1) {
			from->want_in = 1;
			relay_buf_put(w, p->buf);
			p->buf = NULL;
			return 0;
		}
		if (n == -2) {
			*why = from->tls != NULL ? "TLS read failed or peer "
			    "closed without close_notify" : "read failed "
			    "(peer reset)";
			return -1;
		}
		if (n == 0)
			from->eof_in = 1;
		else
			p->moved += (uint64_t)n;
	}
}

/* relay_pump() for two plain sockets: splice through a kernel pipe, the bytes
 * never enter user space. Same contract as relay_pump(). */
int
relay_pump_splice(struct worker *w, struct end *from, struct end *to,
    struct pipe *p, const char **why)
{
	for (;;) {
		ssize_t n;

		if (p->len > 0) {
			n = splice(p->kp[0], NULL, to->w.fd, NULL, p->len,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				to->want_out = 1;
				return 0;
			}
			if (n <= 0) {
				*why = "write failed (peer reset)";
				return -1;
			}
			p->len -= (size_t)n;
			continue;
		}
		if (from->eof_in) {
			relay_kpipe_put(w, p->kp, 1);
			if (!to->shut_out)
				end_shutdown(w, to);
			return 0;
		}
		if (p->kp[0] < 0 && kpipe_get(w, p->kp) != 0) {
			*why = "out of pipes";
			return -1;
		}
		n = splice(from->w.fd, NULL, p->kp[1], NULL, RELAY_SPLICE,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			from->want_in = 1;
			relay_kpipe_put(w, p->kp, 1);
			return 0;
		}
		if (n < 0) {
			*why = "read failed (peer reset)";
			return -1;
		}
		if (n == 0)
			from->eof_in = 1;
		p->len = (size_t)n;
	}
}
