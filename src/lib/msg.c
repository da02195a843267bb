/*
 * msg.c - an input message: kept in a file, its header block parsed into
 * raw fields with their offsets, bounded by the handle's limits.
 *
 * The body is never loaded as a whole; modules read the ranges they need
 * with sg_msg_pread().  A non-seekable input (a pipe) is spooled first to
 * an unlinked temporary file.
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 65536

int
sg_msg_pread(const struct sg_msg *msg, void *buf, size_t len, size_t off)
{
	char *p = buf;
	ssize_t n;

	if (off > msg->size || len > msg->size - off)
		return -1;
	while (len > 0) {
		n = pread(msg->fd, p, len, msg->base + (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		off += (size_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copies everything from FD into a new spool file, up to MAX bytes. */
static enum sg_status
spool(struct sg_ctx *ctx, int fd, int *out, size_t *size)
{
	char *buf;
	size_t total = 0;
	ssize_t n, w;
	int tmp;

	if ((tmp = sg_tmpfile(ctx, 0)) == -1)
		return sg_fail_plain(ctx, SG_ERR_IO,
		                     "cannot create a temporary file: %s",
		                     strerror(errno));
	if ((buf = malloc(CHUNK)) == NULL) {
		close(tmp);
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	}
	for (;;) {
		n = read(fd, buf, CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			sg_fail_plain(ctx, SG_ERR_IO, "cannot read input: %s",
			              strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if ((size_t)n > ctx->limits.max_message - total) {
			sg_fail_plain(ctx, SG_ERR_LIMIT,
			              "message larger than %zu bytes",
			              ctx->limits.max_message);
			goto fail;
		}
		total += (size_t)n;
		for (ssize_t done = 0; done < n; done += w) {
			w = write(tmp, buf + done, (size_t)(n - done));
			if (w == -1 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				sg_fail_plain(ctx, SG_ERR_IO,
				              "cannot write spool: %s",
				              strerror(errno));
				goto fail;
			}
		}
	}
	free(buf);
	*out = tmp;
	*size = total;
	return SG_OK;
fail:
	free(buf);
	close(tmp);
	return ctx->last;
}

static int
is_ftext(unsigned char c)
{
	return c > 32 && c < 127 && c != ':';
}

static enum sg_status
add_field(struct sg_msg *msg, size_t start, size_t end, size_t *cap)
{
	struct sg_hdr *h;
	const char *p = msg->hdrblock + start;
	size_t nlen = 0;

	while (start + nlen < end && is_ftext((unsigned char)p[nlen]))
		nlen++;
	/* Allow white space between the name and the colon (obsolete). */
	size_t colon = nlen;
	while (start + colon < end && (p[colon] == ' ' || p[colon] == '\t'))
		colon++;
	if (nlen == 0 || start + colon >= end || p[colon] != ':')
		return sg_fail_plain(msg->ctx, SG_ERR_MIME,
		                     "malformed header field at byte %zu: "
		                     "no field name and colon",
		                     start);
	if (msg->nhdrs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		h = realloc(msg->hdrs, ncap * sizeof(*h));
		if (h == NULL)
			return sg_fail_plain(msg->ctx, SG_ERR_NOMEM,
			                     "out of memory");
		msg->hdrs = h;
		*cap = ncap;
	}
	h = &msg->hdrs[msg->nhdrs];
	if ((h->name = strndup(p, nlen)) == NULL)
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	h->off = start;
	h->len = end - start;
	h->raw = p;
	msg->nhdrs++;
	return SG_OK;
}

/* Reads and splits the header block: fields, their raw bytes, the body
 * offset and the line-end convention. */
static enum sg_status
parse_headers(struct sg_msg *msg)
{
	const struct sg_limits *lim = &msg->ctx->limits;
	size_t want = msg->size < lim->max_header_block + 2
	                  ? msg->size
	                  : lim->max_header_block + 2;
	size_t pos = 0, field = 0, cap = 0, line_no = 0;
	int in_field = 0, found_end = 0;
	enum sg_status st;
	char *blk;

	if ((blk = malloc(want + 1)) == NULL)
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	if (sg_msg_pread(msg, blk, want, 0) == -1) {
		free(blk);
		return sg_fail_plain(msg->ctx, SG_ERR_IO,
		                     "cannot read the message: %s",
		                     strerror(errno));
	}
	blk[want] = '\0';
	msg->hdrblock = blk;

	while (pos < want) {
		char *nl = memchr(blk + pos, '\n', want - pos);
		size_t end = nl ? (size_t)(nl - blk) + 1 : want;
		size_t content = end - pos;

		line_no++;
		if (nl != NULL && line_no == 1)
			msg->crlf = end >= 2 && blk[end - 2] == '\r';
		if (content > lim->max_header_line ||
		    (nl == NULL && want < msg->size))
			return sg_fail_plain(
			    msg->ctx, SG_ERR_LIMIT,
			    "header line %zu longer than %zu bytes", line_no,
			    lim->max_header_line);
		/* The blank line that ends the header block. */
		if (blk[pos] == '\n' || (blk[pos] == '\r' && pos + 1 < want &&
		                         blk[pos + 1] == '\n')) {
			msg->hdrlen = pos;
			msg->body_off = end;
			found_end = 1;
			break;
		}
		if (blk[pos] == ' ' || blk[pos] == '\t') {
			if (!in_field)
				return sg_fail_plain(
				    msg->ctx, SG_ERR_MIME,
				    "header line %zu is a continuation "
				    "with no field before it",
				    line_no);
		} else {
			if (in_field &&
			    (st = add_field(msg, field, pos, &cap)) != SG_OK)
				return st;
			field = pos;
			in_field = 1;
		}
		if (pos - field + content > lim->max_header_line)
			return sg_fail_plain(msg->ctx, SG_ERR_LIMIT,
			                     "header field at line %zu longer "
			                     "than %zu bytes",
			                     line_no, lim->max_header_line);
		pos = end;
	}
	if (!found_end) {
		if (want < msg->size)
			return sg_fail_plain(msg->ctx, SG_ERR_LIMIT,
			                     "header block larger than %zu "
			                     "bytes",
			                     lim->max_header_block);
		/* A message of headers only. */
		msg->hdrlen = msg->body_off = want;
	}
	if (in_field &&
	    (st = add_field(msg, field, msg->hdrlen, &cap)) != SG_OK)
		return st;
	if (msg->nhdrs == 0)
		return sg_fail_plain(msg->ctx, SG_ERR_MIME,
		                     "the message has no header fields");
	return SG_OK;
}

static enum sg_status
msg_init(struct sg_ctx *ctx, int fd, int owns, off_t base, size_t size,
         struct sg_msg **out)
{
	struct sg_msg *msg;
	enum sg_status st;

	if ((msg = calloc(1, sizeof(*msg))) == NULL) {
		if (owns)
			close(fd);
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	}
	msg->ctx = ctx;
	msg->fd = fd;
	msg->owns_fd = owns;
	msg->base = base;
	msg->size = size;
	if (size == 0) {
		sg_msg_free(msg);
		return sg_fail_plain(ctx, SG_ERR_MIME, "the input is empty");
	}
	if ((st = parse_headers(msg)) != SG_OK) {
		sg_msg_free(msg);
		return st;
	}
	*out = msg;
	return SG_OK;
}

enum sg_status
sg_msg_open_fd(struct sg_ctx *ctx, int fd, struct sg_msg **out)
{
	struct stat sb;
	off_t cur;
	size_t size = 0;
	enum sg_status st;
	int tmp = -1;

	sg_reset(ctx);
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (cur = lseek(fd, 0, SEEK_CUR)) != -1) {
		if (sb.st_size < cur)
			return sg_fail_plain(ctx, SG_ERR_IO,
			                     "input offset past its end");
		if ((size_t)(sb.st_size - cur) > ctx->limits.max_message)
			return sg_fail_plain(ctx, SG_ERR_LIMIT,
			                     "message larger than %zu bytes",
			                     ctx->limits.max_message);
		return msg_init(ctx, fd, 0, cur, (size_t)(sb.st_size - cur),
		                out);
	}
	if ((st = spool(ctx, fd, &tmp, &size)) != SG_OK)
		return st;
	return msg_init(ctx, tmp, 1, 0, size, out);
}

enum sg_status
sg_msg_open_mem(struct sg_ctx *ctx, const void *data, size_t len,
                struct sg_msg **out)
{
	const char *p = data;
	size_t done = 0;
	ssize_t w;
	int tmp;

	sg_reset(ctx);
	if (len > ctx->limits.max_message)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "message larger than %zu bytes",
		                     ctx->limits.max_message);
	if ((tmp = sg_tmpfile(ctx, len)) == -1)
		return sg_fail_plain(ctx, SG_ERR_IO,
		                     "cannot create a temporary file: %s",
		                     strerror(errno));
	while (done < len) {
		w = write(tmp, p + done, len - done);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(tmp);
			return sg_fail_plain(ctx, SG_ERR_IO,
			                     "cannot write spool: %s",
			                     strerror(errno));
		}
		done += (size_t)w;
	}
	return msg_init(ctx, tmp, 1, 0, len, out);
}

size_t
sg_msg_size(const struct sg_msg *msg)
{
	return msg->size;
}

void
sg_msg_free(struct sg_msg *msg)
{
	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->nhdrs; i++)
		free(msg->hdrs[i].name);
	free(msg->hdrs);
	free(msg->hdrblock);
	if (msg->owns_fd)
		close(msg->fd);
	free(msg);
}

int
sg_msg_is_crlf(const struct sg_msg *msg)
{
	return msg->crlf;
}

enum sg_smime_kind
sg_msg_smime_kind(const struct sg_msg *msg)
{
	enum sg_smime_kind kind;

	/* SG_KIND_NONE also when GMime was needed and cannot be loaded: a
	 * long-running process loads it at start (sg_preload) */
	sg_mime_kind(msg, &kind);
	return kind;
}

char *
sg_msg_header_nth(const struct sg_msg *msg, size_t i)
{
	const struct sg_hdr *h = &msg->hdrs[i];
	const char *p, *end;
	struct sg_buf b;

	p = memchr(h->raw, ':', h->len) + 1;
	end = h->raw + h->len;
	sg_buf_init(&b);
	if (sg_buf_add(&b, "", 0) == -1)
		return NULL;
	/* Unfold: drop line ends, keep the white space after them. */
	for (; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (sg_buf_add(&b, p, 1) == -1) {
			sg_buf_clear(&b);
			return NULL;
		}
	}
	/* Trim. */
	size_t s = 0, e = b.len;
	while (s < e && isspace((unsigned char)b.data[s]))
		s++;
	while (e > s && isspace((unsigned char)b.data[e - 1]))
		e--;
	memmove(b.data, b.data + s, e - s);
	b.data[e - s] = '\0';
	return b.data;
}

char *
sg_msg_header(const struct sg_msg *msg, const char *name)
{
	for (size_t i = 0; i < msg->nhdrs; i++)
		if (strcasecmp(msg->hdrs[i].name, name) == 0)
			return sg_msg_header_nth(msg, i);
	return NULL;
}

int
sg_hdr_is_content(const char *name)
{
	return strncasecmp(name, "Content-", 8) == 0;
}

int
sg_hdr_is_dropped(const char *name)
{
	/* MIME-Version is written anew; Bcc must never travel; the change
	 * breaks any DKIM signature, so it goes. */
	return strcasecmp(name, "MIME-Version") == 0 ||
	       strcasecmp(name, "Bcc") == 0 ||
	       strcasecmp(name, "Resent-Bcc") == 0 ||
	       strcasecmp(name, "DKIM-Signature") == 0;
}

/* Whether field H (NAME: value) is DROP_NAME with a value starting with
 * DROP_PREFIX as a whole word. */
static int
dropped(const struct sg_hdr *h, const char *drop_name, const char *prefix)
{
	const char *v, *end = h->raw + h->len;
	size_t n;

	if (drop_name == NULL || strcasecmp(h->name, drop_name) != 0)
		return 0;
	v = memchr(h->raw, ':', h->len) + 1;
	while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
		v++;
	n = strlen(prefix);
	return (size_t)(end - v) > n && strncasecmp(v, prefix, n) == 0 &&
	       (v[n] == ';' || v[n] == ' ' || v[n] == '\t' || v[n] == '\r' ||
	        v[n] == '\n');
}

enum sg_status
sg_msg_write_headers(struct sg_ctx *ctx, struct sg_msg *msg,
                     const char *prepend, const char *drop_name,
                     const char *drop_prefix, struct sg_sink *sink)
{
	return sg_msg_write_edited(ctx, msg, prepend, drop_name, drop_prefix,
	                           NULL, sink);
}

static int
removed(const struct sg_hdr *h, const char *const *remove)
{
	for (size_t i = 0; remove != NULL && remove[i] != NULL; i++)
		if (strcasecmp(h->name, remove[i]) == 0)
			return 1;
	return 0;
}

enum sg_status
sg_msg_write_edited(struct sg_ctx *ctx, struct sg_msg *msg, const char *prepend,
                    const char *drop_name, const char *drop_prefix,
                    const char *const *remove, struct sg_sink *sink)
{
	struct sg_source *src = sg_source_new();
	BIO *in = NULL, *out = NULL;
	enum sg_status st = SG_OK;
	int ok = src != NULL;

	sg_reset(ctx);
	if (ok && prepend != NULL)
		ok = sg_source_add_mem(src, prepend, strlen(prepend), 0) == 0;
	for (size_t i = 0; ok && i < msg->nhdrs; i++)
		if (!dropped(&msg->hdrs[i], drop_name, drop_prefix) &&
		    !removed(&msg->hdrs[i], remove))
			ok = sg_source_add_mem(src, msg->hdrs[i].raw,
			                       msg->hdrs[i].len, 0) == 0;
	/* The blank line and the body, as they are. */
	ok = ok &&
	     sg_source_add_file(src, msg->fd, msg->base + (off_t)msg->hdrlen,
	                        msg->size - msg->hdrlen, 0) == 0;
	if (!ok || (in = sg_source_bio(src)) == NULL ||
	    (out = sg_sink_bio(sink, !msg->crlf)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (sg_bio_copy(in, out) == -1 || BIO_flush(out) != 1)
		st = sg_fail_plain(ctx, SG_ERR_IO, "cannot write the message");
out:
	BIO_free(in);
	BIO_free(out);
	sg_source_free(src);
	return st;
}
