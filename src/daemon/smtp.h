/*
 * smtp.h - the ESMTP server: listeners, sessions, and the hand-over of
 * each received message to the spool.
 *
 * What it trusts: nothing a client says.  Every size and count is bounded
 * by the configuration; end of data is only CRLF.CRLF (no SMTP smuggling);
 * relaying is allowed only to clients in the listener's relay_from or
 * authenticated with SMTP AUTH (inside TLS only) or matched by a [flow]
 * with action = relay (an accept flow takes relaying away, a reject flow
 * refuses MAIL), and on an incoming listener to anyone for its local
 * domains.  What it can reach: its
 * sockets, the spool, and the listeners' certificate, key and users files
 * (read at start and reload).
 *
 * Replies come from one place, the status table, where a status applies;
 * protocol replies (syntax, sequence) are in smtp_session.c's table.
 */
#ifndef SG_SMTP_H
#define SG_SMTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "daemon/daemon_dl.h"

#include "daemon/spool.h"
#include "policy/config.h"

struct smtp_server;
struct metrics;

/* Called on the event loop's thread after a message was committed to the
 * spool and before its 250 is sent: the queue runner's wake-up. */
typedef void (*smtp_committed_fn)(const struct spool_env *env, void *arg);

/* A server for the listeners of CFG on BASE.  CFG is borrowed and must
 * stay alive until smtp_server_set_cfg replaces it or the server is
 * freed.  NULL on allocation failure. */
struct smtp_server *smtp_server_new(struct event_base *base,
                                    const struct cfg *cfg, struct spool *sp,
                                    smtp_committed_fn committed, void *arg);
/* Loads the listeners' TLS certificates and keys (the key must match)
 * and AUTH users files, then binds every listener of the configuration.
 * On failure ERR says which listener, which file and why; nothing stays
 * bound.  0 or -1. */
int smtp_server_listen(struct smtp_server *srv, char *err, size_t errlen);
/* Loads (and drops) what the listeners of CFG read at start and reload:
 * TLS certificates and keys, AUTH users files.  0, or -1 with ERR
 * naming the listener and the file (check-config). */
int smtp_check_cfg(const struct cfg *cfg, char *err, size_t errlen);
/* A reloaded configuration: sessions started from now on use it (limits,
 * access lists, profiles, TLS certificates and AUTH users, read again
 * here; sessions in flight keep theirs).  Listeners whose address changed
 * are re-bound; -1 with ERR when a file is bad or binding fails, and then
 * nothing changed: the old configuration and listeners keep serving.  A
 * server that is not listening only loads the files (tests). */
int smtp_server_set_cfg(struct smtp_server *srv, const struct cfg *cfg,
                        char *err, size_t errlen);
/* Stops accepting; sessions in flight finish (a message in DATA is
 * committed or refused, never lost); DONE is called on the loop thread
 * when the last session has closed. */
void smtp_server_shutdown(struct smtp_server *srv, void (*done)(void *),
                          void *arg);
/* Waits for commits in flight (a finished message is always committed),
 * then frees.  Run the loop once more before event_base_free so that the
 * freed bufferevents' deferred callbacks are released. */
void smtp_server_free(struct smtp_server *srv);
size_t smtp_server_sessions(const struct smtp_server *srv);
/* Counts into M (borrowed; it must outlive the server; NULL: no
 * counting) from now on: sessions, messages received, refusals by reason
 * (metrics.h). */
void smtp_server_set_metrics(struct smtp_server *srv, struct metrics *m);

/* Serves one session of listener L on BEV (taken over; freed at the end).
 * BEV must not run its callbacks inside a write: a socket bufferevent, or
 * one made with BEV_OPT_DEFER_CALLBACKS (bufferevent pairs in tests).
 * PEER is the client's address.  For the listeners, and for tests that
 * drive a session over a bufferevent pair.  0 or -1 (BEV freed). */
int smtp_session_start(struct smtp_server *srv, const struct cfg_listener *l,
                       struct bufferevent *bev, const struct sockaddr *peer,
                       socklen_t peerlen);

#endif /* SG_SMTP_H */
