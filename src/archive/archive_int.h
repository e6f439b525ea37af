/* Internal state of the archive module, shared by archive.c, store.c, find.c and check.c. */
#ifndef MIRA_ARCHIVE_ARCHIVE_INT_H
#define MIRA_ARCHIVE_ARCHIVE_INT_H

#include "archive/db.h"
#include "mira/archive.h"

#include <pthread.h>

/* ------------------------------------------------------------------ the indexed keys */

typedef enum mira__key_kind {
    MIRA__KEY_TEXT = 0,  /* single value and wild card matching, case-sensitive */
    MIRA__KEY_PN = 1,    /* a person name: like text, optionally case-insensitive (col_ci) */
    MIRA__KEY_UID = 2,   /* single value and list of UID matching */
    MIRA__KEY_DATE = 3,  /* single value and range matching (YYYYMMDD) */
    MIRA__KEY_TIME = 4,  /* single value and range matching on the normalised column col_n */
    MIRA__KEY_INT = 5,   /* an IS stored as an integer: numeric equality */
    MIRA__KEY_COUNT = 6, /* computed (Number of ... Related ...): returned, never matched */
    MIRA__KEY_LIST = 7,  /* computed from the level below (Modalities / SOP Classes in Study) */
    MIRA__KEY_SEQ = 8,   /* a sequence kept in a child table (sequence matching) */
} mira__key_kind;

typedef struct mira__key {
    mira_tag tag;
    mira_level level;
    mira__key_kind kind;
    mira_vr vr;
    const char *column; /* in the level's table (a select expression for COUNT and LIST) */
    bool multi;         /* values joined with '\' in the column */
} mira__key;

/* Items keys of the sequences kept in child tables. */
typedef struct mira__item_key {
    mira_tag seq; /* the sequence */
    mira_tag tag;
    mira__key_kind kind;
    mira_vr vr;
    const char *column; /* in the child table */
} mira__item_key;

typedef struct mira__seq_table {
    mira_tag seq;
    mira_level level;
    const char *table; /* child table: owner_pk, item, then the item columns */
} mira__seq_table;

extern const mira__key mira__keys[];
extern const size_t mira__key_count;
extern const mira__item_key mira__item_keys[];
extern const size_t mira__item_key_count;
extern const mira__seq_table mira__seq_tables[];
extern const size_t mira__seq_table_count;

/* The key for a tag (any level), or NULL. */
const mira__key *mira__key_find(mira_tag tag);
/* The table of a level ("patients", "studies", "series", "instances"). */
const char *mira__level_table(mira_level level);

/* Normalise a TM value for comparisons: "HHMMSS.FFFFFF" (13 characters) filled with `fill`
 * ('0' for values and lower bounds, '9' for upper bounds: 1230 as an upper bound covers
 * 12:30:59.999999). ACR-NEMA colons are dropped. False if it is not a time. */
bool mira__time_normalise(const char *tm, char fill, char out[14]);
/* Normalise a DA value: "YYYYMMDD" (ACR-NEMA dots dropped); false if not a date. */
bool mira__date_normalise(const char *da, char out[9]);
/* ASCII lower case copy (owned) for case-insensitive name columns. */
char *mira__fold_case(const char *s);

/* ------------------------------------------------------------------ schema */

/* Create or migrate the schema to the current version (in a transaction). */
bool mira__schema_migrate(mira__db *db, mira_error **err);
/* The current schema version. */
int mira__schema_version(void);

/* ------------------------------------------------------------------ the archive */

typedef struct mira__pending mira__pending;

struct mira_archive {
    char *dir;
    char *blobs;  /* dir/blobs */
    char *tmp;    /* dir/tmp/<pid>-<random>: this process's files in progress */
    int tmp_lock; /* flock'd lock file in tmp, held while the archive is open */
    char *index;  /* "sqlite:PATH" or a PostgreSQL connection string */
    bool postgres;
    mira_duplicate_policy duplicates;
    char *storage_ts; /* NULL: as received */
    bool names_ci;

    /* connections for readers: a free list */
    pthread_mutex_t pool_lock;
    mira__db **pool;
    size_t pool_len, pool_cap;

    /* the committer: stores wait in a queue, one thread commits them in batches */
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;    /* new work, or stop */
    pthread_cond_t done_cond; /* a batch was committed */
    mira__pending *q_head, *q_tail;
    size_t q_len;
    bool stopping;
    bool committer_started;
    pthread_t committer;
    mira__db *writer;
    uint64_t tmp_counter;

    /* committed stores whose storing thread has not renamed its blob into place yet: a later
     * commit replacing one of them must not unlink a blob that is about to appear (store.c) */
    pthread_mutex_t place_lock;
    mira__pending *placing;

    /* audit events wait here; the first waiting thread that finds no writer at work writes
     * every waiting one in one transaction, one sync for all (accounts.c) */
    pthread_mutex_t audit_lock;
    pthread_cond_t audit_cond; /* a batch was written */
    struct mira__audit_wait *audit_head, *audit_tail;
    bool audit_writing;

    /* HL7 messages received wait here the same way, one transaction for all waiting (hl7.c) */
    pthread_mutex_t hl7_lock;
    pthread_cond_t hl7_cond;
    struct mira__hl7_wait *hl7_head, *hl7_tail;
    bool hl7_writing;

    /* this process as the owner of the jobs it claims ("HOST/FOLDER", jobs.c; made on first
     * use under pool_lock) */
    char job_owner[320];
};

/* A connection for this thread to use (from the pool, or new); give it back with _release. */
mira__db *mira__archive_db_acquire(mira_archive *a, mira_error **err);
void mira__archive_db_release(mira_archive *a, mira__db *db);
/* One statement in a write transaction of its own on a pooled connection, committed (rolled
 * back on failure); fn, ctx and changes as for the db's query. */
bool mira__archive_write_one(mira_archive *a, const char *sql, const mira__dbval *p, size_t n,
                             mira__db_row_fn fn, void *ctx, int64_t *changes, mira_error **err);
/* Open a new connection to the archive's index. */
mira__db *mira__archive_db_open(mira_archive *a, mira_error **err);

/*
 * Blobs are named "<SHA-256 of the SOP Instance UID, hex>-<generation>.dcm", the generation
 * a 64-bit token unique to each stored version (hex), so that a replaced version and its
 * successor never share a name; the file lives in blobs/<hex 0-1>/<hex 2-3>/. The index
 * row holds the name.
 */
#define MIRA__BLOB_NAME_MAX 96
void mira__blob_name(const char *sop_uid, uint64_t generation, char name[MIRA__BLOB_NAME_MAX]);
/* dir/blobs/ab/cd/<name> (owned), or NULL for a name that is not a blob name. */
char *mira__blob_file(const mira_archive *a, const char *name);
/* True if name has the form of a blob name. */
bool mira__blob_name_valid(const char *name);
/* A new generation token (time, process and a counter: unique across processes). */
uint64_t mira__generation(mira_archive *a);
/* Checksum of a blob's bytes: XXH3-64 as 16 hex digits. */
void mira__checksum(const void *data, size_t len, char out[17]);
/* Current UTC time as "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
void mira__now(char out[32]);

/* Finish what a killed process left in tmp/: blobs whose index rows were committed are moved
 * into place, the rest removed; pending blob deletions are carried out. */
bool mira__archive_recover(mira_archive *a, mira__db *db, mira_error **err);

/* Move a committed blob from tmp into blobs/ (making its folders if they are missing). */
bool mira__archive_place_blob(const mira_archive *a, const char *tmp_path, const char *name,
                              mira_error **err);
/* Unlink the blobs listed in blob_deletions that no row names, and empty the list. */
bool mira__archive_finish_deletions(mira_archive *a, mira__db *db, mira_error **err);

/* Store data as a new version of its instance whatever the duplicate policy (modify). */
bool mira__archive_store_replace(mira_archive *a, const void *data, size_t len, const char *what,
                                 mira_store_result *res, mira_error **err);

/* A blob written to the tmp folder while it is received (the C-STORE SCP). _new returns NULL
 * when the file cannot be made (the blob is then written by the store); _feed takes everything
 * received so far (page-aligned, at the same address or moved) and writes the whole blocks not
 * written yet; _free closes and removes what is left. */
typedef struct mira__blob_writer mira__blob_writer;
mira__blob_writer *mira__blob_writer_new(mira_archive *a);
void mira__blob_writer_feed(mira__blob_writer *w, const uint8_t *data, size_t len);
void mira__blob_writer_free(mira__blob_writer *w);

/* mira_archive_store_memory of data received while w (or NULL) wrote it; what names it in
 * errors. Takes ownership of w in every case. */
bool mira__archive_store_received(mira_archive *a, const void *data, size_t len,
                                  mira__blob_writer *w, const char *what, mira_store_result *res,
                                  mira_error **err);

/* The committer thread (store.c). */
void mira__store_shutdown(mira_archive *a);

#endif
