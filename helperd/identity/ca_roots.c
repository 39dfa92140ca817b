/* ca_roots: making roots (self-signed, cross-signed by the one before),
 * rotation, pruning roots whose last leaf expired, the roots' JSON. */
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

/* ---- roots ---- */

/* A new root numbered ca->next_root; cross-signed by prev if given. */
int
ca_root_make(struct ca *ca, struct ca_root *r, const struct ca_root *prev,
    char *err, size_t errlen)
{
	char dn[256], uri[SPIFFE_ID_MAX];
	const char *uris[1] = { uri };
	struct cert_spec spec;
	gnutls_x509_crt_t x = NULL;
	int64_t now = time(NULL);

	memset(r, 0, sizeof(*r));
	r->n = ca->next_root;
	snprintf(dn, sizeof(dn), "CN=meshshim CA %u,OU=%s", r->n, ca->td);
	snprintf(uri, sizeof(uri), "spiffe://%s", ca->td);
	memset(&spec, 0, sizeof(spec));
	spec.dn = dn;
	spec.uris = uris;
	spec.n_uris = 1;
	spec.is_ca = 1;
	spec.permit_td = ca->td;
	spec.not_before = now - CA_BACKDATE;
	spec.not_after = now + ca->root_ttl;
	if (cert_key_generate(&r->key, err, errlen) != 0 ||
	    cert_make(&spec, r->key, NULL, NULL, &r->crt, err, errlen) != 0)
		goto err;
	if (prev != NULL) {
		if (spec.not_after > prev->not_after)
			spec.not_after = prev->not_after;
		if (cert_make(&spec, r->key, prev->crt, prev->key, &x, err,
		    errlen) != 0)
			goto err;
		r->cross_pem = cert_pem(x);
		gnutls_x509_crt_deinit(x);
		r->cross_by = prev->n;
		if (r->cross_pem == NULL) {
			ca_errf(err, errlen, "exporting the cross-signed root");
			goto err;
		}
	}
	if ((r->pem = cert_pem(r->crt)) == NULL || ca_root_derive(r) != 0) {
		ca_errf(err, errlen, "exporting the new root");
		goto err;
	}
	return 0;
err:
	ca_root_clear(r);
	return -1;
}

/* Write root r's files (key first; meta.json, written later, commits). */
int
ca_root_write(struct ca *ca, const struct ca_root *r, char *err, size_t errlen)
{
	char path[PATH_MAX], *kpem;
	int rc;

	if ((kpem = cert_key_pem(r->key)) == NULL)
		return ca_errf(err, errlen, "exporting root key");
	ca_path(ca, path, sizeof(path), "roots/%u.key", r->n);
	rc = util_write_atomic(path, kpem, strlen(kpem), 0600);
	gnutls_memset(kpem, 0, strlen(kpem));
	free(kpem);
	if (rc == 0) {
		ca_path(ca, path, sizeof(path), "roots/%u.pem", r->n);
		rc = util_write_atomic(path, r->pem, strlen(r->pem), 0644);
	}
	if (rc == 0 && r->cross_pem != NULL) {
		ca_path(ca, path, sizeof(path), "cross/%u.pem", r->n);
		rc = util_write_atomic(path, r->cross_pem,
		    strlen(r->cross_pem), 0644);
	}
	if (rc != 0)
		return ca_errf(err, errlen, "%s: write: %s", path,
		    strerror(errno));
	return 0;
}

int
ca_rotate(struct ca *ca, char *err, size_t errlen)
{
	struct ca_root *nr, *old;
	struct ca_root r;
	unsigned prev_active = ca->active;
	int64_t prev_index = ca->index, prev_modify;

	if (ca->client)
		return ca_errf(err, errlen, "this node is not a CA server "
		    "(ca.server = false): rotate on a CA server");
	if (ca->n_roots >= CA_ROOTS_MAX)
		return ca_errf(err, errlen, "%d roots still trusted; wait for "
		    "old leaves to expire", CA_ROOTS_MAX);
	if (ca_root_make(ca, &r, ca_root_active(ca), err, errlen) != 0)
		return -1;
	if (ca_root_write(ca, &r, err, errlen) != 0) {
		ca_root_clear(&r);
		return -1;
	}
	nr = realloc(ca->roots, (ca->n_roots + 1) * sizeof(*nr));
	if (nr == NULL) {
		ca_root_clear(&r);
		return ca_errf(err, errlen, "out of memory");
	}
	ca->roots = nr;
	old = ca_root_active(ca);
	prev_modify = old->modify_index;
	old->modify_index = ++ca->index;
	r.create_index = r.modify_index = ++ca->index;
	ca->roots[ca->n_roots++] = r;
	ca->active = r.n;
	ca->next_root++;
	if (ca_meta_save(ca, err, errlen) != 0 ||
	    ca_rebuild_trust(ca, err, errlen) != 0) {
		ca_root_clear(&ca->roots[--ca->n_roots]);
		ca->active = prev_active;
		ca->next_root--;
		ca->index = prev_index;
		ca_root_active(ca)->modify_index = prev_modify;
		return -1;
	}
	log_info("CA: rotated to root %u (%s), cross-signed by root %u",
	    r.n, r.id, prev_active);
	return 0;
}

static void
drop_cached(struct ca *ca, const char *root_id)
{
	size_t j = 0;

	for (size_t i = 0; i < ca->n_leaves; i++) {
		if (strcmp(ca->leaves[i]->root_id, root_id) == 0)
			ca_leaf_unref(ca->leaves[i]);
		else
			ca->leaves[j++] = ca->leaves[i];
	}
	ca->n_leaves = j;
}

int
ca_prune(struct ca *ca, int64_t now)
{
	char path[PATH_MAX], err[256];
	int dropped = 0;

	for (size_t i = 0; i < ca->n_roots;) {
		struct ca_root r = ca->roots[i];

		if (r.n == ca->active || now <= r.leaves_until) {
			i++;
			continue;
		}
		memmove(&ca->roots[i], &ca->roots[i + 1],
		    (ca->n_roots - i - 1) * sizeof(r));
		ca->n_roots--;
		ca->index++;
		if (ca_meta_save(ca, err, sizeof(err)) != 0) {
			ca->index--;
			memmove(&ca->roots[i + 1], &ca->roots[i],
			    (ca->n_roots - i) * sizeof(r));
			ca->roots[i] = r;
			ca->n_roots++;
			log_err("CA: cannot drop root %u: %s", r.n, err);
			break;
		}
		log_info("CA: dropped root %u (%s): its last leaf expired",
		    r.n, r.id);
		drop_cached(ca, r.id);
		ca_path(ca, path, sizeof(path), "roots/%u.key", r.n);
		unlink(path);
		ca_path(ca, path, sizeof(path), "roots/%u.pem", r.n);
		unlink(path);
		ca_path(ca, path, sizeof(path), "cross/%u.pem", r.n);
		unlink(path);
		ca_root_clear(&r);
		dropped++;
	}
	if (dropped > 0 && ca_rebuild_trust(ca, err, sizeof(err)) != 0)
		log_err("CA: %s", err);
	return dropped;
}

int64_t
ca_prune_due(const struct ca *ca)
{
	int64_t due = 0;

	for (size_t i = 0; i < ca->n_roots; i++) {
		const struct ca_root *r = &ca->roots[i];

		if (r->n != ca->active && (due == 0 || r->leaves_until + 1 <
		    due))
			due = r->leaves_until + 1;
	}
	return due;
}

/* ---- API JSON ---- */

json_t *
ca_json_time(int64_t t)
{
	char buf[40];

	util_rfc3339(t, buf, sizeof(buf));
	return json_string(buf);
}

json_t *
ca_roots_json(const struct ca *ca)
{
	json_t *roots = json_array();

	for (size_t i = 0; i < ca->n_roots; i++) {
		const struct ca_root *r = &ca->roots[i];
		json_t *inter = json_array();
		char name[64];

		if (r->cross_pem != NULL && ca_root_find(ca, r->cross_by) != NULL)
			json_array_append_new(inter,
			    json_string(r->cross_pem));
		snprintf(name, sizeof(name), "meshshim CA %u", r->n);
		json_array_append_new(roots, json_pack(
		    "{s:s,s:s,s:I,s:s,s:s,s:o,s:o,s:s,s:o,s:b,s:s,s:i,s:I,s:I}",
		    "ID", r->id, "Name", name,
		    "SerialNumber", (json_int_t)r->serial_num,
		    "SigningKeyID", r->key_id,
		    "ExternalTrustDomain", ca->td,
		    "NotBefore", ca_json_time(r->not_before),
		    "NotAfter", ca_json_time(r->not_after),
		    "RootCert", r->pem,
		    "IntermediateCerts", inter,
		    "Active", r->n == ca->active,
		    "PrivateKeyType", "ec", "PrivateKeyBits", 256,
		    "CreateIndex", (json_int_t)r->create_index,
		    "ModifyIndex", (json_int_t)r->modify_index));
	}
	return json_pack("{s:s,s:s,s:o}", "ActiveRootID",
	    ca_active_root_id(ca), "TrustDomain", ca->td, "Roots", roots);
}
