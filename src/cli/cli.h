/*
 * cli.h - what the command-line modules share.
 */
#ifndef SG_CLI_H
#define SG_CLI_H

#include <stdio.h>
#include <time.h>

#include "smimegate.h"

/* Exit codes of the CLI contract come from the status table; usage errors
 * are SG_ERR_USAGE. */

/* Prints "smimegate: CMD: reason" for ST (the handle's detail when CTX is
 * not NULL) and returns the exit code of ST. */
int cli_fail(struct sg_ctx *ctx, const char *cmd, enum sg_status st);
/* Prints a usage error and returns the usage exit code. */
int cli_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An output that appears only when the command succeeds: a temporary file
 * renamed over --out when --out is a regular file (or does not exist yet;
 * a symbolic link is followed, not replaced) -- unnamed until it is
 * complete, so that a killed command leaves nothing -- else spooled and copied
 * to stdout or to the device, FIFO or socket that --out names.  With DIRECT,
 * such a stream is written as the result is produced: for operations that
 * check everything before their first output byte (sign, encrypt,
 * decrypt), so that only an I/O error can fail after output began. */
struct cli_out {
	const char *path; /* NULL: stdout */
	char *file;       /* the regular file renamed over, NULL for a stream */
	char *tmp_path;
	int fd;      /* where the result is written */
	int dest_fd; /* the stream it is copied to, -1 for a file */
	int direct;
	int unnamed; /* fd is an O_TMPFILE file, named only when complete */
};
int cli_out_open(struct cli_out *o, const char *path, int direct);
/* Commits (rename or copy to stdout) when OK, else discards. */
int cli_out_close(struct cli_out *o, int ok);

/* T as "2024-01-01T00:00:00Z" (UTC) in BUF, "-" for 0; returns BUF. */
const char *cli_iso_time(time_t t, char *buf, size_t len);

/* ---- printing text that came from messages and clients (textout.c) ---- */

/* Writes N bytes of S for a terminal: what is not printable UTF-8
 * becomes '?' (tabs and newlines too, unless KEEP_LINES; a CR before a
 * newline is dropped then).  With MAX (not 0), a text of more than MAX
 * characters is cut to MAX - 3 and "...".  Returns the characters
 * written. */
size_t cli_put_text(FILE *f, const char *s, size_t n, size_t max,
                    int keep_lines);
/* The same for a string; "-" for NULL. */
size_t cli_put_str(FILE *f, const char *s, size_t max);
/* A table cell: S cut to WIDTH characters, padded to WIDTH + 2. */
void cli_cell(FILE *f, const char *s, size_t width);
/* Writes N bytes of S as a JSON string: controls escaped, invalid UTF-8
 * as U+FFFD. */
void cli_json_bytes(FILE *f, const char *s, size_t n);
/* The same for a string; null for NULL. */
void cli_json_str(FILE *f, const char *s);
#define CLI_HEADERS_MAX (256u << 10) /* bytes of headers `show` prints */
/* The header block of the message in FD (up to the empty line, at most
 * CLI_HEADERS_MAX bytes, NUL-terminated); *LEN its length.  NULL on a
 * read error. */
char *cli_read_headers(int fd, size_t *len);
/* Writes all of FD (from its start) to stdout; -1 on error. */
int cli_copy_out(int fd);
/* Flushes stdout: RC, or the I/O exit code (reason printed) when the
 * output could not be written and RC was 0. */
int cli_flushed(const char *cmd, int rc);

/* ---- the spool commands (envout.c) ---- */

/* What `quarantine` and `queue` take: [-c FILE | --spool DIR] [--json]
 * [--raw] [--VALUE_OPT X] SUBCOMMAND [ID ...], options anywhere. */
struct cli_spool_args {
	char cmd[32]; /* "queue list", for messages */
	const char *config, *spool;
	const char *value; /* the command's own option, or NULL */
	int json, raw;
	const char *sub; /* the subcommand */
	char **ids;      /* the arguments after it */
	int nids;
};
/* Parses for command NAME; --help prints USAGE; SUBS names the
 * subcommands in the message for a missing one.  -1 to go on, else an
 * exit code. */
int cli_spool_args(struct cli_spool_args *a, const char *name,
                   const char *value_opt, const char *usage, const char *subs,
                   int argc, char **argv);
/* The rules both share: --json for list and show, --raw for show
 * without --json, list takes no ID, show one, the others at least one
 * unless IDS_OPTIONAL; every ID a valid queue ID.  -1 to go on, else an
 * exit code. */
int cli_spool_check(const struct cli_spool_args *a, int ids_optional);

/* The spool directory of CONFIG (loaded; as root, the process then runs
 * as its `user`: privs.h), else SPOOL, into *DIR (malloc'd).  -1 to go
 * on, else an exit code (the reason printed). */
int cli_spool_dir(const char *cmd, const char *config, const char *spool,
                  char **dir);

struct spool_env;
/* "outgoing", "incoming" or NULL for a listener role (enum cfg_role). */
const char *cli_role_name(int role);
/* The envelope's fields as JSON members, each after ", ": mail_from,
 * recipients ([{address, notify}]), received, listener, role, client,
 * helo, dsn_ret, dsn_envid; with OK 0 (a damaged entry) recipients are
 * empty and received and role null. */
void cli_json_env(FILE *f, const struct spool_env *env, int ok);
/* The envelope as "from:", "to:", "received:", "listener:", "client:"
 * (and "dsn:") lines, aligned at column 13. */
void cli_print_env(FILE *f, const struct spool_env *env);
/* cli_print_env, an empty line, and the header block HEADERS (HLEN
 * octets, from cli_read_headers; "[headers cut]" when it was cut). */
void cli_print_env_headers(FILE *f, const struct spool_env *env,
                           const char *headers, size_t hlen);

/* Reads the first line of a passphrase file (caller wipes and frees). */
char *cli_read_pass(const char *path);

int cmd_sign(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_decrypt(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_quarantine(int argc, char **argv);
int cmd_queue(int argc, char **argv);
/* `directory lookup` (cmd_directory.c). */
int cmd_directory(int argc, char **argv);
/* `cert status` (cmd_revocation.c); every other `cert` subcommand goes
 * on to cmd_cert(). */
int cmd_cert_all(int argc, char **argv);

#endif
