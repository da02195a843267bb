/*
 * decrypt.c - opening EnvelopedData and AuthEnvelopedData.
 *
 * Our RecipientInfo is chosen by issuer+serial or subject key identifier
 * (also the SHA-1 hash of our public key, so that a renewed certificate
 * for the same key still opens old mail) before any decryption is tried:
 * with RSA PKCS#1 v1.5, decrypting someone else's RecipientInfo can
 * "succeed" with garbage.  The plaintext goes to a temporary file and is
 * released only after the whole content decrypted and, for GCM, the tag
 * checked.
 */
#include "lib/sg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Whether KTRI's subject key identifier names our key. */
static int
keyid_matches(CMS_RecipientInfo *ri, X509 *cert)
{
	ASN1_OCTET_STRING *keyid = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	if (CMS_RecipientInfo_ktri_get0_signer_id(ri, &keyid, NULL, NULL) !=
	        1 ||
	    keyid == NULL)
		return 0;
	if (X509_pubkey_digest(cert, EVP_sha1(), md, &mdlen) != 1)
		return 0;
	return (unsigned)ASN1_STRING_length(keyid) == mdlen &&
	       memcmp(ASN1_STRING_get0_data(keyid), md, mdlen) == 0;
}

/* Finds our RecipientInfo and decrypts the content-encryption key with
 * it. */
static enum sg_status
open_envelope(struct sg_ctx *ctx, CMS_ContentInfo *cms,
              const struct sg_key *key)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	int n = sk_CMS_RecipientInfo_num(ris), ok;
	char *who;

	if (n <= 0)
		return sg_fail_plain(ctx, SG_ERR_CMS,
		                     "the envelope has no recipients");
	if ((unsigned)n > ctx->limits.max_recipients)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "more than %u recipients",
		                     ctx->limits.max_recipients);
	for (int i = 0; i < n; i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		int type = CMS_RecipientInfo_type(ri);

		if (type == CMS_RECIPINFO_TRANS) {
			if (CMS_RecipientInfo_ktri_cert_cmp(ri, key->cert) !=
			        0 &&
			    !keyid_matches(ri, key->cert))
				continue;
			/* set0 takes a reference and drops it on reset. */
			if (!EVP_PKEY_up_ref(key->pkey))
				return sg_fail(ctx, SG_ERR_NOMEM,
				               "out of memory");
			CMS_RecipientInfo_set0_pkey(ri, key->pkey);
			ok = CMS_RecipientInfo_decrypt(cms, ri);
			CMS_RecipientInfo_set0_pkey(ri, NULL);
		} else if (type == CMS_RECIPINFO_AGREE) {
			STACK_OF(CMS_RecipientEncryptedKey) *reks =
			    CMS_RecipientInfo_kari_get0_reks(ri);
			CMS_RecipientEncryptedKey *rek = NULL;
			for (int j = 0;
			     j < sk_CMS_RecipientEncryptedKey_num(reks); j++) {
				CMS_RecipientEncryptedKey *r =
				    sk_CMS_RecipientEncryptedKey_value(reks, j);
				if (CMS_RecipientEncryptedKey_cert_cmp(
				        r, key->cert) == 0) {
					rek = r;
					break;
				}
			}
			if (rek == NULL)
				continue;
			CMS_RecipientInfo_kari_set0_pkey_and_peer(ri, key->pkey,
			                                          NULL);
			ok = CMS_RecipientInfo_kari_decrypt(cms, ri, rek);
			CMS_RecipientInfo_kari_set0_pkey(ri, NULL);
		} else {
			continue;
		}
		if (!ok)
			return sg_fail(ctx, SG_ERR_DECRYPT,
			               "our key cannot open its recipient "
			               "info");
		return SG_OK;
	}
	ERR_clear_error();
	who = sg_name_oneline(X509_get_subject_name(key->cert));
	sg_fail_plain(ctx, SG_ERR_NOT_RECIPIENT,
	              "the message is not encrypted to %s (%d recipient%s)",
	              who ? who : "our certificate", n, n == 1 ? "" : "s");
	free(who);
	return SG_ERR_NOT_RECIPIENT;
}

static enum sg_status
read_envelope(struct sg_msg *msg, CMS_ContentInfo **cms)
{
	enum sg_smime_kind kind;
	char *cte;
	int b64, nid;
	enum sg_status st;

	if ((st = sg_mime_kind(msg, &kind)) != SG_OK)
		return st;
	if (kind == SG_KIND_NONE || kind == SG_KIND_SIGNED_DETACHED)
		return sg_fail_plain(msg->ctx, SG_ERR_NOT_SMIME,
		                     kind == SG_KIND_NONE
		                         ? "the message is not S/MIME "
		                           "encrypted"
		                         : "the message is signed, not "
		                           "encrypted: use verify");
	cte = sg_msg_header(msg, "Content-Transfer-Encoding");
	b64 = cte != NULL && strcasecmp(cte, "base64") == 0;
	free(cte);
	if ((st = sg_mime_read_cms(msg, msg->body_off,
	                           msg->size - msg->body_off, b64, cms)) !=
	    SG_OK)
		return st;
	nid = OBJ_obj2nid(CMS_get0_type(*cms));
	if (nid == NID_pkcs7_enveloped ||
	    nid == NID_id_smime_ct_authEnvelopedData)
		return SG_OK;
	CMS_ContentInfo_free(*cms);
	*cms = NULL;
	return sg_fail_plain(msg->ctx, SG_ERR_NOT_SMIME,
	                     nid == NID_pkcs7_signed
	                         ? "the message is signed, not encrypted: "
	                           "use verify"
	                         : "the S/MIME content is neither "
	                           "enveloped nor authEnveloped data");
}

enum sg_status
sg_decrypt(struct sg_ctx *ctx, struct sg_msg *msg, const struct sg_key *key,
           struct sg_sink *sink)
{
	CMS_ContentInfo *cms = NULL;
	struct sg_source *src = NULL;
	BIO *plain = NULL, *in = NULL, *out = NULL;
	off_t len;
	int fd = -1;
	enum sg_status st;

	sg_reset(ctx);
	if (key == NULL || key->cert == NULL)
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "a key with its certificate is needed");
	if ((st = read_envelope(msg, &cms)) != SG_OK)
		return st;
	if ((st = open_envelope(ctx, cms, key)) != SG_OK)
		goto out;
	if ((fd = sg_tmpfile(ctx, msg->size)) == -1) {
		st = sg_fail_plain(ctx, SG_ERR_IO,
		                   "cannot create a temporary file: %s",
		                   strerror(errno));
		goto out;
	}
	if ((plain = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL) {
		st = sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* The content key is set: decrypt the content itself. */
	if (!CMS_decrypt(cms, NULL, NULL, NULL, plain, CMS_BINARY) ||
	    BIO_flush(plain) != 1) {
		st = sg_fail(ctx, SG_ERR_DECRYPT,
		             "the content does not decrypt%s",
		             OBJ_obj2nid(CMS_get0_type(cms)) ==
		                     NID_id_smime_ct_authEnvelopedData
		                 ? " (authentication tag mismatch: "
		                   "altered in transit?)"
		                 : "");
		goto out;
	}
	if ((len = lseek(fd, 0, SEEK_END)) == -1 ||
	    (src = sg_source_new()) == NULL ||
	    sg_source_add_file(src, fd, 0, (size_t)len, 0) == -1 ||
	    (in = sg_source_bio(src)) == NULL ||
	    (out = sg_sink_bio(sink, !msg->crlf)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_IO,
		                   "cannot read back the plaintext");
		goto out;
	}
	if (sg_emit_outer_headers(msg, out) == -1 ||
	    sg_bio_copy(in, out) == -1 || BIO_flush(out) != 1) {
		st = sg_fail_plain(ctx, SG_ERR_IO, "cannot write the output");
		goto out;
	}
	st = SG_OK;
out:
	BIO_free(plain);
	BIO_free(in);
	BIO_free(out);
	sg_source_free(src);
	if (fd != -1)
		close(fd);
	CMS_ContentInfo_free(cms);
	return st;
}

static int
rid_add(struct sg_recipient_id **ids, size_t *n, X509_NAME *issuer,
        ASN1_INTEGER *serial, ASN1_OCTET_STRING *keyid)
{
	struct sg_recipient_id *v = realloc(*ids, (*n + 1) * sizeof(*v));
	struct sg_recipient_id *r;

	if (v == NULL)
		return -1;
	*ids = v;
	r = &v[*n];
	memset(r, 0, sizeof(*r));
	(*n)++;
	if (issuer != NULL && (r->issuer = sg_name_oneline(issuer)) == NULL)
		return -1;
	if (serial != NULL && (r->serial = sg_serial_hex(serial)) == NULL)
		return -1;
	if (keyid != NULL &&
	    (r->ski = sg_hex_lower(ASN1_STRING_get0_data(keyid),
	                           (size_t)ASN1_STRING_length(keyid))) == NULL)
		return -1;
	return 0;
}

enum sg_status
sg_msg_recipients(struct sg_ctx *ctx, struct sg_msg *msg,
                  struct sg_recipient_id **ids, size_t *n)
{
	CMS_ContentInfo *cms = NULL;
	STACK_OF(CMS_RecipientInfo) * ris;
	struct sg_recipient_id *v = NULL;
	size_t count = 0;
	enum sg_status st;
	int bad = 0;

	sg_reset(ctx);
	if ((st = read_envelope(msg, &cms)) != SG_OK)
		return st;
	ris = CMS_get0_RecipientInfos(cms);
	if ((unsigned)sk_CMS_RecipientInfo_num(ris) >
	    ctx->limits.max_recipients) {
		CMS_ContentInfo_free(cms);
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "more than %u recipients",
		                     ctx->limits.max_recipients);
	}
	for (int i = 0; !bad && i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		ASN1_OCTET_STRING *keyid = NULL;
		X509_NAME *issuer = NULL;
		ASN1_INTEGER *serial = NULL;

		if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS) {
			if (CMS_RecipientInfo_ktri_get0_signer_id(
			        ri, &keyid, &issuer, &serial) == 1)
				bad =
				    rid_add(&v, &count, issuer, serial, keyid);
		} else if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE) {
			STACK_OF(CMS_RecipientEncryptedKey) *reks =
			    CMS_RecipientInfo_kari_get0_reks(ri);
			for (int j = 0;
			     !bad && j < sk_CMS_RecipientEncryptedKey_num(reks);
			     j++) {
				keyid = NULL;
				issuer = NULL;
				serial = NULL;
				if (CMS_RecipientEncryptedKey_get0_id(
				        sk_CMS_RecipientEncryptedKey_value(reks,
				                                           j),
				        &keyid, NULL, NULL, &issuer,
				        &serial) == 1)
					bad = rid_add(&v, &count, issuer,
					              serial, keyid);
			}
		}
	}
	CMS_ContentInfo_free(cms);
	if (bad) {
		sg_recipient_ids_free(v, count);
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	}
	*ids = v;
	*n = count;
	return SG_OK;
}

void
sg_recipient_ids_free(struct sg_recipient_id *ids, size_t n)
{
	for (size_t i = 0; ids != NULL && i < n; i++) {
		free(ids[i].issuer);
		free(ids[i].serial);
		free(ids[i].ski);
	}
	free(ids);
}
