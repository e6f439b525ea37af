/* JPEG-LS lossless and near-lossless (ITU-T T.87): frames decoded and encoded with CharLS. */
#include "pixel/codec.h"

#include <string.h>

#include <charls/charls.h>

/*
 * Decoding: any frame CharLS reads (2 to 16 bits, 1 to 4 components, every interleave mode,
 * near-lossless or not), checked against the data set before anything is written. CharLS
 * gives samples of up to 8 bits in one byte and wider ones in two, native byte order (this
 * file assumes a little-endian host, as the build does); planar output (interleave mode none)
 * is interleaved afterwards. A frame coded with fewer bits than Bits Allocated is widened.
 *
 * Encoding: lossless (NEAR = 0), Bits Stored bits per sample (signed values are masked to
 * their two's complement in that width, which is what the standard's DICOM profile stores),
 * colour as sample-interleaved components without a colour transform: the photometric
 * interpretation stays what it was (RGB or YBR_FULL), as DCMTK's dcmcjpls writes it.
 */

static const char *const jpegls_ts[] = {MIRA_TS_JPEGLS_LOSSLESS, MIRA_TS_JPEGLS_NEAR, NULL};

static bool charls_failed(charls_jpegls_errc rc, const char *what, mira_error **err)
{
    mira_error_set(err, MIRA_ERR_INVALID, "bad JPEG-LS data", "CharLS could not %s: %s", what,
                   charls_get_error_message(rc));
    return false;
}

/* Interleave `comps` planes of `n` samples of sb bytes from src into dst. */
static void interleave(const uint8_t *src, uint8_t *dst, size_t n, unsigned comps, size_t sb)
{
    for (unsigned c = 0; c < comps; c++) {
        const uint8_t *plane = src + (size_t)c * n * sb;
        uint8_t *out = dst + (size_t)c * sb;
        size_t step = (size_t)comps * sb;
        if (sb == 1) {
            for (size_t i = 0; i < n; i++)
                out[i * step] = plane[i];
        } else {
            for (size_t i = 0; i < n; i++)
                memcpy(out + i * step, plane + i * sb, sb);
        }
    }
}

static bool decode(charls_jpegls_decoder *dec, const uint8_t *src, size_t len,
                   const mira_pixel_desc *d, uint8_t *dst, size_t dst_len, mira_error **err)
{
    charls_jpegls_errc rc;
    charls_frame_info fi;
    charls_interleave_mode mode;
    if ((rc = charls_jpegls_decoder_set_source_buffer(dec, src, len)) != 0 ||
        (rc = charls_jpegls_decoder_read_header(dec)) != 0)
        return charls_failed(rc, "read the JPEG-LS header", err);
    if ((rc = charls_jpegls_decoder_get_frame_info(dec, &fi)) != 0 ||
        (rc = charls_jpegls_decoder_get_interleave_mode(dec, &mode)) != 0)
        return charls_failed(rc, "read the JPEG-LS frame", err);
    if (fi.width != d->columns || fi.height != d->rows || fi.component_count != (int)d->samples) {
        mira_error_set(err, MIRA_ERR_INVALID, "JPEG-LS frame does not match the image",
                       "the JPEG-LS frame is %u x %u with %d components; the data set says %u x "
                       "%u with %u samples per pixel",
                       (unsigned)fi.width, (unsigned)fi.height, (int)fi.component_count,
                       (unsigned)d->columns, (unsigned)d->rows, (unsigned)d->samples);
        return false;
    }
    size_t sb = mira_pixel_sample_bytes(d);
    size_t coded_sb = fi.bits_per_sample <= 8 ? 1 : 2;
    if (fi.bits_per_sample > (int)(8 * sb)) {
        mira_error_set(err, MIRA_ERR_INVALID, "JPEG-LS frame does not match the image",
                       "the JPEG-LS frame has %d bits per sample, more than Bits Allocated %u",
                       (int)fi.bits_per_sample, (unsigned)d->bits_allocated);
        return false;
    }
    size_t n = (size_t)d->rows * d->columns;
    size_t coded_len = n * d->samples * coded_sb;
    bool direct = coded_sb == sb && (d->samples == 1 || mode != CHARLS_INTERLEAVE_MODE_NONE);
    uint8_t *tmp = NULL;
    if (!direct && !(tmp = mira_malloc(coded_len))) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS frame of %zu bytes",
                       coded_len);
        return false;
    }
    uint8_t *out = direct ? dst : tmp;
    rc = charls_jpegls_decoder_decode_to_buffer(dec, out, direct ? dst_len : coded_len, 0);
    if (rc != 0) {
        mira_free(tmp);
        return charls_failed(rc, "decode the JPEG-LS frame", err);
    }
    if (!direct) {
        if (coded_sb != sb) {
            /* widen in place from the end: coded_sb 1 or 2 into sb 2, 4 or 8 */
            uint8_t *planar = tmp;
            if (d->samples > 1 && mode == CHARLS_INTERLEAVE_MODE_NONE) {
                uint8_t *il = mira_malloc(coded_len);
                if (!il) {
                    mira_free(tmp);
                    mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS frame");
                    return false;
                }
                interleave(tmp, il, n, d->samples, coded_sb);
                mira_free(tmp);
                tmp = planar = il;
            }
            size_t values = n * d->samples;
            for (size_t i = 0; i < values; i++) {
                uint8_t *o = dst + i * sb;
                memset(o, 0, sb);
                memcpy(o, planar + i * coded_sb, coded_sb);
            }
        } else {
            interleave(tmp, dst, n, d->samples, sb);
        }
        mira_free(tmp);
    }
    return true;
}

static bool jpegls_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                          size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    (void)photometric; /* no colour transform in DICOM's use of JPEG-LS */
    if (d->rows == 0 || d->columns == 0 || d->samples < 1 || mira_pixel_frame_bytes(d) != dst_len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG-LS frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples", dst_len,
                       (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples);
        return false;
    }
    charls_jpegls_decoder *dec = charls_jpegls_decoder_create();
    if (!dec) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS decoder");
        return false;
    }
    bool ok = decode(dec, src, len, d, dst, dst_len, err);
    charls_jpegls_decoder_destroy(dec);
    return ok;
}

/* ------------------------------------------------------------------ encoding */

static bool encode(charls_jpegls_encoder *enc, const uint8_t *src, size_t len,
                   const mira_pixel_desc *d, mira__buf *out, mira_error **err)
{
    size_t sb = mira_pixel_sample_bytes(d);
    unsigned bits = d->bits_stored;
    if (sb > 2 || bits < 2 || bits > 16 || bits > d->bits_allocated) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG-LS image",
                       "JPEG-LS encodes 2 to 16 bits per sample; this image has %u bits stored "
                       "in %u bits allocated",
                       bits, (unsigned)d->bits_allocated);
        return false;
    }
    if (d->samples != 1 && d->samples != 3) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG-LS image",
                       "%u samples per pixel (1 or 3 are encoded)", (unsigned)d->samples);
        return false;
    }
    /* CharLS takes bits_per_sample-wide unsigned values: signed ones lose their sign bits */
    const uint8_t *pixels = src;
    uint8_t *masked = NULL;
    if (d->is_signed && bits < 8 * sb) {
        if (!(masked = mira_malloc(len))) {
            mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS input of %zu bytes", len);
            return false;
        }
        uint32_t mask = (1u << bits) - 1;
        if (sb == 1) {
            for (size_t i = 0; i < len; i++)
                masked[i] = (uint8_t)(src[i] & mask);
        } else {
            for (size_t i = 0; i + 1 < len; i += 2) {
                uint32_t v = ((uint32_t)src[i] | (uint32_t)src[i + 1] << 8) & mask;
                masked[i] = (uint8_t)v;
                masked[i + 1] = (uint8_t)(v >> 8);
            }
        }
        pixels = masked;
    }
    charls_frame_info fi = {.width = d->columns,
                            .height = d->rows,
                            .bits_per_sample = (int32_t)bits,
                            .component_count = d->samples};
    charls_jpegls_errc rc;
    size_t cap = 0;
    bool ok = false;
    if ((rc = charls_jpegls_encoder_set_frame_info(enc, &fi)) != 0 ||
        (rc = charls_jpegls_encoder_set_near_lossless(enc, 0)) != 0 ||
        (rc = charls_jpegls_encoder_set_interleave_mode(
             enc, d->samples == 3 ? CHARLS_INTERLEAVE_MODE_SAMPLE : CHARLS_INTERLEAVE_MODE_NONE)) !=
            0 ||
        (rc = charls_jpegls_encoder_get_estimated_destination_size(enc, &cap)) != 0) {
        charls_failed(rc, "set up the JPEG-LS encoder", err);
        goto done;
    }
    size_t start = out->len;
    if (!mira__buf_reserve(out, cap)) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS output of %zu bytes", cap);
        goto done;
    }
    size_t written = 0;
    if ((rc = charls_jpegls_encoder_set_destination_buffer(enc, out->data + start, cap)) != 0 ||
        (rc = charls_jpegls_encoder_encode_from_buffer(enc, pixels, len, 0)) != 0 ||
        (rc = charls_jpegls_encoder_get_bytes_written(enc, &written)) != 0) {
        charls_failed(rc, "encode the JPEG-LS frame", err);
        goto done;
    }
    out->len = start + written;
    ok = true;
done:
    mira_free(masked);
    return ok;
}

static bool jpegls_encode(const uint8_t *src, size_t len, const mira_pixel_desc *d, mira__buf *out,
                          mira_photometric *photometric, mira_error **err)
{
    *photometric = d->photometric;
    if (d->rows == 0 || d->columns == 0 || d->rows > 65535 || d->columns > 65535 ||
        mira_pixel_frame_bytes(d) != len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG-LS input",
                       "%zu bytes for a %u x %u frame (JPEG-LS frames are at most 65535 x 65535)",
                       len, (unsigned)d->columns, (unsigned)d->rows);
        return false;
    }
    charls_jpegls_encoder *enc = charls_jpegls_encoder_create();
    if (!enc) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS encoder");
        return false;
    }
    bool ok = encode(enc, src, len, d, out, err);
    charls_jpegls_encoder_destroy(enc);
    return ok;
}

const mira__codec mira__codec_jpegls = {
    .name = "JPEG-LS",
    .ts_uids = jpegls_ts,
    .decode = jpegls_decode,
    .encode = jpegls_encode,
};
