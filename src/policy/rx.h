/*
 * rx.h - the regular expressions of filters and address patterns: POSIX
 * extended syntax as glibc's regcomp(REG_EXTENDED) reads it, with GNU's
 * \w \W \s \S \b \B \< \> \` \', without back-references and without
 * escaped letters or digits POSIX leaves undefined (\d), matched
 * byte by byte (the C locale) in time linear in the text whatever the
 * pattern: a DFA built lazily from the pattern's NFA, one bounded cache
 * per call.  docs/filters.md says why not glibc's regexec.
 */
#ifndef SG_RX_H
#define SG_RX_H

#include <stddef.h>

#define RX_ICASE   1 /* ASCII letters in any case (REG_ICASE) */
#define RX_NEWLINE 2 /* lines: ^ $ at each, . and [^...] not '\n' */

/* Expansion limits: atoms of the written-out pattern (a{2,9} counts 9,
 * a repeated empty group one a copy), nested groups; behind them, at most
 * 8 instructions an atom in the program. */
#define RX_MAX_ATOMS      10000
#define RX_MAX_ATOMS_TEXT "10000"
#define RX_MAX_DEPTH      64

struct rx;

/*
 * Compiles PATTERN (NUL-terminated) with FLAGS (RX_*).  NULL on failure,
 * with the reason (regerror's wording where glibc has one) in WHY (WHYLEN
 * bytes) and *LIMIT 1 when a limit above (or memory) was the reason, 0
 * for bad syntax.  Thread-safe; the result is read-only and may be used
 * by several threads at once.
 */
struct rx *rx_compile(const char *pattern, int flags, char *why, size_t whylen,
                      int *limit);

/* 1 when RE matches somewhere in the LEN bytes of TEXT (unanchored), 0
 * when not, -1 when memory ran out.  Time: O(LEN x program) at worst,
 * O(LEN) once the cache holds the states the text visits. */
int rx_match(const struct rx *re, const char *text, size_t len);

/* rx_match on a NUL-terminated string; NULL is the empty string. */
int rx_match_str(const struct rx *re, const char *s);

void rx_free(struct rx *re);

#endif
