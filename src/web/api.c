/* The REST API of mira serve (JSON, under /api/): what DICOMweb does not cover. */
#include "web/web_int.h"

#include "mira/deid.h"
#include "mira/hl7.h"
#include "mira/jobs.h"
#include "mira/json.h"
#include "mira/worklist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Every request under /api/ comes here after the access check (a valid token), with a consumer
 * of its body (at most API_MAX_BODY bytes: the API takes small JSON documents, never images),
 * whose finish routes it and makes the reply. Routes decide what each role may do; auth.c has
 * refused researchers every method but GET and HEAD already.
 *
 * Each resource checks, in this order, its method (405 with Allow), the role (403), the query
 * (400: a route takes only the parameters it documents, so nothing unknown is passed on), the
 * key of its path (400 for a UID that is none, a Patient ID that is not one value of LO), the
 * body's media type (415) and its JSON (400), then acts: nothing is changed before every part
 * of a request has been found good. The key of a path is one percent-decoded segment, looked
 * up exactly in the index, never used to name a file, so "..", "/" or SQL in it name nothing.
 *
 * What a request touched (the studies and series of the patient data it returned or changed)
 * goes to r->studies and r->series for the audit log that http.c writes.
 */

#define API_MAX_BODY (1024 * 1024)
#define API_MAX_SEGMENTS 4

typedef struct api_req {
    mira__api_options o; /* strings owned (copied) */
    mira_principal who;
    mira__buf body;
    bool too_large;
} api_req;

bool mira__api_route(const char *target)
{
    size_t n = strcspn(target, "?");
    return n >= 5 && memcmp(target, "/api/", 5) == 0;
}

/* ------------------------------------------------------------------ small helpers */

static bool is_method(const api_req *q, const char *m)
{
    return strcmp(q->o.method, m) == 0;
}

static void not_allowed(api_req *q, mira__http_reply *r, const char *allow)
{
    mira__http_reply_error(r, 405, "%s is not allowed here: this resource takes %s",
                           q->o.method, allow);
    r->allow = allow;
}

static bool role_in(api_req *q, mira__http_reply *r, bool admin, bool clinician,
                    const char *what)
{
    mira_role role = q->who.role;
    if ((role == MIRA_ROLE_ADMIN && admin) || (role == MIRA_ROLE_CLINICIAN && clinician))
        return true;
    mira__http_reply_error(r, 403, "%s is for %s", what,
                           clinician ? "admins and clinicians" : "admins");
    return false;
}

/* An error of the archive as a reply: 404, 409, 400 for what the caller asked wrongly or the
 * archive cannot do (a non-ASCII value into an instance of another character set), 503
 * without memory, else 500. */
static void archive_error(mira__http_reply *r, const char *what, mira_error *err)
{
    int code = mira_error_get_code(err);
    int status = code == MIRA_ERR_NOT_FOUND                              ? 404
                 : code == MIRA_ERR_CONFLICT                             ? 409
                 : code == MIRA_ERR_ARGUMENT || code == MIRA_ERR_INVALID ||
                           code == MIRA_ERR_UNSUPPORTED || code == MIRA_ERR_LIMIT
                     ? 400
                 : code == MIRA_ERR_NOMEM                                ? 503
                                                                         : 500;
    mira__http_reply_error(r, status, "%s: %s", what, mira_error_get_message(err));
    mira_error_free(err);
}

/* Finish a JSON writer into r as a reply of this status. */
static void reply_json(mira__http_reply *r, int status, mira_json_writer *w)
{
    size_t len = 0;
    char *json = w ? mira_json_writer_finish(w, &len, NULL) : NULL;
    mira_json_writer_free(w);
    if (!json) {
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    r->body.len = 0;
    mira__buf_append(&r->body, json, len); /* a failure is a 503 (body.failed) */
    mira_free(json);
    r->status = status;
    r->content_type = "application/json";
}

/* Add uid to a '\\'-separated list unless it is in it. */
static void note_uid(mira__buf *b, const char *uid)
{
    size_t n = strlen(uid);
    if (!n)
        return;
    for (size_t i = 0; i + n <= b->len;) {
        size_t e = i;
        while (e < b->len && b->data[e] != '\\')
            e++;
        if (e - i == n && memcmp(b->data + i, uid, n) == 0)
            return;
        i = e + 1;
    }
    if (b->len)
        mira__buf_putc(b, '\\');
    mira__buf_append(b, uid, n);
}

/* The trimmed text of a top-level element ("" if absent) into buf. */
static void text_of(const mira_dataset *ds, mira_tag tag, char *buf, size_t cap)
{
    buf[0] = 0;
    mira_element *e = mira_dataset_get(ds, tag);
    char *t = e ? mira_element_get_text(e, NULL) : NULL;
    if (t)
        snprintf(buf, cap, "%s", t);
    mira_free(t);
}

/* Code points of UTF-8 text (continuation bytes not counted). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* ------------------------------------------------------------------ the request target */

/* The path below /api/, cut at '/' and each segment percent-decoded (owned). */
typedef struct api_path {
    size_t n;
    char *seg[API_MAX_SEGMENTS];
} api_path;

static void path_free(api_path *p)
{
    for (size_t i = 0; i < p->n; i++)
        mira_free(p->seg[i]);
    p->n = 0;
}

/* 0: parsed; else the status of the reply made in r (404: no such resource, 400: a bad
 * escape, 503). An empty segment ("//", a trailing '/') names nothing. */
static int path_parse(const char *target, api_path *p, mira__http_reply *r)
{
    memset(p, 0, sizeof *p);
    size_t len = strcspn(target, "?");
    for (size_t i = 5; i <= len;) {
        size_t j = i;
        while (j < len && target[j] != '/')
            j++;
        if (j == i || p->n == API_MAX_SEGMENTS) {
            path_free(p);
            mira__http_reply_error(r, 404, "no such API resource");
            return 404;
        }
        mira_error *err = NULL;
        p->seg[p->n] = mira__url_decode(target + i, j - i, false, &err);
        if (!p->seg[p->n]) {
            int st = mira_error_get_code(err) == MIRA_ERR_NOMEM ? 503 : 400;
            mira__http_reply_error(r, st, "the path is not a valid URL: %s",
                                   mira_error_get_message(err));
            mira_error_free(err);
            path_free(p);
            return st;
        }
        p->n++;
        i = j + 1;
    }
    return 0;
}

static bool seg_is(const api_path *p, size_t i, const char *s)
{
    return i < p->n && strcmp(p->seg[i], s) == 0;
}

/* A query parameter a resource takes: its name, and its value as decoded (owned), NULL when
 * absent. */
typedef struct api_param {
    const char *name;
    char *value;
} api_param;

/* Parse the query string into params (names given, values filled); false with a 400 in r for
 * a parameter that is not one of them, given twice, or badly escaped. */
static bool query_parse(const char *target, api_param *params, size_t n, mira__http_reply *r)
{
    const char *qm = strchr(target, '?');
    for (const char *p = qm ? qm + 1 : ""; *p;) {
        size_t len = strcspn(p, "&");
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            char *key = mira__url_decode(p, kl, true, NULL);
            char *v = key ? mira__url_decode(eq ? eq + 1 : p + len, eq ? len - kl - 1 : 0, true,
                                             NULL)
                          : NULL;
            api_param *hit = NULL;
            for (size_t i = 0; key && v && i < n; i++)
                if (strcmp(params[i].name, key) == 0)
                    hit = &params[i];
            if (!key || !v || !hit || hit->value) {
                if (!key || !v)
                    mira__http_reply_error(r, 400, "a bad percent escape in the query");
                else if (!hit)
                    mira__http_reply_error(r, 400, "unknown query parameter '%.64s'%s", key,
                                           n ? "" : ": this resource takes none");
                else
                    mira__http_reply_error(r, 400, "the query parameter '%s' is given twice",
                                           key);
                mira_free(key);
                mira_free(v);
                return false;
            }
            hit->value = v;
            mira_free(key);
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return true;
}

static void params_free(api_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mira_free(params[i].value);
        params[i].value = NULL;
    }
}

static bool no_query(api_req *q, mira__http_reply *r)
{
    return query_parse(q->o.target, NULL, 0, r);
}

/* The body as a JSON object (owned by the caller), or NULL with the reply in r: 415 unless
 * it is labelled application/json, 400 if it is not one JSON object. */
static mira_json *json_body(api_req *q, mira__http_reply *r)
{
    const char *ct = q->o.content_type;
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (!ct || n != 16 || strncasecmp(ct, "application/json", 16) != 0) {
        mira__http_reply_error(r, 415, "the body must be application/json%s%s",
                               ct ? ", not " : "", ct ? ct : "");
        return NULL;
    }
    mira_error *err = NULL;
    mira_json *j = mira_json_parse((const char *)q->body.data, q->body.len, &err);
    if (!j) {
        mira__http_reply_error(r, 400, "the body is not valid JSON: %s",
                               err ? mira_error_get_message(err) : "empty");
        mira_error_free(err);
        return NULL;
    }
    if (mira_json_get_type(j) != MIRA_JSON_OBJECT) {
        mira__http_reply_error(r, 400, "the body must be a JSON object");
        mira_json_free(j);
        return NULL;
    }
    return j;
}

/* A member's string (without NUL), or NULL: absent (a 400 in r and *failed set when it is
 * required), or not a string (a 400 and *failed set). */
static const char *member_string(const mira_json *j, const char *key, bool required,
                                 mira__http_reply *r, bool *failed)
{
    const mira_json *v = mira_json_get(j, key);
    if (!v) {
        if (required) {
            mira__http_reply_error(r, 400, "the body needs \"%s\"", key);
            *failed = true;
        }
        return NULL;
    }
    size_t len = 0;
    const char *s = mira_json_get_string(v, &len);
    if (!s || strlen(s) != len) {
        mira__http_reply_error(r, 400, "\"%s\" must be a string (without NUL)", key);
        *failed = true;
        return NULL;
    }
    return s;
}

/* Members of an object other than the names given: a 400 in r naming the first. */
static bool only_members(const mira_json *j, const char *const *names, mira__http_reply *r)
{
    for (size_t i = 0; i < mira_json_count(j); i++) {
        const char *k = mira_json_key_at(j, i);
        bool known = false;
        for (const char *const *n = names; *n && !known; n++)
            known = strcmp(*n, k) == 0;
        if (!known) {
            mira__http_reply_error(r, 400, "\"%.64s\" is not a member of this body", k);
            return false;
        }
    }
    for (size_t i = 0; i < mira_json_count(j); i++) /* duplicate keys: ambiguous */
        for (size_t k = i + 1; k < mira_json_count(j); k++)
            if (strcmp(mira_json_key_at(j, i), mira_json_key_at(j, k)) == 0) {
                mira__http_reply_error(r, 400, "\"%.64s\" is given twice",
                                       mira_json_key_at(j, i));
                return false;
            }
    return true;
}

/* ------------------------------------------------------------------ values of attributes */

/* True if s is a valid value of vr as the API takes them: UTF-8 text, the VR's length per
 * value (values separated by '\\' where the VR has several), its characters (PS3.5 6.2), no
 * control characters but the line breaks of the text VRs. */
static bool value_valid(mira_vr vr, const char *s)
{
    bool text = vr == MIRA_VR_LT || vr == MIRA_VR_ST || vr == MIRA_VR_UT;
    bool single = text || vr == MIRA_VR_UR;
    size_t max = 0; /* per value; 0: no limit */
    const char *chars = NULL;
    switch (vr) {
    case MIRA_VR_AE: max = 16; break;
    case MIRA_VR_AS: max = 4, chars = "0123456789DWMY"; break;
    case MIRA_VR_CS: max = 16, chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _"; break;
    case MIRA_VR_DA: max = 8, chars = "0123456789"; break;
    case MIRA_VR_DS: max = 16, chars = "0123456789+-.eE "; break;
    case MIRA_VR_DT: max = 26, chars = "0123456789+-."; break;
    case MIRA_VR_IS: max = 12, chars = "0123456789+- "; break;
    case MIRA_VR_LO: max = 64; break;
    case MIRA_VR_LT: max = 10240; break;
    case MIRA_VR_PN: max = 3 * 64 + 2; break;
    case MIRA_VR_SH: max = 16; break;
    case MIRA_VR_ST: max = 1024; break;
    case MIRA_VR_TM: max = 16, chars = "0123456789."; break;
    case MIRA_VR_UI: max = 64, chars = "0123456789."; break;
    default: break;
    }
    for (const char *p = s;;) {
        size_t n = single ? strlen(p) : strcspn(p, "\\");
        if (max && utf8_chars(p, n) > max)
            return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if ((c < 0x20 || c == 0x7F) && !(text && (c == '\r' || c == '\n' || c == '\t')))
                return false;
            if (chars && !strchr(chars, c))
                return false;
        }
        if (vr == MIRA_VR_DA && n != 0 && n != 8)
            return false;
        if (vr == MIRA_VR_UI && n && !mira__uid_valid(p, n))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

/* An attribute named by keyword ("PatientName") or tag ("00100010", "(0010,0010)"): false if
 * the dictionary does not know it. */
static bool attribute_named(const char *name, mira_tag *tag, mira_vr *vr)
{
    const mira_dict_entry *e = NULL;
    if (mira_tag_parse(name, tag))
        e = mira_dict_find(*tag);
    else if ((e = mira_dict_find_keyword(name)))
        *tag = e->tag;
    if (!e || (*tag & 0x00010000u)) /* private groups have no dictionary VR to trust */
        return false;
    *vr = mira_dict_entry_vr(e);
    return *vr != MIRA_VR_UN;
}

/* ------------------------------------------------------------------ entities */

/* The entities the API manages by the key of their level. */
typedef struct entity {
    const char *name; /* in the path */
    mira_level level;
    mira_tag key;
    const char *what;
} entity;

static const entity entities[] = {
    {"patients", MIRA_LEVEL_PATIENT, 0x00100020u, "Patient ID"},
    {"studies", MIRA_LEVEL_STUDY, 0x0020000Du, "Study Instance UID"},
    {"series", MIRA_LEVEL_SERIES, 0x0020000Eu, "Series Instance UID"},
    {"instances", MIRA_LEVEL_INSTANCE, 0x00080018u, "SOP Instance UID"},
};

static const entity *entity_named(const char *name)
{
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++)
        if (strcmp(entities[i].name, name) == 0)
            return &entities[i];
    return NULL;
}

static const char *level_word(mira_level l)
{
    static const char *const w[] = {"patient", "study", "series", "instance"};
    return w[l];
}

/* A key of the path: a UID, or a Patient ID (one LO value, no padding spaces). False with a
 * 400 in r. */
static bool key_valid(const entity *e, const char *key, mira__http_reply *r)
{
    size_t n = strlen(key);
    bool ok;
    if (e->level == MIRA_LEVEL_PATIENT)
        ok = n && key[0] != ' ' && key[n - 1] != ' ' && value_valid(MIRA_VR_LO, key) &&
             !strchr(key, '\\');
    else
        ok = mira__uid_valid(key, n);
    if (!ok)
        mira__http_reply_error(r, 400, "the %s in the path is not %s", e->what,
                               e->level == MIRA_LEVEL_PATIENT ? "one Patient ID (LO)" : "a UID");
    return ok;
}

/* What a request on an entity touches: its studies and series (for the audit), found before
 * it changes. */
typedef struct touched {
    const char *patient; /* a patient's ID, matched exactly (the index matches wildcards) */
    mira__buf studies, series;
    uint64_t count;
} touched;

static bool note_touched(void *ctx, const mira_dataset *m)
{
    touched *t = ctx;
    char pid[80], study[72], series[72];
    if (t->patient) {
        text_of(m, 0x00100020u, pid, sizeof pid);
        if (strcmp(pid, t->patient) != 0)
            return true;
    }
    text_of(m, 0x0020000Du, study, sizeof study);
    text_of(m, 0x0020000Eu, series, sizeof series);
    note_uid(&t->studies, study);
    note_uid(&t->series, series);
    t->count++;
    return true;
}

/* Find what the entity holds (its series, or the instance) into t; false with the reply in r
 * (404 when it holds nothing). */
static bool find_touched(api_req *q, const entity *e, const char *key, touched *t,
                         mira__http_reply *r)
{
    memset(t, 0, sizeof *t);
    mira__buf_init(&t->studies);
    mira__buf_init(&t->series);
    t->patient = e->level == MIRA_LEVEL_PATIENT ? key : NULL;
    mira_dataset *id = mira_dataset_new(NULL);
    mira_error *err = NULL;
    bool ok = id && mira_dataset_set_string(id, 0x00100020u, MIRA_VR_LO, "", NULL) &&
              mira_dataset_set_string(id, 0x0020000Du, MIRA_VR_UI, "", NULL) &&
              mira_dataset_set_string(id, 0x0020000Eu, MIRA_VR_UI, "", NULL) &&
              mira_dataset_set_string(id, e->key, mira_dict_vr(e->key), key, NULL);
    if (!ok) {
        mira_dataset_free(id);
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    mira_find_options fo;
    mira_find_options_init(&fo);
    fo.names_case_insensitive = 0;
    mira_level at = e->level < MIRA_LEVEL_SERIES ? MIRA_LEVEL_SERIES : e->level;
    ok = mira_archive_find(q->o.archive, at, id, &fo, note_touched, t, &err);
    mira_dataset_free(id);
    if (!ok) {
        archive_error(r, "the archive could not be searched", err);
        return false;
    }
    if (t->studies.failed || t->series.failed) {
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    if (!t->count) {
        mira__http_reply_error(r, 404, "the archive holds no %s %s", level_word(e->level), key);
        return false;
    }
    return true;
}

static void touched_cleanup(touched *t)
{
    mira__buf_cleanup(&t->studies);
    mira__buf_cleanup(&t->series);
}

/* Hand what was touched to the reply, for the audit. */
static void touched_report(touched *t, mira__http_reply *r)
{
    r->studies.len = r->series.len = 0;
    mira__buf_append(&r->studies, t->studies.data ? t->studies.data : (uint8_t *)"",
                     t->studies.len);
    mira__buf_append(&r->series, t->series.data ? t->series.data : (uint8_t *)"",
                     t->series.len);
}

/* DELETE /api/{level}/{key}: the entity and everything under it. */
static void entity_delete(api_req *q, const entity *e, const char *key, mira__http_reply *r)
{
    touched t;
    if (!find_touched(q, e, key, &t, r)) {
        touched_cleanup(&t);
        return;
    }
    mira_delete_result res;
    mira_error *err = NULL;
    if (!mira_archive_delete(q->o.archive, e->level, key, &res, &err)) {
        archive_error(r, "the archive could not delete it", err);
        touched_cleanup(&t);
        return;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "level");
    mira_json_cstring(w, level_word(e->level));
    mira_json_key(w, "key");
    mira_json_cstring(w, key);
    mira_json_key(w, "deleted");
    mira_json_begin_object(w);
    mira_json_key(w, "patients");
    mira_json_uint(w, res.patients);
    mira_json_key(w, "studies");
    mira_json_uint(w, res.studies);
    mira_json_key(w, "series");
    mira_json_uint(w, res.series);
    mira_json_key(w, "instances");
    mira_json_uint(w, res.instances);
    mira_json_key(w, "bytes");
    mira_json_uint(w, res.bytes);
    mira_json_end_object(w);
    mira_json_end_object(w);
    reply_json(r, 200, w);
    touched_report(&t, r);
    touched_cleanup(&t);
}

/* One change of a modify: value (string, number or null) into changes. False with a 400. */
static bool add_change(mira_dataset *changes, const char *name, const mira_json *v,
                       mira__http_reply *r)
{
    mira_tag tag;
    mira_vr vr;
    if (!attribute_named(name, &tag, &vr)) {
        mira__http_reply_error(r, 400, "\"%.64s\" is not an attribute's keyword or tag", name);
        return false;
    }
    if (mira_dataset_get(changes, tag)) { /* by keyword and by tag, say */
        mira__http_reply_error(r, 400, "%.64s is changed twice", name);
        return false;
    }
    mira_json_type type = mira_json_get_type(v);
    bool is_string = mira_vr_is_string(vr);
    size_t size = mira_vr_value_size(vr);
    bool is_int = vr == MIRA_VR_US || vr == MIRA_VR_SS || vr == MIRA_VR_UL || vr == MIRA_VR_SL;
    if (vr == MIRA_VR_SQ || (!is_string && !is_int)) {
        mira__http_reply_error(r, 400, "%s has VR %s: the API changes text and integer "
                                       "attributes only",
                               name, mira_vr_name(vr));
        return false;
    }
    if (type == MIRA_JSON_NULL) {
        return is_string ? mira_dataset_set_string(changes, tag, vr, "", NULL) != NULL
                         : mira_dataset_set_bytes(changes, tag, vr, "", 0, NULL) != NULL;
    }
    if (type == MIRA_JSON_STRING && is_string) {
        size_t len = 0;
        const char *s = mira_json_get_string(v, &len);
        if (strlen(s) != len || !value_valid(vr, s)) {
            mira__http_reply_error(r, 400, "the value of %s is not a valid %s", name,
                                   mira_vr_name(vr));
            return false;
        }
        return mira_dataset_set_string(changes, tag, vr, s, NULL) != NULL;
    }
    if (type == MIRA_JSON_NUMBER && is_int) {
        const char *text = mira_json_get_number_text(v);
        char *end = NULL;
        long long x = strtoll(text, &end, 10);
        bool sign = vr == MIRA_VR_SS || vr == MIRA_VR_SL;
        long long lo = sign ? (size == 2 ? -32768LL : -2147483648LL) : 0;
        long long hi = size == 2 ? (sign ? 32767LL : 65535LL) : (sign ? 2147483647LL
                                                                       : 4294967295LL);
        if (*end || x < lo || x > hi) {
            mira__http_reply_error(r, 400, "%s takes an integer of %s", name, mira_vr_name(vr));
            return false;
        }
        uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
        return mira_dataset_set_bytes(changes, tag, vr, b, size, NULL) != NULL;
    }
    mira__http_reply_error(r, 400, "the value of %s must be %s or null", name,
                           is_string ? "a string" : "an integer");
    return false;
}

/* POST /api/{level}/{key}/modify {"changes": {...}, "remove": [...], "reason": "..."}. */
static void entity_modify(api_req *q, const entity *e, const char *key, mira__http_reply *r)
{
    mira_json *j = json_body(q, r);
    if (!j)
        return;
    static const char *const names[] = {"changes", "remove", "reason", NULL};
    mira_dataset *changes = mira_dataset_new(NULL);
    mira_tag remove[256];
    size_t nremove = 0;
    bool failed = !only_members(j, names, r);
    const mira_json *ch = failed ? NULL : mira_json_get(j, "changes");
    const mira_json *rm = failed ? NULL : mira_json_get(j, "remove");
    const char *reason = failed ? NULL : member_string(j, "reason", false, r, &failed);
    if (!changes) {
        mira__http_reply_error(r, 503, "out of memory");
        failed = true;
    }
    /* the values are UTF-8 (JSON): set so while they are put, as mira modify does */
    if (!failed && !mira_dataset_set_string(changes, 0x00080005u, MIRA_VR_CS, "ISO_IR 192",
                                            NULL)) {
        mira__http_reply_error(r, 503, "out of memory");
        failed = true;
    }
    if (!failed && ch && mira_json_get_type(ch) != MIRA_JSON_OBJECT) {
        mira__http_reply_error(r, 400, "\"changes\" must be an object of attribute: value");
        failed = true;
    }
    for (size_t i = 0; !failed && ch && i < mira_json_count(ch); i++) {
        for (size_t k = 0; k < i && !failed; k++)
            if (strcmp(mira_json_key_at(ch, i), mira_json_key_at(ch, k)) == 0) {
                mira__http_reply_error(r, 400, "\"%.64s\" is changed twice",
                                       mira_json_key_at(ch, i));
                failed = true;
            }
        if (!failed && strcmp(mira_json_key_at(ch, i), "SpecificCharacterSet") == 0) {
            mira__http_reply_error(r, 400, "the Specific Character Set follows the values: "
                                           "it is not changed itself");
            failed = true;
        }
        if (!failed)
            failed = !add_change(changes, mira_json_key_at(ch, i), mira_json_at(ch, i), r);
    }
    if (!failed && rm) {
        size_t n = mira_json_get_type(rm) == MIRA_JSON_ARRAY ? mira_json_count(rm) : 0;
        if (mira_json_get_type(rm) != MIRA_JSON_ARRAY || n > 256) {
            mira__http_reply_error(r, 400, "\"remove\" must be an array of at most 256 "
                                           "attribute names");
            failed = true;
        }
        for (size_t i = 0; !failed && i < n; i++) {
            const char *s = mira_json_get_string(mira_json_at(rm, i), NULL);
            mira_vr vr;
            if (!s || !attribute_named(s, &remove[nremove], &vr)) {
                mira__http_reply_error(r, 400, "\"remove\" holds something that is not an "
                                               "attribute's keyword or tag");
                failed = true;
            } else {
                nremove++;
            }
        }
    }
    if (!failed && reason && utf8_chars(reason, strlen(reason)) > 1024) {
        mira__http_reply_error(r, 400, "\"reason\" has at most 1024 characters");
        failed = true;
    }
    if (!failed)
        mira_dataset_remove(changes, 0x00080005u);
    if (!failed && mira_dataset_count(changes) == 0 && nremove == 0) {
        mira__http_reply_error(r, 400, "nothing to do: give \"changes\" or \"remove\"");
        failed = true;
    }
    touched t;
    memset(&t, 0, sizeof t);
    if (!failed && find_touched(q, e, key, &t, r)) {
        uint64_t n = 0;
        mira_error *err = NULL;
        if (!mira_archive_modify(q->o.archive, e->level, key, changes, remove, nremove, reason,
                                 &n, &err)) {
            archive_error(r, "the archive refused the change", err);
        } else {
            mira_json_writer *w = mira_json_writer_new(false);
            mira_json_begin_object(w);
            mira_json_key(w, "level");
            mira_json_cstring(w, level_word(e->level));
            mira_json_key(w, "key");
            mira_json_cstring(w, key);
            mira_json_key(w, "instances");
            mira_json_uint(w, n);
            mira_json_end_object(w);
            reply_json(r, 200, w);
            touched_report(&t, r);
        }
    }
    touched_cleanup(&t);
    mira_dataset_free(changes);
    mira_json_free(j);
}

/* ------------------------------------------------------------------ de-identified export */

/*
 * GET /api/studies/{uid}/export and /api/series/{uid}/export answer a ZIP of the entity's
 * instances, each de-identified (PS3.15 Basic Profile, mira_deid_file) with a secret made for
 * the request: UIDs and pseudonyms are consistent inside one export, and nothing links two
 * exports. The ZIP is made while it is sent (mira__http_reply.stream): each pull of the
 * server de-identifies the next instance and hands libarchive's output on, so one instance
 * at a time is held, whatever the size of the study. A failure part way (a blob unreadable)
 * cuts the reply short: the client sees a broken ZIP, never a silently incomplete one.
 */

typedef struct export_stream {
    mira_archive *archive; /* borrowed: the server's, which outlives its connections */
    char **paths;          /* the instances' blobs */
    size_t n, next;
    mira_deid_context *deid;
    mira_deid_zip *zip;
    mira__buf out; /* the ZIP's bytes not yet sent */
    size_t out_pos;
    bool closed;
    mira_log_fn log;
    void *log_ctx;
} export_stream;

static void export_free(void *ctx)
{
    export_stream *x = ctx;
    if (!x)
        return;
    mira_deid_zip_free(x->zip);
    for (size_t i = 0; i < x->n; i++)
        mira_free(x->paths[i]);
    mira_free(x->paths);
    mira_deid_context_free(x->deid);
    mira__buf_cleanup(&x->out);
    mira_free(x);
}

static bool zip_write(void *ctx, const void *p, size_t n)
{
    export_stream *x = ctx;
    return mira__buf_append(&x->out, p, n);
}

static void export_log(export_stream *x, const char *fmt, ...) MIRA_PRINTF(2, 3);
static void export_log(export_stream *x, const char *fmt, ...)
{
    if (!x->log)
        return;
    char line[700];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "http: export: ");
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    x->log(x->log_ctx, MIRA_LOG_WARNING, line);
}

/* De-identify the next instance into the ZIP. */
static bool export_one(export_stream *x)
{
    mira_error *err = NULL;
    if (mira_deid_zip_add_file(x->zip, x->paths[x->next++], NULL, &err))
        return true;
    export_log(x, "%s", mira_error_get_message(err));
    mira_error_free(err);
    return false;
}

static ssize_t export_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos; /* the server pulls in order */
    export_stream *x = ctx;
    while (x->out_pos == x->out.len) {
        x->out.len = x->out_pos = 0;
        if (x->closed)
            return -1;
        if (x->next < x->n) {
            if (!export_one(x))
                return -2;
        } else {
            x->closed = true;
            mira_error *err = NULL;
            if (!mira_deid_zip_finish(x->zip, &err)) {
                export_log(x, "%s", mira_error_get_message(err));
                mira_error_free(err);
                return -2;
            }
        }
        if (x->out.failed)
            return -2;
    }
    size_t n = x->out.len - x->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, x->out.data + x->out_pos, n);
    x->out_pos += n;
    return (ssize_t)n;
}

typedef struct path_list {
    export_stream *x;
    size_t cap;
    mira__buf *studies, *series;
    bool failed;
} path_list;

static bool note_instance(void *ctx, const mira_instance_ref *ref)
{
    path_list *l = ctx;
    export_stream *x = l->x;
    if (x->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = mira_realloc(x->paths, cap * sizeof *v);
        if (!v) {
            l->failed = true;
            return false;
        }
        x->paths = v;
        l->cap = cap;
    }
    if (!(x->paths[x->n] = mira_strdup(ref->path))) {
        l->failed = true;
        return false;
    }
    x->n++;
    note_uid(l->studies, ref->study_uid);
    note_uid(l->series, ref->series_uid);
    return true;
}

static bool note_study(void *ctx, const mira_dataset *m)
{
    text_of(m, 0x0020000Du, ctx, 72);
    return false; /* one is enough: a series is in one study */
}

/* GET /api/{studies|series}/{uid}/export?dates=...&retain_uids=... */
static void entity_export(api_req *q, const entity *e, const char *uid, api_param *params,
                          mira__http_reply *r)
{
    mira_deid_options o;
    mira_deid_options_init(&o);
    const char *dates = params[0].value, *uids = params[1].value;
    if (dates && strcmp(dates, "remove") != 0 && strcmp(dates, "full") != 0 &&
        strcmp(dates, "modified") != 0) {
        mira__http_reply_error(r, 400, "dates is remove, full or modified");
        return;
    }
    if (uids && strcmp(uids, "true") != 0 && strcmp(uids, "false") != 0) {
        mira__http_reply_error(r, 400, "retain_uids is true or false");
        return;
    }
    o.dates = !dates || strcmp(dates, "remove") == 0 ? MIRA_DEID_DATES_REMOVE
              : strcmp(dates, "full") == 0           ? MIRA_DEID_DATES_FULL
                                                     : MIRA_DEID_DATES_MODIFIED;
    o.retain_uids = uids && strcmp(uids, "true") == 0;
    char study[72] = "";
    mira_error *err = NULL;
    if (e->level == MIRA_LEVEL_STUDY) {
        snprintf(study, sizeof study, "%s", uid);
    } else {
        mira_dataset *id = mira_dataset_new(NULL);
        mira_find_options fo;
        mira_find_options_init(&fo);
        bool ok = id && mira_dataset_set_string(id, 0x0020000Eu, MIRA_VR_UI, uid, NULL) &&
                  mira_dataset_set_string(id, 0x0020000Du, MIRA_VR_UI, "", NULL);
        ok = ok && mira_archive_find(q->o.archive, MIRA_LEVEL_SERIES, id, &fo, note_study,
                                     study, &err);
        mira_dataset_free(id);
        if (!ok) {
            if (err)
                archive_error(r, "the archive could not be searched", err);
            else
                mira__http_reply_error(r, 503, "out of memory");
            return;
        }
    }
    export_stream *x = mira_calloc(1, sizeof *x);
    if (!x) {
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    mira__buf_init(&x->out);
    x->archive = q->o.archive;
    x->log = q->o.log;
    x->log_ctx = q->o.log_ctx;
    path_list l = {x, 0, &r->studies, &r->series, false};
    if (*study && !mira_archive_instances(q->o.archive, study,
                                          e->level == MIRA_LEVEL_SERIES ? uid : NULL, NULL,
                                          false, note_instance, &l, &err)) {
        archive_error(r, "the archive could not list the instances", err);
        export_free(x);
        return;
    }
    if (l.failed) {
        mira__http_reply_error(r, 503, "out of memory");
        export_free(x);
        return;
    }
    if (!x->n) {
        r->studies.len = r->series.len = 0;
        mira__http_reply_error(r, 404, "the archive holds no %s %s", level_word(e->level), uid);
        export_free(x);
        return;
    }
    x->deid = mira_deid_context_new(&o, &err);
    x->zip = x->deid ? mira_deid_zip_new(x->deid, zip_write, x, &err) : NULL;
    if (!x->zip) {
        mira__http_reply_error(r, 503, "the export could not be started%s%s", err ? ": " : "",
                               err ? mira_error_get_message(err) : "");
        mira_error_free(err);
        r->studies.len = r->series.len = 0;
        export_free(x);
        return;
    }
    r->status = 200;
    r->content_type = "application/zip";
    r->cache_control = "no-store";
    r->stream = export_read;
    r->stream_free = export_free;
    r->stream_ctx = x;
    r->stream_size = UINT64_MAX;
}

/* ------------------------------------------------------------------ the worklist */

/* The fields of an entry given by name in POST /api/worklist, as `mira worklist add` names
 * them (src/cli/cmd_worklist.c). */
static const struct wl_field {
    const char *name;
    mira_tag tag;
    mira_vr vr;
    bool in_step; /* inside the Scheduled Procedure Step Sequence item */
} wl_fields[] = {
    {"patient_id", 0x00100020u, MIRA_VR_LO, false},
    {"patient_name", 0x00100010u, MIRA_VR_PN, false},
    {"birth_date", 0x00100030u, MIRA_VR_DA, false},
    {"sex", 0x00100040u, MIRA_VR_CS, false},
    {"accession", 0x00080050u, MIRA_VR_SH, false},
    {"study_uid", 0x0020000Du, MIRA_VR_UI, false},
    {"procedure", 0x00321060u, MIRA_VR_LO, false},
    {"procedure_id", 0x00401001u, MIRA_VR_SH, false},
    {"referring", 0x00080090u, MIRA_VR_PN, false},
    {"modality", 0x00080060u, MIRA_VR_CS, true},
    {"station_aet", 0x00400001u, MIRA_VR_AE, true},
    {"station_name", 0x00400010u, MIRA_VR_SH, true},
    {"date", 0x00400002u, MIRA_VR_DA, true},
    {"time", 0x00400003u, MIRA_VR_TM, true},
    {"physician", 0x00400006u, MIRA_VR_PN, true},
    {"sps_id", 0x00400009u, MIRA_VR_SH, true},
    {"sps_description", 0x00400007u, MIRA_VR_LO, true},
    {"location", 0x00400011u, MIRA_VR_SH, true},
    {"status", 0x00400020u, MIRA_VR_CS, true},
};
#define WL_NFIELDS (sizeof wl_fields / sizeof wl_fields[0])

static void put_field(mira_json_writer *w, const char *key, const char *v)
{
    mira_json_key(w, key);
    mira_json_cstring(w, v ? v : "");
}

typedef struct wl_out {
    mira_json_writer *w;
    mira__buf *studies;
} wl_out;

static bool write_entry(void *ctx, const mira_worklist_entry *e)
{
    wl_out *o = ctx;
    mira_json_writer *w = o->w;
    mira_json_begin_object(w);
    mira_json_key(w, "id");
    mira_json_int(w, e->id);
    put_field(w, "accession", e->accession);
    put_field(w, "requested_procedure_id", e->requested_procedure_id);
    put_field(w, "sps_id", e->sps_id);
    put_field(w, "patient_id", e->patient_id);
    put_field(w, "patient_name", e->patient_name);
    put_field(w, "modality", e->modality);
    put_field(w, "station_aet", e->station_aet);
    put_field(w, "start_date", e->start_date);
    put_field(w, "start_time", e->start_time);
    put_field(w, "performing_physician", e->performing_physician);
    put_field(w, "procedure_description", e->procedure_description);
    put_field(w, "study_uid", e->study_uid);
    put_field(w, "status", e->status);
    put_field(w, "source", e->source);
    put_field(w, "placer_order", e->placer_order);
    put_field(w, "filler_order", e->filler_order);
    put_field(w, "linked_study_uid", e->linked_study_uid);
    put_field(w, "mpps_uid", e->mpps_uid);
    mira_json_key(w, "item");
    char *item = e->item ? mira_dataset_to_json(e->item, NULL, NULL) : NULL;
    if (item)
        mira_json_raw(w, item, strlen(item));
    else
        mira_json_null(w);
    mira_free(item);
    mira_json_end_object(w);
    note_uid(o->studies, e->study_uid ? e->study_uid : "");
    return true;
}

static void worklist_list(api_req *q, mira__http_reply *r)
{
    wl_out o = {mira_json_writer_new(false), &r->studies};
    if (!o.w) {
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    mira_json_begin_array(o.w);
    mira_error *err = NULL;
    bool ok = mira_worklist_list(q->o.archive, write_entry, &o, &err);
    mira_json_end_array(o.w);
    if (!ok) {
        mira_json_writer_free(o.w);
        r->studies.len = 0;
        archive_error(r, "the worklist could not be read", err);
        return;
    }
    reply_json(r, 200, o.w);
}

static void worklist_add(api_req *q, mira__http_reply *r)
{
    mira_json *j = json_body(q, r);
    if (!j)
        return;
    const char *values[WL_NFIELDS] = {0};
    bool failed = false;
    for (size_t i = 0; !failed && i < mira_json_count(j); i++) {
        const char *k = mira_json_key_at(j, i);
        const struct wl_field *f = NULL;
        for (size_t n = 0; n < WL_NFIELDS && !f; n++)
            if (strcmp(wl_fields[n].name, k) == 0)
                f = &wl_fields[n];
        size_t len = 0;
        const char *s = f ? mira_json_get_string(mira_json_at(j, i), &len) : NULL;
        if (!f) {
            mira__http_reply_error(r, 400, "\"%.64s\" is not a field of a worklist entry", k);
            failed = true;
        } else if (values[f - wl_fields]) {
            mira__http_reply_error(r, 400, "\"%s\" is given twice", k);
            failed = true;
        } else if (!s || strlen(s) != len || !value_valid(f->vr, s) || strchr(s, '\\')) {
            mira__http_reply_error(r, 400, "\"%s\" must be one valid %s value (a string)", k,
                                   mira_vr_name(f->vr));
            failed = true;
        } else {
            values[f - wl_fields] = s;
        }
    }
    if (!failed && !(values[0] && *values[0]) && !(values[1] && *values[1])) {
        mira__http_reply_error(r, 400, "an entry needs patient_id or patient_name");
        failed = true;
    }
    mira_dataset *ds = failed ? NULL : mira_dataset_new(NULL);
    if (!failed) {
        bool ok = ds && mira_dataset_set_string(ds, 0x00080005u, MIRA_VR_CS, "ISO_IR 192", NULL);
        mira_element *seq = ok ? mira_dataset_set_sequence(ds, 0x00400100u, NULL) : NULL;
        mira_dataset *sps = seq ? mira_element_add_item(seq, NULL) : NULL;
        ok = sps != NULL;
        for (size_t i = 0; ok && i < WL_NFIELDS; i++) {
            const char *v = values[i];
            if (!v && strcmp(wl_fields[i].name, "procedure_id") == 0)
                v = values[4]; /* the accession number, as mira worklist add does */
            if (v)
                ok = mira_dataset_set_string(wl_fields[i].in_step ? sps : ds, wl_fields[i].tag,
                                             wl_fields[i].vr, v, NULL) != NULL;
        }
        int64_t id = 0;
        mira_error *err = NULL;
        mira_worklist_add_options wo = {"api", NULL, NULL};
        if (!ok) {
            mira__http_reply_error(r, 503, "out of memory");
        } else if (!mira_worklist_add(q->o.archive, ds, &wo, &id, &err)) {
            archive_error(r, "the entry was refused", err);
        } else {
            mira_json_writer *w = mira_json_writer_new(false);
            mira_json_begin_object(w);
            mira_json_key(w, "id");
            mira_json_int(w, id);
            mira_json_end_object(w);
            reply_json(r, 201, w);
        }
    }
    mira_dataset_free(ds);
    mira_json_free(j);
}

static void worklist_delete(api_req *q, const char *idtext, mira__http_reply *r)
{
    char *end = NULL;
    long long id = strtoll(idtext, &end, 10);
    if (!*idtext || strspn(idtext, "0123456789") != strlen(idtext) || strlen(idtext) > 18 ||
        id < 1) {
        mira__http_reply_error(r, 400, "a worklist entry's id is a positive integer");
        return;
    }
    mira_error *err = NULL;
    if (!mira_worklist_delete(q->o.archive, id, &err)) {
        archive_error(r, "the entry could not be deleted", err);
        return;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "deleted");
    mira_json_int(w, id);
    mira_json_end_object(w);
    reply_json(r, 200, w);
}

/* ------------------------------------------------------------------ users */

static bool write_user(void *ctx, const mira_user_info *u)
{
    mira_json_writer *w = ctx;
    mira_json_begin_object(w);
    put_field(w, "name", u->name);
    put_field(w, "role", mira_role_name(u->role));
    put_field(w, "created_at", u->created_at);
    mira_json_key(w, "tokens");
    mira_json_uint(w, u->tokens);
    mira_json_end_object(w);
    return true;
}

static void users_list(api_req *q, mira__http_reply *r)
{
    mira_json_writer *w = mira_json_writer_new(false);
    if (!w) {
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    mira_json_begin_array(w);
    mira_error *err = NULL;
    bool ok = mira_user_list(q->o.archive, write_user, w, &err);
    mira_json_end_array(w);
    if (!ok) {
        mira_json_writer_free(w);
        archive_error(r, "the users could not be listed", err);
        return;
    }
    reply_json(r, 200, w);
}

/* A password of the body: 8 to 1024 characters, at most 1024 bytes. */
static bool password_valid(const char *p, mira__http_reply *r)
{
    size_t n = strlen(p);
    if (utf8_chars(p, n) < MIRA_PASSWORD_MIN || n > MIRA_PASSWORD_MAX) {
        mira__http_reply_error(r, 400, "a password has %d to %d characters (bytes of UTF-8)",
                               MIRA_PASSWORD_MIN, MIRA_PASSWORD_MAX);
        return false;
    }
    return true;
}

static void users_add(api_req *q, mira__http_reply *r)
{
    mira_json *j = json_body(q, r);
    if (!j)
        return;
    static const char *const names[] = {"name", "role", "password", NULL};
    bool failed = !only_members(j, names, r);
    const char *name = failed ? NULL : member_string(j, "name", true, r, &failed);
    const char *role = failed ? NULL : member_string(j, "role", true, r, &failed);
    const char *password = failed ? NULL : member_string(j, "password", true, r, &failed);
    mira_role ro = MIRA_ROLE_RESEARCHER;
    if (!failed && !mira_user_name_valid(name)) {
        mira__http_reply_error(r, 400, "a user name is 1 to 64 ASCII letters, digits and . _ - @");
        failed = true;
    }
    if (!failed && !mira_role_from_name(role, &ro)) {
        mira__http_reply_error(r, 400, "the role is admin, clinician or researcher");
        failed = true;
    }
    if (!failed && password_valid(password, r)) {
        mira_error *err = NULL;
        if (!mira_user_add(q->o.archive, name, ro, password, &err)) {
            archive_error(r, "the user could not be added", err);
        } else {
            mira_json_writer *w = mira_json_writer_new(false);
            mira_json_begin_object(w);
            put_field(w, "name", name);
            put_field(w, "role", mira_role_name(ro));
            mira_json_end_object(w);
            reply_json(r, 201, w);
        }
    }
    mira_json_free(j);
}

static bool user_key_valid(const char *name, mira__http_reply *r)
{
    if (mira_user_name_valid(name))
        return true;
    mira__http_reply_error(r, 400, "a user name is 1 to 64 ASCII letters, digits and . _ - @");
    return false;
}

static void users_delete(api_req *q, const char *name, mira__http_reply *r)
{
    if (strcmp(name, q->who.user) == 0) { /* so that an archive never loses its last admin */
        mira__http_reply_error(r, 409, "you cannot remove your own account");
        return;
    }
    mira_error *err = NULL;
    if (!mira_user_remove(q->o.archive, name, &err)) {
        archive_error(r, "the user could not be removed", err);
        return;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    put_field(w, "deleted", name);
    mira_json_end_object(w);
    reply_json(r, 200, w);
}

static void users_password(api_req *q, const char *name, mira__http_reply *r)
{
    if (strcmp(name, q->who.user) == 0) { /* it would revoke the token of this request */
        mira__http_reply_error(r, 409, "your own password is changed with mira user passwd: "
                                       "here it would revoke the token in use");
        return;
    }
    mira_json *j = json_body(q, r);
    if (!j)
        return;
    static const char *const names[] = {"password", NULL};
    bool failed = !only_members(j, names, r);
    const char *password = failed ? NULL : member_string(j, "password", true, r, &failed);
    if (!failed && password_valid(password, r)) {
        mira_error *err = NULL;
        if (!mira_user_set_password(q->o.archive, name, password, &err)) {
            archive_error(r, "the password could not be changed", err);
        } else {
            mira_json_writer *w = mira_json_writer_new(false);
            mira_json_begin_object(w);
            put_field(w, "name", name);
            mira_json_key(w, "tokens_revoked");
            mira_json_bool(w, true);
            mira_json_end_object(w);
            reply_json(r, 200, w);
        }
    }
    mira_json_free(j);
}

/* ------------------------------------------------------------------ jobs */

/*
 * /api/jobs: the job queue of the archive (include/mira/jobs.h), run by the workers of mira
 * serve. Roles: every role may run export jobs (their ZIPs are de-identified); send and check
 * are for admins and clinicians (a send moves identified data out; a check reads every blob).
 * Admins see and cancel every job, the others their own (another's is a 404: it is not theirs
 * to know of). The body is {"kind", one selection: "patient" | "study" ["series"] | "series" |
 * "instances": [...] (a check may have none), "destination" (send only), "dates" and
 * "retain_uids" (export only, as the synchronous export's query takes them)}; the selection must
 * name something the archive holds (404) when the job is submitted.
 */

#define API_JOB_MAX_INSTANCES 10000

static bool job_id_valid(const char *idtext, int64_t *id, mira__http_reply *r)
{
    if (!*idtext || strspn(idtext, "0123456789") != strlen(idtext) || strlen(idtext) > 18 ||
        (*id = strtoll(idtext, NULL, 10)) < 1) {
        mira__http_reply_error(r, 400, "a job's id is a positive integer");
        return false;
    }
    return true;
}

static void write_job(mira_json_writer *w, const mira_job *j)
{
    char *t = mira_job_to_json(j);
    if (t)
        mira_json_raw(w, t, strlen(t));
    else
        mira_json_null(w); /* the writer's own failure comes with the next allocation */
    mira_free(t);
}

/* May this principal see the job? Admins every one, others their own. */
static bool job_visible(const api_req *q, const mira_job *j)
{
    return q->who.role == MIRA_ROLE_ADMIN || strcmp(j->created_by ? j->created_by : "",
                                                    q->who.user) == 0;
}

/* The job of the path (owned), or NULL with a reply (404 also for another's job). */
static mira_job *job_of_path(api_req *q, const char *idtext, mira__http_reply *r)
{
    int64_t id = 0;
    if (!job_id_valid(idtext, &id, r))
        return NULL;
    mira_error *err = NULL;
    mira_job *j = mira_job_get(q->o.archive, id, &err);
    if (!j) {
        archive_error(r, "the job could not be read", err);
        return NULL;
    }
    if (!job_visible(q, j)) {
        mira__http_reply_error(r, 404, "there is no job %lld", (long long)id);
        mira_job_free(j);
        return NULL;
    }
    return j;
}

static void reply_job(mira__http_reply *r, int status, const mira_job *j)
{
    mira_json_writer *w = mira_json_writer_new(false);
    if (w)
        write_job(w, j);
    reply_json(r, status, w);
}

typedef struct job_out {
    mira_json_writer *w;
} job_out;

static bool write_listed(void *ctx, const mira_job *j)
{
    write_job(((job_out *)ctx)->w, j);
    return true;
}

/* GET /api/jobs?state=&limit=&offset= */
static void jobs_list(api_req *q, mira__http_reply *r)
{
    api_param params[3] = {{"state", NULL}, {"limit", NULL}, {"offset", NULL}};
    mira_job_list_options lo;
    mira_job_list_options_init(&lo);
    bool ok = query_parse(q->o.target, params, 3, r);
    mira_job_state st;
    if (ok && params[0].value) {
        if (!mira_job_state_from_name(params[0].value, &st)) {
            mira__http_reply_error(r, 400, "state is queued, running, done, failed or "
                                           "cancelled");
            ok = false;
        } else {
            lo.state = (int)st;
        }
    }
    for (int i = 1; ok && i < 3; i++) {
        const char *v = params[i].value;
        if (!v)
            continue;
        if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 9 ||
            (i == 1 && strtoull(v, NULL, 10) < 1)) {
            mira__http_reply_error(r, 400, "%s is %s integer below 10^9", params[i].name,
                                   i == 1 ? "a positive" : "a non-negative");
            ok = false;
        } else if (i == 1) {
            lo.limit = strtoull(v, NULL, 10);
        } else {
            lo.offset = strtoull(v, NULL, 10);
        }
    }
    if (ok && !lo.limit)
        lo.limit = 1000;
    if (ok && q->who.role != MIRA_ROLE_ADMIN)
        lo.created_by = q->who.user;
    job_out o = {ok ? mira_json_writer_new(false) : NULL};
    if (ok && !o.w) {
        mira__http_reply_error(r, 503, "out of memory");
        ok = false;
    }
    if (ok) {
        mira_json_begin_array(o.w);
        mira_error *err = NULL;
        if (!mira_job_list(q->o.archive, &lo, write_listed, &o, &err)) {
            mira_json_writer_free(o.w);
            archive_error(r, "the jobs could not be listed", err);
        } else {
            mira_json_end_array(o.w);
            reply_json(r, 200, o.w);
        }
    }
    params_free(params, 3);
}

/* True if every SOP Instance UID of inst is held (404 in r for the first that is not). */
static bool instances_held(api_req *q, const mira_json *inst, mira__http_reply *r)
{
    for (size_t i = 0; i < mira_json_count(inst); i++) {
        const char *sop = mira_json_get_string(mira_json_at(inst, i), NULL);
        mira_error *err = NULL;
        char *path = mira_archive_instance_path(q->o.archive, sop, &err);
        if (!path) {
            archive_error(r, "an instance of the selection", err);
            return false;
        }
        mira_free(path);
    }
    return true;
}

/* POST /api/jobs */
static void jobs_submit(api_req *q, mira__http_reply *r)
{
    mira_json *j = json_body(q, r);
    if (!j)
        return;
    static const char *const names[] = {"kind",      "patient",     "study", "series",
                                        "instances", "destination", "dates", "retain_uids",
                                        NULL};
    bool failed = !only_members(j, names, r);
    const char *kind = failed ? NULL : member_string(j, "kind", true, r, &failed);
    const char *patient = failed ? NULL : member_string(j, "patient", false, r, &failed);
    const char *study = failed ? NULL : member_string(j, "study", false, r, &failed);
    const char *series = failed ? NULL : member_string(j, "series", false, r, &failed);
    const char *dest = failed ? NULL : member_string(j, "destination", false, r, &failed);
    const char *dates = failed ? NULL : member_string(j, "dates", false, r, &failed);
    const mira_json *inst = failed ? NULL : mira_json_get(j, "instances");
    const mira_json *retain = failed ? NULL : mira_json_get(j, "retain_uids");
    bool is_export = kind && strcmp(kind, MIRA_JOB_EXPORT) == 0;
    bool is_send = kind && strcmp(kind, MIRA_JOB_SEND) == 0;
    bool is_check = kind && strcmp(kind, MIRA_JOB_CHECK) == 0;
    if (!failed && !is_export && !is_send && !is_check) {
        mira__http_reply_error(r, 400, "\"kind\" is export, send or check");
        failed = true;
    }
    if (!failed && !is_export &&
        !role_in(q, r, true, true, is_send ? "a send job" : "a check job"))
        failed = true;
    if (!failed && (dates || retain) && !is_export) {
        mira__http_reply_error(r, 400, "only an export job has \"dates\" and \"retain_uids\"");
        failed = true;
    }
    if (!failed && dates && strcmp(dates, "remove") != 0 && strcmp(dates, "full") != 0 &&
        strcmp(dates, "modified") != 0) {
        mira__http_reply_error(r, 400, "\"dates\" is remove, full or modified");
        failed = true;
    }
    if (!failed && retain && mira_json_get_type(retain) != MIRA_JSON_TRUE &&
        mira_json_get_type(retain) != MIRA_JSON_FALSE) {
        mira__http_reply_error(r, 400, "\"retain_uids\" is true or false");
        failed = true;
    }
    if (!failed && patient && (study || series || inst)) {
        mira__http_reply_error(r, 400, "a selection is one of \"patient\", \"study\" (with "
                                       "\"series\" or not), \"series\" or \"instances\"");
        failed = true;
    }
    if (!failed && inst && (study || series)) {
        mira__http_reply_error(r, 400, "a selection is one of \"patient\", \"study\" (with "
                                       "\"series\" or not), \"series\" or \"instances\"");
        failed = true;
    }
    if (!failed && patient) {
        size_t n = strlen(patient);
        if (!n || patient[0] == ' ' || patient[n - 1] == ' ' ||
            !value_valid(MIRA_VR_LO, patient) || strpbrk(patient, "\\*?")) {
            mira__http_reply_error(r, 400, "\"patient\" is one Patient ID (LO, without "
                                           "wildcards)");
            failed = true;
        }
    }
    if (!failed && study && !mira__uid_valid(study, strlen(study))) {
        mira__http_reply_error(r, 400, "\"study\" is not a UID");
        failed = true;
    }
    if (!failed && series && !mira__uid_valid(series, strlen(series))) {
        mira__http_reply_error(r, 400, "\"series\" is not a UID");
        failed = true;
    }
    if (!failed && inst) {
        size_t n = mira_json_get_type(inst) == MIRA_JSON_ARRAY ? mira_json_count(inst) : 0;
        if (!n || n > API_JOB_MAX_INSTANCES) {
            mira__http_reply_error(r, 400, "\"instances\" is an array of 1 to %d SOP Instance "
                                           "UIDs",
                                   API_JOB_MAX_INSTANCES);
            failed = true;
        }
        for (size_t i = 0; !failed && i < n; i++) {
            size_t len = 0;
            const char *s = mira_json_get_string(mira_json_at(inst, i), &len);
            if (!s || strlen(s) != len || !mira__uid_valid(s, len)) {
                mira__http_reply_error(r, 400, "\"instances\" holds something that is not a "
                                               "UID");
                failed = true;
            }
        }
    }
    bool any = patient || study || series || inst;
    if (!failed && !any && !is_check) {
        mira__http_reply_error(r, 400, "an %s job needs a selection: \"patient\", \"study\", "
                                       "\"series\" or \"instances\"",
                               kind);
        failed = true;
    }
    if (!failed && is_send != (dest != NULL)) {
        mira__http_reply_error(r, 400, is_send ? "a send job needs \"destination\", a peer's "
                                                 "AE title"
                                               : "only a send job has a \"destination\"");
        failed = true;
    }
    if (!failed && is_send) {
        bool known = false;
        for (size_t i = 0; i < q->o.njob_destinations && !known; i++)
            known = strcmp(q->o.job_destinations[i], dest) == 0;
        if (!known) {
            mira__http_reply_error(r, 400, "\"%.16s\" is not a destination this server knows "
                                           "(its --peer and dimse.peers)",
                                   dest);
            failed = true;
        }
    }
    /* the selection must name something held: found now, for the audit too */
    touched t;
    memset(&t, 0, sizeof t);
    bool have_touched = false;
    if (!failed && (patient || study || series)) {
        const entity *e = entity_named(patient ? "patients" : series ? "series" : "studies");
        const char *key = patient ? patient : series ? series : study;
        have_touched = true;
        failed = !find_touched(q, e, key, &t, r);
        if (!failed && study && series) { /* the series must be of that study */
            bool in = false;
            size_t n = strlen(study);
            for (size_t i = 0; i < t.studies.len && !in;) {
                size_t end = i;
                while (end < t.studies.len && t.studies.data[end] != '\\')
                    end++;
                in = end - i == n && memcmp(t.studies.data + i, study, n) == 0;
                i = end + 1;
            }
            if (!in) {
                mira__http_reply_error(r, 404, "the archive holds no series %s in study %s",
                                       series, study);
                failed = true;
            }
        }
    }
    if (!failed && inst)
        failed = !instances_held(q, inst, r);
    char *params = NULL;
    if (!failed) {
        mira_json_writer *w = mira_json_writer_new(false);
        mira_json_begin_object(w);
        if (patient)
            put_field(w, "patient", patient);
        if (study)
            put_field(w, "study", study);
        if (series)
            put_field(w, "series", series);
        if (inst) {
            mira_json_key(w, "instances");
            mira_json_begin_array(w);
            for (size_t i = 0; i < mira_json_count(inst); i++)
                mira_json_cstring(w, mira_json_get_string(mira_json_at(inst, i), NULL));
            mira_json_end_array(w);
        }
        if (dest)
            put_field(w, "destination", dest);
        if (dates)
            put_field(w, "dates", dates);
        if (retain) {
            mira_json_key(w, "retain_uids");
            mira_json_bool(w, mira_json_get_type(retain) == MIRA_JSON_TRUE);
        }
        mira_json_end_object(w);
        params = w ? mira_json_writer_finish(w, NULL, NULL) : NULL;
        mira_json_writer_free(w);
        if (!params) {
            mira__http_reply_error(r, 503, "out of memory");
            failed = true;
        }
    }
    int64_t id = 0;
    mira_error *err = NULL;
    mira_job *job = NULL;
    if (!failed && !mira_job_submit(q->o.archive, kind, params, q->who.user, &id, &err)) {
        archive_error(r, "the job could not be queued", err);
    } else if (!failed) {
        if (q->o.job_queued)
            q->o.job_queued(q->o.job_queued_ctx);
        job = mira_job_get(q->o.archive, id, &err);
        if (!job) {
            archive_error(r, "the job was queued but could not be read", err);
        } else {
            reply_job(r, 201, job);
            if (have_touched)
                touched_report(&t, r);
        }
    }
    mira_job_free(job);
    mira_free(params);
    touched_cleanup(&t);
    mira_json_free(j);
}

/* DELETE /api/jobs/{id}: cancel. 200 with the job cancelled (it was queued), 202 with the job
 * still running (its worker stops at its next instance), 409 when it has ended. */
static void jobs_cancel(api_req *q, const char *idtext, mira__http_reply *r)
{
    mira_job *j = job_of_path(q, idtext, r);
    if (!j)
        return;
    mira_job_state after;
    mira_error *err = NULL;
    int64_t id = j->id;
    mira_job_free(j);
    if (!mira_job_cancel(q->o.archive, id, &after, &err)) {
        archive_error(r, "the job could not be cancelled", err);
        return;
    }
    j = mira_job_get(q->o.archive, id, &err);
    if (!j) {
        archive_error(r, "the job could not be read", err);
        return;
    }
    reply_job(r, j->state == MIRA_JOB_RUNNING ? 202 : 200, j);
    mira_job_free(j);
}

/* A file sent as it is read. */
typedef struct file_stream {
    int fd;
} file_stream;

static ssize_t file_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    file_stream *f = ctx;
    ssize_t n = pread(f->fd, buf, max, (off_t)pos);
    return n > 0 ? n : n == 0 ? -1 : -2;
}

static void file_free(void *ctx)
{
    file_stream *f = ctx;
    if (f && f->fd >= 0)
        close(f->fd);
    mira_free(f);
}

/* GET /api/jobs/{id}/result: an export's ZIP (409 before it is done). */
static void jobs_result(api_req *q, const char *idtext, mira__http_reply *r)
{
    mira_job *j = job_of_path(q, idtext, r);
    if (!j)
        return;
    if (strcmp(j->kind, MIRA_JOB_EXPORT) != 0) {
        mira__http_reply_error(r, 404, "a %s job has no file: its result is in GET "
                                       "/api/jobs/%lld",
                               j->kind, (long long)j->id);
    } else if (j->state != MIRA_JOB_DONE) {
        mira__http_reply_error(r, 409, "job %lld is %s: its ZIP is made once it is done",
                               (long long)j->id, mira_job_state_name(j->state));
    } else {
        char *path = mira_job_export_path(q->o.archive, j->id);
        file_stream *f = path ? mira_calloc(1, sizeof *f) : NULL;
        struct stat st;
        if (f)
            f->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (!f) {
            mira__http_reply_error(r, 503, "out of memory");
        } else if (f->fd < 0 || fstat(f->fd, &st) != 0) {
            mira__http_reply_error(r, 410, "the ZIP of job %lld is gone", (long long)j->id);
            file_free(f);
        } else {
            r->status = 200;
            r->content_type = "application/zip";
            r->cache_control = "no-store";
            r->stream = file_read;
            r->stream_free = file_free;
            r->stream_ctx = f;
            r->stream_size = (uint64_t)st.st_size;
        }
        mira_free(path);
    }
    mira_job_free(j);
}

static void route_jobs(api_req *q, const api_path *p, mira__http_reply *r)
{
    bool reading = is_method(q, "GET") || is_method(q, "HEAD");
    if (p->n == 1) {
        if (!reading && !is_method(q, "POST"))
            not_allowed(q, r, "GET, HEAD, POST");
        else if (reading)
            jobs_list(q, r);
        else if (no_query(q, r))
            jobs_submit(q, r);
    } else if (p->n == 2) {
        if (!reading && !is_method(q, "DELETE")) {
            not_allowed(q, r, "GET, HEAD, DELETE");
        } else if (no_query(q, r)) {
            if (reading) {
                mira_job *j = job_of_path(q, p->seg[1], r);
                if (j)
                    reply_job(r, 200, j);
                mira_job_free(j);
            } else {
                jobs_cancel(q, p->seg[1], r);
            }
        }
    } else if (p->n == 3 && seg_is(p, 2, "result")) {
        if (!reading)
            not_allowed(q, r, "GET, HEAD");
        else if (no_query(q, r))
            jobs_result(q, p->seg[1], r);
    } else {
        mira__http_reply_error(r, 404, "no such API resource");
    }
}

/* ------------------------------------------------------------------ statistics */

/* GET /api/stats: counts and bytes of the archive. */
static void get_stats(api_req *q, mira__http_reply *r)
{
    mira_archive_stats st;
    mira_error *err = NULL;
    if (!mira_archive_get_stats(q->o.archive, &st, &err)) {
        archive_error(r, "the archive could not be counted", err);
        return;
    }
    mira__buf_printf(&r->body,
                     "{\"patients\":%llu,\"studies\":%llu,\"series\":%llu,\"instances\":%llu,"
                     "\"bytes\":%llu,\"index\":\"%s\"}",
                     (unsigned long long)st.patients, (unsigned long long)st.studies,
                     (unsigned long long)st.series, (unsigned long long)st.instances,
                     (unsigned long long)st.bytes, mira_archive_index_kind(q->o.archive));
    r->status = 200;
    r->content_type = "application/json";
}

/* ------------------------------------------------------------------ routing */

/* /api/{patients|studies|series|instances}/{key}[/modify|/export] */
/* GET /api/patients/{id}[?issuer=I]: the patient record (mira_patient_record). */
static void patient_record(api_req *q, const char *id, mira__http_reply *r)
{
    api_param params[1] = {{"issuer", NULL}};
    if (!query_parse(q->o.target, params, 1, r))
        return;
    mira_error *err = NULL;
    size_t len = 0;
    char *rec = mira_patient_record(q->o.archive, id, params[0].value, &len, &err);
    params_free(params, 1);
    if (!rec) {
        archive_error(r, "the patient record", err);
        return;
    }
    r->body.len = 0;
    mira__buf_append(&r->body, rec, len);
    mira_free(rec);
    r->status = 200;
    r->content_type = "application/json";
}

static void route_entity(api_req *q, const api_path *p, const entity *e, mira__http_reply *r)
{
    const char *key = p->seg[1];
    bool exportable = e->level == MIRA_LEVEL_STUDY || e->level == MIRA_LEVEL_SERIES;
    bool reading = is_method(q, "GET") || is_method(q, "HEAD");
    if (p->n == 2 && e->level == MIRA_LEVEL_PATIENT && reading) {
        if (role_in(q, r, true, true, "a patient record") && key_valid(e, key, r))
            patient_record(q, key, r);
    } else if (p->n == 2) {
        if (!is_method(q, "DELETE"))
            not_allowed(q, r, e->level == MIRA_LEVEL_PATIENT ? "GET, HEAD, DELETE" : "DELETE");
        else if (role_in(q, r, true, false, "deleting") && no_query(q, r) &&
                 key_valid(e, key, r))
            entity_delete(q, e, key, r);
    } else if (p->n == 3 && seg_is(p, 2, "modify")) {
        if (!is_method(q, "POST"))
            not_allowed(q, r, "POST");
        else if (role_in(q, r, true, true, "modifying") && no_query(q, r) &&
                 key_valid(e, key, r))
            entity_modify(q, e, key, r);
    } else if (p->n == 3 && exportable && seg_is(p, 2, "export")) {
        api_param params[2] = {{"dates", NULL}, {"retain_uids", NULL}};
        if (!is_method(q, "GET"))
            not_allowed(q, r, "GET");
        else if (query_parse(q->o.target, params, 2, r) && key_valid(e, key, r))
            entity_export(q, e, key, params, r); /* every role: it is de-identified */
        params_free(params, 2);
    } else {
        mira__http_reply_error(r, 404, "no such API resource");
    }
}

static void route(api_req *q, mira__http_reply *r)
{
    api_path p;
    if (path_parse(q->o.target, &p, r))
        return;
    const entity *e = p.n >= 2 && p.n <= 3 ? entity_named(p.seg[0]) : NULL;
    bool reading = is_method(q, "GET") || is_method(q, "HEAD");
    if (p.n == 1 && seg_is(&p, 0, "stats")) {
        if (!reading)
            not_allowed(q, r, "GET, HEAD");
        else if (no_query(q, r))
            get_stats(q, r);
    } else if (e) {
        route_entity(q, &p, e, r);
    } else if (p.n == 1 && seg_is(&p, 0, "worklist")) {
        if (!reading && !is_method(q, "POST"))
            not_allowed(q, r, "GET, HEAD, POST");
        else if (role_in(q, r, true, true, "the worklist (it names patients)") && no_query(q, r))
            reading ? worklist_list(q, r) : worklist_add(q, r);
    } else if (p.n == 2 && seg_is(&p, 0, "worklist")) {
        if (!is_method(q, "DELETE"))
            not_allowed(q, r, "DELETE");
        else if (role_in(q, r, true, true, "the worklist") && no_query(q, r))
            worklist_delete(q, p.seg[1], r);
    } else if (p.n >= 1 && p.n <= 3 && seg_is(&p, 0, "jobs")) {
        route_jobs(q, &p, r);
    } else if (p.n == 1 && seg_is(&p, 0, "users")) {
        if (!reading && !is_method(q, "POST"))
            not_allowed(q, r, "GET, HEAD, POST");
        else if (role_in(q, r, true, false, "managing users") && no_query(q, r))
            reading ? users_list(q, r) : users_add(q, r);
    } else if (p.n == 2 && seg_is(&p, 0, "users")) {
        if (!is_method(q, "DELETE"))
            not_allowed(q, r, "DELETE");
        else if (role_in(q, r, true, false, "managing users") && no_query(q, r) &&
                 user_key_valid(p.seg[1], r))
            users_delete(q, p.seg[1], r);
    } else if (p.n == 3 && seg_is(&p, 0, "users") && seg_is(&p, 2, "password")) {
        if (!is_method(q, "PUT"))
            not_allowed(q, r, "PUT");
        else if (role_in(q, r, true, false, "managing users") && no_query(q, r) &&
                 user_key_valid(p.seg[1], r))
            users_password(q, p.seg[1], r);
    } else {
        mira__http_reply_error(r, 404, "no such API resource");
    }
    path_free(&p);
}

static bool api_feed(void *ctx, const uint8_t *p, size_t n)
{
    api_req *q = ctx;
    if (q->body.len + n > API_MAX_BODY) {
        q->too_large = true;
        return false;
    }
    return mira__buf_append(&q->body, p, n);
}

static void api_finish(void *ctx, mira__http_reply *r)
{
    api_req *q = ctx;
    if (q->too_large)
        mira__http_reply_error(r, 413, "the API takes bodies of at most %d bytes", API_MAX_BODY);
    else if (q->body.failed)
        mira__http_reply_error(r, 503, "out of memory");
    else
        route(q, r);
    if (r->status >= 300) /* an error returned no patient data */
        r->studies.len = r->series.len = 0;
}

static void api_free(void *ctx)
{
    api_req *q = ctx;
    if (!q)
        return;
    mira_free((char *)q->o.method);
    mira_free((char *)q->o.target);
    mira_free((char *)q->o.content_type);
    mira_free((char *)q->o.peer);
    mira__buf_cleanup(&q->body);
    mira_free(q);
}

bool mira__api_begin(const mira__api_options *o, mira__http_body *body, mira__http_reply *r)
{
    api_req *q = mira_calloc(1, sizeof *q);
    if (!q) {
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    q->o = *o;
    q->o.method = mira_strdup(o->method);
    q->o.target = mira_strdup(o->target);
    q->o.content_type = o->content_type ? mira_strdup(o->content_type) : NULL;
    q->o.peer = mira_strdup(o->peer ? o->peer : "");
    q->who = *o->who;
    q->o.who = &q->who;
    mira__buf_init(&q->body);
    if (!q->o.method || !q->o.target || !q->o.peer || (o->content_type && !q->o.content_type)) {
        api_free(q);
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    body->ctx = q;
    body->feed = api_feed;
    body->finish = api_finish;
    body->free = api_free;
    return true;
}

/* ------------------------------------------------------------------ the OpenAPI document */

/* openapi_json[]: src/web/openapi.json, generated into the build tree by CMakeLists.txt. */
#include "web_openapi.inc"

void mira__api_openapi(const char *method, mira__http_reply *r)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        mira__http_reply_error(r, 405, "%s is not allowed here: the description takes GET",
                               method);
        r->allow = "GET, HEAD";
        return;
    }
    r->status = 200;
    r->content_type = "application/json";
    r->cache_control = "no-cache";
    mira__buf_append(&r->body, openapi_json, sizeof openapi_json - 1);
}
