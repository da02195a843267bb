/*
 * textout.c - what the administrator's commands print: text from
 * messages and clients made safe for a terminal (control characters and
 * invalid UTF-8 become '?'), table cells, JSON strings, and a message's
 * header block or whole bytes.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The length of the UTF-8 sequence at S (N bytes left) when it is valid
 * and not a control character (C0, DEL, C1); 0 otherwise. */
static size_t
printable_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp >= 0x80 && cp < 0xa0))
		return 0;
	return len;
}

/* Writes N bytes of S for a terminal: what is not printable UTF-8
 * becomes '?' (tabs and newlines too, unless KEEP_LINES; a CR before a
 * newline is dropped then).  With MAX (not 0), a text of more than MAX
 * characters is cut to MAX - 3 and "...".  The characters written. */
size_t
cli_put_text(FILE *f, const char *str, size_t n, size_t max, int keep_lines)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t chars = 0, limit = SIZE_MAX, i, len;

	if (max) {
		for (i = 0; i < n; i += len ? len : 1)
			len = printable_len(s + i, n - i), chars++;
		if (chars > max)
			limit = max > 3 ? max - 3 : 0;
		chars = 0;
	}
	for (i = 0; i < n && chars < limit; i += len) {
		len = printable_len(s + i, n - i);
		if (keep_lines && s[i] == '\r' && i + 1 < n &&
		    s[i + 1] == '\n') {
			len = 1;
			continue;
		}
		chars++;
		if (len == 0 || (s[i] < 0x20 && !keep_lines)) {
			fputc(keep_lines && (s[i] == '\n' || s[i] == '\t')
			          ? s[i]
			          : '?',
			      f);
			len = 1;
		} else {
			fwrite(s + i, 1, len, f);
		}
	}
	if (limit != SIZE_MAX) {
		fputs("...", f);
		chars += 3;
	}
	return chars;
}

size_t
cli_put_str(FILE *f, const char *s, size_t max)
{
	if (s == NULL)
		s = "-";
	return cli_put_text(f, s, strlen(s), max, 0);
}

/* A table cell: S cut to WIDTH characters, padded to WIDTH + 2. */
void
cli_cell(FILE *f, const char *s, size_t width)
{
	size_t chars = cli_put_str(f, s, width);

	fprintf(f, "%*s", chars < width + 2 ? (int)(width + 2 - chars) : 1, "");
}

/* Writes N bytes of S as a JSON string: invalid UTF-8 becomes U+FFFD. */
void
cli_json_bytes(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	for (size_t i = 0; i < n;) {
		size_t len = printable_len(s + i, n - i);
		if (s[i] == '"' || s[i] == '\\') {
			fprintf(f, "\\%c", s[i]);
			len = 1;
		} else if (s[i] < 0x80 && len == 0) {
			fprintf(f, "\\u%04x", s[i]);
			len = 1;
		} else if (len == 0 && s[i] == 0xc2 && i + 1 < n &&
		           s[i + 1] >= 0x80 && s[i + 1] < 0xa0) {
			fprintf(f, "\\u%04x", s[i + 1]); /* C1 controls */
			len = 2;
		} else if (len == 0) {
			fputs("\\ufffd", f);
			len = 1;
		} else {
			fwrite(s + i, 1, len, f);
		}
		i += len;
	}
	fputc('"', f);
}

void
cli_json_str(FILE *f, const char *s)
{
	if (s == NULL)
		fputs("null", f);
	else
		cli_json_bytes(f, s, strlen(s));
}

/* The header block of the message in FD (up to the empty line, at most
 * CLI_HEADERS_MAX bytes); *LEN its length.  NULL on a read error. */
char *
cli_read_headers(int fd, size_t *len)
{
	char *buf = malloc(CLI_HEADERS_MAX + 1);
	size_t n = 0;

	if (buf == NULL)
		return NULL;
	while (n < CLI_HEADERS_MAX) {
		ssize_t r = pread(fd, buf + n, CLI_HEADERS_MAX - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* the end of the header block: an empty line */
		if (buf[i] == '\n' &&
		    (i == 0 || buf[i - 1] == '\n' ||
		     (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n')))) {
			n = i + 1;
			break;
		}
	}
	*len = n;
	return buf;
}

/* Writes all of FD to stdout; -1 on error. */
int
cli_copy_out(int fd)
{
	char buf[65536];
	off_t off = 0;

	for (;;) {
		ssize_t r = pread(fd, buf, sizeof(buf), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		for (ssize_t done = 0, w; done < r; done += w)
			if ((w = write(STDOUT_FILENO, buf + done,
			               (size_t)(r - done))) <= 0) {
				if (w < 0 && errno == EINTR) {
					w = 0;
					continue;
				}
				return -1;
			}
		off += r;
	}
}

int
cli_flushed(const char *cmd, int rc)
{
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "smimegate: %s: io: writing: %s\n", cmd,
		        strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
	}
	return rc;
}
