/* relay_mem: an in-memory link between two ends of this process, in
 * place of a socketpair: the two TLS ends of a same-node pair push their
 * records into it and pull the other's from it (relay_xprt.c). Two fds
 * fewer per pair, no syscall per record.
 *
 * Each direction is a bounded queue of pooled RELAY_BUF chunks, held
 * only while they hold bytes (an idle pair holds none). A side is told,
 * as epoll would tell a socket, when what it waits for arrives: bytes to
 * read, room to write, the other side's end or close. Telling runs the
 * connection's relay_conn_event on its own worker: after the current
 * callback (loop_defer) when it is this worker, through the worker's
 * queue (a job) when the side has moved to another one. One mutex per
 * link guards both directions; it is never held while telling. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "helperd/relay/relay_int.h"

/* Chunks per direction: about what a socketpair would buffer. */
#define MEM_CHUNKS 4

struct mside {
	struct mlink *ml;
	int idx;
	struct end *e;          /* NULL once closed */
	struct worker *owner;   /* e's worker; NULL while moving or closed */
	uint32_t mask;          /* what e waits for: EPOLLIN, EPOLLOUT */
	int wait_in, wait_out;  /* ... and has not got yet: tell it then */
	struct worker *queued;  /* a telling is on its way to this worker */
	int shut;               /* writes no more */
	int gone;               /* closed: 1, or 2 reset */
	/* What this side wrote, for the other to read: chunk[0] from head,
	 * chunk[n - 1] up to tail. */
	char *chunk[MEM_CHUNKS];
	int n;
	size_t head, tail, bytes;
};

struct mlink {
	pthread_mutex_t lock;
	int refs;               /* sides attached, tellings under way, and
	                           the creator's until it lets go */
	struct mside s[2];
};

static void mem_run(void *arg);

struct mlink *
relay_mem_new(void)
{
	struct mlink *ml = calloc(1, sizeof(*ml));

	if (ml == NULL)
		return NULL;
	pthread_mutex_init(&ml->lock, NULL);
	ml->refs = 1;
	for (int i = 0; i < 2; i++) {
		ml->s[i].ml = ml;
		ml->s[i].idx = i;
	}
	return ml;
}

/* Under the lock: give back the chunks s holds. */
static void
side_empty(struct worker *w, struct mside *s)
{
	for (int i = 0; i < s->n; i++)
		relay_buf_put(w, s->chunk[i]);
	s->n = 0;
	s->head = s->tail = s->bytes = 0;
}

void
relay_mem_unref(struct worker *w, struct mlink *ml)
{
	int last;

	pthread_mutex_lock(&ml->lock);
	last = --ml->refs == 0;
	pthread_mutex_unlock(&ml->lock);
	if (!last)
		return;
	side_empty(w, &ml->s[0]);
	side_empty(w, &ml->s[1]);
	pthread_mutex_destroy(&ml->lock);
	free(ml);
}

static struct mside *
side_of(const struct end *e)
{
	return &e->ml->s[e->side];
}

static struct mside *
other_of(const struct end *e)
{
	return &e->ml->s[!e->side];
}

/* Room for s to write. */
static size_t
side_room(const struct mside *s)
{
	return (size_t)(MEM_CHUNKS - s->n) * RELAY_BUF +
	    (s->n > 0 ? RELAY_BUF - s->tail : 0);
}

/* Would a pull from what o wrote say something? */
static int
side_readable(const struct mside *o)
{
	return o->bytes > 0 || o->shut || o->gone;
}

static int
side_writable(const struct mside *s, const struct mside *o)
{
	return o->gone || side_room(s) >= TLS_RECORD_ROOM;
}

/* Under the lock: s is to be told. The worker to tell it on (post()
 * after unlocking), or NULL: a telling is already on its way, s is
 * moving (its new worker pumps it anyway) or closed. */
static struct worker *
tell(struct mside *s)
{
	if (s->queued != NULL || s->e == NULL || s->owner == NULL)
		return NULL;
	s->queued = s->owner;
	s->ml->refs++;
	return s->owner;
}

/* Not under the lock: tell s on worker to (from tell()); from is the
 * calling thread's worker. */
static void
post(struct worker *from, struct mside *s, struct worker *to)
{
	struct mlink *ml = s->ml;

	if (to == NULL)
		return;
	if (to == from) {
		if (loop_defer(to->loop, mem_run, s) == 0)
			return;
	} else {
		struct job j = { .fd = -1, .ml = ml, .side = s->idx };

		if (relay_worker_post(to, &j) == 0)
			return;
	}
	/* Out of memory, or the worker is stopping (and closes s). */
	log_warn("relay: cannot wake a same-node connection (out of memory "
	    "or stopping)");
	pthread_mutex_lock(&ml->lock);
	s->queued = NULL;
	pthread_mutex_unlock(&ml->lock);
	relay_mem_unref(from, ml);
}

/* On worker w: s was told. Run its connection with what is there for it
 * (as epoll events), or pass the telling on to the worker it moved to. */
static void
dispatch(struct worker *w, struct mside *s)
{
	struct mlink *ml = s->ml;
	struct mside *o = &ml->s[!s->idx];
	struct worker *fwd = NULL;
	struct end *e = NULL;
	uint32_t ev = 0;

	pthread_mutex_lock(&ml->lock);
	s->queued = NULL;
	if (s->e != NULL && s->owner == w) {
		e = s->e;
		if ((s->mask & EPOLLIN) && side_readable(o))
			ev |= EPOLLIN;
		if ((s->mask & EPOLLOUT) && side_writable(s, o))
			ev |= EPOLLOUT;
		if (o->gone)
			ev |= EPOLLHUP;
	} else if (s->e != NULL) {
		fwd = tell(s);
	}
	pthread_mutex_unlock(&ml->lock);
	post(w, s, fwd);
	/* Only this worker closes or moves e: it is still there. */
	if (ev != 0)
		relay_conn_event(e, ev);
	relay_mem_unref(w, ml);
}

static void
mem_run(void *arg)
{
	struct mside *s = arg;

	/* Set by tell() before the defer, cleared only by dispatch. */
	dispatch(s->queued, s);
}

void
relay_mem_job(struct worker *w, struct mlink *ml, int side)
{
	dispatch(w, &ml->s[side]);
}

void
relay_mem_job_drop(struct worker *w, struct mlink *ml, int side)
{
	pthread_mutex_lock(&ml->lock);
	ml->s[side].queued = NULL;
	pthread_mutex_unlock(&ml->lock);
	relay_mem_unref(w, ml);
}

void
relay_mem_attach(struct mlink *ml, int side, struct end *e, struct worker *w)
{
	pthread_mutex_lock(&ml->lock);
	ml->s[side].e = e;
	ml->s[side].owner = w;
	ml->refs++;
	pthread_mutex_unlock(&ml->lock);
	e->ml = ml;
	e->side = side;
}

void
relay_mem_owner(struct end *e, struct worker *w)
{
	struct mside *s = side_of(e);

	pthread_mutex_lock(&e->ml->lock);
	s->owner = w;
	pthread_mutex_unlock(&e->ml->lock);
}

ssize_t
relay_mem_push(struct end *e, const void *data, size_t len)
{
	struct worker *w = e->c->w, *to = NULL;
	struct mside *s = side_of(e), *o = other_of(e);
	const char *src = data;
	size_t done = 0;
	int nomem = 0;

	pthread_mutex_lock(&e->ml->lock);
	if (o->gone) {
		pthread_mutex_unlock(&e->ml->lock);
		errno = EPIPE;
		return -1;
	}
	while (done < len) {
		size_t k;

		if (s->n == 0 || s->tail == RELAY_BUF) {
			char *b;

			if (s->n == MEM_CHUNKS)
				break;
			if ((b = relay_buf_get(w)) == NULL) {
				nomem = 1;
				break;
			}
			if (s->n == 0)
				s->head = 0;
			s->chunk[s->n++] = b;
			s->tail = 0;
		}
		k = len - done < RELAY_BUF - s->tail ? len - done :
		    RELAY_BUF - s->tail;
		memcpy(s->chunk[s->n - 1] + s->tail, src + done, k);
		s->tail += k;
		done += k;
	}
	s->bytes += done;
	if (done > 0 && o->wait_in) {
		o->wait_in = 0;
		to = tell(o);
	}
	pthread_mutex_unlock(&e->ml->lock);
	post(w, o, to);
	if (done == 0) {
		errno = nomem ? ENOMEM : EAGAIN;
		return -1;
	}
	return (ssize_t)done;
}

ssize_t
relay_mem_pull(struct end *e, void *data, size_t len)
{
	struct worker *w = e->c->w, *to = NULL;
	struct mside *o = other_of(e);
	char *dst = data;
	size_t done = 0;

	pthread_mutex_lock(&e->ml->lock);
	if (o->gone == 2) {
		pthread_mutex_unlock(&e->ml->lock);
		errno = ECONNRESET;
		return -1;
	}
	if (o->bytes == 0) {
		int end = o->shut || o->gone;

		pthread_mutex_unlock(&e->ml->lock);
		if (end)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	while (done < len && o->bytes > 0) {
		size_t stop = o->n == 1 ? o->tail : RELAY_BUF;
		size_t k = len - done < stop - o->head ? len - done :
		    stop - o->head;

		memcpy(dst + done, o->chunk[0] + o->head, k);
		o->head += k;
		o->bytes -= k;
		done += k;
		if (o->head < stop)
			continue;
		/* Chunk read: back to the pool. */
		relay_buf_put(w, o->chunk[0]);
		memmove(o->chunk, o->chunk + 1,
		    (size_t)(o->n - 1) * sizeof(o->chunk[0]));
		o->n--;
		o->head = 0;
		if (o->n == 0)
			o->tail = 0;
	}
	if (o->wait_out && side_room(o) >= TLS_RECORD_ROOM) {
		o->wait_out = 0;
		to = tell(o);
	}
	pthread_mutex_unlock(&e->ml->lock);
	post(w, o, to);
	return (ssize_t)done;
}

size_t
relay_mem_avail(const struct end *e)
{
	size_t n;

	pthread_mutex_lock(&e->ml->lock);
	n = other_of(e)->bytes;
	pthread_mutex_unlock(&e->ml->lock);
	return n;
}

int
relay_mem_readable(const struct end *e)
{
	int r;

	pthread_mutex_lock(&e->ml->lock);
	r = side_readable(other_of(e));
	pthread_mutex_unlock(&e->ml->lock);
	return r;
}

ssize_t
relay_mem_room(struct end *e)
{
	ssize_t room;

	pthread_mutex_lock(&e->ml->lock);
	room = other_of(e)->gone ? -1 : (ssize_t)side_room(side_of(e));
	pthread_mutex_unlock(&e->ml->lock);
	return room;
}

void
relay_mem_shut(struct end *e)
{
	struct mside *s = side_of(e), *o = other_of(e);
	struct worker *to = NULL;

	pthread_mutex_lock(&e->ml->lock);
	s->shut = 1;
	if (o->wait_in) {
		o->wait_in = 0;
		to = tell(o);
	}
	pthread_mutex_unlock(&e->ml->lock);
	post(e->c->w, o, to);
}

void
relay_mem_wait(struct end *e, int in, int out)
{
	struct mside *s = side_of(e), *o = other_of(e);
	struct worker *to = NULL;
	int r, wr;

	pthread_mutex_lock(&e->ml->lock);
	s->mask = (in ? EPOLLIN : 0) | (out ? EPOLLOUT : 0);
	r = side_readable(o);
	wr = side_writable(s, o);
	s->wait_in = in && !r;
	s->wait_out = out && !wr;
	/* Already there: tell now (level-triggered, as epoll). */
	if ((in && r) || (out && wr))
		to = tell(s);
	pthread_mutex_unlock(&e->ml->lock);
	/* What the end waits for, as a socket's watch would say
	 * (relay_conn_event: hang-ups of an end that waits for nothing). */
	e->w.events = s->mask;
	post(e->c->w, s, to);
}

void
relay_mem_close(struct worker *w, struct end *e, int abortive)
{
	struct mlink *ml = e->ml;
	struct mside *s = side_of(e), *o = other_of(e);
	struct worker *to;

	pthread_mutex_lock(&ml->lock);
	s->e = NULL;
	s->owner = NULL;
	s->mask = 0;
	s->wait_in = s->wait_out = 0;
	s->gone = abortive ? 2 : 1;
	/* Nobody reads what the other side wrote any more; after a reset,
	 * nobody reads what this side wrote either. */
	side_empty(w, o);
	if (abortive)
		side_empty(w, s);
	/* The other side hears of it whatever it waits for (a hang-up). */
	to = tell(o);
	pthread_mutex_unlock(&ml->lock);
	e->ml = NULL;
	post(w, o, to);
	relay_mem_unref(w, ml);
}
