/* resolve: health-check names off the loop (see resolve.h). Why
 * getaddrinfo_a rather than c-ares or a thread of our own: a check names
 * a host once per interval, glibc's call honours nsswitch.conf (/etc/hosts,
 * systemd-resolved, ...) exactly as the blocking getaddrinfo did, and it
 * needs no new library; c-ares would add a dependency and bypass NSS. */
#include "helperd/local/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


struct resolve {
	struct gaicb cb;
	struct addrinfo hints;
	char host[256];
	char port[8];
	struct resolve *next;           /* orphan list */
};

static struct resolve *orphans;
static size_t n_orphans;

int
resolve_literal(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 1;
	}
	return 0;
}

struct resolve *
resolve_start(const char *host, int port, char *why, size_t whylen)
{
	struct resolve *r;
	struct gaicb *list[1];
	int rc;

	(void)resolve_reap(0);
	if (strlen(host) >= sizeof(r->host)) {
		snprintf(why, whylen, "host name too long");
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	memcpy(r->host, host, strlen(host) + 1);
	snprintf(r->port, sizeof(r->port), "%d", port);
	r->hints.ai_socktype = SOCK_STREAM;
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->port;
	r->cb.ar_request = &r->hints;
	list[0] = &r->cb;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0) {
		snprintf(why, whylen, "%s", gai_strerror(rc));
		free(r);
		return NULL;
	}
	return r;
}

int
resolve_poll(struct resolve *r, struct sockaddr_storage *ss, socklen_t *len,
    char *why, size_t whylen)
{
	struct addrinfo *res;
	int rc = gai_error(&r->cb);

	if (rc == EAI_INPROGRESS)
		return 0;
	res = r->cb.ar_result;
	if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(*ss)) {
		snprintf(why, whylen, "%s", rc != 0 ? gai_strerror(rc) :
		    "no address");
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	return 1;
}

static void
release(struct resolve *r)
{
	if (r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	free(r);
}

void
resolve_free(struct resolve *r)
{
	if (r == NULL)
		return;
	if (gai_error(&r->cb) == EAI_INPROGRESS &&
	    gai_cancel(&r->cb) != EAI_CANCELED) {
		/* glibc still works on it: it owns r until it is done. */
		r->next = orphans;
		orphans = r;
		n_orphans++;
		return;
	}
	release(r);
}

size_t
resolve_reap(int wait_ms)
{
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += wait_ms / 1000;
	end.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	for (;;) {
		struct resolve **pp = &orphans;

		while (*pp != NULL) {
			struct resolve *r = *pp;

			if (gai_error(&r->cb) == EAI_INPROGRESS) {
				pp = &r->next;
				continue;
			}
			*pp = r->next;
			n_orphans--;
			release(r);
		}
		if (orphans == NULL || wait_ms <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec &&
		    now.tv_nsec >= end.tv_nsec))
			break;
		{
			struct timespec ms = { 0, 10 * 1000000L };
			const struct gaicb *list[1] = { &orphans->cb };

			(void)gai_suspend(list, 1, &ms);
		}
	}
	return n_orphans;
}
