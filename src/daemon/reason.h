/*
 * reason.h - the daemon's way of handing a failure's reason to its
 * caller: a buffer the caller owns (char *err, size_t errlen), filled
 * with one line of text.
 */
#ifndef SG_REASON_H
#define SG_REASON_H

#include <stddef.h>

/* Formats the reason into ERR (cut to ERRLEN), control characters made
 * spaces so that it stays one line; nothing when ERR is NULL or ERRLEN
 * is 0. */
void reason_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
