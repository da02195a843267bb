/*
 * t_status.c - the status table: every status has a row, and the CLI
 * contract's exit codes hold.
 */
#include "unit.h"

#include <string.h>

#include "smimegate.h"

static void
every_status_has_a_row(void)
{
	for (int st = 0; st < SG__STATUS_COUNT; st++) {
		CHECK(strcmp(sg_status_name((enum sg_status)st), "unknown") !=
		      0);
		CHECK(strlen(sg_status_text((enum sg_status)st)) > 0);
		CHECK(strlen(sg_status_enhanced((enum sg_status)st)) == 5);
		int code = sg_status_smtp_code((enum sg_status)st);
		CHECK(code >= 200 && code < 600);
	}
}

static void
exit_codes_follow_the_contract(void)
{
	static const struct {
		enum sg_status st;
		int exit_code;
	} cases[] = {
	    {SG_OK, 0},
	    {SG_ERR_BAD_SIGNATURE, 1},
	    {SG_ERR_UNTRUSTED, 1},
	    {SG_ERR_EXPIRED, 1},
	    {SG_ERR_KEY_USAGE, 1},
	    {SG_ERR_NOT_RECIPIENT, 1},
	    {SG_ERR_DECRYPT, 1},
	    {SG_ERR_REVOKED, 1},
	    {SG_ERR_REVOCATION_UNKNOWN, 1},
	    {SG_ERR_USAGE, 2},
	    {SG_ERR_MIME, 2},
	    {SG_ERR_NOT_SMIME, 2},
	    {SG_ERR_CMS, 2},
	    {SG_ERR_LIMIT, 2},
	    {SG_ERR_IO, 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_EQ(sg_status_exit_code(cases[i].st), cases[i].exit_code);
}

static void
unknown_status_is_safe(void)
{
	CHECK_STR(sg_status_name((enum sg_status)9999), "unknown");
	CHECK_EQ(sg_status_exit_code((enum sg_status) - 1), 2);
}

static void
smtp_classes_match_the_verdict(void)
{
	/* Security verdicts are permanent; resource trouble is temporary. */
	CHECK_EQ(sg_status_smtp_code(SG_ERR_BAD_SIGNATURE) / 100, 5);
	CHECK_EQ(sg_status_smtp_code(SG_ERR_TEMP) / 100, 4);
	CHECK_EQ(sg_status_smtp_code(SG_ERR_NOMEM) / 100, 4);
	/* Revoked is final; an unknown status (hard-fail) may clear up. */
	CHECK_EQ(sg_status_smtp_code(SG_ERR_REVOKED) / 100, 5);
	CHECK_EQ(sg_status_smtp_code(SG_ERR_REVOCATION_UNKNOWN) / 100, 4);
	CHECK_STR(sg_status_name(SG_ERR_REVOKED), "revoked");
	CHECK_STR(sg_status_name(SG_ERR_REVOCATION_UNKNOWN),
	          "revocation-unknown");
	CHECK_STR(sg_status_enhanced(SG_ERR_LIMIT), "5.3.4");
}

static const struct unit_case cases[] = {
    {"every_status_has_a_row", every_status_has_a_row},
    {"exit_codes_follow_the_contract", exit_codes_follow_the_contract},
    {"unknown_status_is_safe", unknown_status_is_safe},
    {"smtp_classes_match_the_verdict", smtp_classes_match_the_verdict},
    {NULL, NULL},
};
const struct unit_suite suite_status = {"status", cases};
