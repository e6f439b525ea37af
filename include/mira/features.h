/* Radiomics features of a region (IBSI, the Image Biomarker Standardisation Initiative,
 * reference manual v11): intensity statistics, intensity histogram, intensity-volume
 * histogram, local intensity and the texture matrices (co-occurrence, run length, size zone,
 * distance zone, neighbourhood grey tone difference, neighbouring grey level dependence),
 * named by the IBSI submission tags (stat_mean, ih_entropy, cm_joint_max_3D_avg...). */
#ifndef MIRA_FEATURES_H
#define MIRA_FEATURES_H

#include "mira/core.h"
#include "mira/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mira_discretisation {
    MIRA_DISCRETISE_NONE = 0, /* the values are the grey levels (integers >= 1 needed) */
    MIRA_DISCRETISE_BIN_NUMBER = 1, /* fixed bin number: Ng bins over [min, max] of the region */
    MIRA_DISCRETISE_BIN_SIZE = 2,   /* fixed bin size w from the lower bound */
} mira_discretisation;

/* The families that can be asked for (bits of mira_feature_settings.families). */
enum {
    MIRA_FEATURES_STAT = 1 << 0, /* stat_: intensity statistics (of the values themselves) */
    MIRA_FEATURES_IH = 1 << 1,   /* ih_: intensity histogram (of the grey levels) */
    MIRA_FEATURES_IVH = 1 << 2,  /* ivh_: intensity-volume histogram */
    MIRA_FEATURES_LOC = 1 << 3,  /* loc_: local intensity peaks (1 cm^3 spheres) */
    MIRA_FEATURES_CM = 1 << 4,   /* cm_: grey level co-occurrence matrix, 6 aggregations */
    MIRA_FEATURES_RLM = 1 << 5,  /* rlm_: grey level run length matrix, 6 aggregations */
    MIRA_FEATURES_SZM = 1 << 6,  /* szm_: grey level size zone matrix, 2D, 2.5D, 3D */
    MIRA_FEATURES_DZM = 1 << 7,  /* dzm_: grey level distance zone matrix */
    MIRA_FEATURES_NGT = 1 << 8,  /* ngt_: neighbourhood grey tone difference matrix */
    MIRA_FEATURES_NGL = 1 << 9,  /* ngl_: neighbouring grey level dependence matrix */
    MIRA_FEATURES_ALL = 0x3FF,
};

typedef struct mira_feature_settings {
    unsigned families;               /* MIRA_FEATURES_* bits; default all */
    mira_discretisation discretisation; /* default none */
    int bin_number;                  /* for BIN_NUMBER */
    double bin_size, lower_bound;    /* for BIN_SIZE (lower_bound: the region's min if NaN) */
    int cm_distance;                 /* GLCM neighbour distance (Chebyshev); default 1 */
} mira_feature_settings;

MIRA_API void mira_feature_settings_init(mira_feature_settings *s);

/* One feature: its IBSI tag and value (NaN when it is not defined for the region). */
typedef struct mira_feature {
    char tag[48];
    double value;
} mira_feature;

typedef struct mira_features {
    mira_feature *v;
    size_t n, cap;
} mira_features;

MIRA_API void mira_features_cleanup(mira_features *f);
/* The value of a tag, NULL if it was not computed. */
MIRA_API const mira_feature *mira_features_find(const mira_features *f, const char *tag);

/*
 * Compute the features of the region where mask is non-zero (same grid as img: sizes equal,
 * spacings within 1e-6 mm; one channel each). The region's voxels with a NaN value are an
 * error, as are an empty region and grey levels that are not integers >= 1 without
 * discretisation. 2D and 2.5D aggregations run over the slices (the third axis), 3D over the
 * volume; a matrix with no voxel pairs is left out of its averages (a feature with none at
 * all is NaN).
 */
MIRA_API bool mira_features_compute(const mira_image *img, const mira_image *mask,
                                    const mira_feature_settings *s, mira_features *out,
                                    mira_error **err);

#ifdef __cplusplus
}
#endif

#endif
