/* shim_ctl: the control connection to helperd (common/ctlproto.h); the
 * routes and the HELLO parser are in shim_route.c.
 *
 * One control connection per process, made on first use, AF_UNIX stream,
 * SOCK_CLOEXEC. Round trips are serialised by ctl_mu and bounded by
 * SHIM_CTL_TIMEOUT_MS. The connection is given up (never closed, since the
 * number may be the application's now) when the application closes or
 * dup2's over it, or when its inode changes; it is closed and re-made after
 * EOF, an error, or a fork (the child gets its own). A failed connection
 * is retried on the next mesh connect; nothing is cached as "down". */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "common/ctlproto.h"

void shim_set_owner(pid_t pid) SHIM_HIDDEN;

static struct {
	int fd;                 /* -1: none */
	unsigned long ino;
	dev_t dev;
	long long retry_ms;     /* atomic: next HELLO for a non-route dest */
	char buf[CTL_REPLY_MAX + 1];
} ctl = { .fd = -1 };

static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static int ctl_pub = -1;        /* atomic: fd the close hooks watch */

static long long
now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int
ctl_route_unknown(const struct shim_dest *d)
{
	(void)d;
	if (ctl_have_list())
		return 0;
	/* helperd was not reachable: ask again at most once a second for
	 * destinations that are not known routes. */
	return now_ms() >= __atomic_load_n(&ctl.retry_ms, __ATOMIC_ACQUIRE);
}

/* ---- I/O on a control socket ---- */

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int
io_wait(int fd, short ev, const struct timespec *deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long ms;
	int r;

	for (;;) {
		ms = ms_left(deadline);
		if (ms <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, (int)ms);
		if (r > 0)
			return 0;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

static int
io_send(int fd, const char *s, size_t n, const struct timespec *deadline)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait(fd, POLLOUT, deadline) != 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Read one reply line into buf (NUL-terminated, '\n' stripped). A line
 * longer than cap-1 is read to its end and truncated (*trunc = 1). Bytes
 * after the newline are a protocol error (*extra = 1). 0/-1. */
static int
io_line(int fd, char *buf, size_t cap, const struct timespec *deadline,
    int *trunc, int *extra)
{
	size_t len = 0;
	char tmp[512];
	ssize_t r;
	char *nl;
	size_t take, total = 0;

	*trunc = *extra = 0;
	for (;;) {
		r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait(fd, POLLIN, deadline) != 0)
				return -1;
			continue;
		}
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		total += (size_t)r;
		if (total > CTL_REPLY_MAX + 512) {
			errno = EMSGSIZE;
			return -1;
		}
		nl = memchr(tmp, '\n', (size_t)r);
		take = nl != NULL ? (size_t)(nl - tmp) : (size_t)r;
		if (len + take > cap - 1) {
			*trunc = 1;
			take = cap - 1 - len;
		}
		memcpy(buf + len, tmp, take);
		len += take;
		if (nl != NULL) {
			if (nl + 1 < tmp + r)
				*extra = 1;
			buf[len] = '\0';
			if (len > 0 && buf[len - 1] == '\r')
				buf[--len] = '\0';
			return 0;
		}
	}
}

static void
deadline_in(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/* A new connected control socket, or -1. */
static int
sock_open(const struct timespec *deadline)
{
	struct sockaddr_un un;
	int fd, err;
	socklen_t el = sizeof(err);

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	memcpy(un.sun_path, shim.sock_path, strlen(shim.sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (REAL(connect)(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
		if (errno != EINPROGRESS && errno != EAGAIN)
			goto err;
		if (io_wait(fd, POLLOUT, deadline) != 0)
			goto err;
		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			goto err;
		if (err != 0) {
			errno = err;
			goto err;
		}
	}
	return fd;
err:
	err = errno;
	REAL(close)(fd);
	errno = err;
	return -1;
}

/* One request, one reply line into buf. 0/-1. */
static int
round_trip(int fd, const char *req, char *buf, size_t cap,
    const struct timespec *deadline, int *extra)
{
	int trunc;

	if (io_send(fd, req, strlen(req), deadline) != 0)
		return -1;
	if (io_line(fd, buf, cap, deadline, &trunc, extra) != 0)
		return -1;
	if (trunc) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* ---- the process's control connection (caller holds ctl_mu) ---- */

static void
drop(const char *why)
{
	if (ctl.fd >= 0) {
		shim_log("control connection closed: %s", why);
		/* Only close what is still ours. */
		if (__atomic_load_n(&ctl_pub, __ATOMIC_ACQUIRE) == ctl.fd) {
			__atomic_store_n(&ctl_pub, -1, __ATOMIC_RELEASE);
			REAL(close)(ctl.fd);
		}
	}
	ctl.fd = -1;
	__atomic_store_n(&ctl_pub, -1, __ATOMIC_RELEASE);
}

/* Is the open control fd still ours and idle? */
static int
still_ours(void)
{
	struct stat st;
	struct pollfd p;

	if (__atomic_load_n(&ctl_pub, __ATOMIC_ACQUIRE) != ctl.fd) {
		/* The application closed it or dup2'ed over it: the number
		 * is not ours any more; forget it without closing. */
		shim_log("control fd %d taken by the application", ctl.fd);
		ctl.fd = -1;
		return 0;
	}
	if (fstat(ctl.fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    st.st_ino != ctl.ino || st.st_dev != ctl.dev) {
		shim_log("control fd %d no longer ours", ctl.fd);
		ctl.fd = -1;
		__atomic_store_n(&ctl_pub, -1, __ATOMIC_RELEASE);
		return 0;
	}
	/* Readable while idle means EOF (helperd went away) or garbage. */
	p.fd = ctl.fd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) != 0) {
		drop("helperd closed it");
		return 0;
	}
	return 1;
}

static void
retry_later(void)
{
	__atomic_store_n(&ctl.retry_ms, now_ms() + 1000, __ATOMIC_RELEASE);
}

static int
ensure_locked(const struct timespec *deadline)
{
	struct stat st;
	char req[SHIM_NAME_MAX + 16];
	int fd, extra;

	if (ctl.fd >= 0 && still_ours())
		return 0;
	fd = sock_open(deadline);
	if (fd < 0) {
		shim_warn_once("cannot reach helperd at %s: %s (%s); mesh "
		    "connections of service \"%s\" fail until it answers",
		    shim.sock_path, strerror(errno), shim_errname(errno),
		    shim.service);
		retry_later();
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		REAL(close)(fd);
		retry_later();
		return -1;
	}
	ctl.fd = fd;
	ctl.ino = (unsigned long)st.st_ino;
	ctl.dev = st.st_dev;
	__atomic_store_n(&ctl_pub, fd, __ATOMIC_RELEASE);
	snprintf(req, sizeof(req), "HELLO %s\n", shim.service);
	if (round_trip(fd, req, ctl.buf, sizeof(ctl.buf), deadline,
	    &extra) != 0) {
		shim_warn_once("helperd at %s did not answer HELLO: %s (%s); "
		    "mesh connections of service \"%s\" fail until it does",
		    shim.sock_path, strerror(errno), shim_errname(errno),
		    shim.service);
		drop("HELLO failed");
		retry_later();
		return -1;
	}
	if (strncmp(ctl.buf, "OK", 2) != 0) {
		shim_warn_once("helperd at %s refused service \"%s\": %.300s; "
		    "its mesh connections fail", shim.sock_path, shim.service,
		    ctl.buf);
		drop("HELLO refused");
		retry_later();
		return -1;
	}
	if (ctl_parse_hello(ctl.buf) != 0) {
		shim_log("HELLO: malformed reply");
		drop("malformed HELLO reply");
		retry_later();
		return -1;
	}
	if (extra)
		drop("unexpected data after HELLO reply");
	shim_log("connected to helperd, outbound port %u", ctl_outport());
	return 0;
}

/* Serialise, and keep a cancelled thread from leaving ctl_mu locked. */
struct guard { int cancel; };

static void
lock(struct guard *g)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
	shim_busy++;
	pthread_mutex_lock(&ctl_mu);
}

static void
unlock(struct guard *g)
{
	int dummy;

	pthread_mutex_unlock(&ctl_mu);
	shim_busy--;
	pthread_setcancelstate(g->cancel, &dummy);
}

int
ctl_ensure(void)
{
	struct guard g;
	struct timespec dl;
	int r, saved = errno;

	if (!shim_is_owner())
		return -1;
	lock(&g);
	deadline_in(&dl, SHIM_CTL_TIMEOUT_MS);
	r = ensure_locked(&dl);
	unlock(&g);
	errno = saved;
	return r;
}

/* Send req and read its reply into ctl.buf, reconnecting once if the
 * existing connection turns out to be dead. Caller holds ctl_mu. */
static int
request_locked(const char *req)
{
	struct timespec dl;
	int attempt, fresh, extra;

	deadline_in(&dl, SHIM_CTL_TIMEOUT_MS);
	for (attempt = 0; attempt < 2; attempt++) {
		fresh = ctl.fd < 0;
		if (ensure_locked(&dl) != 0)
			return -1;
		if (round_trip(ctl.fd, req, ctl.buf, sizeof(ctl.buf), &dl,
		    &extra) == 0) {
			if (extra)
				drop("unexpected data after a reply");
			return 0;
		}
		shim_log("control request failed: %s", strerror(errno));
		drop("request failed");
		if (fresh)
			return -1;
	}
	return -1;
}

/* "port=" of a (possibly truncated) HELLO reply. */
static int
hello_port(const char *line)
{
	const char *p = strstr(line, " port=");
	size_t n = 0;

	if (strncmp(line, "OK", 2) != 0 || p == NULL)
		return -1;
	p += 6;
	while (p[n] >= '0' && p[n] <= '9')
		n++;
	return route_parse_port(p, n);
}

/* A process that does not own the state (a vfork child): one connection
 * just for this request, on the stack, changing nothing shared. */
static int
oneshot(const char *req, char *out, size_t outlen, uint16_t *outport)
{
	struct timespec dl;
	char hello[SHIM_NAME_MAX + 16], buf[1024];
	int fd, port, trunc, extra, r = -1;

	deadline_in(&dl, SHIM_CTL_TIMEOUT_MS);
	fd = sock_open(&dl);
	if (fd < 0)
		return -1;
	snprintf(hello, sizeof(hello), "HELLO %s\n", shim.service);
	if (io_send(fd, hello, strlen(hello), &dl) != 0 ||
	    io_line(fd, buf, sizeof(buf), &dl, &trunc, &extra) != 0 ||
	    (port = hello_port(buf)) < 0)
		goto out;
	if (io_send(fd, req, strlen(req), &dl) != 0 ||
	    io_line(fd, out, outlen, &dl, &trunc, &extra) != 0 || trunc)
		goto out;
	*outport = (uint16_t)port;
	r = 0;
out:
	REAL(close)(fd);
	return r;
}

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

uint64_t
shim_sock_cookie(int fd)
{
	uint64_t ck = 0;
	socklen_t l = sizeof(ck);
	int saved = errno;

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_COOKIE, &ck, &l) != 0 ||
	    l != sizeof(ck))
		ck = 0;
	errno = saved;
	return ck;
}

/* The CONNECT request for fd, bound to lport. */
static void
connect_req(int fd, const char *svc, uint16_t lport, char *req, size_t len)
{
	uint64_t ck = shim_sock_cookie(fd);

	/* The cookie names this very socket: helperd places the
	 * connection from lport only if it is this socket, and this uid's. */
	if (ck != 0)
		snprintf(req, len, "CONNECT %s %u %llu\n", svc, lport,
		    (unsigned long long)ck);
	else
		snprintf(req, len, "CONNECT %s %u\n", svc, lport);
}

/* CONNECT's reply in ctl.buf: 0 OK, 1 refused (errno ECONNREFUSED). */
static int
connect_reply(const char *svc, uint16_t *outport)
{
	if (strcmp(ctl.buf, "OK") == 0 || strncmp(ctl.buf, "OK ", 3) == 0) {
		*outport = ctl_outport();
		return 0;
	}
	/* helperd answered no; it also expects a connection from lport
	 * that it will reset (for non-blocking sockets). */
	shim_log("connect to %s refused: %.300s", svc, ctl.buf);
	*outport = ctl_outport();
	errno = ECONNREFUSED;
	return 1;
}

int
ctl_connect_late(int fd, const struct sockaddr *via, socklen_t vialen,
    const char *svc, int *crc, int *cerr, uint16_t *outport)
{
	struct guard g;
	union shim_sa local;
	socklen_t ll = sizeof(local);
	char req[SHIM_NAME_MAX + 64];
	uint16_t lport;
	int r = -1;

	/* Under the lock from connect to CONNECT: helperd holds the socket
	 * until its CONNECT comes, for a bounded time, and threads queued
	 * on the one control connection must not eat into it. */
	lock(&g);
	*crc = REAL(connect)(fd, via, vialen);
	*cerr = errno;
	if (*crc != 0 && *cerr != EINPROGRESS && *cerr != EINTR) {
		unlock(&g);
		return -2;      /* helperd not listening: the kernel's answer */
	}
	if (REAL(getsockname)(fd, &local.sa, &ll) != 0 ||
	    (lport = shim_sa_port(&local)) == 0) {
		unlock(&g);
		errno = ECONNREFUSED;
		return -1;
	}
	connect_req(fd, svc, lport, req, sizeof(req));
	if (request_locked(req) != 0) {
		shim_log("connect to %s refused: helperd unreachable", svc);
		errno = ECONNREFUSED;
	} else {
		r = connect_reply(svc, outport);
	}
	unlock(&g);
	return r;
}

int
ctl_connect(int fd, const char *svc, uint16_t lport, uint16_t *outport)
{
	struct guard g;
	char req[SHIM_NAME_MAX + 64], reply[512];
	int r = -1;

	connect_req(fd, svc, lport, req, sizeof(req));
	if (!shim_is_owner()) {
		if (oneshot(req, reply, sizeof(reply), outport) == 0 &&
		    (strcmp(reply, "OK") == 0 ||
		    strncmp(reply, "OK ", 3) == 0))
			return 0;
		errno = ECONNREFUSED;
		return -1;
	}
	lock(&g);
	if (request_locked(req) != 0) {
		shim_log("connect to %s refused: helperd unreachable", svc);
		errno = ECONNREFUSED;
	} else {
		r = connect_reply(svc, outport);
	}
	unlock(&g);
	return r;
}

int
ctl_call(const char *req, char *reply, size_t cap)
{
	struct guard g;
	int r = -1;

	if (!shim_is_owner() || cap == 0)
		return -1;
	lock(&g);
	if (request_locked(req) == 0) {
		snprintf(reply, cap, "%s", ctl.buf);
		r = 0;
	}
	unlock(&g);
	return r;
}

/* Numeric address of an AF_INET/AF_INET6 socket address. */
static void
sa_addr(const union shim_sa *u, char *buf, socklen_t len)
{
	if (u->sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &u->in6.sin6_addr, buf, len);
	else
		inet_ntop(AF_INET, &u->in.sin_addr, buf, len);
}

int
ctl_accept(int fd, const union shim_sa *local, const union shim_sa *peer,
    char *id, size_t idlen, union shim_sa *src, socklen_t *srclen)
{
	struct guard g;
	char req[192], la[INET6_ADDRSTRLEN], pa[INET6_ADDRSTRLEN];
	char *save = NULL, *tok[5];
	struct in6_addr a;
	uint64_t ck;
	int r = -1, any, n = 0, port;
	size_t l;

	if (!shim_is_owner() || (ck = shim_sock_cookie(fd)) == 0)
		return -1;
	/* The whole 4-tuple and this socket's cookie: helperd says "mesh"
	 * only if the peer is its own socket and this socket is the other
	 * end of it. */
	sa_addr(local, la, sizeof(la));
	sa_addr(peer, pa, sizeof(pa));
	snprintf(req, sizeof(req), "ACCEPT %s %u %s %u %llu\n", la,
	    shim_sa_port(local), pa, shim_sa_port(peer),
	    (unsigned long long)ck);
	lock(&g);
	if (request_locked(req) != 0)
		goto out;
	while (n < 5 && (tok[n] = strtok_r(n == 0 ? ctl.buf : NULL, " ",
	    &save)) != NULL)
		n++;
	if (n >= 2 && strcmp(tok[0], "OK") == 0 &&
	    strcmp(tok[1], "direct") == 0) {
		r = 0;
		goto out;
	}
	if (n < 5 || strcmp(tok[0], "OK") != 0 || strcmp(tok[1], "mesh") != 0)
		goto bad;
	l = strlen(tok[2]);
	if (l >= idlen || l >= SHIM_ID_MAX ||
	    route_parse_addr(tok[3], strlen(tok[3]), &a, &any) != 0 ||
	    (port = route_parse_port(tok[4], strlen(tok[4]))) < 0)
		goto bad;
	memcpy(id, tok[2], l + 1);
	memset(src, 0, sizeof(*src));
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		src->in.sin_family = AF_INET;
		src->in.sin_port = htons((uint16_t)port);
		memcpy(&src->in.sin_addr, &a.s6_addr[12], 4);
		*srclen = sizeof(src->in);
	} else {
		src->in6.sin6_family = AF_INET6;
		src->in6.sin6_port = htons((uint16_t)port);
		src->in6.sin6_addr = a;
		*srclen = sizeof(src->in6);
	}
	r = 1;
	goto out;
bad:
	shim_log("ACCEPT: unexpected reply");
	r = -1;
out:
	unlock(&g);
	return r;
}

/* ---- close hooks and fork ---- */

void
ctl_fd_lost(int fd)
{
	int cur = __atomic_load_n(&ctl_pub, __ATOMIC_ACQUIRE);

	if (fd >= 0 && cur == fd)
		__atomic_compare_exchange_n(&ctl_pub, &cur, -2, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void
ctl_fd_lost_range(unsigned first, unsigned last)
{
	int cur = __atomic_load_n(&ctl_pub, __ATOMIC_ACQUIRE);

	if (cur >= 0 && (unsigned)cur >= first && (unsigned)cur <= last)
		__atomic_compare_exchange_n(&ctl_pub, &cur, -2, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void
ctl_atfork_prepare(void)
{
	pthread_mutex_lock(&ctl_mu);
}

void
ctl_atfork_parent(void)
{
	pthread_mutex_unlock(&ctl_mu);
}

void
ctl_atfork_child(void)
{
	struct stat st;

	pthread_mutex_init(&ctl_mu, NULL);
	/* The parent's connection is the parent's: close our copy (if the
	 * number is still ours) and make our own on first use. */
	if (ctl.fd >= 0 && __atomic_load_n(&ctl_pub, __ATOMIC_ACQUIRE) ==
	    ctl.fd && fstat(ctl.fd, &st) == 0 &&
	    (unsigned long)st.st_ino == ctl.ino && st.st_dev == ctl.dev)
		REAL(close)(ctl.fd);
	ctl.fd = -1;
	__atomic_store_n(&ctl_pub, -1, __ATOMIC_RELEASE);
	shim_set_owner(getpid());
}
