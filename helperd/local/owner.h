/* owner: who is at the other end of a loopback TCP connection that
 * helperd accepted, for programs that connect without the shim: the
 * socket's uid (sock_diag), and on demand its process (socket inode ->
 * pid through /proc/<pid>/fd) and that process's systemd unit (from
 * /proc/<pid>/cgroup). Blocking, bounded calls for the main thread. */
#ifndef MESH_OWNER_H
#define MESH_OWNER_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conf/conf.h"

struct sockdiag;

struct owner {
	uid_t uid;
	unsigned long inode;            /* of the app's socket */
	pid_t pid;                      /* 0: not looked up / not found */
	char comm[32];                  /* the process's name, "" unknown */
	char unit[CONF_UNIT_MAX];       /* systemd unit, "" unknown/none */
};

/* The uid and socket inode of the socket at peer (the app's side, on
 * this host) connected to local (helperd's side). 0, or -1 with errno
 * (ENOENT: not a local socket, or gone). */
int owner_socket(struct sockdiag *sd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, struct owner *o);

/* Fill o->pid, o->comm and o->unit from o->inode: the process holding
 * the socket (processes of o->uid, and hint, are searched first). 0, or
 * -1 when no process holds it any more. */
int owner_process(struct owner *o, pid_t hint);

/* The systemd unit of pid from /proc/<pid>/cgroup: the deepest path
 * component ending in ".service" or ".scope" (the unified hierarchy or
 * the name=systemd one). 0, or -1 (none / unreadable). */
int owner_unit(pid_t pid, char *unit, size_t len);

/* What the access log and the connections API name a process by: its
 * systemd unit as owner_unit, else its cgroup path; "" when unreadable
 * (the process is gone). One open and read of /proc/<pid>/cgroup. */
void owner_unit_or_cgroup(pid_t pid, char *buf, size_t len);

#endif
