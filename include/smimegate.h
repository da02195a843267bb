/*
 * smimegate.h - the smimegate S/MIME engine: the one public header.
 *
 * The library turns an RFC 5322 message into a signed and/or encrypted
 * S/MIME message and back.  It has no sockets, no logging, no exit() and no
 * mutable globals: time, limits and the detail of the last failure live on
 * a handle (struct sg_ctx) that the caller owns.  Every call that can fail
 * returns enum sg_status (SG_OK == 0); sg_ctx_error() tells why.
 *
 * Ownership: _new/_free pairs allocate and release; x_free(NULL) does
 * nothing.  "get0" borrows, "set1" takes its own reference or copy.
 * Handles are not thread-safe; use one struct sg_ctx per thread.
 */
#ifndef SMIMEGATE_H
#define SMIMEGATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status ------------------------------------------------------------ */

/*
 * Every outcome the engine can report.  Each one maps, in one table
 * (src/lib/status.c), to a name, a CLI exit code, an SMTP reply code, an
 * enhanced status code and a text.  No reply string or exit code is written
 * anywhere else.
 */
enum sg_status {
	SG_OK = 0,
	/* exit 2: the request or the input is unusable */
	SG_ERR_USAGE,       /* bad arguments */
	SG_ERR_IO,          /* a file or stream could not be read or written */
	SG_ERR_MIME,        /* the message is not well-formed MIME */
	SG_ERR_NOT_SMIME,   /* the message carries no S/MIME layer */
	SG_ERR_CMS,         /* the CMS object (or its base64) is malformed */
	SG_ERR_LIMIT,       /* a size, count or depth limit was exceeded */
	SG_ERR_BADKEY,      /* a certificate or key file is unreadable */
	SG_ERR_UNSUPPORTED, /* an algorithm or form we do not handle */
	/* exit 1: the security operation failed for a reason about the
	 * message or the keys */
	SG_ERR_BAD_SIGNATURE,      /* digest or signature does not check */
	SG_ERR_UNTRUSTED,          /* chain does not reach a trust anchor */
	SG_ERR_EXPIRED,            /* a certificate is outside its validity */
	SG_ERR_KEY_USAGE,          /* keyUsage / extendedKeyUsage forbid it */
	SG_ERR_KEY_MISMATCH,       /* private key does not belong to the cert */
	SG_ERR_NOT_RECIPIENT,      /* none of our keys opens this envelope */
	SG_ERR_DECRYPT,            /* decryption or GCM tag check failed */
	SG_ERR_NOT_FOUND,          /* no such name in the store */
	SG_ERR_EXISTS,             /* the name is taken */
	SG_ERR_POLICY,             /* refused by the administrator's policy */
	SG_ERR_REVOKED,            /* a CRL or OCSP response says revoked */
	SG_ERR_REVOCATION_UNKNOWN, /* no revocation status, under hard-fail */
	/* process-level */
	SG_ERR_NOMEM,
	SG_ERR_TEMP,     /* temporary failure: try again later */
	SG_ERR_INTERNAL, /* broken invariant: a bug */
	SG__STATUS_COUNT
};

/* Static text; never NULL (unknown values give "unknown status"). */
const char *sg_status_name(enum sg_status st);     /* "bad-signature" */
const char *sg_status_text(enum sg_status st);     /* human sentence */
int sg_status_exit_code(enum sg_status st);        /* 0, 1 or 2 */
int sg_status_smtp_code(enum sg_status st);        /* 250, 451, 550, 554 */
const char *sg_status_enhanced(enum sg_status st); /* "5.7.5" */

/* The versions of the cryptographic and MIME libraries in use, one line of
 * static text ("OpenSSL 3.0.19 27 Jan 2026, GMime 3.2.13"). */
const char *sg_library_versions(void);

/* The library opens GMime when a call first needs it, not at start-up
 * (a one-shot command that never parses MIME does not pay for it).  A
 * long-running process calls this at start instead, so that a GMime that
 * cannot be loaded stops it then, not at its first message.  Returns
 * SG_OK, or SG_ERR_TEMP with the file and the reason in WHY (WLEN bytes). */
enum sg_status sg_preload(char *why, size_t wlen);

/* ---- Library handle ------------------------------------------------------ */

/* Every attacker-controlled size and count has a limit here. */
struct sg_limits {
	size_t max_message;      /* whole input message, bytes */
	size_t max_header_line;  /* one (unfolded) header field, bytes */
	size_t max_header_block; /* a whole header block, bytes */
	unsigned max_depth;      /* MIME nesting depth */
	unsigned max_parts;      /* MIME parts in one message */
	size_t max_cms;          /* one decoded CMS object, bytes */
	unsigned max_recipients; /* RecipientInfos examined / created */
};

struct sg_ctx;

/* Creates a handle with default limits and the real clock.
 * Returns SG_OK or SG_ERR_NOMEM; *out is set only on SG_OK. */
enum sg_status sg_ctx_new(struct sg_ctx **out);
void sg_ctx_free(struct sg_ctx *ctx);

void sg_ctx_get_limits(const struct sg_ctx *ctx, struct sg_limits *out);
void sg_ctx_set_limits(struct sg_ctx *ctx, const struct sg_limits *lim);

/* Revocation checking in sg_verify (docs/revocation.md): with RV (a
 * checker from sg_revocation_new, borrowed: it must outlive its use here;
 * NULL: no checking, the default) the signer's certificate and every
 * intermediate of its trusted chain are checked.  A revoked one fails
 * verification with SG_ERR_REVOKED.  An unknown status fails it with
 * SG_ERR_REVOCATION_UNKNOWN when HARD_FAIL is set, and is only reported
 * (sg_verify_result.revocation) when it is not (soft-fail). */
struct sg_revocation;
void sg_ctx_set_revocation(struct sg_ctx *ctx, struct sg_revocation *rv,
                           int hard_fail);

/* The time used for validity checks and signingTime; 0 = the real clock. */
void sg_ctx_set_time(struct sg_ctx *ctx, time_t now);
time_t sg_ctx_now(const struct sg_ctx *ctx);

/* Directory for temporary files (default $TMPDIR, else /tmp).  Copied. */
enum sg_status sg_ctx_set_tmpdir(struct sg_ctx *ctx, const char *dir);

/* Temporary copies of a message of at most MAX bytes stay in memory
 * (memfd_create) instead of the temporary directory; 0 = never.  Default
 * SG_TMP_MEMORY_DEFAULT.  Larger messages always go to files, so memory
 * stays bounded whatever the input. */
#define SG_TMP_MEMORY_DEFAULT ((size_t)1 << 20) /* 1 MiB */
void sg_ctx_set_tmp_memory(struct sg_ctx *ctx, size_t max);

/* Records a failure on the handle for a client layer (the store) whose own
 * object does not exist yet: ST and a one-line reason, no key material.
 * Returns ST. */
enum sg_status sg_ctx_set_error(struct sg_ctx *ctx, enum sg_status st,
                                const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The detail of the last failure on this handle: one line, no key
 * material.  Valid until the next call on the handle.  Never NULL. */
const char *sg_ctx_error(const struct sg_ctx *ctx);
enum sg_status sg_ctx_last_status(const struct sg_ctx *ctx);

/* ---- Output sink --------------------------------------------------------- */

/* Where a result message goes.  write returns 0 on success, -1 on error. */
struct sg_sink {
	int (*write)(void *arg, const void *buf, size_t len);
	void *arg;
};

/* A sink that writes to a file descriptor (the caller keeps the fd). */
void sg_sink_fd(struct sg_sink *sink, int *fd);

/* An unnamed read-write file in DIR (NULL: $TMPDIR, else /tmp), mode 0600,
 * gone when closed: O_TMPFILE, or where the file system has none (NFS,
 * some FUSE) a file created and unlinked at once.  -1 with errno. */
int sg_tmpfile_open(const char *dir);

/* ---- Certificates and keys ----------------------------------------------- */

/* A list of certificates: recipients, a chain, or trust anchors. */
struct sg_certs;
/* A private key with its certificate.  Code obtains one only from a key
 * source (files now, the store later), never by reaching into it. */
struct sg_key;

enum sg_status sg_certs_new(struct sg_certs **out);
void sg_certs_free(struct sg_certs *certs);
/* Appends every certificate in FILE (PEM bundle, DER, or PKCS#7
 * certs-only).  SG_ERR_BADKEY when the file holds none. */
enum sg_status sg_certs_load_file(struct sg_ctx *ctx, struct sg_certs *certs,
                                  const char *path);
/* Appends certificates from memory (PEM or DER). */
enum sg_status sg_certs_load_mem(struct sg_ctx *ctx, struct sg_certs *certs,
                                 const void *data, size_t len);
/* Appends the end-entity certificates of FILE: CA certificates (a chain
 * that came in the same file) are skipped.  For recipient files.
 * SG_ERR_BADKEY when no end-entity certificate is left. */
enum sg_status sg_certs_load_end_entities(struct sg_ctx *ctx,
                                          struct sg_certs *certs,
                                          const char *path);
size_t sg_certs_count(const struct sg_certs *certs);

/* Loads a certificate and its private key from PEM/DER files; the key may
 * be encrypted with PASS (NULL: none).  SG_ERR_KEY_MISMATCH when the key
 * does not belong to the certificate.  Extra certificates in CERT_PATH
 * after the first become the chain. */
enum sg_status sg_key_load_files(struct sg_ctx *ctx, const char *cert_path,
                                 const char *key_path, const char *pass,
                                 struct sg_key **out);
/* Loads a PKCS#12 file (modern or legacy) with PASS (NULL or ""). */
enum sg_status sg_key_load_p12(struct sg_ctx *ctx, const char *path,
                               const char *pass, struct sg_key **out);
void sg_key_free(struct sg_key *key);
/* The chain that came with the key (may be empty); borrowed. */
const struct sg_certs *sg_key_get0_chain(const struct sg_key *key);

/* ---- Messages --------------------------------------------------------------
 */

/* An input message.  It is kept in a file (the caller's, if seekable, or
 * a private temporary spool), never in memory as a whole. */
struct sg_msg;

/* Reads a message from FD (not closed).  A seekable fd is used in place
 * from its current offset; anything else is spooled to a temporary file.
 * Fails with SG_ERR_LIMIT (too big, header line/block too long), SG_ERR_MIME
 * (no header block) or SG_ERR_IO. */
enum sg_status sg_msg_open_fd(struct sg_ctx *ctx, int fd, struct sg_msg **out);
/* The same from memory (copied to the spool). */
enum sg_status sg_msg_open_mem(struct sg_ctx *ctx, const void *data, size_t len,
                               struct sg_msg **out);
void sg_msg_free(struct sg_msg *msg);
/* The message's length in bytes. */
size_t sg_msg_size(const struct sg_msg *msg);
/* Every value of header NAME (any case), unfolded and trimmed, in order,
 * NULL-terminated; NULL when there is none (or memory ran out). Free with
 * sg_strv_free. */
char **sg_msg_header_all(const struct sg_msg *msg, const char *name);
void sg_strv_free(char **v);

/* What the policy layer's filters look at (docs/filters.md). */
#define SG_FACTS_TEXT_MAX ((size_t)1 << 20) /* bytes of body_text */
#define SG_FACTS_ATT_MAX  1000              /* attachments listed */
struct sg_facts {
	char *subject;    /* RFC 2047-decoded, UTF-8, or NULL */
	char *body_text;  /* the text/ parts that are not attachments, decoded
	                   * and converted to UTF-8, joined by newlines, cut
	                   * at SG_FACTS_TEXT_MAX; NULL when there is none */
	char **att_names; /* attachment file names ("" when unnamed) ... */
	char **att_types; /* ... and their types ("application/pdf"); both
	                   * NULL-terminated, NULL when there is none */
	size_t natt;
	int smime_signed;    /* the message is S/MIME signed (outermost) */
	int smime_encrypted; /* the message is S/MIME enveloped (outermost) */
};
/* Fills OUT (cleared first) from MSG: inside a multipart/signed, the
 * signed content; an opaque S/MIME body has no text.  Bounded by the
 * handle's depth and part limits.  SG_ERR_MIME, SG_ERR_LIMIT,
 * SG_ERR_NOMEM. */
enum sg_status sg_msg_facts(struct sg_msg *msg, struct sg_facts *out);
void sg_facts_clear(struct sg_facts *f);
/* Whether the input used CRLF line ends.  Output follows the input. */
int sg_msg_is_crlf(const struct sg_msg *msg);

/* What an S/MIME message is at its top level. */
enum sg_smime_kind {
	SG_KIND_NONE = 0,        /* not S/MIME */
	SG_KIND_SIGNED_DETACHED, /* multipart/signed */
	SG_KIND_SIGNED_OPAQUE,   /* pkcs7-mime; smime-type=signed-data */
	SG_KIND_ENVELOPED,       /* pkcs7-mime; enveloped-data */
	SG_KIND_AUTH_ENVELOPED,  /* pkcs7-mime; authEnveloped-data */
};
enum sg_smime_kind sg_msg_smime_kind(const struct sg_msg *msg);

/*
 * Writes MSG to SINK with PREPEND (complete header lines with CRLF, or
 * NULL) before its header block, and without the header fields named
 * DROP_NAME whose value, after leading white space, starts with
 * DROP_PREFIX followed by ";" or white space (for example forged
 * "Authentication-Results: our.host; ..." fields).  Everything else is
 * copied byte for byte.
 */
enum sg_status sg_msg_write_headers(struct sg_ctx *ctx, struct sg_msg *msg,
                                    const char *prepend, const char *drop_name,
                                    const char *drop_prefix,
                                    struct sg_sink *sink);
/* The same, also without every header field named in REMOVE (any case;
 * NULL-terminated, or NULL). */
enum sg_status sg_msg_write_edited(struct sg_ctx *ctx, struct sg_msg *msg,
                                   const char *prepend, const char *drop_name,
                                   const char *drop_prefix,
                                   const char *const *remove,
                                   struct sg_sink *sink);

/* ---- Operations ------------------------------------------------------------
 */

enum sg_digest { SG_DIGEST_SHA256 = 0, SG_DIGEST_SHA384, SG_DIGEST_SHA512 };
enum sg_cipher {
	SG_CIPHER_AES256_CBC = 0,
	SG_CIPHER_AES128_CBC,
	SG_CIPHER_AES128_GCM,
	SG_CIPHER_AES256_GCM,
};

struct sg_sign_opts {
	const struct sg_key *signer;  /* required */
	const struct sg_certs *chain; /* extra certificates; may be NULL */
	enum sg_digest digest;
	int opaque; /* 0: multipart/signed (default), 1: pkcs7-mime */
};

/*
 * Signs MSG and writes the signed message to OUT: the outer identity and
 * routing headers stay outside, the Content-* headers move inside, Bcc and
 * DKIM-Signature are dropped.  8bit and binary parts are re-encoded to a
 * 7-bit transfer encoding and the content is canonicalized to CRLF first.
 * The signer certificate must be valid now and fit for signing.
 * Returns SG_OK, SG_ERR_EXPIRED, SG_ERR_KEY_USAGE, SG_ERR_MIME,
 * SG_ERR_LIMIT, SG_ERR_IO, SG_ERR_INTERNAL.
 */
enum sg_status sg_sign(struct sg_ctx *ctx, struct sg_msg *msg,
                       const struct sg_sign_opts *opts, struct sg_sink *out);

struct sg_encrypt_opts {
	const struct sg_certs *recipients; /* at least one */
	enum sg_cipher cipher;
	int oaep; /* RSA-OAEP (SHA-256) instead of PKCS#1 v1.5 */
};

/*
 * Encrypts MSG to every recipient (RSA key transport or, for EC
 * certificates, ECDH key agreement) and writes application/pkcs7-mime.
 * GCM ciphers produce AuthEnvelopedData.  Each recipient certificate must
 * be valid now and allow key encipherment (RSA) or key agreement (EC).
 * Returns SG_OK, SG_ERR_EXPIRED, SG_ERR_KEY_USAGE, SG_ERR_USAGE,
 * SG_ERR_MIME, SG_ERR_LIMIT, SG_ERR_IO, SG_ERR_INTERNAL.
 */
enum sg_status sg_encrypt(struct sg_ctx *ctx, struct sg_msg *msg,
                          const struct sg_encrypt_opts *opts,
                          struct sg_sink *out);

/* Revocation status of a certificate (see "Revocation" below). */
enum sg_revocation_status {
	SG_REV_GOOD = 0, /* a trusted CRL or OCSP response says not revoked */
	SG_REV_REVOKED,  /* a trusted CRL or OCSP response says revoked */
	SG_REV_UNKNOWN,  /* nothing trustworthy could answer */
};

/* What verification found.  Strings are owned by the result. */
struct sg_verify_result {
	enum sg_status status;   /* the verdict (SG_OK: valid, trusted) */
	enum sg_smime_kind kind; /* detached or opaque */
	char *signer_subject;    /* RFC 2253 one-line form, or NULL */
	char *signer_issuer;
	char *signer_serial;  /* hex */
	char **signer_emails; /* NULL-terminated; SAN rfc822Name + subject */
	char *digest;         /* "sha256" */
	char *signature_alg;  /* "rsaEncryption", "rsassaPss", ... */
	time_t signing_time;  /* 0 when absent */
	int signature_ok;     /* content digest and signature check */
	int chain_ok;         /* chain to a trust anchor at the time */
	char *chain_error;    /* why not, or NULL */
	int from_match;       /* From address is one of signer_emails */
	char *from_address;   /* the From address examined, or NULL */
	int weak;             /* SHA-1 or a short key was used */
	char *weak_reason;
	struct sg_certs *certs; /* the signer's certificate first, then the
	                         * other certificates of the SignedData; NULL
	                         * when the signer's is not in the message */
	/* Revocation (only with sg_ctx_set_revocation, and only once the
	 * chain is trusted): the worst status over the signer and the
	 * intermediates of its chain, and why. */
	int revocation_checked;
	enum sg_revocation_status revocation;
	char *revocation_reason;
	int revocation_final; /* UNKNOWN with no source to ask: retrying
	                       * later cannot change it */
};
void sg_verify_result_clear(struct sg_verify_result *res);

/*
 * Verifies a signed message (multipart/signed or opaque signed-data) at
 * sg_ctx_now() against TRUST.  When OUT is not NULL the signed content is
 * written under the original outer headers, signature removed (also when
 * verification fails, so that nothing is lost; check the status).
 * RES is filled as far as it got.  With a revocation checker on CTX
 * (sg_ctx_set_revocation) a trusted chain is then checked for revocation:
 * SG_ERR_REVOKED, or SG_ERR_REVOCATION_UNKNOWN under hard-fail.
 * Returns RES->status, or an input error:
 * SG_ERR_NOT_SMIME, SG_ERR_MIME, SG_ERR_CMS, SG_ERR_LIMIT, SG_ERR_IO.
 */
enum sg_status sg_verify(struct sg_ctx *ctx, struct sg_msg *msg,
                         const struct sg_certs *trust,
                         struct sg_verify_result *res, struct sg_sink *out);

/*
 * Decrypts an EnvelopedData or AuthEnvelopedData message with KEY and
 * writes the decrypted message under the outer headers.  Our RecipientInfo
 * is chosen by issuer+serial or subject key identifier before any
 * decryption is tried.  Returns SG_OK, SG_ERR_NOT_RECIPIENT,
 * SG_ERR_DECRYPT, SG_ERR_NOT_SMIME, SG_ERR_CMS, SG_ERR_LIMIT, SG_ERR_IO.
 */
enum sg_status sg_decrypt(struct sg_ctx *ctx, struct sg_msg *msg,
                          const struct sg_key *key, struct sg_sink *out);

/* ---- Creating certificates --------------------------------------------- */

enum sg_keytype {
	SG_KEY_RSA2048 = 0,
	SG_KEY_RSA3072,
	SG_KEY_RSA4096,
	SG_KEY_EC_P256,
	SG_KEY_EC_P384,
};

/* What a new S/MIME certificate says (RFC 8550 profile).  NULL fields are
 * left out; SAN lists are NULL-terminated or NULL. */
struct sg_cert_req {
	const char *cn, *org, *unit, *city, *state, *country;
	const char *const *san_emails;
	const char *const *san_domains;
	unsigned days;       /* validity from now */
	enum sg_keytype key; /* the new key's type */
	int ca;              /* a CA certificate (for test PKIs) */
};

/*
 * Creates a new key and a certificate for it, issued by ISSUER or, when
 * ISSUER is NULL, self-signed.  End-entity certificates get keyUsage
 * digitalSignature + nonRepudiation (+ keyEncipherment for RSA,
 * keyAgreement for EC) and extendedKeyUsage emailProtection.
 * Returns SG_OK, SG_ERR_USAGE (bad field), SG_ERR_INTERNAL.
 */
enum sg_status sg_cert_create(struct sg_ctx *ctx, const struct sg_cert_req *req,
                              const struct sg_key *issuer, struct sg_key **out);
/* Writes the certificate (PEM, 0644) and the private key (PKCS#8 PEM,
 * 0600; encrypted with AES-256 when PASS is not NULL). */
enum sg_status sg_key_save_pem(struct sg_ctx *ctx, const struct sg_key *key,
                               const char *cert_path, const char *key_path,
                               const char *pass);

/* ---- Certificate facts ------------------------------------------------- */

/* What a certificate says, as plain data (for listings, lookups, the
 * store).  Strings are owned by the struct; sg_cert_info_clear frees. */
struct sg_cert_info {
	char *subject;     /* RFC 2253 one-line form */
	char *issuer;      /* same form */
	char *serial;      /* uppercase hex, no colons */
	char *fingerprint; /* SHA-256 of the DER, lowercase hex */
	char *ski;         /* subjectKeyIdentifier, lowercase hex, or NULL */
	char *key_type;    /* "rsa:2048", "ec:p256", "ec:p384", ... */
	char **emails;     /* SAN rfc822Name + subject emailAddress,
	                    * lowercased, NULL-terminated */
	char **domains;    /* SAN dNSName, lowercased, NULL-terminated */
	time_t not_before, not_after;
	int self_signed;
	int is_ca;
	/* Fitness by the RFC 8550 / seed 002 requirements: keyUsage (when
	 * present) allows digitalSignature and nonRepudiation (sign), or
	 * keyEncipherment (RSA) / keyAgreement (EC) (encrypt); an
	 * extendedKeyUsage, when present, includes emailProtection. */
	int can_sign;
	int can_encrypt;
	char *unfit_sign;    /* why not, or NULL */
	char *unfit_encrypt; /* why not, or NULL */
};

/* Facts about certificate I of CERTS.  SG_ERR_USAGE for a bad index. */
enum sg_status sg_certs_info(const struct sg_certs *certs, size_t i,
                             struct sg_cert_info *out);
void sg_cert_info_clear(struct sg_cert_info *info);
/* What a PEM CSR asks for: subject, key_type, emails and domains are
 * filled, the rest left zero.  SG_ERR_BADKEY when PEM is not a CSR. */
enum sg_status sg_csr_info(const char *pem, struct sg_cert_info *out);
/* The DER of certificate I (caller frees with free()). */
enum sg_status sg_certs_get_der(const struct sg_certs *certs, size_t i,
                                unsigned char **der, size_t *len);
/* Writes every certificate as PEM to SINK. */
enum sg_status sg_certs_write_pem(struct sg_ctx *ctx,
                                  const struct sg_certs *certs,
                                  struct sg_sink *sink);
/* Appends a new reference to certificate I of SRC to DST. */
enum sg_status sg_certs_push_from(struct sg_certs *dst,
                                  const struct sg_certs *src, size_t i);

/* ---- Keys for the store ------------------------------------------------ */

/* The key's certificate and chain as a list: [0] is the key's own
 * certificate (absent while a CSR is pending), then the chain.  A new
 * list; the caller frees it. */
enum sg_status sg_key_get_certs(const struct sg_key *key,
                                struct sg_certs **out);
/* Whether KEY has a certificate yet (0 while a CSR is pending). */
int sg_key_has_cert(const struct sg_key *key);
/* Whether certificate I of CERTS is for KEY's public key. */
int sg_key_matches(const struct sg_key *key, const struct sg_certs *certs,
                   size_t i);
/* Attaches certificate I of CERTS (and the others, as the chain) to KEY.
 * SG_ERR_KEY_MISMATCH when it is not for this key. */
enum sg_status sg_key_set_certs(struct sg_ctx *ctx, struct sg_key *key,
                                const struct sg_certs *certs, size_t i);

/* A second handle on the same private key (shared, not copied: a key
 * loaded once serves many messages, with its RSA blinding set up once)
 * and the same certificates.  SG_ERR_NOMEM. */
enum sg_status sg_key_dup(struct sg_ctx *ctx, const struct sg_key *key,
                          struct sg_key **out);

/* Random bytes from OpenSSL's CSPRNG.  SG_ERR_INTERNAL on failure. */
enum sg_status sg_random_bytes(unsigned char *buf, size_t len);

/*
 * Wraps the private key of KEY for storage: AES-256-GCM under the
 * 32-byte MASTER key over its PKCS#8 DER, with AAD (e.g. the row's
 * name) bound in, so that a blob moved to another row does not open.
 * *BLOB is malloc'd; the plaintext DER is wiped.
 */
enum sg_status sg_key_wrap(struct sg_ctx *ctx, const struct sg_key *key,
                           const unsigned char master[32], const char *aad,
                           unsigned char **blob, size_t *len);
/* The reverse: a key (with CERTS, if not NULL, attached: [0] its
 * certificate, then the chain).  SG_ERR_DECRYPT when the master key or
 * AAD is wrong or the blob was altered. */
enum sg_status sg_key_unwrap(struct sg_ctx *ctx, const unsigned char *blob,
                             size_t len, const unsigned char master[32],
                             const char *aad, const struct sg_certs *certs,
                             struct sg_key **out);

/* ---- CSRs and PKCS#12 --------------------------------------------------- */

/* A PEM certificate signing request for KEY (or, when *KEY is NULL, a new
 * key of REQ->key, returned in *KEY) with the fields and SANs of REQ and
 * the S/MIME keyUsage and extendedKeyUsage requested.  REQ may be NULL for
 * a key that has a certificate: the request then repeats that
 * certificate's subject and subjectAltName (a renewal).  *PEM is
 * malloc'd, NUL-terminated. */
enum sg_status sg_csr_create(struct sg_ctx *ctx, const struct sg_cert_req *req,
                             struct sg_key **key, char **pem);

/* Writes KEY (certificate, chain and private key) as PKCS#12 protected by
 * PASS: AES-256-CBC with PBKDF2 and a SHA-256 MAC, or with LEGACY
 * 3DES/RC2 and a SHA-1 MAC for older readers (Windows, gpgsm 2.2). */
enum sg_status sg_key_write_p12(struct sg_ctx *ctx, const struct sg_key *key,
                                const char *pass, int legacy,
                                struct sg_sink *sink);

/* ---- RecipientInfos ----------------------------------------------------- */

/* Who an encrypted message is for: one entry per RecipientInfo (or per
 * recipient of a key agreement).  Strings owned by the list. */
struct sg_recipient_id {
	char *issuer; /* RFC 2253 form, or NULL when by key identifier */
	char *serial; /* uppercase hex, or NULL */
	char *ski;    /* lowercase hex, or NULL */
};
/* Lists the recipients of an encrypted MSG: N entries in *IDS. */
enum sg_status sg_msg_recipients(struct sg_ctx *ctx, struct sg_msg *msg,
                                 struct sg_recipient_id **ids, size_t *n);
void sg_recipient_ids_free(struct sg_recipient_id *ids, size_t n);

/* ---- Revocation ---------------------------------------------------------- */

/*
 * Whether a certificate has been revoked, from CRLs (files given at
 * creation, and the certificate's CRL distribution points fetched over
 * http:// and cached) and OCSP (the http:// responder of the certificate's
 * authorityInfoAccess).  Details and the decision table: docs/revocation.md.
 *
 * The checker only reports a status.  What to do with SG_REV_UNKNOWN is the
 * caller's policy: soft-fail (the default: treat as not revoked, and say
 * so) or hard-fail (treat as a failure).  SG_REV_REVOKED must always be a
 * failure: a revoked signer fails verification, a revoked recipient
 * certificate is never used for encryption.
 *
 * Network access goes through OpenSSL's HTTP client only, bounded by the
 * options' timeout and size; it happens only when fetch_crl_dp or use_ocsp
 * is set.
 */
/* enum sg_revocation_status is declared before struct sg_verify_result. */

/* "good", "revoked", "unknown" (static text; never NULL). */
const char *sg_revocation_status_name(enum sg_revocation_status s);

/* A checker with its CRLs and CRL cache.  Thread-safe: one checker may
 * serve many threads, each with its own struct sg_ctx. */
struct sg_revocation;

struct sg_revocation_opts {
	const char *const *crl_files; /* NULL-terminated, or NULL; PEM (one
	                               * or more CRLs) or DER; read once, at
	                               * creation */
	int fetch_crl_dp;             /* fetch CRLs from the distribution
	                               * points (http:// only) */
	int use_ocsp;                 /* ask the AIA OCSP responder (http://) */
	unsigned timeout;             /* seconds per HTTP exchange; 0 = 10 */
	unsigned crl_refresh; /* seconds a fetched CRL is kept before it is
	                       * fetched again (earlier at its nextUpdate);
	                       * 0 = 3600 */
	size_t max_crl_size;  /* bytes of one CRL (file or download);
	                       * 0 = SG_REVOCATION_MAX_CRL_DEFAULT */
	const char *proxy;    /* "http://host:port" for CRL and OCSP
	                       * requests, or NULL: none (the environment's
	                       * http_proxy is NOT used) */
};
#define SG_REVOCATION_MAX_CRL_DEFAULT ((size_t)20 << 20) /* 20 MiB */
#define SG_REVOCATION_MAX_OCSP        ((size_t)64 << 10) /* one response */
#define SG_REVOCATION_MAX_CACHE       256 /* fetched CRLs kept (by URL) */

/*
 * Creates a checker (O may be NULL: no files, no network).  The CRL files
 * are read now; their signatures are checked later, against the issuer of
 * each certificate asked about.  O's strings are copied.
 * Returns SG_OK, SG_ERR_IO (a file cannot be read), SG_ERR_BADKEY (a file
 * holds no CRL), SG_ERR_LIMIT (a file is larger than max_crl_size),
 * SG_ERR_NOMEM; the reason is on CTX.  *OUT is set only on SG_OK.
 */
enum sg_status sg_revocation_new(struct sg_ctx *ctx,
                                 const struct sg_revocation_opts *o,
                                 struct sg_revocation **out);
void sg_revocation_free(struct sg_revocation *rv);

/*
 * The revocation status of certificate I of CERTS at sg_ctx_now(CTX).  Its
 * issuer is looked for in CERTS, then in TRUST (may be NULL); the issuer's
 * key checks every CRL and, directly or through a delegated responder
 * certificate, every OCSP response.  Order: OCSP (when use_ocsp and the
 * certificate names a responder); then the CRL files; then, unless OCSP
 * or a CRL file already answered "good", the distribution points (when
 * fetch_crl_dp), from the cache while fresh.  REVOKED from any source
 * wins.  A CRL or response that is badly signed, not yet valid or past
 * its nextUpdate is not trusted (it counts as no answer).  A self-signed
 * certificate (a trust anchor) is GOOD: revocation does not apply to it.
 * An unreachable server costs up to the timeout (OpenSSL retries a
 * refused connection until then), per URL tried: at most 1 OCSP and 4
 * distribution point URLs.
 *
 * *STATUS gets the outcome and WHY (WHYLEN bytes, may be NULL/0) a short
 * reason: "revoked by CRL of CN=Test CA on 2026-01-02T03:04:05Z
 * (keyCompromise)", "OCSP: good", "CRL of CN=Test CA: good",
 * "no CRL or OCSP responder reachable", "issuer not found", ...
 * Returns SG_OK whatever the outcome (an unreachable responder is
 * SG_REV_UNKNOWN, not an error), SG_ERR_USAGE (bad index) or SG_ERR_NOMEM;
 * the outputs are set only on SG_OK.
 */
/*
 * Whether anything could answer for certificate I of CERTS: CRL files, or
 * an http:// OCSP responder (with use_ocsp) or CRL distribution point
 * (with fetch_crl_dp) named in it.  0: its status is unknown and will stay
 * so, whatever servers come back; callers under hard-fail treat that as a
 * final failure rather than a temporary one.  Cheap: no network, no
 * issuer needed.
 */
int sg_revocation_has_source(const struct sg_revocation *rv,
                             const struct sg_certs *certs, size_t i);

enum sg_status sg_revocation_check(struct sg_revocation *rv, struct sg_ctx *ctx,
                                   const struct sg_certs *certs, size_t i,
                                   const struct sg_certs *trust,
                                   enum sg_revocation_status *status, char *why,
                                   size_t whylen);

#ifdef __cplusplus
}
#endif
#endif /* SMIMEGATE_H */
