/*
 * fuzz_message.c - libFuzzer target for everything that parses attacker
 * input: the header block, the MIME structure (GMime and our own boundary
 * scan), base64, and CMS, through the public verify and decrypt calls and
 * the protected-entity builder that sign and encrypt use.  Content-Type and
 * From are also read by both lib/fields.c and GMime, which must agree.
 *
 *   make fuzz FUZZ_SECONDS=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit/fields_oracle.h"
#include "lib/sg_int.h"

static struct sg_ctx *ctx;
static struct sg_key *key;
static struct sg_certs *trust;

static int
discard(void *arg, const void *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const mail[] = {"fuzz@example.com", NULL};
	struct sg_cert_req req = {.cn = "fuzz",
				  .days = 30,
				  .key = SG_KEY_RSA2048,
				  .san_emails = mail};
	struct sg_limits lim;

	(void)argc;
	(void)argv;
	if (sg_ctx_new(&ctx) != SG_OK ||
	    sg_cert_create(ctx, &req, NULL, &key) != SG_OK ||
	    sg_certs_new(&trust) != SG_OK)
		abort();
	/* Small limits keep each run fast and reach the limit paths. */
	sg_ctx_get_limits(ctx, &lim);
	lim.max_message = 1 << 20;
	lim.max_cms = 1 << 20;
	sg_ctx_set_limits(ctx, &lim);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_sink sink = {discard, NULL};
	struct sg_verify_result res;
	struct sg_source *src;
	struct sg_msg *msg = NULL;
	int spool = -1;

	if (sg_msg_open_mem(ctx, data, size, &msg) != SG_OK)
		return 0;
	/* lib/fields.c must read what it reads as GMime does */
	for (const char *f = "Content-Type"; f != NULL;
	     f = strcmp(f, "From") == 0 ? NULL : "From") {
		char *v = sg_msg_header(msg, f);
		if (v != NULL && !fields_agree(v))
			abort();
		free(v);
	}
	switch (sg_msg_smime_kind(msg)) {
	case SG_KIND_SIGNED_DETACHED:
	case SG_KIND_SIGNED_OPAQUE:
		sg_verify(ctx, msg, trust, &res, &sink);
		sg_verify_result_clear(&res);
		break;
	case SG_KIND_ENVELOPED:
	case SG_KIND_AUTH_ENVELOPED:
		sg_decrypt(ctx, msg, key, &sink);
		break;
	case SG_KIND_NONE:
		if ((src = sg_source_new()) != NULL &&
		    sg_mime_inner_entity(msg, src, &spool) == SG_OK) {
			BIO *b = sg_source_bio(src);
			char buf[4096];
			while (b != NULL && BIO_read(b, buf, sizeof(buf)) > 0)
				;
			BIO_free(b);
		}
		if (spool != -1)
			close(spool);
		sg_source_free(src);
		break;
	}
	sg_msg_free(msg);
	return 0;
}
