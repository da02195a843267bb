/*
 * t_revocation.c - revocation status from CRL files: good, revoked,
 * unknown; CRLs that must not be believed (expired, not yet valid, badly
 * signed, from another CA); file limits; an unreachable distribution point
 * and its negative cache.  The CA and its CRLs are made here, at the
 * handle's time.
 */
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/sg_int.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define DAY (24 * 3600)

/* A temporary directory and a handle with a fixed time. */
struct fx {
	char dir[64];
	struct sg_ctx *ctx;
	time_t now;
	struct sg_key *ca, *alice, *bob;
	struct sg_certs *certs; /* [0] alice, [1] bob, [2] the CA */
	struct sg_certs *trust; /* the CA */
	char path[8][128];
	int npath;
};

static struct sg_key *
mk(struct sg_ctx *ctx, const char *cn, int ca, const struct sg_key *issuer)
{
	struct sg_cert_req req = {
	    .cn = cn, .days = 30, .key = SG_KEY_EC_P256, .ca = ca};
	struct sg_key *k = NULL;

	CHECK_EQ(sg_cert_create(ctx, &req, issuer, &k), SG_OK);
	return k;
}

static void
fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_revocation.XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	CHECK_EQ(sg_ctx_new(&f->ctx), SG_OK);
	f->now = time(NULL);
	sg_ctx_set_time(f->ctx, f->now);
	f->ca = mk(f->ctx, "Test CA", 1, NULL);
	f->alice = mk(f->ctx, "Alice", 0, f->ca);
	f->bob = mk(f->ctx, "Bob", 0, f->ca);
	CHECK_EQ(sg_certs_new(&f->certs), SG_OK);
	CHECK_EQ(sg_certs_new(&f->trust), SG_OK);
	sk_X509_push(f->certs->sk, f->alice->cert);
	X509_up_ref(f->alice->cert);
	sk_X509_push(f->certs->sk, f->bob->cert);
	X509_up_ref(f->bob->cert);
	sk_X509_push(f->certs->sk, f->ca->cert);
	X509_up_ref(f->ca->cert);
	sk_X509_push(f->trust->sk, f->ca->cert);
	X509_up_ref(f->ca->cert);
}

static void
fx_close(struct fx *f)
{
	for (int i = 0; i < f->npath; i++)
		unlink(f->path[i]);
	rmdir(f->dir);
	sg_certs_free(f->certs);
	sg_certs_free(f->trust);
	sg_key_free(f->alice);
	sg_key_free(f->bob);
	sg_key_free(f->ca);
	sg_ctx_free(f->ctx);
}

/* Writes a CRL of ISSUER's name signed by SIGNER's key, valid from
 * NOW+LAST to NOW+NEXT, revoking REVOKED (may be NULL) for keyCompromise;
 * returns its path. */
static const char *
write_crl(struct fx *f, const struct sg_key *issuer,
          const struct sg_key *signer, X509 *revoked, long last, long next,
          int der)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	char *p = f->path[f->npath];
	char dir[64];
	FILE *fp;

	memcpy(dir, f->dir, sizeof(dir));
	snprintf(p, sizeof(f->path[0]), "%.64s/crl%d.%s", dir, f->npath,
	         der ? "der" : "pem");
	f->npath++;
	CHECK(crl != NULL && t != NULL);
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer->cert));
	X509_time_adj_ex(t, 0, last, &f->now);
	X509_CRL_set1_lastUpdate(crl, t);
	X509_time_adj_ex(t, 0, next, &f->now);
	X509_CRL_set1_nextUpdate(crl, t);
	if (revoked != NULL) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
		X509_time_adj_ex(t, 0, -DAY, &f->now);
		X509_REVOKED_set_serialNumber(r,
		                              X509_get_serialNumber(revoked));
		X509_REVOKED_set_revocationDate(r, t);
		ASN1_ENUMERATED_set(reason, 1); /* keyCompromise */
		X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0);
		ASN1_ENUMERATED_free(reason);
		X509_CRL_add0_revoked(crl, r);
	}
	X509_CRL_sort(crl);
	CHECK(X509_CRL_sign(crl, signer->pkey, EVP_sha256()) > 0);
	fp = fopen(p, "wb");
	CHECK(fp != NULL);
	if (fp != NULL) {
		CHECK(der ? i2d_X509_CRL_fp(fp, crl) == 1
		          : PEM_write_X509_CRL(fp, crl) == 1);
		fclose(fp);
	}
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return p;
}

/* Checks certificate I of F's list with the CRL files FILES. */
static enum sg_revocation_status
status_of(struct fx *f, const char *const *files, size_t i, char *why,
          size_t whylen)
{
	struct sg_revocation_opts o = {.crl_files = files};
	struct sg_revocation *rv = NULL;
	enum sg_revocation_status s = SG_REV_GOOD;

	CHECK_EQ(sg_revocation_new(f->ctx, &o, &rv), SG_OK);
	if (rv == NULL)
		return (enum sg_revocation_status) - 1;
	CHECK_EQ(sg_revocation_check(rv, f->ctx, f->certs, i, f->trust, &s, why,
	                             whylen),
	         SG_OK);
	sg_revocation_free(rv);
	return s;
}

static void
good_and_revoked_from_crl_file(void)
{
	struct fx f;
	char why[256];
	const char *files[2] = {NULL, NULL};

	fx_open(&f);
	files[0] = write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
	CHECK_EQ(status_of(&f, files, 0, why, sizeof(why)), SG_REV_GOOD);
	CHECK_STR(why, "CRL of CN=Test CA: good");
	CHECK_EQ(status_of(&f, files, 1, why, sizeof(why)), SG_REV_REVOKED);
	CHECK(strncmp(why, "revoked by CRL of CN=Test CA on ", 32) == 0);
	CHECK(strstr(why, "(keyCompromise)") != NULL);
	fx_close(&f);
}

static void
der_file_and_pem_bundle(void)
{
	struct fx f;
	char why[256];
	const char *files[3] = {NULL, NULL, NULL};

	fx_open(&f);
	/* A DER CRL; and a file of two PEM CRLs, the second revoking. */
	files[0] = write_crl(&f, f.ca, f.ca, NULL, -3600, DAY, 1);
	CHECK_EQ(status_of(&f, files, 1, why, sizeof(why)), SG_REV_GOOD);
	{
		const char *a = write_crl(&f, f.ca, f.ca, NULL, -3600, DAY, 0);
		const char *b =
		    write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "cat %s >> %s", b, a);
		CHECK_EQ(system(cmd), 0);
		files[0] = a;
	}
	CHECK_EQ(status_of(&f, files, 1, why, sizeof(why)), SG_REV_REVOKED);
	CHECK_EQ(status_of(&f, files, 0, why, sizeof(why)), SG_REV_GOOD);
	fx_close(&f);
}

/* CRLs that must not be believed: the status is unknown, with why. */
static void
untrusted_crls_are_ignored(void)
{
	static const struct {
		const char *name;
		long last, next;
		int other_signer; /* signed by another "Test CA" key */
		int other_issuer; /* a CRL of another CA */
		const char *why;
	} rows[] = {
	    {"expired", -2 * DAY, -DAY, 0, 0,
	     "file CRL of CN=Test CA: expired (nextUpdate passed)"},
	    {"not yet valid", DAY, 2 * DAY, 0, 0,
	     "file CRL of CN=Test CA: not yet valid"},
	    {"badly signed", -3600, DAY, 1, 0,
	     "file CRL of CN=Test CA: signature does not verify"},
	    {"another CA", -3600, DAY, 0, 1,
	     "no CRL or OCSP responder reachable"},
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(*rows); r++) {
		struct fx f;
		struct sg_key *other;
		char why[256] = "";
		const char *files[2] = {NULL, NULL};

		fx_open(&f);
		other = mk(f.ctx, rows[r].other_issuer ? "Other CA" : "Test CA",
		           1, NULL);
		files[0] = write_crl(
		    &f, rows[r].other_issuer ? other : f.ca,
		    rows[r].other_signer || rows[r].other_issuer ? other : f.ca,
		    f.bob->cert, rows[r].last, rows[r].next, 0);
		if (status_of(&f, files, 1, why, sizeof(why)) !=
		        SG_REV_UNKNOWN ||
		    strcmp(why, rows[r].why) != 0) {
			fprintf(stderr, "  row %s: %s\n", rows[r].name, why);
			CHECK(0);
		}
		CHECK_EQ(status_of(&f, files, 0, why, sizeof(why)),
		         SG_REV_UNKNOWN);
		sg_key_free(other);
		fx_close(&f);
	}
}

/* An impostor "Test CA" (another key) that comes first in the list
 * cannot vouch for Bob with its own CRL. */
static void
impostor_issuer_is_not_used(void)
{
	struct fx f;
	struct sg_key *fake;
	struct sg_certs *list = NULL;
	struct sg_revocation *rv = NULL;
	enum sg_revocation_status s = SG_REV_GOOD;
	char why[256] = "";
	const char *files[3] = {NULL, NULL, NULL};
	struct sg_revocation_opts o = {.crl_files = files};

	fx_open(&f);
	fake = mk(f.ctx, "Test CA", 1, NULL);
	/* It even copies the real CA's key identifier. */
	{
		int at = X509_get_ext_by_NID(fake->cert,
		                             NID_subject_key_identifier, -1);
		X509_EXTENSION *old = X509_delete_ext(fake->cert, at);
		X509_EXTENSION_free(old);
		CHECK(X509_add1_ext_i2d(
		          fake->cert, NID_subject_key_identifier,
		          (void *)X509_get0_subject_key_id(f.ca->cert), 0,
		          0) == 1);
		CHECK(X509_sign(fake->cert, fake->pkey, EVP_sha256()) > 0);
		CHECK_EQ(X509_check_issued(fake->cert, f.bob->cert), X509_V_OK);
	}
	files[0] = write_crl(&f, fake, fake, NULL, -3600, DAY, 0);
	files[1] = write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
	CHECK_EQ(sg_certs_new(&list), SG_OK);
	CHECK_EQ(sg_certs_push_from(list, f.certs, 1), SG_OK); /* Bob */
	sk_X509_push(list->sk, fake->cert);
	X509_up_ref(fake->cert);
	CHECK_EQ(sg_certs_push_from(list, f.certs, 2), SG_OK); /* real CA */
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	CHECK_EQ(
	    sg_revocation_check(rv, f.ctx, list, 0, NULL, &s, why, sizeof(why)),
	    SG_OK);
	CHECK_EQ(s, SG_REV_REVOKED);
	sg_revocation_free(rv);
	sg_certs_free(list);
	sg_key_free(fake);
	fx_close(&f);
}

static void
unknown_without_sources(void)
{
	struct fx f;
	char why[256];

	fx_open(&f);
	CHECK_EQ(status_of(&f, NULL, 0, why, sizeof(why)), SG_REV_UNKNOWN);
	CHECK_STR(why, "no CRL or OCSP responder reachable");
	fx_close(&f);
}

static void
anchors_issuers_and_bad_index(void)
{
	struct fx f;
	char why[256];
	struct sg_revocation *rv = NULL;
	struct sg_certs *lone = NULL;
	enum sg_revocation_status s = SG_REV_GOOD;
	const char *files[2] = {NULL, NULL};

	fx_open(&f);
	files[0] = write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
	/* The CA itself: self-signed, revocation does not apply. */
	CHECK_EQ(status_of(&f, files, 2, why, sizeof(why)), SG_REV_GOOD);
	CHECK_STR(why, "self-signed: revocation does not apply");
	CHECK_EQ(sg_revocation_new(f.ctx, NULL, &rv), SG_OK);
	/* Bob alone: the issuer comes from TRUST, or is missing. */
	CHECK_EQ(sg_certs_new(&lone), SG_OK);
	CHECK_EQ(sg_certs_push_from(lone, f.certs, 1), SG_OK);
	CHECK_EQ(
	    sg_revocation_check(rv, f.ctx, lone, 0, NULL, &s, why, sizeof(why)),
	    SG_OK);
	CHECK_EQ(s, SG_REV_UNKNOWN);
	CHECK_STR(why, "issuer not found");
	sg_revocation_free(rv);
	{
		struct sg_revocation_opts o = {.crl_files = files};
		CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	}
	CHECK_EQ(sg_revocation_check(rv, f.ctx, lone, 0, f.trust, &s, NULL, 0),
	         SG_OK);
	CHECK_EQ(s, SG_REV_REVOKED);
	s = SG_REV_GOOD;
	CHECK_EQ(sg_revocation_check(rv, f.ctx, lone, 1, f.trust, &s, why,
	                             sizeof(why)),
	         SG_ERR_USAGE);
	CHECK_EQ(s, SG_REV_GOOD); /* untouched */
	sg_revocation_free(rv);
	sg_certs_free(lone);
	fx_close(&f);
}

static void
crl_files_are_bounded_and_must_parse(void)
{
	struct fx f;
	struct sg_revocation *rv = NULL;
	const char *files[2] = {NULL, NULL};
	struct sg_revocation_opts o = {.crl_files = files, .max_crl_size = 64};
	char junk[128];
	FILE *fp;

	fx_open(&f);
	files[0] = write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_ERR_LIMIT);
	CHECK(rv == NULL);
	CHECK(strstr(sg_ctx_error(f.ctx), "larger than 64 bytes") != NULL);
	o.max_crl_size = 0;
	snprintf(junk, sizeof(junk), "%.64s/junk", f.dir);
	memcpy(f.path[f.npath++], junk, sizeof(junk));
	fp = fopen(junk, "w");
	CHECK(fp != NULL);
	if (fp != NULL) {
		fputs("not a CRL\n", fp);
		fclose(fp);
	}
	files[0] = junk;
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_ERR_BADKEY);
	files[0] = "/nonexistent/ca.crl";
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_ERR_IO);
	CHECK(rv == NULL);
	fx_close(&f);
}

/* Re-signs CERT (issued by CA) with a CRL distribution point URL. */
static void
add_crl_dp(X509 *cert, const struct sg_key *ca, const char *url)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char val[200];

	snprintf(val, sizeof(val), "URI:%s", url);
	X509V3_set_ctx(&v3, ca->cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_crl_distribution_points, val);
	CHECK(ext != NULL);
	CHECK(X509_add_ext(cert, ext, -1) == 1);
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(cert, ca->pkey, EVP_sha256()) > 0);
}

static void
unreachable_distribution_point(void)
{
	struct fx f;
	struct sg_revocation *rv = NULL;
	struct sg_revocation_opts o = {.fetch_crl_dp = 1, .timeout = 1};
	enum sg_revocation_status s = SG_REV_GOOD;
	char why[256];
	const char *files[2] = {NULL, NULL};

	fx_open(&f);
	/* Port 1 on the loopback: refused at once. */
	add_crl_dp(f.alice->cert, f.ca, "http://127.0.0.1:1/ca.crl");
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	CHECK_EQ(sg_revocation_check(rv, f.ctx, f.certs, 0, f.trust, &s, why,
	                             sizeof(why)),
	         SG_OK);
	CHECK_EQ(s, SG_REV_UNKNOWN);
	CHECK(strncmp(why, "CRL http://127.0.0.1:1/ca.crl: download failed",
	              46) == 0);
	/* Asked again at once: the failure is remembered, no new try. */
	CHECK_EQ(sg_revocation_check(rv, f.ctx, f.certs, 0, f.trust, &s, why,
	                             sizeof(why)),
	         SG_OK);
	CHECK_EQ(s, SG_REV_UNKNOWN);
	CHECK_STR(why, "CRL http://127.0.0.1:1/ca.crl: download failed "
	               "recently");
	sg_revocation_free(rv);
	/* A CRL file answers first; the distribution point is not tried. */
	files[0] = write_crl(&f, f.ca, f.ca, NULL, -3600, DAY, 0);
	o.crl_files = files;
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	CHECK_EQ(sg_revocation_check(rv, f.ctx, f.certs, 0, f.trust, &s, why,
	                             sizeof(why)),
	         SG_OK);
	CHECK_EQ(s, SG_REV_GOOD);
	sg_revocation_free(rv);
	fx_close(&f);
}

struct worker {
	struct fx *f;
	struct sg_revocation *rv;
	int bad;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	struct sg_ctx *ctx = NULL;
	enum sg_revocation_status s;

	if (sg_ctx_new(&ctx) != SG_OK) {
		w->bad++;
		return NULL;
	}
	sg_ctx_set_time(ctx, w->f->now);
	for (int n = 0; n < 50; n++) {
		size_t i = (size_t)n % 2;
		if (sg_revocation_check(w->rv, ctx, w->f->certs, i, w->f->trust,
		                        &s, NULL, 0) != SG_OK ||
		    s != (i == 0 ? SG_REV_GOOD : SG_REV_REVOKED))
			w->bad++;
	}
	sg_ctx_free(ctx);
	return NULL;
}

static void
one_checker_many_threads(void)
{
	struct fx f;
	struct sg_revocation *rv = NULL;
	const char *files[2] = {NULL, NULL};
	struct sg_revocation_opts o = {.crl_files = files, .fetch_crl_dp = 1};
	pthread_t t[4];
	struct worker w[4];

	fx_open(&f);
	files[0] = write_crl(&f, f.ca, f.ca, f.bob->cert, -3600, DAY, 0);
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.f = &f, .rv = rv};
		CHECK_EQ(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].bad, 0);
	}
	sg_revocation_free(rv);
	fx_close(&f);
}

static void
status_names(void)
{
	CHECK_STR(sg_revocation_status_name(SG_REV_GOOD), "good");
	CHECK_STR(sg_revocation_status_name(SG_REV_REVOKED), "revoked");
	CHECK_STR(sg_revocation_status_name(SG_REV_UNKNOWN), "unknown");
	CHECK_STR(sg_revocation_status_name((enum sg_revocation_status)42),
	          "unknown");
}

static int
buf_write(void *arg, const void *d, size_t n)
{
	return sg_buf_add(arg, d, n);
}

/* A message signed by SIGNER with CHAIN, then verified against TRUST with
 * the checker RV (may be NULL) under HARD; the verdict, RES filled. */
static enum sg_status
sign_and_verify(struct fx *f, const struct sg_key *signer,
                const struct sg_certs *chain, struct sg_revocation *rv,
                int hard, struct sg_verify_result *res)
{
	static const char plain[] = "From: alice@example.com\r\n"
	                            "To: bob@example.org\r\n"
	                            "Subject: chain\r\n\r\nHello.\r\n";
	struct sg_sign_opts so = {.signer = signer, .chain = chain};
	struct sg_buf out;
	struct sg_sink sink = {buf_write, &out};
	struct sg_msg *m = NULL, *sm = NULL;
	enum sg_status st;

	sg_buf_init(&out);
	CHECK_EQ(sg_msg_open_mem(f->ctx, plain, sizeof(plain) - 1, &m), SG_OK);
	CHECK_EQ(sg_sign(f->ctx, m, &so, &sink), SG_OK);
	CHECK_EQ(sg_msg_open_mem(f->ctx, out.data, out.len, &sm), SG_OK);
	sg_ctx_set_revocation(f->ctx, rv, hard);
	st = sg_verify(f->ctx, sm, f->trust, res, NULL);
	sg_ctx_set_revocation(f->ctx, NULL, 0);
	sg_msg_free(sm);
	sg_msg_free(m);
	sg_buf_clear(&out);
	return st;
}

/* sg_verify with a checker: the signer and every intermediate of its
 * chain; revoked fails, unknown fails only under hard-fail, and says
 * whether asking again could help. */
static void
verify_checks_the_chain(void)
{
	struct fx f;
	struct sg_key *inter, *carol;
	struct sg_certs *chain = NULL;
	struct sg_revocation *rv = NULL;
	struct sg_revocation_opts o = {0};
	struct sg_verify_result res;
	const char *files[3] = {NULL, NULL, NULL};

	fx_open(&f);
	inter = mk(f.ctx, "Intermediate CA", 1, f.ca);
	carol = mk(f.ctx, "Carol", 0, inter);
	CHECK_EQ(sg_certs_new(&chain), SG_OK);
	sk_X509_push(chain->sk, inter->cert);
	X509_up_ref(inter->cert);

	/* No checker: nothing checked. */
	CHECK_EQ(sign_and_verify(&f, carol, chain, NULL, 0, &res), SG_OK);
	CHECK_EQ(res.revocation_checked, 0);
	sg_verify_result_clear(&res);

	/* The root's CRL lists nobody, the intermediate's lists nobody. */
	files[0] = write_crl(&f, f.ca, f.ca, NULL, -3600, DAY, 0);
	files[1] = write_crl(&f, inter, inter, NULL, -3600, DAY, 0);
	o.crl_files = files;
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	CHECK(sg_revocation_has_source(rv, chain, 0));
	CHECK_EQ(sign_and_verify(&f, carol, chain, rv, 1, &res), SG_OK);
	CHECK_EQ(res.revocation_checked, 1);
	CHECK_EQ(res.revocation, SG_REV_GOOD);
	sg_verify_result_clear(&res);
	sg_revocation_free(rv);

	/* The root revokes the intermediate: Carol fails with it. */
	files[0] = write_crl(&f, f.ca, f.ca, inter->cert, -3600, DAY, 0);
	CHECK_EQ(sg_revocation_new(f.ctx, &o, &rv), SG_OK);
	CHECK_EQ(sign_and_verify(&f, carol, chain, rv, 0, &res),
	         SG_ERR_REVOKED);
	CHECK_EQ(res.revocation, SG_REV_REVOKED);
	CHECK(res.revocation_reason != NULL &&
	      strstr(res.revocation_reason, "an intermediate") != NULL);
	CHECK(strstr(sg_ctx_error(f.ctx), "revoked") != NULL);
	CHECK_EQ(res.signature_ok, 1); /* the signature itself is fine */
	sg_verify_result_clear(&res);
	sg_revocation_free(rv);

	/* No source at all: unknown, final; soft passes, hard fails. */
	CHECK_EQ(sg_revocation_new(f.ctx, NULL, &rv), SG_OK);
	CHECK(!sg_revocation_has_source(rv, chain, 0));
	CHECK_EQ(sign_and_verify(&f, carol, chain, rv, 0, &res), SG_OK);
	CHECK_EQ(res.revocation, SG_REV_UNKNOWN);
	CHECK_EQ(res.revocation_final, 1);
	sg_verify_result_clear(&res);
	CHECK_EQ(sign_and_verify(&f, carol, chain, rv, 1, &res),
	         SG_ERR_REVOCATION_UNKNOWN);
	CHECK(strstr(sg_ctx_error(f.ctx), "hard-fail") != NULL);
	sg_verify_result_clear(&res);
	sg_revocation_free(rv);

	sg_certs_free(chain);
	sg_key_free(carol);
	sg_key_free(inter);
	fx_close(&f);
}

static const struct unit_case cases[] = {
    {"verify_checks_the_chain", verify_checks_the_chain},
    {"good_and_revoked_from_crl_file", good_and_revoked_from_crl_file},
    {"der_file_and_pem_bundle", der_file_and_pem_bundle},
    {"untrusted_crls_are_ignored", untrusted_crls_are_ignored},
    {"impostor_issuer_is_not_used", impostor_issuer_is_not_used},
    {"unknown_without_sources", unknown_without_sources},
    {"anchors_issuers_and_bad_index", anchors_issuers_and_bad_index},
    {"crl_files_are_bounded_and_must_parse",
     crl_files_are_bounded_and_must_parse},
    {"unreachable_distribution_point", unreachable_distribution_point},
    {"one_checker_many_threads", one_checker_many_threads},
    {"status_names", status_names},
    {NULL, NULL},
};

const struct unit_suite suite_revocation = {"revocation", cases};
