/*
 * queue.c - the queue runner (queue.h is the contract).
 *
 * What it trusts: the spool and its callbacks.  What it can reach: the
 * spool; the network and the maildir only through the callbacks.
 *
 * In memory there is one small item per queued message (its ID and next
 * try), in two structures under one mutex: a tree by ID (tsearch), which
 * holds every item, scheduled or running, so that a message is never
 * queued twice nor run by two workers; and a binary heap by (next try,
 * ID) of the items waiting.  A worker takes the heap's top when it is due,
 * runs it without the mutex, and then either drops the item (delivered,
 * bounced, expired, gone) or pushes it back with its new next try (which
 * the spool already has).  The heap always has room for every item
 * (reserved in queue_add), so pushing back cannot fail.
 *
 * Waiting workers sleep on one condition variable (CLOCK_MONOTONIC) until
 * the top is due, at most QUEUE_NAP seconds (the wall clock may jump);
 * each push signals one of them.
 */
#include "daemon/queue.h"

#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/spool.h"
#include "smimegate.h"

#define QUEUE_NAP         60 /* longest sleep, seconds */
#define QUEUE_MAX_WORKERS 256
#define QUEUE_DEFAULTS                                                         \
	{                                                                      \
		60, 3600, 5 * 86400                                            \
	}

struct queue_item {
	char id[SPOOL_ID_LEN + 1];
	time_t next_try;
	unsigned running : 1; /* a worker has it (not in the heap) */
	unsigned flush : 1;   /* due at once when its attempt ends */
	unsigned doomed : 1;  /* deleted when its attempt ends */
	unsigned giveup : 1;  /* returned to its sender at its next run */
};

struct queue {
	struct spool *sp;
	struct queue_ops ops;
	void *arg;
	struct queue_params params;
	struct metrics *metrics; /* borrowed, may be NULL */
	unsigned nworkers;
	pthread_t *threads;
	unsigned nthreads; /* started */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock: */
	void *ids;                /* tsearch tree of every item */
	struct queue_item **heap; /* the waiting ones */
	size_t nheap, capheap;
	size_t nitems;
	int started, stopping;
};

/* What became of a message after one run. */
enum queue_outcome { QUEUE_DONE, QUEUE_AGAIN };

/* ---- logging ---- */

static void
queue_log(const struct spool_env *env, const char *event, const char *reply,
          const char *extra)
{
	char safe[QUEUE_REPLY_MAX];

	log_quote_value(safe, sizeof(safe), reply ? reply : "");
	log_event("queue", "qid=%s event=%s reply=\"%s\" attempts=%u%s",
	          env->id, event, safe, env->attempts, extra ? extra : "");
}

/* An operation on the spool failed for the message ID. */
static void
queue_log_error(const char *id, const char *op, enum sg_status st)
{
	log_err("queue", "qid=%s event=error op=%s status=%s", id, op,
	        sg_status_name(st));
}

/* ---- the heap ---- */

static int
item_before(const struct queue_item *a, const struct queue_item *b)
{
	if (a->next_try != b->next_try)
		return a->next_try < b->next_try;
	return strcmp(a->id, b->id) < 0;
}

static void
heap_swap(struct queue *q, size_t i, size_t j)
{
	struct queue_item *t = q->heap[i];

	q->heap[i] = q->heap[j];
	q->heap[j] = t;
}

static void
sift_up(struct queue *q, size_t i)
{
	while (i > 0 && item_before(q->heap[i], q->heap[(i - 1) / 2])) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
sift_down(struct queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->nheap && item_before(q->heap[l], q->heap[m]))
			m = l;
		if (r < q->nheap && item_before(q->heap[r], q->heap[m]))
			m = r;
		if (m == i)
			break;
		heap_swap(q, i, m);
		i = m;
	}
}

/* Pushes IT; the caller made sure there is room. */
static void
heap_push(struct queue *q, struct queue_item *it)
{
	q->heap[q->nheap++] = it;
	sift_up(q, q->nheap - 1);
}

/* Takes out the item at I. */
static struct queue_item *
heap_take(struct queue *q, size_t i)
{
	struct queue_item *it = q->heap[i];

	q->heap[i] = q->heap[--q->nheap];
	if (i < q->nheap) {
		sift_up(q, i);
		sift_down(q, i);
	}
	return it;
}

static struct queue_item *
heap_pop(struct queue *q)
{
	return heap_take(q, 0);
}

/* The index of IT in the heap, or nheap. */
static size_t
heap_find(const struct queue *q, const struct queue_item *it)
{
	size_t i = 0;

	while (i < q->nheap && q->heap[i] != it)
		i++;
	return i;
}

/* ---- items ---- */

static int
item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct queue_item *)a)->id,
	              ((const struct queue_item *)b)->id);
}

/* Queues ID at NEXT_TRY unless it is queued already.  Under the lock. */
static enum sg_status
item_add(struct queue *q, const char *id, time_t next_try)
{
	struct queue_item *it, **node;

	if (q->nitems + 1 > q->capheap) {
		size_t cap = q->capheap ? q->capheap * 2 : 64;
		struct queue_item **h = realloc(q->heap, cap * sizeof(*h));
		if (h == NULL)
			return SG_ERR_NOMEM;
		q->heap = h;
		q->capheap = cap;
	}
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return SG_ERR_NOMEM;
	snprintf(it->id, sizeof(it->id), "%s", id);
	it->next_try = next_try;
	if ((node = tsearch(it, &q->ids, item_cmp)) == NULL) {
		free(it);
		return SG_ERR_NOMEM;
	}
	if (*node != it) { /* queued already */
		free(it);
		return SG_OK;
	}
	q->nitems++;
	heap_push(q, it);
	pthread_cond_signal(&q->cond);
	return SG_OK;
}

/* ---- one delivery attempt ---- */

static int
is_temporary(enum sg_status st)
{
	return sg_status_smtp_code(st) / 100 == 4;
}

/* The delay before try ATTEMPTS + 1: first_retry, doubling, capped. */
static time_t
backoff(const struct queue_params *p, unsigned attempts)
{
	unsigned long d = p->first_retry;

	for (unsigned i = 1; i < attempts && d < p->max_retry; i++)
		d *= 2;
	return (time_t)(d > p->max_retry ? p->max_retry : d);
}

static void
status_reply(enum sg_status st, char *reply, size_t len)
{
	snprintf(reply, len, "%d %s %s", sg_status_smtp_code(st),
	         sg_status_enhanced(st), sg_status_text(st));
}

/* Removes ENV's message after its last event (delivered or bounced). */
static void
finish(struct queue *q, struct spool_env *env, const char *event,
       const char *reply, const char *extra)
{
	enum sg_status st = spool_remove(q->sp, env->id);

	queue_log(env, event, reply, extra);
	if (st != SG_OK && st != SG_ERR_NOT_FOUND)
		/* it stays on disk: a later start tries it again */
		queue_log_error(env->id, "remove", st);
}

/* Notifies the sender and removes the message (QUEUE_DONE); when the
 * notification could not be queued, the message stays and is tried again
 * later (QUEUE_AGAIN, *NEXT). */
static enum queue_outcome
bounce(struct queue *q, struct spool_env *env, enum sg_status st,
       const char *event, const char *reason, time_t *next)
{
	int null_sender = env->mail_from == NULL || env->mail_from[0] == '\0';
	enum sg_status bst = SG_OK;

	if (!null_sender && q->ops.bounce != NULL)
		bst = q->ops.bounce(q->arg, env, st, reason);
	if (bst != SG_OK) {
		env->next_try = time(NULL) + backoff(&q->params, env->attempts);
		if ((bst = spool_update(q->sp, env)) == SG_ERR_NOT_FOUND)
			return QUEUE_DONE; /* removed behind our back */
		if (bst != SG_OK)
			queue_log_error(env->id, "update", bst);
		queue_log(env, "bounce-deferred", reason, NULL);
		*next = env->next_try;
		return QUEUE_AGAIN;
	}
	finish(q, env, event, reason, null_sender ? " dsn=none" : NULL);
	metrics_inc(q->metrics, METRICS_BOUNCED);
	return QUEUE_DONE;
}

/* A temporary failure: saved as such, then scheduled again (or expired).
 * The new next try goes to *NEXT. */
static enum queue_outcome
defer(struct queue *q, struct spool_env *env, enum sg_status st,
      const char *reply, time_t *next)
{
	time_t now = time(NULL);
	enum sg_status ust;
	char *err;

	if (now - env->received >= (time_t)q->params.lifetime) {
		char reason[QUEUE_REPLY_MAX + 16];
		snprintf(reason, sizeof(reason), "expired: %s", reply);
		return bounce(q, env, st, "expired", reason, next);
	}
	if ((err = strdup(reply)) != NULL) {
		free(env->last_error);
		env->last_error = err;
	}
	env->next_try = now + backoff(&q->params, env->attempts);
	/* the last try falls at expiry, not up to max_retry after it */
	if (env->next_try > env->received + (time_t)q->params.lifetime)
		env->next_try = env->received + (time_t)q->params.lifetime;
	if ((ust = spool_update(q->sp, env)) == SG_ERR_NOT_FOUND)
		return QUEUE_DONE; /* removed behind our back */
	if (ust != SG_OK)
		queue_log_error(env->id, "update", ust);
	queue_log(env, "deferred", reply, NULL);
	metrics_inc(q->metrics, METRICS_DEFERRED);
	*next = env->next_try;
	return QUEUE_AGAIN;
}

/* ---- partial delivery ---- */

struct queue_report {
	struct queue *q;
};

enum sg_status
queue_report_rcpt_failed(struct queue_report *rep, const struct spool_env *env,
                         const char *rcpt, enum sg_status st, const char *reply)
{
	int null_sender = env->mail_from == NULL || env->mail_from[0] == '\0';
	char extra[QUEUE_REPLY_MAX + 48], safe[QUEUE_REPLY_MAX];
	enum sg_status rst = SG_OK;

	if (rep == NULL)
		return SG_OK;
	if (!null_sender && rep->q->ops.rcpt_failed != NULL)
		rst = rep->q->ops.rcpt_failed(rep->q->arg, env, rcpt, st,
		                              reply ? reply : "");
	log_addr(safe, sizeof(safe), rcpt);
	snprintf(extra, sizeof(extra), " rcpt=<%s>%s%s", safe,
	         null_sender ? " dsn=none" : "",
	         rst != SG_OK ? " dsn=deferred" : "");
	queue_log(env, "rcpt-failed", reply, extra);
	metrics_inc(rep->q->metrics, METRICS_RCPT_FAILED);
	return rst;
}

void
queue_env_drop_rcpt(struct spool_env *env, size_t i)
{
	if (i >= env->nrcpts)
		return;
	free(env->rcpts[i]);
	memmove(&env->rcpts[i], &env->rcpts[i + 1],
	        (env->nrcpts - i) * sizeof(*env->rcpts)); /* and the NULL */
	if (env->dsn_notify != NULL) {
		free(env->dsn_notify[i]);
		memmove(&env->dsn_notify[i], &env->dsn_notify[i + 1],
		        (env->nrcpts - i - 1) * sizeof(*env->dsn_notify));
	}
	if (env->dsn_orcpt != NULL) {
		free(env->dsn_orcpt[i]);
		memmove(&env->dsn_orcpt[i], &env->dsn_orcpt[i + 1],
		        (env->nrcpts - i - 1) * sizeof(*env->dsn_orcpt));
	}
	env->nrcpts--;
}

/* Runs the pipeline and the delivery on ENV.  *REPLY gets the outcome's
 * text. */
static enum sg_status
attempt(struct queue *q, struct spool_env *env, char *reply, size_t len,
        const char **event)
{
	struct queue_report rep = {q};
	enum sg_status st;
	int data_fd, out_fd = -1;

	if ((data_fd = spool_data_fd(q->sp, env->id)) < 0) {
		int gone = errno == ENOENT;
		snprintf(reply, len, "cannot open the message data: %s",
		         strerror(errno));
		/* an envelope without data cannot ever be delivered */
		return gone ? SG_ERR_NOT_FOUND : SG_ERR_TEMP;
	}
	if (q->ops.process != NULL) {
		reply[0] = '\0';
		st = q->ops.process(q->arg, env, data_fd, &out_fd, reply, len);
		if (out_fd != data_fd) /* it may hand the data on as is */
			close(data_fd);
		reply[len - 1] = '\0';
		if (st == SG_OK &&
		    (out_fd == QUEUE_QUARANTINED || out_fd == QUEUE_DROPPED ||
		     out_fd == QUEUE_SPLIT)) {
			/* the policy took it: nothing to deliver */
			*event = out_fd == QUEUE_QUARANTINED ? "quarantined"
			         : out_fd == QUEUE_DROPPED   ? "dropped"
			                                     : "split";
			return SG_OK;
		}
		if (st == SG_OK && out_fd < 0) {
			st = SG_ERR_INTERNAL; /* a pipeline bug: retried */
			reply[0] = '\0';
		}
		if (st != SG_OK) {
			if (out_fd >= 0) /* should not be set; no leak */
				close(out_fd);
			if (reply[0] == '\0')
				status_reply(st, reply, len);
			return st;
		}
	} else {
		out_fd = data_fd;
	}
	reply[0] = '\0';
	st = q->ops.deliver(q->arg, env, out_fd, &rep, reply, len);
	close(out_fd);
	reply[len - 1] = '\0';
	if (reply[0] == '\0')
		status_reply(st, reply, len);
	return st;
}

/* Counts a delivery and its latency, from reception (env->received, in
 * whole seconds) to now. */
static void
delivered(struct queue *q, const struct spool_env *env)
{
	struct timespec now;

	if (q->metrics == NULL)
		return;
	metrics_inc(q->metrics, METRICS_DELIVERED);
	clock_gettime(CLOCK_REALTIME, &now);
	metrics_observe_latency(q->metrics,
	                        (double)(now.tv_sec - env->received) +
	                            (double)now.tv_nsec / 1e9);
}

/* One run of the message IT (with GIVEUP, no delivery: it goes back to
 * its sender).  *NEXT gets its next try on QUEUE_AGAIN. */
static enum queue_outcome
run_one(struct queue *q, const struct queue_item *it, int giveup, time_t *next)
{
	char reply[QUEUE_REPLY_MAX];
	struct spool_env env;
	enum queue_outcome out;
	enum sg_status st;
	size_t nrcpts;

	st = spool_load(q->sp, it->id, &env);
	if (st == SG_ERR_NOT_FOUND)
		return QUEUE_DONE; /* removed meanwhile */
	if (st != SG_OK) {
		/* unreadable envelope: nothing can be saved; wait long */
		queue_log_error(it->id, "load", st);
		*next = time(NULL) + (time_t)q->params.max_retry;
		return QUEUE_AGAIN;
	}
	if (giveup) {
		out =
		    bounce(q, &env, SG_ERR_POLICY, "bounced",
		           "returned to the sender by the administrator", next);
		spool_env_clear(&env);
		return out;
	}
	nrcpts = env.nrcpts;
	env.attempts++; /* this one counts (and shows in rcpt-failed lines) */
	const char *event = "delivered";
	st = attempt(q, &env, reply, sizeof(reply), &event);
	if (st != SG_OK && nrcpts > 0 && env.nrcpts == 0)
		st = SG_OK; /* every recipient done, some reported failed */
	out = QUEUE_DONE;
	if (st == SG_OK && strcmp(event, "delivered") != 0) {
		finish(q, &env, event, reply, NULL);
	} else if (st == SG_OK) {
		finish(q, &env, "delivered", reply, NULL);
		delivered(q, &env);
	} else if (is_temporary(st))
		out = defer(q, &env, st, reply, next);
	else
		out = bounce(q, &env, st, "bounced", reply, next);
	spool_env_clear(&env);
	return out;
}

/* Removes ID from the spool for the administrator (queue_delete). */
static void
drop(struct queue *q, const char *id)
{
	enum sg_status st = spool_remove(q->sp, id);

	if (st == SG_OK)
		log_event("queue", "qid=%s event=deleted reason=administrator",
		          id);
	else if (st != SG_ERR_NOT_FOUND)
		queue_log_error(id, "delete", st);
}

/* ---- the workers ---- */

static void
nap(struct queue *q, time_t until)
{
	struct timespec ts;
	time_t wait = until - time(NULL);

	if (wait > QUEUE_NAP)
		wait = QUEUE_NAP;
	if (wait < 1)
		wait = 1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait;
	pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

static void *
queue_worker(void *p)
{
	struct queue *q = p;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		struct queue_item *it;
		time_t next = 0;

		if (q->nheap == 0) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		if (q->heap[0]->next_try > time(NULL)) {
			nap(q, q->heap[0]->next_try);
			continue;
		}
		it = heap_pop(q);
		it->running = 1;
		int giveup = it->giveup;
		pthread_mutex_unlock(&q->lock);
		enum queue_outcome out = run_one(q, it, giveup, &next);
		pthread_mutex_lock(&q->lock);
		it->running = 0;
		if (out == QUEUE_AGAIN && it->doomed) {
			/* deleted by the administrator during the attempt */
			pthread_mutex_unlock(&q->lock);
			drop(q, it->id);
			pthread_mutex_lock(&q->lock);
			out = QUEUE_DONE;
		}
		if (out == QUEUE_DONE) {
			tdelete(it, &q->ids, item_cmp);
			free(it);
			q->nitems--;
		} else {
			it->next_try = it->flush ? time(NULL) : next;
			it->flush = 0;
			heap_push(q, it);
			pthread_cond_signal(&q->cond);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ---- the API ---- */

struct queue *
queue_new(struct spool *sp, unsigned workers, const struct queue_ops *ops,
          void *arg)
{
	static const struct queue_params defaults = QUEUE_DEFAULTS;
	pthread_condattr_t ca;
	struct queue *q;

	if (sp == NULL || ops == NULL || ops->deliver == NULL)
		return NULL;
	if (workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		workers = n > 0 ? (unsigned)n : 1;
	}
	if (workers > QUEUE_MAX_WORKERS)
		workers = QUEUE_MAX_WORKERS;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->threads = calloc(workers, sizeof(*q->threads))) == NULL) {
		free(q);
		return NULL;
	}
	q->sp = sp;
	q->ops = *ops;
	q->arg = arg;
	q->params = defaults;
	q->nworkers = workers;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	return q;
}

void
queue_set_params(struct queue *q, const struct queue_params *p)
{
	pthread_mutex_lock(&q->lock);
	if (!q->started) {
		if (p->first_retry)
			q->params.first_retry = p->first_retry;
		if (p->max_retry)
			q->params.max_retry = p->max_retry;
		if (p->lifetime)
			q->params.lifetime = p->lifetime;
		if (q->params.max_retry < q->params.first_retry)
			q->params.max_retry = q->params.first_retry;
	}
	pthread_mutex_unlock(&q->lock);
}

void
queue_set_metrics(struct queue *q, struct metrics *m)
{
	pthread_mutex_lock(&q->lock);
	if (!q->started)
		q->metrics = m;
	pthread_mutex_unlock(&q->lock);
}

enum sg_status
queue_start(struct queue *q)
{
	struct spool_env *v = NULL;
	enum sg_status st = SG_OK;
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	if (q->started) {
		pthread_mutex_unlock(&q->lock);
		return SG_ERR_USAGE;
	}
	q->started = 1;
	pthread_mutex_unlock(&q->lock);
	if ((st = spool_scan(q->sp, &v, &n)) != SG_OK)
		goto fail;
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n && st == SG_OK; i++)
		st = item_add(q, v[i].id, v[i].next_try);
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; i < n; i++)
		spool_env_clear(&v[i]);
	free(v);
	if (st != SG_OK)
		goto fail;
	for (unsigned i = 0; i < q->nworkers; i++) {
		if (pthread_create(&q->threads[i], NULL, queue_worker, q) !=
		    0) {
			st = SG_ERR_NOMEM;
			goto fail;
		}
		q->nthreads++;
	}
	return SG_OK;
fail:
	queue_stop(q);
	return st;
}

enum sg_status
queue_add(struct queue *q, const struct spool_env *env)
{
	enum sg_status st = SG_OK;

	pthread_mutex_lock(&q->lock);
	if (!q->stopping)
		st = item_add(q, env->id, env->next_try);
	pthread_mutex_unlock(&q->lock);
	return st;
}

/* The item of ID, or NULL.  Under the lock. */
static struct queue_item *
item_find(struct queue *q, const char *id)
{
	struct queue_item key, **node;

	snprintf(key.id, sizeof(key.id), "%s", id);
	node = tfind(&key, &q->ids, item_cmp);
	return node != NULL ? *node : NULL;
}

/* The item of ID with the lock held, or NULL (and not held). */
static struct queue_item *
lock_item(struct queue *q, const char *id)
{
	struct queue_item *it;

	pthread_mutex_lock(&q->lock);
	if ((it = item_find(q, id)) == NULL)
		pthread_mutex_unlock(&q->lock);
	return it;
}

enum sg_status
queue_flush(struct queue *q, const char *id, size_t *n)
{
	time_t now = time(NULL);
	struct queue_item *it;
	size_t i;

	*n = 0;
	pthread_mutex_lock(&q->lock);
	if (id == NULL) {
		for (i = 0; i < q->nheap; i++)
			if (q->heap[i]->next_try > now) {
				q->heap[i]->next_try = now;
				(*n)++;
			}
		/* equal times: the heap is ordered by ID again */
		for (i = q->nheap / 2; i-- > 0;)
			sift_down(q, i);
	} else if ((it = item_find(q, id)) == NULL) {
		pthread_mutex_unlock(&q->lock);
		return SG_ERR_NOT_FOUND;
	} else if (it->running) {
		it->flush = 1;
		*n = 1;
	} else if (it->next_try > now && (i = heap_find(q, it)) < q->nheap) {
		it->next_try = now;
		sift_up(q, i);
		*n = 1;
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return SG_OK;
}

enum sg_status
queue_bounce(struct queue *q, const char *id)
{
	struct queue_item *it;
	size_t i;

	if ((it = lock_item(q, id)) == NULL)
		return SG_ERR_NOT_FOUND;
	it->giveup = 1;
	if (it->running)
		it->flush = 1;
	else if ((i = heap_find(q, it)) < q->nheap) {
		it->next_try = 0; /* before anything else due */
		sift_up(q, i);
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return SG_OK;
}

enum sg_status
queue_delete(struct queue *q, const char *id, int *later)
{
	struct queue_item *it;
	size_t i;

	*later = 0;
	if ((it = lock_item(q, id)) == NULL)
		return SG_ERR_NOT_FOUND;
	if (it->running) {
		it->doomed = 1;
		*later = 1;
		pthread_mutex_unlock(&q->lock);
		return SG_OK;
	}
	if ((i = heap_find(q, it)) < q->nheap)
		heap_take(q, i);
	tdelete(it, &q->ids, item_cmp);
	free(it);
	q->nitems--;
	pthread_mutex_unlock(&q->lock);
	/* no worker can take it now: its files go */
	drop(q, id);
	return SG_OK;
}

void
queue_stop(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	q->nthreads = 0;
}

/* twalk_r: the first item in ID order is the oldest (IDs sort by
 * reception time). */
static void
oldest_visit(const void *node, VISIT v, void *arg)
{
	const char **min = arg;

	if ((v == postorder || v == leaf) && *min == NULL)
		*min = (*(struct queue_item *const *)node)->id;
}

time_t
queue_oldest(struct queue *q)
{
	const char *min = NULL;
	time_t t;

	pthread_mutex_lock(&q->lock);
	twalk_r(q->ids, oldest_visit, &min);
	t = min != NULL ? spool_id_time(min) : 0;
	pthread_mutex_unlock(&q->lock);
	return t;
}

size_t
queue_size(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->nitems;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	queue_stop(q);
	tdestroy(q->ids, free);
	free(q->heap);
	free(q->threads);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
