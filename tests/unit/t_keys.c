/*
 * t_keys.c - certificate facts and fitness, keys wrapped for storage,
 * CSRs, PKCS#12 output, and the recipients of an envelope.
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/sg_int.h"

#include <openssl/x509v3.h>

static int
buf_write(void *arg, const void *d, size_t n)
{
	return sg_buf_add(arg, d, n);
}

static struct sg_key *
make(struct sg_ctx *ctx, const char *cn, enum sg_keytype kt, int ca,
     const char *const *emails, const char *const *domains,
     const struct sg_key *issuer)
{
	struct sg_cert_req req = {.cn = cn,
	                          .days = 30,
	                          .key = kt,
	                          .ca = ca,
	                          .san_emails = emails,
	                          .san_domains = domains};
	struct sg_key *k = NULL;
	CHECK_EQ(sg_cert_create(ctx, &req, issuer, &k), SG_OK);
	return k;
}

static void
info_reports_names_and_fitness(void)
{
	static const char *const mails[] = {"Alice@Example.COM", NULL};
	static const char *const doms[] = {"example.com", "*.Example.NET",
	                                   NULL};
	struct sg_ctx *ctx = NULL;
	struct sg_certs *c = NULL;
	struct sg_cert_info info;

	sg_ctx_new(&ctx);
	struct sg_key *ca =
	    make(ctx, "CA", SG_KEY_RSA2048, 1, NULL, NULL, NULL);
	struct sg_key *a = make(ctx, "A", SG_KEY_RSA2048, 0, mails, doms, ca);
	struct sg_key *e = make(ctx, "E", SG_KEY_EC_P256, 0, mails, NULL, ca);

	CHECK_EQ(sg_key_get_certs(a, &c), SG_OK);
	CHECK_EQ(sg_certs_count(c), 2); /* the certificate, then its CA */
	CHECK_EQ(sg_certs_info(c, 0, &info), SG_OK);
	CHECK_STR(info.emails[0], "Alice@example.com"); /* domain only */
	CHECK_STR(info.domains[0], "example.com");
	CHECK_STR(info.domains[1], "*.example.net");
	CHECK_STR(info.key_type, "rsa:2048");
	CHECK(info.can_sign && info.can_encrypt && !info.self_signed);
	CHECK(!info.is_ca && info.ski != NULL &&
	      strlen(info.fingerprint) == 64);
	CHECK(info.not_after - info.not_before >= 30 * 86400);
	sg_cert_info_clear(&info);
	/* The CA certificate is fit for neither, and says why. */
	CHECK_EQ(sg_certs_info(c, 1, &info), SG_OK);
	CHECK(info.is_ca && info.self_signed && !info.can_sign &&
	      !info.can_encrypt && info.unfit_sign != NULL);
	sg_cert_info_clear(&info);
	CHECK_EQ(sg_certs_info(c, 2, &info), SG_ERR_USAGE);
	sg_certs_free(c);

	CHECK_EQ(sg_key_get_certs(e, &c), SG_OK);
	CHECK_EQ(sg_certs_info(c, 0, &info), SG_OK);
	CHECK_STR(info.key_type, "ec:p256");
	CHECK(info.can_encrypt); /* keyAgreement */
	sg_cert_info_clear(&info);
	sg_certs_free(c);
	sg_key_free(ca);
	sg_key_free(a);
	sg_key_free(e);
	sg_ctx_free(ctx);
}

/* A SAN with a NUL inside ("victim.com\0.evil") must not pass for the
 * name before the NUL. */
static void
names_with_nul_are_ignored(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_certs *c = NULL;
	struct sg_cert_info info;
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	static const char dns[] = "victim.com\0.evil.net";
	static const char mail[] = "boss@victim.com\0@evil.net";

	sg_ctx_new(&ctx);
	struct sg_key *k = make(ctx, "N", SG_KEY_RSA2048, 0, NULL, NULL, NULL);
	for (int i = 0; i < 2; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *v = ASN1_IA5STRING_new();
		ASN1_STRING_set(v, i ? mail : dns,
		                (int)(i ? sizeof(mail) : sizeof(dns)) - 1);
		GENERAL_NAME_set0_value(g, i ? GEN_EMAIL : GEN_DNS, v);
		sk_GENERAL_NAME_push(gens, g);
	}
	X509_add1_ext_i2d(k->cert, NID_subject_alt_name, gens, 0,
	                  X509V3_ADD_REPLACE);
	X509_sign(k->cert, k->pkey, EVP_sha256());
	GENERAL_NAMES_free(gens);
	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	CHECK_EQ(sg_certs_info(c, 0, &info), SG_OK);
	CHECK(info.domains != NULL && info.domains[0] == NULL);
	CHECK(info.emails != NULL && info.emails[0] == NULL);
	sg_cert_info_clear(&info);
	sg_certs_free(c);
	sg_key_free(k);
	sg_ctx_free(ctx);
}

static void
wrapped_key_opens_only_as_wrapped(void)
{
	struct sg_ctx *ctx = NULL;
	unsigned char master[32], other[32];
	unsigned char *blob = NULL;
	size_t len = 0;
	struct sg_key *k, *back = NULL;
	struct sg_certs *c = NULL;

	sg_ctx_new(&ctx);
	k = make(ctx, "K", SG_KEY_RSA2048, 0, NULL, NULL, NULL);
	CHECK_EQ(sg_random_bytes(master, sizeof(master)), SG_OK);
	memcpy(other, master, sizeof(other));
	other[0] ^= 1;
	CHECK_EQ(sg_key_wrap(ctx, k, master, "org:k", &blob, &len), SG_OK);
	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	CHECK_EQ(sg_key_unwrap(ctx, blob, len, master, "org:k", c, &back),
	         SG_OK);
	CHECK(back != NULL && sg_key_has_cert(back) &&
	      sg_key_matches(back, c, 0));
	sg_key_free(back);
	back = NULL;
	CHECK_EQ(sg_key_unwrap(ctx, blob, len, other, "org:k", c, &back),
	         SG_ERR_DECRYPT);
	CHECK_EQ(sg_key_unwrap(ctx, blob, len, master, "org:x", c, &back),
	         SG_ERR_DECRYPT);
	blob[len / 2] ^= 0x40;
	CHECK_EQ(sg_key_unwrap(ctx, blob, len, master, "org:k", c, &back),
	         SG_ERR_DECRYPT);
	CHECK_EQ(sg_key_unwrap(ctx, blob, 10, master, "org:k", c, &back),
	         SG_ERR_DECRYPT);
	CHECK(back == NULL);
	free(blob);
	sg_certs_free(c);
	sg_key_free(k);
	sg_ctx_free(ctx);
}

static void
csr_makes_a_pending_key(void)
{
	static const char *const mails[] = {"new@example.com", NULL};
	struct sg_cert_req req = {.cn = "New",
	                          .country = "JP",
	                          .days = 1,
	                          .key = SG_KEY_EC_P384,
	                          .san_emails = mails};
	struct sg_ctx *ctx = NULL;
	struct sg_key *k = NULL;
	char *pem = NULL;

	sg_ctx_new(&ctx);
	CHECK_EQ(sg_csr_create(ctx, &req, &k, &pem), SG_OK);
	CHECK(k != NULL && !sg_key_has_cert(k));
	CHECK(pem != NULL &&
	      strncmp(pem, "-----BEGIN CERTIFICATE REQUEST-----", 35) == 0);
	free(pem);
	pem = NULL;
	/* A second request for the same key keeps the key. */
	struct sg_key *same = k;
	CHECK_EQ(sg_csr_create(ctx, &req, &k, &pem), SG_OK);
	CHECK(k == same);
	free(pem);
	/* A key without a certificate cannot sign. */
	struct sg_msg *m = NULL;
	struct sg_buf out;
	struct sg_sink sink = {buf_write, &out};
	struct sg_sign_opts so = {.signer = k};
	sg_buf_init(&out);
	CHECK_EQ(sg_msg_open_mem(ctx, "From: a@b\n\nx\n", 13, &m), SG_OK);
	CHECK_EQ(sg_sign(ctx, m, &so, &sink), SG_ERR_USAGE);
	sg_msg_free(m);
	sg_buf_clear(&out);
	/* Bad requests. */
	req.country = "JPN";
	struct sg_key *none = NULL;
	CHECK_EQ(sg_csr_create(ctx, &req, &none, &pem), SG_ERR_USAGE);
	CHECK(none == NULL);
	sg_key_free(k);
	sg_ctx_free(ctx);
}

static void
p12_round_trip(void)
{
	struct sg_ctx *ctx = NULL;
	char path[] = "/tmp/t_keys_p12_XXXXXX";
	struct sg_key *k, *back = NULL;
	struct sg_certs *c = NULL;

	sg_ctx_new(&ctx);
	k = make(ctx, "P", SG_KEY_RSA2048, 0, NULL, NULL, NULL);
	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	for (int legacy = 0; legacy <= 1; legacy++) {
		int fd = mkstemp(path);
		struct sg_sink sink;
		sg_sink_fd(&sink, &fd);
		CHECK(fd != -1);
		CHECK_EQ(sg_key_write_p12(ctx, k, "s3cret", legacy, &sink),
		         SG_OK);
		close(fd);
		CHECK_EQ(sg_key_load_p12(ctx, path, "s3cret", &back), SG_OK);
		CHECK(back != NULL && sg_key_matches(back, c, 0));
		sg_key_free(back);
		back = NULL;
		CHECK_EQ(
		    sg_key_load_p12(ctx, path, "wrong", &back), /* the MAC */
		    SG_ERR_DECRYPT);
		unlink(path);
		memcpy(path + strlen(path) - 6, "XXXXXX", 6);
	}
	sg_certs_free(c);
	sg_key_free(k);
	sg_ctx_free(ctx);
}

static void
lists_recipients(void)
{
	struct sg_ctx *ctx = NULL;
	struct sg_key *b, *e;
	struct sg_certs *rc = NULL, *bc = NULL;
	struct sg_msg *m = NULL, *enc = NULL;
	struct sg_buf out;
	struct sg_sink sink = {buf_write, &out};
	struct sg_recipient_id *ids = NULL;
	struct sg_cert_info bi;
	size_t n = 0;

	sg_ctx_new(&ctx);
	sg_buf_init(&out);
	b = make(ctx, "B", SG_KEY_RSA2048, 0, NULL, NULL, NULL);
	e = make(ctx, "E", SG_KEY_EC_P256, 0, NULL, NULL, NULL);
	sg_certs_new(&rc);
	sg_key_get_certs(b, &bc);
	sg_certs_push_from(rc, bc, 0);
	struct sg_certs *ec = NULL;
	sg_key_get_certs(e, &ec);
	sg_certs_push_from(rc, ec, 0);
	struct sg_encrypt_opts eo = {.recipients = rc};
	CHECK_EQ(sg_msg_open_mem(ctx, "From: a@b\n\nx\n", 13, &m), SG_OK);
	CHECK_EQ(sg_encrypt(ctx, m, &eo, &sink), SG_OK);
	CHECK_EQ(sg_msg_open_mem(ctx, out.data, out.len, &enc), SG_OK);
	CHECK_EQ(sg_msg_recipients(ctx, enc, &ids, &n), SG_OK);
	CHECK_EQ(n, 2);
	CHECK_EQ(sg_certs_info(bc, 0, &bi), SG_OK);
	CHECK(n >= 1 && ids[0].issuer && strcmp(ids[0].issuer, bi.issuer) == 0);
	CHECK(n >= 1 && ids[0].serial && strcmp(ids[0].serial, bi.serial) == 0);
	CHECK(n >= 2 && ids[1].serial != NULL); /* the ECDH recipient */
	sg_cert_info_clear(&bi);
	sg_recipient_ids_free(ids, n);
	/* Not encrypted: not S/MIME. */
	CHECK_EQ(sg_msg_recipients(ctx, m, &ids, &n), SG_ERR_NOT_SMIME);
	sg_msg_free(m);
	sg_msg_free(enc);
	sg_buf_clear(&out);
	sg_certs_free(rc);
	sg_certs_free(bc);
	sg_certs_free(ec);
	sg_key_free(b);
	sg_key_free(e);
	sg_ctx_free(ctx);
}

static const struct unit_case cases[] = {
    {"info_reports_names_and_fitness", info_reports_names_and_fitness},
    {"names_with_nul_are_ignored", names_with_nul_are_ignored},
    {"wrapped_key_opens_only_as_wrapped", wrapped_key_opens_only_as_wrapped},
    {"csr_makes_a_pending_key", csr_makes_a_pending_key},
    {"p12_round_trip", p12_round_trip},
    {"lists_recipients", lists_recipients},
    {NULL, NULL},
};
const struct unit_suite suite_keys = {"keys", cases};
