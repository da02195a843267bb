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
SG_DL_DEFINE(sg_ldap, ldap_api, SG_LDAP_FUNCS, NULL, SG_LDAP_SONAME)
