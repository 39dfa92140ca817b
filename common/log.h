/* log: one line per event, to stderr in the foreground or syslog otherwise. */
#ifndef MESH_LOG_H
#define MESH_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Send logs to syslog (ident) instead of stderr when use_syslog is non-zero. */
void log_init(const char *ident, int use_syslog, enum log_level max);
/* Parse "err|warn|info|debug"; -1 if unknown. */
int log_level_parse(const char *s);

/* Would a message at lvl be written? (to skip costly arguments) */
int log_enabled(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
