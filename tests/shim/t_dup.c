/* The dup family keeps getpeername right: dup, dup2, dup3, F_DUPFD,
 * F_DUPFD_CLOEXEC; after closing the original; after dup2 of another
 * socket over a meshed fd; close_range on a dup. */
#include "shimtest.h"
#include <linux/close_range.h>

static void
peer(int fd, const char *name, const char *host, int port)
{
	char buf[128];

	CHECK(st_peer_is(fd, host, port, buf, sizeof(buf)) == 0, name,
	    "fd %d: got %s", fd, buf);
}

int
main(int argc, char **argv)
{
	int fd, d1, d2, d3, d4, d5, other;

	st_init(argc, argv);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0, "connect", "%s", strerror(errno));
	if (fd < 0)
		return st_done();
	d1 = dup(fd);
	peer(d1, "dup", st_host(), st_port());
	d2 = dup2(fd, 40);
	CHECK(d2 == 40, "dup2 returns new fd", "%d", d2);
	peer(40, "dup2", st_host(), st_port());
	d3 = dup3(fd, 41, O_CLOEXEC);
	CHECK(d3 == 41, "dup3 returns new fd", "%d", d3);
	peer(41, "dup3", st_host(), st_port());
	d4 = fcntl(fd, F_DUPFD, 50);
	CHECK(d4 >= 50, "F_DUPFD", "%d", d4);
	peer(d4, "F_DUPFD getpeername", st_host(), st_port());
	d5 = fcntl(fd, F_DUPFD_CLOEXEC, 60);
	CHECK(d5 >= 60, "F_DUPFD_CLOEXEC", "%d", d5);
	peer(d5, "F_DUPFD_CLOEXEC getpeername", st_host(), st_port());
	CHECK(dup2(fd, fd) == fd, "dup2 onto itself", "failed");
	peer(fd, "dup2 onto itself keeps it", st_host(), st_port());

	close(fd);
	peer(d1, "dup after closing the original", st_host(), st_port());
	CHECK(st_echo_ok(d1, "dup") == 0, "echo on dup", "no echo");

	/* another (direct) socket dup2'ed over a meshed number */
	other = st_connect("127.0.0.1", st_echo());
	CHECK(other >= 0, "direct connect", "%s", strerror(errno));
	CHECK(dup2(other, 40) == 40, "dup2 over meshed fd", "failed");
	peer(40, "dup2 over meshed fd shows the new peer", "127.0.0.1",
	    st_echo());
	peer(41, "other dups unchanged", st_host(), st_port());

	/* the number of a closed meshed fd is reused by a direct socket */
	close(d4);
	{
		int n = st_connect("127.0.0.1", st_echo());
		peer(n, "reused number shows its own peer", "127.0.0.1",
		    st_echo());
		CHECK(st_echo_ok(n, "reuse") == 0, "echo on reused", "no");
		close(n);
	}
	CHECK(close_range(41, 41, 0) == 0, "close_range", "%s",
	    strerror(errno));
	peer(d5, "dup survives close_range of another", st_host(),
	    st_port());
	CHECK(st_echo_ok(d5, "last") == 0, "echo on last dup", "no echo");
	close(d1);
	close(d5);
	close(other);
	close(40);
	return st_done();
}
