/*
 * filter_eval.c - runs a loaded filter set on the facts of one message
 * (docs/filters.md).  It reads only the set (immutable, shared between
 * threads) and the caller's facts, and writes only the caller's result.
 * A regular expression that cannot be matched is a temporary failure of
 * the whole evaluation, never "no match".
 */
#include "policy/filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/filter_int.h"

static const char *const action_names[] = {
    [FA_QUARANTINE] = "quarantine",
    [FA_DROP] = "drop",
    [FA_BOUNCE] = "bounce",
    [FA_ADD_HEADER] = "add-header",
    [FA_REMOVE_HEADER] = "remove-header",
    [FA_NOTIFY] = "notify",
    [FA_SKIP] = "skip-filters",
    [FA_SMIME_FINAL] = "smime-sign-encrypt",
    [FA_SMIME_ON_DELIVERY] = "smime-sign-encrypt-on-delivery",
    [FA_DELIVER] = "deliver",
    [FA_LOG] = "log",
};

const char *
filter_action_name(enum filter_action_kind kind)
{
	if ((size_t)kind >= sizeof(action_names) / sizeof(*action_names))
		return "unknown";
	return action_names[kind];
}

int
filter_action_is_final(enum filter_action_kind kind)
{
	switch (kind) {
	case FA_QUARANTINE:
	case FA_DROP:
	case FA_BOUNCE:
	case FA_SMIME_FINAL:
	case FA_DELIVER:
		return 1;
	default:
		return 0;
	}
}

void
filter_result_init(struct filter_result *r)
{
	memset(r, 0, sizeof(*r));
}

void
filter_result_clear(struct filter_result *r)
{
	if (r == NULL)
		return;
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int
push(struct filter_result *r, const struct filter_action *a)
{
	struct filter_action *v;
	size_t cap;

	if (r->n == r->cap) {
		cap = r->cap ? r->cap * 2 : 8;
		if (cap > SIZE_MAX / sizeof(*v) ||
		    (v = realloc(r->v, cap * sizeof(*v))) == NULL)
			return -1;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = *a;
	return 0;
}

/* Any of V (N items, or NULL-terminated when N is SIZE_MAX) matches: 1,
 * 0, or -1 when the matcher ran out of memory. */
static int
match_any(const struct rx *re, const char *const *v, size_t n)
{
	int r;

	for (size_t i = 0; v != NULL && i < n && v[i] != NULL; i++)
		if ((r = rx_match_str(re, v[i])) != 0)
			return r;
	return 0;
}

static const char *const *
header_values(const struct filter_facts *f, const char *name)
{
	return f->header != NULL ? f->header(f->arg, name) : NULL;
}

static int
match(const struct filter_cond *c, const struct filter_facts *f)
{
	switch (c->field) {
	case FF_SUBJECT:
		return rx_match_str(c->re, f->subject);
	case FF_BODY:
		return rx_match_str(c->re, f->body_text);
	case FF_MAIL_FROM:
		return rx_match_str(c->re, f->mail_from);
	case FF_RCPT_TO:
		return match_any(c->re, f->rcpts, f->nrcpts);
	case FF_ATT_NAME:
		return match_any(c->re, f->att_names, SIZE_MAX);
	case FF_ATT_TYPE:
		return match_any(c->re, f->att_types, SIZE_MAX);
	case FF_HEADER:
		return match_any(c->re, header_values(f, c->name), SIZE_MAX);
	default:
		return -1;
	}
}

static int
flag(enum fc_field field, const struct filter_facts *f)
{
	switch (field) {
	case FF_SMIME_GATEWAY_MESSAGE:
		return f->smime_gateway_message != 0;
	case FF_SMIME_GATEWAY_VERIFIED:
		return f->smime_gateway_verified != 0;
	case FF_SMIME_SIGNED:
		return f->smime_signed != 0;
	case FF_SMIME_ENCRYPTED:
		return f->smime_encrypted != 0;
	default:
		return -1;
	}
}

static int
compare(enum fc_op op, uint64_t a, uint64_t b)
{
	switch (op) {
	case FO_LT:
		return a < b;
	case FO_LE:
		return a <= b;
	case FO_GT:
		return a > b;
	case FO_GE:
		return a >= b;
	case FO_EQ:
		return a == b;
	case FO_NE:
		return a != b;
	}
	return -1;
}

/* 1 true, 0 false, -1 failed.  The parser bounds the depth. */
static int
cond_eval(const struct filter_cond *c, const struct filter_facts *f)
{
	const char *const *v;
	const char *s;
	int r;

	switch (c->kind) {
	case FC_TRUE:
		return 1;
	case FC_FALSE:
		return 0;
	case FC_AND:
		for (const struct filter_cond *k = c->kids; k; k = k->next)
			if ((r = cond_eval(k, f)) != 1)
				return r;
		return 1;
	case FC_OR:
		for (const struct filter_cond *k = c->kids; k; k = k->next)
			if ((r = cond_eval(k, f)) != 0)
				return r;
		return 0;
	case FC_NOT:
		r = cond_eval(c->kids, f);
		return r < 0 ? r : !r;
	case FC_FLAG:
		return flag(c->field, f);
	case FC_MATCH:
		r = match(c, f);
		return r < 0 ? r : r ^ (c->negate != 0);
	case FC_CONTAINS:
		s = c->field == FF_SUBJECT ? f->subject : f->body_text;
		return s != NULL && strcasestr(s, c->phrase) != NULL;
	case FC_PRESENT:
		v = header_values(f, c->name);
		return v != NULL && v[0] != NULL;
	case FC_SIZE:
		return compare(c->op, (uint64_t)f->size, c->n);
	}
	return -1;
}

enum sg_status
filter_eval(const struct filter_set *fs, const struct filter_facts *facts,
            struct filter_result *out)
{
	size_t n0;
	int r;

	if (fs == NULL || facts == NULL || out == NULL)
		return SG_ERR_USAGE;
	if (out->final)
		return SG_OK;
	n0 = out->n;
	for (const struct filter *f = fs->filters; f; f = f->next) {
		for (const struct filter_clause *cl = f->clauses; cl;
		     cl = cl->next) {
			r = cl->cond != NULL ? cond_eval(cl->cond, facts) : 1;
			if (r < 0) {
				out->n = n0;
				return SG_ERR_TEMP;
			}
			if (r == 0)
				continue;
			for (const struct filter_act *a = cl->acts; a;
			     a = a->next) {
				if (push(out, &a->fa) == -1) {
					out->n = n0;
					return SG_ERR_NOMEM;
				}
				if (filter_action_is_final(a->fa.kind)) {
					out->final = 1;
					return SG_OK;
				}
				if (a->fa.kind == FA_SKIP) {
					out->skipped = 1;
					return SG_OK;
				}
			}
			break;
		}
	}
	return SG_OK;
}
