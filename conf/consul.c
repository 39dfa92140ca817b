/* consul: Consul JSON service definitions (agent config files and the
 * PUT /v1/agent/service/register body) into struct conf_service. The
 * checks themselves are conf_service_validate's (conf.c). */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson keeps no positions for values: semantic errors point at the
 * document (see conf.h). */
#define JSON_DOC_LINE 1


/* Consul decodes field names ignoring case, and takes snake_case and
 * CamelCase alike: "LocalBindPort" = "local_bind_port". */
static int
key_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '_')
			a++;
		while (*b == '_')
			b++;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
		if (*a == '\0')
			return 1;
		a++;
		b++;
	}
}

/* The member of obj spelled like key; JSON null counts as absent. */
static json_t *
jget(json_t *obj, const char *key)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return NULL;
	json_object_foreach(obj, k, v) {
		if (key_eq(k, key))
			return json_is_null(v) ? NULL : v;
	}
	return NULL;
}

struct jctx {
	const char *origin;
	char *err;
	size_t errlen;
	char what[CONF_NAME_MAX + 64];  /* "service \"web\"" etc. */
};

/* Every key of obj is one Consul defines for that object (kind); the
 * first that is not is an error naming it, and the nearest known key when
 * it looks misspelt. 0/-1. */
static int
jkeys(struct jctx *x, json_t *obj, enum consul_keys kind, const char *what)
{
	const char *k, *near;
	char pk[64];
	json_t *v;
	size_t i;

	if (!json_is_object(obj))
		return 0;
	json_object_foreach(obj, k, v) {
		if (consul_key_known(kind, k, &near))
			continue;
		for (i = 0; k[i] != '\0' && i + 4 < sizeof(pk); i++)
			pk[i] = (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' &&
			    k[i] != '\\') ? k[i] : '?';
		if (k[i] != '\0') {
			memcpy(pk + i, "...", 3);
			i += 3;
		}
		pk[i] = '\0';
		if (near != NULL)
			return conf_errf(x->err, x->errlen, x->origin,
			    JSON_DOC_LINE, "%s%sunknown key \"%s\" (did you "
			    "mean \"%s\"?)", what, what[0] ? ": " : "", pk,
			    near);
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s%sunknown key \"%s\" (not a field of a Consul service "
		    "definition; see mesh.conf(5))", what, what[0] ? ": " : "",
		    pk);
	}
	return 0;
}

static int
jstr(struct jctx *x, json_t *obj, const char *key, char *dst, size_t size)
{
	json_t *v = jget(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: %s: must be a string", x->what, key);
	if (json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: %s: too long or contains NUL (max %zu characters)",
		    x->what, key, size - 1);
	util_strlcpy(dst, json_string_value(v), size);
	return 0;
}

static int
jint(struct jctx *x, json_t *obj, const char *key, int *dst)
{
	json_t *v = jget(obj, key);
	json_int_t n;

	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: %s: must be an integer", x->what, key);
	n = json_integer_value(v);
	if (n <= INT_MIN || n > INT_MAX)
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: %s: %" JSON_INTEGER_FORMAT " is out of range 1..65535",
		    x->what, key, n);
	*dst = (int)n;
	return 0;
}

static json_t *
jobj(struct jctx *x, json_t *obj, const char *key, int *bad)
{
	json_t *v = jget(obj, key);

	if (v != NULL && !json_is_object(v)) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: %s: must be an object", x->what, key);
		*bad = 1;
		return NULL;
	}
	return v;
}

/* Append the upstreams of a JSON array to s. */
static int
upstreams_add(struct jctx *x, json_t *arr, struct conf_service *s)
{
	size_t i, base = s->n_upstreams;
	struct conf_upstream *nu;
	char saved[CONF_NAME_MAX + 16];   /* 'service "<name>"' */
	json_t *u;
	int rc = -1;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: upstreams: must be an array", x->what);
	if (json_array_size(arr) > CONF_MAX_UPSTREAMS - base)
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: too many upstreams (max %d)", x->what,
		    CONF_MAX_UPSTREAMS);
	if (json_array_size(arr) == 0)
		return 0;
	nu = reallocarray(s->upstreams, base + json_array_size(arr),
	    sizeof(*nu));
	if (nu == NULL)
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "out of memory");
	s->upstreams = nu;
	util_strlcpy(saved, x->what, sizeof(saved));
	json_array_foreach(arr, i, u) {
		struct conf_upstream *up = &s->upstreams[base + i];
		char type[32] = "";

		memset(up, 0, sizeof(*up));
		up->bind_port = CONF_UNSET;
		s->n_upstreams++;
		snprintf(x->what, sizeof(x->what), "%s: upstream %zu", saved,
		    base + i + 1);
		if (!json_is_object(u)) {
			conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
			    "%s: must be an object", x->what);
			goto cleanup;
		}
		if (jkeys(x, u, CONSUL_KEYS_UPSTREAM, x->what) != 0)
			goto cleanup;
		if (jstr(x, u, "destination_name", up->dest,
		    sizeof(up->dest)) != 0 ||
		    jstr(x, u, "local_bind_address", up->bind_addr,
		    sizeof(up->bind_addr)) != 0 ||
		    jint(x, u, "local_bind_port", &up->bind_port) != 0 ||
		    jstr(x, u, "destination_type", type, sizeof(type)) != 0)
			goto cleanup;
		if (type[0] != '\0' && strcmp(type, "service") != 0) {
			conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
			    "%s: destination_type \"%s\" is not supported "
			    "(only \"service\")", x->what,
			    strcmp(type, "prepared_query") == 0 ?
			    "prepared_query" : "?");
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	util_strlcpy(x->what, saved, sizeof(x->what));
	return rc;
}

/* A check's duration: "10s", "500ms", or a number of seconds. */
static int
jdur(struct jctx *x, json_t *obj, const char *key, long *ms)
{
	json_t *v = jget(obj, key);

	if (v == NULL)
		return 0;
	if ((json_is_string(v) && conf_check_dur(json_string_value(v), 0, 0,
	    ms) == 0) || (json_is_integer(v) && conf_check_dur(NULL,
	    json_integer_value(v), 1, ms) == 0))
		return 0;
	return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
	    "%s: %s: bad duration (use e.g. \"10s\", \"500ms\", \"1m\")",
	    x->what, key);
}

/* One Consul check object into s->checks. */
static int
check_add(struct jctx *x, json_t *o, struct conf_service *s)
{
	static const char *const unsupported[] = { "args", "script_args",
		"script", "grpc", "docker_container_id", "h2ping", "udp",
		"alias_service", "os_service", NULL };
	char saved[CONF_NAME_MAX + 16];   /* 'service "<name>"' */
	struct conf_check *k;
	json_t *v;
	int kinds = 0, rc = -1;

	util_strlcpy(saved, x->what, sizeof(saved));
	snprintf(x->what, sizeof(x->what), "%s: check %zu", saved,
	    s->n_checks + 1);
	if (s->n_checks >= CONF_MAX_CHECKS) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: too many checks (max %d)", saved, CONF_MAX_CHECKS);
		goto out;
	}
	if (!json_is_object(o)) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: must be an object", x->what);
		goto out;
	}
	if (jkeys(x, o, CONSUL_KEYS_CHECK, x->what) != 0)
		goto out;
	for (size_t i = 0; unsupported[i] != NULL; i++) {
		if (jget(o, unsupported[i]) != NULL) {
			conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
			    "%s: %s checks are not supported (only tcp, http "
			    "and ttl)", x->what, unsupported[i]);
			goto out;
		}
	}
	k = &s->checks[s->n_checks];
	memset(k, 0, sizeof(*k));
	if (jget(o, "tcp") != NULL) {
		kinds++;
		k->type = CONF_CHECK_TCP;
		if (jstr(x, o, "tcp", k->target, sizeof(k->target)) != 0)
			goto out;
	}
	if (jget(o, "http") != NULL) {
		kinds++;
		k->type = CONF_CHECK_HTTP;
		if (jstr(x, o, "http", k->target, sizeof(k->target)) != 0)
			goto out;
	}
	if (jget(o, "ttl") != NULL) {
		kinds++;
		k->type = CONF_CHECK_TTL;
		if (jdur(x, o, "ttl", &k->ttl_ms) != 0)
			goto out;
	}
	if (kinds != 1) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: needs exactly one of tcp, http or ttl", x->what);
		goto out;
	}
	if (jdur(x, o, "interval", &k->interval_ms) != 0 ||
	    jdur(x, o, "timeout", &k->timeout_ms) != 0 ||
	    jint(x, o, "success_before_passing",
	    &k->success_before_passing) != 0 ||
	    jint(x, o, "failures_before_critical",
	    &k->failures_before_critical) != 0 ||
	    jstr(x, o, "tls_server_name", k->tls_server_name,
	    sizeof(k->tls_server_name)) != 0)
		goto out;
	if ((v = jget(o, "tls_skip_verify")) != NULL) {
		if (!json_is_boolean(v)) {
			conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
			    "%s: tls_skip_verify: must be true or false",
			    x->what);
			goto out;
		}
		k->tls_skip_verify = json_is_true(v);
	}
	s->n_checks++;
	rc = 0;
out:
	util_strlcpy(x->what, saved, sizeof(x->what));
	return rc;
}

static int
checks_add(struct jctx *x, json_t *o, struct conf_service *s)
{
	json_t *v, *e;
	size_t i;

	if ((v = jget(o, "check")) != NULL && check_add(x, v, s) != 0)
		return -1;
	if ((v = jget(o, "checks")) == NULL)
		return 0;
	if (!json_is_array(v))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: checks: must be an array", x->what);
	json_array_foreach(v, i, e)
		if (check_add(x, e, s) != 0)
			return -1;
	return 0;
}

/* One service object into *s (cleared on error). */
static int
service_from_json(struct jctx *x, json_t *o, struct conf_service *s)
{
	json_t *connect, *proxy, *cfg, *sidecar, *sproxy, *v;
	int bad = 0;

	memset(s, 0, sizeof(*s));
	util_strlcpy(s->source, x->origin, sizeof(s->source));
	s->source_line = JSON_DOC_LINE;
	snprintf(x->what, sizeof(x->what), "service");
	if (!json_is_object(o)) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "service: must be an object");
		goto err;
	}
	if (jstr(x, o, "name", s->name, sizeof(s->name)) != 0)
		goto err;
	if (s->name[0] != '\0') {
		char pn[CONF_NAME_MAX];
		size_t i;

		for (i = 0; s->name[i] != '\0'; i++)
			pn[i] = (s->name[i] >= 0x20 && s->name[i] < 0x7f &&
			    s->name[i] != '"') ? s->name[i] : '?';
		pn[i] = '\0';
		snprintf(x->what, sizeof(x->what), "service \"%s\"", pn);
	}
	if (jkeys(x, o, CONSUL_KEYS_SERVICE, x->what) != 0)
		goto err;
	if (jstr(x, o, "id", s->id, sizeof(s->id)) != 0 ||
	    jstr(x, o, "address", s->address, sizeof(s->address)) != 0 ||
	    jstr(x, o, "user", s->user, sizeof(s->user)) != 0 ||
	    jstr(x, o, "unit", s->unit, sizeof(s->unit)) != 0 ||
	    jint(x, o, "port", &s->port) != 0)
		goto err;
	if ((v = jget(o, "inbound")) != NULL &&
	    (!json_is_string(v) ||
	    conf_parse_inbound(json_string_value(v), &s->inbound) != 0)) {
		conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: inbound: must be \"permissive\" or \"strict\"",
		    x->what);
		goto err;
	}
	connect = jobj(x, o, "connect", &bad);
	proxy = jobj(x, connect, "proxy", &bad);
	cfg = jobj(x, proxy, "config", &bad);
	sidecar = jobj(x, connect, "sidecar_service", &bad);
	sproxy = jobj(x, sidecar, "proxy", &bad);
	if (bad)
		goto err;
	if (connect != NULL) {
		char w[sizeof(x->what) + 16];

		snprintf(w, sizeof(w), "%s: connect", x->what);
		if (jkeys(x, connect, CONSUL_KEYS_CONNECT, w) != 0)
			goto err;
	}
	s->connect = connect != NULL;
	if (upstreams_add(x, jget(cfg, "upstreams"), s) != 0 ||     /* 1.2 */
	    upstreams_add(x, jget(proxy, "upstreams"), s) != 0 ||   /* 1.3 */
	    upstreams_add(x, jget(sproxy, "upstreams"), s) != 0 ||
	    upstreams_add(x, jget(o, "upstreams"), s) != 0 ||       /* ours */
	    checks_add(x, o, s) != 0)
		goto err;
	if (conf_service_validate(s, x->err, x->errlen) != 0)
		goto err;
	return 0;
err:
	free(s->upstreams);
	memset(s, 0, sizeof(*s));
	return -1;
}

/* Append the service objects of v (one object or an array) to list. */
static int
collect(struct jctx *x, json_t *v, const char *key, json_t **list,
    size_t *n)
{
	size_t i;
	json_t *e;

	if (v == NULL)
		return 0;
	if (json_is_object(v)) {
		if (*n >= CONF_MAX_SERVICES)
			goto too_many;
		list[(*n)++] = v;
		return 0;
	}
	if (!json_is_array(v))
		return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
		    "%s: must be an object or an array of objects", key);
	json_array_foreach(v, i, e) {
		if (*n >= CONF_MAX_SERVICES)
			goto too_many;
		list[(*n)++] = e;
	}
	return 0;
too_many:
	return conf_errf(x->err, x->errlen, x->origin, JSON_DOC_LINE,
	    "too many services (max %d)", CONF_MAX_SERVICES);
}

int
conf_parse_service_json(const char *json, size_t len, const char *origin,
    struct conf_service **svcs, size_t *n, char *err, size_t errlen)
{
	struct jctx x = { .origin = origin, .err = err, .errlen = errlen };
	struct conf_service *out = NULL, *nv;
	json_t *root, **list = NULL;
	json_error_t je;
	size_t nl = 0, no = 0;
	int rc = -1;

	if ((root = json_loadb(json, len, 0, &je)) == NULL)
		return conf_errf(err, errlen, origin, je.line > 0 ? je.line : 0,
		    "invalid JSON: %s", je.text);
	if (!json_is_object(root)) {
		conf_errf(err, errlen, origin, JSON_DOC_LINE, "expected a JSON "
		    "object ({\"service\": {...}} or {\"services\": [...]})");
		goto cleanup;
	}
	if ((list = calloc(CONF_MAX_SERVICES, sizeof(*list))) == NULL) {
		conf_errf(err, errlen, origin, 0, "out of memory");
		goto cleanup;
	}
	if ((jget(root, "service") != NULL || jget(root, "services") != NULL) &&
	    jkeys(&x, root, CONSUL_KEYS_ROOT, "") != 0)
		goto cleanup;
	if (collect(&x, jget(root, "service"), "service", list, &nl) != 0 ||
	    collect(&x, jget(root, "services"), "services", list, &nl) != 0)
		goto cleanup;
	if (nl == 0 && (jget(root, "service") != NULL ||
	    jget(root, "services") != NULL)) {
		/* {"services": []}: no service, which is what helperd writes
		 * after the last API deregistration. */
		rc = 0;
		goto cleanup;
	}
	if (nl == 0) {
		if (jget(root, "name") == NULL) {
			conf_errf(err, errlen, origin, JSON_DOC_LINE, "no \"service\" "
			    "or \"services\" definition");
			goto cleanup;
		}
		list[nl++] = root;   /* the bare form of the HTTP API */
	}
	if (*n + nl > CONF_MAX_SERVICES) {
		conf_errf(err, errlen, origin, JSON_DOC_LINE, "too many services "
		    "(max %d)", CONF_MAX_SERVICES);
		goto cleanup;
	}
	if ((out = calloc(nl, sizeof(*out))) == NULL) {
		conf_errf(err, errlen, origin, 0, "out of memory");
		goto cleanup;
	}
	for (no = 0; no < nl; no++)
		if (service_from_json(&x, list[no], &out[no]) != 0)
			goto cleanup;
	if ((nv = reallocarray(*svcs, *n + nl, sizeof(*nv))) == NULL) {
		conf_errf(err, errlen, origin, 0, "out of memory");
		goto cleanup;
	}
	memcpy(nv + *n, out, nl * sizeof(*nv));
	*svcs = nv;
	*n += nl;
	free(out);
	out = NULL;
	no = 0;
	rc = 0;
cleanup:
	conf_services_free(out, no);
	free(list);
	json_decref(root);
	return rc;
}
