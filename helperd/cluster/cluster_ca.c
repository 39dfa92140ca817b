/* cluster_ca: the CA across a cluster (see cluster.h for the keys).
 * CA servers publish the roots and sign CSRs; CA clients take the roots
 * and send CSRs, authenticated by an HMAC keyed with join_token; a leaf
 * key never leaves its node. Loop thread only. What it changes in the
 * node (the CA, the leaves) goes through env.ops. */
#include "helperd/cluster/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include <curl/curl.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/cluster/ca_share.h"
#include "helperd/cluster/cluster_int.h"
#include "helperd/cluster/seal.h"
#include "helperd/relay/tls.h"

/* HMAC-SHA256 of a CSR request with the join token, hex (65 bytes). */
static void
csr_mac(const char *token, const char *node, const char *service,
    const char *dc, const char *csr, char hex[65])
{
	unsigned char d[32];
	size_t len = strlen(node) + strlen(service) + strlen(dc) +
	    strlen(csr) + 4;
	char *msg = malloc(len);

	hex[0] = '\0';
	if (msg == NULL)
		return;
	snprintf(msg, len, "%s\n%s\n%s\n%s", node, service, dc, csr);
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, token, strlen(token), msg,
	    strlen(msg), d) == 0)
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
	free(msg);
}

static struct leafreq *
leafreq_find(struct cluster *c, const char *service)
{
	for (size_t i = 0; i < c->n_reqs; i++)
		if (strcmp(c->reqs[i].service, service) == 0)
			return &c->reqs[i];
	return NULL;
}

static void
leafreq_drop(struct cluster *c, struct leafreq *r)
{
	if (r->key_pem != NULL) {
		gnutls_memset(r->key_pem, 0, strlen(r->key_pem));
		free(r->key_pem);
	}
	*r = c->reqs[--c->n_reqs];
}

void
cluster_leaf_request(struct cluster *c, const char *service)
{
	const struct conf *conf;
	struct leafreq *r, *v;
	char err[256], mac[65], key[CONF_PATH_MAX + 160], *csr, *kpem, *txt;
	int64_t now = util_now_ms_mono();
	json_t *j;

	if (c == NULL || !ca_is_client(CLUSTER_CA(c)))
		return;
	cluster_assert_loop(c);
	conf = c->env.conf;
	r = leafreq_find(c, service);
	if (r != NULL && now - r->asked_ms < CSR_RETRY_MS)
		return;
	if ((csr = ca_csr_new(CLUSTER_CA(c), conf->datacenter, service, &kpem,
	    err, sizeof(err))) == NULL) {
		log_debug("cluster: no CSR for %s yet: %s", service, err);
		return;
	}
	if (r == NULL) {
		v = realloc(c->reqs, (c->n_reqs + 1) * sizeof(*v));
		if (v == NULL) {
			free(csr);
			free(kpem);
			return;
		}
		c->reqs = v;
		r = &c->reqs[c->n_reqs++];
		memset(r, 0, sizeof(*r));
		util_strlcpy(r->service, service, sizeof(r->service));
	} else if (r->key_pem != NULL) {
		gnutls_memset(r->key_pem, 0, strlen(r->key_pem));
		free(r->key_pem);
	}
	r->key_pem = kpem;
	r->asked_ms = now;
	csr_mac(conf->join_token, conf->node, service, conf->datacenter, csr,
	    mac);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Node", conf->node,
	    "Service", service, "Datacenter", conf->datacenter, "CSR", csr,
	    "MAC", mac);
	txt = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	free(csr);
	if (txt == NULL)
		return;
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, conf->node,
	    service);
	cluster_op_queue(c, key, txt, 1);
	free(txt);
	log_info("cluster: asked the CA servers to sign a certificate for %s",
	    service);
}

#define CSR_PENDING_MAX 4096     /* CSRs a CA server keeps unsigned */

static void csr_sign(struct cluster *c, const char *key, const char *value);

static int
leader_is_me(const struct cluster *c)
{
	return c->ca_server && strcmp(c->ca_leader, c->env.conf->node) == 0;
}

/* CA server: a CSR from a client node appeared. The CA leader signs it;
 * the other CA servers keep it, in case they are elected before it is
 * answered. */
void
cluster_ca_apply_csr(struct cluster *c, const struct ev *e)
{
	if (!c->ca_server)
		return;
	if (leader_is_me(c)) {
		csr_sign(c, e->key, e->value);
		return;
	}
	if (json_object_size(c->csr_pending) >= CSR_PENDING_MAX &&
	    json_object_get(c->csr_pending, e->key) == NULL) {
		log_warn("cluster: %d CSRs wait for a CA leader: not keeping "
		    "%s", CSR_PENDING_MAX, e->key);
		return;
	}
	json_object_set_new(c->csr_pending, e->key, json_string(e->value));
}

void
cluster_ca_csr_gone(struct cluster *c, const char *key)
{
	json_object_del(c->csr_pending, key);
}

void
cluster_ca_reset(struct cluster *c)
{
	json_object_clear(c->csr_pending);
	c->ca_leader[0] = '\0';
}

void
cluster_ca_apply_leader(struct cluster *c, const struct ev *e)
{
	const char *k;
	json_t *v;
	void *tmp;
	int was = leader_is_me(c);

	if (e->kind == EV_DEL || e->value == NULL ||
	    !conf_valid_name(e->value)) {
		if (c->ca_leader[0] != '\0')
			log_info("cluster: CA leader %s left; %s", c->ca_leader,
			    c->ca_server ? "running for it" : "waiting for "
			    "another");
		c->ca_leader[0] = '\0';
		return;
	}
	if (strcmp(c->ca_leader, e->value) == 0)
		return;
	util_strlcpy(c->ca_leader, e->value, sizeof(c->ca_leader));
	if (!leader_is_me(c)) {
		log_info("cluster: the CA leader is node %s", c->ca_leader);
		return;
	}
	if (!was && json_object_size(c->csr_pending) > 0)
		log_info("cluster: CA leader now: signing %zu waiting CSR(s)",
		    json_object_size(c->csr_pending));
	json_object_foreach_safe(c->csr_pending, tmp, k, v) {
		csr_sign(c, k, json_string_value(v));
		json_object_del(c->csr_pending, k);
	}
}

/* The CA leader: check and sign the CSR at key, put the leaf. */
static void
csr_sign(struct cluster *c, const char *ekey, const char *value)
{
	const struct conf *conf = c->env.conf;
	struct ca *ca = CLUSTER_CA(c);
	json_t *j = json_loads(value, 0, NULL);
	const char *node = json_string_value(json_object_get(j, "Node"));
	const char *svc = json_string_value(json_object_get(j, "Service"));
	const char *dc = json_string_value(json_object_get(j, "Datacenter"));
	const char *csr = json_string_value(json_object_get(j, "CSR"));
	const char *mac = json_string_value(json_object_get(j, "MAC"));
	char want[65], err[256], key[CONF_PATH_MAX + 160], *pem, *txt;
	json_t *out;
	unsigned diff = 0;

	if (ca_is_client(ca) || j == NULL)
		goto out;
	if (node == NULL || svc == NULL || dc == NULL || csr == NULL ||
	    mac == NULL || !conf_valid_name(node) || !conf_valid_name(svc)) {
		log_warn("cluster: ignoring a malformed CSR at %s", ekey);
		goto out;
	}
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, node, svc);
	if (strcmp(key, ekey) != 0) {
		log_warn("cluster: ignoring CSR at %s: it names %s/%s", ekey,
		    node, svc);
		goto out;
	}
	if (conf->join_token[0] != '\0') {
		csr_mac(conf->join_token, node, svc, dc, csr, want);
		if (strlen(mac) != 64 || want[0] == '\0')
			diff = 1;
		for (size_t i = 0; i < 64 && !diff; i++)
			diff |= (unsigned)(mac[i] ^ want[i]);
		if (diff) {
			log_warn("cluster: REFUSED a CSR from node %s for %s: "
			    "wrong join_token", node, svc);
			goto out;
		}
	} else if (!c->warned_token) {
		log_warn("cluster: this CA server has no join_token: it signs "
		    "CSRs of anyone who can write to etcd");
		c->warned_token = 1;
	}
	if ((pem = ca_sign_csr(ca, dc, svc, conf->ca.leaf_ttl, csr, err,
	    sizeof(err))) == NULL) {
		log_warn("cluster: CSR from node %s for %s: %s", node, svc,
		    err);
		goto out;
	}
	out = json_pack("{s:s, s:s, s:s}", "Service", svc, "CertPEM", pem,
	    "SignedBy", conf->node);
	free(pem);
	txt = out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (txt != NULL) {
		snprintf(key, sizeof(key), "%s%s/%s", c->key_leaf, node, svc);
		cluster_op_queue(c, key, txt, 0);
		free(txt);
		log_info("cluster: signed a certificate for %s on node %s",
		    svc, node);
	}
out:
	json_decref(j);
}

/* CA client: a signed certificate for one of our requests. */
void
cluster_ca_apply_leaf(struct cluster *c, const struct ev *e)
{
	const struct conf *conf = c->env.conf;
	size_t pl = strlen(c->key_leaf), nl = strlen(conf->node);
	json_t *j;
	const char *svc, *pem;
	struct leafreq *r;
	struct ca_leaf *leaf;
	char err[256], key[CONF_PATH_MAX + 160];

	if (!ca_is_client(CLUSTER_CA(c)) || strncmp(e->key + pl, conf->node,
	    nl) != 0 || e->key[pl + nl] != '/')
		return;
	if ((r = leafreq_find(c, e->key + pl + nl + 1)) == NULL)
		return;
	j = json_loads(e->value, 0, NULL);
	svc = json_string_value(json_object_get(j, "Service"));
	pem = json_string_value(json_object_get(j, "CertPEM"));
	if (svc == NULL || pem == NULL || strcmp(svc, r->service) != 0) {
		log_warn("cluster: ignoring a malformed certificate at %s",
		    e->key);
		json_decref(j);
		return;
	}
	leaf = ca_leaf_install(CLUSTER_CA(c), svc, r->key_pem, pem, err,
	    sizeof(err));
	json_decref(j);
	if (leaf == NULL) {
		log_warn("cluster: certificate for %s refused: %s", svc, err);
		return;
	}
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, conf->node,
	    r->service);
	cluster_op_queue(c, key, NULL, 0);
	cluster_op_queue(c, e->key, NULL, 0);
	leafreq_drop(c, r);
	if (c->env.ops->leaf_installed != NULL)
		c->env.ops->leaf_installed(c->env.cookie, leaf);
	else
		ca_leaf_unref(leaf);
}

/* leaves_each: a leaf not of the active root gets a new one asked for. */
static void
leaf_stale(void *arg, const char *service, const struct ca_leaf *leaf)
{
	struct cluster *c = arg;

	if (strcmp(leaf->root_id, ca_active_root_id(CLUSTER_CA(c))) != 0)
		cluster_leaf_request(c, service);
}

void
cluster_ca_apply_roots(struct cluster *c, const struct ev *e)
{
	json_t *j = e->value != NULL ? json_loads(e->value, 0, NULL) : NULL;
	const char *td = json_string_value(json_object_get(j, "TrustDomain"));
	char err[256];

	struct ca *ca = CLUSTER_CA(c);

	if (ca_is_client(ca)) {
		json_decref(j);
		if (e->rev == c->roots_rev)
			return;         /* the same roots, listed again */
		if (ca_set_roots(ca, e->value, 1, err, sizeof(err)) != 0) {
			log_err("cluster: CA roots from etcd: %s", err);
			return;
		}
		c->roots_rev = e->rev;
		tls_tickets_reset();    /* a new trust generation */
		log_info("cluster: CA roots from etcd: trust domain %s, active "
		    "root %s", ca_trust_domain(ca), ca_active_root_id(ca));
		if (c->env.ops->leaves_warm != NULL)
			c->env.ops->leaves_warm(c->env.cookie);
		/* Rotated: leaves of the old root stay valid (it is still
		 * trusted); ask for ones of the new root. */
		if (c->env.ops->leaves_each != NULL)
			c->env.ops->leaves_each(c->env.cookie, leaf_stale, c);
		return;
	}

	if (td != NULL && strcmp(td, ca_trust_domain(ca)) != 0)
		log_err("cluster: THIS NODE'S CA IS NOT THE CLUSTER'S: trust "
		    "domain %s here, %s in etcd; mTLS with other nodes will "
		    "fail (give this node the cluster's CA directory)",
		    ca_trust_domain(ca), td);
	json_decref(j);
}


void
cluster_ca_free(struct cluster *c)
{
	while (c->n_reqs > 0)
		leafreq_drop(c, &c->reqs[0]);
	free(c->reqs);
	c->reqs = NULL;
	json_decref(c->csr_pending);
	c->csr_pending = NULL;
}


/* Shared root keys -------------------------------------------------------- */

#define KEYS_PURPOSE "meshshim ca keys v1"

static void
wipe(char *s)
{
	if (s != NULL) {
		gnutls_memset(s, 0, strlen(s));
		free(s);
	}
}

void
cluster_ca_keys_key(const struct conf *conf, char *buf, size_t len)
{
	size_t pl = strlen(conf->store.prefix);

	while (pl > 1 && conf->store.prefix[pl - 1] == '/')
		pl--;
	snprintf(buf, len, "%.*s/ca/keys", (int)pl, conf->store.prefix);
}

char *
cluster_ca_keys_box(const struct conf *conf, const char *dir, char *err,
    size_t errlen)
{
	char key[CONF_PATH_MAX + 16], *doc, *box;

	if ((doc = ca_share_export(dir, err, errlen)) == NULL)
		return NULL;
	cluster_ca_keys_key(conf, key, sizeof(key));
	box = seal_box(conf->ca.secret, KEYS_PURPOSE, key, doc, strlen(doc),
	    err, errlen);
	wipe(doc);
	return box;
}

int
cluster_ca_fetch(const struct conf *conf, const char *dir, char *err,
    size_t errlen)
{
	struct etcd *e = NULL;
	struct etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev;
	char key[CONF_PATH_MAX + 16], why[ETCD_ERR_MAX], td[128], ltd[128];
	char *doc = NULL;
	const char *box = NULL;
	long next = 0, lnext = 0;
	int have, rc = -1;

	cluster_ca_keys_key(conf, key, sizeof(key));
	have = ca_share_info(NULL, dir, ltd, sizeof(ltd), &lnext) == 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (etcd_new(&e, &conf->store, err, errlen) != 0)
		return -1;
	if (etcd_range_prefix(e, key, &kvs, &n, &rev, why,
	    sizeof(why)) != 0) {
		if (have) {
			log_warn("cluster: etcd unreachable (%s): using this "
			    "node's CA (%s) without checking it against the "
			    "cluster's", why, ltd);
			rc = 0;
		} else {
			snprintf(err, errlen, "no CA in %s yet and etcd is "
			    "unreachable (%s): cannot take the cluster's CA "
			    "(start again when etcd answers)", dir, why);
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(kvs[i].key, key) == 0)
			box = kvs[i].value;
	if (box == NULL) {
		log_info("cluster: no CA keys in etcd (%s) yet: this node's "
		    "CA is published when it joins", key);
		rc = 0;
		goto out;
	}
	if ((doc = seal_open(conf->ca.secret, KEYS_PURPOSE, key, box, NULL,
	    why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "the cluster's CA keys at %s: %s: is "
		    "ca.secret the same as on the other CA servers?", key, why);
		goto out;
	}
	if (ca_share_info(doc, NULL, td, sizeof(td), &next) != 0) {
		snprintf(err, errlen, "the cluster's CA keys at %s: no trust "
		    "domain", key);
		goto out;
	}
	if (have && strcmp(td, ltd) != 0) {
		snprintf(err, errlen, "%s holds trust domain %s, the cluster's "
		    "is %s: move %s away to take the cluster's CA", dir, ltd,
		    td, dir);
		goto out;
	}
	if (have && next <= lnext) {
		rc = 0;         /* ours is as new as the cluster's */
		goto out;
	}
	if (ca_share_import(dir, doc, err, errlen) != 0)
		goto out;
	log_info("cluster: took the cluster's CA from etcd (trust domain %s, "
	    "sealed with ca.secret)%s", td, have ? ": it was newer" : "");
	rc = 0;
out:
	wipe(doc);
	for (size_t i = 0; i < n; i++)
		if (kvs[i].value != NULL)
			gnutls_memset(kvs[i].value, 0, kvs[i].vlen);
	etcd_kvs_free(kvs, n);
	etcd_free(e);
	return rc;
}


/* Rotation ---------------------------------------------------------------- */

int
cluster_ca_rotate_check(struct cluster *c, char *err, size_t errlen)
{
	if (c == NULL || !c->ca_server) {
		snprintf(err, errlen, "this node is not a CA server (ca.server "
		    "= false): rotate on the CA leader%s%s",
		    c != NULL && c->ca_leader[0] ? ", node " : "",
		    c != NULL ? c->ca_leader : "");
		return -1;
	}
	if (c->env.conf->ca.secret[0] == '\0') {
		snprintf(err, errlen, "CA root rotation with store = etcd needs "
		    "ca.secret on the CA servers (the others must get the new "
		    "root key through etcd)");
		return -1;
	}
	if (!leader_is_me(c)) {
		snprintf(err, errlen, "only the CA leader rotates: rotate on "
		    "node %s", c->ca_leader[0] ? c->ca_leader : "(none "
		    "elected yet; try again)");
		return -1;
	}
	if (cluster_degraded(c)) {
		snprintf(err, errlen, "etcd is unreachable: the other nodes "
		    "would not learn the new root; try again when it is back");
		return -1;
	}
	return 0;
}

void
cluster_ca_publish(struct cluster *c)
{
	const struct conf *conf = c->env.conf;
	char dir[CONF_PATH_MAX + 8], err[256], key[CONF_PATH_MAX + 16];
	char *box, *roots;
	json_t *j;

	cluster_assert_loop(c);
	snprintf(dir, sizeof(dir), "%s/ca", conf->data_dir);
	/* The keys first: a CA server that sees the new roots can sign
	 * with the new key by the time a client asks. */
	if ((box = cluster_ca_keys_box(conf, dir, err, sizeof(err))) ==
	    NULL) {
		log_err("cluster: the rotated root keys are not published: %s",
		    err);
	} else {
		cluster_ca_keys_key(conf, key, sizeof(key));
		cluster_op_queue(c, key, box, 0);
		free(box);
	}
	j = ca_roots_json(CLUSTER_CA(c));
	roots = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (roots == NULL) {
		log_err("cluster: the rotated roots are not published: out of "
		    "memory");
		return;
	}
	cluster_op_queue(c, c->key_ca, roots, 0);
	free(roots);
	log_info("cluster: published the rotated CA (roots and sealed keys) "
	    "to etcd");
}

/* Another CA server: the leader rotated (P/ca/keys put): take the newer
 * CA and re-issue our leaves under its root. */
void
cluster_ca_apply_keys(struct cluster *c, const struct ev *e)
{
	const struct conf *conf = c->env.conf;
	char dir[CONF_PATH_MAX + 8], err[256], td[128], ltd[128];
	char key[CONF_PATH_MAX + 16], *doc;
	long next = 0, lnext = 0;
	struct ca *ca;

	if (!c->ca_server || conf->ca.secret[0] == '\0' || e->value == NULL)
		return;
	snprintf(dir, sizeof(dir), "%s/ca", conf->data_dir);
	cluster_ca_keys_key(conf, key, sizeof(key));
	if ((doc = seal_open(conf->ca.secret, KEYS_PURPOSE, key, e->value,
	    NULL, err, sizeof(err))) == NULL) {
		log_err("cluster: the cluster's CA keys at %s: %s", key, err);
		return;
	}
	if (ca_share_info(doc, NULL, td, sizeof(td), &next) != 0 ||
	    ca_share_info(NULL, dir, ltd, sizeof(ltd), &lnext) != 0 ||
	    strcmp(td, ltd) != 0 || next <= lnext) {
		wipe(doc);              /* ours, or not newer */
		return;
	}
	if (ca_share_import(dir, doc, err, sizeof(err)) != 0 ||
	    ca_open(&ca, dir, conf->ca.root_ttl, err, sizeof(err)) != 0) {
		log_err("cluster: taking the rotated CA: %s", err);
		wipe(doc);
		return;
	}
	wipe(doc);
	if (c->env.ops->ca_replace != NULL)
		c->env.ops->ca_replace(c->env.cookie, ca,
		    "took the rotated CA from etcd");
	else
		ca_free(ca);
}
