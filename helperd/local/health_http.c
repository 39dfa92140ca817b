/* health_http: the HTTP(S) checks (see health.h): after the connect
 * (health_run.c), for https a TLS handshake against the system trust
 * store, then an HTTP/1.0 GET and its status line: 2xx passing, 429
 * warning, else critical. Every step is non-blocking: it waits for its
 * socket, or it ends the run with a verdict (http_end) that health_run.c
 * records. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/log.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health_int.h"
#include "helperd/local/resolve.h"

static void http_send(struct hcheck *c);
static void http_read(struct hcheck *c);
static void http_end(struct hcheck *c, enum catalog_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The end of a run, as a step found it: the verdict kept in c for the
 * caller (health_run.c ends the run). Nothing more is done on the run's
 * socket after it. */
static void
http_end(struct hcheck *c, enum catalog_status st, const char *fmt, ...)
{
	va_list ap;

	c->vend = 1;
	c->vst = st;
	va_start(ap, fmt);
	vsnprintf(c->vout, sizeof(c->vout), fmt, ap);
	va_end(ap);
}

int
health_http_prepare(struct hcheck *c)
{
	char path[CONF_ADDR_MAX];

	c->https = strncmp(c->def.target, "https://", 8) == 0;
	if (conf_check_http_parse(c->def.target, c->host, sizeof(c->host),
	    &c->port, path, sizeof(path)) != 0 ||
	    (c->buf = malloc(HEALTH_READ_MAX + 1)) == NULL)
		return -1;
	c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
	    "GET %s HTTP/1.0\r\nHost: %s%s%s:%d\r\n"
	    "User-Agent: meshshim-health\r\nAccept: text/plain, "
	    "text/*, */*\r\nConnection: close\r\n\r\n", path,
	    strchr(c->host, ':') != NULL ? "[" : "", c->host,
	    strchr(c->host, ':') != NULL ? "]" : "", c->port);
	return c->req_len < sizeof(c->req) ? 0 : -1;
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
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: not an HTTP reply",
		    c->def.target);
		return;
	}
	http_end(c, code >= 200 && code < 300 ? CATALOG_PASSING :
	    code == 429 ? CATALOG_WARNING : CATALOG_CRITICAL,
	    "HTTP GET %s: %s", c->def.target, line + 9);
}

/* Wait for the direction GnuTLS asks for. */
static void
tls_wait(struct hcheck *c)
{
	if (loop_mod(c->hl->env.loop, &c->w,
	    gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN) != 0)
		http_end(c, CATALOG_CRITICAL, "epoll: %s", strerror(errno));
}

/* A failed handshake: why the server's chain was refused, when it was. */
static void
handshake_failed(struct hcheck *c, int rc)
{
	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t d = { NULL, 0 };
		unsigned st = gnutls_session_get_verify_cert_status(c->tls);

		if (gnutls_certificate_verification_status_print(st,
		    GNUTLS_CRT_X509, &d, 0) == 0 && d.data != NULL) {
			http_end(c, CATALOG_CRITICAL, "HTTP GET %s: "
			    "TLS: %.150s", c->def.target, d.data);
			gnutls_free(d.data);
			return;
		}
		gnutls_free(d.data);
	}
	http_end(c, CATALOG_CRITICAL, "HTTP GET %s: TLS handshake: "
	    "%s", c->def.target, gnutls_strerror(rc));
}

/* PH_HANDSHAKE: https's handshake, then the request. */
static void
http_handshake(struct hcheck *c)
{
	int rc = gnutls_handshake(c->tls);

	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		tls_wait(c);
		return;
	}
	if (rc < 0) {
		handshake_failed(c, rc);
		return;
	}
	c->phase = PH_SEND;
	http_send(c);
}

/* Send more of the request over TLS / the plain socket: the bytes sent,
 * or 0 when waiting for the socket or when the run ended. */
static ssize_t
tls_send(struct hcheck *c)
{
	ssize_t k = gnutls_record_send(c->tls, c->req + c->sent,
	    c->req_len - c->sent);

	if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
		tls_wait(c);
		return 0;
	}
	if (k < 0) {
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
		    c->def.target, gnutls_strerror((int)k));
		return 0;
	}
	return k;
}

static ssize_t
plain_send(struct hcheck *c)
{
	ssize_t k = send(c->fd, c->req + c->sent, c->req_len - c->sent,
	    MSG_NOSIGNAL);

	if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
		if (loop_mod(c->hl->env.loop, &c->w, EPOLLOUT) != 0)
			http_end(c, CATALOG_CRITICAL, "epoll: %s",
			    strerror(errno));
		return 0;
	}
	if (k <= 0) {
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
		    c->def.target, strerror(errno));
		return 0;
	}
	return k;
}

/* PH_SEND: the request, then wait for the reply (TLS may hold some of
 * it already). */
static void
http_send(struct hcheck *c)
{
	while (c->sent < c->req_len) {
		ssize_t k = c->tls != NULL ? tls_send(c) : plain_send(c);

		if (k <= 0)
			return;
		c->sent += (size_t)k;
	}
	c->phase = PH_READ;
	if (loop_mod(c->hl->env.loop, &c->w, EPOLLIN) != 0) {
		http_end(c, CATALOG_CRITICAL, "epoll: %s",
		    strerror(errno));
		return;
	}
	if (c->tls != NULL && gnutls_record_check_pending(c->tls) != 0)
		http_read(c);
}

/* Read more of the reply over TLS / the plain socket: the bytes read (0
 * at its end), or -1 when waiting for the socket or when the run ended. */
static ssize_t
tls_recv(struct hcheck *c)
{
	ssize_t k = gnutls_record_recv(c->tls, c->buf + c->len,
	    HEALTH_READ_MAX - c->len);

	if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
		tls_wait(c);
		return -1;
	}
	if (k == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;               /* a close without close_notify */
	if (k < 0) {
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
		    c->def.target, gnutls_strerror((int)k));
		return -1;
	}
	return k;
}

static ssize_t
plain_recv(struct hcheck *c)
{
	ssize_t k = recv(c->fd, c->buf + c->len, HEALTH_READ_MAX - c->len, 0);

	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (k < 0) {
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: %s",
		    c->def.target, strerror(errno));
		return -1;
	}
	return k;
}

/* PH_READ: the reply up to its status line (4 KiB or EOF at most). */
static void
http_read(struct hcheck *c)
{
	ssize_t k = c->tls != NULL ? tls_recv(c) : plain_recv(c);

	if (k < 0)
		return;
	c->len += (size_t)k;
	c->buf[c->len] = '\0';
	if (k == 0 || c->len >= HEALTH_READ_MAX ||
	    memchr(c->buf, '\n', c->len) != NULL)
		http_verdict(c);
}

int
health_http_start(struct hcheck *c)
{
	char why[160];

	c->vend = 0;
	if (!c->https) {
		c->phase = PH_SEND;
		http_send(c);
	} else if (tls_setup(c, why, sizeof(why)) != 0) {
		http_end(c, CATALOG_CRITICAL, "HTTP GET %s: TLS: %s",
		    c->def.target, why);
	} else {
		c->phase = PH_HANDSHAKE;
		http_handshake(c);
	}
	return c->vend;
}

int
health_http_event(struct hcheck *c)
{
	c->vend = 0;
	if (c->phase == PH_HANDSHAKE)
		http_handshake(c);
	else if (c->phase == PH_SEND)
		http_send(c);
	else if (c->phase == PH_READ)
		http_read(c);
	return c->vend;
}
