/*
 * msgfilter.c - the facts a filter set asks for, from a message of the
 * pipeline (msgfilter.h).
 */
#include "daemon/msgfilter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSGFILTER_HEADERS 64 /* distinct header names asked per run */

/* The header lists handed out during one evaluation, freed after it. */
struct hdr_cache {
	struct sg_msg *msg;
	char *names[MSGFILTER_HEADERS];
	char **values[MSGFILTER_HEADERS];
	size_t n;
};

static const char *const *
header_values(void *arg, const char *name)
{
	struct hdr_cache *hc = arg;

	for (size_t i = 0; i < hc->n; i++)
		if (strcasecmp(hc->names[i], name) == 0)
			return (const char *const *)hc->values[i];
	if (hc->n == MSGFILTER_HEADERS)
		return NULL; /* more names than any real filter file asks */
	if ((hc->names[hc->n] = strdup(name)) == NULL)
		return NULL;
	hc->values[hc->n] = sg_msg_header_all(hc->msg, name);
	return (const char *const *)hc->values[hc->n++];
}

enum sg_status
msgfilter_run(struct sg_ctx *ctx, const struct filter_set *fs,
              struct sg_msg *msg, const struct spool_env *env,
              const struct msgfilter_smime *sm, struct filter_result *out,
              char *reason, size_t rlen)
{
	struct hdr_cache hc = {.msg = msg};
	struct filter_facts ff = {0};
	struct sg_facts f;
	enum sg_status st;

	if ((st = sg_msg_facts(msg, &f)) != SG_OK) {
		snprintf(reason, rlen,
		         "reading the message for the filters: %s",
		         sg_ctx_error(ctx));
		return st == SG_ERR_NOMEM ? SG_ERR_TEMP : st;
	}
	ff.subject = f.subject;
	ff.body_text = f.body_text;
	ff.size = sg_msg_size(msg);
	ff.mail_from = env->mail_from;
	ff.rcpts = (const char *const *)env->rcpts;
	ff.nrcpts = env->nrcpts;
	ff.header = header_values;
	ff.arg = &hc;
	ff.att_names = (const char *const *)f.att_names;
	ff.att_types = (const char *const *)f.att_types;
	ff.smime_gateway_message = sm->message;
	ff.smime_gateway_verified = sm->verified;
	ff.smime_signed = sm->signed_ || f.smime_signed;
	ff.smime_encrypted = sm->encrypted || f.smime_encrypted;
	st = filter_eval(fs, &ff, out);
	if (st != SG_OK) {
		snprintf(reason, rlen, "running the filters: %s",
		         sg_status_text(st));
		st = SG_ERR_TEMP;
	}
	for (size_t i = 0; i < hc.n; i++) {
		free(hc.names[i]);
		sg_strv_free(hc.values[i]);
	}
	sg_facts_clear(&f);
	return st;
}
