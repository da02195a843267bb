/*
 * filter_int.h - the shape of a loaded filter set, shared by the parser
 * (filter_parse.c) and the evaluator (filter_eval.c); not for other
 * modules.  Everything of a set lives in its arena and is freed at once,
 * except the compiled regular expressions, which are chained on the set
 * for regfree.
 */
#ifndef SG_FILTER_INT_H
#define SG_FILTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "policy/filter.h"
#include "policy/rx.h"

enum fc_kind {
	FC_TRUE,
	FC_FALSE,
	FC_AND,      /* all of kids */
	FC_OR,       /* any of kids */
	FC_NOT,      /* kids (one) */
	FC_FLAG,     /* one of the smime flags: field */
	FC_MATCH,    /* field (or header NAME) == / != re */
	FC_CONTAINS, /* field contains phrase, case-insensitively */
	FC_PRESENT,  /* header NAME is present */
	FC_SIZE      /* body-size OP n */
};

enum fc_field {
	FF_SUBJECT,
	FF_BODY,
	FF_MAIL_FROM,
	FF_RCPT_TO,
	FF_ATT_NAME,
	FF_ATT_TYPE,
	FF_HEADER,
	FF_SMIME_GATEWAY_MESSAGE,
	FF_SMIME_GATEWAY_VERIFIED,
	FF_SMIME_SIGNED,
	FF_SMIME_ENCRYPTED
};

enum fc_op { FO_LT, FO_LE, FO_GT, FO_GE, FO_EQ, FO_NE };

struct filter_re {
	struct rx *re;
	struct filter_re *next; /* the set's chain, for rx_free */
};

struct filter_cond {
	enum fc_kind kind;
	enum fc_field field;
	int negate;               /* FC_MATCH: != */
	const char *name;         /* FF_HEADER: the header name */
	const char *phrase;       /* FC_CONTAINS */
	const struct rx *re;      /* FC_MATCH */
	enum fc_op op;            /* FC_SIZE */
	uint64_t n;               /* FC_SIZE, bytes */
	struct filter_cond *kids; /* FC_AND, FC_OR, FC_NOT */
	struct filter_cond *next; /* the next sibling */
};

struct filter_act {
	struct filter_action fa;
	struct filter_act *next;
};

/* "if (COND) { ACTS }", "else if ...", or "else { ACTS }" (COND NULL). */
struct filter_clause {
	const struct filter_cond *cond;
	struct filter_act *acts;
	struct filter_clause *next;
};

struct filter {
	const char *name;
	unsigned line;
	struct filter_clause *clauses;
	struct filter *next;
};

struct filter_chunk {
	struct filter_chunk *next;
	size_t used, size;
	max_align_t data[]; /* size bytes */
};

struct filter_set {
	char *name; /* the file, for filter_set_check_profiles */
	struct filter *filters, *last;
	size_t nfilters;
	struct filter_re *res;
	struct filter_chunk *arena;
};

/* ---- The loader's reading half (filter_lex.c) ------------------------- */

enum tok_kind {
	T_EOF,
	T_WORD,
	T_STRING,
	T_LPAREN,
	T_RPAREN,
	T_LBRACE,
	T_RBRACE,
	T_COLON,
	T_SEMI,
	T_COMMA,
	T_DOT,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE
};

struct token {
	enum tok_kind kind;
	unsigned line;
	size_t len;
	char text[FILTER_MAX_STRING + 1]; /* words and decoded strings */
};

struct parser {
	const char *name;
	const char *p, *end;
	unsigned line;
	struct token tok; /* the current token */
	char found[64];   /* found()'s text */
	int depth;
	struct filter_set *fs;
	const char **names; /* filter names, open addressing */
	size_t names_size, nnames;
	char *err;
	size_t errlen;
	enum sg_status st; /* what the first failure was */
};

/* Writes "NAME:LINE: reason" (or "NAME: reason" when LINE is 0) to the
 * parser's error buffer and returns -1; the first failure sets the status
 * (SG_ERR_USAGE unless PS->st was set before). */
int filter_lex_fail(struct parser *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int filter_lex_oom(struct parser *ps);
/* What the current token is, for "found ..." in messages. */
const char *filter_lex_found(struct parser *ps);
/* Zeroed memory from the set's arena (NULL after an out-of-memory
 * failure); a NUL-terminated copy of LEN bytes. */
void *filter_lex_alloc(struct parser *ps, size_t n);
char *filter_lex_strdup(struct parser *ps, const char *s, size_t len);
/* Reads the next token into PS->tok; 0 or -1 (failed, reported). */
int filter_lex_next(struct parser *ps);
/* Fails with "expected WHAT, found ..." unless the token is KIND. */
int filter_lex_expect(struct parser *ps, enum tok_kind kind, const char *what);
/* The current token is the word W, in any case. */
int filter_lex_is_word(const struct parser *ps, const char *w);

/* ---- Regular expressions (filter_re.c) -------------------------------- */

/* The regular expression in the current (string) token, compiled into
 * the set (RX_ICASE, and RX_NEWLINE for FF_BODY); NULL after a failure
 * reported at its line. */
const struct rx *filter_re_compile(struct parser *ps, enum fc_field field);

#endif
