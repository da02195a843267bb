/*
 * certgen.c - new keys and S/MIME certificates (RFC 8550 profile), and
 * writing them out with the private key protected on disk (0600).
 */
#include "lib/sg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static EVP_PKEY *
new_key(enum sg_keytype t)
{
	switch (t) {
	case SG_KEY_RSA2048:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	case SG_KEY_RSA3072:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	case SG_KEY_RSA4096:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	case SG_KEY_EC_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case SG_KEY_EC_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	}
	return NULL;
}

static int
add_name(X509_NAME *n, const char *field, const char *v)
{
	return v == NULL ||
	       X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
	                                  (const unsigned char *)v, -1, -1, 0);
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* The SAN value "email:a,DNS:b" of REQ into B; 0 or -1. */
static int
san_value(const struct sg_cert_req *req, struct sg_buf *b)
{
	for (const char *const *e = req->san_emails; e && *e; e++)
		if (sg_buf_addf(b, "%semail:%s", b->len ? "," : "", *e) == -1)
			return -1;
	for (const char *const *d = req->san_domains; d && *d; d++)
		if (sg_buf_addf(b, "%sDNS:%s", b->len ? "," : "", *d) == -1)
			return -1;
	return 0;
}

static int
add_san(X509 *x, const struct sg_cert_req *req)
{
	struct sg_buf b;
	int ok;

	sg_buf_init(&b);
	ok = san_value(req, &b) == 0;
	if (ok && b.len > 0)
		ok = add_ext(x, NULL, NID_subject_alt_name, b.data);
	sg_buf_clear(&b);
	return ok;
}

/* The subject of REQ into NAME. */
static int
fill_name(X509_NAME *name, const struct sg_cert_req *req)
{
	return add_name(name, "C", req->country) &&
	       add_name(name, "ST", req->state) &&
	       add_name(name, "L", req->city) &&
	       add_name(name, "O", req->org) &&
	       add_name(name, "OU", req->unit) && add_name(name, "CN", req->cn);
}

static const char *
ku_for(int ec)
{
	return ec ? "critical,digitalSignature,nonRepudiation,keyAgreement"
	          : "critical,digitalSignature,nonRepudiation,"
	            "keyEncipherment";
}

static int
req_ok(const struct sg_cert_req *req)
{
	return req->cn != NULL && *req->cn != '\0' && req->days > 0 &&
	       req->days <= 36500 &&
	       (req->country == NULL || strlen(req->country) == 2);
}

enum sg_status
sg_cert_create(struct sg_ctx *ctx, const struct sg_cert_req *req,
               const struct sg_key *issuer, struct sg_key **out)
{
	struct sg_key *k;
	X509 *x = NULL;
	X509_NAME *name;
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	int ec = req->key == SG_KEY_EC_P256 || req->key == SG_KEY_EC_P384;
	time_t now = sg_ctx_now(ctx);

	sg_reset(ctx);
	if (!req_ok(req))
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "a certificate needs a common name, "
		                     "1 to 36500 days, and a 2-letter country");
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->chain.sk = sk_X509_new_null()) == NULL) {
		free(k);
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	}
	if ((k->pkey = new_key(req->key)) == NULL || (x = X509_new()) == NULL)
		goto fail;
	/* A random 127-bit positive serial. */
	if ((bn = BN_new()) == NULL ||
	    !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_serialNumber(x, serial) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)req->days, 0, &now) ||
	    !X509_set_pubkey(x, k->pkey))
		goto fail;
	name = X509_get_subject_name(x);
	if (!fill_name(name, req))
		goto fail;
	if (!X509_set_issuer_name(
	        x, issuer ? X509_get_subject_name(issuer->cert) : name))
		goto fail;
	X509 *icert = issuer ? issuer->cert : x;
	if (!add_ext(x, icert, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, icert, NID_authority_key_identifier, "keyid:always"))
		goto fail;
	if (req->ca) {
		if (!add_ext(x, icert, NID_basic_constraints,
		             "critical,CA:TRUE") ||
		    !add_ext(x, icert, NID_key_usage,
		             "critical,keyCertSign,cRLSign"))
			goto fail;
	} else {
		/* A self-signed end entity carries no basicConstraints: NSS
		 * (Thunderbird) accepts such a certificate as a trust anchor,
		 * not one that says CA:FALSE.  Issued ones say CA:FALSE. */
		if ((issuer != NULL &&
		     !add_ext(x, icert, NID_basic_constraints, "CA:FALSE")) ||
		    !add_ext(x, icert, NID_key_usage, ku_for(ec)) ||
		    !add_ext(x, icert, NID_ext_key_usage, "emailProtection"))
			goto fail;
	}
	if (!add_san(x, req) ||
	    !X509_sign(x, issuer ? issuer->pkey : k->pkey, EVP_sha256()))
		goto fail;
	if (issuer != NULL) {
		if (!X509_up_ref(issuer->cert))
			goto fail;
		if (!sk_X509_push(k->chain.sk, issuer->cert)) {
			X509_free(issuer->cert);
			goto fail;
		}
	}
	k->cert = x;
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	*out = k;
	return SG_OK;
fail:
	X509_free(x);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	sg_key_free(k);
	return sg_fail(ctx, SG_ERR_INTERNAL, "cannot create the certificate");
}

static enum sg_status
write_file(struct sg_ctx *ctx, const char *path, mode_t mode, BIO *mem)
{
	BUF_MEM *bm;
	FILE *f;
	int fd;

	BIO_get_mem_ptr(mem, &bm);
	/* Create with the final mode: a key is never readable by others,
	 * not even for an instant. */
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		return sg_fail_plain(ctx, SG_ERR_IO, "%s: %s", path,
		                     strerror(errno));
	}
	if (fwrite(bm->data, 1, bm->length, f) != bm->length ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return sg_fail_plain(ctx, SG_ERR_IO, "%s: %s", path,
		                     strerror(errno));
	}
	if (fclose(f) != 0)
		return sg_fail_plain(ctx, SG_ERR_IO, "%s: %s", path,
		                     strerror(errno));
	return SG_OK;
}

enum sg_status
sg_key_save_pem(struct sg_ctx *ctx, const struct sg_key *key,
                const char *cert_path, const char *key_path, const char *pass)
{
	BIO *c = BIO_new(BIO_s_mem()), *k = BIO_new(BIO_s_secmem());
	enum sg_status st;

	sg_reset(ctx);
	if (c == NULL || k == NULL || !PEM_write_bio_X509(c, key->cert) ||
	    !PEM_write_bio_PKCS8PrivateKey(k, key->pkey,
	                                   pass ? EVP_aes_256_cbc() : NULL,
	                                   NULL, 0, NULL, (void *)pass)) {
		st = sg_fail(ctx, SG_ERR_INTERNAL, "cannot encode the key");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(key->chain.sk); i++)
		PEM_write_bio_X509(c, sk_X509_value(key->chain.sk, i));
	if ((st = write_file(ctx, cert_path, 0644, c)) != SG_OK)
		goto out;
	st = write_file(ctx, key_path, 0600, k);
out:
	BIO_free(c);
	BIO_free(k); /* secure memory: wiped when freed */
	return st;
}

enum sg_status
sg_csr_create(struct sg_ctx *ctx, const struct sg_cert_req *req,
              struct sg_key **key, char **pem)
{
	struct sg_key *k = *key, *made = NULL;
	X509_REQ *r = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *e;
	struct sg_buf san;
	BIO *mem = NULL;
	BUF_MEM *bm;
	int ec, ok;
	enum sg_status st = SG_OK;

	sg_reset(ctx);
	sg_buf_init(&san);
	if (req == NULL ? k == NULL || k->cert == NULL : !req_ok(req))
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "a request needs a common name and a "
		                     "2-letter country, or a certificate to "
		                     "renew");
	if (k == NULL) {
		if ((made = calloc(1, sizeof(*made))) == NULL ||
		    (made->chain.sk = sk_X509_new_null()) == NULL ||
		    (made->pkey = new_key(req->key)) == NULL) {
			st = sg_fail(ctx, SG_ERR_INTERNAL,
			             "cannot generate the key");
			goto out;
		}
		k = made;
	}
	ec = EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_EC;
	X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
	ok = (r = X509_REQ_new()) != NULL &&
	     X509_REQ_set_version(r, X509_REQ_VERSION_1) &&
	     (req != NULL ? fill_name(X509_REQ_get_subject_name(r), req)
	                  : X509_REQ_set_subject_name(
	                        r, X509_get_subject_name(k->cert))) &&
	     X509_REQ_set_pubkey(r, k->pkey) &&
	     (exts = sk_X509_EXTENSION_new_null()) != NULL &&
	     (req == NULL || san_value(req, &san) == 0);
	if (ok && req == NULL) {
		/* Renewal: the certificate's own subjectAltName. */
		int at = X509_get_ext_by_NID(k->cert, NID_subject_alt_name, -1);
		if (at >= 0)
			ok = (e = X509_EXTENSION_dup(
			          X509_get_ext(k->cert, at))) != NULL &&
			     sk_X509_EXTENSION_push(exts, e);
	}
	if (ok && san.len > 0)
		ok = (e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
		                              san.data)) != NULL &&
		     sk_X509_EXTENSION_push(exts, e);
	ok = ok &&
	     (e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, ku_for(ec))) !=
	         NULL &&
	     sk_X509_EXTENSION_push(exts, e) &&
	     (e = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage,
	                              "emailProtection")) != NULL &&
	     sk_X509_EXTENSION_push(exts, e) &&
	     X509_REQ_add_extensions(r, exts) &&
	     X509_REQ_sign(r, k->pkey, EVP_sha256()) > 0 &&
	     (mem = BIO_new(BIO_s_mem())) != NULL &&
	     PEM_write_bio_X509_REQ(mem, r);
	if (!ok) {
		st = sg_fail(ctx, SG_ERR_INTERNAL, "cannot create the request");
		goto out;
	}
	BIO_get_mem_ptr(mem, &bm);
	if ((*pem = strndup(bm->data, bm->length)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (made != NULL) {
		*key = made;
		made = NULL;
	}
out:
	sg_buf_clear(&san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	BIO_free(mem);
	sg_key_free(made);
	return st;
}

enum sg_status
sg_key_write_p12(struct sg_ctx *ctx, const struct sg_key *key, const char *pass,
                 int legacy, struct sg_sink *sink)
{
	/* Modern: PBES2 (PBKDF2, AES-256-CBC) and a SHA-256 MAC.  Legacy:
	 * 3DES PBE for key and certificates and a SHA-1 MAC. */
	int nid =
	    legacy ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : NID_aes_256_cbc;
	PKCS12 *p12 = NULL;
	int ok;

	sg_reset(ctx);
	if (key->cert == NULL)
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "the key has no certificate yet (a CSR "
		                     "is pending)");
	ok = (p12 = PKCS12_create(pass ? pass : "", NULL, key->pkey, key->cert,
	                          key->chain.sk, nid, nid, PKCS12_DEFAULT_ITER,
	                          -1, 0)) != NULL &&
	     PKCS12_set_mac(p12, pass ? pass : "", -1, NULL, 0,
	                    PKCS12_DEFAULT_ITER,
	                    legacy ? EVP_sha1() : EVP_sha256());
	/* Binary: straight to the sink, not through the line-end BIO. */
	if (ok) {
		unsigned char *der = NULL;
		int n = i2d_PKCS12(p12, &der);
		ok = n > 0 && sink->write(sink->arg, der, (size_t)n) == 0;
		OPENSSL_clear_free(der, n > 0 ? (size_t)n : 0);
	}
	PKCS12_free(p12);
	return ok ? SG_OK
	          : sg_fail(ctx, SG_ERR_INTERNAL, "cannot write the PKCS#12");
}
