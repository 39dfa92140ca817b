/* daemon: the life of one node's helperd: start (data_dir, CA, store,
 * catalog, listeners, API, in that order, undone by helperd_stop on a
 * failure), stop, stats. The other files of node/ are in node_int.h. */
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

/* The leaf timer looks again at least this often (the wall clock may
 * move under a renewal time) and at most every second (a CA client's
 * request for a leaf past its renewal time is repeated until answered). */
#define LEAF_CHECK_MAX_S 600

void
node_path_in(char *buf, size_t len, const struct helperd *h, const char *name)
{
	snprintf(buf, len, "%s/%s", h->conf.data_dir, name);
}

/* Write j (consumed) to data_dir/name atomically. 0/-1 with err. */
int
node_write_json(struct helperd *h, const char *name, json_t *j, mode_t mode,
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
	node_path_in(path, sizeof(path), h, name);
	rc = util_write_atomic(path, s, strlen(s), mode);
	if (rc != 0)
		snprintf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
	free(s);
	return rc;
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
int
node_acl_load(struct helperd *h, char *err, size_t errlen)
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
	return node_write_json(h, "ports.json", j, 0644, err, errlen);
}

/* The workers' policy snapshot, published by this (the loop) thread. */
static void
policy_init(struct helperd *h)
{
	policy_cell_init(&h->policy, node_policy_refresh_cb, h);
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
	return node_observe_apply(h, err, errlen);
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
	loop_timer_init(&h->leaf_timer, node_leaves_due, h);
	loop_set_round_end(h->loop, node_policy_round_end, h);
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

	node_path_in(path, sizeof(path), h, "ca");
	if (etcd && !h->conf.ca.server) {
		if (ca_open_client(&h->ca, path, err, errlen) != 0)
			return -1;
	} else if ((etcd && h->conf.ca.secret[0] != '\0' &&
	    cluster_ca_fetch(&h->conf, path, err, errlen) != 0) ||
	    ca_open(&h->ca, path, h->conf.ca.root_ttl, err, errlen) != 0) {
		return -1;
	}
	node_path_in(path, sizeof(path), h, "intentions.json");
	if (intent_db_open(&h->intents, path, err, errlen) != 0)
		return -1;
	return node_api_services_load(h, err, errlen);
}



int
helperd_start(struct helperd *h, char *err, size_t errlen)
{
	policy_init(h);
	if (start_observe(h, err, errlen) != 0 ||
	    start_data_dir(h, err, errlen) != 0 ||
	    start_loop(h, err, errlen) != 0 ||
	    start_state(h, err, errlen) != 0 ||
	    node_start_data_path(h, err, errlen) != 0 ||
	    node_start_served(h, err, errlen) != 0 ||
	    node_start_api(h, err, errlen) != 0 ||
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
	node_leaves_arm(h);
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
		node_path_in(path, sizeof(path), h, "ports.json");
		unlink(path);
		h->ports_written = 0;
	}
	tls_global_deinit();
	h->http = NULL;
	h->ctl = NULL;
	h->relay = NULL;
}
