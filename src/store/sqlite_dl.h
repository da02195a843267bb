/*
 * sqlite_dl.h - SQLite, opened when a store is first opened (lib/dl.h
 * says why it is not linked).
 *
 * A file that calls SQLite includes this instead of <sqlite3.h>; the
 * macros at the end turn each call into a call through the table.  A
 * function missing from SG_SQLITE_FUNCS fails to compile, one missing from
 * the macros fails to link.  store_open() calls sqlite_load() first, so
 * that an SQLite that cannot be loaded is an error with the file's name in
 * the reason; every later call finds the table loaded.
 */
#ifndef SG_SQLITE_DL_H
#define SG_SQLITE_DL_H

#include <sqlite3.h>

#include "lib/dl.h"

#define SG_SQLITE_FUNCS(X)                                                     \
	X(sqlite3_bind_blob)                                                   \
	X(sqlite3_bind_int)                                                    \
	X(sqlite3_bind_int64)                                                  \
	X(sqlite3_bind_text)                                                   \
	X(sqlite3_busy_timeout)                                                \
	X(sqlite3_changes)                                                     \
	X(sqlite3_clear_bindings)                                              \
	X(sqlite3_close)                                                       \
	X(sqlite3_close_v2)                                                    \
	X(sqlite3_column_blob)                                                 \
	X(sqlite3_column_bytes)                                                \
	X(sqlite3_column_int64)                                                \
	X(sqlite3_column_name)                                                 \
	X(sqlite3_column_text)                                                 \
	X(sqlite3_column_type)                                                 \
	X(sqlite3_db_config)                                                   \
	X(sqlite3_errmsg)                                                      \
	X(sqlite3_errstr)                                                      \
	X(sqlite3_exec)                                                        \
	X(sqlite3_extended_result_codes)                                       \
	X(sqlite3_finalize)                                                    \
	X(sqlite3_get_autocommit)                                              \
	X(sqlite3_last_insert_rowid)                                           \
	X(sqlite3_limit)                                                       \
	X(sqlite3_open)                                                        \
	X(sqlite3_open_v2)                                                     \
	X(sqlite3_prepare_v2)                                                  \
	X(sqlite3_reset)                                                       \
	X(sqlite3_step)                                                        \
	X(sqlite3_vfs_find)                                                    \
	X(sqlite3_vfs_register)                                                \
	X(sqlite3_vfs_unregister)

struct sqlite_api {
	SG_SQLITE_FUNCS(SG_DL_MEMBER)
};

SG_DL_DECLARE(sqlite, sqlite_api, "SQLite")

#ifndef SG_SQLITE_DL_IMPL
#define sqlite3_bind_blob             (sqlite()->sqlite3_bind_blob)
#define sqlite3_bind_int              (sqlite()->sqlite3_bind_int)
#define sqlite3_bind_int64            (sqlite()->sqlite3_bind_int64)
#define sqlite3_bind_text             (sqlite()->sqlite3_bind_text)
#define sqlite3_busy_timeout          (sqlite()->sqlite3_busy_timeout)
#define sqlite3_changes               (sqlite()->sqlite3_changes)
#define sqlite3_clear_bindings        (sqlite()->sqlite3_clear_bindings)
#define sqlite3_close                 (sqlite()->sqlite3_close)
#define sqlite3_close_v2              (sqlite()->sqlite3_close_v2)
#define sqlite3_column_blob           (sqlite()->sqlite3_column_blob)
#define sqlite3_column_bytes          (sqlite()->sqlite3_column_bytes)
#define sqlite3_column_int64          (sqlite()->sqlite3_column_int64)
#define sqlite3_column_name           (sqlite()->sqlite3_column_name)
#define sqlite3_column_text           (sqlite()->sqlite3_column_text)
#define sqlite3_column_type           (sqlite()->sqlite3_column_type)
#define sqlite3_db_config             (sqlite()->sqlite3_db_config)
#define sqlite3_errmsg                (sqlite()->sqlite3_errmsg)
#define sqlite3_errstr                (sqlite()->sqlite3_errstr)
#define sqlite3_exec                  (sqlite()->sqlite3_exec)
#define sqlite3_extended_result_codes (sqlite()->sqlite3_extended_result_codes)
#define sqlite3_finalize              (sqlite()->sqlite3_finalize)
#define sqlite3_get_autocommit        (sqlite()->sqlite3_get_autocommit)
#define sqlite3_last_insert_rowid     (sqlite()->sqlite3_last_insert_rowid)
#define sqlite3_limit                 (sqlite()->sqlite3_limit)
#define sqlite3_open                  (sqlite()->sqlite3_open)
#define sqlite3_open_v2               (sqlite()->sqlite3_open_v2)
#define sqlite3_prepare_v2            (sqlite()->sqlite3_prepare_v2)
#define sqlite3_reset                 (sqlite()->sqlite3_reset)
#define sqlite3_step                  (sqlite()->sqlite3_step)
#define sqlite3_vfs_find              (sqlite()->sqlite3_vfs_find)
#define sqlite3_vfs_register          (sqlite()->sqlite3_vfs_register)
#define sqlite3_vfs_unregister        (sqlite()->sqlite3_vfs_unregister)
#endif

#endif
