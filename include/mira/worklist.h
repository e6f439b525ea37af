/* mira worklist: scheduled procedure steps (Modality Worklist), performed procedure steps
 * (MPPS) and storage commitment checks, kept in the archive's index. */
#ifndef MIRA_WORKLIST_H
#define MIRA_WORKLIST_H

#include "mira/archive.h"
#include "mira/core.h"
#include "mira/dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A worklist entry is one Scheduled Procedure Step: a Modality Worklist item (PS3.4 K.6.1,
 * Table K.6-1) with the patient, the requested procedure (Accession Number, Requested
 * Procedure ID and Description, Study Instance UID) and a Scheduled Procedure Step Sequence of
 * one item (Scheduled Station AE Title, Modality, Start Date and Time, Performing Physician,
 * Step ID, Description, Status). Entries are created by mira_worklist_add (the CLI now, HL7
 * orders later: source "hl7" with the placer and filler order numbers), served to modalities
 * by C-FIND, and linked to the study that arrives with their Study Instance UID or accession
 * number, and to the MPPS that reports on them.
 */

/* What the listing tells of an entry (every string borrowed for the call; "" when absent). */
typedef struct mira_worklist_entry {
    int64_t id;
    const char *accession, *requested_procedure_id, *sps_id;
    const char *patient_id, *patient_name;
    const char *modality, *station_aet, *start_date, *start_time;
    const char *performing_physician, *procedure_description;
    const char *study_uid;
    const char *status; /* SCHEDULED, STARTED, COMPLETED, DISCONTINUED... (0040,0020) */
    const char *source; /* "cli", "hl7" */
    const char *placer_order, *filler_order;
    const char *linked_study_uid; /* a stored study with this UID or accession ("" if none yet) */
    const char *mpps_uid;         /* the last MPPS that names this entry ("" if none) */
    const mira_dataset *item;     /* the whole worklist item */
} mira_worklist_entry;

typedef struct mira_worklist_add_options {
    const char *source;       /* default "cli" */
    const char *placer_order; /* HL7 ORC-2 (may be NULL) */
    const char *filler_order; /* HL7 ORC-3 (may be NULL) */
} mira_worklist_add_options;

/*
 * Add an entry from a worklist item (borrowed; not changed). What the item lacks is filled in:
 * Study Instance UID (a new UID), Scheduled Procedure Step ID (the entry's id), Scheduled
 * Procedure Step Status (SCHEDULED). Fails with MIRA_ERR_ARGUMENT when the item has no
 * Scheduled Procedure Step Sequence of one item, or neither Patient ID nor Patient's Name.
 * Text is UTF-8. *id (may be NULL) receives the entry's id. opt may be NULL.
 */
MIRA_API bool mira_worklist_add(mira_archive *a, const mira_dataset *item,
                                const mira_worklist_add_options *opt, int64_t *id,
                                mira_error **err);

/* Told of each entry; return false to stop. */
typedef bool (*mira_worklist_fn)(void *ctx, const mira_worklist_entry *e);

/* Every entry, by scheduled date and time (then id). */
MIRA_API bool mira_worklist_list(mira_archive *a, mira_worklist_fn fn, void *ctx,
                                 mira_error **err);

/* Delete an entry (MIRA_ERR_NOT_FOUND if there is none). */
MIRA_API bool mira_worklist_delete(mira_archive *a, int64_t id, mira_error **err);

/*
 * Modality Worklist C-FIND matching (PS3.4 K.6.1.2, with the matching types of C.2.2.2):
 * single value, wild cards (* ?), list of UIDs, date and time ranges, empty value ("\"\""),
 * universal, and sequence matching (an entry matches when one item of its sequence matches
 * every key of the identifier's item). Person names match case-insensitively unless the
 * archive's config says otherwise. Each match holds exactly the identifier's keys with the
 * entry's values (empty where it has none; sequences with the matching items and their
 * requested keys; a sequence asked for with no keys in its item is returned whole), and
 * Specific Character Set ISO_IR 192 when a value is not ASCII. Borrowed for the call.
 */
MIRA_API bool mira_worklist_find(mira_archive *a, const mira_dataset *identifier, mira_find_fn fn,
                                 void *ctx, mira_error **err);

/* ------------------------------------------------------------------ MPPS (PS3.4 F) */

/* The outcome of an MPPS create or set, so that the DIMSE statuses can follow it. */
typedef enum mira_mpps_result {
    MIRA_MPPS_OK = 0,
    MIRA_MPPS_DUPLICATE = 1,     /* N-CREATE of an instance that exists (0x0111) */
    MIRA_MPPS_NO_SUCH = 2,       /* N-SET of an instance that does not (0x0112) */
    MIRA_MPPS_FINAL = 3,         /* N-SET after COMPLETED or DISCONTINUED (0x0110, A710) */
    MIRA_MPPS_INVALID_VALUE = 4, /* a status other than the allowed ones (0x0106) */
    MIRA_MPPS_MISSING = 5,       /* a required attribute is missing (0x0120) */
    MIRA_MPPS_MISSING_VALUE = 6, /* a required attribute is empty (0x0121) */
    MIRA_MPPS_NOT_ALLOWED = 7,   /* N-SET of an attribute that may not be set (0x0106) */
} mira_mpps_result;

/*
 * N-CREATE (PS3.4 F.7.2.1): keep a new MPPS instance uid with attrs (borrowed). The status
 * must be IN PROGRESS; Performed Procedure Step ID, Performed Station AE Title, Start Date,
 * Start Time, Modality and the Scheduled Step Attributes Sequence are required. The entry it
 * names (by the sequence's Accession Number and Scheduled Procedure Step ID, or Study Instance
 * UID) is linked and goes to STARTED. Returns false only when the index fails; *result says
 * what became of the request, *why (a buffer of n bytes, may be NULL) which attribute.
 */
MIRA_API bool mira_mpps_create(mira_archive *a, const char *uid, const mira_dataset *attrs,
                               mira_mpps_result *result, char *why, size_t n, mira_error **err);

/*
 * N-SET (PS3.4 F.7.2.2): replace the attributes of mods (borrowed) in the instance. Once its
 * status is COMPLETED or DISCONTINUED it may no longer change. Going to either requires
 * Performed Procedure Step End Date and End Time, and for COMPLETED a Performed Series Sequence
 * whose items have a Series Instance UID. The linked entry follows the final status.
 */
MIRA_API bool mira_mpps_set(mira_archive *a, const char *uid, const mira_dataset *mods,
                            mira_mpps_result *result, char *why, size_t n, mira_error **err);

/* The attributes of an MPPS instance (owned: mira_dataset_free), or NULL (MIRA_ERR_NOT_FOUND).
 * *worklist_id (may be NULL) receives the entry it is linked to (0: none). */
MIRA_API mira_dataset *mira_mpps_get(mira_archive *a, const char *uid, int64_t *worklist_id,
                                     mira_error **err);

/* ------------------------------------------------------------------ storage commitment */

/* The SOP Class UID of a stored instance into sop_class (65 bytes); false with
 * MIRA_ERR_NOT_FOUND when the archive does not hold it. */
MIRA_API bool mira_archive_instance_class(mira_archive *a, const char *sop_instance_uid,
                                          char sop_class[65], mira_error **err);

/* Record a storage commitment request answered (PS3.4 J): who asked, how many instances, how
 * many failed, and how the report went ("same association", "new association", or why it
 * could not be sent). */
MIRA_API bool mira_archive_log_commitment(mira_archive *a, const char *transaction_uid,
                                          const char *requestor, uint64_t instances,
                                          uint64_t failures, const char *reported_how,
                                          mira_error **err);

/*
 * Storage commitment reports kept until they are delivered (PS3.4 J.3.3: the SCP sends the
 * result; `mira serve` retries those it could not). Times are Unix seconds. Whoever attempts
 * a report first claims it: a claim is a token that holds the report until its lease ends,
 * so that two threads or two servers on one index never send it at once.
 */

/* Record a storage commitment request answered, with its report to deliver (event type 1
 * every instance held, 2 some not; event_info borrowed), claimed by the caller until lease:
 * *id receives the record's id, *claim the claim's token. After lease, anyone may attempt it
 * (mira_archive_commitments_due), until retry_until. */
MIRA_API bool mira_archive_commitment_add(mira_archive *a, const char *transaction_uid,
                                          const char *requestor, uint64_t instances,
                                          uint64_t failures, uint16_t event_type,
                                          const mira_dataset *event_info, int64_t lease,
                                          int64_t retry_until, int64_t *id, int64_t *claim,
                                          mira_error **err);

/* Claim report id until lease, if it is still to be delivered and either due by now or
 * already claimed with *claim (0: no claim yet; it then receives a new token). *taken is
 * false when another attempt holds it or it is over. */
MIRA_API bool mira_archive_commitment_claim(mira_archive *a, int64_t id, int64_t now,
                                            int64_t lease, int64_t *claim, bool *taken,
                                            mira_error **err);

/* After an attempt by the holder of claim: delivered (reported_at set, the report dropped),
 * else tried again at retry_at (0: never: given up, the report dropped). attempts is the
 * count made on new associations; how says how it went. A claim that is no longer the
 * report's (its lease ended and another took it) changes nothing. */
MIRA_API bool mira_archive_commitment_attempted(mira_archive *a, int64_t id, int64_t claim,
                                                bool delivered, int attempts, int64_t retry_at,
                                                const char *how, mira_error **err);

/* A report to deliver, as mira_archive_commitments_due reads it. */
typedef struct mira_commitment_report {
    int64_t id;
    char transaction_uid[65];
    char requestor[17]; /* the calling AE title of the request */
    uint64_t instances, failures;
    uint16_t event_type;
    mira_dataset *event_info; /* owned by the callback, which frees it */
    int attempts;             /* made on new associations so far */
    int64_t retry_until;
} mira_commitment_report;

/* Told of each report due; return false to stop. */
typedef bool (*mira_commitment_report_fn)(void *ctx, mira_commitment_report *r);

/* The reports to deliver whose time has come by now (at most max, earliest first), each
 * told to fn; then *next (may be NULL) receives the earliest time one of the others comes
 * due (0: none waits). A report whose event information cannot be read is given up. */
MIRA_API bool mira_archive_commitments_due(mira_archive *a, int64_t now, size_t max,
                                           mira_commitment_report_fn fn, void *ctx,
                                           int64_t *next, mira_error **err);

#ifdef __cplusplus
}
#endif

#endif
