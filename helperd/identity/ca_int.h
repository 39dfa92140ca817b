/* ca_int.h: what the CA's files share and nobody else sees (ca.h is the
 * interface). ca.c: the directory, meta.json, loading, open/free;
 * ca_roots.c: making roots, rotation, pruning, the roots' JSON;
 * ca_leaf.c: issuing, loading and caching leaves, verifying peers;
 * ca_remote.c: CA clients (no root key) and the servers that sign for
 * them. */
#ifndef MESH_CA_INT_H
#define MESH_CA_INT_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>

#include "helperd/identity/ca.h"
#include "helperd/model/cert.h"


#define CA_META_VERSION 1
#define CA_PEM_MAX      (64 * 1024)
#define CA_META_MAX     (1024 * 1024)
#define CA_ROOTS_MAX    64
#define CA_BACKDATE     60      /* seconds of clock skew tolerated */

struct ca_root {
	unsigned n;
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char *pem;
	char *cross_pem;        /* this root signed by root cross_by */
	unsigned cross_by;      /* 0 = none */
	char id[128];           /* SHA-1 fingerprint, "aa:bb:..." */
	char key_id[128];       /* subject key ID, "aa:bb:..." */
	int64_t serial_num;     /* low 63 bits of the serial, for the API */
	int64_t not_before;
	int64_t not_after;
	int64_t leaves_until;   /* latest not_after of a leaf it signed */
	int64_t create_index;
	int64_t modify_index;
};

struct ca {
	char dir[PATH_MAX - 64];
	char td[128];
	long root_ttl;
	struct ca_root *roots;  /* ascending n */
	size_t n_roots;
	unsigned active;        /* n of the active root */
	unsigned next_root;     /* n of the next root; never reused */
	int64_t index;          /* CreateIndex/ModifyIndex counter */
	gnutls_x509_trust_list_t tl;
	uint64_t gen;           /* bumped by every new trust list */
	struct ca_leaf **leaves; /* current leaf per service (one ref each) */
	size_t n_leaves;
	int client;             /* no root key: leaves come from a server */
};

/* ca.c */
int ca_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ca_path(const struct ca *ca, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ca_root_clear(struct ca_root *r);
struct ca_root *ca_root_find(const struct ca *ca, unsigned n);
struct ca_root *ca_root_active(const struct ca *ca);
int ca_root_derive(struct ca_root *r);
int ca_rebuild_trust(struct ca *ca, char *err, size_t errlen);
int ca_meta_save(struct ca *ca, char *err, size_t errlen);
char *ca_read_pem(const char *path, char *err, size_t errlen);
int ca_import_crt(const char *path, const char *pem, gnutls_x509_crt_t *out,
    char *err, size_t errlen);
int ca_import_key(const char *path, const char *pem,
    gnutls_x509_privkey_t *out, char *err, size_t errlen);
int ca_key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key);
int ca_dir_has_entries(const char *path);

/* ca_roots.c */
int ca_root_make(struct ca *ca, struct ca_root *r, const struct ca_root *prev,
    char *err, size_t errlen);
int ca_root_write(struct ca *ca, const struct ca_root *r, char *err,
    size_t errlen);
json_t *ca_json_time(int64_t t);

/* ca_leaf.c */
struct ca_root *ca_root_of_leaf(const struct ca *ca, gnutls_x509_crt_t crt);
struct ca_leaf *ca_leaf_build(struct ca *ca, gnutls_x509_crt_t crt,
    const char *key_pem, const struct ca_root *root, const char *service,
    char *err, size_t errlen);
void ca_cache_put(struct ca *ca, struct ca_leaf *leaf);
int ca_check_names(const char *dc, const char *service, char *err,
    size_t errlen);
void ca_leaf_store(struct ca *ca, const char *service, const char *key_pem,
    const char *cert_pem);
void ca_leaf_spec(struct cert_spec *spec, char *dn, size_t dnlen,
    const char **uris, const char *service, int64_t now, long ttl,
    const struct ca_root *root);

#endif
