/*
 * queue.h - the queue runner: worker threads that take committed messages
 * from the spool, run them through the processing pipeline, hand them to
 * the next hop, retry with backoff, and bounce or drop what cannot be
 * delivered.
 *
 * What it trusts: the spool (its envelopes) and the callbacks it is given.
 * What it can reach: the spool, and whatever the callbacks reach.  A
 * message leaves the spool only after the next hop accepted it (deliver
 * returned SG_OK) or after it was bounced; every change of its queue state
 * (attempts, next try, last error, the recipients left) is written to the
 * spool before the message is scheduled again, so a stop or crash loses
 * nothing.  A message with several recipients may be delivered in part:
 * deliver drops the recipients that are done, and only the others are
 * tried again.
 *
 * Temporary and permanent come from the status table: a status whose SMTP
 * code is 4xx (SG_ERR_TEMP, SG_ERR_IO, SG_ERR_NOMEM, ...) is retried, any
 * other failure is permanent.
 *
 * Log lines (log.h: stderr or syslog), one per event:
 *   smimegate[PID]: queue: qid=ID event=delivered|deferred|bounced|expired
 *     reply="..." attempts=N
 *   smimegate[PID]: queue: qid=ID event=rcpt-failed reply="..."
 *     attempts=N rcpt=<ADDRESS>
 * with " dsn=none" added when the sender is the null sender (no bounce is
 * sent for those; the message is dropped).
 */
#ifndef SG_QUEUE_H
#define SG_QUEUE_H

#include <stddef.h>

#include "daemon/metrics.h"
#include "daemon/spool.h"
#include "smimegate.h"

/* Enough for a reply of the next hop (the reply buffer given to
 * deliver). */
#define QUEUE_REPLY_MAX 512

struct queue_params {
	unsigned first_retry; /* seconds before the first retry: 60 */
	unsigned max_retry;   /* the delay doubles up to this: 3600 */
	unsigned lifetime;    /* seconds from reception to expiry: 5 days */
};

/*
 * The pipeline and the next hop.  Each is called from worker threads,
 * several at once (on different messages), so they must be thread-safe;
 * ARG is the one given to queue_new.
 */
/* How deliver reports a recipient that failed for good (given to deliver
 * by the runner; valid during that call only). */
struct queue_report;

#define QUEUE_QUARANTINED (-2) /* process: see struct queue_ops */
#define QUEUE_DROPPED     (-3)
#define QUEUE_SPLIT       (-4) /* replaced by copies, already spooled */

struct queue_ops {
	/*
	 * Turns the spooled message (DATA_FD, read-only, positioned at 0;
	 * the runner closes it) into the message to deliver: SG_OK and
	 * *OUT_FD, an fd of the result (typically an unlinked temporary
	 * file, positioned anywhere: deliver is expected to read it from the
	 * start; the runner closes it).  A temporary status (4xx) defers the
	 * message, any other bounces it; REASON (REASONLEN bytes, starts
	 * empty) may say why, for the log and the bounce (left empty, the
	 * status table's text is used).  Changes it makes to ENV (such as
	 * the recipients left) are saved with the next spool update.  NULL:
	 * the spooled data is delivered as is.  SG_OK with *OUT_FD set to
	 * QUEUE_QUARANTINED or QUEUE_DROPPED: the policy took the message
	 * (it is in a quarantine, or dropped on purpose); it is removed
	 * from the spool without delivery or notification, and REASON is
	 * logged with event=quarantined or event=dropped.  QUEUE_SPLIT: the
	 * message was replaced by copies for groups of its recipients, each
	 * committed to the spool already (event=split).
	 */
	enum sg_status (*process)(void *arg, struct spool_env *env, int data_fd,
	                          int *out_fd, char *reason, size_t reasonlen);
	/*
	 * Hands OUT_FD (borrowed) to the next hop(s) for ENV's recipients.
	 * Per recipient: one the next hop took, or one that failed for good
	 * and was reported with queue_report_rcpt_failed(REP, ...) (which
	 * returned SG_OK), is removed from ENV with queue_env_drop_rcpt;
	 * the others stay.  Then it returns: SG_OK when none is left (the
	 * message is removed from the spool); a temporary status when some
	 * are left (ENV, with the recipients left, is saved and only they
	 * are tried again later); any other status when every recipient
	 * failed for good and none was reported (ENV untouched: the message
	 * is bounced as a whole).  REPLY (REPLYLEN bytes, starts empty) gets
	 * the next hop's reply or the reason, for the log and the bounce;
	 * left empty, the status table's text is used.  Required.
	 */
	enum sg_status (*deliver)(void *arg, struct spool_env *env, int out_fd,
	                          struct queue_report *rep, char *reply,
	                          size_t replylen);
	/*
	 * Called for a message that failed permanently (ST, REASON) or
	 * expired (ST is then the last temporary status, REASON starts with
	 * "expired: "), never for the null sender: it notifies the sender.
	 * SG_OK: done (notified, or nothing to notify); the message is
	 * removed from the spool.  Any other status: the notification could
	 * not be queued; the message stays, is retried with backoff
	 * (logged event=bounce-deferred) and, failing again, bounced again,
	 * so no notification is lost.  NULL: nothing but the log line.
	 */
	enum sg_status (*bounce)(void *arg, const struct spool_env *env,
	                         enum sg_status st, const char *reason);
	/*
	 * Called (through queue_report_rcpt_failed, from deliver) for one
	 * recipient RCPT of ENV that failed for good while others of the
	 * message were delivered or are still to be tried: ST and REPLY
	 * (the next hop's reply or the reason) say why; never for the null
	 * sender.  It notifies the sender about RCPT.  SG_OK: done, RCPT
	 * leaves the envelope.  Any other status: the notification could not
	 * be queued; RCPT stays and is tried (and reported) again later, so
	 * no notification is lost.  NULL: nothing but the log line.
	 */
	enum sg_status (*rcpt_failed)(void *arg, const struct spool_env *env,
	                              const char *rcpt, enum sg_status st,
	                              const char *reply);
};

/*
 * Reports recipient RCPT of ENV as failed for good (ST, REPLY): logs
 *   smimegate[PID]: queue: qid=ID event=rcpt-failed reply="..."
 *     attempts=N rcpt=<RCPT>
 * (with " dsn=none" for the null sender, who is not notified) and calls
 * ops->rcpt_failed.  SG_OK: the caller removes RCPT from ENV
 * (queue_env_drop_rcpt).  Any other status (the notification could not
 * be queued): the caller keeps RCPT, to be tried again.  REP NULL: SG_OK,
 * nothing logged.
 */
enum sg_status queue_report_rcpt_failed(struct queue_report *rep,
                                        const struct spool_env *env,
                                        const char *rcpt, enum sg_status st,
                                        const char *reply);

/* Removes recipient I (< ENV->nrcpts) from ENV, with its NOTIFY, keeping
 * the order of the others. */
void queue_env_drop_rcpt(struct spool_env *env, size_t i);

struct queue;

/*
 * A runner of WORKERS threads (0: one per online CPU) over SP (borrowed;
 * it must outlive the queue).  OPS is copied; ARG is passed to each
 * callback.  Nothing runs until queue_start.  NULL when out of memory or
 * when OPS->deliver is NULL.
 */
struct queue *queue_new(struct spool *sp, unsigned workers,
                        const struct queue_ops *ops, void *arg);
/* Sets the retry and expiry times (before queue_start).  A zero field
 * keeps the default; max_retry is raised to first_retry when below it. */
void queue_set_params(struct queue *q, const struct queue_params *p);
/* Counts into M (borrowed; it must outlive the queue) from now on:
 * delivered (and the latency histogram), deferred, bounced, rcpt_failed
 * (metrics.h).  Before queue_start only; ignored after. */
void queue_set_metrics(struct queue *q, struct metrics *m);
/*
 * Schedules every committed message of the spool (recovery: each at its
 * saved next_try) and starts the workers.  Once per queue.  SG_OK;
 * SG_ERR_USAGE (already started); SG_ERR_NOMEM (out of memory or
 * threads; nothing runs); the status of spool_scan.
 */
enum sg_status queue_start(struct queue *q);
/*
 * Schedules a committed message (ENV's id and next_try; the rest is read
 * from the spool when it runs).  For the SMTP server's committed callback
 * on the event loop's thread: it only takes the queue's mutex, which no
 * thread holds across I/O or callbacks.  A message already queued is not
 * queued twice.  After queue_stop it does nothing (the message stays in
 * the spool for the next start).  SG_OK or SG_ERR_NOMEM (the message
 * stays in the spool and is picked up at the next start).
 */
enum sg_status queue_add(struct queue *q, const struct spool_env *env);
/*
 * The administrator's requests (control.h).  queue_flush makes message ID
 * (NULL: every waiting one) due now, or, when it is being delivered,
 * at once after this attempt if it is deferred; *N says how many were
 * waiting for a later time.  queue_delete takes ID out of the queue and
 * removes its files, without a notification
 *   smimegate[PID]: queue: qid=ID event=deleted reason=administrator
 * at once when it waits, or when the attempt running now ends (*LATER
 * = 1) unless that attempt delivered or bounced it.  SG_ERR_NOT_FOUND
 * when ID is not queued.
 */
enum sg_status queue_flush(struct queue *q, const char *id, size_t *n);
/* queue_bounce gives ID up: at its next run, at once (or after the
 * attempt running now, if that defers it), it is returned to its sender
 * with a delivery status notification (SG_ERR_POLICY, "returned to the
 * sender by the administrator") instead of being tried, and removed. */
enum sg_status queue_bounce(struct queue *q, const char *id);
enum sg_status queue_delete(struct queue *q, const char *id, int *later);
/* Stops: deliveries in progress finish (and their outcome is saved), the
 * workers are joined; what was not delivered stays in the spool. */
void queue_stop(struct queue *q);
/* Messages scheduled or being delivered. */
size_t queue_size(struct queue *q);
/* When the oldest of them was received; 0 when there is none.  It walks
 * every item (a metrics scrape, not a hot path). */
time_t queue_oldest(struct queue *q);
/* Stops (queue_stop) and frees.  NULL does nothing. */
void queue_free(struct queue *q);

#endif /* SG_QUEUE_H */
