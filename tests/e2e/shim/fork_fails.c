/*
 * fork_fails.c - an LD_PRELOAD shim for the tests: fork(2) succeeds
 * SHIM_FORKS_OK times (default 0), then fails with EAGAIN, as when a
 * process limit is reached.  Root is not held to RLIMIT_NPROC, so this is
 * how the batch mode's "worker cannot be started" paths are reached here.
 * Built by the test that uses it (tests/e2e/test_cli_batch.py).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

pid_t
fork(void)
{
	static pid_t (*real)(void);
	static long left = -1;

	if (real == NULL)
		real = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	if (left == -1) {
		const char *s = getenv("SHIM_FORKS_OK");
		left = s != NULL ? strtol(s, NULL, 10) : 0;
	}
	if (left == 0) {
		errno = EAGAIN;
		return -1;
	}
	left--;
	return real();
}
