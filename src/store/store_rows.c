/*
 * store_rows.c - the rows of the key store: adding our keys, pending CSRs,
 * others' certificates and trust anchors; listing, reading and deleting
 * them.  A row's certificate facts are kept in columns (and its emails
 * and domains in cert_names) for lookups; listings parse the certificate
 * itself again.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_dl.h"

#include "smimegate.h"
#include "store/store_int.h"

static int
role_ok(enum store_role role)
{
	return role == STORE_ORG || role == STORE_PUBLIC || role == STORE_CA ||
	       role == STORE_HARVESTED;
}

/* ---- what a certificate contributes to its row ---- */

struct facts {
	struct sg_cert_info info;
	unsigned char *der, *chain;
	size_t der_len, chain_len;
};

static void
facts_clear(struct facts *f)
{
	sg_cert_info_clear(&f->info);
	free(f->der);
	free(f->chain);
	memset(f, 0, sizeof(*f));
}

static int
text_ok(const char *s, int nullable)
{
	return s == NULL ? nullable : strlen(s) <= STORE_MAX_TEXT;
}

/* Appends the DER of certificate J of CERTS to F's chain. */
static enum sg_status
chain_add(struct store *st, const struct sg_certs *certs, size_t j,
          struct facts *f)
{
	unsigned char *der = NULL, *p;
	size_t len = 0;
	enum sg_status rc;

	if ((rc = sg_certs_get_der(certs, j, &der, &len)) != SG_OK)
		return store_fail(st, rc, "cannot encode a chain certificate");
	if (len > STORE_MAX_CERT || len > STORE_MAX_CHAIN - f->chain_len) {
		free(der);
		return store_fail(st, SG_ERR_LIMIT, "chain too large");
	}
	if ((p = realloc(f->chain, f->chain_len + len)) == NULL) {
		free(der);
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	}
	memcpy(p + f->chain_len, der, len);
	f->chain = p;
	f->chain_len += len;
	free(der);
	return SG_OK;
}

/* The facts of certificate I of CERTS; with CHAIN, the others of CERTS
 * (in order) become its chain. */
static enum sg_status
facts_get(struct store *st, const struct sg_certs *certs, size_t i, int chain,
          struct facts *out)
{
	struct facts f = {0};
	size_t n = sg_certs_count(certs);
	enum sg_status rc;

	if (i >= n)
		return store_fail(st, SG_ERR_USAGE, "no certificate %zu", i);
	if (chain && n - 1 > STORE_MAX_CHAIN_N)
		return store_fail(st, SG_ERR_LIMIT, "chain too long");
	if ((rc = sg_certs_info(certs, i, &f.info)) != SG_OK)
		return store_fail(st, rc, "cannot read the certificate");
	if (f.info.fingerprint == NULL || !text_ok(f.info.subject, 0) ||
	    !text_ok(f.info.issuer, 0) || !text_ok(f.info.serial, 0) ||
	    !text_ok(f.info.ski, 1)) {
		rc = store_fail(st, SG_ERR_BADKEY, "unusable certificate");
		goto fail;
	}
	if ((rc = sg_certs_get_der(certs, i, &f.der, &f.der_len)) != SG_OK) {
		rc = store_fail(st, rc, "cannot encode the certificate");
		goto fail;
	}
	if (f.der_len > STORE_MAX_CERT) {
		rc = store_fail(st, SG_ERR_LIMIT, "certificate too large");
		goto fail;
	}
	for (size_t j = 0; chain && j < n; j++)
		if (j != i && (rc = chain_add(st, certs, j, &f)) != SG_OK)
			goto fail;
	*out = f;
	return SG_OK;
fail:
	facts_clear(&f);
	return rc;
}

/* The certificate columns are parameters 7 to 18 of both the INSERT and
 * the UPDATE below. */
#define FACT_COLS                                                              \
	"cert_der, chain_der, fingerprint, subject, issuer, serial, ski, "     \
	"not_before, not_after, can_sign, can_encrypt, self_signed"

static void
bind_facts(sqlite3_stmt *s, const struct facts *f)
{
	const struct sg_cert_info *in = &f->info;

	sqlite3_bind_blob(s, 7, f->der, (int)f->der_len, SQLITE_STATIC);
	if (f->chain_len > 0)
		sqlite3_bind_blob(s, 8, f->chain, (int)f->chain_len,
		                  SQLITE_STATIC);
	sqlite3_bind_text(s, 9, in->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 10, in->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 11, in->issuer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 12, in->serial, -1, SQLITE_STATIC);
	if (in->ski != NULL)
		sqlite3_bind_text(s, 13, in->ski, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 14, (sqlite3_int64)in->not_before);
	sqlite3_bind_int64(s, 15, (sqlite3_int64)in->not_after);
	sqlite3_bind_int(s, 16, in->can_sign != 0);
	sqlite3_bind_int(s, 17, in->can_encrypt != 0);
	sqlite3_bind_int(s, 18, in->self_signed != 0);
}

static enum sg_status
insert_name(struct store *st, sqlite3_stmt *s, int64_t id, const char *kind,
            const char *value)
{
	enum sg_status rc;
	int row;

	/* All three each time: clear_bindings below clears the id too. */
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
	rc = store_step(st, s, &row);
	sqlite3_clear_bindings(s);
	return rc;
}

/* Indexes the emails and domains of INFO for row ID.  Names that are not
 * addresses or domains are left out: lookups could never match them. */
static enum sg_status
insert_names(struct store *st, int64_t id, const struct sg_cert_info *info)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	size_t count = 0;
	char *v;

	if ((rc = store_prepare(st,
	                        "INSERT OR IGNORE INTO cert_names "
	                        "(cert_id, kind, value) VALUES (?1, ?2, ?3)",
	                        &s)) != SG_OK)
		return rc;
	for (char **e = info->emails; e != NULL && *e != NULL; e++) {
		if (++count > STORE_MAX_NAMES) {
			rc = store_fail(st, SG_ERR_LIMIT, "too many names");
			goto out;
		}
		rc = store_email_norm(*e, &v, NULL);
		if (rc == SG_ERR_USAGE)
			continue;
		if (rc != SG_OK) {
			rc = store_fail(st, rc, "out of memory");
			goto out;
		}
		sqlite3_bind_int64(s, 1, id);
		rc = insert_name(st, s, id, "email", v);
		free(v);
		if (rc != SG_OK)
			goto out;
	}
	for (char **d = info->domains; d != NULL && *d != NULL; d++) {
		if (++count > STORE_MAX_NAMES) {
			rc = store_fail(st, SG_ERR_LIMIT, "too many names");
			goto out;
		}
		if (**d == '\0' || strlen(*d) > STORE_MAX_ADDR)
			continue;
		if ((v = strdup(*d)) == NULL) {
			rc = store_fail(st, SG_ERR_NOMEM, "out of memory");
			goto out;
		}
		store_ascii_lower(v);
		sqlite3_bind_int64(s, 1, id);
		rc = insert_name(st, s, id, "domain", v);
		free(v);
		if (rc != SG_OK)
			goto out;
	}
	rc = SG_OK;
out:
	sqlite3_finalize(s);
	return rc;
}

/* ---- names of rows ---- */

/* Whether ROLE has a row NAME (*TAKEN 1 or 0). */
enum sg_status
store_name_taken(struct store *st, enum store_role role, const char *name,
                 int *taken)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;

	if ((rc = store_prepare(st,
	                        "SELECT 1 FROM certs WHERE role = ?1 AND "
	                        "name = ?2",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int(s, 1, (int)role);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = store_step(st, s, taken);
	sqlite3_finalize(s);
	return rc;
}

/* The value of the CN attribute of an RFC 2253 one-line name, unescaped,
 * or NULL. */
static char *
subject_cn(const char *dn)
{
	const char *p = dn;
	char *out, *o;

	if (dn == NULL || (out = malloc(strlen(dn) + 1)) == NULL)
		return NULL;
	while (*p != '\0') {
		int cn = (p[0] == 'C' || p[0] == 'c') &&
		         (p[1] == 'N' || p[1] == 'n') && p[2] == '=';
		if (cn)
			p += 3;
		o = out;
		while (*p != '\0' && *p != ',' && *p != '+') {
			char c = *p++;
			if (c == '\\' && *p != '\0') {
				unsigned hi, lo;
				if (sscanf(p, "%1x%1x", &hi, &lo) == 2) {
					c = (char)(hi << 4 | lo);
					p += 2;
				} else {
					c = *p++;
				}
			}
			*o++ = c;
		}
		*o = '\0';
		if (cn && o != out && out[0] != '#')
			return out;
		if (*p != '\0')
			p++;
	}
	free(out);
	return NULL;
}

/* A usable name made of S: control characters replaced, spaces trimmed,
 * cut (on a UTF-8 boundary) to leave room for a suffix. */
static void
sanitize(char *s)
{
	size_t n, start = 0;

	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	while (s[start] == ' ')
		start++;
	memmove(s, s + start, strlen(s + start) + 1);
	n = strlen(s);
	if (n > STORE_MAX_NAME - 16) {
		n = STORE_MAX_NAME - 16;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		s[n] = '\0';
	}
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

/* A free name in ROLE made of BASE: BASE itself, else BASE-2, BASE-3,
 * ..., else BASE-<FP's first 16 characters>.  Inside the caller's
 * transaction. */
static enum sg_status
free_name(struct store *st, enum store_role role, const char *base,
          const char *fp, char **out)
{
	size_t cap = strlen(base) + 24;
	enum sg_status rc;
	char *name;
	int taken = 0;

	if ((name = malloc(cap)) == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	for (int k = 1; k <= 100; k++) {
		if (k == 1)
			snprintf(name, cap, "%s", base);
		else if (k < 100)
			snprintf(name, cap, "%s-%d", base, k);
		else
			snprintf(name, cap, "%s-%.16s", base, fp);
		if ((rc = store_name_taken(st, role, name, &taken)) != SG_OK)
			goto fail;
		if (!taken && store_name_ok(name)) {
			*out = name;
			return SG_OK;
		}
	}
	rc = store_fail(st, SG_ERR_EXISTS, "no free name for %s", base);
fail:
	free(name);
	return rc;
}

/* A free name in ROLE for a certificate: its first email, else its first
 * domain, else its subject's CN, else its fingerprint; made unique by
 * free_name().  Inside the caller's transaction. */
static enum sg_status
derive_name(struct store *st, enum store_role role,
            const struct sg_cert_info *info, char **out)
{
	enum sg_status rc;
	char *base = NULL;

	if (info->emails != NULL && info->emails[0] != NULL)
		base = strdup(info->emails[0]);
	else if (info->domains != NULL && info->domains[0] != NULL)
		base = strdup(info->domains[0]);
	else
		base = subject_cn(info->subject);
	if (base != NULL)
		sanitize(base);
	if (base == NULL || *base == '\0') {
		free(base);
		if ((base = malloc(6 + 16 + 1)) != NULL)
			snprintf(base, 6 + 16 + 1, "cert-%.16s",
			         info->fingerprint);
	}
	if (base == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	rc = free_name(st, role, base, info->fingerprint, out);
	free(base);
	return rc;
}

/* ---- adding rows ---- */

struct new_row {
	enum store_role role;
	const char *name;         /* NULL: derived from the certificate */
	const struct facts *f;    /* NULL: a pending CSR */
	const unsigned char *key; /* wrapped, or NULL */
	size_t key_len;
	const char *csr_pem;
	const char *source;
};

/* Refuses a second copy of the certificate of F in ROLE. */
static enum sg_status
check_duplicate(struct store *st, enum store_role role, const struct facts *f)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	char *other = NULL;
	int row = 0;

	if ((rc = store_prepare(st,
	                        "SELECT name FROM certs WHERE role = ?1 AND "
	                        "fingerprint = ?2",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int(s, 1, (int)role);
	sqlite3_bind_text(s, 2, f->info.fingerprint, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) == SG_OK && row &&
	    (rc = store_col_text(st, s, 0, STORE_MAX_NAME, &other)) == SG_OK)
		rc = store_fail(st, SG_ERR_EXISTS,
		                "this certificate is already stored as %s %s",
		                store_role_noun(role), other ? other : "?");
	free(other);
	sqlite3_finalize(s);
	return rc;
}

/* Adds the row NR inside the caller's transaction. */
static enum sg_status
insert_row_tx(struct store *st, const struct new_row *nr)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	char *derived = NULL;
	const char *name = nr->name;
	int taken = 0, row;

	if (name == NULL) {
		if ((rc = derive_name(st, nr->role, &nr->f->info, &derived)) !=
		    SG_OK)
			goto fail;
		name = derived;
	} else if ((rc = store_name_taken(st, nr->role, name, &taken)) !=
	           SG_OK) {
		goto fail;
	} else if (taken) {
		rc = store_fail(st, SG_ERR_EXISTS, "a %s named %s exists",
		                store_role_noun(nr->role), name);
		goto fail;
	}
	if (nr->f != NULL &&
	    (rc = check_duplicate(st, nr->role, nr->f)) != SG_OK)
		goto fail;
	if ((rc = store_prepare(st,
	                        "INSERT INTO certs (role, name, key_blob, "
	                        "csr_pem, source, created, " FACT_COLS ") "
	                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
	                        "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	                        &s)) != SG_OK)
		goto fail;
	sqlite3_bind_int(s, 1, (int)nr->role);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if (nr->key != NULL)
		sqlite3_bind_blob(s, 3, nr->key, (int)nr->key_len,
		                  SQLITE_STATIC);
	if (nr->csr_pem != NULL)
		sqlite3_bind_text(s, 4, nr->csr_pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, nr->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)sg_ctx_now(st->ctx));
	if (nr->f != NULL) {
		bind_facts(s, nr->f);
	} else {
		sqlite3_bind_int(s, 16, 0);
		sqlite3_bind_int(s, 17, 0);
		sqlite3_bind_int(s, 18, 0);
	}
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto fail;
	if (nr->f != NULL &&
	    (rc = insert_names(st, sqlite3_last_insert_rowid(st->db),
	                       &nr->f->info)) != SG_OK)
		goto fail;
	rc = SG_OK;
fail:
	sqlite3_finalize(s);
	free(derived);
	return rc;
}

static enum sg_status
insert_row(struct store *st, const struct new_row *nr)
{
	enum sg_status rc;

	if ((rc = store_begin(st)) != SG_OK)
		return rc;
	if ((rc = insert_row_tx(st, nr)) != SG_OK) {
		store_rollback(st);
		return rc;
	}
	return store_commit(st);
}

static enum sg_status
check_args(struct store *st, const char *name, const char *source)
{
	if (name != NULL && !store_name_ok(name))
		return store_fail(st, SG_ERR_USAGE,
		                  "bad name (1 to %d bytes, no control "
		                  "characters, no leading or trailing space)",
		                  STORE_MAX_NAME);
	if (source == NULL || *source == '\0' ||
	    strlen(source) > STORE_MAX_SOURCE)
		return store_fail(st, SG_ERR_USAGE, "bad source");
	return SG_OK;
}

static enum sg_status
wrap(struct store *st, const struct sg_key *key, const char *name,
     unsigned char **blob, size_t *len)
{
	enum sg_status rc;

	rc = sg_key_wrap(st->ctx, key, st->master, name, blob, len);
	if (rc != SG_OK)
		return store_fail_lib(st, rc, "cannot wrap the private key");
	if (*len == 0 || *len > STORE_MAX_KEY_BLOB) {
		free(*blob);
		*blob = NULL;
		return store_fail(st, SG_ERR_LIMIT, "private key too large");
	}
	return SG_OK;
}

enum sg_status
store_put_key(struct store *st, const char *name, const struct sg_key *key,
              const char *source)
{
	struct sg_certs *certs = NULL;
	struct facts f = {0};
	unsigned char *blob = NULL;
	size_t blen = 0;
	enum sg_status rc;

	store_reset(st);
	if (name == NULL || key == NULL)
		return store_fail(st, SG_ERR_USAGE, "a key needs a name");
	if ((rc = check_args(st, name, source)) != SG_OK)
		return rc;
	if (!sg_key_has_cert(key))
		return store_fail(st, SG_ERR_USAGE,
		                  "the key has no certificate (a CSR?)");
	if ((rc = sg_key_get_certs(key, &certs)) != SG_OK) {
		rc = store_fail(st, rc, "cannot read the key's certificates");
		goto out;
	}
	if ((rc = facts_get(st, certs, 0, 1, &f)) == SG_OK &&
	    (rc = wrap(st, key, name, &blob, &blen)) == SG_OK) {
		struct new_row nr = {.role = STORE_ORG,
		                     .name = name,
		                     .f = &f,
		                     .key = blob,
		                     .key_len = blen,
		                     .source = source};
		rc = insert_row(st, &nr);
	}
out:
	free(blob);
	facts_clear(&f);
	sg_certs_free(certs);
	return rc;
}

enum sg_status
store_put_csr(struct store *st, const char *name, const struct sg_key *key,
              const char *csr_pem)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	enum sg_status rc;

	store_reset(st);
	if (name == NULL || key == NULL || csr_pem == NULL)
		return store_fail(st, SG_ERR_USAGE,
		                  "a CSR needs a name, a key and its PEM");
	if ((rc = check_args(st, name, "csr")) != SG_OK)
		return rc;
	if (*csr_pem == '\0' || strlen(csr_pem) > STORE_MAX_CSR)
		return store_fail(st, SG_ERR_LIMIT, "bad CSR size");
	if ((rc = wrap(st, key, name, &blob, &blen)) != SG_OK)
		return rc;
	struct new_row nr = {.role = STORE_ORG,
	                     .name = name,
	                     .key = blob,
	                     .key_len = blen,
	                     .csr_pem = csr_pem,
	                     .source = "csr"};
	rc = insert_row(st, &nr);
	free(blob);
	return rc;
}

enum sg_status
store_put_cert(struct store *st, enum store_role role, const char *name,
               const struct sg_certs *certs, size_t i, const char *source)
{
	struct facts f = {0};
	enum sg_status rc;

	store_reset(st);
	if (role != STORE_PUBLIC && role != STORE_CA)
		return store_fail(st, SG_ERR_USAGE,
		                  "only public keys and trust anchors are "
		                  "added without a private key");
	if (certs == NULL)
		return store_fail(st, SG_ERR_USAGE, "no certificate");
	if ((rc = check_args(st, name, source)) != SG_OK ||
	    (rc = facts_get(st, certs, i, 0, &f)) != SG_OK)
		return rc;
	struct new_row nr = {
	    .role = role, .name = name, .f = &f, .source = source};
	rc = insert_row(st, &nr);
	facts_clear(&f);
	return rc;
}

/* Finds our row whose key matches certificate I of CERTS: among pending
 * CSRs (PENDING), else among rows with a certificate (a renewal with the
 * same key).  *ID, *NAME (malloc'd), and *KEY (unwrapped) when KEY is not
 * NULL.  Inside the caller's transaction. */
static enum sg_status
find_key_row(struct store *st, const struct sg_certs *certs, size_t i,
             int pending, int64_t *id, char **name, struct sg_key **key)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	struct sg_key *k = NULL;
	enum sg_status rc;
	int row = 0;

	if ((rc = store_prepare(st,
	                        pending ? "SELECT " STORE_ROW_COLS
	                                  " FROM certs c WHERE c.role = 1 AND "
	                                  "c.cert_der IS NULL ORDER BY c.id"
	                                : "SELECT " STORE_ROW_COLS
	                                  " FROM certs c WHERE c.role = 1 AND "
	                                  "c.cert_der IS NOT NULL ORDER BY "
	                                  "c.not_after DESC, c.id DESC",
	                        &s)) != SG_OK)
		return rc;
	for (size_t n = 0; n < STORE_MAX_ROWS; n++) {
		if ((rc = store_step(st, s, &row)) != SG_OK || !row)
			break;
		if ((rc = store_row_read(st, s, &r)) != SG_OK ||
		    (rc = store_row_key(st, &r, NULL, &k)) != SG_OK)
			break;
		if (sg_key_matches(k, certs, i)) {
			*id = r.id;
			*name = r.name;
			r.name = NULL;
			if (key != NULL)
				*key = k;
			else
				sg_key_free(k);
			store_row_clear(&r);
			sqlite3_finalize(s);
			return SG_OK;
		}
		sg_key_free(k);
		k = NULL;
		store_row_clear(&r);
	}
	store_row_clear(&r);
	sqlite3_finalize(s);
	return rc == SG_OK ? SG_ERR_NOT_FOUND : rc;
}

/* The certificate of F completes the pending CSR of row ID. */
static enum sg_status
complete_csr(struct store *st, int64_t id, const struct facts *f)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row;

	if ((rc = check_duplicate(st, STORE_ORG, f)) != SG_OK ||
	    (rc = store_prepare(st,
	                        "UPDATE certs SET (" FACT_COLS ", csr_pem) = "
	                        "(?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
	                        "?16, ?17, ?18, NULL) WHERE id = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	bind_facts(s, f);
	if ((rc = store_step(st, s, &row)) == SG_OK)
		rc = insert_names(st, id, &f->info);
	sqlite3_finalize(s);
	return rc;
}

/* A renewed certificate F for KEY, the key of row OLD: a new row
 * OLD-2 (or the next free name), so that the old certificate still
 * opens what was encrypted to it.  *NAME gets the new name. */
static enum sg_status
add_renewal(struct store *st, const char *old, const struct sg_key *key,
            const struct facts *f, char **name)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	enum sg_status rc;
	char *nn = NULL;

	if ((rc = check_duplicate(st, STORE_ORG, f)) == SG_OK &&
	    (rc = free_name(st, STORE_ORG, old, f->info.fingerprint, &nn)) ==
	        SG_OK &&
	    (rc = wrap(st, key, nn, &blob, &blen)) == SG_OK) {
		struct new_row nr = {.role = STORE_ORG,
		                     .name = nn,
		                     .f = f,
		                     .key = blob,
		                     .key_len = blen,
		                     .source = "renewed"};
		if ((rc = insert_row_tx(st, &nr)) == SG_OK) {
			*name = nn;
			nn = NULL;
		}
	}
	free(blob);
	free(nn);
	return rc;
}

enum sg_status
store_attach_cert(struct store *st, const struct sg_certs *certs, size_t i,
                  char **name)
{
	struct facts f = {0};
	struct sg_key *key = NULL;
	char *found = NULL, *renewed = NULL;
	int64_t id = 0;
	enum sg_status rc;

	store_reset(st);
	if (certs == NULL || name == NULL)
		return store_fail(st, SG_ERR_USAGE, "no certificate");
	if ((rc = facts_get(st, certs, i, 1, &f)) != SG_OK)
		return rc;
	if ((rc = store_begin(st)) != SG_OK)
		goto out;
	rc = find_key_row(st, certs, i, 1, &id, &found, NULL);
	if (rc == SG_OK) {
		rc = complete_csr(st, id, &f);
	} else if (rc == SG_ERR_NOT_FOUND) {
		rc = find_key_row(st, certs, i, 0, &id, &found, &key);
		if (rc == SG_OK)
			rc = add_renewal(st, found, key, &f, &renewed);
		else if (rc == SG_ERR_NOT_FOUND)
			rc = store_fail(st, rc,
			                "no pending CSR and none of our keys "
			                "is for this certificate");
	}
	if (rc != SG_OK) {
		store_rollback(st);
		goto out;
	}
	if ((rc = store_commit(st)) != SG_OK)
		goto out;
	if (renewed != NULL) {
		*name = renewed;
		renewed = NULL;
	} else {
		*name = found;
		found = NULL;
	}
out:
	sg_key_free(key);
	free(found);
	free(renewed);
	facts_clear(&f);
	return rc;
}

/* ---- reading rows ---- */

void
store_entry_clear(struct store_entry *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->source);
	sg_cert_info_clear(&e->info);
	memset(e, 0, sizeof(*e));
}

void
store_entries_free(struct store_entry *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_entry_clear(&v[i]);
	free(v);
}

/* The entry of row R (its name and source move into E). */
static enum sg_status
entry_from_row(struct store *st, struct store_row *r, struct store_entry *e)
{
	struct sg_certs *certs = NULL;
	struct store_entry en = {0};
	enum sg_status rc;

	if (r->der != NULL) {
		if ((rc = store_row_certs(st, r, &certs)) != SG_OK)
			return rc;
		rc = sg_certs_info(certs, 0, &en.info);
		sg_certs_free(certs);
		if (rc != SG_OK)
			return store_fail(st, rc, "cannot read %s", r->name);
		en.has_cert = 1;
	}
	en.name = r->name;
	en.source = r->source;
	en.role = r->role;
	en.created = r->created;
	r->name = r->source = NULL;
	*e = en;
	return SG_OK;
}

enum sg_status
store_list(struct store *st, enum store_role role, struct store_entry **v,
           size_t *n)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	struct store_entry *list = NULL, *p;
	size_t len = 0, cap = 0;
	enum sg_status rc;
	int row = 0;

	store_reset(st);
	if (!role_ok(role))
		return store_fail(st, SG_ERR_USAGE, "bad role");
	if ((rc = store_prepare(st,
	                        "SELECT " STORE_ROW_COLS " FROM certs c "
	                        "WHERE c.role = ?1 ORDER BY c.name",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int(s, 1, (int)role);
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
		if ((rc = store_row_read(st, s, &r)) != SG_OK ||
		    (rc = entry_from_row(st, &r, &list[len])) != SG_OK)
			goto fail;
		store_row_clear(&r);
		len++;
	}
	if (rc != SG_OK)
		goto fail;
	sqlite3_finalize(s);
	*v = list;
	*n = len;
	return SG_OK;
fail:
	store_row_clear(&r);
	sqlite3_finalize(s);
	store_entries_free(list, len);
	return rc;
}

enum sg_status
store_get(struct store *st, enum store_role role, const char *name,
          struct store_entry *e)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	enum sg_status rc;

	store_reset(st);
	if ((rc = store_row_select(st, role, name, &s, &r)) == SG_OK)
		rc = entry_from_row(st, &r, e);
	store_row_clear(&r);
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_get_certs(struct store *st, enum store_role role, const char *name,
                struct sg_certs **out)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	enum sg_status rc;

	store_reset(st);
	if ((rc = store_row_select(st, role, name, &s, &r)) == SG_OK)
		rc = store_row_certs(st, &r, out);
	store_row_clear(&r);
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_get_key(struct store *st, const char *name, struct sg_key **out)
{
	sqlite3_stmt *s = NULL;
	struct store_row r = {0};
	struct sg_certs *certs = NULL;
	enum sg_status rc;

	store_reset(st);
	if ((rc = store_row_select(st, STORE_ORG, name, &s, &r)) != SG_OK)
		goto out;
	if (r.der != NULL && (rc = store_row_certs(st, &r, &certs)) != SG_OK)
		goto out;
	rc = store_row_key(st, &r, certs, out);
out:
	sg_certs_free(certs);
	store_row_clear(&r);
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_get_csr(struct store *st, const char *name, char **pem)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	char *v = NULL;
	int row = 0;

	store_reset(st);
	if (!store_name_ok(name))
		return store_fail(st, SG_ERR_NOT_FOUND, "no such key");
	if ((rc = store_prepare(st,
	                        "SELECT csr_pem FROM certs WHERE role = 1 AND "
	                        "name = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto out;
	if (!row) {
		rc = store_fail(st, SG_ERR_NOT_FOUND, "no key named %s", name);
		goto out;
	}
	if ((rc = store_col_text(st, s, 0, STORE_MAX_CSR, &v)) != SG_OK)
		goto out;
	if (v == NULL) {
		rc = store_fail(st, SG_ERR_NOT_FOUND, "%s has no pending CSR",
		                name);
		goto out;
	}
	*pem = v;
out:
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_delete(struct store *st, enum store_role role, const char *name)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row;

	store_reset(st);
	if (!role_ok(role))
		return store_fail(st, SG_ERR_USAGE, "bad role");
	if (!store_name_ok(name))
		return store_fail(st, SG_ERR_NOT_FOUND, "no such %s",
		                  store_role_noun(role));
	if ((rc = store_prepare(st,
	                        "DELETE FROM certs WHERE role = ?1 AND "
	                        "name = ?2",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_int(s, 1, (int)role);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) == SG_OK &&
	    sqlite3_changes(st->db) == 0)
		rc = store_fail(st, SG_ERR_NOT_FOUND, "no %s named %s",
		                store_role_noun(role), name);
	sqlite3_finalize(s);
	return rc;
}
