/*
 * relay.h - the gateway's SMTP client: hands a processed message to the
 * next hop (a [route] for the recipient's domain, else the smarthost).
 *
 * What it trusts: the configuration (next hops and their TLS modes) and
 * the envelope from the spool.  Nothing the next hop says is trusted: its
 * replies are bounded (RELAY_LINE_MAX octets per line, RELAY_LINES_MAX
 * lines per reply) and a reply that breaks the grammar ends the session
 * as a temporary failure.  What it can reach: DNS (getaddrinfo of the
 * next hop's name, or MX lookups through mx.h), TCP to the next hops, and the
 * system's CA bundle or a route's own CA file (read with the configuration) to
 * verify a next hop's certificate; never the spool or the store.
 *
 * Blocking I/O with deadlines, meant for the queue's worker threads:
 * RELAY_CONNECT_TIMEOUT per address tried, RELAY_COMMAND_TIMEOUT per
 * command reply (and per write), RELAY_DATA_TIMEOUT for the reply to the
 * final dot (RFC 5321 4.5.3.2).  Each worker thread keeps at most one
 * idle connection per next hop (and TLS mode) for reuse, RSET first; one
 * idle longer than RELAY_IDLE_TIMEOUT is closed with QUIT when the thread
 * delivers next (or exits), never reused.
 *
 * TLS (enum cfg_tls of the route, or smarthost_tls):
 *   none           never STARTTLS;
 *   opportunistic  STARTTLS when offered; plain when not offered, refused
 *                  or when the handshake fails (then on a new connection);
 *                  the certificate is verified and the result logged, and
 *                  a failed verification does not stop delivery;
 *   required       STARTTLS must be offered, the handshake succeed and the
 *                  certificate verify against the system CA bundle and the
 *                  next hop's name (or IP address); otherwise every
 *                  recipient of that hop is deferred (a temporary status).
 * A hop's own CA file (tls_ca_file) replaces the system bundle; its pins
 * (tls_fingerprint: SHA-256 of the certificate or of its public key)
 * verify a certificate that matches one without any CA, or together with
 * the CA file when both are given.
 *
 * Log lines (stderr), one per transaction:
 *   smimegate[PID]: relay: qid=ID nexthop=HOST:PORT tls=yes|no
 *     verified=yes|no rcpts=N reply="..." event=delivered|deferred|failed
 * where N counts the recipients of that next hop, reply is the DATA reply
 * (or the one that ended the transaction), and the event is "delivered"
 * when the next hop took the message for at least one recipient,
 * "failed" when it refused every one of them permanently, else
 * "deferred".
 */
#ifndef SG_RELAY_H
#define SG_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/spool.h"
#include "policy/config.h"
#include "smimegate.h"

#define RELAY_CONNECT_TIMEOUT 30   /* seconds, per address */
#define RELAY_COMMAND_TIMEOUT 300  /* seconds, per reply and per write */
#define RELAY_DATA_TIMEOUT    600  /* seconds for the reply to the dot */
#define RELAY_IDLE_TIMEOUT    60   /* seconds a kept connection may idle */
#define RELAY_LINE_MAX        1024 /* octets of one reply line, CRLF too */
#define RELAY_LINES_MAX       128  /* lines of one reply */
#define RELAY_TEXT_MAX        2048 /* octets kept of one reply's text */
#define RELAY_REPLY_MAX       512  /* a reply on one line, as kept */
#define RELAY_HOST_MAX        256  /* a next hop's host name */

/* ---- replies (pure; unit tested) ---- */

/* One reply of the next hop, possibly multiline ("250-..." lines ending
 * with "250 ..."). */
struct relay_reply {
	int code;                  /* 200..599 once complete */
	unsigned nlines;           /* lines fed */
	size_t len;                /* of TEXT */
	char text[RELAY_TEXT_MAX]; /* the lines without their codes, joined
	                            * by '\n'; truncated when long */
};

void relay_reply_init(struct relay_reply *r);
/*
 * Feeds one LINE (without CRLF) of a reply.  Returns 1 when the reply is
 * complete, 0 when more lines follow, -1 when LINE is malformed (no
 * three-digit code 200..599, a code that differs from the first line's,
 * a separator other than ' ' or '-') or the reply has more than
 * RELAY_LINES_MAX lines.  Text beyond RELAY_TEXT_MAX is dropped.
 */
int relay_reply_feed(struct relay_reply *r, const char *line);
/* The reply on one line for logs and bounces: "CODE text text" (the
 * lines joined by a space, control bytes replaced), truncated to LEN. */
void relay_reply_line(const struct relay_reply *r, char *buf, size_t len);
/* SG_OK (2xx), SG_ERR_TEMP (4xx, and anything not 2xx/5xx),
 * SG_ERR_LIMIT (552: too big) or SG_ERR_NOT_FOUND (any other 5xx: the
 * next hop refused it for good). */
enum sg_status relay_reply_status(int code);

/* ---- EHLO keywords (pure; unit tested) ---- */

enum relay_ext_flag {
	RELAY_EXT_STARTTLS = 1u << 0,
	RELAY_EXT_SIZE = 1u << 1,
	RELAY_EXT_8BITMIME = 1u << 2,
	RELAY_EXT_DSN = 1u << 3,
	RELAY_EXT_PIPELINING = 1u << 4,
	RELAY_EXT_SMTPUTF8 = 1u << 5,
	RELAY_EXT_ENHANCED = 1u << 6, /* ENHANCEDSTATUSCODES */
};

struct relay_ext {
	unsigned flags; /* enum relay_ext_flag */
	uintmax_t size; /* SIZE's limit; 0: none given */
};

/* The extensions of an EHLO reply (any case; its first line is the next
 * hop's name and is skipped).  Unknown keywords are ignored. */
void relay_ext_parse(const struct relay_reply *ehlo, struct relay_ext *ext);

/* ---- dot-stuffing (pure; unit tested) ---- */

/* The state between chunks of one message. */
struct relay_stuff {
	int bol; /* at the beginning of a line */
	int cr;  /* the last byte was a CR */
};

/* Room OUT needs for N input octets. */
#define RELAY_STUFF_OUT(n) (3 * (n))
/* Room OUT needs for relay_stuff_end. */
#define RELAY_STUFF_END 8

void relay_stuff_init(struct relay_stuff *s);
/*
 * Copies N octets of message IN to OUT (RELAY_STUFF_OUT(N) octets) as
 * SMTP DATA: a '.' starting a line is doubled, and a bare LF or CR
 * becomes CRLF.  Returns the octets written.
 */
size_t relay_stuff(struct relay_stuff *s, const unsigned char *in, size_t n,
                   unsigned char *out);
/* Ends the data: CRLF when the last line had none, then ".\r\n".  OUT
 * has RELAY_STUFF_END octets.  Returns the octets written. */
size_t relay_stuff_end(struct relay_stuff *s, unsigned char *out);

/* ---- next hops (pure; unit tested) ---- */

/* How a next hop's certificate is checked: a copy of its route's or the
 * smarthost's struct cfg_peer that outlives a reload of the
 * configuration: the anchors (a reference, or NULL for the system's) and
 * the pins (owned). */
struct relay_check {
	struct x509_store_st *ca;
	unsigned char (*pins)[32];
	size_t npins;
};

/* The recipients of one message that go to one next hop. */
struct relay_hop {
	char *nexthop; /* "host:port" or "[v6]:port" (owned) */
	enum cfg_tls tls;
	size_t *rcpts; /* indexes into the envelope's rcpts (owned) */
	size_t nrcpts;
	struct relay_check check;
	/* MX: NEXTHOP is "DOMAIN:PORT", the recipients' domain, whose MX
	 * hosts (mx.h) are tried in order, asking DNS (family AF_INET) or
	 * the system's resolver. */
	int mx;
	struct sockaddr_in dns;
};

/* Where the recipients of a message go, independent of the configuration
 * it was made from (a reload may free that meanwhile). */
struct relay_plan {
	char *helo;             /* our name for EHLO (owned) */
	struct relay_hop *hops; /* one per next hop and TLS mode */
	size_t nhops;
	size_t *local; /* recipients without a next hop: the maildir */
	size_t nlocal;
};

/*
 * Groups the recipients of ENV by next hop: the route of the recipient's
 * domain (cfg_route_for, the part after the last '@'), else the
 * smarthost, else none (PLAN->local); a next hop "mx" makes one MX hop
 * per recipient domain (lowercased).  Recipients with the same next hop
 * (any case), TLS mode and certificate check share one hop, in envelope
 * order.  SG_OK or
 * SG_ERR_NOMEM (PLAN untouched).  Free with relay_plan_clear.
 */
enum sg_status relay_plan_make(const struct cfg *cfg,
                               const struct spool_env *env,
                               struct relay_plan *plan);
/* Frees what PLAN holds and zeroes it; a zeroed PLAN is fine. */
void relay_plan_clear(struct relay_plan *plan);

/* Splits "host:port" or "[v6]:port" into HOST (HOSTLEN) and PORT
 * (PORTLEN).  0, or -1 when malformed or too long. */
int relay_split_hostport(const char *s, char *host, size_t hostlen, char *port,
                         size_t portlen);

/* ---- the client ---- */

/* What became of one recipient. */
struct relay_result {
	enum sg_status st; /* SG_OK, temporary, or permanent */
	char *reply;       /* the next hop's reply on one line, or why (owned;
	                    * NULL when out of memory) */
};
/* Frees the replies of the N entries of RES (not RES itself). */
void relay_results_clear(struct relay_result *res, size_t n);

struct relay;

/* A client: the TLS context (the system's CA bundle) and the per-thread
 * connection caches.  NULL when out of memory or when OpenSSL fails. */
struct relay *relay_new(void);
/*
 * Frees R, closing the calling thread's kept connections.  Every other
 * thread that delivered must have exited first (their connections were
 * closed at their exit).  NULL does nothing.
 */
void relay_free(struct relay *r);

/*
 * Delivers the message FD (read with pread from offset 0, streamed; its
 * offset is not used) for the recipients of HOP, over one SMTP
 * transaction, as HELO (our name).  RES has ENV->nrcpts entries; the
 * entries of HOP's recipients are set (any reply they held is freed), no
 * others; free them with relay_results_clear.  Thread-safe: each
 * thread uses its own connections.
 *
 * Returns SG_OK when the next hop accepted the message for at least one
 * recipient, else the status of the first failure (SG_ERR_TEMP for a
 * connection, TLS, timeout or protocol failure, or what
 * relay_reply_status says of a refusal).  Writes the log line.
 */
enum sg_status relay_deliver(struct relay *r, const char *helo,
                             const struct relay_hop *hop,
                             const struct spool_env *env, int fd,
                             struct relay_result *res);

#endif /* SG_RELAY_H */
