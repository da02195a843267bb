/*
 * buf.c - a length-carrying growable byte buffer, always NUL-terminated.
 */
#include "lib/sg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sg_buf_init(struct sg_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void
sg_buf_clear(struct sg_buf *b)
{
	free(b->data);
	sg_buf_init(b);
}

static int
reserve(struct sg_buf *b, size_t extra)
{
	size_t cap;
	char *p;

	if (extra > SIZE_MAX / 2 - b->len)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
sg_buf_add(struct sg_buf *b, const void *p, size_t n)
{
	if (reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
sg_buf_adds(struct sg_buf *b, const char *s)
{
	return sg_buf_add(b, s, strlen(s));
}

int
sg_buf_addf(struct sg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}
