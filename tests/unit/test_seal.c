/* seal (root keys sealed for the cluster store) and ca_share (a CA
 * directory as one document and back). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/cluster/ca_share.h"
#include "helperd/cluster/seal.h"

#define PASS "0123456789abcdef0123456789abcdef"
#define AAD  "/meshshim/ca/keys"
#define PUR  "meshshim ca keys v1"

Test(seal, round_trip)
{
	char err[256], *box, *out;
	size_t len = 0;

	box = seal_box(PASS, PUR, AAD, "secret root key", 15, err,
	    sizeof(err));
	cr_assert_not_null(box, "%s", err);
	cr_assert_null(strstr(box, "secret"), "the box holds the plaintext");
	out = seal_open(PASS, PUR, AAD, box, &len, err, sizeof(err));
	cr_assert_not_null(out, "%s", err);
	cr_assert_eq(len, 15);
	cr_assert_str_eq(out, "secret root key");
	free(out);
	free(box);
}

Test(seal, two_boxes_differ)
{
	char err[256], *a, *b;

	a = seal_box(PASS, PUR, AAD, "x", 1, err, sizeof(err));
	b = seal_box(PASS, PUR, AAD, "x", 1, err, sizeof(err));
	cr_assert(a != NULL && b != NULL);
	cr_assert_str_neq(a, b, "random nonce: the same plaintext seals "
	    "differently");
	free(a);
	free(b);
}

Test(seal, refuses)
{
	char err[256], *box, *alt;
	json_t *j;
	const char *ct;

	box = seal_box(PASS, PUR, AAD, "secret root key", 15, err,
	    sizeof(err));
	cr_assert_not_null(box);
	/* Another passphrase (a CA client's join_token, say). */
	cr_assert_null(seal_open("join-token-of-a-ca-client-0123456", PUR,
	    AAD, box, NULL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "does not open"), "%s", err);
	/* Another store key, another purpose. */
	cr_assert_null(seal_open(PASS, PUR, "/other/ca/keys", box, NULL, err,
	    sizeof(err)));
	cr_assert_null(seal_open(PASS, "other", AAD, box, NULL, err,
	    sizeof(err)));
	/* One bit of the ciphertext flipped. */
	j = json_loads(box, 0, NULL);
	ct = json_string_value(json_object_get(j, "ct"));
	cr_assert_not_null(ct);
	{
		char *c = strdup(ct);

		c[2] = c[2] == 'A' ? 'B' : 'A';
		json_object_set_new(j, "ct", json_string(c));
		free(c);
	}
	alt = json_dumps(j, JSON_COMPACT);
	cr_assert_null(seal_open(PASS, PUR, AAD, alt, NULL, err,
	    sizeof(err)));
	free(alt);
	json_decref(j);
	/* Not a box. */
	cr_assert_null(seal_open(PASS, PUR, AAD, "{}", NULL, err,
	    sizeof(err)));
	cr_assert_null(seal_open(PASS, PUR, AAD, "not json", NULL, err,
	    sizeof(err)));
	cr_assert_null(seal_box("", PUR, AAD, "x", 1, err, sizeof(err)));
	free(box);
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/test_seal.XXXXXX");
	cr_assert_not_null(mkdtemp(buf));
}

Test(ca_share, export_import_opens_the_same_ca)
{
	char a[64], b[64], dir[128], err[256], td[128], *doc;
	struct ca *ca, *cb;
	long next = 0;

	tmpdir(a, sizeof(a));
	tmpdir(b, sizeof(b));
	snprintf(dir, sizeof(dir), "%s/ca", a);
	cr_assert_eq(ca_open(&ca, dir, 87600L * 3600, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(ca_rotate(ca, err, sizeof(err)), 0, "%s", err);
	doc = ca_share_export(dir, err, sizeof(err));
	cr_assert_not_null(doc, "%s", err);
	cr_assert_not_null(strstr(doc, "PRIVATE KEY"));
	cr_assert_null(strstr(doc, "leaf/"), "leaves are not shared");
	cr_assert_eq(ca_share_info(doc, NULL, td, sizeof(td), &next), 0);
	cr_assert_str_eq(td, ca_trust_domain(ca));
	cr_assert_eq(next, 3);
	snprintf(dir, sizeof(dir), "%s/ca", b);
	cr_assert_eq(ca_share_import(dir, doc, err, sizeof(err)), 0, "%s",
	    err);
	cr_assert_eq(ca_open(&cb, dir, 87600L * 3600, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(ca_trust_domain(cb), ca_trust_domain(ca));
	cr_assert_str_eq(ca_active_root_id(cb), ca_active_root_id(ca));
	ca_free(ca);
	ca_free(cb);
	free(doc);
	rmtree(a);
	rmtree(b);
}

Test(ca_share, import_refuses_other_names)
{
	char a[64], dir[128], err[256];
	static const char *bad[] = {
		"{\"meta.json\": \"{}\", \"../x.pem\": \"x\"}",
		"{\"meta.json\": \"{}\", \"roots/1.key/../../x\": \"x\"}",
		"{\"meta.json\": \"{}\", \"cross/1.key\": \"x\"}",
		"{\"meta.json\": \"{}\", \"roots/01.pem\": \"x\"}",
		"{\"meta.json\": \"{}\", \"leaf/web.key\": \"x\"}",
		"{\"roots/1.pem\": \"x\"}",
		"[]",
	};

	tmpdir(a, sizeof(a));
	snprintf(dir, sizeof(dir), "%s/ca", a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_neq(ca_share_import(dir, bad[i], err, sizeof(err)), 0,
		    "accepted %s", bad[i]);
	snprintf(dir, sizeof(dir), "%s/x.pem", a);
	cr_assert_neq(access(dir, F_OK), 0, "wrote outside the directory");
	rmtree(a);
}
