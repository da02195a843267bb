/*
 * t_smime.c - the engine's operations end to end in memory, with time and
 * certificates injected: verdicts that must pass next to those that must
 * not.  (Interoperability with other implementations is proven in
 * tests/e2e, never here.)
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "lib/sg_int.h"

static const char plain[] = "From: Alice <alice@example.com>\r\n"
                            "To: bob@example.org\r\n"
                            "Subject: hello\r\n"
                            "\r\n"
                            "Hello, Bob.\r\n";

struct pki {
	struct sg_ctx *ctx;
	struct sg_key *ca, *other_ca, *alice, *bob, *carol_ec;
	struct sg_certs *trust;
};

static void
pki_init(struct pki *p)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const b[] = {"bob@example.org", NULL};
	static const char *const c[] = {"carol@example.com", NULL};
	struct sg_cert_req req = {.days = 30, .key = SG_KEY_RSA2048};

	memset(p, 0, sizeof(*p));
	sg_ctx_new(&p->ctx);
	req.ca = 1;
	req.cn = "Test CA";
	CHECK_EQ(sg_cert_create(p->ctx, &req, NULL, &p->ca), SG_OK);
	req.cn = "Other CA";
	CHECK_EQ(sg_cert_create(p->ctx, &req, NULL, &p->other_ca), SG_OK);
	req.ca = 0;
	req.cn = "Alice";
	req.san_emails = a;
	CHECK_EQ(sg_cert_create(p->ctx, &req, p->ca, &p->alice), SG_OK);
	req.cn = "Bob";
	req.san_emails = b;
	CHECK_EQ(sg_cert_create(p->ctx, &req, p->ca, &p->bob), SG_OK);
	req.cn = "Carol";
	req.san_emails = c;
	req.key = SG_KEY_EC_P256;
	CHECK_EQ(sg_cert_create(p->ctx, &req, p->ca, &p->carol_ec), SG_OK);
	sg_certs_new(&p->trust);
	X509_up_ref(p->ca->cert);
	sk_X509_push(p->trust->sk, p->ca->cert);
}

static void
pki_clear(struct pki *p)
{
	sg_key_free(p->ca);
	sg_key_free(p->other_ca);
	sg_key_free(p->alice);
	sg_key_free(p->bob);
	sg_key_free(p->carol_ec);
	sg_certs_free(p->trust);
	sg_ctx_free(p->ctx);
}

static int
buf_write(void *arg, const void *d, size_t n)
{
	return sg_buf_add(arg, d, n);
}

/* Runs sign on IN into OUT (a fresh buffer). */
static enum sg_status
do_sign(struct pki *p, const char *in, size_t len, const struct sg_sign_opts *o,
        struct sg_buf *out)
{
	struct sg_msg *m = NULL;
	struct sg_sink sink = {buf_write, out};
	enum sg_status st = sg_msg_open_mem(p->ctx, in, len, &m);

	sg_buf_init(out);
	sg_buf_add(out, "", 0);
	if (st == SG_OK)
		st = sg_sign(p->ctx, m, o, &sink);
	sg_msg_free(m);
	return st;
}

static enum sg_status
do_verify(struct pki *p, const struct sg_buf *in, struct sg_verify_result *r,
          const struct sg_certs *trust)
{
	struct sg_msg *m = NULL;
	enum sg_status st = sg_msg_open_mem(p->ctx, in->data, in->len, &m);

	memset(r, 0, sizeof(*r));
	if (st == SG_OK)
		st = sg_verify(p->ctx, m, trust, r, NULL);
	sg_msg_free(m);
	return st;
}

static void
sign_verify_verdicts(void)
{
	struct pki p;
	struct sg_buf s;
	struct sg_verify_result r;
	struct sg_certs *other;

	pki_init(&p);
	for (int opaque = 0; opaque <= 1; opaque++) {
		struct sg_sign_opts o = {.signer = p.alice,
		                         .digest = SG_DIGEST_SHA384,
		                         .opaque = opaque};
		CHECK_EQ(do_sign(&p, plain, strlen(plain), &o, &s), SG_OK);
		/* Good now. */
		CHECK_EQ(do_verify(&p, &s, &r, p.trust), SG_OK);
		CHECK(r.signature_ok && r.chain_ok && r.from_match);
		CHECK_STR(r.digest, "sha384");
		CHECK(!r.weak);
		sg_verify_result_clear(&r);
		/* Expired 60 days from now. */
		sg_ctx_set_time(p.ctx, time(NULL) + 60 * 86400);
		CHECK_EQ(do_verify(&p, &s, &r, p.trust), SG_ERR_EXPIRED);
		CHECK(r.signature_ok && !r.chain_ok);
		sg_verify_result_clear(&r);
		sg_ctx_set_time(p.ctx, 0);
		/* Untrusted with another anchor. */
		sg_certs_new(&other);
		X509_up_ref(p.other_ca->cert);
		sk_X509_push(other->sk, p.other_ca->cert);
		CHECK_EQ(do_verify(&p, &s, &r, other), SG_ERR_UNTRUSTED);
		sg_verify_result_clear(&r);
		sg_certs_free(other);
		sg_buf_clear(&s);
	}
	pki_clear(&p);
}

static void
tampered_content_is_a_bad_signature(void)
{
	struct pki p;
	struct sg_buf s;
	struct sg_verify_result r;
	struct sg_sign_opts o = {0};
	char *hit;

	pki_init(&p);
	o.signer = p.alice;
	CHECK_EQ(do_sign(&p, plain, strlen(plain), &o, &s), SG_OK);
	hit = strstr(s.data, "Hello, Bob.");
	CHECK(hit != NULL);
	if (hit != NULL)
		hit[0] = 'J';
	CHECK_EQ(do_verify(&p, &s, &r, p.trust), SG_ERR_BAD_SIGNATURE);
	CHECK(!r.signature_ok);
	sg_verify_result_clear(&r);
	sg_buf_clear(&s);
	pki_clear(&p);
}

static void
signer_must_be_fit(void)
{
	struct pki p;
	struct sg_buf s;
	struct sg_sign_opts o = {0};

	pki_init(&p);
	o.signer = p.alice;
	sg_ctx_set_time(p.ctx, time(NULL) + 90 * 86400);
	CHECK_EQ(do_sign(&p, plain, strlen(plain), &o, &s), SG_ERR_EXPIRED);
	sg_buf_clear(&s);
	sg_ctx_set_time(p.ctx, 0);
	o.signer = p.ca; /* a CA certificate: no digitalSignature */
	CHECK_EQ(do_sign(&p, plain, strlen(plain), &o, &s), SG_ERR_KEY_USAGE);
	sg_buf_clear(&s);
	pki_clear(&p);
}

static enum sg_status
roundtrip(struct pki *p, enum sg_cipher c, int oaep, X509 *to,
          const struct sg_key *with, struct sg_buf *plain_out)
{
	struct sg_certs *rc = NULL;
	struct sg_msg *m = NULL, *e = NULL;
	struct sg_buf enc;
	struct sg_sink es = {buf_write, &enc}, ps = {buf_write, plain_out};
	struct sg_encrypt_opts o = {.cipher = c, .oaep = oaep};
	enum sg_status st;

	sg_buf_init(&enc);
	sg_buf_add(&enc, "", 0);
	sg_certs_new(&rc);
	X509_up_ref(to);
	sk_X509_push(rc->sk, to);
	o.recipients = rc;
	st = sg_msg_open_mem(p->ctx, plain, strlen(plain), &m);
	if (st == SG_OK)
		st = sg_encrypt(p->ctx, m, &o, &es);
	if (st == SG_OK)
		st = sg_msg_open_mem(p->ctx, enc.data, enc.len, &e);
	if (st == SG_OK)
		st = sg_decrypt(p->ctx, e, with, &ps);
	sg_msg_free(m);
	sg_msg_free(e);
	sg_certs_free(rc);
	sg_buf_clear(&enc);
	return st;
}

static void
encrypt_decrypt_every_cipher(void)
{
	static const enum sg_cipher ciphers[] = {
	    SG_CIPHER_AES256_CBC, SG_CIPHER_AES128_CBC, SG_CIPHER_AES128_GCM,
	    SG_CIPHER_AES256_GCM};
	struct pki p;

	pki_init(&p);
	for (size_t i = 0; i < 4; i++)
		for (int oaep = 0; oaep <= 1; oaep++) {
			struct sg_buf out;
			sg_buf_init(&out);
			sg_buf_add(&out, "", 0);
			CHECK_EQ(roundtrip(&p, ciphers[i], oaep, p.bob->cert,
			                   p.bob, &out),
			         SG_OK);
			CHECK(strstr(out.data, "\r\n\r\nHello, Bob.\r\n") !=
			      NULL);
			CHECK(strstr(out.data, "Subject: hello") != NULL);
			sg_buf_clear(&out);
		}
	struct sg_buf out;
	sg_buf_init(&out);
	sg_buf_add(&out, "", 0);
	CHECK_EQ(roundtrip(&p, SG_CIPHER_AES256_CBC, 0, p.carol_ec->cert,
	                   p.carol_ec, &out),
	         SG_OK);
	CHECK(strstr(out.data, "Hello, Bob.") != NULL);
	sg_buf_clear(&out);
	pki_clear(&p);
}

static void
decrypt_refuses_what_is_not_ours(void)
{
	struct pki p;
	struct sg_buf out;

	pki_init(&p);
	sg_buf_init(&out);
	sg_buf_add(&out, "", 0);
	CHECK_EQ(
	    roundtrip(&p, SG_CIPHER_AES256_CBC, 0, p.bob->cert, p.alice, &out),
	    SG_ERR_NOT_RECIPIENT);
	CHECK_EQ(out.len, 0);
	/* Encrypting to a CA certificate is refused before anything. */
	CHECK_EQ(roundtrip(&p, SG_CIPHER_AES256_CBC, 0, p.ca->cert, p.ca, &out),
	         SG_ERR_KEY_USAGE);
	sg_buf_clear(&out);
	pki_clear(&p);
}

static const struct unit_case cases[] = {
    {"sign_verify_verdicts", sign_verify_verdicts},
    {"tampered_content_is_a_bad_signature",
     tampered_content_is_a_bad_signature},
    {"signer_must_be_fit", signer_must_be_fit},
    {"encrypt_decrypt_every_cipher", encrypt_decrypt_every_cipher},
    {"decrypt_refuses_what_is_not_ours", decrypt_refuses_what_is_not_ours},
    {NULL, NULL},
};
const struct unit_suite suite_smime = {"smime", cases};
