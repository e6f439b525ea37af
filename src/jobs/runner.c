/* The job runner of mira serve: worker threads that run export, send and check jobs. */
#include "mira/deid.h"
#include "mira/jobs.h"
#include "mira/json.h"

#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Workers claim jobs from the archive's queue (src/archive/jobs.c) and run them through the
 * public API only: the selection is resolved to instances from the index when the job starts
 * (so a job run again after a crash sees the archive as it is then), each instance is one
 * step, and after each step the progress is recorded, which also tells whether the job was
 * cancelled or the runner is stopping. Stopping puts the job back in the queue; a kind is
 * always run again from the start (an export rewrites its ZIP, a send sends again: C-STORE of
 * the same instance twice is harmless, a check is read-only).
 */

struct mira_job_runner {
    mira_job_runner_options opt;
    char *calling_ae;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    uint64_t wakes;
};

static void logf_(mira_job_runner *r, mira_log_level level, const char *fmt, ...)
    MIRA_PRINTF(3, 4);
static void logf_(mira_job_runner *r, mira_log_level level, const char *fmt, ...)
{
    if (!r->opt.log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->opt.log(r->opt.log_ctx, level, line);
}

static bool stopping(mira_job_runner *r)
{
    pthread_mutex_lock(&r->lock);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return s;
}

char *mira_job_export_path(mira_archive *a, int64_t id)
{
    const char *dir = mira_archive_dir(a);
    size_t n = strlen(dir) + 48;
    char *p = mira_malloc(n);
    if (p)
        snprintf(p, n, "%s/jobs/%lld.zip", dir, (long long)id);
    return p;
}

/* ------------------------------------------------------------------ selections */

typedef struct selection {
    char **paths, **sops;
    size_t n, cap;
    bool failed;
} selection;

static void selection_free(selection *s)
{
    for (size_t i = 0; i < s->n; i++) {
        mira_free(s->paths[i]);
        mira_free(s->sops[i]);
    }
    mira_free(s->paths);
    mira_free(s->sops);
    memset(s, 0, sizeof *s);
}

static bool selection_add(selection *s, const char *sop, const char *path)
{
    for (size_t i = 0; i < s->n; i++) /* named twice ("instances": [a, a]): once */
        if (strcmp(s->sops[i], sop) == 0)
            return true;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **p = mira_realloc(s->paths, cap * sizeof *p);
        if (p)
            s->paths = p;
        char **u = p ? mira_realloc(s->sops, cap * sizeof *u) : NULL;
        if (!u) {
            s->failed = true;
            return false;
        }
        s->sops = u;
        s->cap = cap;
    }
    s->paths[s->n] = mira_strdup(path);
    s->sops[s->n] = mira_strdup(sop);
    if (!s->paths[s->n] || !s->sops[s->n]) {
        mira_free(s->paths[s->n]);
        mira_free(s->sops[s->n]);
        s->failed = true;
        return false;
    }
    s->n++;
    return true;
}

static bool take_ref(void *ctx, const mira_instance_ref *ref)
{
    return selection_add(ctx, ref->sop_uid, ref->path);
}

/* Up to 4096 Study Instance UIDs found. */
typedef struct uid_list {
    char v[4096][65];
    size_t n;
} uid_list;

static bool take_study(void *ctx, const mira_dataset *m)
{
    uid_list *l = ctx;
    mira_element *e = mira_dataset_get(m, 0x0020000Du);
    char *t = e ? mira_element_get_text(e, NULL) : NULL;
    bool seen = !t || !*t;
    for (size_t i = 0; !seen && i < l->n; i++)
        seen = strcmp(l->v[i], t) == 0;
    if (!seen && l->n < 4096)
        snprintf(l->v[l->n++], sizeof l->v[0], "%s", t);
    mira_free(t);
    return true;
}

/* The studies of a level's key: a patient's (Patient ID, matched exactly: wildcards are taken
 * as themselves by the caller's checks) or a series'. */
static bool studies_of(mira_archive *a, mira_tag key, mira_vr vr, const char *value,
                       mira_level level, uid_list *l, mira_error **err)
{
    mira_dataset *id = mira_dataset_new(NULL);
    bool ok = id && mira_dataset_set_string(id, key, vr, value, err) &&
              mira_dataset_set_string(id, 0x0020000Du, MIRA_VR_UI, "", err);
    mira_find_options fo;
    mira_find_options_init(&fo);
    fo.names_case_insensitive = 0;
    if (!id)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "resolving a selection");
    ok = ok && mira_archive_find(a, level, id, &fo, take_study, l, err);
    mira_dataset_free(id);
    return ok;
}

static const char *str_member(const mira_json *p, const char *key)
{
    const mira_json *v = mira_json_get(p, key);
    return v && mira_json_get_type(v) == MIRA_JSON_STRING ? mira_json_get_string(v, NULL) : NULL;
}

/* The instances a job's parameters name, in the archive's order. *any false: none named (a
 * check of the whole archive). A selection that matches nothing is MIRA_ERR_NOT_FOUND. */
static bool resolve(mira_archive *a, const mira_json *p, selection *s, bool *any,
                    mira_error **err)
{
    const char *patient = str_member(p, "patient"), *study = str_member(p, "study"),
               *series = str_member(p, "series");
    const mira_json *inst = mira_json_get(p, "instances");
    *any = patient || study || series || inst;
    bool ok = true;
    if (inst) {
        for (size_t i = 0; ok && i < mira_json_count(inst); i++) {
            const char *sop = mira_json_get_string(mira_json_at(inst, i), NULL);
            char *path = sop ? mira_archive_instance_path(a, sop, err) : NULL;
            ok = path && selection_add(s, sop, path);
            mira_free(path);
        }
    } else if (study) {
        ok = mira_archive_instances(a, study, series, NULL, false, take_ref, s, err);
    } else if (series || patient) {
        uid_list *l = mira_calloc(1, sizeof *l);
        ok = l && (series ? studies_of(a, 0x0020000Eu, MIRA_VR_UI, series, MIRA_LEVEL_SERIES, l,
                                       err)
                          : studies_of(a, 0x00100020u, MIRA_VR_LO, patient, MIRA_LEVEL_STUDY, l,
                                       err));
        if (!l)
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "resolving a selection");
        for (size_t i = 0; ok && l && i < l->n; i++)
            ok = mira_archive_instances(a, l->v[i], series, NULL, false, take_ref, s, err);
        mira_free(l);
    }
    if (ok && s->failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "resolving a selection");
        ok = false;
    }
    if (ok && *any && !s->n) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "Nothing selected",
                       "the archive holds no instance of the selection");
        ok = false;
    }
    return ok;
}

/* ------------------------------------------------------------------ running one job */

typedef enum stop_why { GO_ON = 0, CANCELLED = 1, SHUTDOWN = 2 } stop_why;

typedef struct run {
    mira_job_runner *r;
    mira_archive *a;
    const mira_job *job;
    uint64_t done, total;
    stop_why stop;
} run;

/* Record done of total; false when the job must stop (run->stop says why). */
static bool step(run *x, uint64_t done)
{
    x->done = done;
    if (stopping(x->r)) {
        x->stop = SHUTDOWN;
        return false;
    }
    bool cancel = false;
    mira_error *err = NULL;
    if (!mira_job_progress(x->a, x->job->id, done, x->total, &cancel, &err)) {
        logf_(x->r, MIRA_LOG_WARNING, "job %lld: progress not recorded: %s",
              (long long)x->job->id, mira_error_get_message(err));
        mira_error_free(err);
        return true; /* the work goes on; the end is recorded (or not) the same way */
    }
    if (cancel)
        x->stop = CANCELLED;
    return !cancel;
}

static char *writer_text(mira_json_writer *w)
{
    char *t = w ? mira_json_writer_finish(w, NULL, NULL) : NULL;
    mira_json_writer_free(w);
    return t;
}

/* ---- export */

typedef struct zip_file {
    int fd;
    uint64_t bytes;
} zip_file;

static bool to_file(void *ctx, const void *data, size_t len)
{
    zip_file *f = ctx;
    if (!mira__write_all(f->fd, data, len))
        return false;
    f->bytes += len;
    return true;
}

static bool run_export(run *x, const selection *s, const mira_json *params, char **result,
                       mira_error **err)
{
    char *final = mira_job_export_path(x->a, x->job->id);
    size_t n = final ? strlen(final) + 64 : 0;
    char *tmp = final ? mira_malloc(n) : NULL;
    if (!tmp) {
        mira_free(final);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "export job");
        return false;
    }
    /* the folder; the temporary file is this process's (a job recovered elsewhere writes its
     * own) and hidden from anyone looking for <id>.zip */
    snprintf(tmp, n, "%s/jobs", mira_archive_dir(x->a));
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot export", "%s: %s", tmp, strerror(errno));
        mira_free(tmp);
        mira_free(final);
        return false;
    }
    snprintf(tmp, n, "%s/jobs/.%lld.zip.%ld.tmp", mira_archive_dir(x->a), (long long)x->job->id,
             (long)getpid());
    zip_file f = {open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640), 0};
    if (f.fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot export", "%s: %s", tmp, strerror(errno));
        mira_free(tmp);
        mira_free(final);
        return false;
    }
    mira_deid_options o;
    mira_deid_options_init(&o);
    const char *dates = str_member(params, "dates");
    o.dates = !dates || strcmp(dates, "remove") == 0 ? MIRA_DEID_DATES_REMOVE
              : strcmp(dates, "full") == 0           ? MIRA_DEID_DATES_FULL
                                                     : MIRA_DEID_DATES_MODIFIED;
    const mira_json *retain = mira_json_get(params, "retain_uids");
    o.retain_uids = retain && mira_json_get_type(retain) == MIRA_JSON_TRUE;
    mira_deid_context *deid = mira_deid_context_new(&o, err);
    mira_deid_zip *z = deid ? mira_deid_zip_new(deid, to_file, &f, err) : NULL;
    bool ok = z != NULL;
    for (size_t i = 0; ok && i < s->n; i++)
        ok = mira_deid_zip_add_file(z, s->paths[i], NULL, err) && step(x, i + 1);
    bool finished = ok && mira_deid_zip_finish(z, err);
    mira_deid_zip_free(z);
    mira_deid_context_free(deid);
    if (finished && fsync(f.fd) != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot export", "%s: %s", tmp, strerror(errno));
        finished = false;
    }
    close(f.fd);
    if (finished) {
        finished = mira__commit_file(tmp, final, err); /* rename and fsync of the folder */
    } else {
        unlink(tmp);
    }
    mira_free(tmp);
    mira_free(final);
    if (!finished)
        return false;
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "instances");
    mira_json_uint(w, s->n);
    mira_json_key(w, "bytes");
    mira_json_uint(w, f.bytes);
    mira_json_end_object(w);
    *result = writer_text(w);
    return true;
}

/* ---- send */

typedef struct send_state {
    run *x;
    uint64_t sent, failed, reported;
    mira_json_writer *failures;
} send_state;

static void sent_one(void *ctx, const mira_dimse_send_report *rep)
{
    send_state *st = ctx;
    bool ok = rep->responded && mira_dimse_store_status_ok(rep->status);
    if (ok) {
        st->sent++;
    } else {
        st->failed++;
        if (st->failed <= 1000) {
            mira_json_writer *w = st->failures;
            mira_json_begin_object(w);
            mira_json_key(w, "sop_instance_uid");
            mira_json_cstring(w, rep->sop_instance_uid ? rep->sop_instance_uid : "");
            mira_json_key(w, "status");
            if (rep->responded)
                mira_json_uint(w, rep->status);
            else
                mira_json_null(w);
            mira_json_key(w, "reason");
            mira_json_cstring(w, rep->reason && *rep->reason ? rep->reason
                                 : rep->responded             ? "refused by the peer"
                                                              : "not sent");
            mira_json_end_object(w);
        }
    }
    st->reported++;
}

static bool run_send(run *x, const selection *s, const mira_json *params, char **result,
                     bool *all_stored, mira_error **err)
{
    const char *dest = str_member(params, "destination");
    const mira_dimse_peer *peer = NULL;
    for (size_t i = 0; dest && i < x->r->opt.npeers && !peer; i++)
        if (strcmp(x->r->opt.peers[i].ae_title, dest) == 0)
            peer = &x->r->opt.peers[i];
    if (!peer) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "Unknown destination",
                       "'%s' is not a peer this server knows (--peer or dimse.peers)",
                       dest ? dest : "");
        return false;
    }
    mira_dimse_scu_options so;
    mira_dimse_scu_options_init(&so);
    so.calling_ae = x->r->calling_ae;
    so.called_ae = peer->ae_title;
    so.tls = peer->tls;
    send_state st = {x, 0, 0, 0, mira_json_writer_new(false)};
    if (!st.failures) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "send job");
        return false;
    }
    mira_json_begin_array(st.failures);
    bool ok = true;
    for (size_t i = 0; ok && i < s->n; i += MIRA_JOB_SEND_BATCH) {
        size_t k = s->n - i < MIRA_JOB_SEND_BATCH ? s->n - i : MIRA_JOB_SEND_BATCH;
        ok = mira_dimse_send(peer->host, peer->port, &so, (const char *const *)s->paths + i, k,
                             sent_one, &st, err);
        ok = ok && step(x, i + k);
    }
    mira_json_end_array(st.failures);
    char *failures = writer_text(st.failures);
    if (!ok) {
        mira_free(failures);
        return false;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "destination");
    mira_json_cstring(w, peer->ae_title);
    mira_json_key(w, "instances");
    mira_json_uint(w, s->n);
    mira_json_key(w, "sent");
    mira_json_uint(w, st.sent);
    mira_json_key(w, "failed");
    mira_json_uint(w, st.failed);
    mira_json_key(w, "failures");
    if (failures)
        mira_json_raw(w, failures, strlen(failures));
    else
        mira_json_null(w);
    mira_json_end_object(w);
    mira_free(failures);
    *result = writer_text(w);
    *all_stored = st.failed == 0;
    return true;
}

/* ---- check */

typedef struct check_state {
    run *x;
    mira_json_writer *problems;
    uint64_t n;
} check_state;

static void found(void *ctx, mira_check_problem what, const char *subject, const char *detail)
{
    check_state *c = ctx;
    static const char *const names[] = {"missing_blob", "orphan_blob", "bad_blob", "bad_count"};
    if (++c->n > 1000)
        return;
    mira_json_writer *w = c->problems;
    mira_json_begin_object(w);
    mira_json_key(w, "problem");
    mira_json_cstring(w, (unsigned)what < 4 ? names[what] : "");
    mira_json_key(w, "subject");
    mira_json_cstring(w, subject ? subject : "");
    mira_json_key(w, "detail");
    mira_json_cstring(w, detail ? detail : "");
    mira_json_end_object(w);
}

static bool checked(void *ctx, uint64_t done, uint64_t total)
{
    check_state *c = ctx;
    c->x->total = total;
    return step(c->x, done);
}

static bool run_check(run *x, const selection *s, bool any, char **result, mira_error **err)
{
    check_state c = {x, mira_json_writer_new(false), 0};
    if (!c.problems) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "check job");
        return false;
    }
    mira_json_begin_array(c.problems);
    mira_check_options o = {0};
    o.deep = true;
    o.instances = any ? (const char *const *)s->sops : NULL;
    o.ninstances = any ? s->n : 0;
    o.progress = checked;
    o.progress_ctx = &c;
    mira_check_report rep;
    bool ok = mira_archive_check(x->a, &o, found, &c, &rep, err);
    mira_json_end_array(c.problems);
    char *problems = writer_text(c.problems);
    if (!ok) {
        mira_free(problems);
        return false;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    mira_json_begin_object(w);
    mira_json_key(w, "scope");
    mira_json_cstring(w, any ? "selection" : "archive");
    static const char *const keys[] = {"instances_checked", "blobs_checked", "missing_blobs",
                                       "orphan_blobs",      "bad_blobs",     "bad_counts"};
    const uint64_t values[] = {rep.instances_checked, rep.blobs_checked, rep.missing_blobs,
                               rep.orphan_blobs,      rep.bad_blobs,     rep.bad_counts};
    for (size_t i = 0; i < 6; i++) {
        mira_json_key(w, keys[i]);
        mira_json_uint(w, values[i]);
    }
    mira_json_key(w, "problems");
    if (problems)
        mira_json_raw(w, problems, strlen(problems));
    else
        mira_json_null(w);
    mira_json_end_object(w);
    mira_free(problems);
    *result = writer_text(w);
    return true;
}

static void run_job(mira_job_runner *r, const mira_job *job)
{
    mira_archive *a = r->opt.archive;
    run x = {r, a, job, 0, 0, GO_ON};
    mira_error *err = NULL;
    char *result = NULL;
    bool ok = true, all_stored = true, any = false;
    logf_(r, MIRA_LOG_INFO, "job %lld (%s) started", (long long)job->id, job->kind);
    mira_json *params = mira_json_parse(job->params, strlen(job->params), &err);
    selection s = {0};
    if (!params || mira_json_get_type(params) != MIRA_JSON_OBJECT) {
        if (!err)
            mira_error_set(&err, MIRA_ERR_INVALID, "Bad parameters",
                           "the parameters are not a JSON object");
        ok = false;
    }
    ok = ok && resolve(a, params, &s, &any, &err);
    if (ok) {
        x.total = s.n;
        ok = step(&x, 0);
    }
    if (ok && strcmp(job->kind, MIRA_JOB_EXPORT) == 0)
        ok = run_export(&x, &s, params, &result, &err);
    else if (ok && strcmp(job->kind, MIRA_JOB_SEND) == 0)
        ok = run_send(&x, &s, params, &result, &all_stored, &err);
    else if (ok && strcmp(job->kind, MIRA_JOB_CHECK) == 0)
        ok = run_check(&x, &s, any, &result, &err);
    else if (ok) {
        mira_error_set(&err, MIRA_ERR_UNSUPPORTED, "Unknown kind", "no job kind '%s'", job->kind);
        ok = false;
    }
    mira_json_free(params);
    selection_free(&s);
    mira_error *e2 = NULL;
    bool recorded;
    if (x.stop == SHUTDOWN) {
        recorded = mira_job_requeue(a, job->id, &e2);
        logf_(r, MIRA_LOG_INFO, "job %lld (%s) queued again: the server stops",
              (long long)job->id, job->kind);
    } else if (x.stop == CANCELLED) {
        recorded = mira_job_finish(a, job->id, MIRA_JOB_CANCELLED, NULL, "cancelled", &e2);
        logf_(r, MIRA_LOG_INFO, "job %lld (%s) cancelled after %llu of %llu", (long long)job->id,
              job->kind, (unsigned long long)x.done, (unsigned long long)x.total);
    } else if (!ok) {
        const char *m = err ? mira_error_get_message(err) : "failed";
        recorded = mira_job_finish(a, job->id, MIRA_JOB_FAILED, NULL, m, &e2);
        logf_(r, MIRA_LOG_WARNING, "job %lld (%s) failed: %s", (long long)job->id, job->kind, m);
    } else {
        /* the last step's progress: a check knows its total only as it goes */
        (void)mira_job_progress(a, job->id, x.total, x.total, NULL, NULL);
        recorded = mira_job_finish(a, job->id, all_stored ? MIRA_JOB_DONE : MIRA_JOB_FAILED,
                                   result, all_stored ? NULL : "some instances were not stored",
                                   &e2);
        logf_(r, all_stored ? MIRA_LOG_INFO : MIRA_LOG_WARNING, "job %lld (%s) %s",
              (long long)job->id, job->kind, all_stored ? "done" : "failed: some instances "
                                                                   "were not stored");
    }
    if (!recorded) {
        logf_(r, MIRA_LOG_WARNING, "job %lld: its end was not recorded: %s", (long long)job->id,
              mira_error_get_message(e2));
        mira_error_free(e2);
    }
    mira_error_free(err);
    mira_free(result);
}

/* ------------------------------------------------------------------ the workers */

static void *worker(void *arg)
{
    mira_job_runner *r = arg;
    static const char *const kinds[] = {MIRA_JOB_EXPORT, MIRA_JOB_SEND, MIRA_JOB_CHECK};
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        uint64_t seen = r->wakes;
        pthread_mutex_unlock(&r->lock);
        mira_job *job = NULL;
        mira_error *err = NULL;
        if (!mira_job_claim(r->opt.archive, kinds, 3, &job, &err)) {
            logf_(r, MIRA_LOG_WARNING, "jobs: the queue could not be read: %s",
                  mira_error_get_message(err));
            mira_error_free(err);
        }
        if (job) {
            run_job(r, job);
            mira_job_free(job);
            pthread_mutex_lock(&r->lock);
            continue; /* the next at once */
        }
        pthread_mutex_lock(&r->lock);
        if (r->stopping || r->wakes != seen)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += r->opt.poll_seconds;
        while (!r->stopping && r->wakes == seen &&
               pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void mira_job_runner_options_init(mira_job_runner_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->workers = 1;
    opt->poll_seconds = 3;
}

mira_job_runner *mira_job_runner_new(const mira_job_runner_options *opt, mira_error **err)
{
    if (!opt || !opt->archive || opt->workers < 0 || opt->workers > 64 ||
        opt->poll_seconds < 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad runner options",
                       "a job runner needs an archive, 0 to 64 workers and a poll of 1 s or more");
        return NULL;
    }
    uint64_t requeued = 0;
    if (!mira_jobs_recover(opt->archive, &requeued, err))
        return NULL;
    mira_job_runner *r = mira_calloc(1, sizeof *r);
    if (!r) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "starting the job runner");
        return NULL;
    }
    r->opt = *opt;
    r->calling_ae = mira_strdup(opt->calling_ae && *opt->calling_ae ? opt->calling_ae : "MIRA");
    r->threads = mira_calloc(opt->workers ? (size_t)opt->workers : 1, sizeof *r->threads);
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    r->opt.calling_ae = r->calling_ae;
    if (!r->calling_ae || !r->threads) {
        mira_job_runner_free(r);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "starting the job runner");
        return NULL;
    }
    if (requeued)
        logf_(r, MIRA_LOG_INFO, "jobs: %llu left running by a process that is gone, queued "
                                "again",
              (unsigned long long)requeued);
    for (int i = 0; i < opt->workers; i++) {
        if (pthread_create(&r->threads[i], NULL, worker, r) != 0) {
            mira_error_set(err, MIRA_ERR_IO, "No thread", "starting job worker %d: %s", i + 1,
                           strerror(errno));
            mira_job_runner_free(r);
            return NULL;
        }
        r->nthreads++;
    }
    return r;
}

void mira_job_runner_wake(mira_job_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->wakes++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void mira_job_runner_free(mira_job_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    mira_free(r->threads);
    mira_free(r->calling_ae);
    mira_free(r);
}
