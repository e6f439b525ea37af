/* Storage SCU (C-STORE, PS3.4 B): contexts for a list of instances, transcoding, sending. */
#include "send.h"

#include "dicom/dataset_int.h"
#include "mira/pixel.h"
#include "net/tls.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CONTEXTS 128

/* ------------------------------------------------------------------ items */

static void copy_uid(mira__uid out, const mira_dataset *ds, mira_tag tag)
{
    out[0] = 0;
    const mira_element *e = ds ? mira_dataset_get(ds, tag) : NULL;
    char *v = e ? mira_element_get_string(e, 0, NULL) : NULL;
    if (v && strlen(v) < sizeof(mira__uid))
        snprintf(out, sizeof(mira__uid), "%s", v);
    mira_free(v);
}

bool mira__send_item_init(mira__send_item *it, const char *path)
{
    memset(it, 0, sizeof *it);
    it->path = mira_strdup(path);
    if (!it->path) {
        snprintf(it->error, sizeof it->error, "out of memory");
        return false;
    }
    mira_read_options ro;
    mira_read_options_init(&ro);
    ro.stop_before_pixels = true;
    mira_error *e = NULL;
    mira_file *f = mira_file_read(path, &ro, &e);
    if (!f) {
        snprintf(it->error, sizeof it->error, "not readable as DICOM: %s",
                 mira_error_get_message(e));
        mira_error_free(e);
        return false;
    }
    const mira_dataset *ds = mira_file_dataset(f);
    copy_uid(it->sop_class, ds, MIRA_TAG(0x0008, 0x0016));
    if (!it->sop_class[0])
        copy_uid(it->sop_class, mira_file_meta(f), MIRA_TAG(0x0002, 0x0002));
    copy_uid(it->sop_instance, ds, MIRA_TAG(0x0008, 0x0018));
    if (!it->sop_instance[0])
        copy_uid(it->sop_instance, mira_file_meta(f), MIRA_TAG(0x0002, 0x0003));
    const char *ts = mira_file_transfer_syntax(f);
    snprintf(it->ts, sizeof it->ts, "%s", ts ? ts : MIRA_TS_IMPLICIT_LE);
    /* a file mira had to read leniently (a wrong syntax in its meta, say) is re-encoded:
     * its bytes as they are would not be what the context says */
    it->clean = mira_file_warning_count(f) == 0;
    mira_file_free(f);
    if (!it->sop_class[0] || !it->sop_instance[0]) {
        snprintf(it->error, sizeof it->error, "no SOP Class UID or SOP Instance UID");
        return false;
    }
    return true;
}

void mira__send_item_cleanup(mira__send_item *it)
{
    mira_free(it->path);
    it->path = NULL;
}

/* ------------------------------------------------------------------ contexts */

static bool same_pair(const mira__send_item *a, const mira__send_item *b)
{
    return strcmp(a->sop_class, b->sop_class) == 0 && strcmp(a->ts, b->ts) == 0;
}

bool mira__send_propose(mira__assoc *rq, const mira__send_item *items, size_t *idx, size_t n,
                        size_t *nproposed)
{
    /* A context per SOP class and syntax proposing that syntax alone, so a peer that takes it
     * gets the instance as it is (a peer choosing among several may prefer another), and one
     * per SOP class proposing Explicit and Implicit VR LE, for a peer that takes neither. The
     * items of the first pairs that fit in 128 contexts are put first in idx (stable). */
    const mira__send_item *pairs[MAX_CONTEXTS], *classes[MAX_CONTEXTS];
    size_t npairs = 0, nclasses = 0, covered = 0;
    for (size_t k = 0; k < n; k++) {
        const mira__send_item *it = &items[idx[k]];
        size_t p = 0, c = 0;
        while (p < npairs && !same_pair(pairs[p], it))
            p++;
        while (c < nclasses && strcmp(classes[c]->sop_class, it->sop_class) != 0)
            c++;
        if (p == npairs) {
            size_t need = 1 + (c == nclasses);
            if (npairs + nclasses + need > MAX_CONTEXTS)
                continue;
            pairs[npairs++] = it;
            if (c == nclasses)
                classes[nclasses++] = it;
        }
        size_t moved = idx[k];
        memmove(idx + covered + 1, idx + covered, (k - covered) * sizeof *idx);
        idx[covered++] = moved;
    }
    *nproposed = covered;
    uint8_t id = 1;
    for (size_t p = 0; p < npairs; p++, id += 2) {
        mira__pctx *c = mira__assoc_add_pctx(rq, id, pairs[p]->sop_class);
        if (!c || !mira__pctx_add_ts(c, pairs[p]->ts))
            return false;
    }
    for (size_t k = 0; k < nclasses; k++, id += 2) {
        mira__pctx *c = mira__assoc_add_pctx(rq, id, classes[k]->sop_class);
        if (!c || !mira__pctx_add_ts(c, MIRA_TS_EXPLICIT_LE) ||
            !mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE))
            return false;
    }
    return true;
}

/* Can mira turn the item's data set into ts? */
static bool producible(const mira__send_item *it, const char *ts)
{
    mira_ts_info src, dst;
    if (!mira_ts_lookup(ts, &dst) || !mira_ts_lookup(it->ts, &src))
        return false;
    if (src.encapsulated && !mira_pixels_can_decode(it->ts))
        return false;
    return !dst.encapsulated || mira_pixels_can_encode(ts);
}

static bool scp_role_granted(const mira__association *as, const char *sop)
{
    for (size_t i = 0; i < as->ac.nroles; i++)
        if (strcmp(as->ac.roles[i].sop_class, sop) == 0)
            return as->ac.roles[i].scp;
    return false;
}

uint8_t mira__send_context(const mira__association *as, const mira__send_item *it, bool scp_role)
{
    if (scp_role && !scp_role_granted(as, it->sop_class))
        return 0;
    uint8_t best = 0;
    int best_rank = 0;
    for (size_t i = 0; i < as->ac.npctx; i++) {
        uint8_t id = as->ac.pctx[i].id;
        const char *sop = mira__assoc_context_sop(as, id);
        const char *ts = mira__assoc_context_ts(as, id);
        if (!sop || !ts || strcmp(sop, it->sop_class) != 0)
            continue;
        int rank = strcmp(ts, it->ts) == 0                 ? 4
                   : !producible(it, ts)                   ? 0
                   : strcmp(ts, MIRA_TS_EXPLICIT_LE) == 0  ? 3
                   : strcmp(ts, MIRA_TS_IMPLICIT_LE) == 0  ? 2
                                                           : 1;
        if (rank > best_rank) {
            best_rank = rank;
            best = id;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ sending */

bool mira__store_status_ok(uint16_t status)
{
    return status == 0x0000 || mira__store_status_warning(status);
}

bool mira__store_status_warning(uint16_t status)
{
    return status == 0x0001 || status == 0xB000 || status == 0xB006 || status == 0xB007;
}

bool mira_dimse_store_status_ok(uint16_t status)
{
    return mira__store_status_ok(status);
}

static bool is_upper(uint8_t c)
{
    return c >= 'A' && c <= 'Z';
}

/* Where the data set starts in a Part 10 file's bytes: after the preamble and the file meta
 * group (always Explicit VR LE; walked element by element, its group length not trusted).
 * SIZE_MAX if the meta group does not read as one. */
static size_t data_offset(const uint8_t *b, size_t len)
{
    size_t p = len >= 132 && memcmp(b + 128, "DICM", 4) == 0 ? 132 : 0;
    while (p + 8 <= len && b[p] == 0x02 && b[p + 1] == 0x00) {
        if (!is_upper(b[p + 4]) || !is_upper(b[p + 5]))
            return SIZE_MAX;
        char vr[3] = {(char)b[p + 4], (char)b[p + 5], 0};
        bool lng = strstr("OB OW OF OD OL OV SQ UT UN UC UR SV UV", vr) != NULL;
        size_t n, h;
        if (lng) {
            if (p + 12 > len)
                return SIZE_MAX;
            n = (size_t)b[p + 8] | (size_t)b[p + 9] << 8 | (size_t)b[p + 10] << 16 |
                (size_t)b[p + 11] << 24;
            h = 12;
        } else {
            n = (size_t)b[p + 6] | (size_t)b[p + 7] << 8;
            h = 8;
        }
        if (n > len - p - h)
            return SIZE_MAX;
        p += h + n;
    }
    return p <= len ? p : SIZE_MAX;
}

/* The data set of an item, encoded in ts: mapped from its file when it is in ts already,
 * else re-encoded (pixel data transcoded). */
typedef struct payload {
    void *map;
    size_t map_len;
    uint8_t *buf;
    const uint8_t *data;
    size_t len;
} payload;

static void payload_free(payload *p)
{
    if (p->map)
        munmap(p->map, p->map_len);
    mira_free(p->buf);
    memset(p, 0, sizeof *p);
}

static bool payload_map(payload *p, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return false;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return false;
    size_t off = data_offset(m, (size_t)st.st_size);
    if (off == SIZE_MAX) {
        munmap(m, (size_t)st.st_size);
        return false;
    }
    p->map = m;
    p->map_len = (size_t)st.st_size;
    p->data = (const uint8_t *)m + off;
    p->len = p->map_len - off;
    if (p->len % 2) {
        /* a deflated stream of odd length: padded to an even one, as PS3.5 A.5 wants */
        p->buf = mira_malloc(p->len + 1);
        if (!p->buf)
            return false;
        memcpy(p->buf, p->data, p->len);
        p->buf[p->len++] = 0;
        p->data = p->buf;
    }
    return true;
}

static bool payload_encode(payload *p, const mira__send_item *it, const char *ts, char *why,
                           size_t nwhy)
{
    mira_error *e = NULL;
    mira_file *f = mira_file_read(it->path, NULL, &e);
    size_t len = 0;
    bool ok = f && mira_file_transcode(f, ts, 0, &e) &&
              mira_file_write_memory(f, ts, &p->buf, &len, &e);
    mira_file_free(f);
    if (!ok) {
        const mira_uid_entry *u = mira_uid_find(ts);
        snprintf(why, nwhy, "cannot transcode to %s: %s", u ? u->name : ts,
                 e ? mira_error_get_message(e) : "failed");
        mira_error_free(e);
        return false;
    }
    size_t off = data_offset(p->buf, len);
    if (off == SIZE_MAX) {
        snprintf(why, nwhy, "re-encoding produced no readable file meta");
        return false;
    }
    p->data = p->buf + off;
    p->len = len - off;
    return true;
}

static mira_dataset *store_command(const mira__send_item *it, uint16_t message_id,
                                   const char *move_ae, uint16_t move_id)
{
    mira_dataset *cmd = mira_dataset_new(NULL);
    static const uint8_t zero[4];
    bool ok = cmd && mira_dataset_set_bytes(cmd, MIRA__TAG_GROUP_LENGTH, MIRA_VR_UL, zero, 4,
                                            NULL) &&
              mira_dataset_set_string(cmd, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI,
                                      it->sop_class, NULL) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_COMMAND_FIELD, MIRA__C_STORE_RQ) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_MESSAGE_ID, message_id) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_PRIORITY, 0) &&
              mira__cmd_set_u16(cmd, MIRA__TAG_DATA_SET_TYPE, 0x0000) &&
              mira_dataset_set_string(cmd, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI,
                                      it->sop_instance, NULL);
    if (ok && move_ae && *move_ae)
        ok = mira_dataset_set_string(cmd, MIRA__TAG_MOVE_ORIGINATOR_AE, MIRA_VR_AE, move_ae,
                                     NULL) &&
             mira__cmd_set_u16(cmd, MIRA__TAG_MOVE_ORIGINATOR_ID, move_id);
    if (!ok) {
        mira_dataset_free(cmd);
        return NULL;
    }
    return cmd;
}

static void ended(mira__association *as, mira__send_outcome *out, mira_error *e)
{
    snprintf(out->reason, sizeof out->reason, "the association ended: %.170s",
             as->end_detail[0] ? as->end_detail : e ? mira_error_get_message(e) : "closed");
    mira_error_free(e);
}

bool mira__send_store(mira__association *as, uint8_t pctx, const mira__send_item *it,
                      uint16_t message_id, const char *move_ae, uint16_t move_id,
                      mira__send_other_fn other, void *other_ctx, mira__send_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *ts = mira__assoc_context_ts(as, pctx);
    if (!ts) {
        snprintf(out->reason, sizeof out->reason, "no presentation context for it");
        return true;
    }
    payload p;
    memset(&p, 0, sizeof p);
    bool own = strcmp(ts, it->ts) == 0 && it->clean;
    if (own && !payload_map(&p, it->path))
        own = false; /* unusual file meta: re-encoded in its own syntax */
    if (!own && !payload_encode(&p, it, ts, out->reason, sizeof out->reason)) {
        payload_free(&p);
        return true;
    }
    out->transcoded = strcmp(ts, it->ts) != 0;
    snprintf(out->sent_ts, sizeof out->sent_ts, "%s", ts);
    mira_dataset *cmd = store_command(it, message_id, move_ae, move_id);
    if (!cmd) {
        payload_free(&p);
        snprintf(out->reason, sizeof out->reason, "out of memory");
        return true;
    }
    mira_error *e = NULL;
    bool ok = p.map && p.data != p.buf
                  ? mira__dimse_send_mapped(as, pctx, cmd, p.data, p.len, &e)
                  : mira__dimse_send(as, pctx, cmd, p.data ? p.data : (const uint8_t *)"", p.len,
                                     &e);
    mira_dataset_free(cmd);
    payload_free(&p);
    if (!ok) {
        ended(as, out, e);
        return false;
    }
    as->messages++;
    for (int guard = 0; guard < 1000000; guard++) {
        uint8_t rp = 0;
        mira_dataset *rsp = NULL;
        mira__recv r = mira__dimse_recv_command(as, &rp, &rsp, as->idle_ms, &e);
        if (r != MIRA__RECV_COMMAND) {
            ended(as, out, e);
            return false;
        }
        uint16_t field = 0, id = 0, dstype = MIRA__NO_DATA_SET;
        mira__cmd_get_u16(rsp, MIRA__TAG_COMMAND_FIELD, &field);
        mira__cmd_get_u16(rsp, MIRA__TAG_RESPONDED_TO, &id);
        mira__cmd_get_u16(rsp, MIRA__TAG_DATA_SET_TYPE, &dstype);
        bool mine = field == MIRA__C_STORE_RSP && id == message_id;
        /* serving a C-GET: the requestor may answer a storage commitment report meanwhile */
        bool go_on = mine || mira__dimse_take_report_rsp(as, rsp) ||
                     (other && other(other_ctx, rp, rsp));
        if (mine && !mira__cmd_get_u16(rsp, MIRA__TAG_STATUS, &out->status))
            go_on = false;
        if (mine && go_on) {
            mira__cmd_get_str(rsp, MIRA__TAG_ERROR_COMMENT, out->reason, sizeof out->reason);
            out->responded = true;
        }
        mira_dataset_free(rsp);
        if (!go_on) {
            char why[120];
            snprintf(why, sizeof why, "unexpected command 0x%04X for message %u while waiting "
                                      "for a C-STORE-RSP", field, id);
            mira__assoc_abort(as, MIRA__ABORT_PROVIDER, MIRA__ABORT_UNEXPECTED_PDU, why);
            ended(as, out, NULL);
            return false;
        }
        if (dstype != MIRA__NO_DATA_SET && !mira__dimse_recv_data(as, rp, NULL, NULL, &e)) {
            ended(as, out, e);
            return false;
        }
        if (mine)
            return true;
    }
    mira__assoc_abort(as, MIRA__ABORT_USER, 0, "no C-STORE-RSP");
    ended(as, out, NULL);
    return false;
}

/* ------------------------------------------------------------------ mira_dimse_send */

static void report(mira_dimse_send_fn fn, void *ctx, const mira__send_item *it,
                   const mira__send_outcome *o, const char *reason)
{
    if (!fn)
        return;
    mira_dimse_send_report r;
    memset(&r, 0, sizeof r);
    r.path = it->path ? it->path : "";
    r.sop_class_uid = it->sop_class;
    r.sop_instance_uid = it->sop_instance;
    r.readable = it->error[0] == 0;
    r.transfer_syntax = o ? o->sent_ts : "";
    r.transcoded = o && o->transcoded;
    r.responded = o && o->responded;
    r.status = o ? o->status : 0;
    r.reason = reason ? reason : o ? o->reason : it->error;
    fn(ctx, &r);
}

/* Why an item found no context: the peer's answer to the SOP class. */
static void refused_reason(const mira__association *as, const mira__send_item *it, char *out,
                           size_t n)
{
    const mira_uid_entry *u = mira_uid_find(it->sop_class);
    const char *name = u ? u->name : it->sop_class;
    for (size_t i = 0; i < as->ac.npctx; i++) {
        uint8_t id = as->ac.pctx[i].id;
        const char *sop = NULL;
        for (size_t k = 0; k < as->rq.npctx; k++)
            if (as->rq.pctx[k].id == id)
                sop = as->rq.pctx[k].abstract_syntax;
        if (!sop || strcmp(sop, it->sop_class) != 0)
            continue;
        uint8_t res = as->ac.pctx[i].result;
        if (res == MIRA__PCTX_ACCEPTED) {
            snprintf(out, n, "the peer accepted %s only in a syntax mira cannot produce from "
                             "this instance", name);
            return;
        }
        snprintf(out, n, "the peer refused %s (%s)", name,
                 res == MIRA__PCTX_ABSTRACT_NOT_SUPPORTED ? "abstract syntax not supported"
                 : res == MIRA__PCTX_TS_NOT_SUPPORTED     ? "transfer syntaxes not supported"
                 : res == MIRA__PCTX_USER_REJECTED        ? "user rejection"
                                                          : "no reason given");
        return;
    }
    snprintf(out, n, "the peer did not answer the context for %s", name);
}

bool mira_dimse_send(const char *host, int port, const mira_dimse_scu_options *opt,
                     const char *const *paths, size_t npaths, mira_dimse_send_fn fn, void *ctx,
                     mira_error **err)
{
    mira_dimse_scu_options defaults;
    mira_dimse_scu_options_init(&defaults);
    const mira_dimse_scu_options *o = opt ? opt : &defaults;
    mira__send_item *items = mira_calloc(npaths ? npaths : 1, sizeof *items);
    size_t *todo = mira_calloc(npaths ? npaths : 1, sizeof *todo);
    if (!items || !todo) {
        mira_free(items);
        mira_free(todo);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the list of instances");
        return false;
    }
    mira__tls *tls = NULL; /* one TLS context for every association */
    if (o->tls && !(tls = mira__tls_new(o->tls, false, err))) {
        mira_free(items);
        mira_free(todo);
        return false;
    }
    size_t ntodo = 0;
    for (size_t i = 0; i < npaths; i++) {
        if (mira__send_item_init(&items[i], paths[i]))
            todo[ntodo++] = i;
    }
    bool any = false, ok = true;
    int dead = 0; /* associations in a row that ended under us */
    size_t done = 0; /* todo[0..done) are dealt with */
    while (done < ntodo) {
        mira__assoc rq;
        memset(&rq, 0, sizeof rq);
        size_t np = 0;
        if (!mira__send_propose(&rq, items, todo + done, ntodo - done, &np)) {
            mira__assoc_cleanup(&rq);
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an A-ASSOCIATE-RQ");
            ok = false;
            break;
        }
        mira__association as;
        mira__scu_init(&as, o, NULL, NULL);
        as.tls = tls;
        mira_error *e = NULL;
        bool up = mira__scu_request(&as, host, port, &rq, o, NULL, 0, &e);
        mira__assoc_cleanup(&rq);
        if (!up) {
            if (!any) {
                if (err && !*err)
                    *err = e;
                else
                    mira_error_free(e);
                e = NULL;
                ok = false;
            } else {
                char why[300];
                snprintf(why, sizeof why, "no association: %s",
                         e ? mira_error_get_message(e) : "failed");
                for (size_t k = done; k < ntodo; k++)
                    report(fn, ctx, &items[todo[k]], NULL, why);
            }
            mira_error_free(e);
            mira__conn_close(&as.conn);
            mira__assoc_free_buffers(&as);
            break;
        }
        any = true;
        uint16_t message_id = 0;
        bool alive = true;
        size_t k = done;
        for (; k < done + np && alive; k++) {
            const mira__send_item *it = &items[todo[k]];
            uint8_t pctx = mira__send_context(&as, it, false);
            if (!pctx) {
                char why[200];
                refused_reason(&as, it, why, sizeof why);
                report(fn, ctx, it, NULL, why);
                continue;
            }
            mira__send_outcome out;
            alive = mira__send_store(&as, pctx, it, ++message_id, NULL, 0, NULL, NULL, &out);
            report(fn, ctx, it, &out, NULL);
        }
        if (alive) {
            mira__assoc_release(&as, NULL);
            dead = 0;
        } else if (++dead >= 3 || k == ntodo) {
            /* the peer aborts whatever comes: what is left is not sent */
            char why[300];
            snprintf(why, sizeof why, "not sent: the association ended (%.250s)",
                     as.end_detail);
            for (; k < ntodo; k++)
                report(fn, ctx, &items[todo[k]], NULL, why);
        }
        /* else the peer ended it on one instance (one it cannot read, say): the rest goes on a
         * new association */
        mira__conn_close(&as.conn);
        mira__assoc_free_buffers(&as);
        done = alive ? done + np : k;
    }
    /* the unreadable ones, reported last */
    for (size_t i = 0; i < npaths; i++)
        if (items[i].error[0])
            report(fn, ctx, &items[i], NULL, NULL);
    for (size_t i = 0; i < npaths; i++)
        mira__send_item_cleanup(&items[i]);
    mira_free(items);
    mira_free(todo);
    mira__tls_free(tls);
    return ok;
}
