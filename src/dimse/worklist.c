/* Modality Worklist Information Model FIND SCP (PS3.4 K): C-FIND answered from the archive's
 * scheduled procedure steps, with C-CANCEL. */
#include "procedure.h"

#include "mira/worklist.h"

#include <stdio.h>
#include <string.h>

enum {
    STATUS_SUCCESS = 0x0000,
    STATUS_PENDING = 0xFF00,
    STATUS_PENDING_OPTIONAL = 0xFF01, /* a key is not supported (we support every key) */
    STATUS_CANCEL = 0xFE00,
    STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122,
    STATUS_IDENTIFIER_MISMATCH = 0xA900,
    STATUS_UNABLE_TO_PROCESS = 0xC000,
    STATUS_OUT_OF_RESOURCES = 0xA700,
};

#define MAX_IDENTIFIER (1u << 20)

typedef struct mwl_state {
    mira__association *as;
    uint8_t pctx;
    const mira_dataset *cmd;
    uint16_t message_id;
    uint64_t matches;
    bool cancelled, failed;
} mwl_state;

/* A C-CANCEL-RQ for our message ends the search (see mira__dimse_poll_cancel). */
static bool check_cancel(mwl_state *f)
{
    switch (mira__dimse_poll_cancel(f->as, f->message_id, "worklist C-FIND")) {
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
    mwl_state *f = ctx;
    if (!check_cancel(f))
        return false;
    mira_dataset *rsp = mira__n_response(f->cmd, MIRA__C_FIND_RSP, STATUS_PENDING, "-", NULL);
    /* "-": no Affected SOP Instance UID in a C-FIND-RSP */
    if (rsp)
        mira_dataset_remove(rsp, MIRA__TAG_AFFECTED_SOP_INSTANCE);
    bool ok = mira__send_with(f->as, f->pctx, rsp, match);
    mira_dataset_free(rsp);
    f->failed |= !ok;
    f->matches += ok;
    return ok;
}

bool mira__serve_worklist_find(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                               uint8_t pctx, const mira_dataset *cmd, bool has_data)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    char sop_class[65];
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop_class, sizeof sop_class);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    uint16_t status = STATUS_SUCCESS;
    char why[300] = "";
    mira_file *f = NULL;
    if (has_data) {
        bool ended = false;
        f = mira__recv_dataset(as, pctx, MAX_IDENTIFIER, &ended, why, sizeof why);
        if (ended)
            return false;
        if (!f)
            status = STATUS_IDENTIFIER_MISMATCH;
    } else {
        status = STATUS_UNABLE_TO_PROCESS;
        snprintf(why, sizeof why, "a C-FIND-RQ without an identifier");
    }
    if (!o->archive || !ctx_sop || strcmp(ctx_sop, MIRA__MWL_FIND_UID) != 0 ||
        strcmp(sop_class, MIRA__MWL_FIND_UID) != 0) {
        status = STATUS_SOP_CLASS_NOT_SUPPORTED;
        snprintf(why, sizeof why, "SOP class not negotiated on this presentation context");
    }
    mwl_state st = {as, pctx, cmd, 0, 0, false, false};
    mira__cmd_get_u16(cmd, MIRA__TAG_MESSAGE_ID, &st.message_id);
    if (f && status == STATUS_SUCCESS) {
        mira_error *e = NULL;
        if (!mira_worklist_find(o->archive, mira_file_dataset(f), send_match, &st, &e) &&
            !st.cancelled && !st.failed) {
            status = mira_error_get_code(e) == MIRA_ERR_INVALID ||
                             mira_error_get_code(e) == MIRA_ERR_ARGUMENT
                         ? STATUS_IDENTIFIER_MISMATCH
                         : STATUS_OUT_OF_RESOURCES;
            snprintf(why, sizeof why, "%s", e ? mira_error_get_message(e) : "search failed");
            mira__log(s, MIRA_LOG_ERROR, "association %llu: worklist C-FIND failed (0x%04X): %s",
                      (unsigned long long)assoc_id, status, why);
        }
        mira_error_free(e);
    }
    mira_file_free(f);
    if (st.failed)
        return false;
    if (st.cancelled)
        status = STATUS_CANCEL;
    if (status == STATUS_SUCCESS || status == STATUS_CANCEL)
        mira__log(s, MIRA_LOG_INFO, "association %llu: worklist C-FIND: %llu matches%s",
                  (unsigned long long)assoc_id, (unsigned long long)st.matches,
                  st.cancelled ? ", cancelled" : "");
    mira_dataset *rsp = mira__n_response(cmd, MIRA__C_FIND_RSP, status, "-",
                                         status == STATUS_SUCCESS ? NULL : why);
    if (rsp)
        mira_dataset_remove(rsp, MIRA__TAG_AFFECTED_SOP_INSTANCE);
    bool ok = mira__send_with(as, pctx, rsp, NULL);
    mira_dataset_free(rsp);
    return ok;
}
