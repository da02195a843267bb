/*
 * quarantine.h - named quarantines: messages held out of the mail flow by a
 * filter or policy rule (quarantine("Policy")), kept on disk until an
 * administrator releases or deletes them or their retention runs out
 * (docs/quarantine.md).
 *
 * What it trusts: the directories it creates (0700) under the spool
 * directory, nothing else; every metadata file it reads is parsed with
 * bounded sizes and refused when damaged.  What it can reach:
 * SPOOL/quarantine/ (one subdirectory per quarantine name) and
 * SPOOL/release/, through directory descriptors opened once.  Quarantine
 * names and queue IDs are checked before they become file names.
 *
 * Layout:
 *   SPOOL/quarantine/.lock          serializes state changes (flock)
 *   SPOOL/quarantine/NAME/ID.msg    the message, bytes as handed in
 *   SPOOL/quarantine/NAME/ID.meta   its metadata; present = complete
 *   SPOOL/quarantine/NAME/.tmp.ID.* a put in progress
 *   SPOOL/release/ID.msg, ID.meta   released, for the daemon to take
 *
 * Two processes use it at once: the daemon (put, take_released, expire)
 * and the `smimegate quarantine` command (list, show, release, delete).
 * It never takes the spool's flock.  Every state change is a rename or an
 * unlink; the two steps of one change (the .msg and the .meta) are made
 * under an exclusive flock of quarantine/.lock (and a mutex between the
 * threads of one handle), so no operation, in this process or another,
 * ever sees half of another's change; only a crash leaves one, and
 * opening repairs it.  An entry that another process removed between a
 * listing and an action on it is SG_ERR_NOT_FOUND, not an error.
 *
 * A handle is thread-safe.  Functions that fail keep a one-line reason on
 * the handle (quarantine_error); the module never logs.
 */
#ifndef SG_QUARANTINE_H
#define SG_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon/spool.h"
#include "smimegate.h"

#define QUARANTINE_NAME_MAX   64         /* characters of a quarantine name */
#define QUARANTINE_VALUE_MAX  4096       /* bytes of one metadata value */
#define QUARANTINE_REASON_MAX 1024       /* a longer reason is cut to this */
#define QUARANTINE_RCPT_MAX   100000     /* recipients of one entry */
#define QUARANTINE_META_MAX   (8u << 20) /* bytes of one .meta file */
#define QUARANTINE_MSG_MAX    ((uint64_t)1 << 30) /* bytes of a message */

/* One quarantined (or released) message. */
struct quarantine_info {
	char id[SPOOL_ID_LEN + 1];          /* its spool queue ID */
	char name[QUARANTINE_NAME_MAX + 1]; /* the quarantine holding it */
	time_t quarantined;                 /* when it was put there */
	char *rule;                         /* the rule that put it there,
	                                     * or NULL */
	char *reason;                       /* one line, or NULL */
	uint64_t size;                      /* bytes of the message */
	struct spool_env env;               /* its envelope (the fields
	                                     * SMTP gave: attempts, next_try
	                                     * and last_error are 0/NULL) */
	int damaged;                        /* quarantine_list only: the
	                                     * .meta could not be read; only
	                                     * id and name are set */
};
/* Frees what INFO holds (not INFO itself); NULL does nothing. */
void quarantine_info_clear(struct quarantine_info *info);
/* Clears each of the N entries of V, then frees V. */
void quarantine_list_free(struct quarantine_info *v, size_t n);

/* Whether NAME is a quarantine name: 1 to QUARANTINE_NAME_MAX of
 * [A-Za-z0-9_-] (so never ".", ".." or a path). */
int quarantine_name_valid(const char *name);
/* Whether ID is a queue ID: SPOOL_ID_LEN characters of Crockford's
 * base32 alphabet (upper case). */
int quarantine_id_valid(const char *id);

struct quarantine;

/* Opens the quarantine area of the spool directory SPOOL_DIR (which must
 * exist, be ours and not be writable by group or others), creating
 * quarantine/ and release/ (0700) when missing and refusing them when
 * they are not ours or group or others may use them.  Repairs what a
 * crash left (under the lock, so it is safe while another process works
 * in the area): temporary files no put is writing, a .msg or .meta
 * without its partner, and a release cut in half, which it completes.
 * Does not take the spool's flock.  *OUT is the handle (quarantine_close).
 * On failure the reason goes to ERR: SG_ERR_IO, SG_ERR_NOMEM. */
enum sg_status quarantine_open(const char *spool_dir, struct quarantine **out,
                               char *err, size_t errlen);
/* Closes Q; NULL does nothing. */
void quarantine_close(struct quarantine *q);

/* Copies the reason of this handle's last failure (one line, with the
 * file or ID concerned) into BUF.  With several threads on one handle it
 * may be another thread's. */
void quarantine_error(struct quarantine *q, char *buf, size_t len);

/* The time source for "quarantined" (time(NULL) unless set): for tests.
 * Call before any put. */
void quarantine_set_clock(struct quarantine *q, time_t (*now)(void *arg),
                          void *arg);

/* ---- the daemon ---- */

/* Puts the message read from DATA_FD (from offset 0, with pread, to its
 * end; the fd's offset is not used) with the envelope ENV (ENV->id names
 * the entry) into quarantine NAME, creating its directory when needed.
 * RULE and REASON (NULL: none) are recorded; a reason longer than
 * QUARANTINE_REASON_MAX is cut.  Crash-safe like a spool commit: both
 * files are written under temporary names and fsync'd, renamed (.msg,
 * then .meta), and the directory fsync'd before SG_OK, so the caller may
 * remove the message from its spool once this returns SG_OK, and only
 * then.  An entry of the same ID in the same quarantine is replaced (a
 * message processed again after a crash); other quarantines and
 * release/ are not looked at.  On failure nothing of the entry is left.
 * Borrows everything.
 * SG_ERR_USAGE (bad name or ID, NULL env), SG_ERR_LIMIT (a value, the
 * recipients or the message too large), SG_ERR_TEMP (disk full, or a put
 * of the same ID running), SG_ERR_IO, SG_ERR_NOMEM. */
enum sg_status quarantine_put(struct quarantine *q, const char *name,
                              const struct spool_env *env, int data_fd,
                              const char *rule, const char *reason);

/* What take_released and expire hand over, one entry at a time: ENV is
 * the entry's envelope, INFO the rest (INFO->env is ENV), DATA_FD a
 * read-only descriptor of the message at offset 0 whose size is
 * INFO->size.  All borrowed for the call only.  SG_OK means "done with
 * it: remove it"; anything else keeps the entry for a later call.  The
 * function runs without the lock of state changes held: it may call
 * quarantine_release or quarantine_delete on the handle (not
 * quarantine_take_released). */
typedef enum sg_status (*quarantine_fn)(void *arg, const struct spool_env *env,
                                        const struct quarantine_info *info,
                                        int data_fd);

/* Hands each complete entry of release/ to FN, oldest first; ENV has
 * released = 1 (the filters do not run again).  When FN returns SG_OK
 * (the daemon committed the message to its spool) the entry is removed;
 * otherwise it stays for the next call.  A crash between FN's commit and
 * the removal hands the message over again at the next call: it may be
 * delivered twice, never lost.  One call at a time per handle (others
 * wait).  SG_OK when every entry could be read (whatever FN answered);
 * else the first failure (SG_ERR_IO for a damaged entry, which stays in
 * place and is skipped), after the other entries were handed over. */
enum sg_status quarantine_take_released(struct quarantine *q, quarantine_fn fn,
                                        void *arg);

/* Retention: each entry of quarantine NAME (NULL: of every quarantine)
 * quarantined before OLDER_THAN is handed to FN (when not NULL: to log it
 * or notify) and then removed when FN returned SG_OK (or FN is NULL).
 * For "at_expiry = release", FN calls quarantine_release(q, info->id) and
 * returns SG_OK: the removal then finds nothing left to remove.  A name
 * without a directory yet has nothing to expire.  Returns as
 * take_released does; SG_ERR_USAGE for a bad NAME. */
enum sg_status quarantine_expire(struct quarantine *q, const char *name,
                                 time_t older_than, quarantine_fn fn,
                                 void *arg);

/* ---- the administrator ---- */

/* Every entry of quarantine NAME (NULL: of all of them), oldest first (by
 * quarantined time, then ID).  An entry whose .meta cannot be read is
 * listed with damaged = 1.  *V is an array of *N (NULL when 0); free it
 * with quarantine_list_free.  SG_ERR_USAGE (bad NAME), SG_ERR_IO,
 * SG_ERR_NOMEM. */
enum sg_status quarantine_list(struct quarantine *q, const char *name,
                               struct quarantine_info **v, size_t *n);

/* The entry ID, in whichever quarantine holds it, into *OUT (clear it
 * with quarantine_info_clear).  SG_ERR_USAGE (bad ID), SG_ERR_NOT_FOUND,
 * SG_ERR_IO (its .meta is damaged: the reason says how), SG_ERR_NOMEM. */
enum sg_status quarantine_show(struct quarantine *q, const char *id,
                               struct quarantine_info *out);

/* A read-only descriptor (O_CLOEXEC; the caller closes it) of the message
 * of entry ID, in whichever quarantine holds it; -1 with errno: EINVAL
 * (bad ID), ENOENT (no such entry), or the error of open. */
int quarantine_data_fd(struct quarantine *q, const char *id);

/* Releases entry ID: its .msg, then its .meta, are renamed into release/
 * (both directories fsync'd before SG_OK), where the daemon takes it
 * (quarantine_take_released).  SG_ERR_USAGE, SG_ERR_NOT_FOUND,
 * SG_ERR_EXISTS (an entry of that ID is already waiting in release/),
 * SG_ERR_IO (the .msg is missing). */
enum sg_status quarantine_release(struct quarantine *q, const char *id);

/* Deletes entry ID: its .meta, then its .msg, are removed (the directory
 * fsync'd).  SG_ERR_USAGE, SG_ERR_NOT_FOUND, SG_ERR_IO. */
enum sg_status quarantine_delete(struct quarantine *q, const char *id);

#endif /* SG_QUARANTINE_H */
