/* Scheduled procedure steps (Modality Worklist, PS3.4 K), performed procedure steps (MPPS,
 * PS3.4 F) and the storage commitment lookups (PS3.4 J), in the index. */
#include "archive/archive_int.h"
#include "mira/worklist.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TAG_CHARSET MIRA_TAG(0x0008, 0x0005)
#define TAG_ACCESSION MIRA_TAG(0x0008, 0x0050)
#define TAG_MODALITY MIRA_TAG(0x0008, 0x0060)
#define TAG_PATIENT_NAME MIRA_TAG(0x0010, 0x0010)
#define TAG_PATIENT_ID MIRA_TAG(0x0010, 0x0020)
#define TAG_STUDY_UID MIRA_TAG(0x0020, 0x000D)
#define TAG_SERIES_UID MIRA_TAG(0x0020, 0x000E)
#define TAG_PROCEDURE_DESC MIRA_TAG(0x0032, 0x1060)
#define TAG_STATION_AET MIRA_TAG(0x0040, 0x0001)
#define TAG_SPS_DATE MIRA_TAG(0x0040, 0x0002)
#define TAG_SPS_TIME MIRA_TAG(0x0040, 0x0003)
#define TAG_SPS_PHYSICIAN MIRA_TAG(0x0040, 0x0006)
#define TAG_SPS_ID MIRA_TAG(0x0040, 0x0009)
#define TAG_SPS_STATUS MIRA_TAG(0x0040, 0x0020)
#define TAG_SPS_SEQ MIRA_TAG(0x0040, 0x0100)
#define TAG_REQUESTED_PROC_ID MIRA_TAG(0x0040, 0x1001)
#define TAG_PPS_STATION_AET MIRA_TAG(0x0040, 0x0241)
#define TAG_PPS_START_DATE MIRA_TAG(0x0040, 0x0244)
#define TAG_PPS_START_TIME MIRA_TAG(0x0040, 0x0245)
#define TAG_PPS_END_DATE MIRA_TAG(0x0040, 0x0250)
#define TAG_PPS_END_TIME MIRA_TAG(0x0040, 0x0251)
#define TAG_PPS_STATUS MIRA_TAG(0x0040, 0x0252)
#define TAG_PPS_ID MIRA_TAG(0x0040, 0x0253)
#define TAG_SCHEDULED_STEP_SEQ MIRA_TAG(0x0040, 0x0270)
#define TAG_PERFORMED_SERIES_SEQ MIRA_TAG(0x0040, 0x0340)

/* ------------------------------------------------------------------ data set helpers */

/* An element's value as trimmed text (owned; "" when empty; numbers in decimal). */
static char *text_of(const mira_element *e)
{
    if (!e || mira_element_length(e) == 0 || mira_element_vr(e) == MIRA_VR_SQ)
        return mira_strdup("");
    char *s = NULL;
    if (mira_vr_is_string(mira_element_vr(e))) {
        s = mira_element_get_text(e, NULL);
    } else {
        char buf[32] = "";
        int64_t v;
        if (mira_element_get_int(e, 0, &v, NULL))
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        s = mira_strdup(buf);
    }
    if (!s)
        return NULL;
    char *p = s;
    while (*p == ' ')
        p++;
    memmove(s, p, strlen(p) + 1);
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == 0))
        s[--l] = 0;
    return s;
}

/* The text of tag in ds into out (n bytes; "" if absent). */
static const char *get_str(const mira_dataset *ds, mira_tag tag, char *out, size_t n)
{
    out[0] = 0;
    char *s = ds ? text_of(mira_dataset_get(ds, tag)) : NULL;
    if (s)
        snprintf(out, n, "%s", s);
    mira_free(s);
    return out;
}

/* The first item of a sequence, or NULL. */
static mira_dataset *first_item(const mira_dataset *ds, mira_tag tag)
{
    const mira_element *e = ds ? mira_dataset_get(ds, tag) : NULL;
    if (!e || mira_element_vr(e) != MIRA_VR_SQ || mira_element_item_count(e) == 0)
        return NULL;
    return mira_element_item(e, 0);
}

static bool copy_into(mira_dataset *dst, const mira_element *e);

/* Every element of src into dst (deep). */
static bool copy_all(mira_dataset *dst, const mira_dataset *src)
{
    for (size_t i = 0; i < mira_dataset_count(src); i++)
        if (!copy_into(dst, mira_dataset_at(src, i)))
            return false;
    return true;
}

/* A copy of element e (sequences with their items) into dst, replacing one with its tag. */
static bool copy_into(mira_dataset *dst, const mira_element *e)
{
    if (mira_element_vr(e) == MIRA_VR_SQ) {
        mira_element *seq = mira_dataset_set_sequence(dst, mira_element_tag(e), NULL);
        if (!seq)
            return false;
        for (size_t k = 0; k < mira_element_item_count(e); k++) {
            mira_dataset *item = mira_element_add_item(seq, NULL);
            if (!item || !copy_all(item, mira_element_item(e, k)))
                return false;
        }
        return true;
    }
    size_t n = 0;
    const uint8_t *v = mira_element_bytes(e, &n);
    return mira_dataset_set_bytes(dst, mira_element_tag(e), mira_element_vr(e),
                                  v ? v : (const uint8_t *)"", v ? n : 0, NULL) != NULL;
}

/* A data set as UTF-8 DICOM JSON (owned). */
static char *to_json(const mira_dataset *ds, mira_error **err)
{
    mira_json_options jo;
    memset(&jo, 0, sizeof jo);
    return mira_dataset_to_json(ds, &jo, err);
}

/* A copy of ds whose text is UTF-8 (through DICOM JSON, which decodes any character set). */
static mira_dataset *utf8_copy(const mira_dataset *ds, mira_error **err)
{
    char *j = to_json(ds, err);
    if (!j)
        return NULL;
    mira_dataset *c = mira_dataset_from_json(j, strlen(j), err);
    mira_free(j);
    return c;
}

static bool set_text(mira_dataset *ds, mira_tag tag, const char *v)
{
    mira_vr vr = mira_dict_vr(tag);
    return mira_dataset_set_string(ds, tag, vr == MIRA_VR_UN ? MIRA_VR_LO : vr, v, NULL) !=
           NULL;
}

static bool is_final(const char *status)
{
    return strcmp(status, "COMPLETED") == 0 || strcmp(status, "DISCONTINUED") == 0;
}

/* ------------------------------------------------------------------ matching (PS3.4 C.2.2.2) */

static bool has_wildcards(const char *v)
{
    return strpbrk(v, "*?") != NULL;
}

/* VRs whose keys may hold wild cards (C.2.2.2.4). */
static bool wildcard_vr(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_AE:
    case MIRA_VR_CS:
    case MIRA_VR_LO:
    case MIRA_VR_LT:
    case MIRA_VR_PN:
    case MIRA_VR_SH:
    case MIRA_VR_ST:
    case MIRA_VR_UC:
    case MIRA_VR_UR:
    case MIRA_VR_UT:
        return true;
    default:
        return false;
    }
}

static char fold(char c, bool ci)
{
    return ci && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* * matches any run of characters, ? any one (a UTF-8 sequence counts as one). */
static bool wild_match(const char *p, const char *s, bool ci)
{
    while (*p) {
        if (*p == '*') {
            while (*p == '*')
                p++;
            if (!*p)
                return true;
            for (; *s; s++)
                if (wild_match(p, s, ci))
                    return true;
            return false;
        }
        if (!*s)
            return false;
        if (*p == '?') {
            s++;
            while (((unsigned char)*s & 0xC0) == 0x80)
                s++;
            p++;
            continue;
        }
        if (fold(*p, ci) != fold(*s, ci))
            return false;
        p++;
        s++;
    }
    return *s == 0;
}

static bool str_eq(const char *a, const char *b, bool ci)
{
    for (; *a && *b; a++, b++)
        if (fold(*a, ci) != fold(*b, ci))
            return false;
    return *a == *b;
}

/* A date or time bound normalised for comparison ("" for an open end). */
static bool normalise(const char *v, mira_vr vr, char fillc, char out[32])
{
    if (!*v) {
        out[0] = 0;
        return true;
    }
    if (vr == MIRA_VR_DA)
        return mira__date_normalise(v, out);
    if (vr == MIRA_VR_TM)
        return mira__time_normalise(v, fillc, out);
    /* DT: compared as text, an upper bound filled so that a prefix covers what follows */
    snprintf(out, 32, "%s", v);
    if (fillc == '9') {
        size_t l = strlen(out);
        while (l < 26)
            out[l++] = '9';
        out[l] = 0;
    }
    return true;
}

/* One value of the entity against one value of the key (single value, wild card, range). */
static bool match_one(const char *key, const char *value, mira_vr vr, bool ci)
{
    if (vr == MIRA_VR_DA || vr == MIRA_VR_TM || vr == MIRA_VR_DT) {
        char lo[32], hi[32], v[32];
        if (!normalise(value, vr, '0', v) || !*v)
            return false;
        const char *dash = strchr(key, '-');
        if (vr == MIRA_VR_DT && dash && dash != key) {
            /* a DT may carry a "-hhmm" offset: a range needs its dash outside one */
            const char *second = strchr(dash + 1, '-');
            if (!second && strlen(key) < 8)
                dash = NULL;
        }
        if (!dash) {
            char k[32];
            if (!normalise(key, vr, '0', k))
                return false;
            if (vr == MIRA_VR_TM) { /* a time with fewer components covers all of them */
                char up[32];
                normalise(key, vr, '9', up);
                return strcmp(v, k) >= 0 && strcmp(v, up) <= 0;
            }
            return strcmp(v, k) == 0;
        }
        char a[32], b[32];
        snprintf(a, sizeof a, "%.*s", (int)(dash - key), key);
        snprintf(b, sizeof b, "%s", dash + 1);
        if (!normalise(a, vr, '0', lo) || !normalise(b, vr, '9', hi))
            return false;
        return (!*lo || strcmp(v, lo) >= 0) && (!*hi || strcmp(v, hi) <= 0);
    }
    if (vr == MIRA_VR_UI)
        return strcmp(key, value) == 0;
    bool names_ci = ci && vr == MIRA_VR_PN;
    if (wildcard_vr(vr) && has_wildcards(key))
        return wild_match(key, value, names_ci);
    return str_eq(key, value, names_ci);
}

/* Split on '\' into a NULL-terminated vector pointing into s (modified). */
static size_t split(char *s, char **out, size_t max)
{
    size_t n = 0;
    out[n++] = s;
    for (char *p = s; *p && n < max; p++)
        if (*p == '\\') {
            *p = 0;
            out[n++] = p + 1;
        }
    return n;
}

static bool match_dataset(const mira_dataset *ident, const mira_dataset *entity, bool ci);

/* Does the entity's element satisfy the key (C.2.2.2)? */
static bool match_key(const mira_element *key, const mira_dataset *entity, bool ci)
{
    mira_tag tag = mira_element_tag(key);
    const mira_element *v = mira_dataset_get(entity, tag);
    if (mira_element_vr(key) == MIRA_VR_SQ) {
        /* sequence matching: no item, or an item of universal keys only, is a return key */
        const mira_dataset *q = mira_element_item_count(key) ? mira_element_item(key, 0) : NULL;
        if (!q || match_dataset(q, NULL, ci))
            return true;
        if (!v || mira_element_vr(v) != MIRA_VR_SQ)
            return false;
        for (size_t i = 0; i < mira_element_item_count(v); i++)
            if (match_dataset(q, mira_element_item(v, i), ci))
                return true;
        return false;
    }
    char *k = text_of(key);
    if (!k)
        return false;
    bool ok;
    if (!*k || strcmp(k, "*") == 0) {
        ok = true; /* universal */
    } else if (!entity) {
        ok = false; /* a matching key (used to tell whether an item holds only return keys) */
    } else {
        char *val = text_of(v);
        if (strcmp(k, "\"\"") == 0) {
            ok = val && !*val; /* empty value matching (C.2.2.2.7) */
        } else if (!val || !*val) {
            ok = false;
        } else {
            /* any value of the entity against any value of the key (UIDs: a list) */
            mira_vr vr = mira_element_vr(key);
            if (vr == MIRA_VR_UN || vr == MIRA_VR_NONE)
                vr = mira_dict_vr(tag);
            char *kv[64], *vv[64];
            size_t nk = split(k, kv, 64), nv = split(val, vv, 64);
            ok = false;
            for (size_t i = 0; i < nk && !ok; i++)
                for (size_t j = 0; j < nv && !ok; j++)
                    ok = match_one(kv[i], vv[j], vr, ci);
        }
        mira_free(val);
    }
    mira_free(k);
    return ok;
}

/* Every key of ident matches entity. entity NULL: whether ident holds only universal keys. */
static bool match_dataset(const mira_dataset *ident, const mira_dataset *entity, bool ci)
{
    for (size_t i = 0; i < mira_dataset_count(ident); i++) {
        const mira_element *key = mira_dataset_at(ident, i);
        mira_tag tag = mira_element_tag(key);
        if (tag == TAG_CHARSET || MIRA_TAG_GROUP(tag) <= 0x0002)
            continue;
        if (!entity && mira_element_vr(key) == MIRA_VR_SQ) {
            if (!match_key(key, NULL, ci))
                return false;
            continue;
        }
        if (!match_key(key, entity, ci))
            return false;
    }
    return true;
}

/* The response: the identifier's keys with the entity's values (C.2.2.3, K.6.1.2.3). */
static bool build_response(mira_dataset *out, const mira_dataset *ident,
                           const mira_dataset *entity, bool ci)
{
    for (size_t i = 0; i < mira_dataset_count(ident); i++) {
        const mira_element *key = mira_dataset_at(ident, i);
        mira_tag tag = mira_element_tag(key);
        if (tag == TAG_CHARSET || MIRA_TAG_GROUP(tag) <= 0x0002)
            continue;
        const mira_element *v = mira_dataset_get(entity, tag);
        if (mira_element_vr(key) == MIRA_VR_SQ) {
            mira_element *seq = mira_dataset_set_sequence(out, tag, NULL);
            if (!seq)
                return false;
            if (!v || mira_element_vr(v) != MIRA_VR_SQ)
                continue;
            const mira_dataset *q =
                mira_element_item_count(key) ? mira_element_item(key, 0) : NULL;
            for (size_t k = 0; k < mira_element_item_count(v); k++) {
                const mira_dataset *it = mira_element_item(v, k);
                if (q && !match_dataset(q, it, ci))
                    continue;
                mira_dataset *dst = mira_element_add_item(seq, NULL);
                if (!dst)
                    return false;
                bool whole = !q || mira_dataset_count(q) == 0;
                if (!(whole ? copy_all(dst, it) : build_response(dst, q, it, ci)))
                    return false;
            }
            continue;
        }
        if (v && mira_element_vr(v) != MIRA_VR_SQ) {
            if (!copy_into(out, v))
                return false;
        } else {
            mira_vr vr = mira_element_vr(key);
            if (vr == MIRA_VR_UN || vr == MIRA_VR_NONE)
                vr = mira_dict_vr(tag);
            if (!mira_dataset_set_bytes(out, tag, vr, "", 0, NULL))
                return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ adding and listing */

static const char *opt_or(const char *s)
{
    return s && *s ? s : NULL;
}

bool mira_worklist_add(mira_archive *a, const mira_dataset *item,
                       const mira_worklist_add_options *opt, int64_t *id, mira_error **err)
{
    const mira_element *seq = mira_dataset_get(item, TAG_SPS_SEQ);
    if (!seq || mira_element_vr(seq) != MIRA_VR_SQ || mira_element_item_count(seq) != 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Not a worklist item",
                       "a worklist item needs a Scheduled Procedure Step Sequence (0040,0100) of "
                       "one item");
        return false;
    }
    char pid[128], pname[256];
    get_str(item, TAG_PATIENT_ID, pid, sizeof pid);
    get_str(item, TAG_PATIENT_NAME, pname, sizeof pname);
    if (!*pid && !*pname) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Not a worklist item",
                       "a worklist item needs a Patient ID or a Patient's Name");
        return false;
    }
    mira_dataset *it = utf8_copy(item, err);
    if (!it)
        return false;
    mira_dataset *sps = first_item(it, TAG_SPS_SEQ);
    char study[65], status[64], spsid[64], buf[8][256];
    bool ok = sps != NULL;
    if (ok && !*get_str(it, TAG_STUDY_UID, study, sizeof study)) {
        mira_uid_generate(study);
        ok = set_text(it, TAG_STUDY_UID, study);
    }
    if (ok && !*get_str(sps, TAG_SPS_STATUS, status, sizeof status)) {
        snprintf(status, sizeof status, "SCHEDULED");
        ok = set_text(sps, TAG_SPS_STATUS, status);
    }
    get_str(sps, TAG_SPS_ID, spsid, sizeof spsid);
    char *json = ok ? to_json(it, err) : NULL;
    if (!ok && err && !*err)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a worklist item");
    if (!json) {
        mira_dataset_free(it);
        return false;
    }
    char now[32];
    mira__now(now);
    const char *source = opt && opt->source && *opt->source ? opt->source : "cli";
    mira__dbval p[20] = {
        mira__db_opt(get_str(it, TAG_ACCESSION, buf[0], sizeof buf[0])),
        mira__db_opt(get_str(it, TAG_REQUESTED_PROC_ID, buf[1], sizeof buf[1])),
        mira__db_opt(spsid),
        mira__db_opt(pid),
        mira__db_opt(get_str(it, TAG_PATIENT_NAME, pname, sizeof pname)),
        mira__db_opt(get_str(sps, TAG_MODALITY, buf[2], sizeof buf[2])),
        mira__db_opt(get_str(sps, TAG_STATION_AET, buf[3], sizeof buf[3])),
        mira__db_opt(get_str(sps, TAG_SPS_DATE, buf[4], sizeof buf[4])),
        mira__db_opt(get_str(sps, TAG_SPS_TIME, buf[5], sizeof buf[5])),
        mira__db_opt(get_str(sps, TAG_SPS_PHYSICIAN, buf[6], sizeof buf[6])),
        mira__db_opt(get_str(it, TAG_PROCEDURE_DESC, buf[7], sizeof buf[7])),
        mira__db_opt(study),
        mira__db_text(status),
        mira__db_text(source),
        mira__db_opt(opt_or(opt ? opt->placer_order : NULL)),
        mira__db_opt(opt_or(opt ? opt->filler_order : NULL)),
        mira__db_text(json),
        mira__db_text(now),
        mira__db_text(now),
    };
    char date[9];
    if (p[7].s && mira__date_normalise(p[7].s, date))
        p[7] = mira__db_text(date);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db) {
        mira_free(json);
        mira_dataset_free(it);
        return false;
    }
    int64_t pk = 0;
    bool found = false;
    ok = db->ops->begin_write(db, err) &&
         mira__db_query_int(db,
                            "INSERT INTO worklist (accession, requested_procedure_id, sps_id,"
                            " patient_id, patient_name, modality, station_aet, start_date,"
                            " start_time, performing_physician, procedure_description, study_uid,"
                            " status, source, placer_order, filler_order, item, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                            " ?, ?, ?) RETURNING pk",
                            p, 19, &pk, &found, err);
    if (ok && !*spsid) {
        /* no step ID given: the entry's id is one (unique in this archive) */
        snprintf(spsid, sizeof spsid, "%lld", (long long)pk);
        mira_free(json);
        json = set_text(sps, TAG_SPS_ID, spsid) ? to_json(it, err) : NULL;
        mira__dbval u[3] = {mira__db_text(spsid), mira__db_text(json), mira__db_int(pk)};
        ok = json && db->ops->query(db, "UPDATE worklist SET sps_id = ?, item = ? WHERE pk = ?",
                                    u, 3, NULL, NULL, NULL, err);
    }
    if (ok)
        ok = mira__db_commit(db, err);
    else
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    mira_free(json);
    mira_dataset_free(it);
    if (ok && id)
        *id = pk;
    return ok;
}

typedef struct list_ctx {
    mira_worklist_fn fn;
    void *ctx;
    bool failed;
    mira_error **err;
} list_ctx;

#define LIST_COLUMNS                                                                              \
    "w.pk, w.accession, w.requested_procedure_id, w.sps_id, w.patient_id, w.patient_name,"       \
    " w.modality, w.station_aet, w.start_date, w.start_time, w.performing_physician,"            \
    " w.procedure_description, w.study_uid, w.status, w.source, w.placer_order,"                 \
    " w.filler_order,"                                                                           \
    " (SELECT s.study_uid FROM studies s WHERE s.study_uid = w.study_uid"                        \
    "  OR (w.accession IS NOT NULL AND s.accession = w.accession) ORDER BY s.pk LIMIT 1),"      \
    " (SELECT m.sop_uid FROM mpps m WHERE m.worklist_pk = w.pk ORDER BY m.pk DESC LIMIT 1),"    \
    " w.item"

static bool take_entry(void *ctx, const mira__dbval *c, size_t n)
{
    list_ctx *lc = ctx;
    if (n < 20)
        return false;
    mira_dataset *item = mira_dataset_from_json(c[19].s ? c[19].s : "{}",
                                                c[19].s ? strlen(c[19].s) : 2, lc->err);
    if (!item) {
        lc->failed = true;
        return false;
    }
#define S(i) (c[i].s ? c[i].s : "")
    mira_worklist_entry e = {c[0].i, S(1),  S(2),  S(3),  S(4),  S(5),  S(6),
                             S(7),   S(8),  S(9),  S(10), S(11), S(12), S(13),
                             S(14),  S(15), S(16), S(17), S(18), item};
#undef S
    bool go = lc->fn(lc->ctx, &e);
    mira_dataset_free(item);
    return go;
}

bool mira_worklist_list(mira_archive *a, mira_worklist_fn fn, void *ctx, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    list_ctx lc = {fn, ctx, false, err};
    bool ok = mira__db_query(db,
                             "SELECT " LIST_COLUMNS " FROM worklist w ORDER BY"
                             " COALESCE(w.start_date, ''), COALESCE(w.start_time, ''), w.pk",
                             NULL, 0, take_entry, &lc, err);
    mira__archive_db_release(a, db);
    return ok && !lc.failed;
}

bool mira_worklist_delete(mira_archive *a, int64_t id, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval p = mira__db_int(id);
    int64_t changes = 0;
    bool ok = db->ops->begin_write(db, err) &&
              db->ops->query(db, "UPDATE mpps SET worklist_pk = NULL WHERE worklist_pk = ?", &p,
                             1, NULL, NULL, NULL, err) &&
              db->ops->query(db, "DELETE FROM worklist WHERE pk = ?", &p, 1, NULL, NULL, &changes,
                             err);
    if (ok && changes == 0) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such entry", "no worklist entry %lld",
                       (long long)id);
        ok = false;
    }
    if (ok)
        ok = mira__db_commit(db, err);
    else
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    return ok;
}

/* ------------------------------------------------------------------ C-FIND */

typedef struct find_ctx {
    const mira_dataset *ident;
    mira_find_fn fn;
    void *ctx;
    bool ci;
    bool failed, stopped;
    mira_error **err;
} find_ctx;

static bool non_ascii(const mira_dataset *ds)
{
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        if (mira_element_vr(e) == MIRA_VR_SQ) {
            for (size_t k = 0; k < mira_element_item_count(e); k++)
                if (non_ascii(mira_element_item(e, k)))
                    return true;
            continue;
        }
        if (!mira_vr_is_string(mira_element_vr(e)))
            continue;
        size_t n = 0;
        const uint8_t *v = mira_element_bytes(e, &n);
        for (size_t j = 0; v && j < n; j++)
            if (v[j] & 0x80)
                return true;
    }
    return false;
}

static bool take_find(void *ctx, const mira__dbval *c, size_t n)
{
    find_ctx *fc = ctx;
    if (n < 1 || !c[0].s)
        return true;
    mira_dataset *entity = mira_dataset_from_json(c[0].s, strlen(c[0].s), fc->err);
    if (!entity) {
        fc->failed = true;
        return false;
    }
    bool go = true;
    if (match_dataset(fc->ident, entity, fc->ci)) {
        mira_dataset *out = mira_dataset_new(fc->err);
        bool ok = out != NULL;
        /* text is UTF-8: say so when it is not ASCII */
        if (ok && non_ascii(entity))
            ok = set_text(out, TAG_CHARSET, "ISO_IR 192");
        ok = ok && build_response(out, fc->ident, entity, fc->ci);
        if (!ok) {
            if (fc->err && !*fc->err)
                mira_error_set(fc->err, MIRA_ERR_NOMEM, NULL, "a worklist match");
            fc->failed = true;
            go = false;
        } else if (!fc->fn(fc->ctx, out)) {
            fc->stopped = true;
            go = false;
        }
        mira_dataset_free(out);
    }
    mira_dataset_free(entity);
    return go;
}

bool mira_worklist_find(mira_archive *a, const mira_dataset *identifier, mira_find_fn fn,
                        void *ctx, mira_error **err)
{
    mira_dataset *ident = utf8_copy(identifier, err);
    if (!ident)
        return false;
    /* a prefilter on the scheduled date (the usual query: today's steps); the matching of
     * every key, that one included, is done on the items */
    char where[200] = "";
    mira__dbval p[2];
    size_t np = 0;
    const mira_dataset *sps = first_item(ident, TAG_SPS_SEQ);
    char d[64] = "";
    if (sps)
        get_str(sps, TAG_SPS_DATE, d, sizeof d);
    char lo[9] = "", hi[9] = "";
    if (*d && !strchr(d, '\\') && strcmp(d, "\"\"") != 0) {
        const char *dash = strchr(d, '-');
        char a1[32], b1[32];
        snprintf(a1, sizeof a1, "%.*s", dash ? (int)(dash - d) : (int)strlen(d), d);
        snprintf(b1, sizeof b1, "%s", dash ? dash + 1 : d);
        if (*a1 && mira__date_normalise(a1, lo)) {
            snprintf(where + strlen(where), sizeof where - strlen(where), " AND start_date >= ?");
            p[np++] = mira__db_text(lo);
        }
        if (*b1 && mira__date_normalise(b1, hi)) {
            snprintf(where + strlen(where), sizeof where - strlen(where), " AND start_date <= ?");
            p[np++] = mira__db_text(hi);
        }
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT item FROM worklist WHERE 1 = 1%s ORDER BY COALESCE(start_date, ''),"
             " COALESCE(start_time, ''), pk",
             where);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db) {
        mira_dataset_free(ident);
        return false;
    }
    find_ctx fc = {ident, fn, ctx, a->names_ci, false, false, err};
    bool ok = mira__db_query(db, sql, p, np, take_find, &fc, err);
    mira__archive_db_release(a, db);
    mira_dataset_free(ident);
    return ok && !fc.failed && !fc.stopped;
}

/* ------------------------------------------------------------------ MPPS */

static void say(char *why, size_t n, const char *fmt, const char *what)
{
    if (why && n)
        snprintf(why, n, fmt, what);
}

/* A required attribute (type 1): present and not empty. */
static bool require(const mira_dataset *ds, mira_tag tag, const char *name,
                    mira_mpps_result *result, char *why, size_t n)
{
    const mira_element *e = mira_dataset_get(ds, tag);
    if (!e) {
        *result = MIRA_MPPS_MISSING;
        say(why, n, "%s is missing", name);
        return false;
    }
    if (mira_element_vr(e) == MIRA_VR_SQ ? mira_element_item_count(e) == 0
                                         : mira_element_length(e) == 0) {
        *result = MIRA_MPPS_MISSING_VALUE;
        say(why, n, "%s is empty", name);
        return false;
    }
    return true;
}

/* The worklist entry an MPPS names through its Scheduled Step Attributes Sequence (0 if
 * none). */
static bool find_entry(mira__db *db, const mira_dataset *attrs, int64_t *pk, mira_error **err)
{
    *pk = 0;
    const mira_dataset *ss = first_item(attrs, TAG_SCHEDULED_STEP_SEQ);
    if (!ss)
        return true;
    char acc[128], spsid[128], study[65];
    get_str(ss, TAG_ACCESSION, acc, sizeof acc);
    get_str(ss, TAG_SPS_ID, spsid, sizeof spsid);
    get_str(ss, TAG_STUDY_UID, study, sizeof study);
    bool found = false;
    if (*acc && *spsid) {
        mira__dbval p[2] = {mira__db_text(acc), mira__db_text(spsid)};
        if (!mira__db_query_int(db,
                                "SELECT pk FROM worklist WHERE accession = ? AND sps_id = ?"
                                " ORDER BY pk LIMIT 1",
                                p, 2, pk, &found, err))
            return false;
    }
    if (!found && *acc) {
        mira__dbval p = mira__db_text(acc);
        if (!mira__db_query_int(db,
                                "SELECT pk FROM worklist WHERE accession = ? ORDER BY pk LIMIT 1",
                                &p, 1, pk, &found, err))
            return false;
    }
    if (!found && *study) {
        mira__dbval p = mira__db_text(study);
        if (!mira__db_query_int(db,
                                "SELECT pk FROM worklist WHERE study_uid = ? ORDER BY pk LIMIT 1",
                                &p, 1, pk, &found, err))
            return false;
    }
    if (!found)
        *pk = 0;
    return true;
}

typedef struct text_box {
    char *s;
    bool failed;
} text_box;

static bool take_text(void *ctx, const mira__dbval *c, size_t n)
{
    text_box *b = ctx;
    if (n >= 1 && c[0].s && !b->s) {
        b->s = mira_strdup(c[0].s);
        b->failed = b->s == NULL;
    }
    return false;
}

static bool update_entry_status(mira__db *db, int64_t pk, const char *status, mira_error **err)
{
    if (!pk)
        return true;
    text_box b = {NULL, false};
    mira__dbval p = mira__db_int(pk);
    if (!mira__db_query(db, "SELECT item FROM worklist WHERE pk = ?", &p, 1, take_text, &b, err))
        return false;
    if (!b.s)
        return true;
    mira_dataset *item = mira_dataset_from_json(b.s, strlen(b.s), err);
    mira_free(b.s);
    mira_dataset *sps = item ? first_item(item, TAG_SPS_SEQ) : NULL;
    char *json = sps && set_text(sps, TAG_SPS_STATUS, status) ? to_json(item, err) : NULL;
    mira_dataset_free(item);
    if (!json)
        return false;
    char now[32];
    mira__now(now);
    mira__dbval u[4] = {mira__db_text(status), mira__db_text(json), mira__db_text(now),
                        mira__db_int(pk)};
    bool ok = db->ops->query(db,
                             "UPDATE worklist SET status = ?, item = ?, updated_at = ? WHERE pk = ?",
                             u, 4, NULL, NULL, NULL, err);
    mira_free(json);
    return ok;
}

bool mira_mpps_create(mira_archive *a, const char *uid, const mira_dataset *attrs,
                      mira_mpps_result *result, char *why, size_t n, mira_error **err)
{
    *result = MIRA_MPPS_OK;
    say(why, n, "%s", "");
    static const struct {
        mira_tag tag;
        const char *name;
    } required[] = {
        {TAG_PPS_STATUS, "Performed Procedure Step Status (0040,0252)"},
        {TAG_PPS_ID, "Performed Procedure Step ID (0040,0253)"},
        {TAG_PPS_STATION_AET, "Performed Station AE Title (0040,0241)"},
        {TAG_PPS_START_DATE, "Performed Procedure Step Start Date (0040,0244)"},
        {TAG_PPS_START_TIME, "Performed Procedure Step Start Time (0040,0245)"},
        {TAG_MODALITY, "Modality (0008,0060)"},
        {TAG_SCHEDULED_STEP_SEQ, "Scheduled Step Attributes Sequence (0040,0270)"},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!require(attrs, required[i].tag, required[i].name, result, why, n))
            return true;
    char status[64];
    if (strcmp(get_str(attrs, TAG_PPS_STATUS, status, sizeof status), "IN PROGRESS") != 0) {
        *result = MIRA_MPPS_INVALID_VALUE;
        say(why, n, "an MPPS is created IN PROGRESS, not \"%s\"", status);
        return true;
    }
    mira_dataset *c = utf8_copy(attrs, err);
    char *json = c ? to_json(c, err) : NULL;
    if (!json) {
        mira_dataset_free(c);
        return false;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db) {
        mira_free(json);
        mira_dataset_free(c);
        return false;
    }
    mira__dbval u = mira__db_text(uid);
    int64_t existing = 0, entry = 0;
    bool found = false;
    bool ok = db->ops->begin_write(db, err) &&
              mira__db_query_int(db, "SELECT pk FROM mpps WHERE sop_uid = ?", &u, 1, &existing,
                                 &found, err);
    if (ok && found) {
        *result = MIRA_MPPS_DUPLICATE;
        say(why, n, "MPPS %s exists already", uid);
        mira__db_rollback(db);
    } else if (ok) {
        const mira_dataset *ss = first_item(c, TAG_SCHEDULED_STEP_SEQ);
        char acc[128], study[65], pid[128], aet[64], mod[32], now[32];
        mira__now(now);
        ok = find_entry(db, c, &entry, err);
        mira__dbval p[11] = {
            mira__db_text(uid),
            mira__db_text("IN PROGRESS"),
            entry ? mira__db_int(entry) : mira__db_text(NULL),
            mira__db_opt(get_str(ss, TAG_ACCESSION, acc, sizeof acc)),
            mira__db_opt(get_str(ss, TAG_STUDY_UID, study, sizeof study)),
            mira__db_opt(get_str(c, TAG_PATIENT_ID, pid, sizeof pid)),
            mira__db_opt(get_str(c, TAG_PPS_STATION_AET, aet, sizeof aet)),
            mira__db_opt(get_str(c, TAG_MODALITY, mod, sizeof mod)),
            mira__db_text(json),
            mira__db_text(now),
            mira__db_text(now),
        };
        ok = ok &&
             db->ops->query(db,
                            "INSERT INTO mpps (sop_uid, status, worklist_pk, accession, study_uid,"
                            " patient_id, station_aet, modality, attributes, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            p, 11, NULL, NULL, NULL, err) &&
             update_entry_status(db, entry, "STARTED", err);
        if (ok)
            ok = mira__db_commit(db, err);
        else
            mira__db_rollback(db);
    } else {
        mira__db_rollback(db);
    }
    mira__archive_db_release(a, db);
    mira_free(json);
    mira_dataset_free(c);
    return ok;
}

typedef struct mpps_row {
    char *status, *attributes;
    int64_t worklist_pk;
    bool found, failed;
} mpps_row;

static bool take_mpps(void *ctx, const mira__dbval *c, size_t n)
{
    mpps_row *r = ctx;
    if (n < 3)
        return false;
    r->found = true;
    r->status = mira_strdup(c[0].s ? c[0].s : "");
    r->attributes = mira_strdup(c[1].s ? c[1].s : "{}");
    r->worklist_pk = c[2].type == MIRA__DB_INT ? c[2].i : 0;
    r->failed = !r->status || !r->attributes;
    return false;
}

static bool read_mpps(mira__db *db, const char *uid, mpps_row *r, mira_error **err)
{
    memset(r, 0, sizeof *r);
    mira__dbval u = mira__db_text(uid);
    if (!mira__db_query(db, "SELECT status, attributes, worklist_pk FROM mpps WHERE sop_uid = ?",
                        &u, 1, take_mpps, r, err))
        return false;
    if (r->failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an MPPS row");
        return false;
    }
    return true;
}

/* Attributes an N-SET may not change (PS3.4 Table F.7.2-1: "Not allowed"). */
static bool settable(mira_tag tag)
{
    static const mira_tag fixed[] = {
        TAG_SCHEDULED_STEP_SEQ, TAG_PPS_ID,     TAG_PPS_STATION_AET,    TAG_PPS_START_DATE,
        TAG_PPS_START_TIME,     TAG_MODALITY,   TAG_PATIENT_NAME,       TAG_PATIENT_ID,
        MIRA_TAG(0x0010, 0x0030), MIRA_TAG(0x0010, 0x0040), MIRA_TAG(0x0008, 0x0016),
        MIRA_TAG(0x0008, 0x0018),
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i] == tag)
            return false;
    return true;
}

bool mira_mpps_set(mira_archive *a, const char *uid, const mira_dataset *mods,
                   mira_mpps_result *result, char *why, size_t n, mira_error **err)
{
    *result = MIRA_MPPS_OK;
    say(why, n, "%s", "");
    for (size_t i = 0; i < mira_dataset_count(mods); i++) {
        mira_tag t = mira_element_tag(mira_dataset_at(mods, i));
        if (t != TAG_CHARSET && !settable(t)) {
            char name[64];
            const mira_dict_entry *d = mira_dict_find(t);
            snprintf(name, sizeof name, "%s (%04X,%04X)", d ? d->keyword : "the attribute",
                     MIRA_TAG_GROUP(t), MIRA_TAG_ELEMENT(t));
            *result = MIRA_MPPS_NOT_ALLOWED;
            say(why, n, "%s may not be changed by N-SET", name);
            return true;
        }
    }
    mira_dataset *m = utf8_copy(mods, err);
    if (!m)
        return false;
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db) {
        mira_dataset_free(m);
        return false;
    }
    mpps_row r;
    mira_dataset *cur = NULL;
    char *json = NULL;
    bool ok = db->ops->begin_write(db, err) && read_mpps(db, uid, &r, err);
    bool write = false;
    char status[64] = "";
    if (ok && !r.found) {
        *result = MIRA_MPPS_NO_SUCH;
        say(why, n, "no MPPS %s", uid);
    } else if (ok && is_final(r.status)) {
        *result = MIRA_MPPS_FINAL;
        say(why, n, "the MPPS is %s and may no longer be updated", r.status);
    } else if (ok) {
        cur = mira_dataset_from_json(r.attributes, strlen(r.attributes), err);
        ok = cur != NULL;
        for (size_t i = 0; ok && i < mira_dataset_count(m); i++)
            ok = copy_into(cur, mira_dataset_at(m, i));
        if (ok) {
            get_str(cur, TAG_PPS_STATUS, status, sizeof status);
            if (strcmp(status, "IN PROGRESS") != 0 && !is_final(status)) {
                *result = MIRA_MPPS_INVALID_VALUE;
                say(why, n, "Performed Procedure Step Status \"%s\" is not IN PROGRESS, "
                            "COMPLETED or DISCONTINUED",
                    status);
            } else if (is_final(status)) {
                /* the final state (F.7.2.2.1): the end, and for COMPLETED what was done */
                bool fine =
                    require(cur, TAG_PPS_END_DATE, "Performed Procedure Step End Date (0040,0250)",
                            result, why, n) &&
                    require(cur, TAG_PPS_END_TIME, "Performed Procedure Step End Time (0040,0251)",
                            result, why, n);
                if (fine && strcmp(status, "COMPLETED") == 0) {
                    fine = require(cur, TAG_PERFORMED_SERIES_SEQ,
                                   "Performed Series Sequence (0040,0340)", result, why, n);
                    const mira_element *ps = mira_dataset_get(cur, TAG_PERFORMED_SERIES_SEQ);
                    for (size_t k = 0; fine && k < mira_element_item_count(ps); k++)
                        fine = require(mira_element_item(ps, k), TAG_SERIES_UID,
                                       "Series Instance UID (0020,000E) of a Performed Series "
                                       "Sequence item",
                                       result, why, n);
                }
                write = fine;
            } else {
                write = true;
            }
        }
    }
    if (ok && write) {
        json = to_json(cur, err);
        char now[32];
        mira__now(now);
        mira__dbval p[4] = {mira__db_text(status), mira__db_text(json), mira__db_text(now),
                            mira__db_text(uid)};
        ok = json &&
             db->ops->query(db,
                            "UPDATE mpps SET status = ?, attributes = ?, updated_at = ? WHERE"
                            " sop_uid = ?",
                            p, 4, NULL, NULL, NULL, err) &&
             (!is_final(status) || update_entry_status(db, r.worklist_pk, status, err));
    }
    if (ok && write)
        ok = mira__db_commit(db, err);
    else
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    mira_free(r.status);
    mira_free(r.attributes);
    mira_free(json);
    mira_dataset_free(cur);
    mira_dataset_free(m);
    return ok;
}

mira_dataset *mira_mpps_get(mira_archive *a, const char *uid, int64_t *worklist_id,
                            mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return NULL;
    mpps_row r;
    bool ok = read_mpps(db, uid, &r, err);
    mira__archive_db_release(a, db);
    mira_dataset *ds = NULL;
    if (ok && !r.found)
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such MPPS", "no MPPS %s", uid);
    else if (ok)
        ds = mira_dataset_from_json(r.attributes, strlen(r.attributes), err);
    if (ds && worklist_id)
        *worklist_id = r.worklist_pk;
    mira_free(r.status);
    mira_free(r.attributes);
    return ds;
}

/* ------------------------------------------------------------------ storage commitment */

bool mira_archive_instance_class(mira_archive *a, const char *sop_instance_uid,
                                 char sop_class[65], mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    text_box b = {NULL, false};
    mira__dbval u = mira__db_text(sop_instance_uid);
    bool ok = mira__db_query(db, "SELECT COALESCE(sop_class_uid, '') FROM instances WHERE"
                                 " sop_uid = ?",
                             &u, 1, take_text, &b, err);
    mira__archive_db_release(a, db);
    if (ok && b.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a SOP class");
        ok = false;
    }
    if (ok && !b.s) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such instance", "no instance %s",
                       sop_instance_uid);
        ok = false;
    }
    if (ok)
        snprintf(sop_class, 65, "%s", b.s);
    mira_free(b.s);
    return ok;
}

bool mira_archive_log_commitment(mira_archive *a, const char *transaction_uid,
                                 const char *requestor, uint64_t instances, uint64_t failures,
                                 const char *reported_how, mira_error **err)
{
    char now[32];
    mira__now(now);
    mira__dbval p[7] = {mira__db_text(transaction_uid), mira__db_text(requestor),
                        mira__db_int((int64_t)instances), mira__db_int((int64_t)failures),
                        mira__db_text(now), mira__db_text(now), mira__db_opt(reported_how)};
    const char *sql = "INSERT INTO storage_commitments (transaction_uid, requestor, instances,"
                      " failures, received_at, reported_at, reported_how)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?)";
    return mira__archive_write_one(a, sql, p, 7, NULL, NULL, NULL, err);
}

/* A claim's token: random, never 0. */
static int64_t new_claim(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: time, process and a counter still tell claims apart here */
        static _Atomic uint64_t counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
            atomic_fetch_add(&counter, 1);
    }
    r &= (uint64_t)INT64_MAX;
    return r ? (int64_t)r : 1;
}

static bool take_int(void *ctx, const mira__dbval *c, size_t n)
{
    if (n >= 1 && c[0].type == MIRA__DB_INT)
        *(int64_t *)ctx = c[0].i;
    return false;
}

bool mira_archive_commitment_add(mira_archive *a, const char *transaction_uid,
                                 const char *requestor, uint64_t instances, uint64_t failures,
                                 uint16_t event_type, const mira_dataset *event_info,
                                 int64_t lease, int64_t retry_until, int64_t *id, int64_t *claim,
                                 mira_error **err)
{
    mira_json_options jo;
    memset(&jo, 0, sizeof jo);
    char *json = mira_dataset_to_json(event_info, &jo, err);
    if (!json)
        return false;
    char now[32];
    mira__now(now);
    *id = 0;
    *claim = new_claim();
    mira__dbval p[10] = {mira__db_text(transaction_uid), mira__db_text(requestor),
                         mira__db_int((int64_t)instances), mira__db_int((int64_t)failures),
                         mira__db_text(now), mira__db_int(event_type), mira__db_text(json),
                         mira__db_int(lease), mira__db_int(retry_until), mira__db_int(*claim)};
    const char *sql = "INSERT INTO storage_commitments (transaction_uid, requestor, instances,"
                      " failures, received_at, event_type, report, retry_at, retry_until,"
                      " claim) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk";
    bool ok = mira__archive_write_one(a, sql, p, 10, take_int, id, NULL, err);
    mira_free(json);
    return ok;
}

bool mira_archive_commitment_claim(mira_archive *a, int64_t id, int64_t now, int64_t lease,
                                   int64_t *claim, bool *taken, mira_error **err)
{
    *taken = false;
    int64_t token = *claim ? *claim : new_claim(), changes = 0;
    mira__dbval p[5] = {mira__db_int(token), mira__db_int(lease), mira__db_int(id),
                        mira__db_int(token), mira__db_int(now)};
    const char *sql = "UPDATE storage_commitments SET claim = ?, retry_at = ? WHERE pk = ?"
                      " AND report IS NOT NULL AND (claim = ? OR retry_at <= ?)";
    bool ok = mira__archive_write_one(a, sql, p, 5, NULL, NULL, &changes, err);
    if (ok && changes == 1) {
        *claim = token;
        *taken = true;
    }
    return ok;
}

bool mira_archive_commitment_attempted(mira_archive *a, int64_t id, int64_t claim,
                                       bool delivered, int attempts, int64_t retry_at,
                                       const char *how, mira_error **err)
{
    char now[32];
    mira__now(now);
    bool again = !delivered && retry_at > 0;
    mira__dbval p[6] = {mira__db_int(attempts), mira__db_opt(how),
                        again ? mira__db_int(retry_at) : mira__db_text(NULL),
                        delivered ? mira__db_text(now) : mira__db_text(NULL), mira__db_int(id),
                        mira__db_int(claim)};
    /* delivered or given up: the report goes; else it waits for retry_at, unclaimed */
    const char *sql = again ? "UPDATE storage_commitments SET attempts = ?, reported_how = ?,"
                              " retry_at = ?, reported_at = ?, claim = NULL"
                              " WHERE pk = ? AND claim = ?"
                            : "UPDATE storage_commitments SET attempts = ?, reported_how = ?,"
                              " retry_at = ?, reported_at = ?, claim = NULL, report = NULL"
                              " WHERE pk = ? AND claim = ?";
    return mira__archive_write_one(a, sql, p, 6, NULL, NULL, NULL, err);
}

typedef struct due_rows {
    mira_commitment_report *v;
    char **json;
    size_t n, max;
    bool failed;
} due_rows;

static bool take_due(void *ctx, const mira__dbval *c, size_t n)
{
    due_rows *d = ctx;
    if (n < 9 || d->n >= d->max)
        return false;
    mira_commitment_report *r = &d->v[d->n];
    memset(r, 0, sizeof *r);
    r->id = c[0].i;
    snprintf(r->transaction_uid, sizeof r->transaction_uid, "%s", c[1].s ? c[1].s : "");
    snprintf(r->requestor, sizeof r->requestor, "%s", c[2].s ? c[2].s : "");
    r->instances = (uint64_t)c[3].i;
    r->failures = (uint64_t)c[4].i;
    r->event_type = (uint16_t)c[5].i;
    r->attempts = (int)c[7].i;
    r->retry_until = c[8].i;
    d->json[d->n] = mira_strdup(c[6].s ? c[6].s : "");
    if (!d->json[d->n]) {
        d->failed = true;
        return false;
    }
    d->n++;
    return true;
}

bool mira_archive_commitments_due(mira_archive *a, int64_t now, size_t max,
                                  mira_commitment_report_fn fn, void *ctx, int64_t *next,
                                  mira_error **err)
{
    if (next)
        *next = 0;
    if (max == 0)
        return true;
    due_rows d = {mira_calloc(max, sizeof *d.v), mira_calloc(max, sizeof *d.json), 0, max,
                  false};
    if (!d.v || !d.json) {
        mira_free(d.v);
        mira_free(d.json);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the storage commitment reports due");
        return false;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    bool ok = db != NULL;
    mira__dbval p[2] = {mira__db_int(now), mira__db_int((int64_t)max)};
    ok = ok && mira__db_query(db,
                              "SELECT pk, transaction_uid, requestor, instances, failures,"
                              " COALESCE(event_type, 1), report, attempts,"
                              " COALESCE(retry_until, 0) FROM storage_commitments"
                              " WHERE report IS NOT NULL AND retry_at <= ?"
                              " ORDER BY retry_at, pk LIMIT ?",
                              p, 2, take_due, &d, err);
    if (ok && d.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the storage commitment reports due");
        ok = false;
    }
    int64_t earliest = 0;
    bool found = false;
    ok = ok && mira__db_query_int(db,
                                  "SELECT MIN(retry_at) FROM storage_commitments"
                                  " WHERE report IS NOT NULL AND retry_at > ?",
                                  p, 1, &earliest, &found, err);
    if (db)
        mira__archive_db_release(a, db);
    if (ok && next && found)
        *next = earliest;
    bool go_on = ok;
    for (size_t i = 0; i < d.n; i++) {
        mira_error *je = NULL;
        d.v[i].event_info = go_on ? mira_dataset_from_json(d.json[i], strlen(d.json[i]), &je)
                                  : NULL;
        if (go_on && !d.v[i].event_info) {
            /* a report that cannot be read cannot be sent: given up, with why */
            char how[300];
            snprintf(how, sizeof how, "given up: the report kept cannot be read: %s",
                     mira_error_get_message(je));
            int64_t claim = 0;
            bool taken = false;
            if (mira_archive_commitment_claim(a, d.v[i].id, now, now, &claim, &taken, NULL) &&
                taken)
                mira_archive_commitment_attempted(a, d.v[i].id, claim, false, d.v[i].attempts,
                                                  0, how, NULL);
        } else if (go_on) {
            go_on = fn(ctx, &d.v[i]);
        }
        mira_error_free(je);
        mira_free(d.json[i]);
    }
    mira_free(d.v);
    mira_free(d.json);
    return ok;
}
