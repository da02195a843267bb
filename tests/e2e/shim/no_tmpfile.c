/*
 * no_tmpfile.c - an LD_PRELOAD shim for the tests: open(2) with O_TMPFILE
 * fails with EOPNOTSUPP, as on a file system without it (NFS, some FUSE),
 * so that the fallback paths can be exercised on this machine.  Built by
 * the test that uses it (tests/e2e/test_cli_output.py).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>

typedef int (*open_fn)(const char *, int, ...);

static int
shim(const char *path, int flags, va_list ap)
{
	static open_fn real;
	mode_t mode = 0;

	if (real == NULL)
		real = (open_fn)dlsym(RTLD_NEXT, "open");
	if ((flags & O_TMPFILE) == O_TMPFILE) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (flags & O_CREAT)
		mode = (mode_t)va_arg(ap, int);
	return real(path, flags, mode);
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	int fd;

	va_start(ap, flags);
	fd = shim(path, flags, ap);
	va_end(ap);
	return fd;
}

/* The same function under the name large-file builds call. */
int open64(const char *path, int flags, ...) __attribute__((alias("open")));
