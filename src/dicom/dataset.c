/* Data sets and elements: lookup, lazy value decoding and modification. */
#include "dataset_int.h"

#include "charset.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

mira_dataset *mira_dataset_new(mira_error **err)
{
    mira_dataset *ds = mira_calloc(1, sizeof *ds);
    if (!ds) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a data set");
        return NULL;
    }
    ds->explicit_vr = true;
    return ds;
}

void mira__element_cleanup(mira_element *e)
{
    for (size_t i = 0; i < e->nitems; i++)
        mira_dataset_free(e->items[i]);
    mira_free(e->items);
    for (size_t i = 0; i < e->nfrags; i++)
        mira_free(e->frags[i].owned);
    mira_free(e->frags);
    mira_free(e->owned);
    mira_free(e->text_cache);
    mira_dataset *ds = e->ds;
    memset(e, 0, sizeof *e);
    e->ds = ds;
}

void mira_dataset_free(mira_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->count; i++)
        mira__element_cleanup(&ds->elems[i]);
    mira_free(ds->elems);
    mira_free(ds->charset);
    mira_free(ds->pixel_ts);
    mira_free(ds);
}

bool mira__dataset_set_pixel_ts(mira_dataset *ds, const char *ts)
{
    char *copy = ts ? mira_strdup(ts) : NULL;
    if (ts && !copy)
        return false;
    mira_free(ds->pixel_ts);
    ds->pixel_ts = copy;
    return true;
}

mira_element *mira__dataset_append(mira_dataset *ds, mira_tag tag, mira_error **err)
{
    if (ds->count == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 32;
        mira_element *n = mira_realloc(ds->elems, cap * sizeof *n);
        if (!n) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "growing a data set");
            return NULL;
        }
        ds->elems = n;
        ds->cap = cap;
    }
    mira_element *e = &ds->elems[ds->count++];
    memset(e, 0, sizeof *e);
    e->ds = ds;
    e->tag = tag;
    return e;
}

static int cmp_elem(const void *a, const void *b)
{
    const mira_element *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    /* stable for duplicates: the earlier offset first */
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void mira__dataset_sort(mira_dataset *ds)
{
    for (size_t i = 1; i < ds->count; i++) {
        if (ds->elems[i - 1].tag > ds->elems[i].tag) {
            qsort(ds->elems, ds->count, sizeof *ds->elems, cmp_elem);
            return;
        }
    }
}

size_t mira_dataset_count(const mira_dataset *ds)
{
    return ds ? ds->count : 0;
}

mira_element *mira_dataset_at(const mira_dataset *ds, size_t i)
{
    return ds && i < ds->count ? &ds->elems[i] : NULL;
}

static size_t lower_bound(const mira_dataset *ds, mira_tag tag)
{
    size_t lo = 0, hi = ds->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->elems[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mira_element *mira_dataset_get(const mira_dataset *ds, mira_tag tag)
{
    if (!ds)
        return NULL;
    size_t i = lower_bound(ds, tag);
    return i < ds->count && ds->elems[i].tag == tag ? &ds->elems[i] : NULL;
}

bool mira_dataset_is_big_endian(const mira_dataset *ds)
{
    return ds && ds->big_endian;
}

bool mira__dataset_set_charset(mira_dataset *ds, const uint8_t *v, size_t len, mira_error **err)
{
    while (len && (v[len - 1] == ' ' || v[len - 1] == 0))
        len--;
    char *c = mira_strndup((const char *)v, len);
    if (!c) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying Specific Character Set");
        return false;
    }
    mira_free(ds->charset);
    ds->charset = c;
    return true;
}

const char *mira_dataset_charset(const mira_dataset *ds)
{
    for (; ds; ds = ds->parent)
        if (ds->charset)
            return ds->charset;
    return "";
}

const char *mira_dataset_private_creator(const mira_dataset *ds, mira_tag tag)
{
    if (!MIRA_TAG_IS_PRIVATE(tag))
        return NULL;
    uint16_t el = MIRA_TAG_ELEMENT(tag);
    if (el < 0x1000)
        return NULL;
    mira_element *c = mira_dataset_get(ds, MIRA_TAG(MIRA_TAG_GROUP(tag), el >> 8));
    if (!c || !c->value)
        return NULL;
    if (!c->text_cache) {
        size_t n = c->value_len, lead = 0;
        while (n && (c->value[n - 1] == ' ' || c->value[n - 1] == 0))
            n--;
        while (lead < n && c->value[lead] == ' ')
            lead++;
        c->text_cache = mira_strndup((const char *)c->value + lead, n - lead);
    }
    return c->text_cache;
}

/* ------------------------------------------------------------------ element getters */

mira_tag mira_element_tag(const mira_element *e)
{
    return e->tag;
}

mira_vr mira_element_vr(const mira_element *e)
{
    return (mira_vr)e->vr;
}

mira_vr mira_element_vr_on_disk(const mira_element *e)
{
    return e->vr_disk ? (mira_vr)e->vr_disk : (mira_vr)e->vr;
}

uint32_t mira_element_length(const mira_element *e)
{
    return e->length;
}

uint64_t mira_element_offset(const mira_element *e)
{
    return e->offset;
}

const uint8_t *mira_element_bytes(const mira_element *e, size_t *len)
{
    if (e->vr == MIRA_VR_SQ || e->encapsulated) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = e->value_len;
    return e->value ? e->value : (const uint8_t *)"";
}

/* Single-valued text VRs: a backslash is an ordinary character there. */
static bool single_valued(mira_vr vr)
{
    return vr == MIRA_VR_LT || vr == MIRA_VR_ST || vr == MIRA_VR_UT || vr == MIRA_VR_UR;
}

/* VRs whose characters come from the Specific Character Set (the rest are ASCII). */
static bool uses_charset(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_SH: case MIRA_VR_LO: case MIRA_VR_ST: case MIRA_VR_LT:
    case MIRA_VR_PN: case MIRA_VR_UC: case MIRA_VR_UT:
        return true;
    default:
        return false;
    }
}

size_t mira_element_vm(const mira_element *e)
{
    mira_vr vr = (mira_vr)e->vr;
    if (vr == MIRA_VR_SQ)
        return e->nitems;
    if (e->encapsulated)
        return 1;
    size_t n = e->value_len;
    if (mira_vr_is_string(vr)) {
        const uint8_t *v = e->value;
        while (n && (v[n - 1] == ' ' || v[n - 1] == 0))
            n--;
        if (n == 0)
            return 0;
        if (single_valued(vr))
            return 1;
        size_t vm = 1;
        for (size_t i = 0; i < n; i++)
            vm += v[i] == '\\';
        return vm;
    }
    size_t sz = mira_vr_value_size(vr);
    if (vr == MIRA_VR_OB || vr == MIRA_VR_UN || vr == MIRA_VR_OW || vr == MIRA_VR_OF ||
        vr == MIRA_VR_OD || vr == MIRA_VR_OL || vr == MIRA_VR_OV)
        return n ? 1 : 0;
    return sz ? n / sz : (n ? 1 : 0);
}

static const char *element_charset(const mira_element *e);

static bool strip_leading(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_AE: case MIRA_VR_CS: case MIRA_VR_DS: case MIRA_VR_IS: case MIRA_VR_LO:
    case MIRA_VR_SH: case MIRA_VR_AS: case MIRA_VR_DA: case MIRA_VR_DT: case MIRA_VR_TM:
    case MIRA_VR_UI:
        return true;
    default:
        return false;
    }
}

static char *decode_text(const mira_element *e, size_t *out_len, mira_error **err)
{
    mira_vr vr = (mira_vr)e->vr;
    if (!mira_vr_is_string(vr)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Not a string",
                       "element (%04X,%04X) has VR %s, not a string VR", MIRA_TAG_GROUP(e->tag),
                       MIRA_TAG_ELEMENT(e->tag), mira_vr_name(vr));
        return NULL;
    }
    size_t n = e->value_len;
    const uint8_t *v = e->value ? e->value : (const uint8_t *)"";
    while (n && (v[n - 1] == ' ' || v[n - 1] == 0))
        n--;
    const char *cs = uses_charset(vr) ? element_charset(e) : "";
    return mira__charset_decode(cs, vr, v, n, out_len, err);
}

char *mira_element_get_text(const mira_element *e, mira_error **err)
{
    return decode_text(e, NULL, err);
}

/* Locate value i of [text, text + len) split on backslashes (single-valued VRs: one value).
 * False if there is no such value. */
static bool find_value(const char *text, size_t len, mira_vr vr, size_t i, const char **start,
                       const char **end)
{
    const char *p = text, *stop = text + len;
    if (single_valued(vr)) {
        *start = p;
        *end = stop;
        return i == 0;
    }
    for (size_t k = 0;; k++) {
        const char *bs = memchr(p, '\\', (size_t)(stop - p));
        if (k == i) {
            *start = p;
            *end = bs ? bs : stop;
            return true;
        }
        if (!bs)
            return false;
        p = bs + 1;
    }
}

char *mira_element_get_string(const mira_element *e, size_t i, mira_error **err)
{
    mira_vr vr = (mira_vr)e->vr;
    const char *start, *end;
    char *all = NULL;
    if (mira_vr_is_string(vr) && !uses_charset(vr)) {
        /* ASCII VRs (DS, IS, UI, CS...): split the raw bytes and decode only value i, so that
         * reading every value of a long multi-valued element stays linear. */
        size_t n = e->value_len;
        const char *v = e->value ? (const char *)e->value : "";
        while (n && (v[n - 1] == ' ' || v[n - 1] == 0))
            n--;
        if (!find_value(v, n, vr, i, &start, &end))
            goto missing;
    } else {
        size_t len;
        all = decode_text(e, &len, err);
        if (!all)
            return NULL;
        if (!find_value(all, len, vr, i, &start, &end))
            goto missing;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == 0))
        end--;
    if (strip_leading(vr))
        while (start < end && *start == ' ')
            start++;
    char *out;
    if (all) {
        out = mira_strndup(start, (size_t)(end - start));
        mira_free(all);
        if (!out)
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying a value");
    } else {
        out = mira__charset_decode("", vr, (const uint8_t *)start, (size_t)(end - start), NULL,
                                   err);
    }
    return out;
missing:
    mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such value", "element (%04X,%04X) has no value %zu",
                   MIRA_TAG_GROUP(e->tag), MIRA_TAG_ELEMENT(e->tag), i);
    mira_free(all);
    return NULL;
}

static bool binary_value(const mira_element *e, size_t i, uint64_t *bits, size_t *size,
                         mira_error **err);

bool mira_element_get_double(const mira_element *e, size_t i, double *out, mira_error **err)
{
    mira_vr vr = (mira_vr)e->vr;
    if (vr == MIRA_VR_DS || vr == MIRA_VR_IS) {
        char *s = mira_element_get_string(e, i, err);
        if (!s)
            return false;
        char *endp;
        errno = 0;
        double d = strtod(s, &endp);
        bool ok = endp != s && *endp == 0 && errno != ERANGE;
        if (!ok)
            mira_error_set(err, MIRA_ERR_INVALID, "Bad number",
                           "element (%04X,%04X) value %zu \"%s\" is not a %s number",
                           MIRA_TAG_GROUP(e->tag), MIRA_TAG_ELEMENT(e->tag), i, s,
                           mira_vr_name(vr));
        mira_free(s);
        if (ok)
            *out = d;
        return ok;
    }
    uint64_t bits;
    size_t size;
    if (!binary_value(e, i, &bits, &size, err))
        return false;
    switch (vr) {
    case MIRA_VR_FL: case MIRA_VR_OF: {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return true;
    }
    case MIRA_VR_FD: case MIRA_VR_OD: {
        double d;
        memcpy(&d, &bits, 8);
        *out = d;
        return true;
    }
    case MIRA_VR_SS: *out = (int16_t)bits; return true;
    case MIRA_VR_SL: *out = (int32_t)bits; return true;
    case MIRA_VR_SV: *out = (double)(int64_t)bits; return true;
    default: *out = (double)bits; return true;
    }
}

bool mira_element_get_int(const mira_element *e, size_t i, int64_t *out, mira_error **err)
{
    mira_vr vr = (mira_vr)e->vr;
    if (vr == MIRA_VR_IS || vr == MIRA_VR_DS || vr == MIRA_VR_FL || vr == MIRA_VR_FD ||
        vr == MIRA_VR_OF || vr == MIRA_VR_OD) {
        double d;
        if (!mira_element_get_double(e, i, &d, err))
            return false;
        if (!(d >= -9.2e18 && d <= 9.2e18) || d != floor(d)) {
            mira_error_set(err, MIRA_ERR_INVALID, "Not an integer",
                           "element (%04X,%04X) value %zu (%g) is not an integer",
                           MIRA_TAG_GROUP(e->tag), MIRA_TAG_ELEMENT(e->tag), i, d);
            return false;
        }
        *out = (int64_t)d;
        return true;
    }
    uint64_t bits;
    size_t size;
    if (!binary_value(e, i, &bits, &size, err))
        return false;
    switch (vr) {
    case MIRA_VR_SS: *out = (int16_t)bits; break;
    case MIRA_VR_SL: *out = (int32_t)bits; break;
    default: *out = (int64_t)bits; break;
    }
    return true;
}

bool mira_element_get_uint(const mira_element *e, size_t i, uint64_t *out, mira_error **err)
{
    int64_t v;
    mira_vr vr = (mira_vr)e->vr;
    if (vr == MIRA_VR_UV || vr == MIRA_VR_UL || vr == MIRA_VR_US || vr == MIRA_VR_AT ||
        vr == MIRA_VR_OW || vr == MIRA_VR_OL || vr == MIRA_VR_OV || vr == MIRA_VR_OB ||
        vr == MIRA_VR_UN) {
        size_t size;
        return binary_value(e, i, out, &size, err);
    }
    if (!mira_element_get_int(e, i, &v, err))
        return false;
    if (v < 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "Negative value",
                       "element (%04X,%04X) value %zu is negative", MIRA_TAG_GROUP(e->tag),
                       MIRA_TAG_ELEMENT(e->tag), i);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* ------------------------------------------------------------------ sequences, fragments */

size_t mira_element_item_count(const mira_element *e)
{
    return e->nitems;
}

mira_dataset *mira_element_item(const mira_element *e, size_t i)
{
    return i < e->nitems ? e->items[i] : NULL;
}

bool mira_element_is_undefined_length(const mira_element *e)
{
    return e->undefined_length;
}

bool mira_element_is_encapsulated(const mira_element *e)
{
    return e->encapsulated;
}

const uint8_t *mira_element_offset_table(const mira_element *e, size_t *len)
{
    if (!e->encapsulated || e->nfrags == 0) {
        *len = 0;
        return NULL;
    }
    *len = e->frags[0].len;
    return e->frags[0].data;
}

size_t mira_element_fragment_count(const mira_element *e)
{
    return e->encapsulated && e->nfrags ? e->nfrags - 1 : 0;
}

const uint8_t *mira_element_fragment(const mira_element *e, size_t i, size_t *len)
{
    if (!e->encapsulated || i + 1 >= e->nfrags) {
        *len = 0;
        return NULL;
    }
    *len = e->frags[i + 1].len;
    return e->frags[i + 1].data;
}

/* ------------------------------------------------------------------ modification */

/* Find or insert the slot for `tag`, keeping order. */
static mira_element *slot_for(mira_dataset *ds, mira_tag tag, mira_error **err)
{
    size_t i = lower_bound(ds, tag);
    if (i < ds->count && ds->elems[i].tag == tag) {
        mira__element_cleanup(&ds->elems[i]);
        ds->elems[i].tag = tag;
        return &ds->elems[i];
    }
    if (!mira__dataset_append(ds, tag, err))
        return NULL;
    memmove(&ds->elems[i + 1], &ds->elems[i], (ds->count - 1 - i) * sizeof *ds->elems);
    memset(&ds->elems[i], 0, sizeof ds->elems[i]);
    ds->elems[i].ds = ds;
    ds->elems[i].tag = tag;
    return &ds->elems[i];
}

/* Swap each value of `size` bytes in place. */
static void swap_values(uint8_t *p, size_t len, size_t size)
{
    if (size < 2)
        return;
    for (size_t off = 0; off + size <= len; off += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            uint8_t t = p[off + a];
            p[off + a] = p[off + b];
            p[off + b] = t;
        }
}

mira_element *mira_dataset_set_bytes(mira_dataset *ds, mira_tag tag, mira_vr vr,
                                     const void *bytes, size_t len, mira_error **err)
{
    if (len >= MIRA_UNDEFINED_LENGTH) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Value too long", "value of %zu bytes for (%04X,%04X)",
                       len, MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag));
        return NULL;
    }
    uint8_t *copy = mira_malloc(len + 1);
    if (!copy) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying a value");
        return NULL;
    }
    if (len)
        memcpy(copy, bytes, len);
    copy[len] = 0;
    if (ds->big_endian) {
        size_t sz = vr == MIRA_VR_AT ? 2 : mira_vr_value_size(vr);
        swap_values(copy, len, sz);
    }
    if (tag == MIRA_TAG_SPECIFIC_CHARSET && !mira__dataset_set_charset(ds, copy, len, err)) {
        mira_free(copy);
        return NULL;
    }
    mira_element *e = slot_for(ds, tag, err);
    if (!e) {
        mira_free(copy);
        return NULL;
    }
    e->vr = (uint16_t)vr;
    e->owned = copy;
    e->value = copy;
    e->value_len = len;
    e->length = (uint32_t)len;
    return e;
}

mira_element *mira_dataset_set_string(mira_dataset *ds, mira_tag tag, mira_vr vr,
                                      const char *value, mira_error **err)
{
    size_t n = strlen(value);
    if (n % 2 == 0)
        return mira_dataset_set_bytes(ds, tag, vr, value, n, err);
    char *padded = mira_malloc(n + 1);
    if (!padded) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "padding a value");
        return NULL;
    }
    memcpy(padded, value, n);
    padded[n] = vr == MIRA_VR_UI ? '\0' : ' ';
    mira_element *e = mira_dataset_set_bytes(ds, tag, vr, padded, n + 1, err);
    mira_free(padded);
    return e;
}

mira_element *mira_dataset_set_sequence(mira_dataset *ds, mira_tag tag, mira_error **err)
{
    mira_element *e = slot_for(ds, tag, err);
    if (!e)
        return NULL;
    e->vr = MIRA_VR_SQ;
    e->undefined_length = true;
    e->length = MIRA_UNDEFINED_LENGTH;
    return e;
}

mira_dataset *mira_element_add_item(mira_element *seq, mira_error **err)
{
    if (seq->vr != MIRA_VR_SQ) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Not a sequence",
                       "element (%04X,%04X) is not a sequence", MIRA_TAG_GROUP(seq->tag),
                       MIRA_TAG_ELEMENT(seq->tag));
        return NULL;
    }
    if (seq->nitems == seq->items_cap) {
        size_t cap = seq->items_cap ? seq->items_cap * 2 : 4;
        mira_dataset **n = mira_realloc(seq->items, cap * sizeof *n);
        if (!n) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "growing a sequence");
            return NULL;
        }
        seq->items = n;
        seq->items_cap = cap;
    }
    mira_dataset *item = mira_dataset_new(err);
    if (!item)
        return NULL;
    item->undefined_length = true;
    item->parent = seq->ds; /* inherits the character set, as items read from files do */
    seq->items[seq->nitems++] = item;
    return item;
}

mira_element *mira_dataset_set_encapsulated(mira_dataset *ds, mira_tag tag, mira_error **err)
{
    mira_element *e = slot_for(ds, tag, err);
    if (!e)
        return NULL;
    e->vr = MIRA_VR_OB;
    e->encapsulated = true;
    e->undefined_length = true;
    e->length = MIRA_UNDEFINED_LENGTH;
    return e;
}

bool mira_element_add_fragment(mira_element *e, const void *bytes, size_t len,
                               bool is_offset_table, mira_error **err)
{
    if (!e->encapsulated || (is_offset_table && e->nfrags > 1)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad fragment",
                       "cannot add a fragment to (%04X,%04X) here", MIRA_TAG_GROUP(e->tag),
                       MIRA_TAG_ELEMENT(e->tag));
        return false;
    }
    if (len >= MIRA_UNDEFINED_LENGTH - 1) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Fragment too long", "fragment of %zu bytes", len);
        return false;
    }
    size_t need = e->nfrags == 0 ? 2 : e->nfrags + 1;
    if (need > e->frags_cap) {
        size_t cap = e->frags_cap ? e->frags_cap * 2 : 8;
        while (cap < need)
            cap *= 2;
        mira__fragment *n = mira_realloc(e->frags, cap * sizeof *n);
        if (!n) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "growing fragments");
            return false;
        }
        e->frags = n;
        e->frags_cap = cap;
    }
    uint8_t *copy = mira_malloc(len + 1);
    if (!copy) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying a fragment");
        return false;
    }
    if (len)
        memcpy(copy, bytes, len);
    if (e->nfrags == 0) {
        /* the basic offset table slot always exists */
        e->frags[0] = (mira__fragment){(const uint8_t *)"", 0, NULL};
        e->nfrags = 1;
    }
    mira__fragment *slot = is_offset_table ? &e->frags[0] : &e->frags[e->nfrags++];
    if (is_offset_table)
        mira_free(slot->owned); /* a new slot past nfrags holds no old allocation */
    *slot = (mira__fragment){copy, len, copy};
    return true;
}

bool mira_dataset_remove(mira_dataset *ds, mira_tag tag)
{
    size_t i = lower_bound(ds, tag);
    if (i >= ds->count || ds->elems[i].tag != tag)
        return false;
    mira__element_cleanup(&ds->elems[i]);
    memmove(&ds->elems[i], &ds->elems[i + 1], (ds->count - i - 1) * sizeof *ds->elems);
    ds->count--;
    if (tag == MIRA_TAG_SPECIFIC_CHARSET) {
        mira_free(ds->charset);
        ds->charset = NULL;
    }
    return true;
}

/* ------------------------------------------------------------------ ambiguous VRs */

mira_vr mira__resolve_ambiguous_vr(const mira_dataset *ds, mira_tag tag, const char *dict_vr,
                                   bool undefined_length)
{
    if (!dict_vr || !strchr(dict_vr, ' '))
        return mira_vr_from_string(dict_vr ? dict_vr : "UN");
    if (tag == MIRA_TAG_PIXEL_DATA)
        return undefined_length ? MIRA_VR_OB : MIRA_VR_OW;
    if (strcmp(dict_vr, "US or SS") == 0 || strcmp(dict_vr, "US or SS or OW") == 0) {
        for (const mira_dataset *d = ds; d; d = d->parent) {
            mira_element *pr = mira_dataset_get(d, MIRA_TAG(0x0028, 0x0103));
            if (pr) {
                int64_t v = 0;
                if (mira_element_get_int(pr, 0, &v, NULL) && v == 1)
                    return MIRA_VR_SS;
                return MIRA_VR_US;
            }
        }
        return MIRA_VR_US;
    }
    if (tag == MIRA_TAG(0x0028, 0x3006)) {
        /* LUT Data: US if the LUT has a single entry, else OW (PS3.3 C.11.1.1.1) */
        for (const mira_dataset *d = ds; d; d = d->parent) {
            mira_element *desc = mira_dataset_get(d, MIRA_TAG(0x0028, 0x3002));
            if (desc) {
                int64_t n = 0;
                if (mira_element_get_int(desc, 0, &n, NULL) && n == 1)
                    return MIRA_VR_US;
                break;
            }
        }
        return MIRA_VR_OW;
    }
    /* "OB or OW" (overlay, waveform, others) is OW in implicit VR (PS3.5 A.1). */
    return MIRA_VR_OW;
}

/* ------------------------------------------------------------------ helpers */

static bool binary_value(const mira_element *e, size_t i, uint64_t *bits, size_t *size,
                         mira_error **err)
{
    mira_vr vr = (mira_vr)e->vr;
    size_t sz = mira_vr_value_size(vr);
    if (vr == MIRA_VR_OB || vr == MIRA_VR_UN)
        sz = 1;
    if (sz == 0 || e->encapsulated) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Not a number",
                       "element (%04X,%04X) with VR %s has no numeric values",
                       MIRA_TAG_GROUP(e->tag), MIRA_TAG_ELEMENT(e->tag), mira_vr_name(vr));
        return false;
    }
    if (i >= e->value_len / sz) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such value",
                       "element (%04X,%04X) has no value %zu", MIRA_TAG_GROUP(e->tag),
                       MIRA_TAG_ELEMENT(e->tag), i);
        return false;
    }
    const uint8_t *p = e->value + i * sz;
    bool big = e->ds && e->ds->big_endian;
    uint64_t v = 0;
    if (vr == MIRA_VR_AT) {
        v = (uint64_t)mira__rd16(p, big) << 16 | mira__rd16(p + 2, big);
    } else if (big) {
        for (size_t k = 0; k < sz; k++)
            v = v << 8 | p[k];
    } else {
        for (size_t k = sz; k-- > 0;)
            v = v << 8 | p[k];
    }
    *bits = v;
    *size = sz;
    return true;
}

static const char *element_charset(const mira_element *e)
{
    return mira_dataset_charset(e->ds);
}
