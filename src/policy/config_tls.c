/*
 * config_tls.c - how the certificate of a next hop is checked: a [route]'s
 * tls_ca_file and tls_fingerprint, the smarthost's smarthost_tls_ca_file
 * and smarthost_tls_fingerprint (docs/config.md, "[route NAME]";
 * docs/daemon.md, "TLS").
 *
 * tls_ca_file replaces the system's CA bundle for that next hop: a
 * partner's private CA, or a public one only.  The file is read when the
 * configuration is, so that check-config and a reload report a missing or
 * empty file with its line, and a reload reads it again.
 *
 * tls_fingerprint pins the next hop's certificate: the SHA-256 of the
 * certificate (`openssl x509 -noout -fingerprint -sha256`) or of its
 * SubjectPublicKeyInfo (which survives a renewal with the same key), in
 * hex with or without colons, optionally prefixed "sha256:".  A pin makes
 * TLS required; a certificate matching a pin is verified without a CA
 * (as Postfix's "fingerprint" level, for a partner's self-signed server),
 * unless tls_ca_file is given too: then both must hold.
 */
#include "policy/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define PINS_MAX 64 /* fingerprints of one next hop */

int
cfg_peer_ca_file(struct parser *ps, struct cfg_peer *peer, const char *v)
{
	X509_STORE *st;
	FILE *f;
	int n = 0;

	if ((f = fopen(v, "r")) == NULL)
		return cfg_fail(ps, "CA file \"%s\": %s", v, strerror(errno));
	fclose(f);
	if ((st = X509_STORE_new()) == NULL)
		return cfg_fail(ps, "out of memory");
	ERR_set_mark();
	if (X509_STORE_load_file(st, v) == 1) {
		STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(st);
		for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
			if (X509_OBJECT_get_type(
			        sk_X509_OBJECT_value(objs, i)) == X509_LU_X509)
				n++;
	}
	ERR_pop_to_mark();
	if (n == 0) {
		X509_STORE_free(st);
		return cfg_fail(ps, "CA file \"%s\" holds no PEM certificate",
		                v);
	}
	X509_STORE_free(peer->ca);
	peer->ca = st;
	return cfg_set_str(ps, &peer->ca_file, v);
}

/* One pin: [sha256:]HEX, colons between the bytes allowed. */
static int
parse_pin(const char *s, unsigned char out[32])
{
	size_t n = 0;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	while (*s) {
		if (*s == ':') {
			s++;
			continue;
		}
		if (!isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]) || n == 32)
			return -1;
		char hex[3] = {s[0], s[1], '\0'};
		out[n++] = (unsigned char)strtoul(hex, NULL, 16);
		s += 2;
	}
	return n == 32 ? 0 : -1;
}

int
cfg_peer_pins(struct parser *ps, struct cfg_peer *peer, const char *v)
{
	size_t n;
	char **items = cfg_split(v, &n);
	unsigned char(*pins)[32];

	if (items == NULL || n == 0 || n > PINS_MAX) {
		cfg_strv_free(items);
		return cfg_fail(ps, "wants 1 to %d SHA-256 fingerprints",
		                PINS_MAX);
	}
	if ((pins = calloc(n, sizeof(*pins))) == NULL) {
		cfg_strv_free(items);
		return cfg_fail(ps, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (parse_pin(items[i], pins[i]) == -1) {
			int rc = cfg_fail(ps,
			                  "\"%s\" is not a SHA-256 fingerprint "
			                  "(64 hex digits, colons allowed)",
			                  items[i]);
			cfg_strv_free(items);
			free(pins);
			return rc;
		}
	cfg_strv_free(items);
	free(peer->pins);
	peer->pins = pins;
	peer->npins = n;
	return 0;
}

int
cfg_peer_finish(struct parser *ps, struct cfg_peer *peer, enum cfg_tls *tls,
                const char *what)
{
	if (peer->npins > 0) {
		if (!peer->tls_set)
			*tls = CFG_TLS_REQUIRED;
		else if (*tls != CFG_TLS_REQUIRED)
			return cfg_fail(
			    ps,
			    "%s: tls_fingerprint needs TLS required, "
			    "not %s",
			    what,
			    *tls == CFG_TLS_NONE ? "none" : "opportunistic");
	}
	if (peer->ca_file != NULL && *tls == CFG_TLS_NONE)
		return cfg_fail(
		    ps, "%s: tls_ca_file with TLS none checks nothing", what);
	return 0;
}

void
cfg_peer_free(struct cfg_peer *peer)
{
	free(peer->ca_file);
	X509_STORE_free(peer->ca);
	free(peer->pins);
	memset(peer, 0, sizeof(*peer));
}
