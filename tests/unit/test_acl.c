/* Unit tests of helperd/acl*.c: the rules language (HCL and JSON, errors
 * naming what is wrong, precedence), the grants of tokens and uids, the
 * identity claims, and the store across a reopen. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helperd/identity/acl.h"
#include "helperd/model/catalog.h"

static struct acl_rules *
rules(const char *text)
{
	struct acl_rules *r = NULL;
	char why[256] = "";

	cr_assert_eq(acl_rules_parse(text, &r, why, sizeof(why)), 0,
	    "%s: %s", text, why);
	return r;
}

static void
rules_bad(const char *text, const char *want)
{
	struct acl_rules *r = NULL;
	char why[256] = "";

	cr_assert_eq(acl_rules_parse(text, &r, why, sizeof(why)), -1, "%s",
	    text);
	cr_assert(strstr(why, want) != NULL, "%s: got \"%s\", want \"%s\"",
	    text, why, want);
}

Test(rules, hcl_and_json_say_the_same)
{
	const char *hcl = "# ops\nservice \"web\" { policy = \"write\"\n"
	    "  intentions = \"write\" }\nservice_prefix \"\" { policy = "
	    "\"read\" }\noperator = \"write\"\n";
	const char *js = "{\"service\": {\"web\": {\"policy\": \"write\", "
	    "\"intentions\": \"write\"}}, \"service_prefix\": {\"\": "
	    "{\"policy\": \"read\"}}, \"operator\": \"write\"}";
	struct acl_rules *a = rules(hcl), *b = rules(js);

	for (int i = 0; i < 2; i++) {
		struct acl_rules *r = i ? b : a;

		cr_assert_eq(acl_rules_service(r, "web", 0), ACL_WRITE);
		cr_assert_eq(acl_rules_service(r, "web", 1), ACL_WRITE);
		cr_assert_eq(acl_rules_service(r, "db", 0), ACL_READ);
		cr_assert_eq(acl_rules_service(r, "db", 1), ACL_UNSET);
		cr_assert_eq(acl_rules_operator(r), ACL_WRITE);
		cr_assert_eq(acl_rules_acl(r), ACL_UNSET);
	}
	acl_rules_free(a);
	acl_rules_free(b);
}

Test(rules, exact_beats_prefix_and_deny_wins_a_tie)
{
	struct acl_rules *r = rules("service_prefix \"we\" { policy = "
	    "\"write\" }\nservice_prefix \"w\" { policy = \"deny\" }\n"
	    "service \"west\" { policy = \"deny\" }");

	cr_assert_eq(acl_rules_service(r, "web", 0), ACL_WRITE);
	cr_assert_eq(acl_rules_service(r, "west", 0), ACL_DENY);
	cr_assert_eq(acl_rules_service(r, "wx", 0), ACL_DENY);
	cr_assert_eq(acl_rules_service(r, "db", 0), ACL_UNSET);
	acl_rules_free(r);
}

Test(rules, errors_name_what_is_wrong)
{
	rules_bad("key \"x\" { policy = \"write\" }", "unknown rule \"key\"");
	rules_bad("agent_prefix = \"write\"", "unknown rule");
	rules_bad("service \"web\" { policy = \"admin\" }", "expected \"read\"");
	rules_bad("service \"web\" { policy = \"write\" ", "syntax error");
	rules_bad("service \"we b\" { policy = \"write\" }", "not a service name");
	rules_bad("service \"web\" { weight = \"write\" }", "unknown field");
	rules_bad("acl = \"read\"\n\nservice {", "line 3");
	rules_bad("{\"service\": {\"web\": \"write\"}}", "expected an object");
	rules_bad("{\"key\": {}}", "unknown rule");
	rules_bad("{bad json", "malformed JSON");
}

static char dir[] = "/tmp/test_acl.XXXXXX";

static struct acl *
store(void)
{
	struct acl *a;
	char err[256] = "";

	cr_assert_eq(acl_open(&a, dir, 1, "", err, sizeof(err)), 0, "%s", err);
	return a;
}

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(grants, .init = setup, .fini = teardown);

Test(grants, management_token_file_and_grants)
{
	struct acl *a = store();
	char path[256], secret[64] = "";
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/management.token", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_not_null(f = fopen(path, "r"));
	cr_assert_not_null(fgets(secret, sizeof(secret), f));
	fclose(f);
	secret[strcspn(secret, "\n")] = '\0';

	struct acl_caller mgmt = { .token = acl_token_by_secret(a, secret),
	    .uid = ACL_NOUID, .local = 1 };
	struct acl_caller anon = { .uid = ACL_NOUID, .local = 1 };
	struct acl_caller root = { .uid = 0, .local = 1 };
	struct acl_caller nob = { .uid = 65534, .local = 1 };
	struct conf_service own = { .name = "own", .user = "nobody",
	    .uid = 65534 }, db = { .name = "db" };

	cr_assert_not_null(mgmt.token);
	cr_assert(acl_is_management(a, &mgmt));
	cr_assert(acl_is_management(a, &root));
	cr_assert(!acl_is_management(a, &anon));
	cr_assert(!acl_operator_write(a, &anon));
	cr_assert(!acl_intention_write(a, &anon, "db"));
	cr_assert(acl_leaf(a, &nob, "own", &own));
	cr_assert(!acl_leaf(a, &nob, "db", &db), "no user: not anyone's");
	cr_assert(!acl_leaf(a, &anon, "own", &own), "no uid over TCP");
	cr_assert(acl_leaf(a, &mgmt, "db", &db));
	acl_free(a);
}

Test(grants, tokens_policies_and_a_reopen)
{
	struct acl *a = store();
	char why[256] = "", secret[64];
	unsigned st;
	json_t *p, *t, *body;

	body = json_pack("{s:s, s:s}", "Name", "pay-w", "Rules",
	    "service \"pay\" { policy = \"write\" intentions = \"write\" }");
	p = acl_policy_create(a, body, &st, why, sizeof(why));
	json_decref(body);
	cr_assert_not_null(p, "%s", why);
	json_decref(p);
	body = json_pack("{s:[{s:s}], s:[{s:s}]}", "Policies", "Name", "pay-w",
	    "ServiceIdentities", "ServiceName", "web");
	t = acl_token_create(a, body, &st, why, sizeof(why));
	json_decref(body);
	cr_assert_not_null(t, "%s", why);
	snprintf(secret, sizeof(secret), "%s",
	    json_string_value(json_object_get(t, "SecretID")));
	json_decref(t);
	acl_free(a);

	a = store();    /* what was saved loads again */
	struct acl_caller c = { .token = acl_token_by_secret(a, secret),
	    .uid = ACL_NOUID };

	cr_assert_not_null(c.token);
	cr_assert(acl_service_write(a, &c, "pay", NULL));
	cr_assert(acl_service_write(a, &c, "web", NULL), "service identity");
	cr_assert(!acl_service_write(a, &c, "db", NULL));
	cr_assert(acl_intention_write(a, &c, "pay"));
	cr_assert(!acl_intention_write(a, &c, "web"));
	cr_assert(!acl_intention_write(a, &c, "*"));
	cr_assert(!acl_operator_write(a, &c));
	cr_assert(!acl_acl_write(a, &c));
	/* Deleting the policy: the token loses it, the store still loads. */
	cr_assert_eq(acl_policy_delete(a, "pay-w", &st, why, sizeof(why)), 0,
	    "%s", why);
	acl_free(a);
	a = store();
	c.token = acl_token_by_secret(a, secret);
	cr_assert_not_null(c.token);
	cr_assert(!acl_service_write(a, &c, "pay", NULL));
	cr_assert(acl_service_write(a, &c, "web", NULL));
	cr_assert_null(acl_token_by_secret(a, "00000000-0000-4000-8000-"
	    "000000000000"));
	acl_free(a);
}

Test(grants, claims)
{
	struct acl *a = store();
	struct conf_service db = { .name = "db", .user = "daemon", .uid = 1 };
	struct conf_service web = { .name = "web" };
	char why[256];

	cr_assert_eq(acl_claim(a, 1, NULL, "db", &db, NULL, why,
	    sizeof(why)), 0);
	cr_assert_eq(acl_claim(a, 0, NULL, "db", &db, NULL, why,
	    sizeof(why)), 0);
	cr_assert_eq(acl_claim(a, 65534, NULL, "db", &db, NULL, why,
	    sizeof(why)), -1);
	cr_assert_eq(acl_claim(a, 65534, NULL, "web", &web, NULL, why,
	    sizeof(why)), 0);
	/* defined on another node only */
	cr_assert_eq(acl_claim(a, 65534, NULL, "api", NULL, "", why,
	    sizeof(why)), 0);
	cr_assert_eq(acl_claim(a, 65534, NULL, "api", NULL, "root", why,
	    sizeof(why)), -1);
	cr_assert(strstr(why, "cluster catalog") != NULL, "%s", why);
	cr_assert_eq(acl_claim(a, 0, NULL, "api", NULL, "daemon", why,
	    sizeof(why)), 0);
	/* defined nowhere */
	cr_assert_eq(acl_claim(a, 65534, NULL, "ghost", NULL, NULL, why,
	    sizeof(why)), -1);
	cr_assert_eq(acl_claim(a, 65534, "not-a-token", "ghost", NULL, NULL,
	    why, sizeof(why)), -1);
	cr_assert_eq(acl_claim(a, 0, NULL, "ghost", NULL, NULL, why,
	    sizeof(why)), 0);
	acl_free(a);
}

Test(catalog, remote_user_is_carried)
{
	struct catalog *c;
	char why[128];
	const char *v = "{\"Node\":\"b\",\"Address\":\"10.0.0.2\","
	    "\"MeshPort\":21000,\"Service\":\"db\",\"Port\":5432,"
	    "\"User\":\"daemon\"}";
	const char *w = "{\"Node\":\"b\",\"Address\":\"10.0.0.2\","
	    "\"MeshPort\":21000,\"Service\":\"api\",\"Port\":80}";

	cr_assert_eq(catalog_new(&c, "a", "dc1"), 0);
	cr_assert_eq(catalog_remote_put(c, "k1", v, strlen(v), why,
	    sizeof(why)), 0, "%s", why);
	cr_assert_eq(catalog_remote_put(c, "k2", w, strlen(w), why,
	    sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(catalog_remote_user(c, "db"), "daemon");
	cr_assert_str_eq(catalog_remote_user(c, "api"), "");
	cr_assert_null(catalog_remote_user(c, "ghost"));
	catalog_free(c);
}

/* A service on more nodes than the API once listed (64: bench/cluster.sh
 * with 100 nodes): /v1/catalog/service and /v1/health/service list all. */
Test(catalog, api_lists_every_instance)
{
	struct catalog *c;
	char why[128], key[32], v[256];
	json_t *a;

	cr_assert_eq(catalog_new(&c, "a", "dc1"), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(v, sizeof(v), "{\"Node\":\"n%d\",\"Address\":"
		    "\"10.0.0.%d\",\"MeshPort\":21000,\"Service\":\"common\","
		    "\"Port\":7001}", i, i + 1);
		cr_assert_eq(catalog_remote_put(c, key, v, strlen(v), why,
		    sizeof(why)), 0, "%s", why);
	}
	a = catalog_service_json(c, "common");
	cr_assert_eq(json_array_size(a), 100);
	json_decref(a);
	a = catalog_health_json(c, "common", 1);
	cr_assert_eq(json_array_size(a), 100);
	json_decref(a);
	a = catalog_service_json(c, "ghost");
	cr_assert_eq(json_array_size(a), 0);
	json_decref(a);
	catalog_free(c);
}
