/* intention_create: "meshctl intention create", from flags or JSON files. */
#include "meshctl/api.h"
#include "meshctl/intention.h"
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	const char *src = ixn_jstr(ixn, "SourceName");
	const char *dst = ixn_jstr(ixn, "DestinationName");
	const char *act = ixn_jstr(ixn, "Action");
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
	} else if (r.status == 504) {
		fprintf(stderr, "Outcome unknown for intention \"%s\": %s\n"
		    "Check with: meshctl intention get %s %s\n", what,
		    api_errtext(&r), src != NULL ? src : "SRC",
		    dst != NULL ? dst : "DST");
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
	if (ixn_check_pair(src, dst, 1) != 0)
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

int
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
		if (ixn_check_pair(pos[0], pos[1], 1) != 0)
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

