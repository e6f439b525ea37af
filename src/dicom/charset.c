/* Specific Character Set decoding: DICOM text in ISO 2022, UTF-8, GB18030 or GBK to UTF-8. */
#include "charset.h"

#include "core/buf.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/*
 * Design notes are in docs/internals/charset.md. In short: every ISO 2022 defined term is decoded
 * by one state machine holding the character sets designated to G0 and G1; single-byte and
 * double-byte graphic sets are lookup tables filled once from glibc iconv, so that decoding a
 * value never calls iconv. GB18030 and GBK, too large to tabulate, go through iconv descriptors
 * cached per thread. Pure ASCII takes a memcpy.
 */

#define ESC 0x1B
#define REPLACEMENT 0xFFFDu

/* Graphic character sets that can be designated to G0 or G1. */
enum gset {
    G_NONE = 0,  /* nothing designated: every byte of that area is invalid */
    G_ASCII,     /* ISO-IR 6 (G0) */
    G_JIS_ROMAN, /* ISO-IR 14, JIS X 0201 Romaji (G0) */
    G_JIS_KANA,  /* ISO-IR 13, JIS X 0201 Katakana (G1, 94 characters) */
    /* 96-character sets for G1, one table each */
    G_LATIN1,   /* ISO-IR 100, ISO 8859-1 */
    G_LATIN2,   /* ISO-IR 101, ISO 8859-2 */
    G_LATIN3,   /* ISO-IR 109, ISO 8859-3 */
    G_LATIN4,   /* ISO-IR 110, ISO 8859-4 */
    G_CYRILLIC, /* ISO-IR 144, ISO 8859-5 */
    G_ARABIC,   /* ISO-IR 127, ISO 8859-6 */
    G_GREEK,    /* ISO-IR 126, ISO 8859-7 */
    G_HEBREW,   /* ISO-IR 138, ISO 8859-8 */
    G_LATIN5,   /* ISO-IR 148, ISO 8859-9 */
    G_LATIN9,   /* ISO-IR 203, ISO 8859-15 */
    G_THAI,     /* ISO-IR 166, TIS 620-2533 */
    /* 94x94 double-byte sets */
    G_JIS0208, /* ISO-IR 87, JIS X 0208 (G0) */
    G_JIS0212, /* ISO-IR 159, JIS X 0212 (G0) */
    G_KSC5601, /* ISO-IR 149, KS X 1001 (G1) */
    G_GB2312,  /* ISO-IR 58, GB 2312 (G1) */
};

#define FIRST_SB G_LATIN1
#define LAST_SB G_THAI
#define FIRST_DB G_JIS0208
#define LAST_DB G_GB2312

/* How a whole value is encoded: ISO 2022 (with or without extensions) or a stand-alone scheme. */
enum scheme { S_ISO2022, S_UTF8, S_GB18030, S_GBK };

/* ---- Defined terms (PS3.3 C.12.1.1.2) ---- */

struct term {
    const char *name;
    uint8_t scheme;
    uint8_t g0, g1; /* sets active at the start of a value and after each delimiter */
};

static const struct term terms[] = {
    /* The two most frequent terms first: decoding looks value 1 up on every call. */
    {"ISO_IR 192", S_UTF8, G_ASCII, G_NONE},
    {"ISO_IR 100", S_ISO2022, G_ASCII, G_LATIN1},
    /* Table C.12-2: single-byte without code extensions */
    {"ISO_IR 6", S_ISO2022, G_ASCII, G_NONE},
    {"ISO_IR 101", S_ISO2022, G_ASCII, G_LATIN2},
    {"ISO_IR 109", S_ISO2022, G_ASCII, G_LATIN3},
    {"ISO_IR 110", S_ISO2022, G_ASCII, G_LATIN4},
    {"ISO_IR 144", S_ISO2022, G_ASCII, G_CYRILLIC},
    {"ISO_IR 127", S_ISO2022, G_ASCII, G_ARABIC},
    {"ISO_IR 126", S_ISO2022, G_ASCII, G_GREEK},
    {"ISO_IR 138", S_ISO2022, G_ASCII, G_HEBREW},
    {"ISO_IR 148", S_ISO2022, G_ASCII, G_LATIN5},
    {"ISO_IR 203", S_ISO2022, G_ASCII, G_LATIN9},
    {"ISO_IR 13", S_ISO2022, G_JIS_ROMAN, G_JIS_KANA},
    {"ISO_IR 166", S_ISO2022, G_ASCII, G_THAI},
    /* Table C.12-3: single-byte with code extensions */
    {"ISO 2022 IR 6", S_ISO2022, G_ASCII, G_NONE},
    {"ISO 2022 IR 100", S_ISO2022, G_ASCII, G_LATIN1},
    {"ISO 2022 IR 101", S_ISO2022, G_ASCII, G_LATIN2},
    {"ISO 2022 IR 109", S_ISO2022, G_ASCII, G_LATIN3},
    {"ISO 2022 IR 110", S_ISO2022, G_ASCII, G_LATIN4},
    {"ISO 2022 IR 144", S_ISO2022, G_ASCII, G_CYRILLIC},
    {"ISO 2022 IR 127", S_ISO2022, G_ASCII, G_ARABIC},
    {"ISO 2022 IR 126", S_ISO2022, G_ASCII, G_GREEK},
    {"ISO 2022 IR 138", S_ISO2022, G_ASCII, G_HEBREW},
    {"ISO 2022 IR 148", S_ISO2022, G_ASCII, G_LATIN5},
    {"ISO 2022 IR 203", S_ISO2022, G_ASCII, G_LATIN9},
    {"ISO 2022 IR 13", S_ISO2022, G_JIS_ROMAN, G_JIS_KANA},
    {"ISO 2022 IR 166", S_ISO2022, G_ASCII, G_THAI},
    /*
     * Table C.12-4: multi-byte with code extensions. The G0 sets (IR 87, IR 159) are not
     * active before their escape sequence, so as value 1 they leave ASCII in G0 (as pydicom's
     * iso2022_jp codecs do); the G1 sets (IR 149, IR 58) are, which makes unescaped EUC-KR and
     * EUC-CN text readable, again as in pydicom.
     */
    {"ISO 2022 IR 87", S_ISO2022, G_ASCII, G_NONE},
    {"ISO 2022 IR 159", S_ISO2022, G_ASCII, G_NONE},
    {"ISO 2022 IR 149", S_ISO2022, G_ASCII, G_KSC5601},
    {"ISO 2022 IR 58", S_ISO2022, G_ASCII, G_GB2312},
    /* Table C.12-5: multi-byte without code extensions (stand-alone); ISO_IR 192 is above */
    {"GB18030", S_GB18030, G_ASCII, G_NONE},
    {"GBK", S_GBK, G_ASCII, G_NONE},
    /* Terms of the CP-1234 drafts that pydicom also accepts. */
    {"ISO 2022 GBK", S_GBK, G_ASCII, G_NONE},
    {"ISO 2022 58", S_ISO2022, G_ASCII, G_GB2312},
};

/* What an unknown defined term decodes as: ISO_IR 100. */
static const struct term latin1_fallback = {"ISO_IR 100", S_ISO2022, G_ASCII, G_LATIN1};
/* No (0008,0005): the standard's default repertoire is ASCII only, but files without the
 * attribute that carry Latin-1 names are common; reading bytes 0x80..0xFF as Latin-1 (as
 * pydicom does) loses nothing, where U+FFFD would lose the name. */
static const struct term no_charset_term = {"ISO_IR 6", S_ISO2022, G_ASCII, G_LATIN1};
/* An empty first value beside others ("\\ISO 2022 IR 87"): ISO 2022 IR 6 exactly, no G1. */
static const struct term default_term = {"ISO_IR 6", S_ISO2022, G_ASCII, G_NONE};

static bool is_pad(char c)
{
    return c == ' ' || c == '\0';
}

static char ascii_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Case-insensitive equality of s[0..n) and the NUL-terminated name. */
static bool term_equals(const char *s, size_t n, const char *name)
{
    size_t i = 0;
    for (; i < n && name[i]; i++)
        if (ascii_upper(s[i]) != name[i])
            return false;
    return i == n && name[i] == '\0';
}

/* Equality ignoring case and everything but letters and digits ("ISO-IR 144" == "ISO_IR 144"). */
static bool term_equals_loosely(const char *s, size_t n, const char *name)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < n && !is_alnum(s[i]))
            i++;
        while (name[j] && !is_alnum(name[j]))
            j++;
        if (i == n || !name[j])
            return i == n && !name[j];
        if (ascii_upper(s[i]) != name[j])
            return false;
        i++;
        j++;
    }
}

/* The term spelled s[0..n) (spaces already trimmed), or NULL if mira does not know it. */
static const struct term *find_term(const char *s, size_t n)
{
    size_t count = sizeof terms / sizeof terms[0];
    for (size_t i = 0; i < count; i++)
        if (term_equals(s, n, terms[i].name))
            return &terms[i];
    /*
     * Common misspellings: "ISO IR 100", "ISO-IR 144", "ISO_2022_IR_100". pydicom corrects the
     * same two families with regular expressions; comparing letters and digits only is a
     * superset of those and cannot confuse two defined terms.
     */
    for (size_t i = 0; i < count; i++)
        if (term_equals_loosely(s, n, terms[i].name))
            return &terms[i];
    return NULL;
}

/* The next backslash-separated value of a Specific Character Set, trimmed of spaces and NULs. */
static bool next_value(const char **cursor, const char **start, size_t *len)
{
    const char *p = *cursor;
    if (!p)
        return false;
    const char *end = strchr(p, '\\');
    const char *stop = end ? end : p + strlen(p);
    const char *a = p, *b = stop;
    while (a < b && is_pad(*a))
        a++;
    while (b > a && is_pad(b[-1]))
        b--;
    *start = a;
    *len = (size_t)(b - a);
    *cursor = end ? end + 1 : NULL;
    return true;
}

/* The term that rules decoding: value 1 (empty means ISO 2022 IR 6). Later values only name
 * the sets that escape sequences may designate, and mira honours every escape sequence it
 * knows, so they do not change the result. */
static const struct term *first_term(const char *charset)
{
    const char *cursor = charset, *s;
    size_t n;
    if (!charset || !next_value(&cursor, &s, &n))
        return &no_charset_term;
    if (n == 0)
        return cursor ? &default_term : &no_charset_term;
    const struct term *t = find_term(s, n);
    return t ? t : &latin1_fallback;
}

bool mira__charset_is_known(const char *charset)
{
    const char *cursor = charset, *s;
    size_t n;
    while (next_value(&cursor, &s, &n))
        if (n > 0 && !find_term(s, n))
            return false;
    return true;
}

/* ---- Lookup tables, filled once from iconv ---- */

struct sb_table {
    const char *iconv_name; /* NULL: ISO 8859-1, which is the identity */
    atomic_bool ready;
    uint16_t map[128]; /* byte 0x80 + i -> code point; 0 where the byte is not a character */
};

struct db_table {
    const char *iconv_name;
    uint8_t prefix; /* a byte iconv needs before the two (0x8F: JIS X 0212 in EUC-JP), or 0 */
    atomic_bool ready;
    uint16_t map[94 * 94]; /* (row, cell) from 0x21 -> code point; 0 where unassigned */
};

static struct sb_table sb_tables[LAST_SB - FIRST_SB + 1] = {
    [G_LATIN1 - FIRST_SB] = {.iconv_name = NULL},
    [G_LATIN2 - FIRST_SB] = {.iconv_name = "ISO-8859-2"},
    [G_LATIN3 - FIRST_SB] = {.iconv_name = "ISO-8859-3"},
    [G_LATIN4 - FIRST_SB] = {.iconv_name = "ISO-8859-4"},
    [G_CYRILLIC - FIRST_SB] = {.iconv_name = "ISO-8859-5"},
    [G_ARABIC - FIRST_SB] = {.iconv_name = "ISO-8859-6"},
    [G_GREEK - FIRST_SB] = {.iconv_name = "ISO-8859-7"},
    [G_HEBREW - FIRST_SB] = {.iconv_name = "ISO-8859-8"},
    [G_LATIN5 - FIRST_SB] = {.iconv_name = "ISO-8859-9"},
    [G_LATIN9 - FIRST_SB] = {.iconv_name = "ISO-8859-15"},
    [G_THAI - FIRST_SB] = {.iconv_name = "TIS-620"},
};

/* Each double-byte set through the EUC form glibc knows: GR bytes, 0xA1..0xFE twice. */
static struct db_table db_tables[LAST_DB - FIRST_DB + 1] = {
    [G_JIS0208 - FIRST_DB] = {.iconv_name = "EUC-JP"},
    [G_JIS0212 - FIRST_DB] = {.iconv_name = "EUC-JP", .prefix = 0x8F},
    [G_KSC5601 - FIRST_DB] = {.iconv_name = "EUC-KR"},
    [G_GB2312 - FIRST_DB] = {.iconv_name = "EUC-CN"},
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* The one BMP code point that `n` bytes convert to, or 0. */
static uint16_t convert_one(iconv_t cd, const uint8_t *src, size_t n)
{
    char in[4];
    unsigned char out[16];
    memcpy(in, src, n);
    char *ip = in, *op = (char *)out;
    size_t il = n, ol = sizeof out;
    iconv(cd, NULL, NULL, NULL, NULL);
    if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 || il != 0 || sizeof out - ol != 4)
        return 0;
    uint32_t cp = (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 |
                  (uint32_t)out[3] << 24;
    return cp <= 0xFFFF ? (uint16_t)cp : 0;
}

/* Open a converter to UTF-32LE. NULL if glibc has no such module; sets *nomem on ENOMEM. */
static iconv_t open_to_utf32(const char *from, bool *nomem)
{
    iconv_t cd = iconv_open("UTF-32LE", from);
    if (cd == (iconv_t)-1) {
        *nomem = errno == ENOMEM;
        return NULL;
    }
    return cd;
}

/* Fill the table of a 96-set once. False only when memory ran out (the table stays unready). */
static bool sb_table_ready(struct sb_table *t)
{
    if (atomic_load_explicit(&t->ready, memory_order_acquire))
        return true;
    bool ok = true;
    pthread_mutex_lock(&table_lock);
    if (!atomic_load_explicit(&t->ready, memory_order_relaxed)) {
        if (!t->iconv_name) {
            for (int i = 0; i < 128; i++)
                t->map[i] = (uint16_t)(0x80 + i);
        } else {
            bool nomem = false;
            iconv_t cd = open_to_utf32(t->iconv_name, &nomem);
            if (cd) {
                for (int i = 0; i < 128; i++) {
                    uint8_t byte = (uint8_t)(0x80 + i);
                    t->map[i] = convert_one(cd, &byte, 1);
                }
                /* 0x80..0x9F are the C1 controls whatever G1 holds; glibc's TIS-620 alone
                 * leaves them out (Python's tis_620 and every ISO 8859 part have them). */
                for (int i = 0; i < 0x20; i++)
                    t->map[i] = (uint16_t)(0x80 + i);
                iconv_close(cd);
            }
            ok = !nomem; /* no module: the table stays all "not a character" */
        }
        if (ok)
            atomic_store_explicit(&t->ready, true, memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
    return ok;
}

static bool db_table_ready(struct db_table *t)
{
    if (atomic_load_explicit(&t->ready, memory_order_acquire))
        return true;
    bool ok = true;
    pthread_mutex_lock(&table_lock);
    if (!atomic_load_explicit(&t->ready, memory_order_relaxed)) {
        bool nomem = false;
        iconv_t cd = open_to_utf32(t->iconv_name, &nomem);
        if (cd) {
            uint8_t seq[3];
            size_t n = 0;
            if (t->prefix)
                seq[n++] = t->prefix;
            for (int row = 0; row < 94; row++) {
                for (int cell = 0; cell < 94; cell++) {
                    seq[n] = (uint8_t)(0xA1 + row);
                    seq[n + 1] = (uint8_t)(0xA1 + cell);
                    t->map[row * 94 + cell] = convert_one(cd, seq, n + 2);
                }
            }
            iconv_close(cd);
            /* JIS X 0212 0x2237 is TILDE: U+007E in Unicode's JIS0212.TXT and in Python (so
             * pydicom); glibc alone says FULLWIDTH TILDE. */
            size_t tilde = (0x22 - 0x21) * 94 + (0x37 - 0x21);
            if (t == &db_tables[G_JIS0212 - FIRST_DB] && t->map[tilde])
                t->map[tilde] = 0x007E;
        }
        ok = !nomem;
        if (ok)
            atomic_store_explicit(&t->ready, true, memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
    return ok;
}

/* Make sure the table of `set` is filled; false only on memory exhaustion. */
static bool set_ready(uint8_t set)
{
    if (set >= FIRST_SB && set <= LAST_SB)
        return sb_table_ready(&sb_tables[set - FIRST_SB]);
    if (set >= FIRST_DB && set <= LAST_DB)
        return db_table_ready(&db_tables[set - FIRST_DB]);
    return true;
}

/* ---- iconv descriptors for GB18030 and GBK, one per thread ---- */

enum { CD_GB18030, CD_GBK, CD_COUNT };
static const char *const cd_names[CD_COUNT] = {"GB18030", "GBK"};

static _Thread_local iconv_t tls_cd[CD_COUNT];
static _Thread_local bool tls_cd_registered;
static pthread_key_t cd_key;
static pthread_once_t cd_key_once = PTHREAD_ONCE_INIT;
static bool cd_key_ok;

/* Runs at thread exit (a key destructor), while the thread's TLS is still there. */
static void close_thread_cds(void *unused)
{
    (void)unused;
    for (int i = 0; i < CD_COUNT; i++) {
        if (tls_cd[i]) {
            iconv_close(tls_cd[i]);
            tls_cd[i] = NULL;
        }
    }
}

static void create_cd_key(void)
{
    cd_key_ok = pthread_key_create(&cd_key, close_thread_cds) == 0;
}

/*
 * The calling thread's descriptor from `which` to UTF-8. NULL if glibc cannot convert it
 * (*nomem tells whether memory ran out). If *temporary is set the caller closes it after use:
 * that happens only when no thread-exit hook could be registered.
 */
static iconv_t thread_cd(int which, bool *temporary, bool *nomem)
{
    *temporary = false;
    *nomem = false;
    if (tls_cd[which])
        return tls_cd[which];
    iconv_t cd = iconv_open("UTF-8", cd_names[which]);
    if (cd == (iconv_t)-1) {
        *nomem = errno == ENOMEM;
        return NULL;
    }
    pthread_once(&cd_key_once, create_cd_key);
    if (!tls_cd_registered) {
        if (!cd_key_ok || pthread_setspecific(cd_key, tls_cd) != 0) {
            *temporary = true;
            return cd;
        }
        tls_cd_registered = true;
    }
    tls_cd[which] = cd;
    return cd;
}

/* ---- Output ---- */

static void put_byte(mira__buf *b, uint8_t c)
{
    if (b->cap - b->len < 2 && !mira__buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
}

/* Append code point cp as UTF-8; 0 (a table's "not a character") appends U+FFFD. */
static void put_cp(mira__buf *b, uint32_t cp)
{
    if (b->cap - b->len < 5 && !mira__buf_reserve(b, 4))
        return;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = REPLACEMENT;
    uint8_t *o = b->data + b->len;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        b->len += 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        b->len += 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        b->len += 3;
    } else {
        o[0] = (uint8_t)(0xF0 | cp >> 18);
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (uint8_t)(0x80 | (cp & 0x3F));
        b->len += 4;
    }
}

/* ---- ISO 2022 ---- */

struct escape {
    char seq[4]; /* the bytes after ESC */
    uint8_t set;
    bool g1; /* designates G1 (else G0) */
};

/* PS3.3 Tables C.12-3 and C.12-4. */
static const struct escape escapes[] = {
    {"(B", G_ASCII, false},    {"(J", G_JIS_ROMAN, false}, {")I", G_JIS_KANA, true},
    {"-A", G_LATIN1, true},    {"-B", G_LATIN2, true},     {"-C", G_LATIN3, true},
    {"-D", G_LATIN4, true},    {"-L", G_CYRILLIC, true},   {"-G", G_ARABIC, true},
    {"-F", G_GREEK, true},     {"-H", G_HEBREW, true},     {"-M", G_LATIN5, true},
    {"-b", G_LATIN9, true},    {"-T", G_THAI, true},       {"$B", G_JIS0208, false},
    {"$(D", G_JIS0212, false}, {"$)C", G_KSC5601, true},   {"$)A", G_GB2312, true},
};

static bool is_double(uint8_t set)
{
    return set >= FIRST_DB && set <= LAST_DB;
}

static uint16_t db_lookup(uint8_t set, uint8_t a, uint8_t b)
{
    /* a and b are 0x21..0x7E (GL) or 0xA1..0xFE (GR); the low 7 bits give row and cell. */
    return db_tables[set - FIRST_DB].map[((a & 0x7F) - 0x21) * 94 + ((b & 0x7F) - 0x21)];
}

struct iso2022 {
    uint8_t init_g0, init_g1; /* the first value's sets */
    uint8_t g0, g1;           /* the sets designated now */
    bool pn;                  /* '^' and '=' are delimiters */
    bool multi_valued;        /* '\' is a delimiter */
};

/*
 * An escape sequence at p[0] (ESC), n bytes available. ISO 2022 syntax: ESC, intermediate
 * bytes 0x20..0x2F, one final byte 0x30..0x7E. A sequence mira knows designates its set;
 * anything else (unknown or cut short) becomes one U+FFFD and the first value's sets, as in
 * pydicom which decodes what follows an unknown escape with the first encoding. Returns the
 * number of bytes consumed (at least 1).
 */
static size_t decode_escape(struct iso2022 *st, const uint8_t *p, size_t n, mira__buf *b,
                            bool *nomem)
{
    size_t k = 1;
    while (k < n && p[k] >= 0x20 && p[k] <= 0x2F)
        k++;
    bool has_final = k < n && p[k] >= 0x30 && p[k] <= 0x7E;
    size_t used = has_final ? k + 1 : k;
    if (has_final) {
        for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
            const struct escape *e = &escapes[i];
            if (strlen(e->seq) == used - 1 && memcmp(e->seq, p + 1, used - 1) == 0) {
                if (!set_ready(e->set)) {
                    *nomem = true;
                    return used;
                }
                if (e->g1)
                    st->g1 = e->set;
                else
                    st->g0 = e->set;
                return used;
            }
        }
    }
    put_cp(b, REPLACEMENT);
    st->g0 = st->init_g0;
    st->g1 = st->init_g1;
    return used;
}

/* A byte 0x80..0xFF at p[0]: a character of G1. Returns the number of bytes consumed. */
static size_t decode_gr(const struct iso2022 *st, const uint8_t *p, size_t n, mira__buf *b)
{
    uint8_t c = p[0];
    uint8_t g1 = st->g1;
    if (g1 >= FIRST_SB && g1 <= LAST_SB) {
        put_cp(b, sb_tables[g1 - FIRST_SB].map[c - 0x80]);
        return 1;
    }
    if (g1 == G_JIS_KANA) {
        put_cp(b, c >= 0xA1 && c <= 0xDF ? 0xFF61u + (c - 0xA1u) : REPLACEMENT);
        return 1;
    }
    if (is_double(g1) && c >= 0xA1 && c <= 0xFE) {
        if (n >= 2 && p[1] >= 0xA1 && p[1] <= 0xFE) {
            put_cp(b, db_lookup(g1, c, p[1]));
            return 2;
        }
    }
    put_cp(b, REPLACEMENT); /* nothing in G1, C1 controls of a 94-set, or a cut pair */
    return 1;
}

static bool decode_iso2022(const struct term *t, mira_vr vr, const uint8_t *in, size_t len,
                           mira__buf *b)
{
    struct iso2022 st = {
        .init_g0 = t->g0,
        .init_g1 = t->g1,
        .g0 = t->g0,
        .g1 = t->g1,
        .pn = vr == MIRA_VR_PN,
        .multi_valued = !(vr == MIRA_VR_LT || vr == MIRA_VR_ST || vr == MIRA_VR_UT ||
                          vr == MIRA_VR_UR),
    };
    if (!set_ready(t->g1))
        return false;
    bool nomem = false;
    size_t i = 0;
    while (i < len && !nomem) {
        uint8_t c = in[i];
        if (c == ESC) {
            i += decode_escape(&st, in + i, len - i, b, &nomem);
        } else if (c < 0x20) {
            /* PS3.5 6.1.2.5.3: CR, LF, FF, TAB and every other control but ESC return to the
             * first value's sets. */
            st.g0 = st.init_g0;
            st.g1 = st.init_g1;
            put_byte(b, c);
            i++;
        } else if (c >= 0x80) {
            i += decode_gr(&st, in + i, len - i, b);
        } else if (is_double(st.g0) && c != 0x20 && c != 0x7F) {
            /* A 94x94 set in G0 takes GL bytes in pairs: a '^' or '\' here is half of a
             * character, not a delimiter (the writer returns to value 1's set before those). */
            if (i + 1 < len && in[i + 1] >= 0x21 && in[i + 1] <= 0x7E) {
                put_cp(b, db_lookup(st.g0, c, in[i + 1]));
                i += 2;
            } else {
                put_cp(b, REPLACEMENT);
                i++;
            }
        } else if (!is_double(st.g0) &&
                   ((c == '\\' && st.multi_valued) || (st.pn && (c == '^' || c == '=')))) {
            /* Value, component and group delimiters (PS3.5 6.1.2.5.3). In ISO-IR 14 0x5C is
             * the YEN SIGN but still the value delimiter, so it is written as '\'. */
            st.g0 = st.init_g0;
            st.g1 = st.init_g1;
            put_byte(b, c);
            i++;
        } else if (st.g0 == G_JIS_ROMAN && (c == 0x5C || c == 0x7E)) {
            put_cp(b, c == 0x5C ? 0x00A5 : 0x203E); /* YEN SIGN, OVERLINE */
            i++;
        } else {
            put_byte(b, c);
            i++;
        }
    }
    return !nomem;
}

/* ---- Stand-alone schemes ---- */

/* UTF-8, each maximal invalid subpart (Unicode 15 section 3.9) becoming one U+FFFD. */
static void decode_utf8(const uint8_t *in, size_t len, mira__buf *b)
{
    size_t i = 0, run = 0; /* in[run..i) is valid and not yet copied */
    while (i < len) {
        uint8_t c = in[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            need = 0; /* 0x80..0xC1, 0xF5..0xFF never start a character */
        }
        size_t k = 1;
        while (k <= need && i + k < len && in[i + k] >= lo && in[i + k] <= hi) {
            lo = 0x80;
            hi = 0xBF;
            k++;
        }
        if (need > 0 && k == need + 1) {
            i += k;
            continue;
        }
        mira__buf_append(b, in + run, i - run);
        put_cp(b, REPLACEMENT);
        i += k;
        run = i;
    }
    mira__buf_append(b, in + run, i - run);
}

/* GB18030 or GBK through iconv. Invalid bytes become U+FFFD one at a time, and a sequence cut
 * at the end becomes one U+FFFD (as Python's codecs do). False only when memory ran out. */
static bool decode_iconv(int which, const uint8_t *in, size_t len, mira__buf *b)
{
    bool temporary, nomem;
    iconv_t cd = thread_cd(which, &temporary, &nomem);
    if (!cd) {
        if (nomem)
            return false;
        /* glibc without the gconv module: keep ASCII, lose the rest visibly */
        for (size_t i = 0; i < len; i++) {
            if (in[i] < 0x80)
                put_byte(b, in[i]);
            else
                put_cp(b, REPLACEMENT);
        }
        return true;
    }
    iconv(cd, NULL, NULL, NULL, NULL);
    char *ip = (char *)in; /* iconv's prototype is not const-correct; it does not write */
    size_t il = len;
    size_t room = len + len / 2 + 16;
    while (il > 0) {
        if (!mira__buf_reserve(b, room))
            break;
        char *op = (char *)b->data + b->len;
        size_t ol = b->cap - b->len - 1;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        b->len = (size_t)((uint8_t *)op - b->data);
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG) {
            room = (b->cap - b->len) * 2 + 16;
        } else if (errno == EINVAL) {
            put_cp(b, REPLACEMENT);
            break;
        } else {
            put_cp(b, REPLACEMENT);
            ip++;
            il--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    if (temporary)
        iconv_close(cd);
    return true;
}

/* ---- Entry point ---- */

/* True if in[0..len) has no byte >= 0x80 and no ESC: then it is the same in every scheme whose
 * G0 starts as ASCII. Eight bytes at a time. */
static bool plain_ascii(const uint8_t *in, size_t len)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t escs = ones * ESC;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        uint64_t x = w ^ escs; /* a zero byte where w has ESC */
        if ((w | ((x - ones) & ~x)) & highs)
            return false;
    }
    for (; i < len; i++)
        if (in[i] >= 0x80 || in[i] == ESC)
            return false;
    return true;
}

char *mira__charset_decode(const char *charset, mira_vr vr, const uint8_t *in, size_t len,
                           size_t *out_len, mira_error **err)
{
    if (!in)
        len = 0;
    if (len > SIZE_MAX / 4) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "text value of %zu bytes", len);
        return NULL;
    }
    const struct term *t = first_term(charset);

    /* Fast path: ASCII reads the same in every scheme, except that JIS X 0201 Romaji has its
     * own 0x5C and 0x7E. */
    if (plain_ascii(in, len) &&
        !(t->g0 == G_JIS_ROMAN && (memchr(in, 0x5C, len) || memchr(in, 0x7E, len)))) {
        char *s = mira_malloc(len + 1);
        if (!s) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "decoding text");
            return NULL;
        }
        if (len)
            memcpy(s, in, len);
        s[len] = '\0';
        if (out_len)
            *out_len = len;
        return s;
    }

    mira__buf b;
    mira__buf_init(&b);
    bool ok = mira__buf_reserve(&b, len + len / 2 + 16);
    if (ok) {
        switch (t->scheme) {
        case S_UTF8:
            decode_utf8(in, len, &b);
            break;
        case S_GB18030:
            ok = decode_iconv(CD_GB18030, in, len, &b);
            break;
        case S_GBK:
            ok = decode_iconv(CD_GBK, in, len, &b);
            break;
        default:
            ok = decode_iso2022(t, vr, in, len, &b);
            break;
        }
    }
    size_t cap = b.cap, n = 0;
    char *s = ok ? mira__buf_steal(&b, &n) : NULL;
    if (!s) {
        mira__buf_cleanup(&b);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "decoding text");
        return NULL;
    }
    if (cap - n > n / 4 + 4096) {
        char *shrunk = mira_realloc(s, n + 1);
        if (shrunk)
            s = shrunk;
    }
    if (out_len)
        *out_len = n;
    return s;
}
