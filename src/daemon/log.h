/*
 * log.h - the daemon's one logger.  Every component's log line goes
 * through here: one event, one line,
 *
 *   smimegate[PID]: COMPONENT: key=value key=value ...
 *
 * on stderr (one write(2) per line, no timestamp: journald, syslog or the
 * service manager add one), or to syslog(3), facility LOG_MAIL, where the
 * ident and the PID make the same prefix.
 *
 * The logger is one of the two mutable globals that STYLE.md allows (the
 * other: signal flags): where lines go is a process-wide setting.  Every
 * function here is thread-safe.  Callers put no key material, passphrases
 * or message bodies in a line; the logger replaces control characters
 * (a CR or LF would split the line) with spaces.
 */
#ifndef SG_LOG_H
#define SG_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Syslog priorities, from the least to the most urgent. */
enum log_level { LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERR };

#define LOG_LINE_MAX 2048 /* octets of a line; longer ones end in "..." */

/*
 * Sends the lines from now on to TARGET: "stderr" (also for NULL) or
 * "syslog" (openlog(IDENT, LOG_PID, LOG_MAIL)).  IDENT (NULL:
 * "smimegate", at most 31 octets) names the process in the prefix of
 * either.  Before the first call, lines go to stderr as "smimegate".
 * Syslog must be reachable (the socket /dev/log accepts a connection):
 * otherwise -1 with ERR, and nothing changed.  -1 too for an unknown
 * TARGET.  0 on success.
 */
int log_open(const char *target, const char *ident, char *err, size_t errlen);
/* Back to stderr (closelog when syslog was open). */
void log_close(void);
/* Lines below MIN are dropped from now on (LOG_LEVEL_INFO: none, the
 * default): the administrator's commands, which use the daemon's
 * modules, show only their warnings and errors. */
void log_set_min_level(enum log_level min);

/*
 * One line of COMPONENT ("smtp", "queue", ...), FMT and its arguments
 * being the key=value text.  log_event logs at LOG_LEVEL_INFO, log_warn
 * and log_err at theirs.  Whatever the call, a line whose event is
 * "error" (an "event=error" field) goes out at least at LOG_LEVEL_ERR,
 * and one whose event is "warning" at least at LOG_LEVEL_WARN, so that
 * the components' wrappers need not know the priority of each event.
 */
void log_event(const char *component, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_warn(const char *component, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_err(const char *component, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same with a level and a va_list, for the components' wrappers. */
void log_vwrite(enum log_level level, const char *component, const char *fmt,
                va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * The two ways text from outside (a client's address, a next hop's reply,
 * a certificate's subject, a reason quoting any of them) enters a line,
 * so that it stays one field: nothing it holds can end the field early or
 * look like another one (an "event=error" in a sender's address).
 *
 * log_quote_value: SRC as the value of a quoted key="value" field, in DST
 * of LEN octets (cut to fit): control bytes become spaces, quotes and
 * backslashes '.
 *
 * log_addr: the address ADDR as the value of an address field
 * (from=<...>), in DST of LEN octets (cut to fit, LOG_ADDR_MAX always
 * fits an SMTP path): a space, '<', '>', '\', a control or 8-bit byte
 * becomes \xHH, so that a quoted local part ("a b"@example.com) reads
 * back exactly and the field ends at its '>'.  Returns DST.
 */
const char *log_quote_value(char *dst, size_t len, const char *src);
#define LOG_ADDR_MAX 1024
const char *log_addr(char *dst, size_t len, const char *addr);

/* The same into a buffer that lives until the end of the caller's block,
 * for an argument of the line itself:
 *   log_event("smtp", "from=<%s> reply=\"%s\"", LOG_ADDR(a), LOG_Q(r)); */
#define LOG_ADDR(a) log_addr((char[LOG_ADDR_MAX]){""}, LOG_ADDR_MAX, (a))
#define LOG_Q(s)    log_quote_value((char[LOG_LINE_MAX]){""}, LOG_LINE_MAX, (s))

/* The level a line gets (see log_event): the larger of LEVEL and the one
 * its event= field implies.  For the tests. */
enum log_level log_level_of(enum log_level level, const char *text);

#endif /* SG_LOG_H */
