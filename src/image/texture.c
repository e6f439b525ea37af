/* Texture matrices of the IBSI reference manual (v11) beyond co-occurrence: grey level run
 * length (3.7), size zone (3.8), distance zone (3.9), neighbourhood grey tone difference
 * (3.10) and neighbouring grey level dependence (3.11), with their aggregations. */
#include "image/features_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The 13 directions of 3D (the first 4 lie in the slice), as for co-occurrence. */
static const int dirs[13][3] = {{1, 0, 0},  {1, 1, 0},  {0, 1, 0},  {-1, 1, 0}, {0, 0, 1},
                                {1, 0, 1},  {1, 1, 1},  {0, 1, 1},  {-1, 1, 1}, {-1, 0, 1},
                                {-1, -1, 1}, {0, -1, 1}, {1, -1, 1}};

/* The voxel at (x, y, z) + d if it is in the grid, as a linear index; -1 if not. */
static long step(const region *r, long x, long y, long z, long dx, long dy, long dz)
{
    x += dx;
    y += dy;
    z += dz;
    if (x < 0 || y < 0 || z < 0 || x >= (long)r->nx || y >= (long)r->ny || z >= (long)r->nz)
        return -1;
    return (long)(((size_t)z * r->ny + (size_t)y) * r->nx + (size_t)x);
}

static void coords(const region *r, size_t at, long *x, long *y, long *z)
{
    *x = (long)(at % r->nx);
    *y = (long)(at / r->nx % r->ny);
    *z = (long)(at / r->nx / r->ny);
}

/* The neighbours of voxel at in the grid (8 in its slice when in_slice, else 26) into nb;
 * returns their number. */
static int neighbours(const region *r, size_t at, bool in_slice, long nb[26])
{
    long x, y, z;
    coords(r, at, &x, &y, &z);
    int n = 0;
    for (int dz = in_slice ? 0 : -1; dz <= (in_slice ? 0 : 1); dz++)
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                long v = dx || dy || dz ? step(r, x, y, z, dx, dy, dz) : -1;
                if (v >= 0)
                    nb[n++] = v;
            }
    return n;
}

/* ------------------------------------------------------------------ the shared features */

/*
 * The features of a matrix m (ng grey levels x nj sizes, counts) of runs, zones or
 * dependences with nv voxels behind it, in the order the manual lists them: short and long
 * (or low and high dependence) emphasis, low and high grey level emphasis, their four
 * products, grey level and size non-uniformity (and normalised), percentage, grey level and
 * size variance, size entropy; then (for NGLDM) energy. False: the matrix is empty.
 */
#define ZONE_N 17

/* A matrix as its non-zero cells: grey level i, size j (both from 1), count c. */
typedef struct cell {
    int i, j;
    double c;
} cell;

static int cmp_ij(const void *a, const void *b)
{
    const cell *x = a, *y = b;
    return x->i != y->i ? (x->i > y->i) - (x->i < y->i) : (x->j > y->j) - (x->j < y->j);
}

static int cmp_j(const void *a, const void *b)
{
    const cell *x = a, *y = b;
    return (x->j > y->j) - (x->j < y->j);
}

/* Sort cells by (i, j) and add up the equal ones; returns how many are left. */
static size_t merge_cells(cell *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_ij);
    size_t k = 0;
    for (size_t a = 0; a < n; a++) {
        if (k && v[k - 1].i == v[a].i && v[k - 1].j == v[a].j)
            v[k - 1].c += v[a].c;
        else
            v[k++] = v[a];
    }
    return k;
}

static bool zone_features(cell *v, size_t nc, double nv, double out[ZONE_N])
{
    nc = merge_cells(v, nc);
    double ns = 0;
    for (size_t k = 0; k < nc; k++)
        ns += v[k].c;
    if (ns <= 0)
        return false;
    double se = 0, le = 0, lg = 0, hg = 0, slg = 0, shg = 0, llg = 0, lhg = 0, mu_i = 0,
           mu_j = 0, entr = 0, energy = 0, glnu = 0, jnu = 0, row = 0;
    for (size_t k = 0; k < nc; k++) {
        double c = v[k].c, ii = (double)v[k].i * v[k].i, jj = (double)v[k].j * v[k].j,
               p = c / ns;
        se += c / jj;
        le += c * jj;
        lg += c / ii;
        hg += c * ii;
        slg += c / (ii * jj);
        shg += c * ii / jj;
        llg += c * jj / ii;
        lhg += c * ii * jj;
        mu_i += v[k].i * p;
        mu_j += v[k].j * p;
        entr -= p * log2(p);
        energy += p * p;
        row += c;
        if (k + 1 == nc || v[k + 1].i != v[k].i) { /* the end of grey level i's row */
            glnu += row * row;
            row = 0;
        }
    }
    double var_i = 0, var_j = 0;
    for (size_t k = 0; k < nc; k++) {
        double p = v[k].c / ns;
        var_i += (v[k].i - mu_i) * (v[k].i - mu_i) * p;
        var_j += (v[k].j - mu_j) * (v[k].j - mu_j) * p;
    }
    qsort(v, nc, sizeof *v, cmp_j);
    double col = 0;
    for (size_t k = 0; k < nc; k++) {
        col += v[k].c;
        if (k + 1 == nc || v[k + 1].j != v[k].j) {
            jnu += col * col;
            col = 0;
        }
    }
    double r[ZONE_N] = {se / ns,   le / ns,        lg / ns,   hg / ns,         slg / ns,
                        shg / ns,  llg / ns,       lhg / ns,  glnu / ns,       glnu / (ns * ns),
                        jnu / ns,  jnu / (ns * ns), ns / nv,  var_i,           var_j,
                        entr,      energy};
    memcpy(out, r, sizeof r);
    return true;
}

/* A growing list of cells. */
typedef struct cells {
    cell *v;
    size_t n, cap;
    bool failed;
} cells;

static void cells_add(cells *l, int i, int j, double c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        cell *v = mira_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->failed = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (cell){i, j, c};
}

/* The features of the cells from..n of l (a copy: the list keeps its order). */
static bool features_of(cells *l, size_t from, double nv, double out[ZONE_N])
{
    size_t n = l->n - from;
    if (!n || l->failed)
        return false;
    cell *copy = mira_malloc(n * sizeof *copy);
    if (!copy) {
        l->failed = true;
        return false;
    }
    memcpy(copy, l->v + from, n * sizeof *copy);
    bool ok = zone_features(copy, n, nv, out);
    mira_free(copy);
    return ok;
}

typedef struct acc {
    double sum[ZONE_N];
    size_t n;
} acc;

static void acc_add(acc *a, const double *v, int n)
{
    for (int i = 0; i < n; i++)
        a->sum[i] += v[i];
    a->n++;
}

static bool emit(mira_features *f, const char *family, const char *const *names, int n,
                 const acc *a, const char *suffix)
{
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        char tag[48];
        snprintf(tag, sizeof tag, "%s_%s_%s", family, names[i], suffix);
        ok = mira__features_add(f, tag, a->n ? a->sum[i] / (double)a->n : NAN);
    }
    return ok;
}

/* ------------------------------------------------------------------ run lengths */

static const char *const rlm_names[16] = {"sre",  "lre",       "lgre",  "hgre",      "srlge",
                                          "srhge", "lrlge",    "lrhge", "glnu",      "glnu_norm",
                                          "rlnu", "rlnu_norm", "r_perc", "gl_var",   "rl_var",
                                          "rl_entr"};

/* The features of a dense matrix m (ng x nj counts). */
static bool dense_features(const double *m, int ng, int nj, double nv, double out[ZONE_N])
{
    cells l = {0};
    for (int i = 0; i < ng; i++)
        for (int j = 0; j < nj; j++)
            if (m[(size_t)i * nj + j] > 0)
                cells_add(&l, i + 1, j + 1, m[(size_t)i * nj + j]);
    bool ok = !l.failed && l.n && zone_features(l.v, l.n, nv, out);
    mira_free(l.v);
    return ok;
}

/* The runs along direction d (of slice z only when z >= 0) into m (ng x nj); *nv: voxels. */
static void runs(const region *r, const int d[3], long z_only, double *m, int nj, double *nv)
{
    size_t k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        size_t at = r->at[k];
        long x, y, z;
        coords(r, at, &x, &y, &z);
        (*nv)++;
        int g = r->level[at];
        long prev = step(r, x, y, z, -d[0], -d[1], -d[2]);
        if (prev >= 0 && r->level[prev] == g)
            continue; /* not the start of its run */
        int len = 1;
        for (long nx = x, ny = y, nz = z;;) {
            long next = step(r, nx, ny, nz, d[0], d[1], d[2]);
            if (next < 0 || r->level[next] != g)
                break;
            nx += d[0];
            ny += d[1];
            nz += d[2];
            len++;
        }
        m[(size_t)(g - 1) * nj + (len - 1)]++;
    }
}

bool mira__run_lengths(mira_features *f, const region *r)
{
    int nj = (int)(r->nx > r->ny ? r->nx : r->ny);
    nj = (int)r->nz > nj ? (int)r->nz : nj;
    size_t cells_n = (size_t)r->ng * (size_t)nj;
    double *m = mira_calloc(cells_n, sizeof *m), *slice = mira_calloc(cells_n, sizeof *slice),
           *vol = mira_calloc(4 * cells_n, sizeof *vol);
    bool ok = m && slice && vol;
    acc a2 = {0}, c2 = {0}, a25 = {0}, c25 = {0}, a3 = {0}, c3 = {0};
    double v[ZONE_N], nvd[4] = {0}, nv_all = 0;
    /* 2D: per slice, each in-plane direction apart (avg) and merged (comb); 2.5D: each
     * direction merged over the slices (avg), everything merged (comb) */
    for (size_t z = 0; ok && z < r->nz; z++) {
        memset(slice, 0, cells_n * sizeof *slice);
        double nv_slice = 0;
        for (int d = 0; d < 4; d++) {
            double nv = 0;
            memset(m, 0, cells_n * sizeof *m);
            runs(r, dirs[d], (long)z, m, nj, &nv);
            if (dense_features(m, r->ng, nj, nv, v))
                acc_add(&a2, v, 16);
            for (size_t i = 0; i < cells_n; i++) {
                slice[i] += m[i];
                vol[d * cells_n + i] += m[i];
            }
            nv_slice += nv;
            nvd[d] += nv;
        }
        if (dense_features(slice, r->ng, nj, nv_slice, v))
            acc_add(&c2, v, 16);
    }
    if (ok) {
        memset(m, 0, cells_n * sizeof *m);
        for (int d = 0; d < 4; d++) {
            if (dense_features(vol + d * cells_n, r->ng, nj, nvd[d], v))
                acc_add(&a25, v, 16);
            for (size_t i = 0; i < cells_n; i++)
                m[i] += vol[d * cells_n + i];
            nv_all += nvd[d];
        }
        if (dense_features(m, r->ng, nj, nv_all, v))
            acc_add(&c25, v, 16);
        /* 3D: the 13 directions over the volume, apart and merged */
        memset(m, 0, cells_n * sizeof *m);
        nv_all = 0;
        for (int d = 0; d < 13; d++) {
            double nv = 0;
            memset(slice, 0, cells_n * sizeof *slice);
            runs(r, dirs[d], -1, slice, nj, &nv);
            if (dense_features(slice, r->ng, nj, nv, v))
                acc_add(&a3, v, 16);
            for (size_t i = 0; i < cells_n; i++)
                m[i] += slice[i];
            nv_all += nv;
        }
        if (dense_features(m, r->ng, nj, nv_all, v))
            acc_add(&c3, v, 16);
    }
    mira_free(m);
    mira_free(slice);
    mira_free(vol);
    return ok && emit(f, "rlm", rlm_names, 16, &a2, "2D_avg") &&
           emit(f, "rlm", rlm_names, 16, &c2, "2D_comb") &&
           emit(f, "rlm", rlm_names, 16, &a25, "2_5D_avg") &&
           emit(f, "rlm", rlm_names, 16, &c25, "2_5D_comb") &&
           emit(f, "rlm", rlm_names, 16, &a3, "3D_avg") &&
           emit(f, "rlm", rlm_names, 16, &c3, "3D_comb");
}

/* ------------------------------------------------------------------ size and distance zones */

static const char *const szm_names[16] = {"sze",  "lze",       "lgze",   "hgze",   "szlge",
                                          "szhge", "lzlge",    "lzhge",  "glnu",   "glnu_norm",
                                          "zsnu", "zsnu_norm", "z_perc", "gl_var", "zs_var",
                                          "zs_entr"};
static const char *const dzm_names[16] = {"sde",  "lde",       "lgze",   "hgze",   "sdlge",
                                          "sdhge", "ldlge",    "ldhge",  "glnu",   "glnu_norm",
                                          "zdnu", "zdnu_norm", "z_perc", "gl_var", "zd_var",
                                          "zd_entr"};

/*
 * The distance of each region voxel (of slice z only when z >= 0) to the region's edge: 1 for
 * a voxel with a face neighbour (6 in 3D, 4 in 2D) outside the region or the grid, else one
 * more than the least of its face neighbours (a city block distance). dist: per voxel of the
 * grid (0 outside). Returns the greatest.
 */
static int edge_distance(const region *r, long z_only, int *dist)
{
    static const int face[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0},
                                   {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    int nf = z_only >= 0 ? 4 : 6, most = 0;
    /* breadth first from the edge voxels */
    size_t *queue = mira_malloc((r->n + 1) * sizeof *queue);
    if (!queue)
        return -1;
    size_t head = 0, tail = 0, k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        long x, y, z;
        coords(r, r->at[k], &x, &y, &z);
        dist[r->at[k]] = 0;
        for (int a = 0; a < nf; a++) {
            long nb = step(r, x, y, z, face[a][0], face[a][1], face[a][2]);
            if (nb < 0 || !r->level[nb]) {
                dist[r->at[k]] = 1;
                queue[tail++] = r->at[k];
                break;
            }
        }
    }
    while (head < tail) {
        size_t at = queue[head++];
        long x, y, z;
        coords(r, at, &x, &y, &z);
        most = dist[at] > most ? dist[at] : most;
        for (int a = 0; a < nf; a++) {
            long nb = step(r, x, y, z, face[a][0], face[a][1], face[a][2]);
            if (nb >= 0 && r->level[nb] && dist[nb] == 0) {
                dist[nb] = dist[at] + 1;
                queue[tail++] = (size_t)nb;
            }
        }
    }
    mira_free(queue);
    return most;
}

/*
 * The zones (voxels of one grey level connected through faces, edges and corners: 26 in 3D,
 * 8 in 2D) of slice z (z >= 0) or of the volume, onto l by size, or by distance (their least
 * voxel distance to the edge) when dist is given. *nv: voxels.
 */
static void zones(const region *r, long z_only, const int *dist, cells *l, double *nv,
                  size_t *queue, char *seen)
{
    size_t k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        size_t at = r->at[k];
        (*nv)++;
        if (seen[at])
            continue;
        int g = r->level[at];
        size_t head = 0, tail = 0;
        int least = dist ? dist[at] : 0;
        queue[tail++] = at;
        seen[at] = 1;
        while (head < tail) {
            size_t c = queue[head++];
            if (dist && dist[c] < least)
                least = dist[c];
            long nb[26];
            int nn = neighbours(r, c, z_only >= 0, nb);
            for (int a = 0; a < nn; a++)
                if (!seen[nb[a]] && r->level[nb[a]] == g) {
                    seen[nb[a]] = 1;
                    queue[tail++] = (size_t)nb[a];
                }
        }
        cells_add(l, g, dist ? least : (int)tail, 1);
    }
}

bool mira__size_zones(mira_features *f, const region *r, bool distance)
{
    size_t total = r->nx * r->ny * r->nz;
    int *dist = distance ? mira_calloc(total, sizeof *dist) : NULL;
    size_t *queue = mira_malloc((r->n + 1) * sizeof *queue);
    char *seen = mira_calloc(total, 1);
    bool ok = queue && seen && (!distance || dist);
    cells l2 = {0}, l3 = {0};
    acc a2 = {0}, a25 = {0}, a3 = {0};
    double v[ZONE_N], nv_all = 0;
    for (size_t z = 0; ok && z < r->nz; z++) {
        double nv = 0;
        size_t from = l2.n;
        if (distance && edge_distance(r, (long)z, dist) < 0)
            ok = false;
        if (ok)
            zones(r, (long)z, dist, &l2, &nv, queue, seen);
        if (ok && features_of(&l2, from, nv, v))
            acc_add(&a2, v, 16);
        nv_all += nv;
    }
    if (ok && features_of(&l2, 0, nv_all, v))
        acc_add(&a25, v, 16);
    if (ok) {
        double nv = 0;
        memset(seen, 0, total);
        if (distance && edge_distance(r, -1, dist) < 0)
            ok = false;
        if (ok)
            zones(r, -1, dist, &l3, &nv, queue, seen);
        if (ok && features_of(&l3, 0, nv, v))
            acc_add(&a3, v, 16);
    }
    ok = ok && !l2.failed && !l3.failed;
    mira_free(dist);
    mira_free(queue);
    mira_free(seen);
    mira_free(l2.v);
    mira_free(l3.v);
    const char *fam = distance ? "dzm" : "szm";
    const char *const *names = distance ? dzm_names : szm_names;
    return ok && emit(f, fam, names, 16, &a2, "2D") && emit(f, fam, names, 16, &a25, "2_5D") &&
           emit(f, fam, names, 16, &a3, "3D");
}

/* ------------------------------------------------------------------ NGTDM */

/* s_i and n_i of the voxels of slice z (z >= 0; 8 neighbours) or the volume (26): each voxel
 * with at least one neighbour in the region, its grey level against their mean. */
static void ngtdm_sums(const region *r, long z_only, double *s, double *n)
{
    size_t k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        size_t at = r->at[k];
        double sum = 0;
        int cnt = 0;
        long nb[26];
        int nn = neighbours(r, at, z_only >= 0, nb);
        for (int a = 0; a < nn; a++)
            if (r->level[nb[a]]) {
                sum += r->level[nb[a]];
                cnt++;
            }
        if (!cnt)
            continue;
        int g = r->level[at];
        s[g - 1] += fabs(g - sum / cnt);
        n[g - 1]++;
    }
}

static bool ngtdm_features(const double *s, const double *n, int ng, double out[5])
{
    double nvc = 0;
    for (int i = 0; i < ng; i++)
        nvc += n[i];
    if (nvc <= 0)
        return false;
    double ps = 0, ssum = 0, contrast = 0, busy_den = 0, complexity = 0, strength = 0;
    int ngp = 0;
    for (int i = 0; i < ng; i++) {
        double pi = n[i] / nvc;
        if (pi <= 0)
            continue;
        ngp++;
        ps += pi * s[i];
        ssum += s[i];
        for (int j = 0; j < ng; j++) {
            double pj = n[j] / nvc;
            if (pj <= 0)
                continue;
            double d = i - j;
            contrast += pi * pj * d * d;
            busy_den += fabs((i + 1) * pi - (j + 1) * pj);
            complexity += fabs(d) * (pi * s[i] + pj * s[j]) / (pi + pj);
            strength += (pi + pj) * d * d;
        }
    }
    out[0] = ps > 0 ? 1 / ps : 1e6;
    out[1] = ngp > 1 ? contrast / (ngp * (ngp - 1.0)) * ssum / nvc : 0;
    out[2] = busy_den > 0 ? ps / busy_den : 0;
    out[3] = complexity / nvc;
    out[4] = ssum > 0 ? strength / ssum : 0;
    return true;
}

bool mira__ngtdm(mira_features *f, const region *r)
{
    static const char *const names[5] = {"coarseness", "contrast", "busyness", "complexity",
                                         "strength"};
    size_t ng = (size_t)r->ng;
    double *s = mira_calloc(ng, sizeof *s), *n = mira_calloc(ng, sizeof *n),
           *s25 = mira_calloc(ng, sizeof *s25), *n25 = mira_calloc(ng, sizeof *n25);
    bool ok = s && n && s25 && n25;
    acc a2 = {0}, a25 = {0}, a3 = {0};
    double v[5];
    for (size_t z = 0; ok && z < r->nz; z++) {
        memset(s, 0, ng * sizeof *s);
        memset(n, 0, ng * sizeof *n);
        ngtdm_sums(r, (long)z, s, n);
        if (ngtdm_features(s, n, r->ng, v))
            acc_add(&a2, v, 5);
        for (size_t i = 0; i < ng; i++) {
            s25[i] += s[i];
            n25[i] += n[i];
        }
    }
    if (ok && ngtdm_features(s25, n25, r->ng, v))
        acc_add(&a25, v, 5);
    if (ok) {
        memset(s, 0, ng * sizeof *s);
        memset(n, 0, ng * sizeof *n);
        ngtdm_sums(r, -1, s, n);
        if (ngtdm_features(s, n, r->ng, v))
            acc_add(&a3, v, 5);
    }
    mira_free(s);
    mira_free(n);
    mira_free(s25);
    mira_free(n25);
    return ok && emit(f, "ngt", names, 5, &a2, "2D") && emit(f, "ngt", names, 5, &a25, "2_5D") &&
           emit(f, "ngt", names, 5, &a3, "3D");
}

/* ------------------------------------------------------------------ NGLDM */

static const char *const ngl_names[17] = {"lde",  "hde",       "lgce",    "hgce",   "ldlge",
                                          "ldhge", "hdlge",    "hdhge",   "glnu",   "glnu_norm",
                                          "dcnu", "dcnu_norm", "dc_perc", "gl_var", "dc_var",
                                          "dc_entr", "dc_energy"};

/* Each voxel's dependence: 1 + its neighbours (8 in the slice, or 26) in the region with the
 * same grey level (coarseness 0), counted into m (ng x 27) by grey level. */
static void ngldm_counts(const region *r, long z_only, double *m, double *nv)
{
    size_t k0, k1;
    mira__region_range(r, z_only, &k0, &k1);
    for (size_t k = k0; k < k1; k++) {
        size_t at = r->at[k];
        int g = r->level[at], dep = 1;
        long nb[26];
        int nn = neighbours(r, at, z_only >= 0, nb);
        for (int a = 0; a < nn; a++)
            dep += r->level[nb[a]] == g;
        m[(size_t)(g - 1) * 27 + (dep - 1)]++;
        (*nv)++;
    }
}

bool mira__ngldm(mira_features *f, const region *r)
{
    size_t cells_n = (size_t)r->ng * 27;
    double *m = mira_calloc(cells_n, sizeof *m), *merged = mira_calloc(cells_n, sizeof *merged);
    bool ok = m && merged;
    acc a2 = {0}, a25 = {0}, a3 = {0};
    double v[ZONE_N], nv_all = 0;
    for (size_t z = 0; ok && z < r->nz; z++) {
        double nv = 0;
        memset(m, 0, cells_n * sizeof *m);
        ngldm_counts(r, (long)z, m, &nv);
        if (dense_features(m, r->ng, 27, nv, v))
            acc_add(&a2, v, 17);
        for (size_t i = 0; i < cells_n; i++)
            merged[i] += m[i];
        nv_all += nv;
    }
    if (ok && dense_features(merged, r->ng, 27, nv_all, v))
        acc_add(&a25, v, 17);
    if (ok) {
        double nv = 0;
        memset(m, 0, cells_n * sizeof *m);
        ngldm_counts(r, -1, m, &nv);
        if (dense_features(m, r->ng, 27, nv, v))
            acc_add(&a3, v, 17);
    }
    mira_free(m);
    mira_free(merged);
    return ok && emit(f, "ngl", ngl_names, 17, &a2, "2D") &&
           emit(f, "ngl", ngl_names, 17, &a25, "2_5D") && emit(f, "ngl", ngl_names, 17, &a3, "3D");
}
