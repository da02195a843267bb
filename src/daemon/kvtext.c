/*
 * kvtext.c - the "key value" line format shared by the spool and the
 * quarantine (kvtext.h).
 */
#include "daemon/kvtext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
kv_add(struct kv_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->p == NULL || n + 1 > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;
		while (cap - b->len < n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->oom = 1;
				return;
			}
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
kv_str(struct kv_buf *b, const char *s)
{
	kv_add(b, s, strlen(s));
}

void
kv_addf(struct kv_buf *b, const char *fmt, ...)
{
	char line[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= sizeof(line)) {
		va_start(ap, fmt);
		n = vasprintf(&big, fmt, ap);
		va_end(ap);
	}
	if (n < 0) {
		b->oom = 1;
		return;
	}
	kv_add(b, big ? big : line, (size_t)n);
	free(big);
}

void
kv_enc(struct kv_buf *b, const char *v, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c == 0x7f || c == '%') {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			kv_add(b, e, 3);
		} else {
			kv_add(b, (const char *)&c, 1);
		}
	}
}

void
kv_put(struct kv_buf *b, const char *key, const char *v, size_t max)
{
	if (v == NULL)
		return;
	kv_str(b, key);
	kv_add(b, " ", 1);
	kv_enc(b, v, strnlen(v, max));
	kv_add(b, "\n", 1);
}

void
kv_num(struct kv_buf *b, const char *key, long long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", v);
	kv_put(b, key, num, sizeof(num));
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
kv_decode(const char *s, size_t n, size_t max, enum sg_status *st)
{
	char *out, *o;

	*st = SG_ERR_IO;
	if (n > 3 * max)
		return NULL;
	if ((o = out = malloc(n + 1)) == NULL) {
		*st = SG_ERR_NOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= n)
				goto fail;
			h = hexval(s[i + 1]);
			l = hexval(s[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				goto fail;
			*o++ = (char)(h << 4 | l);
			i += 2;
		} else if (c <= 0x20 || c == 0x7f) {
			goto fail;
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	if ((size_t)(o - out) > max)
		goto fail;
	*st = SG_OK;
	return out;
fail:
	free(out);
	return NULL;
}

int
kv_parse_num(const char *s, long long max, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}
