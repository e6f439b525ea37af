/* Internal: the geometry of a stack of slices (sorting, spacing, tilt) and series reports. */
#ifndef MIRA_IMAGE_SERIES_INT_H
#define MIRA_IMAGE_SERIES_INT_H

#include "mira/image.h"

/* One slice's position and orientation, as DICOM gives them (LPS, mm). */
typedef struct mira__slice_geom {
    double ipp[3];    /* Image Position (Patient) */
    double iop[6];    /* Image Orientation (Patient): row cosine, then column cosine */
    const char *name; /* for messages: a file name, "frame 3", ... (borrowed) */
} mira__slice_geom;

/* The volume geometry of a stack. */
typedef struct mira__stack_geom {
    double origin[3];
    double direction[9]; /* row-major; columns: row cosine, column cosine, slice normal */
    double spacing_z;
} mira__stack_geom;

/*
 * Sort n slices along their normal and work out the stack's geometry. order (n entries)
 * receives the slice indices from first to last. Orientations must agree within 1e-3 per
 * cosine (else MIRA_ERR_UNSUPPORTED, report->mixed_orientation). Two slices at the same
 * position (gap below the tolerance) are MIRA_ERR_UNSUPPORTED. The z spacing is the median
 * gap; uneven gaps, missing slices (a gap of about k >= 2 spacings) and a gantry tilt are
 * flagged in report and described in its warnings. single_z is the spacing used for n == 1.
 */
bool mira__stack_geometry(const mira__slice_geom *s, size_t n, double tolerance, double single_z,
                          size_t *order, mira__stack_geom *out, mira_series_report *report,
                          mira_error **err);

/* Append a formatted warning to a report (dropped silently when memory runs out). */
void mira__report_warn(mira_series_report *r, const char *fmt, ...) MIRA_PRINTF(2, 3);

#endif
