/* spiffe: SPIFFE IDs of mesh services,
 * spiffe://<trust-domain>/ns/default/dc/<dc>/svc/<service>. */
#ifndef MESH_SPIFFE_H
#define MESH_SPIFFE_H

#include <stddef.h>

#define SPIFFE_ID_MAX 256

struct spiffe_id {
	char trust_domain[128];
	char ns[64];
	char dc[64];
	char service[64];
};

/* Parse a service SPIFFE ID; strict: scheme, lowercase trust domain,
 * exactly the ns/dc/svc path, valid names, no query/fragment/port/userinfo,
 * no empty or dot segments, total length < SPIFFE_ID_MAX. 0/-1. */
int spiffe_parse(const char *uri, struct spiffe_id *out);

/* Format the service ID into buf. 0, or -1 if a part is not a valid name
 * (spiffe_valid_trust_domain / spiffe_valid_name) or it does not fit. */
int spiffe_format(char *buf, size_t len, const char *td, const char *dc,
    const char *service);

/* Names of namespaces, datacenters and services: 1..63 chars of
 * [A-Za-z0-9_-], starting with a letter or digit (conf_valid_name's rule).
 * 1 if valid. */
int spiffe_valid_name(const char *s);

/* Trust domains: 1..127 chars of lowercase DNS labels ([a-z0-9-], no empty
 * label, no leading/trailing '-' in a label) separated by dots. 1 if valid. */
int spiffe_valid_trust_domain(const char *td);

#endif
