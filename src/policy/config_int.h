/*
 * config_int.h - the configuration parser's insides, shared by the files
 * that parse its sections (config.c: global, [listener], [profile],
 * [route], [quarantine]; config_policy.c: [policy]; config_flow.c:
 * [flow]).  Not for other layers: they use config.h.
 */
#ifndef SG_CONFIG_INT_H
#define SG_CONFIG_INT_H

#include "policy/config.h"

enum section {
	SEC_GLOBAL,
	SEC_LISTENER,
	SEC_PROFILE,
	SEC_ROUTE,
	SEC_QUARANTINE,
	SEC_POLICY,
	SEC_FLOW
};

struct parser {
	const char *path;
	unsigned line;
	struct cfg *cfg;
	enum section sec;
	struct cfg_listener *l; /* current section's object */
	struct cfg_profile *p;
	struct cfg_route *r;
	struct cfg_quarantine *q;
	void *obj;         /* the [policy] or [flow] being read */
	char seen[64][48]; /* keys seen in the current section */
	unsigned nseen;
	char *err;
	size_t errlen;
};

/* Records "FILE:LINE: reason" (or "FILE: reason") and returns -1. */
int cfg_fail(struct parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* S without leading and trailing white space (in place). */
char *cfg_trim(char *s);
/* Setters: parse V into *DST or cfg_fail with the reason; 0 or -1. */
int cfg_set_str(struct parser *ps, char **dst, const char *v);
int cfg_set_size(struct parser *ps, size_t *dst, const char *v, size_t min,
                 size_t max);
int cfg_set_uint(struct parser *ps, unsigned *dst, const char *v, unsigned min,
                 unsigned max);
int cfg_set_duration(struct parser *ps, unsigned *dst, const char *v,
                     unsigned min, unsigned max);
int cfg_set_bool(struct parser *ps, int *dst, const char *v, const char *yes,
                 const char *no);
/* One of NAMES (any case): *OUT = BASE + its index; else cfg_fail. */
int cfg_keyword(struct parser *ps, const char *v, const char *const *names,
                int base, int *out);
/* "192.0.2.0/24", "2001:db8::/32", "192.0.2.1": 0 or -1. */
int cfg_parse_net(const char *s, struct cfg_net *n);
/* A comma- or space-separated list: NULL-terminated, *COUNT items. */
char **cfg_split(const char *v, size_t *count);
void cfg_strv_free(char **v);
/* Whether S is a section name: letters, digits, . _ - */
int cfg_name_ok(const char *s);

/* Loads the filter file PATH into *OUT and checks that the profiles and
 * quarantines it names exist; else cfg_fail-style error with the filter
 * file's own FILE:LINE.  0 or -1. */
struct filter_set;
int cfg_load_filters(struct parser *ps, const char *path,
                     struct filter_set **out);

/* [policy NAME] (config_policy.c) and [flow NAME] (config_flow.c): a new
 * section, one key of it, the checks when the file is read (cross
 * references, loading content filter files), and freeing. */
int cfg_policy_section(struct parser *ps, const char *name);
int cfg_policy_key(struct parser *ps, const char *k, const char *v);
int cfg_policy_finish(struct parser *ps);
void cfg_policy_free(struct cfg *c);
int cfg_flow_section(struct parser *ps, const char *name);
int cfg_flow_key(struct parser *ps, const char *k, const char *v);
int cfg_flow_finish(struct parser *ps);
void cfg_flow_free(struct cfg *c);
/* The global ldap_* keys (config_ldap.c). */
int cfg_ldap_key(struct parser *ps, const char *k, const char *v);
int cfg_ldap_finish(struct parser *ps);
void cfg_ldap_free(struct cfg *c);

/* The global revocation* and crl_* keys (config_revocation.c), and
 * `revocation_unknown = soft | hard` of [flow] and [profile]. */
int cfg_revocation_key(struct parser *ps, const char *k, const char *v);
int cfg_revocation_unknown(struct parser *ps, int *dst, const char *v);
void cfg_revocation_defaults(struct cfg *c);
int cfg_revocation_finish(struct parser *ps);
void cfg_revocation_free(struct cfg *c);

/* tls_ca_file and tls_fingerprint of a next hop (config_tls.c): V into
 * PEER (the CA file is read at once, so errors carry its line); the
 * checks when the file is read (WHAT names the section in errors; a pin
 * makes TLS required unless a mode was given, which must then be
 * "required"); freeing. */
int cfg_peer_ca_file(struct parser *ps, struct cfg_peer *peer, const char *v);
int cfg_peer_pins(struct parser *ps, struct cfg_peer *peer, const char *v);
int cfg_peer_finish(struct parser *ps, struct cfg_peer *peer, enum cfg_tls *tls,
                    const char *what);
void cfg_peer_free(struct cfg_peer *peer);

#endif /* SG_CONFIG_INT_H */
