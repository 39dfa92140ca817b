#include "helperd/evloop/emfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* One spare fd for the whole process, taken by whichever thread hits the
 * limit first (the mutex is only ever taken on that path). */
static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static int spare = -1;

int
emfile_reserve(void)
{
	int rc = 0;

	pthread_mutex_lock(&spare_mu);
	if (spare < 0 &&
	    (spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		rc = -1;
	pthread_mutex_unlock(&spare_mu);
	return rc;
}

/* The pause is over: watch the listener again. */
static void
resume(void *arg)
{
	struct emfile *g = arg;

	if (!g->paused)
		return;
	if (loop_add(g->loop, g->lw, g->lfd, g->events, g->cb,
	    g->cb_arg) != 0) {
		/* epoll itself out of memory: try again after a pause. */
		if (loop_timer_add(g->loop, &g->tw, EMFILE_PAUSE_MS) != 0)
			log_err("%s: cannot resume accepting: out of memory",
			    g->what);
		return;
	}
	g->paused = 0;
}

int
emfile_init(struct emfile *g, struct loop *loop, struct loop_watch *lw,
    int lfd, uint32_t events, loop_cb cb, void *arg, const char *what)
{
	memset(g, 0, sizeof(*g));
	if (emfile_reserve() != 0)
		return -1;
	loop_timer_init(&g->tw, resume, g);
	g->loop = loop;
	g->lw = lw;
	g->lfd = lfd;
	g->events = events;
	g->cb = cb;
	g->cb_arg = arg;
	g->what = what;
	return 0;
}

void
emfile_fini(struct emfile *g)
{
	if (g == NULL || g->loop == NULL)
		return;
	loop_timer_del(g->loop, &g->tw);
	g->loop = NULL;
	g->paused = 0;
}

/* Close one waiting connection with the spare fd, so that its client is
 * told at once instead of waiting in the backlog. */
static void
shed_one(struct emfile *g)
{
	int fd;

	pthread_mutex_lock(&spare_mu);
	if (spare >= 0) {
		close(spare);
		spare = -1;
		fd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
			g->closed++;
		}
		spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&spare_mu);
}

int
emfile_hit(struct emfile *g, int e)
{
	int64_t now;

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return 0;
	g->hits++;
	g->unlogged++;
	shed_one(g);
	now = util_now_ms_mono();
	g->last_hit = now;
	if (g->last_log == 0 || now - g->last_log >= 1000) {
		log_warn("%s: out of file descriptors (accept: %s): pausing "
		    "accept for %d ms (%lu time(s) since the last such line, "
		    "%lu waiting connection(s) closed)", g->what, strerror(e),
		    EMFILE_PAUSE_MS, g->unlogged, g->closed);
		g->last_log = now;
		g->unlogged = 0;
	}
	if (!g->paused && g->loop != NULL &&
	    loop_timer_add(g->loop, &g->tw, EMFILE_PAUSE_MS) == 0) {
		loop_del(g->loop, g->lw);
		g->paused = 1;
	}
	return 1;
}

void
emfile_recovered(struct emfile *g)
{
	if (util_now_ms_mono() - g->last_hit < 1000)
		return;         /* still short now and then: not over yet */
	log_info("%s: accepting again (%lu accept(s) had run out of file "
	    "descriptors, %lu waiting connection(s) closed)", g->what,
	    g->hits, g->closed);
	g->hits = 0;
	g->unlogged = 0;
	g->closed = 0;
}
