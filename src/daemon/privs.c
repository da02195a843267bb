/*
 * privs.c - dropping root for a user, keeping the right to bind ports
 * below 1024.
 *
 * Two system calls do what libcap would (prctl(PR_SET_KEEPCAPS) and
 * capset(2)): linking libcap would add a library to the start-up of
 * every one-shot command, which is where our time goes (docs/bench.md).
 */
#include "daemon/privs.h"
#include "daemon/reason.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* Permitted and effective: CAP_NET_BIND_SERVICE and nothing else. */
static int
keep_bind_only(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	unsigned i = CAP_TO_INDEX(CAP_NET_BIND_SERVICE);

	memset(d, 0, sizeof(d));
	d[i].permitted = d[i].effective = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
	return (int)syscall(SYS_capset, &h, d);
}

int
privs_drop(const char *user, char *err, size_t errlen)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;

	if (user == NULL)
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		reason_set(err, errlen, "user %s: %s", user,
		           errno ? strerror(errno) : "no such user");
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (geteuid() == uid && getuid() == uid)
		return 0;
	if (geteuid() != 0) {
		reason_set(err, errlen,
		           "user %s: smimegate runs as uid %lu, not root, and "
		           "cannot become another user",
		           user, (unsigned long)geteuid());
		return -1;
	}
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) == -1 ||
	    initgroups(user, gid) == -1 || setgid(gid) == -1 ||
	    setuid(uid) == -1) {
		reason_set(err, errlen, "cannot become user %s: %s", user,
		           strerror(errno));
		return -1;
	}
	if (keep_bind_only() == -1) {
		reason_set(err, errlen,
		           "user %s: cannot keep the right to bind ports "
		           "below 1024: %s",
		           user, strerror(errno));
		return -1;
	}
	/* no core files, no tracing by the user: the process holds keys */
	if (prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) == -1 ||
	    prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) == -1) {
		reason_set(err, errlen, "user %s: prctl: %s", user,
		           strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || getuid() != uid || geteuid() != uid ||
	    getgid() != gid || getegid() != gid) {
		reason_set(err, errlen, "user %s: root could be regained",
		           user);
		return -1;
	}
	return 1;
}
