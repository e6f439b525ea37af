/* Re-encoding pixel data from one transfer syntax into another (decode, then encode). */
#include "dicom/dataset_int.h"
#include "pixel/pixels_int.h"

#include "core/parallel.h"

#include <string.h>

#define TAG_PIXEL_DATA 0x7FE00010u

typedef struct encode_ctx {
    const mira__codec *codec;
    const uint8_t *frames;
    size_t frame_bytes;
    mira_pixel_desc desc;
    mira__buf *out;
    mira_photometric *photo;
    mira_error **errs;
} encode_ctx;

static bool encode_one(void *arg, size_t i)
{
    encode_ctx *c = arg;
    mira__buf_init(&c->out[i]);
    c->photo[i] = c->desc.photometric;
    if (!c->codec->encode(c->frames + i * c->frame_bytes, c->frame_bytes, &c->desc, &c->out[i],
                          &c->photo[i], &c->errs[i]))
        return false;
    if (c->out[i].len % 2)
        mira__buf_putc(&c->out[i], 0); /* fragments have even lengths */
    if (c->out[i].failed) {
        mira_error_set(&c->errs[i], MIRA_ERR_NOMEM, "Out of memory", "encoding frame %zu",
                       i + 1);
        return false;
    }
    return true;
}

static bool set_photometric(mira_dataset *ds, const mira_pixel_desc *d, mira_photometric p,
                            mira_error **err)
{
    if (!mira_dataset_set_string(ds, 0x00280004, MIRA_VR_CS, mira_photometric_name(p), err))
        return false;
    if (d->samples > 1) {
        uint8_t zero[2] = {0, 0};
        if (!mira_dataset_set_bytes(ds, 0x00280006, MIRA_VR_US, zero, 2, err))
            return false;
    }
    return true;
}

static bool write_native(mira_dataset *ds, const mira_pixel_desc *d, const uint8_t *buf,
                         size_t total, mira_error **err)
{
    uint8_t *packed = NULL;
    const uint8_t *data = buf;
    size_t len = total;
    if (d->bits_allocated == 1) {
        /* One byte per pixel back to 8 pixels per byte, least significant bit first. */
        len = (total + 7) / 8;
        packed = mira_calloc(len + 1, 1);
        if (!packed) {
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "packing 1-bit pixels");
            return false;
        }
        for (size_t i = 0; i < total; i++)
            if (buf[i] & 1)
                packed[i >> 3] |= (uint8_t)(1u << (i & 7));
        data = packed;
    }
    if (len % 2) {
        if (!packed) {
            packed = mira_malloc(len + 1);
            if (!packed) {
                mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "padding pixel data");
                return false;
            }
            memcpy(packed, buf, len);
            data = packed;
        }
        packed[len++] = 0;
    }
    mira_vr vr = d->bits_allocated <= 8 ? MIRA_VR_OB : MIRA_VR_OW;
    bool ok = mira_dataset_set_bytes(ds, TAG_PIXEL_DATA, vr, data, len, err) != NULL;
    mira_free(packed);
    return ok;
}

bool mira_pixels_transcode(mira_dataset *ds, const char *src_ts, const char *dst_ts, int threads,
                           mira_error **err)
{
    mira_ts_info dinfo;
    if (!mira_ts_lookup(dst_ts, &dinfo)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unknown transfer syntax",
                       "transfer syntax %s is not one mira knows", dst_ts);
        return false;
    }
    const mira__codec *codec = NULL;
    if (dinfo.encapsulated) {
        codec = mira__codec_find(dst_ts);
        if (!codec || !codec->encode) {
            const mira_uid_entry *u = mira_uid_find(dst_ts);
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "No encoder",
                           "mira cannot encode %s (%s); it encodes RLE Lossless, JPEG-LS "
                           "Lossless and JPEG 2000 Lossless",
                           dst_ts, u ? u->name : "unknown");
            return false;
        }
    }
    mira_pixels *px = mira_pixels_open(ds, src_ts, err);
    if (!px)
        return false;
    mira_pixel_desc d = *mira_pixels_decoded(px);
    if (codec && (d.bits_allocated == 1 || d.is_float)) {
        mira_pixels_free(px);
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "No encoder",
                       "%s pixel data cannot be compressed",
                       d.is_float ? "floating point" : "1-bit");
        return false;
    }
    size_t fb = mira_pixel_frame_bytes(&d);
    size_t nframes = d.frames;
    uint8_t *buf = nframes && fb <= SIZE_MAX / nframes ? mira_malloc(fb * nframes) : NULL;
    if (!buf) {
        mira_pixels_free(px);
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "%zu frames of %zu bytes", nframes,
                       fb);
        return false;
    }
    bool ok = mira_pixels_decode_all(px, buf, fb * nframes, threads, err);
    mira_pixels_free(px); /* borrows the old Pixel Data, which is about to be replaced */
    if (!ok) {
        mira_free(buf);
        return false;
    }
    mira_photometric photo = d.photometric;
    if (!codec) {
        ok = write_native(ds, &d, buf, fb * nframes, err);
    } else {
        mira__buf *out = mira_calloc(nframes, sizeof *out);
        mira_photometric *ph = mira_calloc(nframes, sizeof *ph);
        mira_error **errs = mira_calloc(nframes, sizeof *errs);
        ok = out && ph && errs;
        if (!ok)
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "encoding %zu frames", nframes);
        if (ok) {
            encode_ctx c = {codec, buf, fb, d, out, ph, errs};
            ok = mira__parallel_for(nframes, threads, encode_one, &c);
            for (size_t i = 0; i < nframes; i++) {
                if (errs[i] && ok == false && err && !*err) {
                    *err = errs[i];
                    if (nframes > 1)
                        mira_error_prefix(err, "frame %zu: ", i + 1);
                } else {
                    mira_error_free(errs[i]);
                }
            }
        }
        if (ok) {
            photo = ph[0];
            mira_element *e = mira_dataset_set_encapsulated(ds, TAG_PIXEL_DATA, err);
            ok = e != NULL;
            if (ok && nframes > 1) {
                /* A Basic Offset Table: frames are found directly, without scanning. */
                uint8_t *bot = mira_malloc(4 * nframes);
                uint64_t off = 0;
                ok = bot != NULL;
                for (size_t i = 0; ok && i < nframes; i++) {
                    if (off > 0xFFFFFFFFu) {
                        ok = false; /* too large for 32-bit offsets: leave the table empty */
                        break;
                    }
                    bot[4 * i] = (uint8_t)off;
                    bot[4 * i + 1] = (uint8_t)(off >> 8);
                    bot[4 * i + 2] = (uint8_t)(off >> 16);
                    bot[4 * i + 3] = (uint8_t)(off >> 24);
                    off += 8 + out[i].len;
                }
                if (ok)
                    ok = mira_element_add_fragment(e, bot, 4 * nframes, true, err);
                else if (bot)
                    ok = true;
                mira_free(bot);
                if (!ok && err && !*err)
                    mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "an offset table");
            }
            for (size_t i = 0; ok && i < nframes; i++)
                ok = mira_element_add_fragment(e, out[i].data, out[i].len, false, err);
        }
        for (size_t i = 0; out && i < nframes; i++)
            mira__buf_cleanup(&out[i]);
        mira_free(out);
        mira_free(ph);
        mira_free(errs);
    }
    mira_free(buf);
    if (ok)
        ok = set_photometric(ds, &d, photo, err);
    if (ok) {
        mira_dataset_remove(ds, 0x7FE00001); /* offset tables of the old encoding */
        mira_dataset_remove(ds, 0x7FE00002);
        ok = mira__dataset_set_pixel_ts(ds, dst_ts);
        if (!ok)
            mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "transcoding");
    }
    return ok;
}

bool mira_file_transcode(mira_file *f, const char *ts_uid, int threads, mira_error **err)
{
    mira_dataset *ds = mira_file_dataset(f);
    const char *cur = ds->pixel_ts ? ds->pixel_ts : mira_file_transfer_syntax(f);
    mira_ts_info to;
    if (!mira_ts_lookup(ts_uid, &to)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unknown transfer syntax",
                       "transfer syntax %s is not one mira knows", ts_uid);
        return false;
    }
    if (!mira_dataset_get(ds, TAG_PIXEL_DATA))
        return true;
    mira_element *e = mira_dataset_get(ds, TAG_PIXEL_DATA);
    bool encapsulated = mira_element_is_encapsulated(e);
    if (!encapsulated && !to.encapsulated)
        return true; /* native to native: the writer converts byte order itself */
    if (encapsulated && strcmp(cur, ts_uid) == 0)
        return true;
    return mira_pixels_transcode(ds, cur, ts_uid, threads, err);
}
