/* JPEG Lossless decoder (ITU-T T.81 Annex H, processes 14 and 14 SV1): SOF3 Huffman streams. */
#include "pixel/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * What is decoded: one SOF3 frame of 1 to 4 components, precision 2 to 16 bits, Huffman
 * tables (DHT), restart intervals (DRI / RSTn), one interleaved scan or one scan per
 * component (or any mix), predictors 1 to 7 and a point transform. Not decoded
 * (MIRA_ERR_UNSUPPORTED): DCT, arithmetic and hierarchical processes, components of
 * different sizes (subsampling), an interleaved scan whose sampling factors are not 1x1,
 * and restart intervals that are not whole rows (libjpeg refuses them too: the predictor
 * reset of H.1.2.1 is only defined for rows).
 *
 * Speed: the entropy decoder keeps up to 64 bits in a register, refilled a byte at a time
 * (the only place that looks for 0xFF), and decodes the Huffman code and its extra bits
 * together from a 2^LOOKAHEAD table for all but the longest codes. Rows are reconstructed
 * by one function specialised per predictor (and for one component).
 *
 * Truncation: past the end of a scan's data the bit reader supplies zero bits, as libjpeg
 * does, but counts them; a row that used any of them fails (a lossless image cut short is
 * an error, not a picture with a grey bottom).
 */

#define LOOKAHEAD 10
#define FAST_SLOW 0x100u /* flag: not a complete decode (code only, or a longer code) */

static const char *const jpegll_ts[] = {MIRA_TS_JPEG_LOSSLESS, MIRA_TS_JPEG_LOSSLESS_SV1, NULL};

typedef struct huff {
    bool defined;
    /* fast[peek]: bits 0-7 length consumed (0: code longer than LOOKAHEAD), bit 8 FAST_SLOW,
     * bits 9-31 the difference + 65536 (complete) or the SSSS symbol (code only) */
    uint32_t fast[1u << LOOKAHEAD];
    int32_t maxcode[17]; /* largest code of each length, -1 if none */
    int32_t valoff[17];  /* index in vals of code c of length l: valoff[l] + c */
    uint8_t vals[256];
} huff;

typedef struct component {
    unsigned id, h, v;
    bool done;
} component;

typedef struct bitreader {
    const uint8_t *src;
    size_t pos, end;
    uint64_t acc;   /* next bits, MSB first */
    unsigned nbits; /* valid bits in acc */
    unsigned pad;   /* zero bits supplied after the data ended (they are at the bottom) */
    bool stop;      /* a marker or the end was reached */
    bool bad;       /* an invalid Huffman code was met */
} bitreader;

typedef struct decoder {
    const uint8_t *src;
    size_t len;
    const mira_pixel_desc *d;
    uint8_t *dst;
    size_t sb;
    unsigned precision, width, height, ncomp;
    bool have_frame;
    unsigned restart; /* MCUs per restart interval, 0 if none */
    component comp[4];
    huff tables[4];
    uint16_t *rows; /* two rows of width * 4 values */
} decoder;

/* ------------------------------------------------------------------ helpers */

static unsigned rd16be(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static bool fail(mira_error **err, mira_error_code code, size_t off, const char *fmt, va_list ap)
{
    char msg[200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    mira_error_set(err, code,
                   code == MIRA_ERR_INVALID ? "invalid JPEG Lossless codestream"
                                            : "unsupported JPEG codestream",
                   "%s (offset %zu)", msg, off);
    return false;
}

/* MIRA_ERR_INVALID at codestream offset off; returns false. */
static bool MIRA_PRINTF(3, 4) bad(mira_error **err, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail(err, MIRA_ERR_INVALID, off, fmt, ap);
    va_end(ap);
    return false;
}

/* MIRA_ERR_UNSUPPORTED at codestream offset off; returns false. */
static bool MIRA_PRINTF(3, 4) unsup(mira_error **err, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail(err, MIRA_ERR_UNSUPPORTED, off, fmt, ap);
    va_end(ap);
    return false;
}

/* The position of the next marker's code byte at or after pos (0xFF, any fill 0xFF, a code
 * other than 0x00), or len if there is none. Skips entropy-coded bytes. */
static size_t next_marker(const uint8_t *src, size_t len, size_t pos)
{
    while (pos + 1 < len) {
        const uint8_t *p = memchr(src + pos, 0xFF, len - pos - 1);
        if (!p)
            return len;
        pos = (size_t)(p - src) + 1;
        while (pos < len && src[pos] == 0xFF)
            pos++;
        if (pos < len && src[pos] != 0x00)
            return pos;
    }
    return len;
}

/* ------------------------------------------------------------------ Huffman tables */

/* Build one table from BITS (16 counts) and HUFFVAL (T.81 C.2, libjpeg's checks). */
static bool huff_build(huff *h, const uint8_t *counts, const uint8_t *vals, unsigned nvals)
{
    for (unsigned i = 0; i < (1u << LOOKAHEAD); i++)
        h->fast[i] = FAST_SLOW; /* length 0: the long-code path */
    memcpy(h->vals, vals, nvals);
    uint32_t code = 0;
    unsigned k = 0;
    for (unsigned l = 1; l <= 16; l++) {
        unsigned n = counts[l - 1];
        h->valoff[l] = (int32_t)k - (int32_t)code;
        h->maxcode[l] = n ? (int32_t)(code + n - 1) : -1;
        for (unsigned i = 0; i < n; i++, k++, code++) {
            if (code >= (1u << l))
                return false; /* more codes than the length allows */
            if (l > LOOKAHEAD)
                continue;
            unsigned s = vals[k];
            unsigned shift = LOOKAHEAD - l;
            uint32_t first = code << shift, count = 1u << shift;
            for (uint32_t j = 0; j < count; j++) {
                uint32_t e;
                if (s == 0) {
                    e = (uint32_t)l | (uint32_t)65536 << 9;
                } else if (s == 16) {
                    e = (uint32_t)l | (uint32_t)(65536 + 32768) << 9;
                } else if (s < 16 && l + s <= LOOKAHEAD) {
                    uint32_t extra = (j >> (shift - s)) & ((1u << s) - 1);
                    int32_t diff = extra < (1u << (s - 1))
                                       ? (int32_t)extra - (int32_t)((1u << s) - 1)
                                       : (int32_t)extra;
                    e = (uint32_t)(l + s) | (uint32_t)(diff + 65536) << 9;
                } else {
                    e = (uint32_t)l | FAST_SLOW | (uint32_t)s << 9;
                }
                h->fast[first + j] = e;
            }
        }
        if (code >= (1u << l))
            return false; /* the all-ones code is reserved (T.81 C.2; libjpeg's check) */
        code <<= 1;
    }
    h->defined = true;
    return true;
}

/* ------------------------------------------------------------------ entropy decoding */

static void refill(bitreader *br)
{
    /* fast path: 8 bytes without 0xFF among them, as many whole bytes as fit */
    if (!br->stop && br->end - br->pos >= 8) {
        uint64_t w;
        memcpy(&w, br->src + br->pos, 8);
        w = __builtin_bswap64(w);
        uint64_t x = ~w; /* a zero byte in x is an 0xFF in w */
        if (!((x - 0x0101010101010101u) & ~x & 0x8080808080808080u)) {
            unsigned nbytes = (64 - br->nbits) >> 3;
            w &= ~(uint64_t)0 << (64 - nbytes * 8);
            br->acc |= w >> br->nbits;
            br->nbits += nbytes * 8;
            br->pos += nbytes;
            return;
        }
    }
    while (br->nbits <= 56) {
        unsigned b = 0;
        if (!br->stop && br->pos < br->end) {
            b = br->src[br->pos];
            if (b != 0xFF) {
                br->pos++;
            } else if (br->pos + 1 < br->end && br->src[br->pos + 1] == 0x00) {
                br->pos += 2; /* stuffed 0xFF */
            } else {
                br->stop = true; /* a marker (left for the caller) */
                b = 0;
            }
        } else {
            br->stop = true;
        }
        if (br->stop)
            br->pad += 8;
        br->acc |= (uint64_t)b << (56 - br->nbits);
        br->nbits += 8;
    }
}

static inline __attribute__((always_inline)) void consume(bitreader *br, unsigned n)
{
    br->acc <<= n;
    br->nbits -= n;
}

/* The difference from the rarer paths: a code longer than LOOKAHEAD, or a short code whose
 * extra bits do not fit in the table. */
static __attribute__((noinline)) int decode_slow(bitreader *br, const huff *h, uint32_t e)
{
    unsigned s;
    unsigned l = e & 0xFF;
    if (l) {
        s = e >> 9;
        consume(br, l);
    } else {
        for (l = LOOKAHEAD + 1; l <= 16; l++) {
            int32_t code = (int32_t)(br->acc >> (64 - l));
            if (code <= h->maxcode[l])
                break;
        }
        if (l > 16) {
            br->bad = true;
            return 0;
        }
        int32_t idx = h->valoff[l] + (int32_t)(br->acc >> (64 - l));
        if (idx < 0 || idx > 255) { /* cannot happen with a table huff_build accepted */
            br->bad = true;
            return 0;
        }
        s = h->vals[idx];
        consume(br, l);
    }
    if (s == 0)
        return 0;
    if (s == 16)
        return 32768;
    if (s > 16) {
        br->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)(br->acc >> (64 - s));
    consume(br, s);
    return v < (1u << (s - 1)) ? (int)v - (int)((1u << s) - 1) : (int)v;
}

static inline __attribute__((always_inline)) int decode_diff(bitreader *br, const huff *h)
{
    if (br->nbits < 32)
        refill(br);
    uint32_t e = h->fast[br->acc >> (64 - LOOKAHEAD)];
    if (__builtin_expect(!(e & FAST_SLOW), 1)) {
        consume(br, e & 0xFF);
        return (int)(e >> 9) - 65536;
    }
    return decode_slow(br, h, e);
}

/*
 * Reconstruct one row of ns interleaved components (T.81 H.1.2.1). psv 0 means the first
 * row of a scan or restart interval: the first sample is predicted by init = 2^(P-Pt-1), the
 * others by Ra. Otherwise the first sample is predicted by Rb and the others by predictor
 * psv. Values are kept modulo 2^16.
 */
static inline __attribute__((always_inline)) void
decode_row(bitreader *restrict brp, const huff *const *tbl, unsigned ns, unsigned width, int psv,
           int init, const uint16_t *restrict prev, uint16_t *restrict cur)
{
    bitreader br = *brp;
    for (unsigned c = 0; c < ns; c++) {
        int diff = decode_diff(&br, tbl[c]);
        int pred = psv == 0 ? init : prev[c];
        cur[c] = (uint16_t)(pred + diff);
    }
    size_t n = (size_t)width * ns;
    for (size_t i = ns; i < n; i += ns) {
        for (unsigned c = 0; c < ns; c++) {
            int diff = decode_diff(&br, tbl[c]);
            size_t k = i + c;
            int ra = cur[k - ns], rb, rc, pred;
            switch (psv) {
            case 0:
            case 1:
                pred = ra;
                break;
            case 2:
                pred = prev[k];
                break;
            case 3:
                pred = prev[k - ns];
                break;
            case 4:
                rb = prev[k], rc = prev[k - ns];
                pred = ra + rb - rc;
                break;
            case 5:
                rb = prev[k], rc = prev[k - ns];
                pred = ra + ((rb - rc) >> 1);
                break;
            case 6:
                rb = prev[k], rc = prev[k - ns];
                pred = rb + ((ra - rc) >> 1);
                break;
            default:
                rb = prev[k];
                pred = (ra + rb) >> 1;
                break;
            }
            cur[k] = (uint16_t)(pred + diff);
        }
    }
    *brp = br;
}

#define ROW_CASE(P)                                                                                \
    case P:                                                                                        \
        if (ns == 1)                                                                               \
            decode_row(br, tbl, 1, width, P, init, prev, cur);                                     \
        else                                                                                       \
            decode_row(br, tbl, ns, width, P, init, prev, cur);                                    \
        break;

static void decode_row_any(bitreader *br, const huff *const *tbl, unsigned ns, unsigned width,
                           int psv, int init, const uint16_t *prev, uint16_t *cur)
{
    switch (psv) {
        ROW_CASE(0)
        ROW_CASE(1)
        ROW_CASE(2)
        ROW_CASE(3)
        ROW_CASE(4)
        ROW_CASE(5)
        ROW_CASE(6)
        ROW_CASE(7)
    default:
        break;
    }
}

/* Write a reconstructed row (values << pt) to the components' places in the output. */
static void store_row(decoder *dc, unsigned y, unsigned ns, const unsigned *cidx,
                      const uint16_t *cur, unsigned pt)
{
    size_t S = dc->ncomp, sb = dc->sb;
    uint8_t *row = dc->dst + (size_t)y * dc->width * S * sb;
    for (unsigned c = 0; c < ns; c++) {
        uint8_t *p = row + cidx[c] * sb;
        const uint16_t *v = cur + c;
        size_t step = S * sb;
        if (sb == 1) {
            for (unsigned x = 0; x < dc->width; x++, p += step, v += ns)
                p[0] = (uint8_t)(*v << pt);
        } else if (sb == 2) {
            for (unsigned x = 0; x < dc->width; x++, p += step, v += ns) {
                uint32_t w = (uint32_t)*v << pt;
                p[0] = (uint8_t)w;
                p[1] = (uint8_t)(w >> 8);
            }
        } else {
            for (unsigned x = 0; x < dc->width; x++, p += step, v += ns) {
                uint32_t w = ((uint32_t)*v << pt) & 0xFFFF; /* libjpeg keeps 16-bit samples */
                p[0] = (uint8_t)w;
                p[1] = (uint8_t)(w >> 8);
                memset(p + 2, 0, sb - 2);
            }
        }
    }
}

/* ------------------------------------------------------------------ marker segments */

static bool parse_sof3(decoder *dc, const uint8_t *p, unsigned L, size_t off, mira_error **err)
{
    if (dc->have_frame)
        return bad(err, off, "a second frame header (SOF3)");
    if (L < 6)
        return bad(err, off, "SOF3 segment of %u bytes, shorter than 8", L + 2);
    const mira_pixel_desc *d = dc->d;
    unsigned P = p[0], Y = rd16be(p + 1), X = rd16be(p + 3), Nf = p[5];
    if (P < 2 || P > 16)
        return bad(err, off, "SOF3 precision %u is outside 2..16", P);
    if (Nf < 1 || Nf > 4)
        return unsup(err, off, "SOF3 with %u components (1 to 4 are decoded)", Nf);
    if (L < 6 + 3 * Nf)
        return bad(err, off, "SOF3 segment length %u is shorter than %u", L + 2, 8 + 3 * Nf);
    if (X != d->columns)
        return bad(err, off, "SOF3 says %u columns, the data set says %u", X, d->columns);
    if (Y == 0)
        Y = d->rows; /* the height comes in a DNL segment after the scan */
    if (Y != d->rows)
        return bad(err, off, "SOF3 says %u rows, the data set says %u", Y, d->rows);
    if (Nf != d->samples)
        return bad(err, off, "SOF3 has %u components, the data set says %u samples per pixel", Nf,
                   d->samples);
    if (P > d->bits_allocated)
        return bad(err, off, "SOF3 precision %u exceeds Bits Allocated %u", P, d->bits_allocated);
    unsigned hmax = 0, vmax = 0;
    for (unsigned i = 0; i < Nf; i++) {
        const uint8_t *c = p + 6 + 3 * i;
        dc->comp[i].id = c[0];
        dc->comp[i].h = c[1] >> 4;
        dc->comp[i].v = c[1] & 15;
        dc->comp[i].done = false;
        if (dc->comp[i].h < 1 || dc->comp[i].h > 4 || dc->comp[i].v < 1 || dc->comp[i].v > 4)
            return bad(err, off, "SOF3 component %u has sampling factors 0x%02X", i, c[1]);
        for (unsigned j = 0; j < i; j++)
            if (dc->comp[j].id == c[0])
                return bad(err, off, "SOF3 component identifier %u appears twice", c[0]);
        if (dc->comp[i].h > hmax)
            hmax = dc->comp[i].h;
        if (dc->comp[i].v > vmax)
            vmax = dc->comp[i].v;
    }
    for (unsigned i = 0; i < Nf; i++)
        if (dc->comp[i].h != hmax || dc->comp[i].v != vmax)
            return unsup(err, off, "SOF3 component %u is subsampled", i);
    dc->precision = P;
    dc->width = X;
    dc->height = Y;
    dc->ncomp = Nf;
    dc->have_frame = true;
    dc->rows = mira_malloc((size_t)X * 4 * 2 * sizeof *dc->rows);
    if (!dc->rows) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory",
                       "JPEG Lossless row buffers of %u "
                       "columns",
                       X);
        return false;
    }
    return true;
}

static bool parse_dht(decoder *dc, const uint8_t *p, unsigned L, size_t off, mira_error **err)
{
    unsigned i = 0;
    while (i < L) {
        if (L - i < 17)
            return bad(err, off,
                       "DHT segment ends inside a table header (%u bytes left, 17 needed)", L - i);
        unsigned tc = p[i] >> 4, th = p[i] & 15;
        if (tc != 0)
            return unsup(err, off, "DHT AC table (class %u) in a lossless stream", tc);
        if (th > 3)
            return bad(err, off, "DHT table number %u is above 3", th);
        unsigned total = 0;
        for (unsigned k = 0; k < 16; k++)
            total += p[i + 1 + k];
        if (total > 256 || L - i - 17 < total)
            return bad(err, off, "DHT table declares %u codes, %u bytes are left", total,
                       L - i - 17);
        if (!huff_build(&dc->tables[th], p + i + 1, p + i + 17, total))
            return bad(err, off, "DHT table %u has more codes than its lengths allow", th);
        i += 17 + total;
    }
    return true;
}

/* Find the RSTn marker that ends a restart interval; br->pos ends up after it. */
static bool expect_restart(decoder *dc, bitreader *br, unsigned n, mira_error **err)
{
    size_t m = next_marker(dc->src, dc->len, br->pos);
    if (m >= dc->len)
        return bad(err, dc->len, "the data ends where restart marker RST%u was expected", n);
    if (dc->src[m] != 0xD0 + n)
        return bad(err, m, "marker 0x%02X found where RST%u was expected", dc->src[m], n);
    br->pos = m + 1;
    br->acc = 0;
    br->nbits = 0;
    br->pad = 0;
    br->stop = false;
    return true;
}

/* Decode the scan whose header is p[0..L); on success *pos is the offset of the next
 * marker's code byte (or len). */
static bool decode_scan(decoder *dc, const uint8_t *p, unsigned L, size_t off, size_t *pos,
                        mira_error **err)
{
    if (!dc->have_frame)
        return bad(err, off, "SOS before the frame header");
    unsigned ns = L ? p[0] : 0;
    if (ns < 1 || ns > 4 || L < 4 + 2 * ns)
        return bad(err, off, "SOS with %u components in a %u-byte segment", ns, L + 2);
    unsigned cidx[4];
    const huff *tbl[4];
    for (unsigned i = 0; i < ns; i++) {
        unsigned id = p[1 + 2 * i], td = p[2 + 2 * i] >> 4;
        unsigned k = 0;
        while (k < dc->ncomp && dc->comp[k].id != id)
            k++;
        if (k == dc->ncomp)
            return bad(err, off, "SOS names component %u, which the frame does not have", id);
        for (unsigned j = 0; j < i; j++)
            if (cidx[j] == k)
                return bad(err, off, "SOS names component %u twice", id);
        if (td > 3 || !dc->tables[td].defined)
            return bad(err, off, "SOS component %u uses undefined Huffman table %u", id, td);
        if (ns > 1 && (dc->comp[k].h != 1 || dc->comp[k].v != 1))
            return unsup(err, off, "interleaved scan of component %u with sampling factors %ux%u",
                         id, dc->comp[k].h, dc->comp[k].v);
        cidx[i] = k;
        tbl[i] = &dc->tables[td];
    }
    unsigned psv = p[1 + 2 * ns], pt = p[3 + 2 * ns] & 15;
    if (psv < 1 || psv > 7)
        return bad(err, off, "SOS predictor selection value %u is outside 1..7", psv);
    if (pt >= dc->precision)
        return bad(err, off, "SOS point transform %u is not below the precision %u", pt,
                   dc->precision);
    unsigned rows_per_interval = dc->height;
    if (dc->restart) {
        if (dc->restart % dc->width != 0)
            return unsup(err, off, "restart interval of %u MCUs, not a whole number of rows",
                         dc->restart);
        rows_per_interval = dc->restart / dc->width;
    }
    int init = 1 << (dc->precision - pt - 1);
    bitreader br = {.src = dc->src, .pos = off + L, .end = dc->len};
    uint16_t *prev = dc->rows, *cur = dc->rows + (size_t)dc->width * 4;
    unsigned interval = 0;
    for (unsigned y = 0; y < dc->height; y++) {
        bool first = y % rows_per_interval == 0;
        if (first && y > 0) {
            if (br.pad > br.nbits)
                return bad(err, br.pos, "restart interval %u ends early (row %u)", interval, y);
            if (!expect_restart(dc, &br, interval & 7, err))
                return false;
            interval++;
        }
        decode_row_any(&br, tbl, ns, dc->width, first ? 0 : (int)psv, init, prev, cur);
        if (br.bad)
            return bad(err, br.pos, "invalid Huffman code in row %u of scan at %u", y,
                       (unsigned)off);
        if (br.pad > br.nbits)
            return bad(err, br.pos, "the scan's data ends in row %u of %u", y, dc->height);
        store_row(dc, y, ns, cidx, cur, pt);
        uint16_t *t = prev;
        prev = cur;
        cur = t;
    }
    for (unsigned i = 0; i < ns; i++)
        dc->comp[cidx[i]].done = true;
    *pos = next_marker(dc->src, dc->len, br.pos);
    return true;
}

static bool decode_stream(decoder *dc, mira_error **err)
{
    const uint8_t *src = dc->src;
    size_t len = dc->len;
    if (len < 2 || src[0] != 0xFF || src[1] != 0xD8)
        return bad(err, 0, "no JPEG start of image (SOI) marker");
    size_t pos = 2;
    for (;;) {
        /* a marker: 0xFF, fill 0xFF bytes, the code */
        if (pos >= len)
            break;
        if (src[pos] != 0xFF)
            return bad(err, pos, "byte 0x%02X where a marker was expected", src[pos]);
        while (pos < len && src[pos] == 0xFF)
            pos++;
        if (pos >= len)
            break;
        size_t moff = pos - 1;
        unsigned code = src[pos++];
        if (code == 0xD9) /* EOI: anything after it is ignored */
            break;
        if (code == 0x01 || (code >= 0xD0 && code <= 0xD7))
            continue; /* TEM and stray RSTn have no length */
        if (code == 0xD8 || code == 0x00)
            return bad(err, moff, "unexpected marker 0x%02X", code);
        if (len - pos < 2)
            return bad(err, moff, "marker 0x%02X has no room for its length", code);
        unsigned L = rd16be(src + pos);
        if (L < 2 || L > len - pos)
            return bad(err, moff, "marker 0x%02X segment length %u runs past the end", code, L);
        const uint8_t *p = src + pos + 2;
        size_t body = pos + 2;
        pos += L;
        L -= 2;
        switch (code) {
        case 0xC3:
            if (!parse_sof3(dc, p, L, moff, err))
                return false;
            break;
        case 0xC4:
            if (!parse_dht(dc, p, L, moff, err))
                return false;
            break;
        case 0xDD:
            if (L < 2)
                return bad(err, moff, "DRI segment of %u bytes", L + 2);
            dc->restart = rd16be(p);
            break;
        case 0xDA: {
            size_t next;
            if (!decode_scan(dc, p, L, body, &next, err))
                return false;
            pos = next < len ? next - 1 : len; /* back to the marker's 0xFF */
            break;
        }
        case 0xC0:
        case 0xC1:
        case 0xC2:
            return unsup(err, moff, "DCT-based JPEG (SOF%u) is not JPEG Lossless", code - 0xC0);
        case 0xC5:
        case 0xC6:
        case 0xC7:
        case 0xDE:
        case 0xDF:
            return unsup(err, moff, "hierarchical JPEG (marker 0x%02X)", code);
        case 0xC8:
        case 0xC9:
        case 0xCA:
        case 0xCB:
        case 0xCC:
        case 0xCD:
        case 0xCE:
        case 0xCF:
            return unsup(err, moff, "arithmetic-coded or extension JPEG (marker 0x%02X)", code);
        default:
            break; /* APPn, COM, DQT, DNL and reserved markers: skipped */
        }
    }
    if (!dc->have_frame)
        return bad(err, len, "no SOF3 frame header before the end of the data");
    for (unsigned i = 0; i < dc->ncomp; i++)
        if (!dc->comp[i].done)
            return bad(err, len, "component %u (identifier %u) is in no scan", i, dc->comp[i].id);
    return true;
}

static bool jpegll_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                          size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    (void)photometric; /* the colour space is whatever was encoded (no transform) */
    size_t sb = mira_pixel_sample_bytes(d);
    size_t need = (size_t)d->rows * d->columns;
    if (d->rows == 0 || d->columns == 0 || d->samples < 1 || d->samples > 4 ||
        need / d->rows != d->columns || need > SIZE_MAX / d->samples / sb ||
        need * d->samples * sb != dst_len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG Lossless frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples of %zu bytes", dst_len,
                       (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples, sb);
        return false;
    }
    decoder *dc = mira_calloc(1, sizeof *dc);
    if (!dc) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG Lossless decoder state");
        return false;
    }
    dc->src = src;
    dc->len = len;
    dc->d = d;
    dc->dst = dst;
    dc->sb = sb;
    bool ok = decode_stream(dc, err);
    mira_free(dc->rows);
    mira_free(dc);
    return ok;
}

const mira__codec mira__codec_jpegll = {
    .name = "JPEG Lossless",
    .ts_uids = jpegll_ts,
    .decode = jpegll_decode,
    .encode = NULL,
};
