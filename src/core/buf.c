/* A growable byte buffer. */
#include "buf.h"

#include <stdio.h>
#include <string.h>

void mira__buf_init(mira__buf *b)
{
    memset(b, 0, sizeof *b);
}

void mira__buf_cleanup(mira__buf *b)
{
    mira_free(b->data);
    memset(b, 0, sizeof *b);
}

bool mira__buf_reserve(mira__buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = mira_realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

bool mira__buf_append(mira__buf *b, const void *data, size_t len)
{
    if (!mira__buf_reserve(b, len))
        return false;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
    return true;
}

bool mira__buf_putc(mira__buf *b, char c)
{
    return mira__buf_append(b, &c, 1);
}

bool mira__buf_puts(mira__buf *b, const char *s)
{
    return mira__buf_append(b, s, strlen(s));
}

bool mira__buf_printf(mira__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return false;
    }
    if ((size_t)n < sizeof small)
        return mira__buf_append(b, small, (size_t)n);
    if (!mira__buf_reserve(b, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

bool mira__buf_u16le(mira__buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return mira__buf_append(b, x, 2);
}

bool mira__buf_u32le(mira__buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return mira__buf_append(b, x, 4);
}

bool mira__buf_u16be(mira__buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return mira__buf_append(b, x, 2);
}

bool mira__buf_u32be(mira__buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return mira__buf_append(b, x, 4);
}

char *mira__buf_steal(mira__buf *b, size_t *len)
{
    if (b->failed) {
        mira__buf_cleanup(b);
        return NULL;
    }
    if (!mira__buf_reserve(b, 0))
        return NULL;
    b->data[b->len] = 0;
    char *s = (char *)b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return s;
}
