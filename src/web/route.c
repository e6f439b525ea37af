/* Routing: which DICOMweb resource a request's path names (PS3.18 10.4 to 10.6, 9). */
#include "web/web_int.h"

#include <string.h>

void mira__route_free(mira__route *rt)
{
    mira_free(rt->study);
    mira_free(rt->series);
    mira_free(rt->sop);
    mira_free(rt->frames);
    mira_free(rt->bulk);
    memset(rt, 0, sizeof *rt);
}

#define MAX_SEGMENTS 40

bool mira__route_match(const char *path, size_t len, mira__route *rt, mira__http_reply *r)
{
    memset(rt, 0, sizeof *rt);
    const char *seg[MAX_SEGMENTS];
    size_t seglen[MAX_SEGMENTS], n = 0;
    if (len == 0 || path[0] != '/') {
        mira__http_reply_error(r, 404, "no resource here");
        return false;
    }
    for (size_t i = 1; i <= len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (n == MAX_SEGMENTS) {
            n = MAX_SEGMENTS + 1;
            break;
        }
        seg[n] = path + i;
        seglen[n++] = j - i;
        i = j + 1;
    }
#define SEG(k, s) (seglen[k] == sizeof(s) - 1 && memcmp(seg[k], s, sizeof(s) - 1) == 0)
    bool found = false;
    int uid_at[3] = {-1, -1, -1}; /* study, series, instance */
    size_t rest = 0;              /* segments after the entity's path */
    if (n == 1 && SEG(0, "wado")) {
        rt->wado = rt->uri = found = true;
    } else if (n == 2 && SEG(0, "dicomweb") && SEG(1, "wado")) {
        rt->wado = rt->uri = found = true;
    } else if (n >= 2 && n <= MAX_SEGMENTS && SEG(0, "dicomweb")) {
        if (n == 2 && SEG(1, "studies")) {
            rt->level = MIRA_LEVEL_STUDY, rt->store = rt->search = found = true;
        } else if (n == 2 && SEG(1, "series")) {
            rt->level = MIRA_LEVEL_SERIES, rt->search = found = true;
        } else if (n == 2 && SEG(1, "instances")) {
            rt->level = MIRA_LEVEL_INSTANCE, rt->search = found = true;
        } else if (n >= 3 && SEG(1, "studies") && seglen[2] > 0) {
            uid_at[0] = 2;
            if (n == 4 && SEG(3, "series")) {
                rt->level = MIRA_LEVEL_SERIES, rt->search = found = true;
            } else if (n == 4 && SEG(3, "instances")) {
                rt->level = MIRA_LEVEL_INSTANCE, rt->search = found = true;
            } else if (n >= 5 && SEG(3, "series") && seglen[4] > 0) {
                uid_at[1] = 4;
                if (n == 6 && SEG(5, "instances")) {
                    rt->level = MIRA_LEVEL_INSTANCE, rt->search = found = true;
                } else if (n >= 7 && SEG(5, "instances") && seglen[6] > 0) {
                    uid_at[2] = 6;
                    rt->level = MIRA_LEVEL_INSTANCE, rt->wado = true, rest = 7;
                } else {
                    rt->level = MIRA_LEVEL_SERIES, rt->wado = true, rest = 5;
                }
            } else {
                rt->level = MIRA_LEVEL_STUDY, rt->wado = true, rest = 3;
                rt->store = n == 3; /* POST /dicomweb/studies/{study} */
            }
        }
        if (rt->wado) { /* what follows the entity: nothing, or one of its resources */
            size_t k = n - rest;
            bool inst = rt->level == MIRA_LEVEL_INSTANCE;
            if (k == 0) {
                rt->kind = MIRA__WADO_INSTANCES, found = true;
            } else if (k == 1 && SEG(rest, "metadata")) {
                rt->kind = MIRA__WADO_METADATA, found = true;
            } else if (k == 1 && SEG(rest, "rendered")) {
                rt->kind = MIRA__WADO_RENDERED, found = true;
            } else if (k == 1 && SEG(rest, "thumbnail")) {
                rt->kind = MIRA__WADO_THUMBNAIL, found = true;
            } else if (inst && (k == 2 || k == 3) && SEG(rest, "frames") && seglen[rest + 1]) {
                rt->frames = mira_strndup(seg[rest + 1], seglen[rest + 1]);
                if (k == 2)
                    rt->kind = MIRA__WADO_FRAMES, found = true;
                else if (SEG(rest + 2, "rendered"))
                    rt->kind = MIRA__WADO_RENDERED, found = true;
                else if (SEG(rest + 2, "thumbnail"))
                    rt->kind = MIRA__WADO_THUMBNAIL, found = true;
            } else if (inst && k >= 2 && SEG(rest, "bulkdata")) {
                const char *b = seg[rest + 1];
                rt->bulk = mira_strndup(b, (size_t)(path + len - b));
                rt->kind = MIRA__WADO_BULKDATA, found = true;
            }
        }
    }
#undef SEG
    if (!found) {
        mira__route_free(rt);
        mira__http_reply_error(r, 404, "no resource here (DICOMweb: /dicomweb/studies, "
                                       "/dicomweb/series, /dicomweb/instances and below; "
                                       "WADO-URI: /wado)");
        return false;
    }
    char **out[3] = {&rt->study, &rt->series, &rt->sop};
    static const char *const what[3] = {"Study Instance", "Series Instance", "SOP Instance"};
    for (int k = 0; k < 3; k++) {
        if (uid_at[k] < 0)
            continue;
        mira_error *err = NULL;
        char *uid = mira__url_decode(seg[uid_at[k]], seglen[uid_at[k]], false, &err);
        if (!uid || !mira__uid_valid(uid, strlen(uid))) {
            mira__http_reply_error(r, 400, "the %s UID in the path is not a UID%s%s", what[k],
                                   err ? ": " : "", err ? mira_error_get_message(err) : "");
            mira_error_free(err);
            mira_free(uid);
            mira__route_free(rt);
            return false;
        }
        *out[k] = uid;
    }
    return true;
}

