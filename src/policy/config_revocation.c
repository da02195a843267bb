/*
 * config_revocation.c - the global revocation* and crl_* keys: whether and
 * how the gateway checks signers' and recipients' certificates for
 * revocation (docs/config.md, "Revocation"; docs/revocation.md), and the
 * per-policy `revocation_unknown = soft | hard` of [flow] and [profile].
 *
 * The checker (src/lib/revocation.c) is built when the file is loaded, so
 * that check-config and a reload report an unreadable CRL file with its
 * line, and a reload brings a new checker (new CRL files, empty cache)
 * with the new configuration.
 */
#include "policy/config_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
cfg_revocation_unknown(struct parser *ps, int *dst, const char *v)
{
	return cfg_set_bool(ps, dst, v, "hard", "soft");
}

int
cfg_revocation_key(struct parser *ps, const char *k, const char *v)
{
	struct cfg_revocation *r = &ps->cfg->revocation;

	if (strcmp(k, "revocation") == 0)
		return cfg_set_bool(ps, &r->enabled, v, "on", "off");
	if (strcmp(k, "revocation_ocsp") == 0)
		return cfg_set_bool(ps, &r->ocsp, v, "on", "off");
	if (strcmp(k, "revocation_fetch_crl") == 0)
		return cfg_set_bool(ps, &r->fetch_crl, v, "on", "off");
	if (strcmp(k, "revocation_unknown") == 0)
		return cfg_revocation_unknown(ps, &r->hard_fail, v);
	if (strcmp(k, "revocation_timeout") == 0)
		return cfg_set_duration(ps, &r->timeout, v, 1, 60);
	if (strcmp(k, "revocation_crl_refresh") == 0)
		return cfg_set_duration(ps, &r->crl_refresh, v, 1, 7 * 86400);
	if (strcmp(k, "revocation_max_crl_size") == 0)
		return cfg_set_size(ps, &r->max_crl_size, v, 1024,
		                    (size_t)1 << 30);
	if (strcmp(k, "revocation_proxy") == 0) {
		if (strncasecmp(v, "http://", 7) != 0 || v[7] == '\0')
			return cfg_fail(ps,
			                "revocation_proxy wants "
			                "http://HOST:PORT, not \"%s\"",
			                v);
		return cfg_set_str(ps, &r->proxy, v);
	}
	if (strcmp(k, "crl_files") == 0) {
		size_t n;
		char **f = cfg_split(v, &n);

		if (f == NULL)
			return cfg_fail(ps, "out of memory");
		if (n == 0) {
			cfg_strv_free(f);
			return cfg_fail(ps, "crl_files wants one or more "
			                    "files");
		}
		cfg_strv_free(r->crl_files);
		r->crl_files = f;
		r->crl_files_line = ps->line;
		return 0;
	}
	return cfg_fail(ps, "unknown setting \"%s\"", k);
}

void
cfg_revocation_defaults(struct cfg *c)
{
	struct cfg_revocation *r = &c->revocation;

	r->enabled = 1;
	r->ocsp = 1;
	r->fetch_crl = 1;
	r->timeout = 5;
	r->crl_refresh = 3600;
	r->max_crl_size = SG_REVOCATION_MAX_CRL_DEFAULT;
}

/* The checker, built now: an unreadable or oversized CRL file is an error
 * of the line that named it. */
int
cfg_revocation_finish(struct parser *ps)
{
	struct cfg_revocation *r = &ps->cfg->revocation;
	struct sg_revocation_opts o = {0};
	struct sg_ctx *ctx = NULL;
	unsigned saved = ps->line;
	int rc = 0;

	if (!r->enabled)
		return 0;
	o.crl_files = (const char *const *)r->crl_files;
	o.fetch_crl_dp = r->fetch_crl;
	o.use_ocsp = r->ocsp;
	o.timeout = r->timeout;
	o.crl_refresh = r->crl_refresh;
	o.max_crl_size = r->max_crl_size;
	o.proxy = r->proxy;
	if (sg_ctx_new(&ctx) != SG_OK)
		return cfg_fail(ps, "out of memory");
	if (sg_revocation_new(ctx, &o, &r->checker) != SG_OK) {
		ps->line = r->crl_files_line;
		rc = cfg_fail(ps, "crl_files: %s", sg_ctx_error(ctx));
		ps->line = saved;
	}
	sg_ctx_free(ctx);
	return rc;
}

void
cfg_revocation_free(struct cfg *c)
{
	sg_revocation_free(c->revocation.checker);
	cfg_strv_free(c->revocation.crl_files);
	free(c->revocation.proxy);
	memset(&c->revocation, 0, sizeof(c->revocation));
}

int
cfg_revocation_hard(const struct cfg *c, int setting)
{
	return setting >= 0 ? setting : c->revocation.hard_fail;
}
