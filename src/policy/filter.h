/*
 * filter.h - message and content filters (docs/filters.md): a small rule
 * language in the reference appliance's syntax,
 *
 *	quarantine_smime_messages: if (smime-gateway-message and
 *	    not smime-gateway-verified) { quarantine("Policy"); }
 *
 * parsed by a hand parser that reports errors as FILE:LINE: reason (the
 * style of config.c) and evaluated on what the daemon knows about a
 * message (struct filter_facts).  The evaluator never parses MIME.
 *
 * A struct filter_set is immutable once loaded: regular expressions are
 * compiled at load time and several threads may evaluate one set at once.
 * A reload makes a new set and swaps it in whole.
 */
#ifndef SG_FILTER_H
#define SG_FILTER_H

#include <stddef.h>

#include "smimegate.h"

/* Limits of the loader; exceeding one is an error naming FILE:LINE. */
#define FILTER_MAX_FILE    (1024 * 1024) /* bytes of filter text */
#define FILTER_MAX_FILTERS 10000         /* filters in one set */
#define FILTER_MAX_DEPTH   64            /* nested parentheses and not */
#define FILTER_MAX_STRING  4096          /* bytes of one string literal */
#define FILTER_MAX_WORD    255           /* bytes of a name or keyword */

struct filter_set;

/*
 * Loads the filters of the file PATH (filter_load_file) or of the LEN
 * bytes at TEXT, which need not be NUL-terminated (filter_load_mem; NAME
 * stands for the file in messages).  On success *OUT is a new set for
 * filter_set_free.  On failure *OUT is untouched and ERR (ERRLEN bytes,
 * always NUL-terminated when ERRLEN > 0) holds "NAME:LINE: reason", or
 * "NAME: reason" when no line applies.
 * Returns SG_OK; SG_ERR_IO (the file could not be read); SG_ERR_USAGE (a
 * syntax error, an unknown word, a bad regular expression, a duplicate
 * name); SG_ERR_LIMIT (one of the limits above); SG_ERR_NOMEM.
 */
enum sg_status filter_load_file(const char *path, struct filter_set **out,
                                char *err, size_t errlen);
enum sg_status filter_load_mem(const char *name, const char *text, size_t len,
                               struct filter_set **out, char *err,
                               size_t errlen);

/* Frees FS and everything in it; filter_set_free(NULL) does nothing.  No
 * struct filter_result filled from FS may be used afterwards. */
void filter_set_free(struct filter_set *fs);

/* The number of filters in FS. */
size_t filter_set_count(const struct filter_set *fs);

/*
 * Check the names FS refers to against the caller's configuration, for
 * start-up and reload: every smime-sign-encrypt and
 * smime-sign-encrypt-on-delivery profile (filter_set_check_profiles), every
 * quarantine() name (filter_set_check_quarantines).  EXISTS(ARG, name)
 * returns non-zero when NAME exists.  Returns SG_OK; SG_ERR_NOT_FOUND with
 * "NAME:LINE: ..." of the first unknown name in ERR; SG_ERR_USAGE (NULL).
 */
enum sg_status filter_set_check_profiles(const struct filter_set *fs,
                                         int (*profile_exists)(void *arg,
                                                               const char *),
                                         void *arg, char *err, size_t errlen);
enum sg_status
filter_set_check_quarantines(const struct filter_set *fs,
                             int (*quarantine_exists)(void *arg, const char *),
                             void *arg, char *err, size_t errlen);

/*
 * What the evaluator asks about a message; the daemon fills it from the
 * real message.  Every pointer is borrowed for the duration of one
 * filter_eval call; NULL strings count as "" and NULL lists as empty.
 */
struct filter_facts {
	const char *subject;      /* decoded, UTF-8, or NULL */
	const char *body_text;    /* decoded text of all text parts, or NULL */
	size_t size;              /* message size in bytes */
	const char *mail_from;    /* envelope sender ("" for <>), or NULL */
	const char *const *rcpts; /* envelope recipients ... */
	size_t nrcpts;            /* ... and how many */
	/* The unfolded values of header NAME (matched case-insensitively),
	 * NULL-terminated, or NULL when the message has none.  The list
	 * must stay valid until filter_eval returns.  HEADER may be NULL
	 * (no headers). */
	const char *const *(*header)(void *arg, const char *name);
	void *arg;
	const char *const *att_names; /* attachment file names, NULL-terminated,
	                               * or NULL */
	const char *const *att_types; /* their MIME types ("application/pdf") */
	int smime_gateway_message;    /* arrived signed or encrypted (S/MIME) */
	int smime_gateway_verified;   /* and the gateway decrypted and verified
	                               * it successfully */
	int smime_signed;             /* arrived with an S/MIME signature */
	int smime_encrypted;          /* arrived S/MIME-encrypted */
};

/*
 * Actions.  Final actions end the evaluation: no later action or filter
 * runs.  FA_QUARANTINE, FA_DROP, FA_BOUNCE, FA_SMIME_FINAL and FA_DELIVER
 * are final (filter_action_is_final).  FA_SKIP ends the evaluation of the
 * set without being a delivery decision.  The others are recorded and
 * evaluation goes on; FA_SMIME_ON_DELIVERY is applied by the caller last,
 * when the message is delivered.
 */
enum filter_action_kind {
	FA_QUARANTINE,        /* quarantine("Name"): arg1 the quarantine */
	FA_DROP,              /* drop() */
	FA_BOUNCE,            /* bounce() */
	FA_ADD_HEADER,        /* add-header("Name", "value") */
	FA_REMOVE_HEADER,     /* remove-header("Name"), strip-header(...) */
	FA_NOTIFY,            /* notify("addr@example"): arg1 the address */
	FA_SKIP,              /* skip-filters() */
	FA_SMIME_FINAL,       /* smime-sign-encrypt("profile") */
	FA_SMIME_ON_DELIVERY, /* smime-sign-encrypt-on-delivery("profile") */
	FA_DELIVER,           /* deliver() */
	FA_LOG                /* log("text") */
};

/* One action that fired.  The strings belong to the filter set. */
struct filter_action {
	enum filter_action_kind kind;
	const char *arg1, *arg2; /* the arguments, or NULL */
	const char *filter;      /* the name of the filter it belongs to */
	unsigned line;           /* where the action is written */
};

/* "quarantine", "drop", ..., "smime-sign-encrypt-on-delivery"; static. */
const char *filter_action_name(enum filter_action_kind kind);
/* 1 for the final actions listed above, else 0. */
int filter_action_is_final(enum filter_action_kind kind);

/*
 * The actions that fired, in order, across one or more filter_eval calls
 * (message filters, then a policy's content filters).  Caller's storage:
 * filter_result_init before the first call, filter_result_clear after.
 * FINAL: the last action in V is final and later calls add nothing.
 * SKIPPED: a skip-filters() ended the evaluation of a set.
 * When several smime actions are in V, the last one wins.
 */
struct filter_result {
	struct filter_action *v;
	size_t n, cap;
	int final;
	int skipped;
};

void filter_result_init(struct filter_result *r);
void filter_result_clear(struct filter_result *r);

/*
 * Runs the filters of FS in order on FACTS: in each filter, the actions
 * of the first clause whose condition holds (or of the "else" clause).
 * Appends the actions that fire to OUT, stopping after a final action or
 * skip-filters().  Does nothing when OUT is already final.  The actions
 * point into FS, which must outlive OUT's use.
 * Returns SG_OK; SG_ERR_USAGE (a NULL argument); SG_ERR_NOMEM; SG_ERR_TEMP
 * (a regular expression could not be matched for lack of memory: defer
 * the message, never take it as "no match").  On failure OUT is as it was.
 */
enum sg_status filter_eval(const struct filter_set *fs,
                           const struct filter_facts *facts,
                           struct filter_result *out);

#endif
