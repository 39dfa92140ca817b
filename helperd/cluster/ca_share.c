/* ca_share: a CA server's root material as one document (see ca_share.h). */
#include "helperd/cluster/ca_share.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "common/util.h"

#define SHARE_FILE_MAX  (1024 * 1024)
#define SHARE_ROOTS_MAX 64

static void
wipe_free(char *s)
{
	if (s != NULL) {
		gnutls_memset(s, 0, strlen(s));
		free(s);
	}
}

/* Add dir/name to o; missing: error unless optional. 0/-1. */
static int
add_file(json_t *o, const char *dir, const char *name, int optional,
    char *err, size_t errlen)
{
	char path[PATH_MAX];
	char *text;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((text = util_read_file(path, SHARE_FILE_MAX, NULL)) == NULL) {
		if (optional && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = json_object_set_new(o, name, json_string(text));
	wipe_free(text);
	if (rc != 0)
		snprintf(err, errlen, "%s: not text", path);
	return rc;
}

/* The root numbers meta lists, n[] (up to SHARE_ROOTS_MAX). */
static int
meta_roots(json_t *meta, long *n, size_t *count)
{
	json_t *arr = json_object_get(meta, "roots"), *r;
	size_t i;

	*count = 0;
	if (!json_is_array(arr) || json_array_size(arr) > SHARE_ROOTS_MAX)
		return -1;
	json_array_foreach(arr, i, r) {
		json_int_t v = json_integer_value(json_object_get(r, "n"));

		if (v < 1 || v > 1000000)
			return -1;
		n[(*count)++] = (long)v;
	}
	return 0;
}

char *
ca_share_export(const char *dir, char *err, size_t errlen)
{
	json_t *o = json_object(), *meta = NULL;
	char path[PATH_MAX], name[64], *text, *out = NULL;
	long n[SHARE_ROOTS_MAX];
	size_t cnt;

	snprintf(path, sizeof(path), "%s/meta.json", dir);
	if ((text = util_read_file(path, SHARE_FILE_MAX, NULL)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	meta = json_loads(text, 0, NULL);
	free(text);
	if (o == NULL || meta_roots(meta, n, &cnt) != 0) {
		snprintf(err, errlen, "%s: no roots list", path);
		goto out;
	}
	if (add_file(o, dir, "meta.json", 0, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < cnt; i++) {
		snprintf(name, sizeof(name), "roots/%ld.pem", n[i]);
		if (add_file(o, dir, name, 0, err, errlen) != 0)
			goto out;
		snprintf(name, sizeof(name), "roots/%ld.key", n[i]);
		if (add_file(o, dir, name, 0, err, errlen) != 0)
			goto out;
		snprintf(name, sizeof(name), "cross/%ld.pem", n[i]);
		if (add_file(o, dir, name, 1, err, errlen) != 0)
			goto out;
	}
	if ((out = json_dumps(o, JSON_COMPACT)) == NULL)
		snprintf(err, errlen, "out of memory");
out:
	/* The keys in o are wiped with it only as far as jansson frees:
	 * keep the window short. */
	json_decref(o);
	json_decref(meta);
	return out;
}

/* "roots/<n>.pem|key" or "cross/<n>.pem", n 1..1000000. */
static int
valid_name(const char *name)
{
	const char *p;
	char *end;
	long n;

	if (strncmp(name, "roots/", 6) == 0)
		p = name + 6;
	else if (strncmp(name, "cross/", 6) == 0)
		p = name + 6;
	else
		return 0;
	n = strtol(p, &end, 10);
	if (end == p || n < 1 || n > 1000000 || *p == '0')
		return 0;
	if (strcmp(end, ".pem") == 0)
		return 1;
	return strcmp(end, ".key") == 0 && name[0] == 'r';
}

int
ca_share_import(const char *dir, const char *doc, char *err, size_t errlen)
{
	json_t *o = json_loads(doc, 0, NULL), *v;
	const char *name, *meta;
	char path[PATH_MAX];
	static const char *const sub[] = { "roots", "cross", "leaf" };
	int rc = -1;

	meta = json_string_value(json_object_get(o, "meta.json"));
	if (!json_is_object(o) || meta == NULL) {
		snprintf(err, errlen, "CA material: no meta.json");
		goto out;
	}
	json_object_foreach(o, name, v) {
		if (strcmp(name, "meta.json") == 0)
			continue;
		if (!valid_name(name) || !json_is_string(v) ||
		    json_string_length(v) > SHARE_FILE_MAX) {
			snprintf(err, errlen, "CA material: unexpected entry "
			    "%.80s", name);
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
		if (util_mkdirs(path, 0700) != 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
	}
	/* Every root file first, meta.json (the commit point) last. */
	json_object_foreach(o, name, v) {
		if (strcmp(name, "meta.json") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (util_write_atomic(path, json_string_value(v),
		    json_string_length(v), 0600) != 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
	}
	snprintf(path, sizeof(path), "%s/meta.json", dir);
	if (util_write_atomic(path, meta, strlen(meta), 0600) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int
ca_share_info(const char *doc, const char *dir, char *td, size_t tdlen,
    long *next_root)
{
	json_t *o = NULL, *meta;
	char path[PATH_MAX], *text = NULL;
	const char *m, *t;
	int rc = -1;

	if (doc != NULL) {
		o = json_loads(doc, 0, NULL);
		m = json_string_value(json_object_get(o, "meta.json"));
	} else {
		snprintf(path, sizeof(path), "%s/meta.json", dir);
		m = text = util_read_file(path, SHARE_FILE_MAX, NULL);
	}
	meta = m != NULL ? json_loads(m, 0, NULL) : NULL;
	t = json_string_value(json_object_get(meta, "trust_domain"));
	if (t != NULL && strlen(t) < tdlen) {
		snprintf(td, tdlen, "%s", t);
		*next_root = (long)json_integer_value(json_object_get(meta,
		    "next_root"));
		rc = 0;
	}
	json_decref(meta);
	json_decref(o);
	free(text);
	return rc;
}
