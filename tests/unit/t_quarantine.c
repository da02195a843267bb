/*
 * t_quarantine.c - named quarantines: a put keeps the exact bytes and
 * every metadata field (odd bytes included) across a reopen, in files
 * 0600 under directories 0700; damaged metadata is refused with a reason,
 * never trusted; opening repairs what a crash leaves (temporary files no
 * put holds, half entries, a release cut in half) and nothing else;
 * release hands entries to take_released, which removes them only when
 * its function says so; delete and expire (with an injected clock) remove
 * them; names and IDs that could leave the directory are refused before
 * anything is created; puts, releases, deletes and opens from several
 * threads and handles at once lose nothing and leave no half entry; no
 * test leaks a descriptor.
 */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/quarantine.h"
#include "daemon/spool.h"
#include "smimegate.h"

#define MSG "Subject: held\r\nFrom: a@example.org\r\n\r\nbody\r\n"

/* ---- fixtures ---- */

struct fx {
	char dir[64];   /* the temporary directory */
	char spool[96]; /* DIR/spool */
	time_t now;     /* what the handle's clock says */
	size_t fds;     /* descriptors open before the test */
	unsigned ndata; /* data files made */
	struct quarantine *q;
};

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Open descriptors of this process: no test may leak one. */
static size_t
open_fds(void)
{
	struct dirent *e;
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");

	if (d == NULL)
		return (size_t)-1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own */
}

static time_t
fake_clock(void *arg)
{
	return *(time_t *)arg;
}

static void
fx_open(struct fx *f)
{
	char err[256] = "";

	f->q = NULL;
	CHECK_EQ(quarantine_open(f->spool, &f->q, err, sizeof(err)), SG_OK);
	if (err[0])
		fprintf(stderr, "  quarantine_open: %s\n", err);
	if (f->q != NULL)
		quarantine_set_clock(f->q, fake_clock, &f->now);
}

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->fds = open_fds();
	f->now = 1700000000;
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_quarantine_XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	CHECK_EQ(mkdir(f->spool, 0700), 0);
	fx_open(f);
}

static void
fx_reopen(struct fx *f)
{
	quarantine_close(f->q);
	fx_open(f);
}

static void
fx_clear(struct fx *f)
{
	quarantine_close(f->q);
	f->q = NULL;
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	CHECK_EQ(open_fds(), f->fds);
}

static void
mkid(char id[SPOOL_ID_LEN + 1], unsigned n)
{
	snprintf(id, SPOOL_ID_LEN + 1, "%024u", n);
}

/* DIR/spool/REL */
static void
path(const struct fx *f, const char *rel, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", f->spool, rel);
}

static int __attribute__((format(printf, 2, 3)))
exists(const struct fx *f, const char *fmt, ...)
{
	char rel[256], p[512];
	struct stat sb;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	path(f, rel, p, sizeof(p));
	return lstat(p, &sb) == 0;
}

static unsigned __attribute__((format(printf, 2, 3)))
mode_of(const struct fx *f, const char *fmt, ...)
{
	char rel[256], p[512];
	struct stat sb;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	path(f, rel, p, sizeof(p));
	return lstat(p, &sb) == 0 ? (unsigned)(sb.st_mode & 07777) : 0;
}

/* The names in DIR/spool/REL other than . and .. (and .lock). */
static size_t
count_in(const struct fx *f, const char *rel)
{
	char p[512];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	path(f, rel, p, sizeof(p));
	if ((d = opendir(p)) == NULL)
		return (size_t)-1;
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		     strcmp(e->d_name, ".lock");
	closedir(d);
	return n;
}

static void
write_file(const struct fx *f, const char *rel, const void *p, size_t len)
{
	char full[512];
	int fd;

	path(f, rel, full, sizeof(full));
	fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, p, len), (ssize_t)len);
		close(fd);
	}
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
slurp(const struct fx *f, const char *rel, size_t *len)
{
	char full[512];
	char *p;
	int fd;

	path(f, rel, full, sizeof(full));
	if ((fd = open(full, O_RDONLY)) < 0)
		return NULL;
	p = slurp_fd(fd, len);
	close(fd);
	return p;
}

/* A read-only descriptor of LEN bytes of P (its file already unlinked),
 * made in DIR under the name data.TAG.N. */
static int
data_fd_in(const char *dir, int tag, unsigned n, const void *p, size_t len)
{
	char name[128];
	int fd, rd;

	snprintf(name, sizeof(name), "%s/data.%d.%u", dir, tag, n);
	fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd < 0)
		return -1;
	CHECK_EQ(write(fd, p, len), (ssize_t)len);
	close(fd);
	rd = open(name, O_RDONLY);
	unlink(name);
	return rd;
}

static int
data_fd(struct fx *f, const void *p, size_t len)
{
	return data_fd_in(f->dir, 0, f->ndata++, p, len);
}

static char *rcpts2[] = {"b@example.org", "c@example.org", NULL};

/* A simple envelope (static strings: never cleared) with queue ID N. */
static struct spool_env
simple_env(unsigned n)
{
	struct spool_env env = {0};

	mkid(env.id, n);
	env.mail_from = "a@example.org";
	env.rcpts = rcpts2;
	env.nrcpts = 2;
	env.listener = "in";
	env.role = 2;
	env.client = "192.0.2.1";
	env.helo = "client.example";
	env.received = 1699999000;
	return env;
}

/* Puts LEN bytes of DATA with ENV into quarantine NAME. */
static enum sg_status
put(struct fx *f, const char *name, const struct spool_env *env,
    const void *data, size_t len, const char *rule, const char *reason)
{
	int fd = data_fd(f, data, len);
	enum sg_status st = quarantine_put(f->q, name, env, fd, rule, reason);

	if (fd >= 0)
		close(fd);
	return st;
}

static enum sg_status
put_simple(struct fx *f, const char *name, unsigned n)
{
	struct spool_env env = simple_env(n);

	return put(f, name, &env, MSG, strlen(MSG), "rule1", "matched");
}

static int
same_opt(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether GOT holds what ENV said (the fields a quarantine keeps). */
static int
env_same(const struct spool_env *a, const struct spool_env *b)
{
	if (strcmp(a->id, b->id) != 0 ||
	    !same_opt(a->mail_from ? a->mail_from : "", b->mail_from) ||
	    a->nrcpts != b->nrcpts || !same_opt(a->listener, b->listener) ||
	    a->role != b->role || !same_opt(a->client, b->client) ||
	    !same_opt(a->helo, b->helo) || !same_opt(a->dsn_ret, b->dsn_ret) ||
	    !same_opt(a->dsn_envid, b->dsn_envid) ||
	    a->received != b->received || b->attempts != 0 ||
	    b->next_try != 0 || b->last_error != NULL)
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
	return b->rcpts != NULL && b->rcpts[b->nrcpts] == NULL;
}

/* What take_released and expire's functions saw. */
struct taker {
	enum sg_status answer; /* what fn says */
	int calls;
	char ids[8][SPOOL_ID_LEN + 1];
	int released_ok; /* every env had released = 1 and exact data */
	const char *data;
	size_t len;
};

static enum sg_status
take_fn(void *arg, const struct spool_env *env,
        const struct quarantine_info *info, int fd)
{
	struct taker *t = arg;
	size_t len = 0;
	char *got = slurp_fd(fd, &len);

	if (t->calls < 8)
		memcpy(t->ids[t->calls], info->id, SPOOL_ID_LEN + 1);
	t->calls++;
	if (env != &info->env || env->released != 1 || info->size != len ||
	    (t->data && (len != t->len || memcmp(got, t->data, len) != 0)) ||
	    strcmp(env->id, info->id) != 0 || env->nrcpts != 2)
		t->released_ok = 0;
	free(got);
	return t->answer;
}

/* ---- put, list, show ---- */

static void
put_show_round_trip(void)
{
	static char *odd_rcpts[] = {"x y@example.org", "100%@example.org",
	                            "tab\tcr\rlf\n@example.org",
	                            "\xc3\xa9l\xc3\xa8ve@example.org", NULL};
	static char *notify[] = {"SUCCESS,FAILURE", NULL, "NEVER", NULL};
	static char *one[] = {"only@example.org", NULL};
	static const struct {
		const char *name, *quarantine;
		const char *from;
		char **rcpts;
		size_t nrcpts;
		char **notify;
		const char *ret, *envid, *helo, *client, *listener;
		const char *rule, *reason;
		size_t len;
	} cases[] = {
	    {"plain", "Policy", "a@example.org", rcpts2, 2, NULL, NULL, NULL,
	     "client.example", "192.0.2.1", "in", "rule1", "matched", 57},
	    {"null-sender-no-rule", "Policy", "", one, 1, NULL, NULL, NULL,
	     NULL, NULL, NULL, NULL, NULL, 10},
	    {"odd-bytes", "Spam_2-x", "a b%c\x01@example.org", odd_rcpts, 4,
	     notify, "HDRS", "id with space", "helo\r\nRCPT TO:<x>",
	     "2001:db8::1", "list ener", "rule with 100% and \xe2\x9c\x93",
	     "line1\r\nline2\n\t100%25 \xc3\xa9\x7f end", 1000},
	    {"empty-message", "Policy", "a@example.org", one, 1, NULL, "FULL",
	     "", "h", "c", "l", "", "", 0},
	    {"large-message", "Policy", "a@example.org", rcpts2, 2, NULL, NULL,
	     NULL, "h", "c", "l", "r", "why", 300000},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct spool_env env = {0};
		struct quarantine_info got, *v = NULL;
		char *data = malloc(cases[c].len + 1), *back;
		size_t n = 0, blen = 0;
		struct fx f;
		int fd;

		fx_init(&f);
		for (size_t i = 0; i < cases[c].len; i++)
			data[i] = (char)((i * 31 + c) % 256);
		mkid(env.id, 1000 + (unsigned)c);
		env.mail_from = (char *)cases[c].from;
		env.rcpts = cases[c].rcpts;
		env.nrcpts = cases[c].nrcpts;
		env.dsn_notify = cases[c].notify;
		/* every other case: an ORCPT for the first recipient */
		char *orcpt[3] = {"rfc822;Orig+2B1@example.org", NULL, NULL};
		if (c % 2 == 1 && cases[c].nrcpts <= 2)
			env.dsn_orcpt = orcpt;
		env.dsn_ret = (char *)cases[c].ret;
		env.dsn_envid = (char *)cases[c].envid;
		env.helo = (char *)cases[c].helo;
		env.client = (char *)cases[c].client;
		env.listener = (char *)cases[c].listener;
		env.role = 1;
		env.received = 1699990000 + (time_t)c;
		env.attempts = 7; /* not kept */
		CHECK_EQ(put(&f, cases[c].quarantine, &env, data, cases[c].len,
		             cases[c].rule, cases[c].reason),
		         SG_OK);
		for (int round = 0; round < 2; round++) {
			/* and again after a reopen: it is on disk */
			if (round == 1)
				fx_reopen(&f);
			memset(&got, 0, sizeof(got));
			CHECK_EQ(quarantine_show(f.q, env.id, &got), SG_OK);
			CHECK_STR(got.id, env.id);
			CHECK_STR(got.name, cases[c].quarantine);
			CHECK_EQ(got.quarantined, f.now);
			CHECK(same_opt(got.rule, cases[c].rule));
			CHECK(same_opt(got.reason, cases[c].reason));
			CHECK_EQ(got.size, (uint64_t)cases[c].len);
			CHECK_EQ(got.damaged, 0);
			CHECK_EQ(got.env.released, 0);
			CHECK(env_same(&env, &got.env));
			quarantine_info_clear(&got);
			fd = quarantine_data_fd(f.q, env.id);
			CHECK(fd >= 0);
			back = slurp_fd(fd, &blen);
			CHECK_EQ(blen, cases[c].len);
			CHECK(back && memcmp(back, data, blen) == 0);
			free(back);
			if (fd >= 0)
				close(fd);
			CHECK_EQ(quarantine_list(f.q, NULL, &v, &n), SG_OK);
			CHECK_EQ(n, 1u);
			if (n == 1) {
				CHECK_STR(v[0].id, env.id);
				CHECK(env_same(&env, &v[0].env));
			}
			quarantine_list_free(v, n);
		}
		CHECK_EQ(mode_of(&f, "quarantine"), 0700u);
		CHECK_EQ(mode_of(&f, "release"), 0700u);
		CHECK_EQ(mode_of(&f, "quarantine/%s", cases[c].quarantine),
		         0700u);
		{
			char rel[128];
			snprintf(rel, sizeof(rel), "quarantine/%s/%s.msg",
			         cases[c].quarantine, env.id);
			CHECK_EQ(mode_of(&f, "%s", rel), 0600u);
			snprintf(rel, sizeof(rel), "quarantine/%s/%s.meta",
			         cases[c].quarantine, env.id);
			CHECK_EQ(mode_of(&f, "%s", rel), 0600u);
			snprintf(rel, sizeof(rel), "quarantine/%s",
			         cases[c].quarantine);
			CHECK_EQ(count_in(&f, rel), 2u); /* no .tmp left */
		}
		free(data);
		fx_clear(&f);
	}
}

/* The file format is the documented one (docs/quarantine.md): the test's
 * and the e2e test's writers depend on it. */
static void
meta_file_is_as_documented(void)
{
	static char *notify[] = {NULL, "SUCCESS,DELAY", NULL};
	static const char want[] = "version 1\n"
	                           "id 000000000000000000000007\n"
	                           "quarantine Policy\n"
	                           "quarantined 1700000000\n"
	                           "size 3\n"
	                           "rule no%20smime\n"
	                           "reason a%0D%0Ab%25\n"
	                           "received 1699999000\n"
	                           "mail_from a@example.org\n"
	                           "listener in\n"
	                           "role 2\n"
	                           "client 192.0.2.1\n"
	                           "helo client.example\n"
	                           "rcpt b@example.org\n"
	                           "rcpt c@example.org SUCCESS,DELAY\n"
	                           "end\n";
	struct spool_env env = simple_env(7);
	struct fx f;
	size_t len = 0;
	char *text;

	fx_init(&f);
	env.dsn_notify = notify;
	CHECK_EQ(put(&f, "Policy", &env, "x\r\n", 3, "no smime", "a\r\nb%"),
	         SG_OK);
	text =
	    slurp(&f, "quarantine/Policy/000000000000000000000007.meta", &len);
	CHECK(text != NULL && len == strlen(want) &&
	      memcmp(text, want, len) == 0);
	free(text);
	fx_clear(&f);
}

static void
put_refuses_what_does_not_fit(void)
{
	char *big = malloc(5000), *reason = malloc(2000);
	char *bad_rcpts[] = {NULL};
	struct spool_env env = simple_env(1), none = simple_env(2);
	struct quarantine_info got;
	char err[256];
	struct fx f;
	int fd;

	fx_init(&f);
	memset(big, 'a', 4999);
	big[4999] = '\0';
	CHECK_EQ(put(&f, "Policy", &env, "x", 1, big, "r"), SG_ERR_LIMIT);
	env.helo = big;
	CHECK_EQ(put(&f, "Policy", &env, "x", 1, "r", "r"), SG_ERR_LIMIT);
	quarantine_error(f.q, err, sizeof(err));
	CHECK(strstr(err, env.id) != NULL);
	env.helo = "h";
	none.rcpts = bad_rcpts; /* nrcpts says 2, the array has none */
	CHECK_EQ(put(&f, "Policy", &none, "x", 1, "r", "r"), SG_ERR_USAGE);
	none.rcpts = NULL;
	none.nrcpts = QUARANTINE_RCPT_MAX + 1;
	CHECK_EQ(put(&f, "Policy", &none, "x", 1, "r", "r"), SG_ERR_LIMIT);
	CHECK_EQ(count_in(&f, "quarantine"), 0u); /* not even its dir */
	/* a message over the limit (a sparse file: nothing is read) */
	{
		char name[128];
		snprintf(name, sizeof(name), "%s/huge", f.dir);
		fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		CHECK(fd >= 0 &&
		      ftruncate(fd, (off_t)QUARANTINE_MSG_MAX + 1) == 0);
		CHECK_EQ(quarantine_put(f.q, "Policy", &env, fd, "r", "r"),
		         SG_ERR_LIMIT);
		close(fd);
		unlink(name);
	}
	CHECK_EQ(count_in(&f, "quarantine"), 0u);
	/* a long reason is cut, not refused, and not inside a character */
	memset(reason, 'r', 2000);
	memcpy(reason + QUARANTINE_REASON_MAX - 1, "\xc3\xa9", 2);
	reason[1999] = '\0';
	CHECK_EQ(put(&f, "Policy", &env, "x", 1, "r", reason), SG_OK);
	memset(&got, 0, sizeof(got));
	CHECK_EQ(quarantine_show(f.q, env.id, &got), SG_OK);
	CHECK(got.reason != NULL &&
	      strlen(got.reason) == QUARANTINE_REASON_MAX - 1 &&
	      memcmp(got.reason, reason, QUARANTINE_REASON_MAX - 1) == 0);
	quarantine_info_clear(&got);
	/* a bad descriptor */
	CHECK_EQ(quarantine_put(f.q, "Policy", &env, -1, "r", "r"),
	         SG_ERR_USAGE);
	CHECK_EQ(quarantine_put(f.q, "Policy", NULL, 0, "r", "r"),
	         SG_ERR_USAGE);
	free(big);
	free(reason);
	fx_clear(&f);
}

static void
put_replaces_the_same_id(void)
{
	struct spool_env env = simple_env(3);
	struct quarantine_info *v = NULL;
	size_t n = 0;
	struct fx f;

	fx_init(&f);
	CHECK_EQ(put(&f, "Policy", &env, "one", 3, "r", "first"), SG_OK);
	f.now += 10;
	CHECK_EQ(put(&f, "Policy", &env, "second", 6, "r", "again"), SG_OK);
	CHECK_EQ(quarantine_list(f.q, NULL, &v, &n), SG_OK);
	CHECK_EQ(n, 1u);
	if (n == 1) {
		CHECK_STR(v[0].reason, "again");
		CHECK_EQ(v[0].size, 6u);
		CHECK_EQ(v[0].quarantined, f.now);
	}
	quarantine_list_free(v, n);
	CHECK_EQ(count_in(&f, "quarantine/Policy"), 2u);
	fx_clear(&f);
}

static void
list_is_oldest_first_and_by_name(void)
{
	static const struct {
		const char *name;
		unsigned id;
		time_t at;
	} puts_[] = {
	    {"Policy", 5, 300}, {"Other", 6, 100}, {"Policy", 7, 200},
	    {"Other", 4, 200},  {"Policy", 8, 50},
	};
	struct quarantine_info *v = NULL;
	size_t n = 0;
	struct fx f;

	fx_init(&f);
	for (size_t i = 0; i < sizeof(puts_) / sizeof(*puts_); i++) {
		f.now = puts_[i].at;
		CHECK_EQ(put_simple(&f, puts_[i].name, puts_[i].id), SG_OK);
	}
	CHECK_EQ(quarantine_list(f.q, NULL, &v, &n), SG_OK);
	CHECK_EQ(n, 5u);
	if (n == 5) { /* 8@50, 6@100, 4@200, 7@200, 5@300 */
		static const unsigned order[] = {8, 6, 4, 7, 5};
		for (size_t i = 0; i < 5; i++) {
			char id[SPOOL_ID_LEN + 1];
			mkid(id, order[i]);
			CHECK_STR(v[i].id, id);
		}
	}
	quarantine_list_free(v, n);
	CHECK_EQ(quarantine_list(f.q, "Other", &v, &n), SG_OK);
	CHECK_EQ(n, 2u);
	for (size_t i = 0; i < n; i++)
		CHECK_STR(v[i].name, "Other");
	quarantine_list_free(v, n);
	/* a quarantine nothing was put into yet: empty, not an error */
	v = (void *)1;
	CHECK_EQ(quarantine_list(f.q, "Empty", &v, &n), SG_OK);
	CHECK_EQ(n, 0u);
	CHECK(v == NULL);
	fx_clear(&f);
}

/* ---- damaged files ---- */

#define GOOD_HEAD "version 1\nid 000000000000000000000009\nquarantine Policy\n"
#define GOOD_TAIL                                                              \
	"quarantined 1700000000\nsize 1\nmail_from a@example.org\n"            \
	"rcpt b@example.org\n"

static void
damaged_meta_is_refused(void)
{
	char big[6000];
	static const struct {
		const char *name;
		const char *text; /* NULL: BIG */
		enum sg_status st;
		const char *why; /* in the error, when given */
	} cases[] = {
	    {"good", GOOD_HEAD GOOD_TAIL "end\n", SG_OK, NULL},
	    {"unknown-key-ignored", GOOD_HEAD "colour blue\n" GOOD_TAIL "end\n",
	     SG_OK, NULL},
	    {"empty", "", SG_ERR_IO, NULL},
	    {"no-version", "id 000000000000000000000009\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, NULL},
	    {"newer-version", "version 2\n" GOOD_TAIL "end\n",
	     SG_ERR_UNSUPPORTED, NULL},
	    {"no-end", GOOD_HEAD GOOD_TAIL, SG_ERR_IO, NULL},
	    {"torn-end", GOOD_HEAD GOOD_TAIL "end", SG_ERR_IO, NULL},
	    {"torn-line", GOOD_HEAD GOOD_TAIL "rcpt c@exa", SG_ERR_IO, NULL},
	    {"after-end", GOOD_HEAD GOOD_TAIL "end\nrcpt x@example.org\n",
	     SG_ERR_IO, NULL},
	    {"bad-escape", GOOD_HEAD GOOD_TAIL "reason a%G1\nend\n", SG_ERR_IO,
	     NULL},
	    {"cut-escape", GOOD_HEAD GOOD_TAIL "reason a%4\nend\n", SG_ERR_IO,
	     NULL},
	    {"encoded-nul", GOOD_HEAD GOOD_TAIL "reason a%00b\nend\n",
	     SG_ERR_IO, NULL},
	    {"raw-control", GOOD_HEAD GOOD_TAIL "reason a\tb\nend\n", SG_ERR_IO,
	     NULL},
	    {"raw-cr", GOOD_HEAD GOOD_TAIL "reason a\rb\nend\n", SG_ERR_IO,
	     NULL},
	    {"space-in-value", GOOD_HEAD GOOD_TAIL "rule a b\nend\n", SG_ERR_IO,
	     NULL},
	    {"three-rcpt-words", GOOD_HEAD GOOD_TAIL "rcpt a b c\nend\n",
	     SG_ERR_IO, "bad recipient NOTIFY"},
	    {"bad-rcpt", GOOD_HEAD GOOD_TAIL "rcpt a%zz\nend\n", SG_ERR_IO,
	     "bad recipient"},
	    {"orcpt-first",
	     GOOD_HEAD "orcpt rfc822;b@example.org\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, "\"orcpt\" without its recipient"},
	    {"orcpt-twice",
	     GOOD_HEAD GOOD_TAIL "rcpt c@example.org\norcpt rfc822;c\n"
	                         "orcpt rfc822;d\nend\n",
	     SG_ERR_IO, "\"orcpt\" without its recipient"},
	    {"bad-orcpt", GOOD_HEAD GOOD_TAIL "rcpt c\norcpt a%4\nend\n",
	     SG_ERR_IO, "bad value of \"orcpt\""},
	    {"bad-number",
	     GOOD_HEAD "quarantined 12x\nsize 1\nmail_from a\n"
	               "end\n",
	     SG_ERR_IO, NULL},
	    {"negative-time",
	     GOOD_HEAD "quarantined -5\nsize 1\nmail_from "
	               "a\nend\n",
	     SG_ERR_IO, NULL},
	    {"size-over-limit",
	     GOOD_HEAD "quarantined 1\nsize 99999999999\n"
	               "mail_from a\nend\n",
	     SG_ERR_IO, NULL},
	    {"role-overflow", GOOD_HEAD GOOD_TAIL "role 99999999999\nend\n",
	     SG_ERR_IO, NULL},
	    {"id-mismatch",
	     "version 1\nid 000000000000000000000008\nquarantine "
	     "Policy\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, NULL},
	    {"bad-id",
	     "version 1\nid ../../x\nquarantine Policy\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, NULL},
	    {"other-quarantine",
	     "version 1\nid 000000000000000000000009\nquarantine "
	     "Other\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, NULL},
	    {"bad-quarantine-name",
	     "version 1\nid 000000000000000000000009\nquarantine "
	     "../x\n" GOOD_TAIL "end\n",
	     SG_ERR_IO, NULL},
	    {"twice", GOOD_HEAD GOOD_TAIL "size 1\nend\n", SG_ERR_IO, NULL},
	    {"no-mail-from",
	     GOOD_HEAD "quarantined 1\nsize 1\nrcpt b@example.org\nend\n",
	     SG_ERR_IO, NULL},
	    {"no-size", GOOD_HEAD "quarantined 1\nmail_from a\nend\n",
	     SG_ERR_IO, NULL},
	    {"not-key-value", GOOD_HEAD GOOD_TAIL "garbage\nend\n", SG_ERR_IO,
	     NULL},
	    {"empty-key", GOOD_HEAD GOOD_TAIL " value\nend\n", SG_ERR_IO, NULL},
	    {"empty-line", GOOD_HEAD GOOD_TAIL "\nend\n", SG_ERR_IO, NULL},
	    {"value-too-long", NULL, SG_ERR_IO, NULL},
	};
	static const char id[] = "000000000000000000000009";

	snprintf(big, sizeof(big), GOOD_HEAD GOOD_TAIL "helo %05000d\nend\n",
	         0);
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		const char *text = cases[c].text ? cases[c].text : big;
		struct quarantine_info got, *v = NULL;
		enum sg_status st;
		char err[256] = "";
		size_t n = 0;
		struct fx f;
		int fd;

		fx_init(&f);
		CHECK_EQ(put_simple(&f, "Policy", 9), SG_OK);
		write_file(&f, "quarantine/Policy/000000000000000000000009.msg",
		           "x", 1);
		write_file(&f,
		           "quarantine/Policy/000000000000000000000009.meta",
		           text, strlen(text));
		memset(&got, 0, sizeof(got));
		st = quarantine_show(f.q, id, &got);
		if (st != cases[c].st)
			fprintf(stderr, "  case %s: status %s\n", cases[c].name,
			        sg_status_name(st));
		CHECK_EQ(st, cases[c].st);
		quarantine_info_clear(&got);
		quarantine_error(f.q, err, sizeof(err));
		if (cases[c].st != SG_OK)
			CHECK(strstr(err, "damaged") != NULL &&
			      strstr(err, id) != NULL);
		if (cases[c].why != NULL && strstr(err, cases[c].why) == NULL)
			fprintf(stderr, "  case %s: error \"%s\"\n",
			        cases[c].name, err);
		CHECK(cases[c].why == NULL ||
		      strstr(err, cases[c].why) != NULL);
		CHECK_EQ(quarantine_list(f.q, NULL, &v, &n), SG_OK);
		CHECK_EQ(n, 1u);
		if (n == 1) {
			CHECK_EQ(v[0].damaged, cases[c].st != SG_OK);
			CHECK_STR(v[0].id, id);
			CHECK_STR(v[0].name, "Policy");
		}
		quarantine_list_free(v, n);
		/* expire skips it and says so; delete still works */
		CHECK_EQ(quarantine_expire(f.q, NULL, f.now + 100, NULL, NULL),
		         cases[c].st);
		if (cases[c].st != SG_OK) {
			CHECK(exists(&f, "quarantine/Policy/%s.meta", id));
			CHECK_EQ(quarantine_delete(f.q, id), SG_OK);
		}
		CHECK(!exists(&f, "quarantine/Policy/%s.meta", id));
		fd = quarantine_data_fd(f.q, id);
		CHECK(fd < 0 && errno == ENOENT);
		fx_clear(&f);
	}
}

static void
oversized_or_odd_meta_is_refused(void)
{
	static const char id[] = "000000000000000000000009";
	struct quarantine_info got;
	char p[512];
	struct fx f;
	int fd;

	fx_init(&f);
	CHECK_EQ(put_simple(&f, "Policy", 9), SG_OK);
	/* a huge (sparse) file is refused without being read */
	path(&f, "quarantine/Policy/000000000000000000000009.meta", p,
	     sizeof(p));
	fd = open(p, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)QUARANTINE_META_MAX + 1) == 0);
	if (fd >= 0)
		close(fd);
	memset(&got, 0, sizeof(got));
	CHECK_EQ(quarantine_show(f.q, id, &got), SG_ERR_IO);
	/* a FIFO, a directory and a symbolic link are not metadata */
	CHECK_EQ(unlink(p), 0);
	CHECK_EQ(mkfifo(p, 0600), 0);
	CHECK_EQ(quarantine_show(f.q, id, &got), SG_ERR_IO);
	CHECK_EQ(unlink(p), 0);
	CHECK_EQ(mkdir(p, 0700), 0);
	CHECK_EQ(quarantine_show(f.q, id, &got), SG_ERR_IO);
	CHECK_EQ(rmdir(p), 0);
	CHECK_EQ(symlink("/etc/passwd", p), 0);
	CHECK_EQ(quarantine_show(f.q, id, &got), SG_ERR_IO);
	CHECK_EQ(unlink(p), 0);
	/* a .msg that is not the size the .meta says is not handed over */
	CHECK_EQ(put_simple(&f, "Policy", 9), SG_OK);
	write_file(&f, "quarantine/Policy/000000000000000000000009.msg", "xy",
	           2);
	CHECK_EQ(quarantine_release(f.q, id), SG_OK);
	{
		struct taker t = {SG_OK, 0, {{0}}, 1, NULL, 0};
		CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_ERR_IO);
		CHECK_EQ(t.calls, 0);
		CHECK(exists(&f, "release/%s.meta", id));
	}
	CHECK_EQ(quarantine_take_released(f.q, NULL, NULL), SG_ERR_USAGE);
	fx_clear(&f);
}

/* ---- opening repairs what a crash left ---- */

/* Writes DIR/<ID N>SUFFIX (a byte). */
static void
touch(struct fx *f, const char *dir, unsigned n, const char *suffix)
{
	char id[SPOOL_ID_LEN + 1], rel[256];

	mkid(id, n);
	snprintf(rel, sizeof(rel), "%s%s%s", dir, id, suffix);
	write_file(f, rel, "x", 1);
}

static int
has(struct fx *f, const char *dir, unsigned n, const char *suffix)
{
	char id[SPOOL_ID_LEN + 1];

	mkid(id, n);
	return exists(f, "%s%s%s", dir, id, suffix);
}

static void
open_repairs_leftovers(void)
{
	char id[SPOOL_ID_LEN + 1], p[512];
	struct quarantine_info got;
	struct fx f;
	int held;

	fx_init(&f);
	CHECK_EQ(put_simple(&f, "Policy", 8), SG_OK); /* complete: kept */
	CHECK_EQ(put_simple(&f, "Other", 6), SG_OK);  /* split below */
	CHECK_EQ(put_simple(&f, "Policy", 5), SG_OK); /* split below */
	CHECK_EQ(put_simple(&f, "Policy", 9), SG_OK); /* released ... */
	mkid(id, 9);
	CHECK_EQ(quarantine_release(f.q, id), SG_OK);
	touch(&f, "quarantine/Policy/", 9, ".msg"); /* ... and a copy left */
	touch(&f, "quarantine/Policy/", 9, ".meta");
	/* a release cut after its first rename (ID 5), and one whose
	 * renames reached the disk the other way round (ID 6) */
	{
		char a[512], b[512];
		mkid(id, 5);
		snprintf(p, sizeof(p), "quarantine/Policy/%s.msg", id);
		path(&f, p, a, sizeof(a));
		snprintf(p, sizeof(p), "release/%s.msg", id);
		path(&f, p, b, sizeof(b));
		CHECK_EQ(rename(a, b), 0);
		mkid(id, 6);
		snprintf(p, sizeof(p), "quarantine/Other/%s.meta", id);
		path(&f, p, a, sizeof(a));
		snprintf(p, sizeof(p), "release/%s.meta", id);
		path(&f, p, b, sizeof(b));
		CHECK_EQ(rename(a, b), 0);
	}
	touch(&f, "quarantine/Policy/.tmp.", 1, ".msg"); /* stale put */
	touch(&f, "quarantine/Policy/.tmp.", 1, ".meta");
	touch(&f, "quarantine/Policy/", 3, ".msg");         /* put cut short */
	touch(&f, "quarantine/Other/", 4, ".meta");         /* delete cut */
	touch(&f, "release/", 7, ".msg");                   /* no partner */
	write_file(&f, "quarantine/Policy/README", "x", 1); /* not ours */
	/* a put in progress in another process: locked, kept */
	touch(&f, "quarantine/Policy/.tmp.", 2, ".msg");
	mkid(id, 2);
	snprintf(p, sizeof(p), "%s/quarantine/Policy/.tmp.%s.msg", f.spool, id);
	held = open(p, O_RDONLY);
	CHECK(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0);

	fx_reopen(&f);
	CHECK(has(&f, "quarantine/Policy/", 8, ".msg"));
	CHECK(has(&f, "quarantine/Policy/", 8, ".meta"));
	CHECK(!has(&f, "quarantine/Policy/.tmp.", 1, ".msg"));
	CHECK(!has(&f, "quarantine/Policy/.tmp.", 1, ".meta"));
	CHECK(has(&f, "quarantine/Policy/.tmp.", 2, ".msg"));
	CHECK(!has(&f, "quarantine/Policy/", 3, ".msg"));
	CHECK(!has(&f, "quarantine/Other/", 4, ".meta"));
	CHECK(!has(&f, "release/", 7, ".msg"));
	for (unsigned n = 5; n <= 6; n++) { /* the releases completed */
		CHECK(has(&f, "release/", n, ".msg"));
		CHECK(has(&f, "release/", n, ".meta"));
		CHECK(!has(&f, "quarantine/Policy/", n, ".meta"));
		CHECK(!has(&f, "quarantine/Other/", n, ".msg"));
	}
	CHECK(has(&f, "release/", 9, ".msg"));
	CHECK(has(&f, "release/", 9, ".meta"));
	CHECK(!has(&f, "quarantine/Policy/", 9, ".msg"));
	CHECK(!has(&f, "quarantine/Policy/", 9, ".meta"));
	CHECK(exists(&f, "quarantine/Policy/%s", "README"));
	CHECK_EQ(count_in(&f, "quarantine/Policy"), 4u);
	CHECK_EQ(count_in(&f, "quarantine/Other"), 0u);
	CHECK_EQ(count_in(&f, "release"), 6u);
	mkid(id, 8);
	memset(&got, 0, sizeof(got));
	CHECK_EQ(quarantine_show(f.q, id, &got), SG_OK);
	quarantine_info_clear(&got);
	/* the put holding it is refused to a second put of that ID */
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_ERR_TEMP);
	if (held >= 0)
		close(held);
	/* once the holder is gone, the next put replaces the stale file */
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_OK);
	CHECK(!has(&f, "quarantine/Policy/.tmp.", 2, ".msg"));
	fx_clear(&f);
}

static void
open_refuses_unsafe_directories(void)
{
	struct quarantine *q = NULL;
	char err[256] = "", p[512];
	struct fx f;

	fx_init(&f);
	CHECK_EQ(put_simple(&f, "Policy", 1), SG_OK);
	quarantine_close(f.q);
	f.q = NULL;
	/* a quarantine others may read */
	path(&f, "quarantine/Policy", p, sizeof(p));
	CHECK_EQ(chmod(p, 0755), 0);
	CHECK_EQ(quarantine_open(f.spool, &q, err, sizeof(err)), SG_ERR_IO);
	CHECK(q == NULL && strstr(err, "0700") != NULL);
	CHECK_EQ(chmod(p, 0700), 0);
	/* release/ that group may write */
	path(&f, "release", p, sizeof(p));
	CHECK_EQ(chmod(p, 0770), 0);
	CHECK_EQ(quarantine_open(f.spool, &q, err, sizeof(err)), SG_ERR_IO);
	CHECK(q == NULL);
	CHECK_EQ(chmod(p, 0700), 0);
	/* a spool others may write */
	CHECK_EQ(chmod(f.spool, 0777), 0);
	CHECK_EQ(quarantine_open(f.spool, &q, err, sizeof(err)), SG_ERR_IO);
	CHECK(q == NULL && strstr(err, "writable") != NULL);
	CHECK_EQ(chmod(f.spool, 0700), 0);
	/* no spool at all: not created */
	snprintf(p, sizeof(p), "%s/none", f.dir);
	CHECK_EQ(quarantine_open(p, &q, err, sizeof(err)), SG_ERR_IO);
	CHECK(q == NULL && access(p, F_OK) != 0);
	CHECK_EQ(quarantine_open(NULL, &q, err, sizeof(err)), SG_ERR_USAGE);
	/* a symbolic link instead of quarantine/ */
	{
		char a[512], b[512];
		path(&f, "quarantine", a, sizeof(a));
		path(&f, "moved", b, sizeof(b));
		CHECK_EQ(rename(a, b), 0);
		CHECK_EQ(symlink(b, a), 0);
		CHECK_EQ(quarantine_open(f.spool, &q, err, sizeof(err)),
		         SG_ERR_IO);
		CHECK(q == NULL);
		CHECK_EQ(unlink(a), 0);
		CHECK_EQ(rename(b, a), 0);
	}
	fx_open(&f);
	CHECK(f.q != NULL);
	fx_clear(&f);
}

/* ---- release, take_released, delete, expire ---- */

static void
release_then_take(void)
{
	struct taker t = {SG_ERR_TEMP, 0, {{0}}, 1, MSG, sizeof(MSG) - 1};
	char a[SPOOL_ID_LEN + 1], b[SPOOL_ID_LEN + 1], c[SPOOL_ID_LEN + 1];
	struct quarantine_info got, *v = NULL;
	size_t n = 0;
	struct fx f;

	fx_init(&f);
	mkid(a, 1);
	mkid(b, 2);
	mkid(c, 3);
	f.now = 100;
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_OK);
	f.now = 50;
	CHECK_EQ(put_simple(&f, "Other", 1), SG_OK);
	CHECK_EQ(put_simple(&f, "Policy", 3), SG_OK);
	CHECK_EQ(quarantine_release(f.q, b), SG_OK);
	CHECK_EQ(quarantine_release(f.q, a), SG_OK);
	CHECK_EQ(quarantine_release(f.q, a), SG_ERR_NOT_FOUND);
	CHECK(exists(&f, "release/%s.msg", a) &&
	      exists(&f, "release/%s.meta", a));
	CHECK(!exists(&f, "quarantine/Other/%s.msg", a));
	CHECK_EQ(mode_of(&f, "release/%s.msg", a), 0600u);
	memset(&got, 0, sizeof(got));
	CHECK_EQ(quarantine_show(f.q, a, &got), SG_ERR_NOT_FOUND);
	CHECK_EQ(quarantine_list(f.q, NULL, &v, &n), SG_OK);
	CHECK_EQ(n, 1u);
	if (n == 1)
		CHECK_STR(v[0].id, c);
	quarantine_list_free(v, n);
	/* the daemon could not commit them: they stay */
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_OK);
	CHECK_EQ(t.calls, 2);
	CHECK_EQ(count_in(&f, "release"), 4u);
	/* now it can: oldest first, then gone */
	t.answer = SG_OK;
	t.calls = 0;
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_OK);
	CHECK_EQ(t.calls, 2);
	CHECK_STR(t.ids[0], a);
	CHECK_STR(t.ids[1], b);
	CHECK(t.released_ok);
	CHECK_EQ(count_in(&f, "release"), 0u);
	t.calls = 0;
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_OK);
	CHECK_EQ(t.calls, 0);
	/* an ID already waiting in release/ is not released twice */
	touch(&f, "release/", 3, ".msg");
	CHECK_EQ(quarantine_release(f.q, c), SG_ERR_EXISTS);
	CHECK(exists(&f, "quarantine/Policy/%s.msg", c) &&
	      exists(&f, "quarantine/Policy/%s.meta", c));
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_OK);
	CHECK_EQ(t.calls, 0); /* a lone .msg is not an entry */
	fx_clear(&f);
}

static void
take_skips_damaged_entries(void)
{
	struct taker t = {SG_OK, 0, {{0}}, 1, MSG, sizeof(MSG) - 1};
	char a[SPOOL_ID_LEN + 1], b[SPOOL_ID_LEN + 1];
	struct fx f;

	fx_init(&f);
	mkid(a, 1);
	mkid(b, 2);
	CHECK_EQ(put_simple(&f, "Policy", 1), SG_OK);
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_OK);
	CHECK_EQ(quarantine_release(f.q, a), SG_OK);
	CHECK_EQ(quarantine_release(f.q, b), SG_OK);
	write_file(&f, "release/000000000000000000000001.meta", "version 1\n",
	           10);
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_ERR_IO);
	CHECK_EQ(t.calls, 1);
	CHECK_STR(t.ids[0], b);
	CHECK(exists(&f, "release/%s.meta", a)); /* left for the admin */
	CHECK(!exists(&f, "release/%s.meta", b));
	/* a message cut short is not handed over either */
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_OK);
	CHECK_EQ(quarantine_release(f.q, b), SG_OK);
	write_file(&f, "release/000000000000000000000002.msg", "Sub", 3);
	t.calls = 0;
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_ERR_IO);
	CHECK_EQ(t.calls, 0);
	CHECK(exists(&f, "release/%s.meta", b));
	fx_clear(&f);
}

static void
delete_removes_the_entry(void)
{
	char a[SPOOL_ID_LEN + 1];
	struct quarantine_info got;
	struct fx f;

	fx_init(&f);
	mkid(a, 1);
	CHECK_EQ(put_simple(&f, "Policy", 1), SG_OK);
	CHECK_EQ(quarantine_delete(f.q, a), SG_OK);
	CHECK_EQ(count_in(&f, "quarantine/Policy"), 0u);
	CHECK_EQ(quarantine_delete(f.q, a), SG_ERR_NOT_FOUND);
	CHECK_EQ(quarantine_release(f.q, a), SG_ERR_NOT_FOUND);
	memset(&got, 0, sizeof(got));
	CHECK_EQ(quarantine_show(f.q, a, &got), SG_ERR_NOT_FOUND);
	errno = 0;
	CHECK(quarantine_data_fd(f.q, a) < 0 && errno == ENOENT);
	fx_clear(&f);
}

struct expirer {
	struct quarantine *q;
	enum sg_status answer;
	int calls, release; /* release: as "at_expiry = release" */
};

static enum sg_status
expire_fn(void *arg, const struct spool_env *env,
          const struct quarantine_info *info, int fd)
{
	struct expirer *e = arg;

	e->calls++;
	if (fd < 0 || env->released != 0)
		return SG_ERR_INTERNAL;
	if (e->release)
		return quarantine_release(e->q, info->id);
	return e->answer;
}

static void
expire_with_a_fake_clock(void)
{
	struct taker t = {SG_OK, 0, {{0}}, 1, MSG, sizeof(MSG) - 1};
	struct expirer e = {NULL, SG_OK, 0, 0};
	struct fx f;

	fx_init(&f);
	e.q = f.q;
	f.now = 1000;
	CHECK_EQ(put_simple(&f, "Policy", 1), SG_OK);
	CHECK_EQ(put_simple(&f, "Other", 3), SG_OK);
	f.now = 2000;
	CHECK_EQ(put_simple(&f, "Policy", 2), SG_OK);
	CHECK_EQ(put_simple(&f, "Other", 4), SG_OK);
	/* nothing is older than 1000 */
	CHECK_EQ(quarantine_expire(f.q, "Policy", 1000, expire_fn, &e), SG_OK);
	CHECK_EQ(e.calls, 0);
	/* the function keeps them */
	e.answer = SG_ERR_TEMP;
	CHECK_EQ(quarantine_expire(f.q, "Policy", 1500, expire_fn, &e), SG_OK);
	CHECK_EQ(e.calls, 1);
	CHECK(has(&f, "quarantine/Policy/", 1, ".meta"));
	/* now it lets go: only the old one of that quarantine */
	e.answer = SG_OK;
	CHECK_EQ(quarantine_expire(f.q, "Policy", 1500, expire_fn, &e), SG_OK);
	CHECK_EQ(e.calls, 2);
	CHECK(!has(&f, "quarantine/Policy/", 1, ".meta"));
	CHECK(!has(&f, "quarantine/Policy/", 1, ".msg"));
	CHECK(has(&f, "quarantine/Policy/", 2, ".meta"));
	CHECK(has(&f, "quarantine/Other/", 3, ".meta"));
	/* "at_expiry = release": every quarantine, no function left out */
	e.release = 1;
	CHECK_EQ(quarantine_expire(f.q, NULL, 1500, expire_fn, &e), SG_OK);
	CHECK_EQ(e.calls, 3);
	CHECK(!has(&f, "quarantine/Other/", 3, ".meta"));
	CHECK_EQ(quarantine_take_released(f.q, take_fn, &t), SG_OK);
	CHECK_EQ(t.calls, 1);
	CHECK(t.released_ok);
	/* without a function, and for names with nothing */
	CHECK_EQ(quarantine_expire(f.q, NULL, 3000, NULL, NULL), SG_OK);
	CHECK_EQ(count_in(&f, "quarantine/Policy"), 0u);
	CHECK_EQ(count_in(&f, "quarantine/Other"), 0u);
	CHECK_EQ(quarantine_expire(f.q, "Nothing", 3000, NULL, NULL), SG_OK);
	CHECK_EQ(quarantine_expire(f.q, NULL, 0, NULL, NULL), SG_OK);
	fx_clear(&f);
}

/* ---- names and IDs that try to leave the directory ---- */

static void
bad_names_and_ids_are_refused(void)
{
	char long_name[QUARANTINE_NAME_MAX + 2],
	    max_name[QUARANTINE_NAME_MAX + 1];
	static const char *bad_names[] = {
	    "../x",
	    "a/b",
	    "",
	    ".",
	    "..",
	    ".tmp",
	    "a b",
	    "a\n",
	    "x.y",
	    "/",
	    "Policy/../../etc",
	    NULL /* long_name */,
	};
	static const char *bad_ids[] = {
	    "../../../../etc/passwd",    "",
	    "00000000000000000000000",   /* 23 */
	    "0000000000000000000000000", /* 25 */
	    "00000000000000000000000a",  /* lower case */
	    "00000000000000000000000I",  /* not in the alphabet */
	    "00000000000000000000000/",  "0000000000000000000000/.",
	    "../000000000000000000000",  NULL,
	};
	struct spool_env env = simple_env(1);
	struct quarantine_info info, *v = NULL;
	size_t n = 0;
	struct fx f;

	fx_init(&f);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(max_name, 'b', sizeof(max_name) - 1);
	max_name[sizeof(max_name) - 1] = '\0';
	CHECK(quarantine_name_valid("Policy"));
	CHECK(quarantine_name_valid("a_B-9"));
	CHECK(quarantine_name_valid(max_name));
	CHECK(!quarantine_name_valid(NULL));
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
		const char *name = bad_names[i] ? bad_names[i] : long_name;
		CHECK(!quarantine_name_valid(name));
		CHECK_EQ(put(&f, name, &env, "x", 1, "r", "r"), SG_ERR_USAGE);
		CHECK_EQ(quarantine_list(f.q, name, &v, &n), SG_ERR_USAGE);
		CHECK_EQ(quarantine_expire(f.q, name, 10, NULL, NULL),
		         SG_ERR_USAGE);
	}
	CHECK_EQ(put(&f, NULL, &env, "x", 1, "r", "r"), SG_ERR_USAGE);
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(*bad_ids); i++) {
		const char *id = bad_ids[i];
		CHECK(!quarantine_id_valid(id));
		memset(&info, 0, sizeof(info));
		CHECK_EQ(quarantine_show(f.q, id, &info), SG_ERR_USAGE);
		CHECK_EQ(quarantine_release(f.q, id), SG_ERR_USAGE);
		CHECK_EQ(quarantine_delete(f.q, id), SG_ERR_USAGE);
		errno = 0;
		CHECK(quarantine_data_fd(f.q, id) < 0 && errno == EINVAL);
		if (id != NULL && strlen(id) < sizeof(env.id)) {
			memset(env.id, 0, sizeof(env.id));
			memcpy(env.id, id, strlen(id));
			CHECK_EQ(put(&f, "Policy", &env, "x", 1, "r", "r"),
			         SG_ERR_USAGE);
		}
	}
	/* nothing was created anywhere */
	CHECK_EQ(count_in(&f, "quarantine"), 0u);
	CHECK_EQ(count_in(&f, "release"), 0u);
	CHECK_EQ(count_in(&f, ""), 2u);
	/* the longest name works */
	CHECK_EQ(put_simple(&f, max_name, 1), SG_OK);
	fx_clear(&f);
}

/* ---- threads and handles at once ---- */

enum { PUTTERS = 4, EACH = 25, ADMINS = 2 };

struct worker {
	struct fx *f;
	struct quarantine *q; /* a handle of its own, as another process */
	int t, ok, failed;
	volatile int *done; /* putters finished */
};

static void *
putter_run(void *p)
{
	struct worker *w = p;

	for (int i = 0; i < EACH; i++) {
		struct spool_env env = simple_env((unsigned)(w->t * 10000 + i));
		char data[64];
		int fd;

		snprintf(data, sizeof(data), "Subject: %d/%d\r\n\r\nx\r\n",
		         w->t, i);
		fd = data_fd_in(w->f->dir, w->t, (unsigned)i, data,
		                strlen(data));
		if (quarantine_put(w->f->q, i % 2 ? "Policy" : "Other", &env,
		                   fd, "r", "threads") == SG_OK)
			w->ok++;
		else
			w->failed++;
		close(fd);
	}
	return NULL;
}

/* Releases the entries with an even ID, deletes the odd ones, until the
 * putters are done and nothing is left. */
static void *
admin_run(void *p)
{
	struct worker *w = p;

	for (int idle = 0; idle < 3;) {
		struct quarantine_info *v = NULL;
		size_t n = 0;
		int done = *w->done;

		if (quarantine_list(w->q, NULL, &v, &n) != SG_OK) {
			w->failed++;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned num = (unsigned)strtoul(v[i].id, NULL, 10);
			enum sg_status st =
			    num % 2 ? quarantine_delete(w->q, v[i].id)
			            : quarantine_release(w->q, v[i].id);
			if (st == SG_OK)
				w->ok++;
			else if (st != SG_ERR_NOT_FOUND || v[i].damaged)
				w->failed++;
		}
		quarantine_list_free(v, n);
		idle = done && n == 0 ? idle + 1 : 0;
		usleep(1000);
	}
	return NULL;
}

/* Opens and closes handles (each repairs under the lock) meanwhile. */
static void *
opener_run(void *p)
{
	struct worker *w = p;

	while (!*w->done) {
		struct quarantine *q = NULL;
		char err[256];
		if (quarantine_open(w->f->spool, &q, err, sizeof(err)) != SG_OK)
			w->failed++;
		quarantine_close(q);
		w->ok++;
	}
	return NULL;
}

static enum sg_status
count_fn(void *arg, const struct spool_env *env,
         const struct quarantine_info *info, int fd)
{
	(*(int *)arg)++;
	return strtoul(info->id, NULL, 10) % 2 == 0 && env->released
	           ? SG_OK
	           : SG_ERR_INTERNAL;
}

static void
threads_and_handles_at_once(void)
{
	struct worker put_w[PUTTERS], adm_w[ADMINS], open_w;
	pthread_t put_t[PUTTERS], adm_t[ADMINS], open_t;
	const int nrel = PUTTERS * ((EACH + 1) / 2); /* the even IDs */
	volatile int done = 0;
	int taken = 0, admin_ok = 0;
	char err[256];
	struct fx f;

	fx_init(&f);
	memset(&open_w, 0, sizeof(open_w));
	open_w.f = &f;
	open_w.done = &done;
	for (int i = 0; i < ADMINS; i++) {
		memset(&adm_w[i], 0, sizeof(adm_w[i]));
		adm_w[i].f = &f;
		adm_w[i].done = &done;
		CHECK_EQ(
		    quarantine_open(f.spool, &adm_w[i].q, err, sizeof(err)),
		    SG_OK);
		CHECK_EQ(pthread_create(&adm_t[i], NULL, admin_run, &adm_w[i]),
		         0);
	}
	CHECK_EQ(pthread_create(&open_t, NULL, opener_run, &open_w), 0);
	for (int i = 0; i < PUTTERS; i++) {
		memset(&put_w[i], 0, sizeof(put_w[i]));
		put_w[i].f = &f;
		put_w[i].t = i + 1;
		CHECK_EQ(pthread_create(&put_t[i], NULL, putter_run, &put_w[i]),
		         0);
	}
	for (int i = 0; i < PUTTERS; i++) {
		pthread_join(put_t[i], NULL);
		CHECK_EQ(put_w[i].ok, EACH);
		CHECK_EQ(put_w[i].failed, 0);
	}
	done = 1;
	pthread_join(open_t, NULL);
	CHECK_EQ(open_w.failed, 0);
	for (int i = 0; i < ADMINS; i++) {
		pthread_join(adm_t[i], NULL);
		CHECK_EQ(adm_w[i].failed, 0);
		admin_ok += adm_w[i].ok;
		quarantine_close(adm_w[i].q);
	}
	/* each entry released or deleted exactly once */
	CHECK_EQ(admin_ok, PUTTERS * EACH);
	CHECK_EQ(count_in(&f, "quarantine/Policy"), 0u);
	CHECK_EQ(count_in(&f, "quarantine/Other"), 0u);
	/* the even IDs (Other's) wait in release/, complete */
	CHECK_EQ(count_in(&f, "release"), (size_t)(2 * nrel));
	CHECK_EQ(quarantine_take_released(f.q, count_fn, &taken), SG_OK);
	CHECK_EQ(taken, nrel);
	CHECK_EQ(count_in(&f, "release"), 0u);
	fx_clear(&f);
}

static const struct unit_case cases[] = {
    {"put_show_round_trip", put_show_round_trip},
    {"meta_file_is_as_documented", meta_file_is_as_documented},
    {"put_refuses_what_does_not_fit", put_refuses_what_does_not_fit},
    {"put_replaces_the_same_id", put_replaces_the_same_id},
    {"list_is_oldest_first_and_by_name", list_is_oldest_first_and_by_name},
    {"damaged_meta_is_refused", damaged_meta_is_refused},
    {"oversized_or_odd_meta_is_refused", oversized_or_odd_meta_is_refused},
    {"open_repairs_leftovers", open_repairs_leftovers},
    {"open_refuses_unsafe_directories", open_refuses_unsafe_directories},
    {"release_then_take", release_then_take},
    {"take_skips_damaged_entries", take_skips_damaged_entries},
    {"delete_removes_the_entry", delete_removes_the_entry},
    {"expire_with_a_fake_clock", expire_with_a_fake_clock},
    {"bad_names_and_ids_are_refused", bad_names_and_ids_are_refused},
    {"threads_and_handles_at_once", threads_and_handles_at_once},
    {NULL, NULL},
};
const struct unit_suite suite_quarantine = {"quarantine", cases};
