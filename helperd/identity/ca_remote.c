/* ca_remote: a CA client (no root key: roots from the cluster, leaves
 * from a CSR) and the CA server signing for it. */
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

/* ---- CA clients and their servers ---- */

int
ca_is_client(const struct ca *ca)
{
	return ca->client;
}

int
ca_set_roots(struct ca *ca, const char *doc, int save, char *err,
    size_t errlen)
{
	json_t *j = json_loads(doc, 0, NULL), *arr, *e;
	const char *td, *active;
	struct ca_root *v = NULL;
	size_t n = 0, i;
	char path[PATH_MAX];

	td = json_string_value(json_object_get(j, "TrustDomain"));
	active = json_string_value(json_object_get(j, "ActiveRootID"));
	arr = json_object_get(j, "Roots");
	if (td == NULL || strlen(td) >= sizeof(ca->td) || active == NULL ||
	    !json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > CA_ROOTS_MAX) {
		json_decref(j);
		return ca_errf(err, errlen, "CA roots: not {TrustDomain, "
		    "ActiveRootID, Roots: [...]}");
	}
	if ((v = calloc(json_array_size(arr), sizeof(*v))) == NULL)
		goto oom;
	json_array_foreach(arr, i, e) {
		const char *pem = json_string_value(json_object_get(e,
		    "RootCert"));
		struct ca_root *r = &v[n];

		if (pem == NULL || strlen(pem) > CA_PEM_MAX ||
		    ca_import_crt("CA roots", pem, &r->crt, err, errlen) != 0)
			goto fail;
		const char *xp = json_string_value(json_array_get(
		    json_object_get(e, "IntermediateCerts"), 0));

		n++;
		r->n = (unsigned)n;
		if ((r->pem = strdup(pem)) == NULL || ca_root_derive(r) != 0)
			goto fail;
		r->leaves_until = r->not_after;  /* the servers prune */
		/* A rotated-in root, cross-signed by the one before it: our
		 * leaves under it carry that certificate too, so that peers
		 * that do not know this root yet still verify them. */
		if (xp != NULL && n > 1 && strlen(xp) <= CA_PEM_MAX) {
			if ((r->cross_pem = strdup(xp)) == NULL)
				goto fail;
			r->cross_by = (unsigned)n - 1;
		}
	}
	for (i = 0; i < ca->n_roots; i++)
		ca_root_clear(&ca->roots[i]);
	free(ca->roots);
	ca->roots = v;
	ca->n_roots = n;
	ca->active = (unsigned)n;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].id, active) == 0)
			ca->active = v[i].n;
	ca->next_root = (unsigned)n + 1;
	util_strlcpy(ca->td, td, sizeof(ca->td));
	json_decref(j);
	if (ca_rebuild_trust(ca, err, errlen) != 0)
		return -1;
	if (save) {
		ca_path(ca, path, sizeof(path), "client-roots.json");
		if (util_write_atomic(path, doc, strlen(doc), 0644) != 0)
			log_warn("CA: %s: write: %s", path, strerror(errno));
	}
	return 0;
oom:
	ca_errf(err, errlen, "out of memory");
fail:
	for (i = 0; i < n + 1 && v != NULL && i < json_array_size(arr); i++)
		ca_root_clear(&v[i]);
	free(v);
	json_decref(j);
	return -1;
}

int
ca_open_client(struct ca **out, const char *dir, char *err, size_t errlen)
{
	struct ca *ca;
	char path[PATH_MAX], *text;

	*out = NULL;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return ca_errf(err, errlen, "out of memory");
	ca->client = 1;
	ca->root_ttl = 87600L * 3600;
	if (util_strlcpy(ca->dir, dir, sizeof(ca->dir)) >= sizeof(ca->dir)) {
		ca_errf(err, errlen, "%s: path too long", dir);
		goto err;
	}
	if (util_mkdirs(dir, 0700) != 0) {
		ca_errf(err, errlen, "%s: %s", dir, strerror(errno));
		goto err;
	}
	ca_path(ca, path, sizeof(path), "roots");
	if (ca_dir_has_entries(path) != 0)
		log_warn("CA: %s holds root files, but this node is a CA "
		    "client (ca.server = false) and does not use them: remove "
		    "them", path);
	ca_path(ca, path, sizeof(path), "client-roots.json");
	if ((text = util_read_file(path, CA_META_MAX, NULL)) != NULL) {
		if (ca_set_roots(ca, text, 0, err, errlen) != 0)
			log_warn("CA: %s: %s (waiting for the cluster's)", path,
			    err);
		free(text);
	}
	if (ca->tl == NULL && ca_rebuild_trust(ca, err, errlen) != 0)
		goto err;
	*out = ca;
	return 0;
err:
	ca_free(ca);
	return -1;
}

char *
ca_csr_new(const struct ca *ca, const char *dc, const char *service,
    char **key_pem, char *err, size_t errlen)
{
	gnutls_x509_privkey_t key = NULL;
	char uri[SPIFFE_ID_MAX], dn[128], *csr = NULL;

	*key_pem = NULL;
	if (ca_check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ca->td[0] == '\0' || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		ca_errf(err, errlen, "no trust domain yet (CA roots not known)");
		return NULL;
	}
	snprintf(dn, sizeof(dn), "CN=%s", service);
	if (cert_key_generate(&key, err, errlen) != 0)
		return NULL;
	if ((csr = cert_csr_make(dn, uri, key, err, errlen)) != NULL &&
	    (*key_pem = cert_key_pem(key)) == NULL) {
		ca_errf(err, errlen, "exporting the key of %s", service);
		free(csr);
		csr = NULL;
	}
	gnutls_x509_privkey_deinit(key);
	return csr;
}

char *
ca_sign_csr(struct ca *ca, const char *dc, const char *service, long ttl,
    const char *csr_pem, char *err, size_t errlen)
{
	struct ca_root *root = ca_root_active(ca);
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)csr_pem,
	    (unsigned)strlen(csr_pem) };
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	char uri[SPIFFE_ID_MAX], dn[128], *pem = NULL;
	const char *uris[1] = { uri };
	struct cert_spec spec;
	unsigned bits = 0;
	int64_t now = time(NULL);
	int ret;

	if (ca->client || root == NULL || root->key == NULL) {
		ca_errf(err, errlen, "this node is not a CA server");
		return NULL;
	}
	if (ca_check_names(dc, service, err, errlen) != 0 || ttl <= 0 ||
	    spiffe_format(uri, sizeof(uri), ca->td, dc, service) != 0) {
		ca_errf(err, errlen, "bad service or datacenter name");
		return NULL;
	}
	if ((ret = gnutls_x509_crq_init(&crq)) < 0 ||
	    (ret = gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM)) < 0 ||
	    (ret = gnutls_x509_crq_verify(crq, 0)) < 0 ||
	    (ret = gnutls_pubkey_init(&pub)) < 0 ||
	    (ret = gnutls_pubkey_import_x509_crq(pub, crq, 0)) < 0) {
		ca_errf(err, errlen, "CSR for %s: %s", service,
		    gnutls_strerror(ret));
		goto out;
	}
	if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_ECDSA ||
	    bits != 256) {
		ca_errf(err, errlen, "CSR for %s: not an ECDSA P-256 key",
		    service);
		goto out;
	}
	/* The identity is ours to give: the CSR's names are not used. */
	ca_leaf_spec(&spec, dn, sizeof(dn), uris, service, now, ttl, root);
	if (cert_make_pub(&spec, pub, root->crt, root->key, &crt, err,
	    errlen) != 0)
		goto out;
	if ((pem = cert_pem(crt)) == NULL) {
		ca_errf(err, errlen, "exporting the certificate of %s", service);
		goto out;
	}
	if (spec.not_after > root->leaves_until) {
		int64_t prev = root->leaves_until;

		root->leaves_until = spec.not_after;
		if (ca_meta_save(ca, err, errlen) != 0) {
			root->leaves_until = prev;
			free(pem);
			pem = NULL;
			goto out;
		}
	}
	log_info("CA: signed a CSR for %s, valid until %lld", uri,
	    (long long)spec.not_after);
out:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	return pem;
}

struct ca_leaf *
ca_leaf_install(struct ca *ca, const char *service, const char *key_pem,
    const char *cert_pem, char *err, size_t errlen)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	gnutls_datum_t der = { NULL, 0 };
	struct ca_leaf *leaf = NULL;
	struct ca_root *root;
	char got[SPIFFE_ID_MAX];

	if (ca_import_crt(service, cert_pem, &crt, err, errlen) != 0 ||
	    ca_import_key(service, key_pem, &key, err, errlen) != 0)
		goto out;
	if (!ca_key_matches(crt, key)) {
		ca_errf(err, errlen, "the certificate for %s is not for our key",
		    service);
		goto out;
	}
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0 ||
	    cert_verify_chain(ca->tl, ca->td, &der, 1, time(NULL),
	    CERT_PEER_IS_SERVER, service, NULL, 0, got, sizeof(got), err,
	    errlen) != 0 ||
	    cert_verify_chain(ca->tl, ca->td, &der, 1, time(NULL),
	    CERT_PEER_IS_CLIENT, service, NULL, 0, NULL, 0, err,
	    errlen) != 0)
		goto out;
	if ((root = ca_root_of_leaf(ca, crt)) == NULL) {
		ca_errf(err, errlen, "the certificate for %s is not signed by a "
		    "known root", service);
		goto out;
	}
	if ((leaf = ca_leaf_build(ca, crt, key_pem, root, service, err,
	    errlen)) == NULL)
		goto out;
	ca_leaf_store(ca, service, key_pem, leaf->cert_pem);
	ca_cache_put(ca, leaf);
	log_info("CA: installed leaf %s for %s (signed by a CA server), valid "
	    "until %lld, renew at %lld", leaf->serial, leaf->spiffe,
	    (long long)leaf->not_after, (long long)leaf->renew_at);
out:
	gnutls_free(der.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return leaf;
}
