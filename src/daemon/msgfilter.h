/*
 * msgfilter.h - runs a filter set (src/policy/filter.h) on a message of
 * the pipeline: the facts from the message (sg_msg_facts), its envelope
 * and what the S/MIME steps found.
 */
#ifndef SG_MSGFILTER_H
#define SG_MSGFILTER_H

#include "daemon/spool.h"
#include "policy/filter.h"
#include "smimegate.h"

/* What the S/MIME steps of the pipeline found on the way in. */
struct msgfilter_smime {
	int message;   /* it arrived signed or encrypted (S/MIME) */
	int verified;  /* every layer decrypted and every signature passed */
	int signed_;   /* it arrived with a signature (any layer) */
	int encrypted; /* it arrived encrypted (any layer) */
};

/*
 * Runs FS on MSG (its facts read with CTX) for ENV, appending what fires
 * to OUT (filter_result_init'ed by the caller).  SG_OK; SG_ERR_TEMP (out
 * of memory or a regular expression that could not run: defer);
 * SG_ERR_MIME or SG_ERR_LIMIT (the message cannot be read as MIME: the
 * caller decides).  REASON gets the detail.
 */
enum sg_status msgfilter_run(struct sg_ctx *ctx, const struct filter_set *fs,
                             struct sg_msg *msg, const struct spool_env *env,
                             const struct msgfilter_smime *sm,
                             struct filter_result *out, char *reason,
                             size_t rlen);

#endif /* SG_MSGFILTER_H */
