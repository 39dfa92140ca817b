/* conf values: names, ids, addresses, durations, loopback blocks and
 * unit names as mesh.conf, service files and flags spell them. */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


int
conf_errf(char *err, size_t errlen, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;
	int k;

	if (err == NULL || errlen == 0)
		return -1;
	k = snprintf(err, errlen, "%s:%d: ", file, line);
	if (k < 0 || (size_t)k >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
	va_end(ap);
	return -1;
}

/* A copy of untrusted text that is safe to quote in a message. */
const char *
conf_printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ?
		    s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* ---- small parsers ---------------------------------------------------- */

int
conf_valid_name(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '_')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		char ch = s[i];

		if (i >= CONF_NAME_MAX - 1)
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

/* Service ids: like names, plus '.' and ':' ("redis:6379", "web.1"). */
int
conf_valid_id(const char *s)
{
	char tmp[CONF_NAME_MAX];

	if (util_strlcpy(tmp, s, sizeof(tmp)) >= sizeof(tmp))
		return 0;
	for (char *p = tmp; *p != '\0'; p++)
		if (p != tmp && (*p == '.' || *p == ':'))
			*p = '-';
	return conf_valid_name(tmp);
}

int
conf_valid_ip(const char *s)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A DNS name: labels of [A-Za-z0-9-] (1..63), separated by single dots. */
int
conf_valid_hostname(const char *s)
{
	size_t label = 0;

	if (s[0] == '\0' || strlen(s) > 253)
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-') || ++label > 63)
			return 0;
	}
	return label > 0;
}

/* "72h", "1h30m", "15s", "500ms" (allow_ms), or plain seconds; into ms. */
int
conf_dur_parse(const char *s, int allow_ms, long long *out)
{
	long long total = 0;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s != '\0') {
		long long n = 0, unit;

		if (*s < '0' || *s > '9')
			return -1;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (n > DUR_MAX_MS / 10)
				return -1;
			n = n * 10 + (*s - '0');
		}
		if (s[0] == 'm' && s[1] == 's' && allow_ms) {
			unit = 1;
			s += 2;
		} else if (*s == 'h') {
			unit = MS_H;
			s++;
		} else if (*s == 'm') {
			unit = 60 * MS_S;
			s++;
		} else if (*s == 's' || (*s == '\0' && total == 0)) {
			unit = MS_S;   /* a bare number is seconds */
			if (*s != '\0')
				s++;
		} else {
			return -1;
		}
		if (n > (DUR_MAX_MS - total) / unit)
			return -1;
		total += n * unit;
	}
	if (total <= 0)
		return -1;
	*out = total;
	return 0;
}

int
conf_parse_duration(const char *s, long *secs)
{
	long long ms;

	if (conf_dur_parse(s, 0, &ms) != 0)
		return -1;
	*secs = (long)(ms / MS_S);
	return 0;
}

int
conf_parse_duration_ms(const char *s, long *ms)
{
	long long v;

	if (conf_dur_parse(s, 1, &v) != 0 || v > LONG_MAX)
		return -1;
	*ms = (long)v;
	return 0;
}

const char *
conf_dur_fmt(long long ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % MS_H == 0)
		snprintf(buf, len, "%lldh", ms / MS_H);
	else if (ms % (60 * MS_S) == 0)
		snprintf(buf, len, "%lldm", ms / (60 * MS_S));
	else if (ms % MS_S == 0)
		snprintf(buf, len, "%llds", ms / MS_S);
	else
		snprintf(buf, len, "%lldms", ms);
	return buf;
}

int
conf_parse_inbound(const char *s, enum conf_inbound *out)
{
	if (strcmp(s, "permissive") == 0)
		*out = CONF_INBOUND_PERMISSIVE;
	else if (strcmp(s, "strict") == 0)
		*out = CONF_INBOUND_STRICT;
	else
		return -1;
	return 0;
}

int
conf_parse_loopback_block(const char *s, uint32_t *net, int *prefix)
{
	char a[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr in;
	long n;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(a) ||
	    util_parse_long(slash + 1, 8, 30, &n) != 0)
		return -1;
	memcpy(a, s, (size_t)(slash - s));
	a[slash - s] = '\0';
	if (inet_pton(AF_INET, a, &in) != 1)
		return -1;
	*net = ntohl(in.s_addr);
	*prefix = (int)n;
	/* Inside 127.0.0.0/8 and aligned on its prefix. */
	if ((*net >> 24) != 127 || (*net & ~(0xffffffffu << (32 - n))) != 0)
		return -1;
	return 0;
}

int
conf_valid_unit(const char *s)
{
	size_t n = strlen(s);
	const char *dot = strrchr(s, '.');

	if (n == 0 || n >= CONF_UNIT_MAX || dot == NULL || dot == s ||
	    dot[1] == '\0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr(":-_.\\@", s[i]) == NULL)
			return 0;
	return 1;
}
