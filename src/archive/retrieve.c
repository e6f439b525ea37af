/* Retrieval: the instances of a study, series or instance in one query, with the metadata
 * prepared when they were stored. */
#include "archive/archive_int.h"

#include <stdio.h>
#include <string.h>

#define BULK_THRESHOLD 1024 /* bytes: larger binary values are bulk data in metadata */

char *mira_instance_metadata_make(const void *data, size_t len, size_t *out_len,
                                  mira_error **err)
{
    mira_read_options ro;
    mira_read_options_init(&ro);
    mira_file *f = mira_file_read_memory(data, len, &ro, false, err);
    if (!f)
        return NULL;
    mira_json_options jo = {
        .bulk_threshold = BULK_THRESHOLD, .bulk_uri = "@", .pixels_bulk = true};
    char *json = mira_dataset_to_json(mira_file_dataset(f), &jo, err);
    mira_file_free(f);
    if (json && out_len)
        *out_len = strlen(json);
    return json;
}

typedef struct list_ctx {
    mira_archive *a;
    mira_instance_fn fn;
    void *ctx;
    bool stopped;
    mira_error **err;
    bool failed;
} list_ctx;

static const char *text(const mira__dbval *v)
{
    return v->type == MIRA__DB_TEXT ? v->s : NULL;
}

static bool take_instance(void *arg, const mira__dbval *c, size_t n)
{
    list_ctx *l = arg;
    if (n < 10)
        return false;
    char *path = text(&c[5]) ? mira__blob_file(l->a, c[5].s) : NULL;
    if (!path) {
        mira_error_set(l->err, MIRA_ERR_INVALID, "Bad index row", "instance %s has a bad blob name",
                       text(&c[2]) ? c[2].s : "?");
        l->failed = true;
        return false;
    }
    const char *meta = text(&c[9]);
    mira_instance_ref r = {
        .study_uid = text(&c[0]),
        .series_uid = text(&c[1]),
        .sop_uid = text(&c[2]),
        .sop_class_uid = text(&c[3]) ? c[3].s : "",
        .transfer_syntax = text(&c[4]) ? c[4].s : "",
        .path = path,
        .size = c[6].type == MIRA__DB_INT ? (uint64_t)c[6].i : 0,
        .frames = c[7].type == MIRA__DB_INT ? c[7].i : 0,
        .metadata = meta,
        .metadata_len = meta ? strlen(meta) : 0,
    };
    (void)c[8]; /* instance_number: the order only */
    bool go = l->fn(l->ctx, &r);
    mira_free(path);
    if (!go)
        l->stopped = true;
    return go;
}

bool mira_archive_instances(mira_archive *a, const char *study, const char *series,
                            const char *sop, bool with_metadata, mira_instance_fn fn, void *ctx,
                            mira_error **err)
{
    if (!study || (sop && !series)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument",
                       "instances: a study (and a series for an instance) is needed");
        return false;
    }
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT st.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, i.transfer_syntax,"
             " i.blob, i.size_bytes, i.number_of_frames, i.instance_number, %s"
             " FROM studies st JOIN series se ON se.study_pk = st.pk"
             " JOIN instances i ON i.series_pk = se.pk%s"
             " WHERE st.study_uid = ?%s%s"
             " ORDER BY se.series_number IS NULL, se.series_number, se.pk,"
             " i.instance_number IS NULL, i.instance_number, i.pk",
             with_metadata ? "m.json" : "NULL",
             with_metadata ? " LEFT JOIN instance_metadata m ON m.instance_pk = i.pk" : "",
             series ? " AND se.series_uid = ?" : "", sop ? " AND i.sop_uid = ?" : "");
    mira__dbval p[3] = {mira__db_text(study), mira__db_text(series), mira__db_text(sop)};
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    list_ctx l = {a, fn, ctx, false, err, false};
    bool ok = mira__db_query(db, sql, p, 1 + (series != NULL) + (sop != NULL), take_instance, &l,
                             err);
    mira__archive_db_release(a, db);
    return ok && !l.failed;
}

typedef struct version_row {
    bool found;
    char text[96];
} version_row;

static bool take_version(void *ctx, const mira__dbval *c, size_t n)
{
    version_row *v = ctx;
    if (n < 4)
        return false;
    v->found = true;
    snprintf(v->text, sizeof v->text, "%lld:%s:%lld:%lld",
             (long long)(c[0].type == MIRA__DB_INT ? c[0].i : 0),
             c[1].type == MIRA__DB_TEXT ? c[1].s : "",
             (long long)(c[2].type == MIRA__DB_INT ? c[2].i : 0),
             (long long)(c[3].type == MIRA__DB_INT ? c[3].i : 0));
    return false;
}

bool mira_archive_version(mira_archive *a, const char *study, const char *series, char out[96],
                          mira_error **err)
{
    out[0] = 0;
    if (!study) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument", "version: a study is needed");
        return false;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    /* the row's key, its last change (microseconds), and what it holds */
    mira__dbval p[2] = {mira__db_text(study), mira__db_text(series)};
    version_row v = {0};
    bool ok = series ? mira__db_query(db,
                                      "SELECT s.pk, s.updated_at, s.num_instances, s.size_bytes"
                                      " FROM series s JOIN studies st ON st.pk = s.study_pk"
                                      " WHERE st.study_uid = ? AND s.series_uid = ?",
                                      p, 2, take_version, &v, err)
                     : mira__db_query(db,
                                      "SELECT pk, updated_at, num_instances, size_bytes"
                                      " FROM studies WHERE study_uid = ?",
                                      p, 1, take_version, &v, err);
    mira__archive_db_release(a, db);
    if (ok && !v.found) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "Not found", "no such %s in the archive",
                       series ? "series" : "study");
        ok = false;
    }
    if (ok)
        memcpy(out, v.text, sizeof v.text);
    return ok;
}
