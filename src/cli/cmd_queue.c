/*
 * cmd_queue.c - `smimegate queue [-c FILE | --spool DIR]
 * list|show|flush|delete|bounce`: the administrator's view of the
 * delivery queue (docs/daemon.md, "The queue").
 *
 * list and show read the spool while the daemon runs (no lock, nothing
 * written).  flush, delete and bounce change what the daemon owns, so while it
 * runs (it holds the spool's lock) they are requests to it (control.h),
 * which it takes within its 2-second tick; the command waits for that
 * (--wait) and says what became of each.  With no daemon running they
 * act on the spool themselves: delete removes the files, flush makes
 * the messages due, so that the next start delivers them at once;
 * bounce needs the daemon (it writes the notification), so its request
 * waits for the next start.
 *
 * As root with -c FILE, the command acts as the configuration's `user`
 * (privs.h), so that what it writes belongs to the daemon's user.
 *
 * Exit codes: 0 done; 1 an ID not in the queue, or a request the daemon
 * did not take in time (it stays for it); 2 usage, or a spool that cannot
 * be read.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/control.h"
#include "daemon/log.h"
#include "daemon/spool.h"

#define WAIT_DEFAULT 10   /* seconds for the daemon to take a request */
#define WAIT_MAX     3600 /* the most --wait may ask */

static const char usage_text[] =
    "usage: smimegate queue [-c FILE | --spool DIR] COMMAND\n"
    "  list [--json]              the queued messages, oldest first\n"
    "  show ID [--json] [--raw]   an envelope and the message's headers\n"
    "                             (--raw: the whole message as queued)\n"
    "  flush [ID ...]             deliver now (without an ID: every "
    "waiting\n"
    "                             message)\n"
    "  delete ID [ID ...]         take messages out of the queue, "
    "without a\n"
    "                             delivery status notification\n"
    "  bounce ID [ID ...]         return messages to their senders, with "
    "a\n"
    "                             delivery status notification\n"
    "  --wait SECONDS             flush, delete, bounce: how long to wait "
    "for the\n"
    "                             running daemon to act (default 10)\n"
    "-c FILE takes the spool directory from the configuration (as root: "
    "and acts\n"
    "as its user); --spool DIR names it.  Exit 0 done, 1 an ID not in the "
    "queue\n"
    "or a request not taken in time, 2 usage or an unreadable spool.\n";

struct qc {
	struct cli_spool_args a;
	int wait;  /* --wait */
	char *dir; /* the spool directory */
};

static int fail(const struct qc *c, enum sg_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(const struct qc *c, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smimegate: %s: %s: ", c->a.cmd, sg_status_name(st));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return sg_status_exit_code(st);
}

/* Keeps in *RC the worst exit code. */
static void
worst(int *rc, int code)
{
	if (code > *rc)
		*rc = code;
}

/* Files one request (ID NULL: flush all); 1, or 0 with the reason
 * printed and *RC raised. */
static int
ask(struct qc *c, enum control_verb verb, const char *id, int *rc)
{
	char err[1024] = "";
	enum sg_status st = control_request(c->dir, verb, id, err, sizeof(err));

	if (st == SG_OK)
		return 1;
	worst(rc, fail(c, st, "%s", err));
	return 0;
}

/* Whether ID has an envelope in SP's queue. */
static int
queued(struct spool *sp, const char *id)
{
	struct spool_env env;
	enum sg_status st;

	memset(&env, 0, sizeof(env));
	st = spool_load(sp, id, &env);
	spool_env_clear(&env);
	return st != SG_ERR_NOT_FOUND;
}

/* The size of ID's data, or -1. */
static long long
msg_size(struct spool *sp, const char *id)
{
	struct stat sb;
	int fd = spool_data_fd(sp, id);
	long long n = -1;

	if (fd >= 0 && fstat(fd, &sb) == 0)
		n = (long long)sb.st_size;
	if (fd >= 0)
		close(fd);
	return n;
}

/* ---- list, show ---- */

static void
print_json(FILE *f, const struct spool_env *env, long long size,
           const char *headers, size_t hlen)
{
	char n[32];

	fputs("{\"id\": ", f);
	cli_json_str(f, env->id);
	if (size >= 0)
		fprintf(f, ", \"size\": %lld", size);
	else
		fputs(", \"size\": null", f);
	fprintf(f, ", \"received_epoch\": %lld, \"attempts\": %u",
	        (long long)env->received, env->attempts);
	fputs(", \"next_try\": ", f);
	cli_json_str(f, cli_iso_time(env->next_try, n, sizeof(n)));
	fprintf(f, ", \"next_try_epoch\": %lld, \"last_error\": ",
	        (long long)env->next_try);
	cli_json_str(f, env->last_error);
	fputs(", \"flow\": ", f);
	cli_json_str(f, env->flow);
	fprintf(f, ", \"released\": %s", env->released ? "true" : "false");
	cli_json_env(f, env, 1);
	if (headers != NULL) {
		fputs(", \"headers\": ", f);
		cli_json_bytes(f, headers, hlen);
	}
	fputc('}', f);
}

static void
print_table(FILE *f, struct spool *sp, const struct spool_env *v, size_t n)
{
	long long total = 0;

	if (n == 0) {
		fprintf(f, "(empty)\n");
		return;
	}
	fprintf(f, "%-24s  %-20s  %10s  %4s  %-20s  %-32s  %5s  %s\n", "ID",
	        "RECEIVED", "SIZE", "TRY", "NEXT TRY", "FROM", "RCPTS",
	        "LAST ERROR");
	for (size_t k = 0; k < n; k++) {
		const struct spool_env *e = &v[k];
		char r[32], t[32];
		long long size = msg_size(sp, e->id);

		total += size > 0 ? size : 0;

		cli_iso_time(e->received, r, sizeof(r));
		cli_iso_time(e->next_try, t, sizeof(t));
		fprintf(f, "%-24s  %-20s  ", e->id, r);
		if (size >= 0)
			fprintf(f, "%10lld  ", size);
		else
			fprintf(f, "%10s  ", "-");
		fprintf(f, "%4u  %-20s  ", e->attempts,
		        e->attempts > 0 || e->next_try > time(NULL) ? t
		                                                    : "now");
		cli_cell(f, e->mail_from[0] ? e->mail_from : "<>", 32);
		fprintf(f, "%5zu  ", e->nrcpts);
		cli_put_str(f, e->last_error, 100);
		fputc('\n', f);
	}
	fprintf(f, "-- %zu message%s, %lld bytes\n", n, n == 1 ? "" : "s",
	        total);
}

static int
open_view(struct qc *c, struct spool **sp)
{
	char err[1024] = "";
	enum sg_status st = spool_open_view(c->dir, sp, err, sizeof(err));

	if (st == SG_ERR_NOT_FOUND)
		return fail(c, SG_ERR_IO,
		            "%s: no queue there (has the gateway run with this "
		            "spool?)",
		            err);
	if (st != SG_OK)
		return fail(c, st, "%s", err);
	return -1;
}

static int
do_list(struct qc *c)
{
	struct spool *sp = NULL;
	struct spool_env *v = NULL;
	size_t n = 0;
	enum sg_status st;
	int rc;

	if ((rc = open_view(c, &sp)) != -1)
		return rc;
	if ((st = spool_scan(sp, &v, &n)) != SG_OK) {
		spool_close(sp);
		return fail(c, st, "%s/queue: %s", c->dir, strerror(errno));
	}
	if (c->a.json) {
		fputc('[', stdout);
		for (size_t k = 0; k < n; k++) {
			fputs(k ? ",\n " : "", stdout);
			print_json(stdout, &v[k], msg_size(sp, v[k].id), NULL,
			           0);
		}
		fputs("]\n", stdout);
	} else {
		print_table(stdout, sp, v, n);
	}
	for (size_t k = 0; k < n; k++)
		spool_env_clear(&v[k]);
	free(v);
	spool_close(sp);
	return 0;
}

static void
print_show(FILE *f, const struct spool_env *env, long long size,
           const char *headers, size_t hlen)
{
	char t[32];

	fprintf(f, "id:          %s\n", env->id);
	if (size >= 0)
		fprintf(f, "size:        %lld bytes\n", size);
	fprintf(f, "attempts:    %u\n", env->attempts);
	cli_iso_time(env->next_try, t, sizeof(t));
	fprintf(f, "next try:    %s\n", t);
	fputs("last error:  ", f);
	cli_put_str(f, env->last_error, 0);
	fputc('\n', f);
	if (env->flow != NULL) {
		fputs("flow:        ", f);
		cli_put_str(f, env->flow, 0);
		fputc('\n', f);
	}
	if (env->released)
		fputs("released:    from a quarantine\n", f);
	cli_print_env_headers(f, env, headers, hlen);
}

static int
do_show(struct qc *c)
{
	struct spool *sp = NULL;
	struct spool_env env;
	enum sg_status st;
	char *headers = NULL;
	size_t hlen = 0;
	int fd = -1, rc;

	if ((rc = open_view(c, &sp)) != -1)
		return rc;
	memset(&env, 0, sizeof(env));
	if ((st = spool_load(sp, c->a.ids[0], &env)) != SG_OK) {
		rc = st == SG_ERR_NOT_FOUND
		         ? fail(c, st, "%s is not in the queue", c->a.ids[0])
		         : fail(c, st, "%s: a damaged envelope", c->a.ids[0]);
		goto out;
	}
	if ((fd = spool_data_fd(sp, env.id)) < 0) {
		rc = fail(c, SG_ERR_IO, "%s: no message data: %s", env.id,
		          strerror(errno));
	} else if (c->a.raw) {
		fflush(stdout);
		if (cli_copy_out(fd) < 0)
			rc = fail(c, SG_ERR_IO, "writing: %s", strerror(errno));
		else
			rc = 0;
	} else if ((headers = cli_read_headers(fd, &hlen)) == NULL) {
		rc = fail(c, SG_ERR_IO, "reading %s: %s", env.id,
		          strerror(errno));
	} else {
		struct stat sb;
		long long size =
		    fstat(fd, &sb) == 0 ? (long long)sb.st_size : -1;
		if (c->a.json) {
			print_json(stdout, &env, size, headers, hlen);
			fputc('\n', stdout);
		} else {
			print_show(stdout, &env, size, headers, hlen);
		}
		rc = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	free(headers);
	spool_env_clear(&env);
	spool_close(sp);
	return rc;
}

/* bounce with no daemon running: the requests wait for its start. */
static int
wait_for_start(struct qc *c, struct spool *sp)
{
	int rc = 0;

	for (int i = 0; i < c->a.nids; i++)
		if (!queued(sp, c->a.ids[i]))
			worst(&rc, fail(c, SG_ERR_NOT_FOUND,
			                "%s is not in the queue", c->a.ids[i]));
		else if (ask(c, CONTROL_BOUNCE, c->a.ids[i], &rc))
			printf("%s: no daemon runs on %s: it returns the "
			       "message to its sender when it starts\n",
			       c->a.ids[i], c->dir);
	return rc;
}

/* ---- flush, delete, bounce: no daemon running ---- */

/* Makes ENV due now; SG_OK. */
static enum sg_status
make_due(struct spool *sp, struct spool_env *env, time_t now, size_t *n)
{
	if (env->next_try <= now)
		return SG_OK;
	env->next_try = now;
	(*n)++;
	return spool_update(sp, env);
}

static int
direct(struct qc *c, struct spool *sp, enum control_verb verb)
{
	int del = verb == CONTROL_DELETE;
	time_t now = time(NULL);
	size_t n = 0;
	int rc = 0;

	if (verb == CONTROL_BOUNCE) /* the notice needs the daemon */
		return wait_for_start(c, sp);
	if (!del && c->a.nids == 0) {
		struct spool_env *v = NULL;
		size_t cnt = 0;
		enum sg_status st = spool_scan(sp, &v, &cnt);

		for (size_t k = 0; k < cnt; k++) {
			if (st == SG_OK)
				st = make_due(sp, &v[k], now, &n);
			spool_env_clear(&v[k]);
		}
		free(v);
		if (st != SG_OK)
			return fail(c, st, "%s: cannot update the queue",
			            c->dir);
	}
	for (int i = 0; i < c->a.nids; i++) {
		struct spool_env env;
		enum sg_status st;

		memset(&env, 0, sizeof(env));
		st = del ? spool_remove(sp, c->a.ids[i])
		         : spool_load(sp, c->a.ids[i], &env);
		if (st == SG_OK && !del)
			st = make_due(sp, &env, now, &n);
		spool_env_clear(&env);
		if (st == SG_OK && del) {
			printf("deleted %s\n", c->a.ids[i]);
		} else if (st == SG_ERR_NOT_FOUND) {
			worst(&rc, fail(c, st, "%s is not in the queue",
			                c->a.ids[i]));
		} else if (st != SG_OK) {
			worst(&rc, fail(c, st, "%s: %s", c->a.ids[i],
			                sg_status_text(st)));
		}
	}
	if (!del)
		printf("%zu message%s made due; no daemon runs on %s: they go "
		       "when it starts\n",
		       n, n == 1 ? "" : "s", c->dir);
	return rc;
}

/* ---- flush, delete, bounce: requests to the running daemon ---- */

/* What the command waits for: every request taken (no WANT[i] still
 * pending, nor the flush of all when there are no IDs), or, after a
 * bounce, every WANT[i] gone from the queue. */
struct wait {
	struct qc *c;
	enum control_verb verb;
	struct spool *view;
	const char *want;
	int gone; /* 0: taken, 1: gone */
};

static int
waiting(const struct wait *w)
{
	const struct qc *c = w->c;

	if (!w->gone && c->a.nids == 0)
		return control_pending(c->dir, w->verb, NULL) == 1;
	for (int i = 0; i < c->a.nids; i++)
		if (w->want[i] && (w->gone ? queued(w->view, c->a.ids[i])
		                           : control_pending(c->dir, w->verb,
		                                             c->a.ids[i]) == 1))
			return 1;
	return 0;
}

/* Polls W every 100 ms within --wait: 0 once nothing waits, -1 when
 * the time ran out. */
static int
await(const struct wait *w)
{
	struct timespec nap = {0, 100 * 1000 * 1000};
	time_t until = time(NULL) + w->c->wait;

	while (waiting(w)) {
		if (time(NULL) >= until)
			return -1;
		nanosleep(&nap, NULL);
	}
	return 0;
}

/* What became of ID once the daemon took its request. */
static void
report(struct qc *c, enum control_verb verb, struct spool *view, const char *id)
{
	int still = verb != CONTROL_FLUSH && queued(view, id);

	if (verb == CONTROL_FLUSH)
		printf("flushed %s\n", id);
	else if (verb == CONTROL_BOUNCE && !still)
		printf("returned %s to its sender\n", id);
	else if (verb == CONTROL_BOUNCE)
		printf("%s: being returned to its sender (the log says "
		       "when)\n",
		       id);
	else if (!still)
		printf("deleted %s\n", id);
	else
		printf("%s: being delivered now; it goes when this attempt "
		       "ends, unless it delivers (the log says which)\n",
		       id);
}

static int
requests(struct qc *c, enum control_verb verb)
{
	struct wait w = {c, verb, NULL, NULL, 0};
	int rc, asked = 0;
	char *want;

	if ((rc = open_view(c, &w.view)) != -1)
		return rc;
	rc = 0;
	if ((want = calloc((size_t)c->a.nids + 1, 1)) == NULL) {
		spool_close(w.view);
		return fail(c, SG_ERR_NOMEM, "out of memory");
	}
	w.want = want;
	if (c->a.nids == 0) /* flush of every waiting message */
		asked = ask(c, verb, NULL, &rc);
	for (int i = 0; i < c->a.nids; i++) {
		/* only IDs in the queue are asked for */
		if (!queued(w.view, c->a.ids[i]))
			worst(&rc, fail(c, SG_ERR_NOT_FOUND,
			                "%s is not in the queue", c->a.ids[i]));
		else if ((want[i] = (char)ask(c, verb, c->a.ids[i], &rc)))
			asked++;
	}
	if (asked > 0 && await(&w) == -1) {
		/* not an error of the command: exit 1, as documented */
		(void)fail(c, SG_ERR_TEMP,
		           "the daemon did not take the request within %d s; "
		           "it waits for it in %s/control",
		           c->wait, c->dir);
		worst(&rc, 1);
		asked = 0;
	}
	if (asked > 0 && verb == CONTROL_BOUNCE) {
		w.gone = 1; /* a worker returns it within moments */
		(void)await(&w);
	}
	for (int i = 0; asked > 0 && i < c->a.nids; i++)
		if (want[i])
			report(c, verb, w.view, c->a.ids[i]);
	if (asked > 0 && c->a.nids == 0)
		printf("flushed: every waiting message is due now\n");
	free(want);
	spool_close(w.view);
	return rc;
}

static int
do_change(struct qc *c, enum control_verb verb)
{
	struct spool *sp = NULL;
	char err[1024] = "";
	enum sg_status st;
	int rc;

	/* a spool no gateway has made is not made here */
	if ((rc = open_view(c, &sp)) != -1)
		return rc;
	spool_close(sp);
	sp = NULL;
	st = spool_open(c->dir, &sp, err, sizeof(err));
	if (st == SG_ERR_TEMP) /* the daemon holds the lock */
		return requests(c, verb);
	if (st != SG_OK)
		return fail(c, st, "%s", err);
	rc = direct(c, sp, verb);
	spool_close(sp);
	return rc;
}

/* ---- the command ---- */

/* The arguments: -1 to go on, else an exit code. */
static int
parse(struct qc *c, int argc, char **argv)
{
	const char *sub;
	char *end;
	long w = WAIT_DEFAULT;
	int rc;

	if ((rc = cli_spool_args(&c->a, "queue", "wait", usage_text,
	                         "list, show, flush, delete or bounce", argc,
	                         argv)) != -1)
		return rc;
	sub = c->a.sub;
	if (strcmp(sub, "list") && strcmp(sub, "show") &&
	    strcmp(sub, "flush") && strcmp(sub, "delete") &&
	    strcmp(sub, "bounce"))
		return cli_usage("queue",
		                 "unknown command \"%s\" (list, show, flush, "
		                 "delete, bounce)",
		                 sub);
	if (c->a.value != NULL) {
		errno = 0;
		w = strtol(c->a.value, &end, 10);
		if (errno || *end || end == c->a.value || w < 0 || w > WAIT_MAX)
			return cli_usage(c->a.cmd,
			                 "--wait wants seconds, 0 to %d",
			                 WAIT_MAX);
		if (!strcmp(sub, "list") || !strcmp(sub, "show"))
			return cli_usage(c->a.cmd,
			                 "--wait is for flush, delete "
			                 "and bounce");
	}
	c->wait = (int)w;
	return cli_spool_check(&c->a, strcmp(sub, "flush") == 0);
}

int
cmd_queue(int argc, char **argv)
{
	struct qc c;
	int rc;

	memset(&c, 0, sizeof(c));
	/* the spool's own lines (a recovery) are the daemon's business */
	log_set_min_level(LOG_LEVEL_WARN);
	if ((rc = parse(&c, argc, argv)) != -1)
		return rc;
	if ((rc = cli_spool_dir(c.a.cmd, c.a.config, c.a.spool, &c.dir)) !=
	    -1) {
		free(c.dir);
		return rc;
	}
	if (strcmp(c.a.sub, "list") == 0)
		rc = do_list(&c);
	else if (strcmp(c.a.sub, "show") == 0)
		rc = do_show(&c);
	else
		rc = do_change(
		    &c, strcmp(c.a.sub, "delete") == 0   ? CONTROL_DELETE
		        : strcmp(c.a.sub, "bounce") == 0 ? CONTROL_BOUNCE
		                                         : CONTROL_FLUSH);
	free(c.dir);
	return cli_flushed(c.a.cmd, rc);
}
