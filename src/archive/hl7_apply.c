/* Acting on the HL7 messages kept (migration 8): ADT keeps the patients' demographics and
 * identifiers (and those of their images: an A40 merges the images too), ORM^O01 / OMI^O23
 * orders become worklist entries, ORU^R01 reports are kept in versions by accession number. */
#include "archive/archive_int.h"
#include "core/base64.h"
#include "core/buf.h"
#include "mira/hl7.h"
#include "mira/worklist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ reading a message */

/* The value at path ("" when absent; never NULL unless memory ran out). Owned. */
static char *get(const mira_hl7_message *m, const char *fmt, ...) MIRA_PRINTF(2, 3);
static char *get(const mira_hl7_message *m, const char *fmt, ...)
{
    char path[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return mira_hl7_get(m, path, NULL);
}

/* The first non-empty of several paths (owned, "" if none). */
static char *first_of(const mira_hl7_message *m, const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *v = mira_hl7_get(m, paths[i], NULL);
        if (v && *v)
            return v;
        mira_free(v);
    }
    return mira_strdup("");
}

static bool has_segment(const mira_hl7_message *m, const char *name)
{
    for (size_t i = 0; i < mira_hl7_segment_count(m); i++)
        if (strcmp(mira_hl7_segment_name(m, i), name) == 0)
            return true;
    return false;
}

/* An XPN (PID-5: family^given^middle^suffix^prefix) as a DICOM PN
 * (family^given^middle^prefix^suffix, trailing empty components dropped). Owned. */
static char *person_name(const mira_hl7_message *m, const char *field)
{
    char *c[5];
    static const int from[5] = {1, 2, 3, 5, 4};
    for (int i = 0; i < 5; i++)
        c[i] = get(m, "%s.%d", field, from[i]);
    int last = -1;
    for (int i = 0; i < 5; i++)
        if (c[i] && *c[i])
            last = i;
    mira__buf b;
    mira__buf_init(&b);
    for (int i = 0; i <= last; i++) {
        if (i)
            mira__buf_putc(&b, '^');
        mira__buf_puts(&b, c[i] ? c[i] : "");
    }
    for (int i = 0; i < 5; i++)
        mira_free(c[i]);
    mira__buf_putc(&b, 0);
    char *out = mira__buf_steal(&b, NULL);
    return out;
}

/* An HL7 date/time (YYYY[MM[DD[HH[MM[SS]]]]]) split into a DICOM DA and TM. */
static void split_dtm(const char *dtm, char da[9], char tm[7])
{
    da[0] = tm[0] = 0;
    size_t n = 0;
    while (dtm[n] >= '0' && dtm[n] <= '9' && n < 14)
        n++;
    if (n >= 8)
        snprintf(da, 9, "%.8s", dtm);
    if (n >= 12)
        snprintf(tm, 7, "%.*s", (int)(n - 8), dtm + 8);
}

/* The patient of a message's PID: the identifier (the first repetition of PID-3 of type MR,
 * else the first) and its assigning authority (HD.1). */
typedef struct patient {
    char *id, *issuer, *name, *birth, *sex, *address, *phone;
} patient;

static void patient_free(patient *p)
{
    mira_free(p->id);
    mira_free(p->issuer);
    mira_free(p->name);
    mira_free(p->birth);
    mira_free(p->sex);
    mira_free(p->address);
    mira_free(p->phone);
}

static bool patient_of(const mira_hl7_message *m, patient *p)
{
    memset(p, 0, sizeof *p);
    size_t reps = mira_hl7_count(m, "PID-3");
    size_t pick = 1;
    for (size_t r = 1; r <= reps; r++) {
        char *type = get(m, "PID-3(%zu).5", r);
        bool mr = type && strcmp(type, "MR") == 0;
        mira_free(type);
        if (mr) {
            pick = r;
            break;
        }
    }
    p->id = get(m, "PID-3(%zu).1", pick);
    p->issuer = get(m, "PID-3(%zu).4", pick);
    p->name = person_name(m, "PID-5");
    p->birth = get(m, "PID-7");
    if (p->birth && strlen(p->birth) > 8)
        p->birth[8] = 0;
    p->sex = get(m, "PID-8");
    p->address = mira_hl7_get_encoded(m, "PID-11(1)", NULL);
    p->phone = get(m, "PID-13");
    return p->id && *p->id && p->issuer && p->name && p->birth && p->sex && p->address &&
           p->phone;
}

/* ------------------------------------------------------------------ patients */

typedef struct row_pk {
    int64_t pk;
    bool found;
    char *vals[7];
} row_pk;

static bool take_patient(void *ctx, const mira__dbval *c, size_t n)
{
    row_pk *r = ctx;
    if (n >= 7 && c[0].type == MIRA__DB_INT) {
        r->pk = c[0].i;
        r->found = true;
        for (size_t i = 1; i < 7; i++)
            r->vals[i] = c[i].type == MIRA__DB_TEXT ? mira_strdup(c[i].s) : NULL;
    }
    return false;
}

/* HL7 v2.5 2.5.3: an empty field leaves the value as it was; "" (two double quotes) clears it. */
static const char *merge_value(const char *sent, const char *had)
{
    if (!sent || !*sent)
        return had;
    if (strcmp(sent, "\"\"") == 0)
        return NULL;
    return sent;
}

/* Insert a new patient: RETURNING its key into *pk, or (pk NULL) nothing if it exists. */
static bool insert_patient(mira__db *db, const patient *p, int64_t message_id, const char *now,
                           int64_t *pk, mira_error **err)
{
    mira__dbval u[10] = {mira__db_text(p->id),
                         mira__db_text(p->issuer),
                         mira__db_opt(merge_value(p->name, NULL)),
                         mira__db_opt(merge_value(p->birth, NULL)),
                         mira__db_opt(merge_value(p->sex, NULL)),
                         mira__db_opt(merge_value(p->address, NULL)),
                         mira__db_opt(merge_value(p->phone, NULL)),
                         mira__db_int(message_id),
                         mira__db_text(now),
                         mira__db_text(now)};
    static const char *const sql = "INSERT INTO emr_patients (patient_id, issuer, name,"
                                   " birth_date, sex, address, phone, message_id, created_at,"
                                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    char text[512];
    snprintf(text, sizeof text, "%s%s", sql,
             pk ? " RETURNING pk" : " ON CONFLICT (patient_id, issuer) DO NOTHING");
    if (!pk)
        return db->ops->query(db, text, u, 10, NULL, NULL, NULL, err);
    bool found = false;
    return mira__db_query_int(db, text, u, 10, pk, &found, err);
}

/* Insert or update the patient (only_new: leave an existing one as it is, in one statement);
 * *pk its key (not set with only_new). */
static bool upsert_patient(mira__db *db, const patient *p, int64_t message_id, bool only_new,
                           const char *now, int64_t *pk, mira_error **err)
{
    mira__dbval k[2] = {mira__db_text(p->id), mira__db_text(p->issuer)};
    row_pk r = {0};
    *pk = 0;
    if (only_new) /* an order's or a report's patient: made if new, else left as it is */
        return insert_patient(db, p, message_id, now, NULL, err);
    if (!db->ops->query(db,
                        "SELECT pk, name, birth_date, sex, address, phone, updated_at"
                        " FROM emr_patients WHERE patient_id = ? AND issuer = ?",
                        k, 2, take_patient, &r, NULL, err))
        return false;
    bool ok;
    if (r.found) {
        const char *v[5] = {merge_value(p->name, r.vals[1]), merge_value(p->birth, r.vals[2]),
                            merge_value(p->sex, r.vals[3]), merge_value(p->address, r.vals[4]),
                            merge_value(p->phone, r.vals[5])};
        mira__dbval u[8] = {mira__db_opt(v[0]), mira__db_opt(v[1]), mira__db_opt(v[2]),
                            mira__db_opt(v[3]), mira__db_opt(v[4]), mira__db_int(message_id),
                            mira__db_text(now), mira__db_int(r.pk)};
        ok = db->ops->query(db,
                            "UPDATE emr_patients SET name = ?, birth_date = ?, sex = ?,"
                            " address = ?, phone = ?, message_id = ?, updated_at = ?"
                            " WHERE pk = ?",
                            u, 8, NULL, NULL, NULL, err);
    } else {
        ok = insert_patient(db, p, message_id, now, &r.pk, err);
    }
    for (size_t i = 1; i < 7; i++)
        mira_free(r.vals[i]);
    *pk = r.pk;
    return ok;
}

/* The identifiers of PID-3 replace the patient's (those kept from merges stay). */
static bool set_identifiers(mira__db *db, const mira_hl7_message *m, int64_t pk,
                            mira_error **err)
{
    mira__dbval p = mira__db_int(pk);
    if (!db->ops->query(db, "DELETE FROM emr_identifiers WHERE patient_pk = ? AND type <> 'MERGED'",
                        &p, 1, NULL, NULL, NULL, err))
        return false;
    size_t reps = mira_hl7_count(m, "PID-3");
    bool ok = true;
    for (size_t r = 1; ok && r <= reps; r++) {
        char *id = get(m, "PID-3(%zu).1", r), *issuer = get(m, "PID-3(%zu).4", r),
             *type = get(m, "PID-3(%zu).5", r);
        if (id && *id) {
            mira__dbval v[4] = {mira__db_int(pk), mira__db_text(id),
                                mira__db_text(issuer ? issuer : ""),
                                mira__db_text(type ? type : "")};
            ok = db->ops->query(db,
                                "INSERT INTO emr_identifiers (patient_pk, id, issuer, type)"
                                " VALUES (?, ?, ?, ?)",
                                v, 4, NULL, NULL, NULL, err);
        }
        mira_free(id);
        mira_free(issuer);
        mira_free(type);
    }
    return ok;
}

/* A40: the patient of MRG-1 is merged into the one of PID-3: marked so, and its identifiers
 * (with the prior one) kept under the survivor, marked MERGED. */
static bool merge_patient(mira__db *db, const mira_hl7_message *m, int64_t survivor,
                          const char *now, mira_error **err)
{
    char *prior = get(m, "MRG-1.1"), *issuer = get(m, "MRG-1.4");
    bool ok = prior && issuer;
    if (ok && *prior) {
        mira__dbval k[2] = {mira__db_text(prior), mira__db_text(issuer)};
        int64_t old = 0;
        bool found = false;
        ok = mira__db_query_int(db,
                                "SELECT pk FROM emr_patients WHERE patient_id = ? AND issuer = ?",
                                k, 2, &old, &found, err);
        if (ok && found && old != survivor) {
            mira__dbval u[4] = {mira__db_int(survivor), mira__db_text(now), mira__db_int(old),
                                mira__db_int(survivor)};
            ok = db->ops->query(db,
                                "UPDATE emr_patients SET merged_into = ?, updated_at = ?"
                                " WHERE pk = ? AND pk <> ?",
                                u, 4, NULL, NULL, NULL, err) &&
                 db->ops->query(db,
                                "UPDATE emr_patients SET merged_into = ? WHERE merged_into = ?",
                                (mira__dbval[]){mira__db_int(survivor), mira__db_int(old)}, 2,
                                NULL, NULL, NULL, err);
        }
        mira__dbval v[3] = {mira__db_int(survivor), mira__db_text(prior), mira__db_text(issuer)};
        ok = ok && db->ops->query(db,
                                  "INSERT INTO emr_identifiers (patient_pk, id, issuer, type)"
                                  " VALUES (?, ?, ?, 'MERGED')",
                                  v, 3, NULL, NULL, NULL, err);
    }
    mira_free(prior);
    mira_free(issuer);
    return ok;
}

/* ------------------------------------------------------------------ reports */

/* The report text: each OBX in order, its repetitions one a line; text types (TX, FT, ST) as
 * they are, others as "label: value units". */
static char *report_text(const mira_hl7_message *m)
{
    mira__buf b;
    mira__buf_init(&b);
    size_t n = mira_hl7_count(m, "OBX");
    for (size_t i = 1; i <= n; i++) {
        char *type = get(m, "OBX(%zu)-2", i);
        bool text = type && (strcmp(type, "TX") == 0 || strcmp(type, "FT") == 0 ||
                             strcmp(type, "ST") == 0 || strcmp(type, "TXT") == 0);
        char path[48];
        snprintf(path, sizeof path, "OBX(%zu)-5", i);
        size_t reps = mira_hl7_count(m, path);
        char *label = text ? NULL : get(m, "OBX(%zu)-3.2", i);
        if (label && !*label) {
            mira_free(label);
            label = get(m, "OBX(%zu)-3.1", i);
        }
        char *units = text ? NULL : get(m, "OBX(%zu)-6.1", i);
        for (size_t r = 1; r <= reps; r++) {
            char *v = get(m, "OBX(%zu)-5(%zu)", i, r);
            if (b.len)
                mira__buf_putc(&b, '\n');
            if (label && *label)
                mira__buf_printf(&b, "%s: ", label);
            mira__buf_puts(&b, v ? v : "");
            if (units && *units)
                mira__buf_printf(&b, " %s", units);
            mira_free(v);
        }
        mira_free(type);
        mira_free(label);
        mira_free(units);
    }
    mira__buf_putc(&b, 0);
    return mira__buf_steal(&b, NULL);
}

static bool add_report(mira__db *db, const mira_hl7_message *m, const patient *p,
                       int64_t message_id, const char *now, mira_error **err)
{
    static const char *const acc_paths[] = {"OBR-18", "OBR-3.1", "ORC-3.1"};
    static const char *const status_paths[] = {"OBR-25", "OBX-11"};
    char *acc = first_of(m, acc_paths, 3);
    char *status = first_of(m, status_paths, 2);
    char *observed = get(m, "OBR-7");
    static const char *const proc_paths[] = {"OBR-4.2", "OBR-4.1"};
    char *proc = first_of(m, proc_paths, 2);
    char *text = report_text(m);
    bool ok = acc && status && observed && proc && text;
    if (ok) {
        /* the next version of the accession's report (1 without an accession number) */
        mira__dbval v[11] = {mira__db_opt(acc),        mira__db_text(p->id),
                             mira__db_text(p->issuer), mira__db_opt(status),
                             mira__db_opt(observed),   mira__db_opt(proc),
                             mira__db_text(text),      mira__db_int(message_id),
                             mira__db_text(now),       mira__db_opt(acc),
                             mira__db_opt(acc)};
        ok = db->ops->query(db,
                            "INSERT INTO reports (accession, patient_id, issuer, status,"
                            " observed_at, procedure_text, text, message_id, created_at, version)"
                            " SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT),"
                            " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT),"
                            " CAST(? AS BIGINT), CAST(? AS TEXT),"
                            " CASE WHEN CAST(? AS TEXT) IS NULL THEN 1"
                            " ELSE COALESCE(MAX(version), 0) + 1 END"
                            " FROM reports WHERE accession = ?"
                            " ON CONFLICT (message_id) DO NOTHING",
                            v, 11, NULL, NULL, NULL, err);
    } else if (err && !*err) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a report");
    }
    mira_free(acc);
    mira_free(status);
    mira_free(observed);
    mira_free(proc);
    mira_free(text);
    return ok;
}

/* ------------------------------------------------------------------ orders */

typedef struct found_pks {
    int64_t pk[64];
    size_t n;
} found_pks;

static bool take_pks(void *ctx, const mira__dbval *c, size_t n)
{
    found_pks *f = ctx;
    if (n >= 1 && c[0].type == MIRA__DB_INT && f->n < 64)
        f->pk[f->n++] = c[0].i;
    return f->n < 64;
}

static mira_dataset *order_item(const mira_hl7_message *m, const patient *p, bool omi,
                                const char *acc)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    if (!ds)
        return NULL;
    static const char *const rp_paths[] = {"IPC-2", "OBR-19"};
    static const char *const desc_paths[] = {"OBR-4.2", "OBR-4.1"};
    static const char *const mod_paths[] = {"IPC-5", "OBR-24"};
    static const char *const when_paths[] = {"TQ1-7", "OBR-27.4", "ORC-7.4", "OBR-36"};
    static const char *const uid_paths[] = {"IPC-3", "ZDS-1"};
    char *rp = first_of(m, rp_paths, 2), *desc = first_of(m, desc_paths, 2),
         *mod = first_of(m, mod_paths, 2), *when = first_of(m, when_paths, 4),
         *uid = first_of(m, uid_paths, 2), *aet = omi ? get(m, "IPC-9") : mira_strdup(""),
         *sps = omi ? get(m, "IPC-4") : mira_strdup(""), *referring = person_name(m, "OBR-16");
    char da[9], tm[7];
    split_dtm(when ? when : "", da, tm);
    bool utf8 = false;
    const char *all[] = {p->name, desc, p->id};
    for (size_t i = 0; i < 3; i++)
        for (const char *c = all[i]; c && *c; c++)
            utf8 |= (*c & 0x80) != 0;
    bool ok = rp && desc && mod && when && uid && aet && sps && referring;
    if (ok && utf8)
        ok = mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0005), MIRA_VR_CS, "ISO_IR 192",
                                     NULL) != NULL;
    struct {
        mira_tag tag;
        mira_vr vr;
        const char *v;
        bool step;
    } f[] = {
        {MIRA_TAG(0x0010, 0x0020), MIRA_VR_LO, p->id, false},
        {MIRA_TAG(0x0010, 0x0021), MIRA_VR_LO, p->issuer, false},
        {MIRA_TAG(0x0010, 0x0010), MIRA_VR_PN, p->name, false},
        {MIRA_TAG(0x0010, 0x0030), MIRA_VR_DA, p->birth, false},
        {MIRA_TAG(0x0010, 0x0040), MIRA_VR_CS, p->sex, false},
        {MIRA_TAG(0x0008, 0x0050), MIRA_VR_SH, acc, false},
        {MIRA_TAG(0x0020, 0x000D), MIRA_VR_UI, uid, false},
        {MIRA_TAG(0x0032, 0x1060), MIRA_VR_LO, desc, false},
        {MIRA_TAG(0x0040, 0x1001), MIRA_VR_SH, rp && *rp ? rp : acc, false},
        {MIRA_TAG(0x0008, 0x0090), MIRA_VR_PN, referring, false},
        {MIRA_TAG(0x0008, 0x0060), MIRA_VR_CS, mod, true},
        {MIRA_TAG(0x0040, 0x0001), MIRA_VR_AE, aet, true},
        {MIRA_TAG(0x0040, 0x0002), MIRA_VR_DA, da, true},
        {MIRA_TAG(0x0040, 0x0003), MIRA_VR_TM, tm, true},
        {MIRA_TAG(0x0040, 0x0009), MIRA_VR_SH, sps, true},
        {MIRA_TAG(0x0040, 0x0007), MIRA_VR_LO, desc, true},
    };
    mira_element *seq = ok ? mira_dataset_set_sequence(ds, MIRA_TAG(0x0040, 0x0100), NULL) : NULL;
    mira_dataset *step = seq ? mira_element_add_item(seq, NULL) : NULL;
    ok = step != NULL;
    for (size_t i = 0; ok && i < sizeof f / sizeof f[0]; i++)
        if (f[i].v && *f[i].v && strcmp(f[i].v, "\"\"") != 0)
            ok = mira_dataset_set_string(f[i].step ? step : ds, f[i].tag, f[i].vr, f[i].v,
                                         NULL) != NULL;
    mira_free(rp);
    mira_free(desc);
    mira_free(mod);
    mira_free(when);
    mira_free(uid);
    mira_free(aet);
    mira_free(sps);
    mira_free(referring);
    if (!ok) {
        mira_dataset_free(ds);
        return NULL;
    }
    return ds;
}

/* ORC-1: NW (new), XO (changed), SC (status changed) make or remake the entry of the order;
 * CA, DC, OC, CR (cancelled, discontinued) remove it. Keyed by the placer order number (ORC-2,
 * else OBR-2), else the accession number. */
static bool apply_order(mira_archive *a, const mira_hl7_message *m, const patient *p, bool omi,
                        char *why, size_t whyn, mira_error **err)
{
    static const char *const acc_paths_omi[] = {"IPC-1", "OBR-18", "OBR-3.1", "ORC-3.1"};
    static const char *const acc_paths_orm[] = {"OBR-18", "OBR-3.1", "ORC-3.1"};
    static const char *const placer_paths[] = {"ORC-2.1", "OBR-2.1"};
    static const char *const filler_paths[] = {"ORC-3.1", "OBR-3.1"};
    char *acc = omi ? first_of(m, acc_paths_omi, 4) : first_of(m, acc_paths_orm, 3);
    char *placer = first_of(m, placer_paths, 2), *filler = first_of(m, filler_paths, 2);
    char *control = get(m, "ORC-1");
    bool ok = acc && placer && filler && control;
    if (!ok) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an order");
        goto done;
    }
    if (!*acc && !*placer) {
        snprintf(why, whyn, "the order has neither an accession number nor a placer order number");
        goto done;
    }
    bool cancel = strcmp(control, "CA") == 0 || strcmp(control, "DC") == 0 ||
                  strcmp(control, "OC") == 0 || strcmp(control, "CR") == 0;
    bool make = !*control || strcmp(control, "NW") == 0 || strcmp(control, "XO") == 0 ||
                strcmp(control, "SC") == 0 || strcmp(control, "XX") == 0;
    if (!cancel && !make) {
        snprintf(why, whyn, "order control %.8s is not acted on", control);
        goto done;
    }
    /* the entries of this order now */
    found_pks f = {.n = 0};
    {
        mira__db *db = mira__archive_db_acquire(a, err);
        if (!db) {
            ok = false;
            goto done;
        }
        mira__dbval k = mira__db_text(*placer ? placer : acc);
        ok = db->ops->query(db,
                            *placer ? "SELECT pk FROM worklist WHERE source = 'hl7' AND"
                                      " placer_order = ?"
                                    : "SELECT pk FROM worklist WHERE source = 'hl7' AND"
                                      " accession = ?",
                            &k, 1, take_pks, &f, NULL, err);
        mira__archive_db_release(a, db);
        if (!ok)
            goto done;
    }
    bool same_new = strcmp(control, "NW") == 0 && f.n > 0; /* a new order seen already */
    if (cancel || (make && !same_new))
        for (size_t i = 0; ok && i < f.n; i++) {
            mira_error *e = NULL;
            ok = mira_worklist_delete(a, f.pk[i], &e) || mira_error_get_code(e) == MIRA_ERR_NOT_FOUND;
            if (!ok && err)
                *err = e;
            else
                mira_error_free(e);
        }
    if (ok && make && !same_new) {
        mira_dataset *item = order_item(m, p, omi, acc);
        mira_worklist_add_options o = {.source = "hl7", .placer_order = placer,
                                       .filler_order = filler};
        ok = item && mira_worklist_add(a, item, &o, NULL, err);
        if (!item && err && !*err)
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a worklist item");
        mira_dataset_free(item);
    }
done:
    mira_free(acc);
    mira_free(placer);
    mira_free(filler);
    mira_free(control);
    return ok;
}

/* ------------------------------------------------------------------ one message */

/* A message read and classified, ready to be acted on. */
typedef struct item {
    int64_t id;
    mira_hl7_message *m;
    char *type, *event;
    bool adt, orm, omi, oru, demographics, act;
    patient p;
    char why[512]; /* why it is not acted on (or only partly) */
} item;

static void item_prepare(item *it, int64_t id, const char *text, size_t len)
{
    memset(it, 0, sizeof *it);
    it->id = id;
    mira_error *perr = NULL;
    it->m = mira_hl7_parse(text, len, &perr);
    if (!it->m) {
        snprintf(it->why, sizeof it->why, "does not parse: %s", mira_error_get_message(perr));
        mira_error_free(perr);
        return;
    }
    it->type = get(it->m, "MSH-9.1");
    it->event = get(it->m, "MSH-9.2");
    const char *t = it->type ? it->type : "", *ev = it->event ? it->event : "";
    it->adt = strcmp(t, "ADT") == 0;
    it->orm = strcmp(t, "ORM") == 0;
    it->omi = strcmp(t, "OMI") == 0;
    it->oru = strcmp(t, "ORU") == 0;
    bool have = has_segment(it->m, "PID") && patient_of(it->m, &it->p);
    static const char *const updates[] = {"A01", "A04", "A05", "A08", "A28", "A31", "A40"};
    for (size_t i = 0; it->adt && i < sizeof updates / sizeof updates[0]; i++)
        it->demographics |= strcmp(ev, updates[i]) == 0;
    if (!it->adt && !it->orm && !it->omi && !it->oru)
        snprintf(it->why, sizeof it->why, "%.20s^%.20s messages are kept, not acted on", t, ev);
    else if (!have)
        snprintf(it->why, sizeof it->why, "no patient identifier (PID-3)");
    else if (it->adt && !it->demographics)
        snprintf(it->why, sizeof it->why, "ADT^%.20s is kept, not acted on", ev);
    else
        it->act = true;
}

static void item_free(item *it)
{
    patient_free(&it->p);
    mira_free(it->type);
    mira_free(it->event);
    mira_hl7_free(it->m);
}

/* What the message changes in the index, in the caller's transaction, with the mark that it
 * was acted on (an order's worklist entry is made before, by apply_order). */
static bool item_apply(mira__db *db, item *it, mira_error **err)
{
    char now[32];
    mira__now(now);
    bool ok = true;
    if (it->act) {
        int64_t pk = 0;
        ok = upsert_patient(db, &it->p, it->id, !it->demographics, now, &pk, err) &&
             (!it->demographics || set_identifiers(db, it->m, pk, err)) &&
             (!it->adt || !it->event || strcmp(it->event, "A40") != 0 ||
              merge_patient(db, it->m, pk, now, err)) &&
             (!it->oru || add_report(db, it->m, &it->p, it->id, now, err));
    }
    mira__dbval u[3] = {mira__db_text(now), mira__db_opt(it->why), mira__db_int(it->id)};
    return ok && db->ops->query(db,
                                "UPDATE hl7_messages SET processed_at = ?, process_error = ?"
                                " WHERE id = ? AND processed_at IS NULL",
                                u, 3, NULL, NULL, NULL, err);
}

/* ------------------------------------------------------------------ the DICOM index */

/* HL7 table 0001 (F, M, O, U, A, N) as DICOM's Patient's Sex (F, M, O; empty: unknown). */
static const char *dicom_sex(const char *sex)
{
    if (strcmp(sex, "F") == 0 || strcmp(sex, "M") == 0 || strcmp(sex, "O") == 0)
        return sex;
    if (strcmp(sex, "A") == 0 || strcmp(sex, "N") == 0)
        return "O";
    return "";
}

/*
 * The demographics the message sends, as DICOM patient attributes (in `into`, whose text is
 * UTF-8): an empty field is left out (it keeps the value), "" (two double quotes) empties it.
 */
static bool demographics_of(const patient *p, mira_dataset *into, mira_error **err)
{
    const struct {
        mira_tag tag;
        mira_vr vr;
        const char *v;
    } d[3] = {{0x00100010, MIRA_VR_PN, p->name},
              {0x00100030, MIRA_VR_DA, p->birth},
              {0x00100040, MIRA_VR_CS, p->sex}};
    bool ok = mira_dataset_set_string(into, 0x00080005, MIRA_VR_CS, "ISO_IR 192", err) != NULL;
    for (size_t i = 0; ok && i < 3; i++) {
        if (!d[i].v || !*d[i].v)
            continue;
        const char *v = strcmp(d[i].v, "\"\"") == 0 ? "" : d[i].v;
        if (d[i].tag == 0x00100040 && *v)
            v = dicom_sex(v);
        ok = mira_dataset_set_string(into, d[i].tag, d[i].vr, v, err) != NULL;
    }
    return ok;
}

typedef struct dicom_patient {
    bool found;
    char *issuer, *name, *birth, *sex;
} dicom_patient;

static bool take_dicom_patient(void *ctx, const mira__dbval *c, size_t n)
{
    dicom_patient *d = ctx;
    if (n < 4 || d->found)
        return false;
    d->found = true;
    char **v[4] = {&d->issuer, &d->name, &d->birth, &d->sex};
    for (size_t i = 0; i < 4; i++)
        *v[i] = mira_strdup(c[i].type == MIRA__DB_TEXT ? c[i].s : "");
    return false;
}

static void dicom_patient_free(dicom_patient *d)
{
    mira_free(d->issuer);
    mira_free(d->name);
    mira_free(d->birth);
    mira_free(d->sex);
}

/* The DICOM index's patient of an HL7 identifier: of its assigning authority, else (images
 * often carry no issuer) of none. */
static bool dicom_patient_of(mira__db *db, const char *id, const char *issuer, dicom_patient *d,
                             mira_error **err)
{
    memset(d, 0, sizeof *d);
    mira__dbval k[2] = {mira__db_text(id), mira__db_text(issuer)};
    static const char *const sql = "SELECT issuer, patient_name, birth_date, sex FROM patients"
                                   " WHERE patient_id = ? AND issuer = ?";
    if (!db->ops->query(db, sql, k, 2, take_dicom_patient, d, NULL, err))
        return false;
    if (!d->found && *issuer) {
        k[1] = mira__db_text("");
        return db->ops->query(db, sql, k, 2, take_dicom_patient, d, NULL, err);
    }
    return true;
}

/* Whether the message changes the DICOM index: an A40 whose prior patient has images, or
 * demographics that differ from those of the patient's images. */
static bool touches_dicom(mira__db *db, const item *it, mira_error **err, bool *yes)
{
    *yes = false;
    if (!it->act || !it->adt || !it->demographics)
        return true;
    bool merge = it->event && strcmp(it->event, "A40") == 0;
    char *prior = merge ? get(it->m, "MRG-1.1") : NULL, *pissuer = merge ? get(it->m, "MRG-1.4")
                                                                          : NULL;
    dicom_patient d;
    bool ok = merge ? prior && pissuer && dicom_patient_of(db, prior, pissuer, &d, err)
                    : dicom_patient_of(db, it->p.id, it->p.issuer, &d, err);
    if (ok && d.found) {
        if (merge) {
            *yes = true;
        } else {
            mira_dataset *want = mira_dataset_new(NULL);
            ok = want && demographics_of(&it->p, want, err);
            const char *have[3] = {d.name, d.birth, d.sex};
            static const mira_tag tags[3] = {0x00100010, 0x00100030, 0x00100040};
            for (size_t i = 0; ok && i < 3; i++) {
                mira_element *e = mira_dataset_get(want, tags[i]);
                char *v = e ? mira_element_get_text(e, NULL) : NULL;
                if (e && strcmp(v ? v : "", have[i]) != 0)
                    *yes = true;
                mira_free(v);
            }
            mira_dataset_free(want);
        }
    }
    if (ok)
        dicom_patient_free(&d);
    mira_free(prior);
    mira_free(pissuer);
    return ok;
}

/* An ADT message on the DICOM index (outside any transaction: the instances are rewritten
 * first): an A40 merges the prior patient's images into the survivor's; other updates change
 * the demographics of the patient's images. What fails is said in it->why. */
static void apply_dicom(mira_archive *a, mira__db *db, item *it)
{
    bool merge = it->event && strcmp(it->event, "A40") == 0;
    char *prior = merge ? get(it->m, "MRG-1.1") : NULL, *pissuer = merge ? get(it->m, "MRG-1.4")
                                                                          : NULL;
    char *control = get(it->m, "MSH-10");
    char reason[128];
    snprintf(reason, sizeof reason, "HL7 ADT^%.8s %.64s", it->event ? it->event : "",
             control ? control : "");
    mira_error *e = NULL;
    mira_dataset *into = mira_dataset_new(NULL);
    dicom_patient src = {0}, dst = {0};
    bool ok = into && demographics_of(&it->p, into, &e);
    if (ok && merge) {
        /* the issuers the index knows them by */
        ok = prior && pissuer && dicom_patient_of(db, prior, pissuer, &src, &e) &&
             dicom_patient_of(db, it->p.id, it->p.issuer, &dst, &e);
        const char *to_issuer = dst.found ? dst.issuer : it->p.issuer;
        ok = ok && mira_dataset_set_string(into, 0x00100020, MIRA_VR_LO, it->p.id, &e);
        if (ok && *to_issuer)
            ok = mira_dataset_set_string(into, 0x00100021, MIRA_VR_LO, to_issuer, &e) != NULL;
        ok = ok && (!src.found || mira_archive_merge_patient(a, prior, src.issuer, into, reason,
                                                             NULL, &e));
    } else if (ok) {
        ok = mira_archive_modify(a, MIRA_LEVEL_PATIENT, it->p.id, into, NULL, 0, reason, NULL, &e);
    }
    if (!ok) {
        size_t n = strlen(it->why);
        snprintf(it->why + n, sizeof it->why - n, "%sthe images were not changed: %s",
                 n ? "; " : "", e ? mira_error_get_message(e) : "out of memory");
    }
    mira_error_free(e);
    if (src.found)
        dicom_patient_free(&src);
    if (dst.found)
        dicom_patient_free(&dst);
    mira_dataset_free(into);
    mira_free(prior);
    mira_free(pissuer);
    mira_free(control);
}

/* ------------------------------------------------------------------ the queue */

typedef struct todo {
    int64_t id;
    char *text;
    size_t len;
} todo;

typedef struct todo_list {
    todo *v;
    size_t n, cap;
    bool failed;
} todo_list;

static bool take_todo(void *ctx, const mira__dbval *c, size_t n)
{
    todo_list *l = ctx;
    if (n < 3 || c[0].type != MIRA__DB_INT || c[2].type != MIRA__DB_TEXT)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        todo *v = mira_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->failed = true;
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    todo *t = &l->v[l->n];
    t->id = c[0].i;
    mira__buf b;
    mira__buf_init(&b);
    if (c[1].type == MIRA__DB_TEXT && strcmp(c[1].s, "base64") == 0)
        mira__base64_decode(&b, c[2].s, strlen(c[2].s));
    else
        mira__buf_append(&b, c[2].s, strlen(c[2].s));
    mira__buf_putc(&b, 0);
    t->len = b.len ? b.len - 1 : 0;
    t->text = mira__buf_steal(&b, NULL);
    if (!t->text) {
        l->failed = true;
        return false;
    }
    l->n++;
    return true;
}

bool mira_archive_hl7_apply(mira_archive *a, size_t max, size_t *done, mira_error **err)
{
    if (done)
        *done = 0;
    todo_list l = {0};
    mira__dbval lim = mira__db_int(max ? (int64_t)max : 1000);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    bool ok = db->ops->query(db,
                             "SELECT id, encoding, message FROM hl7_messages"
                             " WHERE processed_at IS NULL AND ack_code = 'AA' ORDER BY id LIMIT ?",
                             &lim, 1, take_todo, &l, NULL, err);
    if (ok && l.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading the HL7 messages to act on");
        ok = false;
    }
    item *items = ok && l.n ? mira_calloc(l.n, sizeof *items) : NULL;
    if (ok && l.n && !items) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading the HL7 messages to act on");
        ok = false;
    }
    for (size_t i = 0; ok && i < l.n; i++) {
        item_prepare(&items[i], l.v[i].id, l.v[i].text, l.v[i].len);
        mira_free(l.v[i].text);
        l.v[i].text = NULL;
    }
    /* in order: an order alone (its worklist entry has transactions of its own, on other
     * connections), so too an ADT message that changes images (they are rewritten first), the
     * messages between those together in one transaction, one sync */
    for (size_t i = 0; ok && i < l.n;) {
        bool order = items[i].act && (items[i].orm || items[i].omi), dicom = false;
        size_t j = i + 1;
        ok = touches_dicom(db, &items[i], err, &dicom);
        if (ok && order) {
            ok = apply_order(a, items[i].m, &items[i].p, items[i].omi, items[i].why,
                             sizeof items[i].why, err);
        } else if (ok && dicom) {
            apply_dicom(a, db, &items[i]);
        } else if (ok) {
            for (bool next = false; ok && j < l.n && !next; j += !next) {
                ok = touches_dicom(db, &items[j], err, &next);
                next = next || (items[j].act && (items[j].orm || items[j].omi));
            }
        }
        if (ok) {
            ok = db->ops->begin_write(db, err);
            for (size_t k = i; ok && k < j; k++)
                ok = item_apply(db, &items[k], err);
            if (ok)
                ok = mira__db_commit(db, err);
            else
                mira__db_rollback(db);
        }
        if (ok && done)
            *done += j - i;
        i = j;
    }
    mira__archive_db_release(a, db);
    for (size_t i = 0; items && i < l.n; i++)
        item_free(&items[i]);
    mira_free(items);
    for (size_t i = 0; i < l.n; i++)
        mira_free(l.v[i].text);
    mira_free(l.v);
    return ok;
}
