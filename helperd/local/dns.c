/* dns: answers for the mesh services' names (see dns.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/local/dns.h"
#include "helperd/evloop/loop.h"

#define DNS_QUERY_MAX 4096      /* bigger datagrams are not queries */
#define DNS_NAME_MAX  256       /* presentation form, incl NUL */
#define DNS_BATCH     64        /* datagrams read per event */

struct dns_server {
	struct loop *loop;
	struct loop_watch w;
	int fd;
	const char *domain;
	dns_lookup_fn lookup;
	void *arg;
	atomic_uint_fast64_t answered, dropped;
};

/* What a name is to us. */
enum name_kind {
	N_OUTSIDE,      /* not ours: REFUSED */
	N_APEX,         /* a zone or its service./connect. node: NODATA */
	N_SERVICE,      /* <svc>.service.<zone>: svc filled */
	N_OTHER,        /* anything else in a zone: NXDOMAIN */
};

/* Does name end with "." zone (or equal it)? Returns the length of what
 * comes before ".zone" (0 when name == zone), or -1. */
static int
under(const char *name, const char *zone)
{
	size_t n = strlen(name), z = strlen(zone);

	if (n == z && strcmp(name, zone) == 0)
		return 0;
	if (n > z + 1 && name[n - z - 1] == '.' &&
	    strcmp(name + n - z, zone) == 0)
		return (int)(n - z - 1);
	return -1;
}

/* name: lower case, no trailing dot. */
static enum name_kind
classify(const char *name, const char *domain, char *svc, size_t svclen)
{
	const char *zones[2] = { domain, "consul" };
	static const char *const nodes[2] = { "service", "connect" };

	for (int i = 0; i < 2; i++) {
		int pre = under(name, zones[i]);

		if (pre < 0)
			continue;
		if (pre == 0)
			return N_APEX;
		for (int k = 0; k < 2; k++) {
			size_t nl = strlen(nodes[k]);

			if ((size_t)pre == nl &&
			    strncmp(name, nodes[k], nl) == 0)
				return N_APEX;
			if ((size_t)pre > nl + 1 &&
			    name[pre - nl - 1] == '.' &&
			    strncmp(name + pre - nl, nodes[k], nl) == 0) {
				size_t sl = (size_t)pre - nl - 1;

				if (sl >= svclen || memchr(name, '.', sl) != NULL)
					return N_OTHER;
				memcpy(svc, name, sl);
				svc[sl] = '\0';
				return N_SERVICE;
			}
		}
		return N_OTHER;
	}
	return N_OUTSIDE;
}

static int
push(ldns_pkt *p, ldns_pkt_section sec, ldns_rr *rr)
{
	if (rr == NULL)
		return -1;
	if (!ldns_pkt_push_rr(p, sec, rr)) {
		ldns_rr_free(rr);
		return -1;
	}
	return 0;
}

/* An RR owner TYPE IN ttl 0 with the given rdata fields (taken over). */
static ldns_rr *
rr_make(const ldns_rdf *owner, ldns_rr_type type, ldns_rdf **rd, size_t n)
{
	ldns_rr *rr = ldns_rr_new();
	int bad = rr == NULL;

	for (size_t i = 0; i < n; i++)
		if (rd[i] == NULL)
			bad = 1;
	if (bad || (owner = ldns_rdf_clone(owner)) == NULL) {
		ldns_rr_free(rr);
		for (size_t i = 0; i < n; i++)
			ldns_rdf_deep_free(rd[i]);
		return NULL;
	}
	ldns_rr_set_owner(rr, (ldns_rdf *)owner);
	ldns_rr_set_type(rr, type);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, 0);
	for (size_t i = 0; i < n; i++)
		ldns_rr_push_rdf(rr, rd[i]);
	return rr;
}

static ldns_rr *
rr_a(const ldns_rdf *owner, uint32_t addr)
{
	uint32_t be = htonl(addr);
	ldns_rdf *rd[1] = { ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, &be) };

	return rr_make(owner, LDNS_RR_TYPE_A, rd, 1);
}

/* Answer records for svc (found: addr, port) asked as qtype. */
static int
answer_service(ldns_pkt *p, const ldns_rdf *qname, ldns_rr_type qtype,
    const char *svc, const char *domain, uint32_t addr, int port)
{
	char target[DNS_NAME_MAX];
	ldns_rdf *tname;

	if (qtype == LDNS_RR_TYPE_A || qtype == LDNS_RR_TYPE_ANY)
		return push(p, LDNS_SECTION_ANSWER, rr_a(qname, addr));
	if (qtype != LDNS_RR_TYPE_SRV || port <= 0)
		return 0;               /* NODATA (AAAA included: v4 only) */
	if (snprintf(target, sizeof(target), "%s.service.%s.", svc,
	    domain) >= (int)sizeof(target) ||
	    (tname = ldns_dname_new_frm_str(target)) == NULL)
		return -1;
	ldns_rdf *rd[4] = {
		ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 1),
		ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 1),
		ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, (uint16_t)port),
		ldns_rdf_clone(tname),
	};
	int rc = push(p, LDNS_SECTION_ANSWER, rr_make(qname, LDNS_RR_TYPE_SRV,
	    rd, 4));

	if (rc == 0)
		rc = push(p, LDNS_SECTION_ADDITIONAL, rr_a(tname, addr));
	ldns_rdf_deep_free(tname);
	return rc;
}

int
dns_answer(const uint8_t *q, size_t len, const char *domain,
    dns_lookup_fn lookup, void *arg, uint8_t *resp, size_t *resplen)
{
	ldns_pkt *qp = NULL, *rp = NULL;
	ldns_rr *question;
	char *s = NULL, name[DNS_NAME_MAX], svc[DNS_NAME_MAX];
	uint8_t *wire = NULL;
	size_t wlen = 0, n;
	int rc = -1;
	uint32_t addr = 0;
	int port = 0;
	ldns_pkt_rcode rcode = LDNS_RCODE_NOERROR;
	enum name_kind kind;

	if (len < LDNS_HEADER_SIZE || len > DNS_QUERY_MAX ||
	    ldns_wire2pkt(&qp, q, len) != LDNS_STATUS_OK)
		return -1;
	if (ldns_pkt_qr(qp) || ldns_pkt_get_opcode(qp) != LDNS_PACKET_QUERY ||
	    ldns_pkt_qdcount(qp) != 1 ||
	    ldns_rr_list_rr_count(ldns_pkt_question(qp)) != 1)
		goto out;
	question = ldns_rr_list_rr(ldns_pkt_question(qp), 0);
	if (question == NULL || ldns_rr_owner(question) == NULL ||
	    ldns_rdf_get_type(ldns_rr_owner(question)) != LDNS_RDF_TYPE_DNAME ||
	    (s = ldns_rdf2str(ldns_rr_owner(question))) == NULL)
		goto out;
	/* Presentation form: lower case, without the final dot. */
	n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	if (n >= sizeof(name))
		goto out;
	for (size_t i = 0; i <= n; i++)
		name[i] = (char)tolower((unsigned char)s[i]);

	kind = classify(name, domain, svc, sizeof(svc));
	if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN &&
	    ldns_rr_get_class(question) != LDNS_RR_CLASS_ANY)
		kind = N_OUTSIDE;
	if (kind == N_SERVICE && !lookup(arg, svc, &addr, &port))
		kind = N_OTHER;
	if (kind == N_OUTSIDE)
		rcode = LDNS_RCODE_REFUSED;
	else if (kind == N_OTHER)
		rcode = LDNS_RCODE_NXDOMAIN;

	if ((rp = ldns_pkt_new()) == NULL)
		goto out;
	ldns_pkt_set_id(rp, ldns_pkt_id(qp));
	ldns_pkt_set_qr(rp, true);
	ldns_pkt_set_opcode(rp, LDNS_PACKET_QUERY);
	ldns_pkt_set_aa(rp, kind != N_OUTSIDE);
	ldns_pkt_set_rd(rp, ldns_pkt_rd(qp));
	ldns_pkt_set_ra(rp, false);
	ldns_pkt_set_rcode(rp, (uint8_t)rcode);
	if (push(rp, LDNS_SECTION_QUESTION, ldns_rr_clone(question)) != 0)
		goto out;
	if (kind == N_SERVICE &&
	    answer_service(rp, ldns_rr_owner(question),
	    ldns_rr_get_type(question), svc, domain, addr, port) != 0)
		goto out;
	if (ldns_pkt2wire(&wire, rp, &wlen) != LDNS_STATUS_OK ||
	    wlen > DNS_MSG_MAX)
		goto out;
	memcpy(resp, wire, wlen);
	*resplen = wlen;
	rc = 0;
out:
	free(wire);
	free(s);
	ldns_pkt_free(rp);
	ldns_pkt_free(qp);
	return rc;
}

/* The socket is readable: answer what came, drop what is malformed. */
static void
dns_event(void *arg, uint32_t events)
{
	struct dns_server *d = arg;
	uint8_t q[DNS_QUERY_MAX + 1], r[DNS_MSG_MAX];

	(void)events;
	for (int i = 0; i < DNS_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		size_t rlen = 0;
		ssize_t n = recvfrom(d->fd, q, sizeof(q), 0,
		    (struct sockaddr *)&ss, &sl);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("dns: recvfrom: %m");
			return;
		}
		if (dns_answer(q, (size_t)n, d->domain, d->lookup, d->arg, r,
		    &rlen) != 0) {
			uint64_t k = atomic_fetch_add(&d->dropped, 1) + 1;
			char a[INET6_ADDRSTRLEN] = "?";

			if (ss.ss_family == AF_INET)
				inet_ntop(AF_INET,
				    &((struct sockaddr_in *)&ss)->sin_addr,
				    a, sizeof(a));
			else if (ss.ss_family == AF_INET6)
				inet_ntop(AF_INET6,
				    &((struct sockaddr_in6 *)&ss)->sin6_addr,
				    a, sizeof(a));
			/* Log the 1st, 2nd, 4th, 8th...: a flood cannot
			 * flood the log. */
			if ((k & (k - 1)) == 0)
				log_warn("dns: dropped a malformed query (%zd "
				    "bytes) from %s; %llu dropped so far", n,
				    a, (unsigned long long)k);
			continue;
		}
		atomic_fetch_add(&d->answered, 1);
		if (sendto(d->fd, r, rlen, 0, (struct sockaddr *)&ss, sl) < 0 &&
		    errno != EAGAIN)
			log_debug("dns: sendto: %m");
	}
}

int
dns_start(struct dns_server **out, struct loop *loop, const char *addr,
    const char *domain, dns_lookup_fn lookup, void *arg, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	struct dns_server *d;
	char host[INET6_ADDRSTRLEN + 2];
	struct sockaddr_storage ss;
	socklen_t sl;
	int port, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (util_split_hostport(addr, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "dns_addr \"%s\" is not IP:port", addr);
		return -1;
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr)
	    == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "dns_addr \"%s\": not an IP address",
		    addr);
		return -1;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->loop = loop;
	d->domain = domain;
	d->lookup = lookup;
	d->arg = arg;
	d->w.fd = -1;
	d->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (d->fd < 0)
		goto fail;
	setsockopt(d->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(d->fd, (struct sockaddr *)&ss, sl) != 0)
		goto fail;
	sl = sizeof(ss);
	if (getsockname(d->fd, (struct sockaddr *)&ss, &sl) != 0)
		goto fail;
	port = ntohs(ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET6)
		snprintf(bound, boundlen, "[%s]:%d", host, port);
	else
		snprintf(bound, boundlen, "%s:%d", host, port);
	if (loop_add(loop, &d->w, d->fd, EPOLLIN, dns_event, d) != 0)
		goto fail;
	*out = d;
	return 0;
fail:
	snprintf(err, errlen, "DNS on %s: %s", addr, strerror(errno));
	if (d->fd >= 0)
		close(d->fd);
	free(d);
	return -1;
}

void
dns_stop(struct dns_server *d)
{
	if (d == NULL)
		return;
	loop_del(d->loop, &d->w);
	close(d->fd);
	free(d);
}

uint64_t
dns_answered(const struct dns_server *d)
{
	return d == NULL ? 0 : atomic_load(&d->answered);
}

uint64_t
dns_dropped(const struct dns_server *d)
{
	return d == NULL ? 0 : atomic_load(&d->dropped);
}
