/*
 * sqlite_dl.c - loads SQLite when a store is first opened (sqlite_dl.h,
 * lib/dl.h say why).
 */
#define SG_SQLITE_DL_IMPL
#include "store/sqlite_dl.h"

#ifndef SG_SQLITE_SONAME
#error                                                                         \
    "SG_SQLITE_SONAME: libsqlite3.so not found; install libsqlite3-dev (sh scripts/deps.sh)"
#endif

SG_DL_DEFINE(sqlite, sqlite_api, SG_SQLITE_FUNCS, NULL, SG_SQLITE_SONAME)
