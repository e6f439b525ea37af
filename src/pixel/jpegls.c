/* JPEG-LS (ITU-T T.87 / ISO/IEC 14495-1): frames decoded by mira's own decoder, encoded by CharLS. */
#include "pixel/codec.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <charls/charls.h>

/*
 * Decoding is mira's own: CharLS 2.4.1 (Debian 12) loops for seconds, or for ever, on some
 * truncated or corrupt scan data (its unary-code reader takes zero bits past the end without
 * bound: fixed upstream in 2024, team-charls/charls#334), and a PACS worker cannot hang on a
 * bad frame. What is decoded: one SOF55 frame of 1 to 4 components, 2 to 16 bits, lossless
 * and near-lossless (NEAR > 0), interleave modes none (one scan per component), line and
 * sample, any mix of scans covering each component once, default or LSE preset coding
 * parameters (MAXVAL, T1, T2, T3, RESET; validated as T.87 C.2.4.1.1 says), restart
 * intervals (DRI of 2 to 4 bytes, RSTm), the HP colour transforms of CharLS's APP8 "mrfx"
 * segment (HP1, HP2, HP3 on 3 components of 8 or 16 bits, as CharLS writes them). SPIFF
 * headers, APPn, COM, DNL and LSE mapping tables are skipped. Not decoded
 * (MIRA_ERR_UNSUPPORTED): mapping tables used by a scan (palettes), a point transform,
 * subsampled components, JPEG-LS part 2 (SOF57, extended LSE types), other colour transforms.
 *
 * The coding is T.87 Annex A as CharLS implements it, which the conformance streams of the
 * standard pin down: contexts shared by the components of a scan, one run index per
 * component in line interleaving, and in sample interleaving a run when every component's
 * gradients are zero, its interruption coded per component in run context 0 predicted by Rb.
 * Where CharLS departs from the standard on values no DICOM encoder writes (MAXVAL other than
 * 2^n - 1, RESET above 255), this decoder follows the standard.
 *
 * Robustness: the bit reader never reads past the end of the data nor into a marker (0xFF
 * followed by a byte with its high bit set); past either it supplies zero bits and counts
 * them, and a row that used any is an error naming the row. Every loop is bounded by the
 * image: a unary prefix longer than LIMIT allows, an error value outside the RANGE the
 * parameters give, or a run longer than the rest of the row is invalid data. Reconstructed
 * values are always within 0..MAXVAL, which keeps the gradient table in bounds.
 *
 * Speed: the bit reader keeps up to 64 bits in a register and takes 8 bytes at a time when
 * none of them is 0xFF; a Golomb code is decoded with one count of leading zeros; the line
 * decoder is specialised for lossless coding with MAXVAL = 2^n - 1 (the common case: no range
 * reduction) and for three sample-interleaved components.
 *
 * Encoding (CharLS: it sees only mira's own pixel buffers): lossless, Bits Stored bits per
 * sample (signed values masked to their two's complement in that width, which is what the
 * standard's DICOM profile stores; samples of up to 8 bits given to CharLS in one byte),
 * colour as sample-interleaved components without a colour transform: the photometric
 * interpretation stays what it was (RGB or YBR_FULL), as DCMTK's dcmcjpls writes it.
 */

static const char *const jpegls_ts[] = {MIRA_TS_JPEGLS_LOSSLESS, MIRA_TS_JPEGLS_NEAR, NULL};

/* J[RUNindex]: the run-length order of T.87 A.2.1 (table A.1 in the 2002 numbering). */
static const uint8_t J[32] = {0, 0, 0, 0, 1, 1, 1,  1,  2,  2,  2,  2,  3,  3,  3,  3,
                              4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15};

typedef struct bitreader {
    const uint8_t *src;
    size_t start, pos, end; /* start: where this scan or restart interval's data begins */
    uint64_t acc;   /* next bits, MSB first */
    unsigned nbits; /* valid bits in acc */
    unsigned pad;   /* zero bits supplied after the data ended (at the bottom of acc) */
    bool stop;      /* a marker or the end of the data was reached */
} bitreader;

/* Regular-mode context (A, B, C, N of T.87 A.2.1); A is unsigned: with RESET up to 65535 it
 * may exceed 2^31 on valid data. */
typedef struct context {
    uint32_t a;
    int32_t b, c, n;
} context;

/* Run-interruption context (A, N, Nn of contexts 365 and 366). */
typedef struct ri_context {
    uint32_t a;
    int32_t n, nn;
} ri_context;

/* The coding parameters of one scan (T.87 A.2.1 and C.2.4.1.1). */
typedef struct params {
    int maxval, near, step; /* step = 2 NEAR + 1 */
    int range, half;        /* RANGE and floor(RANGE / 2) */
    int qbpp, limit, reset;
    int t1, t2, t3;
    unsigned lim;      /* LIMIT - qbpp - 1: the longest unary prefix of a regular sample */
    unsigned lim_fast; /* min(lim, 32): prefixes the fast path decodes */
    bool fast;         /* NEAR = 0 and MAXVAL = 2^n - 1: reconstruction is a mask */
} params;

typedef struct component {
    unsigned id;
    bool done;
} component;

typedef struct decoder {
    const uint8_t *src;
    size_t len;
    const mira_pixel_desc *d;
    uint8_t *dst;
    size_t sb;
    unsigned precision, width, height, ncomp;
    bool have_frame;
    unsigned oversize_w, oversize_h; /* LSE type 4 */
    uint32_t restart;                /* lines per restart interval, 0 if none */
    unsigned preset[5];              /* LSE type 1: MAXVAL, T1, T2, T3, RESET (0: default) */
    unsigned transform;              /* APP8 "mrfx": 0 none, 1 to 3 HP1 to HP3 */
    bool interleaved;                /* all components in one scan of ILV 1 or 2 */
    component comp[4];
    params p;
    int8_t *qlut_base; /* gradient quantisation for -MAXVAL..MAXVAL */
    const int8_t *qlut;
    int qlut_maxval, qlut_near, qlut_t[3];
    uint16_t *lines; /* two lines of (width + 2) x 4 values per component of a scan */
    context ctx[365];
    ri_context ri[2];
} decoder;

/* ------------------------------------------------------------------ helpers */

static unsigned rd16be(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t rdbe(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static bool fail(mira_error **err, mira_error_code code, size_t off, const char *fmt, va_list ap)
{
    char msg[200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    mira_error_set(err, code,
                   code == MIRA_ERR_INVALID ? "invalid JPEG-LS codestream"
                                            : "unsupported JPEG-LS codestream",
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

/* The position of the 0xFF that starts the next marker at or after pos (0xFF followed by a
 * byte with its high bit set: T.87 A.1, marker codes and fill bytes), or len. */
static size_t next_marker(const uint8_t *src, size_t len, size_t pos)
{
    while (pos + 1 < len) {
        const uint8_t *p = memchr(src + pos, 0xFF, len - pos - 1);
        if (!p)
            return len;
        size_t i = (size_t)(p - src);
        if (src[i + 1] >= 0x80)
            return i;
        pos = i + 1;
    }
    return len;
}

/* ------------------------------------------------------------------ bit reader */

static void br_init(bitreader *br, const uint8_t *src, size_t pos, size_t end)
{
    *br = (bitreader){.src = src, .start = pos, .pos = pos, .end = end};
}

/*
 * Top up acc to at least 50 bits. After 0xFF a 0 bit is stuffed (T.87 A.1): the byte after
 * 0xFF gives 7 bits, and is taken with it. 0xFF followed by a byte of 0x80 or more is a
 * marker: the data stops there, and so it does at the end; zero bits are supplied and
 * counted in pad.
 */
static void refill(bitreader *br)
{
    if (br->nbits > 56)
        return;
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
        if (!br->stop && br->pos < br->end) {
            unsigned b = br->src[br->pos];
            if (b != 0xFF) {
                br->acc |= (uint64_t)b << (56 - br->nbits);
                br->nbits += 8;
                br->pos++;
                continue;
            }
            if (br->pos + 1 < br->end && br->src[br->pos + 1] < 0x80) {
                if (br->nbits > 49)
                    return; /* enough bits; the pair next time */
                br->acc |= (uint64_t)0xFF << (56 - br->nbits);
                br->acc |= (uint64_t)br->src[br->pos + 1] << (49 - br->nbits);
                br->nbits += 15;
                br->pos += 2;
                continue;
            }
        }
        br->stop = true;
        br->pad += 8;
        br->nbits += 8;
    }
}

static inline __attribute__((always_inline)) void consume(bitreader *br, unsigned n)
{
    br->acc <<= n;
    br->nbits -= n;
}

/* n bits (1 to 24) as an unsigned value. */
static inline uint32_t getbits(bitreader *br, unsigned n)
{
    if (br->nbits < n)
        refill(br);
    uint32_t v = (uint32_t)(br->acc >> (64 - n));
    consume(br, n);
    return v;
}

static inline __attribute__((always_inline)) unsigned getbit(bitreader *br)
{
    if (br->nbits < 1)
        refill(br);
    unsigned v = (unsigned)(br->acc >> 63);
    consume(br, 1);
    return v;
}

/*
 * A mapped error value (T.87 A.5.3): a unary prefix of q zero bits and a one, then k bits,
 * or for q = lim (the escape) qbpp bits of the value minus one. A longer prefix is invalid:
 * false. This is the general path; the fast one is in read_mapped.
 */
static __attribute__((noinline)) bool read_mapped_slow(bitreader *br, unsigned k, unsigned lim,
                                                       unsigned qbpp, uint32_t *m)
{
    unsigned q = 0;
    for (;;) {
        if (br->nbits < 32)
            refill(br);
        if (!(br->acc >> 32)) {
            q += 32; /* 32 zero bits */
            if (q > lim)
                return false;
            consume(br, 32);
            continue;
        }
        unsigned z = (unsigned)__builtin_clzll(br->acc);
        q += z;
        if (q > lim)
            return false;
        consume(br, z + 1);
        break;
    }
    if (q < lim)
        *m = k ? q << k | getbits(br, k) : q;
    else
        *m = getbits(br, qbpp) + 1;
    return true;
}

static inline __attribute__((always_inline)) bool read_mapped(bitreader *br, unsigned k,
                                                              unsigned lim, unsigned lim_fast,
                                                              unsigned qbpp, uint32_t *m)
{
    if (br->nbits < 32)
        refill(br);
    uint64_t acc = br->acc;
    unsigned z = (unsigned)__builtin_clzll(acc | 1);
    if (__builtin_expect(z < lim_fast && z + 1 + k <= br->nbits, 1)) {
        *m = z << k | (uint32_t)(((acc << (z + 1)) >> 1) >> (63 - k));
        consume(br, z + 1 + k);
        return true;
    }
    return read_mapped_slow(br, k, lim, qbpp, m);
}

/* The Golomb parameter: the least k with N 2^k >= A (T.87 A.5.1), at most 24 (valid data
 * stays below 18: A <= (N + 1) RANGE / 2 + A0). */
static inline __attribute__((always_inline)) unsigned golomb_k(uint32_t n, uint32_t a)
{
    if (n >= a)
        return 0;
    unsigned k = (unsigned)(__builtin_clz(n) - __builtin_clz(a));
    k += (n << k) < a;
    return k < 24 ? k : 24;
}

/* ------------------------------------------------------------------ sample decoding */

/* The median edge detector (T.87 A.4.1). */
static inline __attribute__((always_inline)) int med(int ra, int rb, int rc)
{
    int mx = ra > rb ? ra : rb, mn = ra < rb ? ra : rb;
    return rc >= mx ? mn : rc <= mn ? mx : ra + rb - rc;
}

/* Reconstruct Px + Errval (T.87 A.4.4 and the modulo reduction of A.4.5), clamped. */
static inline __attribute__((always_inline)) int reconstruct(const params *p, int px, int e,
                                                             bool fast)
{
    if (fast)
        return (px + e) & p->maxval;
    int rx = px + e * p->step;
    if (rx < -p->near)
        rx += p->range * p->step;
    else if (rx > p->maxval + p->near)
        rx -= p->range * p->step;
    return rx < 0 ? 0 : rx > p->maxval ? p->maxval : rx;
}

/* One regular-mode sample of context q (-364..364, not 0) and prediction Ra, Rb, Rc
 * (T.87 A.4 to A.6); -1 for invalid data. */
static inline __attribute__((always_inline)) int decode_regular(const params *p, context *ctxs,
                                                                bitreader *br, int q, int ra,
                                                                int rb, int rc, bool fast)
{
    int sign = q >> 31; /* 0 or -1 */
    context *c = &ctxs[(q ^ sign) - sign];
    int px = med(ra, rb, rc) + ((c->c ^ sign) - sign);
    px = px < 0 ? 0 : px > p->maxval ? p->maxval : px;
    unsigned k = golomb_k((uint32_t)c->n, c->a);
    uint32_t m;
    if (!read_mapped(br, k, p->lim, p->lim_fast, (unsigned)p->qbpp, &m))
        return -1;
    int e = (int)(m >> 1) ^ -(int)(m & 1);
    if ((fast || p->near == 0) && k == 0 && 2 * c->b <= -c->n)
        e = ~e; /* the error correction of A.6.1 */
    if ((unsigned)(e + p->half) >= (unsigned)p->range)
        return -1; /* outside what the encoder's modulo reduction gives */
    /* A.6.1 and A.6.2: update A, B, N and the bias C */
    c->a += (uint32_t)(e < 0 ? -e : e);
    c->b += fast ? e : e * p->step;
    if (c->n == p->reset) {
        c->a >>= 1;
        c->b >>= 1; /* floor(B / 2), as A.6.1 writes it for negative B */
        c->n >>= 1;
    }
    c->n++;
    if (c->b + c->n <= 0) {
        c->b += c->n;
        if (c->b <= -c->n)
            c->b = -c->n + 1;
        if (c->c > -128)
            c->c--;
    } else if (c->b > 0) {
        c->b -= c->n;
        if (c->b > 0)
            c->b = 0;
        if (c->c < 127)
            c->c++;
    }
    return reconstruct(p, px, (e ^ sign) - sign, fast);
}

/* The error value of a run-interruption sample in context ri[t] (T.87 A.7.2); INT32_MIN for
 * invalid data. */
static int decode_ri_error(const params *p, ri_context *c, int t, unsigned run_index,
                           bitreader *br)
{
    unsigned k = golomb_k((uint32_t)c->n, c->a + (uint32_t)((c->n >> 1) * t));
    unsigned lim = (unsigned)(p->limit - J[run_index] - 1 - p->qbpp - 1);
    uint32_t em;
    if (!read_mapped(br, k, lim, lim < 32 ? lim : 32, (unsigned)p->qbpp, &em))
        return INT32_MIN;
    int tmp = (int)em + t, map = tmp & 1, mag = (tmp + map) / 2;
    int e = ((k != 0 || 2 * c->nn >= c->n) == (map != 0)) ? -mag : mag;
    if ((unsigned)(e + p->half) >= (unsigned)p->range)
        return INT32_MIN;
    if (e < 0)
        c->nn++;
    c->a += (em + 1 - (uint32_t)t) >> 1;
    if (c->n == p->reset) {
        c->a >>= 1;
        c->n >>= 1;
        c->nn >>= 1;
    }
    c->n++;
    return e;
}

/* A run-interruption sample of one component coded alone (T.87 A.7.2). */
static int decode_ri_sample(decoder *dc, bitreader *br, int ra, int rb, unsigned run_index)
{
    const params *p = &dc->p;
    int t = abs(ra - rb) <= p->near;
    int e = decode_ri_error(p, &dc->ri[t], t, run_index, br);
    if (e == INT32_MIN)
        return -1;
    if (t)
        return reconstruct(p, ra, e, false);
    return reconstruct(p, rb, ra > rb ? -e : e, false);
}

/*
 * The run length of a run starting with `left` samples left in the line (T.87 A.7.1.2):
 * *eol says whether it reaches the end of the line (no interruption sample follows).
 * Returns false for a run longer than the line.
 */
static bool decode_run_length(bitreader *br, unsigned left, unsigned *run_index, unsigned *len,
                              bool *eol)
{
    unsigned run = 0;
    while (getbit(br)) {
        unsigned seg = 1u << J[*run_index];
        unsigned cnt = seg < left - run ? seg : left - run;
        run += cnt;
        if (cnt == seg && *run_index < 31)
            ++*run_index;
        if (run == left) {
            *len = run;
            *eol = true;
            return true;
        }
    }
    if (J[*run_index])
        run += getbits(br, J[*run_index]);
    if (run > left)
        return false;
    *len = run;
    *eol = run == left; /* no encoder writes this; CharLS takes it as the end of the line */
    return true;
}

/* ------------------------------------------------------------------ line decoding */

/*
 * One line of one component: cur[1..W] from prev[0..W+1] (cur[0], prev[W+1] are the edges
 * set by the caller). Returns false for invalid data.
 */
static inline __attribute__((always_inline)) bool
decode_line_impl(decoder *restrict dc, bitreader *restrict brp, const uint16_t *restrict prev,
                 uint16_t *restrict cur, unsigned *run_index, bool fast)
{
    bitreader br = *brp;
    const params *p = &dc->p;
    const int8_t *ql = dc->qlut;
    context *ctxs = dc->ctx;
    const unsigned W = dc->width;
    bool ok = true;
    unsigned i = 1;
    int rb = prev[0], rd = prev[1];
    while (i <= W) {
        int ra = cur[i - 1];
        int rc = rb;
        rb = rd;
        rd = prev[i + 1];
        int q = (ql[rd - rb] * 9 + ql[rb - rc]) * 9 + ql[rc - ra];
        if (__builtin_expect(q != 0, 1)) {
            int v = decode_regular(p, ctxs, &br, q, ra, rb, rc, fast);
            if (v < 0) {
                ok = false;
                break;
            }
            cur[i++] = (uint16_t)v;
            continue;
        }
        unsigned len;
        bool eol;
        if (!decode_run_length(&br, W - i + 1, run_index, &len, &eol)) {
            ok = false;
            break;
        }
        for (unsigned j = 0; j < len; j++)
            cur[i + j] = (uint16_t)ra;
        i += len;
        if (eol)
            break;
        int v = decode_ri_sample(dc, &br, ra, prev[i], *run_index);
        if (v < 0) {
            ok = false;
            break;
        }
        cur[i++] = (uint16_t)v;
        if (*run_index > 0)
            --*run_index;
        rb = prev[i - 1];
        rd = prev[i];
    }
    *brp = br;
    return ok;
}

static bool decode_line_fast(decoder *dc, bitreader *br, const uint16_t *prev, uint16_t *cur,
                             unsigned *run_index)
{
    return decode_line_impl(dc, br, prev, cur, run_index, true);
}

static bool decode_line_any(decoder *dc, bitreader *br, const uint16_t *prev, uint16_t *cur,
                            unsigned *run_index)
{
    return decode_line_impl(dc, br, prev, cur, run_index, false);
}

/*
 * One line of nc sample-interleaved components: pixel i's component c at [i * nc + c]. A run
 * when every component's context is 0; its interruption sample is coded per component in run
 * context 0, predicted by Rb (CharLS's reading of T.87 for this mode).
 */
static inline __attribute__((always_inline)) bool
decode_pixels_impl(decoder *restrict dc, bitreader *restrict brp, const uint16_t *restrict prev,
                   uint16_t *restrict cur, unsigned *run_index, unsigned nc, bool fast)
{
    bitreader br = *brp;
    const params *p = &dc->p;
    const int8_t *ql = dc->qlut;
    context *ctxs = dc->ctx;
    const unsigned W = dc->width;
    unsigned i = 1;
    while (i <= W) {
        int q[4];
        bool run = true;
        for (unsigned c = 0; c < nc; c++) {
            int ra = cur[(i - 1) * nc + c], rb = prev[i * nc + c];
            int rc = prev[(i - 1) * nc + c], rd = prev[(i + 1) * nc + c];
            q[c] = (ql[rd - rb] * 9 + ql[rb - rc]) * 9 + ql[rc - ra];
            run = run && q[c] == 0;
        }
        if (!run) {
            for (unsigned c = 0; c < nc; c++) {
                int ra = cur[(i - 1) * nc + c], rb = prev[i * nc + c];
                int rc = prev[(i - 1) * nc + c];
                int v = decode_regular(p, ctxs, &br, q[c], ra, rb, rc, fast);
                if (v < 0) {
                    *brp = br;
                    return false;
                }
                cur[i * nc + c] = (uint16_t)v;
            }
            i++;
            continue;
        }
        unsigned len;
        bool eol;
        if (!decode_run_length(&br, W - i + 1, run_index, &len, &eol)) {
            *brp = br;
            return false;
        }
        for (unsigned j = 0; j < len; j++)
            for (unsigned c = 0; c < nc; c++)
                cur[(i + j) * nc + c] = cur[(i - 1) * nc + c];
        i += len;
        if (eol)
            break;
        for (unsigned c = 0; c < nc; c++) {
            int ra = cur[(i - 1) * nc + c], rb = prev[i * nc + c];
            int e = decode_ri_error(p, &dc->ri[0], 0, *run_index, &br);
            if (e == INT32_MIN) {
                *brp = br;
                return false;
            }
            cur[i * nc + c] = (uint16_t)reconstruct(p, rb, rb < ra ? -e : e, false);
        }
        i++;
        if (*run_index > 0)
            --*run_index;
    }
    *brp = br;
    return true;
}

static bool decode_pixels3_fast(decoder *dc, bitreader *br, const uint16_t *prev, uint16_t *cur,
                                unsigned *run_index)
{
    return decode_pixels_impl(dc, br, prev, cur, run_index, 3, true);
}

static bool decode_pixels_any(decoder *dc, bitreader *br, const uint16_t *prev, uint16_t *cur,
                              unsigned *run_index, unsigned nc)
{
    return decode_pixels_impl(dc, br, prev, cur, run_index, nc, false);
}

/* ------------------------------------------------------------------ parameters */

/* CLAMP of T.87 C.2.4.1.1.1. */
static int clampt(int i, int j, int maxval)
{
    return i > maxval || i < j ? j : i;
}

/*
 * The parameters of a scan with NEAR `near` from the frame, the LSE presets and their defaults
 * (T.87 C.2.4.1.1: table C.1 says which values are valid). With charls_maxval, an LSE MAXVAL
 * below 2^P - 1 is read as CharLS 2.x writes it: RANGE, LIMIT and qbpp from 2^P - 1, MAXVAL
 * only in the thresholds and (with a RESET other than 64) in the clamping of values.
 */
static bool setup_params(decoder *dc, int near, bool charls_maxval, size_t off, mira_error **err)
{
    params *p = &dc->p;
    int full = (1 << dc->precision) - 1;
    const unsigned *ps = dc->preset;
    if (ps[0] > (unsigned)full)
        return bad(err, off, "LSE MAXVAL %u exceeds 2^%u - 1", ps[0], dc->precision);
    int maxval = ps[0] ? (int)ps[0] : full;
    int maxnear = maxval / 2 < 255 ? maxval / 2 : 255;
    if (near > maxnear)
        return bad(err, off, "NEAR %d is above %d, the most MAXVAL %d allows", near, maxnear,
                   maxval);
    /* default thresholds, C.2.4.1.1.1 (BASIC_T1..3 = 3, 7, 21) */
    int t1, t2, t3;
    if (maxval >= 128) {
        int f = ((maxval < 4095 ? maxval : 4095) + 128) / 256;
        t1 = clampt(f * (3 - 2) + 2 + 3 * near, near + 1, maxval);
        t2 = clampt(f * (7 - 3) + 3 + 5 * near, t1, maxval);
        t3 = clampt(f * (21 - 4) + 4 + 7 * near, t2, maxval);
    } else {
        int f = 256 / (maxval + 1);
        t1 = clampt(3 / f + 3 * near > 2 ? 3 / f + 3 * near : 2, near + 1, maxval);
        t2 = clampt(7 / f + 5 * near > 3 ? 7 / f + 5 * near : 3, t1, maxval);
        t3 = clampt(21 / f + 7 * near > 4 ? 21 / f + 7 * near : 4, t2, maxval);
    }
    if (ps[1]) {
        if ((int)ps[1] < near + 1 || (int)ps[1] > maxval)
            return bad(err, off, "LSE T1 %u is outside %d..%d", ps[1], near + 1, maxval);
        t1 = (int)ps[1];
    }
    if (ps[2]) {
        if ((int)ps[2] < t1 || (int)ps[2] > maxval)
            return bad(err, off, "LSE T2 %u is outside %d..%d", ps[2], t1, maxval);
        t2 = (int)ps[2];
    }
    if (ps[3]) {
        if ((int)ps[3] < t2 || (int)ps[3] > maxval)
            return bad(err, off, "LSE T3 %u is outside %d..%d", ps[3], t2, maxval);
        t3 = (int)ps[3];
    }
    int reset = 64;
    if (ps[4]) {
        int most = maxval > 255 ? maxval : 255;
        if (ps[4] < 3 || (int)ps[4] > most)
            return bad(err, off, "LSE RESET %u is outside 3..%d", ps[4], most);
        reset = (int)ps[4];
    }
    int coded = charls_maxval ? full : maxval; /* the MAXVAL of RANGE, bpp and LIMIT */
    if (charls_maxval && reset == 64)
        maxval = full;
    p->maxval = maxval;
    p->near = near;
    p->step = 2 * near + 1;
    p->range = (coded + 2 * near) / p->step + 1;
    p->half = p->range / 2;
    p->qbpp = 0;
    while ((1 << p->qbpp) < p->range)
        p->qbpp++;
    int bpp = 0;
    while ((1 << bpp) < coded + 1)
        bpp++;
    if (bpp < 2)
        bpp = 2;
    p->limit = 2 * (bpp + (bpp > 8 ? bpp : 8));
    p->reset = reset;
    p->t1 = t1;
    p->t2 = t2;
    p->t3 = t3;
    p->lim = (unsigned)(p->limit - p->qbpp - 1);
    p->lim_fast = p->lim < 32 ? p->lim : 32;
    p->fast = near == 0 && (maxval & (maxval + 1)) == 0 && p->range == maxval + 1;

    /* the gradient quantisation of A.3.3 for every difference of two values in 0..MAXVAL */
    if (dc->qlut_base && dc->qlut_maxval == maxval && dc->qlut_near == near &&
        dc->qlut_t[0] == t1 && dc->qlut_t[1] == t2 && dc->qlut_t[2] == t3)
        return true;
    mira_free(dc->qlut_base);
    dc->qlut_base = mira_malloc(2 * (size_t)maxval + 1);
    if (!dc->qlut_base) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS gradient table");
        return false;
    }
    /* 4 in magnitude from T3 on (most of a 16-bit table): filled at once */
    int8_t *q = dc->qlut_base + maxval;
    memset(dc->qlut_base, -4, (size_t)(maxval - t3 + 1));
    memset(q + t3, 4, (size_t)(maxval - t3 + 1));
    for (int di = 1 - t3; di < t3; di++)
        q[di] = (int8_t)(di <= -t2        ? -3
                         : di <= -t1      ? -2
                         : di < -near     ? -1
                         : di <= near     ? 0
                         : di < t1        ? 1
                         : di < t2        ? 2
                                          : 3);
    dc->qlut = q;
    dc->qlut_maxval = maxval;
    dc->qlut_near = near;
    dc->qlut_t[0] = t1;
    dc->qlut_t[1] = t2;
    dc->qlut_t[2] = t3;
    return true;
}

/* Contexts at the start of a scan and of each restart interval (T.87 A.2.1). */
static void reset_contexts(decoder *dc)
{
    uint32_t a = (uint32_t)((dc->p.range + 32) / 64);
    if (a < 2)
        a = 2;
    for (unsigned i = 0; i < 365; i++)
        dc->ctx[i] = (context){.a = a, .b = 0, .c = 0, .n = 1};
    dc->ri[0] = dc->ri[1] = (ri_context){.a = a, .n = 1, .nn = 0};
}

/* ------------------------------------------------------------------ output */

/* Write one decoded line (values at v[stride], v[2 stride], ...) to output component oc of
 * row y. */
static void store_line(decoder *dc, unsigned y, unsigned oc, const uint16_t *v, unsigned stride)
{
    size_t S = dc->ncomp, sb = dc->sb, step = S * sb;
    uint8_t *o = dc->dst + ((size_t)y * dc->width * S + oc) * sb;
    unsigned W = dc->width;
    v += stride;
    if (sb == 1) {
        for (unsigned x = 0; x < W; x++, o += step, v += stride)
            o[0] = (uint8_t)*v;
    } else if (sb == 2) {
        for (unsigned x = 0; x < W; x++, o += step, v += stride) {
            o[0] = (uint8_t)*v;
            o[1] = (uint8_t)(*v >> 8);
        }
    } else {
        for (unsigned x = 0; x < W; x++, o += step, v += stride) {
            o[0] = (uint8_t)*v;
            o[1] = (uint8_t)(*v >> 8);
            memset(o + 2, 0, sb - 2);
        }
    }
}

/* Undo CharLS's HP1 / HP2 / HP3 colour transform (modulo 2^8 or 2^16) on the whole frame. */
static void inverse_transform(decoder *dc)
{
    size_t n = (size_t)dc->width * dc->height, sb = dc->sb;
    unsigned bits = dc->precision, range = 1u << bits, mask = range - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t *px = dc->dst + i * 3 * sb;
        unsigned v[3], r, g, b;
        for (int c = 0; c < 3; c++)
            v[c] = sb == 1 ? px[c * sb] : (unsigned)px[c * sb] | (unsigned)px[c * sb + 1] << 8;
        switch (dc->transform) {
        case 1:
            g = v[1];
            r = (v[0] + v[1] - range / 2) & mask;
            b = (v[2] + v[1] - range / 2) & mask;
            break;
        case 2:
            g = v[1];
            r = (v[0] + v[1] - range / 2) & mask;
            b = (v[2] + ((r + g) >> 1) - range / 2) & mask;
            break;
        default: {
            int gi = (int)v[0] - (int)((v[2] + v[1]) >> 2) + (int)range / 4;
            g = (unsigned)gi & mask;
            r = (unsigned)((int)v[2] + gi - (int)range / 2) & mask;
            b = (unsigned)((int)v[1] + gi - (int)range / 2) & mask;
            break;
        }
        }
        v[0] = r, v[1] = g, v[2] = b;
        for (int c = 0; c < 3; c++) {
            px[c * sb] = (uint8_t)v[c];
            if (sb > 1)
                px[c * sb + 1] = (uint8_t)(v[c] >> 8);
        }
    }
}

/* ------------------------------------------------------------------ marker segments */

static bool parse_sof55(decoder *dc, const uint8_t *p, unsigned L, size_t off, mira_error **err)
{
    if (dc->have_frame)
        return bad(err, off, "a second frame header (SOF55)");
    if (L < 6)
        return bad(err, off, "SOF55 segment of %u bytes, shorter than 8", L + 2);
    const mira_pixel_desc *d = dc->d;
    unsigned P = p[0], Y = rd16be(p + 1), X = rd16be(p + 3), Nf = p[5];
    if (P < 2 || P > 16)
        return bad(err, off, "SOF55 precision %u is outside 2..16", P);
    if (Nf < 1)
        return bad(err, off, "SOF55 with no components");
    if (Nf > 4)
        return unsup(err, off, "SOF55 with %u components (1 to 4 are decoded)", Nf);
    if (L < 6 + 3 * Nf)
        return bad(err, off, "SOF55 segment length %u is shorter than %u", L + 2, 8 + 3 * Nf);
    if (X == 0)
        X = dc->oversize_w;
    if (Y == 0)
        Y = dc->oversize_h ? dc->oversize_h : d->rows; /* the height may come in a DNL */
    if (X != d->columns || Y != d->rows || Nf != d->samples)
        return bad(err, off,
                   "the JPEG-LS frame is %u x %u with %u components; the data set says %u x %u "
                   "with %u samples per pixel",
                   X, Y, Nf, (unsigned)d->columns, (unsigned)d->rows, (unsigned)d->samples);
    if (P > 8 * dc->sb)
        return bad(err, off, "the JPEG-LS frame has %u bits per sample, more than Bits Allocated %u",
                   P, (unsigned)d->bits_allocated);
    for (unsigned i = 0; i < Nf; i++) {
        const uint8_t *c = p + 6 + 3 * i;
        dc->comp[i].id = c[0];
        dc->comp[i].done = false;
        for (unsigned j = 0; j < i; j++)
            if (dc->comp[j].id == c[0])
                return bad(err, off, "SOF55 component identifier %u appears twice", c[0]);
        if (c[1] != p[6 + 1])
            return unsup(err, off, "SOF55 component %u is subsampled (sampling 0x%02X)", i, c[1]);
        if (!(c[1] >> 4) || !(c[1] & 15))
            return bad(err, off, "SOF55 component %u has sampling factors 0x%02X", i, c[1]);
    }
    dc->precision = P;
    dc->width = X;
    dc->height = Y;
    dc->ncomp = Nf;
    dc->have_frame = true;
    dc->lines = mira_malloc(((size_t)X + 2) * 4 * 2 * sizeof *dc->lines);
    if (!dc->lines) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS line buffers of %u columns",
                       X);
        return false;
    }
    return true;
}

static bool parse_lse(decoder *dc, const uint8_t *p, unsigned L, size_t off, mira_error **err)
{
    if (L < 1)
        return bad(err, off, "empty LSE segment");
    unsigned id = p[0];
    switch (id) {
    case 1:
        if (L != 11)
            return bad(err, off, "LSE preset coding parameters of %u bytes, not 13", L + 2);
        for (int i = 0; i < 5; i++)
            dc->preset[i] = rd16be(p + 1 + 2 * i);
        return true;
    case 2:
    case 3:
        return true; /* mapping tables: refused where a scan uses one */
    case 4: {
        unsigned w = L >= 2 ? p[1] : 0;
        if (w < 2 || w > 4 || L != 2 + 2 * w)
            return bad(err, off, "LSE oversize dimensions of %u bytes with Wxy %u", L + 2, w);
        uint32_t Y = rdbe(p + 2, w), X = rdbe(p + 2 + w, w);
        if (X > 65535 || Y > 65535)
            return bad(err, off, "the JPEG-LS frame is %u x %u; the data set says %u x %u",
                       (unsigned)X, (unsigned)Y, (unsigned)dc->d->columns,
                       (unsigned)dc->d->rows);
        dc->oversize_w = X;
        dc->oversize_h = Y;
        return true;
    }
    default:
        if (id >= 5 && id <= 0xD)
            return unsup(err, off, "JPEG-LS part 2 (extension) parameters, LSE type %u", id);
        return bad(err, off, "unknown LSE parameter type %u", id);
    }
}

/* Find and check the RSTm that ends restart interval n; restart the bit reader after it. */
static bool expect_restart(decoder *dc, bitreader *br, unsigned n, unsigned row, mira_error **err)
{
    /* the reader never passes a marker, and holds less than 16 bytes it has not used */
    size_t from = br->pos - br->start > 16 ? br->pos - 16 : br->start;
    size_t m = next_marker(dc->src, dc->len, from);
    while (m < dc->len && dc->src[m] == 0xFF)
        m++;
    if (m >= dc->len || dc->src[m] == 0xD9)
        return bad(err, m, "the JPEG-LS data ends at row %u of %u (restart marker RST%u expected)",
                   row, dc->height, n);
    if (dc->src[m] != 0xD0 + n)
        return bad(err, m, "marker 0x%02X found where RST%u was expected (row %u)", dc->src[m], n,
                   row);
    br_init(br, dc->src, m + 1, dc->len);
    return true;
}

/* The error for a scan that stopped in row y (truncated data or an invalid code). */
static bool scan_failed(decoder *dc, const bitreader *br, unsigned y, unsigned comp,
                        bool planar, mira_error **err)
{
    char which[48] = "";
    if (planar)
        snprintf(which, sizeof which, " (component %u)", comp);
    if (br->stop)
        return bad(err, br->pos, "the JPEG-LS data ends at row %u of %u%s", y, dc->height, which);
    return bad(err, br->pos, "invalid JPEG-LS code in row %u of %u%s", y, dc->height, which);
}

static bool decode_scan_data(decoder *dc, const unsigned *cidx, unsigned ns, unsigned ilv,
                             int near, bool charls_maxval, size_t off, size_t data, size_t *next,
                             mira_error **err);

/* Decode the scan whose header is p[0..L) and whose data starts at `data`; on success *next
 * is the offset of the next marker (or len). */
static bool decode_scan(decoder *dc, const uint8_t *p, unsigned L, size_t off, size_t data,
                        size_t *next, mira_error **err)
{
    if (!dc->have_frame)
        return bad(err, off, "SOS before the frame header (SOF55)");
    unsigned ns = L ? p[0] : 0;
    if (ns < 1 || ns > dc->ncomp || L != 4 + 2 * ns)
        return bad(err, off, "SOS with %u components in a %u-byte segment", ns, L + 2);
    unsigned cidx[4];
    for (unsigned i = 0; i < ns; i++) {
        unsigned id = p[1 + 2 * i], tm = p[2 + 2 * i];
        unsigned k = 0;
        while (k < dc->ncomp && dc->comp[k].id != id)
            k++;
        if (k == dc->ncomp)
            return bad(err, off, "SOS names component %u, which the frame does not have", id);
        if (dc->comp[k].done)
            return bad(err, off, "component %u is in two scans", id);
        for (unsigned j = 0; j < i; j++)
            if (cidx[j] == k)
                return bad(err, off, "SOS names component %u twice", id);
        if (tm != 0)
            return unsup(err, off, "component %u uses mapping table %u (palettes are not decoded)",
                         id, tm);
        cidx[i] = k;
    }
    int near = p[1 + 2 * ns];
    unsigned ilv = p[2 + 2 * ns], pt = p[3 + 2 * ns] & 15;
    if (ilv > 2)
        return bad(err, off, "SOS interleave mode %u is not 0, 1 or 2", ilv);
    if (ilv == 0 && ns > 1)
        return bad(err, off, "SOS with %u components and no interleaving", ns);
    if (pt != 0)
        return unsup(err, off, "JPEG-LS point transform %u", pt);
    if (ns == 1)
        ilv = 0; /* one component: every mode codes it the same way */
    /* A MAXVAL below 2^P - 1 as the standard reads it, then, if the data does not decode so,
     * as CharLS 2.x writes it (its streams with such a MAXVAL decode only that way). */
    mira_error *first = NULL;
    if (decode_scan_data(dc, cidx, ns, ilv, near, false, off, data, next, &first))
        return true;
    if (mira_error_get_code(first) == MIRA_ERR_INVALID && dc->preset[0] &&
        dc->preset[0] < (1u << dc->precision) - 1 &&
        decode_scan_data(dc, cidx, ns, ilv, near, true, off, data, next, NULL)) {
        mira_error_free(first);
        return true;
    }
    if (err)
        *err = first; /* the standard's reading is the one to report */
    else
        mira_error_free(first);
    return false;
}

/* Decode the data of a scan of ns components (cidx: their frame indices); see decode_scan. */
static bool decode_scan_data(decoder *dc, const unsigned *cidx, unsigned ns, unsigned ilv,
                             int near, bool charls_maxval, size_t off, size_t data, size_t *next,
                             mira_error **err)
{
    if (!setup_params(dc, near, charls_maxval, off, err))
        return false;
    const unsigned W = dc->width, H = dc->height;
    /* line buffers: ILV 1 one pair per component, ILV 2 one pair of interleaved pixels */
    unsigned nl = ilv == 1 ? ns : 1, nc = ilv == 2 ? ns : 1;
    unsigned stride = nc, len = (W + 2) * nc;
    uint16_t *prev[4], *cur[4];
    unsigned run_index[4] = {0};
    for (unsigned c = 0; c < nl; c++) {
        prev[c] = dc->lines + (size_t)(2 * c) * len;
        cur[c] = prev[c] + len;
    }
    memset(dc->lines, 0, (size_t)2 * nl * len * sizeof *dc->lines);
    reset_contexts(dc);
    unsigned interval = dc->restart ? dc->restart : H, rst = 0;
    bitreader br;
    br_init(&br, dc->src, data, dc->len);
    for (unsigned y = 0; y < H; y++) {
        if (y > 0 && y % interval == 0) {
            if (!expect_restart(dc, &br, rst & 7, y, err))
                return false;
            rst++;
            memset(dc->lines, 0, (size_t)2 * nl * len * sizeof *dc->lines);
            memset(run_index, 0, sizeof run_index);
            reset_contexts(dc);
        }
        for (unsigned c = 0; c < nl; c++) {
            uint16_t *t = prev[c];
            prev[c] = cur[c];
            cur[c] = t;
            /* edges: Ra of the first sample is Rb, Rd of the last is Rb (T.87 A.2.1) */
            for (unsigned k = 0; k < nc; k++) {
                cur[c][k] = prev[c][stride + k];
                prev[c][(W + 1) * stride + k] = prev[c][W * stride + k];
            }
            bool ok;
            if (nc == 1)
                ok = dc->p.fast ? decode_line_fast(dc, &br, prev[c], cur[c], &run_index[c])
                                : decode_line_any(dc, &br, prev[c], cur[c], &run_index[c]);
            else if (nc == 3 && dc->p.fast)
                ok = decode_pixels3_fast(dc, &br, prev[c], cur[c], &run_index[c]);
            else
                ok = decode_pixels_any(dc, &br, prev[c], cur[c], &run_index[c], nc);
            if (!ok || br.pad > br.nbits)
                return scan_failed(dc, &br, y, dc->comp[cidx[c]].id, ns < dc->ncomp, err);
        }
        for (unsigned c = 0; c < nl; c++)
            for (unsigned k = 0; k < nc; k++)
                store_line(dc, y, cidx[c + k], cur[c] + k, stride);
    }
    for (unsigned i = 0; i < ns; i++)
        dc->comp[cidx[i]].done = true;
    if (ns == dc->ncomp && ilv != 0)
        dc->interleaved = true;
    *next = next_marker(dc->src, dc->len, br.pos - br.start > 16 ? br.pos - 16 : br.start);
    return true;
}

static bool all_done(const decoder *dc)
{
    for (unsigned i = 0; i < dc->ncomp; i++)
        if (!dc->comp[i].done)
            return false;
    return dc->have_frame;
}

static bool decode_stream(decoder *dc, mira_error **err)
{
    const uint8_t *src = dc->src;
    size_t len = dc->len;
    if (len < 2 || src[0] != 0xFF || src[1] != 0xD8)
        return bad(err, 0, "no JPEG start of image (SOI) marker");
    size_t pos = 2;
    while (!all_done(dc)) {
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
        if (code == 0xD9) /* EOI */
            break;
        if (code == 0x01 || (code >= 0xD0 && code <= 0xD7))
            continue; /* TEM and stray RSTm have no length */
        if (code == 0xD8 || code == 0x00)
            return bad(err, moff, "unexpected marker 0x%02X", code);
        if (len - pos < 2)
            return bad(err, moff, "marker 0x%02X has no room for its length", code);
        unsigned L = rd16be(src + pos);
        if (L < 2 || L > len - pos)
            return bad(err, moff, "marker 0x%02X segment length %u runs past the end", code, L);
        const uint8_t *p = src + pos + 2;
        pos += L;
        L -= 2;
        switch (code) {
        case 0xF7:
            if (!parse_sof55(dc, p, L, moff, err))
                return false;
            break;
        case 0xF8:
            if (!parse_lse(dc, p, L, moff, err))
                return false;
            break;
        case 0xDD:
            if (L < 2 || L > 4)
                return bad(err, moff, "DRI segment of %u bytes", L + 2);
            dc->restart = rdbe(p, L);
            break;
        case 0xE8: /* APP8: CharLS's colour transform, "mrfx" and one byte */
            if (L == 5 && memcmp(p, "mrfx", 4) == 0) {
                if (p[4] > 3)
                    return unsup(err, moff, "JPEG-LS colour transform %u (HP1 to HP3 are decoded)",
                                 p[4]);
                dc->transform = p[4];
            }
            break;
        case 0xDA: {
            size_t next = len;
            if (!decode_scan(dc, p, L, moff, pos, &next, err))
                return false;
            pos = next;
            break;
        }
        case 0xF9:
            return unsup(err, moff, "JPEG-LS part 2 (extension) frame (SOF57)");
        case 0xC0:
        case 0xC1:
        case 0xC2:
        case 0xC3:
        case 0xC5:
        case 0xC6:
        case 0xC7:
        case 0xC9:
        case 0xCA:
        case 0xCB:
        case 0xCD:
        case 0xCE:
        case 0xCF:
            return unsup(err, moff, "a JPEG frame (SOF%u) that is not JPEG-LS", code - 0xC0);
        default:
            break; /* APPn, COM, DNL and others: skipped */
        }
    }
    if (!dc->have_frame)
        return bad(err, len, "no SOF55 frame header before the end of the data");
    for (unsigned i = 0; i < dc->ncomp; i++)
        if (!dc->comp[i].done)
            return bad(err, pos < len ? pos : len,
                       "component %u (identifier %u) is in no scan", i, dc->comp[i].id);
    /* CharLS transforms the colours of interleaved scans only: with one scan per component it
     * writes the segment but codes the components as they are */
    if (dc->transform && dc->interleaved) {
        if (dc->ncomp != 3 || (dc->precision != 8 && dc->precision != 16))
            return unsup(err, 0, "colour transform HP%u on %u components of %u bits (3 of 8 or "
                                 "16 bits are decoded)",
                         dc->transform, dc->ncomp, dc->precision);
        inverse_transform(dc);
    }
    return true;
}

static bool jpegls_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                          size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    (void)photometric; /* the colour space is what was encoded (an HP transform is undone) */
    size_t sb = mira_pixel_sample_bytes(d);
    size_t need = (size_t)d->rows * d->columns;
    if (d->rows == 0 || d->columns == 0 || d->samples < 1 || d->samples > 4 ||
        need / d->rows != d->columns || need > SIZE_MAX / d->samples / sb ||
        need * d->samples * sb != dst_len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG-LS frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples of %zu bytes", dst_len,
                       (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples, sb);
        return false;
    }
    decoder *dc = mira_calloc(1, sizeof *dc);
    if (!dc) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS decoder state");
        return false;
    }
    dc->src = src;
    dc->len = len;
    dc->d = d;
    dc->dst = dst;
    dc->sb = sb;
    bool ok = decode_stream(dc, err);
    mira_free(dc->lines);
    mira_free(dc->qlut_base);
    mira_free(dc);
    return ok;
}

/* ------------------------------------------------------------------ encoding */

static bool charls_failed(charls_jpegls_errc rc, const char *what, mira_error **err)
{
    mira_error_set(err, MIRA_ERR_INVALID, "bad JPEG-LS data", "CharLS could not %s: %s", what,
                   charls_get_error_message(rc));
    return false;
}


static bool encode(charls_jpegls_encoder *enc, const uint8_t *src, size_t len,
                   const mira_pixel_desc *d, mira__buf *out, mira_error **err)
{
    size_t sb = mira_pixel_sample_bytes(d);
    unsigned bits = d->bits_stored;
    if (sb > 2 || bits < 2 || bits > 16 || bits > d->bits_allocated) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG-LS image",
                       "JPEG-LS encodes 2 to 16 bits per sample; this image has %u bits stored "
                       "in %u bits allocated",
                       bits, (unsigned)d->bits_allocated);
        return false;
    }
    if (d->samples != 1 && d->samples != 3) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "unsupported JPEG-LS image",
                       "%u samples per pixel (1 or 3 are encoded)", (unsigned)d->samples);
        return false;
    }
    /* CharLS takes bits_per_sample-wide unsigned values, in one byte up to 8 bits and two
     * above: signed ones lose their sign bits, 8-bit values in 16-bit samples are narrowed */
    const uint8_t *pixels = src;
    uint8_t *masked = NULL;
    size_t cb = bits > 8 ? 2 : 1, plen = len;
    if ((d->is_signed && bits < 8 * sb) || cb != sb) {
        size_t n = len / sb;
        plen = n * cb;
        if (!(masked = mira_malloc(plen ? plen : 1))) {
            mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS input of %zu bytes",
                           plen);
            return false;
        }
        uint32_t mask = (1u << bits) - 1;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = sb == 1 ? src[i] : (uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8;
            v &= mask;
            masked[i * cb] = (uint8_t)v;
            if (cb == 2)
                masked[i * cb + 1] = (uint8_t)(v >> 8);
        }
        pixels = masked;
    }
    charls_frame_info fi = {.width = d->columns,
                            .height = d->rows,
                            .bits_per_sample = (int32_t)bits,
                            .component_count = d->samples};
    charls_jpegls_errc rc;
    size_t cap = 0;
    bool ok = false;
    if ((rc = charls_jpegls_encoder_set_frame_info(enc, &fi)) != 0 ||
        (rc = charls_jpegls_encoder_set_near_lossless(enc, 0)) != 0 ||
        (rc = charls_jpegls_encoder_set_interleave_mode(
             enc, d->samples == 3 ? CHARLS_INTERLEAVE_MODE_SAMPLE : CHARLS_INTERLEAVE_MODE_NONE)) !=
            0 ||
        (rc = charls_jpegls_encoder_get_estimated_destination_size(enc, &cap)) != 0) {
        charls_failed(rc, "set up the JPEG-LS encoder", err);
        goto done;
    }
    size_t start = out->len;
    if (!mira__buf_reserve(out, cap)) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS output of %zu bytes", cap);
        goto done;
    }
    size_t written = 0;
    if ((rc = charls_jpegls_encoder_set_destination_buffer(enc, out->data + start, cap)) != 0 ||
        (rc = charls_jpegls_encoder_encode_from_buffer(enc, pixels, plen, 0)) != 0 ||
        (rc = charls_jpegls_encoder_get_bytes_written(enc, &written)) != 0) {
        charls_failed(rc, "encode the JPEG-LS frame", err);
        goto done;
    }
    out->len = start + written;
    ok = true;
done:
    mira_free(masked);
    return ok;
}

static bool jpegls_encode(const uint8_t *src, size_t len, const mira_pixel_desc *d, mira__buf *out,
                          mira_photometric *photometric, mira_error **err)
{
    *photometric = d->photometric;
    if (d->rows == 0 || d->columns == 0 || d->rows > 65535 || d->columns > 65535 ||
        mira_pixel_frame_bytes(d) != len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG-LS input",
                       "%zu bytes for a %u x %u frame (JPEG-LS frames are at most 65535 x 65535)",
                       len, (unsigned)d->columns, (unsigned)d->rows);
        return false;
    }
    charls_jpegls_encoder *enc = charls_jpegls_encoder_create();
    if (!enc) {
        mira_error_set(err, MIRA_ERR_NOMEM, "out of memory", "JPEG-LS encoder");
        return false;
    }
    bool ok = encode(enc, src, len, d, out, err);
    charls_jpegls_encoder_destroy(enc);
    return ok;
}

const mira__codec mira__codec_jpegls = {
    .name = "JPEG-LS",
    .ts_uids = jpegls_ts,
    .decode = jpegls_decode,
    .encode = jpegls_encode,
};
