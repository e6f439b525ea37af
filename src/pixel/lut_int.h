/* Internal LUT helpers of the pixel pipeline (lut.c), used by render.c. */
#ifndef MIRA_PIXEL_LUT_INT_H
#define MIRA_PIXEL_LUT_INT_H

#include "mira/pixel.h"

/* A LUT read from a descriptor (entries, first mapped value, bits per entry) and data. */
typedef struct mira__lut {
    uint32_t *table;
    uint32_t n;
    int64_t first;
    unsigned bits;
} mira__lut;

bool mira__lut_read(const mira_dataset *item, mira_tag desc_tag, mira_tag data_tag,
                    mira__lut *lut, mira_error **err);
void mira__lut_cleanup(mira__lut *lut);
/* The entry for input x (clamped to the first and last entries). */
uint32_t mira__lut_apply(const mira__lut *lut, double x);

/* The first item of functional group sequence `seq` for a frame of an enhanced object
 * (per-frame first, then shared), or NULL. */
const mira_dataset *mira__frame_group(const mira_dataset *ds, uint32_t frame, mira_tag seq);
/* The Modality LUT for one frame (enhanced objects may rescale each frame differently). */
mira_modality_lut *mira__modality_lut_frame(const mira_dataset *ds, const mira_pixel_desc *d,
                                            uint32_t frame, mira_error **err);
/* VOI LUT Function of a data set or functional group item (LINEAR if absent or unknown). */
mira_voi_function mira__voi_function(const mira_dataset *src);
/* Window number `index` for a frame: Frame VOI LUT functional group, else the top level. */
bool mira__window_from_file(const mira_dataset *ds, uint32_t frame, unsigned index,
                            double *center, double *width, mira_voi_function *f);
/* The red, green and blue palettes (normal or segmented). */
bool mira__palette_read(const mira_dataset *ds, mira__lut rgb[3], mira_error **err);

#endif
