/* Tests of the upper layer PDU codec (src/dimse/pdu.c) on PDUs laid out by hand from PS3.8 9.3. */
#include "harness.h"

#include "dimse/pdu.h"

#include <stdlib.h>

/* A byte string built by hand, in the order of the tables of PS3.8 9.3. */
typedef struct bytes {
    uint8_t d[4096];
    size_t n;
} bytes;

static void b8(bytes *b, unsigned v)
{
    b->d[b->n++] = (uint8_t)v;
}

static void b16(bytes *b, unsigned v)
{
    b8(b, v >> 8);
    b8(b, v & 0xFF);
}

static void b32(bytes *b, uint32_t v)
{
    b16(b, v >> 16);
    b16(b, v & 0xFFFF);
}

static void bstr(bytes *b, const char *s)
{
    memcpy(b->d + b->n, s, strlen(s));
    b->n += strlen(s);
}

static void item(bytes *b, unsigned type, const char *uid)
{
    b8(b, type);
    b8(b, 0);
    b16(b, (unsigned)strlen(uid));
    bstr(b, uid);
}

/* Patch the PDU length (bytes 2-5) to what follows the header. */
static void close_pdu(bytes *b)
{
    uint32_t len = (uint32_t)(b->n - 6);
    b->d[2] = (uint8_t)(len >> 24);
    b->d[3] = (uint8_t)(len >> 16);
    b->d[4] = (uint8_t)(len >> 8);
    b->d[5] = (uint8_t)len;
}

/* An A-ASSOCIATE-RQ: ECHOSCU calling MIRA, two contexts, every user information sub-item and
 * one of a type PS3.7 does not define (0x7E), which must be skipped. */
static void make_rq(bytes *b)
{
    b->n = 0;
    b8(b, 0x01);
    b8(b, 0);
    b32(b, 0);
    b16(b, 1); /* protocol version */
    b16(b, 0);
    bstr(b, "MIRA            ");
    bstr(b, "ECHOSCU         ");
    for (int i = 0; i < 32; i++)
        b8(b, 0);
    item(b, 0x10, "1.2.840.10008.3.1.1.1");
    /* context 1: Verification, Implicit VR LE */
    b8(b, 0x20);
    b8(b, 0);
    b16(b, 4 + 4 + 17 + 4 + 17);
    b8(b, 1);
    b8(b, 0);
    b8(b, 0);
    b8(b, 0);
    item(b, 0x30, "1.2.840.10008.1.1");
    item(b, 0x40, "1.2.840.10008.1.2");
    /* context 3: CT Image Storage, explicit then implicit (padded with a NUL, as some do) */
    b8(b, 0x20);
    b8(b, 0);
    b16(b, 4 + 4 + 25 + 4 + 19 + 4 + 18);
    b8(b, 3);
    b8(b, 0);
    b8(b, 0);
    b8(b, 0);
    item(b, 0x30, "1.2.840.10008.5.1.4.1.1.2");
    item(b, 0x40, "1.2.840.10008.1.2.1");
    b8(b, 0x40);
    b8(b, 0);
    b16(b, 18);
    bstr(b, "1.2.840.10008.1.2");
    b8(b, 0);
    /* user information */
    size_t ui = b->n;
    b8(b, 0x50);
    b8(b, 0);
    b16(b, 0);
    b8(b, 0x51);
    b8(b, 0);
    b16(b, 4);
    b32(b, 16384);
    item(b, 0x52, "1.2.276.0.7230010.3.0.3.6.7");
    b8(b, 0x53);
    b8(b, 0);
    b16(b, 4);
    b16(b, 3);
    b16(b, 1);
    b8(b, 0x54);
    b8(b, 0);
    b16(b, 2 + 25 + 2);
    b16(b, 25);
    bstr(b, "1.2.840.10008.5.1.4.1.1.2");
    b8(b, 1);
    b8(b, 0);
    item(b, 0x55, "OFFIS_DCMTK_367");
    b8(b, 0x7E); /* unknown: skipped */
    b8(b, 0);
    b16(b, 3);
    bstr(b, "xyz");
    b8(b, 0x56);
    b8(b, 0);
    b16(b, 2 + 25 + 6);
    b16(b, 25);
    bstr(b, "1.2.840.10008.5.1.4.1.1.2");
    for (int i = 0; i < 6; i++)
        b8(b, i == 0 ? 2 : 0);
    b8(b, 0x58);
    b8(b, 0);
    b16(b, 1 + 1 + 2 + 5 + 2 + 6);
    b8(b, 2); /* username and passcode */
    b8(b, 1); /* positive response requested */
    b16(b, 5);
    bstr(b, "alice");
    b16(b, 6);
    bstr(b, "secret");
    size_t uilen = b->n - ui - 4;
    b->d[ui + 2] = (uint8_t)(uilen >> 8);
    b->d[ui + 3] = (uint8_t)uilen;
    close_pdu(b);
}

static bool parse_fails(const bytes *b, const char *want)
{
    mira_error *err = NULL;
    mira__pdu p;
    bool ok = mira__pdu_parse(b->d, b->n, &p, &err);
    if (ok) {
        mira__pdu_cleanup(&p);
        fprintf(stderr, "parsed, expected an error containing '%s'\n", want);
        return false;
    }
    bool match = strstr(mira_error_get_message(err), want) != NULL &&
                 mira_error_get_code(err) == MIRA_ERR_INVALID;
    if (!match)
        fprintf(stderr, "error '%s' does not contain '%s'\n", mira_error_get_message(err), want);
    mira_error_free(err);
    return match;
}

TEST(associate_rq_fields)
{
    bytes b;
    make_rq(&b);
    mira__pdu p;
    mira_error *err = NULL;
    CHECK(mira__pdu_parse(b.d, b.n, &p, &err));
    CHECK(err == NULL);
    CHECK_EQ_INT(p.type, MIRA__PDU_ASSOCIATE_RQ);
    mira__assoc *a = &p.assoc;
    CHECK_EQ_INT(a->protocol_version, 1);
    CHECK_EQ_STR(a->called_ae, "MIRA");
    CHECK_EQ_STR(a->calling_ae, "ECHOSCU");
    CHECK_EQ_STR(a->app_context, "1.2.840.10008.3.1.1.1");
    CHECK_EQ_INT(a->npctx, 2);
    CHECK_EQ_INT(a->pctx[0].id, 1);
    CHECK_EQ_STR(a->pctx[0].abstract_syntax, "1.2.840.10008.1.1");
    CHECK_EQ_INT(a->pctx[0].nts, 1);
    CHECK_EQ_INT(a->pctx[1].id, 3);
    CHECK_EQ_INT(a->pctx[1].nts, 2);
    CHECK_EQ_STR(a->pctx[1].ts[1], "1.2.840.10008.1.2");
    CHECK_EQ_INT(a->max_pdu, 16384);
    CHECK_EQ_STR(a->impl_class_uid, "1.2.276.0.7230010.3.0.3.6.7");
    CHECK_EQ_STR(a->impl_version, "OFFIS_DCMTK_367");
    CHECK(a->has_async);
    CHECK_EQ_INT(a->max_ops_invoked, 3);
    CHECK_EQ_INT(a->max_ops_performed, 1);
    CHECK_EQ_INT(a->nroles, 1);
    CHECK_EQ_INT(a->roles[0].scu, 1);
    CHECK_EQ_INT(a->roles[0].scp, 0);
    CHECK_EQ_INT(a->next, 1);
    CHECK_EQ_INT(a->ext[0].len, 6);
    CHECK_EQ_INT(a->ext[0].info[0], 2);
    CHECK(a->has_identity);
    CHECK_EQ_INT(a->identity_type, 2);
    CHECK(a->identity_response_requested);
    CHECK_EQ_INT(a->identity_primary_len, 5);
    CHECK(memcmp(a->identity_primary, "alice", 5) == 0);
    CHECK_EQ_INT(a->identity_secondary_len, 6);
    CHECK_EQ_INT(a->unknown_items, 1);

    /* built again: the same bytes but for the unknown sub-item and the NUL padding */
    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__pdu_build_assoc(&out, MIRA__PDU_ASSOCIATE_RQ, a, NULL));
    CHECK_EQ_INT(out.len, b.n - 7 - 1);
    mira__pdu q;
    CHECK(mira__pdu_parse(out.data, out.len, &q, NULL));
    CHECK_EQ_STR(q.assoc.pctx[1].ts[1], "1.2.840.10008.1.2");
    CHECK_EQ_INT(q.assoc.unknown_items, 0);
    CHECK_EQ_INT(q.assoc.identity_secondary_len, 6);
    CHECK(memcmp(out.data + 6, b.d + 6, 93) == 0); /* version, AE titles, application context */
    mira__pdu_cleanup(&q);
    mira__buf_cleanup(&out);
    mira__pdu_cleanup(&p);
}

TEST(associate_ac_and_identity_response)
{
    mira__assoc a;
    memset(&a, 0, sizeof a);
    snprintf(a.called_ae, sizeof a.called_ae, "MIRA");
    snprintf(a.calling_ae, sizeof a.calling_ae, "STORESCU");
    mira__pctx *c = mira__assoc_add_pctx(&a, 1, NULL);
    CHECK(c && mira__pctx_add_ts(c, "1.2.840.10008.1.2.1"));
    c = mira__assoc_add_pctx(&a, 3, NULL);
    CHECK(c);
    c->result = MIRA__PCTX_ABSTRACT_NOT_SUPPORTED;
    a.max_pdu = 65536;
    snprintf(a.impl_class_uid, sizeof a.impl_class_uid, "1.2.3");
    a.has_identity_response = true;
    a.identity_response = (uint8_t *)mira_strdup("");
    a.identity_response_len = 0;
    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__pdu_build_assoc(&out, MIRA__PDU_ASSOCIATE_AC, &a, NULL));
    /* PS3.8 table 9-18: AC item 0x21, reserved, result at byte 6 of the item */
    CHECK_EQ_INT(out.data[0], 0x02);
    mira__pdu p;
    mira_error *err = NULL;
    CHECK(mira__pdu_parse(out.data, out.len, &p, &err));
    CHECK_EQ_INT(p.assoc.npctx, 2);
    CHECK_EQ_INT(p.assoc.pctx[0].result, 0);
    CHECK_EQ_STR(p.assoc.pctx[0].ts[0], "1.2.840.10008.1.2.1");
    CHECK_EQ_INT(p.assoc.pctx[1].result, 3);
    CHECK_EQ_INT(p.assoc.pctx[1].nts, 0);
    CHECK_EQ_INT(p.assoc.max_pdu, 65536);
    CHECK(p.assoc.has_identity_response);
    mira__pdu_cleanup(&p);
    mira__buf_cleanup(&out);
    mira__assoc_cleanup(&a);
}

TEST(fixed_pdus)
{
    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__pdu_build_reject(&out, 1, 1, 7));
    const uint8_t rj[10] = {3, 0, 0, 0, 0, 4, 0, 1, 1, 7};
    CHECK(out.len == 10 && memcmp(out.data, rj, 10) == 0);
    mira__pdu p;
    CHECK(mira__pdu_parse(out.data, out.len, &p, NULL));
    CHECK_EQ_INT(p.result, 1);
    CHECK_EQ_INT(p.source, 1);
    CHECK_EQ_INT(p.reason, 7);
    mira__pdu_cleanup(&p);
    out.len = 0;
    CHECK(mira__pdu_build_abort(&out, 2, 6));
    const uint8_t ab[10] = {7, 0, 0, 0, 0, 4, 0, 0, 2, 6};
    CHECK(memcmp(out.data, ab, 10) == 0);
    out.len = 0;
    CHECK(mira__pdu_build_release(&out, MIRA__PDU_RELEASE_RQ));
    const uint8_t rq[10] = {5, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    CHECK(memcmp(out.data, rq, 10) == 0);
    mira__buf_cleanup(&out);

    bytes b = {{5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, 11};
    CHECK(parse_fails(&b, "has length 5, not 4"));
}

TEST(pdata)
{
    bytes b = {{0}, 0};
    b8(&b, 4);
    b8(&b, 0);
    b32(&b, 0);
    b32(&b, 2 + 3);
    b8(&b, 1);
    b8(&b, 3); /* command, last */
    bstr(&b, "abc");
    b32(&b, 2 + 1);
    b8(&b, 1);
    b8(&b, 0); /* data, not last */
    bstr(&b, "d");
    close_pdu(&b);
    mira__pdu p;
    CHECK(mira__pdu_parse(b.d, b.n, &p, NULL));
    CHECK_EQ_INT(p.npdv, 2);
    CHECK(p.pdv[0].command && p.pdv[0].last && p.pdv[0].len == 3);
    CHECK(memcmp(p.pdv[0].data, "abc", 3) == 0);
    CHECK(!p.pdv[1].command && !p.pdv[1].last && p.pdv[1].len == 1);
    mira__pdu_cleanup(&p);

    mira__buf out;
    mira__buf_init(&out);
    CHECK(mira__pdu_build_pdata(&out, 1, true, true, "abc", 3));
    CHECK_EQ_INT(out.len, 15);
    CHECK(mira__pdu_parse(out.data, out.len, &p, NULL));
    CHECK(p.npdv == 1 && p.pdv[0].len == 3 && p.pdv[0].command && p.pdv[0].last);
    mira__pdu_cleanup(&p);
    mira__buf_cleanup(&out);

    /* a PDV whose length runs past the PDU */
    b.d[9] = 200;
    CHECK(parse_fails(&b, "runs past the end of the PDU"));
    b.d[9] = 1; /* shorter than its 2-byte header */
    CHECK(parse_fails(&b, "shorter than 2 bytes"));
    b.d[9] = 5;
    b.d[10] = 2; /* even context ID */
    CHECK(parse_fails(&b, "is even"));
    b.d[10] = 1;
    b.d[11] = 0x10; /* reserved bits */
    CHECK(parse_fails(&b, "reserved bits"));
    bytes empty = {{4, 0, 0, 0, 0, 0}, 6};
    CHECK(parse_fails(&empty, "without a PDV"));
}

TEST(malformed_associate)
{
    bytes b;
    make_rq(&b);
    bytes t = b;
    t.n -= 3; /* truncated: the length field says more */
    CHECK(parse_fails(&t, "does not match"));
    t = b;
    t.d[0] = 0x09;
    CHECK(parse_fails(&t, "unknown PDU type 0x09"));
    t = b;
    t.d[99] = 0x99; /* first context item's type (after 68 + the 25-byte context) */
    CHECK(parse_fails(&t, "unknown type"));
    t = b;
    t.d[103] = 2; /* its ID */
    CHECK(parse_fails(&t, "is even"));
    t = b;
    t.d[101] = 0xFF; /* its length */
    CHECK(parse_fails(&t, "runs past"));
    t = b;
    t.d[115] = 'x'; /* in the abstract syntax UID */
    CHECK(parse_fails(&t, "not a digit"));
    /* no user information: cut it off */
    t = b;
    size_t ui = 0;
    for (size_t i = 74; i + 4 <= t.n;) {
        if (t.d[i] == 0x50) {
            ui = i;
            break;
        }
        i += 4 + ((size_t)t.d[i + 2] << 8 | t.d[i + 3]);
    }
    CHECK(ui > 0);
    t.n = ui;
    close_pdu(&t);
    CHECK(parse_fails(&t, "no user information"));
    /* a user information sub-item longer than its item */
    t = b;
    t.d[ui + 4 + 2] = 0x7F;
    CHECK(parse_fails(&t, "runs past the end of the user information"));
    /* maximum length of 3 bytes */
    t = b;
    t.d[ui + 4 + 3] = 3;
    CHECK(parse_fails(&t, "maximum length"));
    bytes tiny = {{1, 0, 0, 0, 0, 2, 0, 1}, 8};
    CHECK(parse_fails(&tiny, "shorter than 68 bytes"));
    bytes four = {{1, 0, 0, 0}, 4};
    CHECK(parse_fails(&four, "header"));
}

TEST(every_truncation_and_byte_flip_is_safe)
{
    /* each prefix (with its length fixed up) and each single-byte change either parses or
     * fails with a message naming an offset: never a crash (ASan watches) */
    bytes b;
    make_rq(&b);
    for (size_t n = 6; n < b.n; n++) {
        bytes t = b;
        t.n = n;
        close_pdu(&t);
        mira__pdu p;
        mira_error *err = NULL;
        if (mira__pdu_parse(t.d, t.n, &p, &err))
            mira__pdu_cleanup(&p);
        else {
            CHECK(strstr(mira_error_get_message(err), "offset") != NULL);
            mira_error_free(err);
        }
    }
    for (size_t i = 6; i < b.n; i++) {
        for (unsigned v = 0; v < 256; v += 51) {
            bytes t = b;
            t.d[i] = (uint8_t)v;
            mira__pdu p;
            mira_error *err = NULL;
            if (mira__pdu_parse(t.d, t.n, &p, &err))
                mira__pdu_cleanup(&p);
            else
                mira_error_free(err);
        }
    }
}

/* The seeds of fuzz/corpus/fuzz_pdu are PDUs captured from DCMTK (echoscu, storescu, storescp)
 * and pynetdicom (scripts/capture_pdus.py): every one parses, and its type is in its name. */
#include <dirent.h>

TEST(real_peers_pdus_parse)
{
    char dir[4096];
    /* found from this source file (CMake compiles it by its absolute path) */
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    snprintf(slash ? slash : dir, sizeof dir - (size_t)(slash ? slash - dir : 0),
             "/../../fuzz/corpus/fuzz_pdu");
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        static uint8_t buf[1 << 16];
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        mira__pdu p;
        mira_error *err = NULL;
        bool ok = mira__pdu_parse(buf, len, &p, &err);
        if (!ok)
            fprintf(stderr, "%s: %s\n", de->d_name, mira_error_get_message(err));
        CHECK(ok);
        mira_error_free(err);
        if (!ok)
            continue;
        const char *dash = strrchr(de->d_name, '-');
        CHECK(dash && strtoul(dash + 1, NULL, 16) == p.type);
        if (p.type == MIRA__PDU_ASSOCIATE_RQ || p.type == MIRA__PDU_ASSOCIATE_AC) {
            CHECK_EQ_STR(p.assoc.app_context, MIRA__APP_CONTEXT);
            CHECK(p.assoc.has_max_pdu);
            CHECK(p.assoc.impl_class_uid[0] != 0);
        }
        mira__pdu_cleanup(&p);
        n++;
    }
    closedir(d);
    CHECK(n >= 10);
}
