/* conf_int: shared by conf.c and consul.c, not part of the interface. */
#ifndef MESH_CONF_INT_H
#define MESH_CONF_INT_H

#include <stddef.h>

/* Write "file:line: <fmt...>" into err (if any); always returns -1, so
 * that errors read `return conf_errf(err, errlen, file, line, ...)`. */
int conf_errf(char *err, size_t errlen, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A check's interval/timeout/ttl: text ("10s", "500ms") or, when is_int,
 * integer seconds, into ms. 0/-1 (bad or not positive). */
int conf_check_dur(const char *text, long long secs, int is_int, long *ms);

/* consul_keys.c: the objects of a Consul JSON service definition whose
 * keys are checked. */
enum consul_keys {
	CONSUL_KEYS_ROOT,           /* {"service": ...} / {"services": ...} */
	CONSUL_KEYS_SERVICE,
	CONSUL_KEYS_CONNECT,
	CONSUL_KEYS_CHECK,
	CONSUL_KEYS_UPSTREAM,
};

/* 1 if key (compared as Consul does: any case, '_' ignored) is a field of
 * that object; else 0 and *nearest = the closest known field (snake_case)
 * when one is close enough to be a misspelling, or NULL. */
int consul_key_known(enum consul_keys kind, const char *key,
    const char **nearest);

#endif
