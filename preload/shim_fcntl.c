/* shim_fcntl: fcntl and fcntl64 hooks (F_DUPFD, F_DUPFD_CLOEXEC copy the
 * per-fd entry). Built without _FILE_OFFSET_BITS=64, which would turn the
 * definition of fcntl into a second fcntl64. */
#undef _FILE_OFFSET_BITS
#include "shim.h"

#include <errno.h>
#include <stdarg.h>

#define EXPORT __attribute__((visibility("default")))

static int
fcntl_common(__typeof__(&fcntl) real, int fd, int cmd, void *arg)
{
	int r;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = real(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		fdt_copy(fd, r);
	return r;
}

/* fcntl's third argument is an int, a long or a pointer; like glibc, pass
 * it on as a pointer-sized value. */
EXPORT int
fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(REAL(fcntl), fd, cmd, arg);
}

EXPORT int
fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(REAL(fcntl64), fd, cmd, arg);
}
