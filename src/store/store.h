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
#include <stdint.h>
#include <time.h>

#include "smimegate.h"

struct store;

/* What a row is. */
enum store_role {
	STORE_ORG = 1,   /* ours: certificate (or pending CSR) + private key */
	STORE_PUBLIC,    /* someone else's certificate, for encryption */
	STORE_CA,        /* a trust anchor */
	STORE_HARVESTED, /* a certificate collected from signed mail */
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
 * `b.a.example.net`); newest notAfter first.  Only when neither matches,
 * the same two steps among harvested certificates, newest notBefore
 * first; the one chosen gets its last_used set to now (a failure there is
 * ignored).  Expired and not yet valid ones never match.  *OUT gets the
 * certificate.
 */
enum sg_status store_find_encrypt_cert(struct store *st, const char *addr,
                                       struct sg_certs **out);
/*
 * The same, with the caller's last word on each candidate that fits, in
 * the order above (revocation: a revoked certificate is never used, and
 * the next candidate is tried): VETO(ARG, CERTS) returns 0 to take it, 1
 * to skip it, -1 to stop with SG_ERR_TEMP (a status that may come back
 * later; the caller keeps its reason).  All skipped: SG_ERR_NOT_FOUND.
 */
typedef int (*store_veto_fn)(void *arg, const struct sg_certs *certs);
enum sg_status store_find_encrypt_cert_vetted(struct store *st,
                                              const char *addr,
                                              store_veto_fn veto, void *arg,
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

/* ---- harvested certificates (store_harvest.c) ----
 *
 * The gateway collects ("harvests") the certificates of the senders of
 * signed mail, to encrypt to them later.  A harvested row is like a
 * STORE_PUBLIC one (a certificate, no key) with four more facts: when it
 * was harvested, when it was last used for encryption, where it came
 * from, and its size.  Added keys (STORE_PUBLIC, and our own) always win
 * over harvested ones.  Names are generated: "h-<first email or
 * domain>-<8 hex digits of the fingerprint>", made of [A-Za-z0-9._@+-]
 * only.
 */

/* What may be harvested beyond the defaults (seed 002): all 0 by
 * default (expired and self-signed certificates are not harvested, nor
 * is an updated certificate stored).  A CA certificate, or one not fit
 * for encryption, is never harvested. */
struct store_harvest_opts {
	int allow_self_signed;
	int allow_expired;
	int store_updated; /* store a newer certificate for an address that
	                    * already has a harvested one (both are kept) */
};

enum store_harvest_result {
	STORE_HARVEST_NEW = 1, /* stored: nothing harvested for its names */
	STORE_HARVEST_UPDATED, /* stored: newer than the harvested one(s) */
	STORE_HARVEST_SAME,    /* already harvested: last_used refreshed */
	STORE_HARVEST_SKIPPED, /* not stored: see reason */
};

#define STORE_HARVEST_REASON 512 /* a reason, with an address and a name */

struct store_harvest_out {
	enum store_harvest_result result;
	char *name;   /* the row (NEW, UPDATED, SAME); NULL when SKIPPED */
	char **names; /* the emails (normalized), then the domains
	               * (lowercased) the certificate covers; NULL-terminated,
	               * never NULL after store_harvest returned SG_OK */
	size_t n_names;
	/* SKIPPED: why, and the status that stands for it: "a CA
	 * certificate", "not for encryption", "no email address or domain"
	 * (SG_ERR_KEY_USAGE); "too many names", "certificate too large"
	 * (SG_ERR_LIMIT); "unusable certificate" (SG_ERR_BADKEY); "expired"
	 * (SG_ERR_EXPIRED); "self-signed", "updated certificate not stored"
	 * (SG_ERR_POLICY); "an added key exists for ADDR (NAME)", "a newer
	 * certificate is stored for ADDR (NAME)" (SG_ERR_EXISTS).  "" and
	 * SG_OK otherwise. */
	char reason[STORE_HARVEST_REASON];
	enum sg_status skip_status;
};
void store_harvest_out_clear(struct store_harvest_out *o);
/* "new", "updated", "same", "skipped". */
const char *store_harvest_result_name(enum store_harvest_result r);

/*
 * Harvests certificate I of CERTS (e.g. the signer's certificate of a
 * verified message), in one transaction.  SOURCE (may be NULL) says where
 * it came from ("qid=... from=alice@example.com"): kept with control
 * characters replaced and cut to 512 bytes.  O may be NULL (the
 * defaults).  On SG_OK *OUT is overwritten with the outcome (the caller
 * clears it with store_harvest_out_clear); a certificate that is not
 * harvested is SG_OK with result SKIPPED.
 *
 * The rules, in order: never a CA certificate, one not fit for
 * encryption (sg_certs_info's can_encrypt), one without an email address
 * or domain, with too many names (over 1,000), unusable or too large
 * (the store's bounds); not an expired one unless O->allow_expired, nor a
 * self-signed one unless O->allow_self_signed (one not yet valid is
 * harvested: lookups wait for it).  Not when each of its names already
 * has a valid, encryption-capable added key (STORE_PUBLIC or ours, by
 * email, or by the address's domain).  The same certificate again is
 * SAME.  Against the harvested rows with one of its names (same email,
 * or same domain): when one is as new or newer (notBefore), SKIPPED;
 * when all are older, an update: an event per such name is recorded
 * (store_harvest_updates) and the certificate is stored (UPDATED, the
 * old rows kept) only with O->store_updated, else SKIPPED "updated
 * certificate not stored".  Else NEW.
 *
 * SG_ERR_USAGE (no certificate I), SG_ERR_TEMP, SG_ERR_IO, SG_ERR_NOMEM.
 */
enum sg_status store_harvest(struct store *st, const struct sg_certs *certs,
                             size_t i, const char *source,
                             const struct store_harvest_opts *o,
                             struct store_harvest_out *out);

/*
 * Counts the update events (UPDATED, or skipped because updated) at or
 * after SINCE: for the address ADDR_OR_DOMAIN, or, when it has no '@',
 * for every address of that domain (and the domain itself).  Events are
 * kept 30 days (at most 100,000 of them).  SG_ERR_USAGE for a bad
 * argument.
 */
enum sg_status store_harvest_updates(struct store *st,
                                     const char *addr_or_domain, time_t since,
                                     unsigned *n);

/*
 * Evicts harvested rows, least recently used first (last_used, then
 * harvested_at), until the DER bytes of all harvested certificates are
 * at most MAX_BYTES; at most 10,000 rows per call (one transaction).  *EVICTED
 * and *TOTAL_AFTER (either may be NULL) tell what was done; TOTAL_AFTER >
 * MAX_BYTES when the bound stopped it.  Raising an alert is the caller's.
 */
enum sg_status store_harvest_limit(struct store *st, uint64_t max_bytes,
                                   size_t *evicted, uint64_t *total_after);
/* How many harvested rows there are and their DER bytes. */
enum sg_status store_harvest_usage(struct store *st, size_t *count,
                                   uint64_t *bytes);

/* A harvested row as listed: the entry (source "harvested", created the
 * time it was harvested) and the harvest's facts. */
struct store_harvested {
	struct store_entry e;
	time_t harvested_at;
	time_t last_used; /* last chosen for encryption (or harvested again) */
	char *source;     /* "qid=... from=..." as given to store_harvest */
	uint64_t size;    /* DER bytes */
};
void store_harvested_clear(struct store_harvested *h);
void store_harvested_free(struct store_harvested *v, size_t n);
/* Lists the harvested rows, by name. */
enum sg_status store_harvested_list(struct store *st,
                                    struct store_harvested **v, size_t *n);
/* One harvested row by name.  SG_ERR_NOT_FOUND. */
enum sg_status store_harvested_get(struct store *st, const char *name,
                                   struct store_harvested *h);
/*
 * Turns the harvested row NAME into a public key (STORE_PUBLIC) named
 * NEW_NAME (NULL: NAME), keeping its certificate, its emails and domains
 * and its creation time (source "harvested"); the harvest's facts go.
 * SG_ERR_NOT_FOUND; SG_ERR_EXISTS when a public key has that name or is
 * that certificate; SG_ERR_USAGE for a bad NEW_NAME.
 */
enum sg_status store_harvested_promote(struct store *st, const char *name,
                                       const char *new_name);

#endif /* SG_STORE_H */
