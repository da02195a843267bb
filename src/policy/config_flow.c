/*
 * config_flow.c - [flow NAME] sections: mail flow policies (config.h,
 * docs/config.md).  A flow is matched when a client gives MAIL FROM, on
 * what the session knows then: the listener, the client's address, its
 * HELO and the envelope sender's domain.  The first flow in file order
 * whose every set criterion matches decides; an unset one matches
 * anything.  Criteria:
 *
 *	listeners        names of [listener] sections
 *	clients          networks ("192.0.2.0/24", "2001:db8::/32", an
 *	                 address); an IPv4-mapped IPv6 client is its IPv4
 *	helo             shell-style patterns, '*' any run of characters,
 *	                 any case ("*.partner.example")
 *	sender_domains   "partner.example" that domain, ".partner.example"
 *	                 its subdomains (not itself); any case.  The null
 *	                 sender has no domain and matches no list.
 */
#include "policy/config_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FLOWS      1000
#define MAX_FLOW_ITEMS 10000 /* per list */
#define MAX_ITEM_LEN   255   /* a domain name or a HELO pattern */

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Splits V into a list of 1 to MAX_FLOW_ITEMS items for KEY, or fails. */
static char **
split_list(struct parser *ps, const char *key, const char *v, size_t *count)
{
	char **items = cfg_split(v, count);

	if (items == NULL) {
		cfg_fail(ps, "out of memory");
		return NULL;
	}
	if (*count == 0 || *count > MAX_FLOW_ITEMS) {
		cfg_strv_free(items);
		cfg_fail(ps, "%s: 1 to %d items", key, MAX_FLOW_ITEMS);
		return NULL;
	}
	return items;
}

/* The listener names are checked when the whole file is read (a flow may
 * name a listener defined below it); the error then names the line of
 * "listeners =" (listeners_line). */
static int
set_listeners(struct parser *ps, struct cfg_flow *f, const char *v)
{
	size_t n;
	char **items = split_list(ps, "listeners", v, &n);

	if (items == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!cfg_name_ok(items[i])) {
			cfg_fail(ps,
			         "listeners: \"%s\" is not a listener name "
			         "(letters, digits, . _ -)",
			         items[i]);
			cfg_strv_free(items);
			return -1;
		}
	cfg_strv_free(f->listeners);
	f->listeners = items;
	f->listeners_line = ps->line;
	return 0;
}

static int
set_clients(struct parser *ps, struct cfg_flow *f, const char *v)
{
	size_t n;
	char **items = split_list(ps, "clients", v, &n);
	struct cfg_net *nets;

	if (items == NULL)
		return -1;
	if ((nets = calloc(n, sizeof(*nets))) == NULL) {
		cfg_strv_free(items);
		return cfg_fail(ps, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (cfg_parse_net(items[i], &nets[i]) == -1) {
			cfg_fail(ps,
			         "clients: \"%s\" is not a network (like "
			         "192.0.2.0/24 or 2001:db8::/32)",
			         items[i]);
			cfg_strv_free(items);
			free(nets);
			return -1;
		}
	cfg_strv_free(items);
	free(f->clients);
	f->clients = nets;
	f->nclients = n;
	return 0;
}

/* Whether C may appear in a HELO pattern: what smtp_parse_helo accepts
 * (letters, digits, ".-_:[]"), and '*'. */
static int
helo_char_ok(unsigned char c)
{
	return isalnum(c) || strchr(".-_:[]*", c) != NULL;
}

static int
set_helo(struct parser *ps, struct cfg_flow *f, const char *v)
{
	size_t n;
	char **items = split_list(ps, "helo", v, &n);

	if (items == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *c = items[i];

		while (*c != '\0' && helo_char_ok((unsigned char)*c))
			c++;
		if (*c != '\0' || c - items[i] > MAX_ITEM_LEN) {
			cfg_fail(ps,
			         "helo: \"%s\" is not a HELO pattern "
			         "(letters, digits, . - _ : [ ] and *)",
			         items[i]);
			cfg_strv_free(items);
			return -1;
		}
		lower(items[i]);
	}
	cfg_strv_free(f->helo);
	f->helo = items;
	return 0;
}

/* "example.com" or ".example.com": labels of letters, digits, '-' and
 * '_', no empty label. */
static int
domain_ok(const char *d)
{
	const char *c = d[0] == '.' ? d + 1 : d;
	size_t label = 0;

	if (*c == '\0' || strlen(d) > MAX_ITEM_LEN)
		return 0;
	for (; *c != '\0'; c++) {
		if (*c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)*c) || *c == '-' ||
		           *c == '_') {
			label++;
		} else {
			return 0;
		}
	}
	return label > 0;
}

static int
set_sender_domains(struct parser *ps, struct cfg_flow *f, const char *v)
{
	size_t n;
	char **items = split_list(ps, "sender_domains", v, &n);

	if (items == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!domain_ok(items[i])) {
			cfg_fail(ps,
			         "sender_domains: \"%s\" is not a domain "
			         "(example.com, or .example.com for its "
			         "subdomains)",
			         items[i]);
			cfg_strv_free(items);
			return -1;
		}
		lower(items[i]);
	}
	cfg_strv_free(f->sender_domains);
	f->sender_domains = items;
	return 0;
}

int
cfg_flow_section(struct parser *ps, const char *name)
{
	struct cfg *c = ps->cfg;
	struct cfg_flow *grown, *f;

	if (cfg_flow(c, name) != NULL)
		return cfg_fail(ps, "[flow %s] appears twice", name);
	if (c->nflows >= MAX_FLOWS)
		return cfg_fail(ps, "too many flows (at most %d)", MAX_FLOWS);
	grown = realloc(c->flows, (c->nflows + 1) * sizeof(*c->flows));
	if (grown == NULL)
		return cfg_fail(ps, "out of memory");
	c->flows = grown;
	f = &c->flows[c->nflows];
	memset(f, 0, sizeof(*f));
	f->decrypt_verify = 1;
	f->remove_signature = -1;
	f->revocation_unknown = -1;
	if ((f->name = strdup(name)) == NULL)
		return cfg_fail(ps, "out of memory");
	c->nflows++;
	ps->obj = f;
	return 0;
}

int
cfg_flow_key(struct parser *ps, const char *k, const char *v)
{
	static const char *const actions[] = {"accept", "relay", "reject",
	                                      NULL};
	struct cfg_flow *f = ps->obj;
	int a;

	if (strcmp(k, "listeners") == 0)
		return set_listeners(ps, f, v);
	if (strcmp(k, "clients") == 0)
		return set_clients(ps, f, v);
	if (strcmp(k, "helo") == 0)
		return set_helo(ps, f, v);
	if (strcmp(k, "sender_domains") == 0)
		return set_sender_domains(ps, f, v);
	if (strcmp(k, "action") == 0) {
		if (cfg_keyword(ps, v, actions, CFG_FLOW_ACCEPT, &a) == -1)
			return -1;
		f->action = (enum cfg_flow_action)a;
		return 0;
	}
	if (strcmp(k, "smime_decrypt_verify") == 0)
		return cfg_set_bool(ps, &f->decrypt_verify, v, "on", "off");
	if (strcmp(k, "signature") == 0)
		return cfg_set_bool(ps, &f->remove_signature, v, "remove",
		                    "keep");
	if (strcmp(k, "harvest") == 0)
		return cfg_set_bool(ps, &f->harvest, v, "on", "off");
	if (strcmp(k, "harvest_on_failure") == 0)
		return cfg_set_bool(ps, &f->harvest_on_failure, v, "on", "off");
	if (strcmp(k, "harvest_updated") == 0)
		return cfg_set_bool(ps, &f->harvest_updated, v, "on", "off");
	if (strcmp(k, "revocation_unknown") == 0)
		return cfg_revocation_unknown(ps, &f->revocation_unknown, v);
	return cfg_fail(ps, "unknown setting \"%s\" in [flow %s]", k, f->name);
}

int
cfg_flow_finish(struct parser *ps)
{
	struct cfg *c = ps->cfg;

	for (size_t i = 0; i < c->nflows; i++) {
		const struct cfg_flow *f = &c->flows[i];

		if (f->action == 0)
			return cfg_fail(ps,
			                "[flow %s] needs action = accept, "
			                "relay or reject",
			                f->name);
		for (char **l = f->listeners; l && *l; l++) {
			if (cfg_listener(c, *l) != NULL)
				continue;
			ps->line = f->listeners_line;
			return cfg_fail(ps,
			                "[flow %s] names listener \"%s\", "
			                "which has no [listener %s] section",
			                f->name, *l, *l);
		}
	}
	return 0;
}

void
cfg_flow_free(struct cfg *c)
{
	for (size_t i = 0; i < c->nflows; i++) {
		struct cfg_flow *f = &c->flows[i];

		free(f->name);
		cfg_strv_free(f->listeners);
		free(f->clients);
		cfg_strv_free(f->helo);
		cfg_strv_free(f->sender_domains);
	}
	free(c->flows);
}

const struct cfg_flow *
cfg_flow(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->nflows; i++)
		if (strcmp(c->flows[i].name, name) == 0)
			return &c->flows[i];
	return NULL;
}

/* ---- matching ---- */

static int
in_net(const struct cfg_net *n, int family, const unsigned char *a)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family || memcmp(n->addr, a, full) != 0)
		return 0;
	return rest == 0 || ((n->addr[full] ^ a[full]) &
	                     (unsigned char)(0xff << (8 - rest))) == 0;
}

static int
clients_match(const struct cfg_flow *f, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
	                                         0, 0, 0, 0, 0xff, 0xff};
	const unsigned char *a;
	int family;

	if (f->clients == NULL)
		return 1;
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)
		        ->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		family = AF_INET6;
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d */
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			family = AF_INET;
			a += sizeof(mapped);
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < f->nclients; i++)
		if (in_net(&f->clients[i], family, a))
			return 1;
	return 0;
}

/* Shell-style: '*' matches any run of characters (none too), anything
 * else itself, in any case.  Iterative, with one backtrack point: linear
 * in practice, never exponential. */
static int
glob_match(const char *p, const char *s)
{
	const char *star = NULL, *retry = NULL;

	while (*s != '\0') {
		if (*p == '*') {
			star = ++p;
			retry = s;
		} else if (*p != '\0' && tolower((unsigned char)*p) ==
		                             tolower((unsigned char)*s)) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star;
			s = ++retry;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static int
helo_match(const struct cfg_flow *f, const char *helo)
{
	if (f->helo == NULL)
		return 1;
	if (helo == NULL)
		return 0;
	for (char **p = f->helo; *p; p++)
		if (glob_match(*p, helo))
			return 1;
	return 0;
}

static int
domain_match(const struct cfg_flow *f, const char *domain)
{
	size_t dl;

	if (f->sender_domains == NULL)
		return 1;
	if (domain == NULL || *domain == '\0')
		return 0;
	dl = strlen(domain);
	for (char **d = f->sender_domains; *d; d++) {
		size_t tl = strlen(*d);

		if ((*d)[0] != '.'
		        ? strcasecmp(domain, *d) == 0
		        : dl > tl && strcasecmp(domain + dl - tl, *d) == 0)
			return 1;
	}
	return 0;
}

static int
listener_match(const struct cfg_flow *f, const char *listener)
{
	if (f->listeners == NULL)
		return 1;
	if (listener == NULL)
		return 0;
	for (char **l = f->listeners; *l; l++)
		if (strcmp(*l, listener) == 0)
			return 1;
	return 0;
}

const struct cfg_flow *
cfg_flow_match(const struct cfg *c, const char *listener,
               const struct sockaddr *sa, const char *helo,
               const char *sender_domain)
{
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < c->nflows; i++) {
		const struct cfg_flow *f = &c->flows[i];

		if (listener_match(f, listener) && clients_match(f, sa) &&
		    helo_match(f, helo) && domain_match(f, sender_domain))
			return f;
	}
	return NULL;
}
