/*
 * fields.c - the two header fields the S/MIME code reads on every message,
 * Content-Type and From, in the plain forms nearly all mail uses.
 *
 * Why not GMime alone: GMime, with GLib, GIO, gpgme and the 13 libraries
 * under them, is a third of the start-up of a one-shot `smimegate verify`
 * or `decrypt` of a small message (docs/bench.md), and these two fields are
 * all those commands need from it.  So each field is read here first, by a
 * strict grammar that accepts only what reads one way: a value with a
 * comment, an RFC 2231 parameter, a repeated parameter we use, an 8-bit
 * byte, a group, a quoted local part or anything else unusual is left to
 * GMime (lib/mime.c), which reads it as before.  What is accepted here is
 * read as GMime reads it (tests/unit/t_fields.c compares the two), but for
 * one thing: an ASCII domain is kept as written, where GMime decodes an
 * A-label ("xn--...") and encodes it again, which changes a malformed
 * one.  As written is what a certificate's address is compared with.
 */
#include "lib/sg_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *
skip_ws(const char *p)
{
	while (is_ws(*p))
		p++;
	return p;
}

/* RFC 2045 token characters. */
static int
is_token(char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* RFC 5322 atext. */
static int
is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Copies a token at *P to *W (NUL-terminated); NULL when there is none. */
static const char *
token(const char **p, char **w)
{
	const char *start = *w;

	if (!is_token(**p))
		return NULL;
	while (is_token(**p))
		*(*w)++ = *(*p)++;
	*(*w)++ = '\0';
	return start;
}

/* Copies an unquoted parameter value at *P to *W: a token, or more
 * loosely what GMime reads as one too (protocol=application/pkcs7-signature
 * is common), stopping at white space, ';' or the end; NULL when empty or
 * when it holds a character that takes a parser ('"', '(', ')', '\\'). */
static const char *
bare_value(const char **p, char **w)
{
	const char *start = *w;

	if (**p == '\0' || strchr(" \t\r\n;", **p) != NULL)
		return NULL;
	for (; **p != '\0' && strchr(" \t\r\n;", **p) == NULL; (*p)++) {
		if ((unsigned char)**p <= ' ' || (unsigned char)**p >= 0x7f ||
		    strchr("\"()\\", **p) != NULL)
			return NULL;
		*(*w)++ = **p;
	}
	*(*w)++ = '\0';
	return start;
}

/* Copies the content of a quoted string at *P (at its '"') to *W; NULL
 * when it is not plain printable ASCII or does not end. */
static const char *
quoted(const char **p, char **w)
{
	const char *start = *w;

	for ((*p)++; **p != '"'; (*p)++) {
		if (**p == '\\')
			(*p)++;
		if ((unsigned char)**p < ' ' || (unsigned char)**p >= 0x7f)
			return NULL; /* also the end of the value */
		*(*w)++ = **p;
	}
	(*p)++;
	*(*w)++ = '\0';
	return start;
}

int
sg_ctype_parse_simple(const char *v, struct sg_ctype *out)
{
	struct sg_ctype ct = {0};
	const char *p = skip_ws(v), *name, *val, **slot;
	char *w;

	if ((ct.mem = w = malloc(strlen(v) + 1)) == NULL)
		return 0;
	if ((ct.type = token(&p, &w)) == NULL || *p++ != '/' ||
	    (ct.sub = token(&p, &w)) == NULL)
		goto fail;
	for (p = skip_ws(p); *p == ';'; p = skip_ws(p)) {
		if (*(p = skip_ws(p + 1)) == '\0')
			break; /* a ';' at the end */
		if ((name = token(&p, &w)) == NULL || strchr(name, '*') ||
		    *(p = skip_ws(p)) != '=')
			goto fail;
		p = skip_ws(p + 1);
		if ((val = *p == '"' ? quoted(&p, &w) : bare_value(&p, &w)) ==
		    NULL)
			goto fail;
		slot = strcasecmp(name, "protocol") == 0     ? &ct.protocol
		       : strcasecmp(name, "smime-type") == 0 ? &ct.smime_type
		       : strcasecmp(name, "boundary") == 0   ? &ct.boundary
		                                             : NULL;
		if (slot != NULL && *slot != NULL)
			goto fail; /* which one counts is GMime's call */
		if (slot != NULL)
			*slot = val;
	}
	if (*p != '\0')
		goto fail;
	*out = ct;
	return 1;
fail:
	free(ct.mem);
	return 0;
}

void
sg_ctype_clear(struct sg_ctype *ct)
{
	free(ct->mem);
	memset(ct, 0, sizeof(*ct));
}

/* A dot-atom at P: its end, or NULL. */
static const char *
dot_atom(const char *p)
{
	do {
		if (!is_atext(*p))
			return NULL;
		while (is_atext(*p))
			p++;
	} while (*p == '.' && p++);
	return p;
}

/* A display name before '<': words of atext and dots, and quoted
 * strings, the first a word (RFC 5322 obs-phrase).  Its end (at '<'), or
 * NULL. */
static const char *
display_name(const char *p)
{
	if (*p == '.')
		return NULL;
	for (;;) {
		if (is_atext(*p) || *p == '.' || is_ws(*p)) {
			p++;
		} else if (*p == '"') {
			for (p++; *p != '"'; p++) {
				if (*p == '\\')
					p++;
				if ((unsigned char)*p < ' ' ||
				    (unsigned char)*p >= 0x7f)
					return NULL;
			}
			p++;
		} else {
			return *p == '<' ? p : NULL;
		}
	}
}

char *
sg_addr_parse_simple(const char *v, int *simple)
{
	const char *p = skip_ws(v), *a, *at, *end;
	char *addr;

	*simple = 0;
	if ((a = display_name(p)) != NULL)
		p = a + 1; /* "Name <local@domain>" or "<local@domain>" */
	else
		a = NULL; /* "local@domain" */
	if ((at = dot_atom(p)) == NULL || *at != '@' ||
	    (end = dot_atom(at + 1)) == NULL)
		return NULL;
	if (a != NULL && *end != '>')
		return NULL;
	if (*skip_ws(end + (a != NULL)) != '\0')
		return NULL;
	*simple = 1;
	if ((addr = strndup(p, (size_t)(end - p))) != NULL)
		sg_lower_domain(addr + (at - p) + 1);
	return addr;
}
