/*
 * t_metrics.c - the counters and the Prometheus text exposition: HELP and
 * TYPE once per family, labelled series, gauges, a histogram with
 * cumulative buckets, +Inf, _sum and _count; counting from many threads
 * loses nothing.
 */
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics.h"

/* The rendered text of M (and G), or NULL. */
static char *
render(const struct metrics *m, const struct metrics_gauges *g)
{
	char *text = NULL;
	size_t len = 0;

	if (metrics_render(m, g, &text, &len) != SG_OK)
		return NULL;
	if (strlen(text) != len) {
		free(text);
		return NULL;
	}
	return text;
}

/* Whether TEXT has LINE as a whole line. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static size_t
occurrences(const char *text, const char *s)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, s)) != NULL; p++)
		n++;
	return n;
}

/* Whether every line of TEXT is "# HELP name text", "# TYPE name type"
 * (a counter's name ending in _total) or "name[{labels}] number", names
 * in the smimegate_ namespace, and the text ends with a newline. */
static int
well_formed(const char *text)
{
	const char *p = text;

	if (*text == '\0' || text[strlen(text) - 1] != '\n')
		return 0;
	while (*p) {
		const char *eol = strchr(p, '\n');
		char name[128], type[32], *end;
		size_t n;

		if (strncmp(p, "# HELP smimegate_", 17) == 0) {
			p = eol + 1;
			continue;
		}
		if (sscanf(p, "# TYPE %127s %31s", name, type) == 2) {
			n = strlen(name);
			if (strncmp(name, "smimegate_", 10) != 0)
				return 0;
			if (strcmp(type, "counter") == 0 &&
			    (n < 6 || strcmp(name + n - 6, "_total") != 0))
				return 0;
			if (strcmp(type, "counter") && strcmp(type, "gauge") &&
			    strcmp(type, "histogram"))
				return 0;
			p = eol + 1;
			continue;
		}
		if (strncmp(p, "smimegate_", 10) != 0)
			return 0;
		n = strspn(p, "abcdefghijklmnopqrstuvwxyz_0123456789");
		if (p[n] == '{') {
			const char *rb = strchr(p + n, '}');
			if (rb == NULL || rb > eol)
				return 0;
			n = (size_t)(rb + 1 - p);
		}
		if (p[n] != ' ')
			return 0;
		(void)strtod(p + n + 1, &end);
		if (end == p + n + 1 || end != eol)
			return 0;
		p = eol + 1;
	}
	return 1;
}

static void
counters_count_and_null_is_harmless(void)
{
	struct metrics *m = metrics_new();

	CHECK(m != NULL);
	CHECK_EQ(metrics_get(m, METRICS_SIGNED), 0ULL);
	metrics_inc(m, METRICS_SIGNED);
	metrics_inc(m, METRICS_SIGNED);
	metrics_inc(m, METRICS_DELIVERED);
	CHECK_EQ(metrics_get(m, METRICS_SIGNED), 2ULL);
	CHECK_EQ(metrics_get(m, METRICS_DELIVERED), 1ULL);
	CHECK_EQ(metrics_get(m, METRICS_BOUNCED), 0ULL);
	/* out of range and NULL: nothing, no crash */
	metrics_inc(m, METRICS__COUNT);
	metrics_inc(m, (enum metrics_counter) - 1);
	metrics_inc(NULL, METRICS_SIGNED);
	metrics_observe_latency(NULL, 1.0);
	CHECK_EQ(metrics_get(NULL, METRICS_SIGNED), 0ULL);
	CHECK_EQ(metrics_get(m, METRICS__COUNT), 0ULL);
	metrics_free(m);
	metrics_free(NULL);
}

static void
counters_render_with_help_type_and_labels(void)
{
	struct metrics *m = metrics_new();
	char *t;

	metrics_inc(m, METRICS_MESSAGES_RECEIVED);
	metrics_inc(m, METRICS_MESSAGES_RECEIVED);
	metrics_inc(m, METRICS_REJECTED_RELAY_DENIED);
	metrics_inc(m, METRICS_VERIFIED_PASS);
	CHECK((t = render(m, NULL)) != NULL);
	if (t == NULL)
		goto out;
	CHECK(has_line(t, "# TYPE smimegate_messages_received_total counter"));
	CHECK(has_line(t, "smimegate_messages_received_total 2"));
	CHECK(has_line(t, "smimegate_sessions_accepted_total 0"));
	CHECK(
	    has_line(t, "smimegate_rejected_total{reason=\"relay_denied\"} 1"));
	CHECK(has_line(t, "smimegate_rejected_total{reason=\"too_big\"} 0"));
	CHECK(has_line(t, "smimegate_rejected_total{reason=\"smuggling\"} 0"));
	CHECK(has_line(t, "smimegate_rejected_total{reason=\"timeout\"} 0"));
	CHECK(has_line(t, "smimegate_verified_total{result=\"pass\"} 1"));
	CHECK(has_line(t, "smimegate_verified_total{result=\"none\"} 0"));
	/* a family's HELP and TYPE once, before its first sample */
	CHECK_EQ(occurrences(t, "# TYPE smimegate_rejected_total counter"), 1u);
	CHECK_EQ(occurrences(t, "# HELP smimegate_rejected_total "), 1u);
	CHECK_EQ(occurrences(t, "# TYPE smimegate_verified_total counter"), 1u);
	CHECK(strstr(t, "# TYPE smimegate_rejected_total") <
	      strstr(t, "smimegate_rejected_total{"));
	CHECK(well_formed(t));
	CHECK(t[strlen(t) - 1] == '\n');
	/* no gauges without G */
	CHECK(strstr(t, "smimegate_queue_size") == NULL);
out:
	free(t);
	metrics_free(m);
}

static void
gauges_render(void)
{
	const struct metrics_gauges g = {
	    .queue_size = 7, .queue_oldest = 42, .sessions_active = 3};
	struct metrics *m = metrics_new();
	char *t;

	CHECK((t = render(m, &g)) != NULL);
	if (t != NULL) {
		CHECK(has_line(t, "# TYPE smimegate_queue_size gauge"));
		CHECK(has_line(t, "smimegate_queue_size 7"));
		CHECK(
		    has_line(t, "# TYPE smimegate_queue_oldest_seconds gauge"));
		CHECK(has_line(t, "smimegate_queue_oldest_seconds 42"));
		CHECK(has_line(t, "# TYPE smimegate_sessions_active gauge"));
		CHECK(has_line(t, "smimegate_sessions_active 3"));
		CHECK(well_formed(t));
	}
	free(t);
	metrics_free(m);
}

static void
histogram_buckets_are_cumulative(void)
{
	static const struct {
		const char *le;
		unsigned long long want;
	} buckets[] = {
	    {"0.01", 2}, {"0.05", 2}, {"0.1", 2}, {"0.25", 2}, {"0.5", 4},
	    {"1", 5},    {"2.5", 5},  {"5", 5},   {"10", 6},   {"30", 6},
	    {"60", 6},   {"120", 6},  {"300", 6}, {"+Inf", 7},
	};
	/* a bound belongs to its bucket (le: less or equal); a negative
	 * value counts as 0 */
	static const double obs[] = {0.005, -3, 0.3, 0.5, 1, 7, 1000};
	struct metrics *m = metrics_new();
	char line[128], *t;

	for (size_t i = 0; i < sizeof(obs) / sizeof(*obs); i++)
		metrics_observe_latency(m, obs[i]);
	CHECK((t = render(m, NULL)) != NULL);
	if (t == NULL)
		goto out;
	CHECK(has_line(t, "# TYPE smimegate_delivery_latency_seconds "
	                  "histogram"));
	for (size_t i = 0; i < sizeof(buckets) / sizeof(*buckets); i++) {
		snprintf(line, sizeof(line),
		         "smimegate_delivery_latency_seconds_bucket{le=\"%s\"} "
		         "%llu",
		         buckets[i].le, buckets[i].want);
		CHECK(has_line(t, line));
	}
	CHECK_EQ(occurrences(t, "_bucket{le="), (size_t)METRICS_NBUCKETS + 1);
	/* 0.005 + 0 + 0.3 + 0.5 + 1 + 7 + 1000 */
	CHECK(
	    has_line(t, "smimegate_delivery_latency_seconds_sum 1008.805000"));
	CHECK(has_line(t, "smimegate_delivery_latency_seconds_count 7"));
	/* buckets in increasing order, +Inf last, then _sum and _count */
	CHECK(strstr(t, "le=\"0.01\"") < strstr(t, "le=\"300\""));
	CHECK(strstr(t, "le=\"300\"") < strstr(t, "le=\"+Inf\""));
	CHECK(strstr(t, "le=\"+Inf\"") < strstr(t, "_seconds_sum"));
	CHECK(strstr(t, "_seconds_sum") < strstr(t, "_seconds_count"));
	CHECK(well_formed(t));
out:
	free(t);
	metrics_free(m);
}

static void
empty_histogram_renders_zeros(void)
{
	struct metrics *m = metrics_new();
	char *t;

	CHECK((t = render(m, NULL)) != NULL);
	if (t != NULL) {
		CHECK(has_line(t, "smimegate_delivery_latency_seconds_bucket"
		                  "{le=\"+Inf\"} 0"));
		CHECK(has_line(t, "smimegate_delivery_latency_seconds_sum "
		                  "0.000000"));
		CHECK(
		    has_line(t, "smimegate_delivery_latency_seconds_count 0"));
	}
	free(t);
	metrics_free(m);
}

static void
refusal_words_map_to_reasons(void)
{
	static const struct {
		const char *word;
		enum metrics_counter want;
	} cases[] = {
	    {"relay-denied", METRICS_REJECTED_RELAY_DENIED},
	    {"size", METRICS_REJECTED_TOO_BIG},
	    {"bare-cr-or-lf", METRICS_REJECTED_SMUGGLING},
	    {"line-too-long", METRICS_REJECTED_LINE_TOO_LONG},
	    {"timeout", METRICS_REJECTED_TIMEOUT},
	    {"too-many-errors", METRICS_REJECTED_TOO_MANY_ERRORS},
	    {"busy", METRICS_REJECTED_BUSY},
	    {"spool-error", METRICS_REJECTED_SPOOL_ERROR},
	    /* must not match: unknown, case, prefix, NULL */
	    {"something-new", METRICS_REJECTED_OTHER},
	    {"SIZE", METRICS_REJECTED_OTHER},
	    {"size2", METRICS_REJECTED_OTHER},
	    {"", METRICS_REJECTED_OTHER},
	    {NULL, METRICS_REJECTED_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_EQ(metrics_rejected_by_reason(cases[i].word),
		         cases[i].want);
}

static void
verification_results_map(void)
{
	static const struct {
		const char *result;
		enum metrics_counter want;
	} cases[] = {
	    {"pass", METRICS_VERIFIED_PASS},
	    {"fail", METRICS_VERIFIED_FAIL},
	    {"permerror", METRICS_VERIFIED_PERMERROR},
	    {"none", METRICS_VERIFIED_NONE},
	    /* never a pass by accident */
	    {"Pass", METRICS_VERIFIED_NONE},
	    {"passed", METRICS_VERIFIED_NONE},
	    {NULL, METRICS_VERIFIED_NONE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_EQ(metrics_verified_by_result(cases[i].result),
		         cases[i].want);
}

/* The checker above would see a broken exposition. */
static void
checker_rejects_bad_text(void)
{
	static const char *bad[] = {
	    "",
	    "smimegate_a_total 1",                /* no final newline */
	    "other_a_total 1\n",                  /* outside the namespace */
	    "# TYPE smimegate_a counter\n",       /* counter without _total */
	    "# TYPE smimegate_a_total summary\n", /* a type we never use */
	    "smimegate_a_total 1 2\n",            /* trailing garbage */
	    "smimegate_a_total\n",                /* no value */
	    "smimegate_a_total{x=\"1\" 1\n",      /* unclosed labels */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK(!well_formed(bad[i]));
	CHECK(well_formed("# TYPE smimegate_a_total counter\n"
	                  "smimegate_a_total{x=\"1\"} 1\n"));
}

#define THREADS 4
#define ROUNDS  20000

static void *
count_many(void *arg)
{
	struct metrics *m = arg;

	for (int i = 0; i < ROUNDS; i++) {
		metrics_inc(m, METRICS_DELIVERED);
		metrics_observe_latency(m, 0.02);
	}
	return NULL;
}

static void
threads_lose_nothing(void)
{
	struct metrics *m = metrics_new();
	pthread_t t[THREADS];
	char *text;
	char want[128];

	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, count_many, m) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(metrics_get(m, METRICS_DELIVERED),
	         (unsigned long long)THREADS * ROUNDS);
	CHECK((text = render(m, NULL)) != NULL);
	if (text != NULL) {
		snprintf(want, sizeof(want),
		         "smimegate_delivery_latency_seconds_count %d",
		         THREADS * ROUNDS);
		CHECK(has_line(text, want));
		snprintf(want, sizeof(want),
		         "smimegate_delivery_latency_seconds_bucket"
		         "{le=\"0.05\"} %d",
		         THREADS * ROUNDS);
		CHECK(has_line(text, want));
	}
	free(text);
	metrics_free(m);
}

static const struct unit_case cases[] = {
    {"counters_count_and_null_is_harmless",
     counters_count_and_null_is_harmless},
    {"counters_render_with_help_type_and_labels",
     counters_render_with_help_type_and_labels},
    {"gauges_render", gauges_render},
    {"histogram_buckets_are_cumulative", histogram_buckets_are_cumulative},
    {"empty_histogram_renders_zeros", empty_histogram_renders_zeros},
    {"refusal_words_map_to_reasons", refusal_words_map_to_reasons},
    {"verification_results_map", verification_results_map},
    {"checker_rejects_bad_text", checker_rejects_bad_text},
    {"threads_lose_nothing", threads_lose_nothing},
    {NULL, NULL},
};

const struct unit_suite suite_metrics = {"metrics", cases};
