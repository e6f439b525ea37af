/* The patient record: demographics and identifiers (from ADT), orders (worklist entries),
 * studies (the DICOM index) and reports (ORU), linked, as one JSON document. */
#include "archive/archive_int.h"
#include "mira/hl7.h"
#include "mira/json.h"

#include <stdio.h>
#include <string.h>

#define MAX_IDS 32

typedef struct ids {
    char *v[MAX_IDS];
    size_t n;
} ids;

static void ids_add(ids *s, const char *id)
{
    if (!id || !*id || s->n >= MAX_IDS)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], id) == 0)
            return;
    char *c = mira_strdup(id);
    if (c)
        s->v[s->n++] = c;
}

static void ids_free(ids *s)
{
    for (size_t i = 0; i < s->n; i++)
        mira_free(s->v[i]);
}

static bool take_ids(void *ctx, const mira__dbval *c, size_t n)
{
    if (n >= 1 && c[0].type == MIRA__DB_TEXT)
        ids_add(ctx, c[0].s);
    return true;
}

/* " IN (?, ?, ...)" for the ids, their values appended to p. */
static void in_list(char *sql, size_t cap, const ids *s, mira__dbval *p, size_t *np)
{
    size_t at = strlen(sql);
    at += (size_t)snprintf(sql + at, cap - at, " IN (");
    for (size_t i = 0; i < s->n; i++) {
        at += (size_t)snprintf(sql + at, cap - at, i ? ", ?" : "?");
        p[(*np)++] = mira__db_text(s->v[i]);
    }
    snprintf(sql + at, cap - at, ")");
}

typedef struct emit {
    mira_json_writer *w;
    const char *const *names;
    size_t n;
    size_t rows;
    size_t number; /* the column (from 1) of text written as a JSON number; 0: none */
} emit;

/* Each row as an object of the named columns (text, integers, null). */
static bool emit_row(void *ctx, const mira__dbval *c, size_t n)
{
    emit *e = ctx;
    mira_json_begin_object(e->w);
    for (size_t i = 0; i < n && i < e->n; i++) {
        mira_json_key(e->w, e->names[i]);
        if (c[i].type == MIRA__DB_TEXT && i + 1 == e->number)
            mira_json_number_text(e->w, c[i].s, strlen(c[i].s));
        else if (c[i].type == MIRA__DB_TEXT)
            mira_json_cstring(e->w, c[i].s);
        else if (c[i].type == MIRA__DB_INT)
            mira_json_int(e->w, c[i].i);
        else
            mira_json_null(e->w);
    }
    mira_json_end_object(e->w);
    e->rows++;
    return true;
}

static bool rows(mira__db *db, mira_json_writer *w, const char *key, const char *sql,
                 const mira__dbval *p, size_t np, const char *const *names, size_t nnames,
                 size_t *count, mira_error **err)
{
    mira_json_key(w, key);
    mira_json_begin_array(w);
    emit e = {w, names, nnames, 0, strcmp(key, "results") == 0 ? 4 : 0};
    bool ok = db->ops->query(db, sql, p, np, emit_row, &e, NULL, err);
    mira_json_end_array(w);
    if (count)
        *count = e.rows;
    return ok;
}

typedef struct emr_row {
    bool found;
    int64_t pk, merged_into;
    char *col[9];
} emr_row;

static bool take_emr(void *ctx, const mira__dbval *c, size_t n)
{
    emr_row *r = ctx;
    if (n < 11 || r->found)
        return false;
    r->found = true;
    r->pk = c[0].i;
    r->merged_into = c[1].type == MIRA__DB_INT ? c[1].i : 0;
    for (size_t i = 0; i < 9; i++)
        r->col[i] = c[i + 2].type == MIRA__DB_TEXT ? mira_strdup(c[i + 2].s) : NULL;
    return false;
}

static void emr_free(emr_row *r)
{
    for (size_t i = 0; i < 9; i++)
        mira_free(r->col[i]);
}

static const char *const emr_cols = "SELECT pk, merged_into, patient_id, issuer, name, birth_date,"
                                    " sex, address, phone, created_at, updated_at"
                                    " FROM emr_patients";

char *mira_patient_record(mira_archive *a, const char *patient_id, const char *issuer,
                          size_t *len, mira_error **err)
{
    if (!patient_id || !*patient_id) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "a patient record needs a patient ID");
        return NULL;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return NULL;
    char *out = NULL;
    ids all = {.n = 0};
    emr_row r = {0};
    char sql[2048];
    mira__dbval p[MAX_IDS * 2 + 4];
    size_t np = 0;
    /* the EMR patient: by identifier (and issuer), else by any identifier of theirs */
    mira__dbval k[2] = {mira__db_text(patient_id), mira__db_text(issuer ? issuer : "")};
    snprintf(sql, sizeof sql, "%s WHERE patient_id = ?%s ORDER BY pk", emr_cols,
             issuer ? " AND issuer = ?" : "");
    bool ok = db->ops->query(db, sql, k, issuer ? 2 : 1, take_emr, &r, NULL, err);
    if (ok && !r.found) {
        snprintf(sql, sizeof sql,
                 "%s WHERE pk IN (SELECT patient_pk FROM emr_identifiers WHERE id = ?%s)"
                 " ORDER BY pk",
                 emr_cols, issuer ? " AND issuer = ?" : "");
        ok = db->ops->query(db, sql, k, issuer ? 2 : 1, take_emr, &r, NULL, err);
    }
    /* a merged patient's record is its survivor's */
    for (int hops = 0; ok && r.found && r.merged_into && hops < 8; hops++) {
        mira__dbval m = mira__db_int(r.merged_into);
        emr_free(&r);
        memset(&r, 0, sizeof r);
        snprintf(sql, sizeof sql, "%s WHERE pk = ?", emr_cols);
        ok = db->ops->query(db, sql, &m, 1, take_emr, &r, NULL, err);
    }
    ids_add(&all, r.found ? r.col[0] : patient_id);
    if (ok && r.found) {
        mira__dbval pk = mira__db_int(r.pk);
        ok = db->ops->query(db,
                            "SELECT id FROM emr_identifiers WHERE patient_pk = ?"
                            " UNION SELECT patient_id FROM emr_patients WHERE merged_into = ?",
                            (mira__dbval[]){pk, pk}, 2, take_ids, &all, NULL, err);
    }
    mira_json_writer *w = ok ? mira_json_writer_new(true) : NULL;
    if (ok && !w) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a patient record");
        ok = false;
    }
    size_t nstudies = 0, norders = 0, nreports = 0;
    if (ok) {
        mira_json_begin_object(w);
        mira_json_key(w, "patient");
        static const char *const names[] = {"patient_id", "issuer",  "name",       "birth_date",
                                            "sex",        "address", "phone",      "created_at",
                                            "updated_at"};
        mira_json_begin_object(w);
        for (size_t i = 0; i < 9; i++) {
            mira_json_key(w, names[i]);
            const char *v = r.found ? r.col[i] : i == 0 ? patient_id : i == 1 && issuer ? issuer
                                                                                         : NULL;
            if (v)
                mira_json_cstring(w, v);
            else
                mira_json_null(w);
        }
        mira_json_key(w, "from_hl7");
        mira_json_bool(w, r.found);
        mira_json_end_object(w);
        if (r.found) {
            static const char *const idn[] = {"id", "issuer", "type"};
            mira__dbval pk = mira__db_int(r.pk);
            ok = rows(db, w, "identifiers",
                      "SELECT id, issuer, type FROM emr_identifiers WHERE patient_pk = ?"
                      " ORDER BY type = 'MERGED', id",
                      &pk, 1, idn, 3, NULL, err);
        }
    }
    if (ok) {
        static const char *const sn[] = {"study_uid",   "study_date",  "study_time",
                                         "accession",   "description", "modalities",
                                         "num_series",  "num_instances", "patient_id",
                                         "issuer",      "patient_name", "birth_date", "sex"};
        np = 0;
        snprintf(sql, sizeof sql,
                 "SELECT s.study_uid, s.study_date, s.study_time, s.accession,"
                 " s.study_description, s.modalities, s.num_series, s.num_instances,"
                 " p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex"
                 " FROM studies s JOIN patients p ON p.pk = s.patient_pk WHERE p.patient_id");
        in_list(sql, sizeof sql, &all, p, &np);
        strncat(sql, " ORDER BY s.study_date DESC, s.study_time DESC, s.pk",
                sizeof sql - strlen(sql) - 1);
        ok = rows(db, w, "studies", sql, p, np, sn, 13, &nstudies, err);
    }
    if (ok) {
        static const char *const on[] = {
            "id",         "accession",      "placer_order",   "filler_order", "procedure",
            "modality",   "scheduled_date", "scheduled_time", "station_aet",  "status",
            "source",     "study_uid",      "linked_study_uid"};
        np = 0;
        snprintf(sql, sizeof sql,
                 "SELECT w.pk, w.accession, w.placer_order, w.filler_order,"
                 " w.procedure_description, w.modality, w.start_date, w.start_time,"
                 " w.station_aet, w.status, w.source, w.study_uid,"
                 " (SELECT MIN(s.study_uid) FROM studies s WHERE s.study_uid = w.study_uid"
                 " OR (w.accession IS NOT NULL AND w.accession <> '' AND"
                 " s.accession = w.accession))"
                 " FROM worklist w WHERE w.patient_id");
        in_list(sql, sizeof sql, &all, p, &np);
        strncat(sql, " ORDER BY w.start_date, w.start_time, w.pk", sizeof sql - strlen(sql) - 1);
        ok = rows(db, w, "orders", sql, p, np, on, 13, &norders, err);
    }
    if (ok) {
        static const char *const rn[] = {"accession",   "version",   "status",
                                         "observed_at", "procedure", "text",
                                         "message_id",  "received_at", "study_uid"};
        np = 0;
        snprintf(sql, sizeof sql,
                 "SELECT r.accession, r.version, r.status, r.observed_at, r.procedure_text,"
                 " r.text, r.message_id, r.created_at,"
                 " (SELECT MIN(s.study_uid) FROM studies s WHERE r.accession IS NOT NULL AND"
                 " s.accession = r.accession)"
                 " FROM reports r WHERE r.patient_id");
        in_list(sql, sizeof sql, &all, p, &np);
        strncat(sql, " ORDER BY r.accession, r.version", sizeof sql - strlen(sql) - 1);
        ok = rows(db, w, "reports", sql, p, np, rn, 9, &nreports, err);
    }
    if (ok) {
        /* analysis results of those studies (mira features --study) */
        static const char *const an[] = {"study_uid", "method", "tag", "value", "created_at"};
        np = 0;
        snprintf(sql, sizeof sql,
                 "SELECT a.study_uid, a.method, a.tag, a.value, a.created_at"
                 " FROM analysis_results a JOIN studies s ON s.study_uid = a.study_uid"
                 " JOIN patients p ON p.pk = s.patient_pk WHERE p.patient_id");
        in_list(sql, sizeof sql, &all, p, &np);
        strncat(sql, " ORDER BY a.study_uid, a.pk", sizeof sql - strlen(sql) - 1);
        ok = rows(db, w, "results", sql, p, np, an, 5, NULL, err);
    }
    if (ok) {
        mira_json_end_object(w);
        if (!r.found && nstudies == 0 && norders == 0 && nreports == 0) {
            mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such patient",
                           "nothing is known of patient %s%s%s", patient_id,
                           issuer ? " of " : "", issuer ? issuer : "");
        } else {
            out = mira_json_writer_finish(w, len, err);
        }
    }
    mira_json_writer_free(w);
    mira__archive_db_release(a, db);
    emr_free(&r);
    ids_free(&all);
    return out;
}
