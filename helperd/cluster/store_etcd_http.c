/* store_etcd_http: the HTTP/JSON transport of the etcd client
 * (store_etcd_int.h): base64, capped answer buffers, one POST with
 * libcurl, authentication, and the failover over the endpoints. */
#include "helperd/cluster/store_etcd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/log.h"
#include "common/util.h"

/* base64 -------------------------------------------------------------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
etcd_b64_encode(const void *data, size_t len)
{
	const unsigned char *d = data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < len)
			v |= d[i + 2];
		*o++ = b64[(v >> 18) & 63];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int
b64_val(int c)
{
	const char *p = c != '\0' ? strchr(b64, c) : NULL;

	return p != NULL ? (int)(p - b64) : -1;
}

char *
etcd_b64_decode(const char *s, size_t *lenp)
{
	size_t n = strlen(s), k = 0;
	char *out;
	uint32_t v = 0;
	int bits = 0;

	if ((out = malloc(n / 4 * 3 + 4)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int x;

		if (s[i] == '=')
			break;
		if ((x = b64_val((unsigned char)s[i])) < 0) {
			free(out);
			return NULL;
		}
		v = (v << 6) | (uint32_t)x;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (char)((v >> bits) & 0xff);
		}
	}
	out[k] = '\0';
	if (lenp != NULL)
		*lenp = k;
	return out;
}

/* Buffers ---------------------------------------------- */

size_t
etcd_http_buf_write(char *data, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	size_t n = sz * nm;

	if (b->len + n + 1 > b->max) {
		b->too_big = 1;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}
/* Transport ------------------------------------------------------------- */

void
etcd_http_easy_common(struct etcd *e, CURL *c)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ETCD_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 2L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (e->cfg.ca_file[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, e->cfg.ca_file);
	if (e->cfg.cert_file[0] != '\0') {
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cfg.cert_file);
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->cfg.key_file);
	}
}

const char *
etcd_endpoint(const struct etcd *e)
{
	return e->n_eps > 0 ? e->eps[e->cur] : "";
}

/* One POST to one endpoint. 0 with *resp; -1 with err; *retry = 1 when
 * another endpoint may do better (transport error, 5xx, no leader). */
static int
post_one(struct etcd *e, const char *ep, const char *path, const char *body,
    json_t **resp, int *retry, char *err, size_t errlen)
{
	struct buf b = { .max = ETCD_RESP_MAX };
	struct curl_slist *hdr = NULL;
	char url[CONF_ADDR_MAX + 64], auth[600];
	long code = 0;
	CURLcode rc;
	json_error_t je;

	*retry = 1;
	snprintf(url, sizeof(url), "%s%s", ep, path);
	curl_easy_reset(e->easy);
	etcd_http_easy_common(e, e->easy);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (e->token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(e->easy, CURLOPT_URL, url);
	curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long)ETCD_CALL_MS);
	curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, etcd_http_buf_write);
	curl_easy_setopt(e->easy, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(e->easy);
	curl_slist_free_all(hdr);
	/* Only a request that never left (no connection) is sure not to
	 * have been applied; a timeout may hit a request etcd has taken. */
	if (rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
	    rc != CURLE_COULDNT_RESOLVE_PROXY && rc != CURLE_OK)
		e->maybe_sent = 1;
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, b.too_big ?
		    "answer too large" : curl_easy_strerror(rc));
		free(b.p);
		return -1;
	}
	curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &code);
	*resp = b.p != NULL ? json_loadb(b.p, b.len, 0, &je) : NULL;
	if (code != 200 || *resp == NULL) {
		const char *m = json_string_value(json_object_get(*resp,
		    "error"));
		if (m == NULL)
			m = json_string_value(json_object_get(*resp,
			    "message"));
		snprintf(err, errlen, "%s: HTTP %ld: %s", url, code,
		    m != NULL ? m : (*resp == NULL ? "not JSON" : "error"));
		/* A bad request stays bad; anything else (5xx, 408 "the
		 * client connection is closing", no leader, or an answer
		 * that is not etcd's JSON) may work on another member. */
		*retry = *resp == NULL || (code != 400 && code != 401 &&
		    code != 403 && code != 404);
		if (m != NULL && strstr(m, "requested lease not found") != NULL)
			e->lease_missing = 1;
		/* etcd's 5xx ("request timed out", "leader changed") may
		 * still commit the proposal. */
		if (*retry)
			e->maybe_sent = 1;
		json_decref(*resp);
		*resp = NULL;
		free(b.p);
		return -1;
	}
	free(b.p);
	*retry = 0;
	return 0;
}

static int
authenticate(struct etcd *e, const char *ep, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s, s:s}", "name", e->cfg.username,
	    "password", e->cfg.password), *resp = NULL;
	char *body = json_dumps(req, JSON_COMPACT);
	const char *tok;
	int retry, rc = -1;

	json_decref(req);
	e->token[0] = '\0';
	if (body == NULL)
		return -1;
	if (post_one(e, ep, "/v3/auth/authenticate", body, &resp, &retry, err,
	    errlen) != 0 && strstr(err, "authentication is not enabled")) {
		log_warn("etcd: %s: authentication is not enabled on etcd: "
		    "store.username is not used", ep);
		e->auth_off = 1;
		rc = 0;
	} else if (resp != NULL) {
		tok = json_string_value(json_object_get(resp, "token"));
		if (tok != NULL && strlen(tok) < sizeof(e->token)) {
			util_strlcpy(e->token, tok, sizeof(e->token));
			rc = 0;
		} else {
			snprintf(err, errlen, "%s: authenticate: no token", ep);
		}
	}
	json_decref(resp);
	free(body);
	return rc;
}

/* POST body to path on the current endpoint, failing over to the others.
 * Takes a reference to req. Returns the answer (new reference) or NULL. */
json_t *
etcd_http_call(struct etcd *e, const char *path, json_t *req, char *err, size_t errlen)
{
	char *body = json_dumps(req, JSON_COMPACT);
	json_t *resp = NULL;
	int retry = 1, reauth = 0;

	json_decref(req);
	e->maybe_sent = 0;
	e->lease_missing = 0;
	if (body == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t k = 0; k < e->n_eps && retry; k++) {
		size_t i = (e->cur + k) % e->n_eps;

		if (e->cfg.username[0] != '\0' && e->token[0] == '\0' &&
		    !e->auth_off && authenticate(e, e->eps[i], err,
		    errlen) != 0)
			continue;
		if (post_one(e, e->eps[i], path, body, &resp, &retry, err,
		    errlen) == 0) {
			e->cur = i;
			break;
		}
		if (!retry && !reauth && e->token[0] != '\0' &&
		    strstr(err, "token") != NULL) {
			e->token[0] = '\0';   /* expired token: once more */
			reauth = retry = 1;
			k--;            /* same endpoint (wraps, then ++) */
		}
	}
	free(body);
	return resp;
}


void
etcd_endpoint_next(struct etcd *e)
{
	if (e->n_eps > 0)
		e->cur = (e->cur + 1) % e->n_eps;
}

size_t
etcd_endpoint_count(const struct etcd *e)
{
	return e->n_eps;
}
