/* Associations (PS3.8 9.2, Annex ... state machine) and DIMSE messages over P-DATA-TF. */
#include "dimse_int.h"
#include "net/tls.h"

#include "dicom/dataset_int.h"
#include "dicom/impl.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Command sets are a few hundred bytes; anything near this is an attack or a bug. */
#define MAX_COMMAND (64u * 1024u)
/* What we send in one PDU when the peer sets no limit. */
#define UNLIMITED_SEND (1u << 20)
/* A mapped data set's pages are given back once this much more of it has been sent. */
#define RELEASE_STEP (8u << 20)

static void set_end(mira__association *as, mira__end end, const char *why)
{
    if (as->end != MIRA__END_NONE)
        return;
    as->end = end;
    snprintf(as->end_detail, sizeof as->end_detail, "%s", why ? why : "");
}

void mira__assoc_free_buffers(mira__association *as)
{
    mira__pdu_cleanup(&as->pdu);
    mira_free(as->pdu_buf);
    as->pdu_buf = NULL;
    as->pdu_cap = 0;
    mira__assoc_cleanup(&as->rq);
    mira__assoc_cleanup(&as->ac);
}

bool mira__assoc_send(mira__association *as, const void *data, size_t len, mira_error **err)
{
    mira_error *e = NULL;
    mira__io io = mira__conn_write(&as->conn, data, len, as->artim_ms > as->idle_ms ? as->artim_ms
                                                                                 : as->idle_ms,
                                   &e);
    if (io == MIRA__IO_OK)
        return true;
    char why[200];
    snprintf(why, sizeof why, "sending to the peer: %s",
             io == MIRA__IO_TIMEOUT   ? "timed out"
             : io == MIRA__IO_STOPPED ? "stopping"
             : e                      ? mira_error_get_message(e)
                                      : "the connection closed");
    mira_error_free(e);
    mira_error_set(err, MIRA_ERR_IO, NULL, "%s", why);
    set_end(as, MIRA__END_CLOSED, why);
    mira__conn_close(&as->conn);
    return false;
}

void mira__assoc_abort(mira__association *as, uint8_t source, uint8_t reason, const char *why)
{
    set_end(as, MIRA__END_ABORTED, why);
    if (as->conn.fd >= 0) {
        uint8_t pdu[10] = {MIRA__PDU_ABORT, 0, 0, 0, 0, 4, 0, 0, source, reason};
        /* best effort, briefly: the peer may be gone or not reading */
        (void)mira__conn_write(&as->conn, pdu, sizeof pdu, 1000, NULL);
        mira__conn_linger(&as->conn, 500);
        mira__conn_close(&as->conn);
    }
}

bool mira__assoc_read_pdu(mira__association *as, int timeout_ms, mira_error **err)
{
    mira__pdu_cleanup(&as->pdu);
    as->next_pdv = 0;
    as->pdv_off = 0;
    if (as->conn.fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, NULL, "the association has ended");
        return false;
    }
    uint8_t hdr[MIRA__PDU_HEADER];
    mira_error *e = NULL;
    mira__io io = mira__conn_read(&as->conn, hdr, sizeof hdr, timeout_ms, &e);
    uint8_t type = 0;
    uint32_t len = 0;
    if (io == MIRA__IO_OK && !mira__pdu_header(hdr, &type, &len)) {
        char why[100];
        snprintf(why, sizeof why, "unknown PDU type 0x%02X", type);
        mira_error_set(err, MIRA_ERR_INVALID, "Malformed PDU", "%s", why);
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNRECOGNIZED_PDU, why);
        return false;
    }
    if (io == MIRA__IO_OK) {
        uint32_t limit = type == MIRA__PDU_P_DATA ? as->recv_max : MIRA__PDU_ASSOC_MAX;
        if (type == MIRA__PDU_P_DATA && limit == 0)
            limit = MIRA__PDU_ASSOC_MAX;
        if (len > limit) {
            char why[160];
            snprintf(why, sizeof why, "a %s of %u bytes, over the maximum of %u",
                     mira__pdu_type_name(type), len, limit);
            mira_error_set(err, MIRA_ERR_INVALID, "Malformed PDU", "%s", why);
            mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_INVALID_PARAM, why);
            return false;
        }
        if (as->pdu_cap < (size_t)len + MIRA__PDU_HEADER) {
            size_t cap = (size_t)len + MIRA__PDU_HEADER;
            uint8_t *nb = mira_realloc(as->pdu_buf, cap);
            if (!nb) {
                mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a PDU buffer");
                mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_NOT_SPECIFIED,
                                  "out of memory");
                return false;
            }
            as->pdu_buf = nb;
            as->pdu_cap = cap;
        }
        memcpy(as->pdu_buf, hdr, sizeof hdr);
        io = mira__conn_read(&as->conn, as->pdu_buf + MIRA__PDU_HEADER, len, timeout_ms, &e);
        if (io == MIRA__IO_CLOSED) {
            mira_error_set(err, MIRA_ERR_INVALID, "Truncated PDU",
                           "the connection closed inside a %s", mira__pdu_type_name(type));
            set_end(as, MIRA__END_CLOSED, "the connection closed inside a PDU");
            mira__conn_close(&as->conn);
            return false;
        }
    }
    switch (io) {
    case MIRA__IO_OK:
        break;
    case MIRA__IO_CLOSED:
        mira_error_set(err, MIRA_ERR_IO, NULL, "the peer closed the connection");
        set_end(as, MIRA__END_CLOSED, "the peer closed the connection");
        mira__conn_close(&as->conn);
        return false;
    case MIRA__IO_TIMEOUT:
        mira_error_set(err, MIRA_ERR_IO, NULL, "timed out waiting for the peer");
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_NOT_SPECIFIED,
                          "timed out waiting for the peer");
        return false;
    case MIRA__IO_STOPPED:
        mira_error_set(err, MIRA_ERR_IO, NULL, "stopping");
        mira__assoc_abort(as, MIRA__ABORT_USER, 0, "the server is stopping");
        return false;
    case MIRA__IO_ERROR:
        set_end(as, MIRA__END_CLOSED, e ? mira_error_get_message(e) : "socket error");
        if (err && !*err) {
            *err = e;
            e = NULL;
        }
        mira_error_free(e);
        mira__conn_close(&as->conn);
        return false;
    }
    mira_error *pe = NULL;
    if (!mira__pdu_parse(as->pdu_buf, (size_t)len + MIRA__PDU_HEADER, &as->pdu, &pe)) {
        char why[256];
        snprintf(why, sizeof why, "malformed %s: %s", mira__pdu_type_name(type),
                 mira_error_get_message(pe));
        if (err && !*err) {
            *err = pe;
            pe = NULL;
        }
        mira_error_free(pe);
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_INVALID_PARAM, why);
        return false;
    }
    if (as->pdu.type == MIRA__PDU_ABORT) {
        char why[100];
        snprintf(why, sizeof why, "the peer aborted (source %u, reason %u)", as->pdu.source,
                 as->pdu.reason);
        mira_error_set(err, MIRA_ERR_IO, NULL, "%s", why);
        set_end(as, MIRA__END_PEER_ABORTED, why);
        mira__conn_close(&as->conn);
        return false;
    }
    return true;
}

static const mira__pctx *accepted(const mira__association *as, uint8_t id)
{
    for (size_t i = 0; i < as->ac.npctx; i++)
        if (as->ac.pctx[i].id == id && as->ac.pctx[i].result == MIRA__PCTX_ACCEPTED &&
            as->ac.pctx[i].nts == 1)
            return &as->ac.pctx[i];
    return NULL;
}

const char *mira__assoc_context_ts(const mira__association *as, uint8_t pctx_id)
{
    const mira__pctx *c = accepted(as, pctx_id);
    return c ? c->ts[0] : NULL;
}

const char *mira__assoc_context_sop(const mira__association *as, uint8_t pctx_id)
{
    if (!accepted(as, pctx_id))
        return NULL;
    for (size_t i = 0; i < as->rq.npctx; i++)
        if (as->rq.pctx[i].id == pctx_id)
            return as->rq.pctx[i].abstract_syntax;
    return NULL;
}

/* The next PDV of the current message: reads PDUs as needed. A PDU other than P-DATA-TF ends
 * the association (an A-RELEASE-RQ between messages is told by *release). */
static const mira__pdv *next_pdv(mira__association *as, bool between, bool *release,
                                 int timeout_ms, mira_error **err)
{
    while (as->next_pdv >= as->pdu.npdv) {
        if (!mira__assoc_read_pdu(as, timeout_ms, err))
            return NULL;
        if (as->pdu.type == MIRA__PDU_P_DATA)
            break;
        if (as->pdu.type == MIRA__PDU_RELEASE_RQ && between && release) {
            *release = true;
            return NULL;
        }
        char why[120];
        snprintf(why, sizeof why, "unexpected %s %s", mira__pdu_type_name(as->pdu.type),
                 between ? "on an established association" : "inside a DIMSE message");
        mira_error_set(err, MIRA_ERR_INVALID, "Unexpected PDU", "%s", why);
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, why);
        return NULL;
    }
    return &as->pdu.pdv[as->next_pdv++];
}

static void abort_invalid(mira__association *as, mira_error **err, const char *why)
{
    mira_error_set(err, MIRA_ERR_INVALID, "Malformed message", "%s", why);
    mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_INVALID_PARAM, why);
}

mira__recv mira__dimse_recv_command(mira__association *as, uint8_t *pctx_id, mira_dataset **cmd,
                                    int timeout_ms, mira_error **err)
{
    *cmd = NULL;
    mira__buf b;
    mira__buf_init(&b);
    int ctx = -1;
    for (;;) {
        bool release = false;
        const mira__pdv *v = next_pdv(as, ctx < 0, &release, ctx < 0 ? timeout_ms : as->artim_ms,
                                      err);
        if (!v) {
            mira__buf_cleanup(&b);
            if (release) {
                uint8_t rp[10] = {MIRA__PDU_RELEASE_RP, 0, 0, 0, 0, 4, 0, 0, 0, 0};
                if (mira__assoc_send(as, rp, sizeof rp, err)) {
                    set_end(as, MIRA__END_RELEASED, "released by the peer");
                    mira__conn_linger(&as->conn, as->artim_ms);
                    mira__conn_close(&as->conn);
                }
                return MIRA__RECV_RELEASED;
            }
            return MIRA__RECV_ENDED;
        }
        if (!v->command) {
            abort_invalid(as, err, "a data set fragment where a command was expected");
            break;
        }
        if (!accepted(as, v->pctx_id)) {
            char why[100];
            snprintf(why, sizeof why, "a PDV on presentation context %u, which is not accepted",
                     v->pctx_id);
            abort_invalid(as, err, why);
            break;
        }
        if (ctx >= 0 && v->pctx_id != ctx) {
            abort_invalid(as, err, "a command's fragments on two presentation contexts");
            break;
        }
        ctx = v->pctx_id;
        if (b.len + v->len > MAX_COMMAND) {
            abort_invalid(as, err, "a command set over 64 KiB");
            break;
        }
        mira__buf_append(&b, v->data, v->len);
        if (!v->last)
            continue;
        if (b.failed) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a command set");
            mira__assoc_abort(as, MIRA__ABORT_PROVIDER, 0, "out of memory");
            break;
        }
        mira_read_options ro;
        mira_read_options_init(&ro);
        ro.raw = true;
        ro.transfer_syntax = MIRA_TS_IMPLICIT_LE;
        ro.no_mmap = true;
        mira_error *pe = NULL;
        mira_file *f = mira_file_read_memory(b.data ? b.data : (const uint8_t *)"", b.len, &ro,
                                             true, &pe);
        mira__buf_cleanup(&b);
        uint16_t field;
        mira_dataset *ds = NULL;
        if (f) {
            /* the file object owns the data set: take a copy of the flat command set */
            ds = mira_dataset_new(NULL);
            const mira_dataset *src = mira_file_dataset(f);
            for (size_t i = 0; ds && i < mira_dataset_count(src); i++) {
                const mira_element *e = mira_dataset_at(src, i);
                size_t n = 0;
                const uint8_t *bytes = mira_element_bytes(e, &n);
                if (MIRA_TAG_GROUP(mira_element_tag(e)) != 0 || !bytes) {
                    mira_dataset_free(ds);
                    ds = NULL;
                    break;
                }
                if (!mira_dataset_set_bytes(ds, mira_element_tag(e), mira_element_vr(e), bytes,
                                            n, NULL)) {
                    mira_dataset_free(ds);
                    ds = NULL;
                }
            }
            mira_file_free(f);
        }
        if (!ds || !mira__cmd_get_u16(ds, MIRA__TAG_COMMAND_FIELD, &field)) {
            char why[300];
            snprintf(why, sizeof why, "a command set that cannot be read%s%s",
                     pe ? ": " : " (elements outside group 0000, or no Command Field)",
                     pe ? mira_error_get_message(pe) : "");
            mira_error_free(pe);
            mira_dataset_free(ds);
            abort_invalid(as, err, why);
            return MIRA__RECV_ENDED;
        }
        *pctx_id = (uint8_t)ctx;
        *cmd = ds;
        return MIRA__RECV_COMMAND;
    }
    mira__buf_cleanup(&b);
    return MIRA__RECV_ENDED;
}

bool mira__dimse_recv_data(mira__association *as, uint8_t pctx_id, mira__data_fn fn, void *ctx,
                           mira_error **err)
{
    for (;;) {
        const mira__pdv *v = next_pdv(as, false, NULL, as->idle_ms, err);
        if (!v)
            return false;
        if (v->command) {
            abort_invalid(as, err, "a command fragment inside a data set");
            return false;
        }
        if (v->pctx_id != pctx_id) {
            abort_invalid(as, err, "a data set on another presentation context than its command");
            return false;
        }
        if (fn && !fn(ctx, v->data, v->len, v->last)) {
            mira_error_set(err, MIRA_ERR_IO, NULL, "the receiver stopped the data set");
            mira__assoc_abort(as, MIRA__ABORT_PROVIDER, 0, "the receiver stopped the data set");
            return false;
        }
        if (v->last)
            return true;
    }
}

/* Send one command or data set, split into PDUs of at most the peer's maximum. */
/* Pages of a read-only file mapping below end, from *from on, given back to the kernel: they
 * are the file's, and read again from it if touched. */
static void release_sent(const uint8_t *end, uintptr_t *from)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t upto = (uintptr_t)end / page * page;
    if (upto > *from && madvise((void *)*from, upto - *from, MADV_DONTNEED) == 0)
        *from = upto;
}

static bool send_fragments(mira__association *as, uint8_t pctx_id, bool command,
                           const uint8_t *data, size_t len, bool mapped, mira_error **err)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t released = (uintptr_t)data / page * page; /* mapped: given back up to here */
    size_t max = as->send_max ? as->send_max : UNLIMITED_SEND;
    if (max > UNLIMITED_SEND)
        max = UNLIMITED_SEND;
    size_t chunk = max > 12 ? max - 6 : 6; /* the PDV item header is within the maximum */
    mira__buf b;
    mira__buf_init(&b);
    size_t off = 0;
    do {
        size_t n = len - off < chunk ? len - off : chunk;
        b.len = 0;
        if (!mira__pdu_build_pdata(&b, pctx_id, command, off + n == len, data + off, n)) {
            mira__buf_cleanup(&b);
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a P-DATA-TF");
            return false;
        }
        if (!mira__assoc_send(as, b.data, b.len, err)) {
            mira__buf_cleanup(&b);
            return false;
        }
        off += n;
        if (mapped && (uintptr_t)(data + off) - released >= RELEASE_STEP)
            release_sent(data + off, &released);
    } while (off < len);
    mira__buf_cleanup(&b);
    return true;
}

static bool dimse_send(mira__association *as, uint8_t pctx_id, const mira_dataset *cmd,
                       const uint8_t *data, size_t len, bool mapped, mira_error **err)
{
    mira__buf b;
    mira__buf_init(&b);
    if (!mira__dataset_encode(cmd, false, false, &b, err)) {
        mira__buf_cleanup(&b);
        return false;
    }
    bool ok = send_fragments(as, pctx_id, true, b.data, b.len, false, err);
    mira__buf_cleanup(&b);
    if (ok && data)
        ok = send_fragments(as, pctx_id, false, data, len, mapped, err);
    return ok;
}

bool mira__dimse_send(mira__association *as, uint8_t pctx_id, const mira_dataset *cmd,
                      const uint8_t *data, size_t len, mira_error **err)
{
    return dimse_send(as, pctx_id, cmd, data, len, false, err);
}

bool mira__dimse_send_mapped(mira__association *as, uint8_t pctx_id, const mira_dataset *cmd,
                             const uint8_t *data, size_t len, mira_error **err)
{
    return dimse_send(as, pctx_id, cmd, data, len, true, err);
}

bool mira__assoc_pending(mira__association *as)
{
    if (as->next_pdv < as->pdu.npdv)
        return true;
    return mira__conn_pending(&as->conn);
}

mira__poll mira__dimse_poll_cancel(mira__association *as, uint16_t message_id, const char *what)
{
    if (!mira__assoc_pending(as))
        return MIRA__POLL_NONE;
    uint8_t pctx = 0;
    mira_dataset *c = NULL;
    if (mira__dimse_recv_command(as, &pctx, &c, as->artim_ms, NULL) != MIRA__RECV_COMMAND)
        return MIRA__POLL_ENDED;
    uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET;
    mira__cmd_get_u16(c, MIRA__TAG_COMMAND_FIELD, &field);
    mira__cmd_get_u16(c, MIRA__TAG_RESPONDED_TO, &id);
    mira__cmd_get_u16(c, MIRA__TAG_DATA_SET_TYPE, &dstype);
    bool report = mira__dimse_take_report_rsp(as, c);
    mira_dataset_free(c);
    if (report)
        return dstype == MIRA__NO_DATA_SET || mira__dimse_recv_data(as, pctx, NULL, NULL, NULL)
                   ? MIRA__POLL_NONE
                   : MIRA__POLL_ENDED;
    if (field == MIRA__C_CANCEL_RQ)
        return id == message_id ? MIRA__POLL_CANCELLED : MIRA__POLL_NONE;
    char why[160];
    snprintf(why, sizeof why, "a request while a %s was in progress (one operation at a time)",
             what);
    mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, why);
    return MIRA__POLL_ENDED;
}

bool mira__dimse_take_report_rsp(mira__association *as, const mira_dataset *cmd)
{
    uint16_t field = 0, id = 0;
    if (!as->report_outstanding || as->report_answered ||
        !mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field) ||
        field != MIRA__N_EVENT_REPORT_RSP ||
        !mira__cmd_get_u16(cmd, MIRA__TAG_RESPONDED_TO, &id) || id != as->report_id)
        return false;
    as->report_status = 0xFFFF; /* no status: not a success */
    mira__cmd_get_u16(cmd, MIRA__TAG_STATUS, &as->report_status);
    as->report_answered = true;
    return true;
}

/* ------------------------------------------------------------------ command sets */

bool mira__cmd_get_u16(const mira_dataset *cmd, mira_tag tag, uint16_t *out)
{
    const mira_element *e = mira_dataset_get(cmd, tag);
    size_t n = 0;
    const uint8_t *v = e ? mira_element_bytes(e, &n) : NULL;
    if (!v || n != 2)
        return false;
    *out = (uint16_t)(v[0] | v[1] << 8);
    return true;
}

void mira__cmd_get_str(const mira_dataset *cmd, mira_tag tag, char *out, size_t n)
{
    out[0] = 0;
    const mira_element *e = mira_dataset_get(cmd, tag);
    size_t len = 0;
    const uint8_t *v = e ? mira_element_bytes(e, &len) : NULL;
    if (!v)
        return;
    while (len > 0 && (v[len - 1] == 0 || v[len - 1] == ' '))
        len--;
    size_t start = 0;
    while (start < len && v[start] == ' ')
        start++;
    len -= start;
    if (len >= n)
        len = n - 1;
    memcpy(out, v + start, len);
    out[len] = 0;
}

bool mira__cmd_set_u16(mira_dataset *cmd, mira_tag tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return mira_dataset_set_bytes(cmd, tag, MIRA_VR_US, b, 2, NULL) != NULL;
}

/* ------------------------------------------------------------------ requestor */

bool mira__assoc_request(mira__association *as, const char *host, int port, mira__assoc *rq,
                         int timeout_ms, mira_error **err)
{
    as->requestor = true;
    if (!mira__tcp_connect(host, port, timeout_ms, &as->conn, err))
        return false;
    if (as->tls && !mira__tls_connect(as->tls, &as->conn, host, timeout_ms, err)) {
        mira__conn_close(&as->conn);
        return false;
    }
    snprintf(rq->app_context, sizeof rq->app_context, "%s", MIRA__APP_CONTEXT);
    rq->max_pdu = as->recv_max;
    rq->protocol_version = 1;
    snprintf(rq->impl_class_uid, sizeof rq->impl_class_uid, "%s", MIRA_IMPLEMENTATION_UID);
    snprintf(rq->impl_version, sizeof rq->impl_version, "%s", MIRA_IMPLEMENTATION_NAME);
    mira__buf b;
    mira__buf_init(&b);
    bool ok = mira__pdu_build_assoc(&b, MIRA__PDU_ASSOCIATE_RQ, rq, err) &&
              mira__assoc_send(as, b.data, b.len, err);
    mira__buf_cleanup(&b);
    as->rq = *rq; /* the association owns the request from here */
    memset(rq, 0, sizeof *rq);
    if (!ok) {
        mira__conn_close(&as->conn);
        return false;
    }
    if (!mira__assoc_read_pdu(as, timeout_ms, err))
        return false;
    if (as->pdu.type == MIRA__PDU_ASSOCIATE_RJ) {
        mira_error_set(err, MIRA_ERR_CONFLICT, "Association rejected",
                       "%s:%d rejected the association (result %u, source %u, reason %u)", host,
                       port, as->pdu.result, as->pdu.source, as->pdu.reason);
        set_end(as, MIRA__END_REJECTED, "rejected");
        mira__conn_close(&as->conn);
        return false;
    }
    if (as->pdu.type != MIRA__PDU_ASSOCIATE_AC) {
        mira_error_set(err, MIRA_ERR_INVALID, "Unexpected PDU",
                       "%s:%d answered the A-ASSOCIATE-RQ with an %s", host, port,
                       mira__pdu_type_name(as->pdu.type));
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, "unexpected PDU");
        return false;
    }
    as->ac = as->pdu.assoc;
    memset(&as->pdu.assoc, 0, sizeof as->pdu.assoc);
    as->send_max = as->ac.max_pdu;
    /* an AC naming contexts we did not propose is the peer's bug: ignore those */
    return true;
}

bool mira__assoc_release(mira__association *as, mira_error **err)
{
    uint8_t rq[10] = {MIRA__PDU_RELEASE_RQ, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    if (!mira__assoc_send(as, rq, sizeof rq, err))
        return false;
    for (int i = 0; i < 1000; i++) {
        if (!mira__assoc_read_pdu(as, as->artim_ms, err))
            return false;
        if (as->pdu.type == MIRA__PDU_RELEASE_RP) {
            set_end(as, MIRA__END_RELEASED, "released");
            mira__conn_close(&as->conn);
            return true;
        }
        if (as->pdu.type == MIRA__PDU_RELEASE_RQ) { /* a release collision (PS3.8 7.2.2) */
            uint8_t rp[10] = {MIRA__PDU_RELEASE_RP, 0, 0, 0, 0, 4, 0, 0, 0, 0};
            if (!mira__assoc_send(as, rp, sizeof rp, err))
                return false;
            continue;
        }
        if (as->pdu.type != MIRA__PDU_P_DATA)
            break;
        /* P-DATA may still arrive before the RP: dropped */
    }
    mira_error_set(err, MIRA_ERR_INVALID, "Unexpected PDU", "an %s while releasing",
                   mira__pdu_type_name(as->pdu.type));
    mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, "unexpected PDU");
    return false;
}
