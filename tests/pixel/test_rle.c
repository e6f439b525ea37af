/* Tests of the RLE Lossless codec: round trips, PackBits edge cases from PS3.5 G.3.1, bad input. */
#include "harness.h"

#include "pixel/codec.h"

#include <stdlib.h>

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

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
    return (size_t)d->rows * d->columns * d->samples * (d->bits_allocated / 8);
}

static bool decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                   mira_error **err)
{
    return mira__codec_rle.decode(src, len, d, dst, frame_bytes(d), NULL, err);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Fill a frame with values of `stored` bits (sign-extended if signed), as a decoder's
 * output would be: random, or runs of random length (some over 128), or constant. */
static void fill(uint8_t *p, const mira_pixel_desc *d, int kind)
{
    size_t sb = d->bits_allocated / 8, n = frame_bytes(d) / sb;
    uint64_t v = 0;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        if (kind == 0 || left == 0) {
            v = ((uint64_t)rnd() << 32 | rnd());
            left = kind == 1 ? 1 + rnd() % 300 : (kind == 2 ? SIZE_MAX : 1);
        }
        left--;
        uint64_t x = v;
        if (d->bits_stored < 64) {
            x &= ((uint64_t)1 << d->bits_stored) - 1;
            if (d->is_signed && (x >> (d->bits_stored - 1)) & 1)
                x |= ~(((uint64_t)1 << d->bits_stored) - 1);
        }
        for (size_t b = 0; b < sb; b++)
            p[i * sb + b] = (uint8_t)(x >> (8 * b));
    }
}

/* Encode, check the framing of the result, decode, compare. */
static void round_trip(const mira_pixel_desc *d, int kind)
{
    size_t n = frame_bytes(d);
    uint8_t *src = malloc(n), *back = malloc(n);
    fill(src, d, kind);
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    mira_photometric ph = MIRA_PHOTO_UNKNOWN;
    bool ok = mira__codec_rle.encode(src, n, d, &out, &ph, &err);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "encode: %s\n", mira_error_get_message(err));
        mira_error_free(err);
    } else {
        CHECK_EQ_INT(ph, d->photometric);
        CHECK_EQ_INT(out.len % 2, 0);
        unsigned nseg = (unsigned)(d->samples * (d->bits_allocated / 8));
        CHECK_EQ_INT(rd32(out.data), nseg);
        CHECK_EQ_INT(rd32(out.data + 4), 64);
        for (unsigned i = 0; i < 15; i++) {
            uint32_t off = rd32(out.data + 4 + 4 * i);
            if (i >= nseg)
                CHECK_EQ_INT(off, 0);
            else
                CHECK(off % 2 == 0 && off < out.len);
        }
        memset(back, 0xA5, n);
        ok = decode(out.data, out.len, d, back, &err);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "decode: %s\n", mira_error_get_message(err));
            mira_error_free(err);
        } else if (memcmp(src, back, n) != 0) {
            fprintf(stderr, "round trip differs: %ux%u, %u samples, %u/%u bits, kind %d\n",
                    (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples,
                    (unsigned)d->bits_allocated, (unsigned)d->bits_stored, kind);
            CHECK(false);
        }
    }
    mira__buf_cleanup(&out);
    free(src);
    free(back);
}

/* ------------------------------------------------------------------ round trips */

TEST(round_trip_all_layouts)
{
    static const uint16_t layouts[][3] = {
        /* bits allocated, bits stored, signed */
        {8, 8, 0},   {8, 8, 1},   {16, 12, 0}, {16, 12, 1}, {16, 16, 0},
        {16, 16, 1}, {32, 32, 0}, {32, 32, 1}, {32, 24, 1},
    };
    static const uint32_t sizes[][2] = {{1, 1}, {1, 7}, {7, 1}, {3, 5}, {17, 13}, {64, 300}};
    for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (uint16_t spp = 1; spp <= 3; spp += 2)
                for (int kind = 0; kind < 3; kind++) {
                    mira_pixel_desc d = desc(sizes[s][0], sizes[s][1], spp, layouts[l][0],
                                             layouts[l][1], layouts[l][2]);
                    round_trip(&d, kind);
                }
}

TEST(round_trip_64_bit_mono)
{
    mira_pixel_desc d = desc(5, 9, 1, 64, 64, false);
    round_trip(&d, 0);
    round_trip(&d, 1);
}

/* ------------------------------------------------------------------ encoder output */

/* The encoded segment of a one-sample 8-bit image, header stripped. */
static size_t encode_8bit(const uint8_t *px, uint32_t rows, uint32_t cols, uint8_t *seg, size_t cap)
{
    mira_pixel_desc d = desc(rows, cols, 1, 8, 8, false);
    mira__buf out;
    mira__buf_init(&out);
    size_t n = 0;
    if (mira__codec_rle.encode(px, (size_t)rows * cols, &d, &out, NULL, NULL) && out.len >= 64) {
        n = out.len - 64;
        if (n > cap)
            n = cap;
        memcpy(seg, out.data + 64, n);
    }
    mira__buf_cleanup(&out);
    return n;
}

TEST(encoder_runs_and_literals_follow_packbits)
{
    uint8_t seg[1024];
    /* 300 equal bytes: replicate runs of 128, 128 and 44 (headers -127, -127, -43) */
    uint8_t same[300];
    memset(same, 7, sizeof same);
    size_t n = encode_8bit(same, 1, 300, seg, sizeof seg);
    static const uint8_t want_runs[] = {0x81, 7, 0x81, 7, 0xD5, 7};
    CHECK_EQ_INT(n, sizeof want_runs);
    CHECK(n == sizeof want_runs && memcmp(seg, want_runs, n) == 0);

    /* 130 different bytes: a literal of 128 (header 127), then one of 2 (even: no pad) */
    uint8_t diff[130];
    for (int i = 0; i < 130; i++)
        diff[i] = (uint8_t)(i * 37 + 1);
    n = encode_8bit(diff, 1, 130, seg, sizeof seg);
    CHECK_EQ_INT(n, 1 + 128 + 1 + 2);
    CHECK_EQ_INT(seg[0], 127);
    CHECK(memcmp(seg + 1, diff, 128) == 0);
    CHECK_EQ_INT(seg[129], 1);
    CHECK(seg[130] == diff[128] && seg[131] == diff[129]);

    /* an odd segment gets a zero pad byte: literal header, 2 bytes, pad */
    uint8_t two[2] = {1, 2};
    n = encode_8bit(two, 1, 2, seg, sizeof seg);
    static const uint8_t want_pad[] = {0x01, 1, 2, 0x00};
    CHECK(n == sizeof want_pad && memcmp(seg, want_pad, n) == 0);

    /* runs never cross a row: two rows of three equal bytes are two runs */
    uint8_t rows2[6] = {9, 9, 9, 9, 9, 9};
    n = encode_8bit(rows2, 2, 3, seg, sizeof seg);
    static const uint8_t want_rows[] = {0xFE, 9, 0xFE, 9};
    CHECK(n == sizeof want_rows && memcmp(seg, want_rows, n) == 0);
}

TEST(encoder_segment_order_is_msb_first)
{
    /* one 16-bit pixel 0x1234: segment 0 holds 0x12, segment 1 0x34 */
    mira_pixel_desc d = desc(1, 1, 1, 16, 16, false);
    uint8_t px[2] = {0x34, 0x12};
    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__codec_rle.encode(px, 2, &d, &out, NULL, NULL));
    CHECK_EQ_INT(rd32(out.data), 2);
    uint32_t s0 = rd32(out.data + 4), s1 = rd32(out.data + 8);
    CHECK(s0 == 64 && s1 > s0 && s1 + 2 <= out.len);
    if (s1 + 2 <= out.len) {
        CHECK(out.data[s0] == 0 && out.data[s0 + 1] == 0x12); /* literal of one byte */
        CHECK(out.data[s1] == 0 && out.data[s1 + 1] == 0x34);
    }
    mira__buf_cleanup(&out);
}

TEST(encoder_rejects_wrong_buffer_size)
{
    mira_pixel_desc d = desc(4, 4, 1, 16, 16, false);
    uint8_t px[32] = {0};
    mira__buf out;
    mira__buf_init(&out);
    mira_error *err = NULL;
    CHECK(!mira__codec_rle.encode(px, 31, &d, &out, NULL, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    mira__buf_cleanup(&out);
}

/* ------------------------------------------------------------------ hand-made streams */

typedef struct stream {
    uint8_t d[2048];
    size_t n;
} stream;

/* A header with nseg segments at the given offsets. */
static void header(stream *s, uint32_t nseg, const uint32_t *off)
{
    memset(s->d, 0, 64);
    s->d[0] = (uint8_t)nseg;
    for (uint32_t i = 0; i < nseg; i++) {
        s->d[4 + 4 * i] = (uint8_t)off[i];
        s->d[5 + 4 * i] = (uint8_t)(off[i] >> 8);
    }
    s->n = 64;
}

static void put(stream *s, const uint8_t *p, size_t n)
{
    memcpy(s->d + s->n, p, n);
    s->n += n;
}

TEST(decode_packbits_edge_cases)
{
    /* 1 row of 300 8-bit pixels: a run of 128 (0x81), a -128 no-op, a literal of 128 (0x7F),
     * a run of 2 (0xFF), a literal of 1, a run of 41 (0xD8), then a pad byte */
    stream s;
    uint32_t off[1] = {64};
    header(&s, 1, off);
    uint8_t seg[300];
    size_t k = 0;
    seg[k++] = 0x81;
    seg[k++] = 0xAB;
    seg[k++] = 0x80;
    seg[k++] = 0x7F;
    for (int i = 0; i < 128; i++)
        seg[k++] = (uint8_t)i;
    seg[k++] = 0xFF;
    seg[k++] = 0x55;
    seg[k++] = 0x00;
    seg[k++] = 0x66;
    seg[k++] = 0xD8;
    seg[k++] = 0x77;
    seg[k++] = 0x00; /* pad: would be a literal needing a byte that is not there */
    put(&s, seg, k);
    uint8_t px[300];
    mira_pixel_desc d = desc(1, 300, 1, 8, 8, false);
    mira_error *err = NULL;
    bool ok = decode(s.d, s.n, &d, px, &err);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    for (int i = 0; i < 128; i++)
        CHECK_EQ_INT(px[i], 0xAB);
    for (int i = 0; i < 128; i++)
        CHECK_EQ_INT(px[128 + i], i);
    CHECK(px[256] == 0x55 && px[257] == 0x55 && px[258] == 0x66);
    for (int i = 259; i < 300; i++)
        CHECK_EQ_INT(px[i], 0x77);
}

TEST(decode_ignores_extra_output_and_trailing_bytes)
{
    /* 4 pixels wanted; the segment gives a run of 10, then garbage bytes */
    stream s;
    uint32_t off[1] = {64};
    header(&s, 1, off);
    static const uint8_t seg[] = {0xF7, 3, 0x05, 1, 2};
    put(&s, seg, sizeof seg);
    uint8_t px[4];
    mira_pixel_desc d = desc(2, 2, 1, 8, 8, false);
    CHECK(decode(s.d, s.n, &d, px, NULL));
    CHECK(px[0] == 3 && px[3] == 3);
}

TEST(decode_16bit_rgb_byte_placement)
{
    /* one RGB pixel (0x0102, 0x0304, 0x0506): six one-byte literals, MSB segment first */
    stream s;
    uint32_t off[6] = {64, 66, 68, 70, 72, 74};
    header(&s, 6, off);
    static const uint8_t seg[] = {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6};
    put(&s, seg, sizeof seg);
    uint8_t px[6];
    mira_pixel_desc d = desc(1, 1, 3, 16, 16, false);
    CHECK(decode(s.d, s.n, &d, px, NULL));
    static const uint8_t want[] = {2, 1, 4, 3, 6, 5};
    CHECK(memcmp(px, want, 6) == 0);
}

static void expect_error(const stream *s, const mira_pixel_desc *d, const char *needle)
{
    uint8_t px[64];
    mira_error *err = NULL;
    CHECK(frame_bytes(d) <= sizeof px);
    CHECK(!decode(s->d, s->n, d, px, &err));
    CHECK(err != NULL);
    if (err) {
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
        if (!strstr(mira_error_get_message(err), needle)) {
            fprintf(stderr, "message \"%s\" lacks \"%s\"\n", mira_error_get_message(err), needle);
            CHECK(false);
        }
        mira_error_free(err);
    }
}

TEST(decode_errors)
{
    mira_pixel_desc d = desc(2, 4, 1, 16, 16, false);
    stream s;
    /* segment 1 gives 5 of the 8 bytes */
    uint32_t off[2] = {64, 66};
    header(&s, 2, off);
    static const uint8_t seg[] = {0xF9, 1, 0xFC, 2};
    put(&s, seg, sizeof seg);
    expect_error(&s, &d, "segment 1");
    /* wrong segment count */
    header(&s, 3, (uint32_t[]){64, 66, 68});
    put(&s, seg, sizeof seg);
    expect_error(&s, &d, "3 segments");
    /* offset past the end */
    header(&s, 2, (uint32_t[]){64, 600});
    put(&s, seg, sizeof seg);
    expect_error(&s, &d, "offset 600");
    /* offset into the header */
    header(&s, 2, (uint32_t[]){10, 66});
    put(&s, seg, sizeof seg);
    expect_error(&s, &d, "segment 0 offset 10");
    /* decreasing offsets */
    header(&s, 2, (uint32_t[]){66, 64});
    put(&s, seg, sizeof seg);
    expect_error(&s, &d, "segment 1 offset 64");
    /* shorter than the header */
    s.n = 40;
    expect_error(&s, &d, "header");
    /* a literal cut short by the end of the last segment */
    header(&s, 2, (uint32_t[]){64, 66});
    static const uint8_t cut[] = {0xF9, 1, 0x07, 1, 2, 3};
    put(&s, cut, sizeof cut);
    expect_error(&s, &d, "segment 1");
}

TEST(decode_unsupported_layouts)
{
    stream s;
    header(&s, 1, (uint32_t[]){64});
    uint8_t px[8];
    mira_error *err = NULL;
    mira_pixel_desc d = desc(2, 4, 1, 1, 1, false);
    CHECK(!mira__codec_rle.decode(s.d, s.n, &d, px, 8, NULL, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    err = NULL;
    /* 3 samples of 64 bits would need 24 segments */
    d = desc(1, 1, 3, 64, 64, false);
    uint8_t big[24];
    CHECK(!mira__codec_rle.decode(s.d, s.n, &d, big, 24, NULL, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
}

TEST(decode_survives_every_truncation_and_corruption)
{
    mira_pixel_desc d = desc(9, 11, 3, 16, 16, false);
    size_t n = frame_bytes(&d);
    uint8_t *src = malloc(n), *back = malloc(n);
    fill(src, &d, 1);
    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__codec_rle.encode(src, n, &d, &out, NULL, NULL));
    for (size_t len = 0; len < out.len; len++) {
        /* copy to an exact-size buffer so that over-reads show under AddressSanitizer */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, out.data, len);
        mira_error *err = NULL;
        bool ok = mira__codec_rle.decode(cut, len, &d, back, n, NULL, &err);
        /* only the last segment's pad byte may go */
        if (len + 1 < out.len)
            CHECK(!ok && err);
        mira_error_free(err);
        free(cut);
    }
    for (size_t i = 0; i < out.len; i++) {
        uint8_t save = out.data[i];
        out.data[i] ^= (uint8_t)(1 + rnd() % 255);
        mira_error *err = NULL;
        if (!mira__codec_rle.decode(out.data, out.len, &d, back, n, NULL, &err))
            CHECK(err != NULL);
        mira_error_free(err);
        out.data[i] = save;
    }
    mira__buf_cleanup(&out);
    free(src);
    free(back);
}
