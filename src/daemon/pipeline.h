/*
 * pipeline.h - what happens to a spooled message before delivery: on an
 * outgoing listener, sign (and encrypt) by the listener's sending profile;
 * on an incoming listener, decrypt with our keys, verify against the trust
 * anchors and add Authentication-Results (RFC 7281).  Then delivery: a
 * maildir when no smarthost is set.
 *
 * What it trusts: the configuration and the store.  What it can reach:
 * the store (one connection per worker thread), temporary files in the
 * spool directory, and the outbox.  The policy layer (issue 5) plugs in
 * between the spool and the engine calls here.
 */
#ifndef SG_PIPELINE_H
#define SG_PIPELINE_H

#include <stddef.h>

#include "daemon/spool.h"
#include "policy/config.h"

struct pipeline;

/* A pipeline for CFG (borrowed until pipeline_set_cfg replaces it). */
struct pipeline *pipeline_new(const struct cfg *cfg);
/* A reloaded configuration, swapped in between messages. */
void pipeline_set_cfg(struct pipeline *pl, const struct cfg *cfg);
void pipeline_free(struct pipeline *pl);

/* Turns spooled DATA_FD of ENV into the message to deliver: *OUT_FD is a
 * temporary file positioned at 0 (the caller closes it).  Returns SG_OK,
 * SG_ERR_TEMP (try again later) or a permanent status (bounce) with
 * REASON.  Thread-safe: one call per worker thread at a time. */
enum sg_status pipeline_process(struct pipeline *pl,
                                const struct spool_env *env, int data_fd,
                                int *out_fd, char *reason, size_t reasonlen);

/* Delivers OUT_FD for ENV: into the outbox maildir when no smarthost is
 * configured.  REPLY says what happened. */
enum sg_status pipeline_deliver(struct pipeline *pl,
                                const struct spool_env *env, int out_fd,
                                char *reply, size_t replylen);

#endif /* SG_PIPELINE_H */
