/* Tests of the JPEG 2000 codec: lossless round trips, HTJ2K streams from OpenJPH, bad input. */
#include "harness.h"

#include "pixel/codec.h"

#include <openjpeg.h>
#include <pthread.h>
#include <stdlib.h>

/*
 * References: a round trip must give back the frame the encoder was given (the synthetic
 * values, not a decoder's output); the two HTJ2K codestreams below were written by OpenJPH's
 * ojph_compress 0.9.0 (Debian's openjph-tools, another implementation than OpenJPEG) from
 * images whose values are computed here. Decoding of peer-encoded J2K (GDCM, pydicom's test
 * files) and of what mira encodes by GDCM is tested in tests/python.
 */

static uint64_t rng_state = 0x6A09E667F3BCC908u;

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

static size_t frame_bytes(const mira_pixel_desc *d)
{
    return (size_t)d->rows * d->columns * d->samples * mira_pixel_sample_bytes(d);
}

/* Store value v (already in range) as sample i of a frame. */
static void put(uint8_t *p, size_t i, size_t sb, int64_t v)
{
    for (size_t b = 0; b < sb; b++)
        p[i * sb + b] = (uint8_t)((uint64_t)v >> (8 * b));
}

/* Fill a frame the way a decoder leaves it: values of `stored` bits, sign-extended when
 * signed. kind 0: random; 1: smooth ramps with noise; 2: the extremes of the range only;
 * 3: constant. */
static void fill(uint8_t *p, const mira_pixel_desc *d, int kind)
{
    size_t sb = mira_pixel_sample_bytes(d), n = frame_bytes(d) / sb;
    unsigned bits = d->bits_stored;
    int64_t lo = d->is_signed ? -((int64_t)1 << (bits - 1)) : 0;
    int64_t hi = d->is_signed ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    for (size_t i = 0; i < n; i++) {
        size_t px = i / d->samples, x = px % d->columns, y = px / d->columns;
        uint64_t r = (uint64_t)rnd() << 32 | rnd();
        int64_t v;
        switch (kind) {
        case 0:
            v = lo + (int64_t)(r % span);
            break;
        case 1:
            v = lo + (int64_t)(((x * 7 + y * 3) * (span / 64 + 1) + r % 5) % span);
            break;
        case 2:
            v = (r & 1) ? hi : lo;
            break;
        default:
            v = lo + (int64_t)(span / 3);
            break;
        }
        put(p, i, sb, v);
    }
}

static int64_t get(const uint8_t *p, size_t i, size_t sb, bool sgnd)
{
    uint64_t v = 0;
    for (size_t b = sb; b-- > 0;)
        v = v << 8 | p[i * sb + b];
    if (sgnd && sb < 8 && (v >> (8 * sb - 1)) & 1)
        v |= ~(uint64_t)0 << (8 * sb);
    return (int64_t)v;
}

/* As pixels.c does after a decoder: keep Bits Stored, sign-extend. */
static void fix_values(uint8_t *p, const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d), n = frame_bytes(d) / sb;
    unsigned bits = d->bits_stored;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)get(p, i, sb, false);
        if (bits < 64) {
            v &= ((uint64_t)1 << bits) - 1;
            if (d->is_signed && (v >> (bits - 1)) & 1)
                v |= ~(((uint64_t)1 << bits) - 1);
        }
        put(p, i, sb, (int64_t)v);
    }
}

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The offset of marker 0xFF, m in the main header (before SOT), or 0. */
static size_t find_marker(const uint8_t *cs, size_t n, unsigned m)
{
    size_t pos = 2;
    while (pos + 4 <= n && cs[pos] == 0xFF) {
        if (cs[pos + 1] == m)
            return pos;
        if (cs[pos + 1] == 0x90)
            return 0;
        pos += 2 + rd16(cs + pos + 2);
    }
    return 0;
}

static bool encode(const uint8_t *src, const mira_pixel_desc *d, mira__buf *out,
                   mira_photometric *ph, mira_error **err)
{
    return mira__codec_j2k.encode(src, frame_bytes(d), d, out, ph, err);
}

static bool decode(const uint8_t *cs, size_t n, const mira_pixel_desc *d, uint8_t *dst,
                   mira_photometric *ph, mira_error **err)
{
    return mira__codec_j2k.decode(cs, n, d, dst, frame_bytes(d), ph, err);
}

/* Encode, check the codestream's header, decode, compare. */
static void round_trip(const mira_pixel_desc *d, int kind)
{
    size_t n = frame_bytes(d);
    uint8_t *src = malloc(n), *back = malloc(n);
    fill(src, d, kind);
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    mira_photometric ph = MIRA_PHOTO_UNKNOWN;
    bool ok = encode(src, d, &out, &ph, &err);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "encode %ux%u x%u %u/%u%s: %s\n", (unsigned)d->rows, (unsigned)d->columns,
                (unsigned)d->samples, (unsigned)d->bits_stored, (unsigned)d->bits_allocated,
                d->is_signed ? " signed" : "", mira_error_get_message(err));
        mira_error_free(err);
        goto done;
    }
    bool rgb = d->samples == 3 && d->photometric == MIRA_PHOTO_RGB;
    CHECK_EQ_INT(ph, rgb ? MIRA_PHOTO_YBR_RCT : d->photometric);
    /* a raw codestream: SOC SIZ ... EOC; SIZ says the size, the precision and the sign */
    CHECK(out.len > 50 && out.data[0] == 0xFF && out.data[1] == 0x4F && out.data[2] == 0xFF &&
          out.data[3] == 0x51);
    CHECK(out.data[out.len - 2] == 0xFF && out.data[out.len - 1] == 0xD9);
    const uint8_t *siz = out.data + 6;
    CHECK_EQ_INT(rd32(siz + 2), d->columns);
    CHECK_EQ_INT(rd32(siz + 6), d->rows);
    CHECK_EQ_INT(rd16(siz + 34), d->samples);
    for (unsigned c = 0; c < d->samples; c++) {
        if (d->bits_stored <= 24)
            CHECK_EQ_INT((siz[36 + 3 * c] & 0x7F) + 1, d->bits_stored);
        CHECK_EQ_INT(siz[36 + 3 * c] >> 7, d->is_signed);
        CHECK(siz[37 + 3 * c] == 1 && siz[38 + 3 * c] == 1);
    }
    /* COD: one layer, the colour transform for RGB only, the 5/3 wavelet, up to 5 levels */
    size_t cod = find_marker(out.data, out.len, 0x52);
    CHECK(cod != 0);
    if (cod) {
        const uint8_t *c = out.data + cod + 4;
        uint32_t side = d->rows < d->columns ? d->rows : d->columns;
        unsigned levels = 0;
        while (levels < 5 && (side >> (levels + 1)) > 0)
            levels++;
        CHECK_EQ_INT(rd16(c + 2), 1);
        CHECK_EQ_INT(c[4], rgb ? 1 : 0);
        CHECK_EQ_INT(c[5], levels);
        CHECK_EQ_INT(c[9], 1);
    }
    memset(back, 0xA5, n);
    mira_pixel_desc dd = *d;
    if (rgb)
        dd.photometric = MIRA_PHOTO_YBR_RCT; /* as the encoded data set declares it */
    mira_photometric dph = dd.photometric;
    ok = decode(out.data, out.len, &dd, back, &dph, &err);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "decode: %s\n", mira_error_get_message(err));
        mira_error_free(err);
        goto done;
    }
    CHECK_EQ_INT(dph, rgb ? MIRA_PHOTO_RGB : d->photometric);
    fix_values(back, d);
    if (memcmp(src, back, n) != 0) {
        fprintf(stderr, "round trip differs: %ux%u, %u samples, %u/%u bits%s, kind %d\n",
                (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples,
                (unsigned)d->bits_stored, (unsigned)d->bits_allocated,
                d->is_signed ? " signed" : "", kind);
        CHECK(false);
    }
done:
    mira__buf_cleanup(&out);
    free(src);
    free(back);
}

/* ------------------------------------------------------------------ round trips */

TEST(round_trip_8_12_16_bits_mono_and_rgb)
{
    static const uint16_t layouts[][3] = {
        /* bits allocated, bits stored, signed */
        {8, 8, 0},   {8, 8, 1},   {8, 6, 0},   {16, 12, 0}, {16, 12, 1},
        {16, 16, 0}, {16, 16, 1}, {16, 10, 1}, {16, 1, 0},  {32, 20, 1},
    };
    static const uint32_t sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {3, 5}, {17, 13}, {64, 65}};
    for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (uint16_t spp = 1; spp <= 3; spp += 2)
                for (int kind = 0; kind < 4; kind++) {
                    mira_pixel_desc d = desc(sizes[s][0], sizes[s][1], spp, layouts[l][0],
                                             layouts[l][1], layouts[l][2] != 0);
                    round_trip(&d, kind);
                }
}

TEST(round_trip_larger_frames)
{
    mira_pixel_desc d = desc(300, 257, 1, 16, 16, false);
    round_trip(&d, 1);
    d = desc(129, 200, 3, 8, 8, false);
    round_trip(&d, 1);
    d = desc(256, 256, 1, 16, 12, true);
    round_trip(&d, 0);
}

TEST(colour_transform_only_for_rgb)
{
    /* YBR_FULL (from an uncompressed or RLE source) is encoded as it is and keeps its name */
    mira_pixel_desc d = desc(11, 13, 3, 8, 8, false);
    d.photometric = MIRA_PHOTO_YBR_FULL;
    round_trip(&d, 0);
    d = desc(11, 13, 1, 8, 8, false);
    d.photometric = MIRA_PHOTO_PALETTE;
    round_trip(&d, 0);
    d.photometric = MIRA_PHOTO_MONOCHROME1;
    round_trip(&d, 1);
}

TEST(more_bits_than_openjpeg_encodes_exactly)
{
    /* 32-bit Bits Stored whose values need 21 bits (an RT Dose grid): encoded with 21 */
    mira_pixel_desc d = desc(10, 10, 1, 32, 32, false);
    uint8_t src[400], back[400];
    for (size_t i = 0; i < 100; i++)
        put(src, i, 4, 795000 + (int64_t)(rnd() % 460000));
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    CHECK(encode(src, &d, &out, NULL, &err));
    mira_error_free(err);
    err = NULL;
    if (out.len > 50) {
        CHECK_EQ_INT((out.data[6 + 36] & 0x7F) + 1, 21);
        CHECK(decode(out.data, out.len, &d, back, NULL, &err));
        CHECK(memcmp(src, back, sizeof src) == 0);
    }
    mira__buf_cleanup(&out);

    /* signed values of 32 bits in [-1000, 1000]: 11 bits */
    d = desc(10, 10, 1, 32, 32, true);
    for (size_t i = 0; i < 100; i++)
        put(src, i, 4, (int64_t)(rnd() % 2001) - 1000);
    mira__buf_init(&out);
    CHECK(encode(src, &d, &out, NULL, &err));
    if (out.len > 50) {
        CHECK_EQ_INT(out.data[6 + 36], 0x80 | 10);
        CHECK(decode(out.data, out.len, &d, back, NULL, &err));
        CHECK(memcmp(src, back, sizeof src) == 0);
    }
    mira__buf_cleanup(&out);
    mira_error_free(err);
    err = NULL;

    /* values that need all 32 bits: refused, and nothing is left in the buffer */
    d = desc(10, 10, 1, 32, 32, false);
    fill(src, &d, 2);
    mira__buf_init(&out);
    mira__buf_append(&out, "prefix", 6);
    CHECK(!encode(src, &d, &out, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "32 bits") != NULL);
    CHECK_EQ_INT(out.len, 6);
    mira_error_free(err);
    err = NULL;

    /* 24 bits in a pattern where OpenJPEG's reversible coder is not exact: the encoder's own
     * check refuses it instead of writing a lossy "lossless" codestream */
    d = desc(64, 64, 1, 32, 24, false);
    uint8_t *big = malloc(frame_bytes(&d));
    for (size_t i = 0; i < 64 * 64; i++)
        put(big, i, 4, ((i % 64) ^ (i / 64)) & 2 ? 0xFFFFFF : 0);
    CHECK(!encode(big, &d, &out, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "not exact") != NULL);
    CHECK_EQ_INT(out.len, 6);
    mira_error_free(err);
    free(big);
    mira__buf_cleanup(&out);
}

TEST(one_bit_noise_round_trips)
{
    /* codes larger than OpenJPEG's output estimate (retried with a taller tile) and, in RGB,
     * needs 3 guard bits; either way still one tile */
    for (uint16_t spp = 1; spp <= 3; spp += 2) {
        mira_pixel_desc d = desc(128, 128, spp, 8, 1, false);
        round_trip(&d, 0);
        size_t n = frame_bytes(&d);
        uint8_t *src = malloc(n);
        fill(src, &d, 0);
        mira__buf out;
        mira__buf_init(&out);
        CHECK(encode(src, &d, &out, NULL, NULL));
        if (out.len > 50) {
            const uint8_t *siz = out.data + 6;
            CHECK(rd32(siz + 18) >= d.columns && rd32(siz + 22) >= d.rows);
        }
        mira__buf_cleanup(&out);
        free(src);
    }
}

TEST(encode_appends_to_the_buffer)
{
    mira_pixel_desc d = desc(5, 7, 1, 8, 8, false);
    uint8_t src[35], back[35];
    fill(src, &d, 0);
    mira__buf out;
    mira__buf_init(&out);
    mira__buf_append(&out, "abc", 3);
    CHECK(encode(src, &d, &out, NULL, NULL));
    CHECK(memcmp(out.data, "abc", 3) == 0);
    CHECK(out.len > 3 && decode(out.data + 3, out.len - 3, &d, back, NULL, NULL));
    CHECK(memcmp(src, back, sizeof src) == 0);
    mira__buf_cleanup(&out);
}

TEST(encode_rejects_bad_arguments)
{
    mira_pixel_desc d = desc(5, 7, 1, 8, 8, false);
    uint8_t src[35] = {0};
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    CHECK(!mira__codec_j2k.encode(src, 34, &d, &out, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    d.bits_allocated = 64;
    CHECK(!mira__codec_j2k.encode(src, 35, &d, &out, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    CHECK_EQ_INT(out.len, 0);
    mira__buf_cleanup(&out);
}

/* ------------------------------------------------------------------ HTJ2K from OpenJPH */

/* ojph_compress -reversible true -num_decomps 2 of a 7 x 5 8-bit PGM, value (x * 37 + y * 11)
 * ^ (x * y) mod 256 at column x, row y. */
static const uint8_t ht_u8[] = {
    0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x40, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x05,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x05,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x01, 0xFF, 0x50, 0x00,
    0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0xFF, 0x52, 0x00, 0x0C, 0x00, 0x02, 0x00, 0x01, 0x00,
    0x02, 0x04, 0x04, 0x40, 0x01, 0xFF, 0x5C, 0x00, 0x0A, 0x20, 0x50, 0x58, 0x58, 0x58, 0x50, 0x50,
    0x58, 0xFF, 0x64, 0x00, 0x16, 0x00, 0x01, 0x4F, 0x70, 0x65, 0x6E, 0x4A, 0x50, 0x48, 0x20, 0x56,
    0x65, 0x72, 0x20, 0x30, 0x2E, 0x39, 0x2E, 0x30, 0x2E, 0xFF, 0x90, 0x00, 0x0A, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x52, 0x00, 0x01, 0xFF, 0x93, 0xC0, 0x15, 0x00, 0xF5, 0x56, 0x28, 0xC9, 0x00, 0x81,
    0xB4, 0x00, 0xC0, 0x0A, 0x88, 0x01, 0x2C, 0x00, 0x98, 0x0E, 0x0D, 0x10, 0x63, 0x00, 0x62, 0x94,
    0x00, 0xF6, 0x00, 0x41, 0x74, 0x00, 0x20, 0xF4, 0x00, 0x42, 0x34, 0x00, 0xC0, 0x15, 0x70, 0x04,
    0xF0, 0x02, 0x60, 0xD4, 0x2B, 0x88, 0x40, 0x51, 0x0B, 0xAC, 0x02, 0x74, 0x98, 0x00, 0x54, 0x18,
    0x28, 0x08, 0x7C, 0xE4, 0x00, 0x42, 0xCF, 0x32, 0x76, 0xD4, 0x00, 0xFF, 0xD9,
};

/* ojph_compress -reversible true -num_decomps 2 -bit_depth 12 of a 6 x 4 raw image of 16-bit
 * little-endian values (x * 613 + y * 1237) mod 4096. (ojph_compress 0.9.0 does not read signed
 * raw input as two's complement, so there is no signed case from it.) */
static const uint8_t ht_u12[] = {
    0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x40, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0B, 0x01, 0x01, 0xFF, 0x50, 0x00,
    0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0xFF, 0x52, 0x00, 0x0C, 0x00, 0x02, 0x00, 0x01, 0x00,
    0x02, 0x04, 0x04, 0x40, 0x01, 0xFF, 0x5C, 0x00, 0x0A, 0x20, 0x70, 0x78, 0x78, 0x78, 0x70, 0x70,
    0x78, 0xFF, 0x64, 0x00, 0x16, 0x00, 0x01, 0x4F, 0x70, 0x65, 0x6E, 0x4A, 0x50, 0x48, 0x20, 0x56,
    0x65, 0x72, 0x20, 0x30, 0x2E, 0x39, 0x2E, 0x30, 0x2E, 0xFF, 0x90, 0x00, 0x0A, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x62, 0x00, 0x01, 0xFF, 0x93, 0xC0, 0x01, 0x38, 0x5B, 0xF1, 0xF8, 0x02, 0x81, 0x74,
    0x00, 0xC0, 0x00, 0x96, 0x00, 0x04, 0xF0, 0x00, 0x25, 0x86, 0x01, 0x87, 0x74, 0x00, 0x5C, 0x17,
    0xC2, 0x03, 0x81, 0x74, 0x00, 0x3E, 0x02, 0x87, 0x74, 0x00, 0xC0, 0x01, 0x5D, 0x00, 0x05, 0x74,
    0x00, 0x0A, 0xC0, 0xFF, 0x73, 0x3F, 0xFF, 0x29, 0xB3, 0x9A, 0xFD, 0x00, 0x42, 0x00, 0xBC, 0x56,
    0x00, 0xA8, 0xE1, 0x1F, 0xAA, 0xCC, 0x3F, 0xA8, 0xFD, 0x00, 0x42, 0x80, 0x7C, 0x56, 0x00, 0xFF,
    0x77, 0x7F, 0xFE, 0xFF, 0x7F, 0x00, 0xA4, 0x03, 0xFC, 0xB6, 0x00, 0xFF, 0xD9};

TEST(htj2k_from_openjph_8_bit)
{
    mira_pixel_desc d = desc(5, 7, 1, 8, 8, false);
    uint8_t got[35];
    mira_error *err = NULL;
    CHECK(decode(ht_u8, sizeof ht_u8, &d, got, NULL, &err));
    if (err)
        fprintf(stderr, "%s\n", mira_error_get_message(err));
    mira_error_free(err);
    for (unsigned y = 0; y < 5; y++)
        for (unsigned x = 0; x < 7; x++)
            CHECK_EQ_INT(got[y * 7 + x], ((x * 37 + y * 11) ^ (x * y)) & 255);
}

TEST(htj2k_from_openjph_12_bit)
{
    mira_pixel_desc d = desc(4, 6, 1, 16, 12, false);
    uint8_t got[48];
    mira_error *err = NULL;
    CHECK(decode(ht_u12, sizeof ht_u12, &d, got, NULL, &err));
    if (err)
        fprintf(stderr, "%s\n", mira_error_get_message(err));
    mira_error_free(err);
    for (unsigned y = 0; y < 4; y++)
        for (unsigned x = 0; x < 6; x++)
            CHECK_EQ_INT(get(got, y * 6 + x, 2, false), (x * 613 + y * 1237) % 4096);
}

static uint8_t *encoded(mira__buf *out, const mira_pixel_desc *d);

/* The offset of the first SOD marker of a codestream (0 if none). */
static size_t find_sod(const uint8_t *cs, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (cs[i] == 0xFF && cs[i + 1] == 0x93)
            return i;
    return 0;
}

TEST(htj2k_marker_code_in_coded_data_is_refused)
{
    /* what makes Debian's OpenJPEG 2.5.0 abort (an assertion in its HT decoder) is refused
     * before it sees the data */
    mira_pixel_desc d = desc(5, 7, 1, 8, 8, false);
    uint8_t cs[sizeof ht_u8], got[35];
    memcpy(cs, ht_u8, sizeof cs);
    size_t sod = find_sod(cs, sizeof cs);
    CHECK(sod > 0);
    cs[sod + 6] = 0xFF;
    cs[sod + 7] = 0xC3;
    mira_error *err = NULL;
    CHECK(!decode(cs, sizeof cs, &d, got, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "marker code FF C3") != NULL);
    mira_error_free(err);
    err = NULL;
    /* more than one quality layer: refused with OpenJPEG 2.5.0 */
    memcpy(cs, ht_u8, sizeof cs);
    size_t cod = find_marker(cs, sizeof cs, 0x52);
    CHECK(cod > 0);
    cs[cod + 7] = 2;
    bool ok = decode(cs, sizeof cs, &d, got, NULL, &err);
    if (strcmp(opj_version(), "2.5.0") == 0) {
        CHECK(!ok);
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
        CHECK(strstr(mira_error_get_message(err), "2 quality layers") != NULL);
    }
    mira_error_free(err);
}

TEST(marker_structure_is_walked)
{
    mira_pixel_desc d = desc(9, 11, 1, 8, 8, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t back[99];
    mira_error *err = NULL;
    /* padding after EOC (an even-length fragment) is ignored */
    mira__buf_append(&cs, "\0\0\0", 3);
    CHECK(decode(cs.data, cs.len, &d, back, NULL, &err));
    CHECK(memcmp(src, back, sizeof back) == 0);
    mira_error_free(err);
    err = NULL;
    cs.len -= 3;
    /* something that is not a marker segment in the main header */
    size_t cod = find_marker(cs.data, cs.len, 0x52);
    uint8_t keep = cs.data[cod + 1];
    cs.data[cod + 1] = 0x00;
    cs.data[cod + 2] = 0x7F;
    CHECK(!decode(cs.data, cs.len, &d, back, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "main header") != NULL);
    mira_error_free(err);
    err = NULL;
    cs.data[cod + 1] = keep;
    cs.data[cod + 2] = 0;
    CHECK(decode(cs.data, cs.len, &d, back, NULL, NULL));
    /* bytes between the tile-part and EOC */
    uint8_t *junk = malloc(cs.len + 4);
    memcpy(junk, cs.data, cs.len - 2);
    memcpy(junk + cs.len - 2, "\x12\x34\x56\x78\xFF\xD9", 6);
    CHECK(!decode(junk, cs.len + 4, &d, back, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "no tile-part (SOT) or end of codestream") != NULL);
    mira_error_free(err);
    free(junk);
    mira__buf_cleanup(&cs);
    free(src);
}

/* ------------------------------------------------------------------ JP2 files */

static void box(mira__buf *b, const char *type, const void *body, size_t n)
{
    mira__buf_u32be(b, (uint32_t)(8 + n));
    mira__buf_append(b, type, 4);
    mira__buf_append(b, body, n);
}

/* A JP2 file around a codestream (ISO/IEC 15444-1 Annex I: signature, ftyp, jp2h with ihdr and
 * colr, jp2c). */
static void wrap_jp2(mira__buf *b, const uint8_t *cs, size_t n, const mira_pixel_desc *d)
{
    static const uint8_t sig[4] = {0x0D, 0x0A, 0x87, 0x0A};
    box(b, "jP  ", sig, 4);
    box(b, "ftyp", "jp2 \0\0\0\0jp2 ", 12);
    uint8_t ihdr[14] = {0};
    ihdr[0] = (uint8_t)(d->rows >> 24), ihdr[1] = (uint8_t)(d->rows >> 16);
    ihdr[2] = (uint8_t)(d->rows >> 8), ihdr[3] = (uint8_t)d->rows;
    ihdr[4] = (uint8_t)(d->columns >> 24), ihdr[5] = (uint8_t)(d->columns >> 16);
    ihdr[6] = (uint8_t)(d->columns >> 8), ihdr[7] = (uint8_t)d->columns;
    ihdr[9] = (uint8_t)d->samples;
    ihdr[10] = (uint8_t)((d->bits_stored - 1) | (d->is_signed ? 0x80 : 0));
    ihdr[11] = 7;                                                    /* wavelet */
    uint8_t colr[7] = {1, 0, 0, 0, 0, 0, d->samples == 3 ? 16 : 17}; /* sRGB / greyscale */
    mira__buf h;
    mira__buf_init(&h);
    box(&h, "ihdr", ihdr, sizeof ihdr);
    box(&h, "colr", colr, sizeof colr);
    box(b, "jp2h", h.data, h.len);
    mira__buf_cleanup(&h);
    box(b, "jp2c", cs, n);
}

TEST(jp2_file_decodes_like_its_codestream)
{
    for (uint16_t spp = 1; spp <= 3; spp += 2) {
        mira_pixel_desc d = desc(9, 14, spp, 16, 12, spp == 1);
        size_t n = frame_bytes(&d);
        uint8_t *src = malloc(n), *back = malloc(n);
        fill(src, &d, 1);
        mira__buf cs, jp2;
        mira__buf_init(&cs);
        mira__buf_init(&jp2);
        CHECK(encode(src, &d, &cs, NULL, NULL));
        wrap_jp2(&jp2, cs.data, cs.len, &d);
        mira_error *err = NULL;
        CHECK(decode(jp2.data, jp2.len, &d, back, NULL, &err));
        if (err)
            fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        err = NULL;
        fix_values(back, &d);
        CHECK(memcmp(src, back, n) == 0);
        /* a JP2 file cut inside its codestream box, or without one */
        CHECK(!decode(jp2.data, jp2.len - 20, &d, back, NULL, &err));
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
        mira_error_free(err);
        err = NULL;
        CHECK(!decode(jp2.data, jp2.len - cs.len - 8, &d, back, NULL, &err));
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
        CHECK(strstr(mira_error_get_message(err), "jp2c") != NULL);
        mira_error_free(err);
        mira__buf_cleanup(&cs);
        mira__buf_cleanup(&jp2);
        free(src);
        free(back);
    }
}

/* ------------------------------------------------------------------ bad input */

/* An encoded 8-bit frame (rows x cols x spp) in *out; its values in src (caller frees). */
static uint8_t *encoded(mira__buf *out, const mira_pixel_desc *d)
{
    uint8_t *src = malloc(frame_bytes(d));
    fill(src, d, 1);
    mira__buf_init(out);
    CHECK(encode(src, d, out, NULL, NULL));
    return src;
}

TEST(mismatched_frame_is_invalid_naming_both_values)
{
    mira_pixel_desc d = desc(20, 30, 1, 16, 12, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t *back = malloc(40 * 40 * 3 * 2);
    struct {
        mira_pixel_desc d;
        const char *a, *b;
    } cases[] = {
        {desc(21, 30, 1, 16, 12, false), "30 x 20", "30 x 21"},
        {desc(20, 31, 1, 16, 12, false), "30 x 20", "31 x 20"},
        {desc(20, 30, 3, 16, 12, false), "1 components", "3 samples"},
        {desc(20, 30, 1, 8, 8, false), "precision 12", "Bits Allocated 8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mira_error *err = NULL;
        CHECK(!decode(cs.data, cs.len, &cases[i].d, back, NULL, &err));
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
        const char *m = mira_error_get_message(err);
        if (!strstr(m, cases[i].a) || !strstr(m, cases[i].b)) {
            fprintf(stderr, "case %zu: \"%s\" lacks \"%s\" or \"%s\"\n", i, m, cases[i].a,
                    cases[i].b);
            CHECK(false);
        }
        mira_error_free(err);
    }
    /* a wrong output size is the caller's mistake */
    mira_error *err = NULL;
    CHECK(!mira__codec_j2k.decode(cs.data, cs.len, &d, back, frame_bytes(&d) - 1, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    mira__buf_cleanup(&cs);
    free(src);
    free(back);
}

TEST(not_jpeg_2000_is_invalid)
{
    mira_pixel_desc d = desc(2, 2, 1, 8, 8, false);
    uint8_t back[4];
    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16};
    static const uint8_t soc_only[] = {0xFF, 0x4F};
    static const uint8_t soc_cod[] = {0xFF, 0x4F, 0xFF, 0x52, 0, 12};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {{jpeg, sizeof jpeg}, {soc_only, 2}, {soc_cod, sizeof soc_cod}, {jpeg, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mira_error *err = NULL;
        CHECK(!decode(cases[i].p, cases[i].n, &d, back, NULL, &err));
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
        mira_error_free(err);
    }
}

TEST(truncated_codestreams_are_errors)
{
    mira_pixel_desc d = desc(33, 47, 3, 8, 8, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t *back = malloc(frame_bytes(&d));
    size_t failures = 0, tried = 0;
    for (size_t n = 0; n + 2 < cs.len; n += n < 200 ? 1 : 37) {
        /* an exact-size copy, so that reads past the end show under AddressSanitizer */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, cs.data, n);
        mira_error *err = NULL;
        tried++;
        if (!decode(cut, n, &d, back, NULL, &err)) {
            failures++;
            CHECK(err && mira_error_get_message(err)[0]);
            CHECK(mira_error_get_code(err) == MIRA_ERR_INVALID ||
                  mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
        }
        mira_error_free(err);
        free(cut);
    }
    CHECK_EQ_INT(failures, tried); /* strict decoding: no partial pictures */
    mira__buf_cleanup(&cs);
    free(src);
    free(back);
}

TEST(openjpeg_errors_reach_the_message)
{
    mira_pixel_desc d = desc(16, 16, 1, 8, 8, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t back[256];
    mira_error *err = NULL;
    CHECK(!decode(cs.data, cs.len / 2, &d, back, NULL, &err));
    const char *m = mira_error_get_message(err);
    CHECK(strstr(m, "OpenJPEG could not decode") != NULL);
    CHECK(strstr(m, "no reason given") == NULL); /* OpenJPEG's own text is there */
    mira_error_free(err);
    mira__buf_cleanup(&cs);
    free(src);
}

TEST(corrupt_codestreams_never_crash)
{
    mira_pixel_desc d = desc(24, 40, 3, 16, 12, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t *back = malloc(frame_bytes(&d));
    uint8_t *bad = malloc(cs.len);
    for (int round = 0; round < 300; round++) {
        memcpy(bad, cs.data, cs.len);
        int flips = 1 + (int)(rnd() % 8);
        for (int f = 0; f < flips; f++) {
            size_t at = rnd() % cs.len;
            if (round % 3 == 0)
                at = 4 + rnd() % 100; /* the headers, where the trouble is */
            bad[at] = (uint8_t)rnd();
        }
        mira_error *err = NULL;
        mira_photometric ph = d.photometric;
        if (!decode(bad, cs.len, &d, back, &ph, &err))
            CHECK(err && mira_error_get_message(err)[0]);
        mira_error_free(err);
    }
    mira__buf_cleanup(&cs);
    free(src);
    free(back);
    free(bad);
}

TEST(subsampled_and_over_tiled_headers_are_refused)
{
    mira_pixel_desc d = desc(8, 8, 3, 8, 8, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t back[192];
    mira_error *err = NULL;
    /* component 1 with XRsiz 2 */
    cs.data[6 + 36 + 3 + 1] = 2;
    CHECK(!decode(cs.data, cs.len, &d, back, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "subsampled") != NULL);
    mira_error_free(err);
    err = NULL;
    cs.data[6 + 36 + 3 + 1] = 1;
    mira__buf_cleanup(&cs);
    free(src);

    /* a 300 x 300 image of 1 x 1 tiles: 90000 tiles, more than a codestream may have */
    d = desc(300, 300, 1, 8, 8, false);
    src = encoded(&cs, &d);
    uint8_t *big = malloc(frame_bytes(&d));
    uint8_t *siz = cs.data + 6;
    memcpy(siz + 18, "\0\0\0\1\0\0\0\1", 8);
    CHECK(!decode(cs.data, cs.len, &d, big, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "90000 tiles") != NULL);
    mira_error_free(err);
    err = NULL;
    /* 2 x 2 tiles: 22500, allowed by the standard, but each costs OpenJPEG kilobytes */
    memcpy(siz + 18, "\0\0\0\2\0\0\0\2", 8);
    CHECK(!decode(cs.data, cs.len, &d, big, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "fewer than 64 pixels") != NULL);
    mira_error_free(err);
    err = NULL;
    /* 150 x 150 tiles: four, of which the codestream has only the first */
    memcpy(siz + 18, "\0\0\0\x96\0\0\0\x96", 8);
    CHECK(!decode(cs.data, cs.len, &d, big, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "tile 1 of 4 has no tile-part") != NULL);
    mira_error_free(err);
    err = NULL;
    /* a tile-part of a tile the image does not have */
    memcpy(siz + 18, "\0\0\x01\x2C\0\0\x01\x2C", 8);
    size_t sot = find_sod(cs.data, cs.len);
    while (sot > 0 && !(cs.data[sot] == 0xFF && cs.data[sot + 1] == 0x90))
        sot--;
    cs.data[sot + 5] = 3; /* Isot */
    CHECK(!decode(cs.data, cs.len, &d, big, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    CHECK(strstr(mira_error_get_message(err), "is of tile 3; the image has 1 tiles") != NULL);
    mira_error_free(err);
    mira__buf_cleanup(&cs);
    free(src);
    free(big);
}

TEST(precision_above_31_bits_is_unsupported)
{
    mira_pixel_desc d = desc(4, 4, 1, 32, 20, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    uint8_t back[64];
    mira_error *err = NULL;
    d.bits_stored = 32;
    cs.data[6 + 36] = 31; /* Ssiz: 32 bits unsigned */
    CHECK(!decode(cs.data, cs.len, &d, back, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "31 bits") != NULL);
    mira_error_free(err);
    mira__buf_cleanup(&cs);
    free(src);
}

/* ------------------------------------------------------------------ threads */

typedef struct job {
    const mira__buf *cs;
    const mira_pixel_desc *d;
    const uint8_t *want;
    bool ok;
} job;

static void *decode_many(void *arg)
{
    job *j = arg;
    size_t n = frame_bytes(j->d);
    uint8_t *back = malloc(n);
    j->ok = true;
    for (int i = 0; i < 20 && j->ok; i++) {
        mira_pixel_desc d = *j->d;
        d.photometric = MIRA_PHOTO_YBR_RCT;
        j->ok =
            decode(j->cs->data, j->cs->len, &d, back, NULL, NULL) && memcmp(back, j->want, n) == 0;
    }
    free(back);
    return NULL;
}

TEST(decoding_from_several_threads)
{
    mira_pixel_desc d = desc(61, 77, 3, 8, 8, false);
    mira__buf cs;
    uint8_t *src = encoded(&cs, &d);
    pthread_t t[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){&cs, &d, src, false};
        pthread_create(&t[i], NULL, decode_many, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].ok);
    }
    mira__buf_cleanup(&cs);
    free(src);
}

/* An irreversible (9/7, lossy) codestream of the frame, written by OpenJPEG itself with 64 x 64
 * tiles (so that several tiles and code-blocks are decoded on each thread). */
typedef struct sink {
    uint8_t *data;
    size_t len, cap, pos;
} sink;

static OPJ_SIZE_T sink_write(void *buf, OPJ_SIZE_T n, void *user)
{
    sink *s = user;
    if (s->pos + n > s->cap) {
        s->cap = 2 * (s->pos + n);
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->pos, buf, n);
    s->pos += n;
    if (s->pos > s->len)
        s->len = s->pos;
    return n;
}

static OPJ_OFF_T sink_skip(OPJ_OFF_T n, void *user)
{
    ((sink *)user)->pos += (size_t)n;
    return n;
}

static OPJ_BOOL sink_seek(OPJ_OFF_T n, void *user)
{
    ((sink *)user)->pos = (size_t)n;
    return OPJ_TRUE;
}

static bool lossy_encoded(sink *out, const mira_pixel_desc *d, const uint8_t *src)
{
    size_t sb = mira_pixel_sample_bytes(d), npix = (size_t)d->rows * d->columns;
    opj_image_cmptparm_t cp[3];
    memset(cp, 0, sizeof cp);
    for (unsigned c = 0; c < d->samples; c++) {
        cp[c].dx = cp[c].dy = 1;
        cp[c].w = d->columns;
        cp[c].h = d->rows;
        cp[c].prec = d->bits_stored;
        cp[c].sgnd = d->is_signed;
    }
    opj_image_t *img =
        opj_image_create(d->samples, cp, d->samples == 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY);
    img->x1 = d->columns;
    img->y1 = d->rows;
    for (unsigned c = 0; c < d->samples; c++)
        for (size_t i = 0; i < npix; i++)
            img->comps[c].data[i] = (OPJ_INT32)get(src, i * d->samples + c, sb, d->is_signed);
    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.irreversible = 1;
    p.tcp_numlayers = 1;
    p.tcp_rates[0] = 10;
    p.cp_disto_alloc = 1;
    p.tcp_mct = d->samples == 3;
    p.tile_size_on = OPJ_TRUE;
    p.cp_tdx = p.cp_tdy = 64;
    memset(out, 0, sizeof *out);
    opj_codec_t *codec = opj_create_compress(OPJ_CODEC_J2K);
    opj_stream_t *st = opj_stream_create(1u << 16, OPJ_FALSE);
    opj_stream_set_user_data(st, out, NULL);
    opj_stream_set_write_function(st, sink_write);
    opj_stream_set_skip_function(st, sink_skip);
    opj_stream_set_seek_function(st, sink_seek);
    bool ok = opj_setup_encoder(codec, &p, img) && opj_start_compress(codec, img, st) &&
              opj_encode(codec, st) && opj_end_compress(codec, st);
    opj_stream_destroy(st);
    opj_destroy_codec(codec);
    opj_image_destroy(img);
    return ok;
}

/* Decode cs with 1 to 5 threads inside the frame: every count gives the one-thread values. */
static void same_values_on_threads(const uint8_t *cs, size_t n, const mira_pixel_desc *d)
{
    size_t len = frame_bytes(d);
    uint8_t *one = malloc(len), *many = malloc(len);
    mira_error *err = NULL;
    mira_photometric ph = d->photometric;
    bool ok = decode(cs, n, d, one, &ph, &err);
    CHECK(ok);
    for (int t = 1; ok && t <= 5; t++) {
        memset(many, 0xA5, len);
        mira_photometric tph = d->photometric;
        CHECK(mira__codec_j2k.decode_threads(cs, n, d, many, len, t, &tph, &err));
        CHECK(memcmp(one, many, len) == 0);
        CHECK_EQ_INT(tph, ph);
    }
    if (err) {
        fprintf(stderr, "decode: %s\n", mira_error_get_message(err));
        mira_error_free(err);
    }
    free(one);
    free(many);
}

TEST(threads_inside_a_frame_give_the_same_values)
{
    /* lossless (5/3, one tile, mira's encoder) and lossy (9/7, 64 x 64 tiles), mono and RGB */
    static const uint16_t layouts[][4] = {
        /* rows, columns, samples, bits stored */
        {300, 257, 1, 12},
        {200, 333, 3, 8},
    };
    for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++) {
        uint16_t bits = layouts[l][3];
        mira_pixel_desc d = desc(layouts[l][0], layouts[l][1], layouts[l][2],
                                 bits > 8 ? 16 : 8, bits, false);
        uint8_t *src = malloc(frame_bytes(&d));
        fill(src, &d, 1);
        mira__buf cs;
        mira__buf_init(&cs);
        mira_photometric ph;
        CHECK(encode(src, &d, &cs, &ph, NULL));
        mira_pixel_desc dd = d;
        dd.photometric = ph;
        same_values_on_threads(cs.data, cs.len, &dd);
        mira__buf_cleanup(&cs);
        sink lossy;
        CHECK(lossy_encoded(&lossy, &d, src));
        if (d.samples == 3)
            dd.photometric = MIRA_PHOTO_YBR_ICT;
        same_values_on_threads(lossy.data, lossy.len, &dd);
        free(lossy.data);
        free(src);
    }
}
