/* Radiomics features of a region, as the IBSI reference manual (v11) defines them: intensity
 * statistics (3.3), intensity histogram (3.4), intensity-volume histogram (3.5), local
 * intensity (3.2) and the grey level co-occurrence matrix (3.6) with its six aggregations. */
#include "image/features_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mira_feature_settings_init(mira_feature_settings *s)
{
    memset(s, 0, sizeof *s);
    s->families = MIRA_FEATURES_ALL;
    s->discretisation = MIRA_DISCRETISE_NONE;
    s->bin_number = 32;
    s->bin_size = 25;
    s->lower_bound = NAN;
    s->cm_distance = 1;
}

void mira_features_cleanup(mira_features *f)
{
    mira_free(f->v);
    memset(f, 0, sizeof *f);
}

const mira_feature *mira_features_find(const mira_features *f, const char *tag)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].tag, tag) == 0)
            return &f->v[i];
    return NULL;
}

bool mira__features_add(mira_features *f, const char *tag, double value)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 128;
        mira_feature *v = mira_realloc(f->v, cap * sizeof *v);
        if (!v)
            return false;
        f->v = v;
        f->cap = cap;
    }
    snprintf(f->v[f->n].tag, sizeof f->v[0].tag, "%s", tag);
    f->v[f->n].value = value;
    f->n++;
    return true;
}

/* ------------------------------------------------------------------ the region */

static void region_free(region *r)
{
    mira_free(r->zstart);
    mira_free(r->x);
    mira_free(r->at);
    mira_free(r->level);
}

static bool same_grid(const mira_image *a, const mira_image *b)
{
    for (int i = 0; i < 3; i++)
        if (a->size[i] != b->size[i] || fabs(a->spacing[i] - b->spacing[i]) > 1e-6)
            return false;
    return true;
}

static bool region_make(const mira_image *img, const mira_image *mask,
                        const mira_feature_settings *s, region *r, mira_error **err)
{
    memset(r, 0, sizeof *r);
    r->img = img;
    if (img->channels != 1 || mask->channels != 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad region",
                       "features need a one-channel image and mask");
        return false;
    }
    if (!same_grid(img, mask)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad region",
                       "the mask's grid (%zux%zux%zu, spacing %g %g %g) is not the image's "
                       "(%zux%zux%zu, spacing %g %g %g): resample it first",
                       mask->size[0], mask->size[1], mask->size[2], mask->spacing[0],
                       mask->spacing[1], mask->spacing[2], img->size[0], img->size[1],
                       img->size[2], img->spacing[0], img->spacing[1], img->spacing[2]);
        return false;
    }
    r->nx = img->size[0];
    r->ny = img->size[1];
    r->nz = img->size[2];
    r->sx = img->spacing[0];
    r->sy = img->spacing[1];
    r->sz = img->spacing[2];
    size_t total = mira_image_voxels(img);
    for (size_t i = 0; i < total; i++)
        if (mira_image_get(mask, i, 0) != 0)
            r->n++;
    if (!r->n) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Empty region", "the mask has no voxel");
        return false;
    }
    r->x = mira_malloc(r->n * sizeof *r->x);
    r->at = mira_malloc(r->n * sizeof *r->at);
    r->level = mira_calloc(total, sizeof *r->level);
    r->zstart = mira_calloc(r->nz + 1, sizeof *r->zstart);
    if (!r->x || !r->at || !r->level || !r->zstart) {
        region_free(r);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a region of %zu voxels", r->n);
        return false;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0, k = 0; i < total; i++) {
        if (mira_image_get(mask, i, 0) == 0)
            continue;
        double v = mira_image_get(img, i, 0);
        if (!isfinite(v)) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad region",
                           "voxel %zu of the region has no finite value (%g)", i, v);
            region_free(r);
            return false;
        }
        r->x[k] = v;
        r->at[k++] = i;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    for (size_t k = 0; k < r->n; k++) /* voxels of each slice: at is in index order */
        r->zstart[r->at[k] / (r->nx * r->ny) + 1]++;
    for (size_t z = 0; z < r->nz; z++)
        r->zstart[z + 1] += r->zstart[z];
    /* the grey levels (IBSI 2.7) */
    int ng = 0;
    for (size_t k = 0; k < r->n; k++) {
        double v = r->x[k];
        long d;
        switch (s->discretisation) {
        case MIRA_DISCRETISE_BIN_NUMBER:
            d = hi > lo ? (long)floor(s->bin_number * (v - lo) / (hi - lo)) + 1 : 1;
            if (d > s->bin_number)
                d = s->bin_number; /* the maximum falls in the last bin */
            break;
        case MIRA_DISCRETISE_BIN_SIZE: {
            double b = isnan(s->lower_bound) ? lo : s->lower_bound;
            d = (long)floor((v - b) / s->bin_size) + 1;
            break;
        }
        default:
            d = (long)llround(v);
            if (fabs(v - (double)d) > 1e-9 || d < 1) {
                mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad region",
                               "without discretisation the values must be grey levels "
                               "(integers >= 1); voxel %zu is %g",
                               r->at[k], v);
                region_free(r);
                return false;
            }
        }
        if (d < 1 || d > 1 << 16) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad discretisation",
                           "voxel %zu falls in bin %ld (bins 1 to 65536 are allowed)", r->at[k],
                           d);
            region_free(r);
            return false;
        }
        r->level[r->at[k]] = (int)d;
        ng = (int)d > ng ? (int)d : ng;
    }
    r->ng = s->discretisation == MIRA_DISCRETISE_BIN_NUMBER ? s->bin_number : ng;
    return true;
}

/* ------------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p (0..1) of sorted values: linear between the closest ranks (Hyndman & Fan 7). */
static double percentile(const double *v, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]);
}

/* The statistics of 3.3 (and 3.4's first ones) of n values, under prefix ("stat", "ih"). */
static bool statistics(mira_features *f, const char *prefix, const double *values, size_t n)
{
    double *v = mira_malloc(n * sizeof *v);
    if (!v)
        return false;
    memcpy(v, values, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0, energy = 0;
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        energy += v[i] * v[i];
    }
    double mean = sum / (double)n, m2 = 0, m3 = 0, m4 = 0, mad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = v[i] - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
        mad += fabs(d);
    }
    m2 /= (double)n;
    m3 /= (double)n;
    m4 /= (double)n;
    mad /= (double)n;
    double median = percentile(v, n, 0.5), p10 = percentile(v, n, 0.1),
           p90 = percentile(v, n, 0.9), p25 = percentile(v, n, 0.25),
           p75 = percentile(v, n, 0.75);
    /* robust mean absolute deviation: of the values between p10 and p90 */
    double rsum = 0, rmad = 0;
    size_t rn = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= p10 && v[i] <= p90) {
            rsum += v[i];
            rn++;
        }
    double rmean = rn ? rsum / (double)rn : NAN;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= p10 && v[i] <= p90)
            rmad += fabs(v[i] - rmean);
    double medad = 0;
    for (size_t i = 0; i < n; i++)
        medad += fabs(v[i] - median);
    struct {
        const char *name;
        double value;
    } out[] = {
        {"mean", mean},
        {"var", m2},
        {"skew", m2 > 0 ? m3 / pow(m2, 1.5) : NAN},
        {"kurt", m2 > 0 ? m4 / (m2 * m2) - 3 : NAN},
        {"median", median},
        {"min", v[0]},
        {"p10", p10},
        {"p90", p90},
        {"max", v[n - 1]},
        {"iqr", p75 - p25},
        {"range", v[n - 1] - v[0]},
        {"mad", mad},
        {"rmad", rn ? rmad / (double)rn : NAN},
        {"medad", medad / (double)n},
        {"cov", mean != 0 ? sqrt(m2) / mean : NAN},
        {"qcod", p75 + p25 != 0 ? (p75 - p25) / (p75 + p25) : NAN},
        {"energy", energy},
        {"rms", sqrt(energy / (double)n)},
    };
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof out / sizeof out[0]; i++) {
        char tag[48];
        if (strcmp(prefix, "ih") == 0 && (strcmp(out[i].name, "energy") == 0 ||
                                          strcmp(out[i].name, "rms") == 0))
            continue; /* (statistics of the values only) */
        snprintf(tag, sizeof tag, "%s_%s", prefix, out[i].name);
        ok = mira__features_add(f, tag, out[i].value);
        if (ok && strcmp(prefix, "ih") == 0 && strcmp(out[i].name, "max") == 0) {
            /* the mode after the maximum, in the order of the manual: the most common grey
             * level (the lowest of equally common ones) */
            double mode = v[0];
            size_t best = 0;
            for (size_t a = 0; a < n;) {
                size_t b = a;
                while (b < n && v[b] == v[a])
                    b++;
                if (b - a > best) {
                    best = b - a;
                    mode = v[a];
                }
                a = b;
            }
            ok = mira__features_add(f, "ih_mode", mode);
        }
    }
    mira_free(v);
    return ok;
}

/* 3.4's own: entropy, uniformity and the histogram's gradients over the levels 1..ng. */
static bool histogram(mira_features *f, const region *r)
{
    double *h = mira_calloc((size_t)r->ng + 2, sizeof *h);
    if (!h)
        return false;
    for (size_t k = 0; k < r->n; k++)
        h[r->level[r->at[k]]]++;
    double entropy = 0, uniformity = 0;
    for (int i = 1; i <= r->ng; i++) {
        double p = h[i] / (double)r->n;
        if (p > 0)
            entropy -= p * log2(p);
        uniformity += p * p;
    }
    double gmax = -INFINITY, gmin = INFINITY;
    int at_max = 1, at_min = 1;
    for (int i = 1; i <= r->ng; i++) {
        double g = r->ng == 1 ? 0
                   : i == 1   ? h[2] - h[1]
                   : i == r->ng ? h[i] - h[i - 1]
                                : (h[i + 1] - h[i - 1]) / 2;
        if (g > gmax) {
            gmax = g;
            at_max = i;
        }
        if (g < gmin) {
            gmin = g;
            at_min = i;
        }
    }
    mira_free(h);
    return mira__features_add(f, "ih_entropy", entropy) &&
           mira__features_add(f, "ih_uniformity", uniformity) &&
           mira__features_add(f, "ih_max_grad", gmax) &&
           mira__features_add(f, "ih_max_grad_g", at_max) &&
           mira__features_add(f, "ih_min_grad", gmin) &&
           mira__features_add(f, "ih_min_grad_g", at_min);
}

/* 3.5: the intensity-volume histogram of the grey levels. */
static bool volume_histogram(mira_features *f, const region *r)
{
    int lo = r->ng, hi = 1;
    for (size_t k = 0; k < r->n; k++) {
        int d = r->level[r->at[k]];
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    size_t *atleast = mira_calloc((size_t)(hi + 2), sizeof *atleast);
    if (!atleast)
        return false;
    for (size_t k = 0; k < r->n; k++)
        atleast[r->level[r->at[k]]]++;
    for (int i = hi - 1; i >= 1; i--)
        atleast[i] += atleast[i + 1]; /* now: voxels with a level >= i */
    double n = (double)r->n;
    /* V_x: the fraction of the volume at or above x of the intensity range */
    double v[2];
    const double xs[2] = {0.10, 0.90};
    for (int j = 0; j < 2; j++) {
        double t = lo + xs[j] * (hi - lo);
        int first = (int)ceil(t - 1e-12);
        v[j] = first > hi ? 0 : (double)atleast[first < 1 ? 1 : first] / n;
    }
    /* I_x: the lowest level whose fraction at or above it is at most x */
    double in[2];
    for (int j = 0; j < 2; j++) {
        in[j] = hi + 1;
        for (int i = lo; i <= hi; i++)
            if ((double)atleast[i] / n <= xs[j] + 1e-12) {
                in[j] = i;
                break;
            }
    }
    mira_free(atleast);
    return mira__features_add(f, "ivh_v10", v[0]) && mira__features_add(f, "ivh_v90", v[1]) &&
           mira__features_add(f, "ivh_i10", in[0]) && mira__features_add(f, "ivh_i90", in[1]) &&
           mira__features_add(f, "ivh_diff_v10_v90", v[0] - v[1]) &&
           mira__features_add(f, "ivh_diff_i10_i90", in[0] - in[1]);
}

/* 3.2: the mean of the image in a sphere of 1 cm^3 around each voxel of the region: the
 * highest of those (global peak) and the highest around the region's brightest voxels (local
 * peak). The sphere holds the voxels of the whole image whose centres are within its radius. */
static bool local_intensity(mira_features *f, const region *r)
{
    const double radius = cbrt(3000.0 / (4 * M_PI)); /* mm: a sphere of 1000 mm^3 */
    int ry = (int)floor(radius / r->sy), rz = (int)floor(radius / r->sz);
    /* prefix sums of every row of the image: a sphere is then a sum of row pieces */
    size_t rows = r->ny * r->nz, w = r->nx + 1;
    double *pre = mira_malloc(rows * w * sizeof *pre);
    if (!pre)
        return false;
    for (size_t row = 0; row < rows; row++) {
        pre[row * w] = 0;
        for (size_t x = 0; x < r->nx; x++)
            pre[row * w + x + 1] = pre[row * w + x] + mira_image_get(r->img, row * r->nx + x, 0);
    }
    double brightest = -INFINITY;
    for (size_t k = 0; k < r->n; k++)
        brightest = r->x[k] > brightest ? r->x[k] : brightest;
    double glob = -INFINITY, loc = -INFINITY;
    for (size_t k = 0; k < r->n; k++) {
        size_t at = r->at[k];
        long x = (long)(at % r->nx), y = (long)(at / r->nx % r->ny),
             z = (long)(at / r->nx / r->ny);
        double sum = 0;
        size_t cnt = 0;
        for (long dz = -rz; dz <= rz; dz++) {
            long zz = z + dz;
            if (zz < 0 || zz >= (long)r->nz)
                continue;
            for (long dy = -ry; dy <= ry; dy++) {
                long yy = y + dy;
                double rest = radius * radius - (dy * r->sy) * (dy * r->sy) -
                              (dz * r->sz) * (dz * r->sz);
                if (yy < 0 || yy >= (long)r->ny || rest < 0)
                    continue;
                /* the voxel centres of this row within the sphere: |dx| * sx <= sqrt(rest) */
                long half = (long)floor(sqrt(rest) / r->sx + 1e-9);
                long lo = x - half < 0 ? 0 : x - half;
                long hi = x + half >= (long)r->nx ? (long)r->nx - 1 : x + half;
                size_t row = (size_t)zz * r->ny + (size_t)yy;
                sum += pre[row * w + (size_t)hi + 1] - pre[row * w + (size_t)lo];
                cnt += (size_t)(hi - lo + 1);
            }
        }
        double mean = sum / (double)cnt;
        glob = mean > glob ? mean : glob;
        if (r->x[k] == brightest)
            loc = mean > loc ? mean : loc;
    }
    mira_free(pre);
    return mira__features_add(f, "loc_peak_loc", loc) &&
           mira__features_add(f, "loc_peak_glob", glob);
}

/* ------------------------------------------------------------------ co-occurrence */

#define CM_N 25
static const char *const cm_names[CM_N] = {
    "joint_max",     "joint_avg",     "joint_var",         "joint_entr",  "diff_avg",
    "diff_var",      "diff_entr",     "sum_avg",           "sum_var",     "sum_entr",
    "energy",        "contrast",      "dissimilarity",     "inv_diff",    "inv_diff_norm",
    "inv_diff_mom",  "inv_diff_mom_norm", "inv_var",       "corr",        "auto_corr",
    "clust_tend",    "clust_shade",   "clust_prom",        "info_corr1",  "info_corr2"};

/* The 13 directions of a voxel's neighbourhood in 3D (the first 4 lie in the slice). */
static const int dirs[13][3] = {{1, 0, 0},  {1, 1, 0},  {0, 1, 0},  {-1, 1, 0}, {0, 0, 1},
                                {1, 0, 1},  {1, 1, 1},  {0, 1, 1},  {-1, 1, 1}, {-1, 0, 1},
                                {-1, -1, 1}, {0, -1, 1}, {1, -1, 1}};

/* Count the pairs of direction d (times the distance) whose both voxels are in the region,
 * both ways (a symmetric matrix), into m (ng x ng); only slice z when z >= 0. */
static double cm_count(const region *r, const int d[3], int dist, long z_only, double *m)
{
    int ng = r->ng;
    long ox = d[0] * dist, oy = d[1] * dist, oz = d[2] * dist;
    double pairs = 0;
    size_t k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        size_t at = r->at[k];
        long x = (long)(at % r->nx), y = (long)(at / r->nx % r->ny),
             z = (long)(at / r->nx / r->ny);
        long xx = x + ox, yy = y + oy, zz = z + oz;
        if (xx < 0 || yy < 0 || zz < 0 || xx >= (long)r->nx || yy >= (long)r->ny ||
            zz >= (long)r->nz)
            continue;
        int b = r->level[((size_t)zz * r->ny + (size_t)yy) * r->nx + (size_t)xx];
        if (!b)
            continue;
        int a = r->level[at];
        m[(a - 1) * ng + (b - 1)]++;
        m[(b - 1) * ng + (a - 1)]++;
        pairs += 2;
    }
    return pairs;
}

/* The 25 features of a co-occurrence matrix of counts (false: it has none). */
static bool cm_features(const double *m, int ng, double *px, double *pd, double *ps,
                        double out[CM_N])
{
    double total = 0;
    for (int i = 0; i < ng * ng; i++)
        total += m[i];
    if (total <= 0)
        return false;
    memset(px, 0, (size_t)ng * sizeof *px);
    memset(pd, 0, (size_t)ng * sizeof *pd);
    memset(ps, 0, (size_t)(2 * ng + 1) * sizeof *ps);
    double jmax = 0, mu = 0, jentr = 0, energy = 0, contrast = 0, dissim = 0, idiff = 0,
           idn = 0, idm = 0, idmn = 0, ivar = 0, auto_corr = 0;
    for (int i = 1; i <= ng; i++)
        for (int j = 1; j <= ng; j++) {
            double p = m[(i - 1) * ng + (j - 1)] / total;
            if (p == 0)
                continue;
            int k = abs(i - j);
            jmax = p > jmax ? p : jmax;
            mu += i * p;
            jentr -= p * log2(p);
            energy += p * p;
            contrast += (double)k * k * p;
            dissim += k * p;
            idiff += p / (1 + k);
            idn += p / (1 + (double)k / ng);
            idm += p / (1 + (double)k * k);
            idmn += p / (1 + (double)k * k / ((double)ng * ng));
            if (k)
                ivar += p / ((double)k * k);
            auto_corr += (double)i * j * p;
            px[i - 1] += p;
            pd[k] += p;
            ps[i + j] += p;
        }
    double var = 0, tend = 0, shade = 0, prom = 0, hxy1 = 0, hxy2 = 0, hx = 0, corr_num = 0;
    for (int i = 1; i <= ng; i++) {
        if (px[i - 1] > 0)
            hx -= px[i - 1] * log2(px[i - 1]);
        for (int j = 1; j <= ng; j++) {
            double p = m[(i - 1) * ng + (j - 1)] / total, q = px[i - 1] * px[j - 1];
            if (q > 0)
                hxy2 -= q * log2(q);
            if (p == 0)
                continue;
            double c = i + j - 2 * mu;
            var += (i - mu) * (i - mu) * p;
            corr_num += (i - mu) * (j - mu) * p;
            tend += c * c * p;
            shade += c * c * c * p;
            prom += c * c * c * c * p;
            hxy1 -= p * log2(q);
        }
    }
    double davg = 0, dvar = 0, dentr = 0, savg = 0, svar = 0, sentr = 0;
    for (int k = 0; k < ng; k++)
        davg += k * pd[k];
    for (int k = 0; k < ng; k++)
        if (pd[k] > 0) {
            dvar += (k - davg) * (k - davg) * pd[k];
            dentr -= pd[k] * log2(pd[k]);
        }
    for (int k = 2; k <= 2 * ng; k++)
        savg += k * ps[k];
    for (int k = 2; k <= 2 * ng; k++)
        if (ps[k] > 0) {
            svar += (k - savg) * (k - savg) * ps[k];
            sentr -= ps[k] * log2(ps[k]);
        }
    /* (symmetric: the marginals are the same, so are their means, variances, entropies) */
    double v[CM_N] = {jmax,
                      mu,
                      var,
                      jentr,
                      davg,
                      dvar,
                      dentr,
                      savg,
                      svar,
                      sentr,
                      energy,
                      contrast,
                      dissim,
                      idiff,
                      idn,
                      idm,
                      idmn,
                      ivar,
                      var > 0 ? corr_num / var : NAN,
                      auto_corr,
                      tend,
                      shade,
                      prom,
                      hx > 0 ? (jentr - hxy1) / hx : NAN,
                      hxy2 > jentr ? sqrt(1 - exp(-2 * (hxy2 - jentr))) : 0};
    memcpy(out, v, sizeof v);
    return true;
}

/* Running mean of feature vectors. */
typedef struct mean_acc {
    double sum[CM_N];
    size_t n;
} mean_acc;

static void acc_add(mean_acc *a, const double v[CM_N])
{
    for (int i = 0; i < CM_N; i++)
        a->sum[i] += v[i];
    a->n++;
}

static bool emit_cm(mira_features *f, const mean_acc *a, const char *suffix)
{
    bool ok = true;
    for (int i = 0; ok && i < CM_N; i++) {
        char tag[48];
        snprintf(tag, sizeof tag, "cm_%s_%s", cm_names[i], suffix);
        ok = mira__features_add(f, tag, a->n ? a->sum[i] / (double)a->n : NAN);
    }
    return ok;
}

static bool cooccurrence(mira_features *f, const region *r, int dist)
{
    size_t g2 = (size_t)r->ng * (size_t)r->ng;
    double *m = mira_calloc(g2, sizeof *m), *slice = mira_calloc(g2, sizeof *slice),
           *vol = mira_calloc(13 * g2, sizeof *vol), *px = mira_malloc((size_t)r->ng * sizeof *px),
           *pd = mira_malloc((size_t)r->ng * sizeof *pd),
           *ps = mira_malloc((size_t)(2 * r->ng + 1) * sizeof *ps);
    bool ok = m && slice && vol && px && pd && ps;
    mean_acc a2 = {0}, c2 = {0}, a25 = {0}, c25 = {0}, a3 = {0}, c3 = {0};
    double v[CM_N];
    /* 2D: per slice, the four in-plane directions, apart (avg) and merged (comb); 2.5D: each
     * direction merged over the slices (avg), everything merged (comb); vol[d] keeps 2.5D's */
    for (size_t z = 0; ok && z < r->nz; z++) {
        memset(slice, 0, g2 * sizeof *slice);
        for (int d = 0; d < 4; d++) {
            memset(m, 0, g2 * sizeof *m);
            cm_count(r, dirs[d], dist, (long)z, m);
            if (cm_features(m, r->ng, px, pd, ps, v))
                acc_add(&a2, v);
            for (size_t i = 0; i < g2; i++) {
                slice[i] += m[i];
                vol[d * g2 + i] += m[i];
            }
        }
        if (cm_features(slice, r->ng, px, pd, ps, v))
            acc_add(&c2, v);
    }
    if (ok) {
        memset(m, 0, g2 * sizeof *m);
        for (int d = 0; d < 4; d++) {
            if (cm_features(vol + d * g2, r->ng, px, pd, ps, v))
                acc_add(&a25, v);
            for (size_t i = 0; i < g2; i++)
                m[i] += vol[d * g2 + i];
        }
        if (cm_features(m, r->ng, px, pd, ps, v))
            acc_add(&c25, v);
        /* 3D: the 13 directions over the volume */
        memset(vol, 0, 13 * g2 * sizeof *vol);
        memset(m, 0, g2 * sizeof *m);
        for (int d = 0; d < 13; d++) {
            cm_count(r, dirs[d], dist, -1, vol + d * g2);
            if (cm_features(vol + d * g2, r->ng, px, pd, ps, v))
                acc_add(&a3, v);
            for (size_t i = 0; i < g2; i++)
                m[i] += vol[d * g2 + i];
        }
        if (cm_features(m, r->ng, px, pd, ps, v))
            acc_add(&c3, v);
    }
    ok = ok && emit_cm(f, &a2, "2D_avg") && emit_cm(f, &c2, "2D_comb") &&
         emit_cm(f, &a25, "2_5D_avg") && emit_cm(f, &c25, "2_5D_comb") &&
         emit_cm(f, &a3, "3D_avg") && emit_cm(f, &c3, "3D_comb");
    mira_free(m);
    mira_free(slice);
    mira_free(vol);
    mira_free(px);
    mira_free(pd);
    mira_free(ps);
    return ok;
}

/* ------------------------------------------------------------------ all of them */

bool mira_features_compute(const mira_image *img, const mira_image *mask,
                           const mira_feature_settings *s, mira_features *out, mira_error **err)
{
    mira_feature_settings defaults;
    if (!s) {
        mira_feature_settings_init(&defaults);
        s = &defaults;
    }
    memset(out, 0, sizeof *out);
    if (!img || !mask) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad region", "an image and a mask are needed");
        return false;
    }
    if ((s->discretisation == MIRA_DISCRETISE_BIN_NUMBER && s->bin_number < 1) ||
        (s->discretisation == MIRA_DISCRETISE_BIN_SIZE && !(s->bin_size > 0)) ||
        s->cm_distance < 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad settings",
                       "bins need a number >= 1 or a size > 0, and the distance is >= 1");
        return false;
    }
    region r;
    if (!region_make(img, mask, s, &r, err))
        return false;
    double *levels = mira_malloc(r.n * sizeof *levels);
    bool ok = levels != NULL;
    for (size_t k = 0; ok && k < r.n; k++)
        levels[k] = r.level[r.at[k]];
    if (ok && (s->families & MIRA_FEATURES_STAT))
        ok = statistics(out, "stat", r.x, r.n);
    if (ok && (s->families & MIRA_FEATURES_IH))
        ok = statistics(out, "ih", levels, r.n) && histogram(out, &r);
    if (ok && (s->families & MIRA_FEATURES_IVH))
        ok = volume_histogram(out, &r);
    if (ok && (s->families & MIRA_FEATURES_LOC))
        ok = local_intensity(out, &r);
    if (ok && (s->families & MIRA_FEATURES_CM))
        ok = cooccurrence(out, &r, s->cm_distance);
    if (ok && (s->families & MIRA_FEATURES_RLM))
        ok = mira__run_lengths(out, &r);
    if (ok && (s->families & MIRA_FEATURES_SZM))
        ok = mira__size_zones(out, &r, false);
    if (ok && (s->families & MIRA_FEATURES_DZM))
        ok = mira__size_zones(out, &r, true);
    if (ok && (s->families & MIRA_FEATURES_NGT))
        ok = mira__ngtdm(out, &r);
    if (ok && (s->families & MIRA_FEATURES_NGL))
        ok = mira__ngldm(out, &r);
    mira_free(levels);
    region_free(&r);
    if (!ok) {
        mira_features_cleanup(out);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "features");
    }
    return ok;
}
