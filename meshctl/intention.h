/* intention: helpers shared by the "meshctl intention" subcommands. */
#ifndef MESHCTL_INTENTION_H
#define MESHCTL_INTENTION_H

#include <stddef.h>
#include <jansson.h>

#define INTENT_FILE_MAX   (4 * 1024 * 1024)  /* -file input */
#define INTENT_META_KEY   128                /* bytes, as Consul */
#define INTENT_META_VAL   512
#define INTENT_DESC_LIMIT 512

/* "web => socat (deny)" into buf. */
void ixn_string(char *buf, size_t len, const char *src, const char *dst,
    const char *action);
/* String member of o, "" when missing. */
const char *ixn_jstr(const json_t *o, const char *key);
/* An intention ID: 1..64 of [0-9A-Fa-f-]. 1 if valid. */
int ixn_valid_id(const char *s);
/* Validate SRC and DST (allow_wild: "*" accepted); prints the error. 0/-1. */
int ixn_check_pair(const char *src, const char *dst, int allow_wild);
/* "/v1/connect/intentions/<tail>?source=S&destination=D", malloc'd. */
char *ixn_pair_path(const char *tail, const char *src, const char *dst);
/* API path of one intention from "SRC DST" (npos 2) or "ID" (npos 1);
 * malloc'd, NULL after printing the error. */
char *ixn_target_path(const char **pos, int npos);

/* "meshctl intention create" (intention_create.c). */
int intention_create(int argc, char **argv);

#endif
