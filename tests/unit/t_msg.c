/*
 * t_msg.c - the input message: header block splitting, line ends, limits,
 * and the byte sources and sinks built on it.
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "lib/sg_int.h"

static struct sg_ctx *
ctx_new(void)
{
	struct sg_ctx *ctx = NULL;
	sg_ctx_new(&ctx);
	return ctx;
}

static enum sg_status
open_str(struct sg_ctx *ctx, const char *s, struct sg_msg **m)
{
	return sg_msg_open_mem(ctx, s, strlen(s), m);
}

static void
splits_headers_lf(void)
{
	struct sg_ctx *ctx = ctx_new();
	struct sg_msg *m = NULL;

	CHECK_EQ(open_str(ctx,
	                  "From: a@example.com\nSubject: one\n two\n\nbody\n",
	                  &m),
	         SG_OK);
	CHECK(m != NULL);
	if (m != NULL) {
		CHECK_EQ(m->nhdrs, 2);
		CHECK(!sg_msg_is_crlf(m));
		char *subj = sg_msg_header(m, "subject");
		CHECK_STR(subj, "one two");
		free(subj);
		CHECK_EQ(m->body_off, strlen("From: a@example.com\nSubject: "
		                             "one\n two\n\n"));
	}
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

static void
detects_crlf(void)
{
	struct sg_ctx *ctx = ctx_new();
	struct sg_msg *m = NULL;

	CHECK_EQ(open_str(ctx, "From: a@b\r\nTo: c@d\r\n\r\nx\r\n", &m), SG_OK);
	CHECK(m && sg_msg_is_crlf(m));
	CHECK(m && m->hdrs[1].len == strlen("To: c@d\r\n"));
	sg_msg_free(m);
	sg_ctx_free(ctx);
}

static void
rejects_malformed_headers(void)
{
	static const struct {
		const char *name, *text;
		enum sg_status want;
	} cases[] = {
	    {"continuation first", " folded\nFrom: a\n\nx", SG_ERR_MIME},
	    {"no colon", "From a@b\n\nx", SG_ERR_MIME},
	    {"empty", "", SG_ERR_MIME},
	    {"blank line first", "\nbody only\n", SG_ERR_MIME},
	    {"headers only", "From: a@b\nSubject: s\n", SG_OK},
	};
	struct sg_ctx *ctx = ctx_new();

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_msg *m = NULL;
		enum sg_status st = open_str(ctx, cases[i].text, &m);
		if (st != cases[i].want)
			unit_fail(__FILE__, __LINE__, cases[i].name);
		sg_msg_free(m);
	}
	sg_ctx_free(ctx);
}

static void
limits_header_lines(void)
{
	struct sg_ctx *ctx = ctx_new();
	struct sg_msg *m = NULL;
	size_t n = 1024 * 1024;
	char *big = malloc(n + 64);

	CHECK(big != NULL);
	if (big == NULL)
		return;
	strcpy(big, "Subject: ");
	memset(big + 9, 'a', n);
	strcpy(big + 9 + n, "\n\nbody\n");
	CHECK_EQ(open_str(ctx, big, &m), SG_ERR_LIMIT);
	CHECK(strstr(sg_ctx_error(ctx), "longer than") != NULL);
	CHECK(m == NULL);
	/* The same through folding: the field, not the line, is bounded. */
	struct sg_buf b;
	sg_buf_init(&b);
	sg_buf_adds(&b, "Subject: x\n");
	for (int i = 0; i < 2000; i++)
		sg_buf_adds(&b, " 0123456789012345678901234567890123456789\n");
	sg_buf_adds(&b, "\nbody\n");
	CHECK_EQ(open_str(ctx, b.data, &m), SG_ERR_LIMIT);
	sg_buf_clear(&b);
	free(big);
	sg_ctx_free(ctx);
}

static void
limits_message_size(void)
{
	struct sg_ctx *ctx = ctx_new();
	struct sg_limits lim;
	struct sg_msg *m = NULL;

	sg_ctx_get_limits(ctx, &lim);
	lim.max_message = 10;
	sg_ctx_set_limits(ctx, &lim);
	CHECK_EQ(open_str(ctx, "From: a@b\n\n0123456789\n", &m), SG_ERR_LIMIT);
	sg_ctx_free(ctx);
}

static void
classifies_headers(void)
{
	CHECK(sg_hdr_is_content("Content-Type"));
	CHECK(sg_hdr_is_content("content-transfer-encoding"));
	CHECK(!sg_hdr_is_content("Subject"));
	CHECK(sg_hdr_is_dropped("bcc"));
	CHECK(sg_hdr_is_dropped("DKIM-Signature"));
	CHECK(sg_hdr_is_dropped("MIME-Version"));
	CHECK(!sg_hdr_is_dropped("Received"));
	CHECK(!sg_hdr_is_dropped("Message-ID"));
}

/* Reads a whole source BIO into a buffer. */
static void
drain(BIO *b, struct sg_buf *out)
{
	char tmp[7]; /* small on purpose: exercises partial reads */
	int n;
	while ((n = BIO_read(b, tmp, sizeof(tmp))) > 0)
		sg_buf_add(out, tmp, (size_t)n);
}

static void
source_canonicalizes_and_rewinds(void)
{
	struct sg_source *src = sg_source_new();
	struct sg_buf out;
	BIO *b;

	sg_buf_init(&out);
	sg_source_add_mem(src, "a\nb\r", 4, 1);
	sg_source_add_mem(src, "\nc\n", 3, 1); /* CR|LF across segments */
	sg_source_add_mem(src, "raw\n", 4, 0);
	b = sg_source_bio(src);
	drain(b, &out);
	CHECK_STR(out.data, "a\r\nb\r\nc\r\nraw\n");
	out.len = 0;
	CHECK(BIO_reset(b) == 1);
	drain(b, &out);
	CHECK_EQ(out.len, strlen("a\r\nb\r\nc\r\nraw\n"));
	BIO_free(b);
	sg_source_free(src);
	sg_buf_clear(&out);
}

static int
buf_write(void *arg, const void *p, size_t n)
{
	return sg_buf_add(arg, p, n);
}

static void
sink_follows_line_ends(void)
{
	static const struct {
		int lf;
		const char *in, *want;
	} cases[] = {
	    {1, "a\r\nb\r\n", "a\nb\n"},
	    {1, "bare\rcr\r", "bare\rcr\r"},
	    {0, "a\nb\r\n", "a\r\nb\r\n"},
	    {0, "x\r", "x\r"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_buf out;
		struct sg_sink sink = {buf_write, &out};
		BIO *b;

		sg_buf_init(&out);
		sg_buf_add(&out, "", 0);
		b = sg_sink_bio(&sink, cases[i].lf);
		/* One byte at a time: state must carry across writes. */
		for (const char *p = cases[i].in; *p; p++)
			BIO_write(b, p, 1);
		BIO_flush(b);
		CHECK_STR(out.data, cases[i].want);
		BIO_free(b);
		sg_buf_clear(&out);
	}
}

static void
write_headers_prepends_and_drops_forged(void)
{
	static const char in[] =
	    "Authentication-Results: gw.test; smime=pass\r\n"
	    "Received: from x\r\n"
	    "Authentication-Results:  GW.TEST;\r\n\tdkim=pass\r\n"
	    "Authentication-Results: gw.test.evil; smime=pass\r\n"
	    "Subject: kept\r\n"
	    "\r\n"
	    "body\r\n";
	struct sg_ctx *ctx = ctx_new();
	struct sg_msg *m = NULL;
	struct sg_buf out;
	struct sg_sink sink = {buf_write, &out};

	sg_buf_init(&out);
	sg_buf_add(&out, "", 0);
	CHECK_EQ(open_str(ctx, in, &m), SG_OK);
	CHECK_EQ(sg_msg_write_headers(ctx, m,
	                              "Authentication-Results: gw.test; "
	                              "smime=none\r\n",
	                              "Authentication-Results", "gw.test",
	                              &sink),
	         SG_OK);
	/* Ours first; both forged ones (any case, folded) gone; another
	 * host's kept; everything else byte for byte. */
	CHECK_STR(out.data, "Authentication-Results: gw.test; smime=none\r\n"
	                    "Received: from x\r\n"
	                    "Authentication-Results: gw.test.evil; "
	                    "smime=pass\r\n"
	                    "Subject: kept\r\n"
	                    "\r\n"
	                    "body\r\n");
	sg_msg_free(m);
	sg_buf_clear(&out);
	sg_ctx_free(ctx);
}

static const struct unit_case cases[] = {
    {"splits_headers_lf", splits_headers_lf},
    {"detects_crlf", detects_crlf},
    {"rejects_malformed_headers", rejects_malformed_headers},
    {"limits_header_lines", limits_header_lines},
    {"limits_message_size", limits_message_size},
    {"classifies_headers", classifies_headers},
    {"source_canonicalizes_and_rewinds", source_canonicalizes_and_rewinds},
    {"sink_follows_line_ends", sink_follows_line_ends},
    {"write_headers_prepends_and_drops_forged",
     write_headers_prepends_and_drops_forged},
    {NULL, NULL},
};
const struct unit_suite suite_msg = {"msg", cases};
