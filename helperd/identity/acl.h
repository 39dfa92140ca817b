/* acl: who may do what through the HTTP API and the control socket.
 *
 * Consul's ACL shape, the parts meshshim has: tokens (AccessorID, SecretID,
 * Description) that link policies and service identities, policies whose
 * rules are a subset of Consul's (HCL or JSON):
 *
 *   service "web"        { policy = "write"  intentions = "write" }
 *   service_prefix ""    { policy = "read" }
 *   operator = "write"   # CA rotation, reload, TTL checks of any service
 *   acl = "write"        # token and policy management
 *
 * A token with the built-in policy "global-management" may do everything;
 * one is created at first start and its secret written to
 * <data_dir>/management.token (0600). Tokens and policies live in
 * <data_dir>/acl.json (0600, replaced atomically).
 *
 * A caller is a token (X-Consul-Token / Authorization: Bearer) and, on the
 * API's unix socket or the control socket, a uid: root acts as management,
 * another uid as the services whose `user` it is. */
#ifndef MESH_ACL_H
#define MESH_ACL_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

#include "conf/conf.h"

#define ACL_ID_LEN     36           /* a UUID */
#define ACL_MAX_TOKENS 4096
#define ACL_MAX_POLICIES 1024
#define ACL_RULES_MAX  (16 * 1024)  /* bytes of one policy's rules */
#define ACL_NOUID      ((uid_t)-1)

struct acl;
struct acl_token;

enum acl_level { ACL_UNSET = 0, ACL_DENY = 1, ACL_READ = 2, ACL_WRITE = 3 };

/* Who is calling: filled by the HTTP layer (or the control socket). */
struct acl_caller {
	const struct acl_token *token;  /* NULL: none or unknown */
	int bad_token;                  /* a token was given but is unknown */
	uid_t uid;                      /* ACL_NOUID: not known */
	int local;                      /* loopback or unix socket */
};

/* Open the store in data_dir (acl.json). enabled: create the management
 * token at first start (management.token, 0600, O_EXCL|O_NOFOLLOW);
 * initial_management (a UUID, or ""): also a management token with that
 * SecretID, as Consul's acl.tokens.initial_management.
 * Disabled (acl.enabled = false, -dev): every check passes. 0/-1. */
int acl_open(struct acl **out, const char *data_dir, int enabled,
    const char *initial_management, char *err, size_t errlen);
void acl_free(struct acl *a);
int acl_enabled(const struct acl *a);

/* The token whose SecretID is secret, or NULL. */
const struct acl_token *acl_token_by_secret(const struct acl *a,
    const char *secret);
/* Its AccessorID, for messages. */
const char *acl_token_accessor(const struct acl_token *t);

/* The grants. 1 allowed, 0 denied. svc: the local definition of the
 * service if there is one (its `user` grants its uid). */
int acl_is_management(const struct acl *a, const struct acl_caller *c);
int acl_service_write(const struct acl *a, const struct acl_caller *c,
    const char *name, const struct conf_service *svc);
int acl_intention_write(const struct acl *a, const struct acl_caller *c,
    const char *dest);
int acl_operator_write(const struct acl *a, const struct acl_caller *c);
int acl_acl_write(const struct acl *a, const struct acl_caller *c);
int acl_acl_read(const struct acl *a, const struct acl_caller *c);
/* The leaf (private key) of name: management, a token with write on the
 * service, or the uid its `user` names; never anyone else. */
int acl_leaf(const struct acl *a, const struct acl_caller *c,
    const char *name, const struct conf_service *svc);

/* Fill why with Consul's 403 text for a caller that lacks perm
 * ("service:write") on what (may be NULL). */
void acl_denied(const struct acl_caller *c, const char *perm,
    const char *what, char *why, size_t whylen);

/* The /v1/acl endpoints (management of tokens and policies). The JSON
 * shapes are Consul's. Each returns the reply (new reference) and sets
 * *status; on error the reply is NULL and why is set. */
json_t *acl_token_create(struct acl *a, json_t *body, unsigned *status,
    char *why, size_t whylen);
json_t *acl_token_list(const struct acl *a);
json_t *acl_token_read(const struct acl *a, const char *accessor,
    unsigned *status, char *why, size_t whylen);
json_t *acl_token_self(const struct acl *a, const struct acl_caller *c,
    unsigned *status, char *why, size_t whylen);
int acl_token_delete(struct acl *a, const char *accessor, unsigned *status,
    char *why, size_t whylen);
json_t *acl_policy_create(struct acl *a, json_t *body, unsigned *status,
    char *why, size_t whylen);
json_t *acl_policy_list(const struct acl *a);
json_t *acl_policy_read(const struct acl *a, const char *id_or_name,
    unsigned *status, char *why, size_t whylen);
int acl_policy_delete(struct acl *a, const char *id_or_name,
    unsigned *status, char *why, size_t whylen);

/* May uid (with token, or NULL) act as service name on the control socket
 * (HELLO, meshctl connect proxy)? svc: its local definition or NULL;
 * remote_user: the `user` another node's catalog carries for it ("" when
 * none, NULL when no node defines the name). A defined name without `user`
 * is open; one with `user` only to root and that user's uid; a name nobody
 * defines only to root, a token with service:write on it, or when the ACLs
 * are off. 0, or -1 with why. */
int acl_claim(const struct acl *a, uid_t uid, const char *token,
    const char *name, const struct conf_service *svc,
    const char *remote_user, char *why, size_t whylen);

/* Rules (acl_rules.c): parse HCL or JSON rules text. 0, or -1 with why. */
struct acl_rules;
int acl_rules_parse(const char *text, struct acl_rules **out, char *why,
    size_t whylen);
void acl_rules_free(struct acl_rules *r);
/* The level the rules give on service name (exact beats the longest
 * prefix; deny beats write beats read at the same match). */
enum acl_level acl_rules_service(const struct acl_rules *r, const char *name,
    int intentions);
enum acl_level acl_rules_operator(const struct acl_rules *r);
enum acl_level acl_rules_acl(const struct acl_rules *r);

#endif
