/* leaves: the current leaf of every local service (issued, renewed on a
 * timer, installed from a CA server), root rotation, and what an
 * intention change does to open connections. */
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

/* Leaves ---------------------------------------------------------------- */

static struct leaf_slot *
leaf_slot(struct helperd *h, const char *service)
{
	for (size_t i = 0; i < h->n_leaves; i++)
		if (strcmp(h->leaves[i].service, service) == 0)
			return &h->leaves[i];
	return NULL;
}

struct ca_leaf *
helperd_leaf(struct helperd *h, const char *service, char *err,
    size_t errlen)
{
	struct leaf_slot *slot, *v;
	struct ca_leaf *leaf;

	/* Main loop only: it may generate a key (helperd.h); never on a
	 * relay worker. */
	helperd_assert_loop(h);
	if ((slot = leaf_slot(h, service)) != NULL)
		return slot->leaf;
	leaf = ca_leaf_get(h->ca, h->conf.datacenter, service,
	    h->conf.ca.leaf_ttl, err, errlen);
	if (leaf == NULL) {
		/* A CA client asks a CA server (through the cluster). */
		if (ca_is_client(h->ca))
			cluster_leaf_request(h->cluster, service);
		return NULL;
	}
	v = realloc(h->leaves, (h->n_leaves + 1) * sizeof(*v));
	if (v == NULL) {
		ca_leaf_unref(leaf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->leaves = v;
	slot = &h->leaves[h->n_leaves++];
	util_strlcpy(slot->service, service, sizeof(slot->service));
	slot->leaf = leaf;
	h->leaf_gen++;
	log_info("leaf for %s: serial %s, valid until %lld, renew at %lld",
	    service, leaf->serial, (long long)leaf->not_after,
	    (long long)leaf->renew_at);
	node_leaves_arm(h);
	return leaf;
}

/* Replace the leaf of a slot with a freshly issued one. Open sessions keep
 * their reference to the old leaf until they end. */
static int
leaf_renew(struct helperd *h, struct leaf_slot *slot, const char *why)
{
	char err[256];
	struct ca_leaf *leaf = ca_leaf_issue(h->ca, h->conf.datacenter,
	    slot->service, h->conf.ca.leaf_ttl, err, sizeof(err));

	if (leaf == NULL) {
		log_err("renewing the leaf of %s failed (keeping the current "
		    "one): %s", slot->service, err);
		return -1;
	}
	log_info("leaf for %s renewed (%s): serial %s -> %s, valid until "
	    "%lld", slot->service, why, slot->leaf->serial, leaf->serial,
	    (long long)leaf->not_after);
	ca_leaf_unref(slot->leaf);
	slot->leaf = leaf;
	h->leaf_gen++;
	tls_tickets_reset();
	node_leaves_arm(h);
	return 0;
}

void
helperd_leaf_installed(struct helperd *h, struct ca_leaf *leaf)
{
	struct leaf_slot *slot = leaf_slot(h, leaf->service), *v;

	helperd_assert_loop(h);
	h->leaf_gen++;

	if (slot != NULL) {
		log_info("leaf for %s renewed: serial %s -> %s, valid until "
		    "%lld", leaf->service, slot->leaf->serial, leaf->serial,
		    (long long)leaf->not_after);
		ca_leaf_unref(slot->leaf);
		slot->leaf = leaf;
		tls_tickets_reset();
		node_leaves_arm(h);
		relay_leaf_ready(h->relay);
		return;
	}
	if ((v = realloc(h->leaves, (h->n_leaves + 1) * sizeof(*v))) == NULL) {
		ca_leaf_unref(leaf);    /* ca keeps it: the next call finds it */
		return;
	}
	h->leaves = v;
	slot = &h->leaves[h->n_leaves++];
	util_strlcpy(slot->service, leaf->service, sizeof(slot->service));
	slot->leaf = leaf;
	log_info("leaf for %s: serial %s, valid until %lld, renew at %lld",
	    leaf->service, leaf->serial, (long long)leaf->not_after,
	    (long long)leaf->renew_at);
	node_leaves_arm(h);
	relay_leaf_ready(h->relay);     /* connections waiting for it */
}

/* Arm the leaf timer for the earliest renewal or root pruning. */
void
node_leaves_arm(struct helperd *h)
{
	int64_t now = (int64_t)time(NULL), next = now + LEAF_CHECK_MAX_S;
	int64_t prune = h->ca != NULL ? ca_prune_due(h->ca) : 0;

	for (size_t i = 0; i < h->n_leaves; i++)
		if (h->leaves[i].leaf->renew_at < next)
			next = h->leaves[i].leaf->renew_at;
	if (prune != 0 && prune < next)
		next = prune;
	if (next <= now)
		next = now + 1;
	if (loop_timer_add(h->loop, &h->leaf_timer, (next - now) * 1000) != 0)
		log_err("leaves: out of memory: renewals are not timed");
}

static void
leaves_check(struct helperd *h)
{
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < h->n_leaves; i++) {
		if (now < h->leaves[i].leaf->renew_at)
			continue;
		if (ca_is_client(h->ca))
			cluster_leaf_request(h->cluster, h->leaves[i].service);
		else
			leaf_renew(h, &h->leaves[i], "scheduled");
	}
	if (ca_prune(h->ca, now) > 0) {
		tls_tickets_reset();
		log_info("dropped a retired CA root: every leaf it signed has "
		    "expired");
	}
	node_leaves_arm(h);
}

void
node_leaves_due(void *arg)
{
	leaves_check(arg);
}

/* Leaves for every local connect service, so that the first connection
 * does not pay for key generation. */
void
helperd_leaves_warm(struct helperd *h)
{
	char err[256];

	for (size_t i = 0; i < catalog_local_count(h->catalog); i++) {
		const struct conf_service *s = catalog_local_at(h->catalog, i);
		if (helperd_leaf(h, s->name, err, sizeof(err)) != NULL)
			continue;
		if (ca_is_client(h->ca))
			log_info("leaf for %s: %s", s->name, err);
		else
			log_err("leaf for %s: %s", s->name, err);
	}
}

int
helperd_ca_rotate(struct helperd *h, char *err, size_t errlen)
{
	/* In a cluster only the CA leader rotates, and only if it can hand
	 * the new root key to the other CA servers (ca.secret). */
	if (h->conf.store.backend == CONF_STORE_ETCD &&
	    cluster_ca_rotate_check(h->cluster, err, errlen) != 0)
		return -1;
	if (ca_rotate(h->ca, err, errlen) != 0)
		return -1;
	log_info("CA root rotated: active root is now %s",
	    ca_active_root_id(h->ca));
	for (size_t i = 0; i < h->n_leaves; i++)
		leaf_renew(h, &h->leaves[i], "root rotation");
	node_leaves_arm(h);          /* the old root: pruned when its leaves end */
	/* The other nodes: new roots (both trusted), the sealed keys. */
	if (h->conf.store.backend == CONF_STORE_ETCD)
		cluster_ca_publish(h->cluster);
	return 0;
}

void
helperd_ca_replace(struct helperd *h, struct ca *ca, const char *why)
{
	struct ca *old = h->ca;

	h->ca = ca;
	ca_free(old);
	h->leaf_gen++;
	tls_tickets_reset();
	log_info("CA: %s: active root is now %s", why,
	    ca_active_root_id(h->ca));
	for (size_t i = 0; i < h->n_leaves; i++)
		leaf_renew(h, &h->leaves[i], why);
	node_leaves_arm(h);
}

/* Intentions ------------------------------------------------------------ */

void
helperd_intentions_changed(struct helperd *h, const char *why)
{
	size_t n;

	helperd_assert_loop(h);
	/* The workers re-check against a snapshot holding the change
	 * (relay_recheck publishes it first). */
	h->intents_changes++;
	n = relay_recheck(h->relay, why);

	if (n > 0)
		log_warn("%s: closed %zu connection(s) that are now denied",
		    why, n);
	/* Direct connections are cut here, at once (each one logged). */
	(void)direct_recheck(h->direct, why);
}
