/* dns: a small authoritative DNS server (UDP) for the names of the mesh
 * services, for programs the shim cannot reach. The wire format is ldns's
 * (parsing and building); this module only decides the answer.
 *
 *   <svc>.service.<domain>, <svc>.connect.<domain>,
 *   <svc>.service.consul, <svc>.connect.consul
 *       A     the service's served loopback address (TTL 0)
 *       SRV   its port, target <svc>.service.<domain>. (+ A in additional)
 *       AAAA  and other types: NOERROR without answers (NODATA)
 *   other names under those domains: NXDOMAIN
 *   names outside them: REFUSED (no recursion, RA clear)
 *
 * A query that does not parse, is a response, is not a QUERY or does not
 * ask exactly one question gets no answer: it is dropped and counted. */
#ifndef MESH_DNS_H
#define MESH_DNS_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct dns_server;

/* The served address (IPv4, host order) and port of service svc (any
 * case): 1 known (port 0: none is listened on), 0 not a service. */
typedef int (*dns_lookup_fn)(void *arg, const char *svc, uint32_t *addr,
    int *port);

#define DNS_MSG_MAX 512         /* answers fit plain UDP DNS */

/* Answer one query (len bytes) for domain: the response in resp (up to
 * DNS_MSG_MAX bytes) and its length, or -1 when the query is malformed
 * (drop it). Pure: no I/O besides lookup. */
int dns_answer(const uint8_t *q, size_t len, const char *domain,
    dns_lookup_fn lookup, void *arg, uint8_t *resp, size_t *resplen);

/* Serve UDP on addr ("IP:port", port 0 = any free port) from loop; the
 * bound "IP:port" in bound. domain must stay valid while it runs (it is
 * read at each query). 0/-1 with err. */
int dns_start(struct dns_server **out, struct loop *loop, const char *addr,
    const char *domain, dns_lookup_fn lookup, void *arg, char *bound,
    size_t boundlen, char *err, size_t errlen);
void dns_stop(struct dns_server *d);

/* Counters since start: queries answered, malformed queries dropped. */
uint64_t dns_answered(const struct dns_server *d);
uint64_t dns_dropped(const struct dns_server *d);

#endif
