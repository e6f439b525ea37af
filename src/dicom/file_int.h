/* Internal layout of a Part 10 file object, shared by the reader and writer. */
#ifndef MIRA_DICOM_FILE_INT_H
#define MIRA_DICOM_FILE_INT_H

#include "dataset_int.h"

struct mira_file {
    uint8_t preamble[128];
    bool has_preamble;
    mira_dataset *meta;
    mira_dataset *ds;
    char *ts;
    /* backing bytes */
    const uint8_t *data;
    size_t len;
    bool mapped;
    uint8_t *owned_buf;
    uint8_t *inflated;
    /* tolerated deviations */
    char **warnings;
    size_t nwarn, capwarn;
};

/* Record a warning (formatted); false only if allocation failed. */
bool mira__file_warn(mira_file *f, const char *fmt, ...) MIRA_PRINTF(2, 3);

#endif
