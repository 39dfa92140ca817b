/* http_monitor: GET /v1/agent/monitor[?loglevel=debug] streams helperd's
 * log lines as they are written (Consul's path and parameter). Each
 * watcher has a bounded buffer filled by the log sink (any thread); a
 * watcher that reads slower than helperd logs loses lines, and is told
 * how many. The response waits suspended while the buffer is empty and
 * is resumed by the tick. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/log.h"
#include "helperd/api/http.h"

#define MON_BUF   (256 * 1024)
#define MON_MAX   16                  /* watchers at once */

struct mon {
	struct MHD_Connection *mc;
	int level;
	char *buf;                      /* ring, MON_BUF */
	size_t head, len;
	unsigned long dropped;
	int suspended;                  /* main thread only */
	int used;
};

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mon mons[MON_MAX];
static int mon_stopping;               /* streams end (helperd stops) */

/* log_lock held (log.c): copy the line into each watcher that wants it. */
static void
mon_sink(void *arg, enum log_level lvl, const char *line, size_t len)
{
	(void)arg;
	pthread_mutex_lock(&mon_lock);
	for (int i = 0; i < MON_MAX; i++) {
		struct mon *m = &mons[i];

		if (!m->used || (int)lvl > m->level)
			continue;
		if (m->len + len + 1 > MON_BUF) {
			m->dropped++;
			continue;
		}
		for (size_t k = 0; k <= len; k++) {
			m->buf[(m->head + m->len) % MON_BUF] = k < len ?
			    line[k] : '\n';
			m->len++;
		}
	}
	pthread_mutex_unlock(&mon_lock);
}

/* The sink's level: the most verbose watcher's. */
static void
sink_update(void)
{
	int max = -1;

	for (int i = 0; i < MON_MAX; i++)
		if (mons[i].used && mons[i].level > max)
			max = mons[i].level;
	log_set_sink(max >= 0 ? mon_sink : NULL, NULL, max);
}

static ssize_t
mon_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct mon *m = cls;
	size_t n = 0;
	unsigned long dropped;

	(void)pos;
	if (mon_stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	pthread_mutex_lock(&mon_lock);
	dropped = m->dropped;
	m->dropped = 0;
	while (n < max && m->len > 0) {
		out[n++] = m->buf[m->head];
		m->head = (m->head + 1) % MON_BUF;
		m->len--;
	}
	if (n == 0 && dropped == 0)
		m->suspended = 1;
	pthread_mutex_unlock(&mon_lock);
	if (dropped > 0 && n + 64 < max)
		n += (size_t)snprintf(out + n, max - n, "[monitor: %lu "
		    "line(s) dropped, reading too slowly]\n", dropped);
	if (n == 0)
		MHD_suspend_connection(m->mc);   /* http_due resumes it */
	return (ssize_t)n;
}

static void
mon_free(void *cls)
{
	struct mon *m = cls;

	pthread_mutex_lock(&mon_lock);
	free(m->buf);
	memset(m, 0, sizeof(*m));
	pthread_mutex_unlock(&mon_lock);
	sink_update();
}

int
http_monitor_start(const struct http_req *req, struct http_resp *resp)
{
	const char *lv = http_query(req, "loglevel");
	int level = lv != NULL ? log_level_parse(lv) : LOG_LVL_INFO;
	struct mon *m = NULL;

	if (level < 0) {
		http_reply_text(resp, 400, "Unknown log level: %s (expected "
		    "error, warn, info, debug or trace)", lv);
		return 0;
	}
	pthread_mutex_lock(&mon_lock);
	for (int i = 0; i < MON_MAX && m == NULL; i++)
		if (!mons[i].used)
			m = &mons[i];
	if (m != NULL && (m->buf = malloc(MON_BUF)) != NULL) {
		m->used = 1;
		m->level = level;
		m->mc = req->mhd_conn;
	}
	pthread_mutex_unlock(&mon_lock);
	if (m == NULL || !m->used) {
		http_reply_text(resp, 503, "Too many monitors (at most %d)",
		    MON_MAX);
		return 0;
	}
	sink_update();
	free(resp->body);
	resp->body = NULL;
	resp->status = 200;
	resp->ctype = "text/plain; charset=utf-8";
	resp->stream_read = mon_read;
	resp->stream_free = mon_free;
	resp->stream_arg = m;
	log_info("monitor: a watcher at level %s", log_level_name(
	    (enum log_level)level));
	return 1;
}

int
http_monitor_tick(void)
{
	struct MHD_Connection *wake[MON_MAX];
	int n = 0, open = 0;

	pthread_mutex_lock(&mon_lock);
	for (int i = 0; i < MON_MAX; i++) {
		open += mons[i].used;
		if (mons[i].used && mons[i].suspended &&
		    (mons[i].len > 0 || mons[i].dropped > 0)) {
			mons[i].suspended = 0;
			wake[n++] = mons[i].mc;
		}
	}
	pthread_mutex_unlock(&mon_lock);
	for (int i = 0; i < n; i++)
		MHD_resume_connection(wake[i]);
	return open;
}

void
http_monitor_stop_all(void)
{
	struct MHD_Connection *wake[MON_MAX];
	int n = 0;

	mon_stopping = 1;
	pthread_mutex_lock(&mon_lock);
	for (int i = 0; i < MON_MAX; i++)
		if (mons[i].used && mons[i].suspended) {
			mons[i].suspended = 0;
			wake[n++] = mons[i].mc;
		}
	pthread_mutex_unlock(&mon_lock);
	for (int i = 0; i < n; i++)
		MHD_resume_connection(wake[i]);
}
