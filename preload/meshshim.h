/* meshshim.h: the API libmeshshim.so offers to mesh-aware programs.
 *
 * A program that is run with LD_PRELOAD=libmeshshim.so and MESH_SERVICE=<its
 * service> may ask who is on the other end of a connection that reached it
 * through the mesh. Look the function up at run time so the program also
 * runs without the shim:
 *
 *     int (*peer_id)(int, char *, size_t) =
 *         (int (*)(int, char *, size_t))dlsym(RTLD_DEFAULT, "meshshim_peer_id");
 *     char id[256];
 *     if (peer_id != NULL && peer_id(fd, id, sizeof(id)) == 0)
 *         printf("caller: %s\n", id);
 *
 * or link with -lmeshshim and declare it from this header. */
#ifndef MESHSHIM_H
#define MESHSHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For a socket returned by accept()/accept4() whose connection came
 * through the mesh, copy the caller's SPIFFE ID (e.g.
 * "spiffe://<cluster>.mesh/ns/default/dc/dc1/svc/web") with its NUL into
 * buf. Returns 0; or -1 with errno: ENOENT (not a mesh connection, not an
 * accepted socket, shim inactive), ERANGE (len too small; 256 always
 * suffices), EINVAL (buf NULL or len 0). Thread-safe; dup'ed fds answer
 * too. */
int meshshim_peer_id(int fd, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
