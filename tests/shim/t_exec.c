/* exec leaks no shim fd: after mesh connects (control connection open),
 * the exec'd program has exactly the fds this program opened itself and
 * left inheritable. The expected list is taken before the first connect
 * (the shim opens its control connection on the first one) plus the pipe
 * made for the child, never from the fds open after the connects: a shim
 * fd without FD_CLOEXEC would be in both the parent's and the child's
 * lists, and comparing those would hide it. */
#include "shimtest.h"
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Sorted comma list of open fds; only those without FD_CLOEXEC if
 * only_inherited; plus fd `extra` if >= 0. *sockets counts the sockets. */
static void
fd_list(char *out, size_t len, int only_inherited, int extra, int *sockets)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fds[1024], n = 0, i, j, dfd = dirfd(d);
	size_t off = 0;

	if (sockets != NULL)
		*sockets = 0;
	while ((e = readdir(d)) != NULL && n < 1023) {
		int fd;
		struct stat sb;
		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dfd)
			continue;
		if (only_inherited && (fcntl(fd, F_GETFD) & FD_CLOEXEC))
			continue;
		if (sockets != NULL && fstat(fd, &sb) == 0 &&
		    S_ISSOCK(sb.st_mode))
			(*sockets)++;
		fds[n++] = fd;
	}
	closedir(d);
	if (extra >= 0)
		fds[n++] = extra;
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
	char before[4096], want[4096], got[4096];
	int fd, st, p[2], socks = 0;
	pid_t pid;
	ssize_t n;

	if (argc > 2 && strcmp(argv[1], "child") == 0) {
		int w = atoi(argv[3]);
		fd_list(got, sizeof(got), 0, -1, NULL);
		n = write(w, got, strlen(got));
		(void)n;
		/* and the child can mesh too */
		fd = st_connect(st_host(), st_port());
		return fd >= 0 && st_echo_ok(fd, "child") == 0 ? 0 : 1;
	}
	st_init(argc, argv);
	/* What this program holds before its first connect: what it was
	 * started with (stdio). No socket among them: run.sh gives none. */
	fd_list(before, sizeof(before), 1, -1, &socks);
	CHECK(socks == 0, "no inheritable socket before the first connect",
	    "%d among {%s}", socks, before);
	fd = st_connect(st_host(), st_port());
	CHECK(fd >= 0 && st_echo_ok(fd, "p") == 0, "connect before exec",
	    "failed");
	if (pipe(p) != 0)
		return 99;
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	/* The child must hold exactly: the fds from before the connect, the
	 * program's own connected socket and the pipe's write end (neither
	 * has FD_CLOEXEC: passed on purpose). */
	fd_list(want, sizeof(want), 1, -1, NULL);
	{
		char mine[4096];
		/* "before" + p[1], sorted, in the same format */
		int b[1024], k = 0, i, j;
		char *s = before, *end;
		size_t off = 0;
		while (*s && k < 1023) {
			b[k++] = (int)strtol(s, &end, 10);
			s = *end == ',' ? end + 1 : end;
		}
		b[k++] = p[1];
		if (fd >= 0)
			b[k++] = fd;
		for (i = 0; i < k; i++)
			for (j = i + 1; j < k; j++)
				if (b[j] < b[i]) {
					int t = b[i];
					b[i] = b[j];
					b[j] = t;
				}
		mine[0] = '\0';
		for (i = 0; i < k && off + 16 < sizeof(mine); i++)
			off += (size_t)snprintf(mine + off, sizeof(mine) - off,
			    "%s%d", i ? "," : "", b[i]);
		CHECK(strcmp(mine, want) == 0, "after the connects, no new "
		    "inheritable fd but the program's own", "expected {%s}, "
		    "inheritable now {%s}", mine, want);
		snprintf(want, sizeof(want), "%s", mine);
	}
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
	CHECK(strcmp(want, got) == 0, "exec'd child has only the program's "
	    "own inheritable fds", "expected {%s} (opened before the first "
	    "connect, and the pipe), child has {%s}", want, got);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "exec'd child connects", "status %#x", st);
	close(fd);
	return st_done();
}
