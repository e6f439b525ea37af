/* mira pixel data: frame decoding for every common transfer syntax, LUTs and rendering. */
#ifndef MIRA_PIXEL_H
#define MIRA_PIXEL_H

#include "mira/core.h"
#include "mira/dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Transfer syntaxes of the pixel codecs. */
#define MIRA_TS_RLE "1.2.840.10008.1.2.5"
#define MIRA_TS_JPEG_BASELINE "1.2.840.10008.1.2.4.50"
#define MIRA_TS_JPEG_EXTENDED "1.2.840.10008.1.2.4.51"
#define MIRA_TS_JPEG_LOSSLESS "1.2.840.10008.1.2.4.57"
#define MIRA_TS_JPEG_LOSSLESS_SV1 "1.2.840.10008.1.2.4.70"
#define MIRA_TS_JPEGLS_LOSSLESS "1.2.840.10008.1.2.4.80"
#define MIRA_TS_JPEGLS_NEAR "1.2.840.10008.1.2.4.81"
#define MIRA_TS_J2K_LOSSLESS "1.2.840.10008.1.2.4.90"
#define MIRA_TS_J2K "1.2.840.10008.1.2.4.91"
#define MIRA_TS_HTJ2K_LOSSLESS "1.2.840.10008.1.2.4.201"
#define MIRA_TS_HTJ2K_LOSSLESS_RPCL "1.2.840.10008.1.2.4.202"
#define MIRA_TS_HTJ2K "1.2.840.10008.1.2.4.203"

typedef enum mira_photometric {
    MIRA_PHOTO_UNKNOWN = 0,
    MIRA_PHOTO_MONOCHROME1 = 1,
    MIRA_PHOTO_MONOCHROME2 = 2,
    MIRA_PHOTO_PALETTE = 3,
    MIRA_PHOTO_RGB = 4,
    MIRA_PHOTO_YBR_FULL = 5,
    MIRA_PHOTO_YBR_FULL_422 = 6,
    MIRA_PHOTO_YBR_PARTIAL_420 = 7,
    MIRA_PHOTO_YBR_ICT = 8,
    MIRA_PHOTO_YBR_RCT = 9,
} mira_photometric;

/* The DICOM name ("MONOCHROME2", "PALETTE COLOR"...); "" for UNKNOWN. */
MIRA_API const char *mira_photometric_name(mira_photometric p);
/* MIRA_PHOTO_UNKNOWN if the name is not one of the above. */
MIRA_API mira_photometric mira_photometric_from_name(const char *name);

/*
 * What the pixels of an image are. Decoded frames are always laid out the same way:
 * rows * columns * samples values, row by row, samples of a pixel next to each other
 * (planar configuration 0), each value in mira_pixel_sample_bytes() bytes, little-endian.
 * Integer values are the stored values: bits above Bits Stored are cleared, and signed
 * values (Pixel Representation 1) are sign-extended from Bits Stored to the full sample.
 * 1-bit data is unpacked to one byte (0 or 1) per sample.
 */
typedef struct mira_pixel_desc {
    uint32_t rows;
    uint32_t columns;
    uint32_t frames;         /* Number of Frames (1 if absent) */
    uint16_t samples;        /* Samples per Pixel: 1 or 3 */
    uint16_t bits_allocated; /* 1, 8, 16, 32 or 64 */
    uint16_t bits_stored;
    uint16_t high_bit;
    bool is_signed;         /* Pixel Representation 1 */
    bool is_float;          /* Float Pixel Data / Double Float Pixel Data */
    uint16_t planar;        /* Planar Configuration as stored (0 interleaved, 1 planar) */
    mira_photometric photometric;
} mira_pixel_desc;

/* Bytes of one decoded sample: 1 for 1- and 8-bit data, else bits_allocated / 8. */
MIRA_API size_t mira_pixel_sample_bytes(const mira_pixel_desc *d);
/* Bytes of one decoded frame (rows * columns * samples * sample bytes); 0 on overflow. */
MIRA_API size_t mira_pixel_frame_bytes(const mira_pixel_desc *d);

/*
 * An image's pixel data bound to its data set. The data set must outlive the handle
 * (it borrows the pixel bytes, which stay memory-mapped).
 */
typedef struct mira_pixels mira_pixels;

/* Open the pixel data of a data set read with transfer syntax ts_uid (the file's).
 * Fails with MIRA_ERR_NOT_FOUND if there is no pixel data, MIRA_ERR_INVALID if the image
 * attributes are missing or inconsistent with the pixel data's length, MIRA_ERR_UNSUPPORTED
 * for a transfer syntax no codec decodes. */
MIRA_API mira_pixels *mira_pixels_open(const mira_dataset *ds, const char *ts_uid,
                                       mira_error **err);
/* The same for a file: its data set and transfer syntax. */
MIRA_API mira_pixels *mira_pixels_open_file(const mira_file *f, mira_error **err);
MIRA_API void mira_pixels_free(mira_pixels *px);

/* The image as stored (borrowed). */
MIRA_API const mira_pixel_desc *mira_pixels_stored(const mira_pixels *px);
/* The image as decoded (borrowed): the same, except that planar is 0, YBR_FULL_422 and
 * YBR_PARTIAL_420 come out as YBR_FULL (expanded), and colour JPEG / JPEG 2000 codestreams in
 * YCbCr come out as RGB when the codec converts them (the way DCMTK's and GDCM's decoders do). */
MIRA_API const mira_pixel_desc *mira_pixels_decoded(const mira_pixels *px);
/* The transfer syntax UID the pixels are encoded in (borrowed). */
MIRA_API const char *mira_pixels_transfer_syntax(const mira_pixels *px);

/* Decode frame `frame` (0-based) into out, which holds at least
 * mira_pixel_frame_bytes(mira_pixels_decoded(px)) bytes. Safe to call from several
 * threads at once on the same handle. */
MIRA_API bool mira_pixels_decode_frame(mira_pixels *px, uint32_t frame, void *out,
                                       size_t out_len, mira_error **err);
/* Decode every frame, one after the other in out, with up to `threads` threads
 * (0: one per core). Frames are decoded at once, a thread each; with fewer frames than
 * threads (one frame above all), JPEG 2000 frames get the threads left over inside the frame
 * (OpenJPEG's). The values do not depend on the number of threads. */
MIRA_API bool mira_pixels_decode_all(mira_pixels *px, void *out, size_t out_len, int threads,
                                     mira_error **err);

/*
 * The bytes of frame `frame` (0-based) as they are stored, without decoding: the codestream of
 * an encapsulated frame (its fragments joined) or the frame's part of native Pixel Data, in
 * little-endian byte order (big-endian data is swapped into a copy) and its own layout (Planar
 * Configuration as stored, values not masked). Frames that are not whole bytes (1-bit samples)
 * fail with MIRA_ERR_UNSUPPORTED: decode those. *owned is set (free it with mira_free) when the
 * bytes had to be copied; else they are borrowed from the data set.
 */
MIRA_API bool mira_pixels_frame_stored(mira_pixels *px, uint32_t frame, const uint8_t **data,
                                       size_t *len, uint8_t **owned, mira_error **err);
/* True if px's stored frames are encapsulated (compressed). */
MIRA_API bool mira_pixels_encapsulated(const mira_pixels *px);

/* ------------------------------------------------------------------ encoding */

/* Re-encode a data set's pixel data in another transfer syntax (uncompressed, RLE Lossless,
 * JPEG-LS Lossless, JPEG 2000 Lossless). Replaces Pixel Data in ds (and the image attributes
 * that change: Photometric Interpretation, Planar Configuration), decoding from src_ts first.
 * Frames are encoded in parallel with up to `threads` threads (0: one per core). */
MIRA_API bool mira_pixels_transcode(mira_dataset *ds, const char *src_ts, const char *dst_ts,
                                    int threads, mira_error **err);
/* Prepare a file to be written in ts_uid: re-encodes its pixel data when ts_uid needs another
 * encoding than the one the pixel data is in (a no-op otherwise, and for files without pixel
 * data). Then mira_file_write(f, path, ts_uid) writes it. */
MIRA_API bool mira_file_transcode(mira_file *f, const char *ts_uid, int threads,
                                  mira_error **err);
/* True if mira can decode / encode pixel data in this transfer syntax. */
MIRA_API bool mira_pixels_can_decode(const char *ts_uid);
MIRA_API bool mira_pixels_can_encode(const char *ts_uid);

/* ------------------------------------------------------------------ LUTs and rendering */

typedef enum mira_voi_function {
    MIRA_VOI_LINEAR = 0,
    MIRA_VOI_LINEAR_EXACT = 1,
    MIRA_VOI_SIGMOID = 2,
} mira_voi_function;

typedef enum mira_window_source {
    MIRA_WINDOW_AUTO = 0,   /* the file's first window or VOI LUT, else the frame's min-max */
    MIRA_WINDOW_EXPLICIT = 1, /* center/width below */
    MIRA_WINDOW_MINMAX = 2, /* the frame's range of modality values */
    MIRA_WINDOW_FILE = 3,   /* the file's window number `index` */
    MIRA_WINDOW_VOI_LUT = 4, /* the file's VOI LUT number `index` */
    MIRA_WINDOW_NONE = 5,   /* the whole range of possible values */
} mira_window_source;

typedef struct mira_render_options {
    uint32_t frame;
    mira_window_source window;
    double center, width;      /* MIRA_WINDOW_EXPLICIT */
    mira_voi_function function; /* MIRA_WINDOW_EXPLICIT (else the file's) */
    unsigned index;             /* MIRA_WINDOW_FILE / _VOI_LUT */
} mira_render_options;

MIRA_API void mira_render_options_init(mira_render_options *opt);

/* A rendered frame: 8-bit grey (channels 1) or RGB (channels 3), rows of `columns`. */
typedef struct mira_rendered {
    uint32_t rows, columns;
    int channels;
    uint8_t *data; /* owned: mira_rendered_free */
} mira_rendered;

/* Render one frame for display: Modality LUT, VOI LUT or window, presentation (MONOCHROME1
 * inverted) to 8 bits; colour images converted to RGB, PALETTE COLOR through its LUTs. */
MIRA_API bool mira_pixels_render(mira_pixels *px, const mira_render_options *opt,
                                 mira_rendered *out, mira_error **err);
MIRA_API void mira_rendered_free(mira_rendered *r);
/* Write a rendered frame as PNG (atomically). */
MIRA_API bool mira_png_write(const char *path, const mira_rendered *r, mira_error **err);
/* Encode as PNG into memory; *out is owned by the caller (mira_free). */
MIRA_API bool mira_png_encode(const mira_rendered *r, uint8_t **out, size_t *out_len,
                              mira_error **err);
/* Encode as baseline JPEG (quality 1 to 100) into memory; *out is owned by the caller. */
MIRA_API bool mira_jpeg_encode(const mira_rendered *r, int quality, uint8_t **out,
                               size_t *out_len, mira_error **err);
/* Scale a rendered frame to fit inside max_columns x max_rows (aspect ratio kept; 0: that side
 * is free): the mean of the pixels each output pixel covers when shrinking, bilinear when
 * growing. A copy when the size does not change. */
MIRA_API bool mira_rendered_scale(const mira_rendered *in, uint32_t max_columns,
                                  uint32_t max_rows, mira_rendered *out, mira_error **err);

/* The Modality LUT of a data set: stored value -> modality value (HU for CT). */
typedef struct mira_modality_lut mira_modality_lut;
MIRA_API mira_modality_lut *mira_modality_lut_new(const mira_dataset *ds,
                                                  const mira_pixel_desc *d, mira_error **err);
MIRA_API void mira_modality_lut_free(mira_modality_lut *m);
MIRA_API double mira_modality_lut_apply(const mira_modality_lut *m, double stored);
/* True if the LUT is linear (slope/intercept): *slope and *intercept receive them. */
MIRA_API bool mira_modality_lut_linear(const mira_modality_lut *m, double *slope,
                                       double *intercept);

/* Windowing per PS3.3 C.11.2.1.2: maps x to [0, 1]. */
MIRA_API double mira_window_apply(double x, double center, double width, mira_voi_function f);

#ifdef __cplusplus
}
#endif

#endif
