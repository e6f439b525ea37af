/* JSON (RFC 8259): a strict parser into a read-only arena tree, and a streaming writer. */
#include "mira/json.h"

#include "buf.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 512

/* ------------------------------------------------------------------ numbers, locale-proof */

/* strtod and printf follow LC_NUMERIC; JSON does not. Conversions run under the C locale
 * (per thread, with uselocale) so a program that calls setlocale() still gets '.' decimals. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static locale_t enter_c_locale(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale ? uselocale(c_locale) : (locale_t)0;
}

static void leave_c_locale(locale_t old)
{
    if (old)
        uselocale(old);
}

/* ------------------------------------------------------------------ the tree */

struct mira_json {
    uint8_t type;    /* mira_json_type */
    bool is_root;    /* the document's root: mira_json_free() accepts only it */
    size_t len;      /* items of an array/object, bytes of a string/number text */
    const char *key; /* member name when inside an object, else NULL */
    union {
        struct {
            char *text; /* string contents, or the number as written; NUL-terminated */
            double num;
        } s;
        mira_json *items; /* contiguous children */
    } u;
};

/* Nodes, strings and child arrays of one document live in a chain of blocks. */
typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[]; /* flexible, maximally aligned */
} block;

typedef struct json_doc {
    mira_json root; /* first, so the root's address is the document's */
    block *blocks;
} json_doc;

#define BLOCK_SIZE ((size_t)16384)

static void *arena_alloc(json_doc *doc, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    block *b = doc->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > BLOCK_SIZE / 4 ? size : BLOCK_SIZE;
        block *nb = mira_malloc(sizeof(block) + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && cap != BLOCK_SIZE) {
            /* a big dedicated block goes behind the current one, which keeps its free space */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            doc->blocks = nb;
        }
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

/* ------------------------------------------------------------------ parsing */

typedef struct parser {
    const unsigned char *p;
    size_t len, pos;
    json_doc *doc;
    mira_json *stack; /* values whose container is still open */
    size_t nstack, capstack;
    mira_error **err;
    bool failed;
} parser;

static void fail(parser *ps, mira_error_code code, const char *fmt, ...) MIRA_PRINTF(3, 4);

static void fail(parser *ps, mira_error_code code, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = true;
    if (code == MIRA_ERR_NOMEM) {
        mira_error_set(ps->err, MIRA_ERR_NOMEM, NULL, "Out of memory");
        return;
    }
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mira_error_set(ps->err, code, code == MIRA_ERR_LIMIT ? "JSON too deep" : "Invalid JSON",
                   "JSON: %s", msg);
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (avail < n)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F; /* no UTF-16 surrogates */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing above U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void skip_ws(parser *ps)
{
    while (ps->pos < ps->len) {
        unsigned char c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

/* Describe the byte at the current position for an error message. */
static void describe_here(parser *ps, char *out, size_t n)
{
    if (ps->pos >= ps->len) {
        snprintf(out, n, "end of input");
        return;
    }
    unsigned char c = ps->p[ps->pos];
    if (c >= 0x21 && c < 0x7F)
        snprintf(out, n, "'%c'", c);
    else if (c < 0x80)
        snprintf(out, n, "byte 0x%02X", c);
    else
        snprintf(out, n, "non-ASCII character"); /* invalid UTF-8 is reported before this */
}

static void fail_expected(parser *ps, const char *what)
{
    if (ps->pos < ps->len && ps->p[ps->pos] >= 0x80 &&
        !utf8_seq(ps->p + ps->pos, ps->len - ps->pos)) {
        fail(ps, MIRA_ERR_INVALID, "invalid UTF-8 (byte 0x%02X) at offset %zu", ps->p[ps->pos],
             ps->pos);
        return;
    }
    char here[48];
    describe_here(ps, here, sizeof here);
    fail(ps, MIRA_ERR_INVALID, "expected %s at offset %zu (found %s)", what, ps->pos, here);
}

static bool push(parser *ps, const mira_json *v)
{
    if (ps->nstack == ps->capstack) {
        size_t cap = ps->capstack ? ps->capstack * 2 : 64;
        mira_json *s = mira_realloc(ps->stack, cap * sizeof *s);
        if (!s) {
            fail(ps, MIRA_ERR_NOMEM, "out of memory");
            return false;
        }
        ps->stack = s;
        ps->capstack = cap;
    }
    ps->stack[ps->nstack++] = *v;
    return true;
}

static int hex4(const unsigned char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* A string at ps->pos (the opening quote): decoded into the arena. */
static char *parse_string(parser *ps, size_t *out_len)
{
    size_t start = ps->pos;
    size_t i = start + 1;
    /* find the closing quote first: the decoded text is never longer than the raw text */
    while (i < ps->len && ps->p[i] != '"')
        i += ps->p[i] == '\\' ? 2 : 1;
    if (i >= ps->len) {
        fail(ps, MIRA_ERR_INVALID, "unterminated string starting at offset %zu", start);
        return NULL;
    }
    size_t end = i;
    char *out = arena_alloc(ps->doc, end - start);
    if (!out) {
        fail(ps, MIRA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t o = 0;
    i = start + 1;
    while (i < end) {
        unsigned char c = ps->p[i];
        if (c == '\\') {
            unsigned char e = ps->p[i + 1];
            switch (e) {
            case '"':
                out[o++] = '"';
                i += 2;
                continue;
            case '\\':
                out[o++] = '\\';
                i += 2;
                continue;
            case '/':
                out[o++] = '/';
                i += 2;
                continue;
            case 'b':
                out[o++] = '\b';
                i += 2;
                continue;
            case 'f':
                out[o++] = '\f';
                i += 2;
                continue;
            case 'n':
                out[o++] = '\n';
                i += 2;
                continue;
            case 'r':
                out[o++] = '\r';
                i += 2;
                continue;
            case 't':
                out[o++] = '\t';
                i += 2;
                continue;
            case 'u':
                break;
            default:
                if (e >= 0x21 && e < 0x7F)
                    fail(ps, MIRA_ERR_INVALID, "invalid escape '\\%c' at offset %zu", e, i);
                else
                    fail(ps, MIRA_ERR_INVALID,
                         "invalid escape (byte 0x%02X after '\\') at offset %zu", e, i);
                return NULL;
            }
            int cp = end - i >= 6 ? hex4(ps->p + i + 2) : -1;
            if (cp < 0) {
                fail(ps, MIRA_ERR_INVALID, "invalid \\u escape (needs 4 hex digits) at offset %zu",
                     i);
                return NULL;
            }
            uint32_t u = (uint32_t)cp;
            if (u >= 0xDC00 && u <= 0xDFFF) {
                fail(ps, MIRA_ERR_INVALID, "lone low surrogate \\u%04X at offset %zu", u, i);
                return NULL;
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                int lo = end - i >= 12 && ps->p[i + 6] == '\\' && ps->p[i + 7] == 'u'
                             ? hex4(ps->p + i + 8)
                             : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, MIRA_ERR_INVALID,
                         "high surrogate \\u%04X not followed by a low surrogate at offset %zu", u,
                         i);
                    return NULL;
                }
                u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                i += 6;
            }
            o += put_utf8(out + o, u);
            i += 6;
            continue;
        }
        if (c < 0x20) {
            fail(ps, MIRA_ERR_INVALID, "unescaped control character 0x%02X in string at offset %zu",
                 c, i);
            return NULL;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        size_t n = utf8_seq(ps->p + i, end - i);
        if (!n) {
            fail(ps, MIRA_ERR_INVALID, "invalid UTF-8 (byte 0x%02X) at offset %zu", c, i);
            return NULL;
        }
        memcpy(out + o, ps->p + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    ps->pos = end + 1;
    *out_len = o;
    return out;
}

static bool parse_number(parser *ps, mira_json *v)
{
    size_t start = ps->pos, i = start;
    const unsigned char *p = ps->p;
    size_t n = ps->len;
    if (i < n && p[i] == '-')
        i++;
    if (i >= n || p[i] < '0' || p[i] > '9') {
        fail(ps, MIRA_ERR_INVALID, "expected a digit at offset %zu", i);
        return false;
    }
    if (p[i] == '0') {
        i++;
        if (i < n && p[i] >= '0' && p[i] <= '9') {
            fail(ps, MIRA_ERR_INVALID, "leading zero in number at offset %zu", start);
            return false;
        }
    } else {
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < n && p[i] == '.') {
        i++;
        if (i >= n || p[i] < '0' || p[i] > '9') {
            fail(ps, MIRA_ERR_INVALID, "expected a digit after '.' at offset %zu", i);
            return false;
        }
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || p[i] < '0' || p[i] > '9') {
            fail(ps, MIRA_ERR_INVALID, "expected a digit in exponent at offset %zu", i);
            return false;
        }
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    size_t len = i - start;
    char *text = arena_alloc(ps->doc, len + 1);
    if (!text) {
        fail(ps, MIRA_ERR_NOMEM, "out of memory");
        return false;
    }
    memcpy(text, p + start, len);
    text[len] = '\0';
    locale_t old = enter_c_locale();
    double d = strtod(text, NULL);
    leave_c_locale(old);
    v->type = MIRA_JSON_NUMBER;
    v->len = len;
    v->u.s.text = text;
    v->u.s.num = d;
    ps->pos = i;
    return true;
}

static bool parse_value(parser *ps, int depth);

/* Close a container: its children (stack[base..]) move into the arena. */
static bool close_container(parser *ps, size_t base, mira_json_type type)
{
    size_t count = ps->nstack - base;
    mira_json *items = NULL;
    if (count) {
        if (count > SIZE_MAX / sizeof *items) {
            fail(ps, MIRA_ERR_NOMEM, "out of memory");
            return false;
        }
        items = arena_alloc(ps->doc, count * sizeof *items);
        if (!items) {
            fail(ps, MIRA_ERR_NOMEM, "out of memory");
            return false;
        }
        memcpy(items, ps->stack + base, count * sizeof *items);
    }
    ps->nstack = base;
    mira_json v = {.type = (uint8_t)type, .len = count};
    v.u.items = items;
    return push(ps, &v);
}

static bool parse_array(parser *ps, int depth)
{
    size_t base = ps->nstack;
    ps->pos++; /* '[' */
    skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == ']') {
        ps->pos++;
        return close_container(ps, base, MIRA_JSON_ARRAY);
    }
    for (;;) {
        if (!parse_value(ps, depth))
            return false;
        skip_ws(ps);
        if (ps->pos < ps->len && ps->p[ps->pos] == ',') {
            ps->pos++;
            skip_ws(ps);
            if (ps->pos < ps->len && ps->p[ps->pos] == ']') {
                fail(ps, MIRA_ERR_INVALID, "trailing comma before ']' at offset %zu", ps->pos);
                return false;
            }
            continue;
        }
        if (ps->pos < ps->len && ps->p[ps->pos] == ']') {
            ps->pos++;
            return close_container(ps, base, MIRA_JSON_ARRAY);
        }
        fail_expected(ps, "',' or ']'");
        return false;
    }
}

static bool parse_object(parser *ps, int depth)
{
    size_t base = ps->nstack;
    ps->pos++; /* '{' */
    skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
        ps->pos++;
        return close_container(ps, base, MIRA_JSON_OBJECT);
    }
    for (;;) {
        if (ps->pos >= ps->len || ps->p[ps->pos] != '"') {
            fail_expected(ps, "a string key");
            return false;
        }
        size_t klen;
        char *key = parse_string(ps, &klen);
        if (!key)
            return false;
        skip_ws(ps);
        if (ps->pos >= ps->len || ps->p[ps->pos] != ':') {
            fail_expected(ps, "':'");
            return false;
        }
        ps->pos++;
        skip_ws(ps);
        if (!parse_value(ps, depth))
            return false;
        ps->stack[ps->nstack - 1].key = key;
        skip_ws(ps);
        if (ps->pos < ps->len && ps->p[ps->pos] == ',') {
            ps->pos++;
            skip_ws(ps);
            if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
                fail(ps, MIRA_ERR_INVALID, "trailing comma before '}' at offset %zu", ps->pos);
                return false;
            }
            continue;
        }
        if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
            ps->pos++;
            return close_container(ps, base, MIRA_JSON_OBJECT);
        }
        fail_expected(ps, "',' or '}'");
        return false;
    }
}

static bool literal(parser *ps, const char *word, mira_json_type type)
{
    size_t n = strlen(word);
    if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n) != 0) {
        fail_expected(ps, "a value");
        return false;
    }
    ps->pos += n;
    mira_json v = {.type = (uint8_t)type};
    return push(ps, &v);
}

/* One value at ps->pos (whitespace already skipped), pushed on the stack. */
static bool parse_value(parser *ps, int depth)
{
    if (ps->pos >= ps->len) {
        fail(ps, MIRA_ERR_INVALID, "expected a value at offset %zu (found end of input)", ps->pos);
        return false;
    }
    unsigned char c = ps->p[ps->pos];
    switch (c) {
    case '{':
    case '[':
        if (depth >= MAX_DEPTH) {
            fail(ps, MIRA_ERR_LIMIT, "nesting deeper than %d at offset %zu", MAX_DEPTH, ps->pos);
            return false;
        }
        return c == '{' ? parse_object(ps, depth + 1) : parse_array(ps, depth + 1);
    case '"': {
        size_t len;
        char *s = parse_string(ps, &len);
        if (!s)
            return false;
        mira_json v = {.type = MIRA_JSON_STRING, .len = len};
        v.u.s.text = s;
        return push(ps, &v);
    }
    case 't':
        return literal(ps, "true", MIRA_JSON_TRUE);
    case 'f':
        return literal(ps, "false", MIRA_JSON_FALSE);
    case 'n':
        return literal(ps, "null", MIRA_JSON_NULL);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            mira_json v = {0};
            return parse_number(ps, &v) && push(ps, &v);
        }
        fail_expected(ps, "a value");
        return false;
    }
}

void mira_json_free(mira_json *root)
{
    if (!root || !root->is_root)
        return;
    json_doc *doc = (json_doc *)root;
    for (block *b = doc->blocks, *next; b; b = next) {
        next = b->next;
        mira_free(b);
    }
    mira_free(doc);
}

mira_json *mira_json_parse(const char *text, size_t len, mira_error **err)
{
    if (!text && len) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument", "JSON: no text given");
        return NULL;
    }
    json_doc *doc = mira_calloc(1, sizeof *doc);
    if (!doc) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "Out of memory");
        return NULL;
    }
    doc->root.is_root = true;
    parser ps = {.p = (const unsigned char *)text, .len = len, .doc = doc, .err = err};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        fail(&ps, MIRA_ERR_INVALID, "byte order mark at offset 0 (not allowed in JSON)");
    } else {
        skip_ws(&ps);
        if (parse_value(&ps, 0)) {
            skip_ws(&ps);
            if (ps.pos < ps.len)
                fail_expected(&ps, "end of input after the value");
        }
    }
    if (ps.failed) {
        mira_free(ps.stack);
        mira_json_free(&doc->root);
        return NULL;
    }
    mira_json *v = &ps.stack[0];
    doc->root.type = v->type;
    doc->root.len = v->len;
    doc->root.u = v->u;
    mira_free(ps.stack);
    return &doc->root;
}

/* ------------------------------------------------------------------ access */

mira_json_type mira_json_get_type(const mira_json *v)
{
    return v ? (mira_json_type)v->type : MIRA_JSON_NULL;
}

double mira_json_get_number(const mira_json *v)
{
    return v && v->type == MIRA_JSON_NUMBER ? v->u.s.num : 0;
}

const char *mira_json_get_number_text(const mira_json *v)
{
    return v && v->type == MIRA_JSON_NUMBER ? v->u.s.text : NULL;
}

const char *mira_json_get_string(const mira_json *v, size_t *len)
{
    if (!v || v->type != MIRA_JSON_STRING)
        return NULL;
    if (len)
        *len = v->len;
    return v->u.s.text;
}

size_t mira_json_count(const mira_json *v)
{
    return v && (v->type == MIRA_JSON_ARRAY || v->type == MIRA_JSON_OBJECT) ? v->len : 0;
}

mira_json *mira_json_at(const mira_json *v, size_t i)
{
    return i < mira_json_count(v) ? &v->u.items[i] : NULL;
}

const char *mira_json_key_at(const mira_json *v, size_t i)
{
    if (!v || v->type != MIRA_JSON_OBJECT || i >= v->len)
        return NULL;
    return v->u.items[i].key;
}

mira_json *mira_json_get(const mira_json *v, const char *key)
{
    if (!v || v->type != MIRA_JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->u.items[i].key, key) == 0)
            return &v->u.items[i];
    return NULL;
}

/* ------------------------------------------------------------------ the writer */

enum { LEVEL_OBJECT = 1, LEVEL_NONEMPTY = 2 };

struct mira_json_writer {
    mira__buf out;
    bool pretty;
    bool after_key;  /* a key was written; its value comes next */
    bool misuse;     /* unbalanced or misplaced calls */
    bool done;       /* a complete top-level value has been written */
    uint8_t *levels; /* LEVEL_* flags of each open container */
    size_t depth, cap;
};

mira_json_writer *mira_json_writer_new(bool pretty)
{
    mira_json_writer *w = mira_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    mira__buf_init(&w->out);
    w->pretty = pretty;
    return w;
}

void mira_json_writer_free(mira_json_writer *w)
{
    if (!w)
        return;
    mira__buf_cleanup(&w->out);
    mira_free(w->levels);
    mira_free(w);
}

static void newline_indent(mira_json_writer *w)
{
    mira__buf_putc(&w->out, '\n');
    for (size_t i = 0; i < w->depth; i++)
        mira__buf_append(&w->out, "  ", 2);
}

/* Commas and indentation before a value (or a key, with is_key). False on misuse. */
static bool before(mira_json_writer *w, bool is_key)
{
    if (!w)
        return false;
    if (w->depth == 0) {
        if (is_key || w->done) {
            w->misuse = true;
            return false;
        }
        return true;
    }
    uint8_t *lv = &w->levels[w->depth - 1];
    bool in_object = *lv & LEVEL_OBJECT;
    if (in_object && !is_key) {
        if (!w->after_key) {
            w->misuse = true; /* a value in an object needs a key first */
            return false;
        }
        w->after_key = false;
        return true;
    }
    if (is_key && (!in_object || w->after_key)) {
        w->misuse = true;
        return false;
    }
    if (*lv & LEVEL_NONEMPTY)
        mira__buf_putc(&w->out, ',');
    *lv |= LEVEL_NONEMPTY;
    if (w->pretty)
        newline_indent(w);
    return true;
}

static void after_value(mira_json_writer *w)
{
    if (w->depth == 0)
        w->done = true;
}

static void begin(mira_json_writer *w, bool object)
{
    if (!before(w, false))
        return;
    if (w->depth == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        uint8_t *l = mira_realloc(w->levels, cap);
        if (!l) {
            w->out.failed = true;
            return;
        }
        w->levels = l;
        w->cap = cap;
    }
    w->levels[w->depth++] = object ? LEVEL_OBJECT : 0;
    mira__buf_putc(&w->out, object ? '{' : '[');
}

static void end(mira_json_writer *w, bool object)
{
    if (!w)
        return;
    if (w->depth == 0 || (bool)(w->levels[w->depth - 1] & LEVEL_OBJECT) != object || w->after_key) {
        w->misuse = true;
        return;
    }
    bool nonempty = w->levels[w->depth - 1] & LEVEL_NONEMPTY;
    w->depth--;
    if (w->pretty && nonempty)
        newline_indent(w);
    mira__buf_putc(&w->out, object ? '}' : ']');
    after_value(w);
}

void mira_json_begin_object(mira_json_writer *w)
{
    begin(w, true);
}

void mira_json_end_object(mira_json_writer *w)
{
    end(w, true);
}

void mira_json_begin_array(mira_json_writer *w)
{
    begin(w, false);
}

void mira_json_end_array(mira_json_writer *w)
{
    end(w, false);
}

static void put_string(mira__buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    mira__buf_reserve(b, len + 2);
    mira__buf_putc(b, '"');
    size_t run = 0; /* start of bytes copied as they are */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                i += n;
                continue;
            }
        }
        mira__buf_append(b, p + run, i - run);
        switch (c) {
        case '"':
            mira__buf_append(b, "\\\"", 2);
            break;
        case '\\':
            mira__buf_append(b, "\\\\", 2);
            break;
        case '\b':
            mira__buf_append(b, "\\b", 2);
            break;
        case '\f':
            mira__buf_append(b, "\\f", 2);
            break;
        case '\n':
            mira__buf_append(b, "\\n", 2);
            break;
        case '\r':
            mira__buf_append(b, "\\r", 2);
            break;
        case '\t':
            mira__buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                mira__buf_append(b, esc, 6);
            } else {
                mira__buf_append(b, "\xEF\xBF\xBD", 3); /* invalid UTF-8: U+FFFD */
            }
        }
        i++;
        run = i;
    }
    mira__buf_append(b, p + run, len - run);
    mira__buf_putc(b, '"');
}

void mira_json_key(mira_json_writer *w, const char *key)
{
    if (!before(w, true))
        return;
    put_string(&w->out, key ? key : "", key ? strlen(key) : 0);
    mira__buf_append(&w->out, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->after_key = true;
}

void mira_json_string(mira_json_writer *w, const char *s, size_t len)
{
    if (!before(w, false))
        return;
    put_string(&w->out, s ? s : "", s ? len : 0);
    after_value(w);
}

void mira_json_cstring(mira_json_writer *w, const char *s)
{
    mira_json_string(w, s, s ? strlen(s) : 0);
}

void mira_json_int(mira_json_writer *w, int64_t v)
{
    if (!before(w, false))
        return;
    mira__buf_printf(&w->out, "%" PRId64, v);
    after_value(w);
}

void mira_json_uint(mira_json_writer *w, uint64_t v)
{
    if (!before(w, false))
        return;
    mira__buf_printf(&w->out, "%" PRIu64, v);
    after_value(w);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as v (17 digits always do). */
static int format_double(char *out, size_t n, double v)
{
    locale_t old = enter_c_locale();
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(out, n, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            break;
    }
    leave_c_locale(old);
    return len;
}

void mira_json_double(mira_json_writer *w, double v)
{
    if (!isfinite(v)) {
        mira_json_null(w);
        return;
    }
    if (!before(w, false))
        return;
    char tmp[40];
    int len = format_double(tmp, sizeof tmp, v);
    mira__buf_append(&w->out, tmp, (size_t)len);
    after_value(w);
}

void mira_json_number_text(mira_json_writer *w, const char *text, size_t len)
{
    if (!before(w, false))
        return;
    mira__buf_append(&w->out, text, len);
    after_value(w);
}

void mira_json_bool(mira_json_writer *w, bool v)
{
    if (!before(w, false))
        return;
    mira__buf_puts(&w->out, v ? "true" : "false");
    after_value(w);
}

void mira_json_null(mira_json_writer *w)
{
    if (!before(w, false))
        return;
    mira__buf_puts(&w->out, "null");
    after_value(w);
}

void mira_json_raw(mira_json_writer *w, const char *json, size_t len)
{
    if (!before(w, false))
        return;
    mira__buf_append(&w->out, json, len);
    after_value(w);
}

char *mira_json_writer_finish(mira_json_writer *w, size_t *len, mira_error **err)
{
    if (!w) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument", "JSON writer: no writer");
        return NULL;
    }
    char *out = NULL;
    if (w->out.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "Out of memory");
    } else if (w->misuse || w->depth || w->after_key || !w->done) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Invalid argument",
                       "JSON writer: %s at output offset %zu",
                       w->misuse      ? "misplaced key, value or end"
                       : w->depth     ? "unclosed array or object"
                       : w->after_key ? "key without a value"
                                      : "no value written",
                       w->out.len);
    } else {
        out = mira__buf_steal(&w->out, len);
        if (!out)
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "Out of memory");
    }
    mira__buf_cleanup(&w->out);
    w->depth = 0;
    w->after_key = w->misuse = w->done = false;
    return out;
}
