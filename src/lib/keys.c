/*
 * keys.c - certificates and private keys: loading (PEM, DER, PKCS#7
 * certs-only, PKCS#12), fitness checks for signing and encryption, and the
 * email addresses a certificate speaks for.
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

enum sg_status
sg_certs_new(struct sg_certs **out)
{
	struct sg_certs *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SG_ERR_NOMEM;
	if ((c->sk = sk_X509_new_null()) == NULL) {
		free(c);
		return SG_ERR_NOMEM;
	}
	*out = c;
	return SG_OK;
}

void
sg_certs_free(struct sg_certs *certs)
{
	if (certs == NULL)
		return;
	sk_X509_pop_free(certs->sk, X509_free);
	free(certs);
}

size_t
sg_certs_count(const struct sg_certs *certs)
{
	return certs == NULL ? 0 : (size_t)sk_X509_num(certs->sk);
}

/* Appends every certificate found in BIO to SK: PEM blocks, else one DER
 * certificate, else a DER PKCS#7 certs-only bundle. */
static int
read_certs(BIO *bio, const unsigned char *mem, size_t len, STACK_OF(X509) * sk)
{
	X509 *x;
	int n = 0;

	/* DER starts with a SEQUENCE: never look for PEM text inside it. */
	if (len > 0 && mem[0] == 0x30)
		goto der;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return -1;
		}
		n++;
	}
	ERR_clear_error();
	if (n > 0)
		return n;
der:;
	const unsigned char *p = mem;
	if ((x = d2i_X509(NULL, &p, (long)len)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return -1;
		}
		return 1;
	}
	ERR_clear_error();
	p = mem;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (p7 != NULL && PKCS7_type_is_signed(p7) && p7->d.sign != NULL &&
	    p7->d.sign->cert != NULL) {
		for (int i = 0; i < sk_X509_num(p7->d.sign->cert); i++) {
			x = X509_dup(sk_X509_value(p7->d.sign->cert, i));
			if (x == NULL || !sk_X509_push(sk, x)) {
				X509_free(x);
				PKCS7_free(p7);
				return -1;
			}
			n++;
		}
	}
	PKCS7_free(p7);
	ERR_clear_error();
	return n;
}

enum sg_status
sg_certs_load_mem(struct sg_ctx *ctx, struct sg_certs *certs, const void *data,
                  size_t len)
{
	BIO *bio;
	int n;

	if (len > INT32_MAX)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "certificate data too "
		                     "large");
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		return sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
	n = read_certs(bio, data, len, certs->sk);
	BIO_free(bio);
	if (n == -1)
		return sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
	if (n == 0)
		return sg_fail_plain(ctx, SG_ERR_BADKEY,
		                     "no certificate found (expected PEM, DER "
		                     "or PKCS#7)");
	return SG_OK;
}

/* Reads a whole (small) file; NULL with the reason on CTX. */
static unsigned char *
slurp(struct sg_ctx *ctx, const char *path, size_t *len)
{
	BIO *in, *mem;
	BUF_MEM *bm;
	unsigned char *p = NULL;

	if ((in = BIO_new_file(path, "rb")) == NULL) {
		sg_fail(ctx, SG_ERR_BADKEY, "cannot open %s", path);
		return NULL;
	}
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL || sg_bio_copy(in, mem) == -1) {
		sg_fail(ctx, SG_ERR_BADKEY, "cannot read %s", path);
		goto out;
	}
	BIO_get_mem_ptr(mem, &bm);
	if (bm->length > 16 * 1024 * 1024) {
		sg_fail_plain(ctx, SG_ERR_LIMIT, "%s: larger than 16 MiB",
		              path);
		goto out;
	}
	if ((p = malloc(bm->length + 1)) == NULL) {
		sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(p, bm->data, bm->length);
	p[bm->length] = '\0';
	*len = bm->length;
out:
	BIO_free(in);
	BIO_free(mem);
	return p;
}

enum sg_status
sg_certs_load_file(struct sg_ctx *ctx, struct sg_certs *certs, const char *path)
{
	unsigned char *data;
	size_t len;
	enum sg_status st;

	if ((data = slurp(ctx, path, &len)) == NULL)
		return ctx->last;
	st = sg_certs_load_mem(ctx, certs, data, len);
	free(data);
	if (st == SG_ERR_BADKEY)
		return sg_fail_plain(ctx, st,
		                     "%s: no certificate found "
		                     "(expected PEM, DER or PKCS#7)",
		                     path);
	return st;
}

enum sg_status
sg_certs_load_end_entities(struct sg_ctx *ctx, struct sg_certs *certs,
                           const char *path)
{
	struct sg_certs *all;
	enum sg_status st;
	X509 *x;
	int n = 0;

	if ((st = sg_certs_new(&all)) != SG_OK)
		return sg_fail_plain(ctx, st, "out of memory");
	if ((st = sg_certs_load_file(ctx, all, path)) != SG_OK) {
		sg_certs_free(all);
		return st;
	}
	while ((x = sk_X509_shift(all->sk)) != NULL) {
		if (X509_check_ca(x) != 0) {
			X509_free(x);
			continue;
		}
		if (!sk_X509_push(certs->sk, x)) {
			X509_free(x);
			sg_certs_free(all);
			return sg_fail_plain(ctx, SG_ERR_NOMEM,
			                     "out of memory");
		}
		n++;
	}
	sg_certs_free(all);
	if (n == 0)
		return sg_fail_plain(ctx, SG_ERR_BADKEY,
		                     "%s: only CA certificates, no recipient",
		                     path);
	return SG_OK;
}

static enum sg_status
key_new(struct sg_ctx *ctx, struct sg_key **out)
{
	struct sg_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->chain.sk = sk_X509_new_null()) == NULL) {
		free(k);
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	}
	*out = k;
	return SG_OK;
}

void
sg_key_free(struct sg_key *key)
{
	if (key == NULL)
		return;
	X509_free(key->cert);
	EVP_PKEY_free(key->pkey);
	sk_X509_pop_free(key->chain.sk, X509_free);
	free(key);
}

enum sg_status
sg_key_dup(struct sg_ctx *ctx, const struct sg_key *key, struct sg_key **out)
{
	struct sg_key *k;
	enum sg_status st;

	sg_reset(ctx);
	if ((st = key_new(ctx, &k)) != SG_OK)
		return st;
	if (!EVP_PKEY_up_ref(key->pkey)) {
		sg_key_free(k);
		return sg_fail(ctx, SG_ERR_NOMEM, "EVP_PKEY_up_ref");
	}
	k->pkey = key->pkey;
	if (key->cert != NULL) {
		if (!X509_up_ref(key->cert)) {
			sg_key_free(k);
			return sg_fail(ctx, SG_ERR_NOMEM, "X509_up_ref");
		}
		k->cert = key->cert;
	}
	for (int i = 0; i < sk_X509_num(key->chain.sk); i++) {
		X509 *x = sk_X509_value(key->chain.sk, i);

		if (!X509_up_ref(x)) {
			sg_key_free(k);
			return sg_fail(ctx, SG_ERR_NOMEM, "X509_up_ref");
		}
		if (!sk_X509_push(k->chain.sk, x)) {
			X509_free(x);
			sg_key_free(k);
			return sg_fail_plain(ctx, SG_ERR_NOMEM,
			                     "out of memory");
		}
	}
	*out = k;
	return SG_OK;
}

const struct sg_certs *
sg_key_get0_chain(const struct sg_key *key)
{
	return &key->chain;
}

static enum sg_status
key_finish(struct sg_ctx *ctx, struct sg_key *k, struct sg_key **out)
{
	if (X509_check_private_key(k->cert, k->pkey) != 1) {
		sg_key_free(k);
		return sg_fail_plain(ctx, SG_ERR_KEY_MISMATCH,
		                     "the private key does not belong to "
		                     "the certificate");
	}
	*out = k;
	return SG_OK;
}

enum sg_status
sg_key_load_files(struct sg_ctx *ctx, const char *cert_path,
                  const char *key_path, const char *pass, struct sg_key **out)
{
	struct sg_certs *certs = NULL;
	struct sg_key *k = NULL;
	unsigned char *data = NULL;
	size_t len;
	BIO *bio = NULL;
	enum sg_status st;

	sg_reset(ctx);
	if ((st = sg_certs_new(&certs)) != SG_OK)
		return sg_fail_plain(ctx, st, "out of memory");
	if ((st = sg_certs_load_file(ctx, certs, cert_path)) != SG_OK)
		goto fail;
	if ((st = key_new(ctx, &k)) != SG_OK)
		goto fail;
	k->cert = sk_X509_shift(certs->sk);
	while (sk_X509_num(certs->sk) > 0)
		sk_X509_push(k->chain.sk, sk_X509_shift(certs->sk));

	if ((data = slurp(ctx, key_path, &len)) == NULL) {
		st = ctx->last;
		goto fail;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		st = sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)pass);
	if (k->pkey == NULL) {
		const unsigned char *p = data;
		ERR_clear_error();
		k->pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
	}
	if (k->pkey == NULL) {
		st = sg_fail(ctx, SG_ERR_BADKEY,
		             "%s: cannot read the private key%s", key_path,
		             pass ? "" : " (encrypted? give a passphrase)");
		goto fail;
	}
	OPENSSL_clear_free(data, len);
	data = NULL;
	BIO_free(bio);
	sg_certs_free(certs);
	return key_finish(ctx, k, out);
fail:
	if (data != NULL)
		OPENSSL_clear_free(data, len);
	BIO_free(bio);
	sg_certs_free(certs);
	sg_key_free(k);
	return st;
}

/* OpenSSL 3 keeps RC2 and 3DES-with-SHA-1 PBEs, which legacy PKCS#12 files
 * (gpgsm, older Windows) use, in its "legacy" provider.  It is loaded into
 * the default library context once, the first time such a file is met. */
static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;
static OSSL_PROVIDER *legacy_prov, *default_prov;

/* Registered after OpenSSL's own exit handler, so it runs first. */
static void
legacy_unload(void)
{
	if (legacy_prov != NULL)
		OSSL_PROVIDER_unload(legacy_prov);
	if (default_prov != NULL)
		OSSL_PROVIDER_unload(default_prov);
	legacy_prov = default_prov = NULL;
}

static void
legacy_load(void)
{
	/* Loading any provider explicitly stops the implicit default one,
	 * so load both. */
	default_prov = OSSL_PROVIDER_load(NULL, "default");
	legacy_prov = OSSL_PROVIDER_load(NULL, "legacy");
	atexit(legacy_unload);
}

static int
p12_parse(PKCS12 *p12, const char *pass, struct sg_key *k, STACK_OF(X509) * *ca)
{
	if (PKCS12_parse(p12, pass ? pass : "", &k->pkey, &k->cert, ca))
		return 1;
	if (ERR_GET_REASON(ERR_peek_last_error()) != ERR_R_UNSUPPORTED &&
	    ERR_GET_REASON(ERR_peek_error()) != ERR_R_UNSUPPORTED)
		return 0;
	pthread_once(&legacy_once, legacy_load);
	if (legacy_prov == NULL || default_prov == NULL)
		return 0;
	ERR_clear_error();
	return PKCS12_parse(p12, pass ? pass : "", &k->pkey, &k->cert, ca);
}

enum sg_status
sg_key_load_p12(struct sg_ctx *ctx, const char *path, const char *pass,
                struct sg_key **out)
{
	unsigned char *data;
	const unsigned char *p;
	size_t len;
	PKCS12 *p12;
	struct sg_key *k;
	STACK_OF(X509) *ca = NULL;
	enum sg_status st;

	sg_reset(ctx);
	if ((data = slurp(ctx, path, &len)) == NULL)
		return ctx->last;
	p = data;
	p12 = d2i_PKCS12(NULL, &p, (long)len);
	OPENSSL_clear_free(data, len);
	if (p12 == NULL)
		return sg_fail(ctx, SG_ERR_BADKEY, "%s: not a PKCS#12 file",
		               path);
	/* A MAC that does not check is a wrong passphrase, not a bad file
	 * (files without a MAC go on to the parse). */
	if (PKCS12_mac_present(p12) &&
	    !PKCS12_verify_mac(p12, pass ? pass : "", -1) &&
	    !(pass == NULL && PKCS12_verify_mac(p12, NULL, 0))) {
		PKCS12_free(p12);
		return sg_fail_plain(ctx, SG_ERR_DECRYPT,
		                     "%s: wrong passphrase (the PKCS#12 MAC "
		                     "does not check)",
		                     path);
	}
	ERR_clear_error();
	if ((st = key_new(ctx, &k)) != SG_OK) {
		PKCS12_free(p12);
		return st;
	}
	if (!p12_parse(p12, pass, k, &ca)) {
		PKCS12_free(p12);
		sg_key_free(k);
		return sg_fail(ctx, SG_ERR_BADKEY,
		               "%s: cannot open the PKCS#12 file (wrong "
		               "passphrase?)",
		               path);
	}
	PKCS12_free(p12);
	if (k->pkey == NULL || k->cert == NULL) {
		sk_X509_pop_free(ca, X509_free);
		sg_key_free(k);
		return sg_fail_plain(ctx, SG_ERR_BADKEY,
		                     "%s: no key and certificate inside", path);
	}
	if (ca != NULL) {
		sk_X509_pop_free(k->chain.sk, X509_free);
		k->chain.sk = ca;
	}
	return key_finish(ctx, k, out);
}

char *
sg_name_oneline(const X509_NAME *name)
{
	BIO *mem = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *s = NULL;

	if (mem == NULL)
		return NULL;
	if (X509_NAME_print_ex(mem, name, 0,
	                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		BIO_get_mem_ptr(mem, &bm);
		s = strndup(bm->data, bm->length);
	}
	BIO_free(mem);
	return s;
}

void
sg_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static int
strv_add(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv, *copy, *at;

	/* A name with a NUL inside would be cut short: "victim.com\0.evil"
	 * must not pass for victim.com.  Such a name is ignored. */
	if (len == 0 || memchr(s, '\0', len) != NULL)
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && strncmp((*v)[i], s, len) == 0)
			return 0;
	if ((copy = strndup(s, len)) == NULL)
		return -1;
	/* The domain is case-insensitive, the local part is not
	 * (RFC 5321 2.4). */
	if ((at = strrchr(copy, '@')) != NULL)
		sg_lower_domain(at + 1);
	if ((nv = realloc(*v, (*n + 2) * sizeof(*nv))) == NULL) {
		free(copy);
		return -1;
	}
	nv[(*n)++] = copy;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

char **
sg_cert_emails(X509 *cert)
{
	GENERAL_NAMES *gens;
	char **v = calloc(1, sizeof(*v));
	size_t n = 0;
	int ok = v != NULL;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; ok && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_EMAIL)
			ok = strv_add(&v, &n,
			              (const char *)ASN1_STRING_get0_data(
			                  g->d.rfc822Name),
			              (size_t)ASN1_STRING_length(
			                  g->d.rfc822Name)) == 0;
	}
	GENERAL_NAMES_free(gens);
	X509_NAME *subj = X509_get_subject_name(cert);
	for (int i = -1; ok;) {
		i = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress, i);
		if (i < 0)
			break;
		ASN1_STRING *d =
		    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		ok = strv_add(&v, &n, (const char *)ASN1_STRING_get0_data(d),
		              (size_t)ASN1_STRING_length(d)) == 0;
	}
	ERR_clear_error();
	if (!ok) {
		sg_strv_free(v);
		return NULL;
	}
	return v;
}

enum sg_status
sg_cert_check(struct sg_ctx *ctx, X509 *cert, enum sg_cert_purpose purpose)
{
	time_t now = sg_ctx_now(ctx);
	uint32_t ku, xku;
	char *who = sg_name_oneline(X509_get_subject_name(cert));
	const char *w = who ? who : "?";
	enum sg_status st = SG_OK;
	int ec = EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) == EVP_PKEY_EC;

	if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
		st = sg_fail_plain(ctx, SG_ERR_EXPIRED,
		                   "certificate %s is not valid yet", w);
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
		st = sg_fail_plain(ctx, SG_ERR_EXPIRED,
		                   "certificate %s has expired", w);
		goto out;
	}
	ku = X509_get_key_usage(cert); /* UINT32_MAX: no extension */
	if (purpose == SG_PURPOSE_SIGN &&
	    !(ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION))) {
		st = sg_fail_plain(ctx, SG_ERR_KEY_USAGE,
		                   "certificate %s: keyUsage does not allow "
		                   "digitalSignature",
		                   w);
		goto out;
	}
	if (purpose == SG_PURPOSE_ENCRYPT &&
	    !(ku & (ec ? KU_KEY_AGREEMENT : KU_KEY_ENCIPHERMENT))) {
		st = sg_fail_plain(ctx, SG_ERR_KEY_USAGE,
		                   "certificate %s: keyUsage does not allow "
		                   "%s",
		                   w, ec ? "keyAgreement" : "keyEncipherment");
		goto out;
	}
	if (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) {
		xku = X509_get_extended_key_usage(cert);
		if (!(xku & (XKU_SMIME | XKU_ANYEKU))) {
			st = sg_fail_plain(ctx, SG_ERR_KEY_USAGE,
			                   "certificate %s: extendedKeyUsage "
			                   "lacks emailProtection",
			                   w);
			goto out;
		}
	}
out:
	free(who);
	return st;
}
