/*
 * t_log.c - the logger: the line on stderr, one line whatever the text,
 * long lines cut visibly, the priority of error and warning events, and
 * the targets it accepts.
 */
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/reason.h"

static char captured[LOG_LINE_MAX * 2];

/* Runs FN with stderr going into a pipe; what it wrote goes to
 * `captured`.  Checks run after stderr is back. */
static void
capture(void (*fn)(void))
{
	size_t got = 0;
	ssize_t n;
	int p[2], saved;

	captured[0] = '\0';
	fflush(stderr);
	if (pipe(p) != 0 || (saved = dup(STDERR_FILENO)) == -1)
		return;
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	fn();
	dup2(saved, STDERR_FILENO); /* the last write end: EOF below */
	close(saved);
	while (got + 1 < sizeof(captured) &&
	       (n = read(p[0], captured + got, sizeof(captured) - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	captured[got] = '\0';
}

static void
one_event(void)
{
	log_event("test", "qid=%s event=queued n=%d", "0ABC", 3);
}

static void
line_on_stderr(void)
{
	char want[128];

	capture(one_event);
	snprintf(want, sizeof(want),
	         "smimegate[%ld]: test: qid=0ABC event=queued n=3\n",
	         (long)getpid());
	CHECK_STR(captured, want);
}

static void
hostile_event(void)
{
	log_event("test", "reply=\"%s\" event=x", "a\r\nfake: event=y\tz\x7f");
}

static void
control_characters_cannot_split_a_line(void)
{
	capture(hostile_event);
	CHECK(strstr(captured, "reply=\"a  fake: event=y z \" event=x\n") !=
	      NULL);
	CHECK(strchr(captured, '\n') == captured + strlen(captured) - 1);
	CHECK(strchr(captured, '\r') == NULL);
}

static void
long_event(void)
{
	static char big[LOG_LINE_MAX + 100];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_event("test", "event=big value=%s", big);
}

static void
long_lines_are_cut_visibly(void)
{
	size_t len;

	capture(long_event);
	len = strlen(captured);
	CHECK_EQ(len, (size_t)LOG_LINE_MAX);
	CHECK(len > 4 && strcmp(captured + len - 4, "...\n") == 0);
	CHECK(strchr(captured, '\n') == captured + len - 1);
}

static void
error_and_warning_events_raise_the_level(void)
{
	static const struct {
		enum log_level given;
		const char *text;
		enum log_level want;
	} cases[] = {
	    {LOG_LEVEL_INFO, "event=error op=accept", LOG_LEVEL_ERR},
	    {LOG_LEVEL_INFO, "qid=1 event=error", LOG_LEVEL_ERR},
	    {LOG_LEVEL_INFO, "event=warning reason=\"x\"", LOG_LEVEL_WARN},
	    {LOG_LEVEL_WARN, "event=error", LOG_LEVEL_ERR},
	    {LOG_LEVEL_ERR, "event=warning", LOG_LEVEL_ERR},
	    {LOG_LEVEL_WARN, "event=queued", LOG_LEVEL_WARN},
	    /* must not match: another event, part of a word or a value */
	    {LOG_LEVEL_INFO, "event=queued", LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "event=errors", LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "xevent=error", LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "reply=\"event=error\"", LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "event=spool-error", LOG_LEVEL_INFO},
	    /* a quoted value or an address is one field, whatever it holds */
	    {LOG_LEVEL_INFO, "event=deferred reply=\"550 event=error x\"",
	     LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "reply=\"a\" event=error", LOG_LEVEL_ERR},
	    {LOG_LEVEL_INFO, "from=<a event=error b> event=queued",
	     LOG_LEVEL_INFO},
	    {LOG_LEVEL_INFO, "from=<a> event=warning", LOG_LEVEL_WARN},
	    /* an unclosed quote or bracket: the rest is read as usual */
	    {LOG_LEVEL_INFO, "x=\"a event=error", LOG_LEVEL_ERR},
	    {LOG_LEVEL_INFO, "", LOG_LEVEL_INFO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_EQ(log_level_of(cases[i].given, cases[i].text),
		         cases[i].want);
}

static void
targets(void)
{
	char err[256] = "";
	char want[128];

	CHECK_EQ(log_open("file", NULL, err, sizeof(err)), -1);
	CHECK(strstr(err, "stderr or syslog") != NULL);
	CHECK_EQ(log_open("", NULL, NULL, 0), -1);
	CHECK_EQ(log_open("stderr", "gw-test", err, sizeof(err)), 0);
	capture(one_event);
	snprintf(want, sizeof(want), "gw-test[%ld]: test: ", (long)getpid());
	CHECK(strncmp(captured, want, strlen(want)) == 0);
	if (access("/dev/log", F_OK) != 0) {
		/* no syslog here: refused, and the target stays */
		err[0] = '\0';
		CHECK_EQ(log_open("syslog", NULL, err, sizeof(err)), -1);
		CHECK(strstr(err, "/dev/log") != NULL);
		capture(one_event);
		CHECK(strncmp(captured, want, strlen(want)) == 0);
	} else {
		CHECK_EQ(log_open("syslog", NULL, err, sizeof(err)), 0);
		capture(one_event);
		CHECK_STR(captured, ""); /* it went to syslog */
		log_close();
	}
	CHECK_EQ(log_open(NULL, NULL, NULL, 0), 0); /* back to the default */
	capture(one_event);
	snprintf(want, sizeof(want), "smimegate[%ld]: test: ", (long)getpid());
	CHECK(strncmp(captured, want, strlen(want)) == 0);
}

/* A value from outside cannot end its quotes or split the line; it is
 * cut to the room given, always terminated. */
static void
quoted_values_are_cleaned(void)
{
	char v[16];

	log_quote_value(v, sizeof(v), "550 \"no\"\\\r\nx\x7f");
	CHECK_STR(v, "550 'no''  x ");
	log_quote_value(v, 6, "0123456789");
	CHECK_STR(v, "01234");
	log_quote_value(v, 1, "abc");
	CHECK_STR(v, "");
	log_quote_value(v, sizeof(v), "");
	CHECK_STR(v, "");
}

/* An address keeps every octet, readably, and cannot end its <...> early
 * or hold a space: the quoted local part of a forger's MAIL FROM stays
 * one field of the line. */
static void
addresses_are_escaped(void)
{
	char v[LOG_ADDR_MAX], small[8], line[LOG_LINE_MAX];

	CHECK_STR(log_addr(v, sizeof(v), "user+tag@example.com"),
	          "user+tag@example.com");
	CHECK_STR(log_addr(v, sizeof(v), "\"a b\"@example.com"),
	          "\"a\\x20b\"@example.com");
	CHECK_STR(log_addr(v, sizeof(v), "\"x> event=error qid=F\\\"\"@e.org"),
	          "\"x\\x3e\\x20event=error\\x20qid=F\\x5c\"\"@e.org");
	CHECK_STR(log_addr(v, sizeof(v), "<\x01\xff>"), "\\x3c\\x01\\xff\\x3e");
	CHECK_STR(log_addr(v, sizeof(v), ""), "");
	/* cut to fit, never in the middle of an escape */
	CHECK_STR(log_addr(small, sizeof(small), "abcdefghij"), "abcdefg");
	CHECK_STR(log_addr(small, sizeof(small), "abcd efg"), "abcd");
	CHECK_STR(log_addr(small, 1, "abc"), "");
	/* an SMTP path of 254 octets, all escaped, fits */
	memset(line, ' ', 254);
	line[254] = '\0';
	CHECK_EQ(strlen(log_addr(v, sizeof(v), line)), 254u * 4);

	snprintf(line, sizeof(line), "event=queued from=<%s> nrcpt=1",
	         LOG_ADDR("\"a event=error b\"@example.com"));
	CHECK_EQ(log_level_of(LOG_LEVEL_INFO, line), LOG_LEVEL_INFO);
	snprintf(line, sizeof(line), "event=verified signer=\"%s\" x=1",
	         LOG_Q("CN=\" event=error y=\""));
	CHECK_STR(line, "event=verified signer=\"CN=' event=error y='\" x=1");
	CHECK_EQ(log_level_of(LOG_LEVEL_INFO, line), LOG_LEVEL_INFO);
}

/* A failure's reason (reason.h) is one line too, whatever it quotes. */
static void
reasons_stay_one_line(void)
{
	char r[32];

	reason_set(r, sizeof(r), "server said: %s", "no\r\nsuch\tuser");
	CHECK_STR(r, "server said: no  such user");
	reason_set(r, 8, "%s", "0123456789");
	CHECK_STR(r, "0123456");
	reason_set(NULL, 0, "%s", "ignored");
}

static const struct unit_case cases[] = {
    {"line_on_stderr", line_on_stderr},
    {"control_characters_cannot_split_a_line",
     control_characters_cannot_split_a_line},
    {"long_lines_are_cut_visibly", long_lines_are_cut_visibly},
    {"error_and_warning_events_raise_the_level",
     error_and_warning_events_raise_the_level},
    {"targets", targets},
    {"quoted_values_are_cleaned", quoted_values_are_cleaned},
    {"addresses_are_escaped", addresses_are_escaped},
    {"reasons_stay_one_line", reasons_stay_one_line},
    {NULL, NULL},
};

const struct unit_suite suite_log = {"log", cases};
