/* meshctl: shared declarations of the command-line client.
 *
 * Commands take Consul-style flags ("-name", "-name=value", "-name value";
 * the "--name" spelling works too). Each command is one function taking
 * the arguments after its own name and returning the process exit code. */
#ifndef MESHCTL_H
#define MESHCTL_H

#include <stddef.h>

#include "config.h"

#define MESHCTL_VERSION MESHSHIM_VERSION  /* meson.build: project version */
#define MC_LIST_MAX 64          /* values of a repeatable flag */
#define MC_NAME_MAX 63          /* service name length */

enum flag_type {
	FLAG_BOOL,                  /* int *: set to 1 (or -x=false: 0) */
	FLAG_STRING,                /* const char **: last one wins */
	FLAG_LIST,                  /* struct flag_list *: repeatable */
};

struct flag_list {
	const char *v[MC_LIST_MAX];
	size_t n;
};

struct flag {
	const char *name;           /* without dashes */
	enum flag_type type;
	void *ptr;
	const char *arg;            /* placeholder for help, e.g. "<addr>" */
	const char *help;
};

/* The flags every API command accepts (-http-addr, -token, -token-file);
 * their values. */
extern const char *mc_http_addr, *mc_token, *mc_token_file;
#define FLAG_HTTP_ADDR { "http-addr", FLAG_STRING, &mc_http_addr, "<addr>", \
	"Address of helperd's HTTP API (host:port, http://host:port or " \
	"unix:///path). Also $MESH_HTTP_ADDR [127.0.0.1:8500]." }, \
	{ "token", FLAG_STRING, &mc_token, "<value>", \
	"ACL token to use in the request. Also $MESH_HTTP_TOKEN or " \
	"$CONSUL_HTTP_TOKEN. Without a token, meshctl uses helperd's unix " \
	"socket when it can: there root acts as management and a user for " \
	"the services whose user it is." }, \
	{ "token-file", FLAG_STRING, &mc_token_file, "<path>", \
	"File holding the ACL token (e.g. <data_dir>/management.token). " \
	"Also $MESH_HTTP_TOKEN_FILE or $CONSUL_HTTP_TOKEN_FILE." }
/* 1 if name is one of the flags above. */
int mc_is_http_flag(const char *name);

struct cmd_help {
	const char *name;           /* "intention create" */
	const char *usage;          /* lines after "Usage: meshctl " */
	const char *synopsis;       /* paragraph(s) under the usage */
	const struct flag *flags;   /* NULL-name terminated, may be NULL */
};

/* Parse argv (after the command name) against h->flags; flags and
 * positional arguments may be mixed, "--" ends the flags. Positional
 * arguments are stored in pos (room for argc entries) and counted in npos.
 * Returns 0 ok, 1 help was printed (exit 0), -1 error printed with the
 * usage (exit 1). */
int flags_parse(const struct cmd_help *h, int argc, char **argv,
    const char **pos, int *npos);

/* Print the help of h to stdout (to_err: stderr). */
void flags_usage(const struct cmd_help *h, int to_err);

/* Report a usage error: "msg" then the usage on stderr. Returns 1. */
int flags_fail(const struct cmd_help *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Service names: 1..63 of [A-Za-z0-9_-], starting with a letter or digit.
 * allow_wild: "*" is also accepted (intentions). 1 if valid. */
int mc_valid_name(const char *s, int allow_wild);

/* Aligned table (columnize): cells separated by two spaces, the last
 * column not padded. */
struct table;
struct table *table_new(size_t ncols);
/* Append a row of ncols strings (copied). 0/-1. */
int table_add(struct table *t, const char *const *cells);
void table_print(const struct table *t);
void table_free(struct table *t);

/* Subcommand groups ("meshctl intention <sub>"). */
struct subcmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *synopsis;
};

/* Run the subcommand named argv[0] of group; with none or -h, print the
 * list (stdout, 0); unknown: message and list on stderr, 1. */
int mc_dispatch(const char *group, const char *synopsis,
    const struct subcmd *subs, size_t n, int argc, char **argv);

/* Commands. */
int cmd_reload(int argc, char **argv);
int cmd_acl(int argc, char **argv);
int cmd_intention(int argc, char **argv);
int cmd_catalog(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_systemd(int argc, char **argv);
int cmd_conns(int argc, char **argv);
int cmd_conn(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_members(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_monitor(int argc, char **argv);

#endif
