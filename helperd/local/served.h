/* served: loopback addresses that helperd serves for the mesh services,
 * for programs the shim cannot reach (static binaries, setuid programs,
 * raw syscalls).
 *
 * Every service in the catalog gets an address in served_addrs
 * [127.78.0.0/16], kept in data_dir/served.json so that it stays the same
 * across restarts (a new service: a hash of its name, the next free
 * address on a collision). helperd listens on that address on
 *   - every local_bind_port that a local service's upstream names for it,
 *   - the service's own port, when no instance of it runs on this node
 *     and no local service uses that port (a local application listening
 *     on 0.0.0.0:port would collide with any address:port).
 * A connection there is relayed into the mesh as a shim connection is;
 * its source service comes from the connecting socket's owner: a local
 * service whose "unit" is the process's systemd unit and/or whose "user"
 * is its uid. No match: refused under default_intention = "deny" (logged
 * with pid, uid and unit); under "allow" it goes as "uid-<uid>". */
#ifndef MESH_SERVED_H
#define MESH_SERVED_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct loop;
struct catalog;
struct intent_db;
struct relay;
struct served;

/* What served needs from the node, set at served_new (copied). Each
 * handle outlives the module (the node frees served before them). Used
 * on the loop thread only. */
struct served_env {
	const struct conf *conf;        /* the node's running config:
	                                   served_addrs, data_dir (fixed
	                                   while it runs); default_allow read
	                                   at each connection (a reload
	                                   changes it in place, loop thread) */
	struct loop *loop;              /* listeners, the retry timer */
	struct catalog *catalog;        /* the services to give addresses */
	const struct intent_db *intents; /* is a connection's pair allowed */
	struct relay *relay;            /* takes each accepted connection */
};

/* Load data_dir/served.json (a broken file is logged and replaced).
 * Nothing listens before served_sync. 0/-1 with err. */
int served_new(struct served **out, const struct served_env *env,
    char *err, size_t errlen);
void served_free(struct served *s);

/* The catalog changed (a reload, a registration, remote services coming
 * or going: cluster.c calls it): give new services an address, open and
 * close listeners. O(services + instances), hash lookups. Loop thread.
 * Arms its own timer only to retry a listener that could not bind (every
 * 10 s). */
void served_sync(struct served *s);

/* The address (host order) of service name (any case) and the port an
 * SRV answer gives (0: none listened): 1, or 0 when not a service. The
 * shape of dns_lookup_fn. */
int served_lookup(void *s, const char *name, uint32_t *addr, int *port);

#endif
