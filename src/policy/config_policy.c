/*
 * config_policy.c - [policy NAME] sections: mail policies (config.h,
 * docs/config.md).  Address patterns are compiled when the file is read:
 *
 *	user@example.com    that address (any case)
 *	@example.com        anyone at that domain
 *	example.com         the same
 *	.example.com        anyone at a subdomain of it (not the domain)
 *	*.example.com       the same
 *	/regex/             POSIX extended, any case, on the whole address
 *	*                   anyone
 */
#include "policy/config_int.h"
#include "policy/filter.h"
#include "policy/rx.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_POLICIES 1000
#define MAX_PATTERNS 10000 /* per list */

enum pat_kind { PAT_ANY, PAT_ADDR, PAT_DOMAIN, PAT_SUBDOMAIN, PAT_REGEX };

struct pat {
	enum pat_kind kind;
	char *text; /* lowercase address or domain */
	struct rx *re;
};

struct patlist {
	struct pat *v;
	size_t n;
};

struct policy_match {
	struct patlist senders, recipients; /* n == 0: anyone */
};

static void
patlist_clear(struct patlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].kind == PAT_REGEX)
			rx_free(l->v[i].re);
		free(l->v[i].text);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Compiles one pattern P into *OUT; cfg_fail on a bad one. */
static int
pat_compile(struct parser *ps, const char *key, const char *p, struct pat *out)
{
	size_t n = strlen(p);
	char msg[256];

	memset(out, 0, sizeof(*out));
	if (strcmp(p, "*") == 0) {
		out->kind = PAT_ANY;
		return 0;
	}
	if (n >= 2 && p[0] == '/' && p[n - 1] == '/') {
		char *re = strndup(p + 1, n - 2);

		if (re == NULL)
			return cfg_fail(ps, "out of memory");
		out->kind = PAT_REGEX;
		out->re = rx_compile(re, RX_ICASE, msg, sizeof(msg), NULL);
		free(re);
		if (out->re == NULL)
			return cfg_fail(ps, "%s: bad regular expression %s: %s",
			                key, p, msg);
		return 0;
	}
	if (p[0] == '*' && p[1] == '.') {
		out->kind = PAT_SUBDOMAIN;
		out->text = strdup(p + 1);
	} else if (p[0] == '.') {
		out->kind = PAT_SUBDOMAIN;
		out->text = strdup(p);
	} else if (p[0] == '@') {
		out->kind = PAT_DOMAIN;
		out->text = strdup(p + 1);
	} else if (strchr(p, '@') != NULL) {
		out->kind = PAT_ADDR;
		out->text = strdup(p);
	} else {
		out->kind = PAT_DOMAIN;
		out->text = strdup(p);
	}
	if (out->text == NULL)
		return cfg_fail(ps, "out of memory");
	lower(out->text);
	if (out->text[0] == '\0' || out->text[strlen(out->text) - 1] == '.' ||
	    strchr(out->text, '*') != NULL ||
	    (out->kind != PAT_ADDR && strchr(out->text, '@') != NULL)) {
		free(out->text);
		out->text = NULL;
		return cfg_fail(
		    ps,
		    "%s: \"%s\" is not an address pattern (user@domain, "
		    "@domain, .domain, *.domain, /regex/ or *)",
		    key, p);
	}
	return 0;
}

static int
patlist_set(struct parser *ps, const char *key, const char *v,
            struct patlist *l)
{
	size_t n = 0;
	char **items = cfg_split(v, &n);

	if (items == NULL)
		return cfg_fail(ps, "out of memory");
	if (n == 0 || n > MAX_PATTERNS) {
		cfg_strv_free(items);
		return cfg_fail(ps, "%s: 1 to %d patterns", key, MAX_PATTERNS);
	}
	patlist_clear(l);
	if ((l->v = calloc(n, sizeof(*l->v))) == NULL) {
		cfg_strv_free(items);
		return cfg_fail(ps, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (pat_compile(ps, key, items[i], &l->v[i]) == -1) {
			cfg_strv_free(items);
			patlist_clear(l);
			return -1;
		}
		l->n++;
	}
	cfg_strv_free(items);
	return 0;
}

static int
pat_matches(const struct pat *p, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *dom = at ? at + 1 : "";
	size_t dl = strlen(dom), tl;

	switch (p->kind) {
	case PAT_ANY:
		return 1;
	case PAT_ADDR:
		return strcasecmp(addr, p->text) == 0;
	case PAT_DOMAIN:
		return at != NULL && strcasecmp(dom, p->text) == 0;
	case PAT_SUBDOMAIN: /* text is ".example.com" */
		tl = strlen(p->text);
		return at != NULL && dl > tl &&
		       strcasecmp(dom + dl - tl, p->text) == 0;
	case PAT_REGEX:
		/* an address is short: rx fails (-1) only without memory */
		return rx_match_str(p->re, addr) == 1;
	}
	return 0;
}

static int
patlist_matches(const struct patlist *l, const char *addr)
{
	if (l->n == 0)
		return 1;
	for (size_t i = 0; i < l->n; i++)
		if (pat_matches(&l->v[i], addr))
			return 1;
	return 0;
}

int
cfg_policy_section(struct parser *ps, const char *name)
{
	struct cfg *c = ps->cfg;
	struct cfg_policy *grown, *p;

	if (cfg_policy(c, name) != NULL)
		return cfg_fail(ps, "[policy %s] appears twice", name);
	if (c->npolicies >= MAX_POLICIES ||
	    (grown = realloc(c->policies, (c->npolicies + 1) *
	                                      sizeof(*c->policies))) == NULL)
		return cfg_fail(ps, "too many policies");
	c->policies = grown;
	p = &c->policies[c->npolicies];
	memset(p, 0, sizeof(*p));
	if ((p->name = strdup(name)) == NULL ||
	    (p->match = calloc(1, sizeof(struct policy_match))) == NULL) {
		free(p->name);
		return cfg_fail(ps, "out of memory");
	}
	c->npolicies++;
	ps->obj = p;
	return 0;
}

int
cfg_policy_key(struct parser *ps, const char *k, const char *v)
{
	static const char *const dirs[] = {"outgoing", "incoming", NULL};
	struct cfg_policy *p = ps->obj;
	struct policy_match *m = p->match;
	int d;

	if (strcmp(k, "direction") == 0) {
		if (cfg_keyword(ps, v, dirs, CFG_OUTGOING, &d) == -1)
			return -1;
		p->direction = (enum cfg_role)d;
		return 0;
	}
	if (strcmp(k, "senders") == 0) {
		if (patlist_set(ps, k, v, &m->senders) == -1)
			return -1;
		return cfg_set_str(ps, &p->senders_text, v);
	}
	if (strcmp(k, "recipients") == 0) {
		if (patlist_set(ps, k, v, &m->recipients) == -1)
			return -1;
		return cfg_set_str(ps, &p->recipients_text, v);
	}
	if (strcmp(k, "profile") == 0)
		return cfg_set_str(ps, &p->profile, v);
	if (strcmp(k, "content_filters") == 0)
		return cfg_set_str(ps, &p->content_filters_path, v);
	return cfg_fail(ps, "unknown setting \"%s\" in [policy %s]", k,
	                p->name);
}

int
cfg_policy_finish(struct parser *ps)
{
	struct cfg *c = ps->cfg;

	for (size_t i = 0; i < c->npolicies; i++) {
		struct cfg_policy *p = &c->policies[i];

		if (p->direction == 0)
			return cfg_fail(
			    ps,
			    "[policy %s] needs direction = outgoing "
			    "or incoming",
			    p->name);
		if (p->profile != NULL && p->direction != CFG_OUTGOING)
			return cfg_fail(ps,
			                "[policy %s]: profile applies to "
			                "outgoing policies",
			                p->name);
		if (p->profile != NULL && cfg_profile(c, p->profile) == NULL)
			return cfg_fail(
			    ps,
			    "[policy %s] uses profile \"%s\", which "
			    "has no [profile %s] section",
			    p->name, p->profile, p->profile);
		if (p->content_filters_path == NULL)
			continue;
		if (cfg_load_filters(ps, p->content_filters_path,
		                     &p->content_filters) == -1)
			return -1;
	}
	return 0;
}

void
cfg_policy_free(struct cfg *c)
{
	for (size_t i = 0; i < c->npolicies; i++) {
		struct cfg_policy *p = &c->policies[i];
		struct policy_match *m = p->match;

		if (m != NULL) {
			patlist_clear(&m->senders);
			patlist_clear(&m->recipients);
			free(m);
		}
		free(p->name);
		free(p->senders_text);
		free(p->recipients_text);
		free(p->profile);
		free(p->content_filters_path);
		filter_set_free(p->content_filters);
	}
	free(c->policies);
}

const struct cfg_policy *
cfg_policy(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->npolicies; i++)
		if (strcmp(c->policies[i].name, name) == 0)
			return &c->policies[i];
	return NULL;
}

const struct cfg_policy *
cfg_policy_match(const struct cfg *c, enum cfg_role direction,
                 const char *sender, const char *recipient)
{
	for (size_t i = 0; i < c->npolicies; i++) {
		const struct cfg_policy *p = &c->policies[i];
		const struct policy_match *m = p->match;

		if (p->direction == direction &&
		    patlist_matches(&m->senders, sender ? sender : "") &&
		    patlist_matches(&m->recipients, recipient))
			return p;
	}
	return NULL;
}
