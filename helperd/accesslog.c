/* accesslog: a bounded queue of formatted lines and one writer thread
 * (see accesslog.h). */
#include "helperd/accesslog.h"

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

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"

struct accesslog {
	pthread_mutex_t lock;           /* q*, stop, busy, json */
	pthread_cond_t more, drained;
	char *q[ACCESSLOG_QUEUE_MAX];
	size_t qhead, qlen;
	int busy;                       /* the writer holds taken lines */
	int stop;
	int json;
	pthread_mutex_t wlock;          /* fd, path: held while writing */
	int fd;
	char path[4096];
	atomic_int enabled;
	atomic_uint_fast64_t written, dropped;
	pthread_t thread;
	int started;
};

void
accesslog_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char base[32];

	gmtime_r(&s, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
}

static void
write_all(struct accesslog *a, const char *s, size_t n)
{
	while (n > 0 && a->fd >= 0) {
		ssize_t w = write(a->fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("access_log %s: write: %m", a->path);
			return;
		}
		s += w;
		n -= (size_t)w;
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
		char *batch[256];
		size_t n = 0;

		while (a->qlen == 0 && !a->stop)
			pthread_cond_wait(&a->more, &a->lock);
		if (a->qlen == 0 && a->stop)
			break;
		while (a->qlen > 0 && n < UTIL_ARRAY_LEN(batch)) {
			batch[n++] = a->q[a->qhead];
			a->qhead = (a->qhead + 1) % ACCESSLOG_QUEUE_MAX;
			a->qlen--;
		}
		a->busy = 1;
		pthread_mutex_unlock(&a->lock);
		pthread_mutex_lock(&a->wlock);
		for (size_t i = 0; i < n; i++) {
			write_all(a, batch[i], strlen(batch[i]));
			free(batch[i]);
		}
		pthread_mutex_unlock(&a->wlock);
		atomic_fetch_add(&a->written, n);
		pthread_mutex_lock(&a->lock);
		a->busy = 0;
		if (a->qlen == 0)
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

	if (a == NULL)
		return NULL;
	a->fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->wlock, NULL);
	pthread_cond_init(&a->more, NULL);
	pthread_cond_init(&a->drained, NULL);
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		accesslog_free(a);
		return NULL;
	}
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
	for (size_t i = 0; i < a->qlen; i++)
		free(a->q[(a->qhead + i) % ACCESSLOG_QUEUE_MAX]);
	if (a->fd >= 0)
		close(a->fd);
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

static const char *
nz(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

static char *
format_json(const struct accesslog_entry *e)
{
	char start[40], end[40];
	json_t *j;
	char *s, *line;
	size_t n;

	accesslog_time(e->end_ms, end, sizeof(end));
	accesslog_time(e->start_ms, start, sizeof(start));
	j = json_pack("{s:s, s:s, s:I, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, "
	    "s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:b, s:b, s:s, s:s?}",
	    "time", end, "start", start, "id", (json_int_t)e->id,
	    "direction", e->direction,
	    "source", nz(e->src), "destination", nz(e->dst),
	    "unit", nz(e->unit), "source_node", nz(e->src_node),
	    "source_addr", nz(e->src_addr),
	    "destination_node", nz(e->dst_node),
	    "destination_instance", nz(e->dst_instance),
	    "source_spiffe", nz(e->src_spiffe),
	    "destination_spiffe", nz(e->dst_spiffe),
	    "bytes_sent", (json_int_t)e->bytes_sent,
	    "bytes_received", (json_int_t)e->bytes_rcvd,
	    "duration_ms", (json_int_t)(e->end_ms - e->start_ms),
	    "tls", e->tls, "tls_resumed", e->resumed,
	    "result", e->result, "reason", nz(e->reason));
	if (j == NULL)
		return NULL;
	if (e->pid > 0)
		json_object_set_new(j, "pid", json_integer(e->pid));
	if (e->uid >= 0)
		json_object_set_new(j, "uid", json_integer(e->uid));
	if (e->src_port > 0)
		json_object_set_new(j, "source_port",
		    json_integer(e->src_port));
	/* Unknown fields are left out rather than null. */
	{
		const char *k;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(j, tmp, k, v)
			if (json_is_null(v))
				json_object_del(j, k);
	}
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((line = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

/* Text: key=value, values without spaces or quoted. */
static char *
format_text(const struct accesslog_entry *e)
{
	char end[40], who[256] = "", *line = NULL;

	accesslog_time(e->end_ms, end, sizeof(end));
	if (e->pid > 0 || e->uid >= 0)
		snprintf(who, sizeof(who), " pid=%ld uid=%ld unit=%s",
		    e->pid, e->uid, nz(e->unit) ? e->unit : "-");
	if (asprintf(&line, "%s %s id=%llu %s => %s%s src_node=%s "
	    "src_addr=%s dst_node=%s dst_instance=%s src_id=%s dst_id=%s "
	    "sent=%llu rcvd=%llu duration_ms=%lld tls=%s result=%s "
	    "reason=\"%s\"\n", end, e->direction,
	    (unsigned long long)e->id, nz(e->src) ? e->src : "-",
	    nz(e->dst) ? e->dst : "-", who,
	    nz(e->src_node) ? e->src_node : "-",
	    nz(e->src_addr) ? e->src_addr : "-",
	    nz(e->dst_node) ? e->dst_node : "-",
	    nz(e->dst_instance) ? e->dst_instance : "-",
	    nz(e->src_spiffe) ? e->src_spiffe : "-",
	    nz(e->dst_spiffe) ? e->dst_spiffe : "-",
	    (unsigned long long)e->bytes_sent,
	    (unsigned long long)e->bytes_rcvd,
	    (long long)(e->end_ms - e->start_ms),
	    !e->tls ? "none" : e->resumed ? "resumed" : "full",
	    e->result, nz(e->reason) ? e->reason : "") < 0)
		return NULL;
	/* A reason is ours, but may quote a peer's words: one line. */
	for (char *p = line; *p != '\0'; p++)
		if ((*p == '\n' && p[1] != '\0') || *p == '\r')
			*p = ' ';
	return line;
}

void
accesslog_submit(struct accesslog *a, const struct accesslog_entry *e)
{
	char *line;
	int json;

	if (!accesslog_enabled(a))
		return;
	pthread_mutex_lock(&a->lock);
	json = a->json;
	/* Full: drop now rather than format a line nobody will write. */
	if (a->qlen == ACCESSLOG_QUEUE_MAX) {
		pthread_mutex_unlock(&a->lock);
		atomic_fetch_add(&a->dropped, 1);
		return;
	}
	pthread_mutex_unlock(&a->lock);
	line = json ? format_json(e) : format_text(e);
	if (line == NULL) {
		atomic_fetch_add(&a->dropped, 1);
		return;
	}
	pthread_mutex_lock(&a->lock);
	if (a->qlen == ACCESSLOG_QUEUE_MAX) {
		pthread_mutex_unlock(&a->lock);
		free(line);
		atomic_fetch_add(&a->dropped, 1);
		return;
	}
	a->q[(a->qhead + a->qlen) % ACCESSLOG_QUEUE_MAX] = line;
	a->qlen++;
	pthread_cond_signal(&a->more);
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
	while ((a->qlen > 0 || a->busy) && !a->stop)
		pthread_cond_wait(&a->drained, &a->lock);
	pthread_mutex_unlock(&a->lock);
}
