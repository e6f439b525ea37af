/* JPEG 2000 and HTJ2K (ISO/IEC 15444-1, -15) on OpenJPEG: decoder, and a lossless encoder. */
#include "pixel/codec.h"

#include <openjpeg.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Decoding: raw codestreams (SOC, FF 4F) and JP2 files (signature box), told apart by their
 * first bytes, decoded from memory by OpenJPEG (2.5 also decodes HTJ2K codestreams), one
 * codec object per call, OpenJPEG's strict mode (a truncated codestream is an error, not a
 * partial picture). Before OpenJPEG sees the data, the SIZ marker segment is read here and
 * checked against the frame: size, number of components, precision, subsampling and the number
 * of tiles. OpenJPEG allocates per tile and per component from SIZ, so this keeps a hostile
 * header from making it allocate more than the frame's size suggests. The marker structure is
 * then walked to EOC, and HT coded data checked (see check_tile_parts: Debian's OpenJPEG 2.5.0
 * can abort the process on some invalid HTJ2K data).
 *
 * Values are written as the codestream gives them: signed if the component is signed (Ssiz),
 * whatever Pixel Representation says; pixels.c then masks to Bits Stored and sign-extends.
 * Colour: OpenJPEG undoes the multiple component transform when the COD marker asks for it;
 * with a photometric interpretation of YBR_ICT or YBR_RCT the output is then RGB, which is
 * what *photometric says (GDCM's `gdcmconv --raw` writes RGB too). Subsampled components
 * (XRsiz / YRsiz other than 1) are MIRA_ERR_UNSUPPORTED.
 *
 * Encoding (JPEG 2000 Lossless, .90): reversible 5/3 wavelet, one tile, one quality layer,
 * LRCP, 64x64 code-blocks, up to 6 resolutions (fewer for images under 32 pixels a side),
 * a raw codestream (no JP2 boxes, as PS3.5 A.4.4 asks). Three-sample RGB is encoded with the
 * reversible colour transform (RCT) and declared YBR_RCT, as PS3.5 8.2.4 requires when the
 * transform is used; GDCM's `gdcmconv --j2k` and pydicom's encoders do the same. Other
 * photometric interpretations (YBR_FULL, monochrome, palette) are encoded without transform and
 * keep their name.
 *
 * Precision: OpenJPEG decodes at most 31 bits. Its encoder keeps wavelet coefficients in 32-bit
 * fixed point with 6 fractional bits in the code-block coder, so reversible coding stops being
 * exact somewhere above 20 bits, depending on the image (a 2x2 checkerboard of 0 and 2^24 - 1
 * already breaks at 24 bits, the colour transform adds a bit). At the other end, 1-bit RGB
 * noise outgrows the default 2 guard bits (so below 8 bits there are 3). Hence: at most
 * J2K_MAX_PRECISION bits, and outside 8..16 bits, the range GDCM and pydicom exercise every
 * day, each encoded frame is decoded again and compared with its input; a frame that does not
 * come back exactly is MIRA_ERR_UNSUPPORTED, never silently lossy. Data with more Bits Stored
 * than that (32-bit RT Dose grids, whose values need about 21 bits) is encoded with the
 * precision its values need: decoding gives the same values, and readers that mask to Bits
 * Stored see them unchanged (OpenJPEG, and so GDCM, cannot decode the 32-bit precision that
 * Bits Stored would ask for).
 *
 * OpenJPEG writes a tile into a buffer sized from the tile's area and precision (1.4 x the raw
 * bits + 500 bytes); noisy low-precision colour data can need more, and the encoding then
 * fails. It is then tried once more with a tile four times the image's height: still one tile
 * (tiles are clipped to the image area), and a buffer four times larger.
 */

#define J2K_MAX_PRECISION 24
#define J2K_MAX_TILES 65535u /* Isot is 16 bits, 65535 is reserved: at most 65535 tiles */
#define J2K_MIN_TILE_PIXELS 64u
#define J2K_CHUNK (1u << 20)

static const char *const j2k_ts[] = {MIRA_TS_J2K_LOSSLESS,   MIRA_TS_J2K,
                                     MIRA_TS_HTJ2K_LOSSLESS, MIRA_TS_HTJ2K_LOSSLESS_RPCL,
                                     MIRA_TS_HTJ2K,          NULL};

static const uint8_t jp2_signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};

/* ------------------------------------------------------------------ OpenJPEG messages */

/* OpenJPEG's error messages of one call, joined with "; " (user data of its callbacks). */
typedef struct messages {
    char text[300];
    size_t len;
} messages;

static void on_error(const char *msg, void *user)
{
    messages *m = user;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    if (n == 0 || m->len + 3 >= sizeof m->text)
        return;
    if (m->len) {
        memcpy(m->text + m->len, "; ", 2);
        m->len += 2;
    }
    if (n > sizeof m->text - 1 - m->len)
        n = sizeof m->text - 1 - m->len;
    memcpy(m->text + m->len, msg, n);
    m->len += n;
    m->text[m->len] = 0;
}

static void on_quiet(const char *msg, void *user)
{
    (void)msg;
    (void)user;
}

static void silence(opj_codec_t *codec, messages *m)
{
    opj_set_info_handler(codec, on_quiet, NULL);
    opj_set_warning_handler(codec, on_quiet, NULL);
    opj_set_error_handler(codec, on_error, m);
}

/* ------------------------------------------------------------------ errors */

static bool MIRA_PRINTF(3, 4) fail(mira_error **err, mira_error_code code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *summary = code == MIRA_ERR_INVALID       ? "invalid JPEG 2000 codestream"
                          : code == MIRA_ERR_UNSUPPORTED ? "unsupported JPEG 2000 codestream"
                          : code == MIRA_ERR_NOMEM       ? "out of memory"
                                                         : "JPEG 2000 error";
    mira_error_set(err, code, summary, "%s", msg);
    return false;
}

/* ------------------------------------------------------------------ memory streams */

/* Reading: a window on the caller's buffer. */
typedef struct reader {
    const uint8_t *data;
    size_t len, pos;
} reader;

static OPJ_SIZE_T r_read(void *buf, OPJ_SIZE_T n, void *user)
{
    reader *r = user;
    size_t left = r->len - r->pos;
    if (left == 0)
        return (OPJ_SIZE_T)-1; /* the end, as OpenJPEG expects it */
    if (n > left)
        n = left;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return n;
}

static OPJ_OFF_T r_skip(OPJ_OFF_T n, void *user)
{
    reader *r = user;
    if (n < 0) {
        uint64_t back = (uint64_t)0 - (uint64_t)n;
        if (back > r->pos)
            return -1;
        r->pos -= (size_t)back;
        return n;
    }
    if ((uint64_t)n > r->len - r->pos) {
        r->pos = r->len;
        return -1;
    }
    r->pos += (size_t)n;
    return n;
}

static OPJ_BOOL r_seek(OPJ_OFF_T n, void *user)
{
    reader *r = user;
    if (n < 0 || (uint64_t)n > r->len)
        return OPJ_FALSE;
    r->pos = (size_t)n;
    return OPJ_TRUE;
}

/* Writing: bytes base.. of a mira__buf, with a position that seek / skip may move back. */
typedef struct writer {
    mira__buf *out;
    size_t base, pos;
} writer;

/* Make the output at least base + end bytes long (new bytes zero). */
static bool w_extend(writer *w, size_t end)
{
    mira__buf *b = w->out;
    if (end > SIZE_MAX - w->base)
        return false;
    size_t need = w->base + end;
    if (need <= b->len)
        return true;
    if (!mira__buf_reserve(b, need - b->len))
        return false;
    memset(b->data + b->len, 0, need - b->len + 1);
    b->len = need;
    return true;
}

static OPJ_SIZE_T w_write(void *buf, OPJ_SIZE_T n, void *user)
{
    writer *w = user;
    if (n > SIZE_MAX - w->pos || !w_extend(w, w->pos + n))
        return (OPJ_SIZE_T)-1;
    memcpy(w->out->data + w->base + w->pos, buf, n);
    w->pos += n;
    return n;
}

static OPJ_OFF_T w_skip(OPJ_OFF_T n, void *user)
{
    writer *w = user;
    uint64_t m = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    if (n < 0 ? m > w->pos : m > SIZE_MAX - w->pos)
        return -1;
    size_t pos = n < 0 ? w->pos - (size_t)m : w->pos + (size_t)m;
    if (!w_extend(w, pos))
        return -1;
    w->pos = pos;
    return n;
}

static OPJ_BOOL w_seek(OPJ_OFF_T n, void *user)
{
    writer *w = user;
    if (n < 0 || (uint64_t)n > SIZE_MAX || !w_extend(w, (size_t)n))
        return OPJ_FALSE;
    w->pos = (size_t)n;
    return OPJ_TRUE;
}

/* ------------------------------------------------------------------ the main header */

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the SIZ and COD marker segments of the main header say. */
typedef struct header {
    uint32_t width, height;
    uint64_t tiles;
    unsigned ncomp;
    unsigned prec[4];
    bool sgnd[4];
    bool mct;         /* COD: multiple component transform */
    bool ht;          /* the main header asks for HT code-blocks (Rsiz, CAP, COD or COC) */
    unsigned layers;  /* COD: quality layers */
    size_t first_sot; /* offset of the first tile-part */
} header;

/* Find the contiguous codestream box of a JP2 file: *off and *n receive its contents. */
static bool find_jp2c(const uint8_t *src, size_t len, size_t *off, size_t *n, mira_error **err)
{
    size_t pos = 0;
    while (len - pos >= 8) {
        uint64_t box = rd32(src + pos), head = 8;
        uint32_t type = rd32(src + pos + 4);
        if (box == 1) {
            if (len - pos < 16)
                break;
            box = (uint64_t)rd32(src + pos + 8) << 32 | rd32(src + pos + 12);
            head = 16;
        } else if (box == 0) {
            box = len - pos; /* the last box: to the end of the data */
        }
        if (box < head || box > len - pos)
            return fail(err, MIRA_ERR_INVALID,
                        "JP2 box '%c%c%c%c' at offset %zu has length %llu, beyond the %zu bytes "
                        "of the frame",
                        (char)(type >> 24), (char)(type >> 16), (char)(type >> 8), (char)type, pos,
                        (unsigned long long)box, len);
        if (type == 0x6A703263u) { /* 'jp2c' */
            *off = pos + (size_t)head;
            *n = (size_t)(box - head);
            return true;
        }
        pos += (size_t)box;
    }
    return fail(err, MIRA_ERR_INVALID, "JP2 file of %zu bytes without a codestream box (jp2c)",
                len);
}

/* Read SIZ (which must follow SOC) and the main header's COD, and check them against d. */
static bool read_header(const uint8_t *cs, size_t n, const mira_pixel_desc *d, header *h,
                        mira_error **err)
{
    if (n < 4 || cs[0] != 0xFF || cs[1] != 0x4F)
        return fail(err, MIRA_ERR_INVALID, "the codestream does not start with SOC (FF 4F)");
    if (cs[2] != 0xFF || cs[3] != 0x51)
        return fail(err, MIRA_ERR_INVALID, "marker %02X %02X after SOC, where SIZ (FF 51) must be",
                    cs[2], cs[3]);
    if (n < 6)
        return fail(err, MIRA_ERR_INVALID, "the codestream ends in its SIZ marker segment");
    uint32_t L = rd16(cs + 4);
    if (L < 41 || L > n - 4)
        return fail(err, MIRA_ERR_INVALID,
                    "SIZ marker segment length %u is below 41 or beyond the %zu bytes of data", L,
                    n - 4);
    const uint8_t *p = cs + 6;
    uint32_t xsiz = rd32(p + 2), ysiz = rd32(p + 6), x0 = rd32(p + 10), y0 = rd32(p + 14);
    uint32_t tw = rd32(p + 18), th = rd32(p + 22), tx0 = rd32(p + 26), ty0 = rd32(p + 30);
    unsigned csiz = rd16(p + 34);
    if (csiz == 0 || L != 38 + 3 * csiz)
        return fail(err, MIRA_ERR_INVALID, "SIZ has %u components in a segment of length %u", csiz,
                    L);
    if (xsiz <= x0 || ysiz <= y0 || tw == 0 || th == 0 || tx0 > x0 || ty0 > y0 ||
        (uint64_t)tx0 + tw <= x0 || (uint64_t)ty0 + th <= y0)
        return fail(err, MIRA_ERR_INVALID,
                    "SIZ image area (%u, %u)-(%u, %u) and tiles of %u x %u at (%u, %u) are "
                    "inconsistent",
                    x0, y0, xsiz, ysiz, tw, th, tx0, ty0);
    h->width = xsiz - x0;
    h->height = ysiz - y0;
    h->tiles = ((uint64_t)(xsiz - tx0) + tw - 1) / tw * (((uint64_t)(ysiz - ty0) + th - 1) / th);
    h->ncomp = csiz;
    if (h->width != d->columns || h->height != d->rows)
        return fail(err, MIRA_ERR_INVALID,
                    "the codestream is %u x %u (columns x rows), the data set says %u x %u",
                    h->width, h->height, (unsigned)d->columns, (unsigned)d->rows);
    if (csiz != d->samples)
        return fail(err, MIRA_ERR_INVALID,
                    "the codestream has %u components, the data set says %u samples per pixel",
                    csiz, (unsigned)d->samples);
    if (h->tiles > J2K_MAX_TILES)
        return fail(err, MIRA_ERR_INVALID, "SIZ declares %llu tiles, more than 65535",
                    (unsigned long long)h->tiles);
    /* OpenJPEG keeps several kilobytes per tile from the start: 1 x 1 tiles would make a
     * 100-byte codestream of a 256 x 256 frame cost most of a gigabyte */
    if (h->tiles > 1 && h->tiles > (uint64_t)h->width * h->height / J2K_MIN_TILE_PIXELS)
        return fail(err, MIRA_ERR_UNSUPPORTED,
                    "SIZ declares %llu tiles for %u x %u pixels; tiles of fewer than %u pixels "
                    "on average are not decoded",
                    (unsigned long long)h->tiles, h->width, h->height, J2K_MIN_TILE_PIXELS);
    for (unsigned c = 0; c < csiz; c++) {
        const uint8_t *q = p + 36 + 3 * c;
        unsigned prec = (q[0] & 0x7Fu) + 1, dx = q[1], dy = q[2];
        if (prec > 38 || dx == 0 || dy == 0)
            return fail(err, MIRA_ERR_INVALID,
                        "SIZ component %u has precision %u and subsampling %u x %u", c, prec, dx,
                        dy);
        if (dx != 1 || dy != 1)
            return fail(err, MIRA_ERR_UNSUPPORTED,
                        "component %u is subsampled %u x %u (only full-resolution components are "
                        "decoded)",
                        c, dx, dy);
        if (prec > d->bits_allocated)
            return fail(err, MIRA_ERR_INVALID,
                        "component %u has precision %u, above Bits Allocated %u", c, prec,
                        (unsigned)d->bits_allocated);
        if (prec > 31)
            return fail(err, MIRA_ERR_UNSUPPORTED,
                        "component %u has precision %u; OpenJPEG decodes at most 31 bits", c, prec);
        if (c < 4) {
            h->prec[c] = prec;
            h->sgnd[c] = (q[0] & 0x80) != 0;
        }
    }
    /* the rest of the main header, up to the first SOT: COD (colour transform, layers,
     * code-block style), COC, CAP. Every marker segment there has a length; a walk that does
     * not end on a SOT is a codestream that is not one (OpenJPEG would skip what it does not
     * know by searching for the next marker it does, and go on decoding whatever follows). */
    h->mct = false;
    h->ht = (rd16(p) & 0x4000) != 0; /* Rsiz: Part 15 capabilities */
    h->layers = 0;
    size_t pos = 4 + L;
    for (;;) {
        if (n - pos < 4 || cs[pos] != 0xFF)
            return fail(err, MIRA_ERR_INVALID,
                        "no marker segment or SOT at offset %zu of the main header", pos);
        unsigned marker = cs[pos + 1];
        uint32_t sl = rd16(cs + pos + 2);
        if (marker == 0x90)
            break;
        if (sl < 2 || sl > n - pos - 2)
            return fail(err, MIRA_ERR_INVALID,
                        "main header marker FF %02X at offset %zu has length %u, beyond the "
                        "data",
                        marker, pos, sl);
        if (marker == 0x52 && sl >= 12) {
            h->mct = cs[pos + 8] != 0;
            h->layers = rd16(cs + pos + 6);
            h->ht |= (cs[pos + 12] & 0x40) != 0;
        } else if (marker == 0x53 && sl >= 9) {
            h->ht |= (cs[pos + 9] & 0x40) != 0; /* Ccoc is one byte: Csiz is at most 4 */
        } else if (marker == 0x50) {
            h->ht = true;
        }
        pos += 2 + sl;
    }
    h->first_sot = pos;
    return true;
}

/* OpenJPEG 2.5.0, whose HT decoder aborts on some invalid data (see check_tile_parts). */
static bool openjpeg_asserts_on_ht(void)
{
    unsigned major = 0, minor = 0, patch = 0;
    if (sscanf(opj_version(), "%u.%u.%u", &major, &minor, &patch) < 2)
        return true;
    return major < 2 || (major == 2 && (minor < 5 || (minor == 5 && patch == 0)));
}

/*
 * The tile-parts, walked before OpenJPEG sees them: SOT, marker segments (each with its
 * length), SOD, the coded data up to the length Psot gives, then the next SOT or EOC. A valid
 * codestream always walks; one that does not is refused (OpenJPEG would resynchronise on
 * whatever looks like a marker).
 *
 * Why: Debian's OpenJPEG 2.5.0 is built with assertions on, and its HT block decoder asserts
 * on invalid data (mel_init: "melp->data[0] <= 0x8F", i.e. no 0xFF followed by a byte above
 * 0x8F in a MEL segment; upstream turned it into a check after 2.5.0). An assertion aborts the
 * whole process, so for HT tile-parts:
 * - the coded data must hold no marker code (0xFF, then above 0x8F) other than SOP and EPH:
 *   HT segments are built so that none occurs (as Part 1 A.1 requires of all coded data);
 * - with OpenJPEG 2.5.0, a single quality layer: with more, OpenJPEG joins a code-block's
 *   contributions from several packets, and an 0xFF ending one next to a byte above 0x8F
 *   starting the next can reach the assertion without showing in the codestream.
 */
static bool check_coded(const uint8_t *cs, size_t from, size_t to, mira_error **err)
{
    for (size_t i = from; i + 1 < to; i++) {
        if (cs[i] != 0xFF || cs[i + 1] <= 0x8F)
            continue;
        if (cs[i + 1] == 0x91) { /* SOP: marker, length, packet number */
            i += 5;
            continue;
        }
        if (cs[i + 1] == 0x92) { /* EPH */
            i += 1;
            continue;
        }
        return fail(err, MIRA_ERR_INVALID,
                    "marker code FF %02X at offset %zu inside the coded data of an HTJ2K "
                    "tile-part",
                    cs[i + 1], i);
    }
    return true;
}

static bool check_tile_parts(const uint8_t *cs, size_t n, const header *h, mira_error **err)
{
    bool old = openjpeg_asserts_on_ht();
    uint8_t seen[(J2K_MAX_TILES + 8) / 8] = {0}; /* tiles with a tile-part */
    size_t pos = h->first_sot;
    while (n - pos >= 2) {
        if (cs[pos] == 0xFF && cs[pos + 1] == 0xD9)
            break; /* EOC: anything after it (fragment padding) is ignored */
        if (n - pos < 12 || cs[pos] != 0xFF || cs[pos + 1] != 0x90 || rd16(cs + pos + 2) != 10)
            return fail(err, MIRA_ERR_INVALID,
                        "no tile-part (SOT) or end of codestream (EOC) at offset %zu", pos);
        uint32_t psot = rd32(cs + pos + 6), isot = rd16(cs + pos + 4);
        if (psot != 0 && psot < 14)
            return fail(err, MIRA_ERR_INVALID, "tile-part at offset %zu has length %u", pos, psot);
        if (isot >= h->tiles)
            return fail(err, MIRA_ERR_INVALID,
                        "tile-part at offset %zu is of tile %u; the image has %llu tiles", pos,
                        isot, (unsigned long long)h->tiles);
        seen[isot / 8] |= (uint8_t)(1u << (isot % 8));
        /* Psot 0: the last tile-part, up to EOC; a length beyond the data: cut short, which
         * OpenJPEG reports */
        size_t end = psot == 0 || psot > n - pos ? n : pos + psot;
        bool ht = h->ht;
        unsigned layers = h->layers;
        size_t m = pos + 12;
        while (end - m >= 2 && cs[m] == 0xFF && cs[m + 1] != 0x93) {
            uint32_t sl = end - m >= 4 ? rd16(cs + m + 2) : 0;
            if (sl < 2 || sl > end - m - 2)
                return fail(err, MIRA_ERR_INVALID,
                            "tile-part header marker FF %02X at offset %zu has length %u, "
                            "beyond the tile-part",
                            cs[m + 1], m, sl);
            if (cs[m + 1] == 0x52 && sl >= 12) {
                layers = rd16(cs + m + 6);
                ht |= (cs[m + 12] & 0x40) != 0;
            } else if (cs[m + 1] == 0x53 && sl >= 9) {
                ht |= (cs[m + 9] & 0x40) != 0;
            }
            m += 2 + sl;
        }
        if (end - m < 2 || cs[m] != 0xFF || cs[m + 1] != 0x93)
            return fail(err, MIRA_ERR_INVALID,
                        "the tile-part header at offset %zu does not end with SOD", pos);
        size_t data_end = end;
        if (psot == 0) { /* the coded data stops at the EOC that ends the codestream */
            while (data_end > m + 2 && cs[data_end - 1] == 0)
                data_end--;
            if (data_end - (m + 2) >= 2 && cs[data_end - 2] == 0xFF && cs[data_end - 1] == 0xD9)
                data_end -= 2;
        }
        if (ht && old && layers > 1)
            return fail(err, MIRA_ERR_UNSUPPORTED,
                        "HTJ2K codestream with %u quality layers: OpenJPEG %s can abort the "
                        "process on such streams when they are damaged, so only single-layer "
                        "HTJ2K is decoded",
                        layers, opj_version());
        if (ht && !check_coded(cs, m + 2, data_end, err))
            return false;
        if (end >= n)
            break;
        pos = end;
    }
    /* OpenJPEG leaves a tile without tile-parts blank; a codestream has them all (a cut one,
     * whose last tile-part runs past the data, is left for OpenJPEG to report) */
    for (uint32_t t = 0; t < h->tiles; t++)
        if (!(seen[t / 8] >> (t % 8) & 1))
            return fail(err, MIRA_ERR_INVALID, "tile %u of %llu has no tile-part in the codestream",
                        t, (unsigned long long)h->tiles);
    return true;
}

/* ------------------------------------------------------------------ decoding */

/* Copy the decoded components into dst, interleaved, little-endian, sb bytes a value. */
static void store(const opj_image_t *img, size_t npix, size_t sb, uint8_t *dst)
{
    unsigned nc = img->numcomps;
    for (unsigned c = 0; c < nc; c++) {
        const OPJ_INT32 *v = img->comps[c].data;
        uint8_t *o = dst + c * sb;
        size_t stride = (size_t)nc * sb;
        if (sb == 1) {
            for (size_t i = 0; i < npix; i++, o += stride)
                o[0] = (uint8_t)v[i];
        } else if (sb == 2) {
            for (size_t i = 0; i < npix; i++, o += stride) {
                uint32_t x = (uint32_t)v[i];
                o[0] = (uint8_t)x;
                o[1] = (uint8_t)(x >> 8);
            }
        } else {
            for (size_t i = 0; i < npix; i++, o += stride) {
                uint32_t x = (uint32_t)v[i];
                o[0] = (uint8_t)x;
                o[1] = (uint8_t)(x >> 8);
                o[2] = (uint8_t)(x >> 16);
                o[3] = (uint8_t)(x >> 24);
                for (size_t b = 4; b < sb; b++)
                    o[b] = (uint8_t)(v[i] < 0 ? 0xFF : 0);
            }
        }
    }
}

/*
 * Threads: OpenJPEG decodes the code-blocks of a tile and runs the inverse wavelet transform
 * on a pool of worker threads (the calling thread waits), so `threads` workers keep that many
 * cores busy. One thread is asked for as a pool of none (OpenJPEG's pool of one would hand
 * every job to a worker and wait). The count is always set, so that OPJ_NUM_THREADS in the
 * environment, which OpenJPEG reads otherwise, does not change what a caller asked for. The
 * values do not depend on the count: code-blocks are decoded independently and each worker
 * writes its own rows.
 */
static bool decode_frame(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                         size_t dst_len, int threads, mira_photometric *photometric,
                         mira_error **err)
{
    size_t sb = mira_pixel_sample_bytes(d);
    size_t npix = (size_t)d->rows * d->columns;
    if (d->rows == 0 || d->columns == 0 || d->samples < 1 || d->samples > 4 ||
        npix / d->rows != d->columns || npix > SIZE_MAX / d->samples / sb ||
        npix * d->samples * sb != dst_len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG 2000 frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples of %zu bytes", dst_len,
                       (unsigned)d->rows, (unsigned)d->columns, (unsigned)d->samples, sb);
        return false;
    }
    OPJ_CODEC_FORMAT format;
    size_t cs_off = 0, cs_len = len;
    if (len >= 2 && src[0] == 0xFF && src[1] == 0x4F) {
        format = OPJ_CODEC_J2K;
    } else if (len >= sizeof jp2_signature && memcmp(src, jp2_signature, 12) == 0) {
        format = OPJ_CODEC_JP2;
        if (!find_jp2c(src, len, &cs_off, &cs_len, err))
            return false;
    } else {
        return fail(err, MIRA_ERR_INVALID,
                    "%zu bytes that are neither a JPEG 2000 codestream (SOC, FF 4F) nor a JP2 file",
                    len);
    }
    header h = {0};
    if (!read_header(src + cs_off, cs_len, d, &h, err) ||
        !check_tile_parts(src + cs_off, cs_len, &h, err))
        return false;

    reader r = {.data = src, .len = len, .pos = 0};
    messages msg = {.len = 0};
    msg.text[0] = 0;
    opj_stream_t *stream = opj_stream_create(len < J2K_CHUNK ? len : J2K_CHUNK, OPJ_TRUE);
    opj_codec_t *codec = opj_create_decompress(format);
    opj_image_t *img = NULL;
    bool ok = false;
    if (!stream || !codec) {
        fail(err, MIRA_ERR_NOMEM, "OpenJPEG decoder state for a %zu-byte codestream", len);
        goto done;
    }
    opj_stream_set_user_data(stream, &r, NULL);
    opj_stream_set_user_data_length(stream, len);
    opj_stream_set_read_function(stream, r_read);
    opj_stream_set_skip_function(stream, r_skip);
    opj_stream_set_seek_function(stream, r_seek);
    silence(codec, &msg);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    bool setup = opj_setup_decoder(codec, &params);
    /* false if the threads cannot be started: OpenJPEG then decodes in this thread */
    if (setup && opj_has_thread_support())
        (void)opj_codec_set_threads(codec, threads > 1 ? threads : 0);
    if (!setup || !opj_read_header(stream, codec, &img) ||
        !opj_decode(codec, stream, img) || !opj_end_decompress(codec, stream)) {
        fail(err, MIRA_ERR_INVALID, "OpenJPEG could not decode the %zu-byte %s: %s", len,
             format == OPJ_CODEC_JP2 ? "JP2 file" : "codestream",
             msg.len ? msg.text : "no reason given");
        goto done;
    }
    /* what OpenJPEG made of it must still be the frame (a JP2 palette or channel definition
     * can change the components) */
    if (img->numcomps != d->samples) {
        fail(err, MIRA_ERR_INVALID,
             "the decoded image has %u components, the data set says %u samples per pixel",
             img->numcomps, (unsigned)d->samples);
        goto done;
    }
    for (unsigned c = 0; c < img->numcomps; c++) {
        const opj_image_comp_t *k = &img->comps[c];
        if (k->w != d->columns || k->h != d->rows || !k->data) {
            fail(err, MIRA_ERR_INVALID,
                 "decoded component %u is %u x %u (columns x rows), the data set says %u x %u", c,
                 k->w, k->h, (unsigned)d->columns, (unsigned)d->rows);
            goto done;
        }
        if (k->prec > d->bits_allocated || k->prec > 31) {
            fail(err, MIRA_ERR_INVALID,
                 "decoded component %u has precision %u, above Bits Allocated %u", c, k->prec,
                 (unsigned)d->bits_allocated);
            goto done;
        }
    }
    store(img, npix, sb, dst);
    if (photometric && d->samples == 3 && h.mct &&
        (d->photometric == MIRA_PHOTO_YBR_ICT || d->photometric == MIRA_PHOTO_YBR_RCT))
        *photometric = MIRA_PHOTO_RGB;
    ok = true;
done:
    opj_image_destroy(img);
    opj_destroy_codec(codec);
    opj_stream_destroy(stream);
    return ok;
}

static bool j2k_decode(const uint8_t *src, size_t len, const mira_pixel_desc *d, uint8_t *dst,
                       size_t dst_len, mira_photometric *photometric, mira_error **err)
{
    return decode_frame(src, len, d, dst, dst_len, 1, photometric, err);
}

static bool j2k_decode_threads(const uint8_t *src, size_t len, const mira_pixel_desc *d,
                               uint8_t *dst, size_t dst_len, int threads,
                               mira_photometric *photometric, mira_error **err)
{
    return decode_frame(src, len, d, dst, dst_len, threads, photometric, err);
}

/* ------------------------------------------------------------------ encoding */

/* Read value i of the frame (sb bytes, little-endian) as a bits-wide integer. */
static int64_t sample_at(const uint8_t *src, size_t i, size_t sb, unsigned bits, bool sgnd)
{
    const uint8_t *p = src + i * sb;
    uint64_t v = 0;
    for (size_t b = sb; b-- > 0;)
        v = v << 8 | p[b];
    if (bits < 64) {
        v &= ((uint64_t)1 << bits) - 1;
        if (sgnd && (v >> (bits - 1)) & 1)
            v |= ~(((uint64_t)1 << bits) - 1);
    }
    return (int64_t)v;
}

/* The precision a component needs to hold the values of the frame (at least 1). */
static unsigned needed_precision(const uint8_t *src, size_t n, size_t sb, unsigned bits, bool sgnd)
{
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = sample_at(src, i, sb, bits, sgnd);
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    unsigned p = 1;
    if (sgnd) {
        while (p < 64 && (hi > ((int64_t)1 << (p - 1)) - 1 || lo < -((int64_t)1 << (p - 1))))
            p++;
    } else {
        while (p < 64 && (uint64_t)hi > ((uint64_t)1 << p) - 1)
            p++;
    }
    return p;
}

/*
 * One OpenJPEG encoding of the frame, appended to out, with a tile of tile_rows image heights
 * (see the top of the file). On failure *why receives OpenJPEG's messages and *code
 * MIRA_ERR_NOMEM or MIRA_ERR_UNSUPPORTED; out keeps what it had.
 */
static bool encode_once(const uint8_t *src, const mira_pixel_desc *d, unsigned prec, bool rgb,
                        uint32_t tile_rows, mira__buf *out, char *why, mira_error_code *code)
{
    size_t sb = mira_pixel_sample_bytes(d);
    size_t npix = (size_t)d->rows * d->columns;
    unsigned ns = d->samples;
    opj_image_cmptparm_t cp[4];
    memset(cp, 0, sizeof cp);
    for (unsigned c = 0; c < ns; c++) {
        cp[c].dx = cp[c].dy = 1;
        cp[c].w = d->columns;
        cp[c].h = d->rows;
        cp[c].prec = prec;
        cp[c].sgnd = d->is_signed;
    }
    *code = MIRA_ERR_NOMEM;
    /* OpenJPEG takes the image's sample buffers over when it encodes: a new image each time */
    opj_image_t *img = opj_image_create(ns, cp, ns >= 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY);
    if (!img)
        return false;
    img->x0 = img->y0 = 0;
    img->x1 = d->columns;
    img->y1 = d->rows;
    for (unsigned c = 0; c < ns; c++) {
        OPJ_INT32 *v = img->comps[c].data;
        for (size_t i = 0; i < npix; i++)
            v[i] = (OPJ_INT32)sample_at(src, i * ns + c, sb, prec, d->is_signed);
    }

    opj_cparameters_t params;
    opj_set_default_encoder_parameters(&params);
    params.tcp_numlayers = 1;
    params.tcp_rates[0] = 0; /* lossless */
    params.cp_disto_alloc = 1;
    params.irreversible = 0;
    params.tcp_mct = rgb ? 1 : 0;
    params.cod_format = 0; /* J2K */
    uint32_t side = d->rows < d->columns ? d->rows : d->columns;
    int res = 1;
    while (res < 6 && (side >> res) > 0)
        res++; /* floor(log2(side)) + 1, at most 6: every resolution at least one pixel */
    params.numresolution = res;
    if (tile_rows > 1) {
        params.tile_size_on = OPJ_TRUE;
        params.cp_tdx = (int)d->columns;
        params.cp_tdy = (int)(d->rows * tile_rows);
    }

    messages msg = {.len = 0};
    msg.text[0] = 0;
    writer w = {.out = out, .base = out->len, .pos = 0};
    opj_codec_t *codec = opj_create_compress(OPJ_CODEC_J2K);
    opj_stream_t *stream = opj_stream_create(J2K_CHUNK, OPJ_FALSE);
    bool ok = false;
    if (codec && stream) {
        silence(codec, &msg);
        opj_stream_set_user_data(stream, &w, NULL);
        opj_stream_set_write_function(stream, w_write);
        opj_stream_set_skip_function(stream, w_skip);
        opj_stream_set_seek_function(stream, w_seek);
        /* at low precision the rounding of the colour transform and the 5/3 lifting steps can
         * outgrow OpenJPEG's 2 guard bits (1-bit RGB noise does): one more there */
        static const char *const guard3[] = {"GUARD_BITS=3", NULL};
        ok = opj_setup_encoder(codec, &params, img) &&
             (prec >= 8 || opj_encoder_set_extra_options(codec, guard3)) &&
             opj_start_compress(codec, img, stream) && opj_encode(codec, stream) &&
             opj_end_compress(codec, stream) && !out->failed;
        if (!ok && !out->failed) {
            *code = MIRA_ERR_UNSUPPORTED;
            memcpy(why, msg.text, msg.len + 1);
        }
    }
    if (!ok && !out->failed && out->len > w.base) {
        out->len = w.base;
        out->data[out->len] = 0;
    }
    opj_stream_destroy(stream);
    opj_destroy_codec(codec);
    opj_image_destroy(img);
    return ok;
}

/* Decode what was encoded and compare it with the input (values of d->bits_stored bits). */
static bool verify(const uint8_t *cs, size_t cs_len, const uint8_t *src, size_t len,
                   const mira_pixel_desc *d, mira_error **err)
{
    uint8_t *back = mira_malloc(len);
    if (!back)
        return fail(err, MIRA_ERR_NOMEM, "checking the JPEG 2000 encoding of a %zu-byte frame",
                    len);
    mira_error *e = NULL;
    bool ok = j2k_decode(cs, cs_len, d, back, len, NULL, &e);
    size_t sb = mira_pixel_sample_bytes(d), n = len / sb, i = 0;
    if (ok) {
        while (i < n && sample_at(back, i, sb, d->bits_stored, d->is_signed) ==
                            sample_at(src, i, sb, d->bits_stored, d->is_signed))
            i++;
    }
    mira_free(back);
    if (!ok || i < n) {
        fail(err, MIRA_ERR_UNSUPPORTED,
             "OpenJPEG's reversible coding of these %u-bit values is not exact (%s %zu); the "
             "frame cannot be JPEG 2000 Lossless",
             (unsigned)d->bits_stored, ok ? "the first difference is at value" : "decoding failed",
             ok ? i : (size_t)0);
        mira_error_free(e);
        return false;
    }
    return true;
}

static bool j2k_encode(const uint8_t *src, size_t len, const mira_pixel_desc *d, mira__buf *out,
                       mira_photometric *photometric, mira_error **err)
{
    size_t sb = mira_pixel_sample_bytes(d);
    size_t npix = (size_t)d->rows * d->columns;
    unsigned ns = d->samples;
    if (d->bits_allocated != 8 && d->bits_allocated != 16 && d->bits_allocated != 32)
        return fail(err, MIRA_ERR_UNSUPPORTED,
                    "JPEG 2000 encoding of Bits Allocated %u (8, 16 or 32 are encoded)",
                    (unsigned)d->bits_allocated);
    if (d->rows == 0 || d->columns == 0 || ns < 1 || ns > 4 || d->bits_stored < 1 ||
        d->bits_stored > d->bits_allocated || npix / d->rows != d->columns ||
        npix > SIZE_MAX / ns / sb || npix * ns * sb != len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "wrong JPEG 2000 frame buffer",
                       "a frame buffer of %zu bytes for %u x %u x %u samples of %zu bytes, "
                       "%u bits stored",
                       len, (unsigned)d->rows, (unsigned)d->columns, ns, sb,
                       (unsigned)d->bits_stored);
        return false;
    }
    unsigned prec = d->bits_stored;
    if (prec > J2K_MAX_PRECISION) {
        prec = needed_precision(src, npix * ns, sb, d->bits_stored, d->is_signed);
        if (prec > J2K_MAX_PRECISION)
            return fail(err, MIRA_ERR_UNSUPPORTED,
                        "JPEG 2000 lossless encoding of %u-bit values: this frame's values need "
                        "%u bits, OpenJPEG encodes at most %u exactly",
                        (unsigned)d->bits_stored, prec, J2K_MAX_PRECISION);
    }
    bool rgb = ns == 3 && d->photometric == MIRA_PHOTO_RGB;
    size_t base = out->len;
    char why[sizeof(((messages *)0)->text)] = "";
    mira_error_code code = MIRA_ERR_UNSUPPORTED;
    bool ok = encode_once(src, d, prec, rgb, 1, out, why, &code);
    if (!ok && code != MIRA_ERR_NOMEM && d->rows <= UINT32_MAX / 4)
        ok = encode_once(src, d, prec, rgb, 4, out, why, &code);
    if (!ok) {
        if (code == MIRA_ERR_NOMEM)
            fail(err, MIRA_ERR_NOMEM, "JPEG 2000 encoding of a %zu-byte frame", len);
        else
            fail(err, MIRA_ERR_UNSUPPORTED, "OpenJPEG could not encode the %u x %u frame: %s",
                 (unsigned)d->columns, (unsigned)d->rows, why[0] ? why : "no reason given");
    } else if (prec < 8 || prec > 16) {
        ok = verify(out->data + base, out->len - base, src, len, d, err);
    }
    if (!ok && !out->failed && out->len > base) {
        out->len = base; /* nothing of a failed encoding stays in the buffer */
        out->data[out->len] = 0;
    }
    if (ok && photometric)
        *photometric = rgb ? MIRA_PHOTO_YBR_RCT : d->photometric;
    return ok;
}

const mira__codec mira__codec_j2k = {
    .name = "JPEG 2000",
    .ts_uids = j2k_ts,
    .decode = j2k_decode,
    .encode = j2k_encode,
    .decode_threads = j2k_decode_threads,
};
