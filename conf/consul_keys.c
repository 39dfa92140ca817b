/* consul_keys: the field names a Consul JSON service definition may hold
 * (what helperd reads, and what Consul defines that helperd accepts and
 * ignores: tags, meta, weights...), so that a misspelt one ("chekc") is an
 * error naming the nearest known name, as Consul refuses unknown keys
 * ("invalid config key"). Free-form objects (meta, proxy, proxy config,
 * sidecar_service, header) are not looked into. */
#include "conf/conf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const root_keys[] = { "service", "services", NULL };

static const char *const service_keys[] = {
	/* read */
	"id", "name", "address", "port", "user", "unit", "inbound",
	"connect", "upstreams", "check", "checks",
	/* Consul's, accepted and ignored */
	"kind", "tags", "meta", "tagged_addresses", "socket_path", "weights",
	"enable_tag_override", "token", "namespace", "partition", "locality",
	"proxy",
	NULL,
};

static const char *const connect_keys[] = {
	"proxy", "sidecar_service", "native", NULL,
};

static const char *const check_keys[] = {
	/* read (and the kinds refused with their own message) */
	"tcp", "http", "ttl", "interval", "timeout", "success_before_passing",
	"failures_before_critical", "tls_server_name", "tls_skip_verify",
	"args", "script_args", "script", "grpc", "docker_container_id",
	"h2ping", "udp", "alias_service", "os_service",
	/* Consul's, accepted and ignored */
	"id", "check_id", "name", "notes", "status", "service_id", "token",
	"header", "method", "body", "disable_redirects", "tcp_use_tls",
	"shell", "grpc_use_tls", "h2ping_use_tls", "alias_node",
	"output_max_size", "deregister_critical_service_after",
	"failures_before_warning", "type", "namespace", "partition",
	NULL,
};

static const char *const upstream_keys[] = {
	/* read */
	"destination_name", "local_bind_address", "local_bind_port",
	"destination_type",
	/* Consul's, accepted and ignored */
	"destination_namespace", "destination_partition", "destination_peer",
	"datacenter", "local_bind_socket_path", "local_bind_socket_mode",
	"config", "mesh_gateway", "centrally_configured",
	NULL,
};

static const char *const *const tables[] = {
	[CONSUL_KEYS_ROOT] = root_keys,
	[CONSUL_KEYS_SERVICE] = service_keys,
	[CONSUL_KEYS_CONNECT] = connect_keys,
	[CONSUL_KEYS_CHECK] = check_keys,
	[CONSUL_KEYS_UPSTREAM] = upstream_keys,
};

/* key as Consul compares it: lower case, without '_', at most len-1. */
static size_t
fold(const char *key, char *out, size_t len)
{
	size_t n = 0;

	for (; *key != '\0' && n + 1 < len; key++)
		if (*key != '_')
			out[n++] = (char)tolower((unsigned char)*key);
	out[n] = '\0';
	return n;
}

/* Edit distance of a and b (each at most 63 characters). */
static size_t
distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t row[64], i, j;

	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag +
			    (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

int
consul_key_known(enum consul_keys kind, const char *key,
    const char **nearest)
{
	const char *const *t = tables[kind];
	char fk[64], fb[64];
	size_t lk, lb, d, best = (size_t)-1;

	*nearest = NULL;
	lk = fold(key, fk, sizeof(fk));
	if (strlen(key) >= sizeof(fk))
		return 0;
	for (; *t != NULL; t++) {
		lb = fold(*t, fb, sizeof(fb));
		if (lk == lb && strcmp(fk, fb) == 0)
			return 1;
		d = distance(fk, lk, fb, lb);
		if (d < best) {
			best = d;
			*nearest = *t;
		}
	}
	/* A suggestion only when it is close: up to 2 edits (fewer than
	 * the key's letters), or 1 edit per 3 letters ("chekc" -> "check",
	 * "localbindprt" -> "local_bind_port"). */
	if (!((best <= 2 && best < lk) || best * 3 <= lk))
		*nearest = NULL;
	return 0;
}
