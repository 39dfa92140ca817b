/* health_status: the status model of health's checks (see health.h).
 * A run's result counts toward its check's thresholds
 * (health_check_result); a check's status changes its instance's (the
 * worst of its checks), logged once per change and reported to the node
 * (health_ops.services_changed). An instance whose definition changed is
 * dialled on its previous definition until the new one passes. The
 * catalog reads these statuses through catalog_health_ops, the API
 * through health_agent_checks_json. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/health_int.h"

static const char *const type_names[] = { "", "tcp", "http", "ttl" };

/* What the node publishes may have changed (an instance's status as it is
 * dialled, a previous definition retired): tell it. */
void
health_changed(struct health *hl)
{
	if (hl->env.ops != NULL && hl->env.ops->services_changed != NULL)
		hl->env.ops->services_changed(hl->env.cookie);
}

/* The worst status of the checks of instance id's current (prev 0) or
 * previous (prev 1) definition, and its output. No checks: passing. */
enum catalog_status
health_svc_status(const struct health *hl, const char *id, int prev,
    const char **output)
{
	enum catalog_status st = CATALOG_PASSING;

	*output = "";
	for (size_t i = 0; i < hl->n; i++) {
		const struct hcheck *c = hl->v[i];

		/* NULL: taken into the new list by a reload under way. */
		if (c == NULL || c->prev != prev || strcmp(c->svc_id, id) != 0)
			continue;
		if (c->status > st || (c->status == st && (*output)[0] == '\0')) {
			st = c->status;
			*output = c->output;
		}
	}
	return st;
}

/* Instance id's current (prev 0) or previous (prev 1) definition, or
 * NULL. A previous one marked retire counts as gone. */
struct hsvc *
health_sv_find(const struct health *hl, const char *id, int prev)
{
	for (size_t i = 0; i < hl->nsv; i++)
		if (hl->sv[i] != NULL && hl->sv[i]->prev == prev &&
		    !hl->sv[i]->retire && strcmp(hl->sv[i]->def.id, id) == 0)
			return hl->sv[i];
	return NULL;
}

/* The previous definition of instance id that is dialled in place of
 * the current one (the current one does not pass, the previous one
 * does), or NULL. */
const struct hsvc *
health_serving_prev(const struct health *hl, const char *id,
    const char **output)
{
	const struct hsvc *p = health_sv_find(hl, id, 1);
	const char *o;

	if (p == NULL || health_svc_status(hl, id, 0, &o) == CATALOG_PASSING ||
	    health_svc_status(hl, id, 1, output) != CATALOG_PASSING)
		return NULL;
	return p;
}

/* Instance id as it is dialled: its current definition's status, or
 * passing while its previous definition serves in its place. */
static enum catalog_status
eff_status(const struct health *hl, const char *id, const char **output)
{
	enum catalog_status st = health_svc_status(hl, id, 0, output);
	const char *po;

	if (st != CATALOG_PASSING && health_serving_prev(hl, id, &po) != NULL) {
		*output = "its previous definition serves until this one "
		    "passes its checks";
		return CATALOG_PASSING;
	}
	return st;
}

/* How many local instances of name are dialled (pass their checks, or
 * their previous definition does). */
static size_t
name_passing(const struct health *hl, const char *name)
{
	struct catalog *cat = hl->env.catalog;
	size_t n = 0;
	const char *out;

	for (size_t i = 0; i < catalog_local_count(cat); i++) {
		const struct conf_service *s = catalog_local_at(cat, i);

		if (strcmp(s->name, name) == 0 &&
		    eff_status(hl, s->id, &out) == CATALOG_PASSING)
			n++;
	}
	return n;
}

/* " (billing-1)" when an instance's ID is not its name, and " (previous
 * definition)" for the checks of one. */
static void
inst_label(const struct hcheck *c, char *buf, size_t len)
{
	int other = strcmp(c->svc_id, c->svc_name) != 0;

	snprintf(buf, len, "%s%s%s%s", other ? " (" : "", other ? c->svc_id :
	    "", other ? ")" : "", c->prev ? " (previous definition)" : "");
}

/* Set a check's status and output; log and publish a change of its
 * service's status (once per change), and say so when the last passing
 * local instance of a name goes. */
void
health_check_set(struct hcheck *c, enum catalog_status st, const char *out)
{
	struct health *hl = c->hl;
	enum catalog_status before, after;
	size_t name_before = name_passing(hl, c->svc_name), name_after;
	const char *o, *eo;
	char label[CONF_NAME_MAX + 32];
	struct hsvc *p;

	before = eff_status(hl, c->svc_id, &eo);
	/* What the workers' dial table reads is the status: a new output
	 * alone (a check that passes again) changes nothing there, and
	 * would rebuild that table (every remote instance) once per check
	 * run. */
	if (st != c->status)
		hl->gen++;
	c->status = st;
	util_strlcpy(c->output, out, sizeof(c->output));
	after = health_svc_status(hl, c->svc_id, c->prev, &o);
	if ((int)after != c->logged) {
		inst_label(c, label, sizeof(label));
		if (after == CATALOG_PASSING)
			log_info("health: %s%s is passing", c->svc_name, label);
		else
			log_warn("health: %s%s is %s: %s", c->svc_name, label,
			    catalog_status_name(after), o);
		for (size_t i = 0; i < hl->n; i++)
			if (hl->v[i] != NULL && hl->v[i]->prev == c->prev &&
			    strcmp(hl->v[i]->svc_id, c->svc_id) == 0)
				hl->v[i]->logged = (int)after;
	}
	if (!c->prev && after == CATALOG_PASSING &&
	    (p = health_sv_find(hl, c->svc_id, 1)) != NULL) {
		/* The new definition is ready: dial it, retire the old. */
		log_info("health: %s: its new definition passes its checks: "
		    "dialled from now on (the previous one, %s:%d, no longer)",
		    c->svc_id, p->def.address, p->def.port);
		p->retire = 1;
		hl->retire_pending = 1;
		/* Swept after this round: the caller may be walking hl->v. */
		if (loop_timer_add(hl->env.loop, &hl->sweep, 0) != 0)
			log_err("health: out of memory: the previous "
			    "definition of %s is retired later", c->svc_id);
	}
	name_after = name_passing(hl, c->svc_name);
	if (name_before > 0 && name_after == 0)
		log_err("health: no local instance of %s passes its checks: "
		    "connections to %s are refused until one does (%s)",
		    c->svc_name, c->svc_name, o);
	if (eff_status(hl, c->svc_id, &eo) != before)
		health_changed(hl);
}

/* A check run's result: the status changes only after need_pass
 * consecutive passes / need_fail consecutive failures (Consul's
 * success_before_passing / failures_before_critical); a failure short of
 * its threshold keeps the status and says so in the output. */
void
health_check_result(struct hcheck *c, enum catalog_status st,
    const char *fmt, ...)
{
	char out[CATALOG_OUTPUT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	if (st == CATALOG_PASSING) {
		c->failures = 0;
		c->successes++;
		c->passed_once = 1;
		if (c->status == CATALOG_PASSING ||
		    c->successes >= c->need_pass) {
			health_check_set(c, st, out);
			return;
		}
		log_info("health: %s check %s passed (%d of %d successes "
		    "before passing)", c->svc_name, c->id, c->successes,
		    c->need_pass);
		snprintf(c->output, sizeof(c->output), "%.200s (%d of %d "
		    "successes before passing)", out, c->successes,
		    c->need_pass);
		return;
	}
	c->successes = 0;
	c->failures++;
	if (c->status != CATALOG_PASSING || c->failures >= c->need_fail) {
		health_check_set(c, st, out);
		return;
	}
	log_info("health: %s check %s failed (%d of %d failures before "
	    "%s): %s", c->svc_name, c->id, c->failures, c->need_fail,
	    catalog_status_name(st), out);
	snprintf(c->output, sizeof(c->output), "%.200s (%d of %d failures "
	    "before %s)", out, c->failures, c->need_fail,
	    catalog_status_name(st));
}

/* What the catalog and the API read --------------------------------------- */

enum catalog_status
health_status(const struct health *hl, const struct conf_service *s,
    const char **output)
{
	return eff_status(hl, s->id, output);
}

/* Is s the copy of a previous definition (the catalog dials it)? */
static int
is_prev_def(const struct health *hl, const struct conf_service *s)
{
	for (size_t i = 0; i < hl->nsv; i++)
		if (&hl->sv[i]->def == s)
			return hl->sv[i]->prev;
	return 0;
}

static json_t *
check_json(const struct health *hl, const struct hcheck *c)
{
	char name[CONF_NAME_MAX + 32], iv[32] = "", to[32] = "";

	snprintf(name, sizeof(name), "Service '%s' check", c->svc_name);
	if (c->def.type != CONF_CHECK_TTL) {
		snprintf(iv, sizeof(iv), "%ldms", c->interval_ms);
		snprintf(to, sizeof(to), "%ldms", c->timeout_ms);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[], "
	    "s:s, s:s, s:s}", "Node", hl->env.conf->node, "CheckID", c->id,
	    "Name", name, "Status", catalog_status_name(c->status),
	    "Notes", "", "Output", c->output, "ServiceID", c->svc_id,
	    "ServiceName", c->svc_name, "ServiceTags",
	    "Type", type_names[c->def.type], "Interval", iv, "Timeout", to);
}

static json_t *
ops_checks(void *arg, const struct conf_service *s)
{
	const struct health *hl = arg;
	json_t *a = json_array();

	int prev = is_prev_def(hl, s);

	for (size_t i = 0; a != NULL && i < hl->n; i++)
		if (hl->v[i]->prev == prev &&
		    strcmp(hl->v[i]->svc_id, s->id) == 0)
			json_array_append_new(a, check_json(hl, hl->v[i]));
	return a;
}

static enum catalog_status
ops_status(void *arg, const struct conf_service *s, const char **output)
{
	const struct health *hl = arg;

	return health_svc_status(hl, s->id, is_prev_def(hl, s), output);
}

static uint64_t
ops_generation(void *arg)
{
	const struct health *hl = arg;

	return hl->gen;
}

static const struct conf_service *
ops_previous(void *arg, const struct conf_service *s, const char **output)
{
	const struct hsvc *p = health_serving_prev(arg, s->id, output);

	return p != NULL ? &p->def : NULL;
}

struct catalog_health_ops
health_catalog_ops(struct health *hl)
{
	struct catalog_health_ops ops = { .status = ops_status,
		.previous = ops_previous, .checks_json = ops_checks,
		.generation = ops_generation, .arg = hl };

	return ops;
}

json_t *
health_agent_checks_json(const struct health *hl)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < hl->n; i++)
		if (!hl->v[i]->prev)
			json_object_set_new(o, hl->v[i]->id,
			    check_json(hl, hl->v[i]));
	return o;
}
