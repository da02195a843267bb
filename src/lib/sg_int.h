/*
 * sg_int.h - what the library's own modules share and nobody else sees.
 */
#ifndef SG_INT_H
#define SG_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "smimegate.h"

#define SG_ERRLEN 512

struct sg_ctx {
	struct sg_limits limits;
	time_t now; /* 0: the real clock */
	char *tmpdir;
	size_t tmp_memory; /* sg_tmpfile keeps up to this in memory */
	struct sg_revocation *revocation; /* borrowed, or NULL */
	int revocation_hard_fail;
	enum sg_status last;
	char err[SG_ERRLEN];
};

/* Records STATUS and a reason on CTX and returns STATUS.  When the OpenSSL
 * error queue holds something, its first reason is appended and the queue
 * is cleared. */
enum sg_status sg_fail(struct sg_ctx *ctx, enum sg_status st, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
/* Same, without looking at the OpenSSL error queue (which is cleared). */
enum sg_status sg_fail_plain(struct sg_ctx *ctx, enum sg_status st,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Resets the error state of CTX before an operation. */
void sg_reset(struct sg_ctx *ctx);

/* ---- growable buffer (buf.c) ---- */
struct sg_buf {
	char *data;
	size_t len;
	size_t cap;
};
void sg_buf_init(struct sg_buf *b);
void sg_buf_clear(struct sg_buf *b);
int sg_buf_add(struct sg_buf *b, const void *p, size_t n);
int sg_buf_adds(struct sg_buf *b, const char *s);
int sg_buf_addf(struct sg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- keys (keys.c) ---- */
struct sg_certs {
	STACK_OF(X509) * sk;
};
struct sg_key {
	X509 *cert;
	EVP_PKEY *pkey;
	struct sg_certs chain;
};

/* Checks CERT for PURPOSE at the handle's time: validity period, keyUsage
 * and extendedKeyUsage.  Returns SG_OK, SG_ERR_EXPIRED or SG_ERR_KEY_USAGE
 * (with the reason recorded on CTX). */
enum sg_cert_purpose { SG_PURPOSE_SIGN, SG_PURPOSE_ENCRYPT };
enum sg_status sg_cert_check(struct sg_ctx *ctx, X509 *cert,
                             enum sg_cert_purpose purpose);
/* Email addresses of CERT (SAN rfc822Name, then subject emailAddress),
 * domain part lowercased, local part as it is; names with a NUL inside are
 * ignored.  NULL-terminated; NULL when allocation fails. */
char **sg_cert_emails(X509 *cert);
void sg_strv_free(char **v);
/* Uppercase hex of a serial number; lowercase hex of bytes (caller
 * frees). */
char *sg_serial_hex(const ASN1_INTEGER *serial);
char *sg_hex_lower(const unsigned char *p, size_t n);
/* Lowercases S in place (a domain name). */
void sg_lower_domain(char *s);
/* "CN=...,O=..." one-line RFC 2253 form; caller frees. */
char *sg_name_oneline(const X509_NAME *name);

/* ---- the message (msg.c) ---- */

/* One header field, as it stands in the input. */
struct sg_hdr {
	char *name;      /* NUL-terminated field name */
	size_t off;      /* offset of the field's first byte in the input */
	size_t len;      /* raw length including folding and line end */
	const char *raw; /* the raw bytes (points into msg->hdrblock) */
};

struct sg_msg {
	struct sg_ctx *ctx;
	int fd;          /* the input: the caller's fd, or our spool */
	int owns_fd;     /* spool: ours to close */
	off_t base;      /* where the message starts in fd */
	size_t size;     /* message length in bytes */
	int crlf;        /* the input used CRLF */
	char *hdrblock;  /* the raw header block, NUL-terminated */
	size_t hdrlen;   /* its length, without the blank line */
	size_t body_off; /* offset of the body (after the blank line) */
	struct sg_hdr *hdrs;
	size_t nhdrs;
};

/* Reads LEN bytes at message offset OFF into BUF.  0 or -1. */
int sg_msg_pread(const struct sg_msg *msg, void *buf, size_t len, size_t off);
/* The unfolded, trimmed value of the first header NAME (caller frees), or
 * NULL when absent. */
char *sg_msg_header(const struct sg_msg *msg, const char *name);
/* The same for header number I of MSG's header block. */
char *sg_msg_header_nth(const struct sg_msg *msg, size_t i);
/* Whether header NAME stays outside the protected entity. */
int sg_hdr_is_content(const char *name);
int sg_hdr_is_dropped(const char *name);
/* Opens a new unlinked temporary file for about EXPECT bytes (0: unknown):
 * in memory (memfd) when EXPECT is known and at most the handle's
 * tmp_memory, else in its tmpdir.  -1 on error (errno set). */
int sg_tmpfile(struct sg_ctx *ctx, size_t expect);

/* ---- byte sources (source.c) ---- */

/*
 * A BIO that produces a sequence of segments: memory bytes and file ranges,
 * optionally canonicalized to CRLF on the way (bare LF becomes CRLF).  It
 * can be rewound and read again, so the same entity is hashed and then
 * written without being held in memory.
 */
struct sg_seg {
	const char *mem; /* either mem ... */
	int fd;          /* ... or a file range */
	off_t off;
	size_t len;
	int canon; /* LF -> CRLF */
};
struct sg_source;
struct sg_source *sg_source_new(void);
void sg_source_free(struct sg_source *src);
int sg_source_add_mem(struct sg_source *src, const char *p, size_t n,
                      int canon);
int sg_source_add_file(struct sg_source *src, int fd, off_t off, size_t n,
                       int canon);
/* A fresh BIO reading the whole sequence from the start; the BIO borrows
 * SRC. */
BIO *sg_source_bio(struct sg_source *src);
/* Copies everything later read from source BIO B into TEE (borrowed; NULL
 * stops it), so that one pass both hashes and writes an entity. */
void sg_source_set_tee(BIO *b, BIO *tee);

/* ---- output (emit.c) ---- */

/* A BIO writing to SINK; when LF is set CRLF pairs are written as LF. */
BIO *sg_sink_bio(struct sg_sink *sink, int lf);
/* Writes the outer headers of MSG (all but Content-*, MIME-Version, and the
 * dropped ones), then "MIME-Version: 1.0", all with CRLF, into OUT. */
int sg_emit_outer_headers(const struct sg_msg *msg, BIO *out);
/* Copies all of RD into WR; 0 or -1. */
int sg_bio_copy(BIO *rd, BIO *wr);
/* Writes base64 of the DER of CMS to OUT in 76-char CRLF lines. */
int sg_emit_cms_base64(BIO *out, CMS_ContentInfo *cms, BIO *stream_in,
                       int flags);

/* ---- MIME (mime.c) ---- */

/* The protected entity of MSG (its Content-* headers and body) in
 * canonical 7-bit CRLF form, as a source.  Re-encodes 8bit/binary parts
 * with GMime when needed.  *SPOOL receives a temporary fd to close (or
 * -1). */
enum sg_status sg_mime_inner_entity(struct sg_msg *msg, struct sg_source *src,
                                    int *spool);

/* The kind of S/MIME layer at the top of MSG. */
/* The S/MIME kind of MSG from its Content-Type into *KIND.  SG_OK, or
 * SG_ERR_TEMP (reason on MSG's handle) when the field takes GMime to read
 * and GMime cannot be loaded. */
enum sg_status sg_mime_kind(const struct sg_msg *msg, enum sg_smime_kind *kind);
/* The top-level Content-Type, as far as the S/MIME code reads it. */
struct sg_ctype {
	const char *type, *sub; /* as written: compare with strcasecmp */
	const char *protocol, *smime_type, *boundary; /* NULL when absent */
	char *mem;                                    /* holds the strings */
};
/* Reads the Content-Type value V into OUT (sg_ctype_clear it) when V is in
 * the plain form fields.c accepts: 1.  0 when it is not (or on a lack of
 * memory): GMime must read it. */
int sg_ctype_parse_simple(const char *v, struct sg_ctype *out);
void sg_ctype_clear(struct sg_ctype *ct);
/* The address of the From value V when V is one mailbox in the plain form
 * fields.c accepts (*SIMPLE = 1; the domain in lower case; NULL only when
 * out of memory), or NULL with *SIMPLE = 0: GMime must read it. */
char *sg_addr_parse_simple(const char *v, int *simple);

/* SG_OK when GMime is loaded (loading it now if need be: lib/gmime_dl.h),
 * or SG_ERR_TEMP with the reason on CTX. */
enum sg_status sg_gmime_need(struct sg_ctx *ctx);
/* MSG parsed by GMime (a GMimeMessage *, g_object_unref it), or NULL with
 * the reason on MSG's handle.  Typed void * so that this header needs no
 * GMime. */
void *sg_mime_parse(struct sg_msg *msg);

/* Locates the two parts of a multipart/signed body: the exact signed bytes
 * [*c_off, *c_off + *c_len) and the signature part's body
 * [*s_off, *s_off + *s_len) with its transfer encoding in *s_b64. */
enum sg_status sg_mime_split_signed(struct sg_msg *msg, size_t *c_off,
                                    size_t *c_len, size_t *s_off, size_t *s_len,
                                    int *s_b64);

/* Decodes base64 (or takes raw DER when B64 is 0) from a message range
 * into a CMS object, bounded by max_cms.  SG_ERR_CMS when malformed. */
enum sg_status sg_mime_read_cms(struct sg_msg *msg, size_t off, size_t len,
                                int b64, CMS_ContentInfo **out);

/* The bare address of the first From mailbox, the domain in lower case and
 * in its ASCII form (IDNA A-labels), as certificates carry it (caller
 * frees). */
char *sg_mime_from_address(const struct sg_msg *msg);
/* The same from the From value V, read by GMime (NULL also when GMime
 * cannot be loaded). */
char *sg_mime_addr_gmime(const char *v);

/* A fresh boundary string into BUF (at least 48 bytes). */
void sg_mime_boundary(char *buf, size_t len);
/* Every walk of a MIME tree calls this at each part: SG_ERR_LIMIT when
 * DEPTH passes the handle's max_depth or the part counted in *PARTS its
 * max_parts. */
enum sg_status sg_mime_walk_limits(struct sg_ctx *ctx, unsigned depth,
                                   unsigned *parts);

#endif /* SG_INT_H */
