/*
 * mime.c - MIME structure for the S/MIME engine, with GMime.
 *
 * GMime parses the structure (persistent stream: part contents stay in the
 * file) and re-encodes 8bit/binary parts.  When no part needs re-encoding,
 * the protected entity is spliced from the input's own bytes, so nothing
 * that is not changed changes.  The signed part of a multipart/signed is
 * located by a boundary scan over the original bytes, because a signature
 * covers those exact octets, not a re-serialization (docs/mime.md).
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lib/gmime_dl.h"

#define SCAN_CHUNK  65536
#define LINE_PREFIX 1024

/* Copies the GMime-parsed CT into OUT's own memory. */
static int
ctype_from_gmime(GMimeContentType *ct, struct sg_ctype *out)
{
	const char *v[5] = {g_mime_content_type_get_media_type(ct),
	                    g_mime_content_type_get_media_subtype(ct),
	                    g_mime_content_type_get_parameter(ct, "protocol"),
	                    g_mime_content_type_get_parameter(ct, "smime-type"),
	                    g_mime_content_type_get_parameter(ct, "boundary")};
	const char **slot[5] = {&out->type, &out->sub, &out->protocol,
	                        &out->smime_type, &out->boundary};
	size_t len = 0;
	char *w;

	for (int i = 0; i < 5; i++)
		len += v[i] != NULL ? strlen(v[i]) + 1 : 0;
	memset(out, 0, sizeof(*out));
	if ((out->mem = w = malloc(len + 1)) == NULL)
		return -1;
	for (int i = 0; i < 5; i++) {
		if (v[i] == NULL)
			continue;
		*slot[i] = strcpy(w, v[i]);
		w += strlen(v[i]) + 1;
	}
	if (out->type == NULL || out->sub == NULL)
		out->type = out->sub = ""; /* GMime gives both; be safe */
	return 0;
}

/* Reads the top-level Content-Type into CT (sg_ctype_clear it): 1, or 0
 * when absent or unparsable, or -1 with the reason on the handle (GMime
 * cannot be loaded, or memory).  The plain forms are read by fields.c,
 * without loading GMime; the rest by GMime. */
static int
top_ctype(const struct sg_msg *msg, struct sg_ctype *ct)
{
	GMimeContentType *g;
	char *v;
	int rc;

	memset(ct, 0, sizeof(*ct));
	if ((v = sg_msg_header(msg, "Content-Type")) == NULL)
		return 0;
	if (sg_ctype_parse_simple(v, ct)) {
		free(v);
		return 1;
	}
	if (sg_gmime_need(msg->ctx) != SG_OK) {
		free(v);
		return -1;
	}
	g = g_mime_content_type_parse(NULL, v);
	free(v);
	if (g == NULL)
		return 0;
	rc = ctype_from_gmime(g, ct) == 0 ? 1 : -1;
	g_object_unref(g);
	if (rc == -1)
		sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	return rc;
}

static int
is_type(const struct sg_ctype *ct, const char *type, const char *sub)
{
	return strcasecmp(ct->type, type) == 0 &&
	       (strcmp(sub, "*") == 0 || strcasecmp(ct->sub, sub) == 0);
}

/* Filled once, then constant. */
static char versions[512];
static pthread_once_t versions_once = PTHREAD_ONCE_INIT;

static void
versions_fill(void)
{
	char why[SG_DL_WHYLEN];

	if (sg_gmime_load(why, sizeof(why)) == NULL)
		snprintf(versions, sizeof(versions),
		         "%s, GMime not loaded (%s)",
		         OpenSSL_version(OPENSSL_VERSION), why);
	else
		snprintf(versions, sizeof(versions), "%s, GMime %u.%u.%u",
		         OpenSSL_version(OPENSSL_VERSION), gmime_major_version,
		         gmime_minor_version, gmime_micro_version);
}

const char *
sg_library_versions(void)
{
	pthread_once(&versions_once, versions_fill);
	return versions;
}

enum sg_status
sg_mime_kind(const struct sg_msg *msg, enum sg_smime_kind *kind)
{
	struct sg_ctype ct;
	const char *p;
	int rc;

	*kind = SG_KIND_NONE;
	if ((rc = top_ctype(msg, &ct)) <= 0)
		return rc == 0 ? SG_OK : msg->ctx->last;
	if (is_type(&ct, "multipart", "signed")) {
		p = ct.protocol;
		if (p != NULL &&
		    (strcasecmp(p, "application/pkcs7-signature") == 0 ||
		     strcasecmp(p, "application/x-pkcs7-signature") == 0))
			*kind = SG_KIND_SIGNED_DETACHED;
	} else if (is_type(&ct, "application", "pkcs7-mime") ||
	           is_type(&ct, "application", "x-pkcs7-mime")) {
		p = ct.smime_type;
		if (p == NULL)
			*kind = SG_KIND_ENVELOPED; /* the CMS type decides */
		else if (strcasecmp(p, "signed-data") == 0)
			*kind = SG_KIND_SIGNED_OPAQUE;
		else if (strcasecmp(p, "enveloped-data") == 0)
			*kind = SG_KIND_ENVELOPED;
		else if (strcasecmp(p, "authEnveloped-data") == 0)
			*kind = SG_KIND_AUTH_ENVELOPED;
	}
	sg_ctype_clear(&ct);
	return SG_OK;
}

char *
sg_mime_addr_gmime(const char *v)
{
	InternetAddressList *list;
	InternetAddress *ia;
	char *addr = NULL;

	if (sg_gmime_load(NULL, 0) == NULL ||
	    (list = internet_address_list_parse(NULL, v)) == NULL)
		return NULL;
	if (internet_address_list_length(list) > 0) {
		ia = internet_address_list_get_address(list, 0);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			const char *a = internet_address_mailbox_get_idn_addr(
			    INTERNET_ADDRESS_MAILBOX(ia));
			if (a != NULL && (addr = strdup(a)) != NULL &&
			    strrchr(addr, '@') != NULL)
				sg_lower_domain(strrchr(addr, '@') + 1);
		}
	}
	g_object_unref(list);
	return addr;
}

char *
sg_mime_from_address(const struct sg_msg *msg)
{
	char *v, *addr;
	int simple;

	if ((v = sg_msg_header(msg, "From")) == NULL)
		return NULL;
	if ((addr = sg_addr_parse_simple(v, &simple)) == NULL && !simple)
		addr = sg_mime_addr_gmime(v);
	free(v);
	return addr;
}

void
sg_mime_boundary(char *buf, size_t len)
{
	unsigned char rnd[12];
	static const char hex[] = "0123456789abcdef";
	size_t i, n;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0x5a, sizeof(rnd)); /* uniqueness, not secrecy */
	n = (size_t)snprintf(buf, len, "----=_smimegate_");
	for (i = 0; i < sizeof(rnd) && n + 2 < len; i++) {
		buf[n++] = hex[rnd[i] >> 4];
		buf[n++] = hex[rnd[i] & 15];
	}
	buf[n < len ? n : len - 1] = '\0';
}

/* ---- line scanning over a message range ---- */

struct scan {
	const struct sg_msg *msg;
	size_t pos, end;
	size_t bstart, blen;
	char buf[SCAN_CHUNK];
};

/* The next line of the range: its start, total length (terminator
 * included) and up to LINE_PREFIX leading bytes.  0 at the end, -1 on a
 * read error. */
static int
next_line(struct scan *s, size_t *start, size_t *len, char *prefix,
          size_t *plen)
{
	size_t copied = 0;

	if (s->pos >= s->end)
		return 0;
	*start = s->pos;
	for (;;) {
		if (s->pos >= s->bstart + s->blen) {
			s->bstart = s->pos;
			s->blen = s->end - s->pos;
			if (s->blen > SCAN_CHUNK)
				s->blen = SCAN_CHUNK;
			if (sg_msg_pread(s->msg, s->buf, s->blen, s->bstart) ==
			    -1)
				return -1;
		}
		char *p = s->buf + (s->pos - s->bstart);
		size_t avail = s->bstart + s->blen - s->pos;
		char *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) + 1 : avail;
		size_t room = LINE_PREFIX - copied;

		memcpy(prefix + copied, p, take < room ? take : room);
		copied += take < room ? take : room;
		s->pos += take;
		if (nl != NULL || s->pos >= s->end)
			break;
	}
	*len = s->pos - *start;
	*plen = copied;
	return 1;
}

/* 0: not a delimiter; 1: a delimiter; 2: the close delimiter. */
static int
delimiter(const char *line, size_t plen, size_t len, const char *b, size_t blen)
{
	size_t i;
	int close = 0;

	if (len > plen || len < blen + 2 || line[0] != '-' || line[1] != '-' ||
	    memcmp(line + 2, b, blen) != 0)
		return 0;
	i = blen + 2;
	if (i + 1 < len && line[i] == '-' && line[i + 1] == '-') {
		close = 1;
		i += 2;
	}
	for (; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
		    line[i] != '\n')
			return 0;
	return close ? 2 : 1;
}

/* Length of the line end just before offset END of the message. */
static size_t
eol_before(const struct sg_msg *msg, size_t end, size_t floor)
{
	char two[2];

	if (end < floor + 1 || sg_msg_pread(msg, two + 1, 1, end - 1) == -1 ||
	    two[1] != '\n')
		return 0;
	if (end >= floor + 2 && sg_msg_pread(msg, two, 1, end - 2) == 0 &&
	    two[0] == '\r')
		return 2;
	return 1;
}

/* Parses the header block of the signature part at [off, end): checks its
 * type and finds its body and transfer encoding. */
static enum sg_status
signature_part(struct sg_msg *msg, size_t off, size_t end, size_t *s_off,
               size_t *s_len, int *s_b64)
{
	struct sg_ctx *ctx = msg->ctx;
	struct scan *s;
	char line[LINE_PREFIX];
	size_t start, len, plen;
	int rc, seen_type = 0, ok_type = 0;
	enum sg_status st = SG_OK;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
	s->msg = msg;
	s->pos = off;
	s->end = end;
	*s_b64 = 0;
	while ((rc = next_line(s, &start, &len, line, &plen)) == 1) {
		if (plen < LINE_PREFIX)
			line[plen] = '\0';
		else
			line[LINE_PREFIX - 1] = '\0';
		if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n')) {
			*s_off = start + len;
			*s_len = end - *s_off;
			break;
		}
		if (strncasecmp(line, "Content-Type:", 13) == 0) {
			seen_type = 1;
			ok_type = strcasestr(line, "pkcs7-signature") != NULL;
		} else if (strncasecmp(line,
		                       "Content-Transfer-Encoding:", 26) == 0) {
			*s_b64 = strcasestr(line, "base64") != NULL;
		}
	}
	free(s);
	if (rc == -1)
		return sg_fail_plain(ctx, SG_ERR_IO, "read error");
	if (rc == 0)
		st = sg_fail_plain(ctx, SG_ERR_MIME,
		                   "the signature part has no body");
	else if (!seen_type || !ok_type)
		st = sg_fail_plain(ctx, SG_ERR_MIME,
		                   "the second part of multipart/signed is "
		                   "not application/pkcs7-signature");
	return st;
}

enum sg_status
sg_mime_split_signed(struct sg_msg *msg, size_t *c_off, size_t *c_len,
                     size_t *s_off, size_t *s_len, int *s_b64)
{
	struct sg_ctx *ctx = msg->ctx;
	struct sg_ctype ct;
	int found = top_ctype(msg, &ct);
	const char *b = found == 1 ? ct.boundary : NULL;
	char *bnd = NULL;
	char line[LINE_PREFIX];
	size_t start, len, plen, blen, part1 = 0, part2 = 0, end1 = 0;
	int state = 0, rc, d;
	struct scan *s = NULL;
	enum sg_status st;

	if (found == -1) {
		st = ctx->last;
		goto out;
	}
	if (b == NULL || *b == '\0') {
		st = sg_fail_plain(ctx, SG_ERR_MIME,
		                   "multipart/signed without a boundary "
		                   "parameter");
		goto out;
	}
	if ((blen = strlen(b)) > 200 || (bnd = strdup(b)) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_MIME, "unusable boundary");
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	s->msg = msg;
	s->pos = msg->body_off;
	s->end = msg->size;
	while ((rc = next_line(s, &start, &len, line, &plen)) == 1) {
		if ((d = delimiter(line, plen, len, bnd, blen)) == 0)
			continue;
		if (state == 0) {
			if (d == 2)
				break;
			part1 = start + len;
			state = 1;
		} else if (state == 1) {
			end1 = start - eol_before(msg, start, part1);
			if (d == 2)
				break;
			part2 = start + len;
			state = 2;
		} else {
			if (d == 1) {
				st = sg_fail_plain(ctx, SG_ERR_MIME,
				                   "multipart/signed has more "
				                   "than two parts");
				goto out;
			}
			state = 3;
			break;
		}
	}
	if (rc == -1) {
		st = sg_fail_plain(ctx, SG_ERR_IO, "read error");
		goto out;
	}
	if (state < 2) {
		st = sg_fail_plain(ctx, SG_ERR_MIME,
		                   "multipart/signed: boundary \"%s\" %s", bnd,
		                   state == 0 ? "never appears"
		                              : "does not separate two parts");
		goto out;
	}
	/* A missing close delimiter is tolerated: the part ends at EOF. */
	size_t end2 =
	    state == 3 ? start - eol_before(msg, start, part2) : msg->size;
	*c_off = part1;
	*c_len = end1 - part1;
	st = signature_part(msg, part2, end2, s_off, s_len, s_b64);
out:
	free(s);
	free(bnd);
	sg_ctype_clear(&ct);
	return st;
}

enum sg_status
sg_mime_read_cms(struct sg_msg *msg, size_t off, size_t len, int b64,
                 CMS_ContentInfo **out)
{
	struct sg_ctx *ctx = msg->ctx;
	EVP_ENCODE_CTX *ectx = NULL;
	unsigned char *in = NULL, *der = NULL;
	const unsigned char *p;
	size_t done = 0, total = 0, cap;
	int outl;
	enum sg_status st = SG_OK;
	CMS_ContentInfo *cms;

	/* Decoded base64 is at most 3/4 of its text: one buffer, no growth,
	 * and the DER is parsed from it without another copy. */
	cap = b64 ? len / 4 * 3 + 3 : len;
	if (cap > ctx->limits.max_cms + 3)
		cap = ctx->limits.max_cms + 3;
	if ((in = malloc(SCAN_CHUNK)) == NULL ||
	    (der = malloc(cap + 1)) == NULL ||
	    (ectx = EVP_ENCODE_CTX_new()) == NULL) {
		st = sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	EVP_DecodeInit(ectx);
	while (done < len) {
		size_t want = len - done < SCAN_CHUNK ? len - done : SCAN_CHUNK;
		if (!b64) {
			if (total + want > ctx->limits.max_cms) {
				st = sg_fail_plain(ctx, SG_ERR_LIMIT,
				                   "CMS object larger than "
				                   "%zu bytes",
				                   ctx->limits.max_cms);
				goto out;
			}
			if (sg_msg_pread(msg, der + total, want, off + done) ==
			    -1)
				goto ioerr;
			total += want;
			done += want;
			continue;
		}
		if (sg_msg_pread(msg, in, want, off + done) == -1)
			goto ioerr;
		/* 3/4 of any input fits the room we sized. */
		if (total + want / 4 * 3 + 3 > cap) {
			st = sg_fail_plain(ctx, SG_ERR_LIMIT,
			                   "CMS object larger than %zu bytes",
			                   ctx->limits.max_cms);
			goto out;
		}
		if (EVP_DecodeUpdate(ectx, der + total, &outl, in, (int)want) <
		    0) {
			st = sg_fail_plain(ctx, SG_ERR_CMS,
			                   "invalid base64 in the S/MIME part");
			goto out;
		}
		total += (size_t)outl;
		done += want;
	}
	if (b64) {
		if (EVP_DecodeFinal(ectx, der + total, &outl) < 0) {
			st = sg_fail_plain(ctx, SG_ERR_CMS,
			                   "truncated base64 in the S/MIME "
			                   "part");
			goto out;
		}
		total += (size_t)outl;
	}
	if (total == 0) {
		st = sg_fail_plain(ctx, SG_ERR_CMS, "the S/MIME part is empty");
		goto out;
	}
	if (total > LONG_MAX) {
		st = sg_fail_plain(ctx, SG_ERR_LIMIT, "CMS object too large");
		goto out;
	}
	p = der;
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)total)) == NULL) {
		st = sg_fail(ctx, SG_ERR_CMS,
		             "the S/MIME part is not a valid CMS object "
		             "(truncated or corrupt)");
		goto out;
	}
	*out = cms;
	goto out;
ioerr:
	st = sg_fail_plain(ctx, SG_ERR_IO, "read error");
out:
	free(in);
	free(der);
	EVP_ENCODE_CTX_free(ectx);
	return st;
}

/* ---- the protected entity ---- */

struct walk {
	struct sg_ctx *ctx;
	unsigned parts;
	int reencode; /* some leaf needs a 7-bit encoding */
	enum sg_status st;
};

/* Whether P[0..N) has an 8-bit byte or NUL, or makes the current line
 * (*LINE octets so far) longer than 998 octets.  Eight bytes at a time. */
static int
scan_7bit(const char *p, size_t n, size_t *line)
{
	const uint64_t high = 0x8080808080808080ULL,
	               low = 0x0101010101010101ULL;
	const char *end = p + n;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		size_t run = (size_t)(stop - p);

		/* 998 octets, not counting a CR that ends the line. */
		size_t limit = nl && run > 0 && stop[-1] == '\r' ? 999 : 998;

		if (*line + run > limit)
			return 1;
		*line = nl ? 0 : *line + run;
		for (; p + 8 <= stop; p += 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			if ((w & high) || ((w - low) & ~w & high))
				return 1;
		}
		for (; p < stop; p++)
			if ((unsigned char)*p >= 0x80 || *p == 0)
				return 1;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/* Whether the leaf's raw content needs a 7-bit transfer encoding. */
static int
needs_7bit(GMimeStream *raw)
{
	char buf[SCAN_CHUNK];
	size_t line = 0;
	gssize n;
	int found = 0;

	g_mime_stream_reset(raw);
	while (!found && (n = g_mime_stream_read(raw, buf, sizeof(buf))) > 0)
		found = scan_7bit(buf, (size_t)n, &line);
	g_mime_stream_reset(raw);
	return found;
}

/* Octets a line start needs to be told apart: "Content-Type". */
#define ENTITY_PREFIX 12

/* A scan of a body for sg_mime_inner_entity(), in chunks. */
struct body_scan {
	size_t line;    /* octets of the current line so far */
	unsigned marks; /* line starts that may open a MIME entity */
	int found;      /* an 8-bit octet, a NUL or a line over 998 */
};

/* Whether the line at P (N octets left) may open a MIME entity: a
 * boundary delimiter, or a Content-Type field (the header of a message/
 * part's inner message, or of a part). */
static int
opens_entity(const char *p, size_t n)
{
	if (n >= 2 && p[0] == '-' && p[1] == '-')
		return 1;
	return n >= ENTITY_PREFIX &&
	       strncasecmp(p, "content-type", ENTITY_PREFIX) == 0;
}

/* Scans P[0..N) on from S.  Returns the octets consumed: all of them, or
 * fewer when a line starts too near the end of P to be told apart and
 * MORE says the body goes on: the caller reads on from there. */
static size_t
scan_body(struct body_scan *s, const char *p, size_t n, int more)
{
	const char *start = p, *end = p + n;

	while (p < end && !s->found) {
		const char *nl, *stop;

		if (s->line == 0) {
			if ((size_t)(end - p) < ENTITY_PREFIX && more)
				break;
			s->marks += opens_entity(p, (size_t)(end - p));
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		stop = nl != NULL ? nl + 1 : end;
		s->found = scan_7bit(p, (size_t)(stop - p), &s->line);
		p = stop;
	}
	return (size_t)(p - start);
}

/* The same over the body of MSG. */
static enum sg_status
body_scan(struct sg_msg *msg, struct body_scan *s)
{
	char *buf = malloc(SCAN_CHUNK);
	size_t off = msg->body_off;

	memset(s, 0, sizeof(*s));
	if (buf == NULL)
		return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
	while (!s->found && off < msg->size) {
		size_t n =
		    msg->size - off < SCAN_CHUNK ? msg->size - off : SCAN_CHUNK;
		if (sg_msg_pread(msg, buf, n, off) == -1) {
			free(buf);
			return sg_fail_plain(msg->ctx, SG_ERR_IO, "read error");
		}
		off += scan_body(s, buf, n, off + n < msg->size);
	}
	free(buf);
	return SG_OK;
}

/* Whether the Content-Type value V surely names a leaf: a type/subtype
 * whose type is neither multipart nor message, in a form fields.c reads
 * (when it takes GMime to tell, it is not sure). */
static int
surely_leaf(const char *v)
{
	struct sg_ctype ct;
	int leaf;

	if (!sg_ctype_parse_simple(v, &ct))
		return 0;
	leaf = !is_type(&ct, "multipart", "*") && !is_type(&ct, "message", "*");
	sg_ctype_clear(&ct);
	return leaf;
}

/* Whether the protected entity needs GMime: 1 when a part may need a
 * 7-bit encoding or the structure may exceed the depth and part limits
 * (or on a read error, *ST set), 0 when the input's own bytes can be used
 * as they are.  Decided without GMime when it can be, so that a one-shot
 * command does not load it (lib/dl.h): a clean body (7-bit, lines of at
 * most 998 octets) has no part to re-encode, and a body with M line starts
 * that may open an entity has at most M + 1 entities, none more than M
 * deep.  A single leaf with a base64 or quoted-printable encoding is
 * 7-bit by construction. */
static int
entity_needs_parse(struct sg_msg *msg, enum sg_status *st)
{
	const struct sg_limits *lim = &msg->ctx->limits;
	struct body_scan s;
	char *v = sg_msg_header(msg, "Content-Type");
	int leaf = v == NULL || surely_leaf(v);

	free(v);
	*st = SG_OK;
	if (leaf && (v = sg_msg_header(msg, "Content-Transfer-Encoding"))) {
		int encoded = strcasecmp(v, "base64") == 0 ||
		              strcasecmp(v, "quoted-printable") == 0;
		free(v);
		if (encoded)
			return 0;
	}
	if ((*st = body_scan(msg, &s)) != SG_OK || s.found)
		return 1;
	if (leaf)
		return 0;
	return s.marks > lim->max_depth || s.marks + 1 > lim->max_parts;
}

enum sg_status
sg_mime_walk_limits(struct sg_ctx *ctx, unsigned depth, unsigned *parts)
{
	if (depth > ctx->limits.max_depth)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "MIME nesting deeper than %u levels",
		                     ctx->limits.max_depth);
	if (++*parts > ctx->limits.max_parts)
		return sg_fail_plain(ctx, SG_ERR_LIMIT,
		                     "more than %u MIME parts",
		                     ctx->limits.max_parts);
	return SG_OK;
}

static void
walk_object(struct walk *w, GMimeObject *obj, unsigned depth, int fix)
{
	if (w->st != SG_OK)
		return;
	if ((w->st = sg_mime_walk_limits(w->ctx, depth, &w->parts)) != SG_OK)
		return;
	if (GMIME_IS_MULTIPART_SIGNED(obj) || GMIME_IS_MULTIPART_ENCRYPTED(obj))
		return; /* re-encoding inside would break a signature */
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n && w->st == SG_OK; i++)
			walk_object(w, g_mime_multipart_get_part(mp, i),
			            depth + 1, fix);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m =
		    g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		GMimeObject *inner = m ? g_mime_message_get_mime_part(m) : NULL;
		if (inner != NULL)
			walk_object(w, inner, depth + 1, fix);
		return;
	}
	if (!GMIME_IS_PART(obj))
		return;
	GMimePart *part = GMIME_PART(obj);
	GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *raw = dw ? g_mime_data_wrapper_get_stream(dw) : NULL;

	if (raw == NULL || (enc != GMIME_CONTENT_ENCODING_DEFAULT &&
	                    enc != GMIME_CONTENT_ENCODING_7BIT &&
	                    enc != GMIME_CONTENT_ENCODING_8BIT &&
	                    enc != GMIME_CONTENT_ENCODING_BINARY))
		return;
	if (!needs_7bit(raw))
		return;
	w->reencode = 1;
	if (fix) {
		GMimeContentType *ct = g_mime_object_get_content_type(obj);
		int text =
		    ct == NULL || g_mime_content_type_is_type(ct, "text", "*");
		g_mime_part_set_content_encoding(
		    part, text ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
		               : GMIME_CONTENT_ENCODING_BASE64);
	}
}

/* Serializes the re-encoded entity into a new temporary file. */
static enum sg_status
write_entity(struct sg_msg *msg, GMimeObject *part, int *spool, size_t *len)
{
	struct sg_ctx *ctx = msg->ctx;
	GMimeFormatOptions *fo;
	GMimeStream *out;
	gssize n;
	int fd;

	if ((fd = sg_tmpfile(ctx, msg->size)) == -1)
		return sg_fail_plain(ctx, SG_ERR_IO,
		                     "cannot create a temporary file: %s",
		                     strerror(errno));
	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	out = g_mime_stream_fs_new(dup(fd));
	g_mime_stream_fs_set_owner(GMIME_STREAM_FS(out), TRUE);
	n = g_mime_object_write_to_stream(part, fo, out);
	if (n >= 0 && g_mime_stream_flush(out) != 0)
		n = -1;
	g_object_unref(out);
	g_mime_format_options_free(fo);
	if (n < 0) {
		close(fd);
		return sg_fail_plain(ctx, SG_ERR_IO,
		                     "cannot write the re-encoded entity");
	}
	/* GMime counts bytes before its newline filter: ask the file. */
	off_t end = lseek(fd, 0, SEEK_END);
	if (end == -1) {
		close(fd);
		return sg_fail_plain(ctx, SG_ERR_IO, "lseek: %s",
		                     strerror(errno));
	}
	*spool = fd;
	*len = (size_t)end;
	return SG_OK;
}

/* Parses MSG with GMime over its own file; returns the message (unref it)
 * or NULL with the reason on CTX. */
static GMimeMessage *
parse_message(struct sg_msg *msg)
{
	GMimeStream *fs;
	GMimeParser *parser;
	GMimeMessage *m;
	int fd;

	if (sg_gmime_need(msg->ctx) != SG_OK)
		return NULL;
	if ((fd = dup(msg->fd)) == -1) {
		sg_fail_plain(msg->ctx, SG_ERR_IO, "dup: %s", strerror(errno));
		return NULL;
	}
	fs = g_mime_stream_fs_new_with_bounds(fd, msg->base,
	                                      msg->base + (gint64)msg->size);
	g_mime_stream_fs_set_owner(GMIME_STREAM_FS(fs), TRUE);
	parser = g_mime_parser_new_with_stream(fs);
	g_mime_parser_set_persist_stream(parser, TRUE);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(fs);
	if (m == NULL)
		sg_fail_plain(msg->ctx, SG_ERR_MIME,
		              "the message cannot be parsed as MIME");
	return m;
}

void *
sg_mime_parse(struct sg_msg *msg)
{
	return parse_message(msg);
}

enum sg_status
sg_mime_inner_entity(struct sg_msg *msg, struct sg_source *src, int *spool)
{
	static const char dflt[] = "Content-Type: text/plain; "
	                           "charset=us-ascii\r\n";
	struct walk w = {.ctx = msg->ctx, .st = SG_OK};
	GMimeMessage *m;
	GMimeObject *top;
	size_t len = 0;
	int has_type = 0;

	*spool = -1;
	enum sg_status st;
	if (!entity_needs_parse(msg, &st) && st == SG_OK)
		goto splice;
	if (st != SG_OK)
		return st;
	if ((m = parse_message(msg)) == NULL)
		return msg->ctx->last;
	top = g_mime_message_get_mime_part(m);
	if (top != NULL)
		walk_object(&w, top, 0, 1);
	if (w.st != SG_OK) {
		g_object_unref(m);
		return w.st;
	}
	if (w.reencode && top != NULL) {
		st = write_entity(msg, top, spool, &len);
		g_object_unref(m);
		if (st != SG_OK)
			return st;
		if (sg_source_add_file(src, *spool, 0, len, 1) == -1)
			return sg_fail_plain(msg->ctx, SG_ERR_NOMEM,
			                     "out of memory");
		return SG_OK;
	}
	g_object_unref(m);

splice:
	/* Nothing to re-encode: the input's own bytes. */
	for (size_t i = 0; i < msg->nhdrs; i++) {
		const struct sg_hdr *h = &msg->hdrs[i];
		if (!sg_hdr_is_content(h->name))
			continue;
		has_type |= strcasecmp(h->name, "Content-Type") == 0;
		if (sg_source_add_mem(src, h->raw, h->len, 1) == -1)
			goto nomem;
		if (h->raw[h->len - 1] != '\n' &&
		    sg_source_add_mem(src, "\r\n", 2, 0) == -1)
			goto nomem;
	}
	if (!has_type &&
	    sg_source_add_mem(src, dflt, sizeof(dflt) - 1, 0) == -1)
		goto nomem;
	if (sg_source_add_mem(src, "\r\n", 2, 0) == -1 ||
	    sg_source_add_file(src, msg->fd, msg->base + (off_t)msg->body_off,
	                       msg->size - msg->body_off, 1) == -1)
		goto nomem;
	return SG_OK;
nomem:
	return sg_fail_plain(msg->ctx, SG_ERR_NOMEM, "out of memory");
}
