/* accesslog: one line per closed (or denied) connection, JSON or text,
 * appended to access_log.path by a writer thread. Submitting never
 * blocks the relay and neither allocates nor formats: the entry is
 * copied, as a compact record, into a bounded buffer (a record that
 * does not fit is dropped and counted). The writer takes the whole
 * buffer at once (the other one takes the records meanwhile), formats
 * it and writes it with one write() per batch: it waits
 * ACCESSLOG_BATCH_MS after the first record of a batch, or less when the
 * buffer is half full, a flush is asked or helperd stops. Reopened on
 * SIGHUP (logrotate's rename, then reload) after what was queued for the
 * old file is written there. */
#ifndef MESH_ACCESSLOG_H
#define MESH_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define ACCESSLOG_BUF_BYTES (1024 * 1024)   /* records waiting, per buffer */
#define ACCESSLOG_BATCH_MS  50              /* a line is written within */
#define ACCESSLOG_STR_MAX   512             /* longer strings are cut */

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
/* Queue one line. Any thread; never blocks on the file, no malloc. */
void accesslog_submit(struct accesslog *a, const struct accesslog_entry *e);
/* Lines written, and dropped because the buffer was full. */
void accesslog_stats(const struct accesslog *a, uint64_t *written,
    uint64_t *dropped);
/* Block until every queued line is written (tests, shutdown, reopen). */
void accesslog_flush(struct accesslog *a);

/* "2026-12-02T07:00:40.123Z" for a realtime millisecond stamp. */
void accesslog_time(int64_t ms, char *buf, size_t len);

/* The line e makes (json 1, text 0), with its newline, into buf; its
 * length, or 0 when it does not fit (a line of e's strings at their
 * longest fits in ACCESSLOG_LINE_MAX). The writer's formatter, exposed
 * for tests. */
#define ACCESSLOG_LINE_MAX (12 * ACCESSLOG_STR_MAX * 6 + 1024)
size_t accesslog_format(const struct accesslog_entry *e, int json,
    char *buf, size_t len);

#endif
