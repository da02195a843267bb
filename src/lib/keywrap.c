/*
 * keywrap.c - private keys at rest, and keys whose certificate comes
 * later (a pending CSR).
 *
 * A wrapped key is "SGK1" || nonce (12) || AES-256-GCM(PKCS#8 DER) || tag
 * (16), under a 32-byte master key, with "smimegate-key-v1:" + AAD
 * authenticated, so that a blob copied to another row does not open.
 * The master key is random and high-entropy: no password stretching is
 * needed or wanted on the lookup path.  Plaintext DER is wiped.
 */
#include "lib/sg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define WRAP_MAGIC      "SGK1"
#define WRAP_NONCE      12
#define WRAP_TAG        16
#define WRAP_AAD_PREFIX "smimegate-key-v1:"
#define WRAP_MAX        (1u << 20) /* no private key is this large */

enum sg_status
sg_random_bytes(unsigned char *buf, size_t len)
{
	return len <= INT32_MAX && RAND_bytes(buf, (int)len) == 1
	           ? SG_OK
	           : SG_ERR_INTERNAL;
}

int
sg_key_has_cert(const struct sg_key *key)
{
	return key != NULL && key->cert != NULL;
}

int
sg_key_matches(const struct sg_key *key, const struct sg_certs *certs, size_t i)
{
	X509 *x;
	int ok;

	if (key == NULL || certs == NULL || i >= (size_t)sk_X509_num(certs->sk))
		return 0;
	x = sk_X509_value(certs->sk, (int)i);
	ok = EVP_PKEY_eq(X509_get0_pubkey(x), key->pkey) == 1;
	ERR_clear_error();
	return ok;
}

enum sg_status
sg_key_set_certs(struct sg_ctx *ctx, struct sg_key *key,
                 const struct sg_certs *certs, size_t i)
{
	STACK_OF(X509) * chain;
	X509 *x;

	sg_reset(ctx);
	if (!sg_key_matches(key, certs, i))
		return sg_fail_plain(ctx, SG_ERR_KEY_MISMATCH,
		                     "the certificate is not for this key");
	if ((chain = sk_X509_new_null()) == NULL)
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	for (int j = 0; j < sk_X509_num(certs->sk); j++) {
		if ((size_t)j == i)
			continue;
		x = sk_X509_value(certs->sk, j);
		if (!X509_up_ref(x) || !sk_X509_push(chain, x)) {
			sk_X509_pop_free(chain, X509_free);
			return sg_fail_plain(ctx, SG_ERR_NOMEM,
			                     "out of memory");
		}
	}
	x = sk_X509_value(certs->sk, (int)i);
	if (!X509_up_ref(x)) {
		sk_X509_pop_free(chain, X509_free);
		return sg_fail_plain(ctx, SG_ERR_INTERNAL, "X509_up_ref");
	}
	X509_free(key->cert);
	key->cert = x;
	sk_X509_pop_free(key->chain.sk, X509_free);
	key->chain.sk = chain;
	return SG_OK;
}

enum sg_status
sg_key_get_certs(const struct sg_key *key, struct sg_certs **out)
{
	struct sg_certs *c;
	enum sg_status st;

	if ((st = sg_certs_new(&c)) != SG_OK)
		return st;
	if (key->cert != NULL) {
		if (!X509_up_ref(key->cert) ||
		    !sk_X509_push(c->sk, key->cert)) {
			sg_certs_free(c);
			return SG_ERR_NOMEM;
		}
	}
	for (int i = 0; i < sk_X509_num(key->chain.sk); i++)
		if ((st = sg_certs_push_from(c, &key->chain, (size_t)i)) !=
		    SG_OK) {
			sg_certs_free(c);
			return st;
		}
	*out = c;
	return SG_OK;
}

/* The AAD string for a wrap: prefix + caller's label. */
static char *
wrap_aad(const char *aad, size_t *len)
{
	size_t n = strlen(WRAP_AAD_PREFIX) + (aad ? strlen(aad) : 0);
	char *s = malloc(n + 1);

	if (s != NULL)
		snprintf(s, n + 1, "%s%s", WRAP_AAD_PREFIX, aad ? aad : "");
	*len = n;
	return s;
}

/* One AES-256-GCM pass: ENC 1 encrypts IN into OUT (same length), ENC 0
 * decrypts and checks TAG.  1 on success. */
static int
gcm(int enc, const unsigned char key[32], const unsigned char *nonce,
    const char *aad, size_t aadlen, const unsigned char *in, size_t len,
    unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	ok = c != NULL && len <= INT32_MAX && aadlen <= INT32_MAX &&
	     EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WRAP_NONCE, NULL) &&
	     EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) &&
	     EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad,
	                      (int)aadlen) &&
	     EVP_CipherUpdate(c, out, &n, in, (int)len) &&
	     (enc ||
	      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, WRAP_TAG, tag)) &&
	     EVP_CipherFinal_ex(c, out + n, &n) &&
	     (!enc ||
	      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, WRAP_TAG, tag));
	EVP_CIPHER_CTX_free(c);
	return ok;
}

enum sg_status
sg_key_wrap(struct sg_ctx *ctx, const struct sg_key *key,
            const unsigned char master[32], const char *aad,
            unsigned char **blob, size_t *len)
{
	unsigned char *der = NULL, *out = NULL;
	size_t aadlen, total;
	char *a = NULL;
	int n;
	enum sg_status st = SG_OK;

	sg_reset(ctx);
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key->pkey);
	if (p8 == NULL || (n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		return sg_fail(ctx, SG_ERR_INTERNAL, "cannot encode the key");
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	total = 4 + WRAP_NONCE + (size_t)n + WRAP_TAG;
	if ((out = malloc(total)) == NULL ||
	    (a = wrap_aad(aad, &aadlen)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(out, WRAP_MAGIC, 4);
	if (RAND_bytes(out + 4, WRAP_NONCE) != 1 ||
	    !gcm(1, master, out + 4, a, aadlen, der, (size_t)n,
	         out + 4 + WRAP_NONCE, out + 4 + WRAP_NONCE + n)) {
		st = sg_fail(ctx, SG_ERR_INTERNAL, "cannot wrap the key");
		goto out;
	}
	*blob = out;
	*len = total;
	out = NULL;
out:
	OPENSSL_clear_free(der, (size_t)n);
	free(out);
	free(a);
	return st;
}

enum sg_status
sg_key_unwrap(struct sg_ctx *ctx, const unsigned char *blob, size_t len,
              const unsigned char master[32], const char *aad,
              const struct sg_certs *certs, struct sg_key **out)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t dlen, aadlen;
	char *a = NULL;
	struct sg_key *k = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	enum sg_status st;

	sg_reset(ctx);
	if (len < 4 + WRAP_NONCE + WRAP_TAG + 1 || len > WRAP_MAX ||
	    memcmp(blob, WRAP_MAGIC, 4) != 0)
		return sg_fail_plain(ctx, SG_ERR_DECRYPT,
		                     "not a wrapped key (or an unknown "
		                     "version)");
	dlen = len - 4 - WRAP_NONCE - WRAP_TAG;
	if ((der = OPENSSL_secure_malloc(dlen)) == NULL ||
	    (a = wrap_aad(aad, &aadlen)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!gcm(0, master, blob + 4, a, aadlen, blob + 4 + WRAP_NONCE, dlen,
	         der, (unsigned char *)blob + 4 + WRAP_NONCE + dlen)) {
		st = sg_fail_plain(ctx, SG_ERR_DECRYPT,
		                   "the stored key does not open with this "
		                   "master key (wrong key file, or the row "
		                   "was altered)");
		goto out;
	}
	p = der;
	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)dlen)) == NULL ||
	    (k = calloc(1, sizeof(*k))) == NULL ||
	    (k->chain.sk = sk_X509_new_null()) == NULL ||
	    (k->pkey = EVP_PKCS82PKEY(p8)) == NULL) {
		st = sg_fail(ctx, SG_ERR_DECRYPT, "the stored key is corrupt");
		goto out;
	}
	if (certs != NULL && sk_X509_num(certs->sk) > 0 &&
	    (st = sg_key_set_certs(ctx, k, certs, 0)) != SG_OK)
		goto out;
	*out = k;
	k = NULL;
	st = SG_OK;
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (der != NULL)
		OPENSSL_secure_clear_free(der, dlen);
	free(a);
	sg_key_free(k);
	return st;
}
