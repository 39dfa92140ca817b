/* conf_int: shared by the conf/ files, not part of the interface. */
#ifndef MESH_CONF_INT_H
#define MESH_CONF_INT_H

#include <libconfig.h>
#include <stddef.h>

#define MS_S          1000LL
#define MS_H          (3600LL * MS_S)
#define DUR_MAX_MS    (876000LL * MS_H)  /* 100 years */

struct conf;
struct conf_service;

/* ---- value.c ---- */

/* A copy of untrusted text that is safe to quote in a message. */
const char *conf_printable(const char *s, char *buf, size_t len);
/* Service ids: like names, plus '.' and ':' ("redis:6379", "web.1"). */
int conf_valid_id(const char *s);
int conf_valid_ip(const char *s);
/* A DNS name: labels of [A-Za-z0-9-] (1..63), separated by single dots. */
int conf_valid_hostname(const char *s);
/* "72h", "1h30m", "15s", "500ms" (allow_ms), or plain seconds; into ms. */
int conf_dur_parse(const char *s, int allow_ms, long long *out);
/* ms as the shortest of "72h", "5m", "15s", "500ms" (into buf). */
const char *conf_dur_fmt(long long ms, char *buf, size_t len);

/* ---- keys.c: the key table ---- */

enum ktype { K_STR, K_INT, K_BOOL, K_ENUM, K_DUR, K_LIST, K_GROUP,
	K_SERVICES };

struct kchoice {
	const char *name;
	int value;
};

struct ckey {
	const char *name;
	enum ktype type;
	size_t off;                 /* into the struct the table describes */
	size_t size;                /* of the field */
	long long min, max;         /* K_INT; K_DUR in ms */
	int in_ms;                  /* K_DUR: field holds ms (else seconds) */
	const char *def;            /* default, as a flag would spell it */
	const struct kchoice *choices;                  /* K_ENUM */
	int (*check)(const char *v, char *why, size_t whylen); /* K_STR/LIST */
	const struct ckey *sub;     /* K_GROUP */
	size_t off_n;               /* K_LIST: the count field */
};

/* One value as a file or a flag gave it. V_TEXT (flags and defaults) may
 * spell any type; a file's V_STR is only a string. */
struct cval {
	enum { V_STR, V_TEXT, V_INT, V_BOOL, V_OTHER } kind;
	const char *s;
	long long i;
};

/* mesh.conf's top level, ending with { .name = NULL }. */
extern const struct ckey conf_top_keys[];

const struct ckey *conf_key_find(const struct ckey *tab, const char *name);
/* What a value of k's type looks like ("an integer", ...). */
const char *conf_type_word(const struct ckey *k);
/* Apply one scalar value to the field k describes in base. why gets the
 * reason (without file, line or key). */
int conf_key_apply(const struct ckey *k, void *base, const struct cval *v,
    char *why, size_t whylen);
/* K_LIST: replace the list with items (checked first; nothing changes on
 * error). */
int conf_list_apply(const struct ckey *k, void *base,
    const char *const *items, size_t n, char *why, size_t whylen);
/* Every default of tab (and its groups) into base. */
void conf_defaults_apply(const struct ckey *tab, void *base);

/* ---- conf.c: libconfig ---- */

/* The file a setting came from (an @include), else path. */
const char *conf_src_file(const config_setting_t *s, const char *path);
/* Read path (at most CONF_FILE_MAX bytes) into cfg. */
int conf_cfg_read(config_t *cfg, const char *path, char *err, size_t errlen);

/* ---- service_file.c ---- */

/* A growing array of services that we own. */
struct conf_svec {
	struct conf_service *v;
	size_t n, cap;
};

void conf_svec_free(struct conf_svec *sv);
/* mesh.conf's "services" (from cfg, or re-read from c->path when cfg is
 * NULL), then services_dir, then the node-wide checks; notes gets what
 * was skipped (a *.hcl file). */
int conf_services_load(const struct conf *c, config_t *cfg,
    struct conf_svec *out, char *notes, size_t noteslen, char *err,
    size_t errlen);

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
