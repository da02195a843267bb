/*
 * pipeline.c - sign/encrypt on the way out, decrypt/verify on the way in,
 * with the engine and the store (pipeline.h); delivery is in
 * pipeline_deliver.c.
 *
 * Fail closed: a profile that encrypts never sends in clear to a
 * recipient without a certificate; a failed or unknown verification is
 * never reported as pass.
 */
#include "daemon/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/alert.h"
#include "daemon/deliver.h"
#include "daemon/directory.h"
#include "daemon/dsn.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/msgfilter.h"
#include "daemon/quarantine.h"
#include "daemon/pipeline_int.h"
#include "daemon/relay.h"
#include "store/store.h"

#define MAX_LAYERS 4 /* triple wrap is three */

/* What one worker thread keeps: its own library handle and store
 * connection (neither is shared between threads). */
struct worker {
	struct sg_ctx *ctx;
	struct store *st;
	char *store_path;
	struct metrics *metrics; /* the pipeline's */
};

static void
worker_free(void *p)
{
	struct worker *w = p;

	if (w == NULL)
		return;
	store_close(w->st);
	sg_ctx_free(w->ctx);
	free(w->store_path);
	free(w);
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
logf_(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, "pipeline", fmt, ap);
	va_end(ap);
}

struct pipeline *
pipeline_new(const struct cfg *cfg)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));

	if (pl == NULL)
		return NULL;
	if ((pl->relay = relay_new()) == NULL) {
		free(pl);
		return NULL;
	}
	if (pthread_rwlock_init(&pl->lock, NULL) != 0 ||
	    pthread_key_create(&pl->key, worker_free) != 0) {
		relay_free(pl->relay);
		free(pl);
		return NULL;
	}
	pl->cfg = cfg;
	if (cfg->ldap != NULL && (pl->dir = directory_new(cfg->ldap)) == NULL) {
		pipeline_free(pl);
		return NULL;
	}
	return pl;
}

void
pipeline_set_cfg(struct pipeline *pl, const struct cfg *cfg)
{
	struct directory *dir = NULL;
	int keep;

	/* The same directory settings keep the connection and the cache
	 * (the directory holds its own copy of them). */
	pthread_rwlock_rdlock(&pl->lock);
	keep = pl->dir != NULL && cfg_ldap_equal(pl->cfg->ldap, cfg->ldap);
	pthread_rwlock_unlock(&pl->lock);
	if (!keep && cfg->ldap != NULL)
		dir = directory_new(cfg->ldap);
	/* No worker runs under the write lock: an old directory (its
	 * connection and cache) goes with the old configuration. */
	pthread_rwlock_wrlock(&pl->lock);
	if (!keep) {
		directory_free(pl->dir);
		pl->dir = dir;
	}
	pl->cfg = cfg;
	pthread_rwlock_unlock(&pl->lock);
	if (keep)
		logf_("event=reload directory=kept");
}

void
pipeline_set_metrics(struct pipeline *pl, struct metrics *m)
{
	pl->metrics = m;
}

void
pipeline_set_quarantine(struct pipeline *pl, struct quarantine *q)
{
	pl->quar = q;
}

void
pipeline_set_alerts(struct pipeline *pl, struct alerts *a)
{
	pl->alerts = a;
}

void
pipeline_set_injector(struct pipeline *pl, pipeline_inject_fn fn, void *arg)
{
	pl->inject = fn;
	pl->inject_arg = arg;
}

void
pipeline_set_splitter(struct pipeline *pl, pipeline_split_fn fn, void *arg)
{
	pl->split = fn;
	pl->split_arg = arg;
}

void
pipeline_free(struct pipeline *pl)
{
	if (pl == NULL)
		return;
	/* The calling thread's worker; others were freed at thread exit. */
	worker_free(pthread_getspecific(pl->key));
	pthread_setspecific(pl->key, NULL);
	pthread_key_delete(pl->key);
	relay_free(pl->relay);
	directory_free(pl->dir);
	pthread_rwlock_destroy(&pl->lock);
	free(pl);
}

/* This thread's worker, with the store of CFG open. */
static enum sg_status
worker_get(struct pipeline *pl, const struct cfg *cfg, struct worker **out,
           char *reason, size_t rlen)
{
	struct worker *w = pthread_getspecific(pl->key);
	enum sg_status st;

	if (w == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL ||
		    sg_ctx_new(&w->ctx) != SG_OK ||
		    pthread_setspecific(pl->key, w) != 0) {
			worker_free(w);
			snprintf(reason, rlen, "out of memory");
			return SG_ERR_TEMP;
		}
	}
	if (w->st != NULL && strcmp(w->store_path, cfg->store_path) != 0) {
		store_close(w->st); /* the store moved with a reload */
		w->st = NULL;
	}
	if (w->st == NULL) {
		st = store_open(w->ctx, cfg->store_path, cfg->keyfile, &w->st);
		if (st != SG_OK) {
			snprintf(reason, rlen, "store %s: %s", cfg->store_path,
			         sg_ctx_error(w->ctx));
			return SG_ERR_TEMP; /* an admin can fix it: retry */
		}
		free(w->store_path);
		if ((w->store_path = strdup(cfg->store_path)) == NULL) {
			snprintf(reason, rlen, "out of memory");
			return SG_ERR_TEMP;
		}
	}
	w->metrics = pl->metrics;
	*out = w;
	return SG_OK;
}

/* A new unlinked temporary file for a result about EXPECT bytes long: in
 * memory up to SG_TMP_MEMORY_DEFAULT (no inode to create and delete per
 * message), else in the spool directory (sg_tmpfile_open: also where it
 * has no O_TMPFILE). */
static int
tmpfd(const struct cfg *cfg, size_t expect)
{
	int fd;

	if (expect <= SG_TMP_MEMORY_DEFAULT &&
	    (fd = memfd_create("smimegate", MFD_CLOEXEC)) != -1)
		return fd;
	return sg_tmpfile_open(cfg->spool_dir);
}

/* A permanent status or SG_ERR_TEMP for what the engine said. */
static enum sg_status
engine_failed(struct worker *w, enum sg_status st, const char *what,
              char *reason, size_t rlen)
{
	snprintf(reason, rlen, "%s: %s", what, sg_ctx_error(w->ctx));
	return st == SG_ERR_IO || st == SG_ERR_NOMEM || st == SG_ERR_TEMP
	           ? SG_ERR_TEMP
	           : st;
}

/* Runs one engine step from *MSG into a new temporary file, which then
 * becomes *MSG (the old one is freed).  FN is sign, encrypt ... */
struct step {
	enum { STEP_SIGN, STEP_ENCRYPT } kind;
	const struct sg_sign_opts *so;
	const struct sg_encrypt_opts *eo;
};

static enum sg_status
run_step(struct worker *w, const struct cfg *cfg, const struct step *s,
         struct sg_msg **msg, int *fd, char *reason, size_t rlen)
{
	struct sg_sink sink;
	struct sg_msg *next = NULL;
	enum sg_status st;
	int out = tmpfd(cfg, sg_msg_size(*msg));

	if (out == -1) {
		snprintf(reason, rlen, "temporary file: %s", strerror(errno));
		return SG_ERR_TEMP;
	}
	sg_sink_fd(&sink, &out);
	st = s->kind == STEP_SIGN ? sg_sign(w->ctx, *msg, s->so, &sink)
	                          : sg_encrypt(w->ctx, *msg, s->eo, &sink);
	if (st != SG_OK) {
		close(out);
		return engine_failed(
		    w, st, s->kind == STEP_SIGN ? "signing" : "encryption",
		    reason, rlen);
	}
	if (lseek(out, 0, SEEK_SET) == -1 ||
	    (st = sg_msg_open_fd(w->ctx, out, &next)) != SG_OK) {
		close(out);
		snprintf(reason, rlen, "re-reading the result: %s",
		         sg_ctx_error(w->ctx));
		return SG_ERR_TEMP;
	}
	sg_msg_free(*msg);
	*msg = next;
	if (*fd != -1)
		close(*fd);
	*fd = out;
	return SG_OK;
}

/* A copy of the message for N recipients of ENV at IDX; logged. */
static enum sg_status
split_copy(struct pipeline *pl, const struct spool_env *env, int data_fd,
           const size_t *idx, size_t n, const char *policy, int plain,
           char *reason, size_t rlen)
{
	char id[SPOOL_ID_LEN + 1];
	enum sg_status st;

	if (pl->split == NULL) {
		snprintf(reason, rlen, "no way to split the message");
		return SG_ERR_TEMP;
	}
	st = pl->split(pl->split_arg, env, data_fd, idx, n, policy, plain, id,
	               sizeof(id));
	if (st != SG_OK) {
		snprintf(reason, rlen, "copy for %zu recipient(s): %s", n,
		         sg_status_text(st));
		return SG_ERR_TEMP; /* the original stays: nothing is lost */
	}
	logf_("qid=%s event=split copy=%s policy=%s plain=%d recipients=%zu",
	      env->id, id, policy, plain, n);
	return SG_OK;
}

/* An encrypting profile and recipients without a certificate (MISSING,
 * NMISSING of them; HAVE the others): missing_key decides.  SG_OK with
 * *TAKEN = 0 to encrypt for what is left in ENV. */
static enum sg_status
missing_keys(struct pipeline *pl, struct spool_env *env,
             const struct cfg_profile *p, int data_fd, const size_t *have,
             size_t nhave, const size_t *missing, size_t nmissing, int *out_fd,
             int *taken, char *reason, size_t rlen)
{
	const char *policy = env->policy ? env->policy : "-";
	enum sg_status st;

	*taken = 0;
	if (nmissing == 0)
		return SG_OK;
	for (size_t i = 0; i < nmissing; i++)
		logf_("qid=%s rcpt=<%s> decision=%s reason=no-certificate "
		      "profile=%s",
		      env->id, LOG_ADDR(env->rcpts[missing[i]]),
		      p->missing_key == CFG_MISSING_BOUNCE ? "bounce"
		      : p->missing_key == CFG_MISSING_DROP ? "drop"
		                                           : "plain",
		      p->name);
	switch (p->missing_key) {
	case CFG_MISSING_BOUNCE:
		/* Fail closed: never in clear to these recipients. */
		snprintf(reason, rlen,
		         "no encryption certificate for <%s> (profile %s, "
		         "missing_key bounce)",
		         env->rcpts[missing[0]], p->name);
		return SG_ERR_NOT_RECIPIENT;
	case CFG_MISSING_DROP:
		if (nhave == 0) {
			*taken = 1;
			*out_fd = QUEUE_DROPPED;
			snprintf(reason, rlen,
			         "no recipient has a certificate (profile %s, "
			         "missing_key drop)",
			         p->name);
			return SG_OK;
		}
		for (size_t i = nmissing; i-- > 0;)
			queue_env_drop_rcpt(env, missing[i]);
		return SG_OK;
	case CFG_MISSING_SPLIT:
		if (nhave > 0 &&
		    (st = split_copy(pl, env, data_fd, have, nhave, policy, 0,
		                     reason, rlen)) != SG_OK)
			return st;
		if ((st = split_copy(pl, env, data_fd, missing, nmissing,
		                     policy, 1, reason, rlen)) != SG_OK)
			return st;
		*taken = 1;
		*out_fd = QUEUE_SPLIT;
		snprintf(reason, rlen, "split: %zu encrypted, %zu plain", nhave,
		         nmissing);
		return SG_OK;
	}
	return SG_ERR_INTERNAL;
}

/*
 * Revocation of recipients' certificates (docs/revocation.md): a revoked
 * one is never used (the store tries its next candidate; none left: the
 * profile's missing_key applies), an unknown status is used under
 * soft-fail and defers the message under hard-fail.  The trust anchors,
 * where an issuer may be, are read once per message, when first needed.
 */
struct rcpt_check {
	struct worker *w;
	const struct cfg *cfg;
	int hard;
	const char *qid, *rcpt;
	struct sg_certs *trust; /* NULL until read */
	int revoked; /* a candidate was skipped: revoked, or unknown for
	              * good under hard-fail */
	char why[1024];
};

static int
rcpt_veto(void *arg, const struct sg_certs *c)
{
	struct rcpt_check *rc = arg;
	enum sg_revocation_status s;
	char why[400] = "";

	if (rc->cfg->revocation.checker == NULL)
		return 0;
	/* Nothing to ask: unknown for good.  Soft-fail uses it; hard-fail
	 * never will, so it is final (missing_key), not a deferral. */
	if (!sg_revocation_has_source(rc->cfg->revocation.checker, c, 0)) {
		if (!rc->hard)
			return 0;
		logf_("qid=%s rcpt=<%s> event=revocation-unknown action=skip "
		      "reason=\"the certificate names no OCSP responder or "
		      "CRL distribution point, and no CRL file is "
		      "configured (revocation_unknown = hard)\"",
		      rc->qid, LOG_ADDR(rc->rcpt));
		rc->revoked = 1;
		return 1;
	}
	if (rc->trust == NULL &&
	    store_trust_anchors(rc->w->st, &rc->trust) != SG_OK &&
	    sg_certs_new(&rc->trust) != SG_OK) {
		snprintf(rc->why, sizeof(rc->why), "out of memory");
		return -1;
	}
	if (sg_revocation_check(rc->cfg->revocation.checker, rc->w->ctx, c, 0,
	                        rc->trust, &s, why, sizeof(why)) != SG_OK) {
		snprintf(rc->why, sizeof(rc->why), "revocation check: %s",
		         sg_ctx_error(rc->w->ctx));
		return -1;
	}
	switch (s) {
	case SG_REV_GOOD:
		return 0;
	case SG_REV_REVOKED:
		logf_("qid=%s rcpt=<%s> event=certificate-revoked "
		      "reason=\"%s\"",
		      rc->qid, LOG_ADDR(rc->rcpt), LOG_Q(why));
		metrics_inc(rc->w->metrics, METRICS_REVOKED);
		rc->revoked = 1;
		snprintf(rc->why, sizeof(rc->why), "%s", why);
		return 1;
	case SG_REV_UNKNOWN:
		break;
	}
	if (!rc->hard)
		return 0;
	logf_("qid=%s rcpt=<%s> event=revocation-unknown action=defer "
	      "reason=\"%s\"",
	      rc->qid, LOG_ADDR(rc->rcpt), LOG_Q(why));
	snprintf(rc->why, sizeof(rc->why),
	         "revocation status of <%s>'s certificate unknown "
	         "(revocation_unknown = hard): %s",
	         rc->rcpt, why);
	return -1;
}

static enum sg_status
outgoing(struct pipeline *pl, struct worker *w, const struct cfg *cfg,
         const struct cfg_listener *l, const char *profile,
         struct spool_env *env, int data_fd, struct sg_msg **msg, int *fd,
         int *out_fd, int *taken, char *reason, size_t rlen)
{
	size_t *missing = NULL, *have = NULL, nmissing = 0, nhave = 0;
	enum cfg_mode mode;
	const struct cfg_profile *p =
	    cfg_profile(cfg, profile != NULL ? profile : l->profile);
	struct sg_key *key = NULL;
	struct sg_certs *rcpts = NULL, *one;
	struct sg_sign_opts so = {0};
	struct sg_encrypt_opts eo = {0};
	struct step sign = {STEP_SIGN, &so, NULL},
	            enc = {STEP_ENCRYPT, NULL, &eo};
	struct rcpt_check chk = {0};
	enum sg_status st;

	if (p == NULL) {
		snprintf(reason, rlen, "listener %s: no profile %s", l->name,
		         profile != NULL ? profile : l->profile);
		return SG_ERR_TEMP; /* a reload can fix it */
	}
	/* Already protected by the user's own client: not again, unless
	 * the profile wraps it once more (triple). */
	mode = p->mode;
	if (sg_msg_smime_kind(*msg) != SG_KIND_NONE && mode != CFG_TRIPLE) {
		logf_("qid=%s decision=pass-through reason=already-smime",
		      env->id);
		return SG_OK;
	}
	/* The copy for recipients without a certificate (missing_key =
	 * split): signed when the profile signs, never encrypted. */
	if (env->plain) {
		if (mode == CFG_ENCRYPT) {
			for (size_t i = 0; i < env->nrcpts; i++)
				logf_("qid=%s rcpt=<%s> decision=plain "
				      "reason=no-certificate profile=%s",
				      env->id, LOG_ADDR(env->rcpts[i]),
				      p->name);
			return SG_OK;
		}
		mode = CFG_SIGN;
	}
	st = store_find_sign_key(w->st, env->mail_from, p->signer, &key);
	if (st == SG_ERR_NOT_FOUND) {
		snprintf(reason, rlen,
		         "no signing certificate for %s (profile %s, signer "
		         "%s)",
		         *env->mail_from ? env->mail_from : "<>", p->name,
		         p->signer ? p->signer : "by sender");
		return SG_ERR_NOT_FOUND; /* a signing failure bounces */
	}
	if (st != SG_OK) {
		snprintf(reason, rlen, "store: %s", store_errmsg(w->st));
		return SG_ERR_TEMP;
	}
	so.signer = key;
	so.digest = p->digest;
	so.opaque = p->opaque;
	if (mode != CFG_SIGN) {
		if (sg_certs_new(&rcpts) != SG_OK ||
		    (missing = calloc(env->nrcpts + 1, sizeof(*missing))) ==
		        NULL ||
		    (have = calloc(env->nrcpts + 1, sizeof(*have))) == NULL) {
			st = SG_ERR_TEMP;
			goto out;
		}
		chk.w = w;
		chk.cfg = cfg;
		chk.hard = cfg_revocation_hard(cfg, p->revocation_unknown);
		chk.qid = env->id;
		for (size_t i = 0; i < env->nrcpts; i++) {
			chk.rcpt = env->rcpts[i];
			chk.revoked = 0;
			st = store_find_encrypt_cert_vetted(
			    w->st, env->rcpts[i], rcpt_veto, &chk, &one);
			if (st == SG_ERR_TEMP && chk.why[0] != '\0') {
				snprintf(reason, rlen, "%s", chk.why);
				goto out;
			}
			if (st == SG_OK) {
				st = sg_certs_push_from(rcpts, one, 0);
				sg_certs_free(one);
				if (st != SG_OK)
					goto out;
				have[nhave++] = i;
				continue;
			}
			if (st != SG_ERR_NOT_FOUND) {
				snprintf(reason, rlen, "store: %s",
				         store_errmsg(w->st));
				st = SG_ERR_TEMP;
				goto out;
			}
			/* Not in the store: the directory, when there is one.
			 * It being down defers the message (never in clear,
			 * never a bounce for an outage). */
			if (pl->dir != NULL) {
				char why[512];

				st = directory_lookup(pl->dir, w->ctx,
				                      env->rcpts[i], &one, why,
				                      sizeof(why));
				if (st == SG_OK) {
					int v = rcpt_veto(&chk, one);

					if (v == -1) {
						sg_certs_free(one);
						snprintf(reason, rlen, "%s",
						         chk.why);
						st = SG_ERR_TEMP;
						goto out;
					}
					if (v == 1) {
						sg_certs_free(one);
						missing[nmissing++] = i;
						continue;
					}
				}
				if (st == SG_OK) {
					st = sg_certs_push_from(rcpts, one, 0);
					sg_certs_free(one);
					if (st != SG_OK)
						goto out;
					unsigned long q = 0, hits = 0;

					directory_stats(pl->dir, &q, &hits);
					logf_(
					    "qid=%s rcpt=<%s> "
					    "certificate=directory queries=%lu "
					    "hits=%lu",
					    env->id, LOG_ADDR(env->rcpts[i]), q,
					    hits);
					have[nhave++] = i;
					continue;
				}
				if (st == SG_ERR_TEMP) {
					snprintf(reason, rlen, "%s", why);
					goto out;
				}
			}
			missing[nmissing++] = i;
		}
		st = missing_keys(pl, env, p, data_fd, have, nhave, missing,
		                  nmissing, out_fd, taken, reason, rlen);
		if (st != SG_OK || *taken)
			goto out;
		eo.recipients = rcpts;
		eo.cipher = p->cipher;
		eo.oaep = p->oaep;
	}
	switch (mode) {
	case CFG_SIGN:
		st = run_step(w, cfg, &sign, msg, fd, reason, rlen);
		break;
	case CFG_ENCRYPT:
		st = run_step(w, cfg, &enc, msg, fd, reason, rlen);
		break;
	case CFG_SIGN_ENCRYPT:
		if ((st = run_step(w, cfg, &sign, msg, fd, reason, rlen)) ==
		    SG_OK)
			st = run_step(w, cfg, &enc, msg, fd, reason, rlen);
		break;
	case CFG_TRIPLE:
		if ((st = run_step(w, cfg, &sign, msg, fd, reason, rlen)) ==
		        SG_OK &&
		    (st = run_step(w, cfg, &enc, msg, fd, reason, rlen)) ==
		        SG_OK)
			st = run_step(w, cfg, &sign, msg, fd, reason, rlen);
		break;
	}
	if (st == SG_OK) {
		logf_("qid=%s event=%s profile=%s recipients=%zu", env->id,
		      mode == CFG_SIGN           ? "signed"
		      : mode == CFG_ENCRYPT      ? "encrypted"
		      : mode == CFG_SIGN_ENCRYPT ? "signed+encrypted"
		                                 : "triple-wrapped",
		      p->name, env->nrcpts);
		for (size_t i = 0; i < env->nrcpts; i++)
			logf_("qid=%s rcpt=<%s> decision=%s profile=%s",
			      env->id, LOG_ADDR(env->rcpts[i]),
			      mode == CFG_SIGN ? (env->plain ? "plain" : "sign")
			                       : "encrypt",
			      p->name);
		if (mode != CFG_ENCRYPT)
			metrics_inc(w->metrics, METRICS_SIGNED);
		if (mode != CFG_SIGN)
			metrics_inc(w->metrics, METRICS_ENCRYPTED);
	}
out:
	sg_certs_free(chk.trust);
	sg_key_free(key);
	sg_certs_free(rcpts);
	free(missing);
	free(have);
	return st;
}

/* Appends " name=value" with VALUE quoted when it needs to be. */
static void
ar_prop(char *buf, size_t len, const char *name, const char *value)
{
	size_t n = strlen(buf);
	int quote = strpbrk(value, " \t;()\"\\,=") != NULL;

	if (n >= len)
		return;
	snprintf(buf + n, len - n,
	         quote ? "\r\n\tbody.%s=\"" : "\r\n\tbody.%s=", name);
	n = strlen(buf);
	for (const char *c = value; *c && n + 3 < len; c++) {
		if (*c == '"' || *c == '\\')
			buf[n++] = '\\';
		buf[n++] = (*c == '\r' || *c == '\n') ? ' ' : *c;
	}
	buf[n] = '\0';
	if (quote && n + 1 < len) {
		buf[n++] = '"';
		buf[n] = '\0';
	}
}

/* Decrypts *MSG with our key for one of its RecipientInfos.  SG_OK,
 * SG_ERR_NOT_FOUND (none of ours), SG_ERR_TEMP, or a decryption error. */
static enum sg_status
decrypt_layer(struct worker *w, const struct cfg *cfg, struct sg_msg **msg,
              int *fd, char *reason, size_t rlen)
{
	struct sg_recipient_id *ids = NULL;
	struct sg_key *key = NULL;
	struct sg_sink sink;
	struct sg_msg *next = NULL;
	size_t n = 0;
	enum sg_status st;
	int out;

	if ((st = sg_msg_recipients(w->ctx, *msg, &ids, &n)) != SG_OK)
		return engine_failed(w, st, "reading the envelope", reason,
		                     rlen);
	st = SG_ERR_NOT_FOUND;
	for (size_t i = 0; i < n && st == SG_ERR_NOT_FOUND; i++)
		st = store_find_decrypt_key(w->st, &ids[i], &key);
	sg_recipient_ids_free(ids, n);
	if (st != SG_OK) {
		if (st != SG_ERR_NOT_FOUND)
			snprintf(reason, rlen, "store: %s",
			         store_errmsg(w->st));
		return st == SG_ERR_NOT_FOUND ? st : SG_ERR_TEMP;
	}
	if ((out = tmpfd(cfg, sg_msg_size(*msg))) == -1) {
		sg_key_free(key);
		snprintf(reason, rlen, "temporary file: %s", strerror(errno));
		return SG_ERR_TEMP;
	}
	sg_sink_fd(&sink, &out);
	st = sg_decrypt(w->ctx, *msg, key, &sink);
	sg_key_free(key);
	if (st != SG_OK) {
		close(out);
		return engine_failed(w, st, "decryption", reason, rlen);
	}
	if (lseek(out, 0, SEEK_SET) == -1 ||
	    sg_msg_open_fd(w->ctx, out, &next) != SG_OK) {
		close(out);
		snprintf(reason, rlen, "re-reading the decrypted message");
		return SG_ERR_TEMP;
	}
	sg_msg_free(*msg);
	*msg = next;
	if (*fd != -1)
		close(*fd);
	*fd = out;
	return SG_OK;
}

/* The first of NAMES (emails then domains) whose updated certificates
 * reached exactly two within 48 hours, with the domains of the emails
 * checked too; NULL when none did. */
static const char *
update_burst(struct store *st, char **names, char *dom, size_t domlen)
{
	time_t since = time(NULL) - 48 * 3600;
	unsigned n;

	for (size_t i = 0; names != NULL && names[i] != NULL; i++)
		if (store_harvest_updates(st, names[i], since, &n) == SG_OK &&
		    n == 2)
			return names[i];
	for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
		const char *at = strrchr(names[i], '@');

		if (at == NULL)
			continue;
		snprintf(dom, domlen, "%s", at + 1);
		if (store_harvest_updates(st, dom, since, &n) == SG_OK &&
		    n == 2)
			return dom;
	}
	return NULL;
}

/*
 * Harvesting (issue 6): when ENV's mail flow policy says so, the signer's
 * certificate of a message that verified (or any, with
 * harvest_on_failure) is kept for encrypting to that sender later.  Two
 * updated certificates for one address or domain within 48 hours raise
 * an alert, once; a repository over harvest_max_size loses its least
 * recently used certificates, with an alert.  Never fails the message.
 */
static void
harvest(struct pipeline *pl, struct worker *w, const struct cfg *cfg,
        const struct cfg_flow *flow, const struct spool_env *env,
        const struct sg_verify_result *res, int verified)
{
	struct store_harvest_opts o = {0};
	struct store_harvest_out out = {0};
	char source[600], dom[320];
	const char *burst;
	size_t evicted = 0;
	uint64_t total = 0;
	enum sg_status st;

	if (flow == NULL || !flow->harvest || res->certs == NULL)
		return;
	if (!verified && !flow->harvest_on_failure) {
		logf_("qid=%s event=harvest result=skipped reason=\"the "
		      "signature did not verify\"",
		      env->id);
		return;
	}
	/* Self-signed and expired signers fail verification: harvesting
	 * them too is what harvest_on_failure asks. */
	o.store_updated = flow->harvest_updated;
	o.allow_self_signed = o.allow_expired = flow->harvest_on_failure;
	snprintf(source, sizeof(source), "qid=%s from=%s", env->id,
	         env->mail_from ? env->mail_from : "");
	if ((st = store_harvest(w->st, res->certs, 0, source, &o, &out)) !=
	    SG_OK) {
		logf_("qid=%s event=harvest-error status=%s reason=\"%s\"",
		      env->id, sg_status_name(st), LOG_Q(store_errmsg(w->st)));
		return;
	}
	logf_("qid=%s event=harvest result=%s name=%s reason=\"%s\"", env->id,
	      store_harvest_result_name(out.result), out.name ? out.name : "-",
	      LOG_Q(out.reason));
	if (out.result == STORE_HARVEST_NEW ||
	    out.result == STORE_HARVEST_UPDATED)
		metrics_inc(pl->metrics, METRICS_HARVESTED);
	if (out.result == STORE_HARVEST_UPDATED ||
	    (out.result == STORE_HARVEST_SKIPPED &&
	     strncmp(out.reason, "updated", 7) == 0)) {
		if ((burst = update_burst(w->st, out.names, dom,
		                          sizeof(dom))) != NULL)
			alert_raise(
			    pl->alerts, "updated-certificates",
			    "Two updated certificates for %s arrived "
			    "within 48 hours (the last in message %s "
			    "from <%s>). A partner renewing twice in two "
			    "days is unusual: check that both are "
			    "genuine.",
			    burst, env->id,
			    env->mail_from ? env->mail_from : "");
	}
	if ((out.result == STORE_HARVEST_NEW ||
	     out.result == STORE_HARVEST_UPDATED) &&
	    store_harvest_limit(w->st, cfg->harvest_max_size, &evicted,
	                        &total) == SG_OK &&
	    evicted > 0)
		alert_raise(
		    pl->alerts, "harvest-repository-full",
		    "The harvested key repository reached its limit "
		    "(harvest_max_size = %zu bytes): %zu least recently "
		    "used certificate(s) evicted, %llu bytes left.",
		    cfg->harvest_max_size, evicted, (unsigned long long)total);
	store_harvest_out_clear(&out);
}

static enum sg_status
incoming(struct pipeline *pl, struct worker *w, const struct cfg *cfg,
         const struct cfg_listener *l, const struct spool_env *env,
         struct sg_msg **msg, int *fd, char *ar, size_t arlen,
         struct msgfilter_smime *sm, char *reason, size_t rlen)
{
	const struct cfg_flow *flow =
	    env->flow ? cfg_flow(cfg, env->flow) : NULL;
	/* keep or remove a verified signature: the flow's setting, else
	 * the listener's; in a triple wrap the outer one is always opened
	 * to reach the envelope, so this is about the inner one */
	int failed = 0, remove_sig = flow && flow->remove_signature >= 0
	                                 ? flow->remove_signature
	                                 : l->remove_signature;

	struct sg_certs *trust = NULL;
	struct sg_verify_result res;
	enum sg_status st = SG_OK;
	const char *result = "none";
	int decrypted = 0;

	if (flow != NULL && !flow->decrypt_verify) {
		logf_("qid=%s decision=pass-through reason=flow flow=%s",
		      env->id, flow->name);
		ar[0] = '\0';
		return SG_OK;
	}
	snprintf(ar, arlen, "Authentication-Results: %s;", cfg->hostname);
	for (int layer = 0; layer < MAX_LAYERS; layer++) {
		enum sg_smime_kind kind = sg_msg_smime_kind(*msg);

		if (kind == SG_KIND_ENVELOPED ||
		    kind == SG_KIND_AUTH_ENVELOPED) {
			st = decrypt_layer(w, cfg, msg, fd, reason, rlen);
			if (st == SG_ERR_NOT_FOUND) {
				sm->message = sm->encrypted = 1;
				failed = 1; /* not for us: cannot be verified */
				logf_(
				    "qid=%s event=not-decrypted reason=no-key",
				    env->id);
				st = SG_OK;
				break; /* not for our keys: deliver as is */
			}
			if (st == SG_ERR_TEMP)
				goto out;
			sm->message = sm->encrypted = 1;
			if (st != SG_OK) {
				failed = 1;
				logf_(
				    "qid=%s event=decrypt-failed reason=\"%s\"",
				    env->id, LOG_Q(reason));
				result = "permerror";
				st = SG_OK;
				break;
			}
			decrypted = 1;
			logf_("qid=%s event=decrypted", env->id);
			metrics_inc(w->metrics, METRICS_DECRYPTED);
			continue;
		}
		if (kind != SG_KIND_SIGNED_DETACHED &&
		    kind != SG_KIND_SIGNED_OPAQUE)
			break;
		if (trust == NULL &&
		    (st = store_trust_anchors(w->st, &trust)) != SG_OK &&
		    st != SG_ERR_NOT_FOUND) {
			snprintf(reason, rlen, "store: %s",
			         store_errmsg(w->st));
			st = SG_ERR_TEMP;
			goto out;
		}
		if (trust == NULL && sg_certs_new(&trust) != SG_OK) {
			st = SG_ERR_TEMP;
			goto out;
		}
		/* Verify, keeping the content apart in case we remove the
		 * signature or it wraps another layer (triple wrap). */
		int content = tmpfd(cfg, sg_msg_size(*msg));
		struct sg_sink sink;
		struct sg_msg *inner = NULL;
		if (content == -1) {
			snprintf(reason, rlen, "temporary file: %s",
			         strerror(errno));
			st = SG_ERR_TEMP;
			goto out;
		}
		sg_sink_fd(&sink, &content);
		sg_ctx_set_revocation(
		    w->ctx, cfg->revocation.checker,
		    cfg_revocation_hard(cfg,
		                        flow ? flow->revocation_unknown : -1));
		st = sg_verify(w->ctx, *msg, trust, &res, &sink);
		if (st == SG_ERR_REVOCATION_UNKNOWN && !res.revocation_final) {
			/* hard-fail: kept in the queue until the status is
			 * known (or the message expires) */
			snprintf(reason, rlen, "%s", sg_ctx_error(w->ctx));
			logf_("qid=%s event=revocation-unknown action=defer "
			      "reason=\"%s\"",
			      env->id, LOG_Q(reason));
			sg_verify_result_clear(&res);
			close(content);
			st = SG_ERR_TEMP;
			goto out;
		}
		if (st == SG_ERR_REVOKED)
			metrics_inc(w->metrics, METRICS_REVOKED);
		sm->message = sm->signed_ = 1;
		failed |= st != SG_OK;
		if (st == SG_ERR_REVOKED)
			logf_("qid=%s event=harvest result=skipped "
			      "reason=\"the signer's certificate is revoked\"",
			      env->id);
		else
			harvest(pl, w, cfg, flow, env, &res, st == SG_OK);
		result = st == SG_OK                    ? "pass"
		         : sg_status_exit_code(st) == 1 ? "fail"
		                                        : "permerror";
		logf_(
		    "qid=%s event=verified result=%s signer=\"%s\" "
		    "reason=\"%s\" revocation=%s revocation_reason=\"%s\"",
		    env->id, result,
		    LOG_Q(res.signer_subject ? res.signer_subject : ""),
		    LOG_Q(st == SG_OK ? "" : sg_ctx_error(w->ctx)),
		    res.revocation_checked
		        ? sg_revocation_status_name(res.revocation)
		        : "not-checked",
		    LOG_Q(res.revocation_reason ? res.revocation_reason : ""));
		snprintf(ar + strlen(ar), arlen - strlen(ar), " smime=%s",
		         result);
		if (st != SG_OK)
			snprintf(ar + strlen(ar), arlen - strlen(ar), " (%s)",
			         sg_status_name(st));
		if (res.signer_emails && res.signer_emails[0])
			ar_prop(ar, arlen, "smime-identifier",
			        res.signer_emails[0]);
		if (res.signer_serial)
			ar_prop(ar, arlen, "smime-serial", res.signer_serial);
		if (res.signer_issuer)
			ar_prop(ar, arlen, "smime-issuer", res.signer_issuer);
		sg_verify_result_clear(&res);
		int inner_smime = 0;
		if (lseek(content, 0, SEEK_SET) != -1 &&
		    sg_msg_open_fd(w->ctx, content, &inner) == SG_OK) {
			enum sg_smime_kind ik = sg_msg_smime_kind(inner);
			inner_smime = ik == SG_KIND_ENVELOPED ||
			              ik == SG_KIND_AUTH_ENVELOPED;
		}
		/* A verified signature may go (listener setting); an
		 * envelope inside a signature (triple wrap) is opened. */
		if (inner != NULL &&
		    (inner_smime || (remove_sig && st == SG_OK))) {
			sg_msg_free(*msg);
			*msg = inner;
			if (*fd != -1)
				close(*fd);
			*fd = content;
			st = SG_OK;
			if (inner_smime) {
				/* Report the inner signature, not the outer. */
				snprintf(ar, arlen,
				         "Authentication-Results: %s;",
				         cfg->hostname);
				result = "none";
				continue;
			}
			break;
		}
		sg_msg_free(inner);
		close(content);
		st = SG_OK;
		break;
	}
	if (strcmp(result, "none") == 0 || strcmp(result, "permerror") == 0) {
		if (strstr(ar, "smime=") == NULL)
			snprintf(ar + strlen(ar), arlen - strlen(ar),
			         " smime=%s", result);
	}
	(void)decrypted;
	sm->verified = sm->message && !failed;
	snprintf(ar + strlen(ar), arlen - strlen(ar), "\r\n");
	/* RESULT is what Authentication-Results says now */
	metrics_inc(w->metrics, metrics_verified_by_result(result));
out:
	sg_certs_free(trust);
	return st;
}

/*
 * Mail policies: each recipient's policy (the first match of the
 * direction).  All the same: *POL is it (NULL: the default).  Different:
 * one copy per policy is spooled and the message is replaced
 * (*OUT_FD = QUEUE_SPLIT, *TAKEN = 1).  A copy knows its policy
 * (ENV->policy, "-" for the default) and is not split again.
 */
static enum sg_status
by_policy(struct pipeline *pl, const struct cfg *cfg, enum cfg_role dir,
          const struct spool_env *env, int data_fd,
          const struct cfg_policy **pol, int *out_fd, int *taken, char *reason,
          size_t rlen)
{
	const struct cfg_policy **of = NULL;
	size_t *idx = NULL, n;
	char *done = NULL;
	enum sg_status st = SG_OK;
	int same = 1;

	*pol = NULL;
	*taken = 0;
	if (env->policy != NULL) {
		if (strcmp(env->policy, "-") != 0 &&
		    (*pol = cfg_policy(cfg, env->policy)) == NULL)
			logf_("qid=%s event=warning reason=\"policy %s is not "
			      "configured any more: the default applies\"",
			      env->id, env->policy);
		return SG_OK;
	}
	if (cfg->npolicies == 0 || env->nrcpts == 0)
		return SG_OK;
	if ((of = calloc(env->nrcpts, sizeof(*of))) == NULL ||
	    (idx = calloc(env->nrcpts, sizeof(*idx))) == NULL ||
	    (done = calloc(env->nrcpts, 1)) == NULL) {
		snprintf(reason, rlen, "out of memory");
		st = SG_ERR_TEMP;
		goto out;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		of[i] =
		    cfg_policy_match(cfg, dir, env->mail_from, env->rcpts[i]);
		logf_("qid=%s rcpt=<%s> policy=%s", env->id,
		      LOG_ADDR(env->rcpts[i]), of[i] ? of[i]->name : "-");
		same &= of[i] == of[0];
	}
	if (same) {
		*pol = of[0];
		goto out;
	}
	for (size_t i = 0; i < env->nrcpts && st == SG_OK; i++) {
		if (done[i])
			continue;
		n = 0;
		for (size_t j = i; j < env->nrcpts; j++)
			if (!done[j] && of[j] == of[i]) {
				done[j] = 1;
				idx[n++] = j;
			}
		st = split_copy(pl, env, data_fd, idx, n,
		                of[i] ? of[i]->name : "-", env->plain, reason,
		                rlen);
	}
	if (st == SG_OK) {
		*taken = 1;
		*out_fd = QUEUE_SPLIT;
		snprintf(reason, rlen, "split by mail policy");
	}
out:
	free(of);
	free(idx);
	free(done);
	return st;
}

/* What the filters decided for the rest of the pipeline. */
#define MAX_HEADER_EDITS 32
struct decision {
	const struct filter_action *final; /* quarantine, drop, bounce,
	                                    * deliver, smime final, or NULL */
	const char *profile;               /* a sending profile, or NULL */
	char add[8192];                    /* add-header() lines, CRLF */
	const char *remove[MAX_HEADER_EDITS + 1];
	size_t nremove;
};

/* Logs each action of FR and gathers what the pipeline has to do. */
static void
decide(const struct spool_env *env, const struct filter_result *fr,
       struct decision *d)
{
	for (size_t i = 0; i < fr->n; i++) {
		const struct filter_action *a = &fr->v[i];
		size_t n = strlen(d->add);

		logf_("qid=%s event=filter filter=%s line=%u action=%s%s%s%s",
		      env->id, a->filter, a->line, filter_action_name(a->kind),
		      a->arg1 ? " arg=\"" : "", a->arg1 ? a->arg1 : "",
		      a->arg1 ? "\"" : "");
		switch (a->kind) {
		case FA_QUARANTINE:
		case FA_DROP:
		case FA_BOUNCE:
		case FA_DELIVER:
			d->final = a;
			break;
		case FA_SMIME_FINAL:
			d->final = a;
			d->profile = a->arg1;
			break;
		case FA_SMIME_ON_DELIVERY:
			d->profile = a->arg1;
			break;
		case FA_ADD_HEADER:
			/* The loader checked the name and refused control
			 * characters in the value: one header line. */
			if (n + strlen(a->arg1) + strlen(a->arg2) + 5 <
			    sizeof(d->add))
				snprintf(d->add + n, sizeof(d->add) - n,
				         "%s: %s\r\n", a->arg1, a->arg2);
			break;
		case FA_REMOVE_HEADER:
			if (d->nremove < MAX_HEADER_EDITS)
				d->remove[d->nremove++] = a->arg1;
			break;
		case FA_NOTIFY:
		case FA_LOG:
		case FA_SKIP:
			break; /* logged above */
		}
	}
	d->remove[d->nremove] = NULL;
}

/* notify("addr"): a short text message to ADDR about ENV's message,
 * from the postmaster; a failure is logged, never holds the message. */
static void
notify(struct pipeline *pl, const struct cfg *cfg, const struct spool_env *env,
       struct sg_msg *msg, const struct filter_action *a)
{
	char text[4096], id[SPOOL_ID_LEN + 1], date[64];
	char **subjects = msg ? sg_msg_header_all(msg, "Subject") : NULL;
	char *subject = subjects ? subjects[0] : NULL;
	time_t now = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* The subject as it came, cut, without line ends. */
	if (subject != NULL) {
		for (char *c = subject; *c != '\0'; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
		if (strlen(subject) > 200)
			subject[200] = '\0';
	}
	n = snprintf(text, sizeof(text),
	             "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
	             "Subject: smimegate: filter %s matched message %s\r\n"
	             "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	             "The filter %s (line %u) matched a message on %s.\r\n\r\n"
	             "Queue ID:   %s\r\nSender:     <%s>\r\n"
	             "Recipients: %zu, the first <%s>\r\nSubject:    %s\r\n",
	             cfg->postmaster, a->arg1, date, a->filter, env->id,
	             a->filter, a->line, cfg->hostname, env->id,
	             env->mail_from ? env->mail_from : "", env->nrcpts,
	             env->nrcpts ? env->rcpts[0] : "", subject ? subject : "");
	sg_strv_free(subjects);
	if (n < 0 || (size_t)n >= sizeof(text) || pl->inject == NULL ||
	    pl->inject(pl->inject_arg, a->arg1, text, (size_t)n, id,
	               sizeof(id)) != SG_OK) {
		logf_("qid=%s event=notify-failed to=<%s> filter=%s", env->id,
		      LOG_ADDR(a->arg1), a->filter);
		return;
	}
	logf_("qid=%s event=notified to=<%s> notification=%s filter=%s",
	      env->id, LOG_ADDR(a->arg1), id, a->filter);
}

/* Puts the message of FD into the quarantine A names: SG_OK and
 * *OUT_FD = QUEUE_QUARANTINED, or SG_ERR_TEMP (kept in the spool, tried
 * again: a quarantine that cannot take it never loses it). */
static enum sg_status
quarantine_it(struct pipeline *pl, const struct spool_env *env, int fd,
              const struct filter_action *a, int *out_fd, char *reason,
              size_t rlen)
{
	char why[256], err[512];

	if (pl->quar == NULL) {
		snprintf(reason, rlen, "quarantine %s: no quarantine area",
		         a->arg1);
		return SG_ERR_TEMP;
	}
	snprintf(why, sizeof(why), "message filter %s, line %u", a->filter,
	         a->line);
	if (quarantine_put(pl->quar, a->arg1, env, fd, a->filter, why) !=
	    SG_OK) {
		quarantine_error(pl->quar, err, sizeof(err));
		snprintf(reason, rlen, "quarantine %s: %s", a->arg1, err);
		return SG_ERR_TEMP;
	}
	metrics_inc(pl->metrics, METRICS_QUARANTINED);
	snprintf(reason, rlen, "quarantine %s by %s", a->arg1, a->filter);
	*out_fd = QUEUE_QUARANTINED;
	return SG_OK;
}

/* The final actions that take the message out of the way: quarantine,
 * drop, bounce.  SG_OK with *TAKEN = 0 when none of them applies. */
static enum sg_status
take(struct pipeline *pl, const struct spool_env *env, const struct decision *d,
     int fd, int *out_fd, int *taken, char *reason, size_t rlen)
{
	*taken = 0;
	if (d->final == NULL)
		return SG_OK;
	switch (d->final->kind) {
	case FA_QUARANTINE:
		*taken = 1;
		return quarantine_it(pl, env, fd, d->final, out_fd, reason,
		                     rlen);
	case FA_DROP:
		*taken = 1;
		snprintf(reason, rlen, "dropped by %s", d->final->filter);
		metrics_inc(pl->metrics, METRICS_DROPPED);
		*out_fd = QUEUE_DROPPED;
		return SG_OK;
	case FA_BOUNCE:
		*taken = 1;
		snprintf(reason, rlen, "refused by the gateway's policy (%s)",
		         d->final->filter);
		return SG_ERR_POLICY;
	default:
		return SG_OK;
	}
}

/* The message filters, then the content filters of POL (if any), on MSG;
 * D gets what they decided. */
static enum sg_status
run_filters(struct pipeline *pl, struct worker *w, const struct cfg *cfg,
            const struct cfg_policy *pol, const struct spool_env *env,
            struct sg_msg *msg, const struct msgfilter_smime *sm,
            struct filter_result *fr, struct decision *d, char *reason,
            size_t rlen)
{
	enum sg_status st = SG_OK;

	if (cfg->message_filters != NULL)
		st = msgfilter_run(w->ctx, cfg->message_filters, msg, env, sm,
		                   fr, reason, rlen);
	if (st == SG_OK && pol != NULL && pol->content_filters != NULL &&
	    !fr->final)
		st = msgfilter_run(w->ctx, pol->content_filters, msg, env, sm,
		                   fr, reason, rlen);
	if (st == SG_OK) {
		decide(env, fr, d);
		for (size_t i = 0; i < fr->n; i++)
			if (fr->v[i].kind == FA_NOTIFY)
				notify(pl, cfg, env, msg, &fr->v[i]);
	}
	return st;
}

enum sg_status
pipeline_process(struct pipeline *pl, struct spool_env *env, int data_fd,
                 int *out_fd, char *reason, size_t rlen)
{
	const struct cfg *cfg;
	const struct cfg_listener *l;
	struct worker *w;
	struct sg_msg *msg = NULL;
	struct sg_sink sink;
	struct msgfilter_smime sm = {0};
	struct filter_result fr;
	struct decision d;
	const struct cfg_policy *pol = NULL;
	char ar[2048] = "";
	int fd = -1, out = -1, taken = 0;
	enum sg_status st;

	reason[0] = '\0';
	if (dsn_is_notification(env)) { /* our own, final as spooled */
		*out_fd = data_fd;
		return SG_OK;
	}
	filter_result_init(&fr);
	memset(&d, 0, sizeof(d));
	pthread_rwlock_rdlock(&pl->lock);
	cfg = pl->cfg;
	if ((st = worker_get(pl, cfg, &w, reason, rlen)) != SG_OK)
		goto out;
	if ((l = cfg_listener(cfg, env->listener)) == NULL) {
		snprintf(reason, rlen, "no listener %s any more",
		         env->listener);
		st = SG_ERR_TEMP; /* a reload took it away; keep the mail */
		goto out;
	}
	if (env->released && l->role == CFG_INCOMING) {
		/* quarantined after its processing: delivered as it is */
		*out_fd = data_fd;
		st = SG_OK;
		goto out;
	}
	/* The spooled data is read in place; results go to temporary
	 * files, each becoming the input of the next step. */
	if ((st = sg_msg_open_fd(w->ctx, data_fd, &msg)) != SG_OK) {
		snprintf(reason, rlen, "malformed message: %s",
		         sg_ctx_error(w->ctx));
		goto out;
	}
	/* Recipients of different mail policies: one copy each. */
	st = by_policy(pl, cfg, l->role, env, data_fd, &pol, out_fd, &taken,
	               reason, rlen);
	if (st != SG_OK || taken)
		goto out;
	/* Outgoing, the message filters, then the policy's content filters,
	 * see the message as the user sent it; incoming, as the S/MIME
	 * steps left it (decrypted, verified).  A message released from a
	 * quarantine does not meet them again. */
	if (l->role == CFG_OUTGOING) {
		if (!env->released) {
			st = run_filters(pl, w, cfg, pol, env, msg, &sm, &fr,
			                 &d, reason, rlen);
			if (st != SG_OK)
				goto out;
			st = take(pl, env, &d, data_fd, out_fd, &taken, reason,
			          rlen);
			if (taken)
				goto out;
		}
		st = outgoing(pl, w, cfg, l,
		              d.profile ? d.profile
		              : pol     ? pol->profile
		                        : NULL,
		              env, data_fd, &msg, &fd, out_fd, &taken, reason,
		              rlen);
		if (st == SG_OK && taken)
			goto out;
	} else {
		st = incoming(pl, w, cfg, l, env, &msg, &fd, ar, sizeof(ar),
		              &sm, reason, rlen);
		if (st == SG_OK)
			st = run_filters(pl, w, cfg, pol, env, msg, &sm, &fr,
			                 &d, reason, rlen);
	}
	if (st != SG_OK)
		goto out;
	/* The result: on the way in with Authentication-Results first and
	 * any forged one claiming to be us removed (RFC 8601 5); the
	 * filters' header edits. */
	if ((out = tmpfd(cfg, sg_msg_size(msg))) == -1) {
		snprintf(reason, rlen, "temporary file: %s", strerror(errno));
		st = SG_ERR_TEMP;
		goto out;
	}
	{
		char prepend[sizeof(ar) + sizeof(d.add)];

		snprintf(prepend, sizeof(prepend), "%s%s", ar, d.add);
		sg_sink_fd(&sink, &out);
		st = sg_msg_write_edited(
		    w->ctx, msg, prepend[0] ? prepend : NULL,
		    "Authentication-Results", cfg->hostname, d.remove, &sink);
	}
	if (st != SG_OK || lseek(out, 0, SEEK_SET) == -1) {
		snprintf(reason, rlen, "writing the result: %s",
		         sg_ctx_error(w->ctx));
		st = SG_ERR_TEMP;
		goto out;
	}
	if (l->role == CFG_INCOMING) {
		st = take(pl, env, &d, out, out_fd, &taken, reason, rlen);
		if (taken)
			goto out;
	}
	*out_fd = out;
	out = -1;
out:
	pthread_rwlock_unlock(&pl->lock);
	filter_result_clear(&fr);
	sg_msg_free(msg);
	if (fd != -1)
		close(fd);
	if (out != -1)
		close(out);
	return st;
}
