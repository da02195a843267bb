/*
 * relay.c - the SMTP client to the next hops (relay.h is the contract).
 *
 * What it trusts: the configuration and the spooled envelope.  What it
 * can reach: DNS, TCP to the next hops, the system's CA bundle.  Replies
 * of a next hop are bounded and parsed strictly; a broken one ends the
 * session (temporary failure), and data a next hop sends before our TLS
 * handshake is refused (no reply injection across STARTTLS).
 *
 * Sockets are non-blocking and every read and write waits with poll()
 * against a deadline, for plain and TLS connections alike.  Each worker
 * thread has a small cache of idle connections (pthread-specific, so no
 * lock): a delivery takes its next hop's connection out of the cache,
 * checks it is alive, RSETs it, and puts it back when the session is
 * still sound.
 */
#include "daemon/relay.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "daemon/daemon_dl.h"
#include "daemon/log.h"
#include "daemon/mx.h"

#define RELAY_CACHE_MAX    16    /* idle connections kept per thread */
#define RELAY_QUIT_TIMEOUT 5     /* seconds for QUIT when closing */
#define RELAY_BUF          65536 /* octets read from the message at once */
#define RELAY_CMD_MAX      4096  /* one command we send, CRLF included */
#define RELAY_WHY_MAX      256

/* ---- replies ---- */

void
relay_reply_init(struct relay_reply *r)
{
	memset(r, 0, sizeof(*r));
}

int
relay_reply_feed(struct relay_reply *r, const char *line)
{
	const char *text;
	int code;

	if (!isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599)
		return -1;
	if (line[3] != '\0' && line[3] != ' ' && line[3] != '-')
		return -1;
	if ((r->nlines > 0 && code != r->code) || r->nlines >= RELAY_LINES_MAX)
		return -1;
	r->code = code;
	text = line[3] ? line + 4 : "";
	if (r->nlines++ > 0 && r->len + 1 < sizeof(r->text))
		r->text[r->len++] = '\n';
	for (; *text && r->len + 1 < sizeof(r->text); text++)
		r->text[r->len++] = *text;
	r->text[r->len] = '\0';
	return line[3] == '-' ? 0 : 1;
}

void
relay_reply_line(const struct relay_reply *r, char *buf, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	snprintf(buf, len, "%d%s", r->code, r->len ? " " : "");
	n = strlen(buf);
	for (size_t i = 0; i < r->len && n + 1 < len; i++) {
		unsigned char c = (unsigned char)r->text[i];
		buf[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	buf[n] = '\0';
}

enum sg_status
relay_reply_status(int code)
{
	if (code >= 200 && code <= 299)
		return SG_OK;
	if (code == 552)
		return SG_ERR_LIMIT;
	if (code >= 500 && code <= 599)
		return SG_ERR_NOT_FOUND;
	return SG_ERR_TEMP;
}

/* ---- EHLO keywords ---- */

void
relay_ext_parse(const struct relay_reply *ehlo, struct relay_ext *ext)
{
	static const struct {
		const char *word;
		unsigned flag;
	} words[] = {
	    {"STARTTLS", RELAY_EXT_STARTTLS},
	    {"SIZE", RELAY_EXT_SIZE},
	    {"8BITMIME", RELAY_EXT_8BITMIME},
	    {"DSN", RELAY_EXT_DSN},
	    {"PIPELINING", RELAY_EXT_PIPELINING},
	    {"SMTPUTF8", RELAY_EXT_SMTPUTF8},
	    {"ENHANCEDSTATUSCODES", RELAY_EXT_ENHANCED},
	};
	const char *p = ehlo->text;

	memset(ext, 0, sizeof(*ext));
	/* the first line is the next hop's name and greeting */
	p = strchr(p, '\n');
	while (p != NULL) {
		const char *line = p + 1, *end = strchr(line, '\n');
		size_t n = strcspn(line, " \n");

		p = end;
		for (size_t w = 0; w < sizeof(words) / sizeof(*words); w++) {
			if (strlen(words[w].word) != n ||
			    strncasecmp(line, words[w].word, n) != 0)
				continue;
			ext->flags |= words[w].flag;
			if (words[w].flag == RELAY_EXT_SIZE && line[n] == ' ' &&
			    isdigit((unsigned char)line[n + 1]))
				ext->size = strtoumax(line + n + 1, NULL, 10);
		}
	}
}

/* ---- dot-stuffing ---- */

void
relay_stuff_init(struct relay_stuff *s)
{
	s->bol = 1;
	s->cr = 0;
}

size_t
relay_stuff(struct relay_stuff *s, const unsigned char *in, size_t n,
            unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];

		if (s->cr && c != '\n') { /* a bare CR ends a line too */
			out[o++] = '\n';
			s->bol = 1;
			s->cr = 0;
		}
		if (c == '\n') {
			if (!s->cr)
				out[o++] = '\r';
			out[o++] = '\n';
			s->bol = 1;
			s->cr = 0;
			continue;
		}
		if (s->bol && c == '.')
			out[o++] = '.';
		out[o++] = c;
		s->bol = 0;
		s->cr = c == '\r';
	}
	return o;
}

size_t
relay_stuff_end(struct relay_stuff *s, unsigned char *out)
{
	size_t o = 0;

	if (s->cr) {
		out[o++] = '\n';
		s->bol = 1;
		s->cr = 0;
	}
	if (!s->bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	s->bol = 1;
	return o + 3;
}

/* ---- next hops ---- */

int
relay_split_hostport(const char *s, char *host, size_t hostlen, char *port,
                     size_t portlen)
{
	const char *colon, *h = s;
	size_t hl;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) >= portlen ||
	    colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atol(colon + 1) < 1 || atol(colon + 1) > 65535 ||
	    strlen(colon + 1) > 5)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

/* ---- certificate checks ---- */

/* DST (empty) becomes a copy of SRC; -1 when out of memory (DST empty). */
static int
check_copy(struct relay_check *dst, const struct relay_check *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->npins > 0) {
		if ((dst->pins = malloc(src->npins * sizeof(*src->pins))) ==
		    NULL)
			return -1;
		memcpy(dst->pins, src->pins, src->npins * sizeof(*src->pins));
		dst->npins = src->npins;
	}
	if (src->ca != NULL && X509_STORE_up_ref(src->ca) != 1) {
		free(dst->pins);
		memset(dst, 0, sizeof(*dst));
		return -1;
	}
	dst->ca = src->ca;
	return 0;
}

static int
check_same(const struct relay_check *a, const struct relay_check *b)
{
	return a->ca == b->ca && a->npins == b->npins &&
	       (a->npins == 0 ||
	        memcmp(a->pins, b->pins, a->npins * sizeof(*a->pins)) == 0);
}

static void
check_clear(struct relay_check *c)
{
	X509_STORE_free(c->ca);
	free(c->pins);
	memset(c, 0, sizeof(*c));
}

void
relay_plan_clear(struct relay_plan *plan)
{
	for (size_t h = 0; h < plan->nhops; h++) {
		free(plan->hops[h].nexthop);
		free(plan->hops[h].rcpts);
		check_clear(&plan->hops[h].check);
	}
	free(plan->hops);
	free(plan->local);
	free(plan->helo);
	memset(plan, 0, sizeof(*plan));
}

/* Which hop of P recipient RCPT goes to (adding it), or SIZE_MAX for
 * none (the maildir); *NOMEM is set when out of memory. */
static size_t
plan_hop(const struct cfg *cfg, struct relay_plan *p, const char *rcpt,
         int *nomem)
{
	const char *at = strrchr(rcpt, '@');
	const struct cfg_route *route = cfg_route_for(cfg, at ? at + 1 : "");
	const char *nexthop = route ? route->nexthop : cfg->smarthost;
	enum cfg_tls tls = route ? route->tls : cfg->smarthost_tls;
	const struct cfg_peer *peer =
	    route ? &route->peer : &cfg->smarthost_peer;
	const struct relay_check want = {peer->ca, peer->pins, peer->npins};
	struct relay_hop *hop;
	unsigned mxport = route ? route->mx_port : cfg->smarthost_mx_port;
	int mx = mxport != 0;
	char mxhop[RELAY_HOST_MAX + 16];
	size_t h;

	if (nexthop == NULL)
		return SIZE_MAX;
	if (mx) {
		snprintf(mxhop, sizeof(mxhop), "%.*s:%u", RELAY_HOST_MAX - 1,
		         at ? at + 1 : "", mxport);
		for (char *q = mxhop; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		nexthop = mxhop;
	}
	for (h = 0; h < p->nhops; h++)
		if (p->hops[h].tls == tls && p->hops[h].mx == mx &&
		    check_same(&p->hops[h].check, &want) &&
		    strcasecmp(p->hops[h].nexthop, nexthop) == 0)
			return h;
	hop = &p->hops[h];
	if ((hop->nexthop = strdup(nexthop)) == NULL ||
	    check_copy(&hop->check, &want) == -1) {
		free(hop->nexthop);
		memset(hop, 0, sizeof(*hop));
		*nomem = 1;
		return SIZE_MAX;
	}
	hop->tls = tls;
	hop->mx = mx;
	hop->dns = cfg->dns_server;
	p->nhops++;
	return h;
}

enum sg_status
relay_plan_make(const struct cfg *cfg, const struct spool_env *env,
                struct relay_plan *plan)
{
	struct relay_plan p = {0};
	size_t n = env->nrcpts, *hop_of = NULL;
	int nomem = 0;

	p.helo = strdup(cfg->hostname ? cfg->hostname : "localhost");
	hop_of = calloc(n + 1, sizeof(*hop_of));
	p.hops = calloc(n + 1, sizeof(*p.hops));
	p.local = calloc(n + 1, sizeof(*p.local));
	if (p.helo == NULL || hop_of == NULL || p.hops == NULL ||
	    p.local == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		hop_of[i] = plan_hop(cfg, &p, env->rcpts[i], &nomem);
		if (nomem)
			goto fail;
		if (hop_of[i] == SIZE_MAX)
			p.local[p.nlocal++] = i;
		else
			p.hops[hop_of[i]].nrcpts++;
	}
	for (size_t h = 0; h < p.nhops; h++) {
		p.hops[h].rcpts = calloc(p.hops[h].nrcpts, sizeof(size_t));
		if (p.hops[h].rcpts == NULL)
			goto fail;
		p.hops[h].nrcpts = 0;
	}
	for (size_t i = 0; i < n; i++)
		if (hop_of[i] != SIZE_MAX) {
			struct relay_hop *hop = &p.hops[hop_of[i]];
			hop->rcpts[hop->nrcpts++] = i;
		}
	free(hop_of);
	*plan = p;
	return SG_OK;
fail:
	free(hop_of);
	relay_plan_clear(&p);
	return SG_ERR_NOMEM;
}

void
relay_results_clear(struct relay_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(res[i].reply);
		res[i].reply = NULL;
	}
}

static void
result_set(struct relay_result *res, enum sg_status st, const char *reply)
{
	free(res->reply);
	res->st = st;
	res->reply = strdup(reply);
}

/* ---- connections ---- */

struct relay {
	SSL_CTX *ssl_ctx;
	pthread_key_t key; /* struct relay_cache of each thread */
};

struct relay_conn {
	char nexthop[RELAY_HOST_MAX + 16]; /* as configured */
	char host[RELAY_HOST_MAX];         /* for SNI and verification */
	enum cfg_tls tls;                  /* the mode it was opened with */
	int mx;                            /* an MX hop's */
	struct relay_check check;          /* and its certificate check */
	int fd;
	SSL *ssl;     /* once STARTTLS succeeded */
	int verified; /* the certificate verified */
	struct relay_ext ext;
	time_t idle_since; /* CLOCK_MONOTONIC seconds, while cached */
	size_t rpos, rlen; /* read buffer */
	char rbuf[2 * RELAY_LINE_MAX];
	char why[RELAY_WHY_MAX]; /* what broke */
};

struct relay_cache {
	struct relay_conn *conns[RELAY_CACHE_MAX]; /* oldest first */
	size_t n;
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void why(struct relay_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
why(struct relay_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

/* OpenSSL's first error, for a message; the queue is emptied. */
static const char *
ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "%s", errno ? strerror(errno) : "closed");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Waits for EV on C's socket until DEADLINE (ms).  0, or -1 with why. */
static int
conn_wait(struct relay_conn *c, short ev, long long deadline)
{
	for (;;) {
		struct pollfd p = {c->fd, ev, 0};
		long long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			why(c, "timeout talking to %s", c->nexthop);
			return -1;
		}
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 0; /* errors show in the read or write */
		if (n < 0 && errno != EINTR) {
			why(c, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* Reads what is there into C's buffer (at least one octet). */
static int
conn_fill(struct relay_conn *c, long long deadline)
{
	char err[160];

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	for (;;) {
		size_t room = sizeof(c->rbuf) - c->rlen;
		short ev = POLLIN;

		if (c->ssl != NULL) {
			int k = SSL_read(c->ssl, c->rbuf + c->rlen, (int)room);
			if (k > 0) {
				c->rlen += (size_t)k;
				return 0;
			}
			switch (SSL_get_error(c->ssl, k)) {
			case SSL_ERROR_WANT_READ:
				break;
			case SSL_ERROR_WANT_WRITE:
				ev = POLLOUT;
				break;
			case SSL_ERROR_ZERO_RETURN:
				why(c, "%s closed the connection", c->nexthop);
				return -1;
			default:
				why(c, "TLS read from %s: %s", c->nexthop,
				    ssl_error(err, sizeof(err)));
				return -1;
			}
		} else {
			ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
			if (n > 0) {
				c->rlen += (size_t)n;
				return 0;
			}
			if (n == 0) {
				why(c, "%s closed the connection", c->nexthop);
				return -1;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				why(c, "read from %s: %s", c->nexthop,
				    strerror(errno));
				return -1;
			}
		}
		if (conn_wait(c, ev, deadline) < 0)
			return -1;
	}
}

/* One line of a reply into LINE (LEN), without its CRLF. */
static int
conn_getline(struct relay_conn *c, char *line, size_t len, long long deadline)
{
	for (;;) {
		char *start = c->rbuf + c->rpos;
		char *nl = memchr(start, '\n', c->rlen - c->rpos);

		if (nl != NULL) {
			size_t n = (size_t)(nl - start);
			c->rpos += n + 1;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n >= len || memchr(start, '\0', n) != NULL) {
				why(c, "%s sent a malformed reply line",
				    c->nexthop);
				return -1;
			}
			memcpy(line, start, n);
			line[n] = '\0';
			return 0;
		}
		if (c->rlen - c->rpos >= RELAY_LINE_MAX) {
			why(c, "%s sent a reply line over %d octets",
			    c->nexthop, RELAY_LINE_MAX);
			return -1;
		}
		if (conn_fill(c, deadline) < 0)
			return -1;
	}
}

static int
conn_write(struct relay_conn *c, const void *buf, size_t len,
           long long deadline)
{
	const char *p = buf;
	char err[160];

	while (len > 0) {
		short ev = POLLOUT;

		if (c->ssl != NULL) {
			int chunk = len > INT_MAX ? INT_MAX : (int)len;
			int k = SSL_write(c->ssl, p, chunk);
			if (k > 0) {
				p += k;
				len -= (size_t)k;
				continue;
			}
			switch (SSL_get_error(c->ssl, k)) {
			case SSL_ERROR_WANT_READ:
				ev = POLLIN;
				break;
			case SSL_ERROR_WANT_WRITE:
				break;
			default:
				why(c, "TLS write to %s: %s", c->nexthop,
				    ssl_error(err, sizeof(err)));
				return -1;
			}
		} else {
			ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n > 0) {
				p += n;
				len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				why(c, "write to %s: %s", c->nexthop,
				    strerror(errno));
				return -1;
			}
		}
		if (conn_wait(c, ev, deadline) < 0)
			return -1;
	}
	return 0;
}

/* Reads one whole reply within TIMEOUT seconds. */
static int
conn_reply(struct relay_conn *c, struct relay_reply *r, unsigned timeout)
{
	long long deadline = now_ms() + (long long)timeout * 1000;
	char line[RELAY_LINE_MAX];

	relay_reply_init(r);
	for (;;) {
		int k;

		if (conn_getline(c, line, sizeof(line), deadline) < 0)
			return -1;
		if ((k = relay_reply_feed(r, line)) < 0) {
			why(c, "%s sent a malformed reply", c->nexthop);
			return -1;
		}
		if (k == 1)
			return 0;
	}
}

static int conn_cmd(struct relay_conn *c, struct relay_reply *r,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sends one command (FMT, without CRLF) and reads its reply. */
static int
conn_cmd(struct relay_conn *c, struct relay_reply *r, const char *fmt, ...)
{
	char cmd[RELAY_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 2) {
		why(c, "command too long");
		return -1;
	}
	memcpy(cmd + n, "\r\n", 2);
	if (conn_write(c, cmd, (size_t)n + 2,
	               now_ms() + RELAY_COMMAND_TIMEOUT * 1000LL) < 0)
		return -1;
	return conn_reply(c, r, RELAY_COMMAND_TIMEOUT);
}

/* Closes C; QUIT first when it is sound (QUIT_IT). */
static void
conn_close(struct relay_conn *c, int quit_it)
{
	if (c == NULL)
		return;
	if (quit_it && c->fd >= 0) {
		long long deadline = now_ms() + RELAY_QUIT_TIMEOUT * 1000LL;
		char line[RELAY_LINE_MAX];
		if (conn_write(c, "QUIT\r\n", 6, deadline) == 0)
			(void)conn_getline(c, line, sizeof(line), deadline);
	}
	if (c->ssl != NULL) {
		(void)SSL_shutdown(c->ssl); /* close_notify, no waiting */
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	if (c->fd >= 0)
		close(c->fd);
	check_clear(&c->check);
	free(c);
}

/* Connects C to the address SA; 0, or -1 with WHY. */
static int
conn_connect_to(struct relay_conn *c, const struct sockaddr *sa, socklen_t len)
{
	int err = 0, one = 1;
	socklen_t elen = sizeof(err);

	c->fd = socket(sa->sa_family,
	               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		why(c, "socket: %s", strerror(errno));
		return -1;
	}
	/* Commands are small writes waiting for replies: without this every
	 * delivery waits for the peer's delayed ACK. */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		err = errno;
	else if (conn_wait(c, POLLOUT,
	                   now_ms() + RELAY_CONNECT_TIMEOUT * 1000LL) < 0)
		err = ETIMEDOUT;
	else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err == 0)
		return 0;
	why(c, "connect to %s: %s", c->nexthop, strerror(err));
	close(c->fd);
	c->fd = -1;
	return -1;
}

/* Connects C to HOST:PORT, trying each address in turn. */
static int
conn_connect(struct relay_conn *c, const char *host, const char *port)
{
	struct addrinfo hints = {0}, *res = NULL;
	int rc;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		why(c, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	why(c, "no address for %s", host);
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		if (conn_connect_to(c, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
	freeaddrinfo(res);
	return c->fd >= 0 ? 0 : -1;
}

/* Connects C to the first MX host of DOMAIN (HOP) that answers with a
 * 220 greeting, in preference order, on PORT; C->host becomes its name.
 * 0, or -1 with WHY and *PERM set when the domain takes no mail. */
static int
conn_connect_mx(struct relay_conn *c, const struct relay_hop *hop,
                const char *self, const char *domain, const char *port,
                struct relay_reply *rep, int *perm)
{
	struct mx_list *mx = malloc(sizeof(*mx));
	char line[RELAY_REPLY_MAX], reason[RELAY_WHY_MAX];
	uint16_t p = htons((uint16_t)atoi(port));
	enum sg_status st;

	if (mx == NULL) {
		why(c, "out of memory");
		return -1;
	}
	st = mx_lookup(domain, self, &hop->dns, mx, reason, sizeof(reason));
	if (st != SG_OK) {
		why(c, "%s", reason);
		*perm = st == SG_ERR_NOT_FOUND;
		free(mx);
		return -1;
	}
	for (size_t i = 0; i < mx->n && c->fd < 0; i++) {
		struct mx_host *h = &mx->host[i];
		for (size_t a = 0; a < h->naddrs && c->fd < 0; a++) {
			struct sockaddr_storage *ss = &h->addr[a];
			socklen_t len;

			if (ss->ss_family == AF_INET) {
				((struct sockaddr_in *)ss)->sin_port = p;
				len = sizeof(struct sockaddr_in);
			} else {
				((struct sockaddr_in6 *)ss)->sin6_port = p;
				len = sizeof(struct sockaddr_in6);
			}
			snprintf(c->host, sizeof(c->host), "%s", h->name);
			if (conn_connect_to(c, (struct sockaddr *)ss, len) < 0)
				continue;
			if (conn_reply(c, rep, RELAY_COMMAND_TIMEOUT) == 0 &&
			    rep->code == 220)
				break;
			if (c->fd >= 0 && rep->code != 0) {
				relay_reply_line(rep, line, sizeof(line));
				why(c, "MX %s greeted with %s", h->name, line);
			}
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
		}
	}
	free(mx);
	return c->fd >= 0 ? 0 : -1;
}

/* Whether CERT matches one of C's pins, by the SHA-256 of the certificate
 * or of its SubjectPublicKeyInfo; when not, WHY names it. */
static int
pinned(struct relay_conn *c, X509 *cert)
{
	unsigned char fp[2][EVP_MAX_MD_SIZE], *spki = NULL;
	unsigned n = 0, m = 0;
	char hex[2 * 32 + 1];
	int len;

	if (cert == NULL) {
		why(c, "%s sent no certificate (tls_fingerprint)", c->nexthop);
		return 0;
	}
	if (X509_digest(cert, EVP_sha256(), fp[0], &n) != 1 ||
	    (len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki)) <= 0 ||
	    EVP_Digest(spki, (size_t)len, fp[1], &m, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(spki);
		ERR_clear_error();
		why(c, "cannot digest the certificate of %s", c->nexthop);
		return 0;
	}
	OPENSSL_free(spki);
	for (size_t i = 0; i < c->check.npins; i++)
		if (memcmp(c->check.pins[i], fp[0], 32) == 0 ||
		    memcmp(c->check.pins[i], fp[1], 32) == 0)
			return 1;
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02X", fp[0][i]);
	why(c, "certificate of %s matches no tls_fingerprint (its SHA-256: %s)",
	    c->nexthop, hex);
	return 0;
}

/* The TLS handshake on C (after the next hop's 220 to STARTTLS). */
static int
conn_handshake(struct relay *r, struct relay_conn *c)
{
	long long deadline = now_ms() + RELAY_COMMAND_TIMEOUT * 1000LL;
	unsigned char ip[16];
	char err[160];
	X509 *peer;
	long vr;

	ERR_clear_error();
	if ((c->ssl = SSL_new(r->ssl_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (c->check.ca != NULL &&
	     SSL_set1_verify_cert_store(c->ssl, c->check.ca) != 1)) {
		why(c, "TLS setup: %s", ssl_error(err, sizeof(err)));
		return -1;
	}
	if (inet_pton(AF_INET, c->host, ip) == 1 ||
	    inet_pton(AF_INET6, c->host, ip) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host);
	} else {
		SSL_set_tlsext_host_name(c->ssl, c->host);
		SSL_set1_host(c->ssl, c->host);
	}
	for (;;) {
		int k = SSL_connect(c->ssl), e;
		short ev = POLLIN;

		if (k == 1)
			break;
		e = SSL_get_error(c->ssl, k);
		if (e == SSL_ERROR_WANT_WRITE)
			ev = POLLOUT;
		else if (e != SSL_ERROR_WANT_READ) {
			why(c, "TLS handshake with %s: %s", c->nexthop,
			    ssl_error(err, sizeof(err)));
			return -1;
		}
		if (conn_wait(c, ev, deadline) < 0)
			return -1;
	}
	vr = SSL_get_verify_result(c->ssl);
	peer = SSL_get0_peer_certificate(c->ssl);
	c->verified = vr == X509_V_OK && peer != NULL;
	if (c->check.npins > 0 && !pinned(c, peer))
		c->verified = 0; /* why says which certificate came */
	else if (c->check.npins > 0 && c->check.ca == NULL)
		c->verified = 1; /* the pin is the check (relay.h) */
	else if (!c->verified)
		why(c, "certificate of %s not verified: %s", c->nexthop,
		    X509_verify_cert_error_string(vr));
	return 0;
}

/* EHLO (HELO when refused) as HELO; fills C's extensions. */
static int
conn_ehlo(struct relay_conn *c, const char *helo)
{
	struct relay_reply rep;
	char line[RELAY_REPLY_MAX];

	if (conn_cmd(c, &rep, "EHLO %s", helo) < 0)
		return -1;
	if (rep.code == 250) {
		relay_ext_parse(&rep, &c->ext);
		return 0;
	}
	memset(&c->ext, 0, sizeof(c->ext));
	if (rep.code / 100 == 5 && conn_cmd(c, &rep, "HELO %s", helo) < 0)
		return -1;
	if (rep.code == 250)
		return 0;
	relay_reply_line(&rep, line, sizeof(line));
	why(c, "%s", line);
	return -1;
}

/* STARTTLS on C as its mode says.  -1: the session cannot go on; *RETRY
 * then says whether a plain session (opportunistic TLS) is worth it. */
static int
conn_tls(struct relay *r, struct relay_conn *c, const char *helo, int *retry)
{
	struct relay_reply rep;
	char line[RELAY_REPLY_MAX];
	int required = c->tls == CFG_TLS_REQUIRED;

	if (!(c->ext.flags & RELAY_EXT_STARTTLS)) {
		if (!required)
			return 0;
		why(c, "%s does not offer STARTTLS (TLS is required)",
		    c->nexthop);
		return -1;
	}
	if (conn_cmd(c, &rep, "STARTTLS") < 0)
		return -1;
	if (rep.code != 220) {
		if (!required)
			return 0; /* plain it is */
		relay_reply_line(&rep, line, sizeof(line));
		why(c, "STARTTLS refused (TLS is required): %s", line);
		return -1;
	}
	if (c->rpos != c->rlen) {
		why(c, "%s sent data before the TLS handshake", c->nexthop);
		return -1;
	}
	if (conn_handshake(r, c) < 0) {
		*retry = !required;
		return -1;
	}
	if (required && !c->verified)
		return -1; /* why says what failed */
	return conn_ehlo(c, helo);
}

/* A new session to HOP: connected, greeted, EHLO'd, STARTTLS as its
 * mode says (not at all without USE_TLS).  NULL with WHY. */
static struct relay_conn *
conn_open(struct relay *r, const char *helo, const struct relay_hop *hop,
          int use_tls, int *retry, int *perm, char *whybuf, size_t whylen)
{
	struct relay_conn *c = calloc(1, sizeof(*c));
	struct relay_reply rep;
	char port[16], line[RELAY_REPLY_MAX];

	if (c == NULL) {
		snprintf(whybuf, whylen, "out of memory");
		return NULL;
	}
	c->fd = -1;
	c->tls = hop->tls;
	c->mx = hop->mx;
	snprintf(c->nexthop, sizeof(c->nexthop), "%s", hop->nexthop);
	if (check_copy(&c->check, &hop->check) == -1) {
		why(c, "out of memory");
		goto fail;
	}
	if (relay_split_hostport(hop->nexthop, c->host, sizeof(c->host), port,
	                         sizeof(port)) < 0) {
		why(c, "bad next hop \"%s\"", hop->nexthop);
		goto fail;
	}
	if (hop->mx) {
		char domain[RELAY_HOST_MAX];
		snprintf(domain, sizeof(domain), "%s", c->host);
		if (conn_connect_mx(c, hop, helo, domain, port, &rep, perm) < 0)
			goto fail;
	} else if (conn_connect(c, c->host, port) < 0 ||
	           conn_reply(c, &rep, RELAY_COMMAND_TIMEOUT) < 0)
		goto fail;
	if (rep.code != 220) {
		relay_reply_line(&rep, line, sizeof(line));
		why(c, "%s greeted with %s", c->nexthop, line);
		goto fail;
	}
	if (conn_ehlo(c, helo) < 0)
		goto fail;
	if (use_tls && hop->tls != CFG_TLS_NONE &&
	    conn_tls(r, c, helo, retry) < 0)
		goto fail;
	if (!use_tls && hop->tls == CFG_TLS_REQUIRED) {
		why(c, "TLS is required");
		goto fail;
	}
	return c;
fail:
	snprintf(whybuf, whylen, "%s", c->why);
	conn_close(c, 0);
	return NULL;
}

/* Whether cached C is still sound: nothing came in meanwhile (an EOF, a
 * 421) but, on TLS, records that carry no data (session tickets). */
static int
conn_alive(struct relay_conn *c)
{
	struct pollfd p = {c->fd, POLLIN, 0};
	char b;
	int k;

	if (c->rpos != c->rlen)
		return 0;
	if (poll(&p, 1, 0) == 0)
		return 1;
	if (c->ssl == NULL)
		return 0;
	if ((k = SSL_read(c->ssl, &b, 1)) > 0)
		return 0;
	if (SSL_get_error(c->ssl, k) == SSL_ERROR_WANT_READ) {
		ERR_clear_error();
		return 1;
	}
	ERR_clear_error();
	return 0;
}

/* ---- the per-thread cache ---- */

static void
cache_free(void *p)
{
	struct relay_cache *cache = p;

	if (cache == NULL)
		return;
	for (size_t i = 0; i < cache->n; i++)
		conn_close(cache->conns[i], 1);
	free(cache);
}

static struct relay_cache *
cache_get(struct relay *r)
{
	struct relay_cache *cache = pthread_getspecific(r->key);
	sigset_t pipe;

	if (cache != NULL)
		return cache;
	if ((cache = calloc(1, sizeof(*cache))) == NULL)
		return NULL;
	if (pthread_setspecific(r->key, cache) != 0) {
		free(cache);
		return NULL;
	}
	/* A TLS write to a closed peer must fail, not kill the daemon. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	return cache;
}

static void
cache_remove(struct relay_cache *cache, size_t i)
{
	memmove(&cache->conns[i], &cache->conns[i + 1],
	        (cache->n - i - 1) * sizeof(*cache->conns));
	cache->n--;
}

/* Closes the connections idle too long. */
static void
cache_sweep(struct relay_cache *cache)
{
	time_t now = (time_t)(now_ms() / 1000);

	for (size_t i = cache->n; i-- > 0;)
		if (now - cache->conns[i]->idle_since >= RELAY_IDLE_TIMEOUT) {
			conn_close(cache->conns[i], 1);
			cache_remove(cache, i);
		}
}

/* Keeps C for reuse (the oldest goes when the cache is full). */
static void
cache_put(struct relay_cache *cache, struct relay_conn *c)
{
	if (cache->n == RELAY_CACHE_MAX) {
		conn_close(cache->conns[0], 1);
		cache_remove(cache, 0);
	}
	c->idle_since = (time_t)(now_ms() / 1000);
	cache->conns[cache->n++] = c;
}

/* A kept connection to HOP, RSET and ready, or NULL. */
static struct relay_conn *
cache_take(struct relay_cache *cache, const struct relay_hop *hop)
{
	struct relay_reply rep;

	for (size_t i = 0; i < cache->n; i++) {
		struct relay_conn *c = cache->conns[i];

		if (c->tls != hop->tls || c->mx != hop->mx ||
		    !check_same(&c->check, &hop->check) ||
		    strcasecmp(c->nexthop, hop->nexthop))
			continue;
		cache_remove(cache, i);
		if (conn_alive(c) && conn_cmd(c, &rep, "RSET") == 0 &&
		    rep.code == 250)
			return c;
		conn_close(c, 0);
		return NULL;
	}
	return NULL;
}

/* ---- one transaction ---- */

/* Whether S can go between <> in a command (nothing that ends or breaks
 * the command line). */
static int
path_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '<' ||
		    *s == '>')
			return 0;
	return 1;
}

/* Whether S is a safe parameter value (xtext, NOTIFY list, RET) of at
 * most MAX octets. */
static int
param_ok_max(const char *s, size_t max)
{
	if (*s == '\0' || strlen(s) > max)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == '=')
			return 0;
	return 1;
}

static int
param_ok(const char *s)
{
	return param_ok_max(s, 200);
}

/* Whether FD has an octet with the high bit set: 1, 0, -1 (read error). */
static int
has_8bit(int fd, unsigned char *buf)
{
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(fd, buf, RELAY_BUF, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] & 0x80)
				return 1;
		off += n;
	}
}

/* Streams FD to C as DATA (dot-stuffed, CRLF, the final dot). */
static int
send_data(struct relay_conn *c, int fd, unsigned char *in, unsigned char *out)
{
	struct relay_stuff s;
	off_t off = 0;
	size_t o;

	relay_stuff_init(&s);
	for (;;) {
		ssize_t n = pread(fd, in, RELAY_BUF, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			why(c, "reading the message: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		o = relay_stuff(&s, in, (size_t)n, out);
		if (conn_write(c, out, o,
		               now_ms() + RELAY_COMMAND_TIMEOUT * 1000LL) < 0)
			return -1;
	}
	o = relay_stuff_end(&s, out);
	return conn_write(c, out, o, now_ms() + RELAY_COMMAND_TIMEOUT * 1000LL);
}

/* What one transaction keeps between its steps. */
struct txn {
	struct relay_conn *c;
	const struct relay_hop *hop;
	const struct spool_env *env;
	int fd;                     /* the message */
	struct relay_result *res;   /* by envelope index */
	unsigned char *in, *out;    /* RELAY_BUF, and stuffed */
	char last[RELAY_REPLY_MAX]; /* the reply that ended it */
	int broken;                 /* the session cannot be reused */
	size_t accepted;            /* recipients RCPT accepted */
};

/* Sets the recipients of T's hop, those accepted so far only
 * (ONLY_ACCEPTED) or all, to ST with REPLY. */
static void
txn_all(struct txn *t, int only_accepted, enum sg_status st, const char *reply)
{
	for (size_t i = 0; i < t->hop->nrcpts; i++) {
		struct relay_result *r = &t->res[t->hop->rcpts[i]];
		if (!only_accepted || r->st == SG_OK)
			result_set(r, st, reply);
	}
	snprintf(t->last, sizeof(t->last), "%s", reply);
}

/* A reply that ends the transaction for the accepted recipients
 * (ONLY_ACCEPTED) or all. */
static void
txn_refused(struct txn *t, int only_accepted, const struct relay_reply *rep)
{
	char line[RELAY_REPLY_MAX];
	enum sg_status st = relay_reply_status(rep->code);

	relay_reply_line(rep, line, sizeof(line));
	if (rep->code == 421)
		t->broken = 1; /* the next hop is closing */
	txn_all(t, only_accepted, st == SG_OK ? SG_ERR_TEMP : st, line);
}

/* The session broke: the accepted recipients (ONLY_ACCEPTED) or all are
 * to be tried again. */
static void
txn_broken(struct txn *t, int only_accepted)
{
	t->broken = 1;
	t->accepted = 0;
	txn_all(t, only_accepted, SG_ERR_TEMP, t->c->why);
}

static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	if (n < len)
		vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/* MAIL FROM, with SIZE, BODY and the DSN parameters the next hop takes. */
static int
txn_mail(struct txn *t)
{
	const struct spool_env *env = t->env;
	struct relay_conn *c = t->c;
	struct relay_reply rep;
	char params[512] = "", reason[RELAY_REPLY_MAX];
	struct stat sb;

	if (!path_ok(env->mail_from)) {
		txn_all(t, 0, SG_ERR_USAGE, "bad sender address");
		return -1;
	}
	if ((c->ext.flags & RELAY_EXT_SIZE) && fstat(t->fd, &sb) == 0) {
		if (c->ext.size > 0 && (uintmax_t)sb.st_size > c->ext.size) {
			snprintf(reason, sizeof(reason),
			         "message of %jd octets is over the SIZE limit "
			         "of %s (%ju)",
			         (intmax_t)sb.st_size, c->nexthop, c->ext.size);
			txn_all(t, 0, SG_ERR_LIMIT, reason);
			return -1;
		}
		append(params, sizeof(params), " SIZE=%jd",
		       (intmax_t)sb.st_size);
	}
	if (c->ext.flags & RELAY_EXT_8BITMIME) {
		int eight = has_8bit(t->fd, t->in);
		if (eight < 0) {
			snprintf(reason, sizeof(reason),
			         "reading the message: %s", strerror(errno));
			txn_all(t, 0, SG_ERR_TEMP, reason);
			return -1;
		}
		if (eight)
			append(params, sizeof(params), " BODY=8BITMIME");
	}
	if (c->ext.flags & RELAY_EXT_DSN) {
		if (env->dsn_ret && param_ok(env->dsn_ret))
			append(params, sizeof(params), " RET=%s", env->dsn_ret);
		if (env->dsn_envid && param_ok(env->dsn_envid))
			append(params, sizeof(params), " ENVID=%s",
			       env->dsn_envid);
	}
	if (conn_cmd(c, &rep, "MAIL FROM:<%s>%s", env->mail_from, params) < 0) {
		txn_broken(t, 0);
		return -1;
	}
	if (rep.code / 100 != 2) {
		txn_refused(t, 0, &rep);
		return -1;
	}
	return 0;
}

/* RCPT TO for each recipient of the hop; each gets its own result. */
static void
txn_rcpts(struct txn *t)
{
	struct relay_conn *c = t->c;

	for (size_t i = 0; i < t->hop->nrcpts; i++) {
		size_t idx = t->hop->rcpts[i];
		const char *rcpt = t->env->rcpts[idx];
		const char *notify =
		    t->env->dsn_notify ? t->env->dsn_notify[idx] : NULL;
		const char *orcpt =
		    t->env->dsn_orcpt ? t->env->dsn_orcpt[idx] : NULL;
		char params[600] = "", line[RELAY_REPLY_MAX];
		struct relay_reply rep;
		enum sg_status st;

		if (!path_ok(rcpt)) {
			result_set(&t->res[idx], SG_ERR_USAGE,
			           "bad recipient address");
			continue;
		}
		if ((c->ext.flags & RELAY_EXT_DSN) && notify &&
		    param_ok(notify) && strlen(notify) < 40)
			snprintf(params, sizeof(params), " NOTIFY=%s", notify);
		/* ORCPT as received (RFC 3461 4.2: passed on unchanged) */
		if ((c->ext.flags & RELAY_EXT_DSN) && orcpt &&
		    param_ok_max(orcpt, 500) && strchr(orcpt, ';') != NULL)
			snprintf(params + strlen(params),
			         sizeof(params) - strlen(params), " ORCPT=%s",
			         orcpt);
		if (conn_cmd(c, &rep, "RCPT TO:<%s>%s", rcpt, params) < 0) {
			txn_broken(t, 0);
			return;
		}
		relay_reply_line(&rep, line, sizeof(line));
		snprintf(t->last, sizeof(t->last), "%s", line);
		if (rep.code == 421) {
			txn_refused(t, 0, &rep);
			t->accepted = 0;
			return;
		}
		st = relay_reply_status(rep.code);
		result_set(&t->res[idx], st, line);
		if (st == SG_OK)
			t->accepted++;
	}
}

/* DATA, the message, and the reply for every accepted recipient. */
static void
txn_data(struct txn *t)
{
	struct relay_conn *c = t->c;
	struct relay_reply rep;
	char line[RELAY_REPLY_MAX];

	if (conn_cmd(c, &rep, "DATA") < 0) {
		txn_broken(t, 1);
		return;
	}
	if (rep.code != 354) {
		txn_refused(t, 1, &rep);
		return;
	}
	if (send_data(c, t->fd, t->in, t->out) < 0 ||
	    conn_reply(c, &rep, RELAY_DATA_TIMEOUT) < 0) {
		txn_broken(t, 1);
		return;
	}
	relay_reply_line(&rep, line, sizeof(line));
	if (rep.code / 100 == 2)
		txn_all(t, 1, SG_OK, line);
	else
		txn_refused(t, 1, &rep);
}

/* ---- the API ---- */

/* MX: the MX host it reached, or "none"; else NULL. */
static void
relay_log(const struct txn *t, int tls, int verified, const char *mx,
          const char *event)
{
	char reply[RELAY_REPLY_MAX], hop[RELAY_HOST_MAX + 16];
	char host[RELAY_HOST_MAX + 8] = "";

	log_quote_value(reply, sizeof(reply), t->last);
	log_quote_value(hop, sizeof(hop), t->hop->nexthop);
	if (mx != NULL) {
		memcpy(host, " mx=", 4);
		log_quote_value(host + 4, sizeof(host) - 4, mx);
	}
	log_event("relay",
	          "qid=%s nexthop=%s%s tls=%s verified=%s rcpts=%zu "
	          "reply=\"%s\" event=%s",
	          t->env->id, hop, host, tls ? "yes" : "no",
	          verified ? "yes" : "no", t->hop->nrcpts, reply, event);
}

/* A session to HOP: a kept one, else a new one (on opportunistic TLS
 * that failed its handshake, a second one without TLS). */
static struct relay_conn *
session_get(struct relay *r, struct relay_cache *cache, const char *helo,
            const struct txn *t, int *perm, char *whybuf, size_t whylen)
{
	struct relay_conn *c;
	int retry = 0;

	if ((c = cache_take(cache, t->hop)) != NULL)
		return c;
	c = conn_open(r, helo, t->hop, 1, &retry, perm, whybuf, whylen);
	if (c == NULL && retry) {
		char safe[RELAY_WHY_MAX], hop[RELAY_HOST_MAX + 16];
		log_quote_value(safe, sizeof(safe), whybuf);
		log_quote_value(hop, sizeof(hop), t->hop->nexthop);
		log_warn("relay",
		         "qid=%s nexthop=%s event=tls-failed reason=\"%s\" "
		         "(again without TLS)",
		         t->env->id, hop, safe);
		c = conn_open(r, helo, t->hop, 0, &retry, perm, whybuf, whylen);
	}
	return c;
}

enum sg_status
relay_deliver(struct relay *r, const char *helo, const struct relay_hop *hop,
              const struct spool_env *env, int fd, struct relay_result *res)
{
	struct txn t = {.hop = hop, .env = env, .fd = fd, .res = res};
	struct relay_cache *cache = cache_get(r);
	char whybuf[RELAY_WHY_MAX], mxhost[RELAY_HOST_MAX] = "none";
	size_t ok = 0, perm = 0;
	enum sg_status st = SG_ERR_TEMP, first = SG_OK;
	int tls = 0, verified = 0, no_mail = 0;

	txn_all(&t, 0, SG_ERR_TEMP, "not tried");
	t.in = malloc(RELAY_BUF);
	t.out = malloc(RELAY_STUFF_OUT(RELAY_BUF) + RELAY_STUFF_END);
	if (cache == NULL || t.in == NULL || t.out == NULL) {
		txn_all(&t, 0, SG_ERR_TEMP, "out of memory");
		goto out;
	}
	cache_sweep(cache);
	t.c = session_get(r, cache, helo, &t, &no_mail, whybuf, sizeof(whybuf));
	if (t.c == NULL) {
		txn_all(&t, 0, no_mail ? SG_ERR_NOT_FOUND : SG_ERR_TEMP,
		        whybuf);
		goto out;
	}
	snprintf(mxhost, sizeof(mxhost), "%s", t.c->host);
	if (txn_mail(&t) == 0) {
		txn_rcpts(&t);
		if (t.accepted > 0)
			txn_data(&t);
	}
	tls = t.c->ssl != NULL;
	verified = t.c->verified;
	if (t.broken)
		conn_close(t.c, 0);
	else
		cache_put(cache, t.c);
out:
	free(t.in);
	free(t.out);
	for (size_t i = 0; i < hop->nrcpts; i++) {
		enum sg_status s = res[hop->rcpts[i]].st;
		if (s == SG_OK)
			ok++;
		else if (sg_status_smtp_code(s) / 100 == 5)
			perm++;
		if (s != SG_OK && first == SG_OK)
			first = s;
	}
	if (ok > 0)
		st = SG_OK;
	else if (perm == hop->nrcpts && hop->nrcpts > 0)
		st = first;
	relay_log(&t, tls, verified, hop->mx ? mxhost : NULL,
	          ok > 0              ? "delivered"
	          : st != SG_ERR_TEMP ? "failed"
	                              : "deferred");
	return st;
}

struct relay *
relay_new(void)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if ((r->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION) != 1)
		goto fail;
	/* Verification runs and is reported; whether it stops delivery is
	 * decided per next hop (relay.h). */
	SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_default_verify_paths(r->ssl_ctx) != 1)
		ERR_clear_error(); /* no bundle: nothing verifies */
	if (pthread_key_create(&r->key, cache_free) != 0)
		goto fail;
	return r;
fail:
	SSL_CTX_free(r->ssl_ctx);
	ERR_clear_error();
	free(r);
	return NULL;
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	/* The calling thread's cache; other threads freed theirs at exit. */
	cache_free(pthread_getspecific(r->key));
	pthread_setspecific(r->key, NULL);
	pthread_key_delete(r->key);
	SSL_CTX_free(r->ssl_ctx);
	free(r);
}
