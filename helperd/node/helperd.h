/* helperd: the state of one node's daemon, shared by its modules. One
 * thread runs the event loop; every module below is called from it and
 * only it changes this state. The relay workers read none of it directly:
 * they read the policy snapshot (policy.h) the loop thread publishes. */
#ifndef MESH_HELPERD_H
#define MESH_HELPERD_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "conf/conf.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/policy.h"

struct ca;
struct ca_leaf;
struct intent_db;
struct catalog;
struct loop;
struct http_server;
struct ctl_server;
struct relay;
struct direct;
struct cluster;
struct health;
struct served;
struct dns_server;
struct acl;
struct accesslog;

struct helperd {
	struct conf conf;
	/* What the relay workers read: one immutable snapshot of the
	 * intentions, the instances to dial, the trust and the leaves,
	 * published by the loop thread after every change (policy.h;
	 * helperd_policy_refresh). There is no node lock. */
	struct policy_cell policy;
	int policy_ready;                   /* policy initialised */
	struct policy_part *pol_intents, *pol_dial, *pol_ident; /* in it */
	struct {                            /* what they were built from */
		uint64_t intents_index, intents_changes, catalog, ca, leaves;
		const struct ca *ca_ptr;
		int default_allow, valid[3];
	} pol_seen;
	uint64_t pol_gen;
	uint64_t intents_changes;           /* helperd_intentions_changed */
	uint64_t leaf_gen;                  /* every change of leaves[] */
	int workers;                    /* relay threads [number of CPUs] */
	struct loop *loop;
	struct ca *ca;
	struct intent_db *intents;
	struct catalog *catalog;
	struct health *health;              /* checks of the local services */
	struct http_server *http;
	struct ctl_server *ctl;
	struct relay *relay;
	struct direct *direct;               /* same-node direct connections */
	struct cluster *cluster;            /* store = etcd; NULL: embedded */
	struct served *served;              /* per-service loopback addresses */
	struct dns_server *dns;             /* NULL: dns_addr = "" or unbound */
	char dns_bound[CONF_ADDR_MAX];      /* "" when no DNS server */
	struct acl *acl;                    /* tokens, policies, grants */
	struct accesslog *alog;             /* access_log (always there) */
	int log_level_flag;                 /* -log-level given: file's
	                                       log_level ignored (-1: none) */
	int log_json_flag;                  /* -log-json given */
	int64_t started_ms;                 /* monotonic, for uptime */
	char http_bound[CONF_ADDR_MAX];
	char http_sock[108];                /* the API's unix socket, or "" */
	int mesh_port_bound;
	int outbound_port;              /* loopback port shims connect to */
	int stopping;
	int ports_written;                  /* data_dir/ports.json is ours */
	struct conf_service *api_services;  /* registered through the API */
	size_t n_api_services;
	struct leaf_slot *leaves;           /* current leaf per service */
	size_t n_leaves;
	struct loop_timer leaf_timer;       /* the next renewal or pruning */
	uint64_t refused_all_critical;      /* connections refused: every
	                                     * instance critical (main loop) */
	char reload_note[1000];             /* what the last reload did not
	                                     * apply, lines; "" if all */
};

struct leaf_slot {
	char service[64];
	struct ca_leaf *leaf;
};

/* The caller is the loop thread (what a comment "main loop only" says). */
#define helperd_assert_loop(h) \
	assert((h)->loop == NULL || loop_is_mine((h)->loop))

/* Loop thread: publish a new policy snapshot if the intentions, the
 * catalog, the default, the CA or the leaves changed since the last one.
 * Cheap when nothing did (a few counters compared). */
void helperd_policy_refresh(struct helperd *h);

/* Bring the node up from h->conf: data_dir, CA, intentions, catalog,
 * listeners, control socket, HTTP API, ports.json. 0, or -1 with err
 * after undoing what it did (helperd_stop). */
int helperd_start(struct helperd *h, char *err, size_t errlen);
/* Close everything helperd_start opened; what it never opened is
 * skipped, and a second call does nothing more. */
void helperd_stop(struct helperd *h);

/* Called after any intention change (API, reload): every open connection
 * whose pair is now denied is closed, with a log line per connection. */
void helperd_intentions_changed(struct helperd *h, const char *why);

/* Re-read the services (mesh.conf + services_dir) and default_intention.
 * A failed reload keeps the running configuration. 0/-1 with err. */
int helperd_reload(struct helperd *h, char *err, size_t errlen);

/* reload_note.c. What reloading to nc leaves unapplied (keys that
 * differ from the running h->conf after the reload copied what it
 * applies; nc's notices): logged, and kept in h->reload_note for the
 * reply. */
void helperd_reload_note(struct helperd *h, const struct conf *nc);
/* Each line of a conf's notices as a warning in the log. */
void helperd_notices_log(const char *notices);

/* One log line of counters (SIGUSR1, Consul's habit). Loop thread. */
void helperd_stats_log(struct helperd *h);

/* For -check: load what helperd_start loads from data_dir (the API
 * registrations in services.json), so that -check fails where a start
 * would. *n_api: how many registrations it holds. */
int helperd_check_state(const struct conf *c, size_t *n_api, char *err,
    size_t errlen);

/* The current leaf of a local (or ad-hoc) service, issuing one if needed
 * (a CA client asks a CA server and returns NULL meanwhile). Main loop
 * only: it may generate a key. Borrowed reference, valid until the next
 * loop iteration. */
struct ca_leaf *helperd_leaf(struct helperd *h, const char *service,
    char *err, size_t errlen);

/* Make leaf (a new reference, taken over) the current leaf of its service:
 * a CA client's leaf came back signed from a CA server. */
void helperd_leaf_installed(struct helperd *h, struct ca_leaf *leaf);
/* Get (or ask for) a leaf for every local service. */
void helperd_leaves_warm(struct helperd *h);

/* Register services from the API (PUT /v1/agent/service/register); they
 * are kept in data_dir and survive a restart. Takes ownership of svcs on
 * success. A name that the config already defines is an error. 0/-1. */
int helperd_service_register(struct helperd *h, struct conf_service *svcs,
    size_t n, char *err, size_t errlen);
/* Deregister an API-registered service by ID. 0/-1 (unknown ID). */
int helperd_service_deregister(struct helperd *h, const char *id, char *err,
    size_t errlen);

/* Root rotation requested by the API/CLI: rotate, re-issue every leaf
 * (in a cluster: on the CA leader, then published). */
int helperd_ca_rotate(struct helperd *h, char *err, size_t errlen);
/* A CA server took a newer CA from the cluster (another CA server
 * rotated): make ca (taken over) the node's CA, re-issue every leaf. */
void helperd_ca_replace(struct helperd *h, struct ca *ca, const char *why);

#endif
