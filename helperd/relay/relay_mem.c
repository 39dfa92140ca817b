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
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "helperd/relay/relay_int.h"

/* Chunks per direction: about what a socketpair would buffer. A write
 * of at most MEM_COPY_MAX bytes is copied into the last chunk when it
 * fits (small records of an interactive flow share a chunk); a larger
 * one hands its buffer over (relay_mem_give: no copy). */
#define MEM_CHUNKS   4
#define MEM_COPY_MAX 4096

/* Bytes of a RELAY_BUF buffer, from off, len of them. */
struct chunk {
	char *buf;
	size_t off, len;
};

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
	/* What this side wrote, for the other to read: a ring of n chunks
	 * from q[h]. */
	struct chunk q[MEM_CHUNKS];
	int h, n;
	size_t bytes;
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
		relay_buf_put(w, s->q[(s->h + i) % MEM_CHUNKS].buf);
	s->h = s->n = 0;
	s->bytes = 0;
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

/* The chunk s wrote last (NULL: none), and a new last one. */
static struct chunk *
side_last(struct mside *s)
{
	return s->n > 0 ? &s->q[(s->h + s->n - 1) % MEM_CHUNKS] : NULL;
}

static struct chunk *
side_append(struct mside *s)
{
	assert(s->n < MEM_CHUNKS);
	return &s->q[(s->h + s->n++) % MEM_CHUNKS];
}

/* Bytes the last chunk of s can still take. */
static size_t
chunk_room(const struct chunk *t)
{
	return t == NULL ? 0 : RELAY_BUF - t->off - t->len;
}

/* Room for s to write: a whole chunk, as a give needs. */
static int
side_has_room(const struct mside *s)
{
	return s->n < MEM_CHUNKS;
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
	return o->gone || side_has_room(s);
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
		struct chunk *t = side_last(s);
		size_t k;

		if (chunk_room(t) == 0) {
			char *b;

			if (!side_has_room(s))
				break;
			if ((b = relay_buf_get(w)) == NULL) {
				nomem = 1;
				break;
			}
			t = side_append(s);
			*t = (struct chunk){ .buf = b };
		}
		k = len - done < chunk_room(t) ? len - done : chunk_room(t);
		memcpy(t->buf + t->off + t->len, src + done, k);
		t->len += k;
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

int
relay_mem_give(struct end *e, char **buf, size_t off, size_t len)
{
	struct worker *w = e->c->w, *to = NULL;
	struct mside *s = side_of(e), *o = other_of(e);
	struct chunk *t;

	assert(len > 0 && off + len <= RELAY_BUF);
	pthread_mutex_lock(&e->ml->lock);
	if (o->gone) {
		pthread_mutex_unlock(&e->ml->lock);
		errno = EPIPE;
		return -1;
	}
	t = side_last(s);
	if (len <= MEM_COPY_MAX && chunk_room(t) >= len) {
		memcpy(t->buf + t->off + t->len, *buf + off, len);
		t->len += len;
	} else if (side_has_room(s)) {
		t = side_append(s);
		*t = (struct chunk){ .buf = *buf, .off = off, .len = len };
		*buf = NULL;
	} else {
		pthread_mutex_unlock(&e->ml->lock);
		errno = EAGAIN;
		return -1;
	}
	s->bytes += len;
	if (o->wait_in) {
		o->wait_in = 0;
		to = tell(o);
	}
	pthread_mutex_unlock(&e->ml->lock);
	post(w, o, to);
	return 0;
}

/* Under the lock: o's first chunk is read; back to the pool. */
static void
side_pop(struct worker *w, struct mside *o)
{
	relay_buf_put(w, o->q[o->h].buf);
	o->h = (o->h + 1) % MEM_CHUNKS;
	o->n--;
}

/* Under the lock: o was read from. The worker to tell (post()) if it
 * waited for room. */
static struct worker *
side_read(struct mside *o)
{
	if (o->wait_out && side_has_room(o)) {
		o->wait_out = 0;
		return tell(o);
	}
	return NULL;
}

/* Under the lock: what a read finding nothing says (0: the end). */
static ssize_t
side_nothing(const struct mside *o)
{
	if (o->gone == 2) {
		errno = ECONNRESET;
		return -1;
	}
	if (o->shut || o->gone)
		return 0;
	errno = EAGAIN;
	return -1;
}

ssize_t
relay_mem_pull(struct end *e, void *data, size_t len)
{
	struct worker *w = e->c->w, *to = NULL;
	struct mside *o = other_of(e);
	char *dst = data;
	size_t done = 0;

	pthread_mutex_lock(&e->ml->lock);
	if (o->gone == 2 || o->bytes == 0) {
		ssize_t rc = side_nothing(o);

		pthread_mutex_unlock(&e->ml->lock);
		return rc;
	}
	while (done < len && o->n > 0) {
		struct chunk *t = &o->q[o->h];
		size_t k = len - done < t->len ? len - done : t->len;

		memcpy(dst + done, t->buf + t->off, k);
		t->off += k;
		t->len -= k;
		done += k;
		if (t->len == 0)
			side_pop(w, o);
	}
	o->bytes -= done;
	to = side_read(o);
	pthread_mutex_unlock(&e->ml->lock);
	post(w, o, to);
	return (ssize_t)done;
}

ssize_t
relay_mem_take(struct end *e, char **buf, size_t *off)
{
	struct worker *w = e->c->w, *to = NULL;
	struct mside *o = other_of(e);
	struct chunk *t;
	size_t len;

	pthread_mutex_lock(&e->ml->lock);
	if (o->gone == 2 || o->n == 0) {
		ssize_t rc = side_nothing(o);

		pthread_mutex_unlock(&e->ml->lock);
		return rc;
	}
	t = &o->q[o->h];
	*buf = t->buf;
	*off = t->off;
	len = t->len;
	o->h = (o->h + 1) % MEM_CHUNKS;
	o->n--;
	o->bytes -= len;
	to = side_read(o);
	pthread_mutex_unlock(&e->ml->lock);
	post(w, o, to);
	return (ssize_t)len;
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
