/* http_srv: the HTTP API's listeners (libmicrohttpd, driven by helperd's
 * event loop): TCP on http_addr and a unix socket whose callers' uid
 * (SO_PEERCRED) is their credential. Each connection knows its client
 * (a uid when the kernel can name it, else an IP address), which bounds
 * how many connections one client holds; a request's headers must
 * arrive within HTTP_HEADER_MS; a body over HTTP_BODY_MAX is answered
 * 413 (one over HTTP_DRAIN_MAX before it is read, then a close); a
 * control byte in the path is 400. The requests themselves (parsing,
 * answers, holds) are http_req.c's; this file drives libmicrohttpd. */
#include "helperd/api/http_req.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/api/http_block.h"
#include "helperd/evloop/loop.h"
#include "helperd/evloop/sockdiag.h"

static void http_mhd_arm(struct http_server *s);

/* ---- connections ---------------------------------------------------------- */

static void
conn_identify(struct http_server *s, struct http_conn *c,
    const struct sockaddr *peer, int is_unix)
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	char ip[INET6_ADDRSTRLEN] = "?";

	if (is_unix) {
		struct ucred cr;
		socklen_t l = sizeof(cr);

		c->local = c->on_unix = 1;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0)
			c->uid = cr.uid;
		snprintf(c->client, sizeof(c->client), "uid %ld",
		    (long)c->uid);
		return;
	}
	if (peer != NULL && peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)peer;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		c->local = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (peer != NULL && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)peer;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		c->local = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
		    a->sin6_addr.s6_addr[12] == 127);
	}
	snprintf(c->client, sizeof(c->client), "ip %s", ip);
	/* On loopback every user shares 127.0.0.1: ask the kernel whose
	 * socket the peer is, so that one uid cannot use up the limit. */
	if (c->local && s->sd != NULL && getsockname(c->fd,
	    (struct sockaddr *)&me, &ml) == 0) {
		struct sockdiag_id id = { .cookie = SOCKDIAG_NOCOOKIE };
		struct sockdiag_info info;
		char mine[INET6_ADDRSTRLEN] = "";

		if (me.ss_family == AF_INET) {
			const struct sockaddr_in *m = (const void *)&me;

			inet_ntop(AF_INET, &m->sin_addr, mine, sizeof(mine));
			id.dport = ntohs(m->sin_port);
			id.sport = ntohs(((const struct sockaddr_in *)
			    (const void *)peer)->sin_port);
		} else {
			const struct sockaddr_in6 *m = (const void *)&me;

			inet_ntop(AF_INET6, &m->sin6_addr, mine, sizeof(mine));
			id.dport = ntohs(m->sin6_port);
			id.sport = ntohs(((const struct sockaddr_in6 *)
			    (const void *)peer)->sin6_port);
		}
		if (sockdiag_parse_addr(ip, &id.src) == 0 &&
		    sockdiag_parse_addr(mine, &id.dst) == 0 &&
		    sockdiag_query(s->sd, &id, &info) == 0) {
			c->uid = info.uid;
			snprintf(c->client, sizeof(c->client), "uid %ld",
			    (long)info.uid);
		}
	}
}

static void
conn_refuse_log(struct http_server *s, const struct http_conn *c)
{
	int64_t now = util_now_ms_mono();

	s->refused++;
	if (now < s->refuse_log_at)
		return;
	log_warn("http: %s holds %ld connections (limits."
	    "http_max_conns_per_client): refused %lu connection(s)",
	    c->client, s->max_per_client, s->refused);
	s->refused = 0;
	s->refuse_log_at = now + 1000;
}

static void
on_connection(void *cls, struct MHD_Connection *mc, void **sctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_listener *l = cls;
	struct http_server *s = l->s;
	struct http_conn *c = *sctx;
	const union MHD_ConnectionInfo *ci;
	long same = 0;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (c == NULL)
			return;
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		free(c);
		*sctx = NULL;
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (ci = MHD_get_connection_info(mc,
	    MHD_CONNECTION_INFO_CONNECTION_FD)) == NULL) {
		free(c);
		return;                 /* no context: refused at request */
	}
	c->fd = ci->connect_fd;
	c->uid = ACL_NOUID;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	conn_identify(s, c, ci != NULL ? ci->client_addr : NULL, l->is_unix);
	c->deadline = util_now_ms_mono() + HTTP_HEADER_MS;
	http_req_arm_at(s, c->deadline + 1);
	for (const struct http_conn *o = s->conns; o != NULL; o = o->next)
		if (!o->refused && strcmp(o->client, c->client) == 0)
			same++;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	*sctx = c;
	if (same >= s->max_per_client) {
		/* MHD sees the end of the stream and closes it. */
		c->refused = 1;
		c->deadline = 0;
		shutdown(c->fd, SHUT_RDWR);
		conn_refuse_log(s, c);
	}
}


static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_listener *l = cls;
	struct http_ctx *ctx = *con_cls;
	struct http_conn *c = http_req_conn_of(mc);

	(void)toe;
	/* Idle between requests: the next headers are due in time too. */
	if (c != NULL && !c->refused) {
		c->deadline = util_now_ms_mono() + HTTP_HEADER_MS;
		http_req_arm_at(l->s, c->deadline + 1);
	}
	if (ctx != NULL) {
		http_req_done(l->s, ctx);
		*con_cls = NULL;
	}
}

/* ---- listeners ------------------------------------------------------------ */


static void
on_event(void *arg, uint32_t events)
{
	struct http_listener *l = arg;

	(void)events;
	MHD_run(l->d);
	http_mhd_arm(l->s);
}

/* MHD's own timeouts (connection_timeout): it wants MHD_run by then. */
static void
http_mhd_arm(struct http_server *s)
{
	struct MHD_Daemon *d[2] = { s->tcp.d, s->unx.d };
	int64_t now = util_now_ms_mono();

	for (int i = 0; i < 2; i++) {
		MHD_UNSIGNED_LONG_LONG t;

		if (d[i] != NULL && MHD_get_timeout(d[i], &t) == MHD_YES)
			http_req_arm_at(s, now + (t > 3600000 ? 3600000 :
			    (int64_t)t));
	}
}

/* The server's timer: held queries and monitors looked at again,
 * headers that did not come in time, MHD's timeouts; then armed for the
 * earliest of what is left (nothing left: not armed). */
static void
http_due(void *arg)
{
	struct http_server *s = arg;
	int64_t now = util_now_ms_mono(), next = 0;
	int polling;

	http_req_resume_held(s);
	polling = http_monitor_tick() > 0;
	for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
		if (c->deadline != 0 && now > c->deadline) {
			log_debug("http: %s: no request within %d ms: closed",
			    c->client, HTTP_HEADER_MS);
			c->deadline = 0;
			shutdown(c->fd, SHUT_RDWR);
		} else if (c->deadline != 0 && (next == 0 ||
		    c->deadline + 1 < next)) {
			next = c->deadline + 1;
		}
	}
	if (s->tcp.d != NULL)
		MHD_run(s->tcp.d);
	if (s->unx.d != NULL)
		MHD_run(s->unx.d);
	/* MHD_run took the resumed ones back: those still waiting are held
	 * again. */
	if (s->held != NULL || polling)
		next = next == 0 || now + HTTP_POLL_MS < next ?
		    now + HTTP_POLL_MS : next;
	if (next != 0)
		http_req_arm_at(s, next);
	http_mhd_arm(s);
}

static int
listener_start(struct http_server *s, struct http_listener *l,
    unsigned flags, uint16_t port, const struct sockaddr *sa, int lfd,
    char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info;

	l->s = s;
	l->d = MHD_start_daemon(flags, port, NULL, NULL, http_req_on_request, l,
	    sa != NULL ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_LISTEN_SOCKET,
	    sa != NULL ? (intptr_t)sa : (intptr_t)lfd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
	    MHD_OPTION_URI_LOG_CALLBACK, http_req_on_uri, l,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
	    MHD_OPTION_END);
	if (l->d == NULL) {
		snprintf(err, errlen, "libmicrohttpd refused to start");
		return -1;
	}
	info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || loop_add(s->env.loop, &l->w, info->epoll_fd,
	    EPOLLIN, on_event, l) != 0) {
		snprintf(err, errlen, "http: cannot watch the epoll fd");
		MHD_stop_daemon(l->d);
		l->d = NULL;
		return -1;
	}
	l->on_loop = 1;
	return 0;
}

/* The unix socket: a stale socket file is replaced, anything else at the
 * path is an error. Mode 0666: the uid, not the mode, is the check. */
static int
unix_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "http_socket: path too long: %s", path);
		return -1;
	}
	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	util_strlcpy(dir, path, sizeof(dir));
	if (strrchr(dir, '/') != NULL && strrchr(dir, '/') != dir) {
		*strrchr(dir, '/') = '\0';
		if (util_mkdirs(dir, 0755) != 0) {
			snprintf(err, errlen, "http_socket: %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "http_socket: %s exists and is "
			    "not a socket", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, 128) != 0) {
		snprintf(err, errlen, "http_socket: %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
http_start(struct http_server **out, const struct api_env *e,
    const char *addr, const char *sockpath, long max_per_client,
    char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	const union MHD_DaemonInfo *info;
	struct http_server *s;
	char host[CONF_ADDR_MAX], why[256];
	int port, lfd;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO |
	    MHD_ALLOW_SUSPEND_RESUME;

	if (util_split_hostport(addr, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "http_addr: expected host:port, got %s",
		    addr);
		return -1;
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr)
	    == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "http_addr: %s is not an IP address",
		    host);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	s->env = *e;
	loop_timer_init(&s->timer, http_due, s);
	if ((s->blk = http_block_new()) == NULL) {
		free(s);
		snprintf(err, errlen, "http: out of memory");
		return -1;
	}
	s->max_per_client = max_per_client > 0 ? max_per_client : 200;
	if (sockdiag_open(&s->sd) != 0) {
		log_warn("http: sock_diag unavailable (%s): loopback clients "
		    "share one connection limit", strerror(errno));
		s->sd = NULL;
	}
	if (listener_start(s, &s->tcp, flags, (uint16_t)port,
	    (struct sockaddr *)&ss, -1, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "cannot listen on http_addr %s (in use?)",
		    addr);
		goto err;
	}
	info = MHD_get_daemon_info(s->tcp.d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%u" :
	    "%s:%u", host, info != NULL ? (unsigned)info->port :
	    (unsigned)port);
	if (sockpath[0] != '\0') {
		if ((lfd = unix_listen(sockpath, err, errlen)) < 0)
			goto err;
		s->unx.is_unix = 1;
		if (listener_start(s, &s->unx, MHD_USE_EPOLL |
		    MHD_ALLOW_SUSPEND_RESUME, 0, NULL, lfd,
		    err, errlen) != 0) {
			close(lfd);
			unlink(sockpath);
			goto err;
		}
		util_strlcpy(s->sockpath, sockpath, sizeof(s->sockpath));
	}
	*out = s;
	return 0;
err:
	http_stop(s);
	return -1;
}

static void
listener_stop(struct http_server *s, struct http_listener *l)
{
	if (l->on_loop)
		loop_del(s->env.loop, &l->w);
	if (l->d != NULL)
		MHD_stop_daemon(l->d);
	l->d = NULL;
	l->on_loop = 0;
}

void
http_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	/* MHD stops only with no connection suspended. */
	s->stopping = 1;
	http_req_resume_held(s);
	while (s->laters != NULL) {     /* their answer will not come */
		struct http_resp r = { 0 };

		http_reply_text(&r, 503, "helperd is stopping: the outcome is "
		    "not known");
		http_later_answer(s->laters->later, &r);
	}
	http_monitor_stop_all();
	if (s->tcp.d != NULL)
		MHD_run(s->tcp.d);
	if (s->unx.d != NULL)
		MHD_run(s->unx.d);
	listener_stop(s, &s->tcp);
	listener_stop(s, &s->unx);
	loop_timer_del(s->env.loop, &s->timer);
	if (s->sockpath[0] != '\0')
		unlink(s->sockpath);
	sockdiag_close(s->sd);
	http_block_free(s->blk);
	free(s);
}

struct metrics *
http_server_metrics(struct http_server *s)
{
	return s != NULL ? http_agent_metrics(&s->env) : NULL;
}
