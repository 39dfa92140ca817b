/* proxy_ctl: the control connection of "meshctl connect proxy" to helperd
 * (common/ctlproto.h): HELLO once, then one CONNECT per accepted client,
 * replies in order. Non-blocking; dropped and re-made on any trouble. */
#include "meshctl/api.h"
#include "meshctl/proxy.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void
ctl_update(struct proxy *px)
{
	struct proxy_ctl *c = &px->ctl;

	if (c->fd < 0)
		return;
	if (proxy_ep_set(px, c->fd, &c->ref, &c->mask,
	    EPOLLIN | (c->wlen > 0 ? EPOLLOUT : 0)) != 0)
		proxy_ctl_drop(px, "epoll update failed");
}

/* Write what is queued. 0/-1 (dropped). */
static int
ctl_flush(struct proxy *px)
{
	struct proxy_ctl *c = &px->ctl;
	char why[128];

	while (c->wlen > 0) {
		ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			snprintf(why, sizeof(why), "write: %s",
			    strerror(errno));
			proxy_ctl_drop(px, why);
			return -1;
		}
		memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
		c->wlen -= (size_t)n;
	}
	ctl_update(px);
	return c->fd < 0 ? -1 : 0;
}

static int
ctl_queue(struct proxy *px, const char *line)
{
	struct proxy_ctl *c = &px->ctl;
	size_t n = strlen(line);

	if (n > CTL_LINE_MAX || n > sizeof(c->wbuf) - c->wlen) {
		log_warn("helperd control socket: send queue full");
		return -1;
	}
	memcpy(c->wbuf + c->wlen, line, n);
	c->wlen += n;
	return 0;
}

int
proxy_ctl_up(struct proxy *px)
{
	struct proxy_ctl *c = &px->ctl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char line[CTL_LINE_MAX];

	if (c->fd >= 0)
		return 0;
	if (util_strlcpy(sun.sun_path, px->sockpath, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_err("control socket path too long: %s", px->sockpath);
		return -1;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd < 0) {
		log_err("control socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_err("cannot reach helperd at %s: %s", px->sockpath,
		    strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->mask = ~0u;
	c->ref = (struct ep_ref){ EP_CTL, px };
	c->wlen = c->rlen = 0;
	c->outbound_port = 0;
	c->head = c->tail = 0;
	/* A token lets a name that nobody defines be claimed (ctlproto.h). */
	snprintf(line, sizeof(line), "HELLO %s%s%s\n", px->service,
	    api_token() != NULL ? " " : "", api_token() != NULL ?
	    api_token() : "");
	ctl_queue(px, line);
	c->hello_pending = 1;
	log_debug("control connection to %s opened", px->sockpath);
	return ctl_flush(px);
}

int
proxy_ctl_connect(struct proxy *px, struct pconn *pc)
{
	struct proxy_ctl *c = &px->ctl;
	char line[CTL_LINE_MAX];

	if (proxy_ctl_up(px) != 0)
		return -1;
	if (c->tail - c->head >= PROXY_CTL_PENDING) {
		log_warn("too many connections waiting for helperd");
		return -1;
	}
	snprintf(line, sizeof(line), "CONNECT %s %d\n", pc->up->dest,
	    pc->lport);
	if (ctl_queue(px, line) != 0)
		return -1;
	pc->ctl_seq = c->tail;
	c->fifo[c->tail++ % PROXY_CTL_PENDING] = pc;
	/* A failed flush drops the connection, which already closed pc. */
	(void)ctl_flush(px);
	return 0;
}

void
proxy_ctl_forget(struct proxy *px, struct pconn *pc)
{
	struct proxy_ctl *c = &px->ctl;

	if (c->fd >= 0 && pc->ctl_seq >= c->head && pc->ctl_seq < c->tail &&
	    c->fifo[pc->ctl_seq % PROXY_CTL_PENDING] == pc)
		c->fifo[pc->ctl_seq % PROXY_CTL_PENDING] = NULL;
}

void
proxy_ctl_drop(struct proxy *px, const char *why)
{
	struct proxy_ctl *c = &px->ctl;
	char msg[256];

	if (c->fd < 0)
		return;
	log_warn("control connection to helperd lost: %s", why);
	if (px->startup) {
		/* Never answered HELLO: not a helperd we can use. */
		log_err("helperd at %s did not accept service \"%s\"; "
		    "exiting", px->sockpath, px->service);
		px->startup = 0;
		px->stop = 1;
		px->exit_code = 1;
	}
	close(c->fd);
	c->fd = -1;
	snprintf(msg, sizeof(msg), "control connection lost: %s", why);
	while (c->head < c->tail) {
		struct pconn *pc = c->fifo[c->head % PROXY_CTL_PENDING];
		c->fifo[c->head++ % PROXY_CTL_PENDING] = NULL;
		if (pc != NULL)
			pconn_close(pc, msg, 1);
	}
	c->head = c->tail = 0;
	c->hello_pending = 0;
}

/* "OK port=N dns=..." -> N, or -1. */
static int
hello_port(const char *line)
{
	const char *p = line;
	long v;

	while ((p = strstr(p, " port=")) != NULL) {
		char num[8];
		size_t n;
		p += 6;
		n = strspn(p, "0123456789");
		if (n == 0 || n >= sizeof(num))
			return -1;
		memcpy(num, p, n);
		num[n] = '\0';
		if (util_parse_long(num, 1, 65535, &v) != 0)
			return -1;
		return (int)v;
	}
	return -1;
}

static void
ctl_reply(struct proxy *px, char *line)
{
	struct proxy_ctl *c = &px->ctl;
	int ok = strcmp(line, "OK") == 0 || strncmp(line, "OK ", 3) == 0;
	int err = strcmp(line, "ERR") == 0 || strncmp(line, "ERR ", 4) == 0;
	struct pconn *pc;

	if (!ok && !err) {
		proxy_ctl_drop(px, "malformed reply from helperd");
		return;
	}
	if (c->hello_pending) {
		c->hello_pending = 0;
		if (err) {
			log_err("helperd refused service \"%s\": %s",
			    px->service, line[3] ? line + 4 : "no reason");
			if (px->startup) {
				px->startup = 0;
				px->stop = 1;
				px->exit_code = 1;
			}
			proxy_ctl_drop(px, "HELLO refused");
			return;
		}
		if ((c->outbound_port = hello_port(line)) < 0) {
			proxy_ctl_drop(px, "HELLO reply without a valid port");
			return;
		}
		if (px->startup)
			log_info("connected to helperd at %s as \"%s\" "
			    "(outbound port %d)", px->sockpath, px->service,
			    c->outbound_port);
		px->startup = 0;
		return;
	}
	if (c->head == c->tail) {
		proxy_ctl_drop(px, "unexpected reply from helperd");
		return;
	}
	pc = c->fifo[c->head % PROXY_CTL_PENDING];
	c->fifo[c->head++ % PROXY_CTL_PENDING] = NULL;
	if (pc != NULL)
		pconn_ctl_reply(pc, ok, err ? (line[3] ? line + 4 :
		    "no reason") : NULL);
}

void
proxy_ctl_event(struct proxy *px, uint32_t ev)
{
	struct proxy_ctl *c = &px->ctl;
	char why[128];

	if (c->fd < 0)
		return;
	if ((ev & EPOLLOUT) && ctl_flush(px) != 0)
		return;
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->rlen,
		    sizeof(c->rbuf) - 1 - c->rlen, 0);
		char *nl, *start;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			if (n == 0)
				snprintf(why, sizeof(why), "helperd closed "
				    "the connection");
			else
				snprintf(why, sizeof(why), "read: %s",
				    strerror(errno));
			proxy_ctl_drop(px, why);
			return;
		}
		c->rlen += (size_t)n;
		c->rbuf[c->rlen] = '\0';
		start = c->rbuf;
		while ((nl = memchr(start, '\n', c->rlen -
		    (size_t)(start - c->rbuf))) != NULL) {
			*nl = '\0';
			if (nl > start && nl[-1] == '\r')
				nl[-1] = '\0';
			ctl_reply(px, start);
			if (c->fd < 0)
				return;
			start = nl + 1;
		}
		c->rlen -= (size_t)(start - c->rbuf);
		memmove(c->rbuf, start, c->rlen);
		if (c->rlen >= sizeof(c->rbuf) - 1) {
			proxy_ctl_drop(px, "reply line too long");
			return;
		}
	}
}
