/*
 * config.h - the gateway's configuration: one INI-style file, parsed by a
 * small hand parser that reports errors as FILE:LINE: reason
 * (docs/config.md).  A struct cfg is immutable once loaded; a reload makes
 * a new one and swaps it in whole.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "smimegate.h"

/* A client network: address and prefix length. */
struct cfg_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

enum cfg_role { CFG_OUTGOING = 1, CFG_INCOMING };

/* STARTTLS on a listener (key "tls").  AUTO (0, "not set") means offer
 * when tls_cert is given, none otherwise; REQUIRED refuses MAIL before
 * STARTTLS. */
enum cfg_starttls {
	CFG_STARTTLS_AUTO = 0,
	CFG_STARTTLS_NONE,
	CFG_STARTTLS_OFFER,
	CFG_STARTTLS_REQUIRED
};
/* SMTP AUTH on a listener (key "auth"): PLAIN, and only over TLS. */
enum cfg_auth { CFG_AUTH_NONE = 0, CFG_AUTH_PLAIN };

struct cfg_listener {
	char *name; /* [listener NAME] */
	char *host; /* "127.0.0.1", "::1", "0.0.0.0" */
	int port;
	enum cfg_role role;
	struct cfg_net *relay_from; /* clients allowed to relay */
	size_t nrelay_from;         /* default: loopback only */
	char **local_domains;       /* incoming: domains we accept mail for
	                             * from anyone (NULL-terminated) */
	char *profile;              /* outgoing: sending profile name */
	int remove_signature;       /* incoming: 0 keep, 1 remove */
	/* STARTTLS and SMTP AUTH (docs/config.md).  cfg_load checks that
	 * the pair of files is complete and that AUTH has TLS under it;
	 * only the daemon's TLS setup reads the files. */
	char *tls_cert;             /* PEM certificate (chain), or NULL */
	char *tls_key;              /* PEM private key, or NULL */
	enum cfg_starttls starttls; /* see cfg_listener_starttls */
	enum cfg_auth auth;         /* CFG_AUTH_NONE unless set */
	char *auth_users;           /* auth = plain: "user:crypt-hash" */
};

/* The listener's STARTTLS mode, with AUTO resolved: OFFER when it has a
 * certificate, else NONE. */
enum cfg_starttls cfg_listener_starttls(const struct cfg_listener *l);

enum cfg_tls { CFG_TLS_OPPORTUNISTIC = 1, CFG_TLS_REQUIRED, CFG_TLS_NONE };

/* How a next hop's certificate is checked beyond its TLS mode
 * (config_tls.c): a [route]'s tls_ca_file and tls_fingerprint, or the
 * smarthost's smarthost_tls_ca_file and smarthost_tls_fingerprint. */
struct x509_store_st;
struct cfg_peer {
	char *ca_file;             /* the anchors, or NULL: the system's */
	struct x509_store_st *ca;  /* its certificates, read with the file */
	unsigned char (*pins)[32]; /* SHA-256 of the certificate or of its
	                            * SubjectPublicKeyInfo; any one matches */
	size_t npins;
	int tls_set; /* the TLS mode was given, not defaulted */
};

/* A next hop for some recipient domains: [route NAME]. */
struct cfg_route {
	char *name;
	char **domains;   /* NULL-terminated, lowercased */
	char *nexthop;    /* "host:port", or "mx" / "mx:PORT" */
	unsigned mx_port; /* nexthop "mx[:PORT]": the recipient domain's MX
	                   * hosts on this port; 0: nexthop is a host */
	enum cfg_tls tls;
	struct cfg_peer peer;
};

enum cfg_mode { CFG_SIGN = 1, CFG_ENCRYPT, CFG_SIGN_ENCRYPT, CFG_TRIPLE };
enum cfg_missing {
	CFG_MISSING_BOUNCE = 1,
	CFG_MISSING_DROP,
	CFG_MISSING_SPLIT
};

struct cfg_profile {
	char *name; /* [profile NAME] */
	enum cfg_mode mode;
	char *signer; /* a certificate name, or NULL: by sender */
	int opaque;
	enum sg_digest digest;
	enum sg_cipher cipher;
	int oaep;
	enum cfg_missing missing_key;
	int revocation_unknown; /* recipients' certificates: -1 the global
	                         * revocation_unknown; 0 soft; 1 hard */
};

/* A named quarantine: [quarantine NAME] (docs/quarantine.md). */
enum cfg_expiry { CFG_EXPIRY_DELETE = 1, CFG_EXPIRY_RELEASE };
struct cfg_quarantine {
	char *name;
	unsigned retention;        /* seconds a message is kept */
	enum cfg_expiry at_expiry; /* then deleted or released */
};

struct filter_set;

/*
 * [flow NAME]: a mail flow policy (docs/config.md), matched in file order
 * when a client gives MAIL FROM: the first flow whose listeners, client
 * networks, HELO patterns and sender domains all match (an unset one
 * matches anything) decides.  No flow matches: the listener's own
 * settings apply (relay_from, local_domains, signature).
 */
enum cfg_flow_action { CFG_FLOW_ACCEPT = 1, CFG_FLOW_RELAY, CFG_FLOW_REJECT };
struct cfg_flow {
	char *name;
	char **listeners; /* listener names, NULL-terminated; NULL: all */
	unsigned listeners_line; /* where they were set, for errors */
	struct cfg_net *clients; /* client networks; NULL: any */
	size_t nclients;
	char **helo;           /* HELO patterns ("*.example.com"), NULL: any */
	char **sender_domains; /* envelope sender domains (lowercase; a
	                        * leading "." also matches subdomains), NULL:
	                        * any */
	enum cfg_flow_action action; /* accept: only to local_domains;
	                              * relay: anywhere; reject: 550 5.7.1 */
	int decrypt_verify;     /* incoming S/MIME decryption and verification:
	                         * 1 on (default), 0 off (delivered as is) */
	int remove_signature;   /* -1: the listener's setting; 0 keep; 1 remove
	                         * (for triple-wrapped mail, the inner one) */
	int harvest;            /* public key harvesting (issue 6): 0/1 */
	int harvest_on_failure; /* also when verification fails */
	int harvest_updated;    /* store updated certificates */
	int revocation_unknown; /* signers: -1 the global setting; 0 soft
	                         * (go on, say so); 1 hard (defer) */
};

/*
 * [policy NAME]: a mail policy (docs/config.md): a group of users matched
 * per recipient, first match in file order within its direction, with
 * its own sending profile and content filters.  Recipients of one message
 * that match different policies get separate copies.
 */
struct cfg_policy {
	char *name;
	enum cfg_role direction; /* outgoing or incoming */
	char *senders_text;      /* address patterns as written (a@b, @domain,
	                          * .domain, *.domain, /regex/, *), NULL: any */
	char *recipients_text;   /* the same for recipients */
	char *profile;           /* outgoing: the sending profile, NULL: the
	                          * listener's */
	char *content_filters_path;
	struct filter_set *content_filters; /* NULL: none */
	void *match; /* compiled patterns (config_policy.c) */
};

/* Directory lookup of recipients' certificates (global ldap_* keys,
 * docs/config.md; config_ldap.c).  NULL in struct cfg: none. */
struct cfg_ldap {
	char *uri;                /* "ldap://host:port" or "ldaps://..." */
	char *bind_dn;            /* NULL: anonymous */
	char *bind_password_file; /* the password, first line; 0600 */
	char *base;               /* search base */
	char *filter;             /* "(mail=%s)": %s the escaped address */
	int starttls;             /* 1: StartTLS required */
	unsigned timeout;         /* seconds, per operation */
	unsigned cache_ttl;       /* seconds a found certificate is kept */
	unsigned negative_ttl;    /* seconds a "none" answer is kept */
	unsigned retry_after;     /* seconds no attempt is made after the
	                           * server was found down (0: always try) */
	char *ca_file;            /* CA bundle for the server's certificate
	                           * (StartTLS, ldaps://), or NULL: libldap's */
};

/* Whether two directory settings are the same (both NULL: yes): a reload
 * that keeps them keeps the connection and the cache. */
int cfg_ldap_equal(const struct cfg_ldap *a, const struct cfg_ldap *b);

/* Revocation checking (global revocation* and crl_* keys,
 * docs/config.md; config_revocation.c). */
struct cfg_revocation {
	int enabled;      /* revocation = on (default) | off */
	int ocsp;         /* ask the AIA's OCSP responder (on) */
	int fetch_crl;    /* fetch CRL distribution points (on) */
	int hard_fail;    /* revocation_unknown: 0 soft (default), 1 hard */
	char **crl_files; /* NULL-terminated, or NULL */
	unsigned crl_files_line;
	unsigned timeout;     /* seconds per HTTP exchange (5) */
	unsigned crl_refresh; /* seconds a fetched CRL is kept (3600) */
	size_t max_crl_size;
	char *proxy;                   /* "http://host:port", or NULL */
	struct sg_revocation *checker; /* built at load; NULL when off */
};

struct cfg {
	char *path; /* the file it came from */
	char *hostname;
	char *store_path, *keyfile;
	char *spool_dir;
	char *outbox;               /* maildir used when no smarthost is set */
	char *smarthost;            /* "host:port", "mx[:PORT]" or NULL */
	unsigned smarthost_mx_port; /* as cfg_route.mx_port */
	enum cfg_tls smarthost_tls;
	struct cfg_peer smarthost_peer;
	struct sockaddr_in dns_server; /* AF_INET: the DNS for MX lookups,
	                                * else (0) the system's resolver */
	char *notify_signer;     /* certificate that signs notifications, or
	                          * NULL: unsigned (seed 000) */
	char *postmaster;        /* DSN From: */
	char *log;               /* "stderr" or "syslog" */
	char *metrics;           /* "127.0.0.1:9125" or NULL */
	size_t max_message;      /* bytes */
	unsigned max_recipients; /* per message */
	unsigned max_line;       /* octets per line in DATA, without CRLF */
	unsigned max_sessions;   /* concurrent SMTP sessions */
	unsigned max_client_sessions; /* ... from one client outside
	                               * relay_from (an IPv6 /64) */
	unsigned command_timeout;     /* seconds */
	unsigned data_timeout;        /* seconds for the whole DATA */
	unsigned queue_lifetime;      /* seconds */
	unsigned retry_min;           /* first retry delay, seconds */
	unsigned retry_max;           /* the delay doubles up to this */
	unsigned workers;             /* 0: the number of cores */
	struct cfg_listener *listeners;
	size_t nlisteners;
	struct cfg_profile *profiles;
	size_t nprofiles;
	struct cfg_route *routes;
	size_t nroutes;
	struct cfg_quarantine *quarantines; /* "Policy" always exists */
	size_t nquarantines;
	/* Our certificates alert this many seconds before their notAfter
	 * (0: never), checked every alert_cert_expiry_check seconds. */
	unsigned alert_cert_expiry, alert_cert_expiry_check;
	char *alert_to;             /* alerts are mailed here, or NULL */
	size_t harvest_max_size;    /* bytes of harvested certificates */
	char *message_filters_path; /* message_filters = FILE */
	char *user; /* the daemon drops root to this user, or NULL */
	struct filter_set *message_filters; /* loaded from it, or NULL */
	struct cfg_flow *flows;
	size_t nflows;
	struct cfg_policy *policies;
	size_t npolicies;
	struct cfg_ldap *ldap; /* NULL: no directory */
	struct cfg_revocation revocation;
};

/* Whether an unknown status fails, for a [flow] or [profile] SETTING
 * (-1: the global revocation_unknown). */
int cfg_revocation_hard(const struct cfg *cfg, int setting);

/* The first flow of listener LISTENER matching the client SA, its HELO
 * and the sender's domain (NULL for the null sender), or NULL. */
const struct cfg_flow *cfg_flow_match(const struct cfg *cfg,
                                      const char *listener,
                                      const struct sockaddr *sa,
                                      const char *helo,
                                      const char *sender_domain);
/* A flow by name, or NULL. */
const struct cfg_flow *cfg_flow(const struct cfg *cfg, const char *name);

/* The first policy of DIRECTION matching SENDER and RECIPIENT (addresses,
 * "" for the null sender), or NULL (the default: the listener's
 * settings). */
const struct cfg_policy *cfg_policy_match(const struct cfg *cfg,
                                          enum cfg_role direction,
                                          const char *sender,
                                          const char *recipient);
const struct cfg_policy *cfg_policy(const struct cfg *cfg, const char *name);

/* The quarantine NAME (case-sensitive), or NULL. */
const struct cfg_quarantine *cfg_quarantine(const struct cfg *cfg,
                                            const char *name);

/* The route for recipient DOMAIN (any case), or NULL: the smarthost. */
const struct cfg_route *cfg_route_for(const struct cfg *cfg,
                                      const char *domain);

/* Loads and checks PATH.  On failure *ERR gets "FILE:LINE: reason" (or
 * "FILE: reason") and SG_ERR_USAGE (bad content) or SG_ERR_IO. */
enum sg_status cfg_load(const char *path, struct cfg **out, char *err,
                        size_t errlen);
void cfg_free(struct cfg *cfg);

/* Finds a listener or profile by name; NULL when absent. */
const struct cfg_listener *cfg_listener(const struct cfg *cfg,
                                        const char *name);
const struct cfg_profile *cfg_profile(const struct cfg *cfg, const char *name);

/* Whether the client address SA is in the listener's relay_from. */
int cfg_may_relay(const struct cfg_listener *l, const struct sockaddr *sa);
/* Whether DOMAIN is one of the listener's local_domains (any case). */
int cfg_is_local_domain(const struct cfg_listener *l, const char *domain);

/* The documented demo configuration (make run), for DIR. Caller frees. */
char *cfg_demo_text(const char *dir);

#endif /* SG_CONFIG_H */
