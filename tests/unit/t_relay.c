/*
 * t_relay.c - the SMTP client to the next hops: reply parsing (single and
 * multiline, and the replies that must be refused), EHLO keywords,
 * dot-stuffing across chunk boundaries, host:port, grouping recipients by
 * next hop, dropping recipients from an envelope; and whole transactions
 * against a scripted next hop on 127.0.0.1 (a thread), including a
 * recipient refused, next hops that refuse, break the protocol, lack
 * STARTTLS or take less than the message's SIZE, HELO after a refused
 * EHLO, and a connection kept and reused with RSET.
 */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "daemon/queue.h"
#include "daemon/relay.h"
#include "daemon/spool.h"
#include "policy/config.h"

/* ---- replies ---- */

static void
reply_parses(void)
{
	static const struct {
		const char *name;
		const char *lines[4];
		int want_code;
		const char *want_text, *want_line;
	} cases[] = {
	    {"single",
	     {"250 2.0.0 Ok: queued as X"},
	     250,
	     "2.0.0 Ok: queued as X",
	     "250 2.0.0 Ok: queued as X"},
	    {"bare-code", {"354"}, 354, "", "354"},
	    {"multiline",
	     {"250-mx.example Hello", "250-SIZE 1000", "250 STARTTLS"},
	     250,
	     "mx.example Hello\nSIZE 1000\nSTARTTLS",
	     "250 mx.example Hello SIZE 1000 STARTTLS"},
	    {"multiline-550",
	     {"550-5.1.1 no such user", "550 5.1.1 try another"},
	     550,
	     "5.1.1 no such user\n5.1.1 try another",
	     "550 5.1.1 no such user 5.1.1 try another"},
	    {"control-bytes", {"421 bye\tnow"}, 421, "bye\tnow", "421 bye now"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct relay_reply r;
		char line[RELAY_REPLY_MAX];
		int k = 0;
		size_t i;

		relay_reply_init(&r);
		for (i = 0; cases[c].lines[i]; i++) {
			k = relay_reply_feed(&r, cases[c].lines[i]);
			if (cases[c].lines[i + 1])
				CHECK_EQ(k, 0);
		}
		CHECK_EQ(k, 1);
		CHECK_EQ(r.code, cases[c].want_code);
		CHECK_EQ(r.nlines, (unsigned)i);
		CHECK_STR(r.text, cases[c].want_text);
		relay_reply_line(&r, line, sizeof(line));
		CHECK_STR(line, cases[c].want_line);
	}
}

static void
reply_refuses_malformed(void)
{
	static const struct {
		const char *name;
		const char *first, *bad;
	} cases[] = {
	    {"short", NULL, "25"},
	    {"letters", NULL, "abc hello"},
	    {"bad-separator", NULL, "250x"},
	    {"code-1xx", NULL, "150 hi"},
	    {"code-6xx", NULL, "600 hi"},
	    {"empty", NULL, ""},
	    {"code-changes", "250-first", "251 second"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct relay_reply r;

		relay_reply_init(&r);
		if (cases[c].first)
			CHECK_EQ(relay_reply_feed(&r, cases[c].first), 0);
		CHECK_EQ(relay_reply_feed(&r, cases[c].bad), -1);
	}
}

static void
reply_is_bounded(void)
{
	struct relay_reply r;
	char big[RELAY_TEXT_MAX + 100];
	int k = 0;

	/* too many lines */
	relay_reply_init(&r);
	for (int i = 0; i < RELAY_LINES_MAX && k == 0; i++)
		k = relay_reply_feed(&r, "250-x");
	CHECK_EQ(k, 0);
	CHECK_EQ(relay_reply_feed(&r, "250 last"), -1);
	/* a long text is cut, not overflowed */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "250 ", 4);
	relay_reply_init(&r);
	CHECK_EQ(relay_reply_feed(&r, big), 1);
	CHECK_EQ(r.len, (size_t)RELAY_TEXT_MAX - 1);
	CHECK_EQ(strlen(r.text), r.len);
}

static void
reply_status_maps(void)
{
	static const struct {
		int code;
		enum sg_status want;
	} cases[] = {
	    {250, SG_OK},
	    {251, SG_OK},
	    {421, SG_ERR_TEMP},
	    {450, SG_ERR_TEMP},
	    {451, SG_ERR_TEMP},
	    {354, SG_ERR_TEMP},
	    {550, SG_ERR_NOT_FOUND},
	    {554, SG_ERR_NOT_FOUND},
	    {552, SG_ERR_LIMIT},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++)
		CHECK_EQ(relay_reply_status(cases[c].code), cases[c].want);
}

/* ---- EHLO ---- */

static void
ehlo_keywords(void)
{
	static const struct {
		const char *name;
		const char *lines[8];
		unsigned want;
		uintmax_t want_size;
	} cases[] = {
	    {"postfix-like",
	     {"250-mx.example", "250-PIPELINING", "250-SIZE 10240000",
	      "250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250-8BITMIME",
	      "250 DSN"},
	     RELAY_EXT_PIPELINING | RELAY_EXT_SIZE | RELAY_EXT_STARTTLS |
	         RELAY_EXT_ENHANCED | RELAY_EXT_8BITMIME | RELAY_EXT_DSN,
	     10240000},
	    {"lowercase",
	     {"250-mx", "250-starttls", "250 size"},
	     RELAY_EXT_STARTTLS | RELAY_EXT_SIZE,
	     0},
	    {"name-only", {"250 STARTTLS.example.com"}, 0, 0},
	    {"unknown-and-prefixes",
	     {"250-mx", "250-STARTTLSX", "250-XDSN", "250-AUTH PLAIN",
	      "250 SMTPUTF8"},
	     RELAY_EXT_SMTPUTF8,
	     0},
	    {"size-garbage", {"250-mx", "250 SIZE abc"}, RELAY_EXT_SIZE, 0},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct relay_reply r;
		struct relay_ext ext;

		relay_reply_init(&r);
		for (size_t i = 0; cases[c].lines[i]; i++)
			relay_reply_feed(&r, cases[c].lines[i]);
		relay_ext_parse(&r, &ext);
		CHECK_EQ(ext.flags, cases[c].want);
		CHECK_EQ(ext.size, cases[c].want_size);
	}
}

/* ---- dot-stuffing ---- */

/* Stuffs IN cut into chunks at CUT (0: whole) and returns the result. */
static char *
stuff_all(const char *in, size_t cut)
{
	size_t n = strlen(in), o = 0;
	unsigned char *out = malloc(RELAY_STUFF_OUT(n) + RELAY_STUFF_END + 1);
	struct relay_stuff s;

	relay_stuff_init(&s);
	for (size_t off = 0; off < n;) {
		size_t len = cut && cut < n - off ? cut : n - off;
		o += relay_stuff(&s, (const unsigned char *)in + off, len,
		                 out + o);
		off += len;
	}
	o += relay_stuff_end(&s, out + o);
	out[o] = '\0';
	return (char *)out;
}

static void
dot_stuffing(void)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
	    {"empty", "", ".\r\n"},
	    {"no-final-crlf", "a", "a\r\n.\r\n"},
	    {"plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
	    {"leading-dot", ".x\r\n", "..x\r\n.\r\n"},
	    {"lone-dot-line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
	    {"dots-inside", "a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"},
	    {"bare-lf", "a\n.b\n", "a\r\n..b\r\n.\r\n"},
	    {"bare-cr", "a\r.b", "a\r\n..b\r\n.\r\n"},
	    {"cr-at-end", "a\r", "a\r\n.\r\n"},
	    {"only-dots", "...\r\n", "....\r\n.\r\n"},
	    {"crlf-dot-crlf", "\r\n.\r\n", "\r\n..\r\n.\r\n"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++)
		/* whole, and cut at every size: chunk borders change nothing */
		for (size_t cut = 0; cut <= strlen(cases[c].in); cut++) {
			char *got = stuff_all(cases[c].in, cut);
			CHECK_STR(got, cases[c].want);
			free(got);
		}
}

/* ---- next hops ---- */

static void
hostport_splits(void)
{
	static const struct {
		const char *in;
		int ok;
		const char *host, *port;
	} cases[] = {
	    {"mx.example.com:25", 1, "mx.example.com", "25"},
	    {"127.0.0.1:2525", 1, "127.0.0.1", "2525"},
	    {"[::1]:587", 1, "::1", "587"},
	    {"mx:65535", 1, "mx", "65535"},
	    {"mx", 0, NULL, NULL},
	    {":25", 0, NULL, NULL},
	    {"mx:", 0, NULL, NULL},
	    {"mx:0", 0, NULL, NULL},
	    {"mx:65536", 0, NULL, NULL},
	    {"mx:2x5", 0, NULL, NULL},
	    {"[::1]25", 0, NULL, NULL},
	    {"[::1:25", 0, NULL, NULL},
	    {"mx:0000025", 0, NULL, NULL},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		char host[RELAY_HOST_MAX] = "", port[16] = "";
		int rc = relay_split_hostport(cases[c].in, host, sizeof(host),
		                              port, sizeof(port));
		CHECK_EQ(rc, cases[c].ok ? 0 : -1);
		if (cases[c].ok) {
			CHECK_STR(host, cases[c].host);
			CHECK_STR(port, cases[c].port);
		}
	}
}

/* An envelope of RCPTS (NULL-terminated); free with spool_env_clear. */
static void
env_make(struct spool_env *env, const char *from, const char *const *rcpts,
         const char *const *notify)
{
	size_t n = 0;

	memset(env, 0, sizeof(*env));
	snprintf(env->id, sizeof(env->id), "TESTQID");
	while (rcpts[n])
		n++;
	env->mail_from = strdup(from);
	env->rcpts = calloc(n + 1, sizeof(char *));
	if (notify)
		env->dsn_notify = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		env->rcpts[i] = strdup(rcpts[i]);
		if (notify && notify[i])
			env->dsn_notify[i] = strdup(notify[i]);
	}
	env->nrcpts = n;
}

static void
plan_groups_by_next_hop(void)
{
	char *dom_a[] = {"a.example", "A2.example", NULL};
	char *dom_b[] = {"b.example", NULL};
	char *dom_c[] = {"c.example", NULL};
	char *dom_d[] = {"d.example", NULL};
	struct cfg_route routes[] = {
	    {"a", dom_a, "mx-a.example:25", 0, CFG_TLS_REQUIRED, {0}},
	    {"b", dom_b, "MX-A.example:25", 0, CFG_TLS_REQUIRED, {0}}, /* = a's
	                                                                */
	    {"c", dom_c, "mx-a.example:25", 0, CFG_TLS_NONE, {0}}, /* own TLS */
	    {"d", dom_d, "relay.example:2525", 0, CFG_TLS_OPPORTUNISTIC, {0}},
	};
	static const char *const rcpts[] = {
	    "x@other.example", "y@a.example",  "z@B.EXAMPLE",
	    "w@c.example",     "v@a2.example", "u@other.net",
	    "t@d.example",     "nodomain",     NULL};
	struct cfg cfg = {0};
	struct spool_env env;
	struct relay_plan plan;

	cfg.hostname = "gw.test";
	cfg.routes = routes;
	cfg.nroutes = sizeof(routes) / sizeof(*routes);
	cfg.smarthost = "smart.example:25";
	cfg.smarthost_tls = CFG_TLS_OPPORTUNISTIC;
	env_make(&env, "s@example.com", rcpts, NULL);

	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK_STR(plan.helo, "gw.test");
	CHECK_EQ(plan.nlocal, 0u);
	CHECK_EQ(plan.nhops, 4u);
	if (plan.nhops == 4) {
		/* in order of first appearance */
		CHECK_STR(plan.hops[0].nexthop, "smart.example:25");
		CHECK_EQ(plan.hops[0].nrcpts, 3u); /* x, u, nodomain */
		CHECK_EQ(plan.hops[0].rcpts[0], 0u);
		CHECK_EQ(plan.hops[0].rcpts[1], 5u);
		CHECK_EQ(plan.hops[0].rcpts[2], 7u);
		CHECK_STR(plan.hops[1].nexthop, "mx-a.example:25");
		CHECK_EQ(plan.hops[1].tls, CFG_TLS_REQUIRED);
		CHECK_EQ(plan.hops[1].nrcpts, 3u); /* y, z, v */
		CHECK_EQ(plan.hops[1].rcpts[0], 1u);
		CHECK_EQ(plan.hops[1].rcpts[1], 2u);
		CHECK_EQ(plan.hops[1].rcpts[2], 4u);
		CHECK_EQ(plan.hops[2].tls, CFG_TLS_NONE);
		CHECK_EQ(plan.hops[2].nrcpts, 1u); /* w */
		CHECK_STR(plan.hops[3].nexthop, "relay.example:2525");
		CHECK_EQ(plan.hops[3].nrcpts, 1u); /* t */
	}
	relay_plan_clear(&plan);
	relay_plan_clear(&plan); /* cleared twice: fine */

	/* No smarthost: what has no route goes to the maildir. */
	cfg.smarthost = NULL;
	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK_EQ(plan.nhops, 3u);
	CHECK_EQ(plan.nlocal, 3u);
	CHECK_EQ(plan.local[0], 0u);
	CHECK_EQ(plan.local[1], 5u);
	CHECK_EQ(plan.local[2], 7u);
	relay_plan_clear(&plan);

	/* Neither: everything local. */
	cfg.nroutes = 0;
	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK_EQ(plan.nhops, 0u);
	CHECK_EQ(plan.nlocal, env.nrcpts);
	relay_plan_clear(&plan);
	spool_env_clear(&env);
}

/* Recipients share a hop only under the same certificate check: another
 * route to the same host with a pin or its own CA gets its own hop, which
 * holds a copy of the pins and a reference to the anchors. */
static void
plan_keeps_certificate_checks_apart(void)
{
	char *dom_a[] = {"a.example", NULL}, *dom_b[] = {"b.example", NULL};
	char *dom_c[] = {"c.example", NULL}, *dom_d[] = {"d.example", NULL};
	unsigned char pin[1][32] = {{1, 2, 3}};
	X509_STORE *ca = X509_STORE_new();
	struct cfg_route routes[] = {
	    {"a", dom_a, "mx.example:25", 0, CFG_TLS_REQUIRED, {0}},
	    {"b", dom_b, "mx.example:25", 0, CFG_TLS_REQUIRED, {0}},
	    {"c", dom_c, "mx.example:25", 0, CFG_TLS_REQUIRED, {0}},
	    {"d", dom_d, "mx.example:25", 0, CFG_TLS_REQUIRED, {0}},
	};
	static const char *const rcpts[] = {"x@a.example", "y@b.example",
	                                    "z@c.example", "w@d.example",
	                                    "v@b.example", NULL};
	struct cfg cfg = {0};
	struct spool_env env;
	struct relay_plan plan;

	routes[1].peer.pins = pin;
	routes[1].peer.npins = 1;
	routes[2].peer.ca = ca;
	routes[3].peer.pins = pin; /* = b's check */
	routes[3].peer.npins = 1;
	cfg.hostname = "gw.test";
	cfg.routes = routes;
	cfg.nroutes = 4;
	env_make(&env, "s@example.com", rcpts, NULL);
	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK_EQ(plan.nhops, 3u);
	if (plan.nhops == 3) {
		CHECK_EQ(plan.hops[0].nrcpts, 1u); /* x: no check */
		CHECK(plan.hops[0].check.ca == NULL &&
		      plan.hops[0].check.npins == 0);
		CHECK_EQ(plan.hops[1].nrcpts, 3u); /* y, w, v: the pin */
		CHECK_EQ(plan.hops[1].check.npins, 1u);
		CHECK(plan.hops[1].check.pins != NULL &&
		      plan.hops[1].check.pins != pin &&
		      plan.hops[1].check.pins[0][2] == 3);
		CHECK_EQ(plan.hops[2].nrcpts, 1u); /* z: the CA */
		CHECK(plan.hops[2].check.ca == ca);
	}
	relay_plan_clear(&plan);
	X509_STORE_free(ca); /* the plan's reference was its own */
	spool_env_clear(&env);
}

/* A next hop "mx": one hop per recipient domain (any case), on port 25 or
 * the one given; "[mx]:25" is a host. */
static void
plan_makes_one_mx_hop_per_domain(void)
{
	char *dom[] = {"b.example", NULL};
	struct cfg_route routes[] = {
	    {"b", dom, "[mx]:26", 0, CFG_TLS_OPPORTUNISTIC, {0}},
	};
	static const char *const rcpts[] = {"x@A.example", "y@c.example",
	                                    "z@a.EXAMPLE", "w@b.example", NULL};
	struct cfg cfg = {0};
	struct spool_env env;
	struct relay_plan plan;

	cfg.hostname = "gw.test";
	cfg.routes = routes;
	cfg.nroutes = 1;
	cfg.smarthost = "MX:2525"; /* as the parser leaves it: */
	cfg.smarthost_mx_port = 2525;
	cfg.dns_server.sin_family = AF_INET;
	cfg.dns_server.sin_port = htons(53);
	env_make(&env, "s@example.com", rcpts, NULL);
	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK_EQ(plan.nhops, 3u);
	if (plan.nhops == 3) {
		CHECK_STR(plan.hops[0].nexthop, "a.example:2525");
		CHECK(plan.hops[0].mx);
		CHECK_EQ(plan.hops[0].nrcpts, 2u); /* x, z */
		CHECK_EQ(plan.hops[0].dns.sin_port, htons(53));
		CHECK_STR(plan.hops[1].nexthop, "c.example:2525");
		CHECK_STR(plan.hops[2].nexthop, "[mx]:26");
		CHECK(!plan.hops[2].mx);
	}
	relay_plan_clear(&plan);
	cfg.smarthost = "mx";
	cfg.smarthost_mx_port = 25;
	CHECK_EQ(relay_plan_make(&cfg, &env, &plan), SG_OK);
	CHECK(plan.nhops > 0 &&
	      strcmp(plan.hops[0].nexthop, "a.example:25") == 0);
	relay_plan_clear(&plan);
	spool_env_clear(&env);
}

static void
drop_rcpt_keeps_the_rest(void)
{
	static const char *const rcpts[] = {"a@x", "b@x", "c@x", "d@x", NULL};
	static const char *const notify[] = {"NEVER", NULL, "SUCCESS",
	                                     "FAILURE", NULL};
	struct spool_env env;

	env_make(&env, "s@x", rcpts, notify);
	queue_env_drop_rcpt(&env, 1);
	CHECK_EQ(env.nrcpts, 3u);
	CHECK_STR(env.rcpts[0], "a@x");
	CHECK_STR(env.rcpts[1], "c@x");
	CHECK_STR(env.rcpts[2], "d@x");
	CHECK(env.rcpts[3] == NULL);
	CHECK_STR(env.dsn_notify[0], "NEVER");
	CHECK_STR(env.dsn_notify[1], "SUCCESS");
	CHECK_STR(env.dsn_notify[2], "FAILURE");
	queue_env_drop_rcpt(&env, 2); /* the last */
	queue_env_drop_rcpt(&env, 0); /* the first */
	queue_env_drop_rcpt(&env, 5); /* out of range: nothing */
	CHECK_EQ(env.nrcpts, 1u);
	CHECK_STR(env.rcpts[0], "c@x");
	CHECK(env.rcpts[1] == NULL);
	CHECK_STR(env.dsn_notify[0], "SUCCESS");
	queue_env_drop_rcpt(&env, 0);
	CHECK_EQ(env.nrcpts, 0u);
	CHECK(env.rcpts[0] == NULL);
	spool_env_clear(&env);
	/* no report handle: nothing to report to */
	CHECK_EQ(queue_report_rcpt_failed(NULL, &env, "a@x", SG_ERR_NOT_FOUND,
	                                  "550 no"),
	         SG_OK);
}

/* ---- whole transactions against a scripted next hop ---- */

/*
 * A next hop in a thread: accepts connections one after the other and
 * plays SCRIPT on each: "S:text" sends text (CRLF added), "C:prefix"
 * reads a line that must start with prefix, "D" reads DATA up to the
 * dot into data[], "X" closes.  After the script it answers RSET with
 * 250 and QUIT with 221, reads to EOF, and counts the connections.
 */
struct peer {
	int lfd;
	int port;
	const char *const *script;
	const char *const *again; /* script for a reused connection */
	int conns;
	int mismatch;    /* a "C:" step that did not match */
	char data[4096]; /* the last DATA as received */
	char seen[4096]; /* every command received, one per line */
	pthread_t th;
};

static int
peer_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	char c;

	while (n + 1 < len && read(fd, &c, 1) == 1) {
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	buf[n] = '\0';
	return n > 0 ? 0 : -1;
}

static void
peer_send(int fd, const char *s)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", s);

	if (write(fd, buf, (size_t)n) != n)
		return;
}

/* Runs STEPS on FD; 0, or -1 when the peer closed (X) or the client
 * went away. */
static int
peer_play(struct peer *p, int fd, const char *const *steps)
{
	char line[2048];

	for (; *steps; steps++) {
		const char *st = *steps;
		if (st[0] == 'S') {
			peer_send(fd, st + 2);
		} else if (st[0] == 'C') {
			if (peer_line(fd, line, sizeof(line)) < 0)
				return -1;
			snprintf(p->seen + strlen(p->seen),
			         sizeof(p->seen) - strlen(p->seen), "%s", line);
			if (strncmp(line, st + 2, strlen(st + 2)) != 0)
				p->mismatch = 1;
		} else if (st[0] == 'D') {
			p->data[0] = '\0';
			while (peer_line(fd, line, sizeof(line)) == 0) {
				snprintf(p->data + strlen(p->data),
				         sizeof(p->data) - strlen(p->data),
				         "%s", line);
				if (strcmp(line, ".\r\n") == 0)
					break;
			}
		} else if (st[0] == 'X') {
			return -1;
		}
	}
	return 0;
}

static void *
peer_run(void *arg)
{
	struct peer *p = arg;
	char line[2048];
	int fd;

	while ((fd = accept(p->lfd, NULL, NULL)) >= 0) {
		p->conns++;
		if (peer_play(p, fd, p->script) == 0)
			while (peer_line(fd, line, sizeof(line)) == 0) {
				if (strncmp(line, "QUIT", 4) == 0) {
					peer_send(fd, "221 bye");
					break;
				}
				if (strncmp(line, "RSET", 4) == 0) {
					peer_send(fd, "250 ok");
					if (p->again &&
					    peer_play(p, fd, p->again) < 0)
						break;
					continue;
				}
				peer_send(fd, "500 what");
			}
		close(fd);
	}
	return NULL;
}

static void
peer_start(struct peer *p, const char *const *script, const char *const *again)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->script = script;
	p->again = again;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(p->lfd >= 0);
	CHECK_EQ(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(listen(p->lfd, 4), 0);
	CHECK_EQ(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
	CHECK_EQ(pthread_create(&p->th, NULL, peer_run, p), 0);
}

static void
peer_stop(struct peer *p)
{
	shutdown(p->lfd, SHUT_RDWR); /* accept() returns */
	pthread_join(p->th, NULL);
	close(p->lfd);
}

/* A message in a temporary file: FD, read from 0. */
static int
msg_fd(const char *text)
{
	char tmpl[] = "/tmp/t_relay_XXXXXX";
	int fd = mkstemp(tmpl);

	if (fd < 0)
		return -1;
	unlink(tmpl);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One delivery of MSG for RCPTS over a hop to P; results into RES. */
static enum sg_status
deliver_to(struct relay *r, struct peer *p, enum cfg_tls tls,
           const char *const *rcpts, const char *msg, struct relay_result *res)
{
	char nexthop[64];
	size_t idx[8];
	struct relay_hop hop = {.nexthop = nexthop, .tls = tls, .rcpts = idx};
	struct spool_env env;
	enum sg_status st;
	int fd = msg_fd(msg);

	snprintf(nexthop, sizeof(nexthop), "127.0.0.1:%d", p->port);
	env_make(&env, "s@example.com", rcpts, NULL);
	free(env.dsn_ret);
	env.dsn_ret = strdup("HDRS");
	for (size_t i = 0; i < env.nrcpts && i < 8; i++)
		idx[hop.nrcpts++] = i;
	st = relay_deliver(r, "gw.test", &hop, &env, fd, res);
	close(fd);
	spool_env_clear(&env);
	return st;
}

static void
transaction_with_a_refused_rcpt(void)
{
	static const char *const script[] = {
	    "S:220-mx.test ESMTP",
	    "S:220 welcome",
	    "C:EHLO gw.test",
	    "S:250-mx.test",
	    "S:250-SIZE 100000",
	    "S:250-DSN",
	    "S:250 8BITMIME",
	    "C:MAIL FROM:<s@example.com> SIZE=",
	    "S:250 ok",
	    "C:RCPT TO:<a@x.test>",
	    "S:250 ok",
	    "C:RCPT TO:<b@x.test>",
	    "S:550-5.1.1 no such",
	    "S:550 5.1.1 user",
	    "C:DATA",
	    "S:354 go",
	    "D",
	    "S:250 2.0.0 queued as ABC",
	    NULL};
	static const char *const again[] = {"C:MAIL FROM:<s@example.com>",
	                                    "S:250 ok",
	                                    "C:RCPT TO:<a@x.test>",
	                                    "S:250 ok",
	                                    "C:RCPT TO:<b@x.test>",
	                                    "S:250 ok",
	                                    "C:DATA",
	                                    "S:354 go",
	                                    "D",
	                                    "S:250 2.0.0 again",
	                                    NULL};
	static const char *const rcpts[] = {"a@x.test", "b@x.test", NULL};
	struct relay_result res[2] = {{0}};
	struct relay *r = relay_new();
	struct peer p;

	CHECK(r != NULL);
	peer_start(&p, script, again);
	CHECK_EQ(deliver_to(r, &p, CFG_TLS_OPPORTUNISTIC, rcpts,
	                    ".hidden\r\nline\n.\r\nend", res),
	         SG_OK);
	CHECK_EQ(p.mismatch, 0);
	CHECK(strstr(p.seen, "RET=HDRS") != NULL);      /* DSN offered */
	CHECK(strstr(p.seen, "BODY=8BITMIME") == NULL); /* 7-bit message */
	CHECK_STR(p.data, "..hidden\r\nline\r\n..\r\nend\r\n.\r\n");
	CHECK_EQ(res[0].st, SG_OK);
	CHECK_STR(res[0].reply, "250 2.0.0 queued as ABC");
	CHECK_EQ(res[1].st, SG_ERR_NOT_FOUND);
	CHECK_STR(res[1].reply, "550 5.1.1 no such 5.1.1 user");
	relay_results_clear(res, 2);

	/* The same next hop again: the kept connection, RSET first. */
	CHECK_EQ(deliver_to(r, &p, CFG_TLS_OPPORTUNISTIC, rcpts,
	                    "caf\xc3\xa9\r\n", res),
	         SG_OK);
	CHECK_EQ(res[0].st, SG_OK);
	CHECK_EQ(res[1].st, SG_OK);
	CHECK_STR(res[1].reply, "250 2.0.0 again");
	CHECK(strstr(p.seen, "BODY=8BITMIME") != NULL); /* 8-bit now */
	relay_results_clear(res, 2);
	relay_free(r); /* QUIT on the kept connection */
	peer_stop(&p);
	CHECK_EQ(p.conns, 1);
	CHECK_EQ(p.mismatch, 0);
}

/* NOTIFY and ORCPT go on to a next hop that offers DSN, as received;
 * to one that does not, neither does. */
static void
dsn_parameters_passed_on(void)
{
	static const char *const with_dsn[] = {
	    "S:220 mx.test ESMTP",
	    "C:EHLO gw.test",
	    "S:250-mx.test",
	    "S:250 DSN",
	    "C:MAIL FROM:<s@example.com>",
	    "S:250 ok",
	    "C:RCPT TO:<a@x.test> NOTIFY=FAILURE ORCPT=rfc822;A+2Bx@x.test",
	    "S:250 ok",
	    "C:RCPT TO:<b@x.test>",
	    "S:250 ok",
	    "C:DATA",
	    "S:354 go",
	    "D",
	    "S:250 2.0.0 queued",
	    NULL};
	static const char *const without[] = {"S:220 mx.test ESMTP",
	                                      "C:EHLO gw.test",
	                                      "S:250 mx.test",
	                                      "C:MAIL FROM:<s@example.com>",
	                                      "S:250 ok",
	                                      "C:RCPT TO:<a@x.test>",
	                                      "S:250 ok",
	                                      "C:RCPT TO:<b@x.test>",
	                                      "S:250 ok",
	                                      "C:DATA",
	                                      "S:354 go",
	                                      "D",
	                                      "S:250 2.0.0 queued",
	                                      NULL};
	static const char *const rcpts[] = {"a@x.test", "b@x.test", NULL};
	static const char *const notify[] = {"FAILURE", NULL, NULL};
	const char *const *scripts[] = {with_dsn, without};

	for (int k = 0; k < 2; k++) {
		struct relay_result res[2] = {{0}};
		struct relay *r = relay_new();
		char nexthop[64];
		size_t idx[2] = {0, 1};
		struct relay_hop hop = {.nexthop = nexthop,
		                        .tls = CFG_TLS_NONE,
		                        .rcpts = idx,
		                        .nrcpts = 2};
		struct spool_env env;
		struct peer p;
		int fd = msg_fd("Subject: x\r\n\r\nhi\r\n");

		CHECK(r != NULL && fd >= 0);
		peer_start(&p, scripts[k], NULL);
		snprintf(nexthop, sizeof(nexthop), "127.0.0.1:%d", p.port);
		env_make(&env, "s@example.com", rcpts, notify);
		env.dsn_orcpt = calloc(3, sizeof(char *));
		env.dsn_orcpt[0] = strdup("rfc822;A+2Bx@x.test");
		CHECK_EQ(relay_deliver(r, "gw.test", &hop, &env, fd, res),
		         SG_OK);
		close(fd);
		CHECK_EQ(res[0].st, SG_OK);
		CHECK_EQ(res[1].st, SG_OK);
		if (k == 1) {
			CHECK(strstr(p.seen, "ORCPT") == NULL);
			CHECK(strstr(p.seen, "NOTIFY") == NULL);
		}
		CHECK(strstr(p.seen, "<b@x.test> ") == NULL);
		relay_results_clear(res, 2);
		spool_env_clear(&env);
		relay_free(r);
		peer_stop(&p);
		CHECK_EQ(p.mismatch, 0);
	}
}

static void
next_hops_that_refuse_or_break(void)
{
	static const char *const greet_421[] = {"S:421 busy", "X", NULL};
	static const char *const garbage[] = {"S:220 hi", "C:EHLO",
	                                      "S:hello there", "X", NULL};
	static const char *const no_tls[] = {"S:220 hi", "C:EHLO", "S:250-mx",
	                                     "S:250 SIZE 10", NULL};
	static const char *const mail_550[] = {
	    "S:220 hi", "C:EHLO", "S:250 mx", "C:MAIL", "S:550 5.7.1 no", NULL};
	static const char *const drop_in_data[] = {
	    "S:220 hi", "C:EHLO", "S:250 mx", "C:MAIL", "S:250 ok", "C:RCPT",
	    "S:250 ok", "C:DATA", "S:354 go", "X",      NULL};
	static const char *const too_big[] = {"S:220 hi", "C:EHLO", "S:250-mx",
	                                      "S:250 SIZE 2", NULL};
	static const struct {
		const char *name;
		const char *const *script;
		enum cfg_tls tls;
		enum sg_status want;
		const char *want_reply; /* a part of it */
	} cases[] = {
	    {"greeting-421", greet_421, CFG_TLS_NONE, SG_ERR_TEMP, "421 busy"},
	    {"garbage-reply", garbage, CFG_TLS_NONE, SG_ERR_TEMP, "malformed"},
	    {"tls-required-not-offered", no_tls, CFG_TLS_REQUIRED, SG_ERR_TEMP,
	     "STARTTLS"},
	    {"mail-refused", mail_550, CFG_TLS_NONE, SG_ERR_NOT_FOUND,
	     "550 5.7.1 no"},
	    {"closed-in-data", drop_in_data, CFG_TLS_NONE, SG_ERR_TEMP,
	     "127.0.0.1"},
	    {"over-size", too_big, CFG_TLS_NONE, SG_ERR_LIMIT, "SIZE limit"},
	};
	static const char *const rcpts[] = {"a@x.test", NULL};

	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct relay_result res[1] = {{0}};
		struct relay *r = relay_new();
		struct peer p;

		peer_start(&p, cases[c].script, NULL);
		CHECK_EQ(deliver_to(r, &p, cases[c].tls, rcpts, "x\r\n", res),
		         cases[c].want);
		CHECK_EQ(res[0].st, cases[c].want);
		CHECK(res[0].reply != NULL &&
		      strstr(res[0].reply, cases[c].want_reply) != NULL);
		relay_results_clear(res, 1);
		relay_free(r);
		peer_stop(&p);
	}
}

static void
helo_when_ehlo_is_refused(void)
{
	static const char *const script[] = {
	    "S:220 old.test",   "C:EHLO gw.test",
	    "S:502 5.5.1 what", "C:HELO gw.test",
	    "S:250 old.test",   "C:MAIL FROM:<>",
	    "S:250 ok",         "C:RCPT TO:<a@x.test>",
	    "S:250 ok",         "C:DATA",
	    "S:354 go",         "D",
	    "S:250 ok",         NULL};
	static const char *const rcpts[] = {"a@x.test", NULL};
	struct relay_result res[1] = {{0}};
	struct relay *r = relay_new();
	char nexthop[64];
	size_t idx[1] = {0};
	struct relay_hop hop = {.nexthop = nexthop,
	                        .tls = CFG_TLS_OPPORTUNISTIC,
	                        .rcpts = idx,
	                        .nrcpts = 1};
	struct spool_env env;
	struct peer p;
	int fd = msg_fd("Subject: x\r\n\r\nhi\r\n");

	peer_start(&p, script, NULL);
	snprintf(nexthop, sizeof(nexthop), "127.0.0.1:%d", p.port);
	env_make(&env, "", rcpts, NULL); /* the null sender */
	CHECK_EQ(relay_deliver(r, "gw.test", &hop, &env, fd, res), SG_OK);
	CHECK_EQ(res[0].st, SG_OK);
	/* no extension was offered: no parameter is sent */
	CHECK(strstr(p.seen, "MAIL FROM:<>\r\n") != NULL);
	CHECK(strstr(p.seen, "STARTTLS") == NULL);
	CHECK_STR(p.data, "Subject: x\r\n\r\nhi\r\n.\r\n");
	relay_results_clear(res, 1);
	spool_env_clear(&env);
	close(fd);
	relay_free(r);
	peer_stop(&p);
	CHECK_EQ(p.mismatch, 0);
}

static void
nobody_listening_defers(void)
{
	static const char *const rcpts[] = {"a@x.test", NULL};
	static const char *const none[] = {NULL};
	struct relay_result res[1] = {{0}};
	struct relay *r = relay_new();
	struct peer p;

	peer_start(&p, none, NULL); /* for a free port only */
	peer_stop(&p);
	CHECK_EQ(deliver_to(r, &p, CFG_TLS_NONE, rcpts, "x\r\n", res),
	         SG_ERR_TEMP);
	CHECK(res[0].reply && strstr(res[0].reply, "connect") != NULL);
	relay_results_clear(res, 1);
	relay_free(r);
	relay_free(NULL);
}

static const struct unit_case cases[] = {
    {"reply_parses", reply_parses},
    {"reply_refuses_malformed", reply_refuses_malformed},
    {"reply_is_bounded", reply_is_bounded},
    {"reply_status_maps", reply_status_maps},
    {"ehlo_keywords", ehlo_keywords},
    {"dot_stuffing", dot_stuffing},
    {"hostport_splits", hostport_splits},
    {"plan_groups_by_next_hop", plan_groups_by_next_hop},
    {"plan_keeps_certificate_checks_apart",
     plan_keeps_certificate_checks_apart},
    {"plan_makes_one_mx_hop_per_domain", plan_makes_one_mx_hop_per_domain},
    {"drop_rcpt_keeps_the_rest", drop_rcpt_keeps_the_rest},
    {"transaction_with_a_refused_rcpt", transaction_with_a_refused_rcpt},
    {"dsn_parameters_passed_on", dsn_parameters_passed_on},
    {"next_hops_that_refuse_or_break", next_hops_that_refuse_or_break},
    {"helo_when_ehlo_is_refused", helo_when_ehlo_is_refused},
    {"nobody_listening_defers", nobody_listening_defers},
    {NULL, NULL},
};

const struct unit_suite suite_relay = {"relay", cases};
