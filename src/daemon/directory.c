/*
 * directory.c - recipients' certificates from an LDAP directory, with a
 * positive and negative cache (directory.h says what it trusts and
 * reaches).  libldap is used here only.
 */
#include "daemon/directory.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/ldap_dl.h"
#include "daemon/reason.h"

#define DIRECTORY_MAX_CERTS 64   /* certificates decoded per search */
#define DIRECTORY_BUCKETS   8192 /* cache hash buckets */
#define DIRECTORY_PASS_MAX  1024 /* bytes of the bind password */

/* One cached answer: certificates, or none (a negative entry). */
struct dir_entry {
	char *key;              /* the address, domain lowercased */
	struct sg_certs *certs; /* NULL: the directory has none */
	time_t expires;
	struct dir_entry *hnext;         /* hash chain */
	struct dir_entry *older, *newer; /* insertion order */
};

struct directory_found {
	struct sg_ctx *ctx;
	struct sg_certs *all; /* decoded, not yet checked */
	unsigned values;      /* values seen */
	unsigned skipped;     /* too large, too many, undecodable */
};

struct directory {
	/* The configuration (copied). */
	char *uri, *bind_dn, *pass_file, *base, *filter;
	char *ca_file;
	int starttls;
	unsigned timeout, cache_ttl, negative_ttl, retry_after;

	pthread_mutex_t conn_mu;  /* guards ld, down_until, down_why */
	const struct ldap_api *L; /* libldap, loaded when first connecting */
	LDAP *ld;                 /* NULL: not connected */
	time_t down_until;        /* no new attempt before this */
	char down_why[512];       /* why the last attempt failed */

	pthread_mutex_t cache_mu; /* guards the cache */
	struct dir_entry *buckets[DIRECTORY_BUCKETS];
	struct dir_entry *oldest, *newest;
	size_t n, max;

	atomic_ulong queries, hits;
	time_t (*now)(void *);
	void *now_arg;
	enum sg_status (*search)(void *, const char *, struct directory_found *,
	                         char *, size_t);
	void *search_arg;
};

/* ---- Addresses and filters -------------------------------------------- */

static int
addr_ok(const char *addr)
{
	size_t len = strnlen(addr, DIRECTORY_ADDR_MAX + 1);

	if (len == 0 || len > DIRECTORY_ADDR_MAX || strchr(addr, '@') == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int
directory_filter(const char *fmt, const char *addr, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const char *pct;
	size_t o = 0;

	if (!addr_ok(addr) || (pct = strstr(fmt, "%s")) == NULL)
		return -1;
	for (const char *p = fmt; *p; p++) {
		if (p != pct) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p;
			continue;
		}
		for (const unsigned char *a = (const unsigned char *)addr; *a;
		     a++) {
			int esc = *a == '*' || *a == '(' || *a == ')' ||
			          *a == '\\' || *a >= 0x80;
			if (o + (esc ? 3 : 1) >= outlen)
				return -1;
			if (esc) {
				out[o++] = '\\';
				out[o++] = hex[*a >> 4];
				out[o++] = hex[*a & 15];
			} else
				out[o++] = (char)*a;
		}
		p++; /* the 's' */
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* ADDR with the part after its last '@' lowercased, into KEY. */
static void
cache_key(const char *addr, char key[DIRECTORY_ADDR_MAX + 1])
{
	char *at;

	snprintf(key, DIRECTORY_ADDR_MAX + 1, "%s", addr);
	if ((at = strrchr(key, '@')) != NULL)
		for (char *p = at + 1; *p; p++)
			*p = (char)tolower((unsigned char)*p);
}

/* ---- The cache ---------------------------------------------------------- */

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DIRECTORY_BUCKETS;
}

static time_t
now_of(const struct directory *d)
{
	return d->now ? d->now(d->now_arg) : time(NULL);
}

static struct dir_entry *
cache_find(struct directory *d, const char *key)
{
	struct dir_entry *e = d->buckets[hash(key)];

	while (e != NULL && strcmp(e->key, key) != 0)
		e = e->hnext;
	return e;
}

static void
cache_remove(struct directory *d, struct dir_entry *e)
{
	struct dir_entry **pp = &d->buckets[hash(e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		d->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		d->newest = e->older;
	d->n--;
	free(e->key);
	sg_certs_free(e->certs);
	free(e);
}

/* Caches CERTS (taken over; NULL: none) for KEY until EXPIRES. */
static void
cache_put(struct directory *d, const char *key, struct sg_certs *certs,
          time_t expires)
{
	struct dir_entry *e, *old;
	unsigned h = hash(key);

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->key = strdup(key)) == NULL) {
		free(e);
		sg_certs_free(certs);
		return; /* not cached: only slower */
	}
	e->certs = certs;
	e->expires = expires;
	pthread_mutex_lock(&d->cache_mu);
	if ((old = cache_find(d, key)) != NULL)
		cache_remove(d, old);
	while (d->n >= d->max && d->oldest != NULL)
		cache_remove(d, d->oldest);
	e->hnext = d->buckets[h];
	d->buckets[h] = e;
	e->older = d->newest;
	if (d->newest)
		d->newest->newer = e;
	else
		d->oldest = e;
	d->newest = e;
	d->n++;
	pthread_mutex_unlock(&d->cache_mu);
}

/* A new list with the certificates of SRC (new references). */
static enum sg_status
certs_copy(const struct sg_certs *src, struct sg_certs **out)
{
	struct sg_certs *c;

	if (sg_certs_new(&c) != SG_OK)
		return SG_ERR_NOMEM;
	for (size_t i = 0; i < sg_certs_count(src); i++)
		if (sg_certs_push_from(c, src, i) != SG_OK) {
			sg_certs_free(c);
			return SG_ERR_NOMEM;
		}
	*out = c;
	return SG_OK;
}

/* The cached answer for KEY: SG_OK (*OUT set), SG_ERR_NOT_FOUND, or
 * SG_ERR_TEMP meaning "not cached" (an expired entry is dropped). */
static enum sg_status
cache_get(struct directory *d, const char *key, struct sg_certs **out)
{
	struct dir_entry *e;
	enum sg_status st = SG_ERR_TEMP;
	time_t now = now_of(d);

	pthread_mutex_lock(&d->cache_mu);
	if ((e = cache_find(d, key)) != NULL) {
		if (e->expires <= now)
			cache_remove(d, e);
		else if (e->certs == NULL)
			st = SG_ERR_NOT_FOUND;
		else
			st = certs_copy(e->certs, out);
	}
	pthread_mutex_unlock(&d->cache_mu);
	return st;
}

/* ---- Values from a search ------------------------------------------------ */

void
directory_found_add(struct directory_found *f, const void *data, size_t len)
{
	struct sg_certs *tmp;

	f->values++;
	if (len == 0 || len > DIRECTORY_MAX_VALUE ||
	    f->values > DIRECTORY_MAX_VALUES || sg_certs_new(&tmp) != SG_OK) {
		f->skipped++;
		return;
	}
	/* DER X.509 or DER PKCS#7 certs-only (sg_certs_load_mem reads both;
	 * a value that is not DER is not read as PEM either). */
	if (((const unsigned char *)data)[0] != 0x30 ||
	    sg_certs_load_mem(f->ctx, tmp, data, len) != SG_OK)
		f->skipped++;
	for (size_t i = 0; i < sg_certs_count(tmp); i++)
		if (sg_certs_count(f->all) >= DIRECTORY_MAX_CERTS ||
		    sg_certs_push_from(f->all, tmp, i) != SG_OK) {
			f->skipped++;
			break;
		}
	sg_certs_free(tmp);
}

/* Why certificate INFO is not usable at NOW, or NULL. */
static const char *
unusable(const struct sg_cert_info *info, time_t now)
{
	if (info->is_ca)
		return "a CA certificate";
	if (now < info->not_before)
		return "not yet valid";
	if (now > info->not_after)
		return "expired";
	if (!info->can_encrypt)
		return info->unfit_encrypt ? info->unfit_encrypt
		                           : "not fit for encryption";
	return NULL;
}

/* The usable certificates of F->all into *OUT (NULL when none), the
 * earliest notAfter among them into *UNTIL, and when there are none,
 * why, into REASON. */
static enum sg_status
select_usable(struct directory_found *f, const char *addr,
              struct sg_certs **out, time_t *until, char *reason, size_t rlen)
{
	char *fps[DIRECTORY_MAX_CERTS], why[160] = "";
	size_t nfp = 0, nall = sg_certs_count(f->all);
	struct sg_certs *c;
	time_t now = sg_ctx_now(f->ctx);
	enum sg_status st = SG_OK;

	if (sg_certs_new(&c) != SG_OK)
		return SG_ERR_NOMEM;
	for (size_t i = 0; i < nall && st == SG_OK; i++) {
		struct sg_cert_info info;
		const char *no;
		int dup = 0;

		if (sg_certs_info(f->all, i, &info) != SG_OK)
			continue;
		for (size_t k = 0; k < nfp && !dup; k++)
			dup = strcmp(fps[k], info.fingerprint) == 0;
		if ((no = unusable(&info, now)) != NULL) {
			/* Say why about an end-entity one, if any. */
			if (!info.is_ca || why[0] == '\0')
				snprintf(why, sizeof(why), "%s",
				         info.is_ca ? "only CA certificates"
				                    : no);
		} else if (!dup) {
			if ((fps[nfp] = strdup(info.fingerprint)) == NULL ||
			    sg_certs_push_from(c, f->all, i) != SG_OK) {
				free(fps[nfp]);
				st = SG_ERR_NOMEM;
			} else {
				if (nfp == 0 || info.not_after < *until)
					*until = info.not_after;
				nfp++;
			}
		}
		sg_cert_info_clear(&info);
	}
	for (size_t k = 0; k < nfp; k++)
		free(fps[k]);
	if (st != SG_OK || nfp == 0) {
		sg_certs_free(c);
		c = NULL;
	}
	if (st == SG_OK && nfp == 0) {
		if (nall == 0 && f->values == 0)
			reason_set(reason, rlen,
			           "no certificate for %s in the directory",
			           addr);
		else if (nall == 0)
			reason_set(reason, rlen,
			           "%u value%s for %s in the directory, none a "
			           "readable certificate",
			           f->values, f->values == 1 ? "" : "s", addr);
		else
			reason_set(
			    reason, rlen,
			    "%zu certificate%s for %s in the directory, none "
			    "usable for encryption (%s)",
			    nall, nall == 1 ? "" : "s", addr, why);
		st = SG_ERR_NOT_FOUND;
	}
	*out = c;
	return st;
}

/* ---- LDAP ---------------------------------------------------------------- */

/* "server message" for RC on LD, into REASON after PREFIX. */
static enum sg_status
ldap_temp(struct directory *d, int rc, const char *what, char *reason,
          size_t rlen)
{
	const struct ldap_api *L = d->L;
	char *diag = NULL;

	if (d->ld != NULL)
		L->ldap_get_option(d->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	reason_set(reason, rlen, "directory %s: %s: %s%s%.200s", d->uri, what,
	           L->ldap_err2string(rc), diag && *diag ? ": " : "",
	           diag ? diag : "");
	L->ldap_memfree(diag);
	return SG_ERR_TEMP;
}

static void
ldap_drop(struct directory *d)
{
	if (d->ld != NULL)
		d->L->ldap_unbind_ext_s(d->ld, NULL, NULL);
	d->ld = NULL;
}

/* The bind password: the first line of the file, into PW. */
static int
read_pass(const char *path, char pw[DIRECTORY_PASS_MAX])
{
	FILE *f;
	int ok;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	ok = fgets(pw, DIRECTORY_PASS_MAX, f) != NULL;
	fclose(f);
	if (!ok)
		pw[0] = '\0';
	pw[strcspn(pw, "\r\n")] = '\0';
	return 0;
}

static enum sg_status
ldap_open(struct directory *d, char *reason, size_t rlen)
{
	struct timeval tv = {.tv_sec = (time_t)d->timeout};
	int rc, v3 = LDAP_VERSION3;
	char pw[DIRECTORY_PASS_MAX];
	const struct ldap_api *L;
	enum sg_status st;

	/* Loaded here, on first use (ldap_dl.h). */
	if ((L = d->L = sg_ldap_load(reason, rlen)) == NULL)
		return SG_ERR_TEMP;
	if ((rc = L->ldap_initialize(&d->ld, d->uri)) != LDAP_SUCCESS) {
		d->ld = NULL;
		return ldap_temp(d, rc, "cannot use the URI", reason, rlen);
	}
	if (L->ldap_set_option(d->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != 0 ||
	    L->ldap_set_option(d->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != 0 ||
	    L->ldap_set_option(d->ld, LDAP_OPT_TIMEOUT, &tv) != 0 ||
	    L->ldap_set_option(d->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != 0) {
		st = ldap_temp(d, LDAP_OTHER, "options", reason, rlen);
		goto fail;
	}
	if (d->ca_file != NULL) {
		/* This handle's own TLS context: the CA file, and a server
		 * certificate that must check against it. */
		int demand = LDAP_OPT_X_TLS_DEMAND, server = 0;

		if (L->ldap_set_option(d->ld, LDAP_OPT_X_TLS_CACERTFILE,
		                       d->ca_file) != 0 ||
		    L->ldap_set_option(d->ld, LDAP_OPT_X_TLS_REQUIRE_CERT,
		                       &demand) != 0 ||
		    L->ldap_set_option(d->ld, LDAP_OPT_X_TLS_NEWCTX, &server) !=
		        0) {
			st = ldap_temp(d, LDAP_OTHER,
			               "TLS options (ldap_ca_file)", reason,
			               rlen);
			goto fail;
		}
	}
	if (d->starttls &&
	    (rc = L->ldap_start_tls_s(d->ld, NULL, NULL)) != LDAP_SUCCESS) {
		st = ldap_temp(d, rc, "StartTLS", reason, rlen);
		goto fail;
	}
	if (d->bind_dn == NULL)
		return SG_OK; /* anonymous: the first search connects */
	if (read_pass(d->pass_file, pw) == -1) {
		reason_set(reason, rlen, "directory %s: cannot read %s", d->uri,
		           d->pass_file);
		st = SG_ERR_TEMP;
		goto fail;
	}
	struct berval cred = {.bv_len = strlen(pw), .bv_val = pw};
	rc = L->ldap_sasl_bind_s(d->ld, d->bind_dn, LDAP_SASL_SIMPLE, &cred,
	                         NULL, NULL, NULL);
	explicit_bzero(pw, sizeof(pw));
	if (rc != LDAP_SUCCESS) {
		st = ldap_temp(d, rc, "bind", reason, rlen);
		goto fail;
	}
	return SG_OK;
fail:
	ldap_drop(d);
	return st;
}

static int
wanted_attr(const char *a)
{
	static const char *const names[] = {
	    "userSMIMECertificate", "userSMIMECertificate;binary",
	    "userCertificate", "userCertificate;binary", NULL};

	for (size_t i = 0; names[i] != NULL; i++)
		if (strcasecmp(a, names[i]) == 0)
			return 1;
	return 0;
}

static void
ldap_collect(const struct ldap_api *L, LDAP *ld, LDAPMessage *res,
             struct directory_found *f)
{
	for (LDAPMessage *e = L->ldap_first_entry(ld, res); e != NULL;
	     e = L->ldap_next_entry(ld, e)) {
		BerElement *ber = NULL;
		for (char *a = L->ldap_first_attribute(ld, e, &ber); a != NULL;
		     a = L->ldap_next_attribute(ld, e, ber)) {
			struct berval **v =
			    wanted_attr(a) ? L->ldap_get_values_len(ld, e, a)
			                   : NULL;
			for (size_t i = 0; v != NULL && v[i] != NULL; i++)
				directory_found_add(f, v[i]->bv_val,
				                    v[i]->bv_len);
			L->ldap_value_free_len(v);
			L->ldap_memfree(a);
		}
		L->ber_free(ber, 0);
	}
}

/* One search on the open connection.  *DROP: the connection is no good. */
static enum sg_status
ldap_query(struct directory *d, const char *filter, struct directory_found *f,
           int *drop, char *reason, size_t rlen)
{
	static char *attrs[] = {"userSMIMECertificate",
	                        "userCertificate;binary", "userCertificate",
	                        NULL};
	struct timeval tv = {.tv_sec = (time_t)d->timeout};
	const struct ldap_api *L = d->L;
	LDAPMessage *res = NULL;
	enum sg_status st = SG_OK;
	int rc;

	*drop = 0;
	rc = L->ldap_search_ext_s(d->ld, d->base, LDAP_SCOPE_SUBTREE, filter,
	                          attrs, 0, NULL, NULL, &tv,
	                          DIRECTORY_MAX_ENTRIES, &res);
	if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED)
		ldap_collect(L, d->ld, res, f);
	else if (rc == LDAP_NO_SUCH_OBJECT) {
		reason_set(reason, rlen,
		           "directory %s: the search base %s does not "
		           "exist",
		           d->uri, d->base);
		st = SG_ERR_TEMP;
	} else {
		st = ldap_temp(d, rc, "search", reason, rlen);
		*drop = 1;
	}
	L->ldap_msgfree(res);
	return st;
}

/* The search on LDAP, connecting first when needed; a failure on an
 * established connection is tried once more on a new one. */
static enum sg_status
ldap_search_values(struct directory *d, const char *filter,
                   struct directory_found *f, char *reason, size_t rlen)
{
	enum sg_status st = SG_ERR_TEMP;
	time_t now = now_of(d);
	int drop = 0, down = 0;

	pthread_mutex_lock(&d->conn_mu);
	/* Down a moment ago: say so at once instead of making every
	 * worker wait for the timeouts again (ldap_retry_after). */
	if (d->ld == NULL && now < d->down_until) {
		reason_set(reason, rlen, "%s (not tried again for %llds)",
		           d->down_why, (long long)(d->down_until - now));
		pthread_mutex_unlock(&d->conn_mu);
		return SG_ERR_TEMP;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int fresh = d->ld == NULL;
		if (fresh && (st = ldap_open(d, reason, rlen)) != SG_OK) {
			down = 1;
			break;
		}
		st = ldap_query(d, filter, f, &drop, reason, rlen);
		if (drop)
			ldap_drop(d);
		if (!drop || fresh) {
			down = drop;
			break;
		}
	}
	if (down && d->retry_after > 0) {
		d->down_until = now_of(d) + (time_t)d->retry_after;
		snprintf(d->down_why, sizeof(d->down_why), "%s",
		         reason ? reason : "the directory is down");
	} else if (!down) {
		d->down_until = 0;
	}
	pthread_mutex_unlock(&d->conn_mu);
	return st;
}

/* ---- The API ---------------------------------------------------------------
 */

static int
dup_opt(char **dst, const char *s)
{
	*dst = NULL;
	return s != NULL && (*dst = strdup(s)) == NULL ? -1 : 0;
}

struct directory *
directory_new(const struct cfg_ldap *cfg)
{
	struct directory *d;

	if (cfg == NULL || cfg->uri == NULL || cfg->base == NULL ||
	    (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	pthread_mutex_init(&d->conn_mu, NULL);
	pthread_mutex_init(&d->cache_mu, NULL);
	d->max = DIRECTORY_CACHE_MAX;
	d->starttls = cfg->starttls;
	d->timeout = cfg->timeout ? cfg->timeout : 5;
	d->cache_ttl = cfg->cache_ttl;
	d->negative_ttl = cfg->negative_ttl;
	d->retry_after = cfg->retry_after;
	if (dup_opt(&d->uri, cfg->uri) == -1 ||
	    dup_opt(&d->ca_file, cfg->ca_file) == -1 ||
	    dup_opt(&d->bind_dn, cfg->bind_dn) == -1 ||
	    dup_opt(&d->pass_file, cfg->bind_password_file) == -1 ||
	    dup_opt(&d->base, cfg->base) == -1 ||
	    dup_opt(&d->filter, cfg->filter ? cfg->filter : "(mail=%s)") ==
	        -1 ||
	    (d->bind_dn == NULL) != (d->pass_file == NULL)) {
		directory_free(d);
		return NULL;
	}
	return d;
}

void
directory_free(struct directory *d)
{
	if (d == NULL)
		return;
	ldap_drop(d);
	while (d->oldest != NULL)
		cache_remove(d, d->oldest);
	pthread_mutex_destroy(&d->conn_mu);
	pthread_mutex_destroy(&d->cache_mu);
	free(d->uri);
	free(d->ca_file);
	free(d->bind_dn);
	free(d->pass_file);
	free(d->base);
	free(d->filter);
	free(d);
}

void
directory_stats(const struct directory *d, unsigned long *queries,
                unsigned long *hits)
{
	if (queries != NULL)
		*queries = atomic_load(&d->queries);
	if (hits != NULL)
		*hits = atomic_load(&d->hits);
}

void
directory_set_clock(struct directory *d, time_t (*now)(void *arg), void *arg)
{
	d->now = now;
	d->now_arg = arg;
}

void
directory_set_cache_max(struct directory *d, size_t max)
{
	pthread_mutex_lock(&d->cache_mu);
	d->max = max ? max : DIRECTORY_CACHE_MAX;
	while (d->n > d->max)
		cache_remove(d, d->oldest);
	pthread_mutex_unlock(&d->cache_mu);
}

void
directory_set_search(struct directory *d,
                     enum sg_status (*search)(void *arg, const char *filter,
                                              struct directory_found *f,
                                              char *reason, size_t rlen),
                     void *arg)
{
	d->search = search;
	d->search_arg = arg;
}

/* Caches the answer of a search: certificates (CERTS, may be NULL) or
 * none, for the configured time. */
static void
remember(struct directory *d, const char *key, const struct sg_certs *certs,
         time_t until)
{
	struct sg_certs *copy = NULL;
	time_t now = now_of(d), exp;

	if (certs != NULL) {
		if (d->cache_ttl == 0 || certs_copy(certs, &copy) != SG_OK)
			return;
		exp = now + (time_t)d->cache_ttl;
		if (until < exp)
			exp = until; /* never past a certificate's expiry */
	} else {
		if (d->negative_ttl == 0)
			return;
		exp = now + (time_t)d->negative_ttl;
	}
	cache_put(d, key, copy, exp);
}

enum sg_status
directory_lookup(struct directory *d, struct sg_ctx *ctx, const char *addr,
                 struct sg_certs **out, char *reason, size_t rlen)
{
	char key[DIRECTORY_ADDR_MAX + 1], *filter = NULL;
	struct directory_found f = {.ctx = ctx};
	struct sg_certs *certs = NULL;
	size_t flen;
	time_t until = 0;
	enum sg_status st;

	if (!addr_ok(addr)) {
		reason_set(
		    reason, rlen,
		    "address refused for a directory lookup (empty, no '@', "
		    "over %d bytes or control characters)",
		    DIRECTORY_ADDR_MAX);
		return SG_ERR_USAGE;
	}
	cache_key(addr, key);
	st = cache_get(d, key, &certs);
	if (st == SG_OK || st == SG_ERR_NOT_FOUND) {
		atomic_fetch_add(&d->hits, 1);
		if (st == SG_OK) {
			reason_set(reason, rlen,
			           "%zu certificate%s for %s (cached)",
			           sg_certs_count(certs),
			           sg_certs_count(certs) == 1 ? "" : "s", addr);
			*out = certs;
		} else
			reason_set(
			    reason, rlen,
			    "no usable certificate for %s in the directory "
			    "(cached)",
			    addr);
		return st;
	}
	flen = strlen(d->filter) + 3 * DIRECTORY_ADDR_MAX + 1;
	if ((filter = malloc(flen)) == NULL || sg_certs_new(&f.all) != SG_OK) {
		st = SG_ERR_NOMEM;
		reason_set(reason, rlen, "out of memory");
		goto out;
	}
	if (directory_filter(d->filter, addr, filter, flen) == -1) {
		st = SG_ERR_INTERNAL; /* addr_ok passed and flen suffices */
		reason_set(reason, rlen, "cannot build the filter");
		goto out;
	}
	atomic_fetch_add(&d->queries, 1);
	st = d->search ? d->search(d->search_arg, filter, &f, reason, rlen)
	               : ldap_search_values(d, filter, &f, reason, rlen);
	if (st != SG_OK)
		goto out; /* SG_ERR_TEMP: not cached */
	st = select_usable(&f, addr, &certs, &until, reason, rlen);
	if (st == SG_OK || st == SG_ERR_NOT_FOUND)
		remember(d, key, certs, until);
	if (st == SG_OK) {
		reason_set(reason, rlen,
		           "%zu certificate%s for %s from the directory",
		           sg_certs_count(certs),
		           sg_certs_count(certs) == 1 ? "" : "s", addr);
		*out = certs;
	}
out:
	sg_certs_free(f.all);
	free(filter);
	return st;
}
