#include "helperd/local/direct.h"

#include <assert.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "helperd/model/catalog.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"

struct direct_ent {
	struct sockdiag_id id;          /* the app's socket, with its cookie */
	char src[CONF_NAME_MAX], dst[CONF_NAME_MAX];
	int dead;                       /* found gone by the last sweep */
};

struct direct {
	struct direct_env env;          /* set at direct_new */
	struct sockdiag *sd;            /* NULL: direct connections are off */
	struct direct_ent *ents;        /* DIRECT_MAX, dense: [0, n) used */
	size_t n;
	size_t cursor;                  /* next entry the sweep looks at */
	struct loop_timer sweep;        /* armed while n > 0 */
};

#define DIRECT_SWEEP_MS 100

static void direct_sweep(void *arg);

int
direct_new(struct direct **out, const struct direct_env *env)
{
	struct direct *d = calloc(1, sizeof(*d));
	char why[256];

	if (d == NULL)
		return -1;
	d->env = *env;
	loop_timer_init(&d->sweep, direct_sweep, d);
	*out = d;
	if (env->conf->same_node_mtls)
		return 0;
	if (sockdiag_open(&d->sd) != 0) {
		snprintf(why, sizeof(why), "sock_diag netlink socket: %s",
		    strerror(errno));
	} else if (sockdiag_probe(d->sd, why, sizeof(why)) != 0) {
		sockdiag_close(d->sd);
		d->sd = NULL;
	} else if ((d->ents = calloc(DIRECT_MAX, sizeof(*d->ents))) == NULL) {
		sockdiag_close(d->sd);
		d->sd = NULL;
		snprintf(why, sizeof(why), "out of memory");
	}
	if (d->sd != NULL)
		log_info("same-node without TLS: direct connections (the shim "
		    "connects to local services itself; helperd authorises "
		    "and cuts them with SOCK_DESTROY)");
	else
		log_warn("same-node without TLS: through helperd's spliced "
		    "relay (direct connections unavailable: %s)", why);
	return 0;
}

void
direct_free(struct direct *d)
{
	if (d == NULL)
		return;
	loop_timer_del(d->env.loop, &d->sweep);
	sockdiag_close(d->sd);
	free(d->ents);
	free(d);
}

int
direct_on(const struct direct *d)
{
	return d != NULL && d->sd != NULL;
}

size_t
direct_count(const struct direct *d)
{
	return d != NULL ? d->n : 0;
}

/* The local, passing, non-strict instance of dst and its address (loop
 * thread). 0/-1. */
static int
local_instance(const struct direct_env *env, const char *dst,
    struct in6_addr *a, int *port)
{
	static unsigned rr;             /* spreads over local instances */
	struct catalog_instance in[16];
	const struct conf_service *svc;
	size_t n = catalog_instances(env->catalog, dst, in, UTIL_ARRAY_LEN(in));
	size_t nl = 0;

	while (nl < n && in[nl].local)  /* local ones come first */
		nl++;
	if (nl == 0 || (svc = in[rr++ % nl].svc) == NULL || svc->port <= 0 ||
	    svc->inbound == CONF_INBOUND_STRICT ||
	    sockdiag_parse_addr(svc->address, a) != 0)
		return -1;
	/* helperd dials 0.0.0.0 / :: as loopback; so does the shim. */
	if (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr32[3] == 0)
		(void)sockdiag_parse_addr("127.0.0.1", a);
	else if (IN6_IS_ADDR_UNSPECIFIED(a))
		*a = in6addr_loopback;
	*port = svc->port;
	return 0;
}

int
direct_route(struct direct *d, const char *src, const char *dst,
    char *addr, size_t addrlen, int *port)
{
	const struct direct_env *env = &d->env;
	struct in6_addr a;
	int ok;

	if (!direct_on(d) || d->n >= DIRECT_MAX)
		return 0;
	assert(loop_is_mine(env->loop));
	/* A denied pair takes the relay, whose CONNECT refuses and logs. */
	ok = local_instance(env, dst, &a, port) == 0 &&
	    intent_check(env->intents, src, dst, env->conf->default_allow,
	    NULL);
	if (ok)
		sockdiag_addr_string(&a, addr, addrlen);
	return ok;
}

static void
id_string(const struct sockdiag_id *id, char *buf, size_t len)
{
	char s[64], t[64];

	sockdiag_addr_string(&id->src, s, sizeof(s));
	sockdiag_addr_string(&id->dst, t, sizeof(t));
	snprintf(buf, len, "%s:%u -> %s:%u", s, id->sport, t, id->dport);
}

/* Abort the app's end of a connection (exactly that socket: the id has
 * its cookie); the kernel resets the service's end. Never a lookup of
 * the service's end without its cookie: once that end is gone, the same
 * 4-tuple would find the service's listener. 0, or -1 with errno. */
static int
destroy(struct direct *d, const struct sockdiag_id *id)
{
	return sockdiag_destroy(d->sd, id);
}

int
direct_track(struct direct *d, const char *src, uid_t uid,
    const char *dst, const struct sockdiag_id *id, char *err,
    size_t errlen)
{
	const struct direct_env *env = &d->env;
	const struct intent *m = NULL;
	struct sockdiag_info info;
	struct sockdiag_id q = *id;
	struct direct_ent *e;
	struct in6_addr a;
	char tuple[160];
	int port, allowed, local, rc = 0;

	if (!direct_on(d)) {
		snprintf(err, errlen, "direct connections are off");
		return EPROTO;
	}
	id_string(id, tuple, sizeof(tuple));
	assert(loop_is_mine(env->loop));
	local = local_instance(env, dst, &a, &port) == 0 && port == id->dport &&
	    memcmp(&a, &id->dst, sizeof(a)) == 0;
	allowed = intent_check(env->intents, src, dst,
	    env->conf->default_allow, &m);
	if (!local) {
		snprintf(err, errlen, "%s is not a direct local instance of "
		    "%s", tuple, dst);
		rc = EINVAL;
		goto out;
	}
	q.cookie = SOCKDIAG_NOCOOKIE;
	if (sockdiag_query(d->sd, &q, &info) != 0 || info.inode == 0 ||
	    info.state == TCP_TIME_WAIT || info.state == TCP_CLOSE ||
	    info.state == TCP_LISTEN) {
		snprintf(err, errlen, "no open connection %s", tuple);
		rc = ENOENT;
		goto out;
	}
	if (info.uid != uid) {
		snprintf(err, errlen, "connection %s is not yours", tuple);
		rc = EACCES;
		goto out;
	}
	q.cookie = info.cookie;
	if (!allowed) {
		/* Denied since DIRECT answered: cut it now. */
		if (m != NULL)
			log_warn("closed direct connection %s => %s (%s): "
			    "denied by intention %s (%s => %s, deny)", src,
			    dst, tuple, m->id, m->src, m->dst);
		else
			log_warn("closed direct connection %s => %s (%s): "
			    "denied by default_intention = deny", src, dst,
			    tuple);
		(void)destroy(d, &q);
		snprintf(err, errlen, "%s => %s denied by %s", src, dst,
		    m != NULL ? "intention" : "default_intention");
		rc = ECONNREFUSED;
		goto out;
	}
	if (d->n >= DIRECT_MAX) {
		log_warn("direct connection %s => %s (%s) closed: %d tracked "
		    "already", src, dst, tuple, DIRECT_MAX);
		(void)destroy(d, &q);
		snprintf(err, errlen, "too many direct connections");
		rc = ENOSPC;
		goto out;
	}
	e = &d->ents[d->n++];
	e->id = q;
	e->dead = 0;
	util_strlcpy(e->src, src, sizeof(e->src));
	util_strlcpy(e->dst, dst, sizeof(e->dst));
	log_debug("direct connection %s => %s (%s) tracked", src, dst, tuple);
	if (!loop_timer_armed(&d->sweep) && loop_timer_add(env->loop, &d->sweep,
	    DIRECT_SWEEP_MS) != 0)
		log_err("direct: cannot arm the sweep: out of memory");
out:
	return rc;
}

/* Remove entry i: the last one takes its place. */
static void
remove_at(struct direct *d, size_t i)
{
	if (i + 1 < d->n)
		d->ents[i] = d->ents[d->n - 1];
	d->n--;
}

size_t
direct_recheck(struct direct *d, const char *why)
{
	const struct direct_env *env;
	size_t closed = 0, i;

	if (!direct_on(d))
		return 0;
	env = &d->env;
	assert(loop_is_mine(env->loop));
	for (i = d->n; i-- > 0;) {
		struct direct_ent *e = &d->ents[i];
		const struct intent *m = NULL;
		char tuple[160];

		if (intent_check(env->intents, e->src, e->dst,
		    env->conf->default_allow, &m))
			continue;
		id_string(&e->id, tuple, sizeof(tuple));
		if (destroy(d, &e->id) == 0) {
			if (m != NULL)
				log_warn("closed direct connection %s => %s "
				    "(%s): denied by intention %s (%s => %s, "
				    "deny) after %s", e->src, e->dst, tuple,
				    m->id, m->src, m->dst, why);
			else
				log_warn("closed direct connection %s => %s "
				    "(%s): denied by default_intention = deny "
				    "after %s", e->src, e->dst, tuple, why);
			closed++;
		} else if (errno != ENOENT && errno != ESTALE) {
			log_err("direct connection %s => %s (%s) is denied "
			    "but could not be closed: %s", e->src, e->dst,
			    tuple, strerror(errno));
			continue;       /* tried again on the next change */
		}
		remove_at(d, i);
	}
	if (closed > 0)
		log_warn("%s: closed %zu direct connection(s) that are now "
		    "denied", why, closed);
	return closed;
}

/* Look up k entries from d->cursor; mark the gone ones. 0/-1. */
static int
sweep_batch(struct direct *d, size_t k)
{
	struct sockdiag_id ids[SOCKDIAG_BATCH];
	struct sockdiag_info info[SOCKDIAG_BATCH];
	int res[SOCKDIAG_BATCH];

	memset(ids, 0, sizeof(ids));
	for (size_t i = 0; i < k; i++)
		ids[i] = d->ents[d->cursor + i].id;
	if (sockdiag_query_many(d->sd, ids, k, info, res) != 0) {
		log_warn("direct: sock_diag lookups failed: %s",
		    strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < k; i++) {
		/* Gone, another socket's 4-tuple now, or closed by the app
		 * (TIME_WAIT, or an orphan: no file any more). */
		if (res[i] == ENOENT || res[i] == ESTALE ||
		    (res[i] == 0 && (info[i].inode == 0 ||
		    info[i].state == TCP_TIME_WAIT ||
		    info[i].state == TCP_CLOSE)))
			d->ents[d->cursor + i].dead = 1;
	}
	return 0;
}

/* The sweep timer: every DIRECT_SWEEP_MS while entries are tracked. */
static void
direct_sweep(void *arg)
{
	struct direct *d = arg;
	size_t budget, k, start, end, dropped = 0;

	if (!direct_on(d) || d->n == 0)
		return;
	assert(loop_is_mine(d->env.loop));
	/* Every entry is looked at within about a second, however full. */
	budget = SOCKDIAG_BATCH + d->n / 8;
	if (d->cursor >= d->n)
		d->cursor = 0;
	start = d->cursor;
	while (budget > 0 && d->cursor < d->n) {
		k = d->n - d->cursor;
		if (k > SOCKDIAG_BATCH)
			k = SOCKDIAG_BATCH;
		if (k > budget)
			k = budget;
		if (sweep_batch(d, k) != 0)
			break;
		d->cursor += k;
		budget -= k;
	}
	end = d->cursor;
	/* Highest first: what moves into a hole was looked at or is not in
	 * this sweep's range. */
	for (size_t i = end; i-- > start;) {
		if (i < d->n && d->ents[i].dead) {
			remove_at(d, i);
			dropped++;
		}
	}
	if (d->cursor > d->n)
		d->cursor = d->n;
	if (dropped > 0)
		log_debug("direct: dropped %zu closed connection(s), %zu "
		    "tracked", dropped, d->n);
	if (d->n > 0 && loop_timer_add(d->env.loop, &d->sweep,
	    DIRECT_SWEEP_MS) != 0)
		log_err("direct: cannot arm the sweep: out of memory");
}
