#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

static int
fsync_dir_of(const char *path)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (util_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* A new temp file next to path, named path.tmp.<12 random hex digits>,
 * created with O_EXCL | O_NOFOLLOW: never an existing file, never through
 * a symlink, and a name nobody can guess ahead. fd, or -1. */
static int
open_temp(const char *path, mode_t mode, char *tmp, size_t tmplen)
{
	for (int tries = 0; tries < 16; tries++) {
		unsigned char r[6];
		int fd;

		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return -1;
		if ((size_t)snprintf(tmp, tmplen,
		    "%s.tmp.%02x%02x%02x%02x%02x%02x", path, r[0], r[1], r[2],
		    r[3], r[4], r[5]) >= tmplen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int
util_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd;

	fd = open_temp(path, mode, tmp, sizeof(tmp));
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) != 0)
		goto err1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto err1;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0)
		goto err1;
	if (close(fd) != 0) {
		fd = -1;
		goto err1;
	}
	if (rename(tmp, path) != 0)
		goto err0;
	return fsync_dir_of(path);

err1:
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
err0:
	{
		int saved = errno;
		unlink(tmp);
		errno = saved;
	}
	return -1;
}

int
util_private_dir(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "not a directory");
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, whylen, "owned by uid %ld, not by uid %ld that "
		    "runs helperd", (long)st.st_uid, (long)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "%s-writable (mode %04o)",
		    st.st_mode & S_IWOTH ? "world" : "group",
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

char *
util_read_file(const char *path, size_t max, size_t *lenp)
{
	char *buf = NULL;
	size_t off = 0;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	/* Read up to max + 1 bytes so that a file over the cap is detected
	 * even when it grows under us; the buffer is sized as we go. */
	for (size_t cap = 0;;) {
		ssize_t n;

		if (off == cap) {
			char *nb;

			if (cap > max) {
				errno = EFBIG;
				goto err;
			}
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > max + 1)
				cap = max + 1;
			if ((nb = realloc(buf, cap + 1)) == NULL)
				goto err;
			buf = nb;
		}
		n = read(fd, buf + off, cap - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto err;
		if (n == 0)
			break;
		off += (size_t)n;
		if (off > max) {
			errno = EFBIG;
			goto err;
		}
	}
	buf[off] = '\0';
	close(fd);
	if (lenp != NULL)
		*lenp = off;
	return buf;

err:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return NULL;
}

int
util_mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len;

	if ((len = util_strlcpy(tmp, path, sizeof(tmp))) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
util_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
util_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	size_t hl;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	if (util_parse_long(colon + 1, 0, 65535, &p) != 0)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

int
util_uuid4(char *buf, size_t len)
{
	unsigned char b[16];

	if (len < 37 || getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, len,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	    b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

int64_t
util_now_ms_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_now_us_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
util_rfc3339(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
