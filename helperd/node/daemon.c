/* daemon: the life of one node's helperd: start (CA, store, catalog,
 * listeners, API), leaf renewal (its own timer), reload, leaves per
 * service, API registrations, stop. */
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
#include "helperd/api/http.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay.h"
#include "helperd/local/served.h"
#include "helperd/relay/tls.h"

/* The leaf timer looks again at least this often (the wall clock may
 * move under a renewal time) and at most every second (a CA client's
 * request for a leaf past its renewal time is repeated until answered). */
#define LEAF_CHECK_MAX_S 600

static void
path_in(char *buf, size_t len, const struct helperd *h, const char *name)
{
	snprintf(buf, len, "%s/%s", h->conf.data_dir, name);
}

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

static void
policy_refresh_cb(void *arg)
{
	helperd_policy_refresh(arg);
}

/* The end of every main loop round (loop_set_round_end): what it changed, to
 * the relay workers. */
static void
policy_round_end(void *arg)
{
	helperd_policy_refresh(arg);
}

/* Write j (consumed) to data_dir/name atomically. 0/-1 with err. */
static int
write_json(struct helperd *h, const char *name, json_t *j, mode_t mode,
    char *err, size_t errlen)
{
	char path[CONF_PATH_MAX + 32], *s;
	int rc;

	s = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (s == NULL) {
		snprintf(err, errlen, "cannot encode %s", name);
		return -1;
	}
	path_in(path, sizeof(path), h, name);
	rc = util_write_atomic(path, s, strlen(s), mode);
	if (rc != 0)
		snprintf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
	free(s);
	return rc;
}

/* Leaves ---------------------------------------------------------------- */

static void leaves_arm(struct helperd *h);

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
	leaves_arm(h);
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
	leaves_arm(h);
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
		leaves_arm(h);
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
	leaves_arm(h);
	relay_leaf_ready(h->relay);     /* connections waiting for it */
}

/* Arm the leaf timer for the earliest renewal or root pruning. */
static void
leaves_arm(struct helperd *h)
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
	leaves_arm(h);
}

static void
leaves_due(void *arg)
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
	leaves_arm(h);          /* the old root: pruned when its leaves end */
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
	leaves_arm(h);
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

/* Services ------------------------------------------------------------- */

static int
catalog_refresh(struct helperd *h)
{
	if (catalog_set_local(h->catalog, h->conf.services,
	    h->conf.n_services, h->api_services, h->n_api_services) != 0)
		return -1;
	health_sync(h->health);
	helperd_leaves_warm(h);
	cluster_services_changed(h->cluster);
	if (h->served != NULL)
		served_sync(h->served);
	return 0;
}

static json_t *
service_def_json(const struct conf_service *s)
{
	json_t *ups = json_array();

	for (size_t i = 0; i < s->n_upstreams; i++)
		json_array_append_new(ups, json_pack("{s:s, s:s, s:i}",
		    "destination_name", s->upstreams[i].dest,
		    "local_bind_address", s->upstreams[i].bind_addr,
		    "local_bind_port", s->upstreams[i].bind_port));
	json_t *checks = json_array();

	for (size_t i = 0; i < s->n_checks; i++) {
		const struct conf_check *k = &s->checks[i];
		json_t *o = json_object();
		char d[32];

		if (k->type == CONF_CHECK_TTL) {
			snprintf(d, sizeof(d), "%ldms", k->ttl_ms);
			json_object_set_new(o, "ttl", json_string(d));
		} else {
			json_object_set_new(o, k->type == CONF_CHECK_TCP ?
			    "tcp" : "http", json_string(k->target));
		}
		if (k->interval_ms > 0) {
			snprintf(d, sizeof(d), "%ldms", k->interval_ms);
			json_object_set_new(o, "interval", json_string(d));
		}
		if (k->timeout_ms > 0) {
			snprintf(d, sizeof(d), "%ldms", k->timeout_ms);
			json_object_set_new(o, "timeout", json_string(d));
		}
		json_array_append_new(checks, o);
	}
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:{s:o}}, s:o}",
	    "id", s->id, "name", s->name, "address", s->address,
	    "port", s->port, "inbound",
	    s->inbound == CONF_INBOUND_STRICT ? "strict" : "permissive",
	    "connect", "proxy", "upstreams", ups, "checks", checks);
}

static int
api_services_save(struct helperd *h, char *err, size_t errlen)
{
	json_t *a;

	/* No registrations: no file ({"services": []} would not load). */
	if (h->n_api_services == 0) {
		char path[CONF_PATH_MAX + 32];

		path_in(path, sizeof(path), h, "services.json");
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	a = json_array();

	for (size_t i = 0; i < h->n_api_services; i++) {
		json_t *j = service_def_json(&h->api_services[i]);
		if (h->api_services[i].user[0] != '\0')
			json_object_set_new(j, "user",
			    json_string(h->api_services[i].user));
		if (h->api_services[i].unit[0] != '\0')
			json_object_set_new(j, "unit",
			    json_string(h->api_services[i].unit));
		json_array_append_new(a, j);
	}
	return write_json(h, "services.json", json_pack("{s:o}", "services",
	    a), 0600, err, errlen);
}

int
helperd_service_register(struct helperd *h, struct conf_service *svcs,
    size_t n, char *err, size_t errlen)
{
	struct conf_service *v;
	size_t old_n = h->n_api_services;

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < h->conf.n_services; j++)
			if (strcmp(h->conf.services[j].name,
			    svcs[i].name) == 0 ||
			    strcmp(h->conf.services[j].id, svcs[i].id) == 0) {
				snprintf(err, errlen, "service %s is defined "
				    "in %s; change it there", svcs[i].name,
				    h->conf.services[j].source);
				return -1;
			}
	}
	v = calloc(old_n + n, sizeof(*v));
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Re-registering an ID replaces it, as Consul does. */
	size_t k = 0;
	for (size_t i = 0; i < old_n; i++) {
		int replaced = 0;
		for (size_t j = 0; j < n; j++)
			if (strcmp(h->api_services[i].id, svcs[j].id) == 0)
				replaced = 1;
		if (replaced)
			conf_service_clear(&h->api_services[i]);
		else
			v[k++] = h->api_services[i];
	}
	for (size_t j = 0; j < n; j++)
		v[k++] = svcs[j];
	free(h->api_services);
	free(svcs);
	h->api_services = v;
	h->n_api_services = k;
	if (api_services_save(h, err, errlen) != 0)
		log_err("%s (the registration is kept in memory)", err);
	catalog_refresh(h);
	log_info("registered %zu service(s) through the API", n);
	return 0;
}

int
helperd_service_deregister(struct helperd *h, const char *id, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < h->n_api_services; i++) {
		if (strcmp(h->api_services[i].id, id) != 0)
			continue;
		conf_service_clear(&h->api_services[i]);
		memmove(&h->api_services[i], &h->api_services[i + 1],
		    (h->n_api_services - i - 1) * sizeof(*h->api_services));
		h->n_api_services--;
		if (api_services_save(h, err, errlen) != 0)
			log_err("%s", err);
		catalog_refresh(h);
		log_info("deregistered service %s", id);
		return 0;
	}
	snprintf(err, errlen, "Unknown service ID %s (only services "
	    "registered through the API can be deregistered)", id);
	return -1;
}

/* data_dir/services.json (API registrations) into *svcs; a missing file
 * is no registration. */
static int
api_services_read(const char *data_dir, struct conf_service **svcs,
    size_t *n, char *err, size_t errlen)
{
	char path[CONF_PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/services.json", data_dir);
	if (access(path, F_OK) != 0)
		return 0;
	return conf_parse_service_file(path, svcs, n, err, errlen);
}

static int
api_services_load(struct helperd *h, char *err, size_t errlen)
{
	return api_services_read(h->conf.data_dir, &h->api_services,
	    &h->n_api_services, err, errlen);
}

/* access_log and the log settings, from h->conf: at start, and at each
 * reload (SIGHUP reopens the files, for logrotate). */
static int
observe_apply(struct helperd *h, char *err, size_t errlen)
{
	int lvl = h->log_level_flag >= 0 ? h->log_level_flag :
	    log_level_parse(h->conf.log_level);

	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	log_set_json(h->log_json_flag || h->conf.log_json);
	if (log_set_file(h->conf.log_file, h->conf.log_rotate_bytes,
	    h->conf.log_rotate_max_files, err, errlen) != 0)
		return -1;
	return accesslog_configure(h->alog, h->conf.access_log.path,
	    h->conf.access_log.json, err, errlen);
}

int
helperd_check_state(const struct conf *c, size_t *n_api, char *err,
    size_t errlen)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	*n_api = 0;
	if (c->dev)
		return 0;    /* -dev: a new temporary data_dir */
	if (api_services_read(c->data_dir, &v, &n, err, errlen) != 0)
		return -1;
	conf_services_free(v, n);
	*n_api = n;
	return 0;
}

int
helperd_reload(struct helperd *h, char *err, size_t errlen)
{
	struct conf nc;
	int old_default = h->conf.default_allow;

	h->reload_note[0] = '\0';
	if (h->conf.path[0] == '\0') {
		/* -dev without a file: only services_dir can change. */
		if (conf_reload_services(&h->conf, err, errlen) != 0)
			return -1;
		helperd_reload_note(h, &h->conf);
	} else {
		conf_defaults(&nc, h->conf.dev);
		if (conf_load(&nc, h->conf.path, err, errlen) != 0) {
			conf_free(&nc);
			return -1;
		}
		conf_services_free(h->conf.services, h->conf.n_services);
		h->conf.services = nc.services;
		h->conf.n_services = nc.n_services;
		nc.services = NULL;
		nc.n_services = 0;
		h->conf.default_allow = nc.default_allow;
		h->conf.access_log = nc.access_log;
		memcpy(h->conf.log_level, nc.log_level,
		    sizeof(h->conf.log_level));
		h->conf.log_json = nc.log_json;
		memcpy(h->conf.log_file, nc.log_file, sizeof(h->conf.log_file));
		h->conf.log_rotate_bytes = nc.log_rotate_bytes;
		h->conf.log_rotate_max_files = nc.log_rotate_max_files;
		memcpy(h->conf.services_dir, nc.services_dir,
		    sizeof(h->conf.services_dir));
		memcpy(h->conf.notices, nc.notices, sizeof(h->conf.notices));
		/* Whatever was not copied above is not applied: say so. */
		helperd_reload_note(h, &nc);
		conf_free(&nc);
	}
	if (catalog_refresh(h) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	{
		char aerr[CONF_ERR_MAX];

		/* The previous file stays in use: say so, reload the rest. */
		if (observe_apply(h, aerr, sizeof(aerr)) != 0)
			log_err("reload: %s (the previous file stays in "
			    "use)", aerr);
	}
	log_info("reloaded: %zu service(s) from the configuration, "
	    "default_intention = %s", h->conf.n_services,
	    h->conf.default_allow ? "allow" : "deny");
	if (old_default != h->conf.default_allow)
		helperd_intentions_changed(h, "default_intention changed by "
		    "reload");
	return 0;
}

/* Stats ----------------------------------------------------------------- */

void
helperd_stats_log(struct helperd *h)
{
	helperd_assert_loop(h);
	log_info("stats: uptime %llds, %zu local service(s), %zu relayed "
	    "connection(s), %zu direct connection(s), %zu intention(s), "
	    "%zu leaf certificate(s)",
	    (long long)((util_now_ms_mono() - h->started_ms) / 1000),
	    catalog_local_count(h->catalog), relay_count(h->relay),
	    direct_count(h->direct), intent_count(h->intents), h->n_leaves);
}

/* Start and stop ---------------------------------------------------------- */

/* The ACL store and the API's unix socket path; says at start what is
 * open (-dev, acl.enabled = false) and what is exposed. */
static int
acl_start(struct helperd *h, char *err, size_t errlen)
{
	const char *sp = h->conf.http_socket;

	if (acl_open(&h->acl, h->conf.data_dir, h->conf.acl.enabled,
	    h->conf.acl.initial_management, err, errlen) != 0)
		return -1;
	if (strcmp(sp, "none") == 0) {
		h->http_sock[0] = '\0';
	} else if (sp[0] != '\0') {
		util_strlcpy(h->http_sock, sp, sizeof(h->http_sock));
	} else {
		/* Beside the control socket: /run/meshshim/http.sock. */
		const char *slash = strrchr(h->conf.socket, '/');
		int dl = slash != NULL ? (int)(slash - h->conf.socket) : 1;

		if (slash == NULL)
			snprintf(h->http_sock, sizeof(h->http_sock),
			    "http.sock");
		else if ((size_t)snprintf(h->http_sock, sizeof(h->http_sock),
		    "%.*s/http.sock", dl, h->conf.socket) >=
		    sizeof(h->http_sock)) {
			snprintf(err, errlen, "http_socket: the path beside "
			    "socket is too long; set http_socket");
			return -1;
		}
	}
	if (strncmp(h->conf.http_addr, "127.", 4) != 0 &&
	    strncmp(h->conf.http_addr, "[::1]", 5) != 0)
		log_warn("http_addr %s is not loopback: the API is reachable "
		    "from the network; every request from another host needs "
		    "an ACL token", h->conf.http_addr);
	if (h->conf.dev)
		log_warn("dev mode: the HTTP API is OPEN to every local user "
		    "(no ACLs: anyone may read leaf keys, write intentions, "
		    "rotate the CA) and any uid may claim any service name; "
		    "listening on loopback only. Do not use -dev in "
		    "production.");
	else if (!h->conf.acl.enabled)
		log_warn("acl.enabled = false: the HTTP API is open to every "
		    "local user (leaf keys, intentions, CA rotation)");
	else
		log_info("acl: enabled: writes and leaf keys need a token "
		    "(X-Consul-Token) or the unix socket %s as root or as "
		    "the service's user", h->http_sock[0] != '\0' ?
		    h->http_sock : "(off)");
	return 0;
}

static int
write_ports(struct helperd *h, char *err, size_t errlen)
{
	json_t *j;

	j = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:s}",
	    "http_addr", h->http_bound, "dns_addr", h->dns_bound,
	    "mesh_port", h->mesh_port_bound,
	    "outbound_port", h->outbound_port, "socket", h->conf.socket,
	    "node", h->conf.node,
	    "trust_domain", ca_trust_domain(h->ca));
	return write_json(h, "ports.json", j, 0644, err, errlen);
}

/* The workers' policy snapshot, published by this (the loop) thread. */
static void
policy_init(struct helperd *h)
{
	policy_cell_init(&h->policy, policy_refresh_cb, h);
	h->policy_ready = 1;
}

/* The log settings and the access log's writer. 0/-1 with err. */
static int
start_observe(struct helperd *h, char *err, size_t errlen)
{
	if ((h->alog = accesslog_new()) == NULL) {
		snprintf(err, errlen, "access log: cannot start its writer");
		return -1;
	}
	return observe_apply(h, err, errlen);
}

/* data_dir, created 0700 if missing. Keys, intentions and the CA live
 * there: another user who may create or rename files in it could make
 * helperd write through a link or read a planted key. 0/-1 with err. */
static int
start_data_dir(struct helperd *h, char *err, size_t errlen)
{
	char why[128];

	if (util_mkdirs(h->conf.data_dir, 0700) != 0) {
		snprintf(err, errlen, "data_dir %s: %s", h->conf.data_dir,
		    strerror(errno));
		return -1;
	}
	if (util_private_dir(h->conf.data_dir, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "data_dir %s: %s; helperd keeps keys "
		    "there and needs a directory only its own user can "
		    "change", h->conf.data_dir, why);
		return -1;
	}
	return 0;
}

/* GnuTLS and the main loop (each round ends publishing what it changed
 * to the relay workers: helperd_policy_refresh). */
static int
start_loop(struct helperd *h, char *err, size_t errlen)
{
	if (tls_global_init(err, errlen) != 0)
		return -1;
	if (loop_new(&h->loop) != 0) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		return -1;
	}
	loop_timer_init(&h->leaf_timer, leaves_due, h);
	loop_set_round_end(h->loop, policy_round_end, h);
	return 0;
}

/* The CA (a CA client takes its roots from the cluster and its leaves
 * from a CA server; a CA server with ca.secret first takes the cluster's
 * root keys), the intentions, the API registrations. 0/-1 with err. */
static int
start_state(struct helperd *h, char *err, size_t errlen)
{
	char path[CONF_PATH_MAX + 32];
	int etcd = h->conf.store.backend == CONF_STORE_ETCD;

	path_in(path, sizeof(path), h, "ca");
	if (etcd && !h->conf.ca.server) {
		if (ca_open_client(&h->ca, path, err, errlen) != 0)
			return -1;
	} else if ((etcd && h->conf.ca.secret[0] != '\0' &&
	    cluster_ca_fetch(&h->conf, path, err, errlen) != 0) ||
	    ca_open(&h->ca, path, h->conf.ca.root_ttl, err, errlen) != 0) {
		return -1;
	}
	path_in(path, sizeof(path), h, "intentions.json");
	if (intent_db_open(&h->intents, path, err, errlen) != 0)
		return -1;
	return api_services_load(h, err, errlen);
}

/* health's op: what the cluster publishes of this node's services is
 * stale (h->cluster read now: NULL while embedded or not started yet). */
static void
health_services_changed(void *cookie)
{
	struct helperd *h = cookie;

	cluster_services_changed(h->cluster);
}

/* The env of health, from what h holds now (its catalog made). The
 * config is h->conf itself: a reload changes it in place, on the loop
 * thread that health runs on. */
static const struct health_env *
health_env_of(struct helperd *h, struct health_env *e)
{
	static const struct health_ops ops = {
		.services_changed = health_services_changed,
	};

	*e = (struct health_env){ .conf = &h->conf, .loop = h->loop,
		.catalog = h->catalog, .ops = &ops, .cookie = h };
	return e;
}

/* The env of direct, from what h holds now (its catalog made). */
static const struct direct_env *
direct_env_of(struct helperd *h, struct direct_env *e)
{
	*e = (struct direct_env){ .conf = &h->conf, .loop = h->loop,
		.catalog = h->catalog, .intents = h->intents };
	return e;
}

/* relay_ops.leaf: a worker's connection waits for this leaf. */
static struct ca_leaf *
relay_op_leaf(void *cookie, const char *service, char *err, size_t errlen)
{
	return helperd_leaf(cookie, service, err, errlen);
}

/* Catalog, health, relay (its workers and listeners), direct; then the
 * local services into the catalog. 0/-1 with err. */
static int
start_data_path(struct helperd *h, char *err, size_t errlen)
{
	static const struct relay_ops relay_ops = { .leaf = relay_op_leaf };
	struct relay_env renv = {
		.conf = &h->conf, .loop = h->loop, .policy = &h->policy,
		.ca = &h->ca, .alog = h->alog, .ops = &relay_ops, .cookie = h,
	};
	struct catalog_health_ops ops;
	struct health_env henv;
	struct direct_env denv;

	if (h->workers < 1) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		h->workers = n < 1 ? 1 : n > 16 ? 16 : (int)n;
	}
	if (catalog_new(&h->catalog, h->conf.node, h->conf.datacenter) != 0 ||
	    health_new(&h->health, health_env_of(h, &henv)) != 0 ||
	    relay_new(&h->relay, &renv, h->workers) != 0 ||
	    direct_new(&h->direct, direct_env_of(h, &denv)) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ops = health_catalog_ops(h->health);
	catalog_set_health(h->catalog, &ops);
	if (relay_listen_mesh(h->relay, h->conf.bind_addr, h->conf.mesh_port,
	    &h->mesh_port_bound, err, errlen) != 0 ||
	    relay_listen_outbound(h->relay, &h->outbound_port, err,
	    errlen) != 0)
		return -1;
	catalog_set_node(h->catalog, h->conf.advertise_addr,
	    h->mesh_port_bound);
	if (catalog_refresh(h) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Served addresses and the DNS server that names them (issue 15). A DNS
 * port taken by another program is logged, not fatal: the mesh works
 * without it. 0/-1 with err. */
static int
start_served(struct helperd *h, char *err, size_t errlen)
{
	struct served_env senv = { .conf = &h->conf, .loop = h->loop,
		.catalog = h->catalog, .intents = h->intents,
		.relay = h->relay };
	char derr[256];

	if (served_new(&h->served, &senv, err, errlen) != 0)
		return -1;
	served_sync(h->served);
	if (h->conf.dns_addr[0] == '\0')
		return 0;
	if (dns_start(&h->dns, h->loop, h->conf.dns_addr, h->conf.dns_domain,
	    served_lookup, h->served, h->dns_bound, sizeof(h->dns_bound),
	    derr, sizeof(derr)) != 0)
		log_err("no DNS server: %s", derr);
	else
		log_info("DNS on %s (udp): <service>.service.%s, "
		    ".service.consul, .connect.consul", h->dns_bound,
		    h->conf.dns_domain);
	return 0;
}

/* The env of the control socket, from what h holds now (ACLs open, the
 * outbound port bound: it never changes). The node keeps the counter of
 * refusals (/v1/agent/self reads it); ctl increments it. */
static const struct ctl_env *
ctl_env_of(struct helperd *h, struct ctl_env *e)
{
	*e = (struct ctl_env){ .conf = &h->conf, .loop = h->loop,
		.catalog = h->catalog, .intents = h->intents, .acl = h->acl,
		.relay = h->relay, .direct = h->direct,
		.outbound_port = h->outbound_port,
		.refused_all_critical = &h->refused_all_critical };
	return e;
}

/* The cluster's reports (cluster_ops), on the loop thread. */
static void
on_cluster_intentions(void *cookie, const char *why)
{
	helperd_intentions_changed(cookie, why);
}

static void
on_cluster_ca_replace(void *cookie, struct ca *ca, const char *why)
{
	helperd_ca_replace(cookie, ca, why);
}

static void
on_cluster_leaf_installed(void *cookie, struct ca_leaf *leaf)
{
	helperd_leaf_installed(cookie, leaf);
}

static void
on_cluster_leaves_warm(void *cookie)
{
	helperd_leaves_warm(cookie);
}

static void
on_cluster_leaves_each(void *cookie, void (*fn)(void *arg,
    const char *service, const struct ca_leaf *leaf), void *arg)
{
	struct helperd *h = cookie;

	for (size_t i = 0; i < h->n_leaves; i++)
		fn(arg, h->leaves[i].service, h->leaves[i].leaf);
}

/* The cluster (store = etcd): it gets the handles it uses and reports
 * through cluster_ops. 0/-1 with err. */
static int
start_cluster(struct helperd *h, char *err, size_t errlen)
{
	static const struct cluster_ops ops = {
		.intentions_changed = on_cluster_intentions,
		.ca_replace = on_cluster_ca_replace,
		.leaf_installed = on_cluster_leaf_installed,
		.leaves_warm = on_cluster_leaves_warm,
		.leaves_each = on_cluster_leaves_each,
	};
	/* ca: a pointer to h->ca, which helperd_ca_replace replaces. */
	struct cluster_env env = {
		.conf = &h->conf, .loop = h->loop, .catalog = h->catalog,
		.intents = h->intents, .health = h->health,
		.served = h->served, .ca = &h->ca,
		.mesh_port_bound = h->mesh_port_bound, .ops = &ops,
		.cookie = h,
	};

	return cluster_start(&h->cluster, &env, err, errlen);
}

/* The HTTP API's ops (api_ops in http.h): what its routes ask of the
 * node, on the loop thread. */
static int
api_reload(void *cookie, char *note, size_t notelen, char *err,
    size_t errlen)
{
	struct helperd *h = cookie;

	if (helperd_reload(h, err, errlen) != 0)
		return -1;
	util_strlcpy(note, h->reload_note, notelen);
	return 0;
}

static int
api_service_register(void *cookie, struct conf_service *svcs, size_t n,
    char *err, size_t errlen)
{
	return helperd_service_register(cookie, svcs, n, err, errlen);
}

static int
api_service_deregister(void *cookie, const char *id, char *err,
    size_t errlen)
{
	return helperd_service_deregister(cookie, id, err, errlen);
}

static int
api_ca_rotate(void *cookie, char *err, size_t errlen)
{
	return helperd_ca_rotate(cookie, err, errlen);
}

static struct ca_leaf *
api_leaf(void *cookie, const char *service, char *err, size_t errlen)
{
	return helperd_leaf(cookie, service, err, errlen);
}

static void
api_intentions_changed(void *cookie, const char *why)
{
	helperd_intentions_changed(cookie, why);
}

static const struct ca_leaf *
api_leaf_next(void *cookie, size_t *pos)
{
	struct helperd *h = cookie;

	for (; *pos < h->n_leaves; (*pos)++)
		if (h->leaves[*pos].leaf != NULL)
			return h->leaves[(*pos)++].leaf;
	return NULL;
}

static uint64_t
api_refused_all_critical(void *cookie)
{
	return ((struct helperd *)cookie)->refused_all_critical;
}

/* ACLs, the control socket, the HTTP API, the cluster (store = etcd).
 * 0/-1 with err. */
static int
start_api(struct helperd *h, char *err, size_t errlen)
{
	struct ctl_env cenv;
	static const struct api_ops api_ops = {
		.reload = api_reload,
		.service_register = api_service_register,
		.service_deregister = api_service_deregister,
		.ca_rotate = api_ca_rotate,
		.leaf = api_leaf,
		.intentions_changed = api_intentions_changed,
		.leaf_next = api_leaf_next,
		.refused_all_critical = api_refused_all_critical,
	};
	struct api_env env = {
		.conf = &h->conf, .loop = h->loop, .catalog = h->catalog,
		.intents = h->intents, .health = h->health,
		.relay = h->relay, .direct = h->direct, .dns = h->dns,
		.alog = h->alog, .ca = &h->ca, .cluster = &h->cluster,
		.started_ms = &h->started_ms, .mesh_port = h->mesh_port_bound,
		.http_sock = h->http_sock, .http_bound = h->http_bound,
		.ops = &api_ops, .cookie = h,
	};

	if (acl_start(h, err, errlen) != 0 ||
	    ctl_start(&h->ctl, ctl_env_of(h, &cenv), h->conf.socket, err,
	    errlen) != 0)
		return -1;
	env.acl = h->acl;       /* acl_start made it */
	if (http_start(&h->http, &env, h->conf.http_addr, h->http_sock,
	    h->conf.limits.http_max_conns_per_client, h->http_bound,
	    sizeof(h->http_bound), err, errlen) != 0)
		return -1;
	if (h->conf.store.backend == CONF_STORE_ETCD &&
	    start_cluster(h, err, errlen) != 0)
		return -1;
	return 0;
}

int
helperd_start(struct helperd *h, char *err, size_t errlen)
{
	policy_init(h);
	if (start_observe(h, err, errlen) != 0 ||
	    start_data_dir(h, err, errlen) != 0 ||
	    start_loop(h, err, errlen) != 0 ||
	    start_state(h, err, errlen) != 0 ||
	    start_data_path(h, err, errlen) != 0 ||
	    start_served(h, err, errlen) != 0 ||
	    start_api(h, err, errlen) != 0 ||
	    write_ports(h, err, errlen) != 0)
		goto fail;
	h->ports_written = 1;
	log_info("helperd %s up: node %s, dc %s, trust domain %s, mesh port "
	    "%s:%d, HTTP %s%s%s, control %s, %zu service(s), default %s%s",
	    MESHSHIM_VERSION, h->conf.node, h->conf.datacenter,
	    ca_trust_domain(h->ca),
	    h->conf.bind_addr, h->mesh_port_bound, h->http_bound,
	    h->http_sock[0] != '\0' ? " and unix:" : "", h->http_sock,
	    h->conf.socket, catalog_local_count(h->catalog),
	    h->conf.default_allow ? "allow" : "deny",
	    h->conf.same_node_mtls ? "" : ", same-node without TLS");
	h->started_ms = util_now_ms_mono();
	leaves_arm(h);
	helperd_policy_refresh(h);
	return 0;
fail:
	/* One teardown, in the reverse order of the steps above; it skips
	 * what a step never made. */
	helperd_stop(h);
	return -1;
}

void
helperd_stop(struct helperd *h)
{
	char path[CONF_PATH_MAX + 32];

	cluster_stop(h->cluster);
	h->cluster = NULL;
	http_stop(h->http);
	acl_free(h->acl);
	h->acl = NULL;
	ctl_stop(h->ctl);
	dns_stop(h->dns);
	h->dns = NULL;
	served_free(h->served);
	h->served = NULL;
	relay_free(h->relay);
	h->relay = NULL;
	/* The workers are gone: nobody reads the snapshot any more. */
	if (h->policy_ready) {
		policy_cell_fini(&h->policy);
		h->policy_ready = 0;
	}
	policy_part_put(h->pol_intents);
	policy_part_put(h->pol_dial);
	policy_part_put(h->pol_ident);
	h->pol_intents = h->pol_dial = h->pol_ident = NULL;
	/* Every connection has closed: their lines are queued. */
	accesslog_free(h->alog);
	h->alog = NULL;
	/* Direct connections are the apps' own: they outlive helperd. */
	direct_free(h->direct);
	h->direct = NULL;
	health_free(h->health);
	h->health = NULL;
	if (h->loop != NULL) {
		loop_timer_del(h->loop, &h->leaf_timer);
		loop_run_once(h->loop, 0); /* run deferred frees */
	}
	for (size_t i = 0; i < h->n_leaves; i++)
		ca_leaf_unref(h->leaves[i].leaf);
	free(h->leaves);
	h->leaves = NULL;
	h->n_leaves = 0;
	catalog_free(h->catalog);
	h->catalog = NULL;
	intent_db_free(h->intents);
	h->intents = NULL;
	ca_free(h->ca);
	h->ca = NULL;
	loop_free(h->loop);
	h->loop = NULL;
	conf_services_free(h->api_services, h->n_api_services);
	h->api_services = NULL;
	h->n_api_services = 0;
	/* Only our own: a start that failed (another helperd on the same
	 * data_dir holds the ports) leaves that one's file alone. */
	if (h->ports_written) {
		path_in(path, sizeof(path), h, "ports.json");
		unlink(path);
		h->ports_written = 0;
	}
	tls_global_deinit();
	h->http = NULL;
	h->ctl = NULL;
	h->relay = NULL;
}
