/* cmd_intention: "meshctl intention create|delete|get|list|check|match". */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define INTENT_FILE_MAX   (4 * 1024 * 1024)
#define INTENT_META_KEY   128
#define INTENT_META_VAL   512
#define INTENT_DESC_LIMIT 512

/* "web => socat (deny)" */
static void
ixn_string(char *buf, size_t len, const char *src, const char *dst,
    const char *action)
{
	snprintf(buf, len, "%s => %s (%s)", src, dst, action);
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static int
valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	return strspn(s, "0123456789abcdefABCDEF-") == n;
}

/* Check SRC/DST names; prints the error. 0/-1. */
static int
check_pair(const char *src, const char *dst, int allow_wild)
{
	if (!mc_valid_name(src, allow_wild)) {
		fprintf(stderr, "Error: invalid source name \"%s\": expected 1 "
		    "to %d characters of [A-Za-z0-9_-]%s\n", src, MC_NAME_MAX,
		    allow_wild ? " or \"*\"" : "");
		return -1;
	}
	if (!mc_valid_name(dst, allow_wild)) {
		fprintf(stderr, "Error: invalid destination name \"%s\": "
		    "expected 1 to %d characters of [A-Za-z0-9_-]%s\n", dst,
		    MC_NAME_MAX, allow_wild ? " or \"*\"" : "");
		return -1;
	}
	return 0;
}

/* Build "/v1/connect/intentions/<tail>?source=S&destination=D". */
static char *
pair_path(const char *tail, const char *src, const char *dst)
{
	char *es = api_escape(src), *ed = api_escape(dst), *p = NULL;

	if (es != NULL && ed != NULL &&
	    asprintf(&p, "/v1/connect/intentions/%s?source=%s&destination=%s",
	    tail, es, ed) < 0)
		p = NULL;
	free(es);
	free(ed);
	if (p == NULL)
		fprintf(stderr, "Error: out of memory\n");
	return p;
}

/* Path of one intention given "SRC DST" or "ID" arguments. */
static char *
target_path(const char **pos, int npos)
{
	char *p = NULL;

	if (npos == 2) {
		if (check_pair(pos[0], pos[1], 1) != 0)
			return NULL;
		return pair_path("exact", pos[0], pos[1]);
	}
	if (!valid_id(pos[0])) {
		fprintf(stderr, "Error: \"%s\" is not an intention ID; give "
		    "an ID or SRC DST\n", pos[0]);
		return NULL;
	}
	if (asprintf(&p, "/v1/connect/intentions/%s", pos[0]) < 0) {
		fprintf(stderr, "Error: out of memory\n");
		return NULL;
	}
	return p;
}

/* ---- create ---- */

static int c_allow, c_deny, c_replace;
static const char *c_desc, *c_file;
static struct flag_list c_meta;

static const struct flag create_flags[] = {
	{ "allow", FLAG_BOOL, &c_allow, NULL,
	    "Set the action to \"allow\". This is the default." },
	{ "deny", FLAG_BOOL, &c_deny, NULL,
	    "Set the action to \"deny\". Cannot be used with -allow." },
	{ "replace", FLAG_BOOL, &c_replace, NULL,
	    "Replace an existing intention for the same SRC and DST "
	    "atomically instead of failing." },
	{ "meta", FLAG_LIST, &c_meta, "<key=value>",
	    "Metadata to store with the intention. May be given several "
	    "times." },
	{ "description", FLAG_STRING, &c_desc, "<text>",
	    "A human-readable description of the intention." },
	{ "file", FLAG_STRING, &c_file, "<path>",
	    "Read the intention(s) from a JSON file (\"-\" for stdin): one "
	    "intention object (SourceName, DestinationName, Action, "
	    "Description, Meta) or an array of them. Any further arguments "
	    "are read as files too." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help create_help = {
	"intention create",
	"intention create [options] SRC DST\n"
	"intention create [options] -file FILE...",
	"Create an intention that allows or denies connections from the "
	"service SRC to the service DST. Either name may be \"*\" to match "
	"any service. A duplicate SRC DST pair is an error unless -replace "
	"is given. The action is \"allow\" unless -deny is given.\n\n"
	"$ meshctl intention create -deny web socat",
	create_flags,
};

/* Parse "k=v" into meta; prints the error. 0/-1. */
static int
meta_add(json_t *meta, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq != NULL ? (size_t)(eq - kv) : 0;
	char key[INTENT_META_KEY + 1];

	if (eq == NULL || klen == 0) {
		fprintf(stderr, "Error: -meta \"%s\": expected key=value\n",
		    kv);
		return -1;
	}
	if (klen > INTENT_META_KEY || strlen(eq + 1) > INTENT_META_VAL) {
		fprintf(stderr, "Error: -meta \"%.40s...\": key is limited to "
		    "%d and value to %d characters\n", kv, INTENT_META_KEY,
		    INTENT_META_VAL);
		return -1;
	}
	memcpy(key, kv, klen);
	key[klen] = '\0';
	if (json_object_get(meta, key) != NULL) {
		fprintf(stderr, "Error: -meta key \"%s\" given twice\n", key);
		return -1;
	}
	if (json_object_set_new(meta, key, json_string(eq + 1)) != 0) {
		fprintf(stderr, "Error: -meta \"%s\": value is not valid "
		    "UTF-8\n", kv);
		return -1;
	}
	return 0;
}

/* POST one intention object; prints "Created: ..." or the error. 0/-1. */
static int
create_one(json_t *ixn)
{
	const char *src = jstr(ixn, "SourceName");
	const char *dst = jstr(ixn, "DestinationName");
	const char *act = jstr(ixn, "Action");
	char what[256];
	struct api_resp r;
	char *body;
	int rc = -1;

	ixn_string(what, sizeof(what), src, dst, act);
	body = json_dumps(ixn, JSON_COMPACT);
	if (body == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return -1;
	}
	if (api_request("POST", c_replace ? "/v1/connect/intentions?"
	    "replace=true" : "/v1/connect/intentions", body, &r) != 0) {
		free(body);
		return -1;
	}
	free(body);
	if (r.status >= 200 && r.status < 300) {
		printf("Created: %s\n", what);
		rc = 0;
	} else {
		fprintf(stderr, "Error creating intention \"%s\": %s\n", what,
		    api_errtext(&r));
	}
	api_resp_free(&r);
	return rc;
}

/* Case-insensitive member lookup (Consul's decoder is). */
static json_t *
jget_ci(const json_t *o, const char *key)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
		if (strcasecmp(k, key) == 0)
			return v;
	return NULL;
}

/* Normalise an intention object read from a file into a fresh object with
 * Consul's field names. NULL after printing the error. */
static json_t *
file_intention(const json_t *in, const char *origin, size_t idx)
{
	static const char *ignored[] = { "ID", "SourceNS", "DestinationNS",
	    "SourceType", "Precedence", "CreatedAt", "UpdatedAt",
	    "CreateIndex", "ModifyIndex", "Hash", "DefaultAddr",
	    "DefaultPort", "Permissions", "LegacyID", "LegacyMeta",
	    "LegacyCreateTime", "LegacyUpdateTime", "Peer", "SourcePeer",
	    "SourcePartition", "DestinationPartition", "SourceSamenessGroup" };
	static const char *known[] = { "SourceName", "DestinationName",
	    "Action", "Description", "Meta" };
	const char *k, *src, *dst, *act;
	json_t *v, *out, *meta;

	if (!json_is_object(in)) {
		fprintf(stderr, "Error: %s: intention %zu is not a JSON "
		    "object\n", origin, idx);
		return NULL;
	}
	json_object_foreach((json_t *)in, k, v) {
		int ok = 0;
		for (size_t i = 0; i < UTIL_ARRAY_LEN(known); i++)
			ok |= strcasecmp(k, known[i]) == 0;
		for (size_t i = 0; i < UTIL_ARRAY_LEN(ignored); i++)
			ok |= strcasecmp(k, ignored[i]) == 0;
		if (!ok) {
			fprintf(stderr, "Error: %s: intention %zu: unknown "
			    "field \"%s\"\n", origin, idx, k);
			return NULL;
		}
	}
	src = json_string_value(jget_ci(in, "SourceName"));
	dst = json_string_value(jget_ci(in, "DestinationName"));
	v = jget_ci(in, "Action");
	act = v != NULL ? json_string_value(v) : "allow";
	if (src == NULL || dst == NULL) {
		fprintf(stderr, "Error: %s: intention %zu: SourceName and "
		    "DestinationName are required strings\n", origin, idx);
		return NULL;
	}
	if (check_pair(src, dst, 1) != 0)
		return NULL;
	if (act == NULL || (strcmp(act, "allow") != 0 &&
	    strcmp(act, "deny") != 0)) {
		fprintf(stderr, "Error: %s: intention %zu: Action must be "
		    "\"allow\" or \"deny\"\n", origin, idx);
		return NULL;
	}
	out = json_pack("{s:s, s:s, s:s}", "SourceName", src,
	    "DestinationName", dst, "Action", act);
	if (out == NULL)
		goto nomem;
	if ((v = jget_ci(in, "Description")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) ||
		    json_string_length(v) > INTENT_DESC_LIMIT) {
			fprintf(stderr, "Error: %s: intention %zu: Description "
			    "must be a string of at most %d bytes\n", origin,
			    idx, INTENT_DESC_LIMIT);
			json_decref(out);
			return NULL;
		}
		json_object_set(out, "Description", v);
	}
	if ((meta = jget_ci(in, "Meta")) != NULL && !json_is_null(meta)) {
		const char *mk;
		json_t *mv;
		if (!json_is_object(meta))
			goto badmeta;
		json_object_foreach(meta, mk, mv)
			if (!json_is_string(mv) || strlen(mk) == 0 ||
			    strlen(mk) > INTENT_META_KEY ||
			    json_string_length(mv) > INTENT_META_VAL)
				goto badmeta;
		json_object_set(out, "Meta", meta);
	}
	return out;
badmeta:
	fprintf(stderr, "Error: %s: intention %zu: Meta must be an object of "
	    "strings (keys up to %d, values up to %d characters)\n", origin,
	    idx, INTENT_META_KEY, INTENT_META_VAL);
	json_decref(out);
	return NULL;
nomem:
	fprintf(stderr, "Error: out of memory\n");
	return NULL;
}

/* Read the intentions of one file ("-" = stdin) and append to arr. */
static int
load_file(const char *path, json_t *arr)
{
	const char *origin = strcmp(path, "-") == 0 ? "<stdin>" : path;
	json_error_t je;
	json_t *j, *one;
	char *data = NULL;
	size_t len = 0, i;
	int rc = -1;

	if (strcmp(path, "-") == 0) {
		size_t cap = 0;
		for (;;) {
			size_t n;
			if (len + 4096 + 1 > cap) {
				char *nd;
				cap = cap ? cap * 2 : 8192;
				if (cap > INTENT_FILE_MAX + 8192 ||
				    (nd = realloc(data, cap)) == NULL) {
					fprintf(stderr, "Error: <stdin>: too "
					    "large or out of memory\n");
					free(data);
					return -1;
				}
				data = nd;
			}
			n = fread(data + len, 1, 4096, stdin);
			len += n;
			if (n < 4096)
				break;
		}
		if (ferror(stdin) || len > INTENT_FILE_MAX) {
			fprintf(stderr, "Error: cannot read <stdin>\n");
			free(data);
			return -1;
		}
		data[len] = '\0';
	} else if ((data = util_read_file(path, INTENT_FILE_MAX, &len)) ==
	    NULL) {
		fprintf(stderr, "Error: cannot read %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	j = json_loadb(data, len, 0, &je);
	free(data);
	if (j == NULL) {
		fprintf(stderr, "Error: %s:%d: malformed JSON: %s\n", origin,
		    je.line, je.text);
		return -1;
	}
	if (json_is_array(j)) {
		json_array_foreach(j, i, one) {
			json_t *n = file_intention(one, origin, i + 1);
			if (n == NULL || json_array_append_new(arr, n) != 0)
				goto out;
		}
		if (json_array_size(j) == 0)
			fprintf(stderr, "Warning: %s holds no intentions\n",
			    origin);
	} else {
		json_t *n = file_intention(j, origin, 1);
		if (n == NULL || json_array_append_new(arr, n) != 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

static int
intention_create(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *all, *ixn;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&create_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (c_allow && c_deny)
		return flags_fail(&create_help, "Only one of -allow or -deny "
		    "may be specified");
	if ((all = json_array()) == NULL)
		return 1;
	if (c_file != NULL) {
		if (c_allow || c_deny || c_meta.n > 0 || c_desc != NULL) {
			json_decref(all);
			return flags_fail(&create_help, "-file cannot be "
			    "combined with -allow, -deny, -meta or "
			    "-description: put them in the file");
		}
		if (load_file(c_file, all) != 0)
			goto fail;
		for (int k = 0; k < npos; k++)
			if (load_file(pos[k], all) != 0)
				goto fail;
	} else {
		json_t *meta;
		if (npos != 2) {
			json_decref(all);
			return flags_fail(&create_help, "Error: expected SRC "
			    "and DST (got %d argument%s)", npos,
			    npos == 1 ? "" : "s");
		}
		if (check_pair(pos[0], pos[1], 1) != 0)
			goto fail;
		if (c_desc != NULL && strlen(c_desc) > INTENT_DESC_LIMIT) {
			fprintf(stderr, "Error: -description is limited to %d "
			    "bytes\n", INTENT_DESC_LIMIT);
			goto fail;
		}
		ixn = json_pack("{s:s, s:s, s:s}", "SourceName", pos[0],
		    "DestinationName", pos[1], "Action",
		    c_deny ? "deny" : "allow");
		if (ixn == NULL || json_array_append_new(all, ixn) != 0)
			goto fail;
		if ((meta = json_object()) == NULL)
			goto fail;
		json_object_set_new(ixn, "Meta", meta);
		for (size_t m = 0; m < c_meta.n; m++)
			if (meta_add(meta, c_meta.v[m]) != 0)
				goto fail;
		if (c_desc != NULL && json_object_set_new(ixn, "Description",
		    json_string(c_desc)) != 0) {
			fprintf(stderr, "Error: -description is not valid "
			    "UTF-8\n");
			goto fail;
		}
	}
	json_array_foreach(all, i, ixn)
		if (create_one(ixn) != 0)
			goto fail;
	json_decref(all);
	return 0;
fail:
	json_decref(all);
	return 1;
}

/* ---- delete / get ---- */

static const struct flag http_only_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help delete_help = {
	"intention delete",
	"intention delete [options] SRC DST\n"
	"intention delete [options] ID",
	"Delete the intention from SRC to DST (exact names, \"*\" included), "
	"or the intention with the given ID.\n\n"
	"$ meshctl intention delete web socat",
	http_only_flags,
};

static int
intention_delete(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	char *path;
	int npos, rc;

	if ((rc = flags_parse(&delete_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 1 && npos != 2)
		return flags_fail(&delete_help, "Error: expected SRC DST or ID "
		    "(got %d arguments)", npos);
	if ((path = target_path(pos, npos)) == NULL)
		return 1;
	rc = api_request("DELETE", path, NULL, &r);
	free(path);
	if (rc != 0)
		return 1;
	if (r.status >= 200 && r.status < 300) {
		printf("Intention deleted.\n");
		rc = 0;
	} else {
		fprintf(stderr, "Error deleting the intention: %s\n",
		    api_errtext(&r));
		rc = 1;
	}
	api_resp_free(&r);
	return rc;
}

static const struct cmd_help get_help = {
	"intention get",
	"intention get [options] SRC DST\n"
	"intention get [options] ID",
	"Show the intention from SRC to DST (exact names, \"*\" included), "
	"or the intention with the given ID.\n\n"
	"$ meshctl intention get web socat",
	http_only_flags,
};

/* RFC 3339 (or unix seconds) to Consul's RFC 850 local time. */
static void
format_time(const json_t *v, char *buf, size_t len)
{
	struct tm tm = { 0 };
	time_t t;
	int n = 0;

	buf[0] = '\0';
	if (json_is_integer(v)) {
		t = (time_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v), *p;
		int off = 0;
		if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
		    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		    &tm.tm_sec, &n) != 6) {
			snprintf(buf, len, "%s", s);
			return;
		}
		p = s + n;
		if (*p == '.')
			p += 1 + strspn(p + 1, "0123456789");
		if (*p == '+' || *p == '-') {
			int hh, mm;
			if (sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2)
				off = (hh * 60 + mm) * 60 * (*p == '-' ? -1 : 1);
		}
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = timegm(&tm) - off;
		if (tm.tm_year + 1900 <= 1) {   /* Go's zero time */
			return;
		}
	} else {
		return;
	}
	if (t <= 0 || localtime_r(&t, &tm) == NULL)
		return;
	/* Go's RFC850: "Monday, 02-Jan-06 15:04:05 MST" */
	n = (int)strftime(buf, len, "%A, %d-%b-", &tm);
	n += snprintf(buf + n, len - (size_t)n, "%02d", tm.tm_year % 100);
	if ((size_t)n < len)
		strftime(buf + n, len - (size_t)n, " %H:%M:%S %Z", &tm);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
intention_get(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	struct table *t = NULL;
	json_t *j = NULL, *meta;
	char *path;
	char when[128];
	int npos, rc;

	if ((rc = flags_parse(&get_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 1 && npos != 2)
		return flags_fail(&get_help, "Error: expected SRC DST or ID "
		    "(got %d arguments)", npos);
	if ((path = target_path(pos, npos)) == NULL)
		return 1;
	rc = api_request("GET", path, NULL, &r);
	free(path);
	if (rc != 0)
		return 1;
	rc = 1;
	if (r.status == 404 && npos == 2) {
		fprintf(stderr, "Intention not found with source \"%s\" and "
		    "destination \"%s\"\n", pos[0], pos[1]);
		goto out;
	}
	if (r.status == 404) {
		fprintf(stderr, "Intention not found with ID \"%s\"\n",
		    pos[0]);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error reading the intention: %s\n",
		    api_errtext(&r));
		goto out;
	}
	if ((j = api_json(&r, "reading the intention")) == NULL)
		goto out;
	if (json_is_array(j) && json_array_size(j) == 1) {
		json_t *one = json_incref(json_array_get(j, 0));
		json_decref(j);
		j = one;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "Error reading the intention: unexpected "
		    "response\n");
		goto out;
	}
	if ((t = table_new(2)) == NULL)
		goto out;
#define ROW(k, v) do { const char *c_[2] = { (k), (v) }; \
	if (table_add(t, c_) != 0) goto out; } while (0)
	ROW("Source:", jstr(j, "SourceName"));
	ROW("Destination:", jstr(j, "DestinationName"));
	ROW("Action:", jstr(j, "Action"));
	if (jstr(j, "ID")[0] != '\0')
		ROW("ID:", jstr(j, "ID"));
	if (jstr(j, "Description")[0] != '\0')
		ROW("Description:", jstr(j, "Description"));
	meta = json_object_get(j, "Meta");
	if (json_is_object(meta) && json_object_size(meta) > 0) {
		const char **keys = calloc(json_object_size(meta),
		    sizeof(*keys));
		const char *k;
		json_t *v;
		size_t nk = 0;
		if (keys == NULL)
			goto out;
		json_object_foreach(meta, k, v)
			keys[nk++] = k;
		qsort(keys, nk, sizeof(*keys), cmp_str);
		for (size_t i = 0; i < nk; i++) {
			char label[INTENT_META_KEY + 16];
			const char *c2[2];
			snprintf(label, sizeof(label), "Meta[%s]:", keys[i]);
			c2[0] = label;
			c2[1] = jstr(meta, keys[i]);
			if (table_add(t, c2) != 0) {
				free(keys);
				goto out;
			}
		}
		free(keys);
	}
	format_time(json_object_get(j, "CreatedAt"), when, sizeof(when));
	if (when[0] != '\0')
		ROW("Created At:", when);
#undef ROW
	table_print(t);
	rc = 0;
out:
	table_free(t);
	json_decref(j);
	api_resp_free(&r);
	return rc;
}

/* ---- list ---- */

static const struct cmd_help list_help = {
	"intention list",
	"intention list [options]",
	"List all intentions with their ID and precedence, in the order "
	"helperd evaluates them. Exits 2 (with \"There are no intentions.\") "
	"when there are none, as Consul does.",
	http_only_flags,
};

static int
intention_list(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	struct table *t = NULL;
	json_t *j = NULL, *ixn;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&list_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&list_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if (api_request("GET", "/v1/connect/intentions", NULL, &r) != 0)
		return 1;
	rc = 1;
	if (r.status != 200) {
		fprintf(stderr, "Failed to retrieve the intentions list: %s\n",
		    api_errtext(&r));
		goto out;
	}
	if ((j = api_json(&r, "retrieving the intentions list")) == NULL)
		goto out;
	if (!json_is_array(j)) {
		fprintf(stderr, "Failed to retrieve the intentions list: "
		    "unexpected response\n");
		goto out;
	}
	if (json_array_size(j) == 0) {
		fprintf(stderr, "There are no intentions.\n");
		rc = 2;
		goto out;
	}
	if ((t = table_new(5)) == NULL)
		goto out;
	{
		const char *hdr[] = { "ID", "Source", "Action", "Destination",
		    "Precedence" };
		if (table_add(t, hdr) != 0)
			goto out;
	}
	json_array_foreach(j, i, ixn) {
		char prec[24];
		const char *row[5];
		snprintf(prec, sizeof(prec), "%lld", (long long)
		    json_integer_value(json_object_get(ixn, "Precedence")));
		row[0] = jstr(ixn, "ID");
		row[1] = jstr(ixn, "SourceName");
		row[2] = jstr(ixn, "Action");
		row[3] = jstr(ixn, "DestinationName");
		row[4] = prec;
		if (table_add(t, row) != 0)
			goto out;
	}
	table_print(t);
	rc = 0;
out:
	table_free(t);
	json_decref(j);
	api_resp_free(&r);
	return rc;
}

/* ---- check ---- */

static const struct cmd_help check_help = {
	"intention check",
	"intention check [options] SRC DST",
	"Check whether a connection from service SRC to service DST would "
	"be allowed by the current intentions and default_intention. Prints "
	"\"Allowed\" (exit 0) or \"Denied\" (exit 1); any error exits 2.\n\n"
	"$ meshctl intention check web socat",
	http_only_flags,
};

static int
intention_check(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	json_t *j = NULL, *a;
	char *path;
	int npos, rc;

	if ((rc = flags_parse(&check_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 2 : 0;
	if (npos != 2) {
		flags_fail(&check_help, "Error: command requires exactly two "
		    "arguments: src and dst");
		return 2;
	}
	if (check_pair(pos[0], pos[1], 0) != 0)
		return 2;
	if ((path = pair_path("check", pos[0], pos[1])) == NULL)
		return 2;
	rc = api_request("GET", path, NULL, &r);
	free(path);
	if (rc != 0)
		return 2;
	rc = 2;
	if (r.status != 200) {
		fprintf(stderr, "Error checking the connection: %s\n",
		    api_errtext(&r));
		goto out;
	}
	if ((j = api_json(&r, "checking the connection")) == NULL)
		goto out;
	a = json_object_get(j, "Allowed");
	if (!json_is_boolean(a)) {
		fprintf(stderr, "Error checking the connection: response has "
		    "no \"Allowed\" field\n");
		goto out;
	}
	printf("%s\n", json_is_true(a) ? "Allowed" : "Denied");
	rc = json_is_true(a) ? 0 : 1;
out:
	json_decref(j);
	api_resp_free(&r);
	return rc;
}

/* ---- match ---- */

static const char *m_source, *m_dest;

static const struct flag match_flags[] = {
	{ "source", FLAG_STRING, &m_source, "<name>",
	    "Match intentions whose source is this service." },
	{ "destination", FLAG_STRING, &m_dest, "<name>",
	    "Match intentions whose destination is this service (the "
	    "default when a bare NAME is given)." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help match_help = {
	"intention match",
	"intention match [options] -source NAME\n"
	"intention match [options] -destination NAME\n"
	"intention match [options] NAME",
	"Show the intentions that apply to a source or a destination, in "
	"the order they are evaluated (the first that matches a connection "
	"decides). One line per intention: \"web => db (deny)\".\n\n"
	"$ meshctl intention match -destination socat",
	match_flags,
};

static int
intention_match(int argc, char **argv)
{
	const char *pos[argc + 1], *by, *name;
	struct api_resp r;
	json_t *j = NULL, *list, *ixn;
	char *en, *path = NULL;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&match_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (m_source != NULL && m_dest != NULL)
		return flags_fail(&match_help, "Error: only one of -source or "
		    "-destination may be specified");
	if ((m_source != NULL || m_dest != NULL) ? npos != 0 : npos != 1)
		return flags_fail(&match_help, "Error: command requires "
		    "exactly one service name");
	by = m_source != NULL ? "source" : "destination";
	name = m_source != NULL ? m_source : m_dest != NULL ? m_dest : pos[0];
	if (!mc_valid_name(name, 1)) {
		fprintf(stderr, "Error: invalid service name \"%s\": expected "
		    "1 to %d characters of [A-Za-z0-9_-] or \"*\"\n", name,
		    MC_NAME_MAX);
		return 1;
	}
	if ((en = api_escape(name)) == NULL ||
	    asprintf(&path, "/v1/connect/intentions/match?by=%s&name=%s",
	    by, en) < 0) {
		free(en);
		fprintf(stderr, "Error: out of memory\n");
		return 1;
	}
	free(en);
	rc = api_request("GET", path, NULL, &r);
	free(path);
	if (rc != 0)
		return 1;
	rc = 1;
	if (r.status != 200) {
		fprintf(stderr, "Error matching the connection: %s\n",
		    api_errtext(&r));
		goto out;
	}
	if ((j = api_json(&r, "matching the connection")) == NULL)
		goto out;
	/* Consul answers {"<name>": [...]}; a bare array is accepted too. */
	list = json_is_object(j) ? json_object_get(j, name) : j;
	if (list == NULL && json_is_object(j) && json_object_size(j) == 0)
		list = json_array();
	else if (list != NULL)
		json_incref(list);
	if (!json_is_array(list)) {
		fprintf(stderr, "Error matching the connection: unexpected "
		    "response\n");
		json_decref(list);
		goto out;
	}
	json_array_foreach(list, i, ixn) {
		char line[256];
		ixn_string(line, sizeof(line), jstr(ixn, "SourceName"),
		    jstr(ixn, "DestinationName"), jstr(ixn, "Action"));
		printf("%s\n", line);
	}
	json_decref(list);
	rc = 0;
out:
	json_decref(j);
	api_resp_free(&r);
	return rc;
}

static const struct subcmd intention_cmds[] = {
	{ "check", intention_check, "Check whether a connection between two "
	    "services is allowed" },
	{ "create", intention_create, "Create intentions for service "
	    "connections" },
	{ "delete", intention_delete, "Delete an intention" },
	{ "get", intention_get, "Show information about an intention" },
	{ "list", intention_list, "List all intentions" },
	{ "match", intention_match, "Show intentions that match a source or "
	    "destination" },
};

int
cmd_intention(int argc, char **argv)
{
	return mc_dispatch("intention", "Manage intentions: the rules that "
	    "say which service may connect to which. helperd enforces them "
	    "on new connections and closes open connections of a pair that "
	    "becomes denied.\n\n"
	    "$ meshctl intention create -deny web socat",
	    intention_cmds, UTIL_ARRAY_LEN(intention_cmds), argc, argv);
}
