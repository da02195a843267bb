/*
 * demo.c - `smimegate demo`: the embedded default until the gateway
 * daemon exists.  It creates a throw-away CA and two users, then signs,
 * encrypts, decrypts and verifies a sample message, printing each result
 * and leaving every file in the demo directory to look at.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sample[] =
    "From: Alice Example <alice@example.com>\r\n"
    "To: Bob Example <bob@example.org>\r\n"
    "Subject: =?UTF-8?B?UXVhcnRlcmx5IHJlcG9ydCDigJMgY29uZmlkZW50aWFs?=\r\n"
    "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
    "Message-ID: <demo.1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "\r\n"
    "the figures are attached in spirit. Gr\xc3\xbc\xc3\x9f"
    "e from the gateway.\r\n"
    "\r\n"
    "Alice\r\n";

struct demo {
	struct sg_ctx *ctx;
	char dir[4096];
};

static const char *
path(struct demo *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->dir, name);
	return buf;
}

static int
write_sample(struct demo *d)
{
	char p[4200];
	int fd = open(path(d, "message.eml", p, sizeof(p)),
	              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd == -1 || write(fd, sample, sizeof(sample) - 1) !=
	                    (ssize_t)(sizeof(sample) - 1)) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	return close(fd);
}

/* Runs one step: opens IN, calls OP into OUT, prints the result. */
enum step { STEP_SIGN, STEP_ENCRYPT, STEP_DECRYPT, STEP_VERIFY };

struct step_args {
	const struct sg_sign_opts *sign;
	const struct sg_encrypt_opts *enc;
	const struct sg_key *key;
	const struct sg_certs *trust;
};

static int
run_step(struct demo *d, enum step s, const char *in, const char *out,
         const struct step_args *a)
{
	static const char *names[] = {"sign", "encrypt", "decrypt", "verify"};
	char pin[4200], pout[4200];
	struct sg_msg *msg = NULL;
	struct sg_verify_result res = {0};
	struct sg_sink sink;
	enum sg_status st;
	struct stat sb;
	int ifd, ofd;

	ifd = open(path(d, in, pin, sizeof(pin)), O_RDONLY | O_CLOEXEC);
	ofd = open(path(d, out, pout, sizeof(pout)),
	           O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ifd == -1 || ofd == -1) {
		fprintf(stderr, "smimegate: demo: %s: %s\n", names[s],
		        strerror(errno));
		st = SG_ERR_IO;
		goto out;
	}
	sg_sink_fd(&sink, &ofd);
	if ((st = sg_msg_open_fd(d->ctx, ifd, &msg)) != SG_OK)
		goto out;
	switch (s) {
	case STEP_SIGN:
		st = sg_sign(d->ctx, msg, a->sign, &sink);
		break;
	case STEP_ENCRYPT:
		st = sg_encrypt(d->ctx, msg, a->enc, &sink);
		break;
	case STEP_DECRYPT:
		st = sg_decrypt(d->ctx, msg, a->key, &sink);
		break;
	case STEP_VERIFY:
		st = sg_verify(d->ctx, msg, a->trust, &res, &sink);
		break;
	}
out:
	if (st == SG_OK && fstat(ofd, &sb) == 0) {
		printf("  %-8s ok   %-16s -> %s (%lld bytes)\n", names[s], in,
		       pout, (long long)sb.st_size);
		if (s == STEP_VERIFY)
			printf("           signer %s <%s>, %s, chain trusted, "
			       "From %s the certificate\n",
			       res.signer_subject,
			       res.signer_emails && res.signer_emails[0]
			           ? res.signer_emails[0]
			           : "",
			       res.digest,
			       res.from_match ? "matches" : "does not match");
	} else if (st != SG_OK) {
		cli_fail(d->ctx, names[s], st);
	}
	sg_verify_result_clear(&res);
	sg_msg_free(msg);
	if (ifd != -1)
		close(ifd);
	if (ofd != -1)
		close(ofd);
	return st == SG_OK ? 0 : -1;
}

static int
make_pki(struct demo *d, struct sg_key **ca, struct sg_key **alice,
         struct sg_key **bob)
{
	static const char *const alice_mail[] = {"alice@example.com", NULL};
	static const char *const bob_mail[] = {"bob@example.org", NULL};
	struct sg_cert_req req = {.org = "smimegate demo",
	                          .country = "JP",
	                          .days = 30,
	                          .key = SG_KEY_RSA2048};
	char c[4200], k[4200];
	enum sg_status st;

	req.cn = "smimegate demo CA";
	req.ca = 1;
	if ((st = sg_cert_create(d->ctx, &req, NULL, ca)) != SG_OK)
		goto fail;
	req.ca = 0;
	req.cn = "Alice Example";
	req.san_emails = alice_mail;
	if ((st = sg_cert_create(d->ctx, &req, *ca, alice)) != SG_OK)
		goto fail;
	req.cn = "Bob Example";
	req.san_emails = bob_mail;
	if ((st = sg_cert_create(d->ctx, &req, *ca, bob)) != SG_OK)
		goto fail;
	if ((st = sg_key_save_pem(d->ctx, *ca, path(d, "ca.pem", c, sizeof(c)),
	                          path(d, "ca.key", k, sizeof(k)), NULL)) !=
	        SG_OK ||
	    (st = sg_key_save_pem(
	         d->ctx, *alice, path(d, "alice.pem", c, sizeof(c)),
	         path(d, "alice.key", k, sizeof(k)), NULL)) != SG_OK ||
	    (st = sg_key_save_pem(
	         d->ctx, *bob, path(d, "bob.pem", c, sizeof(c)),
	         path(d, "bob.key", k, sizeof(k)), NULL)) != SG_OK)
		goto fail;
	printf(
	    "  certificates: %s/{ca,alice,bob}.pem (keys 0600, throw-away)\n",
	    d->dir);
	return 0;
fail:
	cli_fail(d->ctx, "demo", st);
	return -1;
}

int
cmd_demo(int argc, char **argv)
{
	struct demo d = {0};
	struct sg_key *ca = NULL, *alice = NULL, *bob = NULL;
	struct sg_certs *trust = NULL, *rcpt = NULL;
	const char *dir = "var/demo";
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--help") == 0) {
			printf("usage: smimegate demo [--dir DIR]\n");
			return 0;
		} else
			return cli_usage("demo", "unexpected argument \"%s\"",
			                 argv[i]);
	}
	snprintf(d.dir, sizeof(d.dir), "%s", dir);
	for (char *p = d.dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(d.dir, 0700);
			*p = '/';
		}
	if (mkdir(d.dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "smimegate: demo: %s: %s\n", d.dir,
		        strerror(errno));
		return 2;
	}
	if (sg_ctx_new(&d.ctx) != SG_OK)
		return cli_fail(NULL, "demo", SG_ERR_NOMEM);
	printf("smimegate demo: sign, encrypt, decrypt and verify one "
	       "message\n");
	if (make_pki(&d, &ca, &alice, &bob) == -1 || write_sample(&d) == -1 ||
	    sg_certs_new(&trust) != SG_OK || sg_certs_new(&rcpt) != SG_OK)
		goto out;
	/* The trust anchor and the recipient come from the files just
	 * written, the way a user would give them. */
	char c[4200];
	if (sg_certs_load_file(d.ctx, trust,
	                       path(&d, "ca.pem", c, sizeof(c))) != SG_OK ||
	    sg_certs_load_end_entities(
	        d.ctx, rcpt, path(&d, "bob.pem", c, sizeof(c))) != SG_OK) {
		cli_fail(d.ctx, "demo", sg_ctx_last_status(d.ctx));
		goto out;
	}
	struct sg_sign_opts so = {.signer = alice};
	struct sg_encrypt_opts eo = {.recipients = rcpt,
	                             .cipher = SG_CIPHER_AES256_CBC};
	struct step_args a = {
	    .sign = &so, .enc = &eo, .key = bob, .trust = trust};
	if (run_step(&d, STEP_SIGN, "message.eml", "signed.eml", &a) == -1 ||
	    run_step(&d, STEP_ENCRYPT, "signed.eml", "encrypted.eml", &a) ==
	        -1 ||
	    run_step(&d, STEP_DECRYPT, "encrypted.eml", "decrypted.eml", &a) ==
	        -1 ||
	    run_step(&d, STEP_VERIFY, "decrypted.eml", "verified.eml", &a) ==
	        -1)
		goto out;
	printf("all steps ok; try: build/smimegate verify --trust %s/ca.pem "
	       "--json --in %s/signed.eml\n",
	       d.dir, d.dir);
	rc = 0;
out:
	sg_key_free(ca);
	sg_key_free(alice);
	sg_key_free(bob);
	sg_certs_free(trust);
	sg_certs_free(rcpt);
	sg_ctx_free(d.ctx);
	return rc;
}
