/* A growable byte buffer, used to build strings, JSON and encoded data sets. */
#ifndef MIRA_CORE_BUF_H
#define MIRA_CORE_BUF_H

#include "mira/core.h"

#include <stdarg.h>

typedef struct mira__buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; later appends are no-ops */
} mira__buf;

void mira__buf_init(mira__buf *b);
void mira__buf_cleanup(mira__buf *b);
bool mira__buf_reserve(mira__buf *b, size_t extra);
bool mira__buf_append(mira__buf *b, const void *data, size_t len);
bool mira__buf_putc(mira__buf *b, char c);
bool mira__buf_puts(mira__buf *b, const char *s);
bool mira__buf_printf(mira__buf *b, const char *fmt, ...) MIRA_PRINTF(2, 3);
bool mira__buf_u16le(mira__buf *b, uint16_t v);
bool mira__buf_u32le(mira__buf *b, uint32_t v);
bool mira__buf_u16be(mira__buf *b, uint16_t v);
bool mira__buf_u32be(mira__buf *b, uint32_t v);
/* Detach the NUL-terminated contents (owned by the caller); NULL if an allocation failed. */
char *mira__buf_steal(mira__buf *b, size_t *len);

#endif
