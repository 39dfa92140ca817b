/* http_ca: the CA routes of the HTTP API (Consul's paths and fields):
 *   GET      /v1/agent/connect/ca/roots, /v1/connect/ca/roots
 *   GET      /v1/agent/connect/ca/leaf/<service>
 *   PUT|POST /v1/connect/ca/rotate   (ours: the new roots) */
#include <string.h>

#include "common/util.h"
#include "conf/conf.h"
#include "helperd/identity/acl.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/api/http.h"

#define LEAF_PREFIX "/v1/agent/connect/ca/leaf/"

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

static void
roots_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	roots(e, resp);
}

static void
leaf_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *service)
{
	leaf(e, req, service, resp);
}

static void
rotate_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	if (http_allowed(req, resp, acl_operator_write(e->acl, req->caller),
	    "operator:write", NULL))
		rotate(e, resp);
}

static const struct http_route ca_routes[] = {
	{ "GET", "/v1/agent/connect/ca/roots", roots_route, 0 },
	{ "GET", "/v1/connect/ca/roots", roots_route, 0 },
	{ "GET", LEAF_PREFIX, leaf_route, 0 },
	{ "PUT|POST", "/v1/connect/ca/rotate", rotate_route, 0 },
};

int
http_ca_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	return http_route_table(e, req, resp, ca_routes,
	    UTIL_ARRAY_LEN(ca_routes));
}
