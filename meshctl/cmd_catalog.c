/* cmd_catalog: "meshctl catalog services|nodes". */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* GET path, 200 + JSON expected; NULL after printing the error. */
static json_t *
get_json(const char *path, const char *what)
{
	struct api_resp r;
	json_t *j = NULL;

	if (api_request("GET", path, NULL, &r) != 0)
		return NULL;
	if (r.status != 200)
		fprintf(stderr, "Error %s: %s\n", what, api_errtext(&r));
	else
		j = api_json(&r, what);
	api_resp_free(&r);
	return j;
}

/* ---- services ---- */

static int s_tags;

static const struct flag services_flags[] = {
	{ "tags", FLAG_BOOL, &s_tags, NULL,
	    "Display each service's tags as a comma-separated list beside "
	    "its name." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help services_help = {
	"catalog services",
	"catalog services [options]",
	"List the services registered in the catalog, one name per line, "
	"sorted.\n\n"
	"$ meshctl catalog services -tags",
	services_flags,
};

static int
catalog_services(int argc, char **argv)
{
	const char *pos[argc + 1], **names = NULL, *k;
	struct table *t = NULL;
	json_t *j, *v;
	size_t n = 0;
	int npos, rc;

	if ((rc = flags_parse(&services_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&services_help, "Too many arguments "
		    "(expected 0, got %d)", npos);
	if ((j = get_json("/v1/catalog/services", "listing services")) ==
	    NULL)
		return 1;
	rc = 1;
	if (!json_is_object(j)) {
		fprintf(stderr, "Error listing services: unexpected "
		    "response\n");
		goto out;
	}
	if (json_object_size(j) == 0) {
		fprintf(stderr, "No services match the given query - try "
		    "expanding your search.\n");
		rc = 0;
		goto out;
	}
	if ((names = calloc(json_object_size(j), sizeof(*names))) == NULL ||
	    (t = table_new(2)) == NULL)
		goto out;
	json_object_foreach(j, k, v)
		names[n++] = k;
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char tags[4096] = "";
		size_t ti, len = 0;
		json_t *tag;
		const char *row[2];

		if (!s_tags) {
			printf("%s\n", names[i]);
			continue;
		}
		json_array_foreach(json_object_get(j, names[i]), ti, tag) {
			const char *ts = json_string_value(tag);
			if (ts == NULL)
				continue;
			len += (size_t)snprintf(tags + len, sizeof(tags) - len,
			    "%s%s", len ? "," : "", ts);
			if (len >= sizeof(tags))
				break;
		}
		row[0] = names[i];
		row[1] = tags;
		if (table_add(t, row) != 0)
			goto out;
	}
	if (s_tags)
		table_print(t);
	rc = 0;
out:
	table_free(t);
	free(names);
	json_decref(j);
	return rc;
}

/* ---- nodes ---- */

static const char *n_service;

static const struct flag nodes_flags[] = {
	{ "service", FLAG_STRING, &n_service, "<name>",
	    "Only list the nodes that provide this service." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help nodes_help = {
	"catalog nodes",
	"catalog nodes [options]",
	"List the nodes of the catalog with their address and datacenter.\n\n"
	"$ meshctl catalog nodes -service socat",
	nodes_flags,
};

static int
catalog_nodes(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct table *t = NULL;
	char *path = NULL;
	json_t *j, *node;
	size_t i;
	int npos, rc, has_id = 0;

	if ((rc = flags_parse(&nodes_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&nodes_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if (n_service != NULL) {
		if (!mc_valid_name(n_service, 0)) {
			fprintf(stderr, "Error: invalid service name \"%s\": "
			    "expected 1 to %d characters of [A-Za-z0-9_-]\n",
			    n_service, MC_NAME_MAX);
			return 1;
		}
		if (asprintf(&path, "/v1/catalog/service/%s", n_service) < 0)
			return 1;
	}
	j = get_json(path != NULL ? path : "/v1/catalog/nodes",
	    "listing nodes");
	free(path);
	if (j == NULL)
		return 1;
	rc = 1;
	if (!json_is_array(j)) {
		fprintf(stderr, "Error listing nodes: unexpected response\n");
		goto out;
	}
	if (json_array_size(j) == 0) {
		fprintf(stderr, "No nodes match the given query - try "
		    "expanding your search.\n");
		rc = 0;
		goto out;
	}
	json_array_foreach(j, i, node)
		if (jstr(node, "ID")[0] != '\0')
			has_id = 1;
	if ((t = table_new(has_id ? 4 : 3)) == NULL)
		goto out;
	{
		const char *h4[] = { "Node", "ID", "Address", "DC" };
		const char *h3[] = { "Node", "Address", "DC" };
		if (table_add(t, has_id ? h4 : h3) != 0)
			goto out;
	}
	json_array_foreach(j, i, node) {
		char id[9];
		const char *row[4];
		size_t c = 0;
		/* one row per node, even if it runs several instances */
		if (n_service != NULL && i > 0) {
			size_t k;
			json_t *prev;
			int dup = 0;
			json_array_foreach(j, k, prev) {
				if (k >= i)
					break;
				if (strcmp(jstr(prev, "Node"),
				    jstr(node, "Node")) == 0)
					dup = 1;
			}
			if (dup)
				continue;
		}
		util_strlcpy(id, jstr(node, "ID"), sizeof(id));
		row[c++] = jstr(node, "Node");
		if (has_id)
			row[c++] = id;
		row[c++] = jstr(node, "Address");
		row[c++] = jstr(node, "Datacenter");
		if (table_add(t, row) != 0)
			goto out;
	}
	table_print(t);
	rc = 0;
out:
	table_free(t);
	json_decref(j);
	return rc;
}

static const struct subcmd catalog_cmds[] = {
	{ "nodes", catalog_nodes, "List all nodes in the catalog" },
	{ "services", catalog_services, "List all registered services" },
};

int
cmd_catalog(int argc, char **argv)
{
	return mc_dispatch("catalog", "Query the catalog of nodes and "
	    "services.\n\n"
	    "$ meshctl catalog services",
	    catalog_cmds, UTIL_ARRAY_LEN(catalog_cmds), argc, argv);
}
