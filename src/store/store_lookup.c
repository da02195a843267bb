/*
 * store_lookup.c - the lookups the gateway makes: a recipient's
 * encryption certificate, a sender's signing key, the key that opens a
 * RecipientInfo, and the trust anchors.
 *
 * Each has three outcomes: found, SG_ERR_NOT_FOUND, or a failure (busy,
 * corrupt) that is never reported as "not found".  The SQL narrows the
 * candidates with the indexed facts; each candidate's certificate is then
 * parsed again and must itself satisfy the rule (name, validity at
 * sg_ctx_now(), fitness) before it is returned.
 *
 * Harvested certificates (STORE_HARVESTED) serve encryption only, and
 * only when no added key (STORE_PUBLIC, or ours) matches the recipient,
 * by email or by domain; among them the newest notBefore wins, and the
 * one chosen gets its last_used set (best effort: store_harvest_touch).
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/sqlite_dl.h"

#include "smimegate.h"
#include "store/store_int.h"

/* What a candidate must be. */
struct want {
	store_veto_fn veto; /* the caller's last word, or NULL */
	void *veto_arg;
	int sign;             /* signing (ours only) rather than encryption */
	int harvested;        /* among harvested rows, not added ones */
	int email;            /* match an email rather than a domain */
	const char *value;    /* the normalized email, or the domain */
	const char *wildcard; /* "*.parent" for a domain, or NULL */
	time_t now;
};

/* Whether dNSName PATTERN covers DOMAIN: equal, or `*.base` with DOMAIN
 * one label more than base (and base itself at least two labels). */
static int
domain_matches(const char *pattern, const char *domain)
{
	const char *base, *dot;

	if (strchr(domain, '*') != NULL)
		return 0;
	if (strcasecmp(pattern, domain) == 0)
		return 1;
	if (strncmp(pattern, "*.", 2) != 0)
		return 0;
	base = pattern + 2;
	if (strchr(base, '.') == NULL || strchr(base, '*') != NULL)
		return 0;
	if ((dot = strchr(domain, '.')) == NULL || dot == domain)
		return 0;
	return strcasecmp(dot + 1, base) == 0;
}

static int
email_in(char **emails, const char *value)
{
	enum sg_status rc;
	char *n;
	int hit;

	for (; emails != NULL && *emails != NULL; emails++) {
		if ((rc = store_email_norm(*emails, &n, NULL)) != SG_OK)
			continue;
		hit = strcmp(n, value) == 0;
		free(n);
		if (hit)
			return 1;
	}
	return 0;
}

static int
domain_in(char **domains, const char *domain)
{
	for (; domains != NULL && *domains != NULL; domains++)
		if (domain_matches(*domains, domain))
			return 1;
	return 0;
}

/* Whether the parsed certificate itself satisfies W. */
static int
fits(const struct sg_cert_info *in, const struct want *w)
{
	if (w->now < in->not_before || w->now > in->not_after)
		return 0;
	if (w->sign ? !in->can_sign : !in->can_encrypt)
		return 0;
	return w->email ? email_in(in->emails, w->value)
	                : domain_in(in->domains, w->value);
}

/* Takes the candidates of S in order; the first whose certificate passes
 * OK(info, ARG) wins: *CERTS gets its certificates, *ID (when not NULL)
 * its row id and, when KEY is not NULL, *KEY its private key.  A corrupt
 * candidate is skipped, but when nothing else is found its failure is
 * returned instead of NOT_FOUND.  VETO (may be NULL) has the last word on
 * a candidate that passed: 0 take it, 1 skip it, -1 fail with
 * SG_ERR_TEMP (its reason already on the store). */
static enum sg_status
scan(struct store *st, sqlite3_stmt *s,
     int (*ok)(const struct sg_cert_info *, const void *), const void *arg,
     store_veto_fn veto, void *veto_arg, struct sg_certs **certs,
     struct sg_key **key, int64_t *id)
{
	struct store_row r = {0};
	struct sg_certs *c = NULL;
	struct sg_cert_info info;
	enum sg_status rc, bad = SG_OK;
	char badmsg[STORE_ERRLEN] = "";
	int row = 0, hit;

	for (size_t k = 0; k < STORE_MAX_CANDIDATES; k++) {
		if ((rc = store_step(st, s, &row)) != SG_OK)
			return rc;
		if (!row)
			break;
		if ((rc = store_row_read(st, s, &r)) != SG_OK ||
		    (rc = store_row_certs(st, &r, &c)) != SG_OK ||
		    (rc = sg_certs_info(c, 0, &info)) != SG_OK) {
			if (rc == SG_ERR_NOMEM)
				goto fail;
			if (bad == SG_OK) {
				bad = rc == SG_ERR_NOT_FOUND ? SG_ERR_IO : rc;
				memcpy(badmsg, st->err, sizeof(badmsg));
			}
			sg_certs_free(c);
			c = NULL;
			store_row_clear(&r);
			continue;
		}
		hit = ok(&info, arg);
		sg_cert_info_clear(&info);
		if (hit && veto != NULL) {
			int v = veto(veto_arg, c);

			if (v == -1) {
				rc = SG_ERR_TEMP;
				goto fail;
			}
			hit = v == 0;
		}
		if (hit) {
			if (key != NULL &&
			    (rc = store_row_key(st, &r, c, key)) != SG_OK)
				goto fail;
			if (id != NULL)
				*id = r.id;
			store_row_clear(&r);
			*certs = c;
			return SG_OK;
		}
		sg_certs_free(c);
		c = NULL;
		store_row_clear(&r);
	}
	if (bad != SG_OK)
		return store_fail(st, bad, "%s", badmsg);
	return SG_ERR_NOT_FOUND;
fail:
	sg_certs_free(c);
	store_row_clear(&r);
	return rc;
}

static int
fits_cb(const struct sg_cert_info *in, const void *arg)
{
	return fits(in, arg);
}

/* The first certificate (and key, for signing) that satisfies W: among
 * ours and the added ones (ours only for signing), newest notAfter first;
 * or, with W->harvested, among the harvested ones, newest notBefore
 * first, and the one chosen is marked used. */
static enum sg_status
find(struct store *st, const struct want *w, struct sg_certs **certs,
     struct sg_key **key)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int64_t id = 0;

	if ((rc = store_prepare(
	         st,
	         "SELECT " STORE_ROW_COLS " FROM certs c WHERE c.id IN "
	         "(SELECT n.cert_id FROM cert_names n WHERE n.kind = ?1 "
	         "AND n.value IN (?2, ?3)) "
	         "AND (CASE WHEN ?8 THEN c.role = 4 "
	         "ELSE c.role IN (1, ?4) END) "
	         "AND c.cert_der IS NOT NULL "
	         "AND 1 = (CASE WHEN ?5 THEN c.can_sign "
	         "ELSE c.can_encrypt END) "
	         "AND c.not_before <= ?6 AND c.not_after >= ?6 "
	         "ORDER BY (CASE WHEN ?8 THEN c.not_before "
	         "ELSE c.not_after END) DESC, c.not_after DESC, c.id DESC "
	         "LIMIT ?7",
	         &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, w->email ? "email" : "domain", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(s, 2, w->value, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, w->wildcard ? w->wildcard : w->value, -1,
	                  SQLITE_STATIC);
	sqlite3_bind_int(s, 4, w->sign ? STORE_ORG : STORE_PUBLIC);
	sqlite3_bind_int(s, 5, w->sign);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)w->now);
	sqlite3_bind_int(s, 7, STORE_MAX_CANDIDATES);
	sqlite3_bind_int(s, 8, w->harvested);
	rc = scan(st, s, fits_cb, w, w->veto, w->veto_arg, certs, key, &id);
	sqlite3_finalize(s);
	if (rc == SG_OK && w->harvested)
		store_harvest_touch(st, id);
	return rc;
}

enum sg_status
store_wildcard_of(const char *domain, char **out)
{
	const char *dot = strchr(domain, '.');
	char *wild;

	*out = NULL;
	/* `*.example.net` for a.example.net; never `*.net`. */
	if (dot == NULL || dot == domain || strchr(dot + 1, '.') == NULL)
		return SG_OK;
	if ((wild = malloc(strlen(dot) + 2)) == NULL)
		return SG_ERR_NOMEM;
	wild[0] = '*';
	strcpy(wild + 1, dot);
	*out = wild;
	return SG_OK;
}

/* Looks ADDR up by email, then by domain; for encryption, when neither
 * matches, the same among harvested rows: an added key (by email or by
 * domain) always wins over a harvested one. */
static enum sg_status
find_addr(struct store *st, const char *addr, int sign, store_veto_fn veto,
          void *veto_arg, struct sg_certs **certs, struct sg_key **key)
{
	struct want w = {.sign = sign,
	                 .now = sg_ctx_now(st->ctx),
	                 .veto = veto,
	                 .veto_arg = veto_arg};
	const char *domain;
	char *norm = NULL, *wild = NULL;
	enum sg_status rc;

	if ((rc = store_email_norm(addr, &norm, &domain)) != SG_OK)
		return store_fail(st, rc, "not an email address");
	if (store_wildcard_of(domain, &wild) != SG_OK) {
		rc = store_fail(st, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (w.harvested = 0; w.harvested <= !sign; w.harvested++) {
		w.email = 1;
		w.value = norm;
		w.wildcard = NULL;
		if ((rc = find(st, &w, certs, key)) != SG_ERR_NOT_FOUND)
			goto out;
		w.email = 0;
		w.value = domain;
		w.wildcard = wild;
		if ((rc = find(st, &w, certs, key)) != SG_ERR_NOT_FOUND)
			goto out;
	}
out:
	free(norm);
	free(wild);
	return rc;
}

enum sg_status
store_find_encrypt_cert(struct store *st, const char *addr,
                        struct sg_certs **out)
{
	return store_find_encrypt_cert_vetted(st, addr, NULL, NULL, out);
}

enum sg_status
store_find_encrypt_cert_vetted(struct store *st, const char *addr,
                               store_veto_fn veto, void *arg,
                               struct sg_certs **out)
{
	enum sg_status rc;

	store_reset(st);
	rc = find_addr(st, addr, 0, veto, arg, out, NULL);
	if (rc == SG_ERR_NOT_FOUND)
		return store_fail(
		    st, rc, "no valid encryption certificate for %s", addr);
	return rc;
}

/* Our key NAME, which must be valid now and fit for signing. */
static enum sg_status
sign_key_by_name(struct store *st, const char *name, struct sg_key **out)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	struct sg_certs *certs = NULL;
	struct sg_cert_info info = {0};
	time_t now = sg_ctx_now(st->ctx);
	enum sg_status rc;

	if ((rc = store_row_select(st, STORE_ORG, name, &s, &r)) != SG_OK ||
	    (rc = store_row_certs(st, &r, &certs)) != SG_OK)
		goto out;
	if ((rc = sg_certs_info(certs, 0, &info)) != SG_OK) {
		rc = store_fail(st, rc, "cannot read %s", name);
		goto out;
	}
	if (now < info.not_before || now > info.not_after)
		rc = store_fail(st, SG_ERR_EXPIRED,
		                "the certificate of %s is not valid now", name);
	else if (!info.can_sign)
		rc = store_fail(st, SG_ERR_KEY_USAGE,
		                "the certificate of %s is not for signing: %s",
		                name, info.unfit_sign ? info.unfit_sign : "?");
	else
		rc = store_row_key(st, &r, certs, out);
out:
	sg_cert_info_clear(&info);
	sg_certs_free(certs);
	store_row_clear(&r);
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_find_sign_key(struct store *st, const char *sender, const char *name,
                    struct sg_key **out)
{
	struct sg_certs *certs = NULL;
	enum sg_status rc;

	store_reset(st);
	if (name != NULL)
		return sign_key_by_name(st, name, out);
	if (sender == NULL)
		return store_fail(st, SG_ERR_USAGE, "no sender and no name");
	rc = find_addr(st, sender, 1, NULL, NULL, &certs, out);
	sg_certs_free(certs);
	if (rc == SG_ERR_NOT_FOUND)
		return store_fail(st, rc, "no valid signing key for %s",
		                  sender);
	return rc;
}

static int
rid_cb(const struct sg_cert_info *in, const void *arg)
{
	const struct sg_recipient_id *rid = arg;

	if (rid->issuer != NULL && rid->serial != NULL && in->issuer &&
	    in->serial && strcmp(in->issuer, rid->issuer) == 0 &&
	    strcasecmp(in->serial, rid->serial) == 0)
		return 1;
	return rid->ski != NULL && in->ski != NULL &&
	       strcasecmp(in->ski, rid->ski) == 0;
}

static int
rid_text_ok(const char *s)
{
	return s != NULL && *s != '\0' && strlen(s) <= STORE_MAX_TEXT;
}

enum sg_status
store_find_decrypt_key(struct store *st, const struct sg_recipient_id *rid,
                       struct sg_key **out)
{
	sqlite3_stmt *s = NULL;
	struct sg_certs *certs = NULL;
	char *serial = NULL, *ski = NULL;
	enum sg_status rc;

	store_reset(st);
	if (rid == NULL)
		return store_fail(st, SG_ERR_USAGE, "no recipient");
	if (rid_text_ok(rid->issuer) && rid_text_ok(rid->serial) &&
	    (serial = strdup(rid->serial)) == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	if (rid_text_ok(rid->ski) && (ski = strdup(rid->ski)) == NULL) {
		free(serial);
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	}
	/* Stored serials are uppercase, key identifiers lowercase. */
	for (char *p = serial; p != NULL && *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	if (ski != NULL)
		store_ascii_lower(ski);
	if ((rc = store_prepare(st,
	                        "SELECT " STORE_ROW_COLS " FROM certs c "
	                        "WHERE c.role = 1 AND c.cert_der IS NOT NULL "
	                        "AND ((c.issuer = ?1 AND c.serial = ?2) OR "
	                        "c.ski = ?3) ORDER BY c.not_after DESC, "
	                        "c.id DESC LIMIT ?4",
	                        &s)) != SG_OK)
		goto out;
	if (serial != NULL) {
		sqlite3_bind_text(s, 1, rid->issuer, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, serial, -1, SQLITE_STATIC);
	}
	if (ski != NULL)
		sqlite3_bind_text(s, 3, ski, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, STORE_MAX_CANDIDATES);
	rc = scan(st, s, rid_cb, rid, NULL, NULL, &certs, out, NULL);
	if (rc == SG_ERR_NOT_FOUND)
		rc = store_fail(st, rc, "none of our keys is this recipient");
out:
	sg_certs_free(certs);
	sqlite3_finalize(s);
	free(serial);
	free(ski);
	return rc;
}

/* Appends the system's CA bundle when the setting asks for it. */
static enum sg_status
system_bundle(struct store *st, struct sg_certs *certs)
{
	enum sg_status rc;
	char *v = NULL;

	rc = store_get_setting(st, "trust_system_bundle", &v);
	if (rc == SG_ERR_NOT_FOUND)
		return SG_OK;
	if (rc != SG_OK)
		return rc;
	if (strcmp(v, "1") == 0 &&
	    (rc = sg_certs_load_file(st->ctx, certs, SG_SYSTEM_BUNDLE)) !=
	        SG_OK)
		rc = store_fail_lib(st, rc, "system trust anchors");
	free(v);
	return rc;
}

enum sg_status
store_trust_anchors(struct store *st, struct sg_certs **out)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	struct sg_certs *all = NULL, *c = NULL;
	enum sg_status rc;
	int row = 0;

	store_reset(st);
	if ((rc = sg_certs_new(&all)) != SG_OK)
		return store_fail(st, rc, "out of memory");
	if ((rc = store_prepare(st,
	                        "SELECT " STORE_ROW_COLS " FROM certs c "
	                        "WHERE c.role = 3 ORDER BY c.name",
	                        &s)) != SG_OK)
		goto fail;
	for (size_t k = 0; k < STORE_MAX_ROWS; k++) {
		if ((rc = store_step(st, s, &row)) != SG_OK)
			goto fail;
		if (!row)
			break;
		if ((rc = store_row_read(st, s, &r)) != SG_OK ||
		    (rc = store_row_certs(st, &r, &c)) != SG_OK)
			goto fail;
		if ((rc = sg_certs_push_from(all, c, 0)) != SG_OK) {
			rc = store_fail(st, rc, "out of memory");
			goto fail;
		}
		sg_certs_free(c);
		c = NULL;
		store_row_clear(&r);
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = system_bundle(st, all)) != SG_OK)
		goto fail;
	*out = all;
	return SG_OK;
fail:
	sg_certs_free(c);
	store_row_clear(&r);
	sqlite3_finalize(s);
	sg_certs_free(all);
	return rc;
}
