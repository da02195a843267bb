/*
 * alert.h - alerts for the administrator (issue 6): something a person
 * should know about (a burst of updated certificates, the harvested key
 * repository full, one of our certificates expiring: certexpiry.h).
 * Each alert is logged (component "alert", warning), counted
 * (smimegate_alerts_total) and handed to a sender that mails it to the
 * configured admin address through the normal delivery path (signed
 * when a notification certificate is configured: serve.c).
 */
#ifndef SG_ALERT_H
#define SG_ALERT_H

#include "daemon/metrics.h"
#include "smimegate.h"

/* Mails an alert: KIND ("updated-certificates"), TEXT (one paragraph).
 * SG_OK once it is spooled; anything else is logged by alert_raise. */
typedef enum sg_status (*alert_send_fn)(void *arg, const char *kind,
                                        const char *text);

struct alerts;

/* M (may be NULL) and SEND (may be NULL: log and count only) are
 * borrowed.  NULL when memory is short. */
struct alerts *alerts_new(struct metrics *m, alert_send_fn send, void *arg);
void alerts_free(struct alerts *a);

/* Raises an alert of KIND; thread-safe.  A NULL A does nothing. */
void alert_raise(struct alerts *a, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SG_ALERT_H */
