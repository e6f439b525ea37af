/* MIME media types (RFC 2045/9110) and a streaming multipart body parser (RFC 2046 5.1), for
 * STOW-RS uploads and multipart/related requests (PS3.18 8.6). Internal. */
#ifndef MIRA_WEB_MULTIPART_H
#define MIRA_WEB_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRA__MEDIA_PARAMS 8
#define MIRA__MEDIA_TOKEN 128
#define MIRA__MEDIA_VALUE 256

/* A media type: "type/subtype; name=value; ...", names and type lower-cased, values as given
 * (quoted strings unquoted). */
typedef struct mira__media_type {
    char type[MIRA__MEDIA_TOKEN], subtype[MIRA__MEDIA_TOKEN];
    size_t nparams;
    struct {
        char name[MIRA__MEDIA_TOKEN];
        char value[MIRA__MEDIA_VALUE];
    } params[MIRA__MEDIA_PARAMS];
} mira__media_type;

/* Parse s (a Content-Type value); false with the reason in why if it is not one. */
bool mira__media_type_parse(const char *s, mira__media_type *out, char *why, size_t n);
/* A parameter's value (name compared without case), or NULL. */
const char *mira__media_type_param(const mira__media_type *m, const char *name);
/* Whether b is a boundary RFC 2046 allows: 1-70 characters of bchars, not ending in a space. */
bool mira__boundary_valid(const char *b);

#define MIRA__PART_HEADERS 16

/* The headers of one part: names lower-cased, values with surrounding blanks removed and
 * folded lines joined. */
typedef struct mira__part_headers {
    size_t n;
    const char *name[MIRA__PART_HEADERS];
    const char *value[MIRA__PART_HEADERS];
} mira__part_headers;

/* A header's value (name lower-case), or NULL. */
const char *mira__part_header(const mira__part_headers *h, const char *name);

/* What the parser calls, in order, for each part: begin, data (any number of times, the
 * part's bytes in order, never empty), end. Returning false stops the parse (an error whose
 * reason is "stopped"). */
typedef struct mira__multipart_cb {
    bool (*begin)(void *ctx, const mira__part_headers *h);
    bool (*data)(void *ctx, const uint8_t *p, size_t n);
    bool (*end)(void *ctx);
} mira__multipart_cb;

typedef struct mira__multipart mira__multipart;

/* A parser for a body whose boundary is boundary (valid, see above). max_header bounds each
 * part's header block (0: 16 KiB); max_parts the parts (0: no limit). NULL on OOM or a bad
 * boundary. */
mira__multipart *mira__multipart_new(const char *boundary, const mira__multipart_cb *cb,
                                     void *ctx, size_t max_header, size_t max_parts);
/* The next n bytes of the body, in any split. False once the body is malformed or a callback
 * stopped (then mira__multipart_error says why; later calls do nothing and return false). */
bool mira__multipart_feed(mira__multipart *m, const uint8_t *p, size_t n);
/* The body ended: true if it was whole (its close delimiter seen, no error). */
bool mira__multipart_finish(mira__multipart *m);
/* Why the parse failed ("" while it has not). */
const char *mira__multipart_error(const mira__multipart *m);
/* Parts begun so far. */
size_t mira__multipart_parts(const mira__multipart *m);
void mira__multipart_free(mira__multipart *m);

#endif
