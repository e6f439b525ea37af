/* Internal state of the pixel module, shared by pixels.c, lut.c, render.c and transcode.c. */
#ifndef MIRA_PIXEL_PIXELS_INT_H
#define MIRA_PIXEL_PIXELS_INT_H

#include "pixel/codec.h"

#include <stdio.h>

struct mira_pixels {
    const mira_dataset *ds;
    const mira_element *element; /* Pixel Data, Float Pixel Data or Double Float Pixel Data */
    char ts[72];
    mira_pixel_desc stored;
    mira_pixel_desc decoded;
    bool encapsulated;
    /* native */
    const uint8_t *data;
    size_t data_len;
    uint64_t native_frame_bytes;
    bool big_endian;
    bool swap_pairs; /* 8-bit OW in big endian: bytes swapped in pairs */
    /* encapsulated */
    const mira__codec *codec;
    size_t nfrags;
    uint64_t *frag_off;   /* offset of each fragment's item header from the first one's */
    size_t *frame_first;  /* first fragment of each frame */
    size_t *frame_count;  /* fragments of each frame */
    size_t *frame_len;    /* frame length from the Extended Offset Table (0: whole fragments) */
};

/* Read the Image Pixel module into d (frames from Number of Frames). */
bool mira__pixel_desc_read(const mira_dataset *ds, mira_pixel_desc *d, mira_error **err);
/* Clear bits above Bits Stored (after shifting High Bit down) and sign-extend signed values. */
void mira__pixel_fix_values(uint8_t *buf, size_t values, const mira_pixel_desc *d);
/* The codestream of an encapsulated frame; *owned (to free) is set when fragments were joined. */
bool mira__pixels_frame_bytes(mira_pixels *px, uint32_t frame, const uint8_t **data,
                              size_t *len, uint8_t **owned, mira_error **err);

#endif
