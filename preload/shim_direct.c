/* shim_direct: same-node direct connections (helperd's DIRECT and TRACK,
 * common/ctlproto.h).
 *
 * When helperd's HELLO offered it, an unbound socket asks DIRECT before
 * its connect. "OK direct <addr> <port>": the socket connects straight
 * to the local service (the kernel picks the local port, as for any
 * client), then TRACK tells helperd the 4-tuple, so that a later deny can
 * destroy it. Anything else: the relay, as before. The kernel does the
 * connect, so blocking, non-blocking, EINPROGRESS and SO_ERROR behave as
 * usual; getpeername() shows the address the app asked for (the entry's
 * via is the service's address). A connection helperd does not track is
 * reset (connect AF_UNSPEC): no connection it could not cut stays up. */
#include "shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int
direct_prepare(int fd, const struct shim_dest *d, const char *svc,
    union shim_sa *via, socklen_t *vialen)
{
	char req[SHIM_NAME_MAX + 16], reply[256], *tok[5], *save = NULL;
	struct in6_addr a;
	int n = 0, any, port, v6only = 0;
	socklen_t l = sizeof(v6only);

	if (!ctl_direct_on())
		return 0;
	snprintf(req, sizeof(req), "DIRECT %s\n", svc);
	if (ctl_call(req, reply, sizeof(reply)) != 0)
		return 0;
	while (n < 5 && (tok[n] = strtok_r(n == 0 ? reply : NULL, " ",
	    &save)) != NULL)
		n++;
	if (n != 4 || strcmp(tok[0], "OK") != 0 ||
	    strcmp(tok[1], "direct") != 0)
		return 0;
	if (route_parse_addr(tok[2], strlen(tok[2]), &a, &any) != 0 || any ||
	    (port = route_parse_port(tok[3], strlen(tok[3]))) < 0) {
		shim_log("DIRECT %s: malformed reply", svc);
		return 0;
	}
	memset(via, 0, sizeof(*via));
	if (d->family == AF_INET) {
		if (!IN6_IS_ADDR_V4MAPPED(&a))
			return 0;       /* an IPv6 service: the relay */
		via->in.sin_family = AF_INET;
		via->in.sin_port = htons((uint16_t)port);
		memcpy(&via->in.sin_addr, &a.s6_addr[12], 4);
		*vialen = sizeof(via->in);
		return 1;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a) &&
	    (REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
	    &l) != 0 || v6only))
		return 0;               /* cannot reach an IPv4 service */
	via->in6.sin6_family = AF_INET6;
	via->in6.sin6_port = htons((uint16_t)port);
	via->in6.sin6_addr = a;
	*vialen = sizeof(via->in6);
	return 1;
}

/* Address and port of u as TRACK wants them (IPv4 dotted, also for a
 * v4-mapped IPv6 address). 0/-1. */
static int
sa_text(const union shim_sa *u, char *buf, size_t len, uint16_t *port)
{
	struct shim_dest d;

	if (shim_dest_from_sa(&u->sa, u->sa.sa_family == AF_INET ?
	    sizeof(u->in) : sizeof(u->in6), &d) != 0)
		return -1;
	*port = d.port;
	if (IN6_IS_ADDR_V4MAPPED(&d.addr))
		return inet_ntop(AF_INET, &d.addr.s6_addr[12], buf,
		    (socklen_t)len) != NULL ? 0 : -1;
	return inet_ntop(AF_INET6, &d.addr, buf, (socklen_t)len) != NULL ?
	    0 : -1;
}

/* Undo a connection helperd does not track: connect(AF_UNSPEC) resets it
 * (a non-blocking app then sees ECONNRESET on first I/O). */
static void
reset(int fd)
{
	struct sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNSPEC;
	(void)REAL(connect)(fd, &sa, sizeof(sa));
}

int
direct_connect(int fd, const union shim_sa *via, socklen_t vialen,
    struct fdt_ent *e, const char *svc, int *fallback)
{
	char req[SHIM_NAME_MAX + 160], reply[512];
	char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
	union shim_sa local;
	socklen_t ll = sizeof(local);
	uint16_t lport, rport;
	int rc, err, nb, r;

	*fallback = 0;
	nb = (REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) != 0;
	rc = REAL(connect)(fd, &via->sa, vialen);
	err = errno;
	if (rc != 0 && err != EINPROGRESS && err != EINTR) {
		if (err == ECONNREFUSED && !nb)
			*fallback = 1;
		errno = err;
		return rc;
	}
	if (REAL(getsockname)(fd, &local.sa, &ll) != 0 ||
	    sa_text(&local, la, sizeof(la), &lport) != 0 || lport == 0 ||
	    sa_text(via, ra, sizeof(ra), &rport) != 0) {
		reset(fd);
		goto refused;
	}
	snprintf(req, sizeof(req), "TRACK %s %s %u %s %u\n", svc, la, lport,
	    ra, rport);
	r = ctl_call(req, reply, sizeof(reply));
	if (r != 0 || strcmp(reply, "OK") != 0) {
		/* Refused (helperd destroyed it already if it could) or
		 * helperd gone: nothing may stay up that it cannot cut. */
		shim_log("connect fd %d -> %s direct: %s", fd, svc,
		    r != 0 ? "helperd unreachable" : reply);
		reset(fd);
		goto refused;
	}
	shim_log("connect fd %d -> %s direct to %s:%u from local port %u", fd,
	    svc, ra, rport, lport);
	e->via = *via;
	e->vialen = vialen;
	if (shim_is_owner())
		fdt_set(fd, e);
	errno = err;
	return rc;
refused:
	if (nb) {
		errno = err;    /* reset: the app sees it on first I/O */
		return rc;
	}
	errno = ECONNREFUSED;
	return -1;
}
