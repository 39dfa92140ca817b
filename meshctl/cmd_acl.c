/* cmd_acl: "meshctl acl token create|list|read|delete" and
 * "meshctl acl policy create|list|read|delete", as `consul acl` does for
 * the parts meshshim has. */
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

/* method path body: the reply JSON (200), NULL after printing
 * "Error <what>: <reason>". */
static json_t *
call(const char *method, const char *path, const char *body,
    const char *what)
{
	struct api_resp r;
	json_t *j = NULL;

	if (api_request(method, path, body, &r) != 0)
		return NULL;
	if (r.status != 200)
		fprintf(stderr, "Error %s: %s\n", what, api_errtext(&r));
	else
		j = api_json(&r, what);
	api_resp_free(&r);
	return j;
}

static void
token_print(const json_t *t)
{
	const json_t *v;
	size_t i;

	printf("AccessorID:       %s\n", jstr(t, "AccessorID"));
	printf("SecretID:         %s\n", jstr(t, "SecretID"));
	printf("Description:      %s\n", jstr(t, "Description"));
	printf("Local:            false\n");
	printf("Create Time:      %s\n", jstr(t, "CreateTime"));
	if (json_array_size(json_object_get(t, "Policies")) > 0) {
		printf("Policies:\n");
		json_array_foreach(json_object_get(t, "Policies"), i, v)
			printf("   %s - %s\n", jstr(v, "ID"), jstr(v, "Name"));
	}
	if (json_array_size(json_object_get(t, "ServiceIdentities")) > 0) {
		printf("Service Identities:\n");
		json_array_foreach(json_object_get(t, "ServiceIdentities"), i,
		    v)
			printf("   %s (Datacenters: all)\n",
			    jstr(v, "ServiceName"));
	}
}

static void
policy_print(const json_t *p)
{
	printf("ID:           %s\n", jstr(p, "ID"));
	printf("Name:         %s\n", jstr(p, "Name"));
	printf("Description:  %s\n", jstr(p, "Description"));
	printf("Datacenters:  \n");
	printf("Rules:\n%s\n", jstr(p, "Rules"));
}

/* An ID or name for a URL path: escaped. */
static char *
path_of(const char *fmt, const char *id)
{
	char *e = api_escape(id), *p = NULL;

	if (e == NULL || asprintf(&p, fmt, e) < 0)
		p = NULL;
	free(e);
	return p;
}

/* `read` or `delete` of the one token or policy at path; key names it,
 * kind is "token" or "policy", Kind the same capitalised. */
static int
read_or_delete(const char *kind, const char *Kind, const char *path,
    const char *key, int del, void (*print)(const json_t *))
{
	char what[64];
	json_t *j;

	snprintf(what, sizeof(what), "%s the %s", del ? "deleting" :
	    "reading", kind);
	if ((j = call(del ? "DELETE" : "GET", path, NULL, what)) == NULL)
		return 1;
	if (del)
		printf("%s \"%s\" deleted successfully\n", Kind, key);
	else
		print(j);
	json_decref(j);
	return 0;
}

/* ---- tokens --------------------------------------------------------------- */

static const char *t_desc, *t_id;
static struct flag_list t_pnames, t_pids, t_sids;
static int t_self;

static const struct flag tcreate_flags[] = {
	{ "description", FLAG_STRING, &t_desc, "<text>",
	    "A description of the token." },
	{ "policy-name", FLAG_LIST, &t_pnames, "<name>",
	    "Name of a policy to link to the token. May be repeated." },
	{ "policy-id", FLAG_LIST, &t_pids, "<id>",
	    "ID of a policy to link to the token. May be repeated." },
	{ "service-identity", FLAG_LIST, &t_sids, "<name>",
	    "A service identity: write on that service (register it, its "
	    "leaf key). May be repeated." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help tcreate_help = {
	"acl token create", "acl token create [options]",
	"Create a token linked to policies and service identities; prints "
	"it with its SecretID (the value for -token / X-Consul-Token).\n\n"
	"$ meshctl acl token create -description \"web deploy\" "
	"-service-identity web",
	tcreate_flags,
};

static int
token_create(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *body, *pols, *sids, *j;
	char *s;
	int npos, rc;

	if ((rc = flags_parse(&tcreate_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&tcreate_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if (t_pnames.n + t_pids.n + t_sids.n == 0)
		return flags_fail(&tcreate_help, "Give at least one "
		    "-policy-name, -policy-id or -service-identity");
	pols = json_array();
	sids = json_array();
	for (size_t i = 0; i < t_pnames.n; i++)
		json_array_append_new(pols, json_pack("{s:s}", "Name",
		    t_pnames.v[i]));
	for (size_t i = 0; i < t_pids.n; i++)
		json_array_append_new(pols, json_pack("{s:s}", "ID",
		    t_pids.v[i]));
	for (size_t i = 0; i < t_sids.n; i++) {
		if (!mc_valid_name(t_sids.v[i], 0))
			return flags_fail(&tcreate_help, "Invalid service "
			    "name \"%s\"", t_sids.v[i]);
		json_array_append_new(sids, json_pack("{s:s}", "ServiceName",
		    t_sids.v[i]));
	}
	body = json_pack("{s:s, s:o, s:o}", "Description", t_desc != NULL ?
	    t_desc : "", "Policies", pols, "ServiceIdentities", sids);
	s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (s == NULL)
		return 1;
	j = call("PUT", "/v1/acl/token", s, "creating the token");
	free(s);
	if (j == NULL)
		return 1;
	token_print(j);
	json_decref(j);
	return 0;
}

static const struct flag tlist_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help tlist_help = {
	"acl token list", "acl token list [options]",
	"List the tokens (their SecretIDs are not shown).", tlist_flags,
};

static int
token_list(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *j, *t;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&tlist_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&tlist_help, "Too many arguments");
	if ((j = call("GET", "/v1/acl/tokens", NULL, "listing tokens")) ==
	    NULL)
		return 1;
	json_array_foreach(j, i, t) {
		if (i > 0)
			printf("\n");
		token_print(t);
	}
	json_decref(j);
	return 0;
}

static const struct flag tread_flags[] = {
	{ "id", FLAG_STRING, &t_id, "<AccessorID>", "The token to read." },
	{ "self", FLAG_BOOL, &t_self, NULL,
	    "Read the token this command uses (-token)." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help tread_help = {
	"acl token read", "acl token read -id <AccessorID> | -self [options]",
	"Show one token, with its SecretID.", tread_flags,
};

static const struct flag tdelete_flags[] = {
	{ "id", FLAG_STRING, &t_id, "<AccessorID>", "The token to delete." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help tdelete_help = {
	"acl token delete", "acl token delete -id <AccessorID> [options]",
	"Delete a token (not the last management token).", tdelete_flags,
};

static int
token_one(int argc, char **argv, int del)
{
	const struct cmd_help *h = del ? &tdelete_help : &tread_help;
	const char *pos[argc + 1];
	char *path;
	int npos, rc;

	if ((rc = flags_parse(h, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(h, "Too many arguments");
	if (!del && t_self)
		t_id = "self";
	if (t_id == NULL || t_id[0] == '\0')
		return flags_fail(h, "Missing required -id");
	if ((path = path_of("/v1/acl/token/%s", t_id)) == NULL)
		return 1;
	rc = read_or_delete("token", "Token", path, t_id, del, token_print);
	free(path);
	return rc;
}

static int
token_read(int argc, char **argv)
{
	return token_one(argc, argv, 0);
}

static int
token_delete(int argc, char **argv)
{
	return token_one(argc, argv, 1);
}

/* ---- policies ------------------------------------------------------------- */

static const char *p_name, *p_desc, *p_rules, *p_id;

static const struct flag pcreate_flags[] = {
	{ "name", FLAG_STRING, &p_name, "<name>", "The policy's name." },
	{ "description", FLAG_STRING, &p_desc, "<text>",
	    "A description of the policy." },
	{ "rules", FLAG_STRING, &p_rules, "<rules>",
	    "The rules (HCL or JSON); @FILE reads them from FILE, - from "
	    "stdin. meshshim knows service, service_prefix (policy, "
	    "intentions), operator and acl." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help pcreate_help = {
	"acl policy create", "acl policy create -name <name> -rules <rules> "
	"[options]",
	"Create a policy.\n\n"
	"$ meshctl acl policy create -name web-ops -rules "
	"'service \"web\" { policy = \"write\" intentions = \"write\" }'",
	pcreate_flags,
};

static char *
rules_text(const char *arg)
{
	FILE *f = NULL;
	char *buf;
	size_t n;

	if (arg[0] != '@' && strcmp(arg, "-") != 0)
		return strdup(arg);
	f = strcmp(arg, "-") == 0 ? stdin : fopen(arg + 1, "r");
	if (f == NULL) {
		fprintf(stderr, "Error: cannot read %s\n", arg + 1);
		return NULL;
	}
	if ((buf = calloc(1, 64 * 1024 + 1)) != NULL) {
		n = fread(buf, 1, 64 * 1024, f);
		buf[n] = '\0';
		if (!feof(f)) {
			fprintf(stderr, "Error: rules over 64 KiB\n");
			free(buf);
			buf = NULL;
		}
	}
	if (f != stdin)
		fclose(f);
	return buf;
}

static int
policy_create(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *body, *j;
	char *rules, *s;
	int npos, rc;

	if ((rc = flags_parse(&pcreate_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&pcreate_help, "Too many arguments");
	if (p_name == NULL || p_rules == NULL)
		return flags_fail(&pcreate_help, "Missing required -name or "
		    "-rules");
	if ((rules = rules_text(p_rules)) == NULL)
		return 1;
	body = json_pack("{s:s, s:s, s:s}", "Name", p_name, "Description",
	    p_desc != NULL ? p_desc : "", "Rules", rules);
	free(rules);
	s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (s == NULL) {
		fprintf(stderr, "Error: the rules are not valid UTF-8\n");
		return 1;
	}
	j = call("PUT", "/v1/acl/policy", s, "creating the policy");
	free(s);
	if (j == NULL)
		return 1;
	policy_print(j);
	json_decref(j);
	return 0;
}

static const struct cmd_help plist_help = {
	"acl policy list", "acl policy list [options]",
	"List the policies.", tlist_flags,
};

static int
policy_list(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *j, *p;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&plist_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&plist_help, "Too many arguments");
	if ((j = call("GET", "/v1/acl/policies", NULL, "listing policies")) ==
	    NULL)
		return 1;
	json_array_foreach(j, i, p) {
		printf("%s:\n", jstr(p, "Name"));
		printf("   ID:           %s\n", jstr(p, "ID"));
		printf("   Description:  %s\n", jstr(p, "Description"));
	}
	json_decref(j);
	return 0;
}

static const struct flag pone_flags[] = {
	{ "id", FLAG_STRING, &p_id, "<id>", "The policy's ID." },
	{ "name", FLAG_STRING, &p_name, "<name>", "The policy's name." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help pread_help = {
	"acl policy read", "acl policy read -id <id> | -name <name> [options]",
	"Show one policy with its rules.", pone_flags,
};

static const struct cmd_help pdelete_help = {
	"acl policy delete", "acl policy delete -id <id> | -name <name> "
	"[options]",
	"Delete a policy; tokens linked to it lose what it granted.",
	pone_flags,
};

static int
policy_one(int argc, char **argv, int del)
{
	const struct cmd_help *h = del ? &pdelete_help : &pread_help;
	const char *pos[argc + 1], *key;
	char *path;
	int npos, rc;

	if ((rc = flags_parse(h, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(h, "Too many arguments");
	key = p_id != NULL ? p_id : p_name;
	if (key == NULL || key[0] == '\0')
		return flags_fail(h, "Missing required -id or -name");
	if ((path = path_of(p_id != NULL ? "/v1/acl/policy/%s" :
	    "/v1/acl/policy/name/%s", key)) == NULL)
		return 1;
	rc = read_or_delete("policy", "Policy", path, key, del, policy_print);
	free(path);
	return rc;
}

static int
policy_read(int argc, char **argv)
{
	return policy_one(argc, argv, 0);
}

static int
policy_delete(int argc, char **argv)
{
	return policy_one(argc, argv, 1);
}

/* ---- groups --------------------------------------------------------------- */

static const struct subcmd token_cmds[] = {
	{ "create", token_create, "Create a token" },
	{ "list", token_list, "List tokens" },
	{ "read", token_read, "Read a token" },
	{ "delete", token_delete, "Delete a token" },
};

static const struct subcmd policy_cmds[] = {
	{ "create", policy_create, "Create a policy" },
	{ "list", policy_list, "List policies" },
	{ "read", policy_read, "Read a policy" },
	{ "delete", policy_delete, "Delete a policy" },
};

static int
acl_token(int argc, char **argv)
{
	return mc_dispatch("acl token", "Manage ACL tokens.\n\n"
	    "$ meshctl acl token create -service-identity web",
	    token_cmds, UTIL_ARRAY_LEN(token_cmds), argc, argv);
}

static int
acl_policy(int argc, char **argv)
{
	return mc_dispatch("acl policy", "Manage ACL policies.\n\n"
	    "$ meshctl acl policy create -name ops -rules 'operator = "
	    "\"write\"'",
	    policy_cmds, UTIL_ARRAY_LEN(policy_cmds), argc, argv);
}

static const struct subcmd acl_cmds[] = {
	{ "token", acl_token, "Manage tokens" },
	{ "policy", acl_policy, "Manage policies" },
};

int
cmd_acl(int argc, char **argv)
{
	return mc_dispatch("acl", "Manage the ACL tokens and policies that "
	    "say who may change the mesh through helperd's HTTP API.\n\n"
	    "On the host, root needs no token: meshctl uses helperd's unix "
	    "socket.",
	    acl_cmds, UTIL_ARRAY_LEN(acl_cmds), argc, argv);
}
