/* shim_route: the route table and what helperd's HELLO reply teaches.
 *
 * Routes are the upstreams of MESH_UPSTREAMS (parsed once at init,
 * read-only afterwards) and those of helperd's HELLO reply (a seqlock:
 * connect() reads them without a lock; the writer holds the control
 * mutex). Also here: a connect()'s destination, normalised (shim_dest);
 * the bounded parsers for addresses, ports, names and the HELLO reply,
 * and the policy it carries (outbound port, dns domain, inbound strict,
 * service port). */
#include "shim.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

struct route {
	struct in6_addr addr;   /* normalised, see shim_dest */
	uint16_t port;
	int any;                /* 0.0.0.0 / :: : any loopback address */
	char svc[SHIM_NAME_MAX];
};

/* MESH_UPSTREAMS: written once at init, read-only afterwards. */
static struct route env_routes[SHIM_MAX_ROUTES];
static int n_env;

/* From helperd's HELLO: seqlock (writers hold ctl_mu). */
static struct {
	unsigned seq;
	int n;
	struct route r[SHIM_MAX_ROUTES];
	char dns[SHIM_DOMAIN_MAX];
	char cc[SHIM_CC_MAX];   /* loopback_congestion, "" = leave */
} hd = { .dns = "mesh" };

/* Learned from HELLO (atomic; written under the control mutex). */
static struct {
	int outport;
	int have_list;          /* a HELLO answer was seen */
	int strict;             /* inbound policy */
	int svc_port;           /* service port, 0 unknown */
	int direct;             /* helperd offers DIRECT */
} pol;
static struct route scratch[SHIM_MAX_ROUTES];   /* under the ctl mutex */

/* ---- destinations ---- */

int
shim_dest_from_sa(const struct sockaddr *sa, socklen_t len,
    struct shim_dest *d)
{
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return -1;
	memset(d, 0, sizeof(*d));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		d->addr.s6_addr[10] = 0xff;
		d->addr.s6_addr[11] = 0xff;
		memcpy(&d->addr.s6_addr[12], &in->sin_addr, 4);
		d->port = ntohs(in->sin_port);
		d->family = AF_INET;
		return 0;
	}
	/* The kernel accepts the 24-byte RFC 2133 form (no scope id). */
	if (sa->sa_family == AF_INET6 && len >= 24) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		memcpy(&d->addr, &in6->sin6_addr, sizeof(d->addr));
		d->port = ntohs(in6->sin6_port);
		d->family = AF_INET6;
		d->mapped = IN6_IS_ADDR_V4MAPPED(&d->addr);
		return 0;
	}
	return -1;
}

int
shim_dest_is_loopback(const struct shim_dest *d)
{
	if (IN6_IS_ADDR_V4MAPPED(&d->addr))
		return d->addr.s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(&d->addr);
}

/* ---- routes ---- */

static int
is_loop1(const struct in6_addr *a)
{
	static const unsigned char v4lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff, 127, 0, 0, 1 };

	return IN6_IS_ADDR_LOOPBACK(a) || memcmp(a, v4lo, 16) == 0;
}

static int
route_match(const struct route *r, const struct shim_dest *d)
{
	if (r->port != d->port)
		return 0;
	if (memcmp(&r->addr, &d->addr, 16) == 0)
		return 1;
	/* 127.0.0.1 and ::1 are the same loopback for an upstream: "localhost"
	 * may resolve to either. */
	if (is_loop1(&r->addr) && is_loop1(&d->addr))
		return 1;
	return r->any && shim_dest_is_loopback(d);
}

/* Parse an address literal (v4, v6, [v6]) into normalised form. */
int
route_parse_addr(const char *s, size_t n, struct in6_addr *a, int *any)
{
	char tmp[INET6_ADDRSTRLEN + 2];
	struct in_addr v4;

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, tmp, &v4) == 1) {
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &v4, 4);
		*any = v4.s_addr == htonl(INADDR_ANY);
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, a) == 1) {
		*any = IN6_IS_ADDR_UNSPECIFIED(a);
		return 0;
	}
	if (strcmp(tmp, "localhost") == 0) {
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		a->s6_addr[12] = 127;
		a->s6_addr[15] = 1;
		*any = 0;
		return 0;
	}
	return -1;
}

/* Decimal 1..65535, the whole of s[0..n). */
int
route_parse_port(const char *s, size_t n)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : -1;
}

static int
valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= SHIM_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* "name:port", "name:addr:port", "name:[v6]:port". */
static int
parse_env_upstream(const char *s, size_t n, struct route *r)
{
	const char *c1 = memchr(s, ':', n), *c2;
	int port;

	if (c1 == NULL || !valid_name(s, (size_t)(c1 - s)))
		return -1;
	memset(r, 0, sizeof(*r));
	memcpy(r->svc, s, (size_t)(c1 - s));
	c2 = s + n;
	while (c2 > c1 + 1 && c2[-1] != ':')
		c2--;
	if (c2 == c1 + 1) {
		/* name:port */
		r->addr.s6_addr[10] = 0xff;
		r->addr.s6_addr[11] = 0xff;
		r->addr.s6_addr[12] = 127;
		r->addr.s6_addr[15] = 1;
	} else if (route_parse_addr(c1 + 1, (size_t)(c2 - 1 - (c1 + 1)), &r->addr,
	    &r->any) != 0) {
		return -1;
	}
	port = route_parse_port(c2, (size_t)(s + n - c2));
	if (port < 0)
		return -1;
	r->port = (uint16_t)port;
	return 0;
}

void
ctl_env_upstreams(const char *spec)
{
	const char *p = spec, *e;

	while (p != NULL && *p != '\0') {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		while (p < e && *p == ' ')
			p++;
		if (e > p) {
			if (n_env >= SHIM_MAX_ROUTES ||
			    parse_env_upstream(p, (size_t)(e - p),
			    &env_routes[n_env]) != 0)
				shim_warn_once("MESH_UPSTREAMS: ignoring "
				    "\"%.*s\" (expected NAME:PORT, "
				    "NAME:ADDR:PORT or NAME:[ADDR6]:PORT, at "
				    "most %d)", (int)(e - p > 200 ? 200 :
				    e - p), p, SHIM_MAX_ROUTES);
			else
				n_env++;
		}
		p = *e == ',' ? e + 1 : e;
	}
}

int
ctl_route(const struct shim_dest *d, char *svc, size_t svclen)
{
	unsigned a, b;
	int i, n, found, tries;
	char name[SHIM_NAME_MAX];

	if (dns_in_range(d))
		return dns_lookup_addr(d, svc, svclen);
	/* MESH_UPSTREAMS wins over the service definition, as a -upstream
	 * flag does. */
	for (i = 0; i < n_env; i++) {
		if (route_match(&env_routes[i], d)) {
			snprintf(svc, svclen, "%s", env_routes[i].svc);
			return 1;
		}
	}
	for (tries = 0; tries < 1000; tries++) {
		a = __atomic_load_n(&hd.seq, __ATOMIC_ACQUIRE);
		if (a & 1u)
			continue;
		found = 0;
		n = hd.n;
		if (n > SHIM_MAX_ROUTES)
			n = SHIM_MAX_ROUTES;
		for (i = 0; i < n; i++) {
			if (route_match(&hd.r[i], d)) {
				memcpy(name, hd.r[i].svc, sizeof(name));
				name[sizeof(name) - 1] = '\0';
				found = 1;
				break;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		b = __atomic_load_n(&hd.seq, __ATOMIC_RELAXED);
		if (a != b)
			continue;
		if (found)
			snprintf(svc, svclen, "%s", name);
		return found;
	}
	return 0;
}

/* A consistent copy of n bytes of hd at src (the seqlock): 0, or -1 if
 * the writer kept it busy. */
static int
hd_copy(void *dst, const void *src, size_t n)
{
	for (int tries = 0; tries < 1000; tries++) {
		unsigned a = __atomic_load_n(&hd.seq, __ATOMIC_ACQUIRE), b;

		if (a & 1u)
			continue;
		memcpy(dst, src, n);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		b = __atomic_load_n(&hd.seq, __ATOMIC_RELAXED);
		if (a == b)
			return 0;
	}
	return -1;
}

void
ctl_dns_domain(char *buf, size_t len)
{
	char tmp[SHIM_DOMAIN_MAX];

	if (hd_copy(tmp, hd.dns, sizeof(tmp)) != 0) {
		snprintf(buf, len, "mesh");
		return;
	}
	tmp[sizeof(tmp) - 1] = '\0';
	snprintf(buf, len, "%s", tmp);
}

int
ctl_loopback_cc(char *buf, size_t len)
{
	char tmp[SHIM_CC_MAX];

	if (hd_copy(tmp, hd.cc, sizeof(tmp)) != 0)
		return -1;
	tmp[sizeof(tmp) - 1] = '\0';
	if (tmp[0] == '\0' || strlen(tmp) >= len)
		return -1;
	memcpy(buf, tmp, strlen(tmp) + 1);
	return 0;
}

int
ctl_have_list(void)
{
	return __atomic_load_n(&pol.have_list, __ATOMIC_ACQUIRE);
}

int
ctl_inbound(int *strict, uint16_t *svc_port)
{
	*strict = __atomic_load_n(&pol.strict, __ATOMIC_ACQUIRE);
	*svc_port = (uint16_t)__atomic_load_n(&pol.svc_port, __ATOMIC_ACQUIRE);
	return 0;
}

int
ctl_direct_on(void)
{
	return __atomic_load_n(&pol.direct, __ATOMIC_ACQUIRE);
}

uint16_t
ctl_outport(void)
{
	return (uint16_t)__atomic_load_n(&pol.outport, __ATOMIC_ACQUIRE);
}

/* ---- the HELLO reply ---- */

/* What one HELLO reply says; upstreams go into scratch[0..n). */
struct hello {
	int port, n, strict, svc_port, direct;
	char dns[SHIM_DOMAIN_MAX];
	char cc[SHIM_CC_MAX];
};

/* dns=<domain>: letters, digits, '-' and '.', trailing dots dropped. */
static int
hello_dns(struct hello *h, const char *val, size_t vlen)
{
	while (vlen > 0 && val[vlen - 1] == '.')
		vlen--;
	if (vlen == 0 || vlen >= sizeof(h->dns))
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		char c = val[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return -1;
	}
	memcpy(h->dns, val, vlen);
	h->dns[vlen] = '\0';
	return 0;
}

/* up=<dest>,<addr>,<port>: -1 if it is not three fields; a bad field or
 * one upstream too many is logged and skipped. */
static int
hello_up(struct hello *h, const char *val)
{
	const char *c1 = strchr(val, ','), *c2;
	struct route *r;
	int p, any;

	if (c1 == NULL || (c2 = strrchr(val, ',')) == c1)
		return -1;
	if (h->n >= SHIM_MAX_ROUTES) {
		shim_log("HELLO: more than %d upstreams, ignoring the rest",
		    SHIM_MAX_ROUTES);
		return 0;
	}
	r = &scratch[h->n];
	memset(r, 0, sizeof(*r));
	if (!valid_name(val, (size_t)(c1 - val)) ||
	    route_parse_addr(c1 + 1, (size_t)(c2 - c1 - 1), &r->addr,
	    &any) != 0 ||
	    (p = route_parse_port(c2 + 1, strlen(c2 + 1))) < 0) {
		shim_log("HELLO: ignoring bad upstream \"%.200s\"", val);
		return 0;
	}
	memcpy(r->svc, val, (size_t)(c1 - val));
	r->any = any;
	r->port = (uint16_t)p;
	h->n++;
	return 0;
}

/* One key=value of the reply into h; unknown keys are ignored. */
static int
hello_key(struct hello *h, const char *key, size_t klen, const char *val)
{
	size_t vlen = strlen(val);

	if (klen == 4 && memcmp(key, "port", 4) == 0)
		return (h->port = route_parse_port(val, vlen)) < 0 ? -1 : 0;
	if (klen == 3 && memcmp(key, "dns", 3) == 0)
		return hello_dns(h, val, vlen);
	if (klen == 2 && memcmp(key, "up", 2) == 0)
		return hello_up(h, val);
	if (klen == 2 && memcmp(key, "cc", 2) == 0) {
		if (vlen > 0 && vlen < sizeof(h->cc) &&
		    strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789_") == vlen)
			memcpy(h->cc, val, vlen + 1);
		else
			shim_log("HELLO: ignoring bad cc \"%.40s\"", val);
		return 0;
	}
	if (klen == 7 && memcmp(key, "inbound", 7) == 0)
		h->strict = strcmp(val, "strict") == 0;
	else if (klen == 6 && memcmp(key, "direct", 6) == 0)
		h->direct = strcmp(val, "1") == 0;
	else if (klen == 8 && memcmp(key, "svc_port", 8) == 0 &&
	    (h->svc_port = route_parse_port(val, vlen)) < 0)
		h->svc_port = 0;
	return 0;
}

/* Publish h: the routes under the hd seqlock, then the policy words. */
static void
hello_publish(const struct hello *h)
{
	unsigned v = __atomic_load_n(&hd.seq, __ATOMIC_RELAXED) | 1u;

	__atomic_store_n(&hd.seq, v, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(hd.r, scratch, sizeof(struct route) * (size_t)h->n);
	hd.n = h->n;
	if (h->dns[0] != '\0')
		memcpy(hd.dns, h->dns, sizeof(h->dns));
	memcpy(hd.cc, h->cc, sizeof(h->cc));
	__atomic_store_n(&hd.seq, v + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&pol.outport, h->port, __ATOMIC_RELEASE);
	if (h->strict >= 0)
		__atomic_store_n(&pol.strict, h->strict, __ATOMIC_RELEASE);
	__atomic_store_n(&pol.svc_port, h->svc_port, __ATOMIC_RELEASE);
	__atomic_store_n(&pol.direct, h->direct, __ATOMIC_RELEASE);
	__atomic_store_n(&pol.have_list, 1, __ATOMIC_RELEASE);
}

/* OK port=<p> dns=<d> [direct=1] [up=<dest>,<addr>,<port>]...
 * [inbound=strict|permissive] [svc_port=<p>] [cc=<name>]; unknown keys
 * are ignored.
 * Modifies line. Caller holds ctl_mu. 0, or -1 if malformed (nothing
 * changed). */
int
ctl_parse_hello(char *line)
{
	struct hello h = { .port = -1, .strict = -1 };
	char *tok, *save = NULL;

	tok = strtok_r(line, " ", &save);
	if (tok == NULL || strcmp(tok, "OK") != 0)
		return -1;
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		char *eq = strchr(tok, '=');

		if (eq != NULL &&
		    hello_key(&h, tok, (size_t)(eq - tok), eq + 1) != 0)
			return -1;
	}
	if (h.port < 0)
		return -1;
	hello_publish(&h);
	return 0;
}
