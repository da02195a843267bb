/*
 * smtp_session_auth.c - STARTTLS (RFC 3207) and AUTH PLAIN (RFC 4954,
 * 4616) of an ESMTP session (smtp_session.c has the rest; both share
 * smtp_session_int.h).
 *
 * STARTTLS discards whatever the client pipelined after it (no command
 * injection across the handshake) and starts the session over, as RFC
 * 3207 says.  AUTH is offered only inside TLS; the password is checked
 * on a commit thread (smtp_auth.c: a slow hash must not stall the event
 * loop), a failure is answered after SMTP_AUTH_DELAY seconds, and the
 * password never reaches a log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/daemon_dl.h"

#include "daemon/smtp_session_int.h"

/* ---- STARTTLS ---- */

int
check_starttls(struct smtp_session *s, struct smtp_args *a)
{
	if (s->starttls == CFG_STARTTLS_NONE) {
		ss_reply(s, R_NOT_IMPL, NULL);
		return -1;
	}
	if (s->in_tls) {
		ss_reply(s, R_BAD_SEQ, NULL);
		return -1;
	}
	if (ss_check_noargs(s, a) < 0)
		return -1;
	if (s->tls == NULL) { /* configured, but not loaded (tests) */
		ss_reply(s, R_TLS_UNAVAIL, NULL);
		return -1;
	}
	return 0;
}

void
proceed_starttls(struct smtp_session *s, struct smtp_args *a)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t junk = evbuffer_get_length(in);
	struct bufferevent *tbev;

	/* Anything after STARTTLS came in clear before the handshake: it
	 * is dropped, never read as a command under TLS (RFC 3207 4.2,
	 * CVE-2011-0411).  The TLS filter would take it as TLS records. */
	if (junk > 0) {
		evbuffer_drain(in, junk);
		ss_log(s, "event=starttls-pipelined discarded=%zu", junk);
	}
	s->scanned = 0;
	s->skip = 0;
	if ((tbev = smtp_tls_wrap(s->tls, s->srv->base, s->bev)) == NULL) {
		ss_set_bev(s, s->bev); /* its callbacks again */
		ss_log(s, "event=error op=starttls error=\"out of "
		          "memory\"");
		ss_reply(s, R_TLS_UNAVAIL, NULL);
		return;
	}
	ss_reply(s, R_STARTTLS, NULL); /* in clear: s->bev is the socket's */
	/* RFC 3207 4.2: as after the banner, the client must EHLO again */
	ss_tx_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	s->in_tls = 1;
	s->state = S_CONNECTED;
	ss_set_bev(s, tbev);
}

/* ---- AUTH ---- */

int
check_auth(struct smtp_session *s, struct smtp_args *a)
{
	char *mech = a->arg, *resp;

	if (!s->auth_on) {
		ss_reply(s, R_NOT_IMPL, NULL);
		return -1;
	}
	if (!s->in_tls) {
		ss_log(s, "event=auth-refused reason=cleartext");
		ss_reply(s, R_AUTH_ENCRYPT, NULL);
		return -1;
	}
	if (s->user != NULL) {
		ss_reply(s, R_AUTH_TWICE, NULL);
		return -1;
	}
	if ((resp = strchr(mech, ' ')) != NULL) {
		*resp++ = '\0';
		while (*resp == ' ')
			resp++;
	}
	if (*mech == '\0' || (resp && strchr(resp, ' ') != NULL)) {
		ss_reply(s, R_SYNTAX, NULL);
		return -1;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		ss_reply(s, R_AUTH_MECH, NULL);
		return -1;
	}
	if (s->auth_db == NULL) { /* configured, but not loaded (tests) */
		ss_reply(s, R_AUTH_TEMP, NULL);
		return -1;
	}
	a->arg = resp ? resp : mech + strlen(mech); /* "": no response yet */
	return 0;
}

/* A failed AUTH: the 535 comes after a pause (session_timer_cb). */
static void
auth_fail(struct smtp_session *s, const char *shown, const char *why)
{
	struct timeval tv = {SMTP_AUTH_DELAY, 0};

	ss_log(s, "event=auth-failed user=%s reason=%s", shown, why);
	s->state = S_PAUSE;
	evtimer_add(s->timer, &tv);
}

/* On the loop thread, after the password check. */
static void
auth_job_done(struct smtp_job *job, int cancelled)
{
	struct smtp_session *s = job->arg;
	struct smtp_auth_check *chk = job->work_arg;
	int r = smtp_auth_check_result(chk);
	char shown[72];

	s->job = NULL;
	free(job);
	if (cancelled || s->dead) {
		smtp_auth_check_free(chk);
		if (!cancelled)
			ss_free(s);
		return;
	}
	smtp_auth_printable(smtp_auth_check_user(chk), shown, sizeof(shown));
	s->state = S_HELO;
	if (r == 0) {
		auth_fail(s, shown, "credentials");
	} else if (r == 1 &&
	           (s->user = strdup(smtp_auth_check_user(chk))) != NULL) {
		s->may_relay = 1;
		ss_log(s, "event=auth user=%s mechanism=PLAIN relay=yes",
		       shown);
		ss_reply(s, R_AUTH_OK, NULL);
	} else {
		ss_log(s, "event=auth-error user=%s", shown);
		ss_reply(s, R_AUTH_TEMP, NULL);
	}
	smtp_auth_check_free(chk);
	if (s->state == S_HELO) {
		ss_arm_timer(s, s->lim.command_timeout);
		ss_process(s);
	}
}

/* The PLAIN response (the initial one, or the line after "334 "): off
 * to a commit thread for the password check. */
void
auth_response(struct smtp_session *s, const char *resp)
{
	char user[SMTP_AUTH_USER_MAX + 1], pass[SMTP_AUTH_PASS_MAX + 1];
	struct smtp_auth_check *chk = NULL;
	struct smtp_job *job = NULL;
	enum smtp_auth_plain rc;

	s->state = S_HELO;
	if (strcmp(resp, "*") == 0) {
		ss_reply(s, R_AUTH_CANCEL, NULL);
		return;
	}
	rc = smtp_auth_plain_decode(resp, user, sizeof(user), pass,
	                            sizeof(pass));
	if (rc == SMTP_AUTH_PLAIN_AUTHZID) {
		auth_fail(s, "", "authzid");
		return;
	}
	if (rc != SMTP_AUTH_PLAIN_OK) {
		ss_reply(s, R_AUTH_BASE64, NULL);
		return;
	}
	chk = smtp_auth_check_new(s->auth_db, user, pass);
	explicit_bzero(pass, sizeof(pass));
	if (chk == NULL || (job = calloc(1, sizeof(*job))) == NULL) {
		smtp_auth_check_free(chk);
		ss_reply(s, R_AUTH_TEMP, NULL);
		return;
	}
	job->work = smtp_auth_check_run;
	job->work_arg = chk;
	job->done = auth_job_done;
	job->arg = s;
	s->job = job;
	s->state = S_AUTH;
	evtimer_del(s->timer);
	smtp_pool_submit(s->srv, job);
}

void
proceed_auth(struct smtp_session *s, struct smtp_args *a)
{
	if (a->arg[0] == '\0') {
		s->state = S_AUTH_LINE;
		ss_reply(s, R_AUTH_CONT, NULL);
		return;
	}
	auth_response(s, a->arg);
}

/* The state machine: a command outside its STATES gets 503 5.5.1. */