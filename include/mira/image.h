/* mira images: typed N-dimensional arrays with patient geometry, series to volume, NIfTI. */
#ifndef MIRA_IMAGE_H
#define MIRA_IMAGE_H

#include "mira/core.h"
#include "mira/dicom.h"
#include "mira/pixel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mira_pixel_type {
    MIRA_U8 = 0,
    MIRA_I8 = 1,
    MIRA_U16 = 2,
    MIRA_I16 = 3,
    MIRA_U32 = 4,
    MIRA_I32 = 5,
    MIRA_F32 = 6,
    MIRA_F64 = 7,
} mira_pixel_type;

MIRA_API size_t mira_pixel_type_size(mira_pixel_type t);
MIRA_API const char *mira_pixel_type_name(mira_pixel_type t); /* "u8", "i16", "f32"... */

/*
 * An image: size[0] columns (x, fastest), size[1] rows (y), size[2] slices (z); a 2D image has
 * size[2] == 1. `channels` values per voxel, stored next to each other. Geometry in patient
 * coordinates, LPS (DICOM): the voxel (i, j, k) lies at
 *     origin + i * spacing[0] * dir(0) + j * spacing[1] * dir(1) + k * spacing[2] * dir(2)
 * where dir(a) = (direction[0 + a], direction[3 + a], direction[6 + a]) is column a of the
 * row-major 3x3 direction matrix (the ITK convention). Distances in mm.
 */
typedef struct mira_image {
    mira_pixel_type type;
    int channels; /* 1 to 4 */
    size_t size[3];
    double spacing[3];
    double origin[3];
    double direction[9];
    void *data; /* owned by the image */
} mira_image;

/* A zero-filled image with identity geometry (spacing 1, origin 0). NULL on failure. */
MIRA_API mira_image *mira_image_new(mira_pixel_type type, int channels, size_t nx, size_t ny,
                                    size_t nz, mira_error **err);
MIRA_API void mira_image_free(mira_image *img);
/* Number of voxels (nx * ny * nz) and bytes of data. */
MIRA_API size_t mira_image_voxels(const mira_image *img);
MIRA_API size_t mira_image_bytes(const mira_image *img);
/* A deep copy. */
MIRA_API mira_image *mira_image_clone(const mira_image *img, mira_error **err);
/* Value of channel c at voxel index (linear, x fastest) as a double. */
MIRA_API double mira_image_get(const mira_image *img, size_t index, int c);
/* Copy geometry (spacing, origin, direction) from src. */
MIRA_API void mira_image_copy_geometry(mira_image *dst, const mira_image *src);
/* Physical (LPS) position of a continuous index. */
MIRA_API void mira_image_index_to_point(const mira_image *img, const double idx[3],
                                        double point[3]);

/* ------------------------------------------------------------------ series to volume */

typedef struct mira_series_options {
    bool stored_values; /* keep stored values (no Modality LUT); default false */
    int threads;        /* decoding threads, 0: one per core */
    double tolerance;   /* mm; slice spacing deviations above it are "uneven" (default 0.01) */
} mira_series_options;

MIRA_API void mira_series_options_init(mira_series_options *opt);

/* What was found while building a volume: each problem is also a warning string. */
typedef struct mira_series_report {
    size_t slices;
    bool tilted;           /* gantry tilt: slice normal not along the in-plane normal */
    double tilt_degrees;
    bool uneven;           /* spacing between slices varies more than the tolerance */
    bool missing_slices;   /* a gap of about a whole multiple of the spacing */
    bool mixed_orientation; /* slices with different orientations (volume refused) */
    bool multiframe;       /* built from one enhanced multi-frame object */
    double min_spacing, max_spacing;
    size_t warning_count;
    char **warnings;       /* owned: mira_series_report_cleanup */
} mira_series_report;

MIRA_API void mira_series_report_cleanup(mira_series_report *r);

/*
 * Build a volume from the files of one series (any order; instances of other series or
 * non-image objects are errors) or from one enhanced multi-frame object. Slices are sorted
 * along the slice normal by Image Position (Patient); spacing comes from the positions.
 * Values are modality values (Rescale Slope/Intercept applied) unless opt->stored_values:
 * integer types when they fit (i16/u16/i32...), else f32. report may be NULL.
 */
MIRA_API mira_image *mira_series_load(const char *const *paths, size_t n,
                                      const mira_series_options *opt, mira_series_report *report,
                                      mira_error **err);
/* The same for every DICOM file under a folder (recursively), which must hold one series
 * (or name it with series_uid when it holds several; NULL for "the only one"). */
MIRA_API mira_image *mira_series_load_dir(const char *dir, const char *series_uid,
                                          const mira_series_options *opt,
                                          mira_series_report *report, mira_error **err);

/* ------------------------------------------------------------------ NIfTI */

/* Read a NIfTI-1 or NIfTI-2 file (.nii, .nii.gz, .hdr/.img): geometry converted from RAS to
 * LPS; the sform is used when set, else the qform. scl_slope/scl_inter are applied (f32
 * result) unless they are identity. */
MIRA_API mira_image *mira_nifti_read(const char *path, mira_error **err);
/* Write NIfTI (NIfTI-1 unless a dimension exceeds 32767 or nifti2 is true; gzip if the
 * name ends in .gz), with sform and qform both set from the geometry (LPS to RAS). */
MIRA_API bool mira_nifti_write(const mira_image *img, const char *path, bool nifti2,
                               mira_error **err);

#ifdef __cplusplus
}
#endif

#endif
