/* Blocking connect through the mesh: echo, getpeername shows the address
 * asked for, errno untouched on success, second connect EISCONN. */
#include "shimtest.h"

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l;
	char buf[128];
	int fd, r, i;

	st_init(argc, argv);
	for (i = 0; i < 3; i++) {
		l = st_addr(&ss, st_host(), st_port());
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		errno = 4242;
		r = connect(fd, (struct sockaddr *)&ss, l);
		CHECK(r == 0, "blocking connect", "%s", strerror(errno));
		CHECK(errno == 4242, "errno kept on success", "errno %d",
		    errno);
		CHECK(st_echo_ok(fd, "blocking") == 0, "echo", "no echo");
		CHECK(st_peer_is(fd, st_host(), st_port(), buf,
		    sizeof(buf)) == 0, "getpeername is the asked address",
		    "got %s", buf);
		r = connect(fd, (struct sockaddr *)&ss, l);
		CHECK(r == -1 && errno == EISCONN, "second connect EISCONN",
		    "r=%d %s", r, strerror(errno));
		/* a short getpeername buffer is truncated, length is full */
		{
			struct sockaddr_storage g;
			socklen_t gl = 4;
			r = getpeername(fd, (struct sockaddr *)&g, &gl);
			CHECK(r == 0 && gl == l, "getpeername short buffer",
			    "r=%d len=%u", r, (unsigned)gl);
		}
		close(fd);
	}
	return st_done();
}
