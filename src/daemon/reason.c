/*
 * reason.c - failure reasons into a caller's buffer (reason.h).
 */
#include "daemon/reason.h"

#include <stdarg.h>
#include <stdio.h>

void
reason_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* One line, whatever a file name or a server's message held. */
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}
