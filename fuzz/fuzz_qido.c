/* Fuzz target: the QIDO-RS query string parser (percent decoding, parameters, value checks). */
#include "web/web_int.h"

#include <string.h>

/* The first byte chooses the resource (level and the UIDs of its path); the rest is the query
 * string after '?'. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    static const mira_level levels[] = {MIRA_LEVEL_STUDY, MIRA_LEVEL_SERIES, MIRA_LEVEL_SERIES,
                                        MIRA_LEVEL_INSTANCE, MIRA_LEVEL_INSTANCE,
                                        MIRA_LEVEL_INSTANCE};
    unsigned pick = data[0] % 6;
    const char *study = pick == 2 || pick >= 4 ? "1.2.840.10008.1" : NULL;
    const char *series = pick == 5 ? "1.2.840.10008.2" : NULL;
    const char *query = (const char *)data + 1;
    size_t len = size - 1;

    mira__qido_query q;
    mira_error *err = NULL;
    if (mira__qido_parse(levels[pick], study, series, query, len, &q, &err)) {
        if (!q.identifier || err)
            __builtin_trap();
        /* what the archive gets must be a data set the JSON writer takes */
        char *json = mira_dataset_to_json(q.identifier, NULL, NULL);
        if (!json)
            __builtin_trap();
        mira_free(json);
    } else {
        /* every refusal says why (it is the 400's message) */
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap();
        mira_error_free(err);
    }
    mira__qido_query_cleanup(&q);

    /* decoding alone: never longer than its input, and a NUL only where the input ends */
    err = NULL;
    char *d = mira__url_decode(query, len, true, &err);
    if (d) {
        if (strlen(d) > len)
            __builtin_trap();
        mira_free(d);
    } else {
        mira_error_free(err);
    }
    return 0;
}
