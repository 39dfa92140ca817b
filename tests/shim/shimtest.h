/* shimtest.h: helpers for the shim's C test programs (header-only).
 *
 * Every program runs twice: with LD_PRELOAD=libmeshshim.so and MESH_SERVICE
 * (MESH_TEST_PORT is a mesh upstream's local_bind_port), and without the
 * shim (MESH_TEST_PORT is the echo server itself), so the same assertions
 * compare the mesh's semantics with a direct connection's.
 *
 *   MESH_TEST_HOST   [127.0.0.1]  address the test connects to
 *   MESH_TEST_PORT   [9191]       mesh upstream (shim) or echo port (direct)
 *   MESH_TEST_ECHO   [8181]       the echo server itself (never meshed)
 *
 * Output: one "PASS name" / "FAIL name: why" line per check; exit status
 * is the number of failures (capped), 0 when all passed. */
#ifndef SHIMTEST_H
#define SHIMTEST_H

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int st_failures;
static const char *st_prog = "test";

static __attribute__((unused)) void
st_result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;
	char why[512] = "";

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
	}
	if (ok) {
		printf("PASS %s: %s\n", st_prog, name);
	} else {
		printf("FAIL %s: %s: %s\n", st_prog, name, why);
		st_failures++;
	}
	fflush(stdout);
}

#define CHECK(cond, name, ...) st_result(!!(cond), name, __VA_ARGS__)

static __attribute__((unused)) int
st_done(void)
{
	printf("%s %s: %d failure(s)\n", st_failures ? "FAIL" : "DONE",
	    st_prog, st_failures);
	return st_failures > 100 ? 100 : st_failures;
}

/* Is the shim loaded and active in this process? */
static __attribute__((unused)) int
st_shim(void)
{
	return dlsym(RTLD_DEFAULT, "meshshim_peer_id") != NULL &&
	    getenv("MESH_SERVICE") != NULL && getenv("MESH_SERVICE")[0];
}

static __attribute__((unused)) const char *
st_host(void)
{
	const char *h = getenv("MESH_TEST_HOST");
	return h != NULL && h[0] ? h : "127.0.0.1";
}

static __attribute__((unused)) int
st_envport(const char *var, int def)
{
	const char *p = getenv(var);
	return p != NULL && p[0] ? atoi(p) : def;
}

static __attribute__((unused)) int st_port(void) { return st_envport("MESH_TEST_PORT", 9191); }
static __attribute__((unused)) int st_echo(void) { return st_envport("MESH_TEST_ECHO", 8181); }

static __attribute__((unused)) socklen_t
st_addr(struct sockaddr_storage *ss, const char *host, int port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return sizeof(*in);
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return sizeof(*in6);
	}
	fprintf(stderr, "bad address %s\n", host);
	exit(99);
}

static __attribute__((unused)) double
st_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Blocking TCP connect to host:port; fd or -1 (errno kept). */
static __attribute__((unused)) int
st_connect(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, host, port);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), e;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, l) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Send a line, read it back (15 s: the echo server forks a socat per
 * connection, and a loaded machine running the tests at nice 19 took more
 * than 5 s to fork 64 of them, with or without the shim). 0 if echoed
 * exactly. */
static __attribute__((unused)) int
st_echo_ok(int fd, const char *tag)
{
	char msg[128], buf[128];
	size_t n, got = 0;
	ssize_t r;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	snprintf(msg, sizeof(msg), "marker-%d-%s\n", (int)getpid(), tag);
	n = strlen(msg);
	if (send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	while (got < n) {
		if (poll(&p, 1, 15000) != 1)
			return -1;
		r = recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return memcmp(buf, msg, n) == 0 ? 0 : -1;
}

/* "a.b.c.d:port" / "[v6]:port" of a sockaddr. */
static __attribute__((unused)) const char *
st_fmt(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "family %d", sa->sa_family);
	}
	return buf;
}

/* getpeername(fd) == host:port ? 0 : -1; the text of it in buf. */
static __attribute__((unused)) int
st_peer_is(int fd, const char *host, int port, char *buf, size_t len)
{
	struct sockaddr_storage want, got;
	socklen_t wl = st_addr(&want, host, port), gl = sizeof(got);

	memset(&got, 0, sizeof(got));
	if (getpeername(fd, (struct sockaddr *)&got, &gl) != 0) {
		snprintf(buf, len, "getpeername: %s", strerror(errno));
		return -1;
	}
	st_fmt((struct sockaddr *)&got, buf, len);
	if (gl != wl || got.ss_family != want.ss_family)
		return -1;
	if (want.ss_family == AF_INET)
		return memcmp(&((struct sockaddr_in *)&got)->sin_addr,
		    &((struct sockaddr_in *)&want)->sin_addr, 4) == 0 &&
		    ((struct sockaddr_in *)&got)->sin_port ==
		    ((struct sockaddr_in *)&want)->sin_port ? 0 : -1;
	return memcmp(&((struct sockaddr_in6 *)&got)->sin6_addr,
	    &((struct sockaddr_in6 *)&want)->sin6_addr, 16) == 0 &&
	    ((struct sockaddr_in6 *)&got)->sin6_port ==
	    ((struct sockaddr_in6 *)&want)->sin6_port ? 0 : -1;
}

static __attribute__((unused)) void
st_init(int argc, char **argv)
{
	const char *p = strrchr(argv[0], '/');

	(void)argc;
	st_prog = p != NULL ? p + 1 : argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# %s: %s, connecting to %s:%d (echo server port %d)\n",
	    st_prog, st_shim() ? "with shim" : "without shim", st_host(),
	    st_port(), st_echo());
}

#endif
