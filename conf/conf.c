/* conf: mesh.conf read with libconfig through the key table (keys.c),
 * checked across keys, reloaded, compared (conf_diff) and set by flags.
 * Values: value.c; services: service.c, service_file.c; Consul JSON:
 * consul.c. */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SHORT_LEAF_S  3600L  /* leaf_ttl below this needs allow_short_ttl */

/* ---- libconfig ---------------------------------------------------------- */

const char *
conf_src_file(const config_setting_t *s, const char *path)
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
int
conf_cfg_read(config_t *cfg, const char *path, char *err, size_t errlen)
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
		const char *f = conf_src_file(s, path);
		int line = config_setting_source_line(s);
		const struct ckey *k;
		char kname[128], why[CONF_ERR_MAX];

		snprintf(kname, sizeof(kname), "%s%s", prefix,
		    name != NULL ? name : "?");
		if (name == NULL || (k = conf_key_find(tab, name)) == NULL)
			return conf_errf(err, errlen, f, line, "unknown key \"%s\"",
			    kname);
		if (k->type == K_GROUP) {
			char sub[sizeof(kname) + 1];

			if (!config_setting_is_group(s))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, conf_type_word(k));
			snprintf(sub, sizeof(sub), "%s.", kname);
			if (group_apply(k->sub, (char *)base + k->off, s, sub,
			    path, err, errlen) != 0)
				return -1;
		} else if (k->type == K_SERVICES) {
			if (!config_setting_is_list(s) &&
			    !(config_setting_is_array(s) &&
			    config_setting_length(s) == 0))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, conf_type_word(k));
		} else if (k->type == K_LIST) {
			const char *items[CONF_MAX_ENDPOINTS];
			int m = config_setting_length(s);

			if (!config_setting_is_array(s) &&
			    !config_setting_is_list(s))
				return conf_errf(err, errlen, f, line,
				    "%s: must be %s", kname, conf_type_word(k));
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
					    conf_type_word(k));
				items[j] = config_setting_get_string(e);
			}
			if (conf_list_apply(k, base, items, (size_t)m, why,
			    sizeof(why)) != 0)
				return conf_errf(err, errlen, f, line, "%s: %s",
				    kname, why);
		} else {
			struct cval v = cfg_val(s);

			if (conf_key_apply(k, base, &v, why, sizeof(why)) != 0)
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
		    conf_dur_fmt(c->ca.leaf_ttl * MS_S, a, sizeof(a)));
	if (c->ca.leaf_ttl >= c->ca.root_ttl)
		return conf_errf(err, errlen, f, key_line(cfg, "ca.leaf_ttl", "ca"),
		    "ca.leaf_ttl: %s must be shorter than ca.root_ttl (%s)",
		    conf_dur_fmt(c->ca.leaf_ttl * MS_S, a, sizeof(a)),
		    conf_dur_fmt(c->ca.root_ttl * MS_S, b, sizeof(b)));
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


/* ---- the conf ----------------------------------------------------------- */

void
conf_defaults(struct conf *c, int dev)
{
	char host[256];
	size_t j = 0;

	memset(c, 0, sizeof(*c));
	conf_defaults_apply(conf_top_keys, c);
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
	struct conf_svec sv = { 0 };
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
	if (conf_cfg_read(&cfg, path, err, errlen) != 0 ||
	    group_apply(conf_top_keys, &tmp, config_root_setting(&cfg), "", path,
	    err, errlen) != 0 ||
	    cross_check(&tmp, &cfg, err, errlen) != 0 ||
	    conf_services_load(&tmp, &cfg, &sv, tmp.notices, sizeof(tmp.notices),
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
	conf_svec_free(&sv);
	config_destroy(&cfg);
	return rc;
}

int
conf_reload_services(struct conf *c, char *err, size_t errlen)
{
	struct conf_svec sv = { 0 };
	char notes[CONF_NOTICES_MAX];

	if (conf_services_load(c, NULL, &sv, notes, sizeof(notes), err,
	    errlen) != 0) {
		conf_svec_free(&sv);
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
	diff_tab(conf_top_keys, (const char *)a, (const char *)b, "", skip, out,
	    outlen, &n);
	return n;
}

int
conf_set(struct conf *c, const char *key, const char *value,
    const char *origin, char *err, size_t errlen)
{
	const struct ckey *tab = conf_top_keys, *k = NULL;
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
		if ((k = conf_key_find(tab, part)) == NULL)
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
		if (conf_list_apply(k, base, items, n, why, sizeof(why)) != 0)
			goto bad;
	} else {
		struct cval v = { .kind = V_TEXT, .s = value };

		if (conf_key_apply(k, base, &v, why, sizeof(why)) != 0)
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
