/* The index database interface: one vtable, two backends (index/sqlite.c, index/postgres.c). */
#ifndef MIRA_ARCHIVE_DB_H
#define MIRA_ARCHIVE_DB_H

#include "mira/core.h"

/*
 * SQL is written once, with `?` placeholders, in the dialect both backends accept (SQLite
 * 3.40 and PostgreSQL 15 share ON CONFLICT, RETURNING, CTEs and window functions). What
 * differs is behind the vtable: placeholders ($1 for libpq), the DDL type names (see
 * schema.c) and wildcard matching (GLOB in SQLite, which is case-sensitive and uses * and ?
 * like DICOM; LIKE ... ESCAPE in PostgreSQL).
 *
 * A connection is used by one thread at a time. Values passed and received are borrowed:
 * text received in a row callback is valid only during the callback.
 */

typedef enum mira__dbtype {
    MIRA__DB_NULL = 0,
    MIRA__DB_INT = 1,
    MIRA__DB_TEXT = 2,
} mira__dbtype;

typedef struct mira__dbval {
    mira__dbtype type;
    int64_t i;
    const char *s; /* NUL-terminated */
} mira__dbval;

static inline mira__dbval mira__db_int(int64_t i)
{
    mira__dbval v = {MIRA__DB_INT, i, NULL};
    return v;
}

/* Text; NULL gives an SQL NULL. */
static inline mira__dbval mira__db_text(const char *s)
{
    mira__dbval v = {s ? MIRA__DB_TEXT : MIRA__DB_NULL, 0, s};
    return v;
}

/* Text; NULL and "" give an SQL NULL (absent and empty DICOM values are both stored as NULL). */
static inline mira__dbval mira__db_opt(const char *s)
{
    mira__dbval v = {s && *s ? MIRA__DB_TEXT : MIRA__DB_NULL, 0, s};
    return v;
}

/* A row: return false to stop reading rows (the query still succeeds). */
typedef bool (*mira__db_row_fn)(void *ctx, const mira__dbval *cols, size_t ncols);

typedef struct mira__db mira__db;

typedef struct mira__db_ops {
    const char *name; /* "sqlite" or "postgresql" */
    bool glob;        /* wildcards with GLOB (else LIKE with backslash escapes) */
    /* Several statements, no parameters, no results (DDL, BEGIN, COMMIT...). */
    bool (*exec)(mira__db *db, const char *sql, mira_error **err);
    /* One statement with parameters; fn (may be NULL) sees every row. *changes (may be
     * NULL) receives the number of rows an INSERT/UPDATE/DELETE touched. */
    bool (*query)(mira__db *db, const char *sql, const mira__dbval *params, size_t nparams,
                  mira__db_row_fn fn, void *ctx, int64_t *changes, mira_error **err);
    /* Start a transaction that will write; write transactions run one at a time across
     * processes (SQLite takes the write lock at once, PostgreSQL an advisory lock). */
    bool (*begin_write)(mira__db *db, mira_error **err);
    void (*close)(mira__db *db);
} mira__db_ops;

struct mira__db {
    const mira__db_ops *ops;
};

/* Open a connection: target is a file path for SQLite (created if missing), a libpq
 * connection string for PostgreSQL. */
mira__db *mira__db_open_sqlite(const char *path, mira_error **err);
mira__db *mira__db_open_postgres(const char *conninfo, mira_error **err);

static inline bool mira__db_exec(mira__db *db, const char *sql, mira_error **err)
{
    return db->ops->exec(db, sql, err);
}

static inline bool mira__db_query(mira__db *db, const char *sql, const mira__dbval *params,
                                  size_t nparams, mira__db_row_fn fn, void *ctx, mira_error **err)
{
    return db->ops->query(db, sql, params, nparams, fn, ctx, NULL, err);
}

bool mira__db_commit(mira__db *db, mira_error **err);
void mira__db_rollback(mira__db *db);
void mira__db_close(mira__db *db);

/* The first column of the first row as an integer; *found false if there was no row or it
 * was NULL. */
bool mira__db_query_int(mira__db *db, const char *sql, const mira__dbval *params, size_t n,
                        int64_t *out, bool *found, mira_error **err);

#endif
