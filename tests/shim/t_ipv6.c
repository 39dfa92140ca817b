/* IPv6: an AF_INET6 socket to [::1]:port and to [::ffff:127.0.0.1]:port
 * (v4-mapped) goes through the mesh, blocking and non-blocking, and
 * getpeername shows what was asked. */
#include "shimtest.h"

static void
one(const char *host, int nb)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, host, st_port());
	char buf[128], name[96];
	int fd = socket(AF_INET6, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0);
	int r = connect(fd, (struct sockaddr *)&ss, l);

	snprintf(name, sizeof(name), "%s %s", host, nb ? "non-blocking" :
	    "blocking");
	if (nb && r == -1 && errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = -1;
		socklen_t el = sizeof(err);
		poll(&p, 1, 5000);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		r = err == 0 ? 0 : -1;
		errno = err;
		fcntl(fd, F_SETFL, 0);
	}
	st_result(r == 0, name, "connect: %s", strerror(errno));
	snprintf(name, sizeof(name), "%s %s echo", host, nb ? "nb" : "b");
	st_result(r == 0 && st_echo_ok(fd, "v6") == 0, name, "no echo");
	snprintf(name, sizeof(name), "%s %s getpeername", host, nb ? "nb" : "b");
	st_result(st_peer_is(fd, host, st_port(), buf, sizeof(buf)) == 0,
	    name, "got %s", buf);
	close(fd);
}

int
main(int argc, char **argv)
{
	st_init(argc, argv);
	one("::1", 0);
	one("::1", 1);
	one("::ffff:127.0.0.1", 0);
	one("::ffff:127.0.0.1", 1);
	return st_done();
}
