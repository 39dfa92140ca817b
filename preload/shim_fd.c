/* shim_fd: the per-fd table (fd -> original destination / mesh peer) and
 * the hooks that keep it right: close, dup, dup2, dup3, close_range,
 * closefrom (fcntl F_DUPFD* is in shim_fcntl.c).
 *
 * The table is one anonymous mapping indexed by fd, made on the first
 * mesh connect, so a process that never meshes pays nothing. Each slot is
 * a seqlock: writers (connect, accept, dup, close) never block and never
 * allocate; readers (getpeername, second connect) retry a bounded number
 * of times. A slot also remembers its socket's inode, so an fd closed
 * behind our back (fclose of an fdopen'ed socket, a raw syscall) is never
 * taken for the socket that later reuses its number.
 *
 * In a vfork child (or any process that is not the state's owner) the
 * hooks change nothing: the memory is the parent's. */
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define EXPORT __attribute__((visibility("default")))

struct fdt_slot {
	unsigned seq;           /* odd while being written */
	struct fdt_ent e;
};

static struct fdt_slot *fdt_tab;        /* atomic; NULL until first use */
static unsigned fdt_hi;                 /* atomic; 1 + highest fd set */
static pthread_mutex_t fdt_mk_mu = PTHREAD_MUTEX_INITIALIZER;

static struct fdt_slot *
tab(void)
{
	return __atomic_load_n(&fdt_tab, __ATOMIC_ACQUIRE);
}

static struct fdt_slot *
tab_make(void)
{
	struct fdt_slot *t = tab();
	void *p;

	if (t != NULL)
		return t;
	pthread_mutex_lock(&fdt_mk_mu);
	t = tab();
	if (t == NULL) {
		p = mmap(NULL, sizeof(struct fdt_slot) * SHIM_FD_MAX,
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			t = p;
			__atomic_store_n(&fdt_tab, t, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&fdt_mk_mu);
	return t;
}

static int
slot_busy(const struct fdt_slot *s)
{
	return __atomic_load_n(&s->e.kind, __ATOMIC_RELAXED) != FDT_NONE;
}

/* Writer side of the seqlock. Normalises the counter, so a slot left odd
 * by a fork in the middle of a write heals on the next write. */
static unsigned
w_begin(struct fdt_slot *s)
{
	unsigned v = __atomic_load_n(&s->seq, __ATOMIC_RELAXED) | 1u;

	__atomic_store_n(&s->seq, v, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return v;
}

static void
w_end(struct fdt_slot *s, unsigned v)
{
	__atomic_store_n(&s->seq, v + 1, __ATOMIC_RELEASE);
}

static void
hi_raise(unsigned fd)
{
	unsigned h = __atomic_load_n(&fdt_hi, __ATOMIC_RELAXED);

	while (h < fd + 1 && !__atomic_compare_exchange_n(&fdt_hi, &h, fd + 1,
	    1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Consistent copy of a slot; 0 if empty or never stable. */
static int
read_slot(struct fdt_slot *s, struct fdt_ent *e)
{
	unsigned a, b;
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (a & 1u)
			continue;
		if (!slot_busy(s))
			return 0;
		memcpy(e, &s->e, sizeof(*e));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		b = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
		if (a == b)
			return e->kind != FDT_NONE;
	}
	return 0;
}

unsigned long
fdt_inode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return (unsigned long)st.st_ino;
}

int
fdt_set(int fd, const struct fdt_ent *e)
{
	struct fdt_slot *t, *s;
	unsigned v;

	if (fd < 0 || fd >= SHIM_FD_MAX || (t = tab_make()) == NULL)
		return -1;
	s = &t[fd];
	v = w_begin(s);
	memcpy(&s->e, e, sizeof(*e));
	w_end(s, v);
	hi_raise((unsigned)fd);
	return 0;
}

int
fdt_get(int fd, struct fdt_ent *e)
{
	struct fdt_slot *t = tab();
	int saved;

	if (t == NULL || fd < 0 || fd >= SHIM_FD_MAX || !slot_busy(&t[fd]))
		return 0;
	if (!read_slot(&t[fd], e))
		return 0;
	saved = errno;
	if (e->ino == 0 || fdt_inode(fd) != e->ino) {
		errno = saved;
		return 0;
	}
	errno = saved;
	return 1;
}

void
fdt_clear(int fd)
{
	struct fdt_slot *t = tab(), *s;
	unsigned v;

	if (t == NULL || fd < 0 || fd >= SHIM_FD_MAX)
		return;
	s = &t[fd];
	if (!slot_busy(s) || !shim_is_owner())
		return;
	v = w_begin(s);
	s->e.kind = FDT_NONE;
	w_end(s, v);
}

void
fdt_clear_range(unsigned first, unsigned last)
{
	struct fdt_slot *t = tab();
	unsigned fd, hi = __atomic_load_n(&fdt_hi, __ATOMIC_RELAXED);
	int owner = -1;

	if (t == NULL)
		return;
	if (last >= hi)
		last = hi - 1;
	if (hi == 0)
		return;
	for (fd = first; fd <= last && fd < SHIM_FD_MAX; fd++) {
		struct fdt_slot *s = &t[fd];
		unsigned v;
		if (!slot_busy(s))
			continue;
		if (owner < 0)
			owner = shim_is_owner();
		if (!owner)
			return;
		v = w_begin(s);
		s->e.kind = FDT_NONE;
		w_end(s, v);
	}
}

void
fdt_copy(int from, int to)
{
	struct fdt_slot *t = tab(), *d;
	struct fdt_ent e;
	unsigned v;

	if (t == NULL || to < 0 || to >= SHIM_FD_MAX || from == to)
		return;
	if (from < 0 || from >= SHIM_FD_MAX || !read_slot(&t[from], &e)) {
		fdt_clear(to);
		return;
	}
	if (!shim_is_owner())
		return;
	d = &t[to];
	v = w_begin(d);
	memcpy(&d->e, &e, sizeof(e));
	w_end(d, v);
	hi_raise((unsigned)to);
}

void
fdt_atfork_child(void)
{
	pthread_mutex_init(&fdt_mk_mu, NULL);
}

/* ---- hooks: no malloc, no locks, no stdio; errno from the real call ---- */

EXPORT int
close(int fd)
{
	if (REAL(close) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	ctl_fd_lost(fd);
	fdt_clear(fd);
	return REAL(close)(fd);
}

EXPORT int
dup(int fd)
{
	int nfd;

	if (REAL(dup) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	nfd = REAL(dup)(fd);
	if (nfd >= 0)
		fdt_copy(fd, nfd);
	return nfd;
}

EXPORT int
dup2(int fd, int nfd)
{
	int r;

	if (REAL(dup2) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = REAL(dup2)(fd, nfd);
	if (r >= 0 && fd != nfd) {
		ctl_fd_lost(r);
		fdt_copy(fd, r);
	}
	return r;
}

EXPORT int
dup3(int fd, int nfd, int flags)
{
	int r;

	if (REAL(dup3) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = REAL(dup3)(fd, nfd, flags);
	if (r >= 0) {
		ctl_fd_lost(r);
		fdt_copy(fd, r);
	}
	return r;
}

EXPORT int
close_range(unsigned first, unsigned last, int flags)
{
	int r;

	if (REAL(close_range) == NULL) {
		errno = ENOSYS;
		return -1;
	}
	/* CLOSE_RANGE_CLOEXEC closes nothing now. The control fd is given up
	 * before the call: afterwards a thread may already reuse its number. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		ctl_fd_lost_range(first, last);
	r = REAL(close_range)(first, last, flags);
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		fdt_clear_range(first, last);
	return r;
}

EXPORT void
closefrom(int lowfd)
{
	if (REAL(closefrom) == NULL)
		return;
	if (lowfd < 0)
		lowfd = 0;
	/* Before the call: afterwards a thread may already reuse the
	 * numbers. closefrom cannot fail (glibc falls back to a loop). */
	ctl_fd_lost_range((unsigned)lowfd, ~0u);
	REAL(closefrom)(lowfd);
	fdt_clear_range((unsigned)lowfd, ~0u);
}
