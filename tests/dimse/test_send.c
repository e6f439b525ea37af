/* Tests of the Storage SCU's planning (src/dimse/send.h): the contexts proposed for a set of
 * instances, the accepted context each is sent on, the C-STORE statuses counted as success. */
#include "harness.h"

#include "dimse/send.h"

#include <mira/mira.h>

#define CT "1.2.840.10008.5.1.4.1.1.2"
#define MR "1.2.840.10008.5.1.4.1.1.4"
#define JPEG_BASELINE "1.2.840.10008.1.2.4.50"
#define RLE "1.2.840.10008.1.2.5"

static void item(mira__send_item *it, const char *sop_class, const char *ts)
{
    memset(it, 0, sizeof *it);
    snprintf(it->sop_class, sizeof it->sop_class, "%s", sop_class);
    snprintf(it->sop_instance, sizeof it->sop_instance, "1.2.3");
    snprintf(it->ts, sizeof it->ts, "%s", ts);
    it->clean = true;
}

/* The proposed context of rq with this abstract syntax and exactly these syntaxes. */
static bool proposed(const mira__assoc *rq, const char *sop, const char *ts1, const char *ts2)
{
    for (size_t i = 0; i < rq->npctx; i++) {
        const mira__pctx *c = &rq->pctx[i];
        if (strcmp(c->abstract_syntax, sop) != 0 || c->nts != (ts2 ? 2u : 1u))
            continue;
        if (strcmp(c->ts[0], ts1) == 0 && (!ts2 || strcmp(c->ts[1], ts2) == 0))
            return true;
    }
    return false;
}

TEST(propose_one_context_per_syntax_and_one_native_per_class)
{
    mira__send_item items[4];
    item(&items[0], CT, MIRA_TS_EXPLICIT_LE);
    item(&items[1], CT, JPEG_BASELINE);
    item(&items[2], CT, JPEG_BASELINE);
    item(&items[3], MR, RLE);
    size_t idx[4] = {0, 1, 2, 3}, n = 0;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    CHECK(mira__send_propose(&rq, items, idx, 4, &n));
    CHECK_EQ_INT(n, 4);
    /* CT in Explicit LE, CT in JPEG, MR in RLE alone; CT and MR with Explicit and Implicit */
    CHECK(proposed(&rq, CT, JPEG_BASELINE, NULL));
    CHECK(proposed(&rq, MR, RLE, NULL));
    CHECK(proposed(&rq, CT, MIRA_TS_EXPLICIT_LE, MIRA_TS_IMPLICIT_LE));
    CHECK(proposed(&rq, MR, MIRA_TS_EXPLICIT_LE, MIRA_TS_IMPLICIT_LE));
    CHECK(rq.npctx >= 4 && rq.npctx <= 5);
    for (size_t i = 0; i < rq.npctx; i++) {
        CHECK(rq.pctx[i].id % 2 == 1); /* PS3.8 9.3.2.2: odd */
        for (size_t j = 0; j < i; j++)
            CHECK(rq.pctx[i].id != rq.pctx[j].id);
    }
    mira__assoc_cleanup(&rq);
}

TEST(propose_at_most_128_contexts)
{
    /* 100 SOP classes in a compressed syntax: two contexts each, so not all fit (PS3.8: at most
     * 128 presentation contexts, ids 1..255) */
    enum { N = 100 };
    static mira__send_item items[N];
    size_t idx[N], n = 0;
    for (size_t i = 0; i < N; i++) {
        char sop[64];
        snprintf(sop, sizeof sop, "1.2.840.10008.5.1.4.1.1.%zu", 1000 + i);
        item(&items[i], sop, JPEG_BASELINE);
        idx[i] = i;
    }
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    CHECK(mira__send_propose(&rq, items, idx, N, &n));
    CHECK(n > 0 && n < N);
    CHECK(rq.npctx <= 128);
    /* each item covered has both its contexts */
    for (size_t k = 0; k < n; k++) {
        const mira__send_item *it = &items[idx[k]];
        CHECK(proposed(&rq, it->sop_class, JPEG_BASELINE, NULL));
        CHECK(proposed(&rq, it->sop_class, MIRA_TS_EXPLICIT_LE, MIRA_TS_IMPLICIT_LE));
    }
    mira__assoc_cleanup(&rq);
}

/* An association as the peer answered it: context id, SOP class, accepted syntax (NULL:
 * rejected). */
static void accept_ctx(mira__association *as, uint8_t id, const char *sop, const char *ts)
{
    mira__pctx *r = mira__assoc_add_pctx(&as->rq, id, sop);
    CHECK(r && mira__pctx_add_ts(r, ts ? ts : MIRA_TS_IMPLICIT_LE));
    mira__pctx *a = mira__assoc_add_pctx(&as->ac, id, "");
    CHECK(a != NULL);
    if (ts) {
        CHECK(mira__pctx_add_ts(a, ts));
        a->result = 0;
    } else {
        a->result = 3; /* abstract syntax not supported */
    }
}

TEST(context_choice)
{
    mira__association as;
    memset(&as, 0, sizeof as);
    accept_ctx(&as, 1, CT, JPEG_BASELINE);
    accept_ctx(&as, 3, CT, MIRA_TS_IMPLICIT_LE);
    accept_ctx(&as, 5, CT, MIRA_TS_EXPLICIT_LE);
    accept_ctx(&as, 7, MR, NULL);
    mira__send_item it;
    /* its own syntax first */
    item(&it, CT, JPEG_BASELINE);
    CHECK_EQ_INT(mira__send_context(&as, &it, false), 1);
    /* otherwise Explicit VR LE before Implicit */
    item(&it, CT, MIRA_TS_EXPLICIT_LE);
    CHECK_EQ_INT(mira__send_context(&as, &it, false), 5);
    item(&it, CT, "1.2.840.10008.1.2.2"); /* Explicit VR Big Endian */
    CHECK_EQ_INT(mira__send_context(&as, &it, false), 5);
    /* a rejected SOP class: none */
    item(&it, MR, MIRA_TS_EXPLICIT_LE);
    CHECK_EQ_INT(mira__send_context(&as, &it, false), 0);
    /* C-GET: only with the SCP role granted for the class */
    item(&it, CT, MIRA_TS_EXPLICIT_LE);
    CHECK_EQ_INT(mira__send_context(&as, &it, true), 0);
    CHECK(mira__assoc_add_role(&as.ac, CT, false, true));
    CHECK_EQ_INT(mira__send_context(&as, &it, true), 5);
    mira__assoc_cleanup(&as.rq);
    mira__assoc_cleanup(&as.ac);
}

TEST(store_statuses)
{
    /* PS3.4 B.2.3: success 0000; warnings B000 (coercion), B006 (elements discarded), B007
     * (data set does not match SOP class); 0001 is a warning some peers send */
    CHECK(mira__store_status_ok(0x0000));
    CHECK(!mira__store_status_warning(0x0000));
    static const uint16_t warn[] = {0xB000, 0xB006, 0xB007, 0x0001};
    for (size_t i = 0; i < sizeof warn / sizeof warn[0]; i++)
        CHECK(mira__store_status_ok(warn[i]) && mira__store_status_warning(warn[i]));
    /* failures: A7xx out of resources, A9xx mismatch, Cxxx cannot understand, 0122, 0111 */
    static const uint16_t fail[] = {0xA700, 0xA900, 0xC000, 0x0122, 0x0111, 0x0211, 0xFE00};
    for (size_t i = 0; i < sizeof fail / sizeof fail[0]; i++)
        CHECK(!mira__store_status_ok(fail[i]) && !mira__store_status_warning(fail[i]));
}
