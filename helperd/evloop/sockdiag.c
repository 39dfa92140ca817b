#include "helperd/evloop/sockdiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#define SOCKDIAG_TIMEOUT_MS 500
#define SOCKDIAG_RCVBUF     (64 * 1024)

struct sockdiag {
	int fd;
	uint32_t seq;
	char buf[SOCKDIAG_RCVBUF] __attribute__((aligned(8)));  /* answers */
};

struct diag_req {
	struct nlmsghdr nh;
	struct inet_diag_req_v2 r;
};

int
sockdiag_open(struct sockdiag **out)
{
	struct sockdiag *sd;
	struct timeval tv = { .tv_sec = 0,
	    .tv_usec = SOCKDIAG_TIMEOUT_MS * 1000 };
	int fd;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    (sd = calloc(1, sizeof(*sd))) == NULL) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	sd->fd = fd;
	*out = sd;
	return 0;
}

void
sockdiag_close(struct sockdiag *sd)
{
	if (sd == NULL)
		return;
	close(sd->fd);
	free(sd);
}

static int
is_v4(const struct in6_addr *a)
{
	return IN6_IS_ADDR_V4MAPPED(a);
}

static void
fill_req(struct diag_req *q, uint16_t type, uint16_t flags, uint32_t seq,
    const struct sockdiag_id *id)
{
	int v4 = is_v4(&id->src) && is_v4(&id->dst);

	memset(q, 0, sizeof(*q));
	q->nh.nlmsg_len = sizeof(*q);
	q->nh.nlmsg_type = type;
	q->nh.nlmsg_flags = flags;
	q->nh.nlmsg_seq = seq;
	q->r.sdiag_family = v4 ? AF_INET : AF_INET6;
	q->r.sdiag_protocol = IPPROTO_TCP;
	q->r.idiag_states = ~0u;
	q->r.id.idiag_sport = htons(id->sport);
	q->r.id.idiag_dport = htons(id->dport);
	if (v4) {
		memcpy(&q->r.id.idiag_src[0], &id->src.s6_addr[12], 4);
		memcpy(&q->r.id.idiag_dst[0], &id->dst.s6_addr[12], 4);
	} else {
		memcpy(q->r.id.idiag_src, &id->src, 16);
		memcpy(q->r.id.idiag_dst, &id->dst, 16);
	}
	if (id->cookie == SOCKDIAG_NOCOOKIE) {
		q->r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
		q->r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	} else {
		q->r.id.idiag_cookie[0] = (uint32_t)id->cookie;
		q->r.id.idiag_cookie[1] = (uint32_t)(id->cookie >> 32);
	}
}

static int
send_reqs(struct sockdiag *sd, struct diag_req *q, size_t n)
{
	struct sockaddr_nl k = { .nl_family = AF_NETLINK };
	ssize_t w;

	do
		w = sendto(sd->fd, q, n * sizeof(*q), 0, (struct sockaddr *)&k,
		    sizeof(k));
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -1;
	if ((size_t)w != n * sizeof(*q)) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* Read until each of the n requests numbered base.. has its answer:
 * res[i] = 0 with info[i] (a lookup), 0 (an ack), or an errno. Replies to
 * other (older, timed-out) requests are skipped. */
static int
read_answers(struct sockdiag *sd, uint32_t base, size_t n,
    struct sockdiag_info *info, int *res)
{
	char *buf = sd->buf;
	size_t left = n;

	for (size_t i = 0; i < n; i++)
		res[i] = -1;
	while (left > 0) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t r = recvfrom(sd->fd, buf, sizeof(sd->buf), 0,
		    (struct sockaddr *)&from, &fl);
		struct nlmsghdr *nh;
		size_t len;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
		if (from.nl_pid != 0)
			continue;       /* only the kernel answers */
		len = (size_t)r;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
		    nh = NLMSG_NEXT(nh, len)) {
			uint32_t i = nh->nlmsg_seq - base;

			if (i >= n || res[i] != -1)
				continue;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);
				if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					continue;
				res[i] = -e->error;
			} else if (nh->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
			    info != NULL) {
				const struct inet_diag_msg *m = NLMSG_DATA(nh);
				if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
					continue;
				info[i].state = m->idiag_state;
				info[i].uid = m->idiag_uid;
				info[i].inode = m->idiag_inode;
				info[i].cookie = (uint64_t)m->id.idiag_cookie[0] |
				    (uint64_t)m->id.idiag_cookie[1] << 32;
				res[i] = 0;
			} else {
				continue;
			}
			left--;
		}
	}
	return 0;
}

int
sockdiag_query_many(struct sockdiag *sd, const struct sockdiag_id *ids,
    size_t n, struct sockdiag_info *info, int *res)
{
	struct diag_req q[SOCKDIAG_BATCH];
	uint32_t base = sd->seq + 1;

	if (n == 0)
		return 0;
	if (n > SOCKDIAG_BATCH) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		fill_req(&q[i], SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
		    base + (uint32_t)i, &ids[i]);
	sd->seq += (uint32_t)n;
	if (send_reqs(sd, q, n) != 0)
		return -1;
	return read_answers(sd, base, n, info, res);
}

int
sockdiag_query(struct sockdiag *sd, const struct sockdiag_id *id,
    struct sockdiag_info *info)
{
	int res;

	if (sockdiag_query_many(sd, id, 1, info, &res) != 0)
		return -1;
	if (res != 0) {
		errno = res;
		return -1;
	}
	return 0;
}

int
sockdiag_destroy(struct sockdiag *sd, const struct sockdiag_id *id)
{
	struct diag_req q;
	uint32_t seq = ++sd->seq;
	int res;

	fill_req(&q, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, id);
	if (send_reqs(sd, &q, 1) != 0 ||
	    read_answers(sd, seq, 1, NULL, &res) != 0)
		return -1;
	if (res != 0) {
		errno = res;
		return -1;
	}
	return 0;
}

int
sockdiag_parse_addr(const char *s, struct in6_addr *a)
{
	struct in_addr v4;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &v4) == 1) {
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &v4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, s, a) == 1 ? 0 : -1;
}

void
sockdiag_addr_string(const struct in6_addr *a, char *buf, size_t len)
{
	if (is_v4(a))
		inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

/* The probe ------------------------------------------------------------ */

static int
loopback_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t l = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &l) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

int
sockdiag_probe(struct sockdiag *sd, char *why, size_t whylen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockdiag_id id;
	struct sockdiag_info info;
	struct pollfd p;
	char c;
	int lfd, cfd = -1, afd = -1, err = 0, rc = -1;
	socklen_t el = sizeof(err);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 1) != 0 || loopback_port(lfd) <= 0) {
		snprintf(why, whylen, "loopback listener: %s",
		    strerror(errno));
		goto out;
	}
	sin.sin_port = htons((uint16_t)loopback_port(lfd));
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sin,
	    sizeof(sin)) != 0 ||
	    (afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		snprintf(why, whylen, "loopback connection: %s",
		    strerror(errno));
		goto out;
	}
	memset(&id, 0, sizeof(id));
	(void)sockdiag_parse_addr("127.0.0.1", &id.src);
	id.dst = id.src;
	id.sport = (uint16_t)loopback_port(cfd);
	id.dport = ntohs(sin.sin_port);
	id.cookie = SOCKDIAG_NOCOOKIE;
	if (sockdiag_query(sd, &id, &info) != 0) {
		snprintf(why, whylen, "sock_diag lookup: %s", strerror(errno));
		goto out;
	}
	id.cookie = info.cookie;
	if (sockdiag_destroy(sd, &id) != 0) {
		snprintf(why, whylen, "SOCK_DESTROY: %s%s", strerror(errno),
		    errno == EPERM ? " (needs CAP_NET_ADMIN)" :
		    errno == EOPNOTSUPP ? " (kernel without "
		    "CONFIG_INET_DIAG_DESTROY)" : "");
		goto out;
	}
	/* Our end is aborted, the other end has been reset. */
	if (getsockopt(cfd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
	    err != ECONNABORTED) {
		snprintf(why, whylen, "destroyed socket reports %s, not "
		    "ECONNABORTED", strerror(err));
		goto out;
	}
	p.fd = afd;
	p.events = POLLIN;
	if (poll(&p, 1, SOCKDIAG_TIMEOUT_MS) != 1 ||
	    recv(afd, &c, 1, MSG_DONTWAIT) != -1 || errno != ECONNRESET) {
		snprintf(why, whylen, "the peer of a destroyed socket was not "
		    "reset");
		goto out;
	}
	rc = 0;
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return rc;
}
