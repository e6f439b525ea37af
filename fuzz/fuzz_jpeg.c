/* Fuzz target: the JPEG Baseline / Extended decoder (libjpeg-turbo) and mira's checks around it. */
#include "pixel/codec.h"

#include <stdlib.h>
#include <string.h>

/*
 * Input: 3 bytes describing the frame, then the JPEG stream.
 *   byte 0: rows - 1, byte 1: columns - 1 (1..256 each)
 *   byte 2: bit 0 samples (1 or 3), bit 1 bits allocated 16 (else 8), bit 2 photometric
 *           YBR_FULL_422 for 3 samples (else RGB), bit 7: take rows, columns and samples from
 *           the stream's first SOF0/1/2 instead (capped at 256 x 256), so that mutations of
 *           real streams get past the frame checks
 */

static void from_sof(const uint8_t *s, size_t n, mira_pixel_desc *d)
{
    for (size_t i = 0; i + 9 < n; i++) {
        if (s[i] == 0xFF && s[i + 1] >= 0xC0 && s[i + 1] <= 0xC2) {
            unsigned y = (unsigned)s[i + 5] << 8 | s[i + 6];
            unsigned x = (unsigned)s[i + 7] << 8 | s[i + 8];
            unsigned nf = s[i + 9];
            if (y >= 1 && y <= 256)
                d->rows = y;
            if (x >= 1 && x <= 256)
                d->columns = x;
            if (nf == 1 || nf == 3)
                d->samples = (uint16_t)nf;
            return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > (1u << 20))
        return 0;
    mira_pixel_desc d = {0};
    d.rows = 1u + data[0];
    d.columns = 1u + data[1];
    d.frames = 1;
    d.samples = (data[2] & 1) ? 3 : 1;
    d.bits_allocated = (data[2] & 2) ? 16 : 8;
    const uint8_t *src = data + 3;
    size_t len = size - 3;
    if (data[2] & 0x80)
        from_sof(src, len, &d);
    d.bits_stored = 8;
    d.high_bit = 7;
    d.photometric = d.samples == 1  ? MIRA_PHOTO_MONOCHROME2
                    : (data[2] & 4) ? MIRA_PHOTO_YBR_FULL_422
                                    : MIRA_PHOTO_RGB;
    size_t n = mira_pixel_frame_bytes(&d);
    uint8_t *px = malloc(n);
    if (!px)
        return 0;
    mira_error *err = NULL;
    mira_photometric ph = d.photometric;
    if (!mira__codec_jpeg.decode(src, len, &d, px, n, &ph, &err)) {
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap(); /* every failure explains itself */
        mira_error_free(err);
    } else if (ph != d.photometric && ph != MIRA_PHOTO_RGB) {
        __builtin_trap(); /* YCbCr becomes RGB; nothing else changes */
    }
    free(px);
    return 0;
}
