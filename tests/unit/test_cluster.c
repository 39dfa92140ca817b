/* cluster: built without a node (struct cluster_env, struct cluster_ops)
 * against a real etcd this test starts on ports it picked. An intention
 * document written to etcd by another client reaches the intent store
 * through the watch and is reported through ops->intentions_changed, on
 * the loop thread. An intention write through the store is answered on
 * the loop thread when etcd has, and with etcd stopped (SIGSTOP) the loop
 * keeps running and the write's outcome is reported unknown after the
 * wait. etcd is needed (scripts/deps.sh test): without it the
 * test fails, it is not skipped. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "conf/conf.h"
#include "helperd/cluster/cluster.h"
#include "helperd/cluster/store_etcd.h"
#include "helperd/evloop/loop.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/model/intent.h"

static char dir[] = "/tmp/test_cluster.XXXXXX";
static pid_t etcd_pid;
static char endpoint[64];

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void
etcd_up(void)
{
	char data[256], log[256], client[64], peer[64], cluster[96];
	int cport = free_port(), pport = free_port();

	cr_assert(access("/usr/bin/etcd", X_OK) == 0,
	    "etcd is not installed (scripts/deps.sh test: etcd-server)");
	snprintf(data, sizeof(data), "%s/etcd", dir);
	snprintf(log, sizeof(log), "%s/etcd.log", dir);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", cport);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", pport);
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", cport);
	etcd_pid = fork();
	cr_assert(etcd_pid >= 0);
	if (etcd_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl("/usr/bin/etcd", "etcd", "--name", "t", "--data-dir",
		    data, "--listen-client-urls", client,
		    "--advertise-client-urls", client, "--listen-peer-urls",
		    peer, "--initial-advertise-peer-urls", peer,
		    "--initial-cluster", cluster, (char *)NULL);
		_exit(127);
	}
}

static void
setup(void)
{
	cr_assert(mkdtemp(dir) != NULL);
	etcd_up();
}

static void
teardown(void)
{
	char cmd[300];

	if (etcd_pid > 0) {
		kill(etcd_pid, SIGTERM);
		waitpid(etcd_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_cluster: could not remove %s\n", dir);
}

struct seen {
	int changed;
	char why[128];
	struct loop *loop;
	int off_loop;           /* an op called from another thread */
};

static void
on_intentions(void *cookie, const char *why)
{
	struct seen *s = cookie;

	s->changed++;
	s->off_loop |= !loop_is_mine(s->loop);
	util_strlcpy(s->why, why, sizeof(s->why));
}

struct waited {
	struct loop *loop;
	int called, rc, off_loop;
	enum intent_err code;
	char why[512];
};

static void
on_settled(void *cookie, int rc, enum intent_err code, const char *why)
{
	struct waited *w = cookie;

	w->called++;
	w->rc = rc;
	w->code = code;
	w->off_loop |= !loop_is_mine(w->loop);
	util_strlcpy(w->why, why, sizeof(w->why));
}

struct ticks {
	struct loop *loop;
	struct loop_timer *t;
	int n, at_answer;
};

static void
on_tick(void *arg)
{
	struct ticks *tk = arg;

	tk->n++;
	loop_timer_add(tk->loop, tk->t, 100);
}

/* Whether every thread of pid is stopped (state T in its task's stat).
 * kill(SIGSTOP) returns before the signal reaches a running thread. */
static int
all_stopped(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int stopped = 1;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (stopped && (de = readdir(d)) != NULL) {
		char stat[256], *p;
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat",
		    (int)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue; /* the thread exited */
		n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = '\0';
		/* "tid (comm) S ...": the state follows the last ')'. */
		p = strrchr(stat, ')');
		stopped = p != NULL && p[1] == ' ' && p[2] == 'T';
	}
	closedir(d);
	return stopped;
}

static const struct cluster_ops ops = {
	.intentions_changed = on_intentions,
};

/* etcd answers a read (it is up), within 30 s. */
static void
etcd_wait(struct etcd *e)
{
	char err[ETCD_ERR_MAX];
	struct etcd_kv *kvs;
	size_t n;
	int64_t rev, until = util_now_ms_mono() + 30000;

	for (;;) {
		if (etcd_range_prefix(e, "/t/", &kvs, &n, &rev, err,
		    sizeof(err)) == 0) {
			etcd_kvs_free(kvs, n);
			return;
		}
		cr_assert_lt(util_now_ms_mono(), until, "etcd never came up: "
		    "%s", err);
		usleep(100000);
	}
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

Test(cluster, intentions_from_etcd_reach_the_store_and_the_op)
{
	static const char doc[] = "{\"Index\": 3, \"Intentions\": [{"
	    "\"ID\": \"0a2e1b8c-3d4f-4a5b-8c6d-7e8f9a0b1c2d\", "
	    "\"SourceName\": \"web\", \"DestinationName\": \"db\", "
	    "\"Action\": \"deny\", \"Precedence\": 9, "
	    "\"CreatedAt\": \"2026-12-01T10:00:00Z\", "
	    "\"UpdatedAt\": \"2026-12-01T10:00:00Z\", "
	    "\"CreateIndex\": 3, \"ModifyIndex\": 3}]}";
	char err[512], cadir[300];
	struct conf conf;
	struct loop *loop;
	struct catalog *cat;
	struct intent_db *db;
	struct ca *ca;
	struct cluster *c;
	struct etcd *e;
	struct seen s = { 0 };
	int64_t until;

	conf_defaults(&conf, 1);
	util_strlcpy(conf.node, "n1", sizeof(conf.node));
	util_strlcpy(conf.data_dir, dir, sizeof(conf.data_dir));
	conf.store.backend = CONF_STORE_ETCD;
	conf.store.endpoints[0] = strdup(endpoint);
	conf.store.n_endpoints = 1;
	util_strlcpy(conf.store.prefix, "/t", sizeof(conf.store.prefix));
	cr_assert(conf.store.endpoints[0] != NULL);

	cr_assert(etcd_new(&e, &conf.store, err, sizeof(err)) == 0, "%s",
	    err);
	etcd_wait(e);

	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	cr_assert(loop_new(&loop) == 0);
	cr_assert(catalog_new(&cat, "n1", "dc1") == 0);
	cr_assert(intent_db_open(&db, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	cr_assert(ca_open_client(&ca, cadir, err, sizeof(err)) == 0, "%s",
	    err);
	s.loop = loop;
	struct cluster_env env = {
		.conf = &conf, .loop = loop, .catalog = cat, .intents = db,
		.ca = &ca, .mesh_port_bound = 1, .ops = &ops, .cookie = &s,
	};
	cr_assert(cluster_start(&c, &env, err, sizeof(err)) == 0, "%s", err);

	/* Another node's write. */
	cr_assert(etcd_put(e, "/t/intentions", doc, 0, err,
	    sizeof(err)) == 0, "%s", err);
	until = util_now_ms_mono() + 30000;
	while (s.changed == 0 && util_now_ms_mono() < until)
		cr_assert(loop_run_once(loop, 200) >= 0);

	cr_assert_eq(s.changed, 1, "ops->intentions_changed called %d times",
	    s.changed);
	cr_assert_eq(s.off_loop, 0, "an op ran off the loop thread");
	cr_assert_str_eq(s.why, "intentions changed in etcd");
	cr_assert_eq(intent_count(db), 1);
	cr_assert_eq(intent_check(db, "web", "db", 1, NULL), 0,
	    "web => db is denied by the intention from etcd");
	cr_assert_eq(intent_check(db, "web", "other", 1, NULL), 1);

	/* An intention write through the intent store: the saver takes it
	 * and returns at once (INTENT_EPENDING), the answer comes to the
	 * waiter on the loop thread, applied. */
	struct intent in = { .allow = 1 };
	enum intent_err code = 0;
	struct waited w = { .loop = loop };
	char id[37], why[256];

	util_strlcpy(in.src, "api", sizeof(in.src));
	util_strlcpy(in.dst, "db", sizeof(in.dst));
	cr_assert_eq(intent_create(db, &in, 0, id, &code, why, sizeof(why)),
	    -1);
	cr_assert_eq(code, INTENT_EPENDING, "code %d: %s", code, why);
	cr_assert(intent_db_busy(db));
	cr_assert_eq(intent_db_wait(db, on_settled, &w), 0);
	cr_assert_eq(intent_count(db), 1, "not applied before etcd says");
	until = util_now_ms_mono() + 30000;
	while (!w.called && util_now_ms_mono() < until)
		cr_assert(loop_run_once(loop, 200) >= 0);
	cr_assert(w.called, "the write was never answered");
	cr_assert_eq(w.rc, 0, "write refused: %s", w.why);
	cr_assert_eq(w.off_loop, 0);
	cr_assert(!intent_db_busy(db));
	cr_assert_eq(intent_count(db), 2);
	cr_assert_eq(intent_check(db, "api", "db", 0, NULL), 1);

	/* etcd stopped: the loop keeps running (its timer fires) while the
	 * write waits; after SAVE_WAIT_MS the outcome is unknown, not an
	 * error (etcd may apply it when it runs again). */
	struct loop_timer t;
	struct ticks tk = { .loop = loop };

	loop_timer_init(&t, on_tick, &tk);
	tk.t = &t;
	w = (struct waited){ .loop = loop };
	util_strlcpy(in.src, "web", sizeof(in.src));
	util_strlcpy(in.dst, "cache", sizeof(in.dst));
	cr_assert(kill(etcd_pid, SIGSTOP) == 0);
	until = util_now_ms_mono() + 10000;
	while (!all_stopped(etcd_pid) && util_now_ms_mono() < until)
		usleep(10000);
	cr_assert(all_stopped(etcd_pid), "etcd's threads never stopped");
	cr_assert_eq(intent_create(db, &in, 0, id, &code, why, sizeof(why)),
	    -1);
	cr_assert_eq(code, INTENT_EPENDING, "code %d: %s", code, why);
	cr_assert_eq(intent_db_wait(db, on_settled, &w), 0);
	cr_assert(loop_timer_add(loop, &t, 100) == 0);
	until = util_now_ms_mono() + 30000;
	while (!w.called && util_now_ms_mono() < until)
		cr_assert(loop_run_once(loop, 200) >= 0);
	tk.at_answer = tk.n;
	loop_timer_del(loop, &t);
	kill(etcd_pid, SIGCONT);
	cr_assert(w.called, "the write was never answered");
	cr_assert_gt(tk.at_answer, 10, "the loop ran %d timer rounds while "
	    "the write waited for a stopped etcd", tk.at_answer);
	cr_assert_eq(w.rc, -1);
	cr_assert_eq(w.code, INTENT_EUNKNOWN, "code %d: %s", w.code, w.why);
	cr_assert(strstr(w.why, "may have been applied") != NULL, "%s",
	    w.why);

	cluster_stop(c);
	etcd_free(e);
	ca_free(ca);
	intent_db_free(db);
	catalog_free(cat);
	loop_free(loop);
	conf_free(&conf);
}
