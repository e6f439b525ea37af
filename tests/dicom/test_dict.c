/* Tests of the dictionary, private dictionary, tag parsing and UID registry (src/dicom/dict.c). */
#include "harness.h"

#include <mira/mira.h>

TEST(exact_lookup)
{
    const mira_dict_entry *e = mira_dict_find(MIRA_TAG(0x0010, 0x0010));
    CHECK(e != NULL);
    if (!e)
        return;
    CHECK_EQ_INT(e->tag, 0x00100010);
    CHECK_EQ_INT(e->mask, 0xFFFFFFFFu);
    CHECK_EQ_STR(e->vr, "PN");
    CHECK_EQ_STR(e->vm, "1");
    CHECK_EQ_STR(e->keyword, "PatientName");
    CHECK_EQ_STR(e->name, "Patient's Name");
    CHECK(!e->retired);
    CHECK_EQ_INT(mira_dict_entry_vr(e), MIRA_VR_PN);

    e = mira_dict_find(MIRA_TAG(0x0008, 0x0018));
    CHECK(e && strcmp(e->keyword, "SOPInstanceUID") == 0);
    e = mira_dict_find(MIRA_TAG(0x0002, 0x0000)); /* a group length that has its own entry */
    CHECK(e && strcmp(e->keyword, "FileMetaInformationGroupLength") == 0);
    e = mira_dict_find(MIRA_TAG(0x0008, 0x0040)); /* Data Set Type: retired */
    CHECK(e && e->retired && strcmp(e->keyword, "DataSetType") == 0);
    /* The first and the last tag of the table. */
    e = mira_dict_find(MIRA_TAG(0x0000, 0x0000));
    CHECK(e && strcmp(e->keyword, "CommandGroupLength") == 0);
    e = mira_dict_find(MIRA_TAG(0xFFFE, 0xE0DD));
    CHECK(e && strcmp(e->keyword, "SequenceDelimitationItem") == 0);
}

TEST(ambiguous_and_none_vrs)
{
    const mira_dict_entry *e = mira_dict_find(MIRA_TAG_PIXEL_DATA);
    CHECK(e && strcmp(e->vr, "OB or OW") == 0);
    CHECK_EQ_INT(mira_dict_entry_vr(e), MIRA_VR_OB);
    e = mira_dict_find(MIRA_TAG(0x0028, 0x0106)); /* SmallestImagePixelValue */
    CHECK(e && strcmp(e->vr, "US or SS") == 0);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x0028, 0x0106)), MIRA_VR_US);
    e = mira_dict_find(MIRA_TAG_ITEM);
    CHECK(e && strcmp(e->vr, "NONE") == 0 && strcmp(e->keyword, "Item") == 0);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG_ITEM), MIRA_VR_NONE);
    CHECK_EQ_INT(mira_dict_entry_vr(NULL), MIRA_VR_UN);
}

TEST(entries_without_keyword)
{
    const mira_dict_entry *e = mira_dict_find(MIRA_TAG(0x0018, 0x0061));
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_STR(e->keyword, "");
        CHECK(e->retired);
        CHECK_EQ_STR(e->vr, "DS");
    }
    CHECK(mira_dict_find_keyword("") == NULL);
}

TEST(repeating_groups)
{
    /* (60xx,3000) Overlay Data answers for every even group 6000-60FE. */
    const mira_dict_entry *e = mira_dict_find(0x60023000u);
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_STR(e->keyword, "OverlayData");
        CHECK_EQ_STR(e->vr, "OB or OW");
        CHECK_EQ_INT(e->tag, 0x60003000u);
        CHECK_EQ_INT(e->mask, 0xFF00FFFFu);
    }
    CHECK(mira_dict_find(0x60003000u) == e);
    CHECK(mira_dict_find(0x60FE3000u) == e);
    e = mira_dict_find(MIRA_TAG(0x6000, 0x0010));
    CHECK(e && strcmp(e->keyword, "OverlayRows") == 0 && strcmp(e->vr, "US") == 0);
    e = mira_dict_find(MIRA_TAG(0x5004, 0x0005));
    CHECK(e && strcmp(e->keyword, "CurveDimensions") == 0 && e->retired);
    e = mira_dict_find(MIRA_TAG(0x501E, 0x3000));
    CHECK(e && strcmp(e->keyword, "CurveData") == 0);
    /* Repeating elements: (0020,31xx) and (0028,04x2). */
    e = mira_dict_find(MIRA_TAG(0x0020, 0x3105));
    CHECK(e && strcmp(e->keyword, "SourceImageIDs") == 0);
    e = mira_dict_find(MIRA_TAG(0x0028, 0x0412));
    CHECK(e && strcmp(e->keyword, "CoefficientCoding") == 0);
    /* The exact entries win over a repeating pattern that also matches. */
    e = mira_dict_find(MIRA_TAG(0x0028, 0x0402));
    CHECK(e && strcmp(e->keyword, "NumberOfTransformSteps") == 0);
    e = mira_dict_find(MIRA_TAG_PIXEL_DATA);
    CHECK(e && strcmp(e->keyword, "PixelData") == 0);
    e = mira_dict_find(MIRA_TAG(0x7F02, 0x0010));
    CHECK(e && strcmp(e->keyword, "VariablePixelData") == 0);
    /* Odd groups are private, never a repeating group. */
    CHECK(mira_dict_find(0x60013000u) == NULL);
    CHECK(mira_dict_find(0x50010005u) == NULL);
}

TEST(group_length_and_private_creator)
{
    /* (gggg,0000) is a group length, UL, for any group without an entry of its own. */
    const mira_dict_entry *e = mira_dict_find(MIRA_TAG(0x0010, 0x0000));
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_STR(e->vr, "UL");
        CHECK_EQ_STR(e->vm, "1");
        CHECK_EQ_STR(e->name, "Group Length");
        CHECK_EQ_STR(e->keyword, "");
    }
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x0008, 0x0000)), MIRA_VR_UL);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x0029, 0x0000)), MIRA_VR_UL);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x6000, 0x0000)), MIRA_VR_UL);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x1010, 0x0000)), MIRA_VR_UL); /* not Zonal Map */
    /* (gggg,0010-00FF) of a private group reserves a block: Private Creator, LO. */
    e = mira_dict_find(MIRA_TAG(0x0029, 0x0010));
    CHECK(e && strcmp(e->keyword, "PrivateCreator") == 0 && strcmp(e->vr, "LO") == 0);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x0009, 0x00FF)), MIRA_VR_LO);
    CHECK(mira_dict_find(MIRA_TAG(0x0029, 0x000F)) == NULL);
    CHECK(mira_dict_find(MIRA_TAG(0x0029, 0x0100)) == NULL);
    CHECK(mira_dict_find(MIRA_TAG(0x0029, 0x1010)) == NULL);
    /* Groups 1-7 are not private (PS3.5 7.8.1): no creator there. */
    CHECK(mira_dict_find(MIRA_TAG(0x0007, 0x0010)) == NULL);
    CHECK(mira_dict_find_keyword("PrivateCreator") == NULL);
}

TEST(unknown_tags)
{
    CHECK(mira_dict_find(MIRA_TAG(0x0010, 0x9999)) == NULL);
    CHECK(mira_dict_find(MIRA_TAG(0x0009, 0x1001)) == NULL);
    CHECK(mira_dict_find(MIRA_TAG(0x6000, 0x9999)) == NULL);
    CHECK(mira_dict_find(0xFFFFFFFFu) == NULL);
    CHECK_EQ_INT(mira_dict_vr(MIRA_TAG(0x0010, 0x9999)), MIRA_VR_UN);
}

TEST(keyword_lookup)
{
    const mira_dict_entry *e = mira_dict_find_keyword("PatientName");
    CHECK(e && e->tag == 0x00100010u);
    e = mira_dict_find_keyword("PixelData");
    CHECK(e && e->tag == MIRA_TAG_PIXEL_DATA);
    e = mira_dict_find_keyword("OverlayData");
    CHECK(e && e->tag == 0x60003000u && e->mask == 0xFF00FFFFu);
    e = mira_dict_find_keyword("ZonalMap");
    CHECK(e && e->tag == 0x10100000u && e->mask == 0xFFFF0000u);
    CHECK(mira_dict_find_keyword("patientname") == NULL); /* case-sensitive */
    CHECK(mira_dict_find_keyword("NoSuchKeyword") == NULL);
    CHECK(mira_dict_find_keyword(NULL) == NULL);
}

TEST(every_entry_is_found)
{
    size_t n = mira_dict_count();
    CHECK(n > 4900);
    CHECK(mira_dict_at(n) == NULL);
    size_t exact = 0, repeating = 0;
    for (size_t i = 0; i < n; i++) {
        const mira_dict_entry *e = mira_dict_at(i);
        if (e->keyword[0] && mira_dict_find_keyword(e->keyword) != e) {
            fprintf(stderr, "keyword %s not found\n", e->keyword);
            mira_test_failures++;
        }
        if (e->mask == 0xFFFFFFFFu) {
            exact++;
            if (mira_dict_find(e->tag) != e) {
                fprintf(stderr, "tag %08X not found\n", (unsigned)e->tag);
                mira_test_failures++;
            }
            const mira_dict_entry *prev = i > 0 ? mira_dict_at(i - 1) : NULL;
            if (prev && prev->tag >= e->tag) {
                fprintf(stderr, "table not sorted at %08X\n", (unsigned)e->tag);
                mira_test_failures++;
            }
        } else {
            repeating++;
            /* Fill the free digits with 2s: an even group, and never element 0000. */
            mira_tag t = e->tag | (0x22222222u & ~e->mask);
            if (mira_dict_find(t) != e) {
                fprintf(stderr, "repeating %s: %08X not found\n", e->keyword, (unsigned)t);
                mira_test_failures++;
            }
        }
    }
    CHECK(exact > 4800);
    CHECK(repeating > 80);
}

TEST(tag_parse)
{
    mira_tag t = 0;
    CHECK(mira_tag_parse("PatientName", &t) && t == 0x00100010u);
    CHECK(mira_tag_parse("0010,0010", &t) && t == 0x00100010u);
    CHECK(mira_tag_parse("(0010,0010)", &t) && t == 0x00100010u);
    CHECK(mira_tag_parse("00100010", &t) && t == 0x00100010u);
    CHECK(mira_tag_parse("7fe0,0010", &t) && t == MIRA_TAG_PIXEL_DATA);
    CHECK(mira_tag_parse("(7FE0,0010)", &t) && t == MIRA_TAG_PIXEL_DATA);
    CHECK(mira_tag_parse("fffee000", &t) && t == MIRA_TAG_ITEM);
    CHECK(mira_tag_parse("0029,1010", &t) && t == 0x00291010u); /* unknown tags parse too */
    CHECK(mira_tag_parse("OverlayData", &t) && t == 0x60003000u);
    CHECK(mira_tag_parse("00100010", NULL));
    CHECK(!mira_tag_parse("", &t));
    CHECK(!mira_tag_parse(NULL, &t));
    CHECK(!mira_tag_parse("patientname", &t));
    CHECK(!mira_tag_parse("0010,001", &t));
    CHECK(!mira_tag_parse("0010,00100", &t));
    CHECK(!mira_tag_parse("0010;0010", &t));
    CHECK(!mira_tag_parse("(0010,0010", &t));
    CHECK(!mira_tag_parse("0010,001G", &t));
    CHECK(!mira_tag_parse("0x100010", &t));
    CHECK(!mira_tag_parse("60xx,3000", &t));
    CHECK(!mira_tag_parse("+0010,0010", &t));
}

TEST(uid_lookup)
{
    const mira_uid_entry *u = mira_uid_find(MIRA_TS_EXPLICIT_LE);
    CHECK(u != NULL);
    if (u) {
        CHECK_EQ_STR(u->uid, "1.2.840.10008.1.2.1");
        CHECK_EQ_STR(u->name, "Explicit VR Little Endian");
        CHECK_EQ_STR(u->type, "Transfer Syntax");
        CHECK_EQ_STR(u->keyword, "ExplicitVRLittleEndian");
        CHECK(!u->retired);
    }
    u = mira_uid_find(MIRA_TS_EXPLICIT_BE);
    CHECK(u && u->retired);
    u = mira_uid_find("1.2.840.10008.5.1.4.1.1.2"); /* CT Image Storage */
    CHECK(u && strcmp(u->type, "SOP Class") == 0 && strcmp(u->keyword, "CTImageStorage") == 0);
    u = mira_uid_find("1.2.840.10008.1.1");
    CHECK(u && strcmp(u->keyword, "Verification") == 0);
    CHECK(mira_uid_find("1.2.840.10008.1.2.1.") == NULL);
    CHECK(mira_uid_find("1.2.840.10008") == NULL);
    CHECK(mira_uid_find("") == NULL);
    CHECK(mira_uid_find(NULL) == NULL);

    size_t n = mira_uid_count();
    CHECK(n > 400);
    CHECK(mira_uid_at(n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const mira_uid_entry *e = mira_uid_at(i);
        if (mira_uid_find(e->uid) != e) {
            fprintf(stderr, "UID %s not found\n", e->uid);
            mira_test_failures++;
        }
    }
}

TEST(private_lookup)
{
    /* (0029,xx10) under "SIEMENS CSA HEADER", in whichever block the creator reserved. */
    const mira_dict_entry *e = mira_dict_find_private("SIEMENS CSA HEADER", 0x00291010u);
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_STR(e->name, "CSA Image Header Info");
        CHECK_EQ_STR(e->vr, "OB");
        CHECK_EQ_STR(e->keyword, "");
        CHECK_EQ_INT(e->mask, 0xFFFF00FFu);
    }
    CHECK(mira_dict_find_private("SIEMENS CSA HEADER", 0x00291110u) == e);
    CHECK(mira_dict_find_private("SIEMENS CSA HEADER", 0x00292310u) == e);
    /* Trailing padding of the creator value does not matter; case does. */
    CHECK(mira_dict_find_private("SIEMENS CSA HEADER ", 0x00291010u) == e);
    CHECK(mira_dict_find_private("siemens csa header", 0x00291010u) == NULL);
    CHECK(mira_dict_find_private("SIEMENS CSA HEADE", 0x00291010u) == NULL);
    CHECK(mira_dict_find_private("SIEMENS CSA HEADER", 0x00291099u) == NULL);
    CHECK(mira_dict_find_private("SIEMENS CSA HEADER", 0x00311010u) == NULL);
    CHECK(mira_dict_find_private("NO SUCH CREATOR", 0x00291010u) == NULL);
    CHECK(mira_dict_find_private(NULL, 0x00291010u) == NULL);
    CHECK(mira_dict_find_private("", 0x00291010u) == NULL);

    e = mira_dict_find_private("GEMS_ACQU_01", 0x00191018u);
    CHECK(e && strcmp(e->name, "First scan ras") == 0 && strcmp(e->vr, "LO") == 0);
    /* Exact private tags, and (ggxx,xxee) patterns that span groups. */
    e = mira_dict_find_private("DicomUtils 20100512", 0x00090001u);
    CHECK(e && e->mask == 0xFFFFFFFFu);
    e = mira_dict_find_private("PAPYRUS 3.0", 0x60021110u);
    CHECK(e && strcmp(e->name, "Overlay Rows") == 0 && e->mask == 0xFF0000FFu);
    /* pydicom's table spells one VR OB_OW; mira gives it as the standard does. */
    e = mira_dict_find_private("TOSHIBA_MEC_OT3", 0x70191080u);
    CHECK(e && strcmp(e->vr, "OB or OW") == 0);
}
