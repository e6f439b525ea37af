/* The DICOM JSON model (PS3.18 F.2): data sets to JSON and back, matching pydicom 2.4. */
#include "mira/dicom.h"
#include "mira/json.h"

#include "core/base64.h"
#include "core/buf.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The reference for the JSON mira writes is pydicom 2.4.4's Dataset.to_json_dict() with default
 * arguments. Where pydicom and PS3.18 F.2 disagree:
 *
 *  - Empty values inside a multi-valued string (CS "A\\B"): pydicom writes "", the standard
 *    (F.2.5) null. mira follows pydicom: "".
 *  - An empty sequence: pydicom writes "Value": [], the standard leaves "Value" out for empty
 *    attributes. mira follows pydicom.
 *  - Empty values inside a multi-valued DS, IS or PN: pydicom fails (ValueError, IndexError).
 *    mira writes null, as the standard says.
 *  - A DS or IS value that is not a number ("1A", "NaN", IS "1.5"): pydicom fails, writes NaN
 *    (not JSON) or truncates (IS "1.5" -> 1). mira writes the text as a JSON string, so that
 *    nothing is lost and the JSON stays valid; FL/FD NaN and infinities become null.
 *  - OW/OF/OD/OL/OV of a big-endian data set: pydicom base64-encodes the bytes as they are in
 *    the file (big-endian); F.2.7 defines InlineBinary as the little-endian encoding. mira
 *    follows the standard and swaps each value first.
 *  - DS values: pydicom writes float(value); mira writes the decimal text of the file, made a
 *    valid JSON number ("+.5" -> "0.5"), which is the same number, exactly, with no locale
 *    or double rounding in between.
 *  - PN: pydicom drops trailing empty component groups ("A^B=" -> Alphabetic only) and treats
 *    a value of only '=' as empty; mira does the same. Groups beyond the third are dropped
 *    (the model has no place for them).
 *  - Encapsulated pixel data: InlineBinary of the encapsulated encoding (every item with its
 *    tag and length, basic offset table first, no sequence delimiter), as pydicom does.
 *  - The file meta information is not part of the data set and is not written (pydicom's
 *    to_json_dict of a FileDataset leaves it out too); group lengths inside the data set are.
 */

#define TAG_FLOAT_PIXEL_DATA MIRA_TAG(0x7FE0, 0x0008)
#define TAG_DOUBLE_PIXEL_DATA MIRA_TAG(0x7FE0, 0x0009)

static bool is_bulk_vr(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_OB:
    case MIRA_VR_OD:
    case MIRA_VR_OF:
    case MIRA_VR_OL:
    case MIRA_VR_OV:
    case MIRA_VR_OW:
    case MIRA_VR_UN:
        return true;
    default:
        return false;
    }
}

/* Text VRs that hold one value: a backslash is an ordinary character there. */
static bool is_single_valued(mira_vr vr)
{
    return vr == MIRA_VR_LT || vr == MIRA_VR_ST || vr == MIRA_VR_UT || vr == MIRA_VR_UR;
}

/* VRs whose text follows the Specific Character Set (the others are ASCII by definition). */
static bool uses_charset(mira_vr vr)
{
    switch (vr) {
    case MIRA_VR_SH:
    case MIRA_VR_LO:
    case MIRA_VR_ST:
    case MIRA_VR_LT:
    case MIRA_VR_PN:
    case MIRA_VR_UC:
    case MIRA_VR_UT:
        return true;
    default:
        return false;
    }
}

static bool is_pixel_data(mira_tag t)
{
    return t == MIRA_TAG_PIXEL_DATA || t == TAG_FLOAT_PIXEL_DATA || t == TAG_DOUBLE_PIXEL_DATA;
}

static void swap_values(uint8_t *p, size_t len, size_t size)
{
    for (size_t off = 0; size > 1 && off + size <= len; off += size)
        for (size_t a = off, b = off + size - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ================================================================== data set -> JSON */

typedef struct to_ctx {
    mira_json_writer *w;
    mira_json_options opt;
    mira__buf path; /* "<bulk_uri>/<tag>[/<item>/<tag>...]" of the element being written */
    mira_error **err;
    bool failed;
} to_ctx;

/* "+.50" -> "0.50", "-007" -> "-7": DS/IS text as JSON number text; false if not a number.
 * DS grammar (PS3.5 6.2): [+-] digits [. digits] [(e|E) [+-] digits], digits on one side of
 * the point at least. JSON wants no '+', no leading zeros, digits on both sides of a point. */
static bool decimal_to_json(const char *s, size_t n, bool integer_only, mira__buf *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t int_end = i, frac_start = i, frac_end = i;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_end = i;
    }
    if (int_end == int_start && frac_end == frac_start)
        return false;
    size_t exp_start = i;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i != n)
        return false;
    /* strip leading zeros of the integer part, keep one digit */
    while (int_start + 1 < int_end && s[int_start] == '0')
        int_start++;
    bool has_frac = frac_end > frac_start;
    if (integer_only) {
        /* IS "12.00" is 12; "1.5" or "1e3" are not integers mira writes as numbers */
        for (size_t k = frac_start; k < frac_end; k++)
            if (s[k] != '0')
                return false;
        if (exp_start != n || int_end == int_start)
            return false;
        bool zero = int_end - int_start == 1 && s[int_start] == '0';
        if (neg && !zero)
            mira__buf_putc(out, '-');
        mira__buf_append(out, s + int_start, int_end - int_start);
        return true;
    }
    if (neg)
        mira__buf_putc(out, '-');
    if (int_end == int_start)
        mira__buf_putc(out, '0');
    else
        mira__buf_append(out, s + int_start, int_end - int_start);
    if (has_frac) {
        mira__buf_putc(out, '.');
        mira__buf_append(out, s + frac_start, frac_end - frac_start);
    }
    mira__buf_append(out, s + exp_start, n - exp_start);
    return true;
}

static void write_ds_is(to_ctx *c, mira_vr vr, const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0) {
        mira_json_null(c->w);
        return;
    }
    mira__buf num;
    mira__buf_init(&num);
    if (decimal_to_json(s, n, vr == MIRA_VR_IS, &num) && !num.failed)
        mira_json_number_text(c->w, (const char *)num.data, num.len);
    else
        mira_json_string(c->w, s, n);
    mira__buf_cleanup(&num);
}

/* One PN value: {"Alphabetic", "Ideographic", "Phonetic"}, trailing empty groups dropped;
 * null if every group is empty. */
static void write_pn(to_ctx *c, const char *s, size_t n)
{
    static const char *const names[3] = {"Alphabetic", "Ideographic", "Phonetic"};
    const char *group[3] = {s, NULL, NULL};
    size_t glen[3] = {n, 0, 0};
    int ngroups = 1;
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i == n || s[i] == '=') {
            if (ngroups <= 3) {
                group[ngroups - 1] = s + start;
                glen[ngroups - 1] = i - start;
            }
            if (i < n)
                ngroups++;
            start = i + 1;
        }
    }
    if (ngroups > 3)
        ngroups = 3;
    while (ngroups > 0 && glen[ngroups - 1] == 0)
        ngroups--;
    if (ngroups == 0) {
        mira_json_null(c->w);
        return;
    }
    mira_json_begin_object(c->w);
    for (int g = 0; g < ngroups; g++) {
        mira_json_key(c->w, names[g]);
        mira_json_string(c->w, group[g], glen[g]);
    }
    mira_json_end_object(c->w);
}

static bool write_string_value(to_ctx *c, const mira_element *e, mira_vr vr)
{
    char *text = mira_element_get_text(e, c->err);
    if (!text)
        return false;
    size_t n = strlen(text);
    bool pn_empty = false;
    if (vr == MIRA_VR_PN) {
        /* a single name of only '=' separators is empty (pydicom: no "Value") */
        pn_empty = true;
        for (size_t i = 0; i < n && pn_empty; i++)
            pn_empty = text[i] == '=';
    }
    if (n == 0 || pn_empty) {
        mira_free(text);
        return true;
    }
    mira_json_key(c->w, "Value");
    mira_json_begin_array(c->w);
    const char *p = text, *end = text + n;
    for (;;) {
        const char *bs = is_single_valued(vr) ? NULL : memchr(p, '\\', (size_t)(end - p));
        const char *stop = bs ? bs : end;
        size_t len = (size_t)(stop - p);
        if (vr == MIRA_VR_PN)
            write_pn(c, p, len);
        else if (vr == MIRA_VR_DS || vr == MIRA_VR_IS)
            write_ds_is(c, vr, p, len);
        else
            mira_json_string(c->w, p, len);
        if (!bs)
            break;
        p = bs + 1;
    }
    mira_json_end_array(c->w);
    mira_free(text);
    return true;
}

static bool write_number_values(to_ctx *c, const mira_element *e, mira_vr vr)
{
    size_t vm = mira_element_vm(e);
    if (vm == 0)
        return true;
    mira_json_key(c->w, "Value");
    mira_json_begin_array(c->w);
    for (size_t i = 0; i < vm; i++) {
        bool ok;
        if (vr == MIRA_VR_AT) {
            uint64_t t = 0;
            ok = mira_element_get_uint(e, i, &t, c->err);
            char hex[16];
            snprintf(hex, sizeof hex, "%08X", (unsigned)t);
            mira_json_cstring(c->w, hex);
        } else if (vr == MIRA_VR_FL || vr == MIRA_VR_FD) {
            double d = 0;
            ok = mira_element_get_double(e, i, &d, c->err);
            mira_json_double(c->w, d);
        } else if (vr == MIRA_VR_SS || vr == MIRA_VR_SL || vr == MIRA_VR_SV) {
            int64_t v = 0;
            ok = mira_element_get_int(e, i, &v, c->err);
            mira_json_int(c->w, v);
        } else {
            uint64_t v = 0;
            ok = mira_element_get_uint(e, i, &v, c->err);
            mira_json_uint(c->w, v);
        }
        if (!ok)
            return false;
    }
    mira_json_end_array(c->w);
    return true;
}

/* "InlineBinary" (or "BulkDataURI" over the threshold) of len bytes. */
static bool write_binary(to_ctx *c, const uint8_t *bytes, size_t len)
{
    if (c->opt.bulk_uri && c->opt.bulk_threshold && len > c->opt.bulk_threshold) {
        mira_json_key(c->w, "BulkDataURI");
        mira_json_string(c->w, (const char *)c->path.data, c->path.len);
        return true;
    }
    mira__buf b64;
    mira__buf_init(&b64);
    if (!mira__base64_encode(&b64, bytes, len)) {
        mira__buf_cleanup(&b64);
        mira_error_set(c->err, MIRA_ERR_NOMEM, NULL, "Out of memory encoding base64");
        return false;
    }
    mira_json_key(c->w, "InlineBinary");
    mira_json_string(c->w, (const char *)b64.data, b64.len);
    mira__buf_cleanup(&b64);
    return true;
}

/* The encapsulated encoding of pixel data, as it is in the file: items, offset table first. */
static bool write_encapsulated(to_ctx *c, const mira_element *e)
{
    mira__buf raw;
    mira__buf_init(&raw);
    size_t n;
    const uint8_t *p = mira_element_offset_table(e, &n);
    size_t count = mira_element_fragment_count(e);
    for (size_t i = 0; i <= count; i++) {
        if (i > 0)
            p = mira_element_fragment(e, i - 1, &n);
        mira__buf_u16le(&raw, 0xFFFE);
        mira__buf_u16le(&raw, 0xE000);
        mira__buf_u32le(&raw, (uint32_t)n);
        mira__buf_append(&raw, p, n);
    }
    bool ok = !raw.failed;
    if (ok)
        ok = write_binary(c, raw.data, raw.len);
    else
        mira_error_set(c->err, MIRA_ERR_NOMEM, NULL, "Out of memory encoding pixel data");
    mira__buf_cleanup(&raw);
    return ok;
}

static bool write_dataset(to_ctx *c, const mira_dataset *ds);

static bool write_element(to_ctx *c, const mira_dataset *ds, const mira_element *e)
{
    mira_tag tag = mira_element_tag(e);
    mira_vr vr = mira_element_vr(e);
    char key[16];
    snprintf(key, sizeof key, "%08X", (unsigned)tag);
    mira_json_key(c->w, key);
    mira_json_begin_object(c->w);
    mira_json_key(c->w, "vr");
    mira_json_cstring(c->w, mira_vr_name(vr));
    bool ok = true;
    if (vr == MIRA_VR_SQ) {
        mira_json_key(c->w, "Value");
        mira_json_begin_array(c->w);
        size_t base = c->path.len;
        for (size_t i = 0; ok && i < mira_element_item_count(e); i++) {
            mira__buf_printf(&c->path, "/%zu", i);
            ok = write_dataset(c, mira_element_item(e, i));
            c->path.len = base;
        }
        mira_json_end_array(c->w);
    } else if (c->opt.bulk_uri && c->opt.pixels_bulk && is_pixel_data(tag)) {
        mira_json_key(c->w, "BulkDataURI");
        mira_json_string(c->w, (const char *)c->path.data, c->path.len);
    } else if (mira_element_is_encapsulated(e)) {
        ok = write_encapsulated(c, e);
    } else if (is_bulk_vr(vr)) {
        size_t len;
        const uint8_t *bytes = mira_element_bytes(e, &len);
        size_t size = vr == MIRA_VR_UN || vr == MIRA_VR_OB ? 1 : mira_vr_value_size(vr);
        if (len && mira_dataset_is_big_endian(ds) && size > 1) {
            uint8_t *le = mira_malloc(len);
            if (!le) {
                mira_error_set(c->err, MIRA_ERR_NOMEM, NULL, "Out of memory swapping bytes");
                return false;
            }
            memcpy(le, bytes, len);
            swap_values(le, len, size);
            ok = write_binary(c, le, len);
            mira_free(le);
        } else if (len) {
            ok = write_binary(c, bytes, len);
        }
    } else if (mira_vr_is_string(vr)) {
        ok = write_string_value(c, e, vr);
    } else {
        ok = write_number_values(c, e, vr);
    }
    mira_json_end_object(c->w);
    if (!ok)
        mira_error_prefix(c->err, "DICOM JSON: element (%04X,%04X): ", MIRA_TAG_GROUP(tag),
                          MIRA_TAG_ELEMENT(tag));
    return ok;
}

static bool write_dataset(to_ctx *c, const mira_dataset *ds)
{
    mira_json_begin_object(c->w);
    size_t base = c->path.len;
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        if (c->opt.no_pixels && is_pixel_data(mira_element_tag(e)))
            continue;
        mira__buf_printf(&c->path, "/%08X", (unsigned)mira_element_tag(e));
        bool ok = write_element(c, ds, e);
        c->path.len = base;
        if (!ok)
            return false;
    }
    mira_json_end_object(c->w);
    return true;
}

char *mira_dataset_to_json(const mira_dataset *ds, const mira_json_options *opt, mira_error **err)
{
    if (!ds) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument", "DICOM JSON: no data set");
        return NULL;
    }
    to_ctx c = {.err = err};
    if (opt)
        c.opt = *opt;
    mira__buf_init(&c.path);
    if (c.opt.bulk_uri)
        mira__buf_puts(&c.path, c.opt.bulk_uri);
    c.w = mira_json_writer_new(c.opt.pretty);
    if (!c.w || c.path.failed) {
        mira_json_writer_free(c.w);
        mira__buf_cleanup(&c.path);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "Out of memory");
        return NULL;
    }
    bool ok = write_dataset(&c, ds);
    char *out = NULL;
    if (ok && c.path.failed)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "Out of memory");
    else if (ok)
        out = mira_json_writer_finish(c.w, NULL, err);
    mira_json_writer_free(c.w);
    mira__buf_cleanup(&c.path);
    return out;
}

/* ================================================================== JSON -> data set */

typedef struct from_ctx {
    mira_error **err;
    mira__buf where; /* "00081140[0].00100010" of the element being read, for messages */
    mira__buf value; /* scratch for the value being built */
} from_ctx;

static bool fail(from_ctx *c, mira_error_code code, const char *fmt, ...) MIRA_PRINTF(3, 4);

static bool fail(from_ctx *c, mira_error_code code, const char *fmt, ...)
{
    if (code == MIRA_ERR_NOMEM || c->where.failed) {
        mira_error_set(c->err, MIRA_ERR_NOMEM, NULL, "Out of memory reading DICOM JSON");
        return false;
    }
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mira_error_set(c->err, code,
                   code == MIRA_ERR_UNSUPPORTED ? "Unsupported DICOM JSON" : "Invalid DICOM JSON",
                   "DICOM JSON: %s: %s", c->where.len ? (const char *)c->where.data : "top level",
                   msg);
    return false;
}

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static bool parse_key(const char *key, mira_tag *tag)
{
    uint32_t t = 0;
    size_t i = 0;
    for (; key[i]; i++) {
        char ch = key[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                         : -1;
        if (d < 0 || i >= 8)
            return false;
        t = t << 4 | (uint32_t)d;
    }
    if (i != 8)
        return false;
    *tag = t;
    return true;
}

/* The VR of an attribute object, or MIRA_VR_NONE. */
static mira_vr vr_of(const mira_json *attr)
{
    size_t n;
    const char *s = mira_json_get_string(mira_json_get(attr, "vr"), &n);
    if (!s || n != 2)
        return MIRA_VR_NONE;
    mira_vr vr = mira_vr_from_string(s);
    return strcmp(mira_vr_name(vr), "??") == 0 ? MIRA_VR_NONE : vr;
}

/* True if this scope (the object and the items of its sequences that do not declare their own
 * Specific Character Set) holds non-ASCII text in a VR that follows the character set. */
static bool scope_has_non_ascii(const mira_json *obj, int depth)
{
    if (depth > 200)
        return false;
    for (size_t i = 0; i < mira_json_count(obj); i++) {
        const mira_json *attr = mira_json_at(obj, i);
        mira_vr vr = vr_of(attr);
        const mira_json *value = mira_json_get(attr, "Value");
        for (size_t k = 0; k < mira_json_count(value); k++) {
            const mira_json *v = mira_json_at(value, k);
            if (vr == MIRA_VR_SQ) {
                if (!mira_json_get(v, "00080005") && scope_has_non_ascii(v, depth + 1))
                    return true;
            } else if (uses_charset(vr)) {
                size_t n;
                const char *s = mira_json_get_string(v, &n);
                if (s && !is_ascii(s, n))
                    return true;
                for (size_t g = 0; g < mira_json_count(v); g++) { /* PN groups */
                    s = mira_json_get_string(mira_json_at(v, g), &n);
                    if (s && !is_ascii(s, n))
                        return true;
                }
            }
        }
    }
    return false;
}

/* The n-th value as text for a string VR (null: empty). */
static bool append_string(from_ctx *c, mira_vr vr, const mira_json *v, size_t k)
{
    mira__buf *b = &c->value;
    mira_json_type t = mira_json_get_type(v);
    if (t == MIRA_JSON_NULL)
        return true;
    if (t != MIRA_JSON_STRING)
        return fail(c, MIRA_ERR_INVALID, "value %zu of a %s must be a string or null", k,
                    mira_vr_name(vr));
    size_t n;
    const char *s = mira_json_get_string(v, &n);
    if (!is_single_valued(vr) && memchr(s, '\\', n))
        return fail(c, MIRA_ERR_INVALID, "value %zu contains a backslash, the value separator", k);
    mira__buf_append(b, s, n);
    return true;
}

static bool append_pn(from_ctx *c, const mira_json *v, size_t k)
{
    static const char *const names[3] = {"Alphabetic", "Ideographic", "Phonetic"};
    mira_json_type t = mira_json_get_type(v);
    if (t == MIRA_JSON_NULL)
        return true;
    if (t == MIRA_JSON_STRING) /* not the model, but some servers write it; so does pydicom */
        return append_string(c, MIRA_VR_PN, v, k);
    if (t != MIRA_JSON_OBJECT)
        return fail(c, MIRA_ERR_INVALID, "value %zu of a PN must be an object", k);
    for (size_t i = 0; i < mira_json_count(v); i++) {
        const char *key = mira_json_key_at(v, i);
        if (strcmp(key, names[0]) && strcmp(key, names[1]) && strcmp(key, names[2]))
            return fail(c, MIRA_ERR_INVALID, "value %zu: unknown PN component group \"%s\"", k,
                        key);
    }
    int last = -1;
    for (int g = 0; g < 3; g++)
        if (mira_json_get(v, names[g]))
            last = g;
    for (int g = 0; g <= last; g++) {
        if (g)
            mira__buf_putc(&c->value, '=');
        const mira_json *comp = mira_json_get(v, names[g]);
        if (!comp || mira_json_get_type(comp) == MIRA_JSON_NULL)
            continue;
        size_t n;
        const char *s = mira_json_get_string(comp, &n);
        if (!s)
            return fail(c, MIRA_ERR_INVALID, "value %zu: \"%s\" must be a string", k, names[g]);
        if (memchr(s, '\\', n) || memchr(s, '=', n))
            return fail(c, MIRA_ERR_INVALID, "value %zu: \"%s\" contains '\\' or '='", k, names[g]);
        mira__buf_append(&c->value, s, n);
    }
    return true;
}

/* Numbers in C notation, whatever LC_NUMERIC says: conversions run under the C locale. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static int format_c(char *out, size_t n, int prec, double d)
{
    pthread_once(&c_locale_once, make_c_locale);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    int len = snprintf(out, n, "%.*g", prec, d);
    if (old)
        uselocale(old);
    return len;
}

static double parse_c(const char *s)
{
    pthread_once(&c_locale_once, make_c_locale);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    double d = strtod(s, NULL);
    if (old)
        uselocale(old);
    return d;
}

/* True if text is a JSON integer: -?digits. */
static bool is_integer_text(const char *t)
{
    if (*t == '-')
        t++;
    if (!*t)
        return false;
    for (; *t; t++)
        if (*t < '0' || *t > '9')
            return false;
    return true;
}

/* A DS value (max 16 characters) for a JSON number. */
static bool append_ds(from_ctx *c, const mira_json *v, size_t k)
{
    mira_json_type t = mira_json_get_type(v);
    if (t == MIRA_JSON_NULL)
        return true;
    if (t == MIRA_JSON_STRING) /* lenient: DS text as a string, as mira writes "NaN" */
        return append_string(c, MIRA_VR_DS, v, k);
    if (t != MIRA_JSON_NUMBER)
        return fail(c, MIRA_ERR_INVALID, "value %zu of a DS must be a number", k);
    const char *text = mira_json_get_number_text(v);
    size_t n = strlen(text);
    if (n <= 16) { /* JSON number text is valid DS text */
        mira__buf_append(&c->value, text, n);
        return true;
    }
    double d = mira_json_get_number(v);
    if (!isfinite(d))
        return fail(c, MIRA_ERR_INVALID, "value %zu (%s) is out of range for DS", k, text);
    char buf[40];
    int len = 0;
    /* the shortest text that reads back as the same double, if it fits ... */
    for (int prec = 1; prec <= 17; prec++) {
        len = format_c(buf, sizeof buf, prec, d);
        if (parse_c(buf) == d)
            break;
    }
    /* ... else the most precise that fits */
    for (int prec = 16; len > 16 && prec > 0; prec--)
        len = format_c(buf, sizeof buf, prec, d);
    if (len > 16)
        return fail(c, MIRA_ERR_INVALID, "value %zu (%s) does not fit a DS", k, text);
    mira__buf_append(&c->value, buf, (size_t)len);
    return true;
}

/* An integer of a JSON number (exact for integer text); false if it is not an integer. */
static bool json_int(const mira_json *v, int64_t *out, uint64_t *uout, bool *is_unsigned)
{
    const char *text = mira_json_get_number_text(v);
    *is_unsigned = false;
    if (is_integer_text(text)) {
        char *end;
        errno = 0;
        if (text[0] == '-') {
            long long x = strtoll(text, &end, 10);
            if (errno)
                return false;
            *out = x;
            *uout = 0;
            return true;
        }
        unsigned long long u = strtoull(text, &end, 10);
        if (errno)
            return false;
        *uout = u;
        *is_unsigned = true;
        *out = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        return true;
    }
    double d = mira_json_get_number(v);
    if (!(d == floor(d)) || !(d >= -9223372036854775808.0 && d < 18446744073709551616.0))
        return false;
    if (d >= 0) {
        *uout = (uint64_t)d;
        *is_unsigned = true;
        *out = d < 9223372036854775808.0 ? (int64_t)d : INT64_MAX;
    } else {
        *out = (int64_t)d;
        *uout = 0;
    }
    return true;
}

static bool append_is(from_ctx *c, const mira_json *v, size_t k)
{
    mira_json_type t = mira_json_get_type(v);
    if (t == MIRA_JSON_NULL)
        return true;
    if (t == MIRA_JSON_STRING)
        return append_string(c, MIRA_VR_IS, v, k);
    if (t != MIRA_JSON_NUMBER)
        return fail(c, MIRA_ERR_INVALID, "value %zu of an IS must be a number", k);
    int64_t x;
    uint64_t u;
    bool is_u;
    if (!json_int(v, &x, &u, &is_u))
        return fail(c, MIRA_ERR_INVALID, "value %zu (%s) of an IS is not an integer", k,
                    mira_json_get_number_text(v));
    if (is_u)
        mira__buf_printf(&c->value, "%llu", (unsigned long long)u);
    else
        mira__buf_printf(&c->value, "%lld", (long long)x);
    return true;
}

/* One binary number, little-endian. */
static bool append_binary_number(from_ctx *c, mira_vr vr, const mira_json *v, size_t k)
{
    mira__buf *b = &c->value;
    if (vr == MIRA_VR_AT) {
        size_t n;
        const char *s = mira_json_get_string(v, &n);
        mira_tag t;
        if (!s || n != 8 || !parse_key(s, &t))
            return fail(c, MIRA_ERR_INVALID, "value %zu of an AT must be \"GGGGEEEE\"", k);
        mira__buf_u16le(b, MIRA_TAG_GROUP(t));
        mira__buf_u16le(b, MIRA_TAG_ELEMENT(t));
        return true;
    }
    if (mira_json_get_type(v) != MIRA_JSON_NUMBER)
        return fail(c, MIRA_ERR_INVALID, "value %zu of a %s must be a number", k, mira_vr_name(vr));
    if (vr == MIRA_VR_FL || vr == MIRA_VR_FD) {
        double d = mira_json_get_number(v);
        uint8_t raw[8];
        if (vr == MIRA_VR_FL) {
            if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
                return fail(c, MIRA_ERR_INVALID, "value %zu (%s) is out of range for FL", k,
                            mira_json_get_number_text(v));
            float f = (float)d;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            return mira__buf_u32le(b, bits);
        }
        uint64_t bits;
        memcpy(&bits, &d, 8);
        for (int i = 0; i < 8; i++)
            raw[i] = (uint8_t)(bits >> (8 * i));
        return mira__buf_append(b, raw, 8);
    }
    int64_t x;
    uint64_t u;
    bool is_u;
    bool ok = json_int(v, &x, &u, &is_u);
    uint64_t bits = 0;
    size_t size = mira_vr_value_size(vr);
    switch (vr) {
    case MIRA_VR_US:
        ok = ok && is_u && u <= 0xFFFF;
        bits = u;
        break;
    case MIRA_VR_UL:
        ok = ok && is_u && u <= 0xFFFFFFFFu;
        bits = u;
        break;
    case MIRA_VR_UV:
        ok = ok && is_u;
        bits = u;
        break;
    case MIRA_VR_SS:
        ok = ok && (is_u ? u <= 32767 : x >= -32768);
        bits = (uint64_t)x;
        break;
    case MIRA_VR_SL:
        ok = ok && (is_u ? u <= 2147483647u : x >= -2147483647 - 1);
        bits = (uint64_t)x;
        break;
    case MIRA_VR_SV:
        ok = ok && (!is_u || u <= INT64_MAX);
        bits = (uint64_t)x;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok)
        return fail(c, MIRA_ERR_INVALID, "value %zu (%s) is not a valid %s", k,
                    mira_json_get_number_text(v), mira_vr_name(vr));
    for (size_t i = 0; i < size; i++)
        mira__buf_putc(b, (char)(uint8_t)(bits >> (8 * i)));
    return true;
}

/* Base64 of "InlineBinary" (a string, or pydicom's list of one string) into c->value. */
static bool decode_inline(from_ctx *c, const mira_json *v, const char *what)
{
    if (mira_json_get_type(v) == MIRA_JSON_ARRAY && mira_json_count(v) == 1)
        v = mira_json_at(v, 0);
    size_t n;
    const char *s = mira_json_get_string(v, &n);
    if (!s)
        return fail(c, MIRA_ERR_INVALID, "\"%s\" must be a base64 string", what);
    if (!mira__base64_decode(&c->value, s, n)) {
        if (c->value.failed)
            return fail(c, MIRA_ERR_NOMEM, "out of memory");
        return fail(c, MIRA_ERR_INVALID, "\"%s\" is not valid base64", what);
    }
    return true;
}

/* A "BulkDataURI": only data: URIs carry their bytes; anything else would need fetching. */
static bool decode_bulk(from_ctx *c, const mira_json *v)
{
    if (mira_json_get_type(v) == MIRA_JSON_ARRAY && mira_json_count(v) == 1)
        v = mira_json_at(v, 0);
    size_t n;
    const char *s = mira_json_get_string(v, &n);
    if (!s)
        return fail(c, MIRA_ERR_INVALID, "\"BulkDataURI\" must be a string");
    const char *comma = memchr(s, ',', n);
    if (n > 5 && strncmp(s, "data:", 5) == 0 && comma && comma - s >= 12 &&
        strncmp(comma - 7, ";base64", 7) == 0) {
        size_t off = (size_t)(comma + 1 - s);
        if (!mira__base64_decode(&c->value, comma + 1, n - off)) {
            if (c->value.failed)
                return fail(c, MIRA_ERR_NOMEM, "out of memory");
            return fail(c, MIRA_ERR_INVALID, "the data: URI is not valid base64");
        }
        return true;
    }
    return fail(c, MIRA_ERR_UNSUPPORTED, "unsupported: BulkDataURI \"%.*s\" (cannot fetch)",
                n > 200 ? 200 : (int)n, s);
}

/* Pixel data bytes that are a whole encapsulated encoding: items, the first the offset table,
 * maybe a sequence delimiter at the end. Sets the element up as encapsulated if so. */
static bool try_encapsulated(from_ctx *c, mira_dataset *ds, mira_tag tag, bool *done)
{
    const uint8_t *p = c->value.data;
    size_t len = c->value.len, pos = 0, items = 0;
    *done = false;
    while (pos < len) {
        if (len - pos < 8)
            return true;
        uint16_t g = (uint16_t)(p[pos] | p[pos + 1] << 8);
        uint16_t el = (uint16_t)(p[pos + 2] | p[pos + 3] << 8);
        uint32_t n = (uint32_t)p[pos + 4] | (uint32_t)p[pos + 5] << 8 | (uint32_t)p[pos + 6] << 16 |
                     (uint32_t)p[pos + 7] << 24;
        if (g == 0xFFFE && el == 0xE0DD && n == 0 && pos + 8 == len && items)
            break;
        if (g != 0xFFFE || el != 0xE000 || n > len - pos - 8)
            return true;
        pos += 8 + n;
        items++;
    }
    if (!items)
        return true;
    mira_element *e = mira_dataset_set_encapsulated(ds, tag, c->err);
    if (!e)
        return false;
    pos = 0;
    for (size_t i = 0; i < items; i++) {
        uint32_t n = (uint32_t)p[pos + 4] | (uint32_t)p[pos + 5] << 8 | (uint32_t)p[pos + 6] << 16 |
                     (uint32_t)p[pos + 7] << 24;
        if (!mira_element_add_fragment(e, p + pos + 8, n, i == 0, c->err))
            return false;
        pos += 8 + n;
    }
    *done = true;
    return true;
}

static bool read_object(from_ctx *c, const mira_json *obj, mira_dataset *ds, bool top, int depth);

static bool read_sequence(from_ctx *c, mira_dataset *ds, mira_tag tag, const mira_json *value,
                          int depth)
{
    mira_element *seq = mira_dataset_set_sequence(ds, tag, c->err);
    if (!seq)
        return false;
    size_t base = c->where.len;
    for (size_t i = 0; i < mira_json_count(value); i++) {
        const mira_json *item = mira_json_at(value, i);
        mira_json_type t = mira_json_get_type(item);
        if (t != MIRA_JSON_OBJECT && t != MIRA_JSON_NULL)
            return fail(c, MIRA_ERR_INVALID, "item %zu must be an object", i);
        mira_dataset *ids = mira_element_add_item(seq, c->err);
        if (!ids)
            return false;
        mira__buf_printf(&c->where, "[%zu]", i);
        if (!read_object(c, item, ids, false, depth + 1))
            return false;
        c->where.len = base;
        c->where.data[base] = 0;
    }
    return true;
}

/* Set c->value (padded to even length) as the value of tag. */
static bool put_value(from_ctx *c, mira_dataset *ds, mira_tag tag, mira_vr vr)
{
    if (c->value.failed)
        return fail(c, MIRA_ERR_NOMEM, "out of memory");
    if (mira_vr_is_string(vr) && c->value.len % 2)
        mira__buf_putc(&c->value, vr == MIRA_VR_UI ? '\0' : ' ');
    if (c->value.failed)
        return fail(c, MIRA_ERR_NOMEM, "out of memory");
    return mira_dataset_set_bytes(ds, tag, vr, c->value.data ? c->value.data : (uint8_t *)"",
                                  c->value.len, c->err) != NULL;
}

static bool read_attribute(from_ctx *c, mira_dataset *ds, mira_tag tag, const mira_json *attr,
                           int depth)
{
    if (mira_json_get_type(attr) != MIRA_JSON_OBJECT)
        return fail(c, MIRA_ERR_INVALID, "the attribute must be an object");
    const mira_json *vrj = mira_json_get(attr, "vr");
    if (!vrj)
        return fail(c, MIRA_ERR_INVALID, "no \"vr\"");
    mira_vr vr = vr_of(attr);
    if (vr == MIRA_VR_NONE) {
        const char *s = mira_json_get_string(vrj, NULL);
        return fail(c, MIRA_ERR_INVALID, "\"vr\" %s%.20s%s is not a VR", s ? "\"" : "",
                    s ? s : "(not a string)", s ? "\"" : "");
    }
    const mira_json *value = mira_json_get(attr, "Value");
    const mira_json *inl = mira_json_get(attr, "InlineBinary");
    const mira_json *bulk = mira_json_get(attr, "BulkDataURI");
    if ((value != NULL) + (inl != NULL) + (bulk != NULL) > 1)
        return fail(c, MIRA_ERR_INVALID,
                    "more than one of \"Value\", \"InlineBinary\" and \"BulkDataURI\"");
    if (value && mira_json_get_type(value) != MIRA_JSON_ARRAY)
        return fail(c, MIRA_ERR_INVALID, "\"Value\" must be an array");
    c->value.len = 0;
    c->value.failed = false;

    if (vr == MIRA_VR_SQ) {
        if (inl || bulk)
            return fail(c, MIRA_ERR_INVALID, "a sequence takes \"Value\", not binary data");
        return read_sequence(c, ds, tag, value, depth);
    }
    if (inl || bulk) {
        if (!(inl ? decode_inline(c, inl, "InlineBinary") : decode_bulk(c, bulk)))
            return false;
        if (tag == MIRA_TAG_PIXEL_DATA && vr == MIRA_VR_OB) {
            bool done;
            if (!try_encapsulated(c, ds, tag, &done))
                return false;
            if (done)
                return true;
        }
        size_t size = vr == MIRA_VR_AT ? 4 : mira_vr_value_size(vr);
        if (size > 1 && c->value.len % size)
            return fail(c, MIRA_ERR_INVALID, "%zu bytes are not a whole number of %s values",
                        c->value.len, mira_vr_name(vr));
        return put_value(c, ds, tag, vr);
    }
    if (is_bulk_vr(vr) && value && mira_json_count(value))
        return fail(c, MIRA_ERR_INVALID, "a %s takes \"InlineBinary\", not \"Value\"",
                    mira_vr_name(vr));
    size_t n = mira_json_count(value);
    if (n > 1 && is_single_valued(vr))
        return fail(c, MIRA_ERR_INVALID, "a %s has one value, not %zu", mira_vr_name(vr), n);
    for (size_t k = 0; k < n; k++) {
        const mira_json *v = mira_json_at(value, k);
        bool ok;
        if (mira_vr_is_string(vr) && k > 0)
            mira__buf_putc(&c->value, '\\');
        switch (vr) {
        case MIRA_VR_PN:
            ok = append_pn(c, v, k);
            break;
        case MIRA_VR_DS:
            ok = append_ds(c, v, k);
            break;
        case MIRA_VR_IS:
            ok = append_is(c, v, k);
            break;
        default:
            ok = mira_vr_is_string(vr) ? append_string(c, vr, v, k)
                                       : append_binary_number(c, vr, v, k);
        }
        if (!ok)
            return false;
    }
    return put_value(c, ds, tag, vr);
}

static bool read_object(from_ctx *c, const mira_json *obj, mira_dataset *ds, bool top, int depth)
{
    if (depth > 128)
        return fail(c, MIRA_ERR_LIMIT, "sequences nested deeper than 128");
    bool non_ascii = scope_has_non_ascii(obj, 0);
    size_t base = c->where.len;
    for (size_t i = 0; i < mira_json_count(obj); i++) {
        const char *key = mira_json_key_at(obj, i);
        mira__buf_printf(&c->where, "%s%s", base ? "." : "", key);
        mira_tag tag;
        if (!parse_key(key, &tag))
            return fail(c, MIRA_ERR_INVALID, "the key is not 8 hexadecimal digits");
        if (mira_dataset_get(ds, tag))
            return fail(c, MIRA_ERR_INVALID, "the tag appears twice");
        if (tag == MIRA_TAG_ITEM || tag == MIRA_TAG_ITEM_DELIM || tag == MIRA_TAG_SEQ_DELIM)
            return fail(c, MIRA_ERR_INVALID, "an item or delimiter tag is not an attribute");
        if (!read_attribute(c, ds, tag, mira_json_at(obj, i), depth))
            return false;
        c->where.len = base;
        if (c->where.data)
            c->where.data[base] = 0;
    }
    /* Text is stored as UTF-8: a scope with non-ASCII text must say ISO_IR 192. A scope is
     * the data set or an item that declares its own Specific Character Set. */
    const mira_element *cs = mira_dataset_get(ds, MIRA_TAG_SPECIFIC_CHARSET);
    if (non_ascii && (cs || top)) {
        char *have = cs ? mira_element_get_text(cs, NULL) : NULL;
        bool utf8 = have && strcmp(have, "ISO_IR 192") == 0;
        mira_free(have);
        if (!utf8 && !mira_dataset_set_string(ds, MIRA_TAG_SPECIFIC_CHARSET, MIRA_VR_CS,
                                              "ISO_IR 192", c->err))
            return false;
    }
    return true;
}

mira_dataset *mira_dataset_from_json(const char *json, size_t len, mira_error **err)
{
    mira_json *root = mira_json_parse(json, len, err);
    if (!root) {
        mira_error_prefix(err, "DICOM JSON: ");
        return NULL;
    }
    const mira_json *obj = root;
    /* a DICOMweb response is an array of instances: take one */
    if (mira_json_get_type(obj) == MIRA_JSON_ARRAY && mira_json_count(obj) == 1)
        obj = mira_json_at(obj, 0);
    from_ctx c = {.err = err};
    mira__buf_init(&c.where);
    mira__buf_init(&c.value);
    mira_dataset *ds = NULL;
    if (mira_json_get_type(obj) != MIRA_JSON_OBJECT) {
        fail(&c, MIRA_ERR_INVALID, "expected an object of attributes (or an array of one)");
    } else {
        ds = mira_dataset_new(err);
        if (ds && !read_object(&c, obj, ds, true, 0)) {
            mira_dataset_free(ds);
            ds = NULL;
        }
    }
    mira__buf_cleanup(&c.where);
    mira__buf_cleanup(&c.value);
    mira_json_free(root);
    return ds;
}
