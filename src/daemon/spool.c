/*
 * spool.c - the durable message spool (spool.h is the contract).
 *
 * What it trusts: its own directory, which it creates 0700 and refuses
 * when group or others may write it; the envelope files it reads are still
 * parsed with bounded sizes (a truncated or damaged file is reported and
 * skipped, never trusted).  What it can reach: DIR, DIR/tmp and DIR/queue
 * only, through directory descriptors opened once (every later path is
 * relative to them, and queue IDs are checked against the ID alphabet
 * before they become file names).
 *
 * Commit (a 250 is a promise, as Postfix's mail_stream.c):
 *   1. the data was written to tmp/ID by spool_rx_write (buffered);
 *      flush it and fsync it;
 *   2. write the envelope to tmp/ID.env and fsync it;
 *   3. rename tmp/ID to queue/ID.msg, then tmp/ID.env to queue/ID.env
 *      (the presence of both in queue/ is what "committed" means);
 *   4. wait for a directory fsync of queue/; only then SG_OK.  Before
 *      it ends nothing is promised, and after a crash recovery removes
 *      an envelope without its data and data without its envelope.
 * Any failure removes what was written and promises nothing.
 *
 * Group commit (queue_sync).  The file fsyncs of steps 1 and 2 stay per
 * message, each committer its own, concurrently.  The directory fsync
 * of step 4 is shared: "wait for a directory fsync" means "until
 * an fsync of queue/ that began after my rename has ended".  One caller
 * at a time, the leader, runs the fsync; callers arriving meanwhile wait,
 * and when it ends one of them leads the next, which covers every rename
 * made in between.  So under load the renames of a whole batch share one
 * directory fsync and a commit costs its two file fsyncs plus a share of
 * one directory fsync, instead of three fsyncs (a journaling file system
 * already merges concurrent fsyncs into one journal commit: docs/bench.md,
 * "Group commit", has what this gains and costs).  A failed directory fsync
 * fails every caller that took its mark (before its rename) before the
 * failure and was still waiting (Linux reports a writeback error to one
 * fsync per open file, and queue/ has one descriptor for all threads: a
 * thread's own fsync could return 0 after another's failed for both);
 * a commit failing for its own reasons (writing, its envelope, a rename)
 * never reaches the wait and fails no other.  spool_update shares the
 * same fsyncs; spool_remove needs none (see there).
 *
 * Envelope file format: text, one "key value" line each, values
 * percent-encoded (bytes <= 0x20, 0x7f and '%'), so a value is one token
 * without spaces.  "version 1" first; one "rcpt ADDR [NOTIFY]" line per
 * recipient; unknown keys are ignored (newer writers); a key whose value
 * is NULL is left out.  Sizes are bounded (SPOOL_VALUE_MAX, SPOOL_ENV_MAX,
 * SPOOL_RCPT_MAX).
 *
 * Queue IDs: 24 characters of Crockford's base32 alphabet (which sorts
 * in ASCII order): 11 for the microseconds since the epoch, strictly
 * increasing within a spool (and seeded at open with the newest ID on
 * disk, so a clock going back does not reorder or reuse), then 13 random
 * ones (65 bits).  Files are created O_EXCL, so a collision fails rather
 * than overwrites.
 *
 * Threads: the struct spool's mutable state (the ID clock, the count, the
 * update counter) is under one mutex held only for a few instructions;
 * the group commit's counters are under a second one (sync_lock); every
 * fsync happens outside both.  A struct spool_rx belongs to one
 * thread at a time (the event loop writes, the commit thread commits).
 */
#include "daemon/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fsio.h"
#include "daemon/kvtext.h"
#include "daemon/log.h"
#include "daemon/reason.h"
#include "smimegate.h"

#define SPOOL_RX_BUF    32768      /* write buffer of a message */
#define SPOOL_VALUE_MAX 4096       /* decoded bytes of one value */
#define SPOOL_ERROR_MAX 1024       /* last_error is cut to this */
#define SPOOL_RCPT_MAX  100000     /* recipients in one envelope */
#define SPOOL_ENV_MAX   (8u << 20) /* bytes of one envelope file */
#define SPOOL_NAME_MAX  (SPOOL_ID_LEN + 32)
#define SPOOL_POOL_MAX  16384 /* emptied files kept for reuse */
/* A free file of at most SPOOL_KEEP_FILE bytes keeps its blocks (zeroed,
 * not freed) while the pool holds at most SPOOL_KEEP_MAX such bytes. */
#define SPOOL_KEEP_FILE (1 << 20)
#define SPOOL_KEEP_MAX  (64 << 20)

/* A free file: tmp/free.N, reading as KEPT zero bytes (0: empty). */
struct pool_file {
	unsigned long n;
	off_t kept;
};

struct spool {
	char *dir;
	int dirfd;   /* DIR, also the flock against a second daemon */
	int tmpfd;   /* DIR/tmp */
	int queuefd; /* DIR/queue */
	pthread_mutex_t lock;
	/* under lock: */
	uint64_t last_usec;     /* timestamp of the newest ID */
	unsigned long seq;      /* names of temporary envelope files */
	size_t count;           /* committed messages */
	struct pool_file *pool; /* kept for reuse, SPOOL_POOL_MAX */
	size_t npool;
	off_t pool_kept;        /* their KEPT bytes */
	unsigned long pool_seq; /* the last N given out */
	/* group commit of queue/'s fsyncs, under sync_lock: */
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond; /* an fsync ended */
	uint64_t sync_started;    /* fsyncs of queue/ begun ... */
	uint64_t sync_done;       /* ... and ended (they run one at a time) */
	uint64_t sync_errors;     /* of them failed */
	int sync_errno;           /* of the last failure */
	int sync_running;         /* a leader is in fsync */
};

struct spool_rx {
	struct spool *sp;
	char id[SPOOL_ID_LEN + 1];
	int fd;             /* tmp/ID */
	off_t stale;        /* its length when it was a free file */
	enum sg_status err; /* the first write error, sticky */
	size_t size;        /* bytes accepted */
	size_t used;        /* bytes waiting in buf */
	unsigned char buf[SPOOL_RX_BUF];
};

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ---- small helpers ---- */

static void __attribute__((format(printf, 1, 2)))
spool_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, "spool", fmt, ap);
	va_end(ap);
}

static int
close_fd(int *fd)
{
	int rc = close(*fd);

	*fd = -1;
	return rc;
}

/* Logs the failed OP on message ID (errno says why); its status. */
static enum sg_status
io_fail(const char *op, const char *id)
{
	int e = errno;

	spool_log("event=error op=%s id=%s error=\"%s\"", op, id, strerror(e));
	return fsio_errno_status(e);
}

static int
b32_value(char c)
{
	const char *p = c ? strchr(b32, c) : NULL;
	return p ? (int)(p - b32) : -1;
}

int
spool_id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (b32_value(id[i]) < 0)
			return 0;
	return id[i] == '\0';
}

int
spool_id_name(const char *name, const char *suffix, char id[SPOOL_ID_LEN + 1])
{
	size_t len = strlen(name);

	if (len != SPOOL_ID_LEN + strlen(suffix) ||
	    strcmp(name + SPOOL_ID_LEN, suffix) != 0)
		return 0;
	memcpy(id, name, SPOOL_ID_LEN);
	id[SPOOL_ID_LEN] = '\0';
	return spool_id_valid(id);
}

static uint64_t
id_usec(const char *id)
{
	uint64_t v = 0;

	for (int i = 0; i < 11; i++)
		v = (v << 5) | (uint64_t)b32_value(id[i]);
	return v;
}

time_t
spool_id_time(const char *id)
{
	return spool_id_valid(id) ? (time_t)(id_usec(id) / 1000000u) : 0;
}

static enum sg_status
spool_new_id(struct spool *sp, char id[SPOOL_ID_LEN + 1])
{
	unsigned char rnd[13];
	struct timespec ts;
	uint64_t usec;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return SG_ERR_TEMP;
	clock_gettime(CLOCK_REALTIME, &ts);
	usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	pthread_mutex_lock(&sp->lock);
	if (usec <= sp->last_usec)
		usec = sp->last_usec + 1;
	sp->last_usec = usec;
	pthread_mutex_unlock(&sp->lock);
	for (int i = 10; i >= 0; i--) {
		id[i] = b32[usec & 31];
		usec >>= 5;
	}
	for (int i = 0; i < 13; i++)
		id[11 + i] = b32[rnd[i] & 31];
	id[SPOOL_ID_LEN] = '\0';
	return SG_OK;
}

/* ---- the envelope ---- */

void
spool_env_clear(struct spool_env *env)
{
	if (env == NULL)
		return;
	free(env->mail_from);
	for (size_t i = 0; env->rcpts && env->rcpts[i]; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	if (env->dsn_notify)
		for (size_t i = 0; i < env->nrcpts; i++)
			free(env->dsn_notify[i]);
	free(env->dsn_notify);
	if (env->dsn_orcpt)
		for (size_t i = 0; i < env->nrcpts; i++)
			free(env->dsn_orcpt[i]);
	free(env->dsn_orcpt);
	free(env->listener);
	free(env->client);
	free(env->helo);
	free(env->dsn_ret);
	free(env->dsn_envid);
	free(env->last_error);
	free(env->flow);
	free(env->policy);
	memset(env, 0, sizeof(*env));
}

static int
too_long(const char *v)
{
	return v != NULL && strnlen(v, SPOOL_VALUE_MAX + 1) > SPOOL_VALUE_MAX;
}

/* The envelope's text.  SG_ERR_LIMIT when a value is too long (except
 * last_error, which is cut) or there are too many recipients. */
void
spool_env_put_sender(struct kv_buf *b, const struct spool_env *env, size_t max)
{
	kv_put(b, "mail_from", env->mail_from ? env->mail_from : "", max);
	kv_put(b, "listener", env->listener, max);
	kv_num(b, "role", (long long)env->role);
	kv_put(b, "client", env->client, max);
	kv_put(b, "helo", env->helo, max);
	kv_put(b, "dsn_ret", env->dsn_ret, max);
	kv_put(b, "dsn_envid", env->dsn_envid, max);
}

void
spool_env_put_rcpts(struct kv_buf *b, const struct spool_env *env, size_t max)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		kv_str(b, "rcpt ");
		kv_enc(b, env->rcpts[i], strnlen(env->rcpts[i], max));
		if (env->dsn_notify && env->dsn_notify[i]) {
			kv_add(b, " ", 1);
			kv_enc(b, env->dsn_notify[i],
			       strnlen(env->dsn_notify[i], max));
		}
		kv_add(b, "\n", 1);
		/* its ORCPT, on a line of its own (older readers skip it) */
		if (env->dsn_orcpt && env->dsn_orcpt[i])
			kv_put(b, "orcpt", env->dsn_orcpt[i], max);
	}
}

static enum sg_status
env_format(const struct spool_env *env, struct kv_buf *b)
{
	if (env->nrcpts > SPOOL_RCPT_MAX || too_long(env->mail_from) ||
	    too_long(env->listener) || too_long(env->client) ||
	    too_long(env->helo) || too_long(env->dsn_ret) ||
	    too_long(env->dsn_envid) || too_long(env->flow) ||
	    too_long(env->policy))
		return SG_ERR_LIMIT;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts == NULL || env->rcpts[i] == NULL ||
		    too_long(env->rcpts[i]) ||
		    (env->dsn_notify && too_long(env->dsn_notify[i])) ||
		    (env->dsn_orcpt && too_long(env->dsn_orcpt[i])))
			return env->rcpts && env->rcpts[i] ? SG_ERR_LIMIT
			                                   : SG_ERR_USAGE;
	kv_str(b, "version 1\n");
	kv_put(b, "id", env->id, SPOOL_VALUE_MAX);
	kv_num(b, "received", (long long)env->received);
	kv_num(b, "attempts", (long long)env->attempts);
	kv_num(b, "next_try", (long long)env->next_try);
	spool_env_put_sender(b, env, SPOOL_VALUE_MAX);
	if (env->released)
		kv_num(b, "released", (long long)env->released);
	if (env->plain)
		kv_num(b, "plain", (long long)env->plain);
	kv_put(b, "flow", env->flow, SPOOL_VALUE_MAX);
	kv_put(b, "policy", env->policy, SPOOL_VALUE_MAX);
	if (env->last_error) {
		kv_str(b, "last_error ");
		kv_enc(b, env->last_error,
		       strnlen(env->last_error, SPOOL_ERROR_MAX));
		kv_add(b, "\n", 1);
	}
	spool_env_put_rcpts(b, env, SPOOL_VALUE_MAX);
	return b->oom ? SG_ERR_NOMEM : SG_OK;
}

enum sg_status
spool_env_read_rcpt(struct spool_env *env, const char *val, size_t vlen,
                    size_t *cap, size_t limit, size_t max, const char **why)
{
	const char *sp = memchr(val, ' ', vlen);
	size_t alen = sp ? (size_t)(sp - val) : vlen;
	char *addr, *notify = NULL;
	enum sg_status st;

	if (env->nrcpts >= limit) {
		*why = "too many recipients";
		return SG_ERR_LIMIT;
	}
	*why = "out of memory";
	if (env->nrcpts + 1 >= *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		char **r = realloc(env->rcpts, ncap * sizeof(*r));
		if (r == NULL)
			return SG_ERR_NOMEM;
		env->rcpts = r;
		r[env->nrcpts] = NULL; /* spool_env_clear's end */
		r = realloc(env->dsn_notify, ncap * sizeof(*r));
		if (r == NULL)
			return SG_ERR_NOMEM;
		env->dsn_notify = r;
		r = realloc(env->dsn_orcpt, ncap * sizeof(*r));
		if (r == NULL)
			return SG_ERR_NOMEM;
		env->dsn_orcpt = r;
		*cap = ncap;
	}
	if ((addr = kv_decode(val, alen, max, &st)) == NULL) {
		*why = "bad recipient";
		return st;
	}
	if (sp &&
	    (notify = kv_decode(sp + 1, vlen - alen - 1, max, &st)) == NULL) {
		*why = "bad recipient NOTIFY";
		free(addr);
		return st;
	}
	env->rcpts[env->nrcpts] = addr;
	env->dsn_notify[env->nrcpts] = notify;
	env->dsn_orcpt[env->nrcpts] = NULL;
	env->nrcpts++;
	env->rcpts[env->nrcpts] = NULL;
	return SG_OK;
}

enum sg_status
spool_env_read_orcpt(struct spool_env *env, const char *val, size_t vlen,
                     size_t max, const char **why)
{
	enum sg_status st;
	char *v;

	if (env->nrcpts == 0 || env->dsn_orcpt[env->nrcpts - 1]) {
		*why = "\"orcpt\" without its recipient";
		return SG_ERR_IO;
	}
	if ((v = kv_decode(val, vlen, max, &st)) == NULL) {
		*why = "bad value of \"orcpt\"";
		return st;
	}
	env->dsn_orcpt[env->nrcpts - 1] = v;
	return SG_OK;
}

enum env_kind { ENV_STR, ENV_TIME, ENV_UINT, ENV_INT };

/* The envelope's fields other than version, id and rcpt. */
static const struct env_field {
	const char *key;
	enum env_kind kind;
	size_t off;
} env_fields[] = {
    {"mail_from", ENV_STR, offsetof(struct spool_env, mail_from)},
    {"listener", ENV_STR, offsetof(struct spool_env, listener)},
    {"client", ENV_STR, offsetof(struct spool_env, client)},
    {"helo", ENV_STR, offsetof(struct spool_env, helo)},
    {"dsn_ret", ENV_STR, offsetof(struct spool_env, dsn_ret)},
    {"dsn_envid", ENV_STR, offsetof(struct spool_env, dsn_envid)},
    {"last_error", ENV_STR, offsetof(struct spool_env, last_error)},
    {"received", ENV_TIME, offsetof(struct spool_env, received)},
    {"next_try", ENV_TIME, offsetof(struct spool_env, next_try)},
    {"attempts", ENV_UINT, offsetof(struct spool_env, attempts)},
    {"role", ENV_INT, offsetof(struct spool_env, role)},
    {"released", ENV_INT, offsetof(struct spool_env, released)},
    {"flow", ENV_STR, offsetof(struct spool_env, flow)},
    {"policy", ENV_STR, offsetof(struct spool_env, policy)},
    {"plain", ENV_INT, offsetof(struct spool_env, plain)},
};

static int
key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* One "key value" line.  Keys of newer writers are ignored. */
static enum sg_status
env_set(struct spool_env *env, const char *key, size_t klen, const char *val,
        size_t vlen, size_t *cap)
{
	const struct env_field *f = NULL;
	enum sg_status st = SG_OK;
	const char *why;
	char *field, *v;
	long long n = 0;

	if (key_is(key, klen, "rcpt"))
		return spool_env_read_rcpt(env, val, vlen, cap, SPOOL_RCPT_MAX,
		                           SPOOL_VALUE_MAX, &why);
	if (key_is(key, klen, "orcpt")) /* of the recipient before it */
		return spool_env_read_orcpt(env, val, vlen, SPOOL_VALUE_MAX,
		                            &why);
	for (size_t i = 0; i < sizeof(env_fields) / sizeof(*env_fields); i++)
		if (key_is(key, klen, env_fields[i].key))
			f = &env_fields[i];
	if ((v = kv_decode(val, vlen, SPOOL_VALUE_MAX, &st)) == NULL)
		return st;
	field = (char *)env + (f ? f->off : 0);
	if (key_is(key, klen, "version")) {
		st = strcmp(v, "1") == 0 ? SG_OK : SG_ERR_UNSUPPORTED;
	} else if (key_is(key, klen, "id")) {
		if (spool_id_valid(v))
			memcpy(env->id, v, SPOOL_ID_LEN + 1);
		else
			st = SG_ERR_IO;
	} else if (f == NULL) {
		/* ignored */
	} else if (f->kind == ENV_STR) {
		free(*(char **)field);
		*(char **)field = v;
		return SG_OK;
	} else if (kv_parse_num(v,
	                        f->kind == ENV_UINT  ? UINT_MAX
	                        : f->kind == ENV_INT ? INT_MAX
	                                             : LLONG_MAX,
	                        &n) < 0) {
		st = SG_ERR_IO;
	} else if (f->kind == ENV_TIME) {
		*(time_t *)field = (time_t)n;
	} else if (f->kind == ENV_UINT) {
		*(unsigned *)field = (unsigned)n;
	} else {
		*(int *)field = (int)n;
	}
	free(v);
	return st;
}

/* Parses the text of an envelope file into ENV (zeroed first). */
static enum sg_status
env_parse(const char *text, size_t len, struct spool_env *env)
{
	enum sg_status st = SG_OK;
	size_t cap = 0, pos = 0;
	int have_version = 0;

	memset(env, 0, sizeof(*env));
	while (pos < len) {
		const char *line = text + pos, *nl, *sp;
		size_t llen;

		nl = memchr(line, '\n', len - pos);
		if (nl == NULL) { /* a torn last line */
			st = SG_ERR_IO;
			goto fail;
		}
		llen = (size_t)(nl - line);
		pos += llen + 1;
		sp = memchr(line, ' ', llen);
		if (sp == NULL || sp == line) {
			st = SG_ERR_IO;
			goto fail;
		}
		if (!have_version) {
			if (sp - line != 7 || memcmp(line, "version", 7) != 0) {
				st = SG_ERR_IO;
				goto fail;
			}
			have_version = 1;
		}
		st = env_set(env, line, (size_t)(sp - line), sp + 1,
		             llen - (size_t)(sp - line) - 1, &cap);
		if (st != SG_OK)
			goto fail;
	}
	if (!have_version || env->mail_from == NULL || env->id[0] == '\0') {
		st = SG_ERR_IO;
		goto fail;
	}
	/* dsn_notify is kept only when some recipient has one */
	int any = 0;
	for (size_t i = 0; i < env->nrcpts; i++)
		any |= env->dsn_notify[i] != NULL;
	if (!any) {
		free(env->dsn_notify);
		env->dsn_notify = NULL;
	}
	any = 0;
	for (size_t i = 0; i < env->nrcpts; i++)
		any |= env->dsn_orcpt[i] != NULL;
	if (!any) {
		free(env->dsn_orcpt);
		env->dsn_orcpt = NULL;
	}
	if (env->rcpts == NULL &&
	    (env->rcpts = calloc(1, sizeof(char *))) == NULL) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	return SG_OK;
fail:
	spool_env_clear(env);
	return st;
}
/*
 * The pool of emptied files.  Creating an inode per spool file and
 * deleting it after delivery is what a busy spool costs the file system
 * most (ext4 without a journal even searches past every inode freed in
 * the last seconds before it reuses one: docs/bench.md).  So a file that
 * is done with is emptied and renamed to tmp/free.N, and the next spool
 * file is one of those renamed to its name (RENAME_NOREPLACE, so a name
 * in use is never replaced), as PostgreSQL recycles its WAL segments.
 * Emptied first: no message content stays under a free name.  A small
 * one is emptied by zeroing it in place (FALLOC_FL_ZERO_RANGE: its
 * blocks become unwritten extents that read as zeros), so that neither
 * its retirement nor its next use frees or allocates blocks (freeing
 * them is a synchronous discard on a file system mounted with
 * `discard`); the next writer sets its length (file_sync).  A large one,
 * or one past SPOOL_KEEP_MAX, or where the file system cannot zero a
 * range, is truncated.  At start, recovery adopts the free files it
 * finds, truncated (a zeroing a power cut undid would show old content).
 */

/* Opens tmp/NAME, new and empty or a free file reading as *STALE zero
 * bytes, for writing (0600): a free file renamed, or a new one.  -1 with
 * errno (EEXIST when NAME exists). */
static int
tmp_create(struct spool *sp, const char *name, off_t *stale)
{
	struct pool_file pf = {0};
	char fname[32];
	int fd, have = 0;

	*stale = 0;
	pthread_mutex_lock(&sp->lock);
	if (sp->npool > 0) {
		pf = sp->pool[--sp->npool];
		sp->pool_kept -= pf.kept;
		have = 1;
	}
	pthread_mutex_unlock(&sp->lock);
	if (have) {
		snprintf(fname, sizeof(fname), "free.%lu", pf.n);
		if (renameat2(sp->tmpfd, fname, sp->tmpfd, name,
		              RENAME_NOREPLACE) == 0) {
			fd = openat(sp->tmpfd, name,
			            O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0) {
				*stale = pf.kept;
				return fd;
			}
			unlinkat(sp->tmpfd, name, 0);
		} else if (errno == EEXIST) {
			pthread_mutex_lock(&sp->lock); /* still free */
			sp->pool[sp->npool++] = pf;
			sp->pool_kept += pf.kept;
			pthread_mutex_unlock(&sp->lock);
			return -1;
		} else {
			unlinkat(sp->tmpfd, fname, 0);
		}
	}
	return openat(sp->tmpfd, name,
	              O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	              0600);
}

/* Ends the writing of a tmp_create file of STALE bytes, LEN bytes written
 * from its start: the zeros past LEN go, then the fsync.  0 or -1. */
static int
file_sync(int fd, off_t stale, off_t len)
{
	if (stale > len && ftruncate(fd, len) < 0)
		return -1;
	return fsync(fd);
}

/* Empties the free file FD of SIZE bytes: zeroed in place when it may
 * keep its blocks, else truncated.  Its KEPT bytes, or -1. */
static off_t
file_empty(struct spool *sp, int fd, off_t size)
{
	int keep = 0;

	if (size > 0 && size <= SPOOL_KEEP_FILE) {
		pthread_mutex_lock(&sp->lock);
		if ((keep = sp->pool_kept + size <= SPOOL_KEEP_MAX))
			sp->pool_kept += size; /* reserved */
		pthread_mutex_unlock(&sp->lock);
	}
	if (keep) {
		if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0,
		              size) == 0)
			return size;
		pthread_mutex_lock(&sp->lock);
		sp->pool_kept -= size;
		pthread_mutex_unlock(&sp->lock);
	}
	return size == 0 || ftruncate(fd, 0) == 0 ? 0 : -1;
}

/* Retires DIRFD/NAME: emptied into the pool when it has room, else
 * removed.  0, or -1 with errno (ENOENT: there was no such file). */
static int
file_retire(struct spool *sp, int dirfd, const char *name)
{
	struct pool_file pf = {0};
	struct stat st;
	char fname[32];
	int fd, room;

	pthread_mutex_lock(&sp->lock);
	if ((room = sp->npool < SPOOL_POOL_MAX))
		pf.n = ++sp->pool_seq;
	pthread_mutex_unlock(&sp->lock);
	if (!room)
		return unlinkat(dirfd, name, 0);
	snprintf(fname, sizeof(fname), "free.%lu", pf.n);
	if (renameat2(dirfd, name, sp->tmpfd, fname, RENAME_NOREPLACE) < 0)
		return errno == ENOENT ? -1 : unlinkat(dirfd, name, 0);
	fd = openat(sp->tmpfd, fname, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    (pf.kept = file_empty(sp, fd, st.st_size)) < 0) {
		if (fd >= 0)
			close(fd);
		unlinkat(sp->tmpfd, fname, 0);
		return 0;
	}
	close(fd);
	pthread_mutex_lock(&sp->lock);
	if ((room = sp->npool < SPOOL_POOL_MAX))
		sp->pool[sp->npool++] = pf; /* its KEPT is reserved */
	else
		sp->pool_kept -= pf.kept;
	pthread_mutex_unlock(&sp->lock);
	if (!room)
		unlinkat(sp->tmpfd, fname, 0);
	return 0;
}

/* Recovery: tmp/NAME is a free file ("free.N"); adopts it when there is
 * room.  1 when NAME is a free file (adopted or removed), else 0. */
static int
pool_adopt(struct spool *sp, const char *name)
{
	unsigned long n;
	char *end;

	if (strncmp(name, "free.", 5) != 0 || name[5] < '0' || name[5] > '9')
		return 0;
	errno = 0;
	n = strtoul(name + 5, &end, 10);
	if (*end != '\0' || errno != 0)
		return 0;
	if (n > sp->pool_seq)
		sp->pool_seq = n;
	if (sp->npool < SPOOL_POOL_MAX) {
		int fd = openat(sp->tmpfd, name,
		                O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			close(fd);
			sp->pool[sp->npool].n = n;
			sp->pool[sp->npool++].kept = 0;
			return 1;
		}
	}
	unlinkat(sp->tmpfd, name, 0);
	return 1;
}

/* Writes ENV to tmp/NAME (new, 0600) and fsyncs it; on failure nothing
 * of it is left. */
static enum sg_status
env_write_tmp(struct spool *sp, const char *name, const struct spool_env *env)
{
	struct kv_buf b = {0};
	enum sg_status st;
	int fd = -1, created = 0;
	off_t stale;

	if ((st = env_format(env, &b)) != SG_OK)
		goto fail;
	fd = tmp_create(sp, name, &stale);
	created = fd >= 0;
	if (fd < 0 || fsio_write_all(fd, b.p, b.len) < 0 ||
	    file_sync(fd, stale, (off_t)b.len) < 0 || close_fd(&fd) < 0) {
		st = io_fail("write-envelope", env->id);
		goto fail;
	}
	free(b.p);
	return SG_OK;
fail:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(sp->tmpfd, name, 0);
	free(b.p);
	return st;
}

/* ---- opening and recovery ---- */

/* A file name for a log line: no spaces, quotes or control bytes. */
static void
safe_name(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
		             ? '?'
		             : (char)c;
	}
	dst[i] = '\0';
}

static int
open_subdir(int dirfd, const char *dir, const char *name, char *err,
            size_t errlen)
{
	struct stat st;
	int fd;

	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST) {
		reason_set(err, errlen, "%s/%s: %s", dir, name,
		           strerror(errno));
		return -1;
	}
	fd = openat(dirfd, name,
	            O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		reason_set(err, errlen, "%s/%s: %s", dir, name,
		           strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0 ||
	    st.st_uid != geteuid()) {
		reason_set(err, errlen,
		           "%s/%s: must be a directory of ours with mode 0700",
		           dir, name);
		close(fd);
		return -1;
	}
	return fd;
}

/* Notes the timestamp of an ID found on disk, so that new IDs sort after
 * it even when the clock went back. */
static void
seen_id(struct spool *sp, const char *name)
{
	char id[SPOOL_ID_LEN + 1];
	uint64_t usec;

	if (strlen(name) < SPOOL_ID_LEN)
		return;
	memcpy(id, name, SPOOL_ID_LEN);
	id[SPOOL_ID_LEN] = '\0';
	if (!spool_id_valid(id))
		return;
	usec = id_usec(id);
	if (usec > sp->last_usec)
		sp->last_usec = usec;
}

static int
exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Removes DIRNAME/NAME (in DIRFD) as an incomplete message. */
static int
remove_incomplete(int dirfd, const char *dirname, const char *name,
                  const char *why)
{
	char safe[SPOOL_NAME_MAX * 2];

	safe_name(safe, sizeof(safe), name);
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
		spool_log("event=error op=recover file=%s/%s error=\"%s\"",
		          dirname, safe, strerror(errno));
		return -1;
	}
	spool_log("event=removed-incomplete id=%.*s file=%s/%s reason=%s",
	          SPOOL_ID_LEN, safe, dirname, safe, why);
	return 0;
}

/* Startup recovery: tmp/ is emptied (its free files join the pool); in queue/,
 * data without an envelope and envelopes without data are removed; committed
 * messages are counted. */
static enum sg_status
spool_recover(struct spool *sp, char *err, size_t errlen)
{
	char id[SPOOL_ID_LEN + 1], other[SPOOL_NAME_MAX];
	char **names = NULL;
	size_t n = 0;
	int removed = 0, failed = 0;

	if (fsio_list_dir(sp->tmpfd, &names, &n) < 0) {
		reason_set(err, errlen, "%s/tmp: %s", sp->dir, strerror(errno));
		return SG_ERR_IO;
	}
	for (size_t i = 0; i < n; i++) {
		if (pool_adopt(sp, names[i]))
			continue;
		seen_id(sp, names[i]);
		if (remove_incomplete(sp->tmpfd, "tmp", names[i],
		                      "incomplete") < 0)
			failed = 1;
		else
			removed = 1;
	}
	fsio_names_free(names, n);
	if (removed)
		fsync(sp->tmpfd);
	if (failed) {
		reason_set(err, errlen, "%s/tmp: cannot remove old files",
		           sp->dir);
		return SG_ERR_IO;
	}

	removed = 0;
	if (fsio_list_dir(sp->queuefd, &names, &n) < 0) {
		reason_set(err, errlen, "%s/queue: %s", sp->dir,
		           strerror(errno));
		return SG_ERR_IO;
	}
	for (size_t i = 0; i < n; i++) {
		char safe[SPOOL_NAME_MAX * 2];
		int r = 0;

		seen_id(sp, names[i]);
		if (spool_id_name(names[i], ".env", id)) {
			snprintf(other, sizeof(other), "%s.msg", id);
			if (exists_at(sp->queuefd, other)) {
				sp->count++;
				spool_log("event=recovered id=%s", id);
				continue;
			}
			r = remove_incomplete(sp->queuefd, "queue", names[i],
			                      "no-data");
		} else if (spool_id_name(names[i], ".msg", id)) {
			snprintf(other, sizeof(other), "%s.env", id);
			if (exists_at(sp->queuefd, other))
				continue;
			r = remove_incomplete(sp->queuefd, "queue", names[i],
			                      "no-envelope");
		} else {
			safe_name(safe, sizeof(safe), names[i]);
			spool_log("event=ignored file=queue/%s", safe);
			continue;
		}
		if (r < 0)
			failed = 1;
		else
			removed = 1;
	}
	fsio_names_free(names, n);
	if (removed)
		fsync(sp->queuefd);
	if (failed) {
		reason_set(err, errlen,
		           "%s/queue: cannot remove incomplete files", sp->dir);
		return SG_ERR_IO;
	}
	return SG_OK;
}

/* A handle for DIR with nothing open yet; NULL (and ERR) without
 * memory. */
static struct spool *
spool_alloc(const char *dir, char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof(*sp));

	if (sp != NULL && (sp->dir = strdup(dir)) == NULL) {
		free(sp);
		sp = NULL;
	}
	if (sp == NULL) {
		reason_set(err, errlen, "out of memory");
		return NULL;
	}
	sp->dirfd = sp->tmpfd = sp->queuefd = -1;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_init(&sp->sync_lock, NULL);
	pthread_cond_init(&sp->sync_cond, NULL);
	return sp;
}

enum sg_status
spool_open(const char *dir, struct spool **out, char *err, size_t errlen)
{
	struct spool *sp;
	struct stat st;
	enum sg_status rc = SG_ERR_IO;

	if ((sp = spool_alloc(dir, err, errlen)) == NULL)
		return SG_ERR_NOMEM;
	if ((sp->pool = calloc(SPOOL_POOL_MAX, sizeof(*sp->pool))) == NULL) {
		reason_set(err, errlen, "out of memory");
		rc = SG_ERR_NOMEM;
		goto fail;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		reason_set(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		reason_set(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (fstat(sp->dirfd, &st) < 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0) {
		reason_set(
		    err, errlen,
		    "%s: must be our directory, not writable by group or "
		    "others",
		    dir);
		goto fail;
	}
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0) {
		reason_set(err, errlen, "%s: %s", dir,
		           errno == EWOULDBLOCK ? "in use by another process"
		                                : strerror(errno));
		if (errno == EWOULDBLOCK)
			rc = SG_ERR_TEMP;
		goto fail;
	}
	sp->tmpfd = open_subdir(sp->dirfd, dir, "tmp", err, errlen);
	if (sp->tmpfd < 0)
		goto fail;
	sp->queuefd = open_subdir(sp->dirfd, dir, "queue", err, errlen);
	if (sp->queuefd < 0)
		goto fail;
	if (fsync(sp->dirfd) < 0) {
		reason_set(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = spool_recover(sp, err, errlen)) != SG_OK)
		goto fail;
	*out = sp;
	return SG_OK;
fail:
	spool_close(sp);
	return rc;
}

enum sg_status
spool_open_view(const char *dir, struct spool **out, char *err, size_t errlen)
{
	struct spool *sp;

	if ((sp = spool_alloc(dir, err, errlen)) == NULL)
		return SG_ERR_NOMEM;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd >= 0)
		sp->queuefd =
		    openat(sp->dirfd, "queue",
		           O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (sp->queuefd < 0) {
		reason_set(err, errlen, "%s%s: %s", dir,
		           sp->dirfd < 0 ? "" : "/queue", strerror(errno));
		spool_close(sp);
		return errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO;
	}
	*out = sp;
	return SG_OK;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->queuefd >= 0)
		close(sp->queuefd);
	if (sp->tmpfd >= 0)
		close(sp->tmpfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd); /* releases the flock */
	pthread_mutex_destroy(&sp->lock);
	pthread_cond_destroy(&sp->sync_cond);
	pthread_mutex_destroy(&sp->sync_lock);
	free(sp->pool);
	free(sp->dir);
	free(sp);
}

/* ---- receiving ---- */

enum sg_status
spool_rx_begin(struct spool *sp, struct spool_rx **out)
{
	struct spool_rx *rx;
	enum sg_status st;
	int fd = -1;

	if ((rx = malloc(sizeof(*rx))) == NULL)
		return SG_ERR_NOMEM;
	for (int tries = 0; tries < 4 && fd < 0; tries++) {
		if ((st = spool_new_id(sp, rx->id)) != SG_OK)
			goto fail;
		fd = tmp_create(sp, rx->id, &rx->stale);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		st = fsio_errno_status(errno);
		spool_log("event=error op=begin error=\"%s\"", strerror(errno));
		goto fail;
	}
	rx->sp = sp;
	rx->fd = fd;
	rx->err = SG_OK;
	rx->size = rx->used = 0;
	*out = rx;
	return SG_OK;
fail:
	free(rx);
	return st;
}

const char *
spool_rx_id(const struct spool_rx *rx)
{
	return rx->id;
}

size_t
spool_rx_size(const struct spool_rx *rx)
{
	return rx->size;
}

static int
rx_flush(struct spool_rx *rx)
{
	if (rx->err != SG_OK)
		return -1;
	if (rx->used > 0 && fsio_write_all(rx->fd, rx->buf, rx->used) < 0) {
		rx->err = io_fail("write", rx->id);
		return -1;
	}
	rx->used = 0;
	return 0;
}

enum sg_status
spool_rx_write(struct spool_rx *rx, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	if (rx->err != SG_OK)
		return rx->err;
	if (len > SIZE_MAX - rx->size)
		return rx->err = SG_ERR_LIMIT;
	rx->size += len;
	while (len > 0) {
		size_t n;

		if (rx->used == sizeof(rx->buf) && rx_flush(rx) < 0)
			return rx->err;
		if (rx->used == 0 && len >= sizeof(rx->buf)) {
			/* large writes go straight to the file */
			if (fsio_write_all(rx->fd, p, len) < 0)
				return rx->err = io_fail("write", rx->id);
			return SG_OK;
		}
		n = sizeof(rx->buf) - rx->used;
		if (n > len)
			n = len;
		memcpy(rx->buf + rx->used, p, n);
		rx->used += n;
		p += n;
		len -= n;
	}
	return SG_OK;
}

/* ---- group commit: shared fsyncs of queue/ ---- */

/* The mark to take before changing queue/ and to give queue_sync(): the
 * count of failed directory fsyncs so far. */
static uint64_t
queue_sync_mark(struct spool *sp)
{
	uint64_t n;

	pthread_mutex_lock(&sp->sync_lock);
	n = sp->sync_errors;
	pthread_mutex_unlock(&sp->sync_lock);
	return n;
}

/* Returns once an fsync of queue/ that began after this call has ended:
 * every change made to queue/ before the call is then durable.  Runs
 * that fsync itself when no other thread is in one (the leader), else
 * waits for the running one to end and then for the next, run by one of
 * the waiters.  0, or -1 with errno when any directory fsync failed since
 * MARK (queue_sync_mark, taken before the change). */
static int
queue_sync(struct spool *sp, uint64_t mark)
{
	uint64_t want;
	int failed, e;

	pthread_mutex_lock(&sp->sync_lock);
	want = sp->sync_started + 1; /* the running one may predate us */
	while (sp->sync_done < want) {
		uint64_t gen;
		int rc;

		if (sp->sync_running) {
			pthread_cond_wait(&sp->sync_cond, &sp->sync_lock);
			continue;
		}
		sp->sync_running = 1;
		gen = ++sp->sync_started;
		pthread_mutex_unlock(&sp->sync_lock);
		rc = fsync(sp->queuefd);
		e = errno;
		pthread_mutex_lock(&sp->sync_lock);
		if (rc < 0) {
			sp->sync_errors++;
			sp->sync_errno = e;
		}
		sp->sync_done = gen;
		sp->sync_running = 0;
		pthread_cond_broadcast(&sp->sync_cond);
	}
	failed = sp->sync_errors != mark;
	e = sp->sync_errno;
	pthread_mutex_unlock(&sp->sync_lock);
	if (failed) {
		errno = e;
		return -1;
	}
	return 0;
}

/*
 * The one commit path (see the top of the file): the file fsyncs are
 * this message's own, each directory fsync is shared with the commits
 * (and updates and removals) running at the same time.
 */
static enum sg_status
spool_commit(struct spool_rx *rx, const struct spool_env *env)
{
	struct spool *sp = rx->sp;
	char envname[SPOOL_NAME_MAX], msgname[SPOOL_NAME_MAX];
	enum sg_status st;
	uint64_t mark;
	int stage = 0; /* 1: queue/ID.msg exists, 2: queue/ID.env too */

	snprintf(envname, sizeof(envname), "%s.env", rx->id);
	snprintf(msgname, sizeof(msgname), "%s.msg", rx->id);
	if (rx_flush(rx) < 0) {
		st = rx->err;
		goto fail;
	}
	if (file_sync(rx->fd, rx->stale, (off_t)rx->size) < 0 ||
	    close_fd(&rx->fd) < 0) {
		st = io_fail("fsync-data", rx->id);
		goto fail;
	}
	if ((st = env_write_tmp(sp, envname, env)) != SG_OK)
		goto fail;
	mark = queue_sync_mark(sp);
	if (renameat(sp->tmpfd, rx->id, sp->queuefd, msgname) < 0) {
		st = io_fail("rename-data", rx->id);
		goto fail;
	}
	stage = 1;
	/* One directory fsync covers both names: until it has ended nothing
	 * is promised, and recovery removes an envelope whose data did not
	 * reach the disk (and data without an envelope). */
	if (renameat(sp->tmpfd, envname, sp->queuefd, envname) < 0) {
		st = io_fail("rename-envelope", rx->id);
		goto fail;
	}
	stage = 2;
	if (queue_sync(sp, mark) < 0) {
		st = io_fail("fsync-queue", rx->id);
		goto fail;
	}
	pthread_mutex_lock(&sp->lock);
	sp->count++;
	pthread_mutex_unlock(&sp->lock);
	return SG_OK;
fail:
	if (rx->fd >= 0)
		close_fd(&rx->fd);
	if (stage >= 2)
		unlinkat(sp->queuefd, envname, 0);
	if (stage >= 1) {
		unlinkat(sp->queuefd, msgname, 0);
		queue_sync(sp, queue_sync_mark(sp));
	}
	unlinkat(sp->tmpfd, rx->id, 0);
	unlinkat(sp->tmpfd, envname, 0);
	return st;
}

enum sg_status
spool_rx_commit(struct spool_rx *rx, struct spool_env *env)
{
	enum sg_status st;

	if (env == NULL) {
		spool_rx_abort(rx);
		return SG_ERR_USAGE;
	}
	memcpy(env->id, rx->id, sizeof(env->id));
	if (env->received == 0)
		env->received = time(NULL);
	st = spool_commit(rx, env);
	free(rx);
	return st;
}

void
spool_rx_abort(struct spool_rx *rx)
{
	if (rx == NULL)
		return;
	if (rx->fd >= 0)
		close(rx->fd);
	unlinkat(rx->sp->tmpfd, rx->id, 0);
	free(rx);
}

/* ---- the queue ---- */

enum sg_status
spool_load(struct spool *sp, const char *id, struct spool_env *env)
{
	char name[SPOOL_NAME_MAX];
	struct spool_env tmp;
	enum sg_status st;
	struct stat sb;
	char *text = NULL;
	size_t len = 0;
	int fd;

	if (id == NULL || !spool_id_valid(id))
		return SG_ERR_USAGE;
	snprintf(name, sizeof(name), "%s.env", id);
	fd = openat(sp->queuefd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? SG_ERR_NOT_FOUND
		                       : fsio_errno_status(errno);
	st = SG_ERR_IO;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > (off_t)SPOOL_ENV_MAX)
		goto fail;
	if ((text = malloc((size_t)sb.st_size + 1)) == NULL) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	while (len <= (size_t)sb.st_size) {
		ssize_t n = read(fd, text + len, (size_t)sb.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = fsio_errno_status(errno);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)sb.st_size) /* grew while read: not ours */
		goto fail;
	if ((st = env_parse(text, len, &tmp)) != SG_OK)
		goto fail;
	if (strcmp(tmp.id, id) != 0) {
		spool_env_clear(&tmp);
		st = SG_ERR_IO;
		goto fail;
	}
	close(fd);
	free(text);
	*env = tmp;
	return SG_OK;
fail:
	close(fd);
	free(text);
	return st;
}

enum sg_status
spool_scan(struct spool *sp, struct spool_env **v, size_t *n)
{
	struct spool_env *out = NULL;
	char id[SPOOL_ID_LEN + 1];
	char **names = NULL;
	size_t nnames = 0, cnt = 0;
	enum sg_status st;

	if (fsio_list_dir(sp->queuefd, &names, &nnames) < 0)
		return fsio_errno_status(errno);
	if (nnames > 0 && (out = calloc(nnames, sizeof(*out))) == NULL) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nnames; i++) {
		if (!spool_id_name(names[i], ".env", id))
			continue;
		st = spool_load(sp, id, &out[cnt]);
		if (st == SG_OK)
			cnt++;
		else if (st == SG_ERR_NOMEM)
			goto fail;
		else if (st != SG_ERR_NOT_FOUND) /* removed meanwhile */
			/* a warning: the message is not scheduled */
			log_warn("spool", "event=bad-envelope id=%s status=%s",
			         id, sg_status_name(st));
	}
	fsio_names_free(names, nnames);
	*v = out;
	*n = cnt;
	return SG_OK;
fail:
	for (size_t i = 0; i < cnt; i++)
		spool_env_clear(&out[i]);
	free(out);
	fsio_names_free(names, nnames);
	return st;
}

int
spool_data_fd(struct spool *sp, const char *id)
{
	char name[SPOOL_NAME_MAX];

	if (id == NULL || !spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(name, sizeof(name), "%s.msg", id);
	return openat(sp->queuefd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

enum sg_status
spool_update(struct spool *sp, const struct spool_env *env)
{
	char tmpname[SPOOL_NAME_MAX], envname[SPOOL_NAME_MAX];
	enum sg_status st;
	unsigned long seq;
	uint64_t mark;

	if (!spool_id_valid(env->id))
		return SG_ERR_USAGE;
	snprintf(envname, sizeof(envname), "%s.env", env->id);
	if (!exists_at(sp->queuefd, envname))
		return errno == ENOENT ? SG_ERR_NOT_FOUND
		                       : fsio_errno_status(errno);
	pthread_mutex_lock(&sp->lock);
	seq = ++sp->seq;
	pthread_mutex_unlock(&sp->lock);
	snprintf(tmpname, sizeof(tmpname), "%s.env.%lu", env->id, seq);
	if ((st = env_write_tmp(sp, tmpname, env)) != SG_OK)
		return st;
	mark = queue_sync_mark(sp);
	if (renameat(sp->tmpfd, tmpname, sp->queuefd, envname) < 0) {
		st = io_fail("update", env->id);
		unlinkat(sp->tmpfd, tmpname, 0);
		return st;
	}
	if (queue_sync(sp, mark) < 0)
		return io_fail("fsync-queue", env->id);
	return SG_OK;
}

enum sg_status
spool_remove(struct spool *sp, const char *id)
{
	char name[SPOOL_NAME_MAX];

	if (id == NULL || !spool_id_valid(id))
		return SG_ERR_USAGE;
	snprintf(name, sizeof(name), "%s.env", id);
	if (file_retire(sp, sp->queuefd, name) < 0)
		return errno == ENOENT ? SG_ERR_NOT_FOUND
		                       : fsio_errno_status(errno);
	pthread_mutex_lock(&sp->lock);
	if (sp->count > 0)
		sp->count--;
	pthread_mutex_unlock(&sp->lock);
	/* No directory fsync: a removal that a power cut undoes means the
	 * message is delivered again (a duplicate, never a loss), as with
	 * Postfix; a crash of the process alone cannot undo it.  Whichever
	 * of the two names survives alone, recovery removes it. */
	snprintf(name, sizeof(name), "%s.msg", id);
	file_retire(sp, sp->queuefd, name);
	return SG_OK;
}

size_t
spool_count(struct spool *sp)
{
	size_t n;

	pthread_mutex_lock(&sp->lock);
	n = sp->count;
	pthread_mutex_unlock(&sp->lock);
	return n;
}
