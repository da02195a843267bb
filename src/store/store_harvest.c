/*
 * store_harvest.c - harvested certificates (store.h): collecting a
 * sender's certificate from signed mail, the events of updated
 * certificates (for alerts), the size limit (least recently used rows go
 * first), listing, and promoting a harvested row to a public key.
 *
 * What it trusts: of a certificate, only what sg_certs_info parsed; of
 * the database, nothing: every column read back is checked as in the
 * other store files.  Every change is one transaction; every loop and
 * every listing is bounded by a STORE_MAX_* constant.
 *
 * Harvested rows are `certs` rows of role 4 with the harvest's facts
 * (harvested_at, last_used, harvest_source, size), their emails and
 * domains in cert_names like every other row; update events go to
 * harvest_updates.
 */
#include "store/store.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_dl.h"

#include "smimegate.h"
#include "store/store_int.h"

#define SHORT_FP  8   /* hex digits of the fingerprint in a name */
#define LONG_FP   16  /* when the short one is taken */
#define NAME_BASE 100 /* bytes of the email or domain in a name */
#define DAY       86400

/* ---- the outcome ---- */

static void
strv_free(char **v)
{
	for (char **p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

void
store_harvest_out_clear(struct store_harvest_out *o)
{
	if (o == NULL)
		return;
	free(o->name);
	strv_free(o->names);
	memset(o, 0, sizeof(*o));
}

const char *
store_harvest_result_name(enum store_harvest_result r)
{
	switch (r) {
	case STORE_HARVEST_NEW:
		return "new";
	case STORE_HARVEST_UPDATED:
		return "updated";
	case STORE_HARVEST_SAME:
		return "same";
	case STORE_HARVEST_SKIPPED:
		return "skipped";
	}
	return "?";
}

/* Marks O skipped for the reason FMT (standing for WHY); returns 1. */
static int skip(struct store_harvest_out *o, enum sg_status why,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
skip(struct store_harvest_out *o, enum sg_status why, const char *fmt, ...)
{
	va_list ap;

	o->result = STORE_HARVEST_SKIPPED;
	o->skip_status = why;
	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
	return 1;
}

/* ---- what a certificate covers ---- */

/* The normalized emails (first N_EMAIL) then the lowercased domains of a
 * certificate, each once; V is NULL-terminated. */
struct covered {
	char **v;
	size_t n, n_email;
};

/* Appends V (taken over) unless it is there already. */
static enum sg_status
covered_add(struct covered *c, char *v)
{
	char **p;

	for (size_t k = 0; k < c->n; k++)
		if (strcmp(c->v[k], v) == 0) {
			free(v);
			return SG_OK;
		}
	if ((p = realloc(c->v, (c->n + 2) * sizeof(*p))) == NULL) {
		free(v);
		return SG_ERR_NOMEM;
	}
	p[c->n++] = v;
	p[c->n] = NULL;
	c->v = p;
	return SG_OK;
}

/* The names of IN as the name index holds them (store_rows.c does the
 * same): emails that are not addresses, and empty or overlong domains,
 * are left out.  *TOO_MANY when IN has more than STORE_MAX_NAMES. */
static enum sg_status
covered_get(struct store *st, const struct sg_cert_info *in,
            struct covered *out, int *too_many)
{
	struct covered c = {0};
	enum sg_status rc;
	size_t count = 0;
	char *v;

	*too_many = 0;
	if ((c.v = calloc(1, sizeof(*c.v))) == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	for (char **e = in->emails; e != NULL && *e != NULL; e++) {
		if (++count > STORE_MAX_NAMES) {
			*too_many = 1;
			goto done;
		}
		if ((rc = store_email_norm(*e, &v, NULL)) == SG_ERR_USAGE)
			continue;
		if (rc != SG_OK || (rc = covered_add(&c, v)) != SG_OK)
			goto fail;
	}
	c.n_email = c.n;
	for (char **d = in->domains; d != NULL && *d != NULL; d++) {
		if (++count > STORE_MAX_NAMES) {
			*too_many = 1;
			goto done;
		}
		if (**d == '\0' || strlen(*d) > STORE_MAX_ADDR)
			continue;
		if ((v = strdup(*d)) == NULL) {
			rc = SG_ERR_NOMEM;
			goto fail;
		}
		store_ascii_lower(v);
		if ((rc = covered_add(&c, v)) != SG_OK)
			goto fail;
	}
done:
	*out = c;
	return SG_OK;
fail:
	strv_free(c.v);
	return store_fail(st, rc, "out of memory");
}

/* SRC as kept: control characters replaced, cut (on a UTF-8 boundary)
 * to STORE_MAX_HARVEST_SOURCE bytes; "" for NULL. */
static char *
source_clean(const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;
	char *out;

	if (n > STORE_MAX_HARVEST_SOURCE) {
		n = STORE_MAX_HARVEST_SOURCE;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (size_t k = 0; k < n; k++) {
		unsigned char ch = (unsigned char)src[k];
		out[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[n] = '\0';
	return out;
}

static int
text_ok(const char *s, int nullable)
{
	return s == NULL ? nullable : strlen(s) <= STORE_MAX_TEXT;
}

/* The rules that need no database; 1 (and O skipped) when one refuses. */
static int
refused(const struct sg_cert_info *in, size_t der_len, const struct covered *c,
        int too_many, const struct store_harvest_opts *opt, time_t now,
        struct store_harvest_out *o)
{
	/* What nothing overrides first, so that the reason given is one
	 * an option would not change. */
	if (in->is_ca)
		return skip(o, SG_ERR_KEY_USAGE, "a CA certificate");
	if (!in->can_encrypt)
		return skip(o, SG_ERR_KEY_USAGE, "not for encryption");
	if (too_many)
		return skip(o, SG_ERR_LIMIT, "too many names");
	if (c->n == 0)
		return skip(o, SG_ERR_KEY_USAGE, "no email address or domain");
	if (in->fingerprint == NULL || !text_ok(in->subject, 0) ||
	    !text_ok(in->issuer, 0) || !text_ok(in->serial, 0) ||
	    !text_ok(in->ski, 1))
		return skip(o, SG_ERR_BADKEY, "unusable certificate");
	if (der_len == 0 || der_len > STORE_MAX_CERT)
		return skip(o, SG_ERR_LIMIT, "certificate too large");
	if (now > in->not_after && !opt->allow_expired)
		return skip(o, SG_ERR_EXPIRED, "expired");
	if (in->self_signed && !opt->allow_self_signed)
		return skip(o, SG_ERR_POLICY, "self-signed");
	return 0;
}

/* ---- queries inside the harvest's transaction ---- */

/* The name of a valid, encryption-capable added key (ours or a public
 * key) with KIND = VALUE or WILD (may be NULL); *NAME NULL when none. */
static enum sg_status
added_with(struct store *st, const char *kind, const char *value,
           const char *wild, time_t now, char **name)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	*name = NULL;
	if ((rc =
	         store_prepare(st,
	                       "SELECT c.name FROM certs c WHERE c.role IN "
	                       "(1, 2) AND c.cert_der IS NOT NULL AND "
	                       "c.can_encrypt = 1 AND c.not_before <= ?4 AND "
	                       "c.not_after >= ?4 AND c.id IN (SELECT "
	                       "n.cert_id FROM cert_names n WHERE n.kind = ?1 "
	                       "AND n.value IN (?2, ?3)) ORDER BY c.role DESC, "
	                       "c.name LIMIT 1",
	                       &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, wild ? wild : value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)now);
	if ((rc = store_step(st, s, &row)) == SG_OK && row)
		rc = store_col_text(st, s, 0, STORE_MAX_NAME, name);
	sqlite3_finalize(s);
	return rc;
}

/* The added key that a lookup for NAME (an email when EMAIL, else a
 * domain) would choose before any harvested one: by email, or by the
 * email's domain; *ROW NULL when none. */
static enum sg_status
added_for(struct store *st, const char *name, int email, time_t now, char **row)
{
	const char *domain = email ? strrchr(name, '@') + 1 : name;
	char *wild = NULL;
	enum sg_status rc;

	if (email &&
	    (rc = added_with(st, "email", name, NULL, now, row)) != SG_OK)
		return rc;
	if (email && *row != NULL)
		return SG_OK;
	if (store_wildcard_of(domain, &wild) != SG_OK)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	rc = added_with(st, "domain", domain, wild, now, row);
	free(wild);
	return rc;
}

/* The harvested row with fingerprint FP: *ID and *NAME (NULL: none). */
static enum sg_status
harvested_by_fp(struct store *st, const char *fp, int64_t *id, char **name)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	*name = NULL;
	if ((rc = store_prepare(st,
	                        "SELECT id, name FROM certs WHERE role = 4 AND "
	                        "fingerprint = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, fp, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) == SG_OK && row) {
		*id = sqlite3_column_int64(s, 0);
		rc = store_col_text(st, s, 1, STORE_MAX_NAME, name);
		if (rc == SG_OK && *name == NULL)
			rc = store_fail(st, SG_ERR_IO,
			                "corrupt store: a "
			                "harvested row without "
			                "a name");
	}
	sqlite3_finalize(s);
	return rc;
}

/* The newest (notBefore) harvested row other than FP with exactly KIND =
 * VALUE: *NB and *NAME (NULL: none). */
static enum sg_status
harvested_newest(struct store *st, const char *kind, const char *value,
                 const char *fp, time_t *nb, char **name)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	*name = NULL;
	if ((rc = store_prepare(st,
	                        "SELECT c.name, c.not_before FROM certs c "
	                        "WHERE c.role = 4 AND c.fingerprint <> ?3 AND "
	                        "c.id IN (SELECT n.cert_id FROM cert_names n "
	                        "WHERE n.kind = ?1 AND n.value = ?2) ORDER BY "
	                        "c.not_before DESC, c.id DESC LIMIT 1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, fp, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) == SG_OK && row) {
		if (sqlite3_column_type(s, 1) != SQLITE_INTEGER)
			rc = store_fail(st, SG_ERR_IO,
			                "corrupt store: not_before of a "
			                "harvested row");
		else if ((rc = store_col_text(st, s, 0, STORE_MAX_NAME,
		                              name)) == SG_OK)
			*nb = (time_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Runs SQL (a constant) with ?1 = A and ?2 = B. */
static enum sg_status
exec2(struct store *st, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row;

	if ((rc = store_prepare(st, sql, &s)) != SG_OK)
		return rc;
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	rc = store_step(st, s, &row);
	sqlite3_finalize(s);
	return rc;
}

/* Records an update event for each name of C marked in UPD, then drops
 * the events too old or too many to keep. */
static enum sg_status
record_updates(struct store *st, const struct covered *c, const char *upd,
               time_t now)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc = SG_OK;
	int row;

	if ((rc = store_prepare(st,
	                        "INSERT INTO harvest_updates (addr, domain, "
	                        "at) VALUES (?1, ?2, ?3)",
	                        &s)) != SG_OK)
		return rc;
	for (size_t k = 0; k < c->n && rc == SG_OK; k++) {
		const char *v = c->v[k];
		if (!upd[k])
			continue;
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, v, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2,
		                  k < c->n_email ? strrchr(v, '@') + 1 : v, -1,
		                  SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)now);
		rc = store_step(st, s, &row);
	}
	sqlite3_finalize(s);
	if (rc == SG_OK)
		rc = exec2(
		    st, "DELETE FROM harvest_updates WHERE at < ?1",
		    (int64_t)now - (int64_t)STORE_HARVEST_EVENT_DAYS * DAY, 0);
	if (rc == SG_OK)
		rc = exec2(st,
		           "DELETE FROM harvest_updates WHERE id <= (SELECT id "
		           "FROM harvest_updates ORDER BY id DESC LIMIT 1 "
		           "OFFSET ?1)",
		           STORE_MAX_HARVEST_EVENTS, 0);
	return rc;
}

/* A free name for a harvested row: "h-<BASE>-<8 hex digits of FP>", else
 * with 16 digits, else with "-2", "-3", ...  BASE is cut to NAME_BASE
 * bytes, and what is not [A-Za-z0-9._@+-] becomes '_', so that the name
 * is one the command line takes. */
static enum sg_status
harvest_name(struct store *st, const char *base, const char *fp, char **out)
{
	char b[NAME_BASE + 1], name[NAME_BASE + 64];
	size_t n = 0;
	enum sg_status rc;
	int is = 0;

	for (; base[n] != '\0' && n < NAME_BASE; n++) {
		char ch = base[n];
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		         (ch >= '0' && ch <= '9') ||
		         strchr("._@+-", ch) != NULL;
		b[n] = ok ? ch : '_';
	}
	b[n] = '\0';
	for (int k = 0; k < 100; k++) {
		if (k == 0)
			snprintf(name, sizeof(name), "h-%s-%.*s", b, SHORT_FP,
			         fp);
		else if (k == 1)
			snprintf(name, sizeof(name), "h-%s-%.*s", b, LONG_FP,
			         fp);
		else
			snprintf(name, sizeof(name), "h-%s-%.*s-%d", b, LONG_FP,
			         fp, k);
		if ((rc = store_name_taken(st, STORE_HARVESTED, name, &is)) !=
		    SG_OK)
			return rc;
		if (!is) {
			if ((*out = strdup(name)) == NULL)
				return store_fail(st, SG_ERR_NOMEM,
				                  "out of memory");
			return SG_OK;
		}
	}
	return store_fail(st, SG_ERR_EXISTS, "no free name for h-%s", b);
}

/* What a new harvested row holds. */
struct harvest_row {
	const char *name;
	const struct sg_cert_info *in;
	const unsigned char *der;
	size_t der_len;
	const char *source;
	const struct covered *names;
	time_t now;
};

static enum sg_status
insert_names(struct store *st, int64_t id, const struct covered *c)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc = SG_OK;
	int row;

	if ((rc = store_prepare(st,
	                        "INSERT OR IGNORE INTO cert_names (cert_id, "
	                        "kind, value) VALUES (?1, ?2, ?3)",
	                        &s)) != SG_OK)
		return rc;
	for (size_t k = 0; k < c->n && rc == SG_OK; k++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_text(s, 2, k < c->n_email ? "email" : "domain", -1,
		                  SQLITE_STATIC);
		sqlite3_bind_text(s, 3, c->v[k], -1, SQLITE_STATIC);
		rc = store_step(st, s, &row);
	}
	sqlite3_finalize(s);
	return rc;
}

static enum sg_status
insert_harvested(struct store *st, const struct harvest_row *h)
{
	const struct sg_cert_info *in = h->in;
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row;

	if ((rc = store_prepare(
	         st,
	         "INSERT INTO certs (role, name, source, created, cert_der, "
	         "fingerprint, subject, issuer, serial, ski, not_before, "
	         "not_after, can_sign, can_encrypt, self_signed, harvested_at, "
	         "last_used, harvest_source, size) VALUES (4, ?1, 'harvested', "
	         "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?2, ?2, "
	         "?14, ?15)",
	         &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, h->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)h->now);
	sqlite3_bind_blob(s, 3, h->der, (int)h->der_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, in->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, in->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, in->issuer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, in->serial, -1, SQLITE_STATIC);
	if (in->ski != NULL)
		sqlite3_bind_text(s, 8, in->ski, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)in->not_before);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)in->not_after);
	sqlite3_bind_int(s, 11, in->can_sign != 0);
	sqlite3_bind_int(s, 12, in->can_encrypt != 0);
	sqlite3_bind_int(s, 13, in->self_signed != 0);
	sqlite3_bind_text(s, 14, h->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 15, (sqlite3_int64)h->der_len);
	rc = store_step(st, s, &row);
	sqlite3_finalize(s);
	if (rc != SG_OK)
		return rc;
	return insert_names(st, sqlite3_last_insert_rowid(st->db), h->names);
}

/* Decides, inside the transaction, what becomes of IN (with names C):
 * O skipped or SAME (done), or *STORE set for NEW / UPDATED (update
 * events recorded). */
static enum sg_status
decide_tx(struct store *st, const struct sg_cert_info *in,
          const struct covered *c, const struct store_harvest_opts *opt,
          time_t now, struct store_harvest_out *o, int *store)
{
	char *row = NULL, *first_row = NULL, *upd = NULL;
	size_t first = 0, n_added = 0, n_upd = 0;
	enum sg_status rc;
	int64_t id = 0;
	time_t nb = 0;

	*store = 0;
	/* Added keys win: nothing to harvest when each name has one. */
	for (size_t k = 0; k < c->n; k++) {
		if ((rc = added_for(st, c->v[k], k < c->n_email, now, &row)) !=
		    SG_OK)
			goto out;
		if (row == NULL)
			continue;
		if (n_added++ == 0) {
			first = k;
			first_row = row;
		} else {
			free(row);
		}
		row = NULL;
	}
	if (n_added == c->n) {
		skip(o, SG_ERR_EXISTS, "an added key exists for %s (%s)",
		     c->v[first], first_row);
		rc = SG_OK;
		goto out;
	}
	/* The same certificate again: it is still in use. */
	if ((rc = harvested_by_fp(st, in->fingerprint, &id, &row)) != SG_OK)
		goto out;
	if (row != NULL) {
		if ((rc = exec2(st,
		                "UPDATE certs SET last_used = max(last_used, "
		                "?1) WHERE id = ?2",
		                (int64_t)now, id)) != SG_OK)
			goto out;
		o->result = STORE_HARVEST_SAME;
		o->name = row;
		row = NULL;
		goto out;
	}
	/* Against the harvested rows with one of its names. */
	if ((upd = calloc(c->n, 1)) == NULL) {
		rc = store_fail(st, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < c->n; k++) {
		if ((rc = harvested_newest(
		         st, k < c->n_email ? "email" : "domain", c->v[k],
		         in->fingerprint, &nb, &row)) != SG_OK)
			goto out;
		if (row == NULL)
			continue;
		if (nb >= in->not_before) {
			skip(o, SG_ERR_EXISTS,
			     "a newer certificate is stored for %s (%s)",
			     c->v[k], row);
			goto out;
		}
		free(row);
		row = NULL;
		upd[k] = 1;
		n_upd++;
	}
	if (n_upd > 0) {
		if ((rc = record_updates(st, c, upd, now)) != SG_OK)
			goto out;
		if (!opt->store_updated) {
			skip(o, SG_ERR_POLICY,
			     "updated certificate not stored");
			goto out;
		}
	}
	o->result = n_upd > 0 ? STORE_HARVEST_UPDATED : STORE_HARVEST_NEW;
	*store = 1;
out:
	free(row);
	free(first_row);
	free(upd);
	return rc;
}

enum sg_status
store_harvest(struct store *st, const struct sg_certs *certs, size_t i,
              const char *source, const struct store_harvest_opts *o,
              struct store_harvest_out *out)
{
	static const struct store_harvest_opts defaults = {0};
	struct store_harvest_out res = {0};
	struct sg_cert_info in = {0};
	struct covered cov = {0};
	unsigned char *der = NULL;
	size_t der_len = 0;
	char *src = NULL, *name = NULL;
	time_t now = sg_ctx_now(st->ctx);
	enum sg_status rc;
	int too_many = 0, store = 0;

	store_reset(st);
	if (certs == NULL || out == NULL || i >= sg_certs_count(certs))
		return store_fail(st, SG_ERR_USAGE, "no certificate %zu", i);
	if (o == NULL)
		o = &defaults;
	if ((rc = sg_certs_info(certs, i, &in)) != SG_OK)
		return store_fail(st, rc, "cannot read the certificate");
	if ((rc = sg_certs_get_der(certs, i, &der, &der_len)) != SG_OK) {
		rc = store_fail(st, rc, "cannot encode the certificate");
		goto fail;
	}
	if ((rc = covered_get(st, &in, &cov, &too_many)) != SG_OK)
		goto fail;
	if ((src = source_clean(source)) == NULL) {
		rc = store_fail(st, SG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (!refused(&in, der_len, &cov, too_many, o, now, &res)) {
		if ((rc = store_begin(st)) != SG_OK)
			goto fail;
		if ((rc = decide_tx(st, &in, &cov, o, now, &res, &store)) ==
		        SG_OK &&
		    store &&
		    (rc = harvest_name(st, cov.v[0], in.fingerprint, &name)) ==
		        SG_OK) {
			struct harvest_row h = {.name = name,
			                        .in = &in,
			                        .der = der,
			                        .der_len = der_len,
			                        .source = src,
			                        .names = &cov,
			                        .now = now};
			rc = insert_harvested(st, &h);
		}
		if (rc != SG_OK) {
			store_rollback(st);
			goto fail;
		}
		if ((rc = store_commit(st)) != SG_OK)
			goto fail;
		if (store) {
			res.name = name;
			name = NULL;
		}
	}
	res.names = cov.v;
	res.n_names = cov.n;
	cov.v = NULL;
	*out = res;
	res.name = NULL;
	rc = SG_OK;
fail:
	free(res.name);
	free(name);
	free(src);
	free(der);
	strv_free(cov.v);
	sg_cert_info_clear(&in);
	return rc;
}

/* Sets last_used of the harvested row ID (best effort; see store_int.h).
 * Nothing is recorded on ST: the lookup that chose the row succeeded. */
void
store_harvest_touch(struct store *st, int64_t id)
{
	sqlite3_stmt *s = NULL;
	time_t now = sg_ctx_now(st->ctx);

	if (sqlite3_prepare_v2(st->db,
	                       "UPDATE certs SET last_used = ?1 WHERE id = ?2 "
	                       "AND role = 4 AND last_used + ?3 <= ?1",
	                       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)now);
		sqlite3_bind_int64(s, 2, id);
		sqlite3_bind_int(s, 3, STORE_HARVEST_TOUCH);
		(void)sqlite3_step(s);
	}
	sqlite3_finalize(s);
}

/* ---- update events ---- */

enum sg_status
store_harvest_updates(struct store *st, const char *addr_or_domain,
                      time_t since, unsigned *n)
{
	sqlite3_stmt *s = NULL;
	const char *q = addr_or_domain;
	enum sg_status rc;
	char *v = NULL;
	int row = 0, email;
	size_t len;

	store_reset(st);
	if (q == NULL || n == NULL || (len = strlen(q)) == 0 ||
	    len > STORE_MAX_ADDR)
		return store_fail(st, SG_ERR_USAGE,
		                  "give an address or domain");
	if ((email = strchr(q, '@') != NULL)) {
		if ((rc = store_email_norm(q, &v, NULL)) != SG_OK)
			return store_fail(st, rc, "not an address: %s", q);
	} else {
		for (const char *p = q; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 || *p == 0x7f)
				return store_fail(st, SG_ERR_USAGE,
				                  "not a domain: %s", q);
		if ((v = strdup(q)) == NULL)
			return store_fail(st, SG_ERR_NOMEM, "out of memory");
		store_ascii_lower(v);
	}
	if ((rc = store_prepare(st,
	                        email ? "SELECT count(*) FROM harvest_updates "
	                                "WHERE addr = ?1 AND at >= ?2"
	                              : "SELECT count(*) FROM harvest_updates "
	                                "WHERE domain = ?1 AND at >= ?2",
	                        &s)) != SG_OK)
		goto out;
	sqlite3_bind_text(s, 1, v, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since);
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto out;
	if (!row || sqlite3_column_type(s, 0) != SQLITE_INTEGER) {
		rc = store_fail(st, SG_ERR_IO,
		                "counting update events: no "
		                "answer");
		goto out;
	}
	sqlite3_int64 c = sqlite3_column_int64(s, 0);
	*n = c < 0 ? 0 : c > UINT_MAX ? UINT_MAX : (unsigned)c;
out:
	sqlite3_finalize(s);
	free(v);
	return rc;
}

/* ---- size ---- */

/* The number and total size of harvested rows. */
static enum sg_status
usage_tx(struct store *st, size_t *count, uint64_t *bytes)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	if ((rc = store_prepare(st,
	                        "SELECT count(*), coalesce(sum(size), 0) FROM "
	                        "certs WHERE role = 4",
	                        &s)) != SG_OK)
		return rc;
	if ((rc = store_step(st, s, &row)) == SG_OK) {
		if (!row || sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
		    sqlite3_column_int64(s, 0) < 0 ||
		    sqlite3_column_int64(s, 1) < 0) {
			rc = store_fail(st, SG_ERR_IO,
			                "corrupt store: sizes of harvested "
			                "certificates");
		} else {
			if (count != NULL)
				*count = (size_t)sqlite3_column_int64(s, 0);
			if (bytes != NULL)
				*bytes = (uint64_t)sqlite3_column_int64(s, 1);
		}
	}
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_harvest_usage(struct store *st, size_t *count, uint64_t *bytes)
{
	store_reset(st);
	return usage_tx(st, count, bytes);
}

/* The ids of the least recently used harvested rows whose removal brings
 * TOTAL down to MAX (at most STORE_HARVEST_MAX_EVICT): *IDS (malloc'd),
 * *N, and the total after. */
static enum sg_status
lru_pick(struct store *st, uint64_t total, uint64_t max, int64_t **ids,
         size_t *n, uint64_t *after)
{
	sqlite3_stmt *s = NULL;
	int64_t *v = NULL, *p;
	size_t len = 0, cap = 0;
	enum sg_status rc;
	int row = 0;

	if ((rc = store_prepare(st,
	                        "SELECT id, size FROM certs WHERE role = 4 "
	                        "ORDER BY last_used, harvested_at, id LIMIT ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int(s, 1, STORE_HARVEST_MAX_EVICT);
	while (total > max && (rc = store_step(st, s, &row)) == SG_OK && row) {
		sqlite3_int64 size = sqlite3_column_int64(s, 1);
		if (sqlite3_column_type(s, 1) != SQLITE_INTEGER || size <= 0) {
			rc = store_fail(st, SG_ERR_IO,
			                "corrupt store: size of a harvested "
			                "certificate");
			goto fail;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			if ((p = realloc(v, cap * sizeof(*p))) == NULL) {
				rc = store_fail(st, SG_ERR_NOMEM,
				                "out of memory");
				goto fail;
			}
			v = p;
		}
		v[len++] = sqlite3_column_int64(s, 0);
		total = (uint64_t)size > total ? 0 : total - (uint64_t)size;
	}
	if (rc != SG_OK)
		goto fail;
	sqlite3_finalize(s);
	*ids = v;
	*n = len;
	*after = total;
	return SG_OK;
fail:
	sqlite3_finalize(s);
	free(v);
	return rc;
}

enum sg_status
store_harvest_limit(struct store *st, uint64_t max_bytes, size_t *evicted,
                    uint64_t *total_after)
{
	sqlite3_stmt *s = NULL;
	int64_t *ids = NULL;
	uint64_t total = 0, after = 0;
	size_t n = 0;
	enum sg_status rc;
	int row;

	store_reset(st);
	/* Most calls find nothing to do: no write lock for those. */
	if ((rc = usage_tx(st, NULL, &total)) != SG_OK)
		return rc;
	if (total <= max_bytes) {
		if (evicted != NULL)
			*evicted = 0;
		if (total_after != NULL)
			*total_after = total;
		return SG_OK;
	}
	if ((rc = store_begin(st)) != SG_OK)
		return rc;
	if ((rc = usage_tx(st, NULL, &total)) != SG_OK ||
	    (rc = lru_pick(st, total, max_bytes, &ids, &n, &after)) != SG_OK)
		goto fail;
	if (n > 0 && (rc = store_prepare(st, "DELETE FROM certs WHERE id = ?1",
	                                 &s)) != SG_OK)
		goto fail;
	for (size_t k = 0; k < n; k++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, ids[k]);
		if ((rc = store_step(st, s, &row)) != SG_OK)
			goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = store_commit(st)) != SG_OK)
		goto out;
	if (evicted != NULL)
		*evicted = n;
	if (total_after != NULL)
		*total_after = after;
	goto out;
fail:
	sqlite3_finalize(s);
	store_rollback(st);
out:
	free(ids);
	return rc;
}

/* ---- listing ---- */

void
store_harvested_clear(struct store_harvested *h)
{
	if (h == NULL)
		return;
	store_entry_clear(&h->e);
	free(h->source);
	memset(h, 0, sizeof(*h));
}

void
store_harvested_free(struct store_harvested *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t k = 0; k < n; k++)
		store_harvested_clear(&v[k]);
	free(v);
}

/* The columns harvested_read expects. */
#define HARVEST_COLS                                                           \
	STORE_ROW_COLS ", c.harvested_at, c.last_used, c.harvest_source, "     \
	               "c.size"

static enum sg_status
harvest_corrupt(struct store *st, const char *name, const char *what)
{
	return store_fail(st, SG_ERR_IO,
	                  "corrupt store: %s of the harvested row %s", what,
	                  name);
}

/* Reads the HARVEST_COLS of the current row of S into *H. */
static enum sg_status
harvested_read(struct store *st, sqlite3_stmt *s, struct store_harvested *h)
{
	struct store_harvested x = {0};
	struct store_row r = {0};
	struct sg_certs *certs = NULL;
	enum sg_status rc;

	if ((rc = store_row_read(st, s, &r)) != SG_OK)
		goto fail;
	if (r.role != STORE_HARVESTED || r.der == NULL) {
		rc = harvest_corrupt(st, r.name, "the role");
		goto fail;
	}
	if (sqlite3_column_type(s, 8) != SQLITE_INTEGER ||
	    sqlite3_column_type(s, 9) != SQLITE_INTEGER ||
	    sqlite3_column_type(s, 11) != SQLITE_INTEGER) {
		rc = harvest_corrupt(st, r.name, "the dates or size");
		goto fail;
	}
	x.harvested_at = (time_t)sqlite3_column_int64(s, 8);
	x.last_used = (time_t)sqlite3_column_int64(s, 9);
	x.size = (uint64_t)sqlite3_column_int64(s, 11);
	if (sqlite3_column_int64(s, 11) <= 0 ||
	    sqlite3_column_int64(s, 11) > STORE_MAX_CERT) {
		rc = harvest_corrupt(st, r.name, "the size");
		goto fail;
	}
	if ((rc = store_col_text(st, s, 10, STORE_MAX_HARVEST_SOURCE,
	                         &x.source)) != SG_OK)
		goto fail;
	if (x.source == NULL) {
		rc = harvest_corrupt(st, r.name, "the source");
		goto fail;
	}
	if ((rc = store_row_certs(st, &r, &certs)) != SG_OK)
		goto fail;
	rc = sg_certs_info(certs, 0, &x.e.info);
	sg_certs_free(certs);
	if (rc != SG_OK) {
		rc = store_fail(st, rc, "cannot read %s", r.name);
		goto fail;
	}
	x.e.has_cert = 1;
	x.e.role = r.role;
	x.e.created = r.created;
	x.e.name = r.name;
	x.e.source = r.source;
	r.name = r.source = NULL;
	store_row_clear(&r);
	*h = x;
	return SG_OK;
fail:
	store_row_clear(&r);
	store_harvested_clear(&x);
	return rc;
}

enum sg_status
store_harvested_list(struct store *st, struct store_harvested **v, size_t *n)
{
	sqlite3_stmt *s = NULL;
	struct store_harvested *list = NULL, *p;
	size_t len = 0, cap = 0;
	enum sg_status rc;
	int row = 0;

	store_reset(st);
	if ((rc = store_prepare(st,
	                        "SELECT " HARVEST_COLS " FROM certs c WHERE "
	                        "c.role = 4 ORDER BY c.name",
	                        &s)) != SG_OK)
		return rc;
	while ((rc = store_step(st, s, &row)) == SG_OK && row) {
		if (len == STORE_MAX_ROWS) {
			rc = store_fail(st, SG_ERR_LIMIT, "too many rows");
			goto fail;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			if ((p = realloc(list, cap * sizeof(*p))) == NULL) {
				rc = store_fail(st, SG_ERR_NOMEM,
				                "out of memory");
				goto fail;
			}
			list = p;
		}
		if ((rc = harvested_read(st, s, &list[len])) != SG_OK)
			goto fail;
		len++;
	}
	if (rc != SG_OK)
		goto fail;
	sqlite3_finalize(s);
	*v = list;
	*n = len;
	return SG_OK;
fail:
	sqlite3_finalize(s);
	store_harvested_free(list, len);
	return rc;
}

enum sg_status
store_harvested_get(struct store *st, const char *name,
                    struct store_harvested *h)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	store_reset(st);
	if (!store_name_ok(name))
		return store_fail(st, SG_ERR_NOT_FOUND,
		                  "no such harvested certificate");
	if ((rc = store_prepare(st,
	                        "SELECT " HARVEST_COLS " FROM certs c WHERE "
	                        "c.role = 4 AND c.name = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) == SG_OK) {
		if (!row)
			rc = store_fail(st, SG_ERR_NOT_FOUND,
			                "no harvested certificate named %s",
			                name);
		else
			rc = harvested_read(st, s, h);
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- promotion ---- */

/* Inside the transaction: the checks, then the row changes role. */
static enum sg_status
promote_tx(struct store *st, const char *name, const char *target)
{
	sqlite3_stmt *s = NULL;
	char *fp = NULL, *other = NULL;
	int64_t id = 0;
	enum sg_status rc;
	int row = 0, is = 0;

	if ((rc = store_prepare(st,
	                        "SELECT id, fingerprint FROM certs WHERE role "
	                        "= 4 AND name = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto out;
	if (!row) {
		rc = store_fail(st, SG_ERR_NOT_FOUND,
		                "no harvested certificate named %s", name);
		goto out;
	}
	id = sqlite3_column_int64(s, 0);
	if ((rc = store_col_text(st, s, 1, STORE_MAX_TEXT, &fp)) != SG_OK)
		goto out;
	if (fp == NULL) {
		rc = harvest_corrupt(st, name, "the fingerprint");
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = store_name_taken(st, STORE_PUBLIC, target, &is)) != SG_OK)
		goto out;
	if (is) {
		rc = store_fail(st, SG_ERR_EXISTS,
		                "a certificate named %s exists (choose another "
		                "name)",
		                target);
		goto out;
	}
	if ((rc = store_prepare(st,
	                        "SELECT name FROM certs WHERE role = 2 AND "
	                        "fingerprint = ?1",
	                        &s)) != SG_OK)
		goto out;
	sqlite3_bind_text(s, 1, fp, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto out;
	if (row) {
		if ((rc = store_col_text(st, s, 0, STORE_MAX_NAME, &other)) ==
		    SG_OK)
			rc = store_fail(st, SG_ERR_EXISTS,
			                "this certificate is already stored as "
			                "certificate %s",
			                other ? other : "?");
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = store_prepare(st,
	                        "UPDATE certs SET role = 2, name = ?1, "
	                        "harvested_at = NULL, last_used = NULL, "
	                        "harvest_source = NULL, size = NULL WHERE "
	                        "id = ?2",
	                        &s)) != SG_OK)
		goto out;
	sqlite3_bind_text(s, 1, target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, id);
	rc = store_step(st, s, &row);
out:
	sqlite3_finalize(s);
	free(fp);
	free(other);
	return rc;
}

enum sg_status
store_harvested_promote(struct store *st, const char *name,
                        const char *new_name)
{
	enum sg_status rc;

	store_reset(st);
	if (!store_name_ok(name))
		return store_fail(st, SG_ERR_NOT_FOUND,
		                  "no such harvested certificate");
	if (new_name != NULL && !store_name_ok(new_name))
		return store_fail(st, SG_ERR_USAGE,
		                  "bad name (1 to %d bytes, no control "
		                  "characters, no leading or trailing space)",
		                  STORE_MAX_NAME);
	if ((rc = store_begin(st)) != SG_OK)
		return rc;
	if ((rc = promote_tx(st, name, new_name ? new_name : name)) != SG_OK) {
		store_rollback(st);
		return rc;
	}
	return store_commit(st);
}
