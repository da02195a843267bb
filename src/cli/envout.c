/*
 * envout.c - what the spool commands (`quarantine`, `queue`) share: the
 * spool directory they work on, and a spooled envelope (spool.h) as they
 * print it, in text and in JSON.  Every value came from a client, so it
 * goes through textout.c.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/privs.h"
#include "daemon/spool.h"
#include "policy/config.h"

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
