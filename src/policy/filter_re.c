/*
 * filter_re.c - the regular expressions of the filter language: vetted
 * before they are compiled (no back-references, a bounded expansion), so
 * that neither loading a filter file nor matching a hostile message can
 * run away, then compiled once, at load time, into the set.
 */
#include "policy/filter_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RE_DEPTH     64    /* groups in one regular expression */
#define MAX_RE_SIZE      10000 /* atoms of its expansion */
#define MAX_RE_SIZE_TEXT "10000"

/* The ']' that closes the bracket expression at S ('['), or NULL. */
static const char *
bracket_end(const char *s)
{
	s++;
	if (*s == '^')
		s++;
	if (*s == ']')
		s++;
	for (; *s != '\0'; s++) {
		if (*s == '[' && (s[1] == ':' || s[1] == '.' || s[1] == '=')) {
			const char *e = s + 2;
			while (*e != '\0' && !(e[0] == s[1] && e[1] == ']'))
				e++;
			if (*e == '\0')
				return NULL;
			s = e + 1;
		} else if (*s == ']') {
			return s;
		}
	}
	return NULL;
}

/*
 * NULL when the extended regular expression S is fit to compile, else
 * why not: back-references make matching exponential on a hostile
 * message, and glibc builds bounded repetitions out in full, so
 * "(a{1,255}){1,255}" alone would take hundreds of megabytes.  Counts the
 * atoms of the expansion (a{2,9} is 9 atoms, a+ is 2) per group and
 * branch.  What it does not understand is left to regcomp.
 */
static const char *
regex_unfit(const char *s, int *limit)
{
	struct {
		uint64_t alt;  /* the finished branches of the group */
		uint64_t cur;  /* the current branch */
		uint64_t last; /* the last piece, for a repetition */
	} st[MAX_RE_DEPTH + 1];
	int d = 0;
	unsigned long n, m;
	char *e;

	memset(&st[0], 0, sizeof(st[0]));
	*limit = 1;
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '(':
			if (d == MAX_RE_DEPTH)
				return "groups nested too deeply";
			memset(&st[++d], 0, sizeof(st[d]));
			continue;
		case ')':
			if (d == 0)
				goto atom;
			d--;
			st[d].last = st[d + 1].alt + st[d + 1].cur;
			st[d].cur += st[d].last;
			break;
		case '|':
			st[d].alt += st[d].cur;
			st[d].cur = st[d].last = 0;
			break;
		case '[':
			if ((s = bracket_end(s)) == NULL)
				return NULL;
			goto atom;
		case '\\':
			if (s[1] >= '1' && s[1] <= '9') {
				*limit = 0;
				return "back-references (\\1) are not "
				       "supported";
			}
			if (s[1] != '\0')
				s++;
			goto atom;
		case '{':
			if (!isdigit((unsigned char)s[1]))
				goto atom;
			n = m = strtoul(s + 1, &e, 10);
			if (*e == ',') {
				e++;
				n = isdigit((unsigned char)*e)
				        ? strtoul(e, &e, 10)
				        : m + 1;
			}
			if (*e != '}')
				goto atom;
			n = n < 1 ? 1 : n > 100000 ? 100000 : n;
			st[d].cur += st[d].last * (n - 1);
			st[d].last *= n;
			s = e;
			break;
		case '+':
			st[d].cur += st[d].last;
			st[d].last *= 2;
			break;
		case '*':
		case '?':
			break;
		default:
		atom:
			st[d].cur++;
			st[d].last = 1;
			break;
		}
		if (st[d].alt + st[d].cur > MAX_RE_SIZE)
			return "it expands to more than " MAX_RE_SIZE_TEXT
			       " atoms (a{1,100} counts 100)";
	}
	return NULL;
}

const regex_t *
filter_re_compile(struct parser *ps, enum fc_field field)
{
	struct filter_re *r;
	const char *why;
	char msg[128];
	int rc, limit, flags = REG_EXTENDED | REG_ICASE | REG_NOSUB;

	if (ps->tok.len == 0) {
		filter_lex_fail(
		    ps, ps->tok.line,
		    "empty regular expression (\"^$\" matches an empty "
		    "value)");
		return NULL;
	}
	if ((why = regex_unfit(ps->tok.text, &limit)) != NULL) {
		if (limit)
			ps->st = SG_ERR_LIMIT;
		filter_lex_fail(
		    ps, ps->tok.line, "bad regular expression \"%.60s%s\": %s",
		    ps->tok.text, ps->tok.len > 60 ? "..." : "", why);
		return NULL;
	}
	/* The body has lines: ^ and $ match at each, . not a newline. */
	if (field == FF_BODY)
		flags |= REG_NEWLINE;
	if ((r = filter_lex_alloc(ps, sizeof(*r))) == NULL)
		return NULL;
	if ((rc = regcomp(&r->re, ps->tok.text, flags)) != 0) {
		regerror(rc, &r->re, msg, sizeof(msg));
		if (rc == REG_ESPACE)
			ps->st = SG_ERR_LIMIT;
		filter_lex_fail(
		    ps, ps->tok.line, "bad regular expression \"%.60s%s\": %s",
		    ps->tok.text, ps->tok.len > 60 ? "..." : "", msg);
		return NULL;
	}
	r->next = ps->fs->res;
	ps->fs->res = r;
	return &r->re;
}
