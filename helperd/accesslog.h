/* accesslog: one line per closed (or denied) connection, JSON or text,
 * appended to access_log.path by a writer thread. Submitting never
 * blocks the relay: lines go through a bounded queue, and a line that
 * finds the queue full is dropped and counted. Reopened on SIGHUP
 * (logrotate's rename, then reload). */
#ifndef MESH_ACCESSLOG_H
#define MESH_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define ACCESSLOG_QUEUE_MAX 8192     /* lines waiting for the writer */

struct accesslog;

/* What one line says; strings may be NULL or "" (left out / "-"). */
struct accesslog_entry {
	uint64_t id;                    /* connection id (0: denied at
	                                   registration, no connection) */
	int64_t start_ms, end_ms;       /* realtime, milliseconds */
	const char *direction;          /* "outbound" / "inbound" */
	const char *src, *dst;          /* services */
	long pid;                       /* 0: unknown */
	long uid;                       /* -1: unknown */
	const char *unit;               /* systemd unit or cgroup path */
	const char *src_node, *src_addr;
	int src_port;
	const char *dst_node, *dst_instance;
	const char *src_spiffe, *dst_spiffe;
	uint64_t bytes_sent;            /* source -> destination */
	uint64_t bytes_rcvd;            /* destination -> source */
	int tls, resumed;
	const char *result;             /* allowed, denied, cut, killed, error */
	const char *reason;             /* denial / error / close reason */
};

/* A writer thread with nothing to write to yet. NULL on error. */
struct accesslog *accesslog_new(void);
/* Flush what is queued, stop the thread, close, free. NULL: no-op. */
void accesslog_free(struct accesslog *a);
/* Write to path (NULL or "": stop logging) as json (1) or text (0);
 * (re)opens the file, so SIGHUP after a rename starts a new one. 0, or
 * -1 with err (the previous file stays in use). */
int accesslog_configure(struct accesslog *a, const char *path, int json,
    char *err, size_t errlen);
/* Is a file configured? (to skip building entries) */
int accesslog_enabled(const struct accesslog *a);
/* Queue one line. Any thread; never blocks on the file. */
void accesslog_submit(struct accesslog *a, const struct accesslog_entry *e);
/* Lines written, and dropped because the queue was full. */
void accesslog_stats(const struct accesslog *a, uint64_t *written,
    uint64_t *dropped);
/* Block until every queued line is written (tests, shutdown). */
void accesslog_flush(struct accesslog *a);

/* "2026-12-02T07:00:40.123Z" for a realtime millisecond stamp. */
void accesslog_time(int64_t ms, char *buf, size_t len);

#endif
