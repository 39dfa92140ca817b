/* served: per-service loopback addresses, their listeners, and the
 * identity of who connects there (see served.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/model/catalog.h"
#include "helperd/evloop/emfile.h"
#include "helperd/model/intent.h"
#include "helperd/evloop/loop.h"
#include "helperd/local/owner.h"
#include "helperd/relay/relay.h"
#include "helperd/local/served.h"
#include "helperd/evloop/sockdiag.h"

#define SERVED_FILE      "served.json"
#define SERVED_FILE_MAX  (4 * 1024 * 1024)
#define SERVED_RETRY_MS  10000  /* a listener that could not bind */

/* A service's address: host is its offset in the block. */
struct slot {
	char name[CONF_NAME_MAX];
	uint32_t host;
	int known;              /* in the catalog or named by an upstream */
	int srv_port;           /* port an SRV answer gives, 0 none */
};

/* A listening socket on addr:port for service svc. */
struct lsn {
	struct loop_watch w;
	struct served *s;
	int fd;                 /* -1: bind failed, retried later */
	uint32_t addr;
	int port;
	char svc[CONF_NAME_MAX];
	int want;
	int64_t retry_at;
	struct emfile eg;       /* out of fds on accept */
};

/* Lookups are by hash (jansson objects) so that a sync costs
 * O(services + instances), and it runs only when the catalog changed:
 * a reload, a registration, or remote services coming and going
 * (cluster.c), not on a timer. */
struct served {
	struct served_env env;   /* set at served_new */
	uint32_t net, size;     /* block; size 0: served_addrs = "" */
	struct slot *slots;
	size_t n_slots;
	json_t *slot_idx;       /* name -> index in slots */
	uint8_t *taken;         /* bitmap of host offsets in use */
	struct lsn **lsn;
	size_t n_lsn;
	json_t *lsn_idx;        /* "addr:port:svc" -> index in lsn */
	struct sockdiag *sd;
	pid_t hint;             /* the last process found: often the next */
	struct loop_timer timer;        /* a listener to open again */
	int full_logged;
};

static void served_arm(struct served *s);

/* The address table ---------------------------------------------------- */

static uint32_t
fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct slot *
slot_find(struct served *s, const char *name)
{
	json_t *v = json_object_get(s->slot_idx, name);

	return v != NULL ? &s->slots[json_integer_value(v)] : NULL;
}

static int
host_taken(const struct served *s, uint32_t host)
{
	return (s->taken[host / 8] >> (host % 8)) & 1;
}

static void
host_mark(struct served *s, uint32_t host, int on)
{
	if (on)
		s->taken[host / 8] |= (uint8_t)(1u << (host % 8));
	else
		s->taken[host / 8] &= (uint8_t)~(1u << (host % 8));
}

static void
addr_string(uint32_t addr, char *buf, size_t len)
{
	struct in_addr in = { .s_addr = htonl(addr) };

	inet_ntop(AF_INET, &in, buf, (socklen_t)len);
}

static int
save(struct served *s)
{
	char path[CONF_PATH_MAX + 32], a[INET_ADDRSTRLEN], *txt;
	json_t *m = json_object(), *j;
	int rc;

	for (size_t i = 0; i < s->n_slots; i++) {
		addr_string(s->net + s->slots[i].host, a, sizeof(a));
		json_object_set_new(m, s->slots[i].name, json_string(a));
	}
	j = json_pack("{s:s, s:o}", "served_addrs", s->env.conf->served_addrs,
	    "services", m);
	txt = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) :
	    NULL;
	json_decref(j);
	if (txt == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", s->env.conf->data_dir,
	    SERVED_FILE);
	rc = util_write_atomic(path, txt, strlen(txt), 0644);
	if (rc != 0)
		log_err("served: cannot write %s: %m", path);
	free(txt);
	return rc;
}

/* A free host offset for name: its hash, then the next free one. Evicts
 * a service no longer known when the block is full. 0: none. */
static uint32_t
host_for(struct served *s, const char *name)
{
	uint32_t span = s->size - 2, h = 1 + fnv1a(name) % span;

	if (s->n_slots >= span) {
		for (size_t i = 0; i < s->n_slots; i++)
			if (!s->slots[i].known) {
				uint32_t got = s->slots[i].host;

				json_object_del(s->slot_idx, s->slots[i].name);
				s->slots[i] = s->slots[--s->n_slots];
				if (i < s->n_slots)
					json_object_set_new(s->slot_idx,
					    s->slots[i].name, json_integer(
					    (json_int_t)i));
				return got;     /* stays marked taken */
			}
		return 0;
	}
	while (host_taken(s, h))
		h = h % span + 1;
	return h;
}

static struct slot *
slot_add(struct served *s, const char *name, uint32_t host)
{
	struct slot *v = realloc(s->slots, (s->n_slots + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	s->slots = v;
	if (json_object_set_new(s->slot_idx, name,
	    json_integer((json_int_t)s->n_slots)) != 0)
		return NULL;
	v = &s->slots[s->n_slots++];
	memset(v, 0, sizeof(*v));
	util_strlcpy(v->name, name, sizeof(v->name));
	v->host = host;
	host_mark(s, host, 1);
	return v;
}

/* Every entry is checked: a name, an address inside the block, not
 * taken twice. A bad entry is dropped (logged), never the whole file. */
static void
load(struct served *s)
{
	char path[CONF_PATH_MAX + 32];
	json_error_t je;
	struct stat st;
	json_t *j, *m, *v;
	const char *k, *blk;

	snprintf(path, sizeof(path), "%s/%s", s->env.conf->data_dir,
	    SERVED_FILE);
	if (stat(path, &st) != 0)
		return;
	if (st.st_size > SERVED_FILE_MAX) {
		log_err("served: %s is over %d bytes: ignored (addresses are "
		    "assigned again)", path, SERVED_FILE_MAX);
		return;
	}
	if ((j = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		log_err("served: %s:%d: %s: ignored (addresses are assigned "
		    "again)", path, je.line, je.text);
		return;
	}
	blk = json_string_value(json_object_get(j, "served_addrs"));
	if (blk == NULL || strcmp(blk, s->env.conf->served_addrs) != 0) {
		log_info("served: served_addrs is now %s (was %s): addresses "
		    "are assigned again", s->env.conf->served_addrs,
		    blk != NULL ? blk : "unknown");
		json_decref(j);
		return;
	}
	m = json_object_get(j, "services");
	json_object_foreach(m, k, v) {
		struct in_addr in;
		const char *a = json_string_value(v);
		uint32_t host;

		if (a == NULL || !conf_valid_name(k) ||
		    inet_pton(AF_INET, a, &in) != 1 ||
		    (ntohl(in.s_addr) & ~(s->size - 1)) != s->net ||
		    (host = ntohl(in.s_addr) - s->net) == 0 ||
		    host >= s->size - 1 || host_taken(s, host) ||
		    slot_find(s, k) != NULL) {
			log_warn("served: %s: entry \"%.64s\" is not valid: "
			    "dropped", path, k);
			continue;
		}
		if (slot_add(s, k, host) == NULL)
			break;
	}
	json_decref(j);
}

/* Mark name known, giving it an address if it has none. 1 if added. */
static int
know(struct served *s, const char *name)
{
	struct slot *sl = slot_find(s, name);
	uint32_t host;

	if (sl != NULL) {
		sl->known = 1;
		return 0;
	}
	if ((host = host_for(s, name)) == 0) {
		if (!s->full_logged)
			log_err("served: served_addrs %s is full: %s gets no "
			    "address", s->env.conf->served_addrs, name);
		s->full_logged = 1;
		return 0;
	}
	if ((sl = slot_add(s, name, host)) == NULL)
		return 0;
	sl->known = 1;
	return 1;
}

int
served_lookup(void *arg, const char *name, uint32_t *addr, int *port)
{
	struct served *s = arg;
	const struct slot *sl = s != NULL ? slot_find(s, name) : NULL;

	if (sl != NULL && sl->known) {
		*addr = s->net + sl->host;
		*port = sl->srv_port;
		return 1;
	}
	/* Not as written: any case (DNS names are). */
	for (size_t i = 0; s != NULL && i < s->n_slots; i++)
		if (s->slots[i].known &&
		    strcasecmp(s->slots[i].name, name) == 0) {
			*addr = s->net + s->slots[i].host;
			*port = s->slots[i].srv_port;
			return 1;
		}
	return 0;
}

/* Who connects ---------------------------------------------------------- */

/* Refuse: the program sees a reset, as a refused shim connection does. */
static void
reset_fd(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* The local service the owner acts as: every selector a service has
 * (user, unit) must match, more selectors win, then one that has dst as
 * an upstream. NULL: none, or a tie (*tie set). */
static const struct conf_service *
who(struct served *s, const struct owner *o, const char *dst, int *tie)
{
	const struct conf_service *best = NULL;
	int best_score = 0;

	*tie = 0;
	for (size_t i = 0; i < catalog_local_count(s->env.catalog); i++) {
		const struct conf_service *c =
		    catalog_local_at(s->env.catalog, i);
		int score = 0;

		if (c->user[0] == '\0' && c->unit[0] == '\0')
			continue;
		if (c->user[0] != '\0') {
			if (c->uid != o->uid)
				continue;
			score += 2;
		}
		if (c->unit[0] != '\0') {
			if (strcmp(c->unit, o->unit) != 0)
				continue;
			score += 4;
		}
		for (size_t u = 0; u < c->n_upstreams; u++)
			if (strcmp(c->upstreams[u].dest, dst) == 0)
				score += 1;
		if (score > best_score) {
			best = c;
			best_score = score;
			*tie = 0;
		} else if (score == best_score)
			*tie = 1;
	}
	return *tie ? NULL : best;
}

static int
units_used(struct served *s)
{
	for (size_t i = 0; i < catalog_local_count(s->env.catalog); i++)
		if (catalog_local_at(s->env.catalog, i)->unit[0] != '\0')
			return 1;
	return 0;
}

static void
process(struct served *s, struct owner *o)
{
	if (o->pid == 0 && owner_process(o, s->hint) == 0)
		s->hint = o->pid;
}

/* One connection on l: find its source service and hand it to the
 * relay, or refuse it (reset). */
static void
served_conn(struct lsn *l, int fd, const struct sockaddr_storage *peer)
{
	struct served *s = l->s;
	const struct served_env *e = &s->env;
	struct sockaddr_storage local;
	socklen_t sl = sizeof(local);
	const struct conf_service *svc;
	const struct intent *m = NULL;
	char src[CONF_NAME_MAX], where[CONF_NAME_MAX + 40], a[INET_ADDRSTRLEN];
	struct owner o;
	int tie;

	addr_string(l->addr, a, sizeof(a));
	snprintf(where, sizeof(where), "%s:%d (%s)", a, l->port, l->svc);
	if (getsockname(fd, (struct sockaddr *)&local, &sl) != 0 ||
	    owner_socket(s->sd, peer, &local, &o) != 0) {
		log_warn("served %s: the connecting socket's owner is "
		    "unknown (%m): refused", where);
		reset_fd(fd);
		return;
	}
	if (units_used(s))
		process(s, &o);
	svc = who(s, &o, l->svc, &tie);
	if (svc != NULL)
		util_strlcpy(src, svc->name, sizeof(src));
	else {
		process(s, &o);
		if (tie || !e->conf->default_allow) {
			log_warn("served %s: refused pid %ld (%s) uid %ld unit "
			    "%s: %s", where, (long)o.pid, o.comm[0] ? o.comm :
			    "?", (long)o.uid, o.unit[0] ? o.unit : "-",
			    tie ? "it matches several services equally" :
			    "it matches no service's user or unit "
			    "(default_intention = deny)");
			reset_fd(fd);
			return;
		}
		snprintf(src, sizeof(src), "uid-%ld", (long)o.uid);
	}
	/* Fail fast on this node's intentions, as the shim's CONNECT does;
	 * the destination's helperd checks again and stays the authority. */
	if (!intent_check(e->intents, src, l->svc, e->conf->default_allow,
	    &m)) {
		process(s, &o);
		log_warn("denied %s (pid %ld %s uid %ld unit %s) => %s at "
		    "%s: %s", src, (long)o.pid, o.comm[0] ? o.comm : "?",
		    (long)o.uid, o.unit[0] ? o.unit : "-", l->svc, where,
		    m != NULL ? "intention" : "default_intention");
		reset_fd(fd);
		return;
	}
	log_debug("served %s: pid %ld (%s) uid %ld unit %s is %s", where,
	    (long)o.pid, o.comm[0] ? o.comm : "?", (long)o.uid,
	    o.unit[0] ? o.unit : "-", src);
	relay_outbound_hand(e->relay, fd, peer, src, l->svc, o.uid);
}

/* Main thread: a listener is readable. */
static void
lsn_event(void *arg, uint32_t events)
{
	struct lsn *l = arg;

	(void)events;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (emfile_hit(&l->eg, errno))
				return;         /* paused, logged */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("served: accept: %m");
			return;
		}
		emfile_ok(&l->eg);
		served_conn(l, fd, &ss);
	}
}

/* Listeners ------------------------------------------------------------ */

/* A listening TCP socket on addr:port (non-blocking). fd or -1 with err. */
static int
listen_plain(uint32_t addr, int port, char *err, size_t errlen)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(addr) };
	char a[INET_ADDRSTRLEN];
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    bind(fd, (struct sockaddr *)&in, sizeof(in)) == 0 &&
	    listen(fd, 1024) == 0)
		return fd;
	addr_string(addr, a, sizeof(a));
	snprintf(err, errlen, "cannot listen on %s:%d: %s", a, port,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
lsn_open(struct served *s, struct lsn *l)
{
	char a[INET_ADDRSTRLEN], err[256];

	addr_string(l->addr, a, sizeof(a));
	l->fd = listen_plain(l->addr, l->port, err, sizeof(err));
	if (l->fd < 0) {
		if (l->retry_at == 0)
			log_warn("served: %s (retried every %d s)", err,
			    SERVED_RETRY_MS / 1000);
		l->retry_at = util_now_ms_mono() + SERVED_RETRY_MS;
		return -1;
	}
	if (loop_add(s->env.loop, &l->w, l->fd, EPOLLIN, lsn_event, l) != 0 ||
	    emfile_init(&l->eg, s->env.loop, &l->w, l->fd, EPOLLIN, lsn_event,
	    l, "served address") != 0) {
		loop_del(s->env.loop, &l->w);
		emfile_fini(&l->eg);
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	log_info("served: %s:%d is %s", a, l->port, l->svc);
	l->retry_at = 0;
	return 0;
}

static void
lsn_key(uint32_t addr, int port, const char *svc, char *buf, size_t len)
{
	snprintf(buf, len, "%08x:%d:%s", addr, port, svc);
}

static void
lsn_close(struct served *s, struct lsn *l)
{
	if (l->fd >= 0) {
		loop_del(s->env.loop, &l->w);
		emfile_fini(&l->eg);
		close(l->fd);
	}
	free(l);
}

/* Want a listener on svc's address at port. */
static void
want(struct served *s, const char *svc, int port)
{
	struct slot *sl = slot_find(s, svc);
	struct lsn *l, **v;
	char key[CONF_NAME_MAX + 32];
	json_t *at;
	uint32_t addr;

	if (sl == NULL || port <= 0)
		return;
	addr = s->net + sl->host;
	if (sl->srv_port == 0)
		sl->srv_port = port;
	lsn_key(addr, port, svc, key, sizeof(key));
	if ((at = json_object_get(s->lsn_idx, key)) != NULL) {
		l = s->lsn[json_integer_value(at)];
		l->want = 1;
		if (l->fd < 0 && util_now_ms_mono() >= l->retry_at)
			lsn_open(s, l);
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (v = realloc(s->lsn, (s->n_lsn + 1) * sizeof(*v))) == NULL) {
		free(l);
		return;
	}
	s->lsn = v;
	if (json_object_set_new(s->lsn_idx, key,
	    json_integer((json_int_t)s->n_lsn)) != 0) {
		free(l);
		return;
	}
	l->s = s;
	l->fd = -1;
	l->w.fd = -1;
	l->addr = addr;
	l->port = port;
	l->want = 1;
	util_strlcpy(l->svc, svc, sizeof(l->svc));
	s->lsn[s->n_lsn++] = l;
	lsn_open(s, l);
}

static int
local_port_used(struct served *s, int port)
{
	for (size_t i = 0; i < catalog_local_count(s->env.catalog); i++)
		if (catalog_local_at(s->env.catalog, i)->port == port)
			return 1;
	return 0;
}

/* The port a served address of a service with no local instance
 * listens on: its first remote instance's. name -> port, one pass. */
static json_t *
remote_ports(struct catalog *cat)
{
	json_t *ports = json_object();

	for (size_t i = 0; ports != NULL && i < catalog_remote_count(cat);
	    i++) {
		const struct conf_service *r = catalog_remote_at(cat, i);

		if (json_object_get(ports, r->name) == NULL)
			json_object_set_new(ports, r->name,
			    json_integer(r->port));
	}
	return ports;
}

void
served_sync(struct served *s)
{
	struct catalog *cat = s->env.catalog;
	json_t *ports;
	const char *k;
	json_t *v;
	char key[CONF_NAME_MAX + 32];
	int added = 0;

	if (s->size == 0)
		return;
	if ((ports = remote_ports(cat)) == NULL) {
		log_err("served: out of memory: addresses not updated");
		return;
	}
	for (size_t i = 0; i < s->n_slots; i++) {
		s->slots[i].known = 0;
		s->slots[i].srv_port = 0;
	}
	for (size_t i = 0; i < catalog_local_count(cat); i++) {
		const struct conf_service *c = catalog_local_at(cat, i);

		if (conf_valid_name(c->name))
			added += know(s, c->name);
	}
	json_object_foreach(ports, k, v)
		if (conf_valid_name(k))
			added += know(s, k);
	for (size_t i = 0; i < catalog_local_count(cat); i++) {
		const struct conf_service *c = catalog_local_at(cat, i);

		for (size_t u = 0; u < c->n_upstreams; u++)
			added += know(s, c->upstreams[u].dest);
	}
	if (added > 0)
		save(s);

	for (size_t i = 0; i < s->n_lsn; i++)
		s->lsn[i]->want = 0;
	/* The service's own port, where no local application may be
	 * listening on it (see served.h). */
	json_object_foreach(ports, k, v) {
		int port = (int)json_integer_value(v);

		if (catalog_local(cat, k) != NULL || local_port_used(s, port))
			continue;
		want(s, k, port);
	}
	json_decref(ports);
	/* The ports the configuration names for it. */
	for (size_t i = 0; i < catalog_local_count(cat); i++) {
		const struct conf_service *c = catalog_local_at(cat, i);

		for (size_t u = 0; u < c->n_upstreams; u++)
			want(s, c->upstreams[u].dest,
			    c->upstreams[u].bind_port);
	}
	for (size_t i = 0; i < s->n_lsn;) {
		struct lsn *l = s->lsn[i];

		if (l->want) {
			i++;
			continue;
		}
		lsn_key(l->addr, l->port, l->svc, key, sizeof(key));
		json_object_del(s->lsn_idx, key);
		lsn_close(s, l);
		s->lsn[i] = s->lsn[--s->n_lsn];
		if (i < s->n_lsn) {
			l = s->lsn[i];
			lsn_key(l->addr, l->port, l->svc, key, sizeof(key));
			json_object_set_new(s->lsn_idx, key,
			    json_integer((json_int_t)i));
		}
	}
	served_arm(s);
}

/* The timer: only listeners that could not bind are tried again (every
 * SERVED_RETRY_MS); the rest follows the catalog (served_sync, called on
 * every change, remote ones included: cluster.c). Nothing to retry: not
 * armed. */
static void
served_arm(struct served *s)
{
	int64_t next = 0;

	for (size_t i = 0; i < s->n_lsn; i++) {
		const struct lsn *l = s->lsn[i];

		if (l->want && l->fd < 0 && l->retry_at != 0 &&
		    (next == 0 || l->retry_at < next))
			next = l->retry_at;
	}
	if (next == 0)
		loop_timer_del(s->env.loop, &s->timer);
	else if (loop_timer_at(s->env.loop, &s->timer, next) != 0)
		log_err("served: cannot arm its timer: out of memory");
}

static void
served_due(void *arg)
{
	struct served *s = arg;
	int64_t now = util_now_ms_mono();

	for (size_t i = 0; i < s->n_lsn; i++) {
		struct lsn *l = s->lsn[i];

		if (l->want && l->fd < 0 && now >= l->retry_at)
			lsn_open(s, l);
	}
	served_arm(s);
}

int
served_new(struct served **out, const struct served_env *env, char *err,
    size_t errlen)
{
	struct served *s = calloc(1, sizeof(*s));
	int prefix;

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->env = *env;
	loop_timer_init(&s->timer, served_due, s);
	if (env->conf->served_addrs[0] != '\0') {
		if (conf_parse_loopback_block(env->conf->served_addrs, &s->net,
		    &prefix) != 0) {
			snprintf(err, errlen, "served_addrs \"%s\" is not a "
			    "loopback block", env->conf->served_addrs);
			free(s);
			return -1;
		}
		s->size = 1u << (32 - prefix);
		s->slot_idx = json_object();
		s->lsn_idx = json_object();
		s->taken = calloc(s->size / 8 + 1, 1);
		if (s->slot_idx == NULL || s->lsn_idx == NULL ||
		    s->taken == NULL) {
			snprintf(err, errlen, "out of memory");
			served_free(s);
			return -1;
		}
		host_mark(s, 0, 1);                     /* the network */
		host_mark(s, s->size - 1, 1);           /* broadcast */
		if (sockdiag_open(&s->sd) != 0) {
			snprintf(err, errlen, "sock_diag: %s",
			    strerror(errno));
			served_free(s);
			return -1;
		}
		load(s);
	}
	*out = s;
	return 0;
}

void
served_free(struct served *s)
{
	if (s == NULL)
		return;
	loop_timer_del(s->env.loop, &s->timer);
	for (size_t i = 0; i < s->n_lsn; i++)
		lsn_close(s, s->lsn[i]);
	free(s->lsn);
	free(s->slots);
	json_decref(s->slot_idx);
	json_decref(s->lsn_idx);
	free(s->taken);
	if (s->sd != NULL)
		sockdiag_close(s->sd);
	free(s);
}
