/* cluster: etcd-backed catalog and intentions seen from the loop, and the
 * intention writer (see cluster.h; the lease, the watch and the other
 * writes are cluster_sync.c, the CA part cluster_ca.c).
 *
 * Threads: the loop thread owns what env hands over (catalog, intentions,
 * CA); the threads of
 * cluster_sync.c and the writer each own an etcd client. They share only
 * what is under mu: the desired registrations (loop -> worker), one
 * pending intention write (loop -> writer; the answer comes back through
 * the eventfd, the loop never waits for it: the API request is answered
 * then, through intent_db_saved), and the event queue (watcher -> loop,
 * signalled with the same eventfd).
 *
 * An intention write etcd does not answer may still be applied: the
 * writer asks again with the same compare-and-swap (same base revision:
 * applied at most once, and a copy still in flight can no longer apply
 * once anything else is written) until etcd says, reading the key in the
 * same transaction when the compare fails; the API was told "outcome
 * unknown" (504) if no answer came within SAVE_WAIT_MS, and the log says
 * what became of it. */
#include "helperd/cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/cluster/cluster_int.h"
#include "helperd/local/health.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/served.h"
#include "helperd/cluster/store_etcd.h"

static void save_settle(struct cluster *c, int late);

/* Writer ------------------------------------------------------------------ */

/* Give the loop the fate of intention write seq: ok (applied at rev) or
 * not (why). If the loop stopped waiting (it told the API client that
 * the outcome is unknown), say in the log what became of it. */
static void
save_answer(struct cluster *c, uint64_t seq, int ok, int64_t rev,
    const char *why)
{
	struct save_req *s = &c->save;
	int delivered = 0;

	pthread_mutex_lock(&c->mu);
	if (s->state == 1 && s->seq == seq) {
		s->ok = ok;
		s->rev = rev;
		util_strlcpy(s->why, why, sizeof(s->why));
		s->state = 2;
		delivered = 1;
	}
	pthread_mutex_unlock(&c->mu);
	if (delivered) {
		uint64_t one = 1;

		/* The loop settles it (save_settle). */
		if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_err("cluster: eventfd: %m");
		return;
	}
	if (ok)
		log_warn("cluster: the intention change #%" PRIu64 " whose "
		    "outcome the API could not tell WAS APPLIED (etcd "
		    "revision %" PRId64 ")", seq, rev);
	else
		log_warn("cluster: the intention change #%" PRIu64 " whose "
		    "outcome the API could not tell was NOT applied: %s", seq,
		    why);
}

/* One compare-and-swap of doc on base, reading the key when it loses.
 * 1 applied (*rev), 0 not applied (why), -1 no answer (why). */
static int
save_try(struct cluster *c, const char *doc, int64_t base, int64_t *rev,
    char *why, size_t whylen)
{
	struct etcd_kv cur;
	int won = 0, rc;

	if (etcd_cas_read(c->wetcd, c->key_intentions, doc, base, &won, rev,
	    &cur, why, whylen) != 0)
		return -1;
	if (won)
		return 1;
	/* Lost: to an earlier send of this very document (etcd took it
	 * after all), or to another node's change. The compare is on base,
	 * so a send still in flight can no longer apply either. */
	rc = cur.value != NULL && strcmp(cur.value, doc) == 0;
	if (rc)
		*rev = cur.mod_revision;
	else
		snprintf(why, whylen, "the intentions were changed on another "
		    "node at the same time; try again");
	free(cur.key);
	free(cur.value);
	return rc;
}

/* Answer a pending intention write, if any. */
static void
serve_save(struct cluster *c)
{
	struct save_req *s = &c->save;
	char *doc = NULL, why[ETCD_ERR_MAX + 64] = "", err[ETCD_ERR_MAX];
	int64_t base = 0, rev = 0;
	uint64_t seq = 0;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (s->state == 1 && !s->taken) {
		doc = strdup(s->doc);
		base = s->base_rev;
		seq = s->seq;
		s->taken = 1;
	}
	pthread_mutex_unlock(&c->mu);
	if (seq == 0)
		return;
	if (doc == NULL) {
		snprintf(why, sizeof(why), "out of memory");
	} else if (c->unsure.doc != NULL) {
		/* Its base may still move under this one: settle it first. */
		snprintf(why, sizeof(why), "an earlier intention change is not "
		    "settled yet (etcd has not answered it); try again in a "
		    "few seconds");
	} else if ((rc = save_try(c, doc, base, &rev, why,
	    sizeof(why))) < 0) {
		if (etcd_maybe_applied(c->wetcd)) {
			/* Sent, no answer: etcd may apply it, now or when it
			 * is back. Keep asking (the same compare-and-swap
			 * applies it at most once) until it says. */
			log_warn("cluster: etcd did not answer intention change "
			    "#%" PRIu64 " (%s): asking again until it does",
			    seq, why);
			c->unsure = (struct unsure_write){ .doc = doc,
			    .base_rev = base, .seq = seq,
			    .next_ms = util_now_ms_mono() + RETRY_MS,
			    .since_ms = util_now_ms_mono() };
			return;
		}
		/* Never sent: certainly not applied. */
		util_strlcpy(err, why, sizeof(err));
		snprintf(why, sizeof(why), "etcd is unreachable (%s): the "
		    "change was not made", err);
	}
	free(doc);
	save_answer(c, seq, rc == 1, rev, why);
}

/* Settle an unanswered intention write (see serve_save). */
static void
settle_save(struct cluster *c)
{
	struct unsure_write *u = &c->unsure;
	char why[ETCD_ERR_MAX];
	int64_t rev = 0;
	int rc;

	if (u->doc == NULL || util_now_ms_mono() < u->next_ms)
		return;
	if ((rc = save_try(c, u->doc, u->base_rev, &rev, why,
	    sizeof(why))) < 0) {
		u->next_ms = util_now_ms_mono() + RETRY_MS;
		return;
	}
	log_info("cluster: intention change #%" PRIu64 " settled after "
	    "%" PRId64 " ms: %s", u->seq, util_now_ms_mono() - u->since_ms,
	    rc == 1 ? "applied" : "not applied");
	save_answer(c, u->seq, rc == 1, rev, why);
	free(u->doc);
	*u = (struct unsure_write){ 0 };
}

/* The writer thread: intention writes, and settling an unanswered one. */
static void *
writer(void *arg)
{
	struct cluster *c = arg;

	for (;;) {
		struct timespec ts;
		int stop;

		pthread_mutex_lock(&c->mu);
		/* Idle: no wake-up until there is a write (or an unsettled
		 * one to ask about again). */
		if (!c->stop && !(c->save.state == 1 && !c->save.taken)) {
			if (c->unsure.doc == NULL) {
				pthread_cond_wait(&c->wcv, &c->mu);
			} else {
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += RETRY_MS * 1000000L;
				while (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&c->wcv, &c->mu, &ts);
			}
		}
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		settle_save(c);
		serve_save(c);
	}
	if (c->unsure.doc != NULL)
		log_warn("cluster: stopping with intention change #%" PRIu64
		    " unsettled: etcd may or may not have applied it",
		    c->unsure.seq);
	return NULL;
}

/* Loop side --------------------------------------------------------- */

void
cluster_op_queue(struct cluster *c, const char *key, const char *value,
    int leased)
{
	struct op *o = calloc(1, sizeof(*o));

	if (o == NULL || (o->key = strdup(key)) == NULL ||
	    (value != NULL && (o->value = strdup(value)) == NULL)) {
		if (o != NULL)
			free(o->key);
		free(o);
		log_err("cluster: out of memory: a write to etcd is lost");
		return;
	}
	o->leased = leased;
	pthread_mutex_lock(&c->mu);
	if (c->ops_tail != NULL)
		c->ops_tail->next = o;
	else
		c->ops_head = o;
	c->ops_tail = o;
	pthread_cond_broadcast(&c->ocv);
	pthread_mutex_unlock(&c->mu);
}

/* "P/services/<svc>/<node>": is it ours? */
static int
own_instance(const struct cluster *c, const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash != NULL && strcmp(slash + 1, c->node) == 0;
}

static void
apply_intentions(struct cluster *c, const struct ev *e, int *changed)
{
	static const char empty[] = "{\"Index\": 0, \"Intentions\": []}";
	char err[512];
	const char *doc = e->value != NULL ? e->value : empty;
	size_t len = e->value != NULL ? e->vlen : strlen(empty);

	if (e->kind == EV_PUT && e->rev <= c->intent_rev)
		return;                 /* our own write, already applied */
	if (intent_db_replace(c->env.intents, doc, len, c->key_intentions, err,
	    sizeof(err)) != 0) {
		log_err("cluster: ignoring bad intentions from etcd: %s", err);
		return;
	}
	c->intent_rev = e->value != NULL ? e->rev : 0;
	log_info("cluster: intentions updated from etcd (%zu, revision "
	    "%" PRId64 ")", intent_count(c->env.intents), e->rev);
	*changed = 1;
}

/* The remote catalog the watcher last saved (cluster_sync.c): a node
 * restarted while etcd is down still knows where the other nodes'
 * instances were. */
static void
remote_load(struct cluster *c)
{
	char why[256], *txt;
	const char *k;
	json_t *o, *v;
	size_t n = 0;

	if ((txt = util_read_file(c->remote_path, 64u << 20, NULL)) == NULL)
		return;
	o = json_loads(txt, 0, NULL);
	free(txt);
	json_object_foreach(o, k, v) {
		const char *val = json_string_value(v);

		if (strncmp(k, c->key_services, strlen(c->key_services)) == 0 &&
		    val != NULL && !own_instance(c, k) &&
		    catalog_remote_put(c->env.catalog, k, val, strlen(val), why,
		    sizeof(why)) == 0)
			n++;
	}
	json_decref(o);
	if (n > 0)
		log_info("cluster: %zu remote instance(s) known from the last "
		    "run (until etcd answers)", n);
}

static void
apply(struct cluster *c, struct ev *e, int *intents_changed)
{
	size_t pl = strlen(c->key_services);
	char why[256];

	switch (e->kind) {
	case EV_RESET:
		catalog_remote_clear(c->env.catalog);
		cluster_ca_reset(c);
		c->served_dirty = 1;
		/* No intentions key in a snapshot: none in the cluster. */
		break;
	case EV_DOWN:
		log_err("cluster: ETCD UNREACHABLE (%s): running on the last "
		    "known catalog (%zu remote instances), intentions and "
		    "certificates; open connections are not affected",
		    e->value, catalog_remote_count(c->env.catalog));
		return;
	case EV_UP:
		log_warn("cluster: etcd reachable again (%s): caught up",
		    e->value);
		return;
	case EV_PUT:
	case EV_DEL:
		if (strcmp(e->key, c->key_intentions) == 0) {
			apply_intentions(c, e, intents_changed);
		} else if (strcmp(e->key, c->key_ca) == 0) {
			if (e->kind == EV_PUT)
				cluster_ca_apply_roots(c, e);
		} else if (strcmp(e->key, c->key_leader) == 0) {
			cluster_ca_apply_leader(c, e);
		} else if (strcmp(e->key, c->key_keys) == 0) {
			if (e->kind == EV_PUT)
				cluster_ca_apply_keys(c, e);
		} else if (strncmp(e->key, c->key_csr,
		    strlen(c->key_csr)) == 0) {
			if (e->kind == EV_PUT)
				cluster_ca_apply_csr(c, e);
			else
				cluster_ca_csr_gone(c, e->key);
		} else if (strncmp(e->key, c->key_leaf,
		    strlen(c->key_leaf)) == 0) {
			if (e->kind == EV_PUT)
				cluster_ca_apply_leaf(c, e);
		} else if (strncmp(e->key, c->key_services, pl) == 0 &&
		    !own_instance(c, e->key)) {
			/* served cares about the names and their ports, not
			 * about a status change. */
			int port = catalog_remote_port(c->env.catalog, e->key);

			if (e->kind == EV_DEL) {
				if (catalog_remote_del(c->env.catalog,
				    e->key)) {
					log_info("cluster: instance %s left",
					    e->key + pl);
					c->served_dirty = 1;
				}
			} else if (catalog_remote_put(c->env.catalog, e->key,
			    e->value, e->vlen, why, sizeof(why)) != 0) {
				log_warn("cluster: ignoring %s: %s", e->key,
				    why);
			} else {
				log_debug("cluster: instance %s", e->key + pl);
				if (catalog_remote_port(c->env.catalog,
				    e->key) != port)
					c->served_dirty = 1;
			}
		}
		break;
	}
}

static void
on_eventfd(void *arg, uint32_t events)
{
	struct cluster *c = arg;
	struct ev *q, *e;
	uint64_t v;
	int changed = 0, reset = 0, saw_intents = 0;

	(void)events;
	if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("cluster: eventfd: %m");
	/* Our own write first: the watch's copy of it is then known. */
	save_settle(c, 0);
	pthread_mutex_lock(&c->mu);
	q = c->q_head;
	c->q_head = c->q_tail = NULL;
	pthread_mutex_unlock(&c->mu);
	while ((e = q) != NULL) {
		q = e->next;
		if (e->kind == EV_RESET) {
			reset = 1;
			saw_intents = 0;
			/* A full list: take it whatever its revision (etcd
			 * may have been rebuilt with lower revisions). */
			c->intent_rev = 0;
		}
		if (e->key != NULL && strcmp(e->key, c->key_intentions) == 0)
			saw_intents = 1;
		apply(c, e, &changed);
		cluster_ev_free(e);
	}
	if (reset && !saw_intents && intent_count(c->env.intents) > 0) {
		/* etcd has no intentions (a new cluster): it is the truth. */
		struct ev none = { .kind = EV_DEL };
		apply_intentions(c, &none, &changed);
	}
	if (reset && !c->synced_once) {
		c->synced_once = 1;
		log_info("cluster: in sync with etcd: %zu remote instance(s), "
		    "%zu intention(s)", catalog_remote_count(c->env.catalog),
		    intent_count(c->env.intents));
	}
	/* Remote services came or went: their served addresses. */
	if (c->served_dirty && c->env.served != NULL)
		served_sync(c->env.served);
	c->served_dirty = 0;
	if (changed && c->env.ops->intentions_changed != NULL)
		c->env.ops->intentions_changed(c->env.cookie,
		    "intentions changed in etcd");
}

/* The intention write the loop handed to the writer, settled on the loop:
 * answered (state 2), or, at its deadline (late) or when the cluster
 * stops, no answer yet. Applies an applied document here and tells the
 * intent store (intent_db_saved: the API request waiting for it). */
static void
save_settle(struct cluster *c, int late)
{
	char why[ETCD_ERR_MAX + 320] = "", err[512];
	char *doc = NULL;
	int ok = 0, answered, taken, rc;
	int64_t rev = 0;
	uint64_t seq;

	cluster_assert_loop(c);
	pthread_mutex_lock(&c->mu);
	answered = c->save.state == 2;
	if (c->save.state == 0 || (!answered && !late)) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	seq = c->save.seq;
	taken = c->save.taken;
	if (answered) {
		ok = c->save.ok;
		rev = c->save.rev;
		util_strlcpy(why, c->save.why, sizeof(why));
	}
	doc = c->save.doc;
	/* A late answer finds state 0: the writer logs it. */
	c->save = (struct save_req){ 0 };
	pthread_mutex_unlock(&c->mu);
	loop_timer_del(c->env.loop, &c->save_timer);

	if (ok) {
		/* Ours, unless the watch already brought it (or newer). */
		if (rev > c->intent_rev) {
			if (intent_db_replace(c->env.intents, doc, strlen(doc),
			    c->key_intentions, err, sizeof(err)) != 0)
				log_err("cluster: intention change #%" PRIu64
				    " stored in etcd but not applied here: %s",
				    seq, err);
			c->intent_rev = rev;
		}
		rc = 0;
	} else if (answered) {
		log_warn("cluster: intention change not stored: %s", why);
		rc = -1;
	} else if (!taken) {
		/* The writer never sent it: never will. */
		snprintf(why, sizeof(why), "etcd did not answer within %d s: "
		    "the change was not made", SAVE_WAIT_MS / 1000);
		log_warn("cluster: intention change not stored: %s", why);
		rc = -1;
	} else {
		snprintf(why, sizeof(why), "the change was sent to etcd, which "
		    "did not confirm it within %d s: it may have been applied, "
		    "now or when etcd answers (helperd keeps asking and logs "
		    "the outcome of change #%" PRIu64 "); list the intentions "
		    "before trying again", SAVE_WAIT_MS / 1000, seq);
		log_warn("cluster: intention change #%" PRIu64 ": outcome "
		    "unknown so far: %s", seq, why);
		rc = INTENT_SAVE_UNKNOWN;
	}
	free(doc);
	intent_db_saved(c->env.intents, rc, why);
}

static void
save_due(void *arg)
{
	save_settle(arg, 1);
}

/* intent_save_fn: hand the document to the writer and return at once;
 * the answer (or SAVE_WAIT_MS without one) comes to save_settle. */
static int
save_intentions(void *arg, const char *doc, char *why, size_t whylen)
{
	struct cluster *c = arg;
	char *copy = strdup(doc);
	int busy;

	cluster_assert_loop(c);
	if (copy == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	if (!(busy = c->save.state != 0)) {
		c->save = (struct save_req){ .seq = ++c->save_seq,
		    .doc = copy, .base_rev = c->intent_rev, .state = 1 };
		pthread_cond_broadcast(&c->wcv);
	}
	pthread_mutex_unlock(&c->mu);
	if (busy) {
		free(copy);
		snprintf(why, whylen, "an earlier intention change is still "
		    "being written to etcd; try again");
		return -1;
	}
	if (loop_timer_add(c->env.loop, &c->save_timer, SAVE_WAIT_MS) != 0)
		log_err("cluster: out of memory: the intention write has no "
		    "deadline");
	return INTENT_SAVE_PENDING;
}

/* Our instances as etcd keys and values. */
static json_t *
want_build(struct cluster *c)
{
	const struct cluster_env *env = &c->env;
	json_t *o = json_object();
	char key[CONF_PATH_MAX + 160];

	cluster_assert_loop(c);
	for (size_t i = 0; i < catalog_local_count(env->catalog); i++) {
		const struct conf_service *s = catalog_local_at(env->catalog,
		    i);
		const char *output = "";
		enum catalog_status st;
		json_t *v;
		char *txt;

		if (s->port <= 0)
			continue;
		st = health_status(env->health, s, &output);
		v = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:s, s:s}",
		    "Node", env->conf->node, "Address",
		    env->conf->advertise_addr, "MeshPort",
		    env->mesh_port_bound, "Service", s->name,
		    "ID", s->id, "ServiceAddress", s->address, "Port",
		    s->port, "Status", catalog_status_name(st), "Output",
		    output);
		if (v != NULL && s->user[0] != '\0')
			json_object_set_new(v, "User", json_string(s->user));
		txt = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
		json_decref(v);
		if (txt == NULL)
			continue;
		snprintf(key, sizeof(key), "%s%s/%s", c->key_services, s->name,
		    env->conf->node);
		json_object_set_new(o, key, json_string(txt));
		free(txt);
	}
	return o;
}

void
cluster_services_changed(struct cluster *c)
{
	json_t *w;

	if (c == NULL)
		return;
	w = want_build(c);
	pthread_mutex_lock(&c->mu);
	json_decref(c->want);
	c->want = w;
	c->want_dirty = 1;
	pthread_cond_broadcast(&c->ocv);
	pthread_mutex_unlock(&c->mu);
}

int
cluster_degraded(const struct cluster *c)
{
	int d;

	if (c == NULL)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&c->mu);
	d = c->degraded;
	pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
	return d;
}

int
cluster_start(struct cluster **out, const struct cluster_env *env,
    char *err, size_t errlen)
{
	static const struct cluster_ops no_ops;
	struct cluster *c = calloc(1, sizeof(*c));
	const struct conf *conf = env->conf;
	const char *p = conf->store.prefix;
	struct ca *ca = *env->ca;
	json_t *roots;
	size_t pl = strlen(p);
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->env = *env;
	if (c->env.ops == NULL)
		c->env.ops = &no_ops;
	c->efd = -1;
	c->w.fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->wcv, NULL);
	loop_timer_init(&c->save_timer, save_due, c);
	pthread_cond_init(&c->ocv, NULL);
	pthread_cond_init(&c->kcv, NULL);
	util_strlcpy(c->node, conf->node, sizeof(c->node));
	snprintf(c->remote_path, sizeof(c->remote_path),
	    "%s/cluster-catalog.json", conf->data_dir);
	while (pl > 1 && p[pl - 1] == '/')
		pl--;
	snprintf(c->key_root, sizeof(c->key_root), "%.*s/", (int)pl, p);
	snprintf(c->key_services, sizeof(c->key_services), "%.*s/services/",
	    (int)pl, p);
	snprintf(c->key_intentions, sizeof(c->key_intentions),
	    "%.*s/intentions", (int)pl, p);
	snprintf(c->key_ca, sizeof(c->key_ca), "%.*s/ca/roots", (int)pl, p);
	snprintf(c->key_csr, sizeof(c->key_csr), "%.*s/ca/csr/", (int)pl, p);
	snprintf(c->key_leaf, sizeof(c->key_leaf), "%.*s/ca/leaf/", (int)pl,
	    p);
	snprintf(c->key_leader, sizeof(c->key_leader), "%.*s/ca/leader",
	    (int)pl, p);
	c->ca_server = !ca_is_client(ca);
	cluster_ca_keys_key(conf, c->key_keys, sizeof(c->key_keys));
	if ((c->csr_pending = json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	c->ttl = conf->store.lease_ttl > 0 ? conf->store.lease_ttl : 10;
	remote_load(c);
	c->registered = json_object();
	c->want = want_build(c);
	roots = ca_is_client(ca) ? NULL : ca_roots_json(ca);
	c->ca_doc = roots != NULL ? json_dumps(roots, JSON_COMPACT) : NULL;
	json_decref(roots);
	if (c->registered == NULL || c->want == NULL ||
	    (c->ca_doc == NULL && !ca_is_client(ca))) {
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	if (c->ca_server && conf->ca.secret[0] != '\0') {
		char dir[CONF_PATH_MAX + 8];

		snprintf(dir, sizeof(dir), "%s/ca", conf->data_dir);
		if ((c->keys_doc = cluster_ca_keys_box(conf, dir, err,
		    errlen)) == NULL)
			goto err;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);  /* before any thread */
	if (etcd_new(&c->etcd, &conf->store, err, errlen) != 0 ||
	    etcd_new(&c->wetcd, &conf->store, err, errlen) != 0 ||
	    etcd_new(&c->ketcd, &conf->store, err, errlen) != 0 ||
	    etcd_new(&c->vetcd, &conf->store, err, errlen) != 0)
		goto err;
	if ((c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    loop_add(env->loop, &c->w, c->efd, EPOLLIN, on_eventfd, c) != 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto err;
	}
	if (cluster_sync_start(c) != 0) {
		snprintf(err, errlen, "cannot start the etcd threads");
		goto err;
	}
	/* Signals belong to the loop thread (signalfd): the writer is
	 * created with every signal blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->wthr, NULL, writer, c);
	c->wstarted = rc == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the etcd threads");
		goto err;
	}
	intent_db_set_saver(env->intents, save_intentions, c);
	log_info("cluster: etcd store at %s (prefix %s, lease TTL %ld s: "
	    "%ld s asked of etcd)", conf->store.endpoints[0],
	    conf->store.prefix, c->ttl, cluster_lease_grant_ttl(c->ttl));
	*out = c;
	return 0;
err:
	cluster_stop(c);
	return -1;
}

void
cluster_stop(struct cluster *c)
{
	struct ev *e;

	if (c == NULL)
		return;
	if (c->wstarted) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->wcv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->wthr, NULL);
		c->wstarted = 0;
		/* A write still waiting for etcd: its API request is told
		 * the outcome is unknown (or, never sent, not made). */
		save_settle(c, 1);
		intent_db_set_saver(c->env.intents, NULL, NULL);
	}
	cluster_sync_stop(c);
	if (c->w.fd >= 0)
		loop_del(c->env.loop, &c->w);
	if (c->efd >= 0)
		close(c->efd);
	while ((e = c->q_head) != NULL) {
		c->q_head = e->next;
		cluster_ev_free(e);
	}
	while ((e = c->batch_head) != NULL) {
		c->batch_head = e->next;
		cluster_ev_free(e);
	}
	while (c->ops_head != NULL) {
		struct op *o = c->ops_head;

		c->ops_head = o->next;
		free(o->key);
		free(o->value);
		free(o);
	}
	cluster_ca_free(c);
	etcd_free(c->etcd);
	etcd_free(c->wetcd);
	etcd_free(c->ketcd);
	etcd_free(c->vetcd);
	json_decref(c->want);
	json_decref(c->registered);
	free(c->ca_doc);
	free(c->keys_doc);
	free(c->save.doc);
	free(c->unsure.doc);
	pthread_cond_destroy(&c->wcv);
	pthread_cond_destroy(&c->ocv);
	pthread_cond_destroy(&c->kcv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

