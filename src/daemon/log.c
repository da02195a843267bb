/*
 * log.c - the daemon's one logger (log.h).
 *
 * What it trusts: its callers' text to hold no secrets.  What it can
 * reach: stderr and the syslog socket.
 *
 * The state below is STYLE.md's listed exception to "no mutable
 * globals": the target is process-wide.  A line is formatted on the
 * caller's stack and written with one write(2) (stderr) or one syslog(3)
 * call under the read side of a lock; log_open and log_close take the
 * write side, so a line never goes to a half-switched target.
 */
#include "daemon/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/reason.h"

#define LOG_SYSLOG_PATH "/dev/log" /* where glibc's syslog(3) sends */

static struct {
	pthread_rwlock_t lock; /* read: a line; write: a change of target */
	int to_syslog;
	char ident[32];     /* openlog keeps the pointer: it lives here */
	enum log_level min; /* lines below it are not written */
} logger = {PTHREAD_RWLOCK_INITIALIZER, 0, "smimegate", LOG_LEVEL_INFO};

/* Whether the syslog socket takes a connection (glibc tries a datagram
 * socket, then a stream one); 0 or -1 with ERR. */
static int
syslog_reachable(char *err, size_t errlen)
{
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int e = 0;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", LOG_SYSLOG_PATH);
	for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			e = errno;
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) ==
		    0) {
			close(fd);
			return 0;
		}
		e = errno;
		close(fd);
		if (e != EPROTOTYPE)
			break;
	}
	reason_set(err, errlen, "log = syslog: %s: %s", LOG_SYSLOG_PATH,
	           strerror(e));
	return -1;
}

int
log_open(const char *target, const char *ident, char *err, size_t errlen)
{
	int to_syslog;

	if (target == NULL || strcmp(target, "stderr") == 0)
		to_syslog = 0;
	else if (strcmp(target, "syslog") == 0)
		to_syslog = 1;
	else {
		reason_set(err, errlen, "log: \"%s\": stderr or syslog",
		           target);
		return -1;
	}
	if (to_syslog && syslog_reachable(err, errlen) == -1)
		return -1;
	pthread_rwlock_wrlock(&logger.lock);
	if (logger.to_syslog)
		closelog();
	snprintf(logger.ident, sizeof(logger.ident), "%s",
	         ident ? ident : "smimegate");
	if (to_syslog)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	logger.to_syslog = to_syslog;
	pthread_rwlock_unlock(&logger.lock);
	return 0;
}

void
log_close(void)
{
	pthread_rwlock_wrlock(&logger.lock);
	if (logger.to_syslog)
		closelog();
	logger.to_syslog = 0;
	pthread_rwlock_unlock(&logger.lock);
}

/* Whether TEXT has FIELD ("event=error") as one of its space-separated
 * fields.  A quoted value ("...") and an address (<...>) are read as one
 * piece, whatever they hold: what log_quote_value and log_addr wrote
 * cannot end them early, so text from outside cannot add a field. */
static int
has_field(const char *text, const char *field)
{
	size_t n = strlen(field);
	const char *p = text;

	while (*p != '\0') {
		const char *start;

		while (*p == ' ')
			p++;
		for (start = p; *p != '\0' && *p != ' ';) {
			const char *close = NULL;
			if (*p == '"')
				close = strchr(p + 1, '"');
			else if (*p == '<')
				close = strchr(p + 1, '>');
			p = close ? close + 1 : p + 1;
		}
		if ((size_t)(p - start) == n && memcmp(start, field, n) == 0)
			return 1;
	}
	return 0;
}

enum log_level
log_level_of(enum log_level level, const char *text)
{
	if (level < LOG_LEVEL_ERR && has_field(text, "event=error"))
		return LOG_LEVEL_ERR;
	if (level < LOG_LEVEL_WARN && has_field(text, "event=warning"))
		return LOG_LEVEL_WARN;
	return level;
}

static void
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere else to say it */
		p += w;
		len -= (size_t)w;
	}
}

void
log_vwrite(enum log_level level, const char *component, const char *fmt,
           va_list ap)
{
	static const int prio[] = {LOG_INFO, LOG_WARNING, LOG_ERR};
	char line[LOG_LINE_MAX + 1]; /* with room for the newline */
	size_t pre = 0, len;
	char *body;
	int saved = errno, n;

	pthread_rwlock_rdlock(&logger.lock);
	if (!logger.to_syslog) {
		n = snprintf(line, LOG_LINE_MAX, "%s[%ld]: ", logger.ident,
		             (long)getpid());
		pre = n > 0 ? (size_t)n : 0;
	}
	body = line + pre;
	n = snprintf(body, LOG_LINE_MAX - pre, "%s: ", component);
	len = pre + (n > 0 ? (size_t)n : 0);
	if (len < LOG_LINE_MAX - 1) {
		n = vsnprintf(line + len, LOG_LINE_MAX - len, fmt, ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (len >= LOG_LINE_MAX) { /* cut: say so */
		len = LOG_LINE_MAX - 1;
		memcpy(line + len - 3, "...", 3);
	}
	line[len] = '\0';
	for (char *p = body; *p; p++) /* one event, one line */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	level = log_level_of(level, body);
	if ((unsigned)level > LOG_LEVEL_ERR)
		level = LOG_LEVEL_ERR;
	if (level < logger.min) {
		/* below what this process wants to see */
	} else if (logger.to_syslog) {
		syslog(LOG_MAIL | prio[level], "%s", body);
	} else {
		line[len++] = '\n';
		write_all(STDERR_FILENO, line, len);
	}
	pthread_rwlock_unlock(&logger.lock);
	errno = saved;
}

void
log_set_min_level(enum log_level min)
{
	pthread_rwlock_wrlock(&logger.lock);
	logger.min = min;
	pthread_rwlock_unlock(&logger.lock);
}

void
log_event(const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, component, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, component, fmt, ap);
	va_end(ap);
}

void
log_err(const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, component, fmt, ap);
	va_end(ap);
}

const char *
log_quote_value(char *dst, size_t len, const char *src)
{
	size_t i;

	if (len == 0)
		return dst;
	for (i = 0; i + 1 < len && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c == 0x7f)   ? ' '
		         : (c == '"' || c == '\\') ? '\''
		                                   : (char)c;
	}
	dst[i] = '\0';
	return dst;
}

const char *
log_addr(char *dst, size_t len, const char *addr)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (len == 0)
		return dst;
	for (; *addr != '\0'; addr++) {
		unsigned char c = (unsigned char)*addr;
		if (c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != '\\') {
			if (o + 1 >= len)
				break;
			dst[o++] = (char)c;
			continue;
		}
		if (o + 4 >= len)
			break;
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[c >> 4];
		dst[o++] = hex[c & 15];
	}
	dst[o] = '\0';
	return dst;
}
