/* Series to volume: read a series' headers, sort its slices along their normal, decode, stack. */
#include "image/series_int.h"

#include "core/buf.h"
#include "core/parallel.h"
#include "pixel/lut_int.h"
#include "pixel/pixels_int.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TAG_SOP_CLASS_UID MIRA_TAG(0x0008, 0x0016)
#define TAG_SOP_INSTANCE_UID MIRA_TAG(0x0008, 0x0018)
#define TAG_SLICE_THICKNESS MIRA_TAG(0x0018, 0x0050)
#define TAG_SPACING_BETWEEN MIRA_TAG(0x0018, 0x0088)
#define TAG_GANTRY_TILT MIRA_TAG(0x0018, 0x1120)
#define TAG_SERIES_UID MIRA_TAG(0x0020, 0x000E)
#define TAG_INSTANCE_NUMBER MIRA_TAG(0x0020, 0x0013)
#define TAG_IPP MIRA_TAG(0x0020, 0x0032)
#define TAG_IOP MIRA_TAG(0x0020, 0x0037)
#define TAG_PLANE_POSITION_SEQ MIRA_TAG(0x0020, 0x9113)
#define TAG_PLANE_ORIENTATION_SEQ MIRA_TAG(0x0020, 0x9116)
#define TAG_ROWS MIRA_TAG(0x0028, 0x0010)
#define TAG_PIXEL_SPACING MIRA_TAG(0x0028, 0x0030)
#define TAG_PIXEL_MEASURES_SEQ MIRA_TAG(0x0028, 0x9110)
#define TAG_PER_FRAME_FG MIRA_TAG(0x5200, 0x9230)
#define TAG_GRID_FRAME_OFFSETS MIRA_TAG(0x3004, 0x000C)
#define TAG_MEDIA_SOP_CLASS MIRA_TAG(0x0002, 0x0002)

#define DICOMDIR_SOP_CLASS "1.2.840.10008.1.3.10"
#define ORIENTATION_TOLERANCE 1e-3
#define MAX_DIR_DEPTH 32

void mira_series_options_init(mira_series_options *opt)
{
    opt->stored_values = false;
    opt->threads = 0;
    opt->tolerance = 0.01;
}

void mira_series_report_cleanup(mira_series_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->warning_count; i++)
        mira_free(r->warnings[i]);
    mira_free(r->warnings);
    memset(r, 0, sizeof *r);
}

void mira__report_warn(mira_series_report *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char **w = mira_realloc(r->warnings, (r->warning_count + 1) * sizeof *w);
    if (!w)
        return;
    r->warnings = w;
    char *copy = mira_strdup(msg);
    if (copy)
        r->warnings[r->warning_count++] = copy;
}

/* ------------------------------------------------------------------ stack geometry */

static double dot3(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static double norm3(const double a[3])
{
    return sqrt(dot3(a, a));
}

static void cross3(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

typedef struct sort_key {
    double pos;
    size_t index;
} sort_key;

static int compare_keys(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Spacing analysis of sorted positions: uneven gaps and missing slices. */
static void check_gaps(const mira__slice_geom *s, const sort_key *keys, size_t n, double tol,
                       double median, mira_series_report *rep)
{
    size_t missing = 0, missing_gaps = 0, uneven = 0, first_missing = 0, first_uneven = 0;
    for (size_t k = 0; k + 1 < n; k++) {
        double g = keys[k + 1].pos - keys[k].pos;
        long m = lround(g / median);
        double slack = fmax(tol, 0.1 * median);
        if (m >= 2 && fabs(g - (double)m * median) <= slack) {
            if (missing_gaps++ == 0)
                first_missing = k;
            missing += (size_t)(m - 1);
        } else if (fabs(g - median) > tol) {
            if (uneven++ == 0)
                first_uneven = k;
        }
    }
    if (missing_gaps) {
        rep->missing_slices = true;
        size_t k = first_missing;
        mira__report_warn(rep,
                          "missing slices: %zu gap%s of a whole multiple of the spacing %.4g mm "
                          "(about %zu slice%s absent; first between %s and %s, %.4g mm); the "
                          "volume has no slice there, so positions beyond a gap are off",
                          missing_gaps, missing_gaps == 1 ? "" : "s", median, missing,
                          missing == 1 ? "" : "s", s[keys[k].index].name, s[keys[k + 1].index].name,
                          keys[k + 1].pos - keys[k].pos);
    }
    if (uneven) {
        rep->uneven = true;
        size_t k = first_uneven;
        mira__report_warn(rep,
                          "uneven slice spacing: gaps from %.4g to %.4g mm (%zu differ from the "
                          "median %.4g mm by more than %.4g mm; first between %s and %s, %.4g "
                          "mm); the volume uses the median, so positions are approximate",
                          rep->min_spacing, rep->max_spacing, uneven, median, tol,
                          s[keys[k].index].name, s[keys[k + 1].index].name,
                          keys[k + 1].pos - keys[k].pos);
    }
}

/* A gantry tilt: the line through the slice positions is not along the normal. */
static void check_tilt(const mira__slice_geom *s, const sort_key *keys, size_t n,
                       const double normal[3], double tol, mira_series_report *rep)
{
    const double *a = s[keys[0].index].ipp, *b = s[keys[n - 1].index].ipp;
    double d[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double along = dot3(d, normal);
    double lat[3] = {d[0] - along * normal[0], d[1] - along * normal[1], d[2] - along * normal[2]};
    double lateral = norm3(lat);
    double angle = atan2(lateral, fabs(along)) * 180.0 / M_PI;
    /* both: a real shift of the voxels, and not the rounding of positions on a short stack */
    if (lateral > tol && angle > 0.01) {
        rep->tilted = true;
        rep->tilt_degrees = angle;
        mira__report_warn(rep,
                          "gantry tilt: the slice positions step %.4g degrees away from the "
                          "slice normal (%.4g mm sideways from the first slice to the last); the "
                          "volume keeps the orientation's normal and voxels are not resampled, "
                          "so each slice is off by up to %.4g mm in plane",
                          angle, lateral, lateral);
    }
}

bool mira__stack_geometry(const mira__slice_geom *s, size_t n, double tolerance, double single_z,
                          size_t *order, mira__stack_geom *out, mira_series_report *rep,
                          mira_error **err)
{
    if (n == 0) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "No slices", "a stack needs at least one slice");
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        for (int j = 0; j < 6; j++) {
            if (fabs(s[i].iop[j] - s[0].iop[j]) > ORIENTATION_TOLERANCE) {
                rep->mixed_orientation = true;
                const double *p = s[0].iop, *q = s[i].iop;
                mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Mixed orientations",
                               "slices of different orientations: %s has %g\\%g\\%g\\%g\\%g\\%g, "
                               "%s has %g\\%g\\%g\\%g\\%g\\%g (Image Orientation (Patient)); "
                               "one volume needs one orientation: convert them separately",
                               s[0].name, p[0], p[1], p[2], p[3], p[4], p[5], s[i].name, q[0], q[1],
                               q[2], q[3], q[4], q[5]);
                return false;
            }
        }
    }
    double r[3] = {s[0].iop[0], s[0].iop[1], s[0].iop[2]};
    double c[3] = {s[0].iop[3], s[0].iop[4], s[0].iop[5]};
    double nr = norm3(r), nc = norm3(c), normal[3];
    cross3(r, c, normal);
    double nn = norm3(normal);
    if (!(nr > 1e-6) || !(nc > 1e-6) || !(nn > 1e-6 * nr * nc) || !isfinite(nn)) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad orientation",
                       "%s: Image Orientation (Patient) %g\\%g\\%g\\%g\\%g\\%g does not span a "
                       "plane",
                       s[0].name, r[0], r[1], r[2], c[0], c[1], c[2]);
        return false;
    }
    for (int a = 0; a < 3; a++) {
        r[a] /= nr;
        c[a] /= nc;
        normal[a] /= nn;
    }
    sort_key *keys = mira_malloc(n * sizeof *keys);
    double *gaps = n > 1 ? mira_malloc((n - 1) * sizeof *gaps) : NULL;
    if (!keys || (n > 1 && !gaps)) {
        mira_free(keys);
        mira_free(gaps);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "sorting %zu slices", n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].pos = dot3(s[i].ipp, normal);
        keys[i].index = i;
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    for (size_t k = 0; k < n; k++)
        order[k] = keys[k].index;
    double spacing = single_z;
    if (n > 1) {
        for (size_t k = 0; k + 1 < n; k++) {
            gaps[k] = keys[k + 1].pos - keys[k].pos;
            if (gaps[k] < tolerance) {
                mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Slices at one position",
                               "%s and %s lie at the same position (%.4g mm apart along the "
                               "normal): several time points, echoes or repeated acquisitions? "
                               "mira builds one 3D volume per series",
                               s[keys[k].index].name, s[keys[k + 1].index].name, gaps[k]);
                mira_free(keys);
                mira_free(gaps);
                return false;
            }
        }
        qsort(gaps, n - 1, sizeof *gaps, compare_doubles);
        rep->min_spacing = gaps[0];
        rep->max_spacing = gaps[n - 2];
        spacing =
            (n - 1) % 2 ? gaps[(n - 1) / 2] : 0.5 * (gaps[(n - 1) / 2 - 1] + gaps[(n - 1) / 2]);
        check_gaps(s, keys, n, tolerance, spacing, rep);
        check_tilt(s, keys, n, normal, tolerance, rep);
    } else {
        rep->min_spacing = rep->max_spacing = spacing;
    }
    memcpy(out->origin, s[keys[0].index].ipp, sizeof out->origin);
    for (int a = 0; a < 3; a++) {
        out->direction[3 * a + 0] = r[a];
        out->direction[3 * a + 1] = c[a];
        out->direction[3 * a + 2] = normal[a];
    }
    out->spacing_z = spacing;
    mira_free(keys);
    mira_free(gaps);
    return true;
}

/* ------------------------------------------------------------------ reading headers */

typedef struct frame_info {
    double ipp[3], iop[6], ps[2];
    bool has_ipp, has_iop, has_ps;
} frame_info;

typedef struct file_info {
    char *path;
    char *series_uid;
    char *sop_uid;
    int64_t instance;
    mira_pixel_desc desc;
    bool enhanced;      /* per-frame functional groups */
    bool frame_offsets; /* classic multi-frame with Grid Frame Offset Vector */
    bool duplicate;
    double thickness, spacing_between, gantry_tilt; /* 0 if absent */
    frame_info *fr;                                 /* desc.frames entries */
} file_info;

static void file_info_cleanup(file_info *fi)
{
    mira_free(fi->path);
    mira_free(fi->series_uid);
    mira_free(fi->sop_uid);
    mira_free(fi->fr);
    memset(fi, 0, sizeof *fi);
}

/* n numbers of a DS/FD element; false if absent or short. */
static bool get_numbers(const mira_dataset *ds, mira_tag tag, double *out, size_t n)
{
    mira_element *e = ds ? mira_dataset_get(ds, tag) : NULL;
    if (!e || mira_element_length(e) == 0 || mira_element_vm(e) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!mira_element_get_double(e, i, &out[i], NULL) || !isfinite(out[i]))
            return false;
    return true;
}

static char *get_string(const mira_dataset *ds, mira_tag tag)
{
    mira_element *e = mira_dataset_get(ds, tag);
    return e ? mira_element_get_string(e, 0, NULL) : NULL;
}

/* A frame's value from its functional group, else the top level. */
static bool frame_numbers(const mira_dataset *ds, uint32_t frame, mira_tag seq, mira_tag tag,
                          double *out, size_t n)
{
    const mira_dataset *g = mira__frame_group(ds, frame, seq);
    return get_numbers(g, tag, out, n) || get_numbers(ds, tag, out, n);
}

/* Header of one file (without its pixel data). is_image is false for DICOM objects without
 * an image (DICOMDIR, SR...); an unreadable file is an error. */
static bool read_info(const char *path, file_info *fi, bool *is_image, mira_error **err)
{
    memset(fi, 0, sizeof *fi);
    *is_image = false;
    mira_read_options ro;
    mira_read_options_init(&ro);
    ro.stop_before_pixels = true;
    mira_file *f = mira_file_read(path, &ro, err);
    if (!f)
        return false;
    const mira_dataset *ds = mira_file_dataset(f);
    char *media = get_string(mira_file_meta(f), TAG_MEDIA_SOP_CLASS);
    bool dicomdir = media && strcmp(media, DICOMDIR_SOP_CLASS) == 0;
    mira_free(media);
    if (dicomdir || !mira_dataset_get(ds, TAG_ROWS)) {
        mira_file_free(f);
        return true;
    }
    *is_image = true;
    bool ok = mira__pixel_desc_read(ds, &fi->desc, err);
    fi->path = mira_strdup(path);
    fi->series_uid = get_string(ds, TAG_SERIES_UID);
    fi->sop_uid = get_string(ds, TAG_SOP_INSTANCE_UID);
    double v;
    fi->instance = get_numbers(ds, TAG_INSTANCE_NUMBER, &v, 1) ? (int64_t)v : 0;
    fi->thickness = get_numbers(ds, TAG_SLICE_THICKNESS, &v, 1) && v > 0 ? v : 0;
    fi->spacing_between = get_numbers(ds, TAG_SPACING_BETWEEN, &v, 1) && v > 0 ? v : 0;
    fi->gantry_tilt = get_numbers(ds, TAG_GANTRY_TILT, &v, 1) ? v : 0;
    mira_element *pf = mira_dataset_get(ds, TAG_PER_FRAME_FG);
    fi->enhanced = pf && mira_element_item_count(pf) > 0;
    if (ok && !fi->path) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s", path);
        ok = false;
    }
    if (ok && fi->enhanced && mira_element_item_count(pf) < fi->desc.frames) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad functional groups",
                       "%s: %zu items of Per-frame Functional Groups Sequence for %u frames", path,
                       mira_element_item_count(pf), fi->desc.frames);
        ok = false;
    }
    if (ok) {
        fi->fr = mira_calloc(fi->desc.frames ? fi->desc.frames : 1, sizeof *fi->fr);
        if (!fi->fr) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s", path);
            ok = false;
        }
    }
    for (uint32_t k = 0; ok && k < fi->desc.frames; k++) {
        frame_info *fr = &fi->fr[k];
        fr->has_ipp = frame_numbers(ds, k, TAG_PLANE_POSITION_SEQ, TAG_IPP, fr->ipp, 3);
        fr->has_iop = frame_numbers(ds, k, TAG_PLANE_ORIENTATION_SEQ, TAG_IOP, fr->iop, 6);
        fr->has_ps = frame_numbers(ds, k, TAG_PIXEL_MEASURES_SEQ, TAG_PIXEL_SPACING, fr->ps, 2) &&
                     fr->ps[0] > 0 && fr->ps[1] > 0;
    }
    if (ok && !fi->enhanced && fi->desc.frames > 1) {
        /* RT Dose: Grid Frame Offset Vector gives each frame's offset along the normal from
         * the first (relative when its first value is 0, else z coordinates, PS3.3
         * C.8.8.3.2); otherwise one position for a whole classic stack */
        mira_element *gf = mira_dataset_get(ds, TAG_GRID_FRAME_OFFSETS);
        const frame_info *f0 = &fi->fr[0];
        bool offsets = gf && f0->has_ipp && f0->has_iop && mira_element_vm(gf) >= fi->desc.frames;
        double first = 0, nrm[3];
        cross3(f0->iop, f0->iop + 3, nrm);
        double nn = norm3(nrm);
        offsets = offsets && nn > 1e-6 && mira_element_get_double(gf, 0, &first, NULL);
        for (uint32_t k = 1; k < fi->desc.frames; k++) {
            double off;
            frame_info *fr = &fi->fr[k];
            fr->has_ipp = offsets && mira_element_get_double(gf, k, &off, NULL) && isfinite(off);
            for (int a = 0; fr->has_ipp && a < 3; a++)
                fr->ipp[a] = f0->ipp[a] + (off - first) * nrm[a] / nn;
        }
        fi->frame_offsets = offsets;
    }
    mira_file_free(f);
    if (!ok) {
        mira_error_prefix(err, "%s: ", path);
        file_info_cleanup(fi);
    }
    return ok;
}

/* ------------------------------------------------------------------ decoding */

typedef struct slice {
    size_t file;
    uint32_t frame;
    mira__slice_geom geom;
    char name[64];
    mira_modality_lut *lut;
    double smin, smax; /* stored values */
} slice;

typedef struct decode_ctx {
    file_info *files;
    slice *slices;
    const size_t *order; /* volume slice k is slices[order[k]] */
    uint8_t *out;
    size_t slice_bytes;
    mira_pixel_type type;
    size_t values;       /* per slice */
    mira_pixels *shared; /* the one file's pixels, for a single multi-frame object */
    const mira_dataset *shared_ds;
    atomic_int ybr;
    pthread_mutex_t lock;
    mira_error *err;
} decode_ctx;

static void range_of(const void *p, mira_pixel_type t, size_t n, double *lo, double *hi)
{
    double mn = INFINITY, mx = -INFINITY;
#define RANGE(T)                                                                                   \
    do {                                                                                           \
        const T *v = p;                                                                            \
        for (size_t i = 0; i < n; i++) {                                                           \
            double x = (double)v[i];                                                               \
            mn = x < mn ? x : mn;                                                                  \
            mx = x > mx ? x : mx;                                                                  \
        }                                                                                          \
    } while (0)
    switch (t) {
    case MIRA_U8:
        RANGE(uint8_t);
        break;
    case MIRA_I8:
        RANGE(int8_t);
        break;
    case MIRA_U16:
        RANGE(uint16_t);
        break;
    case MIRA_I16:
        RANGE(int16_t);
        break;
    case MIRA_U32:
        RANGE(uint32_t);
        break;
    case MIRA_I32:
        RANGE(int32_t);
        break;
    case MIRA_F32:
        RANGE(float);
        break;
    case MIRA_F64:
        RANGE(double);
        break;
    }
#undef RANGE
    *lo = mn;
    *hi = mx;
}

static uint8_t clamp_u8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)lround(v);
}

/* YBR_FULL to RGB (PS3.3 C.7.6.3.1.2), 8-bit. */
static void ybr_to_rgb(uint8_t *p, size_t pixels)
{
    for (size_t i = 0; i < pixels; i++, p += 3) {
        double y = p[0], cb = p[1] - 128.0, cr = p[2] - 128.0;
        p[0] = clamp_u8(y + 1.402 * cr);
        p[1] = clamp_u8(y - 0.344136 * cb - 0.714136 * cr);
        p[2] = clamp_u8(y + 1.772 * cb);
    }
}

static void decode_fail(decode_ctx *c, mira_error *e)
{
    pthread_mutex_lock(&c->lock);
    if (!c->err)
        c->err = e;
    else
        mira_error_free(e);
    pthread_mutex_unlock(&c->lock);
}

static bool check_decoded(const mira_pixel_desc *d, const file_info *fi, size_t slice_bytes,
                          mira_error **err)
{
    if (d->rows != fi->desc.rows || d->columns != fi->desc.columns ||
        d->samples != fi->desc.samples || mira_pixel_frame_bytes(d) != slice_bytes) {
        mira_error_set(err, MIRA_ERR_INVALID, "Inconsistent image",
                       "%s: pixel data decodes to %ux%u with %u samples, the header says "
                       "%ux%u with %u",
                       fi->path, d->columns, d->rows, d->samples, fi->desc.columns, fi->desc.rows,
                       fi->desc.samples);
        return false;
    }
    return true;
}

static bool decode_one(void *ctx, size_t k)
{
    decode_ctx *c = ctx;
    slice *s = &c->slices[c->order[k]];
    file_info *fi = &c->files[s->file];
    uint8_t *dst = c->out + k * c->slice_bytes;
    mira_error *err = NULL;
    mira_file *f = NULL;
    mira_pixels *px = c->shared;
    const mira_dataset *ds = c->shared_ds;
    bool ok = true;
    if (!px) {
        f = mira_file_read(fi->path, NULL, &err);
        ok = f != NULL;
        if (ok) {
            ds = mira_file_dataset(f);
            px = mira_pixels_open_file(f, &err);
            ok = px != NULL;
        }
        if (!ok)
            mira_error_prefix(&err, "%s: ", fi->path);
    }
    const mira_pixel_desc *d = ok ? mira_pixels_decoded(px) : NULL;
    ok = ok && check_decoded(d, fi, c->slice_bytes, &err);
    if (ok && !mira_pixels_decode_frame(px, s->frame, dst, c->slice_bytes, &err)) {
        mira_error_prefix(&err, "%s: frame %u: ", fi->path, s->frame);
        ok = false;
    }
    if (ok && d->samples == 3 && d->photometric == MIRA_PHOTO_YBR_FULL && c->type == MIRA_U8) {
        ybr_to_rgb(dst, c->slice_bytes / 3);
        atomic_fetch_add(&c->ybr, 1);
    }
    if (ok) {
        s->lut = mira__modality_lut_frame(ds, d, s->frame, &err);
        ok = s->lut != NULL;
        range_of(dst, c->type, c->values, &s->smin, &s->smax);
    }
    if (!c->shared) {
        mira_pixels_free(px);
        mira_file_free(f);
    }
    if (!ok)
        decode_fail(c, err);
    return ok;
}

/* ------------------------------------------------------------------ modality values */

static bool integral(double v)
{
    return isfinite(v) && fabs(v - nearbyint(v)) < 1e-9 * fmax(1.0, fabs(v));
}

static bool type_holds(mira_pixel_type t, double lo, double hi)
{
    switch (t) {
    case MIRA_U8:
        return lo >= 0 && hi <= 255;
    case MIRA_I8:
        return lo >= -128 && hi <= 127;
    case MIRA_U16:
        return lo >= 0 && hi <= 65535;
    case MIRA_I16:
        return lo >= -32768 && hi <= 32767;
    case MIRA_U32:
        return lo >= 0 && hi <= 4294967295.0;
    case MIRA_I32:
        return lo >= -2147483648.0 && hi <= 2147483647.0;
    default:
        return true;
    }
}

static bool is_float_type(mira_pixel_type t)
{
    return t == MIRA_F32 || t == MIRA_F64;
}

static void store_value(void *p, mira_pixel_type t, size_t i, double v)
{
    switch (t) {
    case MIRA_U8:
        ((uint8_t *)p)[i] = (uint8_t)nearbyint(v);
        break;
    case MIRA_I8:
        ((int8_t *)p)[i] = (int8_t)nearbyint(v);
        break;
    case MIRA_U16:
        ((uint16_t *)p)[i] = (uint16_t)nearbyint(v);
        break;
    case MIRA_I16:
        ((int16_t *)p)[i] = (int16_t)nearbyint(v);
        break;
    case MIRA_U32:
        ((uint32_t *)p)[i] = (uint32_t)nearbyint(v);
        break;
    case MIRA_I32:
        ((int32_t *)p)[i] = (int32_t)nearbyint(v);
        break;
    case MIRA_F32:
        ((float *)p)[i] = (float)v;
        break;
    case MIRA_F64:
        ((double *)p)[i] = v;
        break;
    }
}

/*
 * Stored values to modality values (Rescale Slope/Intercept or the Modality LUT of each
 * slice). The result is an integer type when every slice's transform gives integers and the
 * range fits (the stored type, then i16, u16, i32), else f32.
 */
static mira_image *apply_modality(mira_image *stored, slice *slices, const size_t *order,
                                  mira_error **err)
{
    size_t nz = stored->size[2];
    size_t per = stored->size[0] * stored->size[1] * (size_t)stored->channels;
    bool identity = true, ints = true;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < nz; k++) {
        const slice *s = &slices[order[k]];
        double slope = 1, inter = 0;
        if (mira_modality_lut_linear(s->lut, &slope, &inter)) {
            identity = identity && slope == 1 && inter == 0;
            ints = ints && integral(slope) && integral(inter);
        } else {
            identity = false; /* LUT entries are integers */
        }
        if (mira_modality_lut_linear(s->lut, NULL, NULL)) {
            double a = mira_modality_lut_apply(s->lut, s->smin);
            double b = mira_modality_lut_apply(s->lut, s->smax);
            lo = fmin(lo, fmin(a, b));
            hi = fmax(hi, fmax(a, b));
        } else {
            /* a LUT need not be monotonic: look at every value */
            size_t base = k * per;
            for (size_t i = 0; i < per; i++) {
                double m = mira_modality_lut_apply(s->lut, mira_image_get(stored, base + i, 0));
                lo = fmin(lo, m);
                hi = fmax(hi, m);
            }
        }
    }
    if (identity || is_float_type(stored->type))
        return stored;
    mira_pixel_type out = MIRA_F32;
    if (ints) {
        static const mira_pixel_type candidates[] = {MIRA_I16, MIRA_U16, MIRA_I32};
        if (type_holds(stored->type, lo, hi))
            out = stored->type;
        for (size_t i = 0; out == MIRA_F32 && i < 3; i++)
            if (type_holds(candidates[i], lo, hi))
                out = candidates[i];
    }
    mira_image *img =
        mira_image_new(out, stored->channels, stored->size[0], stored->size[1], nz, err);
    if (!img)
        return NULL;
    mira_image_copy_geometry(img, stored);
    for (size_t k = 0; k < nz; k++) {
        const mira_modality_lut *m = slices[order[k]].lut;
        size_t base = k * per;
        for (size_t i = 0; i < per; i++)
            store_value(img->data, out, base + i,
                        mira_modality_lut_apply(m, mira_image_get(stored, base + i, 0)));
    }
    mira_image_free(stored);
    return img;
}

/* ------------------------------------------------------------------ building the volume */

static bool stored_type(const mira_pixel_desc *d, const char *path, mira_pixel_type *t,
                        mira_error **err)
{
    size_t b = mira_pixel_sample_bytes(d);
    if (d->is_float && b == 4)
        *t = MIRA_F32;
    else if (d->is_float && b == 8)
        *t = MIRA_F64;
    else if (b == 1)
        *t = d->is_signed ? MIRA_I8 : MIRA_U8;
    else if (b == 2)
        *t = d->is_signed ? MIRA_I16 : MIRA_U16;
    else if (b == 4)
        *t = d->is_signed ? MIRA_I32 : MIRA_U32;
    else {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported pixels",
                       "%s: %u-bit integer pixels have no volume type", path, d->bits_allocated);
        return false;
    }
    return true;
}

static int compare_sop(const void *a, const void *b)
{
    const file_info *x = *(const file_info *const *)a, *y = *(const file_info *const *)b;
    int c = strcmp(x->sop_uid ? x->sop_uid : "", y->sop_uid ? y->sop_uid : "");
    return c ? c : strcmp(x->path, y->path);
}

/* Files that repeat an SOP Instance UID are the same image twice: keep the first. */
static bool mark_duplicates(file_info *files, size_t n, mira_series_report *rep, mira_error **err)
{
    if (n < 2)
        return true;
    file_info **p = mira_malloc(n * sizeof *p);
    if (!p) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "checking %zu files", n);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = &files[i];
    qsort(p, n, sizeof *p, compare_sop);
    size_t dups = 0;
    const char *example = NULL;
    for (size_t i = 1; i < n; i++) {
        if (p[i]->sop_uid && p[i]->sop_uid[0] && p[i - 1]->sop_uid &&
            strcmp(p[i]->sop_uid, p[i - 1]->sop_uid) == 0) {
            p[i]->duplicate = true;
            if (!dups++)
                example = p[i]->path;
        }
    }
    if (dups)
        mira__report_warn(rep,
                          "%zu file%s repeat%s the SOP Instance UID of another (e.g. %s): "
                          "ignored as copies",
                          dups, dups == 1 ? "" : "s", dups == 1 ? "s" : "", example);
    mira_free(p);
    return true;
}

static bool same_desc(const mira_pixel_desc *a, const mira_pixel_desc *b)
{
    return a->rows == b->rows && a->columns == b->columns && a->samples == b->samples &&
           a->bits_allocated == b->bits_allocated && a->is_signed == b->is_signed &&
           a->is_float == b->is_float && a->photometric == b->photometric;
}

/* One series' files (headers read) to a volume. */
static mira_image *build_volume(file_info *files, size_t nfiles, const mira_series_options *opt,
                                mira_series_report *rep, mira_error **err)
{
    if (!mark_duplicates(files, nfiles, rep, err))
        return NULL;
    const file_info *first = NULL;
    size_t nslices = 0, nused = 0;
    bool classic_stack = false;
    for (size_t i = 0; i < nfiles; i++) {
        const file_info *fi = &files[i];
        if (fi->duplicate)
            continue;
        if (!first)
            first = fi;
        nused++;
        const char *u1 = first->series_uid ? first->series_uid : "";
        const char *u2 = fi->series_uid ? fi->series_uid : "";
        if (strcmp(u1, u2) != 0) {
            mira_error_set(err, MIRA_ERR_INVALID, "Several series",
                           "%s belongs to series %s, %s to series %s: a volume is built from "
                           "one series",
                           first->path, u1[0] ? u1 : "(none)", fi->path, u2[0] ? u2 : "(none)");
            return NULL;
        }
        if (!same_desc(&first->desc, &fi->desc)) {
            mira_error_set(err, MIRA_ERR_INVALID, "Different images",
                           "%s is %ux%u, %u sample(s) of %u bits (%s), %s is %ux%u, %u of %u "
                           "bits (%s): the slices of a volume must match",
                           first->path, first->desc.columns, first->desc.rows, first->desc.samples,
                           first->desc.bits_allocated,
                           mira_photometric_name(first->desc.photometric), fi->path,
                           fi->desc.columns, fi->desc.rows, fi->desc.samples,
                           fi->desc.bits_allocated, mira_photometric_name(fi->desc.photometric));
            return NULL;
        }
        if (fi->desc.frames > 1 && !fi->enhanced && !fi->frame_offsets)
            classic_stack = true;
        nslices += fi->desc.frames;
    }
    if (classic_stack && nused > 1) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Several multi-frame files",
                       "the series has %zu files, some of them multi-frame without per-frame "
                       "geometry: mira stacks the frames of one such file only",
                       nused);
        return NULL;
    }
    slice *slices = mira_calloc(nslices, sizeof *slices);
    mira__slice_geom *geom = mira_calloc(nslices, sizeof *geom);
    size_t *order = mira_calloc(nslices, sizeof *order);
    mira_image *img = NULL;
    mira_file *shared_file = NULL;
    mira_pixels *shared_px = NULL;
    decode_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    pthread_mutex_init(&ctx.lock, NULL);
    if (!slices || !geom || !order) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "listing %zu slices", nslices);
        goto done;
    }
    size_t n = 0, with_geom = 0;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i].duplicate)
            continue;
        const char *base = strrchr(files[i].path, '/');
        base = base ? base + 1 : files[i].path;
        for (uint32_t k = 0; k < files[i].desc.frames; k++, n++) {
            slice *s = &slices[n];
            s->file = i;
            s->frame = k;
            if (files[i].desc.frames > 1)
                snprintf(s->name, sizeof s->name, "%.40s frame %u", base, k + 1);
            else
                snprintf(s->name, sizeof s->name, "%.60s", base);
            const frame_info *fr = &files[i].fr[k];
            memcpy(s->geom.ipp, fr->ipp, sizeof fr->ipp);
            memcpy(s->geom.iop, fr->iop, sizeof fr->iop);
            s->geom.name = s->name;
            geom[n] = s->geom;
            with_geom += fr->has_ipp && fr->has_iop;
        }
    }
    rep->slices = nslices;
    rep->multiframe = nused == 1 && first->desc.frames > 1;

    /* geometry */
    mira__stack_geom g;
    const frame_info *fr0 = &first->fr[0];
    double single_z = first->spacing_between > 0 ? first->spacing_between
                      : first->thickness > 0     ? first->thickness
                                                 : 1.0;
    if (with_geom == nslices) {
        if (!mira__stack_geometry(geom, nslices, opt->tolerance, single_z, order, &g, rep, err))
            goto done;
        if (rep->tilted && first->gantry_tilt != 0)
            mira__report_warn(rep, "Gantry/Detector Tilt (0018,1120) says %g degrees",
                              first->gantry_tilt);
    } else if (classic_stack || with_geom == 0) {
        /* no per-slice positions: frames (or files by Instance Number) in order */
        memset(&g, 0, sizeof g);
        g.direction[0] = g.direction[4] = g.direction[8] = 1;
        if (fr0->has_iop) {
            double r[3] = {fr0->iop[0], fr0->iop[1], fr0->iop[2]};
            double c[3] = {fr0->iop[3], fr0->iop[4], fr0->iop[5]}, nn[3];
            cross3(r, c, nn);
            double a = norm3(r), b = norm3(c), m = norm3(nn);
            if (a > 1e-6 && b > 1e-6 && m > 1e-6 * a * b)
                for (int x = 0; x < 3; x++) {
                    g.direction[3 * x + 0] = r[x] / a;
                    g.direction[3 * x + 1] = c[x] / b;
                    g.direction[3 * x + 2] = nn[x] / m;
                }
        }
        if (fr0->has_ipp)
            memcpy(g.origin, fr0->ipp, sizeof g.origin);
        g.spacing_z = single_z;
        for (size_t k = 0; k < nslices; k++)
            order[k] = k;
        if (!classic_stack) {
            /* files by Instance Number */
            for (size_t a = 1; a < nslices; a++)
                for (size_t b = a; b > 0 && files[slices[order[b - 1]].file].instance >
                                                files[slices[order[b]].file].instance;
                     b--) {
                    size_t t = order[b];
                    order[b] = order[b - 1];
                    order[b - 1] = t;
                }
        }
        rep->min_spacing = rep->max_spacing = g.spacing_z;
        if (nslices > 1)
            mira__report_warn(rep,
                              "no position for each %s: %s stacked in %s with a spacing of %.4g "
                              "mm (%s) and the %s; the geometry is assumed",
                              classic_stack ? "frame" : "slice",
                              classic_stack ? "frames" : "slices",
                              classic_stack ? "file order" : "Instance Number order", g.spacing_z,
                              first->spacing_between > 0 ? "Spacing Between Slices"
                              : first->thickness > 0     ? "Slice Thickness"
                                                         : "no spacing in the file",
                              fr0->has_iop ? "first orientation" : "identity orientation");
        else if (!fr0->has_ipp || !fr0->has_iop)
            mira__report_warn(rep, "no Image Position/Orientation (Patient): identity geometry");
    } else {
        for (size_t k = 0; k < nslices; k++) {
            const frame_info *f = &files[slices[k].file].fr[slices[k].frame];
            if (!f->has_ipp || !f->has_iop) {
                mira_error_set(err, MIRA_ERR_INVALID, "Missing geometry",
                               "%s has no Image %s (Patient) while other slices have one",
                               slices[k].name, f->has_ipp ? "Orientation" : "Position");
                break;
            }
        }
        goto done;
    }
    double ps[2] = {1, 1};
    if (fr0->has_ps) {
        ps[0] = fr0->ps[0];
        ps[1] = fr0->ps[1];
    } else {
        mira__report_warn(rep, "no Pixel Spacing: 1 mm assumed");
    }
    for (size_t k = 0; k < nslices; k++) {
        const frame_info *f = &files[slices[k].file].fr[slices[k].frame];
        if (f->has_ps != fr0->has_ps || (f->has_ps && (fabs(f->ps[0] - ps[0]) > opt->tolerance ||
                                                       fabs(f->ps[1] - ps[1]) > opt->tolerance))) {
            mira__report_warn(rep, "%s has another Pixel Spacing than %s: the first is used",
                              slices[k].name, slices[0].name);
            break;
        }
    }

    /* pixels */
    mira_pixel_type type;
    if (!stored_type(&first->desc, first->path, &type, err))
        goto done;
    img = mira_image_new(type, first->desc.samples, first->desc.columns, first->desc.rows, nslices,
                         err);
    if (!img)
        goto done;
    img->spacing[0] = ps[1]; /* Pixel Spacing is row spacing \ column spacing */
    img->spacing[1] = ps[0];
    img->spacing[2] = g.spacing_z;
    memcpy(img->origin, g.origin, sizeof img->origin);
    memcpy(img->direction, g.direction, sizeof img->direction);

    ctx.files = files;
    ctx.slices = slices;
    ctx.order = order;
    ctx.out = img->data;
    ctx.type = type;
    ctx.values = img->size[0] * img->size[1] * (size_t)img->channels;
    ctx.slice_bytes = ctx.values * mira_pixel_type_size(type);
    atomic_init(&ctx.ybr, 0);
    if (nused == 1) {
        shared_file = mira_file_read(first->path, NULL, err);
        shared_px = shared_file ? mira_pixels_open_file(shared_file, err) : NULL;
        if (!shared_px) {
            mira_error_prefix(err, "%s: ", first->path);
            mira_image_free(img);
            img = NULL;
            goto done;
        }
        ctx.shared = shared_px;
        ctx.shared_ds = mira_file_dataset(shared_file);
    }
    if (!mira__parallel_for(nslices, opt->threads, decode_one, &ctx)) {
        if (err && !*err) {
            *err = ctx.err;
            ctx.err = NULL;
        }
        if (err && !*err)
            mira_error_set(err, MIRA_ERR_INVALID, "Cannot decode", "a slice failed to decode");
        mira_image_free(img);
        img = NULL;
        goto done;
    }
    if (atomic_load(&ctx.ybr))
        mira__report_warn(rep, "colour values converted from YBR_FULL to RGB");
    if (first->desc.photometric == MIRA_PHOTO_PALETTE)
        mira__report_warn(rep, "PALETTE COLOR: the volume holds palette indices");
    if (!opt->stored_values && first->desc.samples == 1)
        img = apply_modality(img, slices, order, err);

done:
    if (slices)
        for (size_t k = 0; k < nslices; k++)
            mira_modality_lut_free(slices[k].lut);
    mira_error_free(ctx.err);
    pthread_mutex_destroy(&ctx.lock);
    mira_pixels_free(shared_px);
    mira_file_free(shared_file);
    mira_free(slices);
    mira_free(geom);
    mira_free(order);
    return img;
}

mira_image *mira_series_load(const char *const *paths, size_t n, const mira_series_options *opt,
                             mira_series_report *report, mira_error **err)
{
    mira_series_options defaults;
    if (!opt) {
        mira_series_options_init(&defaults);
        opt = &defaults;
    }
    mira_series_report local;
    mira_series_report *rep = report ? report : &local;
    memset(rep, 0, sizeof *rep);
    if (n == 0) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "No files", "no files to build a volume from");
        return NULL;
    }
    file_info *files = mira_calloc(n, sizeof *files);
    if (!files) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %zu files", n);
        return NULL;
    }
    mira_image *img = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        bool is_image;
        if (!read_info(paths[i], &files[i], &is_image, err))
            break;
        if (!is_image) {
            mira_error_set(err, MIRA_ERR_INVALID, "Not an image",
                           "%s is not an image (no Rows, or a DICOMDIR)", paths[i]);
            break;
        }
    }
    if (i == n)
        img = build_volume(files, n, opt, rep, err);
    for (size_t k = 0; k < n; k++)
        file_info_cleanup(&files[k]);
    mira_free(files);
    if (rep == &local)
        mira_series_report_cleanup(&local);
    return img;
}

/* ------------------------------------------------------------------ folders */

typedef struct dir_scan {
    file_info *files;
    size_t n, cap;
    size_t not_dicom, not_image;
    mira_error *err; /* only out of memory and folder errors stop the scan */
} dir_scan;

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool scan_dir(dir_scan *sc, const char *dir, int depth)
{
    if (depth > MAX_DIR_DEPTH)
        return true;
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0) {
            mira_error_set(&sc->err, MIRA_ERR_IO, "Cannot read folder", "%s: %s", dir,
                           strerror(errno));
            return false;
        }
        return true;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = mira_realloc(names, nc * sizeof *nn);
            if (!nn) {
                ok = false;
                break;
            }
            names = nn;
            cap = nc;
        }
        mira__buf b;
        mira__buf_init(&b);
        mira__buf_printf(&b, "%s/%s", dir, de->d_name);
        names[n] = mira__buf_steal(&b, NULL);
        if (!names[n])
            ok = false;
        else
            n++;
    }
    closedir(d);
    if (!ok)
        mira_error_set(&sc->err, MIRA_ERR_NOMEM, NULL, "listing %s", dir);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; ok && i < n; i++) {
        struct stat st, lst;
        if (stat(names[i], &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            /* follow no symbolic links to folders: they can loop */
            if (lstat(names[i], &lst) == 0 && !S_ISLNK(lst.st_mode))
                ok = scan_dir(sc, names[i], depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (sc->n == sc->cap) {
            size_t nc = sc->cap ? sc->cap * 2 : 64;
            file_info *nf = mira_realloc(sc->files, nc * sizeof *nf);
            if (!nf) {
                mira_error_set(&sc->err, MIRA_ERR_NOMEM, NULL, "listing %s", dir);
                ok = false;
                break;
            }
            sc->files = nf;
            sc->cap = nc;
        }
        mira_error *e = NULL;
        bool is_image;
        if (!read_info(names[i], &sc->files[sc->n], &is_image, &e)) {
            if (mira_error_get_code(e) == MIRA_ERR_NOMEM) {
                mira_error_set(&sc->err, MIRA_ERR_NOMEM, NULL, "reading %s", names[i]);
                ok = false;
            }
            sc->not_dicom++;
            mira_error_free(e);
        } else if (!is_image) {
            sc->not_image++;
        } else {
            sc->n++;
        }
    }
    for (size_t i = 0; i < n; i++)
        mira_free(names[i]);
    mira_free(names);
    return ok;
}

mira_image *mira_series_load_dir(const char *dir, const char *series_uid,
                                 const mira_series_options *opt, mira_series_report *report,
                                 mira_error **err)
{
    mira_series_options defaults;
    if (!opt) {
        mira_series_options_init(&defaults);
        opt = &defaults;
    }
    mira_series_report local;
    mira_series_report *rep = report ? report : &local;
    memset(rep, 0, sizeof *rep);
    dir_scan sc;
    memset(&sc, 0, sizeof sc);
    mira_image *img = NULL;
    if (!scan_dir(&sc, dir, 0)) {
        if (err && !*err) {
            *err = sc.err;
            sc.err = NULL;
        }
        goto done;
    }
    if (sc.n == 0) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No images",
                       "%s: no DICOM images (%zu files are not DICOM, %zu DICOM objects are not "
                       "images)",
                       dir, sc.not_dicom, sc.not_image);
        goto done;
    }
    /* the series present; keep the one asked for */
    size_t kept = 0, nseries = 0;
    mira__buf list;
    mira__buf_init(&list);
    for (size_t i = 0; i < sc.n; i++) {
        const char *u = sc.files[i].series_uid ? sc.files[i].series_uid : "";
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(sc.files[j].series_uid ? sc.files[j].series_uid : "", u) == 0;
        if (!seen) {
            size_t count = 0;
            for (size_t j = i; j < sc.n; j++)
                count += strcmp(sc.files[j].series_uid ? sc.files[j].series_uid : "", u) == 0;
            if (nseries < 8)
                mira__buf_printf(&list, "%s%s (%zu file%s)", nseries ? ", " : "",
                                 u[0] ? u : "(no UID)", count, count == 1 ? "" : "s");
            nseries++;
        }
    }
    if (series_uid) {
        for (size_t i = 0; i < sc.n; i++) {
            if (strcmp(sc.files[i].series_uid ? sc.files[i].series_uid : "", series_uid) == 0) {
                file_info t = sc.files[kept];
                sc.files[kept++] = sc.files[i];
                sc.files[i] = t;
            }
        }
        if (kept == 0)
            mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such series",
                           "%s: no image of series %s; the folder holds %s%s", dir, series_uid,
                           list.data ? (char *)list.data : "", nseries > 8 ? ", ..." : "");
    } else if (nseries > 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Several series",
                       "%s holds %zu series: %s%s; name one", dir, nseries,
                       list.data ? (char *)list.data : "", nseries > 8 ? ", ..." : "");
    } else {
        kept = sc.n;
    }
    mira__buf_cleanup(&list);
    if (kept)
        img = build_volume(sc.files, kept, opt, rep, err);
done:
    for (size_t i = 0; i < sc.n; i++)
        file_info_cleanup(&sc.files[i]);
    mira_free(sc.files);
    mira_error_free(sc.err);
    if (rep == &local)
        mira_series_report_cleanup(&local);
    return img;
}
