/* acl_int: the store's structures, shared by acl.c and acl_api.c. */
#ifndef MESH_ACL_INT_H
#define MESH_ACL_INT_H

#include "helperd/identity/acl.h"

#define ACL_MGMT_POLICY_ID "00000000-0000-0000-0000-000000000001"
#define ACL_DESC_MAX 256
#define ACL_LINKS_MAX 64                /* policies / identities a token */

struct acl_policy {
	char id[ACL_ID_LEN + 1];
	char name[128];
	char desc[ACL_DESC_MAX];
	char *rules_text;               /* NULL: built-in management */
	struct acl_rules *rules;
};

struct acl_token {
	char accessor[ACL_ID_LEN + 1];
	char secret[ACL_ID_LEN + 1];
	char desc[ACL_DESC_MAX];
	char create_time[32];
	char (*pol)[ACL_ID_LEN + 1];    /* linked policy IDs */
	size_t n_pol;
	char (*sid)[CONF_NAME_MAX];     /* service identities */
	size_t n_sid;
};

struct acl {
	int enabled;
	char path[CONF_PATH_MAX + 32];  /* acl.json */
	struct acl_policy **pol;        /* [0] is global-management */
	size_t n_pol;
	struct acl_token **tok;
	size_t n_tok;
};

struct acl_policy *acl_policy_find(const struct acl *a, const char *id_or_name);
/* Validate body (Consul's JSON) and add it to the store (not saved).
 * loading: IDs and secrets come from body. NULL with *status and why. */
struct acl_policy *acl_policy_add(struct acl *a, json_t *body, int loading,
    unsigned *status, char *why, size_t whylen);
struct acl_token *acl_token_add(struct acl *a, json_t *body, int loading,
    unsigned *status, char *why, size_t whylen);
json_t *acl_policy_json(const struct acl *a, const struct acl_policy *p);
json_t *acl_token_json(const struct acl *a, const struct acl_token *t,
    int secret);
void acl_token_free(struct acl_token *t);
void acl_policy_free(struct acl_policy *p);
/* Write acl.json (0600, atomically). 0/-1 with why (logged). */
int acl_save(struct acl *a, char *why, size_t whylen);

#endif
