/* ca: the node's certificate authority: roots, rotation, leaves, files.
 *
 * Layout of the directory (every write via util_write_atomic):
 *   meta.json        trust domain, roots (number, indices, the latest
 *                    not_after of the leaves each signed, cross-signer),
 *                    active root, index counter. Written last: it is the
 *                    commit point of a creation, rotation, issue or prune.
 *   roots/<n>.pem    root n, self-signed; roots/<n>.key its key (0600)
 *   cross/<n>.pem    root n's certificate signed by the root before it
 *   leaf/<svc>.pem   a service's leaf; leaf/<svc>.key its key (0600)
 *
 * A CA client (ca.server = false in a cluster) has no root key: its roots
 * (certificates only) come from the cluster store and are cached in
 * client-roots.json; its leaves are signed by a CA server from a CSR
 * (ca_csr_new here, ca_sign_csr there, ca_leaf_install back here). */
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

int
ca_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void
ca_path(const struct ca *ca, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s/", ca->dir);

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < len)
		vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
}

void
ca_root_clear(struct ca_root *r)
{
	if (r->crt != NULL)
		gnutls_x509_crt_deinit(r->crt);
	if (r->key != NULL)
		gnutls_x509_privkey_deinit(r->key);
	free(r->pem);
	free(r->cross_pem);
	memset(r, 0, sizeof(*r));
}

struct ca_root *
ca_root_find(const struct ca *ca, unsigned n)
{
	for (size_t i = 0; i < ca->n_roots; i++)
		if (ca->roots[i].n == n)
			return &ca->roots[i];
	return NULL;
}

struct ca_root *
ca_root_active(const struct ca *ca)
{
	return ca_root_find(ca, ca->active);
}

/* Fill the derived fields of r from r->crt. 0/-1. */
int
ca_root_derive(struct ca_root *r)
{
	unsigned char serial[64];
	size_t slen = sizeof(serial);
	uint64_t v = 0;

	if (cert_fingerprint_hex(r->crt, r->id, sizeof(r->id)) != 0 ||
	    cert_key_id_hex(r->crt, r->key_id, sizeof(r->key_id)) != 0 ||
	    gnutls_x509_crt_get_serial(r->crt, serial, &slen) < 0)
		return -1;
	for (size_t i = slen > 8 ? slen - 8 : 0; i < slen; i++)
		v = (v << 8) | serial[i];
	r->serial_num = (int64_t)(v & INT64_MAX);
	r->not_before = gnutls_x509_crt_get_activation_time(r->crt);
	r->not_after = gnutls_x509_crt_get_expiration_time(r->crt);
	return 0;
}

/* A trust list of ca's roots into *out. 0/-1 with err. */
static int
trust_build(const struct ca *ca, gnutls_x509_trust_list_t *out, char *err,
    size_t errlen)
{
	gnutls_x509_trust_list_t tl;
	int ret;

	if ((ret = gnutls_x509_trust_list_init(&tl, 0)) < 0)
		return ca_errf(err, errlen, "trust list: %s", gnutls_strerror(ret));
	for (size_t i = 0; i < ca->n_roots; i++) {
		gnutls_datum_t d = { (unsigned char *)ca->roots[i].pem,
		    (unsigned)strlen(ca->roots[i].pem) };

		ret = gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL,
		    GNUTLS_X509_FMT_PEM, 0, 0);
		if (ret != 1) {
			gnutls_x509_trust_list_deinit(tl, 1);
			return ca_errf(err, errlen, "adding root %u to the trust "
			    "list: %s", ca->roots[i].n, ret < 0 ?
			    gnutls_strerror(ret) : "not added");
		}
	}
	*out = tl;
	return 0;
}

int
ca_rebuild_trust(struct ca *ca, char *err, size_t errlen)
{
	gnutls_x509_trust_list_t tl;

	if (trust_build(ca, &tl, err, errlen) != 0)
		return -1;
	if (ca->tl != NULL)
		gnutls_x509_trust_list_deinit(ca->tl, 1);
	ca->tl = tl;
	ca->gen++;
	return 0;
}

int
ca_trust_copy(const struct ca *ca, gnutls_x509_trust_list_t *out)
{
	char err[256];

	if (trust_build(ca, out, err, sizeof(err)) != 0) {
		log_err("CA: %s", err);
		return -1;
	}
	return 0;
}

uint64_t
ca_generation(const struct ca *ca)
{
	return ca->gen;
}

/* ---- meta.json ---- */

int
ca_meta_save(struct ca *ca, char *err, size_t errlen)
{
	char path[PATH_MAX];
	json_t *j, *roots;
	char *s;
	int rc;

	if (ca->client)
		return 0;       /* its roots are the cluster's, not kept here */
	roots = json_array();
	for (size_t i = 0; i < ca->n_roots; i++) {
		const struct ca_root *r = &ca->roots[i];

		json_array_append_new(roots, json_pack("{s:I,s:I,s:I,s:I,s:I}",
		    "n", (json_int_t)r->n,
		    "create_index", (json_int_t)r->create_index,
		    "modify_index", (json_int_t)r->modify_index,
		    "leaves_until", (json_int_t)r->leaves_until,
		    "cross_by", (json_int_t)r->cross_by));
	}
	j = json_pack("{s:i,s:s,s:I,s:I,s:I,s:o}",
	    "version", CA_META_VERSION, "trust_domain", ca->td,
	    "active_root", (json_int_t)ca->active,
	    "next_root", (json_int_t)ca->next_root,
	    "index", (json_int_t)ca->index, "roots", roots);
	s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (s == NULL)
		return ca_errf(err, errlen, "encoding meta.json: out of memory");
	ca_path(ca, path, sizeof(path), "meta.json");
	rc = util_write_atomic(path, s, strlen(s), 0600);
	if (rc != 0)
		ca_errf(err, errlen, "%s: write: %s", path, strerror(errno));
	free(s);
	return rc;
}

static int
meta_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *out,
    const char *path, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return ca_errf(err, errlen, "%s: \"%s\" missing or not an integer "
		    "in [%lld, %lld]", path, key, (long long)min,
		    (long long)max);
	*out = json_integer_value(v);
	return 0;
}

/* ---- loading ---- */

char *
ca_read_pem(const char *path, char *err, size_t errlen)
{
	char *s = util_read_file(path, CA_PEM_MAX, NULL);

	if (s == NULL)
		ca_errf(err, errlen, "%s: %s", path, errno == EFBIG ?
		    "larger than 64 KiB" : strerror(errno));
	return s;
}

int
ca_import_crt(const char *path, const char *pem, gnutls_x509_crt_t *out,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem,
	    (unsigned)strlen(pem) };
	int ret;

	if ((ret = gnutls_x509_crt_init(out)) < 0)
		return ca_errf(err, errlen, "%s: %s", path, gnutls_strerror(ret));
	if ((ret = gnutls_x509_crt_import(*out, &d, GNUTLS_X509_FMT_PEM)) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
		return ca_errf(err, errlen, "%s: not a valid certificate (%s); "
		    "truncated or corrupt?", path, gnutls_strerror(ret));
	}
	return 0;
}

int
ca_import_key(const char *path, const char *pem, gnutls_x509_privkey_t *out,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem,
	    (unsigned)strlen(pem) };
	int ret;

	if ((ret = gnutls_x509_privkey_init(out)) < 0)
		return ca_errf(err, errlen, "%s: %s", path, gnutls_strerror(ret));
	ret = gnutls_x509_privkey_import(*out, &d, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		gnutls_x509_privkey_deinit(*out);
		*out = NULL;
		return ca_errf(err, errlen, "%s: not a valid private key (%s); "
		    "truncated or corrupt?", path, gnutls_strerror(ret));
	}
	return 0;
}

/* 1 if key is the private key of crt. */
int
ca_key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);

	return gnutls_x509_crt_get_key_id(crt, 0, a, &alen) == 0 &&
	    gnutls_x509_privkey_get_key_id(key, 0, b, &blen) == 0 &&
	    alen == blen && memcmp(a, b, alen) == 0;
}

static int
load_root(struct ca *ca, struct ca_root *r, char *err, size_t errlen)
{
	char path[PATH_MAX], uri[SPIFFE_ID_MAX], kpath[PATH_MAX];
	char *kpem = NULL;
	size_t size = sizeof(uri) - 1;
	unsigned type = 0, crit = 0, isca = 0;
	struct stat st;
	int ret;

	ca_path(ca, path, sizeof(path), "roots/%u.pem", r->n);
	if ((r->pem = ca_read_pem(path, err, errlen)) == NULL ||
	    ca_import_crt(path, r->pem, &r->crt, err, errlen) != 0)
		return -1;
	if (gnutls_x509_crt_get_basic_constraints(r->crt, &crit, &isca,
	    NULL) <= 0 || isca == 0)
		return ca_errf(err, errlen, "%s: not a CA certificate", path);
	ret = gnutls_x509_crt_get_subject_alt_name2(r->crt, 0, uri, &size,
	    &type, &crit);
	if (ret != GNUTLS_SAN_URI || strncmp(uri, "spiffe://", 9) != 0 ||
	    strcmp(uri + 9, ca->td) != 0)
		return ca_errf(err, errlen, "%s: not a root of trust domain %s",
		    path, ca->td);
	if (ca_root_derive(r) != 0)
		return ca_errf(err, errlen, "%s: unreadable fields", path);
	ca_path(ca, kpath, sizeof(kpath), "roots/%u.key", r->n);
	if ((kpem = ca_read_pem(kpath, err, errlen)) == NULL)
		return -1;
	ret = ca_import_key(kpath, kpem, &r->key, err, errlen);
	gnutls_memset(kpem, 0, strlen(kpem));
	free(kpem);
	if (ret != 0)
		return -1;
	if (!ca_key_matches(r->crt, r->key))
		return ca_errf(err, errlen, "%s: not the key of %s", kpath, path);
	if (stat(kpath, &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("%s: mode %03o, should be 0600", kpath,
		    (unsigned)(st.st_mode & 0777));
	if (r->cross_by != 0) {
		gnutls_x509_crt_t x = NULL;
		char xid[128];

		ca_path(ca, path, sizeof(path), "cross/%u.pem", r->n);
		if ((r->cross_pem = ca_read_pem(path, err, errlen)) == NULL ||
		    ca_import_crt(path, r->cross_pem, &x, err, errlen) != 0)
			return -1;
		ret = cert_key_id_hex(x, xid, sizeof(xid)) == 0 &&
		    strcmp(xid, r->key_id) == 0 && ca_key_matches(x, r->key);
		gnutls_x509_crt_deinit(x);
		if (!ret)
			return ca_errf(err, errlen, "%s: not a certificate of the "
			    "key of root %u", path, r->n);
	}
	return 0;
}

static int
load_meta(struct ca *ca, const char *path, const char *text, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *j, *roots, *v;
	int64_t x = 0;
	size_t i;
	int rc = -1;

	if ((j = json_loads(text, 0, &je)) == NULL)
		return ca_errf(err, errlen, "%s:%d: malformed JSON: %s; truncated "
		    "or corrupt?", path, je.line, je.text);
	if (!json_is_object(j)) {
		ca_errf(err, errlen, "%s: not a JSON object", path);
		goto out;
	}
	if (meta_int(j, "version", CA_META_VERSION, CA_META_VERSION, &x,
	    path, err, errlen) != 0)
		goto out;
	v = json_object_get(j, "trust_domain");
	if (!json_is_string(v) ||
	    !spiffe_valid_trust_domain(json_string_value(v))) {
		ca_errf(err, errlen, "%s: \"trust_domain\" missing or invalid",
		    path);
		goto out;
	}
	util_strlcpy(ca->td, json_string_value(v), sizeof(ca->td));
	if (meta_int(j, "active_root", 1, 1000000, &x, path, err, errlen))
		goto out;
	ca->active = (unsigned)x;
	if (meta_int(j, "next_root", 2, 1000001, &x, path, err, errlen))
		goto out;
	ca->next_root = (unsigned)x;
	if (meta_int(j, "index", 1, INT64_MAX, &ca->index, path, err, errlen))
		goto out;
	roots = json_object_get(j, "roots");
	if (!json_is_array(roots) || json_array_size(roots) == 0 ||
	    json_array_size(roots) > CA_ROOTS_MAX) {
		ca_errf(err, errlen, "%s: \"roots\" must be a list of 1 to %d "
		    "roots", path, CA_ROOTS_MAX);
		goto out;
	}
	ca->roots = calloc(json_array_size(roots), sizeof(*ca->roots));
	if (ca->roots == NULL) {
		ca_errf(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(roots, i, v) {
		struct ca_root *r = &ca->roots[i];

		if (meta_int(v, "n", 1, ca->next_root - 1, &x, path, err,
		    errlen) != 0)
			goto out;
		r->n = (unsigned)x;
		if (i > 0 && r->n <= ca->roots[i - 1].n) {
			ca_errf(err, errlen, "%s: roots out of order", path);
			goto out;
		}
		ca->n_roots = i + 1;
		if (meta_int(v, "create_index", 0, INT64_MAX, &r->create_index,
		    path, err, errlen) != 0 ||
		    meta_int(v, "modify_index", 0, INT64_MAX, &r->modify_index,
		    path, err, errlen) != 0 ||
		    meta_int(v, "leaves_until", 0, INT64_MAX, &r->leaves_until,
		    path, err, errlen) != 0 ||
		    meta_int(v, "cross_by", 0, r->n - 1, &x, path, err,
		    errlen) != 0)
			goto out;
		r->cross_by = (unsigned)x;
	}
	if (ca_root_active(ca) == NULL) {
		ca_errf(err, errlen, "%s: active_root %u is not in roots", path,
		    ca->active);
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* Does dir hold anything (other than . and ..)? -1 if unreadable. */
int
ca_dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			found = 1;
	closedir(d);
	return found;
}

static int
ca_create(struct ca *ca, char *err, size_t errlen)
{
	char uuid[64], path[PATH_MAX];
	static const char *const sub[] = { "roots", "cross", "leaf" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(sub); i++) {
		ca_path(ca, path, sizeof(path), "%s", sub[i]);
		if (util_mkdirs(path, 0700) != 0)
			return ca_errf(err, errlen, "%s: mkdir: %s", path,
			    strerror(errno));
	}
	if (util_uuid4(uuid, sizeof(uuid)) != 0)
		return ca_errf(err, errlen, "no randomness for the trust domain");
	snprintf(ca->td, sizeof(ca->td), "%s.mesh", uuid);
	if ((ca->roots = calloc(1, sizeof(*ca->roots))) == NULL)
		return ca_errf(err, errlen, "out of memory");
	ca->next_root = 1;
	if (ca_root_make(ca, &ca->roots[0], NULL, err, errlen) != 0)
		return -1;
	ca->n_roots = 1;
	ca->active = 1;
	ca->next_root = 2;
	ca->index = 1;
	ca->roots[0].create_index = ca->roots[0].modify_index = 1;
	if (ca_root_write(ca, &ca->roots[0], err, errlen) != 0 ||
	    ca_meta_save(ca, err, errlen) != 0)
		return -1;
	log_info("CA: created trust domain %s, root %s", ca->td,
	    ca->roots[0].id);
	return 0;
}

int
ca_open(struct ca **out, const char *dir, long root_ttl, char *err,
    size_t errlen)
{
	struct ca *ca;
	char path[PATH_MAX], *text;
	int has;

	*out = NULL;
	if (root_ttl <= CA_BACKDATE)
		return ca_errf(err, errlen, "ca.root_ttl %ld s is too short",
		    root_ttl);
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return ca_errf(err, errlen, "out of memory");
	ca->root_ttl = root_ttl;
	if (util_strlcpy(ca->dir, dir, sizeof(ca->dir)) >= sizeof(ca->dir)) {
		ca_errf(err, errlen, "%s: path too long", dir);
		goto err;
	}
	ca_path(ca, path, sizeof(path), "meta.json");
	text = util_read_file(path, CA_META_MAX, NULL);
	if (text == NULL && errno != ENOENT) {
		ca_errf(err, errlen, "%s: %s", path, errno == EFBIG ?
		    "larger than 1 MiB" : strerror(errno));
		goto err;
	}
	if (text == NULL) {
		/* First start, unless root files survive without their
		 * meta.json: never mint a second root over them. */
		ca_path(ca, path, sizeof(path), "roots");
		if ((has = ca_dir_has_entries(path)) != 0) {
			ca_errf(err, errlen, "%s/meta.json: missing, but %s %s; "
			    "refusing to create a new root (restore meta.json "
			    "or move %s away)", ca->dir, path, has < 0 ?
			    "is unreadable" : "holds root files", ca->dir);
			goto err;
		}
		if (ca_create(ca, err, errlen) != 0)
			goto err;
	} else {
		int rc = load_meta(ca, path, text, err, errlen);

		free(text);
		if (rc != 0)
			goto err;
		for (size_t i = 0; i < ca->n_roots; i++)
			if (load_root(ca, &ca->roots[i], err, errlen) != 0)
				goto err;
	}
	if (ca_rebuild_trust(ca, err, errlen) != 0)
		goto err;
	*out = ca;
	return 0;
err:
	ca_free(ca);
	return -1;
}

void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	for (size_t i = 0; i < ca->n_leaves; i++)
		ca_leaf_unref(ca->leaves[i]);
	free(ca->leaves);
	for (size_t i = 0; i < ca->n_roots; i++)
		ca_root_clear(&ca->roots[i]);
	free(ca->roots);
	if (ca->tl != NULL)
		gnutls_x509_trust_list_deinit(ca->tl, 1);
	free(ca);
}

const char *
ca_trust_domain(const struct ca *ca)
{
	return ca->td;
}

const char *
ca_active_root_id(const struct ca *ca)
{
	const struct ca_root *r = ca_root_active(ca);

	return r != NULL ? r->id : "";
}

gnutls_x509_trust_list_t
ca_trust_list(const struct ca *ca)
{
	return ca->tl;
}
