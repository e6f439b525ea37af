/* The SQLite index backend: WAL, full synchronous commits, a cache of prepared statements. */
#include "archive/db.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

/*
 * Durability: journal_mode WAL with synchronous FULL, so a committed transaction survives a
 * power loss, not only a killed process (the archive acknowledges an instance after its
 * commit). Several connections (one per thread) share the file; writers wait for each other
 * through the busy timeout, readers never wait for writers.
 *
 * Writers of one process also queue on a mutex before BEGIN IMMEDIATE: SQLite's busy handler
 * waits by sleeping and polling (up to 100 ms a sleep), so two threads that write often (the
 * HL7 server's commits and the step that acts on the messages, the DICOM committer, the audit
 * log) would take turns at its pace, not at the pace of their commits. The mutex is held until
 * the transaction ends (COMMIT, ROLLBACK, or an error that ends it); a wait for it longer than
 * the busy timeout goes on to SQLite's own wait, as before (so a thread that would wait for
 * itself fails as it did, not for ever).
 *
 * Statements are prepared once per connection and kept in a small cache keyed by their text
 * (the archive's SQL is a few dozen fixed strings; queries built from a C-FIND identifier
 * come and go through the same cache, the oldest being finalised first).
 */

#define CACHE_SIZE 48

typedef struct cached {
    char *sql;
    sqlite3_stmt *stmt;
    uint64_t used;
} cached;

typedef struct sqlite_db {
    mira__db base;
    sqlite3 *h;
    cached cache[CACHE_SIZE];
    uint64_t tick;
    bool holds_writer; /* this connection holds writer_lock (a write transaction is open) */
} sqlite_db;

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;

/* After a statement: the write transaction has ended, so the mutex goes. */
static void writer_check(sqlite_db *db)
{
    if (db->holds_writer && sqlite3_get_autocommit(db->h)) {
        db->holds_writer = false;
        pthread_mutex_unlock(&writer_lock);
    }
}

static bool fail(sqlite_db *db, const char *what, mira_error **err)
{
    mira_error_set(err, sqlite3_errcode(db->h) == SQLITE_FULL ? MIRA_ERR_IO : MIRA_ERR_IO,
                   "Index database error", "SQLite: %s: %s", what, sqlite3_errmsg(db->h));
    return false;
}

static bool s_exec(mira__db *base, const char *sql, mira_error **err)
{
    sqlite_db *db = (sqlite_db *)base;
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mira_error_set(err, MIRA_ERR_IO, "Index database error", "SQLite: %s",
                       msg ? msg : sqlite3_errmsg(db->h));
        sqlite3_free(msg);
        writer_check(db);
        return false;
    }
    writer_check(db);
    return true;
}

static sqlite3_stmt *prepare(sqlite_db *db, const char *sql, mira_error **err)
{
    cached *victim = &db->cache[0];
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        cached *c = &db->cache[i];
        if (c->sql && strcmp(c->sql, sql) == 0) {
            c->used = ++db->tick;
            return c->stmt;
        }
        if (!c->sql || c->used < victim->used)
            victim = c;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        fail(db, "preparing a statement", err);
        return NULL;
    }
    char *copy = mira_strdup(sql);
    if (!copy) {
        sqlite3_finalize(st);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "caching a statement");
        return NULL;
    }
    if (victim->sql) {
        sqlite3_finalize(victim->stmt);
        mira_free(victim->sql);
    }
    victim->sql = copy;
    victim->stmt = st;
    victim->used = ++db->tick;
    return st;
}

static bool s_query(mira__db *base, const char *sql, const mira__dbval *params, size_t nparams,
                    mira__db_row_fn fn, void *ctx, int64_t *changes, mira_error **err)
{
    sqlite_db *db = (sqlite_db *)base;
    sqlite3_stmt *st = prepare(db, sql, err);
    if (!st)
        return false;
    bool ok = true;
    for (size_t i = 0; i < nparams && ok; i++) {
        int rc;
        switch (params[i].type) {
        case MIRA__DB_INT:
            rc = sqlite3_bind_int64(st, (int)i + 1, params[i].i);
            break;
        case MIRA__DB_TEXT:
            rc = sqlite3_bind_text(st, (int)i + 1, params[i].s, -1, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, (int)i + 1);
            break;
        }
        if (rc != SQLITE_OK)
            ok = fail(db, "binding a parameter", err);
    }
    mira__dbval cols[64];
    while (ok) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            ok = fail(db, "running a statement", err);
            break;
        }
        if (!fn)
            continue;
        int n = sqlite3_column_count(st);
        if (n > 64)
            n = 64;
        for (int c = 0; c < n; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_NULL:
                cols[c] = (mira__dbval){MIRA__DB_NULL, 0, NULL};
                break;
            case SQLITE_INTEGER:
                cols[c] = (mira__dbval){MIRA__DB_INT, sqlite3_column_int64(st, c), NULL};
                break;
            default:
                cols[c] = (mira__dbval){MIRA__DB_TEXT, 0, (const char *)sqlite3_column_text(st, c)};
                if (!cols[c].s)
                    cols[c].type = MIRA__DB_NULL;
                break;
            }
        }
        if (!fn(ctx, cols, (size_t)n))
            break;
    }
    if (ok && changes)
        *changes = sqlite3_changes64(db->h);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    writer_check(db);
    return ok;
}

static bool s_begin_write(mira__db *base, mira_error **err)
{
    sqlite_db *db = (sqlite_db *)base;
    if (!db->holds_writer && sqlite3_get_autocommit(db->h)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 60; /* the busy timeout */
        if (pthread_mutex_timedlock(&writer_lock, &until) == 0)
            db->holds_writer = true;
    }
    bool ok = s_exec(base, "BEGIN IMMEDIATE", err);
    if (!ok && db->holds_writer && sqlite3_get_autocommit(db->h)) {
        db->holds_writer = false;
        pthread_mutex_unlock(&writer_lock);
    }
    return ok;
}

static void s_close(mira__db *base)
{
    sqlite_db *db = (sqlite_db *)base;
    if (db->holds_writer) {
        db->holds_writer = false;
        pthread_mutex_unlock(&writer_lock);
    }
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        if (db->cache[i].sql) {
            sqlite3_finalize(db->cache[i].stmt);
            mira_free(db->cache[i].sql);
        }
    }
    sqlite3_close_v2(db->h);
    mira_free(db);
}

static const mira__db_ops sqlite_ops = {
    .name = "sqlite",
    .glob = true,
    .exec = s_exec,
    .query = s_query,
    .begin_write = s_begin_write,
    .close = s_close,
};

mira__db *mira__db_open_sqlite(const char *path, mira_error **err)
{
    sqlite_db *db = mira_calloc(1, sizeof *db);
    if (!db) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "opening %s", path);
        return NULL;
    }
    db->base.ops = &sqlite_ops;
    int rc = sqlite3_open_v2(
        path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot open the index", "SQLite: %s: %s", path,
                       db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        sqlite3_close_v2(db->h);
        mira_free(db);
        return NULL;
    }
    sqlite3_busy_timeout(db->h, 60000);
    sqlite3_extended_result_codes(db->h, 1);
    /* Turning a new file to WAL takes its exclusive lock; while another process opening the
     * same new archive holds a lock the deadlock rule applies and SQLite fails at once with
     * SQLITE_BUSY instead of waiting (the busy timeout is not consulted), so this waits here,
     * for as long as the busy timeout would. Once the file is in WAL mode it stays so. */
    for (int tries = 0;; tries++) {
        rc = sqlite3_exec(db->h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        if (tries >= 6000) /* 10 ms each: a minute */
            break;
        sqlite3_sleep(10);
    }
    if (!s_exec(&db->base,
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32768;",
                err)) {
        mira_error_prefix(err, "%s: ", path);
        s_close(&db->base);
        return NULL;
    }
    return &db->base;
}
