/*
 * fsio.c - small file helpers the spool and the maildir delivery share.
 */
#include "daemon/fsio.h"

#include <errno.h>
#include <unistd.h>

enum sg_status
fsio_errno_status(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
		return SG_ERR_TEMP;
	case ENOMEM:
		return SG_ERR_NOMEM;
	default:
		return SG_ERR_IO;
	}
}

int
fsio_write_all(int fd, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len > 0) {
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}
