/* ca_share: a CA server's root material (meta.json, roots/<n>.pem and
 * .key, cross/<n>.pem; never leaf/) as one JSON document {"<file>":
 * "<text>", ...}, so that the CA servers of a cluster share one CA
 * through the store (sealed: seal.h), and back into a CA directory. */
#ifndef MESH_CA_SHARE_H
#define MESH_CA_SHARE_H

#include <stddef.h>

/* The document of the CA directory dir (malloc'd; it holds root keys:
 * wipe it after use), or NULL with err. */
char *ca_share_export(const char *dir, char *err, size_t errlen);
/* Write doc's files into the CA directory dir (created if needed; its
 * leaf/ is kept), meta.json last. Only the names above are accepted.
 * 0/-1 with err. */
int ca_share_import(const char *dir, const char *doc, char *err,
    size_t errlen);
/* Trust domain and next_root of doc, or (doc NULL) of dir/meta.json.
 * 0, or -1 when there is none. */
int ca_share_info(const char *doc, const char *dir, char *td, size_t tdlen,
    long *next_root);

#endif
