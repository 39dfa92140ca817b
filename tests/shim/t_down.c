/* helperd down: a mesh connect fails with ECONNREFUSED in well under a
 * second (blocking and non-blocking), other connects are unaffected; when
 * helperd is back the same process connects again.
 *
 * The program stands between the shim and helperd: MESH_SOCKET points at
 * a unix socket this program serves (MESH_TEST_PROXY_SOCKET, the same
 * path), relaying to the real helperd (MESH_TEST_REAL_SOCKET); "down"
 * closes the listener and every relayed connection. */
#include "shimtest.h"
#include <pthread.h>
#include <sys/un.h>

static const char *proxy_path, *real_path;
static int wake[2];
static int want_up = 1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int
unix_listen(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0 ||
	    listen(fd, 64) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

#define NP 64
static void *
proxy(void *arg)
{
	int ls = -1, a[NP], b[NP], n = 0, i, up;
	struct pollfd p[2 + 2 * NP];
	char buf[4096];

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		up = want_up;
		pthread_mutex_unlock(&mu);
		if (up && ls < 0)
			ls = unix_listen(proxy_path);
		if (!up && ls >= 0) {
			close(ls);
			ls = -1;
			unlink(proxy_path);
			for (i = 0; i < n; i++) {
				close(a[i]);
				close(b[i]);
			}
			n = 0;
		}
		p[0].fd = wake[0];
		p[0].events = POLLIN;
		p[1].fd = ls;
		p[1].events = POLLIN;
		for (i = 0; i < n; i++) {
			p[2 + 2 * i].fd = a[i];
			p[2 + 2 * i].events = POLLIN;
			p[3 + 2 * i].fd = b[i];
			p[3 + 2 * i].events = POLLIN;
		}
		if (poll(p, 2 + 2 * (nfds_t)n, -1) < 0)
			continue;
		if (p[0].revents) {
			if (read(wake[0], buf, 1) != 1)
				return NULL;
			continue;
		}
		if (ls >= 0 && (p[1].revents & POLLIN) && n < NP) {
			int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			int s = c >= 0 ? unix_connect(real_path) : -1;
			if (c >= 0 && s >= 0) {
				a[n] = c;
				b[n] = s;
				n++;
			} else if (c >= 0) {
				close(c);
			}
		}
		for (i = 0; i < n; i++) {
			int k;
			for (k = 0; k < 2; k++) {
				int from = k ? b[i] : a[i], to = k ? a[i] : b[i];
				ssize_t r;
				if (!p[2 + 2 * i + k].revents)
					continue;
				r = read(from, buf, sizeof(buf));
				if (r <= 0 || write(to, buf, (size_t)r) != r) {
					close(a[i]);
					close(b[i]);
					a[i] = a[n - 1];
					b[i] = b[n - 1];
					n--;
					i = n; /* rescan next round */
					break;
				}
			}
		}
	}
}

static void
set_up(int up)
{
	pthread_mutex_lock(&mu);
	want_up = up;
	pthread_mutex_unlock(&mu);
	if (write(wake[1], "x", 1) != 1)
		exit(99);
	usleep(100000);
}

static void
mesh_ok(const char *name)
{
	int fd = st_connect(st_host(), st_port());

	CHECK(fd >= 0 && st_echo_ok(fd, "up") == 0, name, "%s",
	    fd < 0 ? strerror(errno) : "no echo");
	if (fd >= 0)
		close(fd);
}

static void
mesh_refused(const char *name, int nb)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, st_host(), st_port());
	int fd = socket(ss.ss_family, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0),
	    0), r, e;
	double t0 = st_now(), dt;
	const char *what = NULL;

	r = connect(fd, (struct sockaddr *)&ss, l);
	e = errno;
	if (nb && r == -1 && e == EINPROGRESS) {
		/* a reset on first I/O is also acceptable; a clean EOF or
		 * data is not a refusal */
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof(err);
		poll(&p, 1, 2000);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		e = err;
		r = err ? -1 : 0;
		if (r == 0) {
			char c;
			ssize_t k;
			p.events = POLLIN;
			poll(&p, 1, 2000);
			k = recv(fd, &c, 1, MSG_DONTWAIT);
			if (k < 0) {
				e = errno;
				r = -1;
			} else {
				what = k == 0 ? "connected, then a clean EOF "
				    "(no reset)" : "connected, and data came";
				e = 0;
				r = 0;
			}
		}
	}
	dt = st_now() - t0;
	if (what == NULL)
		what = r == 0 ? "connected" : strerror(e);
	CHECK(r == -1 && (e == ECONNREFUSED || (nb && e == ECONNRESET)),
	    name, "r=%d %s", r, what);
	CHECK(dt < 1.0, "fails in under a second", "took %.3f s", dt);
	close(fd);
}

int
main(int argc, char **argv)
{
	pthread_t t;
	int fd;

	st_init(argc, argv);
	proxy_path = getenv("MESH_TEST_PROXY_SOCKET");
	real_path = getenv("MESH_TEST_REAL_SOCKET");
	if (!st_shim() || proxy_path == NULL || real_path == NULL ||
	    getenv("MESH_SOCKET") == NULL ||
	    strcmp(getenv("MESH_SOCKET"), proxy_path) != 0) {
		printf("SKIP %s: needs the shim, MESH_SOCKET=$MESH_TEST_PROXY_"
		    "SOCKET and MESH_TEST_REAL_SOCKET\n", st_prog);
		return st_done();
	}
	if (pipe(wake) != 0)
		return 99;
	pthread_create(&t, NULL, proxy, NULL);
	usleep(100000);
	mesh_ok("mesh connect with helperd up");
	set_up(0);
	mesh_refused("helperd down: blocking connect ECONNREFUSED", 0);
	mesh_refused("helperd down: non-blocking connect refused", 1);
	mesh_refused("helperd down: again", 0);
	fd = st_connect("127.0.0.1", st_echo());
	CHECK(fd >= 0 && st_echo_ok(fd, "direct") == 0,
	    "helperd down: direct connect unaffected", "failed");
	if (fd >= 0)
		close(fd);
	set_up(1);
	mesh_ok("helperd back: same process connects again");
	mesh_ok("and again");
	set_up(0);
	mesh_refused("down again: refused", 0);
	set_up(1);
	mesh_ok("up again: connects");
	return st_done();
}
