/*
 * cmd_pubkey.c - `smimegate key ...` (partners' certificates, for
 * encryption) and `smimegate ca ...` (trust anchors, for verification).
 */
#include "cli/admin.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd_harvested.h"

#define MAX_CERT_INPUT (16u << 20)

/* --store, --keyfile, --force, --json; the rest are positional. */
static int
parse(struct admin *a, const char *cmd, int argc, char **argv, int *force,
      char ***args, int *nargs)
{
	static const struct option opts[] = {
	    {"store", required_argument, NULL, 's'},
	    {"keyfile", required_argument, NULL, 'k'},
	    {"force", no_argument, NULL, 'f'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	opterr = 0;
	*force = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->store_path = optarg;
			break;
		case 'k':
			a->keyfile = optarg;
			break;
		case 'f':
			*force = 1;
			break;
		case 'j':
			break; /* list/show handle it */
		default:
			return cli_usage(cmd,
			                 "unknown or incomplete option "
			                 "\"%s\"",
			                 argv[optind - 1]);
		}
	}
	*args = argv + optind;
	*nargs = argc - optind;
	return -1;
}

/* Reads FILE ("-" = stdin) into certificates. */
static enum sg_status
read_certs(struct admin *a, const char *file, struct sg_certs **out)
{
	enum sg_status st;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if ((st = sg_certs_new(out)) != SG_OK)
		return st;
	if (strcmp(file, "-") != 0)
		return sg_certs_load_file(a->ctx, *out, file);
	for (;;) {
		if (len == cap) {
			char *nb;
			cap = cap ? cap * 2 : 65536;
			if (cap > MAX_CERT_INPUT ||
			    (nb = realloc(buf, cap)) == NULL) {
				free(buf);
				return cap > MAX_CERT_INPUT ? SG_ERR_LIMIT
				                            : SG_ERR_NOMEM;
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

/* Adds certificate I of CERTS as ROLE: checks fitness, warns, stores.
 * 0 added, 1 refused (reason printed), -1 store error (printed). */
static int
add_one(struct admin *a, enum store_role role, const char *name,
        const struct sg_certs *certs, size_t i, int force, const char *src)
{
	struct sg_cert_info info;
	time_t now = sg_ctx_now(a->ctx);
	enum sg_status st;
	const char *why = NULL;
	int rc = 0;

	if (sg_certs_info(certs, i, &info) != SG_OK)
		return -1;
	/* A partner's self-signed certificate may be trusted directly (the
	 * appliance's "trust this certificate"): it anchors only itself. */
	if (role == STORE_CA && !info.is_ca && !info.self_signed)
		why = "not a CA certificate (nor self-signed)";
	else if (role == STORE_PUBLIC && info.is_ca)
		why = "a CA certificate (use `smimegate ca import`)";
	else if (role == STORE_PUBLIC && !info.can_encrypt)
		why = info.unfit_encrypt;
	if (why != NULL) {
		fprintf(stderr, "smimegate: %s: key-usage: %s: %s\n", a->cmd,
		        info.subject, why);
		rc = 1;
		goto out;
	}
	if ((info.not_after < now || info.not_before > now) && !force) {
		fprintf(stderr,
		        "smimegate: %s: expired: %s is not valid now "
		        "(--force adds it anyway)\n",
		        a->cmd, info.subject);
		rc = 1;
		goto out;
	}
	if ((st = store_put_cert(a->st, role, name, certs, i, src)) != SG_OK) {
		fprintf(stderr, "smimegate: %s: %s: %s\n", a->cmd,
		        sg_status_name(st), store_errmsg(a->st));
		rc = st == SG_ERR_EXISTS ? 1 : -1;
		goto out;
	}
	printf("added %s%s%s\n", name ? name : "", name ? ": " : "",
	       info.subject);
out:
	sg_cert_info_clear(&info);
	return rc;
}

/* `key import` and `ca import`: every suitable certificate of a file. */
static int
import_many(const char *cmd, enum store_role role, int argc, char **argv)
{
	struct admin a = {0};
	struct sg_certs *certs = NULL;
	char **args;
	int nargs, force, rc, added = 0, refused = 0;
	enum sg_status st;

	if ((rc = parse(&a, cmd, argc, argv, &force, &args, &nargs)) != -1)
		return rc;
	if (nargs != 1)
		return cli_usage(cmd, "give one FILE");
	if ((rc = admin_open(&a, cmd, 1)) != -1)
		return admin_close(&a, rc);
	if ((st = read_certs(&a, args[0], &certs)) != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	for (size_t i = 0; i < sg_certs_count(certs); i++) {
		struct sg_cert_info info;
		/* A partner's file may carry its chain: CAs are not
		 * partners' keys. */
		if (role == STORE_PUBLIC &&
		    sg_certs_info(certs, i, &info) == SG_OK) {
			int ca = info.is_ca;
			sg_cert_info_clear(&info);
			if (ca)
				continue;
		}
		rc = add_one(&a, role, NULL, certs, i, force, "imported");
		if (rc == -1)
			goto out;
		rc ? refused++ : added++;
	}
	fprintf(stderr, "smimegate: %s: %d added, %d refused\n", cmd, added,
	        refused);
	rc = added > 0 ? 0 : sg_status_exit_code(SG_ERR_NOT_FOUND);
out:
	sg_certs_free(certs);
	return admin_close(&a, rc < 0 ? sg_status_exit_code(SG_ERR_IO) : rc);
}

static int
key_add(int argc, char **argv)
{
	struct admin a = {0};
	struct sg_certs *certs = NULL;
	char **args;
	int nargs, force, rc;
	enum sg_status st;

	if ((rc = parse(&a, "key add", argc, argv, &force, &args, &nargs)) !=
	    -1)
		return rc;
	if (nargs != 2 || !admin_name_ok(args[0]))
		return cli_usage("key add", "give NAME and FILE (or - for "
		                            "stdin)");
	if ((rc = admin_open(&a, "key add", 1)) != -1)
		return admin_close(&a, rc);
	if ((st = read_certs(&a, args[1], &certs)) != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	rc = add_one(&a, STORE_PUBLIC, args[0], certs, 0, force, "added");
	rc = rc == -1 ? sg_status_exit_code(SG_ERR_IO) : rc;
out:
	sg_certs_free(certs);
	return admin_close(&a, rc);
}

static int
key_export(int argc, char **argv)
{
	struct admin a = {0};
	struct store_entry *v = NULL;
	struct sg_certs *all = NULL, *one;
	struct cli_out out;
	struct sg_sink sink;
	char **args;
	size_t n = 0;
	int nargs, force, rc;
	enum sg_status st;

	if ((rc = parse(&a, "key export", argc, argv, &force, &args, &nargs)) !=
	    -1)
		return rc;
	if (nargs != 1)
		return cli_usage("key export", "give one FILE (or - for "
		                               "stdout)");
	if ((rc = admin_open(&a, "key export", 0)) != -1)
		return admin_close(&a, rc);
	if ((st = store_list(a.st, STORE_PUBLIC, &v, &n)) != SG_OK ||
	    (st = sg_certs_new(&all)) != SG_OK) {
		rc = admin_fail(&a, st);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((st = store_get_certs(a.st, STORE_PUBLIC, v[i].name,
		                          &one)) != SG_OK) {
			rc = admin_fail(&a, st);
			goto out;
		}
		st = sg_certs_push_from(all, one, 0);
		sg_certs_free(one);
		if (st != SG_OK) {
			rc = cli_fail(NULL, "key export", st);
			goto out;
		}
	}
	if (cli_out_open(&out, strcmp(args[0], "-") ? args[0] : NULL, 1) ==
	    -1) {
		fprintf(stderr, "smimegate: key export: io: %s: %s\n", args[0],
		        strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
		goto out;
	}
	sg_sink_fd(&sink, &out.fd);
	st = sg_certs_write_pem(a.ctx, all, &sink);
	if (cli_out_close(&out, st == SG_OK) == -1 && st == SG_OK)
		st = SG_ERR_IO;
	rc = st == SG_OK ? 0 : admin_fail_ctx(&a, st);
	if (st == SG_OK)
		fprintf(stderr, "smimegate: key export: %zu public keys\n", n);
out:
	store_entries_free(v, n);
	sg_certs_free(all);
	return admin_close(&a, rc);
}

int
cmd_key(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return key_add(argc - 1, argv + 1);
	if (strcmp(sub, "import") == 0)
		return import_many("key import", STORE_PUBLIC, argc - 1,
		                   argv + 1);
	if (strcmp(sub, "export") == 0)
		return key_export(argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return admin_list_show_delete("key list", STORE_PUBLIC,
		                              argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return admin_list_show_delete("key show", STORE_PUBLIC,
		                              argc - 1, argv + 1);
	if (strcmp(sub, "delete") == 0)
		return admin_list_show_delete("key delete", STORE_PUBLIC,
		                              argc - 1, argv + 1);
	if (strcmp(sub, "harvested") == 0)
		return cmd_key_harvested(argc - 1, argv + 1);
	return cli_usage("key",
	                 "unknown subcommand \"%s\" (add, import, "
	                 "export, list, show, delete, harvested)",
	                 sub);
}

static int
ca_trust_system(int argc, char **argv)
{
	struct admin a = {0};
	char **args;
	int nargs, force, rc;
	enum sg_status st;

	if ((rc = parse(&a, "ca trust-system", argc, argv, &force, &args,
	                &nargs)) != -1)
		return rc;
	if (nargs != 1 || (strcmp(args[0], "on") && strcmp(args[0], "off")))
		return cli_usage("ca trust-system", "give on or off");
	if ((rc = admin_open(&a, "ca trust-system", 1)) != -1)
		return admin_close(&a, rc);
	st = store_set_setting(a.st, "trust_system_bundle",
	                       strcmp(args[0], "on") == 0 ? "1" : "0");
	if (st != SG_OK)
		return admin_close(&a, admin_fail(&a, st));
	printf("the system CA bundle is %s\n",
	       strcmp(args[0], "on") == 0 ? "trusted too" : "not trusted");
	return admin_close(&a, 0);
}

int
cmd_ca(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "import") == 0)
		return import_many("ca import", STORE_CA, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return admin_list_show_delete("ca list", STORE_CA, argc - 1,
		                              argv + 1);
	if (strcmp(sub, "show") == 0)
		return admin_list_show_delete("ca show", STORE_CA, argc - 1,
		                              argv + 1);
	if (strcmp(sub, "delete") == 0)
		return admin_list_show_delete("ca delete", STORE_CA, argc - 1,
		                              argv + 1);
	if (strcmp(sub, "trust-system") == 0)
		return ca_trust_system(argc - 1, argv + 1);
	return cli_usage("ca",
	                 "unknown subcommand \"%s\" (import, list, "
	                 "show, delete, trust-system)",
	                 sub);
}
