/* Unit tests for conf: mesh.conf (libconfig), services_dir, Consul JSON.
 * Fixtures are in $FIXTURES/conf; each test runs from there, so paths and
 * the messages that quote them are relative ("bad/port_range.conf:4: ..."). */
#include "conf/conf.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct conf c;
static char err[CONF_ERR_MAX];

static void
setup(void)
{
	const char *fx = getenv("FIXTURES");
	char dir[1024];

	cr_assert_not_null(fx, "FIXTURES is not set");
	snprintf(dir, sizeof(dir), "%s/conf", fx);
	cr_assert_eq(chdir(dir), 0, "chdir %s", dir);
	memset(&c, 0, sizeof(c));
	err[0] = '\0';
}

static void
teardown(void)
{
	conf_free(&c);
}

TestSuite(conf, .init = setup, .fini = teardown);

#define cr_assert_prefix(s, p) \
	cr_assert(strncmp((s), (p), strlen(p)) == 0, \
	    "got \"%s\"\nwant prefix \"%s\"", (s), (p))

/* conf_load must fail on path with an error starting with prefix, and
 * leave c as it was (the defaults): every byte of it, not a few fields. */
static void
expect_load_error(const char *path, const char *prefix)
{
	static struct conf before;

	conf_defaults(&c, 0);
	memcpy(&before, &c, sizeof(c));
	cr_assert_eq(conf_load(&c, path, err, sizeof(err)), -1,
	    "%s loaded without error", path);
	cr_assert_prefix(err, prefix);
	cr_assert(memcmp(&c, &before, sizeof(c)) == 0,
	    "%s: c changed by a failed load (mesh_port %d, path \"%s\", "
	    "%zu services)", path, c.mesh_port, c.path, c.n_services);
}

static void
expect_file_error(const char *path, const char *prefix)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file(path, &v, &n, err, sizeof(err)),
	    -1, "%s parsed without error", path);
	cr_assert_prefix(err, prefix);
	cr_assert_eq(n, 0);
	cr_assert_null(v);
}

static const struct conf_service *
must_find(const char *name)
{
	const struct conf_service *s = conf_find_service(&c, name);

	cr_assert_not_null(s, "service %s not loaded", name);
	return s;
}

/* ---- defaults ---------------------------------------------------------- */

Test(conf, defaults)
{
	conf_defaults(&c, 0);
	cr_assert(conf_valid_name(c.node), "node \"%s\"", c.node);
	cr_assert_str_eq(c.datacenter, "dc1");
	cr_assert_str_eq(c.data_dir, "/var/lib/meshshim");
	cr_assert_str_eq(c.socket, "/run/meshshim/helperd.sock");
	cr_assert_str_eq(c.http_addr, "127.0.0.1:8500");
	cr_assert_eq(c.mesh_port, 21000);
	cr_assert_str_eq(c.bind_addr, "0.0.0.0");
	cr_assert_str_eq(c.advertise_addr, "127.0.0.1");
	cr_assert_eq(c.default_allow, 1);
	cr_assert_eq(c.same_node_mtls, 1);
	cr_assert_str_eq(c.dns_domain, "mesh");
	cr_assert_str_eq(c.services_dir, "/etc/meshshim.d");
	cr_assert_str_eq(c.log_level, "info");
	cr_assert_str_eq(c.join_token, "");
	cr_assert_eq(c.connect_timeout_ms, 5000);
	cr_assert_eq(c.handshake_timeout_ms, 10000);
	cr_assert_eq(c.idle_timeout_s, 0);
	cr_assert_eq(c.max_conns, 65536);
	cr_assert_eq(c.busy_poll_us, 50);
	cr_assert_str_eq(c.loopback_congestion, "cubic");
	cr_assert_str_eq(c.mesh_congestion, "auto");
	cr_assert_eq(c.check_interval_ms, 10000);
	cr_assert_eq(c.dev, 0);
	cr_assert_eq(c.ca.leaf_ttl, 72 * 3600);
	cr_assert_eq(c.ca.root_ttl, 87600L * 3600);
	cr_assert_eq(c.ca.allow_short_ttl, 0);
	cr_assert_eq(c.ca.server, 1);
	cr_assert_eq(c.store.backend, CONF_STORE_EMBEDDED);
	cr_assert_eq(c.store.n_endpoints, 0);
	cr_assert_str_eq(c.store.prefix, "/meshshim");
	cr_assert_eq(c.store.lease_ttl, 10);
	cr_assert_eq(c.n_services, 0);
	cr_assert_eq(conf_check(&c, err, sizeof(err)), 0, "%s", err);
}

Test(conf, defaults_dev_allow_short_ttl)
{
	conf_defaults(&c, 1);
	cr_assert_eq(c.dev, 1);
	cr_assert_eq(c.mesh_port, 21000);
	cr_assert_eq(c.default_allow, 1);
	cr_assert_eq(conf_set(&c, "ca.leaf_ttl", "5m", "-leaf-ttl", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.ca.leaf_ttl, 300);
	cr_assert_eq(conf_check(&c, err, sizeof(err)), 0, "%s", err);
	c.dev = 0;
	cr_assert_eq(conf_check(&c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "ca.leaf_ttl: 5m is under 1h") != NULL, "%s", err);
}

/* ---- a full, good configuration ---------------------------------------- */

Test(conf, good_every_key)
{
	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, "good/mesh.conf", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(c.path, "good/mesh.conf");
	cr_assert_str_eq(c.node, "node1");
	cr_assert_str_eq(c.datacenter, "dc2");
	cr_assert_str_eq(c.data_dir, "/tmp/meshshim-fixture");
	cr_assert_str_eq(c.socket, "/tmp/meshshim-fixture/helperd.sock");
	cr_assert_str_eq(c.http_addr, "127.0.0.1:8501");
	cr_assert_eq(c.mesh_port, 21001);
	cr_assert_str_eq(c.bind_addr, "127.0.0.1");
	cr_assert_str_eq(c.advertise_addr, "10.0.0.5");
	cr_assert_eq(c.default_allow, 0);
	cr_assert_eq(c.same_node_mtls, 0);
	cr_assert_str_eq(c.dns_domain, "mesh.example");
	cr_assert_str_eq(c.services_dir, "good/services.d");
	cr_assert_str_eq(c.log_level, "debug");
	cr_assert_str_eq(c.join_token, "s3cret-token");
	cr_assert_eq(c.connect_timeout_ms, 2500);
	cr_assert_eq(c.handshake_timeout_ms, 15000);
	cr_assert_eq(c.idle_timeout_s, 5400);
	cr_assert_eq(c.max_conns, 1000);
	cr_assert_eq(c.busy_poll_us, 0);
	cr_assert_str_eq(c.loopback_congestion, "");
	cr_assert_str_eq(c.mesh_congestion, "bbr");
	cr_assert_eq(c.ca.leaf_ttl, 24 * 3600);
	cr_assert_eq(c.ca.root_ttl, 8760L * 3600);
	cr_assert_eq(c.ca.allow_short_ttl, 0);
	cr_assert_eq(c.ca.server, 0);
	cr_assert_eq(c.store.backend, CONF_STORE_ETCD);
	cr_assert_eq(c.store.n_endpoints, 2);
	cr_assert_str_eq(c.store.endpoints[0], "http://127.0.0.1:2379");
	cr_assert_str_eq(c.store.endpoints[1], "https://10.0.0.2:2379");
	cr_assert_str_eq(c.store.prefix, "/mesh/test");
	cr_assert_eq(c.store.lease_ttl, 15);
	cr_assert_str_eq(c.store.ca_file, "/etc/etcd/ca.pem");
	cr_assert_str_eq(c.store.cert_file, "/etc/etcd/client.pem");
	cr_assert_str_eq(c.store.key_file, "/etc/etcd/client-key.pem");
	cr_assert_str_eq(c.store.username, "mesh");
	cr_assert_str_eq(c.store.password, "hunter2");
}

Test(conf, good_services_in_order)
{
	/* mesh.conf first, then services_dir in byte order; README.txt,
	 * web.json.bak, .web.json and the directory skipped.json (each of
	 * which would clash with web) are ignored. */
	static const char *const order[] = { "db", "api", "billing",
		"reports", "cache", "metrics", "socat", "web" };

	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, "good/mesh.conf", err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(c.n_services, 8);
	for (size_t i = 0; i < 8; i++)
		cr_assert_str_eq(c.services[i].name, order[i], "service %zu",
		    i);
	cr_assert_str_eq(c.services[6].source, "good/services.d/socat.json");
	cr_assert_eq(c.services[6].source_line, 1);
	cr_assert_str_eq(c.services[0].source, "good/mesh.conf");
	cr_assert_eq(c.services[0].source_line, 32);
	cr_assert_eq(c.services[1].source_line, 36);
}

Test(conf, good_mesh_conf_services)
{
	const struct conf_service *db, *api;

	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, "good/mesh.conf", err, sizeof(err)), 0,
	    "%s", err);
	db = must_find("db");
	cr_assert_str_eq(db->id, "db-1");
	cr_assert_str_eq(db->address, "127.0.0.2");
	cr_assert_eq(db->port, 5432);
	cr_assert_eq(db->connect, 1);
	cr_assert_str_eq(db->user, "nobody");
	cr_assert_eq(db->uid, 65534);
	cr_assert_eq(db->inbound, CONF_INBOUND_STRICT);
	cr_assert_eq(db->n_upstreams, 0);
	api = must_find("api");
	cr_assert_str_eq(api->id, "api");
	cr_assert_str_eq(api->address, "127.0.0.1");
	cr_assert_eq(api->connect, 0);
	cr_assert_str_eq(api->user, "");
	cr_assert_eq(api->inbound, CONF_INBOUND_PERMISSIVE);
	cr_assert_eq(api->n_upstreams, 1);
	cr_assert_str_eq(api->upstreams[0].dest, "db");
	cr_assert_eq(api->upstreams[0].bind_port, 15432);
	cr_assert_str_eq(api->upstreams[0].bind_addr, "127.0.0.1");
}

Test(conf, seed_socat_and_web_json)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/services.d/socat.json", &v,
	    &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(conf_parse_service_file("good/services.d/web.json", &v,
	    &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(v[0].name, "socat");
	cr_assert_str_eq(v[0].id, "socat");
	cr_assert_eq(v[0].port, 8181);
	cr_assert_eq(v[0].connect, 1);
	cr_assert_eq(v[0].n_upstreams, 0);
	cr_assert_str_eq(v[1].name, "web");
	cr_assert_eq(v[1].port, 8080);
	cr_assert_eq(v[1].connect, 1);
	cr_assert_eq(v[1].n_upstreams, 1);
	cr_assert_str_eq(v[1].upstreams[0].dest, "socat");
	cr_assert_eq(v[1].upstreams[0].bind_port, 9191);
	cr_assert_str_eq(v[1].upstreams[0].bind_addr, "127.0.0.1");
	cr_assert_eq(conf_services_check(v, n, err, sizeof(err)), 0, "%s",
	    err);
	conf_services_free(v, n);
}

Test(conf, json_13_form_accepts_consul_only_keys)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/services.d/cache.json", &v,
	    &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].name, "cache");
	cr_assert_eq(v[0].port, 6379);
	cr_assert_eq(v[0].n_upstreams, 1);
	cr_assert_str_eq(v[0].upstreams[0].dest, "db");
	cr_assert_eq(v[0].upstreams[0].bind_port, 15433);
	conf_services_free(v, n);
}

Test(conf, json_sidecar_camelcase_services_list)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/services.d/billing.json",
	    &v, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(v[0].id, "billing-1");
	cr_assert_str_eq(v[0].name, "billing");
	cr_assert_eq(v[0].port, 7000);
	cr_assert_eq(v[0].connect, 1);
	cr_assert_eq(v[0].n_upstreams, 2);
	cr_assert_str_eq(v[0].upstreams[0].dest, "api");
	cr_assert_eq(v[0].upstreams[0].bind_port, 19000);
	cr_assert_str_eq(v[0].upstreams[0].bind_addr, "127.0.0.2");
	cr_assert_str_eq(v[0].upstreams[1].dest, "cache");
	cr_assert_eq(v[0].upstreams[1].bind_port, 16379);
	cr_assert_str_eq(v[1].name, "reports");
	cr_assert_eq(v[1].port, 0, "no port = no inbound");
	cr_assert_eq(v[1].connect, 0);
	cr_assert_eq(v[1].uid, 65534);
	cr_assert_eq(v[1].inbound, CONF_INBOUND_PERMISSIVE);
	conf_services_free(v, n);
}

Test(conf, services_conf_file)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/services.d/more.conf", &v,
	    &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].name, "metrics");
	cr_assert_eq(v[0].port, 9100);
	cr_assert_str_eq(v[0].source, "good/services.d/more.conf");
	cr_assert_eq(v[0].source_line, 2);
	cr_assert_eq(v[0].n_upstreams, 1);
	cr_assert_eq(v[0].upstreams[0].bind_port, 19001);
	conf_services_free(v, n);
}

Test(conf, json_api_bare_form)
{
	static const char body[] = "{\"Name\": \"api\", \"Port\": 9000, "
	    "\"Address\": \"::1\", \"Connect\": {\"SidecarService\": {}}, "
	    "\"Upstreams\": [{\"DestinationName\": \"db\", "
	    "\"LocalBindPort\": 15432, \"LocalBindAddress\": \"0::1\"}]}";
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_json(body, strlen(body), "request", &v,
	    &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].name, "api");
	cr_assert_str_eq(v[0].address, "::1");
	cr_assert_eq(v[0].connect, 1);
	cr_assert_str_eq(v[0].upstreams[0].bind_addr, "::1", "normalised");
	cr_assert_eq(conf_service_validate(&v[0], err, sizeof(err)), 0,
	    "not idempotent: %s", err);
	conf_services_free(v, n);
}

/* ---- bad mesh.conf ----------------------------------------------------- */

Test(conf, bad_syntax)
{
	expect_load_error("bad/syntax.conf", "bad/syntax.conf:2: syntax error");
}

Test(conf, bad_unknown_key)
{
	expect_load_error("bad/unknown_key.conf",
	    "bad/unknown_key.conf:3: unknown key \"mesh_prot\"");
}

Test(conf, bad_unknown_key_in_group)
{
	expect_load_error("bad/ca_unknown.conf",
	    "bad/ca_unknown.conf:3: unknown key \"ca.lifetime\"");
}

Test(conf, bad_mesh_port_range)
{
	expect_load_error("bad/port_range.conf",
	    "bad/port_range.conf:4: mesh_port: 70000 is out of range 0..65535");
}

Test(conf, bad_mesh_port_type)
{
	expect_load_error("bad/port_type.conf",
	    "bad/port_type.conf:2: mesh_port: must be an integer");
}

Test(conf, bad_default_intention)
{
	expect_load_error("bad/intention.conf", "bad/intention.conf:2: "
	    "default_intention: must be \"allow\" or \"deny\"");
}

Test(conf, bad_duration)
{
	expect_load_error("bad/duration.conf", "bad/duration.conf:3: "
	    "connect_timeout: bad duration \"5 seconds\"");
}

Test(conf, bad_other_keys)
{
	expect_load_error("bad/max_conns.conf",
	    "bad/max_conns.conf:2: max_conns: 0 is out of range 1..1000000");
	expect_load_error("bad/loopback_congestion.conf",
	    "bad/loopback_congestion.conf:2: loopback_congestion: \"../bbr\" "
	    "is not a congestion control name");
	expect_load_error("bad/mesh_congestion.conf",
	    "bad/mesh_congestion.conf:2: mesh_congestion: \"Cubic\" "
	    "is not a congestion control name (up to 15 of a-z 0-9 _, as in "
	    "net.ipv4.tcp_available_congestion_control; \"auto\", or \"\" "
	    "for the system's)");
	expect_load_error("bad/log_level.conf",
	    "bad/log_level.conf:2: log_level: must be \"err\"");
	expect_load_error("bad/bind_addr.conf", "bad/bind_addr.conf:2: "
	    "bind_addr: \"localhost\" is not an IP address");
	expect_load_error("bad/bool_type.conf",
	    "bad/bool_type.conf:2: same_node_mtls: must be true or false");
	expect_load_error("bad/etcd_badurl.conf", "bad/etcd_badurl.conf:2: "
	    "store.endpoints: \"127.0.0.1:2379\" is not an http");
	expect_load_error("bad/etcd_noendpoints.conf",
	    "bad/etcd_noendpoints.conf:2: store.endpoints: required");
}

Test(conf, bad_short_leaf_ttl)
{
	expect_load_error("bad/short_ttl.conf", "bad/short_ttl.conf:3: "
	    "ca.leaf_ttl: 30m is under 1h; start helperd with -dev or set "
	    "ca.allow_short_ttl = true");
}

Test(conf, short_leaf_ttl_allowed)
{
	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, "bad/short_ttl_ok.conf", err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(c.ca.leaf_ttl, 1800);
	conf_free(&c);
	conf_defaults(&c, 1);
	cr_assert_eq(conf_load(&c, "bad/short_ttl.conf", err, sizeof(err)),
	    0, "-dev: %s", err);
	cr_assert_eq(c.ca.leaf_ttl, 1800);
}

Test(conf, bad_leaf_not_shorter_than_root)
{
	expect_load_error("bad/leaf_root.conf", "bad/leaf_root.conf:2: "
	    "ca.leaf_ttl: 48h must be shorter than ca.root_ttl (24h)");
}

Test(conf, missing_file)
{
	expect_load_error("bad/no-such.conf",
	    "bad/no-such.conf:0: No such file or directory");
}

/* ---- bad services ------------------------------------------------------ */

Test(conf, bad_service_name)
{
	expect_load_error("bad/svc_name.conf", "bad/svc_name.conf:3: "
	    "service \"bad name\": name is not valid");
}

Test(conf, bad_service_unknown_key)
{
	expect_load_error("bad/svc_unknown.conf", "bad/svc_unknown.conf:3: "
	    "service \"web\": unknown key \"tags\"");
}

Test(conf, bad_service_values)
{
	expect_load_error("bad/svc_port.conf", "bad/svc_port.conf:2: "
	    "service \"web\": port: 80800 is out of range 1..65535");
	expect_load_error("bad/svc_inbound.conf", "bad/svc_inbound.conf:2: "
	    "service \"web\": inbound: must be \"permissive\" or \"strict\"");
	expect_load_error("bad/svc_bindaddr.conf", "bad/svc_bindaddr.conf:2: "
	    "service \"web\": upstream 1: local_bind_address: \"localhost\" "
	    "is not an IP address");
}

Test(conf, bad_duplicate_service_names_both_files)
{
	expect_load_error("bad/dup.conf", "bad/dup.d/a.json:1: service \"web\" "
	    "is already defined at bad/dup.conf:3");
}

Test(conf, bad_duplicate_local_bind_port)
{
	expect_load_error("bad/dup_bind.conf", "bad/dup_bind.conf:5: service "
	    "\"api\": upstream 1: local_bind_port 9191 on 127.0.0.1 is already "
	    "used by service \"web\"");
}

Test(conf, bad_malformed_json_line)
{
	expect_file_error("bad/malformed.json",
	    "bad/malformed.json:3: invalid JSON: ");
}

Test(conf, bad_unknown_user)
{
	expect_file_error("bad/unknown_user.json", "bad/unknown_user.json:1: "
	    "service \"socat\": user \"meshshim-no-such-user\" does not exist");
}

Test(conf, bad_json_values)
{
	expect_file_error("bad/upstream_noport.json",
	    "bad/upstream_noport.json:1: service \"web\": upstream 1: "
	    "local_bind_port missing");
	expect_file_error("bad/port_string.json",
	    "bad/port_string.json:1: service \"web\": port: must be an integer");
	expect_file_error("bad/prepared_query.json",
	    "bad/prepared_query.json:1: service \"web\": upstream 1: "
	    "destination_type \"prepared_query\" is not supported");
	expect_file_error("bad/agent_config.json", "bad/agent_config.json:1: "
	    "no \"service\" or \"services\" definition");
	expect_file_error("bad/svcfile_extra.conf",
	    "bad/svcfile_extra.conf:2: unknown key \"node\"");
}

/* What helperd writes after the last API deregistration must load. */
Test(conf, empty_services_list_loads)
{
	static const char body[] = "{\n  \"services\": []\n}";
	struct conf_service *v = NULL;
	size_t n = 0;
	char e[CONF_ERR_MAX] = "";

	cr_assert_eq(conf_parse_service_json(body, strlen(body),
	    "services.json", &v, &n, e, sizeof(e)), 0, "%s", e);
	cr_assert_eq(n, 0);
	cr_assert_null(v);
}

Test(conf, duplicate_id_and_name_in_memory)
{
	static const char a[] = "{\"services\": [{\"name\": \"a\", \"id\": "
	    "\"x\"}, {\"name\": \"b\", \"id\": \"x\"}]}";
	static const char b[] = "{\"services\": [{\"name\": \"a\"}, "
	    "{\"name\": \"a\"}]}";
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_json(a, strlen(a), "a", &v, &n, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(conf_services_check(v, n, err, sizeof(err)), -1);
	cr_assert_prefix(err, "a:1: service id \"x\" is already defined at a:1");
	conf_services_free(v, n);
	v = NULL;
	n = 0;
	cr_assert_eq(conf_parse_service_json(b, strlen(b), "b", &v, &n, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(conf_services_check(v, n, err, sizeof(err)), -1);
	cr_assert_prefix(err, "b:1: service \"a\" is already defined at b:1");
	conf_services_free(v, n);
}

Test(conf, too_many_upstreams)
{
	char body[8192];
	size_t off;
	struct conf_service *v = NULL;
	size_t n = 0;

	off = (size_t)snprintf(body, sizeof(body), "{\"service\": {\"name\": "
	    "\"web\", \"connect\": {\"proxy\": {\"upstreams\": [");
	for (int i = 0; i <= CONF_MAX_UPSTREAMS; i++)
		off += (size_t)snprintf(body + off, sizeof(body) - off,
		    "%s{\"destination_name\": \"s\", \"local_bind_port\": %d}",
		    i ? "," : "", 10000 + i);
	snprintf(body + off, sizeof(body) - off, "]}}}}");
	cr_assert_eq(conf_parse_service_json(body, strlen(body), "big", &v, &n,
	    err, sizeof(err)), -1);
	cr_assert_prefix(err, "big:1: service \"web\": too many upstreams "
	    "(max 64)");
	cr_assert_eq(n, 0);
}

/* ---- services_dir, reload ---------------------------------------------- */

static char tmpdir[64];

static void
write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	cr_assert_not_null(f = fopen(path, "w"), "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void
make_tmpdir(void)
{
	char conf_text[512];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(conf_text, sizeof(conf_text), "services_dir = \"%s/d\";\n"
	    "services = ( { name = \"socat\"; port = 8181; } );\n", tmpdir);
	write_file("mesh.conf", conf_text);
}

static void
rm_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

Test(conf, missing_services_dir_is_empty)
{
	char path[128];

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/mesh.conf", tmpdir);
	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n_services, 1);
	rm_tmpdir();
}

Test(conf, services_dir_not_a_directory)
{
	expect_load_error("bad/notdir.conf", "bad/notdir.conf:0: services_dir: "
	    "bad/syntax.conf is not a directory");
}

Test(conf, reload_keeps_old_services_on_error)
{
	char path[128], d[128];
	const struct conf_service *old;

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/mesh.conf", tmpdir);
	snprintf(d, sizeof(d), "%s/d", tmpdir);
	cr_assert_eq(mkdir(d, 0755), 0);
	write_file("d/web.json", "{\"service\": {\"name\": \"web\", "
	    "\"upstreams\": [{\"destination_name\": \"socat\", "
	    "\"local_bind_port\": 9191}]}}");
	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n_services, 2);
	old = c.services;

	/* a second file that clashes: reload fails, nothing changes */
	write_file("d/web2.json", "{\"service\": {\"name\": \"web2\", "
	    "\"upstreams\": [{\"destination_name\": \"socat\", "
	    "\"local_bind_port\": 9191}]}}");
	cr_assert_eq(conf_reload_services(&c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "local_bind_port 9191 on 127.0.0.1 is already "
	    "used") != NULL, "%s", err);
	cr_assert_eq(c.services, old);
	cr_assert_eq(c.n_services, 2);
	cr_assert_str_eq(c.services[1].name, "web");
	cr_assert_eq(c.services[1].upstreams[0].bind_port, 9191);

	/* broken JSON: same */
	write_file("d/web2.json", "{\"service\": ");
	cr_assert_eq(conf_reload_services(&c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "web2.json:1: invalid JSON") != NULL, "%s", err);
	cr_assert_eq(c.services, old);
	cr_assert_eq(c.n_services, 2);

	/* fixed: the new set replaces the old */
	write_file("d/web2.json", "{\"service\": {\"name\": \"web2\", "
	    "\"upstreams\": [{\"destination_name\": \"socat\", "
	    "\"local_bind_port\": 9192}]}}");
	cr_assert_eq(conf_reload_services(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n_services, 3);
	cr_assert_str_eq(c.services[2].name, "web2");
	rm_tmpdir();
}

Test(conf, service_file_over_1mib_rejected)
{
	char path[128];
	FILE *f;

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/big.json", tmpdir);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("{\"service\": {\"name\": \"big\", \"meta\": {\"pad\": \"", f);
	for (int i = 0; i < CONF_FILE_MAX; i++)
		fputc('x', f);
	fputs("\"}}}", f);
	cr_assert_eq(fclose(f), 0);
	{
		struct conf_service *v = NULL;
		size_t n = 0;
		char want[192];

		snprintf(want, sizeof(want), "%s:0: file is larger than", path);
		cr_assert_eq(conf_parse_service_file(path, &v, &n, err,
		    sizeof(err)), -1);
		cr_assert_prefix(err, want);
	}
	rm_tmpdir();
}

/* ---- health checks ----------------------------------------------------- */

Test(conf, good_checks_libconfig)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/checks.conf", &v, &n, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 3);
	cr_assert_eq(v[0].n_checks, 0, "no check: the default (helperd's)");
	cr_assert_eq(v[1].n_checks, 1);
	cr_assert_eq(v[1].checks[0].type, CONF_CHECK_HTTP);
	cr_assert_str_eq(v[1].checks[0].target,
	    "http://127.0.0.1:8080/health?full=1");
	cr_assert_eq(v[1].checks[0].interval_ms, 5000);
	cr_assert_eq(v[1].checks[0].timeout_ms, 500);
	cr_assert_eq(v[2].n_checks, 2);
	cr_assert_eq(v[2].checks[0].type, CONF_CHECK_TTL);
	cr_assert_eq(v[2].checks[0].ttl_ms, 30000);
	cr_assert_eq(v[2].checks[0].interval_ms, 0, "node default");
	cr_assert_eq(v[2].checks[1].type, CONF_CHECK_TCP);
	cr_assert_str_eq(v[2].checks[1].target, "localhost:6379");
	cr_assert_eq(v[2].checks[1].interval_ms, 15000, "plain seconds");
	conf_services_free(v, n);
}

Test(conf, good_checks_consul_json)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_file("good/checks.json", &v, &n, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].n_checks, 2);
	cr_assert_eq(v[0].checks[0].type, CONF_CHECK_HTTP);
	cr_assert_str_eq(v[0].checks[0].target, "http://[::1]/");
	cr_assert_eq(v[0].checks[0].interval_ms, 10000);
	cr_assert_eq(v[0].checks[0].timeout_ms, 1000);
	cr_assert_eq(v[0].checks[1].type, CONF_CHECK_TTL);
	cr_assert_eq(v[0].checks[1].ttl_ms, 60000);
	conf_services_free(v, n);
}

Test(conf, check_interval_key)
{
	conf_defaults(&c, 0);
	cr_assert_eq(conf_set(&c, "check_interval", "1s", "-x", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.check_interval_ms, 1000);
	cr_assert_eq(conf_set(&c, "check_interval", "500ms", "-x", err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "-x: check_interval: 500ms is out of range "
	    "1s..1h");
	expect_load_error("bad/check_interval.conf",
	    "bad/check_interval.conf:2: check_interval: 2h is out of range "
	    "1s..1h");
}

Test(conf, bad_checks_libconfig)
{
	expect_load_error("bad/check_two_kinds.conf",
	    "bad/check_two_kinds.conf:3: service \"web\": check 1: needs "
	    "exactly one of tcp, http or ttl");
	expect_load_error("bad/check_none.conf",
	    "bad/check_none.conf:4: service \"web\": check 2: needs exactly "
	    "one of tcp, http or ttl");
	expect_load_error("bad/check_duration.conf",
	    "bad/check_duration.conf:4: service \"web\": check 1: interval: "
	    "bad duration");
	expect_load_error("bad/check_unknown.conf",
	    "bad/check_unknown.conf:3: service \"web\": check 1: unknown key "
	    "\"script\"");
	expect_load_error("bad/check_http.conf",
	    "bad/check_http.conf:3: service \"web\": check 1: http: "
	    "\"ftp://127.0.0.1/\" is not an http[s]://host[:port]/path URL");
	expect_load_error("bad/check_timeout.conf",
	    "bad/check_timeout.conf:3: service \"web\": check 1: timeout: 2s "
	    "must be shorter than the interval (2s)");
}

/* A Consul JSON service with one check, parsed from memory: 0/-1. */
static int
json_check(const char *check)
{
	char body[1024];
	struct conf_service *v = NULL;
	size_t n = 0;
	int rc;

	snprintf(body, sizeof(body), "{\"service\": {\"name\": \"web\", "
	    "\"port\": 80, \"check\": %s}}", check);
	rc = conf_parse_service_json(body, strlen(body), "req", &v, &n, err,
	    sizeof(err));
	conf_services_free(v, n);
	return rc;
}

Test(conf, bad_checks_json)
{
	static const struct { const char *check, *msg; } bad[] = {
		{ "{\"TCP\": \"127.0.0.1\"}", "req:1: service \"web\": check "
		  "1: tcp: \"127.0.0.1\" is not host:port" },
		{ "{\"TCP\": \"127.0.0.1:0\"}", "req:1: service \"web\": "
		  "check 1: tcp: \"127.0.0.1:0\" is not host:port" },
		{ "{\"HTTP\": \"http://\"}", "req:1: service \"web\": check 1: "
		  "http: \"http://\" is not an http[s]://host[:port]/path URL" },
		{ "{\"HTTP\": \"ftp://x/\"}", "req:1: service \"web\": check "
		  "1: http: \"ftp://x/\" is not an http[s]://" },
		{ "{\"HTTP\": \"http://h:99999/\"}", "req:1: service \"web\": "
		  "check 1: http: " },
		{ "{\"HTTP\": \"http://h/a b\"}", "req:1: service \"web\": "
		  "check 1: http: " },
		{ "{\"TTL\": \"0s\"}", "req:1: service \"web\": check 1: ttl: "
		  "bad duration" },
		{ "{\"TCP\": \"h:1\", \"TTL\": \"5s\"}", "req:1: service "
		  "\"web\": check 1: needs exactly one of tcp, http or ttl" },
		{ "{\"Interval\": \"5s\"}", "req:1: service \"web\": check 1: "
		  "needs exactly one of tcp, http or ttl" },
		{ "{\"TCP\": \"h:1\", \"Interval\": \"5 s\"}", "req:1: "
		  "service \"web\": check 1: interval: bad duration" },
		{ "{\"TCP\": \"h:1\", \"Interval\": \"2h\"}", "req:1: "
		  "service \"web\": check 1: interval: 2h is out of range 1s..1h" },
		{ "{\"TCP\": \"h:1\", \"Interval\": \"1s\", \"Timeout\": "
		  "\"3s\"}", "req:1: service \"web\": check 1: timeout: 3s must "
		  "be shorter than the interval (1s)" },
		{ "{\"GRPC\": \"h:1\"}", "req:1: service \"web\": check 1: "
		  "grpc checks are not supported (only tcp, http and ttl)" },
		{ "[1]", "req:1: service \"web\": check 1: must be an object" },
		{ NULL, NULL },
	};

	for (size_t i = 0; bad[i].check != NULL; i++) {
		cr_assert_eq(json_check(bad[i].check), -1, "%s accepted",
		    bad[i].check);
		cr_assert_prefix(err, bad[i].msg);
	}
	cr_assert_eq(json_check("{\"TCP\": \"db.example:5432\", "
	    "\"Interval\": 30, \"Timeout\": \"250ms\"}"), 0, "%s", err);
	cr_assert_eq(json_check("{\"http\": \"http://localhost:8080\"}"), 0,
	    "%s", err);
	cr_assert_eq(json_check("{\"HTTP\": \"https://web.local/h\", "
	    "\"TLSSkipVerify\": true, \"TLSServerName\": \"web.example\", "
	    "\"SuccessBeforePassing\": 2, \"FailuresBeforeCritical\": 3}"), 0,
	    "%s", err);
	cr_assert_eq(json_check("{\"TCP\": \"h:1\", \"TLSSkipVerify\": true}"),
	    -1);
	cr_assert_prefix(err, "req:1: service \"web\": check 1: tls_skip_verify "
	    "and tls_server_name apply to https checks only");
	cr_assert_eq(json_check("{\"TCP\": \"h:1\", "
	    "\"FailuresBeforeCritical\": 101}"), -1);
	cr_assert_prefix(err, "req:1: service \"web\": check 1: "
	    "success_before_passing and failures_before_critical must be in "
	    "0..100");
	expect_file_error("bad/check_args.json", "bad/check_args.json:1: "
	    "service \"web\": check 1: args checks are not supported");
}

Test(conf, too_many_checks)
{
	static const char body[] = "{\"service\": {\"name\": \"web\", "
	    "\"checks\": [{\"TTL\": \"1s\"}, {\"TTL\": \"1s\"}, "
	    "{\"TTL\": \"1s\"}, {\"TTL\": \"1s\"}, {\"TTL\": \"1s\"}]}}";
	struct conf_service *v = NULL;
	size_t n = 0;

	cr_assert_eq(conf_parse_service_json(body, strlen(body), "req", &v, &n,
	    err, sizeof(err)), -1);
	cr_assert_prefix(err, "req:1: service \"web\": too many checks (max 4)");
}

Test(conf, http_check_url)
{
	char host[CONF_ADDR_MAX], path[CONF_ADDR_MAX];
	int port;

	cr_assert_eq(conf_check_http_parse("http://127.0.0.1:8080/h?x=1",
	    host, sizeof(host), &port, path, sizeof(path)), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 8080);
	cr_assert_str_eq(path, "/h?x=1");
	cr_assert_eq(conf_check_http_parse("http://web.local", host,
	    sizeof(host), &port, path, sizeof(path)), 0);
	cr_assert_str_eq(host, "web.local");
	cr_assert_eq(port, 80);
	cr_assert_str_eq(path, "/");
	cr_assert_eq(conf_check_http_parse("http://[::1]:81?q", host,
	    sizeof(host), &port, path, sizeof(path)), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 81);
	cr_assert_str_eq(path, "/?q");
	cr_assert_eq(conf_check_http_parse("http://[::1", host, sizeof(host),
	    &port, path, sizeof(path)), -1);
	cr_assert_eq(conf_check_http_parse("http://:80/", host, sizeof(host),
	    &port, path, sizeof(path)), -1);
	cr_assert_eq(conf_check_http_parse("http://a_b/", host, sizeof(host),
	    &port, path, sizeof(path)), -1);
}

/* ---- conf_set (command-line flags through the same table) -------------- */

Test(conf, set_through_table)
{
	conf_defaults(&c, 0);
	cr_assert_eq(conf_set(&c, "mesh_port", "21005", "-mesh-port", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.mesh_port, 21005);
	cr_assert_eq(conf_set(&c, "mesh_port", "70000", "-mesh-port", err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "-mesh-port: mesh_port: 70000 is out of range "
	    "0..65535");
	cr_assert_eq(c.mesh_port, 21005);
	cr_assert_eq(conf_set(&c, "store.endpoints", "http://a:2379,http://b:2379",
	    "-x", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.store.n_endpoints, 2);
	cr_assert_str_eq(c.store.endpoints[1], "http://b:2379");
	cr_assert_eq(conf_set(&c, "same_node_mtls", "false", "-x", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.same_node_mtls, 0);
	cr_assert_eq(conf_set(&c, "default_intention", "deny", "-x", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.default_allow, 0);
	cr_assert_eq(conf_set(&c, "ca.nope", "1", "-x", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "-x: unknown key \"ca.nope\"");
	cr_assert_eq(conf_set(&c, "services", "x", "-x", err, sizeof(err)), -1);
	cr_assert_eq(conf_set(&c, "connect_timeout", "soon", "-x", err,
	    sizeof(err)), -1);
	cr_assert_prefix(err, "-x: connect_timeout: bad duration \"soon\"");
}

/* ---- small parsers ----------------------------------------------------- */

Test(conf, durations)
{
	static const struct { const char *s; long secs; } ok[] = {
		{ "72h", 259200 }, { "30m", 1800 }, { "15s", 15 },
		{ "1h30m", 5400 }, { "3600", 3600 }, { "1h1m1s", 3661 },
		{ "87600h", 315360000 }, { "876000h", 3153600000L },
	};
	static const char *const bad[] = { "", "h", "0", "0s", "-5s", "5x",
		"5 s", "1.5h", "1h30", "s5", "876001h", "500ms",
		"99999999999999999999h", NULL };
	long v, ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(conf_parse_duration(ok[i].s, &v), 0, "%s", ok[i].s);
		cr_assert_eq(v, ok[i].secs, "%s: %ld", ok[i].s, v);
	}
	for (size_t i = 0; bad[i] != NULL; i++)
		cr_assert_eq(conf_parse_duration(bad[i], &v), -1, "\"%s\"",
		    bad[i]);
	cr_assert_eq(conf_parse_duration_ms("500ms", &ms), 0);
	cr_assert_eq(ms, 500);
	cr_assert_eq(conf_parse_duration_ms("1s500ms", &ms), 0);
	cr_assert_eq(ms, 1500);
	cr_assert_eq(conf_parse_duration_ms("2", &ms), 0);
	cr_assert_eq(ms, 2000);
	cr_assert_eq(conf_parse_duration_ms("0ms", &ms), -1);
}

Test(conf, valid_names)
{
	static const char *const ok[] = { "web", "socat", "a", "9lives",
		"my_service-2", "A",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",
		NULL };
	static const char *const bad[] = { "", "*", "-web", "_web", "web.1",
		"we b", "web/1", "wéb", "web\n",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl",
		NULL };

	for (size_t i = 0; ok[i] != NULL; i++)
		cr_assert(conf_valid_name(ok[i]), "\"%s\" rejected", ok[i]);
	for (size_t i = 0; bad[i] != NULL; i++)
		cr_assert(!conf_valid_name(bad[i]), "\"%s\" accepted", bad[i]);
	cr_assert(!conf_valid_name(NULL));
}

Test(conf, inbound_parse)
{
	enum conf_inbound in = CONF_INBOUND_PERMISSIVE;

	cr_assert_eq(conf_parse_inbound("strict", &in), 0);
	cr_assert_eq(in, CONF_INBOUND_STRICT);
	cr_assert_eq(conf_parse_inbound("permissive", &in), 0);
	cr_assert_eq(in, CONF_INBOUND_PERMISSIVE);
	cr_assert_eq(conf_parse_inbound("Strict", &in), -1);
}

/* Issue 15: dns_addr, served_addrs, a service's unit. */
Test(conf, served_keys)
{
	uint32_t net;
	int prefix;

	conf_defaults(&c, 0);
	cr_assert_str_eq(c.dns_addr, "127.0.0.1:8600");
	cr_assert_str_eq(c.served_addrs, "127.78.0.0/16");
	cr_assert_eq(conf_set(&c, "dns_addr", "", "-x", err, sizeof(err)), 0);
	cr_assert_eq(conf_set(&c, "dns_addr", "[::1]:53", "-x", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_neq(conf_set(&c, "dns_addr", "localhost:8600", "-x", err,
	    sizeof(err)), 0);
	cr_assert(strstr(err, "is not IP:port") != NULL, "%s", err);
	cr_assert_eq(conf_set(&c, "served_addrs", "127.200.0.0/24", "-x", err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(conf_set(&c, "served_addrs", "", "-x", err,
	    sizeof(err)), 0, "%s", err);
	static const char *const bad[] = { "10.0.0.0/16", "127.78.0.1/16",
		"127.78.0.0/31", "127.78.0.0/7", "127.78.0.0", "127.78.0.0/x",
		"127.78.0.0/16x", "127.300.0.0/16" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_neq(conf_set(&c, "served_addrs", bad[i], "-x", err,
		    sizeof(err)), 0, "%s accepted", bad[i]);
		cr_assert(strstr(err, "is not a loopback block") != NULL,
		    "%s", err);
	}
	cr_assert_eq(conf_parse_loopback_block("127.78.0.0/16", &net,
	    &prefix), 0);
	cr_assert_eq(net, 0x7f4e0000u);
	cr_assert_eq(prefix, 16);
	cr_assert(conf_valid_unit("billing.service"));
	cr_assert(conf_valid_unit("app@1.service"));
	cr_assert(conf_valid_unit("session-3.scope"));
	cr_assert(!conf_valid_unit("billing"));
	cr_assert(!conf_valid_unit("billing."));
	cr_assert(!conf_valid_unit(".service"));
	cr_assert(!conf_valid_unit("bil ling.service"));
	cr_assert(!conf_valid_unit("a/b.service"));
}

Test(conf, service_unit_json_and_bad)
{
	struct conf_service *svcs = NULL;
	size_t n = 0;
	const char *j = "{\"service\": {\"name\": \"billing\", \"port\": 80, "
	    "\"unit\": \"billing.service\"}}";
	const char *b = "{\"service\": {\"name\": \"billing\", \"port\": 80, "
	    "\"unit\": \"billing service\"}}";

	cr_assert_eq(conf_parse_service_json(j, strlen(j), "api", &svcs, &n,
	    err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(svcs[0].unit, "billing.service");
	cr_assert_neq(conf_parse_service_json(b, strlen(b), "api", &svcs, &n,
	    err, sizeof(err)), 0);
	cr_assert(strstr(err, "unit: \"billing service\" is not a systemd "
	    "unit name") != NULL, "%s", err);
	conf_services_free(svcs, n);
}

/* A key Consul does not define is an error naming it and, when close, the
 * key meant (issue 11); Consul's keys that helperd ignores still load. */
Test(conf, json_unknown_keys)
{
	static const struct { const char *json, *want; } bad[] = {
		{ "{\"service\": {\"name\": \"web\", \"chekc\": {}}}",
		  "x:1: service \"web\": unknown key \"chekc\" (did you mean "
		  "\"check\"?)" },
		{ "{\"Name\": \"web\", \"Portt\": 80}",
		  "x:1: service \"web\": unknown key \"Portt\" (did you mean "
		  "\"port\"?)" },
		{ "{\"servcie\": {\"name\": \"web\"}, \"service\": {}}",
		  "x:1: unknown key \"servcie\" (did you mean \"service\"?)" },
		{ "{\"service\": {\"name\": \"web\", \"check\": {\"tcp\": "
		  "\"h:1\", \"Intreval\": \"5s\"}}}",
		  "x:1: service \"web\": check 1: unknown key \"Intreval\" (did "
		  "you mean \"interval\"?)" },
		{ "{\"service\": {\"name\": \"web\", \"connect\": {\"proxy\": "
		  "{\"upstreams\": [{\"destination_name\": \"db\", "
		  "\"LocalBindPrt\": 5}]}}}}",
		  "x:1: service \"web\": upstream 1: unknown key "
		  "\"LocalBindPrt\" (did you mean \"local_bind_port\"?)" },
		{ "{\"service\": {\"name\": \"web\", \"connect\": "
		  "{\"sidecar_servce\": {}}}}",
		  "x:1: service \"web\": connect: unknown key \"sidecar_servce\" "
		  "(did you mean \"sidecar_service\"?)" },
		{ "{\"service\": {\"name\": \"web\", \"xy\": 1}}",
		  "x:1: service \"web\": unknown key \"xy\" (not a field of a "
		  "Consul service definition; see mesh.conf(5))" },
		{ "{\"service\": {\"name\": \"web\", \"a\\u0001\\\"b\": 1}}",
		  "x:1: service \"web\": unknown key \"a??b\"" },
	};
	static const char good[] = "{\"service\": {\"name\": \"web\", "
	    "\"port\": 80, \"tags\": [\"a\"], \"Meta\": {\"chekc\": \"x\"}, "
	    "\"weights\": {\"passing\": 1}, \"tagged_addresses\": {}, "
	    "\"kind\": \"\", \"check\": {\"CheckID\": \"c\", \"Name\": \"n\", "
	    "\"TCP\": \"h:1\", \"Interval\": \"5s\", \"Notes\": \"\", "
	    "\"DeregisterCriticalServiceAfter\": \"90m\"}, "
	    "\"connect\": {\"sidecar_service\": {\"proxy\": {\"mode\": "
	    "\"direct\", \"upstreams\": [{\"destination_name\": \"db\", "
	    "\"local_bind_port\": 5, \"datacenter\": \"dc1\", "
	    "\"mesh_gateway\": {}}]}}}}}";
	struct conf_service *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(conf_parse_service_json(bad[i].json,
		    strlen(bad[i].json), "x", &v, &n, err, sizeof(err)), -1,
		    "accepted: %s", bad[i].json);
		cr_assert_prefix(err, bad[i].want);
		cr_assert_eq(n, 0);
	}
	cr_assert_eq(conf_parse_service_json(good, strlen(good), "x", &v, &n,
	    err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].n_upstreams, 1);
	conf_services_free(v, n);
}

/* A *.hcl file in services_dir is skipped, and the load says so. */
Test(conf, hcl_skipped_with_notice)
{
	char path[128], d[128];

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/mesh.conf", tmpdir);
	snprintf(d, sizeof(d), "%s/d", tmpdir);
	cr_assert_eq(mkdir(d, 0755), 0);
	write_file("d/cache.hcl", "service { name = \"cache\" }\n");
	conf_defaults(&c, 0);
	cr_assert_eq(conf_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n_services, 1);
	cr_assert(strstr(c.notices, "/d/cache.hcl: skipped: HCL is not "
	    "supported; write the service definition as JSON (cache.json, "
	    "Consul's JSON form) or libconfig (.conf)\n") != NULL, "%s",
	    c.notices);
	unlink(strcat(d, "/cache.hcl"));
	cr_assert_eq(conf_reload_services(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.notices, "");
	rm_tmpdir();
}

/* The keys a reload would change, by name (what helperd cannot apply
 * live), never the values. */
Test(conf, diff_names_changed_keys)
{
	static struct conf a, b;
	static const char *const skip[] = { "default_intention", NULL };
	char out[256];

	conf_defaults(&a, 0);
	conf_defaults(&b, 0);
	cr_assert_eq(conf_diff(&a, &b, NULL, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	b.mesh_port = 21001;
	b.default_allow = !a.default_allow;
	strcpy(b.store.password, "secret");
	b.ca.leaf_ttl = a.ca.leaf_ttl + 1;
	cr_assert_eq(conf_diff(&a, &b, skip, out, sizeof(out)), 3);
	cr_assert_str_eq(out, "mesh_port, ca.leaf_ttl, store.password");
	cr_assert_eq(conf_diff(&a, &b, NULL, out, sizeof(out)), 4);
	cr_assert(strstr(out, "default_intention") != NULL, "%s", out);
	cr_assert_eq(conf_diff(&a, &b, skip, out, 12), 3);
	cr_assert_str_eq(out, "mesh_port, ");
	conf_free(&a);
	conf_free(&b);
}
