/*
 * cmd_quarantine.c - `smimegate quarantine [-c FILE | --spool DIR]
 * list|show|release|delete`: the administrator's side of the named
 * quarantines (docs/quarantine.md).  It runs while the daemon runs: the
 * quarantine module never takes the spool's lock, and each release or
 * delete is atomic against the daemon's own changes.
 *
 * Exit codes: 0 done; 1 an ID is in no quarantine (or already released);
 * 2 a usage error, or a spool that cannot be read or holds a damaged
 * entry.  Text from the messages (senders, reasons, headers) is printed
 * with control characters replaced, so a message cannot drive the
 * administrator's terminal.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/quarantine.h"
#include "policy/config.h"

static const char usage_text[] =
    "usage: smimegate quarantine [-c FILE | --spool DIR] COMMAND\n"
    "  list [--name NAME] [--json]   the quarantined messages, oldest "
    "first\n"
    "  show ID [--json] [--raw]      an entry's metadata and headers "
    "(--raw:\n"
    "                                the whole message, as it was "
    "received)\n"
    "  release ID [ID ...]           hand messages back to the daemon for "
    "delivery\n"
    "  delete ID [ID ...]            delete messages for good\n"
    "-c FILE takes the spool directory from the configuration; --spool "
    "DIR\n"
    "names it.  Exit 0 done, 1 an ID not found, 2 usage or damaged "
    "state.\n";

struct qcmd {
	struct cli_spool_args a; /* a.value: --name */
	struct quarantine *q;
};

/* ---- list ---- */

static void
print_json(FILE *f, const struct quarantine_info *e, const char *headers,
           size_t hlen)
{
	const struct spool_env *env = &e->env;
	int ok = !e->damaged;
	char t[32];

	cli_iso_time(e->quarantined, t, sizeof(t));
	fputs("{\"id\": ", f);
	cli_json_str(f, e->id);
	fputs(", \"quarantine\": ", f);
	cli_json_str(f, e->name);
	fprintf(f,
	        ", \"damaged\": %s, \"quarantined\": ", ok ? "false" : "true");
	cli_json_str(f, ok ? t : NULL);
	if (ok)
		fprintf(f, ", \"quarantined_epoch\": %lld, \"size\": %llu",
		        (long long)e->quarantined, (unsigned long long)e->size);
	else
		fputs(", \"quarantined_epoch\": null, \"size\": null", f);
	fputs(", \"rule\": ", f);
	cli_json_str(f, e->rule);
	fputs(", \"reason\": ", f);
	cli_json_str(f, e->reason);
	cli_json_env(f, env, ok);
	if (headers != NULL) {
		fputs(", \"headers\": ", f);
		cli_json_bytes(f, headers, hlen);
	}
	fputc('}', f);
}

static void
print_table(FILE *f, const struct quarantine_info *v, size_t n)
{
	if (n == 0) {
		fprintf(f, "(none)\n");
		return;
	}
	fprintf(f, "%-24s  %-12s  %-20s  %-32s  %5s  %10s  %-20s  %s\n", "ID",
	        "QUARANTINE", "QUARANTINED", "FROM", "RCPTS", "SIZE", "RULE",
	        "REASON");
	for (size_t k = 0; k < n; k++) {
		const struct quarantine_info *e = &v[k];
		char t[32];

		fprintf(f, "%-24s  ", e->id);
		cli_cell(f, e->name, 12);
		if (e->damaged) {
			fprintf(f,
			        "(damaged: see `smimegate quarantine show "
			        "%s`)\n",
			        e->id);
			continue;
		}
		cli_iso_time(e->quarantined, t, sizeof(t));
		fprintf(f, "%-20s  ", t);
		cli_cell(f, e->env.mail_from[0] ? e->env.mail_from : "<>", 32);
		fprintf(f, "%5zu  %10llu  ", e->env.nrcpts,
		        (unsigned long long)e->size);
		cli_cell(f, e->rule, 20);
		cli_put_str(f, e->reason, 80);
		fputc('\n', f);
	}
}

static int
q_fail(struct qcmd *c, enum sg_status st)
{
	char why[600];

	quarantine_error(c->q, why, sizeof(why));
	fprintf(stderr, "smimegate: %s: %s: %s\n", c->a.cmd, sg_status_name(st),
	        why);
	return sg_status_exit_code(st);
}

static int
do_list(struct qcmd *c)
{
	struct quarantine_info *v = NULL;
	size_t n = 0, damaged = 0;
	enum sg_status st;

	if ((st = quarantine_list(c->q, c->a.value, &v, &n)) != SG_OK)
		return q_fail(c, st);
	if (c->a.json) {
		fputc('[', stdout);
		for (size_t k = 0; k < n; k++) {
			fputs(k ? ",\n " : "", stdout);
			print_json(stdout, &v[k], NULL, 0);
		}
		fputs("]\n", stdout);
	} else {
		print_table(stdout, v, n);
	}
	for (size_t k = 0; k < n; k++)
		damaged += v[k].damaged != 0;
	quarantine_list_free(v, n);
	if (damaged == 0)
		return 0;
	fprintf(stderr,
	        "smimegate: %s: io: %zu damaged entr%s (`smimegate quarantine "
	        "show ID` says why)\n",
	        c->a.cmd, damaged, damaged == 1 ? "y" : "ies");
	return sg_status_exit_code(SG_ERR_IO);
}

/* ---- show ---- */

static void
print_show(FILE *f, const struct quarantine_info *e, const char *headers,
           size_t hlen)
{
	const struct spool_env *env = &e->env;
	char t[32];

	fprintf(f, "id:          %s\n", e->id);
	fprintf(f, "quarantine:  %s\n", e->name);
	cli_iso_time(e->quarantined, t, sizeof(t));
	fprintf(f, "quarantined: %s\n", t);
	fputs("rule:        ", f);
	cli_put_str(f, e->rule, 0);
	fputs("\nreason:      ", f);
	cli_put_str(f, e->reason, 0);
	fprintf(f, "\nsize:        %llu bytes\n", (unsigned long long)e->size);
	cli_print_env_headers(f, env, headers, hlen);
}

static int
do_show(struct qcmd *c)
{
	struct quarantine_info e;
	enum sg_status st;
	struct stat sb;
	char *headers = NULL;
	size_t hlen = 0;
	int fd, rc = 0;

	if ((st = quarantine_show(c->q, c->a.ids[0], &e)) != SG_OK)
		return q_fail(c, st);
	if ((fd = quarantine_data_fd(c->q, e.id)) < 0) {
		rc = q_fail(c, errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO);
		goto out;
	}
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != e.size) {
		fprintf(stderr,
		        "smimegate: %s: io: %s: damaged: the message is not "
		        "the size its metadata says\n",
		        c->a.cmd, e.id);
		rc = sg_status_exit_code(SG_ERR_IO);
	} else if (c->a.raw) {
		fflush(stdout);
		if (cli_copy_out(fd) < 0) {
			fprintf(stderr, "smimegate: %s: io: %s\n", c->a.cmd,
			        strerror(errno));
			rc = sg_status_exit_code(SG_ERR_IO);
		}
	} else if ((headers = cli_read_headers(fd, &hlen)) == NULL) {
		fprintf(stderr, "smimegate: %s: io: reading %s: %s\n", c->a.cmd,
		        e.id, strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
	} else if (c->a.json) {
		print_json(stdout, &e, headers, hlen);
		fputc('\n', stdout);
	} else {
		print_show(stdout, &e, headers, hlen);
	}
	close(fd);
out:
	free(headers);
	quarantine_info_clear(&e);
	return rc;
}

/* ---- release, delete ---- */

static int
do_each(struct qcmd *c, int release)
{
	int rc = 0;

	for (int i = 0; i < c->a.nids; i++) {
		enum sg_status st = release
		                        ? quarantine_release(c->q, c->a.ids[i])
		                        : quarantine_delete(c->q, c->a.ids[i]);
		if (st == SG_OK) {
			printf("%s %s\n", release ? "released" : "deleted",
			       c->a.ids[i]);
		} else {
			int code = q_fail(c, st);
			if (code > rc)
				rc = code;
		}
	}
	return rc;
}

/* ---- the command ---- */

/* The arguments: -1 to go on, else an exit code. */
static int
parse(struct qcmd *c, int argc, char **argv)
{
	const char *sub, *name;
	int rc;

	if ((rc = cli_spool_args(&c->a, "quarantine", "name", usage_text,
	                         "list, show, release or delete", argc,
	                         argv)) != -1)
		return rc;
	sub = c->a.sub;
	name = c->a.value;
	if (strcmp(sub, "list") && strcmp(sub, "show") &&
	    strcmp(sub, "release") && strcmp(sub, "delete"))
		return cli_usage("quarantine",
		                 "unknown command \"%s\" (list, show, release, "
		                 "delete)",
		                 sub);
	if (name != NULL && strcmp(sub, "list") != 0)
		return cli_usage(c->a.cmd, "--name is for list");
	if (name != NULL && !quarantine_name_valid(name))
		return cli_usage(c->a.cmd,
		                 "\"%s\" is not a quarantine name (letters, "
		                 "digits, _ and -, at most %d)",
		                 name, QUARANTINE_NAME_MAX);
	return cli_spool_check(&c->a, 0);
}

/* Opens the quarantine area of --spool, or of the configuration's spool
 * (as root, then as its user).  -1 to go on, else an exit code. */
static int
open_area(struct qcmd *c)
{
	char err[1024] = "", *dir = NULL;
	enum sg_status st;
	int rc;

	if ((rc = cli_spool_dir(c->a.cmd, c->a.config, c->a.spool, &dir)) != -1)
		return rc;
	st = quarantine_open(dir, &c->q, err, sizeof(err));
	free(dir);
	if (st != SG_OK) {
		fprintf(stderr, "smimegate: %s: %s: %s\n", c->a.cmd,
		        sg_status_name(st), err);
		return sg_status_exit_code(st);
	}
	return -1;
}

int
cmd_quarantine(int argc, char **argv)
{
	struct qcmd c;
	int rc;

	memset(&c, 0, sizeof(c));
	if ((rc = parse(&c, argc, argv)) != -1 || (rc = open_area(&c)) != -1)
		return rc;
	if (strcmp(c.a.sub, "list") == 0)
		rc = do_list(&c);
	else if (strcmp(c.a.sub, "show") == 0)
		rc = do_show(&c);
	else
		rc = do_each(&c, strcmp(c.a.sub, "release") == 0);
	quarantine_close(c.q);
	return cli_flushed(c.a.cmd, rc);
}
