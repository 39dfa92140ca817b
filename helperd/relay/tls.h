/* tls: GnuTLS sessions for the mesh port: TLS 1.3 only, AES-128-GCM first,
 * both sides verified (ca_verify_peer, against the roots of the relay's
 * policy snapshot) from a callback during the handshake. The server picks the destination service (and so its leaf)
 * from the SNI name <service>.default.<dc>.internal.<trust-domain>. */
#ifndef MESH_TLS_H
#define MESH_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>

struct ca_leaf;
struct policy;

/* What a session knows about its two ends; embedded in a connection and
 * attached to the session with gnutls_session_set_ptr. */
struct tls_peer {
	const char *datacenter;     /* the node's (set at start, never
	                               changed by a reload) */
	int server;                 /* we accepted */
	char local_service[64];     /* server: chosen by SNI; client: source */
	char expect[64];            /* client: the service we dialled */
	char peer_service[64];      /* verified peer service */
	char peer_spiffe[256];
	struct ca_leaf *leaf;       /* reference held while the session lives */
	const struct policy *pol;   /* the snapshot the TLS callbacks read:
	                               set by the caller before
	                               tls_*_new and each handshake step,
	                               borrowed for that step only */
	char why[256];              /* reason of a failed handshake */
	int resumed;                /* the handshake resumed a session */
	int same_process;           /* both ends are this helperd (same-node
	                               pair, joined in memory) */
	int stream;                 /* the handshake agreed on streams
	                               (TLS_ALPN_STREAM) */
};

int tls_global_init(char *err, size_t errlen);
void tls_global_deinit(void);

/* New non-blocking server session on fd. NULL on error. */
gnutls_session_t tls_server_new(int fd, struct tls_peer *peer);
/* New client session on fd presenting peer->leaf, expecting peer->expect,
 * SNI for it. NULL on error. */
gnutls_session_t tls_client_new(int fd, struct tls_peer *peer);

/* SNI name of service in dc for trust domain td. 0/-1. */
int tls_sni_name(char *buf, size_t len, const char *service, const char *dc,
    const char *td);
/* Service from an SNI name; -1 when not ours. */
int tls_sni_service(const char *sni, const char *dc, const char *td,
    char *service, size_t len);

/* After a successful gnutls_handshake: a resumed session is verified here
 * (its certificates come from the ticket). 0 ok, -1 reject (p->why). */
int tls_handshake_done(struct tls_peer *p, gnutls_session_t s);
/* The ALPN name of sessions that carry streams (relay_stream.c). */
#define TLS_ALPN_STREAM "meshshim-stream/1"
/* Changes with every tls_tickets_reset (a leaf renewed, a root rotated). */
uint64_t tls_gen(void);
/* Forget every ticket and change the server's ticket key: after a leaf
 * renewal or a root rotation. */
void tls_tickets_reset(void);

/* Release the leaf reference held by peer. */
void tls_peer_release(struct tls_peer *peer);

#endif
