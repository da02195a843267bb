/*
 * smtp_parse.c - the syntax of what an SMTP client sends in its commands
 * (RFC 5321 paths, RFC 3461 DSN parameters, RFC 1870 SIZE), and the key
 * a client address is counted by, for
 * smtp_session.c.  Pure functions over NUL-terminated, bounded strings
 * (a command line is at most 512 octets); nothing is trusted, and only
 * printable ASCII passes (no SMTPUTF8, nothing that could break a header
 * line or a log line).
 */
#include "daemon/smtp_int.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 5322 atext */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* A domain (labels of letters, digits, hyphens) or an address literal. */
static const char *
parse_domain(const char *p)
{
	const char *q;

	if (*p == '[') {
		for (q = ++p; is_alnum((unsigned char)*p) || *p == '.' ||
		              *p == ':' || *p == '-';
		     p++)
			;
		return p > q && *p == ']' ? p + 1 : NULL;
	}
	for (;;) {
		for (q = p; is_alnum((unsigned char)*p) || *p == '-'; p++)
			;
		if (p == q)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

/*
 * A path "<local@domain>" (or "<>" when NULL_OK) at P: the mailbox goes
 * to OUT (at most SMTP_PATH_MAX - 2 octets), *END after the '>'.  A
 * source route is dropped (RFC 5321 4.1.1.3).  Only printable ASCII: no
 * SMTPUTF8, and nothing that could break a header line.  0 or -1.
 */
int
smtp_parse_path(const char *p, const char **end, char *out, size_t outlen,
                int null_ok)
{
	const char *start, *q;
	size_t n;

	if (*p++ != '<')
		return -1;
	if (*p == '>') {
		if (!null_ok)
			return -1;
		out[0] = '\0';
		*end = p + 1;
		return 0;
	}
	if (*p == '@') {
		if ((q = strchr(p, ':')) == NULL)
			return -1;
		for (; p < q; p++)
			if (!is_alnum((unsigned char)*p) &&
			    !strchr("@,.-[]", *p))
				return -1;
		p++;
	}
	start = p;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\')
				p++;
			if (*p < 0x20 || *p > 0x7e)
				return -1;
		}
		p++;
	} else {
		for (q = p; is_atext((unsigned char)*p) || *p == '.'; p++)
			;
		if (p == q)
			return -1;
	}
	if (*p++ != '@' || (p = parse_domain(p)) == NULL || *p != '>')
		return -1;
	n = (size_t)(p - start);
	if (n + 2 > SMTP_PATH_MAX || n >= outlen)
		return -1;
	memcpy(out, start, n);
	out[n] = '\0';
	*end = p + 1;
	return 0;
}

/* The next "KEY[=VALUE]" of a parameter list at *PP (split in place).
 * 1, 0 at the end, -1 on a bad keyword. */
int
smtp_parse_param(char **pp, char **key, char **val)
{
	char *p = *pp, *eq;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	*key = p;
	while (*p && *p != ' ')
		p++;
	if (*p)
		*p++ = '\0';
	*pp = p;
	if ((eq = strchr(*key, '=')) != NULL)
		*eq++ = '\0';
	*val = eq;
	if (!is_alnum((unsigned char)**key))
		return -1;
	for (char *k = *key; *k; k++)
		if (!is_alnum((unsigned char)*k) && *k != '-')
			return -1;
	return 1;
}

/* RFC 3461 4: xtext, 1 to MAX octets. */
int
smtp_parse_xtext(const char *v, size_t max)
{
	size_t n = 0;

	for (; *v; v++, n++) {
		if (*v == '+') {
			for (int i = 1; i <= 2; i++)
				if (!((v[i] >= '0' && v[i] <= '9') ||
				      (v[i] >= 'A' && v[i] <= 'F')))
					return 0;
			v += 2;
			n += 2;
		} else if (*v < 0x21 || *v > 0x7e || *v == '=') {
			return 0;
		}
	}
	return n > 0 && n <= max;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY: into OUT, in
 * capitals and canonical order. */
int
smtp_parse_notify(const char *v, char *out, size_t outlen)
{
	static const char *const words[] = {"NEVER", "SUCCESS", "FAILURE",
	                                    "DELAY"};
	unsigned seen = 0;
	const char *p = v;

	while (*p) {
		size_t n = strcspn(p, ",");
		size_t w;

		for (w = 0; w < 4; w++)
			if (strlen(words[w]) == n &&
			    strncasecmp(p, words[w], n) == 0)
				break;
		if (w == 4 || (seen & (1u << w)))
			return -1;
		seen |= 1u << w;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1;
	}
	if (seen == 0 || ((seen & 1) && seen != 1))
		return -1;
	out[0] = '\0';
	for (size_t w = 0; w < 4; w++)
		if (seen & (1u << w))
			snprintf(out + strlen(out), outlen - strlen(out),
			         "%s%s", out[0] ? "," : "", words[w]);
	return 0;
}

/* ORCPT=addr-type;xtext */
int
smtp_parse_orcpt(const char *v)
{
	const char *p = v;

	while (is_alnum((unsigned char)*p) || *p == '-')
		p++;
	return p > v && *p == ';' && strlen(v) <= SMTP_ORCPT_MAX &&
	       smtp_parse_xtext(p + 1, SMTP_ORCPT_MAX);
}

int
smtp_parse_size(const char *v, uintmax_t *out)
{
	uintmax_t n = 0;

	if (v == NULL || *v == '\0' || strlen(v) > 20)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		n = n > (UINTMAX_MAX - 9) / 10 ? UINTMAX_MAX
		                               : n * 10 + (uintmax_t)(*v - '0');
	}
	*out = n;
	return 0;
}

int
smtp_parse_helo(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > SMTP_HELO_MAX)
		return 0;
	for (; *p; p++)
		if (!is_alnum((unsigned char)*p) && !strchr(".-_:[]", *p))
			return 0;
	return 1;
}

/* The address a client is counted by (max_sessions_per_client): IPv4 (also as
 * ::ffff:a.b.c.d), or the /64 of an IPv6 address, which one host can fill with
 * addresses. K is 9 octets: a tag, then 4 or 8. */
void
smtp_client_key(const struct sockaddr_storage *ss, unsigned char k[9])
{
	/* ::ffff:0:0/96 */
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};

	memset(k, 0, 9);
	if (ss->ss_family == AF_INET) {
		k[0] = 4;
		memcpy(k + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const unsigned char *a =
		    ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			k[0] = 4;
			memcpy(k + 1, a + 12, 4);
		} else {
			k[0] = 6;
			memcpy(k + 1, a, 8);
		}
	}
}
