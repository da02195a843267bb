/*
 * spool.h - the durable message spool.  A 250 is a promise: a message is
 * committed (data and envelope written, fsync'd, renamed into place, the
 * directory fsync'd) before the SMTP server answers 250.  Every later
 * state change is an atomic replace.  Opening the spool recovers it.
 *
 * What it trusts: its own directory (0700), nothing else.  What it can
 * reach: that directory.
 *
 * Layout (docs/daemon.md):
 *   DIR/tmp/ID        data being received (deleted on recovery)
 *   DIR/queue/ID.msg  committed message data
 *   DIR/queue/ID.env  its envelope; present = committed
 */
#ifndef SG_SPOOL_H
#define SG_SPOOL_H

#include <stddef.h>
#include <time.h>

#include "smimegate.h"

#define SPOOL_ID_LEN 24 /* characters, without the NUL */

/* Whether ID is a queue ID: SPOOL_ID_LEN characters of Crockford's base
 * 32 (the quarantine keeps a message's ID). */
int spool_id_valid(const char *id);
/* When the message of ID was received (its ID holds the microseconds);
 * 0 for an invalid ID. */
time_t spool_id_time(const char *id);
/* Whether file NAME is an ID followed by exactly SUFFIX (".env"); copies
 * the ID. */
int spool_id_name(const char *name, const char *suffix,
                  char id[SPOOL_ID_LEN + 1]);

/* The envelope: what SMTP said about a message, and its queue state. */
struct spool_env {
	char id[SPOOL_ID_LEN + 1];
	char *mail_from; /* "" for the null sender <> */
	char **rcpts;    /* NULL-terminated */
	size_t nrcpts;
	char *listener;    /* the listener's name */
	int role;          /* enum cfg_role */
	char *client;      /* client address, "192.0.2.1" */
	char *helo;        /* what it said in EHLO/HELO */
	char *dsn_ret;     /* MAIL RET= ("FULL"/"HDRS") or NULL */
	char *dsn_envid;   /* MAIL ENVID= or NULL */
	char **dsn_notify; /* per recipient NOTIFY= or NULL entries; may be
	                    * NULL as a whole */
	char **dsn_orcpt;  /* per recipient ORCPT= (addr-type;xtext, as
	                    * received) or NULL; may be NULL as a whole */
	time_t received;
	unsigned attempts;
	time_t next_try;
	char *last_error; /* the last delivery error, or NULL */
	int released;     /* 1: released from a quarantine (the filters do
	                   * not run again; docs/quarantine.md) */
	char *flow;       /* the mail flow policy that accepted it, or NULL */
	char *policy;     /* a copy made for one mail policy's recipients
	                   * (pipeline): its name; NULL: not split yet */
	int plain;        /* a copy for recipients without a certificate
	                   * (missing_key = split): signed, not encrypted */
};
void spool_env_clear(struct spool_env *env);

/* The envelope's lines in the key-value format (kvtext.h) that .env and
 * quarantine .meta files share: the sender's (mail_from, listener, role,
 * client, helo, dsn_ret, dsn_envid), and one rcpt line per recipient
 * (with its NOTIFY) followed by its orcpt line.  At most MAX bytes of
 * each value are written. */
struct kv_buf;
void spool_env_put_sender(struct kv_buf *b, const struct spool_env *env,
                          size_t max);
void spool_env_put_rcpts(struct kv_buf *b, const struct spool_env *env,
                         size_t max);
/* And reading them back: a "rcpt ADDR [NOTIFY]" line's value adds a
 * recipient (SG_ERR_LIMIT past LIMIT of them); *CAP is the room of the
 * recipient arrays, 0 at first.  An "orcpt" value belongs to the
 * recipient before it.  Values decode to at most MAX bytes.  On failure
 * *WHY says what was wrong, for the caller's "line N: ..." message. */
enum sg_status spool_env_read_rcpt(struct spool_env *env, const char *val,
                                   size_t vlen, size_t *cap, size_t limit,
                                   size_t max, const char **why);
enum sg_status spool_env_read_orcpt(struct spool_env *env, const char *val,
                                    size_t vlen, size_t max, const char **why);

struct spool;

/* Opens (creating 0700) the spool at DIR and recovers it: incomplete
 * receptions and data without an envelope are removed.  The handle holds
 * the spool's lock: one process at a time.  Details of a failure go to
 * ERR.  SG_ERR_TEMP when another process holds the lock (a running
 * daemon), else SG_ERR_IO. */
enum sg_status spool_open(const char *dir, struct spool **out, char *err,
                          size_t errlen);
/* A read-only view of the spool at DIR for `smimegate queue list/show`
 * while the daemon may run: no lock, no recovery, nothing created.  Only
 * spool_scan, spool_load, spool_data_fd and spool_close may be used on
 * it.  SG_ERR_NOT_FOUND when DIR or DIR/queue does not exist. */
enum sg_status spool_open_view(const char *dir, struct spool **out, char *err,
                               size_t errlen);
void spool_close(struct spool *sp);

/* ---- receiving (the SMTP server) ---- */

struct spool_rx;
/* Starts a message: a new queue ID and a private temporary file. */
enum sg_status spool_rx_begin(struct spool *sp, struct spool_rx **out);
const char *spool_rx_id(const struct spool_rx *rx);
/* Appends message bytes (already dot-unstuffed, CRLF line ends). */
enum sg_status spool_rx_write(struct spool_rx *rx, const void *buf, size_t len);
size_t spool_rx_size(const struct spool_rx *rx);
/* Makes the message durable with ENV (its id is taken from RX): after
 * SG_OK it survives a crash.  Frees RX whatever the outcome.  Thread-safe
 * with respect to other spool calls; may block on fsync.  Commits running
 * at the same time share their directory fsyncs (group commit), so the
 * more threads commit at once, the more commits per second. */
enum sg_status spool_rx_commit(struct spool_rx *rx, struct spool_env *env);
/* Drops a message being received.  Frees RX. */
void spool_rx_abort(struct spool_rx *rx);

/* ---- the queue (the runner) ---- */

/* All committed envelopes, oldest first.  *V is an array of N; free each
 * with spool_env_clear and the array with free(). */
enum sg_status spool_scan(struct spool *sp, struct spool_env **v, size_t *n);
/* Reads one envelope by ID. */
enum sg_status spool_load(struct spool *sp, const char *id,
                          struct spool_env *env);
/* A read-only fd of the message data (the caller closes it). */
int spool_data_fd(struct spool *sp, const char *id);
/* Replaces the envelope atomically (attempts, next_try, recipients left,
 * last_error). */
enum sg_status spool_update(struct spool *sp, const struct spool_env *env);
/* Removes a delivered (or bounced) message: envelope first, then data,
 * without a directory fsync (a power cut may bring it back to be delivered
 * twice; nothing can make it lost). */
enum sg_status spool_remove(struct spool *sp, const char *id);
/* The number of committed messages. */
size_t spool_count(struct spool *sp);

#endif /* SG_SPOOL_H */
