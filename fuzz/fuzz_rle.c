/* Fuzz target: the RLE Lossless decoder, and encode -> decode round trips that must be exact. */
#include "pixel/codec.h"

#include <stdlib.h>
#include <string.h>

/*
 * Input: 3 bytes describing the frame, then the RLE stream.
 *   byte 0: rows - 1, byte 1: columns - 1 (1..256 each)
 *   byte 2: bit 0 samples (1 or 3), bits 1-2 bits allocated (8, 16, 32, 8),
 *           bit 3 signed, bit 4 bits stored 4 below bits allocated
 * A decoded frame is encoded and decoded again (it must come back unchanged); the stream
 * bytes themselves, taken as a frame when there are enough, must survive a round trip too.
 */

static void round_trip(const uint8_t *px, size_t n, const mira_pixel_desc *d)
{
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    if (!mira__codec_rle.encode(px, n, d, &out, NULL, &err)) {
        if (!err || mira_error_get_code(err) != MIRA_ERR_NOMEM)
            __builtin_trap(); /* any valid frame must encode */
        mira_error_free(err);
        mira__buf_cleanup(&out);
        return;
    }
    if (out.len % 2)
        __builtin_trap();
    uint8_t *back = malloc(n);
    if (back) {
        if (!mira__codec_rle.decode(out.data, out.len, d, back, n, NULL, &err))
            __builtin_trap();
        if (memcmp(back, px, n) != 0)
            __builtin_trap();
        free(back);
    }
    mira__buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > (1u << 20))
        return 0;
    static const uint16_t bits[4] = {8, 16, 32, 8};
    mira_pixel_desc d = {0};
    d.rows = 1u + data[0];
    d.columns = 1u + data[1];
    d.frames = 1;
    d.samples = (data[2] & 1) ? 3 : 1;
    d.bits_allocated = bits[(data[2] >> 1) & 3];
    d.bits_stored = (uint16_t)(d.bits_allocated - ((data[2] & 16) ? 4 : 0));
    d.high_bit = (uint16_t)(d.bits_stored - 1);
    d.is_signed = (data[2] & 8) != 0;
    d.photometric = d.samples == 3 ? MIRA_PHOTO_RGB : MIRA_PHOTO_MONOCHROME2;
    size_t n = (size_t)d.rows * d.columns * d.samples * (d.bits_allocated / 8);
    const uint8_t *src = data + 3;
    size_t len = size - 3;

    uint8_t *px = malloc(n);
    if (!px)
        return 0;
    mira_error *err = NULL;
    if (mira__codec_rle.decode(src, len, &d, px, n, NULL, &err)) {
        round_trip(px, n, &d);
    } else {
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap(); /* every failure explains itself */
        mira_error_free(err);
    }
    free(px);
    if (len >= n)
        round_trip(src, n, &d);
    return 0;
}
