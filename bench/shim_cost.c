/* shim_cost: what the shim costs the calls it does not route.
 * Prints ns per call for: connect() of a UDP socket to 127.0.0.1 (an
 * unrouted connect, no network work), a TCP connect()+close to a
 * loopback listener that is not an upstream, and a 64-byte write+read
 * round on a connected TCP pair. Run it with and without LD_PRELOAD. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200000;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9) };
	socklen_t len = sizeof(a);
	char buf[64] = { 0 };
	int u, l, c, s;
	double t;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	t = now_ns();
	for (int i = 0; i < n; i++)
		if (connect(u, (struct sockaddr *)&a, sizeof(a)) != 0)
			return 1;
	printf("udp_connect_ns %.1f\n", (now_ns() - t) / n);

	l = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = 0;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4096) ||
	    getsockname(l, (struct sockaddr *)&a, &len) != 0)
		return 1;
	t = now_ns();
	for (int i = 0; i < n / 20; i++) {
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
			return 1;
		close(c);
		close(accept(l, NULL, NULL));
	}
	printf("tcp_connect_close_ns %.1f\n", (now_ns() - t) / (n / 20));

	c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
		return 1;
	s = accept(l, NULL, NULL);
	t = now_ns();
	for (int i = 0; i < n; i++)
		if (write(c, buf, sizeof(buf)) != sizeof(buf) ||
		    read(s, buf, sizeof(buf)) != sizeof(buf))
			return 1;
	printf("write_read_64_ns %.1f\n", (now_ns() - t) / n);
	return 0;
}
