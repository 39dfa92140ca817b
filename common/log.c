#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

static int log_syslog;
static enum log_level log_max = LOG_LVL_INFO;

void
log_init(const char *ident, int use_syslog, enum log_level max)
{
	log_syslog = use_syslog;
	log_max = max;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_level_parse(const char *s)
{
	static const char *names[] = { "err", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (s != NULL && names[i][0] == s[0] &&
		    (s[1] == '\0' || (s[1] == names[i][1])))
			return i;
	return -1;
}

int
log_enabled(enum log_level lvl)
{
	return lvl <= log_max;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *tag[] = { "ERROR", "WARN", "INFO", "DEBUG" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	int saved = errno;
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(prio[lvl], fmt, ap);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		flockfile(stderr);
		fprintf(stderr, "%s.%03ldZ [%s] ", stamp, ts.tv_nsec / 1000000,
		    tag[lvl]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	}
	va_end(ap);
	errno = saved;
}
