/* mira de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile. */
#ifndef MIRA_DEID_H
#define MIRA_DEID_H

#include "mira/core.h"
#include "mira/dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * De-identification applies the actions of PS3.15 Table E.1-1 to every attribute of a data set,
 * in sequences too: D (a dummy value of the VR), Z (zero length), X (removed), K (kept),
 * C (cleaned) and U (UIDs replaced consistently), with the options of PS3.15 E.3 changing the
 * actions of their column. What each action does in detail, the dummies and what is NOT done
 * (pixel data is never cleaned: the Clean Pixel Data and Clean Recognizable Visual Features
 * options are not offered) are in docs/internals/deid.md.
 *
 * Replacement UIDs are 2.25.<a 128-bit keyed hash of the original UID> (or <uid_root>.<...>):
 * the same original UID gives the same new UID in every instance and every run with the same
 * secret, so references between instances stay valid.
 */

/* The Retain Longitudinal Temporal Information options (PS3.15 E.3.6). */
typedef enum mira_deid_dates {
    MIRA_DEID_DATES_REMOVE = 0,   /* the Basic Profile: dates and times removed or emptied */
    MIRA_DEID_DATES_FULL = 1,     /* ... with Full Dates: kept as they are */
    MIRA_DEID_DATES_MODIFIED = 2, /* ... with Modified Dates: shifted by a per-patient offset */
} mira_deid_dates;

typedef struct mira_deid_options {
    mira_deid_dates dates;
    /* Modified dates: the shift in days. If date_shift_fixed is false, each patient gets its
     * own shift of 1 to 3652 days into the past, derived from the secret and the patient. */
    bool date_shift_fixed;
    int32_t date_shift_days;
    bool retain_safe_private;            /* E.3.10: keep the private attributes listed below */
    bool retain_uids;                    /* E.3.9 */
    bool retain_device;                  /* E.3.8: device identity */
    bool retain_institution;             /* E.3.11: institution identity */
    bool retain_patient_characteristics; /* E.3.7: sex, age, size, weight... */
    bool clean_descriptors;              /* E.3.5: keep descriptions, identifying text removed */
    bool clean_structured_content;       /* E.3.4: keep SR content, identifying text removed */
    bool clean_graphics;                 /* E.3.3: keep graphic annotations, their text cleaned */
    /* Patient Name and Patient ID become this pseudonym. A template: "{n}" or "{n:W}" is a
     * counter per patient in the order patients are first seen (zero-padded to W digits),
     * "{hash}" or "{hash:N}" the first N (default 12) hex digits of a keyed hash of the
     * original Patient ID (the same in every run with the same secret); anything else is
     * copied. NULL: "ANON-{hash:12}". At most 64 characters after expansion; no backslash. */
    const char *pseudonym;
    /* The key of every hash (UIDs, pseudonyms, date shifts). NULL: a random key made by
     * mira_deid_context_new, so nothing is reproducible across runs. Borrowed for the call. */
    const void *secret;
    size_t secret_len;
    /* Root of new UIDs: NULL for "2.25" (the UUID arc; the hash is made a version 8 UUID).
     * Digits and dots, at most 24 characters. */
    const char *uid_root;
    /* With retain_safe_private: the private attributes known to be safe, each
     * "GGGG,xxEE,CREATOR" (the group, the element's low byte, the private creator). */
    const char *const *safe_private;
    size_t nsafe_private;
} mira_deid_options;

/* The Basic Profile and nothing else: no option, random secret, "ANON-{hash:12}". */
MIRA_API void mira_deid_options_init(mira_deid_options *opt);

/*
 * The state of one de-identification run: the secret, the per-patient counters and the record
 * of every replacement (for a mapping file). Safe to use from several threads at once.
 * The options are copied (strings included). Fails with MIRA_ERR_ARGUMENT for a bad
 * pseudonym template, UID root or safe private entry.
 */
typedef struct mira_deid_context mira_deid_context;

MIRA_API mira_deid_context *mira_deid_context_new(const mira_deid_options *opt, mira_error **err);
/* _free(NULL) is a no-op. */
MIRA_API void mira_deid_context_free(mira_deid_context *ctx);
/* The options the context was made with. Borrowed. */
MIRA_API const mira_deid_options *mira_deid_context_options(const mira_deid_context *ctx);

/* The replacement of one UID (recorded in the mapping). Well-known DICOM UIDs
 * (1.2.840.10008.*) and "" are returned unchanged. */
MIRA_API bool mira_deid_uid(mira_deid_context *ctx, const char *uid, char out[65],
                            mira_error **err);
/* The pseudonym of a patient, given the original Patient ID (recorded in the mapping). */
MIRA_API bool mira_deid_pseudonym(mira_deid_context *ctx, const char *patient_id, char out[65],
                                  mira_error **err);
/* The date shift in days of a patient under MIRA_DEID_DATES_MODIFIED. */
MIRA_API int32_t mira_deid_date_shift(mira_deid_context *ctx, const char *patient_id);

/* Every replacement made so far, in the order first made: kind is "patient" or "uid"; all
 * borrowed for the call. Return false to stop. The mapping re-identifies: keep it secret. */
typedef bool (*mira_deid_map_fn)(void *arg, const char *kind, const char *original,
                                 const char *replacement);
MIRA_API void mira_deid_context_mapping(mira_deid_context *ctx, mira_deid_map_fn fn, void *arg);

/* ------------------------------------------------------------------ burned-in annotation */

typedef enum mira_deid_risk {
    MIRA_DEID_RISK_NONE = 0,   /* no pixel data, or nothing known to carry text */
    MIRA_DEID_RISK_LOW = 1,    /* a kind of image that sometimes carries markers or labels */
    MIRA_DEID_RISK_MEDIUM = 2, /* derived / secondary images, photographs, embedded overlays */
    MIRA_DEID_RISK_HIGH = 3,   /* Burned In Annotation YES, ultrasound, secondary capture */
} mira_deid_risk;

/* "none", "low", "medium", "high". */
MIRA_API const char *mira_deid_risk_name(mira_deid_risk risk);

/* The risk that the pixel data shows identifying text, judged from the header only (mira does
 * not look at, or clean, the pixels). The reasons are written to reasons (cap bytes, may be
 * NULL), separated by "; ". */
MIRA_API mira_deid_risk mira_deid_burned_in_risk(const mira_dataset *ds, char *reasons, size_t cap);

/* ------------------------------------------------------------------ de-identifying */

typedef struct mira_deid_report {
    uint32_t removed, emptied, replaced, cleaned, kept; /* attributes of the table, by action */
    uint32_t uids_replaced;                             /* UID values replaced */
    uint32_t dates_shifted;                             /* DA and DT values shifted */
    uint32_t private_removed;                           /* private attributes removed */
    int32_t date_shift_days;                            /* the shift applied (0 if none) */
    char pseudonym[65];                                 /* the new Patient ID */
    mira_deid_risk risk;                                /* burned-in annotation risk */
    char reasons[512];                                  /* its reasons, "; "-separated */
} mira_deid_report;

/*
 * De-identify a data set in place. opts NULL means the context's. Adds Patient Identity
 * Removed (0012,0062) YES, De-identification Method (0012,0063) and its Code Sequence
 * (0012,0064) with the CID 7050 codes of the profile and options applied, and Longitudinal
 * Temporal Information Modified (0028,0303). report may be NULL. On failure (out of memory,
 * a value too long) the data set is half changed and must not be used.
 */
MIRA_API bool mira_deid_dataset(mira_dataset *ds, const mira_deid_options *opts,
                                mira_deid_context *ctx, mira_deid_report *report, mira_error **err);

/* The same for a file: its data set, and its file meta (Media Storage SOP Instance UID follows
 * the new SOP Instance UID, the AE titles and private information of the meta are removed, the
 * implementation is mira's) and its preamble (zeroed: it may hold another format's header).
 * Write it afterwards with mira_file_write / mira_file_write_memory. */
MIRA_API bool mira_deid_file(mira_file *f, const mira_deid_options *opts, mira_deid_context *ctx,
                             mira_deid_report *report, mira_error **err);

/* ------------------------------------------------------------------ de-identified ZIPs */

/*
 * A ZIP of de-identified instances, made as it is written: each file added is read,
 * de-identified with the context (so UIDs and pseudonyms agree across the entries) and
 * written as an entry PATIENT/STUDY/SERIES/SOP.dcm named by its de-identified values; what
 * libarchive makes goes to write at once, so one instance at a time is held. Used by the
 * REST API's streamed export and by export jobs, which write it to a file.
 */
typedef struct mira_deid_zip mira_deid_zip;

/* Take len bytes of the ZIP; false to fail the ZIP. */
typedef bool (*mira_deid_zip_write_fn)(void *ctx, const void *data, size_t len);

/* Start one. deid is borrowed (it must outlive the ZIP). */
MIRA_API mira_deid_zip *mira_deid_zip_new(mira_deid_context *deid, mira_deid_zip_write_fn write,
                                          void *ctx, mira_error **err);
/* De-identify the DICOM file at path into the next entry. The error names the file; after a
 * failure the ZIP may be incomplete (stop). *bytes (may be NULL) receives the entry's size. */
MIRA_API bool mira_deid_zip_add_file(mira_deid_zip *z, const char *path, uint64_t *bytes,
                                     mira_error **err);
/* Write the central directory (the end of the ZIP). */
MIRA_API bool mira_deid_zip_finish(mira_deid_zip *z, mira_error **err);
/* _free(NULL) is a no-op. */
MIRA_API void mira_deid_zip_free(mira_deid_zip *z);

#ifdef __cplusplus
}
#endif
#endif
