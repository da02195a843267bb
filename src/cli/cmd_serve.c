/*
 * cmd_serve.c - `smimegate check-config -c FILE` (and, next, `serve`).
 */
#include "cli/admin.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

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

int
cmd_check_config(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	const char *path;
	char err[512];
	enum sg_status st;
	int rc;

	if ((path = config_arg(argc, argv, "check-config", &rc)) == NULL)
		return rc;
	if ((st = cfg_load(path, &cfg, err, sizeof(err))) != SG_OK) {
		fprintf(stderr, "smimegate: check-config: %s: %s\n",
		        sg_status_name(st), err);
		return sg_status_exit_code(st);
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
	cfg_free(cfg);
	return 0;
}
