/* ctl: the control socket the shim (and `meshctl connect proxy`) talk to;
 * protocol in common/ctlproto.h. Each client's uid comes from SO_PEERCRED
 * and is checked against the service's "user" at HELLO. */
#ifndef MESH_CTL_H
#define MESH_CTL_H

#include <stddef.h>

struct helperd;
struct ctl_server;

/* Listen on the unix socket path (parent created 0755, socket 0666; a
 * stale socket is replaced, a live one is an error). 0/-1 with err. */
int ctl_start(struct ctl_server **out, struct helperd *h, const char *path,
    char *err, size_t errlen);
/* Close every client and the socket; unlink the path. */
void ctl_stop(struct ctl_server *s);

#endif
