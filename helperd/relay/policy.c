/* policy: the workers' immutable snapshot of the node (policy.h). */
#include "helperd/relay/policy.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/model/intent.h"

enum part_kind { PART_INTENTS, PART_DIAL, PART_IDENT };

/* One service of the dial table: its lists in the instance array. */
struct dial_svc {
	char name[CONF_NAME_MAX];
	int local_served;
	size_t pass, n_pass;            /* passing instances */
	size_t all, n_all;              /* every instance */
};

struct ident_leaf {
	char service[CONF_NAME_MAX];
	struct ca_leaf *leaf;           /* one reference */
};

struct policy_part {
	struct snap_obj obj;            /* first */
	enum part_kind kind;
	union {
		struct {                /* sorted by (src, dst) */
			struct policy_intent *v;
			size_t n;
		} in;
		struct {                /* sorted by name */
			struct dial_svc *svc;
			size_t n_svc;
			struct policy_inst *inst;
			size_t n_inst;
		} dial;
		struct {                /* leaves sorted by service */
			char td[128];
			gnutls_x509_trust_list_t tl;
			uint64_t gen;
			struct ident_leaf *leaves;
			size_t n;
		} id;
	} u;
};

struct policy {
	struct snap_obj obj;            /* first */
	uint64_t gen;
	int default_allow;
	struct policy_part *intents, *dial, *ident;
};

/* Parts ---------------------------------------------------------------- */

static void
part_free(struct snap_obj *o)
{
	struct policy_part *pt = (struct policy_part *)o;

	switch (pt->kind) {
	case PART_INTENTS:
		free(pt->u.in.v);
		break;
	case PART_DIAL:
		free(pt->u.dial.svc);
		free(pt->u.dial.inst);
		break;
	case PART_IDENT:
		for (size_t i = 0; i < pt->u.id.n; i++)
			ca_leaf_unref(pt->u.id.leaves[i].leaf);
		free(pt->u.id.leaves);
		if (pt->u.id.tl != NULL)
			gnutls_x509_trust_list_deinit(pt->u.id.tl, 1);
		break;
	}
	free(pt);
}

static struct policy_part *
part_new(enum part_kind kind)
{
	struct policy_part *pt = calloc(1, sizeof(*pt));

	if (pt == NULL)
		return NULL;
	snap_obj_init(&pt->obj, part_free);
	pt->kind = kind;
	return pt;
}

struct policy_part *
policy_part_ref(struct policy_part *pt)
{
	return pt != NULL ? (struct policy_part *)snap_obj_ref(&pt->obj) :
	    NULL;
}

void
policy_part_put(struct policy_part *pt)
{
	if (pt != NULL)
		snap_put(&pt->obj);
}

static int
intent_cmp(const void *a, const void *b)
{
	const struct policy_intent *x = a, *y = b;
	int c = strcmp(x->src, y->src);

	return c != 0 ? c : strcmp(x->dst, y->dst);
}

struct policy_part *
policy_intents_build(const struct intent_db *db)
{
	struct policy_part *pt = part_new(PART_INTENTS);
	size_t n = intent_count(db);

	if (pt == NULL)
		return NULL;
	if (n > 0 && (pt->u.in.v = calloc(n, sizeof(*pt->u.in.v))) == NULL) {
		free(pt);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct intent *in = intent_at(db, i);
		struct policy_intent *e = &pt->u.in.v[pt->u.in.n];

		if (in == NULL)
			break;
		util_strlcpy(e->id, in->id, sizeof(e->id));
		util_strlcpy(e->src, in->src, sizeof(e->src));
		util_strlcpy(e->dst, in->dst, sizeof(e->dst));
		e->allow = in->allow;
		pt->u.in.n++;
	}
	if (pt->u.in.n > 1)
		qsort(pt->u.in.v, pt->u.in.n, sizeof(*pt->u.in.v),
		    intent_cmp);
	return pt;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
inst_copy(struct policy_inst *d, const struct catalog_instance *s)
{
	util_strlcpy(d->node, s->node, sizeof(d->node));
	util_strlcpy(d->address, s->address, sizeof(d->address));
	d->mesh_port = s->mesh_port;
	util_strlcpy(d->id, s->svc->id, sizeof(d->id));
	util_strlcpy(d->svc_address, s->svc->address, sizeof(d->svc_address));
	d->svc_port = s->svc->port;
	d->local = s->local;
}

/* The distinct service names of c, sorted (pointers into c). */
static const char **
dial_names(const struct catalog *c, size_t *out)
{
	size_t nl = catalog_local_count(c), nr = catalog_remote_count(c);
	size_t n = 0, k = 0;
	const char **v = calloc(nl + nr + 1, sizeof(*v));

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < nl; i++)
		v[n++] = catalog_local_at(c, i)->name;
	for (size_t i = 0; i < nr; i++)
		v[n++] = catalog_remote_name_at(c, i);
	if (n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
			v[k++] = v[i];
	*out = k;
	return v;
}

struct policy_part *
policy_dial_build(const struct catalog *c)
{
	struct policy_part *pt = part_new(PART_DIAL);
	struct catalog_instance *in = NULL;
	const char **names = NULL;
	size_t nn = 0, cap, total = catalog_local_count(c) +
	    catalog_remote_count(c);

	/* Every passing instance (the relay spreads over all of them), and
	 * the first POLICY_INST_MAX of all. */
	if (pt == NULL || (names = dial_names(c, &nn)) == NULL ||
	    (in = calloc(total + POLICY_INST_MAX + 1, sizeof(*in))) == NULL)
		goto fail;
	cap = total + nn * POLICY_INST_MAX;
	pt->u.dial.svc = calloc(nn + 1, sizeof(*pt->u.dial.svc));
	pt->u.dial.inst = calloc(cap + 1, sizeof(*pt->u.dial.inst));
	if (pt->u.dial.svc == NULL || pt->u.dial.inst == NULL)
		goto fail;
	for (size_t i = 0; i < nn; i++) {
		struct dial_svc *s = &pt->u.dial.svc[i];
		const struct conf_service *loc = catalog_local(c, names[i]);
		size_t k;

		util_strlcpy(s->name, names[i], sizeof(s->name));
		s->local_served = loc != NULL && loc->connect && loc->port > 0;
		k = catalog_instances(c, names[i], in, total);
		s->pass = pt->u.dial.n_inst;
		s->n_pass = k;
		for (size_t j = 0; j < k; j++)
			inst_copy(&pt->u.dial.inst[pt->u.dial.n_inst++], &in[j]);
		k = catalog_instances_all(c, names[i], in, POLICY_INST_MAX);
		s->all = pt->u.dial.n_inst;
		s->n_all = k;
		for (size_t j = 0; j < k; j++)
			inst_copy(&pt->u.dial.inst[pt->u.dial.n_inst++], &in[j]);
	}
	pt->u.dial.n_svc = nn;
	free(names);
	free(in);
	return pt;
fail:
	free(names);
	free(in);
	if (pt != NULL)
		part_free(&pt->obj);
	return NULL;
}

static int
leaf_cmp(const void *a, const void *b)
{
	const struct ident_leaf *x = a, *y = b;

	return strcmp(x->service, y->service);
}

struct policy_part *
policy_ident_build(const struct ca *ca, const char *const *services,
    struct ca_leaf *const *leaves, size_t n, uint64_t gen)
{
	struct policy_part *pt = part_new(PART_IDENT);

	if (pt == NULL)
		return NULL;
	pt->u.id.gen = gen;
	util_strlcpy(pt->u.id.td, ca_trust_domain(ca), sizeof(pt->u.id.td));
	if (ca_trust_copy(ca, &pt->u.id.tl) != 0 ||
	    (pt->u.id.leaves = calloc(n + 1, sizeof(*pt->u.id.leaves))) ==
	    NULL) {
		part_free(&pt->obj);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct ident_leaf *l = &pt->u.id.leaves[pt->u.id.n];

		if (leaves[i] == NULL)
			continue;
		util_strlcpy(l->service, services[i], sizeof(l->service));
		l->leaf = ca_leaf_ref(leaves[i]);
		pt->u.id.n++;
	}
	if (pt->u.id.n > 1)
		qsort(pt->u.id.leaves, pt->u.id.n, sizeof(*pt->u.id.leaves),
		    leaf_cmp);
	return pt;
}

/* Snapshots -------------------------------------------------------------- */

static void
policy_free(struct snap_obj *o)
{
	struct policy *p = (struct policy *)o;

	policy_part_put(p->intents);
	policy_part_put(p->dial);
	policy_part_put(p->ident);
	free(p);
}

struct policy *
policy_new(uint64_t gen, int default_allow, struct policy_part *intents,
    struct policy_part *dial, struct policy_part *ident)
{
	struct policy *p = calloc(1, sizeof(*p));

	assert(intents == NULL || intents->kind == PART_INTENTS);
	assert(dial == NULL || dial->kind == PART_DIAL);
	assert(ident == NULL || ident->kind == PART_IDENT);
	if (p == NULL) {
		policy_part_put(intents);
		policy_part_put(dial);
		policy_part_put(ident);
		return NULL;
	}
	snap_obj_init(&p->obj, policy_free);
	p->gen = gen;
	p->default_allow = default_allow ? 1 : 0;
	p->intents = intents;
	p->dial = dial;
	p->ident = ident;
	return p;
}

void
policy_put(const struct policy *p)
{
	if (p != NULL)
		snap_put((struct snap_obj *)&p->obj);
}

uint64_t
policy_gen(const struct policy *p)
{
	return p != NULL ? p->gen : 0;
}

static const struct policy_intent *
intent_find(const struct policy_part *pt, const char *src, const char *dst)
{
	struct policy_intent key;

	if (pt == NULL || pt->u.in.n == 0 ||
	    strlen(src) >= sizeof(key.src) || strlen(dst) >= sizeof(key.dst))
		return NULL;
	memcpy(key.src, src, strlen(src) + 1);
	memcpy(key.dst, dst, strlen(dst) + 1);
	return bsearch(&key, pt->u.in.v, pt->u.in.n, sizeof(key), intent_cmp);
}

int
policy_check(const struct policy *p, const char *src, const char *dst,
    const struct policy_intent **match)
{
	const struct policy_intent *m = NULL;
	const struct policy_part *pt = p != NULL ? p->intents : NULL;

	if (src != NULL && dst != NULL &&
	    (m = intent_find(pt, src, dst)) == NULL &&
	    (m = intent_find(pt, "*", dst)) == NULL &&
	    (m = intent_find(pt, src, "*")) == NULL)
		m = intent_find(pt, "*", "*");
	if (match != NULL)
		*match = m;
	if (m != NULL)
		return m->allow;
	return p != NULL && p->default_allow;
}

int
policy_allows(const struct policy *p, const char *src, const char *dst,
    char *why, size_t whylen)
{
	const struct policy_intent *m = NULL;

	if (policy_check(p, src, dst, &m))
		return 1;
	if (m != NULL)
		snprintf(why, whylen, "denied by intention %s (%s => %s, deny)",
		    m->id, m->src, m->dst);
	else
		snprintf(why, whylen, "denied by default_intention = deny");
	return 0;
}

static const struct dial_svc *
dial_find(const struct policy *p, const char *name)
{
	const struct policy_part *pt = p != NULL ? p->dial : NULL;
	size_t lo = 0, hi;

	if (pt == NULL)
		return NULL;
	hi = pt->u.dial.n_svc;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, pt->u.dial.svc[mid].name);

		if (c == 0)
			return &pt->u.dial.svc[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t
policy_instances(const struct policy *p, const char *name, int all,
    const struct policy_inst **out)
{
	const struct dial_svc *s = dial_find(p, name);

	*out = NULL;
	if (s == NULL)
		return 0;
	*out = &p->dial->u.dial.inst[all ? s->all : s->pass];
	return all ? s->n_all : s->n_pass;
}

int
policy_local_served(const struct policy *p, const char *name)
{
	const struct dial_svc *s = dial_find(p, name);

	return s != NULL && s->local_served;
}

struct ca_leaf *
policy_leaf(const struct policy *p, const char *service)
{
	const struct policy_part *pt = p != NULL ? p->ident : NULL;
	struct ident_leaf key, *l;

	if (pt == NULL || strlen(service) >= sizeof(key.service))
		return NULL;
	memcpy(key.service, service, strlen(service) + 1);
	l = bsearch(&key, pt->u.id.leaves, pt->u.id.n, sizeof(key), leaf_cmp);
	return l != NULL ? l->leaf : NULL;
}

const char *
policy_trust_domain(const struct policy *p)
{
	return p != NULL && p->ident != NULL ? p->ident->u.id.td : "";
}

gnutls_x509_trust_list_t
policy_trust(const struct policy *p)
{
	return p != NULL && p->ident != NULL ? p->ident->u.id.tl : NULL;
}

uint64_t
policy_trust_gen(const struct policy *p)
{
	return p != NULL && p->ident != NULL ? p->ident->u.id.gen : 0;
}

/* The cell -------------------------------------------------------------- */

void
policy_cell_init(struct policy_cell *pc, void (*refresh)(void *), void *arg)
{
	snap_init(&pc->snap);
	pc->refresh = refresh;
	pc->arg = arg;
}

void
policy_publish(struct policy_cell *pc, struct policy *p)
{
	snap_publish(&pc->snap, p != NULL ? &p->obj : NULL);
}

void
policy_sync(struct policy_cell *pc)
{
	if (pc != NULL && pc->refresh != NULL)
		pc->refresh(pc->arg);
}

const struct policy *
policy_current(struct policy_cell *pc)
{
	return (const struct policy *)snap_peek(&pc->snap);
}

void
policy_cell_fini(struct policy_cell *pc)
{
	snap_fini(&pc->snap);
}

const struct policy *
policy_get(struct policy_cell *pc, unsigned slot)
{
	return (const struct policy *)snap_get(&pc->snap, slot);
}

uint64_t
policy_cell_gen(const struct policy_cell *pc)
{
	return snap_gen(&pc->snap);
}
