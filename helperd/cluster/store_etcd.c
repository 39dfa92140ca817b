/* store_etcd: blocking etcd v3 JSON-gateway client (see store_etcd.h):
 * the client, its KV, lease and watch calls. The transport (one POST,
 * authentication, failover, base64) is store_etcd_http.c's. */
#include "helperd/cluster/store_etcd_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/log.h"
#include "common/util.h"

/* JSON helpers ---------------------------------------------------------- */

/* int64 fields come as JSON strings ("123") from the gateway. */
static int64_t
jint(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	if (json_is_integer(v))
		return json_integer_value(v);
	return 0;
}

static json_t *
jb64(const char *s)
{
	char *e = etcd_b64_encode(s, strlen(s));
	json_t *j = e != NULL ? json_string(e) : NULL;

	free(e);
	return j;
}

/* The key just after every key that starts with prefix (etcd's
 * range_end for a prefix), or NULL (out of memory, or a prefix of 0xff
 * bytes only, which the callers' prefixes, ending in '/', never are). */
static char *
prefix_end(const char *prefix)
{
	char *p = strdup(prefix);
	size_t n = p != NULL ? strlen(p) : 0;

	while (n > 0) {
		if ((unsigned char)p[n - 1] < 0xff) {
			p[n - 1]++;
			p[n] = '\0';
			return p;
		}
		n--;
	}
	free(p);
	return NULL;
}

static int
kv_decode(const json_t *j, struct etcd_kv *kv)
{
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *v = json_string_value(json_object_get(j, "value"));

	memset(kv, 0, sizeof(*kv));
	if (k == NULL || (kv->key = etcd_b64_decode(k, NULL)) == NULL)
		return -1;
	kv->value = etcd_b64_decode(v != NULL ? v : "", &kv->vlen);
	if (kv->value == NULL) {
		free(kv->key);
		return -1;
	}
	kv->mod_revision = jint(j, "mod_revision");
	kv->lease = jint(j, "lease");
	return 0;
}

void
etcd_kvs_free(struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; kvs != NULL && i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}
/* Client ------------------------------------------------------------- */

int
etcd_new(struct etcd **out, const struct conf_store_cfg *cfg, char *err,
    size_t errlen)
{
	struct etcd *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (e == NULL)
		goto oom;
	e->cfg = *cfg;
	memset(e->cfg.endpoints, 0, sizeof(e->cfg.endpoints));
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		if ((e->eps[i] = strdup(cfg->endpoints[i])) == NULL)
			goto oom;
		e->n_eps++;
	}
	if ((e->easy = curl_easy_init()) == NULL ||
	    (e->multi = curl_multi_init()) == NULL)
		goto oom;
	*out = e;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	etcd_free(e);
	return -1;
}

void
etcd_free(struct etcd *e)
{
	if (e == NULL)
		return;
	etcd_watch_stop(e);
	if (e->multi != NULL)
		curl_multi_cleanup(e->multi);
	if (e->easy != NULL)
		curl_easy_cleanup(e->easy);
	for (size_t i = 0; i < e->n_eps; i++)
		free(e->eps[i]);
	free(e);
}
int
etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease,
    char *err, size_t errlen)
{
	json_t *req = json_pack("{s:o, s:o}", "key", jb64(key), "value",
	    jb64(value)), *resp;
	char l[32];

	if (lease != 0) {
		snprintf(l, sizeof(l), "%" PRId64, lease);
		json_object_set_new(req, "lease", json_string(l));
	}
	if ((resp = etcd_http_call(e, "/v3/kv/put", req, err, errlen)) == NULL)
		return -1;
	json_decref(resp);
	return 0;
}

int
etcd_txn_puts(struct etcd *e, const char *const *keys,
    const char *const *values, size_t n, int64_t lease, char *err,
    size_t errlen)
{
	json_t *ops = json_array(), *resp;
	char l[32];

	if (n == 0 || n > ETCD_TXN_MAX) {
		json_decref(ops);
		snprintf(err, errlen, "txn: %zu operations (1 to %d)", n,
		    ETCD_TXN_MAX);
		return -1;
	}
	snprintf(l, sizeof(l), "%" PRId64, lease);
	for (size_t i = 0; ops != NULL && i < n; i++) {
		json_t *op;

		if (values[i] != NULL) {
			json_t *put = json_pack("{s:o, s:o}", "key",
			    jb64(keys[i]), "value", jb64(values[i]));

			if (put != NULL && lease != 0)
				json_object_set_new(put, "lease",
				    json_string(l));
			op = json_pack("{s:o}", "request_put", put);
		} else {
			op = json_pack("{s:{s:o}}", "request_delete_range",
			    "key", jb64(keys[i]));
		}
		if (op == NULL || json_array_append_new(ops, op) != 0) {
			json_decref(ops);
			ops = NULL;
		}
	}
	if (ops == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* No compare: the success branch always runs. */
	resp = etcd_http_call(e, "/v3/kv/txn", json_pack("{s:o}", "success", ops), err,
	    errlen);
	if (resp == NULL)
		return -1;
	json_decref(resp);
	return 0;
}

int
etcd_lease_missing(const struct etcd *e)
{
	return e->lease_missing;
}

int
etcd_delete(struct etcd *e, const char *key, char *err, size_t errlen)
{
	json_t *resp = etcd_http_call(e, "/v3/kv/deleterange",
	    json_pack("{s:o}", "key", jb64(key)), err, errlen);

	if (resp == NULL)
		return -1;
	json_decref(resp);
	return 0;
}

int
etcd_range_prefix(struct etcd *e, const char *prefix, struct etcd_kv **kvs,
    size_t *n, int64_t *rev, char *err, size_t errlen)
{
	char *end = prefix_end(prefix);
	json_t *resp, *arr, *j;
	size_t i;

	*kvs = NULL;
	*n = 0;
	if (end == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	resp = etcd_http_call(e, "/v3/kv/range", json_pack("{s:o, s:o}", "key",
	    jb64(prefix), "range_end", jb64(end)), err, errlen);
	free(end);
	if (resp == NULL)
		return -1;
	*rev = jint(json_object_get(resp, "header"), "revision");
	arr = json_object_get(resp, "kvs");
	if (json_array_size(arr) > 0 &&
	    (*kvs = calloc(json_array_size(arr), sizeof(**kvs))) == NULL) {
		json_decref(resp);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(arr, i, j) {
		if (kv_decode(j, &(*kvs)[*n]) == 0)
			(*n)++;
	}
	json_decref(resp);
	return 0;
}

int
etcd_cas(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int *won, int64_t *rev, char *err, size_t errlen)
{
	return etcd_cas_read(e, key, value, mod_rev, won, rev, NULL, err,
	    errlen);
}

int
etcd_cas_read(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int *won, int64_t *rev, struct etcd_kv *cur,
    char *err, size_t errlen)
{
	return etcd_cas_lease(e, key, value, mod_rev, 0, won, rev, cur, err,
	    errlen);
}

int
etcd_cas_lease(struct etcd *e, const char *key, const char *value,
    int64_t mod_rev, int64_t lease, int *won, int64_t *rev,
    struct etcd_kv *cur, char *err, size_t errlen)
{
	char r[32], l[32];
	json_t *resp, *kvs, *put;

	if (cur != NULL)
		memset(cur, 0, sizeof(*cur));
	snprintf(r, sizeof(r), "%" PRId64, mod_rev);
	snprintf(l, sizeof(l), "%" PRId64, lease);
	put = json_pack("{s:o, s:o}", "key", jb64(key), "value", jb64(value));
	if (put != NULL && lease != 0)
		json_object_set_new(put, "lease", json_string(l));
	resp = etcd_http_call(e, "/v3/kv/txn", json_pack("{s:[{s:o, s:s, s:s, s:s}], "
	    "s:[{s:o}], s:[{s:{s:o}}]}",
	    "compare", "key", jb64(key), "target", "MOD", "result", "EQUAL",
	    "mod_revision", r,
	    "success", "request_put", put,
	    "failure", "request_range", "key", jb64(key)), err, errlen);
	if (resp == NULL)
		return -1;
	*won = json_is_true(json_object_get(resp, "succeeded"));
	*rev = jint(json_object_get(resp, "header"), "revision");
	/* Lost: what the key holds now, read in the same transaction. */
	kvs = json_object_get(json_object_get(json_array_get(
	    json_object_get(resp, "responses"), 0), "response_range"), "kvs");
	if (!*won && cur != NULL && json_array_size(kvs) == 1 &&
	    kv_decode(json_array_get(kvs, 0), cur) != 0)
		memset(cur, 0, sizeof(*cur));
	json_decref(resp);
	return 0;
}

int
etcd_maybe_applied(const struct etcd *e)
{
	return e->maybe_sent;
}

int
etcd_lease_grant(struct etcd *e, long ttl, int64_t *id, char *err,
    size_t errlen)
{
	json_t *resp = etcd_http_call(e, "/v3/lease/grant", json_pack("{s:I}", "TTL",
	    (json_int_t)ttl), err, errlen);

	if (resp == NULL)
		return -1;
	*id = jint(resp, "ID");
	json_decref(resp);
	if (*id == 0) {
		snprintf(err, errlen, "lease grant: no ID in the answer");
		return -1;
	}
	return 0;
}

int
etcd_lease_keepalive(struct etcd *e, int64_t id, long *ttl, char *err,
    size_t errlen)
{
	char l[32];
	json_t *resp;

	snprintf(l, sizeof(l), "%" PRId64, id);
	resp = etcd_http_call(e, "/v3/lease/keepalive", json_pack("{s:s}", "ID", l),
	    err, errlen);
	if (resp == NULL)
		return -1;
	/* A gone lease answers without TTL (proto3 omits zero). */
	*ttl = (long)jint(json_object_get(resp, "result"), "TTL");
	json_decref(resp);
	return 0;
}

int
etcd_lease_revoke(struct etcd *e, int64_t id, char *err, size_t errlen)
{
	char l[32];
	json_t *resp;

	snprintf(l, sizeof(l), "%" PRId64, id);
	resp = etcd_http_call(e, "/v3/lease/revoke", json_pack("{s:s}", "ID", l), err,
	    errlen);
	if (resp == NULL)
		return -1;
	json_decref(resp);
	return 0;
}

/* Watch ------------------------------------------------------------------ */

static void
watch_message(struct etcd *e, const char *line, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je), *res, *ev;
	size_t i;

	if (j == NULL) {
		snprintf(e->watch_err, sizeof(e->watch_err), "watch: bad "
		    "message: %s", je.text);
		return;
	}
	if ((res = json_object_get(j, "result")) == NULL) {
		const char *m = json_string_value(json_object_get(
		    json_object_get(j, "error"), "message"));
		snprintf(e->watch_err, sizeof(e->watch_err), "watch: %s",
		    m != NULL ? m : "error");
		json_decref(j);
		return;
	}
	if (json_is_true(json_object_get(res, "created"))) {
		e->watch_created = 1;
		e->watch_created_rev = jint(json_object_get(res, "header"),
		    "revision");
	}
	if (json_is_true(json_object_get(res, "canceled"))) {
		e->watch_compacted = jint(res, "compact_revision");
		if (e->watch_compacted > 0)
			snprintf(e->watch_err, sizeof(e->watch_err), "watch "
			    "canceled by etcd (compacted at %" PRId64 ")",
			    e->watch_compacted);
		else
			snprintf(e->watch_err, sizeof(e->watch_err), "watch "
			    "canceled by etcd: %s", json_string_value(
			    json_object_get(res, "cancel_reason")) != NULL ?
			    json_string_value(json_object_get(res,
			    "cancel_reason")) : "no reason given");
	}
	json_array_foreach(json_object_get(res, "events"), i, ev) {
		struct etcd_kv kv;
		const char *type = json_string_value(json_object_get(ev,
		    "type"));

		if (kv_decode(json_object_get(ev, "kv"), &kv) != 0)
			continue;
		if (type != NULL && strcmp(type, "DELETE") == 0) {
			free(kv.value);
			kv.value = NULL;
			kv.vlen = 0;
		}
		e->cb(e->cb_arg, &kv);
		free(kv.key);
		free(kv.value);
	}
	json_decref(j);
}

static size_t
watch_write(char *data, size_t sz, size_t nm, void *arg)
{
	struct etcd *e = arg;
	size_t n = sz * nm, start = 0;
	char *nl;

	if (etcd_http_buf_write(data, 1, n, &e->wbuf) != n)
		return 0;
	while ((nl = memchr(e->wbuf.p + start, '\n',
	    e->wbuf.len - start)) != NULL) {
		size_t l = (size_t)(nl - (e->wbuf.p + start));
		if (l > 0)
			watch_message(e, e->wbuf.p + start, l);
		start += l + 1;
	}
	memmove(e->wbuf.p, e->wbuf.p + start, e->wbuf.len - start);
	e->wbuf.len -= start;
	e->wbuf.p[e->wbuf.len] = '\0';
	return e->watch_err[0] != '\0' ? 0 : n;
}

int
etcd_watch_start(struct etcd *e, const char *prefix, int64_t start_rev,
    etcd_event_cb cb, void *arg, char *err, size_t errlen)
{
	char *end = prefix_end(prefix), url[CONF_ADDR_MAX + 32], r[32];
	char auth[600];
	json_t *req;

	etcd_watch_stop(e);
	if (end == NULL)
		goto oom;
	snprintf(r, sizeof(r), "%" PRId64, start_rev);
	req = json_pack("{s:{s:o, s:o, s:s}}", "create_request", "key",
	    jb64(prefix), "range_end", jb64(end), "start_revision", r);
	free(end);
	e->wbody = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (e->wbody == NULL || (e->watch = curl_easy_init()) == NULL)
		goto oom;
	e->wbuf = (struct buf){ .max = ETCD_LINE_MAX };
	e->cb = cb;
	e->cb_arg = arg;
	e->watch_created = 0;
	e->watch_created_rev = 0;
	e->watch_compacted = 0;
	e->watch_err[0] = '\0';
	snprintf(url, sizeof(url), "%s/v3/watch", e->eps[e->cur]);
	etcd_http_easy_common(e, e->watch);
	e->whdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (e->token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
		e->whdr = curl_slist_append(e->whdr, auth);
	}
	curl_easy_setopt(e->watch, CURLOPT_URL, url);
	curl_easy_setopt(e->watch, CURLOPT_HTTPHEADER, e->whdr);
	curl_easy_setopt(e->watch, CURLOPT_POSTFIELDS, e->wbody);
	curl_easy_setopt(e->watch, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(e->watch, CURLOPT_WRITEDATA, e);
	if (curl_multi_add_handle(e->multi, e->watch) != CURLM_OK)
		goto oom;
	return 0;
oom:
	snprintf(err, errlen, "watch: out of memory");
	etcd_watch_stop(e);
	return -1;
}

void
etcd_watch_stop(struct etcd *e)
{
	if (e->watch != NULL) {
		curl_multi_remove_handle(e->multi, e->watch);
		curl_easy_cleanup(e->watch);
		e->watch = NULL;
	}
	curl_slist_free_all(e->whdr);
	e->whdr = NULL;
	free(e->wbody);
	e->wbody = NULL;
	free(e->wbuf.p);
	e->wbuf = (struct buf){ 0 };
}

int
etcd_watch_poll(struct etcd *e, int timeout_ms, char *err, size_t errlen)
{
	int running = 0, left;
	CURLMsg *m;

	curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
	if (e->watch == NULL)
		return 0;
	curl_multi_perform(e->multi, &running);
	while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE || m->easy_handle != e->watch)
			continue;
		if (e->watch_err[0] != '\0')
			snprintf(err, errlen, "%s", e->watch_err);
		else
			snprintf(err, errlen, "watch on %s ended: %s",
			    e->eps[e->cur], curl_easy_strerror(m->data.result));
		etcd_watch_stop(e);
		return -1;
	}
	return 0;
}

int
etcd_watch_created(const struct etcd *e, int64_t *rev)
{
	if (rev != NULL)
		*rev = e->watch_created_rev;
	return e->watch != NULL && e->watch_created;
}

int64_t
etcd_watch_compacted(const struct etcd *e)
{
	return e->watch_compacted;
}void
etcd_wakeup(struct etcd *e)
{
	curl_multi_wakeup(e->multi);
}
