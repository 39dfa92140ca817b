/* relay: created without a node (a fake env and ops, a real loop, real
 * workers and a real socket). An outbound connection to a service whose
 * instance needs mTLS, from a service the policy snapshot has no leaf
 * for, must not fail: the relay asks its creator for the leaf
 * (relay_ops.leaf, on the creator's loop thread) and the connection
 * waits. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "conf/conf.h"
#include "helperd/evloop/loop.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/relay/policy.h"
#include "helperd/relay/relay.h"

struct fake {
	struct loop *loop;
	int calls;
	int off_loop;                   /* an op ran on another thread */
	char service[64];
};

static struct ca_leaf *
fake_leaf(void *cookie, const char *service, char *err, size_t errlen)
{
	struct fake *f = cookie;

	if (!loop_is_mine(f->loop))
		f->off_loop = 1;
	f->calls++;
	util_strlcpy(f->service, service, sizeof(f->service));
	snprintf(err, errlen, "the test has none");
	return NULL;
}

static void
no_refresh(void *arg)
{
	(void)arg;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *fw)
{
	(void)st; (void)flag; (void)fw;
	return remove(path);
}

/* A connected loopback TCP pair: *app (the application's end) and the
 * accepted end (returned, with its peer address in *ss). */
static int
tcp_pair(int *app, struct sockaddr_storage *ss)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int lfd, fd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	*app = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(*app, 0);
	cr_assert_eq(connect(*app, (struct sockaddr *)&a, sizeof(a)), 0);
	len = sizeof(*ss);
	fd = accept4(lfd, (struct sockaddr *)ss, &len, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	close(lfd);
	return fd;
}

Test(relay, missing_leaf_asks_the_creator)
{
	static const struct relay_ops ops = { .leaf = fake_leaf };
	struct fake f = { 0 };
	struct conf conf;
	struct ca *ca = NULL;
	struct catalog *cat;
	struct policy_cell pc;
	struct relay *r;
	struct relay_env env;
	struct sockaddr_storage ss;
	char dir[64], path[128], err[512] = "", v[512], why[256] = "", b;
	int app, fd;

	conf_defaults(&conf, 0);
	util_strlcpy(conf.node, "n1", sizeof(conf.node));
	util_strlcpy(conf.datacenter, "dc1", sizeof(conf.datacenter));
	conf.connect_timeout_ms = 60000;    /* the wait outlives the test */
	snprintf(dir, sizeof(dir), "/tmp/test_relay.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ca", dir);
	cr_assert_eq(ca_open(&ca, path, 10L * 365 * 86400, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(loop_new(&f.loop), 0);

	/* The snapshot: db runs on another node (so mTLS), no leaves. */
	cr_assert_eq(catalog_new(&cat, "n1", "dc1"), 0);
	catalog_set_node(cat, "127.0.0.1", 1);
	snprintf(v, sizeof(v), "{\"Node\":\"n2\",\"Address\":\"192.0.2.2\","
	    "\"MeshPort\":21000,\"Service\":\"db\",\"ID\":\"db-n2\","
	    "\"Port\":5432,\"Status\":\"passing\"}");
	cr_assert_eq(catalog_remote_put(cat, "k1", v, strlen(v), why,
	    sizeof(why)), 0, "%s", why);
	policy_cell_init(&pc, no_refresh, NULL);
	policy_publish(&pc, policy_new(1, 1, NULL, policy_dial_build(cat),
	    NULL));

	env = (struct relay_env){ .conf = &conf, .loop = f.loop,
	    .policy = &pc, .ca = &ca, .alog = NULL, .ops = &ops,
	    .cookie = &f };
	cr_assert_eq(relay_new(&r, &env, 1), 0);

	fd = tcp_pair(&app, &ss);
	cr_assert_eq(relay_outbound_hand(r, fd, &ss, "web", "db", getuid()),
	    0);
	/* The worker finds no leaf for web and asks the main loop. */
	for (int i = 0; i < 100 && f.calls == 0; i++)
		cr_assert_eq(loop_run_once(f.loop, 100), 0);
	cr_assert_gt(f.calls, 0, "the leaf op was never called");
	cr_assert_str_eq(f.service, "web");
	cr_assert_eq(f.off_loop, 0, "the op ran off the creator's loop");
	/* And the connection waits (not refused, not reset). */
	cr_assert_eq(relay_count(r), 1);
	cr_assert_eq(recv(app, &b, 1, MSG_DONTWAIT), -1);
	cr_assert_eq(errno, EAGAIN, "%s", strerror(errno));

	relay_free(r);
	close(app);
	policy_cell_fini(&pc);
	catalog_free(cat);
	ca_free(ca);
	loop_free(f.loop);
	conf_free(&conf);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
