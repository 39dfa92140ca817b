/* intent: intentions, Consul's model, and their embedded store.
 *
 * Precedence: exact/exact 9, "*"/exact 8, exact/"*" 6, "*"/"*" 5. The
 * matching intention with the highest precedence decides; deny wins a tie
 * (a pair is unique, so ties cannot happen between stored intentions, but
 * the rule is kept for callers merging sources). No match: the default.
 * Each (source, destination) pair is unique. Names are service names
 * (conf_valid_name) or "*". At most INTENT_MAX intentions. */
#ifndef MESH_INTENT_H
#define MESH_INTENT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define INTENT_MAX       10000
#define INTENT_DESC_MAX  512
#define INTENT_META_MAX  64     /* keys per intention */

struct intent {
	char id[37];
	char src[64];
	char dst[64];
	int allow;                  /* 1 allow, 0 deny */
	char description[INTENT_DESC_MAX];
	json_t *meta;               /* object of string values; may be NULL */
	int precedence;
	int64_t created_at;         /* unix seconds */
	int64_t updated_at;
	uint64_t create_index;
	uint64_t modify_index;
};

struct intent_db;

/* Errors: intent_* functions returning -1 set one of these in *code. */
enum intent_err {
	INTENT_EINVAL = 1,   /* bad input (400) */
	INTENT_ENOENT,       /* unknown ID / pair (404) */
	INTENT_EEXIST,       /* duplicate pair without replace (409) */
	INTENT_ENOSPC,       /* INTENT_MAX reached (400/507) */
	INTENT_EIO,          /* could not persist; nothing changed (500) */
};

/* Open the store at path (a JSON file, created on first save), or memory
 * only when path is NULL. A corrupt file is an error (err names it). */
int intent_db_open(struct intent_db **out, const char *path, char *err,
    size_t errlen);
void intent_db_free(struct intent_db *db);

/* Precedence of a (src, dst) pattern pair: 9, 8, 6 or 5. */
int intent_precedence(const char *src, const char *dst);

/* Decide src -> dst. Returns 1 allowed, 0 denied. *match is the deciding
 * intention or NULL when the default decided. */
int intent_check(const struct intent_db *db, const char *src,
    const char *dst, int default_allow, const struct intent **match);

/* Parse/validate a Consul intention object (SourceName, DestinationName,
 * Action, Description, Meta; other fields ignored). 0/-1 with why. */
int intent_from_json(const json_t *j, struct intent *out, char *why,
    size_t whylen);
/* Full Consul JSON of an intention (new reference). */
json_t *intent_to_json(const struct intent *in);

/* Create (or with replace, update the existing same pair). The new or
 * updated ID is copied to id_out (37 bytes). Persists before returning. */
int intent_create(struct intent_db *db, const struct intent *in, int replace,
    char *id_out, enum intent_err *code, char *why, size_t whylen);
/* Update by ID (PUT /v1/connect/intentions/:id). */
int intent_update(struct intent_db *db, const char *id,
    const struct intent *in, enum intent_err *code, char *why,
    size_t whylen);
int intent_delete(struct intent_db *db, const char *id,
    enum intent_err *code, char *why, size_t whylen);

const struct intent *intent_get(const struct intent_db *db, const char *id);
const struct intent *intent_find_exact(const struct intent_db *db,
    const char *src, const char *dst);
size_t intent_count(const struct intent_db *db);
const struct intent *intent_at(const struct intent_db *db, size_t i);

/* Intentions that match name as source (by_source) or destination, in
 * evaluation order (precedence high to low, then deny first, then names).
 * Fills out (up to max) and returns the number found. */
size_t intent_match(const struct intent_db *db, int by_source,
    const char *name, const struct intent **out, size_t max);

/* Counter bumped by every change (like Consul's index). */
uint64_t intent_db_index(const struct intent_db *db);

#endif
