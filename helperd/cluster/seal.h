/* seal: a secret sealed for the cluster store, readable only by holders
 * of a passphrase (ca.secret: the CA servers' own, not join_token, which
 * CA clients hold too).
 *
 * key = HKDF-SHA256(ikm = passphrase, salt = "meshshim seal v1",
 * info = purpose), AES-256-GCM with a random 96-bit nonce and the store
 * key the box lives under as additional data (a box copied to another
 * key does not open). Box: {"v":1,"alg":"HKDF-SHA256/AES-256-GCM",
 * "nonce":b64,"ct":b64(ciphertext||tag)}. HKDF does not slow down
 * guessing: the passphrase must be random (conf enforces >= 32
 * characters). */
#ifndef MESH_SEAL_H
#define MESH_SEAL_H

#include <stddef.h>

/* The box (JSON text, malloc'd) of plain, or NULL with err. */
char *seal_box(const char *pass, const char *purpose, const char *aad,
    const void *plain, size_t len, char *err, size_t errlen);
/* What box holds (malloc'd, NUL-terminated, *len bytes; wipe it after
 * use), or NULL with err (not a box, wrong passphrase, altered). */
char *seal_open(const char *pass, const char *purpose, const char *aad,
    const char *box, size_t *len, char *err, size_t errlen);

#endif
