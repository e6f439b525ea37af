/* Retrieve SCP (PS3.4 C.4.2, C.4.3): C-MOVE and C-GET on the Patient and Study Root models. */
#include "retrieve.h"

#include "qr_neg.h"
#include "send.h"
#include "services.h"

#include "dicom/dataset_int.h"
#include "net/tls.h"

#include <stdio.h>
#include <string.h>

#define PATIENT_ROOT_MOVE "1.2.840.10008.5.1.4.1.2.1.2"
#define PATIENT_ROOT_GET "1.2.840.10008.5.1.4.1.2.1.3"
#define STUDY_ROOT_MOVE "1.2.840.10008.5.1.4.1.2.2.2"
#define STUDY_ROOT_GET "1.2.840.10008.5.1.4.1.2.2.3"
#define TAG_MOVE_DESTINATION MIRA_TAG(0x0000, 0x0600)
#define TAG_REMAINING MIRA_TAG(0x0000, 0x1020)
#define TAG_COMPLETED MIRA_TAG(0x0000, 0x1021)
#define TAG_FAILED MIRA_TAG(0x0000, 0x1022)
#define TAG_WARNING MIRA_TAG(0x0000, 0x1023)
#define TAG_QR_LEVEL MIRA_TAG(0x0008, 0x0052)
#define TAG_FAILED_UIDS MIRA_TAG(0x0008, 0x0058)
#define MAX_IDENTIFIER (1u << 20)

enum {
    ST_SUCCESS = 0x0000,
    ST_PENDING = 0xFF00,
    ST_CANCEL = 0xFE00,
    ST_WARNING = 0xB000,
    ST_SOP_NOT_SUPPORTED = 0x0122,
    ST_OUT_OF_RESOURCES_MATCHES = 0xA701,
    ST_OUT_OF_RESOURCES_SUBOPS = 0xA702,
    ST_MOVE_DESTINATION_UNKNOWN = 0xA801,
    ST_IDENTIFIER_MISMATCH = 0xA900,
    ST_UNABLE_TO_PROCESS = 0xC000,
};

bool mira__is_retrieve_sop_class(const char *uid)
{
    return strcmp(uid, PATIENT_ROOT_MOVE) == 0 || strcmp(uid, PATIENT_ROOT_GET) == 0 ||
           strcmp(uid, STUDY_ROOT_MOVE) == 0 || strcmp(uid, STUDY_ROOT_GET) == 0;
}

bool mira__retrieve_scp_role(const char *uid, bool requested)
{
    return requested && mira__is_storage_sop_class(uid);
}

typedef struct retrieve {
    mira_dimse_server *s;
    mira__association *as; /* the requestor's */
    uint8_t pctx;
    const mira_dataset *cmd;
    uint16_t field;         /* MIRA__C_MOVE_RSP or MIRA__C_GET_RSP */
    uint16_t message_id;
    uint64_t assoc_id;
    uint16_t remaining, completed, failed, warning;
    char **failed_uids;
    size_t nfailed_uids, failed_cap;
    bool cancelled, dead;
    /* the instances */
    char **uids;
    size_t nuids, cap;
    mira_archive *archive;
} retrieve;

static bool add_uid(char ***v, size_t *n, size_t *cap, const char *uid)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **nv = mira_realloc(*v, c * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = c;
    }
    char *d = mira_strdup(uid);
    if (!d)
        return false;
    (*v)[(*n)++] = d;
    return true;
}

static void free_uids(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mira_free(v[i]);
    mira_free(v);
}

/* A response command set; counts when asked. */
static bool respond(retrieve *r, uint16_t status, const char *comment, bool counts,
                    const uint8_t *data, size_t len)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    static const uint8_t zero[4];
    char sop[65];
    mira__cmd_get_str(r->cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop, sizeof sop);
    bool ok = ds && mira_dataset_set_bytes(ds, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4, NULL);
    if (ok && sop[0])
        ok = mira_dataset_set_string(ds, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, sop, NULL);
    ok = ok && mira__cmd_set_u16(ds, MIRA__TAG_COMMAND_FIELD, r->field) &&
         mira__cmd_set_u16(ds, MIRA__TAG_RESPONDED_TO, r->message_id) &&
         mira__cmd_set_u16(ds, MIRA__TAG_DATA_SET_TYPE, data ? 0x0001 : MIRA__NO_DATA_SET) &&
         mira__cmd_set_u16(ds, MIRA__TAG_STATUS, status);
    if (ok && counts) {
        if (status == ST_PENDING || status == ST_CANCEL)
            ok = mira__cmd_set_u16(ds, TAG_REMAINING, r->remaining);
        ok = ok && mira__cmd_set_u16(ds, TAG_COMPLETED, r->completed) &&
             mira__cmd_set_u16(ds, TAG_FAILED, r->failed) &&
             mira__cmd_set_u16(ds, TAG_WARNING, r->warning);
    }
    if (ok && comment && *comment) {
        char c[65];
        snprintf(c, sizeof c, "%s", comment);
        for (char *p = c; *p; p++)
            if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E)
                *p = ' ';
        ok = mira_dataset_set_string(ds, MIRA__TAG_ERROR_COMMENT, MIRA_VR_LO, c, NULL) != NULL;
    }
    ok = ok && mira__dimse_send(r->as, r->pctx, ds, data, len, NULL);
    mira_dataset_free(ds);
    if (!ok)
        r->dead = true;
    return ok;
}

/* The final response, with the Failed SOP Instance UID List when there are failures. */
static bool respond_final(retrieve *r, uint16_t status, const char *comment)
{
    if (!r->nfailed_uids)
        return respond(r, status, comment, true, NULL, 0);
    mira_dataset *id = mira_dataset_new(NULL);
    mira__buf b;
    mira__buf_init(&b);
    for (size_t i = 0; i < r->nfailed_uids; i++) {
        if (i)
            mira__buf_putc(&b, '\\');
        mira__buf_puts(&b, r->failed_uids[i]);
    }
    mira__buf_putc(&b, 0);
    bool ok = id && !b.failed &&
              mira_dataset_set_string(id, TAG_FAILED_UIDS, MIRA_VR_UI, (const char *)b.data, NULL);
    b.len = 0;
    mira_ts_info info;
    const char *ts = mira__assoc_context_ts(r->as, r->pctx);
    ok = ok && ts && mira_ts_lookup(ts, &info) &&
         mira__dataset_encode(id, info.explicit_vr, info.big_endian, &b, NULL) && !b.failed;
    mira_dataset_free(id);
    bool sent = ok ? respond(r, status, comment, true, b.data, b.len)
                   : respond(r, status, comment, true, NULL, 0);
    mira__buf_cleanup(&b);
    return sent;
}

static void sub_failed(retrieve *r, const char *uid)
{
    r->failed++;
    (void)add_uid(&r->failed_uids, &r->nfailed_uids, &r->failed_cap, uid);
}

/* A C-CANCEL-RQ for the retrieve? (see mira__dimse_poll_cancel) */
static void check_cancel(retrieve *r)
{
    if (r->cancelled || r->dead)
        return;
    switch (mira__dimse_poll_cancel(r->as, r->message_id, "retrieve")) {
    case MIRA__POLL_NONE:
        break;
    case MIRA__POLL_CANCELLED:
        r->cancelled = true;
        break;
    case MIRA__POLL_ENDED:
        r->dead = true;
        break;
    }
}

/* C-GET: a command arriving while we wait for a C-STORE-RSP on the same association. */
static bool get_other(void *ctx, uint8_t pctx, const mira_dataset *cmd)
{
    retrieve *r = ctx;
    uint16_t field = 0, id = 0;
    mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field);
    mira__cmd_get_u16(cmd, MIRA__TAG_RESPONDED_TO, &id);
    if (field != MIRA__C_CANCEL_RQ)
        return false;
    if (id == r->message_id)
        r->cancelled = true;
    return true;
}

static void count(retrieve *r, const mira__send_item *it, const mira__send_outcome *o)
{
    if (o->responded && mira__store_status_ok(o->status)) {
        if (o->status == 0)
            r->completed++;
        else
            r->warning++;
    } else {
        sub_failed(r, it->sop_instance);
        mira__log(r->s, MIRA_LOG_WARNING,
                  "association %llu: sub-operation C-STORE of %s failed%s%.4X: %s",
                  (unsigned long long)r->assoc_id, it->sop_instance,
                  o->responded ? " with status 0x" : "", o->responded ? o->status : 0u,
                  o->reason);
    }
}

static bool collect_match(void *ctx, const mira_dataset *match)
{
    retrieve *r = ctx;
    const mira_element *e = mira_dataset_get(match, MIRA_TAG(0x0008, 0x0018));
    char *uid = e ? mira_element_get_string(e, 0, NULL) : NULL;
    bool ok = !uid || add_uid(&r->uids, &r->nuids, &r->cap, uid);
    mira_free(uid);
    return ok && r->nuids < 65535;
}

/* Look up a move destination. */
static const mira_dimse_peer *find_peer(const mira_dimse_server_options *o, const char *ae)
{
    for (size_t i = 0; o->peers && i < o->npeers; i++)
        if (o->peers[i].ae_title && strcmp(o->peers[i].ae_title, ae) == 0)
            return &o->peers[i];
    return NULL;
}

/* Send the items over the association to the destination (C-MOVE), more than one when they
 * need over 128 contexts. */
static void move_to(retrieve *r, const mira_dimse_peer *p, const char *dest_ae,
                    mira__send_item *items, size_t *idx, size_t n, const char *our_ae,
                    int timeout_ms)
{
    size_t done = 0;
    mira__tls *tls = NULL; /* a peer configured with TLS: its client context, for this move */
    mira_error *te = NULL;
    if (p->tls && !(tls = mira__tls_new(p->tls, false, &te))) {
        mira__log(r->s, MIRA_LOG_ERROR, "association %llu: C-MOVE to %s: TLS: %s",
                  (unsigned long long)r->assoc_id, dest_ae, mira_error_get_message(te));
        mira_error_free(te);
        for (size_t k = 0; k < n; k++) {
            sub_failed(r, items[idx[k]].sop_instance);
            r->remaining--;
        }
        return;
    }
    while (done < n && !r->cancelled && !r->dead) {
        mira__assoc rq;
        memset(&rq, 0, sizeof rq);
        snprintf(rq.calling_ae, sizeof rq.calling_ae, "%s", our_ae);
        snprintf(rq.called_ae, sizeof rq.called_ae, "%s", dest_ae);
        size_t np = 0;
        mira__association out;
        memset(&out, 0, sizeof out);
        out.conn.fd = -1;
        out.recv_max = 262144;
        out.artim_ms = timeout_ms;
        out.idle_ms = timeout_ms;
        out.tls = tls;
        out.conn.stop = r->as->conn.stop; /* a stopping server cuts the connect short too */
        mira_error *e = NULL;
        bool up = mira__send_propose(&rq, items, idx + done, n - done, &np) &&
                  mira__assoc_request(&out, p->host, p->port, &rq, timeout_ms, &e);
        mira__assoc_cleanup(&rq);
        if (!up) {
            mira__log(r->s, MIRA_LOG_ERROR, "association %llu: C-MOVE to %s (%s:%d): %s",
                      (unsigned long long)r->assoc_id, dest_ae, p->host, p->port,
                      e ? mira_error_get_message(e) : "no association");
            mira_error_free(e);
            mira__assoc_free_buffers(&out);
            for (size_t k = done; k < n; k++) {
                sub_failed(r, items[idx[k]].sop_instance);
                r->remaining--;
            }
            mira__tls_free(tls);
            return;
        }
        bool alive = true;
        uint16_t mid = 0;
        size_t k = done;
        for (; k < done + np && alive && !r->cancelled && !r->dead; k++) {
            const mira__send_item *it = &items[idx[k]];
            mira__send_outcome o;
            memset(&o, 0, sizeof o);
            uint8_t pc = mira__send_context(&out, it, false);
            if (pc)
                alive = mira__send_store(&out, pc, it, ++mid, mira__server_ae_title(r->s),
                                         r->message_id, NULL, NULL, &o);
            else
                snprintf(o.reason, sizeof o.reason, "the destination refused its SOP class");
            r->remaining--;
            count(r, it, &o);
            check_cancel(r);
            if (k + 1 < n && !r->cancelled && !r->dead)
                respond(r, ST_PENDING, NULL, true, NULL, 0);
        }
        if (alive)
            mira__assoc_release(&out, NULL);
        mira__conn_close(&out.conn);
        mira__assoc_free_buffers(&out);
        done = k;
        if (!alive && np == 0)
            break;
    }
    mira__tls_free(tls);
}

static void get_here(retrieve *r, mira__send_item *items, size_t *idx, size_t n)
{
    uint16_t mid = 0x8000; /* sub-operation message IDs, apart from the requestor's */
    for (size_t k = 0; k < n && !r->cancelled && !r->dead; k++) {
        const mira__send_item *it = &items[idx[k]];
        mira__send_outcome o;
        memset(&o, 0, sizeof o);
        uint8_t pc = mira__send_context(r->as, it, true);
        if (pc) {
            if (!mira__send_store(r->as, pc, it, ++mid, NULL, 0, get_other, r, &o))
                r->dead = true;
        } else {
            snprintf(o.reason, sizeof o.reason,
                     "no storage context with the SCP role for its SOP class");
        }
        r->remaining--;
        count(r, it, &o);
        check_cancel(r);
        if (k + 1 < n && !r->cancelled && !r->dead)
            respond(r, ST_PENDING, NULL, true, NULL, 0);
    }
}

static const mira_tag unique_keys[] = {MIRA_TAG(0x0010, 0x0020), MIRA_TAG(0x0020, 0x000D),
                                       MIRA_TAG(0x0020, 0x000E), MIRA_TAG(0x0008, 0x0018)};

typedef struct membuf {
    mira__buf b;
    bool over;
} membuf;

static bool collect(void *ctx, const uint8_t *data, size_t len, bool last)
{
    membuf *m = ctx;
    if (m->over || m->b.len + len > MAX_IDENTIFIER)
        m->over = true;
    else
        mira__buf_append(&m->b, data, len);
    return true;
}

bool mira__serve_retrieve(mira_dimse_server *s, const mira_dimse_server_options *opt,
                          mira_archive *archive, mira__association *as, uint64_t assoc_id,
                          uint8_t pctx, const mira_dataset *cmd, uint16_t field, bool has_data)
{
    retrieve r;
    memset(&r, 0, sizeof r);
    r.s = s;
    r.as = as;
    r.pctx = pctx;
    r.cmd = cmd;
    r.field = field == MIRA__C_MOVE_RQ ? MIRA__C_MOVE_RSP : MIRA__C_GET_RSP;
    r.assoc_id = assoc_id;
    r.archive = archive;
    mira__cmd_get_u16(cmd, MIRA__TAG_MESSAGE_ID, &r.message_id);
    bool move = field == MIRA__C_MOVE_RQ;
    membuf m;
    memset(&m, 0, sizeof m);
    mira__buf_init(&m.b);
    if (has_data && !mira__dimse_recv_data(as, pctx, collect, &m, NULL)) {
        mira__buf_cleanup(&m.b);
        return false;
    }
    char sop[65], dest[17];
    mira__cmd_get_str(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, sop, sizeof sop);
    mira__cmd_get_str(cmd, TAG_MOVE_DESTINATION, dest, sizeof dest);
    const char *ctx_sop = mira__assoc_context_sop(as, pctx);
    const char *ts = mira__assoc_context_ts(as, pctx);
    bool is_move_model = ctx_sop && (strcmp(ctx_sop, PATIENT_ROOT_MOVE) == 0 ||
                                     strcmp(ctx_sop, STUDY_ROOT_MOVE) == 0);
    bool study_root = ctx_sop && (strcmp(ctx_sop, STUDY_ROOT_MOVE) == 0 ||
                                  strcmp(ctx_sop, STUDY_ROOT_GET) == 0);
    mira_ts_info info;
    mira_file *f = NULL;
    char why[200] = "";
    uint16_t status = ST_SUCCESS;
    if (!archive || !ctx_sop || !mira__is_retrieve_sop_class(ctx_sop) || strcmp(ctx_sop, sop) ||
        is_move_model != move) {
        status = ST_SOP_NOT_SUPPORTED;
        snprintf(why, sizeof why, "SOP class not negotiated on this presentation context");
    } else if (!has_data || m.over || m.b.failed || !mira_ts_lookup(ts, &info) || info.deflated) {
        status = ST_UNABLE_TO_PROCESS;
        snprintf(why, sizeof why, "no identifier that can be read");
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
            status = ST_IDENTIFIER_MISMATCH;
            snprintf(why, sizeof why, "the identifier cannot be read: %s",
                     mira_error_get_message(e));
        }
        mira_error_free(e);
    }
    mira__buf_cleanup(&m.b);
    const mira_dimse_peer *peer = NULL;
    mira_level level = MIRA_LEVEL_STUDY;
    if (f) {
        mira_dataset *ident = mira_file_dataset(f);
        const mira_element *le = mira_dataset_get(ident, TAG_QR_LEVEL);
        char *lv = le ? mira_element_get_string(le, 0, NULL) : NULL;
        const mira_element *ke = NULL;
        char *key = NULL;
        if (!lv || !mira_level_from_name(lv, &level) ||
            (level == MIRA_LEVEL_PATIENT && study_root)) {
            status = ST_IDENTIFIER_MISMATCH;
            snprintf(why, sizeof why, "Query/Retrieve Level %.40s is not one of this model",
                     lv ? lv : "missing");
        } else if (!(ke = mira_dataset_get(ident, unique_keys[level])) ||
                   !(key = mira_element_get_string(ke, 0, NULL)) || !*key) {
            status = ST_IDENTIFIER_MISMATCH;
            snprintf(why, sizeof why, "no unique key for the %s level", mira_level_name(level));
        } else if (!mira__qr_ext_agreed(as, ctx_sop, MIRA__QR_RELATIONAL) &&
                   !mira__qr_hierarchical(ident, level, study_root, false, why, sizeof why)) {
            status = ST_IDENTIFIER_MISMATCH; /* the baseline rules of PS3.4 C.4.2.2.1 */
        } else if (move && !(peer = find_peer(opt, dest))) {
            status = ST_MOVE_DESTINATION_UNKNOWN;
            snprintf(why, sizeof why, "move destination \"%.16s\" unknown", dest);
        } else {
            mira_dataset_remove(ident, TAG_QR_LEVEL);
            mira_dataset_remove(ident, MIRA_TAG(0x0008, 0x0054));
            if (!mira_dataset_get(ident, unique_keys[MIRA_LEVEL_INSTANCE]))
                mira_dataset_set_bytes(ident, unique_keys[MIRA_LEVEL_INSTANCE], MIRA_VR_UI, NULL,
                                       0, NULL);
            mira_find_options fo;
            mira_find_options_init(&fo);
            mira_error *e = NULL;
            if (!mira_archive_find(archive, MIRA_LEVEL_INSTANCE, ident, &fo, collect_match, &r,
                                   &e)) {
                status = mira_error_get_code(e) == MIRA_ERR_ARGUMENT ||
                                 mira_error_get_code(e) == MIRA_ERR_INVALID
                             ? ST_IDENTIFIER_MISMATCH
                             : ST_OUT_OF_RESOURCES_MATCHES;
                snprintf(why, sizeof why, "%.190s", e ? mira_error_get_message(e) : "failed");
            }
            mira_error_free(e);
        }
        mira_free(key);
        mira_free(lv);
        mira_file_free(f);
    }
    if (status != ST_SUCCESS) {
        mira__log(s, MIRA_LOG_WARNING, "association %llu: %s refused (0x%04X): %s",
                  (unsigned long long)assoc_id, move ? "C-MOVE" : "C-GET", status, why);
        free_uids(r.uids, r.nuids);
        return respond(&r, status, why, false, NULL, 0);
    }
    /* the instances' files and headers */
    mira__send_item *items = mira_calloc(r.nuids ? r.nuids : 1, sizeof *items);
    size_t *idx = mira_calloc(r.nuids ? r.nuids : 1, sizeof *idx);
    size_t n = 0;
    r.remaining = (uint16_t)r.nuids;
    for (size_t i = 0; items && idx && i < r.nuids; i++) {
        char *path = mira_archive_instance_path(archive, r.uids[i], NULL);
        if (path && mira__send_item_init(&items[i], path)) {
            idx[n++] = i;
        } else {
            sub_failed(&r, r.uids[i]);
            r.remaining--;
        }
        mira_free(path);
    }
    if (!items || !idx) {
        status = ST_OUT_OF_RESOURCES_SUBOPS;
    } else if (move) {
        int t = (opt->artim_seconds > 0 ? opt->artim_seconds : 30) * 1000;
        move_to(&r, peer, dest, items, idx, n, mira__server_ae_title(s), t);
    } else {
        get_here(&r, items, idx, n);
    }
    for (size_t i = 0; items && i < r.nuids; i++)
        mira__send_item_cleanup(&items[i]);
    mira_free(items);
    mira_free(idx);
    /* what the cancel left undone is in remaining; failures were added as they came */
    if (r.cancelled)
        status = ST_CANCEL;
    else if (status == ST_SUCCESS && (r.failed || r.warning))
        status = r.completed == 0 && r.warning == 0 && move && r.failed == r.nuids
                     ? ST_OUT_OF_RESOURCES_SUBOPS
                     : ST_WARNING;
    mira__log(s, MIRA_LOG_INFO,
              "association %llu: %s of %zu instances%s%s: %u completed, %u failed, %u warnings%s",
              (unsigned long long)assoc_id, move ? "C-MOVE" : "C-GET", r.nuids,
              move ? " to " : "", move ? dest : "", r.completed, r.failed, r.warning,
              r.cancelled ? ", cancelled" : "");
    bool ok = !r.dead && respond_final(&r, status, NULL);
    free_uids(r.uids, r.nuids);
    free_uids(r.failed_uids, r.nfailed_uids);
    return ok && !r.dead;
}
