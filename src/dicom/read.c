/* DICOM PS3.10 file and PS3.5 data set reading: mapped input, lazily decoded values. */
#include "file_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_DEPTH 64 /* nested sequences; real files rarely exceed 10 */

typedef struct reader {
    mira_file *f;
    const uint8_t *buf; /* the bytes being parsed */
    size_t len;
    uint64_t base;      /* file offset of buf[0] (for messages) */
    bool stop_before_pixels;
    bool replace_un;
} reader;

void mira_read_options_init(mira_read_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->replace_un = true;
}

bool mira__file_warn(mira_file *f, const char *fmt, ...)
{
    if (f->nwarn == f->capwarn) {
        if (f->nwarn >= 1000)
            return true; /* enough: a pathological file should not grow this without bound */
        size_t cap = f->capwarn ? f->capwarn * 2 : 4;
        char **n = mira_realloc(f->warnings, cap * sizeof *n);
        if (!n)
            return false;
        f->warnings = n;
        f->capwarn = cap;
    }
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *m = mira_strdup(msg);
    if (!m)
        return false;
    f->warnings[f->nwarn++] = m;
    return true;
}

static bool fail(mira_error **err, uint64_t offset, const char *fmt, ...) MIRA_PRINTF(3, 4);

static bool fail(mira_error **err, uint64_t offset, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mira_error_set(err, MIRA_ERR_INVALID, "Malformed DICOM", "at offset %llu (0x%llX): %s",
                   (unsigned long long)offset, (unsigned long long)offset, msg);
    return false;
}

static bool is_vr_chars(const uint8_t *p)
{
    return p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z';
}

typedef struct enc {
    bool explicit_vr;
    bool big_endian;
} enc;

static bool parse_dataset(reader *r, size_t *pos, size_t end, mira_dataset *ds, enc e,
                          bool until_item_delim, int depth, mira_error **err);

/* Parse the items of a sequence value [*pos, end) or up to a sequence delimiter. */
static bool parse_items(reader *r, size_t *pos, size_t end, size_t outer_end, mira_element *el,
                        enc e, bool undefined, int depth, mira_error **err)
{
    const bool be = e.big_endian;
    while (*pos < end) {
        size_t p = *pos;
        if (end - p < 8)
            return fail(err, r->base + p, "truncated item header in sequence (%04X,%04X)",
                        MIRA_TAG_GROUP(el->tag), MIRA_TAG_ELEMENT(el->tag));
        mira_tag tag = (mira_tag)mira__rd16(r->buf + p, be) << 16 | mira__rd16(r->buf + p + 2, be);
        uint32_t len = mira__rd32(r->buf + p + 4, be);
        if (tag == MIRA_TAG_SEQ_DELIM) {
            *pos = p + 8;
            if (!undefined)
                mira__file_warn(r->f, "offset %llu: sequence delimiter in defined-length "
                                      "sequence (%04X,%04X)",
                                (unsigned long long)(r->base + p), MIRA_TAG_GROUP(el->tag),
                                MIRA_TAG_ELEMENT(el->tag));
            return true;
        }
        if (tag != MIRA_TAG_ITEM)
            return fail(err, r->base + p,
                        "expected an item tag (FFFE,E000) in sequence (%04X,%04X), found "
                        "(%04X,%04X)",
                        MIRA_TAG_GROUP(el->tag), MIRA_TAG_ELEMENT(el->tag), MIRA_TAG_GROUP(tag),
                        MIRA_TAG_ELEMENT(tag));
        el->vr = MIRA_VR_SQ;
        mira_dataset *item = mira_element_add_item(el, err);
        if (!item)
            return false;
        item->big_endian = e.big_endian;
        item->explicit_vr = e.explicit_vr;
        item->offset = r->base + p;
        item->undefined_length = len == MIRA_UNDEFINED_LENGTH;
        p += 8;
        if (len == MIRA_UNDEFINED_LENGTH) {
            if (!parse_dataset(r, &p, end, item, e, true, depth + 1, err))
                return false;
        } else {
            if (len > end - p) {
                /* Seen in DICOMDIRs: an item length that runs past its sequence. pydicom and
                 * DCMTK read on; we read the item up to where the sequence (or, if the
                 * sequence is the short one, the enclosing data) ends, and say so. */
                size_t limit = len <= outer_end - p ? p + len : end;
                mira__file_warn(r->f,
                                "offset %llu: item length %u exceeds the %zu bytes left in "
                                "sequence (%04X,%04X); read to offset %llu",
                                (unsigned long long)(r->base + p - 8), len, end - p,
                                MIRA_TAG_GROUP(el->tag), MIRA_TAG_ELEMENT(el->tag),
                                (unsigned long long)(r->base + limit));
                len = (uint32_t)(limit - p);
                end = limit > end ? limit : end;
            }
            size_t item_end = p + len;
            if (!parse_dataset(r, &p, item_end, item, e, false, depth + 1, err))
                return false;
            p = item_end;
        }
        *pos = p;
    }
    if (undefined)
        return fail(err, r->base + *pos, "sequence (%04X,%04X) has no sequence delimiter",
                    MIRA_TAG_GROUP(el->tag), MIRA_TAG_ELEMENT(el->tag));
    return true;
}

/* Parse encapsulated pixel data fragments up to the sequence delimiter. */
static bool parse_fragments(reader *r, size_t *pos, size_t end, mira_element *el, enc e,
                            mira_error **err)
{
    const bool be = e.big_endian;
    el->encapsulated = true;
    while (1) {
        size_t p = *pos;
        if (end - p < 8)
            return fail(err, r->base + p,
                        "encapsulated pixel data ends without a sequence delimiter");
        mira_tag tag = (mira_tag)mira__rd16(r->buf + p, be) << 16 | mira__rd16(r->buf + p + 2, be);
        uint32_t len = mira__rd32(r->buf + p + 4, be);
        if (tag == MIRA_TAG_SEQ_DELIM) {
            *pos = p + 8;
            break;
        }
        if (tag != MIRA_TAG_ITEM)
            return fail(err, r->base + p,
                        "expected a fragment item (FFFE,E000) in encapsulated pixel data, found "
                        "(%04X,%04X)",
                        MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag));
        if (len == MIRA_UNDEFINED_LENGTH || len > end - p - 8)
            return fail(err, r->base + p, "fragment length %u exceeds the %zu bytes left", len,
                        end - p - 8);
        if (el->nfrags == el->frags_cap) {
            size_t cap = el->frags_cap ? el->frags_cap * 2 : 8;
            mira__fragment *n = mira_realloc(el->frags, cap * sizeof *n);
            if (!n) {
                mira_error_set(err, MIRA_ERR_NOMEM, NULL, "growing fragments");
                return false;
            }
            el->frags = n;
            el->frags_cap = cap;
        }
        el->frags[el->nfrags++] = (mira__fragment){r->buf + p + 8, len, NULL};
        *pos = p + 8 + len;
    }
    if (el->nfrags == 0) {
        mira__file_warn(r->f, "offset %llu: encapsulated pixel data without a basic offset table",
                        (unsigned long long)(r->base + el->offset));
        /* keep the invariant: slot 0 is the (empty) offset table */
        el->frags = mira_malloc(sizeof *el->frags);
        if (!el->frags) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "fragments");
            return false;
        }
        el->frags_cap = 1;
        el->frags[0] = (mira__fragment){(const uint8_t *)"", 0, NULL};
        el->nfrags = 1;
    }
    return true;
}

/* Group lengths are retired outside group 0002 and often wrong; warn, never fail. */
static void check_group_length(reader *r, int group, uint32_t said, size_t actual)
{
    if (said != actual)
        mira__file_warn(r->f, "group length (%04X,0000) says %u bytes, the group has %zu",
                        (unsigned)group, said, actual);
}

static bool parse_dataset(reader *r, size_t *pos, size_t end, mira_dataset *ds, enc e,
                          bool until_item_delim, int depth, mira_error **err)
{
    if (depth > MAX_DEPTH)
        return fail(err, r->base + *pos, "sequences nested deeper than %d levels", MAX_DEPTH);
    const uint8_t *buf = r->buf;
    size_t p = *pos;
    mira_tag last = 0;
    bool sorted = true;
    /* a group length seen in this data set: its value and where its group's content starts */
    uint32_t gl_value = 0;
    size_t gl_start = 0;
    int gl_group = -1;
    while (p < end) {
        size_t start = p;
        if (end - p < 8) {
            /* trailing zero padding after the last element is seen in the wild */
            bool zeros = true;
            for (size_t k = p; k < end; k++)
                zeros &= buf[k] == 0;
            if (zeros && !until_item_delim && depth == 0) {
                mira__file_warn(r->f, "offset %llu: %zu trailing zero bytes ignored",
                                (unsigned long long)(r->base + p), end - p);
                p = end;
                break;
            }
            return fail(err, r->base + p, "truncated element header (%zu bytes left)", end - p);
        }
        bool be = e.big_endian;
        mira_tag tag = (mira_tag)mira__rd16(buf + p, be) << 16 | mira__rd16(buf + p + 2, be);
        if (gl_group >= 0 && MIRA_TAG_GROUP(tag) != gl_group) {
            check_group_length(r, gl_group, gl_value, start - gl_start);
            gl_group = -1;
        }
        if (tag == MIRA_TAG_ITEM_DELIM) {
            p += 8;
            if (until_item_delim) {
                *pos = p;
                goto done;
            }
            mira__file_warn(r->f, "offset %llu: stray item delimiter ignored",
                            (unsigned long long)(r->base + start));
            continue;
        }
        if (tag == MIRA_TAG_SEQ_DELIM || tag == MIRA_TAG_ITEM) {
            if (depth == 0 && !until_item_delim) {
                return fail(err, r->base + p, "unexpected %s outside a sequence",
                            tag == MIRA_TAG_ITEM ? "item tag" : "sequence delimiter");
            }
            return fail(err, r->base + p, "unexpected %s inside an item",
                        tag == MIRA_TAG_ITEM ? "item tag" : "sequence delimiter");
        }
        if (depth == 0 && r->stop_before_pixels && tag >= MIRA_TAG(0x7FE0, 0x0008) &&
            tag <= MIRA_TAG(0x7FE0, 0x0010)) {
            p = end;
            break;
        }
        uint16_t vr_disk = MIRA_VR_NONE;
        uint32_t len;
        size_t hdr;
        bool explicit_here = e.explicit_vr;
        if (explicit_here && !is_vr_chars(buf + p + 4)) {
            /* Seen in the wild: an implicitly encoded element in an explicit VR data set. */
            mira__file_warn(r->f,
                            "offset %llu: element (%04X,%04X) has no valid explicit VR; read as "
                            "implicit VR",
                            (unsigned long long)(r->base + p), MIRA_TAG_GROUP(tag),
                            MIRA_TAG_ELEMENT(tag));
            explicit_here = false;
        }
        if (explicit_here) {
            vr_disk = (uint16_t)(buf[p + 4] << 8 | buf[p + 5]);
            bool known = mira_vr_name((mira_vr)vr_disk)[0] != '?';
            if (!known) {
                mira__file_warn(r->f, "offset %llu: element (%04X,%04X) has unknown VR '%c%c'; "
                                      "read as UN",
                                (unsigned long long)(r->base + p), MIRA_TAG_GROUP(tag),
                                MIRA_TAG_ELEMENT(tag), buf[p + 4], buf[p + 5]);
            }
            if (!known || mira_vr_has_long_length((mira_vr)vr_disk)) {
                if (end - p < 12)
                    return fail(err, r->base + p, "truncated element header (%zu bytes left)",
                                end - p);
                /* an unknown VR is read with a 4-byte length, as UN (as DCMTK and pydicom) */
                len = mira__rd32(buf + p + 8, be);
                hdr = 12;
            } else {
                len = mira__rd16(buf + p + 6, be);
                hdr = 8;
            }
        } else {
            len = mira__rd32(buf + p + 4, be);
            hdr = 8;
        }
        if (!sorted || tag < last) {
            if (tag == last)
                mira__file_warn(r->f, "offset %llu: duplicate element (%04X,%04X)",
                                (unsigned long long)(r->base + p), MIRA_TAG_GROUP(tag),
                                MIRA_TAG_ELEMENT(tag));
            else if (sorted)
                mira__file_warn(r->f, "offset %llu: element (%04X,%04X) out of order",
                                (unsigned long long)(r->base + p), MIRA_TAG_GROUP(tag),
                                MIRA_TAG_ELEMENT(tag));
            sorted = false;
        }
        last = tag;
        mira_element *el = mira__dataset_append(ds, tag, err);
        if (!el)
            return false;
        el->offset = r->base + start;
        el->length = len;
        el->vr_disk = vr_disk;
        p += hdr;

        /* Decide the VR mira reports. */
        mira_vr vr;
        bool undefined = len == MIRA_UNDEFINED_LENGTH;
        if (vr_disk != MIRA_VR_NONE && mira_vr_name((mira_vr)vr_disk)[0] != '?') {
            vr = (mira_vr)vr_disk;
            if (vr == MIRA_VR_UN && r->replace_un) {
                const mira_dict_entry *d = mira_dict_find(tag);
                if (d && !strchr(d->vr, ' ') && strcmp(d->vr, "NONE") != 0)
                    vr = mira_dict_entry_vr(d);
                else if (d)
                    vr = mira__resolve_ambiguous_vr(ds, tag, d->vr, undefined);
                else if (MIRA_TAG_IS_PRIVATE(tag) && MIRA_TAG_ELEMENT(tag) >= 0x10 &&
                         MIRA_TAG_ELEMENT(tag) <= 0xFF)
                    vr = MIRA_VR_LO;
                else if (MIRA_TAG_IS_PRIVATE(tag)) {
                    const char *creator = mira_dataset_private_creator(ds, tag);
                    const mira_dict_entry *pd =
                        creator ? mira_dict_find_private(creator, tag) : NULL;
                    if (pd)
                        vr = mira__resolve_ambiguous_vr(ds, tag, pd->vr, undefined);
                    if (vr == MIRA_VR_NONE)
                        vr = MIRA_VR_UN;
                }
            }
        } else if (vr_disk != MIRA_VR_NONE) {
            vr = MIRA_VR_UN;
        } else {
            const mira_dict_entry *d = mira_dict_find(tag);
            if (MIRA_TAG_IS_PRIVATE(tag) && MIRA_TAG_ELEMENT(tag) >= 0x10 &&
                MIRA_TAG_ELEMENT(tag) <= 0xFF)
                vr = MIRA_VR_LO;
            else if (MIRA_TAG_ELEMENT(tag) == 0 && !d)
                vr = MIRA_VR_UL;
            else if (d && strcmp(d->vr, "NONE") != 0)
                vr = mira__resolve_ambiguous_vr(ds, tag, d->vr, undefined);
            else if (!d && MIRA_TAG_IS_PRIVATE(tag)) {
                const char *creator = mira_dataset_private_creator(ds, tag);
                const mira_dict_entry *pd = creator ? mira_dict_find_private(creator, tag) : NULL;
                vr = pd ? mira__resolve_ambiguous_vr(ds, tag, pd->vr, undefined) : MIRA_VR_UN;
            } else
                vr = MIRA_VR_UN;
            if (undefined && vr != MIRA_VR_SQ && tag != MIRA_TAG_PIXEL_DATA)
                vr = MIRA_VR_SQ; /* an undefined length can only be a sequence */
        }
        el->vr = (uint16_t)vr;

        if (undefined) {
            el->undefined_length = true;
            if (tag == MIRA_TAG_PIXEL_DATA && vr != MIRA_VR_SQ) {
                if (!parse_fragments(r, &p, end, el, e, err))
                    return false;
            } else if (vr == MIRA_VR_SQ || vr_disk == MIRA_VR_UN || vr_disk == MIRA_VR_NONE ||
                       vr == MIRA_VR_UN) {
                enc ie = e;
                if (vr_disk == MIRA_VR_UN) {
                    /* PS3.5 6.2.2: UN of undefined length holds implicit VR LE items */
                    ie = (enc){false, false};
                    el->implicit_items = true;
                }
                /* whatever the VR said, an undefined length that parses as items is a
                 * sequence, and is written back as one */
                el->vr = MIRA_VR_SQ;
                if (!parse_items(r, &p, end, end, el, ie, true, depth, err))
                    return false;
            } else {
                return fail(err, r->base + start,
                            "element (%04X,%04X) with VR %s has an undefined length",
                            MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag), mira_vr_name(vr));
            }
            continue;
        }
        if (len > end - p)
            return fail(err, r->base + start,
                        "element (%04X,%04X) value length %u exceeds the %zu bytes left",
                        MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag), len, end - p);
        if (len & 1u)
            mira__file_warn(r->f, "offset %llu: element (%04X,%04X) has odd length %u",
                            (unsigned long long)(r->base + start), MIRA_TAG_GROUP(tag),
                            MIRA_TAG_ELEMENT(tag), len);
        if (vr == MIRA_VR_SQ) {
            size_t seq_end = p + len;
            enc ie = e;
            if (vr_disk == MIRA_VR_UN || (vr_disk == MIRA_VR_NONE && !e.explicit_vr)) {
                if (vr_disk == MIRA_VR_UN) {
                    ie = (enc){false, false};
                    el->implicit_items = true;
                }
            }
            if (vr_disk == MIRA_VR_UN) {
                /* UN that the dictionary calls SQ: its items should be implicit VR LE. If they
                 * do not parse, keep the bytes as UN rather than refuse the file. */
                mira_error *tmp = NULL;
                size_t q = p;
                if (parse_items(r, &q, seq_end, seq_end, el, ie, false, depth, &tmp)) {
                    p = q > seq_end ? q : seq_end;
                    continue;
                }
                if (mira_error_get_code(tmp) == MIRA_ERR_NOMEM) {
                    mira_error_free(tmp);
                    mira_error_set(err, MIRA_ERR_NOMEM, NULL, "parsing a sequence");
                    return false;
                }
                mira__file_warn(r->f, "offset %llu: UN element (%04X,%04X) is not a valid "
                                      "implicit VR sequence (%s); kept as UN",
                                (unsigned long long)(r->base + start), MIRA_TAG_GROUP(tag),
                                MIRA_TAG_ELEMENT(tag), mira_error_get_message(tmp));
                mira_error_free(tmp);
                for (size_t k = 0; k < el->nitems; k++)
                    mira_dataset_free(el->items[k]);
                el->nitems = 0;
                el->implicit_items = false;
                el->vr = MIRA_VR_UN;
                el->value = buf + p;
                el->value_len = len;
                p += len;
                continue;
            }
            if (!parse_items(r, &p, seq_end, end, el, ie, false, depth, err))
                return false;
            if (p < seq_end)
                p = seq_end;
            continue;
        }
        el->value = buf + p;
        el->value_len = len;
        if (MIRA_TAG_ELEMENT(tag) == 0 && vr == MIRA_VR_UL && len == 4) {
            gl_group = MIRA_TAG_GROUP(tag);
            gl_value = mira__rd32(buf + p, be);
            gl_start = p + 4;
        }
        if (tag == MIRA_TAG_SPECIFIC_CHARSET &&
            !mira__dataset_set_charset(ds, el->value, el->value_len, err))
            return false;
        p += len;
    }
    if (until_item_delim)
        return fail(err, r->base + p, "item has no item delimiter");
    *pos = p;
done:
    if (gl_group >= 0 && !r->stop_before_pixels)
        check_group_length(r, gl_group, gl_value, *pos - 8 * until_item_delim - gl_start);
    if (!sorted)
        mira__dataset_sort(ds);
    return true;
}

/* ------------------------------------------------------------------ files */

void mira_file_free(mira_file *f)
{
    if (!f)
        return;
    mira_dataset_free(f->meta);
    mira_dataset_free(f->ds);
    if (f->mapped)
        munmap((void *)f->data, f->len);
    mira_free(f->owned_buf);
    mira_free(f->inflated);
    mira_free(f->ts);
    for (size_t i = 0; i < f->nwarn; i++)
        mira_free(f->warnings[i]);
    mira_free(f->warnings);
    mira_free(f);
}

mira_dataset *mira_file_meta(const mira_file *f)
{
    return f->meta;
}

mira_dataset *mira_file_dataset(const mira_file *f)
{
    return f->ds;
}

const char *mira_file_transfer_syntax(const mira_file *f)
{
    return f->ts;
}

bool mira_file_has_preamble(const mira_file *f)
{
    return f->has_preamble;
}

size_t mira_file_warning_count(const mira_file *f)
{
    return f->nwarn;
}

const char *mira_file_warning(const mira_file *f, size_t i)
{
    return i < f->nwarn ? f->warnings[i] : NULL;
}

/* Read the group 0002 elements starting at *pos (always explicit VR LE by PS3.10 7.1). */
static bool parse_meta(reader *r, size_t *pos, mira_error **err)
{
    const uint8_t *b = r->buf;
    size_t p = *pos, end = r->len;
    /* If there is a group length, trust it for the extent, else read while group == 2. */
    size_t meta_end = end;
    enc e = {true, false};
    if (end - p >= 12 && mira__rd16(b + p, false) == 0x0002 && mira__rd16(b + p + 2, false) == 0 &&
        memcmp(b + p + 4, "UL", 2) == 0 && mira__rd16(b + p + 6, false) == 4) {
        uint32_t gl = mira__rd32(b + p + 8, false);
        if (gl <= end - p - 12)
            meta_end = p + 12 + gl;
    }
    if (meta_end == end)
        mira__file_warn(r->f, "file meta information has no group length (0002,0000)");
    if (end - p >= 8 && !is_vr_chars(b + p + 4)) {
        mira__file_warn(r->f, "offset %llu: file meta information is not explicit VR",
                        (unsigned long long)p);
        e.explicit_vr = false;
    }
    /* Find the end of group 2 by scanning headers, so a wrong group length is survived. */
    size_t q = p;
    while (q + 8 <= end && mira__rd16(b + q, false) == 0x0002) {
        uint32_t len;
        size_t hdr;
        if (e.explicit_vr && is_vr_chars(b + q + 4) &&
            !mira_vr_has_long_length(mira_vr_from_string((const char *)b + q + 4))) {
            len = mira__rd16(b + q + 6, false);
            hdr = 8;
        } else if (e.explicit_vr && is_vr_chars(b + q + 4)) {
            if (q + 12 > end)
                break;
            len = mira__rd32(b + q + 8, false);
            hdr = 12;
        } else {
            len = mira__rd32(b + q + 4, false);
            hdr = 8;
        }
        if (len == MIRA_UNDEFINED_LENGTH || len > end - q - hdr)
            return fail(err, q, "file meta element (%04X,%04X) length %u exceeds the file",
                        mira__rd16(b + q, false), mira__rd16(b + q + 2, false), len);
        q += hdr + len;
    }
    /* a wrong (0002,0000) is reported by parse_dataset's group length check */
    meta_end = q;
    size_t mp = p;
    if (!parse_dataset(r, &mp, meta_end, r->f->meta, e, false, 0, err)) {
        mira_error_prefix(err, "file meta information: ");
        return false;
    }
    *pos = meta_end;
    return true;
}

static char *element_uid(const mira_element *el)
{
    if (!el || !el->value)
        return NULL;
    size_t n = el->value_len;
    while (n && (el->value[n - 1] == 0 || el->value[n - 1] == ' '))
        n--;
    size_t s = 0;
    while (s < n && el->value[s] == ' ')
        s++;
    return mira_strndup((const char *)el->value + s, n - s);
}

/* Guess the encoding of a data set from its first element header. */
static enc guess_encoding(const uint8_t *b, size_t len)
{
    enc e = {true, false};
    if (len < 8)
        return e;
    e.explicit_vr = is_vr_chars(b + 4);
    /* Groups are small numbers: 0x0008 little-endian is 08 00, big-endian 00 08. */
    uint16_t le = mira__rd16(b, false), be = mira__rd16(b, true);
    e.big_endian = e.explicit_vr && be < le && be != 0;
    return e;
}

static bool inflate_all(reader *r, mira_file *f, size_t pos, mira_error **err)
{
    size_t in_len = r->len - pos;
    /* deflate cannot exceed ~1032:1; cap output to that bound and to 4 GiB */
    size_t cap = in_len > ((size_t)4 << 30) / 1100 ? ((size_t)4 << 30) : in_len * 1100 + 4096;
    size_t out_cap = in_len * 4 + 4096, out_len = 0;
    uint8_t *out = mira_malloc(out_cap);
    if (!out) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "inflating a deflated data set");
        return false;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
        mira_free(out);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "zlib inflateInit2");
        return false;
    }
    zs.next_in = (Bytef *)(r->buf + pos);
    int rc = Z_OK;
    size_t consumed = 0;
    while (rc != Z_STREAM_END) {
        if (out_len == out_cap) {
            if (out_cap >= cap) {
                inflateEnd(&zs);
                mira_free(out);
                return fail(err, pos, "deflated data set inflates beyond %zu bytes", cap);
            }
            size_t nc = out_cap * 2 > cap ? cap : out_cap * 2;
            uint8_t *n = mira_realloc(out, nc);
            if (!n) {
                inflateEnd(&zs);
                mira_free(out);
                mira_error_set(err, MIRA_ERR_NOMEM, NULL, "inflating a deflated data set");
                return false;
            }
            out = n;
            out_cap = nc;
        }
        size_t avail_in = in_len - consumed;
        zs.avail_in = avail_in > UINT32_MAX ? UINT32_MAX : (uInt)avail_in;
        zs.next_in = (Bytef *)(r->buf + pos + consumed);
        size_t avail_out = out_cap - out_len;
        zs.avail_out = avail_out > UINT32_MAX ? UINT32_MAX : (uInt)avail_out;
        zs.next_out = out + out_len;
        uInt before_in = zs.avail_in, before_out = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        consumed += before_in - zs.avail_in;
        out_len += before_out - zs.avail_out;
        if (rc == Z_BUF_ERROR && consumed == in_len) {
            mira__file_warn(f, "deflated data set is truncated; read what inflated");
            break;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            inflateEnd(&zs);
            mira_free(out);
            return fail(err, pos + consumed, "deflate stream is corrupt (%s)",
                        zs.msg ? zs.msg : "zlib error");
        }
    }
    inflateEnd(&zs);
    f->inflated = out;
    r->buf = out;
    r->len = out_len;
    r->base = 0;
    return true;
}

static mira_file *read_buffer(mira_file *f, const mira_read_options *opt, mira_error **err)
{
    mira_read_options defaults;
    if (!opt) {
        mira_read_options_init(&defaults);
        opt = &defaults;
    }
    reader r = {f, f->data, f->len, 0, opt->stop_before_pixels, opt->replace_un};
    f->meta = mira_dataset_new(err);
    f->ds = mira_dataset_new(err);
    if (!f->meta || !f->ds)
        goto fail;
    size_t pos = 0;
    const uint8_t *b = f->data;
    if (!opt->raw) {
        if (f->len >= 132 && memcmp(b + 128, "DICM", 4) == 0) {
            f->has_preamble = true;
            memcpy(f->preamble, b, 128);
            pos = 132;
        } else if (f->len >= 4 && memcmp(b, "DICM", 4) == 0) {
            mira__file_warn(f, "no preamble: file starts with DICM");
            pos = 4;
        } else if (f->len >= 8 && mira__rd16(b, false) == 0x0002) {
            mira__file_warn(f, "no preamble: file starts with the file meta information");
        }
        if (pos + 8 <= f->len && mira__rd16(b + pos, false) == 0x0002) {
            if (!parse_meta(&r, &pos, err))
                goto fail;
            static const struct {
                mira_tag tag;
                const char *name;
            } required[] = {
                {MIRA_TAG(0x0002, 0x0001), "File Meta Information Version"},
                {MIRA_TAG(0x0002, 0x0002), "Media Storage SOP Class UID"},
                {MIRA_TAG(0x0002, 0x0003), "Media Storage SOP Instance UID"},
                {MIRA_TAG(0x0002, 0x0010), "Transfer Syntax UID"},
                {MIRA_TAG(0x0002, 0x0012), "Implementation Class UID"},
            };
            for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
                if (!mira_dataset_get(f->meta, required[i].tag))
                    mira__file_warn(f, "file meta information lacks (0002,%04X) %s",
                                    MIRA_TAG_ELEMENT(required[i].tag), required[i].name);
        } else if (f->has_preamble) {
            mira__file_warn(f, "no file meta information after DICM");
        }
    }
    mira_element *tse = mira_dataset_get(f->meta, MIRA_TAG_TRANSFER_SYNTAX);
    f->ts = tse ? element_uid(tse) : NULL;
    if (!f->ts && opt->raw && opt->transfer_syntax)
        f->ts = mira_strdup(opt->transfer_syntax);
    mira_ts_info ts;
    enc e;
    if (f->ts && mira_ts_lookup(f->ts, &ts)) {
        e = (enc){ts.explicit_vr, ts.big_endian};
        if (ts.deflated) {
            if (!inflate_all(&r, f, pos, err))
                goto fail;
            pos = 0;
        }
        enc g = guess_encoding(r.buf + pos, r.len - pos);
        if (r.len - pos >= 8 && g.explicit_vr != e.explicit_vr) {
            mira__file_warn(f, "transfer syntax %s says %s VR but the data set is %s VR; read as "
                               "%s VR",
                            f->ts, e.explicit_vr ? "explicit" : "implicit",
                            g.explicit_vr ? "explicit" : "implicit",
                            g.explicit_vr ? "explicit" : "implicit");
            e.explicit_vr = g.explicit_vr;
        }
    } else {
        e = guess_encoding(b + pos, f->len - pos);
        const char *guess = !e.explicit_vr ? MIRA_TS_IMPLICIT_LE
                            : e.big_endian ? MIRA_TS_EXPLICIT_BE
                                           : MIRA_TS_EXPLICIT_LE;
        if (f->ts)
            mira__file_warn(f, "unknown transfer syntax %s; data set read as %s", f->ts, guess);
        else if (!opt->raw || !opt->transfer_syntax)
            mira__file_warn(f, "no transfer syntax; data set read as %s", guess);
        if (!f->ts && !(f->ts = mira_strdup(guess))) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying a UID");
            goto fail;
        }
    }
    if (!f->ts) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying a UID");
        goto fail;
    }
    f->ds->big_endian = e.big_endian;
    f->ds->explicit_vr = e.explicit_vr;
    if (!parse_dataset(&r, &pos, r.len, f->ds, e, false, 0, err))
        goto fail;
    return f;
fail:
    mira_file_free(f);
    return NULL;
}

mira_file *mira_file_read_memory(const void *data, size_t len, const mira_read_options *opt,
                                 bool copy, mira_error **err)
{
    mira_file *f = mira_calloc(1, sizeof *f);
    if (!f) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a file");
        return NULL;
    }
    if (copy) {
        f->owned_buf = mira_malloc(len);
        if (!f->owned_buf) {
            mira_free(f);
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "copying %zu bytes", len);
            return NULL;
        }
        memcpy(f->owned_buf, data, len);
        f->data = f->owned_buf;
    } else {
        f->data = data;
    }
    f->len = len;
    return read_buffer(f, opt, err);
}

mira_file *mira_file_read(const char *path, const mira_read_options *opt, mira_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mira_error_set(err, errno == ENOENT ? MIRA_ERR_NOT_FOUND : MIRA_ERR_IO, "Cannot open",
                       "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path,
                       errno ? strerror(errno) : "not a regular file");
        close(fd);
        return NULL;
    }
    mira_file *f = mira_calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a file");
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    bool use_mmap = !(opt && opt->no_mmap) && len >= 64 * 1024;
    if (len == 0) {
        f->data = (const uint8_t *)"";
    } else if (use_mmap) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            use_mmap = false;
        } else {
            f->data = m;
            f->mapped = true;
        }
    }
    if (len && !f->mapped) {
        /* small files: one read is cheaper than a mapping */
        f->owned_buf = mira_malloc(len);
        if (!f->owned_buf) {
            close(fd);
            mira_free(f);
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s (%zu bytes)", path, len);
            return NULL;
        }
        size_t got = 0;
        while (got < len) {
            ssize_t n = read(fd, f->owned_buf + got, len - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path,
                               n < 0 ? strerror(errno) : "file shrank while reading");
                close(fd);
                mira_free(f->owned_buf);
                mira_free(f);
                return NULL;
            }
            got += (size_t)n;
        }
        f->data = f->owned_buf;
    }
    close(fd);
    f->len = len;
    mira_file *res = read_buffer(f, opt, err);
    if (!res)
        mira_error_prefix(err, "%s: ", path);
    return res;
}
