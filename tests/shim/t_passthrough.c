/* What the shim does not route is untouched: every case gives the same
 * result and errno through the hook as through the raw system call (UDP
 * to the mesh port, AF_UNIX, NULL and short addresses, wrong family,
 * non-sockets, bad fds, AF_UNSPEC), and getpeername of a direct TCP
 * connection is the real peer. */
#include "shimtest.h"
#include <sys/syscall.h>
#include <sys/un.h>

static int
raw_connect(int fd, const struct sockaddr *sa, socklen_t l)
{
	return (int)syscall(SYS_connect, fd, sa, l);
}

typedef int (*mk_fn)(void);
static int mk_udp4(void) { return socket(AF_INET, SOCK_DGRAM, 0); }
static int mk_tcp4(void) { return socket(AF_INET, SOCK_STREAM, 0); }
static int mk_tcp6(void) { return socket(AF_INET6, SOCK_STREAM, 0); }
static int mk_udp6(void) { return socket(AF_INET6, SOCK_DGRAM, 0); }
static int mk_pipe(void) { int p[2]; if (pipe(p)) return -1; close(p[1]); return p[0]; }
static int mk_bad(void) { return 987; }
static int mk_unix(void) { return socket(AF_UNIX, SOCK_STREAM, 0); }

static void
same(const char *name, mk_fn mk, const struct sockaddr *sa, socklen_t l)
{
	int a = mk(), b = mk(), ra, rb, ea, eb;

	errno = 0;
	ra = connect(a, sa, l);
	ea = ra ? errno : 0;
	errno = 0;
	rb = raw_connect(b, sa, l);
	eb = rb ? errno : 0;
	CHECK(ra == rb && ea == eb, name, "hook r=%d %s, syscall r=%d %s",
	    ra, strerror(ea), rb, strerror(eb));
	if (a != 987)
		close(a);
	if (b != 987 && b != a)
		close(b);
}

int
main(int argc, char **argv)
{
	struct sockaddr_storage m4, m6;
	socklen_t l4 = st_addr(&m4, "127.0.0.1", st_port());
	socklen_t l6 = st_addr(&m6, "::1", st_port());
	struct sockaddr_un un;
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	char path[64], buf[128];
	int ls, fd, u;

	st_init(argc, argv);
	same("UDP to the mesh port", mk_udp4, (struct sockaddr *)&m4, l4);
	same("UDP6 to the mesh port", mk_udp6, (struct sockaddr *)&m6, l6);
	same("NULL address", mk_tcp4, NULL, 0);
	same("NULL address, length 16", mk_tcp4, NULL, 16);
	same("short address (len 4)", mk_tcp4, (struct sockaddr *)&m4, 4);
	same("short address (len 15)", mk_tcp4, (struct sockaddr *)&m4, 15);
	same("short v6 address (len 20)", mk_tcp6, (struct sockaddr *)&m6, 20);
	same("v4 address on a v6 socket", mk_tcp6, (struct sockaddr *)&m4, l4);
	same("v6 address on a v4 socket", mk_tcp4, (struct sockaddr *)&m6, l6);
	same("not a socket", mk_pipe, (struct sockaddr *)&m4, l4);
	same("bad fd", mk_bad, (struct sockaddr *)&m4, l4);
	same("AF_UNSPEC on TCP", mk_tcp4, &unspec, sizeof(unspec));

	/* UDP connect to the mesh port: connected to exactly that */
	u = socket(AF_INET, SOCK_DGRAM, 0);
	connect(u, (struct sockaddr *)&m4, l4);
	CHECK(st_peer_is(u, "127.0.0.1", st_port(), buf, sizeof(buf)) == 0,
	    "UDP getpeername untouched", "got %s", buf);
	{
		struct sockaddr_in sn;
		socklen_t sl = sizeof(sn);
		getsockname(u, (struct sockaddr *)&sn, &sl);
		CHECK(sn.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
		    "UDP local address is the kernel's choice", "?");
	}
	CHECK(send(u, "x", 1, 0) == 1, "UDP send", "%s", strerror(errno));
	close(u);

	/* AF_UNIX */
	snprintf(path, sizeof(path), "/tmp/shimtest-%d.sock", (int)getpid());
	unlink(path);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(ls, (struct sockaddr *)&un, sizeof(un));
	listen(ls, 4);
	same("AF_UNIX stream connect", mk_unix, (struct sockaddr *)&un,
	    sizeof(un));
	close(ls);
	unlink(path);
	same("AF_UNIX to a missing path", mk_unix, (struct sockaddr *)&un,
	    sizeof(un));

	/* direct TCP to the echo server: real peer, works */
	fd = st_connect("127.0.0.1", st_echo());
	CHECK(fd >= 0 && st_echo_ok(fd, "direct") == 0,
	    "direct TCP connect untouched", "failed");
	CHECK(st_peer_is(fd, "127.0.0.1", st_echo(), buf, sizeof(buf)) == 0,
	    "direct getpeername", "got %s", buf);
	close(fd);
	/* a closed port stays a kernel ECONNREFUSED */
	same("TCP to a closed port", mk_tcp4, (struct sockaddr *)&(struct
	    sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(1),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) },
	    sizeof(struct sockaddr_in));
	return st_done();
}
