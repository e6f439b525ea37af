/* DIMSE SCU calls: Verification (C-ECHO). */
#include "dimse_int.h"
#include "net/tls.h"

#include <stdio.h>
#include <string.h>

void mira_dimse_scu_options_init(mira_dimse_scu_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->calling_ae = "MIRA";
    opt->called_ae = "ANY-SCP";
    opt->timeout_seconds = 30;
    opt->max_pdu = 262144;
}

static void init_association(mira__association *as, const mira_dimse_scu_options *o)
{
    memset(as, 0, sizeof *as);
    as->conn.fd = -1;
    as->recv_max = o->max_pdu ? o->max_pdu : 262144;
    int t = o->timeout_seconds > 0 ? o->timeout_seconds : 30;
    as->artim_ms = t * 1000;
    as->idle_ms = t * 1000;
}

bool mira_dimse_echo(const char *host, int port, const mira_dimse_scu_options *opt,
                     uint16_t *status, mira_error **err)
{
    mira_dimse_scu_options defaults;
    mira_dimse_scu_options_init(&defaults);
    const mira_dimse_scu_options *o = opt ? opt : &defaults;
    mira__association as;
    init_association(&as, o);
    mira__tls *tls = NULL;
    if (o->tls && !(tls = mira__tls_new(o->tls, false, err)))
        return false;
    as.tls = tls;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    snprintf(rq.calling_ae, sizeof rq.calling_ae, "%s", o->calling_ae ? o->calling_ae : "MIRA");
    snprintf(rq.called_ae, sizeof rq.called_ae, "%s", o->called_ae ? o->called_ae : "ANY-SCP");
    mira__pctx *c = mira__assoc_add_pctx(&rq, 1, MIRA__VERIFICATION_UID);
    if (!c || !mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE) ||
        !mira__pctx_add_ts(c, MIRA_TS_EXPLICIT_LE)) {
        mira__assoc_cleanup(&rq);
        mira__tls_free(tls);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an A-ASSOCIATE-RQ");
        return false;
    }
    bool ok = mira__assoc_request(&as, host, port, &rq, as.artim_ms, err);
    mira__assoc_cleanup(&rq);
    if (ok && !mira__assoc_context_ts(&as, 1)) {
        mira_error_set(err, MIRA_ERR_CONFLICT, "Not accepted",
                       "%s:%d did not accept the Verification SOP class", host, port);
        mira__assoc_release(&as, NULL);
        ok = false;
    }
    mira_dataset *cmd = ok ? mira_dataset_new(err) : NULL;
    if (ok && cmd) {
        static const uint8_t zero[4];
        ok = mira_dataset_set_bytes(cmd, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, err) &&
             mira_dataset_set_string(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI,
                                     MIRA__VERIFICATION_UID, err) &&
             mira__cmd_set_u16(cmd, MIRA__TAG_COMMAND_FIELD, MIRA__C_ECHO_RQ) &&
             mira__cmd_set_u16(cmd, MIRA__TAG_MESSAGE_ID, 1) &&
             mira__cmd_set_u16(cmd, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET) &&
             mira__dimse_send(&as, 1, cmd, NULL, 0, err);
        mira_dataset_free(cmd);
        cmd = NULL;
    } else if (ok) {
        ok = false;
    }
    if (ok) {
        uint8_t pctx = 0;
        mira__recv r = mira__dimse_recv_command(&as, &pctx, &cmd, as.idle_ms, err);
        uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET;
        if (r == MIRA__RECV_COMMAND) {
            mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field);
            mira__cmd_get_u16(cmd, MIRA__TAG_RESPONDED_TO, &id);
            mira__cmd_get_u16(cmd, MIRA__TAG_DATA_SET_TYPE, &dstype);
        }
        if (r != MIRA__RECV_COMMAND) {
            if (err && !*err)
                mira_error_set(err, MIRA_ERR_IO, NULL, "%s:%d ended the association: %s", host,
                               port, as.end_detail);
            ok = false;
        } else if (field != MIRA__C_ECHO_RSP || id != 1 || dstype != MIRA__NO_DATA_SET ||
                   !mira__cmd_get_u16(cmd, MIRA__TAG_STATUS, status)) {
            mira_error_set(err, MIRA_ERR_INVALID, "Unexpected response",
                           "%s:%d answered the C-ECHO-RQ with command 0x%04X for message %u",
                           host, port, field, id);
            mira__assoc_abort(&as, MIRA__ABORT_USER, 0, "unexpected response");
            ok = false;
        }
        mira_dataset_free(cmd);
    }
    if (ok)
        ok = mira__assoc_release(&as, err);
    mira__conn_close(&as.conn);
    mira__assoc_free_buffers(&as);
    mira__tls_free(tls);
    return ok;
}
