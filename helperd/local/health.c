/* health: Consul-style checks of the local services (see health.h).
 * Each check is a small chain of non-blocking steps (resolve off the loop,
 * connect, TLS handshake for https, send the request, read the status
 * line) with one deadline and one end, check_done(), that closes the
 * socket and counts the result against the check's thresholds. */
#include "helperd/local/health.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/resolve.h"

#define CHECK_ID_MAX  (CONF_NAME_MAX + 16)   /* "service:<id>[:n]" */
#define REQ_MAX       (2 * CONF_ADDR_MAX + 128)
#define RESOLVE_POLL_MS 100     /* a name lookup is polled this often */

enum phase { PH_IDLE, PH_RESOLVE, PH_CONNECT, PH_HANDSHAKE, PH_SEND,
	PH_READ };

struct hcheck {
	struct health *hl;
	char id[CHECK_ID_MAX];
	char svc_id[CONF_NAME_MAX];
	char svc_name[CONF_NAME_MAX];
	struct conf_check def;          /* as defined (compared on reload) */
	int is_default;                 /* helperd's own TCP check */
	long interval_ms, timeout_ms;
	int64_t no_verdict_log_at;      /* rate limit of check_no_verdict */
	int need_pass, need_fail;       /* consecutive results, >= 1 */
	char host[CONF_ADDR_MAX];       /* tcp and http */
	int port;
	int https;
	enum catalog_status status;
	char output[CATALOG_OUTPUT_MAX];
	int successes, failures;        /* consecutive, toward need_* */
	int passed_once;
	int logged;                     /* status last logged, -1: none */
	int64_t created, started, next_run, deadline, ttl_expiry;
	enum phase phase;
	int fd;
	struct loop_watch w;
	struct loop_timer t;            /* its next due time (check_arm) */
	struct resolve *res;            /* PH_RESOLVE */
	gnutls_session_t tls;           /* https */
	char req[REQ_MAX];              /* http: the GET request */
	size_t req_len, sent;
	char *buf;                      /* http: the reply, HEALTH_READ_MAX */
	size_t len;
	int fresh;                      /* health_sync: new, settle on it */
	int prev;                       /* a check of the previous definition
	                                 * of a changed instance (see hsvc) */
};

/* A definition of a local instance as health last saw it: a copy, without
 * upstreams (health needs the address, port and checks). The current one
 * (prev 0), and for an instance whose address, port or checks changed
 * while it passed, the previous one (prev 1) with the checks it had: it is
 * dialled in place of the current one until that one passes its own
 * checks (success_before_passing), then retired. */
struct hsvc {
	struct conf_service def;
	int prev;
	int retire;                     /* prev: the current one passes */
};

struct health {
	struct health_env env;          /* set at health_new */
	struct hcheck **v;
	size_t n;
	struct hsvc **sv;               /* current and previous definitions */
	size_t nsv;
	int retire_pending;             /* a prev hsvc is marked retire */
	struct loop_timer sweep;        /* retire_sweep after the round */
	gnutls_certificate_credentials_t cred;  /* https: system trust */
	int cred_ready;
	uint64_t gen;                   /* bumped when what the catalog
	                                   dials may change */
};

static const char *const type_names[] = { "", "tcp", "http", "ttl" };

static void check_event(void *arg, uint32_t events);
static void check_arm(struct hcheck *c);
static void check_timer(void *arg);
static void check_connect(struct hcheck *c, const struct sockaddr_storage *ss,
    socklen_t sl);

/* Results ---------------------------------------------------------------- */

/* What the node publishes may have changed (an instance's status as it is
 * dialled, a previous definition retired): tell it. */
static void
services_changed(struct health *hl)
{
	if (hl->env.ops != NULL && hl->env.ops->services_changed != NULL)
		hl->env.ops->services_changed(hl->env.cookie);
}

/* The worst status of the checks of instance id's current (prev 0) or
 * previous (prev 1) definition, and its output. No checks: passing. */
static enum catalog_status
svc_status(const struct health *hl, const char *id, int prev,
    const char **output)
{
	enum catalog_status st = CATALOG_PASSING;

	*output = "";
	for (size_t i = 0; i < hl->n; i++) {
		const struct hcheck *c = hl->v[i];

		/* NULL: taken into the new list by a reload under way. */
		if (c == NULL || c->prev != prev || strcmp(c->svc_id, id) != 0)
			continue;
		if (c->status > st || (c->status == st && (*output)[0] == '\0')) {
			st = c->status;
			*output = c->output;
		}
	}
	return st;
}

/* Instance id's current (prev 0) or previous (prev 1) definition, or
 * NULL. A previous one marked retire counts as gone. */
static struct hsvc *
sv_find(const struct health *hl, const char *id, int prev)
{
	for (size_t i = 0; i < hl->nsv; i++)
		if (hl->sv[i] != NULL && hl->sv[i]->prev == prev &&
		    !hl->sv[i]->retire && strcmp(hl->sv[i]->def.id, id) == 0)
			return hl->sv[i];
	return NULL;
}

/* The previous definition of instance id that is dialled in place of
 * the current one (the current one does not pass, the previous one
 * does), or NULL. */
static const struct hsvc *
serving_prev(const struct health *hl, const char *id, const char **output)
{
	const struct hsvc *p = sv_find(hl, id, 1);
	const char *o;

	if (p == NULL || svc_status(hl, id, 0, &o) == CATALOG_PASSING ||
	    svc_status(hl, id, 1, output) != CATALOG_PASSING)
		return NULL;
	return p;
}

/* Instance id as it is dialled: its current definition's status, or
 * passing while its previous definition serves in its place. */
static enum catalog_status
eff_status(const struct health *hl, const char *id, const char **output)
{
	enum catalog_status st = svc_status(hl, id, 0, output);
	const char *po;

	if (st != CATALOG_PASSING && serving_prev(hl, id, &po) != NULL) {
		*output = "its previous definition serves until this one "
		    "passes its checks";
		return CATALOG_PASSING;
	}
	return st;
}

/* How many local instances of name are dialled (pass their checks, or
 * their previous definition does). */
static size_t
name_passing(const struct health *hl, const char *name)
{
	struct catalog *cat = hl->env.catalog;
	size_t n = 0;
	const char *out;

	for (size_t i = 0; i < catalog_local_count(cat); i++) {
		const struct conf_service *s = catalog_local_at(cat, i);

		if (strcmp(s->name, name) == 0 &&
		    eff_status(hl, s->id, &out) == CATALOG_PASSING)
			n++;
	}
	return n;
}

/* " (billing-1)" when an instance's ID is not its name, and " (previous
 * definition)" for the checks of one. */
static void
inst_label(const struct hcheck *c, char *buf, size_t len)
{
	int other = strcmp(c->svc_id, c->svc_name) != 0;

	snprintf(buf, len, "%s%s%s%s", other ? " (" : "", other ? c->svc_id :
	    "", other ? ")" : "", c->prev ? " (previous definition)" : "");
}

/* Set a check's status and output; log and publish a change of its
 * service's status (once per change), and say so when the last passing
 * local instance of a name goes. */
static void
check_set(struct hcheck *c, enum catalog_status st, const char *out)
{
	struct health *hl = c->hl;
	enum catalog_status before, after;
	size_t name_before = name_passing(hl, c->svc_name), name_after;
	const char *o, *eo;
	char label[CONF_NAME_MAX + 32];
	struct hsvc *p;

	before = eff_status(hl, c->svc_id, &eo);
	c->status = st;
	hl->gen++;
	util_strlcpy(c->output, out, sizeof(c->output));
	after = svc_status(hl, c->svc_id, c->prev, &o);
	if ((int)after != c->logged) {
		inst_label(c, label, sizeof(label));
		if (after == CATALOG_PASSING)
			log_info("health: %s%s is passing", c->svc_name, label);
		else
			log_warn("health: %s%s is %s: %s", c->svc_name, label,
			    catalog_status_name(after), o);
		for (size_t i = 0; i < hl->n; i++)
			if (hl->v[i] != NULL && hl->v[i]->prev == c->prev &&
			    strcmp(hl->v[i]->svc_id, c->svc_id) == 0)
				hl->v[i]->logged = (int)after;
	}
	if (!c->prev && after == CATALOG_PASSING &&
	    (p = sv_find(hl, c->svc_id, 1)) != NULL) {
		/* The new definition is ready: dial it, retire the old. */
		log_info("health: %s: its new definition passes its checks: "
		    "dialled from now on (the previous one, %s:%d, no longer)",
		    c->svc_id, p->def.address, p->def.port);
		p->retire = 1;
		hl->retire_pending = 1;
		/* Swept after this round: the caller may be walking hl->v. */
		if (loop_timer_add(hl->env.loop, &hl->sweep, 0) != 0)
			log_err("health: out of memory: the previous "
			    "definition of %s is retired later", c->svc_id);
	}
	name_after = name_passing(hl, c->svc_name);
	if (name_before > 0 && name_after == 0)
		log_err("health: no local instance of %s passes its checks: "
		    "connections to %s are refused until one does (%s)",
		    c->svc_name, c->svc_name, o);
	if (eff_status(hl, c->svc_id, &eo) != before)
		services_changed(hl);
}

/* A check run's result: the status changes only after need_pass
 * consecutive passes / need_fail consecutive failures (Consul's
 * success_before_passing / failures_before_critical); a failure short of
 * its threshold keeps the status and says so in the output. */
static void
check_result(struct hcheck *c, enum catalog_status st, const char *fmt, ...)
{
	char out[CATALOG_OUTPUT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	if (st == CATALOG_PASSING) {
		c->failures = 0;
		c->successes++;
		c->passed_once = 1;
		if (c->status == CATALOG_PASSING ||
		    c->successes >= c->need_pass) {
			check_set(c, st, out);
			return;
		}
		log_info("health: %s check %s passed (%d of %d successes "
		    "before passing)", c->svc_name, c->id, c->successes,
		    c->need_pass);
		snprintf(c->output, sizeof(c->output), "%.200s (%d of %d "
		    "successes before passing)", out, c->successes,
		    c->need_pass);
		return;
	}
	c->successes = 0;
	c->failures++;
	if (c->status != CATALOG_PASSING || c->failures >= c->need_fail) {
		check_set(c, st, out);
		return;
	}
	log_info("health: %s check %s failed (%d of %d failures before "
	    "%s): %s", c->svc_name, c->id, c->failures, c->need_fail,
	    catalog_status_name(st), out);
	snprintf(c->output, sizeof(c->output), "%.200s (%d of %d failures "
	    "before %s)", out, c->failures, c->need_fail,
	    catalog_status_name(st));
}

/* When a check runs next, from the start of the run that just ended.
 * Consul's rule: every interval, passing or failing. Two exceptions,
 * both bounded: a check that has never passed (a service starting after
 * helperd) probes every HEALTH_STARTUP_MS during its first
 * HEALTH_STARTUP_WINDOW_MS, so the service is dialled soon after it
 * listens; helperd's own check confirms a failure short of its threshold
 * after HEALTH_CONFIRM_MS rather than a whole interval. */
static int64_t
next_run(const struct hcheck *c)
{
	long d = c->interval_ms;

	if (!c->passed_once && c->started - c->created <
	    HEALTH_STARTUP_WINDOW_MS && d > HEALTH_STARTUP_MS)
		d = HEALTH_STARTUP_MS;
	else if (c->is_default && c->failures > 0 &&
	    c->status == CATALOG_PASSING && d > HEALTH_CONFIRM_MS)
		d = HEALTH_CONFIRM_MS;
	return c->started + d;
}

/* Close what a run holds (socket, TLS session, lookup). */
static void
run_release(struct hcheck *c)
{
	if (c->w.fd >= 0)
		loop_del(c->hl->env.loop, &c->w);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	resolve_free(c->res);
	c->res = NULL;
	c->phase = PH_IDLE;
	c->len = 0;
	c->sent = 0;
}

/* The one end of a check run: release it, record the result. */
static void
check_done(struct hcheck *c, enum catalog_status st, const char *fmt, ...)
{
	char out[CATALOG_OUTPUT_MAX];
	va_list ap;

	run_release(c);
	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	check_result(c, st, "%s", out);
	c->next_run = next_run(c);
	check_arm(c);
}

/* A run that helperd itself could not start (out of fds or memory: a
 * flood of connections, issue 12's emfile test) says nothing about the
 * service: no verdict, the status stays, and the run is tried again in a
 * second. A check that failed because helperd was starved would turn a
 * working service into a refused one after the flood (issue 19). */
static void
check_no_verdict(struct hcheck *c, const char *what, int err)
{
	int64_t now = util_now_ms_mono();

	run_release(c);
	if (now >= c->no_verdict_log_at) {
		log_warn("health: %s check %s not run: %s: %s (helperd's own "
		    "limit, not the service's: status kept, retried in 1 s)",
		    c->svc_name, c->id, what, strerror(err));
		c->no_verdict_log_at = now + 10000;
	}
	c->next_run = now + 1000;
	check_arm(c);
}

static int
local_errno(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM || err == ENOSPC;
}

/* Running a check ------------------------------------------------------ */

static void
check_start(struct hcheck *c, int64_t now)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];

	c->started = now;
	c->deadline = now + c->timeout_ms;
	if (resolve_literal(c->host, c->port, &ss, &sl)) {
		check_connect(c, &ss, sl);
	} else if ((c->res = resolve_start(c->host, c->port, why,
	    sizeof(why))) == NULL) {
		check_done(c, CATALOG_CRITICAL, "resolve %s: %s", c->host, why);
	} else {
		/* A name: looked up off the loop; its timer polls it. */
		c->phase = PH_RESOLVE;
	}
	check_arm(c);
}

static void
check_resolved(struct hcheck *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];
	int rc = resolve_poll(c->res, &ss, &sl, why, sizeof(why));

	if (rc == 0)
		return;
	resolve_free(c->res);
	c->res = NULL;
	if (rc < 0) {
		check_done(c, CATALOG_CRITICAL, "resolve %s: %s", c->host, why);
		return;
	}
	check_connect(c, &ss, sl);
}

static void
check_connect(struct hcheck *c, const struct sockaddr_storage *ss,
    socklen_t sl)
{
	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		if (local_errno(errno))
			check_no_verdict(c, "socket", errno);
		else
			check_done(c, CATALOG_CRITICAL, "socket: %s",
			    strerror(errno));
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		check_done(c, CATALOG_CRITICAL, "connect %s:%d: %s", c->host,
		    c->port, strerror(errno));
		return;
	}
	c->phase = PH_CONNECT;
	if (loop_add(c->hl->env.loop, &c->w, c->fd, EPOLLOUT, check_event,
	    c) != 0) {
		if (local_errno(errno))
			check_no_verdict(c, "epoll", errno);
		else
			check_done(c, CATALOG_CRITICAL, "epoll: %s",
			    strerror(errno));
	}
}

/* The system trust store, loaded at the first https check. 0/-1. */
static int
cred_ready(struct health *hl, char *why, size_t whylen)
{
	int rc;

	if (hl->cred_ready)
		return 0;
	if ((rc = gnutls_certificate_allocate_credentials(&hl->cred)) < 0) {
		snprintf(why, whylen, "%s", gnutls_strerror(rc));
		return -1;
	}
	if ((rc = gnutls_certificate_set_x509_system_trust(hl->cred)) < 0)
		log_warn("health: https checks: no system trust store (%s): "
		    "only checks with tls_skip_verify can pass",
		    gnutls_strerror(rc));
	hl->cred_ready = 1;
	return 0;
}

/* https: a client session over c->fd, verifying the server's chain and
 * name (tls_server_name, else the URL's host) unless tls_skip_verify.
 * 0/-1 with why. */
static int
tls_setup(struct hcheck *c, char *why, size_t whylen)
{
	const char *name = c->def.tls_server_name[0] != '\0' ?
	    c->def.tls_server_name : c->host;
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc;

	if (cred_ready(c->hl, why, whylen) != 0)
		return -1;
	if ((rc = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK)) < 0 ||
	    (rc = gnutls_set_default_priority(c->tls)) < 0 ||
	    (rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE,
	    c->hl->cred)) < 0) {
		snprintf(why, whylen, "%s", gnutls_strerror(rc));
		return -1;
	}
	/* SNI names a host, never an IP literal (RFC 6066). */
	if (!resolve_literal(name, 1, &ss, &sl) &&
	    (rc = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, name,
	    strlen(name))) < 0) {
		snprintf(why, whylen, "%s", gnutls_strerror(rc));
		return -1;
	}
	if (!c->def.tls_skip_verify)
		gnutls_session_set_verify_cert(c->tls, name, 0);
	gnutls_transport_set_int(c->tls, c->fd);
	gnutls_handshake_set_timeout(c->tls, 0);
	return 0;
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

/* Wait for the direction GnuTLS asks for. */
static void
tls_wait(struct hcheck *c)
{
	if (loop_mod(c->hl->env.loop, &c->w,
	    gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN) != 0)
		check_done(c, CATALOG_CRITICAL, "epoll: %s", strerror(errno));
}

static void
check_event(void *arg, uint32_t events)
{
	struct hcheck *c = arg;
	socklen_t el = sizeof(int);
	char why[160];
	int e = 0, rc;
	ssize_t k;

	(void)events;
	switch (c->phase) {
	case PH_CONNECT:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
			e = errno;
		if (e == EINPROGRESS || e == EALREADY)
			return;
		if (e == 0) {
			/* SO_ERROR is 0 while connecting too: only a
			 * writable socket has connected. */
			struct pollfd pf = { .fd = c->fd, .events = POLLOUT };

			if (poll(&pf, 1, 0) != 1)
				return;
		}
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
		if (c->https) {
			if (tls_setup(c, why, sizeof(why)) != 0) {
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: "
				    "TLS: %s", c->def.target, why);
				return;
			}
			c->phase = PH_HANDSHAKE;
		} else {
			c->phase = PH_SEND;
		}
		/* FALLTHROUGH */
	case PH_HANDSHAKE:
		if (c->phase == PH_HANDSHAKE) {
			rc = gnutls_handshake(c->tls);
			if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
				tls_wait(c);
				return;
			}
			if (rc < 0) {
				if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
					gnutls_datum_t d = { NULL, 0 };
					unsigned st = gnutls_session_get_verify_cert_status(
					    c->tls);

					if (gnutls_certificate_verification_status_print(
					    st, GNUTLS_CRT_X509, &d, 0) == 0 &&
					    d.data != NULL) {
						check_done(c, CATALOG_CRITICAL,
						    "HTTP GET %s: TLS: %.150s",
						    c->def.target, d.data);
						gnutls_free(d.data);
						return;
					}
					gnutls_free(d.data);
				}
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: "
				    "TLS handshake: %s", c->def.target,
				    gnutls_strerror(rc));
				return;
			}
			c->phase = PH_SEND;
		}
		/* FALLTHROUGH */
	case PH_SEND:
		while (c->sent < c->req_len) {
			if (c->tls != NULL) {
				k = gnutls_record_send(c->tls, c->req + c->sent,
				    c->req_len - c->sent);
				if (k == GNUTLS_E_AGAIN ||
				    k == GNUTLS_E_INTERRUPTED) {
					tls_wait(c);
					return;
				}
				if (k < 0) {
					check_done(c, CATALOG_CRITICAL, "HTTP GET "
					    "%s: %s", c->def.target,
					    gnutls_strerror((int)k));
					return;
				}
			} else {
				k = send(c->fd, c->req + c->sent,
				    c->req_len - c->sent, MSG_NOSIGNAL);
				if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
					if (loop_mod(c->hl->env.loop, &c->w,
					    EPOLLOUT) != 0)
						check_done(c, CATALOG_CRITICAL,
						    "epoll: %s", strerror(errno));
					return;
				}
				if (k <= 0) {
					check_done(c, CATALOG_CRITICAL, "HTTP GET "
					    "%s: %s", c->def.target,
					    strerror(errno));
					return;
				}
			}
			c->sent += (size_t)k;
		}
		c->phase = PH_READ;
		if (loop_mod(c->hl->env.loop, &c->w, EPOLLIN) != 0) {
			check_done(c, CATALOG_CRITICAL, "epoll: %s",
			    strerror(errno));
			return;
		}
		if (c->tls == NULL || gnutls_record_check_pending(c->tls) == 0)
			return;
		/* FALLTHROUGH */
	case PH_READ:
		if (c->tls != NULL) {
			k = gnutls_record_recv(c->tls, c->buf + c->len,
			    HEALTH_READ_MAX - c->len);
			if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
				tls_wait(c);
				return;
			}
			if (k == GNUTLS_E_PREMATURE_TERMINATION)
				k = 0;          /* a close without close_notify */
			if (k < 0) {
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
				    c->def.target, gnutls_strerror((int)k));
				return;
			}
		} else {
			k = recv(c->fd, c->buf + c->len,
			    HEALTH_READ_MAX - c->len, 0);
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (k < 0) {
				check_done(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
				    c->def.target, strerror(errno));
				return;
			}
		}
		c->len += (size_t)k;
		c->buf[c->len] = '\0';
		/* The status line is all we need; stop at 4 KiB or EOF. */
		if (k == 0 || c->len >= HEALTH_READ_MAX ||
		    memchr(c->buf, '\n', c->len) != NULL)
			http_verdict(c);
		return;
	case PH_IDLE:
	case PH_RESOLVE:
		return;
	}
}

static void
check_free_now(void *arg)
{
	struct hcheck *c = arg;

	free(c->buf);
	free(c);
}

/* Stop a check and free it once the loop has finished the round it may
 * be in (an event of its socket may be waiting in that round). */
static void
check_free(struct health *hl, struct hcheck *c)
{
	if (c == NULL)
		return;
	run_release(c);
	loop_timer_del(hl->env.loop, &c->t);
	if (loop_defer(hl->env.loop, check_free_now, c) != 0)
		check_free_now(c);
}

/* Checks of the local services --------------------------------------------- */

static struct hcheck *
check_new(struct health *hl, const struct conf_service *s,
    const struct conf_check *def, const char *id, int is_default)
{
	struct hcheck *c = calloc(1, sizeof(*c));
	char path[CONF_ADDR_MAX];
	long ci = hl->env.conf->check_interval_ms;

	if (c == NULL)
		return NULL;
	c->hl = hl;
	c->fd = -1;
	c->w.fd = -1;
	loop_timer_init(&c->t, check_timer, c);
	c->logged = -1;
	c->is_default = is_default;
	c->created = util_now_ms_mono();
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
	c->need_pass = def->success_before_passing > 0 ?
	    def->success_before_passing : 1;
	c->need_fail = def->failures_before_critical > 0 ?
	    def->failures_before_critical : 1;
	/* The state before the first run: critical, as Consul's. */
	c->status = CATALOG_CRITICAL;
	util_strlcpy(c->output, def->type == CONF_CHECK_TTL ?
	    "TTL not reported yet" : "not checked yet", sizeof(c->output));
	if (def->type == CONF_CHECK_TCP) {
		if (util_split_hostport(def->target, c->host, sizeof(c->host),
		    &c->port) != 0)
			goto err;
	} else if (def->type == CONF_CHECK_HTTP) {
		c->https = strncmp(def->target, "https://", 8) == 0;
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
	    a->timeout_ms == b->timeout_ms && a->ttl_ms == b->ttl_ms &&
	    a->success_before_passing == b->success_before_passing &&
	    a->failures_before_critical == b->failures_before_critical &&
	    a->tls_skip_verify == b->tls_skip_verify &&
	    strcmp(a->tls_server_name, b->tls_server_name) == 0;
}

/* Move the checks of instance id's definition (prev: current 0, previous
 * 1) from hl->v to nv, as the definition newprev. */
static void
take_checks(struct health *hl, const char *id, int prev, int newprev,
    struct hcheck **nv, size_t *nn)
{
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (c != NULL && c->prev == prev && strcmp(c->svc_id, id) == 0) {
			c->prev = newprev;
			nv[(*nn)++] = c;
			hl->v[i] = NULL;
		}
	}
}

/* Move hsvc p from hl->sv to nsv. */
static void
take_sv(struct health *hl, struct hsvc *p, struct hsvc **nsv, size_t *ns)
{
	for (size_t i = 0; p != NULL && i < hl->nsv; i++)
		if (hl->sv[i] == p) {
			nsv[(*ns)++] = p;
			hl->sv[i] = NULL;
			return;
		}
}

/* Does instance o, as s now defines it, need new checks: another
 * address or port (they decide what is dialled and helperd's own check)
 * or other checks? Other changes (tags, upstreams, user) keep the
 * health state. */
static int
dial_changed(const struct conf_service *o, const struct conf_service *s)
{
	if (strcmp(o->name, s->name) != 0 ||
	    strcmp(o->address, s->address) != 0 || o->port != s->port ||
	    o->n_checks != s->n_checks)
		return 1;
	for (size_t j = 0; j < s->n_checks; j++)
		if (!def_eq(&o->checks[j], &s->checks[j]))
			return 1;
	return 0;
}

/* New checks for s (helperd's own, or its definitions), to run at once. */
static void
checks_new(struct health *hl, const struct conf_service *s,
    struct hcheck **nv, size_t *nn)
{
	char id[CHECK_ID_MAX];
	struct hcheck *c;

	if (s->n_checks == 0 && s->port > 0) {
		/* helperd's own check (Consul adds none): a TCP connect
		 * that needs HEALTH_DEFAULT_FAILURES failures in a row
		 * before critical. */
		struct conf_check def = { .type = CONF_CHECK_TCP,
			.failures_before_critical = HEALTH_DEFAULT_FAILURES };

		if ((size_t)snprintf(def.target, sizeof(def.target),
		    "%s%s%s:%d", strchr(s->address, ':') != NULL ? "[" : "",
		    s->address, strchr(s->address, ':') != NULL ? "]" : "",
		    s->port) < sizeof(def.target) &&
		    (size_t)snprintf(id, sizeof(id), "service:%s", s->id) <
		    sizeof(id) && (c = check_new(hl, s, &def, id, 1)) != NULL)
			nv[(*nn)++] = c;
	}
	for (size_t j = 0; j < s->n_checks; j++) {
		int k = s->n_checks == 1 ?
		    snprintf(id, sizeof(id), "service:%s", s->id) :
		    snprintf(id, sizeof(id), "service:%s:%zu", s->id, j + 1);

		if (k > 0 && (size_t)k < sizeof(id) &&
		    (c = check_new(hl, s, &s->checks[j], id, 0)) != NULL)
			nv[(*nn)++] = c;
	}
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
		int resolving = 0;

		for (size_t i = 0; i < hl->n; i++) {
			struct hcheck *c = hl->v[i];

			if (!c->fresh || c->phase == PH_IDLE)
				continue;
			if (c->phase == PH_RESOLVE) {
				check_resolved(c);
				resolving = 1;
				continue;
			}
			pf[k].fd = c->fd;
			pf[k].events = c->phase == PH_READ ||
			    (c->tls != NULL &&
			    !gnutls_record_get_direction(c->tls)) ?
			    POLLIN : POLLOUT;
			pf[k].revents = 0;
			pc[k++] = c;
		}
		if (k == 0 && !resolving)
			break;
		if (poll(pf, k, resolving ? 5 : (int)(end - now)) < 0)
			break;
		for (nfds_t j = 0; j < k; j++)
			if (pf[j].revents != 0 && pc[j]->phase != PH_IDLE)
				check_event(pc[j], 0);
	}
	for (size_t i = 0; i < hl->n; i++)
		hl->v[i]->fresh = 0;
	free(pf);
	free(pc);
}

/* Drop the previous definitions marked retire, with their checks. */
static void
retire_sweep(struct health *hl)
{
	size_t k = 0;

	if (!hl->retire_pending)
		return;
	hl->retire_pending = 0;
	for (size_t i = 0; i < hl->nsv; i++) {
		struct hsvc *p = hl->sv[i];

		if (!p->retire) {
			hl->sv[k++] = p;
			continue;
		}
		for (size_t j = 0; j < hl->n; j++)
			if (hl->v[j] != NULL && hl->v[j]->prev &&
			    strcmp(hl->v[j]->svc_id, p->def.id) == 0) {
				check_free(hl, hl->v[j]);
				hl->v[j] = NULL;
			}
		free(p);
	}
	hl->nsv = k;
	k = 0;
	for (size_t j = 0; j < hl->n; j++)
		if (hl->v[j] != NULL)
			hl->v[k++] = hl->v[j];
	hl->n = k;
	hl->gen++;
	services_changed(hl);
}

/* Mark the previous definitions whose current one passes. */
static void
retire_ready(struct health *hl)
{
	const char *o;

	for (size_t i = 0; i < hl->nsv; i++) {
		struct hsvc *p = hl->sv[i];

		if (p->prev && !p->retire &&
		    svc_status(hl, p->def.id, 0, &o) == CATALOG_PASSING) {
			log_info("health: %s: its new definition passes its "
			    "checks: dialled from now on (the previous one, "
			    "%s:%d, no longer)", p->def.id, p->def.address,
			    p->def.port);
			p->retire = 1;
			hl->retire_pending = 1;
			hl->gen++;
		}
	}
}

void
health_sync(struct health *hl)
{
	struct catalog *cat = hl->env.catalog;
	size_t nl = catalog_local_count(cat), nn = 0, cap = hl->n, ns = 0;
	struct hcheck **nv;
	struct hsvc **nsv;
	int settle_any = 0;

	for (size_t i = 0; i < nl; i++) {
		const struct conf_service *s = catalog_local_at(cat, i);
		cap += s->n_checks > 0 ? s->n_checks : 1;
	}
	nv = calloc(cap + 1, sizeof(*nv));
	nsv = calloc(2 * nl + 1, sizeof(*nsv));
	if (nv == NULL || nsv == NULL) {
		free(nv);
		free(nsv);
		log_err("health: out of memory: checks unchanged");
		return;
	}
	for (size_t i = 0; i < nl; i++) {
		const struct conf_service *s = catalog_local_at(cat, i);
		struct hsvc *o = sv_find(hl, s->id, 0), *p = sv_find(hl, s->id, 1);
		struct hsvc *cur = calloc(1, sizeof(*cur));
		size_t first = nn;
		const char *out;

		if (cur == NULL) {
			log_err("health: out of memory: %s has no checks",
			    s->id);
			continue;
		}
		cur->def = *s;
		cur->def.upstreams = NULL;
		cur->def.n_upstreams = 0;
		nsv[ns++] = cur;
		if (o != NULL && !dial_changed(&o->def, s)) {
			/* Unchanged where it matters: same checks, same
			 * state, same timers (and a previous definition
			 * still serving, if any). */
			take_checks(hl, s->id, 0, 0, nv, &nn);
			take_checks(hl, s->id, 1, 1, nv, &nn);
			take_sv(hl, p, nsv, &ns);
			continue;
		}
		if (o != NULL && svc_status(hl, s->id, 0, &out) ==
		    CATALOG_PASSING) {
			/* Changed while it passed: the old definition keeps
			 * serving (and being checked) until the new one
			 * passes; an older one waiting is dropped. */
			take_checks(hl, s->id, 0, 1, nv, &nn);
			o->prev = 1;
			take_sv(hl, o, nsv, &ns);
			p = o;
			log_info("health: %s changed: dialled on its previous "
			    "definition (%s:%d) until the new one (%s:%d) "
			    "passes its checks", s->id, o->def.address,
			    o->def.port, s->address, s->port);
		} else if (p != NULL) {
			/* Changed again before it passed: the previous one
			 * that passed keeps serving. */
			take_checks(hl, s->id, 1, 1, nv, &nn);
			take_sv(hl, p, nsv, &ns);
		}
		checks_new(hl, s, nv, &nn);
		for (size_t j = first; j < nn; j++) {
			if (nv[j]->prev)
				continue;
			nv[j]->next_run = 0;    /* at once */
			/* No previous definition serving: wait for it
			 * briefly (a new service that already listens is
			 * passing when its registration returns). */
			nv[j]->fresh = p == NULL;
			settle_any |= p == NULL;
		}
	}
	for (size_t i = 0; i < hl->n; i++)
		check_free(hl, hl->v[i]);       /* the ones not kept */
	for (size_t i = 0; i < hl->nsv; i++)
		free(hl->sv[i]);                /* removed instances */
	free(hl->v);
	free(hl->sv);
	hl->v = nv;
	hl->n = nn;
	hl->sv = nsv;
	hl->nsv = ns;
	hl->gen++;
	if (settle_any)
		settle(hl);
	for (size_t i = 0; i < hl->n; i++)
		check_arm(hl->v[i]);
	retire_ready(hl);
	retire_sweep(hl);
}

/* A run past its deadline: events may be waiting that the loop has not
 * handled yet (it was busy: a reload, a burst of connections). Handle
 * them first, so that a stalled loop is never blamed on the service. */
static int
overdue_but_ready(struct hcheck *c)
{
	struct pollfd pf = { .fd = c->fd };

	if (c->phase == PH_RESOLVE) {
		check_resolved(c);
		return c->phase != PH_RESOLVE;
	}
	pf.events = c->phase == PH_READ || (c->tls != NULL &&
	    !gnutls_record_get_direction(c->tls)) ? POLLIN : POLLOUT;
	if (c->fd < 0 || poll(&pf, 1, 0) != 1)
		return 0;
	check_event(c, 0);
	return c->phase == PH_IDLE;
}

/* When c is due next, as its state says: a TTL that passes expires; a
 * name lookup is polled; a run times out; an idle check runs again. */
static void
check_arm(struct hcheck *c)
{
	struct loop *l = c->hl->env.loop;
	int64_t when;

	if (c->def.type == CONF_CHECK_TTL) {
		if (c->status == CATALOG_CRITICAL) {
			loop_timer_del(l, &c->t);
			return;
		}
		when = c->ttl_expiry;
	} else if (c->phase == PH_RESOLVE) {
		when = util_now_ms_mono() + RESOLVE_POLL_MS;
		if (when > c->deadline)
			when = c->deadline;
	} else if (c->phase != PH_IDLE) {
		when = c->deadline;
	} else {
		when = c->next_run;
	}
	if (loop_timer_at(l, &c->t, when) != 0)
		log_err("health: out of memory: check %s is not timed", c->id);
}

/* A check's timer: start it, time it out, poll its lookup, expire its
 * TTL; then armed for what comes next. */
static void
check_timer(void *arg)
{
	struct hcheck *c = arg;
	int64_t now = util_now_ms_mono();

	(void)resolve_reap(0);
	if (c->def.type == CONF_CHECK_TTL) {
		if (c->status != CATALOG_CRITICAL && now >= c->ttl_expiry) {
			char out[96];

			snprintf(out, sizeof(out), "TTL expired (no update "
			    "within %lds)", c->def.ttl_ms / 1000);
			check_set(c, CATALOG_CRITICAL, out);
		}
	} else if (c->phase == PH_RESOLVE && now < c->deadline) {
		check_resolved(c);
	} else if (c->phase != PH_IDLE && now >= c->deadline) {
		if (overdue_but_ready(c)) {
			check_arm(c);
			return;
		}
		if (c->phase == PH_RESOLVE)
			check_done(c, CATALOG_CRITICAL, "resolve %s: timed out "
			    "after %ldms", c->host, c->timeout_ms);
		else if (c->def.type == CONF_CHECK_HTTP)
			check_done(c, CATALOG_CRITICAL, "HTTP GET %s: timed out "
			    "after %ldms", c->def.target, c->timeout_ms);
		else
			check_done(c, CATALOG_CRITICAL, "connect %s:%d: timed "
			    "out after %ldms", c->host, c->port, c->timeout_ms);
	} else if (c->phase == PH_IDLE && now >= c->next_run) {
		check_start(c, now);
	}
	check_arm(c);
}

static void
sweep_due(void *arg)
{
	retire_sweep(arg);
}

/* The interface ------------------------------------------------------------ */

int
health_new(struct health **out, const struct health_env *env)
{
	struct health *hl = calloc(1, sizeof(*hl));

	if (hl == NULL)
		return -1;
	hl->env = *env;
	loop_timer_init(&hl->sweep, sweep_due, hl);
	*out = hl;
	return 0;
}

void
health_free(struct health *hl)
{
	if (hl == NULL)
		return;
	/* Stopped first (their sockets leave epoll): no later round can
	 * see them, and the loop may already be gone. */
	loop_timer_del(hl->env.loop, &hl->sweep);
	for (size_t i = 0; i < hl->n; i++) {
		run_release(hl->v[i]);
		loop_timer_del(hl->env.loop, &hl->v[i]->t);
		check_free_now(hl->v[i]);
	}
	free(hl->v);
	for (size_t i = 0; i < hl->nsv; i++)
		free(hl->sv[i]);
	free(hl->sv);
	if (hl->cred_ready)
		gnutls_certificate_free_credentials(hl->cred);
	if (resolve_reap(2000) > 0)
		log_warn("health: name lookups still running at exit");
	free(hl);
}

enum catalog_status
health_status(const struct health *hl, const struct conf_service *s,
    const char **output)
{
	return eff_status(hl, s->id, output);
}

/* Is s the copy of a previous definition (the catalog dials it)? */
static int
is_prev_def(const struct health *hl, const struct conf_service *s)
{
	for (size_t i = 0; i < hl->nsv; i++)
		if (&hl->sv[i]->def == s)
			return hl->sv[i]->prev;
	return 0;
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
	    "s:s, s:s, s:s}", "Node", hl->env.conf->node, "CheckID", c->id,
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

	int prev = is_prev_def(hl, s);

	for (size_t i = 0; a != NULL && i < hl->n; i++)
		if (hl->v[i]->prev == prev &&
		    strcmp(hl->v[i]->svc_id, s->id) == 0)
			json_array_append_new(a, check_json(hl, hl->v[i]));
	return a;
}

static enum catalog_status
ops_status(void *arg, const struct conf_service *s, const char **output)
{
	const struct health *hl = arg;

	return svc_status(hl, s->id, is_prev_def(hl, s), output);
}

static uint64_t
ops_generation(void *arg)
{
	const struct health *hl = arg;

	return hl->gen;
}

static const struct conf_service *
ops_previous(void *arg, const struct conf_service *s, const char **output)
{
	const struct hsvc *p = serving_prev(arg, s->id, output);

	return p != NULL ? &p->def : NULL;
}

struct catalog_health_ops
health_catalog_ops(struct health *hl)
{
	struct catalog_health_ops ops = { .status = ops_status,
		.previous = ops_previous, .checks_json = ops_checks,
		.generation = ops_generation, .arg = hl };

	return ops;
}

json_t *
health_agent_checks_json(const struct health *hl)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < hl->n; i++)
		if (!hl->v[i]->prev)
			json_object_set_new(o, hl->v[i]->id,
			    check_json(hl, hl->v[i]));
	return o;
}

int
health_ttl_update(struct health *hl, const char *check_id,
    enum catalog_status st, const char *note, int *http_status, char *why,
    size_t whylen)
{
	int found = 0;

	/* The current definition's check, and the previous one's of the
	 * same ID while it serves: the service reports for both. */
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (strcmp(c->id, check_id) != 0)
			continue;
		if (c->def.type != CONF_CHECK_TTL) {
			if (c->prev)
				continue;
			*http_status = 500;
			snprintf(why, whylen, "CheckID \"%s\" does not have "
			    "associated TTL", check_id);
			return -1;
		}
		c->ttl_expiry = util_now_ms_mono() + c->def.ttl_ms;
		check_result(c, st, "%s", note != NULL ? note : "");
		check_arm(c);
		found = 1;
	}
	retire_sweep(hl);
	if (found)
		return 0;
	*http_status = 404;
	snprintf(why, whylen, "Unknown check ID \"%s\"", check_id);
	return -1;
}
