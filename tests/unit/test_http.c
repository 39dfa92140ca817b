/* http: the API server started without a node. A fake api_env (a loop,
 * no ACLs) and fake api_ops; requests over a real TCP socket reach the
 * routes, and a route calls its op: what the node would do on PUT
 * /v1/agent/reload comes back in the reply. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "conf/conf.h"
#include "helperd/api/http.h"
#include "helperd/evloop/loop.h"

struct fake {
	int reloads;            /* ops->reload calls */
	int fail;               /* ops->reload fails */
};

static int
fake_reload(void *cookie, char *note, size_t notelen, char *err,
    size_t errlen)
{
	struct fake *f = cookie;

	f->reloads++;
	if (f->fail) {
		snprintf(err, errlen, "fake: config broken");
		return -1;
	}
	snprintf(note, notelen, "fake note %d", f->reloads);
	return 0;
}

static const struct api_ops fake_ops = { .reload = fake_reload };

struct srv {
	struct conf conf;
	struct loop *loop;
	struct http_server *http;
	char bound[CONF_ADDR_MAX];
	int64_t started;
	struct fake fake;
};

static void
srv_start(struct srv *s)
{
	char err[256] = "";
	struct api_env env = {
		.conf = &s->conf, .started_ms = &s->started,
		.http_sock = "", .http_bound = s->bound,
		.ops = &fake_ops, .cookie = &s->fake,
	};

	memset(s, 0, sizeof(*s));
	conf_defaults(&s->conf, 0);
	cr_assert_eq(loop_new(&s->loop), 0);
	env.loop = s->loop;     /* the rest: no ACLs, no node state */
	cr_assert_eq(http_start(&s->http, &env, "127.0.0.1:0", "", 8,
	    s->bound, sizeof(s->bound), err, sizeof(err)), 0, "%s", err);
}

static void
srv_stop(struct srv *s)
{
	http_stop(s->http);
	loop_free(s->loop);
	conf_free(&s->conf);
}

/* One request on its own connection (Connection: close), the server's
 * loop run until the reply ends; the whole reply in out. */
static void
request(struct srv *s, const char *method, const char *path, char *out,
    size_t outlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64], req[512];
	size_t got = 0;
	int port, fd, n;

	cr_assert_eq(util_split_hostport(s->bound, host, sizeof(host), &port),
	    0);
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
	    "connect %s: %s", s->bound, strerror(errno));
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n", method, path);
	cr_assert_eq(write(fd, req, (size_t)n), n);
	/* At most ~20 s of rounds: a server that never answers fails. */
	for (int round = 0; round < 400; round++) {
		ssize_t r;

		loop_run_once(s->loop, 50);
		while ((r = recv(fd, out + got, outlen - 1 - got,
		    MSG_DONTWAIT)) > 0)
			got += (size_t)r;
		if (r == 0 || got == outlen - 1)
			break;
		cr_assert(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
		    "recv: %s", strerror(errno));
	}
	out[got] = '\0';
	close(fd);
}

Test(http, reload_reaches_the_op)
{
	static struct srv s;
	char reply[4096];

	srv_start(&s);
	request(&s, "PUT", "/v1/agent/reload", reply, sizeof(reply));
	cr_expect_eq(s.fake.reloads, 1, "ops->reload called %d times",
	    s.fake.reloads);
	cr_expect(strncmp(reply, "HTTP/1.1 200", 12) == 0, "reply: %s", reply);
	cr_expect(strstr(reply, "\r\n\r\nfake note 1\n") != NULL, "reply: %s",
	    reply);

	s.fake.fail = 1;
	request(&s, "POST", "/v1/agent/reload", reply, sizeof(reply));
	cr_expect_eq(s.fake.reloads, 2);
	cr_expect(strncmp(reply, "HTTP/1.1 500", 12) == 0, "reply: %s", reply);
	cr_expect(strstr(reply, "the running configuration is kept: fake: "
	    "config broken") != NULL, "reply: %s", reply);
	srv_stop(&s);
}

Test(http, wrong_method_and_unknown_path_call_nothing)
{
	static struct srv s;
	char reply[4096];

	srv_start(&s);
	request(&s, "GET", "/v1/agent/reload", reply, sizeof(reply));
	cr_expect(strncmp(reply, "HTTP/1.1 405", 12) == 0, "reply: %s", reply);
	request(&s, "PUT", "/v1/agent/reloadx", reply, sizeof(reply));
	cr_expect(strncmp(reply, "HTTP/1.1 404", 12) == 0, "reply: %s", reply);
	cr_expect_eq(s.fake.reloads, 0);
	srv_stop(&s);
}

/* http_route_table: exact paths and prefixes (a path ending in '/'), the
 * first match wins, the rest after a prefix reaches the handler, a wrong
 * method is a 405 naming the allowed ones, no match is 0. */
static char route_seen[64];

static void
route_a(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)e, (void)req;
	snprintf(route_seen, sizeof(route_seen), "a:%s", rest);
	resp->status = 200;
}

static void
route_b(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)e, (void)req;
	snprintf(route_seen, sizeof(route_seen), "b:%s", rest);
	resp->status = 200;
}

static int
route(const char *method, const char *path, struct http_resp *resp)
{
	static const struct http_route t[] = {
		{ "GET", "/v1/x/checks", route_a, 0 },
		{ "GET", "/v1/x/list/", route_a, 1 },      /* exact */
		{ "PUT|POST", "/v1/x/check/", route_b, 0 },
		{ "GET", "/v1/x/check/special", route_a, 0 }, /* shadowed */
	};
	struct http_req req = { .method = method, .path = path };

	free(resp->body);
	memset(resp, 0, sizeof(*resp));
	route_seen[0] = '\0';
	return http_route_table(NULL, &req, resp, t, UTIL_ARRAY_LEN(t));
}

Test(http, route_table)
{
	struct http_resp r = { 0 };

	cr_assert_eq(route("GET", "/v1/x/checks", &r), 1);
	cr_assert_str_eq(route_seen, "a:");
	cr_assert_eq(route("POST", "/v1/x/check/pass/web", &r), 1);
	cr_assert_str_eq(route_seen, "b:pass/web");
	cr_assert_eq(route("PUT", "/v1/x/check/special", &r), 1);
	cr_assert_str_eq(route_seen, "b:special", "first match wins");
	cr_assert_eq(route("GET", "/v1/x/check/special", &r), 1);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(route_seen, "", "a 405 ran a handler");
	cr_assert_not_null(strstr(r.body, "(allowed: PUT|POST)"), "%s", r.body);
	cr_assert_eq(route("GET", "/v1/x/check", &r), 0, "no prefix match "
	    "without its '/'");
	cr_assert_eq(route("GET", "/v1/x/checksum", &r), 0);
	/* An exact route ending in '/' is not a prefix. */
	cr_assert_eq(route("GET", "/v1/x/list/", &r), 1);
	cr_assert_str_eq(route_seen, "a:");
	cr_assert_eq(route("GET", "/v1/x/list/more", &r), 0);
	free(r.body);
}
