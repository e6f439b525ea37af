/* Tests of the JPEG-LS codec (CharLS) and the JPEG DCT codec's checks: round trips, bad input. */
#include "harness.h"

#include "pixel/codec.h"

#include <stdlib.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static mira_pixel_desc desc(uint32_t rows, uint32_t cols, uint16_t samples, uint16_t bits,
                            uint16_t stored, bool is_signed)
{
    mira_pixel_desc d = {0};
    d.rows = rows;
    d.columns = cols;
    d.frames = 1;
    d.samples = samples;
    d.bits_allocated = bits;
    d.bits_stored = stored;
    d.high_bit = (uint16_t)(stored - 1);
    d.is_signed = is_signed;
    d.photometric = samples == 3 ? MIRA_PHOTO_RGB : MIRA_PHOTO_MONOCHROME2;
    return d;
}

/* A frame of `stored`-bit values laid out as the decoder writes them (signed ones
 * sign-extended): a ramp with noise, and the extremes. */
static uint8_t *frame(const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d), n = mira_pixel_frame_bytes(d) / sb;
    uint8_t *p = malloc(n * sb);
    int64_t lo = d->is_signed ? -(1ll << (d->bits_stored - 1)) : 0;
    int64_t hi = d->is_signed ? (1ll << (d->bits_stored - 1)) - 1 : (1ll << d->bits_stored) - 1;
    for (size_t i = 0; i < n; i++) {
        int64_t v = lo + (int64_t)((hi - lo) * i / (n > 1 ? n - 1 : 1));
        v += (int64_t)(rnd() % 7) - 3;
        if (rnd() % 5 == 0)
            v = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        if (i == 0)
            v = lo;
        if (i == n - 1)
            v = hi;
        v = v < lo ? lo : v > hi ? hi : v;
        for (size_t b = 0; b < sb; b++)
            p[i * sb + b] = (uint8_t)((uint64_t)v >> (8 * b));
    }
    return p;
}

/* Mask to Bits Stored and sign-extend, as pixels.c does after a codec. */
static void fix(uint8_t *p, const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d), n = mira_pixel_frame_bytes(d) / sb;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (size_t b = 0; b < sb; b++)
            v |= (uint64_t)p[i * sb + b] << (8 * b);
        v &= (1ull << d->bits_stored) - 1;
        if (d->is_signed && (v >> (d->bits_stored - 1)))
            v |= ~0ull << d->bits_stored;
        for (size_t b = 0; b < sb; b++)
            p[i * sb + b] = (uint8_t)(v >> (8 * b));
    }
}

TEST(jpegls_round_trips)
{
    static const struct {
        uint32_t rows, cols;
        uint16_t samples, bits, stored;
        bool is_signed;
    } cases[] = {
        {17, 13, 1, 8, 8, false},   {9, 31, 1, 8, 6, true},     {32, 32, 1, 16, 12, false},
        {7, 5, 1, 16, 12, true},    {19, 23, 1, 16, 16, false}, {11, 3, 1, 16, 16, true},
        {13, 11, 3, 8, 8, false},   {5, 9, 3, 16, 16, false},   {1, 1, 1, 8, 8, false},
        {300, 2, 1, 16, 10, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mira_pixel_desc d = desc(cases[c].rows, cases[c].cols, cases[c].samples, cases[c].bits,
                                 cases[c].stored, cases[c].is_signed);
        size_t n = mira_pixel_frame_bytes(&d);
        uint8_t *src = frame(&d), *dst = malloc(n);
        mira__buf out;
        mira__buf_init(&out);
        mira_photometric ph = MIRA_PHOTO_UNKNOWN;
        mira_error *err = NULL;
        CHECK(mira__codec_jpegls.encode(src, n, &d, &out, &ph, &err));
        CHECK(err == NULL);
        CHECK(ph == d.photometric);
        CHECK(out.len > 2 && out.data[0] == 0xFF && out.data[1] == 0xD8);
        ph = d.photometric;
        CHECK(mira__codec_jpegls.decode(out.data, out.len, &d, dst, n, &ph, &err));
        CHECK(err == NULL);
        fix(dst, &d);
        if (memcmp(src, dst, n) != 0) {
            fprintf(stderr, "case %zu: decoded values differ\n", c);
            mira_test_failures++;
        }
        mira__buf_cleanup(&out);
        free(src);
        free(dst);
    }
}

TEST(jpegls_refuses_what_it_cannot_encode)
{
    mira_pixel_desc d = desc(4, 4, 1, 32, 32, false);
    size_t n = mira_pixel_frame_bytes(&d);
    uint8_t *src = calloc(1, n);
    mira__buf out;
    mira__buf_init(&out);
    mira_photometric ph;
    mira_error *err = NULL;
    CHECK(!mira__codec_jpegls.encode(src, n, &d, &out, &ph, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    CHECK(err && strstr(mira_error_get_message(err), "bits") != NULL);
    mira_error_free(err);
    mira__buf_cleanup(&out);
    free(src);
}

TEST(jpegls_frame_must_match_the_data_set)
{
    mira_pixel_desc d = desc(8, 8, 1, 16, 12, false);
    size_t n = mira_pixel_frame_bytes(&d);
    uint8_t *src = frame(&d);
    mira__buf out;
    mira__buf_init(&out);
    mira_photometric ph;
    CHECK(mira__codec_jpegls.encode(src, n, &d, &out, &ph, NULL));
    /* another size, other samples, fewer bits allocated than coded */
    mira_pixel_desc wrong[3] = {desc(8, 9, 1, 16, 12, false), desc(8, 8, 3, 16, 12, false),
                                desc(8, 8, 1, 8, 8, false)};
    for (int i = 0; i < 3; i++) {
        size_t m = mira_pixel_frame_bytes(&wrong[i]);
        uint8_t *dst = malloc(m);
        mira_error *err = NULL;
        CHECK(!mira__codec_jpegls.decode(out.data, out.len, &wrong[i], dst, m, &ph, &err));
        CHECK(err && mira_error_get_code(err) == MIRA_ERR_INVALID);
        CHECK(err && (strstr(mira_error_get_message(err), "data set says") != NULL ||
                      strstr(mira_error_get_message(err), "Bits Allocated") != NULL));
        mira_error_free(err);
        free(dst);
    }
    /* every truncation is an error or a frame, never a read past the end (ASan checks) */
    uint8_t *dst = malloc(n);
    int errors = 0;
    for (size_t cut = 0; cut < out.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, out.data, cut);
        mira_error *err = NULL;
        if (!mira__codec_jpegls.decode(copy, cut, &d, dst, n, &ph, &err)) {
            CHECK(err != NULL && mira_error_get_message(err)[0]);
            errors++;
        }
        mira_error_free(err);
        free(copy);
    }
    CHECK(errors > 0);
    free(dst);
    free(src);
    mira__buf_cleanup(&out);
}

TEST(jpegls_widens_narrow_codestreams)
{
    /* an 8-bit stream in a 16-bit image (Bits Allocated 16, Bits Stored 8) */
    mira_pixel_desc d8 = desc(6, 7, 3, 8, 8, false);
    size_t n8 = mira_pixel_frame_bytes(&d8);
    uint8_t *src = frame(&d8);
    mira__buf out;
    mira__buf_init(&out);
    mira_photometric ph;
    CHECK(mira__codec_jpegls.encode(src, n8, &d8, &out, &ph, NULL));
    mira_pixel_desc d16 = desc(6, 7, 3, 16, 8, false);
    size_t n16 = mira_pixel_frame_bytes(&d16);
    uint8_t *dst = malloc(n16);
    CHECK(mira__codec_jpegls.decode(out.data, out.len, &d16, dst, n16, &ph, NULL));
    bool same = true;
    for (size_t i = 0; i < n8; i++)
        same = same && dst[2 * i] == src[i] && dst[2 * i + 1] == 0;
    CHECK(same);
    free(dst);
    free(src);
    mira__buf_cleanup(&out);
}

/* A JPEG header with one SOF of the given marker and precision, 8x8, one component. */
static size_t jpeg_header(uint8_t *p, uint8_t sof, uint8_t precision)
{
    const uint8_t h[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00,      0x04, 0x00, 0x00,
                         0xFF, sof,  0x00, 0x0B, precision, 0x00, 0x08, 0x00,
                         0x08, 0x01, 0x01, 0x11, 0x00,      0xFF, 0xD9};
    memcpy(p, h, sizeof h);
    return sizeof h;
}

TEST(jpeg_twelve_bit_and_other_processes_are_unsupported)
{
    mira_pixel_desc d = desc(8, 8, 1, 16, 12, false);
    uint8_t stream[64], dst[128];
    mira_photometric ph = d.photometric;
    mira_error *err = NULL;
    size_t len = jpeg_header(stream, 0xC1, 12);
    CHECK(!mira__codec_jpeg.decode(stream, len, &d, dst, sizeof dst, &ph, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    CHECK(err && strstr(mira_error_get_message(err), "12-bit") != NULL);
    mira_error_free(err);
    err = NULL;
    len = jpeg_header(stream, 0xC9, 8); /* arithmetic coding */
    CHECK(!mira__codec_jpeg.decode(stream, len, &d, dst, sizeof dst, &ph, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    err = NULL;
    /* a SOF3 (lossless) header goes to the JPEG Lossless decoder, which names it */
    len = jpeg_header(stream, 0xC3, 12);
    CHECK(!mira__codec_jpeg.decode(stream, len, &d, dst, sizeof dst, &ph, &err));
    CHECK(err != NULL);
    mira_error_free(err);
    err = NULL;
    /* garbage is invalid, with libjpeg's reason */
    uint8_t junk[16] = {0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3};
    CHECK(!mira__codec_jpeg.decode(junk, sizeof junk, &d, dst, sizeof dst, &ph, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_INVALID);
    mira_error_free(err);
}
