/*
 * unit.h - a small unit-test runner: named, table-driven cases; checks that
 * never compile out and never stop the run; a closing line
 * "N passed, N failed" that CI reads.
 */
#ifndef SG_UNIT_H
#define SG_UNIT_H

#include <stddef.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
};

struct unit_suite {
	const char *name;
	const struct unit_case *cases; /* ends with {NULL, NULL} */
};

/* Removes DIR and everything below it (a test's temporary directory). */
void unit_rm_tree(const char *dir);

/* Records a failed check of the running case. */
void unit_fail(const char *file, int line, const char *expr);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			unit_fail(__FILE__, __LINE__, #cond);                  \
	} while (0)
#define CHECK_EQ(a, b)  CHECK((a) == (b))
#define CHECK_STR(a, b) CHECK((a) != NULL && strcmp((a), (b)) == 0)

extern const struct unit_suite suite_status, suite_msg, suite_mime, suite_smime,
    suite_keys, suite_store, suite_config;
extern const struct unit_suite suite_spool;
extern const struct unit_suite suite_smtp;
extern const struct unit_suite suite_dsn;
extern const struct unit_suite suite_relay;
extern const struct unit_suite suite_metrics;
extern const struct unit_suite suite_log;
extern const struct unit_suite suite_filter;
extern const struct unit_suite suite_quarantine;
extern const struct unit_suite suite_flow;
extern const struct unit_suite suite_harvest;
extern const struct unit_suite suite_revocation;
extern const struct unit_suite suite_directory;
extern const struct unit_suite suite_certexpiry;
extern const struct unit_suite suite_rx;
extern const struct unit_suite suite_fields;

#endif
