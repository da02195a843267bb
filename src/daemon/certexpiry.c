/*
 * certexpiry.c - the certificate-expiry alert (certexpiry.h).
 */
#include "daemon/certexpiry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

#define DAY 86400
/* A listing waits this long at most for another connection's lock (the
 * daemon's loop calls it); a busy store is tried at the next check. */
#define CERTEXPIRY_BUSY_MS 250

/* A certificate alerted: by name and notAfter (a renewal in place is
 * another certificate), and when. */
struct alerted {
	char *name;
	time_t not_after;
	time_t when;
	int seen; /* still in the store at this check */
};

struct certexpiry {
	struct alerts *a;
	struct alerted *v;
	size_t n;
};

struct certexpiry *
certexpiry_new(struct alerts *a)
{
	struct certexpiry *ce = calloc(1, sizeof(*ce));

	if (ce != NULL)
		ce->a = a;
	return ce;
}

void
certexpiry_free(struct certexpiry *ce)
{
	if (ce == NULL)
		return;
	for (size_t i = 0; i < ce->n; i++)
		free(ce->v[i].name);
	free(ce->v);
	free(ce);
}

size_t
certexpiry_remembered(const struct certexpiry *ce)
{
	return ce->n;
}

static struct alerted *
find(struct certexpiry *ce, const char *name, time_t not_after)
{
	for (size_t i = 0; i < ce->n; i++)
		if (ce->v[i].not_after == not_after &&
		    strcmp(ce->v[i].name, name) == 0)
			return &ce->v[i];
	return NULL;
}

/* Remembers NAME/NOT_AFTER as alerted at NOW.  -1 when memory is short
 * (the alert then repeats at the next check: better than none). */
static int
remember(struct certexpiry *ce, const char *name, time_t not_after, time_t now)
{
	struct alerted *v;
	char *copy;

	if ((copy = strdup(name)) == NULL)
		return -1;
	if ((v = realloc(ce->v, (ce->n + 1) * sizeof(*v))) == NULL) {
		free(copy);
		return -1;
	}
	ce->v = v;
	ce->v[ce->n++] = (struct alerted){copy, not_after, now, 1};
	return 0;
}

/* Forgets the certificates no longer in the store (deleted, or renewed
 * in place), so that the memory stays as small as the store. */
static void
forget_unseen(struct certexpiry *ce)
{
	size_t k = 0;

	for (size_t i = 0; i < ce->n; i++) {
		if (ce->v[i].seen) {
			ce->v[i].seen = 0;
			ce->v[k++] = ce->v[i];
		} else {
			free(ce->v[i].name);
		}
	}
	ce->n = k;
}

/* Another certificate of ours in V (N rows) that renews E: the same
 * subject, valid at NOW and beyond the window; the one that lasts
 * longest, or NULL. */
static const struct store_entry *
renewal_of(const struct store_entry *v, size_t n, const struct store_entry *e,
           time_t now, time_t window)
{
	const struct store_entry *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct sg_cert_info *o = &v[i].info;
		if (&v[i] == e || !v[i].has_cert || o->subject == NULL ||
		    strcmp(o->subject, e->info.subject) != 0)
			continue;
		if (o->not_before <= now && o->not_after - now >= window &&
		    (best == NULL || o->not_after > best->info.not_after))
			best = &v[i];
	}
	return best;
}

/* Where CFG names certificate NAME (a signer by name gets that row and
 * no other: a renewal does not replace it there), into BUF; NULL when
 * nowhere. */
static const char *
named_by(const struct cfg *cfg, const char *name, char *buf, size_t len)
{
	for (size_t i = 0; i < cfg->nprofiles; i++)
		if (cfg->profiles[i].signer != NULL &&
		    strcmp(cfg->profiles[i].signer, name) == 0) {
			snprintf(buf, len, "[profile %s] signer",
			         cfg->profiles[i].name);
			return buf;
		}
	if (cfg->notify_signer != NULL && strcmp(cfg->notify_signer, name) == 0)
		return "notify_signer";
	return NULL;
}

/* Whole days from NOW to T, as `smimegate cert list` counts them: down
 * for days left, up for days since. */
static long
days_left(time_t t, time_t now)
{
	return t > now ? (long)((t - now) / DAY)
	               : -(long)((now - t + DAY - 1) / DAY);
}

/* The alert for E, at NOW.  RENEWAL (may be NULL) renews it, but WHERE
 * in the configuration still names E. */
static void
raise_one(struct certexpiry *ce, const struct store_entry *e, time_t now,
          const struct store_entry *renewal, const char *where)
{
	const struct sg_cert_info *i = &e->info;
	char when[32], advice[512];
	struct tm tm;
	long days = days_left(i->not_after, now);

	gmtime_r(&i->not_after, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (renewal != NULL)
		snprintf(advice, sizeof(advice),
		         "It is renewed by '%s', but %s names '%s': set it "
		         "to '%s' and reload.",
		         renewal->name, where, e->name, renewal->name);
	else
		snprintf(advice, sizeof(advice),
		         "Renew it: `smimegate cert csr NEW-NAME --out FILE` "
		         "makes a request for a CA, then `smimegate cert "
		         "import` its answer; or `smimegate cert import` a "
		         "renewed certificate with its key.");
	alert_raise(ce->a, "certificate-expiry",
	            "Our certificate '%s' (subject %s) %s on %s (days "
	            "left: %ld)%s. %s",
	            e->name, i->subject,
	            i->not_after > now ? "expires" : "expired", when, days,
	            i->not_after > now ? ""
	                               : ": the gateway no longer signs "
	                                 "with it",
	            advice);
}

enum sg_status
certexpiry_check(struct certexpiry *ce, struct sg_ctx *ctx,
                 const struct cfg *cfg, struct certexpiry_counts *out,
                 char *err, size_t errlen)
{
	struct certexpiry_counts c = {0, 0, 0};
	struct store *st = NULL;
	struct store_entry *v = NULL;
	size_t n = 0;
	time_t now = sg_ctx_now(ctx), window = (time_t)cfg->alert_cert_expiry;
	enum sg_status rc;

	if (cfg->alert_cert_expiry == 0)
		goto done;
	if ((rc = store_open(ctx, cfg->store_path, cfg->keyfile, &st)) !=
	    SG_OK) {
		snprintf(err, errlen, "store %s: %s", cfg->store_path,
		         sg_ctx_error(ctx));
		return rc;
	}
	store_set_busy_timeout(st, CERTEXPIRY_BUSY_MS);
	if ((rc = store_list(st, STORE_ORG, &v, &n)) != SG_OK) {
		snprintf(err, errlen, "store %s: %s", cfg->store_path,
		         store_errmsg(st));
		store_close(st);
		return rc;
	}
	store_close(st);
	for (size_t k = 0; k < n; k++) {
		const struct store_entry *e = &v[k], *renewal;
		const char *where = NULL;
		char buf[256];
		struct alerted *seen;

		/* A pending CSR has no certificate yet. */
		if (!e->has_cert || e->info.subject == NULL)
			continue;
		c.ours++;
		if ((seen = find(ce, e->name, e->info.not_after)) != NULL)
			seen->seen = 1;
		if (e->info.not_after - now >= window)
			continue;
		/* Renewed and named nowhere: nothing to do. */
		if ((renewal = renewal_of(v, n, e, now, window)) != NULL &&
		    (where = named_by(cfg, e->name, buf, sizeof(buf))) == NULL)
			continue;
		c.expiring++;
		if (seen != NULL && now - seen->when < DAY)
			continue;
		raise_one(ce, e, now, renewal, where);
		c.alerted++;
		if (seen != NULL)
			seen->when = now;
		else
			(void)remember(ce, e->name, e->info.not_after, now);
	}
	forget_unseen(ce);
	store_entries_free(v, n);
done:
	if (out != NULL)
		*out = c;
	return SG_OK;
}
