/* Modality Performed Procedure Step SOP Class SCP (PS3.4 F): N-CREATE and N-SET into the
 * archive, linked to the worklist entry the step performs. */
#include "procedure.h"

#include "mira/worklist.h"

#include <stdio.h>
#include <string.h>

/* Statuses (PS3.4 F.7.2.1.2, F.7.2.2.2 and the general ones of PS3.7 C). */
enum {
    STATUS_SUCCESS = 0x0000,
    STATUS_NO_SUCH_ATTRIBUTE = 0x0105,
    STATUS_INVALID_VALUE = 0x0106,
    STATUS_PROCESSING_FAILURE = 0x0110,
    STATUS_DUPLICATE = 0x0111,
    STATUS_NO_SUCH_INSTANCE = 0x0112,
    STATUS_INVALID_OBJECT = 0x0117,
    STATUS_MISSING_ATTRIBUTE = 0x0120,
    STATUS_MISSING_VALUE = 0x0121,
    STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122,
    STATUS_RESOURCE_LIMITATION = 0x0213,
    /* the Error ID with 0x0110: "Performed Procedure Step Object may no longer be updated" */
    ERROR_ID_NO_LONGER_UPDATABLE = 0xA710,
};

#define MAX_ATTRIBUTES (4u << 20)

static uint16_t status_of(mira_mpps_result r)
{
    switch (r) {
    case MIRA_MPPS_OK:
        return STATUS_SUCCESS;
    case MIRA_MPPS_DUPLICATE:
        return STATUS_DUPLICATE;
    case MIRA_MPPS_NO_SUCH:
        return STATUS_NO_SUCH_INSTANCE;
    case MIRA_MPPS_FINAL:
        return STATUS_PROCESSING_FAILURE;
    case MIRA_MPPS_INVALID_VALUE:
    case MIRA_MPPS_NOT_ALLOWED:
        return STATUS_INVALID_VALUE;
    case MIRA_MPPS_MISSING:
        return STATUS_MISSING_ATTRIBUTE;
    case MIRA_MPPS_MISSING_VALUE:
        return STATUS_MISSING_VALUE;
    }
    return STATUS_PROCESSING_FAILURE;
}

bool mira__serve_mpps(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                      uint8_t pctx, const mira_dataset *cmd, uint16_t field, bool has_data)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    bool create = field == MIRA__N_CREATE_RQ;
    uint16_t rsp_field = create ? MIRA__N_CREATE_RSP : MIRA__N_SET_RSP;
    char sop_class[65], uid[65];
    mira__cmd_get_str(cmd, create ? MIRA__TAG_AFFECTED_SOP_CLASS : MIRA__TAG_REQUESTED_SOP_CLASS,
                      sop_class, sizeof sop_class);
    mira__cmd_get_str(cmd,
                      create ? MIRA__TAG_AFFECTED_SOP_INSTANCE : MIRA__TAG_REQUESTED_SOP_INSTANCE,
                      uid, sizeof uid);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    uint16_t status = STATUS_SUCCESS, error_id = 0;
    char why[300] = "";
    mira_file *f = NULL;
    if (has_data) {
        bool ended = false;
        f = mira__recv_dataset(as, pctx, MAX_ATTRIBUTES, &ended, why, sizeof why);
        if (ended)
            return false;
        if (!f)
            status = STATUS_INVALID_OBJECT;
    } else {
        status = STATUS_MISSING_ATTRIBUTE;
        snprintf(why, sizeof why, "an N-%s-RQ without attributes", create ? "CREATE" : "SET");
    }
    if (!o->archive || !ctx_sop || strcmp(ctx_sop, MIRA__MPPS_UID) != 0 ||
        strcmp(sop_class, MIRA__MPPS_UID) != 0) {
        status = STATUS_SOP_CLASS_NOT_SUPPORTED;
        snprintf(why, sizeof why, "SOP class not negotiated on this presentation context");
    } else if (status == STATUS_SUCCESS && !create && !uid[0]) {
        status = STATUS_NO_SUCH_INSTANCE;
        snprintf(why, sizeof why, "an N-SET-RQ without a Requested SOP Instance UID");
    }
    if (status == STATUS_SUCCESS) {
        if (create && !uid[0])
            mira_uid_generate(uid); /* the SCP makes the UID (F.7.2.1.1) */
        mira_mpps_result r = MIRA_MPPS_OK;
        mira_error *e = NULL;
        bool ok = create ? mira_mpps_create(o->archive, uid, mira_file_dataset(f), &r, why,
                                            sizeof why, &e)
                         : mira_mpps_set(o->archive, uid, mira_file_dataset(f), &r, why,
                                         sizeof why, &e);
        if (!ok) {
            status = STATUS_PROCESSING_FAILURE;
            snprintf(why, sizeof why, "%s", e ? mira_error_get_message(e) : "the index failed");
            mira__log(s, MIRA_LOG_ERROR, "association %llu: MPPS %s: %s",
                      (unsigned long long)assoc_id, uid, why);
        } else {
            status = status_of(r);
            if (r == MIRA_MPPS_FINAL)
                error_id = ERROR_ID_NO_LONGER_UPDATABLE;
        }
        mira_error_free(e);
    }
    mira_file_free(f);
    if (status == STATUS_SUCCESS)
        mira__log(s, MIRA_LOG_INFO, "association %llu: MPPS %s %s", (unsigned long long)assoc_id,
                  uid, create ? "created" : "updated");
    else
        mira__log(s, MIRA_LOG_WARNING, "association %llu: MPPS N-%s of %s refused (0x%04X): %s",
                  (unsigned long long)assoc_id, create ? "CREATE" : "SET", uid[0] ? uid : "-",
                  status, why);
    mira_dataset *rsp = mira__n_response(cmd, rsp_field, status, uid, status ? why : NULL);
    if (rsp && error_id)
        mira__cmd_set_u16(rsp, MIRA__TAG_ERROR_ID, error_id);
    bool ok = mira__send_with(as, pctx, rsp, NULL);
    mira_dataset_free(rsp);
    return ok;
}
