/* bench/obs_micro.c — what observing one connection costs helperd's
 * threads, measured in CPU time (so a machine busy with other work
 * changes it little, unlike conn/s). Linked against a build's
 * libhelperd_core.a (bench/obs_micro.sh), it runs N access log entries
 * like the relay's, one every GAP µs, into a real file, and reports:
 *   submit_ns   CPU of the submitting thread per accesslog_submit()
 *               (what a relay worker pays per connection closed),
 *               less the cost of reading the thread's CPU clock
 *   writer_ns   CPU of the rest of the process (the writer thread) per
 *               line, formatting and write() included
 *   unit_ns     CPU of one owner_unit() read of /proc/self/cgroup (what
 *               the relay worker paid per connection before the unit
 *               was read once per process on the control path)
 * usage: obs_micro PATH [N [GAP_US]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "helperd/obs/accesslog.h"
#include "helperd/local/owner.h"

static int64_t
thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
process_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 4000;
	long gap = argc > 3 ? atol(argv[3]) : 300;
	struct accesslog *a;
	char err[256], unit[256];
	int64_t t0, t1, p0, p1, sub = 0, clk = 0;
	uint64_t written, dropped;
	struct timespec start, now;

	if (argc < 2 || n < 1 || gap < 0) {
		fprintf(stderr, "usage: obs_micro PATH [N [GAP_US]]\n");
		return 2;
	}
	if ((a = accesslog_new()) == NULL ||
	    accesslog_configure(a, argv[1], 1, err, sizeof(err)) != 0) {
		fprintf(stderr, "obs_micro: %s\n", err);
		return 1;
	}
	t0 = thread_ns();
	for (long i = 0; i < n; i++)
		owner_unit(getpid(), unit, sizeof(unit));
	t1 = thread_ns();
	printf("unit_ns=%.0f ", (double)(t1 - t0) / (double)n);
	/* What reading the clock around a call costs (a syscall here),
	 * taken off submit_ns. */
	for (long i = 0; i < n; i++) {
		int64_t s0 = thread_ns();

		clk += thread_ns() - s0;
	}

	clock_gettime(CLOCK_MONOTONIC, &start);
	p0 = process_ns();
	t0 = thread_ns();
	for (long i = 0; i < n; i++) {
		struct accesslog_entry e = {
			.id = (uint64_t)i + 1, .start_ms = 1764658840123,
			.end_ms = 1764658840125, .direction = "outbound",
			.src = "client", .dst = "once", .pid = 4242, .uid = 0,
			.unit = "/", .src_node = "bench", .dst_node = "bench",
			.dst_instance = "once",
			.src_spiffe = "spiffe://0c1b0f5e-3f32-4a2b-9a0e-5b6f5e0c1d2e"
			    ".consul/ns/default/dc/dc1/svc/client",
			.dst_spiffe = "spiffe://0c1b0f5e-3f32-4a2b-9a0e-5b6f5e0c1d2e"
			    ".consul/ns/default/dc/dc1/svc/once",
			.bytes_sent = 1, .bytes_rcvd = 1, .tls = 1, .resumed = 1,
			.result = "allowed", .reason = "both sides finished",
		};
		int64_t s0 = thread_ns();

		accesslog_submit(a, &e);
		sub += thread_ns() - s0;
		if (gap > 0)
			usleep((useconds_t)gap);
	}
	accesslog_flush(a);
	t1 = thread_ns();
	p1 = process_ns();
	clock_gettime(CLOCK_MONOTONIC, &now);
	accesslog_stats(a, &written, &dropped);
	printf("submit_ns=%.0f writer_ns=%.0f lines=%llu dropped=%llu "
	    "secs=%.2f\n", (double)(sub - clk) / (double)n,
	    (double)((p1 - p0) - (t1 - t0)) / (double)n,
	    (unsigned long long)written, (unsigned long long)dropped,
	    (double)(now.tv_sec - start.tv_sec) +
	    (double)(now.tv_nsec - start.tv_nsec) / 1e9);
	accesslog_free(a);
	return 0;
}
