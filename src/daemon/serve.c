/*
 * serve.c - the gateway daemon: configuration, spool, queue runner,
 * pipeline and SMTP server on one event loop; signals.
 *
 * SIGTERM/SIGINT: stop accepting, let sessions in flight finish (a message
 * in DATA is committed or refused), stop the queue (deliveries in progress
 * finish), exit; whatever was not delivered stays in the spool for the
 * next start.  SIGHUP: reload the configuration atomically; a bad file
 * keeps the old one and says why.
 *
 * Observability: the daemon owns the counters (metrics.h) and hands them
 * to the SMTP server, the queue and the pipeline; with `metrics =
 * host:port` it serves them at GET /metrics on the same event loop
 * (evhttp).  That endpoint trusts nothing a client sends (bounded
 * headers and body, a timeout, GET and HEAD only) and reaches only the
 * counters and two gauges.
 */
#include "daemon/serve.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_dl.h"

#include "daemon/alert.h"
#include "daemon/certexpiry.h"
#include "daemon/control.h"
#include "daemon/dsn.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/pipeline.h"
#include "daemon/privs.h"
#include "daemon/quarantine.h"
#include "daemon/queue.h"
#include "daemon/smtp.h"
#include "daemon/spool.h"
#include "store/store.h"

struct daemon {
	struct event_base *base;
	const char *config_path;
	struct cfg *cfg;
	struct cfg **old; /* replaced configurations, alive until exit:
	                   * sessions in flight still point into them */
	size_t nold;
	struct spool *sp;
	struct queue *q;
	struct pipeline *pl;
	struct smtp_server *srv;
	struct metrics *metrics; /* counted by srv, q and pl */
	struct evhttp *http;     /* GET /metrics, when cfg->metrics is set */
	struct event *ev_term, *ev_int, *ev_hup;
	struct quarantine *quar; /* SPOOL/quarantine and SPOOL/release */
	struct control *ctl;     /* SPOOL/control: `smimegate queue` */
	struct alerts *alerts;   /* for the administrator (alert.h) */
	struct event *ev_tick;   /* releases, requests and retention */
	time_t last_expiry;
	struct certexpiry *certs; /* our certificates' expiry alerts */
	struct event *ev_certs;   /* ... checked at start, then every
	                           * alert_cert_expiry_check */
	int stopping;
};

#define TICK_SECONDS   2  /* how soon a released message moves on */
#define EXPIRY_SECONDS 60 /* how often retention is applied, at most */

static void dlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
dlog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, "daemon", fmt, ap);
	va_end(ap);
}

static void
committed(const struct spool_env *env, void *arg)
{
	struct daemon *d = arg;

	if (queue_add(d->q, env) != SG_OK)
		log_err("daemon",
		        "qid=%s event=queue-add-failed (delivered at the next "
		        "start)",
		        env->id);
}

static enum sg_status
q_process(void *arg, struct spool_env *env, int data_fd, int *out_fd,
          char *reason, size_t reasonlen)
{
	struct daemon *d = arg;

	return pipeline_process(d->pl, env, data_fd, out_fd, reason, reasonlen);
}

static enum sg_status
q_deliver(void *arg, struct spool_env *env, int out_fd,
          struct queue_report *rep, char *reply, size_t replylen)
{
	struct daemon *d = arg;

	return pipeline_deliver(d->pl, env, out_fd, rep, reply, replylen);
}

/*
 * Puts the notification DATA (LEN octets) to SENDER into the spool as a
 * new message from the null sender (dsn_env_init: the pipeline passes it
 * through as it is) and schedules it.  *ID gets its queue ID.  SG_OK once
 * it is committed (durable); a failed queue_add only delays it to the
 * next start.  Otherwise the status of the spool.
 */
static enum sg_status
inject(struct daemon *d, const struct cfg *cfg, const char *sender,
       const char *data, size_t len, char *id, size_t idlen)
{
	struct spool_env env;
	struct spool_rx *rx = NULL;
	enum sg_status st;

	if ((st = dsn_env_init(&env, sender, cfg->hostname, 0)) != SG_OK)
		return st;
	if ((st = spool_rx_begin(d->sp, &rx)) != SG_OK)
		goto out;
	if ((st = spool_rx_write(rx, data, len)) != SG_OK) {
		spool_rx_abort(rx);
		goto out;
	}
	if ((st = spool_rx_commit(rx, &env)) != SG_OK) /* frees RX */
		goto out;
	snprintf(id, idlen, "%s", env.id);
	if (queue_add(d->q, &env) != SG_OK)
		log_err("daemon",
		        "qid=%s event=queue-add-failed (delivered at the next "
		        "start)",
		        env.id);
out:
	spool_env_clear(&env);
	return st;
}

/* The pipeline's injector (pipeline.h): a notify() message to RCPT. */
static enum sg_status
inject_notice(void *arg, const char *rcpt, const char *data, size_t len,
              char *id, size_t idlen)
{
	struct daemon *d = arg;

	return inject(d, __atomic_load_n(&d->cfg, __ATOMIC_ACQUIRE), rcpt, data,
	              len, id, idlen);
}

/* Copies DATA_FD (from offset 0) into a new spool message with ENV,
 * commits it (ENV->id set) and schedules it. */
static enum sg_status
spool_copy(struct daemon *d, struct spool_env *env, int data_fd)
{
	struct spool_rx *rx = NULL;
	char buf[65536];
	enum sg_status st;
	off_t off = 0;
	ssize_t n;

	if ((st = spool_rx_begin(d->sp, &rx)) != SG_OK)
		return st;
	while ((n = pread(data_fd, buf, sizeof(buf), off)) > 0) {
		if ((st = spool_rx_write(rx, buf, (size_t)n)) != SG_OK) {
			spool_rx_abort(rx);
			return st;
		}
		off += n;
	}
	if (n < 0) {
		spool_rx_abort(rx);
		return SG_ERR_IO;
	}
	if ((st = spool_rx_commit(rx, env)) != SG_OK) /* frees RX */
		return st;
	committed(env, d);
	return SG_OK;
}

/* The pipeline's splitter (pipeline.h): a copy for some recipients. */
static enum sg_status
split_copy(void *arg, const struct spool_env *orig, int data_fd,
           const size_t *idx, size_t n, const char *policy, int plain, char *id,
           size_t idlen)
{
	struct daemon *d = arg;
	struct spool_env env = *orig;
	char **rcpts = NULL, **notify = NULL, **orcpt = NULL;
	enum sg_status st;

	if ((rcpts = calloc(n + 1, sizeof(*rcpts))) == NULL ||
	    (orig->dsn_notify != NULL &&
	     (notify = calloc(n + 1, sizeof(*notify))) == NULL) ||
	    (orig->dsn_orcpt != NULL &&
	     (orcpt = calloc(n + 1, sizeof(*orcpt))) == NULL)) {
		free(rcpts);
		free(notify);
		return SG_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		rcpts[i] = orig->rcpts[idx[i]]; /* borrowed */
		if (notify != NULL)
			notify[i] = orig->dsn_notify[idx[i]];
		if (orcpt != NULL)
			orcpt[i] = orig->dsn_orcpt[idx[i]];
	}
	env.rcpts = rcpts;
	env.dsn_notify = notify;
	env.dsn_orcpt = orcpt;
	env.nrcpts = n;
	env.policy = (char *)policy;
	env.plain = plain;
	env.attempts = 0;
	env.next_try = 0;
	env.last_error = NULL;
	st = spool_copy(d, &env, data_fd);
	if (st == SG_OK)
		snprintf(id, idlen, "%s", env.id);
	free(rcpts);
	free(notify);
	free(orcpt);
	return st;
}

/* A message released from a quarantine goes back into the spool (a new
 * queue ID, the envelope marked released: the filters do not run again)
 * and to the queue. */
static enum sg_status
requeue(void *arg, const struct spool_env *qenv,
        const struct quarantine_info *info, int data_fd)
{
	struct daemon *d = arg;
	struct spool_env env = *qenv;
	enum sg_status st;

	env.released = 1;
	env.attempts = 0;
	env.next_try = 0;
	env.last_error = NULL;
	if ((st = spool_copy(d, &env, data_fd)) != SG_OK)
		return st;
	dlog("qid=%s event=released from=%s quarantine=%s", env.id, info->id,
	     info->name);
	return SG_OK;
}

static enum sg_status
expired(void *arg, const struct spool_env *env,
        const struct quarantine_info *info, int data_fd)
{
	struct daemon *d = arg;
	const struct cfg_quarantine *cq = cfg_quarantine(d->cfg, info->name);

	(void)env;
	(void)data_fd;
	if (cq != NULL && cq->at_expiry == CFG_EXPIRY_RELEASE) {
		dlog("qid=%s event=expired quarantine=%s action=release",
		     info->id, info->name);
		return quarantine_release(d->quar, info->id);
	}
	dlog("qid=%s event=expired quarantine=%s action=delete", info->id,
	     info->name);
	return SG_OK;
}

/* A request of `smimegate queue` (control.h); each is done at once,
 * logged, and removed. */
static enum sg_status
on_request(void *arg, enum control_verb verb, const char *id)
{
	struct daemon *d = arg;
	enum sg_status st;
	size_t n = 0;
	int later = 0;

	if (verb == CONTROL_FLUSH) {
		st = queue_flush(d->q, id, &n);
		if (st == SG_ERR_NOT_FOUND)
			dlog("qid=%s event=flush-refused reason=not-queued",
			     id);
		else
			dlog("event=flushed %s%s waiting=%zu",
			     id ? "qid=" : "all", id ? id : "", n);
		return SG_OK;
	}
	if (verb == CONTROL_BOUNCE) {
		if (queue_bounce(d->q, id) == SG_ERR_NOT_FOUND)
			dlog("qid=%s event=bounce-refused reason=not-queued",
			     id);
		else
			dlog("qid=%s event=bounce-requested", id);
		return SG_OK;
	}
	st = queue_delete(d->q, id, &later);
	if (st == SG_ERR_NOT_FOUND)
		dlog("qid=%s event=delete-refused reason=not-queued", id);
	else if (later)
		dlog("qid=%s event=delete-pending reason=\"in delivery: it "
		     "goes when this attempt ends, unless it delivers\"",
		     id);
	return SG_OK;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char err[512];
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	if (d->stopping)
		return;
	if (quarantine_take_released(d->quar, requeue, d) != SG_OK) {
		quarantine_error(d->quar, err, sizeof(err));
		log_err("daemon", "event=error op=release reason=\"%s\"",
		        LOG_Q(err));
	}
	if (control_take(d->ctl, on_request, d) != SG_OK)
		log_err("daemon", "event=error op=control reason=\"%s\"",
		        strerror(errno));
	/* Every minute, or as often as the shortest retention asks. */
	time_t every = EXPIRY_SECONDS;
	for (size_t i = 0; i < d->cfg->nquarantines; i++)
		if ((time_t)d->cfg->quarantines[i].retention < every)
			every = (time_t)d->cfg->quarantines[i].retention;
	if (now - d->last_expiry < every)
		return;
	d->last_expiry = now;
	for (size_t i = 0; i < d->cfg->nquarantines; i++) {
		const struct cfg_quarantine *cq = &d->cfg->quarantines[i];

		if (quarantine_expire(d->quar, cq->name,
		                      now - (time_t)cq->retention, expired,
		                      d) != SG_OK) {
			quarantine_error(d->quar, err, sizeof(err));
			log_err("daemon",
			        "event=error op=expire quarantine=%s "
			        "reason=\"%s\"",
			        cq->name, LOG_Q(err));
		}
	}
}

/*
 * The certificate-expiry check (certexpiry.h), at start and then every
 * alert_cert_expiry_check.  It runs on the loop, synchronously, like the
 * quarantine retention above: one read-only listing of our rows (a
 * handful; it waits at most 250 ms for another connection's lock, and
 * WAL readers do not wait for writers) every few hours, and an alert
 * (spooled, signed when notify_signer is set: send_alert) at most once a
 * day per certificate.  A worker thread would cost more than it saves.
 * Time is sg_ctx_now() of the check's own context, the clock the
 * store's lookups use.
 */
static void
on_cert_check(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	const struct cfg *cfg = d->cfg;
	struct timeval next = {(time_t)cfg->alert_cert_expiry_check, 0};
	struct certexpiry_counts c;
	struct sg_ctx *ctx = NULL;
	char err[512] = "";
	enum sg_status st;

	(void)fd;
	(void)what;
	if (d->stopping)
		return;
	if (cfg->alert_cert_expiry > 0) {
		if ((st = sg_ctx_new(&ctx)) == SG_OK)
			st = certexpiry_check(d->certs, ctx, cfg, &c, err,
			                      sizeof(err));
		if (st == SG_OK)
			dlog("event=cert-expiry-checked ours=%zu expiring=%zu "
			     "alerted=%zu within=%us next=%us",
			     c.ours, c.expiring, c.alerted,
			     cfg->alert_cert_expiry,
			     cfg->alert_cert_expiry_check);
		else
			log_err("daemon",
			        "event=error op=cert-expiry status=%s "
			        "reason=\"%s\" (checked again in %us)",
			        sg_status_name(st), LOG_Q(err),
			        cfg->alert_cert_expiry_check);
		sg_ctx_free(ctx);
	}
	if (event_add(d->ev_certs, &next) != 0)
		log_err("daemon", "event=error op=cert-expiry reason=\"cannot "
		                  "schedule the next check\"");
}

/* Seed 000: a notification signed with a certificate nobody trusts does
 * more harm than an unsigned one.  It is the administrator's choice; the
 * log says so. */
static void
warn_self_signed(const struct sg_key *key, const char *qid, const char *name)
{
	struct sg_certs *certs = NULL;
	struct sg_cert_info ci;

	if (sg_key_get_certs(key, &certs) == SG_OK &&
	    sg_certs_count(certs) > 0 &&
	    sg_certs_info(certs, 0, &ci) == SG_OK) {
		if (ci.self_signed)
			log_warn(
			    "daemon",
			    "qid=%s event=dsn-signer-self-signed signer=%s "
			    "(recipients cannot trust it: use a CA-issued "
			    "certificate, or no notify_signer)",
			    qid, name);
		sg_cert_info_clear(&ci);
	}
	sg_certs_free(certs);
}

/* Signs the notification with the key of cfg->notify_signer.  On failure
 * (no such key, expired, not fit to sign, store unavailable) it logs why
 * and returns the status: the caller sends the notification unsigned. */
static enum sg_status
sign_notification(const struct cfg *cfg, const char *qid, const char *dsn,
                  size_t len, char **out, size_t *outlen)
{
	struct sg_ctx *ctx = NULL;
	struct store *st = NULL;
	struct sg_key *key = NULL;
	const char *why = "out of memory";
	enum sg_status rc;

	if ((rc = sg_ctx_new(&ctx)) != SG_OK)
		goto out;
	if ((rc = store_open(ctx, cfg->store_path, cfg->keyfile, &st)) !=
	    SG_OK) {
		why = sg_ctx_error(ctx);
		goto out;
	}
	if ((rc = store_get_key(st, cfg->notify_signer, &key)) != SG_OK) {
		why = rc == SG_ERR_NOT_FOUND ? "no such key in the store"
		                             : store_errmsg(st);
		goto out;
	}
	warn_self_signed(key, qid, cfg->notify_signer);
	if ((rc = dsn_sign(ctx, key, dsn, len, out, outlen)) != SG_OK)
		why = sg_ctx_error(ctx);
out:
	if (rc != SG_OK)
		log_warn("daemon",
		         "qid=%s event=dsn-unsigned signer=%s status=%s "
		         "reason=\"%s\" (sent unsigned)",
		         qid, cfg->notify_signer, sg_status_name(rc),
		         LOG_Q(why));
	sg_key_free(key);
	store_close(st);
	sg_ctx_free(ctx);
	return rc;
}

/* The alerts' sender (alert.h): a short message from the postmaster to
 * alert_to, signed like notifications when notify_signer is set. */
static enum sg_status
send_alert(void *arg, const char *kind, const char *text)
{
	struct daemon *d = arg;
	const struct cfg *cfg = __atomic_load_n(&d->cfg, __ATOMIC_ACQUIRE);
	char msg[4096], date[64], id[SPOOL_ID_LEN + 1];
	char *sig = NULL;
	size_t siglen = 0;
	time_t now = time(NULL);
	struct tm tm;
	enum sg_status rc;
	int n;

	if (cfg->alert_to == NULL) {
		log_warn("alert",
		         "event=alert-not-mailed kind=%s reason=\"no "
		         "alert_to configured\"",
		         kind);
		return SG_OK;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(msg, sizeof(msg),
	             "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
	             "Subject: [smimegate alert] %s on %s\r\n"
	             "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	             "%s\r\n",
	             cfg->postmaster, cfg->alert_to, date, kind, cfg->hostname,
	             text);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return SG_ERR_LIMIT;
	if (cfg->notify_signer != NULL &&
	    sign_notification(cfg, "-", msg, (size_t)n, &sig, &siglen) != SG_OK)
		sig = NULL;
	rc = inject(d, cfg, cfg->alert_to, sig ? sig : msg,
	            sig ? siglen : (size_t)n, id, sizeof(id));
	if (rc == SG_OK)
		dlog("qid=%s event=alert-queued kind=%s to=<%s> signed=%s", id,
		     kind, LOG_ADDR(cfg->alert_to), sig ? "yes" : "no");
	free(sig);
	return rc;
}

/*
 * Notifies the sender of ENV that the N recipients of RCPTS failed for
 * good (EXPIRED: they stayed queued too long): a delivery status
 * notification (RFC 3464), signed when notify_signer is set, spooled from
 * the null sender.  Recipients whose NOTIFY does not ask for failures are
 * left out; never to the null sender, never about a notification.  A
 * temporary failure to build or spool it is returned, so that the queue
 * keeps what it reports and tries again; a permanent one is logged and
 * SG_OK returned (retrying could not help).
 */
static enum sg_status
notify_sender(struct daemon *d, const struct spool_env *env,
              const struct dsn_rcpt *rcpts, size_t n, int expired)
{
	const struct cfg *cfg = __atomic_load_n(&d->cfg, __ATOMIC_ACQUIRE);
	struct dsn_info info = {0};
	struct dsn_rcpt *want = NULL;
	char *text = NULL, *sig = NULL, id[SPOOL_ID_LEN + 1] = "";
	size_t len = 0, siglen = 0;
	enum sg_status rc = SG_OK;
	int fd;

	if (env->mail_from == NULL || env->mail_from[0] == '\0' ||
	    dsn_is_notification(env)) {
		dlog("qid=%s event=dsn-none reason=null-sender", env->id);
		return SG_OK;
	}
	if ((want = calloc(n + 1, sizeof(*want))) == NULL) {
		rc = SG_ERR_NOMEM;
		goto out;
	}
	/* NOTIFY= is per recipient of the envelope. */
	for (size_t i = 0; i < n; i++) {
		const char *notify = NULL, *orcpt = NULL;
		for (size_t j = 0; j < env->nrcpts; j++)
			if (strcmp(env->rcpts[j], rcpts[i].addr) == 0) {
				if (env->dsn_notify)
					notify = env->dsn_notify[j];
				if (env->dsn_orcpt)
					orcpt = env->dsn_orcpt[j];
			}
		if (dsn_wants_failure(notify)) {
			want[info.nrcpts] = rcpts[i];
			want[info.nrcpts++].orcpt = orcpt;
		}
	}
	if (info.nrcpts == 0) {
		dlog("qid=%s event=dsn-none reason=notify", env->id);
		goto out;
	}
	info.hostname = cfg->hostname;
	info.postmaster = cfg->postmaster;
	info.queue_id = env->id;
	info.sender = env->mail_from;
	info.envid = env->dsn_envid;
	info.ret = env->dsn_ret;
	info.arrival = env->received;
	info.expired = expired;
	info.rcpts = want;
	/* Without the data (it vanished), the report goes without it. */
	fd = spool_data_fd(d->sp, env->id);
	rc = dsn_build(&info, fd, &text, &len);
	if (fd >= 0)
		close(fd);
	if (rc != SG_OK)
		goto out;
	if (cfg->notify_signer != NULL &&
	    sign_notification(cfg, env->id, text, len, &sig, &siglen) != SG_OK)
		sig = NULL;
	rc = inject(d, cfg, env->mail_from, sig ? sig : text,
	            sig ? siglen : len, id, sizeof(id));
	if (rc == SG_OK)
		dlog("qid=%s event=dsn-queued dsn=%s to=<%s> recipients=%zu "
		     "signed=%s",
		     env->id, id, LOG_ADDR(env->mail_from), info.nrcpts,
		     sig ? "yes" : "no");
out:
	if (rc != SG_OK) {
		int temporary = sg_status_smtp_code(rc) / 100 == 4;
		log_warn("daemon", "qid=%s event=dsn-failed status=%s (%s)",
		         env->id, sg_status_name(rc),
		         temporary ? "kept to try again"
		                   : "no notification sent");
		if (!temporary)
			rc = SG_OK;
	}
	free(sig);
	free(text);
	free(want);
	return rc;
}

/* The whole message failed permanently or expired: every recipient. */
static enum sg_status
q_bounce(void *arg, const struct spool_env *env, enum sg_status st,
         const char *reason)
{
	static const char expired[] = "expired: ";
	struct dsn_rcpt *rcpts;
	enum sg_status rc;
	int exp = strncmp(reason, expired, strlen(expired)) == 0;

	if (exp)
		reason += strlen(expired);
	if ((rcpts = calloc(env->nrcpts + 1, sizeof(*rcpts))) == NULL)
		return SG_ERR_NOMEM;
	for (size_t i = 0; i < env->nrcpts; i++)
		rcpts[i] = (struct dsn_rcpt){env->rcpts[i], st, reason, NULL};
	rc = notify_sender(arg, env, rcpts, env->nrcpts, exp);
	free(rcpts);
	return rc;
}

/* One recipient failed for good while others were delivered or wait. */
static enum sg_status
q_rcpt_failed(void *arg, const struct spool_env *env, const char *rcpt,
              enum sg_status st, const char *reply)
{
	const struct dsn_rcpt r = {rcpt, st, reply, NULL};

	return notify_sender(arg, env, &r, 1, 0);
}

/* ---- the metrics endpoint ---- */

#define HTTP_TIMEOUT     10   /* seconds for a whole request */
#define HTTP_MAX_HEADERS 8192 /* octets of a request's headers */
#define HTTP_MAX_BODY    1024 /* a GET has none */

/* GET /metrics: the text exposition; any other path 404. */
static void
http_request(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct metrics_gauges g;
	struct evbuffer *body = NULL;
	char *text = NULL;
	size_t len = 0;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	g.queue_size = queue_size(d->q);
	time_t oldest = queue_oldest(d->q), now = time(NULL);
	g.queue_oldest =
	    oldest != 0 && now > oldest ? (size_t)(now - oldest) : 0;
	g.sessions_active = smtp_server_sessions(d->srv);
	if (metrics_render(d->metrics, &g, &text, &len) != SG_OK ||
	    (body = evbuffer_new()) == NULL ||
	    evbuffer_add(body, text, len) != 0 ||
	    evhttp_add_header(evhttp_request_get_output_headers(req),
	                      "Content-Type",
	                      "text/plain; version=0.0.4; charset=utf-8") != 0)
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	else
		evhttp_send_reply(req, HTTP_OK, "OK", body);
	if (body != NULL)
		evbuffer_free(body);
	free(text);
}

/* "host:port" or "[v6]:port" (checked by the configuration) into HOST of
 * HOSTLEN and *PORT.  0 or -1. */
static int
split_hostport(const char *v, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(v, ':'), *h = v;
	size_t hlen;

	if (colon == NULL)
		return -1;
	hlen = (size_t)(colon - v);
	if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') {
		h = v + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= hostlen)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = atoi(colon + 1);
	return *port > 0 && *port < 65536 ? 0 : -1;
}

/* An HTTP server on D's loop bound to ADDR, serving http_request; NULL
 * with ERR when it cannot bind. */
static struct evhttp *
http_open(struct daemon *d, const char *addr, char *err, size_t errlen)
{
	struct evhttp *http;
	char host[256];
	int port;

	if (split_hostport(addr, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen, "metrics %s: not host:port", addr);
		return NULL;
	}
	if ((http = evhttp_new(d->base)) == NULL) {
		snprintf(err, errlen, "metrics %s: out of memory", addr);
		return NULL;
	}
	evhttp_set_timeout(http, HTTP_TIMEOUT);
	evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http, HTTP_MAX_BODY);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(http, http_request, d);
	errno = 0;
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) ==
	    NULL) {
		snprintf(err, errlen, "metrics %s: cannot listen: %s", addr,
		         errno ? strerror(errno) : "bad address");
		evhttp_free(http);
		return NULL;
	}
	return http;
}

static int
same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
stopped(void *arg)
{
	struct daemon *d = arg;

	dlog("event=sessions-closed");
	queue_stop(d->q);
	dlog("event=stopped queued=%zu", spool_count(d->sp));
	event_base_loopexit(d->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (d->stopping)
		return;
	d->stopping = 1;
	dlog("event=stopping signal=%d", (int)sig);
	smtp_server_shutdown(d->srv, stopped, d);
}

/* A signer named in CFG that cannot sign now (missing, expired, not for
 * signing, its key does not open): said to WARN with what follows. */
static void
check_signer(struct store *st, const char *what, const char *name,
             const char *then, serve_warn_fn warn, void *arg)
{
	struct sg_key *k = NULL;
	char w[600];

	if (store_find_sign_key(st, NULL, name, &k) == SG_OK) {
		sg_key_free(k);
		return;
	}
	snprintf(w, sizeof(w), "%s \"%s\" cannot sign: %s; %s", what, name,
	         store_errmsg(st), then);
	warn(arg, w);
}

int
serve_check(const struct cfg *cfg, serve_warn_fn warn, void *arg, char *err,
            size_t errlen)
{
	struct sg_ctx *ctx = NULL;
	struct store *st = NULL;
	enum sg_status rc;
	char what[300];

	if (sg_ctx_new(&ctx) != SG_OK) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = store_open(ctx, cfg->store_path, cfg->keyfile, &st);
	if (rc != SG_OK) {
		snprintf(err, errlen, "store %s: %s", cfg->store_path,
		         sg_ctx_error(ctx));
		sg_ctx_free(ctx);
		return -1;
	}
	for (size_t i = 0; i < cfg->nprofiles; i++) {
		const struct cfg_profile *p = &cfg->profiles[i];

		if (p->signer == NULL)
			continue;
		snprintf(what, sizeof(what), "[profile %s] signer", p->name);
		check_signer(st, what, p->signer, "the mail it signs bounces",
		             warn, arg);
	}
	if (cfg->notify_signer != NULL)
		check_signer(st, "notify_signer", cfg->notify_signer,
		             "notifications go unsigned", warn, arg);
	store_close(st);
	sg_ctx_free(ctx);
	return 0;
}

/* serve_check's warnings, in the log. */
static void
warn_log(void *arg, const char *what)
{
	char safe[800];

	(void)arg;
	log_quote_value(safe, sizeof(safe), what);
	dlog("event=warning reason=\"%s\"", safe);
}

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct cfg *cfg = NULL, **old;
	const struct cfg *old_cfg = d->cfg;
	struct evhttp *http = d->http;
	char err[512];
	int new_log, new_http;

	if (cfg_load(d->config_path, &cfg, err, sizeof(err)) != SG_OK) {
		log_warn("daemon",
		         "event=reload-refused reason=\"%s\" (the running "
		         "configuration stays)",
		         LOG_Q(err));
		return;
	}
	/* the daemon gave up root at start: it cannot become another user */
	if (!same_str(d->cfg->user, cfg->user)) {
		snprintf(err, sizeof(err),
		         "user changed from %s to %s: only a restart changes "
		         "it",
		         d->cfg->user ? d->cfg->user : "none",
		         cfg->user ? cfg->user : "none");
		goto refused;
	}
	if (serve_check(cfg, warn_log, NULL, err, sizeof(err)) == -1)
		goto refused;
	/* Each step can be undone until the SMTP server took the new one. */
	new_log = !same_str(d->cfg->log, cfg->log);
	new_http = !same_str(d->cfg->metrics, cfg->metrics);
	if (new_log && log_open(cfg->log, "smimegate", err, sizeof(err)) == -1)
		goto refused;
	if (new_http)
		http = cfg->metrics
		           ? http_open(d, cfg->metrics, err, sizeof(err))
		           : NULL;
	if ((new_http && cfg->metrics && http == NULL) ||
	    smtp_server_set_cfg(d->srv, cfg, err, sizeof(err)) == -1) {
		if (new_http && http != NULL)
			evhttp_free(http);
		if (new_log)
			(void)log_open(d->cfg->log, "smimegate", NULL, 0);
		goto refused;
	}
	if (new_http) {
		if (d->http != NULL)
			evhttp_free(d->http);
		d->http = http;
		dlog("event=metrics address=%s",
		     cfg->metrics ? cfg->metrics : "none");
	}
	pipeline_set_cfg(d->pl, cfg);
	if ((old = realloc(d->old, (d->nold + 1) * sizeof(*old))) != NULL) {
		d->old = old;
		d->old[d->nold++] = d->cfg;
	} /* else the old one leaks rather than being freed under use */
	/* q_bounce reads it from the queue's threads */
	__atomic_store_n(&d->cfg, cfg, __ATOMIC_RELEASE);
	/* New expiry settings or another store: check now, then at the new
	 * interval. */
	if (old_cfg->alert_cert_expiry != cfg->alert_cert_expiry ||
	    old_cfg->alert_cert_expiry_check != cfg->alert_cert_expiry_check ||
	    !same_str(old_cfg->store_path, cfg->store_path) ||
	    !same_str(old_cfg->keyfile, cfg->keyfile)) {
		struct timeval now = {0, 0};
		(void)event_add(d->ev_certs, &now);
	}
	dlog("event=reloaded config=%s", d->config_path);
	return;
refused:
	log_warn("daemon", "event=reload-refused reason=\"%s\"", LOG_Q(err));
	cfg_free(cfg);
}

/* Each session holds a socket, and a commit or a delivery a few files:
 * raise the soft descriptor limit to the hard one, and say when even that
 * cannot carry max_sessions. */
static void
raise_fd_limit(const struct cfg *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)cfg->max_sessions + 64)
		dlog("event=warning reason=\"descriptor limit %llu is below "
		     "max_sessions %u + 64: sessions beyond it wait\"",
		     (unsigned long long)rl.rlim_cur, cfg->max_sessions);
}

int
serve_run(const char *config_path, char *err, size_t errlen)
{
	struct daemon d = {.config_path = config_path};
	const struct queue_ops ops = {q_process, q_deliver, q_bounce,
	                              q_rcpt_failed};
	struct queue_params qp = {0, 0, 0};
	enum sg_status st;
	int rc = -1, dropped = 0;

	if ((st = cfg_load(config_path, &d.cfg, err, errlen)) != SG_OK)
		return -1;
	if (log_open(d.cfg->log, "smimegate", err, errlen) == -1)
		goto out;
	/* Before anything else opens, and before any thread starts. */
	if ((dropped = privs_drop(d.cfg->user, err, errlen)) == -1)
		goto out;
	if (dropped)
		dlog("event=user user=%s uid=%lu gid=%lu", d.cfg->user,
		     (unsigned long)getuid(), (unsigned long)getgid());
	else if (geteuid() == 0)
		dlog("event=warning reason=\"running as root: set user = "
		     "NAME to run as an unprivileged user (docs/daemon.md)\"");
	if (serve_check(d.cfg, warn_log, NULL, err, errlen) == -1)
		goto out;
	raise_fd_limit(d.cfg);
	/* The libraries opened on first use (src/lib/dl.h), now: one that
	 * cannot be loaded stops the gateway here (the store's SQLite was
	 * loaded by serve_check). */
	if (daemon_dl_load(err, errlen) == NULL ||
	    sg_preload(err, errlen) != SG_OK)
		goto out;
	if (evthread_use_pthreads() != 0 ||
	    (d.base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot set up the event loop");
		goto out;
	}
	if ((st = spool_open(d.cfg->spool_dir, &d.sp, err, errlen)) != SG_OK)
		goto out;
	if (quarantine_open(d.cfg->spool_dir, &d.quar, err, errlen) != SG_OK ||
	    control_open(d.cfg->spool_dir, &d.ctl, err, errlen) != SG_OK)
		goto out;
	if ((d.metrics = metrics_new()) == NULL ||
	    (d.pl = pipeline_new(d.cfg)) == NULL ||
	    (d.q = queue_new(d.sp, d.cfg->workers, &ops, &d)) == NULL ||
	    (d.srv = smtp_server_new(d.base, d.cfg, d.sp, committed, &d)) ==
	        NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pipeline_set_metrics(d.pl, d.metrics);
	pipeline_set_quarantine(d.pl, d.quar);
	pipeline_set_splitter(d.pl, split_copy, &d);
	pipeline_set_injector(d.pl, inject_notice, &d);
	if ((d.alerts = alerts_new(d.metrics, send_alert, &d)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pipeline_set_alerts(d.pl, d.alerts);
	if ((d.certs = certexpiry_new(d.alerts)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	queue_set_metrics(d.q, d.metrics);
	smtp_server_set_metrics(d.srv, d.metrics);
	qp.first_retry = d.cfg->retry_min;
	qp.max_retry = d.cfg->retry_max;
	qp.lifetime = d.cfg->queue_lifetime;
	queue_set_params(d.q, &qp);
	if (smtp_server_listen(d.srv, err, errlen) == -1)
		goto out;
	if (d.cfg->metrics != NULL &&
	    (d.http = http_open(&d, d.cfg->metrics, err, errlen)) == NULL)
		goto out;
	/* Recovery: everything committed before a crash is delivered. */
	if (queue_start(d.q) != SG_OK) {
		snprintf(err, errlen, "cannot start the queue runner");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	d.ev_term = evsignal_new(d.base, SIGTERM, on_stop, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, on_stop, &d);
	d.ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	d.ev_tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
	d.ev_certs = event_new(d.base, -1, 0, on_cert_check, &d);
	struct timeval tick = {TICK_SECONDS, 0}, at_start = {0, 0};
	if (d.ev_term == NULL || d.ev_int == NULL || d.ev_hup == NULL ||
	    d.ev_tick == NULL || d.ev_certs == NULL ||
	    evsignal_add(d.ev_term, NULL) || evsignal_add(d.ev_int, NULL) ||
	    evsignal_add(d.ev_hup, NULL) || event_add(d.ev_tick, &tick) ||
	    event_add(d.ev_certs, &at_start)) {
		snprintf(err, errlen, "cannot install signal handlers");
		goto out;
	}
	for (size_t i = 0; i < d.cfg->nlisteners; i++)
		dlog("event=listening listener=%s address=%s:%d role=%s",
		     d.cfg->listeners[i].name, d.cfg->listeners[i].host,
		     d.cfg->listeners[i].port,
		     d.cfg->listeners[i].role == CFG_OUTGOING ? "outgoing"
		                                              : "incoming");
	if (d.cfg->metrics != NULL)
		dlog("event=metrics address=%s", d.cfg->metrics);
	dlog("event=started queued=%zu delivery=%s", spool_count(d.sp),
	     d.cfg->smarthost ? d.cfg->smarthost : d.cfg->outbox);
	event_base_dispatch(d.base);
	rc = 0;
out:
	if (d.http != NULL)
		evhttp_free(d.http);
	if (d.ev_term)
		event_free(d.ev_term);
	if (d.ev_int)
		event_free(d.ev_int);
	if (d.ev_hup)
		event_free(d.ev_hup);
	if (d.ev_tick)
		event_free(d.ev_tick);
	if (d.ev_certs)
		event_free(d.ev_certs);
	if (d.q != NULL) {
		queue_stop(d.q);
		queue_free(d.q);
	}
	smtp_server_free(d.srv);
	pipeline_free(d.pl);
	quarantine_close(d.quar);
	control_close(d.ctl);
	certexpiry_free(d.certs);
	alerts_free(d.alerts);
	spool_close(d.sp);
	if (d.base) {
		/* Release what the freed sessions left to deferred callbacks.
		 */
		event_base_loop(d.base, EVLOOP_NONBLOCK);
		event_base_free(d.base);
	}
	/* what the user may not open: say which user it was */
	if (rc == -1 && dropped == 1 && errlen > 0) {
		size_t n = strnlen(err, errlen - 1);
		snprintf(err + n, errlen - n, " (running as user %s)",
		         d.cfg->user);
	}
	for (size_t i = 0; i < d.nold; i++)
		cfg_free(d.old[i]);
	free(d.old);
	cfg_free(d.cfg);
	metrics_free(d.metrics);
	log_close();
	return rc;
}
