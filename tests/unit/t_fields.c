/*
 * t_fields.c - Content-Type and From in their plain forms, read without
 * GMime (lib/fields.c): what is read must be read as GMime reads it, and
 * what is unusual must be left to GMime.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fields_oracle.h"
#include "lib/gmime_dl.h"
#include "lib/sg_int.h"

static void
plain_content_types_are_read_as_gmime_reads_them(void)
{
	static const struct {
		const char *v, *type, *sub, *protocol, *smime, *boundary;
	} cases[] = {
	    {"text/plain", "text", "plain", NULL, NULL, NULL},
	    {"Text/Plain; charset=us-ascii", "Text", "Plain", NULL, NULL, NULL},
	    {"multipart/signed; protocol=\"application/pkcs7-signature\"; "
	     "micalg=sha-256; boundary=\"----=_Part_1\"",
	     "multipart", "signed", "application/pkcs7-signature", NULL,
	     "----=_Part_1"},
	    {"multipart/signed;\t boundary=abc;protocol=application/x-pkcs7-"
	     "signature;",
	     "multipart", "signed", "application/x-pkcs7-signature", NULL,
	     "abc"},
	    {"application/pkcs7-mime; smime-type=enveloped-data; "
	     "name=smime.p7m",
	     "application", "pkcs7-mime", NULL, "enveloped-data", NULL},
	    {"application/pkcs7-mime; SMIME-Type=\"signed-data\"",
	     "application", "pkcs7-mime", NULL, "signed-data", NULL},
	    {"multipart/mixed; boundary=\"a b\\\"c\"", "multipart", "mixed",
	     NULL, NULL, "a b\"c"},
	    {"multipart/mixed; boundary=\"\"", "multipart", "mixed", NULL, NULL,
	     ""},
	    {"multipart/mixed; boundary=a=b/c?d", "multipart", "mixed", NULL,
	     NULL, "a=b/c?d"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_ctype ct;

		if (!sg_ctype_parse_simple(cases[i].v, &ct)) {
			unit_fail(__FILE__, __LINE__, cases[i].v);
			continue;
		}
		if (!same(ct.type, cases[i].type, 0) ||
		    !same(ct.sub, cases[i].sub, 0) ||
		    !same(ct.protocol, cases[i].protocol, 0) ||
		    !same(ct.smime_type, cases[i].smime, 0) ||
		    !same(ct.boundary, cases[i].boundary, 0) ||
		    !ctype_agrees(cases[i].v, &ct))
			unit_fail(__FILE__, __LINE__, cases[i].v);
		sg_ctype_clear(&ct);
	}
}

static void
unusual_content_types_are_left_to_gmime(void)
{
	static const char *const cases[] = {
	    "multipart/signed (a comment); boundary=x",
	    "(comment) text/plain",
	    "multipart/mixed; boundary*0=abc; boundary*1=def",
	    "multipart/mixed; boundary*=utf-8''abc",
	    "multipart/mixed; boundary=a; boundary=b",
	    "application/pkcs7-mime; smime-type=a; smime-type=b",
	    "text/plain; charset=\"unterminated",
	    "text/plain; name=\"caf\xc3\xa9\"",
	    "text",
	    "text/",
	    "/plain",
	    "text/plain; charset",
	    "text/plain; charset=",
	    "text/plain junk",
	    "text/plain; a=b c",
	    "multipart/mixed; boundary=a(b)",
	    "multipart/mixed; boundary=\"x\"y",
	    "",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_ctype ct;

		if (sg_ctype_parse_simple(cases[i], &ct)) {
			unit_fail(__FILE__, __LINE__, cases[i]);
			sg_ctype_clear(&ct);
		}
	}
}

/* GMime still reads them: the kind comes out right either way. */
static void
kind_of_unusual_content_types(void)
{
	static const struct {
		const char *ct;
		enum sg_smime_kind kind;
	} cases[] = {
	    {"multipart/signed; protocol=\"application/pkcs7-signature\" "
	     "(S/MIME); boundary=x",
	     SG_KIND_SIGNED_DETACHED},
	    {"application/pkcs7-mime (envelope); smime-type=enveloped-data",
	     SG_KIND_ENVELOPED},
	    {"multipart/signed; protocol*=us-ascii''application%2Fpkcs7-"
	     "signature; boundary=x",
	     SG_KIND_SIGNED_DETACHED},
	    {"text/plain (not S/MIME)", SG_KIND_NONE},
	};
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char buf[512];
		struct sg_msg *m = NULL;

		snprintf(buf, sizeof(buf), "From: a@b\nContent-Type: %s\n\nx\n",
		         cases[i].ct);
		CHECK(sg_msg_open_mem(ctx, buf, strlen(buf), &m) == SG_OK);
		if (m != NULL && sg_msg_smime_kind(m) != cases[i].kind)
			unit_fail(__FILE__, __LINE__, cases[i].ct);
		sg_msg_free(m);
	}
	sg_ctx_free(ctx);
}

static void
plain_from_addresses_are_read_as_gmime_reads_them(void)
{
	static const struct {
		const char *v, *addr;
	} cases[] = {
	    {"alice@example.com", "alice@example.com"},
	    {"Alice <alice@Example.COM>", "alice@example.com"},
	    {"<Alice.Smith@example.com>", "Alice.Smith@example.com"},
	    {"\"Smith, Alice\" <alice@example.com>", "alice@example.com"},
	    {"\"A \\\"B\\\" C\" <a+tag@sub.example.org>",
	     "a+tag@sub.example.org"},
	    {"=?utf-8?q?J=C3=B6rg?= <joerg@example.de>", "joerg@example.de"},
	    {"Dr. No <no@example.com>  ", "no@example.com"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int simple = -1;
		char *a = sg_addr_parse_simple(cases[i].v, &simple);
		char *g = sg_mime_addr_gmime(cases[i].v);

		if (simple != 1 || !same(a, cases[i].addr, 0) || !same(a, g, 0))
			unit_fail(__FILE__, __LINE__, cases[i].v);
		free(a);
		free(g);
	}
}

static void
unusual_from_addresses_are_left_to_gmime(void)
{
	static const char *const cases[] = {
	    "alice@example.com (Alice)",
	    "Alice (work) <alice@example.com>",
	    "\"john doe\"@example.com",
	    "<\"john doe\"@example.com>",
	    "alice@example.com, bob@example.com",
	    "friends: alice@example.com;",
	    "<@route.example:alice@example.com>",
	    "Alice <alice@example.com> bob",
	    "Alice alice@example.com",
	    "alice",
	    "alice@",
	    "@example.com",
	    "alice..x@example.com",
	    "alice@example..com",
	    "alice@[192.0.2.1]",
	    "J\xc3\xb6rg <joerg@example.de>",
	    "<alice@example.com",
	    "",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int simple = -1;
		char *a = sg_addr_parse_simple(cases[i], &simple);

		if (simple != 0 || a != NULL)
			unit_fail(__FILE__, __LINE__, cases[i]);
		free(a);
	}
}

/* One of BITS, at random. */
static const char *
pick(unsigned *seed, const char *const *bits, size_t n)
{
	return bits[rand_r(seed) % n];
}
#define PICK(seed, bits) pick(seed, bits, sizeof(bits) / sizeof(*bits))

/* A Content-Type value: type/subtype and parameters in the forms fields.c
 * reads, with now and then a character that may make it take GMime. */
static void
random_ctype(unsigned *seed, char *v)
{
	static const char *const types[] = {"multipart/signed", "text/plain",
	                                    "application/pkcs7-mime",
	                                    "Multipart/Mixed", "x/y"};
	static const char *const names[] = {"boundary", "protocol",
	                                    "smime-type", "charset", "Name"};
	static const char *const vals[] = {"abc",
	                                   "application/pkcs7-signature",
	                                   "\"a b\"",
	                                   "\"a\\\"b\"",
	                                   "\"\"",
	                                   "=_x.y",
	                                   "\"----=_Part\"",
	                                   "a=b",
	                                   "\"a;b\"",
	                                   "x?y"};
	static const char *const ws[] = {"", " ", "\t", "  "};
	static const char *const junk[] = {"(", ")", "\"", "*", "\\",      ";",
	                                   "=", "/", " ",  ",", "\xc3\xa9"};

	strcpy(v, PICK(seed, types));
	for (int k = (int)(rand_r(seed) % 4); k > 0; k--) {
		strcat(v, PICK(seed, ws));
		strcat(v, ";");
		strcat(v, PICK(seed, ws));
		strcat(v, PICK(seed, names));
		strcat(v, rand_r(seed) % 8 ? "=" : " = ");
		strcat(v, PICK(seed, vals));
	}
	if (rand_r(seed) % 4 == 0) {
		size_t at = rand_r(seed) % (strlen(v) + 1);
		const char *j = PICK(seed, junk);
		memmove(v + at + strlen(j), v + at, strlen(v + at) + 1);
		memcpy(v + at, j, strlen(j));
	}
}

/* A From value of one mailbox in the forms fields.c reads, with now and
 * then a character that may make it take GMime. */
static void
random_from(unsigned *seed, char *v)
{
	static const char *const names[] = {
	    "",        "Alice ",        "\"Smith, Alice\" ",
	    "Dr. No ", "\"a \\\" b\" ", "=?utf-8?q?J=C3=B6rg?= ",
	    "A.B "};
	static const char *const locals[] = {"alice", "a.b", "a+tag", "A_B",
	                                     "x!#$%&'*+-/=?^_`{|}~"};
	static const char *const domains[] = {"example.com", "Example.COM",
	                                      "a.b.c", "x"};
	static const char *const junk[] = {"(", ")", "\"", ",", ":", ";", "<",
	                                   ">", "@", ".",  " ", "[", "\\"};
	int angle = rand_r(seed) % 3 != 0;

	strcpy(v, angle ? PICK(seed, names) : "");
	strcat(v, angle ? "<" : "");
	strcat(v, PICK(seed, locals));
	strcat(v, "@");
	strcat(v, PICK(seed, domains));
	strcat(v, angle ? ">" : "");
	if (rand_r(seed) % 3 == 0) {
		size_t at = rand_r(seed) % (strlen(v) + 1);
		const char *j = PICK(seed, junk);
		memmove(v + at + strlen(j), v + at, strlen(v + at) + 1);
		memcpy(v + at, j, strlen(j));
	}
}

/* Random values near the plain forms: where fields.c reads one, GMime
 * must read it the same; and some are left to GMime. */
static void
random_values_agree_with_gmime(void)
{
	unsigned seed = 12345, read_ct = 0, read_addr = 0, left = 0;

	if (sg_gmime_load(NULL, 0) == NULL) {
		unit_fail(__FILE__, __LINE__, "GMime cannot be loaded");
		return;
	}
	for (int i = 0; i < 20000; i++) {
		char v[512];
		struct sg_ctype ct;
		int simple;
		char *a;

		if (i % 2 == 0) {
			random_ctype(&seed, v);
			if (!sg_ctype_parse_simple(v, &ct)) {
				left++;
				continue;
			}
			read_ct++;
			sg_ctype_clear(&ct);
		} else {
			random_from(&seed, v);
			a = sg_addr_parse_simple(v, &simple);
			free(a);
			if (!simple) {
				left++;
				continue;
			}
			read_addr++;
		}
		if (!fields_agree(v))
			unit_fail(__FILE__, __LINE__, v);
	}
	/* the test means something only if both paths were taken */
	CHECK(read_ct > 3000);
	CHECK(read_addr > 3000);
	CHECK(left > 1000);
}

static const struct unit_case cases[] = {
    {"plain_content_types_are_read_as_gmime_reads_them",
     plain_content_types_are_read_as_gmime_reads_them},
    {"unusual_content_types_are_left_to_gmime",
     unusual_content_types_are_left_to_gmime},
    {"kind_of_unusual_content_types", kind_of_unusual_content_types},
    {"plain_from_addresses_are_read_as_gmime_reads_them",
     plain_from_addresses_are_read_as_gmime_reads_them},
    {"unusual_from_addresses_are_left_to_gmime",
     unusual_from_addresses_are_left_to_gmime},
    {"random_values_agree_with_gmime", random_values_agree_with_gmime},
    {NULL, NULL},
};

const struct unit_suite suite_fields = {"fields", cases};
