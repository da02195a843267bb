/*
 * filter_parse.c - the filter language's grammar (docs/filters.md): a
 * recursive-descent parser with one token of lookahead over filter_lex.c,
 * which reports every error as NAME:LINE: reason.  Everything it builds
 * lives in the set's arena, so a failure anywhere frees the whole partial
 * set at once.
 */
#include "policy/filter.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/filter_int.h"

#define MAX_HEADER 128 /* bytes of a header name */
#define MAX_ARGS   2

/* ---- Checks of names and arguments ---------------------------------- */

static int
header_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MAX_HEADER)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 32 || (unsigned char)*s >= 127 ||
		    *s == ':')
			return 0;
	return 1;
}

static int
profile_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s >= 128 ||
		    (!isalnum((unsigned char)*s) && !strchr("._-", *s)))
			return 0;
	return 1;
}

static int
address_ok(const char *s)
{
	const char *at = strrchr(s, '@');

	if (at == NULL || at == s || at[1] == '\0' || strlen(s) > 254)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 32 || strchr("<>\",;()[]\\", *s))
			return 0;
	return 1;
}

/* "10", "10K", "2m": bytes, 1024-based. */
static int
parse_size(const char *s, uint64_t *out)
{
	unsigned long long n;
	uint64_t mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'k' || *end == 'K') {
		mul = 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		mul = 1024 * 1024;
		end++;
	}
	if (*end != '\0' || n > UINT64_MAX / mul)
		return -1;
	*out = (uint64_t)n * mul;
	return 0;
}

/* ---- Conditions ------------------------------------------------------ */

enum atom_form {
	A_TRUE,
	A_FALSE,
	A_FLAG,
	A_MATCH,
	A_CONTAINS,
	A_HEADER,
	A_SIZE
};

static const struct atom {
	const char *name;
	enum atom_form form;
	enum fc_field field;
} atoms[] = {
    {"true", A_TRUE, 0},
    {"false", A_FALSE, 0},
    {"smime-gateway-message", A_FLAG, FF_SMIME_GATEWAY_MESSAGE},
    {"smime-gateway-verified", A_FLAG, FF_SMIME_GATEWAY_VERIFIED},
    {"smime-signed", A_FLAG, FF_SMIME_SIGNED},
    {"smime-encrypted", A_FLAG, FF_SMIME_ENCRYPTED},
    {"subject", A_MATCH, FF_SUBJECT},
    {"body", A_MATCH, FF_BODY},
    {"mail-from", A_MATCH, FF_MAIL_FROM},
    {"rcpt-to", A_MATCH, FF_RCPT_TO},
    {"attachment-filename", A_MATCH, FF_ATT_NAME},
    {"attachment-type", A_MATCH, FF_ATT_TYPE},
    {"subject-contains", A_CONTAINS, FF_SUBJECT},
    {"body-contains", A_CONTAINS, FF_BODY},
    {"header", A_HEADER, FF_HEADER},
    {"body-size", A_SIZE, 0},
};

static struct filter_cond *parse_or(struct parser *ps);

static struct filter_cond *
new_cond(struct parser *ps, enum fc_kind kind)
{
	struct filter_cond *c = filter_lex_alloc(ps, sizeof(*c));

	if (c != NULL)
		c->kind = kind;
	return c;
}

/* "(" STRING ")" after NAME: the string in *OUT, its line in *LINE. */
static int
paren_string(struct parser *ps, const char *name, const char *what, char **out,
             unsigned *line)
{
	char buf[80];

	snprintf(buf, sizeof(buf), "'(' after '%s'", name);
	if (filter_lex_next(ps) == -1 ||
	    filter_lex_expect(ps, T_LPAREN, buf) == -1 ||
	    filter_lex_next(ps) == -1 ||
	    filter_lex_expect(ps, T_STRING, what) == -1)
		return -1;
	*line = ps->tok.line;
	if ((*out = filter_lex_strdup(ps, ps->tok.text, ps->tok.len)) == NULL)
		return -1;
	if (filter_lex_next(ps) == -1 ||
	    filter_lex_expect(ps, T_RPAREN, "')'") == -1)
		return -1;
	return filter_lex_next(ps);
}

/* "== REGEX" or "!= REGEX" after a field. */
static int
match_op(struct parser *ps, struct filter_cond *c, const char *name)
{
	char buf[80];

	if (ps->tok.kind != T_EQ && ps->tok.kind != T_NE) {
		snprintf(buf, sizeof(buf), "== or != after '%s'", name);
		return filter_lex_expect(ps, T_EQ, buf);
	}
	c->kind = FC_MATCH;
	c->negate = ps->tok.kind == T_NE;
	if (filter_lex_next(ps) == -1 ||
	    filter_lex_expect(ps, T_STRING, "a regular expression in quotes") ==
	        -1 ||
	    (c->re = filter_re_compile(ps, c->field)) == NULL)
		return -1;
	return filter_lex_next(ps);
}

static struct filter_cond *
parse_atom(struct parser *ps)
{
	const struct atom *a = NULL;
	struct filter_cond *c;
	const char *name;
	char *s;
	unsigned line;

	for (size_t i = 0; i < sizeof(atoms) / sizeof(*atoms); i++)
		if (filter_lex_is_word(ps, atoms[i].name))
			a = &atoms[i];
	if (a == NULL) {
		filter_lex_fail(ps, ps->tok.line, "unknown condition %s",
		                filter_lex_found(ps));
		return NULL;
	}
	if ((c = new_cond(ps, FC_TRUE)) == NULL)
		return NULL;
	c->field = a->field;
	name = a->name;
	switch (a->form) {
	case A_TRUE:
	case A_FALSE:
	case A_FLAG:
		c->kind = a->form == A_TRUE    ? FC_TRUE
		          : a->form == A_FALSE ? FC_FALSE
		                               : FC_FLAG;
		return filter_lex_next(ps) == -1 ? NULL : c;
	case A_MATCH:
		if (filter_lex_next(ps) == -1 || match_op(ps, c, name) == -1)
			return NULL;
		return c;
	case A_CONTAINS:
		c->kind = FC_CONTAINS;
		if (paren_string(ps, name, "a phrase in quotes", &s, &line) ==
		    -1)
			return NULL;
		if (*s == '\0') {
			filter_lex_fail(ps, line, "%s(\"\"): empty phrase",
			                name);
			return NULL;
		}
		c->phrase = s;
		return c;
	case A_HEADER:
		if (paren_string(ps, name, "a header name in quotes", &s,
		                 &line) == -1)
			return NULL;
		if (!header_name_ok(s)) {
			filter_lex_fail(ps, line,
			                "\"%.60s\" is not a header name", s);
			return NULL;
		}
		c->name = s;
		c->kind = FC_PRESENT;
		if (ps->tok.kind == T_EQ || ps->tok.kind == T_NE)
			return match_op(ps, c, name) == -1 ? NULL : c;
		return c;
	case A_SIZE:
		if (filter_lex_next(ps) == -1)
			return NULL;
		if (ps->tok.kind < T_EQ || ps->tok.kind > T_GE) {
			filter_lex_fail(
			    ps, ps->tok.line,
			    "expected a comparison (<, <=, >, >=, ==, !=) "
			    "after 'body-size', found %s",
			    filter_lex_found(ps));
			return NULL;
		}
		c->kind = FC_SIZE;
		c->op = ps->tok.kind == T_EQ   ? FO_EQ
		        : ps->tok.kind == T_NE ? FO_NE
		        : ps->tok.kind == T_LT ? FO_LT
		        : ps->tok.kind == T_LE ? FO_LE
		        : ps->tok.kind == T_GT ? FO_GT
		                               : FO_GE;
		if (filter_lex_next(ps) == -1)
			return NULL;
		if (ps->tok.kind != T_WORD ||
		    parse_size(ps->tok.text, &c->n) == -1) {
			filter_lex_fail(
			    ps, ps->tok.line,
			    "expected a size (like 500, 10K or 2M) after "
			    "'body-size', found %s",
			    filter_lex_found(ps));
			return NULL;
		}
		return filter_lex_next(ps) == -1 ? NULL : c;
	}
	return NULL;
}

static int
deeper(struct parser *ps)
{
	if (++ps->depth <= FILTER_MAX_DEPTH)
		return 0;
	ps->st = SG_ERR_LIMIT;
	return filter_lex_fail(ps, ps->tok.line,
	                       "condition nested deeper than %d",
	                       FILTER_MAX_DEPTH);
}

static struct filter_cond *
parse_primary(struct parser *ps)
{
	struct filter_cond *c;

	if (ps->tok.kind == T_LPAREN) {
		if (deeper(ps) == -1 || filter_lex_next(ps) == -1)
			return NULL;
		if (ps->tok.kind == T_RPAREN) {
			filter_lex_fail(ps, ps->tok.line,
			                "empty condition '()'");
			return NULL;
		}
		if ((c = parse_or(ps)) == NULL ||
		    filter_lex_expect(ps, T_RPAREN, "')' after condition") ==
		        -1 ||
		    filter_lex_next(ps) == -1)
			return NULL;
		ps->depth--;
		return c;
	}
	if (ps->tok.kind == T_WORD && !filter_lex_is_word(ps, "and") &&
	    !filter_lex_is_word(ps, "or") && !filter_lex_is_word(ps, "not"))
		return parse_atom(ps);
	filter_lex_fail(ps, ps->tok.line, "expected a condition, found %s",
	                filter_lex_found(ps));
	return NULL;
}

static struct filter_cond *
parse_not(struct parser *ps)
{
	struct filter_cond *c, *k;

	if (!filter_lex_is_word(ps, "not"))
		return parse_primary(ps);
	if (deeper(ps) == -1 || filter_lex_next(ps) == -1 ||
	    (k = parse_not(ps)) == NULL || (c = new_cond(ps, FC_NOT)) == NULL)
		return NULL;
	ps->depth--;
	c->kids = k;
	return c;
}

/* A list of one or more SUB joined by the word OP (and, or). */
static struct filter_cond *
parse_list(struct parser *ps, const char *op, enum fc_kind kind,
           struct filter_cond *(*sub)(struct parser *))
{
	struct filter_cond *first, *last, *c;

	if ((first = sub(ps)) == NULL)
		return NULL;
	if (!filter_lex_is_word(ps, op))
		return first;
	if ((c = new_cond(ps, kind)) == NULL)
		return NULL;
	c->kids = last = first;
	while (filter_lex_is_word(ps, op)) {
		if (filter_lex_next(ps) == -1 || (last->next = sub(ps)) == NULL)
			return NULL;
		last = last->next;
	}
	return c;
}

static struct filter_cond *
parse_and(struct parser *ps)
{
	return parse_list(ps, "and", FC_AND, parse_not);
}

static struct filter_cond *
parse_or(struct parser *ps)
{
	return parse_list(ps, "or", FC_OR, parse_and);
}

/* ---- Actions ----------------------------------------------------------- */

static const struct act_def {
	const char *name;
	enum filter_action_kind kind;
	int nargs;
} act_defs[] = {
    {"quarantine", FA_QUARANTINE, 1},
    {"drop", FA_DROP, 0},
    {"bounce", FA_BOUNCE, 0},
    {"add-header", FA_ADD_HEADER, 2},
    {"remove-header", FA_REMOVE_HEADER, 1},
    {"strip-header", FA_REMOVE_HEADER, 1},
    {"notify", FA_NOTIFY, 1},
    {"skip-filters", FA_SKIP, 0},
    {"smime-sign-encrypt", FA_SMIME_FINAL, 1},
    {"smime-sign-encrypt-on-delivery", FA_SMIME_ON_DELIVERY, 1},
    {"deliver", FA_DELIVER, 0},
    {"log", FA_LOG, 1},
};

static int
check_args(struct parser *ps, const struct act_def *d, unsigned line,
           char **arg)
{
	switch (d->kind) {
	case FA_QUARANTINE:
		if (*arg[0] == '\0' || strlen(arg[0]) > 128)
			return filter_lex_fail(
			    ps, line,
			    "quarantine(): a quarantine name of 1 to "
			    "128 bytes");
		return 0;
	case FA_ADD_HEADER:
	case FA_REMOVE_HEADER:
		if (!header_name_ok(arg[0]))
			return filter_lex_fail(
			    ps, line, "%s(): \"%.60s\" is not a header name",
			    d->name, arg[0]);
		return 0;
	case FA_NOTIFY:
		if (!address_ok(arg[0]))
			return filter_lex_fail(
			    ps, line,
			    "notify(): \"%.60s\" is not an address "
			    "(like postmaster@example.com)",
			    arg[0]);
		return 0;
	case FA_SMIME_FINAL:
	case FA_SMIME_ON_DELIVERY:
		if (!profile_name_ok(arg[0]))
			return filter_lex_fail(
			    ps, line,
			    "%s(): \"%.60s\" is not a profile name "
			    "(letters, digits, . _ -)",
			    d->name, arg[0]);
		return 0;
	default:
		return 0;
	}
}

static struct filter_act *
parse_action(struct parser *ps, const char *filter)
{
	const struct act_def *d = NULL;
	struct filter_act *a;
	char *arg[MAX_ARGS] = {NULL, NULL};
	char what[96];
	int n = 0;
	unsigned line = ps->tok.line;

	if (ps->tok.kind != T_WORD) {
		filter_lex_fail(ps, line, "expected an action, found %s",
		                filter_lex_found(ps));
		return NULL;
	}
	for (size_t i = 0; i < sizeof(act_defs) / sizeof(*act_defs); i++)
		if (filter_lex_is_word(ps, act_defs[i].name))
			d = &act_defs[i];
	if (d == NULL) {
		filter_lex_fail(ps, line, "unknown action %s",
		                filter_lex_found(ps));
		return NULL;
	}
	snprintf(what, sizeof(what), "'(' after '%s'", d->name);
	if (filter_lex_next(ps) == -1 ||
	    filter_lex_expect(ps, T_LPAREN, what) == -1 ||
	    filter_lex_next(ps) == -1)
		return NULL;
	while (ps->tok.kind == T_STRING) {
		if (n == d->nargs) {
			filter_lex_fail(ps, line, "%s() takes %d argument%s",
			                d->name, d->nargs,
			                d->nargs == 1 ? "" : "s");
			return NULL;
		}
		if ((arg[n++] = filter_lex_strdup(ps, ps->tok.text,
		                                  ps->tok.len)) == NULL ||
		    filter_lex_next(ps) == -1)
			return NULL;
		if (ps->tok.kind != T_COMMA)
			break;
		if (filter_lex_next(ps) == -1 ||
		    filter_lex_expect(ps, T_STRING, "a string after ','") == -1)
			return NULL;
	}
	snprintf(what, sizeof(what), "%s in %s(...)",
	         n ? "',' or ')'" : "a string or ')'", d->name);
	if (filter_lex_expect(ps, T_RPAREN, what) == -1)
		return NULL;
	if (n != d->nargs) {
		filter_lex_fail(ps, line, "%s() takes %d argument%s, not %d",
		                d->name, d->nargs, d->nargs == 1 ? "" : "s", n);
		return NULL;
	}
	if (check_args(ps, d, line, arg) == -1 || filter_lex_next(ps) == -1 ||
	    (a = filter_lex_alloc(ps, sizeof(*a))) == NULL)
		return NULL;
	a->fa.kind = d->kind;
	a->fa.arg1 = arg[0];
	a->fa.arg2 = arg[1];
	a->fa.filter = filter;
	a->fa.line = line;
	return a;
}

/* "{" [ACTION {";" ACTION} [";"]] "}" */
static int
parse_block(struct parser *ps, const char *filter, struct filter_act **out)
{
	struct filter_act *head = NULL, **tail = &head, *a;
	const struct filter_act *stop = NULL;
	unsigned open = ps->tok.line;

	if (filter_lex_expect(ps, T_LBRACE, "'{' before the actions") == -1 ||
	    filter_lex_next(ps) == -1)
		return -1;
	while (ps->tok.kind != T_RBRACE) {
		if (ps->tok.kind == T_EOF)
			return filter_lex_fail(
			    ps, ps->tok.line,
			    "missing '}' to close the block opened "
			    "on line %u",
			    open);
		if ((a = parse_action(ps, filter)) == NULL)
			return -1;
		if (stop != NULL)
			return filter_lex_fail(
			    ps, a->fa.line, "%s() after %s() would never run",
			    filter_action_name(a->fa.kind),
			    filter_action_name(stop->fa.kind));
		*tail = a;
		tail = &a->next;
		if (filter_action_is_final(a->fa.kind) || a->fa.kind == FA_SKIP)
			stop = a;
		if (ps->tok.kind == T_SEMI) {
			if (filter_lex_next(ps) == -1)
				return -1;
		} else if (ps->tok.kind == T_EOF) {
			return filter_lex_fail(
			    ps, ps->tok.line,
			    "missing '}' to close the block opened "
			    "on line %u",
			    open);
		} else if (ps->tok.kind != T_RBRACE) {
			return filter_lex_fail(
			    ps, ps->tok.line,
			    "expected ';' or '}' after %s(), found %s",
			    filter_action_name(a->fa.kind),
			    filter_lex_found(ps));
		}
	}
	*out = head;
	return filter_lex_next(ps);
}

/* ---- Filters ----------------------------------------------------------- */

static unsigned
name_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
	return h;
}

/* Doubles the name table (open addressing, linear probing). */
static int
grow_names(struct parser *ps)
{
	size_t size = ps->names_size ? ps->names_size * 2 : 64;
	const char **v;

	if ((v = calloc(size, sizeof(*v))) == NULL)
		return filter_lex_oom(ps);
	for (size_t i = 0; i < ps->names_size; i++) {
		size_t j;
		if (ps->names[i] == NULL)
			continue;
		for (j = name_hash(ps->names[i]) & (size - 1); v[j] != NULL;
		     j = (j + 1) & (size - 1))
			;
		v[j] = ps->names[i];
	}
	free(ps->names);
	ps->names = v;
	ps->names_size = size;
	return 0;
}

/* Records NAME; fails when a filter has it already (in any case). */
static int
add_name(struct parser *ps, const char *name, unsigned line)
{
	size_t i, mask;

	if (ps->nnames * 2 >= ps->names_size && grow_names(ps) == -1)
		return -1;
	mask = ps->names_size - 1;
	for (i = name_hash(name) & mask; ps->names[i] != NULL;
	     i = (i + 1) & mask)
		if (strcasecmp(ps->names[i], name) == 0) {
			const struct filter *f = ps->fs->filters;
			while (f != NULL && strcasecmp(f->name, name) != 0)
				f = f->next;
			return filter_lex_fail(
			    ps, line,
			    "filter '%s' is defined twice (first on "
			    "line %u)",
			    name, f ? f->line : 0);
		}
	ps->names[i] = name;
	ps->nnames++;
	return 0;
}

/* "if" COND BLOCK {"else" "if" COND BLOCK} ["else" BLOCK], or BLOCK. */
static int
parse_clauses(struct parser *ps, struct filter *f)
{
	struct filter_clause **tail = &f->clauses, *cl;
	int conditional = filter_lex_is_word(ps, "if");

	if (!conditional && ps->tok.kind != T_LBRACE)
		return filter_lex_fail(
		    ps, ps->tok.line,
		    "expected 'if' or '{' after '%s:', found %s", f->name,
		    filter_lex_found(ps));
	for (;;) {
		if ((cl = filter_lex_alloc(ps, sizeof(*cl))) == NULL)
			return -1;
		if (conditional) {
			ps->depth = 0;
			if (filter_lex_next(ps) == -1 ||
			    (cl->cond = parse_or(ps)) == NULL)
				return -1;
		}
		if (parse_block(ps, f->name, &cl->acts) == -1)
			return -1;
		*tail = cl;
		tail = &cl->next;
		if (!conditional || !filter_lex_is_word(ps, "else"))
			return 0;
		if (filter_lex_next(ps) == -1)
			return -1;
		conditional = filter_lex_is_word(ps, "if");
	}
}

static int
parse_filter(struct parser *ps)
{
	static const char *const reserved[] = {"if", "and", "or", "not", NULL};
	struct filter *f;
	unsigned line = ps->tok.line;

	if (filter_lex_expect(ps, T_WORD, "a filter name") == -1)
		return -1;
	if (filter_lex_is_word(ps, "else"))
		return filter_lex_fail(ps, line, "'else' without 'if'");
	for (size_t i = 0; reserved[i] != NULL; i++)
		if (filter_lex_is_word(ps, reserved[i]))
			return filter_lex_fail(
			    ps, line,
			    "'%s' is a reserved word, not a filter "
			    "name",
			    reserved[i]);
	if (ps->fs->nfilters >= FILTER_MAX_FILTERS) {
		ps->st = SG_ERR_LIMIT;
		return filter_lex_fail(ps, line, "more than %d filters",
		                       FILTER_MAX_FILTERS);
	}
	if ((f = filter_lex_alloc(ps, sizeof(*f))) == NULL ||
	    (f->name = filter_lex_strdup(ps, ps->tok.text, ps->tok.len)) ==
	        NULL)
		return -1;
	f->line = line;
	if (add_name(ps, f->name, line) == -1 || filter_lex_next(ps) == -1)
		return -1;
	if (ps->tok.kind != T_COLON)
		return filter_lex_fail(
		    ps, ps->tok.line,
		    "expected ':' after the filter name '%s', found %s",
		    f->name, filter_lex_found(ps));
	if (filter_lex_next(ps) == -1 || parse_clauses(ps, f) == -1)
		return -1;
	/* The appliance's terminators, optional. */
	if ((ps->tok.kind == T_DOT || ps->tok.kind == T_SEMI) &&
	    filter_lex_next(ps) == -1)
		return -1;
	if (ps->fs->last != NULL)
		ps->fs->last->next = f;
	else
		ps->fs->filters = f;
	ps->fs->last = f;
	ps->fs->nfilters++;
	return 0;
}

/* ---- Loading ----------------------------------------------------------- */

enum sg_status
filter_load_mem(const char *name, const char *text, size_t len,
                struct filter_set **out, char *err, size_t errlen)
{
	struct parser *ps;
	enum sg_status st;

	if (errlen > 0)
		err[0] = '\0';
	if (name == NULL || out == NULL || (text == NULL && len > 0)) {
		if (errlen > 0)
			snprintf(err, errlen, "filter_load_mem: bad arguments");
		return SG_ERR_USAGE;
	}
	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return SG_ERR_NOMEM;
	}
	ps->name = name;
	ps->p = text != NULL ? text : "";
	ps->end = ps->p + len;
	ps->line = 1;
	ps->err = err;
	ps->errlen = errlen;
	if ((ps->fs = calloc(1, sizeof(*ps->fs))) == NULL ||
	    (ps->fs->name = strdup(name)) == NULL) {
		filter_lex_oom(ps);
		goto fail;
	}
	if (len > FILTER_MAX_FILE) {
		ps->st = SG_ERR_LIMIT;
		filter_lex_fail(ps, 0, "larger than %d bytes (1 MiB)",
		                FILTER_MAX_FILE);
		goto fail;
	}
	if (filter_lex_next(ps) == -1)
		goto fail;
	while (ps->tok.kind != T_EOF)
		if (parse_filter(ps) == -1)
			goto fail;
	free(ps->names);
	*out = ps->fs;
	free(ps);
	return SG_OK;
fail:
	st = ps->st != SG_OK ? ps->st : SG_ERR_INTERNAL;
	free(ps->names);
	filter_set_free(ps->fs);
	free(ps);
	return st;
}

enum sg_status
filter_load_file(const char *path, struct filter_set **out, char *err,
                 size_t errlen)
{
	FILE *f;
	char *buf;
	size_t n;
	enum sg_status st;

	if (errlen > 0)
		err[0] = '\0';
	if (path == NULL || out == NULL)
		return SG_ERR_USAGE;
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return SG_ERR_IO;
	}
	if ((buf = malloc(FILTER_MAX_FILE + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return SG_ERR_NOMEM;
	}
	n = fread(buf, 1, FILTER_MAX_FILE + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", path,
		         strerror(errno));
		fclose(f);
		free(buf);
		return SG_ERR_IO;
	}
	fclose(f);
	st = filter_load_mem(path, buf, n, out, err, errlen);
	free(buf);
	return st;
}

void
filter_set_free(struct filter_set *fs)
{
	struct filter_chunk *c, *cn;

	if (fs == NULL)
		return;
	for (struct filter_re *r = fs->res; r != NULL; r = r->next)
		rx_free(r->re);
	for (c = fs->arena; c != NULL; c = cn) {
		cn = c->next;
		free(c);
	}
	free(fs->name);
	free(fs);
}

size_t
filter_set_count(const struct filter_set *fs)
{
	return fs != NULL ? fs->nfilters : 0;
}

/* The first action of KIND1 or KIND2 whose arg1 EXISTS denies, in ERR. */
static enum sg_status
check_names(const struct filter_set *fs, enum filter_action_kind kind1,
            enum filter_action_kind kind2, const char *what,
            int (*exists)(void *, const char *), void *arg, char *err,
            size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	if (fs == NULL || exists == NULL)
		return SG_ERR_USAGE;
	for (const struct filter *f = fs->filters; f; f = f->next)
		for (const struct filter_clause *cl = f->clauses; cl;
		     cl = cl->next)
			for (const struct filter_act *a = cl->acts; a;
			     a = a->next) {
				if ((a->fa.kind != kind1 &&
				     a->fa.kind != kind2) ||
				    exists(arg, a->fa.arg1))
					continue;
				snprintf(err, errlen,
				         "%s:%u: %s(\"%s\"): no [%s %s] in the "
				         "configuration",
				         fs->name, a->fa.line,
				         filter_action_name(a->fa.kind),
				         a->fa.arg1, what, a->fa.arg1);
				return SG_ERR_NOT_FOUND;
			}
	return SG_OK;
}

enum sg_status
filter_set_check_profiles(const struct filter_set *fs,
                          int (*profile_exists)(void *arg, const char *),
                          void *arg, char *err, size_t errlen)
{
	return check_names(fs, FA_SMIME_FINAL, FA_SMIME_ON_DELIVERY, "profile",
	                   profile_exists, arg, err, errlen);
}

enum sg_status
filter_set_check_quarantines(const struct filter_set *fs,
                             int (*quarantine_exists)(void *arg, const char *),
                             void *arg, char *err, size_t errlen)
{
	return check_names(fs, FA_QUARANTINE, FA_QUARANTINE, "quarantine",
	                   quarantine_exists, arg, err, errlen);
}
