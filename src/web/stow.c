/* STOW-RS (PS3.18 10.5): a multipart/related body of PS3.10 instances, streamed into the archive. */
#include "web/web_int.h"
#include "core/fileio.h"

#include "web/multipart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The body goes through the multipart parser as libmicrohttpd delivers it; each part is taken
 * into memory while it is small (MEMORY_MAX, as the C-STORE SCP does) and goes on into a spool
 * file in the archive's spool/ folder once it grows past that, so memory stays bounded
 * whatever the size of the body or of an instance. When a part ends it is checked (a PS3.10
 * file: preamble and DICM, readable to its end, the Study Instance UID of the path if one was
 * given) and stored through the archive, which makes it durable before the store returns. The
 * check and the store run in a thread of their own, up to IN_FLIGHT parts of a request at once
 * (so their syncs overlap and the archive commits them together, while the next parts are
 * still arriving); the response is made once the body has ended and every store has returned,
 * in the order of the parts. A part that fails fails alone: the parts before and after it are
 * stored all the same.
 *
 * Spool files are named "<pid>-http-<n>.part": the DIMSE server's start removes those of
 * processes that are gone (mira__store_init), as for its own.
 */
#define MEMORY_MAX (8u << 20)
#define MAX_PARTS 100000
#define IN_FLIGHT 4 /* parts of one request being stored at once */
#define TAG_RETRIEVE_URL MIRA_TAG(0x0008, 0x1190)
#define TAG_FAILED_SEQ MIRA_TAG(0x0008, 0x1198)
#define TAG_REFERENCED_SEQ MIRA_TAG(0x0008, 0x1199)
#define TAG_REF_SOP_CLASS MIRA_TAG(0x0008, 0x1150)
#define TAG_REF_SOP_INSTANCE MIRA_TAG(0x0008, 0x1155)
#define TAG_FAILURE_REASON MIRA_TAG(0x0008, 0x1197)
#define TAG_WARNING_REASON MIRA_TAG(0x0008, 0x1196)

static atomic_uint_fast64_t spool_seq;

typedef struct stow {
    mira_archive *archive;
    char *study; /* of the path, or NULL */
    char *base;  /* "http://host[:port]/dicomweb", for Retrieve URLs */
    uint64_t max_body, total;
    bool over; /* the body passed max_body: the rest is dropped */
    mira__multipart *mp;
    mira_log_fn log;
    void *log_ctx;
    char peer[64];

    /* the part being received */
    uint16_t part_fail; /* a failure decided before its end (its media type) */
    char part_why[256];
    mira__buf mem; /* its bytes while fd < 0 */
    int fd;        /* its spool file, once over MEMORY_MAX */
    char path[4096];
    uint64_t part_len;
    int part_errno; /* of the first write that failed */

    /* the response */
    mira_dataset *resp;
    size_t stored, failed;
    char one_study[65]; /* the study of every stored instance, while they share one */
    bool studies_differ;
    bool broken; /* building the response failed (out of memory) */

    /* each part's outcome, in part order; a part that ended well is checked and stored by a
     * thread of its own, up to IN_FLIGHT at once, while the next ones arrive */
    struct stow_task **tasks;
    size_t ntasks, cap;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a task finished */
    size_t running;
} stow;

static void logf_(stow *st, mira_log_level level, const char *fmt, ...) MIRA_PRINTF(3, 4);
static void logf_(stow *st, mira_log_level level, const char *fmt, ...)
{
    if (!st->log)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "http %s: STOW-RS: ", st->peer);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    st->log(st->log_ctx, level, line);
}

/* ------------------------------------------------------------------ the response */

static mira_dataset *add_item(stow *st, mira_tag seq_tag)
{
    if (!st->resp)
        return NULL;
    mira_element *seq = mira_dataset_get(st->resp, seq_tag);
    if (!seq)
        seq = mira_dataset_set_sequence(st->resp, seq_tag, NULL);
    mira_dataset *item = seq ? mira_element_add_item(seq, NULL) : NULL;
    if (!item)
        st->broken = true;
    return item;
}

static void set_str(stow *st, mira_dataset *ds, mira_tag tag, mira_vr vr, const char *v)
{
    if (ds && !mira_dataset_set_string(ds, tag, vr, v, NULL))
        st->broken = true;
}

static void set_us(stow *st, mira_dataset *ds, mira_tag tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v & 0xFF), (uint8_t)(v >> 8)};
    if (ds && !mira_dataset_set_bytes(ds, tag, MIRA_VR_US, b, 2, NULL))
        st->broken = true;
}

static void add_failed(stow *st, size_t part, const char *sop_class, const char *sop_instance,
                       uint16_t reason, const char *why)
{
    st->failed++;
    mira_dataset *item = add_item(st, TAG_FAILED_SEQ);
    set_str(st, item, TAG_REF_SOP_CLASS, MIRA_VR_UI, sop_class ? sop_class : "");
    set_str(st, item, TAG_REF_SOP_INSTANCE, MIRA_VR_UI, sop_instance ? sop_instance : "");
    set_us(st, item, TAG_FAILURE_REASON, reason);
    logf_(st, MIRA_LOG_WARNING, "part %zu (%s) failed (0x%04X): %s", part,
          sop_instance && *sop_instance ? sop_instance : "?", reason, why);
}

static void add_stored(stow *st, const mira_store_result *res)
{
    st->stored++;
    if (!st->one_study[0])
        snprintf(st->one_study, sizeof st->one_study, "%s", res->study_instance_uid);
    else if (strcmp(st->one_study, res->study_instance_uid) != 0)
        st->studies_differ = true;
    mira_dataset *item = add_item(st, TAG_REFERENCED_SEQ);
    set_str(st, item, TAG_REF_SOP_CLASS, MIRA_VR_UI, res->sop_class_uid);
    set_str(st, item, TAG_REF_SOP_INSTANCE, MIRA_VR_UI, res->sop_instance_uid);
    char url[512];
    snprintf(url, sizeof url, "%s/studies/%s/series/%s/instances/%s", st->base,
             res->study_instance_uid, res->series_instance_uid, res->sop_instance_uid);
    set_str(st, item, TAG_RETRIEVE_URL, MIRA_VR_UR, url);
}

/* ------------------------------------------------------------------ one part */

static void part_reset(stow *st)
{
    if (st->fd >= 0)
        close(st->fd);
    if (st->path[0])
        unlink(st->path);
    st->fd = -1;
    st->path[0] = 0;
    st->mem.len = 0;
    if (st->mem.cap > (1u << 20)) { /* a large buffer is not kept for the next part */
        mira__buf_cleanup(&st->mem);
        mira__buf_init(&st->mem);
    }
    st->mem.failed = false;
    st->part_len = 0;
    st->part_errno = 0;
    st->part_fail = 0;
    st->part_why[0] = 0;
}

static bool on_begin(void *ctx, const mira__part_headers *h)
{
    stow *st = ctx;
    part_reset(st);
    const char *ct = mira__part_header(h, "content-type");
    mira__media_type m;
    char why[128];
    if (!ct) {
        st->part_fail = 0xC000;
        snprintf(st->part_why, sizeof st->part_why, "the part has no Content-Type");
    } else if (!mira__media_type_parse(ct, &m, why, sizeof why)) {
        st->part_fail = 0xC000;
        snprintf(st->part_why, sizeof st->part_why, "the part's Content-Type: %s", why);
    } else if (strcmp(m.type, "application") != 0 || strcmp(m.subtype, "dicom") != 0) {
        /* metadata and bulk data parts (application/dicom+json, +xml, octet-stream...) are
         * not taken yet */
        st->part_fail = 0xC000;
        snprintf(st->part_why, sizeof st->part_why,
                 "a part of type %.80s/%.60s: only application/dicom parts are stored", m.type,
                 m.subtype);
    }
    return true;
}

static bool on_data(void *ctx, const uint8_t *p, size_t n)
{
    stow *st = ctx;
    if (st->part_fail || st->part_errno)
        return true; /* dropped: the part fails when it ends */
    st->part_len += n;
    if (st->fd < 0 && st->mem.len + n > MEMORY_MAX) {
        /* too large for memory: on into a spool file, from what was received so far */
        snprintf(st->path, sizeof st->path, "%s/spool/%ld-http-%llu.part",
                 mira_archive_dir(st->archive), (long)getpid(),
                 (unsigned long long)atomic_fetch_add(&spool_seq, 1));
        st->fd = open(st->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (st->fd < 0 || !mira__write_all(st->fd, st->mem.data, st->mem.len)) {
            st->part_errno = errno ? errno : EIO;
            if (st->fd < 0)
                st->path[0] = 0;
            return true;
        }
        mira__buf_cleanup(&st->mem);
        mira__buf_init(&st->mem);
    }
    if (st->fd >= 0) {
        if (!mira__write_all(st->fd, p, n))
            st->part_errno = errno ? errno : EIO;
    } else if (!mira__buf_append(&st->mem, p, n)) {
        st->part_errno = ENOMEM;
    }
    return true;
}

static char *get_uid(const mira_dataset *ds, mira_tag tag)
{
    mira_element *e = mira_dataset_get(ds, tag);
    return e ? mira_element_get_string(e, 0, NULL) : NULL;
}

/* Failure Reason for a failed store (PS3.18 Table I.2-2; 0111 is PS3.7's Duplicate SOP
 * Instance, for a duplicate the archive's policy refuses). */
static uint16_t store_failure(const mira_error *e)
{
    switch (mira_error_get_code(e)) {
    case MIRA_ERR_INVALID:
        return 0xC000;
    case MIRA_ERR_CONFLICT:
        return 0x0111;
    case MIRA_ERR_UNSUPPORTED:
        return 0xA900;
    case MIRA_ERR_NOMEM:
    case MIRA_ERR_IO:
        return 0xA700;
    default:
        return 0x0110;
    }
}

/* One part: its bytes (in memory, or a spool file), then its outcome. */
typedef struct stow_task {
    stow *st;
    size_t part; /* its number, from 1 */
    uint8_t *data; /* owned */
    size_t len;
    char *path; /* a spool file (owned; removed when done), or NULL */
    bool started; /* thread is running it */
    pthread_t thread;

    bool stored;
    mira_store_result res;
    char *cls, *sop; /* owned, or NULL */
    uint16_t reason;
    char why[320];
} stow_task;

static void task_fail(stow_task *t, uint16_t reason, const char *fmt, ...) MIRA_PRINTF(3, 4);
static void task_fail(stow_task *t, uint16_t reason, const char *fmt, ...)
{
    t->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
}

/* Check a part and store it (in any thread: touches nothing of st but what does not change). */
static void task_run(stow_task *t)
{
    stow *st = t->st;
    /* a PS3.10 file (PS3.18 8.7.3.3.2: application/dicom is a PS3.10 file), read whole, so
     * that a truncated one is refused before it reaches the archive */
    uint8_t magic[4] = {0};
    if (t->path) {
        int fd = open(t->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || pread(fd, magic, 4, 128) != 4)
            memset(magic, 0, 4);
        if (fd >= 0)
            close(fd);
    } else if (t->len >= 132) {
        memcpy(magic, t->data + 128, 4);
    }
    if (memcmp(magic, "DICM", 4) != 0) {
        task_fail(t, 0xC000, "not a DICOM PS3.10 file (no 128-byte preamble and DICM prefix)");
        return;
    }
    mira_read_options ro;
    mira_read_options_init(&ro);
    mira_error *e = NULL;
    mira_file *f = t->path ? mira_file_read(t->path, &ro, &e)
                           : mira_file_read_memory(t->data, t->len, &ro, false, &e);
    if (!f) {
        task_fail(t, mira_error_get_code(e) == MIRA_ERR_NOMEM ? 0xA700 : 0xC000,
                  "not readable: %s", e ? mira_error_get_message(e) : "?");
        mira_error_free(e);
        return;
    }
    const mira_dataset *ds = mira_file_dataset(f);
    t->cls = get_uid(ds, MIRA_TAG(0x0008, 0x0016));
    t->sop = get_uid(ds, MIRA_TAG(0x0008, 0x0018));
    char *study = get_uid(ds, MIRA_TAG(0x0020, 0x000D));
    mira_file_free(f);
    if (st->study && (!study || strcmp(study, st->study) != 0)) {
        /* PS3.18 10.5.1: with a study in the path every instance must be of that study */
        task_fail(t, 0xA900, "its Study Instance UID %.64s is not the one of the path",
                  study ? study : "(none)");
    } else if (t->path ? mira_archive_store_file(st->archive, t->path, &t->res, &e)
                       : mira_archive_store_memory(st->archive, t->data, t->len, &t->res, &e)) {
        t->stored = true;
    } else {
        task_fail(t, store_failure(e), "%s", mira_error_get_message(e));
        mira_error_free(e);
    }
    mira_free(study);
}

static void task_release(stow_task *t)
{
    mira_free(t->data);
    t->data = NULL;
    if (t->path)
        unlink(t->path);
    mira_free(t->path);
    t->path = NULL;
}

static void *task_thread(void *arg)
{
    stow_task *t = arg;
    task_run(t);
    task_release(t);
    stow *st = t->st;
    pthread_mutex_lock(&st->lock);
    st->running--;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* A slot for the part that ended (NULL: out of memory, the response is broken). */
static stow_task *task_new(stow *st)
{
    if (st->ntasks == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 32;
        stow_task **v = mira_realloc(st->tasks, cap * sizeof *v);
        if (!v)
            return NULL;
        st->tasks = v;
        st->cap = cap;
    }
    stow_task *t = mira_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->st = st;
    t->part = mira__multipart_parts(st->mp);
    st->tasks[st->ntasks++] = t;
    return t;
}

/* Wait for every part's store, then put each outcome into the response, in part order. */
static void collect(stow *st)
{
    for (size_t i = 0; i < st->ntasks; i++) {
        stow_task *t = st->tasks[i];
        if (t->started)
            pthread_join(t->thread, NULL);
        task_release(t);
        if (t->stored)
            add_stored(st, &t->res);
        else
            add_failed(st, t->part, t->cls, t->sop, t->reason, t->why);
        mira_free(t->cls);
        mira_free(t->sop);
        mira_free(t);
    }
    st->ntasks = 0;
}

static bool on_end(void *ctx)
{
    stow *st = ctx;
    stow_task *t = task_new(st);
    if (!t) {
        st->broken = true;
        part_reset(st);
        return true;
    }
    bool spooled = st->fd >= 0;
    if (st->part_fail) {
        task_fail(t, st->part_fail, "%s", st->part_why);
    } else if (st->part_errno) {
        task_fail(t, 0xA700, "receiving the part failed: %s", strerror(st->part_errno));
    } else if (spooled && close(st->fd) != 0) {
        st->fd = -1;
        task_fail(t, 0xA700, "writing the spool file failed");
    } else {
        st->fd = -1;
        if (spooled) { /* the spool file goes with the task */
            t->path = mira_strdup(st->path);
            if (t->path)
                st->path[0] = 0;
        } else {
            t->data = st->mem.data;
            t->len = st->mem.len;
            mira__buf_init(&st->mem);
        }
        if (spooled && !t->path) {
            task_fail(t, 0xA700, "out of memory");
        } else {
            pthread_mutex_lock(&st->lock);
            while (st->running >= IN_FLIGHT)
                pthread_cond_wait(&st->cond, &st->lock);
            st->running++;
            t->started = pthread_create(&t->thread, NULL, task_thread, t) == 0;
            if (!t->started)
                st->running--;
            pthread_mutex_unlock(&st->lock);
            if (!t->started) { /* no thread: here and now */
                task_run(t);
                task_release(t);
            }
        }
    }
    part_reset(st);
    return true;
}

/* ------------------------------------------------------------------ the body */

static bool stow_feed(void *ctx, const uint8_t *p, size_t n)
{
    stow *st = ctx;
    if (st->over)
        return false;
    st->total += n;
    if (st->max_body && st->total > st->max_body) {
        st->over = true; /* what was stored stays; the rest is dropped */
        return false;
    }
    return mira__multipart_feed(st->mp, p, n);
}

static void reply_store(stow *st, mira__http_reply *r, int status)
{
    if (st->study || (st->stored && !st->studies_differ)) {
        char url[512];
        snprintf(url, sizeof url, "%s/studies/%s", st->base, st->study ? st->study : st->one_study);
        set_str(st, st->resp, TAG_RETRIEVE_URL, MIRA_VR_UR, url);
    }
    char *json = st->resp && !st->broken ? mira_dataset_to_json(st->resp, NULL, NULL) : NULL;
    if (!json) {
        mira__http_reply_error(r, 503, "out of memory building the response (%zu stored, %zu "
                                       "failed)",
                               st->stored, st->failed);
        return;
    }
    r->status = status;
    r->content_type = "application/dicom+json";
    r->body.len = 0;
    mira__buf_append(&r->body, json, strlen(json));
    mira_free(json);
}

static void stow_finish(void *ctx, mira__http_reply *r)
{
    stow *st = ctx;
    collect(st); /* every store returned: the counts are final */
    if (st->over) {
        part_reset(st);
        mira__http_reply_error(r, 413,
                               "the body is larger than the %llu bytes this server takes "
                               "(%zu instances stored before it was cut)",
                               (unsigned long long)st->max_body, st->stored);
        logf_(st, MIRA_LOG_WARNING, "body over %llu bytes: %zu stored, the rest dropped",
              (unsigned long long)st->max_body, st->stored);
        return;
    }
    if (!mira__multipart_finish(st->mp)) {
        const char *why = mira__multipart_error(st->mp);
        part_reset(st);
        logf_(st, MIRA_LOG_WARNING, "malformed body after %zu stored, %zu failed: %s",
              st->stored, st->failed, why);
        if (st->stored == 0) {
            mira__http_reply_error(r, 400, "malformed multipart body: %s", why);
        } else {
            /* what was stored is said, with the failure of the part that broke off */
            char text[300];
            snprintf(text, sizeof text, "malformed multipart body: %s", why);
            mira__http_reply_warning(r, text);
            add_failed(st, mira__multipart_parts(st->mp), NULL, NULL, 0xC000, text);
            reply_store(st, r, 400);
        }
        return;
    }
    if (st->stored + st->failed == 0) {
        mira__http_reply_error(r, 400, "the body holds no part");
        return;
    }
    reply_store(st, r, st->failed == 0 ? 200 : st->stored == 0 ? 409 : 202);
    logf_(st, MIRA_LOG_INFO, "%zu stored, %zu failed", st->stored, st->failed);
}

static void stow_free(void *ctx)
{
    stow *st = ctx;
    if (!st)
        return;
    collect(st); /* (a request cut short: its stores still finish, and are kept) */
    mira_free(st->tasks);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    part_reset(st);
    mira__buf_cleanup(&st->mem);
    mira__multipart_free(st->mp);
    mira_dataset_free(st->resp);
    mira_free(st->study);
    mira_free(st->base);
    mira_free(st);
}

bool mira__stow_begin(const mira__stow_options *o, mira__http_body *body, mira__http_reply *r)
{
    memset(body, 0, sizeof *body);
    mira__media_type m;
    char why[128];
    if (!o->content_type) {
        mira__http_reply_error(r, 415, "a store takes multipart/related; "
                                       "type=\"application/dicom\" (no Content-Type given)");
        return false;
    }
    if (!mira__media_type_parse(o->content_type, &m, why, sizeof why)) {
        mira__http_reply_error(r, 415, "the Content-Type is not a media type: %s", why);
        return false;
    }
    const char *type = mira__media_type_param(&m, "type");
    if (strcmp(m.type, "multipart") != 0 || strcmp(m.subtype, "related") != 0) {
        mira__http_reply_error(r, 415, "a store takes multipart/related; "
                                       "type=\"application/dicom\", not %s/%s",
                               m.type, m.subtype);
        return false;
    }
    if (!type || strcasecmp(type, "application/dicom") != 0) {
        mira__http_reply_error(r, 415, "a store takes multipart/related with "
                                       "type=\"application/dicom\" (metadata and bulk data "
                                       "uploads are not supported), not type=\"%s\"",
                               type ? type : "");
        return false;
    }
    const char *boundary = mira__media_type_param(&m, "boundary");
    if (!boundary || !mira__boundary_valid(boundary)) {
        mira__http_reply_error(r, 400, "the multipart/related Content-Type has %s boundary",
                               boundary ? "an invalid" : "no");
        return false;
    }
    if (o->max_body && o->content_length != UINT64_MAX && o->content_length > o->max_body) {
        mira__http_reply_error(r, 413, "the body (%llu bytes) is larger than the %llu bytes "
                                       "this server takes",
                               (unsigned long long)o->content_length,
                               (unsigned long long)o->max_body);
        return false;
    }
    char spool[4096];
    snprintf(spool, sizeof spool, "%s/spool", mira_archive_dir(o->archive));
    if (mkdir(spool, 0755) != 0 && errno != EEXIST) {
        mira__http_reply_error(r, 503, "the spool folder cannot be made: %s", strerror(errno));
        return false;
    }
    stow *st = mira_calloc(1, sizeof *st);
    static const mira__multipart_cb cb = {on_begin, on_data, on_end};
    if (st) {
        st->fd = -1;
        pthread_mutex_init(&st->lock, NULL);
        pthread_cond_init(&st->cond, NULL);
        mira__buf_init(&st->mem);
        st->archive = o->archive;
        st->max_body = o->max_body;
        st->log = o->log;
        st->log_ctx = o->log_ctx;
        snprintf(st->peer, sizeof st->peer, "%s", o->peer ? o->peer : "?");
        st->study = o->study ? mira_strdup(o->study) : NULL;
        st->base = mira_strdup(o->base_url);
        st->resp = mira_dataset_new(NULL);
        st->mp = mira__multipart_new(boundary, &cb, st, 0, MAX_PARTS);
    }
    if (!st || (o->study && !st->study) || !st->base || !st->resp || !st->mp) {
        stow_free(st);
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    body->ctx = st;
    body->feed = stow_feed;
    body->finish = stow_finish;
    body->free = stow_free;
    return true;
}
