/*
 * cmd_directory.c - `smimegate directory lookup -c FILE [--json] ADDR...`:
 * what the gateway would find in the configured LDAP directory for each
 * address (daemon/directory.c), in one process, so that a repeated
 * address shows the cache; the last line gives "queries=N hits=N".
 *
 * Exit: 0 when every address has a certificate, else the exit code of
 * the worst outcome (not-found 1, temporary failure or usage 2).
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/directory.h"
#include "policy/config.h"

static const char usage_text[] =
    "usage: smimegate directory lookup -c FILE [--json] ADDRESS...\n"
    "  Looks ADDRESS up in the directory of FILE's ldap_* settings and\n"
    "  shows the certificates usable for encryption that the gateway\n"
    "  would use, then queries=N hits=N (searches sent, cache hits).\n";

static void
print_cert(FILE *f, const struct sg_cert_info *i, int json)
{
	char when[32];

	cli_iso_time(i->not_after, when, sizeof(when));
	if (!json) {
		fprintf(f,
		        "  subject=%s issuer=%s serial=%s not_after=%s "
		        "sha256=%s\n",
		        i->subject, i->issuer, i->serial, when, i->fingerprint);
		return;
	}
	fputs("{\"subject\":", f);
	cli_json_str(f, i->subject);
	fputs(",\"issuer\":", f);
	cli_json_str(f, i->issuer);
	fputs(",\"serial\":", f);
	cli_json_str(f, i->serial);
	fputs(",\"not_after\":", f);
	cli_json_str(f, when);
	fputs(",\"fingerprint\":", f);
	cli_json_str(f, i->fingerprint);
	fputs(",\"emails\":[", f);
	for (size_t k = 0; i->emails != NULL && i->emails[k] != NULL; k++) {
		fputs(k ? "," : "", f);
		cli_json_str(f, i->emails[k]);
	}
	fputs("]}", f);
}

static void
print_result(const char *addr, enum sg_status st, const struct sg_certs *c,
             const char *reason, int json, int first)
{
	size_t n = sg_certs_count(c);

	if (json) {
		fputs(first ? "" : ",", stdout);
		fputs("{\"address\":", stdout);
		cli_json_str(stdout, addr);
		printf(",\"status\":\"%s\",\"reason\":", sg_status_name(st));
		cli_json_str(stdout, reason);
		fputs(",\"certificates\":[", stdout);
	} else
		printf("%s: %s: %s\n", addr, sg_status_name(st), reason);
	for (size_t k = 0; k < n; k++) {
		struct sg_cert_info info;
		if (sg_certs_info(c, k, &info) != SG_OK)
			continue;
		if (json && k)
			fputs(",", stdout);
		print_cert(stdout, &info, json);
		sg_cert_info_clear(&info);
	}
	if (json)
		fputs("]}", stdout);
	if (st != SG_OK && st != SG_ERR_NOT_FOUND)
		fprintf(stderr, "smimegate: directory: %s: %s: %s\n",
		        sg_status_name(st), addr, reason);
}

static int
lookup(const char *path, int json, int naddr, char **addrs)
{
	struct cfg *cfg = NULL;
	struct directory *d = NULL;
	struct sg_ctx *ctx = NULL;
	char err[512], reason[512];
	unsigned long q, h;
	enum sg_status st;
	int rc = 0;

	if ((st = cfg_load(path, &cfg, err, sizeof(err))) != SG_OK) {
		fprintf(stderr, "smimegate: directory: %s: %s\n",
		        sg_status_name(st), err);
		return sg_status_exit_code(st);
	}
	if (cfg->ldap == NULL) {
		cfg_free(cfg);
		return cli_usage("directory", "%s has no ldap_uri", path);
	}
	if (sg_ctx_new(&ctx) != SG_OK ||
	    (d = directory_new(cfg->ldap)) == NULL) {
		rc = cli_fail(NULL, "directory", SG_ERR_NOMEM);
		goto out;
	}
	if (json)
		fputs("{\"results\":[", stdout);
	for (int i = 0; i < naddr; i++) {
		struct sg_certs *c = NULL;
		st = directory_lookup(d, ctx, addrs[i], &c, reason,
		                      sizeof(reason));
		print_result(addrs[i], st, c, reason, json, i == 0);
		if (sg_status_exit_code(st) > rc)
			rc = sg_status_exit_code(st);
		sg_certs_free(c);
	}
	directory_stats(d, &q, &h);
	if (json)
		printf("],\"queries\":%lu,\"hits\":%lu}\n", q, h);
	else
		printf("queries=%lu hits=%lu\n", q, h);
out:
	directory_free(d);
	sg_ctx_free(ctx);
	cfg_free(cfg);
	return rc;
}

int
cmd_directory(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int c, json = 0;

	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "lookup") != 0)
		return cli_usage("directory", "the subcommand is lookup");
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return cli_usage("directory",
			                 "unknown or incomplete option \"%s\"",
			                 argv[optind - 1]);
		}
	}
	if (path == NULL || optind >= argc)
		return cli_usage("directory", "give -c FILE and an address");
	return lookup(path, json, argc - optind, argv + optind);
}
