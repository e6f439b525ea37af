/* Rendering a frame for display: Modality LUT, VOI, presentation, colour to 8-bit RGB. */
#include "pixel/lut_int.h"
#include "pixel/pixels_int.h"

#include <math.h>
#include <string.h>

void mira_render_options_init(mira_render_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->window = MIRA_WINDOW_AUTO;
    opt->function = MIRA_VOI_LINEAR;
}

void mira_rendered_free(mira_rendered *r)
{
    if (!r)
        return;
    mira_free(r->data);
    r->data = NULL;
}

/* Sample i of a decoded frame as a number. */
static double sample_at(const uint8_t *buf, size_t i, const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d);
    const uint8_t *p = buf + i * sb;
    if (d->is_float) {
        if (sb == 4) {
            float f;
            memcpy(&f, p, 4);
            return f;
        }
        double x;
        memcpy(&x, p, 8);
        return x;
    }
    switch (sb) {
    case 1:
        return d->is_signed ? (double)(int8_t)p[0] : (double)p[0];
    case 2: {
        uint16_t v = (uint16_t)(p[0] | p[1] << 8);
        return d->is_signed ? (double)(int16_t)v : (double)v;
    }
    default: {
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        return d->is_signed ? (double)(int32_t)v : (double)v;
    }
    }
}

static uint8_t to8(double y)
{
    if (!(y > 0))
        return 0;
    if (y >= 1)
        return 255;
    return (uint8_t)lround(y * 255.0);
}

/* How a modality value becomes [0, 1]. */
typedef struct voi {
    bool use_lut;
    mira__lut lut;
    double center, width;
    mira_voi_function f;
    bool invert;
} voi;

static double voi_apply(const voi *v, double m)
{
    double y;
    if (v->use_lut) {
        double mx = (double)((1u << v->lut.bits) - 1);
        y = mira__lut_apply(&v->lut, m) / mx;
    } else {
        y = mira_window_apply(m, v->center, v->width, v->f);
    }
    return v->invert ? 1 - y : y;
}

static bool invert_presentation(const mira_dataset *ds, const mira_pixel_desc *d)
{
    bool inv = d->photometric == MIRA_PHOTO_MONOCHROME1;
    mira_element *e = mira_dataset_get(ds, 0x20500020); /* Presentation LUT Shape */
    if (e && mira_element_length(e) > 0) {
        char *s = mira_element_get_string(e, 0, NULL);
        if (s && strcmp(s, "INVERSE") == 0)
            inv = !inv;
        mira_free(s);
    }
    return inv;
}

static bool render_mono(mira_pixels *px, const mira_render_options *opt, const uint8_t *buf,
                        uint8_t *out, mira_error **err)
{
    const mira_pixel_desc *d = &px->decoded;
    size_t n = (size_t)d->rows * d->columns;
    mira_modality_lut *mod = mira__modality_lut_frame(px->ds, d, opt->frame, err);
    if (!mod)
        return false;
    voi v = {.f = opt->function, .invert = invert_presentation(px->ds, d)};
    mira_window_source src = opt->window;
    bool ok = true;
    mira_element *vls = mira_dataset_get(px->ds, 0x00283010); /* VOI LUT Sequence */
    if (src == MIRA_WINDOW_AUTO) {
        if (mira__window_from_file(px->ds, opt->frame, 0, &v.center, &v.width, &v.f))
            src = MIRA_WINDOW_EXPLICIT;
        else if (vls && mira_element_item_count(vls) > 0)
            src = MIRA_WINDOW_VOI_LUT;
        else
            src = MIRA_WINDOW_MINMAX;
    } else if (src == MIRA_WINDOW_EXPLICIT) {
        v.center = opt->center;
        v.width = opt->width;
    } else if (src == MIRA_WINDOW_FILE) {
        if (!mira__window_from_file(px->ds, opt->frame, opt->index, &v.center, &v.width, &v.f)) {
            mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such window",
                           "the image has no window number %u (Window Center/Width)",
                           opt->index + 1);
            ok = false;
        }
    }
    if (ok && src == MIRA_WINDOW_VOI_LUT) {
        unsigned idx = opt->window == MIRA_WINDOW_VOI_LUT ? opt->index : 0;
        if (!vls || idx >= mira_element_item_count(vls)) {
            mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such VOI LUT",
                           "the image has no VOI LUT number %u", idx + 1);
            ok = false;
        } else {
            ok = mira__lut_read(mira_element_item(vls, idx), 0x00283002, 0x00283006, &v.lut, err);
            v.use_lut = ok;
        }
    }
    if (ok && (src == MIRA_WINDOW_MINMAX || src == MIRA_WINDOW_NONE)) {
        double lo, hi;
        if (src == MIRA_WINDOW_MINMAX) {
            lo = INFINITY, hi = -INFINITY;
            for (size_t i = 0; i < n; i++) {
                double m = mira_modality_lut_apply(mod, sample_at(buf, i, d));
                lo = m < lo ? m : lo;
                hi = m > hi ? m : hi;
            }
        } else {
            double smin = d->is_signed ? -ldexp(1, d->bits_stored - 1) : 0;
            double smax = d->is_signed ? ldexp(1, d->bits_stored - 1) - 1
                                       : ldexp(1, d->bits_stored) - 1;
            double a = mira_modality_lut_apply(mod, smin), b = mira_modality_lut_apply(mod, smax);
            lo = a < b ? a : b;
            hi = a < b ? b : a;
        }
        /* The window that maps lo to 0 and hi to 1 with the LINEAR function (DCMTK's
         * min-max window). */
        v.center = (lo + hi + 1) / 2;
        v.width = hi - lo + 1;
        v.f = MIRA_VOI_LINEAR;
    }
    if (ok) {
        bool small = !d->is_float && d->bits_stored <= 16;
        if (small) {
            /* Every possible stored value through the whole pipeline once. */
            int32_t smin = d->is_signed ? -(1 << (d->bits_stored - 1)) : 0;
            int32_t smax = d->is_signed ? (1 << (d->bits_stored - 1)) - 1
                                        : (1 << d->bits_stored) - 1;
            size_t count = (size_t)(smax - smin + 1);
            uint8_t *table = mira_malloc(count);
            if (!table) {
                mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "a rendering table");
                ok = false;
            } else {
                for (size_t k = 0; k < count; k++)
                    table[k] = to8(voi_apply(&v, mira_modality_lut_apply(mod, smin + (double)k)));
                for (size_t i = 0; i < n; i++) {
                    double s = sample_at(buf, i, d);
                    out[i] = table[(size_t)(s - smin)];
                }
                mira_free(table);
            }
        } else {
            for (size_t i = 0; i < n; i++)
                out[i] = to8(voi_apply(&v, mira_modality_lut_apply(mod, sample_at(buf, i, d))));
        }
    }
    if (v.use_lut)
        mira__lut_cleanup(&v.lut);
    mira_modality_lut_free(mod);
    return ok;
}

static bool render_palette(mira_pixels *px, const uint8_t *buf, uint8_t *out, mira_error **err)
{
    const mira_pixel_desc *d = &px->decoded;
    mira__lut rgb[3];
    if (!mira__palette_read(px->ds, rgb, err))
        return false;
    size_t n = (size_t)d->rows * d->columns;
    for (size_t i = 0; i < n; i++) {
        double s = sample_at(buf, i, d);
        for (int c = 0; c < 3; c++) {
            double mx = (double)((1u << rgb[c].bits) - 1);
            out[3 * i + c] = to8(mira__lut_apply(&rgb[c], s) / mx);
        }
    }
    for (int c = 0; c < 3; c++)
        mira__lut_cleanup(&rgb[c]);
    return true;
}

static void render_colour(const mira_pixel_desc *d, const uint8_t *buf, uint8_t *out)
{
    size_t n = (size_t)d->rows * d->columns;
    double mx = ldexp(1, d->bits_stored) - 1;
    bool ybr = d->photometric == MIRA_PHOTO_YBR_FULL;
    double half = ldexp(1, d->bits_stored - 1);
    for (size_t i = 0; i < n; i++) {
        double a = sample_at(buf, 3 * i, d), b = sample_at(buf, 3 * i + 1, d),
               c = sample_at(buf, 3 * i + 2, d);
        if (ybr) {
            /* YBR_FULL to RGB, PS3.3 C.7.6.3.1.2 (ITU-R BT.601 full range). */
            double r = a + 1.402 * (c - half);
            double g = a - 0.344136 * (b - half) - 0.714136 * (c - half);
            double bl = a + 1.772 * (b - half);
            a = r, b = g, c = bl;
        }
        out[3 * i] = to8(a / mx);
        out[3 * i + 1] = to8(b / mx);
        out[3 * i + 2] = to8(c / mx);
    }
}

bool mira_pixels_render(mira_pixels *px, const mira_render_options *opt, mira_rendered *out,
                        mira_error **err)
{
    mira_render_options defaults;
    if (!opt) {
        mira_render_options_init(&defaults);
        opt = &defaults;
    }
    memset(out, 0, sizeof *out);
    const mira_pixel_desc *d = &px->decoded;
    if (opt->frame >= d->frames) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "No such frame",
                       "frame %u asked for, the image has %u", opt->frame + 1, d->frames);
        return false;
    }
    if (opt->window == MIRA_WINDOW_EXPLICIT && !(opt->width > 0)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad window", "window width %g is not positive",
                       opt->width);
        return false;
    }
    size_t fb = mira_pixel_frame_bytes(d);
    uint8_t *buf = mira_malloc(fb);
    bool colour = d->samples == 3 || d->photometric == MIRA_PHOTO_PALETTE;
    size_t n = (size_t)d->rows * d->columns;
    out->data = mira_malloc(n * (colour ? 3 : 1));
    if (!buf || !out->data) {
        mira_free(buf);
        mira_rendered_free(out);
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "rendering a %ux%u frame", d->columns,
                       d->rows);
        return false;
    }
    bool ok = mira_pixels_decode_frame(px, opt->frame, buf, fb, err);
    if (ok) {
        if (d->samples == 3)
            render_colour(d, buf, out->data);
        else if (d->photometric == MIRA_PHOTO_PALETTE)
            ok = render_palette(px, buf, out->data, err);
        else
            ok = render_mono(px, opt, buf, out->data, err);
    }
    mira_free(buf);
    if (!ok) {
        mira_rendered_free(out);
        return false;
    }
    out->rows = d->rows;
    out->columns = d->columns;
    out->channels = colour ? 3 : 1;
    return true;
}

/* ------------------------------------------------------------------ scaling */

bool mira_rendered_scale(const mira_rendered *in, uint32_t max_columns, uint32_t max_rows,
                         mira_rendered *out, mira_error **err)
{
    memset(out, 0, sizeof *out);
    if (!in || !in->data || !in->rows || !in->columns || (in->channels != 1 && in->channels != 3)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image", "nothing to scale");
        return false;
    }
    /* the largest size inside the box with the image's aspect ratio */
    double sx = max_columns ? (double)max_columns / in->columns : 0;
    double sy = max_rows ? (double)max_rows / in->rows : 0;
    double s = !max_columns ? sy : !max_rows ? sx : (sx < sy ? sx : sy);
    if (!max_columns && !max_rows)
        s = 1;
    double w = in->columns * s + 0.5, h = in->rows * s + 0.5;
    if (w > 16384 || h > 16384) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Image too large", "scaling to %.0f x %.0f", w, h);
        return false;
    }
    uint32_t ow = w < 1 ? 1 : (uint32_t)w, oh = h < 1 ? 1 : (uint32_t)h;
    int ch = in->channels;
    uint8_t *dst = mira_malloc((size_t)ow * oh * (size_t)ch);
    if (!dst) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "scaling to %u x %u", ow, oh);
        return false;
    }
    double fx = (double)in->columns / ow, fy = (double)in->rows / oh;
    size_t stride = (size_t)in->columns * (size_t)ch;
    for (uint32_t y = 0; y < oh; y++) {
        for (uint32_t x = 0; x < ow; x++) {
            uint8_t *o = dst + ((size_t)y * ow + x) * (size_t)ch;
            if (fx > 1 || fy > 1) {
                /* shrinking: the mean of the source pixels whose centres fall in the footprint */
                uint32_t x0 = (uint32_t)(x * fx), x1 = (uint32_t)((x + 1) * fx);
                uint32_t y0 = (uint32_t)(y * fy), y1 = (uint32_t)((y + 1) * fy);
                if (x1 <= x0)
                    x1 = x0 + 1;
                if (y1 <= y0)
                    y1 = y0 + 1;
                if (x1 > in->columns)
                    x1 = in->columns;
                if (y1 > in->rows)
                    y1 = in->rows;
                for (int c = 0; c < ch; c++) {
                    uint64_t sum = 0;
                    for (uint32_t yy = y0; yy < y1; yy++)
                        for (uint32_t xx = x0; xx < x1; xx++)
                            sum += in->data[yy * stride + (size_t)xx * ch + c];
                    uint64_t n = (uint64_t)(x1 - x0) * (y1 - y0);
                    o[c] = (uint8_t)((sum + n / 2) / n);
                }
            } else {
                /* growing (or the same size): bilinear between the four nearest centres */
                double u = (x + 0.5) * fx - 0.5, v = (y + 0.5) * fy - 0.5;
                if (u < 0)
                    u = 0;
                if (v < 0)
                    v = 0;
                uint32_t ux = (uint32_t)u, vy = (uint32_t)v;
                uint32_t ux1 = ux + 1 < in->columns ? ux + 1 : ux;
                uint32_t vy1 = vy + 1 < in->rows ? vy + 1 : vy;
                double a = u - ux, b = v - vy;
                for (int c = 0; c < ch; c++) {
                    double p00 = in->data[vy * stride + (size_t)ux * ch + c];
                    double p01 = in->data[vy * stride + (size_t)ux1 * ch + c];
                    double p10 = in->data[vy1 * stride + (size_t)ux * ch + c];
                    double p11 = in->data[vy1 * stride + (size_t)ux1 * ch + c];
                    double val =
                        (p00 * (1 - a) + p01 * a) * (1 - b) + (p10 * (1 - a) + p11 * a) * b;
                    o[c] = (uint8_t)(val + 0.5);
                }
            }
        }
    }
    out->rows = oh;
    out->columns = ow;
    out->channels = ch;
    out->data = dst;
    return true;
}
