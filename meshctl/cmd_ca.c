/* cmd_ca: "meshctl ca roots|rotate". */
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

static int r_pem;

static const struct flag roots_flags[] = {
	{ "pem", FLAG_BOOL, &r_pem, NULL,
	    "Also print each root certificate in PEM form." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help roots_help = {
	"ca roots",
	"ca roots [options]",
	"Show the mesh trust domain, the active root and every trusted root "
	"certificate (after a rotation the old root stays trusted until the "
	"leaves it signed have expired).\n\n"
	"$ meshctl ca roots -pem",
	roots_flags,
};

/* GET the roots; NULL after printing the error. */
static json_t *
fetch_roots(void)
{
	struct api_resp r;
	json_t *j = NULL;

	if (api_request("GET", "/v1/agent/connect/ca/roots", NULL, &r) != 0)
		return NULL;
	if (r.status != 200)
		fprintf(stderr, "Error reading CA roots: %s\n",
		    api_errtext(&r));
	else if ((j = api_json(&r, "reading CA roots")) != NULL &&
	    !json_is_object(j)) {
		fprintf(stderr, "Error reading CA roots: unexpected "
		    "response\n");
		json_decref(j);
		j = NULL;
	}
	api_resp_free(&r);
	return j;
}

static int
ca_roots(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *j, *roots, *root;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&roots_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&roots_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if ((j = fetch_roots()) == NULL)
		return 1;
	printf("Trust Domain:    %s\n", jstr(j, "TrustDomain"));
	printf("Active Root ID:  %s\n", jstr(j, "ActiveRootID"));
	roots = json_object_get(j, "Roots");
	json_array_foreach(roots, i, root) {
		json_t *act = json_object_get(root, "Active");
		printf("\nRoot %zu:\n", i + 1);
		printf("  ID:         %s\n", jstr(root, "ID"));
		if (jstr(root, "Name")[0] != '\0')
			printf("  Name:       %s\n", jstr(root, "Name"));
		printf("  Active:     %s\n", json_is_true(act) ? "true" :
		    "false");
		if (jstr(root, "NotBefore")[0] != '\0')
			printf("  NotBefore:  %s\n", jstr(root, "NotBefore"));
		printf("  NotAfter:   %s\n", jstr(root, "NotAfter"));
		if (r_pem) {
			const char *pem = jstr(root, "RootCert");
			size_t n = strlen(pem);
			printf("%s%s", pem, n > 0 && pem[n - 1] != '\n' ?
			    "\n" : "");
		}
	}
	if (json_array_size(roots) == 0)
		printf("\nNo roots.\n");
	json_decref(j);
	return 0;
}

static const struct flag rotate_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help rotate_help = {
	"ca rotate",
	"ca rotate [options]",
	"Create a new root and make it the active one. The new root is "
	"cross-signed by the old one and the leaves are re-issued, so open "
	"and new connections keep working during the change. Prints the new "
	"active root ID.",
	rotate_flags,
};

static int
ca_rotate(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	json_t *j = NULL;
	const char *id = "";
	int npos, rc;

	if ((rc = flags_parse(&rotate_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&rotate_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if (api_request("PUT", "/v1/connect/ca/rotate", NULL, &r) != 0)
		return 1;
	if (r.status < 200 || r.status >= 300) {
		fprintf(stderr, "Error rotating the CA root: %s\n",
		    api_errtext(&r));
		api_resp_free(&r);
		return 1;
	}
	/* The answer may carry the new root; otherwise ask for it. */
	j = json_loadb(r.body, r.len, 0, NULL);
	api_resp_free(&r);
	if (json_is_object(j))
		id = jstr(j, "ActiveRootID");
	if (id[0] == '\0') {
		json_decref(j);
		if ((j = fetch_roots()) == NULL)
			return 1;
		id = jstr(j, "ActiveRootID");
	}
	printf("CA root rotated. New active root ID: %s\n", id);
	json_decref(j);
	return 0;
}

static const struct subcmd ca_cmds[] = {
	{ "roots", ca_roots, "Show the trust domain and the root "
	    "certificates" },
	{ "rotate", ca_rotate, "Rotate to a new root certificate" },
};

int
cmd_ca(int argc, char **argv)
{
	return mc_dispatch("ca", "Inspect and rotate the mesh certificate "
	    "authority.\n\n"
	    "$ meshctl ca roots",
	    ca_cmds, UTIL_ARRAY_LEN(ca_cmds), argc, argv);
}
