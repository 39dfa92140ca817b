/* intent_json: an intention from and to Consul's JSON, checked. */
#include "helperd/model/intent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helperd/model/intent_int.h"

/* ---- validation and JSON ---- */

static int
check_meta(const json_t *m, char *why, size_t whylen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(m)) {
		intent_set_why(why, whylen, "Meta must be an object of strings");
		return -1;
	}
	if (json_object_size(m) > INTENT_META_MAX) {
		intent_set_why(why, whylen, "Meta has %zu keys, at most %d allowed",
		    json_object_size(m), INTENT_META_MAX);
		return -1;
	}
	json_object_foreach((json_t *)m, k, v) {
		size_t kl = strlen(k);

		if (kl == 0 || kl > INTENT_META_KEY_MAX) {
			intent_set_why(why, whylen, "Meta key length must be 1..%d",
			    INTENT_META_KEY_MAX);
			return -1;
		}
		if (!json_is_string(v)) {
			intent_set_why(why, whylen, "Meta[\"%.64s\"] must be a string",
			    k);
			return -1;
		}
		if (json_string_length(v) > INTENT_META_VAL_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			intent_set_why(why, whylen, "Meta[\"%.64s\"]: value longer "
			    "than %d bytes or containing NUL", k,
			    INTENT_META_VAL_MAX);
			return -1;
		}
	}
	return 0;
}

/* Checks what a caller may hand to intent_create/update. */
int
intent_check_fields(const struct intent *in, char *why, size_t whylen)
{
	if (memchr(in->src, '\0', sizeof(in->src)) == NULL ||
	    !intent_valid_name(in->src)) {
		intent_set_why(why, whylen, "SourceName: invalid name (a service name "
		    "of 1-63 chars [A-Za-z0-9_-] or \"*\")");
		return -1;
	}
	if (memchr(in->dst, '\0', sizeof(in->dst)) == NULL ||
	    !intent_valid_name(in->dst)) {
		intent_set_why(why, whylen, "DestinationName: invalid name (a service "
		    "name of 1-63 chars [A-Za-z0-9_-] or \"*\")");
		return -1;
	}
	if (in->allow != 0 && in->allow != 1) {
		intent_set_why(why, whylen, "Action must be \"allow\" or \"deny\"");
		return -1;
	}
	if (memchr(in->description, '\0', sizeof(in->description)) == NULL) {
		intent_set_why(why, whylen, "Description longer than %d bytes",
		    INTENT_DESC_MAX - 1);
		return -1;
	}
	if (in->meta != NULL && check_meta(in->meta, why, whylen) != 0)
		return -1;
	return 0;
}

/* A string field: absent/null -> *out NULL and 0 (unless required). */
static int
get_str(const json_t *j, const char *key, int required, const char **out,
    char *why, size_t whylen)
{
	json_t *v = json_object_get(j, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			intent_set_why(why, whylen, "%s is required", key);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		intent_set_why(why, whylen, "%s must be a string", key);
		return -1;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		intent_set_why(why, whylen, "%s contains a NUL character", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int
get_name(const json_t *j, const char *key, char *dst, size_t dstlen,
    char *why, size_t whylen)
{
	const char *s;

	if (get_str(j, key, 1, &s, why, whylen) != 0)
		return -1;
	if (s[0] == '\0') {
		intent_set_why(why, whylen, "%s must not be empty", key);
		return -1;
	}
	if (!intent_valid_name(s) || strlen(s) >= dstlen) {
		intent_set_why(why, whylen, "%s \"%.80s%s\": not a valid service name "
		    "(1-63 chars of [A-Za-z0-9_-], starting with a letter or "
		    "digit) or \"*\"", key, s, strlen(s) > 80 ? "..." : "");
		return -1;
	}
	util_strlcpy(dst, s, dstlen);
	return 0;
}

int
intent_from_json(const json_t *j, struct intent *out, char *why,
    size_t whylen)
{
	static const char *const ns_keys[] = { "SourceNS", "DestinationNS" };
	const char *s;
	json_t *m;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(j)) {
		intent_set_why(why, whylen, "intention must be a JSON object");
		return -1;
	}
	if (get_name(j, "SourceName", out->src, sizeof(out->src), why,
	    whylen) != 0 ||
	    get_name(j, "DestinationName", out->dst, sizeof(out->dst), why,
	    whylen) != 0)
		return -1;
	if (get_str(j, "Action", 1, &s, why, whylen) != 0)
		return -1;
	if (strcmp(s, "allow") == 0) {
		out->allow = 1;
	} else if (strcmp(s, "deny") == 0) {
		out->allow = 0;
	} else {
		intent_set_why(why, whylen, "Action \"%.32s\": must be \"allow\" or "
		    "\"deny\"", s);
		return -1;
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(ns_keys); i++) {
		if (get_str(j, ns_keys[i], 0, &s, why, whylen) != 0)
			return -1;
		if (s != NULL && s[0] != '\0' && strcmp(s, "default") != 0) {
			intent_set_why(why, whylen, "%s \"%.64s\": only the "
			    "\"default\" namespace exists", ns_keys[i], s);
			return -1;
		}
	}
	if (get_str(j, "SourceType", 0, &s, why, whylen) != 0)
		return -1;
	if (s != NULL && s[0] != '\0' && strcmp(s, "consul") != 0) {
		intent_set_why(why, whylen, "SourceType \"%.32s\": only \"consul\" is "
		    "supported", s);
		return -1;
	}
	m = json_object_get(j, "Permissions");
	if (m != NULL && !json_is_null(m) &&
	    !(json_is_array(m) && json_array_size(m) == 0)) {
		intent_set_why(why, whylen, "Permissions: L7 intentions are not "
		    "supported");
		return -1;
	}
	if (get_str(j, "Description", 0, &s, why, whylen) != 0)
		return -1;
	if (s != NULL) {
		if (strlen(s) >= sizeof(out->description)) {
			intent_set_why(why, whylen, "Description longer than %d bytes",
			    INTENT_DESC_MAX - 1);
			return -1;
		}
		util_strlcpy(out->description, s, sizeof(out->description));
	}
	m = json_object_get(j, "Meta");
	if (m != NULL && !json_is_null(m)) {
		if (check_meta(m, why, whylen) != 0)
			return -1;
		if (json_object_size(m) > 0 &&
		    (out->meta = json_deep_copy(m)) == NULL) {
			intent_set_why(why, whylen, "out of memory");
			return -1;
		}
	}
	out->precedence = intent_precedence(out->src, out->dst);
	return 0;
}

void
intent_clear(struct intent *in)
{
	if (in == NULL)
		return;
	json_decref(in->meta);
	in->meta = NULL;
}

json_t *
intent_to_json(const struct intent *in)
{
	char created[32], updated[32];
	json_t *meta;

	util_rfc3339(in->created_at, created, sizeof(created));
	util_rfc3339(in->updated_at, updated, sizeof(updated));
	meta = in->meta != NULL ? json_deep_copy(in->meta) : json_object();
	if (meta == NULL)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, "
	    "s:i, s:s, s:s, s:I, s:I}",
	    "ID", in->id,
	    "Description", in->description,
	    "SourceNS", "default",
	    "SourceName", in->src,
	    "DestinationNS", "default",
	    "DestinationName", in->dst,
	    "SourceType", "consul",
	    "Action", in->allow ? "allow" : "deny",
	    "Meta", meta,
	    "Precedence", in->precedence,
	    "CreatedAt", created,
	    "UpdatedAt", updated,
	    "CreateIndex", (json_int_t)in->create_index,
	    "ModifyIndex", (json_int_t)in->modify_index);
}
