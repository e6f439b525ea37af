/* The PostgreSQL index backend (libpq): the same SQL as SQLite's, prepared once per connection. */
#include "archive/db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The archive's SQL uses `?` placeholders; they become $1, $2... here (outside quoted
 * literals). Statements are prepared on first use and kept per connection, like SQLite's
 * cache. Values travel as text both ways; integer columns (int2/int4/int8) come back as
 * integers, everything else as text. Commits are durable with the server's defaults
 * (synchronous_commit on).
 */

#define CACHE_SIZE 64
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23

typedef struct cached {
    char *sql;
    char name[16];
    uint64_t used;
} cached;

typedef struct pg_db {
    mira__db base;
    PGconn *conn;
    cached cache[CACHE_SIZE];
    uint64_t tick;
    unsigned next_name;
} pg_db;

static bool fail_conn(pg_db *db, const char *what, mira_error **err)
{
    const char *m = PQerrorMessage(db->conn);
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    mira_error_set(err, MIRA_ERR_IO, "Index database error", "PostgreSQL: %s: %.*s", what, (int)n,
                   m);
    return false;
}

static bool fail_result(PGresult *r, const char *what, mira_error **err)
{
    const char *m = PQresultErrorMessage(r);
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* 23505 unique_violation, 40001 serialization_failure: someone else changed the rows */
    mira_error_code code = state && (strcmp(state, "23505") == 0 || strcmp(state, "40001") == 0)
                               ? MIRA_ERR_CONFLICT
                               : MIRA_ERR_IO;
    mira_error_set(err, code, "Index database error", "PostgreSQL: %s: %.*s", what, (int)n, m);
    PQclear(r);
    return false;
}

static bool p_exec(mira__db *base, const char *sql, mira_error **err)
{
    pg_db *db = (pg_db *)base;
    PGresult *r = PQexec(db->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return fail_result(r, "running SQL", err);
    PQclear(r);
    return true;
}

/* The statement text with $n placeholders (owned). */
static char *number_placeholders(const char *sql)
{
    size_t n = strlen(sql);
    char *out = mira_malloc(n * 4 + 1), *o = out;
    if (!out)
        return NULL;
    bool quoted = false;
    unsigned k = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'')
            quoted = !quoted;
        if (*p == '?' && !quoted)
            o += sprintf(o, "$%u", ++k);
        else
            *o++ = *p;
    }
    *o = 0;
    return out;
}

static const char *prepare(pg_db *db, const char *sql, size_t nparams, mira_error **err)
{
    cached *victim = &db->cache[0];
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        cached *c = &db->cache[i];
        if (c->sql && strcmp(c->sql, sql) == 0) {
            c->used = ++db->tick;
            return c->name;
        }
        if (!c->sql || c->used < victim->used)
            victim = c;
    }
    char *text = number_placeholders(sql);
    char *copy = mira_strdup(sql);
    if (!text || !copy) {
        mira_free(text);
        mira_free(copy);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "preparing a statement");
        return NULL;
    }
    if (victim->sql) {
        char dealloc[64];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", victim->name);
        PQclear(PQexec(db->conn, dealloc));
        mira_free(victim->sql);
        victim->sql = NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "s%u", ++db->next_name);
    PGresult *r = PQprepare(db->conn, name, text, (int)nparams, NULL);
    mira_free(text);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        mira_free(copy);
        fail_result(r, "preparing a statement", err);
        return NULL;
    }
    PQclear(r);
    victim->sql = copy;
    snprintf(victim->name, sizeof victim->name, "%s", name);
    victim->used = ++db->tick;
    return victim->name;
}

static bool p_query(mira__db *base, const char *sql, const mira__dbval *params, size_t nparams,
                    mira__db_row_fn fn, void *ctx, int64_t *changes, mira_error **err)
{
    pg_db *db = (pg_db *)base;
    const char *name = prepare(db, sql, nparams, err);
    if (!name)
        return false;
    const char *values[512];
    char ints[512][24];
    if (nparams > 512) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Query too large", "%zu parameters", nparams);
        return false;
    }
    for (size_t i = 0; i < nparams; i++) {
        switch (params[i].type) {
        case MIRA__DB_INT:
            snprintf(ints[i], sizeof ints[i], "%lld", (long long)params[i].i);
            values[i] = ints[i];
            break;
        case MIRA__DB_TEXT:
            values[i] = params[i].s;
            break;
        default:
            values[i] = NULL;
            break;
        }
    }
    PGresult *r = PQexecPrepared(db->conn, name, (int)nparams, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return fail_result(r, "running a statement", err);
    if (changes) {
        const char *t = PQcmdTuples(r);
        *changes = t && *t ? strtoll(t, NULL, 10) : 0;
    }
    if (fn && st == PGRES_TUPLES_OK) {
        int rows = PQntuples(r), ncols = PQnfields(r);
        if (ncols > 64)
            ncols = 64;
        mira__dbval cols[64];
        bool isint[64];
        for (int c = 0; c < ncols; c++) {
            Oid t = PQftype(r, c);
            isint[c] = t == INT8OID || t == INT4OID || t == INT2OID;
        }
        for (int row = 0; row < rows; row++) {
            for (int c = 0; c < ncols; c++) {
                if (PQgetisnull(r, row, c))
                    cols[c] = (mira__dbval){MIRA__DB_NULL, 0, NULL};
                else if (isint[c])
                    cols[c] =
                        (mira__dbval){MIRA__DB_INT, strtoll(PQgetvalue(r, row, c), NULL, 10), NULL};
                else
                    cols[c] = (mira__dbval){MIRA__DB_TEXT, 0, PQgetvalue(r, row, c)};
            }
            if (!fn(ctx, cols, (size_t)ncols))
                break;
        }
    }
    PQclear(r);
    return true;
}

/*
 * Write transactions take one transaction-level advisory lock (per database), so the writers
 * of every mira process on an index run one after the other, as SQLite's BEGIN IMMEDIATE
 * makes them. Without it two writers race: both find no row for a new patient, study or
 * series and both insert it, and the second fails on the unique key (or two batches deadlock
 * on each other's rows, and one fails whole); two processes opening a new index both create
 * the tables. A retry of the failed item would mend only the first case. Readers never take
 * the lock; the group commit pays for it once per batch. The lock goes with the transaction
 * (COMMIT or ROLLBACK, or the connection lost).
 */
#define WRITER_LOCK "SELECT pg_advisory_xact_lock(1835627105)" /* 'mira' */

static bool p_begin_write(mira__db *base, mira_error **err)
{
    if (!p_exec(base, "BEGIN", err))
        return false;
    if (!p_exec(base, WRITER_LOCK, err)) {
        (void)p_exec(base, "ROLLBACK", NULL);
        return false;
    }
    return true;
}

static void p_close(mira__db *base)
{
    pg_db *db = (pg_db *)base;
    for (size_t i = 0; i < CACHE_SIZE; i++)
        mira_free(db->cache[i].sql);
    PQfinish(db->conn);
    mira_free(db);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static const mira__db_ops pg_ops = {
    .name = "postgresql",
    .glob = false,
    .exec = p_exec,
    .query = p_query,
    .begin_write = p_begin_write,
    .close = p_close,
};

mira__db *mira__db_open_postgres(const char *conninfo, mira_error **err)
{
    pg_db *db = mira_calloc(1, sizeof *db);
    if (!db) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "connecting to PostgreSQL");
        return NULL;
    }
    db->base.ops = &pg_ops;
    db->conn = PQconnectdb(conninfo);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        if (db->conn)
            fail_conn(db, "connecting", err);
        else
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "connecting to PostgreSQL");
        PQfinish(db->conn);
        mira_free(db);
        return NULL;
    }
    /* quiet notices (they would go to stderr from inside the library) */
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    if (!p_exec(&db->base, "SET client_encoding = 'UTF8'; SET standard_conforming_strings = on",
                err)) {
        p_close(&db->base);
        return NULL;
    }
    return &db->base;
}
