/* relay_io: moving the bytes of a relayed connection: the pump, through
 * the ends' transports (relay_xprt.c). Buffers and kernel pipes come from
 * per-worker pools and go back as soon as they are empty, so an idle
 * connection holds none. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helperd/relay/relay_int.h"

/* Buffers ------------------------------------------------------------ */

/* Buffers move between workers with the bytes of a same-node pair whose
 * halves run on two of them (the writer takes from its pool, the reader
 * gives back to its own): a worker whose pool overflows passes half of
 * it to the relay's shared pool, one that runs dry takes a batch from
 * there, so neither mallocs nor frees in the steady state. */
#define POOL_BATCH (RELAY_POOL_MAX / 4)

static void
pool_refill(struct worker *w)
{
	struct relay *r = w->r;

	pthread_mutex_lock(&r->pool_mu);
	while (r->n_shared > 0 && w->n_pool < POOL_BATCH)
		w->pool[w->n_pool++] = r->shared[--r->n_shared];
	pthread_mutex_unlock(&r->pool_mu);
}

static void
pool_spill(struct worker *w)
{
	struct relay *r = w->r;

	pthread_mutex_lock(&r->pool_mu);
	while (w->n_pool > RELAY_POOL_MAX / 2) {
		char *b = w->pool[--w->n_pool];

		if (r->n_shared < RELAY_POOL_MAX)
			r->shared[r->n_shared++] = b;
		else
			free(b);
	}
	pthread_mutex_unlock(&r->pool_mu);
}

char *
relay_buf_get(struct worker *w)
{
	if (w->n_pool == 0)
		pool_refill(w);
	if (w->n_pool > 0)
		return w->pool[--w->n_pool];
	return malloc(RELAY_BUF);
}

void
relay_buf_put(struct worker *w, char *b)
{
	if (b == NULL)
		return;
	if (w->n_pool == RELAY_POOL_MAX)
		pool_spill(w);
	w->pool[w->n_pool++] = b;
}

void
relay_pool_fini(struct relay *r)
{
	for (size_t i = 0; i < r->n_shared; i++)
		free(r->shared[i]);
	r->n_shared = 0;
	pthread_mutex_destroy(&r->pool_mu);
}

/* Kernel pipes for splice: taken while they hold bytes, pooled when
 * empty (an idle connection holds none). */
int
relay_kpipe_get(struct worker *w, int kp[2])
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

/* The pump ---------------------------------------------------------- */

/* Through user space: read into p's buffer, write it out. */
static enum relay_pump
pump_copy(struct worker *w, struct end *from, struct end *to,
    struct pipe *p, const char **why)
{
	for (;;) {
		size_t before;

		if (p->len > 0 || to->x->pending(to)) {
			switch (to->x->write(w, to, p)) {
			case XIO_OK:
			case XIO_EOF:
				break;
			case XIO_AGAIN:
				to->want_out = 1;
				return PUMP_OK;
			case XIO_ERR:
				*why = "write failed (peer reset)";
				return PUMP_RESET;
			}
			p->off = 0;
			/* Everything read was written and the source was
			 * drained: wait for an event instead of a read that
			 * would only say EAGAIN (saves a syscall per hop). */
			if (!from->eof_in && from->x->drained(from)) {
				from->short_read = 0;
				from->want_in = 1;
				relay_buf_put(w, p->buf);
				p->buf = NULL;
				return PUMP_OK;
			}
		}
		if (from->eof_in) {
			relay_buf_put(w, p->buf);
			p->buf = NULL;
			if (!to->shut_out) {
				switch (to->x->shutdown(w, to)) {
				case XIO_AGAIN:
					to->want_out = 1;
					break;
				case XIO_ERR:
					*why = "shutdown failed";
					return PUMP_RESET;
				default:
					break;
				}
			}
			return PUMP_OK;
		}
		if (p->buf == NULL && (p->buf = relay_buf_get(w)) == NULL) {
			*why = "out of memory";
			return PUMP_RESET;
		}
		before = p->len;
		switch (from->x->read(w, from, p)) {
		case XIO_OK:
			p->moved += (uint64_t)(p->len - before);
			loop_note_bytes(w->loop, p->len - before);
			break;
		case XIO_EOF:
			from->eof_in = 1;
			break;
		case XIO_AGAIN:
			from->want_in = 1;
			relay_buf_put(w, p->buf);
			p->buf = NULL;
			return PUMP_OK;
		case XIO_ERR:
			*why = from->x->read_failed;
			return PUMP_RESET;
		}
	}
}

/* Two ends that can splice: through a kernel pipe, the bytes never enter
 * user space. */
static enum relay_pump
pump_splice(struct worker *w, struct end *from, struct end *to,
    struct pipe *p, const char **why)
{
	for (;;) {
		size_t n = 0;

		if (p->len > 0) {
			switch (to->x->snd_pipe(to, p->kp, p->len, &n)) {
			case XIO_OK:
				p->len -= n;
				continue;
			case XIO_AGAIN:
				to->want_out = 1;
				return PUMP_OK;
			default:
				*why = "write failed (peer reset)";
				return PUMP_RESET;
			}
		}
		if (from->eof_in) {
			relay_kpipe_put(w, p->kp, 1);
			if (!to->shut_out)
				(void)to->x->shutdown(w, to);
			return PUMP_OK;
		}
		if (p->kp[0] < 0 && relay_kpipe_get(w, p->kp) != 0) {
			*why = "out of pipes";
			return PUMP_RESET;
		}
		switch (from->x->rcv_pipe(from, p->kp, RELAY_SPLICE, &n)) {
		case XIO_OK:
			p->len = n;
			loop_note_bytes(w->loop, n);
			break;
		case XIO_EOF:
			from->eof_in = 1;
			break;
		case XIO_AGAIN:
			from->want_in = 1;
			relay_kpipe_put(w, p->kp, 1);
			return PUMP_OK;
		case XIO_ERR:
			*why = "read failed (peer reset)";
			return PUMP_RESET;
		}
	}
}

enum relay_pump
relay_pump(struct worker *w, struct end *from, struct end *to,
    struct pipe *p, const char **why)
{
	if (from->x->rcv_pipe != NULL && to->x->snd_pipe != NULL)
		return pump_splice(w, from, to, p, why);
	return pump_copy(w, from, to, p, why);
}
