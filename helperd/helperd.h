/* helperd: the state of one node's daemon, shared by its modules. One
 * thread runs the event loop; every module below is called from it. */
#ifndef MESH_HELPERD_H
#define MESH_HELPERD_H

#include <stddef.h>
#include "conf/conf.h"

struct ca;
struct ca_leaf;
struct intent_db;
struct catalog;
struct loop;
struct http_server;
struct ctl_server;
struct relay;

struct helperd {
	struct conf conf;
	struct loop *loop;
	struct ca *ca;
	struct intent_db *intents;
	struct catalog *catalog;
	struct http_server *http;
	struct ctl_server *ctl;
	struct relay *relay;
	char http_bound[CONF_ADDR_MAX];
	int mesh_port_bound;
	int outbound_port;              /* loopback port shims connect to */
	int stopping;
};

/* Called after any intention change (API, reload): every open connection
 * whose pair is now denied is closed, with a log line per connection. */
void helperd_intentions_changed(struct helperd *h, const char *why);

/* Re-read the services (mesh.conf + services_dir) and default_intention.
 * A failed reload keeps the running configuration. 0/-1 with err. */
int helperd_reload(struct helperd *h, char *err, size_t errlen);

/* The current leaf of a local (or ad-hoc) service, issuing one if needed.
 * Borrowed reference, valid until the next loop iteration. */
struct ca_leaf *helperd_leaf(struct helperd *h, const char *service,
    char *err, size_t errlen);

/* Root rotation requested by the API/CLI: rotate, re-issue every leaf. */
int helperd_ca_rotate(struct helperd *h, char *err, size_t errlen);

#endif
