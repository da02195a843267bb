/*
 * oneshot.c - sign, encrypt, verify and decrypt one message: the exact CLI
 * contract that scripts, Postfix pipes and bulk senders rely on.
 *
 *   exit 0  done (verify: valid and trusted at that time)
 *   exit 1  the security operation failed (reason on stderr)
 *   exit 2  usage error or unreadable / malformed input
 *
 * Output appears only on success: a temporary file renamed over --out, or
 * copied to stdout.  With --in-dir and --out-dir, one process takes every
 * message of a directory (run_batch): the keys are loaded once, and the
 * exit code is the worst of the messages'.
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
	OPT_IN = 256,
	OPT_OUT,
	OPT_IN_DIR,
	OPT_OUT_DIR,
	OPT_JOBS,
	OPT_SIGNER,
	OPT_KEY,
	OPT_CERTFILE,
	OPT_OPAQUE,
	OPT_DIGEST,
	OPT_RECIPIENT,
	OPT_CIPHER,
	OPT_OAEP,
	OPT_TRUST,
	OPT_AT,
	OPT_JSON,
	OPT_CERT,
	OPT_P12,
	OPT_PASS_FILE,
	OPT_CRL,
	OPT_CHECK_REVOCATION,
	OPT_REVOCATION_HARD,
	OPT_REVOCATION_TIMEOUT,
	OPT_HELP,
};

#define MAX_RECIPIENTS 1000
#define MAX_CRLS       16
#define MAX_JOBS       256

struct opts {
	const char *in, *out;
	const char *in_dir, *out_dir;
	int jobs;
	const char *signer, *key, *certfile, *digest;
	int opaque;
	const char *recipients[MAX_RECIPIENTS];
	int nrecipients;
	const char *cipher;
	int oaep;
	const char *trust, *at;
	int json;
	const char *cert, *p12, *pass_file;
	const char *crls[MAX_CRLS + 1]; /* NULL-terminated */
	int ncrls;
	int check_revocation, revocation_hard;
	const char *revocation_timeout;
};

static const struct option all_options[] = {
    {"in", required_argument, NULL, OPT_IN},
    {"out", required_argument, NULL, OPT_OUT},
    {"in-dir", required_argument, NULL, OPT_IN_DIR},
    {"out-dir", required_argument, NULL, OPT_OUT_DIR},
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"signer", required_argument, NULL, OPT_SIGNER},
    {"key", required_argument, NULL, OPT_KEY},
    {"certfile", required_argument, NULL, OPT_CERTFILE},
    {"opaque", no_argument, NULL, OPT_OPAQUE},
    {"digest", required_argument, NULL, OPT_DIGEST},
    {"recipient", required_argument, NULL, OPT_RECIPIENT},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"oaep", no_argument, NULL, OPT_OAEP},
    {"trust", required_argument, NULL, OPT_TRUST},
    {"at", required_argument, NULL, OPT_AT},
    {"json", no_argument, NULL, OPT_JSON},
    {"cert", required_argument, NULL, OPT_CERT},
    {"p12", required_argument, NULL, OPT_P12},
    {"pass-file", required_argument, NULL, OPT_PASS_FILE},
    {"crl", required_argument, NULL, OPT_CRL},
    {"check-revocation", no_argument, NULL, OPT_CHECK_REVOCATION},
    {"revocation-hard-fail", no_argument, NULL, OPT_REVOCATION_HARD},
    {"revocation-timeout", required_argument, NULL, OPT_REVOCATION_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const usages[] = {
    "sign --signer CERT.pem --key KEY.pem [--certfile CHAIN.pem] "
    "[--opaque] [--digest sha256|sha384|sha512] [--pass-file FILE] "
    "[--in FILE] [--out FILE] [--in-dir DIR --out-dir DIR [--jobs N]]",
    "encrypt --recipient CERT.pem [--recipient CERT2.pem ...] "
    "[--cipher aes-128-cbc|aes-256-cbc|aes-128-gcm|aes-256-gcm] [--oaep] "
    "[--in FILE] [--out FILE] [--in-dir DIR --out-dir DIR [--jobs N]]",
    "verify --trust CAFILE.pem [--at 2024-01-01T00:00:00Z] [--json] "
    "[--crl FILE ...] [--check-revocation] [--revocation-hard-fail] "
    "[--revocation-timeout SECONDS] [--in FILE] [--out FILE] "
    "[--in-dir DIR [--out-dir DIR] [--jobs N]]",
    "decrypt (--cert CERT.pem --key KEY.pem | --p12 FILE) "
    "[--pass-file FILE] [--in FILE] [--out FILE] "
    "[--in-dir DIR --out-dir DIR [--jobs N]]",
};

static const char help_common[] =
    "  --in FILE, --out FILE   one message (default stdin, stdout); a file\n"
    "                          --out is replaced only by a complete result\n"
    "  --in-dir DIR --out-dir OUT\n"
    "                          every file of DIR, each to OUT/NAME, keys\n"
    "                          loaded once; a summary line ends stderr\n"
    "  --jobs N                N worker processes for --in-dir (0: one per\n"
    "                          CPU)\n"
    "\n"
    "exit: 0 done; 1 the security operation failed (signature, trust,\n"
    "key, recipient); 2 usage error or unreadable or malformed input.\n"
    "A batch exits with the worst of its messages'.\n";

/* Which options each command takes (a string of OPT_ offsets). */
static int
allowed(const char *cmd, int opt)
{
	static const int sign[] = {OPT_SIGNER, OPT_KEY,    OPT_CERTFILE,
	                           OPT_OPAQUE, OPT_DIGEST, OPT_PASS_FILE,
	                           0};
	static const int encrypt[] = {OPT_RECIPIENT, OPT_CIPHER, OPT_OAEP, 0};
	static const int verify[] = {OPT_TRUST,
	                             OPT_AT,
	                             OPT_JSON,
	                             OPT_CRL,
	                             OPT_CHECK_REVOCATION,
	                             OPT_REVOCATION_HARD,
	                             OPT_REVOCATION_TIMEOUT,
	                             0};
	static const int decrypt[] = {OPT_CERT, OPT_KEY, OPT_P12, OPT_PASS_FILE,
	                              0};
	const int *set = strcmp(cmd, "sign") == 0      ? sign
	                 : strcmp(cmd, "encrypt") == 0 ? encrypt
	                 : strcmp(cmd, "verify") == 0  ? verify
	                                               : decrypt;

	if (opt == OPT_IN || opt == OPT_OUT || opt == OPT_IN_DIR ||
	    opt == OPT_OUT_DIR || opt == OPT_JOBS || opt == OPT_HELP)
		return 1;
	for (; *set; set++)
		if (*set == opt)
			return 1;
	return 0;
}

static const char *
usage_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof(usages) / sizeof(*usages); i++)
		if (strncmp(usages[i], cmd, strlen(cmd)) == 0)
			return usages[i];
	return "";
}

/* Parses the options of CMD; returns -1 to go on, else an exit code. */
static int
parse(const char *cmd, int argc, char **argv, struct opts *o)
{
	int c, li, jobs_given = 0;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((li = -1, c = getopt_long(argc, argv, "", all_options, &li)) !=
	       -1) {
		if (c == '?' || c == ':')
			return cli_usage(cmd,
			                 "unknown or incomplete option "
			                 "\"%s\"",
			                 argv[optind - 1]);
		if (!allowed(cmd, c))
			/* named from the table: argv[optind - 1] may be
			 * the option's value */
			return cli_usage(cmd, "option \"--%s\" does not apply",
			                 li >= 0 ? all_options[li].name : "?");
		switch (c) {
		case OPT_IN:
			o->in = optarg;
			break;
		case OPT_OUT:
			o->out = optarg;
			break;
		case OPT_IN_DIR:
			o->in_dir = optarg;
			break;
		case OPT_OUT_DIR:
			o->out_dir = optarg;
			break;
		case OPT_JOBS: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 ||
			    v > MAX_JOBS)
				return cli_usage(cmd,
				                 "--jobs wants 0 (one per CPU) "
				                 "to %d, not \"%s\"",
				                 MAX_JOBS, optarg);
			if (v == 0 && (v = sysconf(_SC_NPROCESSORS_ONLN)) < 1)
				v = 1;
			o->jobs = v > MAX_JOBS ? MAX_JOBS : (int)v;
			jobs_given = 1;
			break;
		}
		case OPT_SIGNER:
			o->signer = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_CERTFILE:
			o->certfile = optarg;
			break;
		case OPT_OPAQUE:
			o->opaque = 1;
			break;
		case OPT_DIGEST:
			o->digest = optarg;
			break;
		case OPT_RECIPIENT:
			if (o->nrecipients == MAX_RECIPIENTS)
				return cli_usage(cmd, "more than %d recipients",
				                 MAX_RECIPIENTS);
			o->recipients[o->nrecipients++] = optarg;
			break;
		case OPT_CIPHER:
			o->cipher = optarg;
			break;
		case OPT_OAEP:
			o->oaep = 1;
			break;
		case OPT_TRUST:
			o->trust = optarg;
			break;
		case OPT_AT:
			o->at = optarg;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_CERT:
			o->cert = optarg;
			break;
		case OPT_P12:
			o->p12 = optarg;
			break;
		case OPT_PASS_FILE:
			o->pass_file = optarg;
			break;
		case OPT_CRL:
			if (o->ncrls == MAX_CRLS)
				return cli_usage(
				    cmd, "more than %d --crl files", MAX_CRLS);
			o->crls[o->ncrls++] = optarg;
			break;
		case OPT_CHECK_REVOCATION:
			o->check_revocation = 1;
			break;
		case OPT_REVOCATION_HARD:
			o->revocation_hard = 1;
			break;
		case OPT_REVOCATION_TIMEOUT:
			o->revocation_timeout = optarg;
			break;
		case OPT_HELP:
			printf("usage: smimegate %s\n\n%s", usage_of(cmd),
			       help_common);
			return 0;
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument \"%s\"",
		                 argv[optind]);
	if (o->in_dir != NULL && (o->in != NULL || o->out != NULL))
		return cli_usage(cmd, "--in-dir and --out-dir go instead of "
		                      "--in and --out");
	if (o->out_dir != NULL && o->in_dir == NULL)
		return cli_usage(cmd, "--out-dir goes with --in-dir");
	if (jobs_given && o->in_dir == NULL)
		return cli_usage(cmd, "--jobs goes with --in-dir");
	if (o->in_dir != NULL && o->out_dir == NULL &&
	    !(strcmp(cmd, "verify") == 0 && o->json))
		return cli_usage(cmd, "--in-dir wants --out-dir%s",
		                 strcmp(cmd, "verify") == 0 ? " (or --json)"
		                                            : "");
	return -1;
}

/* Everything one command holds, released in one place. */
struct job {
	const char *cmd;
	const char *label; /* CMD, or "CMD: NAME" for a file of a batch */
	const char *name;  /* the batch file, NULL for one message */
	struct sg_ctx *ctx;
	char *pass;
	int want_out; /* write the resulting message */
	int direct;   /* see cli_out_open() */
	/* The current message. */
	struct sg_msg *msg;
	struct cli_out out;
	struct sg_sink sink; /* writes to out.fd */
	int out_open;
	int in_fd; /* closed at the end, -1 for stdin */
	enum sg_status st;
	char why[512]; /* the reason of a failure, "" */
};

/* The work of a command on the job's current message: sets j->st and
 * returns 0, or reports the failure and returns its exit code. */
typedef int (*one_fn)(struct job *j, void *arg);
/* Called after each message, whatever became of it (verify --json). */
typedef void (*done_fn)(struct job *j, void *arg);

static int
job_start(struct job *j, const char *cmd, const struct opts *o)
{
	memset(j, 0, sizeof(*j));
	j->cmd = j->label = cmd;
	j->in_fd = -1;
	j->want_out = 1;
	j->direct = strcmp(cmd, "verify") != 0;
	if (sg_ctx_new(&j->ctx) != SG_OK)
		return cli_fail(NULL, cmd, SG_ERR_NOMEM);
	if (o->pass_file != NULL &&
	    (j->pass = cli_read_pass(o->pass_file)) == NULL) {
		fprintf(stderr, "smimegate: %s: usage: cannot read %s: %s\n",
		        cmd, o->pass_file, strerror(errno));
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	return -1;
}

static int
job_end(struct job *j, int rc)
{
	if (j->pass != NULL) {
		explicit_bzero(j->pass, strlen(j->pass));
		free(j->pass);
	}
	sg_ctx_free(j->ctx);
	return rc;
}

/* Reports the current message's failure ST with its reason (kept for
 * verify --json); returns the exit code. */
static int __attribute__((format(printf, 3, 4)))
msg_fail(struct job *j, enum sg_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->why, sizeof(j->why), fmt, ap);
	va_end(ap);
	j->st = st;
	fprintf(stderr, "smimegate: %s: %s: %s\n", j->label, sg_status_name(st),
	        j->why);
	return sg_status_exit_code(st);
}

/* The result of the library call that set j->st. */
static int
msg_result(struct job *j)
{
	return j->st == SG_OK ? 0
	                      : msg_fail(j, j->st, "%s", sg_ctx_error(j->ctx));
}

/* An I/O error about PATH on the current message. */
static int
msg_io_error(struct job *j, const char *what, const char *path)
{
	return msg_fail(j, SG_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

/* Parses the message on IN_FD and opens its output OUT (NULL: stdout).
 * -1 to go on, else an exit code. */
static int
msg_open(struct job *j, int in_fd, const char *out)
{
	if ((j->st = sg_msg_open_fd(j->ctx, in_fd, &j->msg)) != SG_OK)
		return msg_result(j);
	if (!j->want_out)
		return -1;
	if (cli_out_open(&j->out, out, j->direct) == -1)
		return msg_io_error(j, "cannot create",
		                    out ? out : "a temporary file");
	j->out_open = 1;
	sg_sink_fd(&j->sink, &j->out.fd);
	return -1;
}

/* Ends the current message: commits its output when RC is 0. */
static int
msg_close(struct job *j, int rc)
{
	if (j->out_open && cli_out_close(&j->out, rc == 0) == -1 && rc == 0)
		rc = msg_fail(j, SG_ERR_IO, "cannot write the output: %s",
		              strerror(errno));
	j->out_open = 0;
	sg_msg_free(j->msg);
	j->msg = NULL;
	if (j->in_fd != -1)
		close(j->in_fd);
	j->in_fd = -1;
	return rc;
}

/* One message from --in (or stdin) to --out (or stdout).  The input is
 * opened after the keys, so that a bad key is reported before stdin is
 * read. */
static int
run_one(struct job *j, const struct opts *o, one_fn fn, done_fn done, void *arg)
{
	int fd = STDIN_FILENO, rc;

	j->st = SG_OK;
	j->why[0] = '\0';
	if (o->in != NULL && (fd = open(o->in, O_RDONLY | O_CLOEXEC)) == -1)
		rc = msg_io_error(j, "cannot open", o->in);
	else {
		j->in_fd = o->in ? fd : -1;
		if ((rc = msg_open(j, fd, o->out)) == -1)
			rc = fn(j, arg);
		rc = msg_close(j, rc);
	}
	if (done != NULL)
		done(j, arg);
	return rc;
}

/* A batch takes the visible entries of the input directory; directories
 * are passed over without a word (a "done/" beside the mail is common). */
static int
batch_entry(const struct dirent *d)
{
	return d->d_name[0] != '.' && d->d_type != DT_DIR;
}

/* NAME with control characters shown as '?', so that a file name cannot
 * forge lines on stderr. */
static void
printable(char *dst, size_t cap, const char *cmd, const char *name)
{
	size_t n = (size_t)snprintf(dst, cap, "%s: %s", cmd, name);

	for (size_t i = strlen(cmd) + 2; i < n && i < cap; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

/* One file of a batch: DFD/NAME to OUT_DIR/NAME.  Returns its exit code,
 * or -1 when the entry is not a message (a link to a directory). */
static int
batch_file(struct job *j, const struct opts *o, int dfd, const char *name,
           one_fn fn, void *arg)
{
	struct stat sb;
	char *out = NULL;
	int fd, rc;

	/* O_NONBLOCK: a FIFO in the directory must not hang the batch. */
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return msg_io_error(j, "cannot open", name);
	if (fstat(fd, &sb) == -1)
		sb.st_mode = 0;
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		if (S_ISDIR(sb.st_mode))
			return -1;
		return msg_fail(j, SG_ERR_IO, "not a regular file, left alone");
	}
	if (o->out_dir != NULL &&
	    asprintf(&out, "%s/%s", o->out_dir, name) == -1) {
		close(fd);
		return msg_fail(j, SG_ERR_NOMEM, "%s",
		                sg_status_text(SG_ERR_NOMEM));
	}
	j->in_fd = fd;
	if ((rc = msg_open(j, fd, out)) == -1)
		rc = fn(j, arg);
	rc = msg_close(j, rc);
	free(out);
	return rc;
}
/* What a batch (or one worker of it) did. */
struct batch_count {
	int nmsg, nfail, worst;
};

/* Where a batch loop takes the index of its next entry: a count from 0
 * to N, or (FD not -1) the indices a --jobs parent hands out on a pipe. */
struct batch_src {
	int fd;
	int next, n;
};

static int
batch_next(struct batch_src *src)
{
	int i;
	ssize_t r;

	if (src->fd == -1)
		return src->next < src->n ? src->next++ : -1;
	/* the parent writes whole ints, and a pipe write that small is
	 * atomic: a read gets all of one or nothing (EOF: no more) */
	while ((r = read(src->fd, &i, sizeof(i))) == -1 && errno == EINTR)
		;
	return r == sizeof(i) && i >= 0 && i < src->n ? i : -1;
}

/* The entries of ENTS that SRC hands out, counted into C. */
static void
batch_loop(struct job *j, const struct opts *o, int dfd, struct dirent **ents,
           struct batch_src *src, one_fn fn, done_fn done, void *arg,
           struct batch_count *c)
{
	char label[300];
	int i, rc;

	while ((i = batch_next(src)) != -1) {
		printable(label, sizeof(label), j->cmd, ents[i]->d_name);
		j->label = label;
		j->name = ents[i]->d_name;
		j->st = SG_OK;
		j->why[0] = '\0';
		rc = batch_file(j, o, dfd, ents[i]->d_name, fn, arg);
		if (rc == -1)
			continue;
		c->nmsg++;
		c->nfail += rc != 0;
		c->worst = rc > c->worst ? rc : c->worst;
		if (done != NULL)
			done(j, arg);
	}
	j->label = j->cmd;
	j->name = NULL;
}

/* Hands out the indices 0 to N - 1 on FD, then closes it.  -1 when the
 * workers stopped reading (all dead) before the last. */
static int
batch_hand_out(int fd, int n)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	int rc = 0;

	/* a pipe whose readers are gone: EPIPE, not death by SIGPIPE */
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	for (int i = 0; i < n && rc == 0; i++) {
		ssize_t w;

		while ((w = write(fd, &i, sizeof(i))) == -1 && errno == EINTR)
			;
		if (w != sizeof(i))
			rc = -1;
	}
	close(fd);
	sigaction(SIGPIPE, &old, NULL);
	return rc;
}

/*
 * --jobs N: N worker processes, forked after the keys are loaded, take
 * the messages one at a time from a pipe this process fills with their
 * indices (so a worker on a big message does not hold up the rest), and
 * send their counts back on a pipe each.  A worker that dies loses only
 * the message it was on.  Each line a worker prints is one write, so
 * lines of different messages interleave but never mix; they come in the
 * order the messages finish.  A worker dies with this process
 * (PR_SET_PDEATHSIG).
 */
static void
batch_parallel(struct job *j, const struct opts *o, int dfd,
               struct dirent **ents, int n, one_fn fn, done_fn done, void *arg,
               struct batch_count *c)
{
	int jobs = o->jobs < n ? o->jobs : n, started = 0, work[2];
	struct batch_src serial = {.fd = -1, .n = n};
	pid_t pids[MAX_JOBS];
	int fds[MAX_JOBS];
	pid_t parent = getpid();

	if (pipe2(work, O_CLOEXEC) == -1) {
		fprintf(stderr,
		        "smimegate: %s: cannot start workers: %s; "
		        "going on alone\n",
		        j->cmd, strerror(errno));
		batch_loop(j, o, dfd, ents, &serial, fn, done, arg, c);
		return;
	}
	fflush(stdout);
	fflush(stderr);
	for (int k = 0; k < jobs; k++) {
		int p[2] = {-1, -1};

		pids[k] = -1;
		fds[k] = -1;
		if (pipe2(p, O_CLOEXEC) == -1 || (pids[k] = fork()) == -1) {
			int e = errno;

			if (p[0] != -1) {
				close(p[0]);
				close(p[1]);
			}
			fprintf(stderr,
			        "smimegate: %s: cannot start worker %d: %s\n",
			        j->cmd, k + 1, strerror(e));
			continue;
		}
		if (pids[k] == 0) {
			struct batch_count mine = {0};
			struct batch_src src = {.fd = work[0], .n = n};

			close(p[0]);
			close(work[1]);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(2);
			batch_loop(j, o, dfd, ents, &src, fn, done, arg, &mine);
			fflush(stdout);
			_exit(write(p[1], &mine, sizeof(mine)) == sizeof(mine)
			          ? 0
			          : 2);
		}
		started++;
		close(p[1]);
		fds[k] = p[0];
	}
	close(work[0]);
	if (started == 0) {
		close(work[1]);
		fprintf(stderr,
		        "smimegate: %s: no worker started; going on "
		        "alone\n",
		        j->cmd);
		batch_loop(j, o, dfd, ents, &serial, fn, done, arg, c);
		return;
	}
	if (batch_hand_out(work[1], n) == -1) {
		fprintf(stderr,
		        "smimegate: %s: the workers stopped taking "
		        "messages; not all are done\n",
		        j->cmd);
		c->worst = sg_status_exit_code(SG_ERR_IO);
	}
	for (int k = 0; k < jobs; k++) {
		struct batch_count got;
		int status = 0;

		if (pids[k] <= 0)
			continue;
		if (read(fds[k], &got, sizeof(got)) == sizeof(got)) {
			c->nmsg += got.nmsg;
			c->nfail += got.nfail;
			c->worst = got.worst > c->worst ? got.worst : c->worst;
		}
		while (waitpid(pids[k], &status, 0) == -1 && errno == EINTR)
			;
		close(fds[k]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr,
			        "smimegate: %s: worker %d ended abnormally (%s "
			        "%d); the message it was on is not done\n",
			        j->cmd, k + 1,
			        WIFSIGNALED(status) ? "signal" : "exit",
			        WIFSIGNALED(status) ? WTERMSIG(status)
			                            : WEXITSTATUS(status));
			c->worst = sg_status_exit_code(SG_ERR_IO);
		}
	}
}

/* Opens directory PATH (for --in-dir or --out-dir); -1 on error, reported. */
static int
open_dir(const char *cmd, const char *opt, const char *path, struct stat *sb)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 || fstat(fd, sb) == -1) {
		fprintf(stderr, "smimegate: %s: io: %s %s: %s\n", cmd, opt,
		        path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Every message in --in-dir, in byte order of the names, each to the file
 * of the same name in --out-dir: one process, one key load, for many
 * messages.  Each output appears (atomically) only when its message
 * succeeded, as with --out; the output directory is synced once at the
 * end.  Returns the worst exit code of all the messages.
 */
static int
run_batch(struct job *j, const struct opts *o, one_fn fn, done_fn done,
          void *arg)
{
	struct dirent **ents = NULL;
	struct stat in_sb, out_sb;
	struct batch_count c = {0};
	int in_dfd, out_dfd = -1, n;

	if ((in_dfd = open_dir(j->cmd, "--in-dir", o->in_dir, &in_sb)) == -1)
		return sg_status_exit_code(SG_ERR_IO);
	if (o->out_dir != NULL &&
	    (out_dfd = open_dir(j->cmd, "--out-dir", o->out_dir, &out_sb)) ==
	        -1) {
		close(in_dfd);
		return sg_status_exit_code(SG_ERR_IO);
	}
	if (out_dfd != -1 && in_sb.st_dev == out_sb.st_dev &&
	    in_sb.st_ino == out_sb.st_ino) {
		close(in_dfd);
		close(out_dfd);
		return cli_usage(j->cmd,
		                 "--in-dir and --out-dir are the same "
		                 "directory: outputs would be taken for "
		                 "messages");
	}
	if ((n = scandirat(in_dfd, ".", &ents, batch_entry, alphasort)) == -1) {
		fprintf(stderr, "smimegate: %s: io: cannot read %s: %s\n",
		        j->cmd, o->in_dir, strerror(errno));
		c.worst = sg_status_exit_code(SG_ERR_IO);
		n = 0;
	}
	if (o->jobs > 1 && n > 1)
		batch_parallel(j, o, in_dfd, ents, n, fn, done, arg, &c);
	else {
		struct batch_src serial = {.fd = -1, .n = n};

		batch_loop(j, o, in_dfd, ents, &serial, fn, done, arg, &c);
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	j->label = j->cmd;
	j->name = NULL;
	if (out_dfd != -1 && fsync(out_dfd) == -1 && c.nmsg > c.nfail) {
		fprintf(stderr, "smimegate: %s: io: cannot sync %s: %s\n",
		        j->cmd, o->out_dir, strerror(errno));
		c.worst = sg_status_exit_code(SG_ERR_IO);
	}
	fprintf(stderr, "smimegate: %s: %d message%s: %d done, %d failed\n",
	        j->cmd, c.nmsg, c.nmsg == 1 ? "" : "s", c.nmsg - c.nfail,
	        c.nfail);
	close(in_dfd);
	if (out_dfd != -1)
		close(out_dfd);
	return c.worst;
}

static int
run(struct job *j, const struct opts *o, one_fn fn, done_fn done, void *arg)
{
	return o->in_dir != NULL ? run_batch(j, o, fn, done, arg)
	                         : run_one(j, o, fn, done, arg);
}

/* Loads certificate files; END_ENTITIES skips CA certificates (the chain
 * in a recipient's file). */
static int
load_certs(struct job *j, const char *const *paths, int n, int end_entities,
           struct sg_certs **out)
{
	enum sg_status st;

	if ((st = sg_certs_new(out)) != SG_OK)
		return cli_fail(NULL, j->cmd, st);
	for (int i = 0; i < n; i++) {
		st = end_entities
		         ? sg_certs_load_end_entities(j->ctx, *out, paths[i])
		         : sg_certs_load_file(j->ctx, *out, paths[i]);
		if (st != SG_OK)
			return cli_fail(j->ctx, j->cmd, st);
	}
	return -1;
}

static int
sign_one(struct job *j, void *arg)
{
	j->st = sg_sign(j->ctx, j->msg, arg, &j->sink);
	return msg_result(j);
}

int
cmd_sign(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_key *key = NULL;
	struct sg_certs *chain = NULL;
	struct sg_sign_opts so = {0};
	enum sg_status st;
	int rc;

	if ((rc = parse("sign", argc, argv, &o)) != -1)
		return rc;
	if (o.signer == NULL || o.key == NULL)
		return cli_usage("sign", "--signer and --key are required");
	if (o.digest == NULL || strcmp(o.digest, "sha256") == 0)
		so.digest = SG_DIGEST_SHA256;
	else if (strcmp(o.digest, "sha384") == 0)
		so.digest = SG_DIGEST_SHA384;
	else if (strcmp(o.digest, "sha512") == 0)
		so.digest = SG_DIGEST_SHA512;
	else
		return cli_usage("sign", "unknown digest \"%s\"", o.digest);
	so.opaque = o.opaque;
	if ((rc = job_start(&j, "sign", &o)) != -1)
		return job_end(&j, rc);
	if ((st = sg_key_load_files(j.ctx, o.signer, o.key, j.pass, &key)) !=
	    SG_OK)
		rc = cli_fail(j.ctx, "sign", st);
	else if (o.certfile == NULL ||
	         (rc = load_certs(&j, &o.certfile, 1, 0, &chain)) == -1) {
		so.signer = key;
		so.chain = chain;
		rc = run(&j, &o, sign_one, NULL, &so);
	}
	sg_key_free(key);
	sg_certs_free(chain);
	return job_end(&j, rc);
}

static int
encrypt_one(struct job *j, void *arg)
{
	j->st = sg_encrypt(j->ctx, j->msg, arg, &j->sink);
	return msg_result(j);
}

int
cmd_encrypt(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum sg_cipher c;
	} names[] = {
	    {"aes-256-cbc", SG_CIPHER_AES256_CBC},
	    {"aes-128-cbc", SG_CIPHER_AES128_CBC},
	    {"aes-128-gcm", SG_CIPHER_AES128_GCM},
	    {"aes-256-gcm", SG_CIPHER_AES256_GCM},
	};
	struct opts o;
	struct job j;
	struct sg_certs *rcpt = NULL;
	struct sg_encrypt_opts eo = {.cipher = SG_CIPHER_AES256_CBC};
	size_t i;
	int rc;

	if ((rc = parse("encrypt", argc, argv, &o)) != -1)
		return rc;
	if (o.nrecipients == 0)
		return cli_usage("encrypt", "at least one --recipient is "
		                            "required");
	for (i = 0; o.cipher && i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(o.cipher, names[i].name) == 0)
			break;
	if (o.cipher != NULL && i == sizeof(names) / sizeof(*names))
		return cli_usage("encrypt", "unknown cipher \"%s\"", o.cipher);
	if (o.cipher != NULL)
		eo.cipher = names[i].c;
	eo.oaep = o.oaep;
	if ((rc = job_start(&j, "encrypt", &o)) != -1)
		return job_end(&j, rc);
	if ((rc = load_certs(&j, o.recipients, o.nrecipients, 1, &rcpt)) ==
	    -1) {
		eo.recipients = rcpt;
		rc = run(&j, &o, encrypt_one, NULL, &eo);
	}
	sg_certs_free(rcpt);
	return job_end(&j, rc);
}

/* "2024-01-01T00:00:00Z" or "2024-01-01" (UTC). */
static int
parse_time(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL) {
		if (*end == 'Z')
			end++;
	} else {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

static void
print_json(FILE *f, const char *file, const struct sg_verify_result *r,
           const char *error)
{
	char when[32];

	fputc('{', f);
	if (file != NULL) {
		fputs("\"file\": ", f);
		cli_json_str(f, file);
		fputs(", ", f);
	}
	fprintf(f, "\"status\": ");
	cli_json_str(f, sg_status_name(r->status));
	fprintf(f, ", \"error\": ");
	cli_json_str(f, error);
	fprintf(f, ", \"kind\": %s",
	        r->kind == SG_KIND_SIGNED_OPAQUE ? "\"opaque\""
	                                         : "\"detached\"");
	fprintf(f, ", \"signer_subject\": ");
	cli_json_str(f, r->signer_subject);
	fprintf(f, ", \"signer_issuer\": ");
	cli_json_str(f, r->signer_issuer);
	fprintf(f, ", \"signer_serial\": ");
	cli_json_str(f, r->signer_serial);
	fprintf(f, ", \"signer_emails\": [");
	for (char **e = r->signer_emails; e && *e; e++) {
		if (e != r->signer_emails)
			fputs(", ", f);
		cli_json_str(f, *e);
	}
	fprintf(f, "], \"digest\": ");
	cli_json_str(f, r->digest);
	fprintf(f, ", \"signature_alg\": ");
	cli_json_str(f, r->signature_alg);
	fprintf(f, ", \"signing_time\": ");
	cli_iso_time(r->signing_time, when, sizeof(when));
	cli_json_str(f, strcmp(when, "-") != 0 ? when : NULL);
	fprintf(f, ", \"signature_ok\": %s, \"chain_ok\": %s",
	        r->signature_ok ? "true" : "false",
	        r->chain_ok ? "true" : "false");
	fprintf(f, ", \"chain_error\": ");
	cli_json_str(f, r->chain_error);
	fprintf(f, ", \"from_address\": ");
	cli_json_str(f, r->from_address);
	fprintf(f, ", \"from_match\": %s, \"weak\": %s, \"weak_reason\": ",
	        r->from_match ? "true" : "false", r->weak ? "true" : "false");
	cli_json_str(f, r->weak_reason);
	fprintf(f, ", \"revocation\": ");
	cli_json_str(f, r->revocation_checked
	                    ? sg_revocation_status_name(r->revocation)
	                    : NULL);
	fprintf(f, ", \"revocation_reason\": ");
	cli_json_str(f, r->revocation_checked ? r->revocation_reason : NULL);
	fprintf(f, "}\n");
}

/*
 * The revocation checker the options ask for, or NULL: --crl files alone
 * check against them (no network); --check-revocation also asks the
 * certificates' OCSP responders and CRL distribution points.  -1 to go
 * on, else an exit code.
 */
static int
revocation_of(struct job *j, const struct opts *o, struct sg_revocation **rv)
{
	struct sg_revocation_opts ro = {0};
	unsigned long secs = 5;
	char *end;
	enum sg_status st;

	*rv = NULL;
	if (o->revocation_timeout != NULL) {
		errno = 0;
		secs = strtoul(o->revocation_timeout, &end, 10);
		if (errno || *end || end == o->revocation_timeout || secs < 1 ||
		    secs > 60)
			return cli_usage("verify",
			                 "--revocation-timeout wants 1 to 60 "
			                 "seconds, not \"%s\"",
			                 o->revocation_timeout);
	}
	if (o->ncrls == 0 && !o->check_revocation) {
		if (o->revocation_hard || o->revocation_timeout)
			return cli_usage(
			    "verify", "--revocation-hard-fail and "
			              "--revocation-timeout go with --crl or "
			              "--check-revocation");
		return -1;
	}
	ro.crl_files = o->ncrls > 0 ? o->crls : NULL;
	ro.use_ocsp = ro.fetch_crl_dp = o->check_revocation;
	ro.timeout = (unsigned)secs;
	if ((st = sg_revocation_new(j->ctx, &ro, rv)) != SG_OK)
		return cli_fail(j->ctx, "verify", st);
	sg_ctx_set_revocation(j->ctx, *rv, o->revocation_hard);
	return -1;
}

/* What verify keeps across the messages of a batch. */
struct verify_job {
	struct sg_certs *trust;
	int json;
	struct sg_verify_result res; /* the current message's */
};

static int
verify_one(struct job *j, void *arg)
{
	struct verify_job *v = arg;

	/* With --json alone the message is not written. */
	j->st = sg_verify(j->ctx, j->msg, v->trust, &v->res,
	                  j->out_open ? &j->sink : NULL);
	if (j->st == SG_OK && v->res.revocation_checked &&
	    v->res.revocation == SG_REV_UNKNOWN)
		fprintf(stderr,
		        "smimegate: %s: warning: revocation status unknown "
		        "(soft-fail): %s\n",
		        j->label,
		        v->res.revocation_reason ? v->res.revocation_reason
		                                 : "");
	return msg_result(j);
}

/* One JSON line on stdout in one write, so that the lines of parallel
 * workers (--jobs) cannot mix. */
static void
print_json_line(const char *file, const struct sg_verify_result *r,
                const char *error)
{
	char *buf = NULL;
	size_t len = 0, done = 0;
	FILE *m = open_memstream(&buf, &len);
	ssize_t w;

	if (m == NULL)
		return;
	print_json(m, file, r, error);
	if (fclose(m) == 0) {
		fflush(stdout);
		while (done < len && ((w = write(STDOUT_FILENO, buf + done,
		                                 len - done)) > 0 ||
		                      (w == -1 && errno == EINTR)))
			done += w > 0 ? (size_t)w : 0;
	}
	free(buf);
}

/* --json: one object per message.  A single message that is not signed
 * at all gets none (the reason is on stderr); in a batch every file gets
 * its line, so that a script can account for each. */
static void
verify_done(struct job *j, void *arg)
{
	struct verify_job *v = arg;

	v->res.status = j->st;
	if (v->json && (j->name != NULL || v->res.signer_subject != NULL ||
	                j->st == SG_OK || sg_status_exit_code(j->st) == 1)) {
		print_json_line(j->name, &v->res,
		                j->st != SG_OK && j->why[0] ? j->why : NULL);
	}
	sg_verify_result_clear(&v->res);
	memset(&v->res, 0, sizeof(v->res));
}

int
cmd_verify(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_revocation *rv = NULL;
	struct verify_job v = {0};
	time_t at = 0;
	int rc;

	if ((rc = parse("verify", argc, argv, &o)) != -1)
		return rc;
	if (o.trust == NULL)
		return cli_usage("verify", "--trust is required");
	if (o.at != NULL && parse_time(o.at, &at) == -1)
		return cli_usage("verify",
		                 "--at wants 2024-01-01T00:00:00Z, "
		                 "not \"%s\"",
		                 o.at);
	if ((rc = job_start(&j, "verify", &o)) != -1)
		return job_end(&j, rc);
	sg_ctx_set_time(j.ctx, at);
	v.json = o.json;
	j.want_out = !o.json || o.out != NULL || o.out_dir != NULL;
	if ((rc = load_certs(&j, &o.trust, 1, 0, &v.trust)) == -1 &&
	    (rc = revocation_of(&j, &o, &rv)) == -1)
		rc = run(&j, &o, verify_one, verify_done, &v);
	sg_certs_free(v.trust);
	rc = job_end(&j, rc);
	sg_revocation_free(rv); /* after the handle that borrowed it */
	return rc;
}

static int
decrypt_one(struct job *j, void *arg)
{
	j->st = sg_decrypt(j->ctx, j->msg, arg, &j->sink);
	return msg_result(j);
}

int
cmd_decrypt(int argc, char **argv)
{
	struct opts o;
	struct job j;
	struct sg_key *key = NULL;
	enum sg_status st;
	int rc;

	if ((rc = parse("decrypt", argc, argv, &o)) != -1)
		return rc;
	if ((o.p12 == NULL) == (o.cert == NULL || o.key == NULL) ||
	    (o.p12 != NULL && (o.cert != NULL || o.key != NULL)))
		return cli_usage("decrypt", "give either --cert and --key, or "
		                            "--p12");
	if ((rc = job_start(&j, "decrypt", &o)) != -1)
		return job_end(&j, rc);
	st = o.p12 ? sg_key_load_p12(j.ctx, o.p12, j.pass, &key)
	           : sg_key_load_files(j.ctx, o.cert, o.key, j.pass, &key);
	rc = st == SG_OK ? run(&j, &o, decrypt_one, NULL, key)
	                 : cli_fail(j.ctx, "decrypt", st);
	sg_key_free(key);
	return job_end(&j, rc);
}
