/*
 * store.h - the key store: our certificates and their private keys,
 * others' public keys, and trust anchors, in one SQLite database.
 *
 * What it trusts: the database file and the master key file, both 0600 /
 * 0400 and owned by us.  What it can reach: those two files, nothing else.
 * The SQL lives in src/store/ only, behind this API, so that another
 * backend (PostgreSQL, for clusters) can be added later.
 *
 * Private keys are stored wrapped (sg_key_wrap: AES-256-GCM under the
 * master key, bound to the row's name) and leave the store only as
 * struct sg_key handles.
 *
 * Lookups have three outcomes: SG_OK (found), SG_ERR_NOT_FOUND (no
 * match), SG_ERR_TEMP (the database is busy or unreadable: try later;
 * never reported as "no match").
 */
#ifndef SG_STORE_H
#define SG_STORE_H

#include <stddef.h>
#include <time.h>

#include "smimegate.h"

struct store;

/* What a row is. */
enum store_role {
	STORE_ORG = 1, /* ours: certificate (or pending CSR) + private key */
	STORE_PUBLIC,  /* someone else's certificate, for encryption */
	STORE_CA,      /* a trust anchor */
};

/*
 * Creates a new store at PATH (0600, WAL) and its master key file at
 * KEYFILE (32 random bytes, 0400); neither may exist yet.  Details of a
 * failure go to CTX.  SG_ERR_EXISTS, SG_ERR_IO.
 */
enum sg_status store_init(struct sg_ctx *ctx, const char *path,
                          const char *keyfile);

/*
 * Opens the store at PATH with the master key in KEYFILE (NULL: PATH
 * with ".key" appended).  Applies pending schema migrations.  Refuses a
 * database or key file readable by others.  CTX is borrowed for errors
 * and time and must outlive the store.  SG_ERR_NOT_FOUND (no store: run
 * `smimegate store init`), SG_ERR_IO, SG_ERR_TEMP.
 */
enum sg_status store_open(struct sg_ctx *ctx, const char *path,
                          const char *keyfile, struct store **out);
void store_close(struct store *st);

/* The schema version this build writes (PRAGMA user_version). */
int store_schema_version(void);

/* ---- rows ---- */

/* One row as listed: facts of its certificate (info.* zero and
 * has_cert 0 for a pending CSR). */
struct store_entry {
	char *name;
	enum store_role role;
	int has_cert;
	struct sg_cert_info info;
	time_t created;
	char *source; /* "created", "imported", "csr", "added", ... */
};
void store_entry_clear(struct store_entry *e);
void store_entries_free(struct store_entry *v, size_t n);

/* Adds our certificate with its key (and chain) under NAME.  SOURCE is
 * recorded ("created", "imported").  SG_ERR_EXISTS. */
enum sg_status store_put_key(struct store *st, const char *name,
                             const struct sg_key *key, const char *source);
/* Adds a pending CSR: the new key and the CSR's PEM, no certificate yet. */
enum sg_status store_put_csr(struct store *st, const char *name,
                             const struct sg_key *key, const char *csr_pem);
/* Finds the pending CSR whose key matches certificate I of CERTS, attaches
 * the certificates, and returns its name (malloc'd).  With no pending CSR,
 * a renewal: one of our rows with the same key gets a new row
 * ("<name>-2", source "renewed", the key re-wrapped under the new name)
 * and the old row stays, so mail to the old certificate still decrypts.
 * SG_ERR_NOT_FOUND when no key of ours matches. */
enum sg_status store_attach_cert(struct store *st, const struct sg_certs *certs,
                                 size_t i, char **name);
/* Adds certificate I of CERTS as a public key or a trust anchor under
 * NAME (NULL: derived from the subject / first email).  SG_ERR_EXISTS when
 * the name is taken or the same certificate is already there. */
enum sg_status store_put_cert(struct store *st, enum store_role role,
                              const char *name, const struct sg_certs *certs,
                              size_t i, const char *source);

/* Lists rows of ROLE, by name. */
enum sg_status store_list(struct store *st, enum store_role role,
                          struct store_entry **v, size_t *n);
/* One row of ROLE by name.  SG_ERR_NOT_FOUND. */
enum sg_status store_get(struct store *st, enum store_role role,
                         const char *name, struct store_entry *e);
/* The certificate(s) of a row: [0] the certificate, then its chain. */
enum sg_status store_get_certs(struct store *st, enum store_role role,
                               const char *name, struct sg_certs **out);
/* Our key by name (with its certificate and chain). */
enum sg_status store_get_key(struct store *st, const char *name,
                             struct sg_key **out);
/* The pending CSR's PEM of an ORG row (malloc'd).  SG_ERR_NOT_FOUND when
 * the row has no pending CSR. */
enum sg_status store_get_csr(struct store *st, const char *name, char **pem);
enum sg_status store_delete(struct store *st, enum store_role role,
                            const char *name);

/* Settings (string values): "trust_system_bundle" = "0" | "1". */
enum sg_status store_set_setting(struct store *st, const char *key,
                                 const char *value);
/* *VALUE malloc'd, or SG_ERR_NOT_FOUND. */
enum sg_status store_get_setting(struct store *st, const char *key,
                                 char **value);

/* ---- lookups the gateway calls (valid at sg_ctx_now()) ---- */

/*
 * The encryption certificate for recipient ADDR: a valid,
 * encryption-capable certificate (public keys and our own) whose
 * rfc822Name SAN equals ADDR (local part exact, domain part
 * case-insensitive); else one whose dNSName SAN matches ADDR's domain
 * (`*.example.net` matches `a.example.net`, not `example.net`, nor
 * `b.a.example.net`); newest notAfter first.  Expired and not yet valid
 * ones never match.  *OUT gets the certificate.
 */
enum sg_status store_find_encrypt_cert(struct store *st, const char *addr,
                                       struct sg_certs **out);
/*
 * The signing key for SENDER: by NAME when not NULL (a profile names it),
 * else automatic: our certificate whose email SAN is SENDER, else the one
 * whose domain SAN matches SENDER's domain; valid, signing-capable,
 * newest notAfter first.
 */
enum sg_status store_find_sign_key(struct store *st, const char *sender,
                                   const char *name, struct sg_key **out);
/* Our key for a RecipientInfo: by issuer + serial, or by subject key
 * identifier (which survives renewal with the same key). */
enum sg_status store_find_decrypt_key(struct store *st,
                                      const struct sg_recipient_id *rid,
                                      struct sg_key **out);
/* Debian's bundle of system trust anchors. */
#define SG_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* All trust anchors (plus the system bundle when the setting is on). */
enum sg_status store_trust_anchors(struct store *st, struct sg_certs **out);

/* The detail of the last failure on ST: one line, no key material.  Valid
 * until the next call on ST; "" when there is none.  Never NULL. */
const char *store_errmsg(const struct store *st);
/* How long a call waits for another connection's lock before it gives
 * up with SG_ERR_TEMP (default 5000 ms; 0: not at all).  For tests. */
void store_set_busy_timeout(struct store *st, int ms);

#endif /* SG_STORE_H */
