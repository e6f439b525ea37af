/* Queries: a C-FIND identifier turned into one SQL statement per search (PS3.4 C.2.2.2). */
#include "archive/archive_int.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * How each matching type of PS3.4 C.2.2.2 is done:
 *  - universal (empty key, or "*"): no condition; the key is only returned;
 *  - single value: equality (person names on the lower-cased column when names are matched
 *    case-insensitively; times and dates on their normalised forms; IS numerically);
 *  - wild card (* and ? in AE, CS, LO, LT, PN, SH, ST, UC, UR, UT keys; in the others, such
 *    as DS and AS, they are characters of a single value): GLOB in SQLite, LIKE with escapes
 *    in PostgreSQL, so that % _ [ are characters like any other;
 *  - list of UID: IN (...);
 *  - range (DA, TM: "a-b", "-b", "a-"): >= and <=, an open end left out; a time bound with
 *    fewer components covers all of them (an upper 1230 is 12:30:59.999999);
 *  - combined date-time (C.2.2.2.5.4, when opt->combined_datetime): a date and its time
 *    (Study Date and Study Time...) that are ranges of the same form are one DT range, on the
 *    date followed by the normalised time ("20200101-20200102" with "2200-0200" is 2020-01-01
 *    22:00 to 2020-01-02 02:00:59.999999); an entity with the date but no time does not
 *    match, as it does not match a time range alone. Other pairs match independently;
 *  - empty value (a key of two QUOTATION MARKs, C.2.2.2.7 "Empty Value Matching"): IS NULL
 *    (= '' for Patient ID and its issuer, whose columns keep '' for absent);
 *  - sequence (Procedure Code, Request Attributes): EXISTS on the child table with every item
 *    key that has a value; the matching items are returned;
 *  - several values separated by '\' in a non-UID key: any of them (OR), as most archives do
 *    without the Multiple Value Matching extended negotiation (C.2.2.2.8);
 *  - multi-valued attributes (Other Patient IDs, Image Type...) and the study's modalities and
 *    SOP classes match when any one of their values matches.
 * Leading and trailing spaces of a key value are not significant.
 *
 * Below the patient level, the conditions on patient keys go into one
 * "t1.patient_pk IN (SELECT t0.pk FROM patients t0 WHERE ...)" rather than onto the joined
 * patients row: the same matches, but the planner can start from the patients (the name
 * index for a prefix, a scan of the smallest table for an infix) and reach their studies by
 * studies_patient, instead of walking the studies by date and looking each one's patient up
 * (SQLite has no statistics to tell a name prefix from a date range: on an index of a million
 * instances, a study query with both took 35 ms that way, 2 ms this way; an infix 20 and 9).
 */

static const char *const alias[4] = {"t0", "t1", "t2", "t3"};

typedef struct query {
    mira_archive *a;
    mira_level level;
    bool ci;
    bool glob;
    mira__buf where;
    mira__dbval params[512];
    char *owned[512]; /* texts the params point to */
    size_t nparams, nowned;
    bool full;
    size_t clause_start; /* where the WHERE being written starts (inside the patient subquery) */
    const mira_dataset *ident; /* the identifier, for the partner of a date or time key */
    bool combined_dt;          /* combined date-time matching */
} query;

static const char *keep(query *q, char *s)
{
    if (!s || q->nowned == 512) {
        mira_free(s);
        q->full = true;
        return "";
    }
    q->owned[q->nowned++] = s;
    return s;
}

static void param(query *q, mira__dbval v)
{
    if (q->nparams == 512) {
        q->full = true;
        return;
    }
    q->params[q->nparams++] = v;
}

static void param_text(query *q, const char *s)
{
    param(q, mira__db_text(keep(q, mira_strdup(s))));
}

static bool has_wildcards(const char *v)
{
    return strpbrk(v, "*?") != NULL;
}

/* The VRs whose keys do Wild Card Matching (PS3.4 C.2.2.2.4); in the others (DS, AS...) a
 * '*' or '?' is just a character of a single value. */
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

/* A DICOM wild card pattern in the backend's syntax (owned). */
static char *pattern(const char *v, bool glob)
{
    size_t n = strlen(v);
    char *out = mira_malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = v; *p; p++) {
        if (glob) {
            if (*p == '[') { /* the only GLOB metacharacter DICOM does not share */
                memcpy(o, "[[]", 3);
                o += 3;
            } else {
                *o++ = *p;
            }
        } else if (*p == '*') {
            *o++ = '%';
        } else if (*p == '?') {
            *o++ = '_';
        } else {
            if (*p == '%' || *p == '_' || *p == '\\')
                *o++ = '\\';
            *o++ = *p;
        }
    }
    *o = 0;
    return out;
}

/* Append "col = ?" or "col GLOB ?" (wild: the key's VR does wild cards) for one value of a
 * text key. */
static void text_condition(query *q, const char *col, const char *value, bool fold, bool wild)
{
    char *v = fold ? mira__fold_case(value) : mira_strdup(value);
    if (!v) {
        q->full = true;
        return;
    }
    if (wild && has_wildcards(v)) {
        char *pat = pattern(v, q->glob);
        mira_free(v);
        mira__buf_printf(&q->where, q->glob ? "%s GLOB ?" : "%s LIKE ? ESCAPE '\\'", col);
        param(q, mira__db_text(keep(q, pat)));
    } else {
        mira__buf_printf(&q->where, "%s = ?", col);
        param(q, mira__db_text(keep(q, v)));
    }
}

/* Split a key value on '\' (trimming spaces) into a NULL-terminated array (owned, in one
 * allocation with its strings). */
static char **split_values(const char *value, size_t *count)
{
    size_t n = 1, len = strlen(value);
    for (const char *p = value; *p; p++)
        n += *p == '\\';
    char **out = mira_malloc((n + 1) * sizeof(char *) + len + 1);
    if (!out)
        return NULL;
    char *text = (char *)(out + n + 1);
    memcpy(text, value, len + 1);
    size_t k = 0;
    for (char *v = text, *next; v; v = next) {
        char *bs = strchr(v, '\\');
        next = bs ? bs + 1 : NULL;
        if (bs)
            *bs = 0;
        while (*v == ' ')
            v++;
        size_t l = strlen(v);
        while (l && v[l - 1] == ' ')
            v[--l] = 0;
        out[k++] = v;
    }
    out[k] = NULL;
    *count = k;
    return out;
}

/* A date or time range condition on col; false if the value is not a date/time or range. */
static bool range_condition(query *q, const char *col, const char *value, bool is_time)
{
    const char *dash = strchr(value, '-');
    char lo[16] = "", hi[16] = "";
    char a[32] = "", b[32] = "";
    if (dash) {
        snprintf(a, sizeof a, "%.*s", (int)(dash - value) < 31 ? (int)(dash - value) : 31, value);
        snprintf(b, sizeof b, "%s", dash + 1);
    } else {
        snprintf(a, sizeof a, "%s", value);
    }
    bool ok;
    if (is_time) {
        ok = (!*a || mira__time_normalise(a, '0', lo)) &&
             (!dash ? mira__time_normalise(a, '0', hi) : (!*b || mira__time_normalise(b, '9', hi)));
    } else {
        ok = (!*a || mira__date_normalise(a, lo)) &&
             (!dash ? mira__date_normalise(a, hi) : (!*b || mira__date_normalise(b, hi)));
    }
    if (!ok || (!*lo && !*hi))
        return false;
    if (!dash) {
        mira__buf_printf(&q->where, "%s = ?", col);
        param_text(q, lo);
        return true;
    }
    mira__buf_puts(&q->where, "(");
    if (*lo) {
        mira__buf_printf(&q->where, "%s >= ?", col);
        param_text(q, lo);
    }
    if (*lo && *hi)
        mira__buf_puts(&q->where, " AND ");
    if (*hi) {
        mira__buf_printf(&q->where, "%s <= ?", col);
        param_text(q, hi);
    }
    mira__buf_puts(&q->where, ")");
    return true;
}

/* The condition for one key value (of VR vr) on column col of the table aliased `t` (may be
 * several values, ORed). */
static void value_condition(query *q, mira__key_kind kind, mira_vr vr, const char *t,
                            const char *column, const char *value, mira_error **err)
{
    size_t n = 0;
    char **vals = split_values(value, &n);
    if (!vals) {
        q->full = true;
        return;
    }
    char col[128];
    if (kind == MIRA__KEY_UID) {
        snprintf(col, sizeof col, "%s.%s", t, column);
        mira__buf_printf(&q->where, "%s IN (", col);
        for (size_t i = 0; i < n; i++) {
            mira__buf_puts(&q->where, i ? ", ?" : "?");
            param_text(q, vals[i]);
        }
        mira__buf_puts(&q->where, ")");
        mira_free(vals);
        return;
    }
    mira__buf_puts(&q->where, "(");
    for (size_t i = 0; i < n; i++) {
        if (i)
            mira__buf_puts(&q->where, " OR ");
        const char *v = vals[i];
        switch (kind) {
        case MIRA__KEY_DATE:
            snprintf(col, sizeof col, "%s.%s", t, column);
            if (!range_condition(q, col, v, false))
                mira__buf_puts(&q->where, "1 = 0"); /* not a date: matches nothing */
            break;
        case MIRA__KEY_TIME:
            snprintf(col, sizeof col, "%s.%s_n", t, column);
            if (!range_condition(q, col, v, true))
                mira__buf_puts(&q->where, "1 = 0");
            break;
        case MIRA__KEY_INT: {
            char *end;
            long long x = strtoll(v, &end, 10);
            snprintf(col, sizeof col, "%s.%s", t, column);
            if (*v && !*end) {
                mira__buf_printf(&q->where, "%s = ?", col);
                param(q, mira__db_int(x));
            } else {
                mira__buf_puts(&q->where, "1 = 0");
            }
            break;
        }
        case MIRA__KEY_PN:
            snprintf(col, sizeof col, q->ci ? "%s.%s_ci" : "%s.%s", t, column);
            text_condition(q, col, v, q->ci, true);
            break;
        default:
            snprintf(col, sizeof col, "%s.%s", t, column);
            text_condition(q, col, v, false, wildcard_vr(vr));
            break;
        }
    }
    mira__buf_puts(&q->where, ")");
    mira_free(vals);
    (void)err;
}

static void and (query * q)
{
    mira__buf_puts(&q->where, q->where.len > q->clause_start ? " AND " : " WHERE ");
}

static bool is_universal(const char *v)
{
    return !*v || strcmp(v, "*") == 0;
}

static bool is_empty_match(const char *v)
{
    return strcmp(v, "\"\"") == 0;
}

/* The condition for a multi-valued key: any of its values (multi_values) matches. */
static void multi_condition(query *q, const mira__key *k, const char *value, mira_error **err)
{
    and(q);
    mira__buf_printf(&q->where,
                     "EXISTS (SELECT 1 FROM multi_values mv WHERE mv.owner_level = %d AND "
                     "mv.owner_pk = %s.pk AND mv.tag = %u AND ",
                     (int)k->level, alias[k->level], (unsigned)k->tag);
    value_condition(q, k->kind == MIRA__KEY_PN ? MIRA__KEY_PN : MIRA__KEY_TEXT, k->vr, "mv",
                    "value", value, err);
    mira__buf_puts(&q->where, ")");
}

/* Modalities in Study / SOP Classes in Study: a series (or instance) of the study matches. */
static void list_condition(query *q, const mira__key *k, const char *value, mira_error **err)
{
    and(q);
    if (k->tag == 0x00080061) {
        mira__buf_printf(&q->where,
                         "EXISTS (SELECT 1 FROM series ls WHERE ls.study_pk = %s.pk AND ",
                         alias[MIRA_LEVEL_STUDY]);
        value_condition(q, MIRA__KEY_TEXT, MIRA_VR_CS, "ls", "modality", value, err);
    } else {
        mira__buf_printf(&q->where,
                         "EXISTS (SELECT 1 FROM instances li JOIN series ls ON ls.pk = li.series_pk"
                         " WHERE ls.study_pk = %s.pk AND ",
                         alias[MIRA_LEVEL_STUDY]);
        value_condition(q, MIRA__KEY_UID, MIRA_VR_UI, "li", "sop_class_uid", value, err);
    }
    mira__buf_puts(&q->where, ")");
}

static const mira__seq_table *seq_table(mira_tag tag)
{
    for (size_t i = 0; i < mira__seq_table_count; i++)
        if (mira__seq_tables[i].seq == tag)
            return &mira__seq_tables[i];
    return NULL;
}

static const mira__item_key *item_key(mira_tag seq, mira_tag tag)
{
    for (size_t i = 0; i < mira__item_key_count; i++)
        if (mira__item_keys[i].seq == seq && mira__item_keys[i].tag == tag)
            return &mira__item_keys[i];
    return NULL;
}

/* The text of a key element (UTF-8, spaces trimmed; owned; "" when empty). */
static char *key_text(const mira_element *e)
{
    if (mira_element_length(e) == 0)
        return mira_strdup("");
    char *s = NULL;
    if (mira_vr_is_string(mira_element_vr(e))) {
        s = mira_element_get_text(e, NULL);
    } else {
        int64_t v;
        char buf[32] = "";
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
    while (l && s[l - 1] == ' ')
        s[--l] = 0;
    return s;
}

/* Item conditions of a sequence key on the child alias c (appended after "... WHERE c.owner_pk
 * = x"); returns false if there are none. */
static bool item_conditions(query *q, const mira_element *seq, mira_error **err)
{
    if (mira_element_item_count(seq) == 0)
        return false;
    const mira_dataset *item = mira_element_item(seq, 0);
    bool any = false;
    for (size_t i = 0; i < mira_dataset_count(item); i++) {
        const mira_element *e = mira_dataset_at(item, i);
        const mira__item_key *ik = item_key(mira_element_tag(seq), mira_element_tag(e));
        if (!ik)
            continue;
        char *v = key_text(e);
        if (!v) {
            q->full = true;
            return any;
        }
        if (!is_universal(v)) {
            mira__buf_puts(&q->where, " AND ");
            if (is_empty_match(v)) {
                mira__buf_printf(&q->where, "c.%s IS NULL", ik->column);
            } else {
                value_condition(q, ik->kind, ik->vr, "c", ik->column, v, err);
            }
            any = true;
        }
        mira_free(v);
    }
    return any;
}

/* ------------------------------------------------------------------ results */

typedef struct ret_key {
    const mira_element *ident; /* the identifier's element */
    const mira__key *key;      /* NULL: not indexed (returned empty) */
    int col;                   /* result column, -1 for sequences */
} ret_key;

typedef struct find_ctx {
    mira_archive *a;
    mira__db *db;
    query *q;
    const mira_dataset *ident;
    ret_key *keys;
    size_t nkeys;
    mira_find_fn fn;
    void *user;
    bool stopped;
    mira_error *err;
    bool failed;
    mira_dataset *row; /* the match handed to fn, made once and refilled for every row */
} find_ctx;

static mira_vr ident_vr(const mira_element *e, mira_vr fallback)
{
    mira_vr vr = mira_element_vr(e);
    return vr == MIRA_VR_UN || vr == MIRA_VR_NONE ? fallback : vr;
}

static bool put_value(mira_dataset *ds, mira_tag tag, mira_vr vr, const mira__dbval *v,
                      mira_error **err)
{
    char buf[32];
    const char *s = "";
    if (v->type == MIRA__DB_INT) {
        snprintf(buf, sizeof buf, "%lld", (long long)v->i);
        s = buf;
    } else if (v->type == MIRA__DB_TEXT) {
        s = v->s;
    }
    if (!mira_vr_is_string(vr)) {
        /* US keys (Rows, Columns...): binary */
        if (!*s)
            return mira_dataset_set_bytes(ds, tag, vr, NULL, 0, err) != NULL;
        long long x = strtoll(s, NULL, 10);
        uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
        size_t n = mira_vr_value_size(vr);
        return mira_dataset_set_bytes(ds, tag, vr, b, n ? n : 2, err) != NULL;
    }
    /* padded to even length here, as mira_dataset_set_string would, so that a value costs one
     * copy and not two (a study list of thousands of matches sets tens of thousands) */
    size_t n = strlen(s);
    char padded[256];
    if (n % 2 == 0 || n >= sizeof padded)
        return mira_dataset_set_string(ds, tag, vr, s, err) != NULL;
    memcpy(padded, s, n);
    padded[n] = vr == MIRA_VR_UI ? '\0' : ' ';
    return mira_dataset_set_bytes(ds, tag, vr, padded, n + 1, err) != NULL;
}

typedef struct items_ctx {
    mira_element *seq;
    const mira_element *ident_seq;
    mira_error **err;
    bool ok;
} items_ctx;

static bool take_item(void *ctx, const mira__dbval *cols, size_t n)
{
    items_ctx *c = ctx;
    mira_dataset *item = mira_element_add_item(c->seq, c->err);
    if (!item) {
        c->ok = false;
        return false;
    }
    const mira_dataset *want =
        mira_element_item_count(c->ident_seq) ? mira_element_item(c->ident_seq, 0) : NULL;
    size_t col = 0;
    for (size_t i = 0; i < mira__item_key_count && col < n; i++) {
        const mira__item_key *ik = &mira__item_keys[i];
        if (ik->seq != mira_element_tag(c->ident_seq))
            continue;
        const mira_element *we = want ? mira_dataset_get(want, ik->tag) : NULL;
        /* an empty item asks for the whole item; else only the keys it names */
        if (!want || mira_dataset_count(want) == 0 || we) {
            if (!put_value(item, ik->tag, ik->vr, &cols[col], c->err)) {
                c->ok = false;
                return false;
            }
        }
        col++;
    }
    return true;
}

static bool add_items(find_ctx *fc, mira_dataset *ds, const mira_element *ident_seq, int64_t owner)
{
    const mira__seq_table *st = seq_table(mira_element_tag(ident_seq));
    mira_element *seq = mira_dataset_set_sequence(ds, mira_element_tag(ident_seq), &fc->err);
    if (!seq)
        return false;
    query q = {0};
    q.a = fc->a;
    q.ci = fc->q->ci;
    q.glob = fc->q->glob;
    mira__buf_init(&q.where);
    mira__buf sql;
    mira__buf_init(&sql);
    mira__buf_puts(&sql, "SELECT ");
    bool first = true;
    for (size_t i = 0; i < mira__item_key_count; i++) {
        if (mira__item_keys[i].seq != st->seq)
            continue;
        mira__buf_printf(&sql, first ? "c.%s" : ", c.%s", mira__item_keys[i].column);
        first = false;
    }
    mira__buf_printf(&sql, " FROM %s c WHERE c.owner_pk = ?", st->table);
    param(&q, mira__db_int(owner));
    item_conditions(&q, ident_seq, &fc->err);
    mira__buf_append(&sql, q.where.data, q.where.len);
    mira__buf_puts(&sql, " ORDER BY c.item");
    items_ctx ic = {seq, ident_seq, &fc->err, true};
    bool ok = !sql.failed && !q.where.failed &&
              mira__db_query(fc->db, (const char *)sql.data, q.params, q.nparams, take_item, &ic,
                             &fc->err) &&
              ic.ok;
    mira__buf_cleanup(&sql);
    mira__buf_cleanup(&q.where);
    for (size_t i = 0; i < q.nowned; i++)
        mira_free(q.owned[i]);
    return ok;
}

/* Every match has the same elements: the data set is made once, with the constant ones, and
 * each row then replaces the values of the keys in place (the callback only borrows it). A
 * new data set per match was a third of the time of a query with thousands of matches. */
static bool take_match(void *ctx, const mira__dbval *cols, size_t ncols)
{
    find_ctx *fc = ctx;
    bool ok = true;
    if (!fc->row) {
        fc->row = mira_dataset_new(&fc->err);
        ok = fc->row && mira_dataset_set_string(fc->row, 0x00080005, MIRA_VR_CS, "ISO_IR 192",
                                                &fc->err) != NULL;
        const mira_element *qrl = mira_dataset_get(fc->ident, 0x00080052);
        if (ok && qrl)
            ok = mira_dataset_set_string(fc->row, 0x00080052, MIRA_VR_CS,
                                         mira_level_name(fc->q->level), &fc->err) != NULL;
        if (!ok) {
            fc->failed = true;
            return false;
        }
    }
    mira_dataset *ds = fc->row;
    int64_t owner[4] = {0};
    for (int l = 0; l <= (int)fc->q->level && (size_t)l < ncols; l++)
        owner[l] = cols[l].type == MIRA__DB_INT ? cols[l].i : 0;
    for (size_t i = 0; ok && i < fc->nkeys; i++) {
        ret_key *rk = &fc->keys[i];
        mira_tag tag = mira_element_tag(rk->ident);
        mira_vr vr = ident_vr(rk->ident, rk->key ? rk->key->vr : mira_dict_vr(tag));
        if (rk->key && rk->key->kind == MIRA__KEY_SEQ) {
            ok = add_items(fc, ds, rk->ident, owner[rk->key->level]);
        } else if (rk->key && rk->col >= 0 && (size_t)rk->col < ncols) {
            ok = put_value(ds, tag, rk->key->vr, &cols[rk->col], &fc->err);
        } else if (vr == MIRA_VR_SQ) {
            ok = mira_dataset_set_sequence(ds, tag, &fc->err) != NULL;
        } else {
            ok = mira_dataset_set_bytes(ds, tag, vr == MIRA_VR_NONE ? MIRA_VR_UN : vr, NULL, 0,
                                        &fc->err) != NULL;
        }
    }
    if (!ok) {
        fc->failed = true;
        return false;
    }
    bool more = fc->fn(fc->user, ds);
    if (!more)
        fc->stopped = true;
    return more;
}

/* ------------------------------------------------------------------ the search */

/* The date and time attributes matched as one DT when combined date-time matching is on. */
static const mira_tag datetime_pairs[][2] = {
    {0x00080020, 0x00080030}, /* Study Date, Study Time */
    {0x00080021, 0x00080031}, /* Series Date, Series Time */
    {0x00080022, 0x00080032}, /* Acquisition Date, Acquisition Time */
    {0x00080023, 0x00080033}, /* Content Date, Content Time */
    {0x00400244, 0x00400245}, /* Performed Procedure Step Start Date, Start Time */
    {0x00100030, 0x00100032}, /* Patient's Birth Date, Patient's Birth Time */
};

/* The form of a range key value: 0 not a range (or several values), 1 "a-b", 2 "-b", 3 "a-";
 * lo and hi receive its ends. */
static int range_form(const char *v, char lo[32], char hi[32])
{
    const char *dash = strchr(v, '-');
    if (!dash || strchr(dash + 1, '-') || strchr(v, '\\') || dash - v > 31 || strlen(dash) > 32)
        return 0;
    snprintf(lo, 32, "%.*s", (int)(dash - v), v);
    snprintf(hi, 32, "%s", dash + 1);
    return *lo && *hi ? 1 : *hi ? 2 : *lo ? 3 : 0;
}

/* The combined date-time condition of the pair whose date or time key k (value v) is, when
 * the pair qualifies (both ranges of one form, both valid): true when written (for the date)
 * or left to the date (for the time); false when the key is matched on its own. */
static bool datetime_condition(query *q, const mira__key *k, const char *v)
{
    if (!q->combined_dt || (k->kind != MIRA__KEY_DATE && k->kind != MIRA__KEY_TIME))
        return false;
    size_t pair = 0;
    int side = k->kind == MIRA__KEY_DATE ? 0 : 1;
    while (pair < sizeof datetime_pairs / sizeof *datetime_pairs &&
           datetime_pairs[pair][side] != k->tag)
        pair++;
    if (pair == sizeof datetime_pairs / sizeof *datetime_pairs)
        return false;
    const mira__key *dk = mira__key_find(datetime_pairs[pair][0]);
    const mira__key *tk = mira__key_find(datetime_pairs[pair][1]);
    const mira_element *pe = mira_dataset_get(q->ident, datetime_pairs[pair][!side]);
    char *pv = pe ? key_text(pe) : NULL;
    if (!pv || !dk || !tk || dk->level != tk->level) {
        mira_free(pv);
        return false;
    }
    char dlo[32], dhi[32], tlo[32], thi[32];
    int form = range_form(side ? pv : v, dlo, dhi);
    bool same = form && range_form(side ? v : pv, tlo, thi) == form;
    mira_free(pv);
    char d1[9] = "", d2[9] = "", t1[14] = "", t2[14] = "";
    if (!same || (form != 2 && (!mira__date_normalise(dlo, d1) ||
                                !mira__time_normalise(tlo, '0', t1))) ||
        (form != 3 && (!mira__date_normalise(dhi, d2) || !mira__time_normalise(thi, '9', t2))))
        return false; /* not a pair of ranges: each matches on its own */
    if (side)
        return true; /* written with the date */
    const char *t = alias[dk->level];
    and(q);
    mira__buf_puts(&q->where, "(");
    if (*d1) { /* the date column first, which its index serves */
        mira__buf_printf(&q->where, "%s.%s >= ? AND (%s.%s || %s.%s_n) >= ?", t, dk->column, t,
                         dk->column, t, tk->column);
        param_text(q, d1);
        char dt[32];
        snprintf(dt, sizeof dt, "%s%s", d1, t1);
        param_text(q, dt);
    }
    if (*d1 && *d2)
        mira__buf_puts(&q->where, " AND ");
    if (*d2) {
        mira__buf_printf(&q->where, "%s.%s <= ? AND (%s.%s || %s.%s_n) <= ?", t, dk->column, t,
                         dk->column, t, tk->column);
        param_text(q, d2);
        char dt[32];
        snprintf(dt, sizeof dt, "%s%s", d2, t2);
        param_text(q, dt);
    }
    mira__buf_puts(&q->where, ")");
    return true;
}

/* The condition of one matching key (value v, not universal), ANDed to the WHERE. */
static void key_condition(query *q, const mira__key *k, const char *v, mira_error **err)
{
    if (datetime_condition(q, k, v))
        return;
    if (is_empty_match(v)) {
        and(q);
        if (k->tag == 0x00100020 || k->tag == 0x00100021) /* NOT NULL: '' is absent */
            mira__buf_printf(&q->where, "%s.%s = ''", alias[k->level], k->column);
        else
            mira__buf_printf(&q->where, "%s.%s IS NULL", alias[k->level], k->column);
    } else if (k->kind == MIRA__KEY_LIST) {
        list_condition(q, k, v, err);
    } else if (k->multi) {
        multi_condition(q, k, v, err);
    } else {
        and(q);
        value_condition(q, k->kind, k->vr, alias[k->level], k->column, v, err);
    }
}

void mira_find_options_init(mira_find_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->names_case_insensitive = -1;
}

static void from_clause(mira__buf *sql, mira_level level)
{
    static const char *const joins[4] = {
        "",
        " JOIN patients t0 ON t0.pk = t1.patient_pk",
        " JOIN studies t1 ON t1.pk = t2.study_pk",
        " JOIN series t2 ON t2.pk = t3.series_pk",
    };
    mira__buf_printf(sql, " FROM %s %s", mira__level_table(level), alias[level]);
    for (int l = (int)level; l >= 1; l--)
        mira__buf_puts(sql, joins[l]);
}

/* Missing values last ('' is an absent Patient ID), ties in insertion order. Text sorts by
 * code point on both backends: PostgreSQL would otherwise use the database's collation. */
static void order_by(mira__buf *sql, mira_level level, bool glob)
{
    const char *c = glob ? "" : " COLLATE \"C\"";
    switch (level) {
    case MIRA_LEVEL_PATIENT:
        mira__buf_printf(sql, " ORDER BY (t0.patient_id = ''), t0.patient_id%s, t0.pk", c);
        break;
    case MIRA_LEVEL_STUDY:
        mira__buf_printf(sql,
                         " ORDER BY (t1.study_date IS NULL), t1.study_date%s,"
                         " (t1.study_time_n IS NULL), t1.study_time_n%s, t1.pk",
                         c, c);
        break;
    case MIRA_LEVEL_SERIES:
        mira__buf_puts(sql, " ORDER BY (t2.series_number IS NULL), t2.series_number, t2.pk");
        break;
    default:
        mira__buf_puts(sql, " ORDER BY (t3.instance_number IS NULL), t3.instance_number, t3.pk");
        break;
    }
}

bool mira_archive_find(mira_archive *a, mira_level level, const mira_dataset *identifier,
                       const mira_find_options *opt, mira_find_fn fn, void *ctx, mira_error **err)
{
    if ((unsigned)level > MIRA_LEVEL_INSTANCE || !identifier || !fn) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad query",
                       "a level, an identifier and a callback"
                       " are needed");
        return false;
    }
    mira_find_options defaults;
    if (!opt) {
        mira_find_options_init(&defaults);
        opt = &defaults;
    }
    query *q = mira_calloc(1, sizeof *q);
    ret_key *keys = mira_calloc(mira_dataset_count(identifier) + 1, sizeof *keys);
    /* the patient keys' conditions, written last (into the patient subquery) */
    struct {
        const mira__key *k;
        char *v;
    } *patient_keys = mira_calloc(mira_dataset_count(identifier) + 1, sizeof *patient_keys);
    size_t npatient_keys = 0;
    if (!q || !keys || !patient_keys) {
        mira_free(q);
        mira_free(keys);
        mira_free(patient_keys);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "query");
        return false;
    }
    q->a = a;
    q->level = level;
    q->ident = identifier;
    q->combined_dt = opt->combined_datetime;
    q->ci = opt->names_case_insensitive < 0 ? a->names_ci : opt->names_case_insensitive != 0;
    q->glob = true;
    mira__buf_init(&q->where);
    mira__buf sql;
    mira__buf_init(&sql);

    mira__db *db = mira__archive_db_acquire(a, err);
    bool ok = db != NULL;
    if (ok)
        q->glob = db->ops->glob;

    /* select: the pk of every level, then one column per returned key */
    mira__buf_puts(&sql, "SELECT ");
    for (int l = 0; l <= (int)level; l++)
        mira__buf_printf(&sql, l ? ", %s.pk" : "%s.pk", alias[l]);
    int col = (int)level + 1;
    size_t nkeys = 0;
    for (size_t i = 0; ok && i < mira_dataset_count(identifier); i++) {
        const mira_element *e = mira_dataset_at(identifier, i);
        mira_tag tag = mira_element_tag(e);
        if (tag == 0x00080005 || tag == 0x00080052 || (tag >> 16) == 0x0002 || (tag & 0xFFFF) == 0)
            continue;
        ret_key *rk = &keys[nkeys++];
        rk->ident = e;
        rk->col = -1;
        const mira__key *k = mira__key_find(tag);
        if (!k || k->level > level)
            continue; /* not indexed (or below the level): returned empty, not matched */
        rk->key = k;
        if (k->kind == MIRA__KEY_SEQ) {
            const mira__seq_table *st = seq_table(tag);
            size_t mark = q->where.len;
            and(q);
            mira__buf_printf(&q->where, "EXISTS (SELECT 1 FROM %s c WHERE c.owner_pk = %s.pk",
                             st->table, alias[k->level]);
            bool any = item_conditions(q, e, err);
            mira__buf_puts(&q->where, ")");
            if (!any && !q->where.failed) { /* universal: no condition after all */
                q->where.len = mark;
                q->where.data[mark] = 0;
            }
            continue;
        }
        mira__buf_printf(&sql, ", %s.%s", alias[k->level], k->column);
        rk->col = col++;
        char *v = key_text(e);
        if (!v) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "query");
            ok = false;
            break;
        }
        if (k->kind == MIRA__KEY_COUNT || is_universal(v)) {
            mira_free(v);
            continue;
        }
        if (level > MIRA_LEVEL_PATIENT && k->level == MIRA_LEVEL_PATIENT) {
            patient_keys[npatient_keys].k = k; /* into the patient subquery, after the loop */
            patient_keys[npatient_keys++].v = v;
            continue;
        }
        key_condition(q, k, v, err);
        mira_free(v);
    }
    if (npatient_keys) {
        and(q);
        mira__buf_puts(&q->where, "t1.patient_pk IN (SELECT t0.pk FROM patients t0");
        q->clause_start = q->where.len;
        for (size_t i = 0; i < npatient_keys; i++)
            key_condition(q, patient_keys[i].k, patient_keys[i].v, err);
        q->clause_start = 0;
        mira__buf_puts(&q->where, ")");
    }
    for (size_t i = 0; i < npatient_keys; i++)
        mira_free(patient_keys[i].v);
    mira_free(patient_keys);
    from_clause(&sql, level);
    mira__buf_append(&sql, q->where.data, q->where.len);
    order_by(&sql, level, q->glob);
    if (opt->limit || opt->offset) {
        mira__buf_puts(&sql, " LIMIT ? OFFSET ?");
        param(q, mira__db_int(opt->limit ? (int64_t)opt->limit : INT64_MAX));
        param(q, mira__db_int((int64_t)opt->offset));
    }
    if (ok && (q->full || sql.failed || q->where.failed)) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Query too large",
                       "the identifier has too many keys or values");
        ok = false;
    }
    if (ok) {
        find_ctx fc = {a, db, q, identifier, keys, nkeys, fn, ctx, false, NULL, false, NULL};
        ok =
            mira__db_query(db, (const char *)sql.data, q->params, q->nparams, take_match, &fc, err);
        mira_dataset_free(fc.row);
        if (ok && fc.failed) {
            ok = false;
            if (err && fc.err) {
                *err = fc.err;
                fc.err = NULL;
            }
        }
        mira_error_free(fc.err);
    }
    mira__archive_db_release(a, db);
    mira__buf_cleanup(&sql);
    mira__buf_cleanup(&q->where);
    for (size_t i = 0; i < q->nowned; i++)
        mira_free(q->owned[i]);
    mira_free(q);
    mira_free(keys);
    return ok;
}
