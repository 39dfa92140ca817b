/* relay_leaf: outbound connections that wait for their certificate.
 *
 * The first connection of a service with no leaf yet (an ad-hoc name, or
 * a CA client's service whose CSR is out) must not fail, and a relay
 * worker must never generate a key or wait for a CA server. So the worker
 * parks the connection (ST_LEAF, deadline
 * connect_timeout), names the service here, and the main loop gets the
 * leaf through the creator's op (env.ops->leaf: issued on a CA server, a
 * CSR on a CA client). When
 * a leaf is in place, relay_leaf_ready wakes every worker and each one
 * dials its waiting connections again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "helperd/identity/ca.h"
#include "helperd/evloop/loop.h"
#include "helperd/relay/relay_int.h"

int
relay_leaf_want(struct relay *r, const char *service)
{
	uint64_t one = 1;
	size_t i;

	pthread_mutex_lock(&r->leaf_mu);
	for (i = 0; i < r->n_leaf_want; i++)
		if (strcmp(r->leaf_want[i], service) == 0)
			break;
	if (i == r->n_leaf_want) {
		if (r->n_leaf_want == RELAY_LEAF_WANTS) {
			pthread_mutex_unlock(&r->leaf_mu);
			return -1;
		}
		util_strlcpy(r->leaf_want[r->n_leaf_want++], service,
		    sizeof(r->leaf_want[0]));
	}
	pthread_mutex_unlock(&r->leaf_mu);
	if (write(r->leaf_w.fd, &one, sizeof(one)) != sizeof(one))
		log_warn("relay: leaf wake-up failed: %m");
	return 0;
}

/* Main loop: get the leaves the workers asked for. */
static void
on_leaf_want(void *arg, uint32_t events)
{
	struct relay *r = arg;
	char want[RELAY_LEAF_WANTS][64], err[256];
	size_t n;
	uint64_t v;
	int got = 0;

	(void)events;
	if (read(r->leaf_w.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("relay: leaf eventfd: %m");
	relay_assert_loop(r);
	pthread_mutex_lock(&r->leaf_mu);
	n = r->n_leaf_want;
	memcpy(want, r->leaf_want, n * sizeof(want[0]));
	r->n_leaf_want = 0;
	pthread_mutex_unlock(&r->leaf_mu);
	for (size_t i = 0; i < n; i++) {
		if (r->env.ops->leaf(r->env.cookie, want[i], err,
		    sizeof(err)) != NULL)
			got = 1;
		else if (ca_is_client(*r->env.ca))
			log_info("leaf for %s: %s; a connection waits for it",
			    want[i], err);
		else
			log_err("leaf for %s: %s", want[i], err);
	}
	if (got)
		relay_leaf_ready(r);
}

void
relay_leaf_ready(struct relay *r)
{
	uint64_t one = 1;

	if (r == NULL)
		return;
	/* The workers dial again with a snapshot that has the leaf. */
	relay_assert_loop(r);
	policy_sync(r->env.policy);
	for (size_t i = 0; i < r->n_workers; i++) {
		struct worker *w = r->workers[i];

		pthread_mutex_lock(&w->qlock);
		w->leaf_ready = 1;
		pthread_mutex_unlock(&w->qlock);
		if (write(w->wake.fd, &one, sizeof(one)) != sizeof(one))
			log_warn("worker %d: wake-up failed: %m", w->id);
	}
}

int
relay_leaf_init(struct relay *r)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	r->leaf_w.fd = -1;
	if (fd < 0)
		return -1;
	if (loop_add(r->env.loop, &r->leaf_w, fd, EPOLLIN, on_leaf_want,
	    r) != 0) {
		close(fd);
		return -1;
	}
	return 0;
}

void
relay_leaf_fini(struct relay *r)
{
	int fd = r->leaf_w.fd;

	if (fd < 0)
		return;
	loop_del(r->env.loop, &r->leaf_w);
	close(fd);
}
