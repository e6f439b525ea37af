/* What the worklist, MPPS and storage commitment services share: data sets in and out of a
 * context's syntax, DIMSE-N responses. */
#include "procedure.h"

#include "dicom/dataset_int.h"

#include <stdio.h>
#include <string.h>

bool mira__is_procedure_sop_class(const char *uid)
{
    return strcmp(uid, MIRA__MWL_FIND_UID) == 0 || strcmp(uid, MIRA__MPPS_UID) == 0 ||
           strcmp(uid, MIRA__COMMITMENT_UID) == 0;
}

typedef struct membuf {
    mira__buf b;
    size_t max;
    bool over;
} membuf;

static bool collect(void *ctx, const uint8_t *data, size_t len, bool last)
{
    membuf *m = ctx;
    if (m->over || m->b.len + len > m->max) {
        m->over = true;
        return true;
    }
    mira__buf_append(&m->b, data, len);
    return true;
}

mira_file *mira__recv_dataset(mira__association *as, uint8_t pctx, size_t max, bool *ended,
                              char *why, size_t n)
{
    *ended = false;
    membuf m = {{0}, max, false};
    mira__buf_init(&m.b);
    if (!mira__dimse_recv_data(as, pctx, collect, &m, NULL)) {
        mira__buf_cleanup(&m.b);
        *ended = true;
        return NULL;
    }
    const char *ts = mira__assoc_context_ts(as, pctx);
    mira_ts_info info;
    mira_file *f = NULL;
    if (m.over || m.b.failed) {
        snprintf(why, n, "the data set is over %zu bytes", max);
    } else if (!ts || !mira_ts_lookup(ts, &info) || info.deflated) {
        snprintf(why, n, "data sets in this transfer syntax are not supported");
    } else {
        mira_read_options ro;
        mira_read_options_init(&ro);
        ro.raw = true;
        ro.transfer_syntax = ts;
        ro.no_mmap = true;
        mira_error *e = NULL;
        f = mira_file_read_memory(m.b.data ? m.b.data : (const uint8_t *)"", m.b.len, &ro, true,
                                  &e);
        if (!f)
            snprintf(why, n, "the data set cannot be read: %s", mira_error_get_message(e));
        mira_error_free(e);
    }
    mira__buf_cleanup(&m.b);
    return f;
}

bool mira__encode_for_context(const mira__association *as, uint8_t pctx, const mira_dataset *ds,
                              mira__buf *b)
{
    const char *ts = mira__assoc_context_ts(as, pctx);
    mira_ts_info info;
    if (!ts || !mira_ts_lookup(ts, &info) || info.deflated)
        return false;
    return mira__dataset_encode(ds, info.explicit_vr, info.big_endian, b, NULL) && !b->failed;
}

mira_dataset *mira__n_response(const mira_dataset *rq, uint16_t field, uint16_t status,
                               const char *instance, const char *comment)
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
    if (!uid[0])
        mira__cmd_get_str(rq, MIRA__TAG_REQUESTED_SOP_CLASS, uid, sizeof uid);
    if (uid[0])
        ok &= mira_dataset_set_string(ds, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, uid, NULL) !=
              NULL;
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_COMMAND_FIELD, field);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_RESPONDED_TO, id);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_DATA_SET_TYPE, MIRA__NO_DATA_SET);
    ok &= mira__cmd_set_u16(ds, MIRA__TAG_STATUS, status);
    if (!instance || !*instance) {
        mira__cmd_get_str(rq, MIRA__TAG_AFFECTED_SOP_INSTANCE, uid, sizeof uid);
        if (!uid[0])
            mira__cmd_get_str(rq, MIRA__TAG_REQUESTED_SOP_INSTANCE, uid, sizeof uid);
        instance = uid;
    }
    if (*instance)
        ok &= mira_dataset_set_string(ds, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI, instance,
                                      NULL) != NULL;
    if (comment && *comment) {
        char c[65];
        snprintf(c, sizeof c, "%s", comment); /* LO: at most 64 characters */
        for (char *p = c; *p; p++)
            if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E)
                *p = ' ';
        ok &= mira_dataset_set_string(ds, MIRA__TAG_ERROR_COMMENT, MIRA_VR_LO, c, NULL) != NULL;
    }
    if (!ok) {
        mira_dataset_free(ds);
        return NULL;
    }
    return ds;
}

bool mira__send_with(mira__association *as, uint8_t pctx, mira_dataset *cmd,
                     const mira_dataset *ds)
{
    mira__buf b;
    mira__buf_init(&b);
    bool ok = cmd != NULL;
    if (ok && ds)
        ok = mira__encode_for_context(as, pctx, ds, &b) &&
             mira__cmd_set_u16(cmd, MIRA__TAG_DATA_SET_TYPE, 0x0001);
    if (!ok) {
        mira__buf_cleanup(&b);
        mira__assoc_abort(as, MIRA__ABORT_PROVIDER, 0, "out of memory");
        return false;
    }
    ok = mira__dimse_send(as, pctx, cmd, ds ? (b.data ? b.data : (const uint8_t *)"") : NULL,
                          ds ? b.len : 0, NULL);
    mira__buf_cleanup(&b);
    return ok;
}
