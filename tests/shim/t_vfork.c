/* vfork children change nothing: a vfork child that closes a meshed fd, or
 * even connects through the mesh, before exec/_exit leaves the parent's
 * fd table and control connection as they were; vfork+exec and
 * posix_spawn of a meshed program work. */
#include "shimtest.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int
main(int argc, char **argv)
{
	int fd, st, r;
	pid_t pid;
	char buf[128];

	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		int c = st_connect(st_host(), st_port());
		return c >= 0 && st_echo_ok(c, "exec") == 0 ? 0 : 1;
	}
	st_init(argc, argv);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0, "parent connect", "%s", strerror(errno));

	pid = vfork();
	if (pid == 0) {
		close(fd);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	CHECK(st_peer_is(fd, st_host(), st_port(), buf, sizeof(buf)) == 0,
	    "vfork child's close leaves parent's entry", "got %s", buf);
	CHECK(st_echo_ok(fd, "v1") == 0, "parent fd works", "no echo");

	pid = vfork();
	if (pid == 0) {
		int c = st_connect(st_host(), st_port());
		r = c >= 0 && st_echo_ok(c, "vchild") == 0 ? 0 : 1;
		if (c >= 0)
			close(c);
		_exit(r);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "vfork child connects through the mesh", "status %#x", st);
	CHECK(st_peer_is(fd, st_host(), st_port(), buf, sizeof(buf)) == 0,
	    "parent entry still right", "got %s", buf);
	{
		int c = st_connect(st_host(), st_port());
		CHECK(c >= 0 && st_echo_ok(c, "after") == 0,
		    "parent connects after vfork child", "failed");
		if (c >= 0)
			close(c);
	}

	pid = vfork();
	if (pid == 0) {
		char *args[] = { argv[0], (char *)"child", NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "vfork+exec child connects", "status %#x", st);

	{
		char *args[] = { argv[0], (char *)"child", NULL };
		r = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args,
		    environ);
		CHECK(r == 0, "posix_spawn", "%s", strerror(r));
		if (r == 0) {
			waitpid(pid, &st, 0);
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			    "posix_spawn child connects", "status %#x", st);
		}
	}
	CHECK(st_echo_ok(fd, "end") == 0, "parent fd works at the end", "no");
	close(fd);
	return st_done();
}
