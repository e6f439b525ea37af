/* Deleting and modifying entities (patient, study, series, instance), with a history of changes. */
#include "archive/archive_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ the instances of an entity */

typedef struct inst {
    int64_t pk, series_pk, study_pk, patient_pk;
    uint64_t size;
    char blob[MIRA__BLOB_NAME_MAX];
    char checksum[17];
    char sop[65];
} inst;

typedef struct inst_vec {
    inst *v;
    size_t n, cap;
    bool failed;
} inst_vec;

static bool take_inst(void *ctx, const mira__dbval *c, size_t n)
{
    inst_vec *iv = ctx;
    if (n < 8)
        return true;
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 64;
        inst *v = mira_realloc(iv->v, cap * sizeof *v);
        if (!v) {
            iv->failed = true;
            return false;
        }
        iv->v = v;
        iv->cap = cap;
    }
    inst *x = &iv->v[iv->n++];
    memset(x, 0, sizeof *x);
    x->pk = c[0].i;
    x->series_pk = c[1].i;
    x->study_pk = c[2].i;
    x->patient_pk = c[3].i;
    x->size = (uint64_t)c[4].i;
    snprintf(x->blob, sizeof x->blob, "%s", c[5].s ? c[5].s : "");
    snprintf(x->checksum, sizeof x->checksum, "%s", c[6].s ? c[6].s : "");
    snprintf(x->sop, sizeof x->sop, "%s", c[7].s ? c[7].s : "");
    return true;
}

/* The instances whose rows meet `where` (over i, s, st, p), in the order they came. */
static bool list_where(mira__db *db, const char *where, const mira__dbval *p, size_t np,
                       inst_vec *out, mira_error **err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT i.pk, i.series_pk, s.study_pk, st.patient_pk, i.size_bytes, i.blob,"
             " i.checksum, i.sop_uid FROM instances i JOIN series s ON s.pk = i.series_pk"
             " JOIN studies st ON st.pk = s.study_pk JOIN patients p ON p.pk = st.patient_pk"
             " WHERE %s ORDER BY i.pk",
             where);
    memset(out, 0, sizeof *out);
    if (!mira__db_query(db, sql, p, np, take_inst, out, err))
        return false;
    if (out->failed) {
        mira_free(out->v);
        out->v = NULL;
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "listing instances");
        return false;
    }
    return true;
}

static bool list_instances(mira__db *db, mira_level level, const char *key, inst_vec *out,
                           mira_error **err)
{
    static const char *const where[4] = {"p.patient_id = ?", "st.study_uid = ?", "s.series_uid = ?",
                                         "i.sop_uid = ?"};
    mira__dbval p = mira__db_text(key);
    if (!list_where(db, where[level], &p, 1, out, err))
        return false;
    if (!out->n) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "Not found", "no %s %s in the archive",
                       level == MIRA_LEVEL_PATIENT ? "patient" : mira__level_table(level), key);
        return false;
    }
    return true;
}

/* Distinct values of a list of pks (sorted, duplicates dropped in place). */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t distinct(int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

/* ------------------------------------------------------------------ recounting parents */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static bool take_str(void *ctx, const mira__dbval *c, size_t n)
{
    strs *s = ctx;
    if (!n || c[0].type != MIRA__DB_TEXT)
        return true;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **v = mira_realloc(s->v, cap * sizeof *v);
        if (!v)
            return false;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = mira_strdup(c[0].s);
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return strcmp(x ? x : "", y ? y : "");
}

/* The sorted distinct values of a one-column query joined with '\' (owned; NULL if none). */
static bool joined(mira__db *db, const char *sql, int64_t pk, char **out, mira_error **err)
{
    strs s = {0};
    mira__dbval p = mira__db_int(pk);
    bool ok = mira__db_query(db, sql, &p, 1, take_str, &s, err);
    *out = NULL;
    if (ok && s.n) {
        qsort(s.v, s.n, sizeof *s.v, cmp_str);
        size_t len = 1;
        for (size_t i = 0; i < s.n; i++)
            len += (s.v[i] ? strlen(s.v[i]) : 0) + 1;
        char *o = mira_malloc(len);
        if (o) {
            size_t k = 0;
            for (size_t i = 0; i < s.n; i++) {
                if (!s.v[i] || (i && s.v[i - 1] && strcmp(s.v[i], s.v[i - 1]) == 0))
                    continue;
                k += (size_t)snprintf(o + k, len - k, "%s%s", k ? "\\" : "", s.v[i]);
            }
            *out = o;
        }
    }
    for (size_t i = 0; i < s.n; i++)
        mira_free(s.v[i]);
    mira_free(s.v);
    return ok;
}

static bool recount(mira__db *db, const int64_t *series, size_t ns, const int64_t *studies,
                    size_t nst, const int64_t *patients, size_t np, const char *now,
                    mira_error **err)
{
    for (size_t i = 0; i < ns; i++) {
        mira__dbval p[2] = {mira__db_text(now), mira__db_int(series[i])};
        if (!db->ops->query(db,
                            "UPDATE series SET num_instances = (SELECT count(*) FROM instances i"
                            " WHERE i.series_pk = series.pk), size_bytes = (SELECT"
                            " coalesce(sum(i.size_bytes), 0) FROM instances i WHERE i.series_pk ="
                            " series.pk), updated_at = ? WHERE pk = ?",
                            p, 2, NULL, NULL, NULL, err))
            return false;
    }
    for (size_t i = 0; i < nst; i++) {
        char *mods = NULL, *classes = NULL;
        bool ok =
            joined(db, "SELECT modality FROM series WHERE study_pk = ?", studies[i], &mods, err) &&
            joined(db,
                   "SELECT i.sop_class_uid FROM instances i JOIN series s ON s.pk ="
                   " i.series_pk WHERE s.study_pk = ?",
                   studies[i], &classes, err);
        mira__dbval p[4] = {mira__db_text(mods), mira__db_text(classes), mira__db_text(now),
                            mira__db_int(studies[i])};
        ok = ok && db->ops->query(db,
                                  "UPDATE studies SET num_series = (SELECT count(*) FROM series s"
                                  " WHERE s.study_pk = studies.pk), num_instances = (SELECT"
                                  " coalesce(sum(s.num_instances), 0) FROM series s WHERE"
                                  " s.study_pk = studies.pk), size_bytes = (SELECT"
                                  " coalesce(sum(s.size_bytes), 0) FROM series s WHERE s.study_pk"
                                  " = studies.pk), modalities = ?, sop_classes = ?,"
                                  " updated_at = ? WHERE pk = ?",
                                  p, 4, NULL, NULL, NULL, err);
        mira_free(mods);
        mira_free(classes);
        if (!ok)
            return false;
    }
    for (size_t i = 0; i < np; i++) {
        mira__dbval p[2] = {mira__db_text(now), mira__db_int(patients[i])};
        if (!db->ops->query(db,
                            "UPDATE patients SET num_studies = (SELECT count(*) FROM studies t"
                            " WHERE t.patient_pk = patients.pk), num_series = (SELECT"
                            " coalesce(sum(t.num_series), 0) FROM studies t WHERE t.patient_pk ="
                            " patients.pk), num_instances = (SELECT coalesce(sum(t.num_instances),"
                            " 0) FROM studies t WHERE t.patient_pk = patients.pk), size_bytes ="
                            " (SELECT coalesce(sum(t.size_bytes), 0) FROM studies t WHERE"
                            " t.patient_pk = patients.pk), updated_at = ? WHERE pk = ?",
                            p, 2, NULL, NULL, NULL, err))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ delete */

/* Delete the rows of one entity table whose pk is in v and that have no children left; the
 * pks kept (still having children) are compacted to the front, their count returned in *kept. */
static bool drop_empty(mira__db *db, mira_level level, int64_t *v, size_t n, size_t *kept,
                       uint64_t *dropped, mira_error **err)
{
    static const char *const child[3] = {
        "SELECT count(*) FROM studies WHERE patient_pk = ?",
        "SELECT count(*) FROM series WHERE study_pk = ?",
        "SELECT count(*) FROM instances WHERE series_pk = ?",
    };
    static const char *const del[3] = {"DELETE FROM patients WHERE pk = ?",
                                       "DELETE FROM studies WHERE pk = ?",
                                       "DELETE FROM series WHERE pk = ?"};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t children = 0;
        mira__dbval p = mira__db_int(v[i]);
        if (!mira__db_query_int(db, child[level], &p, 1, &children, NULL, err))
            return false;
        if (children) {
            v[k++] = v[i];
            continue;
        }
        mira__dbval own[2] = {mira__db_int(level), mira__db_int(v[i])};
        if ((level == MIRA_LEVEL_STUDY &&
             !db->ops->query(db,
                             "DELETE FROM analysis_results WHERE study_uid ="
                             " (SELECT study_uid FROM studies WHERE pk = ?)",
                             &p, 1, NULL, NULL, NULL, err)) ||
            !db->ops->query(db, "DELETE FROM multi_values WHERE owner_level = ? AND owner_pk = ?",
                            own, 2, NULL, NULL, NULL, err) ||
            !db->ops->query(db, del[level], &p, 1, NULL, NULL, NULL, err))
            return false;
        (*dropped)++;
    }
    *kept = k;
    return true;
}

bool mira_archive_delete(mira_archive *a, mira_level level, const char *key,
                         mira_delete_result *out, mira_error **err)
{
    mira_delete_result res;
    memset(&res, 0, sizeof res);
    if ((unsigned)level > MIRA_LEVEL_INSTANCE || !key || !*key) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad delete", "a level and a key are needed");
        return false;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    inst_vec iv;
    int64_t *series = NULL, *studies = NULL, *patients = NULL;
    bool ok = db->ops->begin_write(db, err);
    bool in_tx = ok;
    ok = ok && list_instances(db, level, key, &iv, err);
    if (ok) {
        series = mira_malloc(iv.n * sizeof *series);
        studies = mira_malloc(iv.n * sizeof *studies);
        patients = mira_malloc(iv.n * sizeof *patients);
        if (!series || !studies || !patients) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "deleting %s", key);
            ok = false;
        }
    }
    char now[32];
    mira__now(now);
    for (size_t i = 0; ok && i < iv.n; i++) {
        inst *x = &iv.v[i];
        series[i] = x->series_pk;
        studies[i] = x->study_pk;
        patients[i] = x->patient_pk;
        mira__dbval del[2] = {mira__db_text(x->blob), mira__db_text(x->checksum)};
        mira__dbval own[2] = {mira__db_int(MIRA_LEVEL_INSTANCE), mira__db_int(x->pk)};
        mira__dbval pk = mira__db_int(x->pk);
        ok =
            db->ops->query(db,
                           "INSERT INTO blob_deletions (blob, checksum) VALUES (?, ?)"
                           " ON CONFLICT (blob) DO NOTHING",
                           del, 2, NULL, NULL, NULL, err) &&
            db->ops->query(db, "DELETE FROM multi_values WHERE owner_level = ? AND owner_pk = ?",
                           own, 2, NULL, NULL, NULL, err) &&
            db->ops->query(db, "DELETE FROM instance_metadata WHERE instance_pk = ?", &pk, 1,
                           NULL, NULL, NULL, err) &&
            db->ops->query(db, "DELETE FROM instances WHERE pk = ?", &pk, 1, NULL, NULL, NULL, err);
        res.instances++;
        res.bytes += x->size;
    }
    size_t ns = 0, nst = 0, np = 0;
    if (ok) {
        ns = distinct(series, iv.n);
        nst = distinct(studies, iv.n);
        np = distinct(patients, iv.n);
        ok = drop_empty(db, MIRA_LEVEL_SERIES, series, ns, &ns, &res.series, err) &&
             drop_empty(db, MIRA_LEVEL_STUDY, studies, nst, &nst, &res.studies, err) &&
             drop_empty(db, MIRA_LEVEL_PATIENT, patients, np, &np, &res.patients, err) &&
             recount(db, series, ns, studies, nst, patients, np, now, err);
    }
    ok = ok && mira__db_commit(db, err);
    if (!ok && in_tx)
        mira__db_rollback(db);
    if (ok) {
        /* the rows are gone: now the blobs (replayed at the next open if this is cut short) */
        for (size_t i = 0; i < iv.n; i++) {
            char *f = mira__blob_file(a, iv.v[i].blob);
            if (f)
                unlink(f);
            mira_free(f);
        }
        (void)mira__archive_finish_deletions(a, db, NULL);
    }
    if (ok && out)
        *out = res;
    mira_free(series);
    mira_free(studies);
    mira_free(patients);
    mira_free(ok || in_tx ? iv.v : NULL);
    mira__archive_db_release(a, db);
    return ok;
}

/* ------------------------------------------------------------------ modify */

static bool refused_tag(mira_tag tag)
{
    return tag == 0x0020000D || tag == 0x0020000E || tag == 0x00080018 || tag == 0x00080016 ||
           tag == 0x00100020 || tag == 0x00100021 || (tag >> 16) == 0x0002 ||
           (tag >> 16) == 0x7FE0 || tag == 0x00080005;
}

static bool ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s > 0x7F)
            return false;
    return true;
}

/* The value of an element as text for the history (owned, "" when absent). */
static char *history_text(const mira_dataset *ds, mira_tag tag)
{
    mira_element *e = mira_dataset_get(ds, tag);
    if (!e)
        return mira_strdup("");
    if (mira_vr_is_string(mira_element_vr(e))) {
        char *s = mira_element_get_text(e, NULL);
        return s ? s : mira_strdup("");
    }
    int64_t v;
    char buf[32] = "";
    if (mira_element_length(e) && mira_element_get_int(e, 0, &v, NULL))
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    return mira_strdup(buf);
}

/* Add v (owned) to *list, the distinct old values sorted and joined with a backslash. */
static void old_add(char **list, char *v)
{
    if (!v)
        return;
    if (!*list) {
        *list = v;
        return;
    }
    size_t n = 0;
    char **parts = NULL;
    for (char *p = *list, *next; p; p = next) {
        char *bs = strchr(p, '\\');
        next = bs ? bs + 1 : NULL;
        char **np = mira_realloc(parts, (n + 2) * sizeof *np);
        if (!np)
            break;
        parts = np;
        parts[n++] = mira_strndup(p, bs ? (size_t)(bs - p) : strlen(p));
    }
    bool have = false;
    for (size_t i = 0; i < n; i++)
        have = have || (parts[i] && strcmp(parts[i], v) == 0);
    if (!have && parts)
        parts[n++] = v;
    else
        mira_free(v);
    qsort(parts, n, sizeof *parts, cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += (parts[i] ? strlen(parts[i]) : 0) + 1;
    char *out = mira_malloc(len);
    if (out) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k +=
                (size_t)snprintf(out + k, len - k, "%s%s", i ? "\\" : "", parts[i] ? parts[i] : "");
        mira_free(*list);
        *list = out;
    }
    for (size_t i = 0; i < n; i++)
        mira_free(parts[i]);
    mira_free(parts);
}

/* The changes, less their Specific Character Set: that one says how their text is encoded. */
static size_t change_count(const mira_dataset *changes)
{
    return mira_dataset_count(changes) - (mira_dataset_get(changes, 0x00080005) ? 1 : 0);
}

static const mira_element *change_at(const mira_dataset *changes, size_t i)
{
    for (size_t k = 0; k < mira_dataset_count(changes); k++) {
        const mira_element *e = mira_dataset_at(changes, k);
        if (mira_element_tag(e) != 0x00080005 && i-- == 0)
            return e;
    }
    return NULL;
}

/* Apply the changes to one instance's data set. */
static bool apply(mira_dataset *ds, const mira_dataset *changes, const mira_tag *remove,
                  size_t nremove, bool *needs_utf8, mira_error **err)
{
    for (size_t i = 0; i < change_count(changes); i++) {
        const mira_element *e = change_at(changes, i);
        mira_tag tag = mira_element_tag(e);
        mira_vr vr = mira_element_vr(e);
        if (vr == MIRA_VR_SQ) {
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Cannot modify",
                           "(%04X,%04X): sequences cannot be modified yet", tag >> 16,
                           tag & 0xFFFF);
            return false;
        }
        size_t len = 0;
        const uint8_t *b = mira_element_bytes(e, &len);
        if (mira_vr_is_string(vr)) {
            char *text = mira_element_get_text(e, NULL);
            if (text && !ascii(text))
                *needs_utf8 = true;
            bool ok = mira_dataset_set_string(ds, tag, vr, text ? text : "", err) != NULL;
            mira_free(text);
            if (!ok)
                return false;
        } else if (!mira_dataset_set_bytes(ds, tag, vr, b, len, err)) {
            return false;
        }
    }
    for (size_t i = 0; i < nremove; i++)
        mira_dataset_remove(ds, remove[i]);
    return true;
}

/*
 * Rewrite each instance of iv with the changes, as new versions; old[c] (may be NULL)
 * gathers the values that change c replaces. *done counts the instances rewritten.
 */
static bool rewrite(mira_archive *a, const inst_vec *iv, const mira_dataset *changes,
                    const mira_tag *remove, size_t nremove, char **old, uint64_t *done,
                    mira_error **err)
{
    size_t nchanges = change_count(changes);
    mira_read_options ro;
    mira_read_options_init(&ro);
    ro.no_mmap = true; /* the blob is replaced while the data set is in use */
    bool ok = true;
    for (size_t i = 0; ok && i < iv->n; i++) {
        char *path = mira__blob_file(a, iv->v[i].blob);
        mira_file *f = path ? mira_file_read(path, &ro, err) : NULL;
        mira_free(path);
        if (!f)
            return false;
        mira_dataset *ds = mira_file_dataset(f);
        for (size_t c = 0; old && c < nchanges + nremove; c++)
            old_add(&old[c],
                    history_text(ds, c < nchanges ? mira_element_tag(change_at(changes, c))
                                                  : remove[c - nchanges]));
        bool needs_utf8 = false;
        ok = apply(ds, changes, remove, nremove, &needs_utf8, err);
        if (ok && needs_utf8) {
            const char *cs = mira_dataset_charset(ds);
            if (!*cs) {
                ok = mira_dataset_set_string(ds, 0x00080005, MIRA_VR_CS, "ISO_IR 192", err) != NULL;
            } else if (strcmp(cs, "ISO_IR 192") != 0) {
                mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Cannot modify",
                               "instance %s uses the character set \"%s\"; non-ASCII values can "
                               "only be written into ISO_IR 192 (UTF-8) instances",
                               iv->v[i].sop, cs);
                ok = false;
            }
        }
        uint8_t *bytes = NULL;
        size_t len = 0;
        mira_store_result res;
        ok = ok && mira_file_write_memory(f, mira_file_transfer_syntax(f), &bytes, &len, err) &&
             mira__archive_store_replace(a, bytes, len, iv->v[i].sop, &res, err);
        mira_free(bytes);
        mira_file_free(f);
        if (ok)
            (*done)++;
    }
    return ok;
}

/* The index rows of a level under the entity whose columns the changes touch. */
static bool update_rows(mira_archive *a, mira__db *db, mira_level level, const inst_vec *iv,
                        const mira_dataset *changes, const mira_tag *remove, size_t nremove,
                        const char *now, mira_error **err)
{
    int64_t *pks = mira_malloc((iv->n + 1) * sizeof *pks);
    if (!pks) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "modify");
        return false;
    }
    bool ok = true;
    for (int l = (int)level; ok && l < (int)MIRA_LEVEL_INSTANCE; l++) {
        for (size_t i = 0; i < iv->n; i++)
            pks[i] = l == 0 ? iv->v[i].patient_pk : l == 1 ? iv->v[i].study_pk : iv->v[i].series_pk;
        size_t n = distinct(pks, iv->n);
        for (size_t k = 0; ok && k < mira__key_count; k++) {
            const mira__key *key = &mira__keys[k];
            if ((int)key->level != l || !key->column || key->kind == MIRA__KEY_COUNT ||
                key->kind == MIRA__KEY_LIST || key->kind == MIRA__KEY_SEQ ||
                key->tag == 0x00100020 || key->tag == 0x00100021)
                continue; /* the patient's identity is the merge's (mira_archive_merge_patient) */
            const mira_element *e = mira_dataset_get(changes, key->tag);
            bool removed = false;
            for (size_t r = 0; r < nremove; r++)
                removed = removed || remove[r] == key->tag;
            if (!e && !removed)
                continue;
            char *v = e && mira_element_length(e) ? history_text(changes, key->tag) : NULL;
            if (v && !*v) {
                mira_free(v);
                v = NULL;
            }
            char extra[14] = "";
            char *folded = NULL;
            const char *companion = NULL;
            if (key->kind == MIRA__KEY_PN) {
                folded = mira__fold_case(v);
                companion = "_ci";
            } else if (key->kind == MIRA__KEY_TIME) {
                companion = "_n";
                if (!v || !mira__time_normalise(v, '0', extra))
                    extra[0] = 0;
            } else if (key->kind == MIRA__KEY_DATE && v) {
                char d[9];
                if (mira__date_normalise(v, d))
                    memcpy(v, d, 9);
            }
            char sql[256];
            if (companion)
                snprintf(sql, sizeof sql,
                         "UPDATE %s SET %s = ?, %s%s = ?, updated_at = ? WHERE pk = ?",
                         mira__level_table((mira_level)l), key->column, key->column, companion);
            else
                snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?, updated_at = ? WHERE pk = ?",
                         mira__level_table((mira_level)l), key->column);
            for (size_t i = 0; ok && i < n; i++) {
                mira__dbval p[4];
                size_t np = 0;
                if (key->kind == MIRA__KEY_INT && v)
                    p[np++] = mira__db_int(strtoll(v, NULL, 10));
                else
                    p[np++] = mira__db_opt(v);
                if (companion)
                    p[np++] =
                        key->kind == MIRA__KEY_PN ? mira__db_opt(folded) : mira__db_opt(extra);
                p[np++] = mira__db_text(now);
                p[np++] = mira__db_int(pks[i]);
                ok = db->ops->query(db, sql, p, np, NULL, NULL, NULL, err);
                if (ok && key->multi) {
                    mira__dbval own[3] = {mira__db_int(l), mira__db_int(pks[i]),
                                          mira__db_int(key->tag)};
                    ok = db->ops->query(db,
                                        "DELETE FROM multi_values WHERE owner_level = ? AND"
                                        " owner_pk = ? AND tag = ?",
                                        own, 3, NULL, NULL, NULL, err);
                    for (char *s = v, *next; ok && s; s = next) {
                        char *bs = strchr(s, '\\');
                        next = bs ? bs + 1 : NULL;
                        char one[1024];
                        snprintf(one, sizeof one, "%.*s", bs ? (int)(bs - s) : (int)strlen(s), s);
                        if (!*one)
                            continue;
                        char *ci = key->kind == MIRA__KEY_PN ? mira__fold_case(one) : NULL;
                        mira__dbval row[5] = {own[0], own[1], own[2], mira__db_text(one),
                                              mira__db_text(ci)};
                        ok = db->ops->query(db,
                                            "INSERT INTO multi_values (owner_level, owner_pk, tag,"
                                            " value, value_ci) VALUES (?, ?, ?, ?, ?)",
                                            row, 5, NULL, NULL, NULL, err);
                        mira_free(ci);
                    }
                }
            }
            mira_free(folded);
            mira_free(v);
        }
    }
    (void)a;
    mira_free(pks);
    return ok;
}

/* One change in the history. */
static bool record_change(mira__db *db, const char *now, mira_level level, const char *entity,
                          mira_tag tag, const char *old, const char *nv, const char *reason,
                          uint64_t instances, mira_error **err)
{
    mira__dbval p[8] = {mira__db_text(now),
                        mira__db_int(level),
                        mira__db_text(entity),
                        mira__db_int(tag),
                        mira__db_text(old ? old : ""),
                        mira__db_text(nv ? nv : ""),
                        mira__db_text(reason),
                        mira__db_int((int64_t)instances)};
    return db->ops->query(db,
                          "INSERT INTO modifications (at, level, entity, tag, old_value,"
                          " new_value, reason, instances) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          p, 8, NULL, NULL, NULL, err);
}

bool mira_archive_modify(mira_archive *a, mira_level level, const char *key,
                         const mira_dataset *changes, const mira_tag *remove, size_t nremove,
                         const char *reason, uint64_t *instances, mira_error **err)
{
    if ((unsigned)level > MIRA_LEVEL_INSTANCE || !key || !*key || !changes) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad modify",
                       "a level, a key and changes are needed");
        return false;
    }
    /* what may change */
    size_t nchanges = change_count(changes);
    for (size_t i = 0; i < nchanges + nremove; i++) {
        mira_tag tag =
            i < nchanges ? mira_element_tag(change_at(changes, i)) : remove[i - nchanges];
        const mira__key *k = mira__key_find(tag);
        const mira_dict_entry *de = mira_dict_find(tag);
        const char *kw = de && de->keyword[0] ? de->keyword : "";
        if (refused_tag(tag)) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Cannot modify",
                           "(%04X,%04X) %s cannot be modified: it identifies the entity or is "
                           "part of the file's encoding",
                           tag >> 16, tag & 0xFFFF, kw);
            return false;
        }
        if (k && k->level < level) {
            mira_error_set(
                err, MIRA_ERR_ARGUMENT, "Cannot modify",
                "(%04X,%04X) %s belongs to the %s: modify it there", tag >> 16, tag & 0xFFFF, kw,
                k->level == MIRA_LEVEL_PATIENT ? "patient" : mira__level_table(k->level));
            return false;
        }
        if (k && (k->kind == MIRA__KEY_COUNT || k->kind == MIRA__KEY_LIST)) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Cannot modify",
                           "(%04X,%04X) %s is computed by the archive", tag >> 16, tag & 0xFFFF,
                           kw);
            return false;
        }
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    inst_vec iv;
    if (!list_instances(db, level, key, &iv, err)) {
        mira__archive_db_release(a, db);
        return false;
    }
    char **old = mira_calloc(nchanges + nremove + 1, sizeof *old);
    bool ok = old != NULL;
    uint64_t done = 0;
    ok = ok && rewrite(a, &iv, changes, remove, nremove, old, &done, err);
    /* the rows above the instances, and the history, in one transaction */
    char now[32];
    mira__now(now);
    bool in_tx = ok && db->ops->begin_write(db, err);
    ok = in_tx && update_rows(a, db, level, &iv, changes, remove, nremove, now, err);
    for (size_t c = 0; ok && c < nchanges + nremove; c++) {
        mira_tag tag =
            c < nchanges ? mira_element_tag(change_at(changes, c)) : remove[c - nchanges];
        char *nv = c < nchanges ? history_text(changes, tag) : mira_strdup("");
        ok = record_change(db, now, level, key, tag, old[c], nv, reason, done, err);
        mira_free(nv);
    }
    if (in_tx && ok)
        ok = mira__db_commit(db, err);
    else if (in_tx)
        mira__db_rollback(db);
    for (size_t c = 0; old && c < nchanges + nremove; c++)
        mira_free(old[c]);
    mira_free(old);
    mira_free(iv.v);
    mira__archive_db_release(a, db);
    if (instances)
        *instances = done;
    return ok;
}

/* ------------------------------------------------------------------ merge */

typedef struct texts {
    bool found;
    char *v[3];
} texts;

static bool take_texts(void *ctx, const mira__dbval *c, size_t n)
{
    texts *t = ctx;
    t->found = true;
    for (size_t i = 0; i < n && i < 3; i++)
        t->v[i] = c[i].type == MIRA__DB_TEXT ? mira_strdup(c[i].s) : NULL;
    return false;
}

/*
 * The attributes the merged instances take (owned, UTF-8): those of `into`, and for the
 * name, birth date and sex it leaves out, the survivor's in the index (*found when it is
 * there, its key in *target).
 */
static mira_dataset *survivor(mira__db *db, const mira_dataset *into, const char *id,
                              const char *issuer, int64_t *target, bool *found, mira_error **err)
{
    mira__dbval k[2] = {mira__db_text(id), mira__db_text(issuer)};
    if (!mira__db_query_int(db, "SELECT pk FROM patients WHERE patient_id = ? AND issuer = ?", k,
                            2, target, found, err))
        return NULL;
    mira_dataset *full = mira_dataset_new(NULL);
    bool ok = full && mira_dataset_set_string(full, 0x00080005, MIRA_VR_CS, "ISO_IR 192", err);
    for (size_t i = 0; ok && i < change_count(into); i++) {
        const mira_element *e = change_at(into, i);
        size_t len = 0;
        const uint8_t *b = mira_element_bytes(e, &len);
        if (mira_vr_is_string(mira_element_vr(e))) {
            char *text = mira_element_get_text(e, NULL);
            ok = mira_dataset_set_string(full, mira_element_tag(e), mira_element_vr(e),
                                         text ? text : "", err) != NULL;
            mira_free(text);
        } else {
            ok = mira_dataset_set_bytes(full, mira_element_tag(e), mira_element_vr(e), b, len,
                                        err) != NULL;
        }
    }
    texts t = {0};
    if (ok && *found) {
        mira__dbval pk = mira__db_int(*target);
        ok = db->ops->query(db, "SELECT patient_name, birth_date, sex FROM patients WHERE pk = ?",
                            &pk, 1, take_texts, &t, NULL, err);
    }
    static const struct {
        mira_tag tag;
        mira_vr vr;
    } own[3] = {{0x00100010, MIRA_VR_PN}, {0x00100030, MIRA_VR_DA}, {0x00100040, MIRA_VR_CS}};
    for (size_t i = 0; ok && t.found && i < 3; i++)
        if (!mira_dataset_get(into, own[i].tag))
            ok = mira_dataset_set_string(full, own[i].tag, own[i].vr, t.v[i] ? t.v[i] : "",
                                         err) != NULL;
    for (size_t i = 0; i < 3; i++)
        mira_free(t.v[i]);
    if (!ok) {
        mira_dataset_free(full);
        return NULL;
    }
    return full;
}

bool mira_archive_merge_patient(mira_archive *a, const char *patient_id, const char *issuer,
                                const mira_dataset *into, const char *reason, uint64_t *instances,
                                mira_error **err)
{
    if (instances)
        *instances = 0;
    char *to_id = into ? history_text(into, 0x00100020) : NULL;
    char *to_issuer = into ? history_text(into, 0x00100021) : NULL;
    bool ok = patient_id && *patient_id && to_id && *to_id && to_issuer;
    if (!ok)
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad merge",
                       "the Patient ID of the patient merged and of the one it is merged into "
                       "are needed");
    for (size_t i = 0; ok && i < change_count(into); i++) {
        mira_tag tag = mira_element_tag(change_at(into, i));
        const mira__key *k = mira__key_find(tag);
        if (!k || k->level != MIRA_LEVEL_PATIENT || k->kind == MIRA__KEY_COUNT ||
            k->kind == MIRA__KEY_LIST || mira_element_vr(change_at(into, i)) == MIRA_VR_SQ) {
            const mira_dict_entry *de = mira_dict_find(tag);
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad merge",
                           "(%04X,%04X) %s is not an attribute of the patient", tag >> 16,
                           tag & 0xFFFF, de && de->keyword[0] ? de->keyword : "");
            ok = false;
        }
    }
    if (ok && strcmp(patient_id, to_id) == 0 && (!issuer || strcmp(issuer, to_issuer) == 0)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad merge",
                       "patient %s cannot be merged into itself", patient_id);
        ok = false;
    }
    mira__db *db = ok ? mira__archive_db_acquire(a, err) : NULL;
    ok = ok && db;
    /* the survivor's attributes: those given, else (when it is in the archive) its own */
    int64_t target = 0;
    bool found = false;
    mira_dataset *full = ok ? survivor(db, into, to_id, to_issuer, &target, &found, err) : NULL;
    ok = ok && full;
    /* the instances of the patient merged (not those of the survivor, when the issuer is open);
     * with attributes beyond the identity, the survivor's too, so that all of them agree */
    inst_vec iv = {0}, sv = {0};
    if (ok) {
        mira__dbval p[4] = {mira__db_text(patient_id), mira__db_text(to_id),
                            mira__db_text(to_issuer), mira__db_text(issuer)};
        if (issuer) {
            p[1] = p[3];
            p[2] = mira__db_text(to_id);
            p[3] = mira__db_text(to_issuer);
        }
        ok = list_where(db,
                        issuer ? "p.patient_id = ? AND p.issuer = ? AND NOT (p.patient_id = ? AND"
                                 " p.issuer = ?)"
                               : "p.patient_id = ? AND NOT (p.patient_id = ? AND p.issuer = ?)",
                        p, issuer ? 4 : 3, &iv, err);
        if (ok && !iv.n) {
            mira_error_set(err, MIRA_ERR_NOT_FOUND, "Not found", "no patient %s%s%s in the archive",
                           patient_id, issuer && *issuer ? " of " : "", issuer ? issuer : "");
            ok = false;
        }
    }
    if (ok && found && change_count(into) > 1 + (mira_dataset_get(into, 0x00100021) != NULL)) {
        mira__dbval t = mira__db_int(target);
        ok = list_where(db, "p.pk = ?", &t, 1, &sv, err);
    }
    /* the instances first, as new versions; an issuer not given is removed */
    size_t nchanges = ok ? change_count(full) : 0;
    char **old = ok ? mira_calloc(nchanges + 1, sizeof *old) : NULL;
    ok = ok && old;
    const mira_tag no_issuer = 0x00100021;
    bool drop_issuer = !mira_dataset_get(into, 0x00100021);
    uint64_t done = 0;
    ok = ok && rewrite(a, &iv, full, &no_issuer, drop_issuer ? 1 : 0, old, &done, err) &&
         rewrite(a, &sv, full, &no_issuer, drop_issuer ? 1 : 0, NULL, &done, err);
    /* then the index, in one transaction: the studies under the survivor (the patient renamed
     * when the survivor is not in the archive), the emptied patient gone, the history */
    char now[32];
    mira__now(now);
    bool in_tx = ok && db->ops->begin_write(db, err);
    ok = in_tx;
    int64_t *pats = ok ? mira_malloc((iv.n + 1) * sizeof *pats) : NULL;
    int64_t *studies = ok ? mira_malloc((iv.n + 1) * sizeof *studies) : NULL;
    ok = ok && pats && studies;
    if (ok) {
        mira__dbval k[2] = {mira__db_text(to_id), mira__db_text(to_issuer)};
        ok = mira__db_query_int(db, "SELECT pk FROM patients WHERE patient_id = ? AND issuer = ?",
                                k, 2, &target, &found, err);
    }
    size_t np = 0, ns = 0;
    if (ok) {
        for (size_t i = 0; i < iv.n; i++) {
            pats[i] = iv.v[i].patient_pk;
            studies[i] = iv.v[i].study_pk;
        }
        np = distinct(pats, iv.n);
        ns = distinct(studies, iv.n);
        if (!found) {
            target = pats[0];
            mira__dbval u[4] = {mira__db_text(to_id), mira__db_text(to_issuer),
                                mira__db_text(now), mira__db_int(target)};
            ok = db->ops->query(db,
                                "UPDATE patients SET patient_id = ?, issuer = ?, updated_at = ?"
                                " WHERE pk = ?",
                                u, 4, NULL, NULL, NULL, err);
        }
    }
    for (size_t i = 0; ok && i < ns; i++) {
        mira__dbval u[3] = {mira__db_int(target), mira__db_text(now), mira__db_int(studies[i])};
        ok = db->ops->query(db, "UPDATE studies SET patient_pk = ?, updated_at = ? WHERE pk = ?", u,
                            3, NULL, NULL, NULL, err);
    }
    if (ok) {
        inst one = {0};
        one.patient_pk = target;
        inst_vec tv = {&one, 1, 1, false};
        size_t kept = 0, w = 0;
        uint64_t dropped = 0;
        for (size_t i = 0; i < np; i++)
            if (pats[i] != target)
                pats[w++] = pats[i];
        ok = update_rows(a, db, MIRA_LEVEL_PATIENT, &tv, full, NULL, 0, now, err) &&
             drop_empty(db, MIRA_LEVEL_PATIENT, pats, w, &kept, &dropped, err);
        pats[kept++] = target;
        ok = ok && recount(db, NULL, 0, NULL, 0, pats, kept, now, err);
    }
    for (size_t c = 0; ok && c < nchanges; c++) {
        mira_tag tag = mira_element_tag(change_at(full, c));
        char *nv = history_text(full, tag);
        ok = record_change(db, now, MIRA_LEVEL_PATIENT, patient_id, tag, old[c], nv, reason, done,
                           err);
        mira_free(nv);
    }
    if (in_tx && ok)
        ok = mira__db_commit(db, err);
    else if (in_tx)
        mira__db_rollback(db);
    if (ok && instances)
        *instances = done;
    for (size_t c = 0; old && c <= nchanges; c++) /* (and the issuer's, when removed) */
        mira_free(old[c]);
    mira_free(old);
    mira_free(pats);
    mira_free(studies);
    mira_free(iv.v);
    mira_free(sv.v);
    mira_dataset_free(full);
    if (db)
        mira__archive_db_release(a, db);
    mira_free(to_id);
    mira_free(to_issuer);
    return ok;
}

/* ------------------------------------------------------------------ history */

typedef struct hist_ctx {
    mira_history_fn fn;
    void *ctx;
} hist_ctx;

static bool take_hist(void *ctx, const mira__dbval *c, size_t n)
{
    hist_ctx *h = ctx;
    if (n < 8)
        return true;
    return h->fn(h->ctx, c[0].s ? c[0].s : "", (mira_level)c[1].i, c[2].s ? c[2].s : "",
                 (mira_tag)c[3].i, c[4].s ? c[4].s : "", c[5].s ? c[5].s : "", c[6].s ? c[6].s : "",
                 (uint64_t)c[7].i);
}

bool mira_archive_history(mira_archive *a, const char *entity, mira_history_fn fn, void *ctx,
                          mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    hist_ctx h = {fn, ctx};
    mira__dbval p = mira__db_text(entity);
    bool ok = entity ? mira__db_query(db,
                                      "SELECT at, level, entity, tag, old_value, new_value, reason,"
                                      " instances FROM modifications WHERE entity = ? ORDER BY pk",
                                      &p, 1, take_hist, &h, err)
                     : mira__db_query(db,
                                      "SELECT at, level, entity, tag, old_value, new_value, reason,"
                                      " instances FROM modifications ORDER BY pk",
                                      NULL, 0, take_hist, &h, err);
    mira__archive_db_release(a, db);
    return ok;
}
