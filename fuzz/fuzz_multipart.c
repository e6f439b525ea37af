/* Fuzz target: the multipart parser (RFC 2046 5.1.1) and the media type parser. The body is
 * parsed whole and again in pieces of a size the input picks: both must give the same parts,
 * headers, bytes and outcome, whatever the split.
 *
 * Input: byte 0, the boundary's length (1-70); byte 1, the piece size; then the boundary
 * (its bytes mapped onto the characters a boundary may hold), then the body. An input of
 * fewer bytes is read as a Content-Type value instead. */
#include "web/multipart.h"

#include <stdlib.h>
#include <string.h>

typedef struct result {
    uint8_t *bytes; /* every part's headers and data, in order, with separators */
    size_t len, cap;
    size_t begins, ends;
} result;

static void add(result *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 64;
        r->bytes = realloc(r->bytes, r->cap);
        if (!r->bytes)
            abort();
    }
    memcpy(r->bytes + r->len, p, n);
    r->len += n;
}

static bool on_begin(void *ctx, const mira__part_headers *h)
{
    result *r = ctx;
    r->begins++;
    for (size_t i = 0; i < h->n; i++) {
        add(r, h->name[i], strlen(h->name[i]) + 1);
        add(r, h->value[i], strlen(h->value[i]) + 1);
    }
    add(r, "\x01", 1);
    return true;
}

static bool on_data(void *ctx, const uint8_t *p, size_t n)
{
    if (n == 0)
        __builtin_trap(); /* never an empty piece */
    add(ctx, p, n);
    return true;
}

static bool on_end(void *ctx)
{
    result *r = ctx;
    r->ends++;
    if (r->ends > r->begins)
        __builtin_trap();
    add(r, "\x02", 1);
    return true;
}

static bool run(const char *boundary, const uint8_t *body, size_t n, size_t step, result *r,
                char *err, size_t errn)
{
    static const mira__multipart_cb cb = {on_begin, on_data, on_end};
    mira__multipart *m = mira__multipart_new(boundary, &cb, r, 512, 64);
    if (!m)
        __builtin_trap(); /* the boundary is valid by construction */
    bool ok = true;
    for (size_t off = 0; off < n && ok;) {
        size_t k = step && n - off > step ? step : n - off;
        ok = mira__multipart_feed(m, body + off, k);
        off += k;
    }
    ok = mira__multipart_finish(m) && ok;
    strncpy(err, mira__multipart_error(m), errn - 1);
    err[errn - 1] = 0;
    if (ok != !err[0])
        __builtin_trap(); /* an error always says why, and only an error does */
    mira__multipart_free(m);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    if (size < 3) {
        char s[3] = {0};
        memcpy(s, data, size);
        mira__media_type mt;
        char why[64];
        mira__media_type_parse(s, &mt, why, sizeof why);
        return 0;
    }
    size_t blen = 1 + data[0] % 70, step = 1 + data[1];
    if (size < 2 + blen) {
        /* short: a Content-Type value */
        char *s = malloc(size + 1);
        memcpy(s, data, size);
        for (size_t i = 0; i < size; i++)
            if (!s[i])
                s[i] = ' ';
        s[size] = 0;
        mira__media_type mt;
        char why[64];
        if (mira__media_type_parse(s, &mt, why, sizeof why) && !mt.type[0])
            __builtin_trap();
        free(s);
        return 0;
    }
    static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyz'()+_,-./:=?";
    char boundary[71];
    for (size_t i = 0; i < blen; i++)
        boundary[i] = bchars[data[2 + i] % (sizeof bchars - 1)];
    boundary[blen] = 0;
    const uint8_t *body = data + 2 + blen;
    size_t n = size - 2 - blen;
    result whole = {0}, pieces = {0};
    char e1[160], e2[160];
    bool ok1 = run(boundary, body, n, 0, &whole, e1, sizeof e1);
    bool ok2 = run(boundary, body, n, step, &pieces, e2, sizeof e2);
    if (ok1 != ok2 || whole.begins != pieces.begins || whole.ends != pieces.ends ||
        (ok1 && (whole.len != pieces.len ||
                 (whole.len && memcmp(whole.bytes, pieces.bytes, whole.len)))))
        __builtin_trap();
    if (ok1 && whole.begins != whole.ends)
        __builtin_trap(); /* a whole body ends every part it began */
    free(whole.bytes);
    free(pieces.bytes);
    return 0;
}
