/* services: services registered through the API (kept in
 * data_dir/services.json), the catalog rebuilt from them and the config,
 * and reload. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/acl.h"
#include "helperd/obs/accesslog.h"
#include "helperd/identity/ca.h"
#include "helperd/model/catalog.h"
#include "helperd/cluster/cluster.h"
#include "helperd/local/ctl.h"
#include "helperd/local/direct.h"
#include "helperd/local/dns.h"
#include "helperd/local/health.h"
#include "helperd/node/helperd.h"
#include "helperd/node/node_int.h"
#include "helperd/api/http.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay.h"
#include "helperd/local/served.h"
#include "helperd/relay/tls.h"

/* Services ------------------------------------------------------------- */

int
node_catalog_refresh(struct helperd *h)
{
	if (catalog_set_local(h->catalog, h->conf.services,
	    h->conf.n_services, h->api_services, h->n_api_services) != 0)
		return -1;
	health_sync(h->health);
	helperd_leaves_warm(h);
	cluster_services_changed(h->cluster);
	if (h->served != NULL)
		served_sync(h->served);
	return 0;
}

static json_t *
service_def_json(const struct conf_service *s)
{
	json_t *ups = json_array();

	for (size_t i = 0; i < s->n_upstreams; i++)
		json_array_append_new(ups, json_pack("{s:s, s:s, s:i}",
		    "destination_name", s->upstreams[i].dest,
		    "local_bind_address", s->upstreams[i].bind_addr,
		    "local_bind_port", s->upstreams[i].bind_port));
	json_t *checks = json_array();

	for (size_t i = 0; i < s->n_checks; i++) {
		const struct conf_check *k = &s->checks[i];
		json_t *o = json_object();
		char d[32];

		if (k->type == CONF_CHECK_TTL) {
			snprintf(d, sizeof(d), "%ldms", k->ttl_ms);
			json_object_set_new(o, "ttl", json_string(d));
		} else {
			json_object_set_new(o, k->type == CONF_CHECK_TCP ?
			    "tcp" : "http", json_string(k->target));
		}
		if (k->interval_ms > 0) {
			snprintf(d, sizeof(d), "%ldms", k->interval_ms);
			json_object_set_new(o, "interval", json_string(d));
		}
		if (k->timeout_ms > 0) {
			snprintf(d, sizeof(d), "%ldms", k->timeout_ms);
			json_object_set_new(o, "timeout", json_string(d));
		}
		json_array_append_new(checks, o);
	}
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:{s:o}}, s:o}",
	    "id", s->id, "name", s->name, "address", s->address,
	    "port", s->port, "inbound",
	    s->inbound == CONF_INBOUND_STRICT ? "strict" : "permissive",
	    "connect", "proxy", "upstreams", ups, "checks", checks);
}

static int
api_services_save(struct helperd *h, char *err, size_t errlen)
{
	json_t *a;

	/* No registrations: no file ({"services": []} would not load). */
	if (h->n_api_services == 0) {
		char path[CONF_PATH_MAX + 32];

		node_path_in(path, sizeof(path), h, "services.json");
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	a = json_array();

	for (size_t i = 0; i < h->n_api_services; i++) {
		json_t *j = service_def_json(&h->api_services[i]);
		if (h->api_services[i].user[0] != '\0')
			json_object_set_new(j, "user",
			    json_string(h->api_services[i].user));
		if (h->api_services[i].unit[0] != '\0')
			json_object_set_new(j, "unit",
			    json_string(h->api_services[i].unit));
		json_array_append_new(a, j);
	}
	return node_write_json(h, "services.json", json_pack("{s:o}", "services",
	    a), 0600, err, errlen);
}

int
helperd_service_register(struct helperd *h, struct conf_service *svcs,
    size_t n, char *err, size_t errlen)
{
	struct conf_service *v;
	size_t old_n = h->n_api_services;

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < h->conf.n_services; j++)
			if (strcmp(h->conf.services[j].name,
			    svcs[i].name) == 0 ||
			    strcmp(h->conf.services[j].id, svcs[i].id) == 0) {
				snprintf(err, errlen, "service %s is defined "
				    "in %s; change it there", svcs[i].name,
				    h->conf.services[j].source);
				return -1;
			}
	}
	v = calloc(old_n + n, sizeof(*v));
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Re-registering an ID replaces it, as Consul does. */
	size_t k = 0;
	for (size_t i = 0; i < old_n; i++) {
		int replaced = 0;
		for (size_t j = 0; j < n; j++)
			if (strcmp(h->api_services[i].id, svcs[j].id) == 0)
				replaced = 1;
		if (replaced)
			conf_service_clear(&h->api_services[i]);
		else
			v[k++] = h->api_services[i];
	}
	for (size_t j = 0; j < n; j++)
		v[k++] = svcs[j];
	free(h->api_services);
	free(svcs);
	h->api_services = v;
	h->n_api_services = k;
	if (api_services_save(h, err, errlen) != 0)
		log_err("%s (the registration is kept in memory)", err);
	node_catalog_refresh(h);
	log_info("registered %zu service(s) through the API", n);
	return 0;
}

int
helperd_service_deregister(struct helperd *h, const char *id, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < h->n_api_services; i++) {
		if (strcmp(h->api_services[i].id, id) != 0)
			continue;
		conf_service_clear(&h->api_services[i]);
		memmove(&h->api_services[i], &h->api_services[i + 1],
		    (h->n_api_services - i - 1) * sizeof(*h->api_services));
		h->n_api_services--;
		if (api_services_save(h, err, errlen) != 0)
			log_err("%s", err);
		node_catalog_refresh(h);
		log_info("deregistered service %s", id);
		return 0;
	}
	snprintf(err, errlen, "Unknown service ID %s (only services "
	    "registered through the API can be deregistered)", id);
	return -1;
}

/* data_dir/services.json (API registrations) into *svcs; a missing file
 * is no registration. */
static int
api_services_read(const char *data_dir, struct conf_service **svcs,
    size_t *n, char *err, size_t errlen)
{
	char path[CONF_PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/services.json", data_dir);
	if (access(path, F_OK) != 0)
		return 0;
	return conf_parse_service_file(path, svcs, n, err, errlen);
}

int
node_api_services_load(struct helperd *h, char *err, size_t errlen)
{
	return api_services_read(h->conf.data_dir, &h->api_services,
	    &h->n_api_services, err, errlen);
}

/* access_log and the log settings, from h->conf: at start, and at each
 * reload (SIGHUP reopens the files, for logrotate). */
int
node_observe_apply(struct helperd *h, char *err, size_t errlen)
{
	int lvl = h->log_level_flag >= 0 ? h->log_level_flag :
	    log_level_parse(h->conf.log_level);

	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	log_set_json(h->log_json_flag || h->conf.log_json);
	if (log_set_file(h->conf.log_file, h->conf.log_rotate_bytes,
	    h->conf.log_rotate_max_files, err, errlen) != 0)
		return -1;
	return accesslog_configure(h->alog, h->conf.access_log.path,
	    h->conf.access_log.json, err, errlen);
}

int
helperd_check_state(const struct conf *c, size_t *n_api, char *err,
    size_t errlen)
{
	struct conf_service *v = NULL;
	size_t n = 0;

	*n_api = 0;
	if (c->dev)
		return 0;    /* -dev: a new temporary data_dir */
	if (api_services_read(c->data_dir, &v, &n, err, errlen) != 0)
		return -1;
	conf_services_free(v, n);
	*n_api = n;
	return 0;
}

int
helperd_reload(struct helperd *h, char *err, size_t errlen)
{
	struct conf nc;
	int old_default = h->conf.default_allow;

	h->reload_note[0] = '\0';
	if (h->conf.path[0] == '\0') {
		/* -dev without a file: only services_dir can change. */
		if (conf_reload_services(&h->conf, err, errlen) != 0)
			return -1;
		helperd_reload_note(h, &h->conf);
	} else {
		conf_defaults(&nc, h->conf.dev);
		if (conf_load(&nc, h->conf.path, err, errlen) != 0) {
			conf_free(&nc);
			return -1;
		}
		conf_services_free(h->conf.services, h->conf.n_services);
		h->conf.services = nc.services;
		h->conf.n_services = nc.n_services;
		nc.services = NULL;
		nc.n_services = 0;
		h->conf.default_allow = nc.default_allow;
		h->conf.access_log = nc.access_log;
		memcpy(h->conf.log_level, nc.log_level,
		    sizeof(h->conf.log_level));
		h->conf.log_json = nc.log_json;
		memcpy(h->conf.log_file, nc.log_file, sizeof(h->conf.log_file));
		h->conf.log_rotate_bytes = nc.log_rotate_bytes;
		h->conf.log_rotate_max_files = nc.log_rotate_max_files;
		memcpy(h->conf.services_dir, nc.services_dir,
		    sizeof(h->conf.services_dir));
		memcpy(h->conf.notices, nc.notices, sizeof(h->conf.notices));
		/* Whatever was not copied above is not applied: say so. */
		helperd_reload_note(h, &nc);
		conf_free(&nc);
	}
	if (node_catalog_refresh(h) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	{
		char aerr[CONF_ERR_MAX];

		/* The previous file stays in use: say so, reload the rest. */
		if (node_observe_apply(h, aerr, sizeof(aerr)) != 0)
			log_err("reload: %s (the previous file stays in "
			    "use)", aerr);
	}
	log_info("reloaded: %zu service(s) from the configuration, "
	    "default_intention = %s", h->conf.n_services,
	    h->conf.default_allow ? "allow" : "deny");
	if (old_default != h->conf.default_allow)
		helperd_intentions_changed(h, "default_intention changed by "
		    "reload");
	return 0;
}
