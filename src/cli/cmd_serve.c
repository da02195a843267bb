/*
 * cmd_serve.c - `smimegate serve -c FILE | --demo DIR` and
 * `smimegate check-config -c FILE`.
 */
#include "cli/admin.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "daemon/privs.h"
#include "daemon/serve.h"
#include "daemon/smtp.h"
#include "policy/config.h"

static const char *
config_arg(int argc, char **argv, const char *cmd, int *rc)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (c != 'c') {
			*rc = cli_usage(cmd,
			                "unknown or incomplete option "
			                "\"%s\"",
			                argv[optind - 1]);
			return NULL;
		}
		path = optarg;
	}
	if (path == NULL || optind < argc) {
		*rc = cli_usage(cmd, "give -c FILE");
		return NULL;
	}
	return path;
}

static void
warn_stderr(void *arg, const char *what)
{
	(void)arg;
	fprintf(stderr, "smimegate: check-config: warning: %s\n", what);
}

int
cmd_check_config(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	const char *path;
	char err[512];
	enum sg_status st;
	int rc, dropped = 0;

	if ((path = config_arg(argc, argv, "check-config", &rc)) == NULL)
		return rc;
	if ((st = cfg_load(path, &cfg, err, sizeof(err))) != SG_OK) {
		fprintf(stderr, "smimegate: check-config: %s: %s\n",
		        sg_status_name(st), err);
		return sg_status_exit_code(st);
	}
	/* what the daemon would open, as the user it would open it as */
	if ((dropped = privs_drop(cfg->user, err, sizeof(err))) == -1 ||
	    serve_check(cfg, warn_stderr, NULL, err, sizeof(err)) == -1 ||
	    smtp_check_cfg(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "smimegate: check-config: %s: %s%s%s%s\n",
		        sg_status_name(SG_ERR_USAGE), err,
		        dropped == 1 ? " (as user " : "",
		        dropped == 1 ? cfg->user : "", dropped == 1 ? ")" : "");
		cfg_free(cfg);
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	printf("%s: ok\n", path);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		printf("  listener %s: %s:%d, %s", l->name, l->host, l->port,
		       l->role == CFG_OUTGOING ? "outgoing" : "incoming");
		if (l->profile != NULL)
			printf(", profile %s", l->profile);
		printf(", %zu relay network%s\n", l->nrelay_from,
		       l->nrelay_from == 1 ? "" : "s");
	}
	printf("  delivery: %s%s\n", cfg->smarthost ? "smarthost " : "maildir ",
	       cfg->smarthost ? cfg->smarthost : cfg->outbox);
	printf("  store: %s\n", cfg->store_path);
	if (cfg->user != NULL)
		printf("  user: %s\n", cfg->user);
	if (!cfg->revocation.enabled) {
		printf("  revocation: off\n");
	} else {
		size_t n = 0;

		while (cfg->revocation.crl_files &&
		       cfg->revocation.crl_files[n])
			n++;
		printf("  revocation: %s%s%zu CRL file%s; unknown status: "
		       "%s by default\n",
		       cfg->revocation.ocsp ? "OCSP, " : "",
		       cfg->revocation.fetch_crl ? "CRL distribution points, "
		                                 : "",
		       n, n == 1 ? "" : "s",
		       cfg->revocation.hard_fail ? "hard-fail (defer)"
		                                 : "soft-fail (go on)");
	}
	cfg_free(cfg);
	return 0;
}

int
cmd_serve(int argc, char **argv)
{
	char err[1024] = "", demo_config[4200];
	const char *path;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--demo") == 0) {
		if (serve_demo_prepare(argv[2], demo_config,
		                       sizeof(demo_config), err,
		                       sizeof(err)) == -1) {
			fprintf(stderr, "smimegate: serve: io: %s\n", err);
			return sg_status_exit_code(SG_ERR_IO);
		}
		path = demo_config;
		fprintf(stderr,
		        "smimegate: demo gateway: outgoing 127.0.0.1:2525 "
		        "(signs), incoming 127.0.0.1:2526 (verifies); mail "
		        "lands in %s/outbox/new/\n",
		        argv[2]);
	} else if ((path = config_arg(argc, argv, "serve", &rc)) == NULL) {
		return rc;
	}
	if (serve_run(path, err, sizeof(err)) == -1) {
		fprintf(stderr, "smimegate: serve: %s\n", err);
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	return 0;
}
