/* log: one line per event, to stderr in the foreground or syslog
 * otherwise; optionally also to a file (rotated by size) and to a sink
 * (helperd's /v1/agent/monitor). Lines are text
 * ("2026-12-02T07:00:40.123Z [INFO] message") or JSON (-log-json: hclog's
 * "@timestamp", "@level", "@message"). Thread-safe. */
#ifndef MESH_LOG_H
#define MESH_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Send logs to syslog (ident) instead of stderr when use_syslog is non-zero. */
void log_init(const char *ident, int use_syslog, enum log_level max);
/* Parse "err|warn|info|debug" (and "error", "warning", "trace"); -1 if
 * unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lvl);

/* Change the level (reload). */
void log_set_level(enum log_level max);
/* JSON lines instead of text. */
void log_set_json(int on);
/* Also write to path (NULL or "": stop), appending; past rotate_bytes
 * (0: never) the file is renamed <base>-<unix ms>.log (<base>: path
 * without .log) and a new one started; of those, the newest max_files
 * are kept (0: all). Reopens the file (SIGHUP). 0, or -1 with err (the
 * previous file stays). */
int log_set_file(const char *path, long rotate_bytes, long max_files,
    char *err, size_t errlen);
/* A sink receives every line (without its newline) at or above max
 * (-1: none), whatever the level of the other outputs; called with the
 * log lock held, from any thread: it must not log. */
typedef void (*log_sink_fn)(void *arg, enum log_level lvl, const char *line,
    size_t len);
void log_set_sink(log_sink_fn fn, void *arg, int max);

/* Would a message at lvl be written? (to skip costly arguments) */
int log_enabled(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
