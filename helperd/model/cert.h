/* cert: pure certificate building and checks for mesh identities (no I/O,
 * no CA state), used by ca.c (issuing, ca_verify_session) and unit-tested
 * directly (the tests build defective certificates with cert_make). */
#ifndef MESH_CERT_H
#define MESH_CERT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>

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

/* What cert_make puts into a certificate. */
enum cert_eku {
	CERT_EKU_SERVER = 1 << 0,  /* id-kp-serverAuth */
	CERT_EKU_CLIENT = 1 << 1,  /* id-kp-clientAuth */
};

struct cert_spec {
	const char *dn;            /* subject, e.g. "CN=web" */
	const char *const *uris;   /* URI SANs (n_uris of them, may be 0) */
	unsigned n_uris;
	int is_ca;                 /* 1: CA:TRUE, keyCertSign+cRLSign;
	                            * 0: CA:FALSE, digitalSignature+
	                            * keyAgreement */
	unsigned eku;              /* enum cert_eku bits, 0 = no EKU ext */
	const char *permit_td;     /* CA only: name constraint permitting
	                            * URIs of this trust domain, or NULL */
	int64_t not_before;        /* unix seconds */
	int64_t not_after;
};

/* A new ECDSA P-256 private key. 0/-1 with err. */
int cert_key_generate(gnutls_x509_privkey_t *out, char *err, size_t errlen);

/* Build and sign a v3 certificate for key: random positive 16-byte serial,
 * subject and authority key IDs, SHA-256. issuer/issuer_key NULL =
 * self-signed. 0/-1 with err. */
int cert_make(const struct cert_spec *spec, gnutls_x509_privkey_t key,
    gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
    gnutls_x509_crt_t *out, char *err, size_t errlen);

/* cert_make for a subject known only by its public key (from a CSR):
 * issuer and issuer_key are required. */
int cert_make_pub(const struct cert_spec *spec, gnutls_pubkey_t pub,
    gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
    gnutls_x509_crt_t *out, char *err, size_t errlen);

/* A PEM certificate request for key with subject dn and one URI SAN,
 * signed by key (malloc'd), or NULL with err. */
char *cert_csr_make(const char *dn, const char *uri, gnutls_x509_privkey_t key,
    char *err, size_t errlen);

/* PEM of a certificate / a private key (malloc'd, NUL-terminated), or
 * NULL. */
char *cert_pem(gnutls_x509_crt_t crt);
char *cert_key_pem(gnutls_x509_privkey_t key);

/* Lowercase colon-separated hex ("0a:1b:...") of the serial number, the
 * subject key ID and the SHA-1 fingerprint. 0/-1. */
int cert_serial_hex(gnutls_x509_crt_t crt, char *buf, size_t len);
int cert_key_id_hex(gnutls_x509_crt_t crt, char *buf, size_t len);
int cert_fingerprint_hex(gnutls_x509_crt_t crt, char *buf, size_t len);

#endif
