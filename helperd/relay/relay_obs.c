/* relay_obs: what the relay tells about its connections. Counters live
 * in each worker (struct obs_worker) with one writer, the worker, and
 * are summed when read: nothing shared is touched per byte. Bytes are
 * counted by the pipes already (moved); each relay round adds what it
 * moved to the worker's pair counters and publishes the connection's
 * totals for the API. The list of relaying connections (for the API and
 * `meshctl conns`) is taken once when a connection starts relaying and
 * once when it closes. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/obs/accesslog.h"
#include "helperd/identity/ca.h"
#include "helperd/obs/metrics.h"
#include "helperd/relay/relay_int.h"

/* Upper bounds of the latency buckets, microseconds. */
static const int64_t hist_us[OBS_HIST_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 5000000,
};

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
/* One writer: a load and a store, no locked read-modify-write. */
#define BUMP(x, v) atomic_store_explicit(&(x), LD(x) + (v), \
	memory_order_relaxed)

int64_t
relay_obs_now_us(void)
{
	return util_now_us_mono();
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
hist_add(struct obs_hist *hs, int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < OBS_HIST_BUCKETS && us > hist_us[i])
		i++;
	BUMP(hs->b[i], 1);
	BUMP(hs->count, 1);
	BUMP(hs->sum_us, (uint64_t)us);
	if ((uint64_t)us > LD(hs->max_us))
		atomic_store_explicit(&hs->max_us, (uint64_t)us,
		    memory_order_relaxed);
}

/* The counters of (dir, src, dst) in o, added on first sight; o's one
 * writer calls this. */
static struct obs_pair *
pair_find(struct obs_worker *o, int dir, const char *src, const char *dst)
{
	size_t n = atomic_load_explicit(&o->n_pairs, memory_order_acquire);
	struct obs_pair *p;

	if (src[0] == '\0')
		src = "_unknown";
	if (dst[0] == '\0')
		dst = "_unknown";
	for (size_t i = 0; i < n; i++) {
		p = &o->pairs[i];
		if (p->dir == dir && strcmp(p->src, src) == 0 &&
		    strcmp(p->dst, dst) == 0)
			return p;
	}
	/* Full: the last slot stands for every other pair. */
	if (n == OBS_PAIRS_MAX)
		return &o->pairs[OBS_PAIRS_MAX - 1];
	p = &o->pairs[n];
	memset(p, 0, sizeof(*p));
	util_strlcpy(p->src, n == OBS_PAIRS_MAX - 1 ? "_other" : src,
	    sizeof(p->src));
	util_strlcpy(p->dst, n == OBS_PAIRS_MAX - 1 ? "_other" : dst,
	    sizeof(p->dst));
	p->dir = dir;
	atomic_store_explicit(&o->n_pairs, n + 1, memory_order_release);
	return p;
}

/* The worker's counters of c's pair (found once per worker). */
static struct obs_pair *
pair_of(struct conn *c)
{
	if (c->obs.pair == NULL || c->obs.pw != c->w) {
		c->obs.pair = pair_find(&c->w->obs, (int)c->kind, c->src,
		    c->dst);
		c->obs.pw = c->w;
	}
	return c->obs.pair;
}

void
relay_obs_new(struct conn *c)
{
	c->obs.t_new_us = relay_obs_now_us();
	c->obs.wall_open_ms = wall_ms();
}

void
relay_obs_dial(struct conn *c)
{
	c->obs.t_dial_us = relay_obs_now_us();
	if (c->kind == CONN_OUT && c->tries > 0)
		util_strlcpy(c->obs.node, c->tried[c->tries - 1],
		    sizeof(c->obs.node));
}

void
relay_obs_handshake(struct conn *c)
{
	int64_t now = relay_obs_now_us();

	/* The dial is over when the handshake starts (client side). */
	if (c->obs.t_dial_us > 0) {
		hist_add(&c->w->obs.hist[OBS_H_DIAL], now - c->obs.t_dial_us);
		c->obs.t_dial_us = 0;
	}
	c->obs.t_hs_us = now;
}

void
relay_obs_handshake_done(struct conn *c)
{
	struct obs_worker *o = &c->w->obs;
	int server = c->kind == CONN_IN;
	int64_t t0 = c->obs.t_hs_us ? c->obs.t_hs_us : c->obs.t_new_us;

	hist_add(&o->hist[server ? OBS_H_HS_SERVER : OBS_H_HS_CLIENT],
	    relay_obs_now_us() - t0);
	if (c->peer.resumed)
		BUMP(o->hs_resumed[server], 1);
	else
		BUMP(o->hs_full[server], 1);
}

void
relay_obs_check(struct conn *c, int ok, const char *why)
{
	struct obs_worker *o = &c->w->obs;

	if (ok) {
		BUMP(o->checks_allow, 1);
		return;
	}
	BUMP(o->checks_deny, 1);
	if (c->obs.result == OBS_OK)
		c->obs.result = OBS_DENIED;
	util_strlcpy(c->obs.why, why, sizeof(c->obs.why));
	/* The outbound half of a same-node pair says why it ends. */
	if (c->pair != NULL && c->pair->obs.result == OBS_OK) {
		c->pair->obs.result = OBS_DENIED;
		util_strlcpy(c->pair->obs.why, why, sizeof(c->pair->obs.why));
	}
}

void
relay_obs_open(struct conn *c)
{
	struct relay *r = c->r;
	struct obs_pair *p = pair_of(c);

	/* Plain dials (inbound to the service, outbound same node) end
	 * here. */
	if (c->obs.t_dial_us > 0) {
		hist_add(&c->w->obs.hist[OBS_H_DIAL],
		    relay_obs_now_us() - c->obs.t_dial_us);
		c->obs.t_dial_us = 0;
	}
	c->obs.t_open_us = relay_obs_now_us();
	BUMP(p->opened, 1);
	pthread_mutex_lock(&r->obs_lock);
	c->obs.lprev = NULL;
	c->obs.lnext = r->obs_list;
	if (r->obs_list != NULL)
		r->obs_list->obs.lprev = c;
	r->obs_list = c;
	r->obs_n++;
	c->obs.listed = 1;
	pthread_mutex_unlock(&r->obs_lock);
}

void
relay_obs_round(struct conn *c)
{
	uint64_t up = c->up.moved, down = c->down.moved;
	uint64_t pu = LD(c->obs.up), pd = LD(c->obs.down);
	struct obs_pair *p;

	BUMP(c->w->obs.rounds, 1);
	if (up == pu && down == pd)
		return;
	p = pair_of(c);
	/* Outbound: up is source -> destination; inbound: up is the
	 * local service (destination) -> source. */
	if (c->kind == CONN_OUT) {
		BUMP(p->sent, up - pu);
		BUMP(p->rcvd, down - pd);
	} else {
		BUMP(p->sent, down - pd);
		BUMP(p->rcvd, up - pu);
	}
	atomic_store_explicit(&c->obs.up, up, memory_order_relaxed);
	atomic_store_explicit(&c->obs.down, down, memory_order_relaxed);
	if (!c->obs.first_byte && c->kind == CONN_OUT && down > 0) {
		c->obs.first_byte = 1;
		hist_add(&c->w->obs.hist[OBS_H_FIRST_BYTE],
		    relay_obs_now_us() - c->obs.t_new_us);
	}
}

int
relay_obs_killed(struct conn *c)
{
	return atomic_load_explicit(&c->obs.kill, memory_order_relaxed);
}

static const char *
result_name(const struct conn *c, int abortive)
{
	switch (c->obs.result) {
	case OBS_DENIED:
		return "denied";
	case OBS_CUT:
		return "cut";
	case OBS_KILLED:
		return "killed";
	case OBS_OK:
		break;
	}
	if (c->obs.t_open_us == 0 || abortive)
		return "error";
	return "allowed";
}

static void
access_log(struct conn *c, int abortive, const char *reason)
{
	const struct relay_env *env = &c->r->env;
	struct accesslog_entry e = { 0 };
	const char *leaf_id = c->peer.leaf != NULL ? c->peer.leaf->spiffe :
	    NULL;
	/* A same-node pair is logged once, by its outbound half (which
	 * knows the process); its inbound half marked a denial on it. */
	if (c->colocated)
		return;
	e.id = c->id;
	e.start_ms = c->obs.wall_open_ms;
	e.end_ms = wall_ms();
	e.direction = c->kind == CONN_OUT ? "outbound" : "inbound";
	e.src = c->src;
	e.dst = c->dst;
	e.pid = c->obs.pid;
	e.uid = c->obs.has_uid ? (long)c->obs.uid : -1;
	if (c->kind == CONN_OUT) {
		e.unit = c->obs.unit;
		e.src_node = env->conf->node;
		e.dst_node = c->obs.node;
		e.src_spiffe = leaf_id;
		e.dst_spiffe = c->peer.peer_spiffe;
		e.bytes_sent = c->up.moved;
		e.bytes_rcvd = c->down.moved;
	} else {
		e.src_addr = c->peer_addr;
		e.src_port = c->peer_port;
		e.dst_node = env->conf->node;
		e.src_spiffe = c->peer.peer_spiffe;
		e.dst_spiffe = leaf_id;
		e.bytes_sent = c->down.moved;
		e.bytes_rcvd = c->up.moved;
	}
	e.dst_instance = c->dst;
	e.tls = c->net.tls != NULL;
	e.resumed = c->peer.resumed;
	e.result = result_name(c, abortive);
	e.reason = c->obs.result == OBS_DENIED || c->obs.result == OBS_CUT ?
	    c->obs.why : reason;
	accesslog_submit(env->alog, &e);
}

void
relay_obs_close(struct conn *c, int abortive, const char *reason)
{
	struct relay *r = c->r;
	struct obs_pair *p;

	relay_obs_round(c);
	p = pair_of(c);
	if (c->obs.result == OBS_DENIED)
		BUMP(p->denied, 1);
	else if (c->obs.t_open_us == 0)
		BUMP(p->failed, 1);
	if (c->obs.t_open_us != 0) {
		BUMP(p->closed, 1);
		if (c->obs.result == OBS_CUT)
			BUMP(p->cut, 1);
		else if (c->obs.result == OBS_KILLED)
			BUMP(p->killed, 1);
	}
	if (c->obs.listed) {
		pthread_mutex_lock(&r->obs_lock);
		if (c->obs.lprev != NULL)
			c->obs.lprev->obs.lnext = c->obs.lnext;
		else
			r->obs_list = c->obs.lnext;
		if (c->obs.lnext != NULL)
			c->obs.lnext->obs.lprev = c->obs.lprev;
		r->obs_n--;
		c->obs.listed = 0;
		pthread_mutex_unlock(&r->obs_lock);
	}
	if (c->obs.result == OBS_KILLED)
		log_info("conn %llu %s => %s killed through the API",
		    (unsigned long long)c->id, c->src, c->dst);
	if (accesslog_enabled(r->env.alog))
		access_log(c, abortive, reason);
}

void
relay_obs_init(struct relay *r)
{
	pthread_mutex_init(&r->obs_lock, NULL);
}

void
relay_obs_fini(struct relay *r)
{
	pthread_mutex_destroy(&r->obs_lock);
}

/* Reading: the API and metrics (main thread) ------------------------- */

void
relay_obs_refused(struct relay *r, const char *src, const char *dst,
    pid_t pid, uid_t uid, const char *unit, const char *why)
{
	const struct relay_env *env = &r->env;
	struct obs_pair *p = pair_find(&r->obs_main, CONN_OUT, src, dst);
	struct accesslog_entry e = { 0 };

	BUMP(p->denied, 1);
	BUMP(r->obs_main.checks_deny, 1);
	if (!accesslog_enabled(env->alog))
		return;
	e.start_ms = e.end_ms = wall_ms();
	e.direction = "outbound";
	e.src = src;
	e.dst = dst;
	e.pid = pid;
	e.uid = (long)uid;
	e.unit = unit;
	e.src_node = env->conf->node;
	e.result = "denied";
	e.reason = why;
	accesslog_submit(env->alog, &e);
}

int
relay_conn_kill(struct relay *r, uint64_t id)
{
	int found = -1;

	pthread_mutex_lock(&r->obs_lock);
	for (struct conn *c = r->obs_list; c != NULL; c = c->obs.lnext) {
		if (c->id != id)
			continue;
		atomic_store(&c->obs.kill, 1);
		found = 0;
		break;
	}
	pthread_mutex_unlock(&r->obs_lock);
	return found;
}

json_t *
relay_conns_json(struct relay *r)
{
	json_t *a = json_array();
	int64_t now = relay_obs_now_us(), wall = wall_ms();

	if (a == NULL)
		return NULL;
	pthread_mutex_lock(&r->obs_lock);
	for (struct conn *c = r->obs_list; c != NULL; c = c->obs.lnext) {
		uint64_t up = LD(c->obs.up), down = LD(c->obs.down);
		char start[40];
		json_t *o;
		int out = c->kind == CONN_OUT;

		accesslog_time(wall - (now - c->obs.t_new_us) / 1000, start,
		    sizeof(start));
		o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, "
		    "s:f, s:b, s:b, s:b}",
		    "ID", (json_int_t)c->id,
		    "Direction", out ? "outbound" : "inbound",
		    "Source", c->src, "Destination", c->dst,
		    "Node", out ? c->obs.node : r->env.conf->node,
		    "Started", start,
		    "BytesSent", (json_int_t)(out ? up : down),
		    "BytesReceived", (json_int_t)(out ? down : up),
		    "AgeSeconds", (double)(now - c->obs.t_new_us) / 1e6,
		    "TLS", c->net.tls != NULL, "Resumed", c->peer.resumed,
		    "SameNode", c->colocated || c->peer.same_process ||
		    (out && c->net.tls == NULL));
		if (o == NULL)
			continue;
		if (out && c->obs.pid > 0) {
			json_object_set_new(o, "PID", json_integer(c->obs.pid));
			json_object_set_new(o, "Unit",
			    json_string(c->obs.unit));
		}
		if (out && c->obs.has_uid)
			json_object_set_new(o, "UID", json_integer(c->obs.uid));
		if (!out)
			json_object_set_new(o, "SourceAddr", json_sprintf(
			    "%s:%d", c->peer_addr, c->peer_port));
		if (c->peer.peer_spiffe[0] != '\0')
			json_object_set_new(o, "PeerSPIFFE",
			    json_string(c->peer.peer_spiffe));
		json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&r->obs_lock);
	return a;
}

static const char *
dir_name(int dir)
{
	return dir == CONN_OUT ? "outbound" : "inbound";
}

/* Sum one field over the workers' pairs into m, one sample per pair. */
static void
pairs_metric(struct relay *r, struct metrics *m, const char *name,
    const char *help, int counter, size_t off, int active)
{
	/* Pairs seen by any worker: summed by (dir, src, dst). */
	struct { const char *src, *dst; int dir; double v; } *acc = NULL;
	size_t n = 0, cap = 0;

	for (size_t w = 0; w <= r->n_workers; w++) {
		struct obs_worker *o = w < r->n_workers ? &r->workers[w]->obs :
		    &r->obs_main;
		size_t np = atomic_load_explicit(&o->n_pairs,
		    memory_order_acquire);

		for (size_t i = 0; i < np; i++) {
			struct obs_pair *p = &o->pairs[i];
			double v;
			size_t k;

			if (active)
				v = (double)LD(p->opened) - (double)LD(p->closed);
			else
				v = (double)atomic_load_explicit(
				    (_Atomic uint64_t *)((char *)p + off),
				    memory_order_relaxed);
			for (k = 0; k < n; k++)
				if (acc[k].dir == p->dir &&
				    strcmp(acc[k].src, p->src) == 0 &&
				    strcmp(acc[k].dst, p->dst) == 0)
					break;
			if (k == n) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 32;
					void *na = realloc(acc, nc *
					    sizeof(*acc));
					if (na == NULL)
						continue;
					acc = na;
					cap = nc;
				}
				acc[n].src = p->src;
				acc[n].dst = p->dst;
				acc[n].dir = p->dir;
				acc[n].v = 0;
				n++;
			}
			acc[k].v += v;
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (counter)
			metrics_counter(m, name, help, acc[k].v, "direction",
			    dir_name(acc[k].dir), "source", acc[k].src,
			    "destination", acc[k].dst, NULL);
		else
			metrics_gauge(m, name, help, acc[k].v < 0 ? 0 :
			    acc[k].v, "direction", dir_name(acc[k].dir),
			    "source", acc[k].src, "destination", acc[k].dst,
			    NULL);
	}
	free(acc);
}

static void
hist_metric(struct relay *r, struct metrics *m, int which, const char *name,
    const char *help, const char *lk, const char *lv)
{
	double bounds[OBS_HIST_BUCKETS];
	uint64_t counts[OBS_HIST_BUCKETS + 1] = { 0 };
	double sum = 0, max = 0;

	for (size_t i = 0; i < OBS_HIST_BUCKETS; i++)
		bounds[i] = (double)hist_us[i] / 1e6;
	for (size_t w = 0; w < r->n_workers; w++) {
		struct obs_hist *hs = &r->workers[w]->obs.hist[which];
		double mx = (double)LD(hs->max_us) / 1e6;

		for (size_t i = 0; i <= OBS_HIST_BUCKETS; i++)
			counts[i] += LD(hs->b[i]);
		sum += (double)LD(hs->sum_us) / 1e6;
		if (mx > max)
			max = mx;
	}
	metrics_histogram(m, name, help, bounds, counts, OBS_HIST_BUCKETS, sum,
	    max, lk, lv, NULL);
}

#define PAIR(f) offsetof(struct obs_pair, f)

void
relay_metrics(struct relay *r, struct metrics *m)
{
	uint64_t full[2] = { 0 }, res[2] = { 0 }, reu[2] = { 0 }, allow = 0, deny = 0;
	size_t listed;

	pairs_metric(r, m, "meshshim_connections_opened_total", "Connections "
	    "that started relaying.", 1, PAIR(opened), 0);
	pairs_metric(r, m, "meshshim_connections_closed_total", "Relayed "
	    "connections that closed.", 1, PAIR(closed), 0);
	pairs_metric(r, m, "meshshim_connections_active", "Connections "
	    "relaying now.", 0, 0, 1);
	pairs_metric(r, m, "meshshim_connections_denied_total", "Connections "
	    "refused by an intention (or default_intention).", 1,
	    PAIR(denied), 0);
	pairs_metric(r, m, "meshshim_connections_failed_total", "Connections "
	    "that ended before relaying (dial, handshake, no instance).", 1,
	    PAIR(failed), 0);
	pairs_metric(r, m, "meshshim_connections_cut_total", "Open "
	    "connections closed because an intention change denied them.", 1,
	    PAIR(cut), 0);
	pairs_metric(r, m, "meshshim_connections_killed_total", "Open "
	    "connections closed through the API (meshctl conn kill).", 1,
	    PAIR(killed), 0);
	pairs_metric(r, m, "meshshim_connection_sent_bytes_total", "Bytes "
	    "from source to destination.", 1, PAIR(sent), 0);
	pairs_metric(r, m, "meshshim_connection_received_bytes_total", "Bytes "
	    "from destination back to source.", 1, PAIR(rcvd), 0);
	for (size_t w = 0; w < r->n_workers; w++) {
		struct obs_worker *o = &r->workers[w]->obs;
		char id[24];

		for (int s = 0; s < 2; s++) {
			full[s] += LD(o->hs_full[s]);
			res[s] += LD(o->hs_resumed[s]);
			reu[s] += LD(o->streams_reused[s]);
		}
		allow += LD(o->checks_allow);
		deny += LD(o->checks_deny);
		if (w == 0)
			deny += LD(r->obs_main.checks_deny);
		snprintf(id, sizeof(id), "%zu", w);
		metrics_gauge(m, "meshshim_relay_worker_connections",
		    "Connections held by each relay worker.",
		    (double)r->workers[w]->n_conns, "worker", id, NULL);
		metrics_counter(m, "meshshim_relay_worker_rounds_total",
		    "Relay rounds (socket events handled) by each worker.",
		    (double)LD(o->rounds), "worker", id, NULL);
	}
	for (int s = 0; s < 2; s++) {
		const char *role = s ? "server" : "client";

		metrics_counter(m, "meshshim_tls_handshakes_total", "mTLS "
		    "handshakes completed, full or resumed (session ticket).",
		    (double)full[s], "role", role, "kind", "full", NULL);
		metrics_counter(m, "meshshim_tls_handshakes_total", "",
		    (double)res[s], "role", role, "kind", "resumed", NULL);
		metrics_counter(m, "meshshim_tls_streams_reused_total",
		    s ? "" : "Connections carried by an mTLS session of an "
		    "earlier one between the same pair of services and nodes "
		    "(no TCP connect, no handshake).", (double)reu[s], "role",
		    role, NULL);
	}
	hist_metric(r, m, OBS_H_HS_CLIENT, "meshshim_tls_handshake_seconds",
	    "Duration of mTLS handshakes.", "role", "client");
	hist_metric(r, m, OBS_H_HS_SERVER, "meshshim_tls_handshake_seconds",
	    "", "role", "server");
	hist_metric(r, m, OBS_H_DIAL, "meshshim_dial_seconds", "Time to "
	    "connect to a mesh peer or a local service.", NULL, NULL);
	hist_metric(r, m, OBS_H_FIRST_BYTE, "meshshim_first_byte_seconds",
	    "From the application's connect to the first byte back from the "
	    "destination (outbound).", NULL, NULL);
	metrics_counter(m, "meshshim_intention_checks_total", "Intention "
	    "checks made by the relay (connection time and live re-checks).",
	    (double)allow, "result", "allow", NULL);
	metrics_counter(m, "meshshim_intention_checks_total", "",
	    (double)deny, "result", "deny", NULL);
	pthread_mutex_lock(&r->obs_lock);
	listed = r->obs_n;
	pthread_mutex_unlock(&r->obs_lock);
	metrics_gauge(m, "meshshim_relay_connections", "Connections the relay "
	    "holds (any state).", (double)relay_count(r), NULL);
	metrics_gauge(m, "meshshim_relay_relaying", "Connections relaying "
	    "bytes now (listed by /v1/agent/connections).", (double)listed,
	    NULL);
}
