/* Fuzz target: the JPEG 2000 / HTJ2K decoder (OpenJPEG), and encode -> decode round trips. */
#include "pixel/codec.h"

#include <stdlib.h>
#include <string.h>

/*
 * Input: 3 bytes describing the frame, then the codestream (raw J2K or a JP2 file).
 *   byte 0: rows - 1, byte 1: columns - 1 (1..256 each)
 *   byte 2: bit 0 samples (1 or 3), bits 1-2 bits allocated (8, 16, 32, 8), bit 3 signed,
 *           bit 4 photometric YBR_RCT (else RGB) for 3 samples,
 *           bit 7: take rows, columns, samples, precision and sign from the first SIZ marker
 *           segment instead (capped at 256 x 256, 1 or 3 components), so that mutations of
 *           real codestreams get past the frame checks
 * A decoded frame of at most 64 x 64 pixels is encoded (JPEG 2000 Lossless) and decoded again:
 * it must come back unchanged.
 */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void from_siz(const uint8_t *s, size_t n, mira_pixel_desc *d)
{
    for (size_t i = 0; i + 44 < n && i < 4096; i++) {
        if (s[i] != 0xFF || s[i + 1] != 0x51)
            continue;
        const uint8_t *p = s + i + 4;
        uint32_t xs = rd32(p + 2), ys = rd32(p + 6), x0 = rd32(p + 10), y0 = rd32(p + 14);
        unsigned nc = (unsigned)p[34] << 8 | p[35];
        if (xs > x0 && xs - x0 <= 256)
            d->columns = xs - x0;
        if (ys > y0 && ys - y0 <= 256)
            d->rows = ys - y0;
        if (nc == 1 || nc == 3)
            d->samples = (uint16_t)nc;
        unsigned prec = (p[36] & 0x7Fu) + 1;
        d->bits_allocated = prec <= 8 ? 8 : prec <= 16 ? 16 : 32;
        d->bits_stored = (uint16_t)(prec <= 32 ? prec : 32);
        d->is_signed = (p[36] & 0x80) != 0;
        return;
    }
}

/* Keep bits_stored bits of every value, sign-extended (what pixels.c does after decoding). */
static void fix_values(uint8_t *px, size_t n, const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d);
    unsigned bits = d->bits_stored;
    for (size_t i = 0; i < n / sb; i++) {
        uint64_t v = 0;
        for (size_t b = sb; b-- > 0;)
            v = v << 8 | px[i * sb + b];
        v &= ((uint64_t)1 << bits) - 1;
        if (d->is_signed && (v >> (bits - 1)) & 1)
            v |= ~(((uint64_t)1 << bits) - 1);
        for (size_t b = 0; b < sb; b++)
            px[i * sb + b] = (uint8_t)(v >> (8 * b));
    }
}

static void round_trip(const uint8_t *px, size_t n, const mira_pixel_desc *d)
{
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    mira_pixel_desc e = *d;
    e.photometric = d->samples == 3 ? MIRA_PHOTO_RGB : MIRA_PHOTO_MONOCHROME2;
    mira_photometric ph = e.photometric;
    if (!mira__codec_j2k.encode(px, n, &e, &out, &ph, &err)) {
        mira_error_code code = err ? mira_error_get_code(err) : MIRA_ERR_INVALID;
        /* the encoder may refuse only what it cannot code exactly (outside 8..16 bits, a
         * frame OpenJPEG does not give back), or run out of memory */
        bool exotic = d->bits_stored > 16 || d->bits_stored < 8;
        if (code != MIRA_ERR_NOMEM && !(code == MIRA_ERR_UNSUPPORTED && exotic))
            __builtin_trap();
        mira_error_free(err);
        mira__buf_cleanup(&out);
        return;
    }
    uint8_t *back = malloc(n);
    if (back) {
        e.photometric = ph; /* YBR_RCT for RGB: decoded back to RGB */
        if (!mira__codec_j2k.decode(out.data, out.len, &e, back, n, &ph, &err))
            __builtin_trap();
        fix_values(back, n, d);
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
    d.bits_stored = d.bits_allocated;
    d.is_signed = (data[2] & 8) != 0;
    const uint8_t *src = data + 3;
    size_t len = size - 3;
    if (data[2] & 0x80)
        from_siz(src, len, &d);
    d.high_bit = (uint16_t)(d.bits_stored - 1);
    d.photometric = d.samples == 1   ? MIRA_PHOTO_MONOCHROME2
                    : (data[2] & 16) ? MIRA_PHOTO_YBR_RCT
                                     : MIRA_PHOTO_RGB;
    size_t n = mira_pixel_frame_bytes(&d);
    uint8_t *px = malloc(n);
    if (!px)
        return 0;
    mira_error *err = NULL;
    mira_photometric ph = d.photometric;
    if (!mira__codec_j2k.decode(src, len, &d, px, n, &ph, &err)) {
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap(); /* every failure explains itself */
        mira_error_free(err);
    } else {
        /* the only colour change: YBR_ICT / YBR_RCT undone by the component transform */
        if (ph != d.photometric && !(ph == MIRA_PHOTO_RGB && d.photometric == MIRA_PHOTO_YBR_RCT))
            __builtin_trap();
        if (d.rows <= 64 && d.columns <= 64) {
            fix_values(px, n, &d);
            round_trip(px, n, &d);
        }
    }
    free(px);
    return 0;
}
