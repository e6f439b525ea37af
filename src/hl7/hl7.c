/* HL7 v2 messages: parsing, access by path, building, acknowledgements, batch files. */
#include "mira/hl7.h"

#include "core/buf.h"
#include "dicom/charset.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Design notes are in docs/internals/hl7.md. The message is a tree of one node type: a segment
 * node's children are its fields (child 0 is field 1), a field's its repetitions, a
 * repetition's its components, a component's its subcomponents, which hold the text as it
 * was received (escaped, in the message's character set). Encoding joins the tree with the
 * message's delimiters, so a parsed message encodes back to its own bytes (segment ends made
 * CR). MSH-1 and MSH-2 are leaves that are never split.
 */

#define MAX_SEGMENTS 100000
#define MAX_CHILDREN 100000

typedef struct node {
    struct node *kid;
    size_t n, cap;
    char *text; /* a subcomponent's (NULL: empty) */
    size_t len;
    char name[4]; /* a segment's */
    bool arena_kid, arena_text; /* kid, text are in the message's arena (else owned) */
} node;

/* Parsing allocates the tree's arrays and texts from chunks the message frees at once: a
 * message of a few KB is thousands of nodes, and one malloc and free each was most of the
 * time the MLLP server spent on a message. Changes after parsing that grow an array move it
 * out of the arena (child()). */
typedef struct arena {
    struct arena *next;
    size_t used, cap;
    max_align_t data[];
} arena;

struct mira_hl7_message {
    char fs, cs, rs, ec, ss; /* field, component, repetition, escape, subcomponent */
    char enc[8];             /* MSH-2 as received ("^~\&" or with a truncation character) */
    node seg;                /* its children: the segments */
    arena *arena;
    size_t arena_hint;       /* the size of the next chunk */
};

enum { L_SEGMENT, L_FIELD, L_REP, L_COMP, L_SUB };

static void *arena_get(mira_hl7_message *m, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    arena *a = m->arena;
    if (!a || a->cap - a->used < n) {
        size_t cap = m->arena_hint > n ? m->arena_hint : n;
        a = mira_malloc(sizeof *a + cap);
        if (!a)
            return NULL;
        a->next = m->arena;
        a->used = 0;
        a->cap = cap;
        m->arena = a;
        if (m->arena_hint < ((size_t)1 << 22))
            m->arena_hint *= 2;
    }
    void *p = (char *)a->data + a->used;
    a->used += n;
    return p;
}

/* Free what x owns below it (not x itself). */
static void node_release(node *x)
{
    for (size_t i = 0; i < x->n; i++)
        node_release(&x->kid[i]);
    if (!x->arena_kid)
        mira_free(x->kid);
    if (!x->arena_text)
        mira_free(x->text);
}

static void node_clear(node *x)
{
    node_release(x);
    memset(x, 0, sizeof *x);
}

/* Child i of x, made (with every one before it) when create; NULL if absent or no memory. */
static node *child(node *x, size_t i, bool create)
{
    if (i < x->n)
        return &x->kid[i];
    if (!create || i >= MAX_CHILDREN)
        return NULL;
    if (i >= x->cap) {
        size_t cap = x->cap ? x->cap : 4;
        while (cap <= i)
            cap *= 2;
        node *k;
        if (x->arena_kid) { /* out of the arena, to grow */
            k = mira_malloc(cap * sizeof *k);
            if (k && x->n)
                memcpy(k, x->kid, x->n * sizeof *k);
        } else {
            k = mira_realloc(x->kid, cap * sizeof *k);
        }
        if (!k)
            return NULL;
        x->kid = k;
        x->cap = cap;
        x->arena_kid = false;
    }
    memset(&x->kid[x->n], 0, (i + 1 - x->n) * sizeof *x->kid);
    x->n = i + 1;
    return &x->kid[i];
}

static bool set_text(node *x, const char *s, size_t n)
{
    char *t = NULL;
    if (n) {
        t = mira_malloc(n + 1);
        if (!t)
            return false;
        memcpy(t, s, n);
        t[n] = 0;
    }
    if (!x->arena_text)
        mira_free(x->text);
    x->text = t;
    x->len = n;
    x->arena_text = false;
    return true;
}

/* The same, the text in the arena (a node just made). */
static bool set_text_arena(mira_hl7_message *m, node *x, const char *s, size_t n)
{
    char *t = NULL;
    if (n) {
        t = arena_get(m, n + 1);
        if (!t)
            return false;
        memcpy(t, s, n);
        t[n] = 0;
    }
    if (!x->arena_text)
        mira_free(x->text);
    x->text = t;
    x->len = n;
    x->arena_text = true;
    return true;
}

/* Room for exactly count children of a node that has none, in the arena. */
static bool reserve_arena(mira_hl7_message *m, node *x, size_t count)
{
    if (x->n || x->kid || count > MAX_CHILDREN)
        return x->n || x->kid ? true : false;
    node *k = arena_get(m, count * sizeof *k);
    if (!k)
        return false;
    x->kid = k;
    x->cap = count;
    x->arena_kid = true;
    return true;
}

/* ------------------------------------------------------------------ parsing */

static bool seg_name_ok(const char *s, size_t n)
{
    if (n < 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* Split s[0..n) by delimiter d into children of x at level, recursively below. */
static bool split(mira_hl7_message *m, node *x, int level, const char *s, size_t n)
{
    if (level == L_SUB)
        return set_text_arena(m, x, s, n);
    char d = level == L_FIELD ? m->rs : level == L_REP ? m->cs : m->ss;
    size_t count = 1;
    for (const char *p = s, *end = s + n; (p = memchr(p, d, (size_t)(end - p))) != NULL; p++)
        count++;
    if (!reserve_arena(m, x, count))
        return false;
    size_t i = 0, start = 0;
    for (;; i++) {
        if (i == n || s[i] == d) {
            node *k = child(x, x->n, true);
            if (!k || !split(m, k, level + 1, s + start, i - start))
                return false;
            if (i == n)
                return true;
            start = i + 1;
        }
    }
}

static bool parse_segment(mira_hl7_message *m, const char *s, size_t n, size_t at,
                          mira_error **err)
{
    if (!seg_name_ok(s, n) || (n > 3 && s[3] != m->fs)) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not an HL7 message",
                       "byte %zu: a segment must start with a name of three upper-case letters "
                       "or digits and the field separator '%c' (found \"%.*s\")",
                       at, m->fs, (int)(n < 12 ? n : 12), s);
        return false;
    }
    if (m->seg.n >= MAX_SEGMENTS) {
        mira_error_set(err, MIRA_ERR_INVALID, "Message too large", "more than %d segments",
                       MAX_SEGMENTS);
        return false;
    }
    node *g = child(&m->seg, m->seg.n, true);
    if (!g)
        goto nomem;
    memcpy(g->name, s, 3);
    size_t nfields = 0;
    for (const char *p = s + 3, *end = s + n; (p = memchr(p, m->fs, (size_t)(end - p))) != NULL;
         p++)
        nfields++;
    bool msh = memcmp(s, "MSH", 3) == 0 && m->seg.n == 1;
    if (nfields && !reserve_arena(m, g, nfields + (msh ? 1 : 0))) /* MSH-1 is a separator */
        goto nomem;
    size_t i = 3;
    if (msh) { /* MSH-1 and MSH-2: leaves */
        node *f1 = child(g, 0, true), *r1 = f1 ? child(f1, 0, true) : NULL;
        node *c1 = r1 ? child(r1, 0, true) : NULL, *s1 = c1 ? child(c1, 0, true) : NULL;
        if (!s1 || !set_text(s1, &m->fs, 1))
            goto nomem;
        size_t e = 4;
        while (e < n && s[e] != m->fs)
            e++;
        node *f2 = child(g, 1, true), *r2 = f2 ? child(f2, 0, true) : NULL;
        node *c2 = r2 ? child(r2, 0, true) : NULL, *s2 = c2 ? child(c2, 0, true) : NULL;
        if (!s2 || !set_text(s2, s + 4, e - 4))
            goto nomem;
        i = e;
    }
    while (i < n) { /* at a field separator */
        size_t start = i + 1, e = start;
        while (e < n && s[e] != m->fs)
            e++;
        node *f = child(g, g->n, true);
        if (!f || !split(m, f, L_FIELD, s + start, e - start))
            goto nomem;
        i = e;
    }
    return true;
nomem:
    mira_error_set(err, MIRA_ERR_NOMEM, NULL, "parsing an HL7 message");
    return false;
}

mira_hl7_message *mira_hl7_parse(const char *text, size_t len, mira_error **err)
{
    /* leading whitespace (a file's, a sender's stray newline) is not part of the message */
    while (len && (*text == '\r' || *text == '\n' || *text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    if (len < 8 || memcmp(text, "MSH", 3) != 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not an HL7 message",
                       "an HL7 v2 message starts with an MSH segment");
        return NULL;
    }
    mira_hl7_message *m = mira_calloc(1, sizeof *m);
    if (!m) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "parsing an HL7 message");
        return NULL;
    }
    m->arena_hint = len * 16 > 4096 ? len * 16 : 4096; /* about what the tree takes */
    m->fs = text[3];
    size_t e = 4;
    while (e < len && text[e] != m->fs && text[e] != '\r' && text[e] != '\n')
        e++;
    size_t ne = e - 4;
    const char *enc = text + 4;
    bool ok = ne >= 4 && ne <= 5 && e < len && text[e] == m->fs;
    for (size_t i = 0; ok && i < ne; i++) /* five distinct, printable, not alphanumeric */
        ok = enc[i] > ' ' && enc[i] < 0x7F && enc[i] != m->fs &&
             !((enc[i] >= 'A' && enc[i] <= 'Z') || (enc[i] >= 'a' && enc[i] <= 'z') ||
               (enc[i] >= '0' && enc[i] <= '9')) &&
             !memchr(enc + i + 1, enc[i], ne - i - 1);
    if (!ok || m->fs <= ' ' || m->fs >= 0x7F) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad encoding characters",
                       "MSH-1 and MSH-2 must be the field separator and four (or five) "
                       "distinct delimiters, as in \"MSH|^~\\&|\" (found \"%.*s\")",
                       (int)(e < 12 ? e : 12), text);
        mira_free(m);
        return NULL;
    }
    memcpy(m->enc, enc, ne);
    m->cs = enc[0];
    m->rs = enc[1];
    m->ec = enc[2];
    m->ss = enc[3];
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && text[i] != '\r' && text[i] != '\n')
            i++;
        size_t n = i - s;
        /* trailing blanks of a line a sender padded; a segment never ends in them */
        if (n && !parse_segment(m, text + s, n, s, err)) {
            mira_hl7_free(m);
            return NULL;
        }
        while (i < len && (text[i] == '\r' || text[i] == '\n'))
            i++;
        /* what is left after the segments is whitespace only, or more segments */
        size_t j = i;
        while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == 0x1C))
            j++;
        if (j == len)
            break;
    }
    return m;
}

mira_hl7_message *mira_hl7_new(const char *version, mira_error **err)
{
    static const char skel[] = "MSH|^~\\&|";
    mira_hl7_message *m = mira_hl7_parse(skel, sizeof skel - 1, err);
    if (m && version && !mira_hl7_set(m, "MSH-12", version, err)) {
        mira_hl7_free(m);
        return NULL;
    }
    return m;
}

void mira_hl7_free(mira_hl7_message *m)
{
    if (!m)
        return;
    node_release(&m->seg);
    for (arena *a = m->arena, *next; a; a = next) {
        next = a->next;
        mira_free(a);
    }
    mira_free(m);
}

size_t mira_hl7_segment_count(const mira_hl7_message *m)
{
    return m ? m->seg.n : 0;
}

const char *mira_hl7_segment_name(const mira_hl7_message *m, size_t i)
{
    return m && i < m->seg.n ? m->seg.kid[i].name : NULL;
}

/* ------------------------------------------------------------------ paths */

typedef struct hpath {
    char seg[4];
    size_t occ;   /* the occ-th segment of that name, from 1 */
    int depth;    /* what the path names: L_SEGMENT, L_FIELD, L_REP (a repetition), L_COMP,
                     L_SUB */
    size_t field, rep, comp, sub; /* from 1 */
} hpath;

static bool num(const char **p, size_t *out)
{
    const char *s = *p;
    size_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (size_t)(*s - '0');
        if (v > MAX_CHILDREN)
            return false;
        s++;
    }
    *p = s;
    *out = v;
    return v > 0;
}

static bool path_parse(const char *path, hpath *h, mira_error **err)
{
    memset(h, 0, sizeof *h);
    h->occ = h->rep = h->comp = h->sub = 1;
    const char *p = path ? path : "";
    if (!seg_name_ok(p, strlen(p)))
        goto bad;
    memcpy(h->seg, p, 3);
    p += 3;
    h->depth = L_SEGMENT;
    if (*p == '(' && (p++, !num(&p, &h->occ) || *p++ != ')'))
        goto bad;
    if (*p == 0)
        return true;
    if (*p++ != '-' || !num(&p, &h->field))
        goto bad;
    h->depth = L_FIELD;
    if (*p == '(') {
        p++;
        if (!num(&p, &h->rep) || *p++ != ')')
            goto bad;
        h->depth = L_REP;
    }
    if (*p == '.') {
        p++;
        if (!num(&p, &h->comp))
            goto bad;
        h->depth = L_COMP;
        if (*p == '.') {
            p++;
            if (!num(&p, &h->sub))
                goto bad;
            h->depth = L_SUB;
        }
    }
    if (*p == 0)
        return true;
bad:
    mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HL7 path",
                   "'%s' is not a path such as PID-5, PID-5.1, PID-3(2).1.2 or OBX(2)-5",
                   path ? path : "");
    return false;
}

/* The segment a path names, made (appended, with any before it) when create. */
static node *find_segment(mira_hl7_message *m, const hpath *h, bool create)
{
    size_t seen = 0;
    for (size_t i = 0; i < m->seg.n; i++)
        if (memcmp(m->seg.kid[i].name, h->seg, 3) == 0 && ++seen == h->occ)
            return &m->seg.kid[i];
    if (!create || memcmp(h->seg, "MSH", 3) == 0)
        return NULL;
    node *g = NULL;
    while (seen < h->occ) {
        g = child(&m->seg, m->seg.n, true);
        if (!g)
            return NULL;
        memcpy(g->name, h->seg, 3);
        seen++;
    }
    return g;
}

/* The node at depth d of path h below segment g (d >= L_FIELD). */
static node *find_below(node *g, const hpath *h, int d, bool create)
{
    node *x = g ? child(g, h->field - 1, create) : NULL;
    if (x && d >= L_REP)
        x = child(x, h->rep - 1, create);
    if (x && d >= L_COMP)
        x = child(x, h->comp - 1, create);
    if (x && d >= L_SUB)
        x = child(x, h->sub - 1, create);
    return x;
}

static bool is_msh12(const hpath *h)
{
    return memcmp(h->seg, "MSH", 3) == 0 && h->occ == 1 && (h->field == 1 || h->field == 2);
}

/* ------------------------------------------------------------------ escapes, character sets */

static const struct {
    const char *hl7, *dicom, *iconv;
} charsets[] = {
    {"ASCII", "", "ASCII"},
    {"8859/1", "ISO_IR 100", "ISO-8859-1"},
    {"8859/2", "ISO_IR 101", "ISO-8859-2"},
    {"8859/3", "ISO_IR 109", "ISO-8859-3"},
    {"8859/4", "ISO_IR 110", "ISO-8859-4"},
    {"8859/5", "ISO_IR 144", "ISO-8859-5"},
    {"8859/6", "ISO_IR 127", "ISO-8859-6"},
    {"8859/7", "ISO_IR 126", "ISO-8859-7"},
    {"8859/8", "ISO_IR 138", "ISO-8859-8"},
    {"8859/9", "ISO_IR 148", "ISO-8859-9"},
    {"8859/15", "ISO_IR 203", "ISO-8859-15"},
    {"ISO IR14", "ISO_IR 13", NULL},
    {"ISO IR87", "ISO 2022 IR 6\\ISO 2022 IR 87", NULL},
    {"ISO IR159", "ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", NULL},
    {"KS X 1001", "ISO 2022 IR 6\\ISO 2022 IR 149", NULL},
    {"GB 18030-2000", "GB18030", "GB18030"},
    {"UNICODE UTF-8", "ISO_IR 192", "UTF-8"},
};

static int charset_index(const mira_hl7_message *m)
{
    const node *g = m->seg.n ? &m->seg.kid[0] : NULL;
    const node *f = g && g->n >= 18 ? &g->kid[17] : NULL;
    const node *r = f && f->n ? &f->kid[0] : NULL;
    const node *c = r && r->n ? &r->kid[0] : NULL;
    const node *s = c && c->n ? &c->kid[0] : NULL;
    if (!s || !s->len)
        return 0;
    size_t n = s->len;
    while (n && s->text[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < sizeof charsets / sizeof charsets[0]; i++)
        if (strlen(charsets[i].hl7) == n && memcmp(charsets[i].hl7, s->text, n) == 0)
            return (int)i;
    return -1;
}

const char *mira_hl7_charset(const mira_hl7_message *m)
{
    int i = m ? charset_index(m) : 0;
    return i < 0 ? NULL : charsets[i].dicom;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool repeat(mira__buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times && i < 100; i++)
        mira__buf_puts(b, s);
    return !b->failed;
}

/* The bytes of an escaped text, escape sequences (HL7 v2.5 2.7) replaced: the delimiters,
 * \Xhh..\ bytes, formatting (\.br\ and \.sp\ a line feed, \.sk N\ spaces, \.in\ \.ti\ four
 * spaces, \.ce\ a new line; \.fi\ \.nf\ nothing); highlighting (\H\ \N\), character set
 * switches (\Cxxyy\ \Mxxyyzz\) and locally defined \Z..\ are dropped. An escape character
 * with no closing one is kept as it is. */
static bool unescape(const mira_hl7_message *m, const char *s, size_t n, mira__buf *b)
{
    size_t i = 0;
    while (i < n) {
        const char *e = memchr(s + i, m->ec, n - i);
        size_t plain = e ? (size_t)(e - (s + i)) : n - i;
        mira__buf_append(b, s + i, plain);
        i += plain;
        if (!e)
            break;
        const char *close = memchr(s + i + 1, m->ec, n - i - 1);
        if (!close) { /* not a sequence: the rest as it is */
            mira__buf_append(b, s + i, n - i);
            break;
        }
        const char *v = s + i + 1;
        size_t vn = (size_t)(close - v);
        i = (size_t)(close - s) + 1;
        if (vn == 0)
            continue;
        char c = v[0];
        if (vn == 1 && c == 'F')
            mira__buf_putc(b, m->fs);
        else if (vn == 1 && c == 'S')
            mira__buf_putc(b, m->cs);
        else if (vn == 1 && c == 'T')
            mira__buf_putc(b, m->ss);
        else if (vn == 1 && c == 'R')
            mira__buf_putc(b, m->rs);
        else if (vn == 1 && c == 'E')
            mira__buf_putc(b, m->ec);
        else if (vn == 1 && c == 'P' && m->enc[4])
            mira__buf_putc(b, m->enc[4]);
        else if (c == 'X') {
            for (size_t k = 1; k + 1 < vn; k += 2) {
                int hi = hexval(v[k]), lo = hexval(v[k + 1]);
                if (hi < 0 || lo < 0)
                    break;
                mira__buf_putc(b, (char)(hi * 16 + lo));
            }
        } else if (c == '.' && vn >= 3) {
            size_t times = 1;
            if (vn > 3) {
                times = 0;
                for (size_t k = 3; k < vn && v[k] >= '0' && v[k] <= '9' && times < 1000; k++)
                    times = times * 10 + (size_t)(v[k] - '0');
                if (v[3] == '+' || v[3] == '-') /* (.in+4: an indent change) */
                    times = 1;
            }
            if (memcmp(v, ".br", 3) == 0 || memcmp(v, ".ce", 3) == 0)
                mira__buf_putc(b, '\n');
            else if (memcmp(v, ".sp", 3) == 0)
                repeat(b, "\n", times);
            else if (memcmp(v, ".sk", 3) == 0)
                repeat(b, " ", times);
            else if (memcmp(v, ".in", 3) == 0 || memcmp(v, ".ti", 3) == 0)
                mira__buf_puts(b, "    ");
        }
        /* H, N, C.., M.., Z.. and anything unknown: nothing */
    }
    return !b->failed;
}

/* Text in the message's character set to UTF-8 (owned). */
static char *to_utf8(const mira_hl7_message *m, const char *s, size_t n, mira_error **err)
{
    bool ascii = true; /* (ESC: an ISO 2022 code extension, in 7 bits) */
    for (size_t i = 0; i < n && ascii; i++)
        ascii = (unsigned char)s[i] < 0x80 && s[i] != 0x1B;
    int ci = charset_index(m);
    const char *term = ci < 0 ? "ISO_IR 100" : charsets[ci].dicom;
    if (ascii) {
        char *out = mira_malloc(n + 1);
        if (!out) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 text");
            return NULL;
        }
        memcpy(out, s, n);
        out[n] = 0;
        return out;
    }
    if (ci == 0) { /* declared ASCII (or not declared): UTF-8 if it is, else ISO 8859-1 */
        bool utf8 = true;
        for (size_t i = 0; i < n && utf8;) {
            unsigned char c = (unsigned char)s[i];
            size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                   : (c & 0xF8) == 0xF0 ? 4 : 0;
            if (!k || i + k > n || (k == 2 && c < 0xC2))
                utf8 = false;
            for (size_t j = 1; utf8 && j < k; j++)
                utf8 = ((unsigned char)s[i + j] & 0xC0) == 0x80;
            i += k ? k : 1;
        }
        term = utf8 ? "ISO_IR 192" : "ISO_IR 100";
    }
    return mira__charset_decode(term, MIRA_VR_LT, (const uint8_t *)s, n, NULL, err);
}

/* UTF-8 to the message's character set, escaped for a leaf (appended to b). */
static bool escape_into(const mira_hl7_message *m, const char *v, mira__buf *b, mira_error **err)
{
    size_t n = strlen(v);
    char *conv = NULL;
    int ci = charset_index(m);
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = (unsigned char)v[i] < 0x80;
    if (!ascii && ci > 0 && charsets[ci].iconv && strcmp(charsets[ci].iconv, "UTF-8") != 0) {
        iconv_t cd = iconv_open(charsets[ci].iconv, "UTF-8");
        if (cd == (iconv_t)-1) {
            mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported character set",
                           "cannot encode text in %s", charsets[ci].hl7);
            return false;
        }
        size_t cap = 4 * n + 4, left = cap;
        conv = mira_malloc(cap);
        char *in = (char *)v, *out = conv;
        size_t inleft = n;
        bool ok = conv && iconv(cd, &in, &inleft, &out, &left) != (size_t)-1;
        iconv_close(cd);
        if (!ok) {
            mira_free(conv);
            mira_error_set(err, MIRA_ERR_INVALID, "Cannot encode",
                           "the value has characters that %s does not have", charsets[ci].hl7);
            return false;
        }
        n = cap - left;
        v = conv;
    } else if (!ascii && ci != 0 && (ci < 0 || !charsets[ci].iconv)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported character set",
                       "mira writes HL7 text in ASCII, UTF-8, ISO 8859 and GB 18030 only");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == m->fs)
            mira__buf_printf(b, "%cF%c", m->ec, m->ec);
        else if (c == m->cs)
            mira__buf_printf(b, "%cS%c", m->ec, m->ec);
        else if (c == m->ss)
            mira__buf_printf(b, "%cT%c", m->ec, m->ec);
        else if (c == m->rs)
            mira__buf_printf(b, "%cR%c", m->ec, m->ec);
        else if (c == m->ec)
            mira__buf_printf(b, "%cE%c", m->ec, m->ec);
        else if (m->enc[4] && c == m->enc[4])
            mira__buf_printf(b, "%cP%c", m->ec, m->ec);
        else if (c == '\r' && i + 1 < n && v[i + 1] == '\n')
            continue; /* CR LF: one line break, at the LF */
        else if (c == '\n' || c == '\r')
            mira__buf_printf(b, "%c.br%c", m->ec, m->ec);
        else if ((unsigned char)c < 0x20 || c == 0x7F)
            mira__buf_printf(b, "%cX%02X%c", m->ec, (unsigned)(unsigned char)c, m->ec);
        else
            mira__buf_putc(b, c);
    }
    mira_free(conv);
    if (b->failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 text");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ reading */

static const node *leaf_of(const node *x, int depth)
{
    for (int d = depth; x && d < L_SUB; d++)
        x = x->n ? &x->kid[0] : NULL;
    return x;
}

char *mira_hl7_get(const mira_hl7_message *m, const char *path, mira_error **err)
{
    hpath h;
    if (!path_parse(path, &h, err))
        return NULL;
    if (h.depth == L_SEGMENT) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HL7 path",
                       "'%s' names a segment, not a value (PID-5, OBX(2)-5.1...)", path);
        return NULL;
    }
    node *g = find_segment((mira_hl7_message *)m, &h, false);
    const node *x = leaf_of(find_below(g, &h, h.depth, false), h.depth);
    if (x && is_msh12(&h)) { /* the delimiters themselves: as they are */
        char *out = mira_malloc(x->len + 1);
        if (out) {
            memcpy(out, x->text ? x->text : "", x->len);
            out[x->len] = 0;
        }
        return out;
    }
    mira__buf b;
    mira__buf_init(&b);
    if (x && x->len && !unescape(m, x->text, x->len, &b)) {
        mira__buf_cleanup(&b);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 value");
        return NULL;
    }
    char *out = to_utf8(m, b.data ? (const char *)b.data : "", b.len, err);
    mira__buf_cleanup(&b);
    return out;
}

static void encode_node(const mira_hl7_message *m, const node *x, int level, mira__buf *b)
{
    if (level == L_SUB) {
        mira__buf_append(b, x->text ? x->text : "", x->len);
        return;
    }
    char d = level == L_FIELD ? m->rs : level == L_REP ? m->cs : m->ss;
    for (size_t i = 0; i < x->n; i++) {
        if (i)
            mira__buf_putc(b, d);
        encode_node(m, &x->kid[i], level + 1, b);
    }
}

char *mira_hl7_get_encoded(const mira_hl7_message *m, const char *path, mira_error **err)
{
    hpath h;
    if (!path_parse(path, &h, err))
        return NULL;
    mira__buf b;
    mira__buf_init(&b);
    node *g = find_segment((mira_hl7_message *)m, &h, false);
    if (h.depth == L_SEGMENT) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HL7 path",
                       "'%s' names a segment, not a value", path);
        return NULL;
    }
    const node *x = find_below(g, &h, h.depth, false);
    if (x)
        encode_node(m, x, h.depth, &b);
    mira__buf_putc(&b, 0);
    if (b.failed) {
        mira__buf_cleanup(&b);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 value");
        return NULL;
    }
    return mira__buf_steal(&b, NULL);
}

size_t mira_hl7_count(const mira_hl7_message *m, const char *path)
{
    hpath h;
    if (!m || !path_parse(path, &h, NULL))
        return 0;
    if (h.depth == L_SEGMENT && !strchr(path, '(')) {
        size_t n = 0;
        for (size_t i = 0; i < m->seg.n; i++)
            n += memcmp(m->seg.kid[i].name, h.seg, 3) == 0;
        return n;
    }
    node *g = find_segment((mira_hl7_message *)m, &h, false);
    if (h.depth == L_SEGMENT)
        return g ? g->n : 0;
    /* "PID-3" counts repetitions; "PID-3(2)" components; "PID-3.1" subcomponents */
    const node *x = find_below(g, &h, h.depth, false);
    return x && h.depth < L_SUB ? x->n : x ? 1 : 0;
}

/* ------------------------------------------------------------------ writing */

/* Replace the node at path h (made if absent) with encoded text, split at its level. */
static bool set_encoded(mira_hl7_message *m, const hpath *h, const char *raw, size_t n,
                        mira_error **err)
{
    node *g = find_segment(m, h, true);
    node *x = find_below(g, h, h->depth, true);
    if (!x) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 message");
        return false;
    }
    node_clear(x);
    if (!split(m, x, h->depth, raw, n)) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 message");
        return false;
    }
    return true;
}

bool mira_hl7_set(mira_hl7_message *m, const char *path, const char *value, mira_error **err)
{
    hpath h;
    if (!path_parse(path, &h, err))
        return false;
    if (h.depth == L_SEGMENT || is_msh12(&h)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HL7 path",
                       "'%s' cannot be set (a segment, or the delimiters of MSH-1 and MSH-2)",
                       path);
        return false;
    }
    mira__buf b;
    mira__buf_init(&b);
    if (!escape_into(m, value ? value : "", &b, err)) {
        mira__buf_cleanup(&b);
        return false;
    }
    h.depth = L_SUB; /* the value goes into the first subcomponent below the path */
    bool ok = set_encoded(m, &h, b.data ? (const char *)b.data : "", b.len, err);
    mira__buf_cleanup(&b);
    return ok;
}

bool mira_hl7_add_segment(mira_hl7_message *m, const char *name, mira_error **err)
{
    if (!name || strlen(name) != 3 || !seg_name_ok(name, 3) || strcmp(name, "MSH") == 0) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad segment name",
                       "'%s' is not a segment name (three upper-case letters or digits)",
                       name ? name : "");
        return false;
    }
    node *g = child(&m->seg, m->seg.n, true);
    if (!g) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 message");
        return false;
    }
    memcpy(g->name, name, 3);
    return true;
}

char *mira_hl7_encode(const mira_hl7_message *m, size_t *len, mira_error **err)
{
    mira__buf b;
    mira__buf_init(&b);
    for (size_t i = 0; i < m->seg.n; i++) {
        const node *g = &m->seg.kid[i];
        mira__buf_append(&b, g->name, 3);
        size_t first = 0;
        if (i == 0 && memcmp(g->name, "MSH", 3) == 0) {
            mira__buf_putc(&b, m->fs);
            mira__buf_puts(&b, m->enc);
            first = 2;
        }
        for (size_t f = first; f < g->n; f++) {
            mira__buf_putc(&b, m->fs);
            encode_node(m, &g->kid[f], L_FIELD, &b);
        }
        mira__buf_putc(&b, '\r');
    }
    size_t n = b.len;
    mira__buf_putc(&b, 0);
    if (b.failed) {
        mira__buf_cleanup(&b);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "encoding an HL7 message");
        return NULL;
    }
    if (len)
        *len = n;
    return mira__buf_steal(&b, NULL);
}

void mira_hl7_to_json(const mira_hl7_message *m, mira_json_writer *w)
{
    mira_json_begin_object(w);
    mira_json_key(w, "segments");
    mira_json_begin_array(w);
    mira__buf b;
    mira__buf_init(&b);
    for (size_t i = 0; i < m->seg.n; i++) {
        const node *g = &m->seg.kid[i];
        bool msh = i == 0 && memcmp(g->name, "MSH", 3) == 0;
        mira_json_begin_array(w);
        mira_json_string(w, g->name, 3);
        for (size_t f = 0; f < g->n; f++) {
            const node *fd = &g->kid[f];
            if (msh && f < 2) {
                const node *x = leaf_of(fd, L_FIELD);
                mira_json_string(w, x && x->text ? x->text : "", x ? x->len : 0);
                continue;
            }
            mira_json_begin_array(w);
            for (size_t r = 0; r < fd->n; r++) {
                mira_json_begin_array(w);
                for (size_t c = 0; c < fd->kid[r].n; c++) {
                    const node *cp = &fd->kid[r].kid[c];
                    mira_json_begin_array(w);
                    for (size_t s = 0; s < cp->n; s++) {
                        b.len = 0;
                        const node *x = &cp->kid[s];
                        char *u = NULL;
                        if (unescape(m, x->text ? x->text : "", x->len, &b))
                            u = to_utf8(m, b.data ? (const char *)b.data : "", b.len, NULL);
                        mira_json_cstring(w, u ? u : "");
                        mira_free(u);
                    }
                    mira_json_end_array(w);
                }
                mira_json_end_array(w);
            }
            mira_json_end_array(w);
        }
        mira_json_end_array(w);
    }
    mira__buf_cleanup(&b);
    mira_json_end_array(w);
    mira_json_end_object(w);
}

/* ------------------------------------------------------------------ acknowledgements */

static const char *error_text(const char *code)
{
    static const struct {
        const char *code, *text;
    } t[] = {{"0", "Message accepted"},       {"100", "Segment sequence error"},
             {"101", "Required field missing"}, {"102", "Data type error"},
             {"103", "Table value not found"},  {"104", "Value too long"},
             {"200", "Unsupported message type"}, {"201", "Unsupported event code"},
             {"202", "Unsupported processing id"}, {"203", "Unsupported version id"},
             {"204", "Unknown key identifier"}, {"205", "Duplicate key identifier"},
             {"206", "Application record locked"}, {"207", "Application internal error"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].code, code) == 0)
            return t[i].text;
    return "";
}

/* Field k (1-based, MSH counting) of the first line of a raw text that starts like an MSH,
 * encoded as it is; "" if there is none. */
static void raw_msh_field(const char *raw, size_t n, size_t k, char *out, size_t cap)
{
    out[0] = 0;
    if (!raw || n < 4 || memcmp(raw, "MSH", 3) != 0 || k < 3)
        return;
    char fs = raw[3];
    size_t i = 3, f = 1;
    while (i < n && raw[i] != '\r' && raw[i] != '\n' && f < k) {
        if (raw[i] == fs)
            f++;
        i++;
    }
    if (f != k)
        return;
    size_t s = i;
    while (i < n && raw[i] != fs && raw[i] != '\r' && raw[i] != '\n')
        i++;
    snprintf(out, cap, "%.*s", (int)(i - s), raw + s);
}

char *mira_hl7_ack(const mira_hl7_message *m, const char *raw, size_t raw_len,
                   const mira_hl7_ack_options *o, size_t *len, mira_error **err)
{
    char head[16] = "MSH|^~\\&|";
    if (m)
        snprintf(head, sizeof head, "MSH%c%s%c", m->fs, m->enc, m->fs);
    mira_hl7_message *a = mira_hl7_parse(head, strlen(head), err);
    if (!a)
        return NULL;
    /* the original's fields, encoded as they are (so that their escapes stay right) */
    char v[6][256];
    static const size_t from[6] = {3, 4, 9, 10, 11, 12};
    for (int i = 0; i < 6; i++) {
        v[i][0] = 0;
        if (m) {
            char p[16];
            snprintf(p, sizeof p, "MSH-%zu", from[i]);
            char *e = mira_hl7_get_encoded(m, p, NULL);
            snprintf(v[i], sizeof v[i], "%s", e ? e : "");
            mira_free(e);
        } else {
            raw_msh_field(raw, raw_len, from[i], v[i], sizeof v[i]);
        }
    }
    char trigger[64] = "";
    if (m) {
        char *t = mira_hl7_get(m, "MSH-9.2", NULL);
        snprintf(trigger, sizeof trigger, "%s", t ? t : "");
        mira_free(t);
    } else { /* the second component of the raw MSH-9 */
        char *c = strchr(v[2], raw && raw_len > 4 ? raw[4] : '^');
        if (c)
            snprintf(trigger, sizeof trigger, "%.*s", (int)strcspn(c + 1, "^&~"), c + 1);
    }
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y%m%d%H%M%S+0000", &tm);
    hpath h;
    bool ok = true;
#define RAW(path, text)                                                                         \
    (ok = ok && path_parse(path, &h, err) && set_encoded(a, &h, text, strlen(text), err))
#define SET(path, text) (ok = ok && mira_hl7_set(a, path, text, err))
    SET("MSH-3", o->app ? o->app : "MIRA");
    if (o->facility)
        SET("MSH-4", o->facility);
    RAW("MSH-5", v[0]);
    RAW("MSH-6", v[1]);
    SET("MSH-7", now);
    SET("MSH-9.1", "ACK");
    SET("MSH-9.2", trigger);
    SET("MSH-9.3", "ACK");
    SET("MSH-10", o->control_id ? o->control_id : "");
    RAW("MSH-11", *v[4] ? v[4] : "P");
    RAW("MSH-12", *v[5] ? v[5] : "2.5");
    SET("MSA-1", o->code ? o->code : "AA");
    RAW("MSA-2", v[3]);
    if (o->text)
        SET("MSA-3", o->text);
    bool error = o->code && strcmp(o->code, "AA") != 0 && strcmp(o->code, "CA") != 0;
    if (error) {
        const char *code = o->error_code ? o->error_code : "207";
        /* ERR-1 (v2.3, v2.4: location^...^code&text) and ERR-2..8 (v2.5 on) */
        bool old = *v[5] && (strncmp(v[5], "2.3", 3) == 0 || strncmp(v[5], "2.4", 3) == 0);
        if (old) {
            SET("ERR-1.4.1", code);
            SET("ERR-1.4.2", error_text(code));
            SET("ERR-1.4.3", "HL70357");
            if (o->location) {
                char part[4][64] = {"", "", "", ""};
                sscanf(o->location, "%63[^^]^%63[^^]^%63[^^]^%63[^^]", part[0], part[1],
                       part[2], part[3]);
                for (int i = 0; i < 3; i++) {
                    char p[16];
                    snprintf(p, sizeof p, "ERR-1.%d", i + 1);
                    if (*part[i])
                        SET(p, part[i]);
                }
            }
        } else {
            if (o->location) {
                char part[6][64] = {"", "", "", "", "", ""};
                sscanf(o->location, "%63[^^]^%63[^^]^%63[^^]^%63[^^]^%63[^^]^%63[^^]", part[0],
                       part[1], part[2], part[3], part[4], part[5]);
                for (int i = 0; i < 6; i++) {
                    char p[16];
                    snprintf(p, sizeof p, "ERR-2.%d", i + 1);
                    if (*part[i])
                        SET(p, part[i]);
                }
            }
            SET("ERR-3.1", code);
            SET("ERR-3.2", error_text(code));
            SET("ERR-3.3", "HL70357");
            SET("ERR-4", "E");
            if (o->text)
                SET("ERR-8", o->text);
        }
    }
#undef RAW
#undef SET
    char *out = ok ? mira_hl7_encode(a, len, err) : NULL;
    mira_hl7_free(a);
    return out;
}

/* ------------------------------------------------------------------ batch files */

static size_t header_count(const char *line, size_t n)
{
    /* BTS-1 / FTS-1: the first field */
    if (n < 5)
        return (size_t)-1;
    char fs = line[3];
    size_t i = 4, v = 0;
    bool digits = false;
    while (i < n && line[i] != fs && line[i] >= '0' && line[i] <= '9') {
        v = v * 10 + (size_t)(line[i] - '0');
        digits = true;
        i++;
    }
    return digits && (i == n || line[i] == fs) ? v : (size_t)-1;
}

bool mira_hl7_batch_split(const char *text, size_t len, mira_hl7_message_fn fn, void *ctx,
                          size_t *count, mira_error **err)
{
    mira__buf msg;
    mira__buf_init(&msg);
    size_t messages = 0, in_batch = 0, batches = 0;
    bool have = false, stopped = false, ok = true;
    size_t i = 0;
#define FLUSH()                                                                                 \
    do {                                                                                        \
        if (have && !stopped) {                                                                 \
            messages++;                                                                         \
            in_batch++;                                                                         \
            if (msg.failed) {                                                                   \
                mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HL7 batch");                         \
                ok = false;                                                                     \
            } else if (!fn(ctx, (const char *)msg.data, msg.len)) {                             \
                stopped = true;                                                                 \
            }                                                                                   \
        }                                                                                       \
        have = false;                                                                           \
        msg.len = 0;                                                                            \
    } while (0)
    while (ok && !stopped && i < len) {
        size_t s = i;
        while (i < len && text[i] != '\r' && text[i] != '\n')
            i++;
        const char *line = text + s;
        size_t n = i - s;
        while (i < len && (text[i] == '\r' || text[i] == '\n'))
            i++;
        while (n && (line[0] == ' ' || line[0] == '\t' || line[0] == 0x0B || line[0] == 0x1C)) {
            line++;
            n--;
        }
        if (n == 0)
            continue;
        if (n >= 3 && (memcmp(line, "FHS", 3) == 0 || memcmp(line, "BHS", 3) == 0)) {
            FLUSH();
            if (memcmp(line, "BHS", 3) == 0) {
                batches++;
                in_batch = 0;
            }
        } else if (n >= 3 && (memcmp(line, "BTS", 3) == 0 || memcmp(line, "FTS", 3) == 0)) {
            FLUSH();
            size_t want = header_count(line, n);
            size_t got = memcmp(line, "BTS", 3) == 0 ? in_batch : batches;
            if (want != (size_t)-1 && want != got && ok && !stopped) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad HL7 batch",
                               "%.3s-1 says %zu %s, the file holds %zu", line, want,
                               memcmp(line, "BTS", 3) == 0 ? "messages" : "batches", got);
                ok = false;
            }
        } else if (n >= 3 && memcmp(line, "MSH", 3) == 0) {
            FLUSH();
            have = true;
            mira__buf_append(&msg, line, n);
            mira__buf_putc(&msg, '\r');
        } else if (have) {
            mira__buf_append(&msg, line, n);
            mira__buf_putc(&msg, '\r');
        } else {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad HL7 batch",
                           "byte %zu: a %.3s segment before any MSH", s, line);
            ok = false;
        }
    }
    if (ok)
        FLUSH();
#undef FLUSH
    mira__buf_cleanup(&msg);
    if (count)
        *count = messages;
    return ok;
}
