/* Unit tests of helperd/relay/policy.c: the snapshot answers what the live
 * state answers (intentions against intent_check, instances against
 * catalog_instances, leaves and trust against the CA), keeps its leaves
 * alive after the CA let go of them, and concurrent readers of
 * published snapshots always see one consistent generation. */
#include <criterion/criterion.h>

#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/model/intent.h"
#include "helperd/relay/policy.h"

static struct intent_db *
db_mem(void)
{
	struct intent_db *db;
	char err[256] = "";

	cr_assert_eq(intent_db_open(&db, NULL, err, sizeof(err)), 0, "%s",
	    err);
	return db;
}

static void
mk(struct intent_db *db, const char *src, const char *dst, int allow)
{
	struct intent in;
	enum intent_err code = 0;
	char why[256] = "", id[37];

	memset(&in, 0, sizeof(in));
	util_strlcpy(in.src, src, sizeof(in.src));
	util_strlcpy(in.dst, dst, sizeof(in.dst));
	in.allow = allow;
	cr_assert_eq(intent_create(db, &in, 0, id, &code, why, sizeof(why)), 0,
	    "create %s => %s: %s", src, dst, why);
}

static const char *const names[] = { "web", "api", "db", "cache", "*" };
#define N_NAMES (sizeof(names) / sizeof(names[0]))

/* Every (src, dst) of names, both defaults: the snapshot decides as
 * intent_check does, naming the same intention. */
static void
same_as_db(const struct intent_db *db)
{
	struct policy_part *pt = policy_intents_build(db);

	cr_assert_not_null(pt);
	for (int def = 0; def < 2; def++) {
		struct policy *p = policy_new(1, def, policy_part_ref(pt), NULL,
		    NULL);

		cr_assert_not_null(p);
		for (size_t i = 0; i + 1 < N_NAMES; i++)
			for (size_t j = 0; j + 1 < N_NAMES; j++) {
				const struct intent *m = NULL;
				const struct policy_intent *pm = NULL;
				int a = intent_check(db, names[i], names[j],
				    def, &m);
				int b = policy_check(p, names[i], names[j],
				    &pm);

				cr_assert_eq(a, b, "%s => %s default %d: db %d, "
				    "snapshot %d", names[i], names[j], def, a,
				    b);
				cr_assert_eq(m == NULL, pm == NULL);
				if (m != NULL)
					cr_assert_str_eq(m->id, pm->id);
			}
		policy_put(p);
	}
	policy_part_put(pt);
}

Test(policy, intentions_fixed)
{
	struct intent_db *db = db_mem();
	char why[256];
	struct policy *p;

	same_as_db(db);                 /* empty: the default decides */
	mk(db, "web", "db", 0);
	mk(db, "*", "db", 1);
	mk(db, "web", "*", 1);
	mk(db, "*", "*", 0);
	mk(db, "api", "cache", 1);
	same_as_db(db);
	p = policy_new(1, 1, policy_intents_build(db), NULL, NULL);
	cr_assert_eq(policy_allows(p, "web", "db", why, sizeof(why)), 0);
	cr_assert(strstr(why, "denied by intention ") != NULL, "%s", why);
	cr_assert(strstr(why, "(web => db, deny)") != NULL, "%s", why);
	cr_assert_eq(policy_allows(p, "cache", "api", why, sizeof(why)), 0);
	cr_assert(strstr(why, "(* => *, deny)") != NULL, "%s", why);
	policy_put(p);
	p = policy_new(1, 0, NULL, NULL, NULL);
	cr_assert_eq(policy_allows(p, "a", "b", why, sizeof(why)), 0);
	cr_assert_str_eq(why, "denied by default_intention = deny");
	policy_put(p);
	/* No snapshot at all: nothing is allowed. */
	cr_assert_eq(policy_check(NULL, "a", "b", NULL), 0);
	intent_db_free(db);
}

Test(policy, intentions_random)
{
	unsigned seed = 42;

	for (int round = 0; round < 200; round++) {
		struct intent_db *db = db_mem();
		int n = (int)(rand_r(&seed) % 12);

		for (int k = 0; k < n; k++) {
			const char *s = names[rand_r(&seed) % N_NAMES];
			const char *d = names[rand_r(&seed) % N_NAMES];

			if (intent_find_exact(db, s, d) == NULL)
				mk(db, s, d, (int)(rand_r(&seed) % 2));
		}
		same_as_db(db);
		intent_db_free(db);
	}
}

/* Health for the catalog: instances whose ID ends in "-sick" fail. */
static enum catalog_status
sick_status(void *arg, const struct conf_service *s, const char **output)
{
	(void)arg;
	*output = "";
	return strstr(s->id, "-sick") != NULL ? CATALOG_CRITICAL :
	    CATALOG_PASSING;
}

static void
svc(struct conf_service *s, const char *name, const char *id, int port,
    int connect)
{
	memset(s, 0, sizeof(*s));
	util_strlcpy(s->name, name, sizeof(s->name));
	util_strlcpy(s->id, id, sizeof(s->id));
	util_strlcpy(s->address, "127.0.0.1", sizeof(s->address));
	s->port = port;
	s->connect = connect;
}

static void
remote(struct catalog *c, const char *key, const char *node,
    const char *service, const char *status)
{
	char v[512], why[256] = "";

	snprintf(v, sizeof(v), "{\"Node\":\"%s\",\"Address\":\"10.0.0.%zu\","
	    "\"MeshPort\":21000,\"Service\":\"%s\",\"ID\":\"%s-%s\","
	    "\"Port\":8080,\"Status\":\"%s\"}", node, strlen(node), service,
	    service, node, status);
	cr_assert_eq(catalog_remote_put(c, key, v, strlen(v), why,
	    sizeof(why)), 0, "%s", why);
}

static void
same_instances(const struct catalog *c, const struct policy *p,
    const char *name)
{
	struct catalog_instance in[POLICY_INST_MAX];

	for (int all = 0; all < 2; all++) {
		const struct policy_inst *v = NULL;
		size_t n = all ? catalog_instances_all(c, name, in,
		    POLICY_INST_MAX) : catalog_instances(c, name, in,
		    POLICY_INST_MAX);
		size_t k = policy_instances(p, name, all, &v);

		cr_assert_eq(n, k, "%s (all %d): catalog %zu, snapshot %zu",
		    name, all, n, k);
		for (size_t i = 0; i < n; i++) {
			cr_assert_str_eq(v[i].node, in[i].node);
			cr_assert_str_eq(v[i].address, in[i].address);
			cr_assert_eq(v[i].mesh_port, in[i].mesh_port);
			cr_assert_str_eq(v[i].id, in[i].svc->id);
			cr_assert_str_eq(v[i].svc_address, in[i].svc->address);
			cr_assert_eq(v[i].svc_port, in[i].svc->port);
			cr_assert_eq(v[i].local, in[i].local);
		}
	}
}

Test(policy, dial_table)
{
	struct catalog *c;
	struct conf_service loc[4];
	struct catalog_health_ops ops = { .status = sick_status };
	struct policy *p;
	uint64_t g0;

	cr_assert_eq(catalog_new(&c, "n1", "dc1"), 0);
	catalog_set_node(c, "192.0.2.1", 21000);
	catalog_set_health(c, &ops);
	svc(&loc[0], "web", "web", 8080, 1);
	svc(&loc[1], "api", "api-1", 9000, 1);
	svc(&loc[2], "api", "api-2-sick", 9001, 1);
	svc(&loc[3], "plain", "plain", 0, 0);
	cr_assert_eq(catalog_set_local(c, loc, 4, NULL, 0), 0);
	remote(c, "k1", "n2", "api", "passing");
	remote(c, "k2", "n3", "api", "critical");
	remote(c, "k3", "n4", "db", "passing");
	g0 = catalog_generation(c);
	p = policy_new(1, 1, NULL, policy_dial_build(c), NULL);
	cr_assert_not_null(p);
	for (size_t i = 0; i + 1 < N_NAMES; i++)
		same_instances(c, p, names[i]);
	same_instances(c, p, "plain");
	same_instances(c, p, "nothing");
	cr_assert_eq(policy_local_served(p, "web"), 1);
	cr_assert_eq(policy_local_served(p, "api"), 1);
	cr_assert_eq(policy_local_served(p, "plain"), 0, "no port, no "
	    "connect");
	cr_assert_eq(policy_local_served(p, "db"), 0, "remote only");
	/* The catalog changes after: the snapshot does not, and the
	 * catalog's generation says it changed. */
	cr_assert_eq(catalog_remote_del(c, "k1"), 1);
	cr_assert_neq(catalog_generation(c), g0);
	{
		const struct policy_inst *v;

		cr_assert_eq(policy_instances(p, "api", 0, &v), 2,
		    "api-1 and n2's");
	}
	policy_put(p);
	catalog_free(c);
}

static char dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(path);
}

Test(policy, ident_keeps_leaves)
{
	struct ca *ca = NULL;
	struct ca_leaf *leaf;
	const char *svcs[1] = { "web" };
	struct policy *p;
	char err[512] = "", path[128];
	uint64_t g;

	snprintf(dir, sizeof(dir), "/tmp/test_policy.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ca", dir);
	cr_assert_eq(ca_open(&ca, path, 10L * 365 * 86400, err, sizeof(err)),
	    0, "%s", err);
	leaf = ca_leaf_get(ca, "dc1", "web", 3600, err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	g = ca_generation(ca);
	p = policy_new(1, 1, NULL, NULL, policy_ident_build(ca, svcs, &leaf,
	    1, 7));
	cr_assert_not_null(p);
	cr_assert_eq(policy_leaf(p, "web"), leaf);
	cr_assert_null(policy_leaf(p, "api"));
	cr_assert_str_eq(policy_trust_domain(p), ca_trust_domain(ca));
	cr_assert_not_null(policy_trust(p));
	cr_assert_eq(policy_trust_gen(p), 7);
	/* The snapshot's trust is its own copy: a rotation changes the
	 * CA's generation, not the snapshot. */
	cr_assert_eq(ca_rotate(ca, err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(ca_generation(ca), g);
	/* Everyone else lets go of the leaf: the snapshot still holds it. */
	ca_leaf_unref(leaf);
	ca_free(ca);
	cr_assert_eq(atomic_load(&leaf->refs), 1, "only the snapshot's");
	cr_assert_str_eq(policy_leaf(p, "web")->service, "web");
	policy_put(p);                  /* frees the leaf (ASan: no leak) */
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Readers of published snapshots: generation g has default allow
 * (g & 1), intention x => y allowing (g & 1) and, in its dial table,
 * service "s<g % 3>" only. A reader sees those three agree. */
#define P_READERS 3
#define P_GENS    3000

struct preader {
	struct policy_cell *pc;
	unsigned slot;
	atomic_int *stop, *started;
	unsigned long reads, bad, back;
};

static void *
preader_main(void *arg)
{
	struct preader *rd = arg;
	uint64_t last = 0;

	while (!atomic_load(rd->stop)) {
		const struct policy *p = policy_get(rd->pc, rd->slot);
		const struct policy_inst *v;
		char name[8];
		uint64_t g;

		if (p == NULL)
			continue;
		g = policy_gen(p);
		if (rd->reads++ == 0)
			atomic_fetch_add(rd->started, 1);
		if (g < last)
			rd->back++;
		last = g;
		snprintf(name, sizeof(name), "s%u", (unsigned)(g % 3));
		if (policy_check(p, "x", "y", NULL) != (int)(g & 1) ||
		    policy_check(p, "q", "r", NULL) != (int)(g & 1) ||
		    policy_instances(p, name, 1, &v) != 1 ||
		    !policy_local_served(p, name))
			rd->bad++;
		policy_put(p);
	}
	return NULL;
}

Test(policy, cell_concurrent, .timeout = 120)
{
	struct policy_cell pc;
	struct preader rd[P_READERS];
	pthread_t th[P_READERS];
	struct policy_part *in[2];
	atomic_int stop, started;
	struct catalog *cats[3];
	struct conf_service loc[3];
	struct policy_part *dial[3];

	for (int a = 0; a < 2; a++) {
		struct intent_db *db = db_mem();

		mk(db, "x", "y", a);
		in[a] = policy_intents_build(db);
		cr_assert_not_null(in[a]);
		intent_db_free(db);
	}
	for (int k = 0; k < 3; k++) {
		char name[8];

		snprintf(name, sizeof(name), "s%d", k);
		svc(&loc[k], name, name, 8000 + k, 1);
		cr_assert_eq(catalog_new(&cats[k], "n1", "dc1"), 0);
		cr_assert_eq(catalog_set_local(cats[k], &loc[k], 1, NULL, 0),
		    0);
		dial[k] = policy_dial_build(cats[k]);
		cr_assert_not_null(dial[k]);
		catalog_free(cats[k]);
	}
	atomic_init(&stop, 0);
	atomic_init(&started, 0);
	policy_cell_init(&pc, NULL, NULL);
	policy_publish(&pc, policy_new(2, 0, policy_part_ref(in[0]),
	    policy_part_ref(dial[2]), NULL));
	for (unsigned i = 0; i < P_READERS; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].pc = &pc;
		rd[i].slot = i;
		rd[i].stop = &stop;
		rd[i].started = &started;
		cr_assert_eq(pthread_create(&th[i], NULL, preader_main,
		    &rd[i]), 0);
	}
	/* Every reader reads while the writer publishes. */
	while (atomic_load(&started) < P_READERS)
		sched_yield();
	for (uint64_t g = 3; g <= P_GENS; g++)
		policy_publish(&pc, policy_new(g, (int)(g & 1),
		    policy_part_ref(in[g & 1]), policy_part_ref(dial[g % 3]),
		    NULL));
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < P_READERS; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	cr_assert_eq(policy_gen(policy_current(&pc)), P_GENS);
	cr_assert_eq(policy_cell_gen(&pc), P_GENS - 2 + 1, "publishes");
	policy_cell_fini(&pc);
	for (int a = 0; a < 2; a++) {
		cr_assert_eq(atomic_load(&((struct snap_obj *)in[a])->refs), 1,
		    "every snapshot dropped its reference");
		policy_part_put(in[a]);
	}
	for (int k = 0; k < 3; k++)
		policy_part_put(dial[k]);
	for (unsigned i = 0; i < P_READERS; i++) {
		cr_assert_gt(rd[i].reads, 0);
		cr_assert_eq(rd[i].bad, 0, "reader %u: %lu inconsistent "
		    "snapshots", i, rd[i].bad);
		cr_assert_eq(rd[i].back, 0);
	}
}
