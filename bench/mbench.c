/* mbench: the backend and the load generators of bench/run.sh.
 *
 * Everything talks to 127.0.0.1. Run the client modes with the shim
 * preloaded to measure the mesh path; they use plain blocking sockets, as an
 * ordinary application would.
 *
 *   mbench server PORT[c]...           echo server (one epoll loop per
 *                                      thread, MBENCH_THREADS [2], each
 *                                      with its own SO_REUSEPORT listener);
 *                                      on a "PORTc" it closes after the
 *                                      first echo (connrate's backend)
 *   mbench pingpong PORT SIZE SECS MAX one connection, SIZE-byte messages,
 *                                      round trips for SECS or MAX rounds
 *   mbench connrate PORT PAR SECS MAX  PAR threads, each a loop of: socket,
 *                                      connect, send 1 byte, read 1 byte
 *                                      (latency taken here), read the
 *                                      server's EOF, close; for SECS or MAX
 *                                      connections
 *   mbench hold PORT[,PORT..] N PAR    open N connections (round robin over
 *                                      the ports, a 1-byte exchange each),
 *                                      print "READY held=K", wait for a
 *                                      signal or EOF on stdin
 *   mbench verify PORT MBYTES          send MBYTES of a pseudo-random
 *                                      stream, check the echo byte for byte,
 *                                      then half-close and report whether
 *                                      the EOF comes back (eof=yes|no)
 *
 * The client modes dial 127.0.0.1, or MBENCH_HOST (an IPv4 address); the
 * server listens on 127.0.0.1, or MBENCH_BIND (an IPv4 address, 0.0.0.0
 * for all).
 * Output is one line of key=value pairs; latencies in microseconds
 * (nearest-rank percentiles). Exit 0 on success, 1 on errors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double
pct_us(const uint64_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

static int
dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port) };
	int fd, one = 1;

	/* MBENCH_HOST: another loopback address to dial (helperd's served
	 * addresses, bench/noshim.sh). */
	if (getenv("MBENCH_HOST") == NULL ||
	    inet_pton(AF_INET, getenv("MBENCH_HOST"), &sa.sin_addr) != 1)
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, 1000);
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0 ok, -1 error (errno), -2 early EOF */
static int
read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return -2;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* server ------------------------------------------------------------------ */

struct srv {
	int nports;
	int *ports;
	int *oneshot;   /* close after the first echo ("PORTc") */
};

static void *
server_thread(void *arg)
{
	struct srv *s = arg;
	struct epoll_event ev, evs[256];
	static __thread char buf[65536];
	int ep = epoll_create1(EPOLL_CLOEXEC), one = 1;

	if (ep < 0) {
		perror("epoll_create1");
		exit(1);
	}
	for (int i = 0; i < s->nports; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
		    .sin_port = htons((uint16_t)s->ports[i]) };
		int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);

		/* MBENCH_BIND: the address to listen on (bench/crossnode.sh:
		 * the backends of another network namespace), else loopback. */
		if (getenv("MBENCH_BIND") == NULL || inet_pton(AF_INET,
		    getenv("MBENCH_BIND"), &sa.sin_addr) != 1)
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    listen(l, 4096) != 0) {
			fprintf(stderr, "mbench server: port %d: %s\n",
			    s->ports[i], strerror(errno));
			exit(1);
		}
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)l | (1ull << 32) |
		    ((uint64_t)s->oneshot[i] << 33);
		epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 & 0xffffffffu);

			uint64_t once = (evs[i].data.u64 >> 33) & 1;

			if ((evs[i].data.u64 >> 32) & 1) {
				for (int k = 0; k < 64; k++) {
					int c = accept4(fd, NULL, NULL,
					    SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0)
						break;
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.u64 = (uint64_t)c | (once << 33);
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || write_all(fd, buf, (size_t)r) != 0 || once) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
			}
		}
	}
	return NULL;
}

static int
cmd_server(int argc, char **argv)
{
	static struct srv s;
	const char *t = getenv("MBENCH_THREADS");
	int nt = t ? atoi(t) : 2;
	pthread_t th;

	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	s.nports = argc;
	s.ports = calloc((size_t)argc, sizeof(int));
	s.oneshot = calloc((size_t)argc, sizeof(int));
	for (int i = 0; i < argc; i++) {
		s.ports[i] = atoi(argv[i]);
		s.oneshot[i] = strchr(argv[i], 'c') != NULL;
	}
	if (nt < 1)
		nt = 1;
	for (int i = 1; i < nt; i++)
		pthread_create(&th, NULL, server_thread, &s);
	server_thread(&s);
	return 0;
}

/* pingpong ---------------------------------------------------------------- */

static int
cmd_pingpong(int argc, char **argv)
{
	int port, fd, errs = 0;
	size_t size, max, n = 0;
	double secs, end;
	uint64_t *lat, sum = 0;
	char *out, *in;

	if (argc != 4)
		return 2;
	port = atoi(argv[0]);
	size = (size_t)atol(argv[1]);
	secs = atof(argv[2]);
	max = (size_t)atol(argv[3]);
	if (size < 1 || max < 1)
		return 2;
	lat = calloc(max, sizeof(*lat));
	out = malloc(size);
	in = malloc(size);
	if ((fd = dial(port)) < 0) {
		printf("error=connect:%s\n", strerror(errno));
		return 1;
	}
	/* warm up: caches, TLS handshake, scheduler */
	for (int i = 0; i < 500; i++) {
		memset(out, 'a' + i % 26, size);
		if (write_all(fd, out, size) != 0 ||
		    read_all(fd, in, size) != 0) {
			printf("error=warmup:%s\n", strerror(errno));
			return 1;
		}
	}
	end = now_s() + secs;
	while (n < max) {
		uint64_t t0, t1;

		memset(out, 'A' + n % 26, size);
		out[0] = (char)(n & 0xff);
		t0 = now_ns();
		if (write_all(fd, out, size) != 0 ||
		    read_all(fd, in, size) != 0) {
			printf("error=io:%s\n", strerror(errno));
			return 1;
		}
		t1 = now_ns();
		if (memcmp(in, out, size) != 0)
			errs++;
		lat[n++] = t1 - t0;
		sum += t1 - t0;
		if ((n & 63) == 0 && now_s() >= end)
			break;
	}
	close(fd);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("iters=%zu p50_us=%.2f p90_us=%.2f p99_us=%.2f avg_us=%.2f "
	    "mismatches=%d\n", n, pct_us(lat, n, 50), pct_us(lat, n, 90),
	    pct_us(lat, n, 99), (double)sum / (double)n / 1000.0, errs);
	return errs ? 1 : 0;
}

/* connrate ---------------------------------------------------------------- */

static int cr_port;
static double cr_end;
static atomic_long cr_left;
static atomic_long cr_errors;
static atomic_int cr_last_errno;

struct cr_thread {
	pthread_t th;
	uint64_t *lat;
	size_t n, cap;
};

static void *
connrate_thread(void *arg)
{
	struct cr_thread *t = arg;
	char c = 'x', r;

	while (atomic_fetch_sub(&cr_left, 1) > 0) {
		uint64_t t0 = now_ns();
		int fd = dial(cr_port), rc;

		if (fd < 0) {
			atomic_store(&cr_last_errno, errno);
			if (atomic_fetch_add(&cr_errors, 1) > 1000)
				break;
			usleep(1000);
			continue;
		}
		rc = write_all(fd, &c, 1) == 0 ? read_all(fd, &r, 1) : -1;
		if (rc != 0 || r != c) {
			atomic_store(&cr_last_errno, rc == -2 ? ECONNRESET :
			    errno);
			close(fd);
			if (atomic_fetch_add(&cr_errors, 1) > 1000)
				break;
			usleep(1000);
			continue;
		}
		if (t->n < t->cap)
			t->lat[t->n++] = now_ns() - t0;
		/* the server closes first (no TIME_WAIT on client ports) */
		while (read(fd, &r, 1) > 0)
			;
		close(fd);
		if ((t->n & 15) == 0 && now_s() >= cr_end)
			break;
	}
	return NULL;
}

static int
cmd_connrate(int argc, char **argv)
{
	int par;
	long max;
	double secs, t0, el;
	struct cr_thread *ts;
	uint64_t *all;
	size_t n = 0;

	if (argc != 4)
		return 2;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	cr_port = atoi(argv[0]);
	par = atoi(argv[1]);
	secs = atof(argv[2]);
	max = atol(argv[3]);
	if (par < 1 || max < 1)
		return 2;
	ts = calloc((size_t)par, sizeof(*ts));
	atomic_store(&cr_left, max);
	t0 = now_s();
	cr_end = t0 + secs;
	for (int i = 0; i < par; i++) {
		ts[i].cap = (size_t)max;
		ts[i].lat = calloc(ts[i].cap, sizeof(uint64_t));
		pthread_create(&ts[i].th, NULL, connrate_thread, &ts[i]);
	}
	for (int i = 0; i < par; i++)
		pthread_join(ts[i].th, NULL);
	el = now_s() - t0;
	all = calloc((size_t)max, sizeof(uint64_t));
	for (int i = 0; i < par; i++) {
		memcpy(all + n, ts[i].lat, ts[i].n * sizeof(uint64_t));
		n += ts[i].n;
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	printf("conns=%zu secs=%.3f rate=%.1f p50_us=%.1f p90_us=%.1f "
	    "p99_us=%.1f errors=%ld last_error=%s\n", n, el, (double)n / el,
	    pct_us(all, n, 50), pct_us(all, n, 90), pct_us(all, n, 99),
	    atomic_load(&cr_errors), atomic_load(&cr_errors) ?
	    strerror(atomic_load(&cr_last_errno)) : "none");
	return atomic_load(&cr_errors) ? 1 : 0;
}

/* hold -------------------------------------------------------------------- */

static int *h_ports, h_nports;
static atomic_long h_next, h_held;
static long h_want;
static atomic_int h_errno_seen;

static void *
hold_thread(void *arg)
{
	char c = 'h', r;
	struct timeval tv = { .tv_sec = 10 };

	(void)arg;
	for (;;) {
		long i = atomic_fetch_add(&h_next, 1);
		int fd;

		if (i >= h_want)
			break;
		fd = dial(h_ports[i % h_nports]);
		if (fd < 0) {
			atomic_store(&h_errno_seen, errno);
			break;
		}
		/* a path that stops accepting must not hang the holder */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (write_all(fd, &c, 1) != 0 || read_all(fd, &r, 1) != 0) {
			atomic_store(&h_errno_seen, errno ? errno : ECONNRESET);
			close(fd);
			break;
		}
		atomic_fetch_add(&h_held, 1);
		/* the fd stays open until the process ends */
	}
	return NULL;
}

static void
hold_quit(int sig)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct rlimit rl;

	(void)sig;
	/* abort the connections: leaves no TIME_WAIT on loopback ports */
	getrlimit(RLIMIT_NOFILE, &rl);
	for (int fd = 3; fd < (int)rl.rlim_cur; fd++)
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0)
			close(fd);
	_exit(0);
}

static int
cmd_hold(int argc, char **argv)
{
	char *s, *tok, *save = NULL;
	int par;
	pthread_t *th;
	char b;

	if (argc != 3)
		return 2;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	s = strdup(argv[0]);
	h_ports = calloc(strlen(s) + 1, sizeof(int));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",",
	    &save))
		h_ports[h_nports++] = atoi(tok);
	h_want = atol(argv[1]);
	par = atoi(argv[2]);
	if (h_nports < 1 || par < 1)
		return 2;
	th = calloc((size_t)par, sizeof(*th));
	signal(SIGTERM, hold_quit);
	signal(SIGINT, hold_quit);
	double t0 = now_s();
	for (int i = 0; i < par; i++)
		pthread_create(&th[i], NULL, hold_thread, NULL);
	for (int i = 0; i < par; i++)
		pthread_join(th[i], NULL);
	printf("READY held=%ld wanted=%ld secs=%.2f error=%s\n",
	    atomic_load(&h_held), h_want, now_s() - t0,
	    atomic_load(&h_errno_seen) ? strerror(atomic_load(&h_errno_seen))
	    : "none");
	fflush(stdout);
	/* hold until stdin closes or a signal ends us */
	while (read(0, &b, 1) > 0)
		;
	pause();
	return 0;
}

/* verify ------------------------------------------------------------------ */

static uint64_t
xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void
fill(uint64_t *st, char *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = xs(st);
		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

static int v_fd;
static size_t v_total;

static void *
verify_writer(void *arg)
{
	static char buf[65536];
	uint64_t st = 0x9e3779b97f4a7c15ull;
	size_t left = v_total;

	(void)arg;
	while (left > 0) {
		size_t k = left < sizeof(buf) ? left : sizeof(buf);
		fill(&st, buf, sizeof(buf));
		if (write_all(v_fd, buf, k) != 0) {
			fprintf(stderr, "verify: write: %s\n", strerror(errno));
			break;
		}
		left -= k;
	}
	return NULL;
}

static int
cmd_verify(int argc, char **argv)
{
	static char exp[65536], got[65536];
	uint64_t st = 0x9e3779b97f4a7c15ull;
	size_t off = 0;
	pthread_t th;
	double t0;
	int eof = 0;

	if (argc != 2)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	v_total = (size_t)atol(argv[1]) * 1024 * 1024;
	if ((v_fd = dial(atoi(argv[0]))) < 0) {
		printf("verify=fail error=connect:%s\n", strerror(errno));
		return 1;
	}
	t0 = now_s();
	pthread_create(&th, NULL, verify_writer, NULL);
	while (off < v_total) {
		size_t k = v_total - off < sizeof(exp) ? v_total - off :
		    sizeof(exp);
		int rc;

		fill(&st, exp, sizeof(exp));
		rc = read_all(v_fd, got, k);
		if (rc != 0) {
			printf("verify=fail error=%s at_offset=%zu\n",
			    rc == -2 ? "early EOF" : strerror(errno), off);
			return 1;
		}
		if (memcmp(exp, got, k) != 0) {
			size_t i = 0;
			while (exp[i] == got[i])
				i++;
			printf("verify=fail error=mismatch at_offset=%zu\n",
			    off + i);
			return 1;
		}
		off += k;
	}
	/* Everything came back: now half-close and expect the EOF (reported,
	 * not required: stunnel, for one, does not keep half-closed
	 * connections open). */
	pthread_join(th, NULL);
	shutdown(v_fd, SHUT_WR);
	{
		struct pollfd pfd = { .fd = v_fd, .events = POLLIN };
		char b;
		if (poll(&pfd, 1, 3000) == 1 && read(v_fd, &b, 1) == 0)
			eof = 1;
	}
	printf("verify=ok bytes=%zu secs=%.3f eof=%s\n", off, now_s() - t0,
	    eof ? "yes" : "no");
	return 0;
}

int
main(int argc, char **argv)
{
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "server") == 0 && argc >= 3)
		rc = cmd_server(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "pingpong") == 0)
		rc = cmd_pingpong(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "connrate") == 0)
		rc = cmd_connrate(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "hold") == 0)
		rc = cmd_hold(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		rc = cmd_verify(argc - 2, argv + 2);
	if (rc == 2)
		fprintf(stderr, "usage: mbench server PORT... | pingpong PORT "
		    "SIZE SECS MAX | connrate PORT PAR SECS MAX | hold "
		    "PORT[,PORT..] N PAR | verify PORT MBYTES\n");
	return rc;
}
