/* conf keys: the ONE table of mesh.conf keys {name, type, bounds, default,
 * check} and how a value given in a file or a flag is applied to a field. */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define ENDPOINT_MAX  1024
#define NO_DEFAULT    NULL


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
	if (conf_valid_ip(v))
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
	    (conf_valid_ip(host) || conf_valid_hostname(host)))
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
	if (conf_valid_hostname(v))
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

/* A TCP congestion control's name (TCP_CA_NAME_MAX is 16), or ""; the
 * message names what else the key takes (also: "" or "\"auto\", "). */
static int
congestion_name(const char *v, char *why, size_t whylen, const char *also)
{
	size_t n = strlen(v);

	if (n < 16 && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") == n)
		return 0;
	snprintf(why, whylen, "\"%s\" is not a congestion control name (up "
	    "to 15 of a-z 0-9 _, as in net.ipv4.tcp_available_congestion_"
	    "control; %s\"\" for the system's)", v, also);
	return -1;
}

static int
chk_congestion(const char *v, char *why, size_t whylen)
{
	return congestion_name(v, why, whylen, "");
}

/* "auto" is a name by that rule too. */
static int
chk_mesh_congestion(const char *v, char *why, size_t whylen)
{
	return congestion_name(v, why, whylen, "\"auto\", or ");
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
	    conf_valid_ip(host)))
		return 0;
	snprintf(why, whylen, "\"%s\" is not IP:port (or \"\" for no DNS "
	    "server)", v);
	return -1;
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

const struct ckey conf_top_keys[] = {
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
	{ .name = "busy_poll_us", .type = K_INT, FLD(conf, busy_poll_us),
	  .min = 0, .max = 1000, .def = "50" },
	{ .name = "loopback_congestion", .type = K_STR,
	  FLD(conf, loopback_congestion), .check = chk_congestion,
	  .def = "cubic" },
	{ .name = "mesh_congestion", .type = K_STR,
	  FLD(conf, mesh_congestion), .check = chk_mesh_congestion,
	  .def = "auto" },
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

const struct ckey *
conf_key_find(const struct ckey *tab, const char *name)
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

const char *
conf_type_word(const struct ckey *k)
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

/* Each apply_* returns 0 (applied), -1 (why says what was wrong) or 1
 * (v is not of a kind this type takes: the caller names the type). */

static int
apply_str(const struct ckey *k, char *field, const struct cval *v, char *why,
    size_t whylen)
{
	if (v->kind != V_STR && v->kind != V_TEXT)
		return 1;
	if (strlen(v->s) >= k->size) {
		snprintf(why, whylen, "too long (max %zu characters)",
		    k->size - 1);
		return -1;
	}
	if (k->check != NULL && k->check(v->s, why, whylen) != 0)
		return -1;
	util_strlcpy(field, v->s, k->size);
	return 0;
}

static int
apply_int(const struct ckey *k, char *field, const struct cval *v, char *why,
    size_t whylen)
{
	long long n;

	if (v->kind == V_TEXT) {
		char *end;

		errno = 0;
		n = strtoll(v->s, &end, 10);
		if (errno != 0 || end == v->s || *end != '\0')
			return 1;
	} else if (v->kind == V_INT) {
		n = v->i;
	} else {
		return 1;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, whylen, "%lld is out of range %lld..%lld", n,
		    k->min, k->max);
		return -1;
	}
	put_num(field, k->size, n);
	return 0;
}

static int
apply_bool(const struct ckey *k, char *field, const struct cval *v)
{
	int on;

	if (v->kind == V_BOOL)
		on = v->i != 0;
	else if (v->kind != V_TEXT)
		return 1;
	else if (strcmp(v->s, "true") == 0 || strcmp(v->s, "1") == 0)
		on = 1;
	else if (strcmp(v->s, "false") == 0 || strcmp(v->s, "0") == 0)
		on = 0;
	else
		return 1;
	put_num(field, k->size, on);
	return 0;
}

static int
apply_enum(const struct ckey *k, char *field, const struct cval *v, char *why,
    size_t whylen)
{
	if (v->kind == V_STR || v->kind == V_TEXT) {
		for (const struct kchoice *ch = k->choices; ch->name != NULL;
		    ch++) {
			if (strcmp(ch->name, v->s) == 0) {
				put_num(field, k->size, ch->value);
				return 0;
			}
		}
	}
	snprintf(why, whylen, "must be \"%s\" or \"%s\"", k->choices[0].name,
	    k->choices[1].name);
	return -1;
}

/* A duration: integer seconds, or text ("30s", "5m"; "500ms" if in_ms). */
static int
apply_dur(const struct ckey *k, char *field, const struct cval *v, char *why,
    size_t whylen)
{
	char a[32], b[32], given[32];
	long long n;

	if (v->kind == V_INT) {
		n = v->i < 0 || v->i > DUR_MAX_MS / MS_S ? -1 : v->i * MS_S;
		snprintf(given, sizeof(given), "%lld", v->i);
	} else if (v->kind == V_STR || v->kind == V_TEXT) {
		if (strcmp(v->s, "0") == 0) {
			n = 0;
		} else if (conf_dur_parse(v->s, k->in_ms, &n) != 0) {
			snprintf(why, whylen, "bad duration \"%s\" (use e.g. "
			    "%s30s, 5m, 72h)", v->s, k->in_ms ? "500ms, " : "");
			return -1;
		}
		util_strlcpy(given, v->s, sizeof(given));
	} else {
		return 1;
	}
	if (n < k->min || n > k->max) {
		snprintf(why, whylen, "%s is out of range %s..%s", v->kind ==
		    V_INT ? given : v->s, conf_dur_fmt(k->min, a, sizeof(a)),
		    conf_dur_fmt(k->max, b, sizeof(b)));
		return -1;
	}
	put_num(field, k->size, k->in_ms ? n : n / MS_S);
	return 0;
}

/* Apply one scalar value to the field k describes in base: the "apply"
 * column of the table. why gets the reason (without file, line or key). */
int
conf_key_apply(const struct ckey *k, void *base, const struct cval *v,
    char *why, size_t whylen)
{
	char *field = (char *)base + k->off;
	int rc;

	switch (k->type) {
	case K_STR:
		rc = apply_str(k, field, v, why, whylen);
		break;
	case K_INT:
		rc = apply_int(k, field, v, why, whylen);
		break;
	case K_BOOL:
		rc = apply_bool(k, field, v);
		break;
	case K_ENUM:
		rc = apply_enum(k, field, v, why, whylen);
		break;
	case K_DUR:
		rc = apply_dur(k, field, v, why, whylen);
		break;
	default:
		rc = 1;
		break;
	}
	if (rc <= 0)
		return rc;
	snprintf(why, whylen, "must be %s", conf_type_word(k));
	return -1;
}

/* K_LIST: replace the list with items (checked first; nothing changes on
 * error). */
int
conf_list_apply(const struct ckey *k, void *base, const char *const *items,
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

void
conf_defaults_apply(const struct ckey *tab, void *base)
{
	char why[CONF_ERR_MAX];

	for (; tab->name != NULL; tab++) {
		if (tab->type == K_GROUP) {
			conf_defaults_apply(tab->sub, (char *)base + tab->off);
		} else if (tab->type == K_LIST) {
			(void)conf_list_apply(tab, base, NULL, 0, why, sizeof(why));
		} else if (tab->def != NULL) {
			struct cval v = { .kind = V_TEXT, .s = tab->def };
			(void)conf_key_apply(tab, base, &v, why, sizeof(why));
		}
	}
}

