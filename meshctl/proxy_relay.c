/* proxy_relay: one accepted connection of "meshctl connect proxy", from
 * registration with helperd to the end of the relay. Every exit goes
 * through pconn_close(). */
#include "meshctl/proxy.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *side_name[2] = { "client", "helperd" };

static void
list_unlink(struct pconn **head, struct pconn *pc)
{
	if (pc->prev != NULL)
		pc->prev->next = pc->next;
	else
		*head = pc->next;
	if (pc->next != NULL)
		pc->next->prev = pc->prev;
	pc->prev = pc->next = NULL;
}

static void
list_push(struct pconn **head, struct pconn *pc)
{
	pc->prev = NULL;
	pc->next = *head;
	if (*head != NULL)
		(*head)->prev = pc;
	*head = pc;
}

static void
fmt_peer(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "?");
	}
}

void
pconn_accept(struct proxy *px, struct proxy_upstream *up, int cfd,
    const struct sockaddr_storage *peer)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct pconn *pc = calloc(1, sizeof(*pc));

	if (pc == NULL) {
		log_err("%s => %s: out of memory, connection dropped",
		    px->service, up->dest);
		close(cfd);
		return;
	}
	pc->px = px;
	pc->up = up;
	pc->fd[0] = cfd;
	pc->fd[1] = -1;
	pc->mask[0] = pc->mask[1] = ~0u;
	pc->ref[0] = (struct ep_ref){ EP_CLIENT, pc };
	pc->ref[1] = (struct ep_ref){ EP_UP, pc };
	pc->state = PC_WAIT_CTL;
	pc->deadline = proxy_now() + PROXY_CTL_TIMEOUT_MS;
	fmt_peer(peer, pc->peer, sizeof(pc->peer));
	list_push(&px->conns, pc);
	px->nconns++;
	px->npending++;
	log_debug("%s => %s: connection from %s", px->service, up->dest,
	    pc->peer);

	/* Watch the client only for errors while helperd decides. */
	if (proxy_ep_set(px, cfd, &pc->ref[0], &pc->mask[0], 0) != 0) {
		pconn_close(pc, "epoll registration failed", 1);
		return;
	}
	pc->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (pc->fd[1] < 0 ||
	    bind(pc->fd[1], (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(pc->fd[1], (struct sockaddr *)&sin, &slen) != 0) {
		char why[128];
		snprintf(why, sizeof(why), "cannot create the socket to "
		    "helperd: %s", strerror(errno));
		pconn_close(pc, why, 1);
		return;
	}
	pc->lport = ntohs(sin.sin_port);
	if (proxy_ctl_connect(px, pc) != 0)
		pconn_close(pc, "helperd control socket unavailable", 1);
}

/* Interest of each side from the relay state. */
static void
relay_update(struct pconn *pc)
{
	for (int i = 0; i < 2; i++) {
		uint32_t m = 0;
		const struct proxy_buf *in = &pc->buf[i];      /* from i */
		const struct proxy_buf *out = &pc->buf[1 - i]; /* to i */

		if (!pc->rd_eof[i] && in->off + in->len < PROXY_BUF)
			m |= EPOLLIN;
		if (out->len > 0 && !pc->wr_shut[i])
			m |= EPOLLOUT;
		if (pc->rd_eof[i] && pc->wr_shut[i])
			m = ~0u;        /* side done: leave the set (HUP) */
		if (proxy_ep_set(pc->px, pc->fd[i], &pc->ref[i], &pc->mask[i],
		    m) != 0) {
			pconn_close(pc, "epoll update failed", 1);
			return;
		}
	}
}

static void
relay_start(struct pconn *pc)
{
	pc->buf[0].data = malloc(PROXY_BUF);
	pc->buf[1].data = malloc(PROXY_BUF);
	if (pc->buf[0].data == NULL || pc->buf[1].data == NULL) {
		pconn_close(pc, "out of memory", 1);
		return;
	}
	pc->state = PC_RELAY;
	pc->deadline = 0;
	pc->px->npending--;
	log_debug("%s => %s: %s connected through helperd (local port %d)",
	    pc->px->service, pc->up->dest, pc->peer, pc->lport);
	relay_update(pc);
}

void
pconn_ctl_reply(struct pconn *pc, int ok, const char *why)
{
	struct proxy *px = pc->px;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char msg[CTL_REPLY_MAX + 64];

	if (!ok) {
		snprintf(msg, sizeof(msg), "refused by helperd: %s", why);
		log_warn("%s => %s: connection from %s %s", px->service,
		    pc->up->dest, pc->peer, msg);
		pconn_close(pc, NULL, 1);
		return;
	}
	if (px->ctl.outbound_port <= 0) {
		pconn_close(pc, "helperd did not give its outbound port", 1);
		return;
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)px->ctl.outbound_port);
	pc->state = PC_CONNECTING;
	pc->deadline = proxy_now() + PROXY_CONNECT_MS;
	if (connect(pc->fd[1], (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		relay_start(pc);
		return;
	}
	if (errno != EINPROGRESS) {
		snprintf(msg, sizeof(msg), "cannot connect to helperd at "
		    "127.0.0.1:%d: %s", px->ctl.outbound_port,
		    strerror(errno));
		pconn_close(pc, msg, 1);
		return;
	}
	if (proxy_ep_set(px, pc->fd[1], &pc->ref[1], &pc->mask[1],
	    EPOLLOUT) != 0)
		pconn_close(pc, "epoll registration failed", 1);
}

/* Write what buf[1-i] holds to side i; shut its write side once the other
 * side has ended and everything is out. -1 when pc was closed. */
static int
relay_flush(struct pconn *pc, int i)
{
	struct proxy_buf *b = &pc->buf[1 - i];
	char why[160];

	while (b->len > 0) {
		ssize_t n = send(pc->fd[i], b->data + b->off, b->len,
		    MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			snprintf(why, sizeof(why), "write to %s: %s",
			    side_name[i], strerror(errno));
			pconn_close(pc, why, 1);
			return -1;
		}
		b->off += (size_t)n;
		b->len -= (size_t)n;
	}
	b->off = 0;
	if (pc->rd_eof[1 - i] && !pc->wr_shut[i]) {
		if (shutdown(pc->fd[i], SHUT_WR) != 0 && errno != ENOTCONN) {
			snprintf(why, sizeof(why), "shutdown of %s: %s",
			    side_name[i], strerror(errno));
			pconn_close(pc, why, 1);
			return -1;
		}
		pc->wr_shut[i] = 1;
	}
	return 0;
}

/* Read once from side i into buf[i], then pass it on. -1 when closed. */
static int
relay_read(struct pconn *pc, int i)
{
	struct proxy_buf *b = &pc->buf[i];
	char why[160];
	ssize_t n;

	if (pc->rd_eof[i])
		return 0;
	if (b->len == 0)
		b->off = 0;
	else if (b->off + b->len == PROXY_BUF && b->off > 0) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->off + b->len == PROXY_BUF)
		return 0;                       /* full: back-pressure */
	do
		n = recv(pc->fd[i], b->data + b->off + b->len,
		    PROXY_BUF - b->off - b->len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0) {
		snprintf(why, sizeof(why), "read from %s: %s", side_name[i],
		    strerror(errno));
		pconn_close(pc, why, 1);
		return -1;
	}
	if (n == 0)
		pc->rd_eof[i] = 1;
	b->len += (size_t)n;
	pc->bytes[i] += (uint64_t)n;
	return relay_flush(pc, 1 - i);
}

void
pconn_event(struct pconn *pc, int side, uint32_t ev)
{
	char why[160];

	if (pc->state == PC_DEAD)
		return;
	if (pc->state == PC_WAIT_CTL) {
		/* Only errors are watched: the client went away. */
		if (ev & (EPOLLERR | EPOLLHUP))
			pconn_close(pc, "client closed before helperd "
			    "answered", 1);
		return;
	}
	if (pc->state == PC_CONNECTING) {
		int err = 0;
		socklen_t elen = sizeof(err);
		if (side != 1) {
			if (ev & (EPOLLERR | EPOLLHUP))
				pconn_close(pc, "client closed while "
				    "connecting", 1);
			return;
		}
		if (getsockopt(pc->fd[1], SOL_SOCKET, SO_ERROR, &err,
		    &elen) != 0)
			err = errno;
		if (err != 0) {
			snprintf(why, sizeof(why), "cannot connect to helperd "
			    "at 127.0.0.1:%d: %s", pc->px->ctl.outbound_port,
			    strerror(err));
			pconn_close(pc, why, 1);
			return;
		}
		relay_start(pc);
		return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
	    relay_read(pc, side) != 0)
		return;
	if ((ev & (EPOLLOUT | EPOLLERR)) && relay_flush(pc, side) != 0)
		return;
	if (pc->wr_shut[0] && pc->wr_shut[1]) {
		pconn_close(pc, NULL, 0);
		return;
	}
	/* A side that hung up with nothing left to give: stop polling it
	 * for input, or EPOLLHUP would spin. */
	relay_update(pc);
}

void
pconn_close(struct pconn *pc, const char *reason, int rst)
{
	struct proxy *px = pc->px;

	if (pc->state == PC_DEAD)
		return;
	if (pc->state == PC_WAIT_CTL)
		proxy_ctl_forget(px, pc);
	if (pc->state == PC_WAIT_CTL || pc->state == PC_CONNECTING)
		px->npending--;
	if (reason != NULL)
		log_warn("%s => %s: connection from %s closed: %s "
		    "(%llu bytes sent, %llu received)", px->service,
		    pc->up->dest, pc->peer, reason,
		    (unsigned long long)pc->bytes[0],
		    (unsigned long long)pc->bytes[1]);
	else
		log_debug("%s => %s: connection from %s done (%llu bytes "
		    "sent, %llu received)", px->service, pc->up->dest,
		    pc->peer, (unsigned long long)pc->bytes[0],
		    (unsigned long long)pc->bytes[1]);
	for (int i = 0; i < 2; i++) {
		if (pc->fd[i] < 0)
			continue;
		if (rst) {
			struct linger l = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(pc->fd[i], SOL_SOCKET, SO_LINGER, &l,
			    sizeof(l));
		}
		close(pc->fd[i]);       /* also leaves the epoll set */
		pc->fd[i] = -1;
	}
	pc->state = PC_DEAD;
	list_unlink(&px->conns, pc);
	list_push(&px->dead, pc);
	px->nconns--;
}

void
pconn_timeouts(struct proxy *px, int64_t now)
{
	struct pconn *pc, *next;

	if (px->npending == 0)
		return;
	for (pc = px->conns; pc != NULL; pc = next) {
		next = pc->next;
		if (pc->deadline == 0 || now < pc->deadline)
			continue;
		if (pc->state == PC_WAIT_CTL) {
			/* helperd is wedged: start over with a new control
			 * connection (this fails every pending CONNECT). */
			proxy_ctl_drop(px, "no reply from helperd within 5 s");
			return;
		}
		pconn_close(pc, "timed out connecting to helperd", 1);
	}
}

void
pconn_reap(struct proxy *px)
{
	while (px->dead != NULL) {
		struct pconn *pc = px->dead;
		px->dead = pc->next;
		free(pc->buf[0].data);
		free(pc->buf[1].data);
		free(pc);
	}
}
