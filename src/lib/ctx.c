/*
 * ctx.c - the library handle: limits, clock, temporary directory and the
 * detail of the last failure.
 */
#include "lib/sg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/err.h>

static const struct sg_limits default_limits = {
    .max_message = (size_t)1 << 30, /* 1 GiB */
    .max_header_line = 64 * 1024,
    .max_header_block = 1024 * 1024,
    .max_depth = 64,
    .max_parts = 10000,
    .max_cms = (size_t)1 << 30,
    .max_recipients = 1000,
};

enum sg_status
sg_ctx_new(struct sg_ctx **out)
{
	struct sg_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return SG_ERR_NOMEM;
	ctx->limits = default_limits;
	ctx->tmp_memory = SG_TMP_MEMORY_DEFAULT;
	*out = ctx;
	return SG_OK;
}

void
sg_ctx_free(struct sg_ctx *ctx)
{
	if (ctx == NULL)
		return;
	free(ctx->tmpdir);
	free(ctx);
}

void
sg_ctx_get_limits(const struct sg_ctx *ctx, struct sg_limits *out)
{
	*out = ctx->limits;
}

void
sg_ctx_set_limits(struct sg_ctx *ctx, const struct sg_limits *lim)
{
	ctx->limits = *lim;
}

void
sg_ctx_set_time(struct sg_ctx *ctx, time_t now)
{
	ctx->now = now;
}

void
sg_ctx_set_revocation(struct sg_ctx *ctx, struct sg_revocation *rv,
                      int hard_fail)
{
	ctx->revocation = rv;
	ctx->revocation_hard_fail = hard_fail != 0;
}

time_t
sg_ctx_now(const struct sg_ctx *ctx)
{
	return ctx->now != 0 ? ctx->now : time(NULL);
}

enum sg_status
sg_ctx_set_tmpdir(struct sg_ctx *ctx, const char *dir)
{
	char *copy;

	if ((copy = strdup(dir)) == NULL)
		return SG_ERR_NOMEM;
	free(ctx->tmpdir);
	ctx->tmpdir = copy;
	return SG_OK;
}

const char *
sg_ctx_error(const struct sg_ctx *ctx)
{
	return ctx->err[0] != '\0' ? ctx->err : sg_status_text(ctx->last);
}

enum sg_status
sg_ctx_last_status(const struct sg_ctx *ctx)
{
	return ctx->last;
}

void
sg_reset(struct sg_ctx *ctx)
{
	ctx->last = SG_OK;
	ctx->err[0] = '\0';
	ERR_clear_error();
}

static enum sg_status vfail(struct sg_ctx *ctx, enum sg_status st, int with_ssl,
                            const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static enum sg_status
vfail(struct sg_ctx *ctx, enum sg_status st, int with_ssl, const char *fmt,
      va_list ap)
{
	unsigned long e;
	size_t n;

	ctx->last = st;
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	/* The first error on the queue is usually the root cause. */
	e = ERR_peek_error();
	if (with_ssl && e != 0 && ERR_reason_error_string(e) != NULL) {
		n = strlen(ctx->err);
		snprintf(ctx->err + n, sizeof(ctx->err) - n, " (%s)",
		         ERR_reason_error_string(e));
	}
	ERR_clear_error();
	return st;
}

enum sg_status
sg_fail(struct sg_ctx *ctx, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	st = vfail(ctx, st, 1, fmt, ap);
	va_end(ap);
	return st;
}

enum sg_status
sg_fail_plain(struct sg_ctx *ctx, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	st = vfail(ctx, st, 0, fmt, ap);
	va_end(ap);
	return st;
}

void
sg_ctx_set_tmp_memory(struct sg_ctx *ctx, size_t max)
{
	ctx->tmp_memory = max;
}

int
sg_tmpfile(struct sg_ctx *ctx, size_t expect)
{
	const char *dir = ctx->tmpdir;
	int fd;

	/* A small copy never touches the file system: creating and deleting
	 * an inode per message is what a busy gateway's file system feels
	 * most (docs/bench.md, "Where the time went"). */
	if (expect > 0 && expect <= ctx->tmp_memory &&
	    (fd = memfd_create("smimegate", MFD_CLOEXEC)) != -1)
		return fd;

	return sg_tmpfile_open(dir);
}

int
sg_tmpfile_open(const char *dir)
{
	char *path;
	int fd, e;

	if (dir == NULL && (dir = getenv("TMPDIR")) == NULL)
		dir = "/tmp";
	/* O_TMPFILE: never visible under a name, gone when closed. */
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1 ||
	    (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	if (asprintf(&path, "%s/.smimegate-XXXXXX", dir) == -1)
		return -1;
	if ((fd = mkostemp(path, O_CLOEXEC)) != -1 && unlink(path) == -1) {
		e = errno;
		close(fd);
		errno = e;
		fd = -1;
	}
	e = errno;
	free(path);
	errno = e;
	return fd;
}

enum sg_status
sg_ctx_set_error(struct sg_ctx *ctx, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	st = vfail(ctx, st, 0, fmt, ap);
	va_end(ap);
	return st;
}
