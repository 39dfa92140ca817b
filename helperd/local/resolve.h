/* resolve: host names of health checks resolved off the event loop, with
 * glibc's getaddrinfo_a (its own thread; nothing blocks the loop). The
 * loop polls a lookup from the check's timer; a lookup abandoned while glibc still
 * works on it is kept and freed when glibc is done (resolve_reap). Loop
 * thread only. */
#ifndef MESH_RESOLVE_H
#define MESH_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

struct resolve;

/* host:port into ss at once if host is an IP literal or "localhost"
 * (1), else 0 (a name: use resolve_start). */
int resolve_literal(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len);

/* Start looking up host (a DNS name) for TCP port. The lookup, or NULL
 * with why. */
struct resolve *resolve_start(const char *host, int port, char *why,
    size_t whylen);

/* 1: done, the first address in ss; 0: still running; -1: failed (why). */
int resolve_poll(struct resolve *r, struct sockaddr_storage *ss,
    socklen_t *len, char *why, size_t whylen);

/* Abandon (or free a finished) lookup. NULL is a no-op. */
void resolve_free(struct resolve *r);

/* Free the abandoned lookups glibc has finished; wait_ms > 0 (at exit):
 * wait up to that long for the others. How many are left. */
size_t resolve_reap(int wait_ms);

#endif
