/*
 * emit.c - writing results: a BIO over the caller's sink that writes the
 * input's line-end convention, the outer header block, and base64 CMS.
 *
 * Everything is produced internally with CRLF.  The sink BIO makes line
 * ends uniform on the way out: in CRLF mode a bare LF becomes CRLF, in LF
 * mode CRLF becomes LF.
 */
#include "lib/sg_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_CHUNK 65536

struct writer {
	struct sg_sink *sink;
	int lf;         /* write LF line ends */
	int pending_cr; /* LF mode: a CR waits to see what follows */
	int prev_cr;    /* CRLF mode: last byte written was CR */
	int failed;
	size_t len;
	char buf[OUT_CHUNK + 2];
};

static int
drain(struct writer *w)
{
	if (w->len > 0 && !w->failed &&
	    w->sink->write(w->sink->arg, w->buf, w->len) == -1)
		w->failed = 1;
	w->len = 0;
	return w->failed ? -1 : 0;
}

/* Appends N bytes to the writer's buffer, draining it as needed. */
static int
put(struct writer *w, const char *p, size_t n)
{
	if (w->len + n > OUT_CHUNK && drain(w) == -1)
		return -1;
	if (n > OUT_CHUNK) /* a long run goes straight through */
		return w->sink->write(w->sink->arg, p, n) == -1
		           ? (w->failed = 1, -1)
		           : 0;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

static int
sink_write(BIO *b, const char *in, int inl)
{
	struct writer *w = BIO_get_data(b);
	const char *end = in + (inl > 0 ? inl : 0);

	while (in < end && !w->failed) {
		if (w->lf) {
			/* CRLF -> LF: hold a CR until the next byte is seen. */
			if (w->pending_cr) {
				w->pending_cr = 0;
				if (*in != '\n' && put(w, "\r", 1) == -1)
					break;
			}
			const char *cr = memchr(in, '\r', (size_t)(end - in));
			size_t run =
			    cr ? (size_t)(cr - in) : (size_t)(end - in);
			if (put(w, in, run) == -1)
				break;
			w->pending_cr = cr != NULL;
			in = cr ? cr + 1 : end;
		} else {
			/* bare LF -> CRLF */
			const char *nl = memchr(in, '\n', (size_t)(end - in));
			size_t run =
			    nl ? (size_t)(nl - in) : (size_t)(end - in);
			if (put(w, in, run) == -1)
				break;
			if (run > 0)
				w->prev_cr = in[run - 1] == '\r';
			if (nl == NULL)
				break;
			if (put(w, w->prev_cr ? "\n" : "\r\n",
			        w->prev_cr ? 1 : 2) == -1)
				break;
			w->prev_cr = 0;
			in = nl + 1;
		}
	}
	return w->failed ? -1 : inl;
}

static long
sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct writer *w = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		if (w->pending_cr) {
			w->pending_cr = 0;
			if (put(w, "\r", 1) == -1)
				return 0;
		}
		return drain(w) == 0;
	case BIO_CTRL_WPENDING:
	case BIO_CTRL_PENDING:
		return 0;
	default:
		return 0;
	}
}

static int
sink_puts(BIO *b, const char *s)
{
	return sink_write(b, s, (int)strlen(s));
}

static int
sink_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static void
sink_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "smimegate sink");
	if (m == NULL)
		return;
	BIO_meth_set_write(m, sink_write);
	BIO_meth_set_puts(m, sink_puts);
	BIO_meth_set_ctrl(m, sink_ctrl);
	BIO_meth_set_destroy(m, sink_destroy);
	sink_method = m;
}

BIO *
sg_sink_bio(struct sg_sink *sink, int lf)
{
	struct writer *w;
	BIO *b;

	pthread_once(&sink_once, sink_method_init);
	if (sink_method == NULL || (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->sink = sink;
	w->lf = lf;
	if ((b = BIO_new(sink_method)) == NULL) {
		free(w);
		return NULL;
	}
	BIO_set_data(b, w);
	BIO_set_init(b, 1);
	return b;
}

static int
fd_write(void *arg, const void *buf, size_t len)
{
	int fd = *(int *)arg;
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void
sg_sink_fd(struct sg_sink *sink, int *fd)
{
	sink->write = fd_write;
	sink->arg = fd;
}

int
sg_emit_outer_headers(const struct sg_msg *msg, BIO *out)
{
	for (size_t i = 0; i < msg->nhdrs; i++) {
		const struct sg_hdr *h = &msg->hdrs[i];

		if (sg_hdr_is_content(h->name) || sg_hdr_is_dropped(h->name))
			continue;
		if (BIO_write(out, h->raw, (int)h->len) != (int)h->len)
			return -1;
		/* The last field may lack a line end (headers-only input). */
		if (h->len > 0 && h->raw[h->len - 1] != '\n' &&
		    BIO_puts(out, "\r\n") <= 0)
			return -1;
	}
	return BIO_puts(out, "MIME-Version: 1.0\r\n") > 0 ? 0 : -1;
}

int
sg_bio_copy(BIO *rd, BIO *wr)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(rd, buf, sizeof(buf))) > 0)
		if (BIO_write(wr, buf, n) != n)
			return -1;
	return n < 0 ? -1 : 0;
}

int
sg_emit_cms_base64(BIO *out, CMS_ContentInfo *cms, BIO *stream_in, int flags)
{
	BIO *b64;
	int ok;

	if ((b64 = BIO_new(BIO_f_base64())) == NULL)
		return -1;
	BIO_push(b64, out);
	if (stream_in != NULL)
		ok = i2d_CMS_bio_stream(b64, cms, stream_in, flags);
	else
		ok = i2d_CMS_bio(b64, cms);
	ok = ok && BIO_flush(b64) == 1;
	BIO_pop(b64);
	BIO_free(b64);
	return ok ? 0 : -1;
}
