/*
 * metrics.c - counters, gauges and the delivery-latency histogram
 * (metrics.h), and their Prometheus text exposition.
 *
 * What it trusts: its callers.  What it can reach: memory only.
 *
 * Every number is a C11 atomic updated with relaxed order: counting never
 * takes a lock and never waits for a scrape.  The histogram keeps one
 * count per bucket (not cumulative) plus one above the last bound; the
 * scrape adds them up, so +Inf always equals _count.  The sum is kept in
 * microseconds, an integer, so that it too is one atomic add.
 */
#include "daemon/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
	_Atomic unsigned long long counters[METRICS__COUNT];
	_Atomic unsigned long long buckets[METRICS_NBUCKETS + 1]; /* +Inf */
	_Atomic unsigned long long sum_usec;
};

static const double bounds[METRICS_NBUCKETS] = METRICS_LATENCY_BUCKETS;

/* One row per counter; a family's rows are adjacent (enum order). */
static const struct {
	const char *family; /* without the smimegate_ prefix */
	const char *label;  /* "reason=\"size\"" or NULL */
	const char *help;
} rows[METRICS__COUNT] = {
    [METRICS_SESSIONS_ACCEPTED] = {"sessions_accepted_total", NULL,
                                   "SMTP sessions accepted."},
    [METRICS_MESSAGES_RECEIVED] = {"messages_received_total", NULL,
                                   "Messages committed to the spool "
                                   "(answered 250)."},
#define REJECTED(r)                                                            \
	{                                                                      \
		"rejected_total", "reason=\"" r "\"",                          \
		    "Commands, messages and sessions the SMTP server "         \
		    "refused, by "                                             \
		    "reason."                                                  \
	}
    [METRICS_REJECTED_RELAY_DENIED] = REJECTED("relay_denied"),
    [METRICS_REJECTED_TOO_BIG] = REJECTED("too_big"),
    [METRICS_REJECTED_SMUGGLING] = REJECTED("smuggling"),
    [METRICS_REJECTED_LINE_TOO_LONG] = REJECTED("line_too_long"),
    [METRICS_REJECTED_TIMEOUT] = REJECTED("timeout"),
    [METRICS_REJECTED_TOO_MANY_ERRORS] = REJECTED("too_many_errors"),
    [METRICS_REJECTED_BUSY] = REJECTED("busy"),
    [METRICS_REJECTED_CLIENT_LIMIT] = REJECTED("client_limit"),
    [METRICS_REJECTED_SPOOL_ERROR] = REJECTED("spool_error"),
    [METRICS_REJECTED_OTHER] = REJECTED("other"),
#undef REJECTED
    [METRICS_SIGNED] = {"signed_total", NULL,
                        "Outgoing messages signed (per processing run)."},
    [METRICS_ENCRYPTED] = {"encrypted_total", NULL,
                           "Outgoing messages encrypted (per processing "
                           "run)."},
#define VERIFIED(r)                                                            \
	{                                                                      \
		"verified_total", "result=\"" r "\"",                          \
		    "Incoming messages by their smime= result in "             \
		    "Authentication-Results."                                  \
	}
    [METRICS_VERIFIED_PASS] = VERIFIED("pass"),
    [METRICS_VERIFIED_FAIL] = VERIFIED("fail"),
    [METRICS_VERIFIED_PERMERROR] = VERIFIED("permerror"),
    [METRICS_VERIFIED_NONE] = VERIFIED("none"),
#undef VERIFIED
    [METRICS_DECRYPTED] = {"decrypted_total", NULL,
                           "S/MIME envelopes opened with our keys."},
    [METRICS_QUARANTINED] = {"quarantined_total", NULL,
                             "Messages a filter put into a quarantine."},
    [METRICS_DROPPED] = {"dropped_total", NULL, "Messages a filter dropped."},
    [METRICS_ALERTS] = {"alerts_total", NULL,
                        "Alerts raised for the administrator."},
    [METRICS_HARVESTED] = {"harvested_total", NULL,
                           "Certificates harvested from signed mail."},
    [METRICS_REVOKED] = {"revoked_certificates_total", NULL,
                         "Signers' and recipients' certificates found "
                         "revoked."},
    [METRICS_DELIVERED] = {"delivered_total", NULL,
                           "Messages delivered to every recipient left."},
    [METRICS_DEFERRED] = {"deferred_total", NULL,
                          "Delivery attempts that failed temporarily."},
    [METRICS_BOUNCED] = {"bounced_total", NULL,
                         "Messages that failed for good or expired."},
    [METRICS_RCPT_FAILED] = {"rcpt_failed_total", NULL,
                             "Recipients that failed for good while "
                             "others did not."},
};

/* The SMTP server's refusal words (docs/daemon.md) and their counters. */
static const struct {
	const char *word;
	enum metrics_counter c;
} reasons[] = {
    {"relay-denied", METRICS_REJECTED_RELAY_DENIED},
    {"size", METRICS_REJECTED_TOO_BIG},
    {"bare-cr-or-lf", METRICS_REJECTED_SMUGGLING},
    {"line-too-long", METRICS_REJECTED_LINE_TOO_LONG},
    {"timeout", METRICS_REJECTED_TIMEOUT},
    {"too-many-errors", METRICS_REJECTED_TOO_MANY_ERRORS},
    {"busy", METRICS_REJECTED_BUSY},
    {"client-limit", METRICS_REJECTED_CLIENT_LIMIT},
    {"spool-error", METRICS_REJECTED_SPOOL_ERROR},
};

struct metrics *
metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < METRICS__COUNT; i++)
		atomic_init(&m->counters[i], 0);
	for (size_t i = 0; i <= METRICS_NBUCKETS; i++)
		atomic_init(&m->buckets[i], 0);
	atomic_init(&m->sum_usec, 0);
	return m;
}

void
metrics_free(struct metrics *m)
{
	free(m);
}

void
metrics_inc(struct metrics *m, enum metrics_counter c)
{
	if (m == NULL || (unsigned)c >= METRICS__COUNT)
		return;
	atomic_fetch_add_explicit(&m->counters[c], 1, memory_order_relaxed);
}

unsigned long long
metrics_get(const struct metrics *m, enum metrics_counter c)
{
	if (m == NULL || (unsigned)c >= METRICS__COUNT)
		return 0;
	return atomic_load_explicit(&m->counters[c], memory_order_relaxed);
}

enum metrics_counter
metrics_rejected_by_reason(const char *reason)
{
	for (size_t i = 0; reason && i < sizeof(reasons) / sizeof(*reasons);
	     i++)
		if (strcmp(reason, reasons[i].word) == 0)
			return reasons[i].c;
	return METRICS_REJECTED_OTHER;
}

enum metrics_counter
metrics_verified_by_result(const char *result)
{
	if (result == NULL)
		return METRICS_VERIFIED_NONE;
	if (strcmp(result, "pass") == 0)
		return METRICS_VERIFIED_PASS;
	if (strcmp(result, "fail") == 0)
		return METRICS_VERIFIED_FAIL;
	if (strcmp(result, "permerror") == 0)
		return METRICS_VERIFIED_PERMERROR;
	return METRICS_VERIFIED_NONE;
}

void
metrics_observe_latency(struct metrics *m, double seconds)
{
	size_t i;

	if (m == NULL)
		return;
	if (!(seconds > 0)) /* negative, or NaN */
		seconds = 0;
	for (i = 0; i < METRICS_NBUCKETS && seconds > bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	if (seconds > 1e9) /* beyond any queue lifetime: bound the sum */
		seconds = 1e9;
	atomic_fetch_add_explicit(&m->sum_usec,
	                          (unsigned long long)(seconds * 1e6 + 0.5),
	                          memory_order_relaxed);
}

static void
render_counters(FILE *f, const struct metrics *m)
{
	const char *family = NULL;

	for (size_t i = 0; i < METRICS__COUNT; i++) {
		if (family == NULL || strcmp(family, rows[i].family) != 0) {
			family = rows[i].family;
			fprintf(f, "# HELP smimegate_%s %s\n", family,
			        rows[i].help);
			fprintf(f, "# TYPE smimegate_%s counter\n", family);
		}
		fprintf(f, "smimegate_%s%s%s%s %llu\n", family,
		        rows[i].label ? "{" : "",
		        rows[i].label ? rows[i].label : "",
		        rows[i].label ? "}" : "",
		        metrics_get(m, (enum metrics_counter)i));
	}
}

static void
render_gauge(FILE *f, const char *name, const char *help, size_t value)
{
	fprintf(f, "# HELP smimegate_%s %s\n", name, help);
	fprintf(f, "# TYPE smimegate_%s gauge\n", name);
	fprintf(f, "smimegate_%s %zu\n", name, value);
}

static void
render_histogram(FILE *f, const struct metrics *m)
{
	static const char name[] = "smimegate_delivery_latency_seconds";
	unsigned long long cum = 0, sum = 0;

	fprintf(f,
	        "# HELP %s Seconds from reception to delivery (reception "
	        "time in whole seconds).\n",
	        name);
	fprintf(f, "# TYPE %s histogram\n", name);
	for (size_t i = 0; i <= METRICS_NBUCKETS; i++) {
		if (m != NULL)
			cum += atomic_load_explicit(&m->buckets[i],
			                            memory_order_relaxed);
		if (i < METRICS_NBUCKETS)
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name,
			        bounds[i], cum);
		else
			fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
	}
	if (m != NULL)
		sum = atomic_load_explicit(&m->sum_usec, memory_order_relaxed);
	fprintf(f, "%s_sum %llu.%06llu\n", name, sum / 1000000, sum % 1000000);
	fprintf(f, "%s_count %llu\n", name, cum);
}

enum sg_status
metrics_render(const struct metrics *m, const struct metrics_gauges *g,
               char **out, size_t *outlen)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int bad;

	if ((f = open_memstream(&text, &len)) == NULL)
		return SG_ERR_NOMEM;
	render_counters(f, m);
	if (g != NULL) {
		render_gauge(f, "queue_size", "Messages in the queue.",
		             g->queue_size);
		render_gauge(f, "queue_oldest_seconds",
		             "Seconds since the oldest message in the queue "
		             "was received (0: none).",
		             g->queue_oldest);
		render_gauge(f, "sessions_active", "SMTP sessions open.",
		             g->sessions_active);
	}
	render_histogram(f, m);
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		goto fail;
	*out = text;
	*outlen = len;
	return SG_OK;
fail:
	free(text);
	return SG_ERR_NOMEM;
}
