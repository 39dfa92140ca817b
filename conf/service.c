/* conf services: one service definition checked (its checks, upstreams,
 * user), and the node-wide checks across every service. */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


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
		    conf_printable(name, pn, sizeof(pn)), strerror(rc));
	else
		snprintf(why, whylen, "user \"%s\" does not exist",
		    conf_printable(name, pn, sizeof(pn)));
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
		if (!conf_valid_ip(host))
			return -1;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hl = (size_t)((colon != NULL ? colon : end) - p);
		if (hl == 0 || hl >= hostlen)
			return -1;
		memcpy(host, p, hl);
		host[hl] = '\0';
		if (!conf_valid_ip(host) && !conf_valid_hostname(host))
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
		    (!conf_valid_ip(host) && !conf_valid_hostname(host))) {
			snprintf(why, whylen, "check %zu: tcp: \"%s\" is not "
			    "host:port", i + 1, conf_printable(k->target, pv,
			    sizeof(pv)));
			return -1;
		}
		break;
	case CONF_CHECK_HTTP:
		if (conf_check_http_parse(k->target, host, sizeof(host), &port,
		    path, sizeof(path)) != 0) {
			snprintf(why, whylen, "check %zu: http: \"%s\" is not an "
			    "http[s]://host[:port]/path URL", i + 1,
			    conf_printable(k->target, pv, sizeof(pv)));
			return -1;
		}
		if (k->tls_server_name[0] != '\0' &&
		    !conf_valid_hostname(k->tls_server_name)) {
			snprintf(why, whylen, "check %zu: tls_server_name: "
			    "\"%s\" is not a host name", i + 1,
			    conf_printable(k->tls_server_name, pv, sizeof(pv)));
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
		    "1s..1h", i + 1, conf_dur_fmt(k->interval_ms, a, sizeof(a)));
		return -1;
	}
	if (k->timeout_ms < 0 || (k->interval_ms != 0 &&
	    k->timeout_ms >= k->interval_ms)) {
		snprintf(why, whylen, "check %zu: timeout: %s must be shorter "
		    "than the interval (%s)", i + 1,
		    conf_dur_fmt(k->timeout_ms, a, sizeof(a)),
		    conf_dur_fmt(k->interval_ms, b, sizeof(b)));
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
	if (conf_dur_parse(text, 1, &v) != 0 || v > LONG_MAX)
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
		    "or digit)", conf_printable(s->name, pn, sizeof(pn)));
	if (s->id[0] == '\0')
		util_strlcpy(s->id, s->name, sizeof(s->id));
	else if (!conf_valid_id(s->id))
		return conf_errf(err, errlen, f, l, "service \"%s\": id \"%s\" is "
		    "not valid", s->name, conf_printable(s->id, pv, sizeof(pv)));
	if (s->address[0] == '\0')
		util_strlcpy(s->address, "127.0.0.1", sizeof(s->address));
	else if (!conf_valid_ip(s->address) && !conf_valid_hostname(s->address))
		return conf_errf(err, errlen, f, l, "service \"%s\": address: \"%s\" "
		    "is not an IP address or host name", s->name,
		    conf_printable(s->address, pv, sizeof(pv)));
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
		    conf_printable(s->unit, pv, sizeof(pv)));
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
			    conf_printable(u->dest, pn, sizeof(pn)));
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
				    conf_printable(u->bind_addr, pv, sizeof(pv)));
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

/* ---- users ---------------------------------------------------------------- */


int
conf_user_uid(const char *name, uid_t *uid)
{
	char why[128];

	return resolve_user(name, uid, why, sizeof(why));
}
