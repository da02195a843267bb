/*
 * revocation.c - is a certificate revoked?  CRLs from configured files and
 * from the certificate's distribution points (fetched over http:// with
 * OpenSSL's HTTP client, bounded, cached by URL), and OCSP from its
 * authorityInfoAccess.  Every CRL and OCSP response is checked against the
 * certificate's issuer and its validity before it is believed.
 *
 * What it trusts: the issuer found in the caller's certificates or trust
 * anchors.  What it can reach: the http:// URLs named in the certificate,
 * only when the options allow it.  The cache is the only shared state; a
 * mutex guards it and is never held across a network exchange.
 */
#include "lib/sg_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define DEFAULT_TIMEOUT 10
#define DEFAULT_REFRESH 3600
#define RETRY_AFTER     60  /* a failed download is not retried sooner */
#define MAX_DP_URLS     4   /* distribution point URLs tried per cert */
#define OCSP_LEEWAY     300 /* seconds of clock skew allowed */

struct crl_entry {
	char *url;
	X509_CRL *crl;  /* NULL after a failed download */
	time_t fetched; /* when it was (last tried to be) fetched */
};

struct sg_revocation {
	pthread_mutex_t lock;
	STACK_OF(X509_CRL) * files; /* from crl_files, read-only after new */
	struct crl_entry cache[SG_REVOCATION_MAX_CACHE];
	size_t ncache;
	int fetch_crl_dp, use_ocsp;
	int timeout;
	unsigned refresh;
	size_t max_crl;
	char *proxy; /* "" for none */
};

/* One check's state: what was found so far and the best reason. */
struct check {
	struct sg_revocation *rv;
	struct sg_ctx *ctx;
	X509 *cert, *issuer;
	STACK_OF(X509) * untrusted; /* CERTS, for OCSP responder chains */
	const struct sg_certs *trust;
	time_t now;
	int answered; /* a trusted source said good */
	char good[256];
	char note[256]; /* why a source was not believed or not reached */
};

const char *
sg_revocation_status_name(enum sg_revocation_status s)
{
	switch (s) {
	case SG_REV_GOOD:
		return "good";
	case SG_REV_REVOKED:
		return "revoked";
	case SG_REV_UNKNOWN:
		return "unknown";
	}
	return "unknown";
}

/* Remembers the first reason a source did not answer. */
static void __attribute__((format(printf, 2, 3)))
note(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->note[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->note, sizeof(c->note), fmt, ap);
	va_end(ap);
}

/* "2026-01-02T03:04:05Z", or "?" */
static void
iso_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
}

static int
is_http(const char *url)
{
	return url != NULL && strncasecmp(url, "http://", 7) == 0;
}

/* ---- creation ---------------------------------------------------------- */

/* Appends every CRL of the file at PATH (PEM, one or more, or DER). */
static enum sg_status
load_crl_file(struct sg_revocation *rv, struct sg_ctx *ctx, const char *path)
{
	struct stat sb;
	BIO *b = NULL;
	X509_CRL *crl;
	int n = 0;
	enum sg_status st = SG_OK;

	if (stat(path, &sb) == -1 || !S_ISREG(sb.st_mode))
		return sg_fail_plain(ctx, SG_ERR_IO, "CRL file %s: cannot read",
		                     path);
	if ((size_t)sb.st_size > rv->max_crl)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "CRL file %s: larger than %zu bytes", path,
		                     rv->max_crl);
	if ((b = BIO_new_file(path, "rb")) == NULL)
		return sg_fail(ctx, SG_ERR_IO, "CRL file %s: cannot open",
		               path);
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_CRL_push(rv->files, crl)) {
			X509_CRL_free(crl);
			st = sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
			goto fail;
		}
		n++;
	}
	if (n == 0) {
		ERR_clear_error();
		if (BIO_seek(b, 0) != 0 ||
		    (crl = d2i_X509_CRL_bio(b, NULL)) == NULL) {
			st = sg_fail(ctx, SG_ERR_BADKEY,
			             "CRL file %s: no CRL in it", path);
			goto fail;
		}
		if (!sk_X509_CRL_push(rv->files, crl)) {
			X509_CRL_free(crl);
			st = sg_fail(ctx, SG_ERR_NOMEM, "out of memory");
			goto fail;
		}
	}
fail:
	ERR_clear_error();
	BIO_free(b);
	return st;
}

enum sg_status
sg_revocation_new(struct sg_ctx *ctx, const struct sg_revocation_opts *o,
                  struct sg_revocation **out)
{
	static const struct sg_revocation_opts none = {0};
	struct sg_revocation *rv;
	enum sg_status st;

	if (o == NULL)
		o = &none;
	if ((rv = calloc(1, sizeof(*rv))) == NULL)
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	if (pthread_mutex_init(&rv->lock, NULL) != 0) {
		free(rv);
		return sg_fail_plain(ctx, SG_ERR_NOMEM,
		                     "cannot create a mutex");
	}
	rv->fetch_crl_dp = o->fetch_crl_dp;
	rv->use_ocsp = o->use_ocsp;
	rv->timeout = o->timeout ? (int)o->timeout : DEFAULT_TIMEOUT;
	rv->refresh = o->crl_refresh ? o->crl_refresh : DEFAULT_REFRESH;
	rv->max_crl =
	    o->max_crl_size ? o->max_crl_size : SG_REVOCATION_MAX_CRL_DEFAULT;
	rv->proxy = strdup(o->proxy ? o->proxy : "");
	rv->files = sk_X509_CRL_new_null();
	if (rv->proxy == NULL || rv->files == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; o->crl_files && o->crl_files[i]; i++)
		if ((st = load_crl_file(rv, ctx, o->crl_files[i])) != SG_OK)
			goto fail;
	*out = rv;
	return SG_OK;
fail:
	sg_revocation_free(rv);
	return st;
}

void
sg_revocation_free(struct sg_revocation *rv)
{
	if (rv == NULL)
		return;
	for (size_t i = 0; i < rv->ncache; i++) {
		free(rv->cache[i].url);
		X509_CRL_free(rv->cache[i].crl);
	}
	sk_X509_CRL_pop_free(rv->files, X509_CRL_free);
	free(rv->proxy);
	pthread_mutex_destroy(&rv->lock);
	free(rv);
}

/* ---- CRLs -------------------------------------------------------------- */

/* Whether CRL is from C's issuer, signed by its key and valid now.  When
 * not, the reason is noted (only for a CRL of the right issuer name). */
static int
crl_trusted(struct check *c, X509_CRL *crl, const char *src)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	time_t now = c->now;
	char *who;
	int ok = 0;

	if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
	                  X509_get_issuer_name(c->cert)) != 0)
		return 0;
	who = sg_name_oneline(X509_CRL_get_issuer(crl));
	if ((X509_get_extension_flags(c->issuer) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(c->issuer) & KU_CRL_SIGN))
		note(c, "%s CRL of %s: issuer may not sign CRLs", src,
		     who ? who : "?");
	else if (X509_CRL_verify(crl, X509_get0_pubkey(c->issuer)) != 1)
		note(c, "%s CRL of %s: signature does not verify", src,
		     who ? who : "?");
	else if (X509_cmp_time(X509_CRL_get0_lastUpdate(crl), &now) > 0)
		note(c, "%s CRL of %s: not yet valid", src, who ? who : "?");
	else if (next != NULL && X509_cmp_time(next, &now) < 0)
		note(c, "%s CRL of %s: expired (nextUpdate passed)", src,
		     who ? who : "?");
	else
		ok = 1;
	free(who);
	ERR_clear_error();
	return ok;
}

/* The reason code of a CRL entry, as text, or NULL. */
static const char *
entry_reason(X509_REVOKED *r)
{
	ASN1_ENUMERATED *e =
	    X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	const char *s = NULL;

	if (e != NULL) {
		s = OCSP_crl_reason_str(ASN1_ENUMERATED_get(e));
		ASN1_ENUMERATED_free(e);
	}
	return s;
}

/* Looks C's certificate up in CRL (already trusted).  Returns
 * SG_REV_REVOKED or SG_REV_GOOD; WHY gets the reason. */
static enum sg_revocation_status
crl_lookup(struct check *c, X509_CRL *crl, char *why, size_t whylen)
{
	X509_REVOKED *r = NULL;
	char *who = sg_name_oneline(X509_CRL_get_issuer(crl));
	char when[32];
	const char *reason;
	enum sg_revocation_status s = SG_REV_GOOD;

	if (X509_CRL_get0_by_cert(crl, &r, c->cert) == 1 && r != NULL) {
		iso_time(X509_REVOKED_get0_revocationDate(r), when,
		         sizeof(when));
		reason = entry_reason(r);
		snprintf(why, whylen, "revoked by CRL of %s on %s%s%s%s",
		         who ? who : "?", when, reason ? " (" : "",
		         reason ? reason : "", reason ? ")" : "");
		s = SG_REV_REVOKED;
	} else if (!c->answered) {
		snprintf(c->good, sizeof(c->good), "CRL of %s: good",
		         who ? who : "?");
		c->answered = 1;
	}
	free(who);
	return s;
}

static enum sg_revocation_status
check_crl_files(struct check *c, char *why, size_t whylen)
{
	for (int i = 0; i < sk_X509_CRL_num(c->rv->files); i++) {
		X509_CRL *crl = sk_X509_CRL_value(c->rv->files, i);
		if (crl_trusted(c, crl, "file") &&
		    crl_lookup(c, crl, why, whylen) == SG_REV_REVOKED)
			return SG_REV_REVOKED;
	}
	return SG_REV_GOOD; /* "not revoked here"; c->answered says more */
}

/* A fresh cached CRL for URL (a new reference), or NULL; *SKIP is set when
 * a recent download failed and should not be retried yet. */
static X509_CRL *
cache_get(struct sg_revocation *rv, const char *url, time_t now, int *skip)
{
	X509_CRL *crl = NULL;

	*skip = 0;
	pthread_mutex_lock(&rv->lock);
	for (size_t i = 0; i < rv->ncache; i++) {
		struct crl_entry *e = &rv->cache[i];
		const ASN1_TIME *next;
		if (strcmp(e->url, url) != 0)
			continue;
		if (e->crl == NULL) {
			*skip =
			    now >= e->fetched && now - e->fetched < RETRY_AFTER;
			break;
		}
		next = X509_CRL_get0_nextUpdate(e->crl);
		if (now >= e->fetched &&
		    now - e->fetched < (time_t)rv->refresh &&
		    (next == NULL || X509_cmp_time(next, &now) > 0) &&
		    X509_CRL_up_ref(e->crl))
			crl = e->crl;
		break;
	}
	pthread_mutex_unlock(&rv->lock);
	return crl;
}

/* Stores CRL (NULL: a failed download) for URL, replacing the old entry or
 * the oldest one when the cache is full. */
static void
cache_put(struct sg_revocation *rv, const char *url, X509_CRL *crl, time_t now)
{
	struct crl_entry *e = NULL;
	char *copy = NULL;

	pthread_mutex_lock(&rv->lock);
	for (size_t i = 0; i < rv->ncache && e == NULL; i++)
		if (strcmp(rv->cache[i].url, url) == 0)
			e = &rv->cache[i];
	if (e == NULL) {
		if ((copy = strdup(url)) == NULL)
			goto out;
		if (rv->ncache < SG_REVOCATION_MAX_CACHE) {
			e = &rv->cache[rv->ncache++];
		} else {
			e = &rv->cache[0];
			for (size_t i = 1; i < rv->ncache; i++)
				if (rv->cache[i].fetched < e->fetched)
					e = &rv->cache[i];
			free(e->url);
			X509_CRL_free(e->crl);
		}
		e->url = copy;
		e->crl = NULL;
	}
	if (crl != NULL && X509_CRL_up_ref(crl)) {
		X509_CRL_free(e->crl);
		e->crl = crl;
	} else if (crl == NULL && e->crl != NULL) {
		/* Keep a CRL that is still within its validity; it is
		 * believed only while crl_trusted() says so. */
		e->fetched = now - (time_t)rv->refresh + RETRY_AFTER;
		goto out;
	}
	e->fetched = now;
out:
	pthread_mutex_unlock(&rv->lock);
}

/* A stale cached CRL for URL (after a failed download), or NULL. */
static X509_CRL *
cache_get_stale(struct sg_revocation *rv, const char *url)
{
	X509_CRL *crl = NULL;

	pthread_mutex_lock(&rv->lock);
	for (size_t i = 0; i < rv->ncache; i++)
		if (strcmp(rv->cache[i].url, url) == 0) {
			if (rv->cache[i].crl != NULL &&
			    X509_CRL_up_ref(rv->cache[i].crl))
				crl = rv->cache[i].crl;
			break;
		}
	pthread_mutex_unlock(&rv->lock);
	return crl;
}

/* Downloads a DER (or PEM) CRL from URL, at most max_crl bytes. */
static X509_CRL *
fetch_crl(struct check *c, const char *url)
{
	BIO *mem;
	X509_CRL *crl = NULL;

	ERR_clear_error();
	mem = OSSL_HTTP_get(url, c->rv->proxy, NULL, NULL, NULL, NULL, NULL, 0,
	                    NULL, NULL, 0, c->rv->max_crl, c->rv->timeout);
	if (mem == NULL) {
		unsigned long e = ERR_peek_last_error();
		note(c, "CRL %s: download failed%s%s%s", url, e ? " (" : "",
		     e && ERR_reason_error_string(e)
		         ? ERR_reason_error_string(e)
		         : "",
		     e ? ")" : "");
		ERR_clear_error();
		return NULL;
	}
	crl = d2i_X509_CRL_bio(mem, NULL);
	if (crl == NULL) {
		ERR_clear_error();
		(void)BIO_reset(mem);
		crl = PEM_read_bio_X509_CRL(mem, NULL, NULL, NULL);
	}
	if (crl == NULL)
		note(c, "CRL %s: not a CRL", url);
	BIO_free(mem);
	ERR_clear_error();
	return crl;
}

/* The http:// URLs of C's CRL distribution points (at most MAX_DP_URLS;
 * caller frees each and the array). */
static size_t
dp_urls(X509 *cert, char **urls)
{
	STACK_OF(DIST_POINT) *dps =
	    X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	size_t n = 0;

	for (int i = 0; i < sk_DIST_POINT_num(dps) && n < MAX_DP_URLS; i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (dp->distpoint == NULL || dp->distpoint->type != 0)
			continue;
		GENERAL_NAMES *gn = dp->distpoint->name.fullname;
		for (int j = 0; j < sk_GENERAL_NAME_num(gn) && n < MAX_DP_URLS;
		     j++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(gn, j);
			int type;
			ASN1_IA5STRING *s = GENERAL_NAME_get0_value(g, &type);
			if (type != GEN_URI || s == NULL ||
			    memchr(s->data, '\0', (size_t)s->length))
				continue;
			urls[n] =
			    strndup((const char *)s->data, (size_t)s->length);
			if (urls[n] != NULL && is_http(urls[n]))
				n++;
			else
				free(urls[n]);
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	ERR_clear_error();
	return n;
}

static enum sg_revocation_status
check_crl_dps(struct check *c, char *why, size_t whylen)
{
	char *urls[MAX_DP_URLS];
	size_t n = dp_urls(c->cert, urls);
	enum sg_revocation_status s = SG_REV_GOOD;
	int skip;

	for (size_t i = 0; i < n && s != SG_REV_REVOKED; i++) {
		X509_CRL *crl = cache_get(c->rv, urls[i], c->now, &skip);
		if (crl == NULL && !skip) {
			crl = fetch_crl(c, urls[i]);
			/* Only a CRL that checks out is cached. */
			if (crl != NULL && !crl_trusted(c, crl, "fetched")) {
				X509_CRL_free(crl);
				crl = NULL;
			}
			cache_put(c->rv, urls[i], crl, c->now);
		}
		if (crl == NULL)
			crl = cache_get_stale(c->rv, urls[i]);
		if (crl == NULL && skip)
			note(c, "CRL %s: download failed recently", urls[i]);
		if (crl != NULL && crl_trusted(c, crl, "cached"))
			s = crl_lookup(c, crl, why, whylen);
		X509_CRL_free(crl);
	}
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	return s;
}

/* ---- OCSP -------------------------------------------------------------- */

/* A store of the trust anchors and the issuer, at the check's time. */
static X509_STORE *
ocsp_store(struct check *c)
{
	X509_STORE *store = X509_STORE_new();

	if (store == NULL)
		return NULL;
	for (int i = 0; c->trust && i < sk_X509_num(c->trust->sk); i++)
		X509_STORE_add_cert(store, sk_X509_value(c->trust->sk, i));
	X509_STORE_add_cert(store, c->issuer);
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), c->now);
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	ERR_clear_error();
	return store;
}

/* Sends REQ to the responder at URL; the response or NULL (noted). */
static OCSP_RESPONSE *
ocsp_send(struct check *c, const char *url, OCSP_REQUEST *req)
{
	char *host = NULL, *port = NULL, *path = NULL;
	int ssl = 0;
	BIO *body = NULL, *rsp = NULL;
	OCSP_RESPONSE *resp = NULL;

	if (!OSSL_HTTP_parse_url(url, &ssl, NULL, &host, &port, NULL, &path,
	                         NULL, NULL) ||
	    ssl) {
		note(c, "OCSP %s: bad URL", url);
		goto out;
	}
	body = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST),
	                             (const ASN1_VALUE *)req);
	if (body == NULL)
		goto out;
	rsp = OSSL_HTTP_transfer(NULL, host, port, path, 0, c->rv->proxy, NULL,
	                         NULL, NULL, NULL, NULL, 0, NULL,
	                         "application/ocsp-request", body,
	                         "application/ocsp-response", 1,
	                         SG_REVOCATION_MAX_OCSP, c->rv->timeout, 0);
	if (rsp == NULL) {
		unsigned long e = ERR_peek_last_error();
		note(c, "OCSP %s: no response%s%s%s", url, e ? " (" : "",
		     e && ERR_reason_error_string(e)
		         ? ERR_reason_error_string(e)
		         : "",
		     e ? ")" : "");
		goto out;
	}
	resp = ASN1_item_d2i_bio(ASN1_ITEM_rptr(OCSP_RESPONSE), rsp, NULL);
	if (resp == NULL)
		note(c, "OCSP %s: malformed response", url);
out:
	ERR_clear_error();
	BIO_free(body);
	BIO_free(rsp);
	OPENSSL_free(host);
	OPENSSL_free(port);
	OPENSSL_free(path);
	return resp;
}

/* Whether the single response's times hold at the check's time. */
static int
ocsp_times_ok(struct check *c, ASN1_GENERALIZEDTIME *thisupd,
              ASN1_GENERALIZEDTIME *nextupd)
{
	time_t early = c->now + OCSP_LEEWAY, late = c->now - OCSP_LEEWAY;

	if (thisupd == NULL || X509_cmp_time(thisupd, &early) > 0) {
		note(c, "OCSP: response not yet valid");
		return 0;
	}
	if (nextupd != NULL && X509_cmp_time(nextupd, &late) < 0) {
		note(c, "OCSP: response expired");
		return 0;
	}
	return 1;
}

/* Reads the verified basic response BS for ID. */
static enum sg_revocation_status
ocsp_status(struct check *c, OCSP_BASICRESP *bs, OCSP_CERTID *id, char *why,
            size_t whylen)
{
	int status, reason;
	ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
	char when[32];

	if (!OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd,
	                           &nextupd)) {
		note(c, "OCSP: the response does not cover the certificate");
		return SG_REV_UNKNOWN;
	}
	if (!ocsp_times_ok(c, thisupd, nextupd))
		return SG_REV_UNKNOWN;
	switch (status) {
	case V_OCSP_CERTSTATUS_GOOD:
		snprintf(c->good, sizeof(c->good), "OCSP: good");
		c->answered = 1;
		return SG_REV_GOOD;
	case V_OCSP_CERTSTATUS_REVOKED:
		iso_time(rev, when, sizeof(when));
		snprintf(why, whylen, "revoked by OCSP on %s%s%s%s", when,
		         reason >= 0 ? " (" : "",
		         reason >= 0 ? OCSP_crl_reason_str(reason) : "",
		         reason >= 0 ? ")" : "");
		return SG_REV_REVOKED;
	default:
		note(c, "OCSP: responder does not know the certificate");
		return SG_REV_UNKNOWN;
	}
}

static enum sg_revocation_status
check_ocsp(struct check *c, char *why, size_t whylen)
{
	STACK_OF(OPENSSL_STRING) *aia = X509_get1_ocsp(c->cert);
	const char *url = NULL;
	OCSP_REQUEST *req = NULL;
	OCSP_CERTID *id = NULL;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	X509_STORE *store = NULL;
	enum sg_revocation_status s = SG_REV_UNKNOWN;
	int rst;

	for (int i = 0; i < sk_OPENSSL_STRING_num(aia) && url == NULL; i++)
		if (is_http(sk_OPENSSL_STRING_value(aia, i)))
			url = sk_OPENSSL_STRING_value(aia, i);
	if (url == NULL)
		goto out;
	if ((req = OCSP_REQUEST_new()) == NULL ||
	    (id = OCSP_cert_to_id(NULL, c->cert, c->issuer)) == NULL ||
	    !OCSP_request_add0_id(req, id)) {
		OCSP_CERTID_free(id);
		id = NULL;
		goto out;
	}
	if (!OCSP_request_add1_nonce(req, NULL, -1) ||
	    (resp = ocsp_send(c, url, req)) == NULL)
		goto out;
	rst = OCSP_response_status(resp);
	if (rst != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		note(c, "OCSP %s: %s", url, OCSP_response_status_str(rst));
		goto out;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		note(c, "OCSP %s: no basic response", url);
		goto out;
	}
	/* A nonce we sent must come back; a responder that sends none
	 * (pre-signed responses) is accepted within the validity times. */
	if (OCSP_check_nonce(req, bs) == 0) {
		note(c, "OCSP %s: nonce mismatch", url);
		goto out;
	}
	if ((store = ocsp_store(c)) == NULL)
		goto out;
	if (OCSP_basic_verify(bs, c->untrusted, store, 0) <= 0) {
		note(c, "OCSP %s: response signature or signer not trusted",
		     url);
		goto out;
	}
	s = ocsp_status(c, bs, id, why, whylen);
out:
	ERR_clear_error();
	X509_STORE_free(store);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	OCSP_REQUEST_free(req); /* frees ID */
	X509_email_free(aia);
	return s;
}

/* ---- the check ---------------------------------------------------------- */

/* CERT's issuer in LIST (not CERT itself), or NULL.  Names and key
 * identifiers can be copied by anyone: the candidate's key must also
 * verify CERT's signature, so that an impostor "CA" that came with a
 * message can never vouch for CRLs or OCSP responses. */
static X509 *
find_issuer(STACK_OF(X509) * list, X509 *cert)
{
	for (int i = 0; i < sk_X509_num(list); i++) {
		X509 *x = sk_X509_value(list, i);
		if (x != cert && X509_check_issued(x, cert) == X509_V_OK &&
		    X509_verify(cert, X509_get0_pubkey(x)) == 1)
			return x;
	}
	ERR_clear_error();
	return NULL;
}

int
sg_revocation_has_source(const struct sg_revocation *rv,
                         const struct sg_certs *certs, size_t i)
{
	STACK_OF(OPENSSL_STRING) * aia;
	X509 *cert;
	char *urls[MAX_DP_URLS];
	size_t n;
	int found = 0;

	if (rv == NULL || certs == NULL || i >= (size_t)sk_X509_num(certs->sk))
		return 0;
	if (sk_X509_CRL_num(rv->files) > 0)
		return 1;
	cert = sk_X509_value(certs->sk, (int)i);
	if (rv->use_ocsp) {
		aia = X509_get1_ocsp(cert);
		for (int k = 0; k < sk_OPENSSL_STRING_num(aia) && !found; k++)
			found = is_http(sk_OPENSSL_STRING_value(aia, k));
		X509_email_free(aia);
	}
	if (!found && rv->fetch_crl_dp) {
		n = dp_urls(cert, urls);
		found = n > 0;
		while (n > 0)
			free(urls[--n]);
	}
	ERR_clear_error();
	return found;
}

enum sg_status
sg_revocation_check(struct sg_revocation *rv, struct sg_ctx *ctx,
                    const struct sg_certs *certs, size_t i,
                    const struct sg_certs *trust,
                    enum sg_revocation_status *status, char *why, size_t whylen)
{
	struct check c = {.rv = rv, .ctx = ctx, .trust = trust};
	char reason[256] = "";
	enum sg_revocation_status s;

	if (rv == NULL || certs == NULL || status == NULL ||
	    i >= (size_t)sk_X509_num(certs->sk))
		return sg_fail_plain(ctx, SG_ERR_USAGE,
		                     "revocation check: no certificate %zu", i);
	c.cert = sk_X509_value(certs->sk, (int)i);
	c.untrusted = certs->sk;
	c.now = sg_ctx_now(ctx);
	if (X509_check_issued(c.cert, c.cert) == X509_V_OK &&
	    X509_verify(c.cert, X509_get0_pubkey(c.cert)) == 1) {
		s = SG_REV_GOOD;
		snprintf(reason, sizeof(reason),
		         "self-signed: revocation does not apply");
		goto done;
	}
	c.issuer = find_issuer(certs->sk, c.cert);
	if (c.issuer == NULL && trust != NULL)
		c.issuer = find_issuer(trust->sk, c.cert);
	if (c.issuer == NULL) {
		s = SG_REV_UNKNOWN;
		snprintf(reason, sizeof(reason), "issuer not found");
		goto done;
	}
	s = SG_REV_GOOD;
	if (rv->use_ocsp)
		s = check_ocsp(&c, reason, sizeof(reason));
	if (s != SG_REV_REVOKED)
		s = check_crl_files(&c, reason, sizeof(reason));
	if (s != SG_REV_REVOKED && rv->fetch_crl_dp && !c.answered)
		s = check_crl_dps(&c, reason, sizeof(reason));
	if (s != SG_REV_REVOKED) {
		s = c.answered ? SG_REV_GOOD : SG_REV_UNKNOWN;
		snprintf(reason, sizeof(reason), "%s",
		         c.answered  ? c.good
		         : c.note[0] ? c.note
		                     : "no CRL or OCSP responder reachable");
	}
done:
	ERR_clear_error();
	*status = s;
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", reason);
	return SG_OK;
}
