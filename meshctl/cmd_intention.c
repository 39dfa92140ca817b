/* cmd_intention: "meshctl intention delete|get|list|check|match", the
 * helpers shared with intention_create.c, and the dispatch. */
#include "meshctl/api.h"
#include "meshctl/intention.h"
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "web => socat (deny)" */
void
ixn_string(char *buf, size_t len, const char *src, const char *dst,
    const char *action)
{
	snprintf(buf, len, "%s => %s (%s)", src, dst, action);
}

const char *
ixn_jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

int
ixn_valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	return strspn(s, "0123456789abcdefABCDEF-") == n;
}

/* Check SRC/DST names; prints the error. 0/-1. */
int
ixn_check_pair(const char *src, const char *dst, int allow_wild)
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
char *
ixn_pair_path(const char *tail, const char *src, const char *dst)
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
char *
ixn_target_path(const char **pos, int npos)
{
	char *p = NULL;

	if (npos == 2) {
		if (ixn_check_pair(pos[0], pos[1], 1) != 0)
			return NULL;
		return ixn_pair_path("exact", pos[0], pos[1]);
	}
	if (!ixn_valid_id(pos[0])) {
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
	if ((path = ixn_target_path(pos, npos)) == NULL)
		return 1;
	rc = api_request("DELETE", path, NULL, &r);
	free(path);
	if (rc != 0)
		return 1;
	if (r.status >= 200 && r.status < 300) {
		printf("Intention deleted.\n");
		rc = 0;
	} else if (r.status == 504) {
		fprintf(stderr, "Outcome unknown: the intention may or may not "
		    "have been deleted: %s\n", api_errtext(&r));
		rc = 1;
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
	if ((path = ixn_target_path(pos, npos)) == NULL)
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
	ROW("Source:", ixn_jstr(j, "SourceName"));
	ROW("Destination:", ixn_jstr(j, "DestinationName"));
	ROW("Action:", ixn_jstr(j, "Action"));
	if (ixn_jstr(j, "ID")[0] != '\0')
		ROW("ID:", ixn_jstr(j, "ID"));
	if (ixn_jstr(j, "Description")[0] != '\0')
		ROW("Description:", ixn_jstr(j, "Description"));
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
			c2[1] = ixn_jstr(meta, keys[i]);
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
		row[0] = ixn_jstr(ixn, "ID");
		row[1] = ixn_jstr(ixn, "SourceName");
		row[2] = ixn_jstr(ixn, "Action");
		row[3] = ixn_jstr(ixn, "DestinationName");
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
	if (ixn_check_pair(pos[0], pos[1], 0) != 0)
		return 2;
	if ((path = ixn_pair_path("check", pos[0], pos[1])) == NULL)
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
		ixn_string(line, sizeof(line), ixn_jstr(ixn, "SourceName"),
		    ixn_jstr(ixn, "DestinationName"), ixn_jstr(ixn, "Action"));
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
