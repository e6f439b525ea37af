/* Writing a DICOMDIR (PS3.10 Media Storage Directory, PS3.3 F) for a set of DICOM files. */
#include "dicom/file_int.h"
#include "dicom/impl.h"

#include "core/buf.h"
#include "core/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The file: preamble, meta group (Media Storage Directory Storage, Explicit VR Little Endian),
 * then File-set ID, the offsets of the first and last root records, the consistency flag and
 * the Directory Record Sequence, all with defined lengths. Records are PATIENT > STUDY >
 * SERIES > one record per file (IMAGE for images; SR DOCUMENT, PRESENTATION, RT DOSE... for
 * the other storage classes, PS3.3 F.5), written depth first; each level's records are chained
 * by "Offset of the Next Directory Record" and point to their first child with "Offset of
 * Referenced Lower-Level Directory Entity". Offsets count from the first byte of the file (the
 * preamble), as PS3.3 F.3.2.1 says. A record's size does not depend on the offsets it holds,
 * so the layout is computed first and the offsets filled in after.
 *
 * The keys of each record are copied from the first file of the entity, bytes as they are,
 * with its Specific Character Set when it has one.
 */

typedef enum rec_level { R_PATIENT, R_STUDY, R_SERIES, R_FILE } rec_level;

typedef struct record {
    rec_level level;
    char type[20];
    mira__buf body;     /* the elements after (0004,1430), encoded */
    size_t first_child; /* index, or SIZE_MAX */
    size_t next;        /* next record of the same parent, or SIZE_MAX */
    size_t last_child;  /* while building */
    char key[130];      /* patient ID / study / series UID: grouping */
    uint64_t offset;    /* of the item tag, from the start of the file */
    size_t size;        /* of the whole item */
} record;

typedef struct builder {
    record *r;
    size_t n, cap;
} builder;

static void put16(mira__buf *b, uint16_t v)
{
    mira__buf_u16le(b, v);
}

static void put32(mira__buf *b, uint32_t v)
{
    mira__buf_u32le(b, v);
}

/* An element with a 2-byte length (every VR written here but SQ). */
static void put_elem(mira__buf *b, mira_tag tag, const char vr[2], const void *val, size_t len,
                     char pad)
{
    size_t padded = len + (len & 1);
    put16(b, (uint16_t)(tag >> 16));
    put16(b, (uint16_t)tag);
    mira__buf_append(b, vr, 2);
    put16(b, (uint16_t)padded);
    mira__buf_append(b, val, len);
    if (len & 1)
        mira__buf_putc(b, pad);
}

static void put_str(mira__buf *b, mira_tag tag, const char vr[2], const char *s)
{
    put_elem(b, tag, vr, s, strlen(s), strcmp(vr, "UI") == 0 ? '\0' : ' ');
}

/* Copy a string element of ds (raw bytes, padding kept as it is) into a record. */
static void copy_elem(mira__buf *b, const mira_dataset *ds, mira_tag tag, const char vr[2])
{
    const mira_element *e = mira_dataset_get(ds, tag);
    size_t len = 0;
    const uint8_t *v = e ? mira_element_bytes(e, &len) : NULL;
    if (len > 0xFFFE)
        len = 0xFFFE;
    put_elem(b, tag, vr, v ? v : (const uint8_t *)"", v ? len : 0,
             strcmp(vr, "UI") == 0 ? '\0' : ' ');
}

static const struct {
    const char *prefix; /* SOP Class UID (or prefix) */
    const char *type;
} record_types[] = {
    {"1.2.840.10008.5.1.4.1.1.88.", "SR DOCUMENT"},
    {"1.2.840.10008.5.1.4.1.1.11.", "PRESENTATION"},
    {"1.2.840.10008.5.1.4.1.1.481.2", "RT DOSE"},
    {"1.2.840.10008.5.1.4.1.1.481.3", "RT STRUCTURE SET"},
    {"1.2.840.10008.5.1.4.1.1.481.5", "RT PLAN"},
    {"1.2.840.10008.5.1.4.1.1.481.8", "RT PLAN"},
    {"1.2.840.10008.5.1.4.1.1.481.4", "RT TREAT RECORD"},
    {"1.2.840.10008.5.1.4.1.1.9.", "WAVEFORM"},
    {"1.2.840.10008.5.1.4.1.1.104.", "ENCAP DOC"},
    {"1.2.840.10008.5.1.4.1.1.66", "REGISTRATION"},
};

static const char *record_type(const mira_dataset *ds, const char *sop_class)
{
    if (mira_dataset_get(ds, 0x7FE00010) || mira_dataset_get(ds, 0x00280010))
        return "IMAGE";
    for (size_t i = 0; i < sizeof record_types / sizeof record_types[0]; i++)
        if (strncmp(sop_class, record_types[i].prefix, strlen(record_types[i].prefix)) == 0)
            return record_types[i].type;
    return "IMAGE";
}

static size_t add_record(builder *b, rec_level level, const char *type, const char *key,
                         size_t parent, size_t *root_first, size_t *root_last, mira_error **err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        record *r = mira_realloc(b->r, cap * sizeof *r);
        if (!r) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "DICOMDIR records");
            return SIZE_MAX;
        }
        b->r = r;
        b->cap = cap;
    }
    size_t i = b->n++;
    record *r = &b->r[i];
    memset(r, 0, sizeof *r);
    r->level = level;
    snprintf(r->type, sizeof r->type, "%s", type);
    snprintf(r->key, sizeof r->key, "%s", key);
    mira__buf_init(&r->body);
    r->first_child = r->next = r->last_child = SIZE_MAX;
    size_t *first = parent == SIZE_MAX ? root_first : &b->r[parent].first_child;
    size_t *last = parent == SIZE_MAX ? root_last : &b->r[parent].last_child;
    if (*first == SIZE_MAX)
        *first = i;
    else
        b->r[*last].next = i;
    *last = i;
    return i;
}

/* The child of parent (or a root record) with this key, or SIZE_MAX. */
static size_t find_child(const builder *b, size_t parent, size_t root_first, const char *key)
{
    size_t i = parent == SIZE_MAX ? root_first : b->r[parent].first_child;
    while (i != SIZE_MAX) {
        if (strcmp(b->r[i].key, key) == 0)
            return i;
        i = b->r[i].next;
    }
    return SIZE_MAX;
}

static char *text_of(const mira_dataset *ds, mira_tag tag)
{
    const mira_element *e = mira_dataset_get(ds, tag);
    char *s = e ? mira_element_get_text(e, NULL) : NULL;
    return s ? s : mira_strdup("");
}

static bool valid_component(const char *s, size_t n)
{
    if (n == 0 || n > 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

bool mira_dicomdir_write(const char *root, const char *const *files, size_t nfiles,
                         const char *fileset_id, mira_error **err)
{
    builder b = {0};
    size_t root_first = SIZE_MAX, root_last = SIZE_MAX;
    bool ok = true;
    for (size_t f = 0; ok && f < nfiles; f++) {
        /* the Referenced File ID: the relative path's components */
        const char *rel = files[f];
        for (const char *p = rel; *p;) {
            const char *slash = strchr(p, '/');
            size_t n = slash ? (size_t)(slash - p) : strlen(p);
            if (!valid_component(p, n)) {
                mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad file ID",
                               "%s: each component of a DICOMDIR file ID is 1 to 8 characters of "
                               "A-Z, 0-9 and _",
                               rel);
                ok = false;
                break;
            }
            p = slash ? slash + 1 : p + n;
        }
        if (!ok)
            break;
        size_t pl = strlen(root) + strlen(rel) + 2;
        char *path = mira_malloc(pl);
        if (!path) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "DICOMDIR");
            ok = false;
            break;
        }
        snprintf(path, pl, "%s/%s", root, rel);
        mira_read_options ro;
        mira_read_options_init(&ro);
        ro.stop_before_pixels = true;
        mira_file *mf = mira_file_read(path, &ro, err);
        mira_free(path);
        if (!mf) {
            ok = false;
            break;
        }
        const mira_dataset *ds = mira_file_dataset(mf);
        char *pid = text_of(ds, 0x00100020), *study = text_of(ds, 0x0020000D),
             *series = text_of(ds, 0x0020000E), *sop_class = text_of(ds, 0x00080016),
             *sop = text_of(ds, 0x00080018);
        const mira_element *cs = mira_dataset_get(ds, 0x00080005);
        size_t pi = find_child(&b, SIZE_MAX, root_first, pid);
        if (pi == SIZE_MAX && (pi = add_record(&b, R_PATIENT, "PATIENT", pid, SIZE_MAX, &root_first,
                                               &root_last, err)) != SIZE_MAX) {
            mira__buf *o = &b.r[pi].body;
            if (cs)
                copy_elem(o, ds, 0x00080005, "CS");
            copy_elem(o, ds, 0x00100010, "PN");
            copy_elem(o, ds, 0x00100020, "LO");
        }
        size_t si = pi == SIZE_MAX ? SIZE_MAX : find_child(&b, pi, root_first, study);
        if (pi != SIZE_MAX && si == SIZE_MAX &&
            (si = add_record(&b, R_STUDY, "STUDY", study, pi, &root_first, &root_last, err)) !=
                SIZE_MAX) {
            mira__buf *o = &b.r[si].body;
            if (cs)
                copy_elem(o, ds, 0x00080005, "CS");
            copy_elem(o, ds, 0x00080020, "DA");
            copy_elem(o, ds, 0x00080030, "TM");
            copy_elem(o, ds, 0x00080050, "SH");
            copy_elem(o, ds, 0x00081030, "LO");
            copy_elem(o, ds, 0x0020000D, "UI");
            copy_elem(o, ds, 0x00200010, "SH");
        }
        size_t ei = si == SIZE_MAX ? SIZE_MAX : find_child(&b, si, root_first, series);
        if (si != SIZE_MAX && ei == SIZE_MAX &&
            (ei = add_record(&b, R_SERIES, "SERIES", series, si, &root_first, &root_last, err)) !=
                SIZE_MAX) {
            mira__buf *o = &b.r[ei].body;
            if (cs)
                copy_elem(o, ds, 0x00080005, "CS");
            copy_elem(o, ds, 0x00080060, "CS");
            copy_elem(o, ds, 0x0020000E, "UI");
            copy_elem(o, ds, 0x00200011, "IS");
        }
        size_t ii = ei == SIZE_MAX ? SIZE_MAX
                                   : add_record(&b, R_FILE, record_type(ds, sop_class), sop, ei,
                                                &root_first, &root_last, err);
        if (ii != SIZE_MAX) {
            mira__buf *o = &b.r[ii].body;
            /* Referenced File ID: components separated by '\' */
            char *id = mira_strdup(rel);
            for (char *p = id; p && *p; p++)
                if (*p == '/')
                    *p = '\\';
            put_str(o, 0x00041500, "CS", id ? id : "");
            mira_free(id);
            put_str(o, 0x00041510, "UI", sop_class);
            put_str(o, 0x00041511, "UI", sop);
            put_str(o, 0x00041512, "UI", mira_file_transfer_syntax(mf));
            if (cs)
                copy_elem(o, ds, 0x00080005, "CS");
            copy_elem(o, ds, 0x00200013, "IS");
        }
        ok = ii != SIZE_MAX;
        mira_free(pid);
        mira_free(study);
        mira_free(series);
        mira_free(sop_class);
        mira_free(sop);
        mira_file_free(mf);
    }

    /* the meta group and the fixed elements before the sequence */
    mira__buf out, meta, body;
    mira__buf_init(&out);
    mira__buf_init(&meta);
    mira__buf_init(&body);
    if (ok) {
        uint8_t version[2] = {0, 1};
        char uid[65];
        mira_uid_generate(uid);
        /* OB has a 4-byte length */
        put16(&meta, 0x0002);
        put16(&meta, 0x0001);
        mira__buf_append(&meta, "OB\0\0", 4);
        put32(&meta, 2);
        mira__buf_append(&meta, version, 2);
        put_str(&meta, 0x00020002, "UI", "1.2.840.10008.1.3.10");
        put_str(&meta, 0x00020003, "UI", uid);
        put_str(&meta, 0x00020010, "UI", MIRA_TS_EXPLICIT_LE);
        put_str(&meta, 0x00020012, "UI", MIRA_IMPLEMENTATION_UID);
        put_str(&meta, 0x00020013, "SH", MIRA_IMPLEMENTATION_NAME);
        mira__buf_append(&out, (const uint8_t[128]){0}, 128);
        mira__buf_append(&out, "DICM", 4);
        put16(&out, 0x0002);
        put16(&out, 0x0000);
        mira__buf_append(&out, "UL", 2);
        put16(&out, 4);
        put32(&out, (uint32_t)meta.len);
        mira__buf_append(&out, meta.data, meta.len);
        put_str(&out, 0x00041130, "CS", fileset_id ? fileset_id : "");
    }
    /* layout: where each record's item starts */
    size_t fixed = out.len + 12 /* 1200 */ + 12 /* 1202 */ + 10 /* 1212 */ + 12 /* SQ header */;
    uint64_t pos = fixed, seq_len = 0;
    for (size_t i = 0; ok && i < b.n; i++) {
        record *r = &b.r[i];
        size_t type_len = strlen(r->type) + (strlen(r->type) & 1);
        r->size = 8 + (8 + 4) + (8 + 2) + (8 + 4) + (8 + type_len) + r->body.len;
        r->offset = pos;
        pos += r->size;
        seq_len += r->size;
    }
    if (ok && pos > UINT32_MAX) {
        mira_error_set(err, MIRA_ERR_LIMIT, "DICOMDIR too large",
                       "%zu records do not fit in the 32-bit offsets of a DICOMDIR", b.n);
        ok = false;
    }
    if (ok) {
        uint32_t first = root_first == SIZE_MAX ? 0 : (uint32_t)b.r[root_first].offset;
        uint32_t last = root_last == SIZE_MAX ? 0 : (uint32_t)b.r[root_last].offset;
        put_elem(&out, 0x00041200, "UL",
                 (uint8_t[4]){(uint8_t)first, (uint8_t)(first >> 8), (uint8_t)(first >> 16),
                              (uint8_t)(first >> 24)},
                 4, 0);
        put_elem(&out, 0x00041202, "UL",
                 (uint8_t[4]){(uint8_t)last, (uint8_t)(last >> 8), (uint8_t)(last >> 16),
                              (uint8_t)(last >> 24)},
                 4, 0);
        put_elem(&out, 0x00041212, "US", (uint8_t[2]){0, 0}, 2, 0);
        put16(&out, 0x0004);
        put16(&out, 0x1220);
        mira__buf_append(&out, "SQ\0\0", 4);
        put32(&out, (uint32_t)seq_len);
        for (size_t i = 0; i < b.n; i++) {
            record *r = &b.r[i];
            uint32_t next = r->next == SIZE_MAX ? 0 : (uint32_t)b.r[r->next].offset;
            uint32_t lower = r->first_child == SIZE_MAX ? 0 : (uint32_t)b.r[r->first_child].offset;
            if (out.len != r->offset) {
                mira_error_set(err, MIRA_ERR_ARGUMENT, "DICOMDIR layout",
                               "record %zu at %zu, not %llu", i, out.len,
                               (unsigned long long)r->offset);
                ok = false;
                break;
            }
            put16(&out, 0xFFFE);
            put16(&out, 0xE000);
            put32(&out, (uint32_t)(r->size - 8));
            put_elem(&out, 0x00041400, "UL",
                     (uint8_t[4]){(uint8_t)next, (uint8_t)(next >> 8), (uint8_t)(next >> 16),
                                  (uint8_t)(next >> 24)},
                     4, 0);
            put_elem(&out, 0x00041410, "US", (uint8_t[2]){0xFF, 0xFF}, 2, 0);
            put_elem(&out, 0x00041420, "UL",
                     (uint8_t[4]){(uint8_t)lower, (uint8_t)(lower >> 8), (uint8_t)(lower >> 16),
                                  (uint8_t)(lower >> 24)},
                     4, 0);
            put_str(&out, 0x00041430, "CS", r->type);
            mira__buf_append(&out, r->body.data, r->body.len);
        }
    }
    if (ok && out.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "DICOMDIR");
        ok = false;
    }
    if (ok) {
        size_t pl = strlen(root) + 16;
        char *path = mira_malloc(pl);
        if (path) {
            snprintf(path, pl, "%s/DICOMDIR", root);
            ok = mira__write_file_atomic(path, out.data, out.len, err);
            mira_free(path);
        } else {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "DICOMDIR");
            ok = false;
        }
    }
    for (size_t i = 0; i < b.n; i++)
        mira__buf_cleanup(&b.r[i].body);
    mira_free(b.r);
    mira__buf_cleanup(&out);
    mira__buf_cleanup(&meta);
    mira__buf_cleanup(&body);
    return ok;
}
