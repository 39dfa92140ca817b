/* Certificate checks (cert_verify_chain) with certificates built in-test
 * with each defect, and the CA: persistence, corruption, rotation, prune. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/model/cert.h"
#include "helperd/model/spiffe.h"

#define TD   "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.mesh"
#define ID(svc) "spiffe://" TD "/ns/default/dc/dc1/svc/" svc

static time_t now;
static gnutls_x509_privkey_t root_key, other_key;
static gnutls_x509_crt_t root_crt, other_crt;
static gnutls_x509_trust_list_t tl;

static void
make_root(const char *dn, const char *td, gnutls_x509_privkey_t *key,
    gnutls_x509_crt_t *crt)
{
	char err[256], uri[SPIFFE_ID_MAX];
	const char *uris[1] = { uri };
	struct cert_spec spec = {
		.dn = dn, .uris = uris, .n_uris = 1, .is_ca = 1,
		.permit_td = td, .not_before = now - 3600,
		.not_after = now + 86400 * 365,
	};

	snprintf(uri, sizeof(uri), "spiffe://%s", td);
	cr_assert_eq(cert_key_generate(key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cert_make(&spec, *key, NULL, NULL, crt, err,
	    sizeof(err)), 0, "%s", err);
}

static void
setup(void)
{
	gnutls_x509_crt_t copy;
	gnutls_datum_t der;

	now = time(NULL);
	make_root("CN=test root", TD, &root_key, &root_crt);
	make_root("CN=other root", TD, &other_key, &other_crt);
	cr_assert_eq(gnutls_x509_trust_list_init(&tl, 0), 0);
	cr_assert_eq(gnutls_x509_crt_export2(root_crt, GNUTLS_X509_FMT_DER,
	    &der), 0);
	cr_assert_eq(gnutls_x509_crt_init(&copy), 0);
	cr_assert_eq(gnutls_x509_crt_import(copy, &der, GNUTLS_X509_FMT_DER),
	    0);
	gnutls_free(der.data);
	cr_assert_eq(gnutls_x509_trust_list_add_cas(tl, &copy, 1, 0), 1);
}

static void
teardown(void)
{
	gnutls_x509_trust_list_deinit(tl, 1);
	gnutls_x509_crt_deinit(root_crt);
	gnutls_x509_crt_deinit(other_crt);
	gnutls_x509_privkey_deinit(root_key);
	gnutls_x509_privkey_deinit(other_key);
}

/* A leaf: good by default; each test changes one thing. */
struct leaf_opts {
	const char *uris[3];
	unsigned n_uris;
	int is_ca;
	unsigned eku;
	int64_t nb, na;
	int self_signed;
	int other_issuer;
};

static struct leaf_opts
good(void)
{
	struct leaf_opts o = {
		.uris = { ID("socat") }, .n_uris = 1,
		.eku = CERT_EKU_SERVER | CERT_EKU_CLIENT,
		.nb = now - 60, .na = now + 3600,
	};
	return o;
}

static gnutls_datum_t
leaf_der(const struct leaf_opts *o)
{
	char err[256];
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t der;
	struct cert_spec spec = {
		.dn = "CN=leaf", .uris = o->uris, .n_uris = o->n_uris,
		.is_ca = o->is_ca, .eku = o->eku,
		.not_before = o->nb, .not_after = o->na,
	};

	cr_assert_eq(cert_key_generate(&key, err, sizeof(err)), 0);
	cr_assert_eq(cert_make(&spec, key,
	    o->self_signed ? NULL : o->other_issuer ? other_crt : root_crt,
	    o->self_signed ? NULL : o->other_issuer ? other_key : root_key,
	    &crt, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der),
	    0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return der;
}

/* Verify a leaf built from o; returns the result, why in why. */
static int
check(const struct leaf_opts *o, enum cert_role role, const char *expect,
    char *why, size_t whylen)
{
	gnutls_datum_t der = leaf_der(o);
	char svc[64] = "", id[SPIFFE_ID_MAX] = "";
	int rc;

	why[0] = '\0';
	rc = cert_verify_chain(tl, TD, &der, 1, now, role, expect, svc,
	    sizeof(svc), id, sizeof(id), why, whylen);
	gnutls_free(der.data);
	return rc;
}

#define REJECTS(o, role, expect, reason) do {                            \
	char why_[512];                                                   \
	cr_assert_eq(check(&(o), role, expect, why_, sizeof(why_)), -1,   \
	    "accepted, expected: %s", reason);                            \
	cr_assert(strstr(why_, reason) != NULL, "why: \"%s\", expected "  \
	    "\"%s\"", why_, reason);                                      \
} while (0)

TestSuite(cert, .init = setup, .fini = teardown);

Test(cert, good_leaf_accepted_both_roles)
{
	struct leaf_opts o = good();
	gnutls_datum_t der = leaf_der(&o);
	char svc[64], id[SPIFFE_ID_MAX], why[256] = "";

	cr_assert_eq(cert_verify_chain(tl, TD, &der, 1, now,
	    CERT_PEER_IS_SERVER, "socat", svc, sizeof(svc), id, sizeof(id),
	    why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(svc, "socat");
	cr_assert_str_eq(id, ID("socat"));
	cr_assert_eq(cert_verify_chain(tl, TD, &der, 1, now,
	    CERT_PEER_IS_CLIENT, NULL, svc, sizeof(svc), NULL, 0, why,
	    sizeof(why)), 0, "%s", why);
	gnutls_free(der.data);
}

Test(cert, expired)
{
	struct leaf_opts o = good();

	o.nb = now - 7200;
	o.na = now - 3600;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "certificate expired at ");
}

Test(cert, not_yet_valid)
{
	struct leaf_opts o = good();

	o.nb = now + 600;
	o.na = now + 7200;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "not valid before ");
}

Test(cert, other_trust_domain)
{
	struct leaf_opts o = good();

	o.uris[0] = "spiffe://other.mesh/ns/default/dc/dc1/svc/socat";
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "in trust domain other.mesh, expected " TD);
}

Test(cert, other_namespace)
{
	struct leaf_opts o = good();

	o.uris[0] = "spiffe://" TD "/ns/other/dc/dc1/svc/socat";
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "namespace other is not supported");
}

Test(cert, other_service)
{
	struct leaf_opts o = good();

	o.uris[0] = ID("db");
	REJECTS(o, CERT_PEER_IS_SERVER, "socat",
	    "SPIFFE ID " ID("db") " is for service db, expected socat");
}

Test(cert, no_san)
{
	struct leaf_opts o = good();

	o.n_uris = 0;
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "no URI SAN");
}

Test(cert, two_sans)
{
	struct leaf_opts o = good();

	o.uris[1] = ID("db");
	o.n_uris = 2;
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "2 URI SANs");
}

Test(cert, not_a_spiffe_id)
{
	struct leaf_opts o = good();

	o.uris[0] = "https://socat.example/";
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "not a mesh service SPIFFE ID");
}

Test(cert, ca_true_leaf)
{
	struct leaf_opts o = good();

	o.is_ca = 1;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "CA:TRUE");
}

Test(cert, self_signed)
{
	struct leaf_opts o = good();

	o.self_signed = 1;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "self-signed");
}

Test(cert, unknown_root)
{
	struct leaf_opts o = good();

	o.other_issuer = 1;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "not issued by a trusted "
	    "mesh root");
}

Test(cert, wrong_eku)
{
	struct leaf_opts o = good();
	char why[256];

	o.eku = CERT_EKU_CLIENT;
	REJECTS(o, CERT_PEER_IS_SERVER, "socat", "lacks serverAuth");
	cr_assert_eq(check(&o, CERT_PEER_IS_CLIENT, NULL, why, sizeof(why)),
	    0, "%s", why);
	o.eku = CERT_EKU_SERVER;
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "lacks clientAuth");
	cr_assert_eq(check(&o, CERT_PEER_IS_SERVER, "socat", why,
	    sizeof(why)), 0, "%s", why);
	o.eku = 0;
	REJECTS(o, CERT_PEER_IS_CLIENT, NULL, "no extendedKeyUsage");
}

Test(cert, bad_chains)
{
	gnutls_datum_t junk = { (unsigned char *)"not DER", 7 };
	gnutls_datum_t four[4];
	char why[256];

	cr_assert_eq(cert_verify_chain(tl, TD, &junk, 1, now,
	    CERT_PEER_IS_CLIENT, NULL, NULL, 0, NULL, 0, why, sizeof(why)), -1);
	cr_assert(strstr(why, "unparsable") != NULL, "%s", why);
	for (int i = 0; i < 4; i++)
		four[i] = junk;
	cr_assert_eq(cert_verify_chain(tl, TD, four, 4, now,
	    CERT_PEER_IS_CLIENT, NULL, NULL, 0, NULL, 0, why, sizeof(why)), -1);
	cr_assert(strstr(why, "at most 3") != NULL, "%s", why);
	cr_assert_eq(cert_verify_chain(tl, TD, NULL, 0, now,
	    CERT_PEER_IS_CLIENT, NULL, NULL, 0, NULL, 0, why, sizeof(why)), -1);
	cr_assert(strstr(why, "no certificate") != NULL, "%s", why);
}

/* ---- the CA ---- */

static char dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(path);
}

static void
ca_setup(void)
{
	now = time(NULL);
	snprintf(dir, sizeof(dir), "/tmp/test_ca.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	strcat(dir, "/ca");          /* does not exist yet: first start */
}

static void
ca_teardown(void)
{
	char *slash = strrchr(dir, '/');

	*slash = '\0';
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(ca, .init = ca_setup, .fini = ca_teardown);

static struct ca *
open_ok(void)
{
	struct ca *ca = NULL;
	char err[512] = "";

	cr_assert_eq(ca_open(&ca, dir, 10L * 365 * 86400, err, sizeof(err)),
	    0, "%s", err);
	return ca;
}

/* The certificates of a PEM bundle as DER (caller frees each and *out). */
static unsigned
pem_to_der(const char *pem, gnutls_datum_t *out, unsigned max)
{
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };

	cr_assert_geq(gnutls_x509_crt_list_import2(&crts, &n, &d,
	    GNUTLS_X509_FMT_PEM, 0), 0);
	cr_assert_leq(n, max);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(gnutls_x509_crt_export2(crts[i],
		    GNUTLS_X509_FMT_DER, &out[i]), 0);
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	return n;
}

static void
free_der(gnutls_datum_t *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gnutls_free(d[i].data);
}

/* Verify leaf's chain (all of it, or only the leaf) against t. */
static int
verify_leaf(gnutls_x509_trust_list_t t, const struct ca *ca,
    const struct ca_leaf *leaf, int whole_chain, time_t at, char *why,
    size_t whylen)
{
	gnutls_datum_t der[3];
	unsigned n = pem_to_der(leaf->chain_pem, der, 3);
	int rc;

	rc = cert_verify_chain(t, ca_trust_domain(ca), der,
	    whole_chain ? n : 1, at, CERT_PEER_IS_SERVER, leaf->service, NULL,
	    0, NULL, 0, why, whylen);
	free_der(der, n);
	return rc;
}

static gnutls_x509_trust_list_t
trust_only(const char *pem)
{
	gnutls_x509_trust_list_t t;
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };

	cr_assert_eq(gnutls_x509_trust_list_init(&t, 0), 0);
	cr_assert_eq(gnutls_x509_trust_list_add_trust_mem(t, &d, NULL,
	    GNUTLS_X509_FMT_PEM, 0, 0), 1);
	return t;
}

static char *
read_all(const char *rel, size_t *len)
{
	char path[256];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	s = util_read_file(path, 1 << 20, len);
	cr_assert_not_null(s, "%s: %s", path, strerror(errno));
	return s;
}

Test(ca, creates_then_reopens_same_identity)
{
	struct ca *ca = open_ok();
	char td[128], root[128];
	json_t *j;
	struct stat st;
	char path[256];

	util_strlcpy(td, ca_trust_domain(ca), sizeof(td));
	util_strlcpy(root, ca_active_root_id(ca), sizeof(root));
	cr_assert(spiffe_valid_trust_domain(td));
	cr_assert_eq(strlen(td), 36 + 5, "%s", td);
	cr_assert_str_eq(td + 36, ".mesh");
	j = ca_roots_json(ca);
	cr_assert_str_eq(json_string_value(json_object_get(j, "ActiveRootID")),
	    root);
	cr_assert_str_eq(json_string_value(json_object_get(j, "TrustDomain")),
	    td);
	cr_assert_eq(json_array_size(json_object_get(j, "Roots")), 1);
	cr_assert(json_is_true(json_object_get(json_array_get(
	    json_object_get(j, "Roots"), 0), "Active")));
	json_decref(j);
	ca_free(ca);

	snprintf(path, sizeof(path), "%s/roots/1.key", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);

	ca = open_ok();
	cr_assert_str_eq(ca_trust_domain(ca), td);
	cr_assert_str_eq(ca_active_root_id(ca), root);
	ca_free(ca);
}

Test(ca, truncated_root_key_refuses_and_leaves_files_alone)
{
	struct ca *ca = open_ok();
	char path[256], err[512] = "", *key, *meta, *after, *meta_after;
	size_t len, alen, mlen, malen;
	struct ca *ca2 = NULL;

	ca_free(ca);
	key = read_all("roots/1.key", &len);
	meta = read_all("meta.json", &mlen);
	snprintf(path, sizeof(path), "%s/roots/1.key", dir);
	cr_assert_eq(truncate(path, (off_t)(len / 2)), 0);
	free(key);
	key = read_all("roots/1.key", &len);

	cr_assert_eq(ca_open(&ca2, dir, 86400, err, sizeof(err)), -1);
	cr_assert_null(ca2);
	cr_assert(strstr(err, path) != NULL, "err: %s", err);
	cr_assert(strstr(err, "private key") != NULL, "err: %s", err);

	after = read_all("roots/1.key", &alen);
	meta_after = read_all("meta.json", &malen);
	cr_assert_eq(alen, len);
	cr_assert_eq(memcmp(after, key, len), 0);
	cr_assert_eq(malen, mlen);
	cr_assert_eq(memcmp(meta_after, meta, mlen), 0);
	snprintf(path, sizeof(path), "%s/roots/2.pem", dir);
	cr_assert_neq(access(path, F_OK), 0, "a new root was minted");
	free(key);
	free(after);
	free(meta);
	free(meta_after);
}

Test(ca, corrupt_or_missing_meta_refuses)
{
	struct ca *ca = open_ok(), *ca2 = NULL;
	char path[256], err[512] = "";

	ca_free(ca);
	snprintf(path, sizeof(path), "%s/meta.json", dir);
	cr_assert_eq(truncate(path, 20), 0);
	cr_assert_eq(ca_open(&ca2, dir, 86400, err, sizeof(err)), -1);
	cr_assert(strstr(err, "meta.json") != NULL, "err: %s", err);
	cr_assert(strstr(err, "malformed JSON") != NULL, "err: %s", err);

	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(ca_open(&ca2, dir, 86400, err, sizeof(err)), -1);
	cr_assert(strstr(err, "refusing to create a new root") != NULL,
	    "err: %s", err);
	cr_assert_neq(access(path, F_OK), 0);
}

Test(ca, truncated_root_cert_refuses)
{
	struct ca *ca = open_ok(), *ca2 = NULL;
	char path[256], err[512] = "";

	ca_free(ca);
	snprintf(path, sizeof(path), "%s/roots/1.pem", dir);
	cr_assert_eq(truncate(path, 100), 0);
	cr_assert_eq(ca_open(&ca2, dir, 86400, err, sizeof(err)), -1);
	cr_assert(strstr(err, path) != NULL, "err: %s", err);
}

Test(ca, leaf_issue_get_and_reload)
{
	struct ca *ca = open_ok();
	struct ca_leaf *a, *b;
	char err[512] = "", serial[128], why[256] = "";
	json_t *j;

	a = ca_leaf_get(ca, "dc1", "socat", 72 * 3600, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	cr_assert_eq(a->refs, 2);               /* ours + the CA's cache */
	cr_assert_str_eq(a->service, "socat");
	cr_assert(strncmp(a->spiffe, "spiffe://", 9) == 0);
	cr_assert(a->cred != NULL);
	cr_assert_str_eq(a->root_id, ca_active_root_id(ca));
	/* Backdated 60 s; the life counts from the issue time. */
	cr_assert_geq(a->renew_at, a->not_before + 60 + (a->not_after -
	    a->not_before - 60) * 6 / 10);
	cr_assert_leq(a->renew_at, a->not_before + 60 + (a->not_after -
	    a->not_before - 60) * 9 / 10);
	cr_assert_eq(verify_leaf(ca_trust_list(ca), ca, a, 1, now, why,
	    sizeof(why)), 0, "%s", why);
	util_strlcpy(serial, a->serial, sizeof(serial));

	b = ca_leaf_get(ca, "dc1", "socat", 72 * 3600, err, sizeof(err));
	cr_assert_eq(b, a);
	ca_leaf_unref(b);
	j = ca_leaf_json(ca, a);
	cr_assert_str_eq(json_string_value(json_object_get(j, "ServiceURI")),
	    a->spiffe);
	cr_assert_str_eq(json_string_value(json_object_get(j, "SerialNumber")),
	    serial);
	cr_assert_not_null(json_object_get(j, "ValidBefore"));
	json_decref(j);
	ca_leaf_unref(a);
	ca_free(ca);

	/* Restart: the stored leaf comes back. */
	ca = open_ok();
	a = ca_leaf_get(ca, "dc1", "socat", 72 * 3600, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	cr_assert_str_eq(a->serial, serial);
	/* Another dc or a shorter ttl: a new leaf. */
	b = ca_leaf_get(ca, "dc2", "socat", 72 * 3600, err, sizeof(err));
	cr_assert_str_neq(b->serial, serial);
	ca_leaf_unref(b);
	/* A 12 s leaf renews 7-11 s after issue, not before. */
	b = ca_leaf_get(ca, "dc2", "socat", 12, err, sizeof(err));
	cr_assert_leq(b->not_after - b->not_before, 72);
	cr_assert_geq(b->renew_at, b->not_before + 60 + 7);
	cr_assert_leq(b->renew_at, b->not_before + 60 + 11);
	ca_leaf_unref(b);
	/* The old leaf is still usable: a session keeps its reference. */
	cr_assert_eq(a->refs, 1);
	ca_leaf_unref(a);
	cr_assert_null(ca_leaf_get(ca, "dc1", "../x", 60, err, sizeof(err)));
	cr_assert(strstr(err, "invalid service name") != NULL, "%s", err);
	ca_free(ca);
}

Test(ca, rotation_cross_sign_and_prune)
{
	struct ca *ca = open_ok(), *ca2;
	struct ca_leaf *old, *fresh;
	char err[512] = "", why[256] = "", *root1, *root2, old_id[128];
	gnutls_x509_trust_list_t only_old, only_new;
	json_t *j;

	old = ca_leaf_issue(ca, "dc1", "web", 3600, err, sizeof(err));
	cr_assert_not_null(old, "%s", err);
	util_strlcpy(old_id, ca_active_root_id(ca), sizeof(old_id));
	cr_assert_eq(ca_rotate(ca, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_neq(ca_active_root_id(ca), old_id);

	/* Old leaves keep verifying under the new trust list. */
	cr_assert_eq(verify_leaf(ca_trust_list(ca), ca, old, 1, now, why,
	    sizeof(why)), 0, "%s", why);

	fresh = ca_leaf_issue(ca, "dc1", "web", 3600, err, sizeof(err));
	cr_assert_not_null(fresh, "%s", err);
	cr_assert_str_eq(fresh->root_id, ca_active_root_id(ca));
	cr_assert_gt(strlen(fresh->chain_pem), strlen(fresh->cert_pem));

	/* A peer that only trusts the old root: verifies through the
	 * cross-signed certificate, and not without it. */
	root1 = read_all("roots/1.pem", NULL);
	root2 = read_all("roots/2.pem", NULL);
	only_old = trust_only(root1);
	only_new = trust_only(root2);
	cr_assert_eq(verify_leaf(only_old, ca, fresh, 1, now, why,
	    sizeof(why)), 0, "%s", why);
	cr_assert_eq(verify_leaf(only_old, ca, fresh, 0, now, why,
	    sizeof(why)), -1);
	/* A peer that already only trusts the new root: fine with the
	 * cross-signed certificate in the chain. */
	cr_assert_eq(verify_leaf(only_new, ca, fresh, 1, now, why,
	    sizeof(why)), 0, "%s", why);
	cr_assert_eq(verify_leaf(only_new, ca, old, 1, now, why,
	    sizeof(why)), -1);

	j = ca_roots_json(ca);
	cr_assert_eq(json_array_size(json_object_get(j, "Roots")), 2);
	cr_assert_eq(json_array_size(json_object_get(json_array_get(
	    json_object_get(j, "Roots"), 1), "IntermediateCerts")), 1);
	json_decref(j);

	/* The old root stays while its leaf is valid... */
	cr_assert_eq(ca_prune(ca, now), 0);
	cr_assert_eq(ca_prune(ca, old->not_after), 0);
	ca_free(ca);
	/* ...also after a restart (leaves_until is persisted). */
	ca = open_ok();
	cr_assert_eq(ca_prune(ca, now + 1800), 0);
	cr_assert_eq(ca_prune(ca, old->not_after + 1), 1);
	cr_assert_eq(verify_leaf(ca_trust_list(ca), ca, old, 1, now, why,
	    sizeof(why)), -1);
	cr_assert_eq(verify_leaf(ca_trust_list(ca), ca, fresh, 1, now, why,
	    sizeof(why)), 0, "%s", why);
	j = ca_roots_json(ca);
	cr_assert_eq(json_array_size(json_object_get(j, "Roots")), 1);
	json_decref(j);
	ca_free(ca);

	ca2 = open_ok();
	cr_assert_str_neq(ca_active_root_id(ca2), old_id);
	j = ca_roots_json(ca2);
	cr_assert_eq(json_array_size(json_object_get(j, "Roots")), 1);
	json_decref(j);
	ca_free(ca2);

	gnutls_x509_trust_list_deinit(only_old, 1);
	gnutls_x509_trust_list_deinit(only_new, 1);
	free(root1);
	free(root2);
	ca_leaf_unref(old);
	ca_leaf_unref(fresh);
}

/* ---- a real TLS 1.3 handshake with the CA's leaves ---- */

struct side {
	struct ca *ca;
	struct ca_leaf *leaf;
	int fd;
	int server;
	const char *expect;        /* client: the service it dialled */
	int hs;                    /* handshake result */
	int vrc;                   /* ca_verify_session result */
	char peer[64];
	char why[256];
};

static void *
run_side(void *arg)
{
	struct side *s = arg;
	gnutls_session_t sess;

	gnutls_init(&sess, s->server ? GNUTLS_SERVER : GNUTLS_CLIENT);
	gnutls_priority_set_direct(sess, "NORMAL:-VERS-ALL:+VERS-TLS1.3",
	    NULL);
	gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, s->leaf->cred);
	if (s->server)
		gnutls_certificate_server_set_request(sess,
		    GNUTLS_CERT_REQUIRE);
	gnutls_transport_set_int(sess, s->fd);
	do
		s->hs = gnutls_handshake(sess);
	while (s->hs < 0 && !gnutls_error_is_fatal(s->hs));
	if (s->hs == 0)
		s->vrc = ca_verify_session(s->ca, sess, s->expect, s->peer,
		    sizeof(s->peer), NULL, 0, s->why, sizeof(s->why));
	gnutls_bye(sess, GNUTLS_SHUT_WR);
	gnutls_deinit(sess);
	return NULL;
}

static void
handshake(struct ca *ca, struct ca_leaf *cl, struct ca_leaf *sl,
    const char *expect, struct side *c, struct side *s)
{
	int sv[2];
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*c = (struct side){ .ca = ca, .leaf = cl, .fd = sv[0],
	    .expect = expect };
	*s = (struct side){ .ca = ca, .leaf = sl, .fd = sv[1], .server = 1 };
	cr_assert_eq(pthread_create(&t, NULL, run_side, s), 0);
	run_side(c);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
}

Test(ca, tls13_handshake_verifies_both_sides)
{
	struct ca *ca = open_ok();
	char err[512];
	struct ca_leaf *web = ca_leaf_get(ca, "dc1", "web", 3600, err,
	    sizeof(err));
	struct ca_leaf *socat = ca_leaf_get(ca, "dc1", "socat", 3600, err,
	    sizeof(err));
	struct side c, s;

	cr_assert(web != NULL && socat != NULL, "%s", err);
	handshake(ca, web, socat, "socat", &c, &s);
	cr_assert_eq(c.hs, 0, "%s", gnutls_strerror(c.hs));
	cr_assert_eq(s.hs, 0, "%s", gnutls_strerror(s.hs));
	cr_assert_eq(c.vrc, 0, "%s", c.why);
	cr_assert_eq(s.vrc, 0, "%s", s.why);
	cr_assert_str_eq(c.peer, "socat");
	cr_assert_str_eq(s.peer, "web");

	/* web dialling "db" but reaching socat: the client refuses. */
	handshake(ca, web, socat, "db", &c, &s);
	cr_assert_eq(c.vrc, -1);
	cr_assert(strstr(c.why, "is for service socat, expected db") != NULL,
	    "%s", c.why);

	/* After a rotation, a new leaf against an old one, both ways. */
	cr_assert_eq(ca_rotate(ca, err, sizeof(err)), 0, "%s", err);
	ca_leaf_unref(socat);
	socat = ca_leaf_issue(ca, "dc1", "socat", 3600, err, sizeof(err));
	cr_assert_not_null(socat, "%s", err);
	handshake(ca, web, socat, "socat", &c, &s);
	cr_assert_eq(c.vrc, 0, "%s", c.why);
	cr_assert_eq(s.vrc, 0, "%s", s.why);
	ca_leaf_unref(web);
	ca_leaf_unref(socat);
	ca_free(ca);
}

Test(ca, empty_dir_is_a_first_start)
{
	struct ca *ca;

	cr_assert_eq(mkdir(dir, 0700), 0);
	ca = open_ok();
	cr_assert(spiffe_valid_trust_domain(ca_trust_domain(ca)));
	ca_free(ca);
}
