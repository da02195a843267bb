/*
 * main.c - runs every unit suite (or those named on the command line).
 */
#include "unit.h"

#include <stdio.h>
#include <string.h>

static const struct unit_suite *suites[] = {
    &suite_status,  &suite_msg,        &suite_mime,       &suite_smime,
    &suite_keys,    &suite_store,      &suite_config,     &suite_spool,
    &suite_smtp,    &suite_dsn,        &suite_relay,      &suite_metrics,
    &suite_log,     &suite_filter,     &suite_quarantine, &suite_flow,
    &suite_harvest, &suite_revocation, &suite_directory,  &suite_certexpiry,
    &suite_rx,      &suite_fields,
};

static int case_failed;
static const char *case_name;

void
unit_fail(const char *file, int line, const char *expr)
{
	fprintf(stderr, "  FAIL %s: %s:%d: %s\n", case_name, file, line, expr);
	case_failed = 1;
}

int
main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (size_t s = 0; s < sizeof(suites) / sizeof(*suites); s++) {
		int want = argc < 2;
		for (int a = 1; a < argc; a++)
			want |= strcmp(argv[a], suites[s]->name) == 0;
		if (!want)
			continue;
		for (const struct unit_case *c = suites[s]->cases; c->name;
		     c++) {
			case_failed = 0;
			case_name = c->name;
			c->fn();
			if (case_failed)
				failed++;
			else
				passed++;
			printf("%s %s.%s\n", case_failed ? "not ok" : "ok",
			       suites[s]->name, c->name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
