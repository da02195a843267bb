/*
 * status.c - the one table that maps each sg_status to its name, CLI exit
 * code, SMTP reply and text.  No reply string or exit code is written
 * anywhere else.
 */
#include "smimegate.h"

struct sg_status_row {
	const char *name;
	int exit_code;
	int smtp;
	const char *enhanced;
	const char *text;
};

static const struct sg_status_row rows[SG__STATUS_COUNT] = {
    [SG_OK] = {"ok", 0, 250, "2.0.0", "done"},
    [SG_ERR_USAGE] = {"usage", 2, 501, "5.5.4", "invalid arguments"},
    [SG_ERR_IO] = {"io", 2, 451, "4.3.0", "read or write failed"},
    [SG_ERR_MIME] = {"malformed-mime", 2, 554, "5.6.0",
                     "message is not well-formed MIME"},
    [SG_ERR_NOT_SMIME] = {"not-smime", 2, 554, "5.6.0",
                          "message is not S/MIME"},
    [SG_ERR_CMS] = {"malformed-cms", 2, 554, "5.6.0",
                    "S/MIME content is malformed"},
    [SG_ERR_LIMIT] = {"limit", 2, 552, "5.3.4",
                      "a size or count limit "
                      "was exceeded"},
    [SG_ERR_BADKEY] = {"bad-key", 2, 451, "4.7.5",
                       "certificate or key unreadable"},
    [SG_ERR_UNSUPPORTED] = {"unsupported", 2, 554, "5.7.4",
                            "algorithm or form not supported"},
    [SG_ERR_BAD_SIGNATURE] = {"bad-signature", 1, 550, "5.7.7",
                              "signature does not match the content"},
    [SG_ERR_UNTRUSTED] = {"untrusted", 1, 550, "5.7.5",
                          "signer is not trusted"},
    [SG_ERR_EXPIRED] = {"expired", 1, 550, "5.7.5",
                        "certificate is not valid at this time"},
    [SG_ERR_KEY_USAGE] = {"key-usage", 1, 550, "5.7.5",
                          "certificate is not allowed for this use"},
    [SG_ERR_KEY_MISMATCH] = {"key-mismatch", 1, 451, "4.7.5",
                             "private key does not match certificate"},
    [SG_ERR_NOT_RECIPIENT] = {"not-recipient", 1, 550, "5.7.5",
                              "message is not encrypted to our keys"},
    [SG_ERR_DECRYPT] = {"decrypt-failed", 1, 550, "5.7.5", "decryption failed"},
    [SG_ERR_NOT_FOUND] = {"not-found", 1, 550, "5.1.0", "no such entry"},
    [SG_ERR_EXISTS] = {"exists", 1, 550, "5.1.0",
                       "an entry of that name exists"},
    [SG_ERR_POLICY] = {"policy", 1, 550, "5.7.1",
                       "refused by the gateway's policy"},
    [SG_ERR_REVOKED] = {"revoked", 1, 550, "5.7.5",
                        "certificate has been revoked"},
    [SG_ERR_REVOCATION_UNKNOWN] = {"revocation-unknown", 1, 451, "4.7.5",
                                   "revocation status could not be "
                                   "determined"},
    [SG_ERR_NOMEM] = {"nomem", 2, 451, "4.3.0", "out of memory"},
    [SG_ERR_TEMP] = {"temporary", 2, 451, "4.3.0",
                     "temporary failure, try again later"},
    [SG_ERR_INTERNAL] = {"internal", 2, 451, "4.3.0", "internal error"},
};

static const struct sg_status_row unknown = {"unknown", 2, 451, "4.3.0",
                                             "unknown status"};

static const struct sg_status_row *
row(enum sg_status st)
{
	if ((unsigned)st >= SG__STATUS_COUNT || rows[st].name == NULL)
		return &unknown;
	return &rows[st];
}

const char *
sg_status_name(enum sg_status st)
{
	return row(st)->name;
}

const char *
sg_status_text(enum sg_status st)
{
	return row(st)->text;
}

int
sg_status_exit_code(enum sg_status st)
{
	return row(st)->exit_code;
}

int
sg_status_smtp_code(enum sg_status st)
{
	return row(st)->smtp;
}

const char *
sg_status_enhanced(enum sg_status st)
{
	return row(st)->enhanced;
}
