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
#ifndef SG_SSL_SONAME
#error                                                                         \
    "SG_SSL_SONAME: libssl.so not found; install libssl-dev (sh scripts/deps.sh)"
#endif
#ifndef SG_CRYPT_SONAME
#error                                                                         \
    "SG_CRYPT_SONAME: libcrypt.so not found; install libcrypt-dev (sh scripts/deps.sh)"
#endif

SG_DL_DEFINE(daemon_dl, daemon_api, SG_DAEMON_FUNCS, NULL, SG_SSL_SONAME,
             SG_EVENT_CORE_SONAME, SG_EVENT_EXTRA_SONAME,
             SG_EVENT_OPENSSL_SONAME, SG_EVENT_PTHREADS_SONAME, SG_CRYPT_SONAME,
             LIBRESOLV_SO)
