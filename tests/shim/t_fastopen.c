/* TCP Fast Open: sendto/sendmsg with MSG_FASTOPEN to a mesh destination
 * connects through the mesh and sends the data. */
#include "shimtest.h"
#include <sys/uio.h>

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, st_host(), st_port());
	char msg[64], got[64], buf[128];
	struct pollfd p;
	ssize_t n;
	int fd, k;

	st_init(argc, argv);
	for (k = 0; k < 2; k++) {
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		snprintf(msg, sizeof(msg), "fastopen-%d-%d\n", (int)getpid(), k);
		if (k == 0) {
			n = sendto(fd, msg, strlen(msg), MSG_FASTOPEN,
			    (struct sockaddr *)&ss, l);
		} else {
			struct iovec iov = { msg, strlen(msg) };
			struct msghdr m = { .msg_name = &ss, .msg_namelen = l,
			    .msg_iov = &iov, .msg_iovlen = 1 };
			n = sendmsg(fd, &m, MSG_FASTOPEN);
		}
		CHECK(n == (ssize_t)strlen(msg), k ? "sendmsg MSG_FASTOPEN" :
		    "sendto MSG_FASTOPEN", "n=%zd %s", n, strerror(errno));
		p.fd = fd;
		p.events = POLLIN;
		n = poll(&p, 1, 5000) == 1 ? recv(fd, got, sizeof(got), 0) : -1;
		CHECK(n == (ssize_t)strlen(msg) && memcmp(got, msg,
		    (size_t)n) == 0, "echo of the fast-open data", "n=%zd", n);
		CHECK(st_peer_is(fd, st_host(), st_port(), buf,
		    sizeof(buf)) == 0, "getpeername", "got %s", buf);
		close(fd);
	}
	return st_done();
}
