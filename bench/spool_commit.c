/*
 * spool_commit.c - commits per second of the spool alone: THREADS threads
 * each commit 10 KiB messages (spool_rx_begin, spool_rx_write,
 * spool_rx_commit, as the SMTP server's commit threads do) into a fresh
 * spool under DIR for SECONDS seconds.  Prints one line:
 *
 *   threads=T commits=N seconds=S commits_per_s=R
 *
 * Built and run by bench/gateway.sh against the release objects of
 * spool.c and status.c; not part of the daemon.
 *
 *   spool_commit DIR THREADS SECONDS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/spool.h"
#include "smimegate.h"

#define MSG_SIZE 10240

struct run {
	struct spool *sp;
	const char *data;
	double until; /* monotonic seconds */
	unsigned long commits;
	int failed;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
committer(void *arg)
{
	static char *rcpts[] = {"to@example.net", NULL};
	struct run *r = arg;

	while (now() < r->until) {
		struct spool_env env = {0};
		struct spool_rx *rx;

		env.mail_from = "from@example.com";
		env.rcpts = rcpts;
		env.nrcpts = 1;
		env.listener = "bench";
		env.client = "127.0.0.1";
		env.helo = "bench";
		if (spool_rx_begin(r->sp, &rx) != SG_OK ||
		    spool_rx_write(rx, r->data, MSG_SIZE) != SG_OK ||
		    spool_rx_commit(rx, &env) != SG_OK) {
			r->failed = 1;
			return NULL;
		}
		r->commits++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct run *runs;
	pthread_t *th;
	struct spool *sp;
	char err[256] = "", *data;
	unsigned long total = 0;
	double t0, secs;
	int n, failed = 0;

	if (argc != 4 || (n = atoi(argv[2])) < 1 || n > 1024 ||
	    atof(argv[3]) <= 0) {
		fprintf(stderr, "usage: spool_commit DIR THREADS SECONDS\n");
		return 2;
	}
	if (spool_open(argv[1], &sp, err, sizeof(err)) != SG_OK) {
		fprintf(stderr, "spool_commit: %s\n", err);
		return 1;
	}
	runs = calloc((size_t)n, sizeof(*runs));
	th = calloc((size_t)n, sizeof(*th));
	data = malloc(MSG_SIZE);
	if (runs == NULL || th == NULL || data == NULL)
		return 1;
	for (size_t i = 0; i < MSG_SIZE; i++)
		data[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : 'x';
	t0 = now();
	for (int i = 0; i < n; i++) {
		runs[i].sp = sp;
		runs[i].data = data;
		runs[i].until = t0 + atof(argv[3]);
		if (pthread_create(&th[i], NULL, committer, &runs[i]) != 0)
			return 1;
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		total += runs[i].commits;
		failed |= runs[i].failed;
	}
	secs = now() - t0;
	spool_close(sp);
	printf("threads=%d commits=%lu seconds=%.2f commits_per_s=%.0f\n", n,
	       total, secs, (double)total / secs);
	free(runs);
	free(th);
	free(data);
	return failed ? 1 : 0;
}
