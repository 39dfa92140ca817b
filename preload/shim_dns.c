/* shim_dns: <service>.service.<dns_domain> names.
 *
 * getaddrinfo, gethostbyname(2)(_r) answer such a name with an address
 * from the reserved range 127.77.0.0/16 (one per name, in order of first
 * use, per process); connect() maps the address back to the service.
 * getaddrinfo builds its answer by asking libc's own getaddrinfo for the
 * numeric address, so the list is libc's and libc's freeaddrinfo frees
 * it; ai_canonname (AI_CANONNAME) is the name asked, malloc'ed as libc
 * does. Everything else goes to libc untouched. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXPORT __attribute__((visibility("default")))

#define DNS_NET     0x7f4d0000u        /* 127.77.0.0/16 */
#define DNS_MAX     4096               /* names per process */

static char dns_names[DNS_MAX][SHIM_NAME_MAX];  /* [0] unused */
static unsigned dns_n = 1;                      /* atomic: published */
static pthread_mutex_t dns_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
dest_v4(const struct shim_dest *d)
{
	uint32_t v;

	memcpy(&v, &d->addr.s6_addr[12], 4);
	return ntohl(v);
}

int
dns_in_range(const struct shim_dest *d)
{
	return IN6_IS_ADDR_V4MAPPED(&d->addr) &&
	    (dest_v4(d) & 0xffff0000u) == DNS_NET;
}

int
dns_lookup_addr(const struct shim_dest *d, char *svc, size_t len)
{
	unsigned idx = dest_v4(d) & 0xffffu;

	if (idx == 0 || idx >= __atomic_load_n(&dns_n, __ATOMIC_ACQUIRE))
		return 0;
	snprintf(svc, len, "%s", dns_names[idx]);
	return 1;
}

void
dns_atfork_child(void)
{
	pthread_mutex_init(&dns_mu, NULL);
}

/* The index for svc, adding it if new; 0 if the table is full. */
static unsigned
dns_index(const char *svc)
{
	unsigned i, n;

	pthread_mutex_lock(&dns_mu);
	n = __atomic_load_n(&dns_n, __ATOMIC_ACQUIRE);
	for (i = 1; i < n; i++)
		if (strcmp(dns_names[i], svc) == 0)
			goto out;
	if (n >= DNS_MAX) {
		i = 0;
		goto out;
	}
	snprintf(dns_names[n], SHIM_NAME_MAX, "%s", svc);
	__atomic_store_n(&dns_n, n + 1, __ATOMIC_RELEASE);
	i = n;
out:
	pthread_mutex_unlock(&dns_mu);
	return i;
}

/* If name is <svc>.service.<domain>[.], copy svc and return its address
 * index; else 0. Asks helperd for the domain on first use. */
static unsigned
mesh_name(const char *name, char *svc, size_t svclen)
{
	char dom[SHIM_DOMAIN_MAX];
	const char *p;
	size_t n, dl, sl;
	size_t i;

	shim_init();
	if (!shim.enabled || shim_busy || name == NULL)
		return 0;
	p = strcasestr(name, ".service.");
	if (p == NULL)
		return 0;
	sl = (size_t)(p - name);
	if (sl == 0 || sl >= svclen || sl >= SHIM_NAME_MAX)
		return 0;
	for (i = 0; i < sl; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	p += strlen(".service.");
	n = strlen(p);
	if (n > 0 && p[n - 1] == '.')
		n--;
	(void)ctl_ensure();     /* learns dns_domain; keeps the default if down */
	ctl_dns_domain(dom, sizeof(dom));
	dl = strlen(dom);
	if (n != dl || strncasecmp(p, dom, dl) != 0)
		return 0;
	/* DNS is case-insensitive; service names are lower case. */
	for (i = 0; i < sl; i++)
		svc[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ?
		    name[i] - 'A' + 'a' : name[i]);
	svc[sl] = '\0';
	return dns_index(svc);
}

static void
idx_addr(unsigned idx, unsigned char out[4])
{
	uint32_t v = htonl(DNS_NET | idx);

	memcpy(out, &v, 4);
}

EXPORT int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	char svc[SHIM_NAME_MAX], num[INET6_ADDRSTRLEN];
	unsigned char a[4];
	struct addrinfo h;
	unsigned idx;
	int fam, rc, saved = errno;
	char *canon;

	if (REAL(getaddrinfo) == NULL)
		return EAI_SYSTEM;
	fam = hints != NULL ? hints->ai_family : AF_UNSPEC;
	if (node == NULL || (hints != NULL &&
	    (hints->ai_flags & AI_NUMERICHOST)) ||
	    (fam != AF_UNSPEC && fam != AF_INET && fam != AF_INET6) ||
	    (idx = mesh_name(node, svc, sizeof(svc))) == 0) {
		errno = saved;
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	idx_addr(idx, a);
	if (fam == AF_INET6)
		snprintf(num, sizeof(num), "::ffff:%u.%u.%u.%u",
		    a[0], a[1], a[2], a[3]);
	else
		snprintf(num, sizeof(num), "%u.%u.%u.%u",
		    a[0], a[1], a[2], a[3]);
	if (hints != NULL)
		h = *hints;
	else {
		memset(&h, 0, sizeof(h));
		h.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG;
	}
	h.ai_flags |= AI_NUMERICHOST;
	h.ai_flags &= ~AI_ADDRCONFIG;   /* our addresses are loopback */
	h.ai_family = fam;
	errno = saved;
	rc = REAL(getaddrinfo)(num, service, &h, res);
	if (rc == 0 && (h.ai_flags & AI_CANONNAME) && *res != NULL) {
		canon = strdup(node);
		if (canon != NULL) {
			free((*res)->ai_canonname);
			(*res)->ai_canonname = canon;
		}
	}
	if (rc == 0)
		errno = saved;
	return rc;
}

/* Lay a one-address hostent out in buf. 0, or -1 if buf is too small. */
static int
fill_hostent(struct hostent *he, char *buf, size_t len, const char *name,
    int af, const unsigned char v4[4])
{
	size_t nl = strlen(name) + 1, alen = af == AF_INET6 ? 16 : 4;
	size_t need, off = 0;
	char **ptrs;

	/* pointers first (aligned), then the address, then the name */
	need = 3 * sizeof(char *) + 16 + nl + sizeof(char *);
	if (len < need)
		return -1;
	off = (size_t)(-(uintptr_t)buf) & (sizeof(char *) - 1);
	if (len < need + off)
		return -1;
	ptrs = (char **)(void *)(buf + off);
	off += 3 * sizeof(char *);
	ptrs[0] = NULL;                         /* h_aliases */
	ptrs[1] = buf + off;                    /* h_addr_list[0] */
	ptrs[2] = NULL;
	if (af == AF_INET6) {
		memset(buf + off, 0, 10);
		memset(buf + off + 10, 0xff, 2);
		memcpy(buf + off + 12, v4, 4);
	} else {
		memcpy(buf + off, v4, 4);
	}
	off += alen;
	memcpy(buf + off, name, nl);
	he->h_name = buf + off;
	he->h_aliases = &ptrs[0];
	he->h_addrtype = af;
	he->h_length = (int)alen;
	he->h_addr_list = &ptrs[1];
	return 0;
}

static struct hostent dns_he;
static char dns_he_buf[512];

static struct hostent *
static_hostent(const char *name, int af)
{
	char svc[SHIM_NAME_MAX];
	unsigned char a[4];
	unsigned idx;

	if ((af != AF_INET && af != AF_INET6) ||
	    (idx = mesh_name(name, svc, sizeof(svc))) == 0)
		return NULL;
	idx_addr(idx, a);
	if (fill_hostent(&dns_he, dns_he_buf, sizeof(dns_he_buf), name, af,
	    a) != 0)
		return NULL;
	return &dns_he;
}

EXPORT struct hostent *
gethostbyname(const char *name)
{
	struct hostent *he;
	int saved = errno;

	if ((he = static_hostent(name, AF_INET)) != NULL) {
		errno = saved;
		return he;
	}
	errno = saved;
	return REAL(gethostbyname) ? REAL(gethostbyname)(name) : NULL;
}

EXPORT struct hostent *
gethostbyname2(const char *name, int af)
{
	struct hostent *he;
	int saved = errno;

	if ((he = static_hostent(name, af)) != NULL) {
		errno = saved;
		return he;
	}
	errno = saved;
	return REAL(gethostbyname2) ? REAL(gethostbyname2)(name, af) : NULL;
}

static int
hostent_r(const char *name, int af, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop, int *handled)
{
	char svc[SHIM_NAME_MAX];
	unsigned char a[4];
	unsigned idx;

	*handled = 0;
	if ((af != AF_INET && af != AF_INET6) || ret == NULL ||
	    result == NULL || (idx = mesh_name(name, svc, sizeof(svc))) == 0)
		return 0;
	*handled = 1;
	idx_addr(idx, a);
	if (buf == NULL || fill_hostent(ret, buf, buflen, name, af, a) != 0) {
		*result = NULL;
		if (h_errnop != NULL)
			*h_errnop = NETDB_INTERNAL;
		return ERANGE;
	}
	*result = ret;
	if (h_errnop != NULL)
		*h_errnop = 0;
	return 0;
}

EXPORT int
gethostbyname_r(const char *name, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop)
{
	int handled, r, saved = errno;

	r = hostent_r(name, AF_INET, ret, buf, buflen, result, h_errnop,
	    &handled);
	errno = saved;
	if (handled)
		return r;
	if (REAL(gethostbyname_r) == NULL)
		return ENOSYS;
	return REAL(gethostbyname_r)(name, ret, buf, buflen, result,
	    h_errnop);
}

EXPORT int
gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
    size_t buflen, struct hostent **result, int *h_errnop)
{
	int handled, r, saved = errno;

	r = hostent_r(name, af, ret, buf, buflen, result, h_errnop, &handled);
	errno = saved;
	if (handled)
		return r;
	if (REAL(gethostbyname2_r) == NULL)
		return ENOSYS;
	return REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result,
	    h_errnop);
}
