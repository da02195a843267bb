/*
 * deliver.h - local delivery into a maildir, the embedded default when no
 * smarthost is configured (cfg->outbox).
 *
 * What it trusts: the maildir path, which comes from the configuration;
 * never a name from a message (file names are made here).  What it can
 * reach: that directory and the message's file descriptor.
 */
#ifndef SG_DELIVER_H
#define SG_DELIVER_H

#include <stddef.h>

#include "smimegate.h"

/* Enough for every name deliver_maildir makes (with the NUL). */
#define DELIVER_NAME_MAX 256

/*
 * Delivers one message into the maildir MAILDIR: PREFIX_HEADERS (header
 * lines ending in CRLF, such as "Return-Path: <a@b>\r\nDelivered-To:
 * c@d\r\n", written verbatim; NULL for none), then the whole content of
 * DATA_FD from its first byte, copied as is and streamed (no message is
 * held in memory).  DATA_FD is read with pread() from offset 0, so its
 * file offset is neither used nor moved; a pipe is read with read() from
 * where it stands.  DATA_FD stays open (the caller's).
 *
 * MAILDIR (and missing parents) and its tmp/, new/ and cur/ are created
 * 0700 when missing.  The file is written to tmp/ (0600), fsync'd, renamed
 * into new/ and new/ is fsync'd: after SG_OK the message survives a crash.
 * The unique name follows the maildir convention,
 * "SECONDS.MmicrosecondsPpidRrandom.HOST" (128 random bits: no counter,
 * which would be a mutable global; the file is created O_EXCL).
 *
 * NAME_OUT (may be NULL) gets the file's name in new/ on SG_OK; NAME_LEN
 * should be DELIVER_NAME_MAX.
 *
 * Returns SG_OK; SG_ERR_USAGE (a NULL or empty MAILDIR, NAME_LEN too
 * small); SG_ERR_TEMP (out of space or quota, out of file descriptors);
 * SG_ERR_NOMEM; SG_ERR_IO (anything else: reading DATA_FD or writing the
 * maildir failed; the caller decides whether that is worth a retry).  On
 * failure nothing is left in the maildir and NAME_OUT is untouched.
 */
enum sg_status deliver_maildir(const char *maildir, int data_fd,
                               const char *prefix_headers, char *name_out,
                               size_t name_len);

#endif /* SG_DELIVER_H */
