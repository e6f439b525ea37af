/* DIMSE SCU calls: what every SCU shares (options, user identity, extended negotiation),
 * and Verification (C-ECHO). */
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

bool mira__scu_init(mira__association *as, const mira_dimse_scu_options *o, mira__tls **tls,
                    mira_error **err)
{
    memset(as, 0, sizeof *as);
    as->conn.fd = -1;
    as->recv_max = o->max_pdu ? o->max_pdu : 262144;
    int t = o->timeout_seconds > 0 ? o->timeout_seconds : 30;
    as->artim_ms = t * 1000;
    as->idle_ms = t * 1000;
    if (!tls)
        return true;
    *tls = NULL;
    if (o->tls && !(*tls = mira__tls_new(o->tls, false, err)))
        return false;
    as->tls = *tls;
    return true;
}

static bool proposed(const mira__assoc *rq, const char *uid)
{
    for (size_t i = 0; i < rq->npctx; i++)
        if (strcmp(rq->pctx[i].abstract_syntax, uid) == 0)
            return true;
    return false;
}

static bool has_ext(const mira__assoc *rq, const char *uid)
{
    for (size_t i = 0; i < rq->next; i++)
        if (strcmp(rq->ext[i].sop_class, uid) == 0)
            return true;
    return false;
}

/* One extended negotiation item: for its SOP class when proposed, or for every one proposed. */
static bool add_ext(mira__assoc *rq, const mira_dimse_ext_neg *e)
{
    if (e->len > 0xFFFF - 66 || (e->len && !e->info))
        return false;
    for (size_t i = 0; i < rq->npctx; i++) {
        const char *uid = rq->pctx[i].abstract_syntax;
        if (e->sop_class && strcmp(e->sop_class, uid) != 0)
            continue;
        if (!has_ext(rq, uid) && !mira__assoc_add_ext(rq, uid, e->info, e->len))
            return false;
    }
    return true;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = mira_malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static bool add_identity(mira__assoc *rq, const mira_dimse_scu_options *o, mira_error **err)
{
    if (o->identity_type == MIRA_DIMSE_IDENTITY_NONE)
        return true;
    size_t n = o->identity ? (o->identity_len ? o->identity_len : strlen(o->identity)) : 0;
    size_t pn = o->password ? strlen(o->password) : 0;
    bool two = o->identity_type == MIRA_DIMSE_IDENTITY_PASSWORD;
    if (o->identity_type > MIRA_DIMSE_IDENTITY_JWT || n == 0 || n > 0xFFFF ||
        (two && !o->password) || (!two && o->password) || pn > 0xFFFF) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL,
                       "a user identity of type %d needs a primary field of 1-65535 bytes%s",
                       (int)o->identity_type,
                       two ? " and a passcode" : " and no passcode (type 2 has one)");
        return false;
    }
    rq->has_identity = true;
    rq->identity_type = (uint8_t)o->identity_type;
    rq->identity_response_requested = o->identity_response;
    rq->identity_primary = dup_bytes(o->identity, n);
    rq->identity_secondary = dup_bytes(o->password, pn);
    rq->identity_primary_len = n;
    rq->identity_secondary_len = pn;
    if (!rq->identity_primary || !rq->identity_secondary) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the user identity");
        return false;
    }
    return true;
}

static void tell_accepted(const mira__association *as, const mira_dimse_scu_options *o)
{
    if (!o->accepted)
        return;
    mira_dimse_ext_neg ext[64];
    size_t next = 0;
    for (size_t i = 0; i < as->ac.next && next < 64; i++) {
        ext[next].sop_class = as->ac.ext[i].sop_class;
        ext[next].info = as->ac.ext[i].info;
        ext[next].len = as->ac.ext[i].len;
        next++;
    }
    mira_dimse_accepted a;
    memset(&a, 0, sizeof a);
    a.implementation_uid = as->ac.impl_class_uid;
    a.implementation_version = as->ac.impl_version;
    a.identity_response = as->ac.has_identity_response;
    a.identity_response_data = as->ac.identity_response;
    a.identity_response_len = as->ac.identity_response_len;
    a.ext = ext;
    a.next = next;
    o->accepted(o->accepted_ctx, &a);
}

bool mira__scu_request(mira__association *as, const char *host, int port, mira__assoc *rq,
                       const mira_dimse_scu_options *o, const mira_dimse_ext_neg *extra,
                       size_t nextra, mira_error **err)
{
    snprintf(rq->calling_ae, sizeof rq->calling_ae, "%s", o->calling_ae ? o->calling_ae : "MIRA");
    snprintf(rq->called_ae, sizeof rq->called_ae, "%s", o->called_ae ? o->called_ae : "ANY-SCP");
    if (!add_identity(rq, o, err))
        return false;
    for (size_t i = 0; i < nextra; i++)
        if (!add_ext(rq, &extra[i])) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an extended negotiation item");
            return false;
        }
    for (size_t i = 0; o->ext && i < o->next; i++)
        if ((!o->ext[i].sop_class || proposed(rq, o->ext[i].sop_class)) &&
            !add_ext(rq, &o->ext[i])) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, NULL,
                           "an extended negotiation item over 65,000 bytes");
            return false;
        }
    if (!mira__assoc_request(as, host, port, rq, as->artim_ms, err))
        return false;
    tell_accepted(as, o);
    return true;
}

bool mira_dimse_echo(const char *host, int port, const mira_dimse_scu_options *opt,
                     uint16_t *status, mira_error **err)
{
    mira_dimse_scu_options defaults;
    mira_dimse_scu_options_init(&defaults);
    const mira_dimse_scu_options *o = opt ? opt : &defaults;
    mira__association as;
    mira__tls *tls = NULL;
    if (!mira__scu_init(&as, o, &tls, err))
        return false;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    mira__pctx *c = mira__assoc_add_pctx(&rq, 1, MIRA__VERIFICATION_UID);
    if (!c || !mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE) ||
        !mira__pctx_add_ts(c, MIRA_TS_EXPLICIT_LE)) {
        mira__assoc_cleanup(&rq);
        mira__tls_free(tls);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an A-ASSOCIATE-RQ");
        return false;
    }
    bool ok = mira__scu_request(&as, host, port, &rq, o, NULL, 0, err);
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
