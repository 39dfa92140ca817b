/* http_ca: the CA routes of the HTTP API (Consul's paths and fields):
 *   GET      /v1/agent/connect/ca/roots, /v1/connect/ca/roots
 *   GET      /v1/agent/connect/ca/leaf/<service>
 *   PUT|POST /v1/connect/ca/rotate   (ours: the new roots) */
#include <string.h>

#include "conf/conf.h"
#include "helperd/identity/acl.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/api/http.h"

#define LEAF_PREFIX "/v1/agent/connect/ca/leaf/"

static int
is(const struct http_req *req, const char *method)
{
	return strcmp(req->method, method) == 0;
}

static void
roots(const struct api_env *e, struct http_resp *resp)
{
	json_t *j = ca_roots_json((*e->ca));

	if (j == NULL)
		http_reply_text(resp, 500, "encoding CA roots failed");
	else
		http_reply_json(resp, 200, j);
}

static void
leaf(const struct api_env *e, const struct http_req *req, const char *service,
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
	if (!http_allowed(req, resp, acl_leaf(e->acl, req->caller, service,
	    catalog_local(e->catalog, service)), "service:write", service))
		return;
	/* Borrowed reference: valid for this request. */
	if ((l = e->ops->leaf(e->cookie, service, err, sizeof(err))) == NULL) {
		http_reply_text(resp, 500, "leaf certificate for %s: %s",
		    service, err);
		return;
	}
	if ((j = ca_leaf_json((*e->ca), l)) == NULL)
		http_reply_text(resp, 500, "encoding leaf failed");
	else
		http_reply_json(resp, 200, j);
}

static void
rotate(const struct api_env *e, struct http_resp *resp)
{
	char err[CONF_ERR_MAX];

	if (e->ops->ca_rotate(e->cookie, err, sizeof(err)) != 0)
		http_reply_text(resp, 500, "CA rotation failed: %s", err);
	else
		roots(e, resp);
}

int
http_ca_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	const char *p = req->path;

	if (strcmp(p, "/v1/agent/connect/ca/roots") == 0 ||
	    strcmp(p, "/v1/connect/ca/roots") == 0) {
		if (!is(req, "GET"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else
			roots(e, resp);
		return 1;
	}
	if (strncmp(p, LEAF_PREFIX, strlen(LEAF_PREFIX)) == 0) {
		if (!is(req, "GET"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else
			leaf(e, req, p + strlen(LEAF_PREFIX), resp);
		return 1;
	}
	if (strcmp(p, "/v1/connect/ca/rotate") == 0) {
		if (!is(req, "PUT") && !is(req, "POST"))
			http_reply_text(resp, 405, "method %s not allowed on %s",
			    req->method, p);
		else if (http_allowed(req, resp, acl_operator_write(e->acl,
		    req->caller), "operator:write", NULL))
			rotate(e, resp);
		return 1;
	}
	return 0;
}
