/* mira check: the index against the blobs (both ways) and the counts, with optional repair. */
#include "archive/archive_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Three passes:
 *  1. every instance row: its blob exists with the row's size (deep: and checksum);
 *  2. every file under blobs/: a row names it;
 *  3. every series, study and patient: its counts and sizes are those of its rows.
 * Repair: rows whose blob is missing are dropped (with their empty series, studies and
 * patients); an orphan blob is stored again (it gets a row) or, when its SOP Instance UID is
 * stored already, moved to lost+found/ (never deleted); counts are recomputed. A blob whose
 * bytes differ from the row's checksum is reported, not touched: only a person can tell which
 * copy is right.
 */

typedef struct inst_row {
    int64_t pk;
    char sop[65];
    char blob[MIRA__BLOB_NAME_MAX];
    char checksum[17];
    uint64_t size;
} inst_row;

typedef struct inst_list {
    inst_row *rows;
    size_t n, cap;
    bool failed;
} inst_list;

static bool take_inst(void *ctx, const mira__dbval *cols, size_t n)
{
    inst_list *l = ctx;
    if (n < 5)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        inst_row *r = mira_realloc(l->rows, cap * sizeof *r);
        if (!r) {
            l->failed = true;
            return false;
        }
        l->rows = r;
        l->cap = cap;
    }
    inst_row *r = &l->rows[l->n++];
    memset(r, 0, sizeof *r);
    r->pk = cols[0].i;
    snprintf(r->sop, sizeof r->sop, "%s", cols[1].s ? cols[1].s : "");
    snprintf(r->blob, sizeof r->blob, "%s", cols[2].s ? cols[2].s : "");
    snprintf(r->checksum, sizeof r->checksum, "%s", cols[3].s ? cols[3].s : "");
    r->size = (uint64_t)cols[4].i;
    return true;
}

typedef struct checker {
    mira_archive *a;
    mira__db *db;
    const mira_check_options *opt;
    mira_check_fn fn;
    void *ctx;
    mira_check_report *rep;
} checker;

static void report(checker *c, mira_check_problem what, const char *subject, const char *detail)
{
    if (c->fn)
        c->fn(c->ctx, what, subject, detail);
}

static bool file_checksum(const char *path, uint64_t size, char out[17])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint8_t *buf = mira_malloc(size ? size : 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    bool ok = buf && got == size;
    if (ok)
        mira__checksum(buf, size, out);
    mira_free(buf);
    return ok;
}

static bool drop_instance(checker *c, const inst_row *r, mira_error **err)
{
    mira__db *db = c->db;
    mira__dbval pk = mira__db_int(r->pk);
    mira__dbval own[2] = {mira__db_int(MIRA_LEVEL_INSTANCE), mira__db_int(r->pk)};
    if (!db->ops->begin_write(db, err))
        return false;
    bool ok =
        db->ops->query(db, "DELETE FROM multi_values WHERE owner_level = ? AND owner_pk = ?", own,
                       2, NULL, NULL, NULL, err) &&
        db->ops->query(db, "DELETE FROM instance_metadata WHERE instance_pk = ?", &pk, 1, NULL,
                       NULL, NULL, err) &&
        db->ops->query(db, "DELETE FROM instances WHERE pk = ?", &pk, 1, NULL, NULL, NULL, err) &&
        mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    return ok;
}

static bool pass_rows(checker *c, mira_error **err)
{
    inst_list l = {0};
    bool listed = true;
    if (c->opt->instances) {
        for (size_t i = 0; listed && !l.failed && i < c->opt->ninstances; i++) {
            mira__dbval p = mira__db_text(c->opt->instances[i] ? c->opt->instances[i] : "");
            listed = mira__db_query(c->db,
                                    "SELECT pk, sop_uid, blob, checksum, size_bytes FROM"
                                    " instances WHERE sop_uid = ?",
                                    &p, 1, take_inst, &l, err);
        }
    } else {
        listed = mira__db_query(c->db,
                                "SELECT pk, sop_uid, blob, checksum, size_bytes FROM instances",
                                NULL, 0, take_inst, &l, err);
    }
    if (!listed) {
        mira_free(l.rows);
        return false;
    }
    if (l.failed) {
        mira_free(l.rows);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "listing instances");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < l.n; i++) {
        inst_row *r = &l.rows[i];
        c->rep->instances_checked++;
        char *path = mira__blob_file(c->a, r->blob);
        struct stat st;
        char detail[256];
        if (!path || stat(path, &st) != 0) {
            c->rep->missing_blobs++;
            snprintf(detail, sizeof detail, "blob %s is missing", r->blob);
            report(c, MIRA_CHECK_MISSING_BLOB, r->sop, detail);
            if (c->opt->repair && (ok = drop_instance(c, r, err)))
                c->rep->repaired++;
        } else if ((uint64_t)st.st_size != r->size) {
            c->rep->bad_blobs++;
            snprintf(detail, sizeof detail, "blob %s has %lld bytes, the index says %llu", r->blob,
                     (long long)st.st_size, (unsigned long long)r->size);
            report(c, MIRA_CHECK_BAD_BLOB, r->sop, detail);
        } else if (c->opt->deep) {
            char sum[17];
            if (!file_checksum(path, r->size, sum) || strcmp(sum, r->checksum) != 0) {
                c->rep->bad_blobs++;
                snprintf(detail, sizeof detail, "blob %s does not have the checksum %s", r->blob,
                         r->checksum);
                report(c, MIRA_CHECK_BAD_BLOB, r->sop, detail);
            }
        }
        mira_free(path);
        if (ok && c->opt->progress && !c->opt->progress(c->opt->progress_ctx, i + 1, l.n)) {
            mira_error_set(err, MIRA_ERR_LIMIT, "Check stopped", "the check was stopped after "
                                                                 "%zu of %zu instances",
                           i + 1, l.n);
            ok = false;
        }
    }
    mira_free(l.rows);
    return ok;
}

static bool has_row(checker *c, const char *name, bool *found, mira_error **err)
{
    int64_t v = 0;
    mira__dbval p = mira__db_text(name);
    if (!mira__db_query_int(c->db, "SELECT count(*) FROM instances WHERE blob = ?", &p, 1, &v, NULL,
                            err))
        return false;
    *found = v > 0;
    return true;
}

static bool repair_orphan(checker *c, const char *path, const char *name, mira_error **err)
{
    mira_store_result res;
    mira_error *e = NULL;
    bool stored =
        mira_archive_store_file(c->a, path, &res, &e) && res.status != MIRA_STORE_DUPLICATE;
    mira_error_free(e);
    if (stored) {
        unlink(path);
        return true;
    }
    /* a copy of something stored already, or not storable: kept aside, never deleted */
    size_t n = strlen(c->a->dir) + strlen(name) + 32;
    char *lf = mira_malloc(n);
    if (!lf) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "repairing %s", path);
        return false;
    }
    snprintf(lf, n, "%s/lost+found", c->a->dir);
    (void)mkdir(lf, 0755);
    snprintf(lf, n, "%s/lost+found/%s", c->a->dir, name);
    bool ok = rename(path, lf) == 0;
    if (!ok)
        mira_error_set(err, MIRA_ERR_IO, "Cannot repair", "moving %s to %s: %s", path, lf,
                       strerror(errno));
    mira_free(lf);
    return ok;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = mira_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Every file of blobs/ab/cd/: a row must name it. */
static bool pass_leaf(checker *c, const char *dir, mira_error **err)
{
    DIR *leaf = opendir(dir);
    if (!leaf)
        return true;
    bool ok = true;
    struct dirent *d;
    while (ok && (d = readdir(leaf))) {
        if (d->d_name[0] == '.')
            continue;
        c->rep->blobs_checked++;
        bool found = false;
        ok = has_row(c, d->d_name, &found, err);
        if (ok && !found) {
            char *file = path_join(dir, d->d_name);
            if (!file) {
                mira_error_set(err, MIRA_ERR_NOMEM, NULL, "checking %s", dir);
                ok = false;
                break;
            }
            c->rep->orphan_blobs++;
            report(c, MIRA_CHECK_ORPHAN_BLOB, file, "no index row names this blob");
            if (c->opt->repair && (ok = repair_orphan(c, file, d->d_name, err)))
                c->rep->repaired++;
            mira_free(file);
        }
    }
    closedir(leaf);
    return ok;
}

/* The folders under dir (one level), each passed to fn. */
static bool each_subdir(checker *c, const char *dir,
                        bool (*fn)(checker *, const char *, mira_error **), mira_error **err)
{
    DIR *d = opendir(dir);
    if (!d)
        return true;
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *sub = path_join(dir, de->d_name);
        if (!sub) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "checking %s", dir);
            ok = false;
            break;
        }
        ok = fn(c, sub, err);
        mira_free(sub);
    }
    closedir(d);
    return ok;
}

static bool pass_mid(checker *c, const char *dir, mira_error **err)
{
    return each_subdir(c, dir, pass_leaf, err);
}

static bool pass_blobs(checker *c, mira_error **err)
{
    return each_subdir(c, c->a->blobs, pass_mid, err);
}

/* ------------------------------------------------------------------ counts */

static const char *const count_checks[] = {
    "SELECT s.series_uid FROM series s WHERE s.num_instances <>"
    " (SELECT count(*) FROM instances i WHERE i.series_pk = s.pk) OR s.size_bytes <>"
    " (SELECT coalesce(sum(i.size_bytes), 0) FROM instances i WHERE i.series_pk = s.pk)",
    "SELECT t.study_uid FROM studies t WHERE t.num_series <>"
    " (SELECT count(*) FROM series s WHERE s.study_pk = t.pk) OR t.num_instances <>"
    " (SELECT coalesce(sum(s.num_instances), 0) FROM series s WHERE s.study_pk = t.pk) OR"
    " t.size_bytes <> (SELECT coalesce(sum(s.size_bytes), 0) FROM series s WHERE s.study_pk = "
    "t.pk)",
    "SELECT p.patient_id FROM patients p WHERE p.num_studies <>"
    " (SELECT count(*) FROM studies t WHERE t.patient_pk = p.pk) OR p.num_series <>"
    " (SELECT coalesce(sum(t.num_series), 0) FROM studies t WHERE t.patient_pk = p.pk) OR"
    " p.num_instances <> (SELECT coalesce(sum(t.num_instances), 0) FROM studies t"
    " WHERE t.patient_pk = p.pk) OR p.size_bytes <> (SELECT coalesce(sum(t.size_bytes), 0)"
    " FROM studies t WHERE t.patient_pk = p.pk)",
    ("SELECT s.series_uid FROM series s WHERE NOT EXISTS"
     " (SELECT 1 FROM instances i WHERE i.series_pk = s.pk)"),
};

static const char *const recount =
    "DELETE FROM multi_values WHERE owner_level = 2 AND owner_pk IN"
    " (SELECT s.pk FROM series s WHERE NOT EXISTS"
    " (SELECT 1 FROM instances i WHERE i.series_pk = s.pk));"
    "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_pk = series.pk);"
    "DELETE FROM multi_values WHERE owner_level = 1 AND owner_pk IN"
    " (SELECT t.pk FROM studies t WHERE NOT EXISTS"
    " (SELECT 1 FROM series s WHERE s.study_pk = t.pk));"
    "DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.study_pk = studies.pk);"
    "DELETE FROM multi_values WHERE owner_level = 0 AND owner_pk IN"
    " (SELECT p.pk FROM patients p WHERE NOT EXISTS"
    " (SELECT 1 FROM studies t WHERE t.patient_pk = p.pk));"
    "DELETE FROM patients WHERE NOT EXISTS"
    " (SELECT 1 FROM studies t WHERE t.patient_pk = patients.pk);"
    "UPDATE series SET num_instances = (SELECT count(*) FROM instances i"
    " WHERE i.series_pk = series.pk), size_bytes = (SELECT coalesce(sum(i.size_bytes), 0)"
    " FROM instances i WHERE i.series_pk = series.pk);"
    "UPDATE studies SET num_series = (SELECT count(*) FROM series s WHERE s.study_pk = studies.pk),"
    " num_instances = (SELECT coalesce(sum(s.num_instances), 0) FROM series s"
    " WHERE s.study_pk = studies.pk), size_bytes = (SELECT coalesce(sum(s.size_bytes), 0)"
    " FROM series s WHERE s.study_pk = studies.pk);"
    "UPDATE patients SET num_studies = (SELECT count(*) FROM studies t"
    " WHERE t.patient_pk = patients.pk), num_series = (SELECT coalesce(sum(t.num_series), 0)"
    " FROM studies t WHERE t.patient_pk = patients.pk), num_instances ="
    " (SELECT coalesce(sum(t.num_instances), 0) FROM studies t WHERE t.patient_pk = patients.pk),"
    " size_bytes = (SELECT coalesce(sum(t.size_bytes), 0) FROM studies t"
    " WHERE t.patient_pk = patients.pk);";

typedef struct bad_ctx {
    checker *c;
    int which;
} bad_ctx;

static bool take_bad(void *ctx, const mira__dbval *cols, size_t n)
{
    bad_ctx *b = ctx;
    static const char *const what[] = {"series counts or size differ from its instances",
                                       "study counts or size differ from its series",
                                       "patient counts or size differ from its studies",
                                       "series without instances"};
    b->c->rep->bad_counts++;
    report(b->c, MIRA_CHECK_BAD_COUNT, n && cols[0].s ? cols[0].s : "", what[b->which]);
    return true;
}

static bool pass_counts(checker *c, mira_error **err)
{
    uint64_t before = c->rep->bad_counts;
    for (int i = 0; i < 4; i++) {
        bad_ctx b = {c, i};
        if (!mira__db_query(c->db, count_checks[i], NULL, 0, take_bad, &b, err))
            return false;
    }
    if (c->opt->repair && (c->rep->bad_counts > before || c->rep->repaired)) {
        if (!c->db->ops->begin_write(c->db, err))
            return false;
        if (!mira__db_exec(c->db, recount, err) || !mira__db_commit(c->db, err)) {
            mira__db_rollback(c->db);
            return false;
        }
        c->rep->repaired += c->rep->bad_counts - before;
    }
    return true;
}

bool mira_archive_check(mira_archive *a, const mira_check_options *opt, mira_check_fn fn, void *ctx,
                        mira_check_report *out, mira_error **err)
{
    mira_check_options defaults = {0};
    mira_check_report rep;
    memset(&rep, 0, sizeof rep);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    checker c = {a, db, opt ? opt : &defaults, fn, ctx, &rep};
    bool ok = pass_rows(&c, err);
    if (ok && !c.opt->instances) /* a selection: its rows and blobs only */
        ok = pass_blobs(&c, err) && pass_counts(&c, err);
    mira__archive_db_release(a, db);
    if (out)
        *out = rep;
    return ok;
}
