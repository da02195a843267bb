/*
 * config_ldap.c - the global ldap_* keys: where the gateway looks up
 * recipients' certificates when the store has none (docs/config.md,
 * "Directory lookup (LDAP)"; the lookup itself is daemon/directory.c).
 *
 * Each key is checked when it is read; what needs all of them (ldap_uri
 * and ldap_base present, bind DN and password file as a pair, the
 * password file's mode) is checked by cfg_ldap_finish, with the line of
 * the key concerned.
 */
#include "policy/config_int.h"

#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* struct cfg_ldap with the lines its keys came from: allocated as one,
 * so that c->ldap (the first member) is what free() takes back. */
struct ldap_lines {
	struct cfg_ldap pub;
	unsigned first;     /* the first ldap_* key */
	unsigned bind_dn;   /* 0: not set */
	unsigned pass_file; /* 0: not set */
	unsigned starttls;  /* 0: not set */
	unsigned ca_file;   /* 0: not set */
};

static struct ldap_lines *
ldap_get(struct parser *ps)
{
	struct ldap_lines *ll;

	if (ps->cfg->ldap != NULL)
		return (struct ldap_lines *)ps->cfg->ldap;
	if ((ll = calloc(1, sizeof(*ll))) == NULL)
		return NULL;
	ll->first = ps->line;
	ll->pub.timeout = 5;
	ll->pub.cache_ttl = 3600;
	ll->pub.negative_ttl = 600;
	ll->pub.retry_after = 30;
	ps->cfg->ldap = &ll->pub;
	return ll;
}

static int
set_uri(struct parser *ps, struct cfg_ldap *l, const char *v)
{
	const char *host;

	if (strncasecmp(v, "ldap://", 7) == 0)
		host = v + 7;
	else if (strncasecmp(v, "ldaps://", 8) == 0)
		host = v + 8;
	else
		return cfg_fail(ps,
		                "ldap_uri wants ldap://HOST[:PORT] or "
		                "ldaps://HOST[:PORT], not \"%s\"",
		                v);
	if (*host == '\0' || *host == '/' || strpbrk(v, " \t,") != NULL)
		return cfg_fail(ps, "ldap_uri \"%s\": one server, with a host",
		                v);
	return cfg_set_str(ps, &l->uri, v);
}

/* The filter must hold exactly one %s and no other conversion. */
static int
set_filter(struct parser *ps, struct cfg_ldap *l, const char *v)
{
	unsigned n = 0;

	for (const char *p = v; (p = strchr(p, '%')) != NULL; p += 2) {
		if (p[1] != 's')
			return cfg_fail(ps,
			                "ldap_filter: only %%s (the address) "
			                "may follow %%");
		n++;
	}
	if (n != 1)
		return cfg_fail(ps, "ldap_filter wants exactly one %%s (the "
		                    "address), like (mail=%%s)");
	if (v[0] != '(' || v[strlen(v) - 1] != ')')
		return cfg_fail(ps, "ldap_filter must be in parentheses, "
		                    "like (mail=%%s)");
	return cfg_set_str(ps, &l->filter, v);
}

int
cfg_ldap_key(struct parser *ps, const char *k, const char *v)
{
	struct ldap_lines *ll;
	struct cfg_ldap *l;

	if ((ll = ldap_get(ps)) == NULL)
		return cfg_fail(ps, "out of memory");
	l = &ll->pub;
	if (strcmp(k, "ldap_uri") == 0)
		return set_uri(ps, l, v);
	if (strcmp(k, "ldap_bind_dn") == 0) {
		ll->bind_dn = ps->line;
		return cfg_set_str(ps, &l->bind_dn, v);
	}
	if (strcmp(k, "ldap_bind_password_file") == 0) {
		ll->pass_file = ps->line;
		return cfg_set_str(ps, &l->bind_password_file, v);
	}
	if (strcmp(k, "ldap_base") == 0)
		return cfg_set_str(ps, &l->base, v);
	if (strcmp(k, "ldap_filter") == 0)
		return set_filter(ps, l, v);
	if (strcmp(k, "ldap_starttls") == 0) {
		ll->starttls = ps->line;
		return cfg_set_bool(ps, &l->starttls, v, "on", "off");
	}
	if (strcmp(k, "ldap_timeout") == 0)
		return cfg_set_duration(ps, &l->timeout, v, 1, 300);
	if (strcmp(k, "ldap_cache_ttl") == 0)
		return cfg_set_duration(ps, &l->cache_ttl, v, 0, 7 * 86400);
	if (strcmp(k, "ldap_negative_ttl") == 0)
		return cfg_set_duration(ps, &l->negative_ttl, v, 0, 86400);
	if (strcmp(k, "ldap_retry_after") == 0)
		return cfg_set_duration(ps, &l->retry_after, v, 0, 3600);
	if (strcmp(k, "ldap_ca_file") == 0) {
		if (access(v, R_OK) != 0)
			return cfg_fail(ps, "ldap_ca_file %s: %s", v,
			                strerror(errno));
		ll->ca_file = ps->line;
		return cfg_set_str(ps, &l->ca_file, v);
	}
	return cfg_fail(ps, "unknown setting \"%s\"", k);
}

/* The password file: a regular file that only its owner may read. */
static int
check_pass_file(struct parser *ps, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		return cfg_fail(
		    ps, "ldap_bind_password_file %s: cannot read it", path);
	if (!S_ISREG(sb.st_mode))
		return cfg_fail(ps,
		                "ldap_bind_password_file %s: not a regular "
		                "file",
		                path);
	if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		return cfg_fail(ps,
		                "ldap_bind_password_file %s: group or others "
		                "may access it (mode %03o; chmod 600)",
		                path, (unsigned)(sb.st_mode & 0777));
	return 0;
}

int
cfg_ldap_finish(struct parser *ps)
{
	struct ldap_lines *ll = (struct ldap_lines *)ps->cfg->ldap;
	struct cfg_ldap *l;
	unsigned saved = ps->line;
	int rc = -1;

	if (ll == NULL)
		return 0;
	l = &ll->pub;
	ps->line = ll->first;
	if (l->uri == NULL) {
		cfg_fail(ps, "ldap_* settings need ldap_uri");
		goto out;
	}
	if (l->base == NULL) {
		cfg_fail(ps,
		         "ldap_* settings need ldap_base (the search base)");
		goto out;
	}
	if (l->starttls && strncasecmp(l->uri, "ldaps://", 8) == 0) {
		ps->line = ll->starttls;
		cfg_fail(ps, "ldap_starttls = on with an ldaps:// ldap_uri: "
		             "TLS is already there (use one or the other)");
		goto out;
	}
	if ((l->bind_dn == NULL) != (l->bind_password_file == NULL)) {
		ps->line = ll->bind_dn ? ll->bind_dn : ll->pass_file;
		cfg_fail(ps, "ldap_bind_dn and ldap_bind_password_file go "
		             "together (neither: anonymous)");
		goto out;
	}
	if (l->bind_password_file != NULL) {
		ps->line = ll->pass_file;
		if (check_pass_file(ps, l->bind_password_file) == -1)
			goto out;
	}
	if (l->filter == NULL && (l->filter = strdup("(mail=%s)")) == NULL) {
		cfg_fail(ps, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc == 0)
		ps->line = saved;
	return rc;
}

void
cfg_ldap_free(struct cfg *c)
{
	struct cfg_ldap *l = c->ldap;

	if (l == NULL)
		return;
	free(l->uri);
	free(l->bind_dn);
	free(l->bind_password_file);
	free(l->base);
	free(l->filter);
	free(l->ca_file);
	free(l); /* the struct ldap_lines it begins */
	c->ldap = NULL;
}

static int
str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
cfg_ldap_equal(const struct cfg_ldap *a, const struct cfg_ldap *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return str_eq(a->uri, b->uri) && str_eq(a->bind_dn, b->bind_dn) &&
	       str_eq(a->bind_password_file, b->bind_password_file) &&
	       str_eq(a->base, b->base) && str_eq(a->filter, b->filter) &&
	       str_eq(a->ca_file, b->ca_file) && a->starttls == b->starttls &&
	       a->timeout == b->timeout && a->cache_ttl == b->cache_ttl &&
	       a->negative_ttl == b->negative_ttl &&
	       a->retry_after == b->retry_after;
}
