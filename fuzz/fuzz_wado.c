/* Fuzz target: the routing of request paths and the checks of WADO-RS and WADO-URI requests
 * (frame lists, rendering and WADO-URI parameters, bulk data paths, Accept headers), without an
 * archive: every request is either refused with a 4xx reply that says why, or found valid. */
#include "web/web_int.h"

#include <string.h>

/* A reply is a refusal with its JSON message, or (status 0) nothing was wrong. */
static void check_reply(const mira__http_reply *r)
{
    if (r->status == 0)
        return;
    if (r->status < 400 || r->status >= 500 || r->body.len == 0 || r->stream)
        __builtin_trap();
}

/* The input: the request target (path and query), then '\n' and the Accept header, then '\n'
 * and the Range header. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = mira_malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *accept = strchr(text, '\n');
    char *range = NULL;
    if (accept) {
        *accept++ = 0;
        range = strchr(accept, '\n');
        if (range)
            *range++ = 0;
    }
    size_t tlen = strlen(text);
    const char *qm = memchr(text, '?', tlen);
    size_t plen = qm ? (size_t)(qm - text) : tlen;

    mira__http_reply r;
    mira__http_reply_init(&r);
    mira__route rt;
    if (!mira__route_match(text, plen, &rt, &r)) {
        if (r.status != 400 && r.status != 404)
            __builtin_trap();
    } else if (rt.wado) {
        if (!rt.uri && (!rt.study || (rt.level >= MIRA_LEVEL_SERIES && !rt.series) ||
                        (rt.level == MIRA_LEVEL_INSTANCE && !rt.sop)))
            __builtin_trap();
        mira__wado_request q = {
            .kind = rt.kind,
            .level = rt.level,
            .study = rt.study,
            .series = rt.series,
            .sop = rt.sop,
            .frames = rt.frames,
            .bulk = rt.bulk,
            .query = qm ? qm + 1 : "",
            .accept = accept,
            .range = range,
            .base_url = "http://127.0.0.1:8080/dicomweb",
            .uri = rt.uri,
        };
        mira__wado_serve(NULL, &q, &r);
        check_reply(&r);
    }
    mira__route_free(&rt);
    mira__http_reply_cleanup(&r);

    mira__media_range m[8];
    size_t n = mira__accept_parse(accept, m, 8);
    if (n > 8 || (accept && *accept == 0 && n != 1))
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        if (!m[i].type[0] || !(m[i].q > 0) || (i && m[i].q > m[i - 1].q))
            __builtin_trap();
        if (strlen(m[i].type) >= sizeof m[i].type || strlen(m[i].inner) >= sizeof m[i].inner)
            __builtin_trap();
    }
    mira_free(text);
    return 0;
}
