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
#define MAX_RE_OPT       1000 /* of them optional (a?, a*, a{0,n}) */
#define MAX_RE_OPT_TEXT  "1000"
#define MAX_RE_ANCH      16 /* zero-width assertions (^, $, \b) */
#define MAX_RE_ANCH_TEXT "16"

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

/* What a piece, a branch or a group costs glibc's regcomp: the atoms of
 * its expansion, those of them that are optional (each can be skipped,
 * so the empty-move closures of a run of them grow with its square) and
 * the zero-width assertions (whose closures grow faster still). */
struct re_cost {
	uint64_t atoms, opt, anch;
};

static void
cost_add(struct re_cost *a, const struct re_cost *b)
{
	a->atoms += b->atoms;
	a->opt += b->opt;
	a->anch += b->anch;
}

static void
cost_sub(struct re_cost *a, const struct re_cost *b)
{
	a->atoms -= b->atoms;
	a->opt -= b->opt;
	a->anch -= b->anch;
}

/* One group (level 0 is the whole expression) while it is read. */
struct re_level {
	struct re_cost alt;  /* its finished branches */
	struct re_cost cur;  /* the current branch, LAST included */
	struct re_cost last; /* the last piece, for a repetition */
	int have_last;       /* the current branch has a piece */
	int alt_empty;       /* a finished branch can match "" */
	int pre_empty;       /* the current branch can, before LAST */
	int last_empty;      /* LAST can */
};

static void
level_start(struct re_level *l)
{
	memset(l, 0, sizeof(*l));
	l->pre_empty = 1;
}

/* Appends a piece of cost C to L's current branch. */
static void
level_piece(struct re_level *l, const struct re_cost *c, int empty)
{
	if (l->have_last)
		l->pre_empty = l->pre_empty && l->last_empty;
	l->last = *c;
	l->last_empty = empty;
	l->have_last = 1;
	cost_add(&l->cur, c);
}

/* Whether L's current branch can match the empty string. */
static int
level_branch_empty(const struct re_level *l)
{
	return l->pre_empty && (!l->have_last || l->last_empty);
}

/* The repetition X{M,N} of L's last piece X (N copies, the last N - M of
 * them optional; X? is {0,1}, X* {0,1} with LOOP, X+ {1,2} with LOOP,
 * X{M,} {M,M+1} with LOOP): glibc writes the copies out, the last in a
 * loop with LOOP.  NULL, or why not. */
static const char *
level_repeat(struct re_level *l, uint64_t m, uint64_t n, int loop)
{
	struct re_cost c = l->last;

	if (!l->have_last)
		return NULL; /* nothing to repeat: regcomp says so */
	if ((n > 1 || loop) && l->last_empty)
		return "it repeats (with *, + or {n}) something that can "
		       "match the empty string: write (a*)+ and a** as a*, "
		       "(a?){3} as a{0,3}";
	if (m > n)
		m = n;
	c.atoms = l->last.atoms * n;
	c.anch = l->last.anch * n;
	c.opt = l->last.opt * m + l->last.atoms * (n - m);
	cost_sub(&l->cur, &l->last);
	cost_add(&l->cur, &c);
	l->last = c;
	if (m == 0)
		l->last_empty = 1;
	return NULL;
}

/* The interval "{M}", "{M,}", "{M,N}" or "{,N}" at S (its '{'), as M,
 * the copies N and LOOP of level_repeat; the '}' in *END.  0, or -1
 * when it is not one (then the '{' is an ordinary character). */
static int
interval(const char *s, uint64_t *m, uint64_t *n, int *loop, const char **end)
{
	unsigned long lo = 0, hi;
	char *e = (char *)s + 1;

	if (!isdigit((unsigned char)*e) && *e != ',')
		return -1;
	if (isdigit((unsigned char)*e))
		lo = strtoul(e, &e, 10);
	lo = lo > 100000 ? 100000 : lo;
	hi = lo;
	*loop = 0;
	if (*e == ',') {
		e++;
		*loop = !isdigit((unsigned char)*e);
		hi = *loop ? lo + 1 : strtoul(e, &e, 10);
	}
	if (*e != '}')
		return -1;
	hi = hi < 1 ? 1 : hi > 100000 ? 100000 : hi;
	*m = lo;
	*n = hi;
	*end = e;
	return 0;
}

/*
 * NULL when the extended regular expression S is fit to compile, else
 * why not.  Back-references make matching exponential on a hostile
 * message.  glibc's regcomp writes bounded repetitions out in full and
 * computes, for every node, the nodes reachable without reading a
 * character, so its time and memory grow with the expansion, with the
 * square of the optional atoms in it (a{0,9999}: 800 MB), and faster
 * still with repetitions of what can be empty ((a*)+ nested ten times:
 * 30 s and 3 GB; "^a" and 160 '*': 18 s) and with zero-width assertions
 * (\b written 125 times: more than 20 GB).  So the atoms of the
 * expansion are counted (a{2,9} is 9, of them 7 optional; a+ is 2, of
 * them 1), per group and branch, and so are the assertions, and a
 * repetition of what can match the empty string is refused (there is
 * always a way to write it without).  Within these limits the worst
 * found costs about 100 MB and 0.1 s (\b 16 times, then a{0,984});
 * (a{1,255}){1,255}, refused, costs 150 MB.  What this does not
 * understand is left to regcomp.  *LIMIT is 1 when a limit was
 * exceeded, 0 for what is not supported at all.
 */
static const char *
regex_unfit(const char *s, int *limit)
{
	static const struct re_cost one = {1, 0, 0}, assertion = {1, 1, 1};
	struct re_level st[MAX_RE_DEPTH + 1];
	struct re_cost c;
	const char *why, *e;
	uint64_t m, n;
	int d = 0, empty, loop;

	level_start(&st[0]);
	*limit = 0;
	for (; *s != '\0'; s++) {
		why = NULL;
		switch (*s) {
		case '(':
			if (d == MAX_RE_DEPTH) {
				*limit = 1;
				return "groups nested too deeply";
			}
			level_start(&st[++d]);
			continue;
		case ')':
			if (d == 0)
				goto atom;
			c = st[d].alt;
			cost_add(&c, &st[d].cur);
			empty = st[d].alt_empty || level_branch_empty(&st[d]);
			d--;
			level_piece(&st[d], &c, empty);
			break;
		case '|':
			cost_add(&st[d].alt, &st[d].cur);
			st[d].alt_empty |= level_branch_empty(&st[d]);
			memset(&st[d].cur, 0, sizeof(st[d].cur));
			st[d].have_last = 0;
			st[d].pre_empty = 1;
			break;
		case '[':
			if ((s = bracket_end(s)) == NULL)
				return NULL;
			goto atom;
		case '\\':
			if (s[1] >= '1' && s[1] <= '9')
				return "back-references (\\1) are not "
				       "supported";
			if (s[1] == '\0')
				goto atom;
			s++;
			/* GNU's word and buffer boundaries */
			if (strchr("bB<>`'", *s) != NULL)
				goto zero_width;
			goto atom;
		case '^':
		case '$':
		zero_width:
			level_piece(&st[d], &assertion, 1);
			break;
		case '{':
			if (interval(s, &m, &n, &loop, &e) < 0)
				goto atom;
			why = level_repeat(&st[d], m, n, loop);
			s = e;
			break;
		case '+':
			why = level_repeat(&st[d], 1, 2, 1);
			break;
		case '*':
			why = level_repeat(&st[d], 0, 1, 1);
			break;
		case '?':
			why = level_repeat(&st[d], 0, 1, 0);
			break;
		default:
		atom:
			level_piece(&st[d], &one, 0);
			break;
		}
		if (why != NULL)
			return why;
		c = st[d].alt;
		cost_add(&c, &st[d].cur);
		*limit = 1;
		if (c.atoms > MAX_RE_SIZE)
			return "it expands to more than " MAX_RE_SIZE_TEXT
			       " atoms (a{1,100} counts 100)";
		if (c.opt > MAX_RE_OPT)
			return "it expands to more than " MAX_RE_OPT_TEXT
			       " optional atoms (a{1,100} counts 99)";
		if (c.anch > MAX_RE_ANCH)
			return "it has more than " MAX_RE_ANCH_TEXT
			       " assertions (^, $, \\b, \\<, ...) when "
			       "written out";
		*limit = 0;
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
