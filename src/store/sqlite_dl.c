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

static void
lookup(struct sg_dl *dl, void *table)
{
	struct sqlite_api *t = table;

	SG_SQLITE_FUNCS(SG_DL_LOOKUP)
}

static const char *const sonames[] = {SG_SQLITE_SONAME, NULL};
static struct sqlite_api api;
struct sg_dl_lazy sqlite_lazy_ = SG_DL_LAZY_INIT(sonames, lookup, NULL, &api);

const struct sqlite_api *
sqlite_load(char *why, size_t wlen)
{
	return sg_dl_lazy_load(&sqlite_lazy_, why, wlen);
}
