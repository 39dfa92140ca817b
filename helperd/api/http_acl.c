/* http_acl: the ACL routes of the HTTP API (Consul's paths and fields):
 *   PUT            /v1/acl/token, /v1/acl/policy          (acl:write)
 *   GET            /v1/acl/tokens, /v1/acl/policies       (acl:read)
 *   GET|DELETE     /v1/acl/token/<AccessorID>
 *   GET|DELETE     /v1/acl/policy/<ID>, /v1/acl/policy/name/<Name>
 *   GET            /v1/acl/token/self                     (any token) */
#include <string.h>

#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/api/http.h"

#define PFX "/v1/acl/"

static void
answer(struct http_resp *resp, json_t *j, unsigned status, const char *why)
{
	if (j != NULL)
		http_reply_json(resp, status, j);
	else
		http_reply_text(resp, status, "%s", why);
}

/* PUT /v1/acl/token, /v1/acl/policy */
static void
create(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, int token)
{
	char why[512] = "";
	unsigned st = 500;
	json_t *body, *j;

	if (!http_allowed(req, resp, acl_acl_write(e->acl, req->caller),
	    "acl:write", NULL) || (body = http_body_json(req, resp)) == NULL)
		return;
	j = token ? acl_token_create(e->acl, body, &st, why, sizeof(why)) :
	    acl_policy_create(e->acl, body, &st, why, sizeof(why));
	json_decref(body);
	answer(resp, j, st, why);
}

static void
token_create(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	create(e, req, resp, 1);
}

static void
policy_create(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	create(e, req, resp, 0);
}

/* GET /v1/acl/tokens, /v1/acl/policies */
static void
list(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	if (http_allowed(req, resp, acl_acl_read(e->acl, req->caller),
	    "acl:read", NULL))
		http_reply_json(resp, 200, strcmp(req->path, PFX "tokens") == 0 ?
		    acl_token_list(e->acl) : acl_policy_list(e->acl));
}

/* GET /v1/acl/token/self: any token may read itself. */
static void
token_self(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	char why[256] = "";
	unsigned st = 500;
	json_t *j;

	(void)rest;
	j = acl_token_self(e->acl, req->caller, &st, why, sizeof(why));
	answer(resp, j, st, why);
}

/* GET|DELETE of one token or policy (id: what follows the prefix). */
static void
one(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, int token, const char *id)
{
	char why[512] = "";
	unsigned st = 500;
	json_t *j = NULL;

	if (id[0] == '\0') {
		http_reply_text(resp, 404, "Unknown path: %s", req->path);
	} else if (strcmp(req->method, "GET") == 0) {
		if (!http_allowed(req, resp, acl_acl_read(e->acl, req->caller),
		    "acl:read", NULL))
			return;
		j = token ? acl_token_read(e->acl, id, &st, why, sizeof(why)) :
		    acl_policy_read(e->acl, id, &st, why, sizeof(why));
		answer(resp, j, st, why);
	} else {
		if (!http_allowed(req, resp, acl_acl_write(e->acl, req->caller),
		    "acl:write", NULL))
			return;
		if ((token ? acl_token_delete(e->acl, id, &st, why,
		    sizeof(why)) : acl_policy_delete(e->acl, id, &st, why,
		    sizeof(why))) == 0)
			http_reply_json(resp, 200, json_true());
		else
			http_reply_text(resp, st, "%s", why);
	}
}

static void
token_one(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	one(e, req, resp, 1, rest);
}

static void
policy_one(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	one(e, req, resp, 0, rest);
}

static const struct http_route acl_routes[] = {
	{ "PUT", PFX "token", token_create, 0 },
	{ "PUT", PFX "policy", policy_create, 0 },
	{ "GET", PFX "tokens", list, 0 },
	{ "GET", PFX "policies", list, 0 },
	{ "GET", PFX "token/self", token_self, 0 },
	{ "GET|DELETE", PFX "token/", token_one, 0 },
	{ "GET|DELETE", PFX "policy/name/", policy_one, 0 },
	{ "GET|DELETE", PFX "policy/", policy_one, 0 },
};

int
http_acl_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	if (strncmp(req->path, PFX, strlen(PFX)) != 0)
		return 0;
	/* Before the method: with ACLs off every ACL path says so. */
	if (!acl_enabled(e->acl)) {
		http_reply_text(resp, 401, "ACL support disabled");
		return 1;
	}
	return http_route_table(e, req, resp, acl_routes,
	    UTIL_ARRAY_LEN(acl_routes));
}
