/* The attributes the index keeps, per level: what C-FIND and QIDO-RS can match and return. */
#include "archive/archive_int.h"

#include <ctype.h>
#include <string.h>

/*
 * The Patient Root and Study Root information models' required and optional keys
 * (PS3.4 C.6.1.1 and C.6.2.1), the common QIDO-RS ones (PS3.18 10.6.1.2), and what a viewer
 * lists. Each is a column of its level's table (schema.c); a person name has a lower-cased
 * copy (<column>_ci) for case-insensitive matching, a time a normalised copy (<column>_n)
 * for range matching. Computed keys (counts, modalities) are columns the store keeps current;
 * multi-valued ones are also kept value by value in multi_values, for matching.
 */
const mira__key mira__keys[] = {
    /* patient */
    {0x00100010, MIRA_LEVEL_PATIENT, MIRA__KEY_PN, MIRA_VR_PN, "patient_name", false},
    {0x00100020, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_LO, "patient_id", false},
    {0x00100021, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_LO, "issuer", false},
    {0x00100030, MIRA_LEVEL_PATIENT, MIRA__KEY_DATE, MIRA_VR_DA, "birth_date", false},
    {0x00100032, MIRA_LEVEL_PATIENT, MIRA__KEY_TIME, MIRA_VR_TM, "birth_time", false},
    {0x00100040, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_CS, "sex", false},
    {0x00101000, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_LO, "other_ids", true},
    {0x00101001, MIRA_LEVEL_PATIENT, MIRA__KEY_PN, MIRA_VR_PN, "other_names", true},
    {0x00102160, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_SH, "ethnic_group", false},
    {0x00104000, MIRA_LEVEL_PATIENT, MIRA__KEY_TEXT, MIRA_VR_LT, "comments", false},
    {0x00201200, MIRA_LEVEL_PATIENT, MIRA__KEY_COUNT, MIRA_VR_IS, "num_studies", false},
    {0x00201202, MIRA_LEVEL_PATIENT, MIRA__KEY_COUNT, MIRA_VR_IS, "num_series", false},
    {0x00201204, MIRA_LEVEL_PATIENT, MIRA__KEY_COUNT, MIRA_VR_IS, "num_instances", false},
    /* study */
    {0x00080020, MIRA_LEVEL_STUDY, MIRA__KEY_DATE, MIRA_VR_DA, "study_date", false},
    {0x00080030, MIRA_LEVEL_STUDY, MIRA__KEY_TIME, MIRA_VR_TM, "study_time", false},
    {0x00080050, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_SH, "accession", false},
    {0x00080061, MIRA_LEVEL_STUDY, MIRA__KEY_LIST, MIRA_VR_CS, "modalities", true},
    {0x00080062, MIRA_LEVEL_STUDY, MIRA__KEY_LIST, MIRA_VR_UI, "sop_classes", true},
    {0x00080090, MIRA_LEVEL_STUDY, MIRA__KEY_PN, MIRA_VR_PN, "referring_physician", false},
    {0x00081030, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_LO, "study_description", false},
    {0x00081032, MIRA_LEVEL_STUDY, MIRA__KEY_SEQ, MIRA_VR_SQ, NULL, false},
    {0x00081060, MIRA_LEVEL_STUDY, MIRA__KEY_PN, MIRA_VR_PN, "reading_physicians", true},
    {0x00081080, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_LO, "admitting_diagnoses", true},
    {0x00101010, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_AS, "patient_age", false},
    {0x00101020, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_DS, "patient_size", false},
    {0x00101030, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_DS, "patient_weight", false},
    {0x00102180, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_SH, "occupation", false},
    {0x001021B0, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_LT, "additional_history", false},
    {0x0020000D, MIRA_LEVEL_STUDY, MIRA__KEY_UID, MIRA_VR_UI, "study_uid", false},
    {0x00200010, MIRA_LEVEL_STUDY, MIRA__KEY_TEXT, MIRA_VR_SH, "study_id", false},
    {0x00201206, MIRA_LEVEL_STUDY, MIRA__KEY_COUNT, MIRA_VR_IS, "num_series", false},
    {0x00201208, MIRA_LEVEL_STUDY, MIRA__KEY_COUNT, MIRA_VR_IS, "num_instances", false},
    /* series */
    {0x00080021, MIRA_LEVEL_SERIES, MIRA__KEY_DATE, MIRA_VR_DA, "series_date", false},
    {0x00080031, MIRA_LEVEL_SERIES, MIRA__KEY_TIME, MIRA_VR_TM, "series_time", false},
    {0x00080060, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_CS, "modality", false},
    {0x00080070, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "manufacturer", false},
    {0x00080080, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "institution_name", false},
    {0x00081010, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_SH, "station_name", false},
    {0x0008103E, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "series_description", false},
    {0x00081040, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "department_name", false},
    {0x00081050, MIRA_LEVEL_SERIES, MIRA__KEY_PN, MIRA_VR_PN, "performing_physician", true},
    {0x00081070, MIRA_LEVEL_SERIES, MIRA__KEY_PN, MIRA_VR_PN, "operators_name", true},
    {0x00081090, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "model_name", false},
    {0x00180015, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_CS, "body_part", false},
    {0x00181030, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_LO, "protocol_name", false},
    {0x0020000E, MIRA_LEVEL_SERIES, MIRA__KEY_UID, MIRA_VR_UI, "series_uid", false},
    {0x00200011, MIRA_LEVEL_SERIES, MIRA__KEY_INT, MIRA_VR_IS, "series_number", false},
    {0x00200052, MIRA_LEVEL_SERIES, MIRA__KEY_UID, MIRA_VR_UI, "frame_of_reference_uid", false},
    {0x00200060, MIRA_LEVEL_SERIES, MIRA__KEY_TEXT, MIRA_VR_CS, "laterality", false},
    {0x00201209, MIRA_LEVEL_SERIES, MIRA__KEY_COUNT, MIRA_VR_IS, "num_instances", false},
    {0x00400244, MIRA_LEVEL_SERIES, MIRA__KEY_DATE, MIRA_VR_DA, "pps_start_date", false},
    {0x00400245, MIRA_LEVEL_SERIES, MIRA__KEY_TIME, MIRA_VR_TM, "pps_start_time", false},
    {0x00400275, MIRA_LEVEL_SERIES, MIRA__KEY_SEQ, MIRA_VR_SQ, NULL, false},
    /* instance */
    {0x00080008, MIRA_LEVEL_INSTANCE, MIRA__KEY_TEXT, MIRA_VR_CS, "image_type", true},
    {0x00080016, MIRA_LEVEL_INSTANCE, MIRA__KEY_UID, MIRA_VR_UI, "sop_class_uid", false},
    {0x00080018, MIRA_LEVEL_INSTANCE, MIRA__KEY_UID, MIRA_VR_UI, "sop_uid", false},
    {0x00080022, MIRA_LEVEL_INSTANCE, MIRA__KEY_DATE, MIRA_VR_DA, "acquisition_date", false},
    {0x00080023, MIRA_LEVEL_INSTANCE, MIRA__KEY_DATE, MIRA_VR_DA, "content_date", false},
    {0x00080032, MIRA_LEVEL_INSTANCE, MIRA__KEY_TIME, MIRA_VR_TM, "acquisition_time", false},
    {0x00080033, MIRA_LEVEL_INSTANCE, MIRA__KEY_TIME, MIRA_VR_TM, "content_time", false},
    {0x00083002, MIRA_LEVEL_INSTANCE, MIRA__KEY_UID, MIRA_VR_UI, "transfer_syntax", false},
    {0x00200013, MIRA_LEVEL_INSTANCE, MIRA__KEY_INT, MIRA_VR_IS, "instance_number", false},
    {0x00280008, MIRA_LEVEL_INSTANCE, MIRA__KEY_INT, MIRA_VR_IS, "number_of_frames", false},
    {0x00280010, MIRA_LEVEL_INSTANCE, MIRA__KEY_INT, MIRA_VR_US, "rows", false},
    {0x00280011, MIRA_LEVEL_INSTANCE, MIRA__KEY_INT, MIRA_VR_US, "columns", false},
    {0x00280100, MIRA_LEVEL_INSTANCE, MIRA__KEY_INT, MIRA_VR_US, "bits_allocated", false},
};
const size_t mira__key_count = sizeof mira__keys / sizeof mira__keys[0];

const mira__item_key mira__item_keys[] = {
    /* Procedure Code Sequence: a code */
    {0x00081032, 0x00080100, MIRA__KEY_TEXT, MIRA_VR_SH, "code_value"},
    {0x00081032, 0x00080102, MIRA__KEY_TEXT, MIRA_VR_SH, "scheme"},
    {0x00081032, 0x00080103, MIRA__KEY_TEXT, MIRA_VR_SH, "scheme_version"},
    {0x00081032, 0x00080104, MIRA__KEY_TEXT, MIRA_VR_LO, "meaning"},
    /* Request Attributes Sequence */
    {0x00400275, 0x00080050, MIRA__KEY_TEXT, MIRA_VR_SH, "accession"},
    {0x00400275, 0x00321060, MIRA__KEY_TEXT, MIRA_VR_LO, "requested_procedure_description"},
    {0x00400275, 0x00400007, MIRA__KEY_TEXT, MIRA_VR_LO, "sps_description"},
    {0x00400275, 0x00400009, MIRA__KEY_TEXT, MIRA_VR_SH, "sps_id"},
    {0x00400275, 0x00401001, MIRA__KEY_TEXT, MIRA_VR_SH, "requested_procedure_id"},
};
const size_t mira__item_key_count = sizeof mira__item_keys / sizeof mira__item_keys[0];

const mira__seq_table mira__seq_tables[] = {
    {0x00081032, MIRA_LEVEL_STUDY, "study_procedure_codes"},
    {0x00400275, MIRA_LEVEL_SERIES, "series_requests"},
};
const size_t mira__seq_table_count = sizeof mira__seq_tables / sizeof mira__seq_tables[0];

const mira__key *mira__key_find(mira_tag tag)
{
    for (size_t i = 0; i < mira__key_count; i++)
        if (mira__keys[i].tag == tag)
            return &mira__keys[i];
    return NULL;
}

const char *mira__level_table(mira_level level)
{
    static const char *const tables[] = {"patients", "studies", "series", "instances"};
    return (unsigned)level < 4 ? tables[level] : "";
}

bool mira_archive_key_supported(mira_level level, mira_tag tag)
{
    const mira__key *k = mira__key_find(tag);
    return k && k->level <= level;
}

static const char *const level_names[] = {"PATIENT", "STUDY", "SERIES", "IMAGE"};

const char *mira_level_name(mira_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "";
}

bool mira_level_from_name(const char *name, mira_level *out)
{
    if (!name)
        return false;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (mira_level)i;
            return true;
        }
    }
    if (strcasecmp(name, "INSTANCE") == 0) {
        *out = MIRA_LEVEL_INSTANCE;
        return true;
    }
    return false;
}

bool mira__date_normalise(const char *da, char out[9])
{
    size_t n = 0;
    for (const char *p = da; *p; p++) {
        if (*p == '.' || *p == ' ')
            continue;
        if (!isdigit((unsigned char)*p) || n == 8)
            return false;
        out[n++] = *p;
    }
    out[n] = 0;
    return n == 8;
}

bool mira__time_normalise(const char *tm, char fill, char out[14])
{
    char digits[13];
    size_t n = 0, frac = 0;
    bool dot = false;
    for (const char *p = tm; *p; p++) {
        if (*p == ':' || *p == ' ')
            continue;
        if (*p == '.') {
            if (dot || n != 6)
                return false;
            dot = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            return false;
        if (dot) {
            if (frac == 6)
                continue; /* more precision than TM has: ignored */
            digits[6 + frac++] = *p;
        } else {
            if (n == 6)
                return false;
            digits[n++] = *p;
        }
    }
    if (n == 0 || n % 2)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < 6; i++)
        out[k++] = i < n ? digits[i] : (fill == '9' ? "235959"[i] : '0');
    out[k++] = '.';
    for (size_t i = 0; i < 6; i++)
        out[k++] = i < frac ? digits[6 + i] : fill;
    out[k] = 0;
    return true;
}

char *mira__fold_case(const char *s)
{
    if (!s)
        return NULL;
    char *c = mira_strdup(s);
    if (!c)
        return NULL;
    for (char *p = c; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return c;
}
