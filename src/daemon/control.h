/*
 * control.h - requests from `smimegate queue` to the running daemon:
 * empty files in SPOOL/control/, one per request, named
 *   flush          deliver every waiting message now
 *   flush.ID       deliver message ID now
 *   delete.ID      take message ID out of the queue, without a notice
 *   bounce.ID      return message ID to its sender, with a notice
 * The command creates them (O_EXCL: asking twice is asking once); the
 * daemon takes them on its tick (every 2 s), acts, and removes each one
 * it is done with.  Only who may write SPOOL/control/ (0700, the daemon's
 * user) can ask.
 */
#ifndef SG_CONTROL_H
#define SG_CONTROL_H

#include <stddef.h>

#include "smimegate.h"

enum control_verb { CONTROL_FLUSH, CONTROL_DELETE, CONTROL_BOUNCE };

struct control;

/* The daemon's side: opens SPOOL/control (creating it 0700). */
enum sg_status control_open(const char *spool_dir, struct control **out,
                            char *err, size_t errlen);
void control_close(struct control *c);

/* Hands each request to FN, in name order: ID NULL for "flush" (all).
 * When FN returns SG_OK (done, or nothing to do) the request is removed;
 * SG_ERR_TEMP keeps it for the next call.  A file that is not a request
 * is removed and logged.  SG_ERR_IO when the directory cannot be read. */
typedef enum sg_status (*control_fn)(void *arg, enum control_verb verb,
                                     const char *id);
enum sg_status control_take(struct control *c, control_fn fn, void *arg);

/* The command's side: files the request (ID NULL: flush all; delete
 * and bounce need an ID).  SG_ERR_NOT_FOUND when SPOOL/control does not exist
 * (no daemon has used this spool), SG_ERR_IO with ERR otherwise. */
enum sg_status control_request(const char *spool_dir, enum control_verb verb,
                               const char *id, char *err, size_t errlen);
/* Whether that request is still waiting: 1, 0, or -1 with errno. */
int control_pending(const char *spool_dir, enum control_verb verb,
                    const char *id);

#endif
