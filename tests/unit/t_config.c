/*
 * t_config.c - the configuration parser: what it accepts, its defaults,
 * and that every error names FILE:LINE.
 */
#include "unit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/config.h"

static char *
write_tmp(const char *text)
{
	char *path = strdup("/tmp/t_config_XXXXXX");
	int fd = mkstemp(path);
	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

static const char good[] = "# comment\n"
                           "hostname = gw.example.com\n"
                           "max_message_size = 10M   # trailing comment\n"
                           "queue_lifetime = 2d\n"
                           "\n"
                           "[listener out]\n"
                           "listen = 127.0.0.1:2525\n"
                           "role = outgoing\n"
                           "relay_from = 192.0.2.0/24, 2001:db8::/32\n"
                           "profile = p1\n"
                           "\n"
                           "[listener in]\n"
                           "listen = [::1]:2526\n"
                           "role = incoming\n"
                           "local_domains = Example.COM, example.net\n"
                           "signature = remove\n"
                           "\n"
                           "[route partners]\n"
                           "domains = Partner.example, other.example\n"
                           "nexthop = [2001:db8::25]:25\n"
                           "tls = required\n"
                           "\n"
                           "[profile p1]\n"
                           "mode = sign-encrypt\n"
                           "signer = org\n"
                           "form = opaque\n"
                           "digest = sha512\n"
                           "cipher = aes-256-gcm\n"
                           "key_transport = oaep\n"
                           "missing_key = bounce\n";

static void
loads_a_full_file(void)
{
	char *path = write_tmp(good), err[256] = "";
	struct cfg *c = NULL;

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	if (c == NULL) {
		unit_fail(__FILE__, __LINE__, err);
		goto out;
	}
	CHECK_STR(c->hostname, "gw.example.com");
	CHECK_EQ(c->max_message, 10u << 20);
	CHECK_EQ(c->queue_lifetime, 2u * 86400);
	CHECK_EQ(c->nlisteners, 2);
	const struct cfg_listener *in = cfg_listener(c, "in");
	CHECK(in != NULL && in->port == 2526 && strcmp(in->host, "::1") == 0);
	CHECK(in && in->role == CFG_INCOMING && in->remove_signature);
	CHECK(in && cfg_is_local_domain(in, "EXAMPLE.com"));
	CHECK(in && !cfg_is_local_domain(in, "example.org"));
	const struct cfg_profile *p = cfg_profile(c, "p1");
	CHECK(p && p->mode == CFG_SIGN_ENCRYPT && p->opaque && p->oaep);
	CHECK(p && p->digest == SG_DIGEST_SHA512 &&
	      p->cipher == SG_CIPHER_AES256_GCM);
	CHECK(p && p->missing_key == CFG_MISSING_BOUNCE);
	CHECK(p && p->signer && strcmp(p->signer, "org") == 0);
	const struct cfg_route *r = cfg_route_for(c, "PARTNER.example");
	CHECK(r != NULL && r->tls == CFG_TLS_REQUIRED);
	CHECK(r && strcmp(r->nexthop, "[2001:db8::25]:25") == 0);
	CHECK(cfg_route_for(c, "example.net") == NULL);
	CHECK_EQ(c->smarthost_tls, CFG_TLS_OPPORTUNISTIC);
	/* Defaults. */
	CHECK_STR(c->spool_dir, "var/spool");
	CHECK_STR(c->postmaster, "postmaster@gw.example.com");
	CHECK(c->smarthost == NULL);
out:
	cfg_free(c);
	unlink(path);
	free(path);
}

static void
relay_networks(void)
{
	char *path = write_tmp(good), err[256];
	struct cfg *c = NULL;
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	static const struct {
		const char *addr;
		int relay;
	} cases[] = {
	    {"192.0.2.7", 1},       {"192.0.3.7", 0},   {"127.0.0.1", 0},
	    {"2001:db8::1", 1},     {"2001:db9::1", 0}, {"::ffff:192.0.2.9", 1},
	    {"::ffff:10.0.0.1", 0},
	};

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	const struct cfg_listener *out = c ? cfg_listener(c, "out") : NULL;
	const struct cfg_listener *in = c ? cfg_listener(c, "in") : NULL;
	for (size_t i = 0; out && i < sizeof(cases) / sizeof(*cases); i++) {
		const struct sockaddr *sa;
		if (inet_pton(AF_INET, cases[i].addr, &v4.sin_addr) == 1)
			sa = (struct sockaddr *)&v4;
		else if (inet_pton(AF_INET6, cases[i].addr, &v6.sin6_addr) == 1)
			sa = (struct sockaddr *)&v6;
		else
			continue;
		if (cfg_may_relay(out, sa) != cases[i].relay)
			unit_fail(__FILE__, __LINE__, cases[i].addr);
	}
	/* No relay_from given: loopback only. */
	inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
	CHECK(in && cfg_may_relay(in, (struct sockaddr *)&v4));
	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	CHECK(in && !cfg_may_relay(in, (struct sockaddr *)&v4));
	cfg_free(c);
	unlink(path);
	free(path);
}

static void
errors_name_the_line(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[listener a]\nlisten = 127.0.0.1:1\nrole = sideways\n", ":3: "},
	    {"bogus = 1\n", ":1: unknown setting"},
	    {"\n\nmax_message_size = lots\n", ":3: "},
	    {"[listener a]\nlisten = 127.0.0.1\n", ":2: listen wants"},
	    {"[listener a]\nlisten = localhost:25\n",
	     ":2: listen wants a numeric"},
	    {"[listener a]\nlisten = 1.2.3.4:5\nlisten = 1.2.3.4:6\n",
	     ":3: \"listen\" is set twice"},
	    {"[listener a]\nrelay_from = 10.0.0.0/33\n", ":2: "},
	    {"[zone x]\n", ":1: unknown section"},
	    {"[route r]\nnexthop = mx.example:25\n", "[route r] needs domains"},
	    {"[route r]\ntls = maybe\n", ":2: "},
	    {"just words\n", ":1: expected key = value"},
	    {"[listener a]\nlisten = 127.0.0.1:1\nrole = outgoing\n",
	     "profile \"default\""},
	    {"", "no [listener"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\n[listener b]\n"
	     "listen=127.0.0.1:1\nrole=incoming\n",
	     "both listen"},
	    /* STARTTLS and AUTH on a listener */
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\ntls=maybe\n",
	     ":4: \"maybe\": one of none, offer, required"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\nauth=login\n",
	     ":4: "},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\ntls_cert=c\n",
	     "needs both tls_cert and tls_key"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\ntls=offer\n",
	     "tls = offer needs tls_cert"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\nauth=plain\n"
	     "tls_cert=c\ntls_key=k\n",
	     "auth = plain needs auth_users"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\nauth_users=u\n",
	     "auth_users without auth = plain"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\nauth=plain\n"
	     "auth_users=u\n",
	     "AUTH is never offered in clear"},
	    {"[listener a]\nlisten=127.0.0.1:1\nrole=incoming\nauth=plain\n"
	     "auth_users=u\ntls_cert=c\ntls_key=k\ntls=none\n",
	     "AUTH is never offered in clear"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *path = write_tmp(cases[i].text), err[256] = "";
		struct cfg *c = NULL;
		if (cfg_load(path, &c, err, sizeof(err)) != SG_ERR_USAGE ||
		    c != NULL || strncmp(err, path, strlen(path)) != 0 ||
		    strstr(err, cases[i].want) == NULL) {
			char msg[600];
			snprintf(msg, sizeof(msg), "case %zu: %s", i, err);
			unit_fail(__FILE__, __LINE__, msg);
		}
		unlink(path);
		free(path);
	}
}

static void
missing_file_is_io(void)
{
	char err[256];
	struct cfg *c = NULL;
	CHECK_EQ(cfg_load("/nonexistent/x.conf", &c, err, sizeof(err)),
	         SG_ERR_IO);
	CHECK(strstr(err, "/nonexistent/x.conf") != NULL);
}

static void
demo_text_is_valid(void)
{
	char *text = cfg_demo_text("var/demo"), err[256] = "";
	char *path = write_tmp(text);
	struct cfg *c = NULL;

	/* The demo profile names a certificate; the file itself loads. */
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	CHECK(c != NULL && c->nlisteners == 2);
	cfg_free(c);
	unlink(path);
	free(path);
	free(text);
}

/* tls: offer by default with a certificate, none without; the files are
 * only named here (the daemon reads them). */
static void
listener_tls_keys(void)
{
	static const char text[] =
	    "[listener a]\nlisten = 127.0.0.1:1\nrole = incoming\n"
	    "[listener b]\nlisten = 127.0.0.1:2\nrole = incoming\n"
	    "tls_cert = /nonexistent/c.pem\ntls_key = /nonexistent/k.pem\n"
	    "[listener c]\nlisten = 127.0.0.1:3\nrole = incoming\n"
	    "tls_cert = c.pem\ntls_key = k.pem\ntls = required\n"
	    "auth = plain\nauth_users = users\n";
	char *path = write_tmp(text), err[256] = "";
	struct cfg *c = NULL;

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	const struct cfg_listener *a = c ? cfg_listener(c, "a") : NULL;
	const struct cfg_listener *b = c ? cfg_listener(c, "b") : NULL;
	const struct cfg_listener *l = c ? cfg_listener(c, "c") : NULL;
	CHECK(a && cfg_listener_starttls(a) == CFG_STARTTLS_NONE);
	CHECK(a && a->auth == CFG_AUTH_NONE && a->tls_cert == NULL);
	CHECK(b && cfg_listener_starttls(b) == CFG_STARTTLS_OFFER);
	CHECK(b && strcmp(b->tls_key, "/nonexistent/k.pem") == 0);
	CHECK(l && cfg_listener_starttls(l) == CFG_STARTTLS_REQUIRED);
	CHECK(l && l->auth == CFG_AUTH_PLAIN &&
	      strcmp(l->auth_users, "users") == 0);
	cfg_free(c);
	unlink(path);
	free(path);
}

/* [quarantine NAME] and message_filters: defaults, Policy always there,
 * the filter file loaded with the configuration and its errors reported
 * as ITS file and line; names checked against profiles and quarantines. */
static void
quarantines_and_filters(void)
{
	static const char base[] = "[listener a]\nlisten=127.0.0.1:1\n"
	                           "role=incoming\n";
	char text[2048], err[512];
	char *fpath =
	    write_tmp("q: if (smime-gateway-message and not "
	              "smime-gateway-verified) { quarantine(\"Held\"); }\n");
	char *bad = write_tmp("ok: if (true) { log(\"x\"); }\n"
	                      "broken: if (subject == \"x\" { drop(); }\n");
	char *unknown =
	    write_tmp("u: if (true) { quarantine(\"Nowhere\"); }\n");
	struct cfg *c = NULL;
	char *path;

	snprintf(text, sizeof(text),
	         "message_filters = %s\n%s[quarantine Held]\nretention = 2d\n"
	         "at_expiry = release\n",
	         fpath, base);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	if (c != NULL) {
		const struct cfg_quarantine *q = cfg_quarantine(c, "Held");
		CHECK(q != NULL && q->retention == 2 * 86400 &&
		      q->at_expiry == CFG_EXPIRY_RELEASE);
		q = cfg_quarantine(c, "Policy");
		CHECK(q != NULL && q->retention == 30 * 86400 &&
		      q->at_expiry == CFG_EXPIRY_DELETE);
		CHECK(c->message_filters != NULL);
		CHECK(cfg_quarantine(c, "policy") == NULL); /* case counts */
	}
	cfg_free(c);
	c = NULL;
	unlink(path);
	free(path);

	/* The filter file's own line. */
	snprintf(text, sizeof(text), "message_filters = %s\n%s", bad, base);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_ERR_USAGE);
	CHECK(c == NULL);
	CHECK(strncmp(err, bad, strlen(bad)) == 0 &&
	      strncmp(err + strlen(bad), ":2:", 3) == 0);
	unlink(path);
	free(path);

	/* A quarantine that no section defines. */
	snprintf(text, sizeof(text), "message_filters = %s\n%s", unknown, base);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_ERR_USAGE);
	CHECK(strstr(err, "Nowhere") != NULL && strstr(err, ":1:") != NULL);
	unlink(path);
	free(path);

	/* Section errors. */
	snprintf(text, sizeof(text), "%s[quarantine Held]\nat_expiry = keep\n",
	         base);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_ERR_USAGE);
	CHECK(strstr(err, ":5:") != NULL);
	unlink(path);
	free(path);
	unlink(fpath);
	unlink(bad);
	unlink(unknown);
	free(fpath);
	free(bad);
	free(unknown);
}

/* alert_cert_expiry (0 turns it off) and alert_cert_expiry_check (at
 * least 1s): defaults, the units, and bad values named by FILE:LINE. */
static void
alert_cert_expiry_keys(void)
{
	static const char base[] = "[listener a]\nlisten=127.0.0.1:1\n"
	                           "role=incoming\n";
	static const struct {
		const char *keys;
		int ok;
		unsigned expiry, check;
		const char *want; /* in the error */
	} cases[] = {
	    {"", 1, 30 * 86400, 12 * 3600, NULL},
	    {"alert_cert_expiry = 7d\n", 1, 7 * 86400, 12 * 3600, NULL},
	    {"alert_cert_expiry = 0\n", 1, 0, 12 * 3600, NULL},
	    {"alert_cert_expiry = 0d\n", 1, 0, 12 * 3600, NULL},
	    {"alert_cert_expiry = 3650d\n", 1, 3650 * 86400u, 12 * 3600, NULL},
	    {"alert_cert_expiry_check = 1s\n", 1, 30 * 86400, 1, NULL},
	    {"alert_cert_expiry_check = 30m\nalert_cert_expiry = 48h\n", 1,
	     2 * 86400, 1800, NULL},
	    {"alert_cert_expiry_check = 30d\n", 1, 30 * 86400, 30 * 86400,
	     NULL},
	    {"alert_cert_expiry = soon\n", 0, 0, 0,
	     ":1: \"soon\" is not a duration"},
	    {"alert_cert_expiry = 30x\n", 0, 0, 0, ":1: "},
	    {"alert_cert_expiry = -1d\n", 0, 0, 0, ":1: "},
	    {"\nalert_cert_expiry = 3651d\n", 0, 0, 0,
	     ":2: \"3651d\": a duration from 0s"},
	    {"alert_cert_expiry =\n", 0, 0, 0, ":1: "},
	    {"alert_cert_expiry_check = 0\n", 0, 0, 0,
	     ":1: \"0\": a duration from 1s"},
	    {"\n\nalert_cert_expiry_check = 31d\n", 0, 0, 0, ":3: "},
	    {"alert_cert_expiry = 1d\nalert_cert_expiry = 2d\n", 0, 0, 0,
	     ":2: \"alert_cert_expiry\" is set twice"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char text[512], err[512] = "", msg[700];
		struct cfg *c = NULL;
		enum sg_status st;
		snprintf(text, sizeof(text), "%s%s", cases[i].keys, base);
		char *path = write_tmp(text);
		st = cfg_load(path, &c, err, sizeof(err));
		snprintf(msg, sizeof(msg), "case %zu: %s", i, err);
		if (cases[i].ok &&
		    (st != SG_OK || c == NULL ||
		     c->alert_cert_expiry != cases[i].expiry ||
		     c->alert_cert_expiry_check != cases[i].check))
			unit_fail(__FILE__, __LINE__, msg);
		if (!cases[i].ok && (st != SG_ERR_USAGE || c != NULL ||
		                     strncmp(err, path, strlen(path)) != 0 ||
		                     strstr(err, cases[i].want) == NULL))
			unit_fail(__FILE__, __LINE__, msg);
		cfg_free(c);
		unlink(path);
		free(path);
	}
}

/* IN into OUT with @CA@, @GOOD@ and @PIN@ replaced. */
static void
subst(const char *in, char *out, size_t len, const char *ca,
      const char *good_ca, const char *pin)
{
	size_t n = 0;

	while (*in && n + 1 < len) {
		const char *put = NULL;
		if (strncmp(in, "@CA@", 4) == 0)
			put = ca, in += 4;
		else if (strncmp(in, "@GOOD@", 6) == 0)
			put = good_ca, in += 6;
		else if (strncmp(in, "@PIN@", 5) == 0)
			put = pin, in += 5;
		if (put != NULL)
			n += (size_t)snprintf(out + n, len - n, "%s", put);
		else
			out[n++] = *in++;
		if (n >= len)
			n = len - 1;
	}
	out[n] = '\0';
}

/* tls_ca_file and tls_fingerprint of a route and of the smarthost: the CA
 * file read with the configuration, pins parsed, a pin making TLS
 * required, and each mistake reported with its line. */
static void
next_hop_certificate_checks(void)
{
	static const char pin_hex[] =
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char *ca = write_tmp("not a certificate\n"), *good_ca;
	char text[2048], err[512] = "";
	struct cfg *c = NULL;
	char *path;

	/* a real CA file: a self-signed certificate made by OpenSSL */
	good_ca = write_tmp("");
	snprintf(
	    text, sizeof(text),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -keyout /dev/null -subj /CN=t -days 1 -out %s "
	    "2>/dev/null",
	    good_ca);
	CHECK_EQ(system(text), 0);

	snprintf(text, sizeof(text),
	         "smarthost = smart.example:25\n"
	         "smarthost_tls_fingerprint = SHA256:%.2s:%s\n"
	         "[listener a]\nlisten = 127.0.0.1:1\nrole = incoming\n"
	         "[route p]\ndomains = p.example\nnexthop = mx.p.example:25\n"
	         "tls = required\ntls_ca_file = %s\n"
	         "[route q]\ndomains = q.example\nnexthop = mx.q.example:25\n"
	         "tls_fingerprint = %s, %s\n",
	         pin_hex, pin_hex + 2, good_ca, pin_hex, pin_hex);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	if (c != NULL) {
		CHECK_EQ(c->smarthost_tls, CFG_TLS_REQUIRED); /* by the pin */
		CHECK_EQ(c->smarthost_peer.npins, 1u);
		CHECK_EQ(c->smarthost_peer.pins[0][0], 0x01);
		CHECK_EQ(c->smarthost_peer.pins[0][31], 0xef);
		CHECK(c->routes[0].peer.ca != NULL);
		CHECK_STR(c->routes[0].peer.ca_file, good_ca);
		CHECK_EQ(c->routes[0].peer.npins, 0u);
		CHECK_EQ(c->routes[1].tls, CFG_TLS_REQUIRED);
		CHECK_EQ(c->routes[1].peer.npins, 2u);
		CHECK(c->routes[1].peer.ca == NULL);
	}
	cfg_free(c);
	c = NULL;
	unlink(path);
	free(path);

	static const struct {
		const char *body, *want;
	} bad[] = {
	    {"[route r]\ndomains = r.example\nnexthop = h:25\n"
	     "tls_ca_file = /nonexistent/ca.pem\n",
	     ":4: CA file \"/nonexistent/ca.pem\": No such file"},
	    {"[route r]\ndomains = r.example\nnexthop = h:25\n"
	     "tls_ca_file = @CA@\n",
	     ":4: CA file \"@CA@\" holds no PEM certificate"},
	    {"[route r]\ndomains = r.example\nnexthop = h:25\n"
	     "tls_fingerprint = abcd\n",
	     ":4: \"abcd\" is not a SHA-256 fingerprint"},
	    {"[route r]\ndomains = r.example\nnexthop = h:25\n"
	     "tls = opportunistic\ntls_fingerprint = @PIN@\n",
	     "[route r]: tls_fingerprint needs TLS required, not "
	     "opportunistic"},
	    {"[route r]\ndomains = r.example\nnexthop = h:25\n"
	     "tls = none\ntls_ca_file = @GOOD@\n",
	     "[route r]: tls_ca_file with TLS none checks nothing"},
	    {"dns_server = resolver.example:53\n",
	     ":1: dns_server wants IPv4-address:port, not "
	     "\"resolver.example:53\""},
	    {"smarthost = mx:0\n", ":1: smarthost wants host:port or mx"},
	    {"smarthost_tls_fingerprint = @PIN@\n",
	     "smarthost_tls_ca_file and smarthost_tls_fingerprint need a "
	     "smarthost"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[1024], want[512], msg[1200];

		subst(bad[i].body, body, sizeof(body), ca, good_ca, pin_hex);
		subst(bad[i].want, want, sizeof(want), ca, good_ca, pin_hex);
		snprintf(
		    text, sizeof(text),
		    "%s[listener a]\nlisten = 127.0.0.1:1\nrole = incoming\n",
		    body);
		path = write_tmp(text);
		err[0] = '\0';
		c = NULL;
		if (cfg_load(path, &c, err, sizeof(err)) != SG_ERR_USAGE ||
		    c != NULL || strstr(err, want) == NULL) {
			snprintf(msg, sizeof(msg),
			         "case %zu: got \"%s\", want \"%s\"", i, err,
			         want);
			unit_fail(__FILE__, __LINE__, msg);
		}
		cfg_free(c);
		unlink(path);
		free(path);
	}
	unlink(ca);
	unlink(good_ca);
	free(ca);
	free(good_ca);
}

/* "mx" and "mx:PORT" as next hops are recognized when the file is read
 * (the relay does not parse them per message); "[mx]:25" is a host. */
static void
mx_next_hops(void)
{
	char *path = write_tmp("smarthost = mx:2525\n"
	                       "[listener a]\nlisten = 127.0.0.1:1\n"
	                       "role = incoming\n"
	                       "[route m]\ndomains = m.example\nnexthop = MX\n"
	                       "[route h]\ndomains = h.example\n"
	                       "nexthop = [mx]:25\n");
	char err[256] = "";
	struct cfg *c = NULL;

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	if (c != NULL) {
		CHECK_EQ(c->smarthost_mx_port, 2525u);
		CHECK_EQ(c->routes[0].mx_port, 25u);
		CHECK_EQ(c->routes[1].mx_port, 0u);
	}
	cfg_free(c);
	unlink(path);
	free(path);
}

/* [policy] address patterns: each kind, /regex/ (rx.h) included, and
 * the first matching policy of the direction wins. */
static void
policy_address_patterns(void)
{
	static const char text[] =
	    "[listener out]\nlisten = 127.0.0.1:2525\nrole = outgoing\n"
	    "profile = p\n[profile p]\nmode = sign\nsigner = org\n"
	    "[policy ceo]\ndirection = outgoing\n"
	    "senders = /^(ceo|cfo)@corp\\.example$/\n"
	    "recipients = @partner.example, *.sub.example\n"
	    "[policy anyone]\ndirection = outgoing\n"
	    "recipients = /[0-9]{3}@/, bob@one.example\n";
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
	    {"ceo@corp.example", "x@partner.example", "ceo"},
	    {"CFO@Corp.Example", "x@a.sub.example", "ceo"},
	    {"ceo@corp.example", "x@sub.example", NULL},
	    {"xceo@corp.example", "x@partner.example", NULL},
	    {"ceo@corpXexample", "x@partner.example", NULL},
	    {"ceo@corp.example", "u123@one.example", "anyone"},
	    {"a@b.example", "BOB@one.example", "anyone"},
	    {"a@b.example", "u12@one.example", NULL},
	    {"", "u123@x.example", "anyone"},
	};
	char *path = write_tmp(text), err[256] = "";
	struct cfg *c = NULL;

	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	for (size_t i = 0; c != NULL && i < sizeof(cases) / sizeof(*cases);
	     i++) {
		const struct cfg_policy *p = cfg_policy_match(
		    c, CFG_OUTGOING, cases[i].from, cases[i].to);
		const char *got = p != NULL ? p->name : NULL;

		if (cases[i].want == NULL
		        ? got != NULL
		        : got == NULL || strcmp(got, cases[i].want) != 0) {
			fprintf(stderr, "  %s -> %s: %s, not %s\n",
			        cases[i].from, cases[i].to, got ? got : "none",
			        cases[i].want ? cases[i].want : "none");
			unit_fail(__FILE__, __LINE__, cases[i].to);
		}
	}
	if (c == NULL)
		fprintf(stderr, "  %s\n", err);
	cfg_free(c);
	unlink(path);
	free(path);
}

static const struct unit_case cases[] = {
    {"mx_next_hops", mx_next_hops},
    {"next_hop_certificate_checks", next_hop_certificate_checks},
    {"alert_cert_expiry_keys", alert_cert_expiry_keys},
    {"quarantines_and_filters", quarantines_and_filters},
    {"loads_a_full_file", loads_a_full_file},
    {"listener_tls_keys", listener_tls_keys},
    {"relay_networks", relay_networks},
    {"policy_address_patterns", policy_address_patterns},
    {"errors_name_the_line", errors_name_the_line},
    {"missing_file_is_io", missing_file_is_io},
    {"demo_text_is_valid", demo_text_is_valid},
    {NULL, NULL},
};
const struct unit_suite suite_config = {"config", cases};
