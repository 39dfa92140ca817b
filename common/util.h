/* util: small helpers shared by helperd, meshctl and the tests. */
#ifndef MESH_UTIL_H
#define MESH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Write data to path atomically: a new temp file in the same directory
 * (O_EXCL | O_NOFOLLOW, random name), fsync, rename, fsync of the
 * directory. mode applies to the new file. 0/-1. */
int util_write_atomic(const char *path, const void *data, size_t len,
    mode_t mode);

/* Read a whole file of at most max bytes into a NUL-terminated malloc'd
 * buffer. NULL with errno set (EFBIG when larger than max). */
char *util_read_file(const char *path, size_t max, size_t *lenp);

/* Is path a directory that only we can change: owned by our euid, not
 * group- or world-writable? 0, or -1 with the reason in why. */
int util_private_dir(const char *path, char *why, size_t whylen);

/* mkdir -p with the given mode for created components. 0/-1. */
int util_mkdirs(const char *path, mode_t mode);

/* Parse a decimal integer in [min, max] with nothing after it. 0/-1. */
int util_parse_long(const char *s, long min, long max, long *out);

/* Parse "host:port" (IPv4, [IPv6] or a name) into host and port.
 * port_required: a missing port is an error. 0/-1. */
int util_split_hostport(const char *s, char *host, size_t hostlen,
    int *port);

/* Fill buf (>= 37 bytes) with a random RFC 4122 version-4 UUID. 0/-1. */
int util_uuid4(char *buf, size_t len);

/* Current time: seconds since the epoch and a monotonic clock in ms. */
int64_t util_now_ms_mono(void);
int64_t util_now_us_mono(void);

/* RFC 3339 UTC timestamp of t into buf (>= 21 bytes). */
void util_rfc3339(int64_t t, char *buf, size_t len);

/* strlcpy: copy with truncation, always NUL-terminated; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

#endif
