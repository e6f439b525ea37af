/* Query/Retrieve extended negotiation (PS3.4 C.5) and the hierarchical rules of identifiers. */
#include "qr_neg.h"

#include "retrieve.h"
#include "services.h"

#include "archive/archive_int.h"

#include <stdio.h>
#include <string.h>

bool mira__assoc_class_accepted(const mira__assoc *rq, const mira__assoc *ac, const char *sop_class)
{
    for (size_t i = 0; i < rq->npctx; i++) {
        if (strcmp(rq->pctx[i].abstract_syntax, sop_class) != 0)
            continue;
        for (size_t k = 0; k < ac->npctx; k++)
            if (ac->pctx[k].id == rq->pctx[i].id && ac->pctx[k].result == MIRA__PCTX_ACCEPTED)
                return true;
    }
    return false;
}

bool mira__assoc_ext_answered(const mira__assoc *ac, const char *sop_class)
{
    for (size_t i = 0; i < ac->next; i++)
        if (strcmp(ac->ext[i].sop_class, sop_class) == 0)
            return true;
    return false;
}

bool mira__qr_ext_negotiate(const mira__assoc *rq, mira__assoc *ac)
{
    for (size_t i = 0; i < rq->next; i++) {
        const mira__ext_neg *e = &rq->ext[i];
        bool find = mira__is_find_sop_class(e->sop_class);
        if ((!find && !mira__is_retrieve_sop_class(e->sop_class)) || e->len == 0 ||
            mira__assoc_ext_answered(ac, e->sop_class) ||
            !mira__assoc_class_accepted(rq, ac, e->sop_class))
            continue;
        /* FIND: relational queries, combined date-time matching, then fuzzy semantic matching
         * of person names, timezone query adjustment and enhanced multi-frame image conversion,
         * which mira does not do. MOVE, GET: relational retrieval, then enhanced multi-frame
         * image conversion. A field the requestor did not propose is not answered. */
        uint8_t info[5] = {0};
        size_t n = e->len < (find ? 5u : 2u) ? e->len : (find ? 5u : 2u);
        info[0] = e->info[0] == 1;
        if (find && n > 1)
            info[1] = e->info[1] == 1;
        if (!mira__assoc_add_ext(ac, e->sop_class, info, n))
            return false;
    }
    return true;
}

bool mira__qr_ext_agreed(const mira__association *as, const char *sop_class, size_t field)
{
    if (!sop_class || field == 0)
        return false;
    for (size_t i = 0; i < as->ac.next; i++)
        if (strcmp(as->ac.ext[i].sop_class, sop_class) == 0)
            return as->ac.ext[i].len >= field && as->ac.ext[i].info[field - 1] == 1;
    return false;
}

/* ------------------------------------------------------------------ hierarchical rules */

static const mira_tag unique_keys[] = {MIRA_TAG(0x0010, 0x0020), MIRA_TAG(0x0020, 0x000D),
                                       MIRA_TAG(0x0020, 0x000E), MIRA_TAG(0x0008, 0x0018)};
static const char *const unique_names[] = {"Patient ID", "Study Instance UID",
                                           "Series Instance UID", "SOP Instance UID"};

/* An element's whole value with the spaces around it removed (owned; NULL on out of memory). */
static char *trimmed(const mira_element *e)
{
    char *s = mira_element_length(e) ? mira_element_get_text(e, NULL) : mira_strdup("");
    if (!s)
        return NULL;
    char *p = s;
    while (*p == ' ')
        p++;
    size_t l = strlen(p);
    while (l && p[l - 1] == ' ')
        l--;
    memmove(s, p, l);
    s[l] = 0;
    return s;
}

/* Whether a key asks for matching rather than only for its value (PS3.4 C.2.2.2.3: empty or
 * "*" is universal matching); a sequence when one of its item's keys has a value. */
static bool matching(const mira_element *e)
{
    if (mira_element_vr(e) == MIRA_VR_SQ) {
        const mira_dataset *item = mira_element_item_count(e) ? mira_element_item(e, 0) : NULL;
        for (size_t i = 0; item && i < mira_dataset_count(item); i++)
            if (matching(mira_dataset_at(item, i)))
                return true;
        return false;
    }
    char *v = trimmed(e);
    bool m = !v || (*v && strcmp(v, "*") != 0);
    mira_free(v);
    return m;
}

bool mira__qr_hierarchical(const mira_dataset *ident, mira_level level, bool study_root,
                           bool find, char *why, size_t n)
{
    mira_level top = study_root ? MIRA_LEVEL_STUDY : MIRA_LEVEL_PATIENT;
    for (int l = (int)top; l < (int)level; l++) {
        const mira_element *e = mira_dataset_get(ident, unique_keys[l]);
        char *v = e ? trimmed(e) : NULL;
        bool single = v && *v && !strpbrk(v, "\\*?") && strcmp(v, "\"\"") != 0;
        mira_free(v);
        if (!single) {
            snprintf(why, n, "not relational: %s level needs one %s", mira_level_name(level),
                     unique_names[l]);
            return false;
        }
    }
    if (!find)
        return true;
    for (size_t i = 0; i < mira_dataset_count(ident); i++) {
        const mira_element *e = mira_dataset_at(ident, i);
        mira_tag tag = mira_element_tag(e);
        const mira__key *k = mira__key_find(tag);
        if (!k || k->kind == MIRA__KEY_COUNT)
            continue; /* not matched by the archive anyway */
        /* in the Study Root model, the patient's attributes are the study's */
        mira_level kl = study_root && k->level == MIRA_LEVEL_PATIENT ? MIRA_LEVEL_STUDY : k->level;
        if (kl >= level || tag == unique_keys[kl] || !matching(e))
            continue;
        const mira_dict_entry *d = mira_dict_find(tag);
        snprintf(why, n, "not relational: %s matches above %s",
                 d && *d->keyword ? d->keyword : "a key", mira_level_name(level));
        return false;
    }
    return true;
}
