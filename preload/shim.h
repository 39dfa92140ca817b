/* shim: internal interfaces of libmeshshim.so (not installed).
 *
 * Modules: shim.c (init, environment, logging, real functions, the
 * outbound hooks), shim_in.c (accept hooks, meshshim_peer_id), shim_ctl.c
 * (the control connection to helperd), shim_route.c (routes, bounded
 * parsers, the HELLO reply), shim_fd.c + shim_fcntl.c (the per-fd table,
 * the close/dup/fcntl hooks), shim_dns.c (<service>.service.<domain>). Everything here
 * has hidden visibility; only the hooks and meshshim.h are exported. */
#ifndef MESH_SHIM_H
#define MESH_SHIM_H

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define SHIM_NAME_MAX     64    /* service names, incl NUL (CONF_NAME_MAX) */
#define SHIM_DOMAIN_MAX   256   /* dns_domain, incl NUL */
#define SHIM_CC_MAX       16    /* a congestion control's name, incl NUL */
#define SHIM_ID_MAX       256   /* SPIFFE ID of an inbound peer, incl NUL */
#define SHIM_MAX_ROUTES   128   /* upstreams from helperd + MESH_UPSTREAMS */
#define SHIM_FD_MAX       65536 /* fds tracked by the per-fd table */
#define SHIM_CTL_TIMEOUT_MS 2000 /* per control round trip */

#define SHIM_HIDDEN __attribute__((visibility("hidden")))

/* Any socket address the shim handles. */
union shim_sa {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* A TCP destination, normalised: IPv4 as ::ffff:a.b.c.d. */
struct shim_dest {
	struct in6_addr addr;
	uint16_t port;          /* host order */
	int family;             /* of the sockaddr it came from */
	int mapped;             /* AF_INET6 holding a v4-mapped address */
};

/* ---- shim.c: process state, logging, real functions ---- */

struct shim_state {
	int enabled;            /* MESH_SERVICE set, not AT_SECURE */
	int log_mode;           /* 0 silent, 1 stderr, 2 file */
	int log_off;            /* MESH_LOG=0/off: not even shim_warn_once */
	char log_path[512];
	int journal_set;        /* $JOURNAL_STREAM: stderr is the journal */
	dev_t journal_dev;
	ino_t journal_ino;
	char service[SHIM_NAME_MAX];
	char sock_path[108];
};
extern struct shim_state shim SHIM_HIDDEN;

/* Runs the one-time initialisation (pthread_once); cheap after the first. */
void shim_init(void) SHIM_HIDDEN;
/* Diagnostics when MESH_LOG asks for them; keeps errno. */
void shim_log(const char *fmt, ...) SHIM_HIDDEN
	__attribute__((format(printf, 1, 2)));
/* What keeps the mesh from working (helperd unreachable, a refused
 * service, a setting ignored): with MESH_LOG, logged like shim_log every
 * time; without it, the first such line of the process goes to stderr
 * (only if fd 2 is not a socket, or is the journal's); MESH_LOG=0/off:
 * nothing. Keeps errno. */
void shim_warn_once(const char *fmt, ...) SHIM_HIDDEN
	__attribute__((format(printf, 1, 2)));
/* "ENOENT" for ENOENT ("?" if unknown). */
const char *shim_errname(int e) SHIM_HIDDEN;
/* pid of the process that owns the shim state (atfork child updates it). */
pid_t shim_owner(void) SHIM_HIDDEN;
/* 1 if the calling process owns the state (not a vfork child). */
int shim_is_owner(void) SHIM_HIDDEN;

/* Real libc functions, resolved lazily with dlsym(RTLD_NEXT). Each returns
 * the function pointer or NULL if libc lacks it. */
#define SHIM_REAL_LIST(X) \
	X(connect) X(close) X(dup) X(dup2) X(dup3) X(fcntl) X(fcntl64) \
	X(close_range) X(closefrom) X(getpeername) X(accept) X(accept4) \
	X(getaddrinfo) X(freeaddrinfo) X(gethostbyname) X(gethostbyname2) \
	X(gethostbyname_r) X(gethostbyname2_r) X(sendto) X(sendmsg) \
	X(getsockname) X(getsockopt) X(bind) X(socket)

void *shim_real_resolve(void **slot, const char *name) SHIM_HIDDEN;
#define SHIM_REAL_DECL(n) \
	extern void *shim_real_##n##_p SHIM_HIDDEN; \
	static inline __typeof__(&n) real_##n(void) \
	{ \
		void *p = __atomic_load_n(&shim_real_##n##_p, __ATOMIC_ACQUIRE); \
		if (!p) \
			p = shim_real_resolve(&shim_real_##n##_p, #n); \
		return (__typeof__(&n))p; \
	}
SHIM_REAL_LIST(SHIM_REAL_DECL)
#undef SHIM_REAL_DECL
/* REAL(connect)(fd, sa, len): call the real function. The caller checks
 * for NULL with REAL_OK(connect) where libc may lack it. */
#define REAL(n) (real_##n())

/* Per-thread "inside the shim" flag: hooks pass straight through while set. */
extern __thread int shim_busy SHIM_HIDDEN;

/* Parse a sockaddr into a shim_dest: 0, or -1 if not AF_INET/AF_INET6 or
 * too short. */
int shim_dest_from_sa(const struct sockaddr *sa, socklen_t len,
    struct shim_dest *d) SHIM_HIDDEN;
int shim_dest_is_loopback(const struct shim_dest *d) SHIM_HIDDEN;
/* Port of an AF_INET/AF_INET6 address (host order), else 0. */
uint16_t shim_sa_port(const union shim_sa *u) SHIM_HIDDEN;
/* Copy an address out the way the kernel does: truncate to the caller's
 * buffer (*dstlen), report the full length in *dstlen. */
void shim_sa_out(const union shim_sa *src, socklen_t srclen,
    struct sockaddr *dst, socklen_t *dstlen) SHIM_HIDDEN;

/* ---- shim_ctl.c: control connection (routes: shim_route.c) ---- */

/* Parse MESH_UPSTREAMS ("name:port" or "name:addr:port", comma-separated)
 * into the static routes. Bad entries are skipped (logged). */
void ctl_env_upstreams(const char *spec) SHIM_HIDDEN;
/* Route lookup: if d is an upstream (env or helperd) or a name from the
 * reserved DNS range, copy the service name to svc and return 1; else 0.
 * Lock-free. */
int ctl_route(const struct shim_dest *d, char *svc, size_t svclen) SHIM_HIDDEN;
/* 1 if d could be a route we do not know yet (helperd's upstream list has
 * not been fetched, or is from a retry-worthy state). */
int ctl_route_unknown(const struct shim_dest *d) SHIM_HIDDEN;
/* Make sure the control connection is up (connect + HELLO). 0/-1. */
int ctl_ensure(void) SHIM_HIDDEN;
/* Register an outbound connection: CONNECT <svc> <lport> <cookie>, the
 * cookie of the app's socket fd (SO_COOKIE: helperd checks that the
 * connection it gets from lport is that socket, and its owner's uid).
 * 0: registered, *outport is helperd's outbound port. 1: helperd refused
 * (denied, no instance); *outport is still set: a connection from lport
 * to it is reset by helperd. -1: helperd unreachable. errno ECONNREFUSED
 * on 1 and -1. */
int ctl_connect(int fd, const char *svc, uint16_t lport, uint16_t *outport)
    SHIM_HIDDEN;
/* Connect fd to helperd's outbound port (via) and register it (CONNECT,
 * as ctl_connect), holding the control lock from the connect to the
 * reply: helperd holds such a socket only so long for its CONNECT.
 * Owner process, non-blocking sockets. *crc, *cerr: the connect's result
 * and errno. 0 registered, 1 refused, -1 helperd unreachable (errno
 * ECONNREFUSED), -2 the connect itself failed (*cerr). */
int ctl_connect_late(int fd, const struct sockaddr *via, socklen_t vialen,
    const char *svc, int *crc, int *cerr, uint16_t *outport) SHIM_HIDDEN;
/* SO_COOKIE of socket fd, 0 if the kernel has none. Keeps errno. */
uint64_t shim_sock_cookie(int fd) SHIM_HIDDEN;
/* One request line (with its '\n'), its reply line into reply (truncated
 * to cap). Owner process only. 0, or -1 helperd unreachable. */
int ctl_call(const char *req, char *reply, size_t cap) SHIM_HIDDEN;
/* Inbound: ACCEPT <local-addr> <lport> <peer-addr> <pport> <cookie> for
 * the accepted socket fd (local, peer: its addresses). Returns 1 mesh
 * (id, src filled), 0 direct, -1 failure (helperd unreachable / protocol
 * error). */
int ctl_accept(int fd, const union shim_sa *local, const union shim_sa *peer,
    char *id, size_t idlen, union shim_sa *src, socklen_t *srclen)
    SHIM_HIDDEN;
/* Inbound policy learned from HELLO: 1 strict, 0 permissive. svc_port is
 * the service port (0 = unknown: check every loopback peer). */
int ctl_inbound(int *strict, uint16_t *svc_port) SHIM_HIDDEN;
/* 1 once a HELLO reply was seen (this process or its parent). */
int ctl_have_list(void) SHIM_HIDDEN;
/* The dns domain (from HELLO, default "mesh") into buf. */
void ctl_dns_domain(char *buf, size_t len) SHIM_HIDDEN;
/* Close hooks tell the control client that fd is being closed or replaced
 * by the application. Lock-free, async-signal-safe. */
void ctl_fd_lost(int fd) SHIM_HIDDEN;
void ctl_fd_lost_range(unsigned first, unsigned last) SHIM_HIDDEN;
/* pthread_atfork handlers. */
void ctl_atfork_prepare(void) SHIM_HIDDEN;
void ctl_atfork_parent(void) SHIM_HIDDEN;
void ctl_atfork_child(void) SHIM_HIDDEN;
/* ---- shim_route.c: routes, bounded parsers, HELLO ---- */

/* Parse one HELLO reply and apply it (routes, dns domain, policy). The
 * caller holds the control mutex. 0, or -1 if malformed (nothing
 * changed). Modifies line. */
int ctl_parse_hello(char *line) SHIM_HIDDEN;
/* helperd's outbound port from the last HELLO (0 if none). */
uint16_t ctl_outport(void) SHIM_HIDDEN;
/* HELLO's cc (loopback_congestion) into buf: 0, or -1 when there is none. */
int ctl_loopback_cc(char *buf, size_t len) SHIM_HIDDEN;
/* 1 if the last HELLO offered DIRECT (direct=1). */
int ctl_direct_on(void) SHIM_HIDDEN;
/* Address literal (v4, v6, [v6], "localhost") of s[0..n) in normalised
 * form; *any set for 0.0.0.0 / ::. 0/-1. */
int route_parse_addr(const char *s, size_t n, struct in6_addr *a,
    int *any) SHIM_HIDDEN;
/* Decimal 1..65535, all of s[0..n); -1 otherwise. */
int route_parse_port(const char *s, size_t n) SHIM_HIDDEN;

/* ---- shim_fd.c: per-fd table ---- */

enum { FDT_NONE = 0, FDT_OUT = 1, FDT_IN = 2 };
struct fdt_ent {
	unsigned char kind;
	unsigned long ino;
	union shim_sa orig;     /* OUT: what the app asked; IN: real source */
	socklen_t origlen;
	union shim_sa via;      /* OUT: helperd's loopback address, or the
	                           service's for a direct connection */
	socklen_t vialen;
	char id[SHIM_ID_MAX];   /* IN: peer SPIFFE ID */
};
/* Record e for fd (copies). No-op for fd outside the table. 0/-1. */
int fdt_set(int fd, const struct fdt_ent *e) SHIM_HIDDEN;
/* Copy fd's entry into e; 1 if found and its socket is still the same
 * (inode check), else 0. */
int fdt_get(int fd, struct fdt_ent *e) SHIM_HIDDEN;
/* Socket inode of fd, 0 if none. */
unsigned long fdt_inode(int fd) SHIM_HIDDEN;
/* Lock-free, malloc-free updates used by close/dup hooks. */
void fdt_clear(int fd) SHIM_HIDDEN;
void fdt_clear_range(unsigned first, unsigned last) SHIM_HIDDEN;
void fdt_copy(int from, int to) SHIM_HIDDEN;
void fdt_atfork_child(void) SHIM_HIDDEN;

/* ---- shim_direct.c: same-node direct connections ---- */

/* Before an unbound socket fd connects to svc (d: where the app asked):
 * 1 when helperd says go straight to the service (DIRECT), with the
 * address in *via, in fd's family; 0 for the relay. */
int direct_prepare(int fd, const struct shim_dest *d, const char *svc,
    union shim_sa *via, socklen_t *vialen) SHIM_HIDDEN;
/* Connect fd to via and tell helperd its 4-tuple (TRACK); record e (its
 * via set to via) once tracked. Returns as connect() does. *fallback is
 * set when a blocking connect was refused at once: the caller tries the
 * relay instead (it dials the other instances). */
int direct_connect(int fd, const union shim_sa *via, socklen_t vialen,
    struct fdt_ent *e, const char *svc, int *fallback) SHIM_HIDDEN;

/* ---- shim_dns.c: reserved names ---- */

/* If d is in the reserved range and maps to a resolved name, copy it. */
int dns_lookup_addr(const struct shim_dest *d, char *svc, size_t len) SHIM_HIDDEN;
int dns_in_range(const struct shim_dest *d) SHIM_HIDDEN;
void dns_atfork_child(void) SHIM_HIDDEN;

#endif
