/*
 * smtp_session_int.h - the insides of one ESMTP session, shared by
 * smtp_session.c (the state machine, the commands of a transaction, DATA,
 * the commit) and smtp_session_auth.c (STARTTLS and AUTH).  Not for other
 * files: they use smtp.h and smtp_int.h.
 */
#ifndef SG_SMTP_SESSION_INT_H
#define SG_SMTP_SESSION_INT_H

#include <netdb.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon/daemon_dl.h"

#include "daemon/smtp_int.h"
#include "daemon/spool.h"
#include "policy/config.h"
#include "smimegate.h"

#define SMTP_CMD_MAX     512 /* a command line with its CRLF */
#define SMTP_OUTBUF_MAX  (64u << 10)
#define SMTP_INBUF_MIN   (64u << 10)
#define SMTP_MAX_ERRORS  10
#define SMTP_CLOSE_GRACE 10 /* seconds to flush the last reply */
#define SMTP_CLOSE_POLL  50 /* ms: checking that TLS output left */
#define SMTP_AUTH_DELAY  2  /* seconds before a 535 */

enum smtp_state {
	S_CONNECTED, /* banner sent, no EHLO/HELO yet */
	S_HELO,      /* greeted, no transaction */
	S_MAIL,      /* MAIL accepted */
	S_RCPT,      /* and at least one RCPT */
	S_DATA,      /* reading the message */
	S_COMMIT,    /* the message is with a commit thread */
	S_CLOSING,   /* the last reply is being flushed */
	S_AUTH_LINE, /* "334 " sent: the next line is the AUTH response */
	S_AUTH,      /* a password is being checked on a commit thread */
	S_PAUSE      /* a failed AUTH waits before its 535 */
};

#define ST(s)  (1u << (s))
#define ST_CMD (ST(S_CONNECTED) | ST(S_HELO) | ST(S_MAIL) | ST(S_RCPT))

enum smtp_reply {
	R_BANNER,
	R_HELO,
	R_EHLO_EXT,
	R_PLAIN_OK, /* not R_OK: <unistd.h> has that */
	R_MAIL_OK,
	R_RCPT_OK,
	R_DATA,
	R_QUEUED,
	R_BYE,
	R_VRFY,
	R_HELP,
	R_BAD_SEQ,
	R_NO_RCPT,
	R_SYNTAX,
	R_HELO_SYNTAX,
	R_MAIL_SYNTAX,
	R_RCPT_SYNTAX,
	R_FROM_ADDR,
	R_RCPT_ADDR,
	R_PARAM,
	R_UNKNOWN,
	R_CMD_TOO_LONG,
	R_CMD_BAD_CHAR,
	R_SIZE,
	R_TOO_MANY_RCPTS,
	R_RELAY_DENIED,
	R_DATA_TOO_LONG,
	R_BARE_EOL,
	R_BUSY,
	R_CLIENT_BUSY,
	R_TIMEOUT,
	R_SHUTDOWN,
	R_TOO_MANY_ERRORS,
	R_INTERNAL,
	R_STARTTLS,
	R_TLS_FIRST,
	R_TLS_UNAVAIL,
	R_NOT_IMPL,
	R_AUTH_OK,
	R_AUTH_CONT,
	R_AUTH_ENCRYPT,
	R_AUTH_MECH,
	R_AUTH_FAILED,
	R_AUTH_CANCEL,
	R_AUTH_BASE64,
	R_AUTH_TWICE,
	R_SENDER_LOGIN,
	R_AUTH_TEMP,
	R_FLOW_REJECT,
	R__COUNT
};

/* Why a message is refused at its end (data_end picks the first). */
#define DERR_BARE_EOL 0x01
#define DERR_LONG     0x02
#define DERR_SIZE     0x04
#define DERR_IO       0x08

/* A transaction: MAIL, RCPT, DATA.  Every pointer is owned. */
struct smtp_tx {
	char *from;    /* "" for <> */
	char **rcpts;  /* NULL-terminated */
	char **notify; /* parallel to rcpts: NOTIFY= or NULL */
	char **orcpt;  /* parallel to rcpts: ORCPT= or NULL */
	size_t nrcpts, cap;
	int any_notify, any_orcpt;
	char *ret, *envid; /* MAIL RET= and ENVID= (xtext as received) */
	struct spool_rx *rx;
	size_t size;          /* client octets after unstuffing */
	unsigned errs;        /* DERR_* */
	enum sg_status io_st; /* with DERR_IO */
	int bol;              /* the last data line ended with CRLF */
	char *flow;           /* the mail flow policy matched at MAIL */
	enum cfg_flow_action flow_action; /* its action; 0: none matched */
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	struct smtp_server *srv;
	unsigned long id;
	struct bufferevent *bev;
	struct event *timer; /* command, DATA and closing deadlines */
	enum smtp_state state;

	/* fixed at the start (a reload does not change them) */
	struct smtp_limits lim;
	char *hostname;
	char *lname; /* the listener's name */
	enum cfg_role role;
	int may_relay;
	char client[NI_MAXHOST];
	struct sockaddr_storage peer; /* the client's address ... */
	int has_peer;                 /* ... when known */
	/* the listener in the server's current configuration, or NULL */
	const struct cfg_listener *listener;
	/* STARTTLS and AUTH, fixed at the start too */
	enum cfg_starttls starttls;
	struct smtp_tls *tls;         /* a reference, or NULL: no STARTTLS */
	int auth_on;                  /* the listener has auth = plain */
	struct smtp_auth_db *auth_db; /* a reference, or NULL */
	int in_tls;                   /* after STARTTLS: s->bev is TLS */
	const char *tls_version;      /* after the handshake (static) */
	const char *tls_cipher;
	char *user;      /* authenticated as, or NULL */
	time_t close_by; /* S_CLOSING under TLS: free by then at the latest */

	char *helo;
	int esmtp;
	struct smtp_tx tx;
	struct smtp_job *job; /* with a commit thread */
	size_t scanned;       /* input octets known to hold no LF */
	int skip;             /* dropping the rest of an overlong command */
	int errors;           /* RF_COUNT replies so far */
	int dead;             /* the connection is gone */
	int in_process;
	int out_blocked;    /* waiting for replies to drain */
	size_t commit_size; /* of the message with the commit thread */
	unsigned nmsgs;
};

/* What a check step hands its proceed step. */
struct smtp_args {
	char *arg; /* after the verb, without surrounding spaces */
	char addr[SMTP_PATH_MAX];
	const char *domain; /* in addr */
	uintmax_t size;
	int has_size;
	const char *ret; /* "FULL", "HDRS" or NULL */
	char envid[SMTP_ENVID_MAX + 1];
	char notify[32];
	char orcpt[SMTP_ORCPT_MAX + 1];
	const struct cfg_flow *flow; /* MAIL: the matching flow, or NULL */
};

/* smtp_session.c, for smtp_session_auth.c */
void ss_log(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The deadline of the current state: SECONDS from now. */
void ss_arm_timer(struct smtp_session *s, unsigned seconds);
/* Queues reply R (ARG fills its %s) and counts protocol errors. */
void ss_reply(struct smtp_session *s, enum smtp_reply r, const char *arg);
void ss_tx_reset(struct smtp_session *s);
int ss_check_noargs(struct smtp_session *s, struct smtp_args *a);
/* Reads and runs what the client sent, as far as the state allows. */
void ss_process(struct smtp_session *s);
void ss_free(struct smtp_session *s);
/* BEV becomes the session's (after STARTTLS: the TLS filter). */
void ss_set_bev(struct smtp_session *s, struct bufferevent *bev);

/* smtp_session_auth.c: the STARTTLS and AUTH commands (check and proceed
 * steps of the command table), and the line that answers a "334 ". */
int check_starttls(struct smtp_session *s, struct smtp_args *a);
void proceed_starttls(struct smtp_session *s, struct smtp_args *a);
int check_auth(struct smtp_session *s, struct smtp_args *a);
void proceed_auth(struct smtp_session *s, struct smtp_args *a);
void auth_response(struct smtp_session *s, const char *resp);

#endif /* SG_SMTP_SESSION_INT_H */
