/* The application closes fds under the shim (closefrom, close_range, a
 * loop of close, dup2 over every low fd): mesh connects keep working and
 * nothing the application owns is written to. */
#include "shimtest.h"
#include <linux/close_range.h>
#include <sys/stat.h>

static int
mesh_round(const char *name)
{
	int fd = st_connect(st_host(), st_port());
	int ok = fd >= 0 && st_echo_ok(fd, name) == 0;

	CHECK(ok, name, "%s", fd < 0 ? strerror(errno) : "no echo");
	if (fd >= 0)
		close(fd);
	return ok;
}

int
main(int argc, char **argv)
{
	int i, p[2];
	char buf[64];
	ssize_t n;

	st_init(argc, argv);
	mesh_round("first connect");
	closefrom(3);
	mesh_round("connect after closefrom(3)");
	close_range(3, ~0u, 0);
	mesh_round("connect after close_range(3, ~0)");
	for (i = 3; i < 256; i++)
		close(i);
	mesh_round("connect after closing 3..255");

	/* dup2 a pipe over every fd the shim might hold, then connect: the
	 * shim must not write its protocol into our pipe. */
	mesh_round("connect before dup2 storm");
	if (pipe(p) != 0)
		return 99;
	for (i = 3; i < 64; i++)
		if (i != p[0] && i != p[1])
			dup2(p[1], i);
	mesh_round("connect after dup2 over 3..63");
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	n = read(p[0], buf, sizeof(buf));
	CHECK(n < 0 && errno == EAGAIN, "nothing written into our pipe",
	    "read %zd bytes: %.*s", n, n > 0 ? (int)n : 0, buf);
	for (i = 3; i < 64; i++)
		close(i);
	close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	mesh_round("connect after close_range CLOEXEC");
	return st_done();
}
