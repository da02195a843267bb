/*
 * ldap_dl.c - loads libldap on first use (ldap_dl.h says why).
 */
#include "daemon/ldap_dl.h"

#include "lib/dl.h"

#ifndef SG_LDAP_SONAME
#error                                                                         \
    "SG_LDAP_SONAME: libldap.so not found; install libldap-dev (sh scripts/deps.sh)"
#endif

/* dlsym on the handle also searches liblber, its dependency. */
static void
lookup(struct sg_dl *dl, void *table)
{
	struct ldap_api *t = table;

	SG_LDAP_FUNCS(SG_DL_LOOKUP)
}

static const char *const sonames[] = {SG_LDAP_SONAME, NULL};
static struct ldap_api api;
static struct sg_dl_lazy lazy = SG_DL_LAZY_INIT(sonames, lookup, NULL, &api);

const struct ldap_api *
ldap_api(char *reason, size_t rlen)
{
	return sg_dl_lazy_load(&lazy, reason, rlen);
}
