/* meshctl: command-line client of helperd (dispatch, global flags, help). */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *synopsis;
};

static int cmd_version(int argc, char **argv);

static const struct command commands[] = {
	{ "acl", cmd_acl, "Manage ACL tokens and policies" },
	{ "ca", cmd_ca, "Interact with the mesh certificate authority" },
	{ "catalog", cmd_catalog, "Interact with the catalog" },
	{ "conn", cmd_conn, "Act on one relayed connection (kill)" },
	{ "connect", cmd_connect, "Interact with the mesh (local proxy)" },
	{ "conns", cmd_conns, "List the connections this node relays" },
	{ "info", cmd_info, "Provides debugging information for operators" },
	{ "intention", cmd_intention, "Interact with service intentions" },
	{ "members", cmd_members, "Lists the members of the mesh" },
	{ "monitor", cmd_monitor, "Stream logs from helperd" },
	{ "reload", cmd_reload, "Triggers helperd to reload configuration "
	    "files" },
	{ "systemd", cmd_systemd, "Put systemd services in the mesh "
	    "(drop-ins)" },
	{ "top", cmd_top, "Live view of the busiest connections" },
	{ "version", cmd_version, "Prints the meshctl version" },
};

static void
usage(FILE *f)
{
	fprintf(f, "Usage: meshctl [-http-addr=<addr>] [-token=<value>] "
	    "[-token-file=<path>] [-version] [-help] "
	    "<command> [<args>]\n\nAvailable commands are:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "    %-12s%s\n", commands[i].name,
		    commands[i].synopsis);
	fprintf(f, "\nRun \"meshctl <command> -help\" for a command's "
	    "options; the manual is meshctl(1).\n");
}

static int
cmd_version(int argc, char **argv)
{
	(void)argv;
	if (argc > 0 && strcmp(argv[0], "-h") != 0 &&
	    strcmp(argv[0], "-help") != 0 && strcmp(argv[0], "--help") != 0) {
		fprintf(stderr, "This command takes no arguments\n");
		return 1;
	}
	printf("meshctl v%s\n", MESHCTL_VERSION);
	return 0;
}

static const struct flag reload_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help reload_help = {
	"reload", "reload [options]",
	"Causes helperd to reload its configuration: the service definitions "
	"of mesh.conf and services_dir are read again. This does the same "
	"as sending SIGHUP to helperd. A configuration that fails to load "
	"leaves the running one in place and the error is reported here "
	"(exit 1). What the reload could not apply (a key such as mesh_port "
	"that needs a restart, a skipped *.hcl file) is printed as "
	"\"Warning: ...\" lines on stderr (exit 0).",
	reload_flags,
};

int
cmd_reload(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	int npos, rc;

	if ((rc = flags_parse(&reload_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&reload_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if (api_request("PUT", "/v1/agent/reload", NULL, &r) != 0)
		return 1;
	if (r.status != 200) {
		fprintf(stderr, "Error reloading: %s\n", api_errtext(&r));
		api_resp_free(&r);
		return 1;
	}
	printf("Configuration reload triggered\n");
	/* helperd's reply names what it did not apply (a key that needs a
	 * restart, a skipped file): one warning per line, on stderr. */
	for (char *p = r.body, *nl; p != NULL && *p != '\0'; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		else
			nl = p + strlen(p);
		if (*p != '\0')
			fprintf(stderr, "Warning: %s\n", p);
	}
	api_resp_free(&r);
	return 0;
}

int
main(int argc, char **argv)
{
	int i = 1, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Global flags before the command. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);

		if (strcmp(a, "h") == 0 || strcmp(a, "help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "v") == 0 || strcmp(a, "version") == 0)
			return cmd_version(0, NULL);
		if (strncmp(a, "http-addr=", 10) == 0) {
			mc_http_addr = a + 10;
		} else if (strcmp(a, "http-addr") == 0 && i + 1 < argc) {
			mc_http_addr = argv[++i];
		} else if (strncmp(a, "token=", 6) == 0) {
			mc_token = a + 6;
		} else if (strcmp(a, "token") == 0 && i + 1 < argc) {
			mc_token = argv[++i];
		} else if (strncmp(a, "token-file=", 11) == 0) {
			mc_token_file = a + 11;
		} else if (strcmp(a, "token-file") == 0 && i + 1 < argc) {
			mc_token_file = argv[++i];
		} else {
			fprintf(stderr, "flag provided but not defined: %s\n\n",
			    argv[i]);
			usage(stderr);
			return 1;
		}
		i++;
	}
	if (i >= argc) {
		usage(stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			rc = commands[k].run(argc - i - 1, argv + i + 1);
			api_cleanup();
			fflush(stdout);
			return rc;
		}
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "meshctl: unknown command \"%s\"\n\n", argv[i]);
	usage(stderr);
	return 1;
}
