/* policy: what the relay workers need of the node's state, as one
 * immutable, reference-counted snapshot (snap.h): the intentions and the
 * default, the instances of each service to dial, the local services a
 * handshake may serve, the current leaf of each service, the trusted roots
 * and the trust domain.
 *
 * The main thread (the writer) builds a new snapshot after a change and
 * publishes it; workers read the current one without a lock. A snapshot is
 * made of three parts, each counted on its own, so that a change of the
 * catalog does not copy the intentions: a new snapshot shares the parts
 * that did not change with the previous one. */
#ifndef MESH_POLICY_H
#define MESH_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <gnutls/x509.h>

#include "conf/conf.h"
#include "helperd/evloop/snap.h"

struct intent_db;
struct catalog;
struct ca;
struct ca_leaf;

#define POLICY_INST_MAX 16      /* instances dialled from, per connection */

struct policy_part;             /* intentions, dial table or identity */
struct policy;

/* An intention as the check needs it. */
struct policy_intent {
	char id[37];
	char src[CONF_NAME_MAX];
	char dst[CONF_NAME_MAX];
	int allow;
};

/* An instance to dial, copied out of the catalog. */
struct policy_inst {
	char node[CONF_NAME_MAX];
	char address[CONF_ADDR_MAX];    /* its node's mesh address */
	int mesh_port;
	char id[CONF_NAME_MAX];         /* the instance (service) ID */
	char svc_address[CONF_ADDR_MAX]; /* where its node dials it */
	int svc_port;
	int local;
};

/* Parts, built by the writer (NULL: out of memory). */
struct policy_part *policy_intents_build(const struct intent_db *db);
/* Every service name the catalog knows, with its passing instances (all
 * of them) and all its instances (the first POLICY_INST_MAX), in
 * catalog_instances order, and whether a local connect service with a port serves it. */
struct policy_part *policy_dial_build(const struct catalog *c);
/* The trust domain and roots of ca (a copy: ca may change after) and the
 * current leaves (a reference to each), n of them. gen: changes whenever
 * the trust or the leaves do (the TLS verify cache is keyed on it). */
struct policy_part *policy_ident_build(const struct ca *ca,
    const char *const *services, struct ca_leaf *const *leaves, size_t n,
    uint64_t gen);
/* Another reference to a part / drop one (NULL: no-op). */
struct policy_part *policy_part_ref(struct policy_part *pt);
void policy_part_put(struct policy_part *pt);

/* A snapshot of generation gen from one reference to each part (taken
 * over, also on failure; NULL parts: empty). NULL: out of memory. */
struct policy *policy_new(uint64_t gen, int default_allow,
    struct policy_part *intents, struct policy_part *dial,
    struct policy_part *ident);
void policy_put(const struct policy *p);

/* Queries; p may be NULL (nothing known: the default is deny). */
uint64_t policy_gen(const struct policy *p);
/* src -> dst: 1 allowed, 0 denied; *m: the deciding intention or NULL
 * (the default decided). Consul's order: exact/exact, * / exact,
 * exact / *, * / *; intent_check's answers exactly. */
int policy_check(const struct policy *p, const char *src, const char *dst,
    const struct policy_intent **m);
/* The same, with why it is denied ("denied by intention ..." or "denied
 * by default_intention = deny"). */
int policy_allows(const struct policy *p, const char *src, const char *dst,
    char *why, size_t whylen);
/* The instances of name (passing ones, or all), *out into p. */
size_t policy_instances(const struct policy *p, const char *name, int all,
    const struct policy_inst **out);
/* 1 if a local connect-enabled service with a port is name (the mesh
 * port may serve it), else 0. */
int policy_local_served(const struct policy *p, const char *name);
/* The current leaf of service (borrowed: valid while p is), or NULL. */
struct ca_leaf *policy_leaf(const struct policy *p, const char *service);
const char *policy_trust_domain(const struct policy *p);
gnutls_x509_trust_list_t policy_trust(const struct policy *p);
uint64_t policy_trust_gen(const struct policy *p);

/* The published cell. The writer is the thread that called
 * policy_cell_init; refresh(arg), on the writer, publishes a new snapshot
 * if anything changed (policy_sync calls it before work is handed to a
 * reader, so that the reader sees what the writer did before). */
struct policy_cell {
	struct snap snap;
	void (*refresh)(void *arg);
	void *arg;
};

void policy_cell_init(struct policy_cell *pc, void (*refresh)(void *),
    void *arg);
/* Writer: make p (taken over) current. */
void policy_publish(struct policy_cell *pc, struct policy *p);
/* Writer: publish now what changed (refresh). */
void policy_sync(struct policy_cell *pc);
/* Writer: the current snapshot, borrowed. */
const struct policy *policy_current(struct policy_cell *pc);
/* Writer: drop the current snapshot (readers stopped). */
void policy_cell_fini(struct policy_cell *pc);
/* Reader slot slot (one thread each): a new reference, or NULL. */
const struct policy *policy_get(struct policy_cell *pc, unsigned slot);
/* Changes when a new snapshot is published. */
uint64_t policy_cell_gen(const struct policy_cell *pc);

#endif
