/* http_acl: the ACL routes of the HTTP API (Consul's paths and fields):
 *   PUT            /v1/acl/token, /v1/acl/policy          (acl:write)
 *   GET            /v1/acl/tokens, /v1/acl/policies       (acl:read)
 *   GET|DELETE     /v1/acl/token/<AccessorID>
 *   GET|DELETE     /v1/acl/policy/<ID>, /v1/acl/policy/name/<Name>
 *   GET            /v1/acl/token/self                     (any token) */
#include <string.h>

#include "helperd/identity/acl.h"
#include "helperd/api/http.h"

#define PFX "/v1/acl/"

static int
is(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

static void
answer(struct http_resp *resp, json_t *j, unsigned status, const char *why)
{
	if (j != NULL)
		http_reply_json(resp, status, j);
	else
		http_reply_text(resp, status, "%s", why);
}

static void
create(const struct api_env *e, const struct http_req *req, struct http_resp *resp,
    int token)
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
one(const struct api_env *e, const struct http_req *req, struct http_resp *resp,
    int token, const char *id)
{
	char why[512] = "";
	unsigned st = 500;
	json_t *j = NULL;

	if (is(req, "GET")) {
		if (!http_allowed(req, resp, acl_acl_read(e->acl, req->caller),
		    "acl:read", NULL))
			return;
		j = token ? acl_token_read(e->acl, id, &st, why, sizeof(why)) :
		    acl_policy_read(e->acl, id, &st, why, sizeof(why));
		answer(resp, j, st, why);
	} else if (is(req, "DELETE")) {
		if (!http_allowed(req, resp, acl_acl_write(e->acl, req->caller),
		    "acl:write", NULL))
			return;
		if ((token ? acl_token_delete(e->acl, id, &st, why,
		    sizeof(why)) : acl_policy_delete(e->acl, id, &st, why,
		    sizeof(why))) == 0)
			http_reply_json(resp, 200, json_true());
		else
			http_reply_text(resp, st, "%s", why);
	} else {
		http_reply_text(resp, 405, "method %s not allowed on %s "
		    "(allowed: GET, DELETE)", req->method, req->path);
	}
}

int
http_acl_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	const char *r;
	char why[256] = "";
	unsigned st = 500;

	if (strncmp(req->path, PFX, strlen(PFX)) != 0)
		return 0;
	r = req->path + strlen(PFX);
	if (!acl_enabled(e->acl)) {
		http_reply_text(resp, 401, "ACL support disabled");
		return 1;
	}
	if (strcmp(r, "token") == 0 || strcmp(r, "policy") == 0) {
		if (is(req, "PUT"))
			create(e, req, resp, r[0] == 't');
		else
			http_reply_text(resp, 405, "method %s not allowed on "
			    "%s (allowed: PUT)", req->method, req->path);
	} else if (strcmp(r, "tokens") == 0 || strcmp(r, "policies") == 0) {
		if (!is(req, "GET"))
			http_reply_text(resp, 405, "method %s not allowed on "
			    "%s (allowed: GET)", req->method, req->path);
		else if (http_allowed(req, resp, acl_acl_read(e->acl,
		    req->caller), "acl:read", NULL))
			http_reply_json(resp, 200, r[0] == 't' ?
			    acl_token_list(e->acl) : acl_policy_list(e->acl));
	} else if (strcmp(r, "token/self") == 0) {
		json_t *j = acl_token_self(e->acl, req->caller, &st, why,
		    sizeof(why));

		answer(resp, j, st, why);
	} else if (strncmp(r, "token/", 6) == 0 && r[6] != '\0') {
		one(e, req, resp, 1, r + 6);
	} else if (strncmp(r, "policy/name/", 12) == 0 && r[12] != '\0') {
		one(e, req, resp, 0, r + 12);
	} else if (strncmp(r, "policy/", 7) == 0 && r[7] != '\0') {
		one(e, req, resp, 0, r + 7);
	} else {
		return 0;
	}
	return 1;
}
