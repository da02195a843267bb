/*
 * t_harvest.c - harvested certificates in the key store: what is
 * harvested and what is not (each refusal next to the case that passes),
 * the events of updated certificates, the size limit's eviction order,
 * lookups (added keys win, the newest harvested one, last_used), promotion,
 * deletion, and a store of schema version 1 migrated on open.
 * Certificates are made in memory; time is injected with sg_ctx_set_time.
 */
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>
#include "store/sqlite_dl.h"

#include "lib/sg_int.h" /* certificates with other key usages */
#include "smimegate.h"
#include "store/store.h"

#define DAY  86400
#define T0   ((time_t)1700000000) /* 2023-11-14 */
#define HOUR 3600

/* A store in a fresh temporary directory, its clock at T0. */
struct fx {
	char dir[64];
	char db[96];
	char key[96];
	struct sg_ctx *ctx;
	struct store *st;
};

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_harvest_XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->db, sizeof(f->db), "%s/s.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/s.db.key", f->dir);
	CHECK_EQ(sg_ctx_new(&f->ctx), SG_OK);
	sg_ctx_set_time(f->ctx, T0);
}

static void
fx_open(struct fx *f)
{
	fx_init(f);
	CHECK_EQ(store_init(f->ctx, f->db, NULL), SG_OK);
	CHECK_EQ(store_open(f->ctx, f->db, NULL, &f->st), SG_OK);
}

static void
fx_clear(struct fx *f)
{
	store_close(f->st);
	unit_rm_tree(f->dir);
	sg_ctx_free(f->ctx);
	memset(f, 0, sizeof(*f));
}

/* A certificate and key made at time AT for DAYS days (notBefore is
 * AT - 300), issued by ISSUER or self-signed. */
static struct sg_key *
mk_at(struct sg_ctx *ctx, time_t at, const char *cn, const char *const *emails,
      const char *const *domains, unsigned days, int ca,
      const struct sg_key *issuer)
{
	struct sg_cert_req req = {.cn = cn,
	                          .days = days,
	                          .key = SG_KEY_EC_P256,
	                          .ca = ca,
	                          .san_emails = emails,
	                          .san_domains = domains};
	struct sg_key *k = NULL;
	time_t was = sg_ctx_now(ctx);

	sg_ctx_set_time(ctx, at);
	CHECK_EQ(sg_cert_create(ctx, &req, issuer, &k), SG_OK);
	sg_ctx_set_time(ctx, was);
	return k;
}

static struct sg_certs *
certs_of(const struct sg_key *k)
{
	struct sg_certs *c = NULL;

	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	return c;
}

/* A certificate for the public key of SUBJ issued by ISSUER at AT for
 * DAYS days, with subjectAltName SAN (NULL: none) and keyUsage KU. */
static struct sg_certs *
custom(const struct sg_key *subj, const struct sg_key *issuer, time_t at,
       unsigned days, const char *san, const char *ku, long serial)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	struct sg_certs *c = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Custom", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, X509_get_subject_name(issuer->cert));
	X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &at);
	X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &at);
	X509_set_pubkey(x, subj->pkey);
	X509V3_set_ctx(&v3, issuer->cert, x, NULL, NULL, 0);
	if (san != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		CHECK(ext != NULL && X509_add_ext(x, ext, -1) == 1);
		X509_EXTENSION_free(ext);
	}
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, ku);
	CHECK(ext != NULL && X509_add_ext(x, ext, -1) == 1);
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(x, issuer->pkey, EVP_sha256()) > 0);
	X509_NAME_free(n);
	CHECK_EQ(sg_certs_new(&c), SG_OK);
	if (c == NULL || !sk_X509_push(c->sk, x))
		X509_free(x);
	return c;
}

static char *
fp_of(const struct sg_certs *c)
{
	struct sg_cert_info in;
	char *fp;

	if (c == NULL || sg_certs_info(c, 0, &in) != SG_OK)
		return NULL;
	fp = strdup(in.fingerprint);
	sg_cert_info_clear(&in);
	return fp;
}

/* Whether C and the certificate of K are the same. */
static int
same_cert(const struct sg_certs *c, const struct sg_key *k)
{
	struct sg_certs *kc = certs_of(k);
	char *a = fp_of(c), *b = fp_of(kc);
	int same = a != NULL && b != NULL && strcmp(a, b) == 0;

	free(a);
	free(b);
	sg_certs_free(kc);
	return same;
}

/* Harvests the certificate of K at the store's time. */
static enum sg_status
harvest(struct fx *f, const struct sg_key *k, const char *source,
        const struct store_harvest_opts *o, struct store_harvest_out *out)
{
	struct sg_certs *c = certs_of(k);
	enum sg_status rc = store_harvest(f->st, c, 0, source, o, out);

	sg_certs_free(c);
	return rc;
}

/* Harvests K, which must be stored (NEW or UPDATED); *NAME gets the
 * row's name (malloc'd) when NAME is not NULL. */
static void
harvest_ok(struct fx *f, const struct sg_key *k,
           const struct store_harvest_opts *o, char **name)
{
	struct store_harvest_out out = {0};

	CHECK_EQ(harvest(f, k, "test", o, &out), SG_OK);
	if (out.result != STORE_HARVEST_NEW &&
	    out.result != STORE_HARVEST_UPDATED)
		fprintf(stderr, "  harvest: %s %s\n",
		        store_harvest_result_name(out.result), out.reason);
	CHECK(out.result == STORE_HARVEST_NEW ||
	      out.result == STORE_HARVEST_UPDATED);
	if (name != NULL)
		*name = out.name ? strdup(out.name) : NULL;
	store_harvest_out_clear(&out);
}

static enum sg_status
put_public(struct store *st, const char *name, const struct sg_key *k)
{
	struct sg_certs *c = certs_of(k);
	enum sg_status rc =
	    store_put_cert(st, STORE_PUBLIC, name, c, 0, "added");

	sg_certs_free(c);
	return rc;
}

static int
raw_sql(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open(db, &h);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

/* The integer answer of SQL with ?1 = TEXT (may be NULL), or -1. */
static long long
raw_int1(const char *db, const char *sql, const char *text)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (sqlite3_open(db, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK) {
		if (text != NULL)
			sqlite3_bind_text(s, 1, text, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static long long
raw_int(const char *db, const char *sql)
{
	return raw_int1(db, sql, NULL);
}

static long long
last_used(struct fx *f, const char *name)
{
	return raw_int1(f->db,
	                "SELECT last_used FROM certs WHERE role = 4 AND "
	                "name = ?1",
	                name);
}

static long long
harvested_rows(struct fx *f)
{
	return raw_int(f->db, "SELECT count(*) FROM certs WHERE role = 4");
}

/* ---- what is harvested ---- */

/* The certificates of the outcome table, made once per case. */
struct pki {
	struct sg_key *ca, *alice, *alice_new, *alice_other, *self, *expired,
	    *future, *gw, *multi, *added_domain, *added_old, *odd;
	struct sg_certs *nokeyenc, *nonames;
};

static void
pki_make(struct sg_ctx *ctx, struct pki *p)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const m[] = {"alice@example.com", "al@example.org",
	                                NULL};
	static const char *const odd[] = {"o'neil+x@example.com", NULL};
	static const char *const gw[] = {"example.net", NULL};
	static const char *const dom[] = {"example.com", NULL};

	memset(p, 0, sizeof(*p));
	p->ca =
	    mk_at(ctx, T0 - 400 * DAY, "Test CA", NULL, NULL, 3650, 1, NULL);
	p->alice = mk_at(ctx, T0 - 20 * DAY, "Alice", a, NULL, 365, 0, p->ca);
	p->alice_new =
	    mk_at(ctx, T0 - 10 * DAY, "Alice", a, NULL, 365, 0, p->ca);
	p->alice_other =
	    mk_at(ctx, T0 - 30 * DAY, "Alice", a, NULL, 365, 0, p->ca);
	p->self = mk_at(ctx, T0 - 20 * DAY, "Alice", a, NULL, 365, 0, NULL);
	p->expired = mk_at(ctx, T0 - 400 * DAY, "Alice", a, NULL, 30, 0, p->ca);
	p->future = mk_at(ctx, T0 + 10 * DAY, "Alice", a, NULL, 365, 0, p->ca);
	p->gw = mk_at(ctx, T0 - 20 * DAY, "Gateway", NULL, gw, 365, 0, p->ca);
	p->multi = mk_at(ctx, T0 - 20 * DAY, "Alice", m, NULL, 365, 0, p->ca);
	p->added_domain =
	    mk_at(ctx, T0 - 20 * DAY, "Example", NULL, dom, 365, 0, p->ca);
	p->added_old =
	    mk_at(ctx, T0 - 400 * DAY, "Alice", a, NULL, 30, 0, p->ca);
	p->odd = mk_at(ctx, T0 - 20 * DAY, "Odd", odd, NULL, 365, 0, p->ca);
	p->nokeyenc = custom(p->alice, p->ca, T0 - 20 * DAY, 365,
	                     "email:alice@example.com",
	                     "critical,digitalSignature", 7001);
	p->nonames = custom(p->alice, p->ca, T0 - 20 * DAY, 365, NULL,
	                    "critical,digitalSignature,keyAgreement", 7002);
}

static void
pki_clear(struct pki *p)
{
	struct sg_key *keys[] = {p->ca,           p->alice,     p->alice_new,
	                         p->alice_other,  p->self,      p->expired,
	                         p->future,       p->gw,        p->multi,
	                         p->added_domain, p->added_old, p->odd};

	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		sg_key_free(keys[i]);
	sg_certs_free(p->nokeyenc);
	sg_certs_free(p->nonames);
	memset(p, 0, sizeof(*p));
}

enum cert {
	C_ALICE,
	C_ALICE_NEW,
	C_SELF,
	C_EXPIRED,
	C_FUTURE,
	C_CA,
	C_NOKEYENC,
	C_NONAMES,
	C_GW,
	C_MULTI,
	C_ODD,
};

enum before {
	B_NONE,
	B_SAME,           /* alice harvested */
	B_OLDER,          /* alice harvested; alice_new comes */
	B_NEWER,          /* alice_new harvested; alice comes */
	B_ADDED,          /* another certificate for alice added */
	B_ADDED_DOMAIN,   /* a certificate for example.com added */
	B_ADDED_EXPIRED,  /* an expired one for alice added */
	B_OURS,           /* our own key for alice */
	B_ADDED_PROMOTED, /* alice harvested, then promoted */
};

static void
set_up(struct fx *f, const struct pki *p, enum before b)
{
	switch (b) {
	case B_NONE:
		break;
	case B_SAME:
	case B_OLDER:
	case B_ADDED_PROMOTED:
		harvest_ok(f, p->alice, NULL, NULL);
		if (b == B_ADDED_PROMOTED) {
			struct store_harvested *v = NULL;
			size_t n = 0;
			CHECK_EQ(store_harvested_list(f->st, &v, &n), SG_OK);
			CHECK(n == 1 &&
			      store_harvested_promote(f->st, v[0].e.name,
			                              "alice") == SG_OK);
			store_harvested_free(v, n);
		}
		break;
	case B_NEWER:
		harvest_ok(f, p->alice_new, NULL, NULL);
		break;
	case B_ADDED:
		CHECK_EQ(put_public(f->st, "alice", p->alice_other), SG_OK);
		break;
	case B_ADDED_DOMAIN:
		CHECK_EQ(put_public(f->st, "example", p->added_domain), SG_OK);
		break;
	case B_ADDED_EXPIRED:
		CHECK_EQ(put_public(f->st, "alice", p->added_old), SG_OK);
		break;
	case B_OURS:
		CHECK_EQ(store_put_key(f->st, "me", p->alice_other, "created"),
		         SG_OK);
		break;
	}
}

/* A new list holding the one certificate of SRC. */
static struct sg_certs *
share(const struct sg_certs *src)
{
	struct sg_certs *c = NULL;

	CHECK_EQ(sg_certs_new(&c), SG_OK);
	CHECK_EQ(sg_certs_push_from(c, src, 0), SG_OK);
	return c;
}

static struct sg_certs *
cert_of(const struct pki *p, enum cert c)
{
	switch (c) {
	case C_ALICE:
		return certs_of(p->alice);
	case C_ALICE_NEW:
		return certs_of(p->alice_new);
	case C_SELF:
		return certs_of(p->self);
	case C_EXPIRED:
		return certs_of(p->expired);
	case C_FUTURE:
		return certs_of(p->future);
	case C_CA:
		return certs_of(p->ca);
	case C_GW:
		return certs_of(p->gw);
	case C_MULTI:
		return certs_of(p->multi);
	case C_ODD:
		return certs_of(p->odd);
	case C_NOKEYENC:
		return share(p->nokeyenc);
	case C_NONAMES:
		return share(p->nonames);
	}
	return NULL;
}

static void
harvest_outcomes(void)
{
	static const struct store_harvest_opts none = {0},
	                                       self = {.allow_self_signed = 1},
	                                       exp = {.allow_expired = 1},
	                                       upd = {.store_updated = 1},
	                                       all = {1, 1, 1};
	static const struct {
		const char *name;
		enum before before;
		enum cert cert;
		const struct store_harvest_opts *o;
		enum store_harvest_result want;
		const char *reason; /* the reason starts so */
		enum sg_status why;
		const char *names; /* comma-separated, or NULL */
		long long rows;    /* harvested rows afterwards */
	} cases[] = {
	    {"new", B_NONE, C_ALICE, &none, STORE_HARVEST_NEW, "", SG_OK,
	     "alice@example.com", 1},
	    {"no options", B_NONE, C_ALICE, NULL, STORE_HARVEST_NEW, "", SG_OK,
	     "alice@example.com", 1},
	    {"same again", B_SAME, C_ALICE, &none, STORE_HARVEST_SAME, "",
	     SG_OK, "alice@example.com", 1},
	    {"updated, stored", B_OLDER, C_ALICE_NEW, &upd,
	     STORE_HARVEST_UPDATED, "", SG_OK, "alice@example.com", 2},
	    {"updated, not stored", B_OLDER, C_ALICE_NEW, &none,
	     STORE_HARVEST_SKIPPED, "updated certificate not stored",
	     SG_ERR_POLICY, "alice@example.com", 1},
	    {"older than the stored one", B_NEWER, C_ALICE, &all,
	     STORE_HARVEST_SKIPPED,
	     "a newer certificate is stored for alice@example.com (h-alice@"
	     "example.com-",
	     SG_ERR_EXISTS, "alice@example.com", 1},
	    {"expired", B_NONE, C_EXPIRED, &none, STORE_HARVEST_SKIPPED,
	     "expired", SG_ERR_EXPIRED, "alice@example.com", 0},
	    {"expired, allowed", B_NONE, C_EXPIRED, &exp, STORE_HARVEST_NEW, "",
	     SG_OK, "alice@example.com", 1},
	    {"self-signed", B_NONE, C_SELF, &exp, STORE_HARVEST_SKIPPED,
	     "self-signed", SG_ERR_POLICY, "alice@example.com", 0},
	    {"self-signed, allowed", B_NONE, C_SELF, &self, STORE_HARVEST_NEW,
	     "", SG_OK, "alice@example.com", 1},
	    {"not yet valid", B_NONE, C_FUTURE, &none, STORE_HARVEST_NEW, "",
	     SG_OK, "alice@example.com", 1},
	    {"a CA, whatever the options", B_NONE, C_CA, &all,
	     STORE_HARVEST_SKIPPED, "a CA certificate", SG_ERR_KEY_USAGE, NULL,
	     0},
	    {"no keyEncipherment", B_NONE, C_NOKEYENC, &all,
	     STORE_HARVEST_SKIPPED, "not for encryption", SG_ERR_KEY_USAGE,
	     "alice@example.com", 0},
	    {"no names", B_NONE, C_NONAMES, &all, STORE_HARVEST_SKIPPED,
	     "no email address or domain", SG_ERR_KEY_USAGE, NULL, 0},
	    {"a domain certificate", B_NONE, C_GW, &none, STORE_HARVEST_NEW, "",
	     SG_OK, "example.net", 1},
	    {"an added key wins", B_ADDED, C_ALICE, &all, STORE_HARVEST_SKIPPED,
	     "an added key exists for alice@example.com (alice)", SG_ERR_EXISTS,
	     "alice@example.com", 0},
	    {"an added domain key wins", B_ADDED_DOMAIN, C_ALICE, &all,
	     STORE_HARVEST_SKIPPED,
	     "an added key exists for alice@example.com (example)",
	     SG_ERR_EXISTS, "alice@example.com", 0},
	    {"our own key wins", B_OURS, C_ALICE, &all, STORE_HARVEST_SKIPPED,
	     "an added key exists for alice@example.com (me)", SG_ERR_EXISTS,
	     "alice@example.com", 0},
	    {"a promoted one is an added one", B_ADDED_PROMOTED, C_ALICE, &all,
	     STORE_HARVEST_SKIPPED, "an added key exists for alice@example.com",
	     SG_ERR_EXISTS, "alice@example.com", 0},
	    {"an expired added key does not count", B_ADDED_EXPIRED, C_ALICE,
	     &none, STORE_HARVEST_NEW, "", SG_OK, "alice@example.com", 1},
	    {"one name of two has an added key", B_ADDED, C_MULTI, &none,
	     STORE_HARVEST_NEW, "", SG_OK, "alice@example.com,al@example.org",
	     1},
	    {"names made for the command line", B_NONE, C_ODD, &none,
	     STORE_HARVEST_NEW, "", SG_OK, "o'neil+x@example.com", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct store_harvest_out out = {0};
		struct fx f;
		struct pki p;
		struct sg_certs *c;
		enum sg_status rc;
		char names[256] = "";

		fx_open(&f);
		pki_make(f.ctx, &p);
		set_up(&f, &p, cases[i].before);
		c = cert_of(&p, cases[i].cert);
		rc = store_harvest(f.st, c, 0, "qid=1 from=alice@example.com",
		                   cases[i].o, &out);
		if (rc != SG_OK || out.result != cases[i].want ||
		    strncmp(out.reason, cases[i].reason,
		            strlen(cases[i].reason)) != 0)
			fprintf(stderr, "  case %s: %s %s \"%s\" (%s)\n",
			        cases[i].name, sg_status_name(rc),
			        store_harvest_result_name(out.result),
			        out.reason, store_errmsg(f.st));
		CHECK_EQ(rc, SG_OK);
		CHECK_EQ(out.result, cases[i].want);
		CHECK(strncmp(out.reason, cases[i].reason,
		              strlen(cases[i].reason)) == 0);
		CHECK_EQ(out.skip_status, cases[i].why);
		CHECK_EQ(out.result == STORE_HARVEST_SKIPPED,
		         out.reason[0] != '\0');
		CHECK_EQ(out.result == STORE_HARVEST_SKIPPED, out.name == NULL);
		CHECK(out.names != NULL);
		for (size_t k = 0; out.names != NULL && k < out.n_names; k++)
			snprintf(names + strlen(names),
			         sizeof(names) - strlen(names), "%s%s",
			         k ? "," : "", out.names[k]);
		CHECK(out.names == NULL || out.names[out.n_names] == NULL);
		CHECK_STR(names, cases[i].names ? cases[i].names : "");
		/* Generated names: h-<first name>-<fingerprint>, of the
		 * characters the command line takes. */
		if (out.name != NULL) {
			char *fp = fp_of(c), want[300];
			const char *base = cases[i].cert == C_ODD
			                       ? "o_neil+x@example.com"
			                       : out.names[0];
			snprintf(want, sizeof(want), "h-%s-%.8s", base,
			         fp ? fp : "");
			CHECK_STR(out.name, want);
			free(fp);
		}
		if (harvested_rows(&f) != cases[i].rows)
			fprintf(stderr, "  case %s: %lld rows\n", cases[i].name,
			        harvested_rows(&f));
		CHECK_EQ(harvested_rows(&f), cases[i].rows);
		store_harvest_out_clear(&out);
		CHECK(out.name == NULL && out.names == NULL);
		sg_certs_free(c);
		pki_clear(&p);
		fx_clear(&f);
	}
}

/* Arguments that are refused; the source as kept. */
static void
harvest_arguments_and_source(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	struct store_harvest_out out = {0};
	struct store_harvested h = {0};
	struct fx f;
	struct sg_key *ca, *alice;
	struct sg_certs *c, *empty = NULL;
	char src[1200];

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	alice = mk_at(f.ctx, T0 - DAY, "Alice", a, NULL, 365, 0, ca);
	c = certs_of(alice);
	CHECK_EQ(sg_certs_new(&empty), SG_OK);
	CHECK_EQ(store_harvest(f.st, NULL, 0, NULL, NULL, &out), SG_ERR_USAGE);
	CHECK_EQ(store_harvest(f.st, empty, 0, NULL, NULL, &out), SG_ERR_USAGE);
	CHECK_EQ(store_harvest(f.st, c, 2, NULL, NULL, &out), SG_ERR_USAGE);
	CHECK_EQ(store_harvest(f.st, c, 0, NULL, NULL, NULL), SG_ERR_USAGE);
	CHECK(out.name == NULL && out.names == NULL);
	/* Control characters replaced, cut to 512 bytes. */
	memset(src, 'x', sizeof(src) - 1);
	src[sizeof(src) - 1] = '\0';
	memcpy(src, "qid=1\r\nfrom=\x7f", 13);
	CHECK_EQ(store_harvest(f.st, c, 0, src, NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_NEW);
	CHECK_EQ(store_harvested_get(f.st, out.name, &h), SG_OK);
	CHECK(h.source != NULL && strlen(h.source) == 512);
	CHECK(h.source != NULL && strncmp(h.source, "qid=1??from=?x", 14) == 0);
	store_harvested_clear(&h);
	store_harvest_out_clear(&out);
	/* No source at all is an empty one. */
	CHECK_EQ(raw_sql(f.db, "DELETE FROM certs WHERE role = 4"), SQLITE_OK);
	CHECK_EQ(store_harvest(f.st, c, 0, NULL, NULL, &out), SG_OK);
	CHECK_EQ(store_harvested_get(f.st, out.name, &h), SG_OK);
	CHECK_STR(h.source, "");
	store_harvested_clear(&h);
	store_harvest_out_clear(&out);
	sg_certs_free(c);
	sg_certs_free(empty);
	sg_key_free(ca);
	sg_key_free(alice);
	fx_clear(&f);
}

/* ---- update events ---- */

static void
updates_by_address_and_domain(void)
{
	static const char *const b[] = {"bob@example.org", NULL};
	static const char *const c[] = {"carol@example.org", NULL};
	static const char *const d[] = {"dave@example.net", NULL};
	static const char *const gw[] = {"example.org", NULL};
	static const struct store_harvest_opts upd = {.store_updated = 1};
	struct store_harvest_out out = {0};
	struct fx f;
	struct sg_key *ca, *bob1, *bob2, *bob3, *carol1, *carol2, *dave1,
	    *dave2, *gw1, *gw2;
	unsigned n = 99;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - 400 * DAY, "CA", NULL, NULL, 3650, 1, NULL);
	bob1 = mk_at(f.ctx, T0 - 30 * DAY, "Bob", b, NULL, 365, 0, ca);
	bob2 = mk_at(f.ctx, T0 - 20 * DAY, "Bob", b, NULL, 365, 0, ca);
	bob3 = mk_at(f.ctx, T0 - 10 * DAY, "Bob", b, NULL, 365, 0, ca);
	carol1 = mk_at(f.ctx, T0 - 30 * DAY, "Carol", c, NULL, 365, 0, ca);
	carol2 = mk_at(f.ctx, T0 - 20 * DAY, "Carol", c, NULL, 365, 0, ca);
	dave1 = mk_at(f.ctx, T0 - 30 * DAY, "Dave", d, NULL, 365, 0, ca);
	dave2 = mk_at(f.ctx, T0 - 20 * DAY, "Dave", d, NULL, 365, 0, ca);
	gw1 = mk_at(f.ctx, T0 - 30 * DAY, "GW", NULL, gw, 365, 0, ca);
	gw2 = mk_at(f.ctx, T0 - 20 * DAY, "GW", NULL, gw, 365, 0, ca);

	/* First sightings are no updates. */
	harvest_ok(&f, bob1, NULL, NULL);
	harvest_ok(&f, carol1, NULL, NULL);
	harvest_ok(&f, dave1, NULL, NULL);
	harvest_ok(&f, gw1, NULL, NULL);
	CHECK_EQ(store_harvest_updates(f.st, "example.org", 0, &n), SG_OK);
	CHECK_EQ(n, 0);
	/* T0 + 1h: bob's update, not stored; T0 + 2h: carol's, stored;
	 * T0 + 3h: bob's again (newer than the one stored); T0 + 4h: the
	 * domain certificate's; T0 + 5h: dave's, another domain. */
	sg_ctx_set_time(f.ctx, T0 + 1 * HOUR);
	CHECK_EQ(harvest(&f, bob2, "q1", NULL, &out), SG_OK);
	CHECK_STR(out.reason, "updated certificate not stored");
	store_harvest_out_clear(&out);
	sg_ctx_set_time(f.ctx, T0 + 2 * HOUR);
	CHECK_EQ(harvest(&f, carol2, "q2", &upd, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_UPDATED);
	store_harvest_out_clear(&out);
	sg_ctx_set_time(f.ctx, T0 + 3 * HOUR);
	CHECK_EQ(harvest(&f, bob3, "q3", NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SKIPPED);
	store_harvest_out_clear(&out);
	sg_ctx_set_time(f.ctx, T0 + 4 * HOUR);
	CHECK_EQ(harvest(&f, gw2, "q4", &upd, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_UPDATED);
	store_harvest_out_clear(&out);
	sg_ctx_set_time(f.ctx, T0 + 5 * HOUR);
	CHECK_EQ(harvest(&f, dave2, "q5", NULL, &out), SG_OK);
	store_harvest_out_clear(&out);
	/* Neither the same certificate again nor an older one is an
	 * update. */
	CHECK_EQ(harvest(&f, carol2, "q6", NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SAME);
	store_harvest_out_clear(&out);
	CHECK_EQ(harvest(&f, carol1, "q7", NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SAME);
	store_harvest_out_clear(&out);
	CHECK_EQ(harvest(&f, bob1, "q8", &upd, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SAME);
	store_harvest_out_clear(&out);

	static const struct {
		const char *q;
		time_t since;
		unsigned want;
	} cases[] = {
	    {"bob@example.org", 0, 2},
	    {"bob@example.org", T0 + 2 * HOUR, 1},
	    {"bob@EXAMPLE.ORG", 0, 2},
	    {"carol@example.org", 0, 1},
	    {"carol@example.org", T0 + 2 * HOUR + 1, 0},
	    {"example.org", 0, 4}, /* bob twice, carol, the domain's */
	    {"EXAMPLE.org", 0, 4},
	    {"example.org", T0 + 2 * HOUR, 3},
	    {"example.org", T0 + 4 * HOUR + 1, 0},
	    {"example.net", 0, 1},
	    {"dave@example.net", T0 + 5 * HOUR, 1},
	    {"nobody@example.org", 0, 0},
	    {"example.com", 0, 0},
	    {"org", 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		n = 99;
		CHECK_EQ(
		    store_harvest_updates(f.st, cases[i].q, cases[i].since, &n),
		    SG_OK);
		if (n != cases[i].want)
			fprintf(stderr, "  %s since %lld: %u\n", cases[i].q,
			        (long long)cases[i].since, n);
		CHECK_EQ(n, cases[i].want);
	}
	static const char *const bad[] = {"", "a b", "a@", "@b", "x\ny"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		n = 99;
		CHECK_EQ(store_harvest_updates(f.st, bad[i], 0, &n),
		         SG_ERR_USAGE);
		CHECK_EQ(n, 99);
	}
	CHECK_EQ(store_harvest_updates(f.st, NULL, 0, &n), SG_ERR_USAGE);
	CHECK_EQ(store_harvest_updates(f.st, "example.org", 0, NULL),
	         SG_ERR_USAGE);

	/* Events are kept 30 days: the next update a month later drops
	 * the old ones. */
	sg_ctx_set_time(f.ctx, T0 + 31 * DAY);
	CHECK_EQ(harvest(&f, bob3, "q9", &upd, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_UPDATED);
	store_harvest_out_clear(&out);
	CHECK_EQ(store_harvest_updates(f.st, "example.org", 0, &n), SG_OK);
	CHECK_EQ(n, 1);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM harvest_updates"), 1);

	sg_key_free(ca);
	sg_key_free(bob1);
	sg_key_free(bob2);
	sg_key_free(bob3);
	sg_key_free(carol1);
	sg_key_free(carol2);
	sg_key_free(dave1);
	sg_key_free(dave2);
	sg_key_free(gw1);
	sg_key_free(gw2);
	fx_clear(&f);
}

/* ---- the size limit ---- */

static void
limit_evicts_least_recently_used(void)
{
	static const char *const e[4][2] = {{"a@example.com", NULL},
	                                    {"b@example.com", NULL},
	                                    {"c@example.com", NULL},
	                                    {"d@example.com", NULL}};
	static const char *const z[] = {"z@example.com", NULL};
	struct fx f;
	struct sg_key *ca, *k[4], *added;
	struct sg_certs *c = NULL;
	char *name[4];
	long long size[4];
	uint64_t total = 0, after = 1;
	size_t count = 0, evicted = 99;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	added = mk_at(f.ctx, T0 - DAY, "Z", z, NULL, 365, 0, ca);
	CHECK_EQ(put_public(f.st, "z", added), SG_OK);
	/* a, b, c, d harvested an hour apart; then a is used, and d is
	 * harvested again (which counts as used). */
	for (int i = 0; i < 4; i++) {
		k[i] = mk_at(f.ctx, T0 - DAY, "X", e[i], NULL, 365, 0, ca);
		sg_ctx_set_time(f.ctx, T0 + i * HOUR);
		harvest_ok(&f, k[i], NULL, &name[i]);
		size[i] = raw_int1(
		    f.db, "SELECT size FROM certs WHERE name = ?1", name[i]);
		CHECK(size[i] > 100);
		CHECK_EQ(raw_int1(f.db,
		                  "SELECT length(cert_der) FROM certs WHERE "
		                  "name = ?1",
		                  name[i]),
		         size[i]);
	}
	sg_ctx_set_time(f.ctx, T0 + 10 * HOUR);
	CHECK_EQ(store_find_encrypt_cert(f.st, "a@example.com", &c), SG_OK);
	sg_certs_free(c);
	c = NULL;
	sg_ctx_set_time(f.ctx, T0 + 11 * HOUR);
	struct store_harvest_out out = {0};
	CHECK_EQ(harvest(&f, k[3], "again", NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SAME);
	store_harvest_out_clear(&out);
	/* Least recently used first: b, c, then a, then d. */
	CHECK_EQ(store_harvest_usage(f.st, &count, &total), SG_OK);
	CHECK_EQ(count, 4);
	CHECK_EQ(total, (uint64_t)(size[0] + size[1] + size[2] + size[3]));
	/* Under the limit: nothing to do. */
	CHECK_EQ(store_harvest_limit(f.st, total, &evicted, &after), SG_OK);
	CHECK_EQ(evicted, 0);
	CHECK_EQ(after, total);
	/* One byte over: b goes. */
	CHECK_EQ(store_harvest_limit(f.st, total - 1, &evicted, &after), SG_OK);
	CHECK_EQ(evicted, 1);
	CHECK_EQ(after, total - (uint64_t)size[1]);
	CHECK_EQ(raw_int1(f.db, "SELECT count(*) FROM certs WHERE name = ?1",
	                  name[1]),
	         0);
	/* Room for one: c and a go, d (used last) stays. */
	CHECK_EQ(store_harvest_limit(f.st, (uint64_t)size[3], &evicted, &after),
	         SG_OK);
	CHECK_EQ(evicted, 2);
	CHECK_EQ(after, (uint64_t)size[3]);
	CHECK_EQ(harvested_rows(&f), 1);
	CHECK_EQ(last_used(&f, name[3]), (long long)(T0 + 11 * HOUR));
	/* Their names went with them; the added key is never evicted. */
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM cert_names WHERE value "
	                       "IN ('a@example.com', 'b@example.com', "
	                       "'c@example.com')"),
	         0);
	CHECK_EQ(store_harvest_limit(f.st, 0, NULL, NULL), SG_OK);
	CHECK_EQ(harvested_rows(&f), 0);
	CHECK_EQ(store_harvest_usage(f.st, &count, &total), SG_OK);
	CHECK(count == 0 && total == 0);
	CHECK_EQ(store_harvest_limit(f.st, 0, &evicted, &after), SG_OK);
	CHECK(evicted == 0 && after == 0);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM certs WHERE role = 2"), 1);
	CHECK_EQ(store_find_encrypt_cert(f.st, "z@example.com", &c), SG_OK);
	sg_certs_free(c);

	/* Equal last use: the earlier harvested goes first, then the
	 * lower id. */
	for (int i = 0; i < 3; i++) {
		free(name[i]);
		sg_ctx_set_time(f.ctx, T0 + 20 * HOUR - i * HOUR);
		harvest_ok(&f, k[i], NULL, &name[i]);
	}
	CHECK_EQ(raw_sql(f.db, "UPDATE certs SET last_used = 5 WHERE role = 4"),
	         SQLITE_OK);
	CHECK_EQ(store_harvest_usage(f.st, NULL, &total), SG_OK);
	CHECK_EQ(store_harvest_limit(f.st, total - 1, &evicted, NULL), SG_OK);
	CHECK_EQ(evicted, 1);
	CHECK_EQ(raw_int1(f.db, "SELECT count(*) FROM certs WHERE name = ?1",
	                  name[2]),
	         0);
	CHECK_EQ(raw_sql(f.db, "UPDATE certs SET harvested_at = 5 WHERE role "
	                       "= 4"),
	         SQLITE_OK);
	CHECK_EQ(store_harvest_usage(f.st, NULL, &total), SG_OK);
	CHECK_EQ(store_harvest_limit(f.st, total - 1, &evicted, NULL), SG_OK);
	CHECK_EQ(evicted, 1);
	CHECK_EQ(raw_int1(f.db, "SELECT count(*) FROM certs WHERE name = ?1",
	                  name[0]),
	         0);
	CHECK_EQ(harvested_rows(&f), 1);

	for (int i = 0; i < 4; i++) {
		free(name[i]);
		sg_key_free(k[i]);
	}
	sg_key_free(added);
	sg_key_free(ca);
	fx_clear(&f);
}

/* ---- lookups ---- */

static void
lookups_prefer_added_then_newest(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const dom[] = {"example.com", NULL};
	static const struct store_harvest_opts upd = {.store_updated = 1};
	struct store_harvest_out out = {0};
	struct fx f;
	struct sg_key *ca, *old, *mid, *nw, *ancient, *added, *domain,
	    *got_key = NULL;
	struct sg_certs *c = NULL;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - 400 * DAY, "CA", NULL, NULL, 3650, 1, NULL);
	/* By notBefore: ancient, old, mid, nw.  mid expires first (T0 +
	 * 40d), old next (T0 + 335d); nw is not valid before T0 + 10d. */
	ancient = mk_at(f.ctx, T0 - 35 * DAY, "Alice", a, NULL, 365, 0, ca);
	old = mk_at(f.ctx, T0 - 30 * DAY, "Alice", a, NULL, 365, 0, ca);
	mid = mk_at(f.ctx, T0 - 20 * DAY, "Alice", a, NULL, 60, 0, ca);
	nw = mk_at(f.ctx, T0 + 10 * DAY, "Alice", a, NULL, 365, 0, ca);
	added = mk_at(f.ctx, T0 - 40 * DAY, "Alice", a, NULL, 365, 0, ca);
	domain = mk_at(f.ctx, T0 - 40 * DAY, "Example", NULL, dom, 365, 0, ca);

	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c),
	         SG_ERR_NOT_FOUND);
	harvest_ok(&f, old, NULL, NULL);
	harvest_ok(&f, mid, &upd, NULL);
	harvest_ok(&f, nw, &upd, NULL);
	/* Older than those stored: not harvested. */
	CHECK_EQ(harvest(&f, ancient, NULL, &upd, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SKIPPED);
	store_harvest_out_clear(&out);
	CHECK_EQ(harvested_rows(&f), 3);

	static const struct {
		const char *name;
		time_t now;
		const char *rcpt;
		int want; /* 0 old, 1 mid, 2 nw, -1 none */
	} cases[] = {
	    {"the newest notBefore, not the latest notAfter", T0,
	     "alice@example.com", 1},
	    {"not yet valid ones wait", T0 + 9 * DAY, "alice@example.com", 1},
	    {"the newest valid one", T0 + 12 * DAY, "alice@example.com", 2},
	    {"the domain part is not case-sensitive", T0 + 12 * DAY,
	     "alice@EXAMPLE.com", 2},
	    {"the local part is", T0 + 12 * DAY, "Alice@example.com", -1},
	    {"nobody else", T0 + 12 * DAY, "bob@example.com", -1},
	    {"expired ones never", T0 + 340 * DAY, "alice@example.com", 2},
	    {"none left", T0 + 800 * DAY, "alice@example.com", -1},
	    {"none yet", T0 - 31 * DAY, "alice@example.com", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct sg_key *want[] = {old, mid, nw};
		enum sg_status rc;

		sg_ctx_set_time(f.ctx, cases[i].now);
		rc = store_find_encrypt_cert(f.st, cases[i].rcpt, &c);
		if (rc != (cases[i].want < 0 ? SG_ERR_NOT_FOUND : SG_OK) ||
		    (rc == SG_OK && !same_cert(c, want[cases[i].want])))
			fprintf(stderr, "  case %s: %s\n", cases[i].name,
			        sg_status_name(rc));
		if (cases[i].want < 0) {
			CHECK_EQ(rc, SG_ERR_NOT_FOUND);
			CHECK(c == NULL);
		} else {
			CHECK_EQ(rc, SG_OK);
			CHECK(same_cert(c, want[cases[i].want]));
		}
		sg_certs_free(c);
		c = NULL;
	}
	/* Added keys win: by email, and by domain over a harvested email;
	 * deleted, the harvested one serves again. */
	sg_ctx_set_time(f.ctx, T0 + 12 * DAY);
	CHECK_EQ(put_public(f.st, "example", domain), SG_OK);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	CHECK(same_cert(c, domain));
	sg_certs_free(c);
	CHECK_EQ(put_public(f.st, "alice", added), SG_OK);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	CHECK(same_cert(c, added));
	sg_certs_free(c);
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "alice"), SG_OK);
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "example"), SG_OK);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	CHECK(same_cert(c, nw));
	sg_certs_free(c);
	c = NULL;
	/* Harvested certificates never sign. */
	CHECK_EQ(store_find_sign_key(f.st, "alice@example.com", NULL, &got_key),
	         SG_ERR_NOT_FOUND);
	CHECK(got_key == NULL);

	sg_key_free(ca);
	sg_key_free(ancient);
	sg_key_free(old);
	sg_key_free(mid);
	sg_key_free(nw);
	sg_key_free(added);
	sg_key_free(domain);
	fx_clear(&f);
}

/* A harvested domain certificate serves the domain's addresses after
 * every added key, and by wildcard. */
static void
lookups_by_domain(void)
{
	static const char *const gw[] = {"*.example.net", NULL};
	static const char *const d[] = {"dave@a.example.net", NULL};
	struct fx f;
	struct sg_key *ca, *g, *dave;
	struct sg_certs *c = NULL;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	g = mk_at(f.ctx, T0 - DAY, "GW", NULL, gw, 365, 0, ca);
	dave = mk_at(f.ctx, T0 - DAY, "Dave", d, NULL, 365, 0, ca);
	harvest_ok(&f, g, NULL, NULL);
	CHECK_EQ(store_find_encrypt_cert(f.st, "x@a.example.net", &c), SG_OK);
	CHECK(same_cert(c, g));
	sg_certs_free(c);
	c = NULL;
	CHECK_EQ(store_find_encrypt_cert(f.st, "x@example.net", &c),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(store_find_encrypt_cert(f.st, "x@b.a.example.net", &c),
	         SG_ERR_NOT_FOUND);
	/* A harvested email beats a harvested domain. */
	harvest_ok(&f, dave, NULL, NULL);
	CHECK_EQ(store_find_encrypt_cert(f.st, "dave@a.example.net", &c),
	         SG_OK);
	CHECK(same_cert(c, dave));
	sg_certs_free(c);
	sg_key_free(ca);
	sg_key_free(g);
	sg_key_free(dave);
	fx_clear(&f);
}

static void
lookup_marks_last_used(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	struct fx f;
	struct sg_key *ca, *alice;
	struct sg_certs *c = NULL;
	sqlite3 *h = NULL;
	char *name = NULL;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	alice = mk_at(f.ctx, T0 - DAY, "Alice", a, NULL, 365, 0, ca);
	harvest_ok(&f, alice, NULL, &name);
	CHECK_EQ(last_used(&f, name), (long long)T0);
	/* Used an hour later: marked. */
	sg_ctx_set_time(f.ctx, T0 + HOUR);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	sg_certs_free(c);
	CHECK_EQ(last_used(&f, name), (long long)(T0 + HOUR));
	/* Again within the minute: not written again. */
	sg_ctx_set_time(f.ctx, T0 + HOUR + 30);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	sg_certs_free(c);
	CHECK_EQ(last_used(&f, name), (long long)(T0 + HOUR));
	/* A lookup that does not choose it leaves it. */
	sg_ctx_set_time(f.ctx, T0 + 2 * HOUR);
	CHECK_EQ(store_find_encrypt_cert(f.st, "bob@example.com", &c),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(last_used(&f, name), (long long)(T0 + HOUR));
	/* Another writer holds the database: the mark is dropped, the
	 * lookup still succeeds and records no error. */
	store_set_busy_timeout(f.st, 0);
	CHECK_EQ(sqlite3_open(f.db, &h), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL),
	         SQLITE_OK);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	CHECK(c != NULL && same_cert(c, alice));
	CHECK_STR(store_errmsg(f.st), "");
	sg_certs_free(c);
	CHECK_EQ(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	CHECK_EQ(last_used(&f, name), (long long)(T0 + HOUR));
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	sg_certs_free(c);
	CHECK_EQ(last_used(&f, name), (long long)(T0 + 2 * HOUR));
	free(name);
	sg_key_free(ca);
	sg_key_free(alice);
	fx_clear(&f);
}

/* ---- rows: list, get, promote, delete ---- */

static void
list_get_promote_delete(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const b[] = {"bob@example.org", NULL};
	struct fx f;
	struct sg_key *ca, *alice, *bob, *bob2;
	struct store_harvested *v = NULL, h = {0};
	struct store_entry e = {0}, *ev = NULL;
	struct sg_certs *c = NULL;
	char *an = NULL, *bn = NULL, *b2n = NULL;
	size_t n = 0;

	fx_open(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	alice = mk_at(f.ctx, T0 - DAY, "Alice", a, NULL, 365, 0, ca);
	bob = mk_at(f.ctx, T0 - DAY, "Bob", b, NULL, 365, 0, ca);
	bob2 = mk_at(f.ctx, T0 - 2 * DAY, "Bob", b, NULL, 365, 0, ca);
	harvest_ok(&f, alice, NULL, &an);
	sg_ctx_set_time(f.ctx, T0 + HOUR);
	harvest_ok(&f, bob, NULL, &bn);

	/* Listed by name, with the harvest's facts. */
	CHECK_EQ(store_harvested_list(f.st, &v, &n), SG_OK);
	CHECK_EQ(n, 2);
	if (n == 2) {
		CHECK_STR(v[0].e.name, an);
		CHECK_STR(v[1].e.name, bn);
		CHECK_EQ(v[0].e.role, STORE_HARVESTED);
		CHECK_STR(v[0].e.source, "harvested");
		CHECK_STR(v[0].source, "test");
		CHECK_EQ(v[0].harvested_at, T0);
		CHECK_EQ(v[1].harvested_at, T0 + HOUR);
		CHECK_EQ(v[1].last_used, T0 + HOUR);
		CHECK(v[0].e.has_cert &&
		      strcmp(v[0].e.info.emails[0], "alice@example.com") == 0);
		CHECK_EQ((long long)v[0].size,
		         raw_int1(f.db,
		                  "SELECT length(cert_der) FROM certs WHERE "
		                  "name = ?1",
		                  an));
	}
	store_harvested_free(v, n);
	/* The generic row functions take the role too; others do not see
	 * harvested rows. */
	CHECK_EQ(store_list(f.st, STORE_HARVESTED, &ev, &n), SG_OK);
	CHECK_EQ(n, 2);
	store_entries_free(ev, n);
	CHECK_EQ(store_list(f.st, STORE_PUBLIC, &ev, &n), SG_OK);
	CHECK_EQ(n, 0);
	store_entries_free(ev, n);
	CHECK_EQ(store_get(f.st, STORE_HARVESTED, an, &e), SG_OK);
	CHECK_STR(e.source, "harvested");
	store_entry_clear(&e);
	CHECK_EQ(store_get_certs(f.st, STORE_HARVESTED, an, &c), SG_OK);
	CHECK(same_cert(c, alice));
	sg_certs_free(c);
	c = NULL;
	CHECK_EQ(store_get(f.st, STORE_PUBLIC, an, &e), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_harvested_get(f.st, "nothing", &h), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_harvested_get(f.st, "", &h), SG_ERR_NOT_FOUND);

	/* Promote: refused when the name or the certificate is taken. */
	CHECK_EQ(put_public(f.st, "bob", bob2), SG_OK);
	CHECK_EQ(store_harvested_promote(f.st, bn, "bob"), SG_ERR_EXISTS);
	CHECK_EQ(store_harvested_promote(f.st, "nothing", NULL),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(store_harvested_promote(f.st, bn, " bad"), SG_ERR_USAGE);
	CHECK_EQ(store_harvested_promote(f.st, bn, "bob-2"), SG_OK);
	CHECK_EQ(store_harvested_get(f.st, bn, &h), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_get(f.st, STORE_PUBLIC, "bob-2", &e), SG_OK);
	CHECK_STR(e.source, "harvested");
	CHECK_EQ(e.created, T0 + HOUR);
	store_entry_clear(&e);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM certs WHERE name = "
	                       "'bob-2' AND harvested_at IS NULL AND "
	                       "last_used IS NULL AND size IS NULL"),
	         1);
	/* Its names came along: the lookup finds it as an added key (of
	 * two for bob, the newest notAfter). */
	sg_ctx_set_time(f.ctx, T0 + 2 * HOUR);
	CHECK_EQ(store_find_encrypt_cert(f.st, "bob@example.org", &c), SG_OK);
	CHECK(same_cert(c, bob));
	sg_certs_free(c);
	c = NULL;
	/* Harvested again: an added key exists now. */
	struct store_harvest_out out = {0};
	CHECK_EQ(harvest(&f, bob, NULL, NULL, &out), SG_OK);
	CHECK_EQ(out.result, STORE_HARVEST_SKIPPED);
	store_harvest_out_clear(&out);
	/* Same certificate already a public key: refused. */
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "bob"), SG_OK);
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "bob-2"), SG_OK);
	harvest_ok(&f, bob, NULL, &b2n);
	CHECK_EQ(put_public(f.st, "bobby", bob), SG_OK);
	CHECK_EQ(store_harvested_promote(f.st, b2n, NULL), SG_ERR_EXISTS);
	CHECK(strstr(store_errmsg(f.st), "bobby") != NULL);
	/* Promoted under its own name. */
	CHECK_EQ(store_harvested_promote(f.st, an, NULL), SG_OK);
	CHECK_EQ(store_get(f.st, STORE_PUBLIC, an, &e), SG_OK);
	store_entry_clear(&e);

	/* Delete: like any role; the names go with the row. */
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, b2n), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_delete(f.st, STORE_HARVESTED, b2n), SG_OK);
	CHECK_EQ(store_delete(f.st, STORE_HARVESTED, b2n), SG_ERR_NOT_FOUND);
	CHECK_EQ(harvested_rows(&f), 0);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM cert_names n WHERE NOT "
	                       "EXISTS (SELECT 1 FROM certs c WHERE c.id = "
	                       "n.cert_id)"),
	         0);

	free(an);
	free(bn);
	free(b2n);
	sg_key_free(ca);
	sg_key_free(alice);
	sg_key_free(bob);
	sg_key_free(bob2);
	fx_clear(&f);
}

/* A harvested row altered in the database is an error, never a crash. */
static void
corrupt_harvested_rows(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const struct {
		const char *name;
		const char *sql;
	} cases[] = {
	    {"source not text", "UPDATE certs SET harvest_source = x'61'"},
	    {"NUL in the source",
	     "UPDATE certs SET harvest_source = CAST(x'610062' AS TEXT)"},
	    {"size as text", "UPDATE certs SET size = 'big'"},
	    {"dates as text", "UPDATE certs SET last_used = 'today'"},
	    {"size beyond the bound", "UPDATE certs SET size = 999999999"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fx f;
		struct sg_key *ca, *alice;
		struct store_harvested h = {0}, *v = NULL;
		size_t n = 0;
		char *name = NULL;
		enum sg_status rc;

		fx_open(&f);
		ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
		alice = mk_at(f.ctx, T0 - DAY, "Alice", a, NULL, 365, 0, ca);
		harvest_ok(&f, alice, NULL, &name);
		CHECK_EQ(raw_sql(f.db, cases[i].sql), SQLITE_OK);
		rc = store_harvested_get(f.st, name, &h);
		if (rc != SG_ERR_IO)
			fprintf(stderr, "  case %s: %s\n", cases[i].name,
			        sg_status_name(rc));
		CHECK_EQ(rc, SG_ERR_IO);
		CHECK(h.e.name == NULL);
		CHECK_EQ(store_harvested_list(f.st, &v, &n), SG_ERR_IO);
		CHECK(v == NULL);
		free(name);
		sg_key_free(ca);
		sg_key_free(alice);
		fx_clear(&f);
	}
}

/* ---- a store of schema version 1 ---- */

/* Migration 1 as it was released (store.c). */
static const char schema_v1[] =
    "CREATE TABLE certs ("
    " id INTEGER PRIMARY KEY,"
    " role INTEGER NOT NULL CHECK (role IN (1, 2, 3)),"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),"
    " cert_der BLOB,"
    " chain_der BLOB,"
    " key_blob BLOB,"
    " csr_pem TEXT,"
    " fingerprint TEXT,"
    " subject TEXT,"
    " issuer TEXT,"
    " serial TEXT,"
    " ski TEXT,"
    " not_before INTEGER,"
    " not_after INTEGER,"
    " can_sign INTEGER NOT NULL DEFAULT 0,"
    " can_encrypt INTEGER NOT NULL DEFAULT 0,"
    " self_signed INTEGER NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " UNIQUE (role, name),"
    " CHECK ((role = 1) = (key_blob IS NOT NULL)),"
    " CHECK (cert_der IS NOT NULL OR csr_pem IS NOT NULL));"
    "CREATE UNIQUE INDEX certs_fingerprint ON certs (role, fingerprint)"
    " WHERE fingerprint IS NOT NULL;"
    "CREATE INDEX certs_issuer_serial ON certs (issuer, serial);"
    "CREATE INDEX certs_ski ON certs (ski);"
    "CREATE TABLE cert_names ("
    " cert_id INTEGER NOT NULL REFERENCES certs (id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL CHECK (kind IN ('email', 'domain')),"
    " value TEXT NOT NULL,"
    " UNIQUE (cert_id, kind, value));"
    "CREATE INDEX cert_names_value ON cert_names (kind, value);"
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL);"
    "PRAGMA user_version = 1;";

/* Writes a version 1 row for the certificate of K (wrapped key BLOB for
 * an ORG row) as that release wrote it. */
static void
v1_row(sqlite3 *h, int id, int role, const char *name, const struct sg_key *k,
       const unsigned char *blob, size_t blen, const char *email)
{
	struct sg_certs *c = certs_of(k);
	struct sg_cert_info in = {0};
	unsigned char *der = NULL;
	size_t len = 0;
	sqlite3_stmt *s = NULL;
	char names[256];

	CHECK_EQ(sg_certs_info(c, 0, &in), SG_OK);
	CHECK_EQ(sg_certs_get_der(c, 0, &der, &len), SG_OK);
	CHECK_EQ(
	    sqlite3_prepare_v2(
	        h,
	        "INSERT INTO certs (id, role, name, cert_der, key_blob, "
	        "fingerprint, subject, issuer, serial, ski, not_before, "
	        "not_after, can_sign, can_encrypt, self_signed, source, "
	        "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
	        "?11, ?12, ?13, ?14, ?15, 'v1', 1600000000)",
	        -1, &s, NULL),
	    SQLITE_OK);
	sqlite3_bind_int(s, 1, id);
	sqlite3_bind_int(s, 2, role);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, der, (int)len, SQLITE_STATIC);
	if (blob != NULL)
		sqlite3_bind_blob(s, 5, blob, (int)blen, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, in.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, in.subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, in.issuer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 9, in.serial, -1, SQLITE_STATIC);
	if (in.ski != NULL)
		sqlite3_bind_text(s, 10, in.ski, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 11, in.not_before);
	sqlite3_bind_int64(s, 12, in.not_after);
	sqlite3_bind_int(s, 13, in.can_sign);
	sqlite3_bind_int(s, 14, in.can_encrypt);
	sqlite3_bind_int(s, 15, in.self_signed);
	CHECK_EQ(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
	if (email != NULL) {
		snprintf(names, sizeof(names),
		         "INSERT INTO cert_names VALUES (%d, 'email', '%s')",
		         id, email);
		CHECK_EQ(sqlite3_exec(h, names, NULL, NULL, NULL), SQLITE_OK);
	}
	free(der);
	sg_cert_info_clear(&in);
	sg_certs_free(c);
}

static void
migrates_a_version_1_store(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const m[] = {"me@example.org", NULL};
	unsigned char master[32];
	struct fx f;
	struct sg_key *ca, *alice, *me, *got = NULL;
	struct sg_certs *c = NULL;
	struct store_entry e = {0};
	unsigned char *blob = NULL;
	size_t blen = 0;
	sqlite3 *h = NULL;
	int fd;

	fx_init(&f);
	ca = mk_at(f.ctx, T0 - DAY, "CA", NULL, NULL, 365, 1, NULL);
	alice = mk_at(f.ctx, T0 - DAY, "Alice", a, NULL, 365, 0, ca);
	me = mk_at(f.ctx, T0 - DAY, "Me", m, NULL, 365, 0, ca);
	/* The files as `store init` of that release left them. */
	CHECK_EQ(sg_random_bytes(master, sizeof(master)), SG_OK);
	fd = open(f.key, O_WRONLY | O_CREAT | O_EXCL, 0400);
	CHECK(fd >= 0 && write(fd, master, 32) == 32);
	close(fd);
	fd = open(f.db, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(sg_key_wrap(f.ctx, me, master, "me", &blob, &blen), SG_OK);
	CHECK_EQ(sqlite3_open(f.db, &h), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(h, schema_v1, NULL, NULL, NULL), SQLITE_OK);
	v1_row(h, 7, 2, "alice", alice, NULL, 0, "alice@example.com");
	v1_row(h, 9, 1, "me", me, blob, blen, "me@example.org");
	v1_row(h, 11, 3, "ca", ca, NULL, 0, NULL);
	CHECK_EQ(sqlite3_exec(h,
	                      "INSERT INTO settings VALUES "
	                      "('trust_system_bundle', '0')",
	                      NULL, NULL, NULL),
	         SQLITE_OK);
	sqlite3_close(h);
	CHECK_EQ(raw_int(f.db, "PRAGMA user_version"), 1);

	/* Opened by this build: migrated, in place, nothing lost. */
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &f.st), SG_OK);
	CHECK_EQ(raw_int(f.db, "PRAGMA user_version"),
	         (long long)store_schema_version());
	CHECK(store_schema_version() >= 2);
	CHECK_EQ(raw_int(f.db, "SELECT id FROM certs WHERE name = 'alice'"), 7);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM sqlite_master WHERE sql "
	                       "LIKE '%certs_v2%' OR name LIKE '%_v2'"),
	         0);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM sqlite_master WHERE type "
	                       "= 'index' AND name IN ('certs_fingerprint', "
	                       "'certs_issuer_serial', 'certs_ski', "
	                       "'cert_names_value', 'certs_harvested_lru')"),
	         5);
	CHECK_EQ(store_get(f.st, STORE_PUBLIC, "alice", &e), SG_OK);
	CHECK_STR(e.source, "v1");
	store_entry_clear(&e);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	CHECK(same_cert(c, alice));
	sg_certs_free(c);
	c = NULL;
	CHECK_EQ(store_find_sign_key(f.st, "me@example.org", NULL, &got),
	         SG_OK);
	sg_key_free(got);
	CHECK_EQ(store_trust_anchors(f.st, &c), SG_OK);
	CHECK_EQ(sg_certs_count(c), 1);
	sg_certs_free(c);
	c = NULL;
	/* The names still follow their row (the foreign key survived the
	 * rebuild), and a harvest works. */
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "alice"), SG_OK);
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM cert_names WHERE "
	                       "cert_id = 7"),
	         0);
	harvest_ok(&f, alice, NULL, NULL);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	sg_certs_free(c);
	/* Opened again: nothing more to do. */
	store_close(f.st);
	f.st = NULL;
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &f.st), SG_OK);
	CHECK_EQ(harvested_rows(&f), 1);
	CHECK_EQ(raw_int(f.db, "PRAGMA foreign_key_check"), -1);

	free(blob);
	sg_key_free(ca);
	sg_key_free(alice);
	sg_key_free(me);
	fx_clear(&f);
}

static const struct unit_case cases[] = {
    {"harvest_outcomes", harvest_outcomes},
    {"harvest_arguments_and_source", harvest_arguments_and_source},
    {"updates_by_address_and_domain", updates_by_address_and_domain},
    {"limit_evicts_least_recently_used", limit_evicts_least_recently_used},
    {"lookups_prefer_added_then_newest", lookups_prefer_added_then_newest},
    {"lookups_by_domain", lookups_by_domain},
    {"lookup_marks_last_used", lookup_marks_last_used},
    {"list_get_promote_delete", list_get_promote_delete},
    {"corrupt_harvested_rows", corrupt_harvested_rows},
    {"migrates_a_version_1_store", migrates_a_version_1_store},
    {NULL, NULL},
};
const struct unit_suite suite_harvest = {"harvest", cases};
