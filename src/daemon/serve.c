/*
 * serve.c - the gateway daemon: configuration, spool, queue runner,
 * pipeline and SMTP server on one event loop; signals.
 *
 * SIGTERM/SIGINT: stop accepting, let sessions in flight finish (a message
 * in DATA is committed or refused), stop the queue (deliveries in progress
 * finish), exit; whatever was not delivered stays in the spool for the
 * next start.  SIGHUP: reload the configuration atomically; a bad file
 * keeps the old one and says why.
 */
#include "daemon/serve.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "daemon/pipeline.h"
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
	struct event *ev_term, *ev_int, *ev_hup;
	int stopping;
};

static void dlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
dlog(const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "smimegate[%d]: daemon: %s\n", (int)getpid(), line);
}

static void
committed(const struct spool_env *env, void *arg)
{
	struct daemon *d = arg;

	if (queue_add(d->q, env) != SG_OK)
		dlog("qid=%s event=queue-add-failed (delivered at the next "
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
q_deliver(void *arg, const struct spool_env *env, int out_fd, char *reply,
          size_t replylen)
{
	struct daemon *d = arg;

	return pipeline_deliver(d->pl, env, out_fd, reply, replylen);
}

static void
q_bounce(void *arg, const struct spool_env *env, enum sg_status st,
         const char *reason)
{
	/* Delivery status notifications (RFC 3464) come with the next step
	 * of the daemon; until then the failure is logged with its reason. */
	dlog("qid=%s event=bounce-not-sent status=%s from=<%s> reason=\"%s\"",
	     env->id, sg_status_name(st), env->mail_from, reason);
	(void)arg;
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

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct cfg *cfg = NULL, **old;
	char err[512];

	if (cfg_load(d->config_path, &cfg, err, sizeof(err)) != SG_OK) {
		dlog("event=reload-refused reason=\"%s\" (the running "
		     "configuration stays)",
		     err);
		return;
	}
	if (smtp_server_set_cfg(d->srv, cfg, err, sizeof(err)) == -1) {
		dlog("event=reload-refused reason=\"%s\"", err);
		cfg_free(cfg);
		return;
	}
	pipeline_set_cfg(d->pl, cfg);
	if ((old = realloc(d->old, (d->nold + 1) * sizeof(*old))) != NULL) {
		d->old = old;
		d->old[d->nold++] = d->cfg;
	} /* else the old one leaks rather than being freed under use */
	d->cfg = cfg;
	dlog("event=reloaded config=%s", d->config_path);
}

/* Fails early, with a clear reason, on a store that cannot open. */
static int
check_store(const struct cfg *cfg, char *err, size_t errlen)
{
	struct sg_ctx *ctx = NULL;
	struct store *st = NULL;
	enum sg_status rc;

	if (sg_ctx_new(&ctx) != SG_OK)
		return -1;
	rc = store_open(ctx, cfg->store_path, cfg->keyfile, &st);
	if (rc != SG_OK)
		snprintf(err, errlen, "store %s: %s", cfg->store_path,
		         sg_ctx_error(ctx));
	store_close(st);
	sg_ctx_free(ctx);
	return rc == SG_OK ? 0 : -1;
}

int
serve_run(const char *config_path, char *err, size_t errlen)
{
	struct daemon d = {.config_path = config_path};
	const struct queue_ops ops = {q_process, q_deliver, q_bounce};
	struct queue_params qp = {0, 0, 0};
	enum sg_status st;
	int rc = -1;

	if ((st = cfg_load(config_path, &d.cfg, err, errlen)) != SG_OK)
		return -1;
	if (check_store(d.cfg, err, errlen) == -1)
		goto out;
	if (evthread_use_pthreads() != 0 ||
	    (d.base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot set up the event loop");
		goto out;
	}
	if ((st = spool_open(d.cfg->spool_dir, &d.sp, err, errlen)) != SG_OK)
		goto out;
	if ((d.pl = pipeline_new(d.cfg)) == NULL ||
	    (d.q = queue_new(d.sp, d.cfg->workers, &ops, &d)) == NULL ||
	    (d.srv = smtp_server_new(d.base, d.cfg, d.sp, committed, &d)) ==
	        NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	qp.first_retry = d.cfg->retry_min;
	qp.max_retry = d.cfg->retry_max;
	qp.lifetime = d.cfg->queue_lifetime;
	queue_set_params(d.q, &qp);
	if (smtp_server_listen(d.srv, err, errlen) == -1)
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
	if (d.ev_term == NULL || d.ev_int == NULL || d.ev_hup == NULL ||
	    evsignal_add(d.ev_term, NULL) || evsignal_add(d.ev_int, NULL) ||
	    evsignal_add(d.ev_hup, NULL)) {
		snprintf(err, errlen, "cannot install signal handlers");
		goto out;
	}
	for (size_t i = 0; i < d.cfg->nlisteners; i++)
		dlog("event=listening listener=%s address=%s:%d role=%s",
		     d.cfg->listeners[i].name, d.cfg->listeners[i].host,
		     d.cfg->listeners[i].port,
		     d.cfg->listeners[i].role == CFG_OUTGOING ? "outgoing"
		                                              : "incoming");
	dlog("event=started queued=%zu delivery=%s", spool_count(d.sp),
	     d.cfg->smarthost ? d.cfg->smarthost : d.cfg->outbox);
	event_base_dispatch(d.base);
	rc = 0;
out:
	if (d.ev_term)
		event_free(d.ev_term);
	if (d.ev_int)
		event_free(d.ev_int);
	if (d.ev_hup)
		event_free(d.ev_hup);
	if (d.q != NULL) {
		queue_stop(d.q);
		queue_free(d.q);
	}
	smtp_server_free(d.srv);
	pipeline_free(d.pl);
	spool_close(d.sp);
	if (d.base) {
		/* Release what the freed sessions left to deferred callbacks.
		 */
		event_base_loop(d.base, EVLOOP_NONBLOCK);
		event_base_free(d.base);
	}
	for (size_t i = 0; i < d.nold; i++)
		cfg_free(d.old[i]);
	free(d.old);
	cfg_free(d.cfg);
	return rc;
}
