/*
 * facts.c - what the policy layer asks about a message (sg_msg_facts):
 * the decoded subject, the text of its text parts in UTF-8, its
 * attachments' names and types, and whether it is S/MIME.
 *
 * What it trusts: nothing of the message.  Every count and size it keeps
 * is bounded (the handle's depth and part limits, SG_FACTS_TEXT_MAX bytes
 * of text, SG_FACTS_ATT_MAX attachments); a text part larger than
 * SG_FACTS_PART_MAX before decoding is not decoded at all, so the memory
 * used stays bounded whatever the input.
 */
#include "lib/sg_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gmime_dl.h"

#define SG_FACTS_PART_MAX ((gint64)8 << 20) /* encoded bytes of a text part */

struct facts_walk {
	struct sg_ctx *ctx;
	struct sg_facts *f;
	struct sg_buf text;
	unsigned parts;
	enum sg_status st;
};

void
sg_facts_clear(struct sg_facts *f)
{
	if (f == NULL)
		return;
	free(f->subject);
	free(f->body_text);
	for (size_t i = 0; i < f->natt; i++) {
		free(f->att_names[i]);
		free(f->att_types[i]);
	}
	free(f->att_names);
	free(f->att_types);
	memset(f, 0, sizeof(*f));
}

/* Appends TEXT (UTF-8) to the body text, cut at SG_FACTS_TEXT_MAX. */
static void
add_text(struct facts_walk *w, const char *text)
{
	size_t room, n = strlen(text);

	if (w->text.len >= SG_FACTS_TEXT_MAX)
		return;
	room = SG_FACTS_TEXT_MAX - w->text.len;
	if (n > room)
		n = room;
	if ((w->text.len > 0 && sg_buf_add(&w->text, "\n", 1) == -1) ||
	    sg_buf_add(&w->text, text, n) == -1)
		w->st = sg_fail_plain(w->ctx, SG_ERR_NOMEM, "out of memory");
}

static void
add_attachment(struct facts_walk *w, GMimeObject *obj, const char *name)
{
	struct sg_facts *f = w->f;
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *type = NULL, *nm = NULL, **nv, **tv;
	const char *t = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *s = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;

	if (f->natt >= SG_FACTS_ATT_MAX)
		return;
	if ((nv = realloc(f->att_names, (f->natt + 2) * sizeof(*nv))) == NULL)
		goto nomem;
	f->att_names = nv;
	if ((tv = realloc(f->att_types, (f->natt + 2) * sizeof(*tv))) == NULL)
		goto nomem;
	f->att_types = tv;
	if (t == NULL || s == NULL)
		t = "application", s = "octet-stream";
	if ((type = malloc(strlen(t) + strlen(s) + 2)) == NULL ||
	    (nm = strdup(name ? name : "")) == NULL)
		goto nomem;
	strcpy(type, t);
	strcat(type, "/");
	strcat(type, s);
	for (char *p = type; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	f->att_names[f->natt] = nm;
	f->att_types[f->natt] = type;
	f->natt++;
	f->att_names[f->natt] = NULL;
	f->att_types[f->natt] = NULL;
	return;
nomem:
	free(type);
	free(nm);
	w->st = sg_fail_plain(w->ctx, SG_ERR_NOMEM, "out of memory");
}

static void
leaf(struct facts_walk *w, GMimeObject *obj)
{
	GMimePart *part = GMIME_PART(obj);
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *name = g_mime_part_get_filename(part);
	const char *disp = g_mime_object_get_disposition(obj);
	int attachment = name != NULL ||
	                 (disp != NULL && strcasecmp(disp, "attachment") == 0);

	if (attachment) {
		add_attachment(w, obj, name);
		return;
	}
	if (ct == NULL || !g_mime_content_type_is_type(ct, "text", "*") ||
	    !GMIME_IS_TEXT_PART(obj))
		return;
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *raw = dw ? g_mime_data_wrapper_get_stream(dw) : NULL;
	gint64 len = raw ? g_mime_stream_length(raw) : -1;

	if (len < 0 || len > SG_FACTS_PART_MAX)
		return; /* not decoded: see the top of this file */
	/* Decoded from its transfer encoding and converted from its
	 * charset to UTF-8 by GMime. */
	char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
	if (text != NULL) {
		add_text(w, text);
		g_free(text);
	}
}

static void
walk(struct facts_walk *w, GMimeObject *obj, unsigned depth)
{
	if (w->st != SG_OK || obj == NULL)
		return;
	if ((w->st = sg_mime_walk_limits(w->ctx, depth, &w->parts)) != SG_OK)
		return;
	if (GMIME_IS_MULTIPART_SIGNED(obj)) {
		/* The signed content; the signature is not an attachment. */
		walk(w,
		     g_mime_multipart_get_part(GMIME_MULTIPART(obj),
		                               GMIME_MULTIPART_SIGNED_CONTENT),
		     depth + 1);
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);

		for (int i = 0; i < n && w->st == SG_OK; i++)
			walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m =
		    g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m != NULL)
			walk(w, g_mime_message_get_mime_part(m), depth + 1);
		return;
	}
	if (GMIME_IS_APPLICATION_PKCS7_MIME(obj))
		return; /* opaque: nothing readable without the engine */
	if (GMIME_IS_PART(obj))
		leaf(w, obj);
}

enum sg_status
sg_msg_facts(struct sg_msg *msg, struct sg_facts *out)
{
	struct sg_ctx *ctx = msg->ctx;
	struct facts_walk w = {.ctx = ctx, .f = out, .st = SG_OK};
	GMimeMessage *m;
	char *subj;

	sg_reset(ctx);
	memset(out, 0, sizeof(*out));
	enum sg_smime_kind kind;

	if (sg_gmime_need(ctx) != SG_OK || sg_mime_kind(msg, &kind) != SG_OK)
		return ctx->last;
	switch (kind) {
	case SG_KIND_SIGNED_DETACHED:
	case SG_KIND_SIGNED_OPAQUE:
		out->smime_signed = 1;
		break;
	case SG_KIND_ENVELOPED:
	case SG_KIND_AUTH_ENVELOPED:
		out->smime_encrypted = 1;
		break;
	default:
		break;
	}
	if ((subj = sg_msg_header(msg, "Subject")) != NULL) {
		char *dec = g_mime_utils_header_decode_text(NULL, subj);

		free(subj);
		if (dec != NULL) {
			out->subject = strdup(dec);
			g_free(dec);
			if (out->subject == NULL)
				return sg_fail_plain(ctx, SG_ERR_NOMEM,
				                     "out of memory");
		}
	}
	if ((m = sg_mime_parse(msg)) == NULL) {
		sg_facts_clear(out);
		return ctx->last;
	}
	sg_buf_init(&w.text);
	walk(&w, g_mime_message_get_mime_part(m), 0);
	g_object_unref(m);
	if (w.st == SG_OK && w.text.len > 0) {
		if (sg_buf_add(&w.text, "", 0) == -1) /* the NUL */
			w.st =
			    sg_fail_plain(ctx, SG_ERR_NOMEM, "out of memory");
		else
			out->body_text = w.text.data, w.text.data = NULL;
	}
	sg_buf_clear(&w.text);
	if (w.st != SG_OK)
		sg_facts_clear(out);
	return w.st;
}

char **
sg_msg_header_all(const struct sg_msg *msg, const char *name)
{
	size_t n = 0, k = 0;
	char **v;

	for (size_t i = 0; i < msg->nhdrs; i++)
		n += strcasecmp(msg->hdrs[i].name, name) == 0;
	if (n == 0)
		return NULL;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return NULL;
	for (size_t i = 0; i < msg->nhdrs && k < n; i++) {
		if (strcasecmp(msg->hdrs[i].name, name) != 0)
			continue;
		if ((v[k] = sg_msg_header_nth(msg, i)) == NULL) {
			sg_strv_free(v);
			return NULL;
		}
		k++;
	}
	return v;
}
