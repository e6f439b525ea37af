/* The index schema and its migrations, one SQL text for both backends. */
#include "archive/archive_int.h"

#include <stdio.h>
#include <string.h>

/*
 * Each migration brings the schema from version i to i + 1 and runs in the same transaction
 * as the update of schema_version, so an interrupted migration leaves the old version.
 * Migrations are append-only: a released one is never edited.
 *
 * Written for both backends with three placeholders: @PK@ (an auto-increment 64-bit primary
 * key), @BIG@ (a 64-bit integer) and @PAT@ (the operator class that lets PostgreSQL use an
 * index for prefix LIKE; nothing for SQLite, whose GLOB uses a plain index).
 *
 * Every level keeps the columns of its keys (keys.c): text as written in the file (UTF-8,
 * padding removed, multiple values joined with '\'), NULL when absent or empty; person names
 * also lower-cased in <column>_ci, times normalised to HHMMSS.FFFFFF in <column>_n.
 */

static const char *const migration_1 =
    "CREATE TABLE patients ("
    " pk @PK@,"
    " patient_id TEXT NOT NULL,"
    " issuer TEXT NOT NULL DEFAULT '',"
    " patient_name TEXT, patient_name_ci TEXT,"
    " birth_date TEXT, birth_time TEXT, birth_time_n TEXT,"
    " sex TEXT, other_ids TEXT, other_names TEXT, other_names_ci TEXT,"
    " ethnic_group TEXT, comments TEXT,"
    " num_studies @BIG@ NOT NULL DEFAULT 0, num_series @BIG@ NOT NULL DEFAULT 0,"
    " num_instances @BIG@ NOT NULL DEFAULT 0, size_bytes @BIG@ NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " UNIQUE (patient_id, issuer));"
    "CREATE INDEX patients_name ON patients (patient_name @PAT@);"
    "CREATE INDEX patients_name_ci ON patients (patient_name_ci @PAT@);"
    "CREATE INDEX patients_id ON patients (patient_id @PAT@);"
    ""
    "CREATE TABLE studies ("
    " pk @PK@,"
    " patient_pk @BIG@ NOT NULL REFERENCES patients (pk),"
    " study_uid TEXT NOT NULL UNIQUE,"
    " study_date TEXT, study_time TEXT, study_time_n TEXT,"
    " accession TEXT, study_id TEXT, study_description TEXT,"
    " referring_physician TEXT, referring_physician_ci TEXT,"
    " reading_physicians TEXT, reading_physicians_ci TEXT,"
    " admitting_diagnoses TEXT, patient_age TEXT, patient_size TEXT, patient_weight TEXT,"
    " occupation TEXT, additional_history TEXT,"
    " modalities TEXT, sop_classes TEXT,"
    " num_series @BIG@ NOT NULL DEFAULT 0, num_instances @BIG@ NOT NULL DEFAULT 0,"
    " size_bytes @BIG@ NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX studies_patient ON studies (patient_pk);"
    "CREATE INDEX studies_date ON studies (study_date, study_time_n);"
    "CREATE INDEX studies_accession ON studies (accession);"
    "CREATE INDEX studies_updated ON studies (updated_at);"
    ""
    "CREATE TABLE study_procedure_codes ("
    " owner_pk @BIG@ NOT NULL REFERENCES studies (pk) ON DELETE CASCADE,"
    " item INTEGER NOT NULL,"
    " code_value TEXT, scheme TEXT, scheme_version TEXT, meaning TEXT);"
    "CREATE INDEX study_procedure_codes_owner ON study_procedure_codes (owner_pk);"
    ""
    "CREATE TABLE series ("
    " pk @PK@,"
    " study_pk @BIG@ NOT NULL REFERENCES studies (pk),"
    " series_uid TEXT NOT NULL UNIQUE,"
    " series_date TEXT, series_time TEXT, series_time_n TEXT,"
    " modality TEXT, manufacturer TEXT, institution_name TEXT, station_name TEXT,"
    " series_description TEXT, department_name TEXT,"
    " performing_physician TEXT, performing_physician_ci TEXT,"
    " operators_name TEXT, operators_name_ci TEXT,"
    " model_name TEXT, body_part TEXT, protocol_name TEXT,"
    " series_number @BIG@, frame_of_reference_uid TEXT, laterality TEXT,"
    " pps_start_date TEXT, pps_start_time TEXT, pps_start_time_n TEXT,"
    " num_instances @BIG@ NOT NULL DEFAULT 0, size_bytes @BIG@ NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX series_study ON series (study_pk);"
    "CREATE INDEX series_modality ON series (modality);"
    ""
    "CREATE TABLE series_requests ("
    " owner_pk @BIG@ NOT NULL REFERENCES series (pk) ON DELETE CASCADE,"
    " item INTEGER NOT NULL,"
    " accession TEXT, requested_procedure_description TEXT, sps_description TEXT,"
    " sps_id TEXT, requested_procedure_id TEXT);"
    "CREATE INDEX series_requests_owner ON series_requests (owner_pk);"
    ""
    "CREATE TABLE instances ("
    " pk @PK@,"
    " series_pk @BIG@ NOT NULL REFERENCES series (pk),"
    " sop_uid TEXT NOT NULL UNIQUE,"
    " sop_class_uid TEXT, image_type TEXT,"
    " acquisition_date TEXT, acquisition_time TEXT, acquisition_time_n TEXT,"
    " content_date TEXT, content_time TEXT, content_time_n TEXT,"
    " transfer_syntax TEXT, instance_number @BIG@, number_of_frames @BIG@,"
    " rows @BIG@, columns @BIG@, bits_allocated @BIG@,"
    " blob TEXT NOT NULL, size_bytes @BIG@ NOT NULL, checksum TEXT NOT NULL,"
    " received_at TEXT NOT NULL);"
    "CREATE INDEX instances_series ON instances (series_pk, instance_number);"
    "CREATE INDEX instances_blob ON instances (blob);"
    ""
    /* each value of the multi-valued keys (and sequence-free lists), for exact matching */
    "CREATE TABLE multi_values ("
    " owner_level INTEGER NOT NULL, owner_pk @BIG@ NOT NULL, tag @BIG@ NOT NULL,"
    " value TEXT NOT NULL, value_ci TEXT);"
    "CREATE INDEX multi_values_owner ON multi_values (owner_level, owner_pk);"
    "CREATE INDEX multi_values_value ON multi_values (tag, value);"
    ""
    /* the history of mira_archive_modify: one row per changed attribute of an entity */
    "CREATE TABLE modifications ("
    " pk @PK@, at TEXT NOT NULL, level INTEGER NOT NULL, entity TEXT NOT NULL,"
    " tag @BIG@ NOT NULL, old_value TEXT, new_value TEXT, reason TEXT,"
    " instances @BIG@ NOT NULL);"
    "CREATE INDEX modifications_entity ON modifications (entity);"
    ""
    /* blobs whose rows were deleted: removed from disk after the commit (and on recovery) */
    "CREATE TABLE blob_deletions (blob TEXT PRIMARY KEY, checksum TEXT NOT NULL);";

/*
 * Version 2: the worklist (scheduled procedure steps, from `mira worklist add` and later from
 * HL7 orders; linked to the study that arrives with the accession number), Modality Performed
 * Procedure Steps and Storage Commitment transactions.
 */
static const char *const migration_2 =
    "CREATE TABLE worklist ("
    " pk @PK@, accession TEXT, requested_procedure_id TEXT, sps_id TEXT, patient_id TEXT,"
    " patient_name TEXT, modality TEXT, station_aet TEXT, start_date TEXT, start_time TEXT,"
    " performing_physician TEXT, procedure_description TEXT, study_uid TEXT,"
    " status TEXT NOT NULL, source TEXT NOT NULL, placer_order TEXT, filler_order TEXT,"
    " item TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX worklist_start ON worklist (start_date, start_time);"
    "CREATE INDEX worklist_accession ON worklist (accession);"
    "CREATE INDEX worklist_study ON worklist (study_uid);"
    "CREATE INDEX worklist_orders ON worklist (placer_order, filler_order);"
    ""
    "CREATE TABLE mpps ("
    " pk @PK@, sop_uid TEXT NOT NULL UNIQUE, status TEXT NOT NULL,"
    " worklist_pk @BIG@ REFERENCES worklist (pk) ON DELETE SET NULL, accession TEXT,"
    " study_uid TEXT, patient_id TEXT, station_aet TEXT, modality TEXT,"
    " attributes TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX mpps_worklist ON mpps (worklist_pk);"
    ""
    "CREATE TABLE storage_commitments ("
    " pk @PK@, transaction_uid TEXT NOT NULL, requestor TEXT NOT NULL,"
    " instances @BIG@ NOT NULL, failures @BIG@ NOT NULL, received_at TEXT NOT NULL,"
    " reported_at TEXT, reported_how TEXT);"
    "CREATE INDEX storage_commitments_transaction ON storage_commitments (transaction_uid);";

/*
 * Version 3: storage commitment reports kept until delivered (PS3.4 J.3.3). A row whose
 * report (the event information as DICOM JSON) is not NULL is still to be delivered: not
 * before retry_at (Unix seconds), nor after retry_until; claim is the token of the attempt
 * that holds it (retry_at is then the end of its lease), so that two threads or two servers
 * never send it at once. attempts counts those made on new associations.
 */
static const char *const migration_3 =
    "ALTER TABLE storage_commitments ADD COLUMN event_type INTEGER;"
    "ALTER TABLE storage_commitments ADD COLUMN report TEXT;"
    "ALTER TABLE storage_commitments ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE storage_commitments ADD COLUMN retry_at @BIG@;"
    "ALTER TABLE storage_commitments ADD COLUMN retry_until @BIG@;"
    "ALTER TABLE storage_commitments ADD COLUMN claim @BIG@;"
    "CREATE INDEX storage_commitments_retry ON storage_commitments (retry_at);";

/*
 * Version 4: accounts and the audit log (include/mira/accounts.h). A password is kept only as
 * its Argon2id hash in PHC form, a token only as the SHA-256 (hex) of its text, looked up by
 * that hash (unique index); expires_at is Unix seconds. The audit log is append-only: the
 * backend-specific part below (triggers) makes the database refuse UPDATE and DELETE on it.
 * Users are named in audit rows by name, not by key, so that removing a user keeps its trail.
 */
static const char *const migration_4 =
    "CREATE TABLE users ("
    " pk @PK@, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, password_hash TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE tokens ("
    " pk @PK@, user_pk @BIG@ NOT NULL REFERENCES users (pk) ON DELETE CASCADE,"
    " hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, expires_at @BIG@ NOT NULL,"
    " revoked_at TEXT, source TEXT NOT NULL);"
    "CREATE INDEX tokens_user ON tokens (user_pk);"
    "CREATE TABLE audit ("
    " pk @PK@, at TEXT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL,"
    " event TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, studies TEXT NOT NULL,"
    " series TEXT NOT NULL, peer TEXT NOT NULL, status INTEGER NOT NULL, detail TEXT NOT NULL);"
    "CREATE INDEX audit_at ON audit (at);"
    "CREATE INDEX audit_user ON audit (user_name, at);";

/*
 * Version 5: the metadata of each instance as WADO-RS answers it (PS3.18 10.4.1.1.2), made
 * when the instance is stored: its data set in the DICOM JSON model, without the bulk data
 * (Pixel Data and binary values over 1 KiB), which are BulkDataURIs relative to the
 * instance's WADO-RS URL ("@/7FE00010": http.c writes the base of the request in front).
 * Series and study metadata are then one query, never a read of every file. Kept in a table
 * of its own so that the rows of instances stay small for the searches that scan them.
 * Instances stored before version 5 have no row: their metadata is made from the file when
 * asked for (archive.c).
 */
static const char *const migration_5 =
    "CREATE TABLE instance_metadata ("
    " instance_pk @BIG@ PRIMARY KEY REFERENCES instances (pk), json TEXT NOT NULL);";

/*
 * Version 6: the job queue (include/mira/jobs.h, jobs.c). A job is queued, then claimed by
 * one worker of one `mira serve` (running, owner naming that process), then done, failed or
 * cancelled. params and result are JSON text; progress counts instances; cancel_requested
 * asks the worker of a running job to stop at its next instance. Kept in the index so that it
 * survives restarts and every serve on one index shares the queue. Times are UTC ISO 8601.
 */
static const char *const migration_6 =
    "CREATE TABLE jobs ("
    " id @PK@, kind TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,"
    " created_by TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,"
    " progress_done @BIG@ NOT NULL DEFAULT 0, progress_total @BIG@ NOT NULL DEFAULT 0,"
    " result TEXT, error TEXT, owner TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL);"
    "CREATE INDEX jobs_state ON jobs (state, id);"
    "CREATE INDEX jobs_created_by ON jobs (created_by, id);";

/*
 * Version 7: the HL7 v2 messages received over MLLP (include/mira/hl7.h, hl7.c), each kept
 * before it is acknowledged, accepted (ack_code AA) or rejected (AE, AR, with error saying
 * why). sender is MSH-3^MSH-4 as encoded; an accepted message is unique by sender and MSH-10
 * (a partial unique index: rejected ones may repeat, corrected, under the same id), and a
 * repeat of it counts in duplicates. The text is kept as received when it is UTF-8 without
 * NUL (encoding 'text'), else in base64 ('base64'), so that any bytes a sender sends can be
 * inspected. processed_at and process_error are for the step that acts on the message.
 */
static const char *const migration_7 =
    "CREATE TABLE hl7_messages ("
    " id @PK@, received_at TEXT NOT NULL, peer TEXT NOT NULL, sender TEXT NOT NULL,"
    " control_id TEXT, message_type TEXT, version TEXT, ack_code TEXT NOT NULL, error TEXT,"
    " encoding TEXT NOT NULL, message TEXT NOT NULL,"
    " duplicates @BIG@ NOT NULL DEFAULT 0, processed_at TEXT, process_error TEXT);"
    "CREATE UNIQUE INDEX hl7_messages_control ON hl7_messages (sender, control_id)"
    " WHERE ack_code = 'AA';"
    "CREATE INDEX hl7_messages_ack ON hl7_messages (ack_code, id);"
    "CREATE INDEX hl7_messages_id ON hl7_messages (control_id);";

/*
 * Version 8: what the HL7 messages say (hl7_apply.c). emr_patients: each patient an ADT
 * message named, by the first identifier of PID-3 (the MR one when there is one) and its
 * assigning authority, with the demographics of the latest message; merged_into the
 * survivor of an A40 merge. emr_identifiers: every identifier of PID-3 (and merged ones). reports:
 * each ORU^R01 report, by accession number, in versions (1, 2... as they came; status P, F,
 * C from OBR-25), the OBX text in order; message_id makes acting on a message twice a no-op.
 * Orders (ORM^O01, OMI^O23) become worklist entries (source 'hl7'). The partial index finds
 * the accepted messages not acted on yet.
 */
static const char *const migration_8 =
    "CREATE TABLE emr_patients ("
    " pk @PK@, patient_id TEXT NOT NULL, issuer TEXT NOT NULL DEFAULT '',"
    " name TEXT, birth_date TEXT, sex TEXT, address TEXT, phone TEXT,"
    " merged_into @BIG@ REFERENCES emr_patients (pk), message_id @BIG@,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (patient_id, issuer));"
    "CREATE TABLE emr_identifiers ("
    " patient_pk @BIG@ NOT NULL REFERENCES emr_patients (pk) ON DELETE CASCADE,"
    " id TEXT NOT NULL, issuer TEXT NOT NULL DEFAULT '', type TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX emr_identifiers_id ON emr_identifiers (id, issuer);"
    "CREATE INDEX emr_identifiers_patient ON emr_identifiers (patient_pk);"
    "CREATE TABLE reports ("
    " pk @PK@, accession TEXT, patient_id TEXT, issuer TEXT NOT NULL DEFAULT '',"
    " version INTEGER NOT NULL, status TEXT, observed_at TEXT, procedure_text TEXT,"
    " text TEXT NOT NULL, message_id @BIG@ NOT NULL UNIQUE, created_at TEXT NOT NULL);"
    "CREATE INDEX reports_accession ON reports (accession, version);"
    "CREATE INDEX reports_patient ON reports (patient_id, issuer);"
    "CREATE INDEX hl7_messages_todo ON hl7_messages (id)"
    " WHERE processed_at IS NULL AND ack_code = 'AA';";

/*
 * Version 9: a patient is unique by Patient ID and issuer only when it has a Patient ID; files
 * without one no longer make a single patient of everyone (store.c matches them by name, birth
 * date and sex). The common text is empty: the UNIQUE constraint of version 1 is dropped by
 * each backend its own way (backend_specific), then the partial unique index replaces it.
 * SQLite cannot drop a table constraint: its patients table is rebuilt, which it does only
 * with foreign keys off, in a transaction of its own (own_transaction).
 */
static const char *const migration_9 = "";

/*
 * Version 10: analysis results of studies (mira features --study): each feature of a method
 * (its IBSI tag) with its value as text (%.17g; NULL when not defined), the latest computation
 * of a method replacing the one before. Keyed by Study Instance UID: results go with their
 * study when it is deleted (manage.c).
 */
static const char *const migration_10 =
    "CREATE TABLE analysis_results ("
    " pk @PK@, study_uid TEXT NOT NULL, method TEXT NOT NULL, tag TEXT NOT NULL, value TEXT,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX analysis_results_study ON analysis_results (study_uid, method);";

static const char *const migrations[] = {migration_1, migration_2, migration_3, migration_4,
                                         migration_5, migration_6, migration_7, migration_8,
                                         migration_9, migration_10};

/* On SQLite, the migrations (by version - 1) that run alone, with foreign keys off. */
static const bool own_transaction[] = {false, false, false, false, false,
                                       false, false, false, true,  false};

/*
 * What a migration needs that the two backends spell differently, run after it in the same
 * transaction. By version; NULL, or no entry: nothing. Version 4: the audit table refuses
 * UPDATE and DELETE (and, in PostgreSQL, TRUNCATE) by a trigger that raises an error. (SQLite's
 * DROP TABLE and PostgreSQL's owner disabling the trigger are outside what a trigger can stop:
 * the index's owner can always destroy it; the point is that no mira code path, bug or SQL
 * slip can rewrite history.)
 */
static const struct {
    const char *sqlite, *postgres;
} backend_specific[] = {
    {NULL, NULL},
    {NULL, NULL},
    {NULL, NULL},
    {"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
     "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
     "CREATE OR REPLACE FUNCTION mira_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
     " $$BEGIN RAISE EXCEPTION 'the audit log is append-only'; END$$;"
     "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
     " FOR EACH ROW EXECUTE FUNCTION mira_audit_append_only();"
     "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
     " FOR EACH STATEMENT EXECUTE FUNCTION mira_audit_append_only();"},
    {NULL, NULL},
    {NULL, NULL},
    {NULL, NULL},
    {NULL, NULL},
    {"CREATE TABLE patients_v9 ("
     " pk INTEGER PRIMARY KEY,"
     " patient_id TEXT NOT NULL,"
     " issuer TEXT NOT NULL DEFAULT '',"
     " patient_name TEXT, patient_name_ci TEXT,"
     " birth_date TEXT, birth_time TEXT, birth_time_n TEXT,"
     " sex TEXT, other_ids TEXT, other_names TEXT, other_names_ci TEXT,"
     " ethnic_group TEXT, comments TEXT,"
     " num_studies INTEGER NOT NULL DEFAULT 0, num_series INTEGER NOT NULL DEFAULT 0,"
     " num_instances INTEGER NOT NULL DEFAULT 0, size_bytes INTEGER NOT NULL DEFAULT 0,"
     " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
     "INSERT INTO patients_v9 (pk, patient_id, issuer, patient_name, patient_name_ci, birth_date,"
     " birth_time, birth_time_n, sex, other_ids, other_names, other_names_ci, ethnic_group,"
     " comments, num_studies, num_series, num_instances, size_bytes, created_at, updated_at)"
     " SELECT pk, patient_id, issuer, patient_name, patient_name_ci, birth_date, birth_time,"
     " birth_time_n, sex, other_ids, other_names, other_names_ci, ethnic_group, comments,"
     " num_studies, num_series, num_instances, size_bytes, created_at, updated_at FROM patients;"
     "DROP TABLE patients;"
     "ALTER TABLE patients_v9 RENAME TO patients;"
     "CREATE INDEX patients_name ON patients (patient_name);"
     "CREATE INDEX patients_name_ci ON patients (patient_name_ci);"
     "CREATE INDEX patients_id ON patients (patient_id);"
     "CREATE UNIQUE INDEX patients_key ON patients (patient_id, issuer) WHERE patient_id <> '';",
     "ALTER TABLE patients DROP CONSTRAINT patients_patient_id_issuer_key;"
     "CREATE UNIQUE INDEX patients_key ON patients (patient_id, issuer) WHERE patient_id <> '';"},
};

/*
 * PostgreSQL only, after the migration of the same index, where the server has the pg_trgm
 * extension (Debian's postgresql package does; it is a trusted extension, so the index's owner
 * may create it): trigram indexes on the patients' names, so that a wild card inside a name
 * (*SON*, the usual worklist search) is a bitmap index scan and not a scan of every patient.
 * A btree serves prefixes only, in either backend; SQLite has no such index and scans (its
 * patients table is small beside the studies it leads to). Without the extension (or the
 * right to create it) the migration goes on without them: a query is as right, only slower.
 * By version; NULL, or no entry: nothing for that version.
 */
static const char *const postgres_trigrams[] = {
    "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    "CREATE INDEX patients_name_trgm ON patients USING gin (patient_name gin_trgm_ops);"
    "CREATE INDEX patients_name_ci_trgm ON patients USING gin (patient_name_ci gin_trgm_ops);",
};

int mira__schema_version(void)
{
    return (int)(sizeof migrations / sizeof migrations[0]);
}

/* The migration text for a backend (owned). */
static char *dialect(const char *sql, bool postgres)
{
    static const struct {
        const char *token, *sqlite, *postgres;
    } subs[] = {
        {"@PK@", "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"@BIG@", "INTEGER", "BIGINT"},
        {"@PAT@", "", "text_pattern_ops"},
    };
    size_t cap = strlen(sql) * 2 + 1024, n = 0;
    char *out = mira_malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = sql; *p;) {
        size_t i;
        for (i = 0; i < sizeof subs / sizeof subs[0]; i++) {
            size_t tl = strlen(subs[i].token);
            if (strncmp(p, subs[i].token, tl) == 0) {
                const char *r = postgres ? subs[i].postgres : subs[i].sqlite;
                size_t rl = strlen(r);
                memcpy(out + n, r, rl);
                n += rl;
                p += tl;
                break;
            }
        }
        if (i == sizeof subs / sizeof subs[0])
            out[n++] = *p++;
    }
    out[n] = 0;
    return out;
}

/*
 * The migrations from the index's version on, in one transaction; on SQLite, one that needs a
 * transaction of its own ends the run before it (*next is then its version - 1), unless it is
 * the first (alone true: the caller turned foreign keys off for it). *next is the schema
 * version when all are done.
 */
static bool migrate_some(mira__db *db, bool postgres, bool alone, int64_t *next, mira_error **err)
{
    if (!db->ops->begin_write(db, err))
        return false;
    /* the version table itself is the same on both backends */
    if (!mira__db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                       err))
        goto fail;
    int64_t version = 0;
    bool found = false;
    if (!mira__db_query_int(db, "SELECT version FROM schema_version", NULL, 0, &version, &found,
                            err))
        goto fail;
    if (!found && !mira__db_exec(db, "INSERT INTO schema_version (version) VALUES (0)", err))
        goto fail;
    if (version > mira__schema_version()) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Index too new",
                       "the index has schema version %lld; this mira knows versions up to %d "
                       "(use a newer mira)",
                       (long long)version, mira__schema_version());
        goto fail;
    }
    int64_t v = version;
    for (; v < mira__schema_version(); v++) {
        bool own = !postgres && own_transaction[v];
        if (own && (v > version || !alone))
            break; /* after a commit, with foreign keys off */
        char *sql = dialect(migrations[v], postgres);
        if (!sql) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "schema migration %lld", (long long)v + 1);
            goto fail;
        }
        bool ok = !*sql || mira__db_exec(db, sql, err);
        mira_free(sql);
        if (!ok) {
            mira_error_prefix(err, "schema migration to version %lld: ", (long long)v + 1);
            goto fail;
        }
        const char *extra =
            (size_t)v < sizeof backend_specific / sizeof backend_specific[0]
                ? (postgres ? backend_specific[v].postgres : backend_specific[v].sqlite)
                : NULL;
        if (extra && !mira__db_exec(db, extra, err)) {
            mira_error_prefix(err, "schema migration to version %lld: ", (long long)v + 1);
            goto fail;
        }
        if (own) {
            /* what the rebuild must not have broken (a row is a foreign key violation) */
            int64_t bad = 0;
            bool any = false;
            if (!mira__db_query_int(db, "PRAGMA foreign_key_check", NULL, 0, &bad, &any, err))
                goto fail;
            if (any) {
                mira_error_set(err, MIRA_ERR_INVALID, "Index damaged",
                               "schema migration to version %lld: the index has rows whose "
                               "parent is missing (mira check --repair)",
                               (long long)v + 1);
                goto fail;
            }
        }
        if (postgres && (size_t)v < sizeof postgres_trigrams / sizeof postgres_trigrams[0] &&
            postgres_trigrams[v]) {
            /* in a savepoint: a server without pg_trgm fails the statement, not the migration */
            if (!mira__db_exec(db, "SAVEPOINT trigrams", err))
                goto fail;
            if (mira__db_exec(db, postgres_trigrams[v], NULL)) {
                if (!mira__db_exec(db, "RELEASE SAVEPOINT trigrams", err))
                    goto fail;
            } else if (!mira__db_exec(db, "ROLLBACK TO SAVEPOINT trigrams", err) ||
                       !mira__db_exec(db, "RELEASE SAVEPOINT trigrams", err)) {
                goto fail;
            }
        }
        mira__dbval p = mira__db_int(v + 1);
        if (!db->ops->query(db, "UPDATE schema_version SET version = ?", &p, 1, NULL, NULL, NULL,
                            err))
            goto fail;
    }
    *next = v;
    return mira__db_commit(db, err);
fail:
    mira__db_rollback(db);
    return false;
}

bool mira__schema_migrate(mira__db *db, mira_error **err)
{
    bool postgres = strcmp(db->ops->name, "postgresql") == 0;
    int64_t next = 0;
    bool alone = false;
    for (;;) {
        if (alone && !mira__db_exec(db, "PRAGMA foreign_keys=OFF", err))
            return false;
        bool ok = migrate_some(db, postgres, alone, &next, err);
        if (alone && !mira__db_exec(db, "PRAGMA foreign_keys=ON", ok ? err : NULL))
            ok = false;
        if (!ok)
            return false;
        if (next >= mira__schema_version())
            return true;
        alone = true; /* the next one is SQLite's own_transaction */
    }
}
