/*
 * control.c - the request files of SPOOL/control/ (control.h).
 *
 * What it trusts: nothing in the names it finds; a name is a request only
 * when it is "flush" or a verb, a dot and a valid queue ID.  What it can
 * reach: SPOOL/control/ only, through one directory descriptor.
 */
#include "daemon/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/fsio.h"
#include "daemon/log.h"
#include "daemon/reason.h"
#include "daemon/spool.h"

#define CONTROL_DIR      "control"
#define CONTROL_NAME_MAX (SPOOL_ID_LEN + 16)
#define CONTROL_MAX      10000 /* requests taken per call */

struct control {
	int fd; /* SPOOL/control */
};

static const char *const verbs[] = {[CONTROL_FLUSH] = "flush",
                                    [CONTROL_DELETE] = "delete",
                                    [CONTROL_BOUNCE] = "bounce"};

/* The file name of a request; -1 for delete or bounce without an ID. */
static int
request_name(enum control_verb verb, const char *id, char *name, size_t len)
{
	if (id == NULL && verb != CONTROL_FLUSH)
		return -1;
	if (id != NULL && !spool_id_valid(id))
		return -1;
	snprintf(name, len, "%s%s%s", verbs[verb], id ? "." : "", id ? id : "");
	return 0;
}

/* Parses NAME into *VERB and ID (SPOOL_ID_LEN + 1); 0 when it is not a
 * request.  ID is "" for "flush". */
static int
parse_name(const char *name, enum control_verb *verb, char *id)
{
	for (size_t v = 0; v < sizeof(verbs) / sizeof(*verbs); v++) {
		size_t n = strlen(verbs[v]);

		if (strncmp(name, verbs[v], n) != 0)
			continue;
		*verb = (enum control_verb)v;
		if (name[n] == '\0' && v == CONTROL_FLUSH) {
			id[0] = '\0';
			return 1;
		}
		return name[n] == '.' && spool_id_valid(name + n + 1) &&
		       snprintf(id, SPOOL_ID_LEN + 1, "%s", name + n + 1) ==
		           SPOOL_ID_LEN;
	}
	return 0;
}

static int
open_dir(const char *spool_dir, int create, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", spool_dir, CONTROL_DIR) >=
	    (int)sizeof(path)) {
		reason_set(err, errlen, "%s: name too long", spool_dir);
		errno = ENAMETOOLONG;
		return -1;
	}
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST) {
		reason_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) <
	    0) {
		reason_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0 ||
	    (create && st.st_uid != geteuid())) {
		reason_set(err, errlen,
		           "%s: must be a directory of ours with mode 0700",
		           path);
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

enum sg_status
control_open(const char *spool_dir, struct control **out, char *err,
             size_t errlen)
{
	struct control *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		reason_set(err, errlen, "out of memory");
		return SG_ERR_NOMEM;
	}
	if ((c->fd = open_dir(spool_dir, 1, err, errlen)) < 0) {
		free(c);
		return SG_ERR_IO;
	}
	*out = c;
	return SG_OK;
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c);
}

enum sg_status
control_take(struct control *c, control_fn fn, void *arg)
{
	char **names = NULL, id[SPOOL_ID_LEN + 1];
	size_t n = 0;
	enum control_verb verb;

	if (fsio_list_dir(c->fd, &names, &n) < 0)
		return SG_ERR_IO;
	for (size_t i = 0; i < n && i < CONTROL_MAX; i++) {
		char safe[CONTROL_NAME_MAX * 4];
		struct stat sb;

		if (fstatat(c->fd, names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (!S_ISREG(sb.st_mode) || !parse_name(names[i], &verb, id)) {
			log_quote_value(safe, sizeof(safe), names[i]);
			log_warn("control",
			         "event=bad-request name=\"%s\" (removed)",
			         safe);
			if (unlinkat(c->fd, names[i],
			             S_ISDIR(sb.st_mode) ? AT_REMOVEDIR : 0) <
			    0)
				log_warn("control",
				         "event=error op=remove name=\"%s\" "
				         "reason=\"%s\"",
				         safe, strerror(errno));
			continue;
		}
		if (fn(arg, verb, id[0] ? id : NULL) == SG_OK)
			unlinkat(c->fd, names[i], 0);
	}
	fsio_names_free(names, n);
	return SG_OK;
}

enum sg_status
control_request(const char *spool_dir, enum control_verb verb, const char *id,
                char *err, size_t errlen)
{
	char name[CONTROL_NAME_MAX];
	int dfd, fd;

	if (request_name(verb, id, name, sizeof(name)) < 0) {
		reason_set(err, errlen, "not a queue ID");
		return SG_ERR_USAGE;
	}
	if ((dfd = open_dir(spool_dir, 0, err, errlen)) < 0)
		return errno == ENOENT ? SG_ERR_NOT_FOUND : SG_ERR_IO;
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno != EEXIST) {
		reason_set(err, errlen, "%s/%s/%s: %s", spool_dir, CONTROL_DIR,
		           name, strerror(errno));
		close(dfd);
		return SG_ERR_IO;
	}
	if (fd >= 0)
		close(fd);
	close(dfd);
	return SG_OK;
}

int
control_pending(const char *spool_dir, enum control_verb verb, const char *id)
{
	char name[CONTROL_NAME_MAX];
	int dfd, r;

	if (request_name(verb, id, name, sizeof(name)) < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((dfd = open_dir(spool_dir, 0, NULL, 0)) < 0)
		return -1;
	r = faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW);
	if (r < 0 && errno != ENOENT) {
		close(dfd);
		return -1;
	}
	close(dfd);
	return r == 0;
}
