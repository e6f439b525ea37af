/* Fuzz target: the JSON parser and writer round trip, and the DICOM JSON model read on top. */
#include <mira/mira.h>

#include <string.h>

/* Write a parsed tree back through the streaming writer. */
static void write_value(mira_json_writer *w, const mira_json *v)
{
    switch (mira_json_get_type(v)) {
    case MIRA_JSON_NULL:
        mira_json_null(w);
        break;
    case MIRA_JSON_FALSE:
        mira_json_bool(w, false);
        break;
    case MIRA_JSON_TRUE:
        mira_json_bool(w, true);
        break;
    case MIRA_JSON_NUMBER: {
        /* alternate between the verbatim text and the double, to exercise both; numbers too
         * big for a double (1e999) keep their text, as the writer turns infinity into null */
        const char *t = mira_json_get_number_text(v);
        double d = mira_json_get_number(v);
        if ((strlen(t) & 1) || d - d != 0)
            mira_json_number_text(w, t, strlen(t));
        else
            mira_json_double(w, d);
        break;
    }
    case MIRA_JSON_STRING: {
        size_t len;
        const char *s = mira_json_get_string(v, &len);
        mira_json_string(w, s, len);
        break;
    }
    case MIRA_JSON_ARRAY:
        mira_json_begin_array(w);
        for (size_t i = 0; i < mira_json_count(v); i++)
            write_value(w, mira_json_at(v, i));
        mira_json_end_array(w);
        break;
    case MIRA_JSON_OBJECT:
        mira_json_begin_object(w);
        for (size_t i = 0; i < mira_json_count(v); i++) {
            mira_json_key(w, mira_json_key_at(v, i));
            write_value(w, mira_json_at(v, i));
        }
        mira_json_end_object(w);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    mira_error *err = NULL;
    mira_json *root = mira_json_parse((const char *)data, size, &err);
    if (!root) {
        /* every rejection must say why and where */
        if (!err || !strstr(mira_error_get_message(err), "offset"))
            __builtin_trap();
        mira_error_free(err);
        return 0;
    }
    for (int pretty = 0; pretty < 2; pretty++) {
        mira_json_writer *w = mira_json_writer_new(pretty);
        if (!w)
            __builtin_trap();
        write_value(w, root);
        size_t len;
        char *out = mira_json_writer_finish(w, &len, NULL);
        mira_json_writer_free(w);
        if (!out)
            __builtin_trap();
        mira_json *again = mira_json_parse(out, len, NULL);
        if (!again)
            __builtin_trap();
        if (mira_json_get_type(again) != mira_json_get_type(root) ||
            mira_json_count(again) != mira_json_count(root))
            __builtin_trap();
        mira_json_free(again);
        mira_free(out);
    }
    mira_json_free(root);

    /* the same text as a DICOM JSON instance: what mira reads, it writes, and reads again */
    mira_dataset *ds = mira_dataset_from_json((const char *)data, size, &err);
    if (!ds) {
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap();
        mira_error_free(err);
        return 0;
    }
    size_t len;
    char *json = mira_dataset_to_json(ds, NULL, NULL);
    if (!json)
        __builtin_trap();
    len = strlen(json);
    err = NULL;
    mira_dataset *again = mira_dataset_from_json(json, len, &err);
    if (!again)
        __builtin_trap();
    mira_dataset_free(again);
    mira_free(json);
    mira_dataset_free(ds);
    return 0;
}
