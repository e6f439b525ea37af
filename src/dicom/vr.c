/* Value representations: names, classes and encoding properties (PS3.5 6.2, 7.1.2). */
#include "mira/dicom.h"

#include <string.h>

typedef struct vr_info {
    mira_vr vr;
    const char *name;
    uint8_t value_size; /* bytes per binary value; 0 for text, SQ, OB, UN */
    bool string;
    bool long_length;
} vr_info;

static const vr_info vrs[] = {
    {MIRA_VR_AE, "AE", 0, true, false}, {MIRA_VR_AS, "AS", 0, true, false},
    {MIRA_VR_AT, "AT", 4, false, false}, {MIRA_VR_CS, "CS", 0, true, false},
    {MIRA_VR_DA, "DA", 0, true, false}, {MIRA_VR_DS, "DS", 0, true, false},
    {MIRA_VR_DT, "DT", 0, true, false}, {MIRA_VR_FD, "FD", 8, false, false},
    {MIRA_VR_FL, "FL", 4, false, false}, {MIRA_VR_IS, "IS", 0, true, false},
    {MIRA_VR_LO, "LO", 0, true, false}, {MIRA_VR_LT, "LT", 0, true, false},
    {MIRA_VR_OB, "OB", 0, false, true},  {MIRA_VR_OD, "OD", 8, false, true},
    {MIRA_VR_OF, "OF", 4, false, true},  {MIRA_VR_OL, "OL", 4, false, true},
    {MIRA_VR_OV, "OV", 8, false, true},  {MIRA_VR_OW, "OW", 2, false, true},
    {MIRA_VR_PN, "PN", 0, true, false},  {MIRA_VR_SH, "SH", 0, true, false},
    {MIRA_VR_SL, "SL", 4, false, false}, {MIRA_VR_SQ, "SQ", 0, false, true},
    {MIRA_VR_SS, "SS", 2, false, false}, {MIRA_VR_ST, "ST", 0, true, false},
    {MIRA_VR_SV, "SV", 8, false, true},  {MIRA_VR_TM, "TM", 0, true, false},
    {MIRA_VR_UC, "UC", 0, true, true},   {MIRA_VR_UI, "UI", 0, true, false},
    {MIRA_VR_UL, "UL", 4, false, false}, {MIRA_VR_UN, "UN", 0, false, true},
    {MIRA_VR_UR, "UR", 0, true, true},   {MIRA_VR_US, "US", 2, false, false},
    {MIRA_VR_UT, "UT", 0, true, true},   {MIRA_VR_UV, "UV", 8, false, true},
};

static const vr_info *find(mira_vr vr)
{
    size_t lo = 0, hi = sizeof vrs / sizeof vrs[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vrs[mid].vr == vr)
            return &vrs[mid];
        if ((unsigned)vrs[mid].vr < (unsigned)vr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *mira_vr_name(mira_vr vr)
{
    const vr_info *i = find(vr);
    return i ? i->name : "??";
}

mira_vr mira_vr_from_string(const char *s)
{
    if (!s || !s[0] || !s[1])
        return MIRA_VR_NONE;
    mira_vr vr = (mira_vr)(((unsigned)(uint8_t)s[0] << 8) | (uint8_t)s[1]);
    return find(vr) ? vr : MIRA_VR_NONE;
}

bool mira_vr_is_string(mira_vr vr)
{
    const vr_info *i = find(vr);
    return i && i->string;
}

size_t mira_vr_value_size(mira_vr vr)
{
    const vr_info *i = find(vr);
    return i ? i->value_size : 0;
}

bool mira_vr_has_long_length(mira_vr vr)
{
    const vr_info *i = find(vr);
    return i ? i->long_length : true;
}

bool mira_ts_lookup(const char *uid, mira_ts_info *out)
{
    static const struct {
        const char *uid;
        mira_ts_info info;
    } native[] = {
        {MIRA_TS_IMPLICIT_LE, {false, false, false, false}},
        {MIRA_TS_EXPLICIT_LE, {true, false, false, false}},
        {MIRA_TS_DEFLATED_LE, {true, false, true, false}},
        {MIRA_TS_EXPLICIT_BE, {true, true, false, false}},
        /* Encapsulated Uncompressed Explicit VR Little Endian */
        {"1.2.840.10008.1.2.1.98", {true, false, false, true}},
    };
    if (!uid)
        return false;
    for (size_t i = 0; i < sizeof native / sizeof native[0]; i++) {
        if (strcmp(uid, native[i].uid) == 0) {
            if (out)
                *out = native[i].info;
            return true;
        }
    }
    /* Every other registered transfer syntax encapsulates its pixel data, explicit VR LE. */
    const mira_uid_entry *u = mira_uid_find(uid);
    if (u && strcmp(u->type, "Transfer Syntax") == 0) {
        if (out)
            *out = (mira_ts_info){true, false, false, true};
        return true;
    }
    return false;
}
