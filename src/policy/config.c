/*
 * config.c - the configuration file: a small INI-style hand parser with
 * FILE:LINE errors (docs/config.md), defaults that are safe (relay from
 * loopback only), and the checks that make a loaded struct cfg usable
 * as it is.
 */
#include "policy/config.h"
#include "policy/config_int.h"
#include "policy/filter.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_LINE  4096
#define MAX_LINES 100000

int
cfg_fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = ps->line
	        ? snprintf(ps->err, ps->errlen, "%s:%u: ", ps->path, ps->line)
	        : snprintf(ps->err, ps->errlen, "%s: ", ps->path);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

char *
cfg_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
cfg_set_str(struct parser *ps, char **dst, const char *v)
{
	char *c;

	if (*v == '\0')
		return cfg_fail(ps, "empty value");
	if ((c = strdup(v)) == NULL)
		return cfg_fail(ps, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

/* "50M", "10K", "1G", "1024" -> bytes. */
int
cfg_set_size(struct parser *ps, size_t *dst, const char *v, size_t min,
             size_t max)
{
	char *end;
	unsigned long long n, mul = 1;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (end == v || errno)
		return cfg_fail(ps, "\"%s\" is not a size (like 50M)", v);
	switch (toupper((unsigned char)*end)) {
	case 'K':
		mul = 1024ULL;
		end++;
		break;
	case 'M':
		mul = 1024ULL * 1024;
		end++;
		break;
	case 'G':
		mul = 1024ULL * 1024 * 1024;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0' || n > max / mul || n * mul < min)
		return cfg_fail(ps, "\"%s\": a size from %zu to %zu bytes", v,
		                min, max);
	*dst = (size_t)(n * mul);
	return 0;
}

int
cfg_set_uint(struct parser *ps, unsigned *dst, const char *v, unsigned min,
             unsigned max)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (end == v || *end != '\0' || errno || n < min || n > max)
		return cfg_fail(ps, "\"%s\": a number from %u to %u", v, min,
		                max);
	*dst = (unsigned)n;
	return 0;
}

/* "30s", "10m", "2h", "5d", or seconds. */
int
cfg_set_duration(struct parser *ps, unsigned *dst, const char *v, unsigned min,
                 unsigned max)
{
	char *end;
	unsigned long n, mul = 1;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (end == v || errno)
		return cfg_fail(
		    ps, "\"%s\" is not a duration (like 30s, 5m, 5d)", v);
	switch (*end) {
	case 's':
		end++;
		break;
	case 'm':
		mul = 60;
		end++;
		break;
	case 'h':
		mul = 3600;
		end++;
		break;
	case 'd':
		mul = 86400;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0' || n > max / mul || n * mul < min)
		return cfg_fail(ps, "\"%s\": a duration from %us to %us", v,
		                min, max);
	*dst = (unsigned)(n * mul);
	return 0;
}

int
cfg_set_bool(struct parser *ps, int *dst, const char *v, const char *yes,
             const char *no)
{
	if (strcasecmp(v, yes) == 0)
		*dst = 1;
	else if (strcasecmp(v, no) == 0)
		*dst = 0;
	else
		return cfg_fail(ps, "\"%s\": %s or %s", v, yes, no);
	return 0;
}

/* Parses "host:port", "[v6]:port"; HOST may be NULL to only check. */
static int
parse_hostport(const char *v, char **host, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t hlen;

	if (*v == '[') {
		const char *rb = strchr(v, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		colon = rb + 1;
		v++;
		hlen = (size_t)(rb - v);
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			return -1;
		hlen = (size_t)(colon - v);
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (hlen == 0 || *end != '\0' || errno || p < 1 || p > 65535)
		return -1;
	if (host != NULL && (*host = strndup(v, hlen)) == NULL)
		return -1;
	*port = (int)p;
	return 0;
}

/* Whether NEXTHOP (a smarthost or a route's nexthop) is "mx" or
 * "mx:PORT": the recipient domain's MX hosts, on *PORT (25).  "[mx]:25"
 * is a host called mx. */
static int
nexthop_mx(const char *nexthop, unsigned *port)
{
	int p = 25;
	char *host = NULL;

	*port = 0;
	if (strcasecmp(nexthop, "mx") != 0) {
		if (strncasecmp(nexthop, "mx:", 3) != 0 ||
		    parse_hostport(nexthop, &host, &p) == -1)
			return 0;
		free(host);
	}
	*port = (unsigned)p;
	return 1;
}

int
cfg_parse_net(const char *s, struct cfg_net *n)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long prefix;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	memset(n, 0, sizeof(*n));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		n->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		n->prefix = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		errno = 0;
		prefix = strtol(slash, &end, 10);
		if (*end != '\0' || errno || prefix < 0 ||
		    prefix > (long)n->prefix)
			return -1;
		n->prefix = (unsigned)prefix;
	}
	return 0;
}

void
cfg_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* "a, b, c" -> a NULL-terminated list of trimmed, non-empty items. */
char **
cfg_split(const char *v, size_t *count)
{
	size_t n = 1, k = 0;
	char *copy = strdup(v), *save = NULL, *tok;
	char **out;

	for (const char *c = v; *c; c++)
		n += *c == ',' || *c == ' ';
	if (copy == NULL || (out = calloc(n + 1, sizeof(*out))) == NULL) {
		free(copy);
		return NULL;
	}
	for (tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save))
		if ((out[k] = strdup(tok)) != NULL)
			k++;
	free(copy);
	*count = k;
	return out;
}

static int
set_relay_from(struct parser *ps, struct cfg_listener *l, const char *v)
{
	size_t n = 0;
	char **items = cfg_split(v, &n);
	struct cfg_net *nets;

	if (items == NULL)
		return cfg_fail(ps, "out of memory");
	if ((nets = calloc(n ? n : 1, sizeof(*nets))) == NULL) {
		cfg_strv_free(items);
		return cfg_fail(ps, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (cfg_parse_net(items[i], &nets[i]) == -1) {
			cfg_fail(ps,
			         "\"%s\" is not a network (like 192.0.2.0/24)",
			         items[i]);
			cfg_strv_free(items);
			free(nets);
			return -1;
		}
	cfg_strv_free(items);
	free(l->relay_from);
	l->relay_from = nets;
	l->nrelay_from = n;
	return 0;
}

int
cfg_keyword(struct parser *ps, const char *v, const char *const *names,
            int base, int *out)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcasecmp(v, names[i]) == 0) {
			*out = base + i;
			return 0;
		}
	char list[256] = "";
	for (int i = 0; names[i] != NULL; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		         "%s%s", i ? ", " : "", names[i]);
	return cfg_fail(ps, "\"%s\": one of %s", v, list);
}

static int
set_tls(struct parser *ps, enum cfg_tls *dst, const char *v)
{
	static const char *const modes[] = {"opportunistic", "required", "none",
	                                    NULL};
	int x;

	if (cfg_keyword(ps, v, modes, CFG_TLS_OPPORTUNISTIC, &x) == -1)
		return -1;
	*dst = (enum cfg_tls)x;
	return 0;
}

static int
global_key(struct parser *ps, const char *k, const char *v)
{
	struct cfg *c = ps->cfg;

	if (strcmp(k, "smarthost_tls") == 0) {
		c->smarthost_peer.tls_set = 1;
		return set_tls(ps, &c->smarthost_tls, v);
	}
	if (strcmp(k, "dns_server") == 0) {
		char *host = NULL;
		int port;
		struct sockaddr_in *a = &c->dns_server;
		if (parse_hostport(v, &host, &port) == -1 ||
		    inet_pton(AF_INET, host, &a->sin_addr) != 1) {
			free(host);
			return cfg_fail(
			    ps,
			    "dns_server wants IPv4-address:port, not "
			    "\"%s\"",
			    v);
		}
		free(host);
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (strcmp(k, "smarthost_tls_ca_file") == 0)
		return cfg_peer_ca_file(ps, &c->smarthost_peer, v);
	if (strcmp(k, "smarthost_tls_fingerprint") == 0)
		return cfg_peer_pins(ps, &c->smarthost_peer, v);
	if (strcmp(k, "notify_signer") == 0)
		return cfg_set_str(ps, &c->notify_signer, v);

	if (strcmp(k, "hostname") == 0)
		return cfg_set_str(ps, &c->hostname, v);
	if (strcmp(k, "user") == 0) {
		struct passwd *pw;

		errno = 0;
		if ((pw = getpwnam(v)) == NULL)
			return cfg_fail(ps, "user \"%s\": %s", v,
			                errno ? strerror(errno)
			                      : "no such user");
		if (pw->pw_uid == 0)
			return cfg_fail(ps,
			                "user \"%s\" is root: name the "
			                "unprivileged user the daemon runs as",
			                v);
		return cfg_set_str(ps, &c->user, v);
	}
	if (strcmp(k, "store") == 0)
		return cfg_set_str(ps, &c->store_path, v);
	if (strcmp(k, "keyfile") == 0)
		return cfg_set_str(ps, &c->keyfile, v);
	if (strcmp(k, "spool") == 0)
		return cfg_set_str(ps, &c->spool_dir, v);
	if (strcmp(k, "outbox") == 0)
		return cfg_set_str(ps, &c->outbox, v);
	if (strcmp(k, "smarthost") == 0) {
		int port;
		if (!nexthop_mx(v, &c->smarthost_mx_port) &&
		    parse_hostport(v, NULL, &port) == -1)
			return cfg_fail(ps,
			                "smarthost wants host:port or mx, not "
			                "\"%s\"",
			                v);
		return cfg_set_str(ps, &c->smarthost, v);
	}
	if (strcmp(k, "postmaster") == 0) {
		if (strchr(v, '@') == NULL)
			return cfg_fail(ps, "postmaster wants an address");
		return cfg_set_str(ps, &c->postmaster, v);
	}
	if (strcmp(k, "log") == 0) {
		if (strcmp(v, "stderr") && strcmp(v, "syslog"))
			return cfg_fail(ps, "log: stderr or syslog");
		return cfg_set_str(ps, &c->log, v);
	}
	if (strcmp(k, "metrics") == 0) {
		int port;
		if (parse_hostport(v, NULL, &port) == -1)
			return cfg_fail(ps, "metrics wants host:port");
		return cfg_set_str(ps, &c->metrics, v);
	}
	if (strcmp(k, "max_message_size") == 0)
		return cfg_set_size(ps, &c->max_message, v, 1024,
		                    (size_t)1 << 30);
	if (strcmp(k, "max_recipients") == 0)
		return cfg_set_uint(ps, &c->max_recipients, v, 1, 100000);
	if (strcmp(k, "max_line_length") == 0)
		return cfg_set_uint(ps, &c->max_line, v, 998, 1000000);
	if (strcmp(k, "max_sessions") == 0)
		return cfg_set_uint(ps, &c->max_sessions, v, 1, 100000);
	if (strcmp(k, "max_sessions_per_client") == 0)
		return cfg_set_uint(ps, &c->max_client_sessions, v, 1, 100000);
	if (strcmp(k, "command_timeout") == 0)
		return cfg_set_duration(ps, &c->command_timeout, v, 1, 3600);
	if (strcmp(k, "data_timeout") == 0)
		return cfg_set_duration(ps, &c->data_timeout, v, 1, 86400);
	if (strcmp(k, "queue_lifetime") == 0)
		return cfg_set_duration(ps, &c->queue_lifetime, v, 60,
		                        365 * 86400);
	if (strcmp(k, "retry_min") == 0)
		return cfg_set_duration(ps, &c->retry_min, v, 1, 86400);
	if (strcmp(k, "retry_max") == 0)
		return cfg_set_duration(ps, &c->retry_max, v, 1, 7 * 86400);
	if (strcmp(k, "workers") == 0)
		return cfg_set_uint(ps, &c->workers, v, 0, 256);
	if (strcmp(k, "alert_to") == 0) {
		if (strchr(v, '@') == NULL || strpbrk(v, " \t<>\"") != NULL)
			return cfg_fail(ps, "alert_to wants an address");
		return cfg_set_str(ps, &c->alert_to, v);
	}
	if (strcmp(k, "alert_cert_expiry") == 0)
		return cfg_set_duration(ps, &c->alert_cert_expiry, v, 0,
		                        3650 * 86400u);
	if (strcmp(k, "alert_cert_expiry_check") == 0)
		return cfg_set_duration(ps, &c->alert_cert_expiry_check, v, 1,
		                        30 * 86400);
	if (strcmp(k, "harvest_max_size") == 0)
		return cfg_set_size(ps, &c->harvest_max_size, v, 1024,
		                    (size_t)1 << 40);
	if (strncmp(k, "ldap_", 5) == 0)
		return cfg_ldap_key(ps, k, v);
	if (strncmp(k, "revocation", 10) == 0 || strcmp(k, "crl_files") == 0)
		return cfg_revocation_key(ps, k, v);
	if (strcmp(k, "message_filters") == 0)
		return cfg_set_str(ps, &c->message_filters_path, v);
	return cfg_fail(ps, "unknown setting \"%s\"", k);
}

static int
listener_key(struct parser *ps, const char *k, const char *v)
{
	static const char *const roles[] = {"outgoing", "incoming", NULL};
	struct cfg_listener *l = ps->l;
	int role, x;

	if (strcmp(k, "listen") == 0) {
		free(l->host);
		l->host = NULL;
		unsigned char a[16];
		if (parse_hostport(v, &l->host, &l->port) == -1 ||
		    (inet_pton(AF_INET, l->host, a) != 1 &&
		     inet_pton(AF_INET6, l->host, a) != 1))
			return cfg_fail(
			    ps,
			    "listen wants a numeric address:port "
			    "(like 127.0.0.1:2525 or [::1]:2525; no "
			    "DNS at start-up), not \"%s\"",
			    v);
		return 0;
	}
	if (strcmp(k, "role") == 0) {
		if (cfg_keyword(ps, v, roles, CFG_OUTGOING, &role) == -1)
			return -1;
		l->role = (enum cfg_role)role;
		return 0;
	}
	if (strcmp(k, "relay_from") == 0)
		return set_relay_from(ps, l, v);
	if (strcmp(k, "local_domains") == 0) {
		size_t n;
		char **d = cfg_split(v, &n);
		if (d == NULL)
			return cfg_fail(ps, "out of memory");
		for (size_t i = 0; i < n; i++)
			for (char *c = d[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		cfg_strv_free(l->local_domains);
		l->local_domains = d;
		return 0;
	}
	if (strcmp(k, "profile") == 0)
		return cfg_set_str(ps, &l->profile, v);
	if (strcmp(k, "signature") == 0)
		return cfg_set_bool(ps, &l->remove_signature, v, "remove",
		                    "keep");
	if (strcmp(k, "tls_cert") == 0)
		return cfg_set_str(ps, &l->tls_cert, v);
	if (strcmp(k, "tls_key") == 0)
		return cfg_set_str(ps, &l->tls_key, v);
	if (strcmp(k, "tls") == 0) {
		static const char *const modes[] = {"none", "offer", "required",
		                                    NULL};
		if (cfg_keyword(ps, v, modes, CFG_STARTTLS_NONE, &x) == -1)
			return -1;
		l->starttls = (enum cfg_starttls)x;
		return 0;
	}
	if (strcmp(k, "auth") == 0) {
		static const char *const auths[] = {"none", "plain", NULL};
		if (cfg_keyword(ps, v, auths, CFG_AUTH_NONE, &x) == -1)
			return -1;
		l->auth = (enum cfg_auth)x;
		return 0;
	}
	if (strcmp(k, "auth_users") == 0)
		return cfg_set_str(ps, &l->auth_users, v);
	return cfg_fail(ps, "unknown setting \"%s\" in [listener %s]", k,
	                l->name);
}

static int
profile_key(struct parser *ps, const char *k, const char *v)
{
	static const char *const modes[] = {"sign", "encrypt", "sign-encrypt",
	                                    "triple", NULL};
	static const char *const digests[] = {"sha256", "sha384", "sha512",
	                                      NULL};
	static const char *const ciphers[] = {
	    "aes-256-cbc", "aes-128-cbc", "aes-128-gcm", "aes-256-gcm", NULL};
	static const char *const missing[] = {"bounce", "drop", "split", NULL};
	struct cfg_profile *p = ps->p;
	int x;

	if (strcmp(k, "mode") == 0) {
		if (cfg_keyword(ps, v, modes, CFG_SIGN, &x) == -1)
			return -1;
		p->mode = (enum cfg_mode)x;
	} else if (strcmp(k, "signer") == 0) {
		if (strcmp(v, "auto") == 0) {
			free(p->signer);
			p->signer = NULL;
			return 0;
		}
		return cfg_set_str(ps, &p->signer, v);
	} else if (strcmp(k, "form") == 0) {
		return cfg_set_bool(ps, &p->opaque, v, "opaque", "detached");
	} else if (strcmp(k, "digest") == 0) {
		if (cfg_keyword(ps, v, digests, SG_DIGEST_SHA256, &x) == -1)
			return -1;
		p->digest = (enum sg_digest)x;
	} else if (strcmp(k, "cipher") == 0) {
		if (cfg_keyword(ps, v, ciphers, SG_CIPHER_AES256_CBC, &x) == -1)
			return -1;
		p->cipher = (enum sg_cipher)x;
	} else if (strcmp(k, "key_transport") == 0) {
		return cfg_set_bool(ps, &p->oaep, v, "oaep", "pkcs1");
	} else if (strcmp(k, "missing_key") == 0) {
		if (cfg_keyword(ps, v, missing, CFG_MISSING_BOUNCE, &x) == -1)
			return -1;
		p->missing_key = (enum cfg_missing)x;
	} else if (strcmp(k, "revocation_unknown") == 0) {
		return cfg_revocation_unknown(ps, &p->revocation_unknown, v);
	} else {
		return cfg_fail(ps, "unknown setting \"%s\" in [profile %s]", k,
		                p->name);
	}
	return 0;
}

static int
route_key(struct parser *ps, const char *k, const char *v)
{
	struct cfg_route *r = ps->r;
	int port;

	if (strcmp(k, "domains") == 0) {
		size_t n;
		char **d = cfg_split(v, &n);
		if (d == NULL || n == 0) {
			cfg_strv_free(d);
			return cfg_fail(ps,
			                "domains wants one or more domains");
		}
		for (size_t i = 0; i < n; i++)
			for (char *c = d[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		cfg_strv_free(r->domains);
		r->domains = d;
		return 0;
	}
	if (strcmp(k, "nexthop") == 0) {
		if (!nexthop_mx(v, &r->mx_port) &&
		    parse_hostport(v, NULL, &port) == -1)
			return cfg_fail(
			    ps, "nexthop wants host:port or mx, not \"%s\"", v);
		return cfg_set_str(ps, &r->nexthop, v);
	}
	if (strcmp(k, "tls") == 0) {
		r->peer.tls_set = 1;
		return set_tls(ps, &r->tls, v);
	}
	if (strcmp(k, "tls_ca_file") == 0)
		return cfg_peer_ca_file(ps, &r->peer, v);
	if (strcmp(k, "tls_fingerprint") == 0)
		return cfg_peer_pins(ps, &r->peer, v);
	return cfg_fail(ps, "unknown setting \"%s\" in [route %s]", k, r->name);
}

static int
quarantine_key(struct parser *ps, const char *k, const char *v)
{
	static const char *const expiry[] = {"delete", "release", NULL};
	struct cfg_quarantine *q = ps->q;
	int e;

	if (strcmp(k, "retention") == 0)
		return cfg_set_duration(ps, &q->retention, v, 1, 3650u * 86400);
	if (strcmp(k, "at_expiry") == 0) {
		if (cfg_keyword(ps, v, expiry, CFG_EXPIRY_DELETE, &e) == -1)
			return -1;
		q->at_expiry = (enum cfg_expiry)e;
		return 0;
	}
	return cfg_fail(ps, "unknown setting \"%s\" in [quarantine %s]", k,
	                q->name);
}

/* A new quarantine NAME (not there yet), or NULL on failure. */
static struct cfg_quarantine *
add_quarantine(struct parser *ps, const char *name)
{
	struct cfg *c = ps->cfg;
	struct cfg_quarantine *grown, *q;

	if (c->nquarantines >= 64 ||
	    (grown = realloc(c->quarantines, (c->nquarantines + 1) *
	                                         sizeof(*c->quarantines))) ==
	        NULL) {
		cfg_fail(ps, "too many quarantines");
		return NULL;
	}
	c->quarantines = grown;
	q = &c->quarantines[c->nquarantines];
	memset(q, 0, sizeof(*q));
	q->retention = 30 * 86400;
	q->at_expiry = CFG_EXPIRY_DELETE;
	if ((q->name = strdup(name)) == NULL) {
		cfg_fail(ps, "out of memory");
		return NULL;
	}
	c->nquarantines++;
	return q;
}

int
cfg_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

/* "[listener NAME]" / "[profile NAME]". */
static int
section(struct parser *ps, char *s)
{
	struct cfg *c = ps->cfg;
	char *end = strchr(s, ']'), *kind, *name;
	void *grown;

	if (end == NULL || cfg_trim(end + 1)[0] != '\0')
		return cfg_fail(ps, "a section is [listener NAME] or [profile "
		                    "NAME]");
	*end = '\0';
	kind = cfg_trim(s + 1);
	if ((name = strpbrk(kind, " \t")) == NULL)
		return cfg_fail(ps, "section [%s] needs a name", kind);
	*name++ = '\0';
	name = cfg_trim(name);
	if (!cfg_name_ok(name))
		return cfg_fail(ps, "\"%s\": names are letters, digits, . _ -",
		                name);
	ps->nseen = 0;
	if (strcmp(kind, "listener") == 0) {
		if (name[0] == '_')
			return cfg_fail(ps,
			                "listener names starting with _ are "
			                "reserved");
		if (cfg_listener(c, name) != NULL)
			return cfg_fail(ps, "[listener %s] appears twice",
			                name);
		if (c->nlisteners >= 64 ||
		    (grown = realloc(c->listeners,
		                     (c->nlisteners + 1) *
		                         sizeof(*c->listeners))) == NULL)
			return cfg_fail(ps, "too many listeners");
		c->listeners = grown;
		ps->l = &c->listeners[c->nlisteners++];
		memset(ps->l, 0, sizeof(*ps->l));
		ps->sec = SEC_LISTENER;
		return (ps->l->name = strdup(name))
		           ? 0
		           : cfg_fail(ps, "out of memory");
	}
	if (strcmp(kind, "profile") == 0) {
		if (cfg_profile(c, name) != NULL)
			return cfg_fail(ps, "[profile %s] appears twice", name);
		if (c->nprofiles >= 256 ||
		    (grown = realloc(c->profiles, (c->nprofiles + 1) *
		                                      sizeof(*c->profiles))) ==
		        NULL)
			return cfg_fail(ps, "too many profiles");
		c->profiles = grown;
		ps->p = &c->profiles[c->nprofiles++];
		memset(ps->p, 0, sizeof(*ps->p));
		ps->p->mode = CFG_SIGN;
		ps->p->missing_key = CFG_MISSING_SPLIT;
		ps->p->revocation_unknown = -1;
		ps->sec = SEC_PROFILE;
		return (ps->p->name = strdup(name))
		           ? 0
		           : cfg_fail(ps, "out of memory");
	}
	if (strcmp(kind, "route") == 0) {
		for (size_t i = 0; i < c->nroutes; i++)
			if (strcmp(c->routes[i].name, name) == 0)
				return cfg_fail(ps, "[route %s] appears twice",
				                name);
		if (c->nroutes >= 1024 ||
		    (grown = realloc(c->routes,
		                     (c->nroutes + 1) * sizeof(*c->routes))) ==
		        NULL)
			return cfg_fail(ps, "too many routes");
		c->routes = grown;
		ps->r = &c->routes[c->nroutes++];
		memset(ps->r, 0, sizeof(*ps->r));
		ps->r->tls = CFG_TLS_OPPORTUNISTIC;
		ps->sec = SEC_ROUTE;
		return (ps->r->name = strdup(name))
		           ? 0
		           : cfg_fail(ps, "out of memory");
	}
	if (strcmp(kind, "policy") == 0) {
		ps->sec = SEC_POLICY;
		return cfg_policy_section(ps, name);
	}
	if (strcmp(kind, "flow") == 0) {
		ps->sec = SEC_FLOW;
		return cfg_flow_section(ps, name);
	}
	if (strcmp(kind, "quarantine") == 0) {
		if (cfg_quarantine(c, name) != NULL)
			return cfg_fail(ps, "[quarantine %s] appears twice",
			                name);
		if (strlen(name) > 64 || strchr(name, '.') != NULL)
			return cfg_fail(ps, "quarantine names are at most 64 "
			                    "letters, digits, _ and -");
		if ((ps->q = add_quarantine(ps, name)) == NULL)
			return -1;
		ps->sec = SEC_QUARANTINE;
		return 0;
	}
	return cfg_fail(ps,
	                "unknown section [%s] (listener, profile, route, "
	                "quarantine, policy, flow)",
	                kind);
}

static int
line(struct parser *ps, char *s)
{
	char *eq, *k, *v, *hash;

	/* A comment starts a line or follows white space. */
	for (hash = s; (hash = strchr(hash, '#')) != NULL; hash++)
		if (hash == s || isspace((unsigned char)hash[-1])) {
			*hash = '\0';
			break;
		}
	s = cfg_trim(s);
	if (*s == '\0' || *s == ';')
		return 0;
	if (*s == '[')
		return section(ps, s);
	if ((eq = strchr(s, '=')) == NULL)
		return cfg_fail(ps, "expected key = value");
	*eq = '\0';
	k = cfg_trim(s);
	v = cfg_trim(eq + 1);
	if (*k == '\0' || strlen(k) >= sizeof(ps->seen[0]))
		return cfg_fail(ps, "expected key = value");
	for (unsigned i = 0; i < ps->nseen; i++)
		if (strcmp(ps->seen[i], k) == 0)
			return cfg_fail(ps, "\"%s\" is set twice here", k);
	if (ps->nseen < sizeof(ps->seen) / sizeof(ps->seen[0]))
		strcpy(ps->seen[ps->nseen++], k);
	switch (ps->sec) {
	case SEC_LISTENER:
		return listener_key(ps, k, v);
	case SEC_PROFILE:
		return profile_key(ps, k, v);
	case SEC_ROUTE:
		return route_key(ps, k, v);
	case SEC_QUARANTINE:
		return quarantine_key(ps, k, v);
	case SEC_POLICY:
		return cfg_policy_key(ps, k, v);
	case SEC_FLOW:
		return cfg_flow_key(ps, k, v);
	default:
		return global_key(ps, k, v);
	}
}

static void
defaults(struct cfg *c)
{
	c->max_message = 50u << 20;
	c->max_recipients = 1000;
	c->max_line = 8192;
	c->max_sessions = 2000;
	c->max_client_sessions = 50;
	c->command_timeout = 300;
	c->data_timeout = 600;
	c->queue_lifetime = 5 * 86400;
	c->retry_min = 60;
	c->smarthost_tls = CFG_TLS_OPPORTUNISTIC;
	c->retry_max = 3600;
	c->harvest_max_size = (size_t)512 << 20; /* seed 002 */
	c->alert_cert_expiry = 30 * 86400;
	c->alert_cert_expiry_check = 12 * 3600;
	cfg_revocation_defaults(c);
}

static int
dup_default(struct parser *ps, char **dst, const char *v)
{
	if (*dst != NULL)
		return 0;
	return (*dst = strdup(v)) ? 0 : cfg_fail(ps, "out of memory");
}

/* STARTTLS and AUTH of one listener: the files come in pairs, and AUTH
 * needs TLS (it is never offered in clear).  The files themselves are
 * read by the daemon's TLS setup, at start and reload. */
static int
check_listener_tls(struct parser *ps, const struct cfg_listener *l)
{
	if ((l->tls_cert == NULL) != (l->tls_key == NULL))
		return cfg_fail(
		    ps,
		    "[listener %s] needs both tls_cert and tls_key, "
		    "or neither",
		    l->name);
	if (l->tls_cert == NULL && (l->starttls == CFG_STARTTLS_OFFER ||
	                            l->starttls == CFG_STARTTLS_REQUIRED))
		return cfg_fail(ps,
		                "[listener %s]: tls = %s needs tls_cert and "
		                "tls_key",
		                l->name,
		                l->starttls == CFG_STARTTLS_OFFER ? "offer"
		                                                  : "required");
	if (l->auth == CFG_AUTH_PLAIN && l->auth_users == NULL)
		return cfg_fail(ps,
		                "[listener %s]: auth = plain needs auth_users",
		                l->name);
	if (l->auth != CFG_AUTH_PLAIN && l->auth_users != NULL)
		return cfg_fail(
		    ps, "[listener %s]: auth_users without auth = plain",
		    l->name);
	if (l->auth == CFG_AUTH_PLAIN &&
	    cfg_listener_starttls(l) == CFG_STARTTLS_NONE)
		return cfg_fail(
		    ps,
		    "[listener %s]: auth = plain needs TLS (tls_cert, "
		    "tls_key): AUTH is never offered in clear",
		    l->name);
	return 0;
}

/* Whole-file checks and the remaining defaults. */
static int
profile_exists(void *arg, const char *name)
{
	return cfg_profile(arg, name) != NULL;
}

static int
quarantine_exists(void *arg, const char *name)
{
	return cfg_quarantine(arg, name) != NULL;
}

int
cfg_load_filters(struct parser *ps, const char *path, struct filter_set **out)
{
	struct cfg *c = ps->cfg;
	char ferr[512];

	if (filter_load_file(path, out, ferr, sizeof(ferr)) != SG_OK ||
	    filter_set_check_profiles(*out, profile_exists, c, ferr,
	                              sizeof(ferr)) != SG_OK ||
	    filter_set_check_quarantines(*out, quarantine_exists, c, ferr,
	                                 sizeof(ferr)) != SG_OK) {
		snprintf(ps->err, ps->errlen, "%s", ferr);
		return -1;
	}
	return 0;
}

/* message_filters: loaded now, so that check-config and a reload see
 * every error of the filter file too (FILE:LINE of that file). */
static int
load_filters(struct parser *ps)
{
	struct cfg *c = ps->cfg;

	if (c->message_filters_path == NULL)
		return 0;
	return cfg_load_filters(ps, c->message_filters_path,
	                        &c->message_filters);
}

static int
finish(struct parser *ps)
{
	struct cfg *c = ps->cfg;
	char host[256], buf[300];

	ps->line = 0;
	if (c->hostname == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		if ((c->hostname = strdup(host)) == NULL)
			return cfg_fail(ps, "out of memory");
	}
	snprintf(buf, sizeof(buf), "postmaster@%s", c->hostname);
	if (dup_default(ps, &c->store_path, "var/smimegate.db") == -1 ||
	    dup_default(ps, &c->spool_dir, "var/spool") == -1 ||
	    dup_default(ps, &c->outbox, "var/outbox") == -1 ||
	    dup_default(ps, &c->postmaster, buf) == -1 ||
	    dup_default(ps, &c->log, "stderr") == -1)
		return -1;
	for (size_t i = 0; i < c->nroutes; i++) {
		struct cfg_route *r = &c->routes[i];
		char what[300];

		if (r->domains == NULL || r->nexthop == NULL)
			return cfg_fail(ps,
			                "[route %s] needs domains and nexthop",
			                r->name);
		snprintf(what, sizeof(what), "[route %s]", r->name);
		if (cfg_peer_finish(ps, &r->peer, &r->tls, what) == -1)
			return -1;
	}
	if (c->smarthost == NULL &&
	    (c->smarthost_peer.ca_file != NULL || c->smarthost_peer.npins > 0))
		return cfg_fail(ps,
		                "smarthost_tls_ca_file and "
		                "smarthost_tls_fingerprint need a smarthost");
	if (cfg_peer_finish(ps, &c->smarthost_peer, &c->smarthost_tls,
	                    "smarthost") == -1)
		return -1;
	if (c->retry_max < c->retry_min)
		return cfg_fail(
		    ps, "retry_max (%us) is shorter than retry_min (%us)",
		    c->retry_max, c->retry_min);
	if (cfg_quarantine(c, "Policy") == NULL &&
	    add_quarantine(ps, "Policy") == NULL)
		return -1;
	if (load_filters(ps) == -1 || cfg_policy_finish(ps) == -1 ||
	    cfg_flow_finish(ps) == -1 || cfg_ldap_finish(ps) == -1 ||
	    cfg_revocation_finish(ps) == -1)
		return -1;
	if (c->nlisteners == 0)
		return cfg_fail(ps,
		                "no [listener NAME] section: nothing to serve");
	for (size_t i = 0; i < c->nlisteners; i++) {
		struct cfg_listener *l = &c->listeners[i];
		if (l->host == NULL)
			return cfg_fail(ps,
			                "[listener %s] needs listen = "
			                "address:port",
			                l->name);
		if (l->role == 0)
			return cfg_fail(ps,
			                "[listener %s] needs role = outgoing "
			                "or incoming",
			                l->name);
		for (size_t j = 0; j < i; j++)
			if (c->listeners[j].port == l->port &&
			    strcmp(c->listeners[j].host, l->host) == 0)
				return cfg_fail(ps,
				                "[listener %s] and [listener "
				                "%s] both listen on %s:%d",
				                c->listeners[j].name, l->name,
				                l->host, l->port);
		if (l->relay_from == NULL &&
		    (set_relay_from(ps, l, "127.0.0.0/8, ::1") == -1))
			return -1;
		if (check_listener_tls(ps, l) == -1)
			return -1;
		if (l->role == CFG_OUTGOING) {
			if (l->profile == NULL &&
			    (l->profile = strdup("default")) == NULL)
				return cfg_fail(ps, "out of memory");
			if (cfg_profile(c, l->profile) == NULL)
				return cfg_fail(ps,
				                "[listener %s] uses profile "
				                "\"%s\", which has no [profile "
				                "%s] section",
				                l->name, l->profile,
				                l->profile);
		} else if (l->profile != NULL) {
			return cfg_fail(ps,
			                "[listener %s]: profile applies to "
			                "outgoing listeners",
			                l->name);
		}
	}
	return 0;
}

enum sg_status
cfg_load(const char *path, struct cfg **out, char *err, size_t errlen)
{
	struct parser ps = {.path = path, .err = err, .errlen = errlen};
	char buf[MAX_LINE + 2];
	FILE *f;
	int rc = 0;

	if ((ps.cfg = calloc(1, sizeof(*ps.cfg))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return SG_ERR_NOMEM;
	}
	defaults(ps.cfg);
	if ((ps.cfg->path = strdup(path)) == NULL ||
	    (f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		cfg_free(ps.cfg);
		return SG_ERR_IO;
	}
	while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		size_t n = strlen(buf);
		ps.line++;
		if (n > MAX_LINE && buf[n - 1] != '\n')
			rc = cfg_fail(&ps, "line longer than %d characters",
			              MAX_LINE);
		else if (ps.line > MAX_LINES)
			rc = cfg_fail(&ps, "more than %d lines", MAX_LINES);
		else if (memchr(buf, '\0', n) != NULL)
			rc = cfg_fail(&ps, "a NUL byte");
		else
			rc = line(&ps, buf);
	}
	if (rc == 0 && ferror(f))
		rc = cfg_fail(&ps, "read error: %s", strerror(errno));
	fclose(f);
	if (rc == 0)
		rc = finish(&ps);
	if (rc != 0) {
		cfg_free(ps.cfg);
		return SG_ERR_USAGE;
	}
	*out = ps.cfg;
	return SG_OK;
}

void
cfg_free(struct cfg *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nlisteners; i++) {
		free(c->listeners[i].name);
		free(c->listeners[i].host);
		free(c->listeners[i].relay_from);
		cfg_strv_free(c->listeners[i].local_domains);
		free(c->listeners[i].profile);
		free(c->listeners[i].tls_cert);
		free(c->listeners[i].tls_key);
		free(c->listeners[i].auth_users);
	}
	for (size_t i = 0; i < c->nprofiles; i++) {
		free(c->profiles[i].name);
		free(c->profiles[i].signer);
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].name);
		cfg_strv_free(c->routes[i].domains);
		free(c->routes[i].nexthop);
		cfg_peer_free(&c->routes[i].peer);
	}
	free(c->routes);
	cfg_peer_free(&c->smarthost_peer);
	for (size_t i = 0; i < c->nquarantines; i++)
		free(c->quarantines[i].name);
	free(c->quarantines);
	free(c->alert_to);
	free(c->message_filters_path);
	filter_set_free(c->message_filters);
	cfg_policy_free(c);
	cfg_flow_free(c);
	cfg_ldap_free(c);
	cfg_revocation_free(c);
	free(c->notify_signer);
	free(c->listeners);
	free(c->profiles);
	free(c->path);
	free(c->hostname);
	free(c->user);
	free(c->store_path);
	free(c->keyfile);
	free(c->spool_dir);
	free(c->outbox);
	free(c->smarthost);
	free(c->postmaster);
	free(c->log);
	free(c->metrics);
	free(c);
}

const struct cfg_listener *
cfg_listener(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].name &&
		    strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	return NULL;
}

const struct cfg_route *
cfg_route_for(const struct cfg *c, const char *domain)
{
	for (size_t i = 0; i < c->nroutes; i++)
		for (char **d = c->routes[i].domains; d && *d; d++)
			if (strcasecmp(*d, domain) == 0)
				return &c->routes[i];
	return NULL;
}

const struct cfg_quarantine *
cfg_quarantine(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->nquarantines; i++)
		if (strcmp(c->quarantines[i].name, name) == 0)
			return &c->quarantines[i];
	return NULL;
}

const struct cfg_profile *
cfg_profile(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->nprofiles; i++)
		if (c->profiles[i].name &&
		    strcmp(c->profiles[i].name, name) == 0)
			return &c->profiles[i];
	return NULL;
}

static int
in_net(const struct cfg_net *n, int family, const unsigned char *a)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family)
		return 0;
	if (memcmp(n->addr, a, full) != 0)
		return 0;
	return rest == 0 || ((n->addr[full] ^ a[full]) &
	                     (unsigned char)(0xff << (8 - rest))) == 0;
}

int
cfg_may_relay(const struct cfg_listener *l, const struct sockaddr *sa)
{
	unsigned char a4[4];
	const unsigned char *a6;

	if (sa == NULL)
		return 0;
	for (size_t i = 0; i < l->nrelay_from; i++) {
		const struct cfg_net *n = &l->relay_from[i];
		if (sa->sa_family == AF_INET) {
			memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr,
			       4);
			if (in_net(n, AF_INET, a4))
				return 1;
		} else if (sa->sa_family == AF_INET6) {
			a6 = ((const struct sockaddr_in6 *)sa)
			         ->sin6_addr.s6_addr;
			if (in_net(n, AF_INET6, a6))
				return 1;
			/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d. */
			static const unsigned char mapped[12] = {
			    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
			if (memcmp(a6, mapped, 12) == 0 &&
			    in_net(n, AF_INET, a6 + 12))
				return 1;
		}
	}
	return 0;
}

enum cfg_starttls
cfg_listener_starttls(const struct cfg_listener *l)
{
	if (l->starttls != CFG_STARTTLS_AUTO)
		return l->starttls;
	return l->tls_cert != NULL ? CFG_STARTTLS_OFFER : CFG_STARTTLS_NONE;
}

int
cfg_is_local_domain(const struct cfg_listener *l, const char *domain)
{
	for (char **d = l->local_domains; d && *d; d++)
		if (strcasecmp(*d, domain) == 0)
			return 1;
	return 0;
}

char *
cfg_demo_text(const char *dir)
{
	char *s = NULL;

	if (asprintf(&s,
	             "# smimegate demo configuration (written by make run).\n"
	             "# Every setting: docs/config.md.\n"
	             "hostname = smimegate.localhost\n"
	             "store = %s/smimegate.db\n"
	             "spool = %s/spool\n"
	             "# No smarthost: mail goes to this maildir (new mail in "
	             "new/).\n"
	             "outbox = %s/outbox\n"
	             "postmaster = postmaster@example.com\n"
	             "\n"
	             "[listener outgoing]\n"
	             "# Mail from our users: signed with the demo "
	             "certificate.\n"
	             "listen = 127.0.0.1:2525\n"
	             "role = outgoing\n"
	             "relay_from = 127.0.0.0/8, ::1\n"
	             "profile = default\n"
	             "\n"
	             "[listener incoming]\n"
	             "# Mail from outside: decrypted and verified.\n"
	             "listen = 127.0.0.1:2526\n"
	             "role = incoming\n"
	             "local_domains = example.com\n"
	             "signature = keep\n"
	             "\n"
	             "[profile default]\n"
	             "mode = sign\n"
	             "signer = demo\n"
	             "form = detached\n"
	             "digest = sha256\n",
	             dir, dir, dir) == -1)
		return NULL;
	return s;
}
