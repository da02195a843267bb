/*
 * admin.h - shared by the store commands (store, cert, key, ca).
 */
#ifndef SG_CLI_ADMIN_H
#define SG_CLI_ADMIN_H

#include <stdio.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

/* One admin command's state. */
struct admin {
	const char *cmd;        /* "cert create", for messages */
	const char *store_path; /* --store, default var/smimegate.db */
	const char *keyfile;    /* --keyfile, default <store>.key */
	struct sg_ctx *ctx;
	struct store *st;
};

/* Opens the store; with CREATE, a missing store is created first (the
 * commands that write).  Returns -1 to go on, else an exit code (the
 * reason printed). */
int admin_open(struct admin *a, const char *cmd, int create);
/* Prints the store's (or the handle's) reason for ST; returns its exit
 * code. */
int admin_fail(struct admin *a, enum sg_status st);
int admin_fail_ctx(struct admin *a, enum sg_status st);
/* Closes everything; returns RC. */
int admin_close(struct admin *a, int rc);

/* mkdir -p, 0700, for the directory part of PATH. */
void admin_make_parent(const char *path);
/* `CMD list|show|delete` for any role (CMD ends with the subcommand). */
int admin_list_show_delete(const char *cmd, enum store_role role, int argc,
                           char **argv);

/* Names: 1 to 128 of [A-Za-z0-9._@+-]. */
int admin_name_ok(const char *name);

void admin_print_json(FILE *f, const struct store_entry *e, time_t now);
/* A pending CSR's entry gets what the request says (subject, SANs). */
void admin_fill_pending(struct admin *a, struct store_entry *e);
void admin_print_list(FILE *f, const struct store_entry *v, size_t n, int json,
                      time_t now);
void admin_print_show(FILE *f, const struct store_entry *e, time_t now);

/* "a,b,c" -> NULL-terminated list (admin_strv_free). */
int admin_split_list(const char *arg, char ***out);
void admin_strv_free(char **v);

int cmd_store(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
