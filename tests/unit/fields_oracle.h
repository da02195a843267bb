/*
 * fields_oracle.h - GMime's reading of a Content-Type or From value, next
 * to lib/fields.c's: for tests/unit/t_fields.c and tests/fuzz/fuzz_message.c.
 */
#ifndef SG_FIELDS_ORACLE_H
#define SG_FIELDS_ORACLE_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/gmime_dl.h"
#include "lib/sg_int.h"

/* NULL-safe string equality (both absent counts as equal). */
static inline int
same(const char *a, const char *b, int nocase)
{
	if (a == NULL || b == NULL)
		return a == b;
	return nocase ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

/* Whether a value fields.c accepted reads the same to GMime. */
static inline int
ctype_agrees(const char *v, const struct sg_ctype *ct)
{
	GMimeContentType *g = g_mime_content_type_parse(NULL, v);
	int ok;

	if (g == NULL)
		return 0;
	ok = same(ct->type, g_mime_content_type_get_media_type(g), 1) &&
	     same(ct->sub, g_mime_content_type_get_media_subtype(g), 1) &&
	     same(ct->protocol,
	          g_mime_content_type_get_parameter(g, "protocol"), 0) &&
	     same(ct->smime_type,
	          g_mime_content_type_get_parameter(g, "smime-type"), 0) &&
	     same(ct->boundary,
	          g_mime_content_type_get_parameter(g, "boundary"), 0);
	g_object_unref(g);
	return ok;
}

/* Whether fields.c and GMime agree on the Content-Type value V and on the
 * From value V (where fields.c reads them at all). */
static inline int
fields_agree(const char *v)
{
	struct sg_ctype ct;
	char *a, *g;
	int simple, ok = 1;

	if (sg_ctype_parse_simple(v, &ct)) {
		ok = ctype_agrees(v, &ct);
		sg_ctype_clear(&ct);
	}
	a = sg_addr_parse_simple(v, &simple);
	/* GMime decodes an A-label and encodes it again, which changes a
	 * malformed one ("xn--example"); fields.c keeps it as written,
	 * which is what a certificate's address is compared with. */
	if (simple && a != NULL && strcasestr(a, "xn--") != NULL)
		simple = 0;
	if (simple) {
		g = sg_mime_addr_gmime(v);
		ok = ok && same(a, g, 0);
		free(g);
	}
	free(a);
	return ok;
}

#endif
