/* conf: the configuration model (mesh.conf and service definitions) and its
 * one validating parser, shared by helperd and meshctl.
 *
 * mesh.conf is libconfig syntax (DESIGN.md §2). Service definitions come from
 * the "services" list of mesh.conf and from services_dir: "*.conf" files
 * holding a "services = ( ... );" list and Consul JSON files ("*.json",
 * {"service": {...}} or {"services": [...]}).
 *
 * Every error is reported as "file:line: reason" (line 0 when unknown) into
 * the caller's buffer; nothing is printed. A key that is out of range or of
 * the wrong type is named: "mesh.conf:4: mesh_port: 70000 is out of range
 * 0..65535". jansson keeps no positions for values, so a Consul JSON
 * definition that parses but does not validate is reported at line 1 (the
 * document); a JSON syntax error has jansson's line. */
#ifndef MESH_CONF_H
#define MESH_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONF_NAME_MAX      64   /* service, node, datacenter names (incl NUL) */
#define CONF_ADDR_MAX      256  /* host or host:port strings (incl NUL) */
#define CONF_PATH_MAX      512
#define CONF_MAX_SERVICES  4096 /* per node, all sources together */
#define CONF_MAX_UPSTREAMS 64   /* per service */
#define CONF_MAX_ENDPOINTS 16   /* etcd endpoints */
#define CONF_ERR_MAX       512  /* recommended size of error buffers */
#define CONF_NOTICES_MAX   2048 /* struct conf's notices */
#define CONF_FILE_MAX      (1024 * 1024) /* mesh.conf and service files */
#define CONF_UNSET         (-0x7fffffff - 1) /* parsers: bind_port not given */
#define CONF_MAX_CHECKS    4    /* per service */
#define CONF_CHECK_TIMEOUT_MS 2000 /* a check's default timeout */
#define CONF_UNIT_MAX      256  /* systemd unit name (incl NUL) */
#define CONF_CHECK_THRESHOLD_MAX 100 /* success_before_passing,
                                      * failures_before_critical */

enum conf_inbound { CONF_INBOUND_PERMISSIVE = 0, CONF_INBOUND_STRICT = 1 };
enum conf_store { CONF_STORE_EMBEDDED = 0, CONF_STORE_ETCD = 1 };

struct conf_upstream {
	char dest[CONF_NAME_MAX];       /* destination_name */
	char bind_addr[CONF_ADDR_MAX];  /* local_bind_address [127.0.0.1] */
	int bind_port;                  /* local_bind_port, 1..65535 (parsers
	                                 * leave CONF_UNSET when absent) */
};

/* A health check of a service, as Consul's "check" blocks: exactly one of
 * tcp ("host:port"), http ("http[s]://host[:port][/path]", 2xx = passing)
 * or ttl (passing while PUT /v1/agent/check/pass/<id> comes within ttl).
 * success_before_passing / failures_before_critical: consecutive results
 * needed before the status changes (Consul's; 0 = at once). https:
 * tls_skip_verify, tls_server_name (SNI and the name verified). A
 * service without checks and with a port gets a TCP check of
 * address:port every check_interval; one with port 0 gets none (always
 * passing). helperd/local/health.c runs them. */
enum conf_check_type { CONF_CHECK_TCP = 1, CONF_CHECK_HTTP = 2,
	CONF_CHECK_TTL = 3 };

struct conf_check {
	enum conf_check_type type;
	char target[CONF_ADDR_MAX];     /* tcp host:port, or the http URL */
	long interval_ms;               /* 1s..1h; 0 = node's check_interval */
	long timeout_ms;                /* < interval; 0 = 2s (at most half
	                                 * the interval) */
	long ttl_ms;                    /* ttl checks: >= 1s */
	int success_before_passing;     /* 0..CONF_CHECK_THRESHOLD_MAX */
	int failures_before_critical;   /* 0..CONF_CHECK_THRESHOLD_MAX */
	int tls_skip_verify;            /* https: accept any certificate */
	char tls_server_name[CONF_ADDR_MAX]; /* https: SNI [the URL's host] */
};

struct conf_service {
	char id[CONF_NAME_MAX];         /* [name] */
	char name[CONF_NAME_MAX];
	char address[CONF_ADDR_MAX];    /* where helperd dials it [127.0.0.1] */
	int port;                       /* 1..65535; 0 = no inbound [0] */
	int connect;                    /* 1 if a "connect" block is present */
	char user[CONF_NAME_MAX];       /* "" = any uid */
	uid_t uid;                      /* resolved user; valid if user[0] */
	char unit[CONF_UNIT_MAX];       /* "" = none; else a program without
	                                 * the shim in this systemd unit acts
	                                 * as this service (helperd/served) */
	enum conf_inbound inbound;
	struct conf_upstream *upstreams;
	size_t n_upstreams;
	struct conf_check checks[CONF_MAX_CHECKS]; /* check / checks */
	size_t n_checks;
	char source[CONF_PATH_MAX];     /* file it came from, for messages */
	int source_line;                /* JSON: 1 (see above) */
};

struct conf_ca {
	long leaf_ttl;                  /* seconds [72h] */
	long root_ttl;                  /* seconds [87600h] */
	int allow_short_ttl;            /* leaf_ttl < 1h allowed [false] */
	int server;                     /* holds the root key [true] */
	char secret[128];               /* CA servers only: seals the root
	                                   keys in the store [""] */
};

struct conf_store_cfg {
	enum conf_store backend;
	char *endpoints[CONF_MAX_ENDPOINTS];
	size_t n_endpoints;
	char prefix[CONF_PATH_MAX];     /* ["/meshshim"] */
	long lease_ttl;                 /* seconds [10] */
	char ca_file[CONF_PATH_MAX];    /* etcd TLS, optional */
	char cert_file[CONF_PATH_MAX];
	char key_file[CONF_PATH_MAX];
	char username[CONF_NAME_MAX];
	char password[CONF_NAME_MAX];
};

struct conf_acl {
	int enabled;                    /* [true; -dev: false] */
	char initial_management[40];    /* a management token's SecretID
	                                 * (UUID) to create, as Consul's
	                                 * acl.tokens.initial_management;
	                                 * "" = a random one ([""]) */
};

struct conf_limits {
	long http_max_conns_per_client; /* [200], per uid (local) or IP */
};

/* access_log = { path = "..."; format = "json" | "text"; } */
struct conf_access_log {
	char path[CONF_PATH_MAX];       /* [""] = no access log */
	int json;                       /* format: 1 json [1], 0 text */
};

struct conf {
	char node[CONF_NAME_MAX];           /* [hostname] */
	char datacenter[CONF_NAME_MAX];     /* ["dc1"] */
	char data_dir[CONF_PATH_MAX];       /* ["/var/lib/meshshim"] */
	char socket[108];                   /* ["/run/meshshim/helperd.sock"] */
	char http_addr[CONF_ADDR_MAX];      /* ["127.0.0.1:8500"], port 0 = any */
	char http_socket[108];              /* HTTP API on a unix socket, the
	                                     * caller's uid its credential
	                                     * ["": http.sock beside socket;
	                                     * "none": off] */
	int mesh_port;                      /* [21000], 0 = any free port */
	char bind_addr[CONF_ADDR_MAX];      /* mesh_port listen address ["0.0.0.0"] */
	char advertise_addr[CONF_ADDR_MAX]; /* ["127.0.0.1"] */
	int default_allow;                  /* default_intention: 1 allow [1] */
	int same_node_mtls;                 /* [1] */
	char dns_domain[CONF_NAME_MAX];     /* ["mesh"] */
	char dns_addr[CONF_ADDR_MAX];       /* DNS server ["127.0.0.1:8600"],
	                                     * "" = none, port 0 = any */
	char served_addrs[32];              /* loopback block of the served
	                                     * addresses ["127.78.0.0/16"],
	                                     * "" = none */
	char services_dir[CONF_PATH_MAX];   /* ["/etc/meshshim.d"], "" = none */
	char log_level[16];                 /* ["info"] */
	int log_json;                       /* log lines as JSON [false] */
	char log_file[CONF_PATH_MAX];       /* also log to this file [""] */
	long log_rotate_bytes;              /* rotate past this size [0 = no] */
	long log_rotate_max_files;          /* rotated files kept [0 = all] */
	struct conf_access_log access_log;
	char join_token[CONF_NAME_MAX];     /* cluster join secret, optional */
	long connect_timeout_ms;            /* [5000] */
	long handshake_timeout_ms;          /* [10000] */
	long idle_timeout_s;                /* [0 = none] */
	long max_conns;                     /* [65536] */
	int busy_poll_us;                   /* [50], 0 = never */
	char loopback_congestion[16];       /* TCP congestion control of
	                                     * helperd's loopback sockets
	                                     * ["cubic"], "" = the system's */
	char mesh_congestion[16];           /* ... of its sockets to other
	                                     * nodes ["auto"], "" = the
	                                     * system's */
	long check_interval_ms;             /* default check interval [10s],
	                                     * 1s..1h */
	int dev;                            /* started with -dev */
	struct conf_ca ca;
	struct conf_acl acl;
	struct conf_limits limits;
	struct conf_store_cfg store;
	struct conf_service *services;      /* mesh.conf + services_dir */
	size_t n_services;
	char path[CONF_PATH_MAX];           /* mesh.conf path, "" in -dev */
	/* What the last load skipped (a *.hcl file in services_dir), one
	 * line each ending in '\n', for the log, -check and the reload
	 * reply; "" when nothing. Cut short past CONF_NOTICES_MAX. */
	char notices[CONF_NOTICES_MAX];
};

/* Fill c with the defaults (dev: the -dev defaults: temp data_dir is NOT
 * created here, default_allow, short TTLs allowed). Overwrites c without
 * freeing it: call it on a fresh struct or after conf_free. */
void conf_defaults(struct conf *c, int dev);

/* Load mesh.conf at path on top of the defaults already in c, then the
 * service definitions of services_dir. Validates everything: unknown keys,
 * types, ranges (naming the key), duplicate service names/ids, duplicate
 * upstream local_bind_port across the node. The loaded services replace
 * c->services. 0, or -1 with err filled and c untouched. A missing
 * services_dir counts as empty (the caller may log it). */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);

/* (Re)load only the services: mesh.conf's "services" plus services_dir, into
 * a fresh array (replacing c->services on success, untouched on error). */
int conf_reload_services(struct conf *c, char *err, size_t errlen);

/* Set one mesh.conf key from text, as a command-line flag gives it
 * ("mesh_port" "21001", "ca.leaf_ttl" "5m", "store.endpoints" "a,b"),
 * through the same key table and checks as the file. Errors read
 * "origin: key: reason" (no line). "services" cannot be set. 0/-1. */
int conf_set(struct conf *c, const char *key, const char *value,
    const char *origin, char *err, size_t errlen);

/* The mesh.conf keys whose values differ between a and b ("mesh_port",
 * "ca.leaf_ttl"), except those named in skip (NULL-terminated; NULL: none;
 * "ca" skips the group), comma-separated into out. Names only: values
 * may be secrets. "services" is never compared. How many differ. */
size_t conf_diff(const struct conf *a, const struct conf *b,
    const char *const *skip, char *out, size_t outlen);

/* The cross-key checks conf_load runs (leaf_ttl under 1h without -dev or
 * ca.allow_short_ttl, leaf_ttl >= root_ttl, etcd without endpoints, etcd
 * cert_file without key_file); for callers that used conf_set. 0/-1. */
int conf_check(const struct conf *c, char *err, size_t errlen);

/* Parse one service definition file (".conf" libconfig or ".json" Consul,
 * at most CONF_FILE_MAX bytes) and append its services, each validated with
 * conf_service_validate, to *svcs and *n (a malloc'd array or NULL; unchanged
 * on error). Node-wide checks are the caller's (conf_services_check). 0/-1. */
int conf_parse_service_file(const char *path, struct conf_service **svcs,
    size_t *n, char *err, size_t errlen);

/* Parse a Consul JSON service definition held in memory (as sent to
 * PUT /v1/agent/service/register: the bare service object, or wrapped in
 * {"service": ...} / {"services": [...]}). Field names are matched as Consul
 * does, ignoring case and "_" ("LocalBindPort" = "local_bind_port");
 * Consul's fields that helperd does not use (tags, meta...) are accepted
 * and ignored, a field Consul does not define in the document, a service,
 * its connect, a check or an upstream is an error naming it and the
 * nearest known field (consul_keys.c). "check" (an object) and
 * "checks" (an array) take TCP, HTTP, TTL, Interval, Timeout (other
 * check kinds: Args, GRPC, ... are errors; Name, Notes... are ignored). Upstreams come from
 * connect.proxy.config.upstreams, connect.proxy.upstreams,
 * connect.sidecar_service.proxy.upstreams (and a top-level "upstreams").
 * origin names it in errors. Appends like conf_parse_service_file. 0/-1. */
int conf_parse_service_json(const char *json, size_t len, const char *origin,
    struct conf_service **svcs, size_t *n, char *err, size_t errlen);

/* Durations: "72h", "30m", "15s", "1h30m", or plain seconds "3600".
 * Result in seconds, must be > 0 and at most 876000h (100 years). 0/-1. */
int conf_parse_duration(const char *s, long *secs);

/* The same, also accepting "ms" ("500ms", "1s500ms"); result in ms. 0/-1. */
int conf_parse_duration_ms(const char *s, long *ms);

/* An http check URL "http[s]://host[:port][/path?query]" into its host (an
 * IP literal or a DNS name, [v6] unbracketed), port [80, https 443] and
 * path ["/"]. 0/-1 (not http:// or https://, no host, bad port, bad
 * characters). */
int conf_check_http_parse(const char *url, char *host, size_t hostlen,
    int *port, char *path, size_t pathlen);

/* A served_addrs block "127.x.y.z/N" (N 8..30, inside 127.0.0.0/8,
 * aligned) into its network (host order) and prefix. 0/-1. */
int conf_parse_loopback_block(const char *s, uint32_t *net, int *prefix);

/* A systemd unit name for a service's "unit" ("billing.service"): 1..255
 * of A-Z a-z 0-9 : - _ . \\ @ with a suffix after a dot. 1 if valid. */
int conf_valid_unit(const char *s);

/* "permissive" or "strict" into *out. 0/-1. */
int conf_parse_inbound(const char *s, enum conf_inbound *out);

/* Complete and check one service as a parser filled it: id defaults to
 * name, address to 127.0.0.1, upstream local_bind_address to 127.0.0.1
 * (normalised); checks names, ids, ranges, IP literals, the upstream cap,
 * the checks (one kind each, tcp host:port, http://host URL, timeout
 * under an explicit interval), and resolves user to uid (unknown user is an error). Errors are
 * "source:source_line: service "name": reason". Idempotent. 0/-1. */
int conf_service_validate(struct conf_service *s, char *err, size_t errlen);

/* Node-wide checks over validated services: at most CONF_MAX_SERVICES,
 * no duplicate id (instances of one name with other ids are allowed, as
 * Consul's; the message names both files), no two upstreams
 * on the same local_bind_address:local_bind_port. 0/-1 with err. */
int conf_services_check(const struct conf_service *svcs, size_t n,
    char *err, size_t errlen);

/* Service names: 1..63 chars of [A-Za-z0-9_-], starting with a letter or
 * digit. 1 if valid. "*" is NOT a valid service name (intentions allow it
 * separately). */
int conf_valid_name(const char *s);

/* A user name (or a numeric uid) as this host knows it. 0/-1. */
int conf_user_uid(const char *name, uid_t *uid);

/* Find a service by name (first match) or NULL. */
const struct conf_service *conf_find_service(const struct conf *c,
    const char *name);

/* Free what one service owns (not the service itself, which may sit in
 * an array). */
void conf_service_clear(struct conf_service *s);
/* Free an array of n services and everything they own. */
void conf_services_free(struct conf_service *svcs, size_t n);
void conf_free(struct conf *c);

#endif
