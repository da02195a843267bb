/*
 * dl.c - opening a list of shared libraries and looking names up in them
 * (dl.h says why smimegate does this).
 */
#include "lib/dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
close_all(struct sg_dl *dl)
{
	while (dl->n > 0)
		dlclose(dl->h[--dl->n]);
}

/* Opens each soname of the NULL-terminated list SONAMES (at most
 * SG_DL_MAX), RTLD_NOW | RTLD_LOCAL, into DL.  False when one cannot be
 * opened: DL->why names the file and says why, and the ones opened before
 * it are closed. */
static bool
dl_open(struct sg_dl *dl, const char *const *sonames)
{
	memset(dl, 0, sizeof(*dl));
	for (size_t i = 0; sonames[i] != NULL; i++) {
		const char *err;

		if (dl->n == SG_DL_MAX) {
			snprintf(dl->why, sizeof(dl->why),
			         "more than %d libraries for one table",
			         SG_DL_MAX);
			close_all(dl);
			return false;
		}
		if ((dl->h[dl->n] =
		         dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL)) == NULL) {
			err = dlerror();
			snprintf(dl->why, sizeof(dl->why), "cannot load %s: %s",
			         sonames[i],
			         err != NULL ? err : "unknown error");
			close_all(dl);
			return false;
		}
		dl->soname[dl->n++] = sonames[i];
	}
	return true;
}

void *
sg_dl_sym(struct sg_dl *dl, const char *name)
{
	void *p;

	for (size_t i = 0; i < dl->n; i++)
		if ((p = dlsym(dl->h[i], name)) != NULL)
			return p;
	if (dl->missing == NULL)
		dl->missing = name;
	return NULL;
}

/* After the lookups: true when every name was found.  Otherwise DL->why
 * says which name is missing, and DL's libraries are closed. */
static bool
dl_check(struct sg_dl *dl)
{
	size_t len;

	if (dl->missing == NULL)
		return true;
	if (dl->n == 1) {
		snprintf(dl->why, sizeof(dl->why), "%s has no %s",
		         dl->soname[0], dl->missing);
	} else {
		snprintf(dl->why, sizeof(dl->why), "%s is in none of",
		         dl->missing);
		for (size_t i = 0; i < dl->n; i++) {
			len = strlen(dl->why);
			snprintf(dl->why + len, sizeof(dl->why) - len, "%s %s",
			         i > 0 ? "," : "", dl->soname[i]);
		}
	}
	close_all(dl);
	return false;
}

const void *
sg_dl_lazy_load(struct sg_dl_lazy *z, char *why, size_t wlen)
{
	const void *t;

	if ((t = sg_dl_lazy_get(z)) != NULL)
		return t;
	pthread_mutex_lock(&z->lock);
	if (!z->tried) {
		struct sg_dl dl;

		z->tried = true;
		if (!dl_open(&dl, z->sonames)) {
			snprintf(z->why, sizeof(z->why), "%s", dl.why);
		} else {
			z->lookup(&dl, z->table);
			if (!dl_check(&dl)) {
				snprintf(z->why, sizeof(z->why), "%s", dl.why);
			} else {
				/* never closed: the process keeps using it */
				if (z->init != NULL)
					z->init(z->table);
				__atomic_store_n(&z->loaded, z->table,
				                 __ATOMIC_RELEASE);
			}
		}
	}
	if ((t = sg_dl_lazy_get(z)) == NULL && wlen > 0)
		snprintf(why, wlen, "%s", z->why);
	pthread_mutex_unlock(&z->lock);
	return t;
}

void
sg_dl_unloaded(const char *lib, const char *why)
{
	fprintf(stderr, "smimegate: %s not loaded: %s\n", lib, why);
	abort();
}
