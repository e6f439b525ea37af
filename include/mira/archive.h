/* mira archive: the PACS store: blobs on disk, an index (SQLite or PostgreSQL), store, query. */
#ifndef MIRA_ARCHIVE_H
#define MIRA_ARCHIVE_H

#include "mira/core.h"
#include "mira/features.h"
#include "mira/dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An archive is a folder:
 *   config.json   its settings (written with the defaults when the archive is created)
 *   index.db      the SQLite index (when the index is SQLite, the default)
 *   blobs/ab/cd/  the instances, one Part 10 file each, named by the SHA-256 of the SOP
 *                 Instance UID (hex; the first two bytes make the two folder levels)
 *   tmp/          files being written, one folder per process
 * An instance is acknowledged (mira_archive_store_* returns) only once its blob and its
 * index rows are durable. Opening an archive finishes or undoes whatever a killed process
 * left half done, so a crash never leaves the index and the blobs disagreeing.
 *
 * A mira_archive handle is safe to use from several threads at once.
 */
typedef struct mira_archive mira_archive;

typedef enum mira_duplicate_policy {
    MIRA_DUPLICATE_KEEP = 0,      /* keep the stored instance; the new copy is a "duplicate" */
    MIRA_DUPLICATE_OVERWRITE = 1, /* replace the stored instance with the new copy */
    MIRA_DUPLICATE_REJECT = 2,    /* refuse the new copy (MIRA_ERR_CONFLICT) */
} mira_duplicate_policy;

typedef struct mira_archive_options {
    const char *dir; /* the archive folder (required) */
    /* The index: NULL for the config's; "sqlite" (dir/index.db), "sqlite:PATH", or a
     * PostgreSQL connection string ("postgresql://user@host:port/db" or "host=... dbname=...").
     * A new archive records it in its config. */
    const char *index;
    int duplicates;         /* -1: the config's (keep by default); else a mira_duplicate_policy */
    const char *storage_ts; /* NULL: the config's; "" stores as received; else a lossless TS UID */
    bool create;            /* make a new archive if dir has none (else MIRA_ERR_NOT_FOUND) */
} mira_archive_options;

MIRA_API void mira_archive_options_init(mira_archive_options *opt);
/* Open (or create) an archive and recover what a killed process left behind. */
MIRA_API mira_archive *mira_archive_open(const mira_archive_options *opt, mira_error **err);
/* Close; waits for stores in progress. _close(NULL) is a no-op. */
MIRA_API void mira_archive_close(mira_archive *a);
/* The archive folder (borrowed). */
MIRA_API const char *mira_archive_dir(const mira_archive *a);
/* "sqlite" or "postgresql". */
MIRA_API const char *mira_archive_index_kind(const mira_archive *a);
MIRA_API mira_duplicate_policy mira_archive_duplicates(const mira_archive *a);

/* ------------------------------------------------------------------ storing */

typedef enum mira_store_status {
    MIRA_STORE_STORED = 0,    /* new instance */
    MIRA_STORE_DUPLICATE = 1, /* the same SOP Instance UID was there: kept (or identical bytes) */
    MIRA_STORE_REPLACED = 2,  /* the same SOP Instance UID was there: overwritten */
} mira_store_status;

typedef struct mira_store_result {
    mira_store_status status;
    char sop_instance_uid[65];
    char sop_class_uid[65];
    char study_instance_uid[65];
    char series_instance_uid[65];
    char transfer_syntax[65]; /* as stored */
    uint64_t size;            /* bytes of the stored blob */
} mira_store_result;

/*
 * Store one instance: a Part 10 file (or a data set without meta header, whose transfer
 * syntax is then guessed as the reader does), read from path or memory. Returns after the
 * blob and its index rows are durable; concurrent calls from several threads are committed
 * together (group commit), so parallel callers get throughput without losing durability.
 * Fails with MIRA_ERR_INVALID for input that is not DICOM or lacks the Study, Series or SOP
 * Instance UID, MIRA_ERR_CONFLICT for a duplicate under MIRA_DUPLICATE_REJECT, MIRA_ERR_IO
 * for a storage failure. res may be NULL.
 */
MIRA_API bool mira_archive_store_file(mira_archive *a, const char *path, mira_store_result *res,
                                      mira_error **err);
MIRA_API bool mira_archive_store_memory(mira_archive *a, const void *data, size_t len,
                                        mira_store_result *res, mira_error **err);

/* Told of each entry of a container as it is stored: its name ("CONTAINER:ENTRY"), the result,
 * or the error (both borrowed; err NULL on success). */
typedef void (*mira_store_entry_fn)(void *ctx, const char *name, const mira_store_result *res,
                                    const mira_error *err);

/* Store every regular file inside a .zip (or any container libarchive reads: tar, tar.gz,
 * 7z...), each with mira_archive_store_memory; entries named DICOMDIR are skipped. Entries
 * over 4 GiB are refused. Returns false only when the container itself cannot be read
 * (entries already stored stay stored). */
MIRA_API bool mira_archive_store_container(mira_archive *a, const char *path,
                                           mira_store_entry_fn fn, void *ctx, mira_error **err);
/* The number of regular files in a container (-1 if it cannot be read). */
MIRA_API int64_t mira_container_count(const char *path);

/* ------------------------------------------------------------------ querying */

typedef enum mira_level {
    MIRA_LEVEL_PATIENT = 0,
    MIRA_LEVEL_STUDY = 1,
    MIRA_LEVEL_SERIES = 2,
    MIRA_LEVEL_INSTANCE = 3, /* "IMAGE" in C-FIND */
} mira_level;

/* "PATIENT", "STUDY", "SERIES", "IMAGE". */
MIRA_API const char *mira_level_name(mira_level level);
/* From "PATIENT", "STUDY", "SERIES", "IMAGE" or "INSTANCE" (any case); false if none. */
MIRA_API bool mira_level_from_name(const char *name, mira_level *out);

typedef struct mira_find_options {
    uint64_t limit;  /* at most this many matches (0: no limit) */
    uint64_t offset; /* skip this many first */
    /* Person names match case-insensitively (ASCII letters); PS3.4 C.2.2.2.1 leaves it to
     * the SCP. -1: the config's (default: case-insensitive); 0: exact; 1: insensitive. */
    int names_case_insensitive;
    /* Combined date-time matching (PS3.4 C.2.2.2.5.4, negotiated by a C-FIND SCU): a date key
     * and its time key (Study Date and Study Time, Series Date and Series Time, Acquisition,
     * Content, Performed Procedure Step Start, Patient's Birth) that are ranges of the same
     * form match as one date-time range. Default false: each matches on its own. */
    bool combined_datetime;
} mira_find_options;

MIRA_API void mira_find_options_init(mira_find_options *opt);

/* A match: a data set with every key of the identifier, holding the archive's values (the
 * keys the archive does not index are present and empty). Borrowed for the call. Return
 * false to stop the search. */
typedef bool (*mira_find_fn)(void *ctx, const mira_dataset *match);

/*
 * Search the index at `level` with a C-FIND style identifier (PS3.4 C.2.2.2): keys with a
 * value are matching keys (single value, UID list, wildcards * and ?, date/time ranges,
 * sequence matching on the indexed sequences, "" for empty value matching); empty keys are
 * return keys. Keys of the levels above can be given too (they match and are returned).
 * Results come in a stable order (by the level's keys: patient ID, study date and time,
 * series number, instance number; missing values last, ties in the order the entities were
 * created), then limit and offset apply. Text in the results is UTF-8 (Specific Character
 * Set ISO_IR 192 is set when the identifier has text keys).
 */
MIRA_API bool mira_archive_find(mira_archive *a, mira_level level, const mira_dataset *identifier,
                                const mira_find_options *opt, mira_find_fn fn, void *ctx,
                                mira_error **err);

/* True if the index can match on (and return) tag at level (or a level above). */
MIRA_API bool mira_archive_key_supported(mira_level level, mira_tag tag);

/* The path of the blob holding an instance (owned by the caller, mira_free), or NULL with
 * MIRA_ERR_NOT_FOUND. */
MIRA_API char *mira_archive_instance_path(mira_archive *a, const char *sop_instance_uid,
                                          mira_error **err);

/* An instance as retrieval (WADO-RS, C-GET) sees it. Borrowed for the call. */
typedef struct mira_instance_ref {
    const char *study_uid, *series_uid, *sop_uid, *sop_class_uid;
    const char *transfer_syntax; /* as stored */
    const char *path;            /* of the blob */
    uint64_t size;               /* bytes of the blob */
    int64_t frames;              /* Number of Frames, 0 when absent */
    /* The metadata prepared when it was stored (see mira_instance_metadata_make), or NULL:
     * not asked for, or an instance stored before metadata was prepared (make it then). */
    const char *metadata;
    size_t metadata_len;
} mira_instance_ref;

/* Told of each instance; return false to stop. */
typedef bool (*mira_instance_fn)(void *ctx, const mira_instance_ref *ref);

/*
 * The instances of a study (series and sop NULL), of one series of it (sop NULL) or one
 * instance of that series, in the archive's order (series number, instance number, then the
 * order they came in), with their prepared metadata when with_metadata. One query, whatever
 * their number. None matching: true, and fn is never called (the caller says "not found").
 */
MIRA_API bool mira_archive_instances(mira_archive *a, const char *study, const char *series,
                                     const char *sop, bool with_metadata, mira_instance_fn fn,
                                     void *ctx, mira_error **err);

/*
 * A token of what a study (series NULL) or one series of it holds now: it changes whenever an
 * instance under it is added, replaced (modify and merge rewrite instances) or deleted, so
 * that what is made from them (a series' metadata) can be kept until it does. Written into
 * out. MIRA_ERR_NOT_FOUND if the archive has no such study, or no such series in it.
 */
MIRA_API bool mira_archive_version(mira_archive *a, const char *study, const char *series,
                                   char out[96], mira_error **err);

/*
 * The metadata of an instance as WADO-RS returns it (PS3.18 10.4.1.1.2): its data set (never
 * the file meta) in the DICOM JSON model, with every binary value over 1 KiB and Pixel Data
 * as a BulkDataURI relative to the instance, "@/7FE00010" ("@/ggggeeee/ITEM/ggggeeee" inside
 * sequences, items from 0): the server puts its URL of the instance in place of "@". From a
 * Part 10 file or data set in memory; owned by the caller (mira_free), *len its length.
 */
MIRA_API char *mira_instance_metadata_make(const void *data, size_t len, size_t *out_len,
                                           mira_error **err);

/* ------------------------------------------------------------------ managing */

/* An entity is named by its level and key: Patient ID (patients), Study / Series / SOP
 * Instance UID. */

typedef struct mira_delete_result {
    uint64_t instances, series, studies, patients; /* rows removed */
    uint64_t bytes;                                /* of the blobs removed */
} mira_delete_result;

/* Delete an entity with everything under it (rows, then blobs); parents left empty go too,
 * the others are recounted. MIRA_ERR_NOT_FOUND if nothing matches. out may be NULL. */
MIRA_API bool mira_archive_delete(mira_archive *a, mira_level level, const char *key,
                                  mira_delete_result *out, mira_error **err);

/*
 * Change attributes of every instance of an entity: each element of `changes` replaces the
 * attribute (an element without a value empties it; a Specific Character Set in `changes`
 * only says how their text is encoded); each tag of `remove` is taken out. The
 * instances are rewritten as new versions (durably, like stores; the old blobs go once the
 * new ones are committed), the index follows, and every change is recorded in the history
 * with `reason` (may be NULL). Refused (MIRA_ERR_ARGUMENT): the UIDs of the hierarchy, SOP
 * Class UID, Patient ID and its issuer, file meta and pixel data elements, and indexed
 * attributes of a level above the entity (change a patient's name on the patient). Text is
 * UTF-8: a non-ASCII value needs instances whose Specific Character Set is ISO_IR 192 (or
 * none with ASCII-only text, which then becomes ISO_IR 192). Returns the number of instances
 * rewritten in *instances (may be NULL). A crash part way leaves some instances changed and
 * others not; running the same modify again finishes it.
 */
MIRA_API bool mira_archive_modify(mira_archive *a, mira_level level, const char *key,
                                  const mira_dataset *changes, const mira_tag *remove,
                                  size_t nremove, const char *reason, uint64_t *instances,
                                  mira_error **err);

/*
 * Merge a patient into another (an HL7 A40, or two IDs found to be one person): every
 * instance of the patient (patient_id, and issuer; issuer NULL: of any issuer) is rewritten
 * with the attributes of `into`, which holds the survivor's Patient ID (needed) and Issuer of
 * Patient ID (absent: none, the element is removed) and may hold other patient attributes (name,
 * birth date, sex...: they replace the values of the instances of both patients); the name,
 * birth date and sex it leaves out are the survivor's, when it is in the archive. Then, in one transaction, the
 * studies move under the surviving patient (the patient is renamed when the survivor is not
 * in the archive), the emptied patient goes, and the history records the change of each
 * attribute under the old Patient ID. MIRA_ERR_NOT_FOUND when the archive has no such patient.
 * A crash part way leaves the index as it was and some instances rewritten: running the same
 * merge again finishes it. *instances (may be NULL): the instances rewritten.
 */
MIRA_API bool mira_archive_merge_patient(mira_archive *a, const char *patient_id,
                                         const char *issuer, const mira_dataset *into,
                                         const char *reason, uint64_t *instances,
                                         mira_error **err);

/* ------------------------------------------------------------------ analysis results */

/* Keep the results of a method (e.g. "ibsi") for a study, replacing what that method had
 * given it before, in one transaction. MIRA_ERR_NOT_FOUND if the archive has no such study. */
MIRA_API bool mira_archive_results_put(mira_archive *a, const char *study_uid, const char *method,
                                       const mira_feature *v, size_t n, mira_error **err);
/* The results a method gave a study (method NULL: every method's), in the order they were
 * kept, into out (empty if none). */
MIRA_API bool mira_archive_results_get(mira_archive *a, const char *study_uid, const char *method,
                                       mira_features *out, mira_error **err);

/* Told of each exported instance: its SOP Instance UID and the file written, or the error. */
typedef void (*mira_export_fn)(void *ctx, const char *sop_instance_uid, const char *path,
                               const mira_error *err);

/*
 * Copy the instances matching a query (an identifier as for mira_archive_find, matched at the
 * instance level: keys of every level may be given) into the folder dir, as stored. With
 * dicomdir, files are named DICOM/Pnnnnnnn/Snnnnnnn/Ennnnnnn/Innnnnnn (valid DICOM file IDs)
 * and dir/DICOMDIR indexes them; else dir/<Patient ID>/<Study UID>/<Series UID>/<SOP UID>.dcm.
 * *count (may be NULL) receives the number of instances written. Fails with
 * MIRA_ERR_NOT_FOUND if nothing matches.
 */
MIRA_API bool mira_archive_export(mira_archive *a, const mira_dataset *identifier, const char *dir,
                                  bool dicomdir, mira_export_fn fn, void *ctx, uint64_t *count,
                                  mira_error **err);

/* One recorded change (all borrowed): when (UTC, ISO 8601), the entity, the attribute, its
 * values before (the distinct values its instances had, sorted, joined with '\\') and after
 * ("" when removed or emptied). */
typedef bool (*mira_history_fn)(void *ctx, const char *at, mira_level level, const char *entity,
                                mira_tag tag, const char *old_value, const char *new_value,
                                const char *reason, uint64_t instances);

/* The history of modifications, oldest first; entity NULL for all of them. */
MIRA_API bool mira_archive_history(mira_archive *a, const char *entity, mira_history_fn fn,
                                   void *ctx, mira_error **err);

typedef struct mira_archive_stats {
    uint64_t patients, studies, series, instances;
    uint64_t bytes; /* of all blobs */
} mira_archive_stats;

MIRA_API bool mira_archive_get_stats(mira_archive *a, mira_archive_stats *out, mira_error **err);

typedef enum mira_check_problem {
    MIRA_CHECK_MISSING_BLOB = 0, /* an index row whose blob is missing */
    MIRA_CHECK_ORPHAN_BLOB = 1,  /* a blob no index row names */
    MIRA_CHECK_BAD_BLOB = 2,     /* a blob whose size or checksum is not the index's */
    MIRA_CHECK_BAD_COUNT = 3,    /* a patient/study/series count or size that is wrong */
} mira_check_problem;

typedef struct mira_check_options {
    bool repair; /* fix what is found (re-index orphans, drop rows without blobs, recount) */
    bool deep;   /* also read every blob and compare its checksum (else sizes only) */
    /* Only these instances (SOP Instance UIDs, borrowed; NULL: every one): their rows and
     * blobs are checked, not the other blobs nor the counts. UIDs the index does not hold
     * are skipped. */
    const char *const *instances;
    size_t ninstances;
    /* Told after each instance row checked (done of total); returning false stops the check,
     * which then fails with MIRA_ERR_LIMIT ("stopped"). NULL: not told. */
    bool (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} mira_check_options;

typedef struct mira_check_report {
    uint64_t instances_checked, blobs_checked;
    uint64_t missing_blobs, orphan_blobs, bad_blobs, bad_counts;
    uint64_t repaired;
} mira_check_report;

/* Called for every problem found: what, and the path or UID it is about (borrowed). */
typedef void (*mira_check_fn)(void *ctx, mira_check_problem what, const char *subject,
                              const char *detail);

/* Verify that every index row has its blob and every blob its row (and counts are right). */
MIRA_API bool mira_archive_check(mira_archive *a, const mira_check_options *opt, mira_check_fn fn,
                                 void *ctx, mira_check_report *out, mira_error **err);

#ifdef __cplusplus
}
#endif

#endif
