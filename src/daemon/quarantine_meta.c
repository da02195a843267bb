/*
 * quarantine_meta.c - the text of a .meta file, the metadata of one
 * quarantined message (quarantine_int.h; the format is
 * docs/quarantine.md): "version 1", then one "key value" line per field
 * and per recipient, then "end".  Values are percent-encoded (bytes up to
 * 0x20, 0x7f and '%'), so a value is one word on its line.
 *
 * What it trusts: nothing of the text it parses, which may be damaged or
 * written by a newer version: every value and the recipient count are
 * bounded, a key given twice, a required key missing, a bad escape or
 * number, a line cut short and text after "end" are refused with the
 * line they are on; keys it does not know are skipped.  What it can
 * reach: nothing but memory (no file, no handle, no global); quarantine.c
 * reads and writes the files.
 */
#include "daemon/quarantine_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/kvtext.h"
#include "daemon/quarantine.h"
#include "daemon/reason.h"
#include "daemon/spool.h"
#include "smimegate.h"

/* ---- writing ---- */

static int
too_long(const char *v)
{
	return v != NULL &&
	       strnlen(v, QUARANTINE_VALUE_MAX + 1) > QUARANTINE_VALUE_MAX;
}

enum sg_status
quarantine_meta_check(const struct spool_env *env, const char *rule)
{
	if (env->nrcpts > QUARANTINE_RCPT_MAX || too_long(env->mail_from) ||
	    too_long(env->listener) || too_long(env->client) ||
	    too_long(env->helo) || too_long(env->dsn_ret) ||
	    too_long(env->dsn_envid) || too_long(rule))
		return SG_ERR_LIMIT;
	if (env->nrcpts > 0 && env->rcpts == NULL)
		return SG_ERR_USAGE;
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i] == NULL)
			return SG_ERR_USAGE;
		if (too_long(env->rcpts[i]) ||
		    (env->dsn_notify && too_long(env->dsn_notify[i])) ||
		    (env->dsn_orcpt && too_long(env->dsn_orcpt[i])))
			return SG_ERR_LIMIT;
	}
	return SG_OK;
}

/* The bytes of REASON kept: at most QUARANTINE_REASON_MAX, not ending
 * inside a UTF-8 sequence. */
static size_t
reason_len(const char *reason)
{
	size_t n = strnlen(reason, QUARANTINE_REASON_MAX + 1);

	if (n <= QUARANTINE_REASON_MAX)
		return n;
	n = QUARANTINE_REASON_MAX;
	while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* The text of a .meta file (quarantine_meta_check passed). */
static enum sg_status
meta_format(struct kv_buf *b, const char *name, const struct spool_env *env,
            const char *rule, const char *reason, time_t when, uint64_t size)
{
	kv_str(b, "version 1\n");
	kv_put(b, "id", env->id, SIZE_MAX);
	kv_put(b, "quarantine", name, SIZE_MAX);
	kv_num(b, "quarantined", (long long)when);
	kv_num(b, "size", (long long)size);
	kv_put(b, "rule", rule, SIZE_MAX);
	if (reason != NULL) {
		kv_str(b, "reason ");
		kv_enc(b, reason, reason_len(reason));
		kv_add(b, "\n", 1);
	}
	kv_num(b, "received", (long long)env->received);
	spool_env_put_sender(b, env, SIZE_MAX);
	spool_env_put_rcpts(b, env, SIZE_MAX);
	kv_str(b, "end\n");
	if (b->oom)
		return SG_ERR_NOMEM;
	return b->len > QUARANTINE_META_MAX ? SG_ERR_LIMIT : SG_OK;
}

enum sg_status
quarantine_meta_format(const char *name, const struct spool_env *env,
                       const char *rule, const char *reason, time_t when,
                       uint64_t size, char **text, size_t *len)
{
	struct kv_buf b = {0};
	enum sg_status st;

	st = meta_format(&b, name, env, rule, reason, when, size);
	if (st != SG_OK) {
		free(b.p);
		return st;
	}
	*text = b.p;
	*len = b.len;
	return SG_OK;
}

/* ---- reading ---- */

enum meta_kind { M_STR, M_TIME, M_SIZE, M_INT, M_ID, M_NAME };

/* The single-valued keys ("rcpt" repeats; "version" and "end" frame). */
static const struct meta_field {
	const char *key;
	enum meta_kind kind;
	int in_env; /* the offset is in info->env, else in info */
	size_t off;
	int required;
} meta_fields[] = {
    {"id", M_ID, 0, offsetof(struct quarantine_info, id), 1},
    {"quarantine", M_NAME, 0, offsetof(struct quarantine_info, name), 1},
    {"quarantined", M_TIME, 0, offsetof(struct quarantine_info, quarantined),
     1},
    {"size", M_SIZE, 0, offsetof(struct quarantine_info, size), 1},
    {"rule", M_STR, 0, offsetof(struct quarantine_info, rule), 0},
    {"reason", M_STR, 0, offsetof(struct quarantine_info, reason), 0},
    {"received", M_TIME, 1, offsetof(struct spool_env, received), 0},
    {"mail_from", M_STR, 1, offsetof(struct spool_env, mail_from), 1},
    {"listener", M_STR, 1, offsetof(struct spool_env, listener), 0},
    {"role", M_INT, 1, offsetof(struct spool_env, role), 0},
    {"client", M_STR, 1, offsetof(struct spool_env, client), 0},
    {"helo", M_STR, 1, offsetof(struct spool_env, helo), 0},
    {"dsn_ret", M_STR, 1, offsetof(struct spool_env, dsn_ret), 0},
    {"dsn_envid", M_STR, 1, offsetof(struct spool_env, dsn_envid), 0},
};
#define N_FIELDS (sizeof(meta_fields) / sizeof(*meta_fields))

/* The parser's state between lines. */
struct meta_parser {
	struct quarantine_info *info;
	size_t cap;         /* room of env.rcpts and env.dsn_notify */
	unsigned long seen; /* bit I: meta_fields[I] was given */
	int any_notify, any_orcpt;
	unsigned lineno;
	char *why; /* the reason a file is refused */
	size_t whylen;
};

/* Sets the reason a file is refused: "line N: ...". */
static void __attribute__((format(printf, 2, 3)))
mp_err(struct meta_parser *mp, const char *fmt, ...)
{
	char text[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reason_set(mp->why, mp->whylen, "line %u: %s", mp->lineno, text);
}

/* "rcpt ADDR" or "rcpt ADDR NOTIFY". */
static enum sg_status
meta_rcpt(struct meta_parser *mp, const char *val, size_t vlen)
{
	struct spool_env *env = &mp->info->env;
	const char *why;
	enum sg_status st;

	st = spool_env_read_rcpt(env, val, vlen, &mp->cap, QUARANTINE_RCPT_MAX,
	                         QUARANTINE_VALUE_MAX, &why);
	if (st != SG_OK) {
		mp_err(mp, "%s", why);
		return st == SG_ERR_LIMIT ? SG_ERR_IO : st;
	}
	mp->any_notify |= env->dsn_notify[env->nrcpts - 1] != NULL;
	return SG_OK;
}

/* One "key value" line other than version and end. */
static enum sg_status
meta_set(struct meta_parser *mp, const char *key, size_t klen, const char *val,
         size_t vlen)
{
	const struct meta_field *f = NULL;
	enum sg_status st;
	long long n;
	char *v, *field;
	size_t i;

	if (klen == 4 && memcmp(key, "rcpt", 4) == 0)
		return meta_rcpt(mp, val, vlen);
	if (klen == 5 && memcmp(key, "orcpt", 5) == 0) {
		/* the ORCPT of the recipient before it */
		const char *why;

		st = spool_env_read_orcpt(&mp->info->env, val, vlen,
		                          QUARANTINE_VALUE_MAX, &why);
		if (st != SG_OK) {
			mp_err(mp, "%s", why);
			return st;
		}
		mp->any_orcpt = 1;
		return SG_OK;
	}
	for (i = 0; i < N_FIELDS; i++)
		if (strlen(meta_fields[i].key) == klen &&
		    memcmp(meta_fields[i].key, key, klen) == 0) {
			f = &meta_fields[i];
			break;
		}
	if (f == NULL)
		return SG_OK; /* a newer writer's key */
	if (mp->seen & (1ul << i)) {
		mp_err(mp, "\"%s\" given twice", f->key);
		return SG_ERR_IO;
	}
	mp->seen |= 1ul << i;
	if ((v = kv_decode(val, vlen, QUARANTINE_VALUE_MAX, &st)) == NULL) {
		mp_err(mp, "bad value of \"%s\"", f->key);
		return st;
	}
	field =
	    (f->in_env ? (char *)&mp->info->env : (char *)mp->info) + f->off;
	st = SG_OK;
	switch (f->kind) {
	case M_STR:
		*(char **)field = v;
		return SG_OK;
	case M_ID:
		if (quarantine_id_valid(v))
			memcpy(field, v, SPOOL_ID_LEN + 1);
		else
			st = SG_ERR_IO;
		break;
	case M_NAME:
		if (quarantine_name_valid(v))
			memcpy(field, v, strlen(v) + 1);
		else
			st = SG_ERR_IO;
		break;
	case M_TIME:
		if (kv_parse_num(v, LLONG_MAX, &n) == 0)
			*(time_t *)field = (time_t)n;
		else
			st = SG_ERR_IO;
		break;
	case M_SIZE:
		if (kv_parse_num(v, (long long)QUARANTINE_MSG_MAX, &n) == 0)
			*(uint64_t *)field = (uint64_t)n;
		else
			st = SG_ERR_IO;
		break;
	case M_INT:
		if (kv_parse_num(v, INT_MAX, &n) == 0)
			*(int *)field = (int)n;
		else
			st = SG_ERR_IO;
		break;
	}
	if (st != SG_OK)
		mp_err(mp, "bad value of \"%s\"", f->key);
	free(v);
	return st;
}

enum sg_status
quarantine_meta_parse(const char *text, size_t len, struct quarantine_info *out,
                      char *why, size_t whylen)
{
	struct meta_parser mp = {.info = out, .why = why, .whylen = whylen};
	enum sg_status st = SG_ERR_IO;
	size_t pos = 0;
	unsigned lineno = 0;
	int ended = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *line = text + pos, *nl, *sp;
		size_t llen;

		mp.lineno = ++lineno;
		if (ended) {
			reason_set(why, whylen, "line %u: text after \"end\"",
			           lineno);
			goto fail;
		}
		if ((nl = memchr(line, '\n', len - pos)) == NULL) {
			reason_set(why, whylen, "line %u: cut short", lineno);
			goto fail;
		}
		llen = (size_t)(nl - line);
		pos += llen + 1;
		if (lineno == 1) {
			if (llen < 9 || memcmp(line, "version ", 8) != 0) {
				reason_set(why, whylen,
				           "line 1: not \"version "
				           "N\"");
				goto fail;
			}
			if (llen != 9 || line[8] != '1') {
				reason_set(
				    why, whylen,
				    "line 1: unknown version (newer than "
				    "this program)");
				st = SG_ERR_UNSUPPORTED;
				goto fail;
			}
			continue;
		}
		if (llen == 3 && memcmp(line, "end", 3) == 0) {
			ended = 1;
			continue;
		}
		sp = memchr(line, ' ', llen);
		if (sp == NULL || sp == line) {
			reason_set(why, whylen, "line %u: not \"key value\"",
			           lineno);
			goto fail;
		}
		st = meta_set(&mp, line, (size_t)(sp - line), sp + 1,
		              llen - (size_t)(sp - line) - 1);
		if (st != SG_OK) {
			if (st == SG_ERR_NOMEM)
				mp_err(&mp, "out of memory");
			goto fail;
		}
		st = SG_ERR_IO;
	}
	if (lineno == 0) {
		reason_set(why, whylen, "empty");
		goto fail;
	}
	if (!ended) {
		reason_set(why, whylen, "cut short (no \"end\" line)");
		goto fail;
	}
	for (size_t i = 0; i < N_FIELDS; i++)
		if (meta_fields[i].required && !(mp.seen & (1ul << i))) {
			reason_set(why, whylen, "no \"%s\"",
			           meta_fields[i].key);
			goto fail;
		}
	memcpy(out->env.id, out->id, sizeof(out->env.id));
	if (!mp.any_notify) { /* kept only when some recipient has one */
		free(out->env.dsn_notify);
		out->env.dsn_notify = NULL;
	}
	if (!mp.any_orcpt) {
		free(out->env.dsn_orcpt);
		out->env.dsn_orcpt = NULL;
	}
	if (out->env.rcpts == NULL &&
	    (out->env.rcpts = calloc(1, sizeof(char *))) == NULL) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	return SG_OK;
fail:
	quarantine_info_clear(out);
	return st;
}
