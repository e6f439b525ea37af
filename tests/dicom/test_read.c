/* Tests of the data set reader and writer on byte streams built by hand from PS3.5's rules. */
#include "harness.h"

#include <mira/mira.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ a tiny encoder */

typedef struct bytes {
    uint8_t d[8192];
    size_t n;
} bytes;

static void b16(bytes *b, uint16_t v, bool be)
{
    b->d[b->n++] = be ? (uint8_t)(v >> 8) : (uint8_t)v;
    b->d[b->n++] = be ? (uint8_t)v : (uint8_t)(v >> 8);
}

static void b32(bytes *b, uint32_t v, bool be)
{
    if (be) {
        b16(b, (uint16_t)(v >> 16), true);
        b16(b, (uint16_t)v, true);
    } else {
        b16(b, (uint16_t)v, false);
        b16(b, (uint16_t)(v >> 16), false);
    }
}

static void raw(bytes *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

/* An explicit VR element with a short or long header as the VR requires. */
static void ex(bytes *b, uint16_t g, uint16_t e, const char *vr, const void *v, uint32_t len,
               bool be)
{
    b16(b, g, be);
    b16(b, e, be);
    raw(b, vr, 2);
    if (mira_vr_has_long_length(mira_vr_from_string(vr))) {
        b16(b, 0, be);
        b32(b, len, be);
    } else {
        b16(b, (uint16_t)len, be);
    }
    if (v && len != 0xFFFFFFFFu)
        raw(b, v, len);
}

static void im(bytes *b, uint16_t g, uint16_t e, const void *v, uint32_t len)
{
    b16(b, g, false);
    b16(b, e, false);
    b32(b, len, false);
    if (v && len != 0xFFFFFFFFu)
        raw(b, v, len);
}

static void part10_header(bytes *b, const char *ts)
{
    memset(b->d, 0, 128);
    b->n = 128;
    raw(b, "DICM", 4);
    size_t tslen = strlen(ts) + (strlen(ts) & 1);
    /* the required meta elements (PS3.10 7.1), so that the file is well-formed */
    uint32_t glen = (12 + 2) + (8 + 26) + (8 + 8) + (8 + (uint32_t)tslen) + (8 + 8);
    ex(b, 0x0002, 0x0000, "UL", NULL, 4, false);
    b32(b, glen, false);
    ex(b, 0x0002, 0x0001, "OB", "\0\1", 2, false);
    ex(b, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7\0", 26, false);
    ex(b, 0x0002, 0x0003, "UI", "1.2.3.4\0", 8, false);
    char padded[80] = {0};
    memcpy(padded, ts, strlen(ts));
    ex(b, 0x0002, 0x0010, "UI", padded, (uint32_t)tslen, false);
    ex(b, 0x0002, 0x0012, "UI", "1.2.3.5\0", 8, false);
}

static mira_file *read_bytes(const bytes *b, mira_error **err)
{
    return mira_file_read_memory(b->d, b->n, NULL, false, err);
}

static char *str_of(const mira_dataset *ds, mira_tag t, size_t i)
{
    mira_element *e = mira_dataset_get(ds, t);
    return e ? mira_element_get_string(e, i, NULL) : NULL;
}

/* ------------------------------------------------------------------ tests */

TEST(explicit_le_values_and_sequences)
{
    bytes b = {.n = 0};
    part10_header(&b, MIRA_TS_EXPLICIT_LE);
    ex(&b, 0x0008, 0x0005, "CS", "ISO_IR 100", 10, false);
    ex(&b, 0x0008, 0x0060, "CS", "CT", 2, false);
    /* ReferencedImageSequence, undefined length, one undefined-length item */
    ex(&b, 0x0008, 0x1140, "SQ", NULL, 0xFFFFFFFFu, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 0xFFFFFFFFu, false);
    ex(&b, 0x0008, 0x1150, "UI", "1.2.3\0", 6, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE00D, false); b32(&b, 0, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE0DD, false); b32(&b, 0, false);
    ex(&b, 0x0010, 0x0010, "PN", "M\xfcller^Hans ", 12, false);
    ex(&b, 0x0018, 0x0050, "DS", " 2.5\\3 ", 6, false);
    uint16_t rows = 512;
    ex(&b, 0x0028, 0x0010, "US", &rows, 2, false);
    uint8_t px[8] = {1, 0, 2, 0, 3, 0, 4, 0};
    ex(&b, 0x7FE0, 0x0010, "OW", px, 8, false);

    mira_error *err = NULL;
    mira_file *f = read_bytes(&b, &err);
    CHECK(f != NULL);
    if (!f) {
        fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    CHECK_EQ_STR(mira_file_transfer_syntax(f), MIRA_TS_EXPLICIT_LE);
    CHECK(mira_file_has_preamble(f));
    mira_dataset *ds = mira_file_dataset(f);
    CHECK_EQ_INT(mira_dataset_count(ds), 7);
    char *s = str_of(ds, MIRA_TAG(0x0010, 0x0010), 0);
    CHECK_EQ_STR(s, "M\xc3\xbcller^Hans"); /* Latin-1 u-umlaut becomes UTF-8 */
    mira_free(s);
    double d = 0;
    CHECK(mira_element_get_double(mira_dataset_get(ds, MIRA_TAG(0x0018, 0x0050)), 1, &d, NULL));
    CHECK(d == 3.0);
    uint64_t u = 0;
    CHECK(mira_element_get_uint(mira_dataset_get(ds, MIRA_TAG(0x0028, 0x0010)), 0, &u, NULL));
    CHECK_EQ_INT(u, 512);
    mira_element *seq = mira_dataset_get(ds, MIRA_TAG(0x0008, 0x1140));
    CHECK(seq && mira_element_vr(seq) == MIRA_VR_SQ);
    CHECK_EQ_INT(mira_element_item_count(seq), 1);
    s = str_of(mira_element_item(seq, 0), MIRA_TAG(0x0008, 0x1150), 0);
    CHECK_EQ_STR(s, "1.2.3");
    mira_free(s);
    /* items inherit the character set */
    CHECK_EQ_STR(mira_dataset_charset(mira_element_item(seq, 0)), "ISO_IR 100");

    /* same-syntax writing reproduces the bytes exactly */
    uint8_t *out;
    size_t out_len;
    CHECK(mira_file_write_memory(f, NULL, &out, &out_len, NULL));
    CHECK_EQ_INT(out_len, b.n);
    CHECK(memcmp(out, b.d, b.n) == 0);
    mira_free(out);

    /* to big endian and back gives the same bytes too */
    CHECK(mira_file_write_memory(f, MIRA_TS_EXPLICIT_BE, &out, &out_len, NULL));
    mira_file *g = mira_file_read_memory(out, out_len, NULL, false, NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK(mira_dataset_is_big_endian(mira_file_dataset(g)));
        CHECK(mira_element_get_uint(mira_dataset_get(mira_file_dataset(g), MIRA_TAG(0x0028, 0x0010)),
                                    0, &u, NULL));
        CHECK_EQ_INT(u, 512);
        uint8_t *back;
        size_t back_len;
        CHECK(mira_file_write_memory(g, MIRA_TS_EXPLICIT_LE, &back, &back_len, NULL));
        CHECK_EQ_INT(back_len, b.n);
        CHECK(memcmp(back, b.d, b.n) == 0);
        mira_free(back);
        mira_file_free(g);
    }
    mira_free(out);
    mira_file_free(f);
}

TEST(implicit_raw_dataset_uses_dictionary_vrs)
{
    bytes b = {.n = 0};
    im(&b, 0x0008, 0x0060, "MR", 2);
    im(&b, 0x0010, 0x0010, "Doe^Jane", 8);
    uint16_t cols = 256;
    im(&b, 0x0028, 0x0011, &cols, 2);
    im(&b, 0x0029, 0x0010, "ACME 1.0", 8); /* private creator */
    im(&b, 0x0029, 0x1001, "ab", 2);       /* unknown private: UN */
    mira_read_options o;
    mira_read_options_init(&o);
    o.raw = true;
    o.transfer_syntax = MIRA_TS_IMPLICIT_LE;
    mira_file *f = mira_file_read_memory(b.d, b.n, &o, false, NULL);
    CHECK(f != NULL);
    if (!f)
        return;
    mira_dataset *ds = mira_file_dataset(f);
    CHECK(mira_element_vr(mira_dataset_get(ds, MIRA_TAG(0x0010, 0x0010))) == MIRA_VR_PN);
    CHECK(mira_element_vr(mira_dataset_get(ds, MIRA_TAG(0x0028, 0x0011))) == MIRA_VR_US);
    CHECK(mira_element_vr(mira_dataset_get(ds, MIRA_TAG(0x0029, 0x0010))) == MIRA_VR_LO);
    CHECK(mira_element_vr(mira_dataset_get(ds, MIRA_TAG(0x0029, 0x1001))) == MIRA_VR_UN);
    CHECK_EQ_STR(mira_dataset_private_creator(ds, MIRA_TAG(0x0029, 0x1001)), "ACME 1.0");
    mira_file_free(f);
}

TEST(un_of_undefined_length_is_an_implicit_sequence)
{
    bytes b = {.n = 0};
    part10_header(&b, MIRA_TS_EXPLICIT_LE);
    /* (0008,1140) written as UN, undefined length, items in implicit VR LE (PS3.5 6.2.2) */
    ex(&b, 0x0008, 0x1140, "UN", NULL, 0xFFFFFFFFu, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 0xFFFFFFFFu, false);
    im(&b, 0x0008, 0x1155, "1.2.840.1", 10);
    b16(&b, 0xFFFE, false); b16(&b, 0xE00D, false); b32(&b, 0, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE0DD, false); b32(&b, 0, false);
    mira_error *err = NULL;
    mira_file *f = read_bytes(&b, &err);
    CHECK(f != NULL);
    if (!f) {
        fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    mira_element *seq = mira_dataset_get(mira_file_dataset(f), MIRA_TAG(0x0008, 0x1140));
    CHECK(mira_element_vr(seq) == MIRA_VR_SQ);
    CHECK(mira_element_vr_on_disk(seq) == MIRA_VR_UN);
    CHECK_EQ_INT(mira_element_item_count(seq), 1);
    char *s = str_of(mira_element_item(seq, 0), MIRA_TAG(0x0008, 0x1155), 0);
    CHECK_EQ_STR(s, "1.2.840.1");
    mira_free(s);
    uint8_t *out;
    size_t out_len;
    CHECK(mira_file_write_memory(f, NULL, &out, &out_len, NULL));
    CHECK(out_len == b.n && memcmp(out, b.d, b.n) == 0);
    mira_free(out);
    mira_file_free(f);
}

TEST(encapsulated_fragments_and_stop_before_pixels)
{
    bytes b = {.n = 0};
    part10_header(&b, "1.2.840.10008.1.2.5"); /* RLE Lossless */
    ex(&b, 0x0028, 0x0010, "US", "\x02\x00", 2, false);
    ex(&b, 0x7FE0, 0x0010, "OB", NULL, 0xFFFFFFFFu, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 4, false);
    b32(&b, 0, false); /* offset table: one frame at 0 */
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 4, false);
    raw(&b, "abcd", 4);
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 2, false);
    raw(&b, "ef", 2);
    b16(&b, 0xFFFE, false); b16(&b, 0xE0DD, false); b32(&b, 0, false);
    mira_file *f = read_bytes(&b, NULL);
    CHECK(f != NULL);
    if (!f)
        return;
    mira_element *px = mira_dataset_get(mira_file_dataset(f), MIRA_TAG_PIXEL_DATA);
    CHECK(px && mira_element_is_encapsulated(px));
    CHECK_EQ_INT(mira_element_fragment_count(px), 2);
    size_t n;
    const uint8_t *frag = mira_element_fragment(px, 1, &n);
    CHECK(n == 2 && memcmp(frag, "ef", 2) == 0);
    mira_element_offset_table(px, &n);
    CHECK_EQ_INT(n, 4);
    uint8_t *out;
    size_t out_len;
    CHECK(mira_file_write_memory(f, NULL, &out, &out_len, NULL));
    CHECK(out_len == b.n && memcmp(out, b.d, b.n) == 0);
    mira_free(out);
    /* compressed pixel data cannot silently become native */
    mira_error *err = NULL;
    CHECK(!mira_file_write_memory(f, MIRA_TS_EXPLICIT_LE, &out, &out_len, &err));
    CHECK(mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED);
    mira_error_free(err);
    mira_file_free(f);

    mira_read_options o;
    mira_read_options_init(&o);
    o.stop_before_pixels = true;
    f = mira_file_read_memory(b.d, b.n, &o, false, NULL);
    CHECK(f && mira_dataset_get(mira_file_dataset(f), MIRA_TAG_PIXEL_DATA) == NULL);
    CHECK(f && mira_dataset_count(mira_file_dataset(f)) == 1);
    mira_file_free(f);
}

TEST(truncated_value_names_offset)
{
    bytes b = {.n = 0};
    part10_header(&b, MIRA_TS_EXPLICIT_LE);
    size_t at = b.n;
    ex(&b, 0x0010, 0x0010, "PN", "Doe^John", 8, false);
    b.n -= 3; /* cut the value short */
    mira_error *err = NULL;
    mira_file *f = read_bytes(&b, &err);
    CHECK(f == NULL);
    CHECK(mira_error_get_code(err) == MIRA_ERR_INVALID);
    char expect[64];
    snprintf(expect, sizeof expect, "offset %zu", at);
    CHECK(strstr(mira_error_get_message(err), expect) != NULL);
    CHECK(strstr(mira_error_get_message(err), "(0010,0010)") != NULL);
    mira_error_free(err);
}

TEST(deflated_round_trip)
{
    bytes b = {.n = 0};
    part10_header(&b, MIRA_TS_EXPLICIT_LE);
    ex(&b, 0x0010, 0x0010, "PN", "Doe^John", 8, false);
    ex(&b, 0x0010, 0x0020, "LO", "12345678", 8, false);
    mira_file *f = read_bytes(&b, NULL);
    CHECK(f != NULL);
    if (!f)
        return;
    uint8_t *out;
    size_t out_len;
    CHECK(mira_file_write_memory(f, MIRA_TS_DEFLATED_LE, &out, &out_len, NULL));
    mira_file *g = mira_file_read_memory(out, out_len, NULL, false, NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_STR(mira_file_transfer_syntax(g), MIRA_TS_DEFLATED_LE);
        char *s = str_of(mira_file_dataset(g), MIRA_TAG(0x0010, 0x0020), 0);
        CHECK_EQ_STR(s, "12345678");
        mira_free(s);
        mira_file_free(g);
    }
    mira_free(out);
    mira_file_free(f);
}

TEST(build_a_dataset_and_write_it)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    CHECK(mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0016), MIRA_VR_UI, "1.2.840.10008.5.1.4.1.1.7", NULL));
    CHECK(mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0018), MIRA_VR_UI, "1.2.3.4", NULL));
    CHECK(mira_dataset_set_string(ds, MIRA_TAG(0x0010, 0x0010), MIRA_VR_PN, "Roe^Richard", NULL));
    mira_element *seq = mira_dataset_set_sequence(ds, MIRA_TAG(0x0008, 0x1140), NULL);
    mira_dataset *item = mira_element_add_item(seq, NULL);
    CHECK(mira_dataset_set_string(item, MIRA_TAG(0x0008, 0x1155), MIRA_VR_UI, "1.2.3.5", NULL));
    uint16_t v = 7;
    CHECK(mira_dataset_set_bytes(ds, MIRA_TAG(0x0028, 0x0010), MIRA_VR_US, &v, 2, NULL));
    CHECK(mira_dataset_remove(ds, MIRA_TAG(0x0028, 0x0010)));
    CHECK(!mira_dataset_remove(ds, MIRA_TAG(0x0028, 0x0010)));
    mira_file *f = mira_file_from_dataset(ds, MIRA_TS_IMPLICIT_LE, NULL);
    CHECK(f != NULL);
    uint8_t *out;
    size_t out_len;
    CHECK(mira_file_write_memory(f, NULL, &out, &out_len, NULL));
    mira_file *g = mira_file_read_memory(out, out_len, NULL, false, NULL);
    CHECK(g != NULL);
    if (g) {
        char *s = str_of(mira_file_meta(g), MIRA_TAG(0x0002, 0x0003), 0);
        CHECK_EQ_STR(s, "1.2.3.4");
        mira_free(s);
        mira_element *sq = mira_dataset_get(mira_file_dataset(g), MIRA_TAG(0x0008, 0x1140));
        CHECK(sq && mira_element_item_count(sq) == 1);
        CHECK_EQ_INT(mira_file_warning_count(g), 0);
        mira_file_free(g);
    }
    mira_free(out);
    mira_file_free(f);
}

TEST(allocation_failures_are_reported_not_crashes)
{
    bytes b = {.n = 0};
    part10_header(&b, MIRA_TS_EXPLICIT_LE);
    ex(&b, 0x0008, 0x0005, "CS", "ISO_IR 100", 10, false);
    ex(&b, 0x0008, 0x1140, "SQ", NULL, 0xFFFFFFFFu, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE000, false); b32(&b, 0xFFFFFFFFu, false);
    ex(&b, 0x0008, 0x1150, "UI", "1.2.3\0", 6, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE00D, false); b32(&b, 0, false);
    b16(&b, 0xFFFE, false); b16(&b, 0xE0DD, false); b32(&b, 0, false);
    ex(&b, 0x0010, 0x0010, "PN", "Doe^John", 8, false);
    int succeeded = 0;
    for (long n = 1; n < 200; n++) {
        mira_alloc_fail_after(n);
        mira_error *err = NULL;
        mira_file *f = read_bytes(&b, &err);
        uint8_t *out = NULL;
        size_t out_len;
        bool wrote = f && mira_file_write_memory(f, NULL, &out, &out_len, &err);
        mira_alloc_fail_after(0);
        if (wrote)
            succeeded++;
        else
            CHECK(mira_error_get_code(err) == MIRA_ERR_NOMEM);
        mira_error_free(err);
        mira_free(out);
        mira_file_free(f);
    }
    CHECK(succeeded > 0);
}
