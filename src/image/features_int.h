/* What the feature families share (features.c, texture.c). Internal. */
#ifndef MIRA_IMAGE_FEATURES_INT_H
#define MIRA_IMAGE_FEATURES_INT_H

#include "mira/features.h"

/* The region: its voxels, their values and grey levels. */
typedef struct region {
    size_t nx, ny, nz;
    double sx, sy, sz;
    size_t n;  /* voxels in the region */
    double *x; /* their values, in index order */
    size_t *at; /* their linear indexes */
    int *level; /* grey level of every voxel of the grid (0: outside the region) */
    int ng;     /* grey levels 1..ng */
    size_t *zstart; /* (nz + 1) the first of the voxels (in at) of each slice */
    const mira_image *img;
} region;

/* The voxels (indexes into at) of slice z, or of all slices when z < 0. */
static inline void mira__region_range(const region *r, long z, size_t *from, size_t *to)
{
    *from = z < 0 ? 0 : r->zstart[z];
    *to = z < 0 ? r->n : r->zstart[z + 1];
}

bool mira__features_add(mira_features *f, const char *tag, double value);

/* The texture families of texture.c: rlm_ (six aggregations), szm_ or (distance) dzm_,
 * ngt_, ngl_ (2D, 2.5D, 3D). */
bool mira__run_lengths(mira_features *f, const region *r);
bool mira__size_zones(mira_features *f, const region *r, bool distance);
bool mira__ngtdm(mira_features *f, const region *r);
bool mira__ngldm(mira_features *f, const region *r);

#endif
