/* Tests of the JPEG Lossless decoder on streams written by a small T.81 Annex H encoder here. */
#include "harness.h"

#include "pixel/codec.h"

#include <stdlib.h>

/*
 * The encoder below follows T.81 H.1 directly (predictors of table H.1, the first-row and
 * first-column rules of H.1.2.1, modulo 2^16 differences, the SSSS categories of table H.2,
 * byte stuffing, restart markers). The reference for each decoded image is the image the
 * encoder was given (shifted right then left by the point transform), not a decoder's
 * output. Streams from this encoder (with restart intervals, point transforms, one scan per
 * component and two tables) were checked once to decode to the same values with dcmdjpeg and
 * gdcmconv. Peer-encoded streams (DCMTK, GDCM) are tested in tests/python.
 */

static uint64_t rng_state = 0x243F6A8885A308D3u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* ------------------------------------------------------------------ a writer */

typedef struct jw {
    uint8_t *d;
    size_t n, cap;
    uint64_t acc;
    int nbits;
} jw;

static void byte(jw *w, unsigned b)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->d = realloc(w->d, w->cap);
    }
    w->d[w->n++] = (uint8_t)b;
}

static void u16(jw *w, unsigned v)
{
    byte(w, v >> 8);
    byte(w, v & 0xFF);
}

static void bits(jw *w, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        w->acc = w->acc << 1 | ((v >> i) & 1);
        if (++w->nbits == 8) {
            byte(w, (unsigned)(w->acc & 0xFF));
            if ((w->acc & 0xFF) == 0xFF)
                byte(w, 0); /* stuffing */
            w->acc = 0;
            w->nbits = 0;
        }
    }
}

static void flush_ones(jw *w)
{
    while (w->nbits)
        bits(w, 1, 1);
}

/* Two Huffman tables for the 17 SSSS categories. Table 0 has codes of 2 to 14 bits (the
 * longest beyond the decoder's lookahead), table 1 codes of 5 bits. */
static const uint8_t counts0[16] = {0, 1, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
static const uint8_t counts1[16] = {0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

typedef struct table {
    uint16_t code[17];
    uint8_t len[17];
} table;

/* Canonical codes of T.81 C.2 (symbols in order 0..16). */
static void make_table(table *t, const uint8_t *counts)
{
    unsigned code = 0, k = 0;
    for (unsigned l = 1; l <= 16; l++) {
        for (unsigned i = 0; i < counts[l - 1]; i++, k++) {
            t->code[k] = (uint16_t)code++;
            t->len[k] = (uint8_t)l;
        }
        code <<= 1;
    }
}

static void dht(jw *w, unsigned th, const uint8_t *counts)
{
    byte(w, 0xFF);
    byte(w, 0xC4);
    u16(w, 2 + 17 + 17);
    byte(w, th);
    for (int i = 0; i < 16; i++)
        byte(w, counts[i]);
    for (int i = 0; i < 17; i++)
        byte(w, (unsigned)i);
}

typedef struct params {
    unsigned width, height, ncomp, precision, pt, psv;
    unsigned restart_rows; /* 0: no restart intervals */
    bool interleaved;
    bool two_tables; /* component 1 uses table 1 */
    bool extras;     /* APPn, COM, fill bytes, junk after EOI */
    bool dnl;        /* height 0 in SOF3 and a DNL segment */
    bool no_eoi;
} params;

static int predict(unsigned psv, int ra, int rb, int rc)
{
    switch (psv) {
    case 1:
        return ra;
    case 2:
        return rb;
    case 3:
        return rc;
    case 4:
        return ra + rb - rc;
    case 5:
        return ra + ((rb - rc) >> 1);
    case 6:
        return rb + ((ra - rc) >> 1);
    default:
        return (ra + rb) >> 1;
    }
}

static void encode_diff(jw *w, const table *t, int diff)
{
    unsigned s = 0;
    if (diff == 32768) {
        s = 16;
    } else {
        unsigned a = (unsigned)(diff < 0 ? -diff : diff);
        while (a) {
            s++;
            a >>= 1;
        }
    }
    bits(w, t->code[s], t->len[s]);
    if (s >= 1 && s <= 15) {
        int extra = diff > 0 ? diff : diff + (1 << s) - 1;
        bits(w, (uint32_t)extra, (int)s);
    }
}

/* img: height * width * ncomp values below 2^precision. */
static jw encode(const params *p, const uint16_t *img)
{
    jw w = {0};
    table tabs[2];
    make_table(&tabs[0], counts0);
    make_table(&tabs[1], counts1);
    byte(&w, 0xFF);
    byte(&w, 0xD8);
    if (p->extras) {
        byte(&w, 0xFF);
        byte(&w, 0xE0);
        u16(&w, 6);
        u16(&w, 0xFFD9); /* a marker-like payload to skip */
        u16(&w, 0x0000);
        byte(&w, 0xFF);
        byte(&w, 0xFF); /* fill byte */
        byte(&w, 0xFE);
        u16(&w, 5);
        byte(&w, 'h');
        byte(&w, 'i');
        byte(&w, '!');
    }
    dht(&w, 0, counts0);
    if (p->two_tables)
        dht(&w, 1, counts1);
    byte(&w, 0xFF);
    byte(&w, 0xC3);
    u16(&w, 8 + 3 * p->ncomp);
    byte(&w, p->precision);
    u16(&w, p->dnl ? 0 : p->height);
    u16(&w, p->width);
    byte(&w, p->ncomp);
    for (unsigned c = 0; c < p->ncomp; c++) {
        byte(&w, 10 + c); /* identifiers need not start at 0 or 1 */
        byte(&w, 0x11);
        byte(&w, 0);
    }
    if (p->restart_rows) {
        byte(&w, 0xFF);
        byte(&w, 0xDD);
        u16(&w, 4);
        u16(&w, p->restart_rows * p->width);
    }
    unsigned nscans = p->interleaved ? 1 : p->ncomp;
    for (unsigned sc = 0; sc < nscans; sc++) {
        unsigned first = p->interleaved ? 0 : sc, ns = p->interleaved ? p->ncomp : 1;
        byte(&w, 0xFF);
        byte(&w, 0xDA);
        u16(&w, 6 + 2 * ns);
        byte(&w, ns);
        for (unsigned c = first; c < first + ns; c++) {
            byte(&w, 10 + c);
            byte(&w, (p->two_tables && c == 1) ? 0x10 : 0x00);
        }
        byte(&w, p->psv);
        byte(&w, 0);
        byte(&w, p->pt);
        unsigned interval = 0;
        for (unsigned y = 0; y < p->height; y++) {
            bool first_row = y == 0 || (p->restart_rows && y % p->restart_rows == 0);
            if (y > 0 && first_row) {
                flush_ones(&w);
                if (p->extras)
                    byte(&w, 0xFF); /* fill byte before the marker */
                byte(&w, 0xFF);
                byte(&w, 0xD0 + (interval++ & 7));
            }
            for (unsigned x = 0; x < p->width; x++) {
                for (unsigned c = first; c < first + ns; c++) {
#define PX(yy, xx) ((int)(img[((size_t)(yy)*p->width + (xx)) * p->ncomp + c] >> p->pt))
                    int v = PX(y, x), pred;
                    if (first_row)
                        pred = x == 0 ? 1 << (p->precision - p->pt - 1) : PX(y, x - 1);
                    else if (x == 0)
                        pred = PX(y - 1, x);
                    else
                        pred = predict(p->psv, PX(y, x - 1), PX(y - 1, x), PX(y - 1, x - 1));
#undef PX
                    int diff = (v - pred) & 0xFFFF;
                    if (diff > 32768)
                        diff -= 65536;
                    encode_diff(&w, &tabs[(p->two_tables && c == 1) ? 1 : 0], diff);
                }
            }
        }
        flush_ones(&w);
    }
    if (p->dnl) {
        byte(&w, 0xFF);
        byte(&w, 0xDC);
        u16(&w, 4);
        u16(&w, p->height);
    }
    if (!p->no_eoi) {
        byte(&w, 0xFF);
        byte(&w, 0xD9);
    }
    if (p->extras) {
        byte(&w, 0x00); /* fragment padding and junk after EOI */
        byte(&w, 0xFF);
        byte(&w, 0xC0);
    }
    return w;
}

/* ------------------------------------------------------------------ helpers */

static mira_pixel_desc desc_for(const params *p, unsigned bits_allocated)
{
    mira_pixel_desc d = {0};
    d.rows = p->height;
    d.columns = p->width;
    d.frames = 1;
    d.samples = (uint16_t)p->ncomp;
    d.bits_allocated = (uint16_t)bits_allocated;
    d.bits_stored = (uint16_t)p->precision;
    d.high_bit = (uint16_t)(p->precision - 1);
    d.photometric = p->ncomp == 3 ? MIRA_PHOTO_RGB : MIRA_PHOTO_MONOCHROME2;
    return d;
}

static size_t frame_bytes(const mira_pixel_desc *d)
{
    return (size_t)d->rows * d->columns * d->samples *
           (d->bits_allocated <= 8 ? 1 : d->bits_allocated / 8);
}

/* An image of `precision` bits: smooth with noise (kind 0), random (1) or extreme jumps
 * between 0 and the top value (2). */
static uint16_t *make_image(const params *p, int kind)
{
    size_t n = (size_t)p->width * p->height * p->ncomp;
    uint16_t *img = malloc(n * sizeof *img);
    uint32_t top = (1u << p->precision) - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        if (kind == 1)
            v = rnd() & top;
        else if (kind == 2)
            v = (rnd() & 1) ? top : 0;
        else
            v = (uint32_t)((i / p->ncomp) * 7 % (top + 1)) ^ (rnd() & 3 & top);
        img[i] = (uint16_t)(v & top);
    }
    return img;
}

/* Decode the stream and compare with the image (after the point transform). */
static bool decode_matches(const params *p, const uint16_t *img, const jw *w, unsigned ba)
{
    mira_pixel_desc d = desc_for(p, ba);
    size_t n = frame_bytes(&d), sb = ba <= 8 ? 1 : ba / 8;
    uint8_t *out = malloc(n);
    memset(out, 0xA5, n);
    mira_error *err = NULL;
    mira_photometric ph = MIRA_PHOTO_UNKNOWN;
    bool ok = mira__codec_jpegll.decode(w->d, w->n, &d, out, n, &ph, &err);
    if (!ok) {
        fprintf(stderr, "decode failed: %s\n", err ? mira_error_get_message(err) : "(no error)");
        mira_error_free(err);
    } else {
        CHECK_EQ_INT(ph, MIRA_PHOTO_UNKNOWN); /* no colour conversion */
        for (size_t i = 0; i < n / sb && ok; i++) {
            uint32_t want = (uint32_t)(img[i] >> p->pt) << p->pt, got = 0;
            for (size_t b = 0; b < sb; b++)
                got |= (uint32_t)out[i * sb + b] << (8 * b);
            if (got != want) {
                fprintf(stderr,
                        "sample %zu: %u, want %u (%ux%u, %u comps, P %u, pt %u, psv %u, "
                        "restart %u, %s)\n",
                        i, got, want, p->width, p->height, p->ncomp, p->precision, p->pt, p->psv,
                        p->restart_rows, p->interleaved ? "interleaved" : "one scan each");
                ok = false;
            }
        }
    }
    free(out);
    return ok;
}

/* ------------------------------------------------------------------ tests */

TEST(all_predictors_layouts_and_restarts)
{
    static const unsigned precisions[] = {2, 8, 12, 16};
    static const unsigned sizes[][2] = {{1, 1}, {5, 3}, {17, 6}};
    int failures = 0;
    for (unsigned psv = 1; psv <= 7; psv++)
        for (size_t pi = 0; pi < 4; pi++)
            for (unsigned ncomp = 1; ncomp <= 4; ncomp++)
                for (int il = 0; il < 2; il++)
                    for (unsigned rr = 0; rr <= 2; rr++)
                        for (size_t si = 0; si < 3; si++) {
                            params p = {
                                .width = sizes[si][0],
                                .height = sizes[si][1],
                                .ncomp = ncomp,
                                .precision = precisions[pi],
                                .pt = (psv + rr) % 3 == 0 && precisions[pi] > 2 ? 1 + psv % 2 : 0,
                                .psv = psv,
                                .restart_rows = rr,
                                .interleaved = il,
                                .two_tables = ncomp > 1 && psv % 2};
                            uint16_t *img = make_image(&p, (int)(psv + si) % 3);
                            jw w = encode(&p, img);
                            unsigned ba = p.precision <= 8 ? 8 : 16;
                            if (!decode_matches(&p, img, &w, ba))
                                failures++;
                            free(w.d);
                            free(img);
                        }
    CHECK_EQ_INT(failures, 0);
}

TEST(sixteen_bit_extremes_use_ssss_16)
{
    /* 0 / 65535 jumps: differences of +-65535 wrap to +-1 and 32768 appears (SSSS 16) */
    params p = {.width = 40, .height = 9, .ncomp = 1, .precision = 16, .psv = 1};
    uint16_t *img = make_image(&p, 2);
    img[0] = 0; /* 0 - 2^15: difference 32768 */
    img[1] = 32768;
    jw w = encode(&p, img);
    CHECK(decode_matches(&p, img, &w, 16));
    /* also into 32-bit samples */
    CHECK(decode_matches(&p, img, &w, 32));
    free(w.d);
    free(img);
}

TEST(markers_fill_bytes_dnl_and_trailing_data)
{
    params p = {.width = 13,
                .height = 11,
                .ncomp = 3,
                .precision = 8,
                .psv = 4,
                .restart_rows = 2,
                .interleaved = true,
                .extras = true,
                .dnl = true};
    uint16_t *img = make_image(&p, 0);
    jw w = encode(&p, img);
    CHECK(decode_matches(&p, img, &w, 8));
    free(w.d);
    p.dnl = false;
    p.no_eoi = true;
    p.extras = false;
    w = encode(&p, img);
    CHECK(decode_matches(&p, img, &w, 8));
    free(w.d);
    free(img);
}

/* Decode and return the error code (0 on success); the message must contain `needle`. */
static int decode_code(const uint8_t *s, size_t n, const mira_pixel_desc *d, const char *needle)
{
    size_t len = frame_bytes(d);
    uint8_t *out = malloc(len ? len : 1);
    mira_error *err = NULL;
    bool ok = mira__codec_jpegll.decode(s, n, d, out, len, NULL, &err);
    free(out);
    if (ok)
        return 0;
    int code = err ? (int)mira_error_get_code(err) : -1;
    if (needle && (!err || !strstr(mira_error_get_message(err), needle))) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err ? mira_error_get_message(err) : "",
                needle);
        code = -2;
    }
    mira_error_free(err);
    return code;
}

TEST(codestream_disagreeing_with_the_data_set)
{
    params p = {
        .width = 6, .height = 5, .ncomp = 3, .precision = 12, .psv = 1, .interleaved = true};
    uint16_t *img = make_image(&p, 1);
    jw w = encode(&p, img);
    mira_pixel_desc d = desc_for(&p, 16);
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, NULL), 0);
    d.columns = 7;
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, "6 columns, the data set says 7"), MIRA_ERR_INVALID);
    d = desc_for(&p, 16);
    d.rows = 4;
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, "5 rows, the data set says 4"), MIRA_ERR_INVALID);
    d = desc_for(&p, 16);
    d.samples = 1;
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, "3 components, the data set says 1"), MIRA_ERR_INVALID);
    d = desc_for(&p, 8);
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, "precision 12 exceeds Bits Allocated 8"),
                 MIRA_ERR_INVALID);
    /* a wrong destination size is the caller's mistake */
    d = desc_for(&p, 16);
    uint8_t small[8];
    mira_error *err = NULL;
    CHECK(!mira__codec_jpegll.decode(w.d, w.n, &d, small, sizeof small, NULL, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    free(w.d);
    free(img);
}

TEST(other_processes_are_unsupported)
{
    mira_pixel_desc d = {
        .rows = 2, .columns = 2, .samples = 1, .bits_allocated = 8, .bits_stored = 8};
    /* SOI, SOF0 (baseline DCT) */
    static const uint8_t sof0[] = {0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0};
    CHECK_EQ_INT(decode_code(sof0, sizeof sof0, &d, "SOF0"), MIRA_ERR_UNSUPPORTED);
    /* SOF11 (arithmetic lossless) */
    static const uint8_t sof11[] = {0xFF, 0xD8, 0xFF, 0xCB, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0};
    CHECK_EQ_INT(decode_code(sof11, sizeof sof11, &d, NULL), MIRA_ERR_UNSUPPORTED);
    /* not JPEG at all */
    static const uint8_t junk[] = {0x00, 0x01, 0x02};
    CHECK_EQ_INT(decode_code(junk, sizeof junk, &d, "SOI"), MIRA_ERR_INVALID);
    CHECK_EQ_INT(decode_code(junk, 0, &d, NULL), MIRA_ERR_INVALID);
    /* SOI, EOI: no frame */
    static const uint8_t empty[] = {0xFF, 0xD8, 0xFF, 0xD9};
    CHECK_EQ_INT(decode_code(empty, sizeof empty, &d, "SOF3"), MIRA_ERR_INVALID);
}

TEST(restart_intervals_that_are_not_whole_rows)
{
    params p = {.width = 8, .height = 4, .ncomp = 1, .precision = 8, .psv = 1, .restart_rows = 1};
    uint16_t *img = make_image(&p, 1);
    jw w = encode(&p, img);
    /* rewrite Ri (8) as 4: half rows */
    for (size_t i = 0; i + 5 < w.n; i++)
        if (w.d[i] == 0xFF && w.d[i + 1] == 0xDD) {
            w.d[i + 5] = 4;
            break;
        }
    mira_pixel_desc d = desc_for(&p, 8);
    CHECK_EQ_INT(decode_code(w.d, w.n, &d, "restart interval of 4"), MIRA_ERR_UNSUPPORTED);
    free(w.d);
    free(img);
}

TEST(every_truncation_fails_cleanly)
{
    params p = {.width = 9,
                .height = 7,
                .ncomp = 3,
                .precision = 16,
                .psv = 6,
                .restart_rows = 2,
                .interleaved = false,
                .two_tables = true};
    uint16_t *img = make_image(&p, 1);
    jw w = encode(&p, img);
    mira_pixel_desc d = desc_for(&p, 16);
    for (size_t len = 0; len < w.n; len++) {
        /* an exact-size copy, so that over-reads show under AddressSanitizer */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, w.d, len);
        int code = decode_code(cut, len, &d, NULL);
        if (len < w.n - 2)
            CHECK_EQ_INT(code, MIRA_ERR_INVALID);
        else
            CHECK_EQ_INT(code, 0); /* only (part of) EOI is missing */
        free(cut);
    }
    free(w.d);
    free(img);
}

TEST(corrupted_bytes_never_crash)
{
    params p = {.width = 11,
                .height = 6,
                .ncomp = 3,
                .precision = 12,
                .psv = 7,
                .restart_rows = 2,
                .interleaved = true,
                .two_tables = true};
    uint16_t *img = make_image(&p, 0);
    jw w = encode(&p, img);
    mira_pixel_desc d = desc_for(&p, 16);
    size_t n = frame_bytes(&d);
    uint8_t *out = malloc(n);
    for (size_t i = 0; i < w.n; i++) {
        for (int k = 0; k < 4; k++) {
            uint8_t save = w.d[i];
            w.d[i] = k == 0 ? 0xFF : k == 1 ? 0x00 : (uint8_t)(save ^ (1u << (rnd() % 8)));
            mira_error *err = NULL;
            if (!mira__codec_jpegll.decode(w.d, w.n, &d, out, n, NULL, &err))
                CHECK(err && mira_error_get_message(err)[0]);
            mira_error_free(err);
            w.d[i] = save;
        }
    }
    free(out);
    free(w.d);
    free(img);
}

TEST(bad_huffman_tables)
{
    mira_pixel_desc d = {
        .rows = 1, .columns = 1, .samples = 1, .bits_allocated = 8, .bits_stored = 8};
    /* three codes of length 1 */
    static const uint8_t over[] = {0xFF, 0xD8, 0xFF, 0xC4, 0, 22, 0x00, /* SOI, DHT */
                                   3,    0,    0,    0,    0, 0,  0,    0,
                                   0,    0,    0,    0,    0, 0,  0,    0, /* BITS */
                                   0,    1,    2};                         /* HUFFVAL */
    CHECK_EQ_INT(decode_code(over, sizeof over, &d, "DHT"), MIRA_ERR_INVALID);
    /* an SSSS symbol of 17 in a valid table, then a scan that uses it */
    /* clang-format off */
    static const uint8_t sym17[] = {
        0xFF, 0xD8,                                              /* SOI */
        0xFF, 0xC4, 0, 20, 0x00,                                 /* DHT */
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,          /* BITS */
        17,                                                      /* HUFFVAL */
        0xFF, 0xC3, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0,         /* SOF3 1x1 */
        0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 0, 0,                   /* SOS */
        0x00, 0xFF, 0xD9};
    /* clang-format on */
    CHECK_EQ_INT(decode_code(sym17, sizeof sym17, &d, "Huffman"), MIRA_ERR_INVALID);
}
