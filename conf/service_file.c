/* conf service files: services from libconfig groups, one file, and
 * services_dir (libconfig and Consul JSON files, in name order). */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>


/* ---- services: libconfig ------------------------------------------------ */

static void
service_clear(struct conf_service *s)
{
	free(s->upstreams);
	memset(s, 0, sizeof(*s));
}

void
conf_svec_free(struct conf_svec *sv)
{
	conf_services_free(sv->v, sv->n);
	memset(sv, 0, sizeof(*sv));
}

/* Move *s (and its upstreams) into sv. */
static int
svec_push(struct conf_svec *sv, struct conf_service *s, char *err, size_t errlen)
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
			return conf_errf(err, errlen, conf_src_file(s, path),
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
		return conf_errf(err, errlen, conf_src_file(s, path),
		    config_setting_source_line(s), "%s: %s: must be a string",
		    what, key);
	if (util_strlcpy(dst, config_setting_get_string(s), size) >= size)
		return conf_errf(err, errlen, conf_src_file(s, path),
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
		return conf_errf(err, errlen, conf_src_file(s, path),
		    config_setting_source_line(s), "%s: %s: must be an integer",
		    what, key);
	v = config_setting_get_int64(s);
	if (v <= INT_MIN || v > INT_MAX)
		return conf_errf(err, errlen, conf_src_file(s, path),
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
	const char *f = conf_src_file(l, path);

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
			return conf_errf(err, errlen, conf_src_file(g, path),
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
	return conf_errf(err, errlen, conf_src_file(m, path),
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
	const char *f = conf_src_file(g, path);
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
			return conf_errf(err, errlen, conf_src_file(m, path),
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
			return conf_errf(err, errlen, conf_src_file(m, path),
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
	util_strlcpy(s->source, conf_src_file(g, path), sizeof(s->source));
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
		    conf_printable(s->name, tmp, sizeof(tmp)));
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
			conf_errf(err, errlen, conf_src_file(m, path),
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
			conf_errf(err, errlen, conf_src_file(m, path),
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
    struct conf_svec *out, char *err, size_t errlen)
{
	int n = config_setting_length(list);

	if (!config_setting_is_list(list) &&
	    !(config_setting_is_array(list) && n == 0))
		return conf_errf(err, errlen, conf_src_file(list, path),
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
file_into(const char *path, struct conf_svec *out, char *err, size_t errlen)
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
		if (conf_cfg_read(&cfg, path, err, errlen) == 0 &&
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
	struct conf_svec sv = { 0 };
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
	conf_svec_free(&sv);
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
dir_into(const struct conf *c, struct conf_svec *out, char *notes,
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
int
conf_services_load(const struct conf *c, config_t *cfg, struct conf_svec *out,
    char *notes, size_t noteslen, char *err, size_t errlen)
{
	const config_setting_t *l;
	config_t own;
	int have_own = 0, rc = -1;

	if (cfg == NULL && c->path[0] != '\0') {
		config_init(&own);
		have_own = 1;
		if (conf_cfg_read(&own, c->path, err, errlen) != 0)
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
