/* Tests of de-identification (src/dicom/deid.c): the table's lookups, UID mapping, pseudonyms. */
#include "harness.h"

#include "dicom/deid_int.h"

#include <mira/mira.h>
#include <stdlib.h>

static char *text(const mira_dataset *ds, mira_tag tag)
{
    mira_element *e = mira_dataset_get(ds, tag);
    return e ? mira_element_get_text(e, NULL) : NULL;
}

static bool valid_uid(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = u; *p; p++) {
        bool start = p == u || p[-1] == '.';
        if (*p == '.') {
            if (start || !p[1])
                return false;
        } else if (*p < '0' || *p > '9' || (start && *p == '0' && p[1] && p[1] != '.')) {
            return false;
        }
    }
    return true;
}

TEST(table_is_sorted_and_complete)
{
    CHECK(mira__deid_table_count >= 600);
    for (size_t i = 1; i < mira__deid_table_count; i++)
        CHECK(mira__deid_table[i - 1].tag < mira__deid_table[i].tag);
    for (size_t i = 0; i < mira__deid_table_count; i++) {
        CHECK(mira__deid_table[i].basic >= MIRA__DEID_D &&
              mira__deid_table[i].basic <= MIRA__DEID_XZU);
        CHECK(strlen(mira__deid_table[i].opts) == MIRA__DEID_OPT_COUNT);
    }
}

TEST(table_lookups)
{
    const mira__deid_entry *e = mira__deid_find(0x00100010);
    CHECK(e && e->basic == MIRA__DEID_Z && strcmp(e->name, "Patient's Name") == 0);
    e = mira__deid_find(0x00080018);
    CHECK(e && e->basic == MIRA__DEID_U && e->opts[MIRA__DEID_OPT_UIDS] == 'K');
    e = mira__deid_find(0x00181000); /* Device Serial Number */
    CHECK(e && e->basic == MIRA__DEID_XZD && e->opts[MIRA__DEID_OPT_DEVICE] == 'K');
    e = mira__deid_find(0x00081140); /* Referenced Image Sequence */
    CHECK(e && e->basic == MIRA__DEID_XZU);
    e = mira__deid_find(0x60223000); /* Overlay Data of group 6022 */
    CHECK(e && e->mask == 0xFF00FFFFu && e->basic == MIRA__DEID_X &&
          e->opts[MIRA__DEID_OPT_CLEAN_GRAPH] == 'C');
    e = mira__deid_find(0x60024000); /* Overlay Comments */
    CHECK(e && strcmp(e->name, "Overlay Comments") == 0);
    e = mira__deid_find(0x50101234); /* any curve attribute */
    CHECK(e && strcmp(e->name, "Curve Data") == 0);
    e = mira__deid_find(0x00291010); /* private */
    CHECK(e == &mira__deid_private && e->opts[MIRA__DEID_OPT_SAFE_PRIVATE] == 'C');
    e = mira__deid_find(0x00181200); /* Date of Last Calibration: from the supplement */
    CHECK(e && e->supplement);
    CHECK(mira__deid_find(0x00080060) == NULL); /* Modality: not in the table, kept */
    CHECK(mira__deid_find(0x00280010) == NULL);
}

TEST(actions_under_options)
{
    mira_deid_options o;
    mira_deid_options_init(&o);
    const mira__deid_entry *serial = mira__deid_find(0x00181000);
    const mira__deid_entry *study_date = mira__deid_find(0x00080020);
    const mira__deid_entry *ref_patient = mira__deid_find(0x00081120);
    const mira__deid_entry *allergies = mira__deid_find(0x00102110);
    const mira__deid_entry *acq_date = mira__deid_find(0x00080022);
    CHECK_EQ_INT(mira__deid_resolve(serial, &o), MIRA__DEID_D); /* X/Z/D: valid for any Type */
    CHECK_EQ_INT(mira__deid_resolve(study_date, &o), MIRA__DEID_Z);
    CHECK_EQ_INT(mira__deid_resolve(acq_date, &o), MIRA__DEID_Z); /* X/Z */
    CHECK_EQ_INT(mira__deid_resolve(ref_patient, &o), MIRA__DEID_X);
    CHECK_EQ_INT(mira__deid_resolve(allergies, &o), MIRA__DEID_X);
    o.retain_device = true;
    o.dates = MIRA_DEID_DATES_FULL;
    o.retain_uids = true;
    o.retain_patient_characteristics = true;
    CHECK_EQ_INT(mira__deid_resolve(serial, &o), MIRA__DEID_K);
    CHECK_EQ_INT(mira__deid_resolve(study_date, &o), MIRA__DEID_K);
    CHECK_EQ_INT(mira__deid_resolve(ref_patient, &o), MIRA__DEID_X); /* its column says X */
    CHECK_EQ_INT(mira__deid_resolve(allergies, &o), MIRA__DEID_C);
    o.dates = MIRA_DEID_DATES_MODIFIED;
    CHECK_EQ_INT(mira__deid_resolve(study_date, &o), MIRA__DEID_C);
}

TEST(uid_mapping)
{
    mira_deid_options o;
    mira_deid_options_init(&o);
    o.secret = "one secret";
    o.secret_len = strlen(o.secret);
    mira_deid_context *a = mira_deid_context_new(&o, NULL);
    mira_deid_context *b = mira_deid_context_new(&o, NULL);
    o.secret = "another secret";
    o.secret_len = strlen(o.secret);
    mira_deid_context *c = mira_deid_context_new(&o, NULL);
    o.uid_root = "1.2.3.999";
    mira_deid_context *d = mira_deid_context_new(&o, NULL);
    CHECK(a && b && c && d);
    if (!a || !b || !c || !d)
        return;
    const char *orig = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
    char u1[65], u2[65], u3[65], u4[65], u5[65];
    CHECK(mira_deid_uid(a, orig, u1, NULL) && mira_deid_uid(a, orig, u2, NULL));
    CHECK_EQ_STR(u1, u2); /* the same in a run */
    CHECK(mira_deid_uid(b, orig, u3, NULL));
    CHECK_EQ_STR(u1, u3); /* and in another run with the same secret */
    CHECK(mira_deid_uid(c, orig, u4, NULL));
    CHECK(strcmp(u1, u4) != 0);
    CHECK(strncmp(u1, "2.25.", 5) == 0 && valid_uid(u1) && valid_uid(u4));
    CHECK(mira_deid_uid(d, orig, u5, NULL));
    CHECK(strncmp(u5, "1.2.3.999.", 10) == 0 && valid_uid(u5));
    CHECK(mira_deid_uid(a, "1.3.6.1.4.1.5962.9", u2, NULL) && strcmp(u1, u2) != 0);
    CHECK(mira_deid_uid(a, "1.2.840.10008.5.1.4.1.1.2", u2, NULL));
    CHECK_EQ_STR(u2, "1.2.840.10008.5.1.4.1.1.2"); /* well-known: unchanged */
    for (int i = 0; i < 200; i++) {
        char in[32], out[65];
        snprintf(in, sizeof in, "1.2.%d", i);
        CHECK(mira_deid_uid(a, in, out, NULL) && valid_uid(out));
    }
    mira_deid_context_free(a);
    mira_deid_context_free(b);
    mira_deid_context_free(c);
    mira_deid_context_free(d);
    o.uid_root = "1.02.3"; /* a leading zero */
    mira_error *err = NULL;
    CHECK(mira_deid_context_new(&o, &err) == NULL && err);
    mira_error_free(err);
}

TEST(pseudonyms)
{
    mira_deid_options o;
    mira_deid_options_init(&o);
    o.secret = "k";
    o.secret_len = 1;
    o.pseudonym = "SUBJ-{n:3}";
    mira_deid_context *c = mira_deid_context_new(&o, NULL);
    char p[65];
    CHECK(c && mira_deid_pseudonym(c, "ID-A", p, NULL));
    CHECK_EQ_STR(p, "SUBJ-001");
    CHECK(mira_deid_pseudonym(c, "ID-B", p, NULL));
    CHECK_EQ_STR(p, "SUBJ-002");
    CHECK(mira_deid_pseudonym(c, "ID-A", p, NULL));
    CHECK_EQ_STR(p, "SUBJ-001");
    mira_deid_context_free(c);
    o.pseudonym = "P{hash:8}";
    c = mira_deid_context_new(&o, NULL);
    mira_deid_context *c2 = mira_deid_context_new(&o, NULL);
    char q[65];
    CHECK(c && c2 && mira_deid_pseudonym(c, "ID-A", p, NULL) &&
          mira_deid_pseudonym(c2, "ID-A", q, NULL));
    CHECK_EQ_STR(p, q);
    CHECK_EQ_INT(strlen(p), 9);
    mira_deid_context_free(c);
    mira_deid_context_free(c2);
    o.pseudonym = "bad\\name";
    CHECK(mira_deid_context_new(&o, NULL) == NULL);
}

TEST(dataset)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    mira_dataset_set_string(ds, 0x00100010, MIRA_VR_PN, "DOE^JOHN", NULL);
    mira_dataset_set_string(ds, 0x00100020, MIRA_VR_LO, "12345", NULL);
    mira_dataset_set_string(ds, 0x00080020, MIRA_VR_DA, "20200110", NULL);
    mira_dataset_set_string(ds, 0x00081030, MIRA_VR_LO, "CT of John Doe", NULL);
    mira_dataset_set_string(ds, 0x0020000D, MIRA_VR_UI, "1.2.3.4", NULL);
    mira_dataset_set_string(ds, 0x00080018, MIRA_VR_UI, "1.2.3.4.5", NULL);
    mira_dataset_set_string(ds, 0x00080060, MIRA_VR_CS, "CT", NULL);
    mira_dataset_set_string(ds, 0x00090010, MIRA_VR_LO, "ACME", NULL);
    mira_dataset_set_string(ds, 0x00091001, MIRA_VR_LO, "secret", NULL);
    mira_element *seq = mira_dataset_set_sequence(ds, 0x00081140, NULL);
    mira_dataset *item = mira_element_add_item(seq, NULL);
    mira_dataset_set_string(item, 0x00081150, MIRA_VR_UI, "1.2.840.10008.5.1.4.1.1.2", NULL);
    mira_dataset_set_string(item, 0x00081155, MIRA_VR_UI, "1.2.3.4.6", NULL);

    mira_deid_options o;
    mira_deid_options_init(&o);
    o.secret = "s";
    o.secret_len = 1;
    o.dates = MIRA_DEID_DATES_MODIFIED;
    o.date_shift_fixed = true;
    o.date_shift_days = -10;
    o.clean_descriptors = true;
    mira_deid_context *c = mira_deid_context_new(&o, NULL);
    mira_deid_report r;
    mira_error *err = NULL;
    CHECK(c && mira_deid_dataset(ds, NULL, c, &r, &err));
    if (err)
        fprintf(stderr, "%s\n", mira_error_get_message(err));
    char *v = text(ds, 0x00080020);
    CHECK_EQ_STR(v, "20191231");
    mira_free(v);
    v = text(ds, 0x00081030);
    CHECK_EQ_STR(v, "CT of XXXX XXX"); /* the patient's name cleaned out */
    mira_free(v);
    v = text(ds, 0x00100020);
    CHECK(v && strncmp(v, "ANON-", 5) == 0 && strcmp(v, r.pseudonym) == 0);
    mira_free(v);
    CHECK(mira_dataset_get(ds, 0x00090010) == NULL && mira_dataset_get(ds, 0x00091001) == NULL);
    char expect[65];
    CHECK(mira_deid_uid(c, "1.2.3.4.6", expect, NULL));
    seq = mira_dataset_get(ds, 0x00081140);
    CHECK(seq && mira_element_item_count(seq) == 1);
    if (seq && mira_element_item_count(seq) == 1) {
        v = text(mira_element_item(seq, 0), 0x00081155);
        CHECK_EQ_STR(v, expect);
        mira_free(v);
        v = text(mira_element_item(seq, 0), 0x00081150);
        CHECK_EQ_STR(v, "1.2.840.10008.5.1.4.1.1.2");
        mira_free(v);
    }
    v = text(ds, 0x00120062);
    CHECK_EQ_STR(v, "YES");
    mira_free(v);
    v = text(ds, 0x00280303);
    CHECK_EQ_STR(v, "MODIFIED");
    mira_free(v);
    mira_element *codes = mira_dataset_get(ds, 0x00120064);
    CHECK(codes && mira_element_item_count(codes) == 3); /* profile, descriptors, dates */
    CHECK_EQ_INT(r.date_shift_days, -10);
    CHECK_EQ_INT(r.risk, MIRA_DEID_RISK_NONE);
    mira_error_free(err);
    mira_deid_context_free(c);
    mira_dataset_free(ds);
}

TEST(burned_in_risk)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    uint8_t px[4] = {0};
    mira_dataset_set_bytes(ds, MIRA_TAG_PIXEL_DATA, MIRA_VR_OW, px, 4, NULL);
    mira_dataset_set_string(ds, 0x00080060, MIRA_VR_CS, "CT", NULL);
    mira_dataset_set_string(ds, 0x00080008, MIRA_VR_CS, "ORIGINAL\\PRIMARY\\AXIAL", NULL);
    char why[256];
    CHECK_EQ_INT(mira_deid_burned_in_risk(ds, why, sizeof why), MIRA_DEID_RISK_NONE);
    mira_dataset_set_string(ds, 0x00080060, MIRA_VR_CS, "US", NULL);
    CHECK_EQ_INT(mira_deid_burned_in_risk(ds, why, sizeof why), MIRA_DEID_RISK_HIGH);
    CHECK(strstr(why, "ultrasound") != NULL);
    mira_dataset_set_string(ds, 0x00080060, MIRA_VR_CS, "CT", NULL);
    mira_dataset_set_string(ds, 0x00280301, MIRA_VR_CS, "YES", NULL);
    CHECK_EQ_INT(mira_deid_burned_in_risk(ds, why, sizeof why), MIRA_DEID_RISK_HIGH);
    mira_dataset_remove(ds, MIRA_TAG_PIXEL_DATA);
    CHECK_EQ_INT(mira_deid_burned_in_risk(ds, why, sizeof why), MIRA_DEID_RISK_NONE);
    CHECK_EQ_STR(mira_deid_risk_name(MIRA_DEID_RISK_MEDIUM), "medium");
    mira_dataset_free(ds);
}
