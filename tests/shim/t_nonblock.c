/* Non-blocking connect: EINPROGRESS (or 0), POLLOUT, SO_ERROR 0, a second
 * connect EISCONN, echo; the same through epoll; SOCK_NONBLOCK too. */
#include "shimtest.h"
#include <sys/epoll.h>

static void
one(int use_epoll, int sock_flag)
{
	struct sockaddr_storage ss;
	socklen_t l = st_addr(&ss, st_host(), st_port()), el;
	char buf[128], name[64];
	int fd, r, err, e, fl;

	snprintf(name, sizeof(name), "%s%s", use_epoll ? "epoll" : "poll",
	    sock_flag ? "/SOCK_NONBLOCK" : "/O_NONBLOCK");
	if (sock_flag) {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	} else {
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	}
	r = connect(fd, (struct sockaddr *)&ss, l);
	e = errno;
	st_result(r == 0 || (r == -1 && e == EINPROGRESS), name,
	    "connect: r=%d %s", r, strerror(e));
	if (r == -1 && e == EINPROGRESS) {
		r = connect(fd, (struct sockaddr *)&ss, l);
		/* Linux: EALREADY while connecting; 0 once, when it has
		 * completed meanwhile (loopback is quick); then EISCONN */
		st_result(r == 0 || (r == -1 && (errno == EALREADY ||
		    errno == EISCONN)),
		    "connect while in progress: EALREADY/0/EISCONN",
		    "r=%d %s", r, strerror(errno));
	}
	if (use_epoll) {
		struct epoll_event ev = { .events = EPOLLOUT }, out;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		r = epoll_wait(ep, &out, 1, 5000);
		st_result(r == 1 && (out.events & EPOLLOUT) &&
		    !(out.events & (EPOLLERR | EPOLLHUP)), "EPOLLOUT",
		    "r=%d events=%#x", r, r == 1 ? out.events : 0);
		close(ep);
	} else {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		r = poll(&p, 1, 5000);
		st_result(r == 1 && (p.revents & POLLOUT) &&
		    !(p.revents & (POLLERR | POLLHUP)), "POLLOUT",
		    "r=%d revents=%#x", r, p.revents);
	}
	el = sizeof(err);
	err = -1;
	r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	st_result(r == 0 && err == 0, "SO_ERROR 0", "err=%d", err);
	r = connect(fd, (struct sockaddr *)&ss, l);
	st_result(r == -1 && errno == EISCONN, "second connect EISCONN",
	    "r=%d %s", r, strerror(errno));
	st_result(st_peer_is(fd, st_host(), st_port(), buf, sizeof(buf)) == 0,
	    "getpeername", "got %s", buf);
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	st_result(st_echo_ok(fd, "nb") == 0, "echo", "no echo");
	close(fd);
}

int
main(int argc, char **argv)
{
	st_init(argc, argv);
	one(0, 0);
	one(0, 1);
	one(1, 0);
	one(1, 1);
	return st_done();
}
