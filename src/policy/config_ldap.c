/*
 * config_ldap.c - the global ldap_* keys.  (Being written: until then
 * they are refused.)
 */
#include "policy/config_int.h"

#include <stdlib.h>

int
cfg_ldap_key(struct parser *ps, const char *k, const char *v)
{
	(void)v;
	return cfg_fail(ps, "unknown setting \"%s\"", k);
}

int
cfg_ldap_finish(struct parser *ps)
{
	(void)ps;
	return 0;
}

void
cfg_ldap_free(struct cfg *c)
{
	free(c->ldap);
}
