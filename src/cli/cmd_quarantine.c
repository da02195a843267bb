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
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/quarantine.h"
#include "policy/config.h"

#define HEADERS_MAX (256u << 10) /* bytes of headers `show` prints */

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
	char cmd[32]; /* "quarantine list", for messages */
	const char *config, *spool, *name;
	int json, raw;
	const char *sub; /* "list", "show", "release", "delete" */
	char **ids;      /* the arguments after the subcommand */
	int nids;
	struct quarantine *q;
};

/* ---- output helpers ---- */

/* The length of the UTF-8 sequence at S (N bytes left) when it is valid
 * and not a control character (C0, DEL, C1); 0 otherwise. */
static size_t
printable_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp >= 0x80 && cp < 0xa0))
		return 0;
	return len;
}

/* Writes N bytes of S for a terminal: what is not printable UTF-8
 * becomes '?' (tabs and newlines too, unless KEEP_LINES; a CR before a
 * newline is dropped then).  With MAX (not 0), a text of more than MAX
 * characters is cut to MAX - 3 and "...".  The characters written. */
static size_t
put_text(FILE *f, const char *str, size_t n, size_t max, int keep_lines)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t chars = 0, limit = SIZE_MAX, i, len;

	if (max) {
		for (i = 0; i < n; i += len ? len : 1)
			len = printable_len(s + i, n - i), chars++;
		if (chars > max)
			limit = max > 3 ? max - 3 : 0;
		chars = 0;
	}
	for (i = 0; i < n && chars < limit; i += len) {
		len = printable_len(s + i, n - i);
		if (keep_lines && s[i] == '\r' && i + 1 < n &&
		    s[i + 1] == '\n') {
			len = 1;
			continue;
		}
		chars++;
		if (len == 0 || (s[i] < 0x20 && !keep_lines)) {
			fputc(keep_lines && (s[i] == '\n' || s[i] == '\t')
			          ? s[i]
			          : '?',
			      f);
			len = 1;
		} else {
			fwrite(s + i, 1, len, f);
		}
	}
	if (limit != SIZE_MAX) {
		fputs("...", f);
		chars += 3;
	}
	return chars;
}

static size_t
put_str(FILE *f, const char *s, size_t max)
{
	if (s == NULL)
		s = "-";
	return put_text(f, s, strlen(s), max, 0);
}

/* A table cell: S cut to WIDTH characters, padded to WIDTH + 2. */
static void
cell(FILE *f, const char *s, size_t width)
{
	size_t chars = put_str(f, s, width);

	fprintf(f, "%*s", chars < width + 2 ? (int)(width + 2 - chars) : 1, "");
}

/* Writes N bytes of S as a JSON string: invalid UTF-8 becomes U+FFFD. */
static void
json_bytes(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	for (size_t i = 0; i < n;) {
		size_t len = printable_len(s + i, n - i);
		if (s[i] == '"' || s[i] == '\\') {
			fprintf(f, "\\%c", s[i]);
			len = 1;
		} else if (s[i] < 0x80 && len == 0) {
			fprintf(f, "\\u%04x", s[i]);
			len = 1;
		} else if (len == 0 && s[i] == 0xc2 && i + 1 < n &&
		           s[i + 1] >= 0x80 && s[i + 1] < 0xa0) {
			fprintf(f, "\\u%04x", s[i + 1]); /* C1 controls */
			len = 2;
		} else if (len == 0) {
			fputs("\\ufffd", f);
			len = 1;
		} else {
			fwrite(s + i, 1, len, f);
		}
		i += len;
	}
	fputc('"', f);
}

static void
json_str(FILE *f, const char *s)
{
	if (s == NULL)
		fputs("null", f);
	else
		json_bytes(f, s, strlen(s));
}

static const char *
role_name(int role)
{
	return role == CFG_OUTGOING   ? "outgoing"
	       : role == CFG_INCOMING ? "incoming"
	                              : NULL;
}

/* ---- list ---- */

static void
print_json(FILE *f, const struct quarantine_info *e, const char *headers,
           size_t hlen)
{
	const struct spool_env *env = &e->env;
	int ok = !e->damaged;
	char t[32], r[32];

	cli_iso_time(e->quarantined, t, sizeof(t));
	cli_iso_time(env->received, r, sizeof(r));
	fputs("{\"id\": ", f);
	json_str(f, e->id);
	fputs(", \"quarantine\": ", f);
	json_str(f, e->name);
	fprintf(f,
	        ", \"damaged\": %s, \"quarantined\": ", ok ? "false" : "true");
	json_str(f, ok ? t : NULL);
	if (ok)
		fprintf(f, ", \"quarantined_epoch\": %lld, \"size\": %llu",
		        (long long)e->quarantined, (unsigned long long)e->size);
	else
		fputs(", \"quarantined_epoch\": null, \"size\": null", f);
	fputs(", \"rule\": ", f);
	json_str(f, e->rule);
	fputs(", \"reason\": ", f);
	json_str(f, e->reason);
	fputs(", \"mail_from\": ", f);
	json_str(f, env->mail_from);
	fputs(", \"recipients\": [", f);
	for (size_t i = 0; ok && i < env->nrcpts; i++) {
		fputs(i ? ", {\"address\": " : "{\"address\": ", f);
		json_str(f, env->rcpts[i]);
		fputs(", \"notify\": ", f);
		json_str(f, env->dsn_notify ? env->dsn_notify[i] : NULL);
		fputc('}', f);
	}
	fputs("], \"received\": ", f);
	json_str(f, ok ? r : NULL);
	fputs(", \"listener\": ", f);
	json_str(f, env->listener);
	fputs(", \"role\": ", f);
	json_str(f, ok ? role_name(env->role) : NULL);
	fputs(", \"client\": ", f);
	json_str(f, env->client);
	fputs(", \"helo\": ", f);
	json_str(f, env->helo);
	fputs(", \"dsn_ret\": ", f);
	json_str(f, env->dsn_ret);
	fputs(", \"dsn_envid\": ", f);
	json_str(f, env->dsn_envid);
	if (headers != NULL) {
		fputs(", \"headers\": ", f);
		json_bytes(f, headers, hlen);
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
		cell(f, e->name, 12);
		if (e->damaged) {
			fprintf(f,
			        "(damaged: see `smimegate quarantine show "
			        "%s`)\n",
			        e->id);
			continue;
		}
		cli_iso_time(e->quarantined, t, sizeof(t));
		fprintf(f, "%-20s  ", t);
		cell(f, e->env.mail_from[0] ? e->env.mail_from : "<>", 32);
		fprintf(f, "%5zu  %10llu  ", e->env.nrcpts,
		        (unsigned long long)e->size);
		cell(f, e->rule, 20);
		put_str(f, e->reason, 80);
		fputc('\n', f);
	}
}

static int
q_fail(struct qcmd *c, enum sg_status st)
{
	char why[600];

	quarantine_error(c->q, why, sizeof(why));
	fprintf(stderr, "smimegate: %s: %s: %s\n", c->cmd, sg_status_name(st),
	        why);
	return sg_status_exit_code(st);
}

static int
do_list(struct qcmd *c)
{
	struct quarantine_info *v = NULL;
	size_t n = 0, damaged = 0;
	enum sg_status st;

	if ((st = quarantine_list(c->q, c->name, &v, &n)) != SG_OK)
		return q_fail(c, st);
	if (c->json) {
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
	        c->cmd, damaged, damaged == 1 ? "y" : "ies");
	return sg_status_exit_code(SG_ERR_IO);
}

/* ---- show ---- */

/* The header block of the message in FD (up to the empty line, at most
 * HEADERS_MAX bytes); *LEN its length.  NULL on a read error. */
static char *
read_headers(int fd, size_t *len)
{
	char *buf = malloc(HEADERS_MAX + 1);
	size_t n = 0;

	if (buf == NULL)
		return NULL;
	while (n < HEADERS_MAX) {
		ssize_t r = pread(fd, buf + n, HEADERS_MAX - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* the end of the header block: an empty line */
		if (buf[i] == '\n' &&
		    (i == 0 || buf[i - 1] == '\n' ||
		     (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n')))) {
			n = i + 1;
			break;
		}
	}
	*len = n;
	return buf;
}

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
	put_str(f, e->rule, 0);
	fputs("\nreason:      ", f);
	put_str(f, e->reason, 0);
	fprintf(f, "\nsize:        %llu bytes\n", (unsigned long long)e->size);
	fputs("from:        <", f);
	put_str(f, env->mail_from, 0);
	fputs(">\n", f);
	for (size_t i = 0; i < env->nrcpts; i++) {
		fputs("to:          <", f);
		put_str(f, env->rcpts[i], 0);
		fputc('>', f);
		if (env->dsn_notify && env->dsn_notify[i]) {
			fputs(" NOTIFY=", f);
			put_str(f, env->dsn_notify[i], 0);
		}
		fputc('\n', f);
	}
	cli_iso_time(env->received, t, sizeof(t));
	fprintf(f, "received:    %s\n", t);
	fputs("listener:    ", f);
	put_str(f, env->listener, 0);
	if (role_name(env->role))
		fprintf(f, " (%s)", role_name(env->role));
	fputs("\nclient:      ", f);
	put_str(f, env->client, 0);
	fputs(" (helo ", f);
	put_str(f, env->helo, 0);
	fputs(")\n", f);
	if (env->dsn_ret || env->dsn_envid) {
		fputs("dsn:         RET=", f);
		put_str(f, env->dsn_ret, 0);
		fputs(" ENVID=", f);
		put_str(f, env->dsn_envid, 0);
		fputc('\n', f);
	}
	fputs("\n", f);
	put_text(f, headers, hlen, 0, 1);
	if (hlen > 0 && headers[hlen - 1] != '\n')
		fputs("\n[headers cut]\n", f);
}

/* Writes all of FD to stdout; -1 on error. */
static int
copy_out(int fd)
{
	char buf[65536];
	off_t off = 0;

	for (;;) {
		ssize_t r = pread(fd, buf, sizeof(buf), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		for (ssize_t done = 0, w; done < r; done += w)
			if ((w = write(STDOUT_FILENO, buf + done,
			               (size_t)(r - done))) <= 0) {
				if (w < 0 && errno == EINTR) {
					w = 0;
					continue;
				}
				return -1;
			}
		off += r;
	}
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

	if ((st = quarantine_show(c->q, c->ids[0], &e)) != SG_OK)
		return q_fail(c, st);
	if ((fd = quarantine_data_fd(c->q, e.id)) < 0) {
		rc = q_fail(c, errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO);
		goto out;
	}
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != e.size) {
		fprintf(stderr,
		        "smimegate: %s: io: %s: damaged: the message is not "
		        "the size its metadata says\n",
		        c->cmd, e.id);
		rc = sg_status_exit_code(SG_ERR_IO);
	} else if (c->raw) {
		fflush(stdout);
		if (copy_out(fd) < 0) {
			fprintf(stderr, "smimegate: %s: io: %s\n", c->cmd,
			        strerror(errno));
			rc = sg_status_exit_code(SG_ERR_IO);
		}
	} else if ((headers = read_headers(fd, &hlen)) == NULL) {
		fprintf(stderr, "smimegate: %s: io: reading %s: %s\n", c->cmd,
		        e.id, strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
	} else if (c->json) {
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

	for (int i = 0; i < c->nids; i++) {
		enum sg_status st = release
		                        ? quarantine_release(c->q, c->ids[i])
		                        : quarantine_delete(c->q, c->ids[i]);
		if (st == SG_OK) {
			printf("%s %s\n", release ? "released" : "deleted",
			       c->ids[i]);
		} else {
			int code = q_fail(c, st);
			if (code > rc)
				rc = code;
		}
	}
	return rc;
}

/* ---- the command ---- */

/* Options anywhere; the first argument left is the subcommand.  -1 to go
 * on, else an exit code. */
static int
parse(struct qcmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"spool", required_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"raw", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int o;

	snprintf(c->cmd, sizeof(c->cmd), "quarantine");
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			c->config = optarg;
			break;
		case 's':
			c->spool = optarg;
			break;
		case 'n':
			c->name = optarg;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'r':
			c->raw = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return cli_usage("quarantine",
			                 "unknown or incomplete option \"%s\"",
			                 argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage("quarantine", "give a command: list, show, "
		                               "release or delete");
	c->sub = argv[optind];
	snprintf(c->cmd, sizeof(c->cmd), "quarantine %s", c->sub);
	c->ids = argv + optind + 1;
	c->nids = argc - optind - 1;
	if ((c->config == NULL) == (c->spool == NULL))
		return cli_usage("quarantine", "give -c FILE or --spool DIR");
	return -1;
}

/* Checks the subcommand's arguments.  -1 to go on, else an exit code. */
static int
check_args(struct qcmd *c, const char *sub)
{
	int list = strcmp(sub, "list") == 0, show = strcmp(sub, "show") == 0;

	if (!list && !show && strcmp(sub, "release") != 0 &&
	    strcmp(sub, "delete") != 0)
		return cli_usage("quarantine",
		                 "unknown command \"%s\" (list, show, release, "
		                 "delete)",
		                 sub);
	if (c->name != NULL && !list)
		return cli_usage(c->cmd, "--name is for list");
	if (c->name != NULL && !quarantine_name_valid(c->name))
		return cli_usage(c->cmd,
		                 "\"%s\" is not a quarantine name (letters, "
		                 "digits, _ and -, at most %d)",
		                 c->name, QUARANTINE_NAME_MAX);
	if (c->json && !list && !show)
		return cli_usage(c->cmd, "--json is for list and show");
	if (c->raw && (!show || c->json))
		return cli_usage(c->cmd, "--raw is for show, without --json");
	if (list && c->nids != 0)
		return cli_usage(c->cmd, "list takes no ID");
	if (show && c->nids != 1)
		return cli_usage(c->cmd, "give one ID");
	if (!list && c->nids < 1)
		return cli_usage(c->cmd, "give at least one ID");
	for (int i = 0; i < c->nids; i++)
		if (!quarantine_id_valid(c->ids[i]))
			return cli_usage(c->cmd,
			                 "\"%s\" is not a queue ID (%d "
			                 "characters, 0-9 and A-Z)",
			                 c->ids[i], SPOOL_ID_LEN);
	return -1;
}

/* Opens the quarantine area of --spool, or of the configuration's spool.
 * -1 to go on, else an exit code. */
static int
open_area(struct qcmd *c)
{
	struct cfg *cfg = NULL;
	char err[1024] = "";
	enum sg_status st;

	if (c->config != NULL &&
	    (st = cfg_load(c->config, &cfg, err, sizeof(err))) != SG_OK) {
		fprintf(stderr, "smimegate: %s: %s: %s\n", c->cmd,
		        sg_status_name(st), err);
		return sg_status_exit_code(st);
	}
	st = quarantine_open(cfg ? cfg->spool_dir : c->spool, &c->q, err,
	                     sizeof(err));
	cfg_free(cfg);
	if (st != SG_OK) {
		fprintf(stderr, "smimegate: %s: %s: %s\n", c->cmd,
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
	if ((rc = parse(&c, argc, argv)) != -1)
		return rc;
	if ((rc = check_args(&c, c.sub)) != -1 || (rc = open_area(&c)) != -1)
		return rc;
	if (strcmp(c.sub, "list") == 0)
		rc = do_list(&c);
	else if (strcmp(c.sub, "show") == 0)
		rc = do_show(&c);
	else
		rc = do_each(&c, strcmp(c.sub, "release") == 0);
	quarantine_close(c.q);
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "smimegate: %s: io: writing: %s\n", c.cmd,
		        strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
	}
	return rc;
}
