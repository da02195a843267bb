/*
 * oneshot.c - sign, encrypt, verify and decrypt one message: the exact CLI
 * contract that scripts, Postfix pipes and bulk senders rely on.
 *
 *   exit 0  done (verify: valid and trusted at that time)
 *   exit 1  the security operation failed (reason on stderr)
 *   exit 2  usage error or unreadable / malformed input
 *
 * Output appears only on success: a temporary file renamed over --out, or
 * copied to stdout.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	OPT_IN = 256,
	OPT_OUT,
	OPT_SIGNER,
	OPT_KEY,
	OPT_CERTFILE,
	OPT_OPAQUE,
	OPT_DIGEST,
	OPT_RECIPIENT,
	OPT_CIPHER,
	OPT_OAEP,
	OPT_TRUST,
	OPT_AT,
	OPT_JSON,
	OPT_CERT,
	OPT_P12,
	OPT_PASS_FILE,
	OPT_CRL,
	OPT_CHECK_REVOCATION,
	OPT_REVOCATION_HARD,
	OPT_REVOCATION_TIMEOUT,
	OPT_HELP,
};

#define MAX_RECIPIENTS 1000
#define MAX_CRLS       16

struct opts {
	const char *in, *out;
	const char *signer, *key, *certfile, *digest;
	int opaque;
	const char *recipients[MAX_RECIPIENTS];
	int nrecipients;
	const char *cipher;
	int oaep;
	const char *trust, *at;
	int json;
	const char *cert, *p12, *pass_file;
	const char *crls[MAX_CRLS + 1]; /* NULL-terminated */
	int ncrls;
	int check_revocation, revocation_hard;
	const char *revocation_timeout;
};

static const struct option all_options[] = {
    {"in", required_argument, NULL, OPT_IN},
    {"out", required_argument, NULL, OPT_OUT},
    {"signer", required_argument, NULL, OPT_SIGNER},
    {"key", required_argument, NULL, OPT_KEY},
    {"certfile", required_argument, NULL, OPT_CERTFILE},
    {"opaque", no_argument, NULL, OPT_OPAQUE},
    {"digest", required_argument, NULL, OPT_DIGEST},
    {"recipient", required_argument, NULL, OPT_RECIPIENT},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"oaep", no_argument, NULL, OPT_OAEP},
    {"trust", required_argument, NULL, OPT_TRUST},
    {"at", required_argument, NULL, OPT_AT},
    {"json", no_argument, NULL, OPT_JSON},
    {"cert", required_argument, NULL, OPT_CERT},
    {"p12", required_argument, NULL, OPT_P12},
    {"pass-file", required_argument, NULL, OPT_PASS_FILE},
    {"crl", required_argument, NULL, OPT_CRL},
    {"check-revocation", no_argument, NULL, OPT_CHECK_REVOCATION},
    {"revocation-hard-fail", no_argument, NULL, OPT_REVOCATION_HARD},
    {"revocation-timeout", required_argument, NULL, OPT_REVOCATION_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const usages[] = {
    "sign --signer CERT.pem --key KEY.pem [--certfile CHAIN.pem] "
    "[--opaque] [--digest sha256|sha384|sha512] [--pass-file FILE] "
    "[--in FILE] [--out FILE]",
    "encrypt --recipient CERT.pem [--recipient CERT2.pem ...] "
    "[--cipher aes-128-cbc|aes-256-cbc|aes-128-gcm|aes-256-gcm] [--oaep] "
    "[--in FILE] [--out FILE]",
    "verify --trust CAFILE.pem [--at 2024-01-01T00:00:00Z] [--json] "
    "[--crl FILE ...] [--check-revocation] [--revocation-hard-fail] "
    "[--revocation-timeout SECONDS] [--in FILE] [--out FILE]",
    "decrypt (--cert CERT.pem --key KEY.pem | --p12 FILE) "
    "[--pass-file FILE] [--in FILE] [--out FILE]",
};

/* Which options each command takes (a string of OPT_ offsets). */
static int
allowed(const char *cmd, int opt)
{
	static const int sign[] = {OPT_SIGNER, OPT_KEY,    OPT_CERTFILE,
	                           OPT_OPAQUE, OPT_DIGEST, OPT_PASS_FILE,
	                           0};
	static const int encrypt[] = {OPT_RECIPIENT, OPT_CIPHER, OPT_OAEP, 0};
	static const int verify[] = {OPT_TRUST,
	                             OPT_AT,
	                             OPT_JSON,
	                             OPT_CRL,
	                             OPT_CHECK_REVOCATION,
	                             OPT_REVOCATION_HARD,
	                             OPT_REVOCATION_TIMEOUT,
	                             0};
	static const int decrypt[] = {OPT_CERT, OPT_KEY, OPT_P12, OPT_PASS_FILE,
	                              0};
	const int *set = strcmp(cmd, "sign") == 0      ? sign
	                 : strcmp(cmd, "encrypt") == 0 ? encrypt
	                 : strcmp(cmd, "verify") == 0  ? verify
	                                               : decrypt;

	if (opt == OPT_IN || opt == OPT_OUT || opt == OPT_HELP)
		return 1;
	for (; *set; set++)
		if (*set == opt)
			return 1;
	return 0;
}

static const char *
usage_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof(usages) / sizeof(*usages); i++)
		if (strncmp(usages[i], cmd, strlen(cmd)) == 0)
			return usages[i];
	return "";
}

/* Parses the options of CMD; returns -1 to go on, else an exit code. */
static int
parse(const char *cmd, int argc, char **argv, struct opts *o)
{
	int c, li;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((li = -1, c = getopt_long(argc, argv, "", all_options, &li)) !=
	       -1) {
		if (c == '?' || c == ':')
			return cli_usage(cmd,
			                 "unknown or incomplete option "
			                 "\"%s\"",
			                 argv[optind - 1]);
		if (!allowed(cmd, c))
			/* named from the table: argv[optind - 1] may be
			 * the option's value */
			return cli_usage(cmd, "option \"--%s\" does not apply",
			                 li >= 0 ? all_options[li].name : "?");
		switch (c) {
		case OPT_IN:
			o->in = optarg;
			break;
		case OPT_OUT:
			o->out = optarg;
			break;
		case OPT_SIGNER:
			o->signer = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_CERTFILE:
			o->certfile = optarg;
			break;
		case OPT_OPAQUE:
			o->opaque = 1;
			break;
		case OPT_DIGEST:
			o->digest = optarg;
			break;
		case OPT_RECIPIENT:
			if (o->nrecipients == MAX_RECIPIENTS)
				return cli_usage(cmd, "more than %d recipients",
				                 MAX_RECIPIENTS);
			o->recipients[o->nrecipients++] = optarg;
			break;
		case OPT_CIPHER:
			o->cipher = optarg;
			break;
		case OPT_OAEP:
			o->oaep = 1;
			break;
		case OPT_TRUST:
			o->trust = optarg;
			break;
		case OPT_AT:
			o->at = optarg;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_CERT:
			o->cert = optarg;
			break;
		case OPT_P12:
			o->p12 = optarg;
			break;
		case OPT_PASS_FILE:
			o->pass_file = optarg;
			break;
		case OPT_CRL:
			if (o->ncrls == MAX_CRLS)
				return cli_usage(
				    cmd, "more than %d --crl files", MAX_CRLS);
			o->crls[o->ncrls++] = optarg;
			break;
		case OPT_CHECK_REVOCATION:
			o->check_revocation = 1;
			break;
		case OPT_REVOCATION_HARD:
			o->revocation_hard = 1;
			break;
		case OPT_REVOCATION_TIMEOUT:
			o->revocation_timeout = optarg;
			break;
		case OPT_HELP:
			printf("usage: smimegate %s\n", usage_of(cmd));
			return 0;
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument \"%s\"",
		                 argv[optind]);
	return -1;
}

/* Everything one command holds, released in one place. */
struct job {
	const char *cmd;
	struct sg_ctx *ctx;
	struct sg_msg *msg;
	struct cli_out out;
	int out_open;
	int in_fd;
	char *pass;
};

static int
job_start(struct job *j, const char *cmd, const struct opts *o)
{
	memset(j, 0, sizeof(*j));
	j->cmd = cmd;
	j->in_fd = -1;
	if (sg_ctx_new(&j->ctx) != SG_OK)
		return cli_fail(NULL, cmd, SG_ERR_NOMEM);
	if (o->pass_file != NULL &&
	    (j->pass = cli_read_pass(o->pass_file)) == NULL) {
		fprintf(stderr, "smimegate: %s: usage: cannot read %s: %s\n",
		        cmd, o->pass_file, strerror(errno));
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	return -1;
}

/* Opens the input message (after the keys, so that a bad key is reported
 * before stdin is read). */
static int
job_input(struct job *j, const struct opts *o)
{
	enum sg_status st;

	if (o->in != NULL &&
	    (j->in_fd = open(o->in, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "smimegate: %s: io: cannot open %s: %s\n",
		        j->cmd, o->in, strerror(errno));
		return sg_status_exit_code(SG_ERR_IO);
	}
	st = sg_msg_open_fd(j->ctx, o->in ? j->in_fd : STDIN_FILENO, &j->msg);
	if (st != SG_OK)
		return cli_fail(j->ctx, j->cmd, st);
	if (cli_out_open(&j->out, o->out, strcmp(j->cmd, "verify") != 0) ==
	    -1) {
		fprintf(stderr, "smimegate: %s: io: cannot create %s: %s\n",
		        j->cmd, o->out ? o->out : "a temporary file",
		        strerror(errno));
		return sg_status_exit_code(SG_ERR_IO);
	}
	j->out_open = 1;
	return -1;
}

/* Finishes: commits the output when ST is SG_OK; returns the exit code. */
static int
job_end(struct job *j, enum sg_status st, int rc)
{
	if (j->out_open &&
	    cli_out_close(&j->out, st == SG_OK && rc == 0) == -1 &&
	    st == SG_OK && rc == 0) {
		fprintf(stderr,
		        "smimegate: %s: io: cannot write the output: "
		        "%s\n",
		        j->cmd, strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
	}
	sg_msg_free(j->msg);
	if (j->in_fd != -1)
		close(j->in_fd);
	if (j->pass != NULL) {
		explicit_bzero(j->pass, strlen(j->pass));
		free(j->pass);
	}
	sg_ctx_free(j->ctx);
	return rc;
}

/* Loads certificate files; END_ENTITIES skips CA certificates (the chain
 * in a recipient's file). */
static int
load_certs(struct job *j, const char *const *paths, int n, int end_entities,
           struct sg_certs **out)
{
	enum sg_status st;

	if ((st = sg_certs_new(out)) != SG_OK)
		return cli_fail(NULL, j->cmd, st);
	for (int i = 0; i < n; i++) {
		st = end_entities
		         ? sg_certs_load_end_entities(j->ctx, *out, paths[i])
		         : sg_certs_load_file(j->ctx, *out, paths[i]);
		if (st != SG_OK)
			return cli_fail(j->ctx, j->cmd, st);
	}
	return -1;
}

int
cmd_sign(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_key *key = NULL;
	struct sg_certs *chain = NULL;
	struct sg_sign_opts so = {0};
	struct sg_sink sink;
	enum sg_status st = SG_ERR_USAGE;
	int rc;

	if ((rc = parse("sign", argc, argv, &o)) != -1)
		return rc;
	if (o.signer == NULL || o.key == NULL)
		return cli_usage("sign", "--signer and --key are required");
	if (o.digest == NULL || strcmp(o.digest, "sha256") == 0)
		so.digest = SG_DIGEST_SHA256;
	else if (strcmp(o.digest, "sha384") == 0)
		so.digest = SG_DIGEST_SHA384;
	else if (strcmp(o.digest, "sha512") == 0)
		so.digest = SG_DIGEST_SHA512;
	else
		return cli_usage("sign", "unknown digest \"%s\"", o.digest);
	so.opaque = o.opaque;
	if ((rc = job_start(&j, "sign", &o)) != -1)
		return job_end(&j, st, rc);
	if ((st = sg_key_load_files(j.ctx, o.signer, o.key, j.pass, &key)) !=
	    SG_OK) {
		rc = cli_fail(j.ctx, "sign", st);
		goto out;
	}
	if (o.certfile != NULL &&
	    (rc = load_certs(&j, &o.certfile, 1, 0, &chain)) != -1) {
		st = SG_ERR_BADKEY;
		goto out;
	}
	if ((rc = job_input(&j, &o)) != -1) {
		st = SG_ERR_IO;
		goto out;
	}
	so.signer = key;
	so.chain = chain;
	sg_sink_fd(&sink, &j.out.fd);
	st = sg_sign(j.ctx, j.msg, &so, &sink);
	rc = st == SG_OK ? 0 : cli_fail(j.ctx, "sign", st);
out:
	sg_key_free(key);
	sg_certs_free(chain);
	return job_end(&j, st, rc);
}

int
cmd_encrypt(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum sg_cipher c;
	} names[] = {
	    {"aes-256-cbc", SG_CIPHER_AES256_CBC},
	    {"aes-128-cbc", SG_CIPHER_AES128_CBC},
	    {"aes-128-gcm", SG_CIPHER_AES128_GCM},
	    {"aes-256-gcm", SG_CIPHER_AES256_GCM},
	};
	struct opts o;
	struct job j;
	struct sg_certs *rcpt = NULL;
	struct sg_encrypt_opts eo = {.cipher = SG_CIPHER_AES256_CBC};
	struct sg_sink sink;
	enum sg_status st = SG_ERR_USAGE;
	size_t i;
	int rc;

	if ((rc = parse("encrypt", argc, argv, &o)) != -1)
		return rc;
	if (o.nrecipients == 0)
		return cli_usage("encrypt", "at least one --recipient is "
		                            "required");
	for (i = 0; o.cipher && i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(o.cipher, names[i].name) == 0)
			break;
	if (o.cipher != NULL && i == sizeof(names) / sizeof(*names))
		return cli_usage("encrypt", "unknown cipher \"%s\"", o.cipher);
	if (o.cipher != NULL)
		eo.cipher = names[i].c;
	eo.oaep = o.oaep;
	if ((rc = job_start(&j, "encrypt", &o)) != -1)
		return job_end(&j, st, rc);
	if ((rc = load_certs(&j, o.recipients, o.nrecipients, 1, &rcpt)) !=
	        -1 ||
	    (rc = job_input(&j, &o)) != -1) {
		st = SG_ERR_BADKEY;
		goto out;
	}
	eo.recipients = rcpt;
	sg_sink_fd(&sink, &j.out.fd);
	st = sg_encrypt(j.ctx, j.msg, &eo, &sink);
	rc = st == SG_OK ? 0 : cli_fail(j.ctx, "encrypt", st);
out:
	sg_certs_free(rcpt);
	return job_end(&j, st, rc);
}

/* "2024-01-01T00:00:00Z" or "2024-01-01" (UTC). */
static int
parse_time(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL) {
		if (*end == 'Z')
			end++;
	} else {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

static void
print_json(FILE *f, const struct sg_verify_result *r)
{
	char when[32];
	struct tm tm;

	fprintf(f, "{\"status\": ");
	cli_json_str(f, sg_status_name(r->status));
	fprintf(f, ", \"kind\": %s",
	        r->kind == SG_KIND_SIGNED_OPAQUE ? "\"opaque\""
	                                         : "\"detached\"");
	fprintf(f, ", \"signer_subject\": ");
	cli_json_str(f, r->signer_subject);
	fprintf(f, ", \"signer_issuer\": ");
	cli_json_str(f, r->signer_issuer);
	fprintf(f, ", \"signer_serial\": ");
	cli_json_str(f, r->signer_serial);
	fprintf(f, ", \"signer_emails\": [");
	for (char **e = r->signer_emails; e && *e; e++) {
		if (e != r->signer_emails)
			fputs(", ", f);
		cli_json_str(f, *e);
	}
	fprintf(f, "], \"digest\": ");
	cli_json_str(f, r->digest);
	fprintf(f, ", \"signature_alg\": ");
	cli_json_str(f, r->signature_alg);
	fprintf(f, ", \"signing_time\": ");
	if (r->signing_time != 0 && gmtime_r(&r->signing_time, &tm) != NULL) {
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cli_json_str(f, when);
	} else {
		fputs("null", f);
	}
	fprintf(f, ", \"signature_ok\": %s, \"chain_ok\": %s",
	        r->signature_ok ? "true" : "false",
	        r->chain_ok ? "true" : "false");
	fprintf(f, ", \"chain_error\": ");
	cli_json_str(f, r->chain_error);
	fprintf(f, ", \"from_address\": ");
	cli_json_str(f, r->from_address);
	fprintf(f, ", \"from_match\": %s, \"weak\": %s, \"weak_reason\": ",
	        r->from_match ? "true" : "false", r->weak ? "true" : "false");
	cli_json_str(f, r->weak_reason);
	fprintf(f, ", \"revocation\": ");
	cli_json_str(f, r->revocation_checked
	                    ? sg_revocation_status_name(r->revocation)
	                    : NULL);
	fprintf(f, ", \"revocation_reason\": ");
	cli_json_str(f, r->revocation_checked ? r->revocation_reason : NULL);
	fprintf(f, "}\n");
}

/*
 * The revocation checker the options ask for, or NULL: --crl files alone
 * check against them (no network); --check-revocation also asks the
 * certificates' OCSP responders and CRL distribution points.  -1 to go
 * on, else an exit code.
 */
static int
revocation_of(struct job *j, const struct opts *o, struct sg_revocation **rv)
{
	struct sg_revocation_opts ro = {0};
	unsigned long secs = 5;
	char *end;
	enum sg_status st;

	*rv = NULL;
	if (o->revocation_timeout != NULL) {
		errno = 0;
		secs = strtoul(o->revocation_timeout, &end, 10);
		if (errno || *end || end == o->revocation_timeout || secs < 1 ||
		    secs > 60)
			return cli_usage("verify",
			                 "--revocation-timeout wants 1 to 60 "
			                 "seconds, not \"%s\"",
			                 o->revocation_timeout);
	}
	if (o->ncrls == 0 && !o->check_revocation) {
		if (o->revocation_hard || o->revocation_timeout)
			return cli_usage(
			    "verify", "--revocation-hard-fail and "
			              "--revocation-timeout go with --crl or "
			              "--check-revocation");
		return -1;
	}
	ro.crl_files = o->ncrls > 0 ? o->crls : NULL;
	ro.use_ocsp = ro.fetch_crl_dp = o->check_revocation;
	ro.timeout = (unsigned)secs;
	if ((st = sg_revocation_new(j->ctx, &ro, rv)) != SG_OK)
		return cli_fail(j->ctx, "verify", st);
	sg_ctx_set_revocation(j->ctx, *rv, o->revocation_hard);
	return -1;
}

int
cmd_verify(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_certs *trust = NULL;
	struct sg_revocation *rv = NULL;
	struct sg_verify_result res = {0};
	struct sg_sink sink;
	enum sg_status st = SG_ERR_USAGE;
	time_t at = 0;
	int rc;

	if ((rc = parse("verify", argc, argv, &o)) != -1)
		return rc;
	if (o.trust == NULL)
		return cli_usage("verify", "--trust is required");
	if (o.at != NULL && parse_time(o.at, &at) == -1)
		return cli_usage("verify",
		                 "--at wants 2024-01-01T00:00:00Z, "
		                 "not \"%s\"",
		                 o.at);
	if ((rc = job_start(&j, "verify", &o)) != -1)
		return job_end(&j, st, rc);
	sg_ctx_set_time(j.ctx, at);
	if ((rc = load_certs(&j, &o.trust, 1, 0, &trust)) != -1 ||
	    (rc = revocation_of(&j, &o, &rv)) != -1 ||
	    (rc = job_input(&j, &o)) != -1) {
		st = SG_ERR_BADKEY;
		goto out;
	}
	sg_sink_fd(&sink, &j.out.fd);
	/* With --json the message goes only to --out. */
	st = sg_verify(j.ctx, j.msg, trust, &res,
	               o.json && o.out == NULL ? NULL : &sink);
	if (o.json && (res.signer_subject != NULL || st == SG_OK ||
	               sg_status_exit_code(st) == 1))
		print_json(stdout, &res);
	if (st == SG_OK && res.revocation_checked &&
	    res.revocation == SG_REV_UNKNOWN)
		fprintf(stderr,
		        "smimegate: verify: warning: revocation status unknown "
		        "(soft-fail): %s\n",
		        res.revocation_reason ? res.revocation_reason : "");
	rc = st == SG_OK ? 0 : cli_fail(j.ctx, "verify", st);
out:
	sg_verify_result_clear(&res);
	sg_certs_free(trust);
	rc = job_end(&j, st, rc);
	sg_revocation_free(rv); /* after the handle that borrowed it */
	return rc;
}

int
cmd_decrypt(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_key *key = NULL;
	struct sg_sink sink;
	enum sg_status st = SG_ERR_USAGE;
	int rc;

	if ((rc = parse("decrypt", argc, argv, &o)) != -1)
		return rc;
	if ((o.p12 == NULL) == (o.cert == NULL || o.key == NULL) ||
	    (o.p12 != NULL && (o.cert != NULL || o.key != NULL)))
		return cli_usage("decrypt", "give either --cert and --key, or "
		                            "--p12");
	if ((rc = job_start(&j, "decrypt", &o)) != -1)
		return job_end(&j, st, rc);
	st = o.p12 ? sg_key_load_p12(j.ctx, o.p12, j.pass, &key)
	           : sg_key_load_files(j.ctx, o.cert, o.key, j.pass, &key);
	if (st != SG_OK) {
		rc = cli_fail(j.ctx, "decrypt", st);
		goto out;
	}
	if ((rc = job_input(&j, &o)) != -1) {
		st = SG_ERR_IO;
		goto out;
	}
	sg_sink_fd(&sink, &j.out.fd);
	st = sg_decrypt(j.ctx, j.msg, key, &sink);
	rc = st == SG_OK ? 0 : cli_fail(j.ctx, "decrypt", st);
out:
	sg_key_free(key);
	return job_end(&j, st, rc);
}
