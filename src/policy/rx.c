/*
 * rx.c - regular expressions in time linear in the text (rx.h).
 *
 * The pattern is parsed (POSIX ERE, as glibc's regcomp reads it) into a
 * tree, written out into a Thompson NFA (bounded repetitions copied out,
 * so the program is bounded by RX_MAX_ATOMS), and matched by a DFA whose
 * states are built on demand from sets of NFA positions, as RE2 and
 * grep do.  A state is a sorted set of positions waiting for a byte or
 * an assertion, and the kind of byte before it (start, newline, word
 * character, other) for ^ $ \b \< \>.  Each byte of text is one table
 * look-up once its transition is known; working a transition out is one
 * pass over at most the whole program.  The states live in one cache
 * per call, bounded: when it is full it is emptied and matching goes on,
 * so hostile text costs the program's size per byte, never more.
 */
#include "policy/rx.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Program ------------------------------------------------------- */

enum rx_op { OP_SET, OP_SPLIT, OP_JMP, OP_ASSERT, OP_MATCH };

/* Instructions of a program at most: an atom writes out at most three
 * (a set, or a split and a jump around it), and the splits and jumps of
 * alternatives and empty groups are bounded by the pattern's length. */
#define RX_MAX_PROG ((uint32_t)RX_MAX_ATOMS * 8)

enum rx_assert {
	AS_BOL,    /* ^ */
	AS_EOL,    /* $ */
	AS_BOT,    /* \` */
	AS_EOT,    /* \' */
	AS_WORDB,  /* \b */
	AS_NWORDB, /* \B */
	AS_WBEG,   /* \< */
	AS_WEND    /* \> */
};

struct rx_inst {
	uint8_t op;
	uint8_t as;    /* OP_ASSERT */
	uint32_t x, y; /* OP_SET: the set; OP_SPLIT: both; OP_JMP: x */
};

struct rx_set {
	uint64_t w[4]; /* byte c is in when bit c is set */
};

struct rx {
	struct rx_inst *prog;
	uint32_t n, cap;
	struct rx_set *sets;
	uint32_t nsets, setcap;
	int flags;
	int has_assert; /* the kinds of bytes matter */
	int prev_line;  /* ^ or \`: whether a line starts before a byte */
	int prev_word;  /* \b \B \< \>: whether a word byte is before it */
};

static int
set_has(const struct rx_set *s, unsigned c)
{
	return (s->w[c >> 6] >> (c & 63)) & 1;
}

static void
set_add(struct rx_set *s, unsigned c)
{
	s->w[c >> 6] |= (uint64_t)1 << (c & 63);
}

/* ---- Parse tree ---------------------------------------------------- */

enum rx_kind { N_EMPTY, N_SET, N_ASSERT, N_CAT, N_ALT, N_REP };

#define REP_INF UINT32_MAX

struct rx_node {
	uint8_t kind;
	uint8_t as;        /* N_ASSERT */
	uint32_t a, b;     /* N_CAT, N_ALT: both; N_REP: a */
	uint32_t min, max; /* N_REP; max REP_INF for no bound */
	uint32_t set;      /* N_SET */
	uint64_t atoms;    /* of the written-out subtree */
};

struct rx_parse {
	const char *p; /* the next character */
	struct rx *re;
	struct rx_node *nodes;
	uint32_t nn, ncap;
	int depth;
	uint32_t *stk; /* pieces and branches being read; pending jumps */
	uint32_t nstk, stkcap;
	char *why;
	size_t whylen;
	int *limit;
	int failed;
};

static void fail(struct rx_parse *ps, int limit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct rx_parse *ps, int limit, const char *fmt, ...)
{
	va_list ap;

	if (ps->failed)
		return;
	ps->failed = 1;
	*ps->limit = limit;
	if (ps->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(ps->why, ps->whylen, fmt, ap);
		va_end(ap);
	}
}

#define NOMEM(ps) fail((ps), 1, "%s", "out of memory")

/* Room in the array *V (*CAP items of SIZE bytes) for item N: doubles
 * it when full.  0, or -1 after NOMEM. */
static int
grow(struct rx_parse *ps, void *v, uint32_t *cap, size_t n, size_t size)
{
	void **pv = v, *w;
	uint32_t c;

	if (ps->failed)
		return -1;
	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	if ((w = realloc(*pv, (size_t)c * size)) == NULL) {
		NOMEM(ps);
		return -1;
	}
	*pv = w;
	*cap = c;
	return 0;
}

/* Fails when node N written out would exceed RX_MAX_ATOMS. */
static void
check_atoms(struct rx_parse *ps, uint32_t n)
{
	if (!ps->failed && ps->nodes[n].atoms > RX_MAX_ATOMS)
		fail(ps, 1,
		     "it expands to more than %s atoms (a{1,100} counts 100)",
		     RX_MAX_ATOMS_TEXT);
}

static uint32_t
node_new(struct rx_parse *ps, enum rx_kind kind)
{
	struct rx_node *n;

	if (grow(ps, &ps->nodes, &ps->ncap, ps->nn, sizeof(*n)) < 0)
		return 0;
	n = &ps->nodes[ps->nn];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	return ps->nn++;
}

/* A new set (all bytes clear) for NODE, or NULL after a failure. */
static struct rx_set *
set_new(struct rx_parse *ps, uint32_t node)
{
	struct rx *re = ps->re;

	if (grow(ps, &re->sets, &re->setcap, re->nsets, sizeof(re->sets[0])) <
	    0)
		return NULL;
	ps->nodes[node].set = re->nsets;
	ps->nodes[node].atoms = 1;
	memset(&re->sets[re->nsets], 0, sizeof(re->sets[0]));
	return &re->sets[re->nsets++];
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	if (a != 0 && b > UINT64_MAX / 4 / a)
		return UINT64_MAX / 4;
	return a * b;
}

static uint32_t
node_pair(struct rx_parse *ps, enum rx_kind kind, uint32_t a, uint32_t b)
{
	uint32_t n = node_new(ps, kind);

	if (ps->failed)
		return 0;
	ps->nodes[n].a = a;
	ps->nodes[n].b = b;
	ps->nodes[n].atoms = ps->nodes[a].atoms + ps->nodes[b].atoms;
	check_atoms(ps, n);
	return n;
}

static void
push(struct rx_parse *ps, uint32_t v)
{
	if (grow(ps, &ps->stk, &ps->stkcap, ps->nstk, sizeof(v)) == 0)
		ps->stk[ps->nstk++] = v;
}

/* The items pushed since BASE joined by KIND, right-deep (a (b (c d)))
 * so that writing it out recurses only into the left of each. */
static uint32_t
join(struct rx_parse *ps, uint32_t base, enum rx_kind kind)
{
	uint32_t n;

	if (ps->failed)
		return 0;
	if (ps->nstk == base)
		return node_new(ps, N_EMPTY);
	n = ps->stk[--ps->nstk];
	while (!ps->failed && ps->nstk > base)
		n = node_pair(ps, kind, ps->stk[--ps->nstk], n);
	ps->nstk = base;
	return n;
}

/* Finishes set S: case folding, then negation (not '\n' in lines). */
static void
set_finish(struct rx_parse *ps, struct rx_set *s, int negate)
{
	if (ps->re->flags & RX_ICASE)
		for (unsigned c = 'A'; c <= 'Z'; c++)
			if (set_has(s, c) || set_has(s, c + 32)) {
				set_add(s, c);
				set_add(s, c + 32);
			}
	if (negate) {
		for (int i = 0; i < 4; i++)
			s->w[i] = ~s->w[i];
		if (ps->re->flags & RX_NEWLINE)
			s->w[0] &= ~((uint64_t)1 << '\n');
	}
	/* the text is a C string here and in glibc: no NUL to match */
	s->w[0] &= ~(uint64_t)1;
}

static uint32_t
node_char(struct rx_parse *ps, unsigned c)
{
	uint32_t n = node_new(ps, N_SET);
	struct rx_set *s = set_new(ps, n);

	if (s == NULL)
		return 0;
	set_add(s, c);
	set_finish(ps, s, 0);
	return n;
}

static int
is_word(unsigned c)
{
	return c < 128 && (isalnum((int)c) || c == '_');
}

/* The bytes of the class NAME (of LEN bytes) into S; -1 when unknown. */
static int
class_add(struct rx_set *s, const char *name, size_t len)
{
	static const struct {
		const char *name;
		int (*is)(int);
	} classes[] = {
	    {"alpha", isalpha}, {"digit", isdigit}, {"alnum", isalnum},
	    {"upper", isupper}, {"lower", islower}, {"space", isspace},
	    {"blank", isblank}, {"punct", ispunct}, {"print", isprint},
	    {"graph", isgraph}, {"cntrl", iscntrl}, {"xdigit", isxdigit},
	};

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strlen(classes[i].name) != len ||
		    memcmp(classes[i].name, name, len) != 0)
			continue;
		for (unsigned c = 1; c < 128; c++)
			if (classes[i].is((int)c))
				set_add(s, c);
		return 0;
	}
	return -1;
}

/*
 * One element of a bracket expression at ps->p: a character, [.c.] or
 * [=c=] (single characters: glibc knows no multi-character ones in the C
 * locale), or [:class:] (into S, *C -1).  0, or -1 after fail().
 */
static int
bracket_elem(struct rx_parse *ps, struct rx_set *s, int *c)
{
	const char *p = ps->p;

	if (p[0] == '[' && (p[1] == '.' || p[1] == '=' || p[1] == ':')) {
		char kind = p[1];
		const char *e = p + 2;

		while (*e != '\0' && !(e[0] == kind && e[1] == ']'))
			e++;
		if (*e == '\0') {
			fail(ps, 0, "%s", "Unmatched [, [^, [:, [., or [=");
			return -1;
		}
		ps->p = e + 2;
		if (kind == ':') {
			if (class_add(s, p + 2, (size_t)(e - p - 2)) < 0) {
				fail(ps, 0, "%s",
				     "Invalid character class name");
				return -1;
			}
			*c = -1;
			return 0;
		}
		if (e - p - 2 != 1) {
			fail(ps, 0, "%s", "Invalid collation character");
			return -1;
		}
		*c = (unsigned char)p[2];
		return 0;
	}
	if (*p == '\0') {
		fail(ps, 0, "%s", "Unmatched [, [^, [:, [., or [=");
		return -1;
	}
	*c = (unsigned char)*p;
	ps->p = p + 1;
	return 0;
}

/* The bracket expression after '[' at ps->p. */
static uint32_t
parse_bracket(struct rx_parse *ps)
{
	uint32_t n = node_new(ps, N_SET);
	struct rx_set *s = set_new(ps, n);
	int negate = 0, first = 1, lo, hi;

	if (s == NULL)
		return 0;
	if (*ps->p == '^')
		negate = 1, ps->p++;
	for (;;) {
		if (*ps->p == ']' && !first) {
			ps->p++;
			break;
		}
		first = 0;
		if (bracket_elem(ps, s, &lo) < 0)
			return 0;
		if (ps->p[0] == '-' && ps->p[1] != ']' && ps->p[1] != '\0') {
			ps->p++;
			if (bracket_elem(ps, s, &hi) < 0)
				return 0;
			if (lo < 0 || hi < 0 || lo > hi) {
				fail(ps, 0, "%s", "Invalid range end");
				return 0;
			}
			for (int c = lo; c <= hi; c++)
				set_add(s, (unsigned)c);
		} else if (lo >= 0) {
			set_add(s, (unsigned)lo);
		}
	}
	set_finish(ps, s, negate);
	return n;
}

/* The class of an escape \w \W \s \S as a set node. */
static uint32_t
node_escape_class(struct rx_parse *ps, char e)
{
	uint32_t n = node_new(ps, N_SET);
	struct rx_set *s = set_new(ps, n);

	if (s == NULL)
		return 0;
	for (unsigned c = 1; c < 256; c++)
		if (e == 'w' || e == 'W' ? is_word(c)
		                         : c < 128 && isspace((int)c))
			set_add(s, c);
	set_finish(ps, s, e == 'W' || e == 'S');
	return n;
}

static uint32_t
node_assert(struct rx_parse *ps, enum rx_assert as)
{
	uint32_t n = node_new(ps, N_ASSERT);

	if (ps->failed)
		return 0;
	ps->nodes[n].as = (uint8_t)as;
	ps->nodes[n].atoms = 1;
	ps->re->has_assert = 1;
	if (as == AS_BOL || as == AS_BOT)
		ps->re->prev_line = 1;
	else if (as != AS_EOL && as != AS_EOT)
		ps->re->prev_word = 1;
	return n;
}

static uint32_t parse_alt(struct rx_parse *ps);

/* One atom at ps->p, or N_EMPTY with *NONE set when there is none. */
static uint32_t
parse_atom(struct rx_parse *ps, int *none)
{
	unsigned char c = (unsigned char)*ps->p;
	uint32_t n;

	*none = 0;
	switch (c) {
	case '(':
		if (ps->depth == RX_MAX_DEPTH) {
			fail(ps, 1, "%s", "groups nested too deeply");
			return 0;
		}
		ps->p++;
		ps->depth++;
		n = parse_alt(ps);
		ps->depth--;
		if (ps->failed)
			return 0;
		if (*ps->p != ')') {
			fail(ps, 0, "%s", "Unmatched ( or \\(");
			return 0;
		}
		ps->p++;
		return n;
	case '[':
		ps->p++;
		return parse_bracket(ps);
	case '.':
		ps->p++;
		n = node_new(ps, N_SET);
		{
			struct rx_set *s = set_new(ps, n);

			if (s == NULL)
				return 0;
			set_finish(ps, s, 1); /* [^] */
		}
		return n;
	case '^':
		ps->p++;
		return node_assert(ps, AS_BOL);
	case '$':
		ps->p++;
		return node_assert(ps, AS_EOL);
	case '\\':
		c = (unsigned char)ps->p[1];
		if (c == '\0') {
			fail(ps, 0, "%s", "Trailing backslash");
			return 0;
		}
		ps->p += 2;
		if (c >= '1' && c <= '9') {
			fail(ps, 0, "%s",
			     "back-references (\\1) are not supported");
			return 0;
		}
		switch (c) {
		case 'w':
		case 'W':
		case 's':
		case 'S':
			return node_escape_class(ps, (char)c);
		case 'b':
			return node_assert(ps, AS_WORDB);
		case 'B':
			return node_assert(ps, AS_NWORDB);
		case '<':
			return node_assert(ps, AS_WBEG);
		case '>':
			return node_assert(ps, AS_WEND);
		case '`':
			return node_assert(ps, AS_BOT);
		case '\'':
			return node_assert(ps, AS_EOT);
		}
		/* POSIX leaves \d, \n, \x41 ... undefined; glibc reads a
		 * literal, or under REG_ICASE nothing at all (for a lower
		 * case letter), and someone who wrote \d meant a digit:
		 * refused, with what to write */
		if (isalnum(c)) {
			fail(ps, 0,
			     "\\%c is not a POSIX regular expression escape "
			     "(a digit is [0-9], a space \\s; for a literal "
			     "%c, leave out the backslash)",
			     c, c);
			return 0;
		}
		return node_char(ps, c);
	case '*':
	case '+':
	case '?':
	case '{':
		fail(ps, 0, "%s", "Invalid preceding regular expression");
		return 0;
	case '|':
	case '\0':
		*none = 1;
		return 0;
	case ')':
		if (ps->depth > 0) {
			*none = 1;
			return 0;
		}
		ps->p++; /* an unmatched ')' is an ordinary character */
		return node_char(ps, c);
	default:
		ps->p++;
		return node_char(ps, c);
	}
}

/* The interval after '{' at ps->p into *MIN, *MAX; 0 or -1 (failed). */
static int
parse_interval(struct rx_parse *ps, uint32_t *min, uint32_t *max)
{
	unsigned long lo = 0, hi;
	const char *p = ps->p;
	char *e;

	if (isdigit((unsigned char)*p)) {
		lo = strtoul(p, &e, 10);
		p = e;
	} else if (*p != ',') {
		goto bad;
	}
	hi = lo;
	if (*p == ',') {
		p++;
		if (isdigit((unsigned char)*p)) {
			hi = strtoul(p, &e, 10);
			p = e;
		} else {
			hi = REP_INF;
		}
	}
	if (*p != '}')
		goto bad;
	if ((hi != REP_INF && hi > 32767) || lo > 32767) {
		fail(ps, 1, "%s", "Regular expression too big");
		return -1;
	}
	if (hi < lo)
		goto bad_content;
	ps->p = p + 1;
	*min = (uint32_t)lo;
	*max = (uint32_t)hi;
	return 0;
bad:
	for (; *p != '\0' && *p != '}'; p++)
		;
	if (*p == '\0') {
		fail(ps, 0, "%s", "Unmatched \\{");
		return -1;
	}
bad_content:
	fail(ps, 0, "%s", "Invalid content of \\{\\}");
	return -1;
}

/* A piece: an atom and its repetitions. */
static uint32_t
parse_piece(struct rx_parse *ps, int *none)
{
	int group = *ps->p == '(', reps = 0;
	uint32_t n = parse_atom(ps, none), r, min, max;

	if (ps->failed || *none)
		return n;
	for (;;) {
		char c = *ps->p;

		if (c == '*')
			min = 0, max = REP_INF;
		else if (c == '+')
			min = 1, max = REP_INF;
		else if (c == '?')
			min = 0, max = 1;
		else if (c != '{')
			return n;
		ps->p++;
		if (c == '{' && parse_interval(ps, &min, &max) < 0)
			return 0;
		if (++reps > RX_MAX_DEPTH) {
			fail(ps, 1, "%s", "too many repetitions in a row");
			return 0;
		}
		if (ps->nodes[n].kind == N_ASSERT && !group) {
			fail(ps, 0, "%s",
			     "Invalid preceding regular expression");
			return 0;
		}
		r = node_new(ps, N_REP);
		if (ps->failed)
			return 0;
		ps->nodes[r].a = n;
		ps->nodes[r].min = min;
		ps->nodes[r].max = max;
		/* each copy counts at least one: a repeated empty group
		 * still writes out its splits and jumps ("()++++..."
		 * doubles them at each '+') */
		ps->nodes[r].atoms =
		    sat_mul(ps->nodes[n].atoms ? ps->nodes[n].atoms : 1,
		            max == REP_INF ? (uint64_t)min + 1 : max);
		n = r;
		check_atoms(ps, n);
		if (ps->failed)
			return 0;
	}
}

static uint32_t
parse_branch(struct rx_parse *ps)
{
	uint32_t base = ps->nstk;
	uint32_t p;
	int none;

	for (;;) {
		p = parse_piece(ps, &none);
		if (ps->failed)
			return 0;
		if (none)
			return join(ps, base, N_CAT);
		push(ps, p);
	}
}

static uint32_t
parse_alt(struct rx_parse *ps)
{
	uint32_t base = ps->nstk;

	push(ps, parse_branch(ps));
	while (!ps->failed && *ps->p == '|') {
		ps->p++;
		push(ps, parse_branch(ps));
	}
	return join(ps, base, N_ALT);
}

/* ---- Code generation ----------------------------------------------- */

static uint32_t
emit(struct rx_parse *ps, enum rx_op op, uint32_t x, uint32_t y)
{
	struct rx *re = ps->re;

	/* a backstop behind the atom count: whatever the count missed,
	 * the program written out stays bounded, and so does the time */
	if (re->n >= RX_MAX_PROG) {
		fail(ps, 1, "it expands to more than %u instructions",
		     (unsigned)RX_MAX_PROG);
		return 0;
	}
	if (grow(ps, &re->prog, &re->cap, re->n, sizeof(re->prog[0])) < 0)
		return 0;
	re->prog[re->n].op = (uint8_t)op;
	re->prog[re->n].as = 0;
	re->prog[re->n].x = x;
	re->prog[re->n].y = y;
	return re->n++;
}

/*
 * Writes node N out.  The tree is right-deep (join), so this loops down
 * the right of CAT and ALT and recurses only into their left, a piece or
 * a branch: the depth is bounded by the groups and repetitions of one
 * piece (RX_MAX_DEPTH each).  The jumps out of the alternatives met on
 * the way all go to where this call ends.
 */
static void
gen(struct rx_parse *ps, uint32_t n)
{
	uint32_t base = ps->nstk;
	struct rx_node nd;
	uint32_t l, k;

	while (!ps->failed) {
		nd = ps->nodes[n];
		if (nd.kind == N_CAT) {
			gen(ps, nd.a);
			n = nd.b;
			continue;
		}
		if (nd.kind == N_ALT) {
			l = emit(ps, OP_SPLIT, 0, 0);
			gen(ps, nd.a);
			push(ps, emit(ps, OP_JMP, 0, 0));
			if (ps->failed)
				break;
			ps->re->prog[l].x = l + 1;
			ps->re->prog[l].y = ps->re->n;
			n = nd.b;
			continue;
		}
		if (nd.kind == N_SET) {
			emit(ps, OP_SET, nd.set, 0);
		} else if (nd.kind == N_ASSERT) {
			k = emit(ps, OP_ASSERT, 0, 0);
			if (!ps->failed)
				ps->re->prog[k].as = nd.as;
		} else if (nd.kind == N_REP) {
			for (uint32_t i = 0; i < nd.min && !ps->failed; i++)
				gen(ps, nd.a);
			if (nd.max == REP_INF) {
				l = emit(ps, OP_SPLIT, 0, 0);
				gen(ps, nd.a);
				emit(ps, OP_JMP, l, 0);
				if (!ps->failed) {
					ps->re->prog[l].x = l + 1;
					ps->re->prog[l].y = ps->re->n;
				}
			} else if (nd.max > nd.min) {
				/* the optional copies: skipping one skips
				 * the rest, so every split goes to the end */
				uint32_t sb = ps->nstk;

				for (uint32_t i = nd.min;
				     i < nd.max && !ps->failed; i++) {
					l = emit(ps, OP_SPLIT, 0, 0);
					push(ps, l);
					if (!ps->failed)
						ps->re->prog[l].x = l + 1;
					gen(ps, nd.a);
				}
				for (size_t i = sb; !ps->failed && i < ps->nstk;
				     i++)
					ps->re->prog[ps->stk[i]].y = ps->re->n;
				ps->nstk = sb;
			}
		}
		break;
	}
	for (size_t i = base; !ps->failed && i < ps->nstk; i++)
		ps->re->prog[ps->stk[i]].x = ps->re->n;
	ps->nstk = base;
}

struct rx *
rx_compile(const char *pattern, int flags, char *why, size_t whylen, int *limit)
{
	struct rx_parse ps = {.p = pattern, .why = why, .whylen = whylen};
	int dummy;
	uint32_t root;

	ps.limit = limit != NULL ? limit : &dummy;
	*ps.limit = 0;
	if (whylen > 0)
		why[0] = '\0';
	if ((ps.re = calloc(1, sizeof(*ps.re))) == NULL) {
		NOMEM(&ps);
		return NULL;
	}
	ps.re->flags = flags;
	root = parse_alt(&ps); /* to the end: a ')' there is a character */
	gen(&ps, root);
	emit(&ps, OP_MATCH, 0, 0);
	free(ps.nodes);
	free(ps.stk);
	if (ps.failed) {
		rx_free(ps.re);
		return NULL;
	}
	return ps.re;
}

void
rx_free(struct rx *re)
{
	if (re == NULL)
		return;
	free(re->prog);
	free(re->sets);
	free(re);
}

/* ---- Matching ------------------------------------------------------ */

/* The kind of the byte before a position, and of the byte at it. */
enum { K_EDGE, K_NL, K_WORD, K_OTHER };

#define RX_CACHE_MAX ((size_t)2 << 20) /* bytes of DFA states per call */
#define RX_CHUNK     ((size_t)64 << 10)
/* The first chunk of a call: room for a dozen states, which is all most
 * calls (a header's value) need, and small enough that freeing it does
 * not make glibc consolidate its heap (a free of 64 KiB or more does). */
#define RX_CHUNK_FIRST ((size_t)32 << 10)

/*
 * Skipping ahead.  A state that reads many bytes without leaving (the
 * start of an unanchored search, or ".*") and leaves only on a few of
 * them has its whole row worked out once; from then on the bytes that
 * keep it where it is are skipped with memchr (one) or eight at a time
 * (up to RX_EXITS), as RE2 and glibc skip to a first byte.  Rows are
 * worked out only for a state that has read RX_ACCEL_SEEN bytes, with
 * RX_ACCEL_LEFT bytes of text still ahead, and only while their cost
 * (positions of the program visited) stays within a quarter of the
 * search's own (bytes read and positions visited) plus RX_ACCEL_FREE; a
 * row that would go over is left half done.  Whatever the text and the
 * program, rows add at most that.  A state
 * whose skips are short (under RX_SKIP_SHORT bytes on average over a
 * window of RX_SKIP_TRIES) stops skipping: its exits have become
 * too common for it to pay.
 */
#define RX_EXITS      4
#define RX_ACCEL_SEEN 256
#define RX_ACCEL_LEFT ((size_t)4096)
#define RX_ACCEL_FREE ((size_t)1 << 16)
#define RX_SKIP_TRIES 64
#define RX_SKIP_SHORT 16

enum { ACC_UNKNOWN, ACC_NONE, ACC_SKIP };

struct dstate {
	struct dstate *next[256]; /* NULL: not worked out yet */
	uint32_t hash;
	uint32_t n;    /* positions */
	uint8_t prev;  /* kind of the byte before, as far as it matters */
	uint8_t accel; /* ACC_* */
	uint8_t nexit; /* ACC_SKIP: the bytes that leave the state */
	unsigned char exit[RX_EXITS];
	uint32_t seen;  /* bytes read in it, until its row is worked out */
	uint32_t skips; /* ACC_SKIP: skips made, and the bytes skipped */
	uint64_t skipped;
	uint32_t pc[]; /* sorted */
};

/* The transition to a match (any state that has one matches). */
static struct dstate *const DS_MATCH = (struct dstate *)&DS_MATCH;

struct chunk {
	struct chunk *next;
	size_t used, size;
	max_align_t data[];
};

struct run {
	const struct rx *re;
	uint32_t *mark; /* per position: the pass that last saw it */
	uint32_t pass;
	uint32_t *stack;     /* of positions to visit */
	uint32_t *cur, ncur; /* positions being built */
	uint32_t *tmp, ntmp; /* after the assertions */
	struct dstate **tab; /* open addressing, a power of 2 */
	size_t tabsize, nstates, bytes;
	struct chunk *chunks;
	size_t visits;     /* positions visited working out states */
	size_t accel_cost; /* the part of VISITS spent on rows */
};

static int
kind_of(const struct rx *re, unsigned c)
{
	if (c == '\n' && (re->flags & RX_NEWLINE))
		return K_NL;
	return is_word(c) ? K_WORD : K_OTHER;
}

/* Kind K as the state after the byte keeps it: only what the pattern's
 * assertions can ask of the byte before (a word byte or not for \b; a
 * line start or not for ^), so that states that differ in nothing else
 * are one, and the start of a search without \b or ^ is one state. */
static int
prev_kind(const struct rx *re, int k)
{
	if (k == K_WORD && !re->prev_word)
		return K_OTHER;
	if ((k == K_EDGE || k == K_NL) && !re->prev_line)
		return K_OTHER;
	return k;
}

static int
holds(const struct rx *re, unsigned as, int prev, int next)
{
	int nl = (re->flags & RX_NEWLINE) != 0;

	switch (as) {
	case AS_BOL:
		return prev == K_EDGE || (nl && prev == K_NL);
	case AS_EOL:
		return next == K_EDGE || (nl && next == K_NL);
	case AS_BOT:
		return prev == K_EDGE;
	case AS_EOT:
		return next == K_EDGE;
	case AS_WORDB:
		return (prev == K_WORD) != (next == K_WORD);
	case AS_NWORDB:
		return (prev == K_WORD) == (next == K_WORD);
	case AS_WBEG:
		return prev != K_WORD && next == K_WORD;
	case AS_WEND:
		return prev == K_WORD && next != K_WORD;
	}
	return 0;
}

static void
new_pass(struct run *r)
{
	if (++r->pass == 0) {
		memset(r->mark, 0, r->re->n * sizeof(r->mark[0]));
		r->pass = 1;
	}
}

/*
 * Adds to OUT (*NOUT) the positions reached from PC without reading a
 * byte: through splits and jumps, and through assertions when CTX (prev
 * kind * 4 + next kind) is given and they hold there; positions already
 * seen in this pass are skipped.  1 when MATCH is reached.
 */
static int
closure(struct run *r, uint32_t pc, int ctx, uint32_t *out, uint32_t *nout)
{
	const struct rx_inst *prog = r->re->prog;
	size_t sp = 0;
	int matched = 0;

	r->stack[sp++] = pc;
	while (sp > 0) {
		pc = r->stack[--sp];
		r->visits++;
		if (r->mark[pc] == r->pass)
			continue;
		r->mark[pc] = r->pass;
		switch (prog[pc].op) {
		case OP_JMP:
			r->stack[sp++] = prog[pc].x;
			break;
		case OP_SPLIT:
			r->stack[sp++] = prog[pc].y;
			r->stack[sp++] = prog[pc].x;
			break;
		case OP_ASSERT:
			if (ctx < 0) {
				out[(*nout)++] = pc;
			} else if (holds(r->re, prog[pc].as, ctx >> 2,
			                 ctx & 3)) {
				r->stack[sp++] = pc + 1;
			}
			break;
		case OP_MATCH:
			matched = 1;
			out[(*nout)++] = pc;
			break;
		default: /* OP_SET */
			out[(*nout)++] = pc;
			break;
		}
	}
	return matched;
}

static int
cmp_pc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts the N positions at PC: by insertion while they are few (most
 * states hold a handful, and qsort's set-up costs more than the sort). */
static void
sort_pcs(uint32_t *pc, uint32_t n)
{
	if (n > 16) {
		qsort(pc, n, sizeof(pc[0]), cmp_pc);
		return;
	}
	for (uint32_t i = 1; i < n; i++) {
		uint32_t v = pc[i], j = i;

		for (; j > 0 && pc[j - 1] > v; j--)
			pc[j] = pc[j - 1];
		pc[j] = v;
	}
}

static uint32_t
state_hash(const uint32_t *pc, uint32_t n, int prev)
{
	uint32_t h = 2166136261u ^ (uint32_t)prev;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ pc[i]) * 16777619u;
	return h;
}

static void
cache_clear(struct run *r)
{
	struct chunk *c, *next;

	for (c = r->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	r->chunks = NULL;
	if (r->tab != NULL)
		memset(r->tab, 0, r->tabsize * sizeof(r->tab[0]));
	r->nstates = 0;
	r->bytes = 0;
}

static void *
cache_alloc(struct run *r, size_t size)
{
	struct chunk *c = r->chunks;
	void *p;

	size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (c == NULL || c->size - c->used < size) {
		size_t room = c == NULL ? RX_CHUNK_FIRST : RX_CHUNK;
		size_t want = size > room ? size : room;

		if ((c = malloc(sizeof(*c) + want)) == NULL)
			return NULL;
		c->next = r->chunks;
		c->used = 0;
		c->size = want;
		r->chunks = c;
		r->bytes += sizeof(*c) + want;
	}
	p = (char *)c->data + c->used;
	c->used += size;
	return p;
}

/* The state of the N sorted positions PC after a byte of kind PREV,
 * from the cache or new; NULL when memory ran out. */
static struct dstate *
state_get(struct run *r, const uint32_t *pc, uint32_t n, int prev)
{
	uint32_t h = state_hash(pc, n, prev);
	size_t i, mask;
	struct dstate *s;

	if (r->nstates * 2 >= r->tabsize) {
		size_t size = r->tabsize ? r->tabsize * 2 : 64;
		struct dstate **tab = calloc(size, sizeof(*tab));

		if (tab == NULL)
			return NULL;
		for (i = 0; i < r->tabsize; i++) {
			if ((s = r->tab[i]) == NULL)
				continue;
			size_t j = s->hash & (size - 1);
			while (tab[j] != NULL)
				j = (j + 1) & (size - 1);
			tab[j] = s;
		}
		free(r->tab);
		r->tab = tab;
		r->tabsize = size;
	}
	mask = r->tabsize - 1;
	for (i = h & mask; (s = r->tab[i]) != NULL; i = (i + 1) & mask)
		if (s->hash == h && s->n == n && s->prev == prev &&
		    memcmp(s->pc, pc, n * sizeof(pc[0])) == 0)
			return s;
	if ((s = cache_alloc(r, sizeof(*s) + n * sizeof(pc[0]))) == NULL)
		return NULL;
	memset(s->next, 0, sizeof(s->next));
	s->accel = ACC_UNKNOWN;
	s->seen = s->skips = 0;
	s->skipped = 0;
	s->hash = h;
	s->n = n;
	s->prev = (uint8_t)prev;
	memcpy(s->pc, pc, n * sizeof(pc[0]));
	r->tab[i] = s;
	r->nstates++;
	return s;
}

/*
 * Where S goes on byte C (C < 0: the end of the text): DS_MATCH when a
 * match ends before or with C, else the next state; NULL when memory ran
 * out.  Caches the answer in S unless the cache had to be emptied.
 */
static struct dstate *
step(struct run *r, struct dstate *s, int c)
{
	const struct rx *re = r->re;
	int next = c < 0 ? K_EDGE : kind_of(re, (unsigned)c);
	int ctx = re->has_assert ? s->prev * 4 + next : 0;
	int prev = prev_kind(re, next); /* for the state after C */
	struct dstate *ns;

	/* the assertions that hold between the byte before and C */
	new_pass(r);
	r->ntmp = 0;
	for (uint32_t i = 0; i < s->n; i++)
		if (closure(r, s->pc[i], ctx, r->tmp, &r->ntmp))
			return DS_MATCH;
	if (c < 0)
		return NULL; /* not a match: the caller knows */
	/* C read; the search may also start after it */
	new_pass(r);
	r->ncur = 0;
	for (uint32_t i = 0; i < r->ntmp; i++) {
		const struct rx_inst *in = &re->prog[r->tmp[i]];

		if (in->op == OP_SET &&
		    set_has(&re->sets[in->x], (unsigned)c) &&
		    closure(r, r->tmp[i] + 1, -1, r->cur, &r->ncur))
			return DS_MATCH;
	}
	if (closure(r, 0, -1, r->cur, &r->ncur))
		return DS_MATCH;
	sort_pcs(r->cur, r->ncur);
	if (r->bytes >= RX_CACHE_MAX) {
		cache_clear(r); /* S is gone: it learns nothing */
		return state_get(r, r->cur, r->ncur, prev);
	}
	if ((ns = state_get(r, r->cur, r->ncur, prev)) != NULL)
		s->next[(unsigned char)c] = ns;
	return ns;
}

/*
 * Works out the whole row of S and, when at most RX_EXITS bytes leave
 * it, makes it skip to them.  Gives up (ACC_NONE) rather than let the
 * cache be emptied under S, or spend more than BUDGET visits in all.
 * -1 when memory ran out.
 */
static int
accel_row(struct run *r, struct dstate *s, size_t budget)
{
	unsigned char exits[RX_EXITS];
	size_t v0 = r->visits;
	unsigned n = 0;
	int rc = 0;

	s->accel = ACC_NONE;
	for (unsigned c = 0; c < 256; c++) {
		struct dstate *ns = s->next[c];

		if (ns == NULL) {
			if (r->bytes >= RX_CACHE_MAX || /* it would empty */
			    r->accel_cost + (r->visits - v0) > budget)
				goto out;
			if ((ns = step(r, s, (int)c)) == NULL) {
				rc = -1;
				goto out;
			}
		}
		if (ns != s) {
			if (n == RX_EXITS)
				goto out;
			exits[n++] = (unsigned char)c;
		}
	}
	memcpy(s->exit, exits, n);
	s->nexit = (uint8_t)n;
	s->accel = ACC_SKIP;
out:
	r->accel_cost += r->visits - v0;
	return rc;
}

/* The first position from I on where T holds one of S's exits, or LEN. */
static size_t
skip(struct dstate *s, const unsigned char *t, size_t i, size_t len)
{
	const uint64_t low = 0x0101010101010101ULL, high = low << 7;
	size_t from = i;

	if (s->nexit == 0) {
		i = len;
	} else if (s->nexit == 1) {
		const unsigned char *p = memchr(t + i, s->exit[0], len - i);
		i = p != NULL ? (size_t)(p - t) : len;
	} else {
		uint64_t rep[RX_EXITS];

		for (unsigned k = 0; k < s->nexit; k++)
			rep[k] = low * s->exit[k];
		for (; i + 8 <= len; i += 8) {
			uint64_t w, hit = 0;

			memcpy(&w, t + i, 8);
			for (unsigned k = 0; k < s->nexit; k++) {
				uint64_t x = w ^ rep[k];
				hit |= (x - low) & ~x & high;
			}
			if (hit) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				/* the lowest flag is a true one (the borrow
				 * flags only bytes above a match), and the
				 * lowest byte comes first */
				i += (size_t)__builtin_ctzll(hit) / 8;
				goto found;
#else
				break; /* the loop below finds it */
#endif
			}
		}
		for (; i < len; i++)
			for (unsigned k = 0; k < s->nexit; k++)
				if (t[i] == s->exit[k])
					goto found;
	found:;
	}
	s->skipped += i - from;
	if (++s->skips == RX_SKIP_TRIES) { /* one window of skips */
		if (s->skipped < (uint64_t)RX_SKIP_TRIES * RX_SKIP_SHORT)
			s->accel = ACC_NONE;
		s->skips = 0;
		s->skipped = 0;
	}
	return i;
}

int
rx_match(const struct rx *re, const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	struct run r = {.re = re};
	struct dstate *s, *ns;
	size_t i = 0;
	int rc = -1;

	/* one block: the marks (zeroed), the stack, the two position sets */
	if ((r.mark = calloc((size_t)re->n * 5 + 2, sizeof(uint32_t))) == NULL)
		goto done;
	r.stack = r.mark + re->n;
	r.cur = r.stack + (size_t)re->n * 2 + 2;
	r.tmp = r.cur + re->n;
	new_pass(&r);
	if (closure(&r, 0, -1, r.cur, &r.ncur)) {
		rc = 1;
		goto done;
	}
	sort_pcs(r.cur, r.ncur);
	if ((s = state_get(&r, r.cur, r.ncur, prev_kind(re, K_EDGE))) == NULL)
		goto done;
	while (i < len) {
		size_t lim, start;

		if (s->accel == ACC_SKIP && (i = skip(s, t, i, len)) == len)
			break;
		if (s->accel == ACC_UNKNOWN && s->seen >= RX_ACCEL_SEEN &&
		    len - i >= RX_ACCEL_LEFT) {
			size_t budget =
			    (i + r.visits - r.accel_cost) / 4 + RX_ACCEL_FREE;

			if (r.accel_cost >= budget)
				s->accel = ACC_NONE; /* none left for it */
			else if (accel_row(&r, s, budget) < 0)
				goto done;
			continue;
		}
		/* byte by byte, at most 64 before looking again */
		lim = len - i > 64 ? i + 64 : len;
		start = i;
		do {
			if ((ns = s->next[t[i]]) == NULL &&
			    (ns = step(&r, s, t[i])) == NULL)
				goto done;
			if (ns == DS_MATCH) {
				rc = 1;
				goto done;
			}
			i++;
		} while (ns == s && i < lim);
		/* stayed: count what S read (after a step that emptied the
		 * cache, S is NS's memory or was left) */
		if (ns == s && s->seen < RX_ACCEL_SEEN)
			s->seen += (uint32_t)(i - start);
		s = ns;
	}
	rc = step(&r, s, -1) == DS_MATCH;
done:
	cache_clear(&r);
	free(r.tab);
	free(r.mark);
	return rc;
}

int
rx_match_str(const struct rx *re, const char *s)
{
	return s == NULL ? rx_match(re, "", 0) : rx_match(re, s, strlen(s));
}
