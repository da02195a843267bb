/*
 * quarantine.c - named quarantines (quarantine.h is the contract,
 * docs/quarantine.md the layout and the file format, quarantine_meta.c
 * the text of a .meta file).
 *
 * What it trusts: the directories it creates or checks (ours, 0700);
 * metadata files are still parsed with bounded sizes, and one that is
 * damaged is refused with its reason, never trusted.  What it can reach:
 * SPOOL/quarantine/, its subdirectories and SPOOL/release/, through
 * directory descriptors opened once (a quarantine's on first use); names
 * and IDs are checked against their alphabets before they become file
 * names, and every open is O_NOFOLLOW.
 *
 * Put (crash-safe as a spool commit):
 *   1. under the change lock, create NAME/.tmp.ID.msg and .tmp.ID.meta
 *      (O_EXCL, 0600) and flock each: a locked temporary file is a put in
 *      progress, which recovery leaves alone;
 *   2. copy the message (pread from offset 0), fsync; write the
 *      metadata, fsync;
 *   3. under the change lock, rename .tmp.ID.msg to ID.msg, then
 *      .tmp.ID.meta to ID.meta (the .meta's presence means complete);
 *   4. fsync NAME/; only then SG_OK.
 * Any failure removes what was written.
 *
 * The change lock: a mutex (the threads of this handle) and an exclusive
 * flock of quarantine/.lock (other handles and processes: the daemon and
 * the CLI), held for the renames and unlinks of one state change and for
 * recovery, never for a copy, an fsync or a callback.  So a .msg or .meta
 * without its partner, seen under the lock, is what a crash left.
 *
 * Recovery (at open, under the lock): in every quarantine directory,
 * temporary files nobody holds locked are removed; an ID whose .msg and
 * .meta are split between a quarantine and release/ (a release cut by a
 * crash) is completed by moving the quarantine's part into release/; an
 * ID complete in release/ loses any copy left in a quarantine; any other
 * .msg or .meta without its partner is removed.
 */
#include "daemon/quarantine.h"
#include "daemon/quarantine_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fsio.h"
#include "daemon/reason.h"
#include "daemon/spool.h"
#include "smimegate.h"

#define Q_FILE_MAX (SPOOL_ID_LEN + 16) /* ".tmp.ID.meta" fits */
#define Q_DIRS_MAX 1024                /* quarantine directories kept open */
#define Q_COPY_BUF 65536
#define Q_ERR_MAX  512
#define Q_TMP      ".tmp."

/* An open quarantine directory. */
struct qdir {
	char name[QUARANTINE_NAME_MAX + 1];
	int fd;
};

struct quarantine {
	int qfd;                /* SPOOL/quarantine */
	int relfd;              /* SPOOL/release */
	int lockfd;             /* SPOOL/quarantine/.lock */
	pthread_mutex_t change; /* with the flock of lockfd: a state change */
	pthread_mutex_t take;   /* one take_released at a time */
	pthread_mutex_t mu;     /* dirs, ndirs */
	struct qdir *dirs;
	size_t ndirs;
	pthread_mutex_t errmu; /* err */
	char err[Q_ERR_MAX];
	time_t (*now)(void *);
	void *now_arg;
};

/* ---- small helpers ---- */

/* Keeps the reason of a failure on the handle; returns ST. */
static enum sg_status __attribute__((format(printf, 3, 4)))
qfail(struct quarantine *q, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&q->errmu);
	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&q->errmu);
	return st;
}

/* The same for a failed system call (errno says why). */
static enum sg_status
qfail_errno(struct quarantine *q, const char *op, const char *what)
{
	int e = errno;

	return qfail(q, fsio_errno_status(e), "%s %s: %s", op, what,
	             strerror(e));
}

void
quarantine_error(struct quarantine *q, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	pthread_mutex_lock(&q->errmu);
	snprintf(buf, len, "%s", q->err[0] ? q->err : "no error");
	pthread_mutex_unlock(&q->errmu);
}

void
quarantine_set_clock(struct quarantine *q, time_t (*now)(void *arg), void *arg)
{
	q->now = now;
	q->now_arg = arg;
}

static time_t
q_now(struct quarantine *q)
{
	return q->now ? q->now(q->now_arg) : time(NULL);
}

int
quarantine_id_valid(const char *id)
{
	return spool_id_valid(id);
}

int
quarantine_name_valid(const char *name)
{
	size_t n = 0;

	if (name == NULL)
		return 0;
	for (; name[n] != '\0'; n++) {
		char c = name[n];
		if (n >= QUARANTINE_NAME_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

static int
exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
fsync_dir(int fd)
{
	int rc;

	while ((rc = fsync(fd)) < 0 && errno == EINTR)
		;
	return rc;
}

/* ---- the change lock ---- */

static int
change_lock(struct quarantine *q)
{
	int rc;

	pthread_mutex_lock(&q->change);
	while ((rc = flock(q->lockfd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		int e = errno;
		pthread_mutex_unlock(&q->change);
		errno = e;
	}
	return rc;
}

static void
change_unlock(struct quarantine *q)
{
	flock(q->lockfd, LOCK_UN);
	pthread_mutex_unlock(&q->change);
}

/* ---- entries ---- */

void
quarantine_info_clear(struct quarantine_info *info)
{
	if (info == NULL)
		return;
	free(info->rule);
	free(info->reason);
	spool_env_clear(&info->env);
	memset(info, 0, sizeof(*info));
}

void
quarantine_list_free(struct quarantine_info *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		quarantine_info_clear(&v[i]);
	free(v);
}

static int
info_cmp(const void *pa, const void *pb)
{
	const struct quarantine_info *a = pa, *b = pb;
	int c;

	if (a->quarantined != b->quarantined)
		return a->quarantined < b->quarantined ? -1 : 1;
	if ((c = strcmp(a->id, b->id)) != 0)
		return c;
	return strcmp(a->name, b->name);
}

/* ---- reading a .meta file (its text: quarantine_meta.c) ---- */

/* Reads WHERE/ID.meta (DIRFD is WHERE) into OUT.  SG_ERR_NOT_FOUND when
 * there is none, SG_ERR_IO when it is damaged (the reason kept). */
static enum sg_status
meta_load(struct quarantine *q, int dirfd, const char *where, const char *id,
          struct quarantine_info *out)
{
	char name[Q_FILE_MAX], why[256] = "";
	struct quarantine_info tmp;
	enum sg_status st;
	struct stat sb;
	char *text = NULL;
	size_t len = 0;
	int fd;

	snprintf(name, sizeof(name), "%s.meta", id);
	fd =
	    openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return qfail(q, SG_ERR_NOT_FOUND, "%s/%s: no such file",
			             where, name);
		return qfail(q, SG_ERR_IO, "%s/%s: %s", where, name,
		             strerror(errno));
	}
	if (fstat(fd, &sb) < 0) {
		st = qfail_errno(q, "reading", name);
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)QUARANTINE_META_MAX) {
		st = qfail(q, SG_ERR_IO, "%s/%s: damaged: %s", where, name,
		           S_ISREG(sb.st_mode) ? "too large"
		                               : "not a regular file");
		goto out;
	}
	if ((text = malloc((size_t)sb.st_size + 1)) == NULL) {
		st = qfail(q, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (len <= (size_t)sb.st_size) {
		ssize_t n = read(fd, text + len, (size_t)sb.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = qfail_errno(q, "reading", name);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len != (size_t)sb.st_size) { /* files are never changed */
		st = qfail(q, SG_ERR_IO, "%s/%s: damaged: changed while read",
		           where, name);
		goto out;
	}
	st = quarantine_meta_parse(text, len, &tmp, why, sizeof(why));
	if (st != SG_OK) {
		qfail(q, st, "%s/%s: damaged: %s", where, name, why);
		goto out;
	}
	if (strcmp(tmp.id, id) != 0) {
		quarantine_info_clear(&tmp);
		st = qfail(q, SG_ERR_IO,
		           "%s/%s: damaged: its id does not match its name",
		           where, name);
		goto out;
	}
	*out = tmp;
	st = SG_OK;
out:
	close(fd);
	free(text);
	return st;
}

/* ---- directories ---- */

/* Opens (with CREATE, first creating 0700) DIRFD/NAME: a directory of
 * ours that group and others cannot use.  -1 with the reason in ERR. */
static int
open_subdir(int dirfd, const char *where, const char *name, int create,
            int *created, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (created)
		*created = 0;
	if (create) {
		if (mkdirat(dirfd, name, 0700) == 0) {
			if (created)
				*created = 1;
		} else if (errno != EEXIST) {
			int e = errno;
			reason_set(err, errlen, "%s/%s: %s", where, name,
			           strerror(e));
			errno = e;
			return -1;
		}
	}
	fd = openat(dirfd, name,
	            O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		reason_set(err, errlen, "%s/%s: %s", where, name, strerror(e));
		errno = e;
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0 ||
	    st.st_uid != geteuid()) {
		reason_set(err, errlen,
		           "%s/%s: must be a directory of ours with mode 0700",
		           where, name);
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* The descriptor of quarantine NAME's directory (kept open until
 * quarantine_close), created when CREATE.  SG_ERR_NOT_FOUND when it does
 * not exist and CREATE is 0. */
static enum sg_status
qdir_get(struct quarantine *q, const char *name, int create, int *out)
{
	char err[Q_ERR_MAX];
	enum sg_status st = SG_OK;
	int fd, created = 0;

	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->ndirs; i++)
		if (strcmp(q->dirs[i].name, name) == 0) {
			*out = q->dirs[i].fd;
			pthread_mutex_unlock(&q->mu);
			return SG_OK;
		}
	if (q->ndirs >= Q_DIRS_MAX) {
		pthread_mutex_unlock(&q->mu);
		return qfail(q, SG_ERR_LIMIT, "more than %d quarantines",
		             Q_DIRS_MAX);
	}
	fd = open_subdir(q->qfd, "quarantine", name, create, &created, err,
	                 sizeof(err));
	if (fd < 0) {
		st = errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO;
	} else if (created && fsync_dir(q->qfd) < 0) {
		snprintf(err, sizeof(err), "quarantine: fsync: %s",
		         strerror(errno));
		close(fd);
		st = SG_ERR_IO;
	} else {
		struct qdir *d = &q->dirs[q->ndirs++];
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->fd = fd;
		*out = fd;
	}
	pthread_mutex_unlock(&q->mu);
	if (st != SG_OK)
		qfail(q, st, "%s", err);
	return st;
}

/* The quarantine names that have a directory entry (sorted). */
static enum sg_status
qnames(struct quarantine *q, char ***out, size_t *n)
{
	char **v;
	size_t cnt, k = 0;

	if (fsio_list_dir(q->qfd, &v, &cnt) < 0)
		return qfail_errno(q, "listing", "quarantine/");
	for (size_t i = 0; i < cnt; i++) {
		if (quarantine_name_valid(v[i]))
			v[k++] = v[i];
		else
			free(v[i]);
	}
	*out = v;
	*n = k;
	return SG_OK;
}

/* The names of the quarantines to visit: NAME alone, or all of them. */
static enum sg_status
qnames_for(struct quarantine *q, const char *name, char ***out, size_t *n)
{
	char **v;

	if (name == NULL)
		return qnames(q, out, n);
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v[0] = strdup(name)) == NULL) {
		free(v);
		return qfail(q, SG_ERR_NOMEM, "out of memory");
	}
	*out = v;
	*n = 1;
	return SG_OK;
}

/* The quarantine holding entry ID (its .meta): its name into NAME and its
 * directory into *DFD.  SG_ERR_NOT_FOUND. */
static enum sg_status
find_entry(struct quarantine *q, const char *id,
           char name[QUARANTINE_NAME_MAX + 1], int *dfd)
{
	char meta[Q_FILE_MAX], **names = NULL;
	enum sg_status st;
	size_t n = 0;
	int fd;

	if ((st = qnames(q, &names, &n)) != SG_OK)
		return st;
	snprintf(meta, sizeof(meta), "%s.meta", id);
	st = SG_ERR_NOT_FOUND;
	for (size_t i = 0; i < n && st == SG_ERR_NOT_FOUND; i++) {
		enum sg_status s = qdir_get(q, names[i], 0, &fd);
		if (s == SG_ERR_NOT_FOUND)
			continue;
		if (s != SG_OK) {
			st = s;
			break;
		}
		if (exists_at(fd, meta)) {
			snprintf(name, QUARANTINE_NAME_MAX + 1, "%s", names[i]);
			*dfd = fd;
			st = SG_OK;
		} else if (errno != ENOENT) {
			st = qfail_errno(q, "checking", meta);
		}
	}
	fsio_names_free(names, n);
	if (st == SG_ERR_NOT_FOUND)
		qfail(q, st, "%s is in no quarantine", id);
	return st;
}

/* ---- recovery ---- */

/* Removes DIRFD/NAME, a temporary file, unless a put holds it locked.
 * 1 removed, 0 in use, -1 error. */
static int
tmp_reap(int dirfd, const char *name)
{
	int fd, rc = 1;

	fd =
	    openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ELOOP)
			return -1;
		/* a symbolic link: nobody's put, remove the link itself */
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? 0 : -1;
		close(fd);
		return rc;
	}
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		rc = errno == EISDIR ? 0 : -1; /* a directory: not ours */
	if (fd >= 0)
		close(fd); /* after the unlink: the lock covered it */
	return rc;
}

/* One file of an entry found by recovery. */
struct part {
	char id[SPOOL_ID_LEN + 1];
	int dir;        /* -1: release/, else an index into the names */
	unsigned kinds; /* 1: .msg, 2: .meta */
};

#define K_MSG  1u
#define K_META 2u

static int
part_cmp(const void *pa, const void *pb)
{
	const struct part *a = pa, *b = pb;
	int c = strcmp(a->id, b->id);

	return c ? c : (a->dir > b->dir) - (a->dir < b->dir);
}

struct recovery {
	struct quarantine *q;
	char **names; /* the quarantines */
	int *fds;     /* their directories */
	int *dirty;   /* [0]: release/, [i + 1]: names[i] */
	size_t nnames;
	struct part *parts;
	size_t nparts, cap;
	int failed;
};

static int
rec_fd(struct recovery *r, int dir)
{
	return dir < 0 ? r->q->relfd : r->fds[dir];
}

/* Notes the files of directory DIR (temporary files go at once). */
static enum sg_status
rec_scan(struct recovery *r, int dir)
{
	char **v, id[SPOOL_ID_LEN + 1];
	size_t n;
	int fd = rec_fd(r, dir);

	if (fsio_list_dir(fd, &v, &n) < 0)
		return qfail_errno(r->q, "listing",
		                   dir < 0 ? "release/" : r->names[dir]);
	for (size_t i = 0; i < n; i++) {
		unsigned kind;
		if (strncmp(v[i], Q_TMP, strlen(Q_TMP)) == 0 && dir >= 0) {
			int rc = tmp_reap(fd, v[i]);
			r->failed |= rc < 0;
			r->dirty[dir + 1] |= rc > 0;
			continue;
		}
		if (spool_id_name(v[i], ".msg", id))
			kind = K_MSG;
		else if (spool_id_name(v[i], ".meta", id))
			kind = K_META;
		else
			continue; /* not ours: left alone */
		if (r->nparts > 0 && r->parts[r->nparts - 1].dir == dir &&
		    strcmp(r->parts[r->nparts - 1].id, id) == 0) {
			r->parts[r->nparts - 1].kinds |= kind;
			continue;
		}
		if (r->nparts == r->cap) {
			size_t ncap = r->cap ? r->cap * 2 : 64;
			struct part *np = realloc(r->parts, ncap * sizeof(*np));
			if (np == NULL) {
				fsio_names_free(v, n);
				return qfail(r->q, SG_ERR_NOMEM,
				             "out of memory");
			}
			r->parts = np;
			r->cap = ncap;
		}
		memcpy(r->parts[r->nparts].id, id, sizeof(id));
		r->parts[r->nparts].dir = dir;
		r->parts[r->nparts].kinds = kind;
		r->nparts++;
	}
	fsio_names_free(v, n);
	return SG_OK;
}

static void
rec_unlink(struct recovery *r, struct part *p, unsigned kind)
{
	char name[Q_FILE_MAX];

	snprintf(name, sizeof(name), "%s.%s", p->id,
	         kind == K_MSG ? "msg" : "meta");
	if (unlinkat(rec_fd(r, p->dir), name, 0) < 0 && errno != ENOENT)
		r->failed = 1;
	else
		r->dirty[p->dir + 1] = 1;
	p->kinds &= ~kind;
}

/* Moves the KIND file of P (in a quarantine) into release/. */
static int
rec_move(struct recovery *r, struct part *p, unsigned kind)
{
	char name[Q_FILE_MAX];

	snprintf(name, sizeof(name), "%s.%s", p->id,
	         kind == K_MSG ? "msg" : "meta");
	if (renameat2(rec_fd(r, p->dir), name, r->q->relfd, name,
	              RENAME_NOREPLACE) < 0)
		return -1;
	r->dirty[0] = r->dirty[p->dir + 1] = 1;
	p->kinds &= ~kind;
	return 0;
}

/* Repairs the parts P[0..N) of one ID (sorted: release/ first). */
static void
rec_entry(struct recovery *r, struct part *p, size_t n)
{
	struct part *rel = p[0].dir < 0 ? &p[0] : NULL;

	if (rel != NULL && rel->kinds != (K_MSG | K_META)) {
		unsigned need = (K_MSG | K_META) & ~rel->kinds;
		for (size_t k = 1; k < n; k++)
			if (p[k].kinds == need &&
			    rec_move(r, &p[k], need) == 0) {
				rel->kinds |= need;
				break;
			}
		if (rel->kinds != (K_MSG | K_META))
			rec_unlink(r, rel, rel->kinds);
	}
	for (size_t k = rel ? 1 : 0; k < n; k++) {
		if (p[k].kinds == (K_MSG | K_META) &&
		    !(rel && rel->kinds == (K_MSG | K_META)))
			continue; /* complete */
		/* half an entry, or a copy of one already released */
		if (p[k].kinds & K_META)
			rec_unlink(r, &p[k], K_META);
		if (p[k].kinds & K_MSG)
			rec_unlink(r, &p[k], K_MSG);
	}
}

static enum sg_status
recover(struct quarantine *q)
{
	struct recovery r = {q, NULL, NULL, NULL, 0, NULL, 0, 0, 0};
	enum sg_status st;
	size_t i, j;

	if ((st = qnames(q, &r.names, &r.nnames)) != SG_OK)
		return st;
	r.fds = calloc(r.nnames + 1, sizeof(*r.fds));
	r.dirty = calloc(r.nnames + 1, sizeof(*r.dirty));
	if (r.fds == NULL || r.dirty == NULL) {
		st = qfail(q, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < r.nnames; i++)
		if ((st = qdir_get(q, r.names[i], 0, &r.fds[i])) != SG_OK)
			goto out;
	if ((st = rec_scan(&r, -1)) != SG_OK)
		goto out;
	for (i = 0; i < r.nnames; i++)
		if ((st = rec_scan(&r, (int)i)) != SG_OK)
			goto out;
	if (r.nparts > 1)
		qsort(r.parts, r.nparts, sizeof(*r.parts), part_cmp);
	for (i = 0; i < r.nparts; i = j) {
		for (j = i + 1;
		     j < r.nparts && strcmp(r.parts[j].id, r.parts[i].id) == 0;
		     j++)
			;
		rec_entry(&r, &r.parts[i], j - i);
	}
	for (i = 0; i <= r.nnames; i++)
		if (r.dirty[i] && fsync_dir(rec_fd(&r, (int)i - 1)) < 0)
			r.failed = 1;
	st = r.failed ? qfail(q, SG_ERR_IO,
	                      "cannot repair what a crash left in the "
	                      "quarantine area")
	              : SG_OK;
out:
	fsio_names_free(r.names, r.nnames);
	free(r.fds);
	free(r.dirty);
	free(r.parts);
	return st;
}

/* ---- opening ---- */

enum sg_status
quarantine_open(const char *spool_dir, struct quarantine **out, char *err,
                size_t errlen)
{
	struct quarantine *q;
	struct stat sb;
	enum sg_status st = SG_ERR_IO;
	int dirfd = -1, c1 = 0, c2 = 0;

	if (spool_dir == NULL || out == NULL) {
		reason_set(err, errlen, "no spool directory");
		return SG_ERR_USAGE;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->dirs = calloc(Q_DIRS_MAX, sizeof(*q->dirs))) == NULL) {
		free(q);
		reason_set(err, errlen, "out of memory");
		return SG_ERR_NOMEM;
	}
	q->qfd = q->relfd = q->lockfd = -1;
	pthread_mutex_init(&q->change, NULL);
	pthread_mutex_init(&q->take, NULL);
	pthread_mutex_init(&q->mu, NULL);
	pthread_mutex_init(&q->errmu, NULL);
	dirfd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		reason_set(err, errlen, "%s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	if (fstat(dirfd, &sb) < 0 || sb.st_uid != geteuid() ||
	    (sb.st_mode & 022) != 0) {
		reason_set(
		    err, errlen,
		    "%s: must be our directory, not writable by group or "
		    "others",
		    spool_dir);
		goto fail;
	}
	q->qfd =
	    open_subdir(dirfd, spool_dir, "quarantine", 1, &c1, err, errlen);
	if (q->qfd < 0)
		goto fail;
	q->relfd =
	    open_subdir(dirfd, spool_dir, "release", 1, &c2, err, errlen);
	if (q->relfd < 0)
		goto fail;
	if ((c1 || c2) && fsync_dir(dirfd) < 0) {
		reason_set(err, errlen, "%s: fsync: %s", spool_dir,
		           strerror(errno));
		goto fail;
	}
	q->lockfd = openat(q->qfd, ".lock",
	                   O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (q->lockfd < 0 || fstat(q->lockfd, &sb) < 0 ||
	    !S_ISREG(sb.st_mode)) {
		reason_set(err, errlen, "%s/quarantine/.lock: %s", spool_dir,
		           q->lockfd < 0 ? strerror(errno) : "not a file");
		goto fail;
	}
	if (change_lock(q) < 0) {
		reason_set(err, errlen, "%s/quarantine/.lock: %s", spool_dir,
		           strerror(errno));
		goto fail;
	}
	st = recover(q);
	change_unlock(q);
	if (st != SG_OK) {
		quarantine_error(q, err, errlen);
		goto fail;
	}
	close(dirfd);
	q->err[0] = '\0';
	*out = q;
	return SG_OK;
fail:
	if (dirfd >= 0)
		close(dirfd);
	quarantine_close(q);
	return st;
}

void
quarantine_close(struct quarantine *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->ndirs; i++)
		close(q->dirs[i].fd);
	if (q->lockfd >= 0)
		close(q->lockfd);
	if (q->relfd >= 0)
		close(q->relfd);
	if (q->qfd >= 0)
		close(q->qfd);
	pthread_mutex_destroy(&q->change);
	pthread_mutex_destroy(&q->take);
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->errmu);
	free(q->dirs);
	free(q);
}

/* ---- put ---- */

/* Creates DFD/NAME (new, 0600) for writing and flocks it: a put in
 * progress.  A stale file of that name (a crash's) is replaced; one
 * another put holds is SG_ERR_TEMP.  Under the change lock. */
static enum sg_status
tmp_create(struct quarantine *q, int dfd, const char *name, int *out)
{
	for (int tries = 0; tries < 2; tries++) {
		int fd = openat(
		    dfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
				enum sg_status st =
				    qfail_errno(q, "locking", name);
				unlinkat(dfd, name, 0);
				close(fd);
				return st;
			}
			*out = fd;
			return SG_OK;
		}
		if (errno != EEXIST)
			return qfail_errno(q, "creating", name);
		switch (tmp_reap(dfd, name)) {
		case 0:
			return qfail(q, SG_ERR_TEMP,
			             "%s: a put of this ID is in progress",
			             name);
		case -1:
			return qfail_errno(q, "removing", name);
		}
	}
	return qfail(q, SG_ERR_TEMP, "%s: cannot create it", name);
}

/* Copies SRC (from offset 0 to its end) to DST; the byte count in *SIZE. */
static enum sg_status
copy_data(struct quarantine *q, int src, int dst, const char *id,
          uint64_t *size)
{
	unsigned char *buf = malloc(Q_COPY_BUF);
	enum sg_status st = SG_OK;
	uint64_t off = 0;

	if (buf == NULL)
		return qfail(q, SG_ERR_NOMEM, "out of memory");
	for (;;) {
		ssize_t n = pread(src, buf, Q_COPY_BUF, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = qfail_errno(q, "reading the message", id);
			break;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > QUARANTINE_MSG_MAX - off) {
			st =
			    qfail(q, SG_ERR_LIMIT, "%s: larger than %llu bytes",
			          id, (unsigned long long)QUARANTINE_MSG_MAX);
			break;
		}
		if (fsio_write_all(dst, buf, (size_t)n) < 0) {
			st = qfail_errno(q, "writing", id);
			break;
		}
		off += (uint64_t)n;
	}
	free(buf);
	*size = off;
	return st;
}

/* Steps 2 and 3 of a put: the files' contents, fsync'd. */
static enum sg_status
put_write(struct quarantine *q, const char *name, const struct spool_env *env,
          int data_fd, const char *rule, const char *reason, int mfd, int efd)
{
	enum sg_status st;
	uint64_t size = 0;
	char *text;
	size_t len;

	if ((st = copy_data(q, data_fd, mfd, env->id, &size)) != SG_OK)
		return st;
	if (fsync(mfd) < 0)
		return qfail_errno(q, "fsync of", env->id);
	st = quarantine_meta_format(name, env, rule, reason, q_now(q), size,
	                            &text, &len);
	if (st != SG_OK)
		return qfail(q, st, "%s: %s", env->id,
		             st == SG_ERR_NOMEM ? "out of memory"
		                                : "metadata too large");
	if (fsio_write_all(efd, text, len) < 0 || fsync(efd) < 0)
		st = qfail_errno(q, "writing the metadata of", env->id);
	free(text);
	return st;
}

enum sg_status
quarantine_put(struct quarantine *q, const char *name,
               const struct spool_env *env, int data_fd, const char *rule,
               const char *reason)
{
	char tmsg[Q_FILE_MAX], tmeta[Q_FILE_MAX], fmsg[Q_FILE_MAX],
	    fmeta[Q_FILE_MAX];
	enum sg_status st;
	struct stat sb;
	int dfd, mfd = -1, efd = -1, renamed = 0;

	if (!quarantine_name_valid(name))
		return qfail(q, SG_ERR_USAGE, "bad quarantine name");
	if (env == NULL || !quarantine_id_valid(env->id) || data_fd < 0)
		return qfail(q, SG_ERR_USAGE, "bad envelope, ID or message");
	if ((st = quarantine_meta_check(env, rule)) != SG_OK)
		return qfail(q, st, "%s: %s", env->id,
		             st == SG_ERR_LIMIT ? "a value or the recipients "
		                                  "over the limit"
		                                : "recipients missing");
	if (fstat(data_fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size > QUARANTINE_MSG_MAX)
		return qfail(q, SG_ERR_LIMIT, "%s: larger than %llu bytes",
		             env->id, (unsigned long long)QUARANTINE_MSG_MAX);
	if ((st = qdir_get(q, name, 1, &dfd)) != SG_OK)
		return st;
	snprintf(tmsg, sizeof(tmsg), Q_TMP "%s.msg", env->id);
	snprintf(tmeta, sizeof(tmeta), Q_TMP "%s.meta", env->id);
	snprintf(fmsg, sizeof(fmsg), "%s.msg", env->id);
	snprintf(fmeta, sizeof(fmeta), "%s.meta", env->id);

	if (change_lock(q) < 0)
		return qfail_errno(q, "locking", "quarantine/.lock");
	st = tmp_create(q, dfd, tmsg, &mfd);
	if (st == SG_OK)
		st = tmp_create(q, dfd, tmeta, &efd);
	change_unlock(q);
	if (st != SG_OK)
		goto fail;
	st = put_write(q, name, env, data_fd, rule, reason, mfd, efd);
	if (st != SG_OK)
		goto fail;
	if (change_lock(q) < 0) {
		st = qfail_errno(q, "locking", "quarantine/.lock");
		goto fail;
	}
	if (renameat(dfd, tmsg, dfd, fmsg) == 0) {
		renamed = 1;
		if (renameat(dfd, tmeta, dfd, fmeta) == 0)
			renamed = 2;
	}
	if (renamed < 2)
		st = qfail_errno(q, "renaming", env->id);
	change_unlock(q);
	if (st == SG_OK && fsync_dir(dfd) < 0)
		st = qfail_errno(q, "fsync of the quarantine of", env->id);
	if (st != SG_OK)
		goto fail;
	close(mfd);
	close(efd);
	return SG_OK;
fail:
	if (renamed > 0) {
		int locked = change_lock(q) == 0;
		if (renamed == 2)
			unlinkat(dfd, fmeta, 0);
		unlinkat(dfd, fmsg, 0);
		if (locked)
			change_unlock(q);
		fsync_dir(dfd);
	}
	if (mfd >= 0) { /* unlinked while still locked by us */
		if (renamed < 1)
			unlinkat(dfd, tmsg, 0);
		close(mfd);
	}
	if (efd >= 0) {
		if (renamed < 2)
			unlinkat(dfd, tmeta, 0);
		close(efd);
	}
	return st;
}

/* ---- reading ---- */

/* A list of entries being loaded. */
struct infos {
	struct quarantine_info *v;
	size_t n, cap;
	enum sg_status first; /* the first entry that could not be read */
};

/* Adds the entries of DFD (WHERE: quarantine NAME, or release/ when NAME
 * is NULL) quarantined before BEFORE (0: all) to L.  An entry that cannot
 * be read is kept with damaged = 1 when DAMAGED, else left out; either way
 * L->first notes it.  SG_OK, or a failure to list. */
static enum sg_status
load_dir(struct quarantine *q, int dfd, const char *where, const char *name,
         time_t before, int damaged, struct infos *l)
{
	char **files, id[SPOOL_ID_LEN + 1];
	enum sg_status st = SG_OK;
	size_t nfiles;

	if (fsio_list_dir(dfd, &files, &nfiles) < 0)
		return qfail_errno(q, "listing", where);
	for (size_t i = 0; i < nfiles; i++) {
		struct quarantine_info *e;
		if (!spool_id_name(files[i], ".meta", id))
			continue;
		if (l->n == l->cap) {
			size_t ncap = l->cap ? l->cap * 2 : 64;
			struct quarantine_info *nv =
			    realloc(l->v, ncap * sizeof(*nv));
			if (nv == NULL) {
				st = qfail(q, SG_ERR_NOMEM, "out of memory");
				break;
			}
			l->v = nv;
			l->cap = ncap;
		}
		e = &l->v[l->n];
		if ((st = meta_load(q, dfd, where, id, e)) == SG_ERR_NOMEM)
			break;
		if (st == SG_OK && name && strcmp(e->name, name) != 0) {
			quarantine_info_clear(e);
			st = qfail(q, SG_ERR_IO,
			           "%s/%s.meta: damaged: it names another "
			           "quarantine",
			           where, id);
		}
		if (st == SG_OK) {
			if (before == 0 || e->quarantined < before)
				l->n++;
			else
				quarantine_info_clear(e);
			continue;
		}
		if (st != SG_ERR_NOT_FOUND && l->first == SG_OK)
			l->first = st;
		if (st != SG_ERR_NOT_FOUND && damaged) {
			memset(e, 0, sizeof(*e));
			memcpy(e->id, id, sizeof(id));
			memcpy(e->env.id, id, sizeof(id));
			snprintf(e->name, sizeof(e->name), "%s", name);
			e->damaged = 1;
			l->n++;
		}
		st = SG_OK; /* gone meanwhile, or damaged */
	}
	fsio_names_free(files, nfiles);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), info_cmp);
	return st;
}

enum sg_status
quarantine_list(struct quarantine *q, const char *name,
                struct quarantine_info **v, size_t *n)
{
	struct infos l = {NULL, 0, 0, SG_OK};
	char **names = NULL, where[QUARANTINE_NAME_MAX + 16];
	size_t nnames = 0;
	enum sg_status st;

	if (name != NULL && !quarantine_name_valid(name))
		return qfail(q, SG_ERR_USAGE, "bad quarantine name");
	if ((st = qnames_for(q, name, &names, &nnames)) != SG_OK)
		return st;
	for (size_t i = 0; i < nnames && st == SG_OK; i++) {
		int dfd;
		if ((st = qdir_get(q, names[i], 0, &dfd)) == SG_OK) {
			snprintf(where, sizeof(where), "quarantine/%s",
			         names[i]);
			st = load_dir(q, dfd, where, names[i], 0, 1, &l);
		} else if (st == SG_ERR_NOT_FOUND) { /* nothing put there */
			st = SG_OK;
		}
	}
	fsio_names_free(names, nnames);
	if (st != SG_OK) {
		quarantine_list_free(l.v, l.n);
		return st;
	}
	if (l.n == 0) {
		free(l.v);
		l.v = NULL;
	}
	*v = l.v;
	*n = l.n;
	return SG_OK;
}

enum sg_status
quarantine_show(struct quarantine *q, const char *id,
                struct quarantine_info *out)
{
	char name[QUARANTINE_NAME_MAX + 1], where[QUARANTINE_NAME_MAX + 16];
	struct quarantine_info tmp;
	enum sg_status st;
	int dfd;

	if (!quarantine_id_valid(id) || out == NULL)
		return qfail(q, SG_ERR_USAGE, "bad queue ID");
	/* A release may take it between the two steps: try again. */
	for (int tries = 0; tries < 3; tries++) {
		if ((st = find_entry(q, id, name, &dfd)) != SG_OK)
			return st;
		snprintf(where, sizeof(where), "quarantine/%s", name);
		st = meta_load(q, dfd, where, id, &tmp);
		if (st == SG_ERR_NOT_FOUND)
			continue;
		if (st != SG_OK)
			return st;
		if (strcmp(tmp.name, name) != 0) {
			quarantine_info_clear(&tmp);
			return qfail(q, SG_ERR_IO,
			             "%s/%s.meta: damaged: it names another "
			             "quarantine",
			             where, id);
		}
		*out = tmp;
		return SG_OK;
	}
	return qfail(q, SG_ERR_NOT_FOUND, "%s is in no quarantine", id);
}

int
quarantine_data_fd(struct quarantine *q, const char *id)
{
	char name[QUARANTINE_NAME_MAX + 1], file[Q_FILE_MAX];
	enum sg_status st;
	int dfd, fd;

	if (!quarantine_id_valid(id)) {
		qfail(q, SG_ERR_USAGE, "bad queue ID");
		errno = EINVAL;
		return -1;
	}
	if ((st = find_entry(q, id, name, &dfd)) != SG_OK) {
		errno = st == SG_ERR_NOT_FOUND ? ENOENT : EIO;
		return -1;
	}
	snprintf(file, sizeof(file), "%s.msg", id);
	fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		qfail(q, e == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO,
		      "quarantine/%s/%s: %s", name, file, strerror(e));
		errno = e;
	}
	return fd;
}

/* ---- release and delete ---- */

enum sg_status
quarantine_release(struct quarantine *q, const char *id)
{
	char name[QUARANTINE_NAME_MAX + 1], msg[Q_FILE_MAX], meta[Q_FILE_MAX];
	enum sg_status st;
	int dfd = -1, e;

	if (!quarantine_id_valid(id))
		return qfail(q, SG_ERR_USAGE, "bad queue ID");
	snprintf(msg, sizeof(msg), "%s.msg", id);
	snprintf(meta, sizeof(meta), "%s.meta", id);
	if (change_lock(q) < 0)
		return qfail_errno(q, "locking", "quarantine/.lock");
	if ((st = find_entry(q, id, name, &dfd)) != SG_OK)
		goto out;
	if (renameat2(dfd, msg, q->relfd, msg, RENAME_NOREPLACE) < 0) {
		e = errno;
		st = e == EEXIST   ? qfail(q, SG_ERR_EXISTS,
		                           "%s was already released and waits "
		                             "for the daemon",
		                           id)
		     : e == ENOENT ? qfail(q, SG_ERR_IO,
		                           "quarantine/%s/%s: damaged: the "
		                           "message is missing",
		                           name, msg)
		                   : qfail_errno(q, "releasing", id);
		goto out;
	}
	if (renameat2(dfd, meta, q->relfd, meta, RENAME_NOREPLACE) < 0) {
		e = errno;
		st = e == EEXIST ? qfail(q, SG_ERR_EXISTS,
		                         "release/%s: already there", meta)
		                 : qfail_errno(q, "releasing", id);
		renameat(q->relfd, msg, dfd, msg); /* put it back */
		goto out;
	}
out:
	change_unlock(q);
	if (st == SG_OK && (fsync_dir(q->relfd) < 0 || fsync_dir(dfd) < 0))
		st = qfail_errno(q, "fsync after releasing", id);
	return st;
}

enum sg_status
quarantine_delete(struct quarantine *q, const char *id)
{
	char name[QUARANTINE_NAME_MAX + 1], file[Q_FILE_MAX];
	enum sg_status st;
	int dfd = -1;

	if (!quarantine_id_valid(id))
		return qfail(q, SG_ERR_USAGE, "bad queue ID");
	if (change_lock(q) < 0)
		return qfail_errno(q, "locking", "quarantine/.lock");
	if ((st = find_entry(q, id, name, &dfd)) == SG_OK) {
		snprintf(file, sizeof(file), "%s.meta", id);
		if (unlinkat(dfd, file, 0) < 0) {
			st = errno == ENOENT
			         ? qfail(q, SG_ERR_NOT_FOUND,
			                 "%s is in no quarantine", id)
			         : qfail_errno(q, "deleting", id);
		} else {
			snprintf(file, sizeof(file), "%s.msg", id);
			unlinkat(dfd, file, 0);
		}
	}
	change_unlock(q);
	if (st == SG_OK && fsync_dir(dfd) < 0)
		st = qfail_errno(q, "fsync after deleting", id);
	return st;
}

/* ---- handing entries over: take_released, expire ---- */

/* Removes DFD/ID (.meta, then .msg) under the change lock; 1 when it was
 * there. */
static int
remove_entry(struct quarantine *q, int dfd, const char *id)
{
	char file[Q_FILE_MAX];
	int removed = 0;

	if (change_lock(q) < 0)
		return 0;
	snprintf(file, sizeof(file), "%s.meta", id);
	if (unlinkat(dfd, file, 0) == 0) {
		removed = 1;
		snprintf(file, sizeof(file), "%s.msg", id);
		unlinkat(dfd, file, 0);
	}
	change_unlock(q);
	return removed;
}

/* Opens the message of INFO in DFD (WHERE) and checks its size.
 * SG_ERR_NOT_FOUND when the entry went away meanwhile, SG_ERR_IO when it
 * is damaged. */
static enum sg_status
open_msg(struct quarantine *q, int dfd, const char *where,
         const struct quarantine_info *info, int *out)
{
	char file[Q_FILE_MAX], meta[Q_FILE_MAX];
	struct stat sb;
	int fd, gone;

	snprintf(file, sizeof(file), "%s.msg", info->id);
	fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		/* released meanwhile (the .msg moves first), or damaged:
		 * the lock tells them apart */
		snprintf(meta, sizeof(meta), "%s.meta", info->id);
		if (change_lock(q) < 0)
			return qfail_errno(q, "locking", "quarantine/.lock");
		gone = !exists_at(dfd, meta) || exists_at(dfd, file);
		change_unlock(q);
		if (gone)
			return qfail(q, SG_ERR_NOT_FOUND, "%s: gone", info->id);
		return qfail(q, SG_ERR_IO, "%s/%s: damaged: no message", where,
		             meta);
	}
	if (fd < 0)
		return qfail(q, SG_ERR_IO, "%s/%s: %s", where, file,
		             strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != info->size) {
		close(fd);
		return qfail(q, SG_ERR_IO,
		             "%s/%s: damaged: not the size its metadata says",
		             where, file);
	}
	*out = fd;
	return SG_OK;
}

/* Hands each entry of L to FN (with RELEASED set in its envelope) and
 * removes it from DFD when FN says SG_OK (or FN is NULL); L->first notes
 * an entry whose message is damaged.  The number removed. */
static size_t
hand_over(struct quarantine *q, int dfd, const char *where, struct infos *l,
          int released, quarantine_fn fn, void *arg)
{
	size_t removed = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct quarantine_info *e = &l->v[i];
		enum sg_status st = SG_OK;
		int fd;

		if (fn != NULL) {
			st = open_msg(q, dfd, where, e, &fd);
			if (st != SG_OK) {
				if (st != SG_ERR_NOT_FOUND && l->first == SG_OK)
					l->first = st;
				continue;
			}
			e->env.released = released;
			st = fn(arg, &e->env, e, fd);
			close(fd);
		}
		if (st == SG_OK)
			removed += (size_t)remove_entry(q, dfd, e->id);
	}
	return removed;
}

enum sg_status
quarantine_take_released(struct quarantine *q, quarantine_fn fn, void *arg)
{
	struct infos l = {NULL, 0, 0, SG_OK};
	enum sg_status st;

	if (fn == NULL)
		return qfail(q, SG_ERR_USAGE, "no function");
	pthread_mutex_lock(&q->take);
	st = load_dir(q, q->relfd, "release", NULL, 0, 0, &l);
	if (st == SG_OK &&
	    hand_over(q, q->relfd, "release", &l, 1, fn, arg) > 0 &&
	    fsync_dir(q->relfd) < 0)
		st = qfail_errno(q, "fsync of", "release/");
	quarantine_list_free(l.v, l.n);
	pthread_mutex_unlock(&q->take);
	return st != SG_OK ? st : l.first;
}

enum sg_status
quarantine_expire(struct quarantine *q, const char *name, time_t older_than,
                  quarantine_fn fn, void *arg)
{
	char **names = NULL, where[QUARANTINE_NAME_MAX + 16];
	enum sg_status st, first = SG_OK;
	size_t nnames = 0;

	if (name != NULL && !quarantine_name_valid(name))
		return qfail(q, SG_ERR_USAGE, "bad quarantine name");
	if (older_than <= 0)
		return SG_OK; /* nothing is that old */
	if ((st = qnames_for(q, name, &names, &nnames)) != SG_OK)
		return st;
	for (size_t i = 0; i < nnames && st == SG_OK; i++) {
		struct infos l = {NULL, 0, 0, SG_OK};
		int dfd;

		if ((st = qdir_get(q, names[i], 0, &dfd)) != SG_OK) {
			if (st == SG_ERR_NOT_FOUND)
				st = SG_OK;
			continue;
		}
		snprintf(where, sizeof(where), "quarantine/%s", names[i]);
		st = load_dir(q, dfd, where, names[i], older_than, 0, &l);
		if (st == SG_OK &&
		    hand_over(q, dfd, where, &l, 0, fn, arg) > 0 &&
		    fsync_dir(dfd) < 0)
			st = qfail_errno(q, "fsync of", where);
		if (first == SG_OK)
			first = l.first;
		quarantine_list_free(l.v, l.n);
	}
	fsio_names_free(names, nnames);
	return st != SG_OK ? st : first;
}
