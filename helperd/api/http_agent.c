/* http_agent: observing the node over the API: /v1/agent/metrics (Consul
 * JSON, or Prometheus text with ?format=prometheus),
 * /v1/agent/connections (list, and DELETE .../:id to cut one),
 * /v1/agent/members. Shapes: docs/observability.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "helperd/obs/accesslog.h"
#include "helperd/identity/acl.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/cluster/cluster.h"
#include "helperd/local/health.h"
#include "helperd/api/http.h"
#include "helperd/obs/metrics.h"
#include "helperd/relay/relay.h"

/* Cutting a connection, listing who makes which (pid, uid, unit of
 * every local program) and following the log are the operator's:
 * operator:write (a management token, or root on the unix socket). The
 * metrics and members are aggregates, open to local readers as the
 * catalog is. */
static int
agent_operator(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *what)
{
	return http_allowed(req, resp, acl_operator_write(e->acl, req->caller),
	    "operator:write", what);
}

static void
health_metrics(const struct api_env *e, struct metrics *m)
{
	static const char *states[] = { "passing", "warning", "critical" };
	json_t *checks = health_agent_checks_json(e->health);
	double n[3] = { 0 };
	const char *k;
	json_t *v;

	json_object_foreach(checks, k, v) {
		const char *st = json_string_value(json_object_get(v,
		    "Status"));

		for (int i = 0; i < 3; i++)
			if (st != NULL && strcmp(st, states[i]) == 0)
				n[i]++;
	}
	json_decref(checks);
	for (int i = 0; i < 3; i++)
		metrics_gauge(m, "meshshim_health_checks", i ? "" : "Health "
		    "checks of the local services, by state.", n[i], "state",
		    states[i], NULL);
}

struct metrics *
http_agent_metrics(const struct api_env *e)
{
	int64_t now_ms = util_now_ms_mono();
	struct metrics *m = metrics_new((double)(now_ms - *e->started_ms) /
	    1000.0);
	const struct ca_leaf *l;
	uint64_t written, dropped;
	time_t now = time(NULL);

	if (m == NULL)
		return NULL;
	metrics_gauge(m, "meshshim_uptime_seconds", "Seconds since helperd "
	    "started.", (double)(now_ms - *e->started_ms) / 1000.0, NULL);
	relay_metrics(e->relay, m);
	for (size_t pos = 0, i = 0; (l = e->ops->leaf_next(e->cookie,
	    &pos)) != NULL; i++) {
		metrics_gauge(m, "meshshim_leaf_expiry_seconds", i ? "" :
		    "Seconds until the current leaf certificate of each "
		    "service expires.", (double)(l->not_after - now),
		    "service", l->service, NULL);
		metrics_gauge(m, "meshshim_leaf_renewal_seconds", i ? "" :
		    "Seconds until each service's leaf is due for renewal; "
		    "negative: overdue (the renewal failed, or waits for the "
		    "CA).", (double)(l->renew_at - now), "service", l->service,
		    NULL);
	}
	health_metrics(e, m);
	metrics_gauge(m, "meshshim_catalog_remote_instances", "Instances "
	    "of other nodes known from the store.",
	    (double)catalog_remote_count(e->catalog), NULL);
	metrics_gauge(m, "meshshim_catalog_local_services", "Services "
	    "defined on this node.", (double)catalog_local_count(e->catalog),
	    NULL);
	if ((*e->cluster) != NULL)
		metrics_gauge(m, "meshshim_etcd_up", "1 while etcd answers, 0 "
		    "while the node runs degraded on what it last knew.",
		    cluster_degraded((*e->cluster)) ? 0 : 1, NULL);
	accesslog_stats(e->alog, &written, &dropped);
	metrics_counter(m, "meshshim_access_log_lines_total", "Access log "
	    "lines written.", (double)written, NULL);
	metrics_counter(m, "meshshim_access_log_dropped_total", "Access log "
	    "lines dropped: the writer fell behind (buffer full) or the "
	    "write failed.",
	    (double)dropped, NULL);
	metrics_process(m);
	return m;
}

static void
agent_metrics(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	const char *fmt = http_query(req, "format");
	struct metrics *m = http_agent_metrics(e);

	if (m == NULL) {
		http_reply_text(resp, 500, "out of memory");
		return;
	}
	if (fmt != NULL && strcmp(fmt, "prometheus") == 0) {
		size_t len = 0;
		char *s = metrics_prometheus(m, &len);

		metrics_free(m);
		if (s == NULL) {
			http_reply_text(resp, 500, "out of memory");
			return;
		}
		free(resp->body);
		resp->status = 200;
		resp->body = s;
		resp->len = len;
		resp->ctype = "text/plain; version=0.0.4; charset=utf-8";
		return;
	}
	if (fmt != NULL && fmt[0] != '\0') {
		metrics_free(m);
		http_reply_text(resp, 400, "Unknown format %s (expected "
		    "prometheus, or none for JSON)", fmt);
		return;
	}
	http_reply_json(resp, 200, metrics_json(m));
	metrics_free(m);
}

static void
agent_conn_kill(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *id_s)
{
	long long id;
	char *end;

	errno = 0;
	id = strtoll(id_s, &end, 10);
	if (id_s[0] < '0' || id_s[0] > '9' || *end != '\0' || errno != 0 ||
	    id <= 0) {
		http_reply_text(resp, 400, "Invalid connection ID %.40s "
		    "(expected a number from meshctl conns)", id_s);
		return;
	}
	if (!agent_operator(e, req, resp, "connection kill"))
		return;
	if (relay_conn_kill(e->relay, (uint64_t)id) != 0) {
		http_reply_text(resp, 404, "No relaying connection with ID %lld",
		    id);
		return;
	}
	log_info("conn %lld: kill asked through the API", id);
	http_reply_text(resp, 200, "%s", "");
}

/* The nodes this node knows (itself first), as `consul members`. */
static json_t *
agent_members(const struct api_env *e)
{
	json_t *nodes = catalog_nodes_json(e->catalog), *a = json_array(), *n;
	size_t i;

	json_array_foreach(nodes, i, n) {
		const char *name = json_string_value(json_object_get(n,
		    "Node"));
		int self = name != NULL && strcmp(name, e->conf->node) == 0;
		const char *status = "alive";

		if (self && (*e->cluster) != NULL && cluster_degraded((*e->cluster)))
			status = "degraded";
		json_array_append_new(a, json_pack("{s:s?, s:O?, s:s, s:s, "
		    "s:s, s:b}", "Name", name, "Addr", json_object_get(n,
		    "Address"), "Status", status, "Datacenter",
		    e->conf->datacenter, "Version", self ? MESHSHIM_VERSION :
		    "", "Self", self));
	}
	json_decref(nodes);
	return a;
}

static void
metrics_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	agent_metrics(e, req, resp);
}

static void
conns_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	if (agent_operator(e, req, resp, "connections"))
		http_reply_json(resp, 200, relay_conns_json(e->relay));
}

static void
monitor_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)rest;
	if (agent_operator(e, req, resp, "monitor"))
		http_monitor_start(req, resp);
}

static void
members_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp, const char *rest)
{
	(void)req, (void)rest;
	http_reply_json(resp, 200, agent_members(e));
}

static const struct http_route agent_routes[] = {
	{ "GET", "/v1/agent/metrics", metrics_route, 0 },
	{ "GET", "/v1/agent/connections", conns_route, 0 },
	{ "DELETE", "/v1/agent/connections/", agent_conn_kill, 0 },
	{ "GET", "/v1/agent/monitor", monitor_route, 0 },
	{ "GET", "/v1/agent/members", members_route, 0 },
};

int
http_agent_route(const struct api_env *e, const struct http_req *req,
    struct http_resp *resp)
{
	return http_route_table(e, req, resp, agent_routes,
	    UTIL_ARRAY_LEN(agent_routes));
}
