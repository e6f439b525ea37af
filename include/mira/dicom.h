/* mira DICOM: dictionary, UID registry, data sets, Part 10 files, character sets and DICOM JSON. */
#ifndef MIRA_DICOM_H
#define MIRA_DICOM_H

#include "mira/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ tags and VRs */

typedef uint32_t mira_tag;
#define MIRA_TAG(g, e) ((mira_tag)((((uint32_t)(g)) << 16) | ((uint32_t)(e)&0xFFFFu)))
#define MIRA_TAG_GROUP(t) ((uint16_t)((t) >> 16))
#define MIRA_TAG_ELEMENT(t) ((uint16_t)((t)&0xFFFFu))
#define MIRA_TAG_IS_PRIVATE(t) ((MIRA_TAG_GROUP(t) & 1u) == 1u && MIRA_TAG_GROUP(t) > 8u)

#define MIRA_TAG_ITEM MIRA_TAG(0xFFFE, 0xE000)
#define MIRA_TAG_ITEM_DELIM MIRA_TAG(0xFFFE, 0xE00D)
#define MIRA_TAG_SEQ_DELIM MIRA_TAG(0xFFFE, 0xE0DD)
#define MIRA_TAG_PIXEL_DATA MIRA_TAG(0x7FE0, 0x0010)
#define MIRA_TAG_SPECIFIC_CHARSET MIRA_TAG(0x0008, 0x0005)
#define MIRA_TAG_TRANSFER_SYNTAX MIRA_TAG(0x0002, 0x0010)

#define MIRA_UNDEFINED_LENGTH 0xFFFFFFFFu

/* A VR is its two letters packed big-endian: MIRA_VR_AE == ('A' << 8 | 'E'). */
typedef enum mira_vr {
    MIRA_VR_NONE = 0,
    MIRA_VR_AE = 0x4145, MIRA_VR_AS = 0x4153, MIRA_VR_AT = 0x4154, MIRA_VR_CS = 0x4353,
    MIRA_VR_DA = 0x4441, MIRA_VR_DS = 0x4453, MIRA_VR_DT = 0x4454, MIRA_VR_FD = 0x4644,
    MIRA_VR_FL = 0x464C, MIRA_VR_IS = 0x4953, MIRA_VR_LO = 0x4C4F, MIRA_VR_LT = 0x4C54,
    MIRA_VR_OB = 0x4F42, MIRA_VR_OD = 0x4F44, MIRA_VR_OF = 0x4F46, MIRA_VR_OL = 0x4F4C,
    MIRA_VR_OV = 0x4F56, MIRA_VR_OW = 0x4F57, MIRA_VR_PN = 0x504E, MIRA_VR_SH = 0x5348,
    MIRA_VR_SL = 0x534C, MIRA_VR_SQ = 0x5351, MIRA_VR_SS = 0x5353, MIRA_VR_ST = 0x5354,
    MIRA_VR_SV = 0x5356, MIRA_VR_TM = 0x544D, MIRA_VR_UC = 0x5543, MIRA_VR_UI = 0x5549,
    MIRA_VR_UL = 0x554C, MIRA_VR_UN = 0x554E, MIRA_VR_UR = 0x5552, MIRA_VR_US = 0x5553,
    MIRA_VR_UT = 0x5554, MIRA_VR_UV = 0x5556,
} mira_vr;

/* "AE" for MIRA_VR_AE; "??" for anything that is not a standard VR. Borrowed, static. */
MIRA_API const char *mira_vr_name(mira_vr vr);
/* The VR named by the first two characters of s, or MIRA_VR_NONE. */
MIRA_API mira_vr mira_vr_from_string(const char *s);
/* True for VRs whose value is character data (AE...UT, excluding binary VRs). */
MIRA_API bool mira_vr_is_string(mira_vr vr);
/* Size of one binary value (2 for US, 8 for FD...), 0 for string, SQ and OB/UN. */
MIRA_API size_t mira_vr_value_size(mira_vr vr);
/* True where explicit VR encoding uses a 4-byte length (OB, OW, SQ, UN, UT...). */
MIRA_API bool mira_vr_has_long_length(mira_vr vr);

/* ------------------------------------------------------------------ dictionary */

typedef struct mira_dict_entry {
    mira_tag tag;     /* with the repeating digits zero, e.g. 0x60000010 for 60xx,0010 */
    mira_tag mask;    /* bits of a tag that must equal `tag` (0xFFFFFFFF unless repeating) */
    const char *vr;   /* as in the standard: "US", "US or SS", "OB or OW" */
    const char *vm;   /* "1", "1-n", "2-2n" */
    const char *keyword; /* "PatientName"; "" for a few retired entries without one */
    const char *name;    /* "Patient's Name" */
    bool retired;
} mira_dict_entry;

/* Look up a tag (repeating groups such as 50xx/60xx and (0020,31xx) included). Borrowed; NULL if unknown. */
MIRA_API const mira_dict_entry *mira_dict_find(mira_tag tag);
/* Look up a keyword, case-sensitive. Borrowed; NULL if unknown. */
MIRA_API const mira_dict_entry *mira_dict_find_keyword(const char *keyword);
MIRA_API size_t mira_dict_count(void);
MIRA_API const mira_dict_entry *mira_dict_at(size_t i);
/* The first VR of an entry ("US or SS" gives MIRA_VR_US); MIRA_VR_UN for NULL. */
MIRA_API mira_vr mira_dict_entry_vr(const mira_dict_entry *e);
/* The VR the dictionary gives a tag; MIRA_VR_UN if unknown. Group lengths (gggg,0000) are UL. */
MIRA_API mira_vr mira_dict_vr(mira_tag tag);
/* A private dictionary entry for a tag reserved by `creator` (the element's low byte is what
 * matters: (0029,1010) under creator "SIEMENS CSA HEADER"). Borrowed; NULL if unknown. */
MIRA_API const mira_dict_entry *mira_dict_find_private(const char *creator, mira_tag tag);
/* Parse "PatientName", "0010,0010", "(0010,0010)" or "00100010" into a tag. */
MIRA_API bool mira_tag_parse(const char *text, mira_tag *out);

typedef struct mira_uid_entry {
    const char *uid;     /* "1.2.840.10008.1.2.1" */
    const char *name;    /* "Explicit VR Little Endian" */
    const char *type;    /* "Transfer Syntax", "SOP Class", "Well-known frame of reference", ... */
    const char *keyword; /* "ExplicitVRLittleEndian"; may be "" */
    bool retired;
} mira_uid_entry;

MIRA_API const mira_uid_entry *mira_uid_find(const char *uid);
MIRA_API size_t mira_uid_count(void);
MIRA_API const mira_uid_entry *mira_uid_at(size_t i);

/* ------------------------------------------------------------------ transfer syntaxes */

#define MIRA_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define MIRA_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define MIRA_TS_DEFLATED_LE "1.2.840.10008.1.2.1.99"
#define MIRA_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"

typedef struct mira_ts_info {
    bool explicit_vr;
    bool big_endian;
    bool deflated;
    bool encapsulated; /* pixel data in fragments (any compressed syntax) */
} mira_ts_info;

/* Properties of a transfer syntax; false if the UID is not a transfer syntax mira knows. */
MIRA_API bool mira_ts_lookup(const char *uid, mira_ts_info *out);

/* A new globally unique UID: "2.25." and a random (version 4) UUID as a decimal number. */
MIRA_API void mira_uid_generate(char out[65]);

/* ------------------------------------------------------------------ data sets */

typedef struct mira_dataset mira_dataset;
typedef struct mira_element mira_element;

/* A new empty data set (explicit VR little endian in memory). Free with mira_dataset_free. */
MIRA_API mira_dataset *mira_dataset_new(mira_error **err);
/* _free(NULL) is a no-op. Frees the items of its sequences too. */
MIRA_API void mira_dataset_free(mira_dataset *ds);

/* Number of elements at this level (items of sequences are not counted). */
MIRA_API size_t mira_dataset_count(const mira_dataset *ds);
/* The i-th element in ascending tag order. Borrowed: valid until the data set changes. */
MIRA_API mira_element *mira_dataset_at(const mira_dataset *ds, size_t i);
/* The element with this tag, or NULL. Borrowed. */
MIRA_API mira_element *mira_dataset_get(const mira_dataset *ds, mira_tag tag);
/* True if the values of this data set are stored big-endian (read from an Explicit VR BE file). */
MIRA_API bool mira_dataset_is_big_endian(const mira_dataset *ds);
/* The Specific Character Set in force for this data set (its own, or its parent's); "" if none. */
MIRA_API const char *mira_dataset_charset(const mira_dataset *ds);
/* The private creator that reserves the block of a private tag, or NULL. Borrowed. */
MIRA_API const char *mira_dataset_private_creator(const mira_dataset *ds, mira_tag tag);

MIRA_API mira_tag mira_element_tag(const mira_element *e);
MIRA_API mira_vr mira_element_vr(const mira_element *e);
/* The VR as found in the file (differs from mira_element_vr for UN replaced by the dictionary VR). */
MIRA_API mira_vr mira_element_vr_on_disk(const mira_element *e);
/* The value length as encoded (MIRA_UNDEFINED_LENGTH for undefined-length sequences/pixel data). */
MIRA_API uint32_t mira_element_length(const mira_element *e);
/* Offset of the element's tag from the start of the file (or buffer); 0 for elements made in memory. */
MIRA_API uint64_t mira_element_offset(const mira_element *e);
/* The raw value bytes in the data set's byte order; NULL for sequences and encapsulated data. Borrowed. */
MIRA_API const uint8_t *mira_element_bytes(const mira_element *e, size_t *len);
/* Value multiplicity: number of backslash-separated strings, or of binary values; items for SQ. */
MIRA_API size_t mira_element_vm(const mira_element *e);

/* The i-th value of a string element as UTF-8, padding removed. Caller frees with mira_free. */
MIRA_API char *mira_element_get_string(const mira_element *e, size_t i, mira_error **err);
/* The whole value as UTF-8 (values joined by '\'), trailing padding removed. Caller frees. */
MIRA_API char *mira_element_get_text(const mira_element *e, mira_error **err);
/* The i-th value as a number: binary VRs (US, SS, UL, SL, UV, SV, FL, FD, OB/OW..., AT) and IS/DS. */
MIRA_API bool mira_element_get_int(const mira_element *e, size_t i, int64_t *out, mira_error **err);
MIRA_API bool mira_element_get_uint(const mira_element *e, size_t i, uint64_t *out,
                                    mira_error **err);
MIRA_API bool mira_element_get_double(const mira_element *e, size_t i, double *out,
                                      mira_error **err);

/* Items of a sequence element (0 for other elements); an item is borrowed from the element. */
MIRA_API size_t mira_element_item_count(const mira_element *e);
MIRA_API mira_dataset *mira_element_item(const mira_element *e, size_t i);
/* True for each item / the sequence if its length was undefined in the file. */
MIRA_API bool mira_element_is_undefined_length(const mira_element *e);

/* Encapsulated pixel data: the basic offset table and the fragments after it. */
MIRA_API bool mira_element_is_encapsulated(const mira_element *e);
MIRA_API const uint8_t *mira_element_offset_table(const mira_element *e, size_t *len);
MIRA_API size_t mira_element_fragment_count(const mira_element *e);
MIRA_API const uint8_t *mira_element_fragment(const mira_element *e, size_t i, size_t *len);

/* Put a value (string VRs: the encoded characters; binary VRs: little-endian bytes).
 * Replaces an element with the same tag. The bytes are copied. */
MIRA_API mira_element *mira_dataset_set_bytes(mira_dataset *ds, mira_tag tag, mira_vr vr,
                                              const void *bytes, size_t len, mira_error **err);
/* Put a string value (values separated by '\'); odd lengths are padded per the VR. */
MIRA_API mira_element *mira_dataset_set_string(mira_dataset *ds, mira_tag tag, mira_vr vr,
                                               const char *value, mira_error **err);
/* Put an empty sequence; add items with mira_element_add_item. */
MIRA_API mira_element *mira_dataset_set_sequence(mira_dataset *ds, mira_tag tag,
                                                 mira_error **err);
/* Append a new empty item to a sequence. Borrowed from the element. */
MIRA_API mira_dataset *mira_element_add_item(mira_element *seq, mira_error **err);
/* Put an encapsulated pixel data element (OB, undefined length) with an empty offset table. */
MIRA_API mira_element *mira_dataset_set_encapsulated(mira_dataset *ds, mira_tag tag,
                                                     mira_error **err);
/* Append a fragment (copied); i == 0 before any fragment sets the basic offset table instead. */
MIRA_API bool mira_element_add_fragment(mira_element *e, const void *bytes, size_t len,
                                        bool is_offset_table, mira_error **err);
/* Remove an element; false if absent. */
MIRA_API bool mira_dataset_remove(mira_dataset *ds, mira_tag tag);

/* ------------------------------------------------------------------ Part 10 files */

typedef struct mira_read_options {
    bool stop_before_pixels; /* stop at (7FE0,0010) or any later top-level tag */
    bool no_mmap;            /* read into memory instead of mapping the file */
    bool replace_un;         /* report UN elements with their dictionary VR (default true via _init) */
    bool raw;                /* no preamble and no file meta: a raw data set (see transfer_syntax) */
    const char *transfer_syntax; /* for raw data sets; NULL means guess */
} mira_read_options;

MIRA_API void mira_read_options_init(mira_read_options *opt);

typedef struct mira_file mira_file;

/* Read a Part 10 file (or a raw data set with opt->raw, or a file without preamble, which is
 * detected). opt may be NULL for defaults. The file is mapped; values are decoded on access. */
MIRA_API mira_file *mira_file_read(const char *path, const mira_read_options *opt,
                                   mira_error **err);
/* Read from memory. The buffer is borrowed and must outlive the file unless copy is true. */
MIRA_API mira_file *mira_file_read_memory(const void *data, size_t len,
                                          const mira_read_options *opt, bool copy,
                                          mira_error **err);
/* A file object around a data set, with a new file meta for the given transfer syntax.
 * Takes ownership of ds on success; on failure the caller keeps it. */
MIRA_API mira_file *mira_file_from_dataset(mira_dataset *ds, const char *ts_uid,
                                           mira_error **err);
MIRA_API void mira_file_free(mira_file *f);

/* The file meta information (group 0002); empty for a raw data set. Borrowed. */
MIRA_API mira_dataset *mira_file_meta(const mira_file *f);
/* The main data set. Borrowed. */
MIRA_API mira_dataset *mira_file_dataset(const mira_file *f);
/* The transfer syntax of the main data set. Borrowed. */
MIRA_API const char *mira_file_transfer_syntax(const mira_file *f);
/* True if the file had the 128-byte preamble and "DICM". */
MIRA_API bool mira_file_has_preamble(const mira_file *f);
/* Warnings about tolerated deviations, each naming the offset. Borrowed. */
MIRA_API size_t mira_file_warning_count(const mira_file *f);
MIRA_API const char *mira_file_warning(const mira_file *f, size_t i);

/* Write as Part 10 in a transfer syntax (NULL: the file's own). Uncompressed syntaxes only,
 * unless ts_uid equals the file's own encapsulated syntax. Written atomically (temp + rename). */
MIRA_API bool mira_file_write(const mira_file *f, const char *path, const char *ts_uid,
                              mira_error **err);
/* The same, into memory. *out is owned by the caller (mira_free). */
MIRA_API bool mira_file_write_memory(const mira_file *f, const char *ts_uid, uint8_t **out,
                                     size_t *out_len, mira_error **err);

/* ------------------------------------------------------------------ DICOM JSON (PS3.18 F.2) */

typedef struct mira_json_options {
    bool no_pixels;          /* leave out (7FE0,0010) and friends */
    bool pretty;             /* indent */
    size_t bulk_threshold;   /* 0: inline every binary value */
    const char *bulk_uri;    /* if set, values over the threshold become BulkDataURI "<uri>/<tag>" */
    bool pixels_bulk;        /* with bulk_uri: pixel data is a BulkDataURI whatever its size */
} mira_json_options;

/* The data set as the DICOM JSON model. Caller frees with mira_free. */
MIRA_API char *mira_dataset_to_json(const mira_dataset *ds, const mira_json_options *opt,
                                    mira_error **err);
/* A data set from the DICOM JSON model (the object of one instance). */
MIRA_API mira_dataset *mira_dataset_from_json(const char *json, size_t len, mira_error **err);

/* ------------------------------------------------------------------ DICOMDIR */

/*
 * Write root/DICOMDIR (atomically) for the DICOM files at the given paths relative to root,
 * which must be DICOM file IDs: components of 1 to 8 characters of A-Z, 0-9 and _ separated
 * by '/'. Records: PATIENT, STUDY, SERIES and one per file (IMAGE, SR DOCUMENT, RT DOSE...),
 * keys copied from the files. fileset_id may be NULL.
 */
MIRA_API bool mira_dicomdir_write(const char *root, const char *const *files, size_t nfiles,
                                  const char *fileset_id, mira_error **err);

#ifdef __cplusplus
}
#endif
#endif
