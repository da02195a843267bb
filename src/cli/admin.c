/*
 * admin.c - what the store commands share: --store and --keyfile, opening
 * (and, for commands that write, creating) the store, and printing
 * entries as a table or JSON.  Private keys are never printed.
 */
#include "cli/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STORE "var/smimegate.db"

int
admin_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 128)
		return 0;
	for (const char *c = name; *c; c++)
		if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
		    !(*c >= '0' && *c <= '9') && !strchr("._@+-", *c))
			return 0;
	return 1;
}

void
admin_make_parent(const char *path)
{
	char buf[4096];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", path);
	if ((slash = strrchr(buf, '/')) == NULL || slash == buf)
		return;
	*slash = '\0';
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(buf, 0700);
			*p = '/';
		}
	(void)mkdir(buf, 0700);
}

int
admin_open(struct admin *a, const char *cmd, int create)
{
	enum sg_status st;

	a->cmd = cmd;
	if (a->store_path == NULL)
		a->store_path = DEFAULT_STORE;
	if (a->ctx == NULL && sg_ctx_new(&a->ctx) != SG_OK)
		return cli_fail(NULL, cmd, SG_ERR_NOMEM);
	st = store_open(a->ctx, a->store_path, a->keyfile, &a->st);
	if (st == SG_ERR_NOT_FOUND && create) {
		admin_make_parent(a->store_path);
		if ((st = store_init(a->ctx, a->store_path, a->keyfile)) !=
		    SG_OK) {
			fprintf(stderr,
			        "smimegate: %s: %s: cannot create the store "
			        "%s: %s\n",
			        cmd, sg_status_name(st), a->store_path,
			        sg_ctx_error(a->ctx));
			return sg_status_exit_code(st);
		}
		fprintf(stderr, "smimegate: created the store %s\n",
		        a->store_path);
		st = store_open(a->ctx, a->store_path, a->keyfile, &a->st);
	}
	if (st == SG_ERR_NOT_FOUND) {
		fprintf(stderr,
		        "smimegate: %s: not-found: no store at %s (run "
		        "`smimegate store init --store %s`)\n",
		        cmd, a->store_path, a->store_path);
		return sg_status_exit_code(st);
	}
	if (st != SG_OK) {
		fprintf(stderr, "smimegate: %s: %s: %s\n", cmd,
		        sg_status_name(st), sg_ctx_error(a->ctx));
		return sg_status_exit_code(st);
	}
	return -1;
}

int
admin_fail(struct admin *a, enum sg_status st)
{
	fprintf(stderr, "smimegate: %s: %s: %s\n", a->cmd, sg_status_name(st),
	        a->st ? store_errmsg(a->st) : sg_ctx_error(a->ctx));
	return sg_status_exit_code(st);
}

int
admin_fail_ctx(struct admin *a, enum sg_status st)
{
	return cli_fail(a->ctx, a->cmd, st);
}

int
admin_close(struct admin *a, int rc)
{
	store_close(a->st);
	sg_ctx_free(a->ctx);
	memset(a, 0, sizeof(*a));
	return rc;
}

static long
days_left(time_t not_after, time_t now)
{
	return not_after > now ? (long)((not_after - now) / 86400)
	                       : -(long)((now - not_after + 86399) / 86400);
}

static void
json_strv(FILE *f, char **v)
{
	fputc('[', f);
	for (char **p = v; p && *p; p++) {
		if (p != v)
			fputs(", ", f);
		cli_json_str(f, *p);
	}
	fputc(']', f);
}

/* Every key, always, so scripts see one shape; a pending CSR has what the
 * request says (subject, key_type, emails, domains) and nulls. */
void
admin_print_json(FILE *f, const struct store_entry *e, time_t now)
{
	const struct sg_cert_info *i = &e->info;
	int c = e->has_cert;
	char nb[32], na[32];

	cli_iso_time(i->not_before, nb, sizeof(nb));
	cli_iso_time(i->not_after, na, sizeof(na));
	fputs("{\"name\": ", f);
	cli_json_str(f, e->name);
	fprintf(f, ", \"pending\": %s, \"source\": ", c ? "false" : "true");
	cli_json_str(f, e->source);
	fputs(", \"subject\": ", f);
	cli_json_str(f, i->subject);
	fputs(", \"issuer\": ", f);
	cli_json_str(f, c ? i->issuer : NULL);
	fputs(", \"serial\": ", f);
	cli_json_str(f, c ? i->serial : NULL);
	fputs(", \"fingerprint\": ", f);
	cli_json_str(f, c ? i->fingerprint : NULL);
	fputs(", \"key_type\": ", f);
	cli_json_str(f, i->key_type);
	fputs(", \"emails\": ", f);
	json_strv(f, i->emails);
	fputs(", \"domains\": ", f);
	json_strv(f, i->domains);
	fputs(", \"not_before\": ", f);
	cli_json_str(f, c ? nb : NULL);
	fputs(", \"not_after\": ", f);
	cli_json_str(f, c ? na : NULL);
	if (c)
		fprintf(f, ", \"days_left\": %ld",
		        days_left(i->not_after, now));
	else
		fputs(", \"days_left\": null", f);
	fprintf(f, ", \"purposes\": [%s%s%s]",
	        c && i->can_sign ? "\"sign\"" : "",
	        c && i->can_sign && i->can_encrypt ? ", " : "",
	        c && i->can_encrypt ? "\"encrypt\"" : "");
	fprintf(f, ", \"self_signed\": %s, \"ca\": %s}",
	        c && i->self_signed ? "true" : "false",
	        c && i->is_ca ? "true" : "false");
}

/* Fills a pending CSR's entry with what its request says. */
void
admin_fill_pending(struct admin *a, struct store_entry *e)
{
	char *pem = NULL;

	if (e->has_cert || e->role != STORE_ORG || e->info.subject != NULL)
		return;
	if (store_get_csr(a->st, e->name, &pem) == SG_OK)
		(void)sg_csr_info(pem, &e->info);
	free(pem);
}

void
admin_print_list(FILE *f, const struct store_entry *v, size_t n, int json,
                 time_t now)
{
	if (json) {
		fputc('[', f);
		for (size_t k = 0; k < n; k++) {
			if (k > 0)
				fputs(",\n ", f);
			admin_print_json(f, &v[k], now);
		}
		fputs("]\n", f);
		return;
	}
	if (n == 0) {
		fprintf(f, "(none)\n");
		return;
	}
	fprintf(f, "%-20s %-10s %6s  %-13s %s\n", "NAME", "NOT-AFTER", "DAYS",
	        "PURPOSES", "SUBJECT");
	for (size_t k = 0; k < n; k++) {
		const struct sg_cert_info *i = &v[k].info;
		char na[32];
		if (!v[k].has_cert) {
			fprintf(f, "%-20s %-10s %6s  %-13s %s\n", v[k].name,
			        "-", "-", "pending-csr",
			        "(waiting for the CA)");
			continue;
		}
		cli_iso_time(i->not_after, na, sizeof(na));
		na[10] = '\0';
		fprintf(f, "%-20s %-10s %6ld  %-13s %s%s\n", v[k].name, na,
		        days_left(i->not_after, now),
		        i->can_sign && i->can_encrypt ? "sign,encrypt"
		        : i->can_sign                 ? "sign"
		        : i->can_encrypt              ? "encrypt"
		        : i->is_ca                    ? "ca"
		                                      : "none",
		        i->subject,
		        i->self_signed && !i->is_ca ? "  [self-signed]" : "");
	}
}

void
admin_print_show(FILE *f, const struct store_entry *e, time_t now)
{
	const struct sg_cert_info *i = &e->info;
	char nb[32], na[32];

	fprintf(f, "name:        %s\n", e->name);
	fprintf(f, "source:      %s\n", e->source ? e->source : "-");
	if (!e->has_cert) {
		fprintf(f, "status:      pending CSR (import the CA-issued "
		           "certificate with `smimegate cert import`)\n");
		return;
	}
	cli_iso_time(i->not_before, nb, sizeof(nb));
	cli_iso_time(i->not_after, na, sizeof(na));
	fprintf(f, "subject:     %s\n", i->subject);
	fprintf(f, "issuer:      %s%s\n", i->issuer,
	        i->self_signed ? " (self-signed: for tests and internal mail, "
	                         "not for signing mail to outsiders)"
	                       : "");
	fprintf(f, "serial:      %s\n", i->serial);
	fprintf(f, "fingerprint: sha256:%s\n", i->fingerprint);
	fprintf(f, "key:         %s\n", i->key_type);
	for (char **p = i->emails; p && *p; p++)
		fprintf(f, "email:       %s\n", *p);
	for (char **p = i->domains; p && *p; p++)
		fprintf(f, "domain:      %s\n", *p);
	fprintf(f, "valid:       %s to %s (%ld days left)\n", nb, na,
	        days_left(i->not_after, now));
	fprintf(f, "signing:     %s\n",
	        i->can_sign     ? "yes"
	        : i->unfit_sign ? i->unfit_sign
	                        : "no");
	fprintf(f, "encryption:  %s\n",
	        i->can_encrypt     ? "yes"
	        : i->unfit_encrypt ? i->unfit_encrypt
	                           : "no");
}

int
admin_split_list(const char *arg, char ***out)
{
	size_t n = 1, k = 0;
	char *copy, *tok, *save = NULL;
	char **v;

	for (const char *c = arg; *c; c++)
		n += *c == ',';
	if ((v = calloc(n + 1, sizeof(*v))) == NULL ||
	    (copy = strdup(arg)) == NULL) {
		free(v);
		return -1;
	}
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (*tok != '\0' && (v[k] = strdup(tok)) != NULL)
			k++;
	}
	free(copy);
	*out = v;
	return 0;
}

void
admin_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}
