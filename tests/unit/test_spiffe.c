/* SPIFFE ID parsing and formatting. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helperd/model/spiffe.h"

#define TD "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.mesh"

Test(spiffe, parses_a_service_id)
{
	struct spiffe_id id;

	cr_assert_eq(spiffe_parse("spiffe://" TD "/ns/default/dc/dc1/svc/socat",
	    &id), 0);
	cr_assert_str_eq(id.trust_domain, TD);
	cr_assert_str_eq(id.ns, "default");
	cr_assert_str_eq(id.dc, "dc1");
	cr_assert_str_eq(id.service, "socat");
}

Test(spiffe, accepts_valid_variants)
{
	static const char *good[] = {
		"spiffe://a.mesh/ns/default/dc/dc1/svc/web",
		"spiffe://example.org/ns/default/dc/east-1/svc/my_svc-2",
		"spiffe://x/ns/n/dc/d/svc/S",
		"spiffe://" TD "/ns/default/dc/dc1/svc/"
		    "a23456789012345678901234567890123456789012345678901234567890123",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect_eq(spiffe_parse(good[i], NULL), 0, "%s", good[i]);
}

Test(spiffe, rejects_malformed_ids)
{
	static const char *bad[] = {
		NULL,
		"",
		"https://" TD "/ns/default/dc/dc1/svc/web",      /* scheme */
		"SPIFFE://" TD "/ns/default/dc/dc1/svc/web",     /* scheme case */
		"spiffe:/" TD "/ns/default/dc/dc1/svc/web",
		"spiffe://Example.mesh/ns/default/dc/dc1/svc/web", /* uppercase TD */
		"spiffe://" TD,                                  /* no path */
		"spiffe://" TD "/",
		"spiffe://" TD "/ns/default/dc/dc1",             /* missing svc */
		"spiffe://" TD "/ns/default/svc/web",            /* missing dc */
		"spiffe://" TD "/dc/dc1/svc/web",                /* missing ns */
		"spiffe://" TD "/ns/default/dc/dc1/svc/web/x",   /* extra */
		"spiffe://" TD "/ns/default/dc/dc1/svc/web/",    /* trailing / */
		"spiffe://" TD "/ns/default/dc/dc1/svc/",        /* empty svc */
		"spiffe://" TD "/ns//dc/dc1/svc/web",            /* empty ns */
		"spiffe://" TD "/ns/default/dc/dc1//svc/web",
		"spiffe://" TD "/ns/default/dc/dc1/svc/web?x=1", /* query */
		"spiffe://" TD "/ns/default/dc/dc1/svc/web#f",   /* fragment */
		"spiffe://" TD ":8443/ns/default/dc/dc1/svc/web",/* port */
		"spiffe://u@" TD "/ns/default/dc/dc1/svc/web",   /* userinfo */
		"spiffe:///ns/default/dc/dc1/svc/web",           /* empty TD */
		"spiffe://a..b/ns/default/dc/dc1/svc/web",       /* empty label */
		"spiffe://-a.mesh/ns/default/dc/dc1/svc/web",
		"spiffe://" TD "/ns/default/dc/./svc/web",       /* dot segment */
		"spiffe://" TD "/ns/default/dc/../svc/web",
		"spiffe://" TD "/ns/default/dc/dc1/svc/w%65b",   /* escape */
		"spiffe://" TD "/ns/default/dc/dc1/svc/-web",    /* bad name */
		"spiffe://" TD "/ns/default/dc/dc1/svc/we b",
		"spiffe://" TD "/NS/default/dc/dc1/svc/web",     /* key case */
		"spiffe://" TD "/ns/default/dc/dc1/svc/"         /* name > 63 */
		    "a234567890123456789012345678901234567890123456789012345678901234",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(spiffe_parse(bad[i], NULL), -1, "accepted %s",
		    bad[i] != NULL ? bad[i] : "NULL");
}

Test(spiffe, rejects_too_long)
{
	char uri[SPIFFE_ID_MAX + 64], td[128];

	/* 120-char trust domain: valid labels, but the whole ID is too long. */
	memset(td, 'a', 120);
	for (int i = 60; i < 120; i += 61)
		td[i] = '.';
	td[120] = '\0';
	snprintf(uri, sizeof(uri), "spiffe://%s/ns/%s/dc/%s/svc/%s", td,
	    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
	    "dddddddddddddddddddddddddddddddddddddddddd",
	    "ssssssssssssssssssssssssssssssssssssssssss");
	cr_assert_geq(strlen(uri), SPIFFE_ID_MAX);
	cr_assert_eq(spiffe_parse(uri, NULL), -1);
	cr_assert_eq(spiffe_format(uri, sizeof(uri), td,
	    "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
	    "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"),
	    -1);
}

Test(spiffe, formats_and_round_trips)
{
	char buf[SPIFFE_ID_MAX];
	struct spiffe_id id;

	cr_assert_eq(spiffe_format(buf, sizeof(buf), TD, "dc1", "web"), 0);
	cr_assert_str_eq(buf, "spiffe://" TD "/ns/default/dc/dc1/svc/web");
	cr_assert_eq(spiffe_parse(buf, &id), 0);
	cr_assert_str_eq(id.service, "web");
	cr_assert_eq(spiffe_format(buf, 20, TD, "dc1", "web"), -1);
	cr_assert_eq(spiffe_format(buf, sizeof(buf), "Bad.TD", "dc1", "web"),
	    -1);
	cr_assert_eq(spiffe_format(buf, sizeof(buf), TD, "dc1", "a/b"), -1);
	cr_assert_eq(spiffe_format(buf, sizeof(buf), TD, "", "web"), -1);
}

Test(spiffe, names)
{
	cr_assert(spiffe_valid_name("web"));
	cr_assert(spiffe_valid_name("0web_1-x"));
	cr_assert(!spiffe_valid_name(""));
	cr_assert(!spiffe_valid_name("*"));
	cr_assert(!spiffe_valid_name("_web"));
	cr_assert(!spiffe_valid_name("../x"));
	cr_assert(spiffe_valid_trust_domain(TD));
	cr_assert(!spiffe_valid_trust_domain("a.mesh."));
	cr_assert(!spiffe_valid_trust_domain("a-.mesh"));
}
