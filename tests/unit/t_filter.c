/*
 * t_filter.c - the filter language (src/policy/filter.h): what each
 * condition and action means, the order filters run in, which actions
 * end the run, and that every malformed input is a NAME:LINE: error that
 * leaks nothing.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "policy/filter.h"

/* ---- A message to evaluate filters on ------------------------------- */

#define SIGNED    1 /* smime_signed */
#define ENCRYPTED 2 /* smime_encrypted */
#define GW_MSG    4 /* smime_gateway_message */
#define GW_OK     8 /* smime_gateway_verified */

struct hdrs {
	const char *const (*pairs)[2]; /* name, value; ends with NULL */
	const char *vals[8];
};

static const char *const *
header_cb(void *arg, const char *name)
{
	struct hdrs *h = arg;
	size_t n = 0;

	for (size_t i = 0; h->pairs[i][0] != NULL && n < 7; i++)
		if (strcasecmp(h->pairs[i][0], name) == 0)
			h->vals[n++] = h->pairs[i][1];
	h->vals[n] = NULL;
	return n ? h->vals : NULL;
}

static const char *const std_headers[][2] = {
    {"X-Spam", "yes"},
    {"Received", "from a.example by gw"},
    {"Received", "from b.example by a.example"},
    {NULL, NULL},
};
static const char *const std_rcpts[] = {"bob@partner.example",
                                        "carol@other.example"};
static const char *const std_att_names[] = {"report.PDF", NULL};
static const char *const std_att_types[] = {"application/pdf", NULL};

static struct hdrs std_hdrs = {std_headers, {NULL}};

/* The usual test message, with FLAGS. */
static struct filter_facts
std_facts(int flags)
{
	struct filter_facts f = {
	    .subject = "Quarterly report CONFIDENTIAL",
	    .body_text = "Hello\nThis is confidential data.\nBye\n",
	    .size = 20000,
	    .mail_from = "alice@example.com",
	    .rcpts = std_rcpts,
	    .nrcpts = 2,
	    .header = header_cb,
	    .arg = &std_hdrs,
	    .att_names = std_att_names,
	    .att_types = std_att_types,
	};

	f.smime_signed = (flags & SIGNED) != 0;
	f.smime_encrypted = (flags & ENCRYPTED) != 0;
	f.smime_gateway_message = (flags & GW_MSG) != 0;
	f.smime_gateway_verified = (flags & GW_OK) != 0;
	return f;
}

/* ---- Helpers --------------------------------------------------------- */

static struct filter_set *
load(const char *text)
{
	struct filter_set *fs = NULL;
	char err[256] = "";

	if (filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)) !=
	    SG_OK) {
		fprintf(stderr, "  load: %s\n", err);
		unit_fail(__FILE__, __LINE__, "filter_load_mem");
		return NULL;
	}
	return fs;
}

/* The actions of R as "kind:arg1:arg2 ..." plus " |final" / " |skip". */
static void
render(const struct filter_result *r, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < r->n && n < len; i++)
		n += (size_t)snprintf(
		    out + n, len - n, "%s%s%s%s%s%s", i ? " " : "",
		    filter_action_name(r->v[i].kind), r->v[i].arg1 ? ":" : "",
		    r->v[i].arg1 ? r->v[i].arg1 : "", r->v[i].arg2 ? ":" : "",
		    r->v[i].arg2 ? r->v[i].arg2 : "");
	if (n < len && r->final)
		n += (size_t)snprintf(out + n, len - n, " |final");
	if (n < len && r->skipped)
		snprintf(out + n, len - n, " |skip");
}

/* Loads TEXT, runs it on F, and renders what fired into OUT. */
static void
run(const char *text, const struct filter_facts *f, char *out, size_t len)
{
	struct filter_set *fs = load(text);
	struct filter_result r;

	snprintf(out, len, "(load failed)");
	if (fs == NULL)
		return;
	filter_result_init(&r);
	if (filter_eval(fs, f, &r) == SG_OK)
		render(&r, out, len);
	else
		snprintf(out, len, "(eval failed)");
	filter_result_clear(&r);
	filter_set_free(fs);
}

/* 1 when the condition COND holds for F, 0 when not, -1 when it does
 * not load. */
static int
holds(const char *cond, const struct filter_facts *f)
{
	char text[512], got[256];

	snprintf(text, sizeof(text), "t: if (%s) { log(\"yes\"); }", cond);
	run(text, f, got, sizeof(got));
	if (strcmp(got, "log:yes") == 0)
		return 1;
	if (strcmp(got, "") == 0)
		return 0;
	fprintf(stderr, "  %s: %s\n", cond, got);
	return -1;
}

/* ---- The seed example -------------------------------------------------- */

static void
seed_example_on_the_four_flag_combinations(void)
{
	static const char seed[] =
	    "quarantine_smime_messages: if (smime-gateway-message and not "
	    "smime-gateway-verified) { quarantine(\"Policy\"); }";
	static const struct {
		int flags;
		const char *want;
	} t[] = {
	    {0, ""},
	    {GW_OK, ""},
	    {GW_MSG, "quarantine:Policy |final"},
	    {GW_MSG | GW_OK, ""},
	};
	struct filter_set *fs = load(seed);
	char got[256];

	CHECK(fs != NULL && filter_set_count(fs) == 1);
	for (size_t i = 0; fs && i < sizeof(t) / sizeof(*t); i++) {
		struct filter_facts f = std_facts(t[i].flags);
		struct filter_result r;
		filter_result_init(&r);
		CHECK_EQ(filter_eval(fs, &f, &r), SG_OK);
		render(&r, got, sizeof(got));
		CHECK_STR(got, t[i].want);
		if (r.n == 1) {
			CHECK_STR(r.v[0].filter, "quarantine_smime_messages");
			CHECK_EQ(r.v[0].line, 1);
			CHECK_EQ(r.v[0].kind, FA_QUARANTINE);
		}
		filter_result_clear(&r);
	}
	filter_set_free(fs);
}

/* ---- Conditions -------------------------------------------------------- */

static void
precedence_not_and_or(void)
{
	/* a = smime-signed, b = smime-encrypted, c = smime-gateway-verified */
	static const char *const t[] = {
	    "smime-signed or smime-encrypted and not smime-gateway-verified",
	    "(smime-signed or smime-encrypted) and not smime-gateway-verified",
	    "not smime-signed and smime-encrypted",
	    "not (smime-signed and smime-encrypted)",
	    "smime-signed and smime-encrypted or smime-gateway-verified",
	};

	for (int m = 0; m < 8; m++) {
		int a = m & 1, b = (m >> 1) & 1, c = (m >> 2) & 1;
		struct filter_facts f = std_facts(
		    (a ? SIGNED : 0) | (b ? ENCRYPTED : 0) | (c ? GW_OK : 0));
		int want[] = {a || (b && !c), (a || b) && !c, !a && b,
		              !(a && b), (a && b) || c};
		for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++)
			if (holds(t[i], &f) != want[i]) {
				fprintf(stderr, "  %s with a=%d b=%d c=%d\n",
				        t[i], a, b, c);
				unit_fail(__FILE__, __LINE__, "precedence");
			}
	}
}

static const struct {
	const char *cond;
	int flags;
	int want;
} atom_cases[] = {
    {"true", 0, 1},
    {"false", 0, 0},
    {"not true", 0, 0},
    /* the four S/MIME facts */
    {"smime-gateway-message", GW_MSG, 1},
    {"smime-gateway-message", GW_OK | SIGNED | ENCRYPTED, 0},
    {"smime-gateway-verified", GW_OK, 1},
    {"smime-gateway-verified", GW_MSG | SIGNED | ENCRYPTED, 0},
    {"smime-signed", SIGNED, 1},
    {"smime-signed", ENCRYPTED | GW_MSG | GW_OK, 0},
    {"smime-encrypted", ENCRYPTED, 1},
    {"smime-encrypted", SIGNED | GW_MSG | GW_OK, 0},
    /* subject: a regular expression, any case */
    {"subject == \"confidential\"", 0, 1},
    {"subject == \"^quarterly\"", 0, 1},
    {"subject == \"^secret\"", 0, 0},
    {"subject != \"secret\"", 0, 1},
    {"subject != \"REPORT\"", 0, 0},
    {"subject-contains(\"Confidential\")", 0, 1},
    {"subject-contains(\"secret\")", 0, 0},
    /* body: lines, a phrase */
    {"body == \"^this is\"", 0, 1},
    {"body == \"^hello$\"", 0, 1},
    {"body == \"hello.this\"", 0, 0},
    {"body == \"secret\"", 0, 0},
    {"body != \"secret\"", 0, 1},
    {"body-contains(\"CONFIDENTIAL DATA\")", 0, 1},
    {"body-contains(\"confidential  data\")", 0, 0},
    /* headers: present, any value matches */
    {"header(\"X-Spam\")", 0, 1},
    {"header(\"x-spam\")", 0, 1},
    {"header(\"X-Missing\")", 0, 0},
    {"header(\"X-Spam\") == \"^YES$\"", 0, 1},
    {"header(\"X-Spam\") == \"no\"", 0, 0},
    {"header(\"X-Spam\") != \"no\"", 0, 1},
    {"header(\"X-Missing\") == \".\"", 0, 0},
    {"header(\"X-Missing\") != \".\"", 0, 1},
    {"header(\"Received\") == \"^from b\\\\.example\"", 0, 1},
    {"header(\"Received\") == \"^from c\"", 0, 0},
    /* envelope */
    {"mail-from == \"@example\\\\.com$\"", 0, 1},
    {"mail-from == \"@partner\"", 0, 0},
    {"rcpt-to == \"@other\\\\.example$\"", 0, 1},
    {"rcpt-to == \"@nowhere\\\\.example$\"", 0, 0},
    {"rcpt-to != \"@nowhere\"", 0, 1},
    {"rcpt-to != \"example\"", 0, 0},
    /* attachments */
    {"attachment-filename == \"\\\\.pdf$\"", 0, 1},
    {"attachment-filename == \"\\\\.exe$\"", 0, 0},
    {"attachment-type == \"^application/pdf$\"", 0, 1},
    {"attachment-type == \"^image/\"", 0, 0},
    /* size: 20000 bytes */
    {"body-size > 19K", 0, 1},
    {"body-size > 20K", 0, 0},
    {"body-size >= 20000", 0, 1},
    {"body-size > 20000", 0, 0},
    {"body-size <= 20000", 0, 1},
    {"body-size <= 19999", 0, 0},
    {"body-size < 1M", 0, 1},
    {"body-size < 19k", 0, 0},
    {"body-size == 20000", 0, 1},
    {"body-size != 20000", 0, 0},
    {"body-size>1m", 0, 0},
    /* keywords in any case */
    {"NOT smime-signed AND True", 0, 1},
    {"Subject == \"x\" Or SMIME-SIGNED", SIGNED, 1},
};

static void
every_atom_true_and_false(void)
{
	for (size_t i = 0; i < sizeof(atom_cases) / sizeof(*atom_cases); i++) {
		struct filter_facts f = std_facts(atom_cases[i].flags);
		int got = holds(atom_cases[i].cond, &f);
		if (got != atom_cases[i].want) {
			fprintf(stderr, "  %s (flags %d): got %d\n",
			        atom_cases[i].cond, atom_cases[i].flags, got);
			unit_fail(__FILE__, __LINE__, "atom");
		}
	}
}

static void
empty_facts_are_empty_values(void)
{
	static const struct {
		const char *cond;
		int want;
	} t[] = {
	    {"subject == \"^$\"", 1},
	    {"subject-contains(\"a\")", 0},
	    {"body == \"^$\"", 1},
	    {"body-contains(\"a\")", 0},
	    {"mail-from == \"^$\"", 1},
	    {"rcpt-to == \".*\"", 0},
	    {"rcpt-to != \".*\"", 1},
	    {"attachment-filename == \".*\"", 0},
	    {"attachment-type == \".*\"", 0},
	    {"header(\"Subject\")", 0},
	    {"header(\"Subject\") == \".*\"", 0},
	    {"body-size == 0", 1},
	    {"smime-gateway-message or smime-signed", 0},
	};
	struct filter_facts f = {0};

	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++)
		if (holds(t[i].cond, &f) != t[i].want) {
			fprintf(stderr, "  %s\n", t[i].cond);
			unit_fail(__FILE__, __LINE__, "empty facts");
		}
}

static void
regex_versus_plain_phrase(void)
{
	struct filter_facts f = {.subject = "abc", .body_text = "1+1=2"};

	/* A phrase is literal; a regex is not. */
	CHECK_EQ(holds("subject-contains(\"a.c\")", &f), 0);
	CHECK_EQ(holds("subject == \"a.c\"", &f), 1);
	CHECK_EQ(holds("body-contains(\"1+1\")", &f), 1);
	CHECK_EQ(holds("body == \"1+1\"", &f), 0);
	CHECK_EQ(holds("body == \"1\\\\+1\"", &f), 1);
	/* "\." stays a backslash escape for the regex; "\\" is one. */
	f.subject = "a.c";
	CHECK_EQ(holds("subject == \"^a\\.c$\"", &f), 1);
	CHECK_EQ(holds("subject == \"^a\\\\.c$\"", &f), 1);
	f.subject = "abc";
	CHECK_EQ(holds("subject == \"^a\\.c$\"", &f), 0);
	/* Brackets, classes and bounded repetitions that stay small. */
	f.subject = "x1 abc";
	CHECK_EQ(holds("subject == \"[[:digit:]] [a-z]{1,255}$\"", &f), 1);
	CHECK_EQ(holds("subject == \"[\\1]\"", &f), 1);
	CHECK_EQ(holds("subject == \"(a|b){2}c\"", &f), 1);
	CHECK_EQ(holds("subject == \"^(x|y){2,}\"", &f), 0);
	/* {,n} is {0,n}; repetitions of what cannot be empty, a few
	 * assertions and optional atoms load */
	CHECK_EQ(holds("subject == \"^x1 a{,3}b\"", &f), 1);
	CHECK_EQ(holds("subject == \"^x1 a{,3}c\"", &f), 0);
	CHECK_EQ(holds("subject == \"^(x1 ?)+(ab)+c?$\"", &f), 1);
	CHECK_EQ(holds("subject == \"(^|[^a-z])abc\\b\"", &f), 1);
	CHECK_EQ(holds("subject == \"(a*b)+c\"", &f), 1);
	CHECK_EQ(holds("subject == \"(a|b?)c*\"", &f), 1);
	CHECK_EQ(holds("subject == \"a*?b\"", &f), 1);
	CHECK_EQ(holds("subject == \"^[a-z0-9]{1,64}@([a-z0-9-]{1,63}\\.)"
	               "{1,5}[a-z]{2,63}$\"",
	               &f),
	         0);
	CHECK_EQ(holds("subject == \"\\<x1\\>\"", &f), 1);
	/* \" is a quote */
	f.subject = "say \"hi\"";
	CHECK_EQ(holds("subject == \"\\\"hi\\\"$\"", &f), 1);
	CHECK_EQ(holds("subject-contains(\"\\\"HI\\\"\")", &f), 1);
}

/* Patterns that glibc's regcomp took seconds to gigabytes to compile
 * (found by tests/fuzz/fuzz_daemon.c, once refused) and patterns whose
 * regexec is quadratic in the text: they load, match what they should,
 * and a 1 MiB body costs them what a short one does, per byte. */
static void
glibc_explosive_regexes_load_and_match(void)
{
	static const struct {
		const char *cond, *subject;
		int want;
	} t[] = {
	    {"subject == \"(c*)+\"", "", 1},
	    {"subject == \"^lec++++*+++++++++$\"", "leccc", 1},
	    {"subject == \"^lec++++*+++++++++$\"", "lx", 0},
	    {"subject == \"^ac***$\"", "acc", 1},
	    {"subject == \"^x(a|){3}$\"", "xaa", 1},
	    {"subject == \"^x(a|){3}$\"", "xaaaa", 0},
	    {"subject == \"^[a-z]{1,1100}$\"", "abc", 1},
	    {"subject == \"^a{,499}b{,499}c{,9}$\"", "aabbbc", 1},
	    {"subject == \"^a{,499}b{,499}c{,9}$\"", "aabbbca", 0},
	    {"subject == \"^^^^^^^^^^^^^^^^^x\"", "xy", 1},
	    {"subject == \"(\\bx){17}\"", "xxx", 0},
	    {"subject == \"(\\bx ){3}\"", "x x x ", 1},
	};
	struct filter_facts f = {0};
	size_t n = (size_t)1 << 20;
	char *body = malloc(n + 1);

	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		f.subject = t[i].subject;
		if (holds(t[i].cond, &f) != t[i].want) {
			fprintf(stderr, "  %s on \"%s\": not %d\n", t[i].cond,
			        t[i].subject, t[i].want);
			unit_fail(__FILE__, __LINE__, t[i].cond);
		}
	}
	CHECK(body != NULL);
	if (body == NULL)
		return;
	/* glibc: 8 s for a.*b on 80,000 a's, 624 s for the second on 1 MB */
	memset(body, 'a', n);
	body[n] = '\0';
	f.body_text = body;
	CHECK_EQ(holds("body == \"a.*b\"", &f), 0);
	CHECK_EQ(holds("body == \"(a|b)*a(a|b){15}c\"", &f), 0);
	body[n - 1] = 'b';
	CHECK_EQ(holds("body == \"a.*b\"", &f), 1);
	free(body);
}

/* ---- Filters and actions --------------------------------------------- */

static const char chain[] = "# a chain\n"
                            "classify: if (subject == \"^urgent\") {\n"
                            "    add-header(\"X-Class\", \"urgent\");\n"
                            "} else if (subject == \"^secret\") {\n"
                            "    add-header(\"X-Class\", \"secret\")\n"
                            "} else if (smime-signed) {\n"
                            "} else {\n"
                            "    add-header(\"X-Class\", \"other\");\n"
                            "}\n";

static void
else_if_and_else_chains(void)
{
	static const struct {
		const char *subject;
		int flags;
		const char *want;
	} t[] = {
	    {"Urgent: now", 0, "add-header:X-Class:urgent"},
	    {"secret plans", 0, "add-header:X-Class:secret"},
	    {"urgent secret", 0, "add-header:X-Class:urgent"},
	    {"hello", SIGNED, ""},
	    {"hello", 0, "add-header:X-Class:other"},
	};
	struct filter_set *fs = load(chain);
	char got[256];

	for (size_t i = 0; fs && i < sizeof(t) / sizeof(*t); i++) {
		struct filter_facts f = std_facts(t[i].flags);
		struct filter_result r;
		f.subject = t[i].subject;
		filter_result_init(&r);
		CHECK_EQ(filter_eval(fs, &f, &r), SG_OK);
		render(&r, got, sizeof(got));
		CHECK_STR(got, t[i].want);
		filter_result_clear(&r);
	}
	filter_set_free(fs);
}

static void
on_delivery_lets_later_filters_run(void)
{
	static const char text[] =
	    "sign: if (subject-contains(\"confidential\")) {\n"
	    "  smime-sign-encrypt-on-delivery(\"partners\");\n"
	    "}\n"
	    "tag: { add-header(\"X-Checked\", \"1\"); log(\"seen\") }\n";
	struct filter_facts f = std_facts(0);
	char got[256];

	run(text, &f, got, sizeof(got));
	CHECK_STR(got, "smime-sign-encrypt-on-delivery:partners "
	               "add-header:X-Checked:1 log:seen");
	CHECK_EQ(filter_action_is_final(FA_SMIME_ON_DELIVERY), 0);
}

static void
final_action_stops_the_rest(void)
{
	static const struct {
		const char *action;
		const char *want;
	} t[] = {
	    {"drop()", "log:first drop |final"},
	    {"bounce()", "log:first bounce |final"},
	    {"quarantine(\"Policy\")", "log:first quarantine:Policy |final"},
	    {"smime-sign-encrypt(\"p1\")",
	     "log:first smime-sign-encrypt:p1 |final"},
	    {"deliver()", "log:first deliver |final"},
	    {"notify(\"sec@example.com\")",
	     "log:first notify:sec@example.com log:last"},
	    {"remove-header(\"X-Spam\")",
	     "log:first remove-header:X-Spam log:last"},
	    {"strip-header(\"X-Spam\")",
	     "log:first remove-header:X-Spam log:last"},
	};
	char text[512], got[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct filter_facts f = std_facts(0);
		snprintf(text, sizeof(text),
		         "one: { log(\"first\") }\n"
		         "two: if (true) { %s; }.\n"
		         "three: { log(\"last\") };\n",
		         t[i].action);
		run(text, &f, got, sizeof(got));
		CHECK_STR(got, t[i].want);
	}
}

static void
final_result_takes_no_more_actions(void)
{
	struct filter_set *a = load("a: { quarantine(\"Q\") }");
	struct filter_set *b = load("b: { log(\"b\") }");
	struct filter_facts f = std_facts(0);
	struct filter_result r;
	char got[256];

	filter_result_init(&r);
	CHECK_EQ(filter_eval(a, &f, &r), SG_OK);
	CHECK_EQ(filter_eval(b, &f, &r), SG_OK);
	render(&r, got, sizeof(got));
	CHECK_STR(got, "quarantine:Q |final");
	filter_result_clear(&r);
	filter_set_free(a);
	filter_set_free(b);
}

static void
skip_filters_ends_the_set_only(void)
{
	struct filter_set *msg = load("a: { log(\"a\") }\n"
	                              "b: if (true) { skip-filters() }\n"
	                              "c: { drop() }\n");
	struct filter_set *content = load("d: { log(\"d\") }");
	struct filter_facts f = std_facts(0);
	struct filter_result r;
	char got[256];

	filter_result_init(&r);
	CHECK_EQ(filter_eval(msg, &f, &r), SG_OK);
	CHECK(r.skipped && !r.final);
	CHECK_EQ(filter_eval(content, &f, &r), SG_OK);
	render(&r, got, sizeof(got));
	CHECK_STR(got, "log:a skip-filters log:d |skip");
	filter_result_clear(&r);
	filter_set_free(msg);
	filter_set_free(content);
}

static void
actions_carry_their_arguments_filter_and_line(void)
{
	static const char text[] =
	    "first: {\n"
	    "  add-header(\"X-A\", \"v \\\"q\\\"\");\n"
	    "  Strip-Header(\"X-B\")\n"
	    "}\n"
	    "\n"
	    "second-2:\n"
	    "if (true)\n"
	    "{ notify(\"a@b.example\"); smime-sign-encrypt-on-delivery"
	    "(\"p.1\"); LOG(\"x\"); deliver(); }\n";
	struct filter_set *fs = load(text);
	struct filter_facts f = std_facts(0);
	struct filter_result r;

	filter_result_init(&r);
	CHECK(fs != NULL && filter_set_count(fs) == 2);
	CHECK_EQ(fs ? filter_eval(fs, &f, &r) : SG_ERR_INTERNAL, SG_OK);
	CHECK_EQ(r.n, 6);
	if (r.n == 6) {
		CHECK(r.v[0].kind == FA_ADD_HEADER && r.v[0].line == 2);
		CHECK_STR(r.v[0].arg1, "X-A");
		CHECK_STR(r.v[0].arg2, "v \"q\"");
		CHECK_STR(r.v[0].filter, "first");
		CHECK(r.v[1].kind == FA_REMOVE_HEADER && r.v[1].line == 3);
		CHECK(r.v[1].arg2 == NULL);
		CHECK(r.v[2].kind == FA_NOTIFY && r.v[2].line == 8);
		CHECK_STR(r.v[2].filter, "second-2");
		CHECK(r.v[3].kind == FA_SMIME_ON_DELIVERY);
		CHECK_STR(r.v[3].arg1, "p.1");
		CHECK(r.v[4].kind == FA_LOG && r.v[5].kind == FA_DELIVER);
		CHECK(r.v[5].arg1 == NULL && r.final);
	}
	filter_result_clear(&r);
	filter_set_free(fs);
}

static void
comments_terminators_and_empty_files(void)
{
	static const char *const ok[] = {
	    "",
	    "# only a comment",
	    "\n\n  \t\r\n",
	    "a: {}",
	    "a: {};",
	    "a: {}.",
	    "a: if (true) {} else {} .",
	    "a:{drop();}b:{}",
	    "a: { log(\"# not a comment\") } # a comment\n",
	    "a: if(true){log(\"x\")}else if(false){}else{log(\"y\");}",
	    "a: if true { log(\"no parentheses\") }",
	    "a_1-B: {}\r\nb: {}\r\n",
	};
	size_t want[] = {0, 0, 0, 1, 1, 1, 1, 2, 1, 1, 1, 2};

	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		struct filter_set *fs = load(ok[i]);
		if (fs == NULL)
			fprintf(stderr, "  [%zu] %s\n", i, ok[i]);
		CHECK(fs != NULL && filter_set_count(fs) == want[i]);
		filter_set_free(fs);
	}
	CHECK_EQ(filter_set_count(NULL), 0);
	filter_set_free(NULL);
	filter_result_clear(NULL);
}

/* ---- Errors ------------------------------------------------------------ */

static const struct {
	const char *name;
	const char *text;
	enum sg_status st;
	const char *where;  /* "f:LINE: " */
	const char *reason; /* a part of the reason */
} bad[] = {
    {"unterminated string", "a: if (subject == \"abc) { drop(); }", 0,
     "f:1: ", "unterminated string"},
    {"string cut by a newline", "a: {\n log(\"x\n\") }", 0,
     "f:2: ", "unterminated string"},
    {"missing close brace", "a: if (true) {\n drop();\n", 0,
     "f:3: ", "missing '}' to close the block opened on line 1"},
    {"missing close brace after last action", "a: {\n drop()", 0,
     "f:2: ", "missing '}'"},
    {"missing open brace", "a: if (true) drop();", 0,
     "f:1: ", "expected '{' before the actions, found 'drop'"},
    {"missing close parenthesis", "a:\n\n if (true {drop()}", 0,
     "f:3: ", "expected ')' after condition, found '{'"},
    {"unknown action", "a: {\n  frobnicate(\"x\");\n}", 0,
     "f:2: ", "unknown action 'frobnicate'"},
    {"unknown condition", "a: if (spam-score > 5) {}", 0,
     "f:1: ", "unknown condition 'spam-score'"},
    {"bad regex", "a: if (true or\n subject == \"a(\") { drop(); }", 0,
     "f:2: ", "bad regular expression \"a(\""},
    {"bad header regex", "a: if (header(\"X\") != \"[z-a]\") {}", 0,
     "f:1: ", "bad regular expression"},
    {"empty regex", "a: if (subject == \"\") {}", 0,
     "f:1: ", "empty regular expression"},
    {"back-reference", "a: if (body == \"(a)\\\\1\") {}", 0,
     "f:1: ", "back-references"},
    {"undefined escape", "a: if (subject == \"invoice \\\\d+\") {}", 0, "f:1: ",
     "\\d is not a POSIX regular expression escape (a digit is "
     "[0-9]"},
    {"regex expanding too far", "a: if (body == \"(a{1,255}){1,255}\") {}",
     SG_ERR_LIMIT, "f:1: ", "expands to more than 10000 atoms"},
    {"regex expanding too far with {,n}",
     "a: if (body == \"(ab{,101}){100}\") {}", SG_ERR_LIMIT,
     "f:1: ", "expands to more than 10000 atoms"},
    {"regex repeating a bare assertion", "a: if (body == \"x^*\") {}", 0,
     "f:1: ", "Invalid preceding regular expression"},
    {"regex nested too deep",
     "a: if (body == \"((((((((((((((((((((((((((((((((((((((((((((((((((("
     "((((((((((((((((a\") {}",
     SG_ERR_LIMIT, "f:1: ", "groups nested too deeply"},
    {"duplicate name", "a: {}\nb: {}\n\nA: {}", 0,
     "f:4: ", "filter 'A' is defined twice (first on line 1)"},
    {"empty condition", "a: if () { drop() }", 0, "f:1: ", "empty condition"},
    {"no condition", "a: if { drop() }", 0,
     "f:1: ", "expected a condition, found '{'"},
    {"dangling and", "a: if (true and) {}", 0,
     "f:1: ", "expected a condition, found ')'"},
    {"dangling not", "a: if (not) {}", 0,
     "f:1: ", "expected a condition, found ')'"},
    {"two atoms", "a: if (true false) {}", 0,
     "f:1: ", "expected ')' after condition, found 'false'"},
    {"trailing close parenthesis", "a: { drop() } )", 0,
     "f:1: ", "expected a filter name, found ')'"},
    {"trailing word", "a: { drop() }.\njunk", 0,
     "f:2: ", "expected ':' after the filter name 'junk', found end of file"},
    {"trailing string", "a: {}\n\"x\"", 0,
     "f:2: ", "expected a filter name, found a string"},
    {"missing colon", "a { }", 0,
     "f:1: ", "expected ':' after the filter name 'a', found '{'"},
    {"neither if nor block", "a: drop()", 0,
     "f:1: ", "expected 'if' or '{' after 'a:', found 'drop'"},
    {"missing semicolon", "a: { log(\"x\") log(\"y\") }", 0,
     "f:1: ", "expected ';' or '}' after log(), found 'log'"},
    {"double semicolon", "a: { log(\"x\");; }", 0,
     "f:1: ", "expected an action, found ';'"},
    {"action after final", "a: {\n drop();\n log(\"x\") }", 0,
     "f:3: ", "log() after drop() would never run"},
    {"action after skip", "a: { skip-filters(); drop() }", 0,
     "f:1: ", "drop() after skip-filters() would never run"},
    {"too few arguments", "a: { quarantine() }", 0,
     "f:1: ", "quarantine() takes 1 argument, not 0"},
    {"too many arguments", "a: { drop(\"x\") }", 0,
     "f:1: ", "drop() takes 0 arguments"},
    {"one of two arguments", "a: { add-header(\"X-A\") }", 0,
     "f:1: ", "add-header() takes 2 arguments, not 1"},
    {"arguments without comma", "a: { add-header(\"X-A\" \"v\") }", 0,
     "f:1: ", "expected ',' or ')' in add-header(...), found a string"},
    {"action without parentheses", "a: { drop }", 0,
     "f:1: ", "expected '(' after 'drop', found '}'"},
    {"bad header name", "a: { add-header(\"X Bad\", \"v\") }", 0,
     "f:1: ", "\"X Bad\" is not a header name"},
    {"bad header in condition", "a: if (header(\"A:B\")\n) {}", 0,
     "f:1: ", "\"A:B\" is not a header name"},
    {"bad notify address", "a: { notify(\"postmaster\") }", 0,
     "f:1: ", "is not an address"},
    {"bad profile", "a: { smime-sign-encrypt(\"a b\") }", 0,
     "f:1: ", "is not a profile name"},
    {"empty quarantine", "a: { quarantine(\"\") }", 0,
     "f:1: ", "quarantine name"},
    {"single equals", "a: if (subject = \"x\") {}", 0, "f:1: ", "'=' alone"},
    {"missing operator", "a: if (subject \"x\") {}", 0,
     "f:1: ", "expected == or != after 'subject', found a string"},
    {"regex without quotes", "a: if (subject == x) {}", 0,
     "f:1: ", "expected a regular expression in quotes, found 'x'"},
    {"bad size", "a: if (body-size > 10X) {}", 0,
     "f:1: ", "expected a size (like 500, 10K or 2M)"},
    {"size overflow", "a: if (body-size > 99999999999999999999) {}", 0,
     "f:1: ", "expected a size"},
    {"size without comparison", "a: if (body-size 10) {}", 0,
     "f:1: ", "expected a comparison"},
    {"empty phrase", "a: if (body-contains(\"\")) {}", 0,
     "f:1: ", "empty phrase"},
    {"phrase without parentheses", "a: if (body-contains \"x\") {}", 0,
     "f:1: ", "expected '(' after 'body-contains', found a string"},
    {"else without if", "a: {}\nelse {}", 0, "f:2: ", "'else' without 'if'"},
    {"else without block", "a: if (true) {} else drop()", 0,
     "f:1: ", "expected '{' before the actions, found 'drop'"},
    {"reserved name", "if: {}", 0, "f:1: ", "'if' is a reserved word"},
    {"control character in string", "a: { log(\"a\x01\") }", 0,
     "f:1: ", "control character 0x01"},
    {"unexpected character", "a: {}\n@", 0,
     "f:2: ", "unexpected character '@'"},
    {"unexpected byte", "a: {}\n\n\xc3\xa9: {}", 0,
     "f:3: ", "unexpected byte 0xc3"},
    {"nesting too deep",
     "a: if ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "true",
     SG_ERR_LIMIT, "f:1: ", "condition nested deeper than 64"},
};

static void
malformed_inputs_name_file_and_line(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct filter_set *fs = NULL;
		char err[256] = "";
		enum sg_status st, want = bad[i].st ? bad[i].st : SG_ERR_USAGE;

		st = filter_load_mem("f", bad[i].text, strlen(bad[i].text), &fs,
		                     err, sizeof(err));
		if (st != want || fs != NULL ||
		    strncmp(err, bad[i].where, strlen(bad[i].where)) != 0 ||
		    strstr(err, bad[i].reason) == NULL) {
			fprintf(stderr, "  %s: status %d, \"%s\"\n",
			        bad[i].name, st, err);
			unit_fail(__FILE__, __LINE__, bad[i].name);
		}
		filter_set_free(fs);
	}
}

/* Text of N nested "(" or "not", around "true". */
static char *
nested(int n, int use_not)
{
	size_t len = (size_t)n * 5 + 64;
	char *s = malloc(len), *p = s;

	if (s == NULL)
		abort();
	p += sprintf(p, "a: if ");
	for (int i = 0; i < n; i++)
		p += sprintf(p, use_not ? "not " : "(");
	p += sprintf(p, "true");
	for (int i = 0; !use_not && i < n; i++)
		*p++ = ')';
	sprintf(p, " { log(\"x\") }");
	return s;
}

static void
nesting_limit_is_64(void)
{
	for (int use_not = 0; use_not < 2; use_not++) {
		struct filter_set *fs = NULL;
		struct filter_facts f = {0};
		char err[256] = "", *ok = nested(64, use_not),
		     *deep = nested(65, use_not), got[64];

		run(ok, &f, got, sizeof(got));
		CHECK_STR(got, "log:x");
		CHECK_EQ(filter_load_mem("f", deep, strlen(deep), &fs, err,
		                         sizeof(err)),
		         SG_ERR_LIMIT);
		CHECK(strstr(err, "f:1: condition nested deeper than 64") ==
		      err);
		free(ok);
		free(deep);
	}
}

static void
size_and_count_limits(void)
{
	struct filter_set *fs = NULL;
	char err[256] = "", *text, *p;

	/* 10,000 filters load; one more is line 10,001. */
	if ((text = malloc(FILTER_MAX_FILE + 2)) == NULL)
		abort();
	p = text;
	for (int i = 0; i < 10000; i++)
		p += sprintf(p, "f%d: {}\n", i);
	CHECK_EQ(
	    filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)),
	    SG_OK);
	CHECK_EQ(filter_set_count(fs), 10000);
	filter_set_free(fs);
	fs = NULL;
	sprintf(p, "g: {}\n");
	CHECK_EQ(
	    filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)),
	    SG_ERR_LIMIT);
	CHECK_STR(err, "f:10001: more than 10000 filters");

	/* 1 MiB and a byte more: not even parsed. */
	memset(text, '#', FILTER_MAX_FILE + 1);
	CHECK_EQ(
	    filter_load_mem("f", text, FILTER_MAX_FILE, &fs, err, sizeof(err)),
	    SG_OK);
	CHECK_EQ(filter_set_count(fs), 0);
	filter_set_free(fs);
	fs = NULL;
	CHECK_EQ(filter_load_mem("f", text, FILTER_MAX_FILE + 1, &fs, err,
	                         sizeof(err)),
	         SG_ERR_LIMIT);
	CHECK(fs == NULL);
	CHECK(strncmp(err, "f: larger than", 14) == 0);

	/* A string of 4096 bytes, and one of 4097. */
	p = text + sprintf(text, "a:\n{ log(\"");
	memset(p, 's', FILTER_MAX_STRING);
	strcpy(p + FILTER_MAX_STRING, "\") }");
	CHECK_EQ(
	    filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)),
	    SG_OK);
	filter_set_free(fs);
	fs = NULL;
	p = text + sprintf(text, "a:\n{ log(\"");
	memset(p, 's', FILTER_MAX_STRING + 1);
	strcpy(p + FILTER_MAX_STRING + 1, "\") }");
	CHECK_EQ(
	    filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)),
	    SG_ERR_LIMIT);
	CHECK_STR(err, "f:2: string longer than 4096 bytes");

	/* A word of 256 characters. */
	memset(text, 'w', FILTER_MAX_WORD + 1);
	strcpy(text + FILTER_MAX_WORD + 1, ": {}");
	CHECK_EQ(
	    filter_load_mem("f", text, strlen(text), &fs, err, sizeof(err)),
	    SG_ERR_LIMIT);
	CHECK_STR(err, "f:1: word longer than 255 characters");
	free(text);
}

static const char sample[] =
    "# every construct, to cut at every length\n"
    "quarantine_smime_messages: if (smime-gateway-message and not "
    "smime-gateway-verified) { quarantine(\"Policy\"); }\n"
    "sign: if (subject == \"confidential\" or body-contains(\"secret\")\n"
    "    or header(\"X-Sign\") == \"^yes$\" and not (body-size > 10M)) {\n"
    "  smime-sign-encrypt-on-delivery(\"partners\");\n"
    "  add-header(\"X-Signed\", \"by \\\"gw\\\"\");\n"
    "} else if (rcpt-to != \"@example\\\\.com$\" and "
    "attachment-type == \"^application/\") {\n"
    "  notify(\"sec@example.com\"); strip-header(\"X-Sign\");\n"
    "} else { log(\"plain\") }.\n"
    "last: if (header(\"X-Drop\") or mail-from == \"^$\") { drop() };\n";

static void
every_prefix_loads_or_fails_cleanly(void)
{
	size_t len = strlen(sample), okays = 0;
	struct filter_facts f = std_facts(GW_MSG);

	for (size_t n = 0; n <= len; n++) {
		struct filter_set *fs = NULL;
		struct filter_result r;
		char err[256] = "";
		enum sg_status st =
		    filter_load_mem("f", sample, n, &fs, err, sizeof(err));
		if (st == SG_OK) {
			okays++;
			filter_result_init(&r);
			CHECK_EQ(filter_eval(fs, &f, &r), SG_OK);
			filter_result_clear(&r);
			filter_set_free(fs);
		} else {
			CHECK(fs == NULL && strncmp(err, "f:", 2) == 0);
		}
	}
	CHECK(okays >= 4);
	/* And every single-byte change of it. */
	char *m = strdup(sample);
	for (size_t i = 0; m && i < len; i++) {
		static const char subst[] = "\"(){};,.:=!\\\n#a ";
		for (size_t k = 0; k < sizeof(subst) - 1; k++) {
			struct filter_set *fs = NULL;
			char err[64];
			char old = m[i];
			m[i] = subst[k];
			if (filter_load_mem("f", m, len, &fs, err,
			                    sizeof(err)) != SG_OK)
				CHECK(fs == NULL && strncmp(err, "f:", 2) == 0);
			filter_set_free(fs);
			m[i] = old;
		}
	}
	free(m);
	/* The whole sample, on one message. */
	char got[256];
	run(sample, &f, got, sizeof(got));
	CHECK_STR(got, "quarantine:Policy |final");
	f = std_facts(GW_MSG | GW_OK);
	run(sample, &f, got, sizeof(got));
	CHECK_STR(got, "smime-sign-encrypt-on-delivery:partners "
	               "add-header:X-Signed:by \"gw\"");
}

static void
small_error_buffers_and_bad_arguments(void)
{
	struct filter_set *fs = NULL;
	char err[8];

	CHECK_EQ(filter_load_mem("f", "a: {", 4, &fs, NULL, 0), SG_ERR_USAGE);
	CHECK_EQ(
	    filter_load_mem("filters.conf", "a: {", 4, &fs, err, sizeof(err)),
	    SG_ERR_USAGE);
	CHECK_STR(err, "filters");
	CHECK(fs == NULL);
	CHECK_EQ(filter_load_mem("f", NULL, 0, &fs, err, sizeof(err)), SG_OK);
	CHECK_EQ(filter_set_count(fs), 0);
	struct filter_result r;
	filter_result_init(&r);
	CHECK_EQ(filter_eval(fs, NULL, &r), SG_ERR_USAGE);
	CHECK_EQ(filter_eval(NULL, &(struct filter_facts){0}, &r),
	         SG_ERR_USAGE);
	filter_set_free(fs);
	CHECK_EQ(filter_load_mem("f", NULL, 3, &fs, err, sizeof(err)),
	         SG_ERR_USAGE);
	CHECK_STR(filter_action_name(FA_SMIME_ON_DELIVERY),
	          "smime-sign-encrypt-on-delivery");
	CHECK_STR(filter_action_name((enum filter_action_kind)99), "unknown");
}

static char *
write_tmp(const char *text)
{
	char *path = strdup("/tmp/t_filter_XXXXXX");
	int fd = mkstemp(path);

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

static void
load_file_names_the_path(void)
{
	char *good = write_tmp(sample), *badf = write_tmp("a: {}\n\nb: {");
	struct filter_set *fs = NULL;
	char err[512] = "", want[300];

	CHECK_EQ(filter_load_file(good, &fs, err, sizeof(err)), SG_OK);
	CHECK_EQ(filter_set_count(fs), 3);
	filter_set_free(fs);
	fs = NULL;
	CHECK_EQ(filter_load_file(badf, &fs, err, sizeof(err)), SG_ERR_USAGE);
	snprintf(want, sizeof(want), "%s:3: missing '}'", badf);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK_EQ(filter_load_file("/nonexistent/filters.conf", &fs, err,
	                          sizeof(err)),
	         SG_ERR_IO);
	CHECK(strncmp(err, "/nonexistent/filters.conf: ", 27) == 0);
	CHECK_EQ(filter_load_file("/tmp", &fs, err, sizeof(err)), SG_ERR_IO);
	CHECK(fs == NULL);
	unlink(good);
	unlink(badf);
	free(good);
	free(badf);
}

static int
profile_exists(void *arg, const char *name)
{
	return strcmp(name, (const char *)arg) == 0;
}

static void
check_names_names_the_line(void)
{
	struct filter_set *fs = load("a: { smime-sign-encrypt-on-delivery("
	                             "\"p1\") }\n"
	                             "b: if (true) {} else {\n"
	                             "  smime-sign-encrypt(\"p2\") }\n");
	char err[256] = "";

	CHECK_EQ(filter_set_check_profiles(fs, profile_exists, "p1", err,
	                                   sizeof(err)),
	         SG_ERR_NOT_FOUND);
	CHECK(strncmp(err, "f:3: smime-sign-encrypt(\"p2\")", 29) == 0);
	CHECK_EQ(filter_set_check_profiles(fs, profile_exists, "p2", err,
	                                   sizeof(err)),
	         SG_ERR_NOT_FOUND);
	CHECK(strncmp(err, "f:1: ", 5) == 0);
	filter_set_free(fs);
	fs = load("a: { smime-sign-encrypt(\"p1\") }\n"
	          "b: if (true) { quarantine(\"Policy\") }\n"
	          "c: if (true) { quarantine(\"Virus\") }\n");
	CHECK_EQ(filter_set_check_profiles(fs, profile_exists, "p1", err,
	                                   sizeof(err)),
	         SG_OK);
	CHECK_EQ(filter_set_check_quarantines(fs, profile_exists, "Policy", err,
	                                      sizeof(err)),
	         SG_ERR_NOT_FOUND);
	CHECK_STR(err, "f:3: quarantine(\"Virus\"): no [quarantine Virus] in "
	               "the configuration");
	CHECK_EQ(filter_set_check_quarantines(NULL, profile_exists, "x", err,
	                                      sizeof(err)),
	         SG_ERR_USAGE);
	filter_set_free(fs);
}

static const struct unit_case cases[] = {
    {"seed_example_on_the_four_flag_combinations",
     seed_example_on_the_four_flag_combinations},
    {"precedence_not_and_or", precedence_not_and_or},
    {"every_atom_true_and_false", every_atom_true_and_false},
    {"empty_facts_are_empty_values", empty_facts_are_empty_values},
    {"regex_versus_plain_phrase", regex_versus_plain_phrase},
    {"glibc_explosive_regexes_load_and_match",
     glibc_explosive_regexes_load_and_match},
    {"else_if_and_else_chains", else_if_and_else_chains},
    {"on_delivery_lets_later_filters_run", on_delivery_lets_later_filters_run},
    {"final_action_stops_the_rest", final_action_stops_the_rest},
    {"final_result_takes_no_more_actions", final_result_takes_no_more_actions},
    {"skip_filters_ends_the_set_only", skip_filters_ends_the_set_only},
    {"actions_carry_their_arguments_filter_and_line",
     actions_carry_their_arguments_filter_and_line},
    {"comments_terminators_and_empty_files",
     comments_terminators_and_empty_files},
    {"malformed_inputs_name_file_and_line",
     malformed_inputs_name_file_and_line},
    {"nesting_limit_is_64", nesting_limit_is_64},
    {"size_and_count_limits", size_and_count_limits},
    {"every_prefix_loads_or_fails_cleanly",
     every_prefix_loads_or_fails_cleanly},
    {"small_error_buffers_and_bad_arguments",
     small_error_buffers_and_bad_arguments},
    {"load_file_names_the_path", load_file_names_the_path},
    {"check_names_names_the_line", check_names_names_the_line},
    {NULL, NULL},
};

const struct unit_suite suite_filter = {"filter", cases};
