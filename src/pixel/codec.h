/* The interface between the pixel module and its codecs (one file per codec in src/pixel/). */
#ifndef MIRA_PIXEL_CODEC_H
#define MIRA_PIXEL_CODEC_H

#include "core/buf.h"
#include "mira/pixel.h"

/*
 * Decode one frame's codestream (all fragments of the frame, concatenated).
 *
 * `d` describes the frame as the data set declares it (rows, columns, samples, bits
 * allocated/stored, signedness, planar configuration and photometric interpretation as
 * stored; d->frames is ignored). The decoder writes rows * columns * samples values into
 * dst, interleaved (R G B R G B ...), each in mira_pixel_sample_bytes(d) bytes,
 * little-endian, exactly as the codestream gives them (the caller masks to Bits Stored and
 * sign-extends afterwards). dst_len is exactly mira_pixel_frame_bytes(d).
 *
 * If the codec changes the colour space (YCbCr JPEG decoded to RGB), it sets *photometric
 * to the photometric interpretation of its output; otherwise it leaves it alone.
 *
 * A codestream that disagrees with d (size, components, a precision above bits allocated)
 * is MIRA_ERR_INVALID naming both values; a valid codestream the codec cannot decode
 * (12-bit DCT with an 8-bit library, an unknown marker) is MIRA_ERR_UNSUPPORTED. Decoders
 * never read outside src[0..len) nor write outside dst[0..dst_len), whatever the input.
 * They must be safe to call from several threads at once.
 */
typedef bool (*mira__decode_fn)(const uint8_t *src, size_t len, const mira_pixel_desc *d,
                                uint8_t *dst, size_t dst_len, mira_photometric *photometric,
                                mira_error **err);

/*
 * The same, with up to `threads` threads inside the frame (at least 1; the codec may use
 * fewer). The decoded values are those of the one-thread decoder, whatever the count.
 */
typedef bool (*mira__decode_threads_fn)(const uint8_t *src, size_t len, const mira_pixel_desc *d,
                                        uint8_t *dst, size_t dst_len, int threads,
                                        mira_photometric *photometric, mira_error **err);

/*
 * Encode one frame laid out as a decoder's output (interleaved, little-endian, sample size
 * mira_pixel_sample_bytes(d)) into a codestream appended to out. The encoder is lossless:
 * decoding the result gives back the same values. It encodes d->bits_stored bits per sample
 * (signed data as two's complement of that width). *photometric receives the photometric
 * interpretation the encoded data must declare (normally d->photometric).
 */
typedef bool (*mira__encode_fn)(const uint8_t *src, size_t len, const mira_pixel_desc *d,
                                mira__buf *out, mira_photometric *photometric, mira_error **err);

/* A codec: the transfer syntaxes it serves and its functions (encode may be NULL;
 * decode_threads is NULL for a codec that decodes a frame on one thread). */
typedef struct mira__codec {
    const char *name;
    const char *const *ts_uids; /* NULL-terminated */
    mira__decode_fn decode;
    mira__encode_fn encode;
    mira__decode_threads_fn decode_threads;
} mira__codec;

/* The codecs (each defined in its own file). */
extern const mira__codec mira__codec_rle;     /* rle.c: RLE Lossless (own code) */
extern const mira__codec mira__codec_jpegll;  /* jpegll.c: JPEG Lossless process 14 (own code) */
extern const mira__codec mira__codec_jpeg;    /* jpeg.c: JPEG Baseline/Extended (libjpeg-turbo) */
extern const mira__codec mira__codec_jpegls;  /* jpegls.c: JPEG-LS (CharLS) */
extern const mira__codec mira__codec_j2k;     /* j2k.c: JPEG 2000 and HTJ2K (OpenJPEG) */

/* The codec for a transfer syntax, or NULL. */
const mira__codec *mira__codec_find(const char *ts_uid);

#endif
