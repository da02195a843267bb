/*
 * smtp_int.h - private to the SMTP server, the two files of one component:
 * smtp.c (listeners, the session count, the commit pool, reload and
 * shutdown, the log line) and smtp_session.c (the protocol).  Nothing
 * else includes it.
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

#include <event2/event.h>

#include "daemon/smtp.h"
#include "daemon/spool.h"
#include "policy/config.h"

#define SMTP_COMMIT_THREADS 2 /* fsync is the bottleneck, not the CPU */

/* The limits of a session, from the configuration at its start (a zero
 * in the configuration means the default below). */
struct smtp_limits {
	size_t max_message;       /* octets of client data */
	unsigned max_recipients;  /* per message */
	unsigned max_line;        /* octets of a DATA line without CRLF */
	unsigned max_sessions;    /* concurrent sessions */
	unsigned command_timeout; /* seconds to send a whole command */
	unsigned data_timeout;    /* seconds for the whole DATA phase */
};
#define SMTP_DEF_MAX_MESSAGE     (10u << 20)
#define SMTP_DEF_MAX_RECIPIENTS  100u
#define SMTP_DEF_MAX_LINE        998u
#define SMTP_MAX_MAX_LINE        (1u << 20)
#define SMTP_DEF_MAX_SESSIONS    100u
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
};
TAILQ_HEAD(smtp_job_list, smtp_job);

struct smtp_session; /* smtp_session.c */
TAILQ_HEAD(smtp_session_list, smtp_session);

struct smtp_listener; /* smtp.c */

struct smtp_server {
	struct event_base *base;
	const struct cfg *cfg; /* borrowed (smtp.h) */
	struct spool *sp;      /* borrowed */
	smtp_committed_fn committed;
	void *committed_arg;

	struct smtp_listener **lsn; /* bound listeners (smtp.c) */
	size_t nlsn;
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

/* ---- smtp.c, for the sessions ---- */

/* One log line on stderr: "smimegate[PID]: smtp: " and FMT.  Never a
 * message body. */
void smtp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Hands JOB to a commit thread; its DONE is called on the loop thread. */
void smtp_pool_submit(struct smtp_server *srv, struct smtp_job *job);
/* A session has unlinked itself: the count drops, and the shutdown's DONE
 * is scheduled when it was the last. */
void smtp_server_session_closed(struct smtp_server *srv);

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
