/*
 * filter_lex.c - the reading half of the filter loader: the tokenizer
 * (words, string literals with their escapes, operators, comments), the
 * NAME:LINE: error messages, and the arena every part of a set is
 * allocated from.  It never reads past the bytes it was given.
 */
#include "policy/filter_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK (64 * 1024)

static const char *const tok_names[] = {
    "end of file", "a word", "a string", "'('", "')'",  "'{'",
    "'}'",         "':'",    "';'",      "','", "'.'",  "'=='",
    "'!='",        "'<'",    "'<='",     "'>'", "'>='",
};

int
filter_lex_fail(struct parser *ps, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->st == SG_OK)
		ps->st = SG_ERR_USAGE;
	if (ps->errlen == 0)
		return -1;
	n = line ? snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, line)
	         : snprintf(ps->err, ps->errlen, "%s: ", ps->name);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

int
filter_lex_oom(struct parser *ps)
{
	ps->st = SG_ERR_NOMEM;
	return filter_lex_fail(ps, 0, "out of memory");
}

/* What the current token is, for "found ..." in messages. */
const char *
filter_lex_found(struct parser *ps)
{
	const struct token *t = &ps->tok;

	if (t->kind != T_WORD)
		return tok_names[t->kind];
	snprintf(ps->found, sizeof(ps->found), "'%.40s%s'", t->text,
	         t->len > 40 ? "..." : "");
	return ps->found;
}

/* ---- The arena ------------------------------------------------------- */

void *
filter_lex_alloc(struct parser *ps, size_t n)
{
	struct filter_set *fs = ps->fs;
	struct filter_chunk *c = fs->arena;
	const size_t align = _Alignof(max_align_t);
	void *p;

	n = (n + align - 1) / align * align;
	if (c == NULL || c->size - c->used < n) {
		size_t size = n > CHUNK ? n : CHUNK;
		if ((c = malloc(sizeof(*c) + size)) == NULL) {
			filter_lex_oom(ps);
			return NULL;
		}
		c->size = size;
		c->used = 0;
		c->next = fs->arena;
		fs->arena = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *
filter_lex_strdup(struct parser *ps, const char *s, size_t len)
{
	char *d = filter_lex_alloc(ps, len + 1);

	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/* ---- Tokens ------------------------------------------------------------ */

static int
word_char(int c)
{
	return c < 128 && (isalnum(c) || c == '_' || c == '-');
}

int
filter_lex_is_word(const struct parser *ps, const char *w)
{
	return ps->tok.kind == T_WORD && strcasecmp(ps->tok.text, w) == 0;
}

/* One string literal: "..." with \" and \\; any other backslash stays. */
static int
lex_string(struct parser *ps)
{
	struct token *t = &ps->tok;
	unsigned start = ps->line;
	unsigned char c;

	ps->p++;
	t->kind = T_STRING;
	for (;;) {
		if (ps->p == ps->end || *ps->p == '\n' ||
		    (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'))
			return filter_lex_fail(ps, start,
			                       "unterminated string");
		c = (unsigned char)*ps->p++;
		if (c == '"')
			break;
		if (c == '\\') {
			if (ps->p == ps->end || *ps->p == '\n')
				return filter_lex_fail(ps, start,
				                       "unterminated string");
			if (*ps->p != '"' && *ps->p != '\\') {
				if (t->len >= FILTER_MAX_STRING)
					goto toolong;
				t->text[t->len++] = '\\';
			}
			c = (unsigned char)*ps->p++;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return filter_lex_fail(
			    ps, start, "control character 0x%02x in a string",
			    c);
		if (t->len >= FILTER_MAX_STRING)
			goto toolong;
		t->text[t->len++] = (char)c;
	}
	t->text[t->len] = '\0';
	return 0;
toolong:
	ps->st = SG_ERR_LIMIT;
	return filter_lex_fail(ps, start, "string longer than %d bytes",
	                       FILTER_MAX_STRING);
}

int
filter_lex_next(struct parser *ps)
{
	struct token *t = &ps->tok;
	unsigned char c;

	for (;;) {
		if (ps->p == ps->end)
			break;
		c = (unsigned char)*ps->p;
		if (c == '\n') {
			ps->line++;
			ps->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
		           c == '\v') {
			ps->p++;
		} else if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
		} else {
			break;
		}
	}
	t->line = ps->line;
	t->len = 0;
	t->text[0] = '\0';
	if (ps->p == ps->end) {
		t->kind = T_EOF;
		return 0;
	}
	c = (unsigned char)*ps->p;
	if (word_char(c)) {
		t->kind = T_WORD;
		while (ps->p < ps->end && word_char((unsigned char)*ps->p)) {
			if (t->len >= FILTER_MAX_WORD) {
				ps->st = SG_ERR_LIMIT;
				return filter_lex_fail(
				    ps, t->line,
				    "word longer than %d characters",
				    FILTER_MAX_WORD);
			}
			t->text[t->len++] = *ps->p++;
		}
		t->text[t->len] = '\0';
		return 0;
	}
	if (c == '"')
		return lex_string(ps);
	ps->p++;
	switch (c) {
	case '(':
		t->kind = T_LPAREN;
		return 0;
	case ')':
		t->kind = T_RPAREN;
		return 0;
	case '{':
		t->kind = T_LBRACE;
		return 0;
	case '}':
		t->kind = T_RBRACE;
		return 0;
	case ':':
		t->kind = T_COLON;
		return 0;
	case ';':
		t->kind = T_SEMI;
		return 0;
	case ',':
		t->kind = T_COMMA;
		return 0;
	case '.':
		t->kind = T_DOT;
		return 0;
	default:
		break;
	}
	if (c == '=' || c == '!' || c == '<' || c == '>') {
		int eq = ps->p < ps->end && *ps->p == '=';
		if (eq)
			ps->p++;
		if (c == '=' && eq)
			t->kind = T_EQ;
		else if (c == '!' && eq)
			t->kind = T_NE;
		else if (c == '<')
			t->kind = eq ? T_LE : T_LT;
		else if (c == '>')
			t->kind = eq ? T_GE : T_GT;
		else
			return filter_lex_fail(
			    ps, t->line,
			    "'%c' alone: the operators are == and !=", c);
		return 0;
	}
	if (isprint(c))
		return filter_lex_fail(ps, t->line, "unexpected character '%c'",
		                       c);
	return filter_lex_fail(ps, t->line, "unexpected byte 0x%02x", c);
}

/* Fails with "expected WHAT, found ..." unless the token is KIND. */
int
filter_lex_expect(struct parser *ps, enum tok_kind kind, const char *what)
{
	if (ps->tok.kind == kind)
		return 0;
	return filter_lex_fail(ps, ps->tok.line, "expected %s, found %s", what,
	                       filter_lex_found(ps));
}
