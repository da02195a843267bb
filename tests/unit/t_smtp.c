/*
 * t_smtp.c - the ESMTP server, driven over bufferevent pairs (no
 * sockets) with a real spool in a temporary directory and a hand-built
 * configuration.  Each case is a script: what the client writes, and the
 * reply codes it must get back, in order; then how many messages the
 * spool holds (refused ones: none) and, for accepted ones, their bytes.
 * Cases that must be refused sit next to the ones that must pass.
 */
#include "unit.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "daemon/daemon_dl.h"
#include "daemon/smtp.h"
#include "daemon/smtp_int.h" /* smtp_auth_*: the component's own parts */
#include "daemon/spool.h"
#include "policy/config.h"

#define MAXQ 8

/* ---- fixture: a loop, a spool, a configuration, a server ---- */

struct fx {
	char dir[64];
	struct event_base *base;
	struct spool *sp;
	struct cfg cfg;
	struct cfg_listener lst[2]; /* 0: outgoing, 1: incoming */
	struct cfg_net loopback;
	char *local[2];
	struct smtp_server *srv;
	char qid[MAXQ][SPOOL_ID_LEN + 1]; /* from the committed callback */
	size_t nq;
	int shutdown_done;
};

static void
committed_cb(const struct spool_env *env, void *arg)
{
	struct fx *f = arg;

	if (f->nq < MAXQ)
		snprintf(f->qid[f->nq], sizeof(f->qid[0]), "%s", env->id);
	f->nq++;
}

/* The configuration a test starts from; TUNE may change it before the
 * server is made. */
static void
fx_cfg(struct fx *f)
{
	static const unsigned char net127[4] = {127, 0, 0, 0};

	memset(&f->cfg, 0, sizeof(f->cfg));
	f->loopback.family = AF_INET;
	memcpy(f->loopback.addr, net127, 4);
	f->loopback.prefix = 8;
	f->local[0] = "local.test";
	f->local[1] = NULL;
	f->lst[0] = (struct cfg_listener){.name = "out",
	                                  .host = "127.0.0.1",
	                                  .port = 0,
	                                  .role = CFG_OUTGOING,
	                                  .relay_from = &f->loopback,
	                                  .nrelay_from = 1};
	f->lst[1] = (struct cfg_listener){.name = "in",
	                                  .host = "127.0.0.1",
	                                  .port = 0,
	                                  .role = CFG_INCOMING,
	                                  .relay_from = &f->loopback,
	                                  .nrelay_from = 1,
	                                  .local_domains = f->local};
	f->cfg.hostname = "mx.test";
	f->cfg.max_message = 1000;
	f->cfg.max_recipients = 3;
	f->cfg.max_line = 100;
	f->cfg.max_sessions = 8;
	f->cfg.command_timeout = 5;
	f->cfg.data_timeout = 10;
	f->cfg.listeners = f->lst;
	f->cfg.nlisteners = 2;
}

static int
fx_start(struct fx *f)
{
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/t_smtp_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	evthread_use_pthreads(); /* the commit threads wake the loop */
	f->base = event_base_new();
	if (f->base == NULL ||
	    spool_open(f->dir, &f->sp, err, sizeof(err)) != SG_OK)
		return -1;
	f->srv = smtp_server_new(f->base, &f->cfg, f->sp, committed_cb, f);
	return f->srv ? 0 : -1;
}

static void fx_spin(struct fx *f, int ms);

/* Freed bufferevents are finalized by the loop: it runs once more
 * before the base goes. */
static void
fx_clear(struct fx *f)
{
	if (f->base)
		fx_spin(f, 10);
	smtp_server_free(f->srv);
	if (f->base)
		fx_spin(f, 10);
	spool_close(f->sp);
	if (f->base)
		event_base_free(f->base);
	if (f->dir[0])
		unit_rm_tree(f->dir);
}

/* ---- a client: one end of a pair ---- */

struct conn {
	struct fx *f;
	struct bufferevent *bev;
	char codes[512]; /* the final reply lines' codes: "220 250 354" */
	char text[8192]; /* every reply line */
	int nfinal;
	int closed;
	int tls_up; /* the client's TLS handshake is done */
};

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	char *line;
	size_t n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n,
	                               EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		size_t tl = strlen(c->text);
		snprintf(c->text + tl, sizeof(c->text) - tl, "%s\n", line);
		if (n >= 3 && (n == 3 || line[3] == ' ')) {
			size_t cl = strlen(c->codes);
			snprintf(c->codes + cl, sizeof(c->codes) - cl, "%s%.3s",
			         cl ? " " : "", line);
			c->nfinal++;
		}
		free(line);
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		c->closed = 1;
}

/* A session of listener L from address PEER. */
static int
conn_open(struct fx *f, struct conn *c, int l, const char *peer)
{
	struct bufferevent *pair[2];
	struct sockaddr_in sin;

	memset(c, 0, sizeof(*c));
	c->f = f;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	if (inet_pton(AF_INET, peer, &sin.sin_addr) != 1)
		return -1;
	if (bufferevent_pair_new(
	        f->base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS,
	        pair) < 0)
		return -1;
	c->bev = pair[1];
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return smtp_session_start(f->srv, &f->cfg.listeners[l], pair[0],
	                          (struct sockaddr *)&sin, sizeof(sin));
}

static void
conn_close(struct conn *c)
{
	if (c->bev) {
		struct bufferevent *u = bufferevent_get_underlying(c->bev);

		bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
		if (u != NULL) /* under a TLS filter */
			bufferevent_flush(u, EV_WRITE, BEV_FINISHED);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until C has NFINAL final replies (or is closed, when
 * CLOSED), or MS milliseconds have passed. */
static void
conn_wait(struct conn *c, int nfinal, int closed, int ms)
{
	int expired = 0;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *ev = evtimer_new(c->f->base, deadline_cb, &expired);

	evtimer_add(ev, &tv);
	while (!expired && !(closed ? c->closed : c->nfinal >= nfinal))
		event_base_loop(c->f->base, EVLOOP_ONCE);
	event_free(ev);
}

/* Lets the loop run for MS milliseconds. */
static void
fx_spin(struct fx *f, int ms)
{
	struct conn dummy;

	memset(&dummy, 0, sizeof(dummy));
	dummy.f = f;
	conn_wait(&dummy, 1, 0, ms);
}

static void
conn_send(struct conn *c, const char *s, size_t n)
{
	bufferevent_write(c->bev, s, n);
}

/* ---- scripts ---- */

struct step {
	const char *send;   /* NULL: send nothing */
	const char *expect; /* codes of the final replies; "" none */
};

struct script {
	int listener; /* 0 outgoing, 1 incoming */
	const char *peer;
	const struct step *steps; /* ends with {NULL, NULL} */
	int closes;               /* the server ends the session */
	size_t commits;           /* messages in the spool afterwards */
	const char *body; /* the last message after its Received:, or NULL */
};

static int
ncodes(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += (s[0] != ' ' && (s[1] == ' ' || s[1] == '\0'));
	return n;
}

/* Runs one step; on a mismatch, says which. */
static void
run_step(struct conn *c, const struct step *st, int i)
{
	size_t off = strlen(c->codes);
	int want = c->nfinal + ncodes(st->expect);
	const char *got;

	if (st->send)
		conn_send(c, st->send, strlen(st->send));
	if (ncodes(st->expect) == 0)
		conn_wait(c, want + 1, 0, 200); /* nothing may come */
	else
		conn_wait(c, want, 0, 5000);
	got = c->codes + off;
	if (*got == ' ')
		got++;
	if (strcmp(got, st->expect) != 0) {
		char shown[48] = "(nothing)";
		size_t k;

		for (k = 0; st->send && st->send[k] && k < sizeof(shown) - 1;
		     k++)
			shown[k] = st->send[k] == '\r' || st->send[k] == '\n'
			               ? '~'
			               : st->send[k];
		if (st->send)
			shown[k] = '\0';
		fprintf(stderr,
		        "  step %d: sent \"%s\" expected [%s] got [%s]\n", i,
		        shown, st->expect, got);
		CHECK(strcmp(got, st->expect) == 0);
	}
}

/* The data of committed message ID. */
static char *
spool_data(struct fx *f, const char *id, size_t *len)
{
	int fd = spool_data_fd(f->sp, id);
	char *buf = calloc(1, 65536);
	ssize_t n;

	*len = 0;
	if (fd < 0 || buf == NULL) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + *len, 65535 - *len)) > 0)
		*len += (size_t)n;
	close(fd);
	return buf;
}

/* Checks the last committed message: our Received: header (for HELO
 * and CLIENT), then exactly BODY. */
static void
check_message(struct fx *f, const char *helo, const char *client,
              const char *body)
{
	char *data, *p, want[256];
	size_t len;

	CHECK(f->nq > 0);
	if (f->nq == 0)
		return;
	data = spool_data(f, f->qid[(f->nq - 1) % MAXQ], &len);
	CHECK(data != NULL);
	if (data == NULL)
		return;
	snprintf(want, sizeof(want),
	         "Received: from %s (%s)\r\n\tby mx.test "
	         "(smimegate) with ",
	         helo, client);
	CHECK(strncmp(data, want, strlen(want)) == 0);
	CHECK(strstr(data, f->qid[(f->nq - 1) % MAXQ]) != NULL);
	/* the header ends at the first CRLF not followed by a tab */
	for (p = data; (p = strstr(p, "\r\n")) != NULL && p[2] == '\t'; p += 2)
		;
	CHECK(p != NULL);
	if (p) {
		p += 2;
		CHECK_EQ(len - (size_t)(p - data), strlen(body));
		CHECK(memcmp(p, body, strlen(body)) == 0);
	}
	free(data);
}

static void
run_script_in(struct fx *f, const struct script *sc)
{
	struct conn c;

	CHECK_EQ(conn_open(f, &c, sc->listener, sc->peer), 0);
	for (int i = 0; sc->steps[i].send || sc->steps[i].expect; i++)
		run_step(&c, &sc->steps[i], i);
	if (sc->closes) {
		conn_wait(&c, 0, 1, 3000);
		CHECK(c.closed);
	}
	conn_close(&c);
	fx_spin(f, 20);
	CHECK_EQ(smtp_server_sessions(f->srv), 0);
	CHECK_EQ(spool_count(f->sp), sc->commits);
	CHECK_EQ(f->nq, sc->commits);
	if (sc->body)
		check_message(f, "client.example", sc->peer, sc->body);
}

static void
run_script(const struct script *sc)
{
	struct fx f;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	if (f.srv)
		run_script_in(&f, sc);
	fx_clear(&f);
}

#define EHLO "EHLO client.example\r\n"
#define FROM "MAIL FROM:<alice@example.org>\r\n"
#define TO   "RCPT TO:<bob@example.net>\r\n"
#define END                                                                    \
	{                                                                      \
		NULL, NULL                                                     \
	}

/* ---- the cases ---- */

static void
t_transaction(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO, "250"},
	    {FROM, "250"},
	    {TO, "250"},
	    {"DATA\r\n", "354"},
	    {"Subject: hi\r\n\r\nline one\r\n..dot line\r\n.\r\n", "250"},
	    {"QUIT\r\n", "221"},
	    END};
	static const struct script sc = {
	    0, "127.0.0.1", steps,
	    1, 1,           "Subject: hi\r\n\r\nline one\r\n.dot line\r\n"};
	run_script(&sc);
}

static void
t_pipelining(void)
{
	/* everything in one write; what follows the end of data is read
	 * after its reply, in order */
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM TO "RCPT TO:<carol@example.net>\r\nDATA\r\n",
	     "250 250 250 250 354"},
	    {"first\r\n.\r\nMAIL FROM:<>\r\n" TO "DATA\r\n", "250 250 250 354"},
	    {"second\r\n.\r\nNOOP\r\nQUIT\r\n", "250 250 221"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps,
	                                 1, 2,           "second\r\n"};
	run_script(&sc);
}

static void
t_size_at_mail(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO, "250"},
	    {"MAIL FROM:<alice@example.org> SIZE=1001\r\n", "552"},
	    {"MAIL FROM:<alice@example.org> SIZE=99999999999999999999\r\n",
	     "552"},
	    {"MAIL FROM:<alice@example.org> SIZE=12x\r\n", "501"},
	    {"MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME\r\n",
	     "250"},
	    {"QUIT\r\n", "221"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_size_at_data(void)
{
	struct fx f;
	struct conn c;
	char line[64];

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO FROM TO "DATA\r\n", strlen(EHLO FROM TO "DATA\r\n"));
	conn_wait(&c, 5, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354");
	/* 20 lines of 60: over max_message (1000), each under max_line */
	memset(line, 'x', 58);
	memcpy(line + 58, "\r\n", 3);
	for (int i = 0; i < 20; i++)
		conn_send(&c, line, 60);
	conn_send(&c, ".\r\nNOOP\r\n", 9);
	conn_wait(&c, 7, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354 552 250");
	CHECK(strstr(c.text, "552 5.3.4 ") != NULL);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(spool_count(f.sp), 0);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
}

static void
t_too_many_recipients(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM, "250 250"},
	    {"RCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\n"
	     "RCPT TO:<c@example.net>\r\nRCPT TO:<d@example.net>\r\n",
	     "250 250 250 452"},
	    {"DATA\r\nthree\r\n.\r\n", "354 250"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps,
	                                 0, 1,           "three\r\n"};
	run_script(&sc);
}

static void
t_relay_denied(void)
{
	/* an outgoing listener relays for relay_from only: not even a
	 * "local" domain is open to others there */
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM, "250 250"},
	    {TO, "554"},
	    {"RCPT TO:<bob@local.test>\r\n", "554"},
	    {"DATA\r\n", "554"},
	    {"QUIT\r\n", "221"},
	    END};
	static const struct script sc = {0, "192.0.2.7", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_local_domain_incoming(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM, "250 250"},
	    {"RCPT TO:<bob@LOCAL.test>\r\n", "250"},
	    {"RCPT TO:<eve@elsewhere.example>\r\n", "554"},
	    {"RCPT TO:<eve@sub.local.test>\r\n", "554"},
	    {"DATA\r\nhello\r\n.\r\n", "354 250"},
	    END};
	static const struct script sc = {1, "192.0.2.7", steps,
	                                 0, 1,           "hello\r\n"};
	run_script(&sc);
}

static void
t_bad_sequence(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},       {FROM, "503"},
	    {EHLO, "250"},       {TO, "503"},
	    {"DATA\r\n", "503"}, {FROM, "250"},
	    {FROM, "503"},       {"DATA\r\n", "554"},
	    {"QUIT\r\n", "221"}, END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_syntax_mail(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {"EHLO\r\n", "501"},
	    {"EHLO bad(name)\r\n", "501"},
	    {"HELO client.example\r\n", "250"},
	    {"MAIL TO:<a@b.example>\r\n", "501"},
	    {"MAIL FROM:alice@example.org\r\n", "501"},
	    {"MAIL FROM:<alice@exa mple.org>\r\n", "501"},
	    {"MAIL FROM:<alice@example.org> FOO=bar\r\n", "555"},
	    {"MAIL FROM:<alice@example.org> RET=XYZ\r\n", "501"},
	    {"MAIL FROM:<alice@example.org> ENVID=a=b\r\n", "501"},
	    {"MAIL FROM: <\"a b\"@example.org> RET=FULL\r\n", "250"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 0, 0, NULL};
	run_script(&sc);
}

static void
t_syntax_rcpt(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM, "250 250"},
	    {"RCPT TO:<bob>\r\n", "501"},
	    {"RCPT TO:<>\r\n", "501"},
	    {"RCPT TO:<b\xc3\xa9@example.net>\r\n", "501"},
	    {"RCPT TO:<bob@example.net> NOTIFY=NEVER,SUCCESS\r\n", "501"},
	    {"RCPT TO:<@relay.example:bob@example.net>\r\n", "250"},
	    {"RSET extra\r\n", "501"},
	    {"VRFY\r\n", "501"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 0, 0, NULL};
	run_script(&sc);
}

static void
t_unknown_command(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {"FOO bar\r\n", "500"},
	    {"GET / HTTP/1.1\r\n", "500"},
	    {"NOOP\n", "250"}, /* a bare LF ends a command line */
	    {"NO\rOP\r\n", "500"},
	    {"VRFY bob\r\nHELP\r\nnoop\r\n", "252 214 250"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 0, 0, NULL};
	run_script(&sc);
}

static void
t_too_many_errors(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {"A\r\nB\r\nC\r\nD\r\nE\r\nF\r\nG\r\nH\r\nI\r\n",
	     "500 500 500 500 500 500 500 500 500"},
	    {"J\r\nNOOP\r\n", "500 421"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_nul_in_command(void)
{
	struct fx f;
	struct conn c;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, "NOOP\0x\r\nNOOP\r\n", 14);
	conn_wait(&c, 3, 0, 5000);
	CHECK_STR(c.codes, "220 500 250");
	conn_close(&c);
	fx_clear(&f);
}

static void
t_long_command_line(void)
{
	struct fx f;
	struct conn c;
	char line[700];

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	/* 510 octets and CRLF: the longest allowed */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'a', 505);
	memcpy(line + 510, "\r\n", 2);
	conn_send(&c, line, 512);
	/* 600 and CRLF: one 500, the rest of the line dropped */
	memset(line + 5, 'a', 600);
	memcpy(line + 605, "\r\n", 2);
	conn_send(&c, line, 607);
	conn_send(&c, "NOOP\r\n", 6);
	conn_wait(&c, 4, 0, 5000);
	CHECK_STR(c.codes, "220 250 500 250");
	conn_close(&c);
	fx_clear(&f);
}

static void
t_long_data_line(void)
{
	struct fx f;
	struct conn c;
	char line[300];

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO FROM TO "DATA\r\n", strlen(EHLO FROM TO "DATA\r\n"));
	conn_wait(&c, 5, 0, 5000);
	/* 100 octets: fine; 250: too long (max_line 100), the message is
	 * refused at its end, and nothing is committed */
	memset(line, 'y', 100);
	memcpy(line + 100, "\r\n", 2);
	conn_send(&c, line, 102);
	memset(line, 'z', 250);
	memcpy(line + 250, "\r\n", 2);
	conn_send(&c, line, 252);
	conn_send(&c, "after\r\n.\r\nNOOP\r\n", 16);
	conn_wait(&c, 7, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354 500 250");
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(spool_count(f.sp), 0);
	fx_clear(&f);
}

static void
t_bare_lf_dot(void)
{
	/* "\n.\r\n" is not the end of data: the RCPT after it is content,
	 * never a command; the message is refused at the real end */
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM TO "DATA\r\n", "250 250 250 354"},
	    {"hello\n.\r\nRCPT TO:<evil@example.net>\r\n", ""},
	    {"more\r\n.\r\n", "554"},
	    {"QUIT\r\n", "221"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_dot_bare_lf(void)
{
	/* "\r\n.\n" is not the end either */
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM TO "DATA\r\n", "250 250 250 354"},
	    {"hello\r\n.\nMAIL FROM:<evil@example.org>\r\n", ""},
	    {".\r\n", "554"},
	    {"NOOP\r\n", "250"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 0, 0, NULL};
	run_script(&sc);
}

static void
t_bare_cr(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO FROM TO "DATA\r\n", "250 250 250 354"},
	    {"hello\r.\r\nstill data\r\n", ""},
	    {".\r\n", "554"},
	    {"DATA\r\n", "503"}, /* the transaction is over */
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 0, 0, NULL};
	run_script(&sc);
}

static void
t_rset(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {"RSET\r\n", "250"},
	    {EHLO FROM TO, "250 250 250"},
	    {"RSET\r\n", "250"},
	    {"DATA\r\n", "503"},
	    {TO, "503"},
	    {FROM TO "DATA\r\nafter rset\r\n.\r\n", "250 250 354 250"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps,
	                                 0, 1,           "after rset\r\n"};
	run_script(&sc);
}

static void
t_null_sender_dsn(void)
{
	struct fx f;
	struct conn c;
	struct spool_env env;
	static const char in[] =
	    EHLO "MAIL FROM:<> RET=HDRS ENVID=q+2B1\r\n"
	         "RCPT TO:<bob@example.net> NOTIFY=failure,Delay "
	         "ORCPT=rfc822;bob@example.net\r\n"
	         "RCPT TO:<carol@example.net>\r\n"
	         "DATA\r\nbounce\r\n.\r\n";

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, in, strlen(in));
	conn_wait(&c, 7, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 250 354 250");
	CHECK_EQ(f.nq, 1);
	memset(&env, 0, sizeof(env));
	CHECK_EQ(spool_load(f.sp, f.qid[0], &env), SG_OK);
	CHECK_STR(env.mail_from, "");
	CHECK_EQ(env.nrcpts, 2);
	CHECK_STR(env.rcpts[0], "bob@example.net");
	CHECK_STR(env.rcpts[1], "carol@example.net");
	CHECK_STR(env.dsn_ret, "HDRS");
	CHECK_STR(env.dsn_envid, "q+2B1");
	CHECK(env.dsn_notify != NULL);
	if (env.dsn_notify) {
		CHECK_STR(env.dsn_notify[0], "FAILURE,DELAY");
		CHECK(env.dsn_notify[1] == NULL);
	}
	CHECK_STR(env.listener, "out");
	CHECK_EQ(env.role, CFG_OUTGOING);
	CHECK_STR(env.client, "127.0.0.1");
	CHECK_STR(env.helo, "client.example");
	spool_env_clear(&env);
	/* the Received: line names the one recipient only when there is
	 * one; here there are two */
	check_message(&f, "client.example", "127.0.0.1", "bounce\r\n");
	conn_close(&c);
	fx_clear(&f);
}

static void
t_helo_received(void)
{
	struct fx f;
	struct conn c;
	static const char in[] = "HELO client.example\r\n" FROM TO
	                         "DATA\r\n.leading dot\r\n\r\n.\r\n";
	size_t len;
	char *data;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, in, strlen(in));
	conn_wait(&c, 6, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354 250");
	CHECK(strstr(c.text, "250 2.0.0 Ok: queued as ") != NULL);
	check_message(&f, "client.example", "127.0.0.1", "leading dot\r\n\r\n");
	data = f.nq ? spool_data(&f, f.qid[0], &len) : NULL;
	CHECK(data != NULL);
	if (data) {
		CHECK(strstr(data, " with SMTP id ") != NULL);
		CHECK(strstr(data, "\r\n\tfor <bob@example.net>;\r\n\t") !=
		      NULL);
		free(data);
	}
	conn_close(&c);
	fx_clear(&f);
}

static void
t_ehlo_keywords(void)
{
	struct fx f;
	struct conn c;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO, strlen(EHLO));
	conn_wait(&c, 2, 0, 5000);
	CHECK(strncmp(c.text, "220 mx.test ESMTP smimegate\n", 28) == 0);
	CHECK(strstr(c.text, "250-mx.test Hello client.example\n") != NULL);
	CHECK(strstr(c.text, "250-PIPELINING\n") != NULL);
	CHECK(strstr(c.text, "250-SIZE 1000\n") != NULL);
	CHECK(strstr(c.text, "250-8BITMIME\n") != NULL);
	CHECK(strstr(c.text, "250-ENHANCEDSTATUSCODES\n") != NULL);
	CHECK(strstr(c.text, "250 DSN\n") != NULL);
	CHECK(strstr(c.text, "STARTTLS") == NULL);
	conn_close(&c);
	fx_clear(&f);
}

static void
t_quit(void)
{
	static const struct step steps[] = {
	    {NULL, "220"}, {"QUIT\r\n", "221"}, {"NOOP\r\n", ""}, END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

static void
t_command_timeout(void)
{
	struct fx f;
	struct conn c;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	f.cfg.command_timeout = 1;
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, "EHLO client.exa", 15); /* never finished */
	conn_wait(&c, 0, 1, 3000);
	CHECK(c.closed);
	CHECK_STR(c.codes, "220 421");
	CHECK(strstr(c.text, "421 4.4.2 mx.test ") != NULL);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
}

static void
t_data_timeout(void)
{
	struct fx f;
	struct conn c;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	f.cfg.data_timeout = 1;
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO FROM TO "DATA\r\npart\r\n",
	          strlen(EHLO FROM TO "DATA\r\npart\r\n"));
	conn_wait(&c, 0, 1, 3000);
	CHECK(c.closed);
	CHECK_STR(c.codes, "220 250 250 250 354 421");
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(spool_count(f.sp), 0);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
}

static void
t_too_busy(void)
{
	struct fx f;
	struct conn a, b;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	f.cfg.max_sessions = 1;
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &a, 0, "127.0.0.1"), 0);
	conn_wait(&a, 1, 0, 5000);
	CHECK_EQ(conn_open(&f, &b, 0, "127.0.0.1"), 0);
	conn_wait(&b, 0, 1, 3000);
	CHECK_STR(a.codes, "220");
	CHECK_STR(b.codes, "421");
	CHECK(strstr(b.text, "421 4.3.2 mx.test ") != NULL);
	CHECK(b.closed);
	conn_close(&b);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 1);
	conn_close(&a);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
}

static void
t_client_gone_in_data(void)
{
	struct fx f;
	struct conn c;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO FROM TO "DATA\r\nhalf\r\n",
	          strlen(EHLO FROM TO "DATA\r\nhalf\r\n"));
	conn_wait(&c, 5, 0, 5000);
	conn_close(&c);
	fx_spin(&f, 50);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	CHECK_EQ(spool_count(f.sp), 0);
	fx_clear(&f);
}

static void
shutdown_done_cb(void *arg)
{
	((struct fx *)arg)->shutdown_done++;
}

static void
t_shutdown(void)
{
	struct fx f;
	struct conn busy, idle;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &busy, 0, "127.0.0.1"), 0);
	CHECK_EQ(conn_open(&f, &idle, 0, "127.0.0.1"), 0);
	conn_send(&busy, EHLO FROM TO "DATA\r\nhalf\r\n",
	          strlen(EHLO FROM TO "DATA\r\nhalf\r\n"));
	conn_wait(&busy, 5, 0, 5000);
	conn_wait(&idle, 1, 0, 5000);
	smtp_server_shutdown(f.srv, shutdown_done_cb, &f);
	conn_wait(&idle, 0, 1, 3000);
	CHECK_STR(idle.codes, "220 421");
	CHECK(idle.closed);
	CHECK_EQ(f.shutdown_done, 0);
	/* the message in DATA is finished and committed, then 421 */
	conn_send(&busy, "rest\r\n.\r\n", 9);
	conn_wait(&busy, 0, 1, 3000);
	CHECK_STR(busy.codes, "220 250 250 250 354 250 421");
	fx_spin(&f, 50);
	CHECK_EQ(f.shutdown_done, 1);
	CHECK_EQ(spool_count(f.sp), 1);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	check_message(&f, "client.example", "127.0.0.1", "half\r\nrest\r\n");
	conn_close(&busy);
	conn_close(&idle);
	fx_clear(&f);
}

static void
t_shutdown_idle_server(void)
{
	struct fx f;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	smtp_server_shutdown(f.srv, shutdown_done_cb, &f);
	fx_spin(&f, 20);
	CHECK_EQ(f.shutdown_done, 1);
	fx_clear(&f);
}

static void
t_reload(void)
{
	struct fx f;
	struct conn old, new;
	struct cfg cfg2;
	char err[256];
	static const char in[] = EHLO FROM "RCPT TO:<a@example.net>\r\n"
	                                   "RCPT TO:<b@example.net>\r\n";

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(smtp_server_listen(f.srv, err, sizeof(err)), 0);
	CHECK_EQ(conn_open(&f, &old, 0, "127.0.0.1"), 0);
	conn_wait(&old, 1, 0, 5000);
	cfg2 = f.cfg;
	cfg2.max_recipients = 1;
	CHECK_EQ(smtp_server_set_cfg(f.srv, &cfg2, err, sizeof(err)), 0);
	/* a session keeps the limits it started with; a new one has the
	 * new ones */
	CHECK_EQ(conn_open(&f, &new, 0, "127.0.0.1"), 0);
	conn_send(&old, in, strlen(in));
	conn_send(&new, in, strlen(in));
	conn_wait(&old, 5, 0, 5000);
	conn_wait(&new, 5, 0, 5000);
	CHECK_STR(old.codes, "220 250 250 250 250");
	CHECK_STR(new.codes, "220 250 250 250 452");
	conn_close(&old);
	conn_close(&new);
	fx_spin(&f, 20);
	fx_clear(&f);
}

static void
t_listen_fails(void)
{
	struct fx f;
	char err[256] = "";

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	f.lst[1].host = "192.0.2.1"; /* not ours: cannot bind */
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(smtp_server_listen(f.srv, err, sizeof(err)), -1);
	CHECK(strstr(err, "listener in") != NULL);
	f.lst[1].host = "not an address";
	CHECK_EQ(smtp_server_listen(f.srv, err, sizeof(err)), -1);
	f.lst[1].host = "127.0.0.1";
	CHECK_EQ(smtp_server_listen(f.srv, err, sizeof(err)), 0);
	fx_clear(&f);
}

static void
t_backpressure(void)
{
	/* a client that pipelines and does not read: the server stops
	 * reading commands once its replies pile up, and resumes, in order,
	 * when they drain */
	struct fx f;
	struct conn c;
	enum { N = 6000 };
	char *in = malloc(N * 6);

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK(in != NULL);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_wait(&c, 1, 0, 5000);
	bufferevent_setwatermark(c.bev, EV_READ, 0, 1024);
	bufferevent_disable(c.bev, EV_READ);
	for (int i = 0; in && i < N; i++)
		memcpy(in + i * 6, "NOOP\r\n", 6);
	if (in)
		conn_send(&c, in, N * 6);
	fx_spin(&f, 200);
	CHECK_EQ(c.nfinal, 1); /* the client has read nothing yet */
	CHECK(smtp_server_sessions(f.srv) == 1);
	bufferevent_enable(c.bev, EV_READ);
	conn_wait(&c, 1 + N, 0, 10000);
	CHECK_EQ(c.nfinal, 1 + N);
	conn_send(&c, "QUIT\r\n", 6);
	conn_wait(&c, 0, 1, 3000);
	CHECK(c.closed);
	CHECK_EQ(c.nfinal, 2 + N);
	free(in);
	conn_close(&c);
	fx_clear(&f);
}

static void
t_spool_failures(void)
{
	/* queue/ gone: the commit fails, 451, nothing is promised and the
	 * session goes on; tmp/ gone: DATA itself gets 451 */
	struct fx f;
	struct conn c;
	char path[128];

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	snprintf(path, sizeof(path), "%s/queue", f.dir);
	CHECK_EQ(rmdir(path), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO FROM TO "DATA\r\nx\r\n.\r\nNOOP\r\n",
	          strlen(EHLO FROM TO "DATA\r\nx\r\n.\r\nNOOP\r\n"));
	conn_wait(&c, 7, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354 451 250");
	CHECK(strstr(c.text, "451 4.3.0 ") != NULL);
	CHECK_EQ(f.nq, 0);
	snprintf(path, sizeof(path), "%s/tmp", f.dir);
	CHECK_EQ(rmdir(path), 0);
	conn_send(&c, FROM TO "DATA\r\nRSET\r\n",
	          strlen(FROM TO "DATA\r\nRSET\r\n"));
	conn_wait(&c, 11, 0, 5000);
	CHECK_STR(c.codes, "220 250 250 250 354 451 250 250 250 451 250");
	CHECK_EQ(f.nq, 0);
	conn_close(&c);
	fx_clear(&f);
}

static void
t_concurrent_sessions(void)
{
	/* messages committed at once by the pool, each answered on its own
	 * session */
	struct fx f;
	struct conn c[6];
	static const char in[] =
	    EHLO FROM TO "DATA\r\nconcurrent\r\n.\r\nQUIT\r\n";

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(conn_open(&f, &c[i], 0, "127.0.0.1"), 0);
		conn_send(&c[i], in, strlen(in));
	}
	for (int i = 0; i < 6; i++) {
		conn_wait(&c[i], 0, 1, 5000);
		CHECK_STR(c[i].codes, "220 250 250 250 354 250 221");
	}
	fx_spin(&f, 20);
	CHECK_EQ(spool_count(f.sp), 6);
	CHECK_EQ(f.nq, 6);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	for (int i = 0; i < 6; i++)
		conn_close(&c[i]);
	fx_clear(&f);
}

static void
t_free_while_committing(void)
{
	/* the server goes while a commit may be in flight: the message the
	 * client finished is committed all the same, and nothing leaks */
	struct fx f;
	struct conn c;
	static const char in[] = EHLO FROM TO "DATA\r\n";

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, in, strlen(in));
	conn_wait(&c, 5, 0, 5000);
	conn_send(&c, "gone\r\n.\r\n", 9);
	for (int i = 0; i < 3; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	smtp_server_free(f.srv);
	f.srv = NULL;
	CHECK_EQ(spool_count(f.sp), 1);
	conn_close(&c);
	fx_clear(&f);
}

/* ---- real sockets through the listeners ---- */

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int
tcp_connect(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* What arrived on FD while the loop ran: up to a final line of WANT. */
static void
tcp_read(struct fx *f, int fd, const char *want, char *buf, size_t len)
{
	size_t used = 0;
	ssize_t n = -1;

	buf[0] = '\0';
	for (int i = 0; i < 100 && used + 1 < len; i++) {
		fx_spin(f, 20);
		while ((n = recv(fd, buf + used, len - 1 - used,
		                 MSG_DONTWAIT)) > 0)
			used += (size_t)n;
		buf[used] = '\0';
		if (n == 0 || strstr(buf, want))
			break;
	}
}

static void
t_listener_sockets(void)
{
	struct fx f;
	struct cfg cfg2;
	struct cfg_listener lst2[2];
	char err[256], buf[1024];
	int port = free_port(), port2 = free_port(), a, b;

	memset(&f, 0, sizeof(f));
	fx_cfg(&f);
	f.cfg.max_sessions = 1;
	f.lst[0].port = port;
	f.cfg.nlisteners = 1;
	CHECK_EQ(fx_start(&f), 0);
	CHECK_EQ(smtp_server_listen(f.srv, err, sizeof(err)), 0);
	/* a session over TCP */
	a = tcp_connect(port);
	CHECK(a >= 0);
	tcp_read(&f, a, "\r\n", buf, sizeof(buf));
	CHECK(strcmp(buf, "220 mx.test ESMTP smimegate\r\n") == 0);
	/* a second one is over max_sessions: refused at accept */
	b = tcp_connect(port);
	CHECK(b >= 0);
	tcp_read(&f, b, "\r\n", buf, sizeof(buf));
	CHECK(strncmp(buf, "421 4.3.2 mx.test ", 18) == 0);
	if (b >= 0)
		close(b);
	CHECK(send(a, "QUIT\r\n", 6, 0) == 6);
	tcp_read(&f, a, "221 ", buf, sizeof(buf));
	CHECK_STR(buf, "221 2.0.0 Bye\r\n");
	if (a >= 0)
		close(a);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	/* a reload that moves the listener: the new port answers, the old
	 * one is closed */
	cfg2 = f.cfg;
	memcpy(lst2, f.lst, sizeof(lst2));
	lst2[0].port = port2;
	cfg2.listeners = lst2;
	CHECK_EQ(smtp_server_set_cfg(f.srv, &cfg2, err, sizeof(err)), 0);
	b = tcp_connect(port);
	CHECK(b < 0);
	if (b >= 0)
		close(b);
	a = tcp_connect(port2);
	CHECK(a >= 0);
	tcp_read(&f, a, "\r\n", buf, sizeof(buf));
	CHECK(strncmp(buf, "220 ", 4) == 0);
	if (a >= 0)
		close(a);
	fx_spin(&f, 20);
	fx_clear(&f);
}

/* ---- STARTTLS and AUTH ---- */

#define B64_ALICE   "AGFsaWNlAHNlY3JldA=="     /* "\0alice\0secret" */
#define B64_WRONG   "AGFsaWNlAHdyb25n"         /* "\0alice\0wrong" */
#define B64_MALLORY "AG1hbGxvcnkAc2VjcmV0"     /* "\0mallory\0secret" */
#define B64_AUTHZID "Ym9iAGFsaWNlAHNlY3JldA==" /* "bob\0alice\0secret" */

/* Throw-away TLS and AUTH files in a directory of their own: a P-256 key
 * and a self-signed certificate for it, a second key, a users file with
 * alice:secret (senders: @example.org), and a client context that trusts
 * anything. */
struct tlsfx {
	char dir[64];
	char cert[128], key[128], other[128], users[128];
	SSL_CTX *client;
};

static EVP_PKEY *
tls_key_new(const char *path)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	FILE *fp;

	if (pk == NULL || (fp = fopen(path, "w")) == NULL)
		return pk;
	PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
	fclose(fp);
	return pk;
}

static int
tls_cert_write(EVP_PKEY *pk, const char *path)
{
	X509 *x = X509_new();
	X509_NAME *n;
	FILE *fp;
	int ok = 0;

	if (x == NULL || pk == NULL)
		goto out;
	n = X509_get_subject_name(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"mx.test", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, pk);
	if (X509_sign(x, pk, EVP_sha256()) <= 0 ||
	    (fp = fopen(path, "w")) == NULL)
		goto out;
	ok = PEM_write_X509(fp, x) == 1;
	fclose(fp);
out:
	X509_free(x);
	return ok ? 0 : -1;
}

static int
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		return -1;
	fputs(text, fp);
	return fclose(fp);
}

static int
tlsfx_init(struct tlsfx *t)
{
	struct crypt_data cd;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], line[512];
	const char *hash;
	EVP_PKEY *pk, *pk2;
	int rc;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/t_smtp_tls_XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
	snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
	snprintf(t->other, sizeof(t->other), "%s/other.pem", t->dir);
	snprintf(t->users, sizeof(t->users), "%s/users", t->dir);
	pk = tls_key_new(t->key);
	pk2 = tls_key_new(t->other);
	rc = tls_cert_write(pk, t->cert);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(pk2);
	/* a cheap SHA-512 crypt: the test is about the protocol */
	memset(&cd, 0, sizeof(cd));
	if (rc < 0 ||
	    crypt_gensalt_rn("$6$", 1000, NULL, 0, salt, sizeof(salt)) ==
	        NULL ||
	    (hash = crypt_rn("secret", salt, &cd, sizeof(cd))) == NULL)
		return -1;
	snprintf(line, sizeof(line), "# test users\nalice:%s:@example.org\n",
	         hash);
	/* and carol:pw2 with yescrypt, as mkpasswd makes by default */
	memset(&cd, 0, sizeof(cd));
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL ||
	    (hash = crypt_rn("pw2", salt, &cd, sizeof(cd))) == NULL)
		return -1;
	snprintf(line + strlen(line), sizeof(line) - strlen(line),
	         "  carol:%s  \n", hash);
	if (write_text(t->users, line) < 0)
		return -1;
	t->client = SSL_CTX_new(TLS_client_method());
	if (t->client == NULL)
		return -1;
	SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
	return 0;
}

static void
tlsfx_clear(struct tlsfx *t)
{
	SSL_CTX_free(t->client);
	if (t->dir[0])
		unit_rm_tree(t->dir);
}

/* Listener 0 (outgoing) with STARTTLS MODE and AUTH PLAIN, loaded into
 * a started fixture as a reload would. */
static int
fx_start_tls(struct fx *f, struct tlsfx *t, enum cfg_starttls mode)
{
	char err[512];

	memset(f, 0, sizeof(*f));
	fx_cfg(f);
	f->lst[0].tls_cert = t->cert;
	f->lst[0].tls_key = t->key;
	f->lst[0].starttls = mode;
	f->lst[0].auth = CFG_AUTH_PLAIN;
	f->lst[0].auth_users = t->users;
	if (fx_start(f) < 0)
		return -1;
	if (smtp_server_set_cfg(f->srv, &f->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "  set_cfg: %s\n", err);
		return -1;
	}
	return 0;
}

static void
conn_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED)
		c->tls_up = 1;
	conn_event_cb(bev, what, arg);
}

/* The client's side of STARTTLS: its end of the pair in a TLS filter,
 * then the handshake. */
static void
conn_starttls(struct conn *c, SSL_CTX *ctx)
{
	struct bufferevent *t;
	SSL *ssl = SSL_new(ctx);

	CHECK(ssl != NULL);
	if (ssl == NULL)
		return;
	t = bufferevent_openssl_filter_new(
	    c->f->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	c->bev = t;
	bufferevent_setcb(t, conn_read_cb, NULL, conn_tls_event_cb, c);
	bufferevent_enable(t, EV_READ | EV_WRITE);
	for (int i = 0; i < 250 && !c->tls_up && !c->closed; i++)
		fx_spin(c->f, 20);
	CHECK(c->tls_up);
}

/* Without a certificate: neither STARTTLS nor AUTH exists. */
static void
t_starttls_not_offered(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO, "250"},
	    {"STARTTLS\r\n", "502"},
	    {"AUTH PLAIN " B64_ALICE "\r\n", "502"},
	    {FROM TO, "250 250"},
	    {"QUIT\r\n", "221"},
	    END};
	static const struct script sc = {0, "127.0.0.1", steps, 1, 0, NULL};
	run_script(&sc);
}

/* tls = required: STARTTLS and no AUTH in EHLO, MAIL refused in clear,
 * AUTH refused in clear (538), STARTTLS takes no argument. */
static void
t_starttls_required(void)
{
	static const struct step steps[] = {
	    {NULL, "220"},
	    {EHLO, "250"},
	    {FROM, "530"},
	    {"AUTH PLAIN " B64_ALICE "\r\n", "538"},
	    {"AUTH PLAIN\r\n", "538"},
	    {"STARTTLS now\r\n", "501"},
	    {"QUIT\r\n", "221"},
	    END};
	struct tlsfx t;
	struct fx f;
	struct conn c;

	CHECK_EQ(tlsfx_init(&t), 0);
	CHECK_EQ(fx_start_tls(&f, &t, CFG_STARTTLS_REQUIRED), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	for (int i = 0; steps[i].send || steps[i].expect; i++)
		run_step(&c, &steps[i], i);
	CHECK(strstr(c.text, "250 STARTTLS\n") != NULL); /* the last */
	CHECK(strstr(c.text, "AUTH") == NULL);
	CHECK(strstr(c.text, "530 5.7.0 Must issue a STARTTLS command "
	                     "first\n") != NULL);
	CHECK(strstr(c.text, "538 5.7.11 ") != NULL);
	conn_wait(&c, 0, 1, 3000);
	CHECK(c.closed);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
	tlsfx_clear(&t);
}

/* AUTH in clear counts toward the error limit like any protocol error. */
static void
t_auth_cleartext_counts(void)
{
	struct tlsfx t;
	struct fx f;
	struct conn c;
	char want[128] = "220 250";

	CHECK_EQ(tlsfx_init(&t), 0);
	CHECK_EQ(fx_start_tls(&f, &t, CFG_STARTTLS_OFFER), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO, strlen(EHLO));
	for (int i = 0; i < 10; i++) {
		conn_send(&c, "AUTH PLAIN " B64_ALICE "\r\n",
		          strlen("AUTH PLAIN " B64_ALICE "\r\n"));
		strcat(want, " 538");
	}
	strcat(want, " 421");
	conn_wait(&c, 0, 1, 5000);
	CHECK(c.closed);
	CHECK_STR(c.codes, want);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
	tlsfx_clear(&t);
}

/* A command pipelined after STARTTLS (in clear, before the handshake)
 * must not run inside TLS: the MAIL is dropped, so RCPT is out of
 * sequence.  Then the session is as after the banner: EHLO again, which
 * now offers AUTH and no STARTTLS, and a message says ESMTPS. */
static void
t_starttls_injection(void)
{
	static const char inject[] = "STARTTLS\r\nMAIL FROM:<evil@x>\r\n";
	struct tlsfx t;
	struct fx f;
	struct conn c;
	size_t off;
	char *data;
	size_t len;

	CHECK_EQ(tlsfx_init(&t), 0);
	CHECK_EQ(fx_start_tls(&f, &t, CFG_STARTTLS_OFFER), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "127.0.0.1"), 0);
	conn_send(&c, EHLO, strlen(EHLO));
	conn_wait(&c, 2, 0, 5000);
	conn_send(&c, inject, strlen(inject));
	conn_wait(&c, 4, 0, 300); /* a fourth reply must not come */
	CHECK_STR(c.codes, "220 250 220");
	CHECK(strstr(c.text, "220 2.0.0 Ready to start TLS\n") != NULL);
	conn_starttls(&c, t.client);
	off = strlen(c.text);
	conn_send(&c, EHLO, strlen(EHLO));
	conn_send(&c, TO, strlen(TO));
	conn_wait(&c, 5, 0, 5000);
	CHECK_STR(c.codes, "220 250 220 250 503");
	CHECK(strstr(c.text + off, "STARTTLS") == NULL);
	CHECK(strstr(c.text + off, "250-AUTH PLAIN\n") != NULL ||
	      strstr(c.text + off, "250 AUTH PLAIN\n") != NULL);
	/* the session goes on under TLS */
	conn_send(&c, FROM TO "DATA\r\nsecure\r\n.\r\nQUIT\r\n",
	          strlen(FROM TO "DATA\r\nsecure\r\n.\r\nQUIT\r\n"));
	conn_wait(&c, 0, 1, 5000);
	CHECK_STR(c.codes, "220 250 220 250 503 250 250 354 250 221");
	CHECK(c.closed);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	CHECK_EQ(spool_count(f.sp), 1);
	data = f.nq ? spool_data(&f, f.qid[0], &len) : NULL;
	CHECK(data != NULL && strstr(data, ") with ESMTPS id ") != NULL);
	CHECK(data != NULL && strstr(data, "evil") == NULL);
	free(data);
	fx_clear(&f);
	tlsfx_clear(&t);
}

/* AUTH PLAIN inside TLS from a client that may not relay: refused
 * until it authenticates; wrong passwords, unknown users and another
 * authorization identity get 535 after a pause; cancel, bad base64 and
 * other mechanisms their own replies; then 235, and it may relay. */
static void
t_auth_plain(void)
{
	static const struct step steps[] = {
	    {EHLO, "250"},
	    {FROM, "250"},
	    {TO, "554"},
	    {"RSET\r\n", "250"},
	    {"AUTH PLAIN " B64_WRONG "\r\n", "535"},
	    {"AUTH PLAIN " B64_MALLORY "\r\n", "535"},
	    {"AUTH PLAIN " B64_AUTHZID "\r\n", "535"},
	    {"AUTH LOGIN\r\n", "504"},
	    {"AUTH PLAIN\r\n", "334"},
	    {"not base64!\r\n", "501"},
	    {"AUTH PLAIN\r\n", "334"},
	    {"*\r\n", "501"},
	    {"AUTH PLAIN\r\n", "334"},
	    {B64_ALICE "\r\n", "235"},
	    {"AUTH PLAIN " B64_ALICE "\r\n", "503"},
	    {FROM TO "DATA\r\n", "250 250 354"},
	    {"relayed\r\n.\r\n", "250"},
	    {"QUIT\r\n", "221"},
	    END};
	struct tlsfx t;
	struct fx f;
	struct conn c;
	struct timespec t0, t1;
	char *data;
	size_t len;

	CHECK_EQ(tlsfx_init(&t), 0);
	CHECK_EQ(fx_start_tls(&f, &t, CFG_STARTTLS_OFFER), 0);
	CHECK_EQ(conn_open(&f, &c, 0, "192.0.2.7"), 0);
	conn_send(&c, EHLO "STARTTLS\r\n", strlen(EHLO "STARTTLS\r\n"));
	conn_wait(&c, 3, 0, 5000);
	CHECK_STR(c.codes, "220 250 220");
	conn_starttls(&c, t.client);
	c.codes[0] = '\0';
	c.nfinal = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; steps[i].send || steps[i].expect; i++) {
		run_step(&c, &steps[i], i);
		if (i == 4) { /* the first 535 came after a pause */
			clock_gettime(CLOCK_MONOTONIC, &t1);
			CHECK(t1.tv_sec - t0.tv_sec >= 1);
		}
	}
	CHECK(strstr(c.text, "535 5.7.8 ") != NULL);
	CHECK(strstr(c.text, "235 2.7.0 ") != NULL);
	CHECK(strstr(c.text, "334 \n") != NULL);
	conn_wait(&c, 0, 1, 3000);
	CHECK(c.closed);
	conn_close(&c);
	fx_spin(&f, 20);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	CHECK_EQ(spool_count(f.sp), 1);
	data = f.nq ? spool_data(&f, f.qid[0], &len) : NULL;
	CHECK(data != NULL && strstr(data, ") with ESMTPSA id ") != NULL);
	free(data);
	fx_clear(&f);
	tlsfx_clear(&t);
}

/* The client goes away while its password is being checked, and while
 * its 535 waits: nothing leaks, nothing is used after free. */
static void
t_auth_client_gone(void)
{
	struct tlsfx t;
	struct fx f;
	struct conn c;

	CHECK_EQ(tlsfx_init(&t), 0);
	CHECK_EQ(fx_start_tls(&f, &t, CFG_STARTTLS_OFFER), 0);
	for (int k = 0; k < 2; k++) {
		CHECK_EQ(conn_open(&f, &c, 0, "192.0.2.7"), 0);
		conn_send(&c, EHLO "STARTTLS\r\n", strlen(EHLO "STARTTLS\r\n"));
		conn_wait(&c, 3, 0, 5000);
		conn_starttls(&c, t.client);
		conn_send(&c, EHLO "AUTH PLAIN " B64_WRONG "\r\n",
		          strlen(EHLO "AUTH PLAIN " B64_WRONG "\r\n"));
		if (k == 1)
			conn_wait(&c, 4, 0, 5000); /* EHLO answered */
		fx_spin(&f, k == 1 ? 300 : 0);
		conn_close(&c);
		fx_spin(&f, 100);
	}
	for (int i = 0; i < 100 && smtp_server_sessions(f.srv) > 0; i++)
		fx_spin(&f, 50);
	CHECK_EQ(smtp_server_sessions(f.srv), 0);
	fx_clear(&f);
	tlsfx_clear(&t);
}

/* The files are checked when they are loaded (start, reload): a bad one
 * refuses the whole configuration, with the file and the reason. */
static void
t_tls_files(void)
{
	struct tlsfx t;
	char path[160], err[512];
	static const struct {
		const char *name; /* what is wrong */
		int which;        /* 0 cert, 1 key, 2 users */
		const char *text; /* the file's content, or NULL: missing */
		const char *want; /* in the message */
	} cases[] = {
	    {"missing certificate", 0, NULL, "No such file"},
	    {"garbage certificate", 0, "not PEM\n", "not a PEM certificate"},
	    {"missing key", 1, NULL, "No such file"},
	    {"other key", 1, "", "does not match the certificate"},
	    {"missing users", 2, NULL, "No such file"},
	    {"no users", 2, "# nobody\n\n", "no users"},
	    {"DES hash", 2, "bob:ab01FAX.bQRSU\n", "weak hash method"},
	    {"MD5 hash", 2, "bob:$1$abcdefgh$G//4keteveJdpSjEJzpSz/\n",
	     "weak hash method"},
	    {"plain password", 2, "bob:secret\n", "not a crypt(3) hash"},
	    {"shadow line", 2, "bob:$6$aa$bb:19000:0:99999:7:::\n",
	     "not a crypt(3) hash"},
	    {"no colon", 2, "bob\n", ":1: expected user:hash"},
	    {"space in name", 2, "b b:$6$aa$bb\n", "expected user:hash"},
	    {"twice", 2, "bob:$6$rounds=1000$aa$bb\nbob:$6$rounds=1000$aa$cc\n",
	     "appears twice"},
	    {"bad sender", 2, "bob:$6$rounds=1000$aa$bb:nobody\n",
	     ":1: \"nobody\" is not a sender"},
	    {"empty senders", 2, "bob:$6$rounds=1000$aa$bb: \n",
	     "an empty sender list"},
	    {"star first", 2, "bob:$6$rounds=1000$aa$bb:*, a@b.example\n",
	     "\"*\" (any sender) stands alone"},
	    {"star after", 2, "bob:$6$rounds=1000$aa$bb:@b.example,*\n",
	     "\"*\" (any sender) stands alone"},
	};

	CHECK_EQ(tlsfx_init(&t), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fx f;
		const char *cert = t.cert, *key = t.key, *users = t.users;

		snprintf(path, sizeof(path), "%s/case%zu", t.dir, i);
		if (cases[i].text != NULL && cases[i].which == 1)
			snprintf(path, sizeof(path), "%s", t.other);
		else if (cases[i].text != NULL)
			CHECK_EQ(write_text(path, cases[i].text), 0);
		if (cases[i].which == 0)
			cert = path;
		else if (cases[i].which == 1)
			key = path;
		else
			users = path;
		memset(&f, 0, sizeof(f));
		fx_cfg(&f);
		f.lst[0].tls_cert = (char *)cert;
		f.lst[0].tls_key = (char *)key;
		f.lst[0].auth = CFG_AUTH_PLAIN;
		f.lst[0].auth_users = (char *)users;
		CHECK_EQ(fx_start(&f), 0);
		err[0] = '\0';
		if (f.srv == NULL ||
		    smtp_server_set_cfg(f.srv, &f.cfg, err, sizeof(err)) !=
		        -1 ||
		    strstr(err, cases[i].want) == NULL ||
		    strstr(err, "listener out: ") == NULL) {
			fprintf(stderr, "  %s: got \"%s\"\n", cases[i].name,
			        err);
			CHECK(0);
		}
		fx_clear(&f);
	}
	tlsfx_clear(&t);
}

static void
t_auth_plain_decode(void)
{
	static const struct {
		const char *b64;
		enum smtp_auth_plain rc;
		const char *user, *pass;
	} cases[] = {
	    {B64_ALICE, SMTP_AUTH_PLAIN_OK, "alice", "secret"},
	    {"YWxpY2UAYWxpY2UAc2VjcmV0", SMTP_AUTH_PLAIN_OK, "alice",
	     "secret"}, /* authzid = authcid */
	    {B64_AUTHZID, SMTP_AUTH_PLAIN_AUTHZID, NULL, NULL},
	    {"YWxpY2VzZWNyZXQ=", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"AGFsaWNlAA==", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"AABzZWNyZXQ=", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"AGFsaWNlAHNlYwByZXQ=", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"=", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"", SMTP_AUTH_PLAIN_MALFORMED, NULL, NULL},
	    {"AGFsaWNlAHNlY3JldA=", SMTP_AUTH_PLAIN_BASE64, NULL, NULL},
	    {"AGFsaWNlAHNlY3JldA=A", SMTP_AUTH_PLAIN_BASE64, NULL, NULL},
	    {"AGFs aWNl", SMTP_AUTH_PLAIN_BASE64, NULL, NULL},
	    {"AGFs=WNl", SMTP_AUTH_PLAIN_BASE64, NULL, NULL},
	    {"AGFsaWNl\nAHNl", SMTP_AUTH_PLAIN_BASE64, NULL, NULL},
	};
	char user[SMTP_AUTH_USER_MAX + 1], pass[SMTP_AUTH_PASS_MAX + 1];
	char big[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		enum smtp_auth_plain rc;

		strcpy(user, "-");
		strcpy(pass, "-");
		rc = smtp_auth_plain_decode(cases[i].b64, user, sizeof(user),
		                            pass, sizeof(pass));
		if (rc != cases[i].rc ||
		    strcmp(user, cases[i].user ? cases[i].user : "-") != 0 ||
		    strcmp(pass, cases[i].pass ? cases[i].pass : "-") != 0) {
			fprintf(stderr, "  \"%s\": rc %d user %s\n",
			        cases[i].b64, (int)rc, user);
			CHECK(0);
		}
	}
	/* longer than a response can be: refused, never overflowing */
	for (size_t i = 0; i + 4 < sizeof(big); i += 4)
		memcpy(big + i, "QUFB", 4);
	big[sizeof(big) - 4] = '\0';
	CHECK_EQ(
	    smtp_auth_plain_decode(big, user, sizeof(user), pass, sizeof(pass)),
	    SMTP_AUTH_PLAIN_BASE64);
}

static void
t_auth_check(void)
{
	static const struct {
		const char *user, *pass;
		int result;
	} cases[] = {
	    {"alice", "secret", 1},
	    {"alice", "Secret", 0},
	    {"alice", "secret ", 0},
	    {"bob", "secret", 0}, /* unknown: checked, and refused */
	    {"Alice", "secret", 0},
	    {"carol", "pw2", 1},
	    {"carol", "secret", 0},
	};
	struct tlsfx t;
	struct smtp_auth_db *db;
	char err[256];

	CHECK_EQ(tlsfx_init(&t), 0);
	db = smtp_auth_db_load(t.users, err, sizeof(err));
	CHECK(db != NULL);
	for (size_t i = 0; db && i < sizeof(cases) / sizeof(*cases); i++) {
		struct smtp_auth_check *c =
		    smtp_auth_check_new(db, cases[i].user, cases[i].pass);

		CHECK(c != NULL);
		if (c == NULL)
			continue;
		smtp_auth_check_run(c);
		if (smtp_auth_check_result(c) != cases[i].result) {
			fprintf(stderr, "  %s/%s\n", cases[i].user,
			        cases[i].pass);
			CHECK(0);
		}
		CHECK_STR(smtp_auth_check_user(c), cases[i].user);
		smtp_auth_check_free(c);
	}
	smtp_auth_db_free(db);
	tlsfx_clear(&t);
}

/* The senders field: who may give which MAIL FROM after AUTH. */
static void
t_auth_senders(void)
{
	static const struct {
		const char *user, *sender;
		int ok;
	} cases[] = {
	    {"dave", "dave@example.com", 1},
	    {"dave", "DAVE@Example.COM", 1},
	    {"dave", "x@sales.example.com", 1},
	    {"dave", "x@SALES.example.com", 1},
	    {"dave", "x@sub.sales.example.com", 0},
	    {"dave", "eve@example.com", 0},
	    {"dave", "dave@example.com.evil", 0},
	    {"dave", "", 1}, /* the null sender */
	    /* no senders field: only as itself, when its name is an
	     * address */
	    {"erin", "anyone@anywhere.example", 0},
	    {"erin", "erin", 0},
	    {"erin", "", 1},
	    {"Frank@Example.com", "frank@example.COM", 1},
	    {"Frank@Example.com", "frank@example.com.evil", 0},
	    {"Frank@Example.com", "other@example.com", 0},
	    /* "*": anyone */
	    {"relay", "anyone@anywhere.example", 1},
	    {"relay", "", 1},
	    {"nobody", "dave@example.com", 0},
	};
	char dir[] = "/tmp/sg-auth-XXXXXX", path[64], err[256];
	struct smtp_auth_db *db;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/users", dir);
	CHECK_EQ(write_text(path, "dave:$6$rounds=1000$aa$bb:dave@Example.com,"
	                          " @sales.example.com\n"
	                          "erin:$6$rounds=1000$aa$cc\n"
	                          "Frank@Example.com:$6$rounds=1000$aa$dd\n"
	                          "relay:$6$rounds=1000$aa$ee: * \n"),
	         0);
	db = smtp_auth_db_load(path, err, sizeof(err));
	CHECK(db != NULL);
	for (size_t i = 0; db && i < sizeof(cases) / sizeof(*cases); i++) {
		if (smtp_auth_sender_ok(db, cases[i].user, cases[i].sender) !=
		    cases[i].ok) {
			fprintf(stderr, "  %s <%s>\n", cases[i].user,
			        cases[i].sender);
			CHECK(0);
		}
	}
	smtp_auth_db_free(db);
	unlink(path);
	rmdir(dir);
}

/* The key max_sessions_per_client counts by: IPv4, v4-mapped as IPv4,
 * an IPv6 /64 as one client. */
static void
t_client_key(void)
{
	static const struct {
		const char *a, *b;
		int same;
	} cases[] = {
	    {"192.0.2.1", "192.0.2.1", 1},
	    {"192.0.2.1", "192.0.2.2", 0},
	    {"192.0.2.1", "::ffff:192.0.2.1", 1},
	    {"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", 1},
	    {"2001:db8:1:2::1", "2001:db8:1:3::1", 0},
	    {"::ffff:192.0.2.1", "::ffff:192.0.2.7", 0},
	    {"192.0.2.1", "::c000:201", 0}, /* not v4-mapped */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sockaddr_storage x[2];
		unsigned char k[2][9];
		const char *in[2] = {cases[i].a, cases[i].b};

		for (int j = 0; j < 2; j++) {
			memset(&x[j], 0, sizeof(x[j]));
			if (strchr(in[j], ':') != NULL) {
				struct sockaddr_in6 *s6 = (void *)&x[j];
				s6->sin6_family = AF_INET6;
				CHECK_EQ(
				    inet_pton(AF_INET6, in[j], &s6->sin6_addr),
				    1);
			} else {
				struct sockaddr_in *s4 = (void *)&x[j];
				s4->sin_family = AF_INET;
				CHECK_EQ(
				    inet_pton(AF_INET, in[j], &s4->sin_addr),
				    1);
			}
			smtp_client_key(&x[j], k[j]);
		}
		if ((memcmp(k[0], k[1], 9) == 0) != cases[i].same) {
			fprintf(stderr, "  %s ~ %s\n", cases[i].a, cases[i].b);
			CHECK(0);
		}
	}
}

static const struct unit_case cases[] = {
    {"transaction", t_transaction},
    {"client_key", t_client_key},
    {"pipelining", t_pipelining},
    {"size_at_mail", t_size_at_mail},
    {"size_at_data", t_size_at_data},
    {"too_many_recipients", t_too_many_recipients},
    {"relay_denied", t_relay_denied},
    {"local_domain_incoming", t_local_domain_incoming},
    {"bad_sequence", t_bad_sequence},
    {"syntax_mail", t_syntax_mail},
    {"syntax_rcpt", t_syntax_rcpt},
    {"unknown_command", t_unknown_command},
    {"too_many_errors", t_too_many_errors},
    {"nul_in_command", t_nul_in_command},
    {"long_command_line", t_long_command_line},
    {"long_data_line", t_long_data_line},
    {"bare_lf_dot", t_bare_lf_dot},
    {"dot_bare_lf", t_dot_bare_lf},
    {"bare_cr", t_bare_cr},
    {"rset", t_rset},
    {"null_sender_dsn", t_null_sender_dsn},
    {"helo_received", t_helo_received},
    {"ehlo_keywords", t_ehlo_keywords},
    {"quit", t_quit},
    {"command_timeout", t_command_timeout},
    {"data_timeout", t_data_timeout},
    {"too_busy", t_too_busy},
    {"client_gone_in_data", t_client_gone_in_data},
    {"shutdown", t_shutdown},
    {"shutdown_idle_server", t_shutdown_idle_server},
    {"reload", t_reload},
    {"listen_fails", t_listen_fails},
    {"backpressure", t_backpressure},
    {"spool_failures", t_spool_failures},
    {"concurrent_sessions", t_concurrent_sessions},
    {"free_while_committing", t_free_while_committing},
    {"listener_sockets", t_listener_sockets},
    {"starttls_not_offered", t_starttls_not_offered},
    {"starttls_required", t_starttls_required},
    {"auth_cleartext_counts", t_auth_cleartext_counts},
    {"starttls_injection", t_starttls_injection},
    {"auth_plain", t_auth_plain},
    {"auth_client_gone", t_auth_client_gone},
    {"tls_files", t_tls_files},
    {"auth_plain_decode", t_auth_plain_decode},
    {"auth_check", t_auth_check},
    {"auth_senders", t_auth_senders},
    {NULL, NULL},
};

const struct unit_suite suite_smtp = {"smtp", cases};
