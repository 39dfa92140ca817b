#include "helperd/local/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/model/catalog.h"
#include "helperd/local/direct.h"
#include "helperd/evloop/emfile.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/owner.h"
#include "helperd/relay/relay.h"

#define CTL_MAX_CLIENTS 4096

struct ctl_client {
	struct ctl_server *s;
	struct loop_watch w;
	uid_t uid;
	pid_t pid;
	char service[64];          /* "" until HELLO */
	char unit[128];            /* pid's unit or cgroup (ctl_unit) */
	int unit_read;
	char in[CTL_LINE_MAX];
	size_t in_len;
	char *out;                 /* pending reply bytes */
	size_t out_off, out_len;
	int closing;
	struct ctl_client *prev, *next;
};

struct ctl_server {
	struct ctl_env env;        /* set at ctl_start */
	struct loop_watch w;
	int fd;                    /* listening (w.fd is -1 while paused) */
	struct emfile eg;          /* out of fds on accept */
	char path[108];
	struct ctl_client *clients;
	size_t n_clients;
};

static void client_free(void *arg)
{
	struct ctl_client *c = arg;

	free(c->out);
	free(c);
}

static void
client_close(struct ctl_client *c)
{
	struct ctl_server *s = c->s;

	if (c->closing)
		return;
	c->closing = 1;
	if (c->w.fd >= 0) {
		int fd = c->w.fd;
		loop_del(s->env.loop, &c->w);
		close(fd);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->n_clients--;
	loop_defer(s->env.loop, client_free, c);
}

static void
client_flush(struct ctl_client *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->w.fd, c->out + c->out_off, c->out_len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			loop_mod(c->s->env.loop, &c->w, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->out_off += (size_t)n;
		c->out_len -= (size_t)n;
	}
	c->out_off = 0;
	loop_mod(c->s->env.loop, &c->w, EPOLLIN);
}

static void reply(struct ctl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
reply(struct ctl_client *c, const char *fmt, ...)
{
	char line[CTL_REPLY_MAX];
	va_list ap;
	int n;
	char *nb;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		n = snprintf(line, sizeof(line), "ERR E2BIG reply too long");
	line[n++] = '\n';
	nb = realloc(c->out, c->out_off + c->out_len + (size_t)n);
	if (nb == NULL) {
		client_close(c);
		return;
	}
	c->out = nb;
	memcpy(c->out + c->out_off + c->out_len, line, (size_t)n);
	c->out_len += (size_t)n;
}

/* Append " up=dest,addr,port" for every upstream of svc. */
static void
hello_ok(struct ctl_client *c, const struct conf_service *svc)
{
	const struct ctl_env *e = &c->s->env;
	char line[CTL_REPLY_MAX];
	size_t off;

	off = (size_t)snprintf(line, sizeof(line), "OK port=%d dns=%s%s",
	    e->outbound_port, e->conf->dns_domain,
	    direct_on(e->direct) ? " direct=1" : "");
	if (svc != NULL)
		off += (size_t)snprintf(line + off, sizeof(line) - off,
		    " inbound=%s svc_port=%d",
		    svc->inbound == CONF_INBOUND_STRICT ? "strict" :
		    "permissive", svc->port);
	if (e->relay != NULL && relay_loopback_cc(e->relay)[0] != '\0')
		off += (size_t)snprintf(line + off, sizeof(line) - off,
		    " cc=%s", relay_loopback_cc(e->relay));
	for (size_t i = 0; svc != NULL && i < svc->n_upstreams; i++) {
		int n = snprintf(line + off, sizeof(line) - off,
		    " up=%s,%s,%d", svc->upstreams[i].dest,
		    svc->upstreams[i].bind_addr, svc->upstreams[i].bind_port);
		if (n < 0 || (size_t)n >= sizeof(line) - off)
			break;
		off += (size_t)n;
	}
	reply(c, "%s", line);
}

/* HELLO <service> [<acl-token>] */
static void
do_hello(struct ctl_client *c, char *args)
{
	const struct ctl_env *e = &c->s->env;
	const char *arg = strtok_r(NULL, " ", &args);
	const char *token = arg != NULL ? strtok_r(NULL, " ", &args) : NULL;
	const struct conf_service *svc;
	char why[256];

	if (arg == NULL || !conf_valid_name(arg)) {
		reply(c, "ERR EINVAL invalid service name");
		return;
	}
	svc = catalog_local(e->catalog, arg);
	if (acl_claim(e->acl, c->uid, token, arg, svc, catalog_remote_user(
	    e->catalog, arg), why, sizeof(why)) != 0) {
		log_warn("control: pid %ld: %s", (long)c->pid, why);
		reply(c, "ERR EACCES %s", why);
		return;
	}
	util_strlcpy(c->service, arg, sizeof(c->service));
	log_debug("control: pid %ld uid %ld is %s", (long)c->pid,
	    (long)c->uid, arg);
	hello_ok(c, svc);
}

/* The client's systemd unit (else cgroup), read from /proc once per
 * control connection, on its first CONNECT: a process's connections
 * share it, and the relay workers never read /proc. (The shim opens a
 * control connection per process, a forked child its own.) */
static const char *
ctl_unit(struct ctl_client *c)
{
	if (!c->unit_read) {
		owner_unit_or_cgroup(c->pid, c->unit, sizeof(c->unit));
		c->unit_read = 1;
	}
	return c->unit;
}

/* A refused CONNECT still registers the port, with no destination: a
 * non-blocking app socket that goes on to connect is reset quietly (the
 * refusal was logged already). */
static void
refuse_later(struct ctl_client *c, int port, uint64_t cookie)
{
	relay_pending_add(c->s->env.relay, port, c->service, "", c->uid,
	    cookie, c->pid, "");
}

/* A socket cookie (SO_COOKIE): decimal, 1..2^64-1. 0/-1. */
static int
parse_cookie(const char *s, uint64_t *out)
{
	unsigned long long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == 0)
		return -1;
	*out = v;
	return 0;
}

/* One line per destination and second at most, with how many refusals
 * it stands for: a busy client must not flood the log. */
static void
refused_log(const char *src, const char *dst, size_t n, const char *output)
{
	static char last_dst[CONF_NAME_MAX];
	static int64_t last_ms;
	static unsigned long suppressed;
	int64_t now = util_now_ms_mono();

	if (strcmp(last_dst, dst) == 0 && now - last_ms < 1000) {
		suppressed++;
		return;
	}
	log_warn("%s => %s: no healthy instance of %s: all %zu instance(s) "
	    "failing their checks (%s)%s%.0lu%s", src, dst, dst, n, output,
	    suppressed > 0 ? "; " : "", suppressed,
	    suppressed > 0 ? " more refused in the last second" : "");
	util_strlcpy(last_dst, dst, sizeof(last_dst));
	last_ms = now;
	suppressed = 0;
}

static void
do_connect(struct ctl_client *c, char *args)
{
	const struct ctl_env *e = &c->s->env;
	struct catalog_instance in[1];
	const struct intent *m = NULL;
	char *dst = strtok_r(args, " ", &args);
	char *port_s = strtok_r(NULL, " ", &args);
	char *cookie_s = strtok_r(NULL, " ", &args);
	uint64_t cookie = 0;
	long port;

	if (c->service[0] == '\0') {
		reply(c, "ERR EPROTO HELLO first");
		return;
	}
	if (dst == NULL || !conf_valid_name(dst) || port_s == NULL ||
	    util_parse_long(port_s, 1, 65535, &port) != 0 ||
	    (cookie_s != NULL && parse_cookie(cookie_s, &cookie) != 0) ||
	    strtok_r(NULL, " ", &args) != NULL) {
		reply(c, "ERR EINVAL usage: CONNECT <service> <local-port> "
		    "[<socket-cookie>]");
		return;
	}
	if (catalog_instances(e->catalog, dst, in, 1) == 0) {
		/* None registered, or none passing its health checks. */
		struct catalog_instance all[64];
		size_t n = catalog_instances_all(e->catalog, dst, all,
		    UTIL_ARRAY_LEN(all));

		refuse_later(c, (int)port, cookie);
		if (n == 0) {
			log_warn("%s => %s: no instance of %s", c->service,
			    dst, dst);
			reply(c, "ERR EHOSTUNREACH no instance of %s", dst);
			return;
		}
		/* Every instance is failing its checks: refused, not
		 * dialled (README, Health checks: why no panic mode). */
		(*e->refused_all_critical)++;
		refused_log(c->service, dst, n, all[0].output);
		reply(c, "ERR EHOSTUNREACH no healthy instance of %s: all %zu "
		    "instance(s) failing their checks (%.120s)", dst, n,
		    all[0].output);
		return;
	}
	/* The source side fails fast on its cached intentions; the
	 * destination's helperd checks again and stays the authority. */
	if (!intent_check(e->intents, c->service, dst, e->conf->default_allow,
	    &m)) {
		char why[256];

		if (m != NULL)
			snprintf(why, sizeof(why), "denied by intention %s "
			    "(%s => %s, deny)", m->id, m->src, m->dst);
		else
			snprintf(why, sizeof(why), "denied by "
			    "default_intention = deny");
		log_warn("denied %s (pid %ld uid %ld) => %s: %s", c->service,
		    (long)c->pid, (long)c->uid, dst, why);
		relay_obs_refused(e->relay, c->service, dst, c->pid, c->uid,
		    ctl_unit(c), why);
		refuse_later(c, (int)port, cookie);
		reply(c, "ERR ECONNREFUSED %s => %s denied by %s", c->service,
		    dst, m != NULL ? "intention" : "default_intention");
		return;
	}
	if (relay_pending_add(e->relay, (int)port, c->service, dst,
	    c->uid, cookie, c->pid, ctl_unit(c)) != 0) {
		reply(c, "ERR ENOMEM cannot register");
		return;
	}
	reply(c, "OK");
}

/* DIRECT <destination>: may this connection go straight to a local
 * instance (direct.h)? Asked before the app's socket connects. */
static void
do_direct(struct ctl_client *c, char *args)
{
	const struct ctl_env *e = &c->s->env;
	char *dst = strtok_r(args, " ", &args);
	char addr[64];
	int port;

	if (c->service[0] == '\0') {
		reply(c, "ERR EPROTO HELLO first");
		return;
	}
	if (dst == NULL || !conf_valid_name(dst) ||
	    strtok_r(NULL, " ", &args) != NULL) {
		reply(c, "ERR EINVAL usage: DIRECT <service>");
		return;
	}
	if (direct_route(e->direct, c->service, dst, addr, sizeof(addr),
	    &port))
		reply(c, "OK direct %s %d", addr, port);
	else
		reply(c, "OK relay");
}

static const char *
errno_name(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case ENOSPC: return "ENOSPC";
	default: return "EPROTO";
	}
}

/* TRACK <destination> <local-addr> <local-port> <service-addr>
 * <service-port>: the app's socket that DIRECT sent to dst. */
static void
do_track(struct ctl_client *c, char *args)
{
	const struct ctl_env *e = &c->s->env;
	struct sockdiag_id id;
	char *f[6], err[256];
	long lport, sport;
	int n = 0, rc;

	if (c->service[0] == '\0') {
		reply(c, "ERR EPROTO HELLO first");
		return;
	}
	while (n < 6 && (f[n] = strtok_r(n == 0 ? args : NULL, " ",
	    &args)) != NULL)
		n++;
	memset(&id, 0, sizeof(id));
	if (n != 5 || !conf_valid_name(f[0]) ||
	    sockdiag_parse_addr(f[1], &id.src) != 0 ||
	    util_parse_long(f[2], 1, 65535, &lport) != 0 ||
	    sockdiag_parse_addr(f[3], &id.dst) != 0 ||
	    util_parse_long(f[4], 1, 65535, &sport) != 0) {
		reply(c, "ERR EINVAL usage: TRACK <service> <local-addr> "
		    "<local-port> <service-addr> <service-port>");
		return;
	}
	id.sport = (uint16_t)lport;
	id.dport = (uint16_t)sport;
	rc = direct_track(e->direct, c->service, c->uid, f[0], &id, err,
	    sizeof(err));
	if (rc == 0)
		reply(c, "OK");
	else
		reply(c, "ERR %s %s", errno_name(rc), err);
}

/* ACCEPT <local-addr> <local-port> <peer-addr> <peer-port> <cookie>:
 * the shim's accepted socket, as it sees it. */
static void
do_accept(struct ctl_client *c, char *args)
{
	struct sockdiag_id id;
	char *f[6], spiffe[256], addr[64];
	long local, peer;
	int sport, n = 0;

	while (n < 6 && (f[n] = strtok_r(n == 0 ? args : NULL, " ",
	    &args)) != NULL)
		n++;
	memset(&id, 0, sizeof(id));
	if (n != 5 || sockdiag_parse_addr(f[0], &id.src) != 0 ||
	    util_parse_long(f[1], 1, 65535, &local) != 0 ||
	    sockdiag_parse_addr(f[2], &id.dst) != 0 ||
	    util_parse_long(f[3], 1, 65535, &peer) != 0 ||
	    parse_cookie(f[4], &id.cookie) != 0) {
		reply(c, "ERR EINVAL usage: ACCEPT <local-addr> <local-port> "
		    "<peer-addr> <peer-port> <socket-cookie>");
		return;
	}
	id.sport = (uint16_t)local;
	id.dport = (uint16_t)peer;
	if (relay_inbound_lookup(c->s->env.relay, &id, spiffe, sizeof(spiffe),
	    addr, sizeof(addr), &sport) == 0)
		reply(c, "OK mesh %s %s %d", spiffe, addr, sport);
	else
		reply(c, "OK direct");
}

static void
handle_line(struct ctl_client *c, char *line)
{
	char *args = NULL;
	char *cmd = strtok_r(line, " ", &args);

	if (cmd == NULL)
		reply(c, "ERR EPROTO empty request");
	else if (strcmp(cmd, "HELLO") == 0)
		do_hello(c, args);
	else if (strcmp(cmd, "CONNECT") == 0)
		do_connect(c, args);
	else if (strcmp(cmd, "ACCEPT") == 0)
		do_accept(c, args);
	else if (strcmp(cmd, "DIRECT") == 0)
		do_direct(c, args);
	else if (strcmp(cmd, "TRACK") == 0)
		do_track(c, args);
	else if (strcmp(cmd, "PING") == 0)
		reply(c, "OK pong");
	else
		reply(c, "ERR EPROTO unknown request %.32s", cmd);
}

static void
client_event(void *arg, uint32_t events)
{
	struct ctl_client *c = arg;
	ssize_t n;

	if (events & EPOLLOUT) {
		client_flush(c);
		if (c->closing)
			return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(c->w.fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
	    MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t used;

		if (nl == NULL)
			break;
		*nl = '\0';
		if (nl > c->in && nl[-1] == '\r')
			nl[-1] = '\0';
		handle_line(c, c->in);
		if (c->closing)
			return;
		used = (size_t)(nl - c->in) + 1;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
	if (c->in_len == sizeof(c->in)) {
		log_warn("control: pid %ld sent a line over %d bytes; closing",
		    (long)c->pid, CTL_LINE_MAX);
		reply(c, "ERR EPROTO line too long");
		client_flush(c);
		client_close(c);
		return;
	}
	client_flush(c);
}

static void
server_event(void *arg, uint32_t events)
{
	struct ctl_server *s = arg;

	(void)events;
	for (int i = 0; i < 64; i++) {
		struct ctl_client *c;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd = accept4(s->fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			(void)emfile_hit(&s->eg, errno);
			return;
		}
		emfile_ok(&s->eg);
		if (s->n_clients >= CTL_MAX_CLIENTS ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			log_warn("control: refusing a client (%zu open)",
			    s->n_clients);
			close(fd);
			continue;
		}
		c->s = s;
		c->uid = cred.uid;
		c->pid = cred.pid;
		if (loop_add(s->env.loop, &c->w, fd, EPOLLIN, client_event,
		    c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = s->clients;
		if (s->clients != NULL)
			s->clients->prev = c;
		s->clients = c;
		s->n_clients++;
	}
}

int
ctl_start(struct ctl_server **out, const struct ctl_env *env,
    const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ctl_server *s;
	char dir[sizeof(sun.sun_path)];
	char *slash;
	int fd;

	if (util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	util_strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (util_mkdirs(dir, 0755) != 0) {
			snprintf(err, errlen, "cannot create %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A socket someone answers on is a running helperd: refuse. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		snprintf(err, errlen, "another helperd is running on %s",
		    path);
		close(fd);
		return -1;
	}
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, 256) != 0) {
		snprintf(err, errlen, "control socket %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return -1;
	}
	s->env = *env;
	s->fd = fd;
	util_strlcpy(s->path, path, sizeof(s->path));
	if (loop_add(s->env.loop, &s->w, fd, EPOLLIN, server_event, s) != 0 ||
	    emfile_init(&s->eg, s->env.loop, &s->w, fd, EPOLLIN, server_event,
	    s, "control socket") != 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		loop_del(s->env.loop, &s->w);
		emfile_fini(&s->eg);
		close(fd);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void
ctl_stop(struct ctl_server *s)
{
	if (s == NULL)
		return;
	while (s->clients != NULL)
		client_close(s->clients);
	loop_del(s->env.loop, &s->w);
	emfile_fini(&s->eg);
	close(s->fd);
	unlink(s->path);
	free(s);
}
