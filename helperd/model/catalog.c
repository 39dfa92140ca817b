#include "helperd/model/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct catalog {
	char node[CONF_NAME_MAX];
	char dc[CONF_NAME_MAX];
	char address[CONF_ADDR_MAX];
	int mesh_port;
	const struct conf_service **local;
	size_t n_local;
	struct remote *remote;          /* other nodes' instances (etcd) */
	size_t n_remote;
	struct catalog_health_ops health;
	int have_health;
	uint64_t gen;                   /* bumped by every change */
};

/* An instance on another node, as registered in the cluster store. */
struct remote {
	char key[CATALOG_KEY_MAX];
	char node[CONF_NAME_MAX];
	char address[CONF_ADDR_MAX];
	int mesh_port;
	struct conf_service svc;        /* name, id, address, port */
	enum catalog_status status;     /* as its node published it */
	char output[CATALOG_OUTPUT_MAX];
};

static const char *const status_names[] = { "passing", "warning",
	"critical" };

const char *
catalog_status_name(enum catalog_status st)
{
	return (unsigned)st < UTIL_ARRAY_LEN(status_names) ?
	    status_names[st] : "critical";
}

int
catalog_status_parse(const char *s, enum catalog_status *out)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(status_names); i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum catalog_status)i;
			return 0;
		}
	}
	return -1;
}

void
catalog_set_health(struct catalog *c, const struct catalog_health_ops *ops)
{
	if (ops != NULL)
		c->health = *ops;
	c->have_health = ops != NULL;
	c->gen++;
}

int
catalog_new(struct catalog **out, const char *node, const char *dc)
{
	struct catalog *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	util_strlcpy(c->node, node, sizeof(c->node));
	util_strlcpy(c->dc, dc, sizeof(c->dc));
	util_strlcpy(c->address, "127.0.0.1", sizeof(c->address));
	*out = c;
	return 0;
}

void
catalog_free(struct catalog *c)
{
	if (c == NULL)
		return;
	free(c->local);
	free(c->remote);
	free(c);
}

void
catalog_set_node(struct catalog *c, const char *address, int mesh_port)
{
	util_strlcpy(c->address, address, sizeof(c->address));
	c->mesh_port = mesh_port;
	c->gen++;
}

uint64_t
catalog_generation(const struct catalog *c)
{
	uint64_t g = c->gen;

	if (c->have_health && c->health.generation != NULL)
		g += c->health.generation(c->health.arg);
	return g;
}

int
catalog_set_local(struct catalog *c, const struct conf_service *cfg,
    size_t n_cfg, const struct conf_service *api, size_t n_api)
{
	const struct conf_service **v;
	size_t n = 0;

	v = calloc(n_cfg + n_api + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	for (size_t i = 0; i < n_cfg; i++)
		v[n++] = &cfg[i];
	/* Instances are keyed by ID (as Consul's): several instances of a
	 * name may be registered. An API registration of a name or ID the
	 * config already has is refused by the API; skip one here
	 * defensively rather than duplicate. */
	for (size_t i = 0; i < n_api; i++) {
		size_t j;

		for (j = 0; j < n; j++)
			if (strcmp(v[j]->id, api[i].id) == 0 ||
			    (j < n_cfg && strcmp(v[j]->name, api[i].name) == 0))
				break;
		if (j == n)
			v[n++] = &api[i];
	}
	free(c->local);
	c->local = v;
	c->n_local = n;
	c->gen++;
	return 0;
}

const struct conf_service *
catalog_local(const struct catalog *c, const char *name)
{
	for (size_t i = 0; i < c->n_local; i++)
		if (strcmp(c->local[i]->name, name) == 0)
			return c->local[i];
	return NULL;
}

size_t
catalog_local_count(const struct catalog *c)
{
	return c->n_local;
}

const struct conf_service *
catalog_local_at(const struct catalog *c, size_t i)
{
	return i < c->n_local ? c->local[i] : NULL;
}

static int
remote_match(const struct remote *r, const char *name, int passing_only)
{
	return strcmp(r->svc.name, name) == 0 &&
	    (!passing_only || r->status == CATALOG_PASSING);
}

static size_t
instances(const struct catalog *c, const char *name,
    struct catalog_instance *out, size_t max, int passing_only,
    size_t spread)
{
	size_t n = 0, first = 0, m = 0;

	for (size_t i = 0; i < c->n_local && n < max; i++) {
		const char *output = "";
		enum catalog_status st = CATALOG_PASSING;

		if (strcmp(c->local[i]->name, name) != 0)
			continue;
		const struct conf_service *svc = c->local[i], *prev;

		if (c->have_health) {
			st = c->health.status(c->health.arg, svc, &output);
			/* Changed and not ready yet: its previous
			 * definition serves meanwhile. */
			if (st != CATALOG_PASSING && c->health.previous != NULL &&
			    (prev = c->health.previous(c->health.arg, svc,
			    &output)) != NULL) {
				svc = prev;
				st = CATALOG_PASSING;
			}
		}
		if (passing_only && st != CATALOG_PASSING)
			continue;
		out[n].node = c->node;
		out[n].address = c->address;
		out[n].mesh_port = c->mesh_port;
		out[n].svc = svc;
		out[n].local = 1;
		out[n].status = st;
		out[n].output = output;
		n++;
	}
	if (spread > 0) {
		for (size_t i = 0; i < c->n_remote; i++)
			m += remote_match(&c->remote[i], name, passing_only);
		first = m > 0 ? spread % m : 0;
	}
	/* The matches from the first-th on, then (a second pass) the ones
	 * before it. */
	for (size_t k = 0, seen = 0; k < (first > 0 ? 2 : 1) * c->n_remote &&
	    n < max; k++) {
		size_t i = k % c->n_remote;

		if (!remote_match(&c->remote[i], name, passing_only))
			continue;
		if (k < c->n_remote ? seen++ < first : seen++ >= m + first)
			continue;
		out[n].node = c->remote[i].node;
		out[n].address = c->remote[i].address;
		out[n].mesh_port = c->remote[i].mesh_port;
		out[n].svc = &c->remote[i].svc;
		out[n].local = 0;
		out[n].status = c->remote[i].status;
		out[n].output = c->remote[i].output;
		n++;
	}
	return n;
}

size_t
catalog_instances(const struct catalog *c, const char *name,
    struct catalog_instance *out, size_t max)
{
	return instances(c, name, out, max, 1, 0);
}

size_t
catalog_instances_spread(const struct catalog *c, const char *name,
    size_t spread, struct catalog_instance *out, size_t max)
{
	return instances(c, name, out, max, 1, spread);
}

size_t
catalog_instances_all(const struct catalog *c, const char *name,
    struct catalog_instance *out, size_t max)
{
	return instances(c, name, out, max, 0, 0);
}

/* Remote instances --------------------------------------------------- */

static int
jstr(const json_t *o, const char *key, char *dst, size_t len, int required)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL && !required) {
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
		return -1;
	util_strlcpy(dst, json_string_value(v), len);
	return 0;
}

static int
jport(const json_t *o, const char *key, int *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > 65535)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

int
catalog_remote_put(struct catalog *c, const char *key, const char *value,
    size_t len, char *why, size_t whylen)
{
	struct remote r, *v;
	json_error_t je;
	json_t *j;
	size_t i;

	memset(&r, 0, sizeof(r));
	if (strlen(key) >= sizeof(r.key)) {
		snprintf(why, whylen, "key too long");
		return -1;
	}
	util_strlcpy(r.key, key, sizeof(r.key));
	if ((j = json_loadb(value, len, 0, &je)) == NULL) {
		snprintf(why, whylen, "not JSON: %s", je.text);
		return -1;
	}
	if (!json_is_object(j) ||
	    jstr(j, "Node", r.node, sizeof(r.node), 1) != 0 ||
	    jstr(j, "Address", r.address, sizeof(r.address), 1) != 0 ||
	    jport(j, "MeshPort", &r.mesh_port) != 0 ||
	    jstr(j, "Service", r.svc.name, sizeof(r.svc.name), 1) != 0 ||
	    jstr(j, "ID", r.svc.id, sizeof(r.svc.id), 0) != 0 ||
	    jstr(j, "ServiceAddress", r.svc.address, sizeof(r.svc.address),
	    0) != 0 ||
	    jport(j, "Port", &r.svc.port) != 0 ||
	    jstr(j, "User", r.svc.user, sizeof(r.svc.user), 0) != 0 ||
	    !conf_valid_name(r.svc.name)) {
		json_decref(j);
		snprintf(why, whylen, "not an instance (Node, Address, "
		    "MeshPort, Service, Port)");
		return -1;
	}
	{
		const json_t *st = json_object_get(j, "Status");
		const json_t *out = json_object_get(j, "Output");

		r.status = CATALOG_PASSING;     /* nodes without health checks */
		if (st != NULL && (!json_is_string(st) || catalog_status_parse(
		    json_string_value(st), &r.status) != 0)) {
			json_decref(j);
			snprintf(why, whylen, "Status is not passing, warning or "
			    "critical");
			return -1;
		}
		if (json_is_string(out))
			util_strlcpy(r.output, json_string_value(out),
			    sizeof(r.output));
	}
	json_decref(j);
	/* Restricted on its node: only the same user here (or root). */
	if (r.svc.user[0] != '\0' && conf_user_uid(r.svc.user, &r.svc.uid) != 0)
		r.svc.uid = (uid_t)-1;
	if (r.svc.id[0] == '\0')
		util_strlcpy(r.svc.id, r.svc.name, sizeof(r.svc.id));
	r.svc.connect = 1;
	for (i = 0; i < c->n_remote; i++)
		if (strcmp(c->remote[i].key, key) == 0)
			break;
	if (i == c->n_remote) {
		if (c->n_remote >= CATALOG_REMOTE_MAX) {
			snprintf(why, whylen, "more than %d remote instances",
			    CATALOG_REMOTE_MAX);
			return -1;
		}
		v = realloc(c->remote, (c->n_remote + 1) * sizeof(*v));
		if (v == NULL) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		c->remote = v;
		c->n_remote++;
	}
	c->remote[i] = r;
	c->gen++;
	return 0;
}

int
catalog_remote_port(const struct catalog *c, const char *key)
{
	for (size_t i = 0; i < c->n_remote; i++)
		if (strcmp(c->remote[i].key, key) == 0)
			return c->remote[i].svc.port;
	return -1;
}

int
catalog_remote_del(struct catalog *c, const char *key)
{
	for (size_t i = 0; i < c->n_remote; i++) {
		if (strcmp(c->remote[i].key, key) != 0)
			continue;
		memmove(&c->remote[i], &c->remote[i + 1],
		    (c->n_remote - i - 1) * sizeof(*c->remote));
		c->n_remote--;
		c->gen++;
		return 1;
	}
	return 0;
}

void
catalog_remote_clear(struct catalog *c)
{
	free(c->remote);
	c->remote = NULL;
	c->n_remote = 0;
	c->gen++;
}

size_t
catalog_remote_count(const struct catalog *c)
{
	return c->n_remote;
}

const struct conf_service *
catalog_remote_at(const struct catalog *c, size_t i)
{
	return i < c->n_remote ? &c->remote[i].svc : NULL;
}

const char *
catalog_remote_name_at(const struct catalog *c, size_t i)
{
	return i < c->n_remote ? c->remote[i].svc.name : NULL;
}

json_t *
catalog_remote_dump(const struct catalog *c)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < c->n_remote; i++) {
		const struct remote *r = &c->remote[i];
		json_t *v = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:s, "
		    "s:s}", "Node", r->node, "Address", r->address, "MeshPort",
		    r->mesh_port, "Service", r->svc.name, "ID", r->svc.id,
		    "ServiceAddress", r->svc.address, "Port", r->svc.port,
		    "Status", catalog_status_name(r->status), "Output",
		    r->output);
		char *txt = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;

		json_decref(v);
		if (txt != NULL)
			json_object_set_new(o, r->key, json_string(txt));
		free(txt);
	}
	return o;
}

static json_t *
upstreams_json(const struct conf_service *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->n_upstreams; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i}",
		    "DestinationType", "service",
		    "DestinationName", s->upstreams[i].dest,
		    "LocalBindAddress", s->upstreams[i].bind_addr,
		    "LocalBindPort", s->upstreams[i].bind_port));
	return a;
}

static json_t *
service_json(const struct conf_service *s)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:[], s:{}, s:s, s:s}",
	    "ID", s->id, "Service", s->name, "Address", s->address,
	    "Port", s->port, "Tags", "Meta", "Namespace", "default",
	    "Inbound", s->inbound == CONF_INBOUND_STRICT ? "strict" :
	    "permissive");

	if (s->connect)
		json_object_set_new(j, "Connect", json_pack("{s:{s:o}}",
		    "Proxy", "Upstreams", upstreams_json(s)));
	if (s->user[0] != '\0')
		json_object_set_new(j, "User", json_string(s->user));
	return j;
}

json_t *
catalog_agent_services_json(const struct catalog *c)
{
	json_t *o = json_object();

	for (size_t i = 0; i < c->n_local; i++)
		json_object_set_new(o, c->local[i]->id,
		    service_json(c->local[i]));
	return o;
}

json_t *
catalog_services_json(const struct catalog *c)
{
	json_t *o = json_object();

	for (size_t i = 0; i < c->n_local; i++)
		json_object_set_new(o, c->local[i]->name, json_array());
	for (size_t i = 0; i < c->n_remote; i++)
		json_object_set_new(o, c->remote[i].svc.name, json_array());
	return o;
}

json_t *
catalog_nodes_json(const struct catalog *c)
{
	json_t *a = json_pack("[{s:s, s:s, s:s, s:{}}]", "Node", c->node,
	    "Address", c->address, "Datacenter", c->dc, "Meta");

	for (size_t i = 0; i < c->n_remote; i++) {
		size_t k;
		json_t *e;

		json_array_foreach(a, k, e)
			if (strcmp(json_string_value(json_object_get(e,
			    "Node")), c->remote[i].node) == 0)
				break;
		if (k == json_array_size(a))
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, "
			    "s:{}}", "Node", c->remote[i].node, "Address",
			    c->remote[i].address, "Datacenter", c->dc,
			    "Meta"));
	}
	return a;
}

static json_t *
instance_json(const struct catalog *c, const struct catalog_instance *in)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:b}",
	    "Node", in->node, "Address", in->address, "Datacenter", c->dc,
	    "ServiceID", in->svc->id, "ServiceName", in->svc->name,
	    "ServiceAddress", in->svc->address, "ServicePort", in->svc->port,
	    "MeshPort", in->mesh_port, "ServiceConnectNative", 0);
}

/* Every instance of name, whatever the catalog's size (the API lists
 * them all; a fixed array here cut a service on 100 nodes to 64). A
 * malloc'd array to free, n set; NULL (n 0) when out of memory. */
static struct catalog_instance *
instances_alloc(const struct catalog *c, const char *name, size_t *n)
{
	size_t max = c->n_local + c->n_remote;
	struct catalog_instance *in = calloc(max > 0 ? max : 1, sizeof(*in));

	*n = in != NULL ? catalog_instances_all(c, name, in, max) : 0;
	return in;
}

json_t *
catalog_service_json(const struct catalog *c, const char *name)
{
	size_t n;
	struct catalog_instance *in = instances_alloc(c, name, &n);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, instance_json(c, &in[i]));
	free(in);
	return a;
}

json_t *
catalog_health_json(const struct catalog *c, const char *name,
    int passing_only)
{
	size_t n;
	struct catalog_instance *in = instances_alloc(c, name, &n);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *checks;

		if (passing_only && in[i].status != CATALOG_PASSING)
			continue;
		checks = json_pack("[{s:s, s:s, s:s, s:s, s:s, s:s, s:s}]",
		    "Node", in[i].node, "CheckID", "serfHealth", "Name",
		    "Serf Health Status", "Status", "passing", "Output",
		    "Agent alive and reachable", "ServiceID", "",
		    "ServiceName", "");
		if (in[i].local && c->have_health &&
		    c->health.checks_json != NULL) {
			json_t *lc = c->health.checks_json(c->health.arg,
			    in[i].svc);

			if (lc != NULL)
				json_array_extend(checks, lc);
			json_decref(lc);
		} else if (!in[i].local) {
			char cid[CONF_NAME_MAX + 16], cname[CONF_NAME_MAX + 32];

			snprintf(cid, sizeof(cid), "service:%s", in[i].svc->id);
			snprintf(cname, sizeof(cname), "Service '%s' check",
			    in[i].svc->name);
			json_array_append_new(checks, json_pack("{s:s, s:s, s:s, "
			    "s:s, s:s, s:s, s:s}", "Node", in[i].node,
			    "CheckID", cid, "Name", cname, "Status",
			    catalog_status_name(in[i].status), "Output",
			    in[i].output, "ServiceID", in[i].svc->id,
			    "ServiceName", in[i].svc->name));
		}
		json_array_append_new(a, json_pack("{s:{s:s,s:s,s:s}, s:o, "
		    "s:o}", "Node", "Node", in[i].node, "Address",
		    in[i].address, "Datacenter", c->dc,
		    "Service", service_json(in[i].svc), "Checks", checks));
	}
	free(in);
	return a;
}

const char *
catalog_remote_user(const struct catalog *c, const char *name)
{
	const char *found = NULL;

	for (size_t i = 0; i < c->n_remote; i++) {
		const struct remote *r = &c->remote[i];

		if (strcmp(r->svc.name, name) != 0)
			continue;
		if (r->svc.user[0] != '\0')
			return r->svc.user;
		found = "";
	}
	return found;
}
