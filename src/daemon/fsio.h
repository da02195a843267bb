/*
 * fsio.h - small file helpers the spool, the quarantine and the maildir
 * delivery share.
 */
#ifndef SG_FSIO_H
#define SG_FSIO_H

#include <stddef.h>

#include "smimegate.h"

/* The status for a failed file operation's errno: a full disk, quota or
 * descriptor table is temporary (try later), the rest an I/O error. */
enum sg_status fsio_errno_status(int e);

/* Writes all LEN bytes of P to FD, retrying on EINTR.  0 or -1 (errno). */
int fsio_write_all(int fd, const void *p, size_t len);

/* The names in directory FD (without . and ..), sorted bytewise: *N
 * strings in *OUT, for fsio_names_free().  -1 with errno on error. */
int fsio_list_dir(int fd, char ***out, size_t *n);
void fsio_names_free(char **v, size_t n);

#endif
