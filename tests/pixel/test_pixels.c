/* Unit tests of src/pixel/pixels.c: attributes, frames in fragments, value fixing, parallel. */
#include "harness.h"

#include "core/parallel.h"
#include "pixel/pixels_int.h"

#include <stdatomic.h>

static void put_us(mira_dataset *ds, mira_tag tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    CHECK(mira_dataset_set_bytes(ds, tag, MIRA_VR_US, b, 2, NULL) != NULL);
}

/* A 2x2 8-bit MONOCHROME2 image description with `frames` frames. */
static mira_dataset *image(unsigned frames)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    put_us(ds, 0x00280010, 2);
    put_us(ds, 0x00280011, 2);
    put_us(ds, 0x00280002, 1);
    put_us(ds, 0x00280100, 8);
    put_us(ds, 0x00280101, 8);
    put_us(ds, 0x00280102, 7);
    put_us(ds, 0x00280103, 0);
    mira_dataset_set_string(ds, 0x00280004, MIRA_VR_CS, "MONOCHROME2", NULL);
    char n[16];
    snprintf(n, sizeof n, "%u", frames);
    mira_dataset_set_string(ds, 0x00280008, MIRA_VR_IS, n, NULL);
    return ds;
}

static void frame_of(mira_pixels *px, uint32_t f, const char *expect)
{
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
    CHECK(mira__pixels_frame_bytes(px, f, &data, &len, &owned, NULL));
    CHECK_EQ_INT(len, strlen(expect));
    CHECK(memcmp(data, expect, len) == 0);
    mira_free(owned);
}

TEST(frames_from_basic_offset_table)
{
    mira_dataset *ds = image(2);
    mira_element *e = mira_dataset_set_encapsulated(ds, 0x7FE00010, NULL);
    /* frame 1 = fragments "ab" + "cd", frame 2 = "ef": offsets 0 and 2 * (8 + 2) */
    uint8_t bot[8] = {0, 0, 0, 0, 20, 0, 0, 0};
    CHECK(mira_element_add_fragment(e, bot, 8, true, NULL));
    CHECK(mira_element_add_fragment(e, "ab", 2, false, NULL));
    CHECK(mira_element_add_fragment(e, "cd", 2, false, NULL));
    CHECK(mira_element_add_fragment(e, "ef", 2, false, NULL));
    mira_pixels *px = mira_pixels_open(ds, MIRA_TS_RLE, NULL);
    if (px) { /* the RLE codec is linked: map frames */
        frame_of(px, 0, "abcd");
        frame_of(px, 1, "ef");
        mira_pixels_free(px);
    }
    mira_dataset_free(ds);
    /* an offset in the middle of a fragment is an error naming the frame */
    ds = image(2);
    e = mira_dataset_set_encapsulated(ds, 0x7FE00010, NULL);
    uint8_t bad[8] = {0, 0, 0, 0, 21, 0, 0, 0};
    CHECK(mira_element_add_fragment(e, bad, 8, true, NULL));
    CHECK(mira_element_add_fragment(e, "ab", 2, false, NULL));
    CHECK(mira_element_add_fragment(e, "cd", 2, false, NULL));
    CHECK(mira_element_add_fragment(e, "ef", 2, false, NULL));
    mira_error *err = NULL;
    px = mira_pixels_open(ds, MIRA_TS_RLE, &err);
    CHECK(px == NULL);
    if (err && mira__codec_find(MIRA_TS_RLE))
        CHECK(strstr(mira_error_get_message(err), "frame 2 at offset 21") != NULL);
    mira_error_free(err);
    mira_dataset_free(ds);
}

TEST(frames_found_by_markers_without_offsets)
{
    if (!mira__codec_find(MIRA_TS_JPEGLS_LOSSLESS))
        return;
    mira_dataset *ds = image(2);
    mira_element *e = mira_dataset_set_encapsulated(ds, 0x7FE00010, NULL);
    CHECK(mira_element_add_fragment(e, "\xFF\xD8xy", 4, false, NULL));
    CHECK(mira_element_add_fragment(e, "zw", 2, false, NULL));
    CHECK(mira_element_add_fragment(e, "\xFF\xD8uv", 4, false, NULL));
    mira_pixels *px = mira_pixels_open(ds, MIRA_TS_JPEGLS_LOSSLESS, NULL);
    CHECK(px != NULL);
    if (px) {
        frame_of(px, 0, "\xFF\xD8xyzw");
        frame_of(px, 1, "\xFF\xD8uv");
        mira_pixels_free(px);
    }
    /* three codestream starts for two frames: refused */
    CHECK(mira_element_add_fragment(e, "\xFF\xD8st", 4, false, NULL));
    mira_error *err = NULL;
    CHECK(mira_pixels_open(ds, MIRA_TS_JPEGLS_LOSSLESS, &err) == NULL);
    mira_error_free(err);
    mira_dataset_free(ds);
}

TEST(frames_from_extended_offset_table)
{
    if (!mira__codec_find(MIRA_TS_JPEGLS_LOSSLESS))
        return;
    mira_dataset *ds = image(2);
    mira_element *e = mira_dataset_set_encapsulated(ds, 0x7FE00010, NULL);
    CHECK(mira_element_add_fragment(e, "abcd", 4, false, NULL));
    CHECK(mira_element_add_fragment(e, "efgh", 4, false, NULL));
    uint8_t off[16] = {0}, len[16] = {0};
    off[8] = 12; /* second fragment's item header */
    len[0] = 3;  /* frame lengths exclude the fragment's padding */
    len[8] = 4;
    mira_dataset_set_bytes(ds, 0x7FE00001, MIRA_VR_OV, off, 16, NULL);
    mira_dataset_set_bytes(ds, 0x7FE00002, MIRA_VR_OV, len, 16, NULL);
    mira_pixels *px = mira_pixels_open(ds, MIRA_TS_JPEGLS_LOSSLESS, NULL);
    CHECK(px != NULL);
    if (px) {
        frame_of(px, 0, "abc");
        frame_of(px, 1, "efgh");
        mira_pixels_free(px);
    }
    mira_dataset_free(ds);
}

TEST(attribute_errors)
{
    mira_dataset *ds = image(1);
    uint8_t px4[4] = {1, 2, 3, 4};
    mira_dataset_set_bytes(ds, 0x7FE00010, MIRA_VR_OB, px4, 4, NULL);
    mira_pixels *px = mira_pixels_open(ds, MIRA_TS_EXPLICIT_LE, NULL);
    CHECK(px != NULL);
    mira_pixels_free(px);
    struct {
        mira_tag tag;
        uint16_t v;
        const char *msg;
    } cases[] = {
        {0x00280100, 12, "Bits Allocated is 12"},
        {0x00280101, 9, "Bits Stored 9 and High Bit 7 do not fit Bits Allocated 8"},
        {0x00280002, 2, "Samples per Pixel is 2"},
        {0x00280010, 0, "empty"},
        {0x00280010, 3, "Pixel Data has 4 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mira_dataset *d2 = image(1);
        mira_dataset_set_bytes(d2, 0x7FE00010, MIRA_VR_OB, px4, 4, NULL);
        put_us(d2, cases[i].tag, cases[i].v);
        mira_error *err = NULL;
        CHECK(mira_pixels_open(d2, MIRA_TS_EXPLICIT_LE, &err) == NULL);
        CHECK(err && strstr(mira_error_get_message(err), cases[i].msg));
        if (err && !strstr(mira_error_get_message(err), cases[i].msg))
            fprintf(stderr, "  got: %s\n", mira_error_get_message(err));
        mira_error_free(err);
        mira_dataset_free(d2);
    }
    mira_dataset_free(ds);
}

TEST(fix_values_masks_and_sign_extends)
{
    mira_pixel_desc d = {.rows = 1, .columns = 3, .frames = 1, .samples = 1,
                         .bits_allocated = 16, .bits_stored = 12, .high_bit = 11,
                         .is_signed = true, .photometric = MIRA_PHOTO_MONOCHROME2};
    /* 0xF800 (junk above bit 11) + 0x0800 -> -2048; 0x07FF -> 2047; 0x1001 -> 1 */
    uint8_t v[6] = {0x00, 0xF8, 0xFF, 0x07, 0x01, 0x10};
    mira__pixel_fix_values(v, 3, &d);
    int16_t out[3];
    memcpy(out, v, 6);
    CHECK_EQ_INT(out[0], -2048);
    CHECK_EQ_INT(out[1], 2047);
    CHECK_EQ_INT(out[2], 1);
    /* High Bit above Bits Stored - 1: values are shifted down */
    d.is_signed = false;
    d.bits_stored = 8;
    d.high_bit = 11;
    uint8_t w[2] = {0x50, 0xFA}; /* 0xFA50: bits 11..4 = 0xA5 */
    mira__pixel_fix_values(w, 1, &d);
    CHECK_EQ_INT(w[0] | w[1] << 8, 0xA5);
}

static atomic_int hits[1000];

static bool count_hit(void *ctx, size_t i)
{
    (void)ctx;
    atomic_fetch_add(&hits[i], 1);
    return i != 5000; /* never stops */
}

static bool stop_at_3(void *ctx, size_t i)
{
    (void)ctx;
    return i != 3;
}

TEST(parallel_for_runs_each_item_once)
{
    for (int t = 0; t <= 4; t++) {
        for (int i = 0; i < 1000; i++)
            atomic_store(&hits[i], 0);
        CHECK(mira__parallel_for(1000, t, count_hit, NULL));
        int bad = 0;
        for (int i = 0; i < 1000; i++)
            bad += atomic_load(&hits[i]) != 1;
        CHECK_EQ_INT(bad, 0);
    }
    CHECK(!mira__parallel_for(10, 2, stop_at_3, NULL));
    CHECK(mira__parallel_for(0, 2, stop_at_3, NULL));
}
