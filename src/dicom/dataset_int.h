/* Internal layout of data sets and elements, shared by the reader, writer and JSON code. */
#ifndef MIRA_DICOM_DATASET_INT_H
#define MIRA_DICOM_DATASET_INT_H

#include "mira/dicom.h"

typedef struct mira__fragment {
    const uint8_t *data;
    size_t len;
    uint8_t *owned; /* non-NULL if the fragment's bytes belong to the element */
} mira__fragment;

struct mira_element {
    mira_dataset *ds;   /* the data set holding this element (byte order, character set) */
    mira_tag tag;
    uint16_t vr;        /* the VR mira reports (dictionary VR for implicit/UN, ambiguity resolved) */
    uint16_t vr_disk;   /* the VR written in the file; MIRA_VR_NONE if read implicitly */
    uint32_t length;    /* the length field as encoded */
    uint64_t offset;    /* offset of the tag in the file */
    const uint8_t *value; /* value bytes (borrowed from the source or == owned) */
    size_t value_len;
    uint8_t *owned;
    /* SQ: items */
    mira_dataset **items;
    size_t nitems, items_cap;
    /* encapsulated pixel data: fragment 0 is the basic offset table */
    mira__fragment *frags;
    size_t nfrags, frags_cap;
    bool encapsulated;
    bool undefined_length;
    bool implicit_items; /* UN with undefined length: items encoded implicit VR LE */
    char *text_cache;    /* trimmed value of a private creator, made on first lookup */
};

struct mira_dataset {
    mira_element *elems;
    size_t count, cap;
    const mira_dataset *parent; /* for inherited Specific Character Set and PixelRepresentation */
    char *charset;              /* raw (0008,0005) of this level, NULL if absent */
    bool big_endian;
    bool explicit_vr;
    bool undefined_length; /* as an item */
    uint64_t offset;       /* as an item: offset of its item tag */
    char *pixel_ts;        /* set by pixel transcoding: the syntax Pixel Data is now in */
};

/* Append an element (the reader appends in file order; out-of-order tags are sorted after). */
mira_element *mira__dataset_append(mira_dataset *ds, mira_tag tag, mira_error **err);
/* Sort elements by tag if needed (stable: keeps the first of duplicates first). */
void mira__dataset_sort(mira_dataset *ds);
/* Record the transfer syntax the Pixel Data is encoded in after transcoding (copied). */
bool mira__dataset_set_pixel_ts(mira_dataset *ds, const char *ts);
/* Release the resources of an element (not the element slot itself). */
void mira__element_cleanup(mira_element *e);

struct mira__buf;
/* Append the encoding of a data set (no preamble, no file meta) in the given VR form and byte
 * order, group lengths recomputed: for DIMSE command sets and file meta groups. */
bool mira__dataset_encode(const mira_dataset *ds, bool explicit_vr, bool big_endian,
                          struct mira__buf *out, mira_error **err);
/* Append the 128-byte preamble, "DICM" and a file meta group (PS3.10 7.1) naming the SOP
 * class and instance, the transfer syntax, mira as implementation and, if not NULL or empty,
 * the source AE title: the head of a Part 10 file whose data set arrives over the network. */
bool mira__file_meta_encode(struct mira__buf *out, const char *sop_class,
                            const char *sop_instance, const char *ts, const char *source_ae);
/* Set the cached charset of a data set from the raw bytes of (0008,0005). */
bool mira__dataset_set_charset(mira_dataset *ds, const uint8_t *v, size_t len, mira_error **err);
/* Resolve "US or SS" etc. for an element read implicitly, as PS3.5 and pydicom do. */
mira_vr mira__resolve_ambiguous_vr(const mira_dataset *ds, mira_tag tag, const char *dict_vr,
                                   bool undefined_length);
/* Read a little/big-endian number. */
static inline uint16_t mira__rd16(const uint8_t *p, bool be)
{
    return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}
static inline uint32_t mira__rd32(const uint8_t *p, bool be)
{
    return be ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3])
              : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
}

#endif
