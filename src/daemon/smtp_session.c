/*
 * smtp_session.c - one ESMTP session (RFC 5321 with PIPELINING 2920,
 * SIZE 1870, 8BITMIME 6152, ENHANCEDSTATUSCODES 2034/3463, DSN 3461):
 * the command table, the reply table, DATA, and the hand-over of a
 * finished message to a commit thread (smtp.c).  STARTTLS and AUTH are in
 * smtp_session_auth.c; what both files share is smtp_session_int.h.
 *
 * What it trusts: nothing the client says.  A command line is at most 512
 * octets with its CRLF; a DATA line at most max_line octets without it;
 * the message max_message octets; the recipients max_recipients; the
 * whole DATA phase data_timeout seconds and each command command_timeout
 * seconds; ten protocol errors end the session.  Replies wait in the
 * output buffer: past SMTP_OUTBUF_MAX no more commands are read, and the
 * input buffer has a high watermark, so a client that pipelines without
 * reading cannot grow either.  What it can reach: its bufferevent, the
 * spool_rx of the message being received, and its server (smtp_int.h).
 *
 * The state machine is a table (after OpenSMTPD's smtp_session.c): each
 * command names the states it is allowed in, a check step that parses
 * and validates its arguments into a struct smtp_args (and replies when
 * they are wrong), and a proceed step that acts on them.  Every reply is
 * a row of one table, replies[]; where a status applies (a spool failure,
 * a size limit) its code and enhanced code come from the status table.
 *
 * Lines.  A bare LF ends a command line as well as CRLF does: tolerated,
 * because a command line carries no message content and so cannot fake a
 * message boundary; a bare CR or a NUL in a command is refused.  In DATA
 * only CRLF ends a line, and only ".\r\n" right after a CRLF ends the
 * data (no SMTP smuggling: "\n.\r\n", "\r\n.\n", "\r.\r" are content).
 * A bare LF or CR anywhere in the data, a line over max_line or data over
 * max_message make the message refused once its real end has come (554,
 * 500 or 552), and nothing is committed.  Commands pipelined after the
 * end of data are read after the message's reply, in order.
 *
 * Relay: RCPT is accepted when the client may relay through the listener
 * (cfg_may_relay, decided once at the start), or, on an incoming
 * listener, when the domain is one of its local domains; else 554 5.7.1.
 * "<postmaster>" without a domain is refused like any address without one.
 *
 * Mail flow policies ([flow NAME], config.h) are matched at MAIL, on the
 * current configuration: the listener (none when a reload removed it),
 * the client's address, its HELO and the sender's domain.  The first
 * flow that matches decides for this transaction: reject is 550 5.7.1 at
 * MAIL (the session goes on; another sender may be tried); relay lets
 * RCPT go to any domain; accept only to the listener's local domains
 * (incoming listeners; on an outgoing one, nowhere), relay_from
 * notwithstanding, though an authenticated client still relays.  No
 * match: the listener's rules above.  Only an admin's "action = relay"
 * opens relaying to a client that relay_from and AUTH would refuse.  The
 * flow's name goes into the envelope (spool_env.flow).
 *
 * The bufferevent must not run its callbacks from inside a write (a
 * socket bufferevent, or any made with BEV_OPT_DEFER_CALLBACKS, as the
 * listeners and the tests' pairs are): a session is freed only from its
 * own top-level callbacks.
 *
 * STARTTLS (RFC 3207): offered in EHLO when the listener has a
 * certificate (tls = offer or required) and TLS is not up yet.  All I/O
 * goes through s->bev, whose callbacks and watermarks ss_set_bev()
 * installs: after "220 2.0.0" (in clear) the socket's bufferevent is
 * wrapped in a TLS filter (smtp_tls.c) and the session goes back to
 * S_CONNECTED with EHLO and the transaction forgotten.  Whatever the
 * client sent after STARTTLS in the same flight is dropped unread
 * (CVE-2011-0411: no command injected in clear may run inside TLS).
 * With tls = required, MAIL before STARTTLS gets 530 5.7.0.  The
 * Received: header says ESMTPS (RFC 3848), the queued line the protocol
 * and cipher.
 *
 * AUTH (RFC 4954, PLAIN of RFC 4616 only) exists on a listener with
 * auth = plain, and only inside TLS: in clear it is not advertised and
 * gets 538 5.7.11.  The response is one command line (SMTP_CMD_MAX), as
 * the initial response or after "334 ".  The password check (crypt(3),
 * slow on purpose) runs on a commit thread; a wrong password is answered
 * 535 5.7.8 after SMTP_AUTH_DELAY seconds, and counts as a protocol
 * error.  An authenticated client may relay, as one in relay_from: on an
 * outgoing listener that is what lets it have mail signed.
 */
#include "daemon/smtp.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon/daemon_dl.h"

#include "daemon/log.h"
#include "daemon/smtp_int.h"
#include "daemon/smtp_session_int.h"
#include "daemon/spool.h"
#include "policy/config.h"
#include "smimegate.h"

static const char *const state_names[] = {
    "connected", "helo",    "mail",      "rcpt", "data",
    "commit",    "closing", "auth-line", "auth", "pause"};

/* ---- replies ---- */

#define RF_HOST   0x01 /* our hostname before the text */
#define RF_CLOSE  0x02 /* the session ends after this reply */
#define RF_COUNT  0x04 /* a protocol error of the client */
#define RF_STATUS 0x08 /* code and enhanced code from the status table */

struct smtp_reply_row {
	int code;
	const char *enh; /* enhanced status code, NULL where RFC 2034 has
	                  * none (greeting, EHLO, 354) */
	const char *text;
	enum sg_status st; /* with RF_STATUS */
	unsigned flags;
};

static const struct smtp_reply_row replies[R__COUNT] = {
    [R_BANNER] = {220, NULL, "ESMTP smimegate", SG_OK, RF_HOST},
    [R_HELO] = {250, NULL, "Hello", SG_OK, RF_HOST},
    [R_EHLO_EXT] = {250, NULL, "", SG_OK, 0},
    [R_PLAIN_OK] = {250, "2.0.0", "Ok", SG_OK, 0},
    [R_MAIL_OK] = {250, "2.1.0", "Sender ok", SG_OK, 0},
    [R_RCPT_OK] = {250, "2.1.5", "Recipient ok", SG_OK, 0},
    [R_DATA] = {354, NULL, "End data with <CR><LF>.<CR><LF>", SG_OK, 0},
    [R_QUEUED] = {250, "2.0.0", "Ok: queued as", SG_OK, 0},
    [R_BYE] = {221, "2.0.0", "Bye", SG_OK, RF_CLOSE},
    [R_VRFY] = {252, "2.0.0",
                "Cannot VRFY user, but will accept message and attempt "
                "delivery",
                SG_OK, 0},
    [R_HELP] = {214, "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY "
                "HELP",
                SG_OK, 0},
    [R_BAD_SEQ] = {503, "5.5.1", "Bad sequence of commands", SG_OK, RF_COUNT},
    [R_NO_RCPT] = {554, "5.5.1", "No valid recipients", SG_OK, 0},
    [R_SYNTAX] = {501, "5.5.4", "Syntax error in parameters or arguments",
                  SG_OK, RF_COUNT},
    [R_HELO_SYNTAX] = {501, "5.5.4", "Syntax: EHLO domain or address literal",
                       SG_OK, RF_COUNT},
    [R_MAIL_SYNTAX] = {501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]",
                       SG_OK, RF_COUNT},
    [R_RCPT_SYNTAX] = {501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]",
                       SG_OK, RF_COUNT},
    [R_FROM_ADDR] = {501, "5.1.7", "Bad sender address syntax", SG_OK,
                     RF_COUNT},
    [R_RCPT_ADDR] = {501, "5.1.3", "Bad recipient address syntax", SG_OK,
                     RF_COUNT},
    [R_PARAM] = {555, "5.5.4", "Unsupported parameter", SG_OK, RF_COUNT},
    [R_UNKNOWN] = {500, "5.5.2", "Command not recognized", SG_OK, RF_COUNT},
    [R_CMD_TOO_LONG] = {500, "5.5.2", "Line too long", SG_OK, RF_COUNT},
    [R_CMD_BAD_CHAR] = {500, "5.5.2", "Bad character in command", SG_OK,
                        RF_COUNT},
    [R_SIZE] = {0, NULL, "Message size exceeds fixed maximum message size",
                SG_ERR_LIMIT, RF_STATUS},
    [R_TOO_MANY_RCPTS] = {452, "4.5.3", "Too many recipients", SG_OK, 0},
    [R_RELAY_DENIED] = {554, "5.7.1", "Relay access denied", SG_OK, 0},
    [R_DATA_TOO_LONG] = {500, "5.5.0", "Line too long in message data", SG_OK,
                         0},
    [R_BARE_EOL] = {554, "5.6.0", "Bare CR or LF not allowed in message data",
                    SG_OK, 0},
    [R_BUSY] = {421, "4.3.2", "Too many sessions, try again later", SG_OK,
                RF_HOST | RF_CLOSE},
    [R_CLIENT_BUSY] = {421, "4.7.0",
                       "Too many connections from your address, try again "
                       "later",
                       SG_OK, RF_HOST | RF_CLOSE},
    [R_TIMEOUT] = {421, "4.4.2", "Timeout, closing connection", SG_OK,
                   RF_HOST | RF_CLOSE},
    [R_SHUTDOWN] = {421, "4.3.2", "Shutting down, try again later", SG_OK,
                    RF_HOST | RF_CLOSE},
    [R_TOO_MANY_ERRORS] = {421, "4.7.0", "Too many errors, closing connection",
                           SG_OK, RF_HOST | RF_CLOSE},
    [R_INTERNAL] = {421, "4.3.0", "Internal error, closing connection", SG_OK,
                    RF_HOST | RF_CLOSE},
    [R_STARTTLS] = {220, "2.0.0", "Ready to start TLS", SG_OK, 0},
    [R_TLS_FIRST] = {530, "5.7.0", "Must issue a STARTTLS command first", SG_OK,
                     RF_COUNT},
    [R_TLS_UNAVAIL] = {454, "4.7.0",
                       "TLS not available due to temporary "
                       "reason",
                       SG_OK, 0},
    [R_NOT_IMPL] = {502, "5.5.1", "Command not implemented", SG_OK, RF_COUNT},
    [R_AUTH_OK] = {235, "2.7.0", "Authentication successful", SG_OK, 0},
    [R_AUTH_CONT] = {334, NULL, "", SG_OK, 0},
    [R_AUTH_ENCRYPT] = {538, "5.7.11",
                        "Encryption required for requested authentication "
                        "mechanism",
                        SG_OK, RF_COUNT},
    [R_AUTH_MECH] = {504, "5.5.4", "Unrecognized authentication type", SG_OK,
                     RF_COUNT},
    [R_AUTH_FAILED] = {535, "5.7.8", "Authentication credentials invalid",
                       SG_OK, RF_COUNT},
    [R_AUTH_CANCEL] = {501, "5.0.0", "Authentication cancelled", SG_OK,
                       RF_COUNT},
    [R_AUTH_BASE64] = {501, "5.5.2", "Cannot decode response", SG_OK, RF_COUNT},
    [R_AUTH_TWICE] = {503, "5.5.1", "Already authenticated", SG_OK, RF_COUNT},
    [R_SENDER_LOGIN] = {553, "5.7.1",
                        "Sender address not owned by the authenticated "
                        "user",
                        SG_OK, 0},
    [R_AUTH_TEMP] = {454, "4.7.0", "Temporary authentication failure", SG_OK,
                     0},
    [R_FLOW_REJECT] = {550, "5.7.1", "Sender refused by mail flow policy",
                       SG_OK, 0},
};

/* The EHLO keywords (RFC 5321 4.1.1.1); proceed_ehlo adds STARTTLS and
 * AUTH where they apply. */
static const char *const ehlo_ext[] = {
    "PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN",
};

/* ---- the session ---- */

static void session_close(struct smtp_session *s);

void
ss_log(struct smtp_session *s, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	smtp_log("session=%lu client=%s %s", s->id, s->client, line);
}

void
ss_arm_timer(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {(time_t)seconds, 0};

	evtimer_add(s->timer, &tv);
}

static void
reply_line(struct smtp_session *s, int code, char sep, const char *enh,
           const char *host, const char *text, const char *arg)
{
	if (s->dead)
		return;
	evbuffer_add_printf(bufferevent_get_output(s->bev),
	                    "%d%c%s%s%s%s%s%s%s\r\n", code, sep, enh ? enh : "",
	                    enh ? " " : "", host ? host : "", host ? " " : "",
	                    text, arg && *text ? " " : "", arg ? arg : "");
}

static void
reply_sep(struct smtp_session *s, enum smtp_reply r, char sep, const char *arg)
{
	const struct smtp_reply_row *row = &replies[r];
	int code = row->code;
	const char *enh = row->enh;

	if (row->flags & RF_STATUS) {
		code = sg_status_smtp_code(row->st);
		enh = sg_status_enhanced(row->st);
	}
	reply_line(s, code, sep, enh, row->flags & RF_HOST ? s->hostname : NULL,
	           row->text, arg);
}

/* Sends reply R (with ARG after its text); closes the session after the
 * rows that say so, and after too many protocol errors. */
void
ss_reply(struct smtp_session *s, enum smtp_reply r, const char *arg)
{
	reply_sep(s, r, ' ', arg);
	if (replies[r].flags & RF_CLOSE) {
		session_close(s);
	} else if ((replies[r].flags & RF_COUNT) &&
	           ++s->errors >= SMTP_MAX_ERRORS) {
		ss_log(s, "event=too-many-errors errors=%d", s->errors);
		metrics_inc(s->srv->metrics, METRICS_REJECTED_TOO_MANY_ERRORS);
		ss_reply(s, R_TOO_MANY_ERRORS, NULL);
	}
}

/* A status's reply, from the status table. */
static void
reply_status(struct smtp_session *s, enum sg_status st)
{
	reply_line(s, sg_status_smtp_code(st), ' ', sg_status_enhanced(st),
	           NULL, sg_status_text(st), NULL);
}

/* ---- transaction ---- */

void
ss_tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	free(tx->from);
	for (size_t i = 0; i < tx->nrcpts; i++) {
		free(tx->rcpts[i]);
		free(tx->notify[i]);
		free(tx->orcpt[i]);
	}
	free(tx->rcpts);
	free(tx->notify);
	free(tx->orcpt);
	free(tx->ret);
	free(tx->envid);
	free(tx->flow);
	spool_rx_abort(tx->rx);
	memset(tx, 0, sizeof(*tx));
}

/* ---- the Received: header ---- */

static void
rfc5322_date(time_t t, char *buf, size_t len)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
	                                "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
	                                   "May", "Jun", "Jul", "Aug",
	                                   "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	long off;

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         off < 0 ? '-' : '+', labs(off) / 60 % 100, labs(off) % 60);
}

/* RFC 5321 4.4; "for" only with one recipient (their list is private). */
static enum sg_status
write_received(struct smtp_session *s, struct spool_rx *rx)
{
	char date[64], *hdr;
	enum sg_status st;
	const char *with;
	int n;

	/* RFC 3848: ESMTPS with TLS, ESMTPSA when authenticated too */
	with = !s->esmtp   ? "SMTP"
	       : s->in_tls ? (s->user ? "ESMTPSA" : "ESMTPS")
	                   : (s->user ? "ESMTPA" : "ESMTP");
	rfc5322_date(time(NULL), date, sizeof(date));
	n = asprintf(&hdr,
	             "Received: from %s (%s)\r\n"
	             "\tby %s (smimegate) with %s id %s%s%s%s;\r\n"
	             "\t%s\r\n",
	             s->helo, s->client, s->hostname, with, spool_rx_id(rx),
	             s->tx.nrcpts == 1 ? "\r\n\tfor <" : "",
	             s->tx.nrcpts == 1 ? s->tx.rcpts[0] : "",
	             s->tx.nrcpts == 1 ? ">" : "", date);
	if (n < 0)
		return SG_ERR_NOMEM;
	st = spool_rx_write(rx, hdr, (size_t)n);
	free(hdr);
	return st;
}

/* ---- commands ---- */

int
ss_check_noargs(struct smtp_session *s, struct smtp_args *a)
{
	if (a->arg[0] != '\0') {
		ss_reply(s, R_SYNTAX, NULL);
		return -1;
	}
	return 0;
}

static int
check_helo(struct smtp_session *s, struct smtp_args *a)
{
	if (!smtp_parse_helo(a->arg)) {
		ss_reply(s, R_HELO_SYNTAX, NULL);
		return -1;
	}
	return 0;
}

static void
greet(struct smtp_session *s, struct smtp_args *a, int esmtp)
{
	char *helo;

	if ((helo = strdup(a->arg)) == NULL) {
		reply_status(s, SG_ERR_NOMEM);
		return;
	}
	ss_tx_reset(s);
	free(s->helo);
	s->helo = helo;
	s->esmtp = esmtp;
	s->state = S_HELO;
}

static void
proceed_helo(struct smtp_session *s, struct smtp_args *a)
{
	greet(s, a, 0);
	if (s->state == S_HELO)
		ss_reply(s, R_HELO, s->helo);
}

static void
proceed_ehlo(struct smtp_session *s, struct smtp_args *a)
{
	const char *v[sizeof(ehlo_ext) / sizeof(*ehlo_ext) + 2];
	size_t n = 0;
	char kw[64];

	greet(s, a, 1);
	if (s->state != S_HELO)
		return;
	for (size_t i = 0; i < sizeof(ehlo_ext) / sizeof(*ehlo_ext); i++)
		v[n++] = ehlo_ext[i];
	if (s->tls != NULL && !s->in_tls)
		v[n++] = "STARTTLS";
	if (s->auth_on && s->auth_db != NULL && s->in_tls)
		v[n++] = "AUTH PLAIN"; /* never in clear */
	reply_sep(s, R_HELO, '-', s->helo);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i], "SIZE") == 0)
			snprintf(kw, sizeof(kw), "SIZE %zu",
			         s->lim.max_message);
		else
			snprintf(kw, sizeof(kw), "%s", v[i]);
		reply_sep(s, R_EHLO_EXT, i + 1 < n ? '-' : ' ', kw);
	}
}

/* The start of MAIL and RCPT: KEYWORD ("FROM:", "TO:"), optional spaces,
 * the path into a->addr (NULL_OK: "<>" allowed); *REST points at the
 * parameters.  0, or -1 after the reply. */
static int
command_path(struct smtp_session *s, struct smtp_args *a, const char *keyword,
             int null_ok, enum smtp_reply syntax, enum smtp_reply bad_addr,
             char **rest)
{
	size_t n = strlen(keyword);
	const char *end;

	if (strncasecmp(a->arg, keyword, n) != 0) {
		ss_reply(s, syntax, NULL);
		return -1;
	}
	for (end = a->arg + n; *end == ' '; end++)
		;
	if (smtp_parse_path(end, &end, a->addr, sizeof(a->addr), null_ok) < 0) {
		ss_reply(s, bad_addr, NULL);
		return -1;
	}
	if (*end != '\0' && *end != ' ') {
		ss_reply(s, R_SYNTAX, NULL);
		return -1;
	}
	*rest = (char *)end;
	return 0;
}

static const char *const flow_actions[] = {"none", "accept", "relay", "reject"};

/* The mail flow policy for the sender in a->addr (a->flow), logged once
 * for the transaction; a reject flow is answered here.  0, or -1 after
 * the reply. */
static int
mail_flow(struct smtp_session *s, struct smtp_args *a)
{
	const char *at = strrchr(a->addr, '@');
	const struct cfg_flow *f;

	if (s->listener == NULL) /* gone in a reload: no flow is its */
		return 0;
	f = cfg_flow_match(s->srv->cfg, s->lname,
	                   s->has_peer ? (const struct sockaddr *)&s->peer
	                               : NULL,
	                   s->helo, at != NULL ? at + 1 : NULL);
	if (f == NULL)
		return 0;
	ss_log(s, "event=flow flow=%s action=%s from=<%s>", f->name,
	       flow_actions[f->action], LOG_ADDR(a->addr));
	if (f->action == CFG_FLOW_REJECT) {
		metrics_inc(s->srv->metrics, METRICS_REJECTED_OTHER);
		ss_reply(s, R_FLOW_REJECT, f->name);
		return -1;
	}
	a->flow = f;
	return 0;
}

static int
check_mail(struct smtp_session *s, struct smtp_args *a)
{
	char *p, *key, *val;
	unsigned seen = 0;
	int r;

	if (s->starttls == CFG_STARTTLS_REQUIRED && !s->in_tls) {
		ss_log(s, "event=refused reason=no-starttls");
		ss_reply(s, R_TLS_FIRST, NULL);
		return -1;
	}
	if (command_path(s, a, "FROM:", 1, R_MAIL_SYNTAX, R_FROM_ADDR, &p) < 0)
		return -1;
	while ((r = smtp_parse_param(&p, &key, &val)) > 0) {
		unsigned bit;

		if (strcasecmp(key, "SIZE") == 0) {
			bit = 1;
			if (smtp_parse_size(val, &a->size) < 0)
				goto syntax;
			a->has_size = 1;
		} else if (strcasecmp(key, "BODY") == 0) {
			bit = 2;
			if (val == NULL || (strcasecmp(val, "7BIT") != 0 &&
			                    strcasecmp(val, "8BITMIME") != 0))
				goto syntax;
		} else if (strcasecmp(key, "RET") == 0) {
			bit = 4;
			if (val && strcasecmp(val, "FULL") == 0)
				a->ret = "FULL";
			else if (val && strcasecmp(val, "HDRS") == 0)
				a->ret = "HDRS";
			else
				goto syntax;
		} else if (strcasecmp(key, "ENVID") == 0) {
			bit = 8;
			if (val == NULL ||
			    !smtp_parse_xtext(val, SMTP_ENVID_MAX))
				goto syntax;
			snprintf(a->envid, sizeof(a->envid), "%s", val);
		} else {
			ss_reply(s, R_PARAM, NULL);
			return -1;
		}
		if (seen & bit)
			goto syntax;
		seen |= bit;
	}
	if (r < 0)
		goto syntax;
	if (a->has_size && a->size > s->lim.max_message) {
		ss_log(s, "event=refused reason=size declared=%ju max=%zu",
		       a->size, s->lim.max_message);
		metrics_inc(s->srv->metrics, METRICS_REJECTED_TOO_BIG);
		ss_reply(s, R_SIZE, NULL);
		return -1;
	}
	/* An authenticated user gives only its own senders: the gateway
	 * signs as the sender, so nobody signs as somebody else. */
	if (s->user != NULL &&
	    !smtp_auth_sender_ok(s->auth_db, s->user, a->addr)) {
		ss_log(s, "event=sender-refused user=%s from=<%s>", s->user,
		       LOG_ADDR(a->addr));
		metrics_inc(s->srv->metrics, METRICS_REJECTED_OTHER);
		ss_reply(s, R_SENDER_LOGIN, NULL);
		return -1;
	}
	return mail_flow(s, a);
syntax:
	ss_reply(s, R_SYNTAX, NULL);
	return -1;
}

static void
proceed_mail(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_tx *tx = &s->tx;

	tx->from = strdup(a->addr);
	tx->ret = a->ret ? strdup(a->ret) : NULL;
	tx->envid = a->envid[0] ? strdup(a->envid) : NULL;
	tx->flow = a->flow ? strdup(a->flow->name) : NULL;
	tx->flow_action = a->flow ? a->flow->action : 0;
	if (tx->from == NULL || (a->ret && tx->ret == NULL) ||
	    (a->envid[0] && tx->envid == NULL) ||
	    (a->flow && tx->flow == NULL)) {
		ss_tx_reset(s);
		reply_status(s, SG_ERR_NOMEM);
		return;
	}
	s->state = S_MAIL;
	ss_reply(s, R_MAIL_OK, NULL);
}

/* Whether RCPT to DOMAIN is allowed: by the transaction's flow, else by
 * the listener (relay_from or AUTH, or a local domain of an incoming
 * listener). */
static int
rcpt_allowed(const struct smtp_session *s, const char *domain)
{
	int local = s->role == CFG_INCOMING && s->listener != NULL &&
	            cfg_is_local_domain(s->listener, domain);

	switch (s->tx.flow_action) {
	case CFG_FLOW_RELAY:
		return 1;
	case CFG_FLOW_ACCEPT: /* relay_from does not count, AUTH does */
		return local || s->user != NULL;
	default:
		return local || s->may_relay;
	}
}

static int
check_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	char *p, *key, *val;
	unsigned seen = 0;
	int r;

	if (command_path(s, a, "TO:", 0, R_RCPT_SYNTAX, R_RCPT_ADDR, &p) < 0)
		return -1;
	while ((r = smtp_parse_param(&p, &key, &val)) > 0) {
		unsigned bit;

		if (strcasecmp(key, "NOTIFY") == 0) {
			bit = 1;
			if (val == NULL ||
			    smtp_parse_notify(val, a->notify,
			                      sizeof(a->notify)) < 0)
				goto syntax;
		} else if (strcasecmp(key, "ORCPT") == 0) {
			/* kept as received (xtext), for the next hop and
			 * for a DSN's Original-Recipient */
			bit = 2;
			if (val == NULL || !smtp_parse_orcpt(val))
				goto syntax;
			snprintf(a->orcpt, sizeof(a->orcpt), "%s", val);
		} else {
			ss_reply(s, R_PARAM, NULL);
			return -1;
		}
		if (seen & bit)
			goto syntax;
		seen |= bit;
	}
	if (r < 0)
		goto syntax;
	a->domain = strrchr(a->addr, '@') + 1;
	if (!rcpt_allowed(s, a->domain)) {
		ss_log(s, "event=relay-denied rcpt=<%s>%s%s", LOG_ADDR(a->addr),
		       s->tx.flow ? " flow=" : "",
		       s->tx.flow ? s->tx.flow : "");
		metrics_inc(s->srv->metrics, METRICS_REJECTED_RELAY_DENIED);
		ss_reply(s, R_RELAY_DENIED, NULL);
		return -1;
	}
	if (s->tx.nrcpts >= s->lim.max_recipients) {
		ss_reply(s, R_TOO_MANY_RCPTS, NULL);
		return -1;
	}
	return 0;
syntax:
	ss_reply(s, R_SYNTAX, NULL);
	return -1;
}

static void
proceed_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_tx *tx = &s->tx;
	char *rcpt, *notify = NULL, *orcpt = NULL;

	for (size_t i = 0; i < tx->nrcpts; i++) {
		if (strcmp(tx->rcpts[i], a->addr) == 0) {
			ss_reply(s, R_RCPT_OK, NULL); /* once is enough */
			return;
		}
	}
	if (tx->nrcpts + 1 >= tx->cap) {
		size_t cap = tx->cap ? tx->cap * 2 : 8;
		char **r = realloc(tx->rcpts, cap * sizeof(*r));
		if (r == NULL)
			goto nomem;
		tx->rcpts = r;
		r = realloc(tx->notify, cap * sizeof(*r));
		if (r == NULL)
			goto nomem;
		tx->notify = r;
		r = realloc(tx->orcpt, cap * sizeof(*r));
		if (r == NULL)
			goto nomem;
		tx->orcpt = r;
		tx->cap = cap;
	}
	if ((rcpt = strdup(a->addr)) == NULL)
		goto nomem;
	if ((a->notify[0] && (notify = strdup(a->notify)) == NULL) ||
	    (a->orcpt[0] && (orcpt = strdup(a->orcpt)) == NULL)) {
		free(rcpt);
		free(notify);
		goto nomem;
	}
	tx->rcpts[tx->nrcpts] = rcpt;
	tx->notify[tx->nrcpts] = notify;
	tx->orcpt[tx->nrcpts] = orcpt;
	tx->nrcpts++;
	tx->rcpts[tx->nrcpts] = NULL;
	tx->notify[tx->nrcpts] = NULL;
	tx->orcpt[tx->nrcpts] = NULL;
	tx->any_notify |= notify != NULL;
	tx->any_orcpt |= orcpt != NULL;
	s->state = S_RCPT;
	ss_reply(s, R_RCPT_OK, NULL);
	return;
nomem:
	reply_status(s, SG_ERR_NOMEM);
}

static int
check_data(struct smtp_session *s, struct smtp_args *a)
{
	if (ss_check_noargs(s, a) < 0)
		return -1;
	if (s->state != S_RCPT) {
		ss_reply(s, R_NO_RCPT, NULL);
		return -1;
	}
	return 0;
}

static void
proceed_data(struct smtp_session *s, struct smtp_args *a)
{
	struct spool_rx *rx;
	enum sg_status st;

	if ((st = spool_rx_begin(s->srv->sp, &rx)) != SG_OK) {
		ss_log(s, "event=spool-error status=%s", sg_status_name(st));
		metrics_inc(s->srv->metrics, METRICS_REJECTED_SPOOL_ERROR);
		reply_status(s, st);
		return;
	}
	if ((st = write_received(s, rx)) != SG_OK) {
		ss_log(s, "event=spool-error qid=%s status=%s", spool_rx_id(rx),
		       sg_status_name(st));
		metrics_inc(s->srv->metrics, METRICS_REJECTED_SPOOL_ERROR);
		spool_rx_abort(rx);
		reply_status(s, st);
		return;
	}
	s->tx.rx = rx;
	s->tx.size = 0;
	s->tx.errs = 0;
	s->tx.bol = 1;
	s->state = S_DATA;
	ss_arm_timer(s, s->lim.data_timeout);
	ss_reply(s, R_DATA, NULL);
}

static void
proceed_rset(struct smtp_session *s, struct smtp_args *a)
{
	ss_tx_reset(s);
	if (s->state != S_CONNECTED)
		s->state = S_HELO;
	ss_reply(s, R_PLAIN_OK, NULL);
}

static void
proceed_noop(struct smtp_session *s, struct smtp_args *a)
{
	ss_reply(s, R_PLAIN_OK, NULL);
}

static void
proceed_quit(struct smtp_session *s, struct smtp_args *a)
{
	ss_reply(s, R_BYE, NULL);
}

static int
check_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	if (a->arg[0] == '\0') {
		ss_reply(s, R_SYNTAX, NULL);
		return -1;
	}
	return 0;
}

static void
proceed_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	ss_reply(s, R_VRFY, NULL);
}

static void
proceed_help(struct smtp_session *s, struct smtp_args *a)
{
	ss_reply(s, R_HELP, NULL);
}

static const struct smtp_cmd {
	const char *verb;
	unsigned states;
	int (*check)(struct smtp_session *, struct smtp_args *);
	void (*proceed)(struct smtp_session *, struct smtp_args *);
} commands[] = {
    {"EHLO", ST_CMD, check_helo, proceed_ehlo},
    {"HELO", ST_CMD, check_helo, proceed_helo},
    {"MAIL", ST(S_HELO), check_mail, proceed_mail},
    {"RCPT", ST(S_MAIL) | ST(S_RCPT), check_rcpt, proceed_rcpt},
    {"DATA", ST(S_MAIL) | ST(S_RCPT), check_data, proceed_data},
    {"RSET", ST_CMD, ss_check_noargs, proceed_rset},
    {"NOOP", ST_CMD, NULL, proceed_noop},
    {"QUIT", ST_CMD, ss_check_noargs, proceed_quit},
    {"VRFY", ST_CMD, check_vrfy, proceed_vrfy},
    {"HELP", ST_CMD, NULL, proceed_help},
    {"STARTTLS", ST(S_CONNECTED) | ST(S_HELO), check_starttls,
     proceed_starttls},
    {"AUTH", ST(S_HELO), check_auth, proceed_auth},
};

static void
session_command(struct smtp_session *s, char *line)
{
	const struct smtp_cmd *c = NULL;
	struct smtp_args a;
	char *arg, *e;

	if ((arg = strchr(line, ' ')) != NULL) {
		*arg++ = '\0';
		while (*arg == ' ')
			arg++;
		for (e = arg + strlen(arg); e > arg && e[-1] == ' '; e--)
			;
		*e = '\0';
	} else {
		arg = line + strlen(line);
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcasecmp(line, commands[i].verb) == 0)
			c = &commands[i];
	if (c == NULL) {
		ss_reply(s, R_UNKNOWN, NULL);
		return;
	}
	if (s->srv->shutting && c->proceed != proceed_quit) {
		ss_reply(s, R_SHUTDOWN, NULL);
		return;
	}
	if (!(c->states & ST(s->state))) {
		ss_reply(s, R_BAD_SEQ, NULL);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.arg = arg;
	if (c->check && c->check(s, &a) < 0)
		return;
	c->proceed(s, &a);
}

/* ---- reading ---- */

/* The offset of the first LF in the first WIN octets of IN, or -1;
 * *SCANNED remembers how far there is none, so that a long line
 * arriving in pieces is searched once. */
static ev_ssize_t
find_lf(struct evbuffer *in, size_t *scanned, size_t win)
{
	size_t len = evbuffer_get_length(in);
	size_t lim = len < win ? len : win;
	struct evbuffer_ptr start, end, pos;

	if (*scanned >= lim)
		return -1;
	if (evbuffer_ptr_set(in, &start, *scanned, EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_ptr_set(in, &end, lim, EVBUFFER_PTR_SET) < 0)
		return -1;
	pos = evbuffer_search_range(in, "\n", 1, &start, &end);
	if (pos.pos < 0) {
		*scanned = lim;
		return -1;
	}
	return pos.pos;
}

/* A command line into LINE (SMTP_CMD_MAX + 1 octets), without its end.
 * 1: a line; 0: none complete yet; -1: input consumed and answered. */
static int
read_command(struct smtp_session *s, char *line)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	ev_ssize_t lf = find_lf(in, &s->scanned, SMTP_CMD_MAX);
	size_t n, len;

	if (lf < 0) {
		if (evbuffer_get_length(in) < SMTP_CMD_MAX)
			return 0;
		evbuffer_drain(in, SMTP_CMD_MAX);
		s->scanned = 0;
		if (!s->skip) {
			s->skip = 1;
			ss_log(s, "event=line-too-long phase=command");
			metrics_inc(s->srv->metrics,
			            METRICS_REJECTED_LINE_TOO_LONG);
			ss_reply(s, R_CMD_TOO_LONG, NULL);
		}
		return -1;
	}
	n = (size_t)lf + 1;
	s->scanned = 0;
	if (s->skip) {
		evbuffer_drain(in, n);
		s->skip = 0;
		return -1;
	}
	evbuffer_remove(in, line, n);
	len = n - 1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) || memchr(line, '\r', len)) {
		ss_reply(s, R_CMD_BAD_CHAR, NULL);
		return -1;
	}
	line[len] = '\0';
	return 1;
}

static void
data_fail(struct smtp_session *s, unsigned why, enum sg_status st)
{
	if (why == DERR_IO && !(s->tx.errs & DERR_IO))
		s->tx.io_st = st;
	s->tx.errs |= why;
}

/*
 * Consumes DATA lines: unstuffed, CRLF, to the spool.  1 at the end of
 * data (".\r\n" right after a CRLF, and nothing else), 0 when more input
 * is needed, -1 when the input cannot be read (out of memory).
 */
static int
data_consume(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtp_tx *tx = &s->tx;
	size_t win = (size_t)s->lim.max_line + 2;

	for (;;) {
		ev_ssize_t lf = find_lf(in, &s->scanned, win);
		const unsigned char *p;
		size_t n, body, off;
		int crlf;

		if (lf < 0) {
			if (evbuffer_get_length(in) < win)
				return 0;
			/* No LF in max_line + CRLF octets.  Drop all but
			 * the last octet (a CR whose LF may come next); the
			 * rest of the line is not at a line start. */
			data_fail(s, DERR_LONG, SG_OK);
			evbuffer_drain(in, win - 1);
			s->scanned = 0;
			tx->bol = 0;
			continue;
		}
		n = (size_t)lf + 1;
		if ((p = evbuffer_pullup(in, (ev_ssize_t)n)) == NULL)
			return -1;
		crlf = n >= 2 && p[n - 2] == '\r';
		body = n - (crlf ? 2 : 1);
		if (tx->bol && crlf && body == 1 && p[0] == '.') {
			evbuffer_drain(in, n);
			s->scanned = 0;
			return 1;
		}
		if (!crlf || memchr(p, '\r', body) != NULL)
			data_fail(s, DERR_BARE_EOL, SG_OK);
		if (body > s->lim.max_line)
			data_fail(s, DERR_LONG, SG_OK);
		off = tx->bol && p[0] == '.';
		if (tx->errs == 0) {
			enum sg_status st;

			if (n - off > s->lim.max_message - tx->size)
				data_fail(s, DERR_SIZE, SG_OK);
			else if ((st = spool_rx_write(tx->rx, p + off,
			                              n - off)) != SG_OK)
				data_fail(s, DERR_IO, st);
			else
				tx->size += n - off;
		}
		tx->bol = crlf;
		evbuffer_drain(in, n);
		s->scanned = 0;
	}
}

/* ---- commit ---- */

void
ss_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	TAILQ_REMOVE(&srv->sessions, s, entry);
	ss_tx_reset(s);
	if (s->timer)
		event_free(s->timer);
	if (s->bev) {
		struct bufferevent *u = bufferevent_get_underlying(s->bev);

		/* a pair tells its partner (a socket has nothing to do),
		 * under a TLS filter too */
		bufferevent_flush(s->bev, EV_WRITE, BEV_FINISHED);
		if (u != NULL)
			bufferevent_flush(u, EV_WRITE, BEV_FINISHED);
		bufferevent_free(s->bev); /* and the socket's under it */
	}
	ss_log(s, "event=close messages=%u", s->nmsgs);
	free(s->helo);
	free(s->hostname);
	free(s->lname);
	free(s->user);
	smtp_tls_free(s->tls);
	smtp_auth_db_free(s->auth_db);
	free(s);
	smtp_server_session_closed(srv);
}

/* On the loop thread, after the commit: the reply, then what the client
 * pipelined meanwhile. */
static void
session_job_done(struct smtp_job *job, int cancelled)
{
	struct smtp_session *s = job->arg;
	struct smtp_server *srv = s->srv;

	s->job = NULL;
	if (job->status == SG_OK) {
		s->nmsgs++;
		ss_log(s,
		       "event=queued qid=%s from=<%s> nrcpt=%zu size=%zu "
		       "tls=%s%s%s%s%s%s%s",
		       job->env.id, LOG_ADDR(job->env.mail_from),
		       job->env.nrcpts, s->commit_size,
		       s->tls_version ? s->tls_version : "no",
		       s->tls_version ? "/" : "",
		       s->tls_version ? s->tls_cipher : "",
		       s->user ? " user=" : "", s->user ? s->user : "",
		       job->env.flow ? " flow=" : "",
		       job->env.flow ? job->env.flow : "");
		metrics_inc(srv->metrics, METRICS_MESSAGES_RECEIVED);
		if (!cancelled && srv->committed)
			srv->committed(&job->env, srv->committed_arg);
		if (!cancelled)
			ss_reply(s, R_QUEUED, job->env.id);
	} else {
		ss_log(s, "event=commit-failed qid=%s status=%s", job->env.id,
		       sg_status_name(job->status));
		metrics_inc(srv->metrics, METRICS_REJECTED_SPOOL_ERROR);
		if (!cancelled)
			reply_status(s, job->status);
	}
	spool_env_clear(&job->env);
	free(job);
	if (cancelled)
		return;
	if (s->dead) {
		ss_free(s);
		return;
	}
	s->state = S_HELO;
	ss_arm_timer(s, s->lim.command_timeout);
	ss_process(s);
}

/* The envelope of the finished transaction, moved into ENV. */
static enum sg_status
tx_to_env(struct smtp_session *s, struct spool_env *env)
{
	struct smtp_tx *tx = &s->tx;

	memset(env, 0, sizeof(*env));
	env->mail_from = tx->from;
	env->rcpts = tx->rcpts;
	env->nrcpts = tx->nrcpts;
	if (tx->any_notify) {
		env->dsn_notify = tx->notify;
	} else {
		free(tx->notify);
	}
	if (tx->any_orcpt) {
		env->dsn_orcpt = tx->orcpt;
	} else {
		free(tx->orcpt);
	}
	env->dsn_ret = tx->ret;
	env->dsn_envid = tx->envid;
	env->flow = tx->flow;
	tx->from = tx->ret = tx->envid = tx->flow = NULL;
	tx->rcpts = tx->notify = tx->orcpt = NULL;
	tx->nrcpts = tx->cap = 0;
	env->role = (int)s->role;
	env->received = time(NULL);
	env->listener = strdup(s->lname);
	env->client = strdup(s->client);
	env->helo = strdup(s->helo);
	if (env->listener == NULL || env->client == NULL || env->helo == NULL)
		return SG_ERR_NOMEM;
	return SG_OK;
}

static void
session_commit(struct smtp_session *s)
{
	struct smtp_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    tx_to_env(s, &job->env) != SG_OK) {
		if (job)
			spool_env_clear(&job->env);
		free(job);
		ss_tx_reset(s);
		s->state = S_HELO;
		ss_arm_timer(s, s->lim.command_timeout);
		reply_status(s, SG_ERR_NOMEM);
		return;
	}
	job->rx = s->tx.rx;
	s->tx.rx = NULL;
	s->commit_size = s->tx.size;
	ss_tx_reset(s); /* what is left of it: counters */
	job->done = session_job_done;
	job->arg = s;
	s->job = job;
	s->state = S_COMMIT;
	evtimer_del(s->timer);
	smtp_pool_submit(s->srv, job);
}

/* The end of data: refused (nothing committed), or off to commit. */
static void
data_end(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	static const struct {
		unsigned bit;
		enum smtp_reply r;
		const char *why;
	} refusals[] = {
	    {DERR_BARE_EOL, R_BARE_EOL, "bare-cr-or-lf"},
	    {DERR_LONG, R_DATA_TOO_LONG, "line-too-long"},
	    {DERR_SIZE, R_SIZE, "size"},
	    {DERR_IO, R__COUNT, "spool-error"},
	};

	evtimer_del(s->timer);
	if (tx->errs == 0) {
		session_commit(s);
		return;
	}
	for (size_t i = 0; i < sizeof(refusals) / sizeof(*refusals); i++) {
		if (!(tx->errs & refusals[i].bit))
			continue;
		ss_log(s, "event=refused qid=%s reason=%s from=<%s>",
		       spool_rx_id(tx->rx), refusals[i].why,
		       LOG_ADDR(tx->from));
		metrics_inc(s->srv->metrics,
		            metrics_rejected_by_reason(refusals[i].why));
		if (refusals[i].r == R__COUNT)
			reply_status(s, tx->io_st);
		else
			ss_reply(s, refusals[i].r, NULL);
		break;
	}
	ss_tx_reset(s);
	if (s->state == S_DATA) {
		s->state = S_HELO;
		ss_arm_timer(s, s->lim.command_timeout);
	}
}

/* ---- the loop ---- */

/* Reads and answers whatever complete input there is, in order, until
 * the session waits: for input, for a commit, for replies to drain. */
void
ss_process(struct smtp_session *s)
{
	char line[SMTP_CMD_MAX + 1];
	struct evbuffer *out;
	int r;

	if (s->in_process || s->dead)
		return;
	s->in_process = 1;
	while (s->state != S_CLOSING && s->state != S_COMMIT &&
	       s->state != S_AUTH && s->state != S_PAUSE) {
		out = bufferevent_get_output(s->bev); /* STARTTLS swaps it */
		if (evbuffer_get_length(out) >= SMTP_OUTBUF_MAX) {
			s->out_blocked = 1;
			break;
		}
		if (s->state == S_DATA) {
			if ((r = data_consume(s)) == 0)
				break;
			if (r < 0) {
				ss_log(s, "event=error op=read");
				ss_reply(s, R_INTERNAL, NULL);
				break;
			}
			data_end(s);
			continue;
		}
		if ((r = read_command(s, line)) == 0) {
			if (s->srv->shutting)
				ss_reply(s, R_SHUTDOWN, NULL);
			break;
		}
		if (r > 0 && s->state == S_AUTH_LINE)
			auth_response(s, line);
		else if (r > 0)
			session_command(s, line);
		else if (s->state == S_AUTH_LINE)
			s->state = S_HELO; /* too long or bad: answered */
		if ((r > 0 || !s->skip) &&
		    (ST(s->state) & (ST_CMD | ST(S_AUTH_LINE))))
			ss_arm_timer(s, s->lim.command_timeout);
	}
	explicit_bzero(line, sizeof(line)); /* it may have held a password */
	s->in_process = 0;
}

/* Whether the last replies have left: the output is empty and, under
 * TLS, encrypted, followed by close_notify, and written to the socket
 * (whose drain sends no callback here: session_close polls). */
static int
session_drained(struct smtp_session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return 0;
	if (!s->in_tls)
		return 1;
	smtp_tls_shutdown(s->bev);
	return smtp_tls_pending(s->bev) == 0;
}

/* The last reply is written: the session ends when it has drained (or
 * after a grace period, for a client that does not read). */
static void
session_close(struct smtp_session *s)
{
	struct timeval tv = {SMTP_CLOSE_GRACE, 0};
	struct timeval poll = {0, SMTP_CLOSE_POLL * 1000};

	if (s->state == S_CLOSING)
		return;
	s->state = S_CLOSING;
	s->close_by = time(NULL) + SMTP_CLOSE_GRACE;
	ss_tx_reset(s);
	bufferevent_disable(s->bev, EV_READ);
	evtimer_add(s->timer, s->in_tls ? &poll : &tv);
	if (session_drained(s))
		event_active(s->timer, EV_TIMEOUT, 1);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	ss_process(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == S_CLOSING) {
		if (session_drained(s))
			ss_free(s);
		return;
	}
	if (s->out_blocked) {
		s->out_blocked = 0;
		ss_process(s);
	}
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char why[256];

	if ((what & BEV_EVENT_CONNECTED) && s->in_tls) {
		smtp_tls_info(bev, &s->tls_version, &s->tls_cipher);
		ss_log(s, "event=starttls version=%s cipher=%s", s->tls_version,
		       s->tls_cipher);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) ||
	    s->dead) /* told once; a job in flight frees it */
		return;
	if (s->in_tls && (what & BEV_EVENT_ERROR)) {
		smtp_tls_error(bev, why, sizeof(why));
		ss_log(s, "event=tls-error phase=%s error=\"%s\"",
		       s->tls_version ? "session" : "handshake", why);
	}
	if (s->state != S_CLOSING)
		ss_log(s, "event=lost state=%s", state_names[s->state]);
	s->dead = 1;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	if (s->job == NULL)
		ss_free(s);
	/* else session_job_done frees it */
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct timeval poll = {0, SMTP_CLOSE_POLL * 1000};

	switch (s->state) {
	case S_CLOSING:
		if (s->in_tls && !session_drained(s) &&
		    time(NULL) < s->close_by) {
			evtimer_add(s->timer, &poll);
			return;
		}
		ss_free(s);
		return;
	case S_COMMIT:
	case S_AUTH:
		return;
	case S_PAUSE:
		s->state = S_HELO;
		ss_reply(s, R_AUTH_FAILED, NULL);
		if (s->state == S_HELO) {
			ss_arm_timer(s, s->lim.command_timeout);
			ss_process(s);
		}
		return;
	case S_DATA:
		ss_log(s, "event=timeout phase=data qid=%s",
		       spool_rx_id(s->tx.rx));
		break;
	default:
		ss_log(s, "event=timeout phase=command");
		break;
	}
	metrics_inc(s->srv->metrics, METRICS_REJECTED_TIMEOUT);
	ss_reply(s, R_TIMEOUT, NULL);
}

/* Installs BEV as the session's transport (STARTTLS will call it again
 * with a TLS filter). */
void
ss_set_bev(struct smtp_session *s, struct bufferevent *bev)
{
	size_t hi = (size_t)s->lim.max_line + 3;

	s->bev = bev;
	bufferevent_setcb(bev, session_read_cb, session_write_cb,
	                  session_event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0,
	                         hi > SMTP_INBUF_MIN ? hi : SMTP_INBUF_MIN);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static const struct cfg_listener *
find_listener(const struct cfg *cfg, const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nlisteners; i++)
		if (cfg->listeners[i].name &&
		    strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	return NULL;
}

/* How many sessions are open from the client of S (S not counted). */
static size_t
client_sessions(const struct smtp_server *srv, const struct smtp_session *s)
{
	unsigned char mine[9], other[9];
	const struct smtp_session *t;
	size_t n = 0;

	smtp_client_key(&s->peer, mine);
	TAILQ_FOREACH(t, &srv->sessions, entry)
	{
		if (t == s || !t->has_peer)
			continue;
		smtp_client_key(&t->peer, other);
		n += memcmp(mine, other, sizeof(mine)) == 0;
	}
	return n;
}

int
smtp_session_start(struct smtp_server *srv, const struct cfg_listener *l,
                   struct bufferevent *bev, const struct sockaddr *peer,
                   socklen_t peerlen)
{
	struct smtp_session *s;
	const char *host =
	    srv->cfg && srv->cfg->hostname ? srv->cfg->hostname : "localhost";
	const struct smtp_lsec *sec;
	size_t n;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->srv = srv;
	smtp_limits_get(srv->cfg, &s->lim);
	s->hostname = strdup(host);
	s->lname = strdup(l->name ? l->name : "");
	s->timer = evtimer_new(srv->base, session_timer_cb, s);
	if (s->hostname == NULL || s->lname == NULL || s->timer == NULL)
		goto fail;
	s->id = ++srv->next_id;
	s->listener = l;
	s->role = l->role;
	s->may_relay = cfg_may_relay(l, peer);
	s->starttls = cfg_listener_starttls(l);
	s->auth_on = l->auth == CFG_AUTH_PLAIN;
	if ((sec = smtp_server_lsec(srv, l)) != NULL) {
		s->tls = smtp_tls_ref(sec->tls);
		s->auth_db = smtp_auth_db_ref(sec->auth);
	}
	if (peer == NULL ||
	    getnameinfo(peer, peerlen, s->client, sizeof(s->client), NULL, 0,
	                NI_NUMERICHOST) != 0)
		snprintf(s->client, sizeof(s->client), "unknown");
	if (peer != NULL && peerlen > 0 && (size_t)peerlen <= sizeof(s->peer)) {
		memcpy(&s->peer, peer, (size_t)peerlen);
		s->has_peer = 1;
	}
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsessions++;
	ss_set_bev(s, bev);
	ss_log(s, "event=connect listener=%s relay=%s", s->lname,
	       s->may_relay ? "yes" : "no");
	metrics_inc(srv->metrics, METRICS_SESSIONS_ACCEPTED);
	if (srv->shutting) {
		ss_reply(s, R_SHUTDOWN, NULL);
	} else if (srv->nsessions > s->lim.max_sessions) {
		ss_log(s, "event=busy sessions=%zu", srv->nsessions);
		metrics_inc(srv->metrics, METRICS_REJECTED_BUSY);
		ss_reply(s, R_BUSY, NULL);
	} else if (!s->may_relay && s->has_peer &&
	           (n = client_sessions(srv, s)) >=
	               s->lim.max_client_sessions) {
		/* one client may not take every session (relay_from, our
		 * own servers, may) */
		ss_log(s, "event=busy reason=client-limit sessions=%zu", n);
		metrics_inc(srv->metrics, METRICS_REJECTED_CLIENT_LIMIT);
		ss_reply(s, R_CLIENT_BUSY, NULL);
	} else {
		s->state = S_CONNECTED;
		ss_reply(s, R_BANNER, NULL);
		ss_arm_timer(s, s->lim.command_timeout);
	}
	return 0;
fail:
	if (s) {
		if (s->timer)
			event_free(s->timer);
		free(s->hostname);
		free(s->lname);
		free(s);
	}
	bufferevent_free(bev);
	return -1;
}

void
smtp_session_reload_all(struct smtp_server *srv)
{
	struct smtp_session *s;

	TAILQ_FOREACH(s, &srv->sessions, entry)
	s->listener = find_listener(srv->cfg, s->lname);
}

void
smtp_session_shutdown_all(struct smtp_server *srv)
{
	struct smtp_session *s;

	/* an idle session reads no command and hears 421; one busy with a
	 * command or a message gets there when it is done */
	TAILQ_FOREACH(s, &srv->sessions, entry)
	ss_process(s);
}

void
smtp_session_free_all(struct smtp_server *srv)
{
	struct smtp_session *s;

	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		ss_free(s);
}

size_t
smtp_reply_busy(const char *hostname, char *buf, size_t len)
{
	const struct smtp_reply_row *row = &replies[R_BUSY];
	int n;

	n = snprintf(buf, len, "%d %s %s %s\r\n", row->code, row->enh,
	             hostname ? hostname : "localhost", row->text);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}
