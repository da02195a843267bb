/*
 * fsio.c - small file helpers the spool, the quarantine and the maildir
 * delivery share.
 */
#include "daemon/fsio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum sg_status
fsio_errno_status(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
		return SG_ERR_TEMP;
	case ENOMEM:
		return SG_ERR_NOMEM;
	default:
		return SG_ERR_IO;
	}
}

int
fsio_write_all(int fd, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len > 0) {
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
fsio_names_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

int
fsio_list_dir(int fd, char ***out, size_t *n)
{
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int dfd, e;

	if ((dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((d = fdopendir(dfd)) == NULL) {
		e = errno;
		close(dfd);
		errno = e;
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL)
				goto fail;
			v = nv;
			cap = ncap;
		}
		if ((v[cnt] = strdup(de->d_name)) == NULL)
			goto fail;
		cnt++;
	}
	if (errno != 0)
		goto fail;
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*out = v;
	*n = cnt;
	return 0;
fail:
	e = errno ? errno : ENOMEM;
	fsio_names_free(v, cnt);
	closedir(d);
	errno = e;
	return -1;
}
