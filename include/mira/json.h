/* mira JSON: a strict RFC 8259 parser into a read-only tree, and a streaming writer. */
#ifndef MIRA_JSON_H
#define MIRA_JSON_H

#include "mira/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mira_json_type {
    MIRA_JSON_NULL = 0,
    MIRA_JSON_FALSE = 1,
    MIRA_JSON_TRUE = 2,
    MIRA_JSON_NUMBER = 3,
    MIRA_JSON_STRING = 4,
    MIRA_JSON_ARRAY = 5,
    MIRA_JSON_OBJECT = 6,
} mira_json_type;

typedef struct mira_json mira_json;

/* Parse a whole document (UTF-8, RFC 8259; depth limited to 512; duplicate keys kept).
 * Errors name the byte offset. The tree is owned by the caller: mira_json_free(). */
MIRA_API mira_json *mira_json_parse(const char *text, size_t len, mira_error **err);
MIRA_API void mira_json_free(mira_json *root);

MIRA_API mira_json_type mira_json_get_type(const mira_json *v);
/* Number value as a double (0 for non-numbers). */
MIRA_API double mira_json_get_number(const mira_json *v);
/* The number exactly as written in the document ("1.50e3"). Borrowed; NULL for non-numbers. */
MIRA_API const char *mira_json_get_number_text(const mira_json *v);
/* String value, UTF-8 with escapes resolved, NUL-terminated; *len (optional) excludes the NUL,
 * which may also occur inside (\u0000). Borrowed; NULL for non-strings. */
MIRA_API const char *mira_json_get_string(const mira_json *v, size_t *len);
/* Elements of an array, or members of an object. */
MIRA_API size_t mira_json_count(const mira_json *v);
MIRA_API mira_json *mira_json_at(const mira_json *v, size_t i);
/* Key of the i-th member of an object. Borrowed. */
MIRA_API const char *mira_json_key_at(const mira_json *v, size_t i);
/* The first member of an object with this key, or NULL. Borrowed. */
MIRA_API mira_json *mira_json_get(const mira_json *v, const char *key);

/* A streaming writer into a growing buffer. Commas and (with pretty) indentation are automatic. */
typedef struct mira_json_writer mira_json_writer;

MIRA_API mira_json_writer *mira_json_writer_new(bool pretty);
MIRA_API void mira_json_writer_free(mira_json_writer *w);
MIRA_API void mira_json_begin_object(mira_json_writer *w);
MIRA_API void mira_json_end_object(mira_json_writer *w);
MIRA_API void mira_json_begin_array(mira_json_writer *w);
MIRA_API void mira_json_end_array(mira_json_writer *w);
/* The key of the next member (inside an object). */
MIRA_API void mira_json_key(mira_json_writer *w, const char *key);
/* A string value of len bytes of UTF-8 (invalid UTF-8 is replaced by U+FFFD). */
MIRA_API void mira_json_string(mira_json_writer *w, const char *s, size_t len);
MIRA_API void mira_json_cstring(mira_json_writer *w, const char *s);
MIRA_API void mira_json_int(mira_json_writer *w, int64_t v);
MIRA_API void mira_json_uint(mira_json_writer *w, uint64_t v);
/* Shortest representation that reads back as the same double; NaN/Inf become null. */
MIRA_API void mira_json_double(mira_json_writer *w, double v);
/* A number written verbatim (must be valid JSON number text). */
MIRA_API void mira_json_number_text(mira_json_writer *w, const char *text, size_t len);
MIRA_API void mira_json_bool(mira_json_writer *w, bool v);
MIRA_API void mira_json_null(mira_json_writer *w);
/* Write an already-serialized JSON value verbatim. */
MIRA_API void mira_json_raw(mira_json_writer *w, const char *json, size_t len);
/* Detach the document (NUL-terminated, caller frees with mira_free); NULL if an allocation
 * failed at any point. The writer is left empty and can be freed. */
MIRA_API char *mira_json_writer_finish(mira_json_writer *w, size_t *len, mira_error **err);

#ifdef __cplusplus
}
#endif
#endif
