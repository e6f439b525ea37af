/* Pixel data: image attributes, frames of native and encapsulated data, decoding dispatch. */
#include "pixel/pixels_int.h"

#include "core/parallel.h"

#include <pthread.h>
#include <string.h>

#define TAG_PIXEL_DATA 0x7FE00010u
#define TAG_FLOAT_PIXEL_DATA 0x7FE00008u
#define TAG_DOUBLE_PIXEL_DATA 0x7FE00009u
#define TAG_EXTENDED_OFFSET_TABLE 0x7FE00001u
#define TAG_EXTENDED_OFFSET_LENGTHS 0x7FE00002u

/* ------------------------------------------------------------------ photometric names */

static const char *const photo_names[] = {
    "", "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422",
    "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT",
};

const char *mira_photometric_name(mira_photometric p)
{
    if ((unsigned)p >= sizeof photo_names / sizeof photo_names[0])
        return "";
    return photo_names[p];
}

mira_photometric mira_photometric_from_name(const char *name)
{
    if (!name || !*name)
        return MIRA_PHOTO_UNKNOWN;
    for (size_t i = 1; i < sizeof photo_names / sizeof photo_names[0]; i++)
        if (strcmp(name, photo_names[i]) == 0)
            return (mira_photometric)i;
    return MIRA_PHOTO_UNKNOWN;
}

size_t mira_pixel_sample_bytes(const mira_pixel_desc *d)
{
    return d->bits_allocated <= 8 ? 1 : (size_t)d->bits_allocated / 8;
}

size_t mira_pixel_frame_bytes(const mira_pixel_desc *d)
{
    size_t n = (size_t)d->rows * d->columns;
    if (d->rows && n / d->rows != d->columns)
        return 0;
    size_t per = (size_t)d->samples * mira_pixel_sample_bytes(d);
    if (per && n > SIZE_MAX / per)
        return 0;
    return n * per;
}

/* ------------------------------------------------------------------ codecs */

/* Codecs are linked in when their files are; a weak reference lets the table name them all. */
extern const mira__codec mira__codec_rle __attribute__((weak));
extern const mira__codec mira__codec_jpegll __attribute__((weak));
extern const mira__codec mira__codec_jpeg __attribute__((weak));
extern const mira__codec mira__codec_jpegls __attribute__((weak));
extern const mira__codec mira__codec_j2k __attribute__((weak));

const mira__codec *mira__codec_find(const char *ts_uid)
{
    const mira__codec *all[] = {&mira__codec_rle, &mira__codec_jpegll, &mira__codec_jpeg,
                                &mira__codec_jpegls, &mira__codec_j2k};
    if (!ts_uid)
        return NULL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i])
            continue;
        for (const char *const *u = all[i]->ts_uids; *u; u++)
            if (strcmp(*u, ts_uid) == 0)
                return all[i];
    }
    return NULL;
}

static bool is_native_ts(const char *ts)
{
    mira_ts_info info;
    return mira_ts_lookup(ts, &info) && !info.encapsulated;
}

bool mira_pixels_can_decode(const char *ts_uid)
{
    const mira__codec *c = mira__codec_find(ts_uid);
    return is_native_ts(ts_uid) || (c && c->decode);
}

bool mira_pixels_can_encode(const char *ts_uid)
{
    const mira__codec *c = mira__codec_find(ts_uid);
    return is_native_ts(ts_uid) || (c && c->encode);
}

/* ------------------------------------------------------------------ reading attributes */

static bool get_us(const mira_dataset *ds, mira_tag tag, const char *name, bool required,
                   uint16_t def, uint16_t *out, mira_error **err)
{
    mira_element *e = mira_dataset_get(ds, tag);
    uint64_t v;
    if (!e || mira_element_length(e) == 0) {
        if (required) {
            mira_error_set(err, MIRA_ERR_INVALID, "Missing image attribute",
                           "the image has no %s (%04X,%04X)", name, tag >> 16, tag & 0xFFFF);
            return false;
        }
        *out = def;
        return true;
    }
    if (!mira_element_get_uint(e, 0, &v, err)) {
        mira_error_prefix(err, "%s: ", name);
        return false;
    }
    if (v > 0xFFFF) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute", "%s is %llu", name,
                       (unsigned long long)v);
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

bool mira__pixel_desc_read(const mira_dataset *ds, mira_pixel_desc *d, mira_error **err)
{
    uint16_t rows, cols, spp, ba, bs, hb, pr, pc;
    memset(d, 0, sizeof *d);
    bool is_float = !mira_dataset_get(ds, TAG_PIXEL_DATA) &&
                    (mira_dataset_get(ds, TAG_FLOAT_PIXEL_DATA) ||
                     mira_dataset_get(ds, TAG_DOUBLE_PIXEL_DATA));
    if (!get_us(ds, 0x00280010, "Rows", true, 0, &rows, err) ||
        !get_us(ds, 0x00280011, "Columns", true, 0, &cols, err) ||
        !get_us(ds, 0x00280002, "Samples per Pixel", false, 1, &spp, err) ||
        !get_us(ds, 0x00280100, "Bits Allocated", true, 0, &ba, err) ||
        !get_us(ds, 0x00280101, "Bits Stored", false, ba, &bs, err) ||
        !get_us(ds, 0x00280102, "High Bit", false, (uint16_t)(bs ? bs - 1 : 0), &hb, err) ||
        !get_us(ds, 0x00280103, "Pixel Representation", false, 0, &pr, err) ||
        !get_us(ds, 0x00280006, "Planar Configuration", false, 0, &pc, err))
        return false;
    if (is_float)
        bs = ba, hb = (uint16_t)(ba - 1), pr = 0;
    uint32_t frames = 1;
    mira_element *nf = mira_dataset_get(ds, 0x00280008);
    if (nf && mira_element_length(nf) > 0) {
        int64_t v;
        if (!mira_element_get_int(nf, 0, &v, err)) {
            mira_error_prefix(err, "Number of Frames: ");
            return false;
        }
        if (v < 1 || v > 0x7FFFFFFF) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                           "Number of Frames is %lld", (long long)v);
            return false;
        }
        frames = (uint32_t)v;
    }
    mira_photometric photo = MIRA_PHOTO_UNKNOWN;
    mira_element *pe = mira_dataset_get(ds, 0x00280004);
    if (pe && mira_element_length(pe) > 0) {
        char *s = mira_element_get_string(pe, 0, err);
        if (!s)
            return false;
        photo = mira_photometric_from_name(s);
        if (photo == MIRA_PHOTO_UNKNOWN) {
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported photometric interpretation",
                           "Photometric Interpretation \"%s\" is not one mira knows", s);
            mira_free(s);
            return false;
        }
        mira_free(s);
    } else if (spp == 1) {
        photo = MIRA_PHOTO_MONOCHROME2;
    } else {
        mira_error_set(err, MIRA_ERR_INVALID, "Missing image attribute",
                       "the colour image has no Photometric Interpretation (0028,0004)");
        return false;
    }
    if (rows == 0 || cols == 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "the image is %ux%u (Rows x Columns): empty", rows, cols);
        return false;
    }
    if (spp != 1 && spp != 3) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported image",
                       "Samples per Pixel is %u (mira decodes 1 or 3)", spp);
        return false;
    }
    if (!(ba == 1 || ba == 8 || ba == 16 || ba == 32 || ba == 64)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported image",
                       "Bits Allocated is %u (mira decodes 1, 8, 16, 32 and 64)", ba);
        return false;
    }
    if (bs == 0 || bs > ba || hb >= ba || hb + 1 < bs) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "Bits Stored %u and High Bit %u do not fit Bits Allocated %u", bs, hb, ba);
        return false;
    }
    if (pr > 1 || pc > 1) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "Pixel Representation %u / Planar Configuration %u must be 0 or 1", pr, pc);
        return false;
    }
    bool mono = photo == MIRA_PHOTO_MONOCHROME1 || photo == MIRA_PHOTO_MONOCHROME2 ||
                photo == MIRA_PHOTO_PALETTE;
    if (mono != (spp == 1)) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "Photometric Interpretation %s with %u samples per pixel",
                       mira_photometric_name(photo), spp);
        return false;
    }
    if (is_float && ba != (mira_dataset_get(ds, TAG_FLOAT_PIXEL_DATA) ? 32 : 64)) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "%s Pixel Data with Bits Allocated %u",
                       mira_dataset_get(ds, TAG_FLOAT_PIXEL_DATA) ? "Float" : "Double Float", ba);
        return false;
    }
    if (ba == 64 && !is_float) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported image",
                       "64-bit integer pixel data is not supported");
        return false;
    }
    d->rows = rows;
    d->columns = cols;
    d->frames = frames;
    d->samples = spp;
    d->bits_allocated = ba;
    d->bits_stored = bs;
    d->high_bit = hb;
    d->is_signed = pr == 1;
    d->is_float = is_float;
    d->planar = spp > 1 ? pc : 0;
    d->photometric = photo;
    return true;
}

/* ------------------------------------------------------------------ opening */

static mira_photometric decoded_photometric(const char *ts, const mira_pixel_desc *s)
{
    if (s->photometric == MIRA_PHOTO_YBR_FULL_422 || s->photometric == MIRA_PHOTO_YBR_PARTIAL_420) {
        if (strcmp(ts, MIRA_TS_JPEG_BASELINE) == 0 || strcmp(ts, MIRA_TS_JPEG_EXTENDED) == 0)
            return MIRA_PHOTO_RGB;
        return MIRA_PHOTO_YBR_FULL;
    }
    if (s->photometric == MIRA_PHOTO_YBR_FULL &&
        (strcmp(ts, MIRA_TS_JPEG_BASELINE) == 0 || strcmp(ts, MIRA_TS_JPEG_EXTENDED) == 0))
        return MIRA_PHOTO_RGB;
    if (s->photometric == MIRA_PHOTO_YBR_ICT || s->photometric == MIRA_PHOTO_YBR_RCT)
        return MIRA_PHOTO_RGB;
    return s->photometric;
}

static bool find_fragment_at(const mira_pixels *px, uint64_t off, size_t *idx)
{
    size_t lo = 0, hi = px->nfrags;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (px->frag_off[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < px->nfrags && px->frag_off[lo] == off) {
        *idx = lo;
        return true;
    }
    return false;
}

static bool is_frame_start(const uint8_t *p, size_t n)
{
    if (n >= 2 && p[0] == 0xFF && p[1] == 0xD8) /* JPEG, JPEG-LS, JPEG lossless: SOI */
        return true;
    if (n >= 2 && p[0] == 0xFF && p[1] == 0x4F) /* JPEG 2000 codestream: SOC */
        return true;
    if (n >= 12 && memcmp(p, "\0\0\0\x0CjP  \r\n\x87\n", 12) == 0) /* JP2 signature box */
        return true;
    return false;
}

static bool map_frames(mira_pixels *px, mira_error **err)
{
    const mira_element *e = px->element;
    uint32_t nframes = px->stored.frames;
    px->nfrags = mira_element_fragment_count(e);
    if (px->nfrags == 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "No pixel data fragments",
                       "the encapsulated Pixel Data has no fragments");
        return false;
    }
    px->frag_off = mira_calloc(px->nfrags, sizeof *px->frag_off);
    px->frame_first = mira_calloc(nframes, sizeof *px->frame_first);
    px->frame_count = mira_calloc(nframes, sizeof *px->frame_count);
    px->frame_len = mira_calloc(nframes, sizeof *px->frame_len);
    if (!px->frag_off || !px->frame_first || !px->frame_count || !px->frame_len) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "mapping %u frames", nframes);
        return false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < px->nfrags; i++) {
        size_t len;
        mira_element_fragment(e, i, &len);
        px->frag_off[i] = off;
        off += 8 + (uint64_t)len;
    }

    /* 1. The Extended Offset Table: one fragment per frame, with the frame's length. */
    mira_element *eot = mira_dataset_get(px->ds, TAG_EXTENDED_OFFSET_TABLE);
    mira_element *eotl = mira_dataset_get(px->ds, TAG_EXTENDED_OFFSET_LENGTHS);
    if (eot && eotl && mira_element_length(eot) > 0) {
        size_t ne, nl;
        const uint8_t *ob = mira_element_bytes(eot, &ne);
        const uint8_t *lb = mira_element_bytes(eotl, &nl);
        if (ne != (size_t)nframes * 8 || nl != (size_t)nframes * 8) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad extended offset table",
                           "the Extended Offset Table has %zu offsets and %zu lengths for %u "
                           "frames",
                           ne / 8, nl / 8, nframes);
            return false;
        }
        bool be = mira_dataset_is_big_endian(px->ds);
        for (uint32_t f = 0; f < nframes; f++) {
            uint64_t o = 0, l = 0;
            for (int b = 0; b < 8; b++) {
                int k = be ? b : 7 - b;
                o = (o << 8) | ob[f * 8 + k];
                l = (l << 8) | lb[f * 8 + k];
            }
            size_t idx, flen;
            if (!find_fragment_at(px, o, &idx)) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad extended offset table",
                               "the Extended Offset Table puts frame %u at offset %llu, which "
                               "is not the start of a fragment",
                               f + 1, (unsigned long long)o);
                return false;
            }
            mira_element_fragment(e, idx, &flen);
            if (l > flen) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad extended offset table",
                               "frame %u is %llu bytes by the Extended Offset Table but its "
                               "fragment has %zu",
                               f + 1, (unsigned long long)l, flen);
                return false;
            }
            px->frame_first[f] = idx;
            px->frame_count[f] = 1;
            px->frame_len[f] = (size_t)l;
        }
        return true;
    }

    /* 2. The Basic Offset Table. */
    size_t bot_len;
    const uint8_t *bot = mira_element_offset_table(e, &bot_len);
    if (bot && bot_len >= 4) {
        if (bot_len / 4 != nframes) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad basic offset table",
                           "the Basic Offset Table has %zu offsets for %u frames", bot_len / 4,
                           nframes);
            return false;
        }
        bool be = mira_dataset_is_big_endian(px->ds);
        for (uint32_t f = 0; f < nframes; f++) {
            const uint8_t *p = bot + 4 * f;
            uint32_t o = be ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                               (uint32_t)p[2] << 8 | p[3])
                            : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
                               (uint32_t)p[1] << 8 | p[0]);
            size_t idx;
            if (!find_fragment_at(px, o, &idx) || (f > 0 && idx <= px->frame_first[f - 1])) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad basic offset table",
                               "the Basic Offset Table puts frame %u at offset %u, which is "
                               "not the start of a later fragment",
                               f + 1, o);
                return false;
            }
            px->frame_first[f] = idx;
        }
        for (uint32_t f = 0; f < nframes; f++) {
            size_t end = f + 1 < nframes ? px->frame_first[f + 1] : px->nfrags;
            px->frame_count[f] = end - px->frame_first[f];
        }
        return true;
    }

    /* 3. No offsets: one frame in all fragments, one fragment per frame, or find the frames by
     *    their start markers (as pydicom and GDCM do). */
    if (nframes == 1) {
        px->frame_first[0] = 0;
        px->frame_count[0] = px->nfrags;
        return true;
    }
    if (px->nfrags == nframes) {
        for (uint32_t f = 0; f < nframes; f++) {
            px->frame_first[f] = f;
            px->frame_count[f] = 1;
        }
        return true;
    }
    uint32_t found = 0;
    for (size_t i = 0; i < px->nfrags; i++) {
        size_t len;
        const uint8_t *p = mira_element_fragment(e, i, &len);
        if (is_frame_start(p, len)) {
            if (found == nframes) {
                found++;
                break;
            }
            px->frame_first[found++] = i;
        } else if (i == 0) {
            break;
        }
    }
    if (found != nframes) {
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot find the frames",
                       "%u frames in %zu fragments without an offset table, and the fragments "
                       "do not start %u codestreams",
                       nframes, px->nfrags, nframes);
        return false;
    }
    for (uint32_t f = 0; f < nframes; f++) {
        size_t end = f + 1 < nframes ? px->frame_first[f + 1] : px->nfrags;
        px->frame_count[f] = end - px->frame_first[f];
    }
    return true;
}

/* Bytes of one stored native frame, or of all frames for 1-bit data (bits, rounded up). */
static bool native_sizes(const mira_pixel_desc *d, uint64_t *frame_bytes, uint64_t *total)
{
    uint64_t px = (uint64_t)d->rows * d->columns;
    if (d->bits_allocated == 1) {
        uint64_t bits = px * d->samples;
        *frame_bytes = (bits + 7) / 8;
        *total = (bits * d->frames + 7) / 8;
        return true;
    }
    uint64_t values = px * d->samples;
    if (d->photometric == MIRA_PHOTO_YBR_FULL_422)
        values = px * 2;
    else if (d->photometric == MIRA_PHOTO_YBR_PARTIAL_420)
        values = px + 2 * (((uint64_t)d->rows + 1) / 2) * (((uint64_t)d->columns + 1) / 2);
    *frame_bytes = values * mira_pixel_sample_bytes(d);
    *total = *frame_bytes * d->frames;
    return true;
}

mira_pixels *mira_pixels_open(const mira_dataset *ds, const char *ts_uid, mira_error **err)
{
    if (!ds || !ts_uid) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad argument", "no data set or transfer syntax");
        return NULL;
    }
    mira_element *e = mira_dataset_get(ds, TAG_PIXEL_DATA);
    if (!e)
        e = mira_dataset_get(ds, TAG_FLOAT_PIXEL_DATA);
    if (!e)
        e = mira_dataset_get(ds, TAG_DOUBLE_PIXEL_DATA);
    if (!e) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No pixel data",
                       "the data set has no Pixel Data (7FE0,0010)");
        return NULL;
    }
    mira_pixels *px = mira_calloc(1, sizeof *px);
    if (!px) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "opening pixel data");
        return NULL;
    }
    px->ds = ds;
    px->element = e;
    snprintf(px->ts, sizeof px->ts, "%s", ts_uid);
    if (!mira__pixel_desc_read(ds, &px->stored, err))
        goto fail;
    mira_ts_info info;
    if (!mira_ts_lookup(ts_uid, &info)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unknown transfer syntax",
                       "transfer syntax %s is not one mira knows", ts_uid);
        goto fail;
    }
    px->encapsulated = mira_element_is_encapsulated(e);
    px->decoded = px->stored;
    px->decoded.planar = 0;
    px->decoded.photometric = decoded_photometric(ts_uid, &px->stored);
    if (px->decoded.photometric == MIRA_PHOTO_YBR_FULL &&
        (px->stored.photometric == MIRA_PHOTO_YBR_FULL_422 ||
         px->stored.photometric == MIRA_PHOTO_YBR_PARTIAL_420))
        px->decoded.planar = 0;
    if (mira_pixel_frame_bytes(&px->decoded) == 0) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Image too large", "a %ux%u frame does not fit memory",
                       px->stored.rows, px->stored.columns);
        goto fail;
    }
    if (px->encapsulated) {
        if (!info.encapsulated) {
            mira_error_set(err, MIRA_ERR_INVALID, "Encapsulated pixel data",
                           "the Pixel Data is encapsulated but transfer syntax %s is not",
                           ts_uid);
            goto fail;
        }
        px->codec = mira__codec_find(ts_uid);
        if (!px->codec || !px->codec->decode) {
            const mira_uid_entry *u = mira_uid_find(ts_uid);
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported transfer syntax",
                           "no decoder for transfer syntax %s (%s)", ts_uid,
                           u ? u->name : "unknown");
            goto fail;
        }
        if (px->stored.bits_allocated == 1 || px->stored.is_float) {
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported image",
                           "compressed %s pixel data is not supported",
                           px->stored.is_float ? "floating point" : "1-bit");
            goto fail;
        }
        if (!map_frames(px, err))
            goto fail;
        return px;
    }
    if (info.encapsulated && !is_native_ts(ts_uid)) {
        /* A compressed transfer syntax whose pixel data has a defined length (seen in files
         * that were decompressed without updating the meta): decode as native, as pydicom does. */
    }
    px->data = mira_element_bytes(e, &px->data_len);
    px->big_endian = mira_dataset_is_big_endian(ds);
    px->swap_pairs = px->big_endian && mira_pixel_sample_bytes(&px->stored) == 1 &&
                     px->stored.bits_allocated == 8 && mira_element_vr(e) == MIRA_VR_OW;
    if (px->stored.photometric == MIRA_PHOTO_YBR_PARTIAL_420) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported image",
                       "uncompressed YBR_PARTIAL_420 is not allowed by the standard");
        goto fail;
    }
    if (px->stored.photometric == MIRA_PHOTO_YBR_FULL_422 && px->stored.columns % 2) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad image attribute",
                       "YBR_FULL_422 with an odd number of columns (%u)", px->stored.columns);
        goto fail;
    }
    uint64_t fb, total;
    native_sizes(&px->stored, &fb, &total);
    px->native_frame_bytes = fb;
    if (px->data_len < total) {
        mira_error_set(err, MIRA_ERR_INVALID, "Pixel data too short",
                       "Pixel Data has %zu bytes, but %u frame%s of %ux%u, %u sample%s of %u bits "
                       "need %llu",
                       px->data_len, px->stored.frames, px->stored.frames == 1 ? "" : "s",
                       px->stored.columns, px->stored.rows, px->stored.samples,
                       px->stored.samples == 1 ? "" : "s", px->stored.bits_allocated,
                       (unsigned long long)total);
        goto fail;
    }
    return px;
fail:
    mira_pixels_free(px);
    return NULL;
}

mira_pixels *mira_pixels_open_file(const mira_file *f, mira_error **err)
{
    if (!f) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad argument", "no file");
        return NULL;
    }
    return mira_pixels_open(mira_file_dataset(f), mira_file_transfer_syntax(f), err);
}

void mira_pixels_free(mira_pixels *px)
{
    if (!px)
        return;
    mira_free(px->frag_off);
    mira_free(px->frame_first);
    mira_free(px->frame_count);
    mira_free(px->frame_len);
    mira_free(px);
}

const mira_pixel_desc *mira_pixels_stored(const mira_pixels *px)
{
    return &px->stored;
}

const mira_pixel_desc *mira_pixels_decoded(const mira_pixels *px)
{
    return &px->decoded;
}

const char *mira_pixels_transfer_syntax(const mira_pixels *px)
{
    return px->ts;
}

/* ------------------------------------------------------------------ decoding */

/* The loops below run over every decoded sample, so they are written for the vectorizer:
 * blocks of a fixed number of values (GCC's -O2 cost model vectorizes only loops that need no
 * scalar epilogue), fixed-width loads and stores through memcpy (no aliasing or alignment
 * assumptions), and sign extension without a branch: with v masked to Bits Stored,
 * (v ^ sign) - sign is v sign-extended, in unsigned arithmetic, and sign 0 leaves unsigned
 * values alone. Decoded buffers are little-endian; a big-endian host assembles the bytes. */
#define FIX_BLOCK 64

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define FIX_BIG_ENDIAN 1
#else
#define FIX_BIG_ENDIAN 0
#endif

static uint16_t load16(const uint8_t *p)
{
    uint16_t v;
    if (FIX_BIG_ENDIAN)
        return (uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8);
    memcpy(&v, p, 2);
    return v;
}

static void store16(uint8_t *p, uint16_t v)
{
    if (FIX_BIG_ENDIAN) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        return;
    }
    memcpy(p, &v, 2);
}

static uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    if (FIX_BIG_ENDIAN)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    memcpy(&v, p, 4);
    return v;
}

static void store32(uint8_t *p, uint32_t v)
{
    if (FIX_BIG_ENDIAN) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
        return;
    }
    memcpy(p, &v, 4);
}

static void fix_u8(uint8_t *buf, size_t values, unsigned shift, uint8_t mask, uint8_t sign)
{
    size_t i = 0;
    for (; i + FIX_BLOCK <= values; i += FIX_BLOCK) {
        uint8_t *b = buf + i;
        for (size_t k = 0; k < FIX_BLOCK; k++) {
            uint8_t v = (uint8_t)((b[k] >> shift) & mask);
            b[k] = (uint8_t)((v ^ sign) - sign);
        }
    }
    for (; i < values; i++) {
        uint8_t v = (uint8_t)((buf[i] >> shift) & mask);
        buf[i] = (uint8_t)((v ^ sign) - sign);
    }
}

static void fix_u16(uint8_t *buf, size_t values, unsigned shift, uint16_t mask, uint16_t sign)
{
    size_t i = 0;
    for (; i + FIX_BLOCK <= values; i += FIX_BLOCK) {
        uint8_t *b = buf + 2 * i;
        for (size_t k = 0; k < FIX_BLOCK; k++) {
            uint16_t v = (uint16_t)((load16(b + 2 * k) >> shift) & mask);
            store16(b + 2 * k, (uint16_t)((v ^ sign) - sign));
        }
    }
    for (; i < values; i++) {
        uint16_t v = (uint16_t)((load16(buf + 2 * i) >> shift) & mask);
        store16(buf + 2 * i, (uint16_t)((v ^ sign) - sign));
    }
}

/* The same, copying from src to dst (which do not overlap) in the same pass. */
static void fix_copy_u16(uint8_t *restrict dst, const uint8_t *restrict src, size_t values,
                         unsigned shift, uint16_t mask, uint16_t sign)
{
    size_t i = 0;
    for (; i + FIX_BLOCK <= values; i += FIX_BLOCK) {
        const uint8_t *s = src + 2 * i;
        uint8_t *t = dst + 2 * i;
        for (size_t k = 0; k < FIX_BLOCK; k++) {
            uint16_t v = (uint16_t)((load16(s + 2 * k) >> shift) & mask);
            store16(t + 2 * k, (uint16_t)((v ^ sign) - sign));
        }
    }
    for (; i < values; i++) {
        uint16_t v = (uint16_t)((load16(src + 2 * i) >> shift) & mask);
        store16(dst + 2 * i, (uint16_t)((v ^ sign) - sign));
    }
}

static void fix_u32(uint8_t *buf, size_t values, unsigned shift, uint32_t mask, uint32_t sign)
{
    size_t i = 0;
    for (; i + FIX_BLOCK <= values; i += FIX_BLOCK) {
        uint8_t *b = buf + 4 * i;
        for (size_t k = 0; k < FIX_BLOCK; k++) {
            uint32_t v = (load32(b + 4 * k) >> shift) & mask;
            store32(b + 4 * k, (v ^ sign) - sign);
        }
    }
    for (; i < values; i++) {
        uint32_t v = (load32(buf + 4 * i) >> shift) & mask;
        store32(buf + 4 * i, (v ^ sign) - sign);
    }
}

void mira__pixel_fix_values(uint8_t *buf, size_t values, const mira_pixel_desc *d)
{
    size_t sb = mira_pixel_sample_bytes(d);
    unsigned bits = sb * 8;
    if (d->is_float || d->bits_allocated == 1)
        return;
    unsigned shift = d->high_bit + 1u - d->bits_stored;
    if (d->bits_stored == bits && shift == 0)
        return;
    uint32_t mask = d->bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << d->bits_stored) - 1);
    uint32_t sign = d->is_signed ? 1u << (d->bits_stored - 1) : 0;
    if (sb == 1)
        fix_u8(buf, values, shift, (uint8_t)mask, (uint8_t)sign);
    else if (sb == 2)
        fix_u16(buf, values, shift, (uint16_t)mask, (uint16_t)sign);
    else if (sb == 4)
        fix_u32(buf, values, shift, mask, sign);
}

static bool decode_native(const mira_pixels *px, uint32_t frame, uint8_t *out)
{
    const mira_pixel_desc *d = &px->stored;
    size_t npix = (size_t)d->rows * d->columns;
    size_t sb = mira_pixel_sample_bytes(d);
    if (d->bits_allocated == 1) {
        uint64_t nbits = (uint64_t)npix * d->samples;
        uint64_t bit = nbits * frame;
        for (uint64_t i = 0; i < nbits; i++, bit++)
            out[i] = (px->data[bit >> 3] >> (bit & 7)) & 1;
        return true;
    }
    const uint8_t *src = px->data + px->native_frame_bytes * frame;
    size_t base = px->native_frame_bytes * frame;
    if (d->photometric == MIRA_PHOTO_YBR_FULL_422) {
        /* Y1 Y2 Cb Cr per pair of pixels (PS3.3 C.7.6.3.1.2) -> Y Cb Cr per pixel. */
        size_t pairs = npix / 2;
        for (size_t i = 0; i < pairs; i++) {
            for (size_t b = 0; b < sb; b++) {
                size_t k = b;
                if (px->big_endian && sb > 1)
                    k = sb - 1 - b;
                const uint8_t *q = src + 4 * sb * i;
                uint8_t y1 = q[0 * sb + k], y2 = q[1 * sb + k], cb = q[2 * sb + k],
                        cr = q[3 * sb + k];
                if (px->swap_pairs) {
                    size_t g = base + 4 * i;
                    y1 = px->data[(g + 0) ^ 1];
                    y2 = px->data[(g + 1) ^ 1];
                    cb = px->data[(g + 2) ^ 1];
                    cr = px->data[(g + 3) ^ 1];
                }
                uint8_t *o = out + 6 * sb * i;
                o[0 * sb + b] = y1;
                o[1 * sb + b] = cb;
                o[2 * sb + b] = cr;
                o[3 * sb + b] = y2;
                o[4 * sb + b] = cb;
                o[5 * sb + b] = cr;
            }
        }
        return true;
    }
    size_t values = npix * d->samples;
    if (px->swap_pairs) {
        for (size_t i = 0; i < values; i++)
            out[i] = px->data[(base + i) ^ 1];
    } else if (px->big_endian && sb > 1) {
        for (size_t i = 0; i < values; i++)
            for (size_t b = 0; b < sb; b++)
                out[i * sb + b] = src[i * sb + sb - 1 - b];
    } else {
        memcpy(out, src, values * sb);
    }
    if (d->planar == 1 && d->samples > 1) {
        /* Planes R...G...B... -> interleaved. */
        size_t plane = npix * sb;
        uint8_t *tmp = mira_malloc(values * sb);
        if (!tmp)
            return false;
        memcpy(tmp, out, values * sb);
        for (size_t i = 0; i < npix; i++)
            for (size_t s = 0; s < d->samples; s++)
                memcpy(out + (i * d->samples + s) * sb, tmp + s * plane + i * sb, sb);
        mira_free(tmp);
    }
    return true;
}

/* The most common native frame, 16-bit samples in little-endian, interleaved (CT, MR, XA...),
 * copied and fixed in one pass: memcpy then mira__pixel_fix_values would go over the frame
 * twice, which doubles the memory traffic once frames outgrow the caches (a multi-frame image
 * decoded whole). False, doing nothing, for any other frame. */
static bool decode_native_fixed_16(const mira_pixels *px, uint32_t frame, uint8_t *out)
{
    const mira_pixel_desc *d = &px->stored;
    if (px->big_endian || d->bits_allocated != 16 || d->is_float ||
        d->photometric == MIRA_PHOTO_YBR_FULL_422 || (d->planar == 1 && d->samples > 1))
        return false;
    size_t values = (size_t)d->rows * d->columns * d->samples;
    const uint8_t *src = px->data + px->native_frame_bytes * frame;
    unsigned shift = d->high_bit + 1u - d->bits_stored;
    if (d->bits_stored == 16) { /* then High Bit is 15: nothing to fix */
        memcpy(out, src, values * 2);
        return true;
    }
    uint16_t mask = (uint16_t)((1u << d->bits_stored) - 1);
    uint16_t sign = d->is_signed ? (uint16_t)(1u << (d->bits_stored - 1)) : 0;
    fix_copy_u16(out, src, values, shift, mask, sign);
    return true;
}

bool mira__pixels_frame_bytes(mira_pixels *px, uint32_t frame, const uint8_t **data,
                              size_t *len, uint8_t **owned, mira_error **err)
{
    *owned = NULL;
    size_t first = px->frame_first[frame], count = px->frame_count[frame];
    if (count == 1) {
        *data = mira_element_fragment(px->element, first, len);
        if (px->frame_len[frame])
            *len = px->frame_len[frame];
        return true;
    }
    size_t total = 0, n;
    for (size_t i = 0; i < count; i++) {
        mira_element_fragment(px->element, first + i, &n);
        total += n;
    }
    uint8_t *buf = mira_malloc(total ? total : 1);
    if (!buf) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "joining the fragments of frame %u",
                       frame + 1);
        return false;
    }
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = mira_element_fragment(px->element, first + i, &n);
        memcpy(buf + at, p, n);
        at += n;
    }
    *data = buf;
    *len = total;
    *owned = buf;
    return true;
}

/* mira_pixels_decode_frame with up to `threads` threads inside the frame, for the codecs that
 * can use them (JPEG 2000); the others decode on the calling thread. */
static bool decode_frame(mira_pixels *px, uint32_t frame, void *out, size_t out_len, int threads,
                         mira_error **err)
{
    if (!px || !out) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad argument", "no pixels or no output buffer");
        return false;
    }
    if (frame >= px->stored.frames) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "No such frame",
                       "frame %u asked for, the image has %u", frame + 1, px->stored.frames);
        return false;
    }
    size_t need = mira_pixel_frame_bytes(&px->decoded);
    if (out_len < need) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Buffer too small",
                       "a frame needs %zu bytes, the buffer has %zu", need, out_len);
        return false;
    }
    if (!px->encapsulated) {
        if (decode_native_fixed_16(px, frame, out))
            return true;
        if (!decode_native(px, frame, out)) {
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "decoding frame %u", frame + 1);
            return false;
        }
    } else {
        const uint8_t *data;
        size_t len;
        uint8_t *owned;
        if (!mira__pixels_frame_bytes(px, frame, &data, &len, &owned, err))
            return false;
        mira_photometric photo = px->decoded.photometric;
        bool ok = threads > 1 && px->codec->decode_threads
                      ? px->codec->decode_threads(data, len, &px->stored, out, need, threads,
                                                  &photo, err)
                      : px->codec->decode(data, len, &px->stored, out, need, &photo, err);
        mira_free(owned);
        if (!ok) {
            if (px->stored.frames > 1)
                mira_error_prefix(err, "frame %u: ", frame + 1);
            return false;
        }
    }
    mira__pixel_fix_values(out, need / mira_pixel_sample_bytes(&px->decoded), &px->decoded);
    return true;
}

bool mira_pixels_decode_frame(mira_pixels *px, uint32_t frame, void *out, size_t out_len,
                              mira_error **err)
{
    return decode_frame(px, frame, out, out_len, 1, err);
}

#define NATIVE_PARALLEL_BYTES ((uint64_t)4 << 20)

typedef struct decode_all_ctx {
    mira_pixels *px;
    uint8_t *out;
    size_t frame_bytes;
    size_t threads;       /* in all */
    size_t frame_threads; /* frames decoded at once */
    pthread_mutex_t lock;
    mira_error *first;
} decode_all_ctx;

static bool decode_one(void *arg, size_t i)
{
    decode_all_ctx *c = arg;
    mira_error *e = NULL;
    /* the threads the frames at once leave over go inside the frames, shared out evenly */
    size_t inner = c->threads / c->frame_threads + (i < c->threads % c->frame_threads);
    if (decode_frame(c->px, (uint32_t)i, c->out + i * c->frame_bytes, c->frame_bytes,
                     inner > 1 ? (int)inner : 1, &e))
        return true;
    pthread_mutex_lock(&c->lock);
    if (!c->first)
        c->first = e;
    else
        mira_error_free(e);
    pthread_mutex_unlock(&c->lock);
    return false;
}

bool mira_pixels_decode_all(mira_pixels *px, void *out, size_t out_len, int threads,
                            mira_error **err)
{
    size_t fb = mira_pixel_frame_bytes(&px->decoded);
    if (out_len / fb < px->stored.frames) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Buffer too small",
                       "%u frames need %zu bytes each, the buffer has %zu", px->stored.frames, fb,
                       out_len);
        return false;
    }
    /* Native frames are copies: worth a thread only when there are megabytes to move (two
     * cores copy a 50 MB multi-frame image 1.2-1.4x faster than one), not for a few small
     * frames, where starting a thread costs more than it saves. */
    if (!px->encapsulated && (uint64_t)fb * px->stored.frames < NATIVE_PARALLEL_BYTES)
        threads = 1;
    /* Frames are decoded at once, one a thread, as long as there are frames for every
     * thread: that keeps every core busy with the least coordination. With fewer frames than
     * threads (a single frame above all), a codec that can use threads inside a frame gets
     * the rest (OpenJPEG: GDCM decodes a JPEG 2000 frame on 4 of its threads). */
    size_t t = threads > 0 ? (size_t)threads : (size_t)mira__cpu_count();
    if (t > 256)
        t = 256;
    size_t at_once = t < px->stored.frames ? t : px->stored.frames;
    decode_all_ctx c = {.px = px,
                        .out = out,
                        .frame_bytes = fb,
                        .threads = t,
                        .frame_threads = at_once ? at_once : 1};
    pthread_mutex_init(&c.lock, NULL);
    bool ok = mira__parallel_for(px->stored.frames, (int)c.frame_threads, decode_one, &c);
    pthread_mutex_destroy(&c.lock);
    if (!ok) {
        if (err && !*err)
            *err = c.first;
        else
            mira_error_free(c.first);
    }
    return ok;
}

bool mira_pixels_encapsulated(const mira_pixels *px)
{
    return px->encapsulated;
}

bool mira_pixels_frame_stored(mira_pixels *px, uint32_t frame, const uint8_t **data,
                              size_t *len, uint8_t **owned, mira_error **err)
{
    *owned = NULL;
    if (frame >= px->stored.frames) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such frame", "frame %u of %u", frame + 1,
                       px->stored.frames);
        return false;
    }
    if (px->encapsulated)
        return mira__pixels_frame_bytes(px, frame, data, len, owned, err);
    if (px->stored.bits_allocated < 8 || px->native_frame_bytes > SIZE_MAX) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Frame not byte-addressable",
                       "the stored frames are bits, not bytes: decode them");
        return false;
    }
    uint64_t at = (uint64_t)frame * px->native_frame_bytes;
    if (at + px->native_frame_bytes > px->data_len) {
        mira_error_set(err, MIRA_ERR_INVALID, "Pixel data too short", "frame %u", frame + 1);
        return false;
    }
    *data = px->data + at;
    *len = (size_t)px->native_frame_bytes;
    /* big-endian: each sample's bytes reversed into a copy (8-bit OW: byte pairs swapped), the
     * layout (planar configuration) kept as stored */
    size_t sb = px->swap_pairs ? 2 : px->big_endian ? px->stored.bits_allocated / 8u : 1;
    if (sb > 1) {
        uint8_t *copy = mira_malloc(*len ? *len : 1);
        if (!copy) {
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "frame %u", frame + 1);
            return false;
        }
        for (size_t i = 0; i + sb <= *len; i += sb)
            for (size_t k = 0; k < sb; k++)
                copy[i + k] = (*data)[i + sb - 1 - k];
        *data = copy;
        *owned = copy;
    }
    return true;
}
