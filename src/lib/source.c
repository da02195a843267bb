/*
 * source.c - a rewindable BIO over a list of segments (memory bytes and
 * file ranges), optionally canonicalizing bare LF to CRLF on the way.
 *
 * It lets the signer hash an entity and then write the very same bytes
 * without ever holding the entity in memory.  The BIO_METHOD is created
 * once (pthread_once) and never changes afterwards.
 */
#include "lib/sg_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAW_CHUNK 131072

struct sg_source {
	struct sg_seg *segs;
	size_t nsegs, cap;
};

struct reader {
	struct sg_source *src;
	BIO *tee;    /* gets a copy of everything read, or NULL */
	size_t seg;  /* current segment */
	size_t pos;  /* offset inside it */
	int prev_cr; /* last raw byte was CR (for canonicalization) */
	char raw[RAW_CHUNK];
	char out[2 * RAW_CHUNK];
	size_t out_pos, out_len;
};

struct sg_source *
sg_source_new(void)
{
	return calloc(1, sizeof(struct sg_source));
}

void
sg_source_free(struct sg_source *src)
{
	if (src == NULL)
		return;
	free(src->segs);
	free(src);
}

static int
add(struct sg_source *src, const struct sg_seg *seg)
{
	if (seg->len == 0)
		return 0;
	if (src->nsegs == src->cap) {
		size_t ncap = src->cap ? src->cap * 2 : 8;
		struct sg_seg *s = realloc(src->segs, ncap * sizeof(*s));
		if (s == NULL)
			return -1;
		src->segs = s;
		src->cap = ncap;
	}
	src->segs[src->nsegs++] = *seg;
	return 0;
}

int
sg_source_add_mem(struct sg_source *src, const char *p, size_t n, int canon)
{
	struct sg_seg s = {.mem = p, .fd = -1, .len = n, .canon = canon};
	return add(src, &s);
}

int
sg_source_add_file(struct sg_source *src, int fd, off_t off, size_t n,
                   int canon)
{
	struct sg_seg s = {.fd = fd, .off = off, .len = n, .canon = canon};
	return add(src, &s);
}

/* Refills r->out from the segments; returns bytes available, 0 at the end,
 * -1 on a read error. */
static int
refill(struct reader *r)
{
	struct sg_seg *s;
	size_t want;
	ssize_t n;
	const char *in;

	r->out_pos = r->out_len = 0;
	while (r->seg < r->src->nsegs && r->pos >= r->src->segs[r->seg].len) {
		r->seg++;
		r->pos = 0;
	}
	if (r->seg >= r->src->nsegs)
		return 0;
	s = &r->src->segs[r->seg];
	want = s->len - r->pos;
	if (want > RAW_CHUNK)
		want = RAW_CHUNK;
	if (s->mem != NULL) {
		in = s->mem + r->pos;
		n = (ssize_t)want;
	} else {
		do
			n = pread(s->fd, r->raw, want, s->off + (off_t)r->pos);
		while (n == -1 && errno == EINTR);
		if (n <= 0)
			return -1;
		in = r->raw;
	}
	r->pos += (size_t)n;
	if (!s->canon) {
		memcpy(r->out, in, (size_t)n);
		r->out_len = (size_t)n;
		r->prev_cr = n > 0 && in[n - 1] == '\r';
		return 1;
	}
	/* Copy runs between line feeds; add a CR where one is missing. */
	for (const char *p = in, *end = in + n; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t run = nl ? (size_t)(nl - p) : (size_t)(end - p);

		memcpy(r->out + r->out_len, p, run);
		r->out_len += run;
		if (run > 0)
			r->prev_cr = p[run - 1] == '\r';
		if (nl == NULL)
			break;
		if (!r->prev_cr)
			r->out[r->out_len++] = '\r';
		r->out[r->out_len++] = '\n';
		r->prev_cr = 0;
		p = nl + 1;
	}
	return 1;
}

static int
src_read(BIO *b, char *buf, int len)
{
	struct reader *r = BIO_get_data(b);
	size_t n;
	int rc;

	if (len <= 0)
		return 0;
	while (r->out_pos == r->out_len) {
		if ((rc = refill(r)) <= 0)
			return rc;
	}
	n = r->out_len - r->out_pos;
	if (n > (size_t)len)
		n = (size_t)len;
	memcpy(buf, r->out + r->out_pos, n);
	r->out_pos += n;
	if (r->tee != NULL && BIO_write(r->tee, buf, (int)n) != (int)n)
		return -1;
	return (int)n;
}

static long
src_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct reader *r = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_RESET:
		r->seg = r->pos = r->out_pos = r->out_len = 0;
		r->prev_cr = 0;
		return 1;
	case BIO_CTRL_EOF:
		return r->seg >= r->src->nsegs && r->out_pos == r->out_len;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int
src_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *src_method;
static pthread_once_t src_once = PTHREAD_ONCE_INIT;

static void
src_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "smimegate source");
	if (m == NULL)
		return;
	BIO_meth_set_read(m, src_read);
	BIO_meth_set_ctrl(m, src_ctrl);
	BIO_meth_set_destroy(m, src_destroy);
	src_method = m;
}

void
sg_source_set_tee(BIO *b, BIO *tee)
{
	struct reader *r = BIO_get_data(b);

	r->tee = tee;
}

BIO *
sg_source_bio(struct sg_source *src)
{
	struct reader *r;
	BIO *b;

	pthread_once(&src_once, src_method_init);
	if (src_method == NULL || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->src = src;
	if ((b = BIO_new(src_method)) == NULL) {
		free(r);
		return NULL;
	}
	BIO_set_data(b, r);
	BIO_set_init(b, 1);
	return b;
}
