/* cluster_sync: the etcd side of a node's membership: the lease keeper,
 * the watcher and the worker (see cluster_int.h for who does what).
 *
 * Why three threads: the lease must be renewed on time whatever else
 * etcd is slow to answer (a sync slower than the TTL used to lose the
 * lease under it, and each new lease meant registering again: the
 * re-registration storm of docs/SCALE.md); watch events must reach the
 * loop as they come, not between two blocking calls; and a lost watch is
 * resumed from the last revision seen, not re-listed. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/cluster/cluster_int.h"
#include "helperd/cluster/store_etcd.h"

/* Events (watcher -> loop) ---------------------------------------------- */

void
cluster_ev_free(struct ev *e)
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
		cluster_ev_free(e);
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

/* Hand the batch to the loop, in one piece (a listing is applied whole). */
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

/* Time ---------------------------------------------------------------- */

int64_t
cluster_backoff_ms(int fails)
{
	static __thread unsigned seed;
	int64_t ms = BACKOFF_MIN_MS;

	if (seed == 0)
		seed = (unsigned)util_now_ms_mono() ^ (unsigned)getpid() ^
		    (unsigned)(uintptr_t)&seed;
	for (int i = 1; i < fails && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* Half of it fixed, half random: nodes that failed together do
	 * not come back together. */
	return ms / 2 + rand_r(&seed) % (ms / 2 + 1);
}

/* Wait on cv (with c->mu held) until the monotonic time at (0: no limit). */
static void
wait_until(struct cluster *c, pthread_cond_t *cv, int64_t at)
{
	struct timespec ts;
	int64_t left;

	if (at <= 0) {
		pthread_cond_wait(cv, &c->mu);
		return;
	}
	if ((left = at - util_now_ms_mono()) <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, &c->mu, &ts);
}

/* Keeper -------------------------------------------------------------- */

/* The TTL we ask etcd for: store.lease_ttl less 1 s. etcd's leader
 * looks for expired leases every 500 ms (lessor runLoop, 3.4), then
 * revokes through raft, then the watches deliver: a lease granted for
 * the full TTL left a killed node listed up to TTL + ~0.65 s after its
 * last renewal (docs/SCALE.md). With 1 s kept for that, a dead node's
 * instances are gone within lease_ttl, as documented. At 2 s or less
 * (etcd's minimum is ~2 s) the TTL is asked for as it is. */
long
cluster_lease_grant_ttl(long ttl)
{
	return ttl >= 3 ? ttl - 1 : ttl;
}

static void
keeper_set(struct cluster *c, int64_t lease)
{
	pthread_mutex_lock(&c->mu);
	c->lease = lease;
	if (lease != 0) {
		c->lease_gen++;
		pthread_cond_broadcast(&c->ocv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *
keeper(void *arg)
{
	struct cluster *c = arg;
	char err[ETCD_ERR_MAX];
	int64_t lease = 0, next = 0;
	long ttl = cluster_lease_grant_ttl(c->ttl);
	int fails = 0;

	for (;;) {
		int stop, check;
		long left = 0;

		pthread_mutex_lock(&c->mu);
		while (!c->stop && !c->lease_check &&
		    util_now_ms_mono() < next)
			wait_until(c, &c->kcv, next);
		stop = c->stop;
		check = c->lease_check;
		c->lease_check = 0;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		(void)check;    /* a keepalive now says whether it is gone */
		if (lease == 0) {
			if (etcd_lease_grant(c->ketcd, ttl, &lease, err,
			    sizeof(err)) != 0) {
				lease = 0;
				if (++fails == 1)
					log_warn("cluster: lease grant: %s "
					    "(retrying)", err);
				next = util_now_ms_mono() +
				    cluster_backoff_ms(fails);
				continue;
			}
			if (fails > 0)
				log_info("cluster: lease granted after %d "
				    "failed attempt(s)", fails);
			fails = 0;
			keeper_set(c, lease);
			next = util_now_ms_mono() + ttl * 1000 / 3;
			continue;
		}
		if (etcd_lease_keepalive(c->ketcd, lease, &left, err,
		    sizeof(err)) != 0) {
			/* Try again soon: the lease ends TTL after the last
			 * renewal that etcd took. The watch may be on the
			 * member that does not answer: have it checked. */
			if (++fails == 1)
				log_warn("cluster: lease keepalive: %s "
				    "(retrying)", err);
			if (fails == 2) {
				pthread_mutex_lock(&c->mu);
				c->watch_kick = 1;
				pthread_mutex_unlock(&c->mu);
				etcd_wakeup(c->vetcd);
			}
			next = util_now_ms_mono() + 500 +
			    cluster_backoff_ms(1) * 2;
			continue;
		}
		if (left <= 0) {
			log_warn("cluster: our lease is gone%s: registering "
			    "again", fails > 0 ? " (it expired while etcd "
			    "was out of reach)" : "");
			lease = 0;
			fails = 0;
			keeper_set(c, 0);
			next = 0;
			continue;
		}
		if (fails > 0)
			log_info("cluster: lease renewed again after %d "
			    "failed attempt(s)", fails);
		fails = 0;
		log_debug("cluster: lease %" PRIx64 " renewed (TTL %ld s)",
		    (uint64_t)lease, left);
		next = util_now_ms_mono() + ttl * 1000 / 3;
	}
	if (lease != 0 && etcd_lease_revoke(c->ketcd, lease, err,
	    sizeof(err)) != 0)
		log_warn("cluster: revoking our lease: %s (our instances "
		    "leave when it expires)", err);
	return NULL;
}

/* Watcher ------------------------------------------------------------- */

static int
own_instance(const struct cluster *c, const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash != NULL && strcmp(slash + 1, c->node) == 0;
}

/* Keep the copy of remote instances for cluster-catalog.json. */
static void
mirror_apply(struct cluster *c, const struct etcd_kv *kv)
{
	size_t pl = strlen(c->key_services);

	if (strncmp(kv->key, c->key_services, pl) != 0 ||
	    own_instance(c, kv->key) || c->mirror == NULL)
		return;
	if (kv->value == NULL)
		json_object_del(c->mirror, kv->key);
	else
		json_object_set_new(c->mirror, kv->key,
		    json_stringn(kv->value, kv->vlen));
	c->mirror_dirty = 1;
}

/* Written off the loop, at most every REMOTE_SAVE_MS: a restart while
 * etcd is down starts from it (cluster.c remote_load). */
static void
mirror_save(struct cluster *c, int now)
{
	char *txt;

	if (!c->mirror_dirty || (!now && util_now_ms_mono() <
	    c->mirror_saved + REMOTE_SAVE_MS))
		return;
	c->mirror_dirty = 0;
	c->mirror_saved = util_now_ms_mono();
	if ((txt = json_dumps(c->mirror, JSON_COMPACT)) == NULL)
		return;
	if (util_write_atomic(c->remote_path, txt, strlen(txt), 0644) != 0)
		log_warn("cluster: %s: %s", c->remote_path, strerror(errno));
	free(txt);
}

static void
on_watch_event(void *arg, const struct etcd_kv *kv)
{
	struct cluster *c = arg;

	if (strcmp(kv->key, c->key_leader) == 0) {
		if (kv->value == NULL) {
			pthread_mutex_lock(&c->mu);
			c->elect = 1;   /* the leader left: run */
			pthread_cond_broadcast(&c->ocv);
			pthread_mutex_unlock(&c->mu);
		} else {
			c->saw_leader = 1;
		}
	}
	if (kv->mod_revision > c->vrev)
		c->vrev = kv->mod_revision;
	mirror_apply(c, kv);
	if (kv->value != NULL)
		batch_add(c, ev_new(EV_PUT, kv->key, kv->value, kv->vlen,
		    kv->mod_revision));
	else
		batch_add(c, ev_new(EV_DEL, kv->key, NULL, 0,
		    kv->mod_revision));
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

/* Everything under the prefix, as one batch starting with EV_RESET. */
static int
list_all(struct cluster *c, char *err, size_t errlen)
{
	struct etcd_kv *kvs;
	size_t n;
	int64_t rev;

	if (etcd_range_prefix(c->vetcd, c->key_root, &kvs, &n, &rev, err,
	    errlen) != 0)
		return -1;
	batch_add(c, ev_new(EV_RESET, NULL, NULL, 0, rev));
	json_object_clear(c->mirror);
	c->mirror_dirty = 1;
	c->saw_leader = 0;
	for (size_t i = 0; i < n; i++)
		on_watch_event(c, &kvs[i]);
	etcd_kvs_free(kvs, n);
	c->vrev = rev;
	if (!c->saw_leader) {
		pthread_mutex_lock(&c->mu);
		c->elect = 1;
		pthread_cond_broadcast(&c->ocv);
		pthread_mutex_unlock(&c->mu);
	}
	batch_flush(c);
	log_debug("cluster: listed %zu key(s) at revision %" PRId64, n, rev);
	return 0;
}

/* A watch could not be started or confirmed: the next member at once,
 * and after a round of all of them, degraded and backing off. */
static int64_t
watch_failed(struct cluster *c, int *fails, const char *err)
{
	int n = (int)etcd_endpoint_count(c->vetcd);

	etcd_endpoint_next(c->vetcd);
	if (++*fails < n)
		return 0;
	set_degraded(c, 1, err);
	return util_now_ms_mono() + cluster_backoff_ms(*fails - n + 1);
}

static void *
watcher(void *arg)
{
	struct cluster *c = arg;
	char err[ETCD_ERR_MAX];
	int64_t next_try = 0, created_by = 0, created_rev, start_rev = 0;
	int need_list = 1, fails = 0, running = 0, up = 0;

	for (;;) {
		int64_t now = util_now_ms_mono(), wait;
		int stop, kick;

		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		kick = c->watch_kick;
		c->watch_kick = 0;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		if (kick && running) {
			log_info("cluster: etcd did not renew our lease: "
			    "resuming the watch at revision %" PRId64 " on "
			    "the next member", c->vrev + 1);
			etcd_watch_stop(c->vetcd);
			etcd_endpoint_next(c->vetcd);
			running = up = 0;
		}
		if (!running && now >= next_try) {
			if (need_list && list_all(c, err, sizeof(err)) != 0) {
				/* The call tried every member already. */
				int n = (int)etcd_endpoint_count(c->vetcd);

				if (fails < n - 1)
					fails = n - 1;
				next_try = watch_failed(c, &fails, err);
				continue;
			}
			need_list = 0;
			if (etcd_watch_start(c->vetcd, c->key_root,
			    c->vrev + 1, on_watch_event, c, err,
			    sizeof(err)) != 0) {
				next_try = watch_failed(c, &fails, err);
				continue;
			}
			running = 1;
			start_rev = c->vrev;
			created_by = now + WATCH_CREATE_MS;
		}
		if (!running)
			wait = next_try - now;
		else if (!up)
			wait = created_by - now;
		else if (c->mirror_dirty)
			wait = c->mirror_saved + REMOTE_SAVE_MS - now;
		else
			wait = 60000;
		if (wait < 1)
			wait = 1;
		if (wait > 60000)
			wait = 60000;
		if (etcd_watch_poll(c->vetcd, (int)wait, err,
		    sizeof(err)) != 0) {
			running = 0;
			if (etcd_watch_compacted(c->vetcd) > 0) {
				log_info("cluster: %s: listing again", err);
				need_list = 1;
			} else if (up) {
				log_info("cluster: %s: resuming at revision "
				    "%" PRId64, err, c->vrev + 1);
				etcd_endpoint_next(c->vetcd);
				fails = 0;
			} else {
				next_try = watch_failed(c, &fails, err);
			}
			up = 0;
		}
		batch_flush(c);
		if (running && !up && etcd_watch_created(c->vetcd,
		    &created_rev)) {
			if (created_rev < start_rev) {
				/* etcd is at an older revision than we
				 * saw: rebuilt. Start over. */
				log_warn("cluster: etcd is at revision %" PRId64
				    ", behind the %" PRId64 " seen: listing "
				    "again", created_rev, start_rev);
				etcd_watch_stop(c->vetcd);
				running = 0;
				need_list = 1;
				continue;
			}
			up = 1;
			fails = 0;
			set_degraded(c, 0, etcd_endpoint(c->vetcd));
			log_debug("cluster: watching %s from revision %" PRId64
			    " at %s", c->key_root, c->vrev + 1,
			    etcd_endpoint(c->vetcd));
		} else if (running && !up && util_now_ms_mono() >=
		    created_by) {
			snprintf(err, sizeof(err), "%s did not confirm the "
			    "watch within %d ms", etcd_endpoint(c->vetcd),
			    WATCH_CREATE_MS);
			etcd_watch_stop(c->vetcd);
			running = 0;
			next_try = watch_failed(c, &fails, err);
		}
		mirror_save(c, 0);
	}
	etcd_watch_stop(c->vetcd);
	mirror_save(c, 1);
	return NULL;
}

/* Worker -------------------------------------------------------------- */

static void
registered_update(struct cluster *c, const char *const *keys,
    const char *const *vals, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (vals[i] != NULL)
			json_object_set_new(c->registered, keys[i],
			    json_string(vals[i]));
		else
			json_object_del(c->registered, keys[i]);
	}
}

/* Bring our registrations in line with want: the changes in
 * transactions of up to ETCD_TXN_MAX operations, under the lease. */
static int
publish(struct cluster *c, int64_t lease, char *err, size_t errlen)
{
	const char *keys[ETCD_TXN_MAX], *vals[ETCD_TXN_MAX];
	json_t *want, *v, *done = json_object();
	const char *k;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	want = json_deep_copy(c->want);
	c->want_dirty = 0;
	pthread_mutex_unlock(&c->mu);
	if (want == NULL || done == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto out;
	}
	/* done: key -> value (null: deleted) of the operations sent. */
	json_object_foreach(c->registered, k, v)
		if (json_object_get(want, k) == NULL)
			json_object_set_new(done, k, json_null());
	json_object_foreach(want, k, v) {
		const char *cur = json_string_value(json_object_get(
		    c->registered, k));

		if (cur == NULL || strcmp(cur, json_string_value(v)) != 0)
			json_object_set(done, k, v);
	}
	json_object_foreach(done, k, v) {
		keys[n] = k;
		vals[n] = json_string_value(v);
		if (++n < ETCD_TXN_MAX)
			continue;
		if ((rc = etcd_txn_puts(c->etcd, keys, vals, n, lease, err,
		    errlen)) != 0)
			goto out;
		registered_update(c, keys, vals, n);
		n = 0;
	}
	if (n > 0 && (rc = etcd_txn_puts(c->etcd, keys, vals, n, lease, err,
	    errlen)) == 0)
		registered_update(c, keys, vals, n);
out:
	if (rc != 0) {
		pthread_mutex_lock(&c->mu);
		c->want_dirty = 1;
		pthread_mutex_unlock(&c->mu);
	}
	json_decref(done);
	json_decref(want);
	return rc;
}

/* Publish doc at key if the key is absent (the first node's CA roots,
 * its sealed root keys). *slot is given back on failure. */
static int
publish_once(struct cluster *c, char **slot, const char *key,
    const char *what, char *err, size_t errlen)
{
	char *doc;
	int won = 0;
	int64_t rev;

	pthread_mutex_lock(&c->mu);
	doc = *slot;
	*slot = NULL;
	pthread_mutex_unlock(&c->mu);
	if (doc == NULL)
		return 0;
	if (etcd_cas(c->etcd, key, doc, 0, &won, &rev, err, errlen) != 0) {
		pthread_mutex_lock(&c->mu);
		if (*slot == NULL)
			*slot = doc;
		else
			free(doc);      /* a newer one came meanwhile */
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	if (won)
		log_info("cluster: published this node's %s (%s)", what, key);
	free(doc);
	return 0;
}

/* Do the queued puts and deletes; on failure keep the rest. 0/-1. */
static int
run_ops(struct cluster *c, int64_t lease, char *err, size_t errlen)
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
		    o->leased ? lease : 0, err, errlen) :
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

/* No CA leader: a CA server runs for it (create-only, under our lease:
 * it leaves with us). The watch tells everyone who won. */
static int
elect(struct cluster *c, int64_t lease, char *err, size_t errlen)
{
	int won = 0;
	int64_t rev;

	if (etcd_cas_lease(c->etcd, c->key_leader, c->node, 0, lease, &won,
	    &rev, NULL, err, errlen) != 0)
		return -1;
	if (won)
		log_info("cluster: this node is now the CA leader: it signs "
		    "the CSRs of CA clients");
	return 0;
}

static int
work_once(struct cluster *c, int64_t lease, int dirty, int run, char *err,
    size_t errlen)
{
	if (dirty && publish(c, lease, err, errlen) != 0)
		return -1;
	if (publish_once(c, &c->keys_doc, c->key_keys,
	    "root keys to etcd, sealed with ca.secret", err, errlen) != 0 ||
	    publish_once(c, &c->ca_doc, c->key_ca,
	    "CA roots and trust domain to etcd", err, errlen) != 0)
		return -1;
	if (run && elect(c, lease, err, errlen) != 0) {
		pthread_mutex_lock(&c->mu);
		c->elect = 1;
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	return run_ops(c, lease, err, errlen);
}

static void *
worker(void *arg)
{
	struct cluster *c = arg;
	char err[ETCD_ERR_MAX];
	int64_t next_try = 0, lease = 0;
	int fails = 0;

	for (;;) {
		int stop, dirty = 0, run = 0, pending;
		uint64_t gen = 0;

		pthread_mutex_lock(&c->mu);
		for (;;) {
			stop = c->stop;
			lease = c->lease;
			gen = c->lease_gen;
			dirty = c->want_dirty || gen != c->reg_gen;
			run = c->elect && c->ca_server;
			pending = lease != 0 && (dirty || run ||
			    c->ops_head != NULL || c->ca_doc != NULL ||
			    c->keys_doc != NULL);
			if (stop || (pending && util_now_ms_mono() >=
			    next_try))
				break;
			wait_until(c, &c->ocv, pending ? next_try : 0);
		}
		if (run)
			c->elect = 0;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		if (gen != c->reg_gen) {
			/* A new lease: what was under the old one is gone. */
			json_object_clear(c->registered);
			c->reg_gen = gen;
		}
		log_debug("cluster: worker: writing (lease %" PRIx64 ", "
		    "registrations %s, election %s)", (uint64_t)lease,
		    dirty ? "changed" : "same", run ? "run" : "no");
		if (work_once(c, lease, dirty, run, err, sizeof(err)) == 0) {
			if (fails > 0)
				log_info("cluster: etcd writes done after %d "
				    "failed attempt(s)", fails);
			fails = 0;
			next_try = 0;
			continue;
		}
		if (++fails == 1)
			log_warn("cluster: %s (retrying with backoff)", err);
		else
			log_debug("cluster: %s (attempt %d)", err, fails);
		next_try = util_now_ms_mono() + cluster_backoff_ms(fails);
		if (etcd_lease_missing(c->etcd)) {
			pthread_mutex_lock(&c->mu);
			c->lease_check = 1;
			pthread_cond_broadcast(&c->kcv);
			pthread_mutex_unlock(&c->mu);
		}
	}
	return NULL;
}

/* Start and stop ------------------------------------------------------- */

void
cluster_sync_wake(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	pthread_cond_broadcast(&c->ocv);
	pthread_mutex_unlock(&c->mu);
}

int
cluster_sync_start(struct cluster *c)
{
	sigset_t all, old;
	int rc;

	if ((c->mirror = json_object()) == NULL)
		return -1;
	/* Signals belong to the loop thread (signalfd): the threads are
	 * created with every signal blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->kthr, NULL, keeper, c);
	c->kstarted = rc == 0;
	if (rc == 0) {
		rc = pthread_create(&c->vthr, NULL, watcher, c);
		c->vstarted = rc == 0;
	}
	if (rc == 0) {
		rc = pthread_create(&c->thr, NULL, worker, c);
		c->started = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0 ? 0 : -1;
}

void
cluster_sync_stop(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->ocv);
	pthread_cond_broadcast(&c->kcv);
	pthread_mutex_unlock(&c->mu);
	if (c->vetcd != NULL)
		etcd_wakeup(c->vetcd);
	if (c->started)
		pthread_join(c->thr, NULL);
	if (c->vstarted)
		pthread_join(c->vthr, NULL);
	/* Last: the keeper revokes the lease, our instances leave. */
	if (c->kstarted)
		pthread_join(c->kthr, NULL);
	c->started = c->vstarted = c->kstarted = 0;
	json_decref(c->mirror);
	c->mirror = NULL;
}
