/* Sockets of the relay: addresses, non-blocking dials and listeners. */
#include <netdb.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay_int.h"

static void
set_cc(int fd, const char *cc)
{
	if (cc[0] != '\0')
		setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc,
		    (socklen_t)strlen(cc));
}

void
relay_sock_tune(const struct relay *r, int fd,
    const struct sockaddr_storage *peer, const char *has)
{
	const char *cc = relay_is_loopback(peer) ? r->loop_cc : r->mesh_cc;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A loopback leg has no path to pace or probe, yet BBR (a common
	 * default) paces it too: a timer interrupt and a deferred send per
	 * burst, paid by whatever runs on that CPU (bench/PROFILE.md). */
	if (strcmp(cc, has) != 0)
		set_cc(fd, cc);
}

const char *
relay_sock_listen_cc(const struct relay *r, int fd, int mesh)
{
	const char *cc;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	/* Set on the listener, a name is the accepted sockets' from their
	 * first segment; set after accept(), BBR's pacing would stay on. */
	if (mesh && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    relay_is_loopback(&ss))
		mesh = 0;       /* only this host's programs reach it */
	cc = mesh ? r->mesh_cc : r->loop_cc;
	set_cc(fd, cc);
	return cc;
}

const char *
relay_loopback_cc(const struct relay *r)
{
	return r->loop_cc;
}

/* out = cc if the kernel takes it and it is not the system's already,
 * else "" (a refusal logged, naming key). */
static void
cc_pick(const char *key, const char *cc, const char *sys, char *out,
    size_t len)
{
	int fd;

	out[0] = '\0';
	if (cc[0] == '\0' || strcmp(sys, cc) == 0)
		return;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("%s: socket: %m", key);
		return;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc,
	    (socklen_t)strlen(cc)) != 0)
		log_warn("%s \"%s\": %m (not in "
		    "net.ipv4.tcp_available_congestion_control?): its sockets "
		    "keep the system's, \"%s\"", key, cc, sys);
	else
		util_strlcpy(out, cc, len);
	close(fd);
}

void
relay_sock_cc_init(struct relay *r, const char *loop_cc, const char *mesh_cc)
{
	char sys[sizeof(r->loop_cc)] = "", *qdisc;
	socklen_t len = sizeof(sys) - 1;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
		if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, sys, &len) != 0)
			sys[0] = '\0';
		close(fd);
	}
	cc_pick("loopback_congestion", loop_cc, sys, r->loop_cc,
	    sizeof(r->loop_cc));
	if (strcmp(mesh_cc, "auto") != 0) {
		cc_pick("mesh_congestion", mesh_cc, sys, r->mesh_cc,
		    sizeof(r->mesh_cc));
		return;
	}
	/* auto: BBR needs its sends paced. Without the fq qdisc, TCP paces
	 * each socket itself, with a high-resolution timer and a deferred
	 * send per burst: across a LAN that costs more CPU than the
	 * stream's crypto (bench/PROFILE.md). Then Linux's default, cubic;
	 * any other choice of the system's stays. */
	if (strncmp(sys, "bbr", 3) != 0)
		return;
	qdisc = util_read_file("/proc/sys/net/core/default_qdisc", 64, NULL);
	if (qdisc != NULL)
		qdisc[strcspn(qdisc, "\n")] = '\0';
	if (qdisc == NULL || strcmp(qdisc, "fq") != 0) {
		cc_pick("mesh_congestion", "cubic", sys, r->mesh_cc,
		    sizeof(r->mesh_cc));
		if (r->mesh_cc[0] != '\0')
			log_info("mesh_congestion auto: the system's %s "
			    "without the fq qdisc (default_qdisc %s) paces "
			    "with a timer per burst: cubic on sockets to "
			    "other nodes", sys, qdisc != NULL ? qdisc : "?");
	}
	free(qdisc);
}

static int
parse_addr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	    .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char p[8];

	snprintf(p, sizeof(p), "%d", port);
	if (getaddrinfo(host, p, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int
relay_resolve_dialled(const char *host, int port, struct sockaddr_storage *ss)
{
	socklen_t len;

	return parse_addr(host, port, ss, &len);
}

void
relay_addr_string(const struct sockaddr_storage *ss, char *buf, size_t len,
    int *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
		*port = ntohs(s4->sin_port);
	}
}

int
relay_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* Start a non-blocking connect to host:port. fd or -1 with why. */
int
relay_dial(const struct relay *r, const char *host, int port, char *why,
    size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (parse_addr(host, port, &ss, &len) != 0) {
		snprintf(why, whylen, "bad address %s:%d", host, port);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	relay_sock_tune(r, fd, &ss, "");
	if (connect(fd, (struct sockaddr *)&ss, len) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "connect %s:%d: %s", host, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* A listening TCP socket on host:port (0: any); the port in *bound. */
int
relay_listen_socket(const char *host, int port, int *bound, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;
	char a[INET6_ADDRSTRLEN];

	if (parse_addr(host, port, &ss, &len) != 0) {
		snprintf(err, errlen, "bad listen address %s", host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	len = sizeof(ss);
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(fd, RELAY_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(err, errlen, "listen on %s:%d: %s", host, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	relay_addr_string(&ss, a, sizeof(a), bound);
	return fd;
}

/* Reset a socket (the application sees ECONNRESET). */
void
relay_reset_fd(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}
