/* DICOM upper layer PDUs (PS3.8 9.3, PS3.7 Annex D.3.3): parsing and building. */
#include "pdu.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ reading */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A reader over one PDU: pos is the offset from the PDU's first byte, for messages. */
typedef struct rd {
    const uint8_t *p;
    size_t len, base;
    mira_error **err;
} rd;

static bool bad(rd *r, size_t at, const char *fmt, const char *what)
{
    mira_error_set(r->err, MIRA_ERR_INVALID, "Malformed PDU", fmt, (size_t)(r->base + at), what);
    return false;
}

/* Copy a UID field: trailing NULs and spaces (some peers pad) dropped; at most 64 chars of
 * digits and dots. */
static bool get_uid(rd *r, size_t at, const uint8_t *v, size_t n, mira__uid out, const char *what)
{
    while (n > 0 && (v[n - 1] == 0 || v[n - 1] == ' '))
        n--;
    if (n > 64)
        return bad(r, at, "at offset %zu: %s is longer than 64 characters", what);
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || v[i] == '.'))
            return bad(r, at, "at offset %zu: %s holds a character that is not a digit or '.'",
                       what);
    memcpy(out, v, n);
    out[n] = 0;
    return true;
}

/* An AE title field of 16 bytes: leading and trailing spaces dropped; a NUL ends it. */
static void get_ae(const uint8_t *v, char out[17])
{
    size_t a = 0, b = 0;
    while (b < 16 && v[b])
        b++;
    while (a < b && (v[a] == ' ' || v[a] == 0))
        a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == 0))
        b--;
    memcpy(out, v + a, b - a);
    out[b - a] = 0;
}

static void *grow(void *arr, size_t n, size_t size)
{
    /* arrays grow one element at a time: a PDU holds at most a few hundred items */
    void *p = mira_realloc(arr, (n + 1) * size);
    if (p)
        memset((char *)p + n * size, 0, size);
    return p;
}

bool mira__pctx_add_ts(mira__pctx *c, const char *uid)
{
    mira__uid *t = grow(c->ts, c->nts, sizeof *t);
    if (!t)
        return false;
    c->ts = t;
    snprintf(t[c->nts++], sizeof(mira__uid), "%s", uid);
    return true;
}

mira__pctx *mira__assoc_add_pctx(mira__assoc *a, uint8_t id, const char *abstract_syntax)
{
    mira__pctx *p = grow(a->pctx, a->npctx, sizeof *p);
    if (!p)
        return NULL;
    a->pctx = p;
    p = &a->pctx[a->npctx++];
    p->id = id;
    snprintf(p->abstract_syntax, sizeof p->abstract_syntax, "%s", abstract_syntax ? abstract_syntax : "");
    return p;
}

bool mira__assoc_add_role(mira__assoc *a, const char *uid, bool scu, bool scp)
{
    mira__role *r = grow(a->roles, a->nroles, sizeof *r);
    if (!r)
        return false;
    a->roles = r;
    r = &a->roles[a->nroles++];
    snprintf(r->sop_class, sizeof r->sop_class, "%s", uid);
    r->scu = scu;
    r->scp = scp;
    return true;
}

bool mira__assoc_add_ext(mira__assoc *a, const char *uid, const void *info, size_t len)
{
    uint8_t *copy = mira_malloc(len ? len : 1);
    if (!copy)
        return false;
    mira__ext_neg *e = grow(a->ext, a->next, sizeof *e);
    if (!e) {
        mira_free(copy);
        return false;
    }
    a->ext = e;
    e = &a->ext[a->next++];
    snprintf(e->sop_class, sizeof e->sop_class, "%s", uid);
    if (len)
        memcpy(copy, info, len);
    e->info = copy;
    e->len = len;
    return true;
}

static uint8_t *dup_bytes(const uint8_t *v, size_t n)
{
    uint8_t *p = mira_malloc(n ? n : 1);
    if (p && n)
        memcpy(p, v, n);
    return p;
}

static bool nomem(rd *r)
{
    mira_error_set(r->err, MIRA_ERR_NOMEM, NULL, "parsing a PDU");
    return false;
}

/* The user information item's sub-items (PS3.7 D.3.3), v..v+n at offset at. */
static bool parse_user_info(rd *r, size_t at, const uint8_t *v, size_t n, mira__assoc *a)
{
    size_t i = 0;
    while (i < n) {
        if (n - i < 4)
            return bad(r, at + i, "at offset %zu: %s", "a truncated user information sub-item");
        uint8_t type = v[i];
        size_t len = rd16(v + i + 2);
        if (len > n - i - 4)
            return bad(r, at + i,
                       "at offset %zu: %s runs past the end of the user information item",
                       "a sub-item");
        const uint8_t *s = v + i + 4;
        size_t sat = at + i + 4;
        switch (type) {
        case 0x51: /* maximum length */
            if (len != 4)
                return bad(r, sat, "at offset %zu: %s is not 4 bytes long", "maximum length");
            a->max_pdu = rd32(s);
            a->has_max_pdu = true;
            break;
        case 0x52: /* implementation class UID */
            if (!get_uid(r, sat, s, len, a->impl_class_uid, "the implementation class UID"))
                return false;
            break;
        case 0x55: /* implementation version name */
            if (len > 16)
                return bad(r, sat, "at offset %zu: %s is longer than 16 bytes",
                           "the implementation version name");
            memcpy(a->impl_version, s, len);
            a->impl_version[len] = 0;
            break;
        case 0x53: /* asynchronous operations window */
            if (len != 4)
                return bad(r, sat, "at offset %zu: %s is not 4 bytes long",
                           "the asynchronous operations window");
            a->has_async = true;
            a->max_ops_invoked = rd16(s);
            a->max_ops_performed = rd16(s + 2);
            break;
        case 0x54: { /* SCP/SCU role selection */
            if (len < 2 || (size_t)rd16(s) + 4 != len)
                return bad(r, sat, "at offset %zu: %s has inconsistent lengths",
                           "a role selection");
            mira__uid uid;
            if (!get_uid(r, sat + 2, s + 2, rd16(s), uid, "a role selection's SOP class UID"))
                return false;
            const uint8_t *f = s + 2 + rd16(s);
            if (f[0] > 1 || f[1] > 1)
                return bad(r, sat, "at offset %zu: %s is neither 0 nor 1", "a role");
            if (!mira__assoc_add_role(a, uid, f[0], f[1]))
                return nomem(r);
            break;
        }
        case 0x56: { /* SOP class extended negotiation */
            if (len < 2 || (size_t)rd16(s) + 2 > len)
                return bad(r, sat, "at offset %zu: %s has inconsistent lengths",
                           "an extended negotiation");
            mira__uid uid;
            size_t ul = rd16(s);
            if (!get_uid(r, sat + 2, s + 2, ul, uid, "an extended negotiation's SOP class UID"))
                return false;
            if (!mira__assoc_add_ext(a, uid, s + 2 + ul, len - 2 - ul))
                return nomem(r);
            break;
        }
        case 0x58: { /* user identity negotiation, RQ */
            if (len < 6)
                return bad(r, sat, "at offset %zu: %s is truncated", "the user identity");
            size_t pl = rd16(s + 2);
            if (pl + 6 > len || (size_t)rd16(s + 4 + pl) + pl + 6 != len)
                return bad(r, sat, "at offset %zu: %s has inconsistent lengths",
                           "the user identity");
            if (a->has_identity)
                return bad(r, sat, "at offset %zu: %s", "a second user identity sub-item");
            size_t sl = rd16(s + 4 + pl);
            a->identity_type = s[0];
            a->identity_response_requested = s[1] == 1;
            a->identity_primary = dup_bytes(s + 4, pl);
            a->identity_secondary = dup_bytes(s + 6 + pl, sl);
            a->has_identity = true; /* set before the check: cleanup frees what was made */
            if (!a->identity_primary || !a->identity_secondary)
                return nomem(r);
            a->identity_primary_len = pl;
            a->identity_secondary_len = sl;
            break;
        }
        case 0x59: { /* user identity negotiation, AC */
            if (len < 2 || (size_t)rd16(s) + 2 != len)
                return bad(r, sat, "at offset %zu: %s has inconsistent lengths",
                           "the user identity response");
            if (a->has_identity_response)
                return bad(r, sat, "at offset %zu: %s", "a second user identity response");
            a->has_identity_response = true;
            a->identity_response = dup_bytes(s + 2, len - 2);
            if (!a->identity_response)
                return nomem(r);
            a->identity_response_len = len - 2;
            break;
        }
        default: /* 0x57 (common extended negotiation) and anything newer: ignored */
            a->unknown_items++;
            break;
        }
        i += 4 + len;
    }
    return true;
}

/* Sub-items of a presentation context item: 0x30 abstract syntax, 0x40 transfer syntaxes. */
static bool parse_pctx(rd *r, size_t at, const uint8_t *v, size_t n, bool rq, mira__assoc *a)
{
    if (n < 4)
        return bad(r, at, "at offset %zu: %s is shorter than 4 bytes", "a presentation context");
    if (a->npctx >= 128)
        return bad(r, at, "at offset %zu: %s", "more than 128 presentation contexts");
    uint8_t id = v[0];
    if (!(id & 1))
        return bad(r, at, "at offset %zu: %s is even", "a presentation context ID");
    for (size_t k = 0; k < a->npctx; k++)
        if (a->pctx[k].id == id)
            return bad(r, at, "at offset %zu: %s is given twice", "a presentation context ID");
    mira__pctx *c = mira__assoc_add_pctx(a, id, "");
    if (!c)
        return nomem(r);
    c->result = rq ? 0 : v[2];
    if (!rq && c->result > 4)
        return bad(r, at + 2, "at offset %zu: %s is not 0-4", "a presentation context result");
    size_t i = 4;
    bool have_abstract = false;
    while (i < n) {
        if (n - i < 4)
            return bad(r, at + i, "at offset %zu: %s", "a truncated presentation context sub-item");
        uint8_t type = v[i];
        size_t len = rd16(v + i + 2);
        if (len > n - i - 4)
            return bad(r, at + i, "at offset %zu: %s runs past its presentation context",
                       "a sub-item");
        if (type == 0x30 && rq) {
            if (have_abstract)
                return bad(r, at + i, "at offset %zu: %s", "a second abstract syntax");
            if (!get_uid(r, at + i + 4, v + i + 4, len, c->abstract_syntax, "an abstract syntax"))
                return false;
            have_abstract = true;
        } else if (type == 0x40) {
            if (c->nts >= 64)
                return bad(r, at + i, "at offset %zu: %s",
                           "more than 64 transfer syntaxes in one presentation context");
            mira__uid uid;
            if (!get_uid(r, at + i + 4, v + i + 4, len, uid, "a transfer syntax"))
                return false;
            if (!mira__pctx_add_ts(c, uid))
                return nomem(r);
        } else {
            return bad(r, at + i, "at offset %zu: %s", "an unknown presentation context sub-item");
        }
        i += 4 + len;
    }
    if (rq && (!have_abstract || c->nts == 0))
        return bad(r, at, "at offset %zu: %s", "a proposed presentation context without an "
                                              "abstract syntax or transfer syntax");
    if (!rq && c->result == MIRA__PCTX_ACCEPTED && c->nts != 1)
        return bad(r, at, "at offset %zu: %s",
                   "an accepted presentation context without exactly one transfer syntax");
    return true;
}

static bool parse_assoc(rd *r, bool rq, mira__assoc *a)
{
    const uint8_t *p = r->p + MIRA__PDU_HEADER;
    size_t n = r->len - MIRA__PDU_HEADER;
    if (n < 68)
        return bad(r, MIRA__PDU_HEADER, "at offset %zu: %s is shorter than 68 bytes",
                   rq ? "an A-ASSOCIATE-RQ" : "an A-ASSOCIATE-AC");
    a->protocol_version = rd16(p);
    get_ae(p + 4, a->called_ae);
    get_ae(p + 20, a->calling_ae);
    size_t i = 68;
    bool have_app = false, have_user = false;
    while (i < n) {
        size_t at = MIRA__PDU_HEADER + i;
        if (n - i < 4)
            return bad(r, at, "at offset %zu: %s", "a truncated item");
        uint8_t type = p[i];
        size_t len = rd16(p + i + 2);
        if (len > n - i - 4)
            return bad(r, at, "at offset %zu: %s runs past the end of the PDU", "an item");
        const uint8_t *v = p + i + 4;
        if (type == 0x10) {
            if (have_app)
                return bad(r, at, "at offset %zu: %s", "a second application context");
            if (!get_uid(r, at + 4, v, len, a->app_context, "the application context name"))
                return false;
            have_app = true;
        } else if (type == (rq ? 0x20 : 0x21)) {
            if (!parse_pctx(r, at + 4, v, len, rq, a))
                return false;
        } else if (type == 0x50) {
            if (have_user)
                return bad(r, at, "at offset %zu: %s", "a second user information item");
            have_user = true;
            if (!parse_user_info(r, at + 4, v, len, a))
                return false;
        } else {
            return bad(r, at, "at offset %zu: %s", "an item of an unknown type");
        }
        i += 4 + len;
    }
    if (!have_app)
        return bad(r, MIRA__PDU_HEADER, "at offset %zu: %s", "no application context item");
    if (rq && a->npctx == 0)
        return bad(r, MIRA__PDU_HEADER, "at offset %zu: %s", "no presentation context");
    if (!have_user)
        return bad(r, MIRA__PDU_HEADER, "at offset %zu: %s",
                   "no user information item (the maximum length is mandatory)");
    return true;
}

static bool parse_pdata(rd *r, mira__pdu *out)
{
    const uint8_t *p = r->p + MIRA__PDU_HEADER;
    size_t n = r->len - MIRA__PDU_HEADER;
    size_t i = 0, count = 0;
    /* count first: one allocation */
    while (i < n) {
        if (n - i < 6)
            return bad(r, MIRA__PDU_HEADER + i, "at offset %zu: %s", "a truncated PDV item");
        uint32_t len = rd32(p + i);
        if (len < 2)
            return bad(r, MIRA__PDU_HEADER + i, "at offset %zu: %s is shorter than 2 bytes",
                       "a PDV item");
        if (len > n - i - 4)
            return bad(r, MIRA__PDU_HEADER + i, "at offset %zu: %s runs past the end of the PDU",
                       "a PDV item");
        if (!(p[i + 4] & 1))
            return bad(r, MIRA__PDU_HEADER + i + 4, "at offset %zu: %s is even",
                       "a PDV's presentation context ID");
        if (p[i + 5] & 0xFC)
            return bad(r, MIRA__PDU_HEADER + i + 5, "at offset %zu: %s has reserved bits set",
                       "a message control header");
        i += 4 + (size_t)len;
        count++;
    }
    if (count == 0)
        return bad(r, MIRA__PDU_HEADER, "at offset %zu: %s", "a P-DATA-TF without a PDV");
    out->pdv = mira_calloc(count, sizeof *out->pdv);
    if (!out->pdv)
        return nomem(r);
    for (i = 0; i < n; out->npdv++) {
        uint32_t len = rd32(p + i);
        mira__pdv *v = &out->pdv[out->npdv];
        v->pctx_id = p[i + 4];
        v->command = p[i + 5] & 1;
        v->last = (p[i + 5] & 2) != 0;
        v->data = p + i + 6;
        v->len = len - 2;
        i += 4 + (size_t)len;
    }
    return true;
}

bool mira__pdu_header(const uint8_t hdr[MIRA__PDU_HEADER], uint8_t *type, uint32_t *len)
{
    *type = hdr[0];
    *len = rd32(hdr + 2);
    return hdr[0] >= MIRA__PDU_ASSOCIATE_RQ && hdr[0] <= MIRA__PDU_ABORT;
}

bool mira__pdu_parse(const uint8_t *data, size_t len, mira__pdu *out, mira_error **err)
{
    memset(out, 0, sizeof *out);
    rd r = {data, len, 0, err};
    if (len < MIRA__PDU_HEADER) {
        mira_error_set(err, MIRA_ERR_INVALID, "Malformed PDU",
                       "at offset 0: a PDU of %zu bytes is shorter than its 6-byte header", len);
        return false;
    }
    uint8_t type;
    uint32_t plen;
    if (!mira__pdu_header(data, &type, &plen)) {
        mira_error_set(err, MIRA_ERR_INVALID, "Unknown PDU", "at offset 0: unknown PDU type 0x%02X",
                       type);
        return false;
    }
    if ((uint64_t)plen + MIRA__PDU_HEADER != len) {
        mira_error_set(err, MIRA_ERR_INVALID, "Malformed PDU",
                       "at offset 2: the PDU length %u does not match the %zu bytes that follow "
                       "the header",
                       plen, len - MIRA__PDU_HEADER);
        return false;
    }
    out->type = type;
    bool ok = true;
    const uint8_t *b = data + MIRA__PDU_HEADER;
    switch (type) {
    case MIRA__PDU_ASSOCIATE_RQ:
    case MIRA__PDU_ASSOCIATE_AC:
        ok = parse_assoc(&r, type == MIRA__PDU_ASSOCIATE_RQ, &out->assoc);
        break;
    case MIRA__PDU_P_DATA:
        ok = parse_pdata(&r, out);
        break;
    default: /* the four fixed-size PDUs */
        if (plen != 4) {
            mira_error_set(err, MIRA_ERR_INVALID, "Malformed PDU",
                           "at offset 2: an %s has length %u, not 4", mira__pdu_type_name(type),
                           plen);
            ok = false;
            break;
        }
        if (type == MIRA__PDU_ASSOCIATE_RJ) {
            out->result = b[1];
            out->source = b[2];
            out->reason = b[3];
        } else if (type == MIRA__PDU_ABORT) {
            out->source = b[2];
            out->reason = b[3];
        }
        break;
    }
    if (!ok)
        mira__pdu_cleanup(out);
    return ok;
}

void mira__assoc_cleanup(mira__assoc *a)
{
    for (size_t i = 0; i < a->npctx; i++)
        mira_free(a->pctx[i].ts);
    mira_free(a->pctx);
    mira_free(a->roles);
    for (size_t i = 0; i < a->next; i++)
        mira_free(a->ext[i].info);
    mira_free(a->ext);
    mira_free(a->identity_primary);
    mira_free(a->identity_secondary);
    mira_free(a->identity_response);
    memset(a, 0, sizeof *a);
}

void mira__pdu_cleanup(mira__pdu *p)
{
    mira__assoc_cleanup(&p->assoc);
    mira_free(p->pdv);
    p->pdv = NULL;
    p->npdv = 0;
}

const char *mira__pdu_type_name(uint8_t type)
{
    static const char *const names[] = {"A-ASSOCIATE-RQ", "A-ASSOCIATE-AC", "A-ASSOCIATE-RJ",
                                        "P-DATA-TF",      "A-RELEASE-RQ",   "A-RELEASE-RP",
                                        "A-ABORT"};
    return type >= 1 && type <= 7 ? names[type - 1] : "unknown PDU";
}

/* ------------------------------------------------------------------ building */

static void put_item_header(mira__buf *b, uint8_t type, size_t len)
{
    mira__buf_putc(b, (char)type);
    mira__buf_putc(b, 0);
    mira__buf_u16be(b, (uint16_t)len);
}

static void put_uid_item(mira__buf *b, uint8_t type, const char *uid)
{
    size_t n = strlen(uid);
    put_item_header(b, type, n);
    mira__buf_append(b, uid, n);
}

static void put_ae(mira__buf *b, const char *ae)
{
    char f[16];
    memset(f, ' ', 16);
    size_t n = strlen(ae);
    memcpy(f, ae, n > 16 ? 16 : n);
    mira__buf_append(b, f, 16);
}

bool mira__pdu_build_assoc(mira__buf *b, uint8_t type, const mira__assoc *a, mira_error **err)
{
    bool rq = type == MIRA__PDU_ASSOCIATE_RQ;
    size_t start = b->len;
    mira__buf_putc(b, (char)type);
    mira__buf_putc(b, 0);
    mira__buf_u32be(b, 0); /* patched below */
    mira__buf_u16be(b, a->protocol_version ? a->protocol_version : 1);
    mira__buf_u16be(b, 0);
    put_ae(b, a->called_ae);
    put_ae(b, a->calling_ae);
    static const uint8_t zero[32];
    mira__buf_append(b, zero, 32);
    put_uid_item(b, 0x10, a->app_context[0] ? a->app_context : MIRA__APP_CONTEXT);
    for (size_t i = 0; i < a->npctx; i++) {
        const mira__pctx *c = &a->pctx[i];
        size_t len = 4;
        if (rq)
            len += 4 + strlen(c->abstract_syntax);
        for (size_t k = 0; k < c->nts; k++)
            len += 4 + strlen(c->ts[k]);
        if (len > 0xFFFF) {
            mira_error_set(err, MIRA_ERR_LIMIT, NULL, "presentation context %u is too long",
                           c->id);
            return false;
        }
        put_item_header(b, rq ? 0x20 : 0x21, len);
        mira__buf_putc(b, (char)c->id);
        mira__buf_putc(b, 0);
        mira__buf_putc(b, rq ? 0 : (char)c->result);
        mira__buf_putc(b, 0);
        if (rq)
            put_uid_item(b, 0x30, c->abstract_syntax);
        for (size_t k = 0; k < c->nts; k++)
            put_uid_item(b, 0x40, c->ts[k]);
    }
    /* user information: built apart, its length known at the end */
    size_t ui = b->len;
    put_item_header(b, 0x50, 0);
    put_item_header(b, 0x51, 4);
    mira__buf_u32be(b, a->max_pdu);
    put_uid_item(b, 0x52, a->impl_class_uid);
    if (a->has_async) {
        put_item_header(b, 0x53, 4);
        mira__buf_u16be(b, a->max_ops_invoked);
        mira__buf_u16be(b, a->max_ops_performed);
    }
    for (size_t i = 0; i < a->nroles; i++) {
        size_t n = strlen(a->roles[i].sop_class);
        put_item_header(b, 0x54, n + 4);
        mira__buf_u16be(b, (uint16_t)n);
        mira__buf_append(b, a->roles[i].sop_class, n);
        mira__buf_putc(b, (char)a->roles[i].scu);
        mira__buf_putc(b, (char)a->roles[i].scp);
    }
    if (a->impl_version[0]) {
        size_t n = strlen(a->impl_version);
        put_item_header(b, 0x55, n);
        mira__buf_append(b, a->impl_version, n);
    }
    for (size_t i = 0; i < a->next; i++) {
        size_t n = strlen(a->ext[i].sop_class);
        if (n + 2 + a->ext[i].len > 0xFFFF) {
            mira_error_set(err, MIRA_ERR_LIMIT, NULL, "an extended negotiation is too long");
            return false;
        }
        put_item_header(b, 0x56, n + 2 + a->ext[i].len);
        mira__buf_u16be(b, (uint16_t)n);
        mira__buf_append(b, a->ext[i].sop_class, n);
        mira__buf_append(b, a->ext[i].info, a->ext[i].len);
    }
    if (rq && a->has_identity) {
        size_t len = 6 + a->identity_primary_len + a->identity_secondary_len;
        if (len > 0xFFFF || a->identity_primary_len > 0xFFFF) {
            mira_error_set(err, MIRA_ERR_LIMIT, NULL, "the user identity is too long");
            return false;
        }
        put_item_header(b, 0x58, len);
        mira__buf_putc(b, (char)a->identity_type);
        mira__buf_putc(b, a->identity_response_requested ? 1 : 0);
        mira__buf_u16be(b, (uint16_t)a->identity_primary_len);
        mira__buf_append(b, a->identity_primary, a->identity_primary_len);
        mira__buf_u16be(b, (uint16_t)a->identity_secondary_len);
        mira__buf_append(b, a->identity_secondary, a->identity_secondary_len);
    }
    if (!rq && a->has_identity_response) {
        if (a->identity_response_len + 2 > 0xFFFF) {
            mira_error_set(err, MIRA_ERR_LIMIT, NULL, "the user identity response is too long");
            return false;
        }
        put_item_header(b, 0x59, a->identity_response_len + 2);
        mira__buf_u16be(b, (uint16_t)a->identity_response_len);
        mira__buf_append(b, a->identity_response, a->identity_response_len);
    }
    if (b->failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "building an association PDU");
        return false;
    }
    size_t uilen = b->len - ui - 4;
    if (uilen > 0xFFFF) {
        mira_error_set(err, MIRA_ERR_LIMIT, NULL, "the user information item is too long");
        return false;
    }
    b->data[ui + 2] = (uint8_t)(uilen >> 8);
    b->data[ui + 3] = (uint8_t)uilen;
    size_t plen = b->len - start - MIRA__PDU_HEADER;
    for (int k = 0; k < 4; k++)
        b->data[start + 2 + k] = (uint8_t)(plen >> (24 - 8 * k));
    return true;
}

static bool fixed_pdu(mira__buf *b, uint8_t type, uint8_t b1, uint8_t b2, uint8_t b3)
{
    const uint8_t p[10] = {type, 0, 0, 0, 0, 4, 0, b1, b2, b3};
    return mira__buf_append(b, p, sizeof p);
}

bool mira__pdu_build_reject(mira__buf *b, uint8_t result, uint8_t source, uint8_t reason)
{
    return fixed_pdu(b, MIRA__PDU_ASSOCIATE_RJ, result, source, reason);
}

bool mira__pdu_build_abort(mira__buf *b, uint8_t source, uint8_t reason)
{
    return fixed_pdu(b, MIRA__PDU_ABORT, 0, source, reason);
}

bool mira__pdu_build_release(mira__buf *b, uint8_t type)
{
    return fixed_pdu(b, type, 0, 0, 0);
}

bool mira__pdu_build_pdata(mira__buf *b, uint8_t pctx_id, bool command, bool last,
                           const void *data, size_t len)
{
    if (len > 0xFFFFFFFFu - 12)
        return false;
    mira__buf_putc(b, MIRA__PDU_P_DATA);
    mira__buf_putc(b, 0);
    mira__buf_u32be(b, (uint32_t)(len + 6));
    mira__buf_u32be(b, (uint32_t)(len + 2));
    mira__buf_putc(b, (char)pctx_id);
    mira__buf_putc(b, (char)((command ? 1 : 0) | (last ? 2 : 0)));
    return mira__buf_append(b, data, len);
}
