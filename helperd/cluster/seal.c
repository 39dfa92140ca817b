/* seal: a secret sealed for the cluster store (see seal.h). */
#include "helperd/cluster/seal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "helperd/cluster/store_etcd.h"

#define SEAL_SALT       "meshshim seal v1"
#define SEAL_NONCE      12
#define SEAL_TAG        16
#define SEAL_KEY        32

/* key = HKDF-SHA256(pass, salt, info = purpose). 0/-1. */
static int
derive(const char *pass, const char *purpose, unsigned char key[SEAL_KEY])
{
	unsigned char prk[32];
	gnutls_datum_t ikm = { (unsigned char *)pass, (unsigned)strlen(pass) };
	gnutls_datum_t salt = { (unsigned char *)SEAL_SALT,
	    (unsigned)strlen(SEAL_SALT) };
	gnutls_datum_t info = { (unsigned char *)purpose,
	    (unsigned)strlen(purpose) };
	gnutls_datum_t k = { prk, sizeof(prk) };
	int rc;

	rc = gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, prk) == 0 &&
	    gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &k, &info, key,
	    SEAL_KEY) == 0 ? 0 : -1;
	gnutls_memset(prk, 0, sizeof(prk));
	return rc;
}

static gnutls_aead_cipher_hd_t
cipher(const char *pass, const char *purpose)
{
	unsigned char key[SEAL_KEY];
	gnutls_datum_t k = { key, sizeof(key) };
	gnutls_aead_cipher_hd_t h = NULL;

	if (derive(pass, purpose, key) != 0 ||
	    gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &k) < 0)
		h = NULL;
	gnutls_memset(key, 0, sizeof(key));
	return h;
}

char *
seal_box(const char *pass, const char *purpose, const char *aad,
    const void *plain, size_t len, char *err, size_t errlen)
{
	unsigned char nonce[SEAL_NONCE], *ct = NULL;
	size_t ctlen = len + SEAL_TAG;
	gnutls_aead_cipher_hd_t h = NULL;
	char *n64 = NULL, *c64 = NULL, *out = NULL;
	json_t *j;

	if (pass[0] == '\0') {
		snprintf(err, errlen, "no passphrase to seal with");
		return NULL;
	}
	if ((ct = malloc(ctlen)) == NULL ||
	    gnutls_rnd(GNUTLS_RND_NONCE, nonce, sizeof(nonce)) != 0 ||
	    (h = cipher(pass, purpose)) == NULL ||
	    gnutls_aead_cipher_encrypt(h, nonce, sizeof(nonce), aad,
	    strlen(aad), SEAL_TAG, plain, len, ct, &ctlen) < 0) {
		snprintf(err, errlen, "sealing failed (AES-256-GCM)");
		goto out;
	}
	n64 = etcd_b64_encode(nonce, sizeof(nonce));
	c64 = etcd_b64_encode(ct, ctlen);
	j = n64 != NULL && c64 != NULL ? json_pack("{s:i, s:s, s:s, s:s}", "v",
	    1, "alg", "HKDF-SHA256/AES-256-GCM", "nonce", n64, "ct", c64) :
	    NULL;
	out = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (out == NULL)
		snprintf(err, errlen, "out of memory");
out:
	if (h != NULL)
		gnutls_aead_cipher_deinit(h);
	free(ct);
	free(n64);
	free(c64);
	return out;
}

char *
seal_open(const char *pass, const char *purpose, const char *aad,
    const char *box, size_t *len, char *err, size_t errlen)
{
	json_t *j = json_loads(box, 0, NULL);
	const char *n64 = json_string_value(json_object_get(j, "nonce"));
	const char *c64 = json_string_value(json_object_get(j, "ct"));
	unsigned char *nonce = NULL, *ct = NULL;
	size_t nlen = 0, clen = 0, plen = 0;
	gnutls_aead_cipher_hd_t h = NULL;
	char *plain = NULL;

	if (json_integer_value(json_object_get(j, "v")) != 1 || n64 == NULL ||
	    c64 == NULL || (nonce = (unsigned char *)etcd_b64_decode(n64,
	    &nlen)) == NULL || nlen != SEAL_NONCE ||
	    (ct = (unsigned char *)etcd_b64_decode(c64, &clen)) == NULL ||
	    clen < SEAL_TAG) {
		snprintf(err, errlen, "not a sealed box (v 1)");
		goto out;
	}
	plen = clen;
	if ((plain = malloc(plen + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((h = cipher(pass, purpose)) == NULL ||
	    gnutls_aead_cipher_decrypt(h, nonce, nlen, aad, strlen(aad),
	    SEAL_TAG, ct, clen, plain, &plen) < 0) {
		snprintf(err, errlen, "it does not open with this passphrase "
		    "(or it was altered)");
		gnutls_memset(plain, 0, clen);
		free(plain);
		plain = NULL;
		goto out;
	}
	plain[plen] = '\0';
	if (len != NULL)
		*len = plen;
out:
	if (h != NULL)
		gnutls_aead_cipher_deinit(h);
	json_decref(j);
	free(nonce);
	free(ct);
	return plain;
}
