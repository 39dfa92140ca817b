/* tls_rec: records sealed and opened in the relay's buffers (tls_rec.c,
 * through the TLS socket transport of relay_xprt.c), against a plain
 * GnuTLS session on the other end of a socketpair. Side A is the relay's
 * end (relay_xprt_tls(): its read, write and shutdown); side B is GnuTLS
 * alone, whose records the test hands to the socket in pieces of chosen
 * sizes, so that records split across A's reads wherever the test wants.
 * Bulk both ways, the three ciphers, key updates from each side, tickets
 * after the handshake, close_notify, a corrupted record, and GnuTLS's own
 * records mixed with ours. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "helperd/relay/relay_int.h"
#include "helperd/relay/tls_rec.h"

#define PRIO "NONE:+VERS-TLS1.3:+AEAD:+SIGN-ECDSA-SECP256R1-SHA256:" \
	"+GROUP-X25519:+CTYPE-X509:+COMP-NULL:"

struct rig {
	struct relay r;
	struct worker w;
	struct conn c;
	struct end e;                   /* A: the relay's end */
	struct pipe p;                  /* A's plaintext in and out */
	gnutls_session_t b;             /* B: GnuTLS alone */
	int fd[2];                      /* [0] A's socket, [1] B's */
	unsigned char *q;               /* B's records not yet on the socket */
	size_t qlen, qcap;
	size_t step;                    /* bytes of q handed over at once */
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t tkey;
	unsigned char *got_a, *got_b;   /* what each side read */
	size_t na, nb;
};

#define SINK (8u << 20)

static ssize_t
b_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct rig *g = ptr;

	if (g->qlen + len > g->qcap) {
		g->qcap = (g->qlen + len) * 2;
		cr_assert_not_null(g->q = realloc(g->q, g->qcap));
	}
	memcpy(g->q + g->qlen, data, len);
	g->qlen += len;
	return (ssize_t)len;
}

static ssize_t
b_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct rig *g = ptr;
	ssize_t n = recv(g->fd[1], data, len, 0);

	if (n < 0)
		gnutls_transport_set_errno(g->b, errno);
	return n;
}

/* Up to g->step bytes of B's records onto the socket. */
static void
forward(struct rig *g)
{
	size_t k = g->qlen < g->step ? g->qlen : g->step;
	ssize_t n;

	if (k == 0)
		return;
	n = send(g->fd[1], g->q, k, 0);
	if (n < 0) {
		cr_assert_eq(errno, EAGAIN);
		return;
	}
	memmove(g->q, g->q + n, g->qlen - (size_t)n);
	g->qlen -= (size_t)n;
}

static void
cert_new(struct rig *g)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	time_t now = time(NULL);

	cr_assert_eq(gnutls_x509_privkey_init(&key), 0);
	cr_assert_eq(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, "\x01", 1);
	gnutls_x509_crt_set_activation_time(crt, now - 60);
	gnutls_x509_crt_set_expiration_time(crt, now + 3600);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    "b", 1);
	gnutls_x509_crt_set_key(crt, key);
	cr_assert_eq(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256,
	    0), 0);
	cr_assert_eq(gnutls_certificate_allocate_credentials(&g->cred), 0);
	cr_assert_eq(gnutls_certificate_set_x509_key(g->cred, &crt, 1, key), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static gnutls_session_t
session(struct rig *g, int server, const char *cipher)
{
	gnutls_session_t s;
	char prio[256];

	cr_assert_eq(gnutls_init(&s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
	    GNUTLS_NONBLOCK), 0);
	snprintf(prio, sizeof(prio), "%s+%s", PRIO, cipher);
	cr_assert_eq(gnutls_priority_set_direct(s, prio, NULL), 0);
	cr_assert_eq(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
	    g->cred), 0);
	if (server)
		cr_assert_eq(gnutls_session_ticket_enable_server(s, &g->tkey),
		    0);
	return s;
}

/* A (the relay's end) is the client unless a_server; B the other. */
static struct rig *
rig_new(int a_server, const char *cipher)
{
	struct rig *g = calloc(1, sizeof(*g));
	int da = 0, db = 0;

	cr_assert_not_null(g);
	pthread_mutex_init(&g->r.pool_mu, NULL);
	g->w.r = &g->r;
	g->c.w = &g->w;
	g->e.c = &g->c;
	g->step = SIZE_MAX;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, g->fd), 0);
	for (int i = 0; i < 2; i++)
		fcntl(g->fd[i], F_SETFL, O_NONBLOCK);
	cert_new(g);
	cr_assert_eq(gnutls_session_ticket_key_generate(&g->tkey), 0);
	g->e.tls = session(g, a_server, cipher);
	g->e.w.fd = g->fd[0];
	gnutls_transport_set_int(g->e.tls, g->fd[0]);
	g->b = session(g, !a_server, cipher);
	gnutls_transport_set_ptr(g->b, g);
	gnutls_transport_set_push_function(g->b, b_push);
	gnutls_transport_set_pull_function(g->b, b_pull);
	for (int i = 0; i < 1000 && !(da && db); i++) {
		int rc;

		if (!da && (rc = gnutls_handshake(g->e.tls)) != GNUTLS_E_AGAIN) {
			cr_assert_eq(rc, 0, "A: %s", gnutls_strerror(rc));
			da = 1;
		}
		if (!db && (rc = gnutls_handshake(g->b)) != GNUTLS_E_AGAIN) {
			cr_assert_eq(rc, 0, "B: %s", gnutls_strerror(rc));
			db = 1;
		}
		forward(g);
	}
	cr_assert(da && db, "handshake");
	g->e.rec_tried = getenv("NO_REC") != NULL;
	g->e.x = relay_xprt_tls();
	g->e.x->start(&g->e);
	cr_assert_not_null(g->p.buf = malloc(RELAY_BUF));
	cr_assert_not_null(g->got_a = malloc(SINK));
	cr_assert_not_null(g->got_b = malloc(SINK));
	return g;
}

static void
rig_free(struct rig *g)
{
	tls_rec_free(g->e.rec);
	gnutls_deinit(g->e.tls);
	gnutls_deinit(g->b);
	relay_buf_put(&g->w, g->e.rbuf);
	relay_buf_put(&g->w, g->e.wbuf);
	for (size_t i = 0; i < g->w.n_pool; i++)
		free(g->w.pool[i]);
	relay_pool_fini(&g->r);
	gnutls_certificate_free_credentials(g->cred);
	gnutls_free(g->tkey.data);
	close(g->fd[0]);
	close(g->fd[1]);
	free(g->q);
	free(g->p.buf);
	free(g->got_a);
	free(g->got_b);
	free(g);
	tls_rec_set_rekey_at(TLS_REC_REKEY_AT);
}

/* B reads what A sent, until it would wait. */
static void
b_drain(struct rig *g)
{
	for (;;) {
		ssize_t n = gnutls_record_recv(g->b, g->got_b + g->nb,
		    SINK - g->nb);

		if (n == GNUTLS_E_AGAIN)
			return;
		cr_assert_gt(n, 0, "B read: %s", gnutls_strerror((int)n));
		g->nb += (size_t)n;
	}
}

/* A reads until it would wait: its last answer. */
static enum xio
a_drain(struct rig *g)
{
	enum xio rc;

	do {
		forward(g);
		g->p.off = g->p.len = 0;
		rc = g->e.x->read(&g->w, &g->e, &g->p);
		if (rc == XIO_OK) {
			cr_assert_leq(g->na + g->p.len, SINK);
			memcpy(g->got_a + g->na, g->p.buf, g->p.len);
			g->na += g->p.len;
		}
	} while (rc == XIO_OK || (rc == XIO_AGAIN && g->qlen > 0));
	return rc;
}

/* A writes len bytes of data, in pipes of at most chunk bytes. */
static void
a_send(struct rig *g, const unsigned char *data, size_t len, size_t chunk)
{
	while (len > 0) {
		size_t k = len < chunk ? len : chunk;

		memcpy(g->p.buf, data, k);
		g->p.off = 0;
		g->p.len = k;
		for (;;) {
			enum xio rc = g->e.x->write(&g->w, &g->e, &g->p);

			cr_assert_neq(rc, XIO_ERR);
			b_drain(g);
			if (rc == XIO_OK)
				break;
		}
		data += k;
		len -= k;
	}
	b_drain(g);
}

/* B writes len bytes, A reads them (records handed over g->step bytes
 * at a time). */
static void
b_send(struct rig *g, const unsigned char *data, size_t len, size_t chunk)
{
	while (len > 0) {
		size_t k = len < chunk ? len : chunk;
		ssize_t n = gnutls_record_send(g->b, data, k);

		cr_assert_gt(n, 0);
		data += n;
		len -= (size_t)n;
		if (g->qlen > (1u << 20))
			cr_assert_eq(a_drain(g), XIO_AGAIN);
	}
	cr_assert_eq(a_drain(g), XIO_AGAIN);
}

static unsigned char *
pattern(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len);

	cr_assert_not_null(b);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	return b;
}

static uint64_t
seq_of(gnutls_session_t s, int read)
{
	unsigned char q[8];
	uint64_t v = 0;

	cr_assert_eq(gnutls_record_get_state(s, read, NULL, NULL, NULL, q), 0);
	for (int i = 0; i < 8; i++)
		v = v << 8 | q[i];
	return v;
}

/* Both directions agree: what A sent B read, and the other way. */
static void
in_step(struct rig *g)
{
	forward(g);
	(void)a_drain(g);
	b_drain(g);
	cr_assert_eq(seq_of(g->e.tls, 0), seq_of(g->b, 1));
	cr_assert_eq(seq_of(g->b, 0), seq_of(g->e.tls, 1));
}

static void
bulk(const char *cipher, size_t total)
{
	static const size_t chunks[] = { 1, 100, 16384, 16385, 200000,
	    RELAY_BUF };
	static const size_t steps[] = { 1, 3, 5, 7, 1000, 16389, 65536,
	    SIZE_MAX };
	struct rig *g = rig_new(0, cipher);
	unsigned char *up = pattern(total, 1), *down = pattern(total, 2);
	size_t off = 0, i = 0;

	while (off < total) {
		size_t k = total - off < 300000 ? total - off : 300000;

		g->step = steps[i % (sizeof(steps) / sizeof(steps[0]))];
		if (g->step < 1000 && k > 12000)
			k = 12000;      /* a byte at a time is slow */
		a_send(g, up + off, k, chunks[i % 6]);
		b_send(g, down + off, k, chunks[(i + 3) % 6]);
		off += k;
		i++;
	}
	cr_assert_not_null(g->e.rec, "%s: sealed in our buffers", cipher);
	cr_assert_eq(g->nb, total);
	cr_assert_eq(g->na, total);
	cr_assert_arr_eq(g->got_b, up, total);
	cr_assert_arr_eq(g->got_a, down, total);
	in_step(g);
	free(up);
	free(down);
	rig_free(g);
}

Test(tls_rec, bulk_both_ways_records_split_across_reads)
{
	bulk("AES-128-GCM", 2u << 20);
}

Test(tls_rec, aes256_and_chacha20)
{
	bulk("AES-256-GCM", 600000);
	bulk("CHACHA20-POLY1305", 600000);
}

Test(tls_rec, other_ciphers_stay_with_gnutls)
{
	struct rig *g = rig_new(0, "AES-128-CCM");
	unsigned char *d = pattern(100000, 3);

	a_send(g, d, 100000, RELAY_BUF);
	b_send(g, d, 100000, 5000);
	cr_assert_null(g->e.rec);
	cr_assert_eq(g->na, 100000);
	cr_assert_arr_eq(g->got_b, d, 100000);
	free(d);
	rig_free(g);
}

/* A key update from each side in mid-stream: B's asks for A's (GnuTLS
 * sends it with A's next record), A's own comes when its write key has
 * sealed enough records (tls_rec_set_rekey_at). */
Test(tls_rec, key_updates_from_both_sides)
{
	struct rig *g = rig_new(0, "AES-128-GCM");
	unsigned char *d = pattern(1u << 20, 4);
	gnutls_datum_t k0, k1, k2;
	unsigned char before[16];

	a_send(g, d, 100000, RELAY_BUF);
	b_send(g, d, 100000, 16384);
	cr_assert_eq(gnutls_record_get_state(g->e.tls, 0, NULL, NULL, &k0,
	    NULL), 0);
	memcpy(before, k0.data, 16);
	cr_assert_eq(gnutls_session_key_update(g->b, GNUTLS_KU_PEER), 0);
	b_send(g, d + 100000, 100000, 7000);    /* new keys from B */
	a_send(g, d + 200000, 100000, RELAY_BUF);  /* A's answer first */
	cr_assert_eq(gnutls_record_get_state(g->e.tls, 0, NULL, NULL, &k1,
	    NULL), 0);
	cr_assert_neq(memcmp(before, k1.data, 16), 0, "A updated its key");
	memcpy(before, k1.data, 16);
	in_step(g);
	tls_rec_set_rekey_at(20);
	a_send(g, d + 300000, 700000, RELAY_BUF);
	cr_assert_eq(gnutls_record_get_state(g->e.tls, 0, NULL, NULL, &k2,
	    NULL), 0);
	cr_assert_neq(memcmp(before, k2.data, 16), 0, "A rekeyed itself");
	cr_assert_lt(seq_of(g->e.tls, 0), 40);
	b_send(g, d + 200000, 100000, 16384);
	cr_assert_eq(g->nb, 900000);
	cr_assert_arr_eq(g->got_b, d, 100000);
	cr_assert_arr_eq(g->got_b + 100000, d + 200000, 800000);
	cr_assert_eq(g->na, 300000);
	cr_assert_arr_eq(g->got_a, d, 300000);
	in_step(g);
	free(d);
	rig_free(g);
}

/* Tickets: B (the server) sends them with its handshake and once more in
 * mid-stream; A reads them between data records. */
Test(tls_rec, tickets_after_the_handshake)
{
	struct rig *g = rig_new(0, "AES-128-GCM");
	unsigned char *d = pattern(200000, 5);

	g->step = 100;
	b_send(g, d, 50000, 3000);
	cr_assert(gnutls_session_get_flags(g->e.tls) &
	    GNUTLS_SFLAGS_SESSION_TICKET, "A took B's ticket");
	cr_assert_eq(gnutls_session_ticket_send(g->b, 2, 0), 0);
	/* The tickets and the first bytes of the next record in one read:
	 * GnuTLS must take the tickets only. */
	g->step = g->qlen + 10;
	b_send(g, d + 50000, 150000, 16384);
	cr_assert_eq(g->na, 200000);
	cr_assert_arr_eq(g->got_a, d, 200000);
	a_send(g, d, 200000, 70000);
	cr_assert_arr_eq(g->got_b, d, 200000);
	in_step(g);
	free(d);
	rig_free(g);
}

/* A as the server: its tickets are GnuTLS's records in A's stream. */
Test(tls_rec, server_side_tickets_mixed_in)
{
	struct rig *g = rig_new(1, "AES-128-GCM");
	unsigned char *d = pattern(200000, 6);

	a_send(g, d, 60000, 20000);
	cr_assert_eq(gnutls_session_ticket_send(g->e.tls, 1, 0), 0);
	cr_assert_eq(g->e.x->write(&g->w, &g->e, &(struct pipe){ 0 }), XIO_OK);
	a_send(g, d + 60000, 140000, RELAY_BUF);
	b_drain(g);
	cr_assert(gnutls_session_get_flags(g->b) &
	    GNUTLS_SFLAGS_SESSION_TICKET, "B took A's ticket");
	cr_assert_eq(g->nb, 200000);
	cr_assert_arr_eq(g->got_b, d, 200000);
	in_step(g);
	free(d);
	rig_free(g);
}

/* close_notify both ways: B reads A's data, then the end; A reads B's,
 * then the end, again and again. */
Test(tls_rec, close_notify)
{
	struct rig *g = rig_new(0, "AES-128-GCM");
	unsigned char *d = pattern(70000, 7);

	a_send(g, d, 70000, RELAY_BUF);
	cr_assert_eq(g->e.x->shutdown(&g->w, &g->e), XIO_OK);
	cr_assert_eq(gnutls_record_recv(g->b, g->got_b, SINK), 0);
	cr_assert_eq(g->nb, 70000);
	cr_assert_gt(gnutls_record_send(g->b, d, 16384), 0);
	cr_assert_gt(gnutls_record_send(g->b, d + 16384, 3000), 0);
	cr_assert_eq(gnutls_bye(g->b, GNUTLS_SHUT_WR), 0);
	g->step = 4000;
	cr_assert_eq(a_drain(g), XIO_EOF);
	cr_assert_eq(g->na, 19384);
	cr_assert_arr_eq(g->got_a, d, 19384);
	g->p.len = 0;
	cr_assert_eq(g->e.x->read(&g->w, &g->e, &g->p), XIO_EOF);
	free(d);
	rig_free(g);
}

/* A record changed on the way fails the read and none of its bytes are
 * delivered; those before it are. */
Test(tls_rec, corrupted_record_fails)
{
	struct rig *g = rig_new(0, "AES-128-GCM");
	unsigned char *d = pattern(40000, 8);
	size_t first;
	enum xio rc;

	cr_assert_gt(gnutls_record_send(g->b, d, 10000), 0);
	first = g->qlen;
	cr_assert_gt(gnutls_record_send(g->b, d + 10000, 10000), 0);
	g->q[first + 100] ^= 0x40;
	g->step = SIZE_MAX;
	rc = a_drain(g);
	cr_assert_eq(rc, XIO_ERR);
	cr_assert_eq(g->na, 10000, "only the authentic record");
	cr_assert_arr_eq(g->got_a, d, 10000);
	g->p.len = 0;
	cr_assert_eq(g->e.x->read(&g->w, &g->e, &g->p), XIO_ERR);
	cr_assert_eq(g->p.len, 0);
	free(d);
	rig_free(g);
}

/* GnuTLS's own records between ours, both ways: gnutls_record_send on
 * A's session (through our wbuf), gnutls_record_recv on it (through
 * our rbuf), a key update it sends itself. */
Test(tls_rec, sequence_in_step_mixing_gnutls_and_ours)
{
	struct rig *g = rig_new(0, "AES-128-GCM");
	unsigned char *d = pattern(300000, 9), buf[20000];
	ssize_t n;

	a_send(g, d, 50000, RELAY_BUF);
	cr_assert_eq(gnutls_record_send(g->e.tls, d + 50000, 10000), 10000);
	a_send(g, d + 60000, 50000, RELAY_BUF);
	cr_assert_eq(gnutls_session_key_update(g->e.tls, 0), 0);
	a_send(g, d + 110000, 50000, RELAY_BUF);
	cr_assert_eq(g->nb, 160000);
	cr_assert_arr_eq(g->got_b, d, 160000);
	in_step(g);

	b_send(g, d, 40000, 16384);
	cr_assert_gt(gnutls_record_send(g->b, d + 40000, 12000), 0);
	g->step = SIZE_MAX;
	forward(g);
	n = gnutls_record_recv(g->e.tls, buf, sizeof(buf));
	cr_assert_eq(n, 12000, "GnuTLS reads our rbuf: %zd", n);
	cr_assert_arr_eq(buf, d + 40000, 12000);
	b_send(g, d + 52000, 30000, 16384);
	cr_assert_eq(g->na, 70000);
	cr_assert_arr_eq(g->got_a, d, 40000);
	cr_assert_arr_eq(g->got_a + 40000, d + 52000, 30000);
	in_step(g);
	free(d);
	rig_free(g);
}
