/* relay_int: what the relay's files share: relay.c (a connection's
 * steps), relay_worker.c (threads, moving), relay_accept.c (listeners,
 * registrations), relay_sock.c (sockets), relay_io.c (pooled buffers and
 * pipes, the pump), relay_xprt.c (the transports: plain socket, TLS over
 * a socket, TLS over memory) and relay_mem.c (the in-memory link between
 * the two TLS ends of a same-node pair). Not used outside the relay. */
#ifndef MESH_RELAY_INT_H
#define MESH_RELAY_INT_H

#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "helperd/evloop/emfile.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/policy.h"
#include "helperd/relay/relay.h"
#include "helperd/evloop/sockdiag.h"
#include "helperd/relay/tls.h"

#define TLS_RECORD_MAX  (16 * 1024)  /* plaintext of one TLS record */
#define RELAY_BUF       (256 * 1024 + 4096) /* 16 records + their overhead */
#define RELAY_SPLICE    (64 * 1024)  /* a default pipe's capacity */
#define RELAY_POOL_MAX  32           /* idle buffers kept for reuse */
#define RELAY_PORTS     65536
#define RELAY_BACKLOG   1024
#define RELAY_DIAL_TRIES 3           /* instances tried per connection */
#define RELAY_MAX_WORKERS 64
#define RELAY_LEAF_WANTS 64          /* services waiting for a leaf */
/* A same-node pair whose inbound half moved this many bytes in each of
 * this many relay rounds is bulk: the half moves to another worker. */
#define RELAY_BULK_BYTES  (64 * 1024)
#define RELAY_BULK_ROUNDS 4

enum conn_kind { CONN_OUT, CONN_IN };

/* Observation (relay_obs.c): what metrics, the access log and the
 * connections API know of one connection. Written by its worker; what
 * other threads read is set before the connection is listed (obs_link)
 * or is atomic. */
enum obs_result { OBS_OK = 0, OBS_DENIED, OBS_CUT, OBS_KILLED };

#define OBS_HIST_BUCKETS 14

/* Per worker, per (direction, source, destination): one writer (the
 * worker), read on scrape with relaxed loads. */
struct obs_pair {
	char src[64], dst[64];
	int dir;                        /* CONN_OUT / CONN_IN */
	_Atomic uint64_t opened, closed, denied, failed, cut, killed;
	_Atomic uint64_t sent, rcvd;    /* source->destination and back */
};

/* A latency histogram in microseconds (bucket bounds: relay_obs.c). */
struct obs_hist {
	_Atomic uint64_t b[OBS_HIST_BUCKETS + 1];   /* last: +Inf */
	_Atomic uint64_t count, sum_us, max_us;
};

#define OBS_PAIRS_MAX 128
enum { OBS_H_DIAL, OBS_H_HS_CLIENT, OBS_H_HS_SERVER, OBS_H_FIRST_BYTE,
	OBS_H_N };

struct obs_worker {
	struct obs_pair pairs[OBS_PAIRS_MAX];
	_Atomic size_t n_pairs;         /* published with release */
	struct obs_hist hist[OBS_H_N];
	_Atomic uint64_t hs_full[2], hs_resumed[2];     /* [server] */
	_Atomic uint64_t streams_reused[2];     /* [server]: streams on a
	                                           session of an earlier one */
	_Atomic uint64_t checks_allow, checks_deny;
	_Atomic uint64_t rounds;        /* relay rounds run */
};

struct conn_obs {
	int64_t t_new_us;               /* monotonic: the connection began */
	int64_t t_dial_us;              /* the last dial started */
	int64_t t_hs_us;                /* the handshake started */
	int64_t t_open_us;              /* the relay started (0: never) */
	int64_t wall_open_ms;           /* realtime, for the log and API */
	int first_byte;                 /* first byte from the destination seen */
	enum obs_result result;
	char why[200];                  /* denial / cut: which intention */
	pid_t pid;                      /* outbound: the app (0: unknown) */
	uid_t uid;
	int has_uid;
	char unit[128];                 /* systemd unit or cgroup of pid,
	                                   read on the control path */
	char node[64];                  /* outbound: node dialled */
	_Atomic uint64_t up, down;      /* bytes moved, published each round */
	_Atomic int kill;               /* asked to close (API) */
	struct obs_pair *pair;          /* in pw's table */
	struct worker *pw;
	int listed;                     /* in the relay's list */
	struct conn *lprev, *lnext;
};
/* ST_LEAF: an outbound connection waiting for its source service's first
 * certificate (the main loop issues it, or asks a CA server), bounded by
 * connect_timeout. Sessions that carry streams (relay_stream.c): ST_OPEN,
 * an outbound connection on a reused session waiting for the peer's
 * ready; ST_IDLE, an inbound session between streams; ST_POOL, an
 * outbound session between streams, in its worker's pool. */
enum conn_state { ST_DIAL, ST_HANDSHAKE, ST_RELAY, ST_LEAF, ST_OPEN,
	ST_IDLE, ST_POOL };

struct end;
struct pipe;
struct worker;
struct mlink;

/* What a transport operation did. */
enum xio {
	XIO_OK = 0,     /* done: bytes read, or all handed over */
	XIO_AGAIN,      /* would block (want_in / want_out say which way) */
	XIO_EOF,        /* read: the end of the stream */
	XIO_ERR,        /* failed: the connection must be reset */
};

/* A transport: how one end of a connection moves bytes, as Redis'
 * ConnectionType or HAProxy's xprt_ops. The relay calls only these and
 * never asks which transport an end has (relay_xprt.c: plain socket, TLS
 * over a socket, TLS over memory). Every operation is set. */
struct xprt {
	const char *name;
	/* Has the dial of this end finished? XIO_OK, XIO_AGAIN (not yet), or
	 * XIO_ERR with *err (an errno). */
	enum xio (*connected)(struct end *e, int *err);
	/* Go on with the handshake: XIO_OK done, XIO_AGAIN (waiting, watch
	 * set), XIO_ERR with *err. NULL: the transport has none. */
	enum xio (*handshake)(struct worker *w, struct end *e,
	    const char **err);
	/* The relay starts on this end. */
	void (*start)(struct end *e);
	/* Read into p->buf from p->len on: XIO_OK (p->len grew), XIO_EOF,
	 * XIO_AGAIN, XIO_ERR. */
	enum xio (*read)(struct worker *w, struct end *e, struct pipe *p);
	/* Write p (p->off, p->len) and whatever the transport holds:
	 * XIO_OK all handed over, XIO_AGAIN, XIO_ERR. */
	enum xio (*write)(struct worker *w, struct end *e, struct pipe *p);
	/* Shut down writing towards e (TLS: close_notify first). */
	enum xio (*shutdown)(struct worker *w, struct end *e);
	/* Output the transport still holds (a write is due even with
	 * nothing new to send). */
	int (*pending)(const struct end *e);
	/* Nothing to read without waiting for an event. */
	int (*drained)(const struct end *e);
	/* Wait for ev (EPOLLIN, EPOLLOUT; 0: for hang-ups only). */
	void (*watch)(struct worker *w, struct end *e, uint32_t ev);
	/* Wait for what want_in / want_out say; neither: for nothing. */
	void (*interest)(struct worker *w, struct end *e);
	/* Bytes through a kernel pipe, never in user space: from e into
	 * kp (at most max), from kp (len bytes) to e. *n bytes moved.
	 * NULL when the transport cannot (TLS, memory). */
	enum xio (*rcv_pipe)(struct end *e, int kp[2], size_t max, size_t *n);
	enum xio (*snd_pipe)(struct end *e, int kp[2], size_t len, size_t *n);
	/* Moving between workers: leave w's loop (*fd, *ev: what attach
	 * needs), join w's loop. attach: 0/-1 (then close still works). */
	void (*detach)(struct worker *w, struct end *e, int *fd, uint32_t *ev);
	int (*attach)(struct worker *w, struct end *e, int fd, uint32_t ev);
	/* Close this end (abortive: the peer sees a reset). */
	void (*close)(struct worker *w, struct end *e, int abortive);
	int write_waits_read;   /* a write may wait for a read (TLS) */
	const char *read_failed; /* what a failed read means, for the log */
};

/* One end of a relayed connection: a socket (plain or TLS) or, for the
 * TLS ends of a same-node pair, one side of an in-memory link. */
struct end {
	struct loop_watch w;    /* socket: its watch. memory: fd -1, events
	                           what the end waits for */
	struct conn *c;         /* the connection this end belongs to */
	const struct xprt *x;   /* NULL until opened and once closed */
	gnutls_session_t tls;   /* TLS transports: the session */
	struct mlink *ml;       /* memory: the link, and our side of it */
	int side;
	int eof_in;             /* no more data will come from this end */
	int shut_out;           /* we shut down writing towards this end */
	int want_in, want_out;  /* interest computed by the last pump */
	int bye_queued;         /* TLS close_notify is queued or sent */
	int short_read;         /* the last read got less than asked: the
	                           socket is drained, epoll will say more */
	/* A session that carries streams (relay_stream.c): its framing. */
	unsigned char fh[4];    /* the frame header being read */
	size_t fh_got;
	size_t in_left;         /* bytes of the data frame being read */
	size_t out_left;        /* bytes of the data frame being sent */
	int fin_in;             /* end of stream read: EOF at the next read */
	char *rbuf, *wbuf;      /* TLS socket: received / to-send ciphertext */
	size_t roff, rlen, woff, wlen;
	/* Records sealed and opened in rbuf/wbuf (tls_rec.c) once relaying,
	 * when the session's cipher allows; else GnuTLS's record layer. */
	struct tls_rec *rec;
	int rec_tried;          /* tls_rec_new was asked (rec: its answer) */
	int rec_eof;            /* close_notify read */
	int rec_owed;           /* GnuTLS read a record of ours (a key
	                           update may want one back): the next
	                           write goes through it */
	int gated;              /* GnuTLS reads one record for us: it may
	                           pull gate bytes more, then EAGAIN */
	size_t gate;
};

/* Bytes read from one end, not yet written to the other. */
struct pipe {
	char *buf;              /* from the pool while it holds data */
	size_t off, len;        /* len: bytes in buf, or in kp when spliced */
	uint64_t moved;         /* bytes read into it so far */
	int kp[2];              /* kernel pipe for splice (plain to plain),
	                           -1 when none is held */
};

struct conn {
	struct relay *r;
	struct worker *w;       /* the thread that owns it */
	uint64_t id;
	enum conn_kind kind;
	enum conn_state st;
	struct end app;         /* plain: the app (out) or local service (in) */
	struct end net;         /* the mesh side: TLS, or plain same-node */
	struct pipe up;         /* app -> net */
	struct pipe down;       /* net -> app */
	char src[64], dst[64];
	char peer_addr[INET6_ADDRSTRLEN];  /* in: the mesh peer (same node:
	                                      the app); out: the app */
	int peer_port;
	int app_port;           /* inbound: local port towards the service */
	struct sockdiag_id app_id; /* inbound: our socket towards the service
	                              (src: ours, dst: the service), set with
	                              app_port; what ACCEPT must match */
	struct tls_peer peer;
	int64_t deadline;       /* monotonic ms; 0 = none */
	int closed;
	int colocated;          /* inbound half of a same-node pair, started
	                           on the worker of its outbound half; the
	                           two net ends are an in-memory link */
	struct conn *pair;      /* the other half while both are on this
	                           worker (same node), else NULL */
	int bulky;              /* relay rounds that moved a lot */
	int move_fd[2];         /* app, net while moving between workers
	                           (-1: none, or a memory end) */
	uint32_t move_ev[2];
	int tries;              /* instances dialled so far */
	/* Streams (relay_stream.c). */
	int pooled;             /* between streams (ST_IDLE, ST_POOL): no
	                           connection of its own to observe */
	int no_reuse;           /* outbound: a reused session failed, dial */
	int64_t born_ms;        /* the session's handshake (monotonic) */
	uint64_t tls_gen;       /* tls_gen() then */
	char stream_why[208];   /* the peer's reason for a refused stream */
	char sess_host[64];     /* outbound: the mesh port dialled */
	int sess_port;
	struct conn *snext, *sprev;     /* ST_POOL: in w->spool */
	char tried[RELAY_DIAL_TRIES][128]; /* ... which: out: node (node/id
	                           for a plain local one); in: local id */
	struct conn_obs obs;
	struct conn *prev, *next;
};

struct pending {
	char src[64], dst[64];
	uid_t uid;              /* of the registering control client */
	uint64_t cookie;        /* SO_COOKIE of the app's socket, 0 unknown */
	pid_t pid;              /* of the registering control client */
	char unit[128];         /* its unit or cgroup ("": unknown) */
	int64_t expires;
};

/* A listening socket. The mesh port is shared by every worker (each
 * polls it with EPOLLEXCLUSIVE; whichever wakes accepts). The outbound
 * port is the main thread's: it meets each socket with its CONNECT. */
struct listener {
	struct loop_watch w;    /* outbound: in the main loop */
	struct relay *r;
	int fd;
	int mesh;               /* 1 mesh port, 0 outbound */
	const char *cc;         /* its accepted sockets' congestion control
	                           ("": the system's) */
	struct emfile eg;       /* outbound: out of fds on accept */
};

/* A worker's watch on a listening socket. */
struct acceptor {
	struct loop_watch w;
	struct worker *wk;
	int mesh;               /* 1: inbound mTLS, 0: outbound (app side) */
	int lfd;                /* the listening socket (w.fd is -1 while
	                           paused) */
	const char *cc;         /* listener.cc */
	struct emfile eg;       /* out of fds on accept */
};

enum { ACC_MESH4, ACC_N };

/* How long a socket on the outbound port waits for its CONNECT: as long
 * as a CONNECT waits for its socket (CTL_PENDING_TTL_MS). The shim sends
 * it right after connecting (under its control lock, for non-blocking
 * sockets); a loaded machine can still take seconds to schedule it. */
#define RELAY_PARK_MS   CTL_PENDING_TTL_MS

struct parked {
	int fd;
	struct sockaddr_storage ss;
	int64_t expires;
};

/* Work handed to a worker: a connection moving over from another
 * worker (c), an outbound socket (fd) with its registration (pd), or
 * news for one side of an in-memory link (ml). */
struct job {
	struct conn *c;
	struct pending *pd;     /* with fd: its registration */
	int fd;
	struct sockaddr_storage ss;
	struct mlink *ml;       /* or: side of ml has news (relay_mem.c) */
	int side;
};

/* One event loop on its own thread: owns its connections, buffers and
 * pipes. What it reads of helperd's state (catalog, intentions, trust,
 * leaves) it reads from its policy snapshot (relay_policy), never under
 * a lock. */
struct worker {
	struct relay *r;
	int id;                         /* also its policy reader slot */
	const struct policy *pol;       /* a reference; relay_policy */
	uint64_t pol_seen;              /* the cell's generation of pol */
	pthread_t thread;
	struct loop *loop;
	struct loop_watch wake;         /* eventfd: jobs, recheck, stop */
	struct loop_timer tick;         /* deadlines, while it has conns */
	pthread_mutex_t qlock;          /* guards q, recheck, stop */
	struct job *q;
	size_t qn, qcap;
	int recheck;                    /* intentions changed: re-check */
	int leaf_ready;                 /* a leaf arrived: re-dial ST_LEAF */
	char recheck_why[160];
	int stop;
	struct acceptor acc[ACC_N];
	struct conn *conns;
	size_t n_conns;
	struct conn *spool;             /* sessions between streams, newest
	                                   first (relay_stream.c) */
	size_t n_spool;
	char *pool[RELAY_POOL_MAX];
	size_t n_pool;
	int pipes[RELAY_POOL_MAX][2];   /* empty kernel pipes for reuse */
	size_t n_pipes;
	struct obs_worker obs;          /* this worker's counters */
};

/* What the workers share with each other and with helperd's main thread.
 * Main thread only: pending, expiry, parked, park_fifo, leaf_w; under
 * port_mu: inbound_by_port; under leaf_mu: leaf_want. */
struct relay {
	struct relay_env env;
	struct listener mesh4, out4, out6;
	struct worker *workers[RELAY_MAX_WORKERS];
	size_t n_workers, next_worker;
	atomic_size_t n_conns;          /* over all workers */
	atomic_uint_fast64_t next_id;
	struct pending *pending[RELAY_PORTS];
	size_t n_pending;
	/* Registrations in the order they expire (one TTL for all), so the
	 * tick looks only at the head. */
	struct { int port; int64_t expires; } expiry[RELAY_PORTS];
	size_t exp_head, exp_len;
	pthread_mutex_t port_mu;        /* inbound_by_port */
	struct conn *inbound_by_port[RELAY_PORTS];
	/* Outbound sockets that arrived before their CONNECT (the shim
	 * connects first and registers right after): held, not yet placed,
	 * for RELAY_PARK_MS. */
	struct parked *parked[RELAY_PORTS];
	/* Main thread only: proves who owns a socket on the outbound port
	 * (NULL: sock_diag unavailable, the shim's connections are refused)
	 * and that a shim's ACCEPT names our socket. */
	struct sockdiag *sd;
	char loop_cc[16];               /* loopback_congestion, "" = leave */
	char mesh_cc[16];               /* mesh_congestion resolved, ditto */
	struct { int port; int64_t expires; } park_fifo[RELAY_PORTS];
	size_t park_head, park_len, n_parked;
	struct loop_timer exp_timer;    /* the heads of both fifos */
	/* Relaying connections of every worker, for the API (obs_lock). */
	pthread_mutex_t obs_lock;
	struct conn *obs_list;
	size_t obs_n;
	/* Refusals at registration (main thread, relay_obs_refused). */
	struct obs_worker obs_main;
	/* Services whose leaf a waiting connection needs (under leaf_mu),
	 * and the main loop's eventfd that hears about them. */
	pthread_mutex_t leaf_mu;
	char leaf_want[RELAY_LEAF_WANTS][64];
	size_t n_leaf_want;
	struct loop_watch leaf_w;
	/* Buffers workers passed on (relay_io.c), under pool_mu. */
	pthread_mutex_t pool_mu;
	char *shared[RELAY_POOL_MAX];
	size_t n_shared;
};


/* The caller is the creator's loop thread (comments: "main thread"). */
#define relay_assert_loop(r) \
	assert((r)->env.loop == NULL || loop_is_mine((r)->env.loop))

/* relay_accept.c ------------------------------------------------------ */

/* An AF_INET/AF_INET6 address as sock_diag names it (IPv4 as
 * ::ffff:a.b.c.d, port in host order). 0/-1. */
int relay_sa_id(const struct sockaddr_storage *ss, struct in6_addr *a,
    uint16_t *port);
/* relay_sock.c: the address relay_dial(host, port) connects to. 0/-1. */
int relay_resolve_dialled(const char *host, int port,
    struct sockaddr_storage *ss);

/* relay.c: a connection's steps and teardown ------------------------- */

/* Directions of a relay round. */
#define DIR_UP   1      /* app -> net */
#define DIR_DOWN 2      /* net -> app */
#define DIR_BOTH (DIR_UP | DIR_DOWN)

void relay_conn_link(struct worker *w, struct conn *c);
void relay_conn_unlink(struct worker *w, struct conn *c);
/* The one exit of every connection. abortive: reset both sockets (the
 * application sees ECONNRESET rather than a clean end of stream). */
void relay_conn_close(struct conn *c, int abortive, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Pump the directions in dirs, then set what each end waits for. */
void relay_conn_relay(struct conn *c, int dirs);
/* The loop callback of both ends of every connection. */
void relay_conn_event(void *arg, uint32_t events);
/* May src reach dst now (w's policy)? 1, or 0 with why. */
int relay_allows(struct worker *w, const char *src, const char *dst,
    char *why, size_t whylen);
/* Worker w: its current policy snapshot, borrowed until the end of w's
 * loop round (a newer one replaces it; the old reference is dropped in
 * loop_defer). Never NULL-checked by callers: NULL answers "nothing". */
const struct policy *relay_policy(struct worker *w);
/* Inbound: a mesh connection on fd from addr:port. The connection, or
 * NULL (fd closed). */
struct conn *relay_inbound_start(struct worker *w, int fd, const char *addr,
    int port);
/* Outbound: an app socket with its registration (pd, taken over). */
void relay_outbound_start(struct worker *w, int fd,
    const struct sockaddr_storage *ss, struct pending *pd);
/* Try another instance after a failed dial (why). 1 dialling, 0 closed. */
int relay_outbound_retry(struct conn *c, const char *why);
/* Worker: a leaf arrived; dial again every connection of w waiting for
 * one (those whose leaf is still missing wait on, same deadline). */
void relay_leaf_redial(struct worker *w);

/* A new connection of kind on w, listed. NULL: out of memory. */
struct conn *relay_conn_new(struct worker *w, enum conn_kind kind);
/* relay_dial.c: inbound, the dial of a local instance failed (why): try
 * another. 0, or -1 (closed). */
int relay_inbound_retry(struct conn *c, const char *why);
/* What relay_stream.c uses of a connection's steps. */
void relay_end_close(struct worker *w, struct end *e, int abortive);
/* Inbound: c no longer owns its local port towards the service. */
void relay_port_unpublish(struct conn *c);
/* Inbound, authorised: dial a local instance (last: why the previous
 * failed). 0, or -1 (closed). */
int relay_inbound_dial(struct conn *c, const char *last);
/* Outbound: choose an instance and dial it. 0, or -1 (closed). */
int relay_outbound_dial(struct conn *c, const char *last);
/* Inbound, source and destination known: check the intention (denied:
 * logged, counted, closed), then dial a local instance. */
void relay_inbound_admit(struct conn *c);
/* The relay of c starts (both ends are connected, the peer verified). */
void relay_start(struct conn *c);

/* relay_stream.c: streams over a reused session between helperds ------ */

/* The transport of a TLS socket end whose session carries streams, and
 * whether e has it. */
const struct xprt *relay_xprt_stream(void);
int relay_is_stream(const struct end *e);
/* c's handshake agreed on streams: its net end frames them. */
void relay_stream_begin(struct conn *c);
/* Outbound c (peer names and leaf set) to the mesh port host:port: open
 * a stream on a pooled session of its key (ST_OPEN). 1 taken, 0 none. */
int relay_stream_take(struct conn *c, const char *host, int port);
/* Both directions of c's stream ended cleanly: keep its session for the
 * next stream (pooled or idle; c may also be closed). 1 kept, 0 not a
 * stream session (close it as usual). */
int relay_stream_done(struct conn *c);
/* An event on a session in ST_OPEN, ST_IDLE or ST_POOL; its deadline. */
void relay_stream_step(struct conn *c);
void relay_stream_timeout(struct conn *c);
/* Inbound: queue R (the stream's relay starts). 0/-1. */
int relay_stream_ready(struct conn *c);
/* Inbound, before the stream relays: tell the peer why it is refused. */
void relay_stream_refuse(struct conn *c, const char *why);
/* Why c's stream ended: the refusal its peer sent ("refused by N's
 * helperd: ...", into buf), else why. */
const char *relay_stream_why(struct conn *c, const char *why, char *buf,
    size_t len);
/* c is closing: out of its worker's pool. */
void relay_stream_unpool(struct conn *c);

/* relay_leaf.c: the main loop's side of waiting for a leaf ------------- */

/* A worker: have the main loop get a leaf for service (env.ops->leaf:
 * issued there, or asked of a CA server). -1 if too many services are
 * waiting already. Takes leaf_mu only. */
int relay_leaf_want(struct relay *r, const char *service);
/* relay_new/relay_free: the main loop's eventfd for relay_leaf_want. */
int relay_leaf_init(struct relay *r);
void relay_leaf_fini(struct relay *r);

/* relay_accept.c, main loop: arm the expiry timer (exp_timer) for when,
 * if it is not due sooner; relay_expire is its callback (parked sockets
 * and registrations past their time). */
void relay_expire_arm(struct relay *r, int64_t when);
void relay_expire(void *arg);

/* relay_worker.c: threads and moving between them ---------------------- */

/* Queue j for w. -1 when w is stopping (or out of memory). */
int relay_worker_post(struct worker *w, const struct job *j);
/* Take over a connection detached by another worker (or by this one). */
void relay_worker_adopt(struct worker *w, struct conn *c);
/* Detach c from its worker and hand it to the next one after this round. */
void relay_conn_move(struct conn *c);

/* relay_sock.c: sockets ------------------------------------------------ */

/* TCP_NODELAY, and loopback_congestion on a socket whose peer is
 * loopback, mesh_congestion on any other, unless the socket has it
 * already (has: from its listener, "" for the system's). */
void relay_sock_tune(const struct relay *r, int fd,
    const struct sockaddr_storage *peer, const char *has);
/* Set the congestion control for the sockets a listener accepts: the
 * mesh port's (mesh: 1; loopback_congestion if it is bound to a loopback
 * address) or the outbound port's (loopback). Returns it ("": the
 * system's). */
const char *relay_sock_listen_cc(const struct relay *r, int fd, int mesh);
/* r->loop_cc and r->mesh_cc from loopback_congestion and mesh_congestion
 * ("auto" resolved): "" when it is the system's default already or the
 * kernel refuses it (logged). */
void relay_sock_cc_init(struct relay *r, const char *loop_cc,
    const char *mesh_cc);
void relay_addr_string(const struct sockaddr_storage *ss, char *buf,
    size_t len, int *port);
int relay_is_loopback(const struct sockaddr_storage *ss);
/* Start a non-blocking connect to host:port. fd, or -1 with why. */
int relay_dial(const struct relay *r, const char *host, int port, char *why,
    size_t whylen);
/* A listening TCP socket on host:port (0: any); the port in *bound. fd or
 * -1 with err. */
int relay_listen_socket(const char *host, int port, int *bound, char *err,
    size_t errlen);
/* Reset a socket (the peer sees ECONNRESET) and close it. */
void relay_reset_fd(int fd);

/* relay_obs.c: counters, the access log, the connections list ------- */

int64_t relay_obs_now_us(void);
/* c was created (conn_new) / starts dialling / starts its handshake. */
void relay_obs_new(struct conn *c);
void relay_obs_dial(struct conn *c);
void relay_obs_handshake(struct conn *c);
/* The handshake succeeded (resumed or full). */
void relay_obs_handshake_done(struct conn *c);
/* An intention check of c's pair: allowed or not; a denial marks c (why:
 * which intention) and, for a same-node pair, its outbound half. */
void relay_obs_check(struct conn *c, int ok, const char *why);
/* The relay of c starts: counted as opened, listed for the API. */
void relay_obs_open(struct conn *c);
/* After a relay round: bytes moved since, first byte. */
void relay_obs_round(struct conn *c);
/* c is closing (reason): counted, unlisted, access-logged. Before its
 * sockets and TLS state go. */
void relay_obs_close(struct conn *c, int abortive, const char *reason);
/* Has the API asked to close c? (worker tick) */
int relay_obs_killed(struct conn *c);
void relay_obs_init(struct relay *r);
void relay_obs_fini(struct relay *r);

/* relay_io.c ------------------------------------------------------------ */

/* A RELAY_BUF buffer from the pool (or malloc), back to the pool. */
char *relay_buf_get(struct worker *w);
void relay_buf_put(struct worker *w, char *b);
/* relay_free: the shared pool (after the workers have stopped). */
void relay_pool_fini(struct relay *r);
/* An empty kernel pipe from the pool (or a new one). 0/-1. */
int relay_kpipe_get(struct worker *w, int kp[2]);
/* Give a kernel pipe back: pooled when empty, closed otherwise. */
void relay_kpipe_put(struct worker *w, int kp[2], int empty);

/* What a pump did. */
enum relay_pump {
	PUMP_OK = 0,    /* moved what it could; want_in / want_out of the
	                   ends say what each waits for */
	PUMP_RESET,     /* the connection must be reset (*why says why) */
};
/* Move bytes from one end to the other until something would block,
 * through the ends' transports: a kernel pipe when both can splice,
 * else through p's pooled buffer. Sets the ends' want_in/want_out. */
enum relay_pump relay_pump(struct worker *w, struct end *from,
    struct end *to, struct pipe *p, const char **why);

/* relay_xprt.c: the transports ----------------------------------------- */

/* Room a TLS end needs to hand over one more full record. */
#define TLS_RECORD_ROOM (TLS_RECORD_MAX + 256)

/* The TLS record layer both TLS transports share (relay_xprt.c), for
 * the one over memory (relay_xprt_mem.c). fill(): more ciphertext into
 * e->rbuf (its byte count, 0 at the end, -1 with errno); flush(): wbuf
 * out to the carrier; fin(): the carrier's own end of stream. */
enum xio relay_tls_handshake(struct worker *w, struct end *e,
    const char **err);
ssize_t relay_tls_pull_buffered(struct end *e, void *data, size_t len,
    ssize_t (*fill)(struct end *e));
ssize_t relay_tls_push(gnutls_transport_ptr_t ptr, const void *data,
    size_t len);
enum xio relay_tls_read_records(struct end *e, struct pipe *p,
    int (*queued)(struct end *e), ssize_t (*fill)(struct end *e));
enum xio relay_tls_write_records(struct worker *w, struct end *e,
    struct pipe *p, enum xio (*flush)(struct worker *w, struct end *e));
enum xio relay_tls_shutdown_records(struct worker *w, struct end *e,
    enum xio (*flush)(struct worker *w, struct end *e),
    void (*fin)(struct end *e));
/* Up to want bytes of e's plaintext into buf (room bytes are free
 * there): XIO_OK with *got > 0, XIO_AGAIN, XIO_EOF (close_notify) or
 * XIO_ERR. For reads in pieces (relay_stream.c). */
enum xio relay_tls_recv(struct end *e, void *buf, size_t want, size_t room,
    size_t *got, ssize_t (*fill)(struct end *e));
int relay_tls_pending(const struct end *e);
/* A TLS operation that would block says which way (want_in). */
void relay_tls_direction(struct end *e);
/* Release an end's TLS session and buffers, whatever carries it. */
void relay_end_release(struct worker *w, struct end *e);

/* TLS over a socket, for the stream transport (relay_stream.c): the
 * transport, its record writer (all of p, then flushed) and its flush. */
const struct xprt *relay_xprt_tls(void);
enum xio relay_tls_write(struct worker *w, struct end *e, struct pipe *p);
enum xio relay_tls_flush(struct worker *w, struct end *e);
/* relay_tls_recv from e's socket. */
enum xio relay_tls_sock_recv(struct end *e, void *buf, size_t want,
    size_t room, size_t *got);

/* Open e as a plain socket end of c on fd, waiting for ev. 0, or -1
 * with errno (fd left open). */
int relay_end_sock(struct conn *c, struct end *e, int fd, uint32_t ev);
/* Make the plain socket end e a TLS end (server or client for
 * e->c->peer). 0/-1 (e stays plain). */
int relay_end_tls(struct end *e, int server);
/* Open e as side of ml, a TLS end (server or client for e->c->peer)
 * waiting for ev. 0/-1 (e not opened). */
int relay_end_mem_tls(struct conn *c, struct end *e, struct mlink *ml,
    int side, int server, uint32_t ev);

/* relay_mem.c: an in-memory link between two ends of this process ----- */

/* The two TLS ends of a same-node pair talk through one: a bounded
 * buffer per direction (chunks from the pool, none held while empty),
 * flow control by room, and each side told when the other wrote, read,
 * shut down or closed: on its own worker after the current callback, on
 * another worker through its queue. Either side may move between
 * workers. */

/* A new link, with one reference (the caller's). NULL: no memory. */
struct mlink *relay_mem_new(void);
/* Drop a reference; the last frees the link. */
void relay_mem_unref(struct worker *w, struct mlink *ml);
/* e (of a connection on w) becomes side of ml (a reference). */
void relay_mem_attach(struct mlink *ml, int side, struct end *e,
    struct worker *w);
/* e's worker: w, or NULL while e moves between workers. */
void relay_mem_owner(struct end *e, struct worker *w);
/* Write to the other side: bytes taken, or -1 with errno (EAGAIN: full,
 * EPIPE: the other side is gone). */
ssize_t relay_mem_push(struct end *e, const void *data, size_t len);
/* Read what the other side wrote: bytes, 0 at its end (shut down or
 * closed), or -1 with errno (EAGAIN: nothing yet, ECONNRESET: reset). */
ssize_t relay_mem_pull(struct end *e, void *data, size_t len);
/* The same without copies, once relaying: give hands len bytes of *buf
 * (a RELAY_BUF buffer, from off) to the other side: 0 (*buf NULL when
 * taken over, else copied and still the caller's) or -1 with errno
 * (EAGAIN: no room, EPIPE). take takes the first buffer the other side
 * wrote: its byte count (at *buf + *off; the buffer is the caller's),
 * or as relay_mem_pull. */
int relay_mem_give(struct end *e, char **buf, size_t off, size_t len);
ssize_t relay_mem_take(struct end *e, char **buf, size_t *off);
/* Bytes waiting to be read by e. */
size_t relay_mem_avail(const struct end *e);
/* Would a pull by e say something (bytes, end of stream, an error)? */
int relay_mem_readable(const struct end *e);
/* e writes no more (after its last bytes, the other side reads 0). */
void relay_mem_shut(struct end *e);
/* Wake e's connection (relay_conn_event) when it can read (in) or write
 * (out); always when the other side closes. */
void relay_mem_wait(struct end *e, int in, int out);
/* e is closed (abortive: the other side's reads fail). */
void relay_mem_close(struct worker *w, struct end *e, int abortive);
/* Worker: news for side of ml came through the queue (job). */
void relay_mem_job(struct worker *w, struct mlink *ml, int side);
/* A stopping worker drops such a job. */
void relay_mem_job_drop(struct worker *w, struct mlink *ml, int side);

#endif
