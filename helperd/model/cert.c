/* cert: build mesh certificates, check a peer's chain for a mesh identity. */
#include "helperd/model/cert.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "common/util.h"
#include "helperd/model/spiffe.h"

#define CERT_CHAIN_MAX 3

static char *datum_to_str(gnutls_datum_t *d);

static int
fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "leaf certificate" or "chain certificate 1" for messages. */
static const char *
cert_name(unsigned i, char *buf, size_t len)
{
	if (i == 0)
		snprintf(buf, len, "certificate");
	else
		snprintf(buf, len, "chain certificate %u", i);
	return buf;
}

/* Validity window of crt at now. 0/-1 with why. */
static int
check_time(gnutls_x509_crt_t crt, const char *what, time_t now, char *why,
    size_t whylen)
{
	time_t nb = gnutls_x509_crt_get_activation_time(crt);
	time_t na = gnutls_x509_crt_get_expiration_time(crt);
	char ts[32];

	if (nb == (time_t)-1 || na == (time_t)-1)
		return fail(why, whylen, "%s has an unreadable validity period",
		    what);
	if (now < nb) {
		util_rfc3339(nb, ts, sizeof(ts));
		return fail(why, whylen, "%s not valid before %s", what, ts);
	}
	if (now > na) {
		util_rfc3339(na, ts, sizeof(ts));
		return fail(why, whylen, "%s expired at %s", what, ts);
	}
	return 0;
}

/* Chain to a root of tl, time checks left to check_time. */
static int
check_trust(gnutls_x509_trust_list_t tl, gnutls_x509_crt_t *crts, unsigned n,
    time_t now, char *why, size_t whylen)
{
	unsigned flags = GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
	    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS;
	unsigned status = 0;
	gnutls_x509_crt_t root = NULL;
	gnutls_datum_t out = { NULL, 0 };
	int ret;

	ret = gnutls_x509_trust_list_verify_crt2(tl, crts, n, NULL, 0, flags,
	    &status, NULL);
	if (ret < 0)
		return fail(why, whylen, "chain verification failed: %s",
		    gnutls_strerror(ret));
	if (status != 0) {
		if (n == 1 && gnutls_x509_crt_check_issuer(crts[0], crts[0]))
			return fail(why, whylen, "self-signed certificate, "
			    "not issued by a mesh root");
		if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
			return fail(why, whylen, "certificate not issued by a "
			    "trusted mesh root (unknown issuer)");
		if (gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &out, 0) == 0) {
			fail(why, whylen, "chain does not verify: %s",
			    (const char *)out.data);
			gnutls_free(out.data);
			return -1;
		}
		return fail(why, whylen, "chain does not verify (status "
		    "0x%x)", status);
	}
	/* gnutls skipped the time checks: check the root we chained to. */
	if (gnutls_x509_trust_list_get_issuer(tl, crts[n - 1], &root,
	    GNUTLS_TL_GET_COPY) == 0) {
		ret = check_time(root, "mesh root", now, why, whylen);
		gnutls_x509_crt_deinit(root);
		if (ret != 0)
			return -1;
	}
	return 0;
}

/* The leaf must be CA:FALSE (present), digitalSignature if key usage is
 * present. */
static int
check_leaf_constraints(gnutls_x509_crt_t leaf, char *why, size_t whylen)
{
	unsigned crit = 0, ku = 0, ca = 0;
	int ret, pathlen = -1;

	ret = gnutls_x509_crt_get_basic_constraints(leaf, &crit, &ca,
	    &pathlen);
	if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return fail(why, whylen, "certificate has no basicConstraints "
		    "(CA:FALSE required)");
	if (ret < 0)
		return fail(why, whylen, "unreadable basicConstraints: %s",
		    gnutls_strerror(ret));
	if (ret != 0)
		return fail(why, whylen, "certificate is a CA (CA:TRUE), not "
		    "a service certificate");
	ret = gnutls_x509_crt_get_key_usage(leaf, &ku, &crit);
	if (ret >= 0 && !(ku & GNUTLS_KEY_DIGITAL_SIGNATURE))
		return fail(why, whylen, "key usage lacks digitalSignature");
	if (ret < 0 && ret != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return fail(why, whylen, "unreadable key usage: %s",
		    gnutls_strerror(ret));
	return 0;
}

/* Exactly one URI SAN, shorter than SPIFFE_ID_MAX; copied into uri. */
static int
get_uri_san(gnutls_x509_crt_t leaf, char *uri, size_t urilen, char *why,
    size_t whylen)
{
	unsigned nuri = 0;

	for (unsigned i = 0;; i++) {
		char buf[1024];
		size_t size = sizeof(buf) - 1;
		unsigned type = 0, crit = 0;
		int ret;

		ret = gnutls_x509_crt_get_subject_alt_name2(leaf, i, buf, &size,
		    &type, &crit);
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER)
			return fail(why, whylen, "subjectAltName %u longer than "
			    "%zu bytes", i, sizeof(buf) - 1);
		if (ret < 0)
			return fail(why, whylen, "unreadable subjectAltName: %s",
			    gnutls_strerror(ret));
		if (ret != GNUTLS_SAN_URI || ++nuri > 1)
			continue;
		buf[size] = '\0';
		if (strlen(buf) != size)
			return fail(why, whylen, "URI SAN contains a NUL byte");
		if (size >= SPIFFE_ID_MAX || size >= urilen)
			return fail(why, whylen, "URI SAN longer than %d bytes",
			    SPIFFE_ID_MAX - 1);
		memcpy(uri, buf, size + 1);
	}
	if (nuri == 0)
		return fail(why, whylen, "certificate has no URI SAN (no "
		    "SPIFFE ID)");
	if (nuri > 1)
		return fail(why, whylen, "%u URI SANs, expected exactly one "
		    "SPIFFE ID", nuri);
	return 0;
}

static int
check_eku(gnutls_x509_crt_t leaf, enum cert_role role, char *why,
    size_t whylen)
{
	const char *want = role == CERT_PEER_IS_SERVER ?
	    GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT;
	const char *wname = role == CERT_PEER_IS_SERVER ?
	    "serverAuth" : "clientAuth";
	unsigned found = 0;

	for (unsigned i = 0;; i++) {
		char oid[128];
		size_t size = sizeof(oid);
		unsigned crit = 0;
		int ret;

		ret = gnutls_x509_crt_get_key_purpose_oid(leaf, i, oid, &size,
		    &crit);
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue;
		if (ret < 0)
			return fail(why, whylen, "unreadable extendedKeyUsage: "
			    "%s", gnutls_strerror(ret));
		found++;
		if (strcmp(oid, want) == 0)
			return 0;
	}
	if (found == 0)
		return fail(why, whylen, "certificate has no extendedKeyUsage "
		    "(%s required)", wname);
	return fail(why, whylen, "extendedKeyUsage lacks %s (peer acts as "
	    "the %s)", wname, role == CERT_PEER_IS_SERVER ? "server" :
	    "client");
}

int
cert_verify_chain(gnutls_x509_trust_list_t tl, const char *td,
    const gnutls_datum_t *chain, unsigned n, time_t now, enum cert_role role,
    const char *expected_service, char *service, size_t servicelen,
    char *spiffe, size_t spiffelen, char *why, size_t whylen)
{
	gnutls_x509_crt_t crts[CERT_CHAIN_MAX];
	struct spiffe_id id;
	char uri[SPIFFE_ID_MAX], what[32];
	unsigned ncrt = 0;
	int ret, rc = -1;

	if (chain == NULL || n == 0)
		return fail(why, whylen, "peer sent no certificate");
	if (n > CERT_CHAIN_MAX)
		return fail(why, whylen, "chain of %u certificates, at most %d "
		    "allowed", n, CERT_CHAIN_MAX);
	for (; ncrt < n; ncrt++) {
		if ((ret = gnutls_x509_crt_init(&crts[ncrt])) < 0) {
			fail(why, whylen, "out of memory: %s",
			    gnutls_strerror(ret));
			goto out;
		}
		ret = gnutls_x509_crt_import(crts[ncrt], &chain[ncrt],
		    GNUTLS_X509_FMT_DER);
		if (ret < 0) {
			fail(why, whylen, "%s unparsable: %s",
			    cert_name(ncrt, what, sizeof(what)),
			    gnutls_strerror(ret));
			ncrt++;
			goto out;
		}
	}
	if (check_trust(tl, crts, n, now, why, whylen) != 0)
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (check_time(crts[i], cert_name(i, what, sizeof(what)), now,
		    why, whylen) != 0)
			goto out;
	if (check_leaf_constraints(crts[0], why, whylen) != 0)
		goto out;
	if (get_uri_san(crts[0], uri, sizeof(uri), why, whylen) != 0)
		goto out;
	if (spiffe_parse(uri, &id) != 0) {
		fail(why, whylen, "URI SAN %s is not a mesh service SPIFFE ID",
		    uri);
		goto out;
	}
	if (strcmp(id.ns, "default") != 0) {
		fail(why, whylen, "SPIFFE ID %s: namespace %s is not supported "
		    "(only default)", uri, id.ns);
		goto out;
	}
	if (td != NULL && strcmp(id.trust_domain, td) != 0) {
		fail(why, whylen, "SPIFFE ID %s is in trust domain %s, expected "
		    "%s", uri, id.trust_domain, td);
		goto out;
	}
	if (expected_service != NULL &&
	    strcmp(id.service, expected_service) != 0) {
		fail(why, whylen, "SPIFFE ID %s is for service %s, expected %s",
		    uri, id.service, expected_service);
		goto out;
	}
	if (check_eku(crts[0], role, why, whylen) != 0)
		goto out;
	if (service != NULL && servicelen > 0)
		util_strlcpy(service, id.service, servicelen);
	if (spiffe != NULL && spiffelen > 0)
		util_strlcpy(spiffe, uri, spiffelen);
	rc = 0;
out:
	for (unsigned i = 0; i < ncrt; i++)
		gnutls_x509_crt_deinit(crts[i]);
	return rc;
}

/* ---- building ---- */

int
cert_key_generate(gnutls_x509_privkey_t *out, char *err, size_t errlen)
{
	gnutls_x509_privkey_t key;
	int ret;

	if ((ret = gnutls_x509_privkey_init(&key)) < 0)
		return fail(err, errlen, "key init: %s", gnutls_strerror(ret));
	ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (ret < 0) {
		gnutls_x509_privkey_deinit(key);
		return fail(err, errlen, "generating an ECDSA P-256 key: %s",
		    gnutls_strerror(ret));
	}
	*out = key;
	return 0;
}

/* Random positive 16-byte serial: top bit clear, second bit set so that
 * the DER encoding is always 16 bytes. */
static int
set_random_serial(gnutls_x509_crt_t crt)
{
	unsigned char serial[16];
	int ret;

	if ((ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
		return ret;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

static int
set_extensions(gnutls_x509_crt_t crt, const struct cert_spec *spec)
{
	int ret;

	ret = gnutls_x509_crt_set_basic_constraints(crt, spec->is_ca ? 1 : 0,
	    -1);
	if (ret < 0)
		return ret;
	ret = gnutls_x509_crt_set_key_usage(crt, spec->is_ca ?
	    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN :
	    GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_AGREEMENT);
	if (ret < 0)
		return ret;
	if ((spec->eku & CERT_EKU_SERVER) && (ret =
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER,
	    0)) < 0)
		return ret;
	if ((spec->eku & CERT_EKU_CLIENT) && (ret =
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT,
	    0)) < 0)
		return ret;
	for (unsigned i = 0; i < spec->n_uris; i++) {
		ret = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI,
		    spec->uris[i], (unsigned)strlen(spec->uris[i]),
		    i == 0 ? GNUTLS_FSAN_SET : GNUTLS_FSAN_APPEND);
		if (ret < 0)
			return ret;
	}
	if (spec->is_ca && spec->permit_td != NULL) {
		gnutls_x509_name_constraints_t nc;
		gnutls_datum_t d = { (unsigned char *)(uintptr_t)spec->permit_td,
		    (unsigned)strlen(spec->permit_td) };

		if ((ret = gnutls_x509_name_constraints_init(&nc)) < 0)
			return ret;
		ret = gnutls_x509_name_constraints_add_permitted(nc,
		    GNUTLS_SAN_URI, &d);
		if (ret >= 0)
			ret = gnutls_x509_crt_set_name_constraints(crt, nc, 1);
		gnutls_x509_name_constraints_deinit(nc);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int
reimport(gnutls_x509_crt_t *crt)
{
	gnutls_x509_crt_t fresh;
	gnutls_datum_t der = { NULL, 0 };
	int ret;

	if ((ret = gnutls_x509_crt_export2(*crt, GNUTLS_X509_FMT_DER,
	    &der)) < 0)
		return ret;
	if ((ret = gnutls_x509_crt_init(&fresh)) < 0)
		goto out;
	if ((ret = gnutls_x509_crt_import(fresh, &der,
	    GNUTLS_X509_FMT_DER)) < 0) {
		gnutls_x509_crt_deinit(fresh);
		goto out;
	}
	gnutls_x509_crt_deinit(*crt);
	*crt = fresh;
out:
	gnutls_free(der.data);
	return ret;
}

/* cert_make and cert_make_pub: the subject key is key (a private key,
 * which may self-sign) or pub (a public key from a CSR). */
static int
make(const struct cert_spec *spec, gnutls_x509_privkey_t key,
    gnutls_pubkey_t pub, gnutls_x509_crt_t issuer,
    gnutls_x509_privkey_t issuer_key, gnutls_x509_crt_t *out, char *err,
    size_t errlen)
{
	gnutls_x509_crt_t crt;
	unsigned char kid[64];
	size_t kidlen = sizeof(kid);
	const char *dnerr = NULL, *step;
	int ret;

	if ((issuer == NULL) != (issuer_key == NULL))
		return fail(err, errlen, "issuer and issuer key go together");
	if (key == NULL && (pub == NULL || issuer == NULL))
		return fail(err, errlen, "a public key needs an issuer");
	if ((ret = gnutls_x509_crt_init(&crt)) < 0)
		return fail(err, errlen, "certificate init: %s",
		    gnutls_strerror(ret));
	step = "version";
	if ((ret = gnutls_x509_crt_set_version(crt, 3)) < 0)
		goto err;
	step = "serial";
	if ((ret = set_random_serial(crt)) < 0)
		goto err;
	step = "subject";
	if ((ret = gnutls_x509_crt_set_dn(crt, spec->dn, &dnerr)) < 0)
		goto err;
	step = "validity";
	if ((ret = gnutls_x509_crt_set_activation_time(crt,
	    (time_t)spec->not_before)) < 0 ||
	    (ret = gnutls_x509_crt_set_expiration_time(crt,
	    (time_t)spec->not_after)) < 0)
		goto err;
	step = "public key";
	if ((ret = key != NULL ? gnutls_x509_crt_set_key(crt, key) :
	    gnutls_x509_crt_set_pubkey(crt, pub)) < 0)
		goto err;
	step = "extensions";
	if ((ret = set_extensions(crt, spec)) < 0)
		goto err;
	step = "subject key ID";
	if ((ret = key != NULL ? gnutls_x509_privkey_get_key_id(key,
	    GNUTLS_KEYID_USE_SHA1, kid, &kidlen) : gnutls_pubkey_get_key_id(pub,
	    GNUTLS_KEYID_USE_SHA1, kid, &kidlen)) < 0 ||
	    (ret = gnutls_x509_crt_set_subject_key_id(crt, kid, kidlen)) < 0)
		goto err;
	step = "authority key ID";
	if (issuer != NULL) {
		unsigned crit = 0;

		kidlen = sizeof(kid);
		ret = gnutls_x509_crt_get_subject_key_id(issuer, kid, &kidlen,
		    &crit);
		if (ret < 0) {
			kidlen = sizeof(kid);
			ret = gnutls_x509_crt_get_key_id(issuer,
			    GNUTLS_KEYID_USE_SHA1, kid, &kidlen);
		}
		if (ret < 0)
			goto err;
	}
	if ((ret = gnutls_x509_crt_set_authority_key_id(crt, kid, kidlen)) < 0)
		goto err;
	step = "signature";
	ret = gnutls_x509_crt_sign2(crt, issuer != NULL ? issuer : crt,
	    issuer_key != NULL ? issuer_key : key, GNUTLS_DIG_SHA256, 0);
	if (ret < 0)
		goto err;
	/* Re-import the signed DER: gnutls caches some fields (the SANs)
	 * only when parsing, and callers read them back. */
	step = "re-import";
	if ((ret = reimport(&crt)) < 0)
		goto err;
	*out = crt;
	return 0;

err:
	gnutls_x509_crt_deinit(crt);
	return fail(err, errlen, "building certificate %s: %s: %s%s%s",
	    spec->dn, step, gnutls_strerror(ret), dnerr != NULL ? " near " : "",
	    dnerr != NULL ? dnerr : "");
}

int
cert_make(const struct cert_spec *spec, gnutls_x509_privkey_t key,
    gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
    gnutls_x509_crt_t *out, char *err, size_t errlen)
{
	return make(spec, key, NULL, issuer, issuer_key, out, err, errlen);
}

int
cert_make_pub(const struct cert_spec *spec, gnutls_pubkey_t pub,
    gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
    gnutls_x509_crt_t *out, char *err, size_t errlen)
{
	return make(spec, NULL, pub, issuer, issuer_key, out, err, errlen);
}

char *
cert_csr_make(const char *dn, const char *uri, gnutls_x509_privkey_t key,
    char *err, size_t errlen)
{
	gnutls_x509_crq_t crq;
	gnutls_datum_t d = { NULL, 0 };
	const char *dnerr = NULL;
	char *pem = NULL;
	int ret;

	if ((ret = gnutls_x509_crq_init(&crq)) < 0) {
		fail(err, errlen, "CSR init: %s", gnutls_strerror(ret));
		return NULL;
	}
	if ((ret = gnutls_x509_crq_set_version(crq, 1)) < 0 ||
	    (ret = gnutls_x509_crq_set_dn(crq, dn, &dnerr)) < 0 ||
	    (ret = gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_URI,
	    uri, (unsigned)strlen(uri), GNUTLS_FSAN_SET)) < 0 ||
	    (ret = gnutls_x509_crq_set_key(crq, key)) < 0 ||
	    (ret = gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
	    (ret = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &d)) < 0)
		fail(err, errlen, "CSR for %s: %s", uri, gnutls_strerror(ret));
	else
		pem = datum_to_str(&d);
	gnutls_x509_crq_deinit(crq);
	return pem;
}

static char *
datum_to_str(gnutls_datum_t *d)
{
	char *s = malloc(d->size + 1);

	if (s != NULL) {
		memcpy(s, d->data, d->size);
		s[d->size] = '\0';
	}
	gnutls_free(d->data);
	return s;
}

char *
cert_pem(gnutls_x509_crt_t crt)
{
	gnutls_datum_t d = { NULL, 0 };

	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		return NULL;
	return datum_to_str(&d);
}

char *
cert_key_pem(gnutls_x509_privkey_t key)
{
	gnutls_datum_t d = { NULL, 0 };

	if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d) < 0)
		return NULL;
	return datum_to_str(&d);
}

static int
hex_colon(const unsigned char *b, size_t n, char *buf, size_t len)
{
	if (n == 0 || len < n * 3)
		return -1;
	for (size_t i = 0; i < n; i++)
		snprintf(buf + i * 3, 4, "%02x%s", b[i], i + 1 < n ? ":" : "");
	return 0;
}

int
cert_serial_hex(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	unsigned char b[64];
	size_t n = sizeof(b);

	if (gnutls_x509_crt_get_serial(crt, b, &n) < 0)
		return -1;
	return hex_colon(b, n, buf, len);
}

int
cert_key_id_hex(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	unsigned char b[64];
	size_t n = sizeof(b);
	unsigned crit = 0;

	if (gnutls_x509_crt_get_subject_key_id(crt, b, &n, &crit) < 0) {
		n = sizeof(b);
		if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, b,
		    &n) < 0)
			return -1;
	}
	return hex_colon(b, n, buf, len);
}

int
cert_fingerprint_hex(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	unsigned char b[64];
	size_t n = sizeof(b);

	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA1, b, &n) < 0)
		return -1;
	return hex_colon(b, n, buf, len);
}
