/*
 * store.c - the key store's life cycle: creating and opening the database
 * and its master key file, the schema and its migrations, error recording,
 * the SQL helpers the other store files use, the reading of one `certs`
 * row, and settings.
 *
 * What it trusts: nothing read from the files; their modes are checked
 * (0600 / 0400, nothing for group or others) before use.  What it can
 * reach: the database (and SQLite's -wal and -shm beside it, which SQLite
 * creates with the database's own mode) and the master key file.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite_dl.h"

#include "smimegate.h"
#include "store/store_int.h"

/* ---- schema ---- */

/* Migration step N takes the schema from version N to N + 1; each runs in
 * the one transaction that also sets PRAGMA user_version.  Append only. */
static const char *const migrations[] = {
    /* 1: certificates, keys, CSRs, their names, settings */
    "CREATE TABLE certs ("
    " id INTEGER PRIMARY KEY,"
    " role INTEGER NOT NULL CHECK (role IN (1, 2, 3)),"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),"
    " cert_der BLOB,"  /* NULL while a CSR is pending */
    " chain_der BLOB," /* concatenated DER certificates */
    " key_blob BLOB,"  /* sg_key_wrap(), ORG rows only */
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
    " value TEXT NOT NULL);",
    /* 2: harvested certificates (role 4): the role's CHECK changes, so
     * `certs` is rebuilt (ids kept), and `cert_names` with it so that its
     * foreign key never points at a dropped table; the events of updated
     * certificates. */
    "CREATE TABLE certs_v2 ("
    " id INTEGER PRIMARY KEY,"
    " role INTEGER NOT NULL CHECK (role IN (1, 2, 3, 4)),"
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
    " harvested_at INTEGER," /* the harvest's facts: role 4 only */
    " last_used INTEGER,"
    " harvest_source TEXT CHECK (length(harvest_source) <= 512),"
    " size INTEGER," /* bytes of cert_der */
    " UNIQUE (role, name),"
    " CHECK ((role = 1) = (key_blob IS NOT NULL)),"
    " CHECK (cert_der IS NOT NULL OR csr_pem IS NOT NULL),"
    " CHECK ((role = 4) = (harvested_at IS NOT NULL)),"
    " CHECK ((role = 4) = (last_used IS NOT NULL)),"
    " CHECK ((role = 4) = (harvest_source IS NOT NULL)),"
    " CHECK ((role = 4) = (size IS NOT NULL)),"
    " CHECK (role <> 4 OR (cert_der IS NOT NULL AND size > 0)));"
    "INSERT INTO certs_v2 (id, role, name, cert_der, chain_der, key_blob,"
    " csr_pem, fingerprint, subject, issuer, serial, ski, not_before,"
    " not_after, can_sign, can_encrypt, self_signed, source, created)"
    " SELECT id, role, name, cert_der, chain_der, key_blob, csr_pem,"
    " fingerprint, subject, issuer, serial, ski, not_before, not_after,"
    " can_sign, can_encrypt, self_signed, source, created FROM certs;"
    "CREATE TABLE cert_names_v2 ("
    " cert_id INTEGER NOT NULL REFERENCES certs_v2 (id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL CHECK (kind IN ('email', 'domain')),"
    " value TEXT NOT NULL,"
    " UNIQUE (cert_id, kind, value));"
    "INSERT INTO cert_names_v2 (cert_id, kind, value)"
    " SELECT cert_id, kind, value FROM cert_names;"
    "DROP TABLE cert_names;"
    "DROP TABLE certs;"
    /* Renaming the parent rewrites cert_names_v2's foreign key. */
    "ALTER TABLE certs_v2 RENAME TO certs;"
    "ALTER TABLE cert_names_v2 RENAME TO cert_names;"
    "CREATE UNIQUE INDEX certs_fingerprint ON certs (role, fingerprint)"
    " WHERE fingerprint IS NOT NULL;"
    "CREATE INDEX certs_issuer_serial ON certs (issuer, serial);"
    "CREATE INDEX certs_ski ON certs (ski);"
    "CREATE INDEX cert_names_value ON cert_names (kind, value);"
    "CREATE INDEX certs_harvested_lru ON certs"
    " (last_used, harvested_at, id, size) WHERE role = 4;"
    "CREATE TABLE harvest_updates ("
    " id INTEGER PRIMARY KEY,"
    " addr TEXT NOT NULL CHECK (length(addr) BETWEEN 1 AND 320),"
    " domain TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 320),"
    " at INTEGER NOT NULL);"
    "CREATE INDEX harvest_updates_addr ON harvest_updates (addr, at);"
    "CREATE INDEX harvest_updates_domain ON harvest_updates (domain, at);",
};

int
store_schema_version(void)
{
	return (int)(sizeof(migrations) / sizeof(*migrations));
}

/* ---- errors ---- */

enum sg_status
store_fail(struct store *st, enum sg_status s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return s;
}

enum sg_status
store_sql_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return SG_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_PROTOCOL:
	case SQLITE_CANTOPEN:
	case SQLITE_SCHEMA:
	case SQLITE_INTERRUPT:
		return SG_ERR_TEMP;
	case SQLITE_NOMEM:
		return SG_ERR_NOMEM;
	case SQLITE_TOOBIG:
		return SG_ERR_LIMIT;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return SG_ERR_EXISTS;
		return SG_ERR_INTERNAL;
	case SQLITE_ERROR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_FORMAT:
		return SG_ERR_IO;
	default:
		return SG_ERR_INTERNAL;
	}
}

enum sg_status
store_fail_sql(struct store *st, int rc, const char *what)
{
	const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);

	return store_fail(st, store_sql_status(rc), "%s: %s", what, msg);
}

enum sg_status
store_fail_lib(struct store *st, enum sg_status s, const char *what)
{
	return store_fail(st, s, "%s: %s", what, sg_ctx_error(st->ctx));
}

void
store_reset(struct store *st)
{
	st->err[0] = '\0';
}

const char *
store_errmsg(const struct store *st)
{
	return st != NULL ? st->err : "";
}

/* ---- SQL helpers ---- */

enum sg_status
store_prepare(struct store *st, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);

	if (rc != SQLITE_OK) {
		*out = NULL;
		return store_fail_sql(st, rc, "preparing a query");
	}
	return SG_OK;
}

enum sg_status
store_step(struct store *st, sqlite3_stmt *s, int *row)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		*row = rc == SQLITE_ROW;
		return SG_OK;
	}
	return store_fail_sql(st, rc, "database");
}

static enum sg_status
exec(struct store *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? SG_OK : store_fail_sql(st, rc, what);
}

enum sg_status
store_begin(struct store *st)
{
	return exec(st, "BEGIN IMMEDIATE", "starting a transaction");
}

enum sg_status
store_commit(struct store *st)
{
	enum sg_status s = exec(st, "COMMIT", "committing");

	if (s != SG_OK)
		store_rollback(st);
	return s;
}

void
store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static enum sg_status
corrupt(struct store *st, sqlite3_stmt *s, int col, const char *why)
{
	const char *name = sqlite3_column_name(s, col);

	return store_fail(st, SG_ERR_IO, "corrupt store: column %s %s",
	                  name ? name : "?", why);
}

enum sg_status
store_col_text(struct store *st, sqlite3_stmt *s, int col, size_t max,
               char **out)
{
	const unsigned char *p;
	size_t n;
	char *copy;

	switch (sqlite3_column_type(s, col)) {
	case SQLITE_NULL:
		*out = NULL;
		return SG_OK;
	case SQLITE_TEXT:
		break;
	default:
		return corrupt(st, s, col, "is not text");
	}
	p = sqlite3_column_text(s, col);
	n = (size_t)sqlite3_column_bytes(s, col);
	if (p == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	if (n > max)
		return corrupt(st, s, col, "is too long");
	if (memchr(p, '\0', n) != NULL)
		return corrupt(st, s, col, "holds a NUL byte");
	if ((copy = malloc(n + 1)) == NULL)
		return store_fail(st, SG_ERR_NOMEM, "out of memory");
	memcpy(copy, p, n);
	copy[n] = '\0';
	*out = copy;
	return SG_OK;
}

enum sg_status
store_col_blob(struct store *st, sqlite3_stmt *s, int col, size_t max,
               const unsigned char **p, size_t *n)
{
	const void *v;
	size_t len;

	switch (sqlite3_column_type(s, col)) {
	case SQLITE_NULL:
		*p = NULL;
		*n = 0;
		return SG_OK;
	case SQLITE_BLOB:
		break;
	default:
		return corrupt(st, s, col, "is not a blob");
	}
	v = sqlite3_column_blob(s, col);
	len = (size_t)sqlite3_column_bytes(s, col);
	if (v == NULL || len == 0)
		return corrupt(st, s, col, "is empty");
	if (len > max)
		return corrupt(st, s, col, "is too long");
	*p = v;
	*n = len;
	return SG_OK;
}

int
store_name_ok(const char *name)
{
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 || n > STORE_MAX_NAME)
		return 0;
	if (name[0] == ' ' || name[n - 1] == ' ')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

void
store_ascii_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

enum sg_status
store_email_norm(const char *addr, char **out, const char **domain)
{
	const char *at;
	size_t n;
	char *copy;

	if (addr == NULL || (n = strlen(addr)) == 0 || n > STORE_MAX_ADDR)
		return SG_ERR_USAGE;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c <= 0x20 || c == 0x7f)
			return SG_ERR_USAGE;
	}
	if ((at = strrchr(addr, '@')) == NULL || at == addr || at[1] == '\0')
		return SG_ERR_USAGE;
	if ((copy = strdup(addr)) == NULL)
		return SG_ERR_NOMEM;
	store_ascii_lower(copy + (at - addr) + 1);
	if (domain != NULL)
		*domain = copy + (at - addr) + 1;
	*out = copy;
	return SG_OK;
}

/* ---- one row ---- */

const char *
store_role_noun(enum store_role role)
{
	switch (role) {
	case STORE_ORG:
		return "key";
	case STORE_PUBLIC:
		return "certificate";
	case STORE_CA:
		return "trust anchor";
	case STORE_HARVESTED:
		return "harvested certificate";
	}
	return "row";
}

/* Selects the row ROLE / NAME into *S (the caller finalizes it) and R. */
enum sg_status
store_row_select(struct store *st, enum store_role role, const char *name,
                 sqlite3_stmt **s, struct store_row *r)
{
	enum sg_status rc;
	int row = 0;

	*s = NULL;
	if (role < STORE_ORG || role > STORE_HARVESTED)
		return store_fail(st, SG_ERR_USAGE, "bad role");
	if (!store_name_ok(name))
		return store_fail(st, SG_ERR_NOT_FOUND, "no such %s",
		                  store_role_noun(role));
	if ((rc = store_prepare(st,
	                        "SELECT " STORE_ROW_COLS " FROM certs c "
	                        "WHERE c.role = ?1 AND c.name = ?2",
	                        s)) != SG_OK)
		return rc;
	sqlite3_bind_int(*s, 1, (int)role);
	sqlite3_bind_text(*s, 2, name, -1, SQLITE_STATIC);
	if ((rc = store_step(st, *s, &row)) != SG_OK)
		return rc;
	if (!row)
		return store_fail(st, SG_ERR_NOT_FOUND, "no %s named %s",
		                  store_role_noun(role), name);
	return store_row_read(st, *s, r);
}

static enum sg_status
col_int(struct store *st, sqlite3_stmt *s, int col, int64_t *out)
{
	if (sqlite3_column_type(s, col) != SQLITE_INTEGER)
		return corrupt(st, s, col, "is not an integer");
	*out = sqlite3_column_int64(s, col);
	return SG_OK;
}

enum sg_status
store_row_read(struct store *st, sqlite3_stmt *s, struct store_row *r)
{
	struct store_row row = {0};
	int64_t role = 0, created = 0;
	enum sg_status rc;

	if ((rc = col_int(st, s, 0, &row.id)) != SG_OK ||
	    (rc = col_int(st, s, 1, &role)) != SG_OK ||
	    (rc = col_int(st, s, 4, &created)) != SG_OK)
		goto fail;
	if (role < STORE_ORG || role > STORE_HARVESTED) {
		rc = corrupt(st, s, 1, "is out of range");
		goto fail;
	}
	row.role = (enum store_role)role;
	row.created = (time_t)created;
	if ((rc = store_col_text(st, s, 2, STORE_MAX_NAME, &row.name)) !=
	        SG_OK ||
	    (rc = store_col_text(st, s, 3, STORE_MAX_SOURCE, &row.source)) !=
	        SG_OK)
		goto fail;
	if (!store_name_ok(row.name)) {
		rc = corrupt(st, s, 2, "is not a valid name");
		goto fail;
	}
	if (row.source == NULL) {
		rc = corrupt(st, s, 3, "is NULL");
		goto fail;
	}
	if ((rc = store_col_blob(st, s, 5, STORE_MAX_CERT, &row.der,
	                         &row.der_len)) != SG_OK ||
	    (rc = store_col_blob(st, s, 6, STORE_MAX_CHAIN, &row.chain,
	                         &row.chain_len)) != SG_OK ||
	    (rc = store_col_blob(st, s, 7, STORE_MAX_KEY_BLOB, &row.key,
	                         &row.key_len)) != SG_OK)
		goto fail;
	*r = row;
	return SG_OK;
fail:
	store_row_clear(&row);
	return rc;
}

void
store_row_clear(struct store_row *r)
{
	free(r->name);
	free(r->source);
	memset(r, 0, sizeof(*r));
}

/* The length of the DER SEQUENCE at the start of P (N bytes), or 0 when P
 * does not start with a complete, definite-length SEQUENCE. */
static size_t
der_seq_len(const unsigned char *p, size_t n)
{
	size_t len = 0, hdr;

	if (n < 2 || p[0] != 0x30)
		return 0;
	if (p[1] < 0x80) {
		len = p[1];
		hdr = 2;
	} else {
		size_t nb = p[1] & 0x7f;
		if (nb == 0 || nb > 3 || n < 2 + nb)
			return 0;
		for (size_t i = 0; i < nb; i++)
			len = (len << 8) | p[2 + i];
		hdr = 2 + nb;
	}
	if (len > n - hdr)
		return 0;
	return hdr + len;
}

/* Appends to CERTS the one certificate whose DER is exactly P (N bytes). */
static enum sg_status
push_der(struct store *st, const struct store_row *r, struct sg_certs *certs,
         const unsigned char *p, size_t n)
{
	size_t before = sg_certs_count(certs), len = 0;
	unsigned char *der = NULL;
	enum sg_status rc;

	if ((rc = sg_certs_load_mem(st->ctx, certs, p, n)) != SG_OK)
		return store_fail_lib(st, rc == SG_ERR_NOMEM ? rc : SG_ERR_IO,
		                      "corrupt certificate in the store");
	/* Exactly one certificate, and exactly the bytes stored: a DER
	 * blob could also be read as something else (PEM inside a name). */
	if (sg_certs_count(certs) != before + 1)
		goto fail;
	if ((rc = sg_certs_get_der(certs, before, &der, &len)) != SG_OK)
		return store_fail(st, rc, "%s: cannot encode certificate",
		                  r->name);
	if (len != n || memcmp(der, p, n) != 0)
		goto fail;
	free(der);
	return SG_OK;
fail:
	free(der);
	return store_fail(st, SG_ERR_IO, "corrupt store: certificate of %s",
	                  r->name);
}

/*
 * Parsing a certificate is most of a lookup's cost (OpenSSL decodes its
 * public key through the provider machinery), so each handle keeps the
 * last STORE_CERT_CACHE rows' certificates, keyed by their exact bytes:
 * a changed row parses afresh.  Certificates are shared (reference
 * counts), never modified.
 */
static void
cert_cache_clear(struct store_cert_cache *e)
{
	sg_certs_free(e->certs);
	free(e->der);
	free(e->chain);
	memset(e, 0, sizeof(*e));
}

static const struct sg_certs *
cert_cache_find(const struct store *st, const struct store_row *r)
{
	for (unsigned i = 0; i < STORE_CERT_CACHE; i++) {
		const struct store_cert_cache *e = &st->cc[i];

		if (e->certs != NULL && e->der_len == r->der_len &&
		    e->chain_len == r->chain_len &&
		    memcmp(e->der, r->der, r->der_len) == 0 &&
		    (r->chain_len == 0 ||
		     memcmp(e->chain, r->chain, r->chain_len) == 0))
			return e->certs;
	}
	return NULL;
}

/* A new list holding the same certificates as SRC. */
static enum sg_status
certs_share(const struct sg_certs *src, struct sg_certs **out)
{
	struct sg_certs *c = NULL;
	enum sg_status rc;

	if ((rc = sg_certs_new(&c)) != SG_OK)
		return rc;
	for (size_t i = 0; i < sg_certs_count(src); i++)
		if ((rc = sg_certs_push_from(c, src, i)) != SG_OK) {
			sg_certs_free(c);
			return rc;
		}
	*out = c;
	return SG_OK;
}

static void
cert_cache_add(struct store *st, const struct store_row *r,
               const struct sg_certs *certs)
{
	struct store_cert_cache *e = &st->cc[st->cc_next++ % STORE_CERT_CACHE];
	unsigned char *der = malloc(r->der_len);
	unsigned char *chain = malloc(r->chain_len ? r->chain_len : 1);
	struct sg_certs *c = NULL;

	if (der == NULL || chain == NULL || certs_share(certs, &c) != SG_OK) {
		free(der);
		free(chain);
		return;
	}
	cert_cache_clear(e);
	memcpy(der, r->der, r->der_len);
	if (r->chain_len)
		memcpy(chain, r->chain, r->chain_len);
	e->der = der;
	e->der_len = r->der_len;
	e->chain = chain;
	e->chain_len = r->chain_len;
	e->certs = c;
}

enum sg_status
store_row_certs(struct store *st, const struct store_row *r,
                struct sg_certs **out)
{
	const struct sg_certs *cached;
	struct sg_certs *certs = NULL;
	enum sg_status rc;
	size_t off = 0, n = 0, len;

	if (r->der == NULL)
		return store_fail(st, SG_ERR_NOT_FOUND,
		                  "%s has no certificate yet (CSR pending)",
		                  r->name);
	if ((cached = cert_cache_find(st, r)) != NULL) {
		if ((rc = certs_share(cached, out)) != SG_OK)
			return store_fail(st, rc, "out of memory");
		return SG_OK;
	}
	if (der_seq_len(r->der, r->der_len) != r->der_len)
		return store_fail(st, SG_ERR_IO,
		                  "corrupt store: certificate of %s", r->name);
	if ((rc = sg_certs_new(&certs)) != SG_OK)
		return store_fail(st, rc, "out of memory");
	if ((rc = push_der(st, r, certs, r->der, r->der_len)) != SG_OK)
		goto fail;
	while (off < r->chain_len) {
		len = der_seq_len(r->chain + off, r->chain_len - off);
		if (len == 0 || ++n > STORE_MAX_CHAIN_N) {
			rc = store_fail(st, SG_ERR_IO,
			                "corrupt store: chain of %s", r->name);
			goto fail;
		}
		if ((rc = push_der(st, r, certs, r->chain + off, len)) != SG_OK)
			goto fail;
		off += len;
	}
	cert_cache_add(st, r, certs);
	*out = certs;
	return SG_OK;
fail:
	sg_certs_free(certs);
	return rc;
}

static void
key_cache_clear(struct store_key_cache *e)
{
	sg_key_free(e->key);
	free(e->name);
	free(e->blob);
	memset(e, 0, sizeof(*e));
}

/* The cached key of row R, or NULL. */
static const struct sg_key *
key_cache_find(const struct store *st, const struct store_row *r)
{
	for (unsigned i = 0; i < STORE_KEY_CACHE; i++) {
		const struct store_key_cache *e = &st->kc[i];

		if (e->key != NULL && e->id == r->id && e->len == r->key_len &&
		    strcmp(e->name, r->name) == 0 &&
		    memcmp(e->blob, r->key, r->key_len) == 0)
			return e->key;
	}
	return NULL;
}

/* Keeps KEY (a new handle on it) for row R; nothing when memory is short:
 * the cache only saves work. */
static void
key_cache_add(struct store *st, const struct store_row *r,
              const struct sg_key *key)
{
	struct store_key_cache *e = &st->kc[st->kc_next++ % STORE_KEY_CACHE];
	struct sg_key *dup = NULL;
	char *name = strdup(r->name);
	unsigned char *blob = malloc(r->key_len);

	if (name == NULL || blob == NULL ||
	    sg_key_dup(st->ctx, key, &dup) != SG_OK) {
		free(name);
		free(blob);
		return;
	}
	key_cache_clear(e);
	memcpy(blob, r->key, r->key_len);
	e->id = r->id;
	e->name = name;
	e->blob = blob;
	e->len = r->key_len;
	e->key = dup;
}

/*
 * Unwrapping a key (AES-GCM, then OpenSSL's PKCS#8 decoder) and its first
 * RSA operation (setting up blinding) cost more than the signature they
 * serve, so each handle keeps its last STORE_KEY_CACHE keys open.  A row
 * that changed (new blob, other name) or was deleted no longer matches;
 * a lookup still reads the row every time.
 */
enum sg_status
store_row_key(struct store *st, const struct store_row *r,
              const struct sg_certs *certs, struct sg_key **out)
{
	const struct sg_key *cached;
	struct sg_key *k = NULL;
	enum sg_status rc;

	if (r->role != STORE_ORG || r->key == NULL)
		return store_fail(st, SG_ERR_IO,
		                  "corrupt store: %s has no private key",
		                  r->name);
	if ((cached = key_cache_find(st, r)) != NULL)
		rc = sg_key_dup(st->ctx, cached, &k);
	else if ((rc = sg_key_unwrap(st->ctx, r->key, r->key_len, st->master,
	                             r->name, NULL, &k)) == SG_OK)
		key_cache_add(st, r, k);
	else
		return store_fail(st, rc,
		                  "the private key of %s does not open (wrong "
		                  "master key, or the row was altered): %s",
		                  r->name, sg_ctx_error(st->ctx));
	if (rc != SG_OK)
		return store_fail_lib(st, rc, r->name);
	if (certs != NULL && sg_certs_count(certs) > 0 &&
	    (rc = sg_key_set_certs(st->ctx, k, certs, 0)) != SG_OK) {
		sg_key_free(k);
		return store_fail(st, rc,
		                  "the private key of %s does not open (wrong "
		                  "master key, or the row was altered): %s",
		                  r->name, sg_ctx_error(st->ctx));
	}
	*out = k;
	return SG_OK;
}

/* ---- files ---- */

static char *
default_keyfile(const char *path)
{
	size_t n = strlen(path);
	char *k = malloc(n + sizeof(".key"));

	if (k != NULL) {
		memcpy(k, path, n);
		memcpy(k + n, ".key", sizeof(".key"));
	}
	return k;
}

/* Refuses a file that is not a regular file or that group or others may
 * use in any way.  ST may be NULL (no detail kept). */
static enum sg_status
check_mode(struct store *st, const char *what, const char *path,
           const struct stat *sb)
{
	if (!S_ISREG(sb->st_mode))
		return st ? store_fail(st, SG_ERR_IO,
		                       "%s %s is not a regular file", what,
		                       path)
		          : SG_ERR_IO;
	if ((sb->st_mode & (S_IRWXG | S_IRWXO)) != 0)
		return st ? store_fail(st, SG_ERR_IO,
		                       "%s %s has mode %04o: group and others "
		                       "must have no access (chmod go= %s)",
		                       what, path,
		                       (unsigned)(sb->st_mode & 07777), path)
		          : SG_ERR_IO;
	return SG_OK;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync()s the directory holding PATH, so that a new name in it lasts. */
static int
sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

/* Creates KEYFILE (0400) holding 32 new random bytes. */
static enum sg_status
create_master(const char *keyfile)
{
	unsigned char m[STORE_MASTER_LEN];
	enum sg_status rc;
	int fd;

	if ((rc = sg_random_bytes(m, sizeof(m))) != SG_OK)
		return rc;
	fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0400);
	if (fd < 0) {
		explicit_bzero(m, sizeof(m));
		return errno == EEXIST ? SG_ERR_EXISTS : SG_ERR_IO;
	}
	rc = SG_OK;
	if (fchmod(fd, 0400) != 0 || write_all(fd, m, sizeof(m)) != 0 ||
	    fsync(fd) != 0)
		rc = SG_ERR_IO;
	if (close(fd) != 0)
		rc = SG_ERR_IO;
	explicit_bzero(m, sizeof(m));
	if (rc != SG_OK)
		unlink(keyfile);
	return rc;
}

/* Reads the master key from KEYFILE into ST after checking its mode. */
static enum sg_status
read_master(struct store *st, const char *keyfile)
{
	unsigned char m[STORE_MASTER_LEN + 1];
	struct stat sb;
	enum sg_status rc;
	size_t got = 0;
	int fd;

	fd = open(keyfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return store_fail(st, SG_ERR_IO, "master key file %s: %s",
		                  keyfile, strerror(errno));
	if (fstat(fd, &sb) != 0) {
		rc = store_fail(st, SG_ERR_IO, "master key file %s: %s",
		                keyfile, strerror(errno));
		goto out;
	}
	if ((rc = check_mode(st, "master key file", keyfile, &sb)) != SG_OK)
		goto out;
	while (got < sizeof(m)) {
		ssize_t n = read(fd, m + got, sizeof(m) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = store_fail(st, SG_ERR_IO, "master key file %s: %s",
			                keyfile, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != STORE_MASTER_LEN) {
		rc = store_fail(st, SG_ERR_IO,
		                "master key file %s: not %d bytes", keyfile,
		                STORE_MASTER_LEN);
		goto out;
	}
	memcpy(st->master, m, STORE_MASTER_LEN);
out:
	explicit_bzero(m, sizeof(m));
	close(fd);
	return rc;
}

/* Checks the modes of the database and of SQLite's files beside it. */
static enum sg_status
check_db_files(struct store *st, const char *path)
{
	static const char *const sfx[] = {"-wal", "-shm"};
	struct stat sb;
	enum sg_status rc;
	char side[4096];

	if (lstat(path, &sb) != 0)
		return store_fail(
		    st, errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO,
		    "database %s: %s", path, strerror(errno));
	if ((rc = check_mode(st, "database", path, &sb)) != SG_OK)
		return rc;
	for (size_t i = 0; i < 2; i++) {
		if ((size_t)snprintf(side, sizeof(side), "%s%s", path,
		                     sfx[i]) >= sizeof(side))
			return store_fail(st, SG_ERR_IO, "path too long");
		if (lstat(side, &sb) != 0) {
			if (errno == ENOENT)
				continue;
			return store_fail(st, SG_ERR_IO, "%s: %s", side,
			                  strerror(errno));
		}
		if ((rc = check_mode(st, "database file", side, &sb)) != SG_OK)
			return rc;
	}
	return SG_OK;
}

/* ---- the connection ---- */

static enum sg_status
pragma_int(struct store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row = 0;

	if ((rc = store_prepare(st, sql, &s)) != SG_OK)
		return rc;
	if ((rc = store_step(st, s, &row)) == SG_OK) {
		if (!row || sqlite3_column_type(s, 0) != SQLITE_INTEGER)
			rc = store_fail(st, SG_ERR_IO, "%s: no answer", sql);
		else
			*out = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Brings the schema to the latest version, in one transaction. */
static enum sg_status
migrate(struct store *st)
{
	int64_t v = 0;
	const int64_t latest = store_schema_version();
	enum sg_status rc;
	char sql[64];

	if ((rc = pragma_int(st, "PRAGMA user_version", &v)) != SG_OK)
		return rc;
	if (v == latest)
		return SG_OK;
	if ((rc = store_begin(st)) != SG_OK)
		return rc;
	/* Another process may have migrated while we waited. */
	if ((rc = pragma_int(st, "PRAGMA user_version", &v)) != SG_OK)
		goto fail;
	if (v < 0 || v > latest) {
		rc = store_fail(st, SG_ERR_IO,
		                "database schema version %lld is not one this "
		                "build knows (up to %lld)",
		                (long long)v, (long long)latest);
		goto fail;
	}
	for (; v < latest; v++)
		if ((rc = exec(st, migrations[v], "schema migration")) != SG_OK)
			goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld",
	         (long long)latest);
	if ((rc = exec(st, sql, "schema migration")) != SG_OK)
		goto fail;
	return store_commit(st);
fail:
	store_rollback(st);
	return rc;
}

/* Opens PATH (which must exist) and sets the connection up: WAL, busy
 * timeout, foreign keys, defensive mode, no triggers or views from the
 * file, a bound on every value, and the latest schema. */
static enum sg_status
db_connect(struct store *st, const char *path)
{
	int rc, wal = 0, row = 0;
	sqlite3_stmt *s = NULL;
	enum sg_status r;
	char why[SG_DL_WHYLEN];

	if (sqlite_load(why, sizeof(why)) == NULL)
		return store_fail(st, SG_ERR_TEMP, "SQLite cannot be used: %s",
		                  why);
	rc = sqlite3_open_v2(path, &st->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
	                         SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK)
		return store_fail_sql(st, rc, path);
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
	sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, STORE_MAX_SQL_VALUE);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
	if ((r = exec(st,
	              "PRAGMA foreign_keys = ON;"
	              "PRAGMA secure_delete = ON;"
	              "PRAGMA synchronous = FULL",
	              path)) != SG_OK)
		return r;
	if ((r = store_prepare(st, "PRAGMA journal_mode = WAL", &s)) != SG_OK)
		return r;
	if ((r = store_step(st, s, &row)) == SG_OK && row) {
		const unsigned char *m = sqlite3_column_text(s, 0);
		wal = m != NULL && strcmp((const char *)m, "wal") == 0;
	}
	sqlite3_finalize(s);
	if (r != SG_OK)
		return r;
	if (!wal)
		return store_fail(st, SG_ERR_IO, "%s: cannot use WAL mode",
		                  path);
	return migrate(st);
}

static void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	if (st->db != NULL)
		sqlite3_close_v2(st->db);
	for (unsigned i = 0; i < STORE_KEY_CACHE; i++)
		key_cache_clear(&st->kc[i]);
	for (unsigned i = 0; i < STORE_CERT_CACHE; i++)
		cert_cache_clear(&st->cc[i]);
	explicit_bzero(st->master, sizeof(st->master));
	free(st);
}

enum sg_status
store_init(struct sg_ctx *ctx, const char *path, const char *keyfile)
{
	struct store *st = NULL;
	char *kpath = NULL;
	struct stat sb;
	enum sg_status rc;
	int fd, have_key = 0, have_db = 0;

	if (path == NULL || *path == '\0')
		return SG_ERR_USAGE;
	if (keyfile == NULL && (kpath = default_keyfile(path)) == NULL)
		return SG_ERR_NOMEM;
	if (keyfile == NULL)
		keyfile = kpath;
	if (lstat(path, &sb) == 0 || lstat(keyfile, &sb) == 0) {
		rc = SG_ERR_EXISTS;
		goto fail;
	}
	if ((rc = create_master(keyfile)) != SG_OK)
		goto fail;
	have_key = 1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0600);
	if (fd < 0) {
		rc = errno == EEXIST ? SG_ERR_EXISTS : SG_ERR_IO;
		goto fail;
	}
	have_db = 1;
	/* SQLite gives its -wal and -shm files the database's mode. */
	if (fchmod(fd, 0600) != 0 || close(fd) != 0) {
		rc = SG_ERR_IO;
		goto fail;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		rc = SG_ERR_NOMEM;
		goto fail;
	}
	st->ctx = ctx;
	if ((rc = db_connect(st, path)) != SG_OK)
		goto fail;
	store_free(st);
	st = NULL;
	if (sync_dir(path) != 0 || sync_dir(keyfile) != 0) {
		rc = SG_ERR_IO;
		goto fail;
	}
	free(kpath);
	return SG_OK;
fail:
	if (st != NULL && st->err[0] != '\0')
		sg_ctx_set_error(ctx, rc, "%s", st->err); /* SQLite's reason */
	store_free(st);
	if (have_db) {
		char side[4096];
		unlink(path);
		if ((size_t)snprintf(side, sizeof(side), "%s-wal", path) <
		    sizeof(side))
			unlink(side);
		if ((size_t)snprintf(side, sizeof(side), "%s-shm", path) <
		    sizeof(side))
			unlink(side);
	}
	if (have_key)
		unlink(keyfile);
	free(kpath);
	return rc;
}

enum sg_status
store_open(struct sg_ctx *ctx, const char *path, const char *keyfile,
           struct store **out)
{
	struct store *st;
	char *kpath = NULL;
	enum sg_status rc;

	if (path == NULL || *path == '\0')
		return SG_ERR_USAGE;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return SG_ERR_NOMEM;
	st->ctx = ctx;
	if (keyfile == NULL && (kpath = default_keyfile(path)) == NULL) {
		rc = SG_ERR_NOMEM;
		goto fail;
	}
	if (keyfile == NULL)
		keyfile = kpath;
	if ((rc = check_db_files(st, path)) != SG_OK ||
	    (rc = read_master(st, keyfile)) != SG_OK ||
	    (rc = db_connect(st, path)) != SG_OK)
		goto fail;
	free(kpath);
	*out = st;
	return SG_OK;
fail:
	/* No store outlives the failure: its detail goes to the handle. */
	if (st->err[0] != '\0')
		sg_ctx_set_error(ctx, rc, "%s", st->err);
	free(kpath);
	store_free(st);
	return rc;
}

void
store_close(struct store *st)
{
	store_free(st);
}

void
store_set_busy_timeout(struct store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms < 0 ? 0 : ms);
}

/* ---- settings ---- */

static int
setting_key_ok(const char *key)
{
	size_t n;

	if (key == NULL || (n = strlen(key)) == 0 || n > STORE_MAX_SETTING_K)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", key[i]) ==
		    NULL)
			return 0;
	return 1;
}

enum sg_status
store_set_setting(struct store *st, const char *key, const char *value)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	int row;

	store_reset(st);
	if (!setting_key_ok(key))
		return store_fail(st, SG_ERR_USAGE, "bad setting name");
	if (value == NULL || strlen(value) > STORE_MAX_SETTING_V)
		return store_fail(st, SG_ERR_USAGE, "bad value for %s", key);
	if ((rc = store_prepare(st,
	                        "INSERT INTO settings (key, value) "
	                        "VALUES (?1, ?2) ON CONFLICT (key) "
	                        "DO UPDATE SET value = excluded.value",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	rc = store_step(st, s, &row);
	sqlite3_finalize(s);
	return rc;
}

enum sg_status
store_get_setting(struct store *st, const char *key, char **value)
{
	sqlite3_stmt *s = NULL;
	enum sg_status rc;
	char *v = NULL;
	int row = 0;

	store_reset(st);
	if (!setting_key_ok(key))
		return store_fail(st, SG_ERR_USAGE, "bad setting name");
	if ((rc = store_prepare(st, "SELECT value FROM settings WHERE key = ?1",
	                        &s)) != SG_OK)
		return rc;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if ((rc = store_step(st, s, &row)) != SG_OK)
		goto out;
	if (!row) {
		rc = store_fail(st, SG_ERR_NOT_FOUND, "setting %s is not set",
		                key);
		goto out;
	}
	if ((rc = store_col_text(st, s, 0, STORE_MAX_SETTING_V, &v)) != SG_OK)
		goto out;
	if (v == NULL) {
		rc =
		    store_fail(st, SG_ERR_IO, "corrupt store: setting %s", key);
		goto out;
	}
	*value = v;
out:
	sqlite3_finalize(s);
	return rc;
}
