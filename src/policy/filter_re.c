/*
 * filter_re.c - the regular expressions of the filter language, compiled
 * once, at load time, into the set (rx.h: POSIX extended syntax, matched
 * in time linear in the text, so that no message can make a filter run
 * away; docs/filters.md).
 */
#include "policy/filter_int.h"

const struct rx *
filter_re_compile(struct parser *ps, enum fc_field field)
{
	struct filter_re *r;
	char why[128];
	int limit, flags = RX_ICASE;

	if (ps->tok.len == 0) {
		filter_lex_fail(
		    ps, ps->tok.line,
		    "empty regular expression (\"^$\" matches an empty "
		    "value)");
		return NULL;
	}
	/* The body has lines: ^ and $ match at each, . not a newline. */
	if (field == FF_BODY)
		flags |= RX_NEWLINE;
	if ((r = filter_lex_alloc(ps, sizeof(*r))) == NULL)
		return NULL;
	if ((r->re = rx_compile(ps->tok.text, flags, why, sizeof(why),
	                        &limit)) == NULL) {
		if (limit)
			ps->st = SG_ERR_LIMIT;
		filter_lex_fail(
		    ps, ps->tok.line, "bad regular expression \"%.60s%s\": %s",
		    ps->tok.text, ps->tok.len > 60 ? "..." : "", why);
		return NULL;
	}
	r->next = ps->fs->res;
	ps->fs->res = r;
	return r->re;
}
