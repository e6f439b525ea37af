/* The job queue in the archive's index: submit, list, claim, progress, finish, recovery. */
#include "archive/archive_int.h"
#include "mira/jobs.h"
#include "mira/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/*
 * Every change is one write transaction (BEGIN IMMEDIATE in SQLite, the writers' advisory
 * lock in PostgreSQL), so writers of every process on the index run one after the other.
 * A claim is one UPDATE of the oldest queued row, whose WHERE says again state = 'queued':
 * even without the writers' lock no two claimers could both change the row (the second
 * finds it running and changes nothing); PostgreSQL's subquery also takes the row FOR UPDATE
 * SKIP LOCKED, so that a claimer never waits on a row another has in hand. Updates by a
 * worker (progress, finish, requeue) name its owner too: a job recovered by another process
 * is not changed by a worker that was taken for dead.
 */

static const char *const state_names[] = {"queued", "running", "done", "failed", "cancelled"};

const char *mira_job_state_name(mira_job_state state)
{
    return (unsigned)state < 5 ? state_names[state] : "";
}

bool mira_job_state_from_name(const char *name, mira_job_state *out)
{
    for (int i = 0; i < 5; i++)
        if (name && strcmp(name, state_names[i]) == 0) {
            *out = (mira_job_state)i;
            return true;
        }
    return false;
}

void mira_job_list_options_init(mira_job_list_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->state = -1;
}

/* The job and its strings in one allocation. */
void mira_job_free(mira_job *job)
{
    mira_free(job);
}

#define JOB_COLUMNS                                                                           \
    "id, kind, state, params, created_by, created_at, started_at, finished_at, updated_at,"  \
    " progress_done, progress_total, result, error, owner, cancel_requested, attempts"
#define JOB_NCOLS 16

static int64_t col_int(const mira__dbval *c)
{
    return c->type == MIRA__DB_INT ? c->i : c->type == MIRA__DB_TEXT ? strtoll(c->s, NULL, 10) : 0;
}

static const char *col_text(const mira__dbval *c)
{
    return c->type == MIRA__DB_TEXT ? c->s : NULL;
}

/* A row as a job whose strings point into the row (borrowed). */
static void job_of_row(const mira__dbval *c, mira_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = col_int(&c[0]);
    j->kind = col_text(&c[1]);
    j->state = MIRA_JOB_QUEUED;
    mira_job_state_from_name(col_text(&c[2]), &j->state);
    j->params = col_text(&c[3]);
    j->created_by = col_text(&c[4]);
    j->created_at = col_text(&c[5]);
    j->started_at = col_text(&c[6]);
    j->finished_at = col_text(&c[7]);
    j->updated_at = col_text(&c[8]);
    j->progress_done = (uint64_t)col_int(&c[9]);
    j->progress_total = (uint64_t)col_int(&c[10]);
    j->result = col_text(&c[11]);
    j->error = col_text(&c[12]);
    j->owner = col_text(&c[13]);
    j->cancel_requested = col_int(&c[14]) != 0;
    j->attempts = col_int(&c[15]);
}

/* A copy of a borrowed job that owns its strings (one allocation), or NULL. */
static mira_job *job_copy(const mira_job *j)
{
    const char *const *texts[] = {&j->kind,       &j->params,     &j->created_by, &j->created_at,
                                  &j->started_at, &j->finished_at, &j->updated_at, &j->result,
                                  &j->error,      &j->owner};
    size_t n = sizeof texts / sizeof texts[0], size = sizeof *j;
    for (size_t i = 0; i < n; i++)
        size += *texts[i] ? strlen(*texts[i]) + 1 : 0;
    mira_job *out = mira_malloc(size);
    if (!out)
        return NULL;
    *out = *j;
    char *p = (char *)(out + 1);
    const char **dst[] = {&out->kind,       &out->params,      &out->created_by, &out->created_at,
                          &out->started_at, &out->finished_at, &out->updated_at, &out->result,
                          &out->error,      &out->owner};
    for (size_t i = 0; i < n; i++) {
        if (!*texts[i])
            continue;
        size_t l = strlen(*texts[i]) + 1;
        memcpy(p, *texts[i], l);
        *dst[i] = p;
        p += l;
    }
    return out;
}

typedef struct one_job {
    mira_job *job;
    bool failed;
    int64_t id; /* of the row, even when the copy failed */
} one_job;

static bool take_one(void *ctx, const mira__dbval *c, size_t n)
{
    one_job *o = ctx;
    if (n < JOB_NCOLS || o->job)
        return false;
    mira_job j;
    job_of_row(c, &j);
    o->id = j.id;
    o->job = job_copy(&j);
    o->failed = !o->job;
    return false;
}

static bool json_valid(const char *text, const char *what, mira_error **err)
{
    size_t n = text ? strlen(text) : 0;
    if (n > MIRA_JOB_TEXT_MAX) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Job text too large",
                       "the %s of a job has at most %d bytes", what, MIRA_JOB_TEXT_MAX);
        return false;
    }
    mira_error *e = NULL;
    mira_json *j = mira_json_parse(text ? text : "", n, &e);
    if (!j) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Job text not JSON", "the %s of a job is not JSON: %s",
                       what, e ? mira_error_get_message(e) : "empty");
        mira_error_free(e);
        return false;
    }
    mira_json_free(j);
    return true;
}

static bool kind_valid(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;
    if (n == 0 || n > MIRA_JOB_KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kind[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ submitting, reading */

bool mira_job_submit(mira_archive *a, const char *kind, const char *params,
                     const char *created_by, int64_t *id, mira_error **err)
{
    if (!kind_valid(kind)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad job kind",
                       "a job kind is 1 to %d ASCII letters, digits, '-' and '_'",
                       MIRA_JOB_KIND_MAX);
        return false;
    }
    if (!json_valid(params, "parameters", err))
        return false;
    char now[32];
    mira__now(now);
    mira__dbval p[6] = {mira__db_text(kind),
                        mira__db_text(state_names[MIRA_JOB_QUEUED]),
                        mira__db_text(params),
                        mira__db_text(created_by ? created_by : ""),
                        mira__db_text(now),
                        mira__db_text(now)};
    int64_t got = 0;
    bool found = false;
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    bool ok = db->ops->begin_write(db, err) &&
              mira__db_query_int(db,
                                 "INSERT INTO jobs (kind, state, params, created_by, created_at,"
                                 " updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                 p, 6, &got, &found, err) &&
              mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    if (ok && id)
        *id = got;
    return ok;
}

mira_job *mira_job_get(mira_archive *a, int64_t id, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return NULL;
    mira__dbval p = mira__db_int(id);
    one_job o = {NULL, false, 0};
    bool ok = mira__db_query(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &p, 1, take_one,
                             &o, err);
    mira__archive_db_release(a, db);
    if (!ok)
        return NULL;
    if (o.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading job %lld", (long long)id);
        return NULL;
    }
    if (!o.job)
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such job", "there is no job %lld",
                       (long long)id);
    return o.job;
}

typedef struct list_ctx {
    mira_job_fn fn;
    void *ctx;
} list_ctx;

static bool list_row(void *ctx, const mira__dbval *c, size_t n)
{
    list_ctx *l = ctx;
    if (n < JOB_NCOLS)
        return false;
    mira_job j;
    job_of_row(c, &j);
    return l->fn(l->ctx, &j);
}

bool mira_job_list(mira_archive *a, const mira_job_list_options *opt, mira_job_fn fn, void *ctx,
                   mira_error **err)
{
    mira_job_list_options all;
    mira_job_list_options_init(&all);
    if (!opt)
        opt = &all;
    char sql[512];
    mira__dbval p[4];
    size_t n = 0;
    int len = snprintf(sql, sizeof sql, "SELECT " JOB_COLUMNS " FROM jobs WHERE 1 = 1");
    if (opt->state >= 0) {
        if (opt->state > MIRA_JOB_CANCELLED) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad job state", "%d is not a job state",
                           opt->state);
            return false;
        }
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND state = ?");
        p[n++] = mira__db_text(state_names[opt->state]);
    }
    if (opt->created_by) {
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND created_by = ?");
        p[n++] = mira__db_text(opt->created_by);
    }
    /* LIMIT -1 is "no limit" in SQLite only; a huge limit is the same in both */
    len += snprintf(sql + len, sizeof sql - (size_t)len, " ORDER BY id DESC LIMIT ? OFFSET ?");
    p[n++] = mira__db_int(opt->limit && opt->limit < INT64_MAX ? (int64_t)opt->limit : INT64_MAX);
    p[n++] = mira__db_int(opt->offset < INT64_MAX ? (int64_t)opt->offset : INT64_MAX);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    list_ctx l = {fn, ctx};
    bool ok = mira__db_query(db, sql, p, n, list_row, &l, err);
    mira__archive_db_release(a, db);
    return ok;
}

/* ------------------------------------------------------------------ cancelling */

bool mira_job_cancel(mira_archive *a, int64_t id, mira_job_state *state, mira_error **err)
{
    char now[32];
    mira__now(now);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval key = mira__db_int(id);
    one_job o = {NULL, false, 0};
    bool ok = db->ops->begin_write(db, err) &&
              mira__db_query(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &key, 1,
                             take_one, &o, err);
    mira_job_state after = MIRA_JOB_CANCELLED;
    if (ok && o.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "cancelling job %lld", (long long)id);
        ok = false;
    } else if (ok && !o.job) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such job", "there is no job %lld",
                       (long long)id);
        ok = false;
    } else if (ok && o.job->state >= MIRA_JOB_DONE) {
        mira_error_set(err, MIRA_ERR_CONFLICT, "Job ended", "job %lld has ended already (%s)",
                       (long long)id, mira_job_state_name(o.job->state));
        ok = false;
    } else if (ok && o.job->state == MIRA_JOB_QUEUED) {
        mira__dbval p[3] = {mira__db_text(now), mira__db_text(now), key};
        ok = db->ops->query(db,
                            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1,"
                            " finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                            p, 3, NULL, NULL, NULL, err);
    } else if (ok) {
        after = MIRA_JOB_RUNNING;
        mira__dbval p[2] = {mira__db_text(now), key};
        ok = db->ops->query(db,
                            "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                            p, 2, NULL, NULL, NULL, err);
    }
    ok = ok && mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    mira_job_free(o.job);
    if (ok && state)
        *state = after;
    return ok;
}

/* ------------------------------------------------------------------ workers */

const char *mira_jobs_owner(mira_archive *a)
{
    pthread_mutex_lock(&a->pool_lock);
    if (!a->job_owner[0]) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        const char *slash = a->tmp ? strrchr(a->tmp, '/') : NULL;
        snprintf(a->job_owner, sizeof a->job_owner, "%s/%s", host,
                 slash ? slash + 1 : "unknown");
    }
    pthread_mutex_unlock(&a->pool_lock);
    return a->job_owner;
}

bool mira_job_claim(mira_archive *a, const char *const *kinds, size_t nkinds, mira_job **job,
                    mira_error **err)
{
    *job = NULL;
    if (nkinds > 32) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Too many kinds", "a claim names at most 32 kinds");
        return false;
    }
    char now[32];
    mira__now(now);
    const char *owner = mira_jobs_owner(a);
    char sql[1024];
    mira__dbval p[40];
    size_t n = 0;
    p[n++] = mira__db_text(owner);
    p[n++] = mira__db_text(now);
    p[n++] = mira__db_text(now);
    int len = snprintf(sql, sizeof sql,
                       "UPDATE jobs SET state = 'running', owner = ?, started_at = ?,"
                       " updated_at = ?, finished_at = NULL, progress_done = 0,"
                       " progress_total = 0, result = NULL, error = NULL,"
                       " attempts = attempts + 1"
                       " WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE state ="
                       " 'queued'");
    if (nkinds) {
        len += snprintf(sql + len, sizeof sql - (size_t)len, " AND kind IN (");
        for (size_t i = 0; i < nkinds; i++) {
            len += snprintf(sql + len, sizeof sql - (size_t)len, "%s?", i ? ", " : "");
            p[n++] = mira__db_text(kinds[i]);
        }
        len += snprintf(sql + len, sizeof sql - (size_t)len, ")");
    }
    snprintf(sql + len, sizeof sql - (size_t)len, " ORDER BY id LIMIT 1%s) RETURNING " JOB_COLUMNS,
             a->postgres ? " FOR UPDATE SKIP LOCKED" : "");
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    one_job o = {NULL, false, 0};
    bool ok = db->ops->begin_write(db, err) &&
              db->ops->query(db, sql, p, n, take_one, &o, NULL, err) && mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    if (ok && o.failed) {
        /* claimed but not read: give it back rather than leave it running with no worker */
        (void)mira_job_requeue(a, o.id, NULL);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "claiming a job");
        return false;
    }
    if (!ok) {
        mira_job_free(o.job);
        return false;
    }
    *job = o.job;
    return true;
}

typedef struct flag_ctx {
    bool found;
    int64_t value;
} flag_ctx;

static bool take_flag(void *ctx, const mira__dbval *c, size_t n)
{
    flag_ctx *f = ctx;
    if (n) {
        f->found = true;
        f->value = col_int(&c[0]);
    }
    return false;
}

bool mira_job_progress(mira_archive *a, int64_t id, uint64_t done, uint64_t total, bool *cancel,
                       mira_error **err)
{
    char now[32];
    mira__now(now);
    mira__dbval p[5] = {mira__db_int((int64_t)done), mira__db_int((int64_t)total),
                        mira__db_text(now), mira__db_int(id),
                        mira__db_text(mira_jobs_owner(a))};
    flag_ctx f = {false, 0};
    if (!mira__archive_write_one(a,
                                 "UPDATE jobs SET progress_done = ?, progress_total = ?,"
                                 " updated_at = ? WHERE id = ? AND owner = ? AND state ="
                                 " 'running' RETURNING cancel_requested",
                                 p, 5, take_flag, &f, NULL, err))
        return false;
    if (cancel) /* no row: the job is no longer ours to run */
        *cancel = !f.found || f.value != 0;
    return true;
}

bool mira_job_finish(mira_archive *a, int64_t id, mira_job_state state, const char *result,
                     const char *error, mira_error **err)
{
    if (state < MIRA_JOB_DONE || state > MIRA_JOB_CANCELLED) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad job state",
                       "a job ends done, failed or cancelled");
        return false;
    }
    if (result && !json_valid(result, "result", err))
        return false;
    if (error && strlen(error) > MIRA_JOB_TEXT_MAX) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Job text too large",
                       "the error of a job has at most %d bytes", MIRA_JOB_TEXT_MAX);
        return false;
    }
    char now[32];
    mira__now(now);
    mira__dbval p[7] = {mira__db_text(state_names[state]), mira__db_text(result),
                        mira__db_text(error),              mira__db_text(now),
                        mira__db_text(now),                mira__db_int(id),
                        mira__db_text(mira_jobs_owner(a))};
    int64_t changes = 0;
    if (!mira__archive_write_one(a,
                                 "UPDATE jobs SET state = ?, result = ?, error = ?,"
                                 " finished_at = ?, updated_at = ? WHERE id = ? AND owner = ?"
                                 " AND state = 'running'",
                                 p, 7, NULL, NULL, &changes, err))
        return false;
    if (changes == 0) {
        mira_error_set(err, MIRA_ERR_CONFLICT, "Not this process's job",
                       "job %lld is not running in this process", (long long)id);
        return false;
    }
    return true;
}

bool mira_job_requeue(mira_archive *a, int64_t id, mira_error **err)
{
    char now[32];
    mira__now(now);
    mira__dbval p[3] = {mira__db_text(now), mira__db_int(id), mira__db_text(mira_jobs_owner(a))};
    return mira__archive_write_one(a,
                                   "UPDATE jobs SET state = 'queued', updated_at = ?,"
                                   " progress_done = 0 WHERE id = ? AND owner = ? AND state ="
                                   " 'running'",
                                   p, 3, NULL, NULL, NULL, err);
}

typedef struct owners {
    char (*v)[320];
    int64_t *ids;
    size_t n, cap;
    bool failed;
} owners;

static bool take_owner(void *ctx, const mira__dbval *c, size_t n)
{
    owners *o = ctx;
    if (n < 2)
        return false;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        char(*v)[320] = mira_realloc(o->v, cap * sizeof *v);
        if (v)
            o->v = v;
        int64_t *ids = v ? mira_realloc(o->ids, cap * sizeof *ids) : NULL;
        if (!v || !ids) {
            o->failed = true;
            return false;
        }
        o->ids = ids;
        o->cap = cap;
    }
    o->ids[o->n] = col_int(&c[0]);
    snprintf(o->v[o->n], sizeof o->v[0], "%s", col_text(&c[1]) ? col_text(&c[1]) : "");
    o->n++;
    return true;
}

/* True if the process named by owner (of this host) is gone: its folder under tmp/ is missing
 * or its lock is free. */
static bool owner_dead(mira_archive *a, const char *owner, const char *host, size_t hl)
{
    if (strncmp(owner, host, hl) != 0 || owner[hl] != '/')
        return false; /* another host's: only that host can tell */
    const char *folder = owner + hl + 1;
    if (!*folder || strchr(folder, '/') || folder[0] == '.')
        return false;
    if (strcmp(owner, mira_jobs_owner(a)) == 0)
        return false; /* ours, running now */
    size_t n = strlen(a->dir) + strlen(folder) + 16;
    char *lock = mira_malloc(n);
    if (!lock)
        return false;
    snprintf(lock, n, "%s/tmp/%s/lock", a->dir, folder);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    mira_free(lock);
    bool dead = fd < 0 ? errno == ENOENT : flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (fd >= 0)
        close(fd); /* and with it the lock just taken */
    return dead;
}

bool mira_jobs_recover(mira_archive *a, uint64_t *count, mira_error **err)
{
    if (count)
        *count = 0;
    const char *me = mira_jobs_owner(a);
    size_t hl = (size_t)(strchr(me, '/') - me);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    owners o = {0};
    bool ok = mira__db_query(db, "SELECT id, owner FROM jobs WHERE state = 'running'", NULL, 0,
                             take_owner, &o, err);
    mira__archive_db_release(a, db);
    if (ok && o.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "recovering jobs");
        ok = false;
    }
    char now[32];
    mira__now(now);
    for (size_t i = 0; ok && i < o.n; i++) {
        if (!owner_dead(a, o.v[i], me, hl))
            continue;
        mira__dbval p[3] = {mira__db_text(now), mira__db_int(o.ids[i]), mira__db_text(o.v[i])};
        int64_t changes = 0;
        ok = mira__archive_write_one(a,
                                     "UPDATE jobs SET state = 'queued', updated_at = ?,"
                                     " progress_done = 0 WHERE id = ? AND owner = ? AND state ="
                                     " 'running'",
                                     p, 3, NULL, NULL, &changes, err);
        if (ok && count)
            *count += (uint64_t)changes;
    }
    mira_free(o.v);
    mira_free(o.ids);
    return ok;
}

/* ------------------------------------------------------------------ JSON */

static void put_text(mira_json_writer *w, const char *key, const char *v)
{
    mira_json_key(w, key);
    if (v)
        mira_json_cstring(w, v);
    else
        mira_json_null(w);
}

/* A JSON text kept by the job, or null (it was checked when kept). */
static void put_json(mira_json_writer *w, const char *key, const char *v)
{
    mira_json_key(w, key);
    if (v)
        mira_json_raw(w, v, strlen(v));
    else
        mira_json_null(w);
}

char *mira_job_to_json(const mira_job *j)
{
    mira_json_writer *w = mira_json_writer_new(false);
    if (!w)
        return NULL;
    mira_json_begin_object(w);
    mira_json_key(w, "id");
    mira_json_int(w, j->id);
    put_text(w, "kind", j->kind ? j->kind : "");
    put_text(w, "state", mira_job_state_name(j->state));
    put_json(w, "params", j->params);
    put_text(w, "created_by", j->created_by ? j->created_by : "");
    put_text(w, "created_at", j->created_at ? j->created_at : "");
    put_text(w, "started_at", j->started_at);
    put_text(w, "finished_at", j->finished_at);
    mira_json_key(w, "progress");
    mira_json_begin_object(w);
    mira_json_key(w, "done");
    mira_json_uint(w, j->progress_done);
    mira_json_key(w, "total");
    mira_json_uint(w, j->progress_total);
    mira_json_end_object(w);
    put_json(w, "result", j->result);
    put_text(w, "error", j->error);
    put_text(w, "owner", j->owner);
    mira_json_key(w, "cancel_requested");
    mira_json_bool(w, j->cancel_requested);
    mira_json_key(w, "attempts");
    mira_json_int(w, j->attempts);
    mira_json_end_object(w);
    char *t = mira_json_writer_finish(w, NULL, NULL);
    mira_json_writer_free(w);
    return t;
}
