/*
 * t_mime.c - S/MIME kind detection, multipart/signed splitting on the
 * original bytes, the protected entity (kept byte for byte, or re-encoded
 * to 7 bit), and the depth limit.
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/sg_int.h"

static struct sg_msg *
msg_of(struct sg_ctx *ctx, const char *s)
{
	struct sg_msg *m = NULL;
	sg_msg_open_mem(ctx, s, strlen(s), &m);
	return m;
}

static void
detects_kinds(void)
{
	static const struct {
		const char *ct;
		enum sg_smime_kind kind;
	} cases[] = {
	    {"multipart/signed; protocol=\"application/pkcs7-signature\"; "
	     "boundary=x",
	     SG_KIND_SIGNED_DETACHED},
	    {"multipart/signed; protocol=\"application/x-pkcs7-signature\"; "
	     "boundary=x",
	     SG_KIND_SIGNED_DETACHED},
	    {"multipart/signed; protocol=\"application/pgp-signature\"; "
	     "boundary=x",
	     SG_KIND_NONE},
	    {"application/pkcs7-mime; smime-type=signed-data",
	     SG_KIND_SIGNED_OPAQUE},
	    {"application/x-pkcs7-mime; smime-type=enveloped-data",
	     SG_KIND_ENVELOPED},
	    {"application/pkcs7-mime; smime-type=authEnveloped-data",
	     SG_KIND_AUTH_ENVELOPED},
	    {"text/plain", SG_KIND_NONE},
	};
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf), "From: a@b\nContent-Type: %s\n\nx\n",
		         cases[i].ct);
		struct sg_msg *m = msg_of(ctx, buf);
		CHECK(m != NULL);
		if (m && sg_msg_smime_kind(m) != cases[i].kind)
			unit_fail(__FILE__, __LINE__, cases[i].ct);
		sg_msg_free(m);
	}
	sg_ctx_free(ctx);
}

static const char signed_msg[] =
    "From: a@b\r\n"
    "Content-Type: multipart/signed; protocol=\"application/"
    "pkcs7-signature\";\r\n boundary=\"BB\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--BB\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "signed text\r\n"
    "--BB  \r\n" /* transport padding is allowed */
    "Content-Type: application/pkcs7-signature\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAAA\r\n"
    "--BB--\r\n";

static void
splits_signed_on_original_bytes(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_msg *m;
	size_t c_off = 0, c_len = 0, s_off = 0, s_len = 0;
	int b64 = 0;
	char buf[128] = {0};

	sg_ctx_new(&ctx);
	m = msg_of(ctx, signed_msg);
	CHECK_EQ(sg_mime_split_signed(m, &c_off, &c_len, &s_off, &s_len, &b64),
	         SG_OK);
	CHECK(c_len < sizeof(buf));
	sg_msg_pread(m, buf, c_len, c_off);
	/* The CRLF before the delimiter belongs to the delimiter. */
	CHECK_STR(buf, "Content-Type: text/plain\r\n\r\nsigned text");
	memset(buf, 0, sizeof(buf));
	sg_msg_pread(m, buf, s_len, s_off);
	CHECK_STR(buf, "AAAA");
	CHECK(b64);
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

static void
splits_signed_with_rfc2231_boundary(void)
{
	static const char msg[] =
	    "From: a@b\r\n"
	    "Content-Type: multipart/signed;\r\n"
	    " protocol=\"application/pkcs7-signature\";\r\n"
	    " boundary*0=\"long-bound\"; boundary*1=\"ary-42\"\r\n"
	    "\r\n"
	    "--long-boundary-42\r\n"
	    "\r\n"
	    "text\r\n"
	    "--long-boundary-42\r\n"
	    "Content-Type: application/pkcs7-signature\r\n"
	    "\r\n"
	    "AAAA\r\n"
	    "--long-boundary-42--\r\n";
	struct sg_ctx *ctx = NULL;
	struct sg_msg *m;
	size_t c_off = 0, c_len = 0, s_off = 0, s_len = 0;
	int b64 = 1;

	sg_ctx_new(&ctx);
	m = msg_of(ctx, msg);
	CHECK_EQ(sg_mime_split_signed(m, &c_off, &c_len, &s_off, &s_len, &b64),
	         SG_OK);
	CHECK_EQ(c_len, strlen("\r\ntext"));
	CHECK_EQ(s_len, strlen("AAAA"));
	CHECK(!b64); /* no transfer encoding given: raw DER */
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

static void
rejects_broken_signed(void)
{
	static const struct {
		const char *name, *body;
	} cases[] = {
	    {"boundary never appears", "text\r\n--XX\r\n\r\nx\r\n--XX--\r\n"},
	    {"one part only", "--BB\r\n\r\nx\r\n--BB--\r\n"},
	    {"three parts",
	     "--BB\r\n\r\na\r\n--BB\r\nContent-Type: application/"
	     "pkcs7-signature\r\n\r\nb\r\n--BB\r\n\r\nc\r\n--BB--\r\n"},
	    {"second part not a signature",
	     "--BB\r\n\r\na\r\n--BB\r\nContent-Type: text/plain\r\n\r\n"
	     "b\r\n--BB--\r\n"},
	};
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char buf[1024];
		size_t a, b, c, d;
		int e;
		snprintf(buf, sizeof(buf),
		         "From: a@b\r\nContent-Type: multipart/signed; "
		         "protocol=\"application/pkcs7-signature\"; "
		         "boundary=BB\r\n\r\n%s",
		         cases[i].body);
		struct sg_msg *m = msg_of(ctx, buf);
		if (m == NULL ||
		    sg_mime_split_signed(m, &a, &b, &c, &d, &e) != SG_ERR_MIME)
			unit_fail(__FILE__, __LINE__, cases[i].name);
		sg_msg_free(m);
	}
	sg_ctx_free(ctx);
}

/* The protected entity of S, as bytes. */
static enum sg_status
entity_of(struct sg_ctx *ctx, const char *s, struct sg_buf *out)
{
	struct sg_msg *m = msg_of(ctx, s);
	struct sg_source *src = sg_source_new();
	enum sg_status st;
	int spool = -1;
	char tmp[4096];
	int n;

	if (m == NULL)
		return sg_ctx_last_status(ctx);
	st = sg_mime_inner_entity(m, src, &spool);
	if (st == SG_OK) {
		BIO *b = sg_source_bio(src);
		while ((n = BIO_read(b, tmp, sizeof(tmp))) > 0)
			sg_buf_add(out, tmp, (size_t)n);
		BIO_free(b);
	}
	if (spool != -1)
		close(spool);
	sg_source_free(src);
	sg_msg_free(m);
	return st;
}

static void
entity_keeps_unchanged_bytes(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_buf out;

	sg_ctx_new(&ctx);
	sg_buf_init(&out);
	CHECK_EQ(entity_of(ctx,
	                   "From: a@b\nBcc: secret@x\nSubject: s\n"
	                   "Content-Type: text/plain;\n  charset=us-ascii\n"
	                   "Content-Transfer-Encoding:  7bit\n\nline\n",
	                   &out),
	         SG_OK);
	/* Content-* headers inside with their odd spacing and folding
	 * intact; identity headers (and Bcc) not; CRLF canonical. */
	CHECK_STR(out.data,
	          "Content-Type: text/plain;\r\n  charset=us-ascii\r\n"
	          "Content-Transfer-Encoding:  7bit\r\n\r\nline\r\n");
	sg_buf_clear(&out);
	sg_ctx_free(ctx);
}

static void
entity_gets_default_type(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_buf out;

	sg_ctx_new(&ctx);
	sg_buf_init(&out);
	CHECK_EQ(entity_of(ctx, "From: a@b\n\nplain\n", &out), SG_OK);
	CHECK_STR(out.data, "Content-Type: text/plain; charset=us-ascii\r\n"
	                    "\r\nplain\r\n");
	sg_buf_clear(&out);
	sg_ctx_free(ctx);
}

static void
entity_reencodes_8bit_to_7bit(void)
{
	static const char *const inputs[] = {
	    /* 8bit text */
	    "From: a@b\nContent-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9f"
	    "e\n",
	    /* binary attachment beside a base64 one that must stay */
	    "From: a@b\nContent-Type: multipart/mixed; boundary=q\n\n"
	    "--q\nContent-Type: text/plain\n\nhi\n"
	    "--q\nContent-Type: application/octet-stream\n"
	    "Content-Transfer-Encoding: binary\n\n\x01\x02\xff\xfe\n"
	    "--q\nContent-Type: image/png\nContent-Transfer-Encoding: "
	    "base64\n\niVBORw0KGgo=\n--q--\n",
	};
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	for (size_t i = 0; i < sizeof(inputs) / sizeof(*inputs); i++) {
		struct sg_buf out;
		sg_buf_init(&out);
		CHECK_EQ(entity_of(ctx, inputs[i], &out), SG_OK);
		for (size_t j = 0; j < out.len; j++)
			if ((unsigned char)out.data[j] >= 0x80 ||
			    out.data[j] == 0) {
				unit_fail(__FILE__, __LINE__,
				          "8-bit byte left");
				break;
			}
		/* Every LF is part of a CRLF. */
		for (size_t j = 0; j < out.len; j++)
			if (out.data[j] == '\n' &&
			    (j == 0 || out.data[j - 1] != '\r')) {
				unit_fail(__FILE__, __LINE__, "bare LF left");
				break;
			}
		if (i == 1) {
			CHECK(strstr(out.data, "iVBORw0KGgo=") != NULL);
			CHECK(strstr(out.data, "AQL//g==") != NULL);
		}
		sg_buf_clear(&out);
	}
	sg_ctx_free(ctx);
}

static void
entity_reencodes_long_lines(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_buf in, out;

	sg_ctx_new(&ctx);
	sg_buf_init(&in);
	sg_buf_init(&out);
	sg_buf_adds(&in, "From: a@b\nContent-Type: text/plain\n\n");
	for (int i = 0; i < 1500; i++)
		sg_buf_add(&in, "x", 1);
	sg_buf_adds(&in, "\n");
	CHECK_EQ(entity_of(ctx, in.data, &out), SG_OK);
	CHECK(strstr(out.data, "quoted-printable") != NULL);
	size_t line = 0, longest = 0;
	for (size_t j = 0; j < out.len; j++) {
		line = out.data[j] == '\n' ? 0 : line + 1;
		longest = line > longest ? line : longest;
	}
	CHECK(longest <= 998);
	sg_buf_clear(&in);
	sg_buf_clear(&out);
	sg_ctx_free(ctx);
}

static void
entity_line_limit_is_exact(void)
{
	static const struct {
		const char *name;
		size_t len; /* octets on the line, without its line end */
		const char *eol;
		int reencoded;
	} cases[] = {
	    {"998 with LF", 998, "\n", 0},
	    {"998 with CRLF", 998, "\r\n", 0},
	    {"999 with LF", 999, "\n", 1},
	    {"999 with CRLF", 999, "\r\n", 1},
	    {"999 without a line end", 999, "", 1},
	};
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_buf in, out;
		sg_buf_init(&in);
		sg_buf_init(&out);
		sg_buf_adds(&in, "From: a@b\nContent-Type: text/plain\n\n");
		for (size_t j = 0; j < cases[i].len; j++)
			sg_buf_add(&in, j % 7 ? "y" : "z", 1);
		sg_buf_adds(&in, cases[i].eol);
		if (entity_of(ctx, in.data, &out) != SG_OK ||
		    (strstr(out.data, "quoted-printable") != NULL) !=
		        cases[i].reencoded)
			unit_fail(__FILE__, __LINE__, cases[i].name);
		sg_buf_clear(&in);
		sg_buf_clear(&out);
	}
	sg_ctx_free(ctx);
}

static void
entity_reencodes_nul(void)
{
	static const char msg[] = "From: a@b\nContent-Type: text/plain\n\n"
	                          "a\0b\n";
	struct sg_ctx *ctx = NULL;
	struct sg_msg *m = NULL;
	struct sg_source *src = sg_source_new();
	int spool = -1;

	sg_ctx_new(&ctx);
	CHECK_EQ(sg_msg_open_mem(ctx, msg, sizeof(msg) - 1, &m), SG_OK);
	CHECK_EQ(sg_mime_inner_entity(m, src, &spool), SG_OK);
	CHECK(spool != -1); /* went through GMime's re-encoding */
	if (spool != -1)
		close(spool);
	sg_source_free(src);
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

/* 10,000 levels of multipart, and message/rfc822 in message/rfc822 70
 * deep without a single "--" line (the body scan that spares GMime must
 * not miss it): both over the depth limit. */
static void
entity_limits_depth(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_buf in, out;

	sg_ctx_new(&ctx);
	for (int messages = 0; messages < 2; messages++) {
		sg_buf_init(&in);
		sg_buf_init(&out);
		if (messages) {
			sg_buf_adds(&in, "From: a@b\n");
			for (int i = 0; i < 70; i++)
				sg_buf_adds(&in,
				            "Content-Type: message/rfc822\n\n");
			sg_buf_adds(&in, "Subject: leaf\n\nleaf\n");
		} else {
			sg_buf_adds(&in, "From: a@b\nContent-Type: "
			                 "multipart/mixed; boundary=b0\n\n");
			for (int i = 0; i < 10000; i++)
				sg_buf_addf(&in,
				            "--b%d\nContent-Type: "
				            "multipart/mixed; boundary=b%d\n\n",
				            i, i + 1);
			sg_buf_adds(&in, "--b10000\n\nleaf\n");
		}
		CHECK_EQ(entity_of(ctx, in.data, &out), SG_ERR_LIMIT);
		CHECK(strstr(sg_ctx_error(ctx), "nesting") != NULL);
		sg_buf_clear(&in);
		sg_buf_clear(&out);
	}
	sg_ctx_free(ctx);
}

/* A 7-bit multipart is used byte for byte, also when it has more line
 * starts that may open an entity than the depth limit (GMime then walks
 * it), and a 7-bit multipart of 64 levels is within the limit. */
static void
entity_clean_multiparts_are_kept(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_buf in, out, want;

	sg_ctx_new(&ctx);
	for (int many = 0; many < 3; many++) {
		sg_buf_init(&in);
		sg_buf_init(&out);
		sg_buf_init(&want);
		sg_buf_adds(&in, "From: a@b\nContent-Type: multipart/mixed; "
		                 "boundary=b0\n\n");
		sg_buf_adds(&want, "Content-Type: multipart/mixed; "
		                   "boundary=b0\r\n\r\n");
		for (int i = 0; i < (many == 2 ? 63 : 1); i++) {
			sg_buf_addf(&in,
			            "--b%d\nContent-Type: multipart/mixed; "
			            "boundary=b%d\n\n",
			            i, i + 1);
			sg_buf_addf(&want,
			            "--b%d\r\nContent-Type: "
			            "multipart/mixed; boundary=b%d\r\n\r\n",
			            i, i + 1);
		}
		for (int i = 0; i < (many == 1 ? 100 : 2); i++) {
			sg_buf_adds(&in, "--b1\n\n-- \ntext\n");
			sg_buf_adds(&want, "--b1\r\n\r\n-- \r\ntext\r\n");
		}
		sg_buf_adds(&in, "--b1--\n");
		sg_buf_adds(&want, "--b1--\r\n");
		CHECK_EQ(entity_of(ctx, in.data, &out), SG_OK);
		CHECK_STR(out.data, want.data);
		sg_buf_clear(&in);
		sg_buf_clear(&out);
		sg_buf_clear(&want);
	}
	sg_ctx_free(ctx);
}

static void
from_address_is_bare_with_lowercase_domain(void)
{
	struct sg_ctx *ctx = NULL;

	sg_ctx_new(&ctx);
	struct sg_msg *m =
	    msg_of(ctx, "From: \"Alice, A.\" <Alice@Example.COM>\n\nx\n");
	char *a = m ? sg_mime_from_address(m) : NULL;
	/* The domain is case-insensitive, the local part is not. */
	CHECK_STR(a, "Alice@example.com");
	free(a);
	sg_msg_free(m);
	/* An internationalized domain comes out in its ASCII (A-label)
	 * form, as certificates carry it (RFC 8398), whether it was written
	 * so or in UTF-8, and whoever reads the field (lib/fields.c or
	 * GMime: the comment makes it GMime's). */
	static const char *const idn[] = {
	    "From: a@xn--bcher-kva.de\n\nx\n",
	    "From: A <a@b\xc3\xbc"
	    "cher.de>\n\nx\n",
	    "From: a@xn--bcher-kva.de (A)\n\nx\n",
	};
	for (size_t i = 0; i < sizeof(idn) / sizeof(*idn); i++) {
		m = msg_of(ctx, idn[i]);
		a = m ? sg_mime_from_address(m) : NULL;
		if (a == NULL || strcmp(a, "a@xn--bcher-kva.de") != 0)
			unit_fail(__FILE__, __LINE__, idn[i]);
		free(a);
		sg_msg_free(m);
	}
	sg_ctx_free(ctx);
}

/* The facts filters look at: the decoded subject, the text parts in
 * UTF-8 (from their charsets and transfer encodings, inside the signed
 * content), attachments by name and type, every value of a header. */
static const char facts_msg[] =
    "From: a@example.org\r\n"
    "To: b@example.net\r\n"
    "X-Tag: one\r\n"
    "X-Tag:\r\n two\r\n"
    "Subject: =?UTF-8?B?Q29uZmlkZW50aWFsOiBjYWbDqQ==?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/signed; protocol=\"application/"
    "pkcs7-signature\"; micalg=sha-256; boundary=\"S\"\r\n"
    "\r\n"
    "--S\r\n"
    "Content-Type: multipart/mixed; boundary=\"M\"\r\n"
    "\r\n"
    "--M\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Le caf=E9 est pr=EAt.\r\n"
    "--M\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0=\r\n"
    "--M\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>second part</p>\r\n"
    "--M--\r\n"
    "--S\r\n"
    "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAAA\r\n"
    "--S--\r\n";

static void
facts_of_a_message(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_msg *m;
	struct sg_facts f;
	char **v;

	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	m = msg_of(ctx, facts_msg);
	CHECK(m != NULL);
	CHECK_EQ(sg_msg_facts(m, &f), SG_OK);
	CHECK_STR(f.subject, "Confidential: caf\xc3\xa9");
	CHECK(f.body_text != NULL &&
	      strstr(f.body_text, "Le caf\xc3\xa9 est pr\xc3\xaat.") != NULL);
	CHECK(f.body_text != NULL &&
	      strstr(f.body_text, "<p>second part</p>") != NULL);
	CHECK(f.body_text != NULL && strstr(f.body_text, "AAAA") == NULL);
	CHECK_EQ(f.natt, 1u);
	if (f.natt == 1) {
		CHECK_STR(f.att_names[0], "r\xc3\xa9sum\xc3\xa9.pdf");
		CHECK_STR(f.att_types[0], "application/pdf");
		CHECK(f.att_names[1] == NULL && f.att_types[1] == NULL);
	}
	CHECK(f.smime_signed && !f.smime_encrypted);
	sg_facts_clear(&f);
	v = sg_msg_header_all(m, "x-tag");
	CHECK(v != NULL && v[0] && v[1] && v[2] == NULL);
	if (v != NULL && v[0] && v[1]) {
		CHECK_STR(v[0], "one");
		CHECK_STR(v[1], "two");
	}
	sg_strv_free(v);
	CHECK(sg_msg_header_all(m, "X-None") == NULL);
	sg_msg_free(m);

	/* Opaque S/MIME: the flag, no text. */
	m = msg_of(ctx, "Subject: x\r\nContent-Type: application/pkcs7-mime; "
	                "smime-type=enveloped-data\r\n"
	                "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n");
	CHECK_EQ(sg_msg_facts(m, &f), SG_OK);
	CHECK(f.smime_encrypted && !f.smime_signed);
	CHECK(f.body_text == NULL && f.natt == 0);
	sg_facts_clear(&f);
	sg_msg_free(m);

	/* A plain message without MIME headers: text/plain by default. */
	m = msg_of(ctx, "Subject: plain\r\n\r\nConfidential numbers\r\n");
	CHECK_EQ(sg_msg_facts(m, &f), SG_OK);
	CHECK(f.body_text != NULL &&
	      strstr(f.body_text, "Confidential numbers") != NULL);
	CHECK(!f.smime_encrypted && !f.smime_signed);
	sg_facts_clear(&f);
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

static const struct unit_case cases[] = {
    {"detects_kinds", detects_kinds},
    {"splits_signed_on_original_bytes", splits_signed_on_original_bytes},
    {"splits_signed_with_rfc2231_boundary",
     splits_signed_with_rfc2231_boundary},
    {"rejects_broken_signed", rejects_broken_signed},
    {"entity_keeps_unchanged_bytes", entity_keeps_unchanged_bytes},
    {"entity_gets_default_type", entity_gets_default_type},
    {"entity_reencodes_8bit_to_7bit", entity_reencodes_8bit_to_7bit},
    {"entity_reencodes_long_lines", entity_reencodes_long_lines},
    {"entity_line_limit_is_exact", entity_line_limit_is_exact},
    {"entity_reencodes_nul", entity_reencodes_nul},
    {"entity_limits_depth", entity_limits_depth},
    {"entity_clean_multiparts_are_kept", entity_clean_multiparts_are_kept},
    {"from_address_is_bare_with_lowercase_domain",
     from_address_is_bare_with_lowercase_domain},
    {"facts_of_a_message", facts_of_a_message},
    {NULL, NULL},
};
const struct unit_suite suite_mime = {"mime", cases};
