/*
 * ldap_dl.c - loads libldap on first use (ldap_dl.h says why).
 */
#include "daemon/ldap_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef SG_LDAP_SONAME
#error                                                                         \
    "SG_LDAP_SONAME: libldap.so not found; install libldap-dev (sh scripts/deps.sh)"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct ldap_api api;
static const struct ldap_api *loaded;
static char why[256];

static void
load(void)
{
	void *h = dlopen(SG_LDAP_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (h == NULL) {
		snprintf(why, sizeof(why), "cannot load the LDAP library: %s",
		         dlerror());
		return;
	}
	/* dlsym on the handle also searches liblber, its dependency. */
#define SG_LDAP_SYM(f)                                                         \
	if ((api.f = (__typeof__(api.f))dlsym(h, #f)) == NULL &&               \
	    missing == NULL)                                                   \
		missing = #f;
	SG_LDAP_FUNCS(SG_LDAP_SYM)
#undef SG_LDAP_SYM
	if (missing != NULL) {
		snprintf(why, sizeof(why), "%s has no %s", SG_LDAP_SONAME,
		         missing);
		dlclose(h);
		return;
	}
	loaded = &api; /* never closed: the process keeps using it */
}

const struct ldap_api *
ldap_api(char *reason, size_t rlen)
{
	pthread_once(&once, load);
	if (loaded == NULL && rlen > 0)
		snprintf(reason, rlen, "%s", why);
	return loaded;
}
