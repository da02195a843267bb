/*
 * certexpiry.h - the certificate-expiry alert: one of our certificates
 * (the store's STORE_ORG rows, the ones that sign and decrypt; not trust
 * anchors, partners' or harvested certificates) that expires within
 * alert_cert_expiry, or has expired, raises the alert
 * "certificate-expiry" (alert.h) with its name, subject, notAfter and
 * the days left, at most once a day per certificate (name and notAfter).
 * A certificate renewed by another of ours (the same subject, valid now
 * and beyond the window) does not alert, unless the configuration names
 * it (a profile's signer, notify_signer: a signer by name is that row
 * only); then the alert says to name the renewal instead.
 *
 * What it trusts: the store.  What it can reach: the store (read only,
 * one listing per check) and the alerts.  The memory of what was alerted
 * lives in the process only: after a restart a certificate may alert
 * again the same day.  Not thread-safe: one caller (the daemon's loop).
 */
#ifndef SG_CERTEXPIRY_H
#define SG_CERTEXPIRY_H

#include <stddef.h>

#include "daemon/alert.h"
#include "policy/config.h"
#include "smimegate.h"

struct certexpiry;

/* A is borrowed (NULL: nothing is raised) and must outlive the result.
 * NULL when memory is short. */
struct certexpiry *certexpiry_new(struct alerts *a);
void certexpiry_free(struct certexpiry *ce);

/* What one check found. */
struct certexpiry_counts {
	size_t ours;     /* our certificates (pending CSRs left out) */
	size_t expiring; /* within the window or expired, and not renewed
	                  * (or renewed but named by the configuration) */
	size_t alerted;  /* alerts raised by this check */
};

/*
 * Lists our certificates in CFG's store (store_path, keyfile) and raises
 * the alerts due at sg_ctx_now(CTX) for cfg->alert_cert_expiry; with 0 it
 * does nothing.  CTX is borrowed (time, and the detail of a failure to
 * open the store).  OUT (may be NULL) gets the counts.  SG_OK, or the
 * store's status (SG_ERR_TEMP when it is busy: the next check tries
 * again) with ERR (ERRLEN bytes) saying why.
 */
enum sg_status certexpiry_check(struct certexpiry *ce, struct sg_ctx *ctx,
                                const struct cfg *cfg,
                                struct certexpiry_counts *out, char *err,
                                size_t errlen);

/* How many certificates are remembered as alerted (for tests). */
size_t certexpiry_remembered(const struct certexpiry *ce);

#endif /* SG_CERTEXPIRY_H */
