/*
 * quarantine_int.h - private to the quarantine module, shared by its two
 * files: quarantine.c (the directories, the change lock, put, list,
 * show, release, delete, take_released, expire, recovery) and
 * quarantine_meta.c (the text of a .meta file: writing it, checking what
 * it can hold, parsing it; the format is docs/quarantine.md).  Nothing
 * else includes it: other code uses quarantine.h.
 *
 * The metadata functions touch no file and no handle: they work on
 * memory only, so every one of them is safe from any thread.
 */
#ifndef SG_QUARANTINE_INT_H
#define SG_QUARANTINE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon/quarantine.h"
#include "daemon/spool.h"
#include "smimegate.h"

/* Whether ENV (its nrcpts recipients and their NOTIFY values, if any)
 * and RULE (NULL: none) fit the format: no value over
 * QUARANTINE_VALUE_MAX bytes, at most QUARANTINE_RCPT_MAX recipients.
 * Borrows everything.  SG_OK, SG_ERR_USAGE (a recipient is missing:
 * rcpts is NULL or has a NULL among the first nrcpts), SG_ERR_LIMIT. */
enum sg_status quarantine_meta_check(const struct spool_env *env,
                                     const char *rule);

/* The text of the .meta file of ENV (which passed quarantine_meta_check)
 * in quarantine NAME: RULE and REASON (NULL: none; REASON is cut to
 * QUARANTINE_REASON_MAX bytes, never inside a UTF-8 sequence), WHEN it
 * was quarantined and SIZE, the bytes of its message.  Borrows
 * everything; on SG_OK *TEXT is a new buffer of *LEN bytes, not
 * NUL-terminated (the caller frees it).  SG_ERR_LIMIT (the text would be
 * over QUARANTINE_META_MAX bytes), SG_ERR_NOMEM; on failure *TEXT and
 * *LEN are untouched. */
enum sg_status quarantine_meta_format(const char *name,
                                      const struct spool_env *env,
                                      const char *rule, const char *reason,
                                      time_t when, uint64_t size, char **text,
                                      size_t *len);

/* Parses the LEN bytes of TEXT, the contents of a .meta file, into OUT
 * (zeroed first; clear it with quarantine_info_clear).  Borrows TEXT; on
 * failure OUT holds nothing to free.  SG_ERR_IO (a damaged file: the
 * reason, "line N: ..." or what is missing, goes to WHY, WHYLEN bytes;
 * WHY may be NULL), SG_ERR_UNSUPPORTED (a newer version of the format),
 * SG_ERR_NOMEM. */
enum sg_status quarantine_meta_parse(const char *text, size_t len,
                                     struct quarantine_info *out, char *why,
                                     size_t whylen);

#endif /* SG_QUARANTINE_INT_H */
