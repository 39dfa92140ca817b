/* exec leaks no shim fd: after mesh connects (control connection open),
 * the exec'd program has exactly the fds the parent had without
 * FD_CLOEXEC. */
#include "shimtest.h"
#include <dirent.h>
#include <sys/wait.h>

/* Sorted comma list of open fds; in the parent only those without
 * FD_CLOEXEC. */
static void
fd_list(char *out, size_t len, int only_inherited)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fds[1024], n = 0, i, j, dfd = dirfd(d);
	size_t off = 0;

	while ((e = readdir(d)) != NULL && n < 1024) {
		int fd;
		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dfd)
			continue;
		if (only_inherited && (fcntl(fd, F_GETFD) & FD_CLOEXEC))
			continue;
		fds[n++] = fd;
	}
	closedir(d);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (fds[j] < fds[i]) {
				int t = fds[i];
				fds[i] = fds[j];
				fds[j] = t;
			}
	out[0] = '\0';
	for (i = 0; i < n && off + 16 < len; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%d",
		    i ? "," : "", fds[i]);
}

int
main(int argc, char **argv)
{
	char want[4096], got[4096];
	int fd, st, p[2];
	pid_t pid;
	ssize_t n;

	if (argc > 2 && strcmp(argv[1], "child") == 0) {
		int w = atoi(argv[3]);
		fd_list(got, sizeof(got), 0);
		n = write(w, got, strlen(got));
		(void)n;
		/* and the child can mesh too */
		fd = st_connect(st_host(), st_port());
		return fd >= 0 && st_echo_ok(fd, "child") == 0 ? 0 : 1;
	}
	st_init(argc, argv);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0 && st_echo_ok(fd, "p") == 0, "connect before exec",
	    "failed");
	if (pipe(p) != 0)
		return 99;
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fd_list(want, sizeof(want), 1);
	pid = fork();
	if (pid == 0) {
		char num[16];
		char *args[] = { argv[0], (char *)"child", want, num, NULL };
		close(p[0]);
		snprintf(num, sizeof(num), "%d", p[1]);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], got, sizeof(got) - 1);
	got[n > 0 ? n : 0] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	/* the child's list includes its pipe end, which we inherited on
	 * purpose: it is in "want" too (p[1] has no FD_CLOEXEC) */
	CHECK(strcmp(want, got) == 0, "exec'd child has only inherited fds",
	    "parent's inheritable fds {%s}, child has {%s}", want, got);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "exec'd child connects", "status %#x", st);
	close(fd);
	return st_done();
}
