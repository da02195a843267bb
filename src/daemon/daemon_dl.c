/*
 * daemon_dl.c - loads libevent, libxcrypt and libresolv on first use
 * (daemon_dl.h, lib/dl.h say why).
 */
#define SG_DAEMON_DL_IMPL
#include "daemon/daemon_dl.h"

#include <gnu/lib-names.h> /* LIBRESOLV_SO */

#if !defined(SG_EVENT_CORE_SONAME) || !defined(SG_EVENT_EXTRA_SONAME) ||       \
    !defined(SG_EVENT_OPENSSL_SONAME) || !defined(SG_EVENT_PTHREADS_SONAME)
#error                                                                         \
    "SG_EVENT_*_SONAME: libevent not found; install libevent-dev (sh scripts/deps.sh)"
#endif
#ifndef SG_CRYPT_SONAME
#error                                                                         \
    "SG_CRYPT_SONAME: libcrypt.so not found; install libcrypt-dev (sh scripts/deps.sh)"
#endif

static void
lookup(struct sg_dl *dl, void *table)
{
	struct daemon_api *t = table;

	SG_DAEMON_FUNCS(SG_DL_LOOKUP)
}

static const char *const sonames[] = {SG_EVENT_CORE_SONAME,
                                      SG_EVENT_EXTRA_SONAME,
                                      SG_EVENT_OPENSSL_SONAME,
                                      SG_EVENT_PTHREADS_SONAME,
                                      SG_CRYPT_SONAME,
                                      LIBRESOLV_SO,
                                      NULL};
static struct daemon_api api;
struct sg_dl_lazy daemon_dl_lazy_ =
    SG_DL_LAZY_INIT(sonames, lookup, NULL, &api);

const struct daemon_api *
daemon_dl_load(char *why, size_t wlen)
{
	return sg_dl_lazy_load(&daemon_dl_lazy_, why, wlen);
}
