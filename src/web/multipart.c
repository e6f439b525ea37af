/* Media types and a streaming multipart parser (RFC 2046 5.1.1, RFC 9110 8.3.1). */
#include "web/multipart.h"

#include "mira/core.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ media types */

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* A token into out (lower-cased if fold): the end, or NULL if none or too long. */
static const char *token(const char *s, char *out, size_t cap, bool fold)
{
    size_t n = 0;
    while (tchar(*s)) {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = fold ? lower(*s) : *s;
        s++;
    }
    out[n] = 0;
    return n ? s : NULL;
}

static bool fail(char *why, size_t n, const char *msg)
{
    if (why && n)
        snprintf(why, n, "%s", msg);
    return false;
}

bool mira__media_type_parse(const char *s, mira__media_type *out, char *why, size_t n)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return fail(why, n, "no media type");
    s = skip_ows(s);
    if (!(s = token(s, out->type, sizeof out->type, true)) || *s++ != '/' ||
        !(s = token(s, out->subtype, sizeof out->subtype, true)))
        return fail(why, n, "not a media type (type/subtype)");
    for (;;) {
        s = skip_ows(s);
        if (!*s)
            return true;
        if (*s++ != ';')
            return fail(why, n, "junk after the media type's parameters");
        s = skip_ows(s);
        if (!*s || *s == ';')
            continue; /* an empty parameter, which RFC 9110 allows */
        if (out->nparams == MIRA__MEDIA_PARAMS)
            return fail(why, n, "too many media type parameters");
        char *name = out->params[out->nparams].name, *value = out->params[out->nparams].value;
        if (!(s = token(s, name, MIRA__MEDIA_TOKEN, true)) || *s++ != '=')
            return fail(why, n, "a media type parameter is not name=value");
        size_t len = 0;
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (!*s)
                    return fail(why, n, "an unterminated quoted string in the media type");
                if (*s == '\\' && s[1])
                    s++;
                if ((unsigned char)*s < 0x20 && *s != '\t')
                    return fail(why, n, "a control character in the media type");
                if (len + 1 >= MIRA__MEDIA_VALUE)
                    return fail(why, n, "a media type parameter is too long");
                value[len++] = *s;
            }
            s++;
            value[len] = 0;
        } else if (!(s = token(s, value, MIRA__MEDIA_VALUE, false))) {
            return fail(why, n, "a media type parameter has no value (or one too long)");
        }
        for (size_t i = 0; i < out->nparams; i++)
            if (strcmp(out->params[i].name, name) == 0)
                return fail(why, n, "a media type parameter is given twice");
        out->nparams++;
    }
}

const char *mira__media_type_param(const mira__media_type *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++) {
        const char *a = m->params[i].name, *b = name;
        while (*a && lower(*a) == lower(*b))
            a++, b++;
        if (!*a && !*b)
            return m->params[i].value;
    }
    return NULL;
}

bool mira__boundary_valid(const char *b)
{
    /* bchars := bcharsnospace / " " (RFC 2046 5.1.1) */
    size_t n = b ? strlen(b) : 0;
    if (n < 1 || n > 70 || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("'()+_,-./:=? ", c)))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ the parser */

typedef enum state {
    PREAMBLE,   /* before the first delimiter: ignored */
    AFTER,      /* just after a delimiter: "--", padding, CRLF */
    AFTER_DASH, /* one '-' of the close delimiter seen */
    AFTER_CR,   /* the CR of the CRLF after a delimiter */
    HEADERS,    /* a part's header block */
    BODY,       /* a part's content */
    EPILOGUE,   /* after the close delimiter: ignored */
    FAILED,
} state;

struct mira__multipart {
    mira__multipart_cb cb;
    void *ctx;
    state st;
    size_t max_header, max_parts, parts;
    /* the delimiter: CRLF "--" boundary */
    char delim[80];
    size_t dlen;
    /* bytes that may begin a delimiter, held back until the next ones tell */
    char pending[80];
    size_t npending;
    char *hdr; /* the header block being read (max_header + 1 bytes) */
    size_t nhdr;
    char error[160];
};

static bool set_error(mira__multipart *m, const char *msg)
{
    if (m->st != FAILED)
        snprintf(m->error, sizeof m->error, "%s", msg);
    m->st = FAILED;
    return false;
}

mira__multipart *mira__multipart_new(const char *boundary, const mira__multipart_cb *cb,
                                     void *ctx, size_t max_header, size_t max_parts)
{
    if (!mira__boundary_valid(boundary))
        return NULL;
    mira__multipart *m = mira_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->max_header = max_header ? max_header : 16384;
    m->hdr = mira_malloc(m->max_header + 1);
    if (!m->hdr) {
        mira_free(m);
        return NULL;
    }
    m->cb = *cb;
    m->ctx = ctx;
    m->max_parts = max_parts;
    m->dlen = (size_t)snprintf(m->delim, sizeof m->delim, "\r\n--%s", boundary);
    /* a body may open with its boundary: as if a CRLF came before it (the delimiter's CRLF
     * belongs to what precedes it, here the empty preamble) */
    memcpy(m->pending, "\r\n", 2);
    m->npending = 2;
    m->st = PREAMBLE;
    return m;
}

void mira__multipart_free(mira__multipart *m)
{
    if (!m)
        return;
    mira_free(m->hdr);
    mira_free(m);
}

const char *mira__multipart_error(const mira__multipart *m)
{
    return m->error;
}

size_t mira__multipart_parts(const mira__multipart *m)
{
    return m->parts;
}

/* Content bytes: to the part in BODY, dropped in the preamble. */
static bool emit(mira__multipart *m, const uint8_t *p, size_t n)
{
    if (m->st != BODY || n == 0)
        return true;
    return !m->cb.data || m->cb.data(m->ctx, p, n) || set_error(m, "stopped");
}

/* A delimiter was found: the part in BODY ends. */
static bool delimiter(mira__multipart *m)
{
    if (m->st == BODY && m->cb.end && !m->cb.end(m->ctx))
        return set_error(m, "stopped");
    m->st = AFTER;
    return true;
}

/* Drop the held-back bytes that can no longer begin a delimiter (they are content). */
static bool settle_pending(mira__multipart *m)
{
    size_t k = 0;
    while (k < m->npending && memcmp(m->pending + k, m->delim, m->npending - k) != 0)
        k++;
    if (k && !emit(m, (const uint8_t *)m->pending, k))
        return false;
    memmove(m->pending, m->pending + k, m->npending - k);
    m->npending -= k;
    return true;
}

/* Content (PREAMBLE or BODY) up to a delimiter: consumes what it looks at; *used says how
 * much of p. */
static bool scan_content(mira__multipart *m, const uint8_t *p, size_t n, size_t *used)
{
    *used = 0;
    if (m->npending) {
        size_t take = m->dlen - m->npending < n ? m->dlen - m->npending : n;
        if (memcmp(p, m->delim + m->npending, take) == 0) {
            memcpy(m->pending + m->npending, p, take);
            m->npending += take;
            *used = take;
            if (m->npending < m->dlen)
                return true;
            m->npending = 0;
            return delimiter(m);
        }
        /* no delimiter there: the first held byte is content, and the rest is looked at
         * again (a later one may begin a delimiter) */
        if (!emit(m, (const uint8_t *)m->pending, 1))
            return false;
        memmove(m->pending, m->pending + 1, --m->npending);
        return settle_pending(m);
    }
    const uint8_t *hit = memmem(p, n, m->delim, m->dlen);
    if (hit) {
        if (!emit(m, p, (size_t)(hit - p)))
            return false;
        *used = (size_t)(hit - p) + m->dlen;
        return delimiter(m);
    }
    /* the longest end of p that begins a delimiter is held back */
    size_t keep = 0;
    for (size_t i = n > m->dlen - 1 ? n - (m->dlen - 1) : 0; i < n && !keep; i++)
        if (p[i] == '\r' && memcmp(p + i, m->delim, n - i) == 0)
            keep = n - i;
    if (!emit(m, p, n - keep))
        return false;
    memcpy(m->pending, p + n - keep, keep);
    m->npending = keep;
    *used = n;
    return true;
}

/* The header block (without its final blank line) parsed, and the part begun. */
static bool begin_part(mira__multipart *m)
{
    mira__part_headers h;
    memset(&h, 0, sizeof h);
    char *s = m->hdr, *end = m->hdr + m->nhdr;
    *end = 0;
    while (s < end) {
        char *eol = strstr(s, "\r\n");
        if (!eol)
            eol = end;
        *eol = 0;
        if (*s == ' ' || *s == '\t') {
            /* a folded line (obsolete, RFC 5322 3.2.2): joins the previous value */
            if (!h.n)
                return set_error(m, "a part's headers begin with a continuation line");
            char *prev_end = (char *)h.value[h.n - 1] + strlen(h.value[h.n - 1]);
            /* the previous value ends before this line's CRLF: shift this line's text down */
            *prev_end++ = ' ';
            char *t = (char *)skip_ows(s);
            memmove(prev_end, t, strlen(t) + 1);
        } else {
            char *colon = strchr(s, ':');
            if (!colon || colon == s)
                return set_error(m, "a part's header line is not name: value");
            for (char *c = s; c < colon; c++) {
                if (!tchar(*c))
                    return set_error(m, "a part's header name is not a token");
                *c = lower(*c);
            }
            *colon = 0;
            if (h.n == MIRA__PART_HEADERS)
                return set_error(m, "too many headers in a part");
            h.name[h.n] = s;
            h.value[h.n] = skip_ows(colon + 1);
            h.n++;
        }
        s = eol + 2;
    }
    for (size_t i = 0; i < h.n; i++) {
        /* trailing blanks off each value */
        char *v = (char *)h.value[i], *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        for (char *c = v; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                return set_error(m, "a control character in a part's header");
    }
    m->parts++;
    if (m->max_parts && m->parts > m->max_parts)
        return set_error(m, "too many parts");
    m->st = BODY;
    return !m->cb.begin || m->cb.begin(m->ctx, &h) || set_error(m, "stopped");
}

bool mira__multipart_feed(mira__multipart *m, const uint8_t *p, size_t n)
{
    while (n && m->st != FAILED) {
        size_t used = 1;
        uint8_t c = *p;
        switch (m->st) {
        case PREAMBLE:
        case BODY:
            if (!scan_content(m, p, n, &used))
                return false;
            break;
        case AFTER:
            if (c == '-')
                m->st = AFTER_DASH;
            else if (c == '\r')
                m->st = AFTER_CR;
            else if (c != ' ' && c != '\t')
                return set_error(m, "a boundary is followed by something other than CRLF");
            break;
        case AFTER_DASH:
            if (c != '-')
                return set_error(m, "a boundary is followed by something other than CRLF");
            m->st = EPILOGUE;
            break;
        case AFTER_CR:
            if (c != '\n')
                return set_error(m, "a boundary is followed by something other than CRLF");
            m->st = HEADERS;
            m->nhdr = 0;
            break;
        case HEADERS:
            if (m->nhdr == m->max_header)
                return set_error(m, "a part's headers are too long");
            m->hdr[m->nhdr++] = (char)c;
            if (m->nhdr == 2 && memcmp(m->hdr, "\r\n", 2) == 0) {
                m->nhdr = 0; /* no headers at all */
                if (!begin_part(m))
                    return false;
            } else if (m->nhdr >= 4 && memcmp(m->hdr + m->nhdr - 4, "\r\n\r\n", 4) == 0) {
                m->nhdr -= 2; /* the last line's CRLF kept, the blank line's dropped */
                if (!begin_part(m))
                    return false;
            }
            break;
        case EPILOGUE:
            used = n;
            break;
        case FAILED:
            break;
        }
        p += used;
        n -= used;
    }
    return m->st != FAILED;
}

bool mira__multipart_finish(mira__multipart *m)
{
    if (m->st == FAILED)
        return false;
    if (m->st != EPILOGUE)
        return set_error(m, m->parts ? "the body ends before its closing boundary"
                                     : "no boundary in the body");
    return true;
}

const char *mira__part_header(const mira__part_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}
