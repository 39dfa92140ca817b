/* tls_rec: TLS 1.3 application data records sealed and opened in the
 * relay's own buffers, with the keys and sequence numbers of an
 * established GnuTLS session (gnutls_record_get_state(), as kTLS takes
 * them), instead of through GnuTLS's record layer and its transport
 * callbacks: no copy into GnuTLS's buffer and out again, no allocation per
 * record. Only AES-128-GCM, AES-256-GCM and CHACHA20-POLY1305 sessions;
 * anything else stays with GnuTLS.
 *
 * GnuTLS stays the owner of the session: a caller takes the state of a
 * direction (tls_rec_sync) before each batch of records and gives the
 * sequence number back (tls_rec_commit) after it, so whatever GnuTLS
 * sends or reads itself in between (close_notify, alerts, key updates,
 * tickets, records of its own) stays in step. Records that are not
 * application data are opened here only to learn their type; the caller
 * hands them to GnuTLS (tls_rec_open: TLS_REC_OTHER). */
#ifndef MESH_TLS_REC_H
#define MESH_TLS_REC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#define TLS_REC_HEADER   5
#define TLS_REC_OVERHEAD (TLS_REC_HEADER + 1 + 16) /* header, type, tag */
#define TLS_REC_DATA_MAX (16 * 1024)               /* plaintext */
/* Most plaintext one record may open into (content, type, padding). */
#define TLS_REC_PLAIN_MAX (TLS_REC_DATA_MAX + 256)

enum { TLS_REC_WRITE = 0, TLS_REC_READ = 1 };

/* What tls_rec_open found at the head of the bytes it was given. */
enum tls_rec_open {
	TLS_REC_DATA,   /* application data, opened: *plain bytes */
	TLS_REC_SHORT,  /* not a whole record yet */
	TLS_REC_OTHER,  /* a whole record (*used bytes) that is not
	                   application data: for GnuTLS, not consumed */
	TLS_REC_BAD,    /* malformed or not authentic: the session fails */
};

struct tls_rec;

/* A sealer and opener for s, once its handshake is done. NULL when s
 * cannot be offloaded (not TLS 1.3, another cipher) or out of memory. */
struct tls_rec *tls_rec_new(gnutls_session_t s);
void tls_rec_free(struct tls_rec *r);

/* Take dir's keys and sequence number from the session (new keys after a
 * key update re-key the cipher). 0/-1. */
int tls_rec_sync(struct tls_rec *r, int dir);
/* Give the session dir's sequence number as we left it. 0/-1. */
int tls_rec_commit(struct tls_rec *r, int dir);

/* Seal len bytes (1..TLS_REC_DATA_MAX) of data into one record at out
 * (len + TLS_REC_OVERHEAD bytes). spare: data[len] is ours to use for a
 * moment (restored): the record is sealed from data without a copy.
 * The record's size, or -1. */
ssize_t tls_rec_seal(struct tls_rec *r, unsigned char *data, size_t len,
    int spare, unsigned char *out);
/* Look at the record at in (avail bytes). DATA: its plaintext is at out
 * (room: TLS_REC_PLAIN_MAX), *plain bytes, *used bytes of in consumed.
 * OTHER: *used is the record's size. */
enum tls_rec_open tls_rec_open(struct tls_rec *r, const unsigned char *in,
    size_t avail, unsigned char *out, size_t *used, size_t *plain);

/* The size of the record whose header is h, header included; 0: not a
 * TLS 1.3 protected record (or longer than one may be). */
size_t tls_rec_size(const unsigned char h[TLS_REC_HEADER]);

/* The write key has sealed as many records as we let it: a key update
 * (gnutls_session_key_update) is due before the next. */
int tls_rec_rekey_due(const struct tls_rec *r);
/* Tests: rekey after this many records (default TLS_REC_REKEY_AT). */
void tls_rec_set_rekey_at(uint64_t records);

/* AES-GCM in TLS 1.3 allows about 2^24.5 full records per key (RFC 8446
 * 5.5; GnuTLS updates its own keys at 2^24 - 3): we update at 2^23, and
 * never seal past 2^24. */
#define TLS_REC_REKEY_AT ((uint64_t)1 << 23)
#define TLS_REC_SEAL_MAX ((uint64_t)1 << 24)

#endif
