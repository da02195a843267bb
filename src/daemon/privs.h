/*
 * privs.h - the daemon gives up root: it becomes the configured user
 * (`user = NAME`) before it opens anything but its configuration and its
 * log, and keeps one capability, CAP_NET_BIND_SERVICE, so that listeners
 * on ports below 1024 open at start and on reload alike.
 */
#ifndef SG_PRIVS_H
#define SG_PRIVS_H

#include <stddef.h>

/* Becomes USER (its uid, its gid and its groups) when running as root,
 * keeping only CAP_NET_BIND_SERVICE; the process is then not dumpable,
 * so nobody but root may trace it or read its memory.  USER NULL, or the
 * user the process already is: nothing to do.  1 when it dropped root,
 * 0 when there was nothing to do, -1 with ERR.  Call it before any
 * thread starts: capabilities belong to a thread. */
int privs_drop(const char *user, char *err, size_t errlen);

#endif
