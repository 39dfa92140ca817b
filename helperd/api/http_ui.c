/* http_ui: the web UI, served from the files built into helperd
 * (ui_assets.h):
 *
 *   GET|HEAD  /, /ui     301 to /ui/
 *   GET|HEAD  /ui/       index.html
 *   GET|HEAD  /ui/NAME   that file; 404 for any other name
 *
 * The page is static and holds no secret, so it is served before any
 * ACL check; everything it shows comes from the public API, which checks
 * the token the page sends. Every answer under /ui carries a
 * Content-Security-Policy that lets the page load and call only
 * helperd's own origin, and may not be framed. */
#include <stdlib.h>
#include <string.h>

#include "helperd/api/http.h"
#include "helperd/api/ui_assets.h"

#define UI_PREFIX "/ui/"

static const char *const ui_headers[] = {
	"Content-Security-Policy", "default-src 'self'; img-src 'self'; "
	    "style-src 'self'; script-src 'self'; connect-src 'self'; "
	    "object-src 'none'; base-uri 'none'; form-action 'self'; "
	    "frame-ancestors 'none'",
	"X-Content-Type-Options", "nosniff",
	"X-Frame-Options", "DENY",
	"Referrer-Policy", "no-referrer",
	"Cache-Control", "no-cache",
	NULL
};

static const char *const ui_redirect[] = {
	"Location", UI_PREFIX,
	"X-Content-Type-Options", "nosniff",
	NULL
};

static const struct ui_asset *
asset(const char *name)
{
	for (size_t i = 0; i < ui_assets_count; i++)
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	return NULL;
}

int
http_ui_route(const struct http_req *req, struct http_resp *resp)
{
	const char *p = req->path;
	const struct ui_asset *a;
	char *body;

	if (strcmp(p, "/") != 0 && strcmp(p, "/ui") != 0 &&
	    strncmp(p, UI_PREFIX, strlen(UI_PREFIX)) != 0)
		return 0;
	if (strcmp(req->method, "GET") != 0 &&
	    strcmp(req->method, "HEAD") != 0) {
		http_reply_text(resp, 405, "Method %s not allowed on %s "
		    "(allowed: GET, HEAD)", req->method, p);
		resp->headers = ui_headers;
		return 1;
	}
	if (strcmp(p, "/") == 0 || strcmp(p, "/ui") == 0) {
		http_reply_text(resp, 301, "Moved to %s", UI_PREFIX);
		resp->headers = ui_redirect;
		return 1;
	}
	p += strlen(UI_PREFIX);
	a = asset(p[0] == '\0' ? "index.html" : p);
	if (a == NULL) {
		http_reply_text(resp, 404, "Unknown path: %s", req->path);
		resp->headers = ui_headers;
		return 1;
	}
	/* The body is the response's to free: a copy (a few tens of KiB). */
	if ((body = malloc(a->len + 1)) == NULL) {
		http_reply_text(resp, 500, "out of memory");
		return 1;
	}
	memcpy(body, a->data, a->len);
	body[a->len] = '\0';
	free(resp->body);
	resp->status = 200;
	resp->body = body;
	resp->len = a->len;
	resp->ctype = a->ctype;
	resp->headers = ui_headers;
	return 1;
}
