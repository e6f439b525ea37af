/* Analysis results of studies (migration 10): what mira features computed, kept by study and
 * method for the patient record and outbound ORU^R01. */
#include "archive/archive_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool mira_archive_results_put(mira_archive *a, const char *study_uid, const char *method,
                              const mira_feature *v, size_t n, mira_error **err)
{
    if (!study_uid || !*study_uid || !method || !*method || (n && !v)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad results",
                       "a study, a method and the results are needed");
        return false;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    char now[32];
    mira__now(now);
    mira__dbval k[2] = {mira__db_text(study_uid), mira__db_text(method)};
    bool found = false;
    int64_t pk = 0;
    bool in_tx = db->ops->begin_write(db, err);
    bool ok = in_tx && mira__db_query_int(db, "SELECT pk FROM studies WHERE study_uid = ?", k, 1,
                                          &pk, &found, err);
    if (ok && !found) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such study", "no study %s in the archive",
                       study_uid);
        ok = false;
    }
    ok = ok && db->ops->query(db, "DELETE FROM analysis_results WHERE study_uid = ? AND method = ?",
                              k, 2, NULL, NULL, NULL, err);
    for (size_t i = 0; ok && i < n; i++) {
        char value[40];
        snprintf(value, sizeof value, "%.17g", v[i].value);
        mira__dbval row[5] = {k[0], k[1], mira__db_text(v[i].tag),
                              isfinite(v[i].value) ? mira__db_text(value) : mira__db_text(NULL),
                              mira__db_text(now)};
        ok = db->ops->query(db,
                            "INSERT INTO analysis_results (study_uid, method, tag, value,"
                            " created_at) VALUES (?, ?, ?, ?, ?)",
                            row, 5, NULL, NULL, NULL, err);
    }
    if (in_tx && ok)
        ok = mira__db_commit(db, err);
    else if (in_tx)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    return ok;
}

static bool take_result(void *ctx, const mira__dbval *c, size_t n)
{
    mira_features *f = ctx;
    if (n < 2 || c[0].type != MIRA__DB_TEXT)
        return true;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 128;
        mira_feature *v = mira_realloc(f->v, cap * sizeof *v);
        if (!v)
            return false;
        f->v = v;
        f->cap = cap;
    }
    snprintf(f->v[f->n].tag, sizeof f->v[0].tag, "%s", c[0].s);
    f->v[f->n].value = c[1].type == MIRA__DB_TEXT ? strtod(c[1].s, NULL) : NAN;
    f->n++;
    return true;
}

bool mira_archive_results_get(mira_archive *a, const char *study_uid, const char *method,
                              mira_features *out, mira_error **err)
{
    memset(out, 0, sizeof *out);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval k[2] = {mira__db_text(study_uid), mira__db_text(method)};
    bool ok = db->ops->query(db,
                             method ? "SELECT tag, value FROM analysis_results WHERE study_uid = ?"
                                      " AND method = ? ORDER BY pk"
                                    : "SELECT tag, value FROM analysis_results WHERE study_uid = ?"
                                      " ORDER BY pk",
                             k, method ? 2 : 1, take_result, out, NULL, err);
    mira__archive_db_release(a, db);
    if (!ok)
        mira_features_cleanup(out);
    return ok;
}
