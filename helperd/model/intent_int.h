/* intent_int: shared by intent.c (the model), intent_json.c and
 * intent_db.c (the store); not part of the interface. */
#ifndef MESH_INTENT_INT_H
#define MESH_INTENT_INT_H

#include "helperd/model/intent.h"

#include <stddef.h>

/* why = the formatted reason (if why is not NULL). */
void intent_set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* *code = c (if code is not NULL); returns -1. */
int intent_fail(enum intent_err *code, enum intent_err c);

/* The (source, destination) hash: the intention for exactly that pair in
 * ht (cap a power of 2), or NULL. */
const struct intent *intent_ht_find(struct intent *const *ht, size_t cap,
    const char *src, const char *dst);
/* A table for v[0..n): load at most 1/2. NULL (ENOMEM) or the table. */
struct intent **intent_ht_build(struct intent *const *v, size_t n,
    size_t *capp);
/* qsort order of the list: precedence, then as Consul lists them. */
int intent_list_cmp(const void *pa, const void *pb);

/* Checks what a caller may hand to intent_create/update (intent_json.c). */
int intent_check_fields(const struct intent *in, char *why, size_t whylen);

#endif
