/* Storage Commitment Push Model SOP Class SCP (PS3.4 J): N-ACTION answered, then the
 * N-EVENT-REPORT telling which instances the archive holds, on the same association or on a
 * new one to the requestor's configured AE, kept in the index and retried until delivered. */
#include "procedure.h"

#include "mira/worklist.h"

#include "net/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
/* A report waits this long for the requestor's N-EVENT-REPORT-RSP (with nothing else coming). */
#define REPORT_WAIT_MS 10000
/* How long an attempt holds a report (its claim in the index) before another may take it: on
 * the requestor's association, and on a new one (connection, negotiation, the report's wait
 * and the release, each bounded by ARTIM or REPORT_WAIT_MS). */
#define ASSOC_LEASE_S 120
#define RETRY_LEASE_S 300
/* The retry thread looks at the index this often at least (reports of other servers on the
 * same index, leases that ended), and at most this many reports at a time. */
#define RESCAN_S 60
#define DUE_MAX 16

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

/* A report waiting to be sent on its association (as->reports), or being sent. */
typedef struct mira__queued_report {
    struct mira__queued_report *next;
    uint8_t pctx;
    uint16_t event_type;
    mira_dataset *ev;
    char tx[65];
    uint64_t total, failures;
    int64_t row, claim; /* its record in the index and our claim on it (row 0: not recorded) */
} queued_report;

struct mira__report_retry {
    mira_dimse_server *s;
    int *delays; /* seconds before the attempts after the first new association's */
    size_t ndelays;
    int seconds; /* reports are retried this long after their request */
    atomic_bool kick; /* a report became due: look at once */
    pthread_t thread;
    bool started;
};

static void queued_free(queued_report *q)
{
    if (q)
        mira_dataset_free(q->ev);
    mira_free(q);
}

/*
 * Wait for the N-EVENT-REPORT-RSP to message_id (sent on as). With s, requests that arrive
 * meanwhile are served: PS3.7's default window (1 invoked, 1 performed) lets the requestor
 * invoke an operation of its own while ours is outstanding. A commitment request among them
 * queues its report behind this one (as->reporting), so the serving goes one level deep only.
 * Without s (a new association, where we are the requestor), anything else aborts. The
 * response may also be taken by the service being served (mira__dimse_take_report_rsp).
 */
static report_outcome await_report(mira_dimse_server *s, mira__association *as,
                                   uint64_t assoc_id, uint16_t message_id, uint16_t *status)
{
    as->report_outstanding = true;
    as->report_answered = false;
    as->report_id = message_id;
    bool alive = true;
    while (alive && !as->report_answered) {
        uint8_t rp = 0;
        mira_dataset *cmd = NULL;
        if (mira__dimse_recv_command(as, &rp, &cmd, REPORT_WAIT_MS, NULL) != MIRA__RECV_COMMAND)
            break;
        uint16_t dstype = MIRA__NO_DATA_SET;
        mira__cmd_get_u16(cmd, MIRA__TAG_DATA_SET_TYPE, &dstype);
        if (mira__dimse_take_report_rsp(as, cmd)) {
            alive = dstype == MIRA__NO_DATA_SET || mira__dimse_recv_data(as, rp, NULL, NULL, NULL);
        } else if (s) {
            alive = mira__serve_request(s, as, assoc_id, rp, cmd);
        } else {
            mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU,
                              "a message other than the N-EVENT-REPORT-RSP we waited for");
            alive = false;
        }
        mira_dataset_free(cmd);
    }
    as->report_outstanding = false;
    if (!as->report_answered)
        return REPORT_LOST;
    *status = as->report_status;
    return *status == STATUS_SUCCESS ? REPORT_DELIVERED : REPORT_REFUSED;
}

/* Send the report on pctx and wait for its response. *status gets the response's status. */
static report_outcome send_report(mira_dimse_server *s, mira__association *as,
                                  uint64_t assoc_id, uint8_t pctx, uint16_t event_type,
                                  const mira_dataset *ev, uint16_t *status)
{
    if (++as->report_ids == 0) /* Message IDs are 1 to 65535 */
        as->report_ids = 1;
    uint16_t message_id = as->report_ids;
    mira_dataset *c = event_command(message_id, event_type);
    bool sent = mira__send_with(as, pctx, c, ev);
    mira_dataset_free(c);
    if (!sent)
        return REPORT_LOST;
    as->messages++;
    return await_report(s, as, assoc_id, message_id, status);
}

/* A new association to the requestor's configured AE, as the SCP of the SOP class (J.3.3).
 * *no_peer is set when none is configured (then no attempt can succeed). */
static bool report_elsewhere(mira_dimse_server *s, const char *calling_ae, uint16_t event_type,
                             const mira_dataset *ev, bool *no_peer, char *how, size_t n)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    const mira_dimse_peer *peer = NULL;
    for (size_t i = 0; i < o->npeers && !peer; i++)
        if (o->peers[i].ae_title && strcmp(o->peers[i].ae_title, calling_ae) == 0)
            peer = &o->peers[i];
    *no_peer = peer == NULL;
    if (!peer) {
        snprintf(how, n, "not sent: no peer \"%s\" configured (dimse.peers)", calling_ae);
        return false;
    }
    mira__association as;
    memset(&as, 0, sizeof as);
    as.conn.fd = -1;
    as.conn.stop = mira__server_stop_flag(s); /* a stopping server cuts the attempt short */
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
    report_outcome r = send_report(NULL, &as, 0, 1, event_type, ev, &status);
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

/* ------------------------------------------------------------------ on the association */

/* Send the association's queued reports one after the other, each once the previous one is
 * answered, serving the requests that come meanwhile (which may queue more). Those not
 * delivered are handed to the retry thread. False when the association ended. */
static bool send_reports(mira_dimse_server *s, mira__association *as, uint64_t assoc_id)
{
    const mira_dimse_server_options *o = mira__server_options(s);
    as->reporting = true;
    queued_report *q;
    while ((q = as->reports) != NULL) {
        as->reports = q->next;
        char how[300] = "";
        bool delivered = false, taken = true;
        mira_error *e = NULL;
        /* still ours? (a report that waited long behind others may have gone to the retry) */
        if (q->row && as->end == MIRA__END_NONE) {
            int64_t now = (int64_t)time(NULL);
            if (!mira_archive_commitment_claim(o->archive, q->row, now, now + ASSOC_LEASE_S,
                                               &q->claim, &taken, &e)) {
                mira__log(s, MIRA_LOG_ERROR, "association %llu: storage commitment %s: %s",
                          (unsigned long long)assoc_id, q->tx, mira_error_get_message(e));
                mira_error_free(e);
                e = NULL;
                taken = true; /* the index failing is no reason not to send it */
            }
        }
        if (!taken) {
            snprintf(how, sizeof how, "taken by a retry meanwhile");
        } else if (as->end != MIRA__END_NONE) {
            snprintf(how, sizeof how, "the association had ended (%s)", as->end_detail);
        } else {
            uint16_t rs = 0;
            report_outcome r = send_report(s, as, assoc_id, q->pctx, q->event_type, q->ev, &rs);
            delivered = r == REPORT_DELIVERED;
            if (delivered)
                snprintf(how, sizeof how, "same association");
            else if (r == REPORT_REFUSED)
                snprintf(how, sizeof how, "refused on the same association (0x%04X)", rs);
            else
                snprintf(how, sizeof how, "lost on the same association (%s)", as->end_detail);
        }
        if (taken && !delivered && !q->row) {
            /* not recorded, so no retry: one attempt on a new association now */
            size_t l = strlen(how);
            bool no_peer = false;
            snprintf(how + l, sizeof how - l, "; ");
            l = strlen(how);
            delivered = report_elsewhere(s, as->rq.calling_ae, q->event_type, q->ev, &no_peer,
                                         how + l, sizeof how - l);
        }
        mira__log(s, delivered || !taken ? MIRA_LOG_INFO : MIRA_LOG_WARNING,
                  "association %llu: storage commitment %s: %llu instances, %llu failed; "
                  "report: %s%s",
                  (unsigned long long)assoc_id, q->tx, (unsigned long long)q->total,
                  (unsigned long long)q->failures, how,
                  delivered || !taken ? "" : q->row ? "; to a new association" : "");
        if (q->row && taken) {
            /* undelivered: due at once, for the retry thread */
            if (!mira_archive_commitment_attempted(o->archive, q->row, q->claim, delivered, 0,
                                                   delivered ? 0 : (int64_t)time(NULL), how,
                                                   &e)) {
                mira__log(s, MIRA_LOG_ERROR,
                          "association %llu: recording storage commitment %s: %s",
                          (unsigned long long)assoc_id, q->tx, mira_error_get_message(e));
                mira_error_free(e);
            } else if (!delivered && mira__server_report_retry(s)) {
                atomic_store(&mira__server_report_retry(s)->kick, true);
            }
        }
        queued_free(q);
    }
    as->reporting = false;
    return as->end == MIRA__END_NONE;
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
    queued_report *q = ev ? mira_calloc(1, sizeof *q) : NULL;
    if (status == STATUS_SUCCESS && !q) {
        status = STATUS_RESOURCE_LIMITATION;
        snprintf(why, sizeof why, "out of memory");
        mira_dataset_free(ev);
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
        return alive;
    }
    /* the report: recorded (so that it outlives us until delivered), then queued for this
     * association, which sends it while it is open; else the retry thread takes it */
    q->pctx = pctx;
    q->event_type = failures ? 2 : 1;
    q->ev = ev;
    snprintf(q->tx, sizeof q->tx, "%s", tx);
    q->total = total;
    q->failures = failures;
    int64_t now = (int64_t)time(NULL);
    const mira__report_retry *rt = mira__server_report_retry(s);
    mira_error *e = NULL;
    if (!mira_archive_commitment_add(o->archive, tx, as->rq.calling_ae, total, failures,
                                     q->event_type, ev, now + ASSOC_LEASE_S,
                                     now + (rt ? rt->seconds : 0), &q->row, &q->claim, &e)) {
        mira__log(s, MIRA_LOG_ERROR,
                  "association %llu: recording storage commitment %s: %s (its report is not "
                  "retried)",
                  (unsigned long long)assoc_id, tx, mira_error_get_message(e));
        mira_error_free(e);
        q->row = 0;
    }
    queued_report **tail = &as->reports;
    while (*tail)
        tail = &(*tail)->next;
    *tail = q;
    if (as->reporting) /* a report of ours is outstanding here: this one goes after it */
        return alive;
    return send_reports(s, as, assoc_id) && alive;
}

/* ------------------------------------------------------------------ the retry */

static const int default_delays[] = {5, 30, 120, 600};

mira__report_retry *mira__report_retry_new(mira_dimse_server *s,
                                           const mira_dimse_server_options *o, mira_error **err)
{
    const int *d = o->commit_retry_delays ? o->commit_retry_delays : default_delays;
    size_t n = o->commit_retry_delays ? o->ncommit_retry_delays
                                      : sizeof default_delays / sizeof default_delays[0];
    if (n == 0) {
        d = default_delays;
        n = sizeof default_delays / sizeof default_delays[0];
    }
    for (size_t i = 0; i < n; i++)
        if (d[i] < 1 || d[i] > 7 * 86400) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad option",
                           "commit_retry_delays: %d seconds (each is 1 to 604800)", d[i]);
            return NULL;
        }
    mira__report_retry *r = mira_calloc(1, sizeof *r);
    int *copy = mira_calloc(n, sizeof *copy);
    if (!r || !copy) {
        mira_free(r);
        mira_free(copy);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the storage commitment retry");
        return NULL;
    }
    memcpy(copy, d, n * sizeof *copy);
    r->s = s;
    r->delays = copy;
    r->ndelays = n;
    r->seconds = o->commit_retry_seconds > 0 ? o->commit_retry_seconds : 86400;
    atomic_init(&r->kick, true); /* those a previous run left: at once */
    return r;
}

void mira__report_retry_free(mira__report_retry *r)
{
    if (!r)
        return;
    mira_free(r->delays);
    mira_free(r);
}

typedef struct due_list {
    mira_commitment_report v[DUE_MAX];
    size_t n;
} due_list;

static bool take_due(void *ctx, mira_commitment_report *r)
{
    due_list *l = ctx;
    if (l->n >= DUE_MAX) {
        mira_dataset_free(r->event_info);
        return false;
    }
    l->v[l->n++] = *r;
    return true;
}

/* One attempt at a report on a new association, and what comes of it in the index. Returns
 * when the next attempt is due (0: none). */
static int64_t retry_one(mira__report_retry *rt, const mira_commitment_report *r)
{
    mira_dimse_server *s = rt->s;
    mira_archive *a = mira__server_options(s)->archive;
    int64_t now = (int64_t)time(NULL), claim = 0;
    bool taken = false;
    mira_error *e = NULL;
    if (!mira_archive_commitment_claim(a, r->id, now, now + RETRY_LEASE_S, &claim, &taken, &e) ||
        !taken) {
        if (e)
            mira__log(s, MIRA_LOG_ERROR, "storage commitment %s: %s", r->transaction_uid,
                      mira_error_get_message(e));
        mira_error_free(e);
        return 0; /* another attempt has it */
    }
    int attempt = r->attempts + 1;
    char how[300];
    bool no_peer = false;
    bool delivered = report_elsewhere(s, r->requestor, r->event_type, r->event_info, &no_peer,
                                      how, sizeof how);
    int64_t next = 0;
    if (!delivered && !no_peer) {
        int delay = rt->delays[(size_t)(attempt - 1) < rt->ndelays ? (size_t)(attempt - 1)
                                                                    : rt->ndelays - 1];
        next = (int64_t)time(NULL) + delay;
        if (next > r->retry_until)
            next = 0;
    }
    char record[400];
    if (delivered || next)
        snprintf(record, sizeof record, "%s (attempt %d)", how, attempt);
    else
        snprintf(record, sizeof record, "given up after %d attempts: %s", attempt, how);
    if (delivered)
        mira__log(s, MIRA_LOG_INFO, "storage commitment %s of %s: report delivered, attempt %d: %s",
                  r->transaction_uid, r->requestor, attempt, how);
    else if (next)
        mira__log(s, MIRA_LOG_WARNING,
                  "storage commitment %s of %s: report attempt %d: %s; next attempt in %llds",
                  r->transaction_uid, r->requestor, attempt, how, (long long)(next - now));
    else
        mira__log(s, MIRA_LOG_ERROR, "storage commitment %s of %s: report attempt %d: %s; %s",
                  r->transaction_uid, r->requestor, attempt, how,
                  no_peer ? "not retried" : "given up (dimse.commit_retry_seconds)");
    if (!mira_archive_commitment_attempted(a, r->id, claim, delivered, attempt, next, record,
                                           &e)) {
        mira__log(s, MIRA_LOG_ERROR, "recording storage commitment %s: %s", r->transaction_uid,
                  mira_error_get_message(e));
        mira_error_free(e);
    }
    return next;
}

static void *retry_thread(void *arg)
{
    mira__report_retry *rt = arg;
    mira_dimse_server *s = rt->s;
    mira_archive *a = mira__server_options(s)->archive;
    const atomic_bool *stop = mira__server_stop_flag(s);
    int64_t next_look = 0;
    bool failing = false; /* the index failed the last look: logged once */
    while (!atomic_load(stop)) {
        int64_t now = (int64_t)time(NULL);
        if (atomic_exchange(&rt->kick, false) || now >= next_look) {
            due_list l;
            l.n = 0;
            int64_t next = 0;
            mira_error *e = NULL;
            bool ok = mira_archive_commitments_due(a, now, DUE_MAX, take_due, &l, &next, &e);
            if (!ok && !failing)
                mira__log(s, MIRA_LOG_ERROR, "storage commitment reports due: %s",
                          mira_error_get_message(e));
            failing = !ok;
            mira_error_free(e);
            for (size_t i = 0; i < l.n; i++) {
                int64_t again = atomic_load(stop) ? 0 : retry_one(rt, &l.v[i]);
                if (again && (!next || again < next))
                    next = again;
                mira_dataset_free(l.v[i].event_info);
            }
            now = (int64_t)time(NULL);
            next_look = now + RESCAN_S;
            if (l.n == DUE_MAX) /* maybe more: look again at once */
                next_look = now;
            else if (next && next < next_look)
                next_look = next;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

bool mira__report_retry_start(mira__report_retry *r, mira_error **err)
{
    if (pthread_create(&r->thread, NULL, retry_thread, r) != 0) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a thread for the storage commitment retry");
        return false;
    }
    r->started = true;
    return true;
}

void mira__report_retry_join(mira__report_retry *r)
{
    if (!r || !r->started)
        return;
    pthread_join(r->thread, NULL);
    r->started = false;
}
