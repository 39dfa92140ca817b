/* emfile: what a listening socket does when accept() runs out of file
 * descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM). Level-triggered epoll
 * would report the listener again at once and the loop would spin: the
 * guard takes the listener out of its loop for EMFILE_PAUSE_MS (a timer
 * of the same loop puts it back: no fd, which is what ran out), closes one waiting connection with a
 * spare fd kept for that (the client sees a close rather than hanging in
 * the backlog), and logs at most one line per second per listener, plus
 * one when accepting works again with no shortage for a second. */
#ifndef MESH_EMFILE_H
#define MESH_EMFILE_H

#include <stdint.h>

#include "helperd/evloop/loop.h"

#define EMFILE_PAUSE_MS 100

struct emfile {
	struct loop *loop;
	struct loop_watch *lw;  /* the listener's watch, owned by the caller */
	int lfd;
	uint32_t events;
	loop_cb cb;
	void *cb_arg;
	struct loop_timer tw;   /* the pause */
	const char *what;       /* "control socket", "outbound port".. */
	int paused;
	unsigned long hits;     /* since accepting last worked */
	unsigned long unlogged; /* hits since the last log line */
	unsigned long closed;   /* connections closed with the spare fd */
	int64_t last_log;       /* monotonic ms of the last warning */
	int64_t last_hit;       /* ... of the last shortage */
};

/* Open the process's spare fd (once; later calls are no-ops). 0/-1. */
int emfile_reserve(void);

/* Guard the listener lfd, registered with lw in loop (events, cb, arg:
 * as given to loop_add, to put it back). Takes the process's spare fd
 * now, while fds are there. Any thread (it only fills g); emfile_hit and
 * emfile_fini are the loop thread's. A zeroed guard is not initialised:
 * emfile_fini of it is a no-op. 0/-1. */
int emfile_init(struct emfile *g, struct loop *loop, struct loop_watch *lw,
    int lfd, uint32_t events, loop_cb cb, void *arg, const char *what);
void emfile_fini(struct emfile *g);

/* accept() on the guarded listener failed with errno e: 1 if that was fd
 * exhaustion (handled: the listener is paused; stop accepting this
 * round), 0 otherwise. */
int emfile_hit(struct emfile *g, int e);

/* accept() worked: a shortage a second old is over (logged once). */
static inline void
emfile_ok(struct emfile *g)
{
	void emfile_recovered(struct emfile *g);

	if (g->hits != 0)
		emfile_recovered(g);
}

#endif
