/* Fuzz target: mira's JPEG-LS decoder, and CharLS's encoder on what it decodes. */
#include "pixel/codec.h"

#include <stdlib.h>
#include <string.h>

/*
 * Input: 3 bytes describing the frame, then the JPEG-LS stream.
 *   byte 0: rows - 1, byte 1: columns - 1 (1..256 each)
 *   byte 2: bit 0 samples (1 or 3), bit 1 bits allocated 16 (else 8), bit 2 signed,
 *           bit 7: take rows, columns, samples (1 to 4) and precision from the stream's SOF55
 *           instead (capped at 256 x 256)
 * A frame that decodes is encoded again (lossless, by CharLS) and decoded: it must give the
 * same values. CharLS never sees the fuzzed stream itself (its 2.4.1 decoder can spin for
 * seconds on bad data, which is why mira decodes JPEG-LS itself).
 */

static void from_sof55(const uint8_t *s, size_t n, mira_pixel_desc *d)
{
    for (size_t i = 0; i + 9 < n; i++) {
        if (s[i] == 0xFF && s[i + 1] == 0xF7) {
            unsigned p = s[i + 4];
            unsigned y = (unsigned)s[i + 5] << 8 | s[i + 6];
            unsigned x = (unsigned)s[i + 7] << 8 | s[i + 8];
            unsigned nf = s[i + 9];
            if (y >= 1 && y <= 256)
                d->rows = y;
            if (x >= 1 && x <= 256)
                d->columns = x;
            if (nf >= 1 && nf <= 4)
                d->samples = (uint16_t)nf;
            if (p > 8 && p <= 16)
                d->bits_allocated = 16;
            if (p >= 2 && p <= d->bits_allocated)
                d->bits_stored = (uint16_t)p;
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
    d.bits_stored = d.bits_allocated;
    d.is_signed = (data[2] & 4) != 0;
    const uint8_t *src = data + 3;
    size_t len = size - 3;
    if (data[2] & 0x80)
        from_sof55(src, len, &d);
    d.high_bit = (uint16_t)(d.bits_stored - 1);
    d.photometric = d.samples == 3 ? MIRA_PHOTO_RGB : MIRA_PHOTO_MONOCHROME2;
    size_t n = mira_pixel_frame_bytes(&d);
    uint8_t *px = malloc(n), *again = malloc(n);
    if (!px || !again) {
        free(px);
        free(again);
        return 0;
    }
    mira_error *err = NULL;
    mira_photometric ph = d.photometric;
    if (!mira__codec_jpegls.decode(src, len, &d, px, n, &ph, &err)) {
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap(); /* every failure explains itself */
        mira_error_free(err);
        goto done;
    }
    /* the values a lossless round trip must keep: those within Bits Stored */
    if (d.bits_stored < d.bits_allocated) {
        for (size_t i = 0; i < n; i += d.bits_allocated / 8) {
            unsigned v = d.bits_allocated == 8 ? px[i] : (unsigned)px[i] | (unsigned)px[i + 1] << 8;
            v &= (1u << d.bits_stored) - 1;
            px[i] = (uint8_t)v;
            if (d.bits_allocated == 16)
                px[i + 1] = (uint8_t)(v >> 8);
        }
    }
    d.is_signed = false;
    mira__buf out;
    mira__buf_init(&out);
    if (mira__codec_jpegls.encode(px, n, &d, &out, &ph, &err)) {
        if (!mira__codec_jpegls.decode(out.data, out.len, &d, again, n, &ph, &err) ||
            memcmp(px, again, n) != 0)
            __builtin_trap(); /* what was encoded losslessly decodes to the same values */
    } else {
        mira_error_free(err);
    }
    mira__buf_cleanup(&out);
done:
    free(px);
    free(again);
    return 0;
}
