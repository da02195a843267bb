/*
 * smtp_tls.c - the SMTP server's TLS (RFC 3207 STARTTLS): one server
 * context per listener, made from its tls_cert and tls_key at start and
 * at each reload, and the filter bufferevent a session's connection is
 * wrapped in after "220 Ready to start TLS".  OpenSSL stays in here; the
 * sessions see an opaque struct smtp_tls and a bufferevent.
 *
 * What it trusts: the configuration's file names.  What it can reach:
 * those two files, once per start or reload, and nothing else (no client
 * certificates, no CRLs, no network).
 *
 * Choices: TLS 1.2 at least; OpenSSL's default cipher suites (its
 * default security level); no renegotiation, no compression; no
 * client-certificate request.  The certificate file may hold a chain
 * (leaf first).  A context is reference-counted: a session keeps the one
 * it started with across a reload.  All of it runs on the loop thread.
 */
#include "daemon/smtp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_dl.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

struct smtp_tls {
	SSL_CTX *ctx;
	unsigned refs;
};

/* OpenSSL's last error, for a message; the queue is emptied. */
static const char *
ssl_reason(char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(last, buf, len);
	return buf;
}

/* Whether PATH can be opened for reading: a clear message when not,
 * rather than OpenSSL's "system library". */
static int
readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return 0;
	}
	fclose(f);
	return 1;
}

struct smtp_tls *
smtp_tls_new(const char *cert, const char *key, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "smimegate";
	struct smtp_tls *t = NULL;
	SSL_CTX *ctx = NULL;
	char why[256];

	ERR_clear_error();
	if (!readable("tls_cert", cert, err, errlen) ||
	    !readable("tls_key", key, err, errlen))
		goto fail;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) !=
	        1) {
		snprintf(err, errlen, "TLS setup: %s",
		         ssl_reason(why, sizeof(why)));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_NO_COMPRESSION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* the key first: a certificate that does not match it then only
	 * drops it, and the check below says so plainly */
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen,
		         "tls_key %s: not a PEM private key (without a "
		         "passphrase): %s",
		         key, ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "tls_cert %s: not a PEM certificate: %s",
		         cert, ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen,
		         "tls_key %s does not match the certificate in "
		         "tls_cert %s",
		         key, cert);
		ERR_clear_error();
		goto fail;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	t->ctx = ctx;
	t->refs = 1;
	return t;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct smtp_tls *
smtp_tls_ref(struct smtp_tls *t)
{
	if (t != NULL)
		t->refs++;
	return t;
}

void
smtp_tls_free(struct smtp_tls *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

struct bufferevent *
smtp_tls_wrap(struct smtp_tls *t, struct event_base *base,
              struct bufferevent *under)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(t->ctx)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	/* frees SSL when it fails */
	bev = bufferevent_openssl_filter_new(
	    base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		ERR_clear_error();
		return NULL;
	}
	/* a client that closes without close_notify has just left */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void
smtp_tls_info(struct bufferevent *bev, const char **version,
              const char **cipher)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	const char *c = ssl ? SSL_get_cipher_name(ssl) : NULL;

	*version = ssl ? SSL_get_version(ssl) : "none";
	*cipher = c && strcmp(c, "(NONE)") != 0 ? c : "none";
}

void
smtp_tls_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "connection closed");
	else
		ERR_error_string_n(last, buf, len);
	ERR_clear_error();
}

void
smtp_tls_shutdown(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		return;
	(void)SSL_shutdown(ssl); /* close_notify; no waiting for the peer's */
	ERR_clear_error();
}

size_t
smtp_tls_pending(struct bufferevent *bev)
{
	struct bufferevent *u = bufferevent_get_underlying(bev);

	return u ? evbuffer_get_length(bufferevent_get_output(u)) : 0;
}
