/* health: Consul-style checks of the local services (see health.h). This
 * file keeps the checks in line with the catalog's local services
 * (health_sync: which checks stay, which are new, which definitions of a
 * changed instance serve) and is the interface; a run of a check is
 * health_run.c (TCP) and health_http.c (HTTP(S)), its result and the
 * statuses health_status.c. */
#include "helperd/local/health.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health_int.h"
#include "helperd/local/resolve.h"

/* Checks of the local services --------------------------------------------- */

static struct hcheck *
check_new(struct health *hl, const struct conf_service *s,
    const struct conf_check *def, const char *id, int is_default)
{
	struct hcheck *c = calloc(1, sizeof(*c));
	long ci = hl->env.conf->check_interval_ms;

	if (c == NULL)
		return NULL;
	c->hl = hl;
	c->fd = -1;
	c->w.fd = -1;
	loop_timer_init(&c->t, health_check_timer, c);
	c->logged = -1;
	c->is_default = is_default;
	c->created = util_now_ms_mono();
	util_strlcpy(c->id, id, sizeof(c->id));
	util_strlcpy(c->svc_id, s->id, sizeof(c->svc_id));
	util_strlcpy(c->svc_name, s->name, sizeof(c->svc_name));
	c->def = *def;
	c->interval_ms = def->interval_ms > 0 ? def->interval_ms :
	    ci > 0 ? ci : 10000;
	c->timeout_ms = def->timeout_ms > 0 ? def->timeout_ms :
	    CONF_CHECK_TIMEOUT_MS;
	if (c->timeout_ms >= c->interval_ms)
		c->timeout_ms = c->interval_ms / 2;
	c->need_pass = def->success_before_passing > 0 ?
	    def->success_before_passing : 1;
	c->need_fail = def->failures_before_critical > 0 ?
	    def->failures_before_critical : 1;
	/* The state before the first run: critical, as Consul's. */
	c->status = CATALOG_CRITICAL;
	util_strlcpy(c->output, def->type == CONF_CHECK_TTL ?
	    "TTL not reported yet" : "not checked yet", sizeof(c->output));
	if (def->type == CONF_CHECK_TCP) {
		if (util_split_hostport(def->target, c->host, sizeof(c->host),
		    &c->port) != 0)
			goto err;
	} else if (def->type == CONF_CHECK_HTTP &&
	    health_http_prepare(c) != 0) {
		goto err;
	}
	return c;
err:
	log_err("health: %s: cannot set up check %s", s->name, id);
	health_check_free(hl, c);
	return NULL;
}

static int
def_eq(const struct conf_check *a, const struct conf_check *b)
{
	return a->type == b->type && strcmp(a->target, b->target) == 0 &&
	    a->interval_ms == b->interval_ms &&
	    a->timeout_ms == b->timeout_ms && a->ttl_ms == b->ttl_ms &&
	    a->success_before_passing == b->success_before_passing &&
	    a->failures_before_critical == b->failures_before_critical &&
	    a->tls_skip_verify == b->tls_skip_verify &&
	    strcmp(a->tls_server_name, b->tls_server_name) == 0;
}

/* Move the checks of instance id's definition (prev: current 0, previous
 * 1) from hl->v to nv, as the definition newprev. */
static void
take_checks(struct health *hl, const char *id, int prev, int newprev,
    struct hcheck **nv, size_t *nn)
{
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (c != NULL && c->prev == prev && strcmp(c->svc_id, id) == 0) {
			c->prev = newprev;
			nv[(*nn)++] = c;
			hl->v[i] = NULL;
		}
	}
}

/* Move hsvc p from hl->sv to nsv. */
static void
take_sv(struct health *hl, struct hsvc *p, struct hsvc **nsv, size_t *ns)
{
	for (size_t i = 0; p != NULL && i < hl->nsv; i++)
		if (hl->sv[i] == p) {
			nsv[(*ns)++] = p;
			hl->sv[i] = NULL;
			return;
		}
}

/* Does instance o, as s now defines it, need new checks: another
 * address or port (they decide what is dialled and helperd's own check)
 * or other checks? Other changes (tags, upstreams, user) keep the
 * health state. */
static int
dial_changed(const struct conf_service *o, const struct conf_service *s)
{
	if (strcmp(o->name, s->name) != 0 ||
	    strcmp(o->address, s->address) != 0 || o->port != s->port ||
	    o->n_checks != s->n_checks)
		return 1;
	for (size_t j = 0; j < s->n_checks; j++)
		if (!def_eq(&o->checks[j], &s->checks[j]))
			return 1;
	return 0;
}

/* New checks for s (helperd's own, or its definitions), to run at once. */
static void
checks_new(struct health *hl, const struct conf_service *s,
    struct hcheck **nv, size_t *nn)
{
	char id[CHECK_ID_MAX];
	struct hcheck *c;

	if (s->n_checks == 0 && s->port > 0) {
		/* helperd's own check (Consul adds none): a TCP connect
		 * that needs HEALTH_DEFAULT_FAILURES failures in a row
		 * before critical. */
		struct conf_check def = { .type = CONF_CHECK_TCP,
			.failures_before_critical = HEALTH_DEFAULT_FAILURES };

		if ((size_t)snprintf(def.target, sizeof(def.target),
		    "%s%s%s:%d", strchr(s->address, ':') != NULL ? "[" : "",
		    s->address, strchr(s->address, ':') != NULL ? "]" : "",
		    s->port) < sizeof(def.target) &&
		    (size_t)snprintf(id, sizeof(id), "service:%s", s->id) <
		    sizeof(id) && (c = check_new(hl, s, &def, id, 1)) != NULL)
			nv[(*nn)++] = c;
	}
	for (size_t j = 0; j < s->n_checks; j++) {
		int k = s->n_checks == 1 ?
		    snprintf(id, sizeof(id), "service:%s", s->id) :
		    snprintf(id, sizeof(id), "service:%s:%zu", s->id, j + 1);

		if (k > 0 && (size_t)k < sizeof(id) &&
		    (c = check_new(hl, s, &s->checks[j], id, 0)) != NULL)
			nv[(*nn)++] = c;
	}
}

/* Run the fresh checks now and wait (poll, their sockets only) at most
 * HEALTH_SETTLE_MS for their results. */
static void
settle(struct health *hl)
{
	int64_t now = util_now_ms_mono(), end = now + HEALTH_SETTLE_MS;
	struct pollfd *pf;
	struct hcheck **pc;

	pf = calloc(hl->n + 1, sizeof(*pf));
	pc = calloc(hl->n + 1, sizeof(*pc));
	for (size_t i = 0; pf != NULL && pc != NULL && i < hl->n; i++)
		if (hl->v[i]->fresh && hl->v[i]->def.type != CONF_CHECK_TTL)
			health_check_start(hl->v[i], now);
	while (pf != NULL && pc != NULL && (now = util_now_ms_mono()) < end) {
		nfds_t k = 0;
		int resolving = 0;

		for (size_t i = 0; i < hl->n; i++) {
			struct hcheck *c = hl->v[i];

			if (!c->fresh || c->phase == PH_IDLE)
				continue;
			if (c->phase == PH_RESOLVE) {
				health_check_resolved(c);
				resolving = 1;
				continue;
			}
			pf[k].fd = c->fd;
			pf[k].events = c->phase == PH_READ ||
			    (c->tls != NULL &&
			    !gnutls_record_get_direction(c->tls)) ?
			    POLLIN : POLLOUT;
			pf[k].revents = 0;
			pc[k++] = c;
		}
		if (k == 0 && !resolving)
			break;
		if (poll(pf, k, resolving ? 5 : (int)(end - now)) < 0)
			break;
		for (nfds_t j = 0; j < k; j++)
			if (pf[j].revents != 0 && pc[j]->phase != PH_IDLE)
				health_check_event(pc[j], 0);
	}
	for (size_t i = 0; i < hl->n; i++)
		hl->v[i]->fresh = 0;
	free(pf);
	free(pc);
}

/* Drop the previous definitions marked retire, with their checks. */
static void
retire_sweep(struct health *hl)
{
	size_t k = 0;

	if (!hl->retire_pending)
		return;
	hl->retire_pending = 0;
	for (size_t i = 0; i < hl->nsv; i++) {
		struct hsvc *p = hl->sv[i];

		if (!p->retire) {
			hl->sv[k++] = p;
			continue;
		}
		for (size_t j = 0; j < hl->n; j++)
			if (hl->v[j] != NULL && hl->v[j]->prev &&
			    strcmp(hl->v[j]->svc_id, p->def.id) == 0) {
				health_check_free(hl, hl->v[j]);
				hl->v[j] = NULL;
			}
		free(p);
	}
	hl->nsv = k;
	k = 0;
	for (size_t j = 0; j < hl->n; j++)
		if (hl->v[j] != NULL)
			hl->v[k++] = hl->v[j];
	hl->n = k;
	hl->gen++;
	health_changed(hl);
}

/* Mark the previous definitions whose current one passes. */
static void
retire_ready(struct health *hl)
{
	const char *o;

	for (size_t i = 0; i < hl->nsv; i++) {
		struct hsvc *p = hl->sv[i];

		if (p->prev && !p->retire &&
		    health_svc_status(hl, p->def.id, 0, &o) ==
		    CATALOG_PASSING) {
			log_info("health: %s: its new definition passes its "
			    "checks: dialled from now on (the previous one, "
			    "%s:%d, no longer)", p->def.id, p->def.address,
			    p->def.port);
			p->retire = 1;
			hl->retire_pending = 1;
			hl->gen++;
		}
	}
}

/* The checks of local instance s into nv (kept, kept as its previous
 * definition's, or new) and its definitions into nsv, for health_sync.
 * 1 when its new checks are to be waited for, else 0. */
static int
sync_instance(struct health *hl, const struct conf_service *s,
    struct hcheck **nv, size_t *nn, struct hsvc **nsv, size_t *ns)
{
	struct hsvc *o = health_sv_find(hl, s->id, 0);
	struct hsvc *p = health_sv_find(hl, s->id, 1);
	struct hsvc *cur = calloc(1, sizeof(*cur));
	size_t first = *nn;
	const char *out;
	int settle_any = 0;

	if (cur == NULL) {
		log_err("health: out of memory: %s has no checks", s->id);
		return 0;
	}
	cur->def = *s;
	cur->def.upstreams = NULL;
	cur->def.n_upstreams = 0;
	nsv[(*ns)++] = cur;
	if (o != NULL && !dial_changed(&o->def, s)) {
		/* Unchanged where it matters: same checks, same state, same
		 * timers (and a previous definition still serving, if any). */
		take_checks(hl, s->id, 0, 0, nv, nn);
		take_checks(hl, s->id, 1, 1, nv, nn);
		take_sv(hl, p, nsv, ns);
		return 0;
	}
	if (o != NULL && health_svc_status(hl, s->id, 0, &out) ==
	    CATALOG_PASSING) {
		/* Changed while it passed: the old definition keeps serving
		 * (and being checked) until the new one passes; an older
		 * one waiting is dropped. */
		take_checks(hl, s->id, 0, 1, nv, nn);
		o->prev = 1;
		take_sv(hl, o, nsv, ns);
		p = o;
		log_info("health: %s changed: dialled on its previous "
		    "definition (%s:%d) until the new one (%s:%d) passes its "
		    "checks", s->id, o->def.address, o->def.port, s->address,
		    s->port);
	} else if (p != NULL) {
		/* Changed again before it passed: the previous one that
		 * passed keeps serving. */
		take_checks(hl, s->id, 1, 1, nv, nn);
		take_sv(hl, p, nsv, ns);
	}
	checks_new(hl, s, nv, nn);
	for (size_t j = first; j < *nn; j++) {
		if (nv[j]->prev)
			continue;
		nv[j]->next_run = 0;    /* at once */
		/* No previous definition serving: wait for it briefly (a new
		 * service that already listens is passing when its
		 * registration returns). */
		nv[j]->fresh = p == NULL;
		settle_any |= p == NULL;
	}
	return settle_any;
}

void
health_sync(struct health *hl)
{
	struct catalog *cat = hl->env.catalog;
	size_t nl = catalog_local_count(cat), nn = 0, cap = hl->n, ns = 0;
	struct hcheck **nv;
	struct hsvc **nsv;
	int settle_any = 0;

	for (size_t i = 0; i < nl; i++) {
		const struct conf_service *s = catalog_local_at(cat, i);
		cap += s->n_checks > 0 ? s->n_checks : 1;
	}
	nv = calloc(cap + 1, sizeof(*nv));
	nsv = calloc(2 * nl + 1, sizeof(*nsv));
	if (nv == NULL || nsv == NULL) {
		free(nv);
		free(nsv);
		log_err("health: out of memory: checks unchanged");
		return;
	}
	for (size_t i = 0; i < nl; i++)
		settle_any |= sync_instance(hl, catalog_local_at(cat, i), nv,
		    &nn, nsv, &ns);
	for (size_t i = 0; i < hl->n; i++)
		health_check_free(hl, hl->v[i]);       /* the ones not kept */
	for (size_t i = 0; i < hl->nsv; i++)
		free(hl->sv[i]);                /* removed instances */
	free(hl->v);
	free(hl->sv);
	hl->v = nv;
	hl->n = nn;
	hl->sv = nsv;
	hl->nsv = ns;
	hl->gen++;
	if (settle_any)
		settle(hl);
	for (size_t i = 0; i < hl->n; i++)
		health_check_arm(hl->v[i]);
	retire_ready(hl);
	retire_sweep(hl);
}

static void
sweep_due(void *arg)
{
	retire_sweep(arg);
}

/* The interface ------------------------------------------------------------ */

int
health_new(struct health **out, const struct health_env *env)
{
	struct health *hl = calloc(1, sizeof(*hl));

	if (hl == NULL)
		return -1;
	hl->env = *env;
	loop_timer_init(&hl->sweep, sweep_due, hl);
	*out = hl;
	return 0;
}

void
health_free(struct health *hl)
{
	if (hl == NULL)
		return;
	/* Stopped first (their sockets leave epoll): no later round can
	 * see them, and the loop may already be gone. */
	loop_timer_del(hl->env.loop, &hl->sweep);
	for (size_t i = 0; i < hl->n; i++) {
		health_run_release(hl->v[i]);
		loop_timer_del(hl->env.loop, &hl->v[i]->t);
		health_check_free_now(hl->v[i]);
	}
	free(hl->v);
	for (size_t i = 0; i < hl->nsv; i++)
		free(hl->sv[i]);
	free(hl->sv);
	if (hl->cred_ready)
		gnutls_certificate_free_credentials(hl->cred);
	if (resolve_reap(2000) > 0)
		log_warn("health: name lookups still running at exit");
	free(hl);
}

int
health_ttl_update(struct health *hl, const char *check_id,
    enum catalog_status st, const char *note, int *http_status, char *why,
    size_t whylen)
{
	int found = 0;

	/* The current definition's check, and the previous one's of the
	 * same ID while it serves: the service reports for both. */
	for (size_t i = 0; i < hl->n; i++) {
		struct hcheck *c = hl->v[i];

		if (strcmp(c->id, check_id) != 0)
			continue;
		if (c->def.type != CONF_CHECK_TTL) {
			if (c->prev)
				continue;
			*http_status = 500;
			snprintf(why, whylen, "CheckID \"%s\" does not have "
			    "associated TTL", check_id);
			return -1;
		}
		c->ttl_expiry = util_now_ms_mono() + c->def.ttl_ms;
		health_check_result(c, st, "%s", note != NULL ? note : "");
		health_check_arm(c);
		found = 1;
	}
	retire_sweep(hl);
	if (found)
		return 0;
	*http_status = 404;
	snprintf(why, whylen, "Unknown check ID \"%s\"", check_id);
	return -1;
}
