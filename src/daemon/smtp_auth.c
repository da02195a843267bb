/*
 * smtp_auth.c - SMTP AUTH (RFC 4954) for the listeners: the users file,
 * the PLAIN mechanism's response (RFC 4616), and the password check with
 * crypt(3) (libxcrypt), so that administrators make the hashes with
 * mkpasswd(1) or `openssl passwd -6`.
 *
 * What it trusts: the users file named by the configuration (read at
 * start and reload).  Nothing the client says: a response is at most one
 * command line, decoded into fixed buffers; a user name is compared as
 * it is; an unknown user costs a hash like a known one.  What it can
 * reach: that one file.
 *
 * Threads: a database is built and dropped on the loop thread; a check
 * (struct smtp_auth_check) owns copies of what it needs and runs on a
 * commit thread, because a good hash is slow on purpose.
 */
#include "daemon/smtp_int.h"

#include "daemon/daemon_dl.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_LINE_MAX    1024   /* user, ':', hash */
#define AUTH_USERS_MAX   100000 /* lines with a user */
#define AUTH_SENDERS_MAX 64     /* senders of one user */

struct auth_user {
	char *name;
	char *hash;
	char **senders; /* the envelope senders this user may give:
	                 * "a@b" or "@domain" (lowercase), or the one
	                 * entry "*" for any; NULL: its own name, when
	                 * that is an address */
};

struct smtp_auth_db {
	struct auth_user *users; /* sorted by name */
	size_t n;
	unsigned refs;
};

struct smtp_auth_check {
	char user[SMTP_AUTH_USER_MAX + 1];
	char pass[SMTP_AUTH_PASS_MAX + 1];
	char hash[CRYPT_OUTPUT_SIZE];
	int known;
	int result;
};

/* ---- the users file ---- */

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name,
	              ((const struct auth_user *)b)->name);
}

/* A user name: 1 to SMTP_AUTH_USER_MAX octets, no controls, no space,
 * no ':' (UTF-8 is welcome). */
static int
name_ok(const char *s, size_t n)
{
	if (n == 0 || n > SMTP_AUTH_USER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == ':')
			return 0;
	}
	return 1;
}

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* "alice@example.com, @sales.example.com", or "*": the third field of a
 * line, lowercased.  NULL with ERR when an entry is not an address or
 * @domain, or "*" is not alone. */
static char **
parse_senders(char *list, const char *path, unsigned lineno, char *err,
              size_t errlen)
{
	char **v = NULL, *tok, *save = NULL;
	size_t n = 0;

	for (tok = strtok_r(list, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		char *at = strchr(tok, '@'), **g;
		int star = strcmp(tok, "*") == 0;

		/* "*" only alone: not after an entry, none after it */
		if (n > 0 && (star || strcmp(v[0], "*") == 0)) {
			snprintf(err, errlen,
			         "auth_users %s:%u: \"*\" (any sender) stands "
			         "alone in a sender list",
			         path, lineno);
			strv_free(v);
			return NULL;
		}
		if (!star &&
		    (at == NULL || at[1] == '\0' || strchr(at + 1, '@') ||
		     strlen(tok) > 320 || n >= AUTH_SENDERS_MAX)) {
			snprintf(err, errlen,
			         "auth_users %s:%u: \"%.64s\" is not a sender "
			         "(an address, @domain or \"*\"; at most %d)",
			         path, lineno, tok, AUTH_SENDERS_MAX);
			strv_free(v);
			return NULL;
		}
		if ((g = realloc(v, (n + 2) * sizeof(*v))) == NULL ||
		    (g[n] = strdup(tok)) == NULL) {
			snprintf(err, errlen, "auth_users %s: out of memory",
			         path);
			if (g != NULL)
				g[n] = NULL;
			strv_free(g ? g : v);
			return NULL;
		}
		for (char *c = g[n]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		g[++n] = NULL;
		v = g;
	}
	if (n == 0)
		snprintf(err, errlen,
		         "auth_users %s:%u: an empty sender list (\"*\" "
		         "allows any sender)",
		         path, lineno);
	return v;
}

static void
db_drop(struct smtp_auth_db *db)
{
	for (size_t i = 0; i < db->n; i++) {
		strv_free(db->users[i].senders);
		free(db->users[i].name);
		if (db->users[i].hash) {
			explicit_bzero(db->users[i].hash,
			               strlen(db->users[i].hash));
			free(db->users[i].hash);
		}
	}
	free(db->users);
	free(db);
}

/* One "user:hash[:senders]" line (without its end) into DB; -1 with
 * ERR. */
static int
db_line(struct smtp_auth_db *db, char *s, size_t *cap, const char *path,
        unsigned lineno, char *err, size_t errlen)
{
	char *colon = strchr(s, ':'), *hash, *list = NULL, **senders = NULL;
	struct auth_user *u;
	int cs;

	if (colon == NULL || !name_ok(s, (size_t)(colon - s))) {
		snprintf(err, errlen,
		         "auth_users %s:%u: expected user:hash (a user name "
		         "without spaces or ':')",
		         path, lineno);
		return -1;
	}
	*colon = '\0';
	hash = colon + 1;
	/* crypt(3) hashes never hold ':', so a second one starts the
	 * senders field */
	if ((list = strchr(hash, ':')) != NULL)
		*list++ = '\0';
	/* a DES hash is 13 characters without '$': refused as legacy;
	 * anything else without '$' is no hash at all (a password?) */
	cs = strchr(hash, ':') != NULL ||
	             (hash[0] != '$' && strlen(hash) != 13) ||
	             strlen(hash) >= CRYPT_OUTPUT_SIZE
	         ? CRYPT_SALT_INVALID
	         : crypt_checksalt(hash);
	if (cs != CRYPT_SALT_OK || hash[0] != '$') {
		snprintf(err, errlen,
		         "auth_users %s:%u: %s (make one with mkpasswd -m "
		         "yescrypt, or openssl passwd -6)",
		         path, lineno,
		         cs == CRYPT_SALT_METHOD_LEGACY
		             ? "a weak hash method"
		             : "not a crypt(3) hash this system knows");
		return -1;
	}
	if (db->n >= AUTH_USERS_MAX) {
		snprintf(err, errlen, "auth_users %s:%u: more than %d users",
		         path, lineno, AUTH_USERS_MAX);
		return -1;
	}
	if (list != NULL && strchr(list, ':') != NULL) {
		snprintf(
		    err, errlen,
		    "auth_users %s:%u: not a crypt(3) hash line (user:hash "
		    "or user:hash:senders; an /etc/shadow line?)",
		    path, lineno);
		return -1;
	}
	if (list != NULL &&
	    (senders = parse_senders(list, path, lineno, err, errlen)) == NULL)
		return -1;
	if (db->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct auth_user *v = realloc(db->users, ncap * sizeof(*v));
		if (v == NULL) {
			strv_free(senders);
			goto nomem;
		}
		db->users = v;
		*cap = ncap;
	}
	u = &db->users[db->n];
	u->senders = senders;
	u->name = strdup(s);
	u->hash = strdup(hash);
	db->n++; /* freed with the database, even half made */
	if (u->name == NULL || u->hash == NULL)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "auth_users %s: out of memory", path);
	return -1;
}

struct smtp_auth_db *
smtp_auth_db_load(const char *path, char *err, size_t errlen)
{
	struct smtp_auth_db *db;
	char buf[AUTH_LINE_MAX + 2];
	unsigned lineno = 0;
	size_t cap = 0;
	FILE *f = NULL;

	if ((db = calloc(1, sizeof(*db))) == NULL) {
		snprintf(err, errlen, "auth_users %s: out of memory", path);
		return NULL;
	}
	db->refs = 1;
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "auth_users %s: %s", path,
		         strerror(errno));
		goto fail;
	}
	while (fgets(buf, sizeof(buf), f) != NULL) {
		size_t n = strlen(buf);
		char *s = buf;

		lineno++;
		if (n > AUTH_LINE_MAX && buf[n - 1] != '\n') {
			snprintf(err, errlen,
			         "auth_users %s:%u: line longer than %d", path,
			         lineno, AUTH_LINE_MAX);
			goto fail;
		}
		while (n > 0 && strchr("\r\n \t", buf[n - 1]) != NULL)
			buf[--n] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (db_line(db, s, &cap, path, lineno, err, errlen) < 0)
			goto fail;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "auth_users %s: read error", path);
		goto fail;
	}
	if (db->n == 0) {
		snprintf(err, errlen, "auth_users %s: no users", path);
		goto fail;
	}
	qsort(db->users, db->n, sizeof(*db->users), user_cmp);
	for (size_t i = 1; i < db->n; i++)
		if (strcmp(db->users[i - 1].name, db->users[i].name) == 0) {
			snprintf(err, errlen,
			         "auth_users %s: user \"%s\" appears twice",
			         path, db->users[i].name);
			goto fail;
		}
	explicit_bzero(buf, sizeof(buf));
	fclose(f);
	return db;
fail:
	explicit_bzero(buf, sizeof(buf));
	if (f)
		fclose(f);
	db_drop(db);
	return NULL;
}

struct smtp_auth_db *
smtp_auth_db_ref(struct smtp_auth_db *db)
{
	if (db != NULL)
		db->refs++;
	return db;
}

void
smtp_auth_db_free(struct smtp_auth_db *db)
{
	if (db == NULL || --db->refs > 0)
		return;
	db_drop(db);
}

/* ---- PLAIN ---- */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (RFC 4648 4: padding, no white space) of IN into OUT of
 * LEN octets; the decoded length, or -1. */
static long
b64_decode(const char *in, unsigned char *out, size_t len)
{
	size_t n = strlen(in), o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 ||
			           (v[k] = b64_value(
			                (unsigned char)in[i + k])) < 0) {
				return -1;
			}
		}
		if (o + 3 - (size_t)pad > len)
			return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] =
			    (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (long)o;
}

enum smtp_auth_plain
smtp_auth_plain_decode(const char *b64, char *user, size_t ulen, char *pass,
                       size_t plen)
{
	unsigned char buf[SMTP_AUTH_RESP_MAX];
	const unsigned char *z1, *z2;
	size_t zlen, clen, plen_got;
	enum smtp_auth_plain rc = SMTP_AUTH_PLAIN_MALFORMED;
	long n;

	if (strcmp(b64, "=") == 0) { /* an empty initial response */
		n = 0;
	} else if ((n = b64_decode(b64, buf, sizeof(buf))) < 0) {
		rc = SMTP_AUTH_PLAIN_BASE64;
		goto out;
	}
	/* authzid NUL authcid NUL passwd, with no other NUL */
	if ((z1 = memchr(buf, '\0', (size_t)n)) == NULL)
		goto out;
	zlen = (size_t)(z1 - buf);
	if ((z2 = memchr(z1 + 1, '\0', (size_t)n - zlen - 1)) == NULL)
		goto out;
	clen = (size_t)(z2 - z1 - 1);
	plen_got = (size_t)n - zlen - clen - 2;
	if (memchr(z2 + 1, '\0', plen_got) != NULL || clen == 0 ||
	    plen_got == 0 || clen >= ulen || plen_got >= plen)
		goto out;
	/* no acting for another user */
	if (zlen != 0 && (zlen != clen || memcmp(buf, z1 + 1, clen) != 0)) {
		rc = SMTP_AUTH_PLAIN_AUTHZID;
		goto out;
	}
	memcpy(user, z1 + 1, clen);
	user[clen] = '\0';
	memcpy(pass, z2 + 1, plen_got);
	pass[plen_got] = '\0';
	rc = SMTP_AUTH_PLAIN_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

void
smtp_auth_printable(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 1 < len && o < 64; in++) {
		unsigned char c = (unsigned char)*in;
		out[o++] =
		    c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '='
		        ? (char)c
		        : '?';
	}
	if (len > 0)
		out[o] = '\0';
}

/* ---- the check ---- */

struct smtp_auth_check *
smtp_auth_check_new(const struct smtp_auth_db *db, const char *user,
                    const char *pass)
{
	struct smtp_auth_check *c;
	struct auth_user key, *u;

	if (strlen(user) > SMTP_AUTH_USER_MAX ||
	    strlen(pass) > SMTP_AUTH_PASS_MAX || db->n == 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	key.name = (char *)user;
	u = bsearch(&key, db->users, db->n, sizeof(*db->users), user_cmp);
	/* An unknown user costs a hash all the same (of the first user's
	 * kind), and then fails. */
	c->known = u != NULL;
	snprintf(c->hash, sizeof(c->hash), "%s",
	         u ? u->hash : db->users[0].hash);
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->pass, sizeof(c->pass), "%s", pass);
	c->result = -1;
	return c;
}

void
smtp_auth_check_run(void *arg)
{
	struct smtp_auth_check *c = arg;
	struct crypt_data *cd;
	const char *out;
	size_t n, m;
	unsigned char diff = 0;

	c->result = -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return;
	out = crypt_rn(c->pass, c->hash, cd, (int)sizeof(*cd));
	if (out != NULL && out[0] != '*') {
		n = strlen(out);
		m = strlen(c->hash);
		diff = n != m;
		for (size_t i = 0; i < n && i < m; i++)
			diff |= (unsigned char)(out[i] ^ c->hash[i]);
		c->result = diff == 0 && c->known;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	explicit_bzero(c->pass, sizeof(c->pass));
}

int
smtp_auth_check_result(const struct smtp_auth_check *c)
{
	return c->result;
}

const char *
smtp_auth_check_user(const struct smtp_auth_check *c)
{
	return c->user;
}

void
smtp_auth_check_free(struct smtp_auth_check *c)
{
	if (c == NULL)
		return;
	explicit_bzero(c, sizeof(*c));
	free(c);
}

int
smtp_auth_sender_ok(const struct smtp_auth_db *db, const char *user,
                    const char *sender)
{
	struct auth_user key = {.name = (char *)user}, *u;
	const char *at = strrchr(sender, '@');

	if (db == NULL || db->n == 0)
		return 0;
	u = bsearch(&key, db->users, db->n, sizeof(*db->users), user_cmp);
	if (u == NULL)
		return 0; /* gone in a reload: no longer this user's */
	if (*sender == '\0')
		return 1;
	if (u->senders == NULL) /* only as itself */
		return strchr(u->name, '@') != NULL &&
		       strcasecmp(u->name, sender) == 0;
	if (strcmp(u->senders[0], "*") == 0)
		return 1;
	for (char **p = u->senders; *p != NULL; p++) {
		if ((*p)[0] == '@' ? at != NULL && strcasecmp(*p, at) == 0
		                   : strcasecmp(*p, sender) == 0)
			return 1;
	}
	return 0;
}
