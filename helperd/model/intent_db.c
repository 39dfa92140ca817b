/* intent_db: the embedded store of intentions.
 *
 * The store is an array of pointers kept in list order plus an
 * open-addressing hash of (source, destination) for intent_check. A change
 * builds the new array and hash aside, saves them, and only then swaps them
 * in, so a failed save leaves everything as it was. */
#include "helperd/model/intent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/model/intent_int.h"

/* The file holds at most INTENT_MAX intentions; with maximal Meta that is
 * large, so the read cap is generous. */
#define INTENT_FILE_MAX ((size_t)1 << 30)

struct intent_db {
	char *path;                 /* NULL: memory only */
	struct intent **v;          /* list order */
	size_t n;
	struct intent **ht;         /* hash of (src, dst), power-of-2 size */
	size_t htcap;
	size_t max;
	uint64_t index;
	intent_save_fn saver;       /* cluster store; NULL: the file */
	void *saver_arg;
	int pending;                /* the saver is writing a change */
	struct intent_waiter {
		intent_wait_fn fn;
		void *cookie;
	} *waiters;                 /* told when it settles */
	size_t n_waiters;
};

/* ---- the store ---- */

static void
intent_free_one(struct intent *in)
{
	if (in == NULL)
		return;
	intent_clear(in);
	free(in);
}

/* A heap copy of in with its own meta (an empty object becomes NULL). */
static struct intent *
intent_dup(const struct intent *in)
{
	struct intent *c = malloc(sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *in;
	c->meta = NULL;
	if (in->meta != NULL && json_object_size(in->meta) > 0 &&
	    (c->meta = json_deep_copy(in->meta)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static char *
serialize(struct intent *const *v, size_t n, uint64_t index)
{
	json_t *root, *arr;
	char *s;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (json_array_append_new(arr, intent_to_json(v[i])) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	root = json_pack("{s:I, s:o}", "Index", (json_int_t)index,
	    "Intentions", arr);
	if (root == NULL)
		return NULL;
	s = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	return s;
}

/* Where c goes in the list-ordered v[0..n). */
static size_t
insert_pos(struct intent *const *v, size_t n, const struct intent *c)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (intent_list_cmp(&v[mid], &c) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Put c into the list-ordered nv[0..n) (room for n + 1). */
static void
insert_sorted(struct intent **nv, size_t n, struct intent *c)
{
	size_t pos = insert_pos(nv, n, c);

	memmove(nv + pos + 1, nv + pos, (n - pos) * sizeof(*nv));
	nv[pos] = c;
}

/* Save nv (in list order), then make it the state. nv is taken over on
 * success (the old array is freed, and old, when not NULL, with it); on
 * failure nothing changes and the caller still owns nv. */
static int
commit(struct intent_db *db, struct intent **nv, size_t nn, uint64_t nindex,
    struct intent *old, enum intent_err *code, char *why, size_t whylen)
{
	struct intent **ht;
	size_t htcap;

	if ((ht = intent_ht_build(nv, nn, &htcap)) == NULL) {
		intent_set_why(why, whylen, "out of memory");
		return intent_fail(code, INTENT_EIO);
	}
	if (db->saver != NULL && db->pending) {
		free(ht);
		intent_set_why(why, whylen, "an earlier intention change is "
		    "still being written to the store; try again");
		return intent_fail(code, INTENT_EIO);
	}
	if (db->saver != NULL) {
		char *s = serialize(nv, nn, nindex);

		int rc = s != NULL ? db->saver(db->saver_arg, s, why,
		    whylen) : -1;

		if (rc == INTENT_SAVE_PENDING) {
			/* Applied when the store says so (intent_db_saved). */
			db->pending = 1;
			free(s);
			free(ht);
			intent_set_why(why, whylen, "being written to the "
			    "store");
			return intent_fail(code, INTENT_EPENDING);
		}
		if (rc != 0) {
			if (s == NULL)
				intent_set_why(why, whylen, "could not save "
				    "intentions: out of memory");
			free(s);
			free(ht);
			return intent_fail(code, rc == INTENT_SAVE_UNKNOWN ?
			    INTENT_EUNKNOWN : INTENT_EIO);
		}
		/* The store has it; the file is only the local copy. */
		if (db->path != NULL &&
		    util_write_atomic(db->path, s, strlen(s), 0600) != 0)
			log_err("intentions: cannot write the local copy %s: "
			    "%s", db->path, strerror(errno));
		free(s);
	} else if (db->path != NULL) {
		char *s = serialize(nv, nn, nindex);

		if (s == NULL) {
			free(ht);
			intent_set_why(why, whylen, "could not save intentions: out "
			    "of memory");
			return intent_fail(code, INTENT_EIO);
		}
		if (util_write_atomic(db->path, s, strlen(s), 0600) != 0) {
			int e = errno;

			log_err("intentions: cannot write %s: %s", db->path,
			    strerror(e));
			intent_set_why(why, whylen, "could not save intentions to %s: "
			    "%s", db->path, strerror(e));
			free(s);
			free(ht);
			return intent_fail(code, INTENT_EIO);
		}
		free(s);
	}
	free(db->v);
	free(db->ht);
	db->v = nv;
	db->n = nn;
	db->ht = ht;
	db->htcap = htcap;
	db->index = nindex;
	intent_free_one(old);
	return 0;
}

/* A copy of the current array with room for one more (n + 1 >= 1). */
static struct intent **
copy_v(const struct intent_db *db)
{
	struct intent **nv = malloc((db->n + 1) * sizeof(*nv));

	if (nv != NULL && db->n > 0)
		memcpy(nv, db->v, db->n * sizeof(*nv));
	return nv;
}

static size_t
pos_of(const struct intent_db *db, const struct intent *in)
{
	size_t i;

	for (i = 0; i < db->n && db->v[i] != in; i++)
		;
	return i;
}

static const struct intent *
get_by_id(const struct intent_db *db, const char *id)
{
	for (size_t i = 0; i < db->n; i++)
		if (strcasecmp(db->v[i]->id, id) == 0)
			return db->v[i];
	return NULL;
}

/* Replace the intention cur with in's content (keeping its ID, creation
 * time and index). */
static int
replace_at(struct intent_db *db, const struct intent *cur,
    const struct intent *in, enum intent_err *code, char *why, size_t whylen)
{
	struct intent **nv;
	struct intent *c;
	size_t pos;

	if ((c = intent_dup(in)) == NULL || (nv = copy_v(db)) == NULL) {
		intent_free_one(c);
		intent_set_why(why, whylen, "out of memory");
		return intent_fail(code, INTENT_EIO);
	}
	if ((pos = pos_of(db, cur)) >= db->n) {     /* cur is not in db */
		free(nv);
		intent_free_one(c);
		intent_set_why(why, whylen, "intention not in the store");
		return intent_fail(code, INTENT_EIO);
	}
	memcpy(c->id, cur->id, sizeof(c->id));
	c->precedence = intent_precedence(c->src, c->dst);
	c->created_at = cur->created_at;
	c->create_index = cur->create_index;
	c->updated_at = (int64_t)time(NULL);
	c->modify_index = db->index + 1;
	memmove(nv + pos, nv + pos + 1, (db->n - pos - 1) * sizeof(*nv));
	insert_sorted(nv, db->n - 1, c);
	if (commit(db, nv, db->n, db->index + 1, (struct intent *)cur, code,
	    why, whylen) != 0) {
		free(nv);
		intent_free_one(c);
		return -1;
	}
	return 0;
}

int
intent_create(struct intent_db *db, const struct intent *in, int replace,
    char *id_out, enum intent_err *code, char *why, size_t whylen)
{
	const struct intent *cur;
	struct intent **nv;
	struct intent *c;

	if (intent_check_fields(in, why, whylen) != 0)
		return intent_fail(code, INTENT_EINVAL);
	cur = intent_ht_find(db->ht, db->htcap, in->src, in->dst);
	if (cur != NULL) {
		if (!replace) {
			intent_set_why(why, whylen, "duplicate intention found: %s => "
			    "%s (ID %s)", cur->src, cur->dst, cur->id);
			return intent_fail(code, INTENT_EEXIST);
		}
		char id[sizeof(cur->id)];

		memcpy(id, cur->id, sizeof(id));
		if (id_out != NULL)     /* a pending change has it too */
			memcpy(id_out, id, sizeof(id));
		return replace_at(db, cur, in, code, why, whylen);
	}
	if (db->n >= db->max) {
		intent_set_why(why, whylen, "too many intentions: the limit of %zu is "
		    "reached; delete some first", db->max);
		return intent_fail(code, INTENT_ENOSPC);
	}
	if ((c = intent_dup(in)) == NULL || (nv = copy_v(db)) == NULL) {
		intent_free_one(c);
		intent_set_why(why, whylen, "out of memory");
		return intent_fail(code, INTENT_EIO);
	}
	do {
		if (util_uuid4(c->id, sizeof(c->id)) != 0) {
			free(nv);
			intent_free_one(c);
			intent_set_why(why, whylen, "cannot generate an ID: %s",
			    strerror(errno));
			return intent_fail(code, INTENT_EIO);
		}
	} while (get_by_id(db, c->id) != NULL);
	c->precedence = intent_precedence(c->src, c->dst);
	c->created_at = c->updated_at = (int64_t)time(NULL);
	c->create_index = c->modify_index = db->index + 1;
	insert_sorted(nv, db->n, c);
	if (id_out != NULL)             /* a pending change has it too */
		memcpy(id_out, c->id, sizeof(c->id));
	if (commit(db, nv, db->n + 1, db->index + 1, NULL, code, why,
	    whylen) != 0) {
		free(nv);
		intent_free_one(c);
		return -1;
	}
	return 0;
}

int
intent_update(struct intent_db *db, const char *id, const struct intent *in,
    enum intent_err *code, char *why, size_t whylen)
{
	const struct intent *cur, *other;

	if (!intent_valid_id(id)) {
		intent_set_why(why, whylen, "invalid intention ID \"%.40s\"", id);
		return intent_fail(code, INTENT_EINVAL);
	}
	if (intent_check_fields(in, why, whylen) != 0)
		return intent_fail(code, INTENT_EINVAL);
	if ((cur = get_by_id(db, id)) == NULL) {
		intent_set_why(why, whylen, "intention not found: %s", id);
		return intent_fail(code, INTENT_ENOENT);
	}
	other = intent_ht_find(db->ht, db->htcap, in->src, in->dst);
	if (other != NULL && other != cur) {
		intent_set_why(why, whylen, "duplicate intention found: %s => %s "
		    "(ID %s)", other->src, other->dst, other->id);
		return intent_fail(code, INTENT_EEXIST);
	}
	return replace_at(db, cur, in, code, why, whylen);
}

int
intent_delete(struct intent_db *db, const char *id, enum intent_err *code,
    char *why, size_t whylen)
{
	const struct intent *cur;
	struct intent **nv;
	size_t pos;

	if (!intent_valid_id(id)) {
		intent_set_why(why, whylen, "invalid intention ID \"%.40s\"", id);
		return intent_fail(code, INTENT_EINVAL);
	}
	if ((cur = get_by_id(db, id)) == NULL) {
		intent_set_why(why, whylen, "intention not found: %s", id);
		return intent_fail(code, INTENT_ENOENT);
	}
	if ((nv = copy_v(db)) == NULL) {
		intent_set_why(why, whylen, "out of memory");
		return intent_fail(code, INTENT_EIO);
	}
	pos = pos_of(db, cur);
	memmove(nv + pos, nv + pos + 1, (db->n - pos - 1) * sizeof(*nv));
	if (commit(db, nv, db->n - 1, db->index + 1, (struct intent *)cur,
	    code, why, whylen) != 0) {
		free(nv);
		return -1;
	}
	return 0;
}

const struct intent *
intent_get(const struct intent_db *db, const char *id)
{
	if (db == NULL || !intent_valid_id(id))
		return NULL;
	return get_by_id(db, id);
}

const struct intent *
intent_find_exact(const struct intent_db *db, const char *src,
    const char *dst)
{
	if (db == NULL || src == NULL || dst == NULL)
		return NULL;
	return intent_ht_find(db->ht, db->htcap, src, dst);
}

size_t
intent_count(const struct intent_db *db)
{
	return db != NULL ? db->n : 0;
}

const struct intent *
intent_at(const struct intent_db *db, size_t i)
{
	return db != NULL && i < db->n ? db->v[i] : NULL;
}

uint64_t
intent_db_index(const struct intent_db *db)
{
	return db != NULL ? db->index : 0;
}

int
intent_check(const struct intent_db *db, const char *src, const char *dst,
    int default_allow, const struct intent **match)
{
	const struct intent *m = NULL;

	if (db != NULL && src != NULL && dst != NULL) {
		struct intent *const *ht = db->ht;
		size_t cap = db->htcap;

		if ((m = intent_ht_find(ht, cap, src, dst)) == NULL &&
		    (m = intent_ht_find(ht, cap, "*", dst)) == NULL &&
		    (m = intent_ht_find(ht, cap, src, "*")) == NULL)
			m = intent_ht_find(ht, cap, "*", "*");
	}
	if (match != NULL)
		*match = m;
	if (m != NULL)
		return m->allow;
	return default_allow ? 1 : 0;
}

static int
matches(const struct intent *in, int by_source, const char *name)
{
	const char *k = by_source ? in->src : in->dst;

	return strcmp(k, name) == 0 || strcmp(k, "*") == 0;
}

size_t
intent_match(const struct intent_db *db, int by_source, const char *name,
    const struct intent **out, size_t max)
{
	size_t found = 0, g = 0;

	if (db == NULL || name == NULL)
		return 0;
	/* The array is in precedence order; within each precedence group
	 * emit denies first, then allows, each in name order. */
	while (g < db->n) {
		size_t end = g;

		while (end < db->n &&
		    db->v[end]->precedence == db->v[g]->precedence)
			end++;
		for (int want = 0; want <= 1; want++) {
			for (size_t i = g; i < end; i++) {
				const struct intent *in = db->v[i];

				if (in->allow != want ||
				    !matches(in, by_source, name))
					continue;
				if (found < max)
					out[found] = in;
				found++;
			}
		}
		g = end;
	}
	return found;
}

/* ---- open / free ---- */

static int
parse_time(const json_t *v, int64_t *out)
{
	struct tm tm;
	const char *s, *end;

	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.') {
		end++;
		while (*end >= '0' && *end <= '9')
			end++;
	}
	if (strcmp(end, "Z") != 0)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static int
parse_index(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* One stored intention: the API checks plus what the server assigned. */
static int
load_one(const json_t *j, struct intent *out, char *why, size_t whylen)
{
	const char *id;

	if (intent_from_json(j, out, why, whylen) != 0)
		return -1;
	id = json_string_value(json_object_get(j, "ID"));
	if (id == NULL || !intent_valid_id(id)) {
		intent_set_why(why, whylen, "ID missing or not a UUID");
		goto err;
	}
	util_strlcpy(out->id, id, sizeof(out->id));
	if (parse_time(json_object_get(j, "CreatedAt"), &out->created_at) ||
	    parse_time(json_object_get(j, "UpdatedAt"), &out->updated_at)) {
		intent_set_why(why, whylen, "CreatedAt/UpdatedAt missing or not "
		    "RFC 3339");
		goto err;
	}
	if (parse_index(json_object_get(j, "CreateIndex"),
	    &out->create_index) != 0 ||
	    parse_index(json_object_get(j, "ModifyIndex"),
	    &out->modify_index) != 0) {
		intent_set_why(why, whylen, "CreateIndex/ModifyIndex missing or "
		    "negative");
		goto err;
	}
	return 0;
err:
	intent_clear(out);
	return -1;
}

static int
load(struct intent_db *db, const char *buf, size_t len, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *root, *arr, *e;
	char why[256];
	size_t i;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		intent_set_why(err, errlen, "%s: line %d column %d: %s", db->path,
		    je.line, je.column, je.text);
		return -1;
	}
	arr = json_object_get(root, "Intentions");
	if (!json_is_object(root) || !json_is_array(arr) ||
	    parse_index(json_object_get(root, "Index"), &db->index) != 0) {
		intent_set_why(err, errlen, "%s: not an intention store (expected "
		    "{\"Index\": n, \"Intentions\": [...]})", db->path);
		goto err;
	}
	if (json_array_size(arr) > INTENT_MAX) {
		intent_set_why(err, errlen, "%s: %zu intentions, more than the limit "
		    "of %d", db->path, json_array_size(arr), INTENT_MAX);
		goto err;
	}
	db->v = calloc(json_array_size(arr) + 1, sizeof(*db->v));
	if (db->v == NULL) {
		intent_set_why(err, errlen, "%s: out of memory", db->path);
		goto err;
	}
	json_array_foreach(arr, i, e) {
		struct intent in, *c;

		if (load_one(e, &in, why, sizeof(why)) != 0) {
			intent_set_why(err, errlen, "%s: intention #%zu: %s", db->path,
			    i + 1, why);
			goto err;
		}
		if ((c = malloc(sizeof(*c))) == NULL) {
			intent_clear(&in);
			intent_set_why(err, errlen, "%s: out of memory", db->path);
			goto err;
		}
		*c = in;
		db->v[db->n++] = c;
		if (c->modify_index > db->index)
			db->index = c->modify_index;
		for (size_t k = 0; k + 1 < db->n; k++) {
			if (strcasecmp(db->v[k]->id, c->id) == 0) {
				intent_set_why(err, errlen, "%s: intention #%zu: ID "
				    "%s used twice", db->path, i + 1, c->id);
				goto err;
			}
		}
	}
	qsort(db->v, db->n, sizeof(*db->v), intent_list_cmp);
	for (i = 1; i < db->n; i++) {
		if (intent_list_cmp(&db->v[i - 1], &db->v[i]) == 0) {
			intent_set_why(err, errlen, "%s: intention %s => %s stored "
			    "twice", db->path, db->v[i]->src, db->v[i]->dst);
			goto err;
		}
	}
	if ((db->ht = intent_ht_build(db->v, db->n, &db->htcap)) == NULL) {
		intent_set_why(err, errlen, "%s: out of memory", db->path);
		goto err;
	}
	json_decref(root);
	return 0;
err:
	json_decref(root);
	return -1;
}

int
intent_db_open(struct intent_db **out, const char *path, char *err,
    size_t errlen)
{
	struct intent_db *db;
	char *buf = NULL;
	size_t len;

	*out = NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		intent_set_why(err, errlen, "out of memory");
		return -1;
	}
	db->max = INTENT_MAX;
	if (path != NULL && (db->path = strdup(path)) == NULL) {
		intent_set_why(err, errlen, "out of memory");
		goto err;
	}
	if (path != NULL &&
	    (buf = util_read_file(path, INTENT_FILE_MAX, &len)) == NULL &&
	    errno != ENOENT) {
		intent_set_why(err, errlen, "%s: %s", path, strerror(errno));
		goto err;
	}
	if (buf != NULL) {
		if (load(db, buf, len, err, errlen) != 0)
			goto err;
		free(buf);
		buf = NULL;
	} else if ((db->ht = intent_ht_build(NULL, 0, &db->htcap)) == NULL) {
		intent_set_why(err, errlen, "out of memory");
		goto err;
	}
	*out = db;
	return 0;
err:
	free(buf);
	intent_db_free(db);
	return -1;
}

void
intent_db_set_saver(struct intent_db *db, intent_save_fn fn, void *arg)
{
	db->saver = fn;
	db->saver_arg = arg;
}

int
intent_db_busy(const struct intent_db *db)
{
	return db != NULL && db->pending;
}

int
intent_db_wait(struct intent_db *db, intent_wait_fn fn, void *cookie)
{
	struct intent_waiter *v;

	if (!db->pending)
		return -1;
	v = realloc(db->waiters, (db->n_waiters + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	db->waiters = v;
	v[db->n_waiters++] = (struct intent_waiter){ fn, cookie };
	return 0;
}

void
intent_db_saved(struct intent_db *db, int rc, const char *why)
{
	struct intent_waiter *w = db->waiters;
	size_t n = db->n_waiters;
	enum intent_err code = rc == INTENT_SAVE_UNKNOWN ? INTENT_EUNKNOWN :
	    INTENT_EIO;

	/* Taken first: a waiter may start the next change. */
	db->pending = 0;
	db->waiters = NULL;
	db->n_waiters = 0;
	for (size_t i = 0; i < n; i++)
		w[i].fn(w[i].cookie, rc == 0 ? 0 : -1, code, why);
	free(w);
}

int
intent_db_replace(struct intent_db *db, const char *doc, size_t len,
    const char *origin, char *err, size_t errlen)
{
	struct intent_db tmp = { .path = (char *)origin, .max = INTENT_MAX };

	if (load(&tmp, doc, len, err, errlen) != 0) {
		tmp.path = NULL;
		for (size_t i = 0; i < tmp.n; i++)
			intent_free_one(tmp.v[i]);
		free(tmp.v);
		free(tmp.ht);
		return -1;
	}
	if (db->path != NULL &&
	    util_write_atomic(db->path, doc, len, 0600) != 0)
		log_err("intentions: cannot write the local copy %s: %s",
		    db->path, strerror(errno));
	for (size_t i = 0; i < db->n; i++)
		intent_free_one(db->v[i]);
	free(db->v);
	free(db->ht);
	db->v = tmp.v;
	db->n = tmp.n;
	db->ht = tmp.ht;
	db->htcap = tmp.htcap;
	db->index = tmp.index;
	return 0;
}

char *
intent_db_dump(const struct intent_db *db)
{
	return serialize(db->v, db->n, db->index);
}

void
intent_db_set_max(struct intent_db *db, size_t max)
{
	db->max = max < INTENT_MAX ? max : INTENT_MAX;
}

void
intent_db_free(struct intent_db *db)
{
	if (db == NULL)
		return;
	if (db->n_waiters > 0)
		intent_db_saved(db, INTENT_SAVE_UNKNOWN, "helperd stopped "
		    "before the store answered");
	for (size_t i = 0; i < db->n; i++)
		intent_free_one(db->v[i]);
	free(db->v);
	free(db->ht);
	free(db->path);
	free(db);
}
