/* mira jobs: a persistent queue of work (export, send, check) in the archive's index. */
#ifndef MIRA_JOBS_H
#define MIRA_JOBS_H

#include "mira/archive.h"
#include "mira/core.h"
#include "mira/dimse.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A job is a row of the archive's index (table jobs, schema version 6), so the queue survives
 * restarts and every `mira serve` on one index shares it. Its life:
 *
 *   queued --claim--> running --finish--> done | failed | cancelled
 *   queued --cancel--> cancelled          running --requeue / recover--> queued
 *
 * Claiming is atomic on both backends (one UPDATE of the oldest queued row in a write
 * transaction; PostgreSQL also skips rows locked by another claimer), so two workers, of one
 * process or of several, never run one job at once. A running job names its owner: this
 * process ("HOST/PROCESS", the archive's folder of this process under tmp/). When a serve
 * starts, mira_jobs_recover puts back to queued the running jobs of this host whose process
 * is gone (a crash): every kind must therefore be safe to run again from the start.
 *
 * What a job does is the caller's: the archive keeps its kind and parameters (JSON text) and,
 * once it has ended, its result (JSON text) or error. Progress counts what the kind counts
 * (instances for mira's kinds).
 */

typedef enum mira_job_state {
    MIRA_JOB_QUEUED = 0,
    MIRA_JOB_RUNNING = 1,
    MIRA_JOB_DONE = 2,
    MIRA_JOB_FAILED = 3,
    MIRA_JOB_CANCELLED = 4,
} mira_job_state;

/* "queued", "running", "done", "failed", "cancelled". */
MIRA_API const char *mira_job_state_name(mira_job_state state);
/* From its name; false if none. */
MIRA_API bool mira_job_state_from_name(const char *name, mira_job_state *out);

/* A job as read from the index. From mira_job_get and mira_job_claim: owned by the caller
 * (mira_job_free); in a mira_job_fn: borrowed for the call. Absent texts are NULL. */
typedef struct mira_job {
    int64_t id;
    const char *kind;
    mira_job_state state;
    const char *params;     /* JSON text */
    const char *created_by; /* the user who submitted it */
    const char *created_at, *started_at, *finished_at, *updated_at; /* UTC ISO 8601 */
    uint64_t progress_done, progress_total;
    const char *result; /* JSON text once done (a kind may also leave one when it failed) */
    const char *error;  /* why it failed */
    const char *owner;  /* the process running it (or that ran it last) */
    bool cancel_requested;
    int64_t attempts; /* times it was claimed */
} mira_job;

/* _free(NULL) is a no-op. */
MIRA_API void mira_job_free(mira_job *job);

/* A job as a JSON object (owned by the caller, mira_free; NULL without memory): "id", "kind",
 * "state", "params" (the object), "created_by", "created_at", "started_at", "finished_at"
 * (null until then), "progress": {"done", "total"}, "result" (the object, or null), "error",
 * "owner" (null until claimed), "cancel_requested", "attempts". The REST API and `mira job`
 * answer this. */
MIRA_API char *mira_job_to_json(const mira_job *job);

/* The longest kind (letters, digits, '-', '_'), and the largest params, result or error. */
#define MIRA_JOB_KIND_MAX 32
#define MIRA_JOB_TEXT_MAX (1024 * 1024)

/*
 * Queue a job: kind (1 to MIRA_JOB_KIND_MAX letters, digits, '-' and '_'), its parameters as
 * JSON text (checked to be JSON), the user submitting it. Its id goes to *id (may be NULL).
 * MIRA_ERR_ARGUMENT for a bad kind or parameters.
 */
MIRA_API bool mira_job_submit(mira_archive *a, const char *kind, const char *params,
                              const char *created_by, int64_t *id, mira_error **err);

/* A job by id (owned by the caller), or NULL with MIRA_ERR_NOT_FOUND. */
MIRA_API mira_job *mira_job_get(mira_archive *a, int64_t id, mira_error **err);

typedef struct mira_job_list_options {
    int state;              /* -1: any; else a mira_job_state */
    const char *created_by; /* NULL: anyone's */
    uint64_t limit;         /* 0: no limit */
    uint64_t offset;
} mira_job_list_options;

MIRA_API void mira_job_list_options_init(mira_job_list_options *opt);

/* Told of each job (borrowed); return false to stop. */
typedef bool (*mira_job_fn)(void *ctx, const mira_job *job);

/* The jobs that match, newest first. opt may be NULL (all). */
MIRA_API bool mira_job_list(mira_archive *a, const mira_job_list_options *opt, mira_job_fn fn,
                            void *ctx, mira_error **err);

/*
 * Cancel a job: a queued one becomes cancelled at once; a running one is asked to stop (its
 * worker sees it at its next instance and ends it cancelled). *state (may be NULL) receives
 * the state after the call (cancelled or running). MIRA_ERR_NOT_FOUND if there is no such
 * job, MIRA_ERR_CONFLICT if it has ended already.
 */
MIRA_API bool mira_job_cancel(mira_archive *a, int64_t id, mira_job_state *state,
                              mira_error **err);

/* This process's name as the owner of the jobs it claims ("HOST/FOLDER": borrowed). */
MIRA_API const char *mira_jobs_owner(mira_archive *a);

/*
 * Claim the oldest queued job of one of the kinds given (NULL, 0: any kind) for this process:
 * it becomes running, owned by mira_jobs_owner, its progress reset. *job receives it (owned
 * by the caller), or NULL when none is queued (and true is returned).
 */
MIRA_API bool mira_job_claim(mira_archive *a, const char *const *kinds, size_t nkinds,
                             mira_job **job, mira_error **err);

/*
 * Record the progress of a job this process runs. *cancel (may be NULL) is set when the job
 * should stop: a cancel was requested, or the job is no longer this process's running job
 * (recovered by another process after this one was taken for dead).
 */
MIRA_API bool mira_job_progress(mira_archive *a, int64_t id, uint64_t done, uint64_t total,
                                bool *cancel, mira_error **err);

/*
 * End a job this process runs: state done, failed or cancelled, with its result (JSON text,
 * may be NULL) and error (may be NULL). MIRA_ERR_CONFLICT if it is not this process's running
 * job; MIRA_ERR_ARGUMENT for another state or a result that is not JSON.
 */
MIRA_API bool mira_job_finish(mira_archive *a, int64_t id, mira_job_state state,
                              const char *result, const char *error, mira_error **err);

/* Put a job this process runs back in the queue (a clean shutdown): it will run again from
 * the start. A job that is not this process's running job is left alone. */
MIRA_API bool mira_job_requeue(mira_archive *a, int64_t id, mira_error **err);

/* Put back in the queue the running jobs of this host whose process is gone (their folder
 * under the archive's tmp/ is unlocked or removed). *count (may be NULL) receives how many. */
MIRA_API bool mira_jobs_recover(mira_archive *a, uint64_t *count, mira_error **err);

/* ------------------------------------------------------------------ the runner */

/*
 * The kinds mira runs (src/jobs/runner.c). Parameters (JSON object) name a selection: one of
 * "patient" (a Patient ID), "study" (with "series" or not), "series", or "instances" (an
 * array of SOP Instance UIDs); a check may name none (the whole archive).
 *   export  the selection de-identified (PS3.15 Basic Profile, a secret of the job's own; with
 *           "dates": "remove" (default), "full" or "modified", "retain_uids": true or false
 *           (default)) into <archive>/jobs/<id>.zip, written atomically; result
 *           {"instances", "bytes"}.
 *   send    C-STORE of the selection to "destination", a peer's AE title; result
 *           {"destination", "instances", "sent", "failed", "failures": [{"sop_instance_uid",
 *           "status", "reason"}]}; it fails when any instance was not stored.
 *   check   mira_archive_check (deep) over the selection or the archive; result the counts of
 *           mira_check_report and "problems": [{"problem", "subject", "detail"}].
 * Progress counts instances. A running job stops at its next instance when cancelled
 * (a send: at its next association of MIRA_JOB_SEND_BATCH instances).
 */
#define MIRA_JOB_EXPORT "export"
#define MIRA_JOB_SEND "send"
#define MIRA_JOB_CHECK "check"
#define MIRA_JOB_SEND_BATCH 8

/* The file of an export job's ZIP (owned by the caller), whether or not it exists yet. */
MIRA_API char *mira_job_export_path(mira_archive *a, int64_t id);

typedef struct mira_job_runner_options {
    mira_archive *archive; /* borrowed: must outlive the runner (required) */
    int workers;           /* threads (default 1; 0 makes a runner that runs nothing) */
    int poll_seconds;      /* a look at the queue this often when not woken (default 3) */
    /* Where send jobs may go (borrowed: must outlive the runner). */
    const mira_dimse_peer *peers;
    size_t npeers;
    const char *calling_ae; /* ours, for send jobs (default "MIRA"; copied) */
    mira_log_fn log;        /* each job's start and end, failures as warnings; NULL: silent */
    void *log_ctx;
} mira_job_runner_options;

MIRA_API void mira_job_runner_options_init(mira_job_runner_options *opt);

typedef struct mira_job_runner mira_job_runner;

/* Start the worker threads: each claims the oldest queued job of mira's kinds, runs it and
 * records its end, then the next; with nothing queued it waits for mira_job_runner_wake or
 * poll_seconds. Jobs of this host left running by a dead process are put back first
 * (mira_jobs_recover). */
MIRA_API mira_job_runner *mira_job_runner_new(const mira_job_runner_options *opt,
                                              mira_error **err);
/* A job was queued: wake a waiting worker. Safe from any thread; r NULL: nothing. */
MIRA_API void mira_job_runner_wake(mira_job_runner *r);
/* Stop: running jobs stop at their next instance and go back to the queue (they run again,
 * from the start, in the next serve), then the threads are joined. _free(NULL) is a no-op. */
MIRA_API void mira_job_runner_free(mira_job_runner *r);

#ifdef __cplusplus
}
#endif

#endif
