/*
 * unit_fs.c - file helpers the suites share.
 */
#include "unit.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
unit_rm_tree(const char *dir)
{
	DIR *d;
	struct dirent *e;
	char p[512];

	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			if (e->d_type == DT_DIR)
				unit_rm_tree(p);
			else
				unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}
