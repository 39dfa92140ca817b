/* Unit tests of helperd/model/intent.c: precedence, ties, defaults, validation,
 * the store's errors, persistence and rollback. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "helperd/model/intent.h"

/* ---- helpers ---- */

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
fill(struct intent *in, const char *src, const char *dst, int allow)
{
	memset(in, 0, sizeof(*in));
	util_strlcpy(in->src, src, sizeof(in->src));
	util_strlcpy(in->dst, dst, sizeof(in->dst));
	in->allow = allow;
}

/* Create src => dst and return its ID in id (37 bytes). */
static void
mk(struct intent_db *db, const char *src, const char *dst, int allow,
    char *id)
{
	struct intent in;
	enum intent_err code = 0;
	char why[256] = "";

	fill(&in, src, dst, allow);
	cr_assert_eq(intent_create(db, &in, 0, id, &code, why, sizeof(why)), 0,
	    "create %s => %s: %s", src, dst, why);
}

/* check() and the name of the deciding intention ("" for the default). */
static int
chk(struct intent_db *db, const char *src, const char *dst, int def,
    char *by, size_t bylen)
{
	const struct intent *m = (const struct intent *)1;
	int ok = intent_check(db, src, dst, def, &m);

	if (m == NULL)
		by[0] = '\0';
	else
		intent_string(m, by, bylen);
	return ok;
}

static char tmpdir[64];

static void
mktmp(void)
{
	strcpy(tmpdir, "/tmp/test_intent.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void
rmtmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	cr_assert_not_null(j, "test JSON: %s", e.text);
	return j;
}

/* ---- precedence, ties, defaults ---- */

Test(intent, precedence_values)
{
	cr_expect_eq(intent_precedence("web", "db"), 9);
	cr_expect_eq(intent_precedence("*", "db"), 8);
	cr_expect_eq(intent_precedence("web", "*"), 6);
	cr_expect_eq(intent_precedence("*", "*"), 5);
}

Test(intent, four_levels_each_decides)
{
	struct intent_db *db = db_mem();
	char by[INTENT_STR_MAX], id9[37], id8[37], id6[37], id5[37];

	mk(db, "web", "db", 0, id9);
	mk(db, "*", "db", 1, id8);
	mk(db, "web", "*", 0, id6);
	mk(db, "*", "*", 1, id5);

	cr_expect_eq(chk(db, "web", "db", 1, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "web => db (deny)");
	cr_expect_eq(chk(db, "api", "db", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "* => db (allow)");
	cr_expect_eq(chk(db, "web", "cache", 1, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "web => * (deny)");
	cr_expect_eq(chk(db, "api", "cache", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "* => * (allow)");

	/* Peel the levels off: each time the next one decides web => db. */
	cr_assert_eq(intent_delete(db, id9, NULL, NULL, 0), 0);
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "* => db (allow)");
	cr_assert_eq(intent_delete(db, id8, NULL, NULL, 0), 0);
	cr_expect_eq(chk(db, "web", "db", 1, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "web => * (deny)");
	cr_assert_eq(intent_delete(db, id6, NULL, NULL, 0), 0);
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "* => * (allow)");
	cr_assert_eq(intent_delete(db, id5, NULL, NULL, 0), 0);
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "");
	intent_db_free(db);
}

Test(intent, exact_beats_wildcard)
{
	struct intent_db *db = db_mem();
	char by[INTENT_STR_MAX], id[37];

	mk(db, "*", "db", 0, id);
	mk(db, "web", "db", 1, id);
	mk(db, "web", "*", 0, id);
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "web => db (allow)");
	cr_expect_eq(chk(db, "api", "db", 1, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "* => db (deny)");
	/* Destination exact (8) beats source exact (6). */
	mk(db, "*", "cache", 1, id);
	cr_expect_eq(chk(db, "web", "cache", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "* => cache (allow)");
	intent_db_free(db);
}

Test(intent, deny_wins_a_tie)
{
	struct intent a, d, lo;

	fill(&a, "web", "db", 1);
	fill(&d, "web", "db", 0);
	fill(&lo, "*", "db", 0);
	a.precedence = d.precedence = 9;
	lo.precedence = 8;
	cr_expect_eq(intent_decide(&a, &d), &d);
	cr_expect_eq(intent_decide(&d, &a), &d);
	cr_expect_eq(intent_decide(&a, &lo), &a);
	cr_expect_eq(intent_decide(&lo, &a), &a);
	cr_expect_eq(intent_decide(NULL, &lo), &lo);
	cr_expect_eq(intent_decide(&lo, NULL), &lo);
	cr_expect_null(intent_decide(NULL, NULL));
}

Test(intent, default_allow_and_deny)
{
	struct intent_db *db = db_mem();
	char by[INTENT_STR_MAX], id[37];

	cr_expect_eq(chk(db, "web", "db", 1, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "");
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "");
	/* Unrelated intentions leave the default in charge. */
	mk(db, "api", "db", 0, id);
	mk(db, "web", "cache", 1, id);
	cr_expect_eq(chk(db, "web", "db", 1, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "");
	cr_expect_eq(chk(db, "web", "db", 0, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "");
	/* NULL db: only the default. */
	cr_expect_eq(intent_check(NULL, "web", "db", 1, NULL), 1);
	cr_expect_eq(intent_check(NULL, "web", "db", 0, NULL), 0);
	intent_db_free(db);
}

/* ---- names ---- */

Test(intent, name_validation)
{
	char n63[64], n64[65];

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	cr_expect(intent_valid_name("web"));
	cr_expect(intent_valid_name("web-2_x"));
	cr_expect(intent_valid_name("9lives"));
	cr_expect(intent_valid_name("*"));
	cr_expect(intent_valid_name(n63));
	cr_expect_not(intent_valid_name(n64));
	cr_expect_not(intent_valid_name(""));
	cr_expect_not(intent_valid_name(NULL));
	cr_expect_not(intent_valid_name("**"));
	cr_expect_not(intent_valid_name("web*"));
	cr_expect_not(intent_valid_name("we b"));
	cr_expect_not(intent_valid_name("web!"));
	cr_expect_not(intent_valid_name("web.db"));
	cr_expect_not(intent_valid_name("-web"));
	cr_expect_not(intent_valid_name("_web"));
}

Test(intent, create_rejects_bad_names_and_changes_nothing)
{
	struct intent_db *db = db_mem();
	static const char *const bad[] = { "", "we b", "web!", "-x", "**" };
	struct intent in;
	enum intent_err code;
	char why[256];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		fill(&in, bad[i], "db", 1);
		code = 0;
		cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why,
		    sizeof(why)), -1, "source \"%s\"", bad[i]);
		cr_expect_eq(code, INTENT_EINVAL);
		cr_expect(strstr(why, "SourceName") != NULL, "%s", why);
		fill(&in, "web", bad[i], 1);
		code = 0;
		cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why,
		    sizeof(why)), -1, "destination \"%s\"", bad[i]);
		cr_expect_eq(code, INTENT_EINVAL);
		cr_expect(strstr(why, "DestinationName") != NULL, "%s", why);
	}
	/* A name filling the whole field (no NUL) and a bad action. */
	fill(&in, "web", "db", 1);
	memset(in.src, 'a', sizeof(in.src));
	cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why, sizeof(why)),
	    -1);
	fill(&in, "web", "db", 2);
	cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why, sizeof(why)),
	    -1);
	cr_expect(strstr(why, "Action") != NULL, "%s", why);
	cr_expect_eq(intent_count(db), 0);
	cr_expect_eq(intent_db_index(db), 0);
	intent_db_free(db);
}

/* ---- store errors ---- */

Test(intent, duplicate_pair_is_eexist)
{
	struct intent_db *db = db_mem();
	struct intent in;
	enum intent_err code = 0;
	char id[37], id2[37] = "", why[256] = "", want[256];

	mk(db, "web", "socat", 1, id);
	fill(&in, "web", "socat", 0);
	cr_expect_eq(intent_create(db, &in, 0, id2, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EEXIST);
	snprintf(want, sizeof(want),
	    "duplicate intention found: web => socat (ID %s)", id);
	cr_expect_str_eq(why, want);
	cr_expect_eq(intent_count(db), 1);
	cr_expect_eq(intent_find_exact(db, "web", "socat")->allow, 1);
	intent_db_free(db);
}

Test(intent, replace_updates_in_place)
{
	struct intent_db *db = db_mem();
	const struct intent *cur;
	struct intent in;
	enum intent_err code = 0;
	char id[37], id2[37] = "", why[256] = "";
	uint64_t ci, mi;

	mk(db, "web", "socat", 1, id);
	mk(db, "api", "socat", 1, id2);
	cur = intent_get(db, id);
	cr_assert_not_null(cur);
	ci = cur->create_index;
	mi = cur->modify_index;

	fill(&in, "web", "socat", 0);
	util_strlcpy(in.description, "now denied", sizeof(in.description));
	cr_assert_eq(intent_create(db, &in, 1, id2, &code, why, sizeof(why)),
	    0, "%s", why);
	cr_expect_str_eq(id2, id);
	cr_expect_eq(intent_count(db), 2);
	cur = intent_get(db, id);
	cr_assert_not_null(cur);
	cr_expect_eq(cur->allow, 0);
	cr_expect_str_eq(cur->description, "now denied");
	cr_expect_eq(cur->create_index, ci);
	cr_expect_gt(cur->modify_index, mi);
	cr_expect_eq(cur->modify_index, intent_db_index(db));
	cr_expect_eq(intent_check(db, "web", "socat", 1, NULL), 0);
	intent_db_free(db);
}

Test(intent, update_by_id)
{
	struct intent_db *db = db_mem();
	const struct intent *cur;
	struct intent in;
	enum intent_err code = 0;
	char id[37], id2[37], why[256] = "";

	mk(db, "web", "db", 1, id);
	mk(db, "api", "db", 1, id2);
	/* Moving web => db onto api => db's pair is a duplicate. */
	fill(&in, "api", "db", 0);
	cr_expect_eq(intent_update(db, id, &in, &code, why, sizeof(why)), -1);
	cr_expect_eq(code, INTENT_EEXIST);
	cr_expect_eq(intent_get(db, id)->allow, 1);
	/* A new pair with a new precedence. */
	fill(&in, "web", "*", 0);
	cr_assert_eq(intent_update(db, id, &in, &code, why, sizeof(why)), 0,
	    "%s", why);
	cur = intent_get(db, id);
	cr_assert_not_null(cur);
	cr_expect_str_eq(cur->dst, "*");
	cr_expect_eq(cur->precedence, 6);
	cr_expect_null(intent_find_exact(db, "web", "db"));
	cr_expect_eq(intent_find_exact(db, "web", "*"), cur);
	/* Unknown and malformed IDs. */
	cr_expect_eq(intent_update(db, "00000000-0000-4000-8000-000000000000",
	    &in, &code, why, sizeof(why)), -1);
	cr_expect_eq(code, INTENT_ENOENT);
	cr_expect_eq(intent_update(db, "nope", &in, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EINVAL);
	intent_db_free(db);
}

Test(intent, delete_unknown_is_enoent)
{
	struct intent_db *db = db_mem();
	enum intent_err code = 0;
	char id[37], why[256] = "";
	uint64_t idx;

	mk(db, "web", "db", 0, id);
	idx = intent_db_index(db);
	cr_expect_eq(intent_delete(db, "00000000-0000-4000-8000-000000000000",
	    &code, why, sizeof(why)), -1);
	cr_expect_eq(code, INTENT_ENOENT);
	cr_expect(strstr(why, "not found") != NULL, "%s", why);
	code = 0;
	cr_expect_eq(intent_delete(db, "not-a-uuid", &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EINVAL);
	cr_expect_eq(intent_count(db), 1);
	cr_expect_eq(intent_db_index(db), idx);
	cr_expect_eq(intent_delete(db, id, &code, why, sizeof(why)), 0);
	cr_expect_eq(intent_count(db), 0);
	cr_expect_null(intent_get(db, id));
	intent_db_free(db);
}

Test(intent, cap_reached_is_enospc)
{
	struct intent_db *db = db_mem();
	struct intent in;
	enum intent_err code = 0;
	char id[37], why[256] = "";

	intent_db_set_max(db, 2);
	mk(db, "a", "db", 1, id);
	mk(db, "b", "db", 1, id);
	fill(&in, "c", "db", 1);
	cr_expect_eq(intent_create(db, &in, 0, id, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_ENOSPC);
	cr_expect(strstr(why, "limit of 2") != NULL, "%s", why);
	cr_expect_eq(intent_count(db), 2);
	cr_expect_null(intent_find_exact(db, "c", "db"));
	/* Replacing an existing pair does not need room. */
	fill(&in, "a", "db", 0);
	cr_expect_eq(intent_create(db, &in, 1, id, &code, why, sizeof(why)), 0,
	    "%s", why);
	cr_expect_eq(intent_find_exact(db, "a", "db")->allow, 0);
	intent_db_free(db);
}

/* ---- persistence ---- */

Test(intent, persistence_round_trip, .init = mktmp, .fini = rmtmp)
{
	struct intent_db *db;
	const struct intent *cur;
	struct intent in;
	enum intent_err code;
	char path[128], err[512] = "", why[256] = "";
	char id1[37], id2[37], id3[37];
	uint64_t idx;
	json_t *meta;

	snprintf(path, sizeof(path), "%s/intentions.json", tmpdir);
	cr_assert_eq(intent_db_open(&db, path, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(access(path, F_OK), -1, "no file before the first save");
	mk(db, "web", "socat", 0, id1);
	mk(db, "*", "socat", 1, id2);
	fill(&in, "web", "*", 1);
	util_strlcpy(in.description, "web may call anything",
	    sizeof(in.description));
	in.meta = meta = parse("{\"owner\": \"team-a\", \"ticket\": \"42\"}");
	cr_assert_eq(intent_create(db, &in, 0, id3, &code, why, sizeof(why)),
	    0, "%s", why);
	json_decref(meta);
	idx = intent_db_index(db);
	intent_db_free(db);

	cr_assert_eq(intent_db_open(&db, path, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(intent_count(db), 3);
	cr_expect_eq(intent_db_index(db), idx);
	cr_assert_not_null(cur = intent_get(db, id1));
	cr_expect_str_eq(cur->src, "web");
	cr_expect_str_eq(cur->dst, "socat");
	cr_expect_eq(cur->allow, 0);
	cr_expect_eq(cur->precedence, 9);
	cr_assert_not_null(cur = intent_get(db, id2));
	cr_expect_eq(cur->allow, 1);
	cr_expect_eq(cur->precedence, 8);
	cr_assert_not_null(cur = intent_get(db, id3));
	cr_expect_str_eq(cur->description, "web may call anything");
	cr_assert_not_null(cur->meta);
	cr_expect_str_eq(json_string_value(json_object_get(cur->meta,
	    "owner")), "team-a");
	cr_expect_gt(cur->created_at, 0);
	cr_expect_eq(cur->create_index, 3);
	cr_expect_eq(intent_check(db, "web", "socat", 1, NULL), 0);
	/* The index keeps counting after a reopen. */
	mk(db, "api", "socat", 0, id1);
	cr_expect_eq(intent_db_index(db), idx + 1);
	cr_expect_eq(intent_find_exact(db, "api", "socat")->create_index,
	    idx + 1);
	intent_db_free(db);
}

static void
expect_corrupt(const char *content, const char *what)
{
	struct intent_db *db = (struct intent_db *)1;
	char path[128], err[512] = "";
	size_t len;
	char *after;

	snprintf(path, sizeof(path), "%s/intentions.json", tmpdir);
	cr_assert_eq(util_write_atomic(path, content, strlen(content), 0600),
	    0);
	cr_expect_eq(intent_db_open(&db, path, err, sizeof(err)), -1,
	    "%s: accepted", what);
	cr_expect_null(db);
	cr_expect(strstr(err, path) != NULL, "%s: error does not name the "
	    "file: %s", what, err);
	after = util_read_file(path, 1 << 20, &len);
	cr_assert_not_null(after);
	cr_expect_eq(len, strlen(content));
	cr_expect_str_eq(after, content, "%s: file changed", what);
	free(after);
}

Test(intent, corrupt_file_is_an_error, .init = mktmp, .fini = rmtmp)
{
	expect_corrupt("", "empty file");
	expect_corrupt("{\"Index\": 1, \"Intentions\": [", "truncated JSON");
	expect_corrupt("[]", "bare array");
	expect_corrupt("{\"Index\": -1, \"Intentions\": []}", "negative index");
	expect_corrupt("{\"Index\": 1, \"Intentions\": [{\"SourceName\": "
	    "\"web\", \"DestinationName\": \"db\", \"Action\": \"maybe\", "
	    "\"ID\": \"0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6\", "
	    "\"CreatedAt\": \"2024-01-01T00:00:00Z\", \"UpdatedAt\": "
	    "\"2024-01-01T00:00:00Z\", \"CreateIndex\": 1, "
	    "\"ModifyIndex\": 1}]}",
	    "bad action");
	expect_corrupt("{\"Index\": 1, \"Intentions\": [{\"SourceName\": "
	    "\"web\", \"DestinationName\": \"db\", \"Action\": \"deny\", "
	    "\"ID\": \"zzz\", \"CreatedAt\": \"2024-01-01T00:00:00Z\", "
	    "\"UpdatedAt\": \"2024-01-01T00:00:00Z\", \"CreateIndex\": 1, "
	    "\"ModifyIndex\": 1}]}", "bad ID");
	expect_corrupt("{\"Index\": 2, \"Intentions\": [{\"SourceName\": "
	    "\"web\", \"DestinationName\": \"db\", \"Action\": \"deny\", "
	    "\"ID\": \"0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6\", "
	    "\"CreatedAt\": \"2024-01-01T00:00:00Z\", \"UpdatedAt\": "
	    "\"2024-01-01T00:00:00Z\", \"CreateIndex\": 1, \"ModifyIndex\": 1},"
	    "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
	    "\"Action\": \"allow\", "
	    "\"ID\": \"1f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6\", "
	    "\"CreatedAt\": \"2024-01-01T00:00:00Z\", \"UpdatedAt\": "
	    "\"2024-01-01T00:00:00Z\", \"CreateIndex\": 2, \"ModifyIndex\": 2}"
	    "]}", "duplicate pair");
	expect_corrupt("{\"Index\": 1, \"Intentions\": [{\"SourceName\": "
	    "\"web\", \"DestinationName\": \"db\", \"Action\": \"deny\", "
	    "\"ID\": \"0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6\", "
	    "\"CreatedAt\": \"yesterday\", \"UpdatedAt\": "
	    "\"2024-01-01T00:00:00Z\", \"CreateIndex\": 1, "
	    "\"ModifyIndex\": 1}]}",
	    "bad CreatedAt");
}

Test(intent, failed_save_changes_nothing, .init = mktmp, .fini = rmtmp)
{
	struct intent_db *db;
	struct intent in;
	enum intent_err code;
	char path[128], err[512] = "", why[512] = "", id[37], id2[37];
	uint64_t idx;

	snprintf(path, sizeof(path), "%s/intentions.json", tmpdir);
	cr_assert_eq(intent_db_open(&db, path, err, sizeof(err)), 0, "%s", err);
	mk(db, "web", "db", 1, id);
	idx = intent_db_index(db);
	/* A directory in the file's place: the rename of every save fails
	 * (also as root, unlike a read-only directory). */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkdir(path, 0700), 0);

	fill(&in, "api", "db", 0);
	code = 0;
	cr_expect_eq(intent_create(db, &in, 0, id2, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EIO);
	cr_expect(strstr(why, path) != NULL, "%s", why);
	cr_expect_null(intent_find_exact(db, "api", "db"));

	fill(&in, "web", "db", 0);
	code = 0;
	cr_expect_eq(intent_create(db, &in, 1, id2, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EIO);
	code = 0;
	cr_expect_eq(intent_update(db, id, &in, &code, why, sizeof(why)), -1);
	cr_expect_eq(code, INTENT_EIO);
	code = 0;
	cr_expect_eq(intent_delete(db, id, &code, why, sizeof(why)), -1);
	cr_expect_eq(code, INTENT_EIO);

	cr_expect_eq(intent_count(db), 1);
	cr_expect_eq(intent_db_index(db), idx);
	cr_assert_not_null(intent_get(db, id));
	cr_expect_eq(intent_get(db, id)->allow, 1);
	cr_expect_eq(intent_check(db, "web", "db", 0, NULL), 1);
	intent_db_free(db);
}

Test(intent, save_into_missing_dir_fails)
{
	struct intent_db *db;
	struct intent in;
	enum intent_err code = 0;
	char err[512] = "", why[512] = "";

	cr_assert_eq(intent_db_open(&db, "/nonexistent-meshshim-dir/i.json",
	    err, sizeof(err)), 0, "%s", err);
	fill(&in, "web", "db", 0);
	cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_EIO);
	cr_expect_eq(intent_count(db), 0);
	cr_expect_eq(intent_db_index(db), 0);
	cr_expect_eq(intent_check(db, "web", "db", 1, NULL), 1);
	intent_db_free(db);
}

/* ---- match ---- */

static void
expect_order(const struct intent **m, size_t n, const char *const *want,
    size_t nwant)
{
	char s[INTENT_STR_MAX];

	cr_assert_eq(n, nwant, "found %zu, want %zu", n, nwant);
	for (size_t i = 0; i < n; i++) {
		intent_string(m[i], s, sizeof(s));
		cr_expect_str_eq(s, want[i], "position %zu", i);
	}
}

Test(intent, match_in_evaluation_order)
{
	struct intent_db *db = db_mem();
	const struct intent *m[8];
	char id[37];
	static const char *const by_dst[] = {
		"web => db (deny)", "api => db (allow)", "* => db (deny)",
		"web => * (allow)", "* => * (allow)",
	};
	static const char *const by_src[] = {
		"web => db (deny)", "* => db (deny)", "web => * (allow)",
		"* => * (allow)",
	};

	/* Created out of order on purpose. */
	mk(db, "*", "*", 1, id);
	mk(db, "api", "db", 1, id);
	mk(db, "web", "*", 1, id);
	mk(db, "*", "db", 0, id);
	mk(db, "web", "db", 0, id);
	mk(db, "api", "cache", 0, id);

	expect_order(m, intent_match(db, 0, "db", m, 8), by_dst,
	    UTIL_ARRAY_LEN(by_dst));
	expect_order(m, intent_match(db, 1, "web", m, 8), by_src,
	    UTIL_ARRAY_LEN(by_src));
	/* Truncated: the count is the total, the first max are stored. */
	m[2] = NULL;
	cr_expect_eq(intent_match(db, 0, "db", m, 2), 5);
	expect_order(m, 2, by_dst, 2);
	cr_expect_null(m[2]);
	cr_expect_eq(intent_match(db, 0, "db", NULL, 0), 5);
	/* Nothing for an unknown name but the wildcard destinations. */
	cr_expect_eq(intent_match(db, 0, "zzz", m, 8), 2);
	/* List order: precedence, then names. */
	cr_expect_str_eq(intent_at(db, 0)->src, "api");
	cr_expect_str_eq(intent_at(db, 0)->dst, "cache");
	cr_expect_str_eq(intent_at(db, 5)->src, "*");
	cr_expect_null(intent_at(db, 6));
	intent_db_free(db);
}

/* ---- JSON ---- */

Test(intent, from_json_accepts_a_consul_intention)
{
	json_t *j = parse("{\"SourceName\": \"web\", \"DestinationName\": "
	    "\"*\", \"Action\": \"deny\", \"Description\": \"d\", "
	    "\"SourceNS\": \"default\", \"DestinationNS\": \"\", "
	    "\"SourceType\": \"consul\", \"Meta\": {\"k\": \"v\"}, "
	    "\"Precedence\": 1, \"ID\": \"whatever\", \"Permissions\": null}");
	struct intent in;
	char why[256] = "";

	cr_assert_eq(intent_from_json(j, &in, why, sizeof(why)), 0, "%s", why);
	cr_expect_str_eq(in.src, "web");
	cr_expect_str_eq(in.dst, "*");
	cr_expect_eq(in.allow, 0);
	cr_expect_str_eq(in.description, "d");
	cr_expect_eq(in.precedence, 6);
	cr_assert_not_null(in.meta);
	cr_expect_str_eq(json_string_value(json_object_get(in.meta, "k")), "v");
	intent_clear(&in);
	cr_expect_null(in.meta);
	json_decref(j);
}

Test(intent, from_json_rejects_each_bad_field)
{
	static const struct {
		const char *json, *field;
	} cases[] = {
		{ "[]", "object" },
		{ "{\"DestinationName\": \"db\", \"Action\": \"allow\"}",
		  "SourceName" },
		{ "{\"SourceName\": 5, \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\"}", "SourceName" },
		{ "{\"SourceName\": \"\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\"}", "SourceName" },
		{ "{\"SourceName\": \"we b\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\"}", "SourceName" },
		{ "{\"SourceName\": \"web\", \"Action\": \"allow\"}",
		  "DestinationName" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"d*\", "
		  "\"Action\": \"allow\"}", "DestinationName" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\"}",
		  "Action" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"maybe\"}", "Action" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"Allow\"}", "Action" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": true}", "Action" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"Description\": 3}", "Description" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"Meta\": []}", "Meta" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"Meta\": {\"a\": 1}}", "Meta" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"Meta\": {\"\": \"x\"}}", "Meta" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"SourceNS\": \"prod\"}",
		  "SourceNS" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"DestinationNS\": 1}",
		  "DestinationNS" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"SourceType\": \"external\"}",
		  "SourceType" },
		{ "{\"SourceName\": \"web\", \"DestinationName\": \"db\", "
		  "\"Action\": \"allow\", \"Permissions\": [{}]}",
		  "Permissions" },
	};
	struct intent in;
	char why[256];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		json_t *j = parse(cases[i].json);

		why[0] = '\0';
		cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), -1,
		    "accepted: %s", cases[i].json);
		cr_expect(strstr(why, cases[i].field) != NULL,
		    "reason \"%s\" does not name %s", why, cases[i].field);
		cr_expect_null(in.meta);
		json_decref(j);
	}
}

Test(intent, from_json_rejects_oversized_fields)
{
	char big[INTENT_DESC_MAX + 16], key[INTENT_META_KEY_MAX + 2];
	char val[INTENT_META_VAL_MAX + 2], why[256];
	json_t *j, *meta;
	struct intent in;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	j = json_pack("{s:s, s:s, s:s, s:s}", "SourceName", "web",
	    "DestinationName", "db", "Action", "allow", "Description", big);
	cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), -1);
	cr_expect(strstr(why, "Description") != NULL, "%s", why);
	/* Exactly the maximum is fine. */
	big[INTENT_DESC_MAX - 1] = '\0';
	json_object_set_new(j, "Description", json_string(big));
	cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), 0, "%s", why);
	intent_clear(&in);

	meta = json_object();
	for (int i = 0; i <= INTENT_META_MAX; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(meta, k, json_string("v"));
	}
	json_object_set_new(j, "Meta", meta);
	cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), -1);
	cr_expect(strstr(why, "Meta") != NULL, "%s", why);

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	json_object_set_new(j, "Meta", json_pack("{s:s}", key, "v"));
	cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), -1);
	cr_expect(strstr(why, "Meta") != NULL, "%s", why);

	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	json_object_set_new(j, "Meta", json_pack("{s:s}", "k", val));
	cr_expect_eq(intent_from_json(j, &in, why, sizeof(why)), -1);
	cr_expect(strstr(why, "Meta") != NULL, "%s", why);
	json_decref(j);
}

Test(intent, to_json_has_consul_fields)
{
	struct intent_db *db = db_mem();
	const struct intent *cur;
	char id[37], ts[32];
	json_t *j;

	mk(db, "web", "socat", 0, id);
	cur = intent_get(db, id);
	cr_assert_not_null(cur);
	cr_expect(intent_valid_id(cur->id));
	j = intent_to_json(cur);
	cr_assert_not_null(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "ID")), id);
	cr_expect_str_eq(json_string_value(json_object_get(j, "SourceName")),
	    "web");
	cr_expect_str_eq(json_string_value(json_object_get(j,
	    "DestinationName")), "socat");
	cr_expect_str_eq(json_string_value(json_object_get(j, "SourceNS")),
	    "default");
	cr_expect_str_eq(json_string_value(json_object_get(j, "SourceType")),
	    "consul");
	cr_expect_str_eq(json_string_value(json_object_get(j, "Action")),
	    "deny");
	cr_expect_eq(json_integer_value(json_object_get(j, "Precedence")), 9);
	cr_expect(json_is_object(json_object_get(j, "Meta")));
	cr_expect_eq(json_integer_value(json_object_get(j, "CreateIndex")), 1);
	cr_expect_eq(json_integer_value(json_object_get(j, "ModifyIndex")), 1);
	util_rfc3339(cur->created_at, ts, sizeof(ts));
	cr_expect_str_eq(json_string_value(json_object_get(j, "CreatedAt")),
	    ts);
	cr_expect_eq(strlen(ts), 20);
	json_decref(j);
	intent_db_free(db);
}

Test(intent, valid_id)
{
	cr_expect(intent_valid_id("0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6"));
	cr_expect(intent_valid_id("0F3A7C6E-1B2D-4C5E-8F90-A1B2C3D4E5F6"));
	cr_expect_not(intent_valid_id("0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f"));
	cr_expect_not(intent_valid_id("0f3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6a"));
	cr_expect_not(intent_valid_id("0f3a7c6e+1b2d-4c5e-8f90-a1b2c3d4e5f6"));
	cr_expect_not(intent_valid_id("gf3a7c6e-1b2d-4c5e-8f90-a1b2c3d4e5f6"));
	cr_expect_not(intent_valid_id(""));
	cr_expect_not(intent_valid_id(NULL));
}

Test(intent, real_cap_is_intent_max)
{
	struct intent_db *db = db_mem();
	struct intent in;
	enum intent_err code = 0;
	char why[256] = "", by[INTENT_STR_MAX];

	for (int i = 0; i < INTENT_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		fill(&in, name, i % 2 ? "db" : "*", i % 3 == 0);
		cr_assert_eq(intent_create(db, &in, 0, NULL, &code, why,
		    sizeof(why)), 0, "#%d: %s", i, why);
	}
	cr_expect_eq(intent_count(db), INTENT_MAX);
	fill(&in, "one-more", "db", 1);
	cr_expect_eq(intent_create(db, &in, 0, NULL, &code, why, sizeof(why)),
	    -1);
	cr_expect_eq(code, INTENT_ENOSPC);
	/* Lookups still find the right entry among all of them. */
	cr_expect_eq(chk(db, "s9997", "db", 1, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "s9997 => db (deny)");
	cr_expect_eq(chk(db, "s9999", "x", 0, by, sizeof(by)), 0);
	cr_expect_str_eq(by, "");
	cr_expect_eq(chk(db, "s6", "x", 0, by, sizeof(by)), 1);
	cr_expect_str_eq(by, "s6 => * (allow)");
	/* The list stays in order. */
	for (size_t i = 1; i < intent_count(db); i++) {
		const struct intent *a = intent_at(db, i - 1);
		const struct intent *b = intent_at(db, i);

		cr_assert(a->precedence > b->precedence ||
		    (a->precedence == b->precedence &&
		    strcmp(a->src, b->src) < 0), "order at %zu", i);
	}
	intent_db_free(db);
}
