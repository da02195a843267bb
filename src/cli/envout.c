/*
 * envout.c - what the spool commands (`quarantine`, `queue`) share: the
 * spool directory they work on, and a spooled envelope (spool.h) as they
 * print it, in text and in JSON.  Every value came from a client, so it
 * goes through textout.c.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/privs.h"
#include "daemon/spool.h"
#include "policy/config.h"

int
cli_spool_args(struct cli_spool_args *a, const char *name,
               const char *value_opt, const char *usage, const char *subs,
               int argc, char **argv)
{
	struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"spool", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"raw", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {value_opt, required_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0},
	};
	int o;

	if (value_opt == NULL) /* no option of its own */
		memset(&opts[5], 0, sizeof(opts[5]));
	memset(a, 0, sizeof(*a));
	snprintf(a->cmd, sizeof(a->cmd), "%s", name);
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			a->config = optarg;
			break;
		case 's':
			a->spool = optarg;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'r':
			a->raw = 1;
			break;
		case 'v':
			a->value = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_usage(name,
			                 "unknown or incomplete option \"%s\"",
			                 argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage(name, "give a command: %s", subs);
	a->sub = argv[optind];
	snprintf(a->cmd, sizeof(a->cmd), "%s %s", name, a->sub);
	a->ids = argv + optind + 1;
	a->nids = argc - optind - 1;
	if ((a->config == NULL) == (a->spool == NULL))
		return cli_usage(name, "give -c FILE or --spool DIR");
	return -1;
}

int
cli_spool_check(const struct cli_spool_args *a, int ids_optional)
{
	int list = strcmp(a->sub, "list") == 0,
	    show = strcmp(a->sub, "show") == 0;

	if (a->json && !list && !show)
		return cli_usage(a->cmd, "--json is for list and show");
	if (a->raw && (!show || a->json))
		return cli_usage(a->cmd, "--raw is for show, without --json");
	if (list && a->nids != 0)
		return cli_usage(a->cmd, "list takes no ID");
	if (show && a->nids != 1)
		return cli_usage(a->cmd, "give one ID");
	if (!list && !show && !ids_optional && a->nids < 1)
		return cli_usage(a->cmd, "give at least one ID");
	for (int i = 0; i < a->nids; i++)
		if (!spool_id_valid(a->ids[i]))
			return cli_usage(a->cmd,
			                 "\"%s\" is not a queue ID (%d "
			                 "characters, 0-9 and A-Z)",
			                 a->ids[i], SPOOL_ID_LEN);
	return -1;
}

int
cli_spool_dir(const char *cmd, const char *config, const char *spool,
              char **dir)
{
	struct cfg *cfg = NULL;
	char err[1024] = "";
	enum sg_status st;

	if (config != NULL) {
		if ((st = cfg_load(config, &cfg, err, sizeof(err))) != SG_OK) {
			fprintf(stderr, "smimegate: %s: %s: %s\n", cmd,
			        sg_status_name(st), err);
			return sg_status_exit_code(st);
		}
		/* what the command writes belongs to the daemon's user */
		if (privs_drop(cfg->user, err, sizeof(err)) == -1) {
			fprintf(stderr, "smimegate: %s: usage: %s\n", cmd, err);
			cfg_free(cfg);
			return sg_status_exit_code(SG_ERR_USAGE);
		}
		spool = cfg->spool_dir;
	}
	*dir = strdup(spool);
	cfg_free(cfg);
	if (*dir == NULL)
		return cli_fail(NULL, cmd, SG_ERR_NOMEM);
	return -1;
}

const char *
cli_role_name(int role)
{
	return role == CFG_OUTGOING   ? "outgoing"
	       : role == CFG_INCOMING ? "incoming"
	                              : NULL;
}

void
cli_json_env(FILE *f, const struct spool_env *env, int ok)
{
	char r[32];

	cli_iso_time(env->received, r, sizeof(r));
	fputs(", \"mail_from\": ", f);
	cli_json_str(f, env->mail_from);
	fputs(", \"recipients\": [", f);
	for (size_t i = 0; ok && i < env->nrcpts; i++) {
		fputs(i ? ", {\"address\": " : "{\"address\": ", f);
		cli_json_str(f, env->rcpts[i]);
		fputs(", \"notify\": ", f);
		cli_json_str(f, env->dsn_notify ? env->dsn_notify[i] : NULL);
		fputc('}', f);
	}
	fputs("], \"received\": ", f);
	cli_json_str(f, ok ? r : NULL);
	fputs(", \"listener\": ", f);
	cli_json_str(f, env->listener);
	fputs(", \"role\": ", f);
	cli_json_str(f, ok ? cli_role_name(env->role) : NULL);
	fputs(", \"client\": ", f);
	cli_json_str(f, env->client);
	fputs(", \"helo\": ", f);
	cli_json_str(f, env->helo);
	fputs(", \"dsn_ret\": ", f);
	cli_json_str(f, env->dsn_ret);
	fputs(", \"dsn_envid\": ", f);
	cli_json_str(f, env->dsn_envid);
}

void
cli_print_env_headers(FILE *f, const struct spool_env *env, const char *headers,
                      size_t hlen)
{
	cli_print_env(f, env);
	fputs("\n", f);
	cli_put_text(f, headers, hlen, 0, 1);
	if (hlen > 0 && headers[hlen - 1] != '\n')
		fputs("\n[headers cut]\n", f);
}

void
cli_print_env(FILE *f, const struct spool_env *env)
{
	char t[32];

	fputs("from:        <", f);
	cli_put_str(f, env->mail_from, 0);
	fputs(">\n", f);
	for (size_t i = 0; i < env->nrcpts; i++) {
		fputs("to:          <", f);
		cli_put_str(f, env->rcpts[i], 0);
		fputc('>', f);
		if (env->dsn_notify && env->dsn_notify[i]) {
			fputs(" NOTIFY=", f);
			cli_put_str(f, env->dsn_notify[i], 0);
		}
		fputc('\n', f);
	}
	cli_iso_time(env->received, t, sizeof(t));
	fprintf(f, "received:    %s\n", t);
	fputs("listener:    ", f);
	cli_put_str(f, env->listener, 0);
	if (cli_role_name(env->role))
		fprintf(f, " (%s)", cli_role_name(env->role));
	fputs("\nclient:      ", f);
	cli_put_str(f, env->client, 0);
	fputs(" (helo ", f);
	cli_put_str(f, env->helo, 0);
	fputs(")\n", f);
	if (env->dsn_ret || env->dsn_envid) {
		fputs("dsn:         RET=", f);
		cli_put_str(f, env->dsn_ret, 0);
		fputs(" ENVID=", f);
		cli_put_str(f, env->dsn_envid, 0);
		fputc('\n', f);
	}
}
