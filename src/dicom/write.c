/* DICOM PS3.10 writing: any data set in any uncompressed transfer syntax, the exact inverse of reading. */
#include "file_int.h"
#include "impl.h"

#include "core/buf.h"
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>


typedef struct enc {
    bool explicit_vr;
    bool big_endian;
} enc;

typedef struct writer {
    mira__buf *b;
    const char *ts_override; /* value for (0002,0010), or NULL */
    mira_error **err;
} writer;

static void put16(mira__buf *b, uint16_t v, bool be)
{
    if (be)
        mira__buf_u16be(b, v);
    else
        mira__buf_u16le(b, v);
}

static void put32(mira__buf *b, uint32_t v, bool be)
{
    if (be)
        mira__buf_u32be(b, v);
    else
        mira__buf_u32le(b, v);
}

static void patch32(mira__buf *b, size_t at, uint32_t v, bool be)
{
    if (b->failed)
        return;
    uint8_t *p = b->data + at;
    if (be) {
        p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
    } else {
        p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
    }
}

static void put_tag(mira__buf *b, mira_tag t, bool be)
{
    put16(b, MIRA_TAG_GROUP(t), be);
    put16(b, MIRA_TAG_ELEMENT(t), be);
}

/* Write the header; returns the buffer offset of the 4-byte length field if it must be
 * patched (long-length forms only), else (size_t)-1. */
static size_t put_header(mira__buf *b, mira_tag tag, mira_vr vr, uint32_t len, enc e)
{
    put_tag(b, tag, e.big_endian);
    if (!e.explicit_vr) {
        size_t at = b->len;
        put32(b, len, e.big_endian);
        return at;
    }
    const char *name = mira_vr_name(vr);
    mira__buf_append(b, name, 2);
    if (mira_vr_has_long_length(vr)) {
        put16(b, 0, e.big_endian);
        size_t at = b->len;
        put32(b, len, e.big_endian);
        return at;
    }
    put16(b, (uint16_t)len, e.big_endian);
    return (size_t)-1;
}

/* Append a value, converting byte order when source and target differ. */
static void put_value(mira__buf *b, const mira_element *el, mira_vr vr, bool src_be, bool dst_be)
{
    size_t n = el->value_len;
    if (!n)
        return;
    size_t sz = vr == MIRA_VR_AT ? 2 : mira_vr_value_size(vr);
    if (src_be == dst_be || sz < 2) {
        mira__buf_append(b, el->value, n);
        return;
    }
    if (!mira__buf_reserve(b, n))
        return;
    uint8_t *d = b->data + b->len;
    const uint8_t *s = el->value;
    size_t whole = n - n % sz;
    for (size_t off = 0; off < whole; off += sz)
        for (size_t k = 0; k < sz; k++)
            d[off + k] = s[off + sz - 1 - k];
    memcpy(d + whole, s + whole, n - whole);
    b->len += n;
    b->data[b->len] = 0;
}

static bool write_dataset(writer *w, const mira_dataset *ds, enc e);

static bool write_items(writer *w, const mira_element *el, enc e)
{
    mira__buf *b = w->b;
    for (size_t i = 0; i < el->nitems; i++) {
        const mira_dataset *item = el->items[i];
        put_tag(b, MIRA_TAG_ITEM, e.big_endian);
        size_t at = b->len;
        put32(b, item->undefined_length ? MIRA_UNDEFINED_LENGTH : 0, e.big_endian);
        size_t start = b->len;
        if (!write_dataset(w, item, e))
            return false;
        if (item->undefined_length) {
            put_tag(b, MIRA_TAG_ITEM_DELIM, e.big_endian);
            put32(b, 0, e.big_endian);
        } else {
            patch32(b, at, (uint32_t)(b->len - start), e.big_endian);
        }
    }
    return true;
}

static bool same_encoding(const mira_dataset *ds, enc e)
{
    return ds->explicit_vr == e.explicit_vr && ds->big_endian == e.big_endian;
}

static bool write_dataset(writer *w, const mira_dataset *ds, enc e)
{
    mira__buf *b = w->b;
    /* pending group length: where its value sits and where its group's content starts */
    size_t gl_at = (size_t)-1, gl_start = 0;
    uint16_t gl_group = 0;
    for (size_t i = 0; i < ds->count; i++) {
        const mira_element *el = &ds->elems[i];
        uint16_t group = MIRA_TAG_GROUP(el->tag);
        if (gl_at != (size_t)-1 && group != gl_group) {
            patch32(b, gl_at, (uint32_t)(b->len - gl_start), e.big_endian);
            gl_at = (size_t)-1;
        }
        bool same = same_encoding(ds, e);
        mira_vr vr = (mira_vr)el->vr;
        if (same && el->vr_disk != MIRA_VR_NONE && mira_vr_name((mira_vr)el->vr_disk)[0] != '?')
            vr = (mira_vr)el->vr_disk;
        if (vr == MIRA_VR_UN && el->vr == MIRA_VR_SQ && !el->implicit_items)
            vr = MIRA_VR_SQ;

        if (el->vr == MIRA_VR_SQ) {
            bool as_un = vr == MIRA_VR_UN && el->implicit_items && same;
            enc ie = as_un ? (enc){false, false} : e;
            mira_vr hvr = as_un ? MIRA_VR_UN : MIRA_VR_SQ;
            bool undefined = el->undefined_length;
            size_t at = put_header(b, el->tag, hvr, undefined ? MIRA_UNDEFINED_LENGTH : 0, e);
            size_t start = b->len;
            if (!write_items(w, el, ie))
                return false;
            if (undefined) {
                put_tag(b, MIRA_TAG_SEQ_DELIM, ie.big_endian);
                put32(b, 0, ie.big_endian);
            } else {
                patch32(b, at, (uint32_t)(b->len - start), e.big_endian);
            }
            continue;
        }
        if (el->encapsulated) {
            mira_vr evr = vr == MIRA_VR_OW || vr == MIRA_VR_UN ? vr : MIRA_VR_OB;
            put_header(b, el->tag, evr, MIRA_UNDEFINED_LENGTH, e);
            for (size_t k = 0; k < el->nfrags; k++) {
                put_tag(b, MIRA_TAG_ITEM, e.big_endian);
                put32(b, (uint32_t)el->frags[k].len, e.big_endian);
                mira__buf_append(b, el->frags[k].data, el->frags[k].len);
            }
            put_tag(b, MIRA_TAG_SEQ_DELIM, e.big_endian);
            put32(b, 0, e.big_endian);
            continue;
        }
        if (e.explicit_vr && !mira_vr_has_long_length(vr) && el->value_len > 0xFFFF)
            vr = MIRA_VR_UN; /* cannot be expressed with a 16-bit length */
        if (el->tag == MIRA_TAG_TRANSFER_SYNTAX && w->ts_override) {
            size_t n = strlen(w->ts_override);
            put_header(b, el->tag, MIRA_VR_UI, (uint32_t)(n + (n & 1)), e);
            mira__buf_append(b, w->ts_override, n);
            if (n & 1)
                mira__buf_putc(b, '\0');
            continue;
        }
        put_header(b, el->tag, vr, (uint32_t)el->value_len, e);
        if (MIRA_TAG_ELEMENT(el->tag) == 0 && el->value_len == 4 && el->vr == MIRA_VR_UL) {
            /* a group length: its value is recomputed for the encoding being written */
            gl_at = b->len;
            gl_group = group;
            put32(b, 0, e.big_endian);
            gl_start = b->len;
            continue;
        }
        /* UN and OB values are bytes; the rest follow the data set's byte order. */
        put_value(b, el, vr == MIRA_VR_UN ? MIRA_VR_OB : (mira_vr)el->vr, ds->big_endian,
                  e.big_endian);
    }
    if (gl_at != (size_t)-1)
        patch32(b, gl_at, (uint32_t)(b->len - gl_start), e.big_endian);
    if (b->failed) {
        mira_error_set(w->err, MIRA_ERR_NOMEM, NULL, "encoding a data set");
        return false;
    }
    return true;
}

bool mira__dataset_encode(const mira_dataset *ds, bool explicit_vr, bool big_endian,
                          mira__buf *out, mira_error **err)
{
    writer w = {out, NULL, err};
    return write_dataset(&w, ds, (enc){explicit_vr, big_endian});
}

static bool has_encapsulated(const mira_dataset *ds)
{
    for (size_t i = 0; i < ds->count; i++) {
        const mira_element *el = &ds->elems[i];
        if (el->encapsulated)
            return true;
        for (size_t k = 0; k < el->nitems; k++)
            if (has_encapsulated(el->items[k]))
                return true;
    }
    return false;
}

static bool deflate_into(mira__buf *out, const uint8_t *in, size_t len, mira_error **err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "zlib deflateInit2");
        return false;
    }
    size_t bound = deflateBound(&zs, (uLong)len);
    if (!mira__buf_reserve(out, bound)) {
        deflateEnd(&zs);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "deflating a data set");
        return false;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        mira_error_set(err, MIRA_ERR_IO, "Deflate failed", "zlib deflate returned %d", rc);
        return false;
    }
    /* Deflated data sets are padded to an even length (PS3.5 A.5). */
    if (out->len & 1)
        mira__buf_putc(out, '\0');
    return true;
}

static bool copy_uid(mira_dataset *meta, mira_tag to, const mira_dataset *ds, mira_tag from,
                     mira_error **err);
static bool fill_meta(mira_dataset *meta, const mira_dataset *ds, const char *ts_uid,
                      mira_error **err);

/* The file meta to write: f->meta itself if it has the required elements, else a completed copy
 * (caller frees a copy). */
static mira_dataset *complete_meta(const mira_file *f, const char *ts, mira_error **err)
{
    static const mira_tag required[] = {
        MIRA_TAG(0x0002, 0x0000), MIRA_TAG(0x0002, 0x0001), MIRA_TAG(0x0002, 0x0002),
        MIRA_TAG(0x0002, 0x0003), MIRA_TAG_TRANSFER_SYNTAX,  MIRA_TAG(0x0002, 0x0012),
    };
    bool complete = true;
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        complete &= mira_dataset_get(f->meta, required[i]) != NULL;
    if (complete)
        return f->meta;
    mira_dataset *m = mira_dataset_new(err);
    if (!m)
        return NULL;
    for (size_t i = 0; i < f->meta->count; i++) {
        const mira_element *el = &f->meta->elems[i];
        if (MIRA_TAG_GROUP(el->tag) != 0x0002 || el->vr == MIRA_VR_SQ || el->encapsulated)
            continue;
        if (!mira_dataset_set_bytes(m, el->tag, (mira_vr)el->vr, el->value, el->value_len, err)) {
            mira_dataset_free(m);
            return NULL;
        }
    }
    if (!fill_meta(m, f->ds, ts, err)) {
        mira_dataset_free(m);
        return NULL;
    }
    return m;
}

bool mira_file_write_memory(const mira_file *f, const char *ts_uid, uint8_t **out,
                            size_t *out_len, mira_error **err)
{
    const char *ts = ts_uid ? ts_uid : f->ts;
    mira_ts_info info;
    if (!mira_ts_lookup(ts, &info)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unknown transfer syntax",
                       "cannot write transfer syntax %s", ts);
        return false;
    }
    /* The pixel data is in the file's syntax, or in the one mira_file_transcode put it in. */
    const char *pixel_ts = f->ds->pixel_ts ? f->ds->pixel_ts : f->ts;
    if (has_encapsulated(f->ds) && strcmp(ts, pixel_ts) != 0) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Needs transcoding",
                       "the pixel data is compressed (%s); writing it as %s needs transcoding "
                       "first (mira_file_transcode)",
                       pixel_ts, ts);
        return false;
    }
    if (info.encapsulated && !has_encapsulated(f->ds) && strcmp(ts, f->ts) != 0) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Needs transcoding",
                       "writing native pixel data as %s needs encoding first "
                       "(mira_file_transcode)",
                       ts);
        return false;
    }
    if (f->ds->count && MIRA_TAG_GROUP(f->ds->elems[0].tag) <= 0x0002) {
        /* Group 0002 belongs to the file meta; written in the data set it would be read back as
         * meta. Only raw data sets read with a group 0002 inside can get here. */
        for (size_t i = 0; i < f->ds->count && MIRA_TAG_GROUP(f->ds->elems[i].tag) <= 2; i++) {
            if (MIRA_TAG_GROUP(f->ds->elems[i].tag) == 0x0002) {
                mira_error_set(err, MIRA_ERR_INVALID, "File meta in data set",
                               "the data set holds file meta element (0002,%04X); a Part 10 file "
                               "cannot carry it outside the file meta information",
                               MIRA_TAG_ELEMENT(f->ds->elems[i].tag));
                return false;
            }
        }
    }
    mira__buf b;
    mira__buf_init(&b);
    if (f->has_preamble) {
        mira__buf_append(&b, f->preamble, 128);
    } else {
        uint8_t zero[128] = {0};
        mira__buf_append(&b, zero, 128);
    }
    mira__buf_append(&b, "DICM", 4);
    writer w = {&b, ts_uid && strcmp(ts_uid, f->ts) != 0 ? ts_uid : NULL, err};
    /* The file meta is always explicit VR little endian. A raw data set, or a file whose meta
     * lacks required elements, gets them filled in (PS3.10 7.1). */
    mira_dataset *meta = complete_meta(f, ts, err);
    if (!meta)
        goto fail;
    bool meta_ok = write_dataset(&w, meta, (enc){true, false});
    if (meta != f->meta)
        mira_dataset_free(meta);
    if (!meta_ok)
        goto fail;
    w.ts_override = NULL;
    enc e = {info.explicit_vr, info.big_endian};
    if (info.deflated) {
        mira__buf raw;
        mira__buf_init(&raw);
        w.b = &raw;
        if (!write_dataset(&w, f->ds, e)) {
            mira__buf_cleanup(&raw);
            goto fail;
        }
        bool ok = deflate_into(&b, raw.data ? raw.data : (const uint8_t *)"", raw.len, err);
        mira__buf_cleanup(&raw);
        if (!ok)
            goto fail;
    } else if (!write_dataset(&w, f->ds, e)) {
        goto fail;
    }
    if (b.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "encoding a file");
        goto fail;
    }
    *out = (uint8_t *)mira__buf_steal(&b, out_len);
    if (!*out) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "encoding a file");
        return false;
    }
    return true;
fail:
    mira__buf_cleanup(&b);
    return false;
}

bool mira_file_write(const mira_file *f, const char *path, const char *ts_uid, mira_error **err)
{
    uint8_t *data;
    size_t len;
    if (!mira_file_write_memory(f, ts_uid, &data, &len, err))
        return false;
    bool ok = mira__write_file_atomic(path, data, len, err);
    mira_free(data);
    return ok;
}

/* ------------------------------------------------------------------ new files */

static bool copy_uid(mira_dataset *meta, mira_tag to, const mira_dataset *ds, mira_tag from,
                     mira_error **err)
{
    mira_element *el = mira_dataset_get(ds, from);
    if (!el) {
        /* A data set without SOP Class/Instance UIDs (seen in raw test files) is still written,
         * with the meta element present and empty, rather than refused and lost. */
        return mira_dataset_set_bytes(meta, to, MIRA_VR_UI, "", 0, err) != NULL;
    }
    char *v = mira_element_get_string(el, 0, err);
    if (!v)
        return false;
    bool ok = mira_dataset_set_string(meta, to, MIRA_VR_UI, v, err) != NULL;
    mira_free(v);
    return ok;
}

/* Add the required file meta elements that `meta` lacks. */
static bool fill_meta(mira_dataset *meta, const mira_dataset *ds, const char *ts_uid,
                      mira_error **err)
{
    static const uint8_t version[2] = {0, 1};
    uint8_t zero[4] = {0};
    bool ok = true;
    if (!mira_dataset_get(meta, MIRA_TAG(0x0002, 0x0000)))
        ok = ok && mira_dataset_set_bytes(meta, MIRA_TAG(0x0002, 0x0000), MIRA_VR_UL, zero, 4, err);
    if (!mira_dataset_get(meta, MIRA_TAG(0x0002, 0x0001)))
        ok = ok && mira_dataset_set_bytes(meta, MIRA_TAG(0x0002, 0x0001), MIRA_VR_OB, version, 2,
                                          err);
    if (!mira_dataset_get(meta, MIRA_TAG(0x0002, 0x0002)))
        ok = ok && copy_uid(meta, MIRA_TAG(0x0002, 0x0002), ds, MIRA_TAG(0x0008, 0x0016), err);
    if (!mira_dataset_get(meta, MIRA_TAG(0x0002, 0x0003)))
        ok = ok && copy_uid(meta, MIRA_TAG(0x0002, 0x0003), ds, MIRA_TAG(0x0008, 0x0018), err);
    ok = ok && mira_dataset_set_string(meta, MIRA_TAG_TRANSFER_SYNTAX, MIRA_VR_UI, ts_uid, err);
    if (!mira_dataset_get(meta, MIRA_TAG(0x0002, 0x0012))) {
        ok = ok && mira_dataset_set_string(meta, MIRA_TAG(0x0002, 0x0012), MIRA_VR_UI,
                                           MIRA_IMPLEMENTATION_UID, err) &&
             mira_dataset_set_string(meta, MIRA_TAG(0x0002, 0x0013), MIRA_VR_SH,
                                     MIRA_IMPLEMENTATION_NAME, err);
    }
    return ok;
}

mira_file *mira_file_from_dataset(mira_dataset *ds, const char *ts_uid, mira_error **err)
{
    mira_ts_info info;
    if (!ts_uid)
        ts_uid = MIRA_TS_EXPLICIT_LE;
    if (!mira_ts_lookup(ts_uid, &info)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unknown transfer syntax", "%s", ts_uid);
        return NULL;
    }
    mira_file *f = mira_calloc(1, sizeof *f);
    mira_dataset *meta = f ? mira_dataset_new(err) : NULL;
    if (!f || !meta) {
        mira_free(f);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a file");
        return NULL;
    }
    bool ok = fill_meta(meta, ds, ts_uid, err);
    f->ts = ok ? mira_strdup(ts_uid) : NULL;
    if (!ok || !f->ts) {
        if (ok)
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a file");
        mira_dataset_free(meta);
        mira_free(f->ts);
        mira_free(f);
        return NULL;
    }
    f->meta = meta;
    f->ds = ds;
    return f;
}

bool mira__file_meta_encode(mira__buf *out, const char *sop_class, const char *sop_instance,
                            const char *ts, const char *source_ae)
{
    mira_dataset *m = mira_dataset_new(NULL);
    if (!m)
        return false;
    static const uint8_t zero[4], version[2] = {0, 1};
    bool ok = mira_dataset_set_bytes(m, MIRA_TAG(0x0002, 0x0000), MIRA_VR_UL, zero, 4, NULL) &&
              mira_dataset_set_bytes(m, MIRA_TAG(0x0002, 0x0001), MIRA_VR_OB, version, 2, NULL) &&
              mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0002), MIRA_VR_UI, sop_class, NULL) &&
              mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0003), MIRA_VR_UI, sop_instance,
                                      NULL) &&
              mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0010), MIRA_VR_UI, ts, NULL) &&
              mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0012), MIRA_VR_UI,
                                      MIRA_IMPLEMENTATION_UID, NULL) &&
              mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0013), MIRA_VR_SH,
                                      MIRA_IMPLEMENTATION_NAME, NULL);
    if (ok && source_ae && *source_ae)
        ok = mira_dataset_set_string(m, MIRA_TAG(0x0002, 0x0016), MIRA_VR_AE, source_ae, NULL);
    static const uint8_t preamble[128];
    mira__buf_append(out, preamble, sizeof preamble);
    mira__buf_append(out, "DICM", 4);
    ok = ok && mira__dataset_encode(m, true, false, out, NULL) && !out->failed;
    mira_dataset_free(m);
    return ok;
}
