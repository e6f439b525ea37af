/* Verification (PS3.4 A) and Storage (PS3.4 B) SCP: C-ECHO and C-STORE into the archive. */
#include "services.h"
#include "core/fileio.h"

#include "qr_neg.h"

#include "archive/archive_int.h"

#include "dicom/dataset_int.h"
#include "dicom/impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* C-STORE statuses (PS3.4 B.2.3; 0x0122 and 0x0111 are the general ones of PS3.7 C). */
enum {
    STATUS_SUCCESS = 0x0000,
    STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122,
    STATUS_DUPLICATE = 0x0111,
    STATUS_UNRECOGNIZED_OPERATION = 0x0211,
    STATUS_OUT_OF_RESOURCES = 0xA700,
    STATUS_DATA_SET_MISMATCH = 0xA900,
    STATUS_CANNOT_UNDERSTAND = 0xC000,
    STATUS_WARNING_MISMATCH = 0xB007,
};

bool mira__is_storage_sop_class(const char *uid)
{
    const mira_uid_entry *u = mira_uid_find(uid);
    if (!u || strcmp(u->type, "SOP Class") != 0 || !strstr(u->name, "Storage"))
        return false;
    return !strstr(u->name, "Commitment") && strcmp(uid, "1.2.840.10008.1.3.10") != 0;
}

/* A response command set for request rq. */
static mira_dataset *response(const mira_dataset *rq, uint16_t field, uint16_t status,
                              const char *comment, bool with_instance)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    if (!ds)
        return NULL;
    static const uint8_t zero[4];
    char uid[65];
    uint16_t id = 0;
    mira__cmd_get_u16(rq, MIRA__TAG_MESSAGE_ID, &id);
    bool ok = mira_dataset_set_bytes(ds, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, NULL);
    mira__cmd_get_str(rq, MIRA__TAG_AFFECTED_SOP_CLASS, uid, sizeof uid);
    if (uid[0])
        ok &= mira_dataset_set_string(ds, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, uid, NULL) !=
              NULL;
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_COMMAND_FIELD, field);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_RESPONDED_TO, id);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_STATUS, status);
    if (comment && *comment) {
        char c[65];
        snprintf(c, sizeof c, "%s", comment); /* LO: at most 64 characters */
        for (char *p = c; *p; p++)
            if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E)
                *p = ' ';
        ok &= mira_dataset_set_string(ds, MIRA__TAG_ERROR_COMMENT, MIRA_VR_LO, c, NULL) != NULL;
    }
    if (with_instance) {
        mira__cmd_get_str(rq, MIRA__TAG_AFFECTED_SOP_INSTANCE, uid, sizeof uid);
        if (uid[0])
            ok &= mira_dataset_set_string(ds, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI, uid,
                                          NULL) != NULL;
    }
    if (!ok) {
        mira_dataset_free(ds);
        return NULL;
    }
    return ds;
}

static bool respond(mira__association *as, uint8_t pctx, const mira_dataset *rq, uint16_t field,
                    uint16_t status, const char *comment, bool with_instance)
{
    mira_dataset *rsp = response(rq, field, status, comment, with_instance);
    if (!rsp) {
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, 0, "out of memory");
        return false;
    }
    bool ok = mira__dimse_send(as, pctx, rsp, NULL, 0, NULL);
    mira_dataset_free(rsp);
    return ok;
}

bool mira__serve_echo(mira_dimse_server *s, mira__association *as, uint8_t pctx,
                      const mira_dataset *cmd, bool has_data)
{
    if (has_data && !mira__dimse_recv_data(as, pctx, NULL, NULL, NULL))
        return false;
    return respond(as, pctx, cmd, MIRA__C_ECHO_RSP, STATUS_SUCCESS, NULL, false);
}

bool mira__serve_unsupported(mira_dimse_server *s, mira__association *as, uint8_t pctx,
                             const mira_dataset *cmd, uint16_t field, bool has_data)
{
    if (field & 0x8000) {
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PARAM,
                          "a response to a request we never sent");
        return false;
    }
    if (has_data && !mira__dimse_recv_data(as, pctx, NULL, NULL, NULL))
        return false;
    char c[64];
    snprintf(c, sizeof c, "command field 0x%04X is not supported", field);
    return respond(as, pctx, cmd, (uint16_t)(field | 0x8000), STATUS_UNRECOGNIZED_OPERATION, c,
                   false);
}

/* ------------------------------------------------------------------ storage */

bool mira__store_init(mira__store_ctx *st, mira_archive *a, mira_error **err)
{
    st->archive = a;
    atomic_init(&st->seq, 0);
    size_t n = strlen(mira_archive_dir(a)) + 16;
    st->spool = mira_malloc(n);
    if (!st->spool) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the spool folder's name");
        return false;
    }
    snprintf(st->spool, n, "%s/spool", mira_archive_dir(a));
    if (mkdir(st->spool, 0755) != 0 && errno != EEXIST) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot create folder", "creating %s: %s", st->spool,
                       strerror(errno));
        mira_free(st->spool);
        st->spool = NULL;
        return false;
    }
    /* files of processes that are gone were never acknowledged: removed */
    DIR *d = opendir(st->spool);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        long pid = strtol(de->d_name, NULL, 10);
        if (pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", st->spool, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    return true;
}

void mira__store_cleanup(mira__store_ctx *st)
{
    mira_free(st->spool);
    st->spool = NULL;
}

/*
 * Receiving a data set. An instance is taken into memory, behind the file meta group built
 * for it, and stored from there (mira_archive_store_memory): the buffer is page-aligned, so
 * the archive writes its blob from it in place with O_DIRECT, and nothing is written twice or
 * read back. One that grows past MEMORY_MAX goes on into a spool file instead (what was
 * received so far written to it first), and is stored from that file: memory stays bounded
 * whatever the instance's size. Each thread keeps its last buffer (up to KEEP_MAX) for the next
 * instance of its association, so the common case allocates nothing.
 */
#define MEMORY_MAX (8u << 20)
#define KEEP_MAX (2u << 20)
#define RX_ALIGN 4096
#define RX_FIRST (1u << 20)

typedef struct rxbuf {
    uint8_t *raw, *data; /* data: raw aligned to RX_ALIGN */
    size_t cap;          /* of data */
} rxbuf;

static pthread_key_t rx_key;
static pthread_once_t rx_once = PTHREAD_ONCE_INIT;

static void rxbuf_free(void *p)
{
    rxbuf *b = p;
    if (b)
        mira_free(b->raw);
    mira_free(b);
}

static void rx_key_make(void)
{
    (void)pthread_key_create(&rx_key, rxbuf_free);
}

typedef struct receiver {
    rxbuf buf;   /* in memory while fd < 0 */
    size_t len;  /* bytes in buf */
    const char *spool_path;
    int fd;      /* the spool file, once over MEMORY_MAX */
    int error;   /* errno of the first failure */
    uint64_t bytes;
    mira__blob_writer *writer; /* the blob written as it comes, while in memory (or NULL) */
} receiver;

static bool rxbuf_reserve(rxbuf *b, size_t len, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : RX_FIRST;
    while (cap < need)
        cap *= 2;
    uint8_t *raw = mira_malloc(cap + RX_ALIGN);
    if (!raw)
        return false;
    uint8_t *data = raw + ((RX_ALIGN - (uintptr_t)raw % RX_ALIGN) % RX_ALIGN);
    if (len)
        memcpy(data, b->data, len);
    mira_free(b->raw);
    b->raw = raw;
    b->data = data;
    b->cap = cap;
    return true;
}

static void rx_append(receiver *r, const uint8_t *data, size_t len)
{
    if (r->error)
        return; /* keep receiving: the failure is answered in the response */
    r->bytes += len;
    if (r->fd < 0 && r->len + len > MEMORY_MAX) {
        /* too large for memory: on into the spool file, from what was received so far */
        r->fd = open(r->spool_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (r->fd < 0 || !mira__write_all(r->fd, r->buf.data, r->len)) {
            r->error = errno ? errno : EIO;
            return;
        }
        mira_free(r->buf.raw);
        memset(&r->buf, 0, sizeof r->buf);
        r->len = 0;
        mira__blob_writer_free(r->writer);
        r->writer = NULL;
    }
    if (r->fd >= 0) {
        if (!mira__write_all(r->fd, data, len))
            r->error = errno ? errno : EIO;
        return;
    }
    if (!rxbuf_reserve(&r->buf, r->len, r->len + len)) {
        r->error = ENOMEM;
        return;
    }
    memcpy(r->buf.data + r->len, data, len);
    r->len += len;
    mira__blob_writer_feed(r->writer, r->buf.data, r->len);
}

static bool rx_fragment(void *ctx, const uint8_t *data, size_t len, bool last)
{
    rx_append(ctx, data, len);
    return true;
}

/* The preamble and a file meta group (PS3.10 7.1) for the instance being received. */
static bool write_meta(receiver *r, const char *sop_class, const char *sop_instance,
                       const char *ts, const char *source_ae)
{
    mira__buf b;
    mira__buf_init(&b);
    bool ok = mira__file_meta_encode(&b, sop_class, sop_instance, ts, source_ae);
    if (ok)
        rx_append(r, b.data, b.len);
    mira__buf_cleanup(&b);
    return ok;
}

bool mira__serve_store(mira_dimse_server *s, mira__store_ctx *st, mira__association *as,
                       uint64_t assoc_id, uint8_t pctx, const mira_dataset *cmd, bool has_data)
{
    char sop_class[65], sop_instance[65];
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop_class, sizeof sop_class);
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_INSTANCE, sop_instance, sizeof sop_instance);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    const char *ts = mira__assoc_context_ts(as, pctx);
    if (!has_data) {
        return respond(as, pctx, cmd, MIRA__C_STORE_RSP, STATUS_CANNOT_UNDERSTAND,
                       "a C-STORE-RQ without a data set", true);
    }
    if (!st->archive || !ctx_sop || !ts || !mira__is_storage_sop_class(ctx_sop) ||
        strcmp(ctx_sop, sop_class) != 0) {
        if (!mira__dimse_recv_data(as, pctx, NULL, NULL, NULL))
            return false;
        return respond(as, pctx, cmd, MIRA__C_STORE_RSP, STATUS_SOP_CLASS_NOT_SUPPORTED,
                       "SOP class not negotiated on this presentation context", true);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%ld-%llu-%llu.part", st->spool, (long)getpid(),
             (unsigned long long)assoc_id, (unsigned long long)atomic_fetch_add(&st->seq, 1));
    receiver r;
    memset(&r, 0, sizeof r);
    r.fd = -1;
    r.spool_path = path;
    pthread_once(&rx_once, rx_key_make);
    rxbuf *kept = pthread_getspecific(rx_key);
    if (kept) {
        r.buf = *kept;
        memset(kept, 0, sizeof *kept);
    }
    if (!write_meta(&r, sop_class, sop_instance, ts, as->rq.calling_ae) && !r.error)
        r.error = ENOMEM;
    r.writer = mira__blob_writer_new(st->archive);
    bool received = mira__dimse_recv_data(as, pctx, rx_fragment, &r, NULL);
    if (r.fd >= 0 && close(r.fd) != 0 && !r.error)
        r.error = errno;
    uint16_t status = STATUS_SUCCESS;
    char comment[200] = "";
    if (!received) {
        /* aborted or closed in the middle of the data set: nothing was acknowledged */
    } else if (r.error) {
        status = STATUS_OUT_OF_RESOURCES;
        snprintf(comment, sizeof comment, "receiving failed: %s", strerror(r.error));
    } else {
        mira_store_result res;
        mira_error *e = NULL;
        bool ok = r.fd >= 0 ? mira_archive_store_file(st->archive, path, &res, &e)
                            : mira__archive_store_received(st->archive, r.buf.data, r.len,
                                                           r.writer, sop_instance, &res, &e);
        r.writer = NULL; /* taken */
        if (ok) {
            if (strcmp(res.sop_class_uid, sop_class) != 0 ||
                strcmp(res.sop_instance_uid, sop_instance) != 0) {
                status = STATUS_WARNING_MISMATCH;
                mira__log(s, MIRA_LOG_WARNING,
                          "association %llu: stored %s, whose data set names SOP class %s and "
                          "instance %s",
                          (unsigned long long)assoc_id, sop_instance, res.sop_class_uid,
                          res.sop_instance_uid);
            }
        } else {
            mira_error_code code = mira_error_get_code(e);
            status = code == MIRA_ERR_INVALID     ? STATUS_CANNOT_UNDERSTAND
                     : code == MIRA_ERR_CONFLICT  ? STATUS_DUPLICATE
                     : code == MIRA_ERR_UNSUPPORTED ? STATUS_DATA_SET_MISMATCH
                                                  : STATUS_OUT_OF_RESOURCES;
            snprintf(comment, sizeof comment, "%s", mira_error_get_message(e));
            mira__log(s, MIRA_LOG_ERROR, "association %llu: C-STORE of %s failed (0x%04X): %s",
                      (unsigned long long)assoc_id, sop_instance, status,
                      mira_error_get_message(e));
            mira_error_free(e);
        }
    }
    mira__blob_writer_free(r.writer);
    if (r.fd >= 0)
        unlink(path); /* spooled: stored from the file, or not at all */
    /* the buffer stays with the thread for its next instance, unless it grew large */
    if (r.buf.raw && r.buf.cap <= KEEP_MAX && (kept || (kept = mira_calloc(1, sizeof *kept)))) {
        *kept = r.buf;
        if (pthread_getspecific(rx_key) != kept && pthread_setspecific(rx_key, kept) != 0) {
            rxbuf_free(kept);
            kept = NULL;
        }
    } else {
        mira_free(r.buf.raw);
    }
    if (!received)
        return false;
    return respond(as, pctx, cmd, MIRA__C_STORE_RSP, status, comment, true);
}

/* ------------------------------------------------------------------ query (PS3.4 C) */

#define PATIENT_ROOT_FIND "1.2.840.10008.5.1.4.1.2.1.1"
#define STUDY_ROOT_FIND "1.2.840.10008.5.1.4.1.2.2.1"
#define TAG_QR_LEVEL MIRA_TAG(0x0008, 0x0052)
#define TAG_RETRIEVE_AE MIRA_TAG(0x0008, 0x0054)
/* An identifier is a few keys; a megabyte is far beyond any real one. */
#define MAX_IDENTIFIER (1u << 20)

enum {
    STATUS_PENDING = 0xFF00,
    STATUS_CANCEL = 0xFE00,
    STATUS_IDENTIFIER_MISMATCH = 0xA900,
    STATUS_UNABLE_TO_PROCESS = 0xC000,
};

bool mira__is_find_sop_class(const char *uid)
{
    return strcmp(uid, PATIENT_ROOT_FIND) == 0 || strcmp(uid, STUDY_ROOT_FIND) == 0;
}

typedef struct membuf {
    mira__buf b;
    bool over;
} membuf;

static bool collect(void *ctx, const uint8_t *data, size_t len, bool last)
{
    membuf *m = ctx;
    if (m->over || m->b.len + len > MAX_IDENTIFIER) {
        m->over = true;
        return true;
    }
    mira__buf_append(&m->b, data, len);
    return true;
}

typedef struct find_state {
    mira_dimse_server *s;
    mira__association *as;
    uint8_t pctx;
    const mira_dataset *cmd;
    const char *ts;
    const char *level_name;
    const char *ae_title;
    uint16_t message_id;
    uint64_t matches;
    bool cancelled, failed;
} find_state;

/* A C-CANCEL-RQ waiting for our message? (see mira__dimse_poll_cancel) */
static bool check_cancel(find_state *f)
{
    switch (mira__dimse_poll_cancel(f->as, f->message_id, "C-FIND")) {
    case MIRA__POLL_NONE:
        return true;
    case MIRA__POLL_CANCELLED:
        f->cancelled = true;
        return false;
    case MIRA__POLL_ENDED:
        break;
    }
    f->failed = true;
    return false;
}

static bool send_match(void *ctx, const mira_dataset *match)
{
    find_state *f = ctx;
    if (!check_cancel(f))
        return false;
    /* the match with the level and our AE title, encoded in the context's syntax */
    mira_dataset *id = mira_dataset_new(NULL);
    bool ok = id != NULL;
    for (size_t i = 0; ok && i < mira_dataset_count(match); i++) {
        const mira_element *e = mira_dataset_at(match, i);
        if (mira_element_vr(e) == MIRA_VR_SQ) {
            mira_element *seq = mira_dataset_set_sequence(id, mira_element_tag(e), NULL);
            for (size_t k = 0; seq && k < mira_element_item_count(e); k++) {
                const mira_dataset *item = mira_element_item(e, k);
                mira_dataset *dst = mira_element_add_item(seq, NULL);
                for (size_t j = 0; dst && j < mira_dataset_count(item); j++) {
                    const mira_element *ie = mira_dataset_at(item, j);
                    size_t n = 0;
                    const uint8_t *v = mira_element_bytes(ie, &n);
                    if (v || n == 0)
                        mira_dataset_set_bytes(dst, mira_element_tag(ie), mira_element_vr(ie),
                                               v ? v : (const uint8_t *)"", n, NULL);
                }
            }
            ok = seq != NULL;
            continue;
        }
        size_t n = 0;
        const uint8_t *v = mira_element_bytes(e, &n);
        ok = mira_dataset_set_bytes(id, mira_element_tag(e), mira_element_vr(e),
                                    v ? v : (const uint8_t *)"", v ? n : 0, NULL) != NULL;
    }
    ok = ok && mira_dataset_set_string(id, TAG_QR_LEVEL, MIRA_VR_CS, f->level_name, NULL) &&
         mira_dataset_set_string(id, TAG_RETRIEVE_AE, MIRA_VR_AE, f->ae_title, NULL);
    mira_ts_info info;
    mira_ts_lookup(f->ts, &info);
    mira__buf b;
    mira__buf_init(&b);
    ok = ok && mira__dataset_encode(id, info.explicit_vr, info.big_endian, &b, NULL) && !b.failed;
    mira_dataset_free(id);
    mira_dataset *rsp = ok ? response(f->cmd, MIRA__C_FIND_RSP, STATUS_PENDING, NULL, false)
                           : NULL;
    ok = rsp && mira__cmd_set_u16(rsp, MIRA__TAG_DATA_SET_TYPE, 0x0001);
    if (ok) {
        ok = mira__dimse_send(f->as, f->pctx, rsp, b.data ? b.data : (const uint8_t *)"", b.len,
                              NULL);
        f->failed |= !ok;
    } else {
        f->failed = true;
        mira__assoc_abort(f->as, MIRA__ABORT_PROVIDER, 0, "out of memory");
    }
    mira_dataset_free(rsp);
    mira__buf_cleanup(&b);
    f->matches += ok;
    return ok;
}

bool mira__serve_find(mira_dimse_server *s, mira__store_ctx *st, mira__association *as,
                      uint64_t assoc_id, uint8_t pctx, const mira_dataset *cmd, bool has_data)
{
    char sop_class[65];
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop_class, sizeof sop_class);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    const char *ts = mira__assoc_context_ts(as, pctx);
    membuf m = {{0}, false};
    mira__buf_init(&m.b);
    if (has_data && !mira__dimse_recv_data(as, pctx, collect, &m, NULL)) {
        mira__buf_cleanup(&m.b);
        return false;
    }
    uint16_t status = STATUS_SUCCESS;
    const char *comment = NULL;
    char why[200] = "";
    mira_file *f = NULL;
    mira_ts_info info;
    if (!st->archive || !ctx_sop || !mira__is_find_sop_class(ctx_sop) ||
        strcmp(ctx_sop, sop_class) != 0) {
        status = STATUS_SOP_CLASS_NOT_SUPPORTED;
        comment = "SOP class not negotiated on this presentation context";
    } else if (!has_data || m.over || m.b.failed) {
        status = STATUS_UNABLE_TO_PROCESS;
        comment = m.over ? "the identifier is over 1 MiB" : "a C-FIND-RQ without an identifier";
    } else if (!mira_ts_lookup(ts, &info) || info.deflated) {
        status = STATUS_UNABLE_TO_PROCESS;
        comment = "identifiers in this transfer syntax are not supported";
    } else {
        mira_read_options ro;
        mira_read_options_init(&ro);
        ro.raw = true;
        ro.transfer_syntax = ts;
        ro.no_mmap = true;
        mira_error *e = NULL;
        f = mira_file_read_memory(m.b.data ? m.b.data : (const uint8_t *)"", m.b.len, &ro, true,
                                  &e);
        if (!f) {
            status = STATUS_IDENTIFIER_MISMATCH;
            snprintf(why, sizeof why, "the identifier cannot be read: %s",
                     mira_error_get_message(e));
            comment = why;
            mira_error_free(e);
        }
    }
    mira__buf_cleanup(&m.b);
    find_state fs = {s, as, pctx, cmd, ts, NULL, mira__server_ae_title(s), 0, 0, false, false};
    mira__cmd_get_u16(cmd, MIRA__TAG_MESSAGE_ID, &fs.message_id);
    if (f) {
        mira_dataset *ident = mira_file_dataset(f);
        const mira_element *le = mira_dataset_get(ident, TAG_QR_LEVEL);
        char *lv = le ? mira_element_get_string(le, 0, NULL) : NULL;
        mira_level level;
        if (!lv || !mira_level_from_name(lv, &level) || strcmp(lv, "INSTANCE") == 0 ||
            (level == MIRA_LEVEL_PATIENT && strcmp(ctx_sop, STUDY_ROOT_FIND) == 0)) {
            status = STATUS_IDENTIFIER_MISMATCH;
            snprintf(why, sizeof why, "Query/Retrieve Level %s%s%s is not one of this model",
                     lv ? "\"" : "", lv ? lv : "missing", lv ? "\"" : "");
            comment = why;
        } else if (!mira__qr_ext_agreed(as, ctx_sop, MIRA__QR_RELATIONAL) &&
                   !mira__qr_hierarchical(ident, level, strcmp(ctx_sop, STUDY_ROOT_FIND) == 0,
                                          true, why, sizeof why)) {
            /* without relational queries, the baseline rules of PS3.4 C.4.1.2.1 */
            status = STATUS_IDENTIFIER_MISMATCH;
            comment = why;
            mira__log(s, MIRA_LOG_WARNING, "association %llu: C-FIND refused (0x%04X): %s",
                      (unsigned long long)assoc_id, status, why);
        } else {
            fs.level_name = mira_level_name(level);
            mira_dataset_remove(ident, TAG_QR_LEVEL);
            mira_dataset_remove(ident, TAG_RETRIEVE_AE);
            mira_find_options fo;
            mira_find_options_init(&fo);
            fo.combined_datetime = mira__qr_ext_agreed(as, ctx_sop, MIRA__QR_DATETIME);
            mira_error *e = NULL;
            if (!mira_archive_find(st->archive, level, ident, &fo, send_match, &fs, &e) &&
                !fs.cancelled && !fs.failed) {
                status = mira_error_get_code(e) == MIRA_ERR_ARGUMENT ||
                                 mira_error_get_code(e) == MIRA_ERR_INVALID
                             ? STATUS_IDENTIFIER_MISMATCH
                             : STATUS_UNABLE_TO_PROCESS;
                snprintf(why, sizeof why, "%s", e ? mira_error_get_message(e) : "search failed");
                comment = why;
                mira__log(s, MIRA_LOG_ERROR, "association %llu: C-FIND failed (0x%04X): %s",
                          (unsigned long long)assoc_id, status, why);
            }
            mira_error_free(e);
        }
        mira_free(lv);
        mira_file_free(f);
    }
    if (fs.failed)
        return false;
    if (fs.cancelled)
        status = STATUS_CANCEL;
    if (status == STATUS_SUCCESS || status == STATUS_CANCEL)
        mira__log(s, MIRA_LOG_INFO, "association %llu: C-FIND at %s level: %llu matches%s",
                  (unsigned long long)assoc_id, fs.level_name, (unsigned long long)fs.matches,
                  fs.cancelled ? ", cancelled" : "");
    return respond(as, pctx, cmd, MIRA__C_FIND_RSP, status, comment, false);
}
