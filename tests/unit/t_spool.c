/*
 * t_spool.c - the spool, the queue runner and maildir delivery: committed
 * messages keep their exact bytes and envelope; aborted and incomplete
 * ones leave nothing (recovery removes them, keeps the committed ones);
 * damaged envelopes are refused, never trusted; queue IDs are unique and
 * sorted; the runner delivers, retries with the state saved, bounces once,
 * expires, never bounces to the null sender, never runs a message twice
 * at once and loses nothing across a stop; a maildir gets the exact bytes
 * in new/ with its directories 0700.  The queue tests use real time with
 * one-second retries.
 */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/deliver.h"
#include "daemon/queue.h"
#include "daemon/spool.h"
#include "smimegate.h"

/* Waits up to SECS seconds for COND, polling every 10 ms. */
#define WAIT_UNTIL(cond, secs)                                                 \
	do {                                                                   \
		for (int w_ = 0; w_ < (secs)*100 && !(cond); w_++)             \
			usleep(10000);                                         \
	} while (0)

#define MSG "Subject: x\r\n\r\nhi\r\n"

/* ---- fixtures ---- */

struct fx {
	char dir[64];   /* the temporary directory */
	char spool[96]; /* DIR/spool */
	struct spool *sp;
};

static void
fx_init(struct fx *f)
{
	char err[256] = "";

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_spool_XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	CHECK_EQ(spool_open(f->spool, &f->sp, err, sizeof(err)), SG_OK);
	CHECK(f->sp != NULL);
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
fx_clear(struct fx *f)
{
	spool_close(f->sp);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	memset(f, 0, sizeof(*f));
}

static void
fx_reopen(struct fx *f)
{
	char err[256] = "";

	spool_close(f->sp);
	f->sp = NULL;
	CHECK_EQ(spool_open(f->spool, &f->sp, err, sizeof(err)), SG_OK);
}

/* The names in DIR/SUB (not . and .., nor the spool's emptied files kept
 * for reuse, "free.N", when SUB is the spool's tmp). */
static size_t
count_files(const char *dir, const char *sub)
{
	char p[256];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	if ((d = opendir(p)) == NULL)
		return (size_t)-1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0 &&
		    strncmp(e->d_name, "free.", 5) != 0)
			n++;
	closedir(d);
	return n;
}

/* The spool's free files in DIR/tmp, with the inode of the last one seen
 * in *INO; (size_t)-1 when one of them is not empty or not 0600. */
/* Whether DIRFD/NAME reads as nothing but zero bytes (a free file:
 * emptied, or zeroed in place). */
static int
all_zero(int dirfd, const char *name)
{
	unsigned char buf[8192];
	ssize_t got;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW), ok = fd >= 0;

	while (ok && (got = read(fd, buf, sizeof(buf))) != 0) {
		ok = got > 0;
		for (ssize_t i = 0; ok && i < got; i++)
			ok = buf[i] == 0;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The free files in DIR/tmp, each checked (0600, reading as zeros);
 * (size_t)-1 for a bad one.  *INO: one's inode; LARGEST_FREE: the size of
 * the largest, after the call. */
static off_t largest_free;

static size_t
free_files(const char *dir, ino_t *ino)
{
	char p[256];
	struct dirent *e;
	struct stat st;
	size_t n = 0;
	DIR *d;

	largest_free = 0;
	snprintf(p, sizeof(p), "%s/tmp", dir);
	if ((d = opendir(p)) == NULL)
		return (size_t)-1;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "free.", 5) != 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) <
		        0 ||
		    !S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0600 ||
		    !all_zero(dirfd(d), e->d_name)) {
			n = (size_t)-1;
			break;
		}
		if (ino != NULL)
			*ino = st.st_ino;
		if (st.st_size > largest_free)
			largest_free = st.st_size;
		n++;
	}
	closedir(d);
	return n;
}

/* Open descriptors of this process: no test may leak one. */
static size_t
open_fds(void)
{
	size_t n = count_files("/proc/self", "fd");
	return n;
}

static void
touch(const char *dir, const char *sub, const char *name, const char *text)
{
	char p[256];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, name);
	fp = fopen(p, "w");
	CHECK(fp != NULL);
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static int
exists(const char *dir, const char *sub, const char *name)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, name);
	return stat(p, &sb) == 0;
}

/* The whole content of FD from offset 0 (caller frees). */
static char *
slurp_fd(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	ssize_t r;

	while (p && (r = pread(fd, p + n, cap - n, (off_t)n)) > 0) {
		n += (size_t)r;
		if (n == cap) {
			char *np = realloc(p, cap *= 2);
			if (np == NULL) {
				free(p);
				return NULL;
			}
			p = np;
		}
	}
	*len = n;
	return p;
}

static char *
slurp_path(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	char *p;

	if (fd < 0)
		return NULL;
	p = slurp_fd(fd, len);
	close(fd);
	return p;
}

/* A simple envelope (static strings: never cleared). */
static char *rcpts2[] = {"b@example.org", "c@example.org", NULL};

static struct spool_env
simple_env(const char *from)
{
	struct spool_env env = {0};

	env.mail_from = (char *)from;
	env.rcpts = rcpts2;
	env.nrcpts = 2;
	env.listener = "outgoing";
	env.role = 1;
	env.client = "192.0.2.1";
	env.helo = "client.example";
	return env;
}

/* Commits LEN bytes of DATA with ENV (whose id it sets). */
static enum sg_status
commit(struct spool *sp, const void *data, size_t len, struct spool_env *env)
{
	struct spool_rx *rx;
	enum sg_status st;

	if ((st = spool_rx_begin(sp, &rx)) != SG_OK)
		return st;
	if ((st = spool_rx_write(rx, data, len)) != SG_OK) {
		spool_rx_abort(rx);
		return st;
	}
	return spool_rx_commit(rx, env);
}

/* A message of LEN bytes with a pattern that changes each byte. */
static char *
pattern(size_t len, unsigned seed)
{
	char *p = malloc(len ? len : 1);

	for (size_t i = 0; p && i < len; i++)
		p[i] = (char)((i * 31 + seed) % 251);
	return p;
}

static int
same_opt(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
env_equal(const struct spool_env *a, const struct spool_env *b)
{
	if (strcmp(a->id, b->id) != 0 ||
	    !same_opt(a->mail_from, b->mail_from) || a->nrcpts != b->nrcpts ||
	    !same_opt(a->listener, b->listener) || a->role != b->role ||
	    !same_opt(a->client, b->client) || !same_opt(a->helo, b->helo) ||
	    !same_opt(a->dsn_ret, b->dsn_ret) ||
	    !same_opt(a->dsn_envid, b->dsn_envid) ||
	    a->received != b->received || a->attempts != b->attempts ||
	    a->next_try != b->next_try || a->released != b->released ||
	    a->plain != b->plain || !same_opt(a->flow, b->flow) ||
	    !same_opt(a->policy, b->policy) ||
	    !same_opt(a->last_error, b->last_error))
		return 0;
	for (size_t i = 0; i < a->nrcpts; i++) {
		const char *na = a->dsn_notify ? a->dsn_notify[i] : NULL;
		const char *nb = b->dsn_notify ? b->dsn_notify[i] : NULL;
		const char *oa = a->dsn_orcpt ? a->dsn_orcpt[i] : NULL;
		const char *ob = b->dsn_orcpt ? b->dsn_orcpt[i] : NULL;
		if (strcmp(a->rcpts[i], b->rcpts[i]) != 0 ||
		    !same_opt(na, nb) || !same_opt(oa, ob))
			return 0;
	}
	return b->rcpts[b->nrcpts] == NULL;
}

/* ---- the spool ---- */

static void
commit_then_scan_has_exact_bytes(void)
{
	static const struct {
		const char *name;
		size_t len, chunk;
	} cases[] = {
	    {"empty", 0, 1},
	    {"small", 57, 7},
	    {"one-buffer", 32768, 32768},
	    {"buffer-plus-one", 32769, 1000},
	    {"large-writes", 300000, 70000},
	    {"many-small-writes", 100000, 13},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct fx f;
		struct spool_env env = simple_env("a@example.org"), *v = NULL;
		struct spool_rx *rx = NULL;
		char *data = pattern(cases[c].len, (unsigned)c), *got;
		size_t n = 0, glen = 0;
		char id[SPOOL_ID_LEN + 1];
		int fd;

		fx_init(&f);
		CHECK_EQ(spool_rx_begin(f.sp, &rx), SG_OK);
		snprintf(id, sizeof(id), "%s", spool_rx_id(rx));
		for (size_t off = 0; off < cases[c].len;
		     off += cases[c].chunk) {
			size_t k = cases[c].len - off < cases[c].chunk
			               ? cases[c].len - off
			               : cases[c].chunk;
			CHECK_EQ(spool_rx_write(rx, data + off, k), SG_OK);
		}
		CHECK_EQ(spool_rx_size(rx), cases[c].len);
		CHECK_EQ(spool_rx_commit(rx, &env), SG_OK);
		CHECK_STR(env.id, id);
		CHECK(env.received > 0);
		CHECK_EQ(spool_count(f.sp), 1u);
		CHECK_EQ(count_files(f.spool, "tmp"), 0u);
		CHECK_EQ(spool_scan(f.sp, &v, &n), SG_OK);
		CHECK_EQ(n, 1u);
		if (n == 1) {
			CHECK(env_equal(&env, &v[0]));
			fd = spool_data_fd(f.sp, v[0].id);
			CHECK(fd >= 0);
			got = slurp_fd(fd, &glen);
			CHECK_EQ(glen, cases[c].len);
			CHECK(got && memcmp(got, data, glen) == 0);
			free(got);
			close(fd);
			spool_env_clear(&v[0]);
		}
		free(v);
		free(data);
		fx_clear(&f);
	}
}

static void
envelope_round_trips(void)
{
	static char *odd_rcpts[] = {"x y@example.org", "100%@example.org",
	                            "tab\tcr\rlf\n@example.org",
	                            "\xc3\xa9l\xc3\xa8ve@example.org", NULL};
	static char *notify[] = {"SUCCESS,FAILURE", NULL, "NEVER", NULL};
	static char *orcpt[] = {NULL, "rfc822;100+25@example.org", NULL,
	                        "utf-8;\\x{E9}l\\x{E8}ve@example.org", NULL};
	static char *one[] = {"only@example.org", NULL};
	static const struct {
		const char *name;
		const char *from;
		char **rcpts;
		size_t nrcpts;
		char **notify, **orcpt;
		const char *ret, *envid, *helo;
	} cases[] = {
	    {"plain", "a@example.org", one, 1, NULL, NULL, NULL, NULL, "h"},
	    {"null-sender", "", one, 1, NULL, NULL, NULL, NULL, "h"},
	    {"odd-bytes", "a b%c\x01@example.org", odd_rcpts, 4, notify, orcpt,
	     "HDRS", "id with space", "helo\r\nRCPT TO:<x>"},
	    {"no-helo", "a@example.org", one, 1, NULL, NULL, "FULL", "", NULL},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct fx f;
		struct spool_env env = {0}, got = {0};

		fx_init(&f);
		env.mail_from = (char *)cases[c].from;
		env.rcpts = cases[c].rcpts;
		env.nrcpts = cases[c].nrcpts;
		env.dsn_notify = cases[c].notify;
		env.dsn_orcpt = cases[c].orcpt;
		env.dsn_ret = (char *)cases[c].ret;
		env.dsn_envid = (char *)cases[c].envid;
		env.helo = (char *)cases[c].helo;
		env.listener = "in";
		env.role = 2;
		env.received = 1700000000;
		CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
		CHECK_EQ(spool_load(f.sp, env.id, &got), SG_OK);
		CHECK(env_equal(&env, &got));
		spool_env_clear(&got);
		fx_clear(&f);
	}
}

static void
abort_leaves_nothing(void)
{
	struct fx f;
	struct spool_rx *rx = NULL;

	fx_init(&f);
	CHECK_EQ(spool_rx_begin(f.sp, &rx), SG_OK);
	CHECK_EQ(count_files(f.spool, "tmp"), 1u);
	CHECK_EQ(spool_rx_write(rx, "Subject: x\r\n\r\nbody\r\n", 20), SG_OK);
	spool_rx_abort(rx);
	spool_rx_abort(NULL);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);
	CHECK_EQ(spool_count(f.sp), 0u);
	fx_clear(&f);
}

static void
refused_envelope_leaves_nothing(void)
{
	struct fx f;
	struct spool_env env = simple_env("a@example.org");
	struct spool_env none = simple_env("a@example.org");
	char *big = malloc(10000);
	char *bad_rcpts[] = {NULL};

	fx_init(&f);
	memset(big, 'a', 9999);
	big[9999] = '\0';
	env.helo = big; /* over the value limit */
	CHECK_EQ(commit(f.sp, "x", 1, &env), SG_ERR_LIMIT);
	none.rcpts = bad_rcpts; /* nrcpts says 2, the array has none */
	CHECK_EQ(commit(f.sp, "x", 1, &none), SG_ERR_USAGE);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);
	CHECK_EQ(spool_count(f.sp), 0u);
	free(big);
	fx_clear(&f);
}

static void
recovery_keeps_only_committed(void)
{
	static const char *ghost = "0000000000000000000000AB";
	static const char *orphan = "0000000000000000000000CD";
	struct fx f;
	struct spool_rx *rx = NULL;
	struct spool_env env = simple_env("a@example.org");
	char name[64], id[SPOOL_ID_LEN + 1];

	fx_init(&f);
	CHECK_EQ(commit(f.sp, "kept\r\n", 6, &env), SG_OK);
	/* a reception in progress, as a crash leaves it */
	CHECK_EQ(spool_rx_begin(f.sp, &rx), SG_OK);
	CHECK_EQ(spool_rx_write(rx, "half", 4), SG_OK);
	snprintf(id, sizeof(id), "%s", spool_rx_id(rx));
	touch(f.spool, "tmp", "00000000000000000000000Z.env", "version 1\n");
	touch(f.spool, "tmp", "junk", "x");
	/* data renamed, envelope not yet */
	snprintf(name, sizeof(name), "%s.msg", ghost);
	touch(f.spool, "queue", name, "data");
	/* an envelope whose data is gone */
	snprintf(name, sizeof(name), "%s.env", orphan);
	touch(f.spool, "queue", name, "version 1\n");
	spool_rx_abort(rx); /* only to free it: recreate the file */
	touch(f.spool, "tmp", id, "half");

	fx_reopen(&f);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 2u);
	snprintf(name, sizeof(name), "%s.env", env.id);
	CHECK(exists(f.spool, "queue", name));
	snprintf(name, sizeof(name), "%s.msg", env.id);
	CHECK(exists(f.spool, "queue", name));
	CHECK_EQ(spool_count(f.sp), 1u);
	fx_clear(&f);
}

static void
update_survives_reopen(void)
{
	struct fx f;
	struct spool_env env = simple_env("a@example.org"), got = {0},
	                 again = {0};
	static char *left[] = {"c@example.org", NULL};

	fx_init(&f);
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	CHECK_EQ(spool_load(f.sp, env.id, &got), SG_OK);
	CHECK_EQ(got.released, 0);
	got.attempts = 3;
	got.released = 1; /* the quarantine's mark survives */
	got.plain = 1;
	got.flow = strdup("partners");
	got.policy = strdup("sales team");
	got.next_try = 1800000000;
	got.last_error = strdup("451 4.4.1 try\r\nagain % later");
	free(got.rcpts[0]);
	got.rcpts[0] = got.rcpts[1];
	got.rcpts[1] = NULL;
	got.nrcpts = 1;
	CHECK_EQ(spool_update(f.sp, &got), SG_OK);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	fx_reopen(&f);
	CHECK_EQ(spool_count(f.sp), 1u);
	CHECK_EQ(spool_load(f.sp, env.id, &again), SG_OK);
	CHECK(env_equal(&got, &again));
	CHECK_EQ(again.attempts, 3u);
	CHECK_EQ(again.released, 1);
	CHECK_EQ(again.plain, 1);
	CHECK_STR(again.flow, "partners");
	CHECK_STR(again.policy, "sales team");
	CHECK_STR(again.rcpts[0], left[0]);
	CHECK_STR(again.last_error, "451 4.4.1 try\r\nagain % later");
	spool_env_clear(&got);
	spool_env_clear(&again);
	fx_clear(&f);
}

static void
remove_takes_envelope_then_data(void)
{
	struct fx f;
	struct spool_env env = simple_env("a@example.org"), got = {0};

	fx_init(&f);
	CHECK_EQ(commit(f.sp, "x", 1, &env), SG_OK);
	CHECK_EQ(spool_remove(f.sp, env.id), SG_OK);
	CHECK_EQ(spool_count(f.sp), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);
	CHECK_EQ(spool_load(f.sp, env.id, &got), SG_ERR_NOT_FOUND);
	CHECK_EQ(spool_remove(f.sp, env.id), SG_ERR_NOT_FOUND);
	CHECK_EQ(spool_update(f.sp, &env), SG_ERR_NOT_FOUND);
	CHECK(spool_data_fd(f.sp, env.id) < 0);
	fx_clear(&f);
}

/* A removed message's two files are emptied and kept (no content under a
 * free name), the next message's files are those same inodes, and a
 * restart adopts what it finds. */
static void
removed_files_are_emptied_and_reused(void)
{
	struct fx f;
	struct spool_env env = simple_env("a@example.org"), next;
	struct stat st;
	char path[512];
	ino_t ino = 0;
	char *data = pattern(70000, 3);

	fx_init(&f);
	CHECK_EQ(commit(f.sp, data, 70000, &env), SG_OK);
	CHECK_EQ(free_files(f.spool, NULL), 0u);
	snprintf(path, sizeof(path), "%s/queue/%s.msg", f.spool, env.id);
	CHECK_EQ(stat(path, &st), 0);
	ino_t old_msg = st.st_ino;
	snprintf(path, sizeof(path), "%s/queue/%s.env", f.spool, env.id);
	CHECK_EQ(stat(path, &st), 0);
	ino_t old_env = st.st_ino;
	CHECK_EQ(spool_remove(f.sp, env.id), SG_OK);
	CHECK_EQ(free_files(f.spool, &ino), 2u);
	CHECK(ino == old_msg || ino == old_env);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);

	/* shorter than before, both files: what was left past the new
	 * end (zeros of a file zeroed in place) must not stay */
	next = simple_env("b@ex.org");
	CHECK_EQ(commit(f.sp, data, 100, &next), SG_OK);
	CHECK_EQ(free_files(f.spool, NULL), 0u); /* both reused */
	snprintf(path, sizeof(path), "%s/queue/%s.msg", f.spool, next.id);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_size, 100); /* nothing of the old content */
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK(st.st_ino == old_msg || st.st_ino == old_env);
	size_t got_len = 0;
	char *got = slurp_path(path, &got_len);
	CHECK(got != NULL && got_len == 100 && memcmp(got, data, 100) == 0);
	free(got);
	snprintf(path, sizeof(path), "%s/queue/%s.env", f.spool, next.id);
	CHECK_EQ(stat(path, &st), 0);
	CHECK(st.st_ino == old_msg || st.st_ino == old_env);
	got = slurp_path(path, &got_len);
	CHECK(got != NULL && got_len == (size_t)st.st_size &&
	      memchr(got, 0, got_len) == NULL);
	free(got);
	struct spool_env back;
	CHECK_EQ(spool_load(f.sp, next.id, &back), SG_OK);
	CHECK_STR(back.mail_from, "b@ex.org");
	spool_env_clear(&back);
	CHECK_EQ(spool_remove(f.sp, next.id), SG_OK);
	CHECK_EQ(free_files(f.spool, NULL), 2u);

	/* a large message's file is emptied (truncated), not zeroed in
	 * place: the pool does not hold its blocks */
	char *big = pattern(3u << 20, 5);
	next = simple_env("big@example.org");
	CHECK_EQ(commit(f.sp, big, 3u << 20, &next), SG_OK);
	CHECK_EQ(spool_remove(f.sp, next.id), SG_OK);
	CHECK_EQ(free_files(f.spool, NULL), 2u);
	CHECK(largest_free < (1 << 20));
	free(big);

	fx_reopen(&f); /* adopted, not removed, and used again */
	CHECK_EQ(free_files(f.spool, &ino), 2u);
	CHECK_EQ(spool_count(f.sp), 0u);
	next = simple_env("c@example.org");
	CHECK_EQ(commit(f.sp, "y", 1, &next), SG_OK);
	CHECK_EQ(free_files(f.spool, NULL), 0u);
	CHECK_EQ(spool_count(f.sp), 1u);
	free(data);
	fx_clear(&f);
}

static void
ids_are_unique_and_sorted(void)
{
	enum { N = 2000 };
	struct fx f;
	char(*ids)[SPOOL_ID_LEN + 1] = calloc(N + 1, sizeof(*ids));
	struct spool_env env = simple_env("a@example.org");

	fx_init(&f);
	for (int i = 0; i < N; i++) {
		struct spool_rx *rx = NULL;
		CHECK_EQ(spool_rx_begin(f.sp, &rx), SG_OK);
		if (rx == NULL)
			break;
		snprintf(ids[i], sizeof(ids[i]), "%s", spool_rx_id(rx));
		CHECK_EQ(strlen(ids[i]), (size_t)SPOOL_ID_LEN);
		if (i > 0)
			CHECK(strcmp(ids[i - 1], ids[i]) < 0);
		spool_rx_abort(rx);
	}
	/* IDs after a reopen sort after those before */
	CHECK_EQ(commit(f.sp, "x", 1, &env), SG_OK);
	CHECK(strcmp(ids[N - 1], env.id) < 0);
	fx_reopen(&f);
	{
		struct spool_rx *rx = NULL;
		CHECK_EQ(spool_rx_begin(f.sp, &rx), SG_OK);
		CHECK(rx && strcmp(env.id, spool_rx_id(rx)) < 0);
		spool_rx_abort(rx);
	}
	free(ids);
	fx_clear(&f);
}

/* TEXT with each "@ID" replaced by ID. */
static void
with_id(char *out, size_t len, const char *text, const char *id)
{
	size_t o = 0;

	for (const char *t = text; *t && o + SPOOL_ID_LEN + 1 < len; t++) {
		if (strncmp(t, "@ID", 3) == 0) {
			memcpy(out + o, id, SPOOL_ID_LEN);
			o += SPOOL_ID_LEN;
			t += 2;
		} else {
			out[o++] = *t;
		}
	}
	out[o] = '\0';
}

static void
damaged_envelopes_are_refused(void)
{
	static const struct {
		const char *name;
		const char *text;
	} cases[] = {
	    {"empty", ""},
	    {"no-version", "id @ID\nmail_from a\nreceived 1\n"},
	    {"newer-version", "version 2\nid @ID\nmail_from a\nreceived 1\n"},
	    {"torn-line", "version 1\nid @ID\nmail_from a\nreceived 1"},
	    {"bad-escape", "version 1\nid @ID\nmail_from a%4\nreceived 1\n"},
	    {"escaped-nul", "version 1\nid @ID\nmail_from a%00b\nreceived 1\n"},
	    {"raw-tab", "version 1\nid @ID\nmail_from a\tb\nreceived 1\n"},
	    {"bad-number", "version 1\nid @ID\nmail_from a\nreceived -5\n"},
	    {"no-sender", "version 1\nid @ID\nreceived 1\n"},
	    {"other-id", "version 1\nid 0000000000000000000000ZZ\n"
	                 "mail_from a\nreceived 1\n"},
	    {"no-space", "version 1\nid @ID\nmail_from\n"},
	};
	static const char *id = "0000000000000000000000XY";
	struct fx f;
	char name[64], text[512];

	fx_init(&f);
	snprintf(name, sizeof(name), "%s.msg", id);
	touch(f.spool, "queue", name, "data");
	snprintf(name, sizeof(name), "%s.env", id);
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct spool_env got = {0}, *v = NULL;
		size_t n = 99;

		with_id(text, sizeof(text), cases[c].text, id);
		touch(f.spool, "queue", name, text);
		CHECK(spool_load(f.sp, id, &got) != SG_OK);
		CHECK(got.mail_from == NULL && got.rcpts == NULL);
		CHECK_EQ(spool_scan(f.sp, &v, &n), SG_OK);
		CHECK_EQ(n, 0u);
		free(v);
	}
	/* and one that must pass: unknown keys are ignored */
	with_id(text, sizeof(text),
	        "version 1\nid @ID\nmail_from a\nreceived 1\nfuture x\n"
	        "rcpt b%20c NOTIFY\n",
	        id);
	touch(f.spool, "queue", name, text);
	{
		struct spool_env got = {0};
		CHECK_EQ(spool_load(f.sp, id, &got), SG_OK);
		CHECK_EQ(got.nrcpts, 1u);
		CHECK_STR(got.rcpts[0], "b c");
		CHECK(got.dsn_notify && got.dsn_notify[0] &&
		      strcmp(got.dsn_notify[0], "NOTIFY") == 0);
		spool_env_clear(&got);
	}
	/* IDs that are not ours never become paths */
	{
		struct spool_env got = {0};
		CHECK_EQ(spool_load(f.sp, "../../etc/passwd", &got),
		         SG_ERR_USAGE);
		CHECK(spool_data_fd(f.sp, "../x") < 0);
		CHECK_EQ(spool_remove(f.sp, "0000000000000000000000xy"),
		         SG_ERR_USAGE);
	}
	fx_clear(&f);
}

static void
open_refuses_unsafe_or_busy(void)
{
	struct fx f;
	struct spool *other = NULL;
	char err[256] = "", path[128];

	fx_init(&f);
	/* a second daemon on the same spool */
	CHECK_EQ(spool_open(f.spool, &other, err, sizeof(err)), SG_ERR_TEMP);
	CHECK(other == NULL);
	CHECK(strstr(err, "in use") != NULL);
	/* a directory others may write */
	snprintf(path, sizeof(path), "%s/open", f.dir);
	CHECK_EQ(mkdir(path, 0777), 0);
	CHECK_EQ(chmod(path, 0777), 0);
	CHECK_EQ(spool_open(path, &other, err, sizeof(err)), SG_ERR_IO);
	CHECK(other == NULL);
	/* a fresh spool's directories are 0700 */
	{
		struct stat sb;
		char p[160];
		snprintf(p, sizeof(p), "%s/queue", f.spool);
		CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0700);
		CHECK(stat(f.spool, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	}
	fx_clear(&f);
}

/* Receptions on one thread, commits on others, as the SMTP server does. */
struct committer {
	struct spool *sp;
	int n, ok;
	char ids[50][SPOOL_ID_LEN + 1];
};

static void *
committer_run(void *p)
{
	struct committer *c = p;

	for (int i = 0; i < c->n; i++) {
		struct spool_env env = simple_env("a@example.org");
		if (commit(c->sp, MSG, strlen(MSG), &env) == SG_OK) {
			memcpy(c->ids[c->ok], env.id, sizeof(env.id));
			c->ok++;
		}
	}
	return NULL;
}

static void
commits_from_threads(void)
{
	enum { T = 4, N = 50 };
	struct committer c[T];
	pthread_t th[T];
	struct spool_env *v = NULL;
	size_t n = 0, fds = open_fds();
	struct fx f;

	fx_init(&f);
	for (int i = 0; i < T; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].sp = f.sp;
		c[i].n = N;
		CHECK_EQ(pthread_create(&th[i], NULL, committer_run, &c[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(c[i].ok, N);
		for (int k = 1; k < c[i].ok; k++) /* each thread's in order */
			CHECK(strcmp(c[i].ids[k - 1], c[i].ids[k]) < 0);
	}
	CHECK_EQ(spool_count(f.sp), (size_t)(T * N));
	CHECK_EQ(spool_scan(f.sp, &v, &n), SG_OK);
	CHECK_EQ(n, (size_t)(T * N));
	for (size_t i = 0; i < n; i++) {
		if (i > 0) /* oldest first, no two alike */
			CHECK(strcmp(v[i - 1].id, v[i].id) < 0);
		spool_env_clear(&v[i]);
	}
	free(v);
	CHECK_EQ(open_fds(), fds + 3); /* the spool's own three */
	fx_clear(&f);
	CHECK_EQ(open_fds(), fds);
}

/* ---- group commit: many committers sharing directory fsyncs ---- */

enum { GC_THREADS = 16, GC_EACH = 12, GC_LEN = 3000 };

/* How a group-commit test thread treats its I-th message. */
enum gc_fate { GC_KEEP, GC_UPDATE, GC_REMOVE, GC_BAD_ENVELOPE, GC_BAD_DATA };

struct gc_thread {
	struct fx *f;
	pthread_barrier_t *start;
	int t;    /* the thread's number */
	int mode; /* 0: a mix, 1: with failures, 2: keep them all */
	enum gc_fate fate[GC_EACH];
	enum sg_status st[GC_EACH];
	char ids[GC_EACH][SPOOL_ID_LEN + 1];
};

static enum gc_fate
gc_fate_of(int t, int i, int mode)
{
	static const enum gc_fate good[] = {GC_KEEP, GC_UPDATE, GC_KEEP,
	                                    GC_REMOVE};
	if (mode == 2)
		return GC_KEEP;
	if (mode == 1 && (t + i) % 3 == 0)
		return (t + i) % 2 ? GC_BAD_ENVELOPE : GC_BAD_DATA;
	return good[(t + i) % 4];
}

/* Commits one message: its data is pattern(GC_LEN, seed), its helo
 * "gc-SEED" says which.  A bad envelope is over the value limit; bad
 * data has its temporary file removed before the commit (the data's
 * rename fails: after the commit took its mark, before it joins). */
static enum sg_status
gc_commit(struct fx *f, unsigned seed, enum gc_fate fate, char *id)
{
	char helo[5000], path[256];
	struct spool_env env = simple_env("a@example.org");
	struct spool_rx *rx;
	enum sg_status st;
	char *data = pattern(GC_LEN, seed);

	snprintf(helo, sizeof(helo), "gc-%u", seed);
	if (fate == GC_BAD_ENVELOPE) {
		memset(helo, 'h', sizeof(helo) - 1);
		helo[sizeof(helo) - 1] = '\0';
	}
	env.helo = helo;
	if ((st = spool_rx_begin(f->sp, &rx)) != SG_OK) {
		free(data);
		return st;
	}
	snprintf(id, SPOOL_ID_LEN + 1, "%s", spool_rx_id(rx));
	st = spool_rx_write(rx, data, GC_LEN);
	free(data);
	if (st != SG_OK) {
		spool_rx_abort(rx);
		return st;
	}
	if (fate == GC_BAD_DATA) {
		snprintf(path, sizeof(path), "%s/tmp/%s", f->spool, id);
		CHECK_EQ(unlink(path), 0);
	}
	return spool_rx_commit(rx, &env);
}

static void *
gc_run(void *p)
{
	struct gc_thread *g = p;

	pthread_barrier_wait(g->start);
	for (int i = 0; i < GC_EACH; i++) {
		g->fate[i] = gc_fate_of(g->t, i, g->mode);
		g->st[i] = gc_commit(g->f, (unsigned)(g->t * GC_EACH + i),
		                     g->fate[i], g->ids[i]);
	}
	/* updates and removals share the directory fsyncs with the commits
	 * the other threads are still making */
	for (int i = 0; i < GC_EACH; i++) {
		struct spool_env env;

		if (g->st[i] != SG_OK)
			continue;
		if (g->fate[i] == GC_UPDATE &&
		    spool_load(g->f->sp, g->ids[i], &env) == SG_OK) {
			env.attempts = 7;
			g->st[i] = spool_update(g->f->sp, &env);
			spool_env_clear(&env);
		} else if (g->fate[i] == GC_REMOVE) {
			g->st[i] = spool_remove(g->f->sp, g->ids[i]);
		}
	}
	return NULL;
}

/* Runs GC_THREADS threads at once; checks what each commit returned and,
 * after closing and reopening the spool (recovery), that exactly the
 * kept and updated messages are there, with their exact bytes, and
 * nothing else. */
static void
gc_check_run(int mode)
{
	struct gc_thread g[GC_THREADS];
	pthread_t th[GC_THREADS];
	pthread_barrier_t start;
	struct spool_env *v = NULL;
	size_t n = 0, want = 0, fds = open_fds();
	struct fx f;

	fx_init(&f);
	CHECK_EQ(pthread_barrier_init(&start, NULL, GC_THREADS), 0);
	for (int t = 0; t < GC_THREADS; t++) {
		memset(&g[t], 0, sizeof(g[t]));
		g[t].f = &f;
		g[t].start = &start;
		g[t].t = t;
		g[t].mode = mode;
		CHECK_EQ(pthread_create(&th[t], NULL, gc_run, &g[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	for (int t = 0; t < GC_THREADS; t++)
		for (int i = 0; i < GC_EACH; i++) {
			switch (g[t].fate[i]) {
			case GC_BAD_ENVELOPE:
				CHECK_EQ(g[t].st[i], SG_ERR_LIMIT);
				break;
			case GC_BAD_DATA:
				CHECK_EQ(g[t].st[i], SG_ERR_IO);
				break;
			default:
				CHECK_EQ(g[t].st[i], SG_OK);
				want += g[t].fate[i] != GC_REMOVE;
			}
		}
	CHECK_EQ(spool_count(f.sp), want);
	fx_reopen(&f);
	CHECK_EQ(spool_count(f.sp), want);
	CHECK_EQ(count_files(f.spool, "tmp"), 0u);
	CHECK_EQ(count_files(f.spool, "queue"), 2 * want);
	CHECK_EQ(spool_scan(f.sp, &v, &n), SG_OK);
	CHECK_EQ(n, want);
	for (size_t k = 0; k < n; k++) {
		unsigned seed = 0;
		int t, i, fd;
		size_t glen = 0;
		char *got, *data;

		CHECK(v[k].helo && sscanf(v[k].helo, "gc-%u", &seed) == 1);
		t = (int)(seed / GC_EACH) % GC_THREADS;
		i = (int)(seed % GC_EACH);
		CHECK_STR(v[k].id, g[t].ids[i]);
		CHECK(g[t].fate[i] == GC_KEEP || g[t].fate[i] == GC_UPDATE);
		CHECK_EQ(v[k].attempts, g[t].fate[i] == GC_UPDATE ? 7u : 0u);
		fd = spool_data_fd(f.sp, v[k].id);
		CHECK(fd >= 0);
		got = slurp_fd(fd, &glen);
		data = pattern(GC_LEN, seed);
		CHECK(got && data && glen == GC_LEN &&
		      memcmp(got, data, GC_LEN) == 0);
		free(got);
		free(data);
		close(fd);
		spool_env_clear(&v[k]);
	}
	free(v);
	CHECK_EQ(open_fds(), fds + 3);
	fx_clear(&f);
}

static void
group_commit_all_durable(void)
{
	gc_check_run(0);
}

static void
group_commit_failure_spares_the_batch(void)
{
	gc_check_run(1);
}

/* While threads commit, another keeps listing queue/: an envelope is
 * never there without its data (the data's rename comes first; after a
 * crash, recovery removes an envelope whose data's rename did not reach
 * the disk). */
struct gc_watch {
	struct fx *f;
	atomic_int stop;
	int seen, orphans;
};

static void *
gc_watch_run(void *p)
{
	struct gc_watch *w = p;
	char dir[160], msg[256];

	snprintf(dir, sizeof(dir), "%s/queue", w->f->spool);
	while (!atomic_load(&w->stop)) {
		DIR *d = opendir(dir);
		struct dirent *e;

		if (d == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			size_t len = strlen(e->d_name);
			struct stat sb;

			if (len != SPOOL_ID_LEN + 4 ||
			    strcmp(e->d_name + SPOOL_ID_LEN, ".env") != 0)
				continue;
			w->seen++;
			snprintf(msg, sizeof(msg), "%s/%.*s.msg", dir,
			         SPOOL_ID_LEN, e->d_name);
			if (stat(msg, &sb) != 0)
				w->orphans++;
		}
		closedir(d);
	}
	return NULL;
}

static void
group_commit_keeps_data_before_envelope(void)
{
	struct gc_thread g[GC_THREADS];
	struct gc_watch w = {0};
	pthread_t th[GC_THREADS], wt;
	pthread_barrier_t start;
	struct fx f;

	fx_init(&f);
	w.f = &f;
	atomic_init(&w.stop, 0);
	CHECK_EQ(pthread_barrier_init(&start, NULL, GC_THREADS), 0);
	CHECK_EQ(pthread_create(&wt, NULL, gc_watch_run, &w), 0);
	for (int t = 0; t < GC_THREADS; t++) {
		memset(&g[t], 0, sizeof(g[t]));
		g[t].f = &f;
		g[t].start = &start;
		g[t].t = t;
		g[t].mode = 2; /* no removals: they take the envelope first */
		CHECK_EQ(pthread_create(&th[t], NULL, gc_run, &g[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&w.stop, 1);
	pthread_join(wt, NULL);
	pthread_barrier_destroy(&start);
	CHECK(w.seen > 0);
	CHECK_EQ(w.orphans, 0);
	fx_clear(&f);
}

/* ---- the queue, with fake callbacks ---- */

struct fake {
	pthread_mutex_t lock;
	enum sg_status process_st; /* what process returns */
	enum sg_status deliver_st; /* what deliver returns ... */
	int fail_first;            /* ... for the first N calls, then OK */
	int delay_ms;              /* time deliver takes */
	int processed, delivered, attempts, bounced;
	int busy, max_busy; /* deliveries in flight */
	enum sg_status bounce_st;
	char bounce_reason[QUEUE_REPLY_MAX + 32];
	char bounce_from[128];
	size_t bytes; /* of the last delivery */
};

static void
fake_init(struct fake *fk)
{
	memset(fk, 0, sizeof(*fk));
	pthread_mutex_init(&fk->lock, NULL);
	fk->deliver_st = SG_OK;
}

static int
fake_get(struct fake *fk, const int *field)
{
	int v;

	pthread_mutex_lock(&fk->lock);
	v = *field;
	pthread_mutex_unlock(&fk->lock);
	return v;
}

static enum sg_status
fake_process(void *arg, struct spool_env *env, int data_fd, int *out_fd,
             char *reason, size_t reasonlen)
{
	struct fake *fk = arg;
	char tmpl[] = "/tmp/t_spool_out_XXXXXX";
	size_t len = 0;
	char *data;
	int fd;

	pthread_mutex_lock(&fk->lock);
	fk->processed++;
	pthread_mutex_unlock(&fk->lock);
	if (fk->process_st == SG_ERR_BAD_SIGNATURE)
		snprintf(reason, reasonlen, "no valid signature from %s",
		         env->mail_from);
	if (fk->process_st != SG_OK)
		return fk->process_st;
	if ((fd = mkstemp(tmpl)) < 0)
		return SG_ERR_TEMP;
	unlink(tmpl);
	data = slurp_fd(data_fd, &len);
	if (data == NULL || write(fd, "X-Processed: yes\r\n", 18) != 18 ||
	    write(fd, data, len) != (ssize_t)len) {
		free(data);
		close(fd);
		return SG_ERR_TEMP;
	}
	free(data);
	*out_fd = fd;
	return SG_OK;
}

static enum sg_status
fake_deliver(void *arg, struct spool_env *env, int out_fd,
             struct queue_report *rep, char *reply, size_t replylen)
{
	struct fake *fk = arg;
	enum sg_status st;
	size_t len = 0;
	char *data;

	pthread_mutex_lock(&fk->lock);
	fk->busy++;
	if (fk->busy > fk->max_busy)
		fk->max_busy = fk->busy;
	fk->attempts++;
	st = fk->attempts <= fk->fail_first || fk->fail_first < 0
	         ? fk->deliver_st
	         : SG_OK;
	pthread_mutex_unlock(&fk->lock);
	if (fk->delay_ms)
		usleep((useconds_t)fk->delay_ms * 1000);
	data = slurp_fd(out_fd, &len);
	free(data);
	if (st == SG_ERR_TEMP)
		snprintf(reply, replylen, "451 4.4.1 \"busy\"\r\ntry later");
	pthread_mutex_lock(&fk->lock);
	fk->busy--;
	fk->bytes = len;
	if (st == SG_OK)
		fk->delivered++;
	pthread_mutex_unlock(&fk->lock);
	return st;
}

static enum sg_status
fake_bounce(void *arg, const struct spool_env *env, enum sg_status st,
            const char *reason)
{
	struct fake *fk = arg;

	pthread_mutex_lock(&fk->lock);
	fk->bounced++;
	fk->bounce_st = st;
	snprintf(fk->bounce_reason, sizeof(fk->bounce_reason), "%s", reason);
	snprintf(fk->bounce_from, sizeof(fk->bounce_from), "%s",
	         env->mail_from);
	pthread_mutex_unlock(&fk->lock);
	return SG_OK;
}

static const struct queue_ops fake_ops = {NULL, fake_deliver, fake_bounce,
                                          NULL};
static const struct queue_ops fake_ops_process = {fake_process, fake_deliver,
                                                  fake_bounce, NULL};
static const struct queue_params fast = {1, 1, 3600};

static struct queue *
fake_queue(struct fx *f, struct fake *fk, unsigned workers,
           const struct queue_ops *ops, const struct queue_params *p)
{
	struct queue *q = queue_new(f->sp, workers, ops, fk);

	CHECK(q != NULL);
	if (q)
		queue_set_params(q, p ? p : &fast);
	return q;
}

static void
queue_delivers_and_removes(void)
{
	enum { N = 12 };
	struct fx f;
	struct fake fk;
	struct queue *q;
	size_t fds = open_fds();

	fx_init(&f);
	fake_init(&fk);
	fk.delay_ms = 20;
	for (int i = 0; i < N / 2; i++) {
		struct spool_env env = simple_env("a@example.org");
		CHECK_EQ(commit(f.sp, MSG, strlen(MSG), &env), SG_OK);
	}
	q = fake_queue(&f, &fk, 3, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	CHECK_EQ(queue_start(q), SG_ERR_USAGE);
	/* more arrive while it runs, each announced twice */
	for (int i = 0; i < N / 2; i++) {
		struct spool_env env = simple_env("a@example.org");
		CHECK_EQ(commit(f.sp, MSG, strlen(MSG), &env), SG_OK);
		CHECK_EQ(queue_add(q, &env), SG_OK);
		CHECK_EQ(queue_add(q, &env), SG_OK);
	}
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
	CHECK_EQ(spool_count(f.sp), 0u);
	CHECK_EQ(queue_size(q), 0u);
	queue_free(q);
	CHECK_EQ(fk.delivered, N);
	CHECK_EQ(fk.attempts, N);
	CHECK_EQ(fk.bounced, 0);
	CHECK_EQ(fk.bytes, strlen(MSG));
	CHECK(fk.max_busy >= 1 && fk.max_busy <= 3);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);
	fx_clear(&f);
	CHECK_EQ(open_fds(), fds);
}

/* The administrator's requests: delete (waiting, unknown, running) and
 * flush (one, all) over a heap of messages due in an hour. */
static void
queue_flush_and_delete(void)
{
	enum { N = 30 };
	char ids[N][SPOOL_ID_LEN + 1];
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env got = {0};
	size_t n = 99;
	int later = -1, deleted = 0;

	fx_init(&f);
	fake_init(&fk);
	for (int i = 0; i < N; i++) {
		struct spool_env env = simple_env("a@example.org");
		env.next_try = time(NULL) + 3600 + i % 7; /* not in ID order */
		CHECK_EQ(commit(f.sp, MSG, strlen(MSG), &env), SG_OK);
		snprintf(ids[i], sizeof(ids[i]), "%s", env.id);
	}
	q = fake_queue(&f, &fk, 2, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	usleep(200000);
	CHECK_EQ(fake_get(&fk, &fk.attempts), 0);
	/* every third one deleted while it waits: files gone at once */
	for (int i = 0; i < N; i += 3) {
		CHECK_EQ(queue_delete(q, ids[i], &later), SG_OK);
		CHECK_EQ(later, 0);
		CHECK_EQ(spool_load(f.sp, ids[i], &got), SG_ERR_NOT_FOUND);
		deleted++;
	}
	CHECK_EQ(queue_size(q), (size_t)(N - deleted));
	CHECK_EQ(queue_delete(q, ids[0], &later), SG_ERR_NOT_FOUND);
	CHECK_EQ(queue_flush(q, ids[0], &n), SG_ERR_NOT_FOUND);
	/* one flushed: only it goes */
	CHECK_EQ(queue_flush(q, ids[N - 1], &n), SG_OK);
	CHECK_EQ(n, 1u);
	WAIT_UNTIL(fake_get(&fk, &fk.delivered) == 1, 10);
	usleep(100000);
	CHECK_EQ(fake_get(&fk, &fk.delivered), 1);
	CHECK_EQ(spool_load(f.sp, ids[N - 1], &got), SG_ERR_NOT_FOUND);
	/* all the rest */
	CHECK_EQ(queue_flush(q, NULL, &n), SG_OK);
	CHECK_EQ(n, (size_t)(N - deleted - 1));
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
	CHECK_EQ(fake_get(&fk, &fk.delivered), N - deleted);
	CHECK_EQ(fake_get(&fk, &fk.attempts), N - deleted);

	/* deleted during its attempt: it goes when the attempt defers */
	fk.deliver_st = SG_ERR_TEMP;
	fk.fail_first = -1;
	fk.delay_ms = 300;
	{
		struct spool_env env = simple_env("a@example.org");
		CHECK_EQ(commit(f.sp, MSG, strlen(MSG), &env), SG_OK);
		CHECK_EQ(queue_add(q, &env), SG_OK);
		WAIT_UNTIL(fake_get(&fk, &fk.busy) == 1, 10);
		CHECK_EQ(queue_delete(q, env.id, &later), SG_OK);
		CHECK_EQ(later, 1);
		WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
		CHECK_EQ(spool_load(f.sp, env.id, &got), SG_ERR_NOT_FOUND);
	}
	CHECK_EQ(spool_count(f.sp), 0u);
	CHECK_EQ(queue_size(q), 0u);
	CHECK_EQ(fk.bounced, 0);

	/* returned to its sender: bounced at once, never tried */
	fk.delay_ms = 0;
	{
		struct spool_env env = simple_env("a@example.org");
		int attempts = fake_get(&fk, &fk.attempts);

		env.next_try = time(NULL) + 3600;
		CHECK_EQ(commit(f.sp, MSG, strlen(MSG), &env), SG_OK);
		CHECK_EQ(queue_add(q, &env), SG_OK);
		CHECK_EQ(queue_bounce(q, env.id), SG_OK);
		WAIT_UNTIL(fake_get(&fk, &fk.bounced) == 1, 10);
		WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
		CHECK_EQ(fake_get(&fk, &fk.bounced), 1);
		CHECK_EQ(fk.bounce_st, SG_ERR_POLICY);
		CHECK(strstr(fk.bounce_reason, "by the administrator") != NULL);
		CHECK_EQ(fake_get(&fk, &fk.attempts), attempts);
		CHECK_EQ(queue_bounce(q, env.id), SG_ERR_NOT_FOUND);
	}
	queue_free(q);
	fx_clear(&f);
}

static void
queue_process_output_is_delivered(void)
{
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env env = simple_env("a@example.org");
	size_t fds = open_fds();

	fx_init(&f);
	fake_init(&fk);
	CHECK_EQ(commit(f.sp, "body\r\n", 6, &env), SG_OK);
	q = fake_queue(&f, &fk, 2, &fake_ops_process, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	WAIT_UNTIL(fake_get(&fk, &fk.delivered) == 1, 10);
	WAIT_UNTIL(spool_count(f.sp) == 0, 5);
	queue_free(q);
	CHECK_EQ(fk.processed, 1);
	CHECK_EQ(fk.bytes, 18u + 6u);
	CHECK_EQ(spool_count(f.sp), 0u);
	fx_clear(&f);
	CHECK_EQ(open_fds(), fds);
}

static void
temporary_failure_is_saved_and_retried(void)
{
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env env = simple_env("a@example.org"), got = {0};
	time_t before = time(NULL);

	fx_init(&f);
	fake_init(&fk);
	fk.deliver_st = SG_ERR_TEMP;
	fk.fail_first = 2;
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	q = fake_queue(&f, &fk, 2, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	/* the first failure is on disk before the message runs again */
	WAIT_UNTIL(fake_get(&fk, &fk.attempts) >= 1, 5);
	for (int i = 0; i < 200; i++) {
		spool_env_clear(&got);
		if (spool_load(f.sp, env.id, &got) == SG_OK && got.attempts)
			break;
		usleep(5000);
	}
	CHECK_EQ(got.attempts, 1u);
	CHECK(got.next_try >= before + 1 && got.next_try <= time(NULL) + 1);
	CHECK_STR(got.last_error, "451 4.4.1 \"busy\"\r\ntry later");
	spool_env_clear(&got);
	WAIT_UNTIL(fake_get(&fk, &fk.delivered) == 1, 10);
	WAIT_UNTIL(spool_count(f.sp) == 0, 5);
	queue_free(q);
	CHECK_EQ(fk.attempts, 3);
	CHECK_EQ(fk.delivered, 1);
	CHECK_EQ(fk.bounced, 0);
	CHECK(time(NULL) - before >= 2); /* two one-second waits */
	CHECK_EQ(spool_count(f.sp), 0u);
	fx_clear(&f);
}

static void
permanent_failure_bounces_once(void)
{
	static const struct {
		const char *name;
		const char *from;
		enum sg_status process_st, deliver_st;
		int want_bounces, want_attempts;
	} cases[] = {
	    {"deliver-refuses", "a@example.org", SG_OK, SG_ERR_NOT_FOUND, 1, 1},
	    {"process-refuses", "a@example.org", SG_ERR_BAD_SIGNATURE, SG_OK, 1,
	     0},
	    {"null-sender-deliver", "", SG_OK, SG_ERR_NOT_FOUND, 0, 1},
	    {"null-sender-process", "", SG_ERR_LIMIT, SG_OK, 0, 0},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct fx f;
		struct fake fk;
		struct queue *q;
		struct spool_env env = simple_env(cases[c].from);

		fx_init(&f);
		fake_init(&fk);
		fk.process_st = cases[c].process_st;
		fk.deliver_st = cases[c].deliver_st;
		fk.fail_first = -1;
		CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
		q = fake_queue(&f, &fk, 2, &fake_ops_process, NULL);
		CHECK_EQ(queue_start(q), SG_OK);
		WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 5);
		usleep(50000);
		queue_free(q);
		CHECK_EQ(spool_count(f.sp), 0u);
		CHECK_EQ(fk.bounced, cases[c].want_bounces);
		CHECK_EQ(fk.attempts, cases[c].want_attempts);
		CHECK_EQ(fk.processed, 1);
		if (cases[c].want_bounces) {
			CHECK_EQ(fk.bounce_st, cases[c].process_st != SG_OK
			                           ? cases[c].process_st
			                           : cases[c].deliver_st);
			CHECK_STR(fk.bounce_from, cases[c].from);
			CHECK(strlen(fk.bounce_reason) > 0);
			if (cases[c].process_st == SG_ERR_BAD_SIGNATURE)
				CHECK_STR(
				    fk.bounce_reason,
				    "no valid signature from a@example.org");
			else
				CHECK_STR(fk.bounce_reason,
				          "550 5.1.0 no such entry");
		}
		fx_clear(&f);
	}
}

static void
missing_data_bounces(void)
{
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env env = simple_env("a@example.org");
	char p[256];

	fx_init(&f);
	fake_init(&fk);
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	snprintf(p, sizeof(p), "%s/queue/%s.msg", f.spool, env.id);
	CHECK_EQ(unlink(p), 0); /* the data went missing under us */
	q = fake_queue(&f, &fk, 1, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 5);
	queue_free(q);
	CHECK_EQ(fk.attempts, 0);
	CHECK_EQ(fk.bounced, 1);
	CHECK_EQ(count_files(f.spool, "queue"), 0u);
	fx_clear(&f);
}

static void
expired_message_bounces(void)
{
	static const struct {
		const char *name;
		const char *from;
		int want_bounces;
	} cases[] = {
	    {"sender", "a@example.org", 1},
	    {"null-sender", "", 0},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct fx f;
		struct fake fk;
		struct queue *q;
		struct spool_env env = simple_env(cases[c].from);
		struct queue_params p = {1, 1, 100};

		fx_init(&f);
		fake_init(&fk);
		fk.deliver_st = SG_ERR_TEMP;
		fk.fail_first = -1;
		env.received = time(NULL) - 1000; /* older than the lifetime */
		CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
		q = fake_queue(&f, &fk, 1, &fake_ops, &p);
		CHECK_EQ(queue_start(q), SG_OK);
		WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 5);
		queue_free(q);
		CHECK_EQ(spool_count(f.sp), 0u);
		CHECK_EQ(fk.attempts, 1);
		CHECK_EQ(fk.bounced, cases[c].want_bounces);
		if (cases[c].want_bounces) {
			CHECK_EQ(fk.bounce_st, SG_ERR_TEMP);
			CHECK(strncmp(fk.bounce_reason, "expired: ", 9) == 0);
		}
		fx_clear(&f);
	}
}

static void
stop_keeps_undelivered_for_next_start(void)
{
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env env = simple_env("a@example.org"), got = {0};

	fx_init(&f);
	fake_init(&fk);
	fk.deliver_st = SG_ERR_TEMP;
	fk.fail_first = -1;
	fk.delay_ms = 200; /* stop lands during a delivery */
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	q = fake_queue(&f, &fk, 2, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	WAIT_UNTIL(fake_get(&fk, &fk.busy) == 1, 5);
	queue_stop(q); /* waits for the delivery in progress */
	CHECK_EQ(fk.busy, 0);
	CHECK_EQ(fk.attempts, 1);
	CHECK_EQ(queue_add(q, &env), SG_OK); /* ignored after a stop */
	queue_free(q);
	CHECK_EQ(spool_load(f.sp, env.id, &got), SG_OK);
	CHECK_EQ(got.attempts, 1u);
	spool_env_clear(&got);

	/* a restart: the message is still there and goes out */
	fx_reopen(&f);
	CHECK_EQ(spool_count(f.sp), 1u);
	fake_init(&fk);
	q = fake_queue(&f, &fk, 2, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	CHECK_EQ(queue_size(q), 1u);
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
	queue_free(q);
	CHECK_EQ(fk.delivered, 1);
	CHECK_EQ(spool_count(f.sp), 0u);
	fx_clear(&f);
}

static void
never_two_workers_on_one_message(void)
{
	struct fx f;
	struct fake fk;
	struct queue *q;
	struct spool_env env = simple_env("a@example.org");

	fx_init(&f);
	fake_init(&fk);
	fk.delay_ms = 300;
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	q = fake_queue(&f, &fk, 4, &fake_ops, NULL);
	CHECK_EQ(queue_start(q), SG_OK);
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(queue_add(q, &env), SG_OK);
		usleep(5000);
	}
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 5);
	queue_free(q);
	CHECK_EQ(fk.attempts, 1);
	CHECK_EQ(fk.max_busy, 1);
	fx_clear(&f);
}

/* Partial delivery: recipients done leave the envelope, the others are
 * saved and tried again; a failure whose report could not be queued is
 * kept and reported again. */
struct partial {
	pthread_mutex_t lock;
	int calls, reports, report_fails;
	size_t seen_n[4];
	char seen_first[4][32];
	char reported[4][32];
};

static enum sg_status
partial_deliver(void *arg, struct spool_env *env, int out_fd,
                struct queue_report *rep, char *reply, size_t replylen)
{
	struct partial *pt = arg;
	int call;

	pthread_mutex_lock(&pt->lock);
	call = pt->calls++;
	if (call < 4) {
		pt->seen_n[call] = env->nrcpts;
		snprintf(pt->seen_first[call], sizeof(pt->seen_first[0]), "%s",
		         env->nrcpts ? env->rcpts[0] : "");
	}
	pthread_mutex_unlock(&pt->lock);
	/* from the end, so the indexes stay valid */
	for (size_t i = env->nrcpts; i-- > 0;) {
		if (strncmp(env->rcpts[i], "b@", 2) == 0) {
			if (queue_report_rcpt_failed(
			        rep, env, env->rcpts[i], SG_ERR_NOT_FOUND,
			        "550 5.1.1 no such user") == SG_OK)
				queue_env_drop_rcpt(env, i);
		} else if (strncmp(env->rcpts[i], "a@", 2) == 0 || call > 0) {
			queue_env_drop_rcpt(env, i); /* delivered */
		}
	}
	if (env->nrcpts == 0)
		return SG_OK;
	snprintf(reply, replylen, "451 4.4.1 later");
	return SG_ERR_TEMP;
}

static enum sg_status
partial_failed(void *arg, const struct spool_env *env, const char *rcpt,
               enum sg_status st, const char *reply)
{
	struct partial *pt = arg;
	enum sg_status ret;

	pthread_mutex_lock(&pt->lock);
	if (pt->reports < 4)
		snprintf(pt->reported[pt->reports], sizeof(pt->reported[0]),
		         "%s", rcpt);
	pt->reports++;
	/* the first report cannot be queued */
	ret = pt->report_fails++ == 0 ? SG_ERR_TEMP : SG_OK;
	pthread_mutex_unlock(&pt->lock);
	return st == SG_ERR_NOT_FOUND && strstr(reply, "550") ? ret
	                                                      : SG_ERR_USAGE;
}

static void
partial_delivery_keeps_the_rest(void)
{
	static const struct queue_ops ops = {NULL, partial_deliver, fake_bounce,
	                                     partial_failed};
	char *r3[] = {"a@example.org", "b@example.org", "c@example.org", NULL};
	struct spool_env env = simple_env("s@example.org");
	struct partial pt = {0};
	struct queue *q;
	struct fx f;

	fx_init(&f);
	pthread_mutex_init(&pt.lock, NULL);
	env.rcpts = r3;
	env.nrcpts = 3;
	CHECK_EQ(commit(f.sp, "x\r\n", 3, &env), SG_OK);
	q = queue_new(f.sp, 1, &ops, &pt);
	CHECK(q != NULL);
	queue_set_params(q, &fast);
	CHECK_EQ(queue_start(q), SG_OK);
	WAIT_UNTIL(spool_count(f.sp) == 0 && queue_size(q) == 0, 10);
	queue_free(q);
	CHECK_EQ(spool_count(f.sp), 0u);
	CHECK_EQ(pt.calls, 2);
	CHECK_EQ(pt.seen_n[0], 3u);
	CHECK_EQ(pt.seen_n[1], 2u); /* a@ was done, saved without it */
	CHECK_STR(pt.seen_first[1], "b@example.org");
	CHECK_EQ(pt.reports, 2); /* b@ kept once, reported again */
	CHECK_STR(pt.reported[0], "b@example.org");
	CHECK_STR(pt.reported[1], "b@example.org");
	pthread_mutex_destroy(&pt.lock);
	fx_clear(&f);
}

/* ---- maildir delivery ---- */

static int
mode_is(const char *path, mode_t mode)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	       (sb.st_mode & 0777) == mode;
}

static void
maildir_gets_exact_bytes(void)
{
	static const struct {
		const char *name;
		const char *prefix;
		size_t len;
		int pipe;
	} cases[] = {
	    {"empty", NULL, 0, 0},
	    {"small-with-prefix", "Return-Path: <a@example.org>\r\n", 40, 0},
	    {"large", "Delivered-To: b@example.org\r\n", 300000, 0},
	    {"from-a-pipe", NULL, 1000, 1},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		char dir[64] = "/tmp/t_spool_md_XXXXXX", md[128], p[512];
		char name[DELIVER_NAME_MAX] = "";
		char *data = pattern(cases[c].len, 7), *got;
		size_t plen = cases[c].prefix ? strlen(cases[c].prefix) : 0;
		size_t glen = 0;
		int fd, fds[2] = {-1, -1};

		CHECK(mkdtemp(dir) != NULL);
		snprintf(md, sizeof(md), "%s/a/Maildir", dir);
		if (cases[c].pipe) {
			CHECK_EQ(pipe(fds), 0);
			CHECK_EQ(write(fds[1], data, cases[c].len),
			         (ssize_t)cases[c].len);
			close(fds[1]);
			fd = fds[0];
		} else {
			snprintf(p, sizeof(p), "%s/data", dir);
			fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
			CHECK(fd >= 0);
			CHECK_EQ(write(fd, data, cases[c].len),
			         (ssize_t)cases[c].len);
			/* the offset is at the end: pread from 0 */
		}
		CHECK_EQ(deliver_maildir(md, fd, cases[c].prefix, name,
		                         sizeof(name)),
		         SG_OK);
		close(fd);
		CHECK(name[0] != '\0' && strchr(name, '/') == NULL);
		CHECK_EQ(count_files(md, "new"), 1u);
		CHECK_EQ(count_files(md, "tmp"), 0u);
		CHECK_EQ(count_files(md, "cur"), 0u);
		snprintf(p, sizeof(p), "%s/new/%s", md, name);
		got = slurp_path(p, &glen);
		CHECK_EQ(glen, plen + cases[c].len);
		CHECK(got != NULL &&
		      (plen == 0 || memcmp(got, cases[c].prefix, plen) == 0) &&
		      memcmp(got + plen, data, cases[c].len) == 0);
		free(got);
		CHECK(mode_is(md, 0700));
		snprintf(p, sizeof(p), "%s/a", dir);
		CHECK(mode_is(p, 0700));
		const char *subs[] = {"tmp", "new", "cur"};
		for (size_t s = 0; s < 3; s++) {
			snprintf(p, sizeof(p), "%s/%s", md, subs[s]);
			CHECK(mode_is(p, 0700));
		}
		free(data);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static void
maildir_names_are_unique(void)
{
	char dir[64] = "/tmp/t_spool_md_XXXXXX", md[128];
	char a[DELIVER_NAME_MAX], b[DELIVER_NAME_MAX];
	size_t fds = open_fds();
	int fd = open("/dev/null", O_RDONLY);

	CHECK(mkdtemp(dir) != NULL);
	snprintf(md, sizeof(md), "%s/Maildir", dir);
	CHECK_EQ(deliver_maildir(md, fd, "A: 1\r\n", a, sizeof(a)), SG_OK);
	CHECK_EQ(deliver_maildir(md, fd, "A: 2\r\n", b, sizeof(b)), SG_OK);
	CHECK(strcmp(a, b) != 0);
	CHECK_EQ(count_files(md, "new"), 2u);
	/* what must be refused */
	CHECK_EQ(deliver_maildir(NULL, fd, NULL, NULL, 0), SG_ERR_USAGE);
	CHECK_EQ(deliver_maildir("", fd, NULL, NULL, 0), SG_ERR_USAGE);
	CHECK_EQ(deliver_maildir(md, fd, NULL, a, 8), SG_ERR_USAGE);
	CHECK_EQ(deliver_maildir(md, -1, NULL, NULL, 0), SG_ERR_IO);
	CHECK_EQ(count_files(md, "new"), 2u);
	CHECK_EQ(count_files(md, "tmp"), 0u);
	close(fd);
	CHECK_EQ(open_fds(), fds);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const struct unit_case cases[] = {
    {"commit_then_scan_has_exact_bytes", commit_then_scan_has_exact_bytes},
    {"envelope_round_trips", envelope_round_trips},
    {"abort_leaves_nothing", abort_leaves_nothing},
    {"refused_envelope_leaves_nothing", refused_envelope_leaves_nothing},
    {"recovery_keeps_only_committed", recovery_keeps_only_committed},
    {"update_survives_reopen", update_survives_reopen},
    {"remove_takes_envelope_then_data", remove_takes_envelope_then_data},
    {"ids_are_unique_and_sorted", ids_are_unique_and_sorted},
    {"damaged_envelopes_are_refused", damaged_envelopes_are_refused},
    {"open_refuses_unsafe_or_busy", open_refuses_unsafe_or_busy},
    {"commits_from_threads", commits_from_threads},
    {"group_commit_all_durable", group_commit_all_durable},
    {"group_commit_failure_spares_the_batch",
     group_commit_failure_spares_the_batch},
    {"group_commit_keeps_data_before_envelope",
     group_commit_keeps_data_before_envelope},
    {"removed_files_are_emptied_and_reused",
     removed_files_are_emptied_and_reused},
    {"queue_delivers_and_removes", queue_delivers_and_removes},
    {"queue_process_output_is_delivered", queue_process_output_is_delivered},
    {"queue_flush_and_delete", queue_flush_and_delete},
    {"temporary_failure_is_saved_and_retried",
     temporary_failure_is_saved_and_retried},
    {"permanent_failure_bounces_once", permanent_failure_bounces_once},
    {"missing_data_bounces", missing_data_bounces},
    {"expired_message_bounces", expired_message_bounces},
    {"stop_keeps_undelivered_for_next_start",
     stop_keeps_undelivered_for_next_start},
    {"never_two_workers_on_one_message", never_two_workers_on_one_message},
    {"partial_delivery_keeps_the_rest", partial_delivery_keeps_the_rest},
    {"maildir_gets_exact_bytes", maildir_gets_exact_bytes},
    {"maildir_names_are_unique", maildir_names_are_unique},
    {NULL, NULL},
};
const struct unit_suite suite_spool = {"spool", cases};
