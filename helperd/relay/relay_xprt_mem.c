/* relay_xprt_mem: TLS over one side of an in-memory link (relay_mem.c),
 * the transport of both TLS ends of a same-node pair: the TLS record
 * loops and buffers of relay_xprt.c over the link instead of a socket. */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include <gnutls/gnutls.h>

#include "helperd/relay/relay_int.h"

/* TLS over memory ---------------------------------------------------------
 * During the handshake GnuTLS pushes its records straight into the link
 * and pulls the other side's from it (a copy each way, no syscall, no
 * socket). Once relaying, records go through our buffers as over a
 * socket, and a buffer of them changes hands whole (relay_mem_give,
 * relay_mem_take): the link takes no copy and its lock is taken once per
 * buffer, not once per record. */

static ssize_t
mem_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct end *e = ptr;
	ssize_t n = relay_mem_push(e, data, len);

	if (n < 0)
		gnutls_transport_set_errno(e->tls, errno);
	return n;
}

static ssize_t
mem_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct end *e = ptr;
	ssize_t n = relay_mem_pull(e, data, len);

	if (n < 0)
		gnutls_transport_set_errno(e->tls, errno);
	return n;
}

/* A record's head left in rbuf (tls_rec), its rest in b (len bytes at
 * off): one run of bytes. The link carries whole records once relaying
 * (wbuf's are whole); only bytes it copied during the handshake could
 * split one. */
static ssize_t
link_join(struct end *e, char *b, size_t off, size_t len)
{
	struct worker *w = e->c->w;
	size_t keep = e->rlen;

	if (off >= keep) {
		memcpy(b + off - keep, e->rbuf + e->roff, keep);
		relay_buf_put(w, e->rbuf);
		e->rbuf = b;
		e->roff = off - keep;
	} else if (keep + len <= RELAY_BUF) {
		memmove(e->rbuf, e->rbuf + e->roff, keep);
		memcpy(e->rbuf + keep, b + off, len);
		relay_buf_put(w, b);
		e->roff = 0;
	} else {
		relay_buf_put(w, b);
		errno = EPROTO;
		return -1;
	}
	e->rlen = keep + len;
	return (ssize_t)len;
}

static ssize_t
link_fill(struct end *e)
{
	char *b = NULL;
	size_t off = 0;
	ssize_t got;

	assert(e->rlen > 0 || e->rbuf == NULL);
	got = relay_mem_take(e, &b, &off);
	if (got <= 0)
		return got;
	if (e->rlen > 0)
		return link_join(e, b, off, (size_t)got);
	e->rbuf = b;
	e->roff = off;
	e->rlen = (size_t)got;
	return got;
}

static ssize_t
mem_pull_buffered(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	return relay_tls_pull_buffered(ptr, data, len, link_fill);
}

/* Never waits: 1 when a pull has something to say, else EAGAIN. */
static int
mem_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct end *e = ptr;

	(void)ms;
	if (e->rlen > 0 || relay_mem_readable(e))
		return 1;
	gnutls_transport_set_errno(e->tls, EAGAIN);
	return -1;
}

static void
mem_start(struct end *e)
{
	gnutls_transport_set_pull_function(e->tls, mem_pull_buffered);
	gnutls_transport_set_push_function(e->tls, relay_tls_push);
}

/* Hand wbuf's records to the link: the buffer itself, or a copy of a
 * few bytes into the link's last one. */
static enum xio
link_flush(struct worker *w, struct end *e)
{
	if (e->wlen == 0)
		return XIO_OK;
	if (relay_mem_give(e, &e->wbuf, e->woff, e->wlen) != 0)
		return errno == EAGAIN ? XIO_AGAIN : XIO_ERR;
	relay_buf_put(w, e->wbuf);      /* NULL when given whole */
	e->wbuf = NULL;
	e->woff = e->wlen = 0;
	return XIO_OK;
}

static enum xio
mem_connected(struct end *e, int *err)
{
	(void)e;
	*err = 0;
	return XIO_OK;
}

static int
mem_queued(struct end *e)
{
	return e->rlen > 0 || relay_mem_avail(e) > 0;
}

static int
mem_drained(const struct end *e)
{
	return e->rlen == 0 && relay_mem_avail(e) == 0 &&
	    gnutls_record_check_pending(e->tls) == 0;
}

static enum xio
mem_read(struct worker *w, struct end *e, struct pipe *p)
{
	(void)w;
	return relay_tls_read_records(e, p, mem_queued, link_fill);
}

static enum xio
mem_write(struct worker *w, struct end *e, struct pipe *p)
{
	return relay_tls_write_records(w, e, p, link_flush);
}

/* close_notify, then the link's end of stream. */
static enum xio
mem_shutdown(struct worker *w, struct end *e)
{
	return relay_tls_shutdown_records(w, e, link_flush, relay_mem_shut);
}

static void
mem_watch(struct worker *w, struct end *e, uint32_t ev)
{
	(void)w;
	relay_mem_wait(e, (ev & EPOLLIN) != 0, (ev & EPOLLOUT) != 0);
}

static void
mem_interest(struct worker *w, struct end *e)
{
	(void)w;
	relay_tls_direction(e);
	relay_mem_wait(e, e->want_in, e->want_out);
}

static void
mem_detach(struct worker *w, struct end *e, int *fd, uint32_t *ev)
{
	(void)w;
	*fd = -1;
	*ev = 0;
	relay_mem_owner(e, NULL);
}

static int
mem_attach(struct worker *w, struct end *e, int fd, uint32_t ev)
{
	(void)fd;
	(void)ev;
	relay_mem_owner(e, w);
	return 0;
}

static void
mem_close(struct worker *w, struct end *e, int abortive)
{
	relay_end_release(w, e);
	relay_mem_close(w, e, abortive);
}

static const struct xprt xprt_mem_tls = {
	.name = "tls-memory",
	.connected = mem_connected,
	.handshake = relay_tls_handshake,
	.start = mem_start,
	.read = mem_read,
	.write = mem_write,
	.shutdown = mem_shutdown,
	.pending = relay_tls_pending,
	.drained = mem_drained,
	.watch = mem_watch,
	.interest = mem_interest,
	.rcv_pipe = NULL,
	.snd_pipe = NULL,
	.detach = mem_detach,
	.attach = mem_attach,
	.close = mem_close,
	.write_waits_read = 1,
	.read_failed = "TLS read failed or peer closed without close_notify",
};

/* Opening ends ------------------------------------------------------------ */

int
relay_end_mem_tls(struct conn *c, struct end *e, struct mlink *ml, int side,
    int server, uint32_t ev)
{
	e->c = c;
	e->w.fd = -1;
	e->tls = server ? tls_server_new(-1, &c->peer) :
	    tls_client_new(-1, &c->peer);
	if (e->tls == NULL)
		return -1;
	gnutls_transport_set_ptr(e->tls, e);
	gnutls_transport_set_push_function(e->tls, mem_push);
	gnutls_transport_set_pull_function(e->tls, mem_pull);
	gnutls_transport_set_pull_timeout_function(e->tls, mem_pull_timeout);
	relay_mem_attach(ml, side, e, c->w);
	e->x = &xprt_mem_tls;
	e->x->watch(c->w, e, ev);
	return 0;
}
