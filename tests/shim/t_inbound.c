/* Inbound, with the shim in the server (MESH_SERVICE=strictsvc, whose
 * helperd service definition says inbound = "strict"):
 *  - a mesh connection is accepted; accept()'s address and getpeername()
 *    agree (the caller's source as helperd reports it); accept4 flags are
 *    kept; meshshim_peer_id() gives the caller's SPIFFE ID (.../svc/web);
 *  - a direct (non-mesh) connection to the port is refused: a
 *    non-blocking accept() reports EAGAIN and the client sees the
 *    connection closed. Checked only when helperd announces
 *    "inbound=strict" in its HELLO reply (a backwards-compatible
 *    extension of ctlproto.h); otherwise reported as SKIP.
 * MESH_TEST_STRICT_PORT: strictsvc's port; MESH_TEST_STRICT_UP: web's
 * upstream port for strictsvc. Needs the shim; SKIP without it. */
#include "shimtest.h"
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

static int
hello_says_strict(void)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const char *p = getenv("MESH_SOCKET");
	char buf[4096];
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r = 0;

	if (p == NULL)
		return 0;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", p);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0 &&
	    write(fd, "HELLO strictsvc\n", 16) == 16 &&
	    (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		r = strstr(buf, " inbound=strict") != NULL;
	}
	close(fd);
	return r;
}

static int
listener(int port, int nb)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, "127.0.0.1", port);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0),
	    0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, l) != 0 || listen(fd, 16) != 0) {
		perror("listen");
		exit(99);
	}
	return fd;
}

/* Serve one line of echo on fd. */
static void
echo_line(int fd)
{
	char buf[256];
	ssize_t n;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 5000) == 1 && (n = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			return;
}

int
main(int argc, char **argv)
{
	int (*peer_id)(int, char *, size_t);
	int sport = st_envport("MESH_TEST_STRICT_PORT", 0);
	int uport = st_envport("MESH_TEST_STRICT_UP", 0);
	int ls, fd, st, r;
	pid_t pid;
	char id[256], a1[128], a2[128];
	struct sockaddr_storage aa, pa;
	socklen_t al = sizeof(aa), pl = sizeof(pa);

	if (argc > 1 && strcmp(argv[1], "client") == 0) {
		/* The server has just started listening: helperd dials it
		 * once its health check passes: within ~200 ms in the
		 * service's first minute, else at its next run, which
		 * check_interval (10 s) bounds. */
		for (int i = 0; i < 150 && (fd = st_connect("127.0.0.1",
		    uport)) < 0; i++)
			usleep(100000);
		return fd >= 0 && st_echo_ok(fd, "inbound") == 0 ? 0 : 1;
	}
	st_init(argc, argv);
	if (!st_shim() || sport == 0 || uport == 0) {
		printf("SKIP %s: needs the shim and MESH_TEST_STRICT_PORT/UP\n",
		    st_prog);
		return st_done();
	}
	if (strcmp(getenv("MESH_SERVICE"), "strictsvc") != 0) {
		/* be the server: restart as strictsvc */
		setenv("MESH_CLIENT_SERVICE", getenv("MESH_SERVICE"), 1);
		setenv("MESH_SERVICE", "strictsvc", 1);
		execv("/proc/self/exe", argv);
		return 99;
	}
	peer_id = (int (*)(int, char *, size_t))dlsym(RTLD_DEFAULT,
	    "meshshim_peer_id");

	/* 1. a mesh connection from "web" */
	ls = listener(sport, 0);
	pid = fork();
	if (pid == 0) {
		char *args[] = { argv[0], (char *)"client", NULL };
		setenv("MESH_SERVICE", getenv("MESH_CLIENT_SERVICE"), 1);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	fd = accept4(ls, (struct sockaddr *)&aa, &al, SOCK_CLOEXEC |
	    SOCK_NONBLOCK);
	CHECK(fd >= 0, "mesh connection accepted", "%s", strerror(errno));
	if (fd >= 0) {
		CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) &&
		    (fcntl(fd, F_GETFL) & O_NONBLOCK), "accept4 flags kept",
		    "flags lost");
		getpeername(fd, (struct sockaddr *)&pa, &pl);
		st_fmt((struct sockaddr *)&aa, a1, sizeof(a1));
		st_fmt((struct sockaddr *)&pa, a2, sizeof(a2));
		CHECK(al == pl && strcmp(a1, a2) == 0,
		    "accept address == getpeername", "%s vs %s", a1, a2);
		printf("# caller shown as %s\n", a1);
		r = peer_id(fd, id, sizeof(id));
		CHECK(r == 0 && strncmp(id, "spiffe://", 9) == 0 &&
		    strlen(id) > 8 && strcmp(id + strlen(id) - 8, "/svc/web") == 0,
		    "meshshim_peer_id is web's SPIFFE ID", "r=%d %s", r,
		    r == 0 ? id : strerror(errno));
		printf("# peer id %s\n", r == 0 ? id : "-");
		{
			int d = dup(fd);
			char id2[256];
			CHECK(peer_id(d, id2, sizeof(id2)) == 0 &&
			    strcmp(id, id2) == 0, "peer id on a dup", "no");
			CHECK(peer_id(d, id2, 8) == -1 && errno == ERANGE,
			    "peer id short buffer ERANGE", "no");
			close(d);
		}
		fcntl(fd, F_SETFL, 0);
		echo_line(fd);
		close(fd);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mesh client got its echo",
	    "status %#x", st);
	{
		int c = st_connect("127.0.0.1", st_echo());
		CHECK(c >= 0 && peer_id(c, id, sizeof(id)) == -1 &&
		    errno == ENOENT, "peer id of a non-mesh fd: ENOENT", "no");
		close(c);
	}
	close(ls);

	/* 2. a direct connection to the strict port */
	/* run.sh configures strictsvc with inbound = "strict": a HELLO
	 * without it is a failure, not a reason to skip the check. */
	CHECK(hello_says_strict(), "helperd's HELLO reply for strictsvc says "
	    "inbound=strict", "it does not");
	ls = listener(sport, 1);
	{
		int c = st_connect("127.0.0.1", sport);
		char ch;
		struct pollfd p;
		CHECK(c >= 0, "direct connect (kernel accepts it)", "%s",
		    strerror(errno));
		usleep(100000);
		fd = accept(ls, NULL, NULL);
		CHECK(fd == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
		    "strict: direct connection refused, accept EAGAIN",
		    "fd=%d %s", fd, strerror(errno));
		p.fd = c;
		p.events = POLLIN;
		r = poll(&p, 1, 2000) == 1 ? (int)recv(c, &ch, 1, 0) : 99;
		CHECK(r <= 0, "direct client sees the connection closed",
		    "r=%d", r);
		if (fd >= 0)
			close(fd);
		close(c);
	}
	close(ls);
	return st_done();
}
