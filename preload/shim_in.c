/* shim_in: the inbound hooks (accept, accept4) and meshshim_peer_id().
 *
 * In a process with MESH_SERVICE, each accepted TCP connection whose peer
 * is on loopback (where helperd connects from) is checked with helperd
 * (ACCEPT): a mesh connection gets its real source (shown by accept() and
 * getpeername()) and its caller's SPIFFE ID recorded in the per-fd table;
 * with inbound=strict a direct connection is closed and accept() goes on
 * (blocking listener) or says EAGAIN (non-blocking). */
#include "shim.h"

#include <errno.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* After the kernel accepted fd: strict mode refuses direct connections;
 * mesh connections get their real source and SPIFFE ID recorded.
 * Returns 1 keep, 0 refused (fd closed). */
static int
inbound_check(int fd, struct sockaddr *sa, socklen_t *len)
{
	union shim_sa local, peer;
	socklen_t ll = sizeof(local), pl = sizeof(peer);
	struct shim_dest pd;
	struct fdt_ent e;
	uint16_t svc_port = 0;
	int strict = 0, r;

	if (REAL(getsockname)(fd, &local.sa, &ll) != 0 ||
	    (local.sa.sa_family != AF_INET && local.sa.sa_family != AF_INET6))
		return 1;
	if (REAL(getpeername)(fd, &peer.sa, &pl) != 0 ||
	    shim_dest_from_sa(&peer.sa, pl, &pd) != 0)
		return 1;
	/* The policy comes with HELLO: fetch it once. */
	if (!ctl_have_list())
		(void)ctl_ensure();
	if (!ctl_have_list()) {
		/* helperd never answered this process: its policy is
		 * unknown, and a strict service must not fail open (a local
		 * user who keeps helperd busy would get in). Refused until
		 * helperd answers; each accept asks again. */
		shim_log("accept on port %u: helperd unreachable and the "
		    "inbound policy unknown: refused", shim_sa_port(&local));
		return 0;
	}
	(void)ctl_inbound(&strict, &svc_port);
	if (svc_port != 0 && shim_sa_port(&local) != svc_port)
		return 1;
	if (!shim_dest_is_loopback(&pd)) {
		r = 0;	/* helperd reaches local services over loopback */
	} else {
		memset(&e, 0, sizeof(e));
		r = ctl_accept(fd, &local, &peer, e.id, sizeof(e.id), &e.orig,
		    &e.origlen);
	}
	if (r < 0 && strict) {
		/* helperd unreachable: the last known policy decides. */
		shim_log("accept on port %u: helperd unreachable, strict: "
		    "refused", shim_sa_port(&local));
		return 0;
	}
	if (r == 1) {
		/* Present the source in the accepted socket's family. */
		if (local.sa.sa_family == AF_INET6 &&
		    e.orig.sa.sa_family == AF_INET) {
			struct sockaddr_in v4 = e.orig.in;
			memset(&e.orig, 0, sizeof(e.orig));
			e.orig.in6.sin6_family = AF_INET6;
			e.orig.in6.sin6_port = v4.sin_port;
			e.orig.in6.sin6_addr.s6_addr[10] = 0xff;
			e.orig.in6.sin6_addr.s6_addr[11] = 0xff;
			memcpy(&e.orig.in6.sin6_addr.s6_addr[12],
			    &v4.sin_addr, 4);
			e.origlen = sizeof(e.orig.in6);
		}
		if (e.orig.sa.sa_family != local.sa.sa_family) {
			e.orig = peer;	/* cannot show it in this family */
			e.origlen = pl;
		}
		e.kind = FDT_IN;
		e.ino = fdt_inode(fd);
		if (shim_is_owner())
			fdt_set(fd, &e);
		if (sa != NULL && len != NULL)
			shim_sa_out(&e.orig, e.origlen, sa, len);
		return 1;
	}
	if (r == 0 && strict) {
		shim_log("accept on port %u: direct connection from port %u "
		    "refused (inbound strict)", shim_sa_port(&local), pd.port);
		return 0;
	}
	return 1;
}

static int
do_accept(int lfd, struct sockaddr *sa, socklen_t *len, int flags, int is4)
{
	socklen_t cap = len != NULL ? *len : 0;
	int fd, saved = errno, fl;

	for (;;) {
		if (len != NULL)
			*len = cap;
		fd = is4 ? REAL(accept4)(lfd, sa, len, flags) :
		    REAL(accept)(lfd, sa, len);
		if (fd < 0)
			return fd;
		shim_init();
		if (!shim.enabled || shim_busy)
			return fd;
		if (inbound_check(fd, sa, len)) {
			errno = saved;
			return fd;
		}
		REAL(close)(fd);
		fl = REAL(fcntl)(lfd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
		errno = saved;
	}
}

EXPORT int
accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
	if (REAL(accept) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return do_accept(lfd, sa, len, 0, 0);
}

EXPORT int
accept4(int lfd, struct sockaddr *sa, socklen_t *len, int flags)
{
	if (REAL(accept4) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return do_accept(lfd, sa, len, flags, 1);
}

EXPORT int
meshshim_peer_id(int fd, char *buf, size_t len)
{
	struct fdt_ent e;
	size_t n;

	shim_init();
	if (buf == NULL || len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (!shim.enabled || !fdt_get(fd, &e) || e.kind != FDT_IN ||
	    e.id[0] == '\0') {
		errno = ENOENT;
		return -1;
	}
	n = strnlen(e.id, sizeof(e.id));
	if (n >= len) {
		errno = ERANGE;
		return -1;
	}
	memcpy(buf, e.id, n + 1);
	return 0;
}
