/*
 * pipeline_deliver.c - a processed message to its next hops (relay.c) and
 * the local maildir (deliver.c), and what became of each recipient:
 * delivered and permanent failures leave the envelope (a DSN for those
 * who asked), temporary ones stay for the next try (pipeline.h,
 * pipeline_deliver).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/deliver.h"
#include "daemon/pipeline_int.h"
#include "daemon/queue.h"
#include "daemon/relay.h"

/* Delivers OUT_FD into the outbox for the recipients LOCAL (N of them)
 * of ENV, setting their results. */
static void
deliver_local(const char *outbox, const struct spool_env *env, int out_fd,
              const size_t *local, size_t n, struct relay_result *res)
{
	char prefix[4096], name[DELIVER_NAME_MAX], reply[RELAY_REPLY_MAX];
	enum sg_status st;
	size_t len;
	int k;

	len = (size_t)snprintf(prefix, sizeof(prefix), "Return-Path: <%s>\r\n",
	                       env->mail_from);
	for (size_t i = 0; i < n && len < sizeof(prefix); i++) {
		k = snprintf(prefix + len, sizeof(prefix) - len,
		             "Delivered-To: %s\r\n", env->rcpts[local[i]]);
		if (k < 0 || (size_t)k >= sizeof(prefix) - len) {
			prefix[len] = '\0'; /* whole lines only */
			break;
		}
		len += (size_t)k;
	}
	if (len >= sizeof(prefix)) /* a sender too long for the buffer */
		prefix[0] = '\0';
	st = deliver_maildir(outbox, out_fd, prefix, name, sizeof(name));
	if (st == SG_OK)
		snprintf(reply, sizeof(reply), "maildir %s/new/%s", outbox,
		         name);
	else
		snprintf(reply, sizeof(reply), "maildir %s: %s", outbox,
		         strerror(errno));
	for (size_t i = 0; i < n; i++) {
		free(res[local[i]].reply);
		res[local[i]].st = st;
		res[local[i]].reply = strdup(reply);
	}
}

static int
is_temporary(enum sg_status st)
{
	return st != SG_OK && sg_status_smtp_code(st) / 100 != 5;
}

/* Turns the per-recipient results RES into ENV's recipients left, the
 * reports of permanent failures, REPLY and the status for the queue
 * (queue.h, deliver). */
static enum sg_status
settle(struct spool_env *env, struct relay_result *res,
       struct queue_report *rep, char *reply, size_t replylen)
{
	size_t n = env->nrcpts, perm = 0, temp = 0;
	const char *first_ok = NULL, *first_temp = NULL, *first_perm = NULL;
	enum sg_status st_perm = SG_OK;

	for (size_t i = 0; i < n; i++) {
		const char *r = res[i].reply ? res[i].reply : "";
		if (res[i].st == SG_OK) {
			first_ok = first_ok ? first_ok : r;
		} else if (is_temporary(res[i].st)) {
			temp++;
			first_temp = first_temp ? first_temp : r;
		} else {
			perm++;
			if (first_perm == NULL) {
				first_perm = r;
				st_perm = res[i].st;
			}
		}
	}
	if (n > 0 && perm == n) { /* the message bounces as a whole */
		snprintf(reply, replylen, "%s", first_perm);
		return st_perm;
	}
	/* Reports in envelope order, then drops from the end (indexes stay
	 * valid); a failure whose report could not be queued stays. */
	for (size_t i = 0; i < n; i++)
		if (res[i].st != SG_OK && !is_temporary(res[i].st) &&
		    queue_report_rcpt_failed(rep, env, env->rcpts[i], res[i].st,
		                             res[i].reply) != SG_OK) {
			res[i].st = SG_ERR_TEMP;
			temp++;
			if (first_temp == NULL)
				first_temp = "a notification could not be "
				             "queued; tried again later";
		}
	for (size_t i = n; i-- > 0;)
		if (!is_temporary(res[i].st))
			queue_env_drop_rcpt(env, i);
	if (temp > 0) {
		snprintf(reply, replylen, "%s", first_temp);
		return SG_ERR_TEMP;
	}
	snprintf(reply, replylen, "%s", first_ok ? first_ok : "");
	return SG_OK;
}

enum sg_status
pipeline_deliver(struct pipeline *pl, struct spool_env *env, int out_fd,
                 struct queue_report *rep, char *reply, size_t replylen)
{
	struct relay_plan plan = {0};
	struct relay_result *res = NULL;
	size_t n = env->nrcpts;
	char *outbox = NULL;
	enum sg_status st;

	/* The configuration is read under the lock, the network is not:
	 * a reload must not wait for a slow next hop. */
	pthread_rwlock_rdlock(&pl->lock);
	st = relay_plan_make(pl->cfg, env, &plan);
	if (st == SG_OK && plan.nlocal > 0 &&
	    (outbox = strdup(pl->cfg->outbox)) == NULL)
		st = SG_ERR_NOMEM;
	pthread_rwlock_unlock(&pl->lock);
	if (st == SG_OK && (res = calloc(n + 1, sizeof(*res))) == NULL)
		st = SG_ERR_NOMEM;
	if (st != SG_OK) {
		snprintf(reply, replylen, "out of memory");
		st = SG_ERR_TEMP;
		goto out;
	}
	for (size_t h = 0; h < plan.nhops; h++)
		(void)relay_deliver(pl->relay, plan.helo, &plan.hops[h], env,
		                    out_fd, res);
	if (plan.nlocal > 0)
		deliver_local(outbox, env, out_fd, plan.local, plan.nlocal,
		              res);
	st = settle(env, res, rep, reply, replylen);
	relay_results_clear(res, n);
out:
	free(res);
	free(outbox);
	relay_plan_clear(&plan);
	return st;
}
