/* health: Consul-style checks of the local services (see health.h).
 * Each check is a small chain of non-blocking steps (connect, send the
 * request, read the status line) with one deadline and one end,
 * check_done(), that closes the socket and records the result. */
#include "helperd/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/cluster.h"
#include "helperd/helperd.h"
#include "helperd/loop.h"

#define CHECK_ID_MAX  (CONF_NAME_MAX + 16)   /* "service:<id>[:n]" */
#define REQ_MAX       (2 * CONF_ADDR_MAX + 128)

enum phase { PH_IDLE, PH_CONNECT, PH_SEND, PH_READ };

struct hcheck {
	struct health *hl;
	char id[CHECK_ID_MAX];
	char svc_id[CONF_NAME_MAX];
	char svc_name[CONF_NAME_MAX];
	struct conf_check def;          /* the default one filled in */
	long interval_ms, timeout_ms;
	char host[CONF_ADDR_MAX];       /* tcp and http */
	int port;
	enum catalog_status status;
	char output[CATALOG_OUTPUT_MAX];
	int logged;                     /* status last logged, -1: none */
	int64_t started, next_run, deadline, ttl_expiry;
	enum phase phase;
	int fd;
	struct loop_watch w;
	char req[REQ_MAX];              /* http: the GET request */
	size_t req_len, sent;
	char *buf;                      /* http: the reply, HEALTH_READ_MAX */
	size_t len;
	int fresh;                      /* health_sync: new, settle on it */
};

struct health {
	struct helperd *h;
	struct hcheck **v;
	size_t n;
};

static const char *const type_names[] = { "", "tcp", "http", "ttl" };

static void check_event(void *arg, uint32_t events);

/* Results ---------------------------------------------------------------- */

/* The worst status of service id's checks, and its output. */
static enum catalog_status
svc_status(const struct health *hl, const char *id, const char **output)
{
	enum catalog_status st = CATALOG_PASSING;

	*output = "";
	for (size_t i = 0; i < hl->n; i++) {
		const struct hcheck *c = hl->v[i];

		if (strcmp(c->svc_id, id) != 0)
			continue;
		if (c->status > st || (c->status == st && (*output)[0] == '\0')) {
			st = c->status;
			*output = c->output;
		}
	}
	return st;
}

/* Record a check's result; log and publish a change of its service's
 * status (once per change). */
static void
check_result(struct hcheck *c, enum catalog_status st, const char *fmt, ...)
{
	struct health *hl = c->hl;
	enum catalog_status before, after;
	const char *out;
	va_list ap;

	before = svc_status(hl, c->svc_id, &out);
	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->output, sizeof(c->output), fmt, ap);
	va_end(ap);
	after = svc_status(hl, c->svc_id, &out);
	if ((int)after != c->logged) {
		if (after == CATALOG_PASSING)
			log_info("health: %s is passing", c->svc_name);
		else
			log_warn("health: %s is %s: %s", c->svc_name,
			    catalog_status_name(after), out);
		for (size_t i = 0; i < hl->n; i++)
			if (strcmp(hl->v[i]->svc_id, c->svc_id) == 0)
				hl->v[i]->logged = (int)after;
	}
	if (after != before)
		cluster_services_changed(hl->h->cluster);
}

/* The one end of a check run: close the socket, record the result. */
static void
check_done(struct hcheck *c, enum catalog_status st, const char *fmt, ...)
{
	char out[CATALOG_OUTPUT_MAX];
	va_list ap;

	if (c->w.fd >= 0)
		loop_del(c->hl->h->loop, &c->w);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->phase = PH_IDLE;
	c->len = 0;
	c->sent = 0;
	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	if (st != CATALOG_PASSING && c->next_run > c->started + HEALTH_RETRY_MS)
		c->next_run = c->started + HEALTH_RETRY_MS;
	check_result(c, st, "%s", out);
}

/* Running a check ------------------------------------------------------ */

/* host:port into ss. Names other than IP literals and "localhost" go
 * through the system resolver (blocking; checks normally name an IP). */
static int
resolve(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len, char *why, size_t whylen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char ps[8];
	int rc;

	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	snprintf(ps, sizeof(ps), "%d", port);
	if ((rc = getaddrinfo(host, ps, &hints, &res)) != 0 || res == NULL ||
	    res->ai_addrlen > sizeof(*ss)) {
		snprintf(why, whylen, "%s", rc != 0 ? gai_strerror(rc) :
		    "no address");
		if (res != NULL)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
check_start(struct hcheck *c, int64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];

	c->started = now;
	c->next_run = now + c->interval_ms;
	c->deadline = now + c->timeout_ms;
	if (resolve(c->host, c->port, &ss, &sl, why, sizeof(why)) != 0) {
		check_done(c, CATALOG_CRITICAL, "resolve %s: %s", c->host, why);
		return;
	}
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		check_done(c, CATALOG_CRITICAL, "socket: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		check_done(c, CATALOG_CRITICAL, "connect %s:%d: %s", c->host,
		    c->port, strerror(errno));
		return;
	}
	c->phase = PH_CONNECT;
	if (loop_add(c->hl->h->loop, &c->w, c->fd, EPOLLOUT, check_event,
	    c) != 0)
		check_done(c, CATALOG_CRITICAL, "epoll: %s", strerror(errno));
}

/* The status line of an HTTP reply: 2xx passing, 429 warning, else
 * critical (as Consul). */
static void
http_verdict(struct hcheck *c)
{
	char line[128];
	size_t n = strcspn(c->buf, "\r\n");
	int code;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, c->buf, n);
	line[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
			line[i] = '?';
	if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
	    sscanf(line + 9, "%3d", &code) != 1 || code < 100 || code > 599) {
		check_done(c, CATALOG_CRITICAL, "HTTP GET %s: not an HTTP reply",
		    c->def.target);
		return;
	}
	check_done(c, code >= 200 && code < 300 ? CATALOG_PASSING :
	    code == 429 ? CATALOG_WARNING : CATALOG_CRITICAL,
	    "HTTP GET %s: %s", c->def.target, line + 9);
}

static void
check_event(void *arg, uint32_t events)
{
	struct hcheck *c = arg;
	socklen_t el = sizeof(int);
	int e = 0;
	ssize_t k;

	(void)events;
	switch (c->phase) {
	case PH_CONNECT:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
			e = errno;
		if (e == EINPROGRESS || e == EALREADY)
			return;
		if (e != 0) {
			check_done(c, CATALOG_CRITICAL, "connect %s:%d: %s",
			    c->host, c->port, strerror(e));
			return;
		}
		if (c->def.type == CONF_CHECK_TCP) {
			check_done(c, CATALOG_PASSING, "TCP connect %s:%d: "
			    "Success", c->host, c->port);
			return;
		}
		c->phase = PH_SEND;
		/* FALLTHROUGH */
	case PH_SEND:
		while (c->sent < c->req_len) {
			k = send(c->fd, c->req + c->sent, c->req_len - c->sent,
			    MSG_NOSIGNAL);
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (k <= 0) {
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
				    c->def.target, strerror(errno));
				return;
			}
			c->sent += (size_t)k;
		}
		c->phase = PH_READ;
		if (loop_mod(c->hl->h->loop, &c->w, EPOLLIN) != 0) {
			check_done(c, CATALOG_CRITICAL, "epoll: %s",
			    strerror(errno));
			return;
		}
		return;
	case PH_READ:
		k = recv(c->fd, c->buf + c->len, HEALTH_READ_MAX - c->len, 0);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (k < 0) {
			check_done(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
			    c->def.target, strerror(errno));
			return;
		}
		c->len += (size_t)k;
		c->buf[c->len] = '\0';
		/* The status line is all we need; stop at 4 KiB or EOF. */
		if (k == 0 || c->len >= HEALTH_READ_MAX ||
		    memchr(c->buf, '\n', c->len) != NULL)
			http_verdict(c);
		return;
	case PH_IDLE:
		return;
	}
}

static void
check_free(struct health *hl, struct hcheck *c)
{
	if (c == NULL)
		return;
	if (c->w.fd >= 0)
		loop_del(hl->h->loop, &c->w);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

/* Checks of the local services --------------------------------------------- */

static struct hcheck *
check_new(struct health *hl, const struct conf_service *s,
    const struct conf_check *def, const char *id)
{
	struct hcheck *c = calloc(1, sizeof(*c));
	char path[CONF_ADDR_MAX];
	long ci = hl->h->conf.check_interval_ms;

	if (c == NULL)
		return NULL;
	c->hl = hl;
	c->fd = -1;
	c->w.fd = -1;
	c->logged = -1;
	util_strlcpy(c->id, id, sizeof(c->id));
	util_strlcpy(c->svc_id, s->id, sizeof(c->svc_id));
	util_strlcpy(c->svc_name, s->name, sizeof(c->svc_name));
	c->def = *def;
	c->interval_ms = def->interval_ms > 0 ? def->interval_ms :
	    ci > 0 ? ci : 10000;
	c->timeout_ms = def->timeout_ms > 0 ? def->timeout_ms :
	    CONF_CHECK_TIMEOUT_MS;
	if (c->timeout_ms >= c->interval_ms)
		c->timeout_ms = c->interval_ms / 2;
	c->status = CATALOG_CRITICAL;
	util_strlcpy(c->output, def->type == CONF_CHECK_TTL ?
	    "TTL not reported yet" : "not checked yet", sizeof(c->output));
	if (def->type == CONF_CHECK_TCP) {
		if (util_split_hostport(def->target, c->host, sizeof(c->host),
		    &c->port) != 0)
			goto err;
	} else if (def->type == CONF_CHECK_HTTP) {
		if (conf_check_http_parse(def->target, c->host, sizeof(c->host),
		    &c->port, path, sizeof(path)) != 0 ||
		    (c->buf = malloc(HEALTH_READ_MAX + 1)) == NULL)
			goto err;
		c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
		    "GET %s HTTP/1.0\r\nHost: %s%s%s:%d\r\n"
		    "User-Agent: meshshim-health\r\nAccept: text/plain, "
		    "text/*, */*\r\nConnection: close\r\n\r\n", path,
		    strchr(c->host, ':') != NULL ? "[" : "", c->host,
		    strchr(c->host, ':') != NULL ? "]" : "", c->port);
		if (c->req_len >= sizeof(c->req))
			goto err;
	}
	return c;
err:
	log_err("health: %s: cannot set up check %s", s->name, id);
	check_free(hl, c);
	return NULL;
}

static int
def_eq(const struct conf_check *a, const struct conf_check *b)
{
	return a->type == b->type && strcmp(a->target, b->target) == 0 &&
	    a->interval_ms == b->interval_ms &&
	    a->timeout_ms == b->timeout_ms && a->ttl_ms == b->ttl_ms;
}

/* Move the check (id, def) of s from hl->v to the new array if it exists
 * unchanged (keeping its state), else add a new one. */
static void
sync_one(struct health *hl, const struct conf_service *s,
    const struct conf_check *def, const char *id, struct hcheck ***nv,
    size_t *nn)
{
	struct hcheck *c = NULL;

	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *o = hl->v[i];

		if (o != NULL && strcmp(o->id, id) == 0 &&
		    strcmp(o->svc_name, s->name) == 0 &&
		    def_eq(&o->def, def)) {
			c = o;
			hl->v[i] = NULL;
			break;
		}
	}
	if (c == NULL) {
		if ((c = check_new(hl, s, def, id)) == NULL)
			return;
		c->fresh = 1;
		c->next_run = 0;        /* at once */
	}
	(*nv)[(*nn)++] = c;
}

/* Run the fresh checks now and wait (poll, their sockets only) at most
 * HEALTH_SETTLE_MS for their results. */
static void
settle(struct health *hl)
{
	int64_t now = util_now_ms_mono(), end = now + HEALTH_SETTLE_MS;
	struct pollfd *pf;
	struct hcheck **pc;

	pf = calloc(hl->n + 1, sizeof(*pf));
	pc = calloc(hl->n + 1, sizeof(*pc));
	for (size_t i = 0; pf != NULL && pc != NULL && i < hl->n; i++)
		if (hl->v[i]->fresh && hl->v[i]->def.type != CONF_CHECK_TTL)
			check_start(hl->v[i], now);
	while (pf != NULL && pc != NULL && (now = util_now_ms_mono()) < end) {
		nfds_t k = 0;

		for (size_t i = 0; i < hl->n; i++) {
			struct hcheck *c = hl->v[i];

			if (!c->fresh || c->phase == PH_IDLE)
				continue;
			pf[k].fd = c->fd;
			pf[k].events = c->phase == PH_READ ? POLLIN : POLLOUT;
			pf[k].revents = 0;
			pc[k++] = c;
		}
		if (k == 0 || poll(pf, k, (int)(end - now)) < 0)
			break;
		for (nfds_t j = 0; j < k; j++)
			if (pf[j].revents != 0)
				check_event(pc[j], 0);
	}
	for (size_t i = 0; i < hl->n; i++)
		hl->v[i]->fresh = 0;
	free(pf);
	free(pc);
}

void
health_sync(struct health *hl)
{
	struct catalog *cat = hl->h->catalog;
	size_t nl = catalog_local_count(cat), nn = 0, cap = 0;
	struct hcheck **nv;

	for (size_t i = 0; i < nl; i++) {
		const struct conf_service *s = catalog_local_at(cat, i);
		cap += s->n_checks > 0 ? s->n_checks : 1;
	}
	if ((nv = calloc(cap + 1, sizeof(*nv))) == NULL) {
		log_err("health: out of memory: checks unchanged");
		return;
	}
	for (size_t i = 0; i < nl; i++) {
		const struct conf_service *s = catalog_local_at(cat, i);
		char id[CHECK_ID_MAX];

		if (s->n_checks == 0 && s->port > 0) {
			struct conf_check def = { .type = CONF_CHECK_TCP };

			if ((size_t)snprintf(def.target, sizeof(def.target),
			    "%s%s%s:%d", strchr(s->address, ':') != NULL ?
			    "[" : "", s->address, strchr(s->address, ':') !=
			    NULL ? "]" : "", s->port) < sizeof(def.target) &&
			    (size_t)snprintf(id, sizeof(id), "service:%s",
			    s->id) < sizeof(id))
				sync_one(hl, s, &def, id, &nv, &nn);
		}
		for (size_t j = 0; j < s->n_checks; j++) {
			int k = s->n_checks == 1 ?
			    snprintf(id, sizeof(id), "service:%s", s->id) :
			    snprintf(id, sizeof(id), "service:%s:%zu", s->id,
			    j + 1);

			if (k > 0 && (size_t)k < sizeof(id))
				sync_one(hl, s, &s->checks[j], id, &nv, &nn);
		}
	}
	for (size_t i = 0; i < hl->n; i++)
		check_free(hl, hl->v[i]);       /* the ones not kept */
	free(hl->v);
	hl->v = nv;
	hl->n = nn;
	settle(hl);
}

void
health_tick(struct health *hl, int64_t now)
{
	if (hl == NULL)
		return;
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (c->def.type == CONF_CHECK_TTL) {
			if (c->status != CATALOG_CRITICAL && now >= c->ttl_expiry)
				check_result(c, CATALOG_CRITICAL, "TTL expired "
				    "(no update within %lds)",
				    c->def.ttl_ms / 1000);
		} else if (c->phase != PH_IDLE && now >= c->deadline) {
			if (c->def.type == CONF_CHECK_HTTP)
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: "
				    "timed out after %ldms", c->def.target,
				    c->timeout_ms);
			else
				check_done(c, CATALOG_CRITICAL, "connect %s:%d: "
				    "timed out after %ldms", c->host, c->port,
				    c->timeout_ms);
		} else if (c->phase == PH_IDLE && now >= c->next_run) {
			check_start(c, now);
		}
	}
}

/* The interface ------------------------------------------------------------ */

int
health_new(struct health **out, struct helperd *h)
{
	struct health *hl = calloc(1, sizeof(*hl));

	if (hl == NULL)
		return -1;
	hl->h = h;
	*out = hl;
	return 0;
}

void
health_free(struct health *hl)
{
	if (hl == NULL)
		return;
	for (size_t i = 0; i < hl->n; i++)
		check_free(hl, hl->v[i]);
	free(hl->v);
	free(hl);
}

enum catalog_status
health_status(const struct health *hl, const struct conf_service *s,
    const char **output)
{
	return svc_status(hl, s->id, output);
}

static json_t *
check_json(const struct health *hl, const struct hcheck *c)
{
	char name[CONF_NAME_MAX + 32], iv[32] = "", to[32] = "";

	snprintf(name, sizeof(name), "Service '%s' check", c->svc_name);
	if (c->def.type != CONF_CHECK_TTL) {
		snprintf(iv, sizeof(iv), "%ldms", c->interval_ms);
		snprintf(to, sizeof(to), "%ldms", c->timeout_ms);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[], "
	    "s:s, s:s, s:s}", "Node", hl->h->conf.node, "CheckID", c->id,
	    "Name", name, "Status", catalog_status_name(c->status),
	    "Notes", "", "Output", c->output, "ServiceID", c->svc_id,
	    "ServiceName", c->svc_name, "ServiceTags",
	    "Type", type_names[c->def.type], "Interval", iv, "Timeout", to);
}

static json_t *
ops_checks(void *arg, const struct conf_service *s)
{
	const struct health *hl = arg;
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < hl->n; i++)
		if (strcmp(hl->v[i]->svc_id, s->id) == 0)
			json_array_append_new(a, check_json(hl, hl->v[i]));
	return a;
}

static enum catalog_status
ops_status(void *arg, const struct conf_service *s, const char **output)
{
	return health_status(arg, s, output);
}

struct catalog_health_ops
health_catalog_ops(struct health *hl)
{
	struct catalog_health_ops ops = { .status = ops_status,
		.checks_json = ops_checks, .arg = hl };

	return ops;
}

json_t *
health_agent_checks_json(const struct health *hl)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < hl->n; i++)
		json_object_set_new(o, hl->v[i]->id, check_json(hl, hl->v[i]));
	return o;
}

int
health_ttl_update(struct health *hl, const char *check_id,
    enum catalog_status st, const char *note, int *http_status, char *why,
    size_t whylen)
{
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (strcmp(c->id, check_id) != 0)
			continue;
		if (c->def.type != CONF_CHECK_TTL) {
			*http_status = 500;
			snprintf(why, whylen, "CheckID \"%s\" does not have "
			    "associated TTL", check_id);
			return -1;
		}
		c->ttl_expiry = util_now_ms_mono() + c->def.ttl_ms;
		check_result(c, st, "%s", note != NULL ? note : "");
		return 0;
	}
	*http_status = 404;
	snprintf(why, whylen, "Unknown check ID \"%s\"", check_id);
	return -1;
}
