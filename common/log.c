#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_syslog;
static atomic_int log_max = LOG_LVL_INFO;
static atomic_int sink_max = -1;
static atomic_int log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under log_lock: */
static int file_fd = -1;
static char file_path[4096];
static long file_size, rotate_bytes, max_files;
static log_sink_fn sink_fn;
static void *sink_arg;

static const char *names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *ident, int use_syslog, enum log_level max)
{
	log_syslog = use_syslog;
	atomic_store(&log_max, max);
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_level_parse(const char *s)
{
	static const char *short_names[] = { "err", "warn", "info", "debug" };

	if (s == NULL)
		return -1;
	if (strcmp(s, "error") == 0 || strcmp(s, "warning") == 0)
		return strcmp(s, "error") == 0 ? LOG_LVL_ERR : LOG_LVL_WARN;
	if (strcmp(s, "trace") == 0)
		return LOG_LVL_DEBUG;
	for (int i = 0; i < 4; i++)
		if (short_names[i][0] == s[0] &&
		    (s[1] == '\0' || (s[1] == short_names[i][1])))
			return i;
	return -1;
}

const char *
log_level_name(enum log_level lvl)
{
	return (int)lvl >= 0 && lvl <= LOG_LVL_DEBUG ? names[lvl] : "?";
}

void
log_set_level(enum log_level max)
{
	atomic_store(&log_max, max);
}

void
log_set_json(int on)
{
	atomic_store(&log_json, on);
}

void
log_set_sink(log_sink_fn fn, void *arg, int max)
{
	pthread_mutex_lock(&log_lock);
	sink_fn = fn;
	sink_arg = arg;
	atomic_store(&sink_max, fn != NULL ? max : -1);
	pthread_mutex_unlock(&log_lock);
}

int
log_enabled(enum log_level lvl)
{
	return (int)lvl <= atomic_load(&log_max) ||
	    (int)lvl <= atomic_load(&sink_max);
}

int
log_set_file(const char *path, long rbytes, long maxf, char *err,
    size_t errlen)
{
	int fd = -1, old;
	struct stat st;

	if (path != NULL && path[0] != '\0') {
		if (strlen(path) >= sizeof(file_path)) {
			snprintf(err, errlen, "log_file: path too long");
			return -1;
		}
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd < 0) {
			snprintf(err, errlen, "log_file: cannot open %s: %s",
			    path, strerror(errno));
			return -1;
		}
	}
	pthread_mutex_lock(&log_lock);
	old = file_fd;
	file_fd = fd;
	snprintf(file_path, sizeof(file_path), "%s", fd >= 0 ? path : "");
	file_size = fd >= 0 && fstat(fd, &st) == 0 ? (long)st.st_size : 0;
	rotate_bytes = rbytes;
	max_files = maxf;
	pthread_mutex_unlock(&log_lock);
	if (old >= 0)
		close(old);
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* log_lock held: rename the file aside, start a new one, prune. */
static void
rotate(void)
{
	char base[4096], rotated[4200], dir[4096];
	const char *slash, *bname;
	struct timespec ts;
	size_t n = strlen(file_path), blen;
	DIR *d;

	snprintf(base, sizeof(base), "%.*s", (int)(n > 4 &&
	    strcmp(file_path + n - 4, ".log") == 0 ? n - 4 : n), file_path);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(rotated, sizeof(rotated), "%s-%lld.log", base,
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	if (rename(file_path, rotated) != 0)
		return;                 /* keep writing where we are */
	close(file_fd);
	file_fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640);
	file_size = 0;
	if (max_files <= 0)
		return;
	slash = strrchr(base, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash != NULL ?
	    (int)(slash - base) + 1 : 1, slash != NULL ? base : ".");
	bname = slash != NULL ? slash + 1 : base;
	blen = strlen(bname);
	if ((d = opendir(dir)) != NULL) {
		char *list[1024];
		size_t k = 0;
		struct dirent *e;

		while ((e = readdir(d)) != NULL && k < 1024) {
			size_t el = strlen(e->d_name);

			/* <base>-<digits>.log: same width for years, so
			 * the names sort by age. */
			if (el > blen + 5 && strncmp(e->d_name, bname,
			    blen) == 0 && e->d_name[blen] == '-' &&
			    strcmp(e->d_name + el - 4, ".log") == 0 &&
			    strspn(e->d_name + blen + 1, "0123456789") ==
			    el - blen - 5 && (list[k] = strdup(e->d_name)) !=
			    NULL)
				k++;
		}
		closedir(d);
		qsort(list, k, sizeof(*list), cmp_name);
		for (size_t i = 0; i < k; i++) {
			if (k - i > (size_t)max_files) {
				char p[8300];

				snprintf(p, sizeof(p), "%s%s", dir, list[i]);
				unlink(p);
			}
			free(list[i]);
		}
	}
}

/* s as a JSON string body (no quotes) into out. */
static size_t
json_escape(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return o;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *tag[] = { "ERROR", "WARN", "INFO", "DEBUG" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	int saved = errno;
	int to_out = (int)lvl <= atomic_load(&log_max);
	int to_sink = (int)lvl <= atomic_load(&sink_max);
	char msg[2048], line[4600], stamp[40];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (!to_out && !to_sink)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errno = saved;
	if (log_syslog && to_out)
		syslog(prio[lvl], "%s", msg);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - (size_t)n, ".%03ldZ",
	    ts.tv_nsec / 1000000);
	if (atomic_load(&log_json)) {
		char esc[4200];

		json_escape(msg, esc, sizeof(esc));
		n = snprintf(line, sizeof(line), "{\"@timestamp\":\"%s\","
		    "\"@level\":\"%s\",\"@module\":\"helperd\","
		    "\"@message\":\"%s\"}", stamp, names[lvl], esc);
	} else {
		n = snprintf(line, sizeof(line), "%s [%s] %s", stamp, tag[lvl],
		    msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	pthread_mutex_lock(&log_lock);
	if (to_sink && sink_fn != NULL)
		sink_fn(sink_arg, lvl, line, (size_t)n);
	line[n] = '\n';
	if (to_out && !log_syslog) {
		size_t off = 0;

		while (off < (size_t)n + 1) {
			ssize_t w = write(STDERR_FILENO, line + off,
			    (size_t)n + 1 - off);
			if (w <= 0 && errno != EINTR)
				break;
			if (w > 0)
				off += (size_t)w;
		}
	}
	if (to_out && file_fd >= 0) {
		if (write(file_fd, line, (size_t)n + 1) > 0)
			file_size += n + 1;
		if (rotate_bytes > 0 && file_size >= rotate_bytes)
			rotate();
	}
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
