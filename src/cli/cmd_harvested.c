/*
 * cmd_harvested.c - `smimegate key harvested ...`: the certificates the
 * gateway harvested from signed mail (list, show, promote to a public
 * key, delete), and `add`, the manual harvest: a certificate file
 * harvested exactly as the gateway harvests a sender's certificate.
 *
 * Messages and exit codes are those of the other store commands
 * (admin.c): one line `smimegate: CMD: status-name: reason` on failure.
 */
#include "cli/cmd_harvested.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/admin.h"

#define MAX_CERT_INPUT (16u << 20)

enum {
	O_STORE = 256,
	O_KEYFILE,
	O_JSON,
	O_NAME,
	O_SOURCE,
	O_SELF_SIGNED,
	O_EXPIRED,
	O_UPDATED,
	O_HELP,
};

static const struct option options[] = {
    {"store", required_argument, NULL, O_STORE},
    {"keyfile", required_argument, NULL, O_KEYFILE},
    {"json", no_argument, NULL, O_JSON},
    {"name", required_argument, NULL, O_NAME},
    {"source", required_argument, NULL, O_SOURCE},
    {"allow-self-signed", no_argument, NULL, O_SELF_SIGNED},
    {"allow-expired", no_argument, NULL, O_EXPIRED},
    {"store-updated", no_argument, NULL, O_UPDATED},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const usage_text =
    "usage: smimegate key harvested list [--json]\n"
    "       smimegate key harvested show NAME [--json]\n"
    "       smimegate key harvested promote NAME [--name NEW]\n"
    "       smimegate key harvested delete NAME\n"
    "       smimegate key harvested add FILE [--source S] "
    "[--allow-self-signed] [--allow-expired] [--store-updated]\n"
    "add harvests the certificates of FILE (- for stdin) as the gateway "
    "harvests a sender's; promote makes one a public key (`key list`)\n"
    "every command takes --store PATH (default var/smimegate.db) and "
    "--keyfile PATH (default <store>.key)\n";

/* Which options a subcommand takes. */
enum {
	TAKES_JSON = 1,
	TAKES_NAME = 2,
	TAKES_ADD = 4, /* --source and the three harvest options */
};

struct hopts {
	int json;
	const char *name;   /* promote --name */
	const char *source; /* add --source */
	struct store_harvest_opts ho;
	char **args; /* positional arguments */
	int nargs;
};

/* Parses argv of a subcommand; -1 to go on, else an exit code. */
static int
parse(struct admin *a, const char *cmd, unsigned takes, int argc, char **argv,
      struct hopts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		unsigned need = c == O_JSON   ? TAKES_JSON
		                : c == O_NAME ? TAKES_NAME
		                : c == O_SOURCE || c == O_SELF_SIGNED ||
		                        c == O_EXPIRED || c == O_UPDATED
		                    ? TAKES_ADD
		                    : 0;
		if (need != 0 && (takes & need) == 0)
			return cli_usage(cmd, "option \"%s\" does not apply",
			                 argv[optind - 1]);
		switch (c) {
		case O_STORE:
			a->store_path = optarg;
			break;
		case O_KEYFILE:
			a->keyfile = optarg;
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_NAME:
			o->name = optarg;
			break;
		case O_SOURCE:
			o->source = optarg;
			break;
		case O_SELF_SIGNED:
			o->ho.allow_self_signed = 1;
			break;
		case O_EXPIRED:
			o->ho.allow_expired = 1;
			break;
		case O_UPDATED:
			o->ho.store_updated = 1;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			return 0;
		default:
			return cli_usage(cmd,
			                 "unknown or incomplete option "
			                 "\"%s\"",
			                 argv[optind - 1]);
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	return -1;
}

/* ---- printing ---- */

/* The date part of T. */
static void
day(time_t t, char *buf, size_t len)
{
	cli_iso_time(t, buf, len);
	if (strlen(buf) > 10)
		buf[10] = '\0';
}

/* The emails then the domains of H, comma-separated, into F. */
static void
print_addresses(FILE *f, const struct store_harvested *h)
{
	const char *sep = "";

	for (char **p = h->e.info.emails; p && *p; p++, sep = ",")
		fprintf(f, "%s%s", sep, *p);
	for (char **p = h->e.info.domains; p && *p; p++, sep = ",")
		fprintf(f, "%s%s", sep, *p);
	if (*sep == '\0')
		fputc('-', f);
}

/* The object of `key list --json` (admin_print_json) with the harvest's
 * facts added: harvested_at, last_used, harvest_source, size. */
static int
print_json(FILE *f, const struct store_harvested *h, time_t now)
{
	char *buf = NULL, hv[32], lu[32];
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (m == NULL)
		return -1;
	admin_print_json(m, &h->e, now);
	if (fclose(m) != 0 || len == 0 || buf[len - 1] != '}') {
		free(buf);
		return -1;
	}
	cli_iso_time(h->harvested_at, hv, sizeof(hv));
	cli_iso_time(h->last_used, lu, sizeof(lu));
	fwrite(buf, 1, len - 1, f);
	fputs(", \"harvested_at\": ", f);
	cli_json_str(f, hv);
	fputs(", \"last_used\": ", f);
	cli_json_str(f, lu);
	fputs(", \"harvest_source\": ", f);
	cli_json_str(f, h->source);
	fprintf(f, ", \"size\": %" PRIu64 "}", h->size);
	free(buf);
	return 0;
}

static int
print_list(FILE *f, const struct store_harvested *v, size_t n, int json,
           time_t now)
{
	uint64_t total = 0;

	if (json) {
		fputc('[', f);
		for (size_t k = 0; k < n; k++) {
			if (k > 0)
				fputs(",\n ", f);
			if (print_json(f, &v[k], now) != 0)
				return -1;
		}
		fputs("]\n", f);
		return 0;
	}
	if (n == 0) {
		fprintf(f, "(none)\n");
		return 0;
	}
	fprintf(f, "%-36s %-10s %-10s %-10s %s\n", "NAME", "NOT-AFTER",
	        "HARVESTED", "LAST-USED", "ADDRESSES  SUBJECT  SOURCE");
	for (size_t k = 0; k < n; k++) {
		char na[32], hv[32], lu[32];
		day(v[k].e.info.not_after, na, sizeof(na));
		day(v[k].harvested_at, hv, sizeof(hv));
		day(v[k].last_used, lu, sizeof(lu));
		fprintf(f, "%-36s %-10s %-10s %-10s ", v[k].e.name, na, hv, lu);
		print_addresses(f, &v[k]);
		fprintf(f, "  %s  %s\n", v[k].e.info.subject,
		        *v[k].source ? v[k].source : "-");
		total += v[k].size;
	}
	fprintf(f, "%zu harvested certificate%s, %" PRIu64 " bytes\n", n,
	        n == 1 ? "" : "s", total);
	return 0;
}

static void
print_show(FILE *f, const struct store_harvested *h, time_t now)
{
	char hv[32], lu[32];

	admin_print_show(f, &h->e, now);
	cli_iso_time(h->harvested_at, hv, sizeof(hv));
	cli_iso_time(h->last_used, lu, sizeof(lu));
	fprintf(f, "harvested:   %s\n", hv);
	fprintf(f, "from:        %s\n", *h->source ? h->source : "-");
	fprintf(f, "last used:   %s\n", lu);
	fprintf(f, "size:        %" PRIu64 " bytes\n", h->size);
}

/* ---- list, show, promote, delete ---- */

static int
h_list(int argc, char **argv)
{
	const char *cmd = "key harvested list";
	struct admin a = {0};
	struct store_harvested *v = NULL;
	struct hopts o;
	size_t n = 0;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, cmd, TAKES_JSON, argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 0)
		return cli_usage(cmd, "takes no argument");
	if ((rc = admin_open(&a, cmd, 0)) != -1)
		return admin_close(&a, rc);
	if ((st = store_harvested_list(a.st, &v, &n)) != SG_OK)
		return admin_close(&a, admin_fail(&a, st));
	rc = print_list(stdout, v, n, o.json, sg_ctx_now(a.ctx));
	store_harvested_free(v, n);
	if (rc != 0)
		return admin_close(&a, cli_fail(NULL, cmd, SG_ERR_NOMEM));
	return admin_close(&a, 0);
}

static int
h_show(int argc, char **argv)
{
	const char *cmd = "key harvested show";
	struct admin a = {0};
	struct store_harvested h = {0};
	struct hopts o;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, cmd, TAKES_JSON, argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1)
		return cli_usage(cmd, "give one NAME");
	if ((rc = admin_open(&a, cmd, 0)) != -1)
		return admin_close(&a, rc);
	if ((st = store_harvested_get(a.st, o.args[0], &h)) != SG_OK)
		return admin_close(&a, admin_fail(&a, st));
	rc = 0;
	if (!o.json)
		print_show(stdout, &h, sg_ctx_now(a.ctx));
	else if (print_json(stdout, &h, sg_ctx_now(a.ctx)) == 0)
		putchar('\n');
	else
		rc = cli_fail(NULL, cmd, SG_ERR_NOMEM);
	store_harvested_clear(&h);
	return admin_close(&a, rc);
}

static int
h_promote(int argc, char **argv)
{
	const char *cmd = "key harvested promote";
	struct admin a = {0};
	struct hopts o;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, cmd, TAKES_NAME, argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1)
		return cli_usage(cmd, "give one NAME");
	if (o.name != NULL && !admin_name_ok(o.name))
		return cli_usage(cmd,
		                 "bad --name \"%s\" (1 to 128 of "
		                 "A-Z a-z 0-9 . _ @ + -)",
		                 o.name);
	if ((rc = admin_open(&a, cmd, 0)) != -1)
		return admin_close(&a, rc);
	if ((st = store_harvested_promote(a.st, o.args[0], o.name)) != SG_OK)
		return admin_close(&a, admin_fail(&a, st));
	printf("promoted %s to the public key %s\n", o.args[0],
	       o.name ? o.name : o.args[0]);
	return admin_close(&a, 0);
}

static int
h_delete(int argc, char **argv)
{
	const char *cmd = "key harvested delete";
	struct admin a = {0};
	struct hopts o;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, cmd, 0, argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1)
		return cli_usage(cmd, "give one NAME");
	if ((rc = admin_open(&a, cmd, 0)) != -1)
		return admin_close(&a, rc);
	if ((st = store_delete(a.st, STORE_HARVESTED, o.args[0])) != SG_OK)
		return admin_close(&a, admin_fail(&a, st));
	printf("deleted %s\n", o.args[0]);
	return admin_close(&a, 0);
}

/* ---- add: the manual harvest ---- */

/* Reads FILE ("-" = stdin) into certificates. */
static enum sg_status
read_certs(struct admin *a, const char *file, struct sg_certs **out)
{
	enum sg_status st;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;

	if ((st = sg_certs_new(out)) != SG_OK)
		return st;
	if (strcmp(file, "-") != 0)
		return sg_certs_load_file(a->ctx, *out, file);
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > MAX_CERT_INPUT) {
				free(buf);
				return SG_ERR_LIMIT;
			}
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				return SG_ERR_NOMEM;
			}
			buf = nb;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	st = sg_certs_load_mem(a->ctx, *out, buf, len);
	free(buf);
	return st;
}

/* What an option would change about a skip, or why a certificate is
 * not for encryption; or "". */
static const char *
hint(const struct store_harvest_out *r, const struct sg_cert_info *info,
     char *buf, size_t len)
{
	if (strcmp(r->reason, "not for encryption") == 0 &&
	    info->unfit_encrypt != NULL) {
		snprintf(buf, len, " (%s)", info->unfit_encrypt);
		return buf;
	}
	if (strcmp(r->reason, "expired") == 0)
		return " (--allow-expired harvests it anyway)";
	if (strcmp(r->reason, "self-signed") == 0)
		return " (--allow-self-signed harvests it anyway)";
	if (strcmp(r->reason, "updated certificate not stored") == 0)
		return " (--store-updated stores it)";
	return "";
}

/* Harvests certificate I of CERTS; prints the outcome.  The exit code:
 * 0 when it is (or already was) harvested; *FATAL when the store failed. */
static int
add_one(struct admin *a, const struct sg_certs *certs, size_t i,
        const char *source, const struct store_harvest_opts *ho, int *fatal)
{
	struct store_harvest_out r = {0};
	struct sg_cert_info info = {0};
	enum sg_status st;
	char why[256];
	int rc = 0;

	if ((st = sg_certs_info(certs, i, &info)) != SG_OK)
		return cli_fail(NULL, a->cmd, st);
	if ((st = store_harvest(a->st, certs, i, source, ho, &r)) != SG_OK) {
		*fatal = 1;
		rc = admin_fail(a, st);
		goto out;
	}
	if (r.result == STORE_HARVEST_SKIPPED) {
		fprintf(stderr, "smimegate: %s: %s: not harvested: %s%s: %s\n",
		        a->cmd, sg_status_name(r.skip_status), r.reason,
		        hint(&r, &info, why, sizeof(why)), info.subject);
		rc = sg_status_exit_code(r.skip_status);
		goto out;
	}
	printf("%s %s:", store_harvest_result_name(r.result), r.name);
	for (size_t k = 0; k < r.n_names; k++)
		printf("%s%s", k ? ", " : " ", r.names[k]);
	printf(" (%s)\n", info.subject);
out:
	store_harvest_out_clear(&r);
	sg_cert_info_clear(&info);
	return rc;
}

static int
h_add(int argc, char **argv)
{
	const char *cmd = "key harvested add";
	struct admin a = {0};
	struct sg_certs *certs = NULL;
	struct hopts o;
	char *source = NULL;
	size_t n, ca = 0;
	enum sg_status st;
	int rc, one, good = 0, last = 0, fatal = 0;

	if ((rc = parse(&a, cmd, TAKES_ADD, argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1)
		return cli_usage(cmd, "give one FILE (or - for stdin)");
	if ((rc = admin_open(&a, cmd, 1)) != -1)
		return admin_close(&a, rc);
	if ((st = read_certs(&a, o.args[0], &certs)) != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	if (o.source == NULL) {
		size_t len = strlen(o.args[0]) + sizeof("manual: ");
		if ((source = malloc(len)) == NULL) {
			rc = cli_fail(NULL, cmd, SG_ERR_NOMEM);
			goto out;
		}
		snprintf(source, len, "manual: %s", o.args[0]);
	}
	/* A file may carry the chain: its CA certificates are not
	 * harvested, nor reported, unless there is nothing else. */
	n = sg_certs_count(certs);
	for (size_t i = 0; i < n; i++) {
		struct sg_cert_info info;
		if (sg_certs_info(certs, i, &info) == SG_OK) {
			ca += info.is_ca != 0;
			sg_cert_info_clear(&info);
		}
	}
	for (size_t i = 0; i < n && !fatal; i++) {
		struct sg_cert_info info;
		int is_ca = 0;
		if (ca < n && sg_certs_info(certs, i, &info) == SG_OK) {
			is_ca = info.is_ca;
			sg_cert_info_clear(&info);
		}
		if (is_ca)
			continue;
		one = add_one(&a, certs, i, source ? source : o.source, &o.ho,
		              &fatal);
		if (one == 0)
			good++;
		else
			last = one;
	}
	if (n == 0)
		rc = cli_fail(NULL, cmd, SG_ERR_BADKEY);
	else
		rc = fatal ? last : good > 0 ? 0 : last;
out:
	free(source);
	sg_certs_free(certs);
	return admin_close(&a, rc);
}

int
cmd_key_harvested(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "list") == 0)
		return h_list(argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return h_show(argc - 1, argv + 1);
	if (strcmp(sub, "promote") == 0)
		return h_promote(argc - 1, argv + 1);
	if (strcmp(sub, "delete") == 0)
		return h_delete(argc - 1, argv + 1);
	if (strcmp(sub, "add") == 0)
		return h_add(argc - 1, argv + 1);
	if (strcmp(sub, "--help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	return cli_usage("key harvested",
	                 "unknown subcommand \"%s\" (list, show, promote, "
	                 "delete, add)",
	                 sub);
}
