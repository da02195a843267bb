/*
 * cmd_revocation.c - `smimegate cert status`: the revocation status of one
 * certificate (CRL files, CRL distribution points, OCSP), for admins and
 * the end-to-end tests.  Every other `cert` subcommand goes on to
 * cmd_cert().
 *
 * Exit codes: 0 good, 1 revoked, 2 unknown (or a usage or input error;
 * --json tells them apart).
 */
#include "cli/admin.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CRL_FILES 32

static const char usage_text[] =
    "usage: smimegate cert status CERT.pem --trust CA.pem [--crl FILE]...\n"
    "           [--no-ocsp] [--no-fetch] [--timeout SECONDS] [--json]\n"
    "  The revocation status of the first certificate of CERT.pem (the\n"
    "  others, and --trust, are searched for its issuer): OCSP from its\n"
    "  authorityInfoAccess, then the --crl files, then its CRL\n"
    "  distribution points (http:// only).\n"
    "  Prints good, revoked or unknown and the reason.\n"
    "  Exit: 0 good, 1 revoked, 2 unknown or error.\n";

enum { O_TRUST = 1, O_CRL, O_NO_OCSP, O_NO_FETCH, O_TIMEOUT, O_JSON, O_HELP };

static const struct option options[] = {
    {"trust", required_argument, NULL, O_TRUST},
    {"crl", required_argument, NULL, O_CRL},
    {"no-ocsp", no_argument, NULL, O_NO_OCSP},
    {"no-fetch", no_argument, NULL, O_NO_FETCH},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* The exit code of a revocation status, from the status table: revoked
 * exits as a failed security check, unknown as a temporary failure. */
static int
exit_of(enum sg_revocation_status s)
{
	switch (s) {
	case SG_REV_GOOD:
		return sg_status_exit_code(SG_OK);
	case SG_REV_REVOKED:
		return sg_status_exit_code(SG_ERR_REVOKED);
	case SG_REV_UNKNOWN:
		break;
	}
	return sg_status_exit_code(SG_ERR_TEMP);
}

static void
print_result(const struct sg_certs *certs, enum sg_revocation_status s,
             const char *why, int json)
{
	struct sg_cert_info in = {0};
	int have = sg_certs_info(certs, 0, &in) == SG_OK;

	if (json) {
		printf("{\"status\":");
		cli_json_str(stdout, sg_revocation_status_name(s));
		printf(",\"reason\":");
		cli_json_str(stdout, why);
		printf(",\"subject\":");
		cli_json_str(stdout, have ? in.subject : NULL);
		printf(",\"issuer\":");
		cli_json_str(stdout, have ? in.issuer : NULL);
		printf(",\"serial\":");
		cli_json_str(stdout, have ? in.serial : NULL);
		printf("}\n");
	} else {
		printf("%s: %s\n", sg_revocation_status_name(s), why);
	}
	if (have)
		sg_cert_info_clear(&in);
}

static int
cert_status(int argc, char **argv)
{
	const char *cmd = "cert status", *trust_path = NULL;
	const char *crls[MAX_CRL_FILES + 1] = {NULL};
	size_t ncrl = 0;
	struct sg_revocation_opts o = {
	    .crl_files = crls, .fetch_crl_dp = 1, .use_ocsp = 1};
	struct sg_ctx *ctx = NULL;
	struct sg_certs *certs = NULL, *trust = NULL;
	struct sg_revocation *rv = NULL;
	enum sg_revocation_status s;
	enum sg_status st;
	char why[512], *end;
	long t;
	int c, json = 0, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case O_TRUST:
			trust_path = optarg;
			break;
		case O_CRL:
			if (ncrl == MAX_CRL_FILES)
				return cli_usage(cmd, "at most %d --crl files",
				                 MAX_CRL_FILES);
			crls[ncrl++] = optarg;
			break;
		case O_NO_OCSP:
			o.use_ocsp = 0;
			break;
		case O_NO_FETCH:
			o.fetch_crl_dp = 0;
			break;
		case O_TIMEOUT:
			t = strtol(optarg, &end, 10);
			if (*end != '\0' || t < 1 || t > 300)
				return cli_usage(cmd, "--timeout: 1 to 300");
			o.timeout = (unsigned)t;
			break;
		case O_JSON:
			json = 1;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			return 0;
		default:
			return cli_usage(cmd, "unknown option %s",
			                 argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage(cmd, "one certificate file expected");
	if (trust_path == NULL)
		return cli_usage(cmd, "--trust CA.pem is required");
	if ((st = sg_ctx_new(&ctx)) != SG_OK)
		return cli_fail(NULL, cmd, st);
	if ((st = sg_certs_new(&certs)) != SG_OK ||
	    (st = sg_certs_new(&trust)) != SG_OK ||
	    (st = sg_certs_load_file(ctx, certs, argv[optind])) != SG_OK ||
	    (st = sg_certs_load_file(ctx, trust, trust_path)) != SG_OK ||
	    (st = sg_revocation_new(ctx, &o, &rv)) != SG_OK ||
	    (st = sg_revocation_check(rv, ctx, certs, 0, trust, &s, why,
	                              sizeof(why))) != SG_OK) {
		rc = cli_fail(ctx, cmd, st);
		goto out;
	}
	print_result(certs, s, why, json);
	rc = exit_of(s);
out:
	sg_revocation_free(rv);
	sg_certs_free(trust);
	sg_certs_free(certs);
	sg_ctx_free(ctx);
	return rc;
}

int
cmd_cert_all(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return cert_status(argc - 1, argv + 1);
	return cmd_cert(argc, argv);
}
