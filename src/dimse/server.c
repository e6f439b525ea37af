/* The DIMSE SCP: listening, a thread per association, negotiation, dispatch to the services. */
#include "dimse_int.h"
#include "qr_neg.h"
#include "retrieve.h"
#include "services.h"
#include "access.h"
#include "net/tls.h"
#include "procedure.h"

#include "dicom/impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mira_dimse_server {
    mira_dimse_server_options opt;
    char *bind, *ae_title;
    char **calling;
    char **ts; /* the syntaxes accepted (owned copies) */
    size_t nts;
    bool ts_configured; /* ts is a preference order; else the requestor's order decides */
    int fd, port;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;   /* association threads running (negotiating or established) */
    uint64_t ids; /* association numbers, for the log */
    mira__store_ctx store;
    mira__access *access; /* NULL: every AE may use every service */
    mira__tls *tls;       /* NULL: no TLS listener */
    int tls_fd, tls_port;
    bool tls_verify; /* clients' certificates are verified */
    mira__report_retry *retry; /* storage commitment reports not delivered (NULL: no archive) */
};

/* A rejecting thread may run beyond the maximum, but only this many more. */
#define EXTRA_REJECTORS 16

void mira__log(mira_dimse_server *s, mira_log_level level, const char *fmt, ...)
{
    if (!s->opt.log)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* AE titles and user names come from the peer: no control character reaches the log */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = '?';
    s->opt.log(s->opt.log_ctx, level, msg);
}

void mira_dimse_server_options_init(mira_dimse_server_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->ae_title = "MIRA";
    opt->check_called_ae = true;
    opt->max_associations = 32;
    opt->max_pdu = 262144;
    opt->artim_seconds = 30;
    opt->idle_seconds = 300;
    opt->commit_retry_seconds = 86400;
}

/* The default: every syntax mira knows (uncompressed and encapsulated ones), chosen in the
 * requestor's order, so that an instance is received (and stored) as the sender has it. */
static bool default_ts(mira_dimse_server *s)
{
    static const char *const first[] = {MIRA_TS_EXPLICIT_LE, MIRA_TS_IMPLICIT_LE,
                                        MIRA_TS_EXPLICIT_BE, MIRA_TS_DEFLATED_LE};
    size_t n = mira_uid_count() + 4;
    s->ts = mira_calloc(n, sizeof *s->ts);
    if (!s->ts)
        return false;
    for (size_t i = 0; i < 4; i++)
        s->ts[s->nts++] = mira_strdup(first[i]);
    for (size_t i = 0; i < mira_uid_count(); i++) {
        const mira_uid_entry *u = mira_uid_at(i);
        mira_ts_info info;
        if (strcmp(u->type, "Transfer Syntax") != 0 || !mira_ts_lookup(u->uid, &info) ||
            !info.encapsulated)
            continue;
        s->ts[s->nts++] = mira_strdup(u->uid);
    }
    for (size_t i = 0; i < s->nts; i++)
        if (!s->ts[i])
            return false;
    return true;
}

mira_dimse_server *mira_dimse_server_new(const mira_dimse_server_options *opt, mira_error **err)
{
    mira_dimse_server *s = mira_calloc(1, sizeof *s);
    if (!s) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a server");
        return NULL;
    }
    s->opt = *opt;
    s->fd = -1;
    s->tls_fd = s->tls_port = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    atomic_init(&s->stop, false);
    bool ok = true;
    s->bind = opt->bind ? mira_strdup(opt->bind) : NULL;
    s->ae_title = mira_strdup(opt->ae_title && *opt->ae_title ? opt->ae_title : "MIRA");
    ok &= s->ae_title != NULL && (!opt->bind || s->bind);
    if (ok && opt->calling_ae_titles) {
        s->calling = mira_calloc(opt->ncalling_ae_titles + 1, sizeof *s->calling);
        ok &= s->calling != NULL;
        for (size_t i = 0; ok && i < opt->ncalling_ae_titles; i++)
            ok &= (s->calling[i] = mira_strdup(opt->calling_ae_titles[i])) != NULL;
    }
    if (ok && opt->transfer_syntaxes && opt->ntransfer_syntaxes) {
        s->ts = mira_calloc(opt->ntransfer_syntaxes, sizeof *s->ts);
        ok &= s->ts != NULL;
        for (size_t i = 0; ok && i < opt->ntransfer_syntaxes; i++) {
            ok &= (s->ts[i] = mira_strdup(opt->transfer_syntaxes[i])) != NULL;
            s->nts += ok;
        }
        s->ts_configured = true;
    } else if (ok) {
        ok = default_ts(s);
    }
    if (!ok) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a server");
        mira_dimse_server_free(s);
        return NULL;
    }
    s->opt.bind = s->bind;
    s->opt.ae_title = s->ae_title;
    s->opt.calling_ae_titles = NULL;
    s->opt.transfer_syntaxes = NULL;
    if (s->opt.max_associations <= 0)
        s->opt.max_associations = 32;
    if (s->opt.max_pdu == 0 || s->opt.max_pdu > (1u << 24))
        s->opt.max_pdu = 262144;
    if (s->opt.max_pdu < 4096)
        s->opt.max_pdu = 4096;
    if (s->opt.artim_seconds <= 0)
        s->opt.artim_seconds = 30;
    if (s->opt.idle_seconds <= 0)
        s->opt.idle_seconds = 300;
    if (opt->archive && (!mira__store_init(&s->store, opt->archive, err) ||
                         !(s->retry = mira__report_retry_new(s, opt, err)))) {
        mira_dimse_server_free(s);
        return NULL;
    }
    s->opt.commit_retry_delays = NULL; /* the retry has its copy */
    s->opt.ncommit_retry_delays = 0;
    mira_error *e = NULL;
    s->access = mira__access_new(opt, &e);
    if ((!s->access && e) || (opt->tls && !(s->tls = mira__tls_new(opt->tls, true, &e)))) {
        if (err)
            *err = e;
        else
            mira_error_free(e);
        mira_dimse_server_free(s);
        return NULL;
    }
    s->tls_verify = opt->tls && opt->tls->verify_peer;
    s->opt.tls = NULL;
    s->opt.access = NULL;
    s->opt.users = NULL;
    s->port = -1;
    if (!(opt->tls && opt->tls_only))
        s->fd = mira__tcp_listen(s->bind, opt->port, 128, &s->port, err);
    if ((s->fd < 0 && !(opt->tls && opt->tls_only)) ||
        (s->tls && (s->tls_fd = mira__tcp_listen(s->bind, opt->tls_port, 128, &s->tls_port,
                                                 err)) < 0)) {
        mira_dimse_server_free(s);
        return NULL;
    }
    return s;
}

const char *mira__server_ae_title(const mira_dimse_server *s)
{
    return s->ae_title;
}

const mira_dimse_server_options *mira__server_options(const mira_dimse_server *s)
{
    return &s->opt;
}

mira__report_retry *mira__server_report_retry(const mira_dimse_server *s)
{
    return s->retry;
}

const atomic_bool *mira__server_stop_flag(const mira_dimse_server *s)
{
    return &s->stop;
}

int mira_dimse_server_port(const mira_dimse_server *s)
{
    return s->port;
}

int mira_dimse_server_tls_port(const mira_dimse_server *s)
{
    return s->tls_port;
}

void mira_dimse_server_stop(mira_dimse_server *s)
{
    atomic_store(&s->stop, true);
}

void mira_dimse_server_free(mira_dimse_server *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->tls_fd >= 0)
        close(s->tls_fd);
    mira__tls_free(s->tls);
    mira__access_free(s->access);
    mira__report_retry_free(s->retry);
    mira__store_cleanup(&s->store);
    mira_free(s->bind);
    mira_free(s->ae_title);
    if (s->calling)
        for (size_t i = 0; s->calling[i]; i++)
            mira_free(s->calling[i]);
    mira_free(s->calling);
    for (size_t i = 0; i < s->nts; i++)
        mira_free(s->ts[i]);
    mira_free(s->ts);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    mira_free(s);
}

/* ------------------------------------------------------------------ negotiation */

/* An abstract syntax we serve: Verification always, storage classes with an archive. */
static bool supported_sop(const mira_dimse_server *s, const char *uid)
{
    if (strcmp(uid, MIRA__VERIFICATION_UID) == 0)
        return true;
    return s->opt.archive && (mira__is_storage_sop_class(uid) || mira__is_find_sop_class(uid) ||
                              mira__is_retrieve_sop_class(uid) ||
                              mira__is_procedure_sop_class(uid));
}

static const char *choose_ts(const mira_dimse_server *s, const mira__pctx *c)
{
    if (!s->ts_configured) {
        /* the requestor's order: what a modality lists first (its own encoding) is kept */
        for (size_t k = 0; k < c->nts; k++)
            for (size_t i = 0; i < s->nts; i++)
                if (strcmp(s->ts[i], c->ts[k]) == 0)
                    return s->ts[i];
        return NULL;
    }
    for (size_t i = 0; i < s->nts; i++)
        for (size_t k = 0; k < c->nts; k++)
            if (strcmp(s->ts[i], c->ts[k]) == 0)
                return s->ts[i];
    return NULL;
}

static void reject(mira__association *as, uint8_t result, uint8_t source, uint8_t reason,
                   const char *why)
{
    uint8_t pdu[10] = {MIRA__PDU_ASSOCIATE_RJ, 0, 0, 0, 0, 4, 0, result, source, reason};
    if (mira__assoc_send(as, pdu, sizeof pdu, NULL)) {
        mira__conn_linger(&as->conn, as->artim_ms);
        mira__conn_close(&as->conn);
    }
    as->end = MIRA__END_REJECTED;
    snprintf(as->end_detail, sizeof as->end_detail, "%s", why);
}

/* Whether the association's permissions cover a proposed context; a refusal is logged. */
static bool context_permitted(mira_dimse_server *s, const mira__association *as, uint64_t id,
                                 const mira__pctx *c, unsigned permitted)
{
    bool scp_role = false;
    for (size_t i = 0; i < as->rq.nroles; i++)
        if (strcmp(as->rq.roles[i].sop_class, c->abstract_syntax) == 0)
            scp_role = as->rq.roles[i].scp;
    unsigned needed = mira__access_needed(c->abstract_syntax, scp_role);
    if (needed & permitted)
        return true;
    const mira_uid_entry *u = mira_uid_find(c->abstract_syntax);
    mira__log(s, MIRA_LOG_WARNING,
              "association %llu: presentation context %u (%s) refused: calling AE \"%s\" may not "
              "%s",
              (unsigned long long)id, c->id, u ? u->name : c->abstract_syntax, as->rq.calling_ae,
              needed ? mira__access_name(needed) : "use it (no permission names it)");
    return false;
}

/* Answer the A-ASSOCIATE-RQ in as->rq: false if rejected (as->end says why). */
static bool negotiate(mira_dimse_server *s, mira__association *as, bool over_limit,
                      uint64_t id)
{
    const mira__assoc *rq = &as->rq;
    if (over_limit) {
        reject(as, 2, 3, 2, "rejected: too many associations (local limit exceeded)");
        return false;
    }
    if (!(rq->protocol_version & 1)) {
        reject(as, 1, 2, 2, "rejected: protocol version not supported");
        return false;
    }
    if (strcmp(rq->app_context, MIRA__APP_CONTEXT) != 0) {
        reject(as, 1, 1, 2, "rejected: application context name not supported");
        return false;
    }
    if (s->opt.check_called_ae && strcmp(rq->called_ae, s->ae_title) != 0) {
        reject(as, 1, 1, 7, "rejected: called AE title not recognized");
        return false;
    }
    if (s->calling) {
        bool known = false;
        for (size_t i = 0; s->calling[i] && !known; i++)
            known = strcmp(s->calling[i], rq->calling_ae) == 0;
        if (!known) {
            reject(as, 1, 1, 3, "rejected: calling AE title not recognized");
            return false;
        }
    }
    unsigned permitted; /* access control (src/dimse/access.c) */
    uint8_t why_reason = 0;
    char why[300];
    if (!mira__access_associate(s->access, as->conn.peer, rq, &permitted, &why_reason, why + 10,
                                sizeof why - 10)) {
        memcpy(why, "rejected: ", 10);
        reject(as, 1, 1, why_reason, why);
        return false;
    }
    mira__assoc *ac = &as->ac;
    ac->protocol_version = 1;
    memcpy(ac->called_ae, rq->called_ae, sizeof ac->called_ae);
    memcpy(ac->calling_ae, rq->calling_ae, sizeof ac->calling_ae);
    snprintf(ac->app_context, sizeof ac->app_context, "%s", MIRA__APP_CONTEXT);
    bool ok = true;
    for (size_t i = 0; ok && i < rq->npctx; i++) {
        const mira__pctx *c = &rq->pctx[i];
        mira__pctx *a = mira__assoc_add_pctx(ac, c->id, NULL);
        ok = a != NULL;
        if (!ok)
            break;
        if (!supported_sop(s, c->abstract_syntax)) {
            a->result = MIRA__PCTX_ABSTRACT_NOT_SUPPORTED;
            continue;
        }
        if (s->access && !context_permitted(s, as, id, c, permitted)) {
            a->result = MIRA__PCTX_USER_REJECTED;
            continue;
        }
        const char *ts = choose_ts(s, c);
        if (!ts) {
            a->result = MIRA__PCTX_TS_NOT_SUPPORTED;
            continue;
        }
        a->result = MIRA__PCTX_ACCEPTED;
        ok = mira__pctx_add_ts(a, ts);
    }
    /* Roles (PS3.7 D.3.3.4): we are the SCP of what we serve; the requestor may be its SCU,
     * and the SCP of storage classes for C-GET. */
    for (size_t i = 0; ok && i < rq->nroles; i++)
        if (supported_sop(s, rq->roles[i].sop_class))
            ok = mira__assoc_add_role(ac, rq->roles[i].sop_class, rq->roles[i].scu,
                                      mira__retrieve_scp_role(rq->roles[i].sop_class,
                                                              rq->roles[i].scp));
    /* Storage extended negotiation (PS3.4 B.3.1): level 2 (every element stored), signatures
     * unspecified, no coercion; once per class, only for one an accepted context carries.
     * Others are not answered, which means "not supported". */
    static const uint8_t storage_info[6] = {2, 0, 0, 0, 0, 0};
    for (size_t i = 0; ok && i < rq->next; i++)
        if (s->opt.archive && mira__is_storage_sop_class(rq->ext[i].sop_class) &&
            !mira__assoc_ext_answered(ac, rq->ext[i].sop_class) &&
            mira__assoc_class_accepted(rq, ac, rq->ext[i].sop_class))
            ok = mira__assoc_add_ext(ac, rq->ext[i].sop_class, storage_info, 6);
    /* Query/Retrieve extended negotiation (PS3.4 C.5): the models' options mira supports */
    ok = ok && mira__qr_ext_negotiate(rq, ac);
    if (rq->has_async) { /* we perform one operation at a time */
        ac->has_async = true;
        ac->max_ops_invoked = 1;
        ac->max_ops_performed = 1;
    }
    /* User identity (PS3.7 D.3.3.7): any identity is accepted for now; a requested positive
     * response is sent, empty as it is for user names and passcodes. */
    if (ok && rq->has_identity && rq->identity_response_requested && rq->identity_type <= 2) {
        ac->has_identity_response = true;
        ac->identity_response = mira_malloc(1);
        ok = ac->identity_response != NULL;
    }
    ac->max_pdu = as->recv_max;
    snprintf(ac->impl_class_uid, sizeof ac->impl_class_uid, "%s", MIRA_IMPLEMENTATION_UID);
    snprintf(ac->impl_version, sizeof ac->impl_version, "%s", MIRA_IMPLEMENTATION_NAME);
    mira__buf b;
    mira__buf_init(&b);
    mira_error *e = NULL;
    ok = ok && mira__pdu_build_assoc(&b, MIRA__PDU_ASSOCIATE_AC, ac, &e);
    if (!ok) {
        mira__buf_cleanup(&b);
        mira_error_free(e);
        reject(as, 2, 2, 1, "rejected: out of memory");
        return false;
    }
    ok = mira__assoc_send(as, b.data, b.len, NULL);
    mira__buf_cleanup(&b);
    as->send_max = rq->max_pdu;
    return ok;
}

static void log_contexts(mira_dimse_server *s, uint64_t id, const mira__association *as)
{
    char line[1500];
    size_t n = 0;
    int accepted = 0;
    for (size_t i = 0; i < as->ac.npctx && n < sizeof line - 200; i++) {
        const mira__pctx *c = &as->ac.pctx[i];
        if (c->result != MIRA__PCTX_ACCEPTED)
            continue;
        const char *sop = mira__assoc_context_sop(as, c->id);
        const mira_uid_entry *u = sop ? mira_uid_find(sop) : NULL;
        const mira_uid_entry *t = mira_uid_find(c->ts[0]);
        if (accepted++ < 8)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%u %s / %s", n ? ", " : "", c->id,
                                  u ? u->name : sop ? sop : "?", t ? t->name : c->ts[0]);
    }
    if (accepted > 8)
        snprintf(line + n, sizeof line - n, ", and %d more", accepted - 8);
    mira__log(s, MIRA_LOG_INFO, "association %llu: accepted %d of %zu presentation contexts%s%s",
              (unsigned long long)id, accepted, as->rq.npctx, accepted ? ": " : "",
              accepted ? line : "");
}

/* ------------------------------------------------------------------ an association */

typedef struct job {
    mira_dimse_server *s;
    mira__conn conn;
    uint64_t id;
    bool over_limit;
    bool tls; /* accepted on the TLS port: the handshake comes first */
} job;

static const char *end_name(mira__end e)
{
    switch (e) {
    case MIRA__END_RELEASED:
        return "released";
    case MIRA__END_PEER_ABORTED:
        return "aborted by the peer";
    case MIRA__END_ABORTED:
        return "aborted";
    case MIRA__END_CLOSED:
        return "closed";
    case MIRA__END_REJECTED:
        return "rejected";
    default:
        return "ended";
    }
}

bool mira__serve_request(mira_dimse_server *s, mira__association *as, uint64_t id, uint8_t pctx,
                         const mira_dataset *cmd)
{
    uint16_t field = 0, dstype = MIRA__NO_DATA_SET;
    mira__cmd_get_u16(cmd, MIRA__TAG_COMMAND_FIELD, &field);
    mira__cmd_get_u16(cmd, MIRA__TAG_DATA_SET_TYPE, &dstype);
    bool data = dstype != MIRA__NO_DATA_SET;
    as->messages++;
    switch (field) {
    case MIRA__C_ECHO_RQ:
        return mira__serve_echo(s, as, pctx, cmd, data);
    case MIRA__C_STORE_RQ:
        return mira__serve_store(s, &s->store, as, id, pctx, cmd, data);
    case MIRA__C_FIND_RQ: /* the worklist model has its own SCP (procedure.h) */
        return mira__assoc_context_sop(as, pctx) &&
                       mira__is_procedure_sop_class(mira__assoc_context_sop(as, pctx))
                   ? mira__serve_worklist_find(s, as, id, pctx, cmd, data)
                   : mira__serve_find(s, &s->store, as, id, pctx, cmd, data);
    case MIRA__N_CREATE_RQ:
    case MIRA__N_SET_RQ:
        return mira__serve_mpps(s, as, id, pctx, cmd, field, data);
    case MIRA__N_ACTION_RQ:
        return mira__serve_commitment(s, as, id, pctx, cmd, data);
    case MIRA__C_MOVE_RQ:
    case MIRA__C_GET_RQ:
        return mira__serve_retrieve(s, &s->opt, s->opt.archive, as, id, pctx, cmd, field, data);
    case MIRA__C_CANCEL_RQ: /* nothing of ours is pending: ignored, as PS3.7 allows */
        return true;
    default:
        return mira__serve_unsupported(s, as, pctx, cmd, field, data);
    }
}

static void serve(mira_dimse_server *s, mira__association *as, uint64_t id)
{
    for (;;) {
        uint8_t pctx = 0;
        mira_dataset *cmd = NULL;
        mira_error *err = NULL;
        mira__recv r = mira__dimse_recv_command(as, &pctx, &cmd, as->idle_ms, &err);
        mira_error_free(err);
        if (r != MIRA__RECV_COMMAND)
            return;
        bool ok = mira__serve_request(s, as, id, pctx, cmd);
        mira_dataset_free(cmd);
        if (!ok)
            return;
    }
}

static void *association_thread(void *arg)
{
    job *j = arg;
    mira_dimse_server *s = j->s;
    mira__association as;
    memset(&as, 0, sizeof as);
    as.conn = j->conn;
    as.conn.stop = &s->stop;
    as.recv_max = s->opt.max_pdu;
    as.artim_ms = s->opt.artim_seconds * 1000;
    as.idle_ms = s->opt.idle_seconds * 1000;
    uint64_t id = j->id;
    bool over = j->over_limit;
    bool tls = j->tls;
    mira_free(j);

    mira_error *err = NULL;
    /* TLS: the handshake is bounded by ARTIM like the A-ASSOCIATE-RQ that follows it */
    bool secured = !tls || mira__tls_accept(s->tls, &as.conn, as.artim_ms, &err);
    if (tls && secured) {
        char desc[400];
        mira__tls_describe(&as.conn, desc, sizeof desc);
        mira__log(s, MIRA_LOG_INFO, "association %llu from %s: TLS, %s", (unsigned long long)id,
                  as.conn.peer, desc);
    } else if (tls) {
        snprintf(as.end_detail, sizeof as.end_detail, "%s", mira_error_get_message(err));
        as.end = MIRA__END_CLOSED;
    }
    if (secured && mira__assoc_read_pdu(&as, as.artim_ms, &err)) {
        if (as.pdu.type != MIRA__PDU_ASSOCIATE_RQ) {
            char why[100];
            snprintf(why, sizeof why, "an %s before any A-ASSOCIATE-RQ",
                     mira__pdu_type_name(as.pdu.type));
            mira__assoc_abort(&as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, why);
        } else {
            as.rq = as.pdu.assoc;
            memset(&as.pdu.assoc, 0, sizeof as.pdu.assoc);
            char user[80] = "";
            if (as.rq.has_identity && as.rq.identity_primary_len < 64 &&
                (as.rq.identity_type == 1 || as.rq.identity_type == 2))
                snprintf(user, sizeof user, ", user \"%.*s\"", (int)as.rq.identity_primary_len,
                         (const char *)as.rq.identity_primary);
            mira__log(s, MIRA_LOG_INFO,
                      "association %llu from %s: calling AE \"%s\", called AE \"%s\", %zu "
                      "presentation contexts, implementation %s%s%s%s",
                      (unsigned long long)id, as.conn.peer, as.rq.calling_ae, as.rq.called_ae,
                      as.rq.npctx, as.rq.impl_class_uid, as.rq.impl_version[0] ? " " : "",
                      as.rq.impl_version, user);
            if (negotiate(s, &as, over, id)) {
                log_contexts(s, id, &as);
                serve(s, &as, id);
            }
        }
    }
    mira_error_free(err);
    if (as.end == MIRA__END_NONE) {
        as.end = MIRA__END_CLOSED;
        snprintf(as.end_detail, sizeof as.end_detail, "closed");
    }
    mira__log(s,
              as.end == MIRA__END_RELEASED     ? MIRA_LOG_INFO
              : as.end == MIRA__END_REJECTED   ? MIRA_LOG_WARNING
              : as.end == MIRA__END_PEER_ABORTED ? MIRA_LOG_WARNING
                                               : MIRA_LOG_ERROR,
              "association %llu from %s %s after %llu messages: %s", (unsigned long long)id,
              as.conn.peer[0] ? as.conn.peer : "?", end_name(as.end),
              (unsigned long long)as.messages, as.end_detail);
    mira__conn_close(&as.conn);
    mira__assoc_free_buffers(&as);
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

bool mira_dimse_server_run(mira_dimse_server *s, mira_error **err)
{
    if (s->fd >= 0)
        mira__log(s, MIRA_LOG_INFO, "listening on %s:%d as AE \"%s\"%s",
                  s->bind && *s->bind ? s->bind : "*", s->port, s->ae_title,
                  s->opt.archive ? ", storing into the archive" : "");
    if (s->tls_fd >= 0)
        mira__log(s, MIRA_LOG_INFO, "listening with TLS on %s:%d as AE \"%s\"%s",
                  s->bind && *s->bind ? s->bind : "*", s->tls_port, s->ae_title,
                  s->tls_verify ? ", client certificates verified" : "");
    if (s->retry && !mira__report_retry_start(s->retry, err))
        return false;
    int fds[2];
    size_t nfds = 0;
    if (s->fd >= 0)
        fds[nfds++] = s->fd;
    if (s->tls_fd >= 0)
        fds[nfds++] = s->tls_fd;
    while (!atomic_load(&s->stop)) {
        mira__conn c;
        mira_error *e = NULL;
        size_t which = 0;
        if (!mira__tcp_accept_any(fds, nfds, 200, &which, &c, &e)) {
            if (e) {
                mira__log(s, MIRA_LOG_ERROR, "%s", mira_error_get_message(e));
                mira_error_free(e);
                usleep(100 * 1000); /* out of descriptors: let associations end */
            }
            continue;
        }
        pthread_mutex_lock(&s->lock);
        bool over = s->active >= s->opt.max_associations;
        bool drop = s->active >= s->opt.max_associations + EXTRA_REJECTORS;
        uint64_t id = ++s->ids;
        if (!drop)
            s->active++;
        pthread_mutex_unlock(&s->lock);
        if (drop) {
            mira__log(s, MIRA_LOG_ERROR, "association %llu from %s: closed at once (%d running)",
                      (unsigned long long)id, c.peer, s->opt.max_associations + EXTRA_REJECTORS);
            mira__conn_close(&c);
            continue;
        }
        job *j = mira_malloc(sizeof *j);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 2u << 20); /* the archive and SQLite run on it too */
        bool started = false;
        if (j) {
            j->s = s;
            j->conn = c;
            j->id = id;
            j->over_limit = over;
            j->tls = fds[which] == s->tls_fd;
            started = pthread_create(&t, &attr, association_thread, j) == 0;
            if (!started)
                mira_free(j);
        }
        pthread_attr_destroy(&attr);
        if (!started) {
            mira__log(s, MIRA_LOG_ERROR, "association %llu from %s: no thread for it",
                      (unsigned long long)id, c.peer);
            mira__conn_close(&c);
            pthread_mutex_lock(&s->lock);
            s->active--;
            pthread_mutex_unlock(&s->lock);
        }
    }
    /* associations see the stop flag within a slice of their waits and abort */
    pthread_mutex_lock(&s->lock);
    while (s->active > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    mira__report_retry_join(s->retry); /* it sees the stop flag too: an attempt is cut short */
    mira__log(s, MIRA_LOG_INFO, "stopped");
    return true;
}
