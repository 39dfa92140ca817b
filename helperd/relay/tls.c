#include "helperd/relay/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/relay/policy.h"

/* TLS 1.3 only; AES-128-GCM first (cheapest with AES-NI), then the rest
 * of the AEADs; P-256 and X25519 key exchange; ECDSA P-256 signatures. */
#define TLS_PRIORITY "NONE:+VERS-TLS1.3:+AES-128-GCM:+AES-256-GCM:" \
	"+CHACHA20-POLY1305:+AEAD:+SIGN-ECDSA-SECP256R1-SHA256:" \
	"+GROUP-X25519:+GROUP-SECP256R1:+CTYPE-X509:+COMP-NULL:" \
	"%SERVER_PRECEDENCE"

/* The two ends of a same-node pair are both this process, talking over a
 * link in memory (relay_mem.c): nobody can record that leg without
 * reading helperd's memory, where the ticket key lives anyway. A resumed
 * session there uses psk_ke (no ECDHE: forward secrecy buys nothing on
 * that leg); every session that crosses a network keeps psk_dhe_ke. */
#define TLS_PRIORITY_LOCAL TLS_PRIORITY ":+PSK"

static gnutls_priority_t tls_prio, tls_prio_local;

/* Sessions that cross a network offer to carry streams, one after
 * another (relay_stream.c); a peer that does not know it answers no
 * ALPN and the session carries one connection, as before. */
static const gnutls_datum_t tls_alpn = {
	(unsigned char *)TLS_ALPN_STREAM, sizeof(TLS_ALPN_STREAM) - 1
};

/* Bumped by tls_tickets_reset: sessions verified before it carry no new
 * stream. */
static atomic_uint_fast64_t tls_generation;
static int verify_cb(gnutls_session_t session);

/* The ticket key, the ticket cache and the verified-leaf cache are this
 * file's own state, shared by the workers: tls_mu guards them, held only
 * to copy in or out (never across a handshake or a verification). */
static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;

/* Session resumption. The server encrypts tickets with one key per
 * process, replaced whenever a leaf or the root changes (old tickets then
 * simply fall back to a full handshake). The client keeps a few tickets
 * per (source, destination) pair and uses each once. */
#define TLS_CACHE_MAX 64
static gnutls_datum_t tls_ticket_key;
static struct tls_ticket {
	char pair[130];
	gnutls_datum_t data;
} tls_cache[TLS_CACHE_MAX];
static size_t tls_cache_next;

/* Peer leaves already verified (by SHA-256 of the DER), per trust
 * generation (policy_trust_gen: an entry verified against other roots is
 * never used); also emptied with the tickets. */
#define TLS_VERIFIED_MAX 256
static struct tls_verified {
	unsigned char digest[32];
	uint64_t gen;
	int valid, server;
	int64_t not_after;
	char service[64];
	char spiffe[256];
} tls_verified[TLS_VERIFIED_MAX];

int
tls_global_init(char *err, size_t errlen)
{
	const char *pos = NULL;
	int rc;

	rc = gnutls_priority_init(&tls_prio, TLS_PRIORITY, &pos);
	if (rc >= 0)
		rc = gnutls_priority_init(&tls_prio_local, TLS_PRIORITY_LOCAL,
		    &pos);
	if (rc < 0) {
		snprintf(err, errlen, "TLS priority string at '%s': %s",
		    pos ? pos : "?", gnutls_strerror(rc));
		return -1;
	}
	rc = gnutls_session_ticket_key_generate(&tls_ticket_key);
	if (rc < 0) {
		snprintf(err, errlen, "TLS ticket key: %s", gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

static void
cache_clear(void)
{
	for (size_t i = 0; i < TLS_CACHE_MAX; i++) {
		gnutls_free(tls_cache[i].data.data);
		tls_cache[i].data.data = NULL;
		tls_cache[i].data.size = 0;
		tls_cache[i].pair[0] = '\0';
	}
}

void
tls_tickets_reset(void)
{
	gnutls_datum_t k;
	int rc = gnutls_session_ticket_key_generate(&k);

	pthread_mutex_lock(&tls_mu);
	atomic_fetch_add(&tls_generation, 1);
	cache_clear();
	memset(tls_verified, 0, sizeof(tls_verified));
	if (rc == 0) {
		gnutls_memset(tls_ticket_key.data, 0, tls_ticket_key.size);
		gnutls_free(tls_ticket_key.data);
		tls_ticket_key = k;
	}
	pthread_mutex_unlock(&tls_mu);
}

static void
pair_key(char *buf, size_t len, const struct tls_peer *p)
{
	snprintf(buf, len, "%s>%s", p->local_service, p->expect);
}

/* Client: keep every ticket the server sends (a GnuTLS server sends two
 * per handshake, full or resumed): a pair then gains a ticket with each
 * connection, and connections that start at once find one each instead
 * of falling back to a full handshake (public-key operations at both
 * ends, ten times a resumption's CPU). A handshake hook, so it runs
 * whenever GnuTLS handles a NewSessionTicket, handshake or relay. */
static int
ticket_hook(gnutls_session_t s, unsigned int htype, unsigned int when,
    unsigned int incoming, const gnutls_datum_t *msg)
{
	struct tls_peer *p = gnutls_session_get_ptr(s);
	struct tls_ticket *t;
	gnutls_datum_t d;

	(void)msg;
	if (htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET ||
	    when != GNUTLS_HOOK_POST || !incoming || p == NULL ||
	    gnutls_session_get_data2(s, &d) < 0)
		return 0;
	pthread_mutex_lock(&tls_mu);
	t = &tls_cache[tls_cache_next];
	tls_cache_next = (tls_cache_next + 1) % TLS_CACHE_MAX;
	gnutls_free(t->data.data);
	t->data = d;
	pair_key(t->pair, sizeof(t->pair), p);
	pthread_mutex_unlock(&tls_mu);
	log_debug("TLS: session ticket kept for %s > %s", p->local_service,
	    p->expect);
	return 0;
}

/* Take a ticket for the pair of p (once), or 0 if none. */
static int
ticket_take(const struct tls_peer *p, gnutls_session_t s)
{
	char pair[130];
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	pair_key(pair, sizeof(pair), p);
	pthread_mutex_lock(&tls_mu);
	for (size_t i = 0; i < TLS_CACHE_MAX; i++) {
		struct tls_ticket *t = &tls_cache[i];

		if (t->data.data == NULL || strcmp(t->pair, pair) != 0)
			continue;
		d = t->data;
		t->data.data = NULL;
		t->data.size = 0;
		t->pair[0] = '\0';
		break;
	}
	pthread_mutex_unlock(&tls_mu);
	if (d.data == NULL)
		return 0;
	rc = gnutls_session_set_data(s, d.data, d.size);
	gnutls_free(d.data);
	return rc == 0;
}

uint64_t
tls_gen(void)
{
	return atomic_load(&tls_generation);
}

int
tls_handshake_done(struct tls_peer *p, gnutls_session_t s)
{
	gnutls_datum_t proto;

	p->stream = !p->same_process &&
	    gnutls_alpn_get_selected_protocol(s, &proto) == 0 &&
	    proto.size == tls_alpn.size &&
	    memcmp(proto.data, tls_alpn.data, proto.size) == 0;
	/* A resumed session exchanged no certificates, so the verify
	 * callback did not run: check the identity the ticket carries
	 * (still valid, still chained to a trusted root) the same way. */
	if (!gnutls_session_is_resumed(s))
		return 0;
	p->resumed = 1;
	return verify_cb(s) == 0 ? 0 : -1;
}

void
tls_global_deinit(void)
{
	if (tls_prio != NULL)
		gnutls_priority_deinit(tls_prio);
	if (tls_prio_local != NULL)
		gnutls_priority_deinit(tls_prio_local);
	tls_prio = tls_prio_local = NULL;
	pthread_mutex_lock(&tls_mu);
	cache_clear();
	pthread_mutex_unlock(&tls_mu);
	if (tls_ticket_key.data != NULL) {
		gnutls_memset(tls_ticket_key.data, 0, tls_ticket_key.size);
		gnutls_free(tls_ticket_key.data);
		tls_ticket_key.data = NULL;
	}
}

int
tls_sni_name(char *buf, size_t len, const char *service, const char *dc,
    const char *td)
{
	int n = snprintf(buf, len, "%s.default.%s.internal.%s", service, dc,
	    td);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
tls_sni_service(const char *sni, const char *dc, const char *td,
    char *service, size_t len)
{
	char suffix[512];
	const char *dot = strchr(sni, '.');
	size_t n;

	if (dot == NULL)
		return -1;
	n = (size_t)(dot - sni);
	if (n == 0 || n >= len)
		return -1;
	if ((size_t)snprintf(suffix, sizeof(suffix), ".default.%s.internal.%s",
	    dc, td) >= sizeof(suffix))
		return -1;
	if (strcasecmp(dot, suffix) != 0)
		return -1;
	memcpy(service, sni, n);
	service[n] = '\0';
	return conf_valid_name(service) ? 0 : -1;
}

/* Verify the peer's chain and SPIFFE ID against the roots of the
 * connection's policy snapshot (p->pol, set by the relay for the step
 * that runs the handshake). */
static int
verify_cb(gnutls_session_t session)
{
	struct tls_peer *p = gnutls_session_get_ptr(session);
	const gnutls_datum_t *chain;
	unsigned n = 0;
	struct tls_verified *v, hit;
	unsigned char digest[32];
	int64_t now = (int64_t)time(NULL);
	uint64_t gen = policy_trust_gen(p->pol);
	int found = 0;

	/* The same peer leaf comes back on every connection of a pair:
	 * its chain is verified once per trust generation, then recognised
	 * by its SHA-256 (validity is still checked every time; GnuTLS
	 * itself still checks the handshake signature of a full one). */
	chain = gnutls_certificate_get_peers(session, &n);
	if (chain != NULL && n > 0 && gnutls_hash_fast(GNUTLS_DIG_SHA256,
	    chain[0].data, chain[0].size, digest) == 0) {
		pthread_mutex_lock(&tls_mu);
		v = &tls_verified[digest[0] % TLS_VERIFIED_MAX];
		if (v->valid && v->gen == gen &&
		    memcmp(v->digest, digest, 32) == 0 &&
		    v->server == p->server && now < v->not_after &&
		    (p->server || strcmp(v->service, p->expect) == 0)) {
			hit = *v;
			found = 1;
		}
		pthread_mutex_unlock(&tls_mu);
		if (found) {
			util_strlcpy(p->peer_service, hit.service,
			    sizeof(p->peer_service));
			util_strlcpy(p->peer_spiffe, hit.spiffe,
			    sizeof(p->peer_spiffe));
			return 0;
		}
	} else {
		chain = NULL;
	}
	if (ca_verify_peer(policy_trust(p->pol), policy_trust_domain(p->pol),
	    session, p->server ? NULL : p->expect, p->peer_service,
	    sizeof(p->peer_service), p->peer_spiffe, sizeof(p->peer_spiffe),
	    p->why, sizeof(p->why)) != 0)
		return GNUTLS_E_CERTIFICATE_ERROR;
	if (chain != NULL) {
		gnutls_x509_crt_t crt;

		memset(&hit, 0, sizeof(hit));
		if (gnutls_x509_crt_init(&crt) == 0) {
			if (gnutls_x509_crt_import(crt, &chain[0],
			    GNUTLS_X509_FMT_DER) == 0) {
				memcpy(hit.digest, digest, 32);
				hit.gen = gen;
				hit.server = p->server;
				hit.not_after = (int64_t)
				    gnutls_x509_crt_get_expiration_time(crt);
				util_strlcpy(hit.service, p->peer_service,
				    sizeof(hit.service));
				util_strlcpy(hit.spiffe, p->peer_spiffe,
				    sizeof(hit.spiffe));
				hit.valid = 1;
			}
			gnutls_x509_crt_deinit(crt);
		}
		if (hit.valid) {
			pthread_mutex_lock(&tls_mu);
			tls_verified[digest[0] % TLS_VERIFIED_MAX] = hit;
			pthread_mutex_unlock(&tls_mu);
		}
	}
	return 0;
}

/* Server: choose the destination service's leaf from the SNI name, in
 * the connection's policy snapshot. */
static int
client_hello_cb(gnutls_session_t session)
{
	struct tls_peer *p = gnutls_session_get_ptr(session);
	char sni[256];
	size_t len = sizeof(sni) - 1;
	unsigned type;

	if (gnutls_server_name_get(session, sni, &len, &type, 0) != 0 ||
	    type != GNUTLS_NAME_DNS) {
		util_strlcpy(p->why, "no SNI server name", sizeof(p->why));
		return GNUTLS_E_UNRECOGNIZED_NAME;
	}
	sni[len] = '\0';
	if (tls_sni_service(sni, p->datacenter,
	    policy_trust_domain(p->pol), p->local_service,
	    sizeof(p->local_service)) != 0) {
		snprintf(p->why, sizeof(p->why), "SNI %.200s is not a service "
		    "of this mesh and datacenter", sni);
		return GNUTLS_E_UNRECOGNIZED_NAME;
	}
	if (!policy_local_served(p->pol, p->local_service)) {
		snprintf(p->why, sizeof(p->why), "service %s is not a "
		    "connect-enabled service of this node", p->local_service);
		return GNUTLS_E_UNRECOGNIZED_NAME;
	}
	/* A relay worker: never issue a key here (the main loop gets every
	 * local service's leaf when the service appears). */
	ca_leaf_unref(p->leaf);
	p->leaf = policy_leaf(p->pol, p->local_service);
	if (p->leaf == NULL) {
		snprintf(p->why, sizeof(p->why), "no certificate for %.63s "
		    "yet", p->local_service);
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	ca_leaf_ref(p->leaf);
	return gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
	    p->leaf->cred);
}

static gnutls_session_t
session_new(int fd, struct tls_peer *peer, unsigned flags)
{
	gnutls_session_t s;

	if (gnutls_init(&s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
		return NULL;
	if (gnutls_priority_set(s, peer->same_process ? tls_prio_local :
	    tls_prio) < 0) {
		gnutls_deinit(s);
		return NULL;
	}
	gnutls_session_set_ptr(s, peer);
	gnutls_session_set_verify_function(s, verify_cb);
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, 0);
	return s;
}

gnutls_session_t
tls_server_new(int fd, struct tls_peer *peer)
{
	gnutls_session_t s = session_new(fd, peer, GNUTLS_SERVER);
	int rc;

	if (s == NULL)
		return NULL;
	peer->server = 1;
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
	/* GnuTLS copies the key; the main thread replaces it
	 * (tls_tickets_reset). */
	pthread_mutex_lock(&tls_mu);
	rc = gnutls_session_ticket_enable_server(s, &tls_ticket_key);
	pthread_mutex_unlock(&tls_mu);
	if (rc < 0) {
		gnutls_deinit(s);
		return NULL;
	}
	gnutls_handshake_set_post_client_hello_function(s, client_hello_cb);
	if (!peer->same_process &&
	    gnutls_alpn_set_protocols(s, &tls_alpn, 1, 0) < 0) {
		gnutls_deinit(s);
		return NULL;
	}
	return s;
}

gnutls_session_t
tls_client_new(int fd, struct tls_peer *peer)
{
	gnutls_session_t s;
	char sni[256];

	if (tls_sni_name(sni, sizeof(sni), peer->expect, peer->datacenter,
	    policy_trust_domain(peer->pol)) != 0)
		return NULL;
	/* One key share, X25519's (the first group; every helperd takes
	 * it), not GnuTLS's default of two: the second, P-256's, was a key
	 * generation per handshake that no server used, resumed ones too
	 * (about a tenth of helperd's CPU under new same-node connections). */
	s = session_new(fd, peer, GNUTLS_CLIENT | GNUTLS_KEY_SHARE_TOP);
	if (s == NULL)
		return NULL;
	peer->server = 0;
	if (gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni)) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
	    peer->leaf->cred) < 0 || (!peer->same_process &&
	    gnutls_alpn_set_protocols(s, &tls_alpn, 1, 0) < 0)) {
		gnutls_deinit(s);
		return NULL;
	}
	ticket_take(peer, s);
	gnutls_handshake_set_hook_function(s,
	    GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST, ticket_hook);
	return s;
}

void
tls_peer_release(struct tls_peer *peer)
{
	if (peer->leaf != NULL)
		ca_leaf_unref(peer->leaf);
	peer->leaf = NULL;
	peer->pol = NULL;
}
