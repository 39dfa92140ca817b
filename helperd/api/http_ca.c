/* http_ca: the CA routes of the HTTP API (Consul's paths and fields):
 *   GET      /v1/agent/connect/ca/roots, /v1/connect/ca/roots
 *   GET      /v1/agent/connect/ca/leaf/<service>
 *   PUT|POST /v1/connect/ca/rotate   (ours: the new roots) */
#include <string.h>

#include "conf/conf.h"
#include "helperd/identity/acl.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/node/helperd.h"
#include "helperd/api/http.h"

#define LEAF_PREFIX "/v1/agent/connect/ca/leaf/"

static int
is(const struct http_req *req, const char *method)
{
	return strcmp(req->method, method) == 0;
}

static void
roots(struct helperd *h, struct http_resp *resp)
{
	json_t *j = ca_roots_json(h->ca);

	if (j == NULL)
		http_reply_text(resp, 500, "encoding CA roots failed");
	else
		http_reply_json(resp, 200, j);
}

static void
leaf(struct helperd *h, const struct http_req *req, const char *service,
    struct http_resp *resp)
{
	char err[CONF_ERR_MAX];
	struct ca_leaf *l;
	json_t *j;

	if (!conf_valid_name(service)) {
		http_reply_text(resp, 400, "invalid service name \"%.64s\"",
		    service);
		return;
	}
	/* A private key: management, write on the service, or its user. */
	if (!http_allowed(req, resp, acl_leaf(h->acl, req->caller, service,
	    catalog_local(h->catalog, service)), "service:write", service))
		return;
	/* Borrowed reference: valid for this request. */
	if ((l = helperd_leaf(h, service, err, sizeof(err))) == NULL) {
		http_reply_text(resp, 500, "leaf certificate for %s: %s",
		    service, err);
		return;
	}
	if ((j = ca_leaf_json(h->ca, l)) == NULL)
		http_reply_text(resp, 500, "encoding leaf failed");
	else
		http_reply_json(resp, 200, j);
}

static void
rotate(struct helperd *h, struct http_resp *resp)
{
	char err[CONF_ERR_MAX];

	if (helperd_ca_rotate(h, err, sizeof(err)) != 0)
		http_reply_text(resp, 500, "CA rotation failed: %s", err);
	else
		roots(h, resp);
}

int
http_ca_route(struct helperd *h, const struct http_req *req,
    struct http_resp *resp)
{
	const char *p = req->path;

	if (strcmp(p, "/v1/agent/connect/ca/roots") == 0 ||
	    strcmp(p, "/v1/connect/ca/roots") == 0) {
		if (!is(req, "GET"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else
			roots(h, resp);
		return 1;
	}
	if (strncmp(p, LEAF_PREFIX, strlen(LEAF_PREFIX)) == 0) {
		if (!is(req, "GET"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else
			leaf(h, req, p + strlen(LEAF_PREFIX), resp);
		return 1;
	}
	if (strcmp(p, "/v1/connect/ca/rotate") == 0) {
		if (!is(req, "PUT") && !is(req, "POST"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else if (http_allowed(req, resp, acl_operator_write(h->acl,
		    req->caller), "operator:write", NULL))
			rotate(h, resp);
		return 1;
	}
	return 0;
}
