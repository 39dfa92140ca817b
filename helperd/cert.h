/* cert: pure certificate checks for mesh identities (no I/O, no CA state),
 * used by ca_verify_session and unit-tested directly. */
#ifndef MESH_CERT_H
#define MESH_CERT_H

#include <stddef.h>
#include <time.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

enum cert_role {
	CERT_PEER_IS_SERVER = 0,   /* we dialled: peer needs serverAuth */
	CERT_PEER_IS_CLIENT = 1,   /* we accepted: peer needs clientAuth */
};

/* Check a peer chain (DER, leaf first, n >= 1) against the trusted roots tl
 * at time now for trust domain td. expected_service NULL = any mesh
 * service. On success copies the peer's service name. 0/-1 with why. */
int cert_verify_chain(gnutls_x509_trust_list_t tl, const char *td,
    const gnutls_datum_t *chain, unsigned n, time_t now, enum cert_role role,
    const char *expected_service, char *service, size_t servicelen,
    char *spiffe, size_t spiffelen, char *why, size_t whylen);

#endif
