/*
 * t_store.c - the key store: file modes, rows of each role, wrapped keys,
 * the lookup rules (each with cases that must match next to ones that
 * must not), temporary failures that never become "not found", and
 * corrupt rows that never crash.  Certificates are made in memory; time is
 * injected with sg_ctx_set_time.
 */
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>
#include "store/sqlite_dl.h"

#include "lib/sg_int.h" /* a renewed certificate for an existing key */
#include "smimegate.h"
#include "store/store.h"

#define DAY 86400

/* A store in a fresh temporary directory. */
struct fx {
	char dir[64];
	char db[96];
	char key[96];
	struct sg_ctx *ctx;
	struct store *st;
};

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/t_store_XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->db, sizeof(f->db), "%s/s.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/s.db.key", f->dir);
	CHECK_EQ(sg_ctx_new(&f->ctx), SG_OK);
}

static void
fx_open(struct fx *f)
{
	fx_init(f);
	CHECK_EQ(store_init(f->ctx, f->db, NULL), SG_OK);
	CHECK_EQ(store_open(f->ctx, f->db, NULL, &f->st), SG_OK);
}

static void
fx_clear(struct fx *f)
{
	store_close(f->st);
	unit_rm_tree(f->dir);
	sg_ctx_free(f->ctx);
	memset(f, 0, sizeof(*f));
}

/* A certificate and key made at CTX's time for DAYS days. */
static struct sg_key *
mk(struct sg_ctx *ctx, const char *cn, const char *const *emails,
   const char *const *domains, unsigned days, int ca,
   const struct sg_key *issuer)
{
	struct sg_cert_req req = {.cn = cn,
	                          .days = days,
	                          .key = SG_KEY_EC_P256,
	                          .ca = ca,
	                          .san_emails = emails,
	                          .san_domains = domains};
	struct sg_key *k = NULL;

	CHECK_EQ(sg_cert_create(ctx, &req, issuer, &k), SG_OK);
	return k;
}

static struct sg_certs *
certs_of(const struct sg_key *k)
{
	struct sg_certs *c = NULL;

	CHECK_EQ(sg_key_get_certs(k, &c), SG_OK);
	return c;
}

/* The fingerprint of certificate 0 of C (malloc'd), or NULL. */
static char *
fp_of(const struct sg_certs *c)
{
	struct sg_cert_info in;
	char *fp;

	if (c == NULL || sg_certs_info(c, 0, &in) != SG_OK)
		return NULL;
	fp = strdup(in.fingerprint);
	sg_cert_info_clear(&in);
	return fp;
}

static char *
fp_of_key(const struct sg_key *k)
{
	struct sg_certs *c = certs_of(k);
	char *fp = fp_of(c);

	sg_certs_free(c);
	return fp;
}

static int
same_fp(const struct sg_certs *c, const char *fp)
{
	char *got = fp_of(c);
	int same = got != NULL && fp != NULL && strcmp(got, fp) == 0;

	free(got);
	return same;
}

static int
key_is(const struct sg_key *k, const char *fp)
{
	char *got = fp_of_key(k);
	int same = got != NULL && fp != NULL && strcmp(got, fp) == 0;

	free(got);
	return same;
}

static enum sg_status
put_public(struct store *st, enum store_role role, const char *name,
           const struct sg_key *k)
{
	struct sg_certs *c = certs_of(k);
	enum sg_status rc = store_put_cert(st, role, name, c, 0, "added");

	sg_certs_free(c);
	return rc;
}

/* Runs SQL on the store's database through a connection of our own. */
static int
raw_sql(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open(db, &h);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

static long long
raw_int(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (sqlite3_open(db, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static unsigned
mode_of(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return 0xffff;
	return (unsigned)(sb.st_mode & 07777);
}

/* ---- files ---- */

static void
init_creates_private_files(void)
{
	struct fx f;
	struct stat sb;
	char other[128], wal[128];

	fx_init(&f);
	CHECK_EQ(store_init(f.ctx, f.db, f.key), SG_OK);
	CHECK_EQ(mode_of(f.db), 0600);
	CHECK_EQ(mode_of(f.key), 0400);
	CHECK(stat(f.key, &sb) == 0 && sb.st_size == 32);
	CHECK_EQ(raw_int(f.db, "PRAGMA user_version"),
	         (long long)store_schema_version());
	CHECK(store_schema_version() >= 1);
	/* Neither may exist yet. */
	CHECK_EQ(store_init(f.ctx, f.db, f.key), SG_ERR_EXISTS);
	snprintf(other, sizeof(other), "%s/other.db", f.dir);
	CHECK_EQ(store_init(f.ctx, other, f.key), SG_ERR_EXISTS);
	CHECK(access(other, F_OK) != 0); /* nothing left behind */
	snprintf(other, sizeof(other), "%s/other.key", f.dir);
	CHECK_EQ(store_init(f.ctx, f.db, other), SG_ERR_EXISTS);
	CHECK(access(other, F_OK) != 0);
	/* The WAL beside the database is as private as the database. */
	CHECK_EQ(store_open(f.ctx, f.db, f.key, &f.st), SG_OK);
	CHECK_EQ(store_set_setting(f.st, "x", "1"), SG_OK);
	snprintf(wal, sizeof(wal), "%s-wal", f.db);
	CHECK_EQ(mode_of(wal), 0600);
	fx_clear(&f);
}

static void
open_refuses_loose_modes(void)
{
	static const struct {
		const char *name;
		int keyfile; /* chmod the key file, else the database */
		unsigned mode;
		enum sg_status want;
	} cases[] = {
	    {"db 0600", 0, 0600, SG_OK},      {"db 0644", 0, 0644, SG_ERR_IO},
	    {"db 0640", 0, 0640, SG_ERR_IO},  {"db 0602", 0, 0602, SG_ERR_IO},
	    {"key 0400", 1, 0400, SG_OK},     {"key 0600", 1, 0600, SG_OK},
	    {"key 0440", 1, 0440, SG_ERR_IO}, {"key 0404", 1, 0404, SG_ERR_IO},
	    {"key 0644", 1, 0644, SG_ERR_IO},
	};
	struct fx f;

	fx_init(&f);
	CHECK_EQ(store_init(f.ctx, f.db, NULL), SG_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct store *st = NULL;
		const char *p = cases[i].keyfile ? f.key : f.db;
		CHECK(chmod(p, cases[i].mode) == 0);
		enum sg_status rc = store_open(f.ctx, f.db, NULL, &st);
		if (rc != cases[i].want)
			fprintf(stderr, "  case %s: %s\n", cases[i].name,
			        sg_status_name(rc));
		CHECK_EQ(rc, cases[i].want);
		CHECK((st != NULL) == (cases[i].want == SG_OK));
		store_close(st);
		CHECK(chmod(p, cases[i].keyfile ? 0400 : 0600) == 0);
	}
	fx_clear(&f);
}

static void
open_refuses_what_is_not_a_store(void)
{
	struct fx f;
	struct store *st = NULL;
	char p[128];
	int fd;

	fx_init(&f);
	/* Nothing there: run init. */
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &st), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_init(f.ctx, f.db, NULL), SG_OK);
	/* The key file is missing. */
	snprintf(p, sizeof(p), "%s/none.key", f.dir);
	CHECK_EQ(store_open(f.ctx, f.db, p, &st), SG_ERR_IO);
	/* A key file of the wrong size. */
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && write(fd, "short", 5) == 5);
	close(fd);
	CHECK_EQ(store_open(f.ctx, f.db, p, &st), SG_ERR_IO);
	unlink(p);
	/* A schema newer than this build. */
	CHECK_EQ(raw_sql(f.db, "PRAGMA user_version = 99"), SQLITE_OK);
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &st), SG_ERR_IO);
	/* Not a database at all. */
	snprintf(p, sizeof(p), "%s/junk.db", f.dir);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 &&
	      write(fd, "this is not sqlite, not at all, no.\n", 36) == 36);
	close(fd);
	CHECK_EQ(store_open(f.ctx, p, f.key, &st), SG_ERR_IO);
	CHECK(st == NULL);
	fx_clear(&f);
}

/* ---- rows ---- */

static void
rows_of_each_role(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const b[] = {"bob@example.org", NULL};
	struct fx f;
	struct sg_key *ca, *alice, *bob;

	fx_open(&f);
	ca = mk(f.ctx, "Test CA", NULL, NULL, 30, 1, NULL);
	alice = mk(f.ctx, "Alice", a, NULL, 30, 0, ca);
	bob = mk(f.ctx, "Bob", b, NULL, 30, 0, ca);
	CHECK_EQ(store_put_key(f.st, "alice", alice, "created"), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_CA, "ca", ca), SG_OK);

	static const struct {
		enum store_role role;
		const char *name;
		size_t ncerts; /* the certificate and its chain */
	} rows[] = {
	    {STORE_ORG, "alice", 2},
	    {STORE_PUBLIC, "bob", 1},
	    {STORE_CA, "ca", 1},
	};
	const struct sg_key *keys[] = {alice, bob, ca};
	for (size_t i = 0; i < 3; i++) {
		struct store_entry e = {0}, *v = NULL;
		struct sg_certs *c = NULL;
		size_t n = 0;
		char *fp = fp_of_key(keys[i]);

		CHECK_EQ(store_get(f.st, rows[i].role, rows[i].name, &e),
		         SG_OK);
		CHECK_STR(e.name, rows[i].name);
		CHECK_EQ(e.role, rows[i].role);
		CHECK(e.has_cert && e.info.fingerprint != NULL &&
		      strcmp(e.info.fingerprint, fp) == 0);
		CHECK(e.source != NULL);
		CHECK(e.created > 0);
		store_entry_clear(&e);
		CHECK_EQ(store_list(f.st, rows[i].role, &v, &n), SG_OK);
		CHECK_EQ(n, 1);
		CHECK(n == 1 && strcmp(v[0].name, rows[i].name) == 0);
		store_entries_free(v, n);
		CHECK_EQ(store_get_certs(f.st, rows[i].role, rows[i].name, &c),
		         SG_OK);
		CHECK_EQ(sg_certs_count(c), rows[i].ncerts);
		CHECK(same_fp(c, fp));
		sg_certs_free(c);
		/* Not in another role. */
		enum store_role other = rows[(i + 1) % 3].role;
		CHECK_EQ(store_get(f.st, other, rows[i].name, &e),
		         SG_ERR_NOT_FOUND);
		CHECK_EQ(store_delete(f.st, other, rows[i].name),
		         SG_ERR_NOT_FOUND);
		/* Delete, then gone. */
		CHECK_EQ(store_delete(f.st, rows[i].role, rows[i].name), SG_OK);
		CHECK_EQ(store_get(f.st, rows[i].role, rows[i].name, &e),
		         SG_ERR_NOT_FOUND);
		CHECK_EQ(store_delete(f.st, rows[i].role, rows[i].name),
		         SG_ERR_NOT_FOUND);
		CHECK_EQ(store_list(f.st, rows[i].role, &v, &n), SG_OK);
		CHECK_EQ(n, 0);
		store_entries_free(v, n);
		free(fp);
	}
	/* The names of deleted rows went with them. */
	CHECK_EQ(raw_int(f.db, "SELECT count(*) FROM cert_names"), 0);
	sg_key_free(ca);
	sg_key_free(alice);
	sg_key_free(bob);
	fx_clear(&f);
}

static void
names_and_duplicates(void)
{
	static const char *const b[] = {"bob@example.org", NULL};
	static const char *const d[] = {"mail.example.net", NULL};
	struct fx f;
	struct sg_key *ca, *bob, *bob2, *gw;
	struct store_entry *v = NULL;
	size_t n = 0;

	fx_open(&f);
	ca = mk(f.ctx, "Test CA", NULL, NULL, 30, 1, NULL);
	bob = mk(f.ctx, "Bob", b, NULL, 30, 0, ca);
	bob2 = mk(f.ctx, "Bob", b, NULL, 60, 0, ca);
	gw = mk(f.ctx, "Gateway", NULL, d, 30, 0, ca);

	static const struct {
		const char *name;
		enum sg_status want;
	} bad[] = {
	    {"", SG_ERR_USAGE},          {" lead", SG_ERR_USAGE},
	    {"trail ", SG_ERR_USAGE},    {"new\nline", SG_ERR_USAGE},
	    {"tab\there", SG_ERR_USAGE},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_EQ(put_public(f.st, STORE_PUBLIC, bad[i].name, bob),
		         bad[i].want);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob), SG_OK);
	/* The name is taken; the same certificate is already there. */
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob2), SG_ERR_EXISTS);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob-again", bob),
	         SG_ERR_EXISTS);
	CHECK(strstr(store_errmsg(f.st), "bob") != NULL);
	/* ... but it may be a trust anchor too, and a key is another role. */
	CHECK_EQ(put_public(f.st, STORE_CA, "bob", bob), SG_OK);
	CHECK_EQ(store_put_key(f.st, "bob", bob, "imported"), SG_OK);
	CHECK_EQ(store_put_key(f.st, "bob", bob2, "imported"), SG_ERR_EXISTS);
	CHECK_EQ(store_put_key(f.st, "bob2", bob, "imported"), SG_ERR_EXISTS);
	/* A key is not added as a certificate. */
	CHECK_EQ(put_public(f.st, STORE_ORG, "x", bob2), SG_ERR_USAGE);
	/* Derived names: first email, domain, subject CN; made unique. */
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, NULL, bob2), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, NULL, gw), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_CA, NULL, ca), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, NULL, ca), SG_OK);
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "bob"), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, NULL, bob), SG_OK);
	CHECK_EQ(store_list(f.st, STORE_PUBLIC, &v, &n), SG_OK);
	static const char *const want[] = {"Test CA", "bob@example.org",
	                                   "bob@example.org-2",
	                                   "mail.example.net"};
	CHECK_EQ(n, 4);
	for (size_t i = 0; i < n && i < 4; i++)
		CHECK_STR(v[i].name, want[i]);
	store_entries_free(v, n);
	CHECK_EQ(store_list(f.st, STORE_CA, &v, &n), SG_OK);
	CHECK(n == 2 && strcmp(v[0].name, "Test CA") == 0 &&
	      strcmp(v[1].name, "bob") == 0);
	store_entries_free(v, n);
	sg_key_free(ca);
	sg_key_free(bob);
	sg_key_free(bob2);
	sg_key_free(gw);
	fx_clear(&f);
}

/* ---- keys ---- */

/* Rewrites the master key file with 32 other bytes. */
static void
replace_master(const char *path)
{
	unsigned char m[32];
	int fd;

	CHECK_EQ(sg_random_bytes(m, sizeof(m)), SG_OK);
	CHECK(chmod(path, 0600) == 0);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, m, sizeof(m)) == (ssize_t)sizeof(m));
	close(fd);
	CHECK(chmod(path, 0400) == 0);
}

static void
wrapped_key_round_trip(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	struct fx f;
	struct sg_key *alice, *back = NULL;
	struct sg_certs *c;
	char *fp;

	fx_open(&f);
	alice = mk(f.ctx, "Alice", a, NULL, 30, 0, NULL);
	c = certs_of(alice);
	fp = fp_of(c);
	CHECK_EQ(store_put_key(f.st, "alice", alice, "created"), SG_OK);
	CHECK_EQ(store_get_key(f.st, "alice", &back), SG_OK);
	CHECK(back != NULL && sg_key_has_cert(back) &&
	      sg_key_matches(back, c, 0) && key_is(back, fp));
	sg_key_free(back);
	back = NULL;
	CHECK_EQ(store_get_key(f.st, "nobody", &back), SG_ERR_NOT_FOUND);
	/* A blob moved to another row does not open there. */
	struct sg_key *a2 = mk(f.ctx, "A2", NULL, NULL, 30, 0, NULL);
	CHECK_EQ(store_put_key(f.st, "alice2", a2, "created"), SG_OK);
	sg_key_free(a2);
	store_close(f.st);
	f.st = NULL;
	CHECK_EQ(raw_sql(f.db, "UPDATE certs SET key_blob = (SELECT key_blob "
	                       "FROM certs WHERE name = 'alice') WHERE "
	                       "name = 'alice2'"),
	         SQLITE_OK);
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &f.st), SG_OK);
	CHECK_EQ(store_get_key(f.st, "alice", &back), SG_OK);
	sg_key_free(back);
	back = NULL;
	CHECK_EQ(store_get_key(f.st, "alice2", &back), SG_ERR_DECRYPT);
	CHECK(back == NULL);
	/* Another master key opens the store but not the keys. */
	store_close(f.st);
	f.st = NULL;
	replace_master(f.key);
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &f.st), SG_OK);
	CHECK_EQ(store_get_key(f.st, "alice", &back), SG_ERR_DECRYPT);
	CHECK(back == NULL);
	CHECK(strstr(store_errmsg(f.st), "alice") != NULL);
	CHECK_EQ(store_find_sign_key(f.st, "alice@example.com", NULL, &back),
	         SG_ERR_DECRYPT);
	CHECK(back == NULL);
	free(fp);
	sg_certs_free(c);
	sg_key_free(alice);
	fx_clear(&f);
}

/* A handle keeps the keys it opened (store_row_key's cache), and still
 * follows the database: a key replaced or a blob changed by another
 * connection is what the next lookup sees. */
static void
open_keys_follow_the_row(void)
{
	struct fx f;
	struct store *other = NULL;
	struct sg_key *k1, *k2, *k3, *got = NULL, *again = NULL;
	char *fp1, *fp3;

	fx_open(&f);
	k1 = mk(f.ctx, "One", NULL, NULL, 30, 0, NULL);
	k2 = mk(f.ctx, "Two", NULL, NULL, 30, 0, NULL);
	k3 = mk(f.ctx, "Three", NULL, NULL, 30, 0, NULL);
	fp1 = fp_of_key(k1);
	fp3 = fp_of_key(k3);
	CHECK_EQ(store_put_key(f.st, "org", k1, "created"), SG_OK);
	CHECK_EQ(store_put_key(f.st, "spare", k2, "created"), SG_OK);
	CHECK_EQ(store_get_key(f.st, "org", &got), SG_OK);
	CHECK_EQ(store_get_key(f.st, "org", &again), SG_OK); /* cached */
	CHECK(got != NULL && again != NULL && key_is(got, fp1) &&
	      key_is(again, fp1));
	sg_key_free(got); /* the other handle still works alone */
	got = NULL;
	{
		struct sg_certs *c = certs_of(k1);
		CHECK(sg_key_matches(again, c, 0));
		sg_certs_free(c);
	}
	sg_key_free(again);
	again = NULL;

	/* Replaced through another connection, same name. */
	CHECK_EQ(store_open(f.ctx, f.db, NULL, &other), SG_OK);
	CHECK_EQ(store_delete(other, STORE_ORG, "org"), SG_OK);
	CHECK_EQ(store_put_key(other, "org", k3, "created"), SG_OK);
	store_close(other);
	CHECK_EQ(store_get_key(f.st, "org", &got), SG_OK);
	CHECK(got != NULL && key_is(got, fp3));
	sg_key_free(got);
	got = NULL;

	/* A blob changed in place: it no longer opens under this name. */
	CHECK_EQ(store_get_key(f.st, "spare", &got), SG_OK);
	sg_key_free(got);
	got = NULL;
	CHECK_EQ(raw_sql(f.db, "UPDATE certs SET key_blob = (SELECT key_blob "
	                       "FROM certs WHERE name = 'org') WHERE "
	                       "name = 'spare'"),
	         SQLITE_OK);
	CHECK_EQ(store_get_key(f.st, "spare", &got), SG_ERR_DECRYPT);
	CHECK(got == NULL);
	free(fp1);
	free(fp3);
	sg_key_free(k1);
	sg_key_free(k2);
	sg_key_free(k3);
	fx_clear(&f);
}

static int
b64val(char ch)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
	                          "rstuvwxyz0123456789+/";
	const char *p = ch ? strchr(set, ch) : NULL;

	return p ? (int)(p - set) : -1;
}

/* Decodes the base64 body of the PEM in TEXT into OUT (*LEN bytes). */
static void
pem_body(const char *text, unsigned char *out, size_t cap, size_t *len)
{
	const char *p = strstr(text, "-----\n");
	unsigned acc = 0;
	int bits = 0, v;

	*len = 0;
	if (p == NULL)
		return;
	for (p += 6; *p != '\0' && *p != '-'; p++) {
		if ((v = b64val(*p)) < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8 && *len < cap) {
			bits -= 8;
			out[(*len)++] = (unsigned char)(acc >> bits);
		}
	}
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	*len = 0;
	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, fp) == (size_t)n) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	fclose(fp);
	return buf;
}

/* Whether PATH (if it exists) holds NEEDLE. */
static int
file_has(const char *path, const void *needle, size_t n)
{
	size_t len = 0;
	char *buf = slurp(path, &len);
	int hit = buf != NULL && memmem(buf, len, needle, n) != NULL;

	free(buf);
	return hit;
}

static void
no_private_key_in_clear(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	struct sg_cert_req req = {
	    .cn = "Alice", .days = 30, .key = SG_KEY_RSA2048, .san_emails = a};
	struct fx f;
	struct sg_key *alice = NULL;
	char cpath[128], kpath[128], wal[128];
	unsigned char der[4096];
	size_t dlen = 0, plen = 0;
	char *pem, *line;

	fx_open(&f);
	CHECK_EQ(sg_cert_create(f.ctx, &req, NULL, &alice), SG_OK);
	snprintf(cpath, sizeof(cpath), "%s/a.crt", f.dir);
	snprintf(kpath, sizeof(kpath), "%s/a.pem", f.dir);
	snprintf(wal, sizeof(wal), "%s-wal", f.db);
	CHECK_EQ(sg_key_save_pem(f.ctx, alice, cpath, kpath, NULL), SG_OK);
	pem = slurp(kpath, &plen);
	CHECK(pem != NULL && strstr(pem, "PRIVATE KEY") != NULL);
	pem_body(pem ? pem : "", der, sizeof(der), &dlen);
	CHECK(dlen > 1000); /* PKCS#8 of RSA-2048 */
	/* A distinctive run of the PEM text: its fifth line. */
	line = pem;
	for (int i = 0; i < 5 && line != NULL; i++)
		if ((line = strchr(line, '\n')) != NULL)
			line++;
	CHECK(line != NULL && strlen(line) > 64);

	CHECK_EQ(store_put_key(f.st, "alice", alice, "created"), SG_OK);
	const char *files[] = {f.db, wal};
	for (int closed = 0; closed <= 1; closed++) {
		for (size_t i = 0; i < 2; i++) {
			if (line != NULL)
				CHECK(!file_has(files[i], line, 64));
			/* Private material: the middle and the last quarter
			 * of the DER (private exponent, primes). */
			CHECK(!file_has(files[i], der + dlen / 2, 24));
			CHECK(!file_has(files[i], der + dlen * 3 / 4, 24));
			CHECK(!file_has(files[i], der, dlen));
		}
		store_close(f.st);
		f.st = NULL;
	}
	/* The check itself finds what is there: the key file has it. */
	CHECK(file_has(kpath, line ? line : "", 64));
	free(pem);
	sg_key_free(alice);
	fx_clear(&f);
}

/* ---- lookups ---- */

static void
encrypt_lookup_rules(void)
{
	static const char *const bob[] = {"bob@example.org", NULL};
	static const char *const carol[] = {"carol@example.com", NULL};
	static const char *const old[] = {"old@example.org", NULL};
	static const char *const fut[] = {"future@example.org", NULL};
	static const char *const cam[] = {"ca@example.org", NULL};
	static const char *const multi[] = {"multi@example.org", NULL};
	static const char *const dave[] = {"dave@a.example.net", NULL};
	static const char *const exact[] = {"exact.test", NULL};
	static const char *const wild[] = {"*.example.net", NULL};
	static const char *const tld[] = {"*.test", NULL};
	struct fx f;
	time_t now = time(NULL);

	fx_open(&f);
	sg_ctx_set_time(f.ctx, now);
	struct sg_key *k[12] = {0};
	k[0] = mk(f.ctx, "Bob", bob, NULL, 30, 0, NULL);
	k[1] = mk(f.ctx, "Carol", carol, NULL, 30, 0, NULL);
	k[2] = mk(f.ctx, "Exact", NULL, exact, 30, 0, NULL);
	k[3] = mk(f.ctx, "Wild", NULL, wild, 90, 0, NULL);
	k[4] = mk(f.ctx, "CA", cam, NULL, 30, 1, NULL);
	k[5] = mk(f.ctx, "Multi 10", multi, NULL, 10, 0, NULL);
	k[6] = mk(f.ctx, "Multi 90", multi, NULL, 90, 0, NULL);
	k[7] = mk(f.ctx, "Multi 30", multi, NULL, 30, 0, NULL);
	k[8] = mk(f.ctx, "Dave", dave, NULL, 5, 0, NULL);
	k[9] = mk(f.ctx, "TLD", NULL, tld, 30, 0, NULL);
	sg_ctx_set_time(f.ctx, now - 60 * DAY);
	k[10] = mk(f.ctx, "Old", old, NULL, 30, 0, NULL);
	sg_ctx_set_time(f.ctx, now + 10 * DAY);
	k[11] = mk(f.ctx, "Future", fut, NULL, 30, 0, NULL);
	sg_ctx_set_time(f.ctx, now);
	CHECK_EQ(store_put_key(f.st, "carol", k[1], "created"), SG_OK);
	for (size_t i = 0; i < 12; i++)
		if (i != 1) {
			char name[16];
			snprintf(name, sizeof(name), "k%zu", i);
			CHECK_EQ(put_public(f.st, STORE_PUBLIC, name, k[i]),
			         SG_OK);
		}

	static const struct {
		const char *addr;
		long shift_days; /* the clock, from now */
		enum sg_status want;
		int key; /* index into k[] when found */
	} cases[] = {
	    {"bob@example.org", 0, SG_OK, 0},
	    {"bob@EXAMPLE.Org", 0, SG_OK, 0},            /* domain: any case */
	    {"Bob@example.org", 0, SG_ERR_NOT_FOUND, 0}, /* local: exact */
	    {"bob@example.com", 0, SG_ERR_NOT_FOUND, 0},
	    {"bo@example.org", 0, SG_ERR_NOT_FOUND, 0},
	    {"carol@example.com", 0, SG_OK, 1}, /* our own certificate */
	    {"x@exact.test", 0, SG_OK, 2},      /* dNSName */
	    {"x@EXACT.TEST", 0, SG_OK, 2},
	    {"x@a.exact.test", 0, SG_ERR_NOT_FOUND, 0},
	    {"x@a.example.net", 0, SG_OK, 3}, /* *.example.net */
	    {"x@A.Example.NET", 0, SG_OK, 3},
	    {"x@example.net", 0, SG_ERR_NOT_FOUND, 0},
	    {"x@b.a.example.net", 0, SG_ERR_NOT_FOUND, 0},
	    {"x@anything.test", 0, SG_ERR_NOT_FOUND, 0}, /* never *.test */
	    {"dave@a.example.net", 0, SG_OK, 8}, /* email before domain */
	    {"ca@example.org", 0, SG_ERR_NOT_FOUND, 0}, /* key usage */
	    {"multi@example.org", 0, SG_OK, 6},         /* newest notAfter */
	    {"multi@example.org", 60, SG_OK, 6},
	    {"multi@example.org", 91, SG_ERR_NOT_FOUND, 0},
	    {"old@example.org", 0, SG_ERR_NOT_FOUND, 0}, /* expired */
	    {"old@example.org", -45, SG_OK, 10},
	    {"future@example.org", 0, SG_ERR_NOT_FOUND, 0}, /* not yet */
	    {"future@example.org", 11, SG_OK, 11},
	    {"bob@example.org", 31, SG_ERR_NOT_FOUND, 0},
	    {"not-an-address", 0, SG_ERR_USAGE, 0},
	    {"@example.org", 0, SG_ERR_USAGE, 0},
	    {"bob@", 0, SG_ERR_USAGE, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_certs *c = NULL;
		char *fp = NULL;
		sg_ctx_set_time(f.ctx, now + cases[i].shift_days * DAY);
		enum sg_status rc =
		    store_find_encrypt_cert(f.st, cases[i].addr, &c);
		if (rc != cases[i].want)
			fprintf(stderr, "  case %s %+ld: %s (%s)\n",
			        cases[i].addr, cases[i].shift_days,
			        sg_status_name(rc), store_errmsg(f.st));
		CHECK_EQ(rc, cases[i].want);
		if (cases[i].want == SG_OK) {
			fp = fp_of_key(k[cases[i].key]);
			CHECK(same_fp(c, fp));
		}
		CHECK((c != NULL) == (rc == SG_OK));
		free(fp);
		sg_certs_free(c);
	}
	for (size_t i = 0; i < 12; i++)
		sg_key_free(k[i]);
	fx_clear(&f);
}

static void
sign_key_rules(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const s[] = {"signer@example.com", NULL};
	static const char *const dom[] = {"example.com", NULL};
	struct fx f;
	time_t now = time(NULL);
	struct sg_key *k[4];

	fx_open(&f);
	sg_ctx_set_time(f.ctx, now);
	k[0] = mk(f.ctx, "Alice", a, NULL, 30, 0, NULL);
	k[1] = mk(f.ctx, "Alice new", a, NULL, 60, 0, NULL);
	k[2] = mk(f.ctx, "Corp", NULL, dom, 30, 0, NULL);
	k[3] = mk(f.ctx, "Signer CA", s, NULL, 30, 1, NULL);
	CHECK_EQ(store_put_key(f.st, "alice", k[0], "created"), SG_OK);
	CHECK_EQ(store_put_key(f.st, "alice-new", k[1], "created"), SG_OK);
	CHECK_EQ(store_put_key(f.st, "corp", k[2], "created"), SG_OK);
	CHECK_EQ(store_put_key(f.st, "ca", k[3], "created"), SG_OK);
	/* A public certificate is never a signing key. */
	struct sg_key *pub = mk(f.ctx, "Pub", NULL, dom, 90, 0, NULL);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "pub", pub), SG_OK);

	static const struct {
		const char *sender, *name;
		long shift_days;
		enum sg_status want;
		int key;
	} cases[] = {
	    {"alice@example.com", NULL, 0, SG_OK, 1}, /* newest notAfter */
	    {"alice@EXAMPLE.COM", NULL, 0, SG_OK, 1},
	    {"alice@example.com", NULL, 40, SG_OK, 1},
	    {"alice@example.com", NULL, 61, SG_ERR_NOT_FOUND, 0},
	    {"Alice@example.com", NULL, 0, SG_OK, 2}, /* then the domain */
	    {"x@example.com", NULL, 0, SG_OK, 2},
	    {"x@sub.example.com", NULL, 0, SG_ERR_NOT_FOUND, 0},
	    {"x@other.org", NULL, 0, SG_ERR_NOT_FOUND, 0},
	    {"signer@example.com", NULL, 0, SG_OK, 2}, /* not the CA */
	    {NULL, "alice", 0, SG_OK, 0},              /* by name */
	    {"x@other.org", "alice", 0, SG_OK, 0},
	    {NULL, "alice", 40, SG_ERR_EXPIRED, 0},
	    {NULL, "ca", 0, SG_ERR_KEY_USAGE, 0},
	    {NULL, "pub", 0, SG_ERR_NOT_FOUND, 0},
	    {NULL, "nobody", 0, SG_ERR_NOT_FOUND, 0},
	    {NULL, NULL, 0, SG_ERR_USAGE, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct sg_key *got = NULL;
		char *fp = NULL;
		sg_ctx_set_time(f.ctx, now + cases[i].shift_days * DAY);
		enum sg_status rc = store_find_sign_key(f.st, cases[i].sender,
		                                        cases[i].name, &got);
		if (rc != cases[i].want)
			fprintf(stderr, "  case %s/%s: %s (%s)\n",
			        cases[i].sender ? cases[i].sender : "-",
			        cases[i].name ? cases[i].name : "-",
			        sg_status_name(rc), store_errmsg(f.st));
		CHECK_EQ(rc, cases[i].want);
		if (cases[i].want == SG_OK) {
			fp = fp_of_key(k[cases[i].key]);
			CHECK(got != NULL && key_is(got, fp));
		}
		CHECK((got != NULL) == (rc == SG_OK));
		free(fp);
		sg_key_free(got);
	}
	for (size_t i = 0; i < 4; i++)
		sg_key_free(k[i]);
	sg_key_free(pub);
	fx_clear(&f);
}

static int
buf_write(void *arg, const void *d, size_t n)
{
	struct {
		char *p;
		size_t len;
	} *b = arg;
	char *np = realloc(b->p, b->len + n + 1);

	if (np == NULL)
		return -1;
	memcpy(np + b->len, d, n);
	b->p = np;
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void
decrypt_key_by_recipient(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const b[] = {"bob@example.org", NULL};
	struct fx f;
	struct sg_key *ca, *alice, *bob, *got = NULL;
	struct sg_cert_info ai;
	struct sg_certs *ac;
	char *fp, lower[128];

	fx_open(&f);
	ca = mk(f.ctx, "Test CA", NULL, NULL, 30, 1, NULL);
	alice = mk(f.ctx, "Alice", a, NULL, 30, 0, ca);
	bob = mk(f.ctx, "Bob", b, NULL, 30, 0, ca);
	CHECK_EQ(store_put_key(f.st, "alice", alice, "created"), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob), SG_OK);
	ac = certs_of(alice);
	fp = fp_of(ac);
	CHECK_EQ(sg_certs_info(ac, 0, &ai), SG_OK);
	CHECK(ai.ski != NULL);
	snprintf(lower, sizeof(lower), "%s", ai.serial);
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	struct sg_cert_info bi;
	struct sg_certs *bc = certs_of(bob);
	CHECK_EQ(sg_certs_info(bc, 0, &bi), SG_OK);

	struct {
		const char *name;
		struct sg_recipient_id rid;
		long shift_days;
		enum sg_status want;
	} cases[] = {
	    {"issuer+serial", {ai.issuer, ai.serial, NULL}, 0, SG_OK},
	    {"serial in lowercase", {ai.issuer, lower, NULL}, 0, SG_OK},
	    {"ski", {NULL, NULL, ai.ski}, 0, SG_OK},
	    {"expired still opens", {ai.issuer, ai.serial, NULL}, 60, SG_OK},
	    {"expired by ski", {NULL, NULL, ai.ski}, 60, SG_OK},
	    {"wrong serial", {ai.issuer, "01", NULL}, 0, SG_ERR_NOT_FOUND},
	    {"wrong issuer",
	     {"CN=Other", ai.serial, NULL},
	     0,
	     SG_ERR_NOT_FOUND},
	    {"wrong ski", {NULL, NULL, "00ff"}, 0, SG_ERR_NOT_FOUND},
	    {"a public key is not ours",
	     {bi.issuer, bi.serial, NULL},
	     0,
	     SG_ERR_NOT_FOUND},
	    {"public by ski", {NULL, NULL, bi.ski}, 0, SG_ERR_NOT_FOUND},
	    {"nothing", {NULL, NULL, NULL}, 0, SG_ERR_NOT_FOUND},
	};
	time_t now = time(NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		sg_ctx_set_time(f.ctx, now + cases[i].shift_days * DAY);
		enum sg_status rc =
		    store_find_decrypt_key(f.st, &cases[i].rid, &got);
		if (rc != cases[i].want)
			fprintf(stderr, "  case %s: %s (%s)\n", cases[i].name,
			        sg_status_name(rc), store_errmsg(f.st));
		CHECK_EQ(rc, cases[i].want);
		CHECK((got != NULL) == (rc == SG_OK));
		if (got != NULL)
			CHECK(key_is(got, fp) && sg_key_matches(got, ac, 0));
		sg_key_free(got);
		got = NULL;
	}
	sg_ctx_set_time(f.ctx, 0);

	/* The whole way: encrypt to alice, find her key from the envelope,
	 * decrypt. */
	struct {
		char *p;
		size_t len;
	} enc = {0}, dec = {0};
	struct sg_sink es = {buf_write, &enc}, ds = {buf_write, &dec};
	struct sg_certs *to = NULL;
	CHECK_EQ(sg_certs_new(&to), SG_OK);
	CHECK_EQ(sg_certs_push_from(to, ac, 0), SG_OK);
	struct sg_encrypt_opts eo = {.recipients = to};
	struct sg_msg *m = NULL, *e = NULL;
	struct sg_recipient_id *ids = NULL;
	size_t n = 0;
	const char msg[] = "From: bob@example.org\r\nTo: alice@example.com\r\n"
	                   "Subject: s\r\n\r\nsecret\r\n";
	CHECK_EQ(sg_msg_open_mem(f.ctx, msg, sizeof(msg) - 1, &m), SG_OK);
	CHECK_EQ(sg_encrypt(f.ctx, m, &eo, &es), SG_OK);
	CHECK_EQ(sg_msg_open_mem(f.ctx, enc.p, enc.len, &e), SG_OK);
	CHECK_EQ(sg_msg_recipients(f.ctx, e, &ids, &n), SG_OK);
	CHECK(n >= 1);
	CHECK_EQ(store_find_decrypt_key(f.st, n ? &ids[0] : NULL, &got), SG_OK);
	CHECK_EQ(sg_decrypt(f.ctx, e, got, &ds), SG_OK);
	CHECK(dec.p != NULL && strstr(dec.p, "secret") != NULL);
	sg_recipient_ids_free(ids, n);
	sg_key_free(got);
	sg_msg_free(m);
	sg_msg_free(e);
	free(enc.p);
	free(dec.p);
	sg_certs_free(to);

	sg_cert_info_clear(&ai);
	sg_cert_info_clear(&bi);
	sg_certs_free(ac);
	sg_certs_free(bc);
	free(fp);
	sg_key_free(ca);
	sg_key_free(alice);
	sg_key_free(bob);
	fx_clear(&f);
}

static void
csr_waits_for_its_certificate(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	static const char *const b[] = {"bob@example.org", NULL};
	struct sg_cert_req req = {.cn = "Pending",
	                          .days = 30,
	                          .key = SG_KEY_EC_P256,
	                          .san_emails = a};
	struct fx f;
	struct sg_key *fresh = NULL, *alice, *bob, *got = NULL;
	struct store_entry e = {0};
	struct sg_certs *c = NULL, *ac, *bc;
	char *pem = NULL, *back = NULL, *name = NULL;

	fx_open(&f);
	/* A new key and its request: stored, no certificate yet. */
	CHECK_EQ(sg_csr_create(f.ctx, &req, &fresh, &pem), SG_OK);
	CHECK_EQ(store_put_csr(f.st, "pending", fresh, pem), SG_OK);
	CHECK_EQ(store_put_csr(f.st, "pending", fresh, pem), SG_ERR_EXISTS);
	CHECK_EQ(store_get_csr(f.st, "pending", &back), SG_OK);
	CHECK(back != NULL && pem != NULL && strcmp(back, pem) == 0);
	free(back);
	back = NULL;
	CHECK_EQ(store_get(f.st, STORE_ORG, "pending", &e), SG_OK);
	CHECK(!e.has_cert && e.info.fingerprint == NULL);
	CHECK_STR(e.source, "csr");
	store_entry_clear(&e);
	CHECK_EQ(store_get_certs(f.st, STORE_ORG, "pending", &c),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(store_get_key(f.st, "pending", &got), SG_OK);
	CHECK(got != NULL && !sg_key_has_cert(got));
	sg_key_free(got);
	got = NULL;
	CHECK_EQ(store_find_sign_key(f.st, NULL, "pending", &got),
	         SG_ERR_NOT_FOUND);
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c),
	         SG_ERR_NOT_FOUND);

	/* The certificate for a pending key: a key made with one, stored
	 * as a pending request. */
	alice = mk(f.ctx, "Alice", a, NULL, 30, 0, NULL);
	bob = mk(f.ctx, "Bob", b, NULL, 30, 0, NULL);
	ac = certs_of(alice);
	bc = certs_of(bob);
	CHECK_EQ(store_put_csr(f.st, "alice", alice,
	                       "-----BEGIN CERTIFICATE "
	                       "REQUEST-----\n"),
	         SG_OK);
	CHECK_EQ(store_attach_cert(f.st, bc, 0, &name), SG_ERR_NOT_FOUND);
	CHECK(name == NULL);
	CHECK_EQ(store_attach_cert(f.st, ac, 0, &name), SG_OK);
	CHECK_STR(name, "alice");
	free(name);
	name = NULL;
	CHECK_EQ(store_get_csr(f.st, "alice", &back), SG_ERR_NOT_FOUND);
	CHECK_EQ(store_get(f.st, STORE_ORG, "alice", &e), SG_OK);
	CHECK(e.has_cert && e.info.emails != NULL &&
	      strcmp(e.info.emails[0], "alice@example.com") == 0);
	store_entry_clear(&e);
	CHECK_EQ(store_find_sign_key(f.st, "alice@example.com", NULL, &got),
	         SG_OK);
	CHECK(got != NULL && sg_key_has_cert(got) &&
	      sg_key_matches(got, ac, 0));
	sg_key_free(got);
	got = NULL;
	CHECK_EQ(store_find_encrypt_cert(f.st, "alice@example.com", &c), SG_OK);
	sg_certs_free(c);
	c = NULL;
	/* Again: the certificate is there already. */
	CHECK_EQ(store_attach_cert(f.st, ac, 0, &name), SG_ERR_EXISTS);
	/* The other pending request is still waiting. */
	CHECK_EQ(store_get_csr(f.st, "pending", &back), SG_OK);
	free(back);

	free(pem);
	sg_certs_free(ac);
	sg_certs_free(bc);
	sg_key_free(fresh);
	sg_key_free(alice);
	sg_key_free(bob);
	fx_clear(&f);
}

/* A new self-signed certificate for the key of K (what a CA returns for
 * a renewal request): EMAIL, valid for DAYS days. */
static struct sg_certs *
renewed_cert(const struct sg_key *k, const char *email, unsigned days)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	struct sg_certs *c = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char san[128];

	snprintf(san, sizeof(san), "email:%s", email);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Renewed", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -300);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * DAY);
	X509_set_pubkey(x, k->pkey);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	CHECK(ext != NULL && X509_add_ext(x, ext, -1) == 1);
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(x, k->pkey, EVP_sha256()) > 0);
	X509_NAME_free(n);
	CHECK_EQ(sg_certs_new(&c), SG_OK);
	if (c == NULL || !sk_X509_push(c->sk, x))
		X509_free(x);
	return c;
}

static void
renewal_adds_a_row(void)
{
	static const char *const a[] = {"alice@example.com", NULL};
	struct fx f;
	struct sg_key *alice, *got = NULL;
	struct sg_certs *old, *renewed;
	struct sg_cert_info oi;
	struct store_entry e = {0};
	char *name = NULL, *fp_old, *fp_new;

	fx_open(&f);
	alice = mk(f.ctx, "Alice", a, NULL, 30, 0, NULL);
	old = certs_of(alice);
	fp_old = fp_of(old);
	CHECK_EQ(store_put_key(f.st, "alice", alice, "created"), SG_OK);
	renewed = renewed_cert(alice, "alice@example.com", 90);
	fp_new = fp_of(renewed);
	CHECK(sg_key_matches(alice, renewed, 0));

	/* The renewed certificate gets a row of its own, with the key. */
	CHECK_EQ(store_attach_cert(f.st, renewed, 0, &name), SG_OK);
	CHECK_STR(name, "alice-2");
	CHECK_EQ(store_get(f.st, STORE_ORG, name ? name : "", &e), SG_OK);
	CHECK(e.has_cert && e.info.fingerprint != NULL &&
	      strcmp(e.info.fingerprint, fp_new) == 0);
	CHECK_STR(e.source, "renewed");
	store_entry_clear(&e);
	free(name);
	name = NULL;
	CHECK_EQ(store_attach_cert(f.st, renewed, 0, &name), SG_ERR_EXISTS);
	CHECK(name == NULL);
	/* The newest signs; the old one still opens what was sent to it. */
	CHECK_EQ(store_find_sign_key(f.st, "alice@example.com", NULL, &got),
	         SG_OK);
	CHECK(got != NULL && key_is(got, fp_new));
	sg_key_free(got);
	got = NULL;
	CHECK_EQ(sg_certs_info(old, 0, &oi), SG_OK);
	struct sg_recipient_id rid = {oi.issuer, oi.serial, NULL};
	CHECK_EQ(store_find_decrypt_key(f.st, &rid, &got), SG_OK);
	CHECK(got != NULL && key_is(got, fp_old));
	sg_key_free(got);
	sg_cert_info_clear(&oi);

	free(fp_old);
	free(fp_new);
	sg_certs_free(old);
	sg_certs_free(renewed);
	sg_key_free(alice);
	fx_clear(&f);
}

static void
settings_and_trust_anchors(void)
{
	struct fx f;
	struct sg_key *ca1, *ca2;
	struct sg_certs *t = NULL;
	char *v = NULL;

	fx_open(&f);
	CHECK_EQ(store_get_setting(f.st, "trust_system_bundle", &v),
	         SG_ERR_NOT_FOUND);
	CHECK(v == NULL);
	CHECK_EQ(store_set_setting(f.st, "trust_system_bundle", "0"), SG_OK);
	CHECK_EQ(store_get_setting(f.st, "trust_system_bundle", &v), SG_OK);
	CHECK_STR(v, "0");
	free(v);
	v = NULL;
	CHECK_EQ(store_set_setting(f.st, "Bad Key", "1"), SG_ERR_USAGE);
	CHECK_EQ(store_set_setting(f.st, "", "1"), SG_ERR_USAGE);

	CHECK_EQ(store_trust_anchors(f.st, &t), SG_OK);
	CHECK_EQ(sg_certs_count(t), 0);
	sg_certs_free(t);
	t = NULL;
	ca1 = mk(f.ctx, "CA one", NULL, NULL, 30, 1, NULL);
	ca2 = mk(f.ctx, "CA two", NULL, NULL, 30, 1, NULL);
	CHECK_EQ(put_public(f.st, STORE_CA, "one", ca1), SG_OK);
	CHECK_EQ(put_public(f.st, STORE_CA, "two", ca2), SG_OK);
	CHECK_EQ(store_trust_anchors(f.st, &t), SG_OK);
	CHECK_EQ(sg_certs_count(t), 2);
	sg_certs_free(t);
	t = NULL;
	if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
		CHECK_EQ(store_set_setting(f.st, "trust_system_bundle", "1"),
		         SG_OK);
		CHECK_EQ(store_trust_anchors(f.st, &t), SG_OK);
		CHECK(sg_certs_count(t) > 2);
		sg_certs_free(t);
		t = NULL;
	}
	sg_key_free(ca1);
	sg_key_free(ca2);
	fx_clear(&f);
}

/* ---- failures ---- */

/*
 * A VFS over the default one whose reads can fail on demand with an I/O
 * error: the temporary failure of a lookup that a second connection
 * cannot cause, since in WAL mode readers never wait for a writer.
 */
struct shim {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	int fail_read;
};

struct shim_file {
	sqlite3_file base;
	struct shim *sh;
	sqlite3_file *real; /* follows this struct in the same allocation */
};

#define REAL(f) (((struct shim_file *)(f))->real)
#define SHIM(f) (((struct shim_file *)(f))->sh)

static int
sf_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int
sf_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	if (SHIM(f)->fail_read)
		return SQLITE_IOERR_READ;
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int
sf_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int
sf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int
sf_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int
sf_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int
sf_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}
static int
sf_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}
static int
sf_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int
sf_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int
sf_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int
sf_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int
sf_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}
static int
sf_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void
sf_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int
sf_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods shim_methods = {
    2,
    sf_close,
    sf_read,
    sf_write,
    sf_truncate,
    sf_sync,
    sf_size,
    sf_lock,
    sf_unlock,
    sf_reserved,
    sf_fcntl,
    sf_sector,
    sf_devchar,
    sf_shm_map,
    sf_shm_lock,
    sf_shm_barrier,
    sf_shm_unmap,
    NULL,
    NULL,
};

static int
shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
          int *out)
{
	struct shim *sh = vfs->pAppData;
	struct shim_file *sf = (struct shim_file *)f;
	int rc;

	sf->sh = sh;
	sf->real = (sqlite3_file *)(sf + 1);
	sf->base.pMethods = NULL;
	rc = sh->real->xOpen(sh->real, name, sf->real, flags, out);
	if (sf->real->pMethods != NULL)
		sf->base.pMethods = &shim_methods;
	return rc;
}
static int
shim_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xDelete(sh->real, name, sync);
}
static int
shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xAccess(sh->real, name, flags, out);
}
static int
shim_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xFullPathname(sh->real, name, n, out);
}
static int
shim_random(sqlite3_vfs *vfs, int n, char *out)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xRandomness(sh->real, n, out);
}
static int
shim_sleep(sqlite3_vfs *vfs, int us)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xSleep(sh->real, us);
}
static int
shim_time(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xCurrentTimeInt64(sh->real, out);
}
static int
shim_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	struct shim *sh = vfs->pAppData;
	return sh->real->xGetLastError(sh->real, n, out);
}

/* Makes SH the default VFS until shim_remove(). */
static void
shim_install(struct shim *sh)
{
	memset(sh, 0, sizeof(*sh));
	sh->real = sqlite3_vfs_find(NULL);
	sh->vfs.iVersion = 2;
	sh->vfs.szOsFile = (int)sizeof(struct shim_file) + sh->real->szOsFile;
	sh->vfs.mxPathname = sh->real->mxPathname;
	sh->vfs.zName = "t_store_shim";
	sh->vfs.pAppData = sh;
	sh->vfs.xOpen = shim_open;
	sh->vfs.xDelete = shim_delete;
	sh->vfs.xAccess = shim_access;
	sh->vfs.xFullPathname = shim_full;
	sh->vfs.xRandomness = shim_random;
	sh->vfs.xSleep = shim_sleep;
	sh->vfs.xGetLastError = shim_last_error;
	sh->vfs.xCurrentTimeInt64 = shim_time;
	CHECK_EQ(sqlite3_vfs_register(&sh->vfs, 1), SQLITE_OK);
}

static void
shim_remove(struct shim *sh)
{
	sqlite3_vfs_unregister(&sh->vfs);
	sqlite3_vfs_register(sh->real, 1);
}

static void
busy_is_temporary_never_not_found(void)
{
	static const char *const b[] = {"bob@example.org", NULL};
	struct shim sh;
	struct fx f;
	struct sg_key *bob, *other, *got = NULL;
	struct sg_certs *c = NULL;
	struct store_entry *v = NULL, e = {0};
	size_t n = 0;
	sqlite3 *h = NULL;
	char *s = NULL;

	shim_install(&sh);
	fx_open(&f);
	bob = mk(f.ctx, "Bob", b, NULL, 30, 0, NULL);
	other = mk(f.ctx, "Other", NULL, NULL, 30, 0, NULL);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob), SG_OK);
	CHECK_EQ(store_put_key(f.st, "me", other, "created"), SG_OK);
	store_set_busy_timeout(f.st, 10);

	/* Another writer: our writes wait, then fail for now; WAL lets our
	 * reads go on. */
	CHECK_EQ(sqlite3_open(f.db, &h), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
	         SQLITE_OK);
	CHECK_EQ(store_set_setting(f.st, "k", "v"), SG_ERR_TEMP);
	CHECK(strstr(store_errmsg(f.st), "locked") != NULL);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "other", other), SG_ERR_TEMP);
	CHECK_EQ(store_delete(f.st, STORE_PUBLIC, "bob"), SG_ERR_TEMP);
	CHECK_EQ(store_find_encrypt_cert(f.st, "bob@example.org", &c), SG_OK);
	sg_certs_free(c);
	c = NULL;
	CHECK_EQ(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);

	/* The database unreadable for now: every lookup fails for now,
	 * none says "not found".  A change by another connection first
	 * empties our page cache. */
	CHECK_EQ(sqlite3_exec(h, "INSERT INTO settings VALUES ('x', '1')", NULL,
	                      NULL, NULL),
	         SQLITE_OK);
	sh.fail_read = 1;
	CHECK_EQ(store_find_encrypt_cert(f.st, "bob@example.org", &c),
	         SG_ERR_TEMP);
	CHECK(c == NULL);
	CHECK_EQ(store_find_encrypt_cert(f.st, "nobody@example.org", &c),
	         SG_ERR_TEMP);
	CHECK_EQ(store_find_sign_key(f.st, NULL, "me", &got), SG_ERR_TEMP);
	CHECK_EQ(store_find_sign_key(f.st, "x@y.org", NULL, &got), SG_ERR_TEMP);
	CHECK_EQ(store_get_key(f.st, "me", &got), SG_ERR_TEMP);
	CHECK(got == NULL);
	struct sg_recipient_id rid = {NULL, NULL, "00ff"};
	CHECK_EQ(store_find_decrypt_key(f.st, &rid, &got), SG_ERR_TEMP);
	CHECK(got == NULL);
	CHECK_EQ(store_list(f.st, STORE_PUBLIC, &v, &n), SG_ERR_TEMP);
	CHECK_EQ(store_get(f.st, STORE_PUBLIC, "bob", &e), SG_ERR_TEMP);
	CHECK_EQ(store_get_setting(f.st, "x", &s), SG_ERR_TEMP);
	CHECK(s == NULL);
	CHECK_EQ(store_trust_anchors(f.st, &c), SG_ERR_TEMP);
	CHECK(c == NULL);
	CHECK(strlen(store_errmsg(f.st)) > 0);
	sh.fail_read = 0;
	sqlite3_close(h);

	CHECK_EQ(store_find_encrypt_cert(f.st, "bob@example.org", &c), SG_OK);
	sg_certs_free(c);
	CHECK_EQ(store_get_setting(f.st, "x", &s), SG_OK);
	free(s);
	CHECK_EQ(store_set_setting(f.st, "k", "v"), SG_OK);
	sg_key_free(bob);
	sg_key_free(other);
	fx_clear(&f);
	shim_remove(&sh);
}

static void
corrupt_rows_are_errors_not_crashes(void)
{
	static const char *const b[] = {"bob@example.org", NULL};
	static const char *const ca_mail[] = {"ca@example.org", NULL};
	static const struct {
		const char *name;
		const char *sql;
		enum sg_status get;  /* store_get of bob */
		enum sg_status find; /* store_find_encrypt_cert of bob */
	} cases[] = {
	    {"not a certificate",
	     "UPDATE certs SET cert_der = x'3003020101' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"trailing bytes",
	     "UPDATE certs SET cert_der = cert_der || x'00' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"truncated",
	     "UPDATE certs SET cert_der = substr(cert_der, 1, 100) WHERE "
	     "name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"text for a blob",
	     "UPDATE certs SET cert_der = 'hello' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"empty blob", "UPDATE certs SET cert_der = x'' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"NUL in the source",
	     "UPDATE certs SET source = CAST(x'610062' AS TEXT) WHERE "
	     "name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"blob for the source",
	     "UPDATE certs SET source = x'61' WHERE name = 'bob'", SG_ERR_IO,
	     SG_ERR_IO},
	    {"text for created",
	     "UPDATE certs SET created = 'yesterday' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    {"chain of junk",
	     "UPDATE certs SET chain_der = x'300500' WHERE name = 'bob'",
	     SG_ERR_IO, SG_ERR_IO},
	    /* Another certificate under bob's facts: not bob's. */
	    {"another certificate",
	     "UPDATE certs SET cert_der = (SELECT cert_der FROM certs WHERE "
	     "name = 'ca') WHERE name = 'bob'",
	     SG_OK, SG_ERR_NOT_FOUND},
	    {"no such table", "DROP TABLE cert_names", SG_OK, SG_ERR_IO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fx f;
		struct sg_key *bob, *ca;
		struct store_entry e = {0};
		struct sg_certs *c = NULL;
		enum sg_status rc;

		fx_open(&f);
		bob = mk(f.ctx, "Bob", b, NULL, 30, 0, NULL);
		ca = mk(f.ctx, "CA", ca_mail, NULL, 30, 1, NULL);
		CHECK_EQ(put_public(f.st, STORE_PUBLIC, "bob", bob), SG_OK);
		CHECK_EQ(put_public(f.st, STORE_PUBLIC, "ca", ca), SG_OK);
		CHECK_EQ(raw_sql(f.db, cases[i].sql), SQLITE_OK);
		rc = store_get(f.st, STORE_PUBLIC, "bob", &e);
		if (rc != cases[i].get)
			fprintf(stderr, "  case %s: get %s\n", cases[i].name,
			        sg_status_name(rc));
		CHECK_EQ(rc, cases[i].get);
		if (rc == SG_OK)
			store_entry_clear(&e);
		rc = store_find_encrypt_cert(f.st, "bob@example.org", &c);
		if (rc != cases[i].find)
			fprintf(stderr, "  case %s: find %s (%s)\n",
			        cases[i].name, sg_status_name(rc),
			        store_errmsg(f.st));
		CHECK_EQ(rc, cases[i].find);
		sg_certs_free(c);
		sg_key_free(bob);
		sg_key_free(ca);
		fx_clear(&f);
	}

	/* Facts that lie are checked against the certificate. */
	struct fx f;
	struct sg_key *ca;
	struct sg_certs *c = NULL;
	fx_open(&f);
	ca = mk(f.ctx, "CA", ca_mail, NULL, 30, 1, NULL);
	CHECK_EQ(put_public(f.st, STORE_PUBLIC, "ca", ca), SG_OK);
	CHECK_EQ(raw_sql(f.db, "UPDATE certs SET can_encrypt = 1, not_after = "
	                       "9999999999"),
	         SQLITE_OK);
	CHECK_EQ(store_find_encrypt_cert(f.st, "ca@example.org", &c),
	         SG_ERR_NOT_FOUND);
	CHECK(c == NULL);
	sg_key_free(ca);
	fx_clear(&f);
}

static const struct unit_case cases[] = {
    {"init_creates_private_files", init_creates_private_files},
    {"open_refuses_loose_modes", open_refuses_loose_modes},
    {"open_refuses_what_is_not_a_store", open_refuses_what_is_not_a_store},
    {"rows_of_each_role", rows_of_each_role},
    {"names_and_duplicates", names_and_duplicates},
    {"wrapped_key_round_trip", wrapped_key_round_trip},
    {"open_keys_follow_the_row", open_keys_follow_the_row},
    {"no_private_key_in_clear", no_private_key_in_clear},
    {"encrypt_lookup_rules", encrypt_lookup_rules},
    {"sign_key_rules", sign_key_rules},
    {"decrypt_key_by_recipient", decrypt_key_by_recipient},
    {"csr_waits_for_its_certificate", csr_waits_for_its_certificate},
    {"renewal_adds_a_row", renewal_adds_a_row},
    {"settings_and_trust_anchors", settings_and_trust_anchors},
    {"busy_is_temporary_never_not_found", busy_is_temporary_never_not_found},
    {"corrupt_rows_are_errors_not_crashes",
     corrupt_rows_are_errors_not_crashes},
    {NULL, NULL},
};
const struct unit_suite suite_store = {"store", cases};
