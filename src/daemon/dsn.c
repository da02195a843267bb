/*
 * dsn.c - delivery status notifications (dsn.h is the contract).
 *
 * What it trusts: nothing it is given (see dsn.h).  What it can reach:
 * the original message's fd, read once and at most max_original + 1
 * octets of it; the engine, to sign.
 *
 * The notification is built in memory: its size is bounded by the
 * original's bound, DSN_MAX_RCPTS recipients and DSN_VALUE_MAX octets per
 * value.  Every value from outside goes through clean_value() before it
 * is written; the boundary is 128 random bits, so the returned original
 * cannot close a part.
 */
#include "daemon/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "daemon/kvtext.h"
#include "smimegate.h"

#define DSN_DATE_MAX 64

/* ---- values from outside ---- */

/*
 * Copies SRC (NULL: "") into DST (LEN octets, at most DSN_VALUE_MAX + 1
 * used) as one safe line: control bytes (CR, LF, TAB, ...) become spaces,
 * 8-bit bytes '?', and a value cut at the bound ends in "...".
 */
static void
clean_value(char *dst, size_t len, const char *src)
{
	size_t max = len - 1 < DSN_VALUE_MAX ? len - 1 : DSN_VALUE_MAX;
	size_t i;

	if (src == NULL)
		src = "";
	for (i = 0; i < max && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = c < 0x20 || c == 0x7f ? ' '
		         : c >= 0x80           ? '?'
		                               : (char)c;
	}
	dst[i] = '\0';
	if (src[i] != '\0' && i >= 3)
		memcpy(dst + i - 3, "...", 3);
}

static int
hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ENVID is xtext (RFC 3461 4): "+XX" stands for one octet.  Decoded into
 * DST, then cleaned; a malformed escape is kept as it is. */
static void
clean_xtext(char *dst, size_t len, const char *src)
{
	char raw[DSN_VALUE_MAX + 1];
	size_t o = 0;

	for (size_t i = 0; src[i] && o + 1 < sizeof(raw); i++) {
		int h, l;
		if (src[i] == '+' && (h = hexdigit(src[i + 1])) >= 0 &&
		    (l = hexdigit(src[i + 2])) >= 0 && (h | l) != 0) {
			raw[o++] = (char)(h << 4 | l);
			i += 2;
		} else {
			raw[o++] = src[i];
		}
	}
	raw[o] = '\0';
	clean_value(dst, len, raw);
}

/* ---- status codes ---- */

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Whether REPLY starts like an SMTP reply: three digits, then a space, a
 * hyphen or the end. */
static int
is_smtp_reply(const char *r)
{
	return r != NULL && r[0] >= '2' && r[0] <= '5' && is_digit(r[1]) &&
	       is_digit(r[2]) && (r[3] == ' ' || r[3] == '-' || r[3] == '\0');
}

/* The enhanced code (RFC 3463) of an SMTP reply ("550 5.1.1 ..."), into
 * OUT; 0 when it has none. */
static int
reply_enhanced(const char *r, char *out, size_t len)
{
	const char *p;
	size_t n = 0;

	if (!is_smtp_reply(r) || r[3] == '\0')
		return 0;
	p = r + 4;
	if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
		return 0;
	n = 2;
	for (int dot = 0; dot < 2; dot++) {
		size_t digits = 0;
		while (is_digit(p[n]) && digits < 3) {
			n++;
			digits++;
		}
		if (digits == 0 || is_digit(p[n]))
			return 0;
		if (dot == 0) {
			if (p[n] != '.')
				return 0;
			n++;
		}
	}
	if ((p[n] != '\0' && p[n] != ' ') || n + 1 > len)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return 1;
}

/* The Status of a failed recipient: 5.4.7 when the message expired, else
 * the next hop's enhanced code when it is a permanent one, else the status
 * table's, else 5.0.0 (the class of a failure is always 5). */
static void
rcpt_status(const struct dsn_info *info, const struct dsn_rcpt *r, char *out,
            size_t len)
{
	const char *table = sg_status_enhanced(r->st);

	if (info->expired)
		snprintf(out, len, "5.4.7");
	else if (reply_enhanced(r->reply, out, len) && out[0] == '5')
		return;
	else if (table[0] == '5')
		snprintf(out, len, "%s", table);
	else
		snprintf(out, len, "5.0.0");
}

/* ---- pieces ---- */

/* RFC 5322 date-time of T in local time. */
static void
rfc5322_date(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static enum sg_status
random_hex(char *out, size_t bytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[32];

	if (bytes > sizeof(r) || sg_random_bytes(r, bytes) != SG_OK)
		return SG_ERR_INTERNAL;
	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * bytes] = '\0';
	return SG_OK;
}

/* Reads up to LEN octets of FD into BUF; *GOT gets how many.  -1 on a
 * read error. */
static int
read_bounded(int fd, char *buf, size_t len, size_t *got)
{
	size_t n = 0;

	while (n < len) {
		ssize_t r = read(fd, buf + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return 0;
}

/* The length of the header block at the start of P[0..N): through the
 * line end before the first empty line, else through the last complete
 * line (a block cut at the bound). */
static size_t
header_block(const char *p, size_t n)
{
	size_t last = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		/* the line that ends here starts at LAST */
		if (i == last || (i == last + 1 && p[last] == '\r'))
			return last;
		last = i + 1;
	}
	return last;
}

static int
has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80 || p[i] == '\0')
			return 1;
	return 0;
}

/* What every piece needs: the cleaned names, the boundary, the times. */
struct dsn_doc {
	const struct dsn_info *info;
	char host[DSN_VALUE_MAX + 1];
	char qid[DSN_VALUE_MAX + 1];
	char boundary[64];
	time_t now;
	size_t max; /* the original's bound */
};

/* The original: what part it goes into and how much of it. */
struct dsn_orig {
	char *data;
	size_t len;
	int present;   /* ORIG_FD was given */
	int full;      /* message/rfc822 (else text/rfc822-headers) */
	int too_large; /* headers only because of the size bound */
};

static enum sg_status
orig_read(const struct dsn_doc *d, int fd, struct dsn_orig *o)
{
	size_t max = d->max;
	int hdrs =
	    d->info->ret != NULL && strcasecmp(d->info->ret, "HDRS") == 0;
	size_t got;

	memset(o, 0, sizeof(*o));
	if (fd < 0)
		return SG_OK;
	if (max > ((size_t)-1) - 1 || (o->data = malloc(max + 1)) == NULL)
		return SG_ERR_NOMEM;
	if (read_bounded(fd, o->data, max + 1, &got) == -1) {
		free(o->data);
		o->data = NULL;
		return SG_ERR_IO;
	}
	o->present = 1;
	o->too_large = got > max;
	o->full = !hdrs && !o->too_large;
	o->len = o->full ? got : header_block(o->data, got > max ? max : got);
	return SG_OK;
}

static void
write_headers(struct kv_buf *b, const struct dsn_doc *d, const char *msgid_rand)
{
	char from[DSN_VALUE_MAX + 1], to[DSN_VALUE_MAX + 1], date[DSN_DATE_MAX];

	clean_value(from, sizeof(from), d->info->postmaster);
	clean_value(to, sizeof(to), d->info->sender);
	rfc5322_date(date, sizeof(date), d->now);
	kv_addf(b, "From: Mail Delivery System <%s>\r\n", from);
	kv_addf(b, "To: <%s>\r\n", to);
	kv_str(b, "Subject: Undelivered Mail Returned to Sender\r\n");
	kv_addf(b, "Date: %s\r\n", date);
	kv_addf(b, "Message-ID: <%s.%s@%s>\r\n", d->qid, msgid_rand, d->host);
	kv_str(b, "Auto-Submitted: auto-replied\r\n"
	          "MIME-Version: 1.0\r\n"
	          "Content-Type: multipart/report; "
	          "report-type=delivery-status;\r\n");
	kv_addf(b, "\tboundary=\"%s\"\r\n\r\n", d->boundary);
	kv_str(b, "This is a MIME-encapsulated message.\r\n\r\n");
}

/* (1) the explanation for people. */
static void
write_text(struct kv_buf *b, const struct dsn_doc *d, const struct dsn_orig *o)
{
	const struct dsn_info *info = d->info;
	char addr[DSN_VALUE_MAX + 1], why[DSN_VALUE_MAX + 1],
	    date[DSN_DATE_MAX];
	size_t n = info->nrcpts < DSN_MAX_RCPTS ? info->nrcpts : DSN_MAX_RCPTS;

	rfc5322_date(date, sizeof(date), info->arrival);
	kv_addf(b,
	        "--%s\r\n"
	        "Content-Description: Notification\r\n"
	        "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
	        d->boundary);
	kv_addf(b, "This is the mail system at host %s.\r\n\r\n", d->host);
	kv_str(b, "Your message could not be delivered to one or more "
	          "recipients.\r\n");
	if (info->expired)
		kv_str(b, "It stayed in the queue longer than allowed, so "
		          "delivery has been given up.\r\n");
	kv_str(b, "This is a permanent failure: no further attempts will "
	          "be made.\r\n\r\n");
	kv_addf(b, "Queue ID: %s\r\nArrival date: %s\r\n\r\n", d->qid, date);
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];
		clean_value(addr, sizeof(addr), r->addr);
		clean_value(why, sizeof(why),
		            r->reply && r->reply[0] ? r->reply
		                                    : sg_status_text(r->st));
		kv_addf(b, "<%s>:\r\n    %s\r\n", addr, why);
	}
	if (n < info->nrcpts)
		kv_addf(b, "... and %zu more recipients\r\n", info->nrcpts - n);
	if (!o->present)
		kv_str(b, "\r\nThe message itself could not be read to be "
		          "returned.\r\n");
	else if (o->too_large)
		kv_addf(b,
		        "\r\nThe message was larger than %zu KB: only its "
		        "header section is returned.\r\n",
		        d->max / 1024);
	else if (!o->full)
		kv_str(b, "\r\nAs requested (RET=HDRS), only the message's "
		          "header section is returned.\r\n");
	kv_str(b, "\r\n");
}

/* (2) the report for programs (RFC 3464 2). */
static void
write_report(struct kv_buf *b, const struct dsn_doc *d)
{
	const struct dsn_info *info = d->info;
	char addr[DSN_VALUE_MAX + 1], why[DSN_VALUE_MAX + 1],
	    envid[DSN_VALUE_MAX + 1], date[DSN_DATE_MAX], status[16];
	size_t n = info->nrcpts < DSN_MAX_RCPTS ? info->nrcpts : DSN_MAX_RCPTS;

	kv_addf(b,
	        "--%s\r\n"
	        "Content-Description: Delivery report\r\n"
	        "Content-Type: message/delivery-status\r\n\r\n",
	        d->boundary);
	kv_addf(b, "Reporting-MTA: dns; %s\r\n", d->host);
	kv_addf(b, "X-Smimegate-Queue-ID: %s\r\n", d->qid);
	if (info->envid != NULL && info->envid[0] != '\0') {
		clean_xtext(envid, sizeof(envid), info->envid);
		kv_addf(b, "Original-Envelope-Id: %s\r\n", envid);
	}
	rfc5322_date(date, sizeof(date), info->arrival);
	kv_addf(b, "Arrival-Date: %s\r\n", date);
	rfc5322_date(date, sizeof(date), d->now);
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];
		clean_value(addr, sizeof(addr), r->addr);
		rcpt_status(info, r, status, sizeof(status));
		kv_str(b, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
			/* RFC 3464 2.3.1: the ORCPT the sender gave */
			clean_xtext(why, sizeof(why), r->orcpt);
			kv_addf(b, "Original-Recipient: %s\r\n", why);
		}
		kv_addf(b,
		        "Final-Recipient: rfc822; %s\r\n"
		        "Action: failed\r\nStatus: %s\r\n",
		        addr, status);
		if (r->reply != NULL && r->reply[0] != '\0') {
			clean_value(why, sizeof(why), r->reply);
			kv_addf(b, "Diagnostic-Code: %s; %s\r\n",
			        is_smtp_reply(r->reply) ? "smtp"
			                                : "X-Smimegate",
			        why);
		}
		kv_addf(b, "Last-Attempt-Date: %s\r\n", date);
	}
	kv_str(b, "\r\n");
}

/* (3) the original, or its header section. */
static void
write_original(struct kv_buf *b, const struct dsn_doc *d,
               const struct dsn_orig *o)
{
	if (!o->present)
		return;
	kv_addf(b, "--%s\r\nContent-Description: Undelivered Message%s\r\n",
	        d->boundary, o->full ? "" : " Headers");
	kv_str(b, o->full ? "Content-Type: message/rfc822\r\n"
	                  : "Content-Type: text/rfc822-headers\r\n");
	if (has_8bit(o->data, o->len))
		kv_str(b, "Content-Transfer-Encoding: 8bit\r\n");
	kv_str(b, "\r\n");
	kv_add(b, o->data, o->len);
	if (o->len > 0 && o->data[o->len - 1] != '\n')
		kv_str(b, "\r\n");
	kv_str(b, "\r\n");
}

/* ---- the API ---- */

enum sg_status
dsn_build(const struct dsn_info *info, int orig_fd, char **out, size_t *outlen)
{
	struct kv_buf b = {0};
	struct dsn_orig o = {0};
	struct dsn_doc d = {.info = info};
	char rnd[2 * 16 + 1], msgid_rand[2 * 8 + 1];
	enum sg_status st;

	if (info == NULL || info->hostname == NULL ||
	    info->postmaster == NULL || info->queue_id == NULL ||
	    info->sender == NULL || info->sender[0] == '\0' ||
	    info->rcpts == NULL || info->nrcpts == 0 || out == NULL ||
	    outlen == NULL)
		return SG_ERR_USAGE;
	for (size_t i = 0; i < info->nrcpts; i++)
		if (info->rcpts[i].addr == NULL)
			return SG_ERR_USAGE;
	if ((st = random_hex(rnd, 16)) != SG_OK ||
	    (st = random_hex(msgid_rand, 8)) != SG_OK)
		return st;
	snprintf(d.boundary, sizeof(d.boundary), "=_smimegate-dsn-%s", rnd);
	clean_value(d.host, sizeof(d.host), info->hostname);
	clean_value(d.qid, sizeof(d.qid), info->queue_id);
	d.now = info->now ? info->now : time(NULL);
	d.max = info->max_original ? info->max_original : DSN_MAX_ORIGINAL;
	if ((st = orig_read(&d, orig_fd, &o)) != SG_OK)
		goto fail;
	write_headers(&b, &d, msgid_rand);
	write_text(&b, &d, &o);
	write_report(&b, &d);
	write_original(&b, &d, &o);
	kv_addf(&b, "--%s--\r\n", d.boundary);
	if (b.oom) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	free(o.data);
	*out = b.p;
	*outlen = b.len;
	return SG_OK;
fail:
	free(o.data);
	free(b.p);
	return st;
}

static int
sink_buf(void *arg, const void *p, size_t n)
{
	struct kv_buf *b = arg;

	kv_add(b, p, n);
	return b->oom ? -1 : 0;
}

enum sg_status
dsn_sign(struct sg_ctx *ctx, const struct sg_key *key, const char *dsn,
         size_t dsnlen, char **out, size_t *outlen)
{
	struct sg_sign_opts so = {
	    .signer = key, .digest = SG_DIGEST_SHA256, .opaque = 0};
	struct kv_buf b = {0};
	struct sg_sink sink = {sink_buf, &b};
	struct sg_msg *msg = NULL;
	enum sg_status st;

	if (ctx == NULL || key == NULL || dsn == NULL || out == NULL ||
	    outlen == NULL)
		return SG_ERR_USAGE;
	if ((st = sg_msg_open_mem(ctx, dsn, dsnlen, &msg)) != SG_OK)
		goto fail;
	if ((st = sg_sign(ctx, msg, &so, &sink)) != SG_OK)
		goto fail;
	if (b.oom || b.p == NULL) {
		st = SG_ERR_NOMEM;
		goto fail;
	}
	sg_msg_free(msg);
	*out = b.p;
	*outlen = b.len;
	return SG_OK;
fail:
	sg_msg_free(msg);
	free(b.p);
	return st;
}

int
dsn_wants_failure(const char *notify)
{
	const char *p = notify;

	if (notify == NULL || notify[0] == '\0')
		return 1;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

enum sg_status
dsn_env_init(struct spool_env *env, const char *sender, const char *hostname,
             time_t now)
{
	memset(env, 0, sizeof(*env));
	if (sender == NULL || sender[0] == '\0')
		return SG_ERR_USAGE;
	env->mail_from = strdup("");
	env->rcpts = calloc(2, sizeof(*env->rcpts));
	if (env->rcpts != NULL && (env->rcpts[0] = strdup(sender)) != NULL)
		env->nrcpts = 1;
	env->listener = strdup(DSN_LISTENER);
	env->role = 0;
	env->client = strdup("127.0.0.1");
	env->helo = strdup(hostname ? hostname : "localhost");
	env->received = now ? now : time(NULL);
	if (env->mail_from == NULL || env->nrcpts != 1 ||
	    env->listener == NULL || env->client == NULL || env->helo == NULL) {
		spool_env_clear(env);
		return SG_ERR_NOMEM;
	}
	return SG_OK;
}

int
dsn_is_notification(const struct spool_env *env)
{
	return env != NULL && env->role == 0 && env->listener != NULL &&
	       strcmp(env->listener, DSN_LISTENER) == 0;
}
