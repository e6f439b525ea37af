/* Tests of the job queue (src/archive/jobs.c): states, claims from many threads, recovery. */
#include "harness.h"

#include "mira/jobs.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char root[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_root(void)
{
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *archive_dir(const char *name)
{
    static char path[256];
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/mira-test-jobs-XXXXXX");
        if (!mkdtemp(root))
            abort();
        atexit(remove_root);
    }
    snprintf(path, sizeof path, "%s/%s", root, name);
    return path;
}

static mira_archive *open_archive(const char *dir)
{
    mira_archive_options o;
    mira_archive_options_init(&o);
    o.dir = dir;
    o.create = true;
    mira_error *err = NULL;
    mira_archive *a = mira_archive_open(&o, &err);
    if (!a)
        fprintf(stderr, "open %s: %s\n", dir, mira_error_get_message(err));
    mira_error_free(err);
    return a;
}

static int64_t submit(mira_archive *a, const char *kind)
{
    int64_t id = 0;
    mira_error *err = NULL;
    if (!mira_job_submit(a, kind, "{\"study\":\"1.2.3\"}", "tester", &id, &err)) {
        fprintf(stderr, "submit: %s\n", mira_error_get_message(err));
        mira_error_free(err);
        return 0;
    }
    return id;
}

static mira_job_state state_of(mira_archive *a, int64_t id)
{
    mira_job *j = mira_job_get(a, id, NULL);
    mira_job_state s = j ? j->state : (mira_job_state)-1;
    mira_job_free(j);
    return s;
}

TEST(a_job_goes_from_queued_to_done)
{
    mira_archive *a = open_archive(archive_dir("life"));
    CHECK(a != NULL);
    int64_t first = submit(a, "export"), second = submit(a, "check");
    CHECK(first > 0 && second > first);
    CHECK_EQ_INT(state_of(a, first), MIRA_JOB_QUEUED);

    mira_job *j = NULL;
    CHECK(mira_job_claim(a, NULL, 0, &j, NULL));
    CHECK(j && j->id == first); /* the oldest */
    CHECK(j && j->state == MIRA_JOB_RUNNING && j->attempts == 1);
    CHECK_EQ_STR(j ? j->owner : NULL, mira_jobs_owner(a));
    CHECK_EQ_STR(j ? j->params : NULL, "{\"study\":\"1.2.3\"}");
    mira_job_free(j);

    bool cancel = true;
    CHECK(mira_job_progress(a, first, 3, 10, &cancel, NULL));
    CHECK(!cancel);
    j = mira_job_get(a, first, NULL);
    CHECK(j && j->progress_done == 3 && j->progress_total == 10);
    mira_job_free(j);

    mira_error *err = NULL;
    CHECK(!mira_job_finish(a, first, MIRA_JOB_DONE, "{not json", NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    CHECK(mira_job_finish(a, first, MIRA_JOB_DONE, "{\"instances\":10}", NULL, NULL));
    j = mira_job_get(a, first, NULL);
    CHECK(j && j->state == MIRA_JOB_DONE && j->finished_at && j->result);
    CHECK_EQ_STR(j ? j->result : NULL, "{\"instances\":10}");
    mira_job_free(j);
    /* ended: neither finished again nor cancelled */
    CHECK(!mira_job_finish(a, first, MIRA_JOB_FAILED, NULL, "x", &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_CONFLICT);
    mira_error_free(err);
    err = NULL;
    CHECK(!mira_job_cancel(a, first, NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_CONFLICT);
    mira_error_free(err);
    err = NULL;

    /* only the kinds asked for */
    static const char *const sends[] = {"send"};
    CHECK(mira_job_claim(a, sends, 1, &j, NULL));
    CHECK(j == NULL);
    CHECK_EQ_INT(state_of(a, second), MIRA_JOB_QUEUED);

    CHECK(!mira_job_get(a, 999, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_NOT_FOUND);
    mira_error_free(err);
    err = NULL;
    CHECK(!mira_job_submit(a, "bad kind", "{}", "t", NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    CHECK(!mira_job_submit(a, "export", "{", "t", NULL, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    mira_archive_close(a);
}

static bool count_job(void *ctx, const mira_job *j)
{
    (void)j;
    (*(size_t *)ctx)++;
    return true;
}

TEST(cancel_queued_and_running)
{
    mira_archive *a = open_archive(archive_dir("cancel"));
    int64_t q = submit(a, "export"), r = submit(a, "export");
    mira_job_state after;
    CHECK(mira_job_cancel(a, q, &after, NULL));
    CHECK_EQ_INT(after, MIRA_JOB_CANCELLED);
    CHECK_EQ_INT(state_of(a, q), MIRA_JOB_CANCELLED);
    mira_job *j = NULL;
    CHECK(mira_job_claim(a, NULL, 0, &j, NULL));
    CHECK(j && j->id == r); /* the cancelled one is never claimed */
    mira_job_free(j);
    CHECK(mira_job_cancel(a, r, &after, NULL));
    CHECK_EQ_INT(after, MIRA_JOB_RUNNING);
    bool cancel = false;
    CHECK(mira_job_progress(a, r, 1, 2, &cancel, NULL));
    CHECK(cancel);
    CHECK(mira_job_finish(a, r, MIRA_JOB_CANCELLED, NULL, "cancelled", NULL));
    CHECK_EQ_INT(state_of(a, r), MIRA_JOB_CANCELLED);
    mira_job_list_options lo;
    mira_job_list_options_init(&lo);
    lo.state = MIRA_JOB_QUEUED;
    size_t n = 0;
    CHECK(mira_job_list(a, &lo, count_job, &n, NULL));
    CHECK_EQ_INT(n, 0);
    lo.state = MIRA_JOB_CANCELLED;
    CHECK(mira_job_list(a, &lo, count_job, &n, NULL));
    CHECK_EQ_INT(n, 2);
    mira_archive_close(a);
}

/* ---- many claimers: two handles (as two processes would be) with four threads each */

#define NJOBS 300
#define NTHREADS 8

typedef struct claimer {
    mira_archive *a;
    int claimed[NJOBS + 1];
    int n;
} claimer;

static void *claim_all(void *arg)
{
    claimer *c = arg;
    for (int guard = 0; guard < 2 * NJOBS; guard++) {
        mira_job *j = NULL;
        mira_error *err = NULL;
        if (!mira_job_claim(c->a, NULL, 0, &j, &err)) {
            fprintf(stderr, "claim: %s\n", mira_error_get_message(err));
            mira_error_free(err);
            continue;
        }
        if (!j)
            break;
        if (j->id >= 1 && j->id <= NJOBS)
            c->claimed[j->id]++;
        c->n++;
        mira_job_finish(c->a, j->id, MIRA_JOB_DONE, NULL, NULL, NULL);
        mira_job_free(j);
    }
    return NULL;
}

TEST(every_job_is_claimed_once_by_concurrent_claimers)
{
    const char *dir = archive_dir("claims");
    mira_archive *a = open_archive(dir), *b = open_archive(dir);
    CHECK(a && b);
    CHECK(strcmp(mira_jobs_owner(a), mira_jobs_owner(b)) != 0);
    for (int i = 0; i < NJOBS; i++)
        submit(a, "export");
    static claimer c[NTHREADS];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].a = i % 2 ? b : a;
        pthread_create(&t[i], NULL, claim_all, &c[i]);
    }
    int total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        total += c[i].n;
    }
    CHECK_EQ_INT(total, NJOBS);
    for (int id = 1; id <= NJOBS; id++) {
        int times = 0;
        for (int i = 0; i < NTHREADS; i++)
            times += c[i].claimed[id];
        CHECK_EQ_INT(times, 1);
    }
    mira_archive_close(a);
    mira_archive_close(b);
}

TEST(recover_requeues_only_the_jobs_of_dead_processes)
{
    const char *dir = archive_dir("recover");
    mira_archive *dead = open_archive(dir), *live = open_archive(dir);
    int64_t d = submit(dead, "export"), l = submit(dead, "export");
    mira_job *j = NULL;
    CHECK(mira_job_claim(dead, NULL, 0, &j, NULL) && j && j->id == d);
    mira_job_free(j);
    CHECK(mira_job_claim(live, NULL, 0, &j, NULL) && j && j->id == l);
    mira_job_free(j);
    mira_archive_close(dead); /* its tmp folder goes: as after a crash and the next open */

    mira_archive *next = open_archive(dir);
    uint64_t n = 99;
    CHECK(mira_jobs_recover(next, &n, NULL));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(state_of(next, d), MIRA_JOB_QUEUED);
    CHECK_EQ_INT(state_of(next, l), MIRA_JOB_RUNNING); /* its process is alive */
    /* the dead owner's late writes change nothing now */
    CHECK(mira_job_claim(next, NULL, 0, &j, NULL) && j && j->id == d && j->attempts == 2);
    mira_job_free(j);
    CHECK(mira_job_requeue(live, d, NULL)); /* not live's job: left alone */
    CHECK_EQ_INT(state_of(next, d), MIRA_JOB_RUNNING);
    CHECK(mira_job_requeue(next, d, NULL));
    CHECK_EQ_INT(state_of(next, d), MIRA_JOB_QUEUED);
    mira_archive_close(live);
    mira_archive_close(next);
}
