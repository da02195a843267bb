/*
 * metrics.h - the daemon's counters, gauges and delivery-latency
 * histogram, and their Prometheus text exposition (format 0.0.4).
 *
 * The daemon owns one struct metrics and hands it to the components that
 * count (smtp_server_set_metrics, queue_set_metrics,
 * pipeline_set_metrics); a component without one counts nothing (every
 * function takes NULL).  Counting is lock-free (C11 atomics, relaxed:
 * each number is exact, a scrape is not a snapshot across numbers), so
 * any thread may count.
 *
 * What it trusts: its callers.  What it can reach: memory only; serving
 * the text over HTTP is serve.c's.
 */
#ifndef SG_METRICS_H
#define SG_METRICS_H

#include <stddef.h>

#include "smimegate.h"

/* The counters.  Those of one family (smimegate_rejected_total{reason},
 * smimegate_verified_total{result}) are adjacent. */
enum metrics_counter {
	METRICS_SESSIONS_ACCEPTED, /* SMTP sessions started */
	METRICS_MESSAGES_RECEIVED, /* committed to the spool: 250 */
	/* refused by the SMTP server, by reason */
	METRICS_REJECTED_RELAY_DENIED,
	METRICS_REJECTED_TOO_BIG,
	METRICS_REJECTED_SMUGGLING, /* a bare CR or LF in DATA */
	METRICS_REJECTED_LINE_TOO_LONG,
	METRICS_REJECTED_TIMEOUT,
	METRICS_REJECTED_TOO_MANY_ERRORS,
	METRICS_REJECTED_BUSY,         /* max_sessions */
	METRICS_REJECTED_CLIENT_LIMIT, /* max_sessions_per_client */
	METRICS_REJECTED_SPOOL_ERROR,
	METRICS_REJECTED_OTHER,
	/* the pipeline, per processing run */
	METRICS_SIGNED,
	METRICS_ENCRYPTED,
	METRICS_VERIFIED_PASS,
	METRICS_VERIFIED_FAIL,
	METRICS_VERIFIED_PERMERROR,
	METRICS_VERIFIED_NONE,
	METRICS_DECRYPTED,
	METRICS_QUARANTINED, /* put into a quarantine by a filter */
	METRICS_DROPPED,     /* dropped by a filter */
	METRICS_ALERTS,      /* alerts raised (alert.h) */
	METRICS_HARVESTED,   /* certificates harvested (new or updated) */
	METRICS_REVOKED,     /* signers or recipients found revoked */
	/* the queue */
	METRICS_DELIVERED,
	METRICS_DEFERRED,
	METRICS_BOUNCED,
	METRICS_RCPT_FAILED,
	METRICS__COUNT
};

/* The upper bounds (seconds) of the latency histogram's buckets; +Inf
 * follows. */
#define METRICS_LATENCY_BUCKETS                                                \
	{                                                                      \
		0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300    \
	}
#define METRICS_NBUCKETS 13

struct metrics;

/* All zero.  NULL on allocation failure. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Adds one to C.  Nothing when M is NULL or C out of range. */
void metrics_inc(struct metrics *m, enum metrics_counter c);
/* The value of C (0 for a NULL M). */
unsigned long long metrics_get(const struct metrics *m, enum metrics_counter c);
/* The counter of a refusal named as in the SMTP server's log ("size",
 * "bare-cr-or-lf", "line-too-long", "relay-denied", "timeout",
 * "spool-error", ...); METRICS_REJECTED_OTHER for a word it does not
 * know. */
enum metrics_counter metrics_rejected_by_reason(const char *reason);
/* The counter of a verification result as in Authentication-Results
 * ("pass", "fail", "permerror", "none"); NONE for another word. */
enum metrics_counter metrics_verified_by_result(const char *result);

/* Puts SECONDS (from reception to delivery) in the histogram; a negative
 * value (the clock went back) counts as 0. */
void metrics_observe_latency(struct metrics *m, double seconds);

/* What is measured at the time of a scrape. */
struct metrics_gauges {
	size_t queue_size;      /* messages in the queue runner */
	size_t queue_oldest;    /* seconds the oldest of them has waited */
	size_t sessions_active; /* SMTP sessions open */
};

/* The text exposition of M (and of G unless NULL): every counter with
 * its HELP and TYPE, the gauges, the histogram with cumulative buckets,
 * +Inf, _sum and _count.  *OUT (NUL-terminated, *OUTLEN octets without
 * the NUL) is the caller's to free().  SG_OK or SG_ERR_NOMEM (outputs
 * untouched). */
enum sg_status metrics_render(const struct metrics *m,
                              const struct metrics_gauges *g, char **out,
                              size_t *outlen);

#endif /* SG_METRICS_H */
