/*
 * cmd_cert.c - `smimegate cert ...`: the organization's certificates and
 * their private keys (create, csr, import, export, list, show, delete),
 * and `smimegate store init`.
 *
 * Flags are exactly those of the contract in the issue; scripts rely on
 * them.  Private keys go into the store wrapped and come out only in a
 * passphrase-protected PKCS#12 file.
 */
#include "cli/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/fsio.h"

enum {
	O_STORE = 256,
	O_KEYFILE,
	O_NAME,
	O_CN,
	O_ORG,
	O_UNIT,
	O_CITY,
	O_STATE,
	O_COUNTRY,
	O_DAYS,
	O_SAN_DOMAIN,
	O_SAN_EMAIL,
	O_KEY,
	O_OUT,
	O_PASS_FILE,
	O_FORCE,
	O_P12,
	O_PEM,
	O_LEGACY,
	O_JSON,
	O_HELP,
};

static const struct option options[] = {
    {"store", required_argument, NULL, O_STORE},
    {"keyfile", required_argument, NULL, O_KEYFILE},
    {"name", required_argument, NULL, O_NAME},
    {"cn", required_argument, NULL, O_CN},
    {"org", required_argument, NULL, O_ORG},
    {"unit", required_argument, NULL, O_UNIT},
    {"city", required_argument, NULL, O_CITY},
    {"state", required_argument, NULL, O_STATE},
    {"country", required_argument, NULL, O_COUNTRY},
    {"days", required_argument, NULL, O_DAYS},
    {"san-domain", required_argument, NULL, O_SAN_DOMAIN},
    {"san-email", required_argument, NULL, O_SAN_EMAIL},
    {"key", required_argument, NULL, O_KEY},
    {"out", required_argument, NULL, O_OUT},
    {"pass-file", required_argument, NULL, O_PASS_FILE},
    {"force", no_argument, NULL, O_FORCE},
    {"p12", required_argument, NULL, O_P12},
    {"pem", no_argument, NULL, O_PEM},
    {"legacy", no_argument, NULL, O_LEGACY},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

struct copts {
	const char *name, *cn, *org, *unit, *city, *state, *country;
	const char *days, *san_domain, *san_email, *key, *out, *pass_file;
	const char *p12;
	int force, pem, legacy, json;
	char **args; /* positional arguments */
	int nargs;
};

static const char *const usage_text =
    "usage: smimegate cert create --name NAME --cn CN [--org O] "
    "[--unit OU] [--city L] [--state ST] [--country CC] [--days N] "
    "[--san-domain D[,D...]] [--san-email E[,E...]] "
    "[--key rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384]\n"
    "       smimegate cert csr NAME --out FILE [--cn CN ...]\n"
    "       smimegate cert import FILE [--name NAME] [--pass-file F] "
    "[--key KEY.pem] [--force]\n"
    "       smimegate cert export NAME (--p12 FILE --pass-file F "
    "[--legacy] | --pem)\n"
    "       smimegate cert list [--json] | show NAME [--json] | "
    "delete NAME\n"
    "every command takes --store PATH (default var/smimegate.db) and "
    "--keyfile PATH (default <store>.key)\n";

/* Parses argv of a cert subcommand; -1 to go on, else an exit code. */
static int
parse(struct admin *a, const char *cmd, int argc, char **argv, struct copts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case O_STORE:
			a->store_path = optarg;
			break;
		case O_KEYFILE:
			a->keyfile = optarg;
			break;
		case O_NAME:
			o->name = optarg;
			break;
		case O_CN:
			o->cn = optarg;
			break;
		case O_ORG:
			o->org = optarg;
			break;
		case O_UNIT:
			o->unit = optarg;
			break;
		case O_CITY:
			o->city = optarg;
			break;
		case O_STATE:
			o->state = optarg;
			break;
		case O_COUNTRY:
			o->country = optarg;
			break;
		case O_DAYS:
			o->days = optarg;
			break;
		case O_SAN_DOMAIN:
			o->san_domain = optarg;
			break;
		case O_SAN_EMAIL:
			o->san_email = optarg;
			break;
		case O_KEY:
			o->key = optarg;
			break;
		case O_OUT:
			o->out = optarg;
			break;
		case O_PASS_FILE:
			o->pass_file = optarg;
			break;
		case O_FORCE:
			o->force = 1;
			break;
		case O_P12:
			o->p12 = optarg;
			break;
		case O_PEM:
			o->pem = 1;
			break;
		case O_LEGACY:
			o->legacy = 1;
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			return 0;
		default:
			return cli_usage(cmd,
			                 "unknown or incomplete option "
			                 "\"%s\"",
			                 argv[optind - 1]);
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	return -1;
}

static int
keytype(const char *s, enum sg_keytype *out)
{
	static const struct {
		const char *name;
		enum sg_keytype t;
	} types[] = {
	    {"rsa:2048", SG_KEY_RSA2048}, {"rsa:3072", SG_KEY_RSA3072},
	    {"rsa:4096", SG_KEY_RSA4096}, {"ec:p256", SG_KEY_EC_P256},
	    {"ec:p384", SG_KEY_EC_P384},
	};
	if (s == NULL) {
		*out = SG_KEY_RSA2048;
		return 0;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
		if (strcmp(s, types[i].name) == 0) {
			*out = types[i].t;
			return 0;
		}
	return -1;
}

/* The certificate fields of O into REQ (lists allocated into *EMAILS and
 * *DOMAINS).  -1 to go on, else an exit code. */
static int
fill_req(const char *cmd, const struct copts *o, struct sg_cert_req *req,
         char ***emails, char ***domains)
{
	char *end;
	long days = 365;

	memset(req, 0, sizeof(*req));
	*emails = *domains = NULL;
	if (o->cn == NULL || *o->cn == '\0')
		return cli_usage(cmd, "--cn is required");
	if (o->country != NULL && strlen(o->country) != 2)
		return cli_usage(cmd,
		                 "--country wants a 2-letter ISO code, not "
		                 "\"%s\"",
		                 o->country);
	if (o->days != NULL) {
		errno = 0;
		days = strtol(o->days, &end, 10);
		if (errno || *end || days < 1 || days > 36500)
			return cli_usage(cmd,
			                 "--days wants 1 to 36500, not "
			                 "\"%s\"",
			                 o->days);
	}
	if (keytype(o->key, &req->key) == -1)
		return cli_usage(cmd,
		                 "--key wants rsa:2048, rsa:3072, "
		                 "rsa:4096, ec:p256 or ec:p384, not \"%s\"",
		                 o->key);
	if ((o->san_email && admin_split_list(o->san_email, emails) == -1) ||
	    (o->san_domain && admin_split_list(o->san_domain, domains) == -1))
		return cli_fail(NULL, cmd, SG_ERR_NOMEM);
	for (char **e = *emails; e && *e; e++)
		if (strchr(*e, '@') == NULL)
			return cli_usage(cmd,
			                 "--san-email: \"%s\" is not an "
			                 "address",
			                 *e);
	req->cn = o->cn;
	req->org = o->org;
	req->unit = o->unit;
	req->city = o->city;
	req->state = o->state;
	req->country = o->country;
	req->days = (unsigned)days;
	req->san_emails = (const char *const *)*emails;
	req->san_domains = (const char *const *)*domains;
	return -1;
}

static int
cert_create(int argc, char **argv)
{
	struct admin a = {0};
	struct copts o;
	struct sg_cert_req req;
	char **emails = NULL, **domains = NULL;
	struct sg_key *key = NULL;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, "cert create", argc, argv, &o)) != -1)
		return rc;
	if (o.nargs > 0)
		return cli_usage("cert create", "unexpected argument \"%s\"",
		                 o.args[0]);
	if (!admin_name_ok(o.name))
		return cli_usage("cert create", "--name wants 1 to 128 of "
		                                "A-Z a-z 0-9 . _ @ + -");
	if ((rc = fill_req("cert create", &o, &req, &emails, &domains)) != -1)
		goto out;
	if ((rc = admin_open(&a, "cert create", 1)) != -1)
		goto out;
	if ((st = sg_cert_create(a.ctx, &req, NULL, &key)) != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	if ((st = store_put_key(a.st, o.name, key, "created")) != SG_OK) {
		rc = admin_fail(&a, st);
		goto out;
	}
	struct store_entry e;
	if (store_get(a.st, STORE_ORG, o.name, &e) == SG_OK) {
		printf("created %s: %s, %s, self-signed (fit for tests and "
		       "internal mail; get a CA-issued certificate with `cert "
		       "csr` for mail to outsiders), sha256:%s\n",
		       o.name, e.info.subject, e.info.key_type,
		       e.info.fingerprint);
		store_entry_clear(&e);
	}
	rc = 0;
out:
	sg_key_free(key);
	admin_strv_free(emails);
	admin_strv_free(domains);
	return admin_close(&a, rc);
}

/* Writes TEXT to PATH as --out does (cli_out: replaced only once complete,
 * or written to a stream), a new file with MODE less the umask. */
static int
write_text(const char *cmd, const char *path, const char *text, mode_t mode)
{
	struct cli_out out;
	mode_t um = umask(0);
	int ok;

	umask(um);
	if (cli_out_open(&out, path, 1) == -1) {
		fprintf(stderr, "smimegate: %s: io: %s: %s\n", cmd, path,
		        strerror(errno));
		return sg_status_exit_code(SG_ERR_IO);
	}
	ok = (out.file == NULL || fchmod(out.fd, mode & ~um) == 0) &&
	     fsio_write_all(out.fd, text, strlen(text)) == 0;
	if (cli_out_close(&out, ok) == -1 || !ok) {
		fprintf(stderr, "smimegate: %s: io: %s: %s\n", cmd, path,
		        strerror(errno));
		return sg_status_exit_code(SG_ERR_IO);
	}
	return 0;
}

static int
cert_csr(int argc, char **argv)
{
	struct admin a = {0};
	struct copts o;
	struct sg_cert_req req;
	char **emails = NULL, **domains = NULL, *pem = NULL;
	struct sg_key *key = NULL;
	enum sg_status st;
	int rc, fresh = 0;

	if ((rc = parse(&a, "cert csr", argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1 || !admin_name_ok(o.args[0]) || o.out == NULL)
		return cli_usage("cert csr", "give NAME and --out FILE");
	if ((rc = admin_open(&a, "cert csr", 1)) != -1)
		goto out;
	st = store_get_key(a.st, o.args[0], &key);
	if (st == SG_OK && sg_key_has_cert(key)) {
		/* Renewal of an existing certificate: its key, its subject
		 * and SANs, unless fields are given. */
		if (o.cn != NULL && (rc = fill_req("cert csr", &o, &req,
		                                   &emails, &domains)) != -1)
			goto out;
		st = sg_csr_create(a.ctx, o.cn ? &req : NULL, &key, &pem);
	} else if (st == SG_OK) {
		/* Pending already: the same request again. */
		if ((st = store_get_csr(a.st, o.args[0], &pem)) != SG_OK) {
			rc = admin_fail(&a, st);
			goto out;
		}
	} else if (st == SG_ERR_NOT_FOUND) {
		if ((rc = fill_req("cert csr", &o, &req, &emails, &domains)) !=
		    -1)
			goto out;
		if ((st = sg_csr_create(a.ctx, &req, &key, &pem)) == SG_OK)
			fresh = 1;
	} else {
		rc = admin_fail(&a, st);
		goto out;
	}
	if (st != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	if (fresh && (st = store_put_csr(a.st, o.args[0], key, pem)) != SG_OK) {
		rc = admin_fail(&a, st);
		goto out;
	}
	if ((rc = write_text("cert csr", o.out, pem, 0644)) != 0)
		goto out;
	fprintf(stderr,
	        "smimegate: wrote %s: send it to a CA that issues "
	        "email-protection certificates, then `smimegate cert import` "
	        "what it returns\n",
	        o.out);
	rc = 0;
out:
	free(pem);
	sg_key_free(key);
	admin_strv_free(emails);
	admin_strv_free(domains);
	return admin_close(&a, rc);
}

/* Errors and warnings about our certificate [0] of CERTS, at now. */
static int
check_ours(struct admin *a, const struct sg_certs *certs, int force)
{
	struct sg_cert_info i;
	time_t now = sg_ctx_now(a->ctx);
	const char *warn = NULL;
	enum sg_status wst = SG_OK;
	int rc = -1;

	if (sg_certs_info(certs, 0, &i) != SG_OK)
		return cli_fail(NULL, a->cmd, SG_ERR_NOMEM);
	if (!i.can_sign && !i.can_encrypt) {
		/* An error: never overridden. */
		fprintf(stderr,
		        "smimegate: %s: key-usage: %s is fit neither for "
		        "signing (%s) nor for encryption (%s)\n",
		        a->cmd, i.subject, i.unfit_sign, i.unfit_encrypt);
		rc = sg_status_exit_code(SG_ERR_KEY_USAGE);
		goto out;
	}
	if (i.not_after < now) {
		warn = "has expired";
		wst = SG_ERR_EXPIRED;
	} else if (i.not_before > now) {
		warn = "is not valid yet";
		wst = SG_ERR_EXPIRED;
	} else if (strncmp(i.key_type, "rsa:", 4) == 0 &&
	           atoi(i.key_type + 4) < 2048) {
		warn = "has an RSA key shorter than 2048 bits";
		wst = SG_ERR_KEY_USAGE;
	} else if (i.self_signed) {
		/* Seed 000: fit for tests and internal mail, not for
		 * signing mail to outsiders. */
		warn = "is self-signed: fit for tests and internal mail, not "
		       "for signing mail to outsiders";
		wst = SG_ERR_UNTRUSTED;
	}
	if (warn != NULL && !force) {
		fprintf(stderr,
		        "smimegate: %s: %s: %s %s (--force imports it "
		        "anyway)\n",
		        a->cmd, sg_status_name(wst), i.subject, warn);
		rc = sg_status_exit_code(wst);
	} else if (warn != NULL) {
		fprintf(stderr, "smimegate: %s: warning: %s %s\n", a->cmd,
		        i.subject, warn);
	}
out:
	sg_cert_info_clear(&i);
	return rc;
}

/* The name for an imported certificate: --name, else its first email,
 * else its CN-ish subject, made safe. */
static char *
derive_name(const struct sg_certs *certs, const char *given)
{
	struct sg_cert_info i;
	char *n;

	if (given != NULL)
		return strdup(given);
	if (sg_certs_info(certs, 0, &i) != SG_OK)
		return NULL;
	n = strdup(i.emails[0]    ? i.emails[0]
	           : i.domains[0] ? i.domains[0]
	                          : i.fingerprint);
	for (char *c = n; c && *c; c++)
		if (!admin_name_ok((char[]){*c, '\0'}))
			*c = '_';
	sg_cert_info_clear(&i);
	return n;
}

static int
cert_import(int argc, char **argv)
{
	struct admin a = {0};
	struct copts o;
	struct sg_key *key = NULL;
	struct sg_certs *certs = NULL;
	char *pass = NULL, *name = NULL;
	enum sg_status st;
	int rc;

	if ((rc = parse(&a, "cert import", argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1)
		return cli_usage("cert import", "give one FILE");
	if (o.name != NULL && !admin_name_ok(o.name))
		return cli_usage("cert import", "--name wants 1 to 128 of "
		                                "A-Z a-z 0-9 . _ @ + -");
	if (o.pass_file && (pass = cli_read_pass(o.pass_file)) == NULL) {
		fprintf(stderr,
		        "smimegate: cert import: usage: cannot read "
		        "%s: %s\n",
		        o.pass_file, strerror(errno));
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	if ((rc = admin_open(&a, "cert import", 1)) != -1)
		goto out;
	/* PKCS#12 first; a file that is not one is certificates (+ key). */
	st = sg_key_load_p12(a.ctx, o.args[0], pass, &key);
	if (st == SG_ERR_BADKEY)
		st = sg_key_load_files(a.ctx, o.args[0],
		                       o.key ? o.key : o.args[0], pass, &key);
	if (st == SG_ERR_BADKEY && o.key == NULL) {
		/* Certificates alone: the answer to a pending CSR? */
		if (sg_certs_new(&certs) != SG_OK ||
		    sg_certs_load_file(a.ctx, certs, o.args[0]) != SG_OK) {
			rc = admin_fail_ctx(&a, sg_ctx_last_status(a.ctx));
			goto out;
		}
		if ((rc = check_ours(&a, certs, o.force)) != -1)
			goto out;
		st = store_attach_cert(a.st, certs, 0, &name);
		if (st == SG_ERR_NOT_FOUND) {
			fprintf(stderr,
			        "smimegate: cert import: not-found: no private "
			        "key in %s and no pending CSR for this "
			        "certificate (give --key, or add a partner's "
			        "certificate with `smimegate key add`)\n",
			        o.args[0]);
			rc = sg_status_exit_code(st);
			goto out;
		}
		if (st != SG_OK) {
			rc = admin_fail(&a, st);
			goto out;
		}
		printf("imported the CA-issued certificate for the pending "
		       "request %s\n",
		       name);
		rc = 0;
		goto out;
	}
	if (st != SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	if ((st = sg_key_get_certs(key, &certs)) != SG_OK) {
		rc = cli_fail(NULL, a.cmd, st);
		goto out;
	}
	if ((rc = check_ours(&a, certs, o.force)) != -1)
		goto out;
	if ((name = derive_name(certs, o.name)) == NULL) {
		rc = cli_fail(NULL, a.cmd, SG_ERR_NOMEM);
		goto out;
	}
	if ((st = store_put_key(a.st, name, key, "imported")) != SG_OK) {
		rc = admin_fail(&a, st);
		goto out;
	}
	printf("imported %s\n", name);
	rc = 0;
out:
	if (pass != NULL) {
		explicit_bzero(pass, strlen(pass));
		free(pass);
	}
	free(name);
	sg_certs_free(certs);
	sg_key_free(key);
	return admin_close(&a, rc);
}

static int
cert_export(int argc, char **argv)
{
	struct admin a = {0};
	struct copts o;
	struct sg_key *key = NULL;
	struct sg_certs *certs = NULL;
	struct sg_sink sink;
	struct cli_out p12;
	char *pass = NULL;
	enum sg_status st;
	int rc, p12_open = 0, out = STDOUT_FILENO;

	if ((rc = parse(&a, "cert export", argc, argv, &o)) != -1)
		return rc;
	if (o.nargs != 1 || (o.p12 == NULL) == (o.pem == 0))
		return cli_usage("cert export", "give NAME and either --p12 "
		                                "FILE --pass-file F, or --pem");
	if (o.p12 != NULL && o.pass_file == NULL)
		return cli_usage("cert export", "--p12 needs --pass-file: a "
		                                "private key never leaves "
		                                "unprotected");
	if (o.pass_file && (pass = cli_read_pass(o.pass_file)) == NULL) {
		fprintf(stderr,
		        "smimegate: cert export: usage: cannot read "
		        "%s: %s\n",
		        o.pass_file, strerror(errno));
		return sg_status_exit_code(SG_ERR_USAGE);
	}
	if ((rc = admin_open(&a, "cert export", 0)) != -1)
		goto out;
	if (o.pem) {
		if ((st = store_get_certs(a.st, STORE_ORG, o.args[0],
		                          &certs)) != SG_OK) {
			rc = admin_fail(&a, st);
			goto out;
		}
		sg_sink_fd(&sink, &out);
		st = sg_certs_write_pem(a.ctx, certs, &sink);
		rc = st == SG_OK ? 0 : admin_fail_ctx(&a, st);
		goto out;
	}
	if ((st = store_get_key(a.st, o.args[0], &key)) != SG_OK) {
		rc = admin_fail(&a, st);
		goto out;
	}
	/* 0600 from the start, renamed into place when complete (or a
	 * stream written only on success). */
	if (cli_out_open(&p12, o.p12, 0) == -1) {
		fprintf(stderr, "smimegate: cert export: io: %s: %s\n", o.p12,
		        strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
		goto out;
	}
	p12_open = 1;
	sg_sink_fd(&sink, &p12.fd);
	if ((st = sg_key_write_p12(a.ctx, key, pass, o.legacy, &sink)) !=
	    SG_OK) {
		rc = admin_fail_ctx(&a, st);
		goto out;
	}
	p12_open = 0;
	if (cli_out_close(&p12, 1) == -1) {
		fprintf(stderr, "smimegate: cert export: io: %s: %s\n", o.p12,
		        strerror(errno));
		rc = sg_status_exit_code(SG_ERR_IO);
		goto out;
	}
	fprintf(stderr, "smimegate: wrote %s (%s PKCS#12)\n", o.p12,
	        o.legacy ? "legacy 3DES/SHA-1" : "AES-256/PBKDF2");
	rc = 0;
out:
	if (p12_open)
		(void)cli_out_close(&p12, 0);
	if (pass != NULL) {
		explicit_bzero(pass, strlen(pass));
		free(pass);
	}
	sg_certs_free(certs);
	sg_key_free(key);
	return admin_close(&a, rc);
}

int
admin_list_show_delete(const char *cmd, enum store_role role, int argc,
                       char **argv)
{
	struct admin a = {0};
	struct copts o;
	struct store_entry *v = NULL, e;
	size_t n = 0;
	enum sg_status st;
	int rc;
	const char *sub = strrchr(cmd, ' ') + 1;

	if ((rc = parse(&a, cmd, argc, argv, &o)) != -1)
		return rc;
	if (strcmp(sub, "list") == 0 ? o.nargs != 0 : o.nargs != 1)
		return cli_usage(cmd, strcmp(sub, "list") == 0
		                          ? "takes no argument"
		                          : "give one NAME");
	if ((rc = admin_open(&a, cmd, 0)) != -1)
		return admin_close(&a, rc);
	if (strcmp(sub, "list") == 0) {
		if ((st = store_list(a.st, role, &v, &n)) != SG_OK)
			return admin_close(&a, admin_fail(&a, st));
		for (size_t k = 0; k < n; k++)
			admin_fill_pending(&a, &v[k]);
		admin_print_list(stdout, v, n, o.json, sg_ctx_now(a.ctx));
		store_entries_free(v, n);
		char *sys = NULL;
		if (role == STORE_CA && !o.json) {
			int on = store_get_setting(a.st, "trust_system_bundle",
			                           &sys) == SG_OK &&
			         strcmp(sys, "1") == 0;
			printf("system CA bundle (%s): %s\n", SG_SYSTEM_BUNDLE,
			       on ? "on" : "off");
		}
		free(sys);
	} else if (strcmp(sub, "show") == 0) {
		if ((st = store_get(a.st, role, o.args[0], &e)) != SG_OK)
			return admin_close(&a, admin_fail(&a, st));
		admin_fill_pending(&a, &e);
		if (o.json) {
			admin_print_json(stdout, &e, sg_ctx_now(a.ctx));
			putchar('\n');
		} else {
			admin_print_show(stdout, &e, sg_ctx_now(a.ctx));
		}
		store_entry_clear(&e);
	} else {
		if ((st = store_delete(a.st, role, o.args[0])) != SG_OK)
			return admin_close(&a, admin_fail(&a, st));
		printf("deleted %s\n", o.args[0]);
	}
	return admin_close(&a, 0);
}

int
cmd_cert(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "create") == 0)
		return cert_create(argc - 1, argv + 1);
	if (strcmp(sub, "csr") == 0)
		return cert_csr(argc - 1, argv + 1);
	if (strcmp(sub, "import") == 0)
		return cert_import(argc - 1, argv + 1);
	if (strcmp(sub, "export") == 0)
		return cert_export(argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return admin_list_show_delete("cert list", STORE_ORG, argc - 1,
		                              argv + 1);
	if (strcmp(sub, "show") == 0)
		return admin_list_show_delete("cert show", STORE_ORG, argc - 1,
		                              argv + 1);
	if (strcmp(sub, "delete") == 0)
		return admin_list_show_delete("cert delete", STORE_ORG,
		                              argc - 1, argv + 1);
	if (strcmp(sub, "--help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	return cli_usage("cert",
	                 "unknown subcommand \"%s\" (create, csr, "
	                 "import, export, list, show, delete)",
	                 sub);
}

int
cmd_store(int argc, char **argv)
{
	struct admin a = {0};
	struct copts o;
	enum sg_status st;
	int rc;

	if (argc < 2 || strcmp(argv[1], "init") != 0)
		return cli_usage("store", "the subcommand is init");
	if ((rc = parse(&a, "store init", argc - 1, argv + 1, &o)) != -1)
		return rc;
	if (o.nargs != 0)
		return cli_usage("store init", "unexpected argument \"%s\"",
		                 o.args[0]);
	if (a.store_path == NULL)
		a.store_path = "var/smimegate.db";
	if (sg_ctx_new(&a.ctx) != SG_OK)
		return cli_fail(NULL, "store init", SG_ERR_NOMEM);
	admin_make_parent(a.store_path);
	if ((st = store_init(a.ctx, a.store_path, a.keyfile)) != SG_OK) {
		fprintf(stderr, "smimegate: store init: %s: %s: %s\n",
		        sg_status_name(st), a.store_path,
		        st == SG_ERR_EXISTS ? "a store is already there"
		                            : sg_ctx_error(a.ctx));
		return admin_close(&a, sg_status_exit_code(st));
	}
	printf("created the store %s (0600) and its master key %s%s (0400): "
	       "back up both, separately\n",
	       a.store_path, a.keyfile ? a.keyfile : a.store_path,
	       a.keyfile ? "" : ".key");
	return admin_close(&a, 0);
}
