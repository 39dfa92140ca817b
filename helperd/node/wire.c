/* wire: what the node gives each module it creates (their envs) and
 * the ops through which they report back up to it. */
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
int
node_start_data_path(struct helperd *h, char *err, size_t errlen)
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
	if (node_catalog_refresh(h) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Served addresses and the DNS server that names them (issue 15). A DNS
 * port taken by another program is logged, not fatal: the mesh works
 * without it. 0/-1 with err. */
int
node_start_served(struct helperd *h, char *err, size_t errlen)
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
int
node_start_api(struct helperd *h, char *err, size_t errlen)
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

	if (node_acl_load(h, err, errlen) != 0 ||
	    ctl_start(&h->ctl, ctl_env_of(h, &cenv), h->conf.socket, err,
	    errlen) != 0)
		return -1;
	env.acl = h->acl;       /* node_acl_load made it */
	if (http_start(&h->http, &env, h->conf.http_addr, h->http_sock,
	    h->conf.limits.http_max_conns_per_client, h->http_bound,
	    sizeof(h->http_bound), err, errlen) != 0)
		return -1;
	if (h->conf.store.backend == CONF_STORE_ETCD &&
	    start_cluster(h, err, errlen) != 0)
		return -1;
	return 0;
}
