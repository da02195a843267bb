/*
 * gmime_dl.c - loads GMime on first use (gmime_dl.h, dl.h say why).
 */
#define SG_GMIME_DL_IMPL
#include "lib/gmime_dl.h"

#include "lib/sg_int.h"

#ifndef SG_GMIME_SONAME
#error                                                                         \
    "SG_GMIME_SONAME: libgmime-3.0.so not found; install libgmime-3.0-dev (sh scripts/deps.sh)"
#endif

static void
init(const void *table)
{
	((const struct sg_gmime_api *)table)->g_mime_init();
}

/* dlsym on GMime's handle also finds GLib's and GObject's names */
SG_DL_DEFINE(sg_gmime, sg_gmime_api, SG_GMIME_FUNCS, init, SG_GMIME_SONAME)

enum sg_status
sg_gmime_need(struct sg_ctx *ctx)
{
	char why[SG_DL_WHYLEN];

	if (sg_gmime_load(why, sizeof(why)) != NULL)
		return SG_OK;
	return sg_fail_plain(ctx, SG_ERR_TEMP, "GMime cannot be used: %s", why);
}

enum sg_status
sg_preload(char *why, size_t wlen)
{
	return sg_gmime_load(why, wlen) != NULL ? SG_OK : SG_ERR_TEMP;
}
