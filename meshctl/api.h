/* api: meshctl's HTTP client for helperd's Consul-compatible API (libcurl).
 *
 * The address comes from -http-addr, else $MESH_HTTP_ADDR, else
 * $CONSUL_HTTP_ADDR, else 127.0.0.1:8500; "host:port",
 * "http(s)://host:port" and "unix:///path" are accepted. Timeouts:
 * connect 5 s, whole request 30 s. */
#ifndef MESHCTL_API_H
#define MESHCTL_API_H

#include <stddef.h>
#include <jansson.h>

#define API_BODY_MAX (16 * 1024 * 1024)

struct api_resp {
	long status;                /* HTTP status */
	char *body;                 /* NUL-terminated, malloc'd */
	size_t len;
};

/* Perform method on path (with query string, already escaped), sending
 * body (JSON, may be NULL). 0 when a response arrived (any status), -1
 * after printing "Error: cannot reach helperd at ADDR: reason". */
int api_request(const char *method, const char *path, const char *body,
    struct api_resp *resp);
void api_resp_free(struct api_resp *resp);
/* GET path and copy a 200 answer to stdout as it arrives, with no
 * overall timeout, until the server or the connection ends it. 0 when
 * an answer came (resp: its status, and the body of an error), -1 as
 * api_request. */
int api_stream(const char *path, struct api_resp *resp);

/* The server's error text: the body without trailing whitespace, or
 * "HTTP <status>" when empty. Points into resp (or a static buffer). */
const char *api_errtext(struct api_resp *resp);

/* Parse resp's body as JSON; NULL after printing "Error <what>: ...". */
json_t *api_json(const struct api_resp *resp, const char *what);

/* URL-escape s (malloc'd), NULL on allocation failure. */
char *api_escape(const char *s);

/* The ACL token meshctl was given (-token, $MESH_HTTP_TOKEN,
 * $CONSUL_HTTP_TOKEN, -token-file, $MESH_HTTP_TOKEN_FILE,
 * $CONSUL_HTTP_TOKEN_FILE), or NULL. Without one, requests go to
 * helperd's unix socket when this user can use it ($MESH_HTTP_SOCKET, or
 * the HTTPSocket /v1/agent/self names). */
const char *api_token(void);

/* The HTTP address requests go to (see above). */
const char *api_addr(void);

/* 1 if path is a socket helperd may own: absolute, a socket, owned by
 * root, by this user or by the packaged daemon's user "meshshim";
 * else 0 with why. */
int api_socket_trusted(const char *path, char *why, size_t whylen);

/* Release libcurl state (at exit). */
void api_cleanup(void);

#endif
