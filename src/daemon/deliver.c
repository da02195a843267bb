/*
 * deliver.c - maildir delivery (deliver.h is the contract).
 *
 * What it trusts: the maildir path of the configuration.  What it can
 * reach: that directory (created 0700 with its parents when missing) and
 * the message's descriptor.  The copy is streamed through one fixed
 * buffer; durability is the maildir protocol plus fsyncs: tmp/NAME
 * written and fsync'd, renamed into new/, new/ fsync'd.
 */
#include "daemon/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fsio.h"
#include "smimegate.h"

#define DELIVER_BUF  65536
#define DELIVER_HOST 64 /* bytes of the host name kept */

/* mkdir -p PATH, each created component 0700.  0 or -1 (errno). */
static int
make_dirs(const char *path)
{
	char *p, *s;
	int rc = 0;

	if ((p = strdup(path)) == NULL)
		return -1;
	for (s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = -1;
		*s = c;
		if (c == '\0')
			break;
	}
	if (rc < 0) {
		int e = errno;
		free(p);
		errno = e;
		return -1;
	}
	free(p);
	return 0;
}

static int
open_sub(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The host name as the maildir convention wants it: '/' and ':' are
 * written as \057 and \072. */
static void
host_part(char *out, size_t len)
{
	char host[DELIVER_HOST + 1];
	size_t o = 0;

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[DELIVER_HOST] = '\0';
	for (const char *h = host; *h && o + 5 < len; h++) {
		if (*h == '/' || *h == ':') {
			o += (size_t)snprintf(out + o, len - o, "\\%03o",
			                      (unsigned)(unsigned char)*h);
		} else if ((unsigned char)*h > 0x20 &&
		           (unsigned char)*h < 0x7f) {
			out[o++] = *h;
		}
	}
	out[o] = '\0';
}

static enum sg_status
unique_name(char *out, size_t len)
{
	unsigned char rnd[16];
	char hex[2 * sizeof(rnd) + 1], host[DELIVER_HOST * 4 + 1];
	struct timespec ts;
	int n;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return SG_ERR_TEMP;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	host_part(host, sizeof(host));
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(out, len, "%lld.M%06ldP%ldR%s.%s", (long long)ts.tv_sec,
	             ts.tv_nsec / 1000, (long)getpid(), hex, host);
	if (n < 0 || (size_t)n >= len)
		return SG_ERR_USAGE;
	return SG_OK;
}

/* Copies DATA_FD into FD.  0, or -1 with *READ_SIDE telling which end
 * failed. */
static int
copy_data(int data_fd, int fd, unsigned char *buf, int *read_side)
{
	off_t off = 0;
	int use_pread = 1;

	for (;;) {
		ssize_t n;

		if (use_pread) {
			n = pread(data_fd, buf, DELIVER_BUF, off);
			if (n < 0 && errno == ESPIPE && off == 0) {
				use_pread = 0;
				continue;
			}
		} else {
			n = read(data_fd, buf, DELIVER_BUF);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*read_side = 1;
			return -1;
		}
		if (n == 0)
			return 0;
		off += n;
		if (fsio_write_all(fd, buf, (size_t)n) < 0) {
			*read_side = 0;
			return -1;
		}
	}
}

/* The maildir's directories, created when missing. */
struct maildir_fds {
	int dir, tmp, new, cur;
};

static void
maildir_close(struct maildir_fds *m)
{
	int *fds[] = {&m->cur, &m->new, &m->tmp, &m->dir};

	for (size_t i = 0; i < sizeof(fds) / sizeof(*fds); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

static int
maildir_open(const char *path, struct maildir_fds *m)
{
	m->dir = m->tmp = m->new = m->cur = -1;
	if (make_dirs(path) < 0 ||
	    (m->dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (m->tmp = open_sub(m->dir, "tmp")) < 0 ||
	    (m->new = open_sub(m->dir, "new")) < 0 ||
	    (m->cur = open_sub(m->dir, "cur")) < 0) {
		int e = errno;
		maildir_close(m);
		errno = e;
		return -1;
	}
	return 0;
}

/* Creates tmp/NAME with a fresh unique NAME. */
static enum sg_status
maildir_create(struct maildir_fds *m, char *name, size_t len, int *out)
{
	enum sg_status st;
	int fd = -1;

	for (int tries = 0; tries < 4 && fd < 0; tries++) {
		if ((st = unique_name(name, len)) != SG_OK)
			return st;
		fd = openat(
		    m->tmp, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return fsio_errno_status(errno);
	*out = fd;
	return SG_OK;
}

enum sg_status
deliver_maildir(const char *maildir, int data_fd, const char *prefix_headers,
                char *name_out, size_t name_len)
{
	struct maildir_fds m = {-1, -1, -1, -1};
	char name[DELIVER_NAME_MAX];
	unsigned char *buf = NULL;
	enum sg_status st = SG_ERR_USAGE;
	int fd = -1, stage = 0; /* 1: in tmp/, 2: in new/ */
	int read_side = 0;

	if (maildir == NULL || maildir[0] == '\0' ||
	    (name_out != NULL && name_len < DELIVER_NAME_MAX))
		goto fail;
	st = SG_ERR_NOMEM;
	if ((buf = malloc(DELIVER_BUF)) == NULL)
		goto fail;
	if (maildir_open(maildir, &m) < 0) {
		st = fsio_errno_status(errno);
		goto fail;
	}
	if ((st = maildir_create(&m, name, sizeof(name), &fd)) != SG_OK)
		goto fail;
	stage = 1;
	if ((prefix_headers != NULL &&
	     fsio_write_all(fd, prefix_headers, strlen(prefix_headers)) < 0) ||
	    copy_data(data_fd, fd, buf, &read_side) < 0 || fsync(fd) < 0) {
		st = read_side ? SG_ERR_IO : fsio_errno_status(errno);
		goto fail;
	}
	st = close(fd) < 0 ? fsio_errno_status(errno) : SG_OK;
	fd = -1;
	if (st != SG_OK)
		goto fail;
	if (renameat(m.tmp, name, m.new, name) < 0) {
		st = fsio_errno_status(errno);
		goto fail;
	}
	stage = 2;
	if (fsync(m.new) < 0) { /* in new/, maybe not durable: take it back */
		st = fsio_errno_status(errno);
		goto fail;
	}
	if (name_out != NULL)
		snprintf(name_out, name_len, "%s", name);
	maildir_close(&m);
	free(buf);
	return SG_OK;
fail:
	if (fd >= 0)
		close(fd);
	if (stage == 1)
		unlinkat(m.tmp, name, 0);
	else if (stage == 2)
		unlinkat(m.new, name, 0);
	maildir_close(&m);
	free(buf);
	return st;
}
