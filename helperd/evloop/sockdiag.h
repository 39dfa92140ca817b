/* sockdiag: look up and destroy one TCP socket by its 4-tuple, through the
 * kernel's sock_diag netlink interface (what `ss` and `ss -K` use).
 * Destroying needs CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY; a lookup
 * needs neither. Blocking calls, each bounded by a 500 ms receive timeout. */
#ifndef MESH_SOCKDIAG_H
#define MESH_SOCKDIAG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SOCKDIAG_NOCOOKIE UINT64_MAX    /* any socket with the 4-tuple */
#define SOCKDIAG_BATCH    64            /* lookups per sockdiag_query_many */

struct sockdiag;

/* One TCP socket as the kernel names it, seen from its own side: src is
 * its local address. Addresses are normalised (IPv4 as ::ffff:a.b.c.d);
 * ports in host order. */
struct sockdiag_id {
	struct in6_addr src, dst;
	uint16_t sport, dport;
	uint64_t cookie;                /* SOCKDIAG_NOCOOKIE: any */
};

/* What a lookup says about a socket. */
struct sockdiag_info {
	int state;                      /* TCP_ESTABLISHED.. (netinet/tcp.h) */
	uid_t uid;
	unsigned long inode;            /* 0: no file any more (orphan) */
	uint64_t cookie;
};

/* Open the netlink socket. 0/-1 with errno. */
int sockdiag_open(struct sockdiag **out);
void sockdiag_close(struct sockdiag *sd);

/* Look one socket up. 0 found, -1 with errno (ENOENT: no such socket,
 * ESTALE: the 4-tuple is another socket's now). */
int sockdiag_query(struct sockdiag *sd, const struct sockdiag_id *id,
    struct sockdiag_info *info);
/* Up to SOCKDIAG_BATCH lookups in one round trip: res[i] is 0 (info[i]
 * filled) or an errno. 0, or -1 with errno when the exchange failed. */
int sockdiag_query_many(struct sockdiag *sd, const struct sockdiag_id *ids,
    size_t n, struct sockdiag_info *info, int *res);
/* Abort the socket: its owner sees ECONNABORTED, its peer a reset.
 * 0, or -1 with errno (ENOENT gone, EPERM without CAP_NET_ADMIN,
 * EOPNOTSUPP kernel without INET_DIAG_DESTROY). */
int sockdiag_destroy(struct sockdiag *sd, const struct sockdiag_id *id);

/* Can this process destroy sockets? Makes a loopback TCP pair of its own,
 * destroys one end and checks the other is reset. 0, or -1 with why. */
int sockdiag_probe(struct sockdiag *sd, char *why, size_t whylen);

/* Parse a numeric IPv4/IPv6 address into normalised form. 0/-1. */
int sockdiag_parse_addr(const char *s, struct in6_addr *a);
/* Normalised address as text (IPv4 dotted for ::ffff:a.b.c.d). */
void sockdiag_addr_string(const struct in6_addr *a, char *buf, size_t len);

#endif
