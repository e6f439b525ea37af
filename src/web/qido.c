/* QIDO-RS (PS3.18 10.6): search parameters into an archive query, matches into DICOM JSON. */
#include "web/web_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * What the search transaction's query parameters (PS3.18 8.3.4) become:
 *  - {attributeID}={value}: a matching key of the identifier mira_archive_find takes, so the
 *    matching is C-FIND's (single value, wildcards, UID lists, date and time ranges, empty value
 *    "", '\' for several values, person names as the archive's config says). attributeID is a
 *    keyword or eight hex digits, or KEYWORD.KEYWORD for an item key of a sequence the index
 *    holds. A UID key takes a list separated by ',' or '\'. A key given twice matches either
 *    value. A key the index does not hold at the level is refused (400), never ignored: an
 *    ignored key would answer with matches the client did not ask for.
 *  - includefield={attributeID}{,attributeID} or all: return keys. Those the index does not
 *    hold are left out and named in a Warning.
 *  - limit, offset: non-negative integers (limit at least 1).
 *  - fuzzymatching=true|false: not supported; true is answered with the Warning of 8.3.4.4.
 * Values are checked as the archive would read them, so that a malformed UID, date, time or
 * number is a 400 rather than a search that matches nothing.
 */

/* The return attributes of PS3.18 tables 10.6.3-3 (study), -4 (series), -5 (instance) that the
 * index holds; Instance Availability is made up (every instance is ONLINE); Timezone Offset
 * From UTC and Retrieve URL are not returned (not indexed; no WADO-RS yet). */
#define AVAILABILITY 0x00080056u
static const mira_tag study_defaults[] = {
    0x00080020, 0x00080030, 0x00080050, AVAILABILITY, 0x00080061, 0x00080090, 0x00100010,
    0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x00200010, 0x00201206, 0x00201208, 0,
};
static const mira_tag series_defaults[] = {
    0x00080060, 0x0008103E, 0x0020000E, 0x00200011, 0x00201209, 0x00400244, 0x00400245,
    0x00400275, 0,
};
static const mira_tag instance_defaults[] = {
    0x00080016, 0x00080018, AVAILABILITY, 0x00200013, 0x00280010,
    0x00280011, 0x00280100, 0x00280008, 0,
};

/* The item keys returned in the two sequences the index holds (src/archive/keys.c): Request
 * Attributes Sequence as table 10.6.3-4 asks, and all of them for includefield=all. */
static const mira_tag request_items_default[] = {0x00400009, 0x00401001, 0};
static const mira_tag request_items_all[] = {0x00080050, 0x00321060, 0x00400007,
                                             0x00400009, 0x00401001, 0};
static const mira_tag procedure_items_all[] = {0x00080100, 0x00080102, 0x00080103,
                                               0x00080104, 0};

void mira__qido_query_cleanup(mira__qido_query *q)
{
    mira_dataset_free(q->identifier);
    q->identifier = NULL;
    mira__buf_cleanup(&q->not_held);
}

bool mira__uid_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    size_t comp = 0; /* digits in the current component */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (comp == 0)
                return false;
            comp = 0;
        } else if (c >= '0' && c <= '9') {
            if (comp == 1 && s[i - 1] == '0')
                return false; /* a leading zero */
            comp++;
        } else {
            return false;
        }
    }
    return comp > 0;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYYYMMDD */
static bool date_valid(const char *s, size_t n)
{
    if (n != 8 || !digits(s, 8))
        return false;
    int m = num2(s + 4), d = num2(s + 6);
    return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* HH[MM[SS[.F{1,6}]]] */
static bool time_valid(const char *s, size_t n)
{
    size_t whole = n;
    const char *dot = memchr(s, '.', n);
    if (dot) {
        whole = (size_t)(dot - s);
        size_t frac = n - whole - 1;
        if (whole != 6 || frac < 1 || frac > 6 || !digits(dot + 1, frac))
            return false;
    }
    if ((whole != 2 && whole != 4 && whole != 6) || !digits(s, whole))
        return false;
    return num2(s) <= 23 && (whole < 4 || num2(s + 2) <= 59) && (whole < 6 || num2(s + 4) <= 60);
}

/* A DA or TM value: one, or a range "a-b", "-b", "a-". */
static bool range_valid(const char *s, bool is_time)
{
    bool (*one)(const char *, size_t) = is_time ? time_valid : date_valid;
    const char *dash = strchr(s, '-');
    if (!dash)
        return one(s, strlen(s));
    if (strchr(dash + 1, '-'))
        return false;
    size_t a = (size_t)(dash - s), b = strlen(dash + 1);
    if (!a && !b)
        return false;
    return (!a || one(s, a)) && (!b || one(dash + 1, b));
}

/* Valid UTF-8 without control characters. */
static bool text_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7F)
            return false;
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (*p == 0xC0 || *p == 0xC1) || *p > 0xF4)
            return false;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n + 1;
    }
    return true;
}

/* Check one value (of several separated by '\') of a key of VR vr; names what is wrong. */
static bool value_valid(mira_vr vr, const char *v, const char **what)
{
    if (!*v || strcmp(v, "*") == 0 || strcmp(v, "\"\"") == 0)
        return true; /* universal, or empty value matching */
    switch (vr) {
    case MIRA_VR_UI:
        *what = "a UID (digits and dots, at most 64 characters, no leading zeros)";
        return mira__uid_valid(v, strlen(v));
    case MIRA_VR_DA:
        *what = "a date YYYYMMDD or a range of dates (A-B, -B, A-)";
        return range_valid(v, false);
    case MIRA_VR_TM:
        *what = "a time HH[MM[SS[.FFFFFF]]] or a range of times (A-B, -B, A-)";
        return range_valid(v, true);
    case MIRA_VR_IS:
    case MIRA_VR_US:
    case MIRA_VR_SS:
    case MIRA_VR_UL:
    case MIRA_VR_SL: {
        *what = "an integer";
        const char *p = v + (*v == '-' || *v == '+');
        return *p && strlen(p) <= 12 && digits(p, strlen(p));
    }
    default:
        *what = "text (UTF-8, no control characters)";
        return text_valid(v);
    }
}

/* An attribute ID: a keyword, or eight hex digits. */
static bool attribute_id(const char *s, size_t n, mira_tag *out)
{
    char buf[80];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (n == 8 && strspn(buf, "0123456789abcdefABCDEF") == 8) {
        *out = (mira_tag)strtoul(buf, NULL, 16);
        return true;
    }
    const mira_dict_entry *e = mira_dict_find_keyword(buf);
    if (!e)
        return false;
    *out = e->tag;
    return true;
}

static const char *tag_name(mira_tag tag)
{
    const mira_dict_entry *e = mira_dict_find(tag);
    return e && *e->keyword ? e->keyword : "(private or unknown)";
}

/* A return key (empty) unless the identifier has the attribute already. */
static bool add_return(mira__qido_query *q, mira_dataset *ds, mira_tag tag, mira_error **err)
{
    if (tag == AVAILABILITY && ds == q->identifier) {
        q->availability = true;
        return true;
    }
    if (mira_dataset_get(ds, tag))
        return true;
    mira_vr vr = mira_dict_vr(tag);
    if (vr != MIRA_VR_SQ)
        return mira_dataset_set_bytes(ds, tag, vr, NULL, 0, err) != NULL;
    const mira_tag *items = tag == 0x00400275 ? request_items_default : procedure_items_all;
    mira_element *seq = mira_dataset_set_sequence(ds, tag, err);
    mira_dataset *item = seq ? mira_element_add_item(seq, err) : NULL;
    for (size_t i = 0; item && items[i]; i++)
        if (!mira_dataset_set_bytes(item, items[i], mira_dict_vr(items[i]), NULL, 0, err))
            return false;
    return item != NULL;
}

/* Every attribute the index holds at the level (and above), for includefield=all. */
static bool add_all(mira__qido_query *q, mira_error **err)
{
    for (size_t i = 0; i < mira_dict_count(); i++) {
        const mira_dict_entry *e = mira_dict_at(i);
        if (e->mask != 0xFFFFFFFFu || !mira_archive_key_supported(q->level, e->tag))
            continue;
        if (e->tag == 0x00400275 || e->tag == 0x00081032) {
            if (mira_dataset_get(q->identifier, e->tag))
                continue;
            const mira_tag *items = e->tag == 0x00400275 ? request_items_all : procedure_items_all;
            mira_element *seq = mira_dataset_set_sequence(q->identifier, e->tag, err);
            mira_dataset *item = seq ? mira_element_add_item(seq, err) : NULL;
            for (size_t k = 0; item && items[k]; k++)
                if (!mira_dataset_set_bytes(item, items[k], mira_dict_vr(items[k]), NULL, 0, err))
                    return false;
            if (!item)
                return false;
        } else if (!add_return(q, q->identifier, e->tag, err)) {
            return false;
        }
    }
    q->availability = true;
    return true;
}

static bool bad(mira_error **err, const char *fmt, const char *a, const char *b)
{
    mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad search parameter", fmt, a, b);
    return false;
}

/* A non-negative integer parameter. */
static bool parse_count(const char *name, const char *v, uint64_t *out, mira_error **err)
{
    if (!*v || strlen(v) > 18 || !digits(v, strlen(v)))
        return bad(err, "%s: '%s' is not a non-negative integer", name, v);
    *out = strtoull(v, NULL, 10);
    return true;
}

/* One matching key: KEY=VALUE (value decoded). Repeated keys add values (matching either). */
static bool add_match(mira__qido_query *q, const char *key, size_t klen, const char *value,
                      mira_error **err)
{
    char name[160];
    snprintf(name, sizeof name, "%.*s", (int)(klen < 150 ? klen : 150), key);
    const char *dot = memchr(key, '.', klen);
    mira_tag tag, item_tag = 0;
    if (!attribute_id(key, dot ? (size_t)(dot - key) : klen, &tag) ||
        (dot && !attribute_id(dot + 1, klen - (size_t)(dot + 1 - key), &item_tag)))
        return bad(err, "'%s' is not a search parameter, a DICOM keyword or a tag%s", name,
                   " (ggggeeee)");
    if (!mira_archive_key_supported(q->level, tag))
        return bad(err, "'%s': this archive cannot match on %s at this level", name,
                   tag_name(tag));
    mira_vr vr = mira_dict_vr(tag);
    if ((vr == MIRA_VR_SQ) != (dot != NULL))
        return bad(err, "'%s': %s", name,
                   dot ? "only a sequence has item keys"
                       : "a sequence is matched by its item keys (Sequence.Attribute=value)");
    mira_dataset *ds = q->identifier;
    if (dot) {
        const mira_tag *items = tag == 0x00400275 ? request_items_all : procedure_items_all;
        size_t i = 0;
        while (items[i] && items[i] != item_tag)
            i++;
        if (!items[i])
            return bad(err, "'%s': this archive cannot match on %s in that sequence", name,
                       tag_name(item_tag));
        mira_element *seq = mira_dataset_get(ds, tag);
        if (!seq || mira_element_item_count(seq) == 0) {
            seq = mira_dataset_set_sequence(ds, tag, err);
            if (!seq || !mira_element_add_item(seq, err))
                return false;
        }
        ds = mira_element_item(seq, 0);
        tag = item_tag;
        vr = mira_dict_vr(tag);
    }
    /* split into values, check each, join with '\' */
    mira__buf joined;
    mira__buf_init(&joined);
    const mira_element *old = mira_dataset_get(ds, tag);
    if (old && mira_element_length(old) > 0) {
        char *prev = mira_element_get_text(old, NULL);
        if (prev) {
            mira__buf_puts(&joined, prev);
            mira__buf_putc(&joined, '\\');
        }
        mira_free(prev);
    }
    const char *seps = vr == MIRA_VR_UI ? ",\\" : "\\";
    const char *p = value;
    bool ok = true;
    size_t nvalues = 0;
    for (const uint8_t *c = joined.data; c && *c; c++)
        nvalues += *c == '\\';
    for (;;) {
        if (++nvalues > 100) {
            ok = bad(err, "'%s': more than %s values", name, "100");
            break;
        }
        size_t n = strcspn(p, seps);
        char one[1024];
        if (n >= sizeof one) {
            ok = bad(err, "'%s': a value is longer than %s characters", name, "1023");
            break;
        }
        memcpy(one, p, n);
        one[n] = 0;
        const char *what = "";
        if (!value_valid(vr, one, &what)) {
            char shown[64];
            snprintf(shown, sizeof shown, "%s", one);
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad search parameter",
                           "'%s': '%s%s' is not %s", name, shown, n > 60 ? "..." : "", what);
            ok = false;
            break;
        }
        mira__buf_append(&joined, one, n);
        if (!p[n])
            break;
        mira__buf_putc(&joined, '\\');
        p += n + 1;
    }
    if (ok && joined.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "search parameter");
        ok = false;
    }
    if (ok && joined.len > 65536) /* (the repetitions of a parameter, joined) */
        ok = bad(err, "'%s': the values are longer than %s characters", name, "65536");
    const char *text = joined.data ? (const char *)joined.data : "";
    if (ok && !mira_vr_is_string(vr) && *text && strcmp(text, "*") != 0) {
        /* Rows, Columns, Bits Allocated: a binary value, as the archive reads it */
        if (strchr(text, '\\')) {
            ok = bad(err, "'%s': %s takes one value", name, tag_name(tag));
        } else {
            long long x = strtoll(text, NULL, 10);
            size_t size = mira_vr_value_size(vr);
            uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16),
                            (uint8_t)(x >> 24)};
            if (!mira_dataset_set_bytes(ds, tag, vr, b, size && size <= 4 ? size : 2, err))
                ok = false;
        }
    } else if (ok && !mira_vr_is_string(vr)) {
        ok = mira_dataset_set_bytes(ds, tag, vr, NULL, 0, err) != NULL;
    } else if (ok && !mira_dataset_set_string(ds, tag, vr, text, err)) {
        ok = false;
    }
    mira__buf_cleanup(&joined);
    return ok;
}

/* includefield's value: attribute IDs separated by commas, or "all". */
static bool add_includes(mira__qido_query *q, const char *v, bool *all, mira_error **err)
{
    for (const char *p = v;;) {
        size_t n = strcspn(p, ",");
        mira_tag tag;
        if (n == 3 && memcmp(p, "all", 3) == 0) {
            *all = true;
        } else if (!attribute_id(p, n, &tag)) {
            char shown[80];
            snprintf(shown, sizeof shown, "%.*s", (int)(n < 70 ? n : 70), p);
            return bad(err, "includefield: '%s' is not a DICOM keyword or a tag%s", shown,
                       " (ggggeeee)");
        } else if (tag == AVAILABILITY) {
            q->availability = true;
        } else if (tag == 0x00081190u) {
            /* Retrieve URL: in every match already */
        } else if (!mira_archive_key_supported(q->level, tag)) {
            mira__buf_printf(&q->not_held, "%s%08X", q->not_held.len ? ", " : "", (unsigned)tag);
        } else if (!add_return(q, q->identifier, tag, err)) {
            return false;
        }
        if (!p[n])
            return true;
        p += n + 1;
    }
}

bool mira__qido_parse(mira_level level, const char *study, const char *series, const char *query,
                      size_t len, mira__qido_query *q, mira_error **err)
{
    memset(q, 0, sizeof *q);
    mira__buf_init(&q->not_held);
    q->level = level;
    q->identifier = mira_dataset_new(err);
    /* the query's text is UTF-8 (RFC 3986 percent-encodes UTF-8): said so to the archive,
     * which would otherwise read the values as the default repertoire */
    if (!q->identifier ||
        !mira_dataset_set_string(q->identifier, 0x00080005, MIRA_VR_CS, "ISO_IR 192", err))
        return false;
    bool all = false;
    const char *end = query + len;
    for (const char *p = query; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (stop > p) {
            const char *kend = eq ? eq : stop;
            char *key = mira__url_decode(p, (size_t)(kend - p), true, err);
            char *val = key ? mira__url_decode(eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0,
                                               true, err)
                            : NULL;
            bool ok = key && val;
            if (!ok) {
                mira_error_prefix(err, "query string: ");
            } else if (!*key) {
                ok = bad(err, "query string: a parameter without a name ('=%s')%s", val, "");
            } else if (strcmp(key, "limit") == 0) {
                ok = parse_count("limit", val, &q->limit, err);
                if (ok && q->limit == 0)
                    ok = bad(err, "limit: '%s' is not a positive integer%s", val, "");
            } else if (strcmp(key, "offset") == 0) {
                ok = parse_count("offset", val, &q->offset, err);
            } else if (strcmp(key, "fuzzymatching") == 0) {
                if (strcmp(val, "true") == 0)
                    q->fuzzy = true;
                else if (strcmp(val, "false") != 0)
                    ok = bad(err, "fuzzymatching: '%s' is not true or false%s", val, "");
            } else if (strcmp(key, "includefield") == 0) {
                ok = add_includes(q, val, &all, err);
            } else {
                ok = add_match(q, key, strlen(key), val, err);
            }
            mira_free(key);
            mira_free(val);
            if (!ok)
                return false;
        }
        p = amp ? amp + 1 : end;
    }
    /* the path's UIDs, which win over the same keys in the query */
    if (study && !mira_dataset_set_string(q->identifier, 0x0020000D, MIRA_VR_UI, study, err))
        return false;
    if (series && !mira_dataset_set_string(q->identifier, 0x0020000E, MIRA_VR_UI, series, err))
        return false;
    /* the default return attributes: of the level, and of the levels above that the path does
     * not name (all series of all studies come with the study's attributes) */
    const mira_tag *sets[3] = {NULL, NULL, NULL};
    size_t nsets = 0;
    if (level == MIRA_LEVEL_STUDY) {
        sets[nsets++] = study_defaults;
    } else if (level == MIRA_LEVEL_SERIES) {
        if (!study)
            sets[nsets++] = study_defaults;
        sets[nsets++] = series_defaults;
    } else {
        if (!study)
            sets[nsets++] = study_defaults;
        if (!series)
            sets[nsets++] = series_defaults;
        sets[nsets++] = instance_defaults;
    }
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; sets[s][i]; i++)
            if (!add_return(q, q->identifier, sets[s][i], err))
                return false;
    if (all && !add_all(q, err))
        return false;
    if (q->not_held.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "search parameters");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ the search */

typedef struct collect {
    mira__buf *out;
    uint64_t n, keep; /* matches seen, and how many go into the reply */
    bool availability;
    mira_error *err;
    mira__buf *studies, *series; /* the UIDs in the reply, for the audit log */
    mira_level level;
    const char *base_url; /* for Retrieve URL (0008,1190), or NULL */
} collect;

/* The text of a match's UID (owned), or NULL. */
static char *uid_of(const mira_dataset *match, mira_tag tag)
{
    mira_element *e = mira_dataset_get(match, tag);
    char *uid = e ? mira_element_get_string(e, 0, NULL) : NULL;
    if (uid && !*uid) {
        mira_free(uid);
        uid = NULL;
    }
    return uid;
}

/* Retrieve URL (0008,1190), which PS3.18 Table 10.6.3-3 returns at every level: the WADO-RS
 * URL of the match, as a JSON member (with its leading comma), into out. */
static void retrieve_url(const collect *c, const mira_dataset *match, mira__buf *out)
{
    char *st = uid_of(match, 0x0020000D);
    char *se = c->level >= MIRA_LEVEL_SERIES ? uid_of(match, 0x0020000E) : NULL;
    char *so = c->level == MIRA_LEVEL_INSTANCE ? uid_of(match, 0x00080018) : NULL;
    bool have =
        st && (c->level < MIRA_LEVEL_SERIES || se) && (c->level < MIRA_LEVEL_INSTANCE || so);
    if (have) {
        mira__buf_printf(out, ",\"00081190\":{\"vr\":\"UR\",\"Value\":[\"%s/studies/%s",
                         c->base_url, st);
        if (se)
            mira__buf_printf(out, "/series/%s", se);
        if (so)
            mira__buf_printf(out, "/instances/%s", so);
        mira__buf_puts(out, "\"]}");
    }
    mira_free(st);
    mira_free(se);
    mira_free(so);
}

/* Add the match's UID of tag to a '\\'-separated list unless it ends the list already (the
 * matches come in order, so repeats are mostly neighbours). */
static void note_uid(mira__buf *list, const mira_dataset *match, mira_tag tag)
{
    mira_element *e = mira_dataset_get(match, tag);
    char *uid = e ? mira_element_get_string(e, 0, NULL) : NULL;
    if (uid && *uid) {
        size_t n = strlen(uid);
        const char *data = (const char *)list->data;
        bool last = list->len >= n && memcmp(data + list->len - n, uid, n) == 0 &&
                    (list->len == n || data[list->len - n - 1] == '\\');
        if (!last) {
            if (list->len)
                mira__buf_putc(list, '\\');
            mira__buf_append(list, uid, n);
        }
    }
    mira_free(uid);
}

static bool take(void *ctx, const mira_dataset *match)
{
    collect *c = ctx;
    if (++c->n > c->keep)
        return false; /* the one past the maximum: it tells the reply is cut */
    note_uid(c->studies, match, 0x0020000D);
    note_uid(c->series, match, 0x0020000E);
    char *json = mira_dataset_to_json(match, NULL, &c->err);
    if (!json)
        return false;
    size_t n = strlen(json);
    mira__buf_puts(c->out, c->n > 1 ? "," : "[");
    if (n >= 2 && json[n - 1] == '}') {
        /* what the index does not hold: the URL, and the availability (every instance this
         * archive has is online); members after the indexed ones ({} stays valid: "{" then
         * ",..." is mended below) */
        mira__buf_append(c->out, json, n - 1);
        size_t at = c->out->len;
        if (c->availability)
            mira__buf_puts(c->out, ",\"00080056\":{\"vr\":\"CS\",\"Value\":[\"ONLINE\"]}");
        if (c->base_url)
            retrieve_url(c, match, c->out);
        if (n == 2 && c->out->len > at && !c->out->failed)
            memmove(c->out->data + at, c->out->data + at + 1, --c->out->len - at);
        mira__buf_putc(c->out, '}');
    } else {
        mira__buf_append(c->out, json, n);
    }
    mira_free(json);
    return !c->out->failed;
}

void mira__qido_search(mira_archive *a, uint64_t max_results, const mira__qido_query *q,
                       const char *base_url, mira__http_reply *r)
{
    if (!max_results)
        max_results = 1000;
    mira_find_options opt;
    mira_find_options_init(&opt);
    bool capped = !q->limit || q->limit > max_results;
    uint64_t keep = capped ? max_results : q->limit;
    opt.limit = capped ? keep + 1 : keep;
    opt.offset = q->offset;
    collect c = {&r->body, 0,    keep,     q->availability, NULL, &r->studies,
                 &r->series, q->level, base_url};
    mira_error *err = NULL;
    bool ok = mira_archive_find(a, q->level, q->identifier, &opt, take, &c, &err);
    if (ok && c.err) {
        err = c.err;
        c.err = NULL;
        ok = false;
    }
    if (ok && r->body.failed) {
        mira_error_set(&err, MIRA_ERR_NOMEM, NULL, "search reply");
        ok = false;
    }
    if (!ok && mira_error_get_code(err) == MIRA_ERR_LIMIT) {
        r->body.len = 0; /* too many keys and values for one query */
        mira__http_reply_error(r, 400, "%s", mira_error_get_message(err));
        mira_error_free(err);
        mira_error_free(c.err);
        return;
    }
    if (!ok) {
        r->body.len = 0;
        mira__http_reply_error(r, 500, "the search failed: %s",
                               err ? mira_error_get_message(err) : "unknown error");
        mira_error_free(err);
        mira_error_free(c.err);
        return;
    }
    if (c.n == 0) {
        r->status = 204; /* PS3.18 8.3.4.4.1: no matches, no content */
    } else {
        mira__buf_putc(&r->body, ']');
        r->status = 200;
        r->content_type = "application/dicom+json";
    }
    if (c.n > keep)
        mira__http_reply_warning(r, "The number of results exceeded the maximum supported by "
                                    "the server. Additional results can be requested.");
    if (q->fuzzy)
        mira__http_reply_warning(r, "The fuzzymatching parameter is not supported. Only "
                                    "literal matching has been performed.");
    if (q->not_held.len) {
        char *text = mira_malloc(q->not_held.len + 64);
        if (text) {
            snprintf(text, q->not_held.len + 64, "The following includefields are not held "
                     "by this archive: %s", (const char *)q->not_held.data);
            mira__http_reply_warning(r, text);
            mira_free(text);
        }
    }
    if (r->body.failed) {
        r->body.len = 0;
        mira__http_reply_error(r, 500, "out of memory");
    }
}
