/*
 * pipeline.h - what happens to a spooled message before delivery: on an
 * outgoing listener, sign (and encrypt) by the listener's sending profile;
 * on an incoming listener, decrypt with our keys, verify against the trust
 * anchors and add Authentication-Results (RFC 7281).  Then delivery: over
 * SMTP to a route or the smarthost (relay.h), else a maildir.
 *
 * What it trusts: the configuration and the store.  What it can reach:
 * the store (one connection per worker thread), temporary files in the
 * spool directory, and the outbox.  The policy layer (issue 5) plugs in
 * between the spool and the engine calls here.
 */
#ifndef SG_PIPELINE_H
#define SG_PIPELINE_H

#include <stddef.h>

#include "daemon/metrics.h"
#include "daemon/queue.h"
#include "daemon/spool.h"
#include "policy/config.h"

struct pipeline;

/* A pipeline for CFG (borrowed until pipeline_set_cfg replaces it). */
struct pipeline *pipeline_new(const struct cfg *cfg);
/* A reloaded configuration, swapped in between messages. */
void pipeline_set_cfg(struct pipeline *pl, const struct cfg *cfg);
/* Counts into M (borrowed; it must outlive the pipeline): signed,
 * encrypted, decrypted and verified by result (metrics.h), once per
 * processing run.  Before the queue starts calling the pipeline. */
void pipeline_set_metrics(struct pipeline *pl, struct metrics *m);
/* Where the quarantine() action puts messages (borrowed; it must outlive
 * the pipeline).  Before use; without one, a quarantine defers the
 * message. */
struct quarantine;
void pipeline_set_quarantine(struct pipeline *pl, struct quarantine *q);

/* Commits a copy of the message of DATA_FD (from offset 0) for the N
 * recipients of ENV at indexes IDX, its envelope's policy set to POLICY
 * ("-" for the default) and plain to PLAIN, and schedules it; *ID gets its
 * queue ID.  SG_OK once it is durable. */
typedef enum sg_status (*pipeline_split_fn)(void *arg,
                                            const struct spool_env *env,
                                            int data_fd, const size_t *idx,
                                            size_t n, const char *policy,
                                            int plain, char *id, size_t idlen);
void pipeline_set_splitter(struct pipeline *pl, pipeline_split_fn fn,
                           void *arg);

/* Spools DATA (LEN octets, a whole message) from the null sender to
 * RCPT, delivered as it is; *ID gets its queue ID (the notify() action). */
typedef enum sg_status (*pipeline_inject_fn)(void *arg, const char *rcpt,
                                             const char *data, size_t len,
                                             char *id, size_t idlen);
void pipeline_set_injector(struct pipeline *pl, pipeline_inject_fn fn,
                           void *arg);

/* Where harvesting raises its alerts (borrowed; alert.h). */
struct alerts;
void pipeline_set_alerts(struct pipeline *pl, struct alerts *a);
void pipeline_free(struct pipeline *pl);

/* Turns spooled DATA_FD of ENV into the message to deliver: *OUT_FD is a
 * temporary file positioned at 0 (the caller closes it).  Returns SG_OK,
 * SG_ERR_TEMP (try again later) or a permanent status (bounce) with
 * REASON.  Our own notifications (dsn_is_notification) are final as
 * spooled: *OUT_FD is then DATA_FD itself.  Thread-safe: one call per
 * worker thread at a time. */
enum sg_status pipeline_process(struct pipeline *pl, struct spool_env *env,
                                int data_fd, int *out_fd, char *reason,
                                size_t reasonlen);

/*
 * Delivers OUT_FD (read from offset 0) for ENV's recipients, as the
 * queue's deliver callback (queue.h has the contract): each recipient
 * goes to the route of its domain, else the smarthost (over SMTP,
 * relay.h: one transaction per next hop), else, with neither, into the
 * outbox maildir.  Recipients delivered, and those failed for good and
 * reported through REP, leave ENV.  Returns SG_OK (none left),
 * SG_ERR_TEMP (some left, to be tried again) or the permanent status of
 * the first recipient when all failed for good (ENV untouched: a bounce).
 * REPLY gets the next hop's reply or the reason.  Thread-safe; the lock
 * on the configuration is not held during network I/O.
 */
enum sg_status pipeline_deliver(struct pipeline *pl, struct spool_env *env,
                                int out_fd, struct queue_report *rep,
                                char *reply, size_t replylen);

#endif /* SG_PIPELINE_H */
