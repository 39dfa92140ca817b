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
#define INTENT_META_KEY_MAX 128 /* bytes per Meta key (as Consul) */
#define INTENT_META_VAL_MAX 512 /* bytes per Meta value (as Consul) */
#define INTENT_STR_MAX   160    /* intent_string() buffer: "a => b (deny)" */

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
	INTENT_EUNKNOWN,     /* the store did not confirm: it may have been
	                        applied there, nothing changed here (504) */
	INTENT_EPENDING,     /* the store is writing it: nothing changed
	                        yet, the outcome comes to intent_db_wait() */
};

/* Open the store at path (a JSON file {"Index": n, "Intentions": [...]},
 * created on first save), or memory only when path is NULL. A missing file
 * is an empty store; a corrupt one is an error (err names the file) and is
 * left untouched. */
int intent_db_open(struct intent_db **out, const char *path, char *err,
    size_t errlen);
void intent_db_free(struct intent_db *db);
/* Lower the cap on the number of intentions (tests); max <= INTENT_MAX. */
void intent_db_set_max(struct intent_db *db, size_t max);

/* 1 if s is a valid intention name: a service name (conf_valid_name) or
 * "*". */
int intent_valid_name(const char *s);
/* 1 if s has the syntax of an intention ID (a UUID, 36 chars, hex). */
int intent_valid_id(const char *s);

/* Precedence of a (src, dst) pattern pair: 9, 8, 6 or 5. */
int intent_precedence(const char *src, const char *dst);

/* Decide src -> dst. Returns 1 allowed, 0 denied. *match (match may be
 * NULL) is the deciding intention or NULL when the default decided. No
 * allocation: at most four hash lookups. */
int intent_check(const struct intent_db *db, const char *src,
    const char *dst, int default_allow, const struct intent **match);
/* Of two matching intentions (either may be NULL), the one that decides:
 * higher precedence, deny on a tie. For callers merging sources. */
const struct intent *intent_decide(const struct intent *a,
    const struct intent *b);
/* "web => socat (deny)" into buf (INTENT_STR_MAX is always enough). */
void intent_string(const struct intent *in, char *buf, size_t len);

/* Parse/validate a Consul intention object (SourceName, DestinationName,
 * Action, Description, Meta; SourceNS/DestinationNS must be absent, "" or
 * "default", SourceType absent, "" or "consul"; other fields ignored).
 * 0/-1 with why naming the field. On success out->meta is a new reference
 * (or NULL) that the caller releases with intent_clear(). */
int intent_from_json(const json_t *j, struct intent *out, char *why,
    size_t whylen);
/* Release what intent_from_json allocated in in (meta). */
void intent_clear(struct intent *in);
/* Full Consul JSON of an intention (new reference). */
json_t *intent_to_json(const struct intent *in);

/* Create (or with replace, update the existing same pair in place: same
 * ID, ModifyIndex bumped). in is validated and copied (only its names,
 * action, description and meta are used). The new or updated ID is copied
 * to id_out (37 bytes; may be NULL). Each change is saved to the file
 * before it is applied: if saving fails nothing changes (INTENT_EIO).
 * Pointers from intent_get/at/find/match/check stay valid until the next
 * successful change. */
int intent_create(struct intent_db *db, const struct intent *in, int replace,
    char *id_out, enum intent_err *code, char *why, size_t whylen);
/* Update by ID (PUT /v1/connect/intentions/:id); a new pair that another
 * intention already has is INTENT_EEXIST. */
int intent_update(struct intent_db *db, const char *id,
    const struct intent *in, enum intent_err *code, char *why,
    size_t whylen);
int intent_delete(struct intent_db *db, const char *id,
    enum intent_err *code, char *why, size_t whylen);

const struct intent *intent_get(const struct intent_db *db, const char *id);
const struct intent *intent_find_exact(const struct intent_db *db,
    const char *src, const char *dst);
size_t intent_count(const struct intent_db *db);
/* i-th intention in list order: precedence high to low, then source and
 * destination names. NULL when i >= intent_count(). */
const struct intent *intent_at(const struct intent_db *db, size_t i);

/* Intentions that match name as source (by_source) or destination, in
 * evaluation order (precedence high to low, then deny first, then names).
 * Fills out (up to max) and returns the number found, which may exceed
 * max (only the first max are stored). */
size_t intent_match(const struct intent_db *db, int by_source,
    const char *name, const struct intent **out, size_t max);

/* Cluster store: with a saver, every change is first given to fn as the
 * whole new document ({"Index": n, "Intentions": [...]}, the file's form);
 * fn returns 0 when the store took it, or -1 with why (e.g. another node
 * changed the intentions first), and then nothing changes (INTENT_EIO).
 * The file, if any, becomes a local copy, written after the store. */
typedef int (*intent_save_fn)(void *arg, const char *doc, char *why,
    size_t whylen);
/* What a saver returns when the store was asked but did not answer: the
 * change may be applied there (INTENT_EUNKNOWN). */
#define INTENT_SAVE_UNKNOWN (-2)
/* What an asynchronous saver returns when it took the document and will
 * answer later with intent_db_saved() (INTENT_EPENDING). Until then
 * every other change is refused (intent_db_busy() says so first). */
#define INTENT_SAVE_PENDING (-3)
void intent_db_set_saver(struct intent_db *db, intent_save_fn fn, void *arg);
/* 1 while a change is being written by an asynchronous saver. */
int intent_db_busy(const struct intent_db *db);
/* Call fn(cookie, rc, code, why) once, when the change being written
 * settles: rc 0 applied, else -1 with code (INTENT_EIO not applied,
 * INTENT_EUNKNOWN may be applied) and why. 0 registered; -1 (fn never
 * called) when none is being written, or out of memory. */
typedef void (*intent_wait_fn)(void *cookie, int rc, enum intent_err code,
    const char *why);
int intent_db_wait(struct intent_db *db, intent_wait_fn fn, void *cookie);
/* The asynchronous saver's answer: 0 (it already put the document in with
 * intent_db_replace), -1 with why (not applied) or INTENT_SAVE_UNKNOWN
 * with why. Calls the waiters. */
void intent_db_saved(struct intent_db *db, int rc, const char *why);
/* Replace every intention with those of doc (the document form above, len
 * bytes, from the cluster store; origin names it in errors) and write the
 * local copy. 0, or -1 with err and the db unchanged. Invalidates pointers
 * from intent_get and friends. */
int intent_db_replace(struct intent_db *db, const char *doc, size_t len,
    const char *origin, char *err, size_t errlen);
/* The current state as a document (malloc'd), or NULL. */
char *intent_db_dump(const struct intent_db *db);

/* Counter bumped by every change (like Consul's index). */
uint64_t intent_db_index(const struct intent_db *db);

#endif
