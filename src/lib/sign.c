/*
 * sign.c - producing S/MIME: signing (detached or opaque) and encryption
 * (EnvelopedData or AuthEnvelopedData), streaming.
 *
 * The protected entity comes from sg_mime_inner_entity() as a source read
 * once: a detached signature tees it to the output while hashing it;
 * opaque signing and encryption stream it through CMS.  Nothing holds the
 * message in memory.
 */
#include "lib/sg_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

static const struct {
	const char *name; /* OpenSSL digest name */
	const char *micalg;
} digests[] = {
    [SG_DIGEST_SHA256] = {"SHA256", "sha-256"},
    [SG_DIGEST_SHA384] = {"SHA384", "sha-384"},
    [SG_DIGEST_SHA512] = {"SHA512", "sha-512"},
};

static const char *ciphers[] = {
    [SG_CIPHER_AES256_CBC] = "AES-256-CBC",
    [SG_CIPHER_AES128_CBC] = "AES-128-CBC",
    [SG_CIPHER_AES128_GCM] = "AES-128-GCM",
    [SG_CIPHER_AES256_GCM] = "AES-256-GCM",
};

/* SMIMECapabilities, in order of preference (RFC 8551 section 2.5.2). */
static const int capabilities[] = {
    NID_aes_256_gcm, NID_aes_128_gcm, NID_aes_256_cbc, NID_aes_128_cbc,
    NID_sha512,      NID_sha384,      NID_sha256,
};

/* What producing one message holds: the protected entity as a rewindable
 * source (and the spool behind it, if re-encoded), and the output. */
struct produce {
	struct sg_source *src;
	int spool;
	BIO *data; /* reads the entity */
	BIO *out;  /* writes the result, in the input's line ends */
};

static void
produce_close(struct produce *p)
{
	BIO_free(p->data);
	BIO_free(p->out);
	sg_source_free(p->src);
	if (p->spool != -1)
		close(p->spool);
	memset(p, 0, sizeof(*p));
	p->spool = -1;
}

static enum sg_status
produce_open(struct sg_msg *msg, struct sg_sink *sink, struct produce *p)
{
	enum sg_status st;

	memset(p, 0, sizeof(*p));
	p->spool = -1;
	if ((p->src = sg_source_new()) == NULL)
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	if ((st = sg_mime_inner_entity(msg, p->src, &p->spool)) != SG_OK) {
		produce_close(p);
		return st;
	}
	if ((p->data = sg_source_bio(p->src)) == NULL ||
	    (p->out = sg_sink_bio(sink, !msg->crlf)) == NULL) {
		produce_close(p);
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	}
	return SG_OK;
}

static int
add_capabilities(CMS_SignerInfo *si)
{
	STACK_OF(X509_ALGOR) *caps = sk_X509_ALGOR_new_null();
	int ok = caps != NULL;

	for (size_t i = 0;
	     ok && i < sizeof(capabilities) / sizeof(*capabilities); i++)
		ok = PKCS7_simple_smimecap(caps, capabilities[i], -1);
	ok = ok && CMS_add_smimecap(si, caps);
	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return ok;
}

static int
add_signing_time(struct sg_ctx *ctx, CMS_SignerInfo *si)
{
	/* UTCTime through 2049, GeneralizedTime after (RFC 5652 11.3). */
	ASN1_TIME *t = ASN1_TIME_set(NULL, sg_ctx_now(ctx));
	int ok = t != NULL && CMS_signed_add1_attr_by_NID(
	                          si, NID_pkcs9_signingTime, t->type, t, -1);
	ASN1_TIME_free(t);
	return ok;
}

/* Adds the certificates of CHAIN that are not self-signed roots. */
static int
add_chain(CMS_ContentInfo *cms, const struct sg_certs *chain)
{
	for (int i = 0; chain && i < sk_X509_num(chain->sk); i++) {
		X509 *x = sk_X509_value(chain->sk, i);
		if (X509_get_extension_flags(x) & EXFLAG_SS)
			continue;
		if (!CMS_add1_cert(cms, x))
			ERR_clear_error(); /* already present */
	}
	return 1;
}

static int
write_signed_headers(BIO *out, const char *micalg, const char *boundary)
{
	return BIO_printf(out,
	                  "Content-Type: multipart/signed;\r\n"
	                  "\tprotocol=\"application/pkcs7-signature\";\r\n"
	                  "\tmicalg=%s;\r\n"
	                  "\tboundary=\"%s\"\r\n"
	                  "\r\n"
	                  "This is a cryptographically signed message in MIME "
	                  "format.\r\n"
	                  "\r\n"
	                  "--%s\r\n",
	                  micalg, boundary, boundary) > 0;
}

static int
write_p7m_headers(BIO *out, const char *smime_type)
{
	return BIO_printf(out,
	                  "Content-Type: application/pkcs7-mime; "
	                  "smime-type=%s;\r\n"
	                  "\tname=\"smime.p7m\"\r\n"
	                  "Content-Transfer-Encoding: base64\r\n"
	                  "Content-Disposition: attachment; "
	                  "filename=\"smime.p7m\"\r\n"
	                  "\r\n",
	                  smime_type) > 0;
}

enum sg_status
sg_sign(struct sg_ctx *ctx, struct sg_msg *msg, const struct sg_sign_opts *opts,
        struct sg_sink *sink)
{
	struct produce p;
	CMS_ContentInfo *cms = NULL;
	CMS_SignerInfo *si;
	EVP_MD *md = NULL;
	char boundary[64];
	unsigned flags;
	enum sg_status st;

	sg_reset(ctx);
	if (opts == NULL || opts->signer == NULL ||
	    opts->signer->cert == NULL ||
	    (unsigned)opts->digest > SG_DIGEST_SHA512)
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "a signer and a known digest are needed");
	if ((st = sg_cert_check(ctx, opts->signer->cert, SG_PURPOSE_SIGN)) !=
	    SG_OK)
		return st;
	if ((st = produce_open(msg, sink, &p)) != SG_OK)
		return st;

	flags = CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP |
	        (opts->opaque ? CMS_STREAM : CMS_DETACHED);
	if ((md = EVP_MD_fetch(NULL, digests[opts->digest].name, NULL)) ==
	        NULL ||
	    (cms = CMS_sign(NULL, NULL, NULL, NULL, flags)) == NULL ||
	    (si = CMS_add1_signer(cms, opts->signer->cert, opts->signer->pkey,
	                          md, flags)) == NULL ||
	    !add_capabilities(si) || !add_signing_time(ctx, si) ||
	    !add_chain(cms, &opts->signer->chain) ||
	    !add_chain(cms, opts->chain)) {
		st = sg_fail(ctx, SG_ERR_INTERNAL,
		             "cannot create the signature");
		goto out;
	}
	if (sg_emit_outer_headers(msg, p.out) == -1)
		goto ioerr;
	if (opts->opaque) {
		if (!write_p7m_headers(p.out, "signed-data") ||
		    sg_emit_cms_base64(p.out, cms, p.data, flags) == -1)
			goto ioerr;
	} else {
		/* One pass: the entity is written as it is hashed, then the
		 * signature follows it.  Output is complete only on SG_OK. */
		sg_mime_boundary(boundary, sizeof(boundary));
		if (!write_signed_headers(p.out, digests[opts->digest].micalg,
		                          boundary))
			goto ioerr;
		sg_source_set_tee(p.data, p.out);
		if (!CMS_final(cms, p.data, NULL, flags)) {
			st = sg_fail(ctx, SG_ERR_INTERNAL, "signing failed");
			goto out;
		}
		sg_source_set_tee(p.data, NULL);
		if (BIO_printf(p.out,
		               "\r\n--%s\r\n"
		               "Content-Type: application/pkcs7-signature; "
		               "name=\"smime.p7s\"\r\n"
		               "Content-Transfer-Encoding: base64\r\n"
		               "Content-Disposition: attachment; "
		               "filename=\"smime.p7s\"\r\n"
		               "Content-Description: S/MIME Cryptographic "
		               "Signature\r\n"
		               "\r\n",
		               boundary) <= 0 ||
		    sg_emit_cms_base64(p.out, cms, NULL, 0) == -1 ||
		    BIO_printf(p.out, "--%s--\r\n", boundary) <= 0)
			goto ioerr;
	}
	if (BIO_flush(p.out) != 1)
		goto ioerr;
	st = SG_OK;
	goto out;
ioerr:
	st = sg_fail(ctx, SG_ERR_IO, "cannot write the output");
out:
	CMS_ContentInfo_free(cms);
	EVP_MD_free(md);
	produce_close(&p);
	return st;
}

/* Adds one recipient, with the key transport or agreement parameters. */
static enum sg_status
add_recipient(struct sg_ctx *ctx, CMS_ContentInfo *cms, X509 *x, int oaep)
{
	int ec = EVP_PKEY_get_base_id(X509_get0_pubkey(x)) == EVP_PKEY_EC;
	CMS_RecipientInfo *ri;
	EVP_PKEY_CTX *pctx;
	enum sg_status st;

	if ((st = sg_cert_check(ctx, x, SG_PURPOSE_ENCRYPT)) != SG_OK)
		return st;
	ri = CMS_add1_recipient_cert(cms, x, CMS_KEY_PARAM);
	if (ri == NULL)
		return sg_fail(ctx, SG_ERR_UNSUPPORTED,
		               "cannot encrypt to this recipient's key");
	pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	if (ec) {
		/* RFC 5753 / RFC 8551: SHA-256 X9.63 KDF, not SHA-1. */
		if (pctx == NULL ||
		    EVP_PKEY_CTX_ctrl_str(pctx, "ecdh_kdf_md", "sha256") <= 0)
			return sg_fail(ctx, SG_ERR_INTERNAL,
			               "cannot set the ECDH KDF");
	} else if (oaep) {
		if (pctx == NULL ||
		    EVP_PKEY_CTX_ctrl_str(pctx, "rsa_padding_mode", "oaep") <=
		        0 ||
		    EVP_PKEY_CTX_ctrl_str(pctx, "rsa_oaep_md", "sha256") <= 0 ||
		    EVP_PKEY_CTX_ctrl_str(pctx, "rsa_mgf1_md", "sha256") <= 0)
			return sg_fail(ctx, SG_ERR_INTERNAL,
			               "cannot set RSA-OAEP");
	}
	return SG_OK;
}

enum sg_status
sg_encrypt(struct sg_ctx *ctx, struct sg_msg *msg,
           const struct sg_encrypt_opts *opts, struct sg_sink *sink)
{
	struct produce p = {.spool = -1};
	CMS_ContentInfo *cms = NULL;
	EVP_CIPHER *cipher = NULL;
	unsigned flags = CMS_BINARY | CMS_PARTIAL | CMS_STREAM;
	const char *type;
	int n;
	enum sg_status st;

	sg_reset(ctx);
	n = opts && opts->recipients ? sk_X509_num(opts->recipients->sk) : 0;
	if (n <= 0 || (unsigned)opts->cipher > SG_CIPHER_AES256_GCM)
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "at least one recipient and a known "
		                     "cipher are needed");
	if ((unsigned)n > ctx->limits.max_recipients)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "more than %u recipients",
		                     ctx->limits.max_recipients);
	if ((cipher = EVP_CIPHER_fetch(NULL, ciphers[opts->cipher], NULL)) ==
	        NULL ||
	    (cms = CMS_encrypt(NULL, NULL, cipher, flags)) == NULL) {
		st = sg_fail(ctx, SG_ERR_INTERNAL, "cannot set up encryption");
		goto out;
	}
	/* Every recipient is checked before a byte is written. */
	for (int i = 0; i < n; i++)
		if ((st = add_recipient(ctx, cms,
		                        sk_X509_value(opts->recipients->sk, i),
		                        opts->oaep)) != SG_OK)
			goto out;
	if ((st = produce_open(msg, sink, &p)) != SG_OK)
		goto out;
	type =
	    OBJ_obj2nid(CMS_get0_type(cms)) == NID_id_smime_ct_authEnvelopedData
	        ? "authEnveloped-data"
	        : "enveloped-data";
	if (sg_emit_outer_headers(msg, p.out) == -1 ||
	    !write_p7m_headers(p.out, type) ||
	    sg_emit_cms_base64(p.out, cms, p.data, flags) == -1 ||
	    BIO_flush(p.out) != 1) {
		st = sg_fail(ctx, SG_ERR_IO, "cannot write the output");
		goto out;
	}
	st = SG_OK;
out:
	CMS_ContentInfo_free(cms);
	EVP_CIPHER_free(cipher);
	produce_close(&p);
	return st;
}
