/*
 * serve.h - the gateway daemon's entry point.
 */
#ifndef SG_SERVE_H
#define SG_SERVE_H

#include <stddef.h>

/* Runs the gateway with the configuration at CONFIG_PATH until SIGTERM or
 * SIGINT.  0 after a clean stop; -1 with ERR when it cannot start. */
int serve_run(const char *config_path, char *err, size_t errlen);

struct cfg;
typedef void (*serve_warn_fn)(void *arg, const char *what);
/*
 * What serve finds wrong in CFG before it listens, at start and at each
 * reload, and check-config too: the store must open (else -1 with ERR: it
 * does not start, or the reload is refused).  A [profile] signer or the
 * notify_signer that cannot sign now (no such certificate, expired, not
 * for signing) goes to WARN: that profile's mail would bounce,
 * notifications would go unsigned.
 */
int serve_check(const struct cfg *cfg, serve_warn_fn warn, void *arg, char *err,
                size_t errlen);

/* The demo of `make run` in DIR: writes DIR/smimegate.conf and creates the
 * store with a throw-away certificate "demo" when they do not exist yet,
 * and stores the configuration's path in CONFIG (LEN bytes).  0 or -1 with
 * ERR. */
int serve_demo_prepare(const char *dir, char *config, size_t len, char *err,
                       size_t errlen);

#endif
