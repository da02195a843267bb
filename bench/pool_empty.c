/*
 * pool_empty.c - what emptying a recycled spool file costs, truncated
 * (the way before) or zeroed in place (FALLOC_FL_ZERO_RANGE, spool.c's
 * pool since 2026-12-07), in the same run, interleaved.  One cycle is a
 * spool file's life in the pool: renamed from tmp/free.N to its name,
 * written (10 KiB), optionally fsync'd, renamed back and emptied.
 * Prints microseconds of wall and CPU time per cycle for each way, and
 * the ratio.
 *
 *   cc -O2 -D_GNU_SOURCE -o pool_empty bench/pool_empty.c
 *   ./pool_empty DIR [CYCLES]     (DIR on the spool's file system)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NFILES 64
#define SIZE   10240

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
cpu(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
	       (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* CYCLES cycles; ZERO: zeroed in place, else truncated.  -1 on error. */
static int
run(int dir, int zero, int sync, int cycles, double *wall, double *cpus)
{
	static char buf[SIZE];
	char a[32], b[32];
	double t0, c0;

	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < NFILES; i++) {
		int fd;

		snprintf(a, sizeof(a), "free.%d", i);
		if ((fd = openat(dir, a, O_CREAT | O_WRONLY | O_TRUNC, 0600)) < 0)
			return -1;
		close(fd);
	}
	t0 = now();
	c0 = cpu();
	for (int i = 0; i < cycles; i++) {
		int fd, k = i % NFILES;

		snprintf(a, sizeof(a), "free.%d", k);
		snprintf(b, sizeof(b), "msg.%d", k);
		if (renameat(dir, a, dir, b) < 0 ||
		    (fd = openat(dir, b, O_WRONLY | (zero ? 0 : O_TRUNC))) < 0)
			return -1;
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
		    (zero && ftruncate(fd, SIZE) < 0) || (sync && fsync(fd) < 0))
			return -1;
		close(fd);
		if (renameat(dir, b, dir, a) < 0 ||
		    (fd = openat(dir, a, O_WRONLY | (zero ? 0 : O_TRUNC))) < 0)
			return -1;
		if (zero && fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		                      0, SIZE) < 0)
			return -1;
		close(fd);
	}
	*wall += (now() - t0) / cycles * 1e6;
	*cpus += (cpu() - c0) / cycles * 1e6;
	for (int i = 0; i < NFILES; i++) {
		snprintf(a, sizeof(a), "free.%d", i);
		unlinkat(dir, a, 0);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	int dir, cycles = argc > 2 ? atoi(argv[2]) : 2000;

	if (argc < 2 || cycles <= 0 ||
	    (dir = open(argv[1], O_RDONLY | O_DIRECTORY)) < 0) {
		fprintf(stderr, "usage: pool_empty DIR [CYCLES]\n");
		return 2;
	}
	for (int sync = 0; sync <= 1; sync++) {
		double w[2] = {0, 0}, c[2] = {0, 0};
		int n = sync ? cycles / 4 : cycles;

		for (int round = 0; round < 3; round++)
			for (int zero = 0; zero <= 1; zero++)
				if (run(dir, zero, sync, n, &w[zero], &c[zero]) < 0) {
					perror("pool_empty");
					return 1;
				}
		printf("%-9s truncated %7.1f us wall %7.1f us cpu | zeroed "
		       "%7.1f us wall %7.1f us cpu | ratio %.2f wall %.2f cpu\n",
		       sync ? "fsync" : "no fsync", w[0] / 3, c[0] / 3, w[1] / 3,
		       c[1] / 3, w[1] / w[0], c[1] / c[0]);
	}
	return 0;
}
