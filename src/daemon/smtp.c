/*
 * smtp.c - the ESMTP server's frame (smtp.h is the contract): listening
 * sockets, the session count, the commit pool, reload and shutdown, and
 * the log line.  The protocol itself is smtp_session.c.
 *
 * What it trusts: the configuration.  What it can reach: its listening
 * sockets and, on the commit threads, the spool through spool_rx_commit
 * only.
 *
 * Threads.  Everything runs on the event loop's thread except
 * spool_rx_commit, which fsyncs and may block: a session hands the
 * finished message to a small pool of commit threads (a struct smtp_job
 * on the todo list); the thread that takes it commits, moves it to the
 * done list and wakes the loop with event_active() on done_ev; the loop
 * then calls the job's DONE, which sends the 250 (or the 451).  The base
 * must therefore have been created after evthread_use_pthreads() (the
 * daemon does so; so do the tests).  Freeing the server joins the
 * threads after they have committed every job they were given: a
 * message the client finished is never dropped half-way.
 */
#include "daemon/smtp.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon_dl.h"

#include "daemon/log.h"
#include "daemon/smtp_int.h"

#define SMTP_ACCEPT_PAUSE 1 /* seconds without accepting after EMFILE */

struct smtp_listener {
	struct smtp_server *srv;
	const struct cfg_listener *l; /* in srv->cfg */
	struct evconnlistener *evl;
	struct event *pause_ev; /* re-enables accepting after a pause */
	int keep;               /* set_cfg: reused by the new configuration */
};

/* ---- log ---- */

void
smtp_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, "smtp", fmt, ap);
	va_end(ap);
}

void
smtp_limits_get(const struct cfg *cfg, struct smtp_limits *lim)
{
	lim->max_message =
	    cfg && cfg->max_message ? cfg->max_message : SMTP_DEF_MAX_MESSAGE;
	lim->max_recipients = cfg && cfg->max_recipients
	                          ? cfg->max_recipients
	                          : SMTP_DEF_MAX_RECIPIENTS;
	lim->max_line =
	    cfg && cfg->max_line ? cfg->max_line : SMTP_DEF_MAX_LINE;
	if (lim->max_line > SMTP_MAX_MAX_LINE)
		lim->max_line = SMTP_MAX_MAX_LINE;
	lim->max_sessions = cfg && cfg->max_sessions ? cfg->max_sessions
	                                             : SMTP_DEF_MAX_SESSIONS;
	lim->max_client_sessions = cfg && cfg->max_client_sessions
	                               ? cfg->max_client_sessions
	                               : SMTP_DEF_MAX_CLIENT;
	lim->command_timeout = cfg && cfg->command_timeout
	                           ? cfg->command_timeout
	                           : SMTP_DEF_COMMAND_TIMEOUT;
	lim->data_timeout = cfg && cfg->data_timeout ? cfg->data_timeout
	                                             : SMTP_DEF_DATA_TIMEOUT;
}

/* ---- the commit pool ---- */

static void *
pool_main(void *arg)
{
	struct smtp_server *srv = arg;
	struct smtp_job *job;

	pthread_mutex_lock(&srv->pool_lock);
	for (;;) {
		while (!srv->pool_stop && TAILQ_EMPTY(&srv->todo))
			pthread_cond_wait(&srv->pool_cond, &srv->pool_lock);
		if ((job = TAILQ_FIRST(&srv->todo)) == NULL)
			break; /* stopping, and nothing left to commit */
		TAILQ_REMOVE(&srv->todo, job, entry);
		pthread_mutex_unlock(&srv->pool_lock);

		if (job->work != NULL) {
			job->work(job->work_arg);
		} else {
			job->status = spool_rx_commit(job->rx, &job->env);
			job->rx = NULL;
		}

		pthread_mutex_lock(&srv->pool_lock);
		TAILQ_INSERT_TAIL(&srv->done, job, entry);
		pthread_mutex_unlock(&srv->pool_lock);
		event_active(srv->done_ev, EV_READ, 0);
		pthread_mutex_lock(&srv->pool_lock);
	}
	pthread_mutex_unlock(&srv->pool_lock);
	return NULL;
}

/* On the loop: each committed job goes back to its session. */
static void
pool_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	struct smtp_job_list list;
	struct smtp_job *job;

	TAILQ_INIT(&list);
	pthread_mutex_lock(&srv->pool_lock);
	TAILQ_CONCAT(&list, &srv->done, entry);
	pthread_mutex_unlock(&srv->pool_lock);
	while ((job = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, job, entry);
		job->done(job, 0);
	}
}

void
smtp_pool_submit(struct smtp_server *srv, struct smtp_job *job)
{
	pthread_mutex_lock(&srv->pool_lock);
	TAILQ_INSERT_TAIL(&srv->todo, job, entry);
	pthread_cond_signal(&srv->pool_cond);
	pthread_mutex_unlock(&srv->pool_lock);
}

/* Stops the threads once every job given to them is committed, then
 * hands the finished jobs back, cancelled. */
static void
pool_stop(struct smtp_server *srv)
{
	struct smtp_job *job;

	pthread_mutex_lock(&srv->pool_lock);
	srv->pool_stop = 1;
	pthread_cond_broadcast(&srv->pool_cond);
	pthread_mutex_unlock(&srv->pool_lock);
	for (size_t i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	srv->nthreads = 0;
	while ((job = TAILQ_FIRST(&srv->done)) != NULL) {
		TAILQ_REMOVE(&srv->done, job, entry);
		job->done(job, 1);
	}
}

/* The commit threads take no signals: they stay with the loop. */
static int
pool_start(struct smtp_server *srv)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < SMTP_COMMIT_THREADS; i++) {
		if (pthread_create(&srv->threads[i], NULL, pool_main, srv) !=
		    0) {
			rc = -1;
			break;
		}
		srv->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- TLS and AUTH of the listeners ---- */

static void
lsec_free_all(struct smtp_lsec *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++) {
		smtp_tls_free(v[i].tls);
		smtp_auth_db_free(v[i].auth);
	}
	free(v);
}

/* Reads the certificate, key and users file of every listener of CFG:
 * all or nothing, ERR naming the listener and the file. */
static int
lsec_load_all(const struct cfg *cfg, struct smtp_lsec **out, char *err,
              size_t errlen)
{
	struct smtp_lsec *v;
	char why[400];

	if ((v = calloc(cfg->nlisteners + 1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];

		if (cfg_listener_starttls(l) != CFG_STARTTLS_NONE &&
		    l->tls_cert != NULL && l->tls_key != NULL &&
		    (v[i].tls = smtp_tls_new(l->tls_cert, l->tls_key, why,
		                             sizeof(why))) == NULL)
			goto fail;
		if (l->auth == CFG_AUTH_PLAIN && l->auth_users != NULL &&
		    (v[i].auth = smtp_auth_db_load(l->auth_users, why,
		                                   sizeof(why))) == NULL)
			goto fail;
		continue;
	fail:
		snprintf(err, errlen, "listener %s: %s", l->name, why);
		lsec_free_all(v, cfg->nlisteners);
		return -1;
	}
	*out = v;
	return 0;
}

int
smtp_check_cfg(const struct cfg *cfg, char *err, size_t errlen)
{
	struct smtp_lsec *v;

	if (lsec_load_all(cfg, &v, err, errlen) < 0)
		return -1;
	lsec_free_all(v, cfg->nlisteners);
	return 0;
}

const struct smtp_lsec *
smtp_server_lsec(const struct smtp_server *srv, const struct cfg_listener *l)
{
	for (size_t i = 0; srv->cfg && i < srv->nlsec; i++)
		if (&srv->cfg->listeners[i] == l)
			return &srv->lsec[i];
	return NULL;
}

/* ---- the server ---- */

static void
shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	void (*done)(void *) = srv->shutdown_done;

	if (done == NULL)
		return;
	srv->shutdown_done = NULL;
	smtp_log("event=shutdown-done");
	done(srv->shutdown_arg); /* may free srv: the last thing */
}

struct smtp_server *
smtp_server_new(struct event_base *base, const struct cfg *cfg,
                struct spool *sp, smtp_committed_fn committed, void *arg)
{
	struct smtp_server *srv;
	int locks = 0;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->cfg = cfg;
	srv->sp = sp;
	srv->committed = committed;
	srv->committed_arg = arg;
	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->todo);
	TAILQ_INIT(&srv->done);
	if (pthread_mutex_init(&srv->pool_lock, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&srv->pool_cond, NULL) != 0) {
		pthread_mutex_destroy(&srv->pool_lock);
		goto fail;
	}
	locks = 1;
	srv->done_ev = event_new(base, -1, 0, pool_done_cb, srv);
	srv->shutdown_ev = event_new(base, -1, 0, shutdown_cb, srv);
	if (srv->done_ev == NULL || srv->shutdown_ev == NULL)
		goto fail;
	if (pool_start(srv) < 0)
		goto fail;
	return srv;
fail:
	if (srv->nthreads)
		pool_stop(srv);
	if (srv->done_ev)
		event_free(srv->done_ev);
	if (srv->shutdown_ev)
		event_free(srv->shutdown_ev);
	if (locks) {
		pthread_cond_destroy(&srv->pool_cond);
		pthread_mutex_destroy(&srv->pool_lock);
	}
	free(srv);
	return NULL;
}

size_t
smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->nsessions;
}

void
smtp_server_set_metrics(struct smtp_server *srv, struct metrics *m)
{
	srv->metrics = m;
}

void
smtp_server_session_closed(struct smtp_server *srv)
{
	srv->nsessions--;
	if (srv->shutting && !srv->freeing && srv->nsessions == 0)
		event_active(srv->shutdown_ev, EV_TIMEOUT, 0);
}

/* ---- listeners ---- */

static void
lsn_free(struct smtp_listener *lsn)
{
	if (lsn == NULL)
		return;
	if (lsn->evl)
		evconnlistener_free(lsn->evl);
	if (lsn->pause_ev)
		event_free(lsn->pause_ev);
	free(lsn);
}

static void
lsn_free_all(struct smtp_listener **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lsn_free(v[i]);
	free(v);
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
	struct smtp_listener *lsn = arg;
	struct smtp_server *srv = lsn->srv;
	struct smtp_limits lim;
	struct bufferevent *bev;
	char line[512];
	size_t n;

	smtp_limits_get(srv->cfg, &lim);
	if (srv->nsessions >= lim.max_sessions) {
		/* Refused before it costs a session: one best-effort
		 * write on the new socket, then close. */
		n = smtp_reply_busy(srv->cfg->hostname, line, sizeof(line));
		if (n > 0)
			(void)send(fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		evutil_closesocket(fd);
		smtp_log("event=busy listener=%s sessions=%zu", lsn->l->name,
		         srv->nsessions);
		metrics_inc(srv->metrics, METRICS_REJECTED_BUSY);
		return;
	}
	bev = bufferevent_socket_new(
	    srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		evutil_closesocket(fd);
		smtp_log("event=error op=accept error=\"out of memory\"");
		return;
	}
	smtp_session_start(srv, lsn->l, bev, sa, (socklen_t)salen);
}

static void
lsn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_listener *lsn = arg;

	evconnlistener_enable(lsn->evl);
}

/* accept() failed: out of descriptors or memory means waiting a moment
 * rather than spinning on a listener that stays readable. */
static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct smtp_listener *lsn = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {SMTP_ACCEPT_PAUSE, 0};

	smtp_log("event=error op=accept listener=%s error=\"%s\"", lsn->l->name,
	         evutil_socket_error_to_string(e));
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		evconnlistener_disable(evl);
		evtimer_add(lsn->pause_ev, &tv);
	}
}

static struct smtp_listener *
lsn_open(struct smtp_server *srv, const struct cfg_listener *l, char *err,
         size_t errlen)
{
	struct smtp_listener *lsn = NULL;
	struct addrinfo hints, *ai = NULL;
	char port[16];
	unsigned flags =
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* an address, as config.h says: no DNS at startup */
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", l->port);
	rc = getaddrinfo(l->host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "listener %s: %s: %s", l->name,
		         l->host ? l->host : "*", gai_strerror(rc));
		goto fail;
	}
	if ((lsn = calloc(1, sizeof(*lsn))) == NULL) {
		snprintf(err, errlen, "listener %s: out of memory", l->name);
		goto fail;
	}
	lsn->srv = srv;
	lsn->l = l;
	if ((lsn->pause_ev = evtimer_new(srv->base, lsn_resume_cb, lsn)) ==
	    NULL) {
		snprintf(err, errlen, "listener %s: out of memory", l->name);
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		flags |= LEV_OPT_BIND_IPV6ONLY;
	lsn->evl = evconnlistener_new_bind(srv->base, accept_cb, lsn, flags, -1,
	                                   ai->ai_addr, (int)ai->ai_addrlen);
	if (lsn->evl == NULL) {
		snprintf(err, errlen, "listener %s: cannot listen on %s:%d: %s",
		         l->name, l->host ? l->host : "*", l->port,
		         strerror(errno));
		goto fail;
	}
	evconnlistener_set_error_cb(lsn->evl, accept_error_cb);
	freeaddrinfo(ai);
	smtp_log("event=listen listener=%s address=%s port=%d", l->name,
	         l->host ? l->host : "*", l->port);
	return lsn;
fail:
	if (ai)
		freeaddrinfo(ai);
	lsn_free(lsn);
	return NULL;
}

/* Binds every listener of CFG, reusing a bound one of the same host and
 * port from OLD (marked keep).  All or nothing. */
static int
lsn_open_all(struct smtp_server *srv, const struct cfg *cfg,
             struct smtp_listener **old, size_t nold,
             struct smtp_listener ***out, char *err, size_t errlen)
{
	struct smtp_listener **v;
	size_t i, j;

	if ((v = calloc(cfg->nlisteners + 1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];

		for (j = 0; j < nold; j++) {
			const struct cfg_listener *o = old[j]->l;
			if (!old[j]->keep && o->port == l->port &&
			    strcmp(o->host ? o->host : "",
			           l->host ? l->host : "") == 0)
				break;
		}
		if (j < nold) {
			old[j]->keep = 1;
			v[i] = old[j];
			continue;
		}
		if ((v[i] = lsn_open(srv, l, err, errlen)) == NULL)
			goto fail;
	}
	*out = v;
	return 0;
fail:
	for (i = 0; i < cfg->nlisteners; i++) {
		int reused = 0;
		for (j = 0; j < nold; j++)
			reused |= v[i] != NULL && v[i] == old[j];
		if (!reused)
			lsn_free(v[i]);
	}
	for (j = 0; j < nold; j++)
		old[j]->keep = 0;
	free(v);
	return -1;
}

int
smtp_server_listen(struct smtp_server *srv, char *err, size_t errlen)
{
	struct smtp_listener **v;

	struct smtp_lsec *sec;

	if (srv->listening || srv->shutting) {
		snprintf(err, errlen, "already listening or shut down");
		return -1;
	}
	if (lsec_load_all(srv->cfg, &sec, err, errlen) < 0)
		return -1;
	if (lsn_open_all(srv, srv->cfg, NULL, 0, &v, err, errlen) < 0) {
		lsec_free_all(sec, srv->cfg->nlisteners);
		return -1;
	}
	lsec_free_all(srv->lsec, srv->nlsec);
	srv->lsec = sec;
	srv->nlsec = srv->cfg->nlisteners;
	srv->lsn = v;
	srv->nlsn = srv->cfg->nlisteners;
	srv->listening = 1;
	return 0;
}

int
smtp_server_set_cfg(struct smtp_server *srv, const struct cfg *cfg, char *err,
                    size_t errlen)
{
	struct smtp_listener **v = NULL;
	struct smtp_lsec *sec;
	size_t i;

	/* the new certificates and users first: a bad file changes
	 * nothing */
	if (lsec_load_all(cfg, &sec, err, errlen) < 0)
		return -1;
	if (srv->listening) {
		if (lsn_open_all(srv, cfg, srv->lsn, srv->nlsn, &v, err,
		                 errlen) < 0) {
			lsec_free_all(sec, cfg->nlisteners);
			return -1;
		}
		for (i = 0; i < srv->nlsn; i++)
			if (!srv->lsn[i]->keep)
				lsn_free(srv->lsn[i]);
		free(srv->lsn);
		for (i = 0; i < cfg->nlisteners; i++) {
			v[i]->keep = 0;
			v[i]->l = &cfg->listeners[i];
		}
		srv->lsn = v;
		srv->nlsn = cfg->nlisteners;
	}
	/* sessions keep the references they took at their start */
	lsec_free_all(srv->lsec, srv->nlsec);
	srv->lsec = sec;
	srv->nlsec = cfg->nlisteners;
	srv->cfg = cfg;
	smtp_session_reload_all(srv);
	smtp_log("event=reload listeners=%zu sessions=%zu", cfg->nlisteners,
	         srv->nsessions);
	return 0;
}

void
smtp_server_shutdown(struct smtp_server *srv, void (*done)(void *), void *arg)
{
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	if (!srv->shutting) {
		srv->shutting = 1;
		lsn_free_all(srv->lsn, srv->nlsn);
		srv->lsn = NULL;
		srv->nlsn = 0;
		srv->listening = 0;
		smtp_log("event=shutdown sessions=%zu", srv->nsessions);
		smtp_session_shutdown_all(srv);
	}
	if (srv->nsessions == 0)
		event_active(srv->shutdown_ev, EV_TIMEOUT, 0);
}

void
smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	srv->freeing = 1;
	lsn_free_all(srv->lsn, srv->nlsn);
	pool_stop(srv);
	smtp_session_free_all(srv);
	lsec_free_all(srv->lsec, srv->nlsec);
	event_free(srv->done_ev);
	event_free(srv->shutdown_ev);
	pthread_cond_destroy(&srv->pool_cond);
	pthread_mutex_destroy(&srv->pool_lock);
	free(srv);
}
