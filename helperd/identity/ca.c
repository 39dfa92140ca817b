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
#include "helperd/identity/ca.h"

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

#define CA_META_VERSION 1
#define CA_PEM_MAX      (64 * 1024)
#define CA_META_MAX     (1024 * 1024)
#define CA_ROOTS_MAX    64
#define CA_BACKDATE     60      /* seconds of clock skew tolerated */

struct ca_root {
	unsigned n;
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char *pem;
	char *cross_pem;        /* this root signed by root cross_by */
	unsigned cross_by;      /* 0 = none */
	char id[128];           /* SHA-1 fingerprint, "aa:bb:..." */
	char key_id[128];       /* subject key ID, "aa:bb:..." */
	int64_t serial_num;     /* low 63 bits of the serial, for the API */
	int64_t not_before;
	int64_t not_after;
	int64_t leaves_until;   /* latest not_after of a leaf it signed */
	int64_t create_index;
	int64_t modify_index;
};

struct ca {
	char dir[PATH_MAX - 64];
	char td[128];
	long root_ttl;
	struct ca_root *roots;  /* ascending n */
	size_t n_roots;
	unsigned active;        /* n of the active root */
	unsigned next_root;     /* n of the next root; never reused */
	int64_t index;          /* CreateIndex/ModifyIndex counter */
	gnutls_x509_trust_list_t tl;
	uint64_t gen;           /* bumped by every new trust list */
	struct ca_leaf **leaves; /* current leaf per service (one ref each) */
	size_t n_leaves;
	int client;             /* no root key: leaves come from a server */
};

static int
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void
path_of(const struct ca *ca, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
path_of(const struct ca *ca, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s/", ca->dir);

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < len)
		vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
}

static void
root_clear(struct ca_root *r)
{
	if (r->crt != NULL)
		gnutls_x509_crt_deinit(r->crt);
	if (r->key != NULL)
		gnutls_x509_privkey_deinit(r->key);
	free(r->pem);
	free(r->cross_pem);
	memset(r, 0, sizeof(*r));
}

static struct ca_root *
root_find(const struct ca *ca, unsigned n)
{
	for (size_t i = 0; i < ca->n_roots; i++)
		if (ca->roots[i].n == n)
			return &ca->roots[i];
	return NULL;
}

static struct ca_root *
root_active(const struct ca *ca)
{
	return root_find(ca, ca->active);
}

/* Fill the derived fields of r from r->crt. 0/-1. */
static int
root_derive(struct ca_root *r)
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
		return errf(err, errlen, "trust list: %s", gnutls_strerror(ret));
	for (size_t i = 0; i < ca->n_roots; i++) {
		gnutls_datum_t d = { (unsigned char *)ca->roots[i].pem,
		    (unsigned)strlen(ca->roots[i].pem) };

		ret = gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL,
		    GNUTLS_X509_FMT_PEM, 0, 0);
		if (ret != 1) {
			gnutls_x509_trust_list_deinit(tl, 1);
			return errf(err, errlen, "adding root %u to the trust "
			    "list: %s", ca->roots[i].n, ret < 0 ?
			    gnutls_strerror(ret) : "not added");
		}
	}
	*out = tl;
	return 0;
}

static int
rebuild_trust(struct ca *ca, char *err, size_t errlen)
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

static int
meta_save(struct ca *ca, char *err, size_t errlen)
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
		return errf(err, errlen, "encoding meta.json: out of memory");
	path_of(ca, path, sizeof(path), "meta.json");
	rc = util_write_atomic(path, s, strlen(s), 0600);
	if (rc != 0)
		errf(err, errlen, "%s: write: %s", path, strerror(errno));
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
		return errf(err, errlen, "%s: \"%s\" missing or not an integer "
		    "in [%lld, %lld]", path, key, (long long)min,
		    (long long)max);
	*out = json_integer_value(v);
	return 0;
}

/* ---- loading ---- */

static char *
read_pem(const char *path, char *err, size_t errlen)
{
	char *s = util_read_file(path, CA_PEM_MAX, NULL);

	if (s == NULL)
		errf(err, errlen, "%s: %s", path, errno == EFBIG ?
		    "larger than 64 KiB" : strerror(errno));
	return s;
}

static int
import_crt(const char *path, const char *pem, gnutls_x509_crt_t *out,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem,
	    (unsigned)strlen(pem) };
	int ret;

	if ((ret = gnutls_x509_crt_init(out)) < 0)
		return errf(err, errlen, "%s: %s", path, gnutls_strerror(ret));
	if ((ret = gnutls_x509_crt_import(*out, &d, GNUTLS_X509_FMT_PEM)) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
		return errf(err, errlen, "%s: not a valid certificate (%s); "
		    "truncated or corrupt?", path, gnutls_strerror(ret));
	}
	return 0;
}

static int
import_key(const char *path, const char *pem, gnutls_x509_privkey_t *out,
    char *err, size_t errlen)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem,
	    (unsigned)strlen(pem) };
	int ret;

	if ((ret = gnutls_x509_privkey_init(out)) < 0)
		return errf(err, errlen, "%s: %s", path, gnutls_strerror(ret));
	ret = gnutls_x509_privkey_import(*out, &d, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		gnutls_x509_privkey_deinit(*out);
		*out = NULL;
		return errf(err, errlen, "%s: not a valid private key (%s); "
		    "truncated or corrupt?", path, gnutls_strerror(ret));
	}
	return 0;
}

/* 1 if key is the private key of crt. */
static int
key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
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

	path_of(ca, path, sizeof(path), "roots/%u.pem", r->n);
	if ((r->pem = read_pem(path, err, errlen)) == NULL ||
	    import_crt(path, r->pem, &r->crt, err, errlen) != 0)
		return -1;
	if (gnutls_x509_crt_get_basic_constraints(r->crt, &crit, &isca,
	    NULL) <= 0 || isca == 0)
		return errf(err, errlen, "%s: not a CA certificate", path);
	ret = gnutls_x509_crt_get_subject_alt_name2(r->crt, 0, uri, &size,
	    &type, &crit);
	if (ret != GNUTLS_SAN_URI || strncmp(uri, "spiffe://", 9) != 0 ||
	    strcmp(uri + 9, ca->td) != 0)
		return errf(err, errlen, "%s: not a root of trust domain %s",
		    path, ca->td);
	if (root_derive(r) != 0)
		return errf(err, errlen, "%s: unreadable fields", path);
	path_of(ca, kpath, sizeof(kpath), "roots/%u.key", r->n);
	if ((kpem = read_pem(kpath, err, errlen)) == NULL)
		return -1;
	ret = import_key(kpath, kpem, &r->key, err, errlen);
	gnutls_memset(kpem, 0, strlen(kpem));
	free(kpem);
	if (ret != 0)
		return -1;
	if (!key_matches(r->crt, r->key))
		return errf(err, errlen, "%s: not the key of %s", kpath, path);
	if (stat(kpath, &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("%s: mode %03o, should be 0600", kpath,
		    (unsigned)(st.st_mode & 0777));
	if (r->cross_by != 0) {
		gnutls_x509_crt_t x = NULL;
		char xid[128];

		path_of(ca, path, sizeof(path), "cross/%u.pem", r->n);
		if ((r->cross_pem = read_pem(path, err, errlen)) == NULL ||
		    import_crt(path, r->cross_pem, &x, err, errlen) != 0)
			return -1;
		ret = cert_key_id_hex(x, xid, sizeof(xid)) == 0 &&
		    strcmp(xid, r->key_id) == 0 && key_matches(x, r->key);
		gnutls_x509_crt_deinit(x);
		if (!ret)
			return errf(err, errlen, "%s: not a certificate of the "
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
		return errf(err, errlen, "%s:%d: malformed JSON: %s; truncated "
		    "or corrupt?", path, je.line, je.text);
	if (!json_is_object(j)) {
		errf(err, errlen, "%s: not a JSON object", path);
		goto out;
	}
	if (meta_int(j, "version", CA_META_VERSION, CA_META_VERSION, &x,
	    path, err, errlen) != 0)
		goto out;
	v = json_object_get(j, "trust_domain");
	if (!json_is_string(v) ||
	    !spiffe_valid_trust_domain(json_string_value(v))) {
		errf(err, errlen, "%s: \"trust_domain\" missing or invalid",
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
		errf(err, errlen, "%s: \"roots\" must be a list of 1 to %d "
		    "roots", path, CA_ROOTS_MAX);
		goto out;
	}
	ca->roots = calloc(json_array_size(roots), sizeof(*ca->roots));
	if (ca->roots == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(roots, i, v) {
		struct ca_root *r = &ca->roots[i];

		if (meta_int(v, "n", 1, ca->next_root - 1, &x, path, err,
		    errlen) != 0)
			goto out;
		r->n = (unsigned)x;
		if (i > 0 && r->n <= ca->roots[i - 1].n) {
			errf(err, errlen, "%s: roots out of order", path);
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
	if (root_active(ca) == NULL) {
		errf(err, errlen, "%s: active_root %u is not in roots", path,
		    ca->active);
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* Does dir hold anything (other than . and ..)? -1 if unreadable. */
static int
dir_has_entries(const char *path)
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

/* ---- roots ---- */

/* A new root numbered ca->next_root; cross-signed by prev if given. */
static int
root_make(struct ca *ca, struct ca_root *r, const struct ca_root *prev,
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
			errf(err, errlen, "exporting the cross-signed root");
			goto err;
		}
	}
	if ((r->pem = cert_pem(r->crt)) == NULL || root_derive(r) != 0) {
		errf(err, errlen, "exporting the new root");
		goto err;
	}
	return 0;
err:
	root_clear(r);
	return -1;
}

/* Write root r's files (key first; meta.json, written later, commits). */
static int
root_write(struct ca *ca, const struct ca_root *r, char *err, size_t errlen)
{
	char path[PATH_MAX], *kpem;
	int rc;

	if ((kpem = cert_key_pem(r->key)) == NULL)
		return errf(err, errlen, "exporting root key");
	path_of(ca, path, sizeof(path), "roots/%u.key", r->n);
	rc = util_write_atomic(path, kpem, strlen(kpem), 0600);
	gnutls_memset(kpem, 0, strlen(kpem));
	free(kpem);
	if (rc == 0) {
		path_of(ca, path, sizeof(path), "roots/%u.pem", r->n);
		rc = util_write_atomic(path, r->pem, strlen(r->pem), 0644);
	}
	if (rc == 0 && r->cross_pem != NULL) {
		path_of(ca, path, sizeof(path), "cross/%u.pem", r->n);
		rc = util_write_atomic(path, r->cross_pem,
		    strlen(r->cross_pem), 0644);
	}
	if (rc != 0)
		return errf(err, errlen, "%s: write: %s", path,
		    strerror(errno));
	return 0;
}

static int
ca_create(struct ca *ca, char *err, size_t errlen)
{
	char uuid[64], path[PATH_MAX];
	static const char *const sub[] = { "roots", "cross", "leaf" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(sub); i++) {
		path_of(ca, path, sizeof(path), "%s", sub[i]);
		if (util_mkdirs(path, 0700) != 0)
			return errf(err, errlen, "%s: mkdir: %s", path,
			    strerror(errno));
	}
	if (util_uuid4(uuid, sizeof(uuid)) != 0)
		return errf(err, errlen, "no randomness for the trust domain");
	snprintf(ca->td, sizeof(ca->td), "%s.mesh", uuid);
	if ((ca->roots = calloc(1, sizeof(*ca->roots))) == NULL)
		return errf(err, errlen, "out of memory");
	ca->next_root = 1;
	if (root_make(ca, &ca->roots[0], NULL, err, errlen) != 0)
		return -1;
	ca->n_roots = 1;
	ca->active = 1;
	ca->next_root = 2;
	ca->index = 1;
	ca->roots[0].create_index = ca->roots[0].modify_index = 1;
	if (root_write(ca, &ca->roots[0], err, errlen) != 0 ||
	    meta_save(ca, err, errlen) != 0)
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
		return errf(err, errlen, "ca.root_ttl %ld s is too short",
		    root_ttl);
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return errf(err, errlen, "out of memory");
	ca->root_ttl = root_ttl;
	if (util_strlcpy(ca->dir, dir, sizeof(ca->dir)) >= sizeof(ca->dir)) {
		errf(err, errlen, "%s: path too long", dir);
		goto err;
	}
	path_of(ca, path, sizeof(path), "meta.json");
	text = util_read_file(path, CA_META_MAX, NULL);
	if (text == NULL && errno != ENOENT) {
		errf(err, errlen, "%s: %s", path, errno == EFBIG ?
		    "larger than 1 MiB" : strerror(errno));
		goto err;
	}
	if (text == NULL) {
		/* First start, unless root files survive without their
		 * meta.json: never mint a second root over them. */
		path_of(ca, path, sizeof(path), "roots");
		if ((has = dir_has_entries(path)) != 0) {
			errf(err, errlen, "%s/meta.json: missing, but %s %s; "
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
	if (rebuild_trust(ca, err, errlen) != 0)
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
		root_clear(&ca->roots[i]);
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
	const struct ca_root *r = root_active(ca);

	return r != NULL ? r->id : "";
}

gnutls_x509_trust_list_t
ca_trust_list(const struct ca *ca)
{
	return ca->tl;
}

int
ca_rotate(struct ca *ca, char *err, size_t errlen)
{
	struct ca_root *nr, *old;
	struct ca_root r;
	unsigned prev_active = ca->active;
	int64_t prev_index = ca->index, prev_modify;

	if (ca->client)
		return errf(err, errlen, "this node is not a CA server "
		    "(ca.server = false): rotate on a CA server");
	if (ca->n_roots >= CA_ROOTS_MAX)
		return errf(err, errlen, "%d roots still trusted; wait for "
		    "old leaves to expire", CA_ROOTS_MAX);
	if (root_make(ca, &r, root_active(ca), err, errlen) != 0)
		return -1;
	if (root_write(ca, &r, err, errlen) != 0) {
		root_clear(&r);
		return -1;
	}
	nr = realloc(ca->roots, (ca->n_roots + 1) * sizeof(*nr));
	if (nr == NULL) {
		root_clear(&r);
		return errf(err, errlen, "out of memory");
	}
	ca->roots = nr;
	old = root_active(ca);
	prev_modify = old->modify_index;
	old->modify_index = ++ca->index;
	r.create_index = r.modify_index = ++ca->index;
	ca->roots[ca->n_roots++] = r;
	ca->active = r.n;
	ca->next_root++;
	if (meta_save(ca, err, errlen) != 0 ||
	    rebuild_trust(ca, err, errlen) != 0) {
		root_clear(&ca->roots[--ca->n_roots]);
		ca->active = prev_active;
		ca->next_root--;
		ca->index = prev_index;
		root_active(ca)->modify_index = prev_modify;
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
		if (meta_save(ca, err, sizeof(err)) != 0) {
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
		path_of(ca, path, sizeof(path), "roots/%u.key", r.n);
		unlink(path);
		path_of(ca, path, sizeof(path), "roots/%u.pem", r.n);
		unlink(path);
		path_of(ca, path, sizeof(path), "cross/%u.pem", r.n);
		unlink(path);
		root_clear(&r);
		dropped++;
	}
	if (dropped > 0 && rebuild_trust(ca, err, sizeof(err)) != 0)
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
static struct ca_root *
root_of_leaf(const struct ca *ca, gnutls_x509_crt_t crt)
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

static struct ca_leaf *
leaf_build(struct ca *ca, gnutls_x509_crt_t crt, const char *key_pem,
    const struct ca_root *root, const char *service, char *err,
    size_t errlen)
{
	struct ca_leaf *l;
	gnutls_datum_t cd, kd;
	size_t size;
	unsigned type = 0, crit = 0;
	int ret;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	l->refs = 1;
	util_strlcpy(l->service, service, sizeof(l->service));
	util_strlcpy(l->root_id, root->id, sizeof(l->root_id));
	size = sizeof(l->spiffe) - 1;
	ret = gnutls_x509_crt_get_subject_alt_name2(crt, 0, l->spiffe, &size,
	    &type, &crit);
	if (ret != GNUTLS_SAN_URI) {
		errf(err, errlen, "leaf of %s has no URI SAN", service);
		goto err;
	}
	l->spiffe[size] = '\0';
	if (cert_serial_hex(crt, l->serial, sizeof(l->serial)) != 0 ||
	    (l->cert_pem = cert_pem(crt)) == NULL ||
	    (l->key_pem = strdup(key_pem)) == NULL) {
		errf(err, errlen, "exporting the leaf of %s", service);
		goto err;
	}
	l->not_before = gnutls_x509_crt_get_activation_time(crt);
	l->not_after = gnutls_x509_crt_get_expiration_time(crt);
	l->renew_at = leaf_renew_at(crt, l->not_before, l->not_after);
	/* Serve the cross-signed root while its signer is trusted, so that
	 * peers that still only trust the previous root verify us. */
	if (root->cross_pem != NULL && root_find(ca, root->cross_by) != NULL) {
		size = strlen(l->cert_pem) + strlen(root->cross_pem) + 1;
		if ((l->chain_pem = malloc(size)) != NULL)
			snprintf(l->chain_pem, size, "%s%s", l->cert_pem,
			    root->cross_pem);
	} else
		l->chain_pem = strdup(l->cert_pem);
	if (l->chain_pem == NULL) {
		errf(err, errlen, "out of memory");
		goto err;
	}
	cd.data = (unsigned char *)l->chain_pem;
	cd.size = (unsigned)strlen(l->chain_pem);
	kd.data = (unsigned char *)l->key_pem;
	kd.size = (unsigned)strlen(l->key_pem);
	if ((ret = gnutls_certificate_allocate_credentials(&l->cred)) < 0 ||
	    (ret = gnutls_certificate_set_x509_key_mem2(l->cred, &cd, &kd,
	    GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		errf(err, errlen, "credentials for %s: %s", service,
		    gnutls_strerror(ret));
		goto err;
	}
	return l;
err:
	ca_leaf_unref(l);
	return NULL;
}

/* Keep leaf as the current one of its service (the cache holds a ref). */
static void
cache_put(struct ca *ca, struct ca_leaf *leaf)
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

static int
check_names(const char *dc, const char *service, char *err, size_t errlen)
{
	if (!spiffe_valid_name(service))
		return errf(err, errlen, "invalid service name \"%.64s\"",
		    service != NULL ? service : "");
	if (!spiffe_valid_name(dc))
		return errf(err, errlen, "invalid datacenter name \"%.64s\"",
		    dc != NULL ? dc : "");
	return 0;
}
/* Keep a leaf on disk (key 0600 first, then the certificate). A failure
 * only costs a new leaf at the next start, so it is logged, not fatal. */
static void
leaf_store(struct ca *ca, const char *service, const char *key_pem,
    const char *cert_pem)
{
	char path[PATH_MAX];

	path_of(ca, path, sizeof(path), "leaf");
	if (util_mkdirs(path, 0700) != 0)
		log_warn("CA: %s: mkdir: %s", path, strerror(errno));
	path_of(ca, path, sizeof(path), "leaf/%s.key", service);
	if (util_write_atomic(path, key_pem, strlen(key_pem), 0600) == 0) {
		path_of(ca, path, sizeof(path), "leaf/%s.pem", service);
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
static void
leaf_spec(struct cert_spec *spec, char *dn, size_t dnlen, const char **uris,
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
	struct ca_root *root = root_active(ca);
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	struct ca_leaf *leaf = NULL;
	char uri[SPIFFE_ID_MAX], dn[128], *kpem = NULL;
	const char *uris[1] = { uri };
	struct cert_spec spec;
	int64_t now = time(NULL), prev_until;

	if (ca->client || root == NULL || root->key == NULL) {
		errf(err, errlen, "this node is not a CA server: the "
		    "certificate of %s is requested from one", service);
		return NULL;
	}
	prev_until = root->leaves_until;
	if (check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ttl <= 0 || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		errf(err, errlen, "cannot issue for %s: bad ttl or name", service);
		return NULL;
	}
	leaf_spec(&spec, dn, sizeof(dn), uris, service, now, ttl, root);
	if (cert_key_generate(&key, err, errlen) != 0 ||
	    cert_make(&spec, key, root->crt, root->key, &crt, err,
	    errlen) != 0)
		goto out;
	if ((kpem = cert_key_pem(key)) == NULL) {
		errf(err, errlen, "exporting the key of %s", service);
		goto out;
	}
	if ((leaf = leaf_build(ca, crt, kpem, root, service, err,
	    errlen)) == NULL)
		goto out;
	/* Record first that this root has a leaf until not_after: pruning
	 * must never drop a root under a leaf that exists. */
	if (leaf->not_after > root->leaves_until) {
		root->leaves_until = leaf->not_after;
		if (meta_save(ca, err, errlen) != 0) {
			root->leaves_until = prev_until;
			ca_leaf_unref(leaf);
			leaf = NULL;
			goto out;
		}
	}
	leaf_store(ca, service, kpem, leaf->cert_pem);
	cache_put(ca, leaf);
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

	path_of(ca, ppath, sizeof(ppath), "leaf/%s.pem", service);
	path_of(ca, kpath, sizeof(kpath), "leaf/%s.key", service);
	if (access(ppath, F_OK) != 0 && errno == ENOENT)
		return NULL;
	if ((pem = read_pem(ppath, why, sizeof(why))) == NULL ||
	    (kpem = read_pem(kpath, why, sizeof(why))) == NULL ||
	    import_crt(ppath, pem, &crt, why, sizeof(why)) != 0 ||
	    import_key(kpath, kpem, &key, why, sizeof(why)) != 0)
		goto bad;
	if (!key_matches(crt, key)) {
		errf(why, sizeof(why), "%s: not the key of %s", kpath, ppath);
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
	    (root = root_of_leaf(ca, crt)) == NULL)
		goto out;       /* other dc/ttl, or due: renew */
	if ((leaf = leaf_build(ca, crt, kpem, root, service, why,
	    sizeof(why))) == NULL)
		goto bad;
	if (na > root->leaves_until) {
		root->leaves_until = na;
		if (meta_save(ca, why, sizeof(why)) != 0)
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

	if (check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ca->client && ca->td[0] == '\0') {
		errf(err, errlen, "no certificate for %s yet: the cluster's CA "
		    "roots are not known yet", service);
		return NULL;
	}
	if (ttl <= 0 || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		errf(err, errlen, "cannot issue for %s: bad ttl or name", service);
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
		cache_put(ca, leaf);
		return leaf;
	}
	if (ca->client) {
		errf(err, errlen, "no certificate for %s yet: waiting for a CA "
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
		return errf(why, whylen, "no trusted roots yet");
	if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) !=
	    GNUTLS_CRT_X509)
		return errf(why, whylen, "peer certificate is not X.509");
	chain = gnutls_certificate_get_peers(session, &n);
	if (chain == NULL || n == 0)
		return errf(why, whylen, "peer sent no certificate");
	/* The client side names the service it dialled; the server side
	 * accepts any mesh service. */
	return cert_verify_chain(tl, td, chain, n, time(NULL),
	    expected_service != NULL ? CERT_PEER_IS_SERVER :
	    CERT_PEER_IS_CLIENT, expected_service, service, servicelen,
	    spiffe, spiffelen, why, whylen);
}

/* ---- API JSON ---- */

static json_t *
json_time(int64_t t)
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

		if (r->cross_pem != NULL && root_find(ca, r->cross_by) != NULL)
			json_array_append_new(inter,
			    json_string(r->cross_pem));
		snprintf(name, sizeof(name), "meshshim CA %u", r->n);
		json_array_append_new(roots, json_pack(
		    "{s:s,s:s,s:I,s:s,s:s,s:o,s:o,s:s,s:o,s:b,s:s,s:i,s:I,s:I}",
		    "ID", r->id, "Name", name,
		    "SerialNumber", (json_int_t)r->serial_num,
		    "SigningKeyID", r->key_id,
		    "ExternalTrustDomain", ca->td,
		    "NotBefore", json_time(r->not_before),
		    "NotAfter", json_time(r->not_after),
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
	    "ValidAfter", json_time(leaf->not_before),
	    "ValidBefore", json_time(leaf->not_after),
	    "CreateIndex", (json_int_t)leaf->not_before,
	    "ModifyIndex", (json_int_t)leaf->not_before);
}

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
		return errf(err, errlen, "CA roots: not {TrustDomain, "
		    "ActiveRootID, Roots: [...]}");
	}
	if ((v = calloc(json_array_size(arr), sizeof(*v))) == NULL)
		goto oom;
	json_array_foreach(arr, i, e) {
		const char *pem = json_string_value(json_object_get(e,
		    "RootCert"));
		struct ca_root *r = &v[n];

		if (pem == NULL || strlen(pem) > CA_PEM_MAX ||
		    import_crt("CA roots", pem, &r->crt, err, errlen) != 0)
			goto fail;
		const char *xp = json_string_value(json_array_get(
		    json_object_get(e, "IntermediateCerts"), 0));

		n++;
		r->n = (unsigned)n;
		if ((r->pem = strdup(pem)) == NULL || root_derive(r) != 0)
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
		root_clear(&ca->roots[i]);
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
	if (rebuild_trust(ca, err, errlen) != 0)
		return -1;
	if (save) {
		path_of(ca, path, sizeof(path), "client-roots.json");
		if (util_write_atomic(path, doc, strlen(doc), 0644) != 0)
			log_warn("CA: %s: write: %s", path, strerror(errno));
	}
	return 0;
oom:
	errf(err, errlen, "out of memory");
fail:
	for (i = 0; i < n + 1 && v != NULL && i < json_array_size(arr); i++)
		root_clear(&v[i]);
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
		return errf(err, errlen, "out of memory");
	ca->client = 1;
	ca->root_ttl = 87600L * 3600;
	if (util_strlcpy(ca->dir, dir, sizeof(ca->dir)) >= sizeof(ca->dir)) {
		errf(err, errlen, "%s: path too long", dir);
		goto err;
	}
	if (util_mkdirs(dir, 0700) != 0) {
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		goto err;
	}
	path_of(ca, path, sizeof(path), "roots");
	if (dir_has_entries(path) != 0)
		log_warn("CA: %s holds root files, but this node is a CA "
		    "client (ca.server = false) and does not use them: remove "
		    "them", path);
	path_of(ca, path, sizeof(path), "client-roots.json");
	if ((text = util_read_file(path, CA_META_MAX, NULL)) != NULL) {
		if (ca_set_roots(ca, text, 0, err, errlen) != 0)
			log_warn("CA: %s: %s (waiting for the cluster's)", path,
			    err);
		free(text);
	}
	if (ca->tl == NULL && rebuild_trust(ca, err, errlen) != 0)
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
	if (check_names(dc, service, err, errlen) != 0)
		return NULL;
	if (ca->td[0] == '\0' || spiffe_format(uri, sizeof(uri), ca->td, dc,
	    service) != 0) {
		errf(err, errlen, "no trust domain yet (CA roots not known)");
		return NULL;
	}
	snprintf(dn, sizeof(dn), "CN=%s", service);
	if (cert_key_generate(&key, err, errlen) != 0)
		return NULL;
	if ((csr = cert_csr_make(dn, uri, key, err, errlen)) != NULL &&
	    (*key_pem = cert_key_pem(key)) == NULL) {
		errf(err, errlen, "exporting the key of %s", service);
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
	struct ca_root *root = root_active(ca);
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
		errf(err, errlen, "this node is not a CA server");
		return NULL;
	}
	if (check_names(dc, service, err, errlen) != 0 || ttl <= 0 ||
	    spiffe_format(uri, sizeof(uri), ca->td, dc, service) != 0) {
		errf(err, errlen, "bad service or datacenter name");
		return NULL;
	}
	if ((ret = gnutls_x509_crq_init(&crq)) < 0 ||
	    (ret = gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM)) < 0 ||
	    (ret = gnutls_x509_crq_verify(crq, 0)) < 0 ||
	    (ret = gnutls_pubkey_init(&pub)) < 0 ||
	    (ret = gnutls_pubkey_import_x509_crq(pub, crq, 0)) < 0) {
		errf(err, errlen, "CSR for %s: %s", service,
		    gnutls_strerror(ret));
		goto out;
	}
	if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_ECDSA ||
	    bits != 256) {
		errf(err, errlen, "CSR for %s: not an ECDSA P-256 key",
		    service);
		goto out;
	}
	/* The identity is ours to give: the CSR's names are not used. */
	leaf_spec(&spec, dn, sizeof(dn), uris, service, now, ttl, root);
	if (cert_make_pub(&spec, pub, root->crt, root->key, &crt, err,
	    errlen) != 0)
		goto out;
	if ((pem = cert_pem(crt)) == NULL) {
		errf(err, errlen, "exporting the certificate of %s", service);
		goto out;
	}
	if (spec.not_after > root->leaves_until) {
		int64_t prev = root->leaves_until;

		root->leaves_until = spec.not_after;
		if (meta_save(ca, err, errlen) != 0) {
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

	if (import_crt(service, cert_pem, &crt, err, errlen) != 0 ||
	    import_key(service, key_pem, &key, err, errlen) != 0)
		goto out;
	if (!key_matches(crt, key)) {
		errf(err, errlen, "the certificate for %s is not for our key",
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
	if ((root = root_of_leaf(ca, crt)) == NULL) {
		errf(err, errlen, "the certificate for %s is not signed by a "
		    "known root", service);
		goto out;
	}
	if ((leaf = leaf_build(ca, crt, key_pem, root, service, err,
	    errlen)) == NULL)
		goto out;
	leaf_store(ca, service, key_pem, leaf->cert_pem);
	cache_put(ca, leaf);
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
