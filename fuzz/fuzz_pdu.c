/* Fuzz target: the upper layer PDU parser (PS3.8 9.3), and every association PDU it accepts
 * built again and parsed back to the same values. */
#include "dimse/pdu.h"

#include <string.h>

static void same_assoc(const mira__assoc *a, const mira__assoc *b)
{
    if (strcmp(a->called_ae, b->called_ae) || strcmp(a->calling_ae, b->calling_ae) ||
        (a->app_context[0] && strcmp(a->app_context, b->app_context)) || a->npctx != b->npctx ||
        a->max_pdu != b->max_pdu || strcmp(a->impl_class_uid, b->impl_class_uid) ||
        strcmp(a->impl_version, b->impl_version) || a->nroles != b->nroles ||
        a->next != b->next || a->has_async != b->has_async)
        __builtin_trap();
    for (size_t i = 0; i < a->npctx; i++) {
        if (a->pctx[i].id != b->pctx[i].id || a->pctx[i].nts != b->pctx[i].nts ||
            strcmp(a->pctx[i].abstract_syntax, b->pctx[i].abstract_syntax))
            __builtin_trap();
        for (size_t k = 0; k < a->pctx[i].nts; k++)
            if (strcmp(a->pctx[i].ts[k], b->pctx[i].ts[k]))
                __builtin_trap();
    }
    for (size_t i = 0; i < a->next; i++)
        if (a->ext[i].len != b->ext[i].len || memcmp(a->ext[i].info, b->ext[i].info, a->ext[i].len))
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    mira_error *err = NULL;
    mira__pdu pdu;
    if (!mira__pdu_parse(data, size, &pdu, &err)) {
        /* every rejection must say where */
        if (!err || !strstr(mira_error_get_message(err), "offset"))
            __builtin_trap();
        mira_error_free(err);
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < pdu.npdv; i++) {
        if (pdu.pdv[i].data < data || pdu.pdv[i].data + pdu.pdv[i].len > data + size)
            __builtin_trap();
        total += pdu.pdv[i].len + 6;
    }
    if (pdu.type == 4 && total != size - 6)
        __builtin_trap();
    if (pdu.type == 1 || pdu.type == 2) {
        mira__buf b;
        mira__buf_init(&b);
        /* AE titles with inner spaces or over 16 bytes cannot change a round trip */
        if (!mira__pdu_build_assoc(&b, pdu.type, &pdu.assoc, NULL)) {
            mira__buf_cleanup(&b);
            mira__pdu_cleanup(&pdu);
            return 0; /* a context too long to rebuild: allowed */
        }
        mira__pdu again;
        if (!mira__pdu_parse(b.data, b.len, &again, NULL))
            __builtin_trap();
        same_assoc(&pdu.assoc, &again.assoc);
        mira__pdu_cleanup(&again);
        mira__buf_cleanup(&b);
    }
    mira__pdu_cleanup(&pdu);
    return 0;
}
