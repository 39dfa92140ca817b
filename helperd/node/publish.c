/* publish: the workers' policy snapshot, built from the node's
 * intentions, catalog, trust and leaves, published by the loop thread at
 * the end of every round in which one of them changed. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/obs/accesslog.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/cluster/cluster.h"
#include "helperd/local/ctl.h"
#include "helperd/local/direct.h"
#include "helperd/local/dns.h"
#include "helperd/local/health.h"
#include "helperd/node/helperd.h"
#include "helperd/node/node_int.h"
#include "helperd/api/http.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay.h"
#include "helperd/local/served.h"
#include "helperd/relay/tls.h"

/* The workers' policy snapshot ------------------------------------------ */

/* The leaves as policy_ident_build takes them. */
static struct policy_part *
ident_build(struct helperd *h)
{
	const char **names = calloc(h->n_leaves + 1, sizeof(*names));
	struct ca_leaf **leaves = calloc(h->n_leaves + 1, sizeof(*leaves));
	struct policy_part *pt = NULL;

	if (names != NULL && leaves != NULL) {
		for (size_t i = 0; i < h->n_leaves; i++) {
			names[i] = h->leaves[i].service;
			leaves[i] = h->leaves[i].leaf;
		}
		/* One trust generation per CA object and its roots, and
		 * per set of leaves: the TLS verify cache is keyed on it. */
		pt = policy_ident_build(h->ca, names, leaves, h->n_leaves,
		    h->pol_gen + 1);
	}
	free(names);
	free(leaves);
	return pt;
}

/* Rebuild the part *slot with build if its key changed; 1 if it did (and
 * the new part is in *slot), 0 if not, -1 if building failed (the old
 * part stays, retried next time). */
static int
part_refresh(struct policy_part **slot, int *valid, int changed,
    struct policy_part *(*build)(struct helperd *), struct helperd *h,
    const char *what)
{
	struct policy_part *pt;

	if (*valid && !changed)
		return 0;
	if ((pt = build(h)) == NULL) {
		log_err("policy: cannot build the %s for the relay workers "
		    "(out of memory): they keep the previous one", what);
		*valid = 0;
		return -1;
	}
	policy_part_put(*slot);
	*slot = pt;
	*valid = 1;
	return 1;
}

static struct policy_part *
intents_build(struct helperd *h)
{
	return policy_intents_build(h->intents);
}

static struct policy_part *
dial_build(struct helperd *h)
{
	return policy_dial_build(h->catalog);
}

void
helperd_policy_refresh(struct helperd *h)
{
	uint64_t ii, ic, cg, ag;
	const struct ca *ca = h->ca;
	struct policy *p;
	int ch = 0, rc;

	if (!h->policy_ready || h->intents == NULL || h->catalog == NULL ||
	    ca == NULL)
		return;
	helperd_assert_loop(h);
	ii = intent_db_index(h->intents);
	ic = h->intents_changes;
	cg = catalog_generation(h->catalog);
	ag = ca_generation(ca);
	rc = part_refresh(&h->pol_intents, &h->pol_seen.valid[0],
	    ii != h->pol_seen.intents_index ||
	    ic != h->pol_seen.intents_changes, intents_build, h,
	    "intentions");
	if (rc == 1) {
		h->pol_seen.intents_index = ii;
		h->pol_seen.intents_changes = ic;
	}
	ch |= rc == 1;
	rc = part_refresh(&h->pol_dial, &h->pol_seen.valid[1],
	    cg != h->pol_seen.catalog, dial_build, h, "catalog");
	if (rc == 1)
		h->pol_seen.catalog = cg;
	ch |= rc == 1;
	rc = part_refresh(&h->pol_ident, &h->pol_seen.valid[2],
	    ca != h->pol_seen.ca_ptr || ag != h->pol_seen.ca ||
	    h->leaf_gen != h->pol_seen.leaves, ident_build, h,
	    "trust and leaves");
	if (rc == 1) {
		h->pol_seen.ca_ptr = ca;
		h->pol_seen.ca = ag;
		h->pol_seen.leaves = h->leaf_gen;
	}
	ch |= rc == 1;
	if (h->pol_seen.default_allow != h->conf.default_allow + 1)
		ch = 1;
	if (!ch)
		return;
	p = policy_new(h->pol_gen + 1, h->conf.default_allow,
	    policy_part_ref(h->pol_intents), policy_part_ref(h->pol_dial),
	    policy_part_ref(h->pol_ident));
	if (p == NULL) {
		log_err("policy: out of memory: the relay workers keep the "
		    "previous snapshot");
		h->pol_seen.default_allow = 0;  /* retried next time */
		return;
	}
	h->pol_gen++;
	h->pol_seen.default_allow = h->conf.default_allow + 1;
	policy_publish(&h->policy, p);
	log_debug("policy: snapshot %llu published",
	    (unsigned long long)h->pol_gen);
}

void
node_policy_refresh_cb(void *arg)
{
	helperd_policy_refresh(arg);
}

/* The end of every main loop round (loop_set_round_end): what it changed, to
 * the relay workers. */
void
node_policy_round_end(void *arg)
{
	helperd_policy_refresh(arg);
}
