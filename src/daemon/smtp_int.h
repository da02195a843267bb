/*
 * smtp_int.h - private to the SMTP server, the files of one component:
 * smtp.c (listeners, the session count, the commit pool, reload and
 * shutdown, the log line), smtp_session.c (the protocol), smtp_parse.c
 * (command syntax), smtp_tls.c (STARTTLS) and smtp_auth.c (SMTP AUTH).
 * Nothing else includes it.
 *
 * Threads: everything here belongs to the event loop's thread, except
 * the commit pool's queues (under pool_lock) and a job while a commit
 * thread holds it.
 */
#ifndef SG_SMTP_INT_H
#define SG_SMTP_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "daemon/daemon_dl.h"

#include "daemon/metrics.h"
#include "daemon/smtp.h"
#include "daemon/spool.h"
#include "policy/config.h"

#define SMTP_COMMIT_THREADS 2 /* fsync is the bottleneck, not the CPU */

/* The limits of a session, from the configuration at its start (a zero
 * in the configuration means the default below). */
struct smtp_limits {
	size_t max_message;           /* octets of client data */
	unsigned max_recipients;      /* per message */
	unsigned max_line;            /* octets of a DATA line without CRLF */
	unsigned max_sessions;        /* concurrent sessions */
	unsigned max_client_sessions; /* from one client outside relay_from */
	unsigned command_timeout;     /* seconds to send a whole command */
	unsigned data_timeout;        /* seconds for the whole DATA phase */
};
#define SMTP_DEF_MAX_MESSAGE     (10u << 20)
#define SMTP_DEF_MAX_RECIPIENTS  100u
#define SMTP_DEF_MAX_LINE        998u
#define SMTP_MAX_MAX_LINE        (1u << 20)
#define SMTP_DEF_MAX_SESSIONS    100u
#define SMTP_DEF_MAX_CLIENT      50u
#define SMTP_DEF_COMMAND_TIMEOUT 300u
#define SMTP_DEF_DATA_TIMEOUT    600u

/* Fills LIM from CFG (CFG may be NULL: all defaults). */
void smtp_limits_get(const struct cfg *cfg, struct smtp_limits *lim);

/*
 * One message handed to a commit thread.  The session that submits it
 * owns it, except between smtp_pool_submit and the call of DONE, when the
 * pool holds it.  DONE runs on the loop thread; CANCELLED is set when the
 * server is being freed (the commit did run and STATUS is its result, but
 * nobody is to be answered).  DONE frees the job.
 */
struct smtp_job {
	TAILQ_ENTRY(smtp_job) entry;
	struct spool_rx *rx;  /* consumed by spool_rx_commit */
	struct spool_env env; /* owned; its id is set by the commit */
	enum sg_status status;
	void (*done)(struct smtp_job *job, int cancelled);
	void *arg;
	/* Other slow work for the pool (an AUTH password check): when set,
	 * the thread calls WORK(WORK_ARG) instead of committing RX. */
	void (*work)(void *work_arg);
	void *work_arg;
};
TAILQ_HEAD(smtp_job_list, smtp_job);

struct smtp_session; /* smtp_session.c */
TAILQ_HEAD(smtp_session_list, smtp_session);

struct smtp_listener; /* smtp.c */
struct smtp_tls;      /* smtp_tls.c */
struct smtp_auth_db;  /* smtp_auth.c */

/* What STARTTLS and AUTH need of one configured listener, loaded from its
 * files at start and at each reload (smtp.c); NULL where not configured.
 * Each session takes its own references at its start. */
struct smtp_lsec {
	struct smtp_tls *tls;
	struct smtp_auth_db *auth;
};

struct smtp_server {
	struct event_base *base;
	const struct cfg *cfg; /* borrowed (smtp.h) */
	struct spool *sp;      /* borrowed */
	smtp_committed_fn committed;
	void *committed_arg;
	struct metrics *metrics; /* borrowed, may be NULL */

	struct smtp_listener **lsn; /* bound listeners (smtp.c) */
	size_t nlsn;
	/* TLS and AUTH of cfg->listeners[i] (same index), or NULL before
	 * smtp_server_listen or smtp_server_set_cfg loaded them */
	struct smtp_lsec *lsec;
	size_t nlsec;
	int listening; /* smtp_server_listen succeeded, not shut down */

	struct smtp_session_list sessions; /* linked by smtp_session.c */
	size_t nsessions;
	unsigned long next_id;

	int shutting, freeing;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	struct event *shutdown_ev; /* calls shutdown_done on the loop */

	/* The commit pool: jobs go to todo, a thread commits, the job moves
	 * to done and done_ev wakes the loop, which calls each job's DONE. */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct smtp_job_list todo, done; /* under pool_lock */
	int pool_stop;                   /* under pool_lock */
	pthread_t threads[SMTP_COMMIT_THREADS];
	size_t nthreads;
	struct event *done_ev;
};

/* ---- smtp_parse.c: command syntax, for the sessions ---- */

#define SMTP_PATH_MAX  256 /* a path with its <> (RFC 5321 4.5.3.1.3) */
#define SMTP_HELO_MAX  255
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2 */

/* A path "<mailbox>" at P ("<>" too when NULL_OK): the mailbox (without
 * <> and without a source route, which is dropped) goes to OUT of OUTLEN,
 * *END points after the '>'.  The mailbox is local@domain, the local
 * part a dot-string or a quoted string, the domain labels or an address
 * literal, at most SMTP_PATH_MAX - 2 octets.  0 or -1 (OUT undefined). */
int smtp_parse_path(const char *p, const char **end, char *out, size_t outlen,
                    int null_ok);
/* The next "KEY[=VALUE]" of the space-separated parameter list at *PP,
 * split in place (*VAL is NULL without '=').  1, 0 at the end, -1 for a
 * bad keyword. */
int smtp_parse_param(char **pp, char **key, char **val);
/* Whether V is RFC 3461 xtext of 1 to MAX octets. */
int smtp_parse_xtext(const char *v, size_t max);
/* NOTIFY=: NEVER alone, or SUCCESS, FAILURE, DELAY each at most once; the
 * canonical form (capitals, that order) goes to OUT.  0 or -1. */
int smtp_parse_notify(const char *v, char *out, size_t outlen);
/* Whether V is ORCPT=addr-type;xtext of at most SMTP_ORCPT_MAX octets. */
int smtp_parse_orcpt(const char *v);
/* SIZE=: decimal digits; a value past UINTMAX_MAX is UINTMAX_MAX.  0 or
 * -1. */
int smtp_parse_size(const char *v, uintmax_t *out);
/* Whether P is an acceptable EHLO/HELO argument: 1 to SMTP_HELO_MAX
 * letters, digits and ".-_:[]" (a domain or an address literal). */
int smtp_parse_helo(const char *p);
/* The 9 octets a client is counted by for max_sessions_per_client: a
 * tag, then its IPv4 address (also from ::ffff:a.b.c.d) or the /64 of
 * its IPv6 address (one host can fill a /64 with addresses); zeros for
 * another family. */
struct sockaddr_storage;
void smtp_client_key(const struct sockaddr_storage *ss, unsigned char k[9]);

/* ---- smtp.c, for the sessions ---- */

/* One log line (log.h): "smimegate[PID]: smtp: " and FMT.  Never a
 * message body. */
void smtp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Hands JOB to a commit thread; its DONE is called on the loop thread. */
void smtp_pool_submit(struct smtp_server *srv, struct smtp_job *job);
/* A session has unlinked itself: the count drops, and the shutdown's DONE
 * is scheduled when it was the last. */
void smtp_server_session_closed(struct smtp_server *srv);

/* The TLS and AUTH of listener L of the server's configuration (NULL
 * when none is loaded for it). */
const struct smtp_lsec *smtp_server_lsec(const struct smtp_server *srv,
                                         const struct cfg_listener *l);

/* ---- smtp_tls.c: STARTTLS (loop thread only) ---- */

/* A server TLS context from CERT (a PEM certificate, or a chain with the
 * leaf first) and KEY (a PEM private key without passphrase): TLS 1.2 at
 * least, OpenSSL's default ciphers, no renegotiation.  Both files must be
 * readable and the key must match the certificate.  NULL with ERR naming
 * the file and the reason.  One reference, dropped by smtp_tls_free. */
struct smtp_tls *smtp_tls_new(const char *cert, const char *key, char *err,
                              size_t errlen);
/* Another reference to T (NULL stays NULL). */
struct smtp_tls *smtp_tls_ref(struct smtp_tls *t);
/* Drops a reference; the last frees.  NULL does nothing. */
void smtp_tls_free(struct smtp_tls *t);
/* A TLS server filter over UNDER, its handshake waiting for the client,
 * made with BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS: freeing it
 * frees UNDER.  Whatever UNDER's input holds is read as TLS: drain it
 * first.  NULL on failure; then UNDER is still the caller's, but its
 * callbacks must be set again. */
struct bufferevent *smtp_tls_wrap(struct smtp_tls *t, struct event_base *base,
                                  struct bufferevent *under);
/* The protocol ("TLSv1.3") and cipher of BEV's TLS connection: static
 * strings, "none" when there is none (yet). */
void smtp_tls_info(struct bufferevent *bev, const char **version,
                   const char **cipher);
/* Why BEV's TLS failed (OpenSSL's last error) into BUF. */
void smtp_tls_error(struct bufferevent *bev, char *buf, size_t len);
/* Sends close_notify once (after the last reply is encrypted). */
void smtp_tls_shutdown(struct bufferevent *bev);
/* Encrypted octets still waiting under BEV (0 for a plain one). */
size_t smtp_tls_pending(struct bufferevent *bev);

/* ---- smtp_auth.c: SMTP AUTH PLAIN ---- */

#define SMTP_AUTH_USER_MAX 255
#define SMTP_AUTH_PASS_MAX 255
#define SMTP_AUTH_RESP_MAX 512 /* decoded PLAIN response */

/* Loads the users file PATH (lines "user:hash", a hash crypt(3) knows
 * and does not call legacy: yescrypt "$y$", "$6$", "$5$", bcrypt ...;
 * '#' comments; at least one user, none twice).  NULL with ERR
 * "auth_users FILE:LINE: reason".  One reference. */
struct smtp_auth_db *smtp_auth_db_load(const char *path, char *err,
                                       size_t errlen);
struct smtp_auth_db *smtp_auth_db_ref(struct smtp_auth_db *db);
/* Drops a reference; the last frees (hashes wiped).  NULL does nothing. */
void smtp_auth_db_free(struct smtp_auth_db *db);

enum smtp_auth_plain {
	SMTP_AUTH_PLAIN_OK,
	SMTP_AUTH_PLAIN_BASE64,    /* not base64, or too long */
	SMTP_AUTH_PLAIN_MALFORMED, /* not authzid NUL user NUL password */
	SMTP_AUTH_PLAIN_AUTHZID    /* asks to act as another user */
};
/* Decodes a PLAIN response (RFC 4616; "=" is an empty one) into USER of
 * ULEN and PASS of PLEN octets (NUL-terminated, non-empty).  The outputs
 * are set only with SMTP_AUTH_PLAIN_OK; the caller wipes PASS. */
enum smtp_auth_plain smtp_auth_plain_decode(const char *b64, char *user,
                                            size_t ulen, char *pass,
                                            size_t plen);
/* IN made safe for a log field into OUT of LEN: at most 64 octets,
 * anything but printable ASCII (and '"', '\\', '=') as '?'. */
void smtp_auth_printable(const char *in, char *out, size_t len);

/* One password check, with its own copies of USER, PASS and the hash
 * (an unknown user is checked against a stand-in hash, and fails).  NULL
 * when out of memory or a field is too long. */
struct smtp_auth_check *smtp_auth_check_new(const struct smtp_auth_db *db,
                                            const char *user, const char *pass);
/* Runs crypt(3): on any thread (a smtp_job's WORK); wipes the password. */
void smtp_auth_check_run(void *check);
/* After the run: 1 accepted, 0 refused, -1 could not check. */
int smtp_auth_check_result(const struct smtp_auth_check *c);
const char *smtp_auth_check_user(const struct smtp_auth_check *c);
/* Wipes and frees; NULL does nothing. */
void smtp_auth_check_free(struct smtp_auth_check *c);
/* Whether USER may give SENDER (an address, "" for the null sender) at
 * MAIL: one of the addresses of its line's senders field, or an address
 * of one of its @domains (any case), or any with "*"; without that
 * field, only its own name, when the name is an address.  The null
 * sender is always allowed.  0 also for a user not (or no longer) in
 * DB. */
int smtp_auth_sender_ok(const struct smtp_auth_db *db, const char *user,
                        const char *sender);

/* ---- smtp_session.c, for the server ---- */

/* Points each live session at its listener in the server's (new)
 * configuration, found by name; NULL when the listener is gone (then
 * only the relay right decided at the session's start is left). */
void smtp_session_reload_all(struct smtp_server *srv);
/* Shutdown: idle sessions are told 421 and closed; busy ones are at the
 * end of their current command or message. */
void smtp_session_shutdown_all(struct smtp_server *srv);
/* Frees every session (the server is being freed; no job is in flight). */
void smtp_session_free_all(struct smtp_server *srv);
/* The "421 too busy" line (with CRLF) for a connection refused before it
 * became a session, into BUF; its length, 0 when it does not fit. */
size_t smtp_reply_busy(const char *hostname, char *buf, size_t len);

#endif /* SG_SMTP_INT_H */
