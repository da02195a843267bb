/*
 * certinfo.c - what a certificate says, as plain data: names, addresses,
 * validity, key type, and fitness for S/MIME signing and encryption by the
 * RFC 8550 and seed 002 requirements.  Also DER/PEM output of lists.
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static char *
hex_of(const unsigned char *p, size_t n, int upper)
{
	static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
	const char *digits = upper ? up : lo;
	char *s = malloc(2 * n + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * n] = '\0';
	return s;
}

char *
sg_serial_hex(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL, *s = NULL;

	if (hex != NULL)
		s = strdup(hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return s;
}

char *
sg_hex_lower(const unsigned char *p, size_t n)
{
	return hex_of(p, n, 0);
}

static char *
key_type_of(EVP_PKEY *pk)
{
	char buf[64], group[32] = "";
	size_t glen = 0;

	if (pk == NULL)
		return strdup("unknown");
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		snprintf(buf, sizeof(buf), "rsa:%d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(pk, "group", group,
		                                   sizeof(group), &glen) != 1)
			snprintf(group, sizeof(group), "%d",
			         EVP_PKEY_get_bits(pk));
		/* "prime256v1" -> "p256", "secp384r1" -> "p384" */
		if (strcmp(group, "prime256v1") == 0 ||
		    strcmp(group, "P-256") == 0)
			snprintf(group, sizeof(group), "p256");
		else if (strcmp(group, "secp384r1") == 0 ||
		         strcmp(group, "P-384") == 0)
			snprintf(group, sizeof(group), "p384");
		else if (strcmp(group, "secp521r1") == 0 ||
		         strcmp(group, "P-521") == 0)
			snprintf(group, sizeof(group), "p521");
		snprintf(buf, sizeof(buf), "ec:%s", group);
		break;
	default:
		snprintf(buf, sizeof(buf), "%s",
		         OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
	}
	ERR_clear_error();
	return strdup(buf);
}

/* The names of type TYPE (GEN_DNS, GEN_EMAIL) in GENS, lowercased. */
static char **
names_of(GENERAL_NAMES *gens, int type)
{
	int count = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0; /* -1 */
	char **v = calloc((size_t)count + 1, sizeof(*v));
	size_t n = 0;

	for (int i = 0; v && i < count; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != type)
			continue;
		ASN1_IA5STRING *s =
		    type == GEN_DNS ? g->d.dNSName : g->d.rfc822Name;
		const char *raw = (const char *)ASN1_STRING_get0_data(s);
		size_t rlen = (size_t)ASN1_STRING_length(s);
		/* "victim.com\0.evil" must not pass for victim.com. */
		if (rlen == 0 || memchr(raw, '\0', rlen) != NULL)
			continue;
		char *d = strndup(raw, rlen);
		if (d == NULL) {
			sg_strv_free(v);
			v = NULL;
			break;
		}
		if (type == GEN_DNS)
			sg_lower_domain(d);
		else if (strrchr(d, '@') != NULL)
			sg_lower_domain(strrchr(d, '@') + 1);
		v[n++] = d;
	}
	ERR_clear_error();
	return v;
}

static char **
domains_of(X509 *x)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char **v = names_of(gens, GEN_DNS);

	GENERAL_NAMES_free(gens);
	return v;
}

/* Fitness by the requirements; *WHY gets a reason when unfit. */
static int
fit(X509 *x, int sign, char **why)
{
	uint32_t ku = X509_get_key_usage(x); /* UINT32_MAX: no extension */
	int ec = EVP_PKEY_get_base_id(X509_get0_pubkey(x)) == EVP_PKEY_EC;
	const char *r = NULL;

	if (X509_check_ca(x) != 0)
		r = "a CA certificate";
	else if (sign && ku != UINT32_MAX &&
	         (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) !=
	             (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION))
		r = "keyUsage lacks digitalSignature and nonRepudiation";
	else if (!sign && ec && !(ku & KU_KEY_AGREEMENT))
		r = "keyUsage lacks keyAgreement";
	else if (!sign && !ec && !(ku & KU_KEY_ENCIPHERMENT))
		r = "keyUsage lacks keyEncipherment";
	else if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
	         !(X509_get_extended_key_usage(x) & (XKU_SMIME | XKU_ANYEKU)))
		r = "extendedKeyUsage lacks emailProtection";
	if (r != NULL)
		*why = strdup(r);
	return r == NULL;
}

static time_t
time_of(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

enum sg_status
sg_certs_info(const struct sg_certs *certs, size_t i, struct sg_cert_info *out)
{
	struct sg_cert_info info = {0};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	const ASN1_OCTET_STRING *ski;
	X509 *x;

	if (certs == NULL || i >= (size_t)sk_X509_num(certs->sk))
		return SG_ERR_USAGE;
	x = sk_X509_value(certs->sk, (int)i);
	info.subject = sg_name_oneline(X509_get_subject_name(x));
	info.issuer = sg_name_oneline(X509_get_issuer_name(x));
	info.serial = sg_serial_hex(X509_get0_serialNumber(x));
	if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
		info.fingerprint = hex_of(md, mdlen, 0);
	if ((ski = X509_get0_subject_key_id(x)) != NULL)
		info.ski = hex_of(ASN1_STRING_get0_data(ski),
		                  (size_t)ASN1_STRING_length(ski), 0);
	info.key_type = key_type_of(X509_get0_pubkey(x));
	info.emails = sg_cert_emails(x);
	info.domains = domains_of(x);
	info.not_before = time_of(X509_get0_notBefore(x));
	info.not_after = time_of(X509_get0_notAfter(x));
	info.self_signed = (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
	info.is_ca = X509_check_ca(x) != 0;
	info.can_sign = fit(x, 1, &info.unfit_sign);
	info.can_encrypt = fit(x, 0, &info.unfit_encrypt);
	ERR_clear_error();
	if (info.subject == NULL || info.issuer == NULL ||
	    info.serial == NULL || info.fingerprint == NULL ||
	    info.key_type == NULL || info.emails == NULL ||
	    info.domains == NULL) {
		sg_cert_info_clear(&info);
		return SG_ERR_NOMEM;
	}
	*out = info;
	return SG_OK;
}

void
sg_cert_info_clear(struct sg_cert_info *info)
{
	if (info == NULL)
		return;
	free(info->subject);
	free(info->issuer);
	free(info->serial);
	free(info->fingerprint);
	free(info->ski);
	free(info->key_type);
	sg_strv_free(info->emails);
	sg_strv_free(info->domains);
	free(info->unfit_sign);
	free(info->unfit_encrypt);
	memset(info, 0, sizeof(*info));
}

enum sg_status
sg_certs_get_der(const struct sg_certs *certs, size_t i, unsigned char **der,
                 size_t *len)
{
	unsigned char *p = NULL, *copy;
	int n;

	if (certs == NULL || i >= (size_t)sk_X509_num(certs->sk))
		return SG_ERR_USAGE;
	if ((n = i2d_X509(sk_X509_value(certs->sk, (int)i), &p)) <= 0)
		return SG_ERR_INTERNAL;
	if ((copy = malloc((size_t)n)) == NULL) {
		OPENSSL_free(p);
		return SG_ERR_NOMEM;
	}
	memcpy(copy, p, (size_t)n);
	OPENSSL_free(p);
	*der = copy;
	*len = (size_t)n;
	return SG_OK;
}

enum sg_status
sg_certs_write_pem(struct sg_ctx *ctx, const struct sg_certs *certs,
                   struct sg_sink *sink)
{
	BIO *out = sg_sink_bio(sink, 0);
	int ok = out != NULL;

	sg_reset(ctx);
	for (int i = 0; ok && i < sk_X509_num(certs->sk); i++)
		ok = PEM_write_bio_X509(out, sk_X509_value(certs->sk, i));
	ok = ok && BIO_flush(out) == 1;
	BIO_free(out);
	return ok ? SG_OK
	          : sg_fail(ctx, SG_ERR_IO, "cannot write the certificates");
}

enum sg_status
sg_certs_push_from(struct sg_certs *dst, const struct sg_certs *src, size_t i)
{
	X509 *x;

	if (src == NULL || i >= (size_t)sk_X509_num(src->sk))
		return SG_ERR_USAGE;
	x = sk_X509_value(src->sk, (int)i);
	if (!X509_up_ref(x))
		return SG_ERR_INTERNAL;
	if (!sk_X509_push(dst->sk, x)) {
		X509_free(x);
		return SG_ERR_NOMEM;
	}
	return SG_OK;
}

enum sg_status
sg_csr_info(const char *pem, struct sg_cert_info *out)
{
	struct sg_cert_info info = {0};
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	STACK_OF(X509_EXTENSION) *exts = r ? X509_REQ_get_extensions(r) : NULL;
	GENERAL_NAMES *gens =
	    exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL)
	         : NULL;
	enum sg_status st = SG_OK;

	if (r == NULL) {
		st = SG_ERR_BADKEY;
		goto out;
	}
	info.subject = sg_name_oneline(X509_REQ_get_subject_name(r));
	info.key_type = key_type_of(X509_REQ_get0_pubkey(r));
	info.emails = names_of(gens, GEN_EMAIL);
	info.domains = names_of(gens, GEN_DNS);
	if (info.subject == NULL || info.key_type == NULL ||
	    info.emails == NULL || info.domains == NULL) {
		sg_cert_info_clear(&info);
		st = SG_ERR_NOMEM;
		goto out;
	}
	*out = info;
out:
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	BIO_free(b);
	ERR_clear_error();
	return st;
}

void
sg_lower_domain(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}
