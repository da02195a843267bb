/*
 * store_int.h - what the store's own files share and nobody else sees:
 * the handle, the bounds on everything read from the database, error
 * recording, SQL helpers and the reading of one `certs` row.
 *
 * Everything read back from the database is treated as untrusted input:
 * every column's type and length is checked, every certificate is parsed
 * again and compared byte for byte, and facts used by lookups are checked
 * again against the parsed certificate.
 */
#ifndef SG_STORE_INT_H
#define SG_STORE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/sqlite_dl.h"

#include "smimegate.h"
#include "store/store.h"

#define STORE_ERRLEN         512
#define STORE_MASTER_LEN     32
#define STORE_BUSY_MS        5000              /* default busy timeout */
#define STORE_MAX_NAME       255               /* a row's name, bytes */
#define STORE_MAX_SOURCE     64                /* "created", "imported", ... */
#define STORE_MAX_CERT       (256 * 1024)      /* one certificate's DER */
#define STORE_MAX_CHAIN      (1024 * 1024)     /* a whole chain's DER */
#define STORE_MAX_CHAIN_N    16                /* certificates in a chain */
#define STORE_MAX_KEY_BLOB   (64 * 1024)       /* a wrapped private key */
#define STORE_MAX_CSR        (64 * 1024)       /* a CSR's PEM */
#define STORE_MAX_TEXT       (16 * 1024)       /* subject, issuer, ... */
#define STORE_MAX_SETTING_K  64                /* a setting's key */
#define STORE_MAX_SETTING_V  4096              /* a setting's value */
#define STORE_MAX_ROWS       1000000           /* rows in one listing */
#define STORE_MAX_NAMES      1000              /* emails + domains of a cert */
#define STORE_MAX_CANDIDATES 100               /* rows examined per lookup */
#define STORE_MAX_ADDR       320               /* an email address, bytes */
#define STORE_MAX_SQL_VALUE  (4 * 1024 * 1024) /* SQLITE_LIMIT_LENGTH */

#define STORE_MAX_HARVEST_SOURCE 512    /* where a harvest came from */
#define STORE_HARVEST_MAX_EVICT  10000  /* rows evicted per limit call */
#define STORE_HARVEST_EVENT_DAYS 30     /* update events are kept */
#define STORE_MAX_HARVEST_EVENTS 100000 /* update events kept at most */
#define STORE_HARVEST_TOUCH      60     /* last_used granularity, s */

#define STORE_KEY_CACHE 16 /* private keys kept open per handle */

/* A private key already unwrapped, for the row ID / NAME whose wrapped
 * blob was exactly BLOB: the same bytes under the same name and master
 * key can only open to the same key, so a changed row never matches. */
struct store_key_cache {
	int64_t id;
	char *name;
	unsigned char *blob;
	size_t len;
	struct sg_key *key; /* without certificates */
};

#define STORE_CERT_CACHE 64 /* parsed certificates kept per handle */

/* The certificates parsed from exactly these bytes (DER, then CHAIN). */
struct store_cert_cache {
	unsigned char *der, *chain;
	size_t der_len, chain_len;
	struct sg_certs *certs;
};

struct store {
	struct sg_ctx *ctx; /* borrowed: errors of the library, time */
	sqlite3 *db;
	unsigned char master[STORE_MASTER_LEN];
	char err[STORE_ERRLEN];
	struct store_key_cache kc[STORE_KEY_CACHE];
	unsigned kc_next; /* the entry replaced next (round robin) */
	struct store_cert_cache cc[STORE_CERT_CACHE];
	unsigned cc_next;
};

/* Records a reason on ST and returns S. */
enum sg_status store_fail(struct store *st, enum sg_status s, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));
/* Records "WHAT: <SQLite's message>" and returns the status for RC:
 * SG_ERR_TEMP for busy, locked, I/O and full; SG_ERR_EXISTS for a unique
 * constraint; SG_ERR_IO for a corrupt or foreign file; SG_ERR_NOMEM. */
enum sg_status store_fail_sql(struct store *st, int rc, const char *what);
/* Records "WHAT: <sg_ctx_error()>" and returns S. */
enum sg_status store_fail_lib(struct store *st, enum sg_status s,
                              const char *what);
/* The status an SQLite result code stands for (SG_OK for OK/ROW/DONE). */
enum sg_status store_sql_status(int rc);

/* Clears the error text before an operation. */
void store_reset(struct store *st);

/* Prepares SQL (a constant) into *OUT; failures recorded. */
enum sg_status store_prepare(struct store *st, const char *sql,
                             sqlite3_stmt **out);
/* Steps S: *ROW is 1 for a row, 0 when done.  Failures recorded. */
enum sg_status store_step(struct store *st, sqlite3_stmt *s, int *row);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (the last never fails). */
enum sg_status store_begin(struct store *st);
enum sg_status store_commit(struct store *st);
void store_rollback(struct store *st);

/* Column COL of the current row of S as a new NUL-terminated string
 * (NULL for SQL NULL).  SG_ERR_IO when it is not text, longer than MAX or
 * holds a NUL byte. */
enum sg_status store_col_text(struct store *st, sqlite3_stmt *s, int col,
                              size_t max, char **out);
/* Column COL as a blob borrowed from S until its next step (NULL, 0 for
 * SQL NULL).  SG_ERR_IO when it is not a non-empty blob of at most MAX. */
enum sg_status store_col_blob(struct store *st, sqlite3_stmt *s, int col,
                              size_t max, const unsigned char **p, size_t *n);

/* Whether NAME may name a row: 1 to STORE_MAX_NAME bytes, no control
 * characters, no leading or trailing space. */
int store_name_ok(const char *name);
/* Lowercases ASCII letters of S in place. */
void store_ascii_lower(char *s);
/* ADDR as stored and looked up: the local part exact, the domain (after
 * the last '@') lowercased; *OUT malloc'd, *DOMAIN (may be NULL) points
 * into it.  SG_ERR_USAGE when ADDR is not an address of at most
 * STORE_MAX_ADDR bytes without control characters or spaces. */
enum sg_status store_email_norm(const char *addr, char **out,
                                const char **domain);

/* The wildcard dNSName that covers DOMAIN ("*.example.net" for
 * a.example.net; never "*.net"): *OUT malloc'd, or NULL when there is
 * none.  SG_ERR_NOMEM. */
enum sg_status store_wildcard_of(const char *domain, char **out);

/* Sets last_used of harvested row ID to now when it is older than
 * STORE_HARVEST_TOUCH seconds.  Best effort: a failure is not recorded
 * and changes nothing else (store_harvest.c). */
void store_harvest_touch(struct store *st, int64_t id);

/* ---- one row of `certs` ---- */

/* The columns store_row_read expects, in order, from table alias c. */
#define STORE_ROW_COLS                                                         \
	"c.id, c.role, c.name, c.source, c.created, c.cert_der, c.chain_der, " \
	"c.key_blob"

struct store_row {
	int64_t id;
	enum store_role role;
	char *name;
	char *source;
	time_t created;
	/* borrowed from the statement until its next step */
	const unsigned char *der, *chain, *key;
	size_t der_len, chain_len, key_len;
};

/* "key", "certificate", "trust anchor". */
const char *store_role_noun(enum store_role role);
/* Whether ROLE has a row named NAME (*TAKEN 1 or 0). */
enum sg_status store_name_taken(struct store *st, enum store_role role,
                                const char *name, int *taken);
/* Selects the row ROLE / NAME into *S (the caller finalizes it, also on
 * failure) and R.  SG_ERR_NOT_FOUND. */
enum sg_status store_row_select(struct store *st, enum store_role role,
                                const char *name, sqlite3_stmt **s,
                                struct store_row *r);
/* Reads and validates the STORE_ROW_COLS of the current row of S. */
enum sg_status store_row_read(struct store *st, sqlite3_stmt *s,
                              struct store_row *r);
void store_row_clear(struct store_row *r);
/* The row's certificate then its chain, parsed again and compared byte
 * for byte with what is stored.  SG_ERR_NOT_FOUND for a pending CSR,
 * SG_ERR_IO for a corrupt row. */
enum sg_status store_row_certs(struct store *st, const struct store_row *r,
                               struct sg_certs **out);
/* The row's private key, unwrapped under the master key with the row's
 * name, with CERTS (may be NULL) attached.  SG_ERR_IO when the row has no
 * key, SG_ERR_DECRYPT when it does not open. */
enum sg_status store_row_key(struct store *st, const struct store_row *r,
                             const struct sg_certs *certs, struct sg_key **out);

#endif /* SG_STORE_INT_H */
