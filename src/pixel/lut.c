/* Look-up tables of the pixel pipeline: Modality LUT, VOI window and VOI LUT, palette colour. */
#include "pixel/lut_int.h"

#include <math.h>
#include <string.h>

#define TAG_SHARED_FG 0x52009229u
#define TAG_PER_FRAME_FG 0x52009230u

const mira_dataset *mira__frame_group(const mira_dataset *ds, uint32_t frame, mira_tag seq)
{
    /* Per-frame functional groups win over shared ones (PS3.3 C.7.6.16). */
    mira_element *pf = mira_dataset_get(ds, TAG_PER_FRAME_FG);
    if (pf && frame < mira_element_item_count(pf)) {
        mira_dataset *item = mira_element_item(pf, frame);
        mira_element *s = item ? mira_dataset_get(item, seq) : NULL;
        if (s && mira_element_item_count(s) > 0)
            return mira_element_item(s, 0);
    }
    mira_element *sh = mira_dataset_get(ds, TAG_SHARED_FG);
    if (sh && mira_element_item_count(sh) > 0) {
        mira_dataset *item = mira_element_item(sh, 0);
        mira_element *s = item ? mira_dataset_get(item, seq) : NULL;
        if (s && mira_element_item_count(s) > 0)
            return mira_element_item(s, 0);
    }
    return NULL;
}

static bool get_ds(const mira_dataset *ds, mira_tag tag, size_t i, double *out)
{
    mira_element *e = ds ? mira_dataset_get(ds, tag) : NULL;
    return e && mira_element_length(e) > 0 && mira_element_get_double(e, i, out, NULL);
}

/* ------------------------------------------------------------------ LUT tables */

bool mira__lut_read(const mira_dataset *item, mira_tag desc_tag, mira_tag data_tag,
                    mira__lut *lut, mira_error **err)
{
    memset(lut, 0, sizeof *lut);
    mira_element *de = mira_dataset_get(item, desc_tag);
    mira_element *da = mira_dataset_get(item, data_tag);
    uint64_t v0, v1, v2;
    if (!de || mira_element_vm(de) < 3 || !da) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad LUT",
                       "LUT (%04X,%04X) has no descriptor of 3 values or no data",
                       data_tag >> 16, data_tag & 0xFFFF);
        return false;
    }
    if (!mira_element_get_uint(de, 0, &v0, err) || !mira_element_get_uint(de, 1, &v1, err) ||
        !mira_element_get_uint(de, 2, &v2, err))
        return false;
    uint32_t n = v0 == 0 ? 65536 : (uint32_t)v0;
    /* The first mapped value is US or SS like the pixels; an SS descriptor comes back here as
     * its unsigned 16-bit pattern, so reinterpret it when the VR says signed. */
    int64_t first = (int64_t)v1;
    if (mira_element_vr(de) == MIRA_VR_SS && first > 32767)
        first -= 65536;
    unsigned bits = (unsigned)v2;
    size_t len;
    const uint8_t *bytes = mira_element_bytes(da, &len);
    bool be = mira_dataset_is_big_endian(item);
    /* 8-bit entries may be packed two to a 16-bit word (OW) or one per byte (OB / US length). */
    bool packed8 = bits <= 8 && len >= n && len < (size_t)n * 2;
    if (!packed8 && len < (size_t)n * 2) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad LUT",
                       "LUT (%04X,%04X) has %zu bytes for %u entries", data_tag >> 16,
                       data_tag & 0xFFFF, len, n);
        return false;
    }
    lut->table = mira_malloc((size_t)n * sizeof *lut->table);
    if (!lut->table) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "a LUT of %u entries", n);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v;
        if (packed8)
            v = bytes[be ? (i ^ 1) : i];
        else
            v = be ? ((uint32_t)bytes[2 * i] << 8 | bytes[2 * i + 1])
                   : ((uint32_t)bytes[2 * i + 1] << 8 | bytes[2 * i]);
        lut->table[i] = v;
    }
    if (bits == 0 || bits > 16) {
        /* Real files put 8, 12 or 16; guess from the data like DCMTK's +Mv. */
        uint32_t mx = 0;
        for (uint32_t i = 0; i < n; i++)
            mx = lut->table[i] > mx ? lut->table[i] : mx;
        bits = 8;
        while (bits < 16 && (mx >> bits))
            bits++;
    }
    lut->n = n;
    lut->first = first;
    lut->bits = bits;
    return true;
}

void mira__lut_cleanup(mira__lut *lut)
{
    mira_free(lut->table);
    lut->table = NULL;
}

uint32_t mira__lut_apply(const mira__lut *lut, double x)
{
    double i = floor(x) - (double)lut->first;
    if (i <= 0)
        return lut->table[0];
    if (i >= lut->n - 1)
        return lut->table[lut->n - 1];
    return lut->table[(uint32_t)i];
}

/* ------------------------------------------------------------------ Modality LUT */

struct mira_modality_lut {
    bool linear;
    double slope, intercept;
    mira__lut lut;
};

mira_modality_lut *mira__modality_lut_frame(const mira_dataset *ds, const mira_pixel_desc *d,
                                            uint32_t frame, mira_error **err)
{
    mira_modality_lut *m = mira_calloc(1, sizeof *m);
    if (!m) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "a modality LUT");
        return NULL;
    }
    m->linear = true;
    m->slope = 1;
    m->intercept = 0;
    if (d && d->samples != 1)
        return m; /* colour images have no modality transform */
    mira_element *seq = mira_dataset_get(ds, 0x00283000);
    if (seq && mira_element_item_count(seq) > 0) {
        if (!mira__lut_read(mira_element_item(seq, 0), 0x00283002, 0x00283006, &m->lut, err)) {
            mira_error_prefix(err, "Modality LUT Sequence: ");
            mira_free(m);
            return NULL;
        }
        m->linear = false;
        return m;
    }
    /* Enhanced objects keep Rescale Slope/Intercept in the Pixel Value Transformation
     * functional group; classic ones at the top level. */
    const mira_dataset *src = mira__frame_group(ds, frame, 0x00289145);
    if (!src)
        src = ds;
    double s, i;
    if (get_ds(src, 0x00281053, 0, &s) && s != 0)
        m->slope = s;
    if (get_ds(src, 0x00281052, 0, &i))
        m->intercept = i;
    return m;
}

mira_modality_lut *mira_modality_lut_new(const mira_dataset *ds, const mira_pixel_desc *d,
                                         mira_error **err)
{
    return mira__modality_lut_frame(ds, d, 0, err);
}

void mira_modality_lut_free(mira_modality_lut *m)
{
    if (!m)
        return;
    mira__lut_cleanup(&m->lut);
    mira_free(m);
}

double mira_modality_lut_apply(const mira_modality_lut *m, double stored)
{
    if (m->linear)
        return stored * m->slope + m->intercept;
    return mira__lut_apply(&m->lut, stored);
}

bool mira_modality_lut_linear(const mira_modality_lut *m, double *slope, double *intercept)
{
    if (!m->linear)
        return false;
    if (slope)
        *slope = m->slope;
    if (intercept)
        *intercept = m->intercept;
    return true;
}

/* ------------------------------------------------------------------ VOI */

double mira_window_apply(double x, double c, double w, mira_voi_function f)
{
    /* PS3.3 C.11.2.1.2 (output range [0, 1]). */
    switch (f) {
    case MIRA_VOI_SIGMOID:
        if (w <= 0)
            return x < c ? 0 : 1;
        return 1.0 / (1.0 + exp(-4.0 * (x - c) / w));
    case MIRA_VOI_LINEAR_EXACT:
        if (w <= 0)
            return x < c ? 0 : 1;
        if (x <= c - w / 2)
            return 0;
        if (x > c + w / 2)
            return 1;
        return (x - c) / w + 0.5;
    case MIRA_VOI_LINEAR:
    default:
        if (w < 1)
            w = 1;
        if (x <= c - 0.5 - (w - 1) / 2)
            return 0;
        if (x > c - 0.5 + (w - 1) / 2)
            return 1;
        if (w == 1)
            return 1;
        return (x - (c - 0.5)) / (w - 1) + 0.5;
    }
}

mira_voi_function mira__voi_function(const mira_dataset *src)
{
    mira_element *e = src ? mira_dataset_get(src, 0x00281056) : NULL;
    mira_voi_function f = MIRA_VOI_LINEAR;
    if (e && mira_element_length(e) > 0) {
        char *s = mira_element_get_string(e, 0, NULL);
        if (s && strcmp(s, "SIGMOID") == 0)
            f = MIRA_VOI_SIGMOID;
        else if (s && strcmp(s, "LINEAR_EXACT") == 0)
            f = MIRA_VOI_LINEAR_EXACT;
        mira_free(s);
    }
    return f;
}

bool mira__window_from_file(const mira_dataset *ds, uint32_t frame, unsigned index,
                            double *center, double *width, mira_voi_function *f)
{
    const mira_dataset *src = mira__frame_group(ds, frame, 0x00289132); /* Frame VOI LUT */
    double c, w;
    if (!(src && get_ds(src, 0x00281050, index, &c) && get_ds(src, 0x00281051, index, &w)))
        src = ds;
    if (!get_ds(src, 0x00281050, index, &c) || !get_ds(src, 0x00281051, index, &w))
        return false;
    *center = c;
    *width = w;
    *f = mira__voi_function(src);
    return true;
}

/* ------------------------------------------------------------------ palette colour */

/* One segment of a Segmented Palette Color LUT (PS3.3 C.7.9.2) at word `at`: appends its
 * entries to out and returns the word after it, or 0 when malformed. Indirect segments replay
 * `count` earlier segments (never another indirect one, so the work is bounded). */
typedef struct segments {
    const uint8_t *bytes;
    size_t words;
    bool be;
    uint32_t *out;
    uint32_t n, filled;
} segments;

static uint32_t seg_word(const segments *s, size_t k)
{
    return s->be ? ((uint32_t)s->bytes[2 * k] << 8 | s->bytes[2 * k + 1])
                 : ((uint32_t)s->bytes[2 * k + 1] << 8 | s->bytes[2 * k]);
}

static size_t do_segment(segments *s, size_t at, bool allow_indirect)
{
    if (at + 2 > s->words)
        return 0;
    uint32_t op = seg_word(s, at), count = seg_word(s, at + 1);
    if (op == 0) { /* discrete */
        if (at + 2 + count > s->words)
            return 0;
        for (uint32_t k = 0; k < count && s->filled < s->n; k++)
            s->out[s->filled++] = seg_word(s, at + 2 + k);
        return at + 2 + count;
    }
    if (op == 1) { /* linear from the previous entry to y1 over count entries */
        if (at + 3 > s->words || s->filled == 0)
            return 0;
        double y0 = s->out[s->filled - 1], y1 = seg_word(s, at + 2);
        for (uint32_t k = 1; k <= count && s->filled < s->n; k++)
            s->out[s->filled++] = (uint32_t)lround(y0 + (y1 - y0) * k / count);
        return at + 3;
    }
    if (op == 2 && allow_indirect) { /* indirect: replay count segments from a word offset */
        if (at + 4 > s->words)
            return 0;
        size_t off = seg_word(s, at + 2) | (size_t)seg_word(s, at + 3) << 16;
        if (off >= at)
            return 0;
        for (uint32_t k = 0; k < count; k++) {
            off = do_segment(s, off, false);
            if (!off)
                return 0;
        }
        return at + 4;
    }
    return 0;
}

static bool expand_segmented(const uint8_t *bytes, size_t len, bool be, uint32_t n,
                             mira__lut *lut, mira_error **err)
{
    segments s = {.bytes = bytes, .words = len / 2, .be = be, .n = n};
    s.out = mira_calloc(n, sizeof *s.out);
    if (!s.out) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "a palette of %u entries", n);
        return false;
    }
    size_t at = 0;
    while (at < s.words && s.filled < n) {
        size_t next = do_segment(&s, at, true);
        if (!next) {
            mira_free(s.out);
            mira_error_set(err, MIRA_ERR_INVALID, "Bad palette",
                           "the Segmented Palette Color LUT Data is malformed at word %zu", at);
            return false;
        }
        at = next;
    }
    while (s.filled < n && s.filled > 0) {
        s.out[s.filled] = s.out[s.filled - 1];
        s.filled++;
    }
    lut->table = s.out;
    return true;
}

bool mira__palette_read(const mira_dataset *ds, mira__lut rgb[3], mira_error **err)
{
    memset(rgb, 0, 3 * sizeof *rgb);
    for (int c = 0; c < 3; c++) {
        mira_tag desc = 0x00281101u + (mira_tag)c;
        mira_tag data = 0x00281201u + (mira_tag)c;
        mira_tag seg = 0x00281221u + (mira_tag)c;
        mira_element *se = mira_dataset_get(ds, seg);
        bool ok;
        if (se && !mira_dataset_get(ds, data)) {
            mira_element *de = mira_dataset_get(ds, desc);
            uint64_t v0, v1, v2;
            ok = de && mira_element_vm(de) >= 3 && mira_element_get_uint(de, 0, &v0, err) &&
                 mira_element_get_uint(de, 1, &v1, err) && mira_element_get_uint(de, 2, &v2, err);
            if (ok) {
                size_t len;
                const uint8_t *b = mira_element_bytes(se, &len);
                rgb[c].n = v0 == 0 ? 65536 : (uint32_t)v0;
                rgb[c].first = (int64_t)v1;
                rgb[c].bits = (unsigned)v2 ? (unsigned)v2 : 16;
                ok = expand_segmented(b, len, mira_dataset_is_big_endian(ds), rgb[c].n, &rgb[c],
                                      err);
            } else if (err && !*err) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad palette",
                               "the palette has no descriptor (0028,%04X)", 0x1101 + c);
            }
        } else {
            ok = mira__lut_read(ds, desc, data, &rgb[c], err);
        }
        if (!ok) {
            for (int k = 0; k < c; k++)
                mira__lut_cleanup(&rgb[k]);
            return false;
        }
    }
    return true;
}
