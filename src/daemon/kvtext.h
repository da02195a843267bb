/*
 * kvtext.h - the line format of the spool's envelopes and the quarantine's
 * metadata: one "key value\n" per line, the value percent-encoded (bytes
 * up to 0x20, 0x7f and '%' as %XX), so that a line break, a space or a
 * NUL in a value can never start another key.  Building the text in a
 * growing buffer, and decoding one value strictly.
 */
#ifndef SG_KVTEXT_H
#define SG_KVTEXT_H

#include <stddef.h>

#include "smimegate.h"

/* A growing text buffer, NUL-terminated once anything was added (the
 * DSN writer builds in it too); OOM once an allocation failed, after
 * which nothing more is added.  Zero-initialized; free(P). */
struct kv_buf {
	char *p;
	size_t len, cap;
	int oom;
};

void kv_add(struct kv_buf *b, const char *s, size_t n);
void kv_str(struct kv_buf *b, const char *s);
void kv_addf(struct kv_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The N bytes of V, percent-encoded. */
void kv_enc(struct kv_buf *b, const char *v, size_t n);
/* "KEY V\n" with at most MAX bytes of V encoded; nothing when V is NULL. */
void kv_put(struct kv_buf *b, const char *key, const char *v, size_t max);
void kv_num(struct kv_buf *b, const char *key, long long v);

/*
 * Decodes the N bytes at S into a new string; NULL with *ST: SG_ERR_IO
 * for a bad escape, a raw space or control byte, an encoded NUL, or more
 * than MAX decoded bytes (N over 3 x MAX is refused before anything is
 * allocated); SG_ERR_NOMEM.
 */
char *kv_decode(const char *s, size_t n, size_t max, enum sg_status *st);

/* A decoded numeric value: decimal digits only, 0 to MAX; -1 otherwise. */
int kv_parse_num(const char *s, long long max, long long *out);

#endif
