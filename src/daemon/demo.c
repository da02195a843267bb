/*
 * demo.c - what `make run` needs before the gateway starts: a demo
 * configuration and a store with a throw-away certificate clearly labelled
 * as a test certificate.  Existing files are left as they are.
 */
#include "daemon/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/config.h"
#include "store/store.h"

static int
write_new(const char *path, const char *text, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	size_t n = strlen(text);

	if (fd == -1 && errno == EEXIST)
		return 0;
	if (fd == -1 || write(fd, text, n) != (ssize_t)n || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
serve_demo_prepare(const char *dir, char *config, size_t len, char *err,
                   size_t errlen)
{
	static const char *const mail[] = {"demo@example.com", NULL};
	struct sg_cert_req req = {
	    .cn = "smimegate DEMO - TEST CERTIFICATE, DO NOT TRUST",
	    .org = "smimegate demo (throw-away)",
	    .days = 30,
	    .key = SG_KEY_RSA2048,
	    .san_emails = mail,
	};
	struct sg_ctx *ctx = NULL;
	struct store *st = NULL;
	struct sg_key *key = NULL;
	char path[4096], *text;
	enum sg_status rc;
	int ret = -1;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(config, len, "%s/smimegate.conf", dir);
	if ((text = cfg_demo_text(dir)) == NULL ||
	    write_new(config, text, err, errlen) == -1) {
		free(text);
		return -1;
	}
	free(text);
	if (sg_ctx_new(&ctx) != SG_OK)
		return -1;
	snprintf(path, sizeof(path), "%s/smimegate.db", dir);
	rc = store_open(ctx, path, NULL, &st);
	if (rc == SG_ERR_NOT_FOUND) {
		if ((rc = store_init(ctx, path, NULL)) == SG_OK)
			rc = store_open(ctx, path, NULL, &st);
	}
	if (rc != SG_OK) {
		snprintf(err, errlen, "store %s: %s", path, sg_ctx_error(ctx));
		goto out;
	}
	rc = store_get_key(st, "demo", &key);
	if (rc == SG_ERR_NOT_FOUND) {
		if ((rc = sg_cert_create(ctx, &req, NULL, &key)) != SG_OK ||
		    (rc = store_put_key(st, "demo", key, "created")) != SG_OK) {
			snprintf(err, errlen, "demo certificate: %s",
			         st ? store_errmsg(st) : sg_ctx_error(ctx));
			goto out;
		}
		fprintf(stderr,
		        "smimegate: created %s with a throw-away TEST "
		        "certificate \"demo\" (never use it for real mail)\n",
		        path);
	} else if (rc != SG_OK) {
		snprintf(err, errlen, "store %s: %s", path, store_errmsg(st));
		goto out;
	}
	ret = 0;
out:
	sg_key_free(key);
	store_close(st);
	sg_ctx_free(ctx);
	return ret;
}
