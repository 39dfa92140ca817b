/* accesslog: two bounded record buffers and one writer thread that
 * formats and writes them a batch at a time (see accesslog.h). */
#include "helperd/obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* The strings of an entry, in record order. */
enum { S_DIR, S_SRC, S_DST, S_UNIT, S_SNODE, S_SADDR, S_DNODE, S_DINST,
	S_SSPIFFE, S_DSPIFFE, S_RESULT, S_REASON, S_N };

/* One queued entry: this header, then S_N NUL-terminated strings; the
 * whole padded to 8 bytes. */
struct rec {
	uint32_t size;
	uint16_t len[S_N];
	uint8_t tls, resumed;
	int32_t src_port;
	uint64_t id, sent, rcvd;
	int64_t start_ms, end_ms, pid, uid;
	char s[];
};

#define OUT_BYTES (256 * 1024)  /* the writer's formatted lines */

struct accesslog {
	pthread_mutex_t lock;           /* buf, cur, used, flags below */
	pthread_cond_t more, drained;
	char *buf[2];                   /* submitters fill buf[cur] */
	int cur;
	size_t used;                    /* bytes of records in buf[cur] */
	int idle;                       /* the writer waits for any record */
	int flushing;                   /* flushes waiting: no batch delay */
	int busy;                       /* the writer holds taken records */
	int stop;
	int json;
	pthread_mutex_t wlock;          /* fd, path, werr: held while writing */
	int fd;
	char path[4096];
	int werr;                       /* the last write failed (logged) */
	char *out;                      /* writer only */
	atomic_int enabled;
	atomic_uint_fast64_t written, dropped;
	pthread_t thread;
	int started;
};

/* Formatting --------------------------------------------------------- */

struct sb {
	char *p;
	size_t len, cap;
	int full;
};

static void
sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->full || n > b->cap - b->len) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
sb_str(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void
sb_u64(struct sb *b, uint64_t v)
{
	char d[24];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	sb_put(b, d + i, sizeof(d) - i);
}

static void
sb_i64(struct sb *b, int64_t v)
{
	if (v < 0) {
		sb_put(b, "-", 1);
		sb_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		sb_u64(b, (uint64_t)v);
	}
}

/* Digits of v, zero-padded to n. */
static void
digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
accesslog_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char t[25];

	if (len == 0)
		return;
	if (ms < 0 || gmtime_r(&s, &tm) == NULL || tm.tm_year + 1900 > 9999) {
		util_strlcpy(buf, "1970-01-01T00:00:00.000Z", len);
		return;
	}
	/* YYYY-MM-DDTHH:MM:SS.mmmZ */
	digits(t, (unsigned)tm.tm_year + 1900, 4);
	t[4] = '-';
	digits(t + 5, (unsigned)tm.tm_mon + 1, 2);
	t[7] = '-';
	digits(t + 8, (unsigned)tm.tm_mday, 2);
	t[10] = 'T';
	digits(t + 11, (unsigned)tm.tm_hour, 2);
	t[13] = ':';
	digits(t + 14, (unsigned)tm.tm_min, 2);
	t[16] = ':';
	digits(t + 17, (unsigned)tm.tm_sec, 2);
	t[19] = '.';
	digits(t + 20, (unsigned)(ms % 1000), 3);
	t[23] = 'Z';
	t[24] = '\0';
	util_strlcpy(buf, t, len);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if none. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t k;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;      /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

/* A JSON string: quoted, escaped as jansson does; a byte that is not
 * valid UTF-8 becomes U+FFFD (a cut string may end inside one). */
static void
sb_jstr(struct sb *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 0, run = 0;

	sb_put(b, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		const char *esc = NULL;
		char u[8];
		size_t k;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80 && (k = utf8_len(s + i, n - i)) > 0) {
			i += k;
			run += k;
			continue;
		}
		sb_put(b, (const char *)s + i - run, run);
		run = 0;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = "0123456789abcdef"[c >> 4];
				u[5] = "0123456789abcdef"[c & 15];
				u[6] = '\0';
				esc = u;
			} else {
				esc = "\\ufffd";
			}
		}
		sb_str(b, esc);
		i++;
	}
	sb_put(b, (const char *)s + i - run, run);
	sb_put(b, "\"", 1);
}

static int
nz(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static void
jkey_str(struct sb *b, const char *key, const char *v)
{
	if (!nz(v))
		return;
	sb_put(b, ",\"", 2);
	sb_str(b, key);
	sb_put(b, "\":", 2);
	sb_jstr(b, v);
}

static void
jkey_num(struct sb *b, const char *key, int64_t v)
{
	sb_put(b, ",\"", 2);
	sb_str(b, key);
	sb_put(b, "\":", 2);
	sb_i64(b, v);
}

static void
jkey_bool(struct sb *b, const char *key, int v)
{
	sb_put(b, ",\"", 2);
	sb_str(b, key);
	sb_str(b, v ? "\":true" : "\":false");
}

static void
format_json(struct sb *b, const struct accesslog_entry *e)
{
	char t[40];

	accesslog_time(e->end_ms, t, sizeof(t));
	sb_str(b, "{\"time\":\"");
	sb_str(b, t);
	accesslog_time(e->start_ms, t, sizeof(t));
	sb_str(b, "\",\"start\":\"");
	sb_str(b, t);
	sb_put(b, "\"", 1);
	jkey_num(b, "id", (int64_t)e->id);
	sb_str(b, ",\"direction\":");
	sb_jstr(b, e->direction != NULL ? e->direction : "");
	jkey_str(b, "source", e->src);
	jkey_str(b, "destination", e->dst);
	jkey_str(b, "unit", e->unit);
	jkey_str(b, "source_node", e->src_node);
	jkey_str(b, "source_addr", e->src_addr);
	jkey_str(b, "destination_node", e->dst_node);
	jkey_str(b, "destination_instance", e->dst_instance);
	jkey_str(b, "source_spiffe", e->src_spiffe);
	jkey_str(b, "destination_spiffe", e->dst_spiffe);
	jkey_num(b, "bytes_sent", (int64_t)e->bytes_sent);
	jkey_num(b, "bytes_received", (int64_t)e->bytes_rcvd);
	jkey_num(b, "duration_ms", e->end_ms - e->start_ms);
	jkey_bool(b, "tls", e->tls);
	jkey_bool(b, "tls_resumed", e->resumed);
	sb_str(b, ",\"result\":");
	sb_jstr(b, e->result != NULL ? e->result : "");
	jkey_str(b, "reason", e->reason);
	if (e->pid > 0)
		jkey_num(b, "pid", e->pid);
	if (e->uid >= 0)
		jkey_num(b, "uid", e->uid);
	if (e->src_port > 0)
		jkey_num(b, "source_port", e->src_port);
	sb_put(b, "}\n", 2);
}

static const char *
dash(const char *s)
{
	return nz(s) ? s : "-";
}

/* Text: key=value, values without spaces or quoted. */
static void
format_text(struct sb *b, const struct accesslog_entry *e)
{
	char end[40], who[ACCESSLOG_STR_MAX + 64] = "";
	size_t start = b->len;
	int n;

	accesslog_time(e->end_ms, end, sizeof(end));
	if (e->pid > 0 || e->uid >= 0)
		snprintf(who, sizeof(who), " pid=%ld uid=%ld unit=%s",
		    e->pid, e->uid, dash(e->unit));
	if (b->full)
		return;
	n = snprintf(b->p + b->len, b->cap - b->len, "%s %s id=%llu %s => "
	    "%s%s src_node=%s src_addr=%s dst_node=%s dst_instance=%s "
	    "src_id=%s dst_id=%s sent=%llu rcvd=%llu duration_ms=%lld tls=%s "
	    "result=%s reason=\"%s\"", end, dash(e->direction),
	    (unsigned long long)e->id, dash(e->src), dash(e->dst), who,
	    dash(e->src_node), dash(e->src_addr), dash(e->dst_node),
	    dash(e->dst_instance), dash(e->src_spiffe), dash(e->dst_spiffe),
	    (unsigned long long)e->bytes_sent,
	    (unsigned long long)e->bytes_rcvd,
	    (long long)(e->end_ms - e->start_ms),
	    !e->tls ? "none" : e->resumed ? "resumed" : "full",
	    dash(e->result), nz(e->reason) ? e->reason : "");
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->full = 1;
		return;
	}
	b->len += (size_t)n;
	/* A reason is ours, but may quote a peer's words: one line. */
	for (size_t i = start; i < b->len; i++)
		if (b->p[i] == '\n' || b->p[i] == '\r')
			b->p[i] = ' ';
	sb_put(b, "\n", 1);
}

size_t
accesslog_format(const struct accesslog_entry *e, int json, char *buf,
    size_t len)
{
	struct sb b = { .p = buf, .cap = len };

	if (json)
		format_json(&b, e);
	else
		format_text(&b, e);
	return b.full ? 0 : b.len;
}

/* The writer ---------------------------------------------------------- */

static void
write_all(struct accesslog *a, const char *s, size_t n, size_t lines)
{
	while (n > 0 && a->fd >= 0) {
		ssize_t w = write(a->fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!a->werr)
				log_warn("access_log %s: write: %m (lines are "
				    "dropped until a write succeeds)", a->path);
			a->werr = 1;
			atomic_fetch_add(&a->dropped, lines);
			return;
		}
		s += w;
		n -= (size_t)w;
	}
	if (a->fd < 0)
		return;
	if (a->werr)
		log_info("access_log %s: writing again", a->path);
	a->werr = 0;
	atomic_fetch_add(&a->written, lines);
}

/* Format and write the n bytes of records at p. */
static void
write_batch(struct accesslog *a, const char *p, size_t n, int json)
{
	struct sb b = { .p = a->out, .cap = OUT_BYTES };
	size_t lines = 0, off = 0;

	pthread_mutex_lock(&a->wlock);
	while (off < n) {
		const struct rec *r = (const struct rec *)(const void *)(p + off);
		const char *s[S_N], *q = r->s;
		struct accesslog_entry e;
		size_t before;

		for (int i = 0; i < S_N; i++) {
			s[i] = r->len[i] > 0 ? q : NULL;
			q += r->len[i] + 1;
		}
		e = (struct accesslog_entry) {
			.id = r->id, .start_ms = r->start_ms,
			.end_ms = r->end_ms, .direction = s[S_DIR],
			.src = s[S_SRC], .dst = s[S_DST], .pid = (long)r->pid,
			.uid = (long)r->uid, .unit = s[S_UNIT],
			.src_node = s[S_SNODE], .src_addr = s[S_SADDR],
			.src_port = r->src_port, .dst_node = s[S_DNODE],
			.dst_instance = s[S_DINST], .src_spiffe = s[S_SSPIFFE],
			.dst_spiffe = s[S_DSPIFFE], .bytes_sent = r->sent,
			.bytes_rcvd = r->rcvd, .tls = r->tls,
			.resumed = r->resumed, .result = s[S_RESULT],
			.reason = s[S_REASON],
		};
		off += r->size;
		if (b.cap - b.len < ACCESSLOG_LINE_MAX) {
			write_all(a, b.p, b.len, lines);
			b.len = 0;
			lines = 0;
		}
		before = b.len;
		if (json)
			format_json(&b, &e);
		else
			format_text(&b, &e);
		if (b.full) {           /* cannot happen: strings are cut */
			b.len = before;
			b.full = 0;
			atomic_fetch_add(&a->dropped, 1);
			continue;
		}
		lines++;
	}
	if (b.len > 0)
		write_all(a, b.p, b.len, lines);
	pthread_mutex_unlock(&a->wlock);
}

static void
deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *
writer_main(void *arg)
{
	struct accesslog *a = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct timespec until;
		const char *p;
		size_t n;
		int json;

		while (a->used == 0 && !a->stop) {
			a->idle = 1;
			pthread_cond_wait(&a->more, &a->lock);
		}
		a->idle = 0;
		if (a->used == 0 && a->stop)
			break;
		/* Let a batch gather: one write for many lines. */
		deadline_in(&until, ACCESSLOG_BATCH_MS);
		while (!a->stop && !a->flushing &&
		    a->used < ACCESSLOG_BUF_BYTES / 2 &&
		    pthread_cond_timedwait(&a->more, &a->lock, &until) !=
		    ETIMEDOUT)
			;
		p = a->buf[a->cur];
		n = a->used;
		json = a->json;
		a->cur ^= 1;
		a->used = 0;
		a->busy = 1;
		pthread_mutex_unlock(&a->lock);
		write_batch(a, p, n, json);
		pthread_mutex_lock(&a->lock);
		a->busy = 0;
		if (a->used == 0)
			pthread_cond_broadcast(&a->drained);
	}
	a->busy = 0;
	pthread_cond_broadcast(&a->drained);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

struct accesslog *
accesslog_new(void)
{
	struct accesslog *a = calloc(1, sizeof(*a));
	pthread_condattr_t ca;

	if (a == NULL)
		return NULL;
	a->fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->wlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->more, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&a->drained, NULL);
	/* Pages are touched only as far as records reach. */
	a->buf[0] = malloc(ACCESSLOG_BUF_BYTES);
	a->buf[1] = malloc(ACCESSLOG_BUF_BYTES);
	a->out = malloc(OUT_BYTES);
	if (a->buf[0] == NULL || a->buf[1] == NULL || a->out == NULL ||
	    pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		accesslog_free(a);
		return NULL;
	}
	pthread_setname_np(a->thread, "accesslog");
	a->started = 1;
	return a;
}

void
accesslog_free(struct accesslog *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_signal(&a->more);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	if (a->fd >= 0)
		close(a->fd);
	free(a->buf[0]);
	free(a->buf[1]);
	free(a->out);
	pthread_cond_destroy(&a->more);
	pthread_cond_destroy(&a->drained);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->wlock);
	free(a);
}

int
accesslog_configure(struct accesslog *a, const char *path, int json,
    char *err, size_t errlen)
{
	int fd = -1, old;

	if (path != NULL && path[0] != '\0') {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd < 0) {
			snprintf(err, errlen, "access_log: cannot open %s: %s",
			    path, strerror(errno));
			return -1;
		}
	}
	/* Lines queued before the switch go to the file they were meant
	 * for: let the writer drain first (it never waits on us). */
	accesslog_flush(a);
	pthread_mutex_lock(&a->lock);
	a->json = json;
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_lock(&a->wlock);
	old = a->fd;
	a->fd = fd;
	a->werr = 0;
	util_strlcpy(a->path, fd >= 0 ? path : "", sizeof(a->path));
	atomic_store(&a->enabled, fd >= 0);
	pthread_mutex_unlock(&a->wlock);
	if (old >= 0)
		close(old);
	return 0;
}

int
accesslog_enabled(const struct accesslog *a)
{
	return a != NULL && atomic_load_explicit(&a->enabled,
	    memory_order_relaxed);
}

static size_t
cut_len(const char *s)
{
	return s != NULL ? strnlen(s, ACCESSLOG_STR_MAX - 1) : 0;
}

void
accesslog_submit(struct accesslog *a, const struct accesslog_entry *e)
{
	const char *s[S_N] = {
		[S_DIR] = e->direction, [S_SRC] = e->src, [S_DST] = e->dst,
		[S_UNIT] = e->unit, [S_SNODE] = e->src_node,
		[S_SADDR] = e->src_addr, [S_DNODE] = e->dst_node,
		[S_DINST] = e->dst_instance, [S_SSPIFFE] = e->src_spiffe,
		[S_DSPIFFE] = e->dst_spiffe, [S_RESULT] = e->result,
		[S_REASON] = e->reason,
	};
	size_t len[S_N], size = sizeof(struct rec);
	struct rec *r;
	char *q;
	int wake;

	if (!accesslog_enabled(a))
		return;
	for (int i = 0; i < S_N; i++) {
		len[i] = cut_len(s[i]);
		size += len[i] + 1;
	}
	size = (size + 7) & ~(size_t)7;
	pthread_mutex_lock(&a->lock);
	if (size > ACCESSLOG_BUF_BYTES - a->used) {
		pthread_mutex_unlock(&a->lock);
		atomic_fetch_add(&a->dropped, 1);
		return;
	}
	r = (struct rec *)(void *)(a->buf[a->cur] + a->used);
	r->size = (uint32_t)size;
	r->tls = e->tls != 0;
	r->resumed = e->resumed != 0;
	r->src_port = e->src_port;
	r->id = e->id;
	r->sent = e->bytes_sent;
	r->rcvd = e->bytes_rcvd;
	r->start_ms = e->start_ms;
	r->end_ms = e->end_ms;
	r->pid = e->pid;
	r->uid = e->uid;
	q = r->s;
	for (int i = 0; i < S_N; i++) {
		r->len[i] = (uint16_t)len[i];
		memcpy(q, s[i] != NULL ? s[i] : "", len[i]);
		q[len[i]] = '\0';
		q += len[i] + 1;
	}
	a->used += size;
	/* Wake the writer for the first record of a batch, or early when
	 * half the buffer is taken; not for every line. */
	wake = a->idle || (a->used >= ACCESSLOG_BUF_BYTES / 2 &&
	    a->used - size < ACCESSLOG_BUF_BYTES / 2);
	if (wake) {
		a->idle = 0;
		pthread_cond_signal(&a->more);
	}
	pthread_mutex_unlock(&a->lock);
}

void
accesslog_stats(const struct accesslog *a, uint64_t *written,
    uint64_t *dropped)
{
	*written = a != NULL ? atomic_load(&a->written) : 0;
	*dropped = a != NULL ? atomic_load(&a->dropped) : 0;
}

void
accesslog_flush(struct accesslog *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->flushing++;
	pthread_cond_signal(&a->more);
	while ((a->used > 0 || a->busy) && !a->stop)
		pthread_cond_wait(&a->drained, &a->lock);
	a->flushing--;
	pthread_mutex_unlock(&a->lock);
}
