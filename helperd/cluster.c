/* cluster: etcd-backed catalog and intentions, the worker thread, and
 * the node's membership (see cluster.h; the CA part is cluster_ca.c).
 *
 * Threads: the loop thread owns struct helperd; the worker owns the etcd
 * client; the writer owns a second one, for intention writes only. They
 * share only what is under mu: the desired registrations (loop ->
 * worker), one pending intention write (loop -> writer, the loop waits
 * for its answer), and the event queue (worker -> loop, signalled with an
 * eventfd).
 *
 * An intention write etcd does not answer may still be applied: the
 * writer asks again with the same compare-and-swap (same base revision:
 * applied at most once, and a copy still in flight can no longer apply
 * once anything else is written) until etcd says, reading the key in the
 * same transaction when the compare fails; the API was told "outcome
 * unknown" (504) if the loop stopped waiting, and the log says what
 * became of it. */
#include "helperd/cluster.h"

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
#include "helperd/ca.h"
#include "helperd/catalog.h"
#include "helperd/cluster_int.h"
#include "helperd/health.h"
#include "helperd/helperd.h"
#include "helperd/intent.h"
#include "helperd/loop.h"
#include "helperd/store_etcd.h"

/* Queue (worker side) --------------------------------------------------- */

static void
ev_free(struct ev *e)
{
	if (e == NULL)
		return;
	free(e->key);
	free(e->value);
	free(e);
}

static struct ev *
ev_new(enum ev_kind kind, const char *key, const char *value, size_t vlen,
    int64_t rev)
{
	struct ev *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->kind = kind;
	e->rev = rev;
	e->vlen = vlen;
	if ((key != NULL && (e->key = strdup(key)) == NULL) ||
	    (value != NULL && (e->value = malloc(vlen + 1)) == NULL)) {
		ev_free(e);
		return NULL;
	}
	if (value != NULL) {
		memcpy(e->value, value, vlen);
		e->value[vlen] = '\0';
	}
	return e;
}

static void
batch_add(struct cluster *c, struct ev *e)
{
	if (e == NULL) {
		log_err("cluster: out of memory, an etcd event is lost");
		return;
	}
	if (c->batch_tail != NULL)
		c->batch_tail->next = e;
	else
		c->batch_head = e;
	c->batch_tail = e;
}

/* Hand the batch to the loop, in one piece (a snapshot is applied whole). */
static void
batch_flush(struct cluster *c)
{
	uint64_t one = 1;

	if (c->batch_head == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->q_tail != NULL)
		c->q_tail->next = c->batch_head;
	else
		c->q_head = c->batch_head;
	c->q_tail = c->batch_tail;
	pthread_mutex_unlock(&c->mu);
	c->batch_head = c->batch_tail = NULL;
	if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("cluster: eventfd: %m");
}

static void
on_watch_event(void *arg, const struct etcd_kv *kv)
{
	struct cluster *c = arg;

	if (strcmp(kv->key, c->key_leader) == 0) {
		if (kv->value == NULL)
			c->elect = 1;   /* the leader left: run */
		else
			c->saw_leader = 1;
	}
	if (kv->value != NULL)
		batch_add(c, ev_new(EV_PUT, kv->key, kv->value, kv->vlen,
		    kv->mod_revision));
	else
		batch_add(c, ev_new(EV_DEL, kv->key, NULL, 0,
		    kv->mod_revision));
}

/* Worker ------------------------------------------------------------------ */

/* Bring our registrations in line with want (under the lease). */
static int
publish(struct cluster *c, char *err, size_t errlen)
{
	json_t *want;
	const char *k;
	json_t *v;
	void *tmp;

	pthread_mutex_lock(&c->mu);
	want = json_deep_copy(c->want);
	c->want_dirty = 0;
	pthread_mutex_unlock(&c->mu);
	if (want == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_foreach_safe(c->registered, tmp, k, v) {
		if (json_object_get(want, k) != NULL)
			continue;
		if (etcd_delete(c->etcd, k, err, errlen) != 0)
			goto fail;
		json_object_del(c->registered, k);
	}
	json_object_foreach(want, k, v) {
		const char *cur = json_string_value(json_object_get(
		    c->registered, k));

		if (cur != NULL && strcmp(cur, json_string_value(v)) == 0)
			continue;
		if (etcd_put(c->etcd, k, json_string_value(v), c->lease, err,
		    errlen) != 0)
			goto fail;
		json_object_set(c->registered, k, v);
	}
	json_decref(want);
	return 0;
fail:
	pthread_mutex_lock(&c->mu);
	c->want_dirty = 1;
	pthread_mutex_unlock(&c->mu);
	json_decref(want);
	return -1;
}

/* Lease, registrations, CA roots, full list, new watch. */
static int
sync_all(struct cluster *c, char *err, size_t errlen)
{
	struct etcd_kv *kvs;
	size_t n;
	int64_t rev, r2;
	long left = 0;
	int won;
	char *ca_doc, *keys_doc;

	if (c->lease != 0 && (etcd_lease_keepalive(c->etcd, c->lease, &left,
	    err, errlen) != 0))
		return -1;
	if (c->lease != 0 && left <= 0) {
		log_warn("cluster: lease %" PRIx64 " expired while etcd was "
		    "out of reach: registering again", (uint64_t)c->lease);
		c->lease = 0;
	}
	if (c->lease == 0) {
		if (etcd_lease_grant(c->etcd, c->ttl, &c->lease, err,
		    errlen) != 0)
			return -1;
		json_object_clear(c->registered);
	}
	c->next_keepalive = util_now_ms_mono() + c->ttl * 1000 / 3;
	if (publish(c, err, errlen) != 0)
		return -1;
	pthread_mutex_lock(&c->mu);
	keys_doc = c->keys_doc;
	c->keys_doc = NULL;
	pthread_mutex_unlock(&c->mu);
	if (keys_doc != NULL) {
		char kk[CONF_PATH_MAX + 16];

		cluster_ca_keys_key(&c->h->conf, kk, sizeof(kk));
		if (etcd_cas(c->etcd, kk, keys_doc, 0, &won, &r2, err,
		    errlen) != 0) {
			pthread_mutex_lock(&c->mu);
			c->keys_doc = keys_doc;
			pthread_mutex_unlock(&c->mu);
			return -1;
		}
		if (won)
			log_info("cluster: published this node's root keys to "
			    "etcd, sealed with ca.secret (%s)", kk);
		free(keys_doc);
	}
	pthread_mutex_lock(&c->mu);
	ca_doc = c->ca_doc;
	c->ca_doc = NULL;
	pthread_mutex_unlock(&c->mu);
	if (ca_doc != NULL) {
		int rc = etcd_cas(c->etcd, c->key_ca, ca_doc, 0, &won, &r2,
		    err, errlen);
		if (rc != 0) {
			pthread_mutex_lock(&c->mu);
			c->ca_doc = ca_doc;
			pthread_mutex_unlock(&c->mu);
			return -1;
		}
		if (won)
			log_info("cluster: published this node's CA roots and "
			    "trust domain to etcd");
		free(ca_doc);
	}
	if (etcd_range_prefix(c->etcd, c->key_root, &kvs, &n,
	    &rev, err, errlen) != 0)
		return -1;
	batch_add(c, ev_new(EV_RESET, NULL, NULL, 0, rev));
	c->saw_leader = 0;
	for (size_t i = 0; i < n; i++)
		on_watch_event(c, &kvs[i]);
	etcd_kvs_free(kvs, n);
	if (!c->saw_leader)
		c->elect = 1;
	if (etcd_watch_start(c->etcd, c->key_root, rev + 1,
	    on_watch_event, c, err, errlen) != 0) {
		batch_flush(c);
		return -1;
	}
	batch_flush(c);
	return 0;
}

static void
set_degraded(struct cluster *c, int down, const char *msg)
{
	int was;

	pthread_mutex_lock(&c->mu);
	was = c->degraded;
	c->degraded = down;
	pthread_mutex_unlock(&c->mu);
	if (was != down) {
		batch_add(c, ev_new(down ? EV_DOWN : EV_UP, NULL, msg,
		    strlen(msg), 0));
		batch_flush(c);
	}
}

/* Do the queued puts and deletes; on failure keep the rest. 0/-1. */
static int
run_ops(struct cluster *c, char *err, size_t errlen)
{
	for (;;) {
		struct op *o;
		int rc;

		pthread_mutex_lock(&c->mu);
		if ((o = c->ops_head) != NULL) {
			c->ops_head = o->next;
			if (c->ops_head == NULL)
				c->ops_tail = NULL;
		}
		pthread_mutex_unlock(&c->mu);
		if (o == NULL)
			return 0;
		rc = o->value != NULL ? etcd_put(c->etcd, o->key, o->value,
		    o->leased ? c->lease : 0, err, errlen) :
		    etcd_delete(c->etcd, o->key, err, errlen);
		if (rc != 0) {
			pthread_mutex_lock(&c->mu);
			o->next = c->ops_head;
			c->ops_head = o;
			if (c->ops_tail == NULL)
				c->ops_tail = o;
			pthread_mutex_unlock(&c->mu);
			return -1;
		}
		free(o->key);
		free(o->value);
		free(o);
	}
}

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
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	if (delivered)
		return;
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

/* No CA leader: a CA server runs for it (create-only, under our lease:
 * it leaves with us). The watch tells everyone who won. */
static int
elect(struct cluster *c, char *err, size_t errlen)
{
	int won = 0;
	int64_t rev;

	if (etcd_cas_lease(c->etcd, c->key_leader, c->h->conf.node, 0,
	    c->lease, &won, &rev, NULL, err, errlen) != 0)
		return -1;
	c->elect = 0;
	if (won)
		log_info("cluster: this node is now the CA leader: it signs "
		    "the CSRs of CA clients");
	return 0;
}

/* The writer thread: intention writes, and settling an unanswered one. */
static void *
writer(void *arg)
{
	struct cluster *c = arg;

	for (;;) {
		struct timespec ts;
		int stop;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&c->mu);
		if (!c->stop && !(c->save.state == 1 && !c->save.taken))
			pthread_cond_timedwait(&c->wcv, &c->mu, &ts);
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

static void *
worker(void *arg)
{
	struct cluster *c = arg;
	char err[ETCD_ERR_MAX];
	int64_t next_try = 0;

	for (;;) {
		int64_t now = util_now_ms_mono();
		int stop, dirty;

		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		dirty = c->want_dirty;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		if (!c->synced && now >= next_try) {
			if (sync_all(c, err, sizeof(err)) == 0) {
				c->synced = 1;
				log_debug("cluster: in sync with etcd at %s",
				    etcd_endpoint(c->etcd));
				set_degraded(c, 0, etcd_endpoint(c->etcd));
			} else {
				etcd_watch_stop(c->etcd);
				set_degraded(c, 1, err);
				next_try = util_now_ms_mono() + RETRY_MS;
			}
		}
		if (c->synced && dirty && publish(c, err, sizeof(err)) != 0) {
			log_warn("cluster: publishing services: %s", err);
			c->synced = 0;
		}
		if (c->synced && c->elect && c->ca_server &&
		    elect(c, err, sizeof(err)) != 0) {
			log_warn("cluster: CA leader election: %s", err);
			c->synced = 0;
		}
		if (c->synced && run_ops(c, err, sizeof(err)) != 0) {
			log_warn("cluster: %s", err);
			c->synced = 0;
		}
		if (c->synced && util_now_ms_mono() >= c->next_keepalive) {
			long left = 0;

			if (etcd_lease_keepalive(c->etcd, c->lease, &left, err,
			    sizeof(err)) != 0) {
				log_warn("cluster: lease keepalive: %s", err);
				c->synced = 0;
			} else if (left <= 0) {
				log_warn("cluster: our lease is gone: "
				    "registering again");
				c->lease = 0;
				c->synced = 0;
			}
			c->next_keepalive = util_now_ms_mono() +
			    c->ttl * 1000 / 3;
		}
		if (etcd_watch_poll(c->etcd, POLL_MS, err, sizeof(err)) != 0) {
			log_info("cluster: %s: re-listing", err);
			c->synced = 0;
		}
		batch_flush(c);
	}
	etcd_watch_stop(c->etcd);
	if (c->lease != 0 && c->synced &&
	    etcd_lease_revoke(c->etcd, c->lease, err, sizeof(err)) != 0)
		log_warn("cluster: revoking our lease: %s (our instances "
		    "leave when it expires)", err);
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
	pthread_mutex_unlock(&c->mu);
	etcd_wakeup(c->etcd);
}

/* "P/services/<svc>/<node>": is it ours? */
static int
own_instance(const struct cluster *c, const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash != NULL && strcmp(slash + 1, c->h->conf.node) == 0;
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
	if (intent_db_replace(c->h->intents, doc, len, c->key_intentions, err,
	    sizeof(err)) != 0) {
		log_err("cluster: ignoring bad intentions from etcd: %s", err);
		return;
	}
	c->intent_rev = e->value != NULL ? e->rev : 0;
	log_info("cluster: intentions updated from etcd (%zu, revision "
	    "%" PRId64 ")", intent_count(c->h->intents), e->rev);
	*changed = 1;
}

/* The remote catalog, kept in data_dir so that a node restarted while
 * etcd is down still knows where the other nodes' instances were. */
static void
remote_save(struct cluster *c)
{
	json_t *o = catalog_remote_dump(c->h->catalog);
	char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char path[CONF_PATH_MAX + 32];

	json_decref(o);
	if (txt == NULL)
		return;
	snprintf(path, sizeof(path), "%s/cluster-catalog.json",
	    c->h->conf.data_dir);
	if (util_write_atomic(path, txt, strlen(txt), 0644) != 0)
		log_warn("cluster: %s: %s", path, strerror(errno));
	free(txt);
}

static void
remote_load(struct cluster *c)
{
	char path[CONF_PATH_MAX + 32], why[256], *txt;
	const char *k;
	json_t *o, *v;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/cluster-catalog.json",
	    c->h->conf.data_dir);
	if ((txt = util_read_file(path, 64u << 20, NULL)) == NULL)
		return;
	o = json_loads(txt, 0, NULL);
	free(txt);
	json_object_foreach(o, k, v) {
		const char *val = json_string_value(v);

		if (strncmp(k, c->key_services, strlen(c->key_services)) == 0 &&
		    val != NULL && !own_instance(c, k) &&
		    catalog_remote_put(c->h->catalog, k, val, strlen(val), why,
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
		catalog_remote_clear(c->h->catalog);
		cluster_ca_reset(c);
		c->remote_dirty = 1;
		/* No intentions key in a snapshot: none in the cluster. */
		break;
	case EV_DOWN:
		log_err("cluster: ETCD UNREACHABLE (%s): running on the last "
		    "known catalog (%zu remote instances), intentions and "
		    "certificates; open connections are not affected",
		    e->value, catalog_remote_count(c->h->catalog));
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
			c->remote_dirty = 1;
			if (e->kind == EV_DEL) {
				if (catalog_remote_del(c->h->catalog, e->key))
					log_info("cluster: instance %s left",
					    e->key + pl);
			} else if (catalog_remote_put(c->h->catalog, e->key,
			    e->value, e->vlen, why, sizeof(why)) != 0) {
				log_warn("cluster: ignoring %s: %s", e->key,
				    why);
			} else {
				log_debug("cluster: instance %s", e->key + pl);
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
		ev_free(e);
	}
	if (reset && !saw_intents && intent_count(c->h->intents) > 0) {
		/* etcd has no intentions (a new cluster): it is the truth. */
		struct ev none = { .kind = EV_DEL };
		apply_intentions(c, &none, &changed);
	}
	if (reset && !c->synced_once) {
		c->synced_once = 1;
		log_info("cluster: in sync with etcd: %zu remote instance(s), "
		    "%zu intention(s)", catalog_remote_count(c->h->catalog),
		    intent_count(c->h->intents));
	}
	if (c->remote_dirty) {
		remote_save(c);
		c->remote_dirty = 0;
	}
	if (changed)
		helperd_intentions_changed(c->h, "intentions changed in etcd");
}

/* intent_save_fn: hand the document to the worker, wait for etcd. */
static int
save_intentions(void *arg, const char *doc, char *why, size_t whylen)
{
	struct cluster *c = arg;
	struct timespec ts;
	char *copy = strdup(doc);
	int ok = 0, rc = 0, unsure = 0;
	uint64_t seq;

	if (copy == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += SAVE_WAIT_MS / 1000;
	pthread_mutex_lock(&c->mu);
	c->save = (struct save_req){ .seq = ++c->save_seq, .doc = copy,
	    .base_rev = c->intent_rev, .state = 1 };
	pthread_cond_broadcast(&c->wcv);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->mu);
	while (c->save.state != 2 && rc == 0)
		rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	seq = c->save.seq;
	if (c->save.state == 2) {
		ok = c->save.ok;
		if (ok)
			c->intent_rev = c->save.rev;
		else
			snprintf(why, whylen, "%s", c->save.why);
	} else if (!c->save.taken) {
		/* The worker never sent it (busy re-syncing): never will. */
		snprintf(why, whylen, "etcd did not answer within %d s: the "
		    "change was not made", SAVE_WAIT_MS / 1000);
	} else {
		unsure = 1;
		snprintf(why, whylen, "the change was sent to etcd, which did "
		    "not confirm it within %d s: it may have been applied, now "
		    "or when etcd answers (helperd keeps asking and logs the "
		    "outcome of change #%" PRIu64 "); list the intentions "
		    "before trying again", SAVE_WAIT_MS / 1000, seq);
	}
	/* A late answer finds state 0: the worker logs it. */
	free(c->save.doc);
	c->save = (struct save_req){ 0 };
	pthread_mutex_unlock(&c->mu);
	if (unsure)
		log_warn("cluster: intention change #%" PRIu64 ": outcome "
		    "unknown so far: %s", seq, why);
	else if (!ok)
		log_warn("cluster: intention change not stored: %s", why);
	return ok ? 0 : unsure ? INTENT_SAVE_UNKNOWN : -1;
}

/* Our instances as etcd keys and values. */
static json_t *
want_build(struct cluster *c)
{
	struct helperd *h = c->h;
	json_t *o = json_object();
	char key[CONF_PATH_MAX + 160];

	for (size_t i = 0; i < catalog_local_count(h->catalog); i++) {
		const struct conf_service *s = catalog_local_at(h->catalog, i);
		const char *output = "";
		enum catalog_status st;
		json_t *v;
		char *txt;

		if (s->port <= 0)
			continue;
		st = health_status(h->health, s, &output);
		v = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:s, s:s}",
		    "Node", h->conf.node, "Address", h->conf.advertise_addr,
		    "MeshPort", h->mesh_port_bound, "Service", s->name,
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
		    h->conf.node);
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
	pthread_mutex_unlock(&c->mu);
	etcd_wakeup(c->etcd);
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
cluster_start(struct cluster **out, struct helperd *h, char *err,
    size_t errlen)
{
	struct cluster *c = calloc(1, sizeof(*c));
	const char *p = h->conf.store.prefix;
	json_t *roots;
	size_t pl = strlen(p);
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->h = h;
	c->efd = -1;
	c->w.fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_cond_init(&c->wcv, NULL);
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
	c->ca_server = !ca_is_client(h->ca);
	cluster_ca_keys_key(&h->conf, c->key_keys, sizeof(c->key_keys));
	if ((c->csr_pending = json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	c->ttl = h->conf.store.lease_ttl > 0 ? h->conf.store.lease_ttl : 10;
	remote_load(c);
	c->registered = json_object();
	c->want = want_build(c);
	roots = ca_is_client(h->ca) ? NULL : ca_roots_json(h->ca);
	c->ca_doc = roots != NULL ? json_dumps(roots, JSON_COMPACT) : NULL;
	json_decref(roots);
	if (c->registered == NULL || c->want == NULL ||
	    (c->ca_doc == NULL && !ca_is_client(h->ca))) {
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	if (c->ca_server && h->conf.ca.secret[0] != '\0') {
		char dir[CONF_PATH_MAX + 8];

		snprintf(dir, sizeof(dir), "%s/ca", h->conf.data_dir);
		if ((c->keys_doc = cluster_ca_keys_box(&h->conf, dir, err,
		    errlen)) == NULL)
			goto err;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);  /* before any thread */
	if (etcd_new(&c->etcd, &h->conf.store, err, errlen) != 0 ||
	    etcd_new(&c->wetcd, &h->conf.store, err, errlen) != 0)
		goto err;
	if ((c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    loop_add(h->loop, &c->w, c->efd, EPOLLIN, on_eventfd, c) != 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto err;
	}
	/* Signals belong to the loop thread (signalfd): the worker is
	 * created with every signal blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->thr, NULL, worker, c);
	if (rc == 0) {
		c->started = 1;
		rc = pthread_create(&c->wthr, NULL, writer, c);
		c->wstarted = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the etcd threads");
		goto err;
	}
	intent_db_set_saver(h->intents, save_intentions, c);
	log_info("cluster: etcd store at %s (prefix %s, lease TTL %ld s)",
	    h->conf.store.endpoints[0], h->conf.store.prefix, c->ttl);
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
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->wcv);
		pthread_mutex_unlock(&c->mu);
		etcd_wakeup(c->etcd);
		pthread_join(c->thr, NULL);
		if (c->wstarted)
			pthread_join(c->wthr, NULL);
		intent_db_set_saver(c->h->intents, NULL, NULL);
	}
	if (c->w.fd >= 0)
		loop_del(c->h->loop, &c->w);
	if (c->efd >= 0)
		close(c->efd);
	while ((e = c->q_head) != NULL) {
		c->q_head = e->next;
		ev_free(e);
	}
	while ((e = c->batch_head) != NULL) {
		c->batch_head = e->next;
		ev_free(e);
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
	json_decref(c->want);
	json_decref(c->registered);
	free(c->ca_doc);
	free(c->keys_doc);
	free(c->save.doc);
	free(c->unsure.doc);
	pthread_cond_destroy(&c->cv);
	pthread_cond_destroy(&c->wcv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

