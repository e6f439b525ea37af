/* De-identification: PS3.15 Annex E Table E.1-1 applied to data sets, UIDs remapped by keyed hash.
 */
#include "dicom/deid_int.h"

#include "dicom/dataset_int.h"
#include "dicom/file_int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------------ the table */

static int cmp_entry(const void *key, const void *elem)
{
    mira_tag t = *(const mira_tag *)key;
    const mira__deid_entry *e = elem;
    return t < e->tag ? -1 : t > e->tag ? 1 : 0;
}

const mira__deid_entry *mira__deid_find(mira_tag tag)
{
    const mira__deid_entry *e = bsearch(&tag, mira__deid_table, mira__deid_table_count,
                                        sizeof *mira__deid_table, cmp_entry);
    if (e)
        return e;
    for (size_t i = 0; i < mira__deid_repeating_count; i++)
        if ((tag & mira__deid_repeating[i].mask) == mira__deid_repeating[i].tag)
            return &mira__deid_repeating[i];
    if (MIRA_TAG_GROUP(tag) & 1u)
        return &mira__deid_private;
    return NULL;
}

/* The option columns in force: the ones the options switch on. */
static bool option_on(const mira_deid_options *o, int i)
{
    switch (i) {
    case MIRA__DEID_OPT_SAFE_PRIVATE:
        return o->retain_safe_private;
    case MIRA__DEID_OPT_UIDS:
        return o->retain_uids;
    case MIRA__DEID_OPT_DEVICE:
        return o->retain_device;
    case MIRA__DEID_OPT_INSTITUTION:
        return o->retain_institution;
    case MIRA__DEID_OPT_PATIENT:
        return o->retain_patient_characteristics;
    case MIRA__DEID_OPT_FULL_DATES:
        return o->dates == MIRA_DEID_DATES_FULL;
    case MIRA__DEID_OPT_MODIFIED_DATES:
        return o->dates == MIRA_DEID_DATES_MODIFIED;
    case MIRA__DEID_OPT_CLEAN_DESC:
        return o->clean_descriptors;
    case MIRA__DEID_OPT_CLEAN_STRUCT:
        return o->clean_structured_content;
    case MIRA__DEID_OPT_CLEAN_GRAPH:
        return o->clean_graphics;
    default:
        return false;
    }
}

mira__deid_basic mira__deid_resolve(const mira__deid_entry *e, const mira_deid_options *o)
{
    /* Several options may speak for one row (Device UID: Retain UIDs and Retain Device
     * Identity): keeping wins over cleaning, cleaning over the Basic Profile. */
    char best = 0;
    for (int i = 0; i < MIRA__DEID_OPT_COUNT; i++) {
        char c = e->opts[i];
        if (c == '-' || !option_on(o, i))
            continue;
        if (c == 'K' || (c == 'C' && best != 'K') || (c == 'X' && !best))
            best = c;
    }
    if (best == 'K')
        return MIRA__DEID_K;
    if (best == 'C')
        return MIRA__DEID_C;
    if (best == 'X')
        return MIRA__DEID_X;
    /* Combinations choose by the Type of the attribute in the IOD, which mira does not track:
     * it takes the alternative that is valid for every Type (D where allowed, else Z). */
    switch ((mira__deid_basic)e->basic) {
    case MIRA__DEID_ZD:
    case MIRA__DEID_XD:
    case MIRA__DEID_XZD:
        return MIRA__DEID_D;
    case MIRA__DEID_XZ:
        return MIRA__DEID_Z;
    case MIRA__DEID_XZU:
        return MIRA__DEID_U;
    default:
        return (mira__deid_basic)e->basic;
    }
}

/* ------------------------------------------------------------------ keyed hashes */

static void keyed_hash(const uint8_t *key, size_t keylen, const char *domain, const void *data,
                       size_t len, uint8_t out[32])
{
    /* HMAC-SHA-256(key, domain || 0x00 || data): one key, separate uses. */
    size_t dl = strlen(domain);
    uint8_t stackbuf[256];
    uint8_t *msg = dl + 1 + len <= sizeof stackbuf ? stackbuf : mira_malloc(dl + 1 + len);
    unsigned int outlen = 32;
    if (!msg) { /* cannot happen in practice; still deterministic */
        HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen);
        return;
    }
    memcpy(msg, domain, dl);
    msg[dl] = 0;
    memcpy(msg + dl + 1, data, len);
    HMAC(EVP_sha256(), key, (int)keylen, msg, dl + 1 + len, out, &outlen);
    if (msg != stackbuf)
        mira_free(msg);
}

/* ------------------------------------------------------------------ the mapping */

typedef struct map_entry {
    char *kind, *original, *replacement;
} map_entry;

typedef struct strmap {
    map_entry *v;
    size_t n, cap;
    size_t *slots; /* open addressing: index + 1, 0 empty */
    size_t nslots;
} strmap;

static uint64_t fnv(const char *kind, const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = kind; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xFF) * 1099511628211ull;
    for (const char *p = s; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

static const map_entry *map_get(const strmap *m, const char *kind, const char *orig)
{
    if (!m->nslots)
        return NULL;
    for (size_t i = fnv(kind, orig) & (m->nslots - 1);; i = (i + 1) & (m->nslots - 1)) {
        size_t s = m->slots[i];
        if (!s)
            return NULL;
        const map_entry *e = &m->v[s - 1];
        if (strcmp(e->kind, kind) == 0 && strcmp(e->original, orig) == 0)
            return e;
    }
}

static bool map_rehash(strmap *m, size_t nslots)
{
    size_t *slots = mira_calloc(nslots, sizeof *slots);
    if (!slots)
        return false;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = fnv(m->v[k].kind, m->v[k].original) & (nslots - 1);
        while (slots[i])
            i = (i + 1) & (nslots - 1);
        slots[i] = k + 1;
    }
    mira_free(m->slots);
    m->slots = slots;
    m->nslots = nslots;
    return true;
}

static bool map_put(strmap *m, const char *kind, const char *orig, const char *repl)
{
    if ((m->n + 1) * 2 > m->nslots && !map_rehash(m, m->nslots ? m->nslots * 2 : 64))
        return false;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        map_entry *v = mira_realloc(m->v, cap * sizeof *v);
        if (!v)
            return false;
        m->v = v;
        m->cap = cap;
    }
    map_entry e = {mira_strdup(kind), mira_strdup(orig), mira_strdup(repl)};
    if (!e.kind || !e.original || !e.replacement) {
        mira_free(e.kind);
        mira_free(e.original);
        mira_free(e.replacement);
        return false;
    }
    m->v[m->n++] = e;
    size_t i = fnv(kind, orig) & (m->nslots - 1);
    while (m->slots[i])
        i = (i + 1) & (m->nslots - 1);
    m->slots[i] = m->n;
    return true;
}

static void map_free(strmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        mira_free(m->v[i].kind);
        mira_free(m->v[i].original);
        mira_free(m->v[i].replacement);
    }
    mira_free(m->v);
    mira_free(m->slots);
}

/* ------------------------------------------------------------------ the context */

typedef struct safe_private {
    uint16_t group;
    uint8_t element; /* low byte */
    char *creator;
} safe_private;

struct mira_deid_context {
    mira_deid_options opt; /* strings point to the copies below */
    uint8_t *secret;
    size_t secret_len;
    char *pseudonym;
    char *uid_root;
    safe_private *safe;
    size_t nsafe;
    pthread_mutex_t lock;
    strmap map;        /* "patient"/"uid" -> replacement, in the order made */
    uint64_t patients; /* counter for "{n}" */
};

void mira_deid_options_init(mira_deid_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->dates = MIRA_DEID_DATES_REMOVE;
}

static bool valid_root(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 24)
        return false;
    bool start = true;
    for (const char *p = r; *p; p++) {
        if (*p == '.') {
            if (start)
                return false;
            start = true;
        } else if (*p >= '0' && *p <= '9') {
            if (start && *p == '0' && p[1] >= '0' && p[1] <= '9')
                return false; /* a component with a leading zero */
            start = false;
        } else {
            return false;
        }
    }
    return !start;
}

static bool valid_template(const char *t)
{
    for (const char *p = t; *p; p++)
        if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F)
            return false;
    return *t != 0;
}

static bool parse_safe(const char *s, safe_private *out)
{
    /* "GGGG,xxEE,CREATOR" */
    unsigned g = 0, e = 0;
    char xx[3] = {0};
    int used = 0;
    if (sscanf(s, "%4x,%2[xX]%2x,%n", &g, xx, &e, &used) < 3 || used == 0 || !(g & 1u) || !s[used])
        return false;
    out->group = (uint16_t)g;
    out->element = (uint8_t)e;
    out->creator = mira_strdup(s + used);
    return out->creator != NULL;
}

mira_deid_context *mira_deid_context_new(const mira_deid_options *opt, mira_error **err)
{
    mira_deid_options defaults;
    if (!opt) {
        mira_deid_options_init(&defaults);
        opt = &defaults;
    }
    const char *tmpl = opt->pseudonym ? opt->pseudonym : "ANON-{hash:12}";
    if (!valid_template(tmpl)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad pseudonym",
                       "the pseudonym template must be printable ASCII without a backslash");
        return NULL;
    }
    if (opt->uid_root && !valid_root(opt->uid_root)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad UID root",
                       "UID root '%s': digits and dots, no leading zeros, at most 24 characters",
                       opt->uid_root);
        return NULL;
    }
    mira_deid_context *c = mira_calloc(1, sizeof *c);
    if (!c) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a de-identification context");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->opt = *opt;
    c->pseudonym = mira_strdup(tmpl);
    c->uid_root = mira_strdup(opt->uid_root ? opt->uid_root : "2.25");
    c->secret_len = opt->secret ? opt->secret_len : 32;
    c->secret = mira_malloc(c->secret_len ? c->secret_len : 1);
    c->safe = opt->nsafe_private ? mira_calloc(opt->nsafe_private, sizeof *c->safe) : NULL;
    if (!c->pseudonym || !c->uid_root || !c->secret || (opt->nsafe_private && !c->safe)) {
        mira_deid_context_free(c);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a de-identification context");
        return NULL;
    }
    if (opt->secret) {
        memcpy(c->secret, opt->secret, c->secret_len);
    } else if (getrandom(c->secret, c->secret_len, 0) != (ssize_t)c->secret_len) {
        mira_deid_context_free(c);
        mira_error_set(err, MIRA_ERR_IO, "No randomness", "getrandom failed making a secret");
        return NULL;
    }
    for (size_t i = 0; i < opt->nsafe_private; i++) {
        if (!parse_safe(opt->safe_private[i], &c->safe[c->nsafe])) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad safe private attribute",
                           "'%s' is not GGGG,xxEE,CREATOR with an odd group", opt->safe_private[i]);
            mira_deid_context_free(c);
            return NULL;
        }
        c->nsafe++;
    }
    c->opt.pseudonym = c->pseudonym;
    c->opt.uid_root = c->uid_root;
    c->opt.secret = c->secret;
    c->opt.secret_len = c->secret_len;
    c->opt.safe_private = NULL; /* parsed into c->safe */
    c->opt.nsafe_private = 0;
    return c;
}

void mira_deid_context_free(mira_deid_context *c)
{
    if (!c)
        return;
    map_free(&c->map);
    for (size_t i = 0; i < c->nsafe; i++)
        mira_free(c->safe[i].creator);
    mira_free(c->safe);
    mira_free(c->pseudonym);
    mira_free(c->uid_root);
    if (c->secret)
        memset(c->secret, 0, c->secret_len);
    mira_free(c->secret);
    pthread_mutex_destroy(&c->lock);
    mira_free(c);
}

const mira_deid_options *mira_deid_context_options(const mira_deid_context *ctx)
{
    return &ctx->opt;
}

void mira_deid_context_mapping(mira_deid_context *c, mira_deid_map_fn fn, void *arg)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->map.n; i++)
        if (!fn(arg, c->map.v[i].kind, c->map.v[i].original, c->map.v[i].replacement))
            break;
    pthread_mutex_unlock(&c->lock);
}

/* 128 bits as decimal digits; returns the count. */
static int u128_decimal(unsigned __int128 v, char *out)
{
    char d[40];
    int n = 0;
    do {
        d[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = d[n - 1 - i];
    out[n] = 0;
    return n;
}

static void make_uid(const mira_deid_context *c, const char *uid, char out[65])
{
    uint8_t h[32];
    keyed_hash(c->secret, c->secret_len, "uid", uid, strlen(uid), h);
    /* a version 8 (custom) UUID, as 2.25 asks for a UUID (ISO/IEC 9834-8) */
    h[6] = (uint8_t)((h[6] & 0x0F) | 0x80);
    h[8] = (uint8_t)((h[8] & 0x3F) | 0x80);
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = v << 8 | h[i];
    size_t rl = strlen(c->uid_root);
    /* root "." digits <= 64: a long root keeps fewer digits (roots are at most 24 characters,
     * so at least 39 digits fit and nothing is lost) */
    size_t room = 64 - rl - 1;
    if (room < 39) {
        unsigned __int128 lim = 1;
        for (size_t i = 0; i < room; i++)
            lim *= 10;
        v %= lim;
    }
    memcpy(out, c->uid_root, rl);
    out[rl] = '.';
    u128_decimal(v, out + rl + 1);
}

static bool well_known(const char *uid)
{
    return strncmp(uid, "1.2.840.10008.", 14) == 0;
}

bool mira_deid_uid(mira_deid_context *c, const char *uid, char out[65], mira_error **err)
{
    if (!*uid || well_known(uid)) {
        snprintf(out, 65, "%s", uid);
        return true;
    }
    make_uid(c, uid, out);
    pthread_mutex_lock(&c->lock);
    bool ok = map_get(&c->map, "uid", uid) || map_put(&c->map, "uid", uid, out);
    pthread_mutex_unlock(&c->lock);
    if (!ok)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "recording a UID mapping");
    return ok;
}

static void expand_template(mira_deid_context *c, const char *id, uint64_t n, char out[65])
{
    uint8_t h[32];
    keyed_hash(c->secret, c->secret_len, "patient", id, strlen(id), h);
    size_t o = 0;
    for (const char *p = c->pseudonym; *p && o < 64;) {
        unsigned w = 0;
        int used = 0;
        if (strncmp(p, "{hash", 5) == 0 && (p[5] == '}' || p[5] == ':')) {
            w = 12;
            if (p[5] == ':' && sscanf(p + 6, "%u}%n", &w, &used) == 1 && used)
                p += 6 + used;
            else if (p[5] == '}')
                p += 6;
            else
                goto literal;
            if (w < 1)
                w = 1;
            if (w > 64)
                w = 64;
            for (unsigned i = 0; i < w && o < 64; i++)
                out[o++] = "0123456789ABCDEF"[(h[i / 2] >> (i % 2 ? 0 : 4)) & 15];
            continue;
        }
        if (strncmp(p, "{n", 2) == 0 && (p[2] == '}' || p[2] == ':')) {
            if (p[2] == ':' && sscanf(p + 3, "%u}%n", &w, &used) == 1 && used)
                p += 3 + used;
            else if (p[2] == '}')
                p += 3;
            else
                goto literal;
            if (w > 20)
                w = 20;
            char num[32];
            snprintf(num, sizeof num, "%0*llu", (int)w, (unsigned long long)n);
            for (const char *q = num; *q && o < 64; q++)
                out[o++] = *q;
            continue;
        }
    literal:
        out[o++] = *p++;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = 0;
}

bool mira_deid_pseudonym(mira_deid_context *c, const char *id, char out[65], mira_error **err)
{
    pthread_mutex_lock(&c->lock);
    const map_entry *e = map_get(&c->map, "patient", id);
    bool ok = true;
    if (e) {
        snprintf(out, 65, "%s", e->replacement);
    } else {
        expand_template(c, id, ++c->patients, out);
        ok = map_put(&c->map, "patient", id, out);
    }
    pthread_mutex_unlock(&c->lock);
    if (!ok)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "recording a pseudonym");
    return ok;
}

static int32_t derived_shift(const mira_deid_context *c, const char *id)
{
    uint8_t h[32];
    keyed_hash(c->secret, c->secret_len, "date-shift", id, strlen(id), h);
    uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return -(int32_t)(1 + v % 3652);
}

int32_t mira_deid_date_shift(mira_deid_context *c, const char *id)
{
    return c->opt.date_shift_fixed ? c->opt.date_shift_days : derived_shift(c, id);
}

/* ------------------------------------------------------------------ burned-in annotation */

const char *mira_deid_risk_name(mira_deid_risk r)
{
    static const char *const names[] = {"none", "low", "medium", "high"};
    return (unsigned)r < 4 ? names[r] : "?";
}

/* The raw value of a string element, trimmed, into buf ("" if absent). */
static const char *raw_text(const mira_dataset *ds, mira_tag tag, char *buf, size_t cap)
{
    mira_element *e = mira_dataset_get(ds, tag);
    size_t len = 0;
    const uint8_t *v = e ? mira_element_bytes(e, &len) : NULL;
    if (!v)
        len = 0;
    while (len && (v[len - 1] == ' ' || v[len - 1] == 0))
        len--;
    size_t s = 0;
    while (s < len && v[s] == ' ')
        s++;
    len -= s;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(buf, v + s, len);
    buf[len] = 0;
    return buf;
}

static void add_reason(char *reasons, size_t cap, mira_deid_risk *risk, mira_deid_risk level,
                       const char *why)
{
    if (level > *risk)
        *risk = level;
    if (!reasons || !cap)
        return;
    size_t n = strlen(reasons);
    snprintf(reasons + n, cap - n, "%s%s", n ? "; " : "", why);
}

static bool value_has(const char *multi, const char *word)
{
    /* multi-valued CS: values separated by backslashes */
    size_t wl = strlen(word);
    for (const char *p = multi; *p;) {
        const char *end = strchr(p, '\\');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        while (l && p[l - 1] == ' ')
            l--;
        if (l == wl && strncmp(p, word, wl) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

mira_deid_risk mira_deid_burned_in_risk(const mira_dataset *ds, char *reasons, size_t cap)
{
    mira_deid_risk risk = MIRA_DEID_RISK_NONE;
    if (reasons && cap)
        reasons[0] = 0;
    if (!mira_dataset_get(ds, MIRA_TAG_PIXEL_DATA) && !mira_dataset_get(ds, 0x7FE00008) &&
        !mira_dataset_get(ds, 0x7FE00009))
        return risk;
    char bia[64], rvf[64], modality[64], type[256], sop[72];
    raw_text(ds, 0x00280301, bia, sizeof bia);
    raw_text(ds, 0x00280302, rvf, sizeof rvf);
    raw_text(ds, 0x00080060, modality, sizeof modality);
    raw_text(ds, 0x00080008, type, sizeof type);
    raw_text(ds, 0x00080016, sop, sizeof sop);
    bool said_no = strcmp(bia, "NO") == 0;
    if (strcmp(bia, "YES") == 0)
        add_reason(reasons, cap, &risk, MIRA_DEID_RISK_HIGH, "Burned In Annotation is YES");
    if (strcmp(rvf, "YES") == 0)
        add_reason(reasons, cap, &risk, MIRA_DEID_RISK_MEDIUM,
                   "Recognizable Visual Features is YES");
    if (strcmp(modality, "US") == 0 || strcmp(modality, "IVUS") == 0)
        add_reason(reasons, cap, &risk, said_no ? MIRA_DEID_RISK_MEDIUM : MIRA_DEID_RISK_HIGH,
                   "ultrasound images usually show patient text burned into the pixels");
    if (strncmp(sop, "1.2.840.10008.5.1.4.1.1.7", 25) == 0 && (sop[25] == 0 || sop[25] == '.'))
        add_reason(reasons, cap, &risk, said_no ? MIRA_DEID_RISK_MEDIUM : MIRA_DEID_RISK_HIGH,
                   "Secondary Capture: often a screen capture with text");
    static const char *const photo[] = {"XC", "ES", "GM", "OP", "SM", "OT", "DOC", "VL"};
    for (size_t i = 0; i < sizeof photo / sizeof photo[0]; i++)
        if (strcmp(modality, photo[i]) == 0) {
            char why[96];
            snprintf(why, sizeof why,
                     "modality %.8s: photographs and scans may show faces, "
                     "labels or text",
                     modality);
            add_reason(reasons, cap, &risk, MIRA_DEID_RISK_MEDIUM, why);
        }
    if (value_has(type, "SCREEN SAVE") || value_has(type, "SCREEN CAPTURE"))
        add_reason(reasons, cap, &risk, MIRA_DEID_RISK_HIGH, "Image Type says SCREEN SAVE");
    if (value_has(type, "SECONDARY"))
        add_reason(reasons, cap, &risk, MIRA_DEID_RISK_MEDIUM, "Image Type says SECONDARY");
    else if (value_has(type, "DERIVED"))
        add_reason(reasons, cap, &risk, MIRA_DEID_RISK_LOW, "Image Type says DERIVED");
    static const char *const xray[] = {"CR", "DX", "MG", "IO", "PX", "XA", "RF", "RG"};
    for (size_t i = 0; i < sizeof xray / sizeof xray[0]; i++)
        if (strcmp(modality, xray[i]) == 0 && !said_no)
            add_reason(reasons, cap, &risk, MIRA_DEID_RISK_LOW,
                       "projection radiographs often carry burned-in markers or labels");
    for (unsigned g = 0x6000; g <= 0x601E; g += 2)
        if (mira_dataset_get(ds, MIRA_TAG(g, 0x0010)) &&
            !mira_dataset_get(ds, MIRA_TAG(g, 0x3000))) {
            add_reason(reasons, cap, &risk, MIRA_DEID_RISK_MEDIUM,
                       "an overlay plane is embedded in the pixel data (not removed)");
            break;
        }
    return risk;
}

/* ------------------------------------------------------------------ de-identifying */

typedef struct token {
    const uint8_t *p;
    size_t len;
} token;

typedef struct state {
    const mira_deid_options *o;
    mira_deid_context *ctx;
    mira_deid_report *r;
    char pseudonym[65];
    int32_t shift;
    /* identifying values of the data set (borrowed from its elements, copied before changes) */
    uint8_t *tokbuf;
    size_t toklen, tokcap;
    size_t *tokoff;
    size_t ntok, tokoffcap;
    mira_error **err;
} state;

static bool nomem(state *s, const char *what)
{
    mira_error_set(s->err, MIRA_ERR_NOMEM, NULL, "%s", what);
    return false;
}

static bool is_text_vr(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_PN:
    case MIRA_VR_LO:
    case MIRA_VR_SH:
    case MIRA_VR_LT:
    case MIRA_VR_ST:
    case MIRA_VR_UT:
    case MIRA_VR_UC:
    case MIRA_VR_AE:
    case MIRA_VR_CS:
    case MIRA_VR_DA:
    case MIRA_VR_DT:
    case MIRA_VR_UR:
        return true;
    default:
        return false;
    }
}

/* Record one identifying word (3 characters or more) for cleaning. */
static bool add_token(state *s, const uint8_t *p, size_t len)
{
    while (len && (*p == ' ' || *p == '^' || *p == '='))
        p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == 0 || p[len - 1] == '^'))
        len--;
    if (len < 3)
        return true;
    if (s->toklen + len > s->tokcap) {
        size_t cap = s->tokcap ? s->tokcap * 2 : 1024;
        while (cap < s->toklen + len)
            cap *= 2;
        uint8_t *b = mira_realloc(s->tokbuf, cap);
        if (!b)
            return nomem(s, "collecting identifying values");
        s->tokbuf = b;
        s->tokcap = cap;
    }
    if (s->ntok + 2 > s->tokoffcap) {
        size_t cap = s->tokoffcap ? s->tokoffcap * 2 : 64;
        size_t *o = mira_realloc(s->tokoff, cap * sizeof *o);
        if (!o)
            return nomem(s, "collecting identifying values");
        s->tokoff = o;
        s->tokoffcap = cap;
    }
    memcpy(s->tokbuf + s->toklen, p, len);
    s->tokoff[s->ntok++] = s->toklen;
    s->toklen += len;
    s->tokoff[s->ntok] = s->toklen;
    return true;
}

/* Identifying values: those of the attributes the profile removes or replaces, split into
 * values and (for names) name components, whole values too. */
static bool collect(state *s, const mira_dataset *ds)
{
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        mira_element *e = mira_dataset_at(ds, i);
        mira_tag tag = mira_element_tag(e);
        mira_vr vr = mira_element_vr(e);
        if (vr == MIRA_VR_SQ) {
            for (size_t k = 0; k < mira_element_item_count(e); k++)
                if (!collect(s, mira_element_item(e, k)))
                    return false;
            continue;
        }
        const mira__deid_entry *row = mira__deid_find(tag);
        if (!row || MIRA_TAG_GROUP(tag) & 1u || !is_text_vr(vr))
            continue;
        mira__deid_basic b = (mira__deid_basic)row->basic;
        if (b == MIRA__DEID_K || b == MIRA__DEID_C || b == MIRA__DEID_U)
            continue;
        if (row->opts[MIRA__DEID_OPT_CLEAN_DESC] == 'C' && vr != MIRA_VR_PN)
            continue; /* a descriptor itself is what gets cleaned, not a source of words */
        size_t len;
        const uint8_t *v = mira_element_bytes(e, &len);
        if (!v || !len)
            continue;
        if (!add_token(s, v, len))
            return false;
        size_t start = 0;
        for (size_t k = 0; k <= len; k++) {
            bool sep =
                k == len || v[k] == '\\' || (vr == MIRA_VR_PN && (v[k] == '^' || v[k] == '='));
            if (sep) {
                if (k > start && (k - start != len) && !add_token(s, v + start, k - start))
                    return false;
                start = k + 1;
            }
        }
    }
    return true;
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* Clean text: every identifying word of the data set found in it (ASCII case-insensitively)
 * becomes X's. Returns a new value or NULL when nothing matched (or out of memory: *oom). */
static uint8_t *scrub(const state *s, const uint8_t *v, size_t len, bool *oom)
{
    uint8_t *out = NULL;
    *oom = false;
    for (size_t t = 0; t < s->ntok; t++) {
        const uint8_t *w = s->tokbuf + s->tokoff[t];
        size_t wl = s->tokoff[t + 1] - s->tokoff[t];
        if (wl > len)
            continue;
        for (size_t i = 0; i + wl <= len; i++) {
            const uint8_t *src = out ? out : v;
            size_t k = 0;
            while (k < wl && lower(src[i + k]) == lower(w[k]))
                k++;
            if (k < wl)
                continue;
            if (!out) {
                out = mira_malloc(len ? len : 1);
                if (!out) {
                    *oom = true;
                    return NULL;
                }
                memcpy(out, v, len);
            }
            memset(out + i, 'X', wl);
            i += wl - 1;
        }
    }
    return out;
}

/* Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* Shift one date value (YYYY, YYYYMM, YYYYMMDD, or the old YYYY.MM.DD) by days, written to
 * out in the same precision; false if it is not a date. */
static bool shift_date(const char *v, size_t len, int32_t days, char *out, size_t *outlen)
{
    char d[9];
    size_t prec;
    if (len == 10 && v[4] == '.' && v[7] == '.') {
        memcpy(d, v, 4);
        memcpy(d + 4, v + 5, 2);
        memcpy(d + 6, v + 8, 2);
        prec = 8;
    } else if (len == 8 || len == 6 || len == 4) {
        memcpy(d, v, len);
        prec = len;
        if (len < 8)
            memcpy(d + len, &"0101"[len - 4], 8 - len);
    } else {
        return false;
    }
    d[8] = 0;
    if (!digits(d, 8))
        return false;
    int64_t y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    unsigned m = (unsigned)((d[4] - '0') * 10 + (d[5] - '0'));
    unsigned dd = (unsigned)((d[6] - '0') * 10 + (d[7] - '0'));
    if (m < 1 || m > 12 || dd < 1 || dd > 31)
        return false;
    civil_from_days(days_from_civil(y, m, dd) + days, &y, &m, &dd);
    if (y < 1 || y > 9999)
        return false;
    char buf[16];
    snprintf(buf, sizeof buf, "%04d%02u%02u", (int)y, m, dd);
    memcpy(out, buf, prec);
    *outlen = prec;
    return true;
}

/* Shift every value of a DA or DT element; a value that is not a date is emptied. */
static bool shift_element(state *s, mira_dataset *ds, mira_element *e)
{
    mira_tag tag = mira_element_tag(e);
    mira_vr vr = mira_element_vr(e);
    size_t len;
    const uint8_t *v = mira_element_bytes(e, &len);
    if (!v || !len)
        return true;
    char *out = mira_malloc(len * 2 + 16);
    if (!out)
        return nomem(s, "shifting a date");
    size_t o = 0, start = 0;
    for (size_t k = 0; k <= len; k++) {
        if (k < len && v[k] != '\\')
            continue;
        const char *val = (const char *)v + start;
        size_t vl = k - start;
        while (vl && (val[vl - 1] == ' ' || val[vl - 1] == 0))
            vl--;
        while (vl && *val == ' ')
            val++, vl--;
        if (o)
            out[o++] = '\\';
        size_t dl = vl;
        if (vr == MIRA_VR_DT) {
            /* YYYY[MM[DD[HH...]]]: the date part moves, the rest stays */
            size_t datelen = vl >= 8 ? 8 : vl >= 6 ? 6 : vl >= 4 ? 4 : 0;
            size_t w;
            if (datelen && shift_date(val, datelen, s->shift, out + o, &w)) {
                memcpy(out + o + w, val + datelen, vl - datelen);
                o += w + vl - datelen;
                s->r->dates_shifted++;
            }
        } else if (dl && shift_date(val, vl, s->shift, out + o, &dl)) {
            o += dl;
            s->r->dates_shifted++;
        }
        start = k + 1;
    }
    out[o] = 0;
    bool ok = mira_dataset_set_string(ds, tag, vr, out, s->err) != NULL;
    mira_free(out);
    return ok;
}

/* Replace every value of a UI element. */
static bool replace_uids(state *s, mira_dataset *ds, mira_element *e)
{
    mira_tag tag = mira_element_tag(e);
    size_t len;
    const uint8_t *v = mira_element_bytes(e, &len);
    if (!v || !len)
        return true;
    size_t nvals = 1;
    for (size_t k = 0; k < len; k++)
        nvals += v[k] == '\\';
    char *out = mira_malloc(nvals * 66 + 1);
    if (!out)
        return nomem(s, "replacing UIDs");
    size_t o = 0, start = 0;
    for (size_t k = 0; k <= len; k++) {
        if (k < len && v[k] != '\\')
            continue;
        char uid[72];
        size_t ul = k - start;
        while (ul && (v[start + ul - 1] == 0 || v[start + ul - 1] == ' '))
            ul--;
        size_t b = 0;
        while (b < ul && v[start + b] == ' ')
            b++;
        ul -= b;
        if (ul > 64)
            ul = 64; /* not a valid UID; replaced all the same */
        memcpy(uid, v + start + b, ul);
        uid[ul] = 0;
        char nu[65];
        if (!mira_deid_uid(s->ctx, uid, nu, s->err)) {
            mira_free(out);
            return false;
        }
        if (strcmp(nu, uid) != 0)
            s->r->uids_replaced++;
        if (o)
            out[o++] = '\\';
        size_t nl = strlen(nu);
        memcpy(out + o, nu, nl);
        o += nl;
        start = k + 1;
    }
    out[o] = 0;
    bool ok = mira_dataset_set_string(ds, tag, MIRA_VR_UI, out, s->err) != NULL;
    mira_free(out);
    return ok;
}

static bool empty_element(state *s, mira_dataset *ds, mira_element *e)
{
    mira_tag tag = mira_element_tag(e);
    mira_vr vr = mira_element_vr(e);
    if (vr == MIRA_VR_SQ)
        return mira_dataset_set_sequence(ds, tag, s->err) != NULL;
    return mira_dataset_set_bytes(ds, tag, vr, NULL, 0, s->err) != NULL;
}

/* D: a dummy value valid for the VR (see docs/internals/deid.md). */
static bool dummy_element(state *s, mira_dataset *ds, mira_element *e)
{
    mira_tag tag = mira_element_tag(e);
    mira_vr vr = mira_element_vr(e);
    const char *text = NULL;
    switch (vr) {
    case MIRA_VR_SQ:
        return mira_dataset_set_sequence(ds, tag, s->err) != NULL; /* no items */
    case MIRA_VR_UI:
        return replace_uids(s, ds, e);
    case MIRA_VR_PN:
    case MIRA_VR_AE:
        text = "ANONYMOUS";
        break;
    case MIRA_VR_LO:
    case MIRA_VR_SH:
    case MIRA_VR_LT:
    case MIRA_VR_ST:
    case MIRA_VR_UT:
    case MIRA_VR_UC:
    case MIRA_VR_CS:
        text = "ANONYMIZED";
        break;
    case MIRA_VR_AS:
        text = "000D";
        break;
    case MIRA_VR_DA:
        text = "19000101";
        break;
    case MIRA_VR_TM:
        text = "000000";
        break;
    case MIRA_VR_DT:
        text = "19000101000000";
        break;
    case MIRA_VR_IS:
    case MIRA_VR_DS:
        text = "0";
        break;
    case MIRA_VR_UR:
        text = "";
        break;
    default:
        break;
    }
    if (text)
        return mira_dataset_set_string(ds, tag, vr, text, s->err) != NULL;
    static const uint8_t zeros[8] = {0};
    size_t sz = vr == MIRA_VR_AT ? 4 : mira_vr_value_size(vr);
    /* numbers: one zero; OB, OW, UN and the other bulk VRs: empty */
    return mira_dataset_set_bytes(ds, tag, vr, zeros, sz, s->err) != NULL;
}

static bool clean_element(state *s, mira_dataset *ds, mira_element *e)
{
    size_t len;
    const uint8_t *v = mira_element_bytes(e, &len);
    mira_vr vr = mira_element_vr(e);
    if (!v || !len || !(is_text_vr(vr) || vr == MIRA_VR_UN))
        return true;
    bool oom;
    uint8_t *c = scrub(s, v, len, &oom);
    if (oom)
        return nomem(s, "cleaning a value");
    if (!c)
        return true;
    bool ok =
        mira_dataset_set_bytes(ds, mira_element_tag(e), mira_element_vr(e), c, len, s->err) != NULL;
    mira_free(c);
    s->r->cleaned++;
    return ok;
}

static bool process(state *s, mira_dataset *ds, bool clean_text, int depth);

static bool recurse(state *s, mira_element *e, bool clean_text, int depth)
{
    for (size_t k = 0; k < mira_element_item_count(e); k++)
        if (!process(s, mira_element_item(e, k), clean_text, depth + 1))
            return false;
    return true;
}

/* The private creators whose blocks hold an attribute on the safe list: kept with them. */
static bool safe_private_element(const state *s, const mira_dataset *ds, mira_tag tag)
{
    if (!s->o->retain_safe_private || MIRA_TAG_ELEMENT(tag) < 0x1000)
        return false;
    const char *creator = mira_dataset_private_creator(ds, tag);
    if (!creator)
        return false;
    for (size_t i = 0; i < s->ctx->nsafe; i++) {
        const safe_private *p = &s->ctx->safe[i];
        if (p->group == MIRA_TAG_GROUP(tag) && p->element == (MIRA_TAG_ELEMENT(tag) & 0xFF) &&
            strcmp(p->creator, creator) == 0)
            return true;
    }
    return false;
}

enum plan_kind {
    P_KEEP,
    P_REMOVE,
    P_EMPTY,
    P_DUMMY,
    P_UID,
    P_SHIFT,
    P_CLEAN,
    P_RECURSE,
    P_RECURSE_CLEAN,
    P_PSEUDONYM,
};

typedef struct plan {
    mira_tag tag;
    uint8_t kind;
} plan;

static bool process(state *s, mira_dataset *ds, bool clean_text, int depth)
{
    if (depth > 64) {
        mira_error_set(s->err, MIRA_ERR_LIMIT, "Too deep", "sequences nested over 64 levels");
        return false;
    }
    size_t n = mira_dataset_count(ds);
    plan *p = mira_malloc((n ? n : 1) * sizeof *p);
    if (!p)
        return nomem(s, "planning de-identification");
    /* Decide first, change after: private creators are needed to judge their blocks, and
     * removing shifts the elements. */
    bool overlay_gone[16] = {0};
    for (size_t i = 0; i < n; i++) {
        mira_element *e = mira_dataset_at(ds, i);
        mira_tag tag = mira_element_tag(e);
        mira_vr vr = mira_element_vr(e);
        uint16_t g = MIRA_TAG_GROUP(tag);
        p[i].tag = tag;
        p[i].kind = P_KEEP;
        if (MIRA_TAG_ELEMENT(tag) == 0 && g != 0x0002) {
            p[i].kind = P_REMOVE; /* group lengths (retired) would be stale */
            continue;
        }
        if (g & 1u) {
            /* private attributes; creators are decided below, by what their blocks keep */
            uint16_t el = MIRA_TAG_ELEMENT(tag);
            if (s->o->retain_safe_private && el >= 0x10 && el <= 0xFF)
                continue;
            if (!safe_private_element(s, ds, tag)) {
                p[i].kind = P_REMOVE;
                s->r->private_removed++;
            }
            continue;
        }
        if (tag == 0x00100010 || tag == 0x00100020) {
            p[i].kind = P_PSEUDONYM;
            s->r->replaced++;
            continue;
        }
        if ((g & 0xFF00) == 0x6000 && (g & 0xFF) <= 0x1E && MIRA_TAG_ELEMENT(tag) == 0x3000)
            overlay_gone[(g & 0xFF) >> 1] = true;
        const mira__deid_entry *row = mira__deid_find(tag);
        if (!row) {
            /* not in the table: kept; sequences are searched; dates follow the option */
            if (vr == MIRA_VR_SQ)
                p[i].kind = clean_text ? P_RECURSE_CLEAN : P_RECURSE;
            else if (s->o->dates == MIRA_DEID_DATES_MODIFIED &&
                     (vr == MIRA_VR_DA || vr == MIRA_VR_DT))
                p[i].kind = P_SHIFT;
            else if (clean_text && is_text_vr(vr) && vr != MIRA_VR_CS)
                p[i].kind = P_CLEAN;
            continue;
        }
        mira__deid_basic a = mira__deid_resolve(row, s->o);
        size_t vlen = 0;
        if (a == MIRA__DEID_D && vr != MIRA_VR_SQ && mira_element_bytes(e, &vlen) && !vlen)
            a = MIRA__DEID_Z; /* an empty value stays empty: a dummy would say more than it did */
        if ((g & 0xFF00) == 0x5000 || (row->mask != 0xFFFFFFFFu && MIRA_TAG_ELEMENT(tag) == 0x3000))
            a = MIRA__DEID_X; /* curves and overlay bitmaps: mira cannot clean graphics */
        switch (a) {
        case MIRA__DEID_X:
            p[i].kind = P_REMOVE;
            s->r->removed++;
            break;
        case MIRA__DEID_Z:
            p[i].kind = P_EMPTY;
            s->r->emptied++;
            break;
        case MIRA__DEID_D:
            p[i].kind = P_DUMMY;
            s->r->replaced++;
            break;
        case MIRA__DEID_U:
            p[i].kind = vr == MIRA_VR_SQ ? P_RECURSE : vr == MIRA_VR_UI ? P_UID : P_DUMMY;
            s->r->replaced++;
            break;
        case MIRA__DEID_K:
            p[i].kind = vr == MIRA_VR_SQ ? (clean_text ? P_RECURSE_CLEAN : P_RECURSE) : P_KEEP;
            s->r->kept++;
            break;
        case MIRA__DEID_C:
            if (vr == MIRA_VR_SQ)
                p[i].kind = P_RECURSE_CLEAN;
            else if (vr == MIRA_VR_DA || vr == MIRA_VR_DT)
                p[i].kind = s->o->dates == MIRA_DEID_DATES_MODIFIED ? P_SHIFT : P_KEEP;
            else if (vr == MIRA_VR_TM)
                p[i].kind = P_KEEP; /* times of day do not move with a whole-day shift */
            else
                p[i].kind = P_CLEAN;
            break;
        default:
            p[i].kind = P_REMOVE;
            s->r->removed++;
        }
    }
    /* private creators: kept only when a kept attribute of their block needs them */
    for (size_t i = 0; i < n; i++) {
        mira_tag tag = p[i].tag;
        uint16_t el = MIRA_TAG_ELEMENT(tag);
        if (!(MIRA_TAG_GROUP(tag) & 1u) || el < 0x10 || el > 0xFF || p[i].kind != P_KEEP)
            continue;
        /* (creators sort before their blocks, so k > i) */
        bool used = false;
        for (size_t k = i + 1; k < n && !used; k++)
            used = p[k].kind == P_KEEP && MIRA_TAG_GROUP(p[k].tag) == MIRA_TAG_GROUP(tag) &&
                   (MIRA_TAG_ELEMENT(p[k].tag) >> 8) == el;
        if (!used)
            p[i].kind = P_REMOVE;
    }
    /* an overlay whose bitmap goes takes its other attributes (rows, label...) with it */
    for (size_t i = 0; i < n; i++) {
        uint16_t g = MIRA_TAG_GROUP(p[i].tag);
        if ((g & 0xFF00) == 0x6000 && (g & 0xFF) <= 0x1E && overlay_gone[(g & 0xFF) >> 1])
            p[i].kind = P_REMOVE;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        mira_element *e = mira_dataset_get(ds, p[i].tag);
        if (!e)
            continue;
        switch (p[i].kind) {
        case P_REMOVE:
            mira_dataset_remove(ds, p[i].tag);
            break;
        case P_EMPTY:
            ok = empty_element(s, ds, e);
            break;
        case P_DUMMY:
            ok = dummy_element(s, ds, e);
            break;
        case P_UID:
            ok = replace_uids(s, ds, e);
            break;
        case P_SHIFT:
            ok = shift_element(s, ds, e);
            break;
        case P_CLEAN:
            ok = clean_element(s, ds, e);
            break;
        case P_RECURSE:
        case P_RECURSE_CLEAN:
            ok = recurse(s, e, p[i].kind == P_RECURSE_CLEAN, depth);
            break;
        case P_PSEUDONYM:
            ok = mira_dataset_set_string(ds, p[i].tag,
                                         mira_element_vr(e) == MIRA_VR_PN ? MIRA_VR_PN
                                                                          : mira_element_vr(e),
                                         s->pseudonym, s->err) != NULL;
            break;
        default:
            break;
        }
    }
    mira_free(p);
    return ok;
}

typedef struct method_code {
    const char *value, *meaning;
} method_code;

/* The CID 7050 codes of what was applied; returns the count. */
static size_t method_codes(const mira_deid_options *o, method_code out[12])
{
    size_t n = 0;
    out[n++] = (method_code){"113100", "Basic Application Confidentiality Profile"};
    if (o->clean_graphics)
        out[n++] = (method_code){"113103", "Clean Graphics Option"};
    if (o->clean_structured_content)
        out[n++] = (method_code){"113104", "Clean Structured Content Option"};
    if (o->clean_descriptors)
        out[n++] = (method_code){"113105", "Clean Descriptors Option"};
    if (o->dates == MIRA_DEID_DATES_FULL)
        out[n++] =
            (method_code){"113106", "Retain Longitudinal Temporal Information Full Dates Option"};
    if (o->dates == MIRA_DEID_DATES_MODIFIED)
        out[n++] = (method_code){"113107",
                                 "Retain Longitudinal Temporal Information Modified Dates Option"};
    if (o->retain_patient_characteristics)
        out[n++] = (method_code){"113108", "Retain Patient Characteristics Option"};
    if (o->retain_device)
        out[n++] = (method_code){"113109", "Retain Device Identity Option"};
    if (o->retain_uids)
        out[n++] = (method_code){"113110", "Retain UIDs Option"};
    if (o->retain_safe_private)
        out[n++] = (method_code){"113111", "Retain Safe Private Option"};
    if (o->retain_institution)
        out[n++] = (method_code){"113112", "Retain Institution Identity Option"};
    return n;
}

static bool add_method(state *s, mira_dataset *ds)
{
    method_code codes[12];
    size_t n = method_codes(s->o, codes);
    char text[1024] = "";
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "%s%s", i ? "\\" : "", codes[i].meaning);
    }
    if (!mira_dataset_set_string(ds, 0x00120062, MIRA_VR_CS, "YES", s->err) ||
        !mira_dataset_set_string(ds, 0x00120063, MIRA_VR_LO, text, s->err))
        return false;
    mira_element *seq = mira_dataset_set_sequence(ds, 0x00120064, s->err);
    if (!seq)
        return false;
    for (size_t i = 0; i < n; i++) {
        mira_dataset *item = mira_element_add_item(seq, s->err);
        if (!item ||
            !mira_dataset_set_string(item, 0x00080100, MIRA_VR_SH, codes[i].value, s->err) ||
            !mira_dataset_set_string(item, 0x00080102, MIRA_VR_SH, "DCM", s->err) ||
            !mira_dataset_set_string(item, 0x00080104, MIRA_VR_LO, codes[i].meaning, s->err))
            return false;
    }
    const char *temporal = s->o->dates == MIRA_DEID_DATES_MODIFIED ? "MODIFIED"
                           : s->o->dates == MIRA_DEID_DATES_FULL   ? "UNMODIFIED"
                                                                   : "REMOVED";
    return mira_dataset_set_string(ds, 0x00280303, MIRA_VR_CS, temporal, s->err) != NULL;
}

bool mira_deid_dataset(mira_dataset *ds, const mira_deid_options *opts, mira_deid_context *ctx,
                       mira_deid_report *report, mira_error **err)
{
    mira_deid_report local;
    state s = {0};
    s.o = opts ? opts : &ctx->opt;
    s.ctx = ctx;
    s.r = report ? report : &local;
    s.err = err;
    memset(s.r, 0, sizeof *s.r);
    s.r->risk = mira_deid_burned_in_risk(ds, s.r->reasons, sizeof s.r->reasons);

    char id[256];
    raw_text(ds, 0x00100020, id, sizeof id);
    if (!*id)
        raw_text(ds, 0x00100010, id, sizeof id);
    if (!mira_deid_pseudonym(ctx, id, s.pseudonym, err))
        return false;
    snprintf(s.r->pseudonym, sizeof s.r->pseudonym, "%s", s.pseudonym);
    if (s.o->dates == MIRA_DEID_DATES_MODIFIED) {
        s.shift = s.o->date_shift_fixed ? s.o->date_shift_days : derived_shift(ctx, id);
        s.r->date_shift_days = s.shift;
    }
    bool ok = true;
    if (s.o->clean_descriptors || s.o->clean_structured_content || s.o->clean_graphics ||
        s.o->retain_patient_characteristics)
        ok = collect(&s, ds);
    ok = ok && process(&s, ds, false, 0) && add_method(&s, ds);
    mira_free(s.tokbuf);
    mira_free(s.tokoff);
    return ok;
}

bool mira_deid_file(mira_file *f, const mira_deid_options *opts, mira_deid_context *ctx,
                    mira_deid_report *report, mira_error **err)
{
    if (!mira_deid_dataset(f->ds, opts, ctx, report, err))
        return false;
    const mira_deid_options *o = opts ? opts : &ctx->opt;
    mira_dataset *meta = f->meta;
    /* who sent it, and the implementation that wrote it, are not the new file's business */
    static const mira_tag drop[] = {0x00020012, 0x00020013, 0x00020016, 0x00020017,
                                    0x00020018, 0x00020100, 0x00020102};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        mira_dataset_remove(meta, drop[i]);
    char sop[72];
    raw_text(f->ds, 0x00080018, sop, sizeof sop);
    if (*sop && !mira_dataset_set_string(meta, 0x00020003, MIRA_VR_UI, sop, err))
        return false;
    if (!*sop && !o->retain_uids) {
        char old[72], nu[65];
        raw_text(meta, 0x00020003, old, sizeof old);
        if (*old && (!mira_deid_uid(ctx, old, nu, err) ||
                     !mira_dataset_set_string(meta, 0x00020003, MIRA_VR_UI, nu, err)))
            return false;
    }
    memset(f->preamble, 0, sizeof f->preamble);
    return true;
}
