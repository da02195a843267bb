/*
 * main.c - the smimegate command: dispatch to subcommands, and the helpers
 * they share (errors, atomic output, passphrase files).
 */
#include "cli/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SMIMEGATE_VERSION "0.1.0"

static const struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
    {"sign", cmd_sign, "sign a message (multipart/signed or opaque)"},
    {"encrypt", cmd_encrypt, "encrypt a message to recipients"},
    {"verify", cmd_verify, "verify a signed message"},
    {"decrypt", cmd_decrypt, "decrypt a message with our key"},
    {"store", cmd_store, "store init: create the key store"},
    {"cert", cmd_cert_all,
     "our certificates: create, csr, import, export, list, show, delete; "
     "status CERT: revocation status"},
    {"key", cmd_key,
     "partners' public keys: add, import, export, list, show, delete; "
     "harvested list|show|add|promote|delete"},
    {"serve", cmd_serve,
     "serve -c FILE: run the gateway (--demo DIR: the make run demo)"},
    {"check-config", cmd_check_config,
     "check-config -c FILE: validate a configuration without starting"},
    {"ca", cmd_ca, "trust anchors: import, list, show, delete, trust-system"},
    {"quarantine", cmd_quarantine,
     "quarantined messages: list, show, release, delete"},
    {"queue", cmd_queue,
     "the delivery queue: list, show, flush, delete, bounce"},
    {"directory", cmd_directory,
     "directory lookup -c FILE ADDR...: certificates from LDAP"},
    {"demo", cmd_demo,
     "create throw-away certificates and show every operation"},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: smimegate COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nsmimegate COMMAND --help shows a command's options.\n");
}

int
cli_fail(struct sg_ctx *ctx, const char *cmd, enum sg_status st)
{
	fprintf(stderr, "smimegate: %s: %s: %s\n", cmd, sg_status_name(st),
	        ctx ? sg_ctx_error(ctx) : sg_status_text(st));
	return sg_status_exit_code(st);
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smimegate: %s: %s: ", cmd,
	        sg_status_name(SG_ERR_USAGE));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see smimegate %s --help)\n", cmd);
	return sg_status_exit_code(SG_ERR_USAGE);
}

/* Opens the stream that --out PATH names when it is not a regular file
 * (/dev/null, /dev/stdout, a FIFO): replacing it with a renamed file would
 * destroy it.  Returns 1 and sets O->dest_fd for a stream, 0 for a regular
 * or new file (O->file set), -1 on error. */
static int
out_target(struct cli_out *o, const char *path)
{
	struct stat sb;
	char *real;

	if (stat(path, &sb) == -1) {
		if (errno != ENOENT)
			return -1;
		o->file = strdup(path); /* new, or a dangling link: create */
		return o->file ? 0 : -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		if (S_ISDIR(sb.st_mode)) {
			errno = EISDIR;
			return -1;
		}
		o->dest_fd = open(path, O_WRONLY | O_CLOEXEC);
		return o->dest_fd == -1 ? -1 : 1;
	}
	/* A link to a regular file: replace the file, keep the link. */
	if ((real = realpath(path, NULL)) == NULL)
		return -1;
	o->file = real;
	return 0;
}

/*
 * A regular --out file is written as an unnamed file in its directory
 * (O_TMPFILE), given a name only when complete and fsync'd, then renamed
 * over the path: a command killed half-way, even by SIGKILL, leaves
 * nothing behind.  Where the file system has no O_TMPFILE (NFS, some FUSE)
 * a named PATH.tmpXXXXXX file is used instead.  The name a temporary file
 * has while it exists is in pending_tmp, for the signal handler.
 */
static char *volatile pending_tmp;

static void
on_fatal_signal(int sig)
{
	char *p = pending_tmp;

	if (p != NULL)
		(void)unlink(p);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* Blocks (BLOCK) or restores the fatal signals around a change of
 * pending_tmp, installing the handler the first time. */
static void
fatal_signals_block(int block, sigset_t *saved)
{
	static int installed;
	sigset_t set;

	if (!installed) {
		struct sigaction sa, old;

		installed = 1;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_fatal_signal;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(int); i++)
			/* keep a signal ignored (nohup) ignored */
			if (sigaction(fatal_signals[i], NULL, &old) == 0 &&
			    old.sa_handler != SIG_IGN)
				sigaction(fatal_signals[i], &sa, NULL);
	}
	if (!block) {
		sigprocmask(SIG_SETMASK, saved, NULL);
		return;
	}
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(int); i++)
		sigaddset(&set, fatal_signals[i]);
	sigprocmask(SIG_BLOCK, &set, saved);
}

/* An unnamed file in FILE's directory; -1 with errno, EOPNOTSUPP when the
 * file system cannot. */
static int
open_unnamed(const char *file)
{
	const char *slash = strrchr(file, '/');
	char *dir;
	int fd, e;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == file)
		dir = strdup("/");
	else
		dir = strndup(file, (size_t)(slash - file));
	if (dir == NULL)
		return -1;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	e = errno;
	free(dir);
	if (fd == -1 && (e == EISDIR || e == EINVAL || e == EOPNOTSUPP))
		e = EOPNOTSUPP; /* kernels and file systems without it */
	errno = e;
	return fd;
}

int
cli_out_open(struct cli_out *o, const char *path, int direct)
{
	sigset_t saved;
	int kind = 1;

	o->path = path;
	o->file = NULL;
	o->tmp_path = NULL;
	o->unnamed = 0;
	o->dest_fd = STDOUT_FILENO;
	if (path != NULL && (kind = out_target(o, path)) == -1)
		return -1;
	o->direct = kind == 1 && direct;
	if (o->direct) {
		o->fd = o->dest_fd;
		return 0;
	}
	if (kind == 1) {
		/* A stream: spool, copy only on success. */
		o->fd = sg_tmpfile_open(NULL);
		return o->fd == -1 ? -1 : 0;
	}
	o->dest_fd = -1;
	if ((o->fd = open_unnamed(o->file)) != -1) {
		o->unnamed = 1;
		return 0;
	}
	if (errno != EOPNOTSUPP)
		goto fail;
	if (asprintf(&o->tmp_path, "%s.tmpXXXXXX", o->file) == -1) {
		o->tmp_path = NULL;
		goto fail;
	}
	fatal_signals_block(1, &saved);
	if ((o->fd = mkstemp(o->tmp_path)) != -1)
		pending_tmp = o->tmp_path;
	fatal_signals_block(0, &saved);
	if (o->fd == -1) {
		free(o->tmp_path);
		o->tmp_path = NULL;
		goto fail;
	}
	return 0;
fail:
	free(o->file);
	o->file = NULL;
	return -1;
}

static int
copy_fd(int fd, int to)
{
	char buf[65536];
	ssize_t n, w;

	if (lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t done = 0; done < n; done += w)
			if ((w = write(to, buf + done, (size_t)(n - done))) <=
			    0)
				return -1;
	return n < 0 ? -1 : 0;
}

/* Gives the complete unnamed file FD the name TMP (for the rename). */
static int
name_unnamed(int fd, const char *tmp)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	/* no /proc (a chroot): this way needs CAP_DAC_READ_SEARCH */
	return linkat(fd, "", AT_FDCWD, tmp, AT_EMPTY_PATH);
}

int
cli_out_close(struct cli_out *o, int ok)
{
	sigset_t saved;
	int rc = 0;

	if (o->file == NULL) {
		if (!o->direct) {
			if (ok)
				rc = copy_fd(o->fd, o->dest_fd);
			close(o->fd);
		}
		if (o->dest_fd != STDOUT_FILENO && close(o->dest_fd) == -1)
			rc = -1;
		return rc;
	}
	if (ok && fsync(o->fd) == -1)
		rc = -1;
	fatal_signals_block(1, &saved);
	if (ok && rc == 0 && o->unnamed) {
		/* one name per process at a time: a leftover of a killed
		 * process with our PID is garbage */
		if (asprintf(&o->tmp_path, "%s.tmp%ld", o->file,
		             (long)getpid()) == -1) {
			o->tmp_path = NULL;
			rc = -1;
		} else {
			(void)unlink(o->tmp_path);
			if ((rc = name_unnamed(o->fd, o->tmp_path)) == 0)
				pending_tmp = o->tmp_path;
		}
	}
	if (ok && rc == 0 && rename(o->tmp_path, o->file) == -1)
		rc = -1;
	if (o->tmp_path != NULL && (!ok || rc == -1)) {
		int e = errno;

		(void)unlink(o->tmp_path);
		errno = e;
	}
	pending_tmp = NULL;
	fatal_signals_block(0, &saved);
	close(o->fd);
	free(o->tmp_path);
	o->tmp_path = NULL;
	free(o->file);
	o->file = NULL;
	return rc;
}

const char *
cli_iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
	return buf;
}

char *
cli_read_pass(const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return strdup(""); /* an empty file: an empty passphrase */
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "smimegate: usage: smimegate COMMAND [OPTIONS] "
		                "(sign, encrypt, verify, decrypt, store, cert, "
		                "key, ca, demo; "
		                "smimegate --help)\n");
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("smimegate %s (%s)\n", SMIMEGATE_VERSION,
		       sg_library_versions());
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr,
	        "smimegate: usage: unknown command \"%s\" (sign, encrypt, "
	        "verify, decrypt, store, cert, key, ca, demo; smimegate "
	        "--help)\n",
	        argv[1]);
	return sg_status_exit_code(SG_ERR_USAGE);
}
