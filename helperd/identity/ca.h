/* ca: the mesh certificate authority of a node.
 *
 * Root: ECDSA P-256, self-signed, URI SAN spiffe://<trust-domain>, a URI
 * name constraint permitting only the trust domain (Consul uses a DNS one;
 * OpenSSL enforces it, GnuTLS does not, so cert_verify_chain checks the
 * trust domain of the SPIFFE ID itself). The trust
 * domain "<uuid>.mesh" is created once with the first root and kept.
 * Files live in one directory (data_dir/ca): written atomically, keys 0600.
 * A missing directory means "first start": a root is created. A present but
 * corrupt/truncated file is an error naming the file, never a new root.
 *
 * Leaves: one per service, ECDSA P-256, key generated here, CA:FALSE,
 * digitalSignature+keyAgreement, EKU clientAuth+serverAuth, URI SAN
 * spiffe://<td>/ns/default/dc/<dc>/svc/<name>. Stored in data_dir/ca/leaf/.
 *
 * Refcounted leaves: a TLS session holds a reference to the leaf whose
 * credentials it uses, so renewal never disturbs open connections. The CA
 * holds one reference to each service's current leaf; a leaf stays valid
 * after ca_free until its last reference is dropped. */
#ifndef MESH_CA_H
#define MESH_CA_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

struct ca;

struct ca_leaf {
	char service[64];
	char spiffe[256];
	char serial[128];          /* hex, colon separated, as Consul */
	char *cert_pem;            /* leaf certificate */
	char *chain_pem;           /* leaf + intermediates (cross-signed) */
	char *key_pem;             /* leaf private key */
	int64_t not_before;        /* unix seconds */
	int64_t not_after;
	int64_t renew_at;          /* random point in [60 %, 90 %] of life */
	char root_id[128];         /* ID of the root that signed it */
	gnutls_certificate_credentials_t cred; /* key + chain, ready for TLS */
	atomic_int refs;           /* any thread may take or drop one */
};

/* Open the CA kept in dir, creating root and trust domain on first start
 * (dir missing or empty). root_ttl in seconds. 0, or -1 with err naming
 * the file and the reason; on error nothing on disk is modified (also when
 * meta.json is missing but roots/ still holds files: no new root). */
int ca_open(struct ca **out, const char *dir, long root_ttl, char *err,
    size_t errlen);
void ca_free(struct ca *ca);

const char *ca_trust_domain(const struct ca *ca);
/* ID of the active root (Consul-style "aa:bb:..." key id form). */
const char *ca_active_root_id(const struct ca *ca);

/* Get a usable leaf for service in datacenter dc: the current one (kept in
 * memory, else loaded from leaf/) if it is valid, for this dc, no longer
 * lived than ttl, signed by a trusted root and before its renew_at;
 * otherwise a new one (new key) is issued and stored. ttl in seconds.
 * Leaves are backdated 60 s (not_before) for clock skew; their life, and
 * so renew_at, counts from the issue time. renew_at is derived from the
 * random serial, so it is the same after a restart. Returns a new
 * reference, or NULL with err filled. */
struct ca_leaf *ca_leaf_get(struct ca *ca, const char *dc, const char *service,
    long ttl, char *err, size_t errlen);
/* Issue a fresh leaf (new key) under the active root now, store it, make
 * it the service's current leaf, return a new reference. */
struct ca_leaf *ca_leaf_issue(struct ca *ca, const char *dc,
    const char *service, long ttl, char *err, size_t errlen);
struct ca_leaf *ca_leaf_ref(struct ca_leaf *leaf);
void ca_leaf_unref(struct ca_leaf *leaf);

/* Verify the peer of a finished (or finishing) handshake, both directions:
 * chain to a trusted root, validity window, exactly one SPIFFE URI SAN in
 * our trust domain, EKU (serverAuth when we are the client, clientAuth when
 * we are the server), CA:FALSE. expected_service: the service the peer must
 * be (client side) or NULL for any mesh service (server side); the side,
 * and so the EKU required, follows from it. On success the peer's service
 * and SPIFFE ID are copied out. 0/-1 with why filled. */
int ca_verify_session(struct ca *ca, gnutls_session_t session,
    const char *expected_service, char *service, size_t servicelen,
    char *spiffe, size_t spiffelen, char *why, size_t whylen);
/* The same against the roots tl of trust domain td (a copy of a CA's,
 * ca_trust_copy, that other threads read while the CA changes). */
int ca_verify_peer(gnutls_x509_trust_list_t tl, const char *td,
    gnutls_session_t session, const char *expected_service, char *service,
    size_t servicelen, char *spiffe, size_t spiffelen, char *why,
    size_t whylen);

/* Rotate: a new root; its certificate cross-signed by the old root is
 * served as an intermediate; leaves are re-issued under the new root by
 * the caller (ca_leaf_issue); old roots stay trusted until every leaf they
 * signed has expired (ca_prune). 0/-1 with err. */
int ca_rotate(struct ca *ca, char *err, size_t errlen);
/* Drop old roots whose leaves have all expired (now: unix seconds; a root
 * stays while now <= the latest not_after of the leaves it signed), with
 * their files and cached leaves. Returns how many were dropped. */
int ca_prune(struct ca *ca, int64_t now);
/* When ca_prune will next drop a root (unix seconds), 0: none retired. */
int64_t ca_prune_due(const struct ca *ca);

/* The trusted roots (all roots not yet pruned), for cert_verify_chain.
 * Owned by ca; valid until the next ca_rotate/ca_prune/ca_free. */
gnutls_x509_trust_list_t ca_trust_list(const struct ca *ca);
/* A new trust list of the same roots, owned by the caller
 * (gnutls_x509_trust_list_deinit(tl, 1)). 0/-1. */
int ca_trust_copy(const struct ca *ca, gnutls_x509_trust_list_t *out);
/* Changes whenever the trusted roots or the trust domain do. */
uint64_t ca_generation(const struct ca *ca);

/* JSON for GET /v1/agent/connect/ca/roots (Consul field names). Roots[]
 * SerialNumber is the low 63 bits of the 16-byte serial (Consul has a
 * uint64 there); IntermediateCerts of a rotated-in root holds its
 * certificate cross-signed by the previous root. */
json_t *ca_roots_json(const struct ca *ca);
/* JSON for GET /v1/agent/connect/ca/leaf/:service (Consul field names).
 * CertPEM is chain_pem (leaf first, as Consul's); CreateIndex/ModifyIndex
 * are the leaf's not_before, which grows with every renewal. */
json_t *ca_leaf_json(const struct ca *ca, const struct ca_leaf *leaf);

/* CA clients (ca.server = false in a cluster): no root key on the node.
 *
 * Open the client CA kept in dir (leaves, and client-roots.json: the
 * cluster's roots as last seen). It may start with no roots. 0/-1. */
int ca_open_client(struct ca **out, const char *dir, char *err,
    size_t errlen);
int ca_is_client(const struct ca *ca);
/* Replace a client's roots and trust domain with doc (the JSON of
 * ca_roots_json, from the cluster store); save: also cache it in
 * client-roots.json. 0, or -1 with err and nothing changed. */
int ca_set_roots(struct ca *ca, const char *doc, int save, char *err,
    size_t errlen);
/* A new key for service (PEM into *key_pem, malloc'd, never leaves the
 * node) and a CSR for it (returned, malloc'd), or NULL with err. */
char *ca_csr_new(const struct ca *ca, const char *dc, const char *service,
    char **key_pem, char *err, size_t errlen);
/* CA server: sign the public key of csr_pem (its self-signature checked;
 * ECDSA P-256 only) as the leaf of service in dc for ttl seconds, with the
 * SPIFFE ID we give (the CSR's names are ignored). PEM or NULL with err. */
char *ca_sign_csr(struct ca *ca, const char *dc, const char *service,
    long ttl, const char *csr_pem, char *err, size_t errlen);
/* Client: make key_pem + cert_pem (signed by a CA server, checked against
 * our roots) the current leaf of service, stored in leaf/. New reference,
 * or NULL with err. */
struct ca_leaf *ca_leaf_install(struct ca *ca, const char *service,
    const char *key_pem, const char *cert_pem, char *err, size_t errlen);

#endif
