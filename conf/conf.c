/* conf: mesh.conf through ONE key table {name, type, bounds, default,
 * check}, libconfig service files, services_dir, and the per-service and
 * node-wide checks. Consul JSON lives in consul.c. */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS_S          1000LL
#define MS_H          (3600LL * MS_S)
#define DUR_MAX_MS    (876000LL * MS_H)  /* 100 years */
#define SHORT_LEAF_S  3600L
#define ENDPOINT_MAX  1024
#define NO_DEFAULT    NULL

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
static const char *
printable(const char *s, char *buf, size_t len)
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
static int
valid_id(const char *s)
{
	char tmp[CONF_NAME_MAX];

	if (util_strlcpy(tmp, s, sizeof(tmp)) >= sizeof(tmp))
		return 0;
	for (char *p = tmp; *p != '\0'; p++)
		if (p != tmp && (*p == '.' || *p == ':'))
			*p = '-';
	return conf_valid_name(tmp);
}

static int
valid_ip(const char *s)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A DNS name: labels of [A-Za-z0-9-] (1..63), separated by single dots. */
static int
valid_hostname(const char *s)
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
static int
dur_parse(const char *s, int allow_ms, long long *out)
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

	if (dur_parse(s, 0, &ms) != 0)
		return -1;
	*secs = (long)(ms / MS_S);
	return 0;
}

int
conf_parse_duration_ms(const char *s, long *ms)
{
	long long v;

	if (dur_parse(s, 1, &v) != 0 || v > LONG_MAX)
		return -1;
	*ms = (long)v;
	return 0;
}

static const char *
dur_fmt(long long ms, char *buf, size_t len)
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

/* ---- the key table ------------------------------------------------------ */

enum ktype { K_STR, K_INT, K_BOOL, K_ENUM, K_DUR, K_LIST, K_GROUP,
	K_SERVICES };

struct kchoice {
	const char *name;
	int value;
};

struct ckey {
	const char *name;
	enum ktype type;
	size_t off;                 /* into the struct the table describes */
	size_t size;                /* of the field */
	long long min, max;         /* K_INT; K_DUR in ms */
	int in_ms;                  /* K_DUR: field holds ms (else seconds) */
	const char *def;            /* default, as a flag would spell it */
	const struct kchoice *choices;                  /* K_ENUM */
	int (*check)(const char *v, char *why, size_t whylen); /* K_STR/LIST */
	const struct ckey *sub;     /* K_GROUP */
	size_t off_n;               /* K_LIST: the count field */
};

/* One value as a file or a flag gave it. V_TEXT (flags and defaults) may
 * spell any type; a file's V_STR is only a string. */
struct cval {
	enum { V_STR, V_TEXT, V_INT, V_BOOL, V_OTHER } kind;
	const char *s;
	long long i;
};

static int
chk_name(const char *v, char *why, size_t whylen)
{
	if (conf_valid_name(v))
		return 0;
	snprintf(why, whylen, "\"%s\" is not a valid name (1..63 of "
	    "A-Z a-z 0-9 _ -, starting with a letter or digit)", v);
	return -1;
}

static int
chk_nonempty(const char *v, char *why, size_t whylen)
{
	if (v[0] != '\0')
		return 0;
	snprintf(why, whylen, "must not be empty");
	return -1;
}

static int
chk_ip(const char *v, char *why, size_t whylen)
{
	if (valid_ip(v))
		return 0;
	snprintf(why, whylen, "\"%s\" is not an IP address", v);
	return -1;
}

static int
chk_hostport(const char *v, char *why, size_t whylen)
{
	char host[CONF_ADDR_MAX];
	int port;

	if (util_split_hostport(v, host, sizeof(host), &port) == 0 &&
	    (valid_ip(host) || valid_hostname(host)))
		return 0;
	snprintf(why, whylen, "\"%s\" is not host:port", v);
	return -1;
}

/* The root keys are sealed under a key HKDF derives from it: no
 * slowdown for guessing, so it must be long and random. */
static int
chk_ca_secret(const char *v, char *why, size_t whylen)
{
	if (v[0] == '\0' || strlen(v) >= 32)
		return 0;
	snprintf(why, whylen, "%zu characters: use at least 32 random ones "
	    "(openssl rand -base64 32)", strlen(v));
	return -1;
}

static int
chk_domain(const char *v, char *why, size_t whylen)
{
	if (valid_hostname(v))
		return 0;
	snprintf(why, whylen, "\"%s\" is not a DNS domain", v);
	return -1;
}

static int
chk_log_level(const char *v, char *why, size_t whylen)
{
	static const char *const lv[] = { "err", "warn", "info", "debug" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(lv); i++)
		if (strcmp(v, lv[i]) == 0)
			return 0;
	snprintf(why, whylen, "must be \"err\", \"warn\", \"info\" or "
	    "\"debug\"");
	return -1;
}

static int
chk_prefix(const char *v, char *why, size_t whylen)
{
	if (v[0] == '/')
		return 0;
	snprintf(why, whylen, "\"%s\" must start with /", v);
	return -1;
}

static int
chk_endpoint(const char *v, char *why, size_t whylen)
{
	if ((strncmp(v, "http://", 7) == 0 && v[7] != '\0') ||
	    (strncmp(v, "https://", 8) == 0 && v[8] != '\0'))
		return 0;
	snprintf(why, whylen, "\"%s\" is not an http:// or https:// URL", v);
	return -1;
}

/* ---- issue 15: names and addresses served by helperd ------------------ */

/* dns_addr: "" (no DNS server) or IP:port, port 0 = any free port. */
static int
chk_dns_addr(const char *v, char *why, size_t whylen)
{
	char host[CONF_ADDR_MAX];
	int port;

	if (v[0] == '\0' ||
	    (util_split_hostport(v, host, sizeof(host), &port) == 0 &&
	    valid_ip(host)))
		return 0;
	snprintf(why, whylen, "\"%s\" is not IP:port (or \"\" for no DNS "
	    "server)", v);
	return -1;
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

/* served_addrs: "" (none) or a loopback block 127.x.y.z/8..30. */
static int
chk_served_addrs(const char *v, char *why, size_t whylen)
{
	uint32_t net;
	int prefix;

	if (v[0] == '\0' || conf_parse_loopback_block(v, &net, &prefix) == 0)
		return 0;
	snprintf(why, whylen, "\"%s\" is not a loopback block such as "
	    "\"127.78.0.0/16\" (inside 127.0.0.0/8, prefix /8../30, aligned)",
	    v);
	return -1;
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

static const struct kchoice ch_intention[] = {
	{ "allow", 1 }, { "deny", 0 }, { NULL, 0 } };
static const struct kchoice ch_backend[] = {
	{ "embedded", CONF_STORE_EMBEDDED }, { "etcd", CONF_STORE_ETCD },
	{ NULL, 0 } };

#define FLD(st, m) .off = offsetof(struct st, m), \
	.size = sizeof(((struct st *)0)->m)

static const struct ckey ca_keys[] = {
	{ .name = "leaf_ttl", .type = K_DUR, FLD(conf_ca, leaf_ttl),
	  .min = MS_S, .max = DUR_MAX_MS, .def = "72h" },
	{ .name = "root_ttl", .type = K_DUR, FLD(conf_ca, root_ttl),
	  .min = MS_S, .max = DUR_MAX_MS, .def = "87600h" },
	{ .name = "allow_short_ttl", .type = K_BOOL,
	  FLD(conf_ca, allow_short_ttl), .def = "false" },
	{ .name = "server", .type = K_BOOL, FLD(conf_ca, server),
	  .def = "true" },
	{ .name = "secret", .type = K_STR, FLD(conf_ca, secret),
	  .check = chk_ca_secret, .def = "" },
	{ .name = NULL },
};

static int
chk_uuid(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (n == 0)
		return 0;
	for (size_t i = 0; n == 36 && i < n; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash != (v[i] == '-') || (!dash && !isxdigit(
		    (unsigned char)v[i])))
			break;
		if (i == n - 1)
			return 0;
	}
	snprintf(why, whylen, "must be a UUID (like the output of uuidgen)");
	return -1;
}

static const struct ckey acl_keys[] = {
	{ .name = "enabled", .type = K_BOOL, FLD(conf_acl, enabled),
	  .def = "true" },
	{ .name = "initial_management", .type = K_STR,
	  FLD(conf_acl, initial_management), .check = chk_uuid, .def = "" },
	{ .name = NULL },
};

static const struct ckey limits_keys[] = {
	{ .name = "http_max_conns_per_client", .type = K_INT,
	  FLD(conf_limits, http_max_conns_per_client), .min = 1,
	  .max = 100000, .def = "200" },
	{ .name = NULL },
};

static const struct kchoice ch_log_format[] = {
	{ "json", 1 }, { "text", 0 }, { NULL, 0 } };

static const struct ckey access_log_keys[] = {
	{ .name = "path", .type = K_STR, FLD(conf_access_log, path),
	  .def = "" },
	{ .name = "format", .type = K_ENUM, FLD(conf_access_log, json),
	  .choices = ch_log_format, .def = "json" },
	{ .name = NULL },
};

static const struct ckey store_keys[] = {
	{ .name = "backend", .type = K_ENUM, FLD(conf_store_cfg, backend),
	  .choices = ch_backend, .def = "embedded" },
	{ .name = "endpoints", .type = K_LIST, FLD(conf_store_cfg, endpoints),
	  .off_n = offsetof(struct conf_store_cfg, n_endpoints),
	  .check = chk_endpoint, .def = "" },
	{ .name = "prefix", .type = K_STR, FLD(conf_store_cfg, prefix),
	  .check = chk_prefix, .def = "/meshshim" },
	{ .name = "lease_ttl", .type = K_DUR, FLD(conf_store_cfg, lease_ttl),
	  .min = MS_S, .max = 24 * MS_H, .def = "10s" },
	{ .name = "ca_file", .type = K_STR, FLD(conf_store_cfg, ca_file),
	  .def = "" },
	{ .name = "cert_file", .type = K_STR, FLD(conf_store_cfg, cert_file),
	  .def = "" },
	{ .name = "key_file", .type = K_STR, FLD(conf_store_cfg, key_file),
	  .def = "" },
	{ .name = "username", .type = K_STR, FLD(conf_store_cfg, username),
	  .def = "" },
	{ .name = "password", .type = K_STR, FLD(conf_store_cfg, password),
	  .def = "" },
	{ .name = NULL },
};

static const struct ckey top_keys[] = {
	{ .name = "node", .type = K_STR, FLD(conf, node), .check = chk_name,
	  .def = NO_DEFAULT /* the hostname, see conf_defaults */ },
	{ .name = "datacenter", .type = K_STR, FLD(conf, datacenter),
	  .check = chk_name, .def = "dc1" },
	{ .name = "data_dir", .type = K_STR, FLD(conf, data_dir),
	  .check = chk_nonempty, .def = "/var/lib/meshshim" },
	{ .name = "socket", .type = K_STR, FLD(conf, socket),
	  .check = chk_nonempty, .def = "/run/meshshim/helperd.sock" },
	{ .name = "http_addr", .type = K_STR, FLD(conf, http_addr),
	  .check = chk_hostport, .def = "127.0.0.1:8500" },
	{ .name = "http_socket", .type = K_STR, FLD(conf, http_socket),
	  .def = "" },
	{ .name = "mesh_port", .type = K_INT, FLD(conf, mesh_port),
	  .min = 0, .max = 65535, .def = "21000" },
	{ .name = "bind_addr", .type = K_STR, FLD(conf, bind_addr),
	  .check = chk_ip, .def = "0.0.0.0" },
	{ .name = "advertise_addr", .type = K_STR, FLD(conf, advertise_addr),
	  .check = chk_ip, .def = "127.0.0.1" },
	{ .name = "default_intention", .type = K_ENUM,
	  FLD(conf, default_allow), .choices = ch_intention, .def = "allow" },
	{ .name = "same_node_mtls", .type = K_BOOL, FLD(conf, same_node_mtls),
	  .def = "true" },
	{ .name = "dns_domain", .type = K_STR, FLD(conf, dns_domain),
	  .check = chk_domain, .def = "mesh" },
	{ .name = "dns_addr", .type = K_STR, FLD(conf, dns_addr),
	  .check = chk_dns_addr, .def = "127.0.0.1:8600" },
	{ .name = "served_addrs", .type = K_STR, FLD(conf, served_addrs),
	  .check = chk_served_addrs, .def = "127.78.0.0/16" },
	{ .name = "services_dir", .type = K_STR, FLD(conf, services_dir),
	  .def = "/etc/meshshim.d" },
	{ .name = "log_level", .type = K_STR, FLD(conf, log_level),
	  .check = chk_log_level, .def = "info" },
	{ .name = "log_json", .type = K_BOOL, FLD(conf, log_json),
	  .def = "false" },
	{ .name = "log_file", .type = K_STR, FLD(conf, log_file),
	  .def = "" },
	{ .name = "log_rotate_bytes", .type = K_INT,
	  FLD(conf, log_rotate_bytes), .min = 0, .max = 1LL << 40,
	  .def = "0" },
	{ .name = "log_rotate_max_files", .type = K_INT,
	  FLD(conf, log_rotate_max_files), .min = 0, .max = 100000,
	  .def = "0" },
	{ .name = "access_log", .type = K_GROUP, FLD(conf, access_log),
	  .sub = access_log_keys },
	{ .name = "join_token", .type = K_STR, FLD(conf, join_token),
	  .def = "" },
	{ .name = "connect_timeout", .type = K_DUR,
	  FLD(conf, connect_timeout_ms), .in_ms = 1, .min = 1,
	  .max = 600 * MS_S, .def = "5s" },
	{ .name = "handshake_timeout", .type = K_DUR,
	  FLD(conf, handshake_timeout_ms), .in_ms = 1, .min = 1,
	  .max = 600 * MS_S, .def = "10s" },
	{ .name = "idle_timeout", .type = K_DUR, FLD(conf, idle_timeout_s),
	  .min = 0, .max = DUR_MAX_MS, .def = "0" },
	{ .name = "max_conns", .type = K_INT, FLD(conf, max_conns),
	  .min = 1, .max = 1000000, .def = "65536" },
	{ .name = "check_interval", .type = K_DUR,
	  FLD(conf, check_interval_ms), .in_ms = 1, .min = MS_S,
	  .max = MS_H, .def = "10s" },
	{ .name = "ca", .type = K_GROUP, FLD(conf, ca), .sub = ca_keys },
	{ .name = "acl", .type = K_GROUP, FLD(conf, acl), .sub = acl_keys },
	{ .name = "limits", .type = K_GROUP, FLD(conf, limits),
	  .sub = limits_keys },
	{ .name = "store", .type = K_GROUP, FLD(conf, store),
	  .sub = store_keys },
	{ .name = "services", .type = K_SERVICES, .off = 0, .size = 0 },
	{ .name = NULL },
};

static const struct ckey *
key_find(const struct ckey *tab, const char *name)
{
	for (; tab->name != NULL; tab++)
		if (strcmp(tab->name, name) == 0)
			return tab;
	return NULL;
}

static void
put_num(void *p, size_t size, long long v)
{
	if (size == sizeof(int)) {
		int x = (int)v;
		memcpy(p, &x, sizeof(x));
	} else {
		long x = (long)v;
		memcpy(p, &x, sizeof(x));
	}
}

static const char *
type_word(const struct ckey *k)
{
	switch (k->type) {
	case K_INT:
		return "an integer";
	case K_BOOL:
		return "true or false";
	case K_DUR:
		return "a duration (\"30s\", \"5m\", \"72h\") or seconds";
	case K_LIST:
		return "a list of strings [\"...\", ...]";
	case K_GROUP:
		return "a group { ... }";
	case K_SERVICES:
		return "a list ( { ... }, ... )";
	default:
		return "a string";
	}
}

/* Apply one scalar value to the field k describes in base: the "apply"
 * column of the table. why gets the reason (without file, line or key). */
static int
key_apply(const struct ckey *k, void *base, const struct cval *v, char *why,
    size_t whylen)
{
	char *field = (char *)base + k->off;
	char a[32], b[32];
	long long n;

	switch (k->type) {
	case K_STR:
		if (v->kind != V_STR && v->kind != V_TEXT)
			break;
		if (strlen(v->s) >= k->size) {
			snprintf(why, whylen, "too long (max %zu characters)",
			    k->size - 1);
			return -1;
		}
		if (k->check != NULL && k->check(v->s, why, whylen) != 0)
			return -1;
		util_strlcpy(field, v->s, k->size);
		return 0;
	case K_INT:
		if (v->kind == V_TEXT) {
			char *end;

			errno = 0;
			n = strtoll(v->s, &end, 10);
			if (errno != 0 || end == v->s || *end != '\0')
				break;
		} else if (v->kind == V_INT) {
			n = v->i;
		} else {
			break;
		}
		if (n < k->min || n > k->max) {
			snprintf(why, whylen, "%lld is out of range %lld..%lld",
			    n, k->min, k->max);
			return -1;
		}
		put_num(field, k->size, n);
		return 0;
	case K_BOOL:
		if (v->kind == V_BOOL)
			n = v->i != 0;
		else if (v->kind == V_TEXT && (strcmp(v->s, "true") == 0 ||
		    strcmp(v->s, "1") == 0))
			n = 1;
		else if (v->kind == V_TEXT && (strcmp(v->s, "false") == 0 ||
		    strcmp(v->s, "0") == 0))
			n = 0;
		else
			break;
		put_num(field, k->size, n);
		return 0;
	case K_ENUM:
		for (const struct kchoice *ch = k->choices; (v->kind == V_STR ||
		    v->kind == V_TEXT) && ch->name != NULL; ch++) {
			if (strcmp(ch->name, v->s) == 0) {
				put_num(field, k->size, ch->value);
				return 0;
			}
		}
		snprintf(why, whylen, "must be \"%s\" or \"%s\"",
		    k->choices[0].name, k->choices[1].name);
		return -1;
	case K_DUR:
		if (v->kind == V_INT) {
			if (v->i < 0 || v->i > DUR_MAX_MS / MS_S)
				n = -1;
			else
				n = v->i * MS_S;
		} else if (v->kind == V_STR || v->kind == V_TEXT) {
			if (strcmp(v->s, "0") == 0) {
				n = 0;
			} else if (dur_parse(v->s, k->in_ms, &n) != 0) {
				snprintf(why, whylen, "bad duration \"%s\" "
				    "(use e.g. %s30s, 5m, 72h)", v->s,
				    k->in_ms ? "500ms, " : "");
				return -1;
			}
		} else {
			break;
		}
		if (n < k->min || n > k->max) {
			if (v->kind == V_INT)
				snprintf(why, whylen, "%lld is out of range "
				    "%s..%s", v->i, dur_fmt(k->min, a, sizeof(a)),
				    dur_fmt(k->max, b, sizeof(b)));
			else
				snprintf(why, whylen, "%s is out of range "
				    "%s..%s", v->s, dur_fmt(k->min, a, sizeof(a)),
				    dur_fmt(k->max, b, sizeof(b)));
			return -1;
		}
		put_num(field, k->size, k->in_ms ? n : n / MS_S);
		return 0;
	default:
		break;
	}
	snprintf(why, whylen, "must be %s", type_word(k));
	return -1;
}

/* K_LIST: replace the list with items (checked first; nothing changes on
 * error). */
static int
list_apply(const struct ckey *k, void *base, const char *const *items,
    size_t n, char *why, size_t whylen)
{
	char **arr = (char **)(void *)((char *)base + k->off);
	size_t *np = (size_t *)(void *)((char *)base + k->off_n);
	char *fresh[CONF_MAX_ENDPOINTS];
	size_t i;

	if (n > CONF_MAX_ENDPOINTS) {
		snprintf(why, whylen, "too many entries (max %d)",
		    CONF_MAX_ENDPOINTS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (strlen(items[i]) >= ENDPOINT_MAX) {
			snprintf(why, whylen, "entry %zu too long", i + 1);
			return -1;
		}
		if (k->check != NULL && k->check(items[i], why, whylen) != 0)
			return -1;
	}
	for (i = 0; i < n; i++) {
		if ((fresh[i] = strdup(items[i])) == NULL) {
			while (i > 0)
				free(fresh[--i]);
			snprintf(why, whylen, "out of memory");
			return -1;
		}
	}
	for (i = 0; i < *np; i++)
		free(arr[i]);
	memset(arr, 0, sizeof(char *) * CONF_MAX_ENDPOINTS);
	memcpy(arr, fresh, sizeof(char *) * n);
	*np = n;
	return 0;
}

static void
defaults_apply(const struct ckey *tab, void *base)
{
	char why[CONF_ERR_MAX];

	for (; tab->name != NULL; tab++) {
		if (tab->type == K_GROUP) {
			defaults_apply(tab->sub, (char *)base + tab->off);
		} else if (tab->type == K_LIST) {
			(void)list_apply(tab, base, NULL, 0, why, sizeof(why));
		} else if (tab->def != NULL) {
			struct cval v = { .kind = V_TEXT, .s = tab->def };
			(void)key_apply(tab, base, &v, why, sizeof(why));
		}
	}
}

/* ---- libconfig ---------------------------------------------------------- */

static const char *
src_file(const config_setting_t *s, const char *path)
{
	const char *f = config_setting_source_file(s);

	return f != NULL ? f : path;
}

static int
cfg_fail(config_t *cfg, const char *path, char *err, size_t errlen)
{
	const char *f = config_error_file(cfg);
	const char *t = config_error_text(cfg);

	return conf_errf(err, errlen, f != NULL ? f : path, config_error_line(cfg),
	    "%s", t != NULL ? t : "cannot parse");
}

/* Read path (at most CONF_FILE_MAX bytes) into cfg. */
static int
cfg_read(config_t *cfg, const char *path, char *err, size_t errlen)
{
	char dir[CONF_PATH_MAX];
	char *buf;
	int rc;

	if ((buf = util_read_file(path, CONF_FILE_MAX, NULL)) == NULL) {
		if (errno == EFBIG)
			return conf_errf(err, errlen, path, 0,
			    "file is larger than %d bytes", CONF_FILE_MAX);
		return conf_errf(err, errlen, path, 0, "%s", strerror(errno));
	}
	util_strlcpy(dir, path, sizeof(dir));
	config_set_include_dir(cfg, dirname(dir));
	rc = config_read_string(cfg, buf) == CONFIG_TRUE ? 0 :
	    cfg_fail(cfg, path, err, errlen);
	free(buf);
	return rc;
}

static struct cval
cfg_val(const config_setting_t *s)
{
	struct cval v = { .kind = V_OTHER };

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		v.kind = V_STR;
		v.s = config_setting_get_string(s);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v.kind = V_INT;
		v.i = config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_BOOL:
		v.kind = V_BOOL;
		v.i = config_setting_get_bool(s);
		break;
	default:
		break;
	}
	return v;
}

/* Walk a libconfig group against a table: unknown keys and bad values are
 * errors naming the key. "services" is only type-checked here (see
 * services_load). */
static int
group_apply(const struct ckey *tab, void *base, const config_setting_t *grp,
    const char *prefix, const char *path, char *err, size_t errlen)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp,
		    (unsigned)i);
		const char *name = config_setting_name(s);
		const char *f = src_file(s, path);
		int line = config_setting_source_line(s);
		const struct ckey *k;
		char kname[128], why[CONF_ERR_MAX];

		snprintf(kname, sizeof(kname), "%s%s", prefix,
		    name != NULL ? name : "?");
		if (name == NULL || (k = key_find(tab, name)) == NULL)
			return conf_errf(err, errlen, f, line, "unknown key \"%s\"",
			    kname);
		if (k->type == K_GROUP) {
			char sub[sizeof(kname) + 1];

			if (!config_setting_is_group(s))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, type_word(k));
			snprintf(sub, sizeof(sub), "%s.", kname);
			if (group_apply(k->sub, (char *)base + k->off, s, sub,
			    path, err, errlen) != 0)
				return -1;
		} else if (k->type == K_SERVICES) {
			if (!config_setting_is_list(s) &&
			    !(config_setting_is_array(s) &&
			    config_setting_length(s) == 0))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, type_word(k));
		} else if (k->type == K_LIST) {
			const char *items[CONF_MAX_ENDPOINTS];
			int m = config_setting_length(s);

			if (!config_setting_is_array(s) &&
			    !config_setting_is_list(s))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, type_word(k));
			if (m > CONF_MAX_ENDPOINTS)
				return conf_errf(err, errlen, f, line, "%s: too many "
				    "entries (max %d)", kname,
				    CONF_MAX_ENDPOINTS);
			for (int j = 0; j < m; j++) {
				const config_setting_t *e =
				    config_setting_get_elem(s, (unsigned)j);

				if (config_setting_type(e) !=
				    CONFIG_TYPE_STRING)
					return conf_errf(err, errlen, f, line,
					    "%s: must be %s", kname,
					    type_word(k));
				items[j] = config_setting_get_string(e);
			}
			if (list_apply(k, base, items, (size_t)m, why,
			    sizeof(why)) != 0)
				return conf_errf(err, errlen, f, line, "%s: %s",
				    kname, why);
		} else {
			struct cval v = cfg_val(s);

			if (key_apply(k, base, &v, why, sizeof(why)) != 0)
				return conf_errf(err, errlen, f, line, "%s: %s",
				    kname, why);
		}
	}
	return 0;
}

static int
key_line(config_t *cfg, const char *key, const char *group)
{
	const config_setting_t *s;

	if (cfg == NULL)
		return 0;
	if ((s = config_lookup(cfg, key)) != NULL ||
	    (s = config_lookup(cfg, group)) != NULL)
		return config_setting_source_line(s);
	return 0;
}

/* Is host (an IP literal, or host:port) on loopback? */
static int
addr_is_loopback(const char *addr)
{
	char host[CONF_ADDR_MAX];
	struct in6_addr a6;
	struct in_addr a4;
	int port;

	if (util_split_hostport(addr, host, sizeof(host), &port) != 0)
		util_strlcpy(host, addr, sizeof(host));
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* The sanity block: checks that involve more than one key. */
static int
cross_check(const struct conf *c, config_t *cfg, char *err, size_t errlen)
{
	const char *f = c->path[0] != '\0' ? c->path : "(defaults)";
	char a[32], b[32];

	if (c->ca.leaf_ttl < SHORT_LEAF_S && !c->dev && !c->ca.allow_short_ttl)
		return conf_errf(err, errlen, f, key_line(cfg, "ca.leaf_ttl", "ca"),
		    "ca.leaf_ttl: %s is under 1h; start helperd with -dev or "
		    "set ca.allow_short_ttl = true to allow it",
		    dur_fmt(c->ca.leaf_ttl * MS_S, a, sizeof(a)));
	if (c->ca.leaf_ttl >= c->ca.root_ttl)
		return conf_errf(err, errlen, f, key_line(cfg, "ca.leaf_ttl", "ca"),
		    "ca.leaf_ttl: %s must be shorter than ca.root_ttl (%s)",
		    dur_fmt(c->ca.leaf_ttl * MS_S, a, sizeof(a)),
		    dur_fmt(c->ca.root_ttl * MS_S, b, sizeof(b)));
	if (!addr_is_loopback(c->http_addr) && !c->acl.enabled)
		return conf_errf(err, errlen, f, key_line(cfg, "http_addr",
		    "acl"), "http_addr: %s is not a loopback address: the API "
		    "would be open to the network; set acl = { enabled = "
		    "true; } (the default outside -dev)", c->http_addr);
	if (c->dev && (!addr_is_loopback(c->http_addr) ||
	    !addr_is_loopback(c->bind_addr)))
		return conf_errf(err, errlen, f, key_line(cfg, "bind_addr",
		    "http_addr"), "-dev listens on loopback only: http_addr "
		    "(%s) and bind_addr (%s) must be loopback addresses",
		    c->http_addr, c->bind_addr);
	if (c->store.backend == CONF_STORE_ETCD && c->store.n_endpoints == 0)
		return conf_errf(err, errlen, f, key_line(cfg, "store.backend",
		    "store"), "store.endpoints: required with backend "
		    "\"etcd\"");
	if (c->ca.secret[0] != '\0' && !c->ca.server)
		return conf_errf(err, errlen, f, key_line(cfg, "ca.secret", "ca"),
		    "ca.secret: a CA client (ca.server = false) must not hold "
		    "it: it opens the root keys");
	if ((c->store.cert_file[0] == '\0') != (c->store.key_file[0] == '\0'))
		return conf_errf(err, errlen, f, key_line(cfg, "store.cert_file",
		    "store"), "store.cert_file and store.key_file must be "
		    "given together");
	return 0;
}

int
conf_check(const struct conf *c, char *err, size_t errlen)
{
	return cross_check(c, NULL, err, errlen);
}

/* ---- services: one service ---------------------------------------------- */

static int
resolve_user(const char *name, uid_t *uid, char *why, size_t whylen)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	char *buf = NULL, pn[CONF_NAME_MAX];
	long n;
	int rc;

	if (sz <= 0)
		sz = 16384;
	for (;;) {
		char *nb = realloc(buf, (size_t)sz);

		if (nb == NULL) {
			free(buf);
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		buf = nb;
		rc = getpwnam_r(name, &pw, buf, (size_t)sz, &res);
		if (rc != ERANGE || sz >= 1024 * 1024)
			break;
		sz *= 2;
	}
	if (res != NULL)
		*uid = pw.pw_uid;
	free(buf);
	if (res != NULL)
		return 0;
	if (util_parse_long(name, 0, (long)UINT32_MAX - 1, &n) == 0) {
		*uid = (uid_t)n;   /* a numeric uid without a passwd entry */
		return 0;
	}
	if (rc != 0 && rc != ENOENT && rc != ESRCH)
		snprintf(why, whylen, "user \"%s\": lookup failed: %s",
		    printable(name, pn, sizeof(pn)), strerror(rc));
	else
		snprintf(why, whylen, "user \"%s\" does not exist",
		    printable(name, pn, sizeof(pn)));
	return -1;
}

int
conf_check_http_parse(const char *url, char *host, size_t hostlen,
    int *port, char *path, size_t pathlen)
{
	const char *p, *end, *colon;
	size_t hl;
	long n = 80;

	if (strncmp(url, "https://", 8) == 0) {
		p = url + 8;
		n = 443;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		return -1;
	}
	end = p + strcspn(p, "/?#");
	if (*p == '[') {                        /* [v6]:port */
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL)
			return -1;
		hl = (size_t)(rb - p - 1);
		if (hl == 0 || hl >= hostlen)
			return -1;
		memcpy(host, p + 1, hl);
		host[hl] = '\0';
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (rb + 1 != end && colon == NULL)
			return -1;
		if (!valid_ip(host))
			return -1;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hl = (size_t)((colon != NULL ? colon : end) - p);
		if (hl == 0 || hl >= hostlen)
			return -1;
		memcpy(host, p, hl);
		host[hl] = '\0';
		if (!valid_ip(host) && !valid_hostname(host))
			return -1;
	}
	if (colon != NULL) {
		char ps[8];
		size_t pl = (size_t)(end - colon - 1);

		if (pl == 0 || pl >= sizeof(ps))
			return -1;
		memcpy(ps, colon + 1, pl);
		ps[pl] = '\0';
		if (util_parse_long(ps, 1, 65535, &n) != 0)
			return -1;
	}
	for (const char *q = end; *q != '\0'; q++)
		if (*q <= 0x20 || *q >= 0x7f)
			return -1;      /* no spaces or controls in the request */
	if (*end == '#')
		end = "";
	if (snprintf(path, pathlen, "%s%s", *end == '/' ? "" : "/", end) >=
	    (int)pathlen)
		return -1;
	*port = (int)n;
	return 0;
}

/* Check i (0-based) of a service; why gets "check N: reason". */
static int
check_validate(size_t i, const struct conf_check *k, char *why,
    size_t whylen)
{
	char host[CONF_ADDR_MAX], path[CONF_ADDR_MAX], pv[CONF_ADDR_MAX];
	char a[32], b[32];
	int port;

	switch (k->type) {
	case CONF_CHECK_TCP:
		if (util_split_hostport(k->target, host, sizeof(host),
		    &port) != 0 || port < 1 ||
		    (!valid_ip(host) && !valid_hostname(host))) {
			snprintf(why, whylen, "check %zu: tcp: \"%s\" is not "
			    "host:port", i + 1, printable(k->target, pv,
			    sizeof(pv)));
			return -1;
		}
		break;
	case CONF_CHECK_HTTP:
		if (conf_check_http_parse(k->target, host, sizeof(host), &port,
		    path, sizeof(path)) != 0) {
			snprintf(why, whylen, "check %zu: http: \"%s\" is not an "
			    "http[s]://host[:port]/path URL", i + 1,
			    printable(k->target, pv, sizeof(pv)));
			return -1;
		}
		if (k->tls_server_name[0] != '\0' &&
		    !valid_hostname(k->tls_server_name)) {
			snprintf(why, whylen, "check %zu: tls_server_name: "
			    "\"%s\" is not a host name", i + 1,
			    printable(k->tls_server_name, pv, sizeof(pv)));
			return -1;
		}
		break;
	case CONF_CHECK_TTL:
		if (k->ttl_ms < MS_S) {
			snprintf(why, whylen, "check %zu: ttl: must be at least "
			    "1s", i + 1);
			return -1;
		}
		break;
	default:
		snprintf(why, whylen, "check %zu: needs exactly one of tcp, "
		    "http or ttl", i + 1);
		return -1;
	}
	if (k->type != CONF_CHECK_HTTP && (k->tls_skip_verify ||
	    k->tls_server_name[0] != '\0')) {
		snprintf(why, whylen, "check %zu: tls_skip_verify and "
		    "tls_server_name apply to https checks only", i + 1);
		return -1;
	}
	if (k->success_before_passing < 0 ||
	    k->success_before_passing > CONF_CHECK_THRESHOLD_MAX ||
	    k->failures_before_critical < 0 ||
	    k->failures_before_critical > CONF_CHECK_THRESHOLD_MAX) {
		snprintf(why, whylen, "check %zu: success_before_passing and "
		    "failures_before_critical must be in 0..%d", i + 1,
		    CONF_CHECK_THRESHOLD_MAX);
		return -1;
	}
	if (k->interval_ms != 0 && (k->interval_ms < MS_S ||
	    k->interval_ms > MS_H)) {
		snprintf(why, whylen, "check %zu: interval: %s is out of range "
		    "1s..1h", i + 1, dur_fmt(k->interval_ms, a, sizeof(a)));
		return -1;
	}
	if (k->timeout_ms < 0 || (k->interval_ms != 0 &&
	    k->timeout_ms >= k->interval_ms)) {
		snprintf(why, whylen, "check %zu: timeout: %s must be shorter "
		    "than the interval (%s)", i + 1,
		    dur_fmt(k->timeout_ms, a, sizeof(a)),
		    dur_fmt(k->interval_ms, b, sizeof(b)));
		return -1;
	}
	return 0;
}

int
conf_check_dur(const char *text, long long secs, int is_int, long *ms)
{
	long long v;

	if (is_int) {
		if (secs <= 0 || secs > DUR_MAX_MS / MS_S)
			return -1;
		*ms = (long)(secs * MS_S);
		return 0;
	}
	if (dur_parse(text, 1, &v) != 0 || v > LONG_MAX)
		return -1;
	*ms = (long)v;
	return 0;
}

int
conf_service_validate(struct conf_service *s, char *err, size_t errlen)
{
	const char *f = s->source[0] != '\0' ? s->source : "-";
	int l = s->source_line;
	char pn[CONF_NAME_MAX], pv[CONF_ADDR_MAX], why[CONF_ERR_MAX];

	if (s->name[0] == '\0')
		return conf_errf(err, errlen, f, l, "service: name missing");
	if (!conf_valid_name(s->name))
		return conf_errf(err, errlen, f, l, "service \"%s\": name is not "
		    "valid (1..63 of A-Z a-z 0-9 _ -, starting with a letter "
		    "or digit)", printable(s->name, pn, sizeof(pn)));
	if (s->id[0] == '\0')
		util_strlcpy(s->id, s->name, sizeof(s->id));
	else if (!valid_id(s->id))
		return conf_errf(err, errlen, f, l, "service \"%s\": id \"%s\" is "
		    "not valid", s->name, printable(s->id, pv, sizeof(pv)));
	if (s->address[0] == '\0')
		util_strlcpy(s->address, "127.0.0.1", sizeof(s->address));
	else if (!valid_ip(s->address) && !valid_hostname(s->address))
		return conf_errf(err, errlen, f, l, "service \"%s\": address: \"%s\" "
		    "is not an IP address or host name", s->name,
		    printable(s->address, pv, sizeof(pv)));
	if (s->port < 0 || s->port > 65535)
		return conf_errf(err, errlen, f, l, "service \"%s\": port: %d is out "
		    "of range 1..65535", s->name, s->port);
	if (s->inbound != CONF_INBOUND_PERMISSIVE &&
	    s->inbound != CONF_INBOUND_STRICT)
		return conf_errf(err, errlen, f, l, "service \"%s\": inbound: must be "
		    "\"permissive\" or \"strict\"", s->name);
	if (s->user[0] != '\0' &&
	    resolve_user(s->user, &s->uid, why, sizeof(why)) != 0)
		return conf_errf(err, errlen, f, l, "service \"%s\": %s", s->name,
		    why);
	if (s->unit[0] != '\0' && !conf_valid_unit(s->unit))
		return conf_errf(err, errlen, f, l, "service \"%s\": unit: \"%s\" "
		    "is not a systemd unit name (\"billing.service\")", s->name,
		    printable(s->unit, pv, sizeof(pv)));
	if (s->n_upstreams > CONF_MAX_UPSTREAMS)
		return conf_errf(err, errlen, f, l, "service \"%s\": too many "
		    "upstreams (max %d)", s->name, CONF_MAX_UPSTREAMS);
	if (s->n_checks > CONF_MAX_CHECKS)
		return conf_errf(err, errlen, f, l, "service \"%s\": too many "
		    "checks (max %d)", s->name, CONF_MAX_CHECKS);
	for (size_t i = 0; i < s->n_checks; i++)
		if (check_validate(i, &s->checks[i], why, sizeof(why)) != 0)
			return conf_errf(err, errlen, f, l, "service \"%s\": %s",
			    s->name, why);
	for (size_t i = 0; i < s->n_upstreams; i++) {
		struct conf_upstream *u = &s->upstreams[i];
		unsigned char bin[sizeof(struct in6_addr)];
		int af = AF_INET;

		if (u->dest[0] == '\0')
			return conf_errf(err, errlen, f, l, "service \"%s\": upstream "
			    "%zu: destination_name missing", s->name, i + 1);
		if (!conf_valid_name(u->dest))
			return conf_errf(err, errlen, f, l, "service \"%s\": upstream "
			    "%zu: destination_name \"%s\" is not a valid service "
			    "name", s->name, i + 1,
			    printable(u->dest, pn, sizeof(pn)));
		if (u->bind_port == CONF_UNSET)
			return conf_errf(err, errlen, f, l, "service \"%s\": upstream "
			    "%zu: local_bind_port missing", s->name, i + 1);
		if (u->bind_port < 1 || u->bind_port > 65535)
			return conf_errf(err, errlen, f, l, "service \"%s\": upstream "
			    "%zu: local_bind_port: %d is out of range 1..65535",
			    s->name, i + 1, u->bind_port);
		if (u->bind_addr[0] == '\0')
			util_strlcpy(u->bind_addr, "127.0.0.1",
			    sizeof(u->bind_addr));
		if (inet_pton(AF_INET, u->bind_addr, bin) != 1) {
			af = AF_INET6;
			if (inet_pton(AF_INET6, u->bind_addr, bin) != 1)
				return conf_errf(err, errlen, f, l, "service \"%s\": "
				    "upstream %zu: local_bind_address: \"%s\" is "
				    "not an IP address", s->name, i + 1,
				    printable(u->bind_addr, pv, sizeof(pv)));
		}
		/* canonical text, so that "::1" and "0::1" compare equal */
		if (inet_ntop(af, bin, u->bind_addr, sizeof(u->bind_addr)) ==
		    NULL)
			return conf_errf(err, errlen, f, l, "service \"%s\": upstream "
			    "%zu: local_bind_address: %s", s->name, i + 1,
			    strerror(errno));
	}
	return 0;
}

/* ---- services: node-wide checks ---------------------------------------- */

struct dupkey {
	const char *key;
	int port;
	size_t svc, up;
};

static int
dupkey_cmp(const void *pa, const void *pb)
{
	const struct dupkey *a = pa, *b = pb;
	int r;

	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if ((r = strcmp(a->key, b->key)) != 0)
		return r;
	if (a->svc != b->svc)
		return a->svc < b->svc ? -1 : 1;
	return a->up < b->up ? -1 : a->up > b->up;
}

/* Sort keys and return the duplicate pair whose later member comes first
 * in definition order (*first, *second), or 0 if none. */
static int
dup_find(struct dupkey *k, size_t n, struct dupkey *first,
    struct dupkey *second)
{
	int found = 0;

	qsort(k, n, sizeof(*k), dupkey_cmp);
	for (size_t i = 1; i < n; i++) {
		if (k[i].port != k[i - 1].port ||
		    strcmp(k[i].key, k[i - 1].key) != 0)
			continue;
		if (!found || k[i].svc < second->svc ||
		    (k[i].svc == second->svc && k[i].up < second->up)) {
			*first = k[i - 1];
			*second = k[i];
			found = 1;
		}
	}
	return found;
}

int
conf_services_check(const struct conf_service *svcs, size_t n, char *err,
    size_t errlen)
{
	struct dupkey *k = NULL, a, b;
	size_t nk = 0, total = 0;
	int rc = -1;

	if (n > CONF_MAX_SERVICES)
		return conf_errf(err, errlen, svcs[CONF_MAX_SERVICES].source,
		    svcs[CONF_MAX_SERVICES].source_line,
		    "too many services (max %d)", CONF_MAX_SERVICES);
	for (size_t i = 0; i < n; i++)
		total += svcs[i].n_upstreams;
	if ((k = calloc(n + total + 1, sizeof(*k))) == NULL)
		return conf_errf(err, errlen, "-", 0, "out of memory");

	/* Instances are keyed by ID, as Consul's: two instances of one
	 * service (same name, other IDs) may live on a node. */
	nk = 0;
	for (size_t i = 0; i < n; i++) {
		k[nk].key = svcs[i].id;
		k[nk].port = 0;
		k[nk++].svc = i;
	}
	if (dup_find(k, nk, &a, &b)) {
		const struct conf_service *s1 = &svcs[a.svc];
		const struct conf_service *s2 = &svcs[b.svc];

		conf_errf(err, errlen, s2->source, s2->source_line,
		    "service %s\"%s\" is already defined at %s:%d",
		    strcmp(s2->id, s2->name) == 0 ? "" : "id ", b.key,
		    s1->source, s1->source_line);
		goto cleanup;
	}
	nk = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < svcs[i].n_upstreams; j++) {
			k[nk].key = svcs[i].upstreams[j].bind_addr;
			k[nk].port = svcs[i].upstreams[j].bind_port;
			k[nk].svc = i;
			k[nk++].up = j;
		}
	}
	if (dup_find(k, nk, &a, &b)) {
		const struct conf_service *s1 = &svcs[a.svc];
		const struct conf_service *s2 = &svcs[b.svc];

		conf_errf(err, errlen, s2->source, s2->source_line,
		    "service \"%s\": upstream %zu: local_bind_port %d on %s is "
		    "already used by service \"%s\" upstream %zu (%s:%d)",
		    s2->name, b.up + 1, b.port, b.key, s1->name, a.up + 1,
		    s1->source, s1->source_line);
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(k);
	return rc;
}

/* ---- services: libconfig ------------------------------------------------ */

static void
service_clear(struct conf_service *s)
{
	free(s->upstreams);
	memset(s, 0, sizeof(*s));
}

/* A growing array of services that we own. */
struct svec {
	struct conf_service *v;
	size_t n, cap;
};

static void
svec_free(struct svec *sv)
{
	conf_services_free(sv->v, sv->n);
	memset(sv, 0, sizeof(*sv));
}

/* Move *s (and its upstreams) into sv. */
static int
svec_push(struct svec *sv, struct conf_service *s, char *err, size_t errlen)
{
	if (sv->n >= CONF_MAX_SERVICES)
		return conf_errf(err, errlen, s->source, s->source_line,
		    "too many services (max %d)", CONF_MAX_SERVICES);
	if (sv->n == sv->cap) {
		size_t cap = sv->cap == 0 ? 16 : sv->cap * 2;
		struct conf_service *nv = reallocarray(sv->v, cap,
		    sizeof(*nv));

		if (nv == NULL)
			return conf_errf(err, errlen, s->source, s->source_line,
			    "out of memory");
		sv->v = nv;
		sv->cap = cap;
	}
	sv->v[sv->n++] = *s;
	memset(s, 0, sizeof(*s));
	return 0;
}

static int
keys_only(const config_setting_t *g, const char *const *allowed,
    const char *path, const char *what, char *err, size_t errlen)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g,
		    (unsigned)i);
		const char *name = config_setting_name(s);
		size_t j;

		for (j = 0; name != NULL && allowed[j] != NULL; j++)
			if (strcmp(allowed[j], name) == 0)
				break;
		if (name == NULL || allowed[j] == NULL)
			return conf_errf(err, errlen, src_file(s, path),
			    config_setting_source_line(s), "%s%sunknown key "
			    "\"%s\"", what, what[0] != '\0' ? ": " : "",
			    name != NULL ? name : "?");
	}
	return 0;
}

static int
cfg_str(const config_setting_t *g, const char *key, char *dst, size_t size,
    const char *path, const char *what, char *err, size_t errlen)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_errf(err, errlen, src_file(s, path),
		    config_setting_source_line(s), "%s: %s: must be a string",
		    what, key);
	if (util_strlcpy(dst, config_setting_get_string(s), size) >= size)
		return conf_errf(err, errlen, src_file(s, path),
		    config_setting_source_line(s), "%s: %s: too long (max %zu "
		    "characters)", what, key, size - 1);
	return 0;
}

static int
cfg_int(const config_setting_t *g, const char *key, int *dst,
    const char *path, const char *what, char *err, size_t errlen)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return conf_errf(err, errlen, src_file(s, path),
		    config_setting_source_line(s), "%s: %s: must be an integer",
		    what, key);
	v = config_setting_get_int64(s);
	if (v <= INT_MIN || v > INT_MAX)
		return conf_errf(err, errlen, src_file(s, path),
		    config_setting_source_line(s), "%s: %s: %lld is out of "
		    "range 1..65535", what, key, v);
	*dst = (int)v;
	return 0;
}

static const char *const svc_keys[] = { "id", "name", "address", "port",
	"connect", "user", "unit", "inbound", "upstreams", "check", "checks",
	NULL };
static const char *const check_keys[] = { "tcp", "http", "ttl", "interval",
	"timeout", "success_before_passing", "failures_before_critical",
	"tls_skip_verify", "tls_server_name", NULL };
static const char *const up_keys[] = { "destination_name",
	"local_bind_port", "local_bind_address", NULL };

static int
upstreams_from_cfg(const config_setting_t *l, struct conf_service *s,
    const char *path, const char *what, char *err, size_t errlen)
{
	int n = config_setting_length(l);
	const char *f = src_file(l, path);

	if (!config_setting_is_list(l) &&
	    !(config_setting_is_array(l) && n == 0))
		return conf_errf(err, errlen, f, config_setting_source_line(l),
		    "%s: upstreams: must be a list ( { ... }, ... )", what);
	if (n > CONF_MAX_UPSTREAMS)
		return conf_errf(err, errlen, f, config_setting_source_line(l),
		    "%s: too many upstreams (max %d)", what,
		    CONF_MAX_UPSTREAMS);
	if (n == 0)
		return 0;
	if ((s->upstreams = calloc((size_t)n, sizeof(*s->upstreams))) == NULL)
		return conf_errf(err, errlen, f, 0, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(l,
		    (unsigned)i);
		struct conf_upstream *u = &s->upstreams[i];
		char uwhat[CONF_NAME_MAX + 64];

		s->n_upstreams++;
		u->bind_port = CONF_UNSET;
		snprintf(uwhat, sizeof(uwhat), "%s: upstream %d", what, i + 1);
		if (!config_setting_is_group(g))
			return conf_errf(err, errlen, src_file(g, path),
			    config_setting_source_line(g), "%s: must be a "
			    "group { ... }", uwhat);
		if (keys_only(g, up_keys, path, uwhat, err, errlen) != 0 ||
		    cfg_str(g, "destination_name", u->dest, sizeof(u->dest),
		    path, uwhat, err, errlen) != 0 ||
		    cfg_str(g, "local_bind_address", u->bind_addr,
		    sizeof(u->bind_addr), path, uwhat, err, errlen) != 0 ||
		    cfg_int(g, "local_bind_port", &u->bind_port, path, uwhat,
		    err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* A check's duration key: a string ("10s", "500ms") or seconds. */
static int
cfg_check_dur(const config_setting_t *g, const char *key, long *ms,
    const char *path, const char *what, char *err, size_t errlen)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	int t;

	if (m == NULL)
		return 0;
	t = config_setting_type(m);
	if ((t == CONFIG_TYPE_STRING && conf_check_dur(
	    config_setting_get_string(m), 0, 0, ms) == 0) ||
	    ((t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) &&
	    conf_check_dur(NULL, config_setting_get_int64(m), 1, ms) == 0))
		return 0;
	return conf_errf(err, errlen, src_file(m, path),
	    config_setting_source_line(m), "%s: %s: bad duration (use e.g. "
	    "\"10s\", \"500ms\", \"1m\")", what, key);
}

/* One check group into s->checks[s->n_checks++]. */
static int
check_from_cfg(const config_setting_t *g, struct conf_service *s,
    const char *path, const char *swhat, char *err, size_t errlen)
{
	struct conf_check *k;
	const config_setting_t *m;
	char what[CONF_NAME_MAX + 64];
	const char *f = src_file(g, path);
	int line = config_setting_source_line(g), kinds = 0;

	snprintf(what, sizeof(what), "%s: check %zu", swhat, s->n_checks + 1);
	if (s->n_checks >= CONF_MAX_CHECKS)
		return conf_errf(err, errlen, f, line, "%s: too many checks "
		    "(max %d)", swhat, CONF_MAX_CHECKS);
	if (!config_setting_is_group(g))
		return conf_errf(err, errlen, f, line, "%s: must be a group "
		    "{ ... }", what);
	if (keys_only(g, check_keys, path, what, err, errlen) != 0)
		return -1;
	k = &s->checks[s->n_checks];
	memset(k, 0, sizeof(*k));
	if (config_setting_get_member(g, "tcp") != NULL) {
		kinds++;
		k->type = CONF_CHECK_TCP;
		if (cfg_str(g, "tcp", k->target, sizeof(k->target), path, what,
		    err, errlen) != 0)
			return -1;
	}
	if (config_setting_get_member(g, "http") != NULL) {
		kinds++;
		k->type = CONF_CHECK_HTTP;
		if (cfg_str(g, "http", k->target, sizeof(k->target), path,
		    what, err, errlen) != 0)
			return -1;
	}
	if (config_setting_get_member(g, "ttl") != NULL) {
		kinds++;
		k->type = CONF_CHECK_TTL;
		if (cfg_check_dur(g, "ttl", &k->ttl_ms, path, what, err,
		    errlen) != 0)
			return -1;
	}
	if (kinds != 1)
		return conf_errf(err, errlen, f, line, "%s: needs exactly one of "
		    "tcp, http or ttl", what);
	if (cfg_check_dur(g, "interval", &k->interval_ms, path, what, err,
	    errlen) != 0 ||
	    cfg_check_dur(g, "timeout", &k->timeout_ms, path, what, err,
	    errlen) != 0 ||
	    cfg_int(g, "success_before_passing", &k->success_before_passing,
	    path, what, err, errlen) != 0 ||
	    cfg_int(g, "failures_before_critical",
	    &k->failures_before_critical, path, what, err, errlen) != 0 ||
	    cfg_str(g, "tls_server_name", k->tls_server_name,
	    sizeof(k->tls_server_name), path, what, err, errlen) != 0)
		return -1;
	if ((m = config_setting_get_member(g, "tls_skip_verify")) != NULL) {
		if (config_setting_type(m) != CONFIG_TYPE_BOOL)
			return conf_errf(err, errlen, src_file(m, path),
			    config_setting_source_line(m), "%s: "
			    "tls_skip_verify: must be true or false", what);
		k->tls_skip_verify = config_setting_get_bool(m);
	}
	s->n_checks++;
	return 0;
}

static int
checks_from_cfg(const config_setting_t *g, struct conf_service *s,
    const char *path, const char *what, char *err, size_t errlen)
{
	const config_setting_t *m;

	if ((m = config_setting_get_member(g, "check")) != NULL &&
	    check_from_cfg(m, s, path, what, err, errlen) != 0)
		return -1;
	if ((m = config_setting_get_member(g, "checks")) != NULL) {
		int n = config_setting_length(m);

		if (!config_setting_is_list(m) &&
		    !(config_setting_is_array(m) && n == 0))
			return conf_errf(err, errlen, src_file(m, path),
			    config_setting_source_line(m), "%s: checks: must be "
			    "a list ( { ... }, ... )", what);
		for (int i = 0; i < n; i++)
			if (check_from_cfg(config_setting_get_elem(m,
			    (unsigned)i), s, path, what, err, errlen) != 0)
				return -1;
	}
	return 0;
}

/* One "services" entry of a libconfig file into *s (freed on error). */
static int
service_from_cfg(const config_setting_t *g, int idx, const char *path,
    struct conf_service *s, char *err, size_t errlen)
{
	const config_setting_t *m;
	char what[CONF_NAME_MAX + 32], tmp[CONF_NAME_MAX];

	memset(s, 0, sizeof(*s));
	util_strlcpy(s->source, src_file(g, path), sizeof(s->source));
	s->source_line = config_setting_source_line(g);
	snprintf(what, sizeof(what), "service %d", idx + 1);
	if (!config_setting_is_group(g))
		return conf_errf(err, errlen, s->source, s->source_line,
		    "%s: must be a group { ... }", what);
	if (cfg_str(g, "name", s->name, sizeof(s->name), path, what, err,
	    errlen) != 0)
		goto err;
	if (s->name[0] != '\0')
		snprintf(what, sizeof(what), "service \"%s\"",
		    printable(s->name, tmp, sizeof(tmp)));
	if (keys_only(g, svc_keys, path, what, err, errlen) != 0 ||
	    cfg_str(g, "id", s->id, sizeof(s->id), path, what, err,
	    errlen) != 0 ||
	    cfg_str(g, "address", s->address, sizeof(s->address), path, what,
	    err, errlen) != 0 ||
	    cfg_str(g, "user", s->user, sizeof(s->user), path, what, err,
	    errlen) != 0 ||
	    cfg_str(g, "unit", s->unit, sizeof(s->unit), path, what, err,
	    errlen) != 0 ||
	    cfg_int(g, "port", &s->port, path, what, err, errlen) != 0)
		goto err;
	if ((m = config_setting_get_member(g, "inbound")) != NULL) {
		const char *v = config_setting_get_string(m);

		if (v == NULL || conf_parse_inbound(v, &s->inbound) != 0) {
			conf_errf(err, errlen, src_file(m, path),
			    config_setting_source_line(m), "%s: inbound: must be "
			    "\"permissive\" or \"strict\"", what);
			goto err;
		}
	}
	if ((m = config_setting_get_member(g, "connect")) != NULL) {
		static const char *const none[] = { NULL };
		char cwhat[sizeof(what) + 16];

		snprintf(cwhat, sizeof(cwhat), "%s: connect", what);
		if (!config_setting_is_group(m)) {
			conf_errf(err, errlen, src_file(m, path),
			    config_setting_source_line(m), "%s: must be a group "
			    "{ }", cwhat);
			goto err;
		}
		if (keys_only(m, none, path, cwhat, err, errlen) != 0)
			goto err;
		s->connect = 1;
	}
	if ((m = config_setting_get_member(g, "upstreams")) != NULL &&
	    upstreams_from_cfg(m, s, path, what, err, errlen) != 0)
		goto err;
	if (checks_from_cfg(g, s, path, what, err, errlen) != 0)
		goto err;
	if (conf_service_validate(s, err, errlen) != 0)
		goto err;
	return 0;
err:
	service_clear(s);
	return -1;
}

static int
services_from_cfg(const config_setting_t *list, const char *path,
    struct svec *out, char *err, size_t errlen)
{
	int n = config_setting_length(list);

	if (!config_setting_is_list(list) &&
	    !(config_setting_is_array(list) && n == 0))
		return conf_errf(err, errlen, src_file(list, path),
		    config_setting_source_line(list), "services: must be a list "
		    "( { ... }, ... )");
	for (int i = 0; i < n; i++) {
		struct conf_service s;

		if (service_from_cfg(config_setting_get_elem(list, (unsigned)i),
		    i, path, &s, err, errlen) != 0)
			return -1;
		if (svec_push(out, &s, err, errlen) != 0) {
			service_clear(&s);
			return -1;
		}
	}
	return 0;
}

/* ---- service files and services_dir ------------------------------------- */

static int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a > b && strcmp(s + a - b, suf) == 0;
}

static int
file_into(const char *path, struct svec *out, char *err, size_t errlen)
{
	struct conf_service *v = NULL;
	size_t n = 0, len, i;
	char *buf;
	int rc = -1;

	if (has_suffix(path, ".conf")) {
		static const char *const top[] = { "services", NULL };
		const config_setting_t *l;
		config_t cfg;

		config_init(&cfg);
		if (cfg_read(&cfg, path, err, errlen) == 0 &&
		    keys_only(config_root_setting(&cfg), top, path, "", err,
		    errlen) == 0) {
			l = config_setting_get_member(config_root_setting(&cfg),
			    "services");
			rc = l == NULL ? 0 :
			    services_from_cfg(l, path, out, err, errlen);
		}
		config_destroy(&cfg);
		return rc;
	}
	if (!has_suffix(path, ".json"))
		return conf_errf(err, errlen, path, 0, "not a .conf or .json file");
	if ((buf = util_read_file(path, CONF_FILE_MAX, &len)) == NULL) {
		if (errno == EFBIG)
			return conf_errf(err, errlen, path, 0,
			    "file is larger than %d bytes", CONF_FILE_MAX);
		return conf_errf(err, errlen, path, 0, "%s", strerror(errno));
	}
	if (conf_parse_service_json(buf, len, path, &v, &n, err, errlen) != 0)
		goto cleanup;
	for (i = 0; i < n; i++)
		if (svec_push(out, &v[i], err, errlen) != 0)
			break;
	rc = i == n ? 0 : -1;
	/* moved-from entries are zeroed, so this frees only what is left */
	conf_services_free(v, n);
	v = NULL;
cleanup:
	free(buf);
	return rc;
}

int
conf_parse_service_file(const char *path, struct conf_service **svcs,
    size_t *n, char *err, size_t errlen)
{
	struct svec sv = { 0 };
	struct conf_service *nv;
	int rc = -1;

	if (file_into(path, &sv, err, errlen) != 0)
		goto cleanup;
	if (*n + sv.n > CONF_MAX_SERVICES) {
		conf_errf(err, errlen, path, 0, "too many services (max %d)",
		    CONF_MAX_SERVICES);
		goto cleanup;
	}
	if (sv.n == 0) {
		rc = 0;
		goto cleanup;
	}
	if ((nv = reallocarray(*svcs, *n + sv.n, sizeof(*nv))) == NULL) {
		conf_errf(err, errlen, path, 0, "out of memory");
		goto cleanup;
	}
	memcpy(nv + *n, sv.v, sv.n * sizeof(*nv));
	*svcs = nv;
	*n += sv.n;
	free(sv.v);
	memset(&sv, 0, sizeof(sv));
	rc = 0;
cleanup:
	svec_free(&sv);
	return rc;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);   /* not locale-dependent */
}

static int
name_filter(const struct dirent *d)
{
	return d->d_name[0] != '.' && (has_suffix(d->d_name, ".conf") ||
	    has_suffix(d->d_name, ".json") || has_suffix(d->d_name, ".hcl"));
}

/* Append one line to the notices (cut short when full). */
static void
notice_add(char *notes, size_t len, const char *fmt, ...)
{
	size_t used = strlen(notes);
	va_list ap;
	int n;

	if (used + 2 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(notes + used, len - used - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	used = strlen(notes);
	notes[used] = '\n';
	notes[used + 1] = '\0';
}

/* *.conf and *.json of dir in byte order; a missing dir is empty. A
 * *.hcl file (Consul's other format) is skipped with a notice. */
static int
dir_into(const struct conf *c, struct svec *out, char *notes,
    size_t noteslen, char *err, size_t errlen)
{
	const char *dir = c->services_dir;
	const char *origin = c->path[0] != '\0' ? c->path : "(defaults)";
	struct dirent **ents = NULL;
	struct stat st;
	int n, i, rc = -1;

	if (stat(dir, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return conf_errf(err, errlen, origin, 0, "services_dir: %s: %s", dir,
		    strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return conf_errf(err, errlen, origin, 0, "services_dir: %s is not a "
		    "directory", dir);
	if ((n = scandir(dir, &ents, name_filter, name_cmp)) < 0)
		return conf_errf(err, errlen, origin, 0, "services_dir: %s: %s", dir,
		    strerror(errno));
	for (i = 0; i < n; i++) {
		char path[CONF_PATH_MAX];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		    ents[i]->d_name) >= sizeof(path)) {
			conf_errf(err, errlen, origin, 0, "services_dir: %s/%s: path "
			    "too long", dir, ents[i]->d_name);
			goto cleanup;
		}
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;   /* vanished, a directory, a fifo... */
		if (has_suffix(path, ".hcl")) {
			notice_add(notes, noteslen, "%s: skipped: HCL is not "
			    "supported; write the service definition as JSON "
			    "(%.*s.json, Consul's JSON form) or libconfig "
			    "(.conf)", path, (int)strlen(ents[i]->d_name) - 4,
			    ents[i]->d_name);
			continue;
		}
		if (file_into(path, out, err, errlen) != 0)
			goto cleanup;
	}
	rc = 0;
cleanup:
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

/* mesh.conf's "services" (from cfg, or re-read from c->path when cfg is
 * NULL), then services_dir, then the node-wide checks. */
static int
services_load(const struct conf *c, config_t *cfg, struct svec *out,
    char *notes, size_t noteslen, char *err, size_t errlen)
{
	const config_setting_t *l;
	config_t own;
	int have_own = 0, rc = -1;

	if (cfg == NULL && c->path[0] != '\0') {
		config_init(&own);
		have_own = 1;
		if (cfg_read(&own, c->path, err, errlen) != 0)
			goto cleanup;
		cfg = &own;
	}
	if (cfg != NULL && (l = config_setting_get_member(
	    config_root_setting(cfg), "services")) != NULL &&
	    services_from_cfg(l, c->path, out, err, errlen) != 0)
		goto cleanup;
	notes[0] = '\0';
	if (c->services_dir[0] != '\0' && dir_into(c, out, notes, noteslen,
	    err, errlen) != 0)
		goto cleanup;
	if (conf_services_check(out->v, out->n, err, errlen) != 0)
		goto cleanup;
	rc = 0;
cleanup:
	if (have_own)
		config_destroy(&own);
	return rc;
}

int
conf_user_uid(const char *name, uid_t *uid)
{
	char why[128];

	return resolve_user(name, uid, why, sizeof(why));
}

/* ---- the conf ----------------------------------------------------------- */

void
conf_defaults(struct conf *c, int dev)
{
	char host[256];
	size_t j = 0;

	memset(c, 0, sizeof(*c));
	defaults_apply(top_keys, c);
	/* node: the host name up to its first dot, made a valid name */
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		for (size_t i = 0; host[i] != '\0' && host[i] != '.' &&
		    j < CONF_NAME_MAX - 1; i++) {
			char ch = host[i];

			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' &&
			    ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			    ch == '-' || ch == '_'))
				ch = '-';
			c->node[j++] = ch;
		}
	}
	c->node[j] = '\0';
	if (!conf_valid_name(c->node))
		util_strlcpy(c->node, "node", sizeof(c->node));
	c->dev = dev != 0;
	/* -dev: open API (it says so at start), loopback only. */
	if (dev) {
		c->acl.enabled = 0;
		util_strlcpy(c->bind_addr, "127.0.0.1", sizeof(c->bind_addr));
	}
}

static void
endpoints_free(struct conf_store_cfg *st)
{
	for (size_t i = 0; i < st->n_endpoints; i++)
		free(st->endpoints[i]);
	memset(st->endpoints, 0, sizeof(st->endpoints));
	st->n_endpoints = 0;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct svec sv = { 0 };
	struct conf tmp;
	config_t cfg;
	int rc = -1;

	/* Work on a copy so that c is untouched on error. */
	tmp = *c;
	tmp.services = NULL;
	tmp.n_services = 0;
	memset(tmp.store.endpoints, 0, sizeof(tmp.store.endpoints));
	tmp.store.n_endpoints = 0;
	config_init(&cfg);
	for (size_t i = 0; i < c->store.n_endpoints; i++) {
		if ((tmp.store.endpoints[i] = strdup(c->store.endpoints[i])) ==
		    NULL) {
			conf_errf(err, errlen, path, 0, "out of memory");
			goto cleanup;
		}
		tmp.store.n_endpoints++;
	}
	if (util_strlcpy(tmp.path, path, sizeof(tmp.path)) >= sizeof(tmp.path)) {
		conf_errf(err, errlen, path, 0, "path too long");
		goto cleanup;
	}
	if (cfg_read(&cfg, path, err, errlen) != 0 ||
	    group_apply(top_keys, &tmp, config_root_setting(&cfg), "", path,
	    err, errlen) != 0 ||
	    cross_check(&tmp, &cfg, err, errlen) != 0 ||
	    services_load(&tmp, &cfg, &sv, tmp.notices, sizeof(tmp.notices),
	    err, errlen) != 0)
		goto cleanup;

	endpoints_free(&c->store);
	conf_services_free(c->services, c->n_services);
	tmp.services = sv.v;
	tmp.n_services = sv.n;
	memset(&sv, 0, sizeof(sv));
	*c = tmp;
	memset(&tmp, 0, sizeof(tmp));
	rc = 0;
cleanup:
	endpoints_free(&tmp.store);
	svec_free(&sv);
	config_destroy(&cfg);
	return rc;
}

int
conf_reload_services(struct conf *c, char *err, size_t errlen)
{
	struct svec sv = { 0 };
	char notes[CONF_NOTICES_MAX];

	if (services_load(c, NULL, &sv, notes, sizeof(notes), err,
	    errlen) != 0) {
		svec_free(&sv);
		return -1;
	}
	memcpy(c->notices, notes, sizeof(c->notices));
	conf_services_free(c->services, c->n_services);
	c->services = sv.v;
	c->n_services = sv.n;
	return 0;
}

static int
diff_skipped(const char *name, const char *const *skip)
{
	for (; skip != NULL && *skip != NULL; skip++)
		if (strcmp(name, *skip) == 0)
			return 1;
	return 0;
}

/* conf_diff over one table; pfx: "" or "ca.". */
static void
diff_tab(const struct ckey *tab, const char *a, const char *b,
    const char *pfx, const char *const *skip, char *out, size_t outlen,
    size_t *n)
{
	for (; tab->name != NULL; tab++) {
		const char *fa = a + tab->off, *fb = b + tab->off;
		char name[128];
		int differ = 0;
		size_t used;

		snprintf(name, sizeof(name), "%s%s", pfx, tab->name);
		if (tab->type == K_SERVICES || diff_skipped(name, skip))
			continue;
		switch (tab->type) {
		case K_GROUP: {
			char sub[130];

			snprintf(sub, sizeof(sub), "%s.", name);
			diff_tab(tab->sub, fa, fb, sub, skip, out, outlen, n);
			continue;
		}
		case K_STR:
			differ = strncmp(fa, fb, tab->size) != 0;
			break;
		case K_LIST: {
			char *const *la = (char *const *)(const void *)fa;
			char *const *lb = (char *const *)(const void *)fb;
			size_t na = *(const size_t *)(const void *)(a +
			    tab->off_n), nb = *(const size_t *)(const void *)
			    (b + tab->off_n);

			differ = na != nb;
			for (size_t i = 0; !differ && i < na; i++)
				differ = strcmp(la[i], lb[i]) != 0;
			break;
		}
		default:
			differ = memcmp(fa, fb, tab->size) != 0;
			break;
		}
		if (!differ)
			continue;
		used = strlen(out);
		if (used < outlen)
			snprintf(out + used, outlen - used, "%s%s",
			    *n > 0 ? ", " : "", name);
		(*n)++;
	}
}

size_t
conf_diff(const struct conf *a, const struct conf *b,
    const char *const *skip, char *out, size_t outlen)
{
	size_t n = 0;

	if (outlen > 0)
		out[0] = '\0';
	diff_tab(top_keys, (const char *)a, (const char *)b, "", skip, out,
	    outlen, &n);
	return n;
}

int
conf_set(struct conf *c, const char *key, const char *value,
    const char *origin, char *err, size_t errlen)
{
	const struct ckey *tab = top_keys, *k = NULL;
	void *base = c;
	char part[64], why[CONF_ERR_MAX];
	const char *p = key;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (len >= sizeof(part))
			len = sizeof(part) - 1;
		memcpy(part, p, len);
		part[len] = '\0';
		if ((k = key_find(tab, part)) == NULL)
			goto unknown;
		if (dot == NULL)
			break;
		if (k->type != K_GROUP)
			goto unknown;
		base = (char *)base + k->off;
		tab = k->sub;
		p = dot + 1;
	}
	if (k->type == K_GROUP || k->type == K_SERVICES) {
		snprintf(err, errlen, "%s: %s: cannot be set from the command "
		    "line", origin, key);
		return -1;
	}
	if (k->type == K_LIST) {
		char copy[CONF_MAX_ENDPOINTS * 64 + 1];
		const char *items[CONF_MAX_ENDPOINTS + 1];
		size_t n = 0;
		char *save = NULL, *tok;

		if (util_strlcpy(copy, value, sizeof(copy)) >= sizeof(copy)) {
			snprintf(err, errlen, "%s: %s: too long", origin, key);
			return -1;
		}
		for (tok = strtok_r(copy, ",", &save); tok != NULL &&
		    n <= CONF_MAX_ENDPOINTS; tok = strtok_r(NULL, ",", &save))
			items[n++] = tok;
		if (list_apply(k, base, items, n, why, sizeof(why)) != 0)
			goto bad;
	} else {
		struct cval v = { .kind = V_TEXT, .s = value };

		if (key_apply(k, base, &v, why, sizeof(why)) != 0)
			goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: %s: %s", origin, key, why);
	return -1;
unknown:
	snprintf(err, errlen, "%s: unknown key \"%s\"", origin, key);
	return -1;
}

const struct conf_service *
conf_find_service(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_services; i++)
		if (strcmp(c->services[i].name, name) == 0)
			return &c->services[i];
	return NULL;
}

void
conf_service_clear(struct conf_service *s)
{
	free(s->upstreams);
	s->upstreams = NULL;
	s->n_upstreams = 0;
}

void
conf_services_free(struct conf_service *svcs, size_t n)
{
	if (svcs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		conf_service_clear(&svcs[i]);
	free(svcs);
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	endpoints_free(&c->store);
	conf_services_free(c->services, c->n_services);
	c->services = NULL;
	c->n_services = 0;
}
