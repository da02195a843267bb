/*
 * t_dsn.c - delivery status notifications: the report's structure read
 * back by a MIME parser (GMime, independent of how it was written), the
 * per-recipient fields and Status codes, RET=HDRS against RET=FULL, the
 * size bound, values that try to add header lines, the notification's
 * envelope, and a signed notification that verifies against its signer's
 * CA (and a signer that cannot sign, refused).  Time and certificates are
 * injected.
 */
#include "unit.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/gmime_dl.h"

#include "daemon/dsn.h"
#include "daemon/queue.h"
#include "daemon/spool.h"
#include "lib/sg_int.h"
#include "smimegate.h"

#define ORIG                                                                   \
	"From: Sender <sender@example.com>\r\n"                                \
	"To: rcpt@example.net\r\n"                                             \
	"Subject: the original\r\n"                                            \
	"\r\n"                                                                 \
	"The body of the original.\r\n"

#define T0 1700000000 /* 2023-11-14 */

/* ---- fixtures ---- */

/* ORIG (or DATA) as a readable fd positioned at 0. */
static int
orig_fd(const char *data, size_t len)
{
	char path[] = "/tmp/t_dsn_XXXXXX";
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return -1;
	unlink(path);
	CHECK_EQ(write(fd, data, len), (ssize_t)len);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static const struct dsn_rcpt two_rcpts[] = {
    {"nokey@example.net", SG_ERR_NOT_RECIPIENT,
     "no encryption certificate for <nokey@example.net>",
     "rfc822;No+2BKey@example.net"},
    {"gone@example.org", SG_ERR_NOT_FOUND,
     "550 5.1.1 <gone@example.org>: "
     "no such user",
     NULL},
};

static void
info_init(struct dsn_info *info)
{
	memset(info, 0, sizeof(*info));
	info->hostname = "gw.test";
	info->postmaster = "postmaster@gw.test";
	info->queue_id = "0123456789ABCDEFGHJKMNPQ";
	info->sender = "sender@example.com";
	info->arrival = T0;
	info->now = T0 + 60;
	info->rcpts = two_rcpts;
	info->nrcpts = 2;
}

/* Builds INFO's notification with DATA (NULL: no original) as the
 * original; the text (NUL-terminated) or NULL. */
static char *
build(const struct dsn_info *info, const char *data, size_t *len)
{
	char *out = NULL;
	size_t n = 0;
	int fd = data ? orig_fd(data, strlen(data)) : -1;

	CHECK_EQ(dsn_build(info, fd, &out, &n), SG_OK);
	if (fd >= 0)
		close(fd);
	CHECK(out == NULL || strlen(out) == n);
	if (len)
		*len = n;
	return out;
}

/* The message parsed by GMime; unref it. */
static GMimeMessage *
parse(const char *text, size_t len)
{
	GMimeStream *s;
	GMimeParser *p;
	GMimeMessage *m;

	g_mime_init();
	s = g_mime_stream_mem_new_with_buffer(text, len);
	p = g_mime_parser_new_with_stream(s);
	m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(s);
	CHECK(m != NULL);
	return m;
}

/* Whether part I of the top-level multipart of M has type TYPE/SUB. */
static int
part_is(GMimeMessage *m, int i, const char *type, const char *sub)
{
	GMimeObject *top = g_mime_message_get_mime_part(m);
	GMimeObject *part;
	GMimeContentType *ct;

	if (top == NULL || !GMIME_IS_MULTIPART(top) ||
	    i >= g_mime_multipart_get_count(GMIME_MULTIPART(top)))
		return 0;
	part = g_mime_multipart_get_part(GMIME_MULTIPART(top), i);
	ct = g_mime_object_get_content_type(part);
	return ct != NULL && g_mime_content_type_is_type(ct, type, sub);
}

static int
nparts(GMimeMessage *m)
{
	GMimeObject *top = g_mime_message_get_mime_part(m);

	return top != NULL && GMIME_IS_MULTIPART(top)
	           ? g_mime_multipart_get_count(GMIME_MULTIPART(top))
	           : -1;
}

/* Whether TEXT has the line LINE (CRLF-terminated, anywhere). */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\r' &&
		    p[n + 1] == '\n')
			return 1;
	return 0;
}

/* Whether some line of TEXT starts with PREFIX. */
static int
line_starts(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncasecmp(p, prefix, n) == 0)
			return 1;
	}
	return 0;
}

/* ---- cases ---- */

static void
structure_of_a_full_report(void)
{
	struct dsn_info info;
	struct sg_ctx *ctx = NULL;
	struct sg_msg *msg = NULL;
	GMimeMessage *m;
	char *text, *ct;
	size_t len;

	info_init(&info);
	text = build(&info, ORIG, &len);
	if (text == NULL)
		return;
	/* The engine reads it as a message ... */
	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	CHECK_EQ(sg_msg_open_mem(ctx, text, len, &msg), SG_OK);
	ct = msg ? sg_msg_header(msg, "Content-Type") : NULL;
	CHECK(ct != NULL && strstr(ct, "multipart/report") != NULL);
	CHECK(ct != NULL && strstr(ct, "report-type=delivery-status") != NULL);
	free(ct);
	sg_msg_free(msg);
	sg_ctx_free(ctx);
	/* ... and a MIME parser finds the three parts of RFC 3464. */
	m = parse(text, len);
	CHECK_EQ(nparts(m), 3);
	CHECK(part_is(m, 0, "text", "plain"));
	CHECK(part_is(m, 1, "message", "delivery-status"));
	CHECK(part_is(m, 2, "message", "rfc822"));
	CHECK(g_mime_message_get_subject(m) != NULL &&
	      strcmp(g_mime_message_get_subject(m),
	             "Undelivered Mail Returned to Sender") == 0);
	g_object_unref(m);
	/* Who it is from and to, and that it is automatic. */
	CHECK(
	    has_line(text, "From: Mail Delivery System <postmaster@gw.test>"));
	CHECK(has_line(text, "To: <sender@example.com>"));
	CHECK(has_line(text, "Auto-Submitted: auto-replied"));
	CHECK(has_line(text, "MIME-Version: 1.0"));
	CHECK(strstr(text, "\r\nMessage-ID: <0123456789ABCDEFGHJKMNPQ.") !=
	      NULL);
	CHECK(strstr(text, "@gw.test>\r\n") != NULL);
	CHECK(line_starts(text, "Date: "));
	/* The report: per message, then per recipient. */
	CHECK(has_line(text, "Reporting-MTA: dns; gw.test"));
	CHECK(line_starts(text, "Arrival-Date: "));
	CHECK(!line_starts(text, "Original-Envelope-Id:"));
	CHECK(has_line(text, "Final-Recipient: rfc822; nokey@example.net"));
	CHECK(has_line(text, "Final-Recipient: rfc822; gone@example.org"));
	/* ORCPT, decoded from xtext, for the one recipient that gave it,
	 * just before its Final-Recipient (RFC 3464 2.3) */
	CHECK(strstr(text,
	             "\r\nOriginal-Recipient: rfc822;No+Key@example.net"
	             "\r\nFinal-Recipient: rfc822; nokey@example.net") != NULL);
	CHECK(strstr(strstr(text, "Original-Recipient:") + 1,
	             "Original-Recipient:") == NULL);
	CHECK(has_line(text, "Action: failed"));
	CHECK(has_line(text, "Status: 5.7.5")); /* the status table's */
	CHECK(has_line(text, "Status: 5.1.1")); /* the next hop's */
	CHECK(has_line(text, "Diagnostic-Code: smtp; 550 5.1.1 "
	                     "<gone@example.org>: no such user"));
	CHECK(has_line(text, "Diagnostic-Code: X-Smimegate; no encryption "
	                     "certificate for <nokey@example.net>"));
	/* The explanation names the queue ID and each reason. */
	CHECK(has_line(text, "Queue ID: 0123456789ABCDEFGHJKMNPQ"));
	CHECK(strstr(text, "<nokey@example.net>:\r\n    no encryption "
	                   "certificate for <nokey@example.net>\r\n") != NULL);
	/* The original, whole. */
	CHECK(strstr(text, "The body of the original.\r\n") != NULL);
	CHECK(strstr(text, "Subject: the original\r\n") != NULL);
	CHECK(len >= 4 && strcmp(text + len - 4, "--\r\n") == 0);
	free(text);
}

static void
status_codes(void)
{
	static const struct {
		const char *name;
		enum sg_status st;
		const char *reply;
		int expired;
		const char *want;
	} cases[] = {
	    {"table", SG_ERR_BAD_SIGNATURE, "", 0, "5.7.7"},
	    {"reply", SG_ERR_NOT_FOUND, "550 5.1.1 no such user", 0, "5.1.1"},
	    {"continuation", SG_ERR_NOT_FOUND, "550-5.2.2 full", 0, "5.2.2"},
	    {"no-enhanced", SG_ERR_UNTRUSTED, "550 go away", 0, "5.7.5"},
	    {"bad-enhanced", SG_ERR_UNTRUSTED, "550 5.1.1234 x", 0, "5.7.5"},
	    {"temporary-reply", SG_ERR_UNTRUSTED, "451 4.2.2 later", 0,
	     "5.7.5"},
	    {"temporary-table", SG_ERR_TEMP, NULL, 0, "5.0.0"},
	    {"expired", SG_ERR_TEMP, "451 4.4.1 no answer", 1, "5.4.7"},
	};
	char want[32];

	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct dsn_rcpt r = {"x@example.net", cases[c].st,
		                     cases[c].reply, NULL};
		struct dsn_info info;
		char *text;

		info_init(&info);
		info.rcpts = &r;
		info.nrcpts = 1;
		info.expired = cases[c].expired;
		text = build(&info, ORIG, NULL);
		snprintf(want, sizeof(want), "Status: %s", cases[c].want);
		if (text == NULL || !has_line(text, want))
			fprintf(stderr, "  case %s\n", cases[c].name);
		CHECK(text != NULL && has_line(text, want));
		/* Diagnostic-Code only with a reply. */
		CHECK(text != NULL &&
		      line_starts(text, "Diagnostic-Code:") ==
		          (cases[c].reply != NULL && cases[c].reply[0]));
		if (cases[c].expired)
			CHECK(text != NULL &&
			      strstr(text, "longer than allowed") != NULL);
		free(text);
	}
}

static void
ret_hdrs_returns_headers_only(void)
{
	static const struct {
		const char *ret;
		int full;
	} cases[] = {{NULL, 1}, {"FULL", 1}, {"HDRS", 0}, {"hdrs", 0}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct dsn_info info;
		GMimeMessage *m;
		char *text;
		size_t len;

		info_init(&info);
		info.ret = cases[c].ret;
		if ((text = build(&info, ORIG, &len)) == NULL)
			continue;
		m = parse(text, len);
		CHECK_EQ(nparts(m), 3);
		CHECK(part_is(m, 2, cases[c].full ? "message" : "text",
		              cases[c].full ? "rfc822" : "rfc822-headers"));
		g_object_unref(m);
		CHECK(strstr(text, "Subject: the original\r\n") != NULL);
		CHECK((strstr(text, "The body of the original.") != NULL) ==
		      cases[c].full);
		CHECK((strstr(text, "RET=HDRS") != NULL) == !cases[c].full);
		free(text);
	}
}

static void
large_original_returns_headers_only(void)
{
	struct dsn_info info;
	GMimeMessage *m;
	char *big, *text;
	size_t len, blen = 8192;

	info_init(&info);
	info.max_original = 1024;
	/* Exactly at the bound: whole. */
	big = malloc(blen + 1);
	CHECK(big != NULL);
	if (big == NULL)
		return;
	memset(big, 'a', blen);
	memcpy(big, ORIG, strlen(ORIG));
	big[1022] = '\r';
	big[1023] = '\n';
	big[1024] = '\0';
	text = build(&info, big, &len);
	CHECK(text != NULL && strstr(text, "message/rfc822") != NULL);
	free(text);
	/* One octet more: headers only, and said so. */
	big[1024] = 'a';
	big[1025] = '\0';
	text = build(&info, big, &len);
	if (text != NULL) {
		m = parse(text, len);
		CHECK(part_is(m, 2, "text", "rfc822-headers"));
		g_object_unref(m);
		CHECK(strstr(text, "larger than 1 KB") != NULL);
		CHECK(strstr(text, "The body of the original.") == NULL);
		CHECK(strstr(text, "Subject: the original\r\n") != NULL);
		CHECK(strstr(text, "aaaa") == NULL);
	}
	free(text);
	/* A header block beyond the bound is cut at a line end. */
	big[0] = '\0';
	for (int i = 0; strlen(big) + 40 < blen; i++)
		snprintf(big + strlen(big), blen - strlen(big),
		         "X-Filler-%04d: %020d\r\n", i, i);
	strcat(big, "\r\nbody\r\n");
	text = build(&info, big, &len);
	if (text != NULL) {
		const char *h = strstr(text, "text/rfc822-headers\r\n\r\n");
		const char *end = h ? strstr(h, "\r\n\r\n--=_") : NULL;
		CHECK(h != NULL && end != NULL);
		if (h && end) {
			h += strlen("text/rfc822-headers\r\n\r\n");
			CHECK((size_t)(end + 2 - h) <= 1024);
			CHECK(strncmp(end - 20, "00000000", 8) == 0);
		}
		CHECK(len < 1024 + 4096);
	}
	free(text);
	free(big);
}

static void
header_injection_stays_on_one_line(void)
{
	static const struct dsn_rcpt evil[] = {
	    {"a@example.net\r\nBcc: victim@example.org", SG_ERR_NOT_FOUND,
	     "550 5.1.1 no\r\nX-Injected: 1\r\n\r\nbody\n.\r\n",
	     "rfc822;x+0D+0ABcc:+20v@example.org"},
	    {"b@example.net", SG_ERR_NOT_FOUND, "550 5.1.1 \x80\xff\x01 x",
	     NULL},
	};
	struct dsn_info info;
	GMimeMessage *m;
	char *text;
	size_t len;

	info_init(&info);
	info.rcpts = evil;
	info.nrcpts = 2;
	info.sender = "sender@example.com\r\nBcc: spy@example.org";
	info.hostname = "gw.test\r\nX-Host: 1";
	info.envid = "id\r\nX-Envid: 1";
	if ((text = build(&info, ORIG, &len)) == NULL)
		return;
	CHECK(!line_starts(text, "Bcc:"));
	CHECK(!line_starts(text, "X-Injected:"));
	CHECK(
	    has_line(text, "Original-Recipient: rfc822;x  Bcc: v@example.org"));
	CHECK(!line_starts(text, "X-Host:"));
	CHECK(!line_starts(text, "X-Envid:"));
	CHECK(!line_starts(text, "body"));
	CHECK(has_line(text, "Diagnostic-Code: smtp; 550 5.1.1 no  X-Injected: "
	                     "1    body .  "));
	CHECK(has_line(text, "Final-Recipient: rfc822; a@example.net  Bcc: "
	                     "victim@example.org"));
	CHECK(has_line(text, "To: <sender@example.com  Bcc: spy@example.org>"));
	CHECK(has_line(text, "Diagnostic-Code: smtp; 550 5.1.1 ??  x"));
	/* Still the same three parts, nothing 8-bit outside the original. */
	m = parse(text, len);
	CHECK_EQ(nparts(m), 3);
	g_object_unref(m);
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)text[i] < 0x80);
	free(text);
}

static void
long_values_are_cut(void)
{
	char addr[3000], reply[3000];
	struct dsn_rcpt r = {addr, SG_ERR_NOT_FOUND, reply, NULL};
	struct dsn_info info;
	char *text;

	memset(addr, 'a', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	memcpy(reply, "550 5.1.1 ", 10);
	memset(reply + 10, 'r', sizeof(reply) - 11);
	reply[sizeof(reply) - 1] = '\0';
	info_init(&info);
	info.rcpts = &r;
	info.nrcpts = 1;
	if ((text = build(&info, NULL, NULL)) == NULL)
		return;
	/* No line longer than RFC 5322's 998 octets. */
	for (const char *p = text, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		CHECK(nl != NULL);
		if (nl == NULL)
			break;
		CHECK((size_t)(nl - p) <= 999);
	}
	CHECK(strstr(text, "...") != NULL);
	free(text);
}

static void
envid_and_missing_original(void)
{
	struct dsn_info info;
	GMimeMessage *m;
	char *text;
	size_t len;

	info_init(&info);
	info.envid = "QQ+2B314";
	if ((text = build(&info, NULL, &len)) == NULL)
		return;
	CHECK(has_line(text, "Original-Envelope-Id: QQ+314"));
	m = parse(text, len);
	CHECK_EQ(nparts(m), 2); /* no original to return */
	g_object_unref(m);
	CHECK(strstr(text, "could not be read") != NULL);
	free(text);
}

static void
refuses_what_cannot_be_notified(void)
{
	struct dsn_info info;
	char *out = (char *)"untouched";
	size_t len = 7;

	info_init(&info);
	info.sender = "";
	CHECK_EQ(dsn_build(&info, -1, &out, &len), SG_ERR_USAGE);
	info_init(&info);
	info.sender = NULL;
	CHECK_EQ(dsn_build(&info, -1, &out, &len), SG_ERR_USAGE);
	info_init(&info);
	info.nrcpts = 0;
	CHECK_EQ(dsn_build(&info, -1, &out, &len), SG_ERR_USAGE);
	info_init(&info);
	info.hostname = NULL;
	CHECK_EQ(dsn_build(&info, -1, &out, &len), SG_ERR_USAGE);
	CHECK_STR(out, "untouched");
	CHECK_EQ(len, 7);
}

static void
notify_parameter(void)
{
	static const struct {
		const char *notify;
		int want;
	} cases[] = {
	    {NULL, 1},
	    {"", 1},
	    {"FAILURE", 1},
	    {"SUCCESS,FAILURE", 1},
	    {"FAILURE,DELAY", 1},
	    {"NEVER", 0},
	    {"SUCCESS", 0},
	    {"SUCCESS,DELAY", 0},
	    {"FAILUREX", 0},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++)
		CHECK_EQ(dsn_wants_failure(cases[c].notify), cases[c].want);
}

static void
notification_envelope(void)
{
	struct spool_env env;

	CHECK_EQ(dsn_env_init(&env, "sender@example.com", "gw.test", T0),
	         SG_OK);
	CHECK_STR(env.mail_from, "");
	CHECK_EQ(env.nrcpts, 1);
	CHECK_STR(env.rcpts[0], "sender@example.com");
	CHECK(env.rcpts[1] == NULL);
	CHECK_STR(env.listener, DSN_LISTENER);
	CHECK_EQ(env.received, T0);
	CHECK(dsn_is_notification(&env));
	/* A configured listener of that name is not a notification. */
	env.role = 1;
	CHECK(!dsn_is_notification(&env));
	env.role = 0;
	free(env.listener);
	env.listener = strdup("out");
	CHECK(!dsn_is_notification(&env));
	spool_env_clear(&env);
	/* Never to the null sender. */
	CHECK_EQ(dsn_env_init(&env, "", "gw.test", T0), SG_ERR_USAGE);
	CHECK_EQ(dsn_env_init(&env, NULL, "gw.test", T0), SG_ERR_USAGE);
	CHECK(!dsn_is_notification(NULL));
}

/* ---- signing ---- */

struct signers {
	struct sg_ctx *ctx;
	struct sg_key *ca, *notifier;
	struct sg_certs *trust;
};

static void
signers_init(struct signers *s)
{
	static const char *const emails[] = {"postmaster@gw.test", NULL};
	struct sg_cert_req req = {.days = 30, .key = SG_KEY_EC_P256};

	memset(s, 0, sizeof(*s));
	CHECK_EQ(sg_ctx_new(&s->ctx), SG_OK);
	req.ca = 1;
	req.cn = "Notification CA";
	CHECK_EQ(sg_cert_create(s->ctx, &req, NULL, &s->ca), SG_OK);
	req.ca = 0;
	req.cn = "Mail Delivery System";
	req.san_emails = emails;
	CHECK_EQ(sg_cert_create(s->ctx, &req, s->ca, &s->notifier), SG_OK);
	CHECK_EQ(sg_key_get_certs(s->ca, &s->trust), SG_OK);
}

static void
signers_clear(struct signers *s)
{
	sg_key_free(s->ca);
	sg_key_free(s->notifier);
	sg_certs_free(s->trust);
	sg_ctx_free(s->ctx);
}

static int
sink_buf(void *arg, const void *p, size_t n)
{
	return sg_buf_add(arg, p, n);
}

static void
signed_report_verifies(void)
{
	/* An 8-bit original makes the engine re-encode inside. */
	static const char orig8[] =
	    "From: s@example.com\r\n"
	    "Subject: caf\xc3\xa9\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "Gr\xc3\xbc\xc3\x9f"
	    "e.\r\n";
	const char *origs[] = {ORIG, orig8};
	struct signers s;

	signers_init(&s);
	for (size_t c = 0; c < 2; c++) {
		struct dsn_info info;
		struct sg_verify_result res;
		struct sg_msg *msg = NULL, *inner = NULL;
		struct sg_buf content;
		struct sg_sink sink = {sink_buf, &content};
		char *text, *sig = NULL;
		size_t len, siglen = 0;
		GMimeMessage *m;

		info_init(&info);
		if ((text = build(&info, origs[c], &len)) == NULL)
			continue;
		CHECK_EQ(dsn_sign(s.ctx, s.notifier, text, len, &sig, &siglen),
		         SG_OK);
		free(text);
		if (sig == NULL)
			continue;
		CHECK(strlen(sig) == siglen);
		CHECK(strstr(sig, "micalg=sha-256") != NULL);
		CHECK(has_line(sig, "To: <sender@example.com>"));
		CHECK(has_line(sig, "Auto-Submitted: auto-replied"));
		CHECK_EQ(sg_msg_open_mem(s.ctx, sig, siglen, &msg), SG_OK);
		CHECK_EQ(sg_msg_smime_kind(msg), SG_KIND_SIGNED_DETACHED);
		memset(&res, 0, sizeof(res));
		sg_buf_init(&content);
		CHECK_EQ(sg_verify(s.ctx, msg, s.trust, &res, &sink), SG_OK);
		CHECK(res.signature_ok && res.chain_ok);
		CHECK_STR(res.digest, "sha256");
		sg_verify_result_clear(&res);
		sg_msg_free(msg);
		/* Inside the signature: the report, still three parts. */
		CHECK(content.len > 0 &&
		      strstr(content.data, "report-type=delivery-status"));
		m = parse(content.data, content.len);
		CHECK_EQ(nparts(m), 3);
		CHECK(part_is(m, 1, "message", "delivery-status"));
		CHECK(part_is(m, 2, "message", "rfc822"));
		g_object_unref(m);
		CHECK_EQ(
		    sg_msg_open_mem(s.ctx, content.data, content.len, &inner),
		    SG_OK);
		sg_msg_free(inner);
		CHECK(strstr(content.data,
		             "Final-Recipient: rfc822; gone@example.org") !=
		      NULL);
		sg_buf_clear(&content);
		free(sig);
	}
	signers_clear(&s);
}

static void
unusable_signer_is_refused(void)
{
	struct signers s;
	struct dsn_info info;
	char *text, *sig = (char *)"untouched";
	size_t len, siglen = 3;

	signers_init(&s);
	info_init(&info);
	if ((text = build(&info, ORIG, &len)) != NULL) {
		/* Its certificate has expired: the caller sends unsigned. */
		sg_ctx_set_time(s.ctx, time(NULL) + 400 * 86400);
		CHECK_EQ(dsn_sign(s.ctx, s.notifier, text, len, &sig, &siglen),
		         SG_ERR_EXPIRED);
		CHECK_STR(sig, "untouched");
		CHECK_EQ(siglen, 3);
		sg_ctx_set_time(s.ctx, 0);
		CHECK_EQ(dsn_sign(s.ctx, NULL, text, len, &sig, &siglen),
		         SG_ERR_USAGE);
	}
	free(text);
	signers_clear(&s);
}

/* ---- the queue keeps what it could not report ---- */

struct flaky {
	pthread_mutex_t lock;
	int bounces;            /* calls of bounce */
	int failures;           /* the first FAILURES calls fail (SG_ERR_IO) */
	size_t queued_at_first; /* spool_count during the first call */
	struct spool *sp;
};

static enum sg_status
flaky_deliver(void *arg, struct spool_env *env, int out_fd,
              struct queue_report *rep, char *reply, size_t len)
{
	snprintf(reply, len, "550 5.1.1 no such user");
	return SG_ERR_NOT_FOUND; /* permanent: bounced */
}

static enum sg_status
flaky_bounce(void *arg, const struct spool_env *env, enum sg_status st,
             const char *reason)
{
	struct flaky *fl = arg;
	enum sg_status rc;

	pthread_mutex_lock(&fl->lock);
	if (fl->bounces == 0)
		fl->queued_at_first = spool_count(fl->sp);
	rc = fl->bounces++ < fl->failures ? SG_ERR_IO : SG_OK;
	pthread_mutex_unlock(&fl->lock);
	return rc;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
queue_keeps_a_message_whose_notification_failed(void)
{
	static const struct queue_ops ops = {NULL, flaky_deliver, flaky_bounce,
	                                     NULL};
	static const struct queue_params fast = {1, 1, 3600};
	char dir[] = "/tmp/t_dsn_q_XXXXXX", spool[64], err[256];
	struct flaky fl = {.failures = 2};
	struct spool_env env = {0};
	struct spool_rx *rx = NULL;
	struct queue *q = NULL;
	char *rcpts[] = {"r@example.net", NULL};

	pthread_mutex_init(&fl.lock, NULL);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(spool, sizeof(spool), "%s/spool", dir);
	CHECK_EQ(spool_open(spool, &fl.sp, err, sizeof(err)), SG_OK);
	if (fl.sp == NULL)
		return;
	env.mail_from = "s@example.com";
	env.rcpts = rcpts;
	env.nrcpts = 1;
	env.listener = "out";
	env.role = 1;
	CHECK_EQ(spool_rx_begin(fl.sp, &rx), SG_OK);
	CHECK_EQ(spool_rx_write(rx, ORIG, strlen(ORIG)), SG_OK);
	CHECK_EQ(spool_rx_commit(rx, &env), SG_OK);
	q = queue_new(fl.sp, 1, &ops, &fl);
	CHECK(q != NULL);
	if (q != NULL) {
		queue_set_params(q, &fast);
		CHECK_EQ(queue_start(q), SG_OK);
		for (int i = 0; i < 1000 && spool_count(fl.sp) > 0; i++)
			usleep(10000);
		queue_free(q);
	}
	/* Tried until the notification was queued; only then removed. */
	CHECK_EQ(fl.bounces, 3);
	CHECK_EQ(fl.queued_at_first, 1u);
	CHECK_EQ(spool_count(fl.sp), 0u);
	spool_close(fl.sp);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_destroy(&fl.lock);
}

static const struct unit_case cases[] = {
    {"structure_of_a_full_report", structure_of_a_full_report},
    {"status_codes", status_codes},
    {"ret_hdrs_returns_headers_only", ret_hdrs_returns_headers_only},
    {"large_original_returns_headers_only",
     large_original_returns_headers_only},
    {"header_injection_stays_on_one_line", header_injection_stays_on_one_line},
    {"long_values_are_cut", long_values_are_cut},
    {"envid_and_missing_original", envid_and_missing_original},
    {"refuses_what_cannot_be_notified", refuses_what_cannot_be_notified},
    {"notify_parameter", notify_parameter},
    {"notification_envelope", notification_envelope},
    {"signed_report_verifies", signed_report_verifies},
    {"unusable_signer_is_refused", unusable_signer_is_refused},
    {"queue_keeps_a_message_whose_notification_failed",
     queue_keeps_a_message_whose_notification_failed},
    {NULL, NULL},
};

const struct unit_suite suite_dsn = {"dsn", cases};
