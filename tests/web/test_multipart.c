/* Media types and the streaming multipart parser (RFC 2046 5.1.1). */
#include "harness.h"

#include "mira/core.h"
#include "web/multipart.h"

#include <stdlib.h>

/* ------------------------------------------------------------------ collecting parts */

#define MAX_PARTS 8

typedef struct collected {
    size_t n;
    char type[MAX_PARTS][128];
    char location[MAX_PARTS][128];
    char folded[MAX_PARTS][128];
    size_t nheaders[MAX_PARTS];
    uint8_t *data[MAX_PARTS];
    size_t len[MAX_PARTS];
    int ends;
    int stop_after; /* data calls before refusing (0: never) */
    int calls;
} collected;

static bool on_begin(void *ctx, const mira__part_headers *h)
{
    collected *c = ctx;
    if (c->n == MAX_PARTS)
        return false;
    const char *t = mira__part_header(h, "content-type");
    const char *l = mira__part_header(h, "content-location");
    snprintf(c->type[c->n], sizeof c->type[0], "%s", t ? t : "");
    snprintf(c->location[c->n], sizeof c->location[0], "%s", l ? l : "");
    const char *f = mira__part_header(h, "x-folded");
    snprintf(c->folded[c->n], sizeof c->folded[0], "%s", f ? f : "");
    c->nheaders[c->n] = h->n;
    c->n++;
    return true;
}

static bool on_data(void *ctx, const uint8_t *p, size_t n)
{
    collected *c = ctx;
    CHECK(n > 0);
    if (c->stop_after && ++c->calls >= c->stop_after)
        return false;
    size_t i = c->n - 1;
    c->data[i] = realloc(c->data[i], c->len[i] + n);
    memcpy(c->data[i] + c->len[i], p, n);
    c->len[i] += n;
    return true;
}

static bool on_end(void *ctx)
{
    ((collected *)ctx)->ends++;
    return true;
}

static const mira__multipart_cb cbs = {on_begin, on_data, on_end};

static void clear(collected *c)
{
    for (size_t i = 0; i < MAX_PARTS; i++)
        free(c->data[i]);
    memset(c, 0, sizeof *c);
}

/* Parse body (len bytes) fed in pieces of step bytes (0: all at once). */
static bool parse(const char *boundary, const void *body, size_t len, size_t step, collected *c,
                  char *err, size_t errn)
{
    clear(c);
    mira__multipart *m = mira__multipart_new(boundary, &cbs, c, 256, 0);
    CHECK(m != NULL);
    if (!m)
        return false;
    const uint8_t *p = body;
    bool ok = true;
    for (size_t off = 0; off < len && ok;) {
        size_t n = step && len - off > step ? step : len - off;
        ok = mira__multipart_feed(m, p + off, n);
        off += n;
    }
    ok = ok && mira__multipart_finish(m);
    snprintf(err, errn, "%s", mira__multipart_error(m));
    mira__multipart_free(m);
    return ok;
}

static bool same(const collected *c, size_t i, const void *want, size_t n)
{
    return i < c->n && c->len[i] == n && (n == 0 || memcmp(c->data[i], want, n) == 0);
}

/* ------------------------------------------------------------------ media types */

TEST(media_type)
{
    mira__media_type m;
    char why[128];
    CHECK(mira__media_type_parse(
        "Multipart/Related; type=\"application/dicom\"; BOUNDARY=\"a b:c\\\"d\"", &m, why,
        sizeof why));
    CHECK_EQ_STR(m.type, "multipart");
    CHECK_EQ_STR(m.subtype, "related");
    CHECK_EQ_STR(mira__media_type_param(&m, "type"), "application/dicom");
    CHECK_EQ_STR(mira__media_type_param(&m, "boundary"), "a b:c\"d");
    CHECK(mira__media_type_param(&m, "start") == NULL);
    CHECK(mira__media_type_parse("application/dicom+json;charset=utf-8 ;;", &m, why, sizeof why));
    CHECK_EQ_STR(m.subtype, "dicom+json");
    CHECK_EQ_STR(mira__media_type_param(&m, "charset"), "utf-8");

    const char *bad[] = {"", "multipart", "multipart/", "/related", "multipart/related x",
                         "multipart/related; boundary", "multipart/related; boundary=\"abc",
                         "multipart/related; boundary=a; boundary=b", "a b/c",
                         "multipart/related; boundary=a\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        CHECK(!mira__media_type_parse(bad[i], &m, why, sizeof why));
        CHECK(why[0] != 0);
    }
}

TEST(boundary_rules)
{
    CHECK(mira__boundary_valid("simple"));
    CHECK(mira__boundary_valid("with space inside"));
    CHECK(mira__boundary_valid("'()+_,-./:=?"));
    char seventy[71], seventy_one[72];
    memset(seventy, 'x', 70);
    seventy[70] = 0;
    memset(seventy_one, 'x', 71);
    seventy_one[71] = 0;
    CHECK(mira__boundary_valid(seventy));
    CHECK(!mira__boundary_valid(seventy_one));
    CHECK(!mira__boundary_valid(""));
    CHECK(!mira__boundary_valid(NULL));
    CHECK(!mira__boundary_valid("ends in space "));
    CHECK(!mira__boundary_valid("semi;colon"));
    CHECK(!mira__boundary_valid("quote\""));
    CHECK(mira__multipart_new("bad\"", &cbs, NULL, 0, 0) == NULL);
}

/* ------------------------------------------------------------------ bodies */

static const char two_parts[] =
    "This is the preamble, ignored.\r\n"
    "--XyZ\r\n"
    "Content-Type: application/dicom\r\n"
    "Content-Location: /a\r\n"
    "\r\n"
    "first\r\n--Xy is not a boundary, --XyZ is not after a CRLF\r\n-XyZ nor this\r\n\r\n-\r\n"
    "--XyZ   \t\r\n" /* transport padding after the boundary */
    "content-type:   application/dicom+json  \r\n"
    "X-Folded: one\r\n"
    " two\r\n"
    "\r\n"
    "{}\r\n"
    "--XyZ--\r\n"
    "the epilogue, ignored, even --XyZ\r\n";

TEST(two_parts_every_split)
{
    collected c;
    memset(&c, 0, sizeof c);
    char err[160];
    size_t len = sizeof two_parts - 1;
    for (size_t step = 0; step <= len; step++) {
        CHECK(parse("XyZ", two_parts, len, step, &c, err, sizeof err));
        CHECK_EQ_INT(c.n, 2);
        CHECK_EQ_INT(c.ends, 2);
        CHECK_EQ_STR(c.type[0], "application/dicom");
        CHECK_EQ_STR(c.location[0], "/a");
        CHECK_EQ_STR(c.type[1], "application/dicom+json");
        CHECK_EQ_INT(c.nheaders[1], 2);
        CHECK_EQ_STR(c.folded[1], "one two");
        const char first[] =
            "first\r\n--Xy is not a boundary, --XyZ is not after a CRLF\r\n-XyZ nor this\r\n\r\n-";
        CHECK(same(&c, 0, first, sizeof first - 1));
        CHECK(same(&c, 1, "{}", 2));
    }
    clear(&c);
}

TEST(folded_header_and_empty_parts)
{
    static const char body[] = "--b\r\n"
                               "\r\n" /* no headers at all */
                               "\r\n--b\r\n"
                               "X-Folded: one\r\n"
                               "\t two\r\n"
                               "\r\n"
                               "\r\n--b--";
    collected c;
    memset(&c, 0, sizeof c);
    char err[160];
    CHECK(parse("b", body, sizeof body - 1, 0, &c, err, sizeof err));
    CHECK_EQ_INT(c.n, 2);
    CHECK_EQ_INT(c.nheaders[0], 0);
    CHECK_EQ_STR(c.folded[1], "one two");
    CHECK(same(&c, 0, "", 0));
    CHECK(same(&c, 1, "", 0));
    CHECK_EQ_INT(c.ends, 2);
    clear(&c);
}

TEST(malformed_bodies)
{
    struct {
        const char *body, *why;
    } cases[] = {
        {"no boundary at all", "no boundary in the body"},
        {"--b\r\nContent-Type: x\r\n\r\ndata, and the body ends", "before its closing boundary"},
        {"--b\r\nContent-Type: x\r\n\r\ndata\r\n--b", "before its closing boundary"},
        /* a boundary's text may not go on (RFC 2046: no part holds a delimiter) */
        {"--bX\r\n\r\n\r\n--b--", "followed by something other than CRLF"},
        {"--b junk\r\n\r\n\r\n--b--", "followed by something other than CRLF"},
        {"--b\r\nno colon here\r\n\r\n\r\n--b--", "not name: value"},
        {"--b\r\n: no name\r\n\r\n\r\n--b--", "not name: value"},
        {"--b\r\n continued first\r\n\r\n\r\n--b--", "continuation line"},
        {"--b\r\nBad Name: x\r\n\r\n\r\n--b--", "not a token"},
        {"--b\r\n-x\r\n\r\n\r\n--b--", "not name: value"},
        {"--b\r\n\r\ndata\r\n--b-x", "followed by something other than CRLF"},
        {"--b\r\n\r\ndata\r\n--b\rx", "followed by something other than CRLF"},
    };
    collected c;
    memset(&c, 0, sizeof c);
    char err[160];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (size_t step = 0; step < 4; step++) {
            CHECK(!parse("b", cases[i].body, strlen(cases[i].body), step, &c, err, sizeof err));
            if (!strstr(err, cases[i].why))
                fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err, cases[i].why);
            CHECK(strstr(err, cases[i].why) != NULL);
        }
    }
    /* headers beyond the bound (256 in parse) */
    char big[600];
    int k = snprintf(big, sizeof big, "--b\r\nX-Long: ");
    memset(big + k, 'a', 400);
    memcpy(big + k + 400, "\r\n\r\n\r\n--b--", 12);
    CHECK(!parse("b", big, (size_t)k + 412, 0, &c, err, sizeof err));
    CHECK(strstr(err, "too long") != NULL);
    clear(&c);
}

TEST(limits_and_stopping)
{
    static const char body[] = "--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b\r\n\r\nz\r\n--b--";
    collected c;
    memset(&c, 0, sizeof c);
    mira__multipart *m = mira__multipart_new("b", &cbs, &c, 0, 2);
    CHECK(!mira__multipart_feed(m, (const uint8_t *)body, sizeof body - 1));
    CHECK(strstr(mira__multipart_error(m), "too many parts") != NULL);
    CHECK_EQ_INT(mira__multipart_parts(m), 3);
    /* a failed parser stays failed */
    CHECK(!mira__multipart_feed(m, (const uint8_t *)"--b--", 5));
    CHECK(!mira__multipart_finish(m));
    mira__multipart_free(m);
    clear(&c);

    c.stop_after = 2;
    m = mira__multipart_new("b", &cbs, &c, 0, 0);
    CHECK(!mira__multipart_feed(m, (const uint8_t *)body, sizeof body - 1));
    CHECK_EQ_STR(mira__multipart_error(m), "stopped");
    mira__multipart_free(m);
    clear(&c);
}

/* ------------------------------------------------------------------ curl's body */

static uint8_t *slurp(const char *rel, size_t *len)
{
    FILE *f = fopen(mira_test_data(rel), "rb");
    CHECK(f != NULL);
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    CHECK(fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

TEST(curl_form_data)
{
    /* a body another implementation made (tests/data/web/README.md), parsed in every
     * split of a few sizes: the parts must be curl's input files, byte for byte */
    size_t tl, bl, l1, l2;
    uint8_t *type = slurp("web/curl-form.type", &tl), *body = slurp("web/curl-form.body", &bl);
    uint8_t *p1 = slurp("web/curl-form.part1", &l1), *p2 = slurp("web/curl-form.part2", &l2);
    if (!type || !body || !p1 || !p2)
        return;
    while (tl && (type[tl - 1] == '\n' || type[tl - 1] == '\r'))
        type[--tl] = 0;
    mira__media_type mt;
    char why[128];
    CHECK(mira__media_type_parse((const char *)type, &mt, why, sizeof why));
    CHECK_EQ_STR(mt.subtype, "form-data");
    const char *boundary = mira__media_type_param(&mt, "boundary");
    CHECK(boundary && mira__boundary_valid(boundary));
    collected c;
    memset(&c, 0, sizeof c);
    char err[160];
    size_t steps[] = {0, 1, 2, 3, 7, 64, 1000, 4096};
    for (size_t i = 0; boundary && i < sizeof steps / sizeof *steps; i++) {
        CHECK(parse(boundary, body, bl, steps[i], &c, err, sizeof err));
        CHECK_EQ_INT(c.n, 2);
        CHECK_EQ_STR(c.type[0], "application/dicom");
        CHECK_EQ_STR(c.type[1], "application/dicom+json");
        CHECK(same(&c, 0, p1, l1));
        CHECK(same(&c, 1, p2, l2));
    }
    clear(&c);
    free(type);
    free(body);
    free(p1);
    free(p2);
}
