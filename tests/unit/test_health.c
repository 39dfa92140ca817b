/* health without a node: the module made from a fake env (a loop, a
 * catalog, a config) checks a real listening socket over TCP and reports
 * each change of the service's status through its op. Real time, short
 * intervals: what is checked is the status and the reports, never speed. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "conf/conf.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health.h"
#include "helperd/model/catalog.h"

struct seen {
	struct health *hl;
	const struct conf_service *svc;
	int calls;
	enum catalog_status last;       /* the status at the last report */
};

static void
on_changed(void *cookie)
{
	struct seen *s = cookie;
	const char *out;

	s->calls++;
	s->last = health_status(s->hl, s->svc, &out);
}

/* A TCP socket listening on 127.0.0.1, its port in *port. */
static int
listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

Test(health, tcp_check_reports_each_change_through_the_op)
{
	static const struct health_ops ops = { .services_changed = on_changed };
	struct conf conf;
	struct conf_service svc;
	struct loop *loop;
	struct catalog *cat;
	struct health_env env;
	struct seen seen = { .last = -1 };
	const char *out;
	int port, lfd = listener(&port);
	int64_t end;
	struct catalog_health_ops gops;
	uint64_t gen;

	conf_defaults(&conf, 1);
	util_strlcpy(conf.node, "n1", sizeof(conf.node));
	memset(&svc, 0, sizeof(svc));
	util_strlcpy(svc.id, "web", sizeof(svc.id));
	util_strlcpy(svc.name, "web", sizeof(svc.name));
	util_strlcpy(svc.address, "127.0.0.1", sizeof(svc.address));
	svc.port = port;
	svc.n_checks = 1;
	svc.checks[0].type = CONF_CHECK_TCP;
	snprintf(svc.checks[0].target, sizeof(svc.checks[0].target),
	    "127.0.0.1:%d", port);
	svc.checks[0].interval_ms = 200;
	svc.checks[0].timeout_ms = 100;
	svc.checks[0].failures_before_critical = 1;

	cr_assert_eq(loop_new(&loop), 0);
	cr_assert_eq(catalog_new(&cat, "n1", "dc1"), 0);
	cr_assert_eq(catalog_set_local(cat, &svc, 1, NULL, 0), 0);
	seen.svc = catalog_local(cat, "web");
	cr_assert_not_null(seen.svc);
	env = (struct health_env){ .conf = &conf, .loop = loop,
		.catalog = cat, .ops = &ops, .cookie = &seen };
	cr_assert_eq(health_new(&seen.hl, &env), 0);

	/* New checks run at once and are waited for: the service listens,
	 * so it passes when health_sync returns, reported once. */
	health_sync(seen.hl);
	cr_assert_eq(health_status(seen.hl, seen.svc, &out), CATALOG_PASSING,
	    "status: %s", out);
	cr_assert_eq(seen.calls, 1);
	cr_assert_eq(seen.last, CATALOG_PASSING);

	/* Runs that pass again change nothing the relay's dial table reads:
	 * the generation stays (each run is a connection to lfd). */
	gops = health_catalog_ops(seen.hl);
	gen = gops.generation(gops.arg);
	while (accept4(lfd, NULL, NULL, SOCK_NONBLOCK) >= 0)
		;
	end = util_now_ms_mono() + 20000;
	for (int runs = 0; runs < 3 && util_now_ms_mono() < end; ) {
		int fd;

		loop_run_once(loop, 100);
		while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
			close(fd);
			runs++;
		}
	}
	cr_assert_eq(health_status(seen.hl, seen.svc, &out), CATALOG_PASSING);
	cr_assert_eq(gops.generation(gops.arg), gen, "passing again bumped "
	    "the generation (a dial-table rebuild per check run)");
	cr_assert_eq(seen.calls, 1);

	/* The service goes: its next run is refused, critical, reported. */
	close(lfd);
	end = util_now_ms_mono() + 20000;
	while (seen.calls < 2 && util_now_ms_mono() < end)
		loop_run_once(loop, 100);
	cr_assert_eq(seen.calls, 2, "reports: %d", seen.calls);
	cr_assert_eq(seen.last, CATALOG_CRITICAL);
	cr_assert_eq(health_status(seen.hl, seen.svc, &out),
	    CATALOG_CRITICAL);
	cr_assert_not_null(strstr(out, "connect"), "output: %s", out);
	cr_assert_neq(gops.generation(gops.arg), gen, "a new status must "
	    "change the generation");

	health_free(seen.hl);
	catalog_free(cat);
	loop_free(loop);
	conf_free(&conf);
}
