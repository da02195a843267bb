/*
 * dl.h - shared libraries opened on first use instead of linked.
 *
 * smimegate links libcrypto and the C library only.  libssl, GMime (with
 * GLib, GIO, gpgme, ...), SQLite, libevent, libxcrypt, libresolv and
 * libldap are opened with dlopen(3) when a process first needs them, so
 * that a one-shot `smimegate sign` does not map and relocate some 25
 * libraries it never calls (docs/architecture.md, "Dependencies, and how
 * they are loaded", has the figures).
 *
 * Each library has a header (lib/gmime_dl.h, store/sqlite_dl.h,
 * daemon/daemon_dl.h, daemon/ldap_dl.h) with the list of the functions we
 * call, a table of pointers typed with the library's own prototypes
 * (__typeof__, so a call through it is checked as a direct one is), and,
 * except for libldap, macros that make the call look like a direct one.
 * This file has what they share: opening a list of sonames and looking a
 * name up in them.
 */
#ifndef SG_DL_H
#define SG_DL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define SG_DL_MAX    8   /* sonames one table is looked up in */
#define SG_DL_WHYLEN 320 /* a reason: the file and dlerror()'s text */

struct sg_dl {
	void *h[SG_DL_MAX];
	const char *soname[SG_DL_MAX];
	size_t n;
	const char *missing; /* the first name no library had */
	char why[SG_DL_WHYLEN];
};

/* A table member for function or variable F, typed from its declaration. */
#define SG_DL_MEMBER(f) __typeof__(f) *f;

/* NAME from the first of DL's libraries that defines it, or NULL (the
 * first such NAME is kept in DL->missing). */
void *sg_dl_sym(struct sg_dl *dl, const char *name);

/* A table loaded on first use: the module's static storage. */
struct sg_dl_lazy {
	pthread_mutex_t lock;
	const char *const *sonames; /* NULL-terminated */
	/* fills TABLE from DL (with SG_DL_LOOKUP) */
	void (*lookup)(struct sg_dl *dl, void *table);
	void (*init)(const void *table); /* once loaded; may be NULL */
	void *table;
	const void *loaded; /* TABLE once loaded (atomic), else NULL */
	bool tried;
	char why[SG_DL_WHYLEN];
};

#define SG_DL_LAZY_INIT(sonames, lookup, init, table)                          \
	{                                                                      \
		PTHREAD_MUTEX_INITIALIZER, sonames, lookup, init, table, NULL, \
		    false, ""                                                  \
	}

/* In a lookup function with parameters DL and a table pointer T: looks F
 * up into T->F. */
#define SG_DL_LOOKUP(f) t->f = (__typeof__(t->f))sg_dl_sym(dl, #f);

/* Z's table, loading it on the first call (thread-safe), or NULL when it
 * cannot be loaded: then WHY (WLEN bytes, may be 0) says which file and
 * why, on every later call too (loading is tried once). */
const void *sg_dl_lazy_load(struct sg_dl_lazy *z, char *why, size_t wlen);

/* The loaded table of Z without locking, or NULL. */
static inline const void *
sg_dl_lazy_get(struct sg_dl_lazy *z)
{
	return __atomic_load_n(&z->loaded, __ATOMIC_ACQUIRE);
}

/* In a table's header: declares ACC_load(), the table of struct TYPE,
 * loaded on the first call (thread-safe), or NULL when it cannot be: then
 * WHY (WLEN bytes, may be 0) says which file and why, on every later call
 * too; and ACC(), the same for the call macros, which aborts through
 * sg_dl_unloaded(LIB, ...) when the table cannot be loaded. */
#define SG_DL_DECLARE(acc, type, lib)                                          \
	const struct type *acc##_load(char *why, size_t wlen);                 \
	extern struct sg_dl_lazy acc##_lazy_;                                  \
	static inline const struct type *acc(void)                             \
	{                                                                      \
		const struct type *a = sg_dl_lazy_get(&acc##_lazy_);           \
		char why[SG_DL_WHYLEN];                                        \
                                                                               \
		if (a == NULL && (a = acc##_load(why, sizeof(why))) == NULL)   \
			sg_dl_unloaded(lib, why);                              \
		return a;                                                      \
	}

/* In the table's .c file: defines what SG_DL_DECLARE declared, for the
 * names FUNCS lists, looked up in the sonames that follow; INIT (or NULL)
 * is called once the table is loaded. */
#define SG_DL_DEFINE(acc, type, FUNCS, init, ...)                              \
	static void acc##_lookup(struct sg_dl *dl, void *table)                \
	{                                                                      \
		struct type *t = table;                                        \
                                                                               \
		FUNCS(SG_DL_LOOKUP)                                            \
	}                                                                      \
	static const char *const acc##_sonames[] = {__VA_ARGS__, NULL};        \
	static struct type acc##_table;                                        \
	struct sg_dl_lazy acc##_lazy_ =                                        \
	    SG_DL_LAZY_INIT(acc##_sonames, acc##_lookup, init, &acc##_table);  \
	const struct type *acc##_load(char *why, size_t wlen)                  \
	{                                                                      \
		return sg_dl_lazy_load(&acc##_lazy_, why, wlen);               \
	}

/* For a call through a table that was never loaded: the caller skipped
 * the check that returns a status (sg_gmime_need, ...), a bug.  Prints
 * "smimegate: LIB not loaded: WHY" on stderr and aborts. */
_Noreturn void sg_dl_unloaded(const char *lib, const char *why);

#endif
