/* cluster_ca: the CA across a cluster (see cluster.h for the keys).
 * CA servers publish the roots and sign CSRs; CA clients take the roots
 * and send CSRs, authenticated by an HMAC keyed with join_token; a leaf
 * key never leaves its node. Loop thread only. */
#include "helperd/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/ca.h"
#include "helperd/cluster_int.h"
#include "helperd/helperd.h"
#include "helperd/tls.h"

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
	struct helperd *h;
	struct leafreq *r, *v;
	char err[256], mac[65], key[CONF_PATH_MAX + 160], *csr, *kpem, *txt;
	int64_t now = util_now_ms_mono();
	json_t *j;

	if (c == NULL || !ca_is_client(c->h->ca))
		return;
	h = c->h;
	r = leafreq_find(c, service);
	if (r != NULL && now - r->asked_ms < CSR_RETRY_MS)
		return;
	if ((csr = ca_csr_new(h->ca, h->conf.datacenter, service, &kpem, err,
	    sizeof(err))) == NULL) {
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
	csr_mac(h->conf.join_token, h->conf.node, service, h->conf.datacenter,
	    csr, mac);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Node", h->conf.node,
	    "Service", service, "Datacenter", h->conf.datacenter, "CSR", csr,
	    "MAC", mac);
	txt = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	free(csr);
	if (txt == NULL)
		return;
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, h->conf.node,
	    service);
	cluster_op_queue(c, key, txt, 1);
	free(txt);
	log_info("cluster: asked the CA servers to sign a certificate for %s",
	    service);
}

/* CA server: a CSR from a client node appeared. */
void
cluster_ca_apply_csr(struct cluster *c, const struct ev *e)
{
	struct helperd *h = c->h;
	json_t *j = json_loads(e->value, 0, NULL);
	const char *node = json_string_value(json_object_get(j, "Node"));
	const char *svc = json_string_value(json_object_get(j, "Service"));
	const char *dc = json_string_value(json_object_get(j, "Datacenter"));
	const char *csr = json_string_value(json_object_get(j, "CSR"));
	const char *mac = json_string_value(json_object_get(j, "MAC"));
	char want[65], err[256], key[CONF_PATH_MAX + 160], *pem, *txt;
	json_t *out;
	unsigned diff = 0;

	if (ca_is_client(h->ca) || j == NULL)
		goto out;
	if (node == NULL || svc == NULL || dc == NULL || csr == NULL ||
	    mac == NULL || !conf_valid_name(node) || !conf_valid_name(svc)) {
		log_warn("cluster: ignoring a malformed CSR at %s", e->key);
		goto out;
	}
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, node, svc);
	if (strcmp(key, e->key) != 0) {
		log_warn("cluster: ignoring CSR at %s: it names %s/%s", e->key,
		    node, svc);
		goto out;
	}
	if (h->conf.join_token[0] != '\0') {
		csr_mac(h->conf.join_token, node, svc, dc, csr, want);
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
	if ((pem = ca_sign_csr(h->ca, dc, svc, h->conf.ca.leaf_ttl, csr, err,
	    sizeof(err))) == NULL) {
		log_warn("cluster: CSR from node %s for %s: %s", node, svc,
		    err);
		goto out;
	}
	out = json_pack("{s:s, s:s, s:s}", "Service", svc, "CertPEM", pem,
	    "SignedBy", h->conf.node);
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
	struct helperd *h = c->h;
	size_t pl = strlen(c->key_leaf), nl = strlen(h->conf.node);
	json_t *j;
	const char *svc, *pem;
	struct leafreq *r;
	struct ca_leaf *leaf;
	char err[256], key[CONF_PATH_MAX + 160];

	if (!ca_is_client(h->ca) || strncmp(e->key + pl, h->conf.node,
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
	leaf = ca_leaf_install(h->ca, svc, r->key_pem, pem, err, sizeof(err));
	json_decref(j);
	if (leaf == NULL) {
		log_warn("cluster: certificate for %s refused: %s", svc, err);
		return;
	}
	snprintf(key, sizeof(key), "%s%s/%s", c->key_csr, h->conf.node,
	    r->service);
	cluster_op_queue(c, key, NULL, 0);
	cluster_op_queue(c, e->key, NULL, 0);
	leafreq_drop(c, r);
	helperd_leaf_installed(h, leaf);
}


void
cluster_ca_apply_roots(struct cluster *c, const struct ev *e)
{
	json_t *j = e->value != NULL ? json_loads(e->value, 0, NULL) : NULL;
	const char *td = json_string_value(json_object_get(j, "TrustDomain"));
	char err[256];

	if (ca_is_client(c->h->ca)) {
		json_decref(j);
		if (e->rev == c->roots_rev)
			return;         /* the same roots, listed again */
		if (ca_set_roots(c->h->ca, e->value, 1, err,
		    sizeof(err)) != 0) {
			log_err("cluster: CA roots from etcd: %s", err);
			return;
		}
		c->roots_rev = e->rev;
		tls_tickets_reset();    /* a new trust generation */
		log_info("cluster: CA roots from etcd: trust domain %s, active "
		    "root %s", ca_trust_domain(c->h->ca),
		    ca_active_root_id(c->h->ca));
		helperd_leaves_warm(c->h);
		return;
	}

	if (td != NULL && strcmp(td, ca_trust_domain(c->h->ca)) != 0)
		log_err("cluster: THIS NODE'S CA IS NOT THE CLUSTER'S: trust "
		    "domain %s here, %s in etcd; mTLS with other nodes will "
		    "fail (give this node the cluster's CA directory)",
		    ca_trust_domain(c->h->ca), td);
	json_decref(j);
}


void
cluster_ca_free(struct cluster *c)
{
	while (c->n_reqs > 0)
		leafreq_drop(c, &c->reqs[0]);
	free(c->reqs);
	c->reqs = NULL;
}
