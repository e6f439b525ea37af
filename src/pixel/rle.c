/* RLE Lossless (PS3.5 Annex G): PackBits segments per sample byte, decoder and encoder. */
#include "pixel/codec.h"

#include <string.h>

/*
 * Layout (PS3.5 G.2): a 64-byte header (16 little-endian uint32: the number of segments,
 * then the offset of each of up to 15 segments from the start of the frame), then the
 * segments. For each sample of a pixel, the most significant byte of that sample comes
 * first: segment s * bytes + 0 holds the MSBs of sample s, segment s * bytes + bytes - 1 its
 * LSBs. Each segment holds one byte per pixel, PackBits-coded.
 *
 * What the decoder tolerates, and why (the choices of pydicom and GDCM):
 * - A segment that decodes to more than rows * columns bytes: the extra bytes are ignored
 *   (pydicom warns and uses the first rows * columns; GDCM stops when it has enough). This
 *   also covers the pad byte that makes a segment even-length, whatever its value.
 * - A run or literal cut short by the end of its segment: the bytes present are used; only
 *   a segment that ends before giving rows * columns bytes is an error (pydicom slices the
 *   same way and then checks the length).
 * - Bytes after the last segment's data (fragment padding): ignored.
 * Not tolerated: a segment count other than samples * bytes per sample (pydicom and GDCM
 * refuse it too), offsets that point into the header, decrease or leave the frame.
 */

#define RLE_HEADER 64
#define RLE_MAX_SEGMENTS 15

static const char *const rle_ts[] = {MIRA_TS_RLE, NULL};

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Check the parts of d that both directions need; *npix receives rows * columns and
 * *nseg the number of segments. */
static bool check_desc(const mira_pixel_desc *d, size_t len, size_t *npix, unsigned *nseg,
                       const char *what, mira_error **err)
{
    if (d->bits_allocated != 8 && d->bits_allocated != 16 && d->bits_allocated != 32 &&
        d->bits_allocated != 64) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported RLE image",
                       "RLE %s: Bits Allocated %u is not supported (8, 16, 32 or 64)", what,
                       (unsigned)d->bits_allocated);
        return false;
    }
    if (d->samples < 1 || d->rows == 0 || d->columns == 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "invalid RLE image",
                       "RLE %s: %u rows, %u columns, %u samples per pixel", what, (unsigned)d->rows,
                       (unsigned)d->columns, (unsigned)d->samples);
        return false;
    }
    size_t sb = mira_pixel_sample_bytes(d);
    unsigned n = (unsigned)(d->samples * sb);
    if (n > RLE_MAX_SEGMENTS) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported RLE image",
                       "RLE %s: %u samples of %u bits need %u segments, more than the 15 an "
                       "RLE header holds",
                       what, (unsigned)d->samples, (unsigned)d->bits_allocated, n);
        return false;
    }
    size_t np = (size_t)d->rows * d->columns;
    if (np / d->rows != d->columns || np > SIZE_MAX / n || np * n != len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong RLE frame buffer",
                       "RLE %s: the frame buffer holds %zu bytes, the image %u x %u x %u of %zu "
                       "bytes per sample needs another size",
                       what, len, (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples,
                       sb);
        return false;
    }
    *npix = np;
    *nseg = n;
    return true;
}

/* PackBits-decode src[0..len) into every `stride`-th byte of dst until n bytes are out.
 * Returns the number of bytes produced (< n if the segment ends early). */
static size_t unpack_segment(const uint8_t *src, size_t len, uint8_t *dst, size_t stride, size_t n)
{
    size_t pos = 0, out = 0;
    while (out < n && pos < len) {
        unsigned h = src[pos++];
        if (h < 128) { /* literal: the next h + 1 bytes */
            size_t cnt = (size_t)h + 1;
            if (cnt > len - pos)
                cnt = len - pos;
            if (cnt > n - out)
                cnt = n - out;
            if (stride == 1) {
                memcpy(dst + out, src + pos, cnt);
            } else {
                for (size_t i = 0; i < cnt; i++)
                    dst[(out + i) * stride] = src[pos + i];
            }
            pos += cnt;
            out += cnt;
        } else if (h > 128) { /* replicate: the next byte 257 - h times */
            if (pos >= len)
                break;
            uint8_t v = src[pos++];
            size_t cnt = 257 - (size_t)h;
            if (cnt > n - out)
                cnt = n - out;
            if (stride == 1) {
                memset(dst + out, v, cnt);
            } else {
                for (size_t i = 0; i < cnt; i++)
                    dst[(out + i) * stride] = v;
            }
            out += cnt;
        }
        /* h == 128 (-128): no operation */
    }
    return out;
}

static bool rle_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                       size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    (void)photometric;
    size_t npix;
    unsigned nseg;
    if (!check_desc(d, dst_len, &npix, &nseg, "decoding", err))
        return false;
    if (len < RLE_HEADER) {
        mira_error_set(err, MIRA_ERR_INVALID, "truncated RLE frame",
                       "RLE frame of %zu bytes is shorter than its 64-byte header", len);
        return false;
    }
    uint32_t count = rd32le(src);
    if (count != nseg) {
        mira_error_set(err, MIRA_ERR_INVALID, "wrong number of RLE segments",
                       "RLE header declares %u segments, the image (%u samples of %u bits) "
                       "needs %u",
                       count, (unsigned)d->samples, (unsigned)d->bits_allocated, nseg);
        return false;
    }
    size_t off[RLE_MAX_SEGMENTS + 1];
    for (unsigned i = 0; i < nseg; i++) {
        off[i] = rd32le(src + 4 + 4 * i);
        if (off[i] < RLE_HEADER || off[i] > len || (i > 0 && off[i] < off[i - 1])) {
            mira_error_set(err, MIRA_ERR_INVALID, "invalid RLE segment offset",
                           "RLE segment %u offset %zu is outside the frame data [64, %zu] or "
                           "before the previous segment's",
                           i, off[i], len);
            return false;
        }
    }
    off[nseg] = len;
    size_t sb = mira_pixel_sample_bytes(d);
    size_t stride = (size_t)d->samples * sb;
    for (unsigned i = 0; i < nseg; i++) {
        unsigned sample = i / (unsigned)sb, byte = i % (unsigned)sb;
        /* little-endian output: the segment's byte (MSB first) lands at sb - 1 - byte */
        uint8_t *out = dst + (size_t)sample * sb + (sb - 1 - byte);
        size_t got = unpack_segment(src + off[i], off[i + 1] - off[i], out, stride, npix);
        if (got < npix) {
            mira_error_set(err, MIRA_ERR_INVALID, "truncated RLE segment",
                           "RLE segment %u (offset %zu, %zu bytes) decodes to %zu bytes, the "
                           "image needs %zu",
                           i, off[i], off[i + 1] - off[i], got, npix);
            return false;
        }
    }
    return true;
}

/* PackBits-encode n bytes taken every `stride` bytes from src (one row of one byte plane),
 * runs and literals of at most 128 bytes, never crossing the row. */
static void pack_row(const uint8_t *src, size_t stride, size_t n, mira__buf *out)
{
    uint8_t lit[128];
    size_t nlit = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t v = src[i * stride];
        size_t run = 1;
        while (i + run < n && run < 128 && src[(i + run) * stride] == v)
            run++;
        /* a run of 2 pays only when it does not split a literal */
        if (run >= 3 || (run == 2 && nlit == 0)) {
            if (nlit) {
                mira__buf_putc(out, (char)(nlit - 1));
                mira__buf_append(out, lit, nlit);
                nlit = 0;
            }
            mira__buf_putc(out, (char)(uint8_t)(257 - run));
            mira__buf_putc(out, (char)v);
            i += run;
        } else {
            lit[nlit++] = v;
            i++;
            if (nlit == 128) {
                mira__buf_putc(out, (char)127);
                mira__buf_append(out, lit, nlit);
                nlit = 0;
            }
        }
    }
    if (nlit) {
        mira__buf_putc(out, (char)(nlit - 1));
        mira__buf_append(out, lit, nlit);
    }
}

/* PS3.5 G.3: each byte plane PackBits-coded row by row, each segment padded to an even
 * length with a zero byte (as pydicom and DCMTK do; decoders stop once a segment has given
 * its rows * columns bytes). Bytes above Bits Stored are encoded as they are. */
static bool rle_encode(const uint8_t *src, size_t len, const mira_pixel_desc *d, mira__buf *out,
                       mira_photometric *photometric, mira_error **err)
{
    size_t npix;
    unsigned nseg;
    if (!check_desc(d, len, &npix, &nseg, "encoding", err))
        return false;
    if (photometric)
        *photometric = d->photometric;
    size_t sb = mira_pixel_sample_bytes(d);
    size_t stride = (size_t)d->samples * sb;
    size_t base = out->len;
    uint8_t header[RLE_HEADER] = {0};
    header[0] = (uint8_t)nseg;
    mira__buf_append(out, header, sizeof header);
    for (unsigned i = 0; i < nseg && !out->failed; i++) {
        size_t off = out->len - base;
        if (off > UINT32_MAX) {
            mira_error_set(err, MIRA_ERR_LIMIT, "RLE frame too large",
                           "RLE segment %u would start at offset %zu, beyond 32 bits", i, off);
            return false;
        }
        uint8_t *h = out->data + base + 4 + 4 * i;
        h[0] = (uint8_t)off;
        h[1] = (uint8_t)(off >> 8);
        h[2] = (uint8_t)(off >> 16);
        h[3] = (uint8_t)(off >> 24);
        unsigned sample = i / (unsigned)sb, byte = i % (unsigned)sb;
        const uint8_t *plane = src + (size_t)sample * sb + (sb - 1 - byte);
        for (uint32_t y = 0; y < d->rows; y++)
            pack_row(plane + (size_t)y * d->columns * stride, stride, d->columns, out);
        if ((out->len - base) & 1)
            mira__buf_putc(out, 0);
    }
    if (out->failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "RLE encoding of a %zu-byte frame",
                       len);
        return false;
    }
    return true;
}

const mira__codec mira__codec_rle = {
    .name = "RLE Lossless",
    .ts_uids = rle_ts,
    .decode = rle_decode,
    .encode = rle_encode,
};
