/*
 * directory.h - recipients' certificates from an LDAP directory (Active
 * Directory, OpenLDAP): the userSMIMECertificate (PKCS#7 certs-only) and
 * userCertificate;binary (DER X.509) attributes of the entry matching the
 * configured filter (docs/config.md, "Directory lookup (LDAP)").
 *
 * What it trusts: the directory named in the configuration, for which
 * certificates belong to an address (the certificate's own names are not
 * compared with the address).  It does check what it hands back: only
 * end-entity certificates, valid now, fit for encryption.  What it can
 * reach: that one LDAP server, with the configured credentials.
 *
 * Three outcomes (STYLE: match / no match / temporary failure): SG_OK
 * with certificates, SG_ERR_NOT_FOUND (cached for ldap_negative_ttl),
 * SG_ERR_TEMP (never cached).  Found certificates are cached for
 * ldap_cache_ttl (never past the earliest notAfter among them), by the
 * address with its domain lowercased; at most DIRECTORY_CACHE_MAX
 * entries, the oldest evicted first.
 *
 * Threads: every function may be called from several threads at once.
 * One LDAP connection per struct directory, used under a mutex (queries
 * are serialized; a cache hit never waits for a query in flight).  The
 * connection is opened on first use and opened again after a failure:
 * a query that fails on an established connection is retried once on a
 * fresh one.
 */
#ifndef SG_DIRECTORY_H
#define SG_DIRECTORY_H

#include <stddef.h>
#include <time.h>

#include "policy/config.h"
#include "smimegate.h"

#define DIRECTORY_ADDR_MAX    320   /* bytes of an address */
#define DIRECTORY_CACHE_MAX   10000 /* cached addresses */
#define DIRECTORY_MAX_ENTRIES 5     /* entries read per search */
#define DIRECTORY_MAX_VALUES  16    /* attribute values per search */
#define DIRECTORY_MAX_VALUE   65536 /* bytes of one value */

struct directory;

/* A directory for CFG (copied: CFG may be freed afterwards).  Opens no
 * connection yet.  NULL when out of memory. */
struct directory *directory_new(const struct cfg_ldap *cfg);
/* Closes the connection and frees D (NULL: nothing). */
void directory_free(struct directory *d);

/*
 * The certificates for ADDR usable for encryption: end-entity, valid at
 * sg_ctx_now(CTX), can_encrypt (sg_certs_info); duplicates (the same
 * certificate in both attributes) once.  CTX is used for parsing and the
 * time only.
 *
 * SG_OK: *OUT is a new list (the caller frees it with sg_certs_free).
 * SG_ERR_NOT_FOUND: no entry, or no usable certificate in it; REASON
 *   says which.
 * SG_ERR_TEMP: the directory could not answer (connection, StartTLS,
 *   bind, timeout, a server error, an unreadable password file); REASON
 *   says why.  Recommended for the caller: defer the message (4.x.x) like
 *   any temporary failure, not the profile's missing-key action -- a
 *   directory outage must not bounce or send in clear mail that would be
 *   encrypted a minute later; once the message's queue lifetime is over,
 *   the normal expiry applies.
 * SG_ERR_USAGE: ADDR is longer than DIRECTORY_ADDR_MAX, empty, has no
 *   '@' or has control characters (not cached, no query).
 * SG_ERR_NOMEM.
 * REASON (RLEN bytes, may be 0) gets a one-line explanation on every
 * outcome, for the log.  *OUT is set only on SG_OK.
 */
enum sg_status directory_lookup(struct directory *d, struct sg_ctx *ctx,
                                const char *addr, struct sg_certs **out,
                                char *reason, size_t rlen);

/* For tests and metrics: searches sent to the directory and lookups
 * answered from the cache (either pointer may be NULL). */
void directory_stats(const struct directory *d, unsigned long *queries,
                     unsigned long *hits);

/* ---- For tests ---------------------------------------------------------- */

/* The cache's clock: NOW(ARG) replaces time(NULL) (NULL: back to it). */
void directory_set_clock(struct directory *d, time_t (*now)(void *arg),
                         void *arg);
/* The cache's bound (tests of eviction); 0 means DIRECTORY_CACHE_MAX. */
void directory_set_cache_max(struct directory *d, size_t max);

/* The raw values of one search: certificates to be decoded. */
struct directory_found;
/* Adds one attribute value: a DER certificate or a DER PKCS#7 certs-only
 * bundle.  Values over DIRECTORY_MAX_VALUE bytes, beyond
 * DIRECTORY_MAX_VALUES, or not decodable are counted and skipped. */
void directory_found_add(struct directory_found *f, const void *data,
                         size_t len);
/* Replaces the LDAP search with SEARCH (NULL: LDAP again).  SEARCH gets
 * the complete filter, adds each value to F, and returns SG_OK (whether
 * or not anything was found) or SG_ERR_TEMP with REASON. */
void directory_set_search(struct directory *d,
                          enum sg_status (*search)(void *arg,
                                                   const char *filter,
                                                   struct directory_found *f,
                                                   char *reason, size_t rlen),
                          void *arg);

/* FMT (an ldap_filter, one %s) with ADDR escaped per RFC 4515 (* ( ) \
 * NUL and bytes >= 0x80 as \XX) into OUT.  -1 when ADDR is refused (see
 * directory_lookup) or OUT is too small. */
int directory_filter(const char *fmt, const char *addr, char *out,
                     size_t outlen);

#endif /* SG_DIRECTORY_H */
