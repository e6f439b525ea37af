/* Storage Commitment Push Model SOP Class SCP (PS3.4 J): N-ACTION answered, then the
 * N-EVENT-REPORT telling which instances the archive holds, on the same association or on a
 * new one to the requestor's configured AE. */
#include "procedure.h"

#include "mira/worklist.h"

#include "net/tls.h"

#include <stdio.h>
#include <string.h>

enum {
    STATUS_SUCCESS = 0x0000,
    STATUS_PROCESSING_FAILURE = 0x0110,
    STATUS_NO_SUCH_INSTANCE = 0x0112,
    STATUS_INVALID_ARGUMENT = 0x0115,
    STATUS_INVALID_OBJECT = 0x0117,
    STATUS_CLASS_INSTANCE_CONFLICT = 0x0119,
    STATUS_MISSING_ATTRIBUTE = 0x0120,
    STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122,
    STATUS_NO_SUCH_ACTION = 0x0123,
    STATUS_RESOURCE_LIMITATION = 0x0213,
};

#define TAG_TRANSACTION_UID MIRA_TAG(0x0008, 0x1195)
#define TAG_REFERENCED_SOP_SEQ MIRA_TAG(0x0008, 0x1199)
#define TAG_FAILED_SOP_SEQ MIRA_TAG(0x0008, 0x1198)
#define TAG_FAILURE_REASON MIRA_TAG(0x0008, 0x1197)
#define TAG_REF_SOP_CLASS MIRA_TAG(0x0008, 0x1150)
#define TAG_REF_SOP_INSTANCE MIRA_TAG(0x0008, 0x1155)
#define TAG_RETRIEVE_AE MIRA_TAG(0x0008, 0x0054)

#define MAX_REQUEST (16u << 20)
/* A report waits this long for the requestor's N-EVENT-REPORT-RSP. */
#define REPORT_WAIT_MS 10000

static void item_uid(const mira_dataset *ds, mira_tag tag, char out[65])
{
    out[0] = 0;
    const mira_element *e = mira_dataset_get(ds, tag);
    char *s = e ? mira_element_get_string(e, 0, NULL) : NULL;
    if (s)
        snprintf(out, 65, "%s", s);
    mira_free(s);
}

/* The event information (J.3.3): the instances held, and those not with their reason. */
static mira_dataset *check_instances(mira_archive *a, const mira_dataset *rq, const char *ae,
                                     uint64_t *total, uint64_t *failures)
{
    mira_dataset *ev = mira_dataset_new(NULL);
    if (!ev)
        return NULL;
    char tx[65];
    item_uid(rq, TAG_TRANSACTION_UID, tx);
    const mira_element *refs = mira_dataset_get(rq, TAG_REFERENCED_SOP_SEQ);
    bool ok = mira_dataset_set_string(ev, TAG_TRANSACTION_UID, MIRA_VR_UI, tx, NULL) != NULL;
    mira_element *good = NULL, *bad = NULL;
    *total = *failures = 0;
    for (size_t i = 0; ok && refs && i < mira_element_item_count(refs); i++) {
        const mira_dataset *it = mira_element_item(refs, i);
        char cls[65], inst[65], have[65] = "";
        item_uid(it, TAG_REF_SOP_CLASS, cls);
        item_uid(it, TAG_REF_SOP_INSTANCE, inst);
        uint16_t reason = 0;
        mira_error *e = NULL;
        if (!inst[0]) {
            reason = STATUS_INVALID_OBJECT;
        } else if (!mira_archive_instance_class(a, inst, have, &e)) {
            reason = mira_error_get_code(e) == MIRA_ERR_NOT_FOUND ? STATUS_NO_SUCH_INSTANCE
                                                                  : STATUS_PROCESSING_FAILURE;
        } else if (strcmp(have, cls) != 0) {
            reason = STATUS_CLASS_INSTANCE_CONFLICT;
        }
        mira_error_free(e);
        (*total)++;
        mira_element **seq = reason ? &bad : &good;
        if (!*seq)
            *seq = mira_dataset_set_sequence(ev, reason ? TAG_FAILED_SOP_SEQ : TAG_REFERENCED_SOP_SEQ,
                                             NULL);
        mira_dataset *out = *seq ? mira_element_add_item(*seq, NULL) : NULL;
        ok = out && mira_dataset_set_string(out, TAG_REF_SOP_CLASS, MIRA_VR_UI, cls, NULL) &&
             mira_dataset_set_string(out, TAG_REF_SOP_INSTANCE, MIRA_VR_UI, inst, NULL);
        if (ok && reason) {
            uint8_t le[2] = {(uint8_t)(reason & 0xFF), (uint8_t)(reason >> 8)};
            ok = mira_dataset_set_bytes(out, TAG_FAILURE_REASON, MIRA_VR_US, le, 2, NULL) != NULL;
            (*failures)++;
        } else if (ok) {
            ok = mira_dataset_set_string(out, TAG_RETRIEVE_AE, MIRA_VR_AE, ae, NULL) != NULL;
        }
    }
    if (!ok) {
        mira_dataset_free(ev);
        return NULL;
    }
    return ev;
}

/* The N-EVENT-REPORT-RQ command. */
static mira_dataset *event_command(uint16_t message_id, uint16_t event_type)
{
    mira_dataset *c = mira_dataset_new(NULL);
    static const uint8_t zero[4];
    bool ok = c && mira_dataset_set_bytes(c, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, NULL) &&
              mira_dataset_set_string(c, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI,
                                      MIRA__COMMITMENT_UID, NULL) &&
              mira__cmd_set_u16(c, MIRA__TAG_COMMAND_FIELD, MIRA__N_EVENT_REPORT_RQ) &&
              mira__cmd_set_u16(c, MIRA__TAG_MESSAGE_ID, message_id) &&
              mira__cmd_set_u16(c, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET) &&
              mira_dataset_set_string(c, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI,
                                      MIRA__COMMITMENT_INSTANCE, NULL) &&
              mira__cmd_set_u16(c, MIRA__TAG_EVENT_TYPE_ID, event_type);
    if (!ok) {
        mira_dataset_free(c);
        return NULL;
    }
    return c;
}

typedef enum report_outcome {
    REPORT_DELIVERED = 0, /* the requestor answered with success */
    REPORT_REFUSED,       /* it answered with another status */
    REPORT_LOST,          /* the association ended or released before an answer */
} report_outcome;

/* Send the report on pctx and wait for its response. *status gets the response's status. */
static report_outcome send_report(mira__association *as, uint8_t pctx, uint16_t message_id,
                                  uint16_t event_type, const mira_dataset *ev, uint16_t *status,
                                  bool *released)
{
    *released = false;
    mira_dataset *c = event_command(message_id, event_type);
    if (!c || !mira__send_with(as, pctx, c, ev)) {
        mira_dataset_free(c);
        return REPORT_LOST;
    }
    mira_dataset_free(c);
    uint8_t rp = 0;
    mira_dataset *rsp = NULL;
    mira__recv r = mira__dimse_recv_command(as, &rp, &rsp, REPORT_WAIT_MS, NULL);
    if (r == MIRA__RECV_RELEASED)
        *released = true;
    if (r != MIRA__RECV_COMMAND)
        return REPORT_LOST;
    uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET;
    mira__cmd_get_u16(rsp, MIRA__TAG_COMMAND_FIELD, &field);
    mira__cmd_get_u16(rsp, MIRA__TAG_RESPONDED_TO, &id);
    mira__cmd_get_u16(rsp, MIRA__TAG_DATA_SET_TYPE, &dstype);
    *status = 0xFFFF;
    mira__cmd_get_u16(rsp, MIRA__TAG_STATUS, status);
    mira_dataset_free(rsp);
    if (dstype != MIRA__NO_DATA_SET && !mira__dimse_recv_data(as, rp, NULL, NULL, NULL))
        return REPORT_LOST;
    if (field != MIRA__N_EVENT_REPORT_RSP || id != message_id) {
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU,
                          "a message other than the N-EVENT-REPORT-RSP we waited for");
        return REPORT_LOST;
    }
    return *status == STATUS_SUCCESS ? REPORT_DELIVERED : REPORT_REFUSED;
}

/* A new association to the requestor's configured AE, as the SCP of the SOP class (J.3.3). */
static bool report_elsewhere(mira_dimse_server *s, const char *calling_ae, uint16_t event_type,
                             const mira_dataset *ev, char *how, size_t n)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    const mira_dimse_peer *peer = NULL;
    for (size_t i = 0; i < o->npeers && !peer; i++)
        if (o->peers[i].ae_title && strcmp(o->peers[i].ae_title, calling_ae) == 0)
            peer = &o->peers[i];
    if (!peer) {
        snprintf(how, n, "not sent: no peer \"%s\" configured (dimse.peers)", calling_ae);
        return false;
    }
    mira__association as;
    memset(&as, 0, sizeof as);
    as.conn.fd = -1;
    as.recv_max = o->max_pdu ? o->max_pdu : 262144;
    as.artim_ms = as.idle_ms = 30000;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    snprintf(rq.calling_ae, sizeof rq.calling_ae, "%s", mira__server_ae_title(s));
    snprintf(rq.called_ae, sizeof rq.called_ae, "%s", peer->ae_title);
    mira__pctx *c = mira__assoc_add_pctx(&rq, 1, MIRA__COMMITMENT_UID);
    mira_error *e = NULL;
    bool ok = c && mira__pctx_add_ts(c, MIRA_TS_EXPLICIT_LE) &&
              mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE) &&
              mira__assoc_add_role(&rq, MIRA__COMMITMENT_UID, false, true);
    if (!ok) {
        mira__assoc_cleanup(&rq);
        snprintf(how, n, "not sent: out of memory");
        return false;
    }
    mira__tls *tls = NULL; /* a peer configured with TLS: the report goes over TLS */
    ok = !peer->tls || (tls = mira__tls_new(peer->tls, false, &e));
    as.tls = tls;
    ok = ok && mira__assoc_request(&as, peer->host, peer->port, &rq, as.artim_ms, &e);
    mira__assoc_cleanup(&rq);
    if (!ok) {
        snprintf(how, n, "not sent: %s:%d: %s", peer->host, peer->port,
                 e ? mira_error_get_message(e) : "no association");
        mira_error_free(e);
        mira__conn_close(&as.conn);
        mira__assoc_free_buffers(&as);
        mira__tls_free(tls);
        return false;
    }
    if (!mira__assoc_context_ts(&as, 1)) {
        snprintf(how, n, "not sent: %s did not accept Storage Commitment Push", peer->ae_title);
        mira__assoc_release(&as, NULL);
        mira__conn_close(&as.conn);
        mira__assoc_free_buffers(&as);
        mira__tls_free(tls);
        return false;
    }
    uint16_t status = 0;
    bool released = false;
    report_outcome r = send_report(&as, 1, 1, event_type, ev, &status, &released);
    if (r == REPORT_DELIVERED)
        snprintf(how, n, "new association to %s (%s:%d)", peer->ae_title, peer->host, peer->port);
    else if (r == REPORT_REFUSED)
        snprintf(how, n, "refused on a new association to %s: status 0x%04X", peer->ae_title,
                 status);
    else
        snprintf(how, n, "lost on a new association to %s: %s", peer->ae_title, as.end_detail);
    if (as.end == MIRA__END_NONE)
        mira__assoc_release(&as, NULL);
    mira__conn_close(&as.conn);
    mira__assoc_free_buffers(&as);
    mira__tls_free(tls);
    return r == REPORT_DELIVERED;
}

bool mira__serve_commitment(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                            uint8_t pctx, const mira_dataset *cmd, bool has_data)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    char sop_class[65], instance[65];
    mira__cmd_get_str(cmd, MIRA__TAG_REQUESTED_SOP_CLASS, sop_class, sizeof sop_class);
    mira__cmd_get_str(cmd, MIRA__TAG_REQUESTED_SOP_INSTANCE, instance, sizeof instance);
    uint16_t action = 0;
    mira__cmd_get_u16(cmd, MIRA__TAG_ACTION_TYPE_ID, &action);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    uint16_t status = STATUS_SUCCESS;
    char why[300] = "";
    mira_file *f = NULL;
    if (has_data) {
        bool ended = false;
        f = mira__recv_dataset(as, pctx, MAX_REQUEST, &ended, why, sizeof why);
        if (ended)
            return false;
        if (!f)
            status = STATUS_INVALID_ARGUMENT;
    } else {
        status = STATUS_MISSING_ATTRIBUTE;
        snprintf(why, sizeof why, "an N-ACTION-RQ without its action information");
    }
    const mira_dataset *info = f ? mira_file_dataset(f) : NULL;
    char tx[65] = "";
    if (info)
        item_uid(info, TAG_TRANSACTION_UID, tx);
    if (!o->archive || !ctx_sop || strcmp(ctx_sop, MIRA__COMMITMENT_UID) != 0 ||
        strcmp(sop_class, MIRA__COMMITMENT_UID) != 0) {
        status = STATUS_SOP_CLASS_NOT_SUPPORTED;
        snprintf(why, sizeof why, "SOP class not negotiated on this presentation context");
    } else if (strcmp(instance, MIRA__COMMITMENT_INSTANCE) != 0) {
        status = STATUS_NO_SUCH_INSTANCE;
        snprintf(why, sizeof why, "the Requested SOP Instance is not %s",
                 MIRA__COMMITMENT_INSTANCE);
    } else if (action != 1) {
        status = STATUS_NO_SUCH_ACTION;
        snprintf(why, sizeof why, "Action Type ID %u (only 1, Request Storage Commitment)",
                 action);
    } else if (info && !tx[0]) {
        status = STATUS_MISSING_ATTRIBUTE;
        snprintf(why, sizeof why, "no Transaction UID (0008,1195)");
    } else if (info && !mira_dataset_get(info, TAG_REFERENCED_SOP_SEQ)) {
        status = STATUS_MISSING_ATTRIBUTE;
        snprintf(why, sizeof why, "no Referenced SOP Sequence (0008,1199)");
    }
    uint64_t total = 0, failures = 0;
    mira_dataset *ev = status == STATUS_SUCCESS
                           ? check_instances(o->archive, info, mira__server_ae_title(s), &total,
                                             &failures)
                           : NULL;
    mira_file_free(f);
    if (status == STATUS_SUCCESS && !ev) {
        status = STATUS_RESOURCE_LIMITATION;
        snprintf(why, sizeof why, "out of memory");
    }
    mira_dataset *rsp = mira__n_response(cmd, MIRA__N_ACTION_RSP, status, instance,
                                         status ? why : NULL);
    if (rsp)
        mira__cmd_set_u16(rsp, MIRA__TAG_ACTION_TYPE_ID, action);
    bool alive = mira__send_with(as, pctx, rsp, NULL);
    mira_dataset_free(rsp);
    if (status != STATUS_SUCCESS) {
        mira__log(s, MIRA_LOG_WARNING,
                  "association %llu: storage commitment request refused (0x%04X): %s",
                  (unsigned long long)assoc_id, status, why);
        mira_dataset_free(ev);
        return alive;
    }
    /* the report: on this association while it is open, else on a new one */
    uint16_t event_type = failures ? 2 : 1, rs = 0;
    char how[300] = "";
    bool released = false, delivered = false;
    if (alive) {
        report_outcome r = send_report(as, pctx, 1, event_type, ev, &rs, &released);
        delivered = r == REPORT_DELIVERED;
        alive = r != REPORT_LOST;
        if (delivered)
            snprintf(how, sizeof how, "same association");
        else if (r == REPORT_REFUSED)
            snprintf(how, sizeof how, "refused on the same association (0x%04X); ", rs);
    }
    if (!delivered) {
        size_t l = strlen(how);
        report_elsewhere(s, as->rq.calling_ae, event_type, ev, how + l, sizeof how - l);
    }
    mira__log(s, MIRA_LOG_INFO,
              "association %llu: storage commitment %s: %llu instances, %llu failed; report: %s",
              (unsigned long long)assoc_id, tx, (unsigned long long)total,
              (unsigned long long)failures, how);
    mira_error *e = NULL;
    if (!mira_archive_log_commitment(o->archive, tx, as->rq.calling_ae, total, failures, how,
                                     &e)) {
        mira__log(s, MIRA_LOG_ERROR, "association %llu: recording storage commitment %s: %s",
                  (unsigned long long)assoc_id, tx, mira_error_get_message(e));
        mira_error_free(e);
    }
    mira_dataset_free(ev);
    return alive && !released;
}
