/* ca_leaf: issuing, storing, loading and caching the leaves of local
 * services; verifying a peer's chain and SPIFFE ID. */
#include "helperd/identity/ca_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/model/cert.h"
#include "helperd/model/spiffe.h"

/* ---- leaves ---- */

struct ca_leaf *
ca_leaf_ref(struct ca_leaf *leaf)
{
	if (leaf != NULL)
		atomic_fetch_add_explicit(&leaf->refs, 1,
		    memory_order_relaxed);
	return leaf;
}

void
ca_leaf_unref(struct ca_leaf *leaf)
{
	if (leaf == NULL || atomic_fetch_sub_explicit(&leaf->refs, 1,
	    memory_order_acq_rel) > 1)
		return;
	if (leaf->cred != NULL)
		gnutls_certificate_free_credentials(leaf->cred);
	free(leaf->cert_pem);
	free(leaf->chain_pem);
	if (leaf->key_pem != NULL) {
		gnutls_memset(leaf->key_pem, 0, strlen(leaf->key_pem));
		free(leaf->key_pem);
	}
	free(leaf);
}

/* The root whose key signed crt (authority key ID), or NULL. */
struct ca_root *
ca_root_of_leaf(const struct ca *ca, gnutls_x509_crt_t crt)
{
	unsigned char id[64];
	char hex[200];
	size_t n = sizeof(id);
	unsigned crit = 0;

	if (gnutls_x509_crt_get_authority_key_id(crt, id, &n, &crit) < 0 ||
	    n == 0 || n * 3 > sizeof(hex))
		return NULL;
	for (size_t i = 0; i < n; i++)
		snprintf(hex + i * 3, 4, "%02x%s", id[i], i + 1 < n ? ":" : "");
	for (size_t i = 0; i < ca->n_roots; i++)
		if (strcmp(ca->roots[i].key_id, hex) == 0)
			return &ca->roots[i];
	return NULL;
}

/* renew_at: a point in [60 %, 90 %) of the life, drawn from the random
 * serial so that it is the same when the leaf is loaded again. The life
 * starts at the issue time, CA_BACKDATE after not_before (which matters
 * for short test TTLs of a few seconds). */
static int64_t
leaf_renew_at(gnutls_x509_crt_t crt, int64_t nb, int64_t na)
{
	unsigned char s[64];
	size_t n = sizeof(s);
	uint32_t r = 0;
	int64_t issued = nb + CA_BACKDATE < na ? nb + CA_BACKDATE : nb;

	if (gnutls_x509_crt_get_serial(crt, s, &n) == 0)
		for (size_t i = 1; i < 5 && i < n; i++)
			r = (r << 8) | s[i];
	return issued + (int64_t)((double)(na - issued) *
	    (0.6 + 0.3 * ((double)r / 4294967296.0)));
}

struct ca_leaf *
ca_leaf_build(struct ca *ca, gnutls_x509_crt_t crt, const char *key_pem,
    const struct ca_root *root, const char *service, char *err,
    size_t errlen)
{
	struct ca_leaf *l;
	gnutls_datum_t cd, kd;
	size_t size;
	unsigned type = 0, crit = 0;
	int ret;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		ca_errf(err, errlen, "out of memory");
		return NULL;
	}
	l->refs = 1;
	util_strlcpy(l->service, service, sizeof(l->service));
	util_strlcpy(l->root_id, root->id, sizeof(l->root_id));
	size = sizeof(l->spiffe) - 1;
	ret = gnutls_x509_crt_get_subject_alt_name2(crt, 0, l->spiffe, &size,
	    &type, &crit);
	if (ret != GNUTLS_SAN_URI) {
		ca_errf(err, errlen, "leaf of %s has no URI SAN", service);
		goto err;
	}
	l->spiffe[size] = '\0';
	if (cert_serial_hex(crt, l->serial, sizeof(l->serial)) != 0 ||
	    (l->cert_pem = cert_pem(crt)) == NULL ||
	    (l->key_pem = strdup(key_pem)) == NULL) {
		ca_errf(err, errlen, "exporting the leaf of %s", service);
		goto err;
	}
	l->not_before = gnutls_x509_crt_get_activation_time(crt);
	l->not_after = gnutls_x509_crt_get_expiration_time(crt);
	l->renew_at = leaf_renew_at(crt, l->not_before, l->not_after);
	/* Serve the cross-signed root while its signer is trusted, so that
	 * peers that still only trust the previous root verify us. */
	if (root->cross_pem != NULL && ca_root_find(ca, root->cross_by) != NULL) {
		size = strlen(l->cert_pem) + strlen(root->cross_pem) + 1;
		if ((l->chain_pem = malloc(size)) != NULL)
			snprintf(l->chain_pem, size, "%s%s", l->cert_pem,
			    root->cross_pem);
	} else
		l->chain_pem = strdup(l->cert_pem);
	if (l->chain_pem == NULL) {
		ca_errf(err, errlen, "out of memory");
		goto err;
	}
	cd.data = (unsigned char *)l->chain_pem;
	cd.size = (unsigned)strlen(l->chain_pem);
	kd.data = (unsigned char *)l->key_pem;
	kd.size = (unsigned)strlen(l->key_pem);
	if ((ret = gnutls_certificate_allocate_credentials(&l->cred)) < 0 ||
	    (ret = gnutls_certificate_set_x509_key_mem2(l->cred, &cd, &kd,
	    GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		ca_errf(err, errlen, "credentials for %s: %s", service,
		    gnutls_strerror(ret));
		goto err;
	}
	return l;
err:
	ca_leaf_unref(l);
	return NULL;
}

/* Keep leaf as the current one of its service (the cache holds a ref). */
void
ca_cache_put(struct ca *ca, struct ca_leaf *leaf)
{
	struct ca_leaf **nl;

	for (size_t i = 0; i < ca->n_leaves; i++) {
		if (strcmp(ca->leaves[i]->service, leaf->service) == 0) {
			ca_leaf_unref(ca->leaves[i]);
			ca->leaves[i] = ca_leaf_ref(leaf);
			return;
		}
	}
	nl = realloc(ca->leaves, (ca->n_leaves + 1) * sizeof(*nl));
	if (nl == NULL)
		return;         /* only a cache */
	ca->leaves = nl;
	ca->leaves[ca->n_leaves++] = ca_leaf_ref(leaf);
}

int
ca_check_names(const char *dc, const char *service, char *err, size_t errlen)
{
	if (!spiffe_valid_name(service))
		return ca_errf(err, errlen, "invalid service name \"%.64s\"",
		    service != NULL ? service : "");
	if (!spiffe_valid_name(dc))
		return ca_errf(err, errlen, "invalid datacenter name \"%.64s\"",
		    dc != NULL ? dc : "");
	return 0;
}
/* Keep a leaf on disk (key 0600 first, then the certificate). A failure
 * only costs a new leaf at the next start, so it is logged, not fatal. */
void
ca_leaf_store(struct ca *ca, const char *service, const char *key_pem,
    const char *cert_pem)
{
	char path[PATH_MAX];

	ca_path(ca, path, sizeof(path), "leaf");
	if (util_mkdirs(path, 0700) != 0)
		log_warn("CA: %s: mkdir: %s", path, strerror(errno));
	ca_path(ca, path, sizeof(path), "leaf/%s.key", service);
	if (util_write_atomic(path, key_pem, strlen(key_pem), 0600) == 0) {
		ca_path(ca, path, sizeof(path), "leaf/%s.pem", service);
		if (util_write_atomic(path, cert_pem, strlen(cert_pem),
		    0644) == 0)
			return;
	}
	log_warn("CA: %s: write: %s (a new leaf is issued at the next "
	    "start)", path, strerror(errno));
}

/* What every leaf of service looks like (issued here or for a CSR):
 * CN and one SPIFFE URI SAN, client and server auth, back-dated for clock
 * skew, never outliving the root that signs it. */
void
ca_leaf_spec(struct cert_spec *spec, char *dn, size_t dnlen, const char **uris,
    const char *service, int64_t now, long ttl, const struct ca_root *root)
{
	memset(spec, 0, sizeof(*spec));
	snprintf(dn, dnlen, "CN=%s", service);
	spec->dn = dn;
	spec->uris = uris;
	spec->n_uris = 1;
	spec->eku = CERT_EKU_SERVER | CERT_EKU_CLIENT;
	spec->not_before = now - CA_BACKDATE;
	spec->not_after = now + ttl < root->not_after ? now + ttl :
	    root->not_after;
}


struct ca_leaf *
ca_leaf_issue(struct ca *ca, const char *dc, const char *service, long ttl,
    char *err, size_t errlen)
{
	struct ca_root *root = ca_root_active(ca);
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	struct ca_leaf *leaf = NULL;
	char uri[SPIFFE_ID_MAX], dn[128], *kpem = NULL;
	const char *uris[1] = { uri };
	struct cert_spec spec;
	int64_t now = time(NULL), prev_until;

	if (ca->client || root == NULL || root->key == NULL) {
		ca_errf(err, errlen, "this node is not a CA server: the "
		    "certificate of %s is requested from one", service);
		return NULL;
	}
	prev_until = root->leaves_until;
	if (ca_check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ttl <= 0 || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		ca_errf(err, errlen, "cannot issue for %s: bad ttl or name", service);
		return NULL;
	}
	ca_leaf_spec(&spec, dn, sizeof(dn), uris, service, now, ttl, root);
	if (cert_key_generate(&key, err, errlen) != 0 ||
	    cert_make(&spec, key, root->crt, root->key, &crt, err,
	    errlen) != 0)
		goto out;
	if ((kpem = cert_key_pem(key)) == NULL) {
		ca_errf(err, errlen, "exporting the key of %s", service);
		goto out;
	}
	if ((leaf = ca_leaf_build(ca, crt, kpem, root, service, err,
	    errlen)) == NULL)
		goto out;
	/* Record first that this root has a leaf until not_after: pruning
	 * must never drop a root under a leaf that exists. */
	if (leaf->not_after > root->leaves_until) {
		root->leaves_until = leaf->not_after;
		if (ca_meta_save(ca, err, errlen) != 0) {
			root->leaves_until = prev_until;
			ca_leaf_unref(leaf);
			leaf = NULL;
			goto out;
		}
	}
	ca_leaf_store(ca, service, kpem, leaf->cert_pem);
	ca_cache_put(ca, leaf);
	log_info("CA: issued leaf %s for %s, valid until %lld, renew at %lld",
	    leaf->serial, leaf->spiffe, (long long)leaf->not_after,
	    (long long)leaf->renew_at);
out:
	if (kpem != NULL) {
		gnutls_memset(kpem, 0, strlen(kpem));
		free(kpem);
	}
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return leaf;
}

/* The stored leaf of service if it is still good to use, else NULL. */
static struct ca_leaf *
leaf_load(struct ca *ca, const char *uri, const char *service, long ttl,
    int64_t now)
{
	char ppath[PATH_MAX], kpath[PATH_MAX], why[256], got[SPIFFE_ID_MAX];
	char *pem = NULL, *kpem = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	gnutls_datum_t der = { NULL, 0 };
	struct ca_leaf *leaf = NULL;
	struct ca_root *root;
	int64_t nb, na;

	ca_path(ca, ppath, sizeof(ppath), "leaf/%s.pem", service);
	ca_path(ca, kpath, sizeof(kpath), "leaf/%s.key", service);
	if (access(ppath, F_OK) != 0 && errno == ENOENT)
		return NULL;
	if ((pem = ca_read_pem(ppath, why, sizeof(why))) == NULL ||
	    (kpem = ca_read_pem(kpath, why, sizeof(why))) == NULL ||
	    ca_import_crt(ppath, pem, &crt, why, sizeof(why)) != 0 ||
	    ca_import_key(kpath, kpem, &key, why, sizeof(why)) != 0)
		goto bad;
	if (!ca_key_matches(crt, key)) {
		ca_errf(why, sizeof(why), "%s: not the key of %s", kpath, ppath);
		goto bad;
	}
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0 ||
	    cert_verify_chain(ca->tl, ca->td, &der, 1, now,
	    CERT_PEER_IS_SERVER, service, NULL, 0, got, sizeof(got), why,
	    sizeof(why)) != 0 ||
	    cert_verify_chain(ca->tl, ca->td, &der, 1, now,
	    CERT_PEER_IS_CLIENT, service, NULL, 0, NULL, 0, why,
	    sizeof(why)) != 0) {
		log_info("CA: stored leaf of %s not usable (%s): issuing a new "
		    "one", service, why);
		goto out;
	}
	nb = gnutls_x509_crt_get_activation_time(crt);
	na = gnutls_x509_crt_get_expiration_time(crt);
	if (strcmp(got, uri) != 0 || na - nb > ttl + CA_BACKDATE ||
	    now >= leaf_renew_at(crt, nb, na) ||
	    (root = ca_root_of_leaf(ca, crt)) == NULL)
		goto out;       /* other dc/ttl, or due: renew */
	if ((leaf = ca_leaf_build(ca, crt, kpem, root, service, why,
	    sizeof(why))) == NULL)
		goto bad;
	if (na > root->leaves_until) {
		root->leaves_until = na;
		if (ca_meta_save(ca, why, sizeof(why)) != 0)
			log_warn("CA: %s", why);
	}
	goto out;
bad:
	log_warn("CA: stored leaf of %s unreadable (%s): issuing a new one",
	    service, why);
out:
	gnutls_free(der.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	free(pem);
	if (kpem != NULL) {
		gnutls_memset(kpem, 0, strlen(kpem));
		free(kpem);
	}
	return leaf;
}

struct ca_leaf *
ca_leaf_get(struct ca *ca, const char *dc, const char *service, long ttl,
    char *err, size_t errlen)
{
	char uri[SPIFFE_ID_MAX];
	int64_t now = time(NULL);
	struct ca_leaf *leaf;

	if (ca_check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ca->client && ca->td[0] == '\0') {
		ca_errf(err, errlen, "no certificate for %s yet: the cluster's CA "
		    "roots are not known yet", service);
		return NULL;
	}
	if (ttl <= 0 || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		ca_errf(err, errlen, "cannot issue for %s: bad ttl or name", service);
		return NULL;
	}
	for (size_t i = 0; i < ca->n_leaves; i++) {
		struct ca_leaf *l = ca->leaves[i];
		int trusted = 0;

		if (strcmp(l->service, service) != 0)
			continue;
		for (size_t j = 0; j < ca->n_roots; j++)
			trusted |= strcmp(ca->roots[j].id, l->root_id) == 0;
		if (trusted && strcmp(l->spiffe, uri) == 0 &&
		    now < l->renew_at &&
		    l->not_after - l->not_before <= ttl + CA_BACKDATE)
			return ca_leaf_ref(l);
		break;
	}
	if ((leaf = leaf_load(ca, uri, service, ttl, now)) != NULL) {
		ca_cache_put(ca, leaf);
		return leaf;
	}
	if (ca->client) {
		ca_errf(err, errlen, "no certificate for %s yet: waiting for a CA "
		    "server to sign it", service);
		return NULL;
	}
	return ca_leaf_issue(ca, dc, service, ttl, err, errlen);
}

/* ---- verification ---- */

int
ca_verify_session(struct ca *ca, gnutls_session_t session,
    const char *expected_service, char *service, size_t servicelen,
    char *spiffe, size_t spiffelen, char *why, size_t whylen)
{
	return ca_verify_peer(ca->tl, ca->td, session, expected_service,
	    service, servicelen, spiffe, spiffelen, why, whylen);
}

int
ca_verify_peer(gnutls_x509_trust_list_t tl, const char *td,
    gnutls_session_t session, const char *expected_service, char *service,
    size_t servicelen, char *spiffe, size_t spiffelen, char *why,
    size_t whylen)
{
	const gnutls_datum_t *chain;
	unsigned n = 0;

	if (tl == NULL)
		return ca_errf(why, whylen, "no trusted roots yet");
	if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) !=
	    GNUTLS_CRT_X509)
		return ca_errf(why, whylen, "peer certificate is not X.509");
	chain = gnutls_certificate_get_peers(session, &n);
	if (chain == NULL || n == 0)
		return ca_errf(why, whylen, "peer sent no certificate");
	/* The client side names the service it dialled; the server side
	 * accepts any mesh service. */
	return cert_verify_chain(tl, td, chain, n, time(NULL),
	    expected_service != NULL ? CERT_PEER_IS_SERVER :
	    CERT_PEER_IS_CLIENT, expected_service, service, servicelen,
	    spiffe, spiffelen, why, whylen);
}

json_t *
ca_leaf_json(const struct ca *ca, const struct ca_leaf *leaf)
{
	(void)ca;
	/* CertPEM carries the chain (leaf first), as Consul's does; the
	 * indices are the issue time, which grows with every renewal. */
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:I,s:I}",
	    "SerialNumber", leaf->serial,
	    "CertPEM", leaf->chain_pem,
	    "PrivateKeyPEM", leaf->key_pem,
	    "Service", leaf->service,
	    "ServiceURI", leaf->spiffe,
	    "ValidAfter", ca_json_time(leaf->not_before),
	    "ValidBefore", ca_json_time(leaf->not_after),
	    "CreateIndex", (json_int_t)leaf->not_before,
	    "ModifyIndex", (json_int_t)leaf->not_before);
}
