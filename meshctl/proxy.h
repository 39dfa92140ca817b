/* proxy: "meshctl connect proxy", a local listener per upstream whose
 * connections are carried through helperd (for programs that cannot be
 * preloaded). Single-threaded epoll loop.
 *
 * Per accepted connection: a TCP socket bound to 127.0.0.1:0 is
 * registered with helperd ("CONNECT <dest> <local-port>" on the control
 * socket, common/ctlproto.h), then connected to helperd's outbound port,
 * and the bytes are relayed both ways (bounded buffers, back-pressure,
 * half-close propagated). */
#ifndef MESHCTL_PROXY_H
#define MESHCTL_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/ctlproto.h"

#define PROXY_BUF            65536    /* per direction per connection */
#define PROXY_MAX_UPSTREAMS  64
#define PROXY_MAX_CONNS      16384
#define PROXY_CTL_PENDING    1024     /* CONNECTs awaiting a reply */
#define PROXY_CTL_TIMEOUT_MS 5000     /* control reply */
#define PROXY_CONNECT_MS     5000     /* connect to helperd's outbound port */

enum ep_kind { EP_LISTEN, EP_CTL, EP_CLIENT, EP_UP, EP_SIGNAL };

/* What an epoll event points at. */
struct ep_ref {
	enum ep_kind kind;
	void *ptr;
};

struct proxy_upstream {
	char dest[64];
	char addr[64];              /* as given ("" = 127.0.0.1) */
	struct sockaddr_storage sa;
	socklen_t salen;
	int port;
	int lfd;
	struct ep_ref ref;
	int64_t paused_until;       /* accept paused (EMFILE), mono ms */
};

struct proxy_buf {
	char *data;                 /* PROXY_BUF bytes, allocated at relay */
	size_t off, len;
};

enum pconn_state { PC_WAIT_CTL, PC_CONNECTING, PC_RELAY, PC_DEAD };

struct proxy;

struct pconn {
	struct proxy *px;
	struct proxy_upstream *up;
	enum pconn_state state;
	int fd[2];                  /* 0: client, 1: helperd (upstream) */
	uint32_t mask[2];           /* registered epoll events, ~0u = none */
	struct ep_ref ref[2];
	struct proxy_buf buf[2];    /* buf[i]: read from fd[i], for fd[1-i] */
	unsigned rd_eof[2];         /* fd[i] reached EOF */
	unsigned wr_shut[2];        /* shutdown(fd[i], SHUT_WR) done */
	uint64_t bytes[2];          /* read from side i */
	uint64_t ctl_seq;           /* slot in the control FIFO */
	int lport;                  /* local port of fd[1] */
	int64_t deadline;           /* mono ms for WAIT_CTL / CONNECTING */
	char peer[64];              /* client address, for logs */
	struct pconn *prev, *next;  /* px->conns, or px->dead */
};

struct proxy_ctl {
	int fd;                     /* -1 when down */
	struct ep_ref ref;
	uint32_t mask;
	char wbuf[65536];
	size_t wlen;
	char rbuf[CTL_REPLY_MAX + 1];
	size_t rlen;
	int hello_pending;          /* the next reply answers HELLO */
	int outbound_port;          /* from HELLO's reply, 0 = unknown */
	struct pconn *fifo[PROXY_CTL_PENDING];
	uint64_t head, tail;        /* fifo[head % N] is the next reply's */
};

struct proxy {
	const char *service;
	const char *sockpath;
	int epfd;
	int sigfd;
	struct ep_ref sigref;
	struct proxy_upstream ups[PROXY_MAX_UPSTREAMS];
	size_t nups;
	struct proxy_ctl ctl;
	struct pconn *conns;        /* live */
	struct pconn *dead;         /* closed, freed after the event batch */
	size_t nconns, npending;
	int stop;                   /* signal received */
	int exit_code;
	int startup;                /* first HELLO not answered yet */
	int64_t startup_deadline;   /* mono ms: no answer by then: exit 1 */
};

/* Monotonic clock in ms. */
int64_t proxy_now(void);

/* Set fd's epoll interest to mask (register/modify), recorded in *cur. */
int proxy_ep_set(struct proxy *px, int fd, struct ep_ref *ref,
    uint32_t *cur, uint32_t mask);

/* proxy_relay.c: connection lifecycle. */
/* New connection for the accepted client fd; registers it with helperd.
 * Takes ownership of cfd. */
void pconn_accept(struct proxy *px, struct proxy_upstream *up, int cfd,
    const struct sockaddr_storage *peer);
/* helperd answered the CONNECT: ok, or refused with why. */
void pconn_ctl_reply(struct pconn *pc, int ok, const char *why);
/* epoll event on side (0 client, 1 helperd). */
void pconn_event(struct pconn *pc, int side, uint32_t events);
/* The one teardown: log reason (NULL: normal end), rst: abortive close
 * (SO_LINGER 0) of both sockets. */
void pconn_close(struct pconn *pc, const char *reason, int rst);
/* Close connections whose WAIT_CTL/CONNECTING deadline passed. */
void pconn_timeouts(struct proxy *px, int64_t now);
/* Free the connections closed during this batch. */
void pconn_reap(struct proxy *px);

/* proxy_ctl.c: the control connection to helperd. */
/* Connect (if down) and say HELLO. 0/-1 (logged). */
int proxy_ctl_up(struct proxy *px);
/* Queue "CONNECT dest lport" for pc. 0/-1 (logged). */
int proxy_ctl_connect(struct proxy *px, struct pconn *pc);
/* pc is going away: forget its FIFO slot. */
void proxy_ctl_forget(struct proxy *px, struct pconn *pc);
void proxy_ctl_event(struct proxy *px, uint32_t events);
/* Drop the control connection, failing every pending CONNECT. */
void proxy_ctl_drop(struct proxy *px, const char *why);

#endif
