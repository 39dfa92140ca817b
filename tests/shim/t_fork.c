/* fork: the child makes its own control connection and connects; the
 * parent keeps working; a meshed fd inherited by the child still shows
 * the asked address; many children at once. */
#include "shimtest.h"
#include <sys/wait.h>

int
main(int argc, char **argv)
{
	int fd, i, st, ok;
	pid_t pid, kids[8];
	char buf[128];

	st_init(argc, argv);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0 && st_echo_ok(fd, "parent") == 0, "parent connect",
	    "failed");
	pid = fork();
	if (pid == 0) {
		int c = st_connect(st_host(), st_port());
		int r = 0;
		if (c < 0 || st_echo_ok(c, "child") != 0)
			r |= 1;
		if (st_peer_is(fd, st_host(), st_port(), buf,
		    sizeof(buf)) != 0)
			r |= 2;
		close(c);
		c = st_connect(st_host(), st_port());
		if (c < 0 || st_echo_ok(c, "child2") != 0)
			r |= 4;
		_exit(r);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child connects, sees inherited fd's peer", "status %#x", st);
	CHECK(st_echo_ok(fd, "after") == 0, "parent fd still works", "no");
	close(fd);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0 && st_echo_ok(fd, "parent2") == 0,
	    "parent connects after fork", "failed");
	close(fd);
	for (i = 0; i < 8; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			int j, r = 0;
			for (j = 0; j < 5; j++) {
				int c = st_connect(st_host(), st_port());
				if (c < 0 || st_echo_ok(c, "kid") != 0)
					r = 1;
				if (c >= 0)
					close(c);
			}
			_exit(r);
		}
	}
	ok = 1;
	for (i = 0; i < 8; i++) {
		waitpid(kids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			ok = 0;
	}
	CHECK(ok, "8 children x 5 connects at once", "a child failed");
	return st_done();
}
