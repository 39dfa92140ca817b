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

/* Format the service ID into buf. 0, or -1 if it does not fit. */
int spiffe_format(char *buf, size_t len, const char *td, const char *dc,
    const char *service);

#endif
