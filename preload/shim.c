/* shim: process state, logging, real functions, and the outbound hooks
 * (connect, sendto/sendmsg with MSG_FASTOPEN, getpeername); the inbound
 * hooks are in shim_in.c.
 *
 * The mechanism (DESIGN.md §4): the application's own socket is bound to a
 * loopback port, that port and the original destination are registered
 * with helperd over the control socket (CONNECT), and the same socket is
 * then connected to helperd's outbound port. The kernel does the connect,
 * so blocking, non-blocking, epoll and SO_ERROR behave as usual. */
#include "shim.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>

#define EXPORT __attribute__((visibility("default")))

struct shim_state shim;
__thread int shim_busy __attribute__((tls_model("initial-exec")));

static pthread_once_t shim_once = PTHREAD_ONCE_INIT;
static int shim_inited;
static pid_t shim_owner_pid;

#define SHIM_REAL_DEF(n) void *shim_real_##n##_p;
SHIM_REAL_LIST(SHIM_REAL_DEF)
#undef SHIM_REAL_DEF

void *
shim_real_resolve(void **slot, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p != NULL)
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	return p;
}

/* ---- logging ---- */

static int shim_warned;         /* shim_warn_once said its line */

/* "meshshim[pid]: <fmt...><tail>\n" into buf; its length. */
static size_t
log_format(char *buf, size_t len, const char *tail, const char *fmt,
    va_list ap)
{
	int n, m;

	n = snprintf(buf, len, "meshshim[%d]: ", (int)getpid());
	if (n < 0)
		n = 0;
	m = vsnprintf(buf + n, len - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > len - 2)
		n = (int)len - 2;
	if (tail != NULL) {
		m = snprintf(buf + n, len - (size_t)n - 1, "%s", tail);
		n += m > 0 ? m : 0;
		if ((size_t)n > len - 2)
			n = (int)len - 2;
	}
	buf[n++] = '\n';
	return (size_t)n;
}

/* The line where MESH_LOG sends it (log_mode 1 or 2). */
static void
log_emit(const char *buf, size_t n)
{
	int fd;

	if (shim.log_mode == 1) {
		if (write(2, buf, n) < 0) { /* nothing to do */ }
	} else if (shim.log_mode == 2) {
		/* Opened per line: the app may close any fd we keep open. */
		fd = open(shim.log_path, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC | O_NOCTTY, 0600);
		if (fd >= 0) {
			if (write(fd, buf, n) < 0) { /* ignore */ }
			REAL(close)(fd);
		}
	}
}

void
shim_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int saved = errno;
	size_t n;

	if (shim.log_mode == 0)
		return;
	va_start(ap, fmt);
	n = log_format(buf, sizeof(buf), NULL, fmt, ap);
	va_end(ap);
	log_emit(buf, n);
	errno = saved;
}

/* fd 2 is still the application's stderr, not a socket it reused the
 * number for: anything but a socket, or the journal's stream socket that
 * systemd names in $JOURNAL_STREAM. */
static int
stderr_is_stderr(void)
{
	struct stat st;

	if (fstat(2, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return 1;
	return shim.journal_set && st.st_dev == shim.journal_dev &&
	    st.st_ino == shim.journal_ino;
}

void
shim_warn_once(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int saved = errno;
	size_t n;

	if (shim.log_mode != 0) {
		va_start(ap, fmt);
		n = log_format(buf, sizeof(buf), NULL, fmt, ap);
		va_end(ap);
		log_emit(buf, n);
	} else if (!shim.log_off &&
	    !__atomic_exchange_n(&shim_warned, 1, __ATOMIC_ACQ_REL) &&
	    stderr_is_stderr()) {
		va_start(ap, fmt);
		n = log_format(buf, sizeof(buf), " (said once per process; "
		    "MESH_LOG=1 shows every diagnostic, MESH_LOG=0 none)", fmt,
		    ap);
		va_end(ap);
		if (write(2, buf, n) < 0) { /* nothing to do */ }
	}
	errno = saved;
}

const char *
shim_errname(int e)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && \
    __GLIBC_MINOR__ >= 32))
	const char *s = strerrorname_np(e);

	if (s != NULL)
		return s;
#endif
	(void)e;
	return "?";
}

/* ---- init ---- */

static int
valid_service_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		if (i >= SHIM_NAME_MAX - 1)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return i > 0;
}

/* In the child of fork(): locks another thread held at the fork are
 * reset, the control connection is the parent's (ctl_atfork_child). */
static void
atfork_child(void)
{
	dns_atfork_child();
	fdt_atfork_child();
	ctl_atfork_child();
}

static void
init_once(void)
{
	const char *v;
	int saved = errno;

	/* setuid/setgid/capabilities: do nothing at all (the loader already
	 * restricts LD_PRELOAD; the environment is not to be trusted). */
	if (getauxval(AT_SECURE) != 0)
		goto out;
	v = getenv("MESH_LOG");
	if (v != NULL && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0))
		shim.log_off = 1;
	if (v != NULL && v[0] != '\0' && !shim.log_off) {
		if (v[0] == '/' && strlen(v) < sizeof(shim.log_path)) {
			memcpy(shim.log_path, v, strlen(v) + 1);
			shim.log_mode = 2;
		} else {
			shim.log_mode = 1;
		}
	}
	/* systemd's "dev:ino" of the journal stream on stdout/stderr. */
	v = getenv("JOURNAL_STREAM");
	if (v != NULL) {
		unsigned long long d, i;
		char *end;

		errno = 0;
		d = strtoull(v, &end, 10);
		if (errno == 0 && end != v && *end == ':') {
			v = end + 1;
			i = strtoull(v, &end, 10);
			if (errno == 0 && end != v && *end == '\0') {
				shim.journal_dev = (dev_t)d;
				shim.journal_ino = (ino_t)i;
				shim.journal_set = 1;
			}
		}
	}
	v = getenv("MESH_SERVICE");
	if (v == NULL || v[0] == '\0')
		goto out;
	if (!valid_service_name(v)) {
		shim_warn_once("MESH_SERVICE=\"%.80s\" is not a valid service "
		    "name (1 to 63 of [A-Za-z0-9_.-]); the shim does nothing "
		    "in this process", v);
		goto out;
	}
	memcpy(shim.service, v, strlen(v) + 1);
	v = getenv("MESH_SOCKET");
	if (v == NULL || v[0] == '\0')
		v = "/run/meshshim/helperd.sock";
	if (strlen(v) >= sizeof(shim.sock_path)) {
		shim_warn_once("MESH_SOCKET is longer than %zu bytes; the shim "
		    "does nothing in this process", sizeof(shim.sock_path) - 1);
		goto out;
	}
	memcpy(shim.sock_path, v, strlen(v) + 1);
	ctl_env_upstreams(getenv("MESH_UPSTREAMS"));
	shim_owner_pid = getpid();
	if (pthread_atfork(ctl_atfork_prepare, ctl_atfork_parent,
	    atfork_child) != 0) {
		shim_log("pthread_atfork failed; shim disabled");
		goto out;
	}
	shim.enabled = 1;
	shim_log("service %s, control socket %s", shim.service,
	    shim.sock_path);
out:
	__atomic_store_n(&shim_inited, 1, __ATOMIC_RELEASE);
	errno = saved;
}

void
shim_init(void)
{
	if (__atomic_load_n(&shim_inited, __ATOMIC_ACQUIRE))
		return;
	pthread_once(&shim_once, init_once);
}

__attribute__((constructor)) static void
shim_ctor(void)
{
	shim_init();
}

pid_t
shim_owner(void)
{
	return __atomic_load_n(&shim_owner_pid, __ATOMIC_ACQUIRE);
}

int
shim_is_owner(void)
{
	return getpid() == shim_owner();
}

/* Called by the atfork child handler. */
void shim_set_owner(pid_t pid) SHIM_HIDDEN;
void
shim_set_owner(pid_t pid)
{
	__atomic_store_n(&shim_owner_pid, pid, __ATOMIC_RELEASE);
}

static socklen_t
loopback_sa(union shim_sa *u, int family, int mapped, uint16_t port)
{
	memset(u, 0, sizeof(*u));
	if (family == AF_INET) {
		u->in.sin_family = AF_INET;
		u->in.sin_port = htons(port);
		u->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(u->in);
	}
	u->in6.sin6_family = AF_INET6;
	u->in6.sin6_port = htons(port);
	if (mapped) {
		u->in6.sin6_addr.s6_addr[10] = 0xff;
		u->in6.sin6_addr.s6_addr[11] = 0xff;
		u->in6.sin6_addr.s6_addr[12] = 127;
		u->in6.sin6_addr.s6_addr[15] = 1;
	} else {
		u->in6.sin6_addr = in6addr_loopback;
	}
	return sizeof(u->in6);
}

uint16_t
shim_sa_port(const union shim_sa *u)
{
	if (u->sa.sa_family == AF_INET)
		return ntohs(u->in.sin_port);
	if (u->sa.sa_family == AF_INET6)
		return ntohs(u->in6.sin6_port);
	return 0;
}

/* Same family, address and port (the part getpeername reports). */
static int
sa_equal(const union shim_sa *a, const union shim_sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return 0;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_port == b->in.sin_port &&
		    a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return a->in6.sin6_port == b->in6.sin6_port &&
		    memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	return 0;
}

/* ---- outbound ---- */

enum { PREP_PASS = 0, PREP_MESH = 1, PREP_AGAIN = 2, PREP_LATE = 3,
    PREP_DIRECT = 4, PREP_FAIL = -1 };

/* Is fd a TCP socket of the family the address is for? */
static int
is_tcp(int fd, int family)
{
	int v;
	socklen_t l = sizeof(v);

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &v, &l) != 0 ||
	    v != SOCK_STREAM)
		return 0;
	l = sizeof(v);
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) != 0 ||
	    v != IPPROTO_TCP)
		return 0;
	l = sizeof(v);
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) != 0 ||
	    v != family)
		return 0;
	return 1;
}

/* The entry for an outbound socket sent to helperd at via. */
static void
out_entry(struct fdt_ent *e, int fd, const struct sockaddr *sa,
    socklen_t len, const union shim_sa *via, socklen_t vialen)
{
	socklen_t n = len < sizeof(e->orig) ? len : sizeof(e->orig);

	memset(e, 0, sizeof(*e));
	e->kind = FDT_OUT;
	e->ino = fdt_inode(fd);
	memcpy(&e->orig, sa, n);
	e->origlen = n;
	e->via = *via;
	e->vialen = vialen;
}

/* The mesh service a connect to d goes to (into svc), or 0: not ours, or
 * not a TCP socket. The first loopback TCP connect to an unknown port
 * learns helperd's upstream list. */
static int
prep_route(int fd, const struct shim_dest *d, char *svc, size_t svclen)
{
	if (!ctl_route(d, svc, svclen)) {
		if (!shim_dest_is_loopback(d) || !ctl_route_unknown(d) ||
		    !is_tcp(fd, d->family))
			return 0;
		(void)ctl_ensure();
		return ctl_route(d, svc, svclen);
	}
	return is_tcp(fd, d->family);
}

/* Bind an unbound socket to a loopback port and say which (0: failed,
 * errno set as connect() would set it). */
static uint16_t
prep_bind(int fd, const struct shim_dest *d, const char *svc)
{
	union shim_sa b, local;
	socklen_t bl = loopback_sa(&b, d->family, d->mapped, 0);
	socklen_t ll = sizeof(local);
	uint16_t port;

	if (REAL(bind)(fd, &b.sa, bl) != 0) {
		/* Out of loopback ports: say so as connect() would. */
		int berr = errno == EADDRINUSE ? EADDRNOTAVAIL : errno;

		shim_log("connect to %s: bind to loopback failed: %s", svc,
		    strerror(errno));
		errno = berr;
		return 0;
	}
	if (REAL(getsockname)(fd, &local.sa, &ll) != 0 ||
	    (port = shim_sa_port(&local)) == 0) {
		errno = ECONNREFUSED;
		return 0;
	}
	return port;
}

/* A socket about to reach helperd (or a local instance) over loopback:
 * helperd's loopback_congestion, as helperd sets on its own end. The
 * app's choice of congestion control is for a network path, and this
 * socket's path is loopback; helperd's socket carries the traffic on.
 * Best effort: an unprivileged process may only set the names in
 * net.ipv4.tcp_allowed_congestion_control. */
static void
loopback_cc(int fd)
{
	char cc[SHIM_CC_MAX];
	int saved = errno;

	if (ctl_loopback_cc(cc, sizeof(cc)) == 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc,
		    (socklen_t)strlen(cc));
	errno = saved;
}

/* Decide what a connect (or a MSG_FASTOPEN send) to sa does. On PREP_MESH,
 * PREP_AGAIN, PREP_LATE and PREP_DIRECT, via/vialen is where the socket
 * must really go (helperd, or the local service for PREP_DIRECT), and *e
 * is the entry to record once the kernel accepted it.
 * Never changes errno except on PREP_FAIL (ECONNREFUSED; EADDRNOTAVAIL
 * when no loopback port is left, as the kernel's connect says). */
static int
prepare(int fd, const struct sockaddr *sa, socklen_t len, union shim_sa *via,
    socklen_t *vialen, struct fdt_ent *e, char *late_svc)
{
	struct shim_dest d;
	char svc[SHIM_NAME_MAX];
	union shim_sa local;
	socklen_t ll = sizeof(local);
	uint16_t outport, lport;
	int saved = errno, rc;

	shim_init();
	if (!shim.enabled || shim_busy ||
	    shim_dest_from_sa(sa, len, &d) != 0 ||
	    !prep_route(fd, &d, svc, sizeof(svc)))
		goto pass;

	/* A second connect on a socket we already sent to helperd: let the
	 * kernel answer it (EALREADY, EISCONN, 0) on the real address. */
	if (fdt_get(fd, e) && e->kind == FDT_OUT) {
		struct shim_dest od;

		if (shim_dest_from_sa(&e->orig.sa, e->origlen, &od) != 0 ||
		    memcmp(&od.addr, &d.addr, 16) != 0 || od.port != d.port)
			goto pass;
		*via = e->via;
		*vialen = e->vialen;
		errno = saved;
		return PREP_AGAIN;
	}

	if (REAL(getsockname)(fd, &local.sa, &ll) != 0)
		goto pass;
	lport = shim_sa_port(&local);
	if (lport == 0 && late_svc != NULL && shim_is_owner()) {
		/* Unbound socket, plain connect(): let the kernel's connect
		 * pick the port (it reuses TIME_WAIT ports, bind(0) does
		 * not, and under churn loopback ports would run out) and
		 * register it right after (PREP_LATE): helperd holds a
		 * connection it cannot place yet until the CONNECT comes.
		 * A vfork child (not the owner) keeps the register-first
		 * way: it has no control connection of its own. The same
		 * goes for a direct connection (PREP_DIRECT), asked first. */
		if (ctl_ensure() != 0 || (outport = ctl_outport()) == 0)
			goto fail;
		*vialen = loopback_sa(via, d.family, d.mapped, outport);
		out_entry(e, fd, sa, len, via, *vialen);
		memcpy(late_svc, svc, sizeof(svc));
		rc = direct_prepare(fd, &d, svc, via, vialen) ? PREP_DIRECT :
		    PREP_LATE;
		loopback_cc(fd);
		errno = saved;
		return rc;
	}
	if (lport == 0 && (lport = prep_bind(fd, &d, svc)) == 0)
		return PREP_FAIL;
	switch (ctl_connect(fd, svc, lport, &outport)) {
	case 0:
		break;
	case 1:
		/* Refused by helperd. A blocking connect says ECONNREFUSED;
		 * a non-blocking one goes on to helperd, which resets it, so
		 * the application sees a reset on first I/O as with a peer
		 * that refused after accepting (DESIGN.md §3). */
		if ((REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) && outport != 0) {
			*vialen = loopback_sa(via, d.family, d.mapped,
			    outport);
			errno = saved;
			return PREP_AGAIN;
		}
		goto fail;
	default:
		goto fail;
	}
	*vialen = loopback_sa(via, d.family, d.mapped, outport);
	out_entry(e, fd, sa, len, via, *vialen);
	shim_log("connect fd %d -> %s via local port %u, helperd port %u",
	    fd, svc, lport, outport);
	loopback_cc(fd);
	errno = saved;
	return PREP_MESH;
pass:
	errno = saved;
	return PREP_PASS;
fail:
	errno = ECONNREFUSED;
	return PREP_FAIL;
}

/* Record the entry if the kernel took the connect (done or in progress). */
static void
record(int fd, int rc, const struct fdt_ent *e)
{
	int saved = errno;

	if (rc == 0 || errno == EINPROGRESS || errno == EINTR ||
	    errno == EALREADY) {
		if (shim_is_owner())
			fdt_set(fd, e);
	}
	errno = saved;
}

/* PREP_LATE: connect to helperd first, then register the port the kernel
 * chose. A refusal reads as ECONNREFUSED for a blocking socket and as a
 * reset on first I/O for a non-blocking one (helperd resets it). */
static int
connect_late(int fd, const union shim_sa *via, socklen_t vialen,
    struct fdt_ent *e, const char *svc)
{
	union shim_sa local;
	socklen_t ll = sizeof(local);
	uint16_t outport, lport;
	int rc, err, nb, r;

	nb = (REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) != 0;
	if (nb) {
		/* The connect returns at once: hold the control lock from
		 * it to the CONNECT (threads queued on the lock would
		 * otherwise keep helperd waiting for this registration). */
		r = ctl_connect_late(fd, &via->sa, vialen, svc, &rc, &err,
		    &outport);
		if (r == -2) {
			errno = err;
			return rc;
		}
		lport = 0;
		ll = sizeof(local);
		if (REAL(getsockname)(fd, &local.sa, &ll) == 0)
			lport = shim_sa_port(&local);
	} else {
		rc = REAL(connect)(fd, &via->sa, vialen);
		err = errno;
		if (rc != 0 && err != EINPROGRESS && err != EINTR)
			return rc;      /* helperd not listening */
		if (REAL(getsockname)(fd, &local.sa, &ll) != 0 ||
		    (lport = shim_sa_port(&local)) == 0) {
			errno = ECONNREFUSED;
			return -1;
		}
		r = ctl_connect(fd, svc, lport, &outport);
	}
	if (r == 0) {
		shim_log("connect fd %d -> %s via local port %u (late)", fd,
		    svc, lport);
		errno = err;
		record(fd, rc, e);
		return rc;
	}
	if (nb) {
		errno = err;    /* helperd resets it: a reset on first I/O */
		return rc;
	}
	errno = ECONNREFUSED;
	return -1;
}

EXPORT int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	union shim_sa via;
	socklen_t vialen;
	struct fdt_ent e;
	char svc[SHIM_NAME_MAX];
	int rc, fallback;

	if (REAL(connect) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	switch (prepare(fd, sa, len, &via, &vialen, &e, svc)) {
	case PREP_DIRECT:
		rc = direct_connect(fd, &via, vialen, &e, svc, &fallback);
		if (!fallback)
			return rc;
		/* The local instance refused a blocking connect at once:
		 * the relay tries it and the other instances. */
		return connect_late(fd, &e.via, e.vialen, &e, svc);
	case PREP_LATE:
		return connect_late(fd, &via, vialen, &e, svc);
	case PREP_MESH:
		rc = REAL(connect)(fd, &via.sa, vialen);
		record(fd, rc, &e);
		return rc;
	case PREP_AGAIN:
		return REAL(connect)(fd, &via.sa, vialen);
	case PREP_FAIL:
		return -1;
	default:
		return REAL(connect)(fd, sa, len);
	}
}

EXPORT ssize_t
sendto(int fd, const void *buf, size_t n, int flags,
    const struct sockaddr *sa, socklen_t len)
{
	union shim_sa via;
	socklen_t vialen;
	struct fdt_ent e;
	ssize_t rc;

	if (REAL(sendto) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!(flags & MSG_FASTOPEN) || sa == NULL)
		return REAL(sendto)(fd, buf, n, flags, sa, len);
	switch (prepare(fd, sa, len, &via, &vialen, &e, NULL)) {
	case PREP_MESH:
		rc = REAL(sendto)(fd, buf, n, flags, &via.sa, vialen);
		record(fd, rc >= 0 ? 0 : -1, &e);
		return rc;
	case PREP_AGAIN:
		return REAL(sendto)(fd, buf, n, flags, &via.sa, vialen);
	case PREP_FAIL:
		return -1;
	default:
		return REAL(sendto)(fd, buf, n, flags, sa, len);
	}
}

EXPORT ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	union shim_sa via;
	socklen_t vialen;
	struct fdt_ent e;
	struct msghdr m;
	ssize_t rc;

	if (REAL(sendmsg) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!(flags & MSG_FASTOPEN) || msg == NULL || msg->msg_name == NULL)
		return REAL(sendmsg)(fd, msg, flags);
	switch (prepare(fd, msg->msg_name, msg->msg_namelen, &via, &vialen,
	    &e, NULL)) {
	case PREP_MESH:
		m = *msg;
		m.msg_name = &via;
		m.msg_namelen = vialen;
		rc = REAL(sendmsg)(fd, &m, flags);
		record(fd, rc >= 0 ? 0 : -1, &e);
		return rc;
	case PREP_AGAIN:
		m = *msg;
		m.msg_name = &via;
		m.msg_namelen = vialen;
		return REAL(sendmsg)(fd, &m, flags);
	case PREP_FAIL:
		return -1;
	default:
		return REAL(sendmsg)(fd, msg, flags);
	}
}

void
shim_sa_out(const union shim_sa *src, socklen_t srclen, struct sockaddr *dst,
    socklen_t *dstlen)
{
	socklen_t cap = *dstlen;

	memcpy(dst, src, cap < srclen ? cap : srclen);
	*dstlen = srclen;
}

EXPORT int
getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct fdt_ent e;
	union shim_sa real;
	socklen_t rl = sizeof(real);
	int rc, saved = errno;

	if (REAL(getpeername) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	shim_init();
	if (!shim.enabled || sa == NULL || len == NULL || !fdt_get(fd, &e))
		return REAL(getpeername)(fd, sa, len);
	rc = REAL(getpeername)(fd, &real.sa, &rl);
	if (rc != 0)
		return rc;
	/* An outbound socket shows the asked-for address only while it is
	 * really connected to helperd; a mesh-accepted one shows the real
	 * source. */
	if (e.kind == FDT_OUT && sa_equal(&real, &e.via))
		shim_sa_out(&e.orig, e.origlen, sa, len);
	else if (e.kind == FDT_IN)
		shim_sa_out(&e.orig, e.origlen, sa, len);
	else
		shim_sa_out(&real, rl, sa, len);
	errno = saved;
	return rc;
}
