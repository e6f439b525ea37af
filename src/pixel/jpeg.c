/* JPEG Baseline and Extended (processes 1, 2 and 4): DCT frames decoded with libjpeg-turbo. */
#include "pixel/codec.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

/*
 * What is decoded: 8-bit DCT JPEG, baseline or extended, sequential or progressive, grey or
 * three components, into 8-bit samples (or into 16-bit ones when Bits Allocated is 16).
 *
 * Colour: the data set's Photometric Interpretation decides, as in DCMTK's dcmdjpeg (its
 * default, "convert if YCbCr"): YBR_FULL, YBR_FULL_422 and YBR_PARTIAL_42x codestreams are
 * converted to RGB by libjpeg (and *photometric says RGB); RGB and everything else is given
 * as coded, without a colour transform, whatever JFIF or Adobe markers say.
 *
 * 12-bit DCT (process 4 with P = 12): Debian's libjpeg-turbo is built for 8-bit samples only,
 * so it is MIRA_ERR_UNSUPPORTED with a message that says so. A lossless (SOF3) stream under a
 * DCT transfer syntax, a mislabelling seen in the wild, is passed to mira's JPEG Lossless
 * decoder.
 *
 * Errors: libjpeg reports fatal errors through error_exit, which must not return; it longjmps
 * back here with the library's message kept. Warnings are ignored except "premature end of
 * data" (libjpeg would fill the rest of the image with grey): a truncated frame is an error.
 */

static const char *const jpeg_ts[] = {MIRA_TS_JPEG_BASELINE, MIRA_TS_JPEG_EXTENDED, NULL};

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    bool truncated;
    char message[JMSG_LENGTH_MAX];
} jerr;

static void on_error_exit(j_common_ptr cinfo)
{
    jerr *e = (jerr *)cinfo->err;
    e->pub.format_message(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int level)
{
    jerr *e = (jerr *)cinfo->err;
    if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF && !e->truncated) {
        e->truncated = true;
        e->pub.format_message(cinfo, e->message);
    }
}

static void on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* nothing is printed from inside the library */
}

/* The SOF marker code (0xC0..0xCF) and precision of the first frame header, or 0. */
static unsigned find_sof(const uint8_t *src, size_t len, unsigned *precision)
{
    size_t pos = 2;
    if (len < 4 || src[0] != 0xFF || src[1] != 0xD8)
        return 0;
    while (pos + 4 <= len) {
        if (src[pos] != 0xFF) {
            pos++;
            continue;
        }
        unsigned code = src[pos + 1];
        if (code == 0xFF) {
            pos++;
            continue;
        }
        if (code == 0xD8 || code == 0x01 || (code >= 0xD0 && code <= 0xD7)) {
            pos += 2;
            continue;
        }
        size_t seg = (size_t)src[pos + 2] << 8 | src[pos + 3];
        if (code >= 0xC0 && code <= 0xCF && code != 0xC4 && code != 0xC8 && code != 0xCC) {
            *precision = pos + 4 < len ? src[pos + 4] : 0;
            return code;
        }
        if (code == 0xDA || code == 0xD9 || seg < 2)
            return 0;
        pos += 2 + seg;
    }
    return 0;
}

static bool is_ybr(mira_photometric p)
{
    return p == MIRA_PHOTO_YBR_FULL || p == MIRA_PHOTO_YBR_FULL_422 ||
           p == MIRA_PHOTO_YBR_PARTIAL_420;
}

/* The decoding proper; everything it allocates belongs to cinfo (freed by the caller). */
static bool decode(struct jpeg_decompress_struct *cinfo, jerr *je, const uint8_t *src, size_t len,
                   const mira_pixel_desc *d, uint8_t *dst, size_t sb, uint8_t *row_buf,
                   mira_photometric *photometric, mira_error **err)
{
    jpeg_mem_src(cinfo, src, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->image_width != d->columns || cinfo->image_height != d->rows ||
        cinfo->num_components != (int)d->samples) {
        mira_error_set(err, MIRA_ERR_INVALID, "JPEG frame does not match the image",
                       "the JPEG frame is %u x %u with %d components; the data set says %u x %u "
                       "with %u samples per pixel",
                       (unsigned)cinfo->image_width, (unsigned)cinfo->image_height,
                       cinfo->num_components, (unsigned)d->columns, (unsigned)d->rows,
                       (unsigned)d->samples);
        return false;
    }
    if (d->samples == 3) {
        if (is_ybr(d->photometric)) {
            cinfo->jpeg_color_space = JCS_YCbCr;
            cinfo->out_color_space = JCS_RGB;
            *photometric = MIRA_PHOTO_RGB;
        } else {
            /* as coded: libjpeg would otherwise guess from markers and component ids */
            cinfo->jpeg_color_space = JCS_RGB;
            cinfo->out_color_space = JCS_RGB;
        }
    } else if (d->samples == 1) {
        cinfo->out_color_space = JCS_GRAYSCALE;
    } else {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG image",
                       "JPEG with %u samples per pixel (1 or 3 are decoded)", (unsigned)d->samples);
        return false;
    }
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(cinfo);
    size_t stride = (size_t)d->columns * d->samples;
    while (cinfo->output_scanline < cinfo->output_height) {
        size_t y = cinfo->output_scanline;
        if (sb == 1) {
            JSAMPROW rows[16];
            unsigned n = 0;
            while (n < 16 && y + n < cinfo->output_height) {
                rows[n] = dst + (y + n) * stride;
                n++;
            }
            if (jpeg_read_scanlines(cinfo, rows, n) == 0)
                break;
        } else {
            JSAMPROW row = row_buf;
            if (jpeg_read_scanlines(cinfo, &row, 1) != 1)
                break;
            uint8_t *out = dst + y * stride * sb;
            for (size_t i = 0; i < stride; i++) {
                out[i * sb] = row[i];
                memset(out + i * sb + 1, 0, sb - 1);
            }
        }
        if (je->truncated)
            break;
    }
    if (je->truncated || cinfo->output_scanline < cinfo->output_height) {
        mira_error_set(err, MIRA_ERR_INVALID, "truncated JPEG frame",
                       "the JPEG data ends after %u of %u rows (%s)",
                       (unsigned)cinfo->output_scanline, (unsigned)cinfo->output_height,
                       je->message[0] ? je->message : "no more scanlines");
        return false;
    }
    jpeg_finish_decompress(cinfo);
    return true;
}

static bool jpeg_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                        size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    size_t sb = mira_pixel_sample_bytes(d);
    if (d->rows == 0 || d->columns == 0 || d->samples < 1 || (sb != 1 && sb != 2) ||
        mira_pixel_frame_bytes(d) != dst_len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples of %zu bytes", dst_len,
                       (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples, sb);
        return false;
    }
    unsigned precision = 0;
    unsigned sof = find_sof(src, len, &precision);
    if (sof == 0xC3)
        return mira__codec_jpegll.decode(src, len, d, dst, dst_len, photometric, err);
    if (sof == 0xC0 || sof == 0xC1 || sof == 0xC2) {
        if (precision != 8) {
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG precision",
                           "%u-bit DCT JPEG is not supported: Debian's libjpeg-turbo decodes "
                           "8-bit DCT data only",
                           precision);
            return false;
        }
    } else if (sof != 0) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG process",
                       "JPEG frame type SOF%u (hierarchical or arithmetic coding) is not "
                       "supported",
                       sof - 0xC0);
        return false;
    }
    if (len > (unsigned long)-1) {
        mira_error_set(err, MIRA_ERR_INVALID, "JPEG frame too large", "%zu bytes", len);
        return false;
    }

    struct jpeg_decompress_struct cinfo;
    jerr je;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&je, 0, sizeof je);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_error_exit;
    je.pub.emit_message = on_emit_message;
    je.pub.output_message = on_output_message;
    /* 8-bit rows are decoded in place; wider samples go through one row of bytes */
    uint8_t *row_buf = NULL;
    if (sb != 1 && !(row_buf = mira_malloc((size_t)d->columns * d->samples))) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG row buffer");
        return false;
    }
    /* volatile: assigned between setjmp and a longjmp that may follow */
    volatile bool ok = false;
    if (setjmp(je.jump) == 0) {
        jpeg_create_decompress(&cinfo);
        ok = decode(&cinfo, &je, src, len, d, dst, sb, row_buf, photometric, err);
    } else {
        mira_error_set(err, MIRA_ERR_INVALID, "bad JPEG data", "libjpeg: %s", je.message);
    }
    jpeg_destroy_decompress(&cinfo);
    mira_free(row_buf);
    return ok;
}

const mira__codec mira__codec_jpeg = {
    .name = "JPEG",
    .ts_uids = jpeg_ts,
    .decode = jpeg_decode,
    .encode = NULL,
};

/* ------------------------------------------------------------------ encoding rendered frames */

bool mira_jpeg_encode(const mira_rendered *r, int quality, uint8_t **out, size_t *out_len,
                      mira_error **err)
{
    *out = NULL;
    *out_len = 0;
    if (!r || !r->data || !r->rows || !r->columns || (r->channels != 1 && r->channels != 3) ||
        r->rows > 65500 || r->columns > 65500) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image", "nothing to encode as JPEG");
        return false;
    }
    struct jpeg_compress_struct cinfo;
    jerr je;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&je, 0, sizeof je);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_error_exit;
    je.pub.emit_message = on_emit_message;
    je.pub.output_message = on_output_message;
    /* libjpeg's output buffer: written through their addresses only (so they are in memory
     * when a longjmp comes back); ok is volatile, set between setjmp and a longjmp */
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    volatile bool ok = false;
    if (setjmp(je.jump) == 0) {
        jpeg_create_compress(&cinfo);
        jpeg_mem_dest(&cinfo, &mem, &mem_len);
        cinfo.image_width = r->columns;
        cinfo.image_height = r->rows;
        cinfo.input_components = r->channels;
        cinfo.in_color_space = r->channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
        jpeg_set_defaults(&cinfo);
        jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
        jpeg_start_compress(&cinfo, TRUE);
        size_t stride = (size_t)r->columns * (size_t)r->channels;
        while (cinfo.next_scanline < cinfo.image_height) {
            JSAMPROW row = (JSAMPROW)(r->data + (size_t)cinfo.next_scanline * stride);
            jpeg_write_scanlines(&cinfo, &row, 1);
        }
        jpeg_finish_compress(&cinfo);
        ok = true;
    } else {
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot encode JPEG", "libjpeg: %s", je.message);
    }
    jpeg_destroy_compress(&cinfo);
    if (ok) {
        /* libjpeg's buffer is malloc'd: copied into mira's allocator for the caller */
        uint8_t *copy = mira_malloc(mem_len ? mem_len : 1);
        if (copy) {
            memcpy(copy, mem, mem_len);
            *out = copy;
            *out_len = mem_len;
        } else {
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "a JPEG of %lu bytes", mem_len);
            ok = false;
        }
    }
    free(mem);
    return ok;
}
