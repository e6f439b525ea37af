/* Tests of the JPEG-LS codec (own decoder, CharLS encoder) and the JPEG DCT codec's checks. */
#include "harness.h"

#include "pixel/codec.h"

#include <stdlib.h>
#include <time.h>

#include <charls/charls.h>

/*
 * The reference for the decoder is CharLS 2.4.1 (Debian's), an independent implementation
 * used here on valid streams only: streams it encodes (every bit depth, component count,
 * interleave mode, NEAR, preset parameters, colour transform, SPIFF and other segments) must
 * decode to the source values (lossless) or to exactly what CharLS decodes (near-lossless:
 * the arithmetic is defined). Restart intervals, which CharLS 2.4 does not write, are made by
 * encoding strips of rows as separate images and joining their scan data with RSTm markers:
 * a restart resets the coder to the state an image starts in (T.87 A.2.1). Bad input
 * (every truncation, corrupt bytes) must fail fast with an error, never hang or crash (the
 * ASan build checks reads and writes).
 */

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
        {300, 2, 1, 16, 10, false}, {6, 7, 3, 16, 8, false},   {9, 5, 1, 16, 5, true},
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

/* ------------------------------------------------------------------ CharLS as the reference */

/* An image of values 0..maxval, interleaved (component c of pixel i at [i * comps + c]):
 * blocks of flat areas (runs), noise over the whole range, smooth ramps with a little noise,
 * left-copies with a few changes, and the extremes, so that every coding path is taken. */
static uint16_t *make_image(unsigned w, unsigned h, unsigned comps, unsigned maxval)
{
    size_t n = (size_t)w * h * comps;
    uint16_t *v = malloc((n ? n : 1) * sizeof *v);
    unsigned flat = rnd() % (maxval + 1);
    for (unsigned y = 0; y < h; y++)
        for (unsigned x = 0; x < w; x++)
            for (unsigned c = 0; c < comps; c++) {
                size_t i = ((size_t)y * w + x) * comps + c;
                long val;
                switch ((x / 6 + y / 5 + c) % 5) {
                case 0:
                    val = (long)flat;
                    break;
                case 1:
                    val = (long)(rnd() % (maxval + 1));
                    break;
                case 2:
                    val = (long)((uint64_t)maxval * (x + y) / (w + h)) + (long)(rnd() % 5) - 2;
                    break;
                case 3:
                    val = x > 0 && rnd() % 8 ? (long)v[i - comps] : (long)(rnd() % (maxval + 1));
                    break;
                default:
                    val = rnd() % 2 ? (long)maxval : 0;
                    break;
                }
                v[i] = (uint16_t)(val < 0 ? 0 : val > (long)maxval ? (long)maxval : val);
            }
    return v;
}

typedef struct ls_opts {
    int ilv, near, xform;
    charls_jpegls_pc_parameters pc; /* all 0: defaults */
    bool spiff, comment, app;
} ls_opts;

/* Encode interleaved values with CharLS (planar input for interleave mode none). */
static uint8_t *ls_encode(const uint16_t *v, unsigned w, unsigned h, unsigned bits,
                          unsigned comps, const ls_opts *o, size_t *len)
{
    size_t n = (size_t)w * h * comps, sb = bits > 8 ? 2 : 1;
    uint8_t *raw = malloc(n * sb);
    for (size_t i = 0; i < n; i++) {
        size_t pix = i / comps, c = i % comps;
        size_t j = o->ilv == 0 ? c * ((size_t)w * h) + pix : i;
        raw[j * sb] = (uint8_t)v[i];
        if (sb == 2)
            raw[j * sb + 1] = (uint8_t)(v[i] >> 8);
    }
    charls_jpegls_encoder *enc = charls_jpegls_encoder_create();
    charls_frame_info fi = {.width = w, .height = h, .bits_per_sample = (int32_t)bits,
                            .component_count = (int32_t)comps};
    size_t cap = 0, written = 0;
    uint8_t *out = NULL;
    bool ok = charls_jpegls_encoder_set_frame_info(enc, &fi) == 0 &&
              charls_jpegls_encoder_set_near_lossless(enc, o->near) == 0 &&
              charls_jpegls_encoder_set_interleave_mode(enc, (charls_interleave_mode)o->ilv) ==
                  0 &&
              charls_jpegls_encoder_set_color_transformation(
                  enc, (charls_color_transformation)o->xform) == 0 &&
              charls_jpegls_encoder_set_preset_coding_parameters(enc, &o->pc) == 0 &&
              charls_jpegls_encoder_get_estimated_destination_size(enc, &cap) == 0;
    cap += 4096;
    if (ok && (out = malloc(cap)) != NULL &&
        charls_jpegls_encoder_set_destination_buffer(enc, out, cap) == 0) {
        if (o->spiff)
            ok = ok && charls_jpegls_encoder_write_standard_spiff_header(
                           enc, comps == 3 ? CHARLS_SPIFF_COLOR_SPACE_RGB
                                           : CHARLS_SPIFF_COLOR_SPACE_GRAYSCALE,
                           CHARLS_SPIFF_RESOLUTION_UNITS_DOTS_PER_INCH, 72, 72) == 0;
        if (o->comment)
            ok = ok && charls_jpegls_encoder_write_comment(enc, "mira test \xFF\xD9", 12) == 0;
        if (o->app)
            ok = ok && charls_jpegls_encoder_write_application_data(enc, 3, "\xFF\xDA\x00", 3) ==
                           0;
        ok = ok && charls_jpegls_encoder_encode_from_buffer(enc, raw, n * sb, 0) == 0 &&
             charls_jpegls_encoder_get_bytes_written(enc, &written) == 0;
    } else {
        ok = false;
    }
    charls_jpegls_encoder_destroy(enc);
    free(raw);
    if (!ok) {
        free(out);
        return NULL;
    }
    *len = written;
    return out;
}

/* CharLS's decoding of a (valid) stream, interleaved. */
static bool ls_decode(const uint8_t *s, size_t len, unsigned w, unsigned h, unsigned bits,
                      unsigned comps, uint16_t *v)
{
    size_t n = (size_t)w * h * comps, sb = bits > 8 ? 2 : 1;
    uint8_t *raw = malloc(n * sb);
    charls_jpegls_decoder *dec = charls_jpegls_decoder_create();
    charls_interleave_mode mode = CHARLS_INTERLEAVE_MODE_NONE;
    charls_jpegls_errc rc;
    bool ok = (rc = charls_jpegls_decoder_set_source_buffer(dec, s, len)) == 0 &&
              (rc = charls_jpegls_decoder_read_header(dec)) == 0 &&
              (rc = charls_jpegls_decoder_get_interleave_mode(dec, &mode)) == 0 &&
              (rc = charls_jpegls_decoder_decode_to_buffer(dec, raw, n * sb, 0)) == 0;
    charls_jpegls_decoder_destroy(dec);
    if (!ok)
        fprintf(stderr, "CharLS: %s\n", charls_get_error_message(rc));
    for (size_t i = 0; ok && i < n; i++) {
        size_t pix = i / comps, c = i % comps;
        size_t j = mode == CHARLS_INTERLEAVE_MODE_NONE ? c * ((size_t)w * h) + pix : i;
        v[i] = (uint16_t)(sb == 2 ? raw[j * 2] | raw[j * 2 + 1] << 8 : raw[j]);
    }
    free(raw);
    return ok;
}

/* mira's decoding into values; false with *err set on failure. */
static bool mira_values(const uint8_t *s, size_t len, unsigned w, unsigned h, unsigned bits,
                        unsigned comps, uint16_t *v, mira_error **err)
{
    mira_pixel_desc d = desc(h, w, (uint16_t)comps, bits > 8 ? 16 : 8, (uint16_t)bits, false);
    size_t n = mira_pixel_frame_bytes(&d), sb = bits > 8 ? 2 : 1;
    uint8_t *dst = malloc(n);
    mira_photometric ph = d.photometric;
    bool ok = mira__codec_jpegls.decode(s, len, &d, dst, n, &ph, err);
    for (size_t i = 0; ok && i < n / sb; i++)
        v[i] = (uint16_t)(sb == 2 ? dst[i * 2] | dst[i * 2 + 1] << 8 : dst[i]);
    free(dst);
    return ok;
}

/* Count of 0xFF bytes in a stream (marker stuffing in the scan data). */
static size_t count_ff(const uint8_t *s, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        k += s[i] == 0xFF;
    return k;
}

/* The offset of a stream's first SOS segment, or 0. */
static size_t find_sos(const uint8_t *s, size_t len)
{
    for (size_t i = 2; i + 1 < len; i++)
        if (s[i] == 0xFF && s[i + 1] == 0xDA)
            return i;
    return 0;
}

static void put(uint8_t *out, size_t *n, const uint8_t *p, size_t len)
{
    memcpy(out + *n, p, len);
    *n += len;
}

static int charls_cannot; /* streams CharLS wrote but could not decode */

/* Encode with CharLS, decode with both, compare: mira must give the source (lossless) or
 * exactly CharLS's values, which are within NEAR of the source. Returns false on mismatch. */
static bool check_against_charls(const uint16_t *v, unsigned w, unsigned h, unsigned bits,
                                 unsigned comps, const ls_opts *o, size_t *ffs)
{
    size_t len, n = (size_t)w * h * comps;
    int cannot_before = charls_cannot;
    uint8_t *s = ls_encode(v, w, h, bits, comps, o, &len);
    if (!s) {
        fprintf(stderr, "CharLS refused %ux%u %u bits %u comps ilv %d near %d\n", w, h, bits,
                comps, o->ilv, o->near);
        return false;
    }
    if (ffs)
        *ffs += count_ff(s, len);
    uint16_t *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    mira_error *err = NULL;
    bool ok = true;
    if (!ls_decode(s, len, w, h, bits, comps, ref)) {
        /* CharLS 2.4.1 cannot decode some of its own streams (two components line-interleaved;
         * sample interleaving with a RESET other than 64): lossless ones have the source */
        charls_cannot++;
        if (o->near == 0)
            memcpy(ref, v, n * sizeof *v);
        else
            ok = false;
    }
    if (ok && !mira_values(s, len, w, h, bits, comps, got, &err)) {
        fprintf(stderr, "mira: %s\n", mira_error_get_message(err));
        ok = false;
    }
    mira_error_free(err);
    for (size_t i = 0; ok && i < n; i++) {
        int dv = (int)ref[i] - (int)v[i];
        if (got[i] != ref[i] || (o->near == 0 && dv != 0) || dv > o->near || dv < -o->near) {
            fprintf(stderr, "value %zu (x %zu, y %zu, c %zu): mira %u, CharLS %u, source %u\n", i,
                    i / comps % w, i / comps / w, i % comps, got[i], ref[i], v[i]);
            ok = false;
        }
    }
    if (!ok)
        fprintf(stderr, "  in %ux%u, %u bits, %u components, ilv %d, NEAR %d, transform %d, "
                        "presets %d %d %d %d %d\n",
                w, h, bits, comps, o->ilv, o->near, o->xform, o->pc.maximum_sample_value,
                o->pc.threshold1, o->pc.threshold2, o->pc.threshold3, o->pc.reset_value);
    free(ref);
    free(got);
    free(s);
    return ok || (o->near != 0 && charls_cannot > cannot_before);
}

TEST(jpegls_decodes_what_charls_encodes)
{
    static const unsigned sizes[][2] = {{1, 1}, {1, 23}, {29, 1}, {13, 7}, {31, 17}, {64, 40}};
    static const int nears[] = {0, 1, 2, 3, 5, 10};
    static const unsigned comp_counts[] = {1, 2, 3, 4}; /* 2: see below */
    int cases = 0, failed = 0;
    size_t ffs = 0;
    for (unsigned bits = 2; bits <= 16; bits++)
        for (size_t ci = 0; ci < 4; ci++)
            for (int ilv = 0; ilv <= 2; ilv++)
                for (size_t ni = 0; ni < sizeof nears / sizeof nears[0]; ni++)
                    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                        unsigned comps = comp_counts[ci], maxval = (1u << bits) - 1;
                        int near = nears[ni];
                        if ((comps == 1 && ilv != 0) || near > (int)maxval / 2)
                            continue;
                        /* 2 and 4 components: fewer cases */
                        if ((comps == 2 || comps == 4) && (bits % 4 != 0 || si % 2))
                            continue;
                        /* CharLS 2.4.1 does not code two components (its streams hold a
                         * couple of bytes whatever the image, and it cannot decode them) */
                        if (comps == 2)
                            continue;
                        ls_opts o = {.ilv = ilv, .near = near};
                        uint16_t *v = make_image(sizes[si][0], sizes[si][1], comps, maxval);
                        cases++;
                        if (!check_against_charls(v, sizes[si][0], sizes[si][1], bits, comps, &o,
                                                  &ffs) &&
                            ++failed > 5) {
                            free(v);
                            goto done;
                        }
                        free(v);
                    }
done:
    printf("     %d streams compared, %d differ; %zu 0xFF bytes (stuffing) in them; CharLS could "
           "not decode %d of its own (compared with the source if lossless)\n",
           cases, failed, ffs, charls_cannot);
    CHECK(failed == 0);
    CHECK(cases > 1500);
    CHECK(ffs > 1000);
}

TEST(jpegls_large_images_against_charls)
{
    /* enough samples for RESET halvings, long runs (J up to 15) and every context */
    static const struct {
        unsigned w, h, bits, comps;
        int ilv, near;
    } cases[] = {
        {512, 300, 16, 1, 0, 0}, {512, 300, 12, 1, 0, 0}, {400, 300, 8, 3, 2, 0},
        {400, 300, 8, 3, 1, 0},  {300, 200, 16, 3, 0, 0}, {512, 300, 12, 1, 0, 3},
        {400, 300, 8, 3, 2, 2},  {257, 255, 10, 3, 1, 7}, {1000, 20, 16, 1, 0, 255},
        {3000, 3, 8, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned maxval = (1u << cases[i].bits) - 1;
        uint16_t *v = make_image(cases[i].w, cases[i].h, cases[i].comps, maxval);
        if (i == 9) /* one long flat line: runs of 2^15 */
            for (size_t k = 0; k < (size_t)cases[i].w * cases[i].h; k++)
                v[k] = k < 2 * cases[i].w + 100 ? 77 : v[k];
        ls_opts o = {.ilv = cases[i].ilv, .near = cases[i].near};
        CHECK(check_against_charls(v, cases[i].w, cases[i].h, cases[i].bits, cases[i].comps, &o,
                                   NULL));
        free(v);
    }
}

TEST(jpegls_preset_coding_parameters)
{
    /* custom thresholds and RESET (LSE type 1), and MAXVAL below 2^P - 1 */
    static const struct {
        unsigned bits;
        int near;
        charls_jpegls_pc_parameters pc;
    } cases[] = {
        {8, 0, {0, 1, 2, 3, 0}},        {8, 0, {0, 10, 20, 40, 0}},     {8, 0, {0, 0, 0, 0, 3}},
        {8, 0, {0, 0, 0, 0, 255}},      {12, 0, {0, 18, 67, 276, 32}},  {16, 0, {0, 3, 7, 21, 100}},
        {12, 2, {0, 9, 19, 30, 64}},    {8, 3, {0, 4, 5, 6, 10}},       {12, 0, {1023, 0, 0, 0, 0}},
        {12, 0, {255, 0, 0, 0, 0}},     {16, 0, {4095, 0, 0, 0, 0}},    {16, 1, {8191, 0, 0, 0, 0}},
        {10, 0, {511, 5, 9, 13, 17}},   {2, 0, {0, 1, 2, 3, 3}},        {16, 0, {0, 0, 0, 0, 7}},
    };
    /* CharLS 2.4.1 crashes encoding sample-interleaved components with a RESET other than 64
     * (it takes a one-component coder for them): those are coded line-interleaved. Its MAXVAL
     * below 2^P - 1 is not the standard's (RANGE stays 2^P): the decoder's second reading. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int mode = 0; mode < 3; mode++) {
            unsigned comps = mode ? 3 : 1;
            int ilv = mode == 2 && cases[i].pc.reset_value != 0 ? 1 : mode;
            unsigned maxval = cases[i].pc.maximum_sample_value
                                  ? (unsigned)cases[i].pc.maximum_sample_value
                                  : (1u << cases[i].bits) - 1;
            uint16_t *v = make_image(37, 29, comps, maxval);
            ls_opts o = {.ilv = ilv, .near = cases[i].near, .pc = cases[i].pc};
            CHECK(check_against_charls(v, 37, 29, cases[i].bits, comps, &o, NULL));
            free(v);
        }
}

TEST(jpegls_maxval_below_the_precision)
{
    /* T.87: RANGE, bpp and LIMIT come from MAXVAL. A P-bit frame with MAXVAL 2^n - 1 is thus
     * coded as an n-bit frame with default parameters: CharLS's n-bit stream, its SOF set to
     * P bits and an LSE with MAXVAL 2^n - 1 added, must decode to the same values. */
    static const unsigned cases[][2] = {{10, 12}, {8, 12}, {12, 16}, {8, 16}, {4, 8}, {2, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int near = 0; near <= 2; near += 2) {
            unsigned n = cases[i][0], P = cases[i][1], maxval = (1u << n) - 1;
            if (near > (int)maxval / 2)
                continue;
            uint16_t *v = make_image(29, 17, 1, maxval);
            ls_opts o = {.near = near};
            size_t len;
            uint8_t *s = ls_encode(v, 29, 17, n, 1, &o, &len);
            uint16_t *ref = malloc(29 * 17 * sizeof *ref), *got = malloc(29 * 17 * sizeof *got);
            CHECK(ls_decode(s, len, 29, 17, n, 1, ref));
            /* SOI and SOF (15 bytes), CharLS's own LSE (written above 12 bits) left out */
            size_t sos = find_sos(s, len), tl = 0;
            uint8_t *t = malloc(len + 15);
            const uint8_t lse[15] = {0xFF, 0xF8, 0x00, 0x0D, 0x01, (uint8_t)(maxval >> 8),
                                     (uint8_t)maxval, 0, 0, 0, 0, 0, 0, 0, 0};
            put(t, &tl, s, 15);
            put(t, &tl, lse, 15);
            put(t, &tl, s + sos, len - sos);
            t[6] = (uint8_t)P;
            mira_error *err = NULL;
            bool ok = mira_values(t, tl, 29, 17, P, 1, got, &err);
            if (!ok)
                fprintf(stderr, "MAXVAL %u in %u bits: %s\n", maxval, P, mira_error_get_message(err));
            CHECK(ok);
            CHECK(ok && memcmp(got, ref, 29 * 17 * sizeof *got) == 0);
            CHECK(near || memcmp(ref, v, 29 * 17 * sizeof *v) == 0);
            mira_error_free(err);
            free(t);
            free(ref);
            free(got);
            free(s);
            free(v);
        }
}

/* The marker segments and scans of a stream (as CharLS writes them: no restart markers). */
typedef struct ls_part {
    size_t off, len;  /* a marker segment, or a scan header */
    size_t data, end; /* for SOS: the scan's data [data, end) */
    unsigned code;
} ls_part;

static size_t ls_parts(const uint8_t *s, size_t len, ls_part *parts, size_t max)
{
    size_t pos = 2, n = 0;
    while (pos + 4 <= len && n < max) {
        unsigned code = s[pos + 1];
        if (code == 0xD9)
            break;
        size_t L = (size_t)s[pos + 2] << 8 | s[pos + 3];
        ls_part p = {.off = pos, .len = L + 2, .code = code};
        pos += L + 2;
        if (code == 0xDA) {
            p.data = pos;
            while (pos + 1 < len && !(s[pos] == 0xFF && s[pos + 1] >= 0x80))
                pos++;
            p.end = pos;
        }
        parts[n++] = p;
    }
    return n;
}

/* A stream with a restart interval of `rows` lines: strips of `rows` lines encoded alone by
 * CharLS, their scan data joined by RSTm (T.87 C.2.5: the coder restarts as at a scan's
 * start). */
static uint8_t *restart_stream(const uint16_t *v, unsigned w, unsigned h, unsigned bits,
                               unsigned comps, const ls_opts *o, unsigned rows, size_t *len)
{
    unsigned strips = (h + rows - 1) / rows;
    uint8_t **s = calloc(strips, sizeof *s);
    size_t *sl = calloc(strips, sizeof *sl), total = 64;
    for (unsigned i = 0; i < strips; i++) {
        unsigned sh = i + 1 < strips ? rows : h - i * rows;
        s[i] = ls_encode(v + (size_t)i * rows * w * comps, w, sh, bits, comps, o, &sl[i]);
        total += sl[i] + 4;
    }
    uint8_t *out = malloc(total);
    size_t n = 0;
    ls_part parts[16], pi[16];
    size_t np = ls_parts(s[0], sl[0], parts, 16);
    put(out, &n, s[0], 2); /* SOI */
    bool dri = false;
    for (size_t k = 0; k < np; k++) {
        if (parts[k].code == 0xDA && !dri) {
            const uint8_t seg[6] = {0xFF, 0xDD, 0x00, 0x04, (uint8_t)(rows >> 8), (uint8_t)rows};
            put(out, &n, seg, 6);
            dri = true;
        }
        size_t at = n;
        put(out, &n, s[0] + parts[k].off, parts[k].len);
        if (parts[k].code == 0xF7) { /* the whole height */
            out[at + 5] = (uint8_t)(h >> 8);
            out[at + 6] = (uint8_t)h;
        }
        if (parts[k].code != 0xDA)
            continue;
        for (unsigned i = 0; i < strips; i++) {
            size_t m = ls_parts(s[i], sl[i], pi, 16);
            (void)m;
            put(out, &n, s[i] + pi[k].data, pi[k].end - pi[k].data);
            if (i + 1 < strips) {
                const uint8_t rst[2] = {0xFF, (uint8_t)(0xD0 + i % 8)};
                put(out, &n, rst, 2);
            }
        }
    }
    const uint8_t eoi[2] = {0xFF, 0xD9};
    put(out, &n, eoi, 2);
    for (unsigned i = 0; i < strips; i++)
        free(s[i]);
    free(s);
    free(sl);
    *len = n;
    return out;
}

TEST(jpegls_restart_intervals)
{
    static const struct {
        unsigned w, h, bits, comps, rows;
        int ilv, near;
    } cases[] = {
        {23, 50, 8, 1, 4, 0, 0},  {23, 50, 12, 1, 1, 0, 0}, {17, 37, 16, 3, 5, 2, 0},
        {17, 37, 8, 3, 3, 1, 0},  {17, 37, 8, 3, 7, 0, 0},  {40, 45, 12, 1, 4, 0, 3},
        {19, 40, 8, 3, 4, 2, 2},  {1, 20, 8, 1, 2, 0, 0},   {30, 9, 10, 3, 9, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned w = cases[i].w, h = cases[i].h, bits = cases[i].bits, comps = cases[i].comps;
        size_t n = (size_t)w * h * comps, len;
        uint16_t *v = make_image(w, h, comps, (1u << bits) - 1);
        ls_opts o = {.ilv = cases[i].ilv, .near = cases[i].near};
        uint8_t *s = restart_stream(v, w, h, bits, comps, &o, cases[i].rows, &len);
        uint16_t *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
        mira_error *err = NULL;
        CHECK(ls_decode(s, len, w, h, bits, comps, ref));
        bool ok = mira_values(s, len, w, h, bits, comps, got, &err);
        if (!ok)
            fprintf(stderr, "restart case %zu: %s\n", i, mira_error_get_message(err));
        CHECK(ok);
        mira_error_free(err);
        bool same = ok && memcmp(got, ref, n * sizeof *ref) == 0;
        if (o.near == 0)
            same = same && memcmp(got, v, n * sizeof *v) == 0;
        if (!same)
            fprintf(stderr, "restart case %zu: values differ\n", i);
        CHECK(same);
        /* a wrong restart marker is named */
        for (size_t k = len - 3; k > 2; k--)
            if (s[k] == 0xFF && s[k + 1] == 0xD1) {
                s[k + 1] = 0xD5;
                err = NULL;
                CHECK(!mira_values(s, len, w, h, bits, comps, got, &err));
                CHECK(err && strstr(mira_error_get_message(err), "RST1") != NULL);
                mira_error_free(err);
                break;
            }
        free(ref);
        free(got);
        free(s);
        free(v);
    }
}

TEST(jpegls_skips_spiff_comment_and_application_segments)
{
    for (unsigned comps = 1; comps <= 3; comps += 2) {
        uint16_t *v = make_image(21, 13, comps, 4095);
        ls_opts o = {.ilv = comps == 3 ? 1 : 0, .spiff = true, .comment = true, .app = true};
        CHECK(check_against_charls(v, 21, 13, 12, comps, &o, NULL));
        free(v);
    }
}

TEST(jpegls_colour_transforms)
{
    for (int xform = 1; xform <= 3; xform++)
        for (unsigned bits = 8; bits <= 16; bits += 8)
            for (int ilv = 0; ilv <= 2; ilv++) {
                uint16_t *v = make_image(33, 19, 3, (1u << bits) - 1);
                ls_opts o = {.ilv = ilv, .xform = xform};
                CHECK(check_against_charls(v, 33, 19, bits, 3, &o, NULL));
                free(v);
            }
    /* HP1 on 12-bit data, which CharLS does not write: refused, clearly */
    uint16_t *v = make_image(8, 8, 3, 4095);
    ls_opts o = {.ilv = 2};
    size_t len;
    uint8_t *s = ls_encode(v, 8, 8, 12, 3, &o, &len);
    uint8_t *t = malloc(len + 9);
    const uint8_t mrfx[9] = {0xFF, 0xE8, 0x00, 0x07, 'm', 'r', 'f', 'x', 1};
    memcpy(t, s, 2);
    memcpy(t + 2, mrfx, 9);
    memcpy(t + 11, s + 2, len - 2);
    uint16_t got[8 * 8 * 3];
    mira_error *err = NULL;
    CHECK(!mira_values(t, len + 9, 8, 8, 12, 3, got, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    CHECK(err && strstr(mira_error_get_message(err), "HP1") != NULL);
    mira_error_free(err);
    free(t);
    free(s);
    free(v);
}

TEST(jpegls_refuses_what_it_does_not_decode)
{
    uint16_t *v = make_image(8, 8, 1, 255);
    ls_opts o = {0};
    size_t len;
    uint8_t *s = ls_encode(v, 8, 8, 8, 1, &o, &len);
    size_t sos = find_sos(s, len);
    uint16_t got[64];
    static const struct {
        size_t at;        /* offset from SOS */
        uint8_t value;
        mira_error_code code;
        const char *says;
    } cases[] = {
        {6, 3, MIRA_ERR_UNSUPPORTED, "mapping table"}, /* Tm */
        {9, 2, MIRA_ERR_UNSUPPORTED, "point transform"},
        {8, 3, MIRA_ERR_INVALID, "interleave"},
        {7, 200, MIRA_ERR_INVALID, "NEAR"},
        {5, 9, MIRA_ERR_INVALID, "component 9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *t = malloc(len);
        memcpy(t, s, len);
        t[sos + cases[i].at] = cases[i].value;
        mira_error *err = NULL;
        CHECK(!mira_values(t, len, 8, 8, 8, 1, got, &err));
        CHECK(err && mira_error_get_code(err) == cases[i].code);
        if (err && !strstr(mira_error_get_message(err), cases[i].says))
            fprintf(stderr, "case %zu: %s\n", i, mira_error_get_message(err));
        CHECK(err && strstr(mira_error_get_message(err), cases[i].says) != NULL);
        mira_error_free(err);
        free(t);
    }
    /* JPEG-LS part 2 and other JPEG processes */
    uint8_t *t = malloc(len);
    memcpy(t, s, len);
    t[3] = 0xF9;
    mira_error *err = NULL;
    CHECK(!mira_values(t, len, 8, 8, 8, 1, got, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    t[3] = 0xC3;
    err = NULL;
    CHECK(!mira_values(t, len, 8, 8, 8, 1, got, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    /* a frame height of 0 (given by DNL) takes the data set's */
    memcpy(t, s, len);
    t[7] = t[8] = 0;
    err = NULL;
    CHECK(mira_values(t, len, 8, 8, 8, 1, got, &err));
    bool same = true;
    for (int i = 0; i < 64; i++)
        same = same && got[i] == v[i];
    CHECK(same);
    mira_error_free(err);
    free(t);
    free(s);
    free(v);
}

/* Every cut of a stream, with and without an EOI appended, fails at once; cuts inside the
 * scan data name the row where the data ends. Returns the cuts tried. */
static size_t check_cuts(const uint8_t *s, size_t len, unsigned w, unsigned h, unsigned bits,
                         unsigned comps, bool one_scan)
{
    size_t n = (size_t)w * h * comps, tried = 0, sos = find_sos(s, len);
    size_t data = sos + 4 + ((size_t)s[sos + 2] << 8 | s[sos + 3]) - 2;
    uint16_t *got = malloc(n * sizeof *got);
    uint8_t *t = malloc(len + 2);
    for (size_t cut = 0; cut < len; cut++)
        for (int eoi = 0; eoi < 2; eoi++) {
            memcpy(t, s, cut);
            if (eoi) {
                t[cut] = 0xFF;
                t[cut + 1] = 0xD9;
            }
            mira_error *err = NULL;
            bool ok = mira_values(t, cut + 2 * (size_t)eoi, w, h, bits, comps, got, &err);
            tried++;
            /* the last bytes of the data may hold only padding bits */
            if (cut + 3 < len) {
                if (ok)
                    fprintf(stderr, "cut %zu of %zu (eoi %d) decodes\n", cut, len, eoi);
                CHECK(!ok);
            }
            CHECK(ok || (err && mira_error_get_message(err)[0]));
            if (!ok && one_scan && cut > data && cut + 3 < len &&
                !strstr(mira_error_get_message(err), "data ends at row")) {
                fprintf(stderr, "cut %zu of %zu (eoi %d): %s\n", cut, len, eoi,
                        mira_error_get_message(err));
                mira_test_failures++;
            }
            mira_error_free(err);
        }
    free(t);
    free(got);
    return tried;
}

TEST(jpegls_truncations_fail_fast)
{
    /* the frames that made CharLS 2.4.1 spin: 8x8 to 27x8, 12 bits, random values */
    double t0 = now();
    size_t tried = 0;
    for (unsigned w = 8; w <= 27; w++) {
        uint16_t *v = malloc((size_t)w * 8 * sizeof *v);
        for (size_t i = 0; i < (size_t)w * 8; i++)
            v[i] = (uint16_t)(rnd() & 4095);
        ls_opts o = {0};
        size_t len;
        uint8_t *s = ls_encode(v, w, 8, 12, 1, &o, &len);
        tried += check_cuts(s, len, w, 8, 12, 1, true);
        free(s);
        free(v);
    }
    /* colour, near-lossless, one scan per component, restart intervals */
    static const struct {
        unsigned w, h, bits, comps;
        int ilv, near;
        unsigned restart;
    } cases[] = {
        {19, 11, 8, 3, 2, 0, 0}, {19, 11, 16, 3, 1, 2, 0}, {19, 11, 8, 3, 0, 0, 0},
        {19, 16, 12, 1, 0, 0, 3}, {15, 12, 8, 3, 2, 1, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t *v = make_image(cases[i].w, cases[i].h, cases[i].comps, (1u << cases[i].bits) - 1);
        ls_opts o = {.ilv = cases[i].ilv, .near = cases[i].near};
        size_t len;
        uint8_t *s = cases[i].restart ? restart_stream(v, cases[i].w, cases[i].h, cases[i].bits,
                                                       cases[i].comps, &o, cases[i].restart, &len)
                                      : ls_encode(v, cases[i].w, cases[i].h, cases[i].bits,
                                                  cases[i].comps, &o, &len);
        tried += check_cuts(s, len, cases[i].w, cases[i].h, cases[i].bits, cases[i].comps,
                            cases[i].ilv != 0 || cases[i].comps == 1);
        free(s);
        free(v);
    }
    double dt = now() - t0;
    printf("     %zu truncated streams in %.3f s\n", tried, dt);
    CHECK(dt < 20); /* CharLS 2.4.1 took about 10 s for each of many of these */
}

TEST(jpegls_corrupt_bytes_never_hang)
{
    double t0 = now();
    size_t tried = 0, decoded = 0;
    static const struct {
        unsigned w, h, bits, comps;
        int ilv, near;
    } cases[] = {
        {27, 8, 12, 1, 0, 0}, {16, 16, 8, 3, 2, 0}, {16, 16, 16, 3, 1, 3}, {16, 9, 8, 3, 0, 0},
        {64, 4, 2, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned w = cases[i].w, h = cases[i].h, bits = cases[i].bits, comps = cases[i].comps;
        uint16_t *v = make_image(w, h, comps, (1u << bits) - 1);
        ls_opts o = {.ilv = cases[i].ilv, .near = cases[i].near};
        size_t len, n = (size_t)w * h * comps;
        uint8_t *s = ls_encode(v, w, h, bits, comps, &o, &len);
        uint8_t *t = malloc(len);
        uint16_t *got = malloc(n * sizeof *got);
        for (int k = 0; k < 3000; k++) {
            memcpy(t, s, len);
            int flips = 1 + (int)(rnd() % 4);
            for (int f = 0; f < flips; f++) {
                size_t at = rnd() % len;
                switch (rnd() % 4) {
                case 0:
                    t[at] = (uint8_t)rnd();
                    break;
                case 1:
                    t[at] = 0xFF;
                    break;
                default:
                    t[at] ^= (uint8_t)(1u << (rnd() % 8));
                    break;
                }
            }
            mira_error *err = NULL;
            if (mira_values(t, len, w, h, bits, comps, got, &err))
                decoded++;
            else
                CHECK(err && mira_error_get_message(err)[0]);
            mira_error_free(err);
            tried++;
        }
        free(got);
        free(t);
        free(s);
        free(v);
    }
    double dt = now() - t0;
    printf("     %zu corrupt streams in %.3f s (%zu decoded to some image)\n", tried, dt, decoded);
    CHECK(dt < 20);
}

/* ------------------------------------------------------------------ speed */

/* A CT-like slice: air (0, runs), a body of soft tissue with noise, a ring of bone. */
static uint16_t *ct_slice(unsigned w, unsigned h)
{
    uint16_t *v = malloc((size_t)w * h * sizeof *v);
    for (unsigned y = 0; y < h; y++)
        for (unsigned x = 0; x < w; x++) {
            double dx = ((double)x - w / 2.0) / (w * 0.42), dy = ((double)y - h / 2.0) / (h * 0.36);
            double r = dx * dx + dy * dy;
            int val = 0;
            if (r < 1.0)
                val = 1000 + (int)(40 * dx) + (int)(rnd() % 41) - 20;
            if (r > 0.8 && r < 0.9)
                val = 1800 + (int)(rnd() % 201);
            if (r < 0.05)
                val = 1060 + (int)(rnd() % 11);
            v[(size_t)y * w + x] = (uint16_t)val;
        }
    return v;
}

/* MB/s of decoded samples (2 bytes each above 8 bits) for mira and CharLS on one stream. */
static void race(const char *name, const uint16_t *v, unsigned w, unsigned h, unsigned bits,
                 unsigned comps, int ilv, int reps)
{
    ls_opts o = {.ilv = ilv};
    size_t len, n = (size_t)w * h * comps, sb = bits > 8 ? 2 : 1;
    uint8_t *s = ls_encode(v, w, h, bits, comps, &o, &len);
    uint16_t *got = malloc(n * sizeof *got);
    mira_pixel_desc d = desc(h, w, (uint16_t)comps, bits > 8 ? 16 : 8, (uint16_t)bits, false);
    uint8_t *dst = malloc(n * sb);
    double best_m = 1e9, best_c = 1e9;
    for (int r = 0; r < reps; r++) {
        mira_photometric ph = d.photometric;
        double t0 = now();
        bool ok = mira__codec_jpegls.decode(s, len, &d, dst, n * sb, &ph, NULL);
        double t1 = now();
        CHECK(ok);
        charls_jpegls_decoder *dec = charls_jpegls_decoder_create();
        ok = charls_jpegls_decoder_set_source_buffer(dec, s, len) == 0 &&
             charls_jpegls_decoder_read_header(dec) == 0 &&
             charls_jpegls_decoder_decode_to_buffer(dec, dst, n * sb, 0) == 0;
        charls_jpegls_decoder_destroy(dec);
        double t2 = now();
        CHECK(ok);
        best_m = t1 - t0 < best_m ? t1 - t0 : best_m;
        best_c = t2 - t1 < best_c ? t2 - t1 : best_c;
    }
    CHECK(mira_values(s, len, w, h, bits, comps, got, NULL) &&
          memcmp(got, v, n * sizeof *v) == 0);
    double mb = (double)(n * sb) / 1e6;
    printf("     %-30s %5.1f:1  mira %7.1f MB/s  CharLS %7.1f MB/s  mira/CharLS %.2fx\n", name,
           (double)(n * sb) / (double)len, mb / best_m, mb / best_c, best_c / best_m);
    free(dst);
    free(got);
    free(s);
}

TEST(jpegls_speed_against_charls)
{
    /* best of MIRA_JPEGLS_BENCH runs (default 3); figures only, never a failure */
    const char *env = getenv("MIRA_JPEGLS_BENCH");
    int reps = env && atoi(env) > 0 ? atoi(env) : 3;
    uint16_t *ct = ct_slice(512, 512);
    race("CT 512x512 12-bit", ct, 512, 512, 12, 1, 0, reps);
    race("CT 512x512 as 16-bit", ct, 512, 512, 16, 1, 0, reps);
    free(ct);
    uint16_t *mr = make_image(256, 256, 1, 4095);
    for (size_t i = 0; i < 256 * 256; i++) /* MR-like: smooth with noise */
        mr[i] = (uint16_t)(((i % 256) * 8 + (i / 256) * 4 + rnd() % 64) & 4095);
    race("MR 256x256 12-bit", mr, 256, 256, 12, 1, 0, reps);
    free(mr);
    uint16_t *us = make_image(640, 480, 3, 255);
    race("RGB 640x480 8-bit, sample", us, 640, 480, 8, 3, 2, reps);
    race("RGB 640x480 8-bit, line", us, 640, 480, 8, 3, 1, reps);
    free(us);
}

/* ------------------------------------------------------------------ JPEG (DCT) checks */

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
