/* The DICOM data dictionary, private dictionary and UID registry: lookups over generated tables. */
#include "dict_int.h"

#include <string.h>

/*
 * Entries that are not in the tables but that every reader needs, as pydicom's DataElement
 * reports them: an element (gggg,0000) is its group's length, VR UL (PS3.5 7.2), and
 * (gggg,0010-00FF) of a private group is a Private Creator, VR LO (PS3.5 7.8.1). Their
 * keyword follows pydicom too: "" for the group length, which has no keyword of its own.
 */
static const mira_dict_entry group_length = {
    0x00000000u, 0x0000FFFFu, "UL", "1", "", "Group Length", false,
};
static const mira_dict_entry private_creator = {
    0x00010000u, 0x0001FF00u, "LO", "1", "PrivateCreator", "Private Creator", false,
};

static const mira_dict_entry *find_exact(mira_tag tag)
{
    size_t lo = 0, hi = mira__dict_exact_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        mira_tag t = mira__dict_entries[mid].tag;
        if (t == tag)
            return &mira__dict_entries[mid];
        if (t < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const mira_dict_entry *find_repeating(mira_tag tag)
{
    const mira_dict_entry *e = mira__dict_entries + mira__dict_exact_count;
    for (size_t i = 0; i < mira__dict_repeating_count; i++)
        if (((tag ^ e[i].tag) & e[i].mask) == 0)
            return &e[i];
    return NULL;
}

const mira_dict_entry *mira_dict_find(mira_tag tag)
{
    const mira_dict_entry *e = find_exact(tag);
    if (e)
        return e;
    uint16_t el = MIRA_TAG_ELEMENT(tag);
    /* Before the repeating entries: (1000,xxx0) and (1010,xxxx) would otherwise claim the
     * group lengths of groups 1000 and 1010, which pydicom lets them do. */
    if (el == 0)
        return &group_length;
    if (MIRA_TAG_IS_PRIVATE(tag))
        return el >= 0x10 && el <= 0xFF ? &private_creator : NULL;
    /* Repeating groups are even (50xx: 5000-501E); an odd group is never one (as in pydicom). */
    if ((MIRA_TAG_GROUP(tag) & 1u) == 0)
        return find_repeating(tag);
    return NULL;
}

const mira_dict_entry *mira_dict_find_keyword(const char *keyword)
{
    if (!keyword)
        return NULL;
    size_t lo = 0, hi = mira__dict_keyword_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mira_dict_entry *e = &mira__dict_entries[mira__dict_keyword_index[mid]];
        int c = strcmp(e->keyword, keyword);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t mira_dict_count(void)
{
    return mira__dict_exact_count + mira__dict_repeating_count;
}

const mira_dict_entry *mira_dict_at(size_t i)
{
    return i < mira_dict_count() ? &mira__dict_entries[i] : NULL;
}

mira_vr mira_dict_entry_vr(const mira_dict_entry *e)
{
    if (!e)
        return MIRA_VR_UN;
    if (strcmp(e->vr, "NONE") == 0) /* items and delimiters have no VR */
        return MIRA_VR_NONE;
    return (mira_vr)(((unsigned)(uint8_t)e->vr[0] << 8) | (uint8_t)e->vr[1]);
}

mira_vr mira_dict_vr(mira_tag tag)
{
    return mira_dict_entry_vr(mira_dict_find(tag));
}

/* The creator's index in mira__private_creators, or -1. Trailing padding is not significant. */
static long find_creator(const char *creator)
{
    size_t n = strlen(creator);
    while (n && (creator[n - 1] == ' ' || creator[n - 1] == '\0'))
        n--;
    size_t lo = 0, hi = mira__private_creator_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *c = mira__private_creators[mid];
        int cmp = strncmp(c, creator, n);
        if (cmp == 0 && c[n] != '\0')
            cmp = 1; /* c is longer: it sorts after the n-character prefix */
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const mira_dict_entry *mira_dict_find_private(const char *creator, mira_tag tag)
{
    if (!creator)
        return NULL;
    long c = find_creator(creator);
    if (c < 0)
        return NULL;
    const mira_dict_entry *e = mira__private_entries + mira__private_creator_start[c];
    size_t n = mira__private_creator_start[c + 1] - mira__private_creator_start[c];
    /* pydicom's order: the exact tag (gggg,eeee), then (gggg,xxee) for any block, then
     * (ggxx,xxee). The few other patterns of its table, such as (0029,10xx), it never matches,
     * and neither does mira. */
    static const mira_tag masks[] = {0xFFFFFFFFu, 0xFFFF00FFu, 0xFF0000FFu};
    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
        for (size_t i = 0; i < n; i++)
            if (e[i].mask == masks[m] && ((tag ^ e[i].tag) & masks[m]) == 0)
                return &e[i];
    return NULL;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly four hex digits at s into *out. */
static bool parse_hex4(const char *s, uint16_t *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return false;
        v = v << 4 | (unsigned)d;
    }
    *out = (uint16_t)v;
    return true;
}

bool mira_tag_parse(const char *text, mira_tag *out)
{
    if (!text)
        return false;
    size_t n = strlen(text);
    uint16_t g = 0, e = 0;
    bool ok = false;
    if (n == 8) { /* 00100010 */
        ok = parse_hex4(text, &g) && parse_hex4(text + 4, &e);
    } else if (n == 9 && text[4] == ',') { /* 0010,0010 */
        ok = parse_hex4(text, &g) && parse_hex4(text + 5, &e);
    } else if (n == 11 && text[0] == '(' && text[5] == ',' && text[10] == ')') { /* (0010,0010) */
        ok = parse_hex4(text + 1, &g) && parse_hex4(text + 6, &e);
    }
    if (ok) {
        if (out)
            *out = MIRA_TAG(g, e);
        return true;
    }
    const mira_dict_entry *d = mira_dict_find_keyword(text);
    if (!d)
        return false;
    if (out)
        *out = d->tag; /* a repeating entry gives its first tag, e.g. (6000,3000) */
    return true;
}

const mira_uid_entry *mira_uid_find(const char *uid)
{
    if (!uid)
        return NULL;
    size_t lo = 0, hi = mira__uid_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(uid, mira__uid_entries[mid].uid);
        if (c == 0)
            return &mira__uid_entries[mid];
        if (c > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t mira_uid_count(void)
{
    return mira__uid_count;
}

const mira_uid_entry *mira_uid_at(size_t i)
{
    return i < mira__uid_count ? &mira__uid_entries[i] : NULL;
}
