/*
 * dsn.h - delivery status notifications (RFC 3464): the report that tells
 * the sender of a message which of its recipients could not be reached,
 * and why.
 *
 * What it trusts: nothing it is given.  Addresses, the next hop's replies
 * and the original message come from outside: every value that goes into
 * a header or a report field is cut to DSN_VALUE_MAX octets and stripped
 * of control and 8-bit bytes (a CR or LF becomes a space), so no value can
 * add a line or a header field; the original message is returned whole
 * only up to a size bound, else its header block alone.  What it can
 * reach: the original message's fd (read only) and, to sign, the engine
 * with a key it is handed.  No files, no store, no log: the caller logs.
 *
 * A notification is an RFC 5322 message
 *   From: Mail Delivery System <postmaster>
 *   To: <the original envelope sender>
 *   Subject: Undelivered Mail Returned to Sender
 *   Auto-Submitted: auto-replied (RFC 3834)
 *   Content-Type: multipart/report; report-type=delivery-status
 * of three parts: a text/plain explanation; message/delivery-status with
 * Reporting-MTA, Original-Envelope-Id (ENVID), Arrival-Date, and per
 * recipient Final-Recipient, Action: failed, Status, Diagnostic-Code; and
 * the original as message/rfc822 (RET=FULL or no RET, up to the size
 * bound) or its header block as text/rfc822-headers (RET=HDRS, or a
 * larger message).  It is sent from the null sender (MAIL FROM:<>), so it
 * can never bounce back, and it is spooled under the reserved listener
 * name DSN_LISTENER so that the pipeline delivers it as it is.
 */
#ifndef SG_DSN_H
#define SG_DSN_H

#include <stddef.h>
#include <time.h>

#include "daemon/spool.h"
#include "smimegate.h"

#define DSN_MAX_ORIGINAL (64 * 1024) /* larger originals: headers only */
#define DSN_MAX_RCPTS    1000        /* recipients reported; more counted */
#define DSN_VALUE_MAX    900         /* octets of one address or reply */

/* The envelope's listener name of a notification (see dsn_env_init). */
#define DSN_LISTENER "_notify"

/* One recipient that failed. */
struct dsn_rcpt {
	const char *addr;  /* the envelope recipient */
	enum sg_status st; /* why, from the status table */
	const char *reply; /* the next hop's reply ("550 5.1.1 ...") or our
	                    * reason; NULL or "" when there is none */
	const char *orcpt; /* its ORCPT= (addr-type;xtext), or NULL: no
	                    * Original-Recipient field */
};

/* What a notification says.  Every pointer is borrowed. */
struct dsn_info {
	const char *hostname;   /* Reporting-MTA and Message-ID; required */
	const char *postmaster; /* From; required */
	const char *queue_id;   /* the original's queue ID; required */
	const char *sender;     /* the original envelope sender: To;
	                         * required, never "" */
	const char *envid;      /* MAIL ENVID= (xtext) or NULL */
	const char *ret;        /* MAIL RET=: "FULL", "HDRS" or NULL */
	time_t arrival;         /* when the original was received */
	time_t now;             /* Date and Last-Attempt-Date; 0: now */
	int expired;            /* it stayed queued too long: Status
	                         * 5.4.7 for every recipient */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;       /* at least one */
	size_t max_original; /* 0: DSN_MAX_ORIGINAL */
};

/*
 * Builds the notification of INFO.  ORIG_FD (borrowed, read from its
 * current offset; -1: not available) is the original message as spooled:
 * returned whole when it is at most INFO->max_original octets and RET is
 * not "HDRS", else its header block (cut at a line end to that bound).
 * *OUT gets a malloc'd buffer of *OUTLEN octets with CRLF line ends
 * (also NUL-terminated, for convenience); the caller frees it.  Outputs
 * are untouched on failure.
 * Returns SG_OK, SG_ERR_USAGE (a required field is missing, the sender
 * is the null sender, or there is no recipient), SG_ERR_IO (reading
 * ORIG_FD), SG_ERR_NOMEM, SG_ERR_INTERNAL (no random bytes).
 */
enum sg_status dsn_build(const struct dsn_info *info, int orig_fd, char **out,
                         size_t *outlen);

/*
 * Signs the notification DSN (DSNLEN octets, as dsn_build made it) with
 * KEY (borrowed): detached (multipart/signed), SHA-256, KEY's chain
 * included.  *OUT gets a malloc'd buffer of *OUTLEN octets (also
 * NUL-terminated); the caller frees it.  Details of a failure are on CTX.
 * Returns SG_OK or the status of sg_sign (SG_ERR_EXPIRED,
 * SG_ERR_KEY_USAGE, SG_ERR_USAGE for a key without a certificate, ...),
 * SG_ERR_NOMEM.
 */
enum sg_status dsn_sign(struct sg_ctx *ctx, const struct sg_key *key,
                        const char *dsn, size_t dsnlen, char **out,
                        size_t *outlen);

/*
 * Whether a recipient whose RCPT NOTIFY= parameter was NOTIFY (as the
 * SMTP server stores it: "NEVER" or a list of SUCCESS, FAILURE, DELAY in
 * capitals; NULL: none given) wants a notification of failure (RFC 3461
 * 4.1: no NOTIFY means failures are reported).  1 or 0.
 */
int dsn_wants_failure(const char *notify);

/*
 * Fills ENV (zeroed first; clear it with spool_env_clear) as the envelope
 * of a notification to SENDER: the null sender, SENDER as its one
 * recipient, listener DSN_LISTENER with role 0 (no listener has it),
 * client "127.0.0.1" and helo HOSTNAME, received NOW.  Its id is set by
 * spool_rx_commit.  SG_OK, SG_ERR_USAGE (SENDER is "" or NULL),
 * SG_ERR_NOMEM (ENV is then cleared).
 */
enum sg_status dsn_env_init(struct spool_env *env, const char *sender,
                            const char *hostname, time_t now);

/* Whether ENV is the envelope of one of our notifications (dsn_env_init):
 * the pipeline then delivers it unchanged.  A configured listener of the
 * same name does not count: its messages carry its role. */
int dsn_is_notification(const struct spool_env *env);

#endif /* SG_DSN_H */
