/*
 * alert.c - alerts for the administrator (alert.h).
 */
#include "daemon/alert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/log.h"

#define ALERT_TEXT_MAX 1024

struct alerts {
	struct metrics *m;
	alert_send_fn send;
	void *arg;
};

struct alerts *
alerts_new(struct metrics *m, alert_send_fn send, void *arg)
{
	struct alerts *a = calloc(1, sizeof(*a));

	if (a != NULL) {
		a->m = m;
		a->send = send;
		a->arg = arg;
	}
	return a;
}

void
alerts_free(struct alerts *a)
{
	free(a);
}

void
alert_raise(struct alerts *a, const char *kind, const char *fmt, ...)
{
	char text[ALERT_TEXT_MAX];
	enum sg_status st;
	va_list ap;

	if (a == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_warn("alert", "event=alert kind=%s text=\"%s\"", kind, LOG_Q(text));
	metrics_inc(a->m, METRICS_ALERTS);
	if (a->send == NULL)
		return;
	if ((st = a->send(a->arg, kind, text)) != SG_OK)
		log_warn("alert", "event=alert-not-mailed kind=%s status=%s",
		         kind, sg_status_name(st));
}
