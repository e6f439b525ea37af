/* Query/Retrieve SCU (PS3.4 C.4, K.4): C-FIND, C-MOVE and C-GET as the requestor. */
#include "dimse_int.h"
#include "core/fileio.h"
#include "retrieve.h"

#include "dicom/dataset_int.h"
#include "dicom/impl.h"
#include "mira/pixel.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_RESPONSE_DATA (16u << 20) /* an identifier in a response */
#define MAX_RESPONSES 100000000u      /* bounds every receiving loop */
#define QR_CTX 1                      /* the presentation context of the Q/R model */

#define TAG_MOVE_DESTINATION MIRA_TAG(0x0000, 0x0600)
#define TAG_REMAINING MIRA_TAG(0x0000, 0x1020)
#define TAG_COMPLETED MIRA_TAG(0x0000, 0x1021)
#define TAG_FAILED MIRA_TAG(0x0000, 0x1022)
#define TAG_WARNING MIRA_TAG(0x0000, 0x1023)
#define TAG_FAILED_UIDS MIRA_TAG(0x0008, 0x0058)

enum { OP_FIND, OP_MOVE, OP_GET };

/* [root][operation] */
static const char *const models[3][3] = {
    {"1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.1.3"},
    {"1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.2.2", "1.2.840.10008.5.1.4.1.2.2.3"},
    {"1.2.840.10008.5.1.4.31", NULL, NULL},
};

/* The storage SOP classes a C-GET proposes by default: what modalities commonly produce. */
static const char *const common_storage[] = {
    "1.2.840.10008.5.1.4.1.1.1",       /* CR */
    "1.2.840.10008.5.1.4.1.1.1.1",     /* DX for presentation */
    "1.2.840.10008.5.1.4.1.1.1.1.1",   /* DX for processing */
    "1.2.840.10008.5.1.4.1.1.1.2",     /* MG for presentation */
    "1.2.840.10008.5.1.4.1.1.1.2.1",   /* MG for processing */
    "1.2.840.10008.5.1.4.1.1.2",       /* CT */
    "1.2.840.10008.5.1.4.1.1.2.1",     /* Enhanced CT */
    "1.2.840.10008.5.1.4.1.1.3.1",     /* US multi-frame */
    "1.2.840.10008.5.1.4.1.1.4",       /* MR */
    "1.2.840.10008.5.1.4.1.1.4.1",     /* Enhanced MR */
    "1.2.840.10008.5.1.4.1.1.6.1",     /* US */
    "1.2.840.10008.5.1.4.1.1.7",       /* Secondary Capture */
    "1.2.840.10008.5.1.4.1.1.7.1",     /* Multi-frame SC, single bit */
    "1.2.840.10008.5.1.4.1.1.7.2",     /* Multi-frame SC, grayscale byte */
    "1.2.840.10008.5.1.4.1.1.7.3",     /* Multi-frame SC, grayscale word */
    "1.2.840.10008.5.1.4.1.1.7.4",     /* Multi-frame SC, true color */
    "1.2.840.10008.5.1.4.1.1.9.1.1",   /* 12-lead ECG */
    "1.2.840.10008.5.1.4.1.1.11.1",    /* Grayscale Softcopy Presentation State */
    "1.2.840.10008.5.1.4.1.1.12.1",    /* XA */
    "1.2.840.10008.5.1.4.1.1.12.2",    /* RF */
    "1.2.840.10008.5.1.4.1.1.13.1.3",  /* Breast Tomosynthesis */
    "1.2.840.10008.5.1.4.1.1.20",      /* NM */
    "1.2.840.10008.5.1.4.1.1.66",      /* Raw Data */
    "1.2.840.10008.5.1.4.1.1.66.4",    /* Segmentation */
    "1.2.840.10008.5.1.4.1.1.77.1.4",  /* VL Photographic */
    "1.2.840.10008.5.1.4.1.1.88.11",   /* Basic Text SR */
    "1.2.840.10008.5.1.4.1.1.88.22",   /* Enhanced SR */
    "1.2.840.10008.5.1.4.1.1.88.33",   /* Comprehensive SR */
    "1.2.840.10008.5.1.4.1.1.88.59",   /* Key Object Selection */
    "1.2.840.10008.5.1.4.1.1.104.1",   /* Encapsulated PDF */
    "1.2.840.10008.5.1.4.1.1.128",     /* PET */
    "1.2.840.10008.5.1.4.1.1.130",     /* Enhanced PET */
    "1.2.840.10008.5.1.4.1.1.481.1",   /* RT Image */
    "1.2.840.10008.5.1.4.1.1.481.2",   /* RT Dose */
    "1.2.840.10008.5.1.4.1.1.481.3",   /* RT Structure Set */
    "1.2.840.10008.5.1.4.1.1.481.5",   /* RT Plan */
};

/* Proposed in the second context of each storage class of a C-GET. */
static const char *const compressed_ts[] = {
    MIRA_TS_DEFLATED_LE,     MIRA_TS_JPEG_LOSSLESS_SV1, MIRA_TS_JPEG_LOSSLESS,
    MIRA_TS_JPEG_BASELINE,   MIRA_TS_JPEG_EXTENDED,     MIRA_TS_JPEGLS_LOSSLESS,
    MIRA_TS_JPEGLS_NEAR,     MIRA_TS_J2K_LOSSLESS,      MIRA_TS_J2K,
    MIRA_TS_RLE,             MIRA_TS_HTJ2K_LOSSLESS,    MIRA_TS_HTJ2K_LOSSLESS_RPCL,
    MIRA_TS_HTJ2K,           MIRA_TS_EXPLICIT_BE,
};

void mira_dimse_qr_options_init(mira_dimse_qr_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->root = MIRA_DIMSE_QR_STUDY;
}

/* ------------------------------------------------------------------ association */

typedef struct qr {
    mira__association as;
    mira__tls *tls;
    const char *host;
    int port;
    const char *ts; /* of the Q/R context */
} qr;

static void qr_close(qr *q)
{
    mira__conn_close(&q->as.conn);
    mira__assoc_free_buffers(&q->as);
    mira__tls_free(q->tls);
    q->tls = NULL;
}

/* Propose the model (and, for C-GET, the storage contexts with the SCP role), associate. */
static bool qr_open(qr *q, const char *host, int port, const mira_dimse_scu_options *opt,
                    const mira_dimse_qr_options *qo, int op, mira_error **err)
{
    mira_dimse_scu_options defaults;
    mira_dimse_scu_options_init(&defaults);
    const mira_dimse_scu_options *o = opt ? opt : &defaults;
    memset(q, 0, sizeof *q);
    q->host = host;
    q->port = port;
    unsigned root = (unsigned)qo->root;
    const char *model = root < 3 ? models[root][op] : NULL;
    if (!model) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL,
                       "the worklist model has C-FIND only, no C-MOVE or C-GET");
        return false;
    }
    if (!mira__scu_init(&q->as, o, &q->tls, err))
        return false;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    mira__pctx *c = mira__assoc_add_pctx(&rq, QR_CTX, model);
    bool ok = c && mira__pctx_add_ts(c, MIRA_TS_EXPLICIT_LE) &&
              mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE);
    if (op == OP_GET) {
        const char *const *classes = qo->sop_classes ? qo->sop_classes : common_storage;
        size_t n = qo->sop_classes ? qo->nsop_classes
                                   : sizeof common_storage / sizeof common_storage[0];
        if (n > 63) {
            mira__assoc_cleanup(&rq);
            qr_close(q);
            mira_error_set(err, MIRA_ERR_ARGUMENT, NULL,
                           "at most 63 storage SOP classes fit in one association (%zu given)", n);
            return false;
        }
        /* A peer choosing among several syntaxes of a context picks by its own preference
         * (and would transcode for nothing): when they fit, each compressed syntax gets a
         * context of its own, so an instance can come as the peer holds it. */
        size_t ncomp = sizeof compressed_ts / sizeof compressed_ts[0];
        bool singles = n * (1 + ncomp) <= 126;
        unsigned id = 3;
        for (size_t i = 0; ok && i < n; i++) {
            mira__pctx *native = mira__assoc_add_pctx(&rq, (uint8_t)id, classes[i]);
            id += 2;
            ok = native && mira__pctx_add_ts(native, MIRA_TS_EXPLICIT_LE) &&
                 mira__pctx_add_ts(native, MIRA_TS_IMPLICIT_LE);
            mira__pctx *enc = NULL;
            for (size_t k = 0; ok && k < ncomp; k++) {
                if (!enc || singles) {
                    enc = mira__assoc_add_pctx(&rq, (uint8_t)id, classes[i]);
                    id += 2;
                }
                ok = enc && mira__pctx_add_ts(enc, compressed_ts[k]);
            }
            ok = ok && mira__assoc_add_role(&rq, classes[i], false, true);
        }
    }
    if (!ok) {
        mira__assoc_cleanup(&rq);
        qr_close(q);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an A-ASSOCIATE-RQ");
        return false;
    }
    /* extended negotiation of the model (PS3.4 C.5.1.1: relational queries, combined
     * date-time matching, fuzzy semantic matching, timezone adjustment; C.5.2.1, C.5.3.1:
     * relational retrieval): up to the last field set */
    uint8_t info[4] = {qo->relational, 0, 0, 0};
    size_t ninfo = qo->relational ? 1 : 0;
    if (op == OP_FIND) {
        bool flags[3] = {qo->datetime_matching, qo->fuzzy_matching, qo->timezone_adjustment};
        for (size_t k = 0; k < 3; k++)
            if (flags[k]) {
                info[k + 1] = 1;
                ninfo = k + 2;
            }
    }
    mira_dimse_ext_neg ext = {model, info, ninfo};
    ok = ok && mira__scu_request(&q->as, host, port, &rq, o, &ext, ninfo ? 1 : 0, err);
    mira__assoc_cleanup(&rq);
    if (ok && !(q->ts = mira__assoc_context_ts(&q->as, QR_CTX))) {
        const mira_uid_entry *u = mira_uid_find(model);
        mira_error_set(err, MIRA_ERR_CONFLICT, "Not accepted", "%s:%d did not accept %s", host,
                       port, u ? u->name : model);
        mira__assoc_release(&q->as, NULL);
        ok = false;
    }
    if (!ok)
        qr_close(q);
    return ok;
}

static void set_ended(qr *q, mira_error **err)
{
    if (err && !*err)
        mira_error_set(err, MIRA_ERR_IO, NULL, "%s:%d ended the association: %s", q->host,
                       q->port, q->as.end_detail[0] ? q->as.end_detail : "closed");
}

static void protocol_error(qr *q, mira_error **err, const char *fmt, uint16_t field, uint16_t id)
{
    char why[160];
    snprintf(why, sizeof why, fmt, field, id);
    mira_error_set(err, MIRA_ERR_INVALID, "Unexpected response", "%s:%d: %s", q->host, q->port,
                   why);
    mira__assoc_abort(&q->as, MIRA__ABORT_USER, 0, why);
}

/* The request: the command, then the identifier encoded in the context's syntax. */
static bool send_request(qr *q, uint16_t field, const char *model, const char *dest,
                         const mira_dataset *identifier, mira_error **err)
{
    mira_ts_info info;
    mira__buf b;
    mira__buf_init(&b);
    mira_dataset *cmd = mira_dataset_new(err);
    static const uint8_t zero[4];
    bool ok = cmd && mira_ts_lookup(q->ts, &info) &&
              mira__dataset_encode(identifier, info.explicit_vr, info.big_endian, &b, err) &&
              !b.failed && mira_dataset_set_bytes(cmd, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, err) &&
              mira_dataset_set_string(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, model, err) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_COMMAND_FIELD, field) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_MESSAGE_ID, 1) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_PRIORITY, 0) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_DATA_SET_TYPE, 0x0000);
    if (ok && dest)
        ok = mira_dataset_set_string(cmd, TAG_MOVE_DESTINATION, MIRA_VR_AE, dest, err) != NULL;
    if (ok)
        ok = mira__dimse_send(&q->as, QR_CTX, cmd, b.data ? b.data : (const uint8_t *)"", b.len,
                              err);
    else if (err && !*err)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the request");
    mira_dataset_free(cmd);
    mira__buf_cleanup(&b);
    if (ok)
        q->as.messages++;
    return ok;
}

static bool send_cancel(qr *q, mira_error **err)
{
    mira_dataset *cmd = mira_dataset_new(err);
    static const uint8_t zero[4];
    bool ok = cmd &&
              mira_dataset_set_bytes(cmd, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, err) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_COMMAND_FIELD, MIRA__C_CANCEL_RQ) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_RESPONDED_TO, 1) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET) &&
              mira__dimse_send(&q->as, QR_CTX, cmd, NULL, 0, err);
    mira_dataset_free(cmd);
    return ok;
}

/* Before reading the next response: with a cancel flag, wait in 200 ms slices (a signal
 * ends one at once) and send the C-CANCEL-RQ when it is set, once. False when that failed. */
static bool watch_cancel(qr *q, const mira_dimse_qr_options *qo, bool *cancelled,
                         mira_error **err)
{
    for (int waited = 0; qo->cancel && !*cancelled; waited += 200) {
        if (*qo->cancel) {
            *cancelled = true;
            if (!send_cancel(q, err)) {
                set_ended(q, err);
                return false;
            }
            break;
        }
        if (mira__assoc_pending(&q->as) || waited >= q->as.idle_ms)
            break; /* a response to read (or the read's own timeout to meet) */
        struct pollfd p = {q->as.conn.fd, POLLIN, 0};
        poll(&p, 1, 200);
    }
    return true;
}

typedef struct membuf {
    mira__buf b;
    bool over;
} membuf;

static bool collect(void *ctx, const uint8_t *data, size_t len, bool last)
{
    (void)last;
    membuf *m = ctx;
    if (m->over || m->b.len + len > MAX_RESPONSE_DATA)
        m->over = true;
    else
        mira__buf_append(&m->b, data, len);
    return true;
}

/* The data set following a response, read in the context's syntax (NULL and an error when it
 * cannot be; *ended when the association ended). */
static mira_file *recv_identifier(qr *q, uint8_t pctx, bool *ended, mira_error **err)
{
    membuf m;
    memset(&m, 0, sizeof m);
    mira__buf_init(&m.b);
    *ended = false;
    if (!mira__dimse_recv_data(&q->as, pctx, collect, &m, err)) {
        mira__buf_cleanup(&m.b);
        *ended = true;
        set_ended(q, err);
        return NULL;
    }
    const char *ts = mira__assoc_context_ts(&q->as, pctx);
    mira_file *f = NULL;
    if (m.over || m.b.failed || !ts) {
        mira_error_set(err, MIRA_ERR_INVALID, NULL, "%s:%d sent an identifier over 16 MiB",
                       q->host, q->port);
    } else {
        mira_read_options ro;
        mira_read_options_init(&ro);
        ro.raw = true;
        ro.transfer_syntax = ts;
        ro.no_mmap = true;
        f = mira_file_read_memory(m.b.data ? m.b.data : (const uint8_t *)"", m.b.len, &ro, true,
                                  err);
    }
    mira__buf_cleanup(&m.b);
    return f;
}

static bool is_pending(uint16_t status)
{
    return status == 0xFF00 || status == 0xFF01;
}

/* ------------------------------------------------------------------ C-FIND */

bool mira_dimse_find(const char *host, int port, const mira_dimse_scu_options *opt,
                     const mira_dimse_qr_options *qo, const mira_dataset *identifier,
                     mira_dimse_match_fn fn, void *ctx, uint16_t *status, mira_error **err)
{
    mira_dimse_qr_options qd;
    mira_dimse_qr_options_init(&qd);
    if (!qo)
        qo = &qd;
    qr q;
    if (!qr_open(&q, host, port, opt, qo, OP_FIND, err))
        return false;
    const char *model = models[qo->root][OP_FIND];
    bool ok = send_request(&q, MIRA__C_FIND_RQ, model, NULL, identifier, err);
    if (!ok)
        set_ended(&q, err);
    uint64_t matches = 0;
    bool cancelled = false;
    for (uint32_t guard = 0; ok && guard < MAX_RESPONSES; guard++) {
        uint8_t pctx = 0;
        mira_dataset *cmd = NULL;
        if (!watch_cancel(&q, qo, &cancelled, err)) {
            ok = false;
            break;
        }
        mira__recv r = mira__dimse_recv_command(&q.as, &pctx, &cmd, q.as.idle_ms, err);
        if (r != MIRA__RECV_COMMAND) {
            set_ended(&q, err);
            ok = false;
            break;
        }
        uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET, st = 0;
        mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field);
        mira__cmd_get_u16(cmd, MIRA__TAG_RESPONDED_TO, &id);
        mira__cmd_get_u16(cmd, MIRA__TAG_DATA_SET_TYPE, &dstype);
        bool has_status = mira__cmd_get_u16(cmd, MIRA__TAG_STATUS, &st);
        mira_dataset_free(cmd);
        if (field != MIRA__C_FIND_RSP || id != 1 || !has_status || pctx != QR_CTX) {
            protocol_error(&q, err, "command 0x%04X for message %u while waiting for a "
                                    "C-FIND-RSP", field, id);
            ok = false;
            break;
        }
        mira_file *f = NULL;
        if (dstype != MIRA__NO_DATA_SET) {
            bool ended = false;
            f = recv_identifier(&q, pctx, &ended, err);
            if (!f) {
                if (!ended)
                    mira__assoc_abort(&q.as, MIRA__ABORT_USER, 0, "an unreadable identifier");
                ok = false;
                break;
            }
        }
        if (!is_pending(st)) {
            mira_file_free(f);
            *status = st;
            break;
        }
        if (f && !cancelled) {
            matches++;
            bool more = !fn || fn(ctx, mira_file_dataset(f));
            if (!more || (qo->limit && matches >= qo->limit)) {
                cancelled = true;
                if (!send_cancel(&q, err)) {
                    set_ended(&q, err);
                    ok = false;
                }
            }
        }
        mira_file_free(f);
    }
    if (ok)
        mira__assoc_release(&q.as, NULL); /* the answer is in: a failed release loses nothing */
    qr_close(&q);
    return ok;
}

/* ------------------------------------------------------------------ C-MOVE, C-GET */

static int count_of(const mira_dataset *cmd, mira_tag tag)
{
    uint16_t v = 0;
    return mira__cmd_get_u16(cmd, tag, &v) ? (int)v : -1;
}

/* The preamble and a file meta group (PS3.10 7.1) for an instance received. */
static bool write_meta(int fd, const char *sop_class, const char *sop_instance, const char *ts,
                       const char *source_ae)
{
    mira__buf b;
    mira__buf_init(&b);
    bool ok = mira__file_meta_encode(&b, sop_class, sop_instance, ts, source_ae) &&
              mira__write_all(fd, b.data, b.len);
    mira__buf_cleanup(&b);
    return ok;
}

typedef struct spool {
    int fd;
    bool error;
} spool;

static bool spool_write(void *ctx, const uint8_t *data, size_t len, bool last)
{
    (void)last;
    spool *sp = ctx;
    if (!sp->error && !mira__write_all(sp->fd, data, len))
        sp->error = true; /* keep receiving: the failure is answered in the response */
    return true;
}

static bool safe_uid(const char *uid)
{
    if (!*uid || strlen(uid) > 64 || uid[0] == '.')
        return false;
    for (const char *p = uid; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    return true;
}

/* A C-STORE sub-operation of a C-GET: the data set into out_dir, the callback, the response. */
static bool receive_store(qr *q, const mira_dimse_qr_options *qo, uint8_t pctx,
                          const mira_dataset *cmd, bool has_data, mira_dimse_received_fn received,
                          void *ctx, mira_error **err)
{
    char sop_class[65], sop_instance[65];
    uint16_t mid = 0, status = 0x0000;
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop_class, sizeof sop_class);
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_INSTANCE, sop_instance, sizeof sop_instance);
    mira__cmd_get_u16(cmd, MIRA__TAG_MESSAGE_ID, &mid);
    const char *ts = mira__assoc_context_ts(&q->as, pctx);
    const char *ctx_sop = mira__assoc_context_sop(&q->as, pctx);
    char tmp[4096], path[4096];
    spool sp = {-1, false};
    bool named = safe_uid(sop_instance) &&
                 snprintf(tmp, sizeof tmp, "%s/.%s.part", qo->out_dir, sop_instance) <
                     (int)sizeof tmp &&
                 snprintf(path, sizeof path, "%s/%s.dcm", qo->out_dir, sop_instance) <
                     (int)sizeof path;
    if (!has_data || !ts || !ctx_sop || strcmp(ctx_sop, sop_class) != 0)
        status = 0xA900; /* data set does not match SOP class */
    else if (!named)
        status = 0xC000; /* cannot understand */
    else if ((sp.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
             !write_meta(sp.fd, sop_class, sop_instance, ts, q->as.rq.called_ae))
        sp.error = true;
    if (has_data && !mira__dimse_recv_data(&q->as, pctx, sp.fd >= 0 ? spool_write : NULL, &sp,
                                           err)) {
        if (sp.fd >= 0) {
            close(sp.fd);
            unlink(tmp);
        }
        set_ended(q, err);
        return false;
    }
    if (sp.fd >= 0) {
        sp.error |= close(sp.fd) != 0;
        if (sp.error || rename(tmp, path) != 0) {
            unlink(tmp);
            sp.error = true;
        }
    }
    if (sp.error)
        status = 0xA700; /* out of resources */
    else if (status == 0 && received)
        status = received(ctx, path, sop_class, sop_instance, ts);
    mira_dataset *rsp = mira_dataset_new(err);
    static const uint8_t zero[4];
    bool ok = rsp &&
              mira_dataset_set_bytes(rsp, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, err) &&
              mira_dataset_set_string(rsp, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, sop_class,
                                      err) &&
              mira__cmd_set_u16(rsp, MIRA__TAG_COMMAND_FIELD, MIRA__C_STORE_RSP) &&
              mira__cmd_set_u16(rsp, MIRA__TAG_RESPONDED_TO, mid) &&
              mira__cmd_set_u16(rsp, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET) &&
              mira__cmd_set_u16(rsp, MIRA__TAG_STATUS, status) &&
              mira_dataset_set_string(rsp, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI,
                                      sop_instance, err) &&
              mira__dimse_send(&q->as, pctx, rsp, NULL, 0, err);
    mira_dataset_free(rsp);
    if (!ok)
        set_ended(q, err);
    return ok;
}

static bool retrieve(const char *host, int port, const mira_dimse_scu_options *opt,
                     const mira_dimse_qr_options *qo, int op, const mira_dataset *identifier,
                     mira_dimse_retrieve_fn fn, mira_dimse_received_fn received, void *ctx,
                     uint16_t *status, mira_error **err)
{
    mira_dimse_qr_options qd;
    mira_dimse_qr_options_init(&qd);
    if (!qo)
        qo = &qd;
    if (op == OP_MOVE && (!qo->move_destination || !*qo->move_destination)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "C-MOVE needs a move destination");
        return false;
    }
    if (op == OP_GET && (!qo->out_dir || !*qo->out_dir)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "C-GET needs a folder to write into");
        return false;
    }
    qr q;
    if (!qr_open(&q, host, port, opt, qo, op, err))
        return false;
    const char *model = models[qo->root][op];
    uint16_t rsp_field = op == OP_MOVE ? MIRA__C_MOVE_RSP : MIRA__C_GET_RSP;
    bool ok = send_request(&q, op == OP_MOVE ? MIRA__C_MOVE_RQ : MIRA__C_GET_RQ, model,
                           op == OP_MOVE ? qo->move_destination : NULL, identifier, err);
    if (!ok)
        set_ended(&q, err);
    bool cancelled = false;
    for (uint32_t guard = 0; ok && guard < MAX_RESPONSES; guard++) {
        uint8_t pctx = 0;
        mira_dataset *cmd = NULL;
        if (!watch_cancel(&q, qo, &cancelled, err)) {
            ok = false;
            break;
        }
        mira__recv r = mira__dimse_recv_command(&q.as, &pctx, &cmd, q.as.idle_ms, err);
        if (r != MIRA__RECV_COMMAND) {
            set_ended(&q, err);
            ok = false;
            break;
        }
        uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET, st = 0;
        mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field);
        mira__cmd_get_u16(cmd, MIRA__TAG_RESPONDED_TO, &id);
        mira__cmd_get_u16(cmd, MIRA__TAG_DATA_SET_TYPE, &dstype);
        bool has_status = mira__cmd_get_u16(cmd, MIRA__TAG_STATUS, &st);
        if (op == OP_GET && field == MIRA__C_STORE_RQ && pctx != QR_CTX) {
            ok = receive_store(&q, qo, pctx, cmd, dstype != MIRA__NO_DATA_SET, received, ctx,
                               err);
            mira_dataset_free(cmd);
            continue;
        }
        if (field != rsp_field || id != 1 || !has_status || pctx != QR_CTX) {
            mira_dataset_free(cmd);
            protocol_error(&q, err, "command 0x%04X for message %u while waiting for the "
                                    "retrieve's responses", field, id);
            ok = false;
            break;
        }
        mira_dimse_retrieve_status rs;
        memset(&rs, 0, sizeof rs);
        rs.status = st;
        rs.final = !is_pending(st);
        rs.remaining = count_of(cmd, TAG_REMAINING);
        rs.completed = count_of(cmd, TAG_COMPLETED);
        rs.failed = count_of(cmd, TAG_FAILED);
        rs.warning = count_of(cmd, TAG_WARNING);
        char comment[65];
        mira__cmd_get_str(cmd, MIRA__TAG_ERROR_COMMENT, comment, sizeof comment);
        rs.error_comment = comment;
        mira_dataset_free(cmd);
        char *failed = NULL;
        if (dstype != MIRA__NO_DATA_SET) {
            bool ended = false;
            mira_file *f = recv_identifier(&q, pctx, &ended, err);
            if (!f) {
                if (!ended)
                    mira__assoc_abort(&q.as, MIRA__ABORT_USER, 0, "an unreadable identifier");
                ok = false;
                break;
            }
            const mira_element *e = mira_dataset_get(mira_file_dataset(f), TAG_FAILED_UIDS);
            failed = e ? mira_element_get_text(e, NULL) : NULL;
            mira_file_free(f);
        }
        rs.failed_uids = failed ? failed : "";
        if (fn)
            fn(ctx, &rs);
        mira_free(failed);
        if (rs.final) {
            *status = st;
            break;
        }
    }
    if (ok)
        mira__assoc_release(&q.as, NULL); /* the answer is in: a failed release loses nothing */
    qr_close(&q);
    return ok;
}

bool mira_dimse_move(const char *host, int port, const mira_dimse_scu_options *opt,
                     const mira_dimse_qr_options *q, const mira_dataset *identifier,
                     mira_dimse_retrieve_fn fn, void *ctx, uint16_t *status, mira_error **err)
{
    return retrieve(host, port, opt, q, OP_MOVE, identifier, fn, NULL, ctx, status, err);
}

bool mira_dimse_get(const char *host, int port, const mira_dimse_scu_options *opt,
                    const mira_dimse_qr_options *q, const mira_dataset *identifier,
                    mira_dimse_retrieve_fn fn, mira_dimse_received_fn received, void *ctx,
                    uint16_t *status, mira_error **err)
{
    return retrieve(host, port, opt, q, OP_GET, identifier, fn, received, ctx, status, err);
}
