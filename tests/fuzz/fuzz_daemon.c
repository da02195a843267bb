/*
 * fuzz_daemon.c - libFuzzer target for the daemon's parsers of attacker
 * input: SMTP command syntax and AUTH PLAIN (smtp_parse.c, smtp_auth.c),
 * the next hop's replies, EHLO keywords and dot-stuffing (relay.c), the
 * spool's and quarantine's value encoding (kvtext.c), and the filter
 * language with its regular expressions (src/policy/filter_*.c: an
 * administrator's pattern, matched against message text).
 *
 * The first input octet picks the parser; the rest is its input, copied
 * into a heap buffer of exactly its size (so that ASan sees a read one
 * past it) and cut at a small bound per parser.  Where an output has an
 * invariant that is cheap to check, a violation aborts.
 *
 * Selectors (the first octet modulo 7; printable: '1' SMTP, '2' AUTH,
 * '3' replies, '4' dot-stuffing, '5' kvtext, '6' a filter file, '0' a
 * pattern NUL text).  The texts are small, so a timeout here is a
 * pattern that compiles or matches slowly on little text; how matching
 * grows with a long text is not measured here.
 *
 *   make fuzz FUZZ_SECONDS=60
 */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_dl.h"
#include "daemon/kvtext.h"
#include "daemon/relay.h"
#include "daemon/smtp_int.h"
#include "policy/filter.h"
#include "policy/rx.h"

#define CMD_MAX    512  /* an SMTP command line */
#define FILTER_MAX 8192 /* a filter file */
#define RE_MAX     512  /* a pattern */
#define TEXT_MAX   4096 /* the text it is matched against */
#define STUFF_MAX  4096 /* message octets to dot-stuff */
#define REPLY_MAX  8192 /* reply lines of a next hop */
#define KV_MAX     1024 /* an encoded value */

/* The users file for AUTH: one user, a cheap hash (the check runs on
 * every input that decodes). */
#define AUTH_USER "alice@example.com"
#define AUTH_PASS "secret"

static struct smtp_auth_db *auth_db;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL_IF(cond)                                                          \
	do {                                                                   \
		if (cond) {                                                    \
			fprintf(stderr, "fuzz_daemon: %s:%d: %s\n", __FILE__,  \
			        __LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* A NUL-terminated heap copy of at most MAX of the N octets at P. */
static char *
dup_str(const uint8_t *p, size_t n, size_t max)
{
	char *s;

	if (n > max)
		n = max;
	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* A heap copy of exactly N octets, not NUL-terminated. */
static char *
dup_mem(const uint8_t *p, size_t n)
{
	char *s = malloc(n ? n : 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	return s;
}

static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz_daemon_users.XXXXXX", err[256];
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	static struct crypt_data cd;
	const char *hash;
	FILE *f;
	int fd;

	(void)argc;
	(void)argv;
	/* $6$ with the fewest rounds: about 0.3 ms a check */
	if (crypt_gensalt_rn("$6$", 1000, NULL, 0, salt, sizeof(salt)) ==
	        NULL ||
	    (hash = crypt_rn(AUTH_PASS, salt, &cd, sizeof(cd))) == NULL || hash[0] == '*' ||
	    (fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
		abort();
	fprintf(f, "# fuzz\n" AUTH_USER ":%s:%s\nbob:%s\n", hash,
	        AUTH_USER ", @example.org", hash);
	if (fclose(f) != 0)
		abort();
	auth_db = smtp_auth_db_load(path, err, sizeof(err));
	unlink(path);
	if (auth_db == NULL) {
		fprintf(stderr, "fuzz_daemon: %s\n", err);
		abort();
	}
	return 0;
}

/* ---- 0: MAIL/RCPT/EHLO arguments ---- */

static void
check_value(const char *key, const char *val)
{
	char *notify, *again;
	uintmax_t size;
	size_t nlen;

	if (val == NULL)
		return;
	(void)key;
	(void)smtp_parse_xtext(val, SMTP_ENVID_MAX);
	(void)smtp_parse_orcpt(val);
	if (smtp_parse_size(val, &size) == 0)
		FAIL_IF(val[0] == '\0');
	/* the session's buffer is 32 octets; the canonical form of a
	 * valid value parses again to itself */
	nlen = 32;
	notify = malloc(nlen);
	again = malloc(nlen);
	if (notify == NULL || again == NULL)
		abort();
	if (smtp_parse_notify(val, notify, nlen) == 0) {
		FAIL_IF(strlen(notify) >= nlen);
		FAIL_IF(smtp_parse_notify(notify, again, nlen) != 0);
		FAIL_IF(strcmp(notify, again) != 0);
	}
	free(again);
	free(notify);
}

static void
fuzz_smtp(const uint8_t *data, size_t size)
{
	char *line, *rest, *p, *key, *val, *out;
	size_t len, outlen;
	const char *end;
	int r, n;

	if (size == 0)
		return;
	/* the first octet sizes OUT (0: as in the session), to reach the
	 * length check */
	outlen = data[0] == 0 ? SMTP_PATH_MAX : data[0];
	line = dup_str(data + 1, size - 1, CMD_MAX);
	len = strlen(line);
	(void)smtp_parse_helo(line);
	if ((out = malloc(outlen)) == NULL)
		abort();
	for (int null_ok = 0; null_ok <= 1; null_ok++) {
		if (smtp_parse_path(line, &end, out, outlen, null_ok) < 0)
			continue;
		FAIL_IF(end <= line || end > line + len || end[-1] != '>');
		FAIL_IF(strlen(out) >= outlen ||
		        strlen(out) + 2 > SMTP_PATH_MAX);
		FAIL_IF(!printable(out));
		FAIL_IF(out[0] == '\0' ? !null_ok : strchr(out, '@') == NULL);
	}
	free(out);
	/* the parameters, in place in a copy (after a path when there is
	 * one) */
	rest = dup_str((const uint8_t *)line, len, CMD_MAX);
	p = rest;
	if ((out = malloc(SMTP_PATH_MAX)) == NULL)
		abort();
	if (smtp_parse_path(rest, &end, out, SMTP_PATH_MAX, 1) == 0)
		p = rest + (end - rest);
	free(out);
	for (n = 0; (r = smtp_parse_param(&p, &key, &val)) > 0; n++) {
		FAIL_IF(n > CMD_MAX);
		FAIL_IF(key < rest || key > rest + len || *key == '\0');
		FAIL_IF(strchr(key, ' ') != NULL || strchr(key, '=') != NULL);
		FAIL_IF(p < rest || p > rest + len);
		check_value(key, val);
	}
	FAIL_IF(r != 0 && r != -1);
	free(rest);
	free(line);
}

/* ---- 1: AUTH PLAIN ---- */

static void
fuzz_auth(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t n = nul ? (size_t)(nul - data) : size;
	char *b64 = dup_str(data, n, CMD_MAX);
	char *sender = dup_str(nul ? nul + 1 : data + size,
	                       nul ? size - n - 1 : 0, SMTP_PATH_MAX);
	char *user = malloc(SMTP_AUTH_USER_MAX + 1);
	char *pass = malloc(SMTP_AUTH_PASS_MAX + 1);
	char shown[80];
	struct smtp_auth_check *c;
	enum smtp_auth_plain rc;

	if (user == NULL || pass == NULL)
		abort();
	rc = smtp_auth_plain_decode(b64, user, SMTP_AUTH_USER_MAX + 1, pass,
	                            SMTP_AUTH_PASS_MAX + 1);
	FAIL_IF(rc != SMTP_AUTH_PLAIN_OK && rc != SMTP_AUTH_PLAIN_BASE64 &&
	        rc != SMTP_AUTH_PLAIN_MALFORMED &&
	        rc != SMTP_AUTH_PLAIN_AUTHZID);
	if (rc == SMTP_AUTH_PLAIN_OK) {
		FAIL_IF(user[0] == '\0' || pass[0] == '\0');
		smtp_auth_printable(user, shown, sizeof(shown));
		FAIL_IF(strlen(shown) > 64);
		FAIL_IF(strpbrk(shown, "\"\\= ") != NULL || !printable(shown));
		if ((c = smtp_auth_check_new(auth_db, user, pass)) != NULL) {
			int want = strcmp(user, AUTH_USER) == 0 ||
			           strcmp(user, "bob") == 0;
			want = want && strcmp(pass, AUTH_PASS) == 0;
			smtp_auth_check_run(c);
			FAIL_IF(smtp_auth_check_result(c) != want);
			FAIL_IF(strcmp(smtp_auth_check_user(c), user) != 0);
			smtp_auth_check_free(c);
		}
		(void)smtp_auth_sender_ok(auth_db, user, sender);
	}
	smtp_auth_printable(b64, shown, size % sizeof(shown));
	(void)smtp_auth_sender_ok(auth_db, AUTH_USER, sender);
	(void)smtp_auth_sender_ok(auth_db, "bob", sender);
	explicit_bzero(pass, SMTP_AUTH_PASS_MAX + 1);
	free(pass);
	free(user);
	free(sender);
	free(b64);
}

/* ---- 2: replies of a next hop ---- */

static void
reply_done(const struct relay_reply *r)
{
	struct relay_ext ext;
	size_t len = RELAY_REPLY_MAX;
	char *line = malloc(len);

	if (line == NULL)
		abort();
	FAIL_IF(r->code < 200 || r->code > 599);
	FAIL_IF(r->len >= sizeof(r->text) || r->text[r->len] != '\0');
	relay_reply_line(r, line, len);
	FAIL_IF(strlen(line) >= len);
	for (const char *c = line; *c; c++)
		FAIL_IF((unsigned char)*c < 0x20 || *c == 0x7f);
	(void)relay_reply_status(r->code);
	relay_ext_parse(r, &ext);
	FAIL_IF(!(ext.flags & RELAY_EXT_SIZE) && ext.size != 0);
	free(line);
}

static void
fuzz_reply(const uint8_t *data, size_t size)
{
	struct relay_reply *r = malloc(sizeof(*r));
	size_t pos = 0;

	if (r == NULL)
		abort();
	if (size > REPLY_MAX)
		size = REPLY_MAX;
	relay_reply_init(r);
	/* lines as conn_getline hands them over: without CRLF, shorter
	 * than RELAY_LINE_MAX, no NUL */
	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
		size_t take = n;
		char *line;
		int k;

		if (take > 0 && data[pos + take - 1] == '\r')
			take--;
		if (take >= RELAY_LINE_MAX ||
		    memchr(data + pos, '\0', take) != NULL)
			break;
		line = dup_str(data + pos, take, take);
		k = relay_reply_feed(r, line);
		free(line);
		pos += n + 1;
		FAIL_IF(k < -1 || k > 1);
		FAIL_IF(r->nlines > RELAY_LINES_MAX);
		if (k == 1)
			reply_done(r);
		if (k != 0)
			relay_reply_init(r);
	}
	free(r);
}

/* ---- 3: dot-stuffing ---- */

/* What relay_stuff must make of IN: each line (ended by CRLF, a bare LF
 * or a bare CR, or by the end) with CRLF, a '.' doubled at its start,
 * then ".\r\n". */
static size_t
stuff_expect(const uint8_t *in, size_t n, unsigned char *out)
{
	size_t o = 0;
	int bol = 1;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
			bol = 1;
			continue;
		}
		if (bol && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		bol = 0;
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

static void
fuzz_stuff(const uint8_t *data, size_t size)
{
	struct relay_stuff s;
	unsigned char *all, *want, *out;
	size_t pos = 0, o = 0, nwant, cut;
	uint8_t sizes;

	if (size == 0)
		return;
	/* the first octet chooses the chunk sizes: 1 to 16 */
	sizes = data[0];
	data++;
	size--;
	if (size > STUFF_MAX)
		size = STUFF_MAX;
	all = malloc(RELAY_STUFF_OUT(size) + RELAY_STUFF_END);
	want = malloc(RELAY_STUFF_OUT(size) + RELAY_STUFF_END);
	if (all == NULL || want == NULL)
		abort();
	relay_stuff_init(&s);
	for (unsigned k = 0; pos < size; k++) {
		size_t n = 1 + ((sizes >> (k % 8)) & 15);
		if (n > size - pos)
			n = size - pos;
		if ((out = malloc(RELAY_STUFF_OUT(n))) == NULL)
			abort();
		cut = relay_stuff(&s, data + pos, n, out);
		FAIL_IF(cut > RELAY_STUFF_OUT(n));
		memcpy(all + o, out, cut);
		o += cut;
		free(out);
		pos += n;
	}
	if ((out = malloc(RELAY_STUFF_END)) == NULL)
		abort();
	cut = relay_stuff_end(&s, out);
	FAIL_IF(cut > RELAY_STUFF_END);
	memcpy(all + o, out, cut);
	o += cut;
	free(out);
	nwant = stuff_expect(data, size, want);
	FAIL_IF(o != nwant || memcmp(all, want, o) != 0);
	free(want);
	free(all);
}

/* ---- 4: kvtext values ---- */

static void
fuzz_kv(const uint8_t *data, size_t size)
{
	struct kv_buf b = {0};
	enum sg_status st, st2;
	size_t max, n;
	char *in, *v, *again;
	long long num;

	if (size == 0)
		return;
	max = (size_t)data[0] * 4; /* 0 to 1020 */
	data++;
	size--;
	if (size > KV_MAX)
		size = KV_MAX;
	in = dup_mem(data, size);
	v = kv_decode(in, size, max, &st);
	FAIL_IF((v == NULL) != (st != SG_OK));
	if (v != NULL) {
		n = strlen(v);
		FAIL_IF(n > max || n > size);
		if (kv_parse_num(v, (long long)max, &num) == 0)
			FAIL_IF(num < 0 || num > (long long)max);
		/* what kv_enc writes decodes to what it was given */
		kv_enc(&b, v, n);
		FAIL_IF(b.oom);
		again = kv_decode(b.p ? b.p : "", b.len, max, &st2);
		FAIL_IF(again == NULL || strcmp(again, v) != 0);
		free(again);
		free(b.p);
	}
	free(v);
	free(in);
}

/* ---- 5: a filter file ---- */

static int
exists(void *arg, const char *name)
{
	(void)arg;
	return name[0] != 'x';
}

/* ARG's values for any header, or two fixed ones, none for names that
 * start with 'x'. */
static const char *const *
fake_header(void *arg, const char *name)
{
	static const char *const vals[] = {"yes", "from a by b", NULL};

	if (arg != NULL)
		return arg;
	return name[0] == 'x' || name[0] == 'X' ? NULL : vals;
}

static void
eval_on(const struct filter_set *fs, const char *text)
{
	static const char *const rcpts[] = {"bob@example.org", "c@d.example"};
	static const char *const names[] = {"report.pdf", NULL};
	static const char *const types[] = {"application/pdf", NULL};
	struct filter_facts f = {
	    .subject = text,
	    .body_text = text,
	    .size = strlen(text),
	    .mail_from = text,
	    .rcpts = rcpts,
	    .nrcpts = 2,
	    .header = fake_header,
	    .att_names = names,
	    .att_types = types,
	    .smime_gateway_message = 1,
	    .smime_signed = 1,
	};
	struct filter_result r;
	enum sg_status st;

	filter_result_init(&r);
	st = filter_eval(fs, &f, &r);
	FAIL_IF(st != SG_OK && st != SG_ERR_TEMP && st != SG_ERR_NOMEM);
	for (size_t i = 0; i < r.n; i++) {
		FAIL_IF(r.v[i].filter == NULL);
		FAIL_IF(filter_action_is_final(r.v[i].kind) && i + 1 != r.n);
		(void)filter_action_name(r.v[i].kind);
	}
	filter_result_clear(&r);
}

static void
fuzz_filter_file(const uint8_t *data, size_t size)
{
	struct filter_set *fs = NULL;
	char err[256], *text;
	enum sg_status st;

	if (size > FILTER_MAX)
		size = FILTER_MAX;
	text = dup_mem(data, size);
	memset(err, 'x', sizeof(err));
	st = filter_load_mem("fuzz", text, size, &fs, err, sizeof(err));
	if (st != SG_OK) {
		FAIL_IF(fs != NULL);
		FAIL_IF(memchr(err, '\0', sizeof(err)) == NULL);
		FAIL_IF(strncmp(err, "fuzz:", 5) != 0);
		FAIL_IF(st != SG_ERR_USAGE && st != SG_ERR_LIMIT &&
		        st != SG_ERR_NOMEM);
	} else {
		FAIL_IF(fs == NULL);
		(void)filter_set_count(fs);
		(void)filter_set_check_profiles(fs, exists, NULL, err,
		                                sizeof(err));
		(void)filter_set_check_quarantines(fs, exists, NULL, err,
		                                   sizeof(err));
		eval_on(fs, "Quarterly report\nconfidential\n");
		eval_on(fs, "");
		filter_set_free(fs);
	}
	free(text);
}

/* ---- 6: a pattern and a text ---- */

/* The filter-language string literal for PAT (N octets): '"' and '\\'
 * escaped, control octets (which a string cannot hold) left out. */
static size_t
quote(const uint8_t *pat, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if ((pat[i] < 0x20 && pat[i] != '\t') || pat[i] == 0x7f)
			continue;
		if (pat[i] == '"' || pat[i] == '\\')
			out[o++] = '\\';
		out[o++] = (char)pat[i];
	}
	out[o] = '\0';
	return o;
}

/* Repetition operators in P: glibc's regcomp takes exponential time on
 * some stacks of them ("al++($)+++++", 12 octets, ran into the fuzzer's
 * timeout), so the oracle is asked only about a few. */
static size_t
repeats(const char *p)
{
	size_t n = 0;

	for (; *p; p++)
		n += strchr("*+?{", *p) != NULL;
	return n;
}

/* The same question about TEXT repeated to 16 KiB, where rx's states
 * settle and skip ahead (src/policy/rx.c, "Skipping ahead"), asked of
 * both: only for patterns without repetitions, on which glibc's regexec
 * stays fast on such a text. */
static void
long_text_oracle(const char *raw, const char *text)
{
	enum { LONG = 16 * 1024 };
	size_t tl = strlen(text);
	char why[256], *big;
	regex_t g;
	struct rx *re;
	int limit;

	if (tl == 0 || repeats(raw) > 0 || strchr(text, '\n') != NULL)
		return;
	if ((re = rx_compile(raw, RX_ICASE, why, sizeof(why), &limit)) == NULL)
		return;
	if (regcomp(&g, raw, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0) {
		rx_free(re);
		return;
	}
	if ((big = malloc(LONG + 1)) == NULL)
		abort();
	for (size_t i = 0; i < LONG; i++)
		big[i] = text[i % tl];
	big[LONG] = '\0';
	FAIL_IF((regexec(&g, big, 0, NULL, 0) == 0) != rx_match(re, big, LONG));
	free(big);
	regfree(&g);
	rx_free(re);
}

static void
fuzz_regex(const uint8_t *data, size_t size)
{
	static const char *const fields[] = {
	    "subject",         "body",    "mail-from",
	    "header(\"X-F\")", "rcpt-to", "attachment-filename"};
	const uint8_t *sep = memchr(data, '\0', size);
	size_t plen = sep ? (size_t)(sep - data) : size;
	struct kv_buf b = {0};
	struct filter_set *fs = NULL;
	char err[256], *pat, *text, *raw;
	const char *list[2];
	struct filter_result r;
	struct filter_facts f = {0};
	enum sg_status st;
	regex_t re;
	int direct = -1;

	if (plen > RE_MAX)
		plen = RE_MAX;
	if ((pat = malloc(2 * plen + 1)) == NULL ||
	    (raw = malloc(plen + 1)) == NULL)
		abort();
	quote(data, plen, pat);
	/* the pattern as the lexer hands it to regcomp */
	{
		size_t o = 0;
		for (size_t i = 0; i < plen; i++)
			if ((data[i] >= 0x20 || data[i] == '\t') &&
			    data[i] != 0x7f)
				raw[o++] = (char)data[i];
		raw[o] = '\0';
	}
	text = sep ? dup_str(sep + 1, size - (size_t)(sep - data) - 1, TEXT_MAX)
	           : dup_str(data, 0, 0);
	/* one filter per field, each only logging, so that all run */
	for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++)
		kv_addf(&b, "f%zu: if (%s == \"%s\") { log(\"%zu\"); }\n", i,
		        fields[i], pat, i);
	kv_addf(&b, "c: if (subject-contains(\"%s\")) { log(\"c\"); }\n", pat);
	if (b.oom)
		abort();
	st = filter_load_mem("re", b.p, b.len, &fs, err, sizeof(err));
	if (st == SG_OK) {
		list[0] = text;
		list[1] = NULL;
		f.subject = text;
		f.body_text = text;
		f.mail_from = text;
		f.rcpts = list;
		f.nrcpts = 1;
		f.header = fake_header;
		f.arg = list;
		f.att_names = list;
		filter_result_init(&r);
		st = filter_eval(fs, &f, &r);
		FAIL_IF(st != SG_OK && st != SG_ERR_TEMP);
		/* the subject's filter fired exactly when glibc's regexec
		 * says so: a differential check of src/policy/rx.c, on
		 * short patterns and texts (glibc's regcomp explodes on some
		 * long ones, its regexec is quadratic), and on one line
		 * (glibc lets ^ and $ see a newline read by \s or [^a] even
		 * without REG_NEWLINE, which POSIX does not), and without
		 * anchors under a repetition (glibc lets a later round of
		 * "(^a|b)+$" take the ^ where the text does not start) */
		if (st == SG_OK && strlen(raw) <= 24 && repeats(raw) <= 4 &&
		    (repeats(raw) == 0 || strpbrk(raw, "^$`'") == NULL) &&
		    strlen(text) <= 256 && strchr(text, '\n') == NULL &&
		    regcomp(&re, raw, REG_EXTENDED | REG_ICASE | REG_NOSUB) ==
		        0) {
			direct = regexec(&re, text, 0, NULL, 0) == 0;
			regfree(&re);
			FAIL_IF(direct != (r.n > 0 && r.v[0].arg1 != NULL &&
			                   strcmp(r.v[0].arg1, "0") == 0));
			long_text_oracle(raw, text);
		}
		filter_result_clear(&r);
		filter_set_free(fs);
	}
	free(b.p);
	free(text);
	free(raw);
	free(pat);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	static void (*const target[])(const uint8_t *, size_t) = {
	    fuzz_smtp, fuzz_auth,        fuzz_reply, fuzz_stuff,
	    fuzz_kv,   fuzz_filter_file, fuzz_regex,
	};

	target[data[0] % (sizeof(target) / sizeof(target[0]))](data + 1,
	                                                       size - 1);
	return 0;
}
