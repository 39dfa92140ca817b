/* cmd_proxy: "meshctl connect proxy": flags, banner, listeners and the
 * event loop. Connections: proxy_relay.c; helperd: proxy_ctl.c. */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"
#include "meshctl/proxy.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t
proxy_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
proxy_ep_set(struct proxy *px, int fd, struct ep_ref *ref, uint32_t *cur,
    uint32_t mask)
{
	struct epoll_event ev = { .events = mask, .data.ptr = ref };

	if (*cur == mask)
		return 0;
	if (mask == ~0u) {
		epoll_ctl(px->epfd, EPOLL_CTL_DEL, fd, NULL);
	} else if (epoll_ctl(px->epfd, *cur == ~0u ? EPOLL_CTL_ADD :
	    EPOLL_CTL_MOD, fd, &ev) != 0) {
		log_err("epoll_ctl: %s", strerror(errno));
		return -1;
	}
	*cur = mask;
	return 0;
}

/* ---- flags ---- */

static const char *p_service, *p_socket, *p_loglevel;
static struct flag_list p_upstreams;

static const struct flag proxy_flags[] = {
	{ "service", FLAG_STRING, &p_service, "<name>",
	    "Name of the service this proxy represents (its mesh identity). "
	    "Defaults to $MESH_SERVICE." },
	{ "upstream", FLAG_LIST, &p_upstreams, "<name:port>",
	    "An upstream to listen for: NAME:PORT listens on 127.0.0.1:PORT, "
	    "NAME:ADDR:PORT on ADDR:PORT; connections to it reach service "
	    "NAME through the mesh. May be given several times." },
	{ "socket", FLAG_STRING, &p_socket, "<path>",
	    "helperd's control socket. Defaults to $MESH_SOCKET, then the "
	    "socket helperd names at -http-addr (ControlSocket of "
	    "/v1/agent/self)." },
	{ "http-addr", FLAG_STRING, &mc_http_addr, "<addr>",
	    "Address of helperd's HTTP API, asked for its control socket "
	    "when neither -socket nor $MESH_SOCKET is given. Also "
	    "$MESH_HTTP_ADDR, $CONSUL_HTTP_ADDR [127.0.0.1:8500]." },
	{ "log-level", FLAG_STRING, &p_loglevel, "<level>",
	    "err, warn, info (default) or debug." },
	{ "token", FLAG_STRING, &mc_token, "<value>",
	    "ACL token with service:write on the name: needed to act as a "
	    "name that no configuration or registration defines (root needs "
	    "none). Also $MESH_HTTP_TOKEN or $CONSUL_HTTP_TOKEN." },
	{ "token-file", FLAG_STRING, &mc_token_file, "<path>",
	    "File holding that token." },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help proxy_help = {
	"connect proxy",
	"connect proxy -service NAME -upstream NAME:PORT [options]",
	"Run a local proxy for a program that cannot be preloaded with "
	"libmeshshim.so (static or Go binaries). For each -upstream it "
	"listens on a local port; every connection there is carried through "
	"helperd to the upstream service, with mutual TLS and intentions "
	"checked, identifying as -service. Stops on SIGINT or SIGTERM.\n\n"
	"$ meshctl connect proxy -service web -upstream socat:9191\n"
	"$ nc 127.0.0.1 9191",
	proxy_flags,
};

/* helperd's control socket, as helperd at the HTTP address names it
 * (Config.ControlSocket of /v1/agent/self), into buf. 0, or -1 after
 * saying why on stderr. */
static int
socket_from_helperd(char *buf, size_t len)
{
	const char *hint = "meshctl connect proxy asks helperd's HTTP API "
	    "for its control socket: set -http-addr or $MESH_HTTP_ADDR to "
	    "helperd's http_addr, or give the socket with -socket or "
	    "$MESH_SOCKET";
	struct api_resp r;
	const char *p;
	char why[160];
	json_t *j;
	int rc = -1;

	if (api_request("GET", "/v1/agent/self", NULL, &r) != 0) {
		fprintf(stderr, "Error: %s\n", hint);
		return -1;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error: helperd at %s answered GET "
		    "/v1/agent/self with: %s\n%s\n", api_addr(),
		    api_errtext(&r), hint);
		api_resp_free(&r);
		return -1;
	}
	if ((j = api_json(&r, "asking helperd for its control socket")) ==
	    NULL) {
		api_resp_free(&r);
		return -1;
	}
	p = json_string_value(json_object_get(json_object_get(j, "Config"),
	    "ControlSocket"));
	if (p == NULL || p[0] == '\0') {
		fprintf(stderr, "Error: helperd at %s does not name its control "
		    "socket (no Config.ControlSocket in /v1/agent/self: a "
		    "helperd older than this meshctl?); give it with -socket "
		    "or $MESH_SOCKET\n", api_addr());
	} else if (util_strlcpy(buf, p, len) >= len) {
		fprintf(stderr, "Error: the control socket helperd at %s names "
		    "is too long (max %zu bytes)\n", api_addr(), len - 1);
	} else if (!api_socket_trusted(buf, why, sizeof(why))) {
		fprintf(stderr, "Error: helperd at %s names %s as its control "
		    "socket, which cannot be used: %s\n", api_addr(), buf,
		    why);
	} else {
		rc = 0;
	}
	json_decref(j);
	api_resp_free(&r);
	return rc;
}

/* NAME:PORT or NAME:ADDR:PORT (ADDR IPv4 or [IPv6]). 0/-1 with why. */
static int
parse_upstream(const char *s, struct proxy_upstream *up, char *why,
    size_t whylen)
{
	const char *c1 = strchr(s, ':'), *cl = strrchr(s, ':');
	char port[16], addr[64];
	long v;

	memset(up, 0, sizeof(*up));
	up->lfd = -1;
	if (c1 == NULL) {
		snprintf(why, whylen, "expected NAME:PORT or NAME:ADDR:PORT");
		return -1;
	}
	if ((size_t)(c1 - s) >= sizeof(up->dest)) {
		snprintf(why, whylen, "service name too long");
		return -1;
	}
	memcpy(up->dest, s, (size_t)(c1 - s));
	up->dest[c1 - s] = '\0';
	if (!mc_valid_name(up->dest, 0)) {
		snprintf(why, whylen, "invalid service name \"%s\": expected "
		    "1 to %d characters of [A-Za-z0-9_-]", up->dest,
		    MC_NAME_MAX);
		return -1;
	}
	if (util_strlcpy(port, cl + 1, sizeof(port)) >= sizeof(port) ||
	    util_parse_long(port, 1, 65535, &v) != 0) {
		snprintf(why, whylen, "invalid port \"%s\": expected 1 to "
		    "65535", cl + 1);
		return -1;
	}
	up->port = (int)v;
	addr[0] = '\0';
	if (cl != c1) {
		size_t n = (size_t)(cl - c1 - 1);
		const char *a = c1 + 1;
		if (n >= 2 && a[0] == '[' && a[n - 1] == ']') {
			a++;
			n -= 2;
		}
		if (n == 0 || n >= sizeof(addr)) {
			snprintf(why, whylen, "invalid address");
			return -1;
		}
		memcpy(addr, a, n);
		addr[n] = '\0';
		util_strlcpy(up->addr, addr, sizeof(up->addr));
	}
	if (addr[0] == '\0' || strchr(addr, ':') == NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&up->sa;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)up->port);
		if (inet_pton(AF_INET, addr[0] ? addr : "127.0.0.1",
		    &s4->sin_addr) != 1) {
			snprintf(why, whylen, "invalid IPv4 address \"%s\"",
			    addr);
			return -1;
		}
		up->salen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&up->sa;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)up->port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
			snprintf(why, whylen, "invalid IPv6 address \"%s\"",
			    addr);
			return -1;
		}
		up->salen = sizeof(*s6);
	}
	return 0;
}

/* Display form "socat => :9191" (Consul's). */
static void
upstream_string(const struct proxy_upstream *up, char *buf, size_t len)
{
	if (strchr(up->addr, ':') != NULL)
		snprintf(buf, len, "%s => [%s]:%d", up->dest, up->addr,
		    up->port);
	else
		snprintf(buf, len, "%s => %s:%d", up->dest, up->addr,
		    up->port);
}

static int
listen_upstream(struct proxy *px, struct proxy_upstream *up)
{
	char desc[160];
	int one = 1;

	upstream_string(up, desc, sizeof(desc));
	up->lfd = socket(up->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (up->lfd < 0 ||
	    setsockopt(up->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 ||
	    bind(up->lfd, (struct sockaddr *)&up->sa, up->salen) != 0 ||
	    listen(up->lfd, 1024) != 0) {
		fprintf(stderr, "Error: cannot listen for upstream %s: %s\n",
		    desc, strerror(errno));
		return -1;
	}
	up->ref = (struct ep_ref){ EP_LISTEN, up };
	{
		struct epoll_event ev = { .events = EPOLLIN,
		    .data.ptr = &up->ref };
		if (epoll_ctl(px->epfd, EPOLL_CTL_ADD, up->lfd, &ev) != 0) {
			fprintf(stderr, "Error: epoll: %s\n", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void
on_accept(struct proxy *px, struct proxy_upstream *up)
{
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(up->lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_err("accept on port %d: %s; pausing "
				    "1 s", up->port, strerror(errno));
				up->paused_until = proxy_now() + 1000;
				epoll_ctl(px->epfd, EPOLL_CTL_DEL, up->lfd,
				    NULL);
			}
			return;
		}
		if (px->nconns >= PROXY_MAX_CONNS) {
			struct linger l = { .l_onoff = 1, .l_linger = 0 };
			log_warn("%s => %s: too many connections (%d), "
			    "refusing one", px->service, up->dest,
			    PROXY_MAX_CONNS);
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			close(fd);
			continue;
		}
		pconn_accept(px, up, fd, &peer);
	}
}

static void
resume_listeners(struct proxy *px, int64_t now)
{
	for (size_t i = 0; i < px->nups; i++) {
		struct proxy_upstream *up = &px->ups[i];
		struct epoll_event ev = { .events = EPOLLIN,
		    .data.ptr = &up->ref };
		if (up->paused_until == 0 || now < up->paused_until)
			continue;
		up->paused_until = 0;
		if (epoll_ctl(px->epfd, EPOLL_CTL_ADD, up->lfd, &ev) != 0)
			log_err("epoll: %s", strerror(errno));
	}
}

static void
on_signal(struct proxy *px)
{
	struct signalfd_siginfo si;

	while (read(px->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		log_info("caught signal %s, shutting down",
		    sigabbrev_np((int)si.ssi_signo) ? sigabbrev_np(
		    (int)si.ssi_signo) : "?");
		px->stop = 1;
	}
}

static void
run_loop(struct proxy *px)
{
	struct epoll_event evs[256];
	int64_t last_tick = proxy_now();

	while (!px->stop) {
		int n = epoll_wait(px->epfd, evs, 256, 250);
		int64_t now;

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			px->exit_code = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct ep_ref *ref = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			switch (ref->kind) {
			case EP_LISTEN:
				on_accept(px, ref->ptr);
				break;
			case EP_CTL:
				proxy_ctl_event(px, e);
				break;
			case EP_CLIENT:
				pconn_event(ref->ptr, 0, e);
				break;
			case EP_UP:
				pconn_event(ref->ptr, 1, e);
				break;
			case EP_SIGNAL:
				on_signal(px);
				break;
			}
		}
		pconn_reap(px);
		now = proxy_now();
		if (px->startup && now >= px->startup_deadline) {
			log_err("helperd at %s did not answer HELLO within "
			    "%d ms; exiting", px->sockpath,
			    PROXY_CTL_TIMEOUT_MS);
			px->exit_code = 1;
			break;
		}
		if (now - last_tick >= 250) {
			last_tick = now;
			pconn_timeouts(px, now);
			resume_listeners(px, now);
			pconn_reap(px);
		}
	}
}

static void
proxy_teardown(struct proxy *px)
{
	while (px->conns != NULL)
		pconn_close(px->conns, NULL, 0);
	pconn_reap(px);
	if (px->ctl.fd >= 0) {
		close(px->ctl.fd);
		px->ctl.fd = -1;
	}
	for (size_t i = 0; i < px->nups; i++)
		if (px->ups[i].lfd >= 0)
			close(px->ups[i].lfd);
	if (px->sigfd >= 0)
		close(px->sigfd);
	if (px->epfd >= 0)
		close(px->epfd);
}

/* The flags that need more than flags_parse: -service (or
 * $MESH_SERVICE), at least one -upstream, -log-level. 0, or 1 (said). */
static int
proxy_check_flags(int *lvl)
{
	if (p_service == NULL || p_service[0] == '\0')
		p_service = getenv("MESH_SERVICE");
	if (p_service == NULL || p_service[0] == '\0')
		return flags_fail(&proxy_help, "Error: -service is required");
	if (!mc_valid_name(p_service, 0)) {
		fprintf(stderr, "Error: invalid -service \"%s\": expected 1 to "
		    "%d characters of [A-Za-z0-9_-]\n", p_service,
		    MC_NAME_MAX);
		return 1;
	}
	if (p_upstreams.n == 0)
		return flags_fail(&proxy_help, "Error: at least one -upstream "
		    "is required (the public listener is helperd's job)");
	if (p_loglevel != NULL && (*lvl = log_level_parse(p_loglevel)) < 0) {
		fprintf(stderr, "Error: invalid -log-level \"%s\": expected "
		    "err, warn, info or debug\n", p_loglevel);
		return 1;
	}
	return 0;
}

/* Where helperd is: -socket, $MESH_SOCKET, else what helperd at the HTTP
 * address says (as every other command finds it). *from names where the
 * path came from (into from_buf if needed). 0, or 1 (said). */
static int
proxy_find_socket(char *sockbuf, size_t socklen, char *from_buf,
    size_t fromlen, const char **from)
{
	*from = "-socket";
	if (p_socket == NULL || p_socket[0] == '\0') {
		p_socket = getenv("MESH_SOCKET");
		*from = "$MESH_SOCKET";
	}
	if (p_socket == NULL || p_socket[0] == '\0') {
		if (socket_from_helperd(sockbuf, socklen) != 0)
			return 1;
		p_socket = sockbuf;
		snprintf(from_buf, fromlen, "helperd at %s", api_addr());
		*from = from_buf;
	}
	if (strlen(p_socket) >= 108) {
		fprintf(stderr, "Error: %s: socket path too long (max 107 "
		    "bytes)\n", *from);
		return 1;
	}
	return 0;
}

/* Every -upstream parsed into px->ups, no two on one address and port. */
static int
proxy_parse_upstreams(struct proxy *px)
{
	for (size_t i = 0; i < p_upstreams.n; i++) {
		char why[160];

		if (parse_upstream(p_upstreams.v[i], &px->ups[i], why,
		    sizeof(why)) != 0) {
			fprintf(stderr, "Error: invalid -upstream \"%s\": %s\n",
			    p_upstreams.v[i], why);
			return -1;
		}
		for (size_t k = 0; k < i; k++) {
			if (px->ups[k].port == px->ups[i].port &&
			    strcmp(px->ups[k].addr, px->ups[i].addr) == 0) {
				fprintf(stderr, "Error: -upstream \"%s\": port "
				    "%d is already used by upstream %s\n",
				    p_upstreams.v[i], px->ups[i].port,
				    px->ups[k].dest);
				return -1;
			}
		}
		px->nups = i + 1;
	}
	return 0;
}

/* The epoll set: the upstreams' listeners and SIGINT/SIGTERM. */
static int
proxy_listen(struct proxy *px)
{
	struct epoll_event ev = { .events = EPOLLIN,
	    .data.ptr = &px->sigref };
	sigset_t set;

	if ((px->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		fprintf(stderr, "Error: epoll: %s\n", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < px->nups; i++)
		if (listen_upstream(px, &px->ups[i]) != 0)
			return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (px->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) <
	    0) {
		fprintf(stderr, "Error: signalfd: %s\n", strerror(errno));
		return -1;
	}
	px->sigref = (struct ep_ref){ EP_SIGNAL, px };
	return epoll_ctl(px->epfd, EPOLL_CTL_ADD, px->sigfd, &ev);
}

/* consul connect proxy's banner. */
static void
proxy_banner(const struct proxy *px)
{
	printf("==> meshshim connect proxy starting...\n");
	printf("    Configuration mode: Flags\n");
	printf("               Service: %s\n", px->service);
	for (size_t i = 0; i < px->nups; i++) {
		char desc[160];

		upstream_string(&px->ups[i], desc, sizeof(desc));
		printf("              Upstream: %s\n", desc);
	}
	printf("       Public listener: Disabled\n\n");
	printf("==> Log data will now stream in as it occurs:\n\n");
	fflush(stdout);
}

static int
connect_proxy(int argc, char **argv)
{
	const char *pos[argc + 1], *sock_from;
	char sockbuf[108], from_buf[160];
	struct proxy *px;
	int npos, rc, lvl = LOG_LVL_INFO;

	if ((rc = flags_parse(&proxy_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&proxy_help, "Unexpected argument \"%s\"",
		    pos[0]);
	if (proxy_check_flags(&lvl) != 0 ||
	    proxy_find_socket(sockbuf, sizeof(sockbuf), from_buf,
	    sizeof(from_buf), &sock_from) != 0)
		return 1;
	if ((px = calloc(1, sizeof(*px))) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return 1;
	}
	px->service = p_service;
	px->sockpath = p_socket;
	px->ctl.fd = px->sigfd = px->epfd = -1;
	rc = 1;
	if (proxy_parse_upstreams(px) != 0)
		goto out;
	log_init("meshctl", 0, (enum log_level)lvl);
	if (proxy_listen(px) != 0)
		goto out;
	proxy_banner(px);

	/* Say HELLO now: helperd must answer it, or we stop with status 1
	 * (a proxy whose every connection would fail is no proxy). Later,
	 * a lost helperd is retried for each new connection. */
	px->startup = 1;
	px->startup_deadline = proxy_now() + PROXY_CTL_TIMEOUT_MS;
	if (proxy_ctl_up(px) != 0) {
		fprintf(stderr, "Error: no control connection to helperd at %s "
		    "(the path came from %s); exiting\n", px->sockpath,
		    sock_from);
		goto out;
	}
	px->exit_code = 0;
	run_loop(px);
	rc = px->exit_code;
out:
	proxy_teardown(px);
	free(px);
	return rc;
}

static const struct subcmd connect_cmds[] = {
	{ "proxy", connect_proxy, "Run a local proxy for a program that "
	    "cannot be preloaded" },
};

int
cmd_connect(int argc, char **argv)
{
	return mc_dispatch("connect", "Work with the mesh (Connect) from the "
	    "command line.\n\n"
	    "$ meshctl connect proxy -service web -upstream socat:9191",
	    connect_cmds, UTIL_ARRAY_LEN(connect_cmds), argc, argv);
}
