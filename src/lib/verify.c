/*
 * verify.c - checking a signed message: content digest and signature,
 * then the signer's chain to the trust anchors at the handle's time, its
 * purpose, the From address, and weak algorithms.  Each finding is kept
 * separately in struct sg_verify_result; the verdict is SG_OK only when
 * the signature checks and the chain is trusted.
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

void
sg_verify_result_clear(struct sg_verify_result *res)
{
	if (res == NULL)
		return;
	free(res->signer_subject);
	free(res->signer_issuer);
	free(res->signer_serial);
	sg_strv_free(res->signer_emails);
	free(res->digest);
	free(res->signature_alg);
	free(res->chain_error);
	free(res->from_address);
	free(res->weak_reason);
	free(res->revocation_reason);
	sg_certs_free(res->certs);
	memset(res, 0, sizeof(*res));
}

static char *
lower_sn(const ASN1_OBJECT *obj)
{
	int nid = OBJ_obj2nid(obj);
	const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : "unknown";
	char *s = strdup(sn);

	for (char *c = s; c && *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return s;
}

/* Reads the CMS of a signed message and sets up the content source. */
static enum sg_status
open_signed(struct sg_msg *msg, struct sg_verify_result *res,
            CMS_ContentInfo **cms, struct sg_source *src, struct sg_source *raw)
{
	size_t c_off, c_len, s_off, s_len;
	int b64;
	enum sg_status st;

	if ((st = sg_mime_kind(msg, &res->kind)) != SG_OK)
		return st;
	switch (res->kind) {
	case SG_KIND_SIGNED_DETACHED:
		if ((st = sg_mime_split_signed(msg, &c_off, &c_len, &s_off,
		                               &s_len, &b64)) != SG_OK)
			return st;
		if ((st = sg_mime_read_cms(msg, s_off, s_len, b64, cms)) !=
		    SG_OK)
			return st;
		if (sg_source_add_file(src, msg->fd, msg->base + (off_t)c_off,
		                       c_len, 1) == -1 ||
		    sg_source_add_file(raw, msg->fd, msg->base + (off_t)c_off,
		                       c_len, 0) == -1)
			return sg_fail_plain(msg->ctx, SG_ERR_NOMEM,
			                     "out of memory");
		break;
	case SG_KIND_SIGNED_OPAQUE:
	case SG_KIND_ENVELOPED: /* pkcs7-mime without smime-type */
		b64 = 0;
		char *cte = sg_msg_header(msg, "Content-Transfer-Encoding");
		b64 = cte != NULL && strcasecmp(cte, "base64") == 0;
		free(cte);
		if ((st = sg_mime_read_cms(msg, msg->body_off,
		                           msg->size - msg->body_off, b64,
		                           cms)) != SG_OK)
			return st;
		res->kind = SG_KIND_SIGNED_OPAQUE;
		break;
	case SG_KIND_AUTH_ENVELOPED:
	case SG_KIND_NONE:
	default:
		return sg_fail_plain(msg->ctx, SG_ERR_NOT_SMIME,
		                     "the message is not signed (no "
		                     "multipart/signed or signed-data)");
	}
	if (OBJ_obj2nid(CMS_get0_type(*cms)) != NID_pkcs7_signed) {
		CMS_ContentInfo_free(*cms);
		*cms = NULL;
		return sg_fail_plain(msg->ctx, SG_ERR_NOT_SMIME,
		                     "the message is encrypted, not signed: "
		                     "decrypt it first");
	}
	if (res->kind == SG_KIND_SIGNED_OPAQUE) {
		ASN1_OCTET_STRING **pos = CMS_get0_content(*cms);
		if (pos == NULL || *pos == NULL) {
			CMS_ContentInfo_free(*cms);
			*cms = NULL;
			return sg_fail_plain(msg->ctx, SG_ERR_CMS,
			                     "signed-data without content");
		}
	}
	return SG_OK;
}

/* Maps an X509 verification error to our verdicts. */
static enum sg_status
chain_status(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return SG_ERR_EXPIRED;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
		return SG_ERR_KEY_USAGE;
	default:
		return SG_ERR_UNTRUSTED;
	}
}

/*
 * Revocation of the trusted chain CHAIN (the signer first, the anchor
 * last): each certificate but the anchor, its issuer being the next one.
 * The worst status wins (revoked, then unknown); its reason is kept.
 */
static enum sg_status
check_revocation(struct sg_ctx *ctx, STACK_OF(X509) * chain,
                 const struct sg_certs *trust, struct sg_verify_result *res)
{
	struct sg_certs c = {chain};
	enum sg_revocation_status worst = SG_REV_GOOD, s;
	char why[400], worst_why[512] = "the signer is a trust anchor";
	int n = sk_X509_num(chain);
	enum sg_status st;

	/* A signer that is itself a trust anchor is not checked: the
	 * administrator trusts that certificate as it is. */
	for (int i = 0; i < n - 1; i++) {
		why[0] = '\0';
		if ((st = sg_revocation_check(ctx->revocation, ctx, &c,
		                              (size_t)i, trust, &s, why,
		                              sizeof(why))) != SG_OK)
			return sg_fail_plain(ctx, st, "revocation check: %s",
			                     sg_status_text(st));
		if (s == SG_REV_REVOKED ||
		    (s == SG_REV_UNKNOWN && worst == SG_REV_GOOD) ||
		    (i == 0 && worst == SG_REV_GOOD)) {
			worst = s;
			res->revocation_final =
			    s == SG_REV_UNKNOWN &&
			    !sg_revocation_has_source(ctx->revocation, &c,
			                              (size_t)i);
			snprintf(worst_why, sizeof(worst_why), "%s%s", why,
			         i > 0 ? " (an intermediate of the chain)"
			               : "");
		}
		if (s == SG_REV_REVOKED)
			break;
	}
	if (res->revocation_final)
		snprintf(worst_why + strlen(worst_why),
		         sizeof(worst_why) - strlen(worst_why), "%s",
		         " (it names no OCSP responder or CRL distribution "
		         "point, and no CRL file is configured)");
	res->revocation_checked = 1;
	res->revocation = worst;
	res->revocation_reason = strdup(worst_why);
	if (worst == SG_REV_REVOKED)
		return sg_fail_plain(
		    ctx, SG_ERR_REVOKED, "signer %s: %s",
		    res->signer_subject ? res->signer_subject : "?", worst_why);
	if (worst == SG_REV_UNKNOWN && ctx->revocation_hard_fail)
		return sg_fail_plain(
		    ctx, SG_ERR_REVOCATION_UNKNOWN,
		    "signer %s: revocation status unknown "
		    "(hard-fail): %s",
		    res->signer_subject ? res->signer_subject : "?", worst_why);
	return SG_OK;
}

static enum sg_status
check_chain(struct sg_ctx *ctx, CMS_ContentInfo *cms, X509 *signer,
            const struct sg_certs *trust, struct sg_verify_result *res)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = CMS_get1_certs(cms);
	X509_VERIFY_PARAM *param;
	enum sg_status st = SG_OK;
	int err;

	if (store == NULL || sctx == NULL) {
		st = sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; trust && i < sk_X509_num(trust->sk); i++)
		X509_STORE_add_cert(store, sk_X509_value(trust->sk, i));
	ERR_clear_error();
	if (!X509_STORE_CTX_init(sctx, store, signer, untrusted) ||
	    !X509_STORE_CTX_set_default(sctx, "smime_sign")) {
		st = sg_fail(ctx, SG_ERR_INTERNAL,
		             "cannot set up the chain "
		             "check");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(sctx);
	X509_VERIFY_PARAM_set_time(param, sg_ctx_now(ctx));
	/* A trusted intermediate is an anchor of its own. */
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_verify_cert(sctx) == 1) {
		res->chain_ok = 1;
		if (ctx->revocation != NULL) {
			STACK_OF(X509) *chain = X509_STORE_CTX_get1_chain(sctx);

			st = chain == NULL
			         ? sg_fail(ctx, SG_ERR_NOMEM, "out of memory")
			         : check_revocation(ctx, chain, trust, res);
			sk_X509_pop_free(chain, X509_free);
		}
		goto out;
	}
	err = X509_STORE_CTX_get_error(sctx);
	st = chain_status(err);
	res->chain_error = strdup(X509_verify_cert_error_string(err));
	sg_fail_plain(ctx, st, "signer %s: %s",
	              res->signer_subject ? res->signer_subject : "?",
	              X509_verify_cert_error_string(err));
out:
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return st;
}

/* Fills in what the first SignerInfo says about itself. */
static void
describe_signer(struct sg_ctx *ctx, CMS_ContentInfo *cms, X509 *signer,
                struct sg_msg *msg, struct sg_verify_result *res)
{
	CMS_SignerInfo *si =
	    sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	X509_ALGOR *dig = NULL, *sig = NULL;
	int idx, bits;

	if (signer != NULL) {
		res->signer_subject =
		    sg_name_oneline(X509_get_subject_name(signer));
		res->signer_issuer =
		    sg_name_oneline(X509_get_issuer_name(signer));
		res->signer_serial =
		    sg_serial_hex(X509_get0_serialNumber(signer));
		res->signer_emails = sg_cert_emails(signer);
		bits = EVP_PKEY_get_bits(X509_get0_pubkey(signer));
		if (EVP_PKEY_get_base_id(X509_get0_pubkey(signer)) ==
		        EVP_PKEY_RSA &&
		    bits < 2048) {
			res->weak = 1;
			res->weak_reason = strdup("RSA key shorter than 2048 "
			                          "bits");
		}
	}
	if (si != NULL) {
		CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
		if (dig != NULL)
			res->digest = lower_sn(dig->algorithm);
		if (sig != NULL)
			res->signature_alg = lower_sn(sig->algorithm);
		idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
		if (idx >= 0) {
			X509_ATTRIBUTE *a = CMS_signed_get_attr(si, idx);
			ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(a, 0);
			struct tm tm;
			if (t != NULL &&
			    (t->type == V_ASN1_UTCTIME ||
			     t->type == V_ASN1_GENERALIZEDTIME) &&
			    ASN1_TIME_to_tm((ASN1_TIME *)t->value.asn1_string,
			                    &tm) == 1)
				res->signing_time = timegm(&tm);
		}
	}
	if (res->digest != NULL && (strcmp(res->digest, "sha1") == 0 ||
	                            strcmp(res->digest, "md5") == 0)) {
		free(res->weak_reason);
		res->weak = 1;
		res->weak_reason =
		    strdup(strcmp(res->digest, "sha1") == 0 ? "SHA-1 digest"
		                                            : "MD5 digest");
	}
	res->from_address = sg_mime_from_address(msg);
	for (char **e = res->signer_emails; res->from_address && e && *e; e++)
		/* Reported, not enforced: compared as mail clients do. */
		if (strcasecmp(*e, res->from_address) == 0)
			res->from_match = 1;
	ERR_clear_error();
	(void)ctx;
}

/* Checks digest and signatures only; 1 good, 0 bad, -1 for another
 * reason (recorded on CTX). */
static int
check_signature(struct sg_ctx *ctx, CMS_ContentInfo *cms, BIO *data)
{
	unsigned long e;
	int lib, reason;

	if (CMS_verify(cms, NULL, NULL, data, NULL,
	               CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) == 1)
		return 1;
	e = ERR_peek_last_error();
	lib = ERR_GET_LIB(e);
	reason = ERR_GET_REASON(e);
	if (lib == ERR_LIB_CMS && (reason == CMS_R_CONTENT_VERIFY_ERROR ||
	                           reason == CMS_R_VERIFICATION_FAILURE))
		return 0;
	if (lib == ERR_LIB_CMS &&
	    reason == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND) {
		sg_fail_plain(ctx, SG_ERR_UNTRUSTED,
		              "the signer's certificate is not in the "
		              "message");
		return -1;
	}
	if (lib == ERR_LIB_CMS && reason == CMS_R_NO_SIGNERS) {
		sg_fail_plain(ctx, SG_ERR_CMS, "signed-data with no signer");
		return -1;
	}
	/* Anything else from the public key layer is a bad signature. */
	if (lib == ERR_LIB_RSA || lib == ERR_LIB_EVP || lib == ERR_LIB_EC ||
	    lib == ERR_LIB_PROV)
		return 0;
	sg_fail(ctx, SG_ERR_CMS, "cannot check the signature");
	return -1;
}

static enum sg_status
write_content(struct sg_msg *msg, CMS_ContentInfo *cms, struct sg_source *src,
              struct sg_sink *sink)
{
	BIO *out = sg_sink_bio(sink, !msg->crlf), *in = NULL;
	int ok;

	if (out == NULL)
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	ok = sg_emit_outer_headers(msg, out) == 0;
	if (ok && cms != NULL) {
		ASN1_OCTET_STRING *os = *CMS_get0_content(cms);
		ok =
		    BIO_write(out, ASN1_STRING_get0_data(os),
		              ASN1_STRING_length(os)) == ASN1_STRING_length(os);
	} else if (ok) {
		ok = (in = sg_source_bio(src)) != NULL &&
		     sg_bio_copy(in, out) == 0;
	}
	ok = ok && BIO_flush(out) == 1;
	BIO_free(in);
	BIO_free(out);
	return ok ? SG_OK
	          : sg_fail_plain(msg->ctx, SG_ERR_IO,
	                          "cannot write the output");
}

/* The signer's certificate, then the others of the SignedData, for the
 * caller (harvesting).  Nothing kept when memory is short. */
static void
keep_certs(CMS_ContentInfo *cms, X509 *signer, struct sg_verify_result *res)
{
	STACK_OF(X509) * all;
	struct sg_certs *c = NULL;

	if (signer == NULL || sg_certs_new(&c) != SG_OK)
		return;
	if (!X509_up_ref(signer)) {
		sg_certs_free(c);
		return;
	}
	if (!sk_X509_push(c->sk, signer)) {
		X509_free(signer);
		sg_certs_free(c);
		return;
	}
	all = CMS_get1_certs(cms);
	for (int i = 0; i < sk_X509_num(all); i++) {
		X509 *x = sk_X509_value(all, i);

		if (X509_cmp(x, signer) == 0 || !X509_up_ref(x))
			continue;
		if (!sk_X509_push(c->sk, x))
			X509_free(x);
	}
	sk_X509_pop_free(all, X509_free);
	res->certs = c;
}

enum sg_status
sg_verify(struct sg_ctx *ctx, struct sg_msg *msg, const struct sg_certs *trust,
          struct sg_verify_result *res, struct sg_sink *sink)
{
	struct sg_source *src = sg_source_new(), *raw = sg_source_new();
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *signers = NULL;
	X509 *signer = NULL;
	BIO *data = NULL;
	enum sg_status st;
	int good;

	sg_reset(ctx);
	memset(res, 0, sizeof(*res));
	if (src == NULL || raw == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((st = open_signed(msg, res, &cms, src, raw)) != SG_OK)
		goto out;
	if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) <= 0) {
		st = sg_fail_plain(ctx, SG_ERR_CMS,
		                   "signed-data with no signer");
		goto out;
	}
	if (res->kind == SG_KIND_SIGNED_DETACHED &&
	    (data = sg_source_bio(src)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	good = check_signature(ctx, cms, data);
	if (good == 0 && res->kind == SG_KIND_SIGNED_DETACHED) {
		/* Some signers hash their local line ends, not CRLF. */
		BIO_free(data);
		if ((data = sg_source_bio(raw)) != NULL &&
		    check_signature(ctx, cms, data) == 1)
			good = 1;
	}
	if (good == -1) {
		st = ctx->last;
		goto out;
	}
	res->signature_ok = good;
	signers = CMS_get0_signers(cms);
	signer = sk_X509_num(signers) > 0 ? sk_X509_value(signers, 0) : NULL;
	describe_signer(ctx, cms, signer, msg, res);
	keep_certs(cms, signer, res);
	if (!good) {
		st = sg_fail_plain(ctx, SG_ERR_BAD_SIGNATURE,
		                   "the signature does not match the content "
		                   "(altered in transit?)");
	} else if (signer == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_UNTRUSTED,
		                   "the signer's certificate is not in the "
		                   "message");
	} else {
		st = check_chain(ctx, cms, signer, trust, res);
	}
	res->status = st;
	if (sink != NULL) {
		enum sg_status wst = write_content(
		    msg, res->kind == SG_KIND_SIGNED_OPAQUE ? cms : NULL, src,
		    sink);
		if (wst != SG_OK)
			st = wst;
		else if (st != SG_OK)
			ctx->last = st; /* keep the verdict's reason */
	}
out:
	sk_X509_free(signers);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
	sg_source_free(src);
	sg_source_free(raw);
	if (st != SG_OK && res->status == SG_OK)
		res->status = st;
	return st;
}
