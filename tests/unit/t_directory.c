/*
 * t_directory.c - directory lookup (daemon/directory.c) without a server:
 * RFC 4515 filter escaping, the ldap_* configuration keys and their
 * FILE:LINE errors, the cache (TTL, negative answers, temporary failures
 * not cached, eviction) on an injected clock, and the decoding of the
 * values a search returns (DER, PKCS#7 certs-only) through an injected
 * search.  The real LDAP path is tested against slapd in
 * tests/e2e/test_ldap.py.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "daemon/directory.h"
#include "lib/sg_int.h" /* struct sg_certs: to build a PKCS#7 bundle */
#include "policy/config.h"

/* ---- Filter escaping ------------------------------------------------------
 */

static void
filter_escapes_rfc4515(void)
{
	static const struct {
		const char *fmt, *addr, *want; /* want NULL: refused */
	} cases[] = {
	    {"(mail=%s)", "alice@example.com", "(mail=alice@example.com)"},
	    {"(mail=%s)", "*@example.com", "(mail=\\2a@example.com)"},
	    {"(mail=%s)", "a(b)c\\d@x.org", "(mail=a\\28b\\29c\\5cd@x.org)"},
	    {"(mail=%s)", "*)(objectClass=*@x",
	     "(mail=\\2a\\29\\28objectClass=\\2a@x)"},
	    {"(mail=%s)", "j\xc3\xb6rg@example.de",
	     "(mail=j\\c3\\b6rg@example.de)"},
	    {"(&(objectClass=person)(|(mail=%s)(proxyAddresses=smtp:x)))",
	     "bob@example.org",
	     "(&(objectClass=person)(|(mail=bob@example.org)(proxyAddresses="
	     "smtp:x)))"},
	    /* Refused: empty, no '@', control characters. */
	    {"(mail=%s)", "", NULL},
	    {"(mail=%s)", "no-at-sign", NULL},
	    {"(mail=%s)", "a\n@example.com", NULL},
	    {"(mail=%s)", "a\x7f@example.com", NULL},
	    {"(mail=%s)", "a@example.com\r", NULL},
	    {"(mail=)", "a@example.com", NULL}, /* no %s */
	};
	char out[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int rc = directory_filter(cases[i].fmt, cases[i].addr, out,
		                          sizeof(out));
		if (cases[i].want == NULL
		        ? rc != -1
		        : rc != 0 || strcmp(out, cases[i].want))
			unit_fail(__FILE__, __LINE__, cases[i].addr);
	}
}

static void
filter_bounds(void)
{
	char addr[DIRECTORY_ADDR_MAX + 2], out[2048], small[16];

	/* 320 bytes pass, 321 are refused. */
	memset(addr, 'a', sizeof(addr));
	addr[0] = 'x';
	addr[10] = '@';
	addr[DIRECTORY_ADDR_MAX] = '\0';
	CHECK_EQ(directory_filter("(mail=%s)", addr, out, sizeof(out)), 0);
	CHECK_EQ(strlen(out), DIRECTORY_ADDR_MAX + 7);
	addr[DIRECTORY_ADDR_MAX] = 'a';
	addr[DIRECTORY_ADDR_MAX + 1] = '\0';
	CHECK_EQ(directory_filter("(mail=%s)", addr, out, sizeof(out)), -1);
	/* The output buffer is never overrun. */
	CHECK_EQ(directory_filter("(mail=%s)", "abcdef@example.com", small,
	                          sizeof(small)),
	         -1);
	CHECK_EQ(directory_filter("(mail=%s)", "****@x", small, 18), -1);
	CHECK_EQ(directory_filter("(mail=%s)", "**@x", small, sizeof(small)),
	         0);
	CHECK_STR(small, "(mail=\\2a\\2a@x)");
}

/* ---- Configuration --------------------------------------------------------
 */

static const char listener[] = "\n[listener in]\n"
                               "listen = 127.0.0.1:2525\n"
                               "role = incoming\n"
                               "local_domains = example.com\n";

static char *
write_conf(const char *globals)
{
	char *path = strdup("/tmp/t_directory_XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	if (f == NULL)
		abort();
	fprintf(f, "%s%s", globals, listener);
	fclose(f);
	return path;
}

static void
config_defaults(void)
{
	char *path = write_conf("ldap_uri = ldap://dc1.example.com\n"
	                        "ldap_base = dc=example,dc=com\n"),
	     err[512] = "";
	struct cfg *c = NULL;

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	CHECK(c != NULL && c->ldap != NULL);
	if (c != NULL && c->ldap != NULL) {
		CHECK_STR(c->ldap->uri, "ldap://dc1.example.com");
		CHECK_STR(c->ldap->base, "dc=example,dc=com");
		CHECK_STR(c->ldap->filter, "(mail=%s)");
		CHECK(c->ldap->bind_dn == NULL);
		CHECK(c->ldap->bind_password_file == NULL);
		CHECK_EQ(c->ldap->starttls, 0);
		CHECK_EQ(c->ldap->timeout, 5u);
		CHECK_EQ(c->ldap->cache_ttl, 3600u);
		CHECK_EQ(c->ldap->negative_ttl, 600u);
		CHECK_EQ(c->ldap->retry_after, 30u);
		CHECK(c->ldap->ca_file == NULL);
	}
	cfg_free(c);
	unlink(path);
	free(path);

	/* No ldap_* key: no directory. */
	path = write_conf("hostname = gw.example.com\n");
	c = NULL;
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	CHECK(c != NULL && c->ldap == NULL);
	cfg_free(c);
	unlink(path);
	free(path);
}

static void
config_all_keys(void)
{
	char pw[] = "/tmp/t_directory_pw_XXXXXX", text[1024], err[512] = "";
	int fd = mkstemp(pw); /* mode 0600 */
	struct cfg *c = NULL;

	CHECK(fd != -1 && write(fd, "secret\n", 7) == 7);
	close(fd);
	snprintf(
	    text, sizeof(text),
	    "ldap_uri = ldaps://dc1.example.com:636\n"
	    "ldap_bind_dn = CN=gw,OU=Services,DC=example,DC=com\n"
	    "ldap_bind_password_file = %s\n"
	    "ldap_base = DC=example,DC=com\n"
	    "ldap_filter = (&(objectClass=user)(proxyAddresses=smtp:%%s))\n"
	    "ldap_starttls = off\n"
	    "ldap_timeout = 10s\n"
	    "ldap_cache_ttl = 2h\n"
	    "ldap_negative_ttl = 0\n",
	    pw);
	char *path = write_conf(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	if (c != NULL && c->ldap != NULL) {
		CHECK_STR(c->ldap->bind_dn,
		          "CN=gw,OU=Services,DC=example,DC=com");
		CHECK_STR(c->ldap->bind_password_file, pw);
		CHECK_STR(c->ldap->filter,
		          "(&(objectClass=user)(proxyAddresses=smtp:%s))");
		CHECK_EQ(c->ldap->timeout, 10u);
		CHECK_EQ(c->ldap->cache_ttl, 7200u);
		CHECK_EQ(c->ldap->negative_ttl, 0u);
	} else
		unit_fail(__FILE__, __LINE__, err);
	cfg_free(c);
	unlink(path);
	free(path);

	/* The password file readable by others: refused, at its line. */
	chmod(pw, 0644);
	c = NULL;
	path = write_conf(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_ERR_USAGE);
	CHECK(strstr(err, ":3: ldap_bind_password_file") != NULL);
	CHECK(strstr(err, "chmod 600") != NULL);
	cfg_free(c);
	unlink(path);
	free(path);
	unlink(pw);
}

static void
config_errors_name_the_line(void)
{
	static const struct {
		const char *text, *want; /* want: ":LINE: reason" part */
	} cases[] = {
	    {"ldap_uri = http://x\n", ":1: ldap_uri wants ldap://"},
	    {"ldap_uri = ldap://\n", ":1: ldap_uri \"ldap://\": one server"},
	    {"ldap_uri = ldap://a ldap://b\n", ":1: ldap_uri"},
	    {"hostname = gw\nldap_base = dc=x\n",
	     ":2: ldap_* settings need ldap_uri"},
	    {"hostname = gw\nldap_uri = ldap://x\n",
	     ":2: ldap_* settings need ldap_base"},
	    {"ldap_uri = ldap://x\nldap_base = dc=x\nldap_filter = (mail=x)\n",
	     ":3: ldap_filter wants exactly one %s"},
	    {"ldap_uri = ldap://x\nldap_filter = (|(mail=%s)(uid=%s))\n",
	     ":2: ldap_filter wants exactly one %s"},
	    {"ldap_uri = ldap://x\nldap_filter = (mail=%d)\n",
	     ":2: ldap_filter: only %s"},
	    {"ldap_uri = ldap://x\nldap_filter = mail=%s\n",
	     ":2: ldap_filter must be in parentheses"},
	    {"ldap_uri = ldap://x\nldap_base = dc=x\n\nldap_bind_dn = cn=a\n",
	     ":4: ldap_bind_dn and ldap_bind_password_file go together"},
	    {"ldap_uri = ldap://x\nldap_base = dc=x\n"
	     "ldap_bind_password_file = /nonexistent/pw\n",
	     ":3: ldap_bind_dn and ldap_bind_password_file go together"},
	    {"ldap_uri = ldap://x\nldap_base = dc=x\nldap_bind_dn = cn=a\n"
	     "ldap_bind_password_file = /nonexistent/pw\n",
	     ":4: ldap_bind_password_file /nonexistent/pw: cannot read"},
	    {"ldap_uri = ldap://x\nldap_base = dc=x\nldap_bind_dn = cn=a\n"
	     "ldap_bind_password_file = /tmp\n",
	     ":4: ldap_bind_password_file /tmp: not a regular file"},
	    {"ldap_uri = ldap://x\nldap_starttls = yes\n",
	     ":2: \"yes\": on or off"},
	    {"ldap_uri = ldaps://x\nldap_base = dc=x\nldap_starttls = on\n",
	     ":3: ldap_starttls = on with an ldaps:// ldap_uri"},
	    {"ldap_uri = ldap://x\nldap_timeout = 0\n",
	     ":2: \"0\": a duration from 1s to 300s"},
	    {"ldap_uri = ldap://x\nldap_timeout = 5 minutes\n",
	     ":2: \"5 minutes\": a duration"},
	    {"ldap_uri = ldap://x\nldap_cache_ttl = 8d\n",
	     ":2: \"8d\": a duration from 0s to 604800s"},
	    {"ldap_uri = ldap://x\nldap_negative_ttl = 2d\n",
	     ":2: \"2d\": a duration from 0s to 86400s"},
	    {"ldap_uri = ldap://x\nldap_base =\n", ":2: "},
	    {"ldap_uri = ldap://x\nldap_port = 389\n",
	     ":2: unknown setting \"ldap_port\""},
	    {"ldap_uri = ldap://x\nldap_uri = ldap://y\n", ":2: "},
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *path = write_conf(cases[i].text);
		struct cfg *c = NULL;
		err[0] = '\0';
		if (cfg_load(path, &c, err, sizeof(err)) != SG_ERR_USAGE ||
		    strncmp(err, path, strlen(path)) != 0 ||
		    strstr(err, cases[i].want) == NULL) {
			fprintf(stderr, "    case %zu: got \"%s\"\n", i, err);
			unit_fail(__FILE__, __LINE__, cases[i].want);
		}
		cfg_free(c);
		unlink(path);
		free(path);
	}
}

/* ---- Lookups through an injected search -----------------------------------
 */

struct fake {
	unsigned calls;
	char filter[1200];
	const char *match; /* the filter text that finds VALUES */
	const unsigned char *values[4];
	size_t lens[4];
	size_t nvalues;
	time_t now;
};

static enum sg_status
fake_search(void *arg, const char *filter, struct directory_found *f,
            char *reason, size_t rlen)
{
	struct fake *fk = arg;

	fk->calls++;
	snprintf(fk->filter, sizeof(fk->filter), "%s", filter);
	if (strstr(filter, "down@") != NULL) {
		snprintf(reason, rlen, "directory ldap://x: Can't contact");
		return SG_ERR_TEMP;
	}
	if (fk->match != NULL && strstr(filter, fk->match) != NULL)
		for (size_t i = 0; i < fk->nvalues; i++)
			directory_found_add(f, fk->values[i], fk->lens[i]);
	return SG_OK;
}

static time_t
fake_now(void *arg)
{
	return ((struct fake *)arg)->now;
}

static struct sg_key *
make_key(struct sg_ctx *ctx, const char *cn, const char *mail, int ca,
         unsigned days, const struct sg_key *issuer)
{
	const char *mails[] = {mail, NULL};
	struct sg_cert_req req = {.cn = cn,
	                          .days = days,
	                          .key = SG_KEY_EC_P256,
	                          .ca = ca,
	                          .san_emails = mail ? mails : NULL};
	struct sg_key *k = NULL;

	CHECK_EQ(sg_cert_create(ctx, &req, issuer, &k), SG_OK);
	return k;
}

/* The DER of KEY's certificate (caller frees). */
static unsigned char *
cert_der(const struct sg_key *k, size_t *len)
{
	struct sg_certs *c = NULL;
	unsigned char *der = NULL;

	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	CHECK_EQ(sg_certs_get_der(c, 0, &der, len), SG_OK);
	sg_certs_free(c);
	return der;
}

/* A DER PKCS#7 certs-only bundle of the certificates of KEYS, as
 * `openssl crl2pkcs7 -nocrl` makes it (caller frees). */
static unsigned char *
certs_only(const struct sg_key *const *keys, size_t n, size_t *len)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL, *out = NULL;
	int dlen;

	CHECK(p7 != NULL && PKCS7_set_type(p7, NID_pkcs7_signed) &&
	      PKCS7_content_new(p7, NID_pkcs7_data));
	for (size_t i = 0; p7 != NULL && i < n; i++) {
		struct sg_certs *c = NULL;
		CHECK_EQ(sg_key_get_certs(keys[i], &c), SG_OK);
		if (c != NULL)
			CHECK(
			    PKCS7_add_certificate(p7, sk_X509_value(c->sk, 0)));
		sg_certs_free(c);
	}
	if ((dlen = i2d_PKCS7(p7, &der)) > 0 && (out = malloc((size_t)dlen))) {
		memcpy(out, der, (size_t)dlen);
		*len = (size_t)dlen;
	}
	OPENSSL_free(der);
	PKCS7_free(p7);
	return out;
}

static struct directory *
fake_directory(struct fake *fk, unsigned ttl, unsigned neg)
{
	struct cfg_ldap cl = {.uri = "ldap://127.0.0.1:1",
	                      .base = "dc=example,dc=org",
	                      .filter = "(mail=%s)",
	                      .timeout = 1,
	                      .cache_ttl = ttl,
	                      .negative_ttl = neg};
	struct directory *d = directory_new(&cl);

	CHECK(d != NULL);
	if (d != NULL) {
		directory_set_search(d, fake_search, fk);
		directory_set_clock(d, fake_now, fk);
	}
	return d;
}

static void
stats_are(struct directory *d, unsigned long q, unsigned long h, int line)
{
	unsigned long gq, gh;

	directory_stats(d, &gq, &gh);
	if (gq != q || gh != h) {
		fprintf(stderr, "    queries=%lu hits=%lu, want %lu %lu\n", gq,
		        gh, q, h);
		unit_fail(__FILE__, line, "directory_stats");
	}
}

/* One lookup; returns its status, frees any certificates, and checks
 * the count when it found some. */
static enum sg_status
look(struct directory *d, struct sg_ctx *ctx, const char *addr, size_t want,
     char *reason, size_t rlen)
{
	struct sg_certs *c = NULL;
	enum sg_status st = directory_lookup(d, ctx, addr, &c, reason, rlen);

	if (st == SG_OK && sg_certs_count(c) != want)
		unit_fail(__FILE__, __LINE__, addr);
	if (st != SG_OK && c != NULL)
		unit_fail(__FILE__, __LINE__, "*out set on failure");
	sg_certs_free(c);
	return st;
}

static void
cache_ttls_on_a_clock(void)
{
	struct sg_ctx *ctx = NULL;
	struct fake fk = {.match = "alice@example.com"};
	char r[256];

	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	fk.now = sg_ctx_now(ctx);
	struct sg_key *ca = make_key(ctx, "CA", NULL, 1, 3650, NULL);
	struct sg_key *alice =
	    make_key(ctx, "Alice", "alice@example.com", 0, 365, ca);
	unsigned char *der = cert_der(alice, &fk.lens[0]);
	fk.values[0] = der;
	fk.nvalues = 1;
	struct directory *d = fake_directory(&fk, 3600, 600);
	if (d == NULL)
		goto out;
	time_t t0 = fk.now;

	CHECK_EQ(look(d, ctx, "alice@example.com", 1, r, sizeof(r)), SG_OK);
	CHECK_STR(fk.filter, "(mail=alice@example.com)");
	CHECK(strstr(r, "from the directory") != NULL);
	stats_are(d, 1, 0, __LINE__);
	/* The domain in any case is the same address. */
	fk.now = t0 + 3599;
	CHECK_EQ(look(d, ctx, "alice@Example.COM", 1, r, sizeof(r)), SG_OK);
	CHECK(strstr(r, "(cached)") != NULL);
	stats_are(d, 1, 1, __LINE__);
	fk.now = t0 + 3600; /* expired: asked again */
	CHECK_EQ(look(d, ctx, "alice@example.com", 1, r, sizeof(r)), SG_OK);
	stats_are(d, 2, 1, __LINE__);

	/* Negative answers, for negative_ttl. */
	fk.now = t0;
	CHECK_EQ(look(d, ctx, "nobody@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	CHECK(strstr(r, "no certificate for nobody@example.com") != NULL);
	fk.now = t0 + 599;
	CHECK_EQ(look(d, ctx, "nobody@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	stats_are(d, 3, 2, __LINE__);
	fk.now = t0 + 600;
	CHECK_EQ(look(d, ctx, "nobody@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	stats_are(d, 4, 2, __LINE__);

	/* A temporary failure is never cached. */
	CHECK_EQ(look(d, ctx, "down@example.com", 0, r, sizeof(r)),
	         SG_ERR_TEMP);
	CHECK(strstr(r, "Can't contact") != NULL);
	CHECK_EQ(look(d, ctx, "down@example.com", 0, r, sizeof(r)),
	         SG_ERR_TEMP);
	stats_are(d, 6, 2, __LINE__);

	/* Refused addresses: no query at all. */
	CHECK_EQ(look(d, ctx, "bad\r\n@example.com", 0, r, sizeof(r)),
	         SG_ERR_USAGE);
	CHECK_EQ(look(d, ctx, "no-at", 0, r, sizeof(r)), SG_ERR_USAGE);
	stats_are(d, 6, 2, __LINE__);
	directory_free(d);

	/* TTL 0: nothing is cached. */
	d = fake_directory(&fk, 0, 0);
	CHECK_EQ(look(d, ctx, "alice@example.com", 1, r, sizeof(r)), SG_OK);
	CHECK_EQ(look(d, ctx, "alice@example.com", 1, r, sizeof(r)), SG_OK);
	CHECK_EQ(look(d, ctx, "x@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(look(d, ctx, "x@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	stats_are(d, 4, 0, __LINE__);
out:
	directory_free(d);
	free(der);
	sg_key_free(alice);
	sg_key_free(ca);
	sg_ctx_free(ctx);
}

static void
cache_never_outlives_the_certificate(void)
{
	struct sg_ctx *ctx = NULL;
	struct fake fk = {.match = "carol@example.com"};
	char r[256];

	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	fk.now = sg_ctx_now(ctx);
	struct sg_key *ca = make_key(ctx, "CA", NULL, 1, 3650, NULL);
	struct sg_key *carol =
	    make_key(ctx, "Carol", "carol@example.com", 0, 1, ca); /* one day */
	unsigned char *der = cert_der(carol, &fk.lens[0]);
	fk.values[0] = der;
	fk.nvalues = 1;
	struct directory *d = fake_directory(&fk, 7 * 86400, 600);
	time_t t0 = fk.now;

	CHECK_EQ(look(d, ctx, "carol@example.com", 1, r, sizeof(r)), SG_OK);
	fk.now = t0 + 86400 - 10;
	CHECK_EQ(look(d, ctx, "carol@example.com", 1, r, sizeof(r)), SG_OK);
	stats_are(d, 1, 1, __LINE__);
	/* Past notAfter the cache entry is gone, and the certificate,
	 * asked again, is expired. */
	fk.now = t0 + 86400 + 10;
	sg_ctx_set_time(ctx, fk.now);
	CHECK_EQ(look(d, ctx, "carol@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	CHECK(strstr(r, "none usable for encryption (expired)") != NULL);
	stats_are(d, 2, 1, __LINE__);
	directory_free(d);
	free(der);
	sg_key_free(carol);
	sg_key_free(ca);
	sg_ctx_free(ctx);
}

static void
cache_evicts_the_oldest(void)
{
	struct sg_ctx *ctx = NULL;
	struct fake fk = {.now = 1000000};
	char r[256];

	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	struct directory *d = fake_directory(&fk, 3600, 600);
	directory_set_cache_max(d, 2);
	look(d, ctx, "a@example.com", 0, r, sizeof(r));
	look(d, ctx, "b@example.com", 0, r, sizeof(r));
	look(d, ctx, "c@example.com", 0, r, sizeof(r)); /* evicts a */
	stats_are(d, 3, 0, __LINE__);
	look(d, ctx, "c@example.com", 0, r, sizeof(r));
	look(d, ctx, "b@example.com", 0, r, sizeof(r));
	stats_are(d, 3, 2, __LINE__);
	look(d, ctx, "a@example.com", 0, r, sizeof(r)); /* evicts b */
	stats_are(d, 4, 2, __LINE__);
	look(d, ctx, "b@example.com", 0, r, sizeof(r));
	stats_are(d, 5, 2, __LINE__);
	directory_free(d);
	sg_ctx_free(ctx);
}

static void
values_certs_only_and_der(void)
{
	struct sg_ctx *ctx = NULL;
	struct fake fk = {.match = "alice@example.com"};
	unsigned char junk[64], *big = NULL;
	struct sg_certs *c = NULL;
	size_t p7len = 0, dlen = 0;
	char r[256];

	CHECK_EQ(sg_ctx_new(&ctx), SG_OK);
	fk.now = sg_ctx_now(ctx);
	struct sg_key *ca = make_key(ctx, "CA", NULL, 1, 3650, NULL);
	struct sg_key *alice =
	    make_key(ctx, "Alice", "alice@example.com", 0, 365, ca);
	struct sg_key *alice2 =
	    make_key(ctx, "Alice 2", "alice@example.com", 0, 365, ca);
	const struct sg_key *bundle[] = {alice, ca};
	unsigned char *p7 = certs_only(bundle, 2, &p7len);
	unsigned char *der = cert_der(alice, &dlen);
	unsigned char *der2 = cert_der(alice2, &fk.lens[3]);

	/* A certs-only bundle (alice + CA), the same certificate again as
	 * DER (as AD publishes it in both attributes), undecodable bytes,
	 * and another certificate: alice and alice 2, once each. */
	memset(junk, 0x30, sizeof(junk));
	fk.values[0] = p7;
	fk.lens[0] = p7len;
	fk.values[1] = der;
	fk.lens[1] = dlen;
	fk.values[2] = junk;
	fk.lens[2] = sizeof(junk);
	fk.values[3] = der2;
	fk.nvalues = 4;
	struct directory *d = fake_directory(&fk, 3600, 600);
	CHECK_EQ(
	    directory_lookup(d, ctx, "alice@example.com", &c, r, sizeof(r)),
	    SG_OK);
	CHECK_EQ(sg_certs_count(c), 2);
	for (size_t i = 0; i < sg_certs_count(c); i++) {
		struct sg_cert_info info;
		CHECK_EQ(sg_certs_info(c, i, &info), SG_OK);
		CHECK(!info.is_ca);
		CHECK_STR(info.emails[0], "alice@example.com");
		sg_cert_info_clear(&info);
	}
	sg_certs_free(c);
	c = NULL;
	directory_free(d);

	/* Only the CA certificate: not found, and said why. */
	const struct sg_key *only_ca[] = {ca};
	free(p7);
	p7 = certs_only(only_ca, 1, &p7len);
	fk.values[0] = p7;
	fk.lens[0] = p7len;
	fk.nvalues = 1;
	d = fake_directory(&fk, 3600, 600);
	CHECK_EQ(look(d, ctx, "alice@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	CHECK(strstr(r, "only CA certificates") != NULL);
	directory_free(d);

	/* Values that are not DER certificates, or too large: skipped. */
	big = calloc(1, DIRECTORY_MAX_VALUE + 1);
	CHECK(big != NULL);
	memcpy(big, der, dlen); /* a good certificate, but too long */
	fk.values[0] = big;
	fk.lens[0] = DIRECTORY_MAX_VALUE + 1;
	fk.values[1] = (const unsigned char *)"-----BEGIN CERTIFICATE-----\n";
	fk.lens[1] = 28;
	fk.values[2] = junk;
	fk.lens[2] = 0;
	fk.nvalues = 3;
	d = fake_directory(&fk, 3600, 600);
	CHECK_EQ(look(d, ctx, "alice@example.com", 0, r, sizeof(r)),
	         SG_ERR_NOT_FOUND);
	CHECK(strstr(r, "3 values for alice@example.com in the directory, "
	                "none a readable certificate") != NULL);
	directory_free(d);

	free(big);
	free(p7);
	free(der);
	free(der2);
	sg_key_free(alice2);
	sg_key_free(alice);
	sg_key_free(ca);
	sg_ctx_free(ctx);
}

static void
new_refuses_incomplete_config(void)
{
	struct cfg_ldap none = {.base = "dc=x"};
	struct cfg_ldap half = {
	    .uri = "ldap://x", .base = "dc=x", .bind_dn = "cn=a"};

	CHECK(directory_new(NULL) == NULL);
	CHECK(directory_new(&none) == NULL);
	CHECK(directory_new(&half) == NULL);
	directory_free(NULL);
}

/* Same settings, same directory across a reload; any change, a new one. */
static void
config_equal(void)
{
	static const char base[] = "ldap_uri = ldap://dc1.example.com\n"
	                           "ldap_base = dc=example,dc=com\n";
	static const struct {
		const char *extra;
		int equal;
	} cases[] = {
	    {"", 1},
	    {"ldap_timeout = 5s\n", 1}, /* the default, written out */
	    {"ldap_timeout = 6s\n", 0},
	    {"ldap_retry_after = 0\n", 0},
	    {"ldap_cache_ttl = 0\n", 0},
	    {"ldap_negative_ttl = 1m\n", 0},
	    {"ldap_filter = (uid=%s)\n", 0},
	    {"ldap_starttls = on\n", 0},
	    {"ldap_ca_file = /dev/null\n", 0},
	};
	char err[512] = "", globals[512];
	struct cfg *a = NULL, *b = NULL;
	char *pa = write_conf(base), *pb;

	CHECK_EQ(cfg_load(pa, &a, err, sizeof(err)), SG_OK);
	CHECK(cfg_ldap_equal(NULL, NULL));
	CHECK(a == NULL || !cfg_ldap_equal(a->ldap, NULL));
	for (size_t i = 0; a && i < sizeof(cases) / sizeof(*cases); i++) {
		snprintf(globals, sizeof(globals), "%s%s", base,
		         cases[i].extra);
		pb = write_conf(globals);
		b = NULL;
		CHECK_EQ(cfg_load(pb, &b, err, sizeof(err)), SG_OK);
		if (b != NULL &&
		    cfg_ldap_equal(a->ldap, b->ldap) != cases[i].equal) {
			fprintf(stderr, "  %s", cases[i].extra);
			CHECK(0);
		}
		cfg_free(b);
		unlink(pb);
		free(pb);
	}
	cfg_free(a);
	unlink(pa);
	free(pa);
}

/* A server found down is not tried again for ldap_retry_after (the real
 * libldap path, on a port where nothing listens), then it is. */
static void
retry_after_a_failure(void)
{
	struct cfg_ldap cl = {.uri = "ldap://127.0.0.1:1",
	                      .base = "dc=example,dc=org",
	                      .filter = "(mail=%s)",
	                      .timeout = 1,
	                      .retry_after = 30};
	struct fake fk = {.now = 1000000};
	struct sg_ctx *ctx = NULL;
	struct sg_certs *out = NULL;
	struct directory *d = directory_new(&cl);
	char why[600];

	CHECK(d != NULL && sg_ctx_new(&ctx) == SG_OK);
	if (d == NULL || ctx == NULL)
		goto out;
	directory_set_clock(d, fake_now, &fk);
	CHECK_EQ(
	    directory_lookup(d, ctx, "a@example.org", &out, why, sizeof(why)),
	    SG_ERR_TEMP);
	CHECK(strstr(why, "Can't contact") != NULL);
	CHECK(strstr(why, "not tried again") == NULL);
	fk.now += 29;
	CHECK_EQ(
	    directory_lookup(d, ctx, "b@example.org", &out, why, sizeof(why)),
	    SG_ERR_TEMP);
	CHECK(strstr(why, "Can't contact") != NULL);
	CHECK(strstr(why, "(not tried again for 1s)") != NULL);
	fk.now += 1;
	CHECK_EQ(
	    directory_lookup(d, ctx, "c@example.org", &out, why, sizeof(why)),
	    SG_ERR_TEMP);
	CHECK(strstr(why, "not tried again") == NULL);
out:
	directory_free(d);
	sg_ctx_free(ctx);
}

static const struct unit_case cases[] = {
    {"retry_after_a_failure", retry_after_a_failure},
    {"config_equal", config_equal},
    {"filter_escapes_rfc4515", filter_escapes_rfc4515},
    {"filter_bounds", filter_bounds},
    {"config_defaults", config_defaults},
    {"config_all_keys", config_all_keys},
    {"config_errors_name_the_line", config_errors_name_the_line},
    {"cache_ttls_on_a_clock", cache_ttls_on_a_clock},
    {"cache_never_outlives_the_certificate",
     cache_never_outlives_the_certificate},
    {"cache_evicts_the_oldest", cache_evicts_the_oldest},
    {"values_certs_only_and_der", values_certs_only_and_der},
    {"new_refuses_incomplete_config", new_refuses_incomplete_config},
    {NULL, NULL},
};

const struct unit_suite suite_directory = {"directory", cases};
