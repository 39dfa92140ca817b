/* tls_rec: TLS 1.3 records in our buffers (tls_rec.h). The record
 * protection of RFC 8446 5.2 and 5.3: a header of outer type
 * application_data (23), version 0x0303 and the length of what follows;
 * the plaintext followed by its real content type (no padding when we
 * seal); the header is the additional data; the nonce is the static IV
 * of gnutls_record_get_state() (12 bytes) XOR the 64-bit sequence number
 * in network order, left-padded. */
#include "helperd/relay/tls_rec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#define NONCE_LEN 12
#define TAG_LEN   16
#define KEY_MAX   32
#define CT_APPLICATION_DATA 23

struct rec_dir {
	gnutls_aead_cipher_hd_t h;      /* NULL until the first sync */
	unsigned char key[KEY_MAX], iv[NONCE_LEN];
	size_t key_len;
	uint64_t seq;                   /* of the next record */
};

struct tls_rec {
	gnutls_session_t s;
	gnutls_cipher_algorithm_t alg;
	struct rec_dir d[2];            /* [TLS_REC_WRITE], [TLS_REC_READ] */
};

static _Atomic uint64_t rekey_at = TLS_REC_REKEY_AT;

void
tls_rec_set_rekey_at(uint64_t records)
{
	atomic_store(&rekey_at, records);
}

static size_t
key_len(gnutls_cipher_algorithm_t alg)
{
	switch (alg) {
	case GNUTLS_CIPHER_AES_128_GCM:
		return 16;
	case GNUTLS_CIPHER_AES_256_GCM:
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		return 32;
	default:
		return 0;
	}
}

struct tls_rec *
tls_rec_new(gnutls_session_t s)
{
	struct tls_rec *r;
	gnutls_cipher_algorithm_t alg = gnutls_cipher_get(s);

	/* We seal full 16 KiB records: not for a peer that asked for
	 * smaller ones (record_size_limit). */
	if (gnutls_protocol_get_version(s) != GNUTLS_TLS1_3 ||
	    key_len(alg) == 0 || gnutls_record_get_max_size(s) <
	    TLS_REC_DATA_MAX)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->s = s;
	r->alg = alg;
	if (tls_rec_sync(r, TLS_REC_WRITE) != 0 ||
	    tls_rec_sync(r, TLS_REC_READ) != 0) {
		tls_rec_free(r);
		return NULL;
	}
	return r;
}

static void
dir_clear(struct rec_dir *d)
{
	if (d->h != NULL)
		gnutls_aead_cipher_deinit(d->h);
	d->h = NULL;
	explicit_bzero(d->key, sizeof(d->key));
	explicit_bzero(d->iv, sizeof(d->iv));
}

void
tls_rec_free(struct tls_rec *r)
{
	if (r == NULL)
		return;
	dir_clear(&r->d[0]);
	dir_clear(&r->d[1]);
	free(r);
}

static uint64_t
get_be64(const unsigned char b[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static void
put_be64(unsigned char b[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

int
tls_rec_sync(struct tls_rec *r, int dir)
{
	struct rec_dir *d = &r->d[dir];
	gnutls_datum_t iv, key;
	unsigned char seq[8];
	size_t klen = key_len(r->alg);

	if (gnutls_record_get_state(r->s, dir == TLS_REC_READ, NULL, &iv,
	    &key, seq) < 0 || iv.size != NONCE_LEN || key.size != klen)
		return -1;
	if (d->h == NULL || memcmp(d->key, key.data, klen) != 0 ||
	    memcmp(d->iv, iv.data, NONCE_LEN) != 0) {
		/* The first sync, or a key update since the last. */
		dir_clear(d);
		if (gnutls_aead_cipher_init(&d->h, r->alg, &key) < 0) {
			d->h = NULL;
			return -1;
		}
		memcpy(d->key, key.data, klen);
		memcpy(d->iv, iv.data, NONCE_LEN);
		d->key_len = klen;
	}
	d->seq = get_be64(seq);
	return 0;
}

int
tls_rec_commit(struct tls_rec *r, int dir)
{
	unsigned char seq[8];

	put_be64(seq, r->d[dir].seq);
	return gnutls_record_set_state(r->s, dir == TLS_REC_READ, seq) < 0 ?
	    -1 : 0;
}

int
tls_rec_rekey_due(const struct tls_rec *r)
{
	return r->d[TLS_REC_WRITE].seq >= atomic_load(&rekey_at);
}

static void
nonce_of(const struct rec_dir *d, unsigned char nonce[NONCE_LEN])
{
	unsigned char seq[8];

	put_be64(seq, d->seq);
	memcpy(nonce, d->iv, NONCE_LEN);
	for (int i = 0; i < 8; i++)
		nonce[NONCE_LEN - 8 + i] ^= seq[i];
}

static void
header(unsigned char *h, size_t len)
{
	h[0] = CT_APPLICATION_DATA;
	h[1] = 3;
	h[2] = 3;
	h[3] = (unsigned char)(len >> 8);
	h[4] = (unsigned char)len;
}

/* A copy of data into the record, sealed in place. */
static int
seal_copy(struct rec_dir *d, const unsigned char *nonce,
    const unsigned char *data, size_t len, unsigned char *out)
{
	unsigned char *body = out + TLS_REC_HEADER;
	giovec_t aad = { out, TLS_REC_HEADER };
	giovec_t io = { body, len + 1 };
	size_t tag_len = TAG_LEN;

	memcpy(body, data, len);
	body[len] = CT_APPLICATION_DATA;
	return gnutls_aead_cipher_encryptv2(d->h, nonce, NONCE_LEN, &aad, 1,
	    &io, 1, body + len + 1, &tag_len);
}

ssize_t
tls_rec_seal(struct tls_rec *r, unsigned char *data, size_t len, int spare,
    unsigned char *out)
{
	struct rec_dir *d = &r->d[TLS_REC_WRITE];
	unsigned char nonce[NONCE_LEN];
	size_t clen = len + 1 + TAG_LEN;
	int rc;

	if (len == 0 || len > TLS_REC_DATA_MAX || d->seq >= TLS_REC_SEAL_MAX)
		return -1;
	nonce_of(d, nonce);
	header(out, clen);
	if (spare) {
		/* The content type right after the data, for a moment: the
		 * cipher reads from data and writes the record. */
		unsigned char keep = data[len];

		data[len] = CT_APPLICATION_DATA;
		rc = gnutls_aead_cipher_encrypt(d->h, nonce, NONCE_LEN, out,
		    TLS_REC_HEADER, TAG_LEN, data, len + 1,
		    out + TLS_REC_HEADER, &clen);
		data[len] = keep;
	} else
		rc = seal_copy(d, nonce, data, len, out);
	if (rc < 0)
		return -1;
	d->seq++;
	return (ssize_t)(TLS_REC_HEADER + len + 1 + TAG_LEN);
}

/* The length of a record's body from its header; 0: not a TLS 1.3
 * protected record, or too long. */
static size_t
body_len(const unsigned char *h)
{
	size_t n = (size_t)h[3] << 8 | h[4];

	if (h[0] != CT_APPLICATION_DATA || h[1] != 3 || h[2] != 3 ||
	    n < 1 + TAG_LEN || n > TLS_REC_DATA_MAX + 256)
		return 0;
	return n;
}

size_t
tls_rec_size(const unsigned char h[TLS_REC_HEADER])
{
	size_t n = body_len(h);

	return n == 0 ? 0 : TLS_REC_HEADER + n;
}

enum tls_rec_open
tls_rec_open(struct tls_rec *r, const unsigned char *in, size_t avail,
    unsigned char *out, size_t *used, size_t *plain)
{
	struct rec_dir *d = &r->d[TLS_REC_READ];
	unsigned char nonce[NONCE_LEN];
	size_t clen, n;

	if (avail < TLS_REC_HEADER)
		return TLS_REC_SHORT;
	if ((clen = body_len(in)) == 0)
		return TLS_REC_BAD;
	if (avail < TLS_REC_HEADER + clen)
		return TLS_REC_SHORT;
	nonce_of(d, nonce);
	n = clen - TAG_LEN;
	if (gnutls_aead_cipher_decrypt(d->h, nonce, NONCE_LEN, in,
	    TLS_REC_HEADER, TAG_LEN, in + TLS_REC_HEADER, clen, out, &n) < 0)
		return TLS_REC_BAD;
	/* TLSInnerPlaintext: content, type, zeros. */
	while (n > 0 && out[n - 1] == 0)
		n--;
	if (n == 0)
		return TLS_REC_BAD;
	*used = TLS_REC_HEADER + clen;
	if (out[n - 1] != CT_APPLICATION_DATA)
		return TLS_REC_OTHER;
	if (--n > TLS_REC_DATA_MAX)
		return TLS_REC_BAD;
	d->seq++;
	*plain = n;
	return TLS_REC_DATA;
}
