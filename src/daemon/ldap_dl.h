/*
 * ldap_dl.h - OpenLDAP's libldap, loaded when a directory is first used.
 *
 * Why not linked: libldap brings GnuTLS, Cyrus SASL, p11-kit, nettle and
 * GMP, 9 shared libraries whose loading and constructors cost every
 * smimegate process about 2.2 ms, a quarter of a one-shot `smimegate
 * sign` of a 10 KiB message, although only a gateway with a configured
 * directory (ldap_uri) ever calls it (docs/architecture.md).  Postfix
 * loads its LDAP tables the same way (dynamicmaps.cf).
 *
 * The prototypes are libldap's own (<ldap.h>, through __typeof__), so a
 * call through the table is type-checked like a direct one.  The soname
 * is the one the build found (SG_LDAP_SONAME, from the Makefile).
 */
#ifndef SG_LDAP_DL_H
#define SG_LDAP_DL_H

#include <stddef.h>

#include <ldap.h>

#include "lib/dl.h"

/* Every libldap / liblber function smimegate calls. */
#define SG_LDAP_FUNCS(X)                                                       \
	X(ldap_initialize)                                                     \
	X(ldap_set_option)                                                     \
	X(ldap_get_option)                                                     \
	X(ldap_err2string)                                                     \
	X(ldap_memfree)                                                        \
	X(ldap_unbind_ext_s)                                                   \
	X(ldap_start_tls_s)                                                    \
	X(ldap_sasl_bind_s)                                                    \
	X(ldap_search_ext_s)                                                   \
	X(ldap_first_entry)                                                    \
	X(ldap_next_entry)                                                     \
	X(ldap_first_attribute)                                                \
	X(ldap_next_attribute)                                                 \
	X(ldap_get_values_len)                                                 \
	X(ldap_value_free_len)                                                 \
	X(ldap_msgfree)                                                        \
	X(ber_free)

struct ldap_api {
	SG_LDAP_FUNCS(SG_DL_MEMBER)
};

/* sg_ldap_load(reason, rlen): the library's functions, loaded on the first
 * call, or NULL with the file and the reason (lib/dl.h).  There are no call
 * macros: directory.c calls through the table it gets. */
SG_DL_DECLARE(sg_ldap, ldap_api, "libldap")

#endif
