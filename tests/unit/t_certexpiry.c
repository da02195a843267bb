/*
 * t_certexpiry.c - the certificate-expiry alert: which of our
 * certificates alert (expiring within the window, expired) and which do
 * not (valid beyond it, renewed, a pending CSR, other roles, the window
 * 0), once a day per certificate, and a store that cannot open.  A store
 * in a temporary directory; time injected with sg_ctx_set_time.
 */
#include "unit.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/alert.h"
#include "daemon/certexpiry.h"
#include "policy/config.h"
#include "smimegate.h"
#include "store/store.h"

#define DAY 86400
#define T0  ((time_t)1767225600) /* 2026-01-01T00:00:00Z */

/* The alerts mailed, as "KIND: TEXT". */
struct sent {
	char text[16][1100];
	size_t n;
};

static enum sg_status
capture(void *arg, const char *kind, const char *text)
{
	struct sent *s = arg;

	if (s->n < sizeof(s->text) / sizeof(*s->text))
		snprintf(s->text[s->n], sizeof(s->text[0]), "%s: %s", kind,
		         text);
	s->n++;
	return SG_OK;
}

/* How many of the alerts sent from index FROM on name certificate NAME. */
static size_t
count_for(const struct sent *s, size_t from, const char *name)
{
	char quoted[160];
	size_t k = 0;

	snprintf(quoted, sizeof(quoted), "'%s'", name);
	for (size_t i = from; i < s->n && i < 16; i++)
		if (strstr(s->text[i], quoted) != NULL)
			k++;
	return k;
}

struct fx {
	char dir[64], db[96];
	struct sg_ctx *ctx;
	struct store *st;
	struct cfg cfg;
	struct sent sent;
	struct alerts *a;
	struct certexpiry *ce;
	struct certexpiry_counts last; /* of the last check_at */
};

static void
fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_certexpiry_XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->db, sizeof(f->db), "%s/s.db", f->dir);
	CHECK_EQ(sg_ctx_new(&f->ctx), SG_OK);
	CHECK_EQ(store_init(f->ctx, f->db, NULL), SG_OK);
	CHECK_EQ(store_open(f->ctx, f->db, NULL, &f->st), SG_OK);
	f->cfg.store_path = f->db;
	f->cfg.alert_cert_expiry = 30 * DAY;
	f->cfg.alert_cert_expiry_check = 3600;
	f->a = alerts_new(NULL, capture, &f->sent);
	f->ce = certexpiry_new(f->a);
	CHECK(f->a != NULL && f->ce != NULL);
}

static void
fx_clear(struct fx *f)
{
	certexpiry_free(f->ce);
	alerts_free(f->a);
	store_close(f->st);
	unit_rm_tree(f->dir);
	sg_ctx_free(f->ctx);
}

/* Our certificate NAME for CN, made at AT for DAYS days. */
static void
put_ours(struct fx *f, const char *name, const char *cn, time_t at,
         unsigned days)
{
	const char *const emails[] = {"org@example.com", NULL};
	struct sg_cert_req req = {.cn = cn,
	                          .days = days,
	                          .key = SG_KEY_EC_P256,
	                          .san_emails = emails};
	struct sg_key *k = NULL;

	sg_ctx_set_time(f->ctx, at);
	CHECK_EQ(sg_cert_create(f->ctx, &req, NULL, &k), SG_OK);
	CHECK_EQ(store_put_key(f->st, name, k, "created"), SG_OK);
	sg_key_free(k);
}

/* Checks at AT; SG_OK expected. */
static void
check_at(struct fx *f, time_t at)
{
	char err[512] = "";

	sg_ctx_set_time(f->ctx, at);
	if (certexpiry_check(f->ce, f->ctx, &f->cfg, &f->last, err,
	                     sizeof(err)) != SG_OK)
		unit_fail(__FILE__, __LINE__, err);
}

/* Expiring within the window and expired alert; valid beyond it, a
 * pending CSR, a partner's certificate and a trust anchor do not. */
static void
which_certificates_alert(void)
{
	struct fx f;
	struct sg_key *k = NULL, *pk = NULL;
	struct sg_certs *c = NULL;
	char *pem = NULL;
	const struct sg_cert_req csr = {
	    .cn = "Pending", .days = 365, .key = SG_KEY_EC_P256};

	fx_open(&f);
	put_ours(&f, "soon", "Soon Org", T0, 5);
	put_ours(&f, "year", "Year Org", T0, 365);
	put_ours(&f, "edge", "Edge Org", T0, 31); /* just beyond the window */
	put_ours(&f, "gone", "Gone Org", T0 - 400 * DAY, 30);
	CHECK_EQ(sg_csr_create(f.ctx, &csr, &k, &pem), SG_OK);
	CHECK_EQ(store_put_csr(f.st, "pending", k, pem), SG_OK);
	/* Someone else's certificate, and an anchor, expiring soon. */
	sg_ctx_set_time(f.ctx, T0);
	const char *const emails[] = {"partner@example.net", NULL};
	const struct sg_cert_req other = {.cn = "Partner",
	                                  .days = 3,
	                                  .key = SG_KEY_EC_P256,
	                                  .san_emails = emails};
	const struct sg_cert_req ca = {
	    .cn = "Anchor", .days = 3, .key = SG_KEY_EC_P256, .ca = 1};
	CHECK_EQ(sg_cert_create(f.ctx, &other, NULL, &pk), SG_OK);
	CHECK_EQ(sg_key_get_certs(pk, &c), SG_OK);
	CHECK_EQ(store_put_cert(f.st, STORE_PUBLIC, "partner", c, 0, "added"),
	         SG_OK);
	sg_certs_free(c);
	sg_key_free(pk);
	CHECK_EQ(sg_cert_create(f.ctx, &ca, NULL, &pk), SG_OK);
	CHECK_EQ(sg_key_get_certs(pk, &c), SG_OK);
	CHECK_EQ(store_put_cert(f.st, STORE_CA, "anchor", c, 0, "added"),
	         SG_OK);

	check_at(&f, T0 + 3600);
	CHECK_EQ(f.sent.n, 2);
	CHECK(f.last.ours == 4 && f.last.expiring == 2 && f.last.alerted == 2);
	CHECK_EQ(count_for(&f.sent, 0, "soon"), 1);
	CHECK_EQ(count_for(&f.sent, 0, "gone"), 1);
	for (size_t i = 0; i < f.sent.n && i < 16; i++) {
		const char *t = f.sent.text[i];
		CHECK(strncmp(t, "certificate-expiry: ", 20) == 0);
		CHECK(strstr(t, "smimegate cert csr") != NULL);
		CHECK(strstr(t, "smimegate cert import") != NULL);
		if (strstr(t, "'soon'") != NULL) {
			CHECK(strstr(t, "CN=Soon Org") != NULL);
			CHECK(strstr(t, "expires on 2026-01-06T00:00:00Z") !=
			      NULL);
			CHECK(strstr(t, "days left: 4)") != NULL);
		} else {
			CHECK(strstr(t, "CN=Gone Org") != NULL);
			/* 2024-11-27 + 30 days, 366 days before T0 + 1h */
			CHECK(strstr(t, "expired on 2024-12-27T00:00:00Z") !=
			      NULL);
			CHECK(strstr(t, "days left: -371)") != NULL);
			CHECK(strstr(t, "no longer signs") != NULL);
		}
	}
	CHECK_EQ(certexpiry_remembered(f.ce), 2);
	sg_certs_free(c);
	sg_key_free(pk);
	sg_key_free(k);
	free(pem);
	fx_clear(&f);
}

/* One alert per certificate a day; a day later again; a deleted
 * certificate is forgotten; a renewal in place (same name, new
 * notAfter) is another certificate. */
static void
once_a_day(void)
{
	struct fx f;
	size_t n;

	fx_open(&f);
	put_ours(&f, "soon", "Soon Org", T0, 5);
	put_ours(&f, "other", "Other Org", T0, 10);
	check_at(&f, T0);
	CHECK_EQ(f.sent.n, 2);
	for (int s = 1; s <= 5; s++)
		check_at(&f, T0 + s);
	check_at(&f, T0 + DAY - 1);
	CHECK_EQ(f.sent.n, 2);
	CHECK(f.last.ours == 2 && f.last.expiring == 2 && f.last.alerted == 0);
	check_at(&f, T0 + DAY);
	CHECK_EQ(f.sent.n, 4);
	CHECK_EQ(count_for(&f.sent, 2, "soon"), 1);
	CHECK_EQ(count_for(&f.sent, 2, "other"), 1);
	check_at(&f, T0 + DAY + 60);
	CHECK_EQ(f.sent.n, 4);

	/* Deleted: forgotten.  The same name with a new certificate
	 * alerts at once. */
	CHECK_EQ(store_delete(f.st, STORE_ORG, "soon"), SG_OK);
	check_at(&f, T0 + DAY + 120);
	CHECK_EQ(certexpiry_remembered(f.ce), 1);
	put_ours(&f, "soon", "Soon Org", T0 + DAY, 6);
	n = f.sent.n;
	check_at(&f, T0 + DAY + 180);
	CHECK_EQ(f.sent.n, n + 1);
	CHECK_EQ(count_for(&f.sent, n, "soon"), 1);
	fx_clear(&f);
}

/* A renewal (same subject, valid now and beyond the window) silences
 * the old certificate; one not valid yet, or expiring too, does not. */
static void
renewed_certificates(void)
{
	struct fx f;

	fx_open(&f);
	put_ours(&f, "org", "Example Org", T0, 5);
	put_ours(&f, "org-2", "Example Org", T0 + 2 * DAY, 365);
	put_ours(&f, "lab", "Lab", T0, 5);
	put_ours(&f, "lab-2", "Lab", T0, 20); /* expiring too */
	check_at(&f, T0 + DAY);               /* org-2 not valid yet */
	CHECK_EQ(count_for(&f.sent, 0, "org"), 1);
	CHECK_EQ(count_for(&f.sent, 0, "org-2"), 0);
	CHECK_EQ(count_for(&f.sent, 0, "lab"), 1);
	CHECK_EQ(count_for(&f.sent, 0, "lab-2"), 1);
	size_t n = f.sent.n;
	check_at(&f, T0 + 3 * DAY); /* org-2 valid: org renewed */
	CHECK_EQ(count_for(&f.sent, n, "org"), 0);
	CHECK(f.last.ours == 4 && f.last.expiring == 2);
	CHECK_EQ(count_for(&f.sent, n, "lab"), 1);
	fx_clear(&f);
}

/* A renewed certificate that the configuration names (a profile's
 * signer, notify_signer) still alerts: that name is used, not the
 * renewal.  The alert says what to change. */
static void
renewed_but_named(void)
{
	struct cfg_profile prof[] = {{.name = "out", .signer = "other"},
	                             {.name = "sales", .signer = "org"}};
	struct fx f;

	fx_open(&f);
	put_ours(&f, "org", "Example Org", T0, 5);
	put_ours(&f, "org-2", "Example Org", T0, 365);
	put_ours(&f, "dsn", "Notices", T0, 5);
	put_ours(&f, "dsn-2", "Notices", T0, 100);
	put_ours(&f, "lab", "Lab", T0, 5);
	put_ours(&f, "lab-2", "Lab", T0, 365);
	f.cfg.profiles = prof;
	f.cfg.nprofiles = 2;
	f.cfg.notify_signer = "dsn";
	check_at(&f, T0 + 60);
	CHECK_EQ(f.sent.n, 2);
	CHECK_EQ(count_for(&f.sent, 0, "lab"), 0);
	for (size_t i = 0; i < f.sent.n && i < 16; i++) {
		const char *t = f.sent.text[i];
		if (strstr(t, "'org'") != NULL)
			CHECK(strstr(t, "renewed by 'org-2', but [profile "
			                "sales] signer names 'org'") != NULL);
		else
			CHECK(strstr(t, "renewed by 'dsn-2', but "
			                "notify_signer names 'dsn'") != NULL);
		CHECK(strstr(t, "cert csr") == NULL);
	}
	fx_clear(&f);
}

/* alert_cert_expiry = 0: nothing, not even the store is opened; a store
 * that cannot open is an error with a reason. */
static void
off_and_errors(void)
{
	struct fx f;
	char err[512] = "";

	fx_open(&f);
	put_ours(&f, "soon", "Soon Org", T0, 5);
	f.cfg.alert_cert_expiry = 0;
	check_at(&f, T0);
	CHECK_EQ(f.sent.n, 0);
	CHECK(f.last.ours == 0 && f.last.alerted == 0);
	f.cfg.store_path = "/nonexistent/s.db";
	check_at(&f, T0);
	f.cfg.alert_cert_expiry = 30 * DAY;
	CHECK(certexpiry_check(f.ce, f.ctx, &f.cfg, NULL, err, sizeof(err)) !=
	      SG_OK);
	CHECK(strstr(err, "/nonexistent/s.db") != NULL);
	CHECK_EQ(f.sent.n, 0);
	/* A window of 10 days: 5 days left alerts, 5 after it none. */
	f.cfg.store_path = f.db;
	f.cfg.alert_cert_expiry = 10 * DAY;
	put_ours(&f, "later", "Later Org", T0, 15);
	check_at(&f, T0);
	CHECK_EQ(f.sent.n, 1);
	CHECK_EQ(count_for(&f.sent, 0, "soon"), 1);
	fx_clear(&f);
}

static const struct unit_case cases[] = {
    {"which_certificates_alert", which_certificates_alert},
    {"once_a_day", once_a_day},
    {"renewed_certificates", renewed_certificates},
    {"renewed_but_named", renewed_but_named},
    {"off_and_errors", off_and_errors},
    {NULL, NULL},
};
const struct unit_suite suite_certexpiry = {"certexpiry", cases};
