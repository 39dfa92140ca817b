/* The shim's route table and its parser of helperd's HELLO reply: what a
 * reply teaches, and that a malformed one changes nothing. */
#include "preload/shim.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char logged[4096];

/* shim.c's loggers, replaced (both): the lines are kept for the
 * assertions. */
void
shim_log(const char *fmt, ...)
{
	size_t n = strlen(logged);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(logged + n, sizeof(logged) - n, fmt, ap);
	va_end(ap);
	if (strlen(logged) + 1 < sizeof(logged))
		strcat(logged, "\n");
}

void shim_warn_once(const char *fmt, ...) __attribute__((alias("shim_log")));

/* shim_dns.c's served addresses (127.78.0.0/16 by default) are not part
 * of this test: no destination here is one. */
int
dns_in_range(const struct shim_dest *d)
{
	(void)d;
	return 0;
}

int
dns_lookup_addr(const struct shim_dest *d, char *svc, size_t len)
{
	(void)d;
	(void)svc;
	(void)len;
	cr_assert_fail("dns_lookup_addr called for an address out of range");
	return 0;
}

static struct shim_dest
dest(const char *ip4, uint16_t port)
{
	struct shim_dest d = { .port = port, .family = AF_INET };
	unsigned char *a = (unsigned char *)&d.addr;

	a[10] = a[11] = 0xff;
	cr_assert_eq(inet_pton(AF_INET, ip4, a + 12), 1);
	return d;
}

static int
hello(const char *text)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s", text);
	return ctl_parse_hello(line);
}

Test(hello, teaches_routes_and_policy)
{
	struct shim_dest d = dest("127.0.0.1", 9191);
	char svc[SHIM_NAME_MAX], dns[SHIM_DOMAIN_MAX];
	uint16_t port;
	int strict;

	cr_assert_eq(hello("OK port=21001 dns=consul. direct=1 "
	    "up=counting,127.0.0.1,9191 up=db,0.0.0.0,5432 inbound=strict "
	    "svc_port=9003 future=ignored"), 0);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	cr_assert_str_eq(svc, "counting");
	d = dest("127.0.0.7", 5432);            /* 0.0.0.0: any loopback */
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	cr_assert_str_eq(svc, "db");
	d = dest("127.0.0.1", 9192);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 0);
	cr_assert_eq(ctl_outport(), 21001);
	ctl_dns_domain(dns, sizeof(dns));
	cr_assert_str_eq(dns, "consul");
	cr_assert_eq(ctl_direct_on(), 1);
	ctl_inbound(&strict, &port);
	cr_assert_eq(strict, 1);
	cr_assert_eq(port, 9003);
	cr_assert_eq(ctl_have_list(), 1);
}

Test(hello, malformed_changes_nothing)
{
	struct shim_dest d = dest("127.0.0.1", 9191);
	char svc[SHIM_NAME_MAX], dns[SHIM_DOMAIN_MAX];

	cr_assert_eq(hello("OK port=21001 dns=mesh up=web,127.0.0.1,9191"), 0);
	cr_assert_eq(hello("NO port=21002"), -1);
	cr_assert_eq(hello("OK dns=other up=db,127.0.0.1,9191"), -1);
	cr_assert_eq(hello("OK port=70000 up=db,127.0.0.1,9191"), -1);
	cr_assert_eq(hello("OK port=21002 dns=bad_domain! up=db,127.0.0.1,9191"),
	    -1);
	cr_assert_eq(hello("OK port=21002 up=db-only-one-field"), -1);
	cr_assert_eq(ctl_outport(), 21001);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	cr_assert_str_eq(svc, "web");
	ctl_dns_domain(dns, sizeof(dns));
	cr_assert_str_eq(dns, "mesh");
}

Test(hello, bad_upstream_is_skipped_and_logged)
{
	struct shim_dest d = dest("127.0.0.1", 6379);
	char svc[SHIM_NAME_MAX];

	logged[0] = '\0';
	cr_assert_eq(hello("OK port=21001 up=b@d,127.0.0.1,1 "
	    "up=x,not-an-ip,2 up=y,127.0.0.1,99999 up=redis,127.0.0.1,6379"),
	    0);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	cr_assert_str_eq(svc, "redis");
	cr_assert_not_null(strstr(logged, "ignoring bad upstream \"b@d"));
	cr_assert_not_null(strstr(logged, "ignoring bad upstream \"x,"));
	cr_assert_not_null(strstr(logged, "ignoring bad upstream \"y,"));
}

Test(hello, upstream_list_is_bounded)
{
	char line[SHIM_MAX_ROUTES * 40 + 64], svc[SHIM_NAME_MAX];
	size_t n = (size_t)snprintf(line, sizeof(line), "OK port=21001");
	struct shim_dest d;

	for (int i = 0; i <= SHIM_MAX_ROUTES; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    " up=s%d,127.0.0.1,%d", i, 1000 + i);
	logged[0] = '\0';
	cr_assert_eq(ctl_parse_hello(line), 0);
	d = dest("127.0.0.1", 1000 + SHIM_MAX_ROUTES - 1);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	d = dest("127.0.0.1", 1000 + SHIM_MAX_ROUTES);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 0);
	cr_assert_not_null(strstr(logged, "ignoring the rest"));
}

Test(hello, inbound_absent_keeps_policy)
{
	uint16_t port;
	int strict;

	cr_assert_eq(hello("OK port=21001 inbound=strict"), 0);
	cr_assert_eq(hello("OK port=21001"), 0);
	ctl_inbound(&strict, &port);
	cr_assert_eq(strict, 1, "a reply without inbound= keeps the policy");
	cr_assert_eq(port, 0, "svc_port absent: unknown");
	cr_assert_eq(ctl_direct_on(), 0);
}

Test(env, mesh_upstreams_win_over_hello)
{
	struct shim_dest d = dest("127.0.0.1", 9191);
	char svc[SHIM_NAME_MAX];

	ctl_env_upstreams("counting:9191");
	cr_assert_eq(hello("OK port=21001 up=other,127.0.0.1,9191"), 0);
	cr_assert_eq(ctl_route(&d, svc, sizeof(svc)), 1);
	cr_assert_str_eq(svc, "counting", "MESH_UPSTREAMS wins, as -upstream");
}

Test(hello, congestion_control_name)
{
	char cc[SHIM_CC_MAX];

	cr_assert_eq(hello("OK port=21001 cc=cubic"), 0);
	cr_assert_eq(ctl_loopback_cc(cc, sizeof(cc)), 0);
	cr_assert_str_eq(cc, "cubic");
	cr_assert_eq(ctl_loopback_cc(cc, 3), -1, "a short buffer gets none");
	/* Bad names are ignored (not a malformed reply): none is set. */
	logged[0] = '\0';
	cr_assert_eq(hello("OK port=21001 cc=../../x"), 0);
	cr_assert_eq(ctl_loopback_cc(cc, sizeof(cc)), -1);
	cr_assert_not_null(strstr(logged, "bad cc"));
	cr_assert_eq(hello("OK port=21001 cc=averyveryverylongname"), 0);
	cr_assert_eq(ctl_loopback_cc(cc, sizeof(cc)), -1);
	/* A reply without cc= clears the last one (helperd leaves them). */
	cr_assert_eq(hello("OK port=21001 cc=reno"), 0);
	cr_assert_eq(hello("OK port=21001"), 0);
	cr_assert_eq(ctl_loopback_cc(cc, sizeof(cc)), -1);
}
