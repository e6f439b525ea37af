/* MLLP framing (HL7 v2.5 Appendix C): a reader that does no I/O, and the frame of a message. */
#include "mira/hl7.h"

#include <string.h>

#define VT 0x0B
#define FS 0x1C
#define CR 0x0D
#define OVERSIZE_KEEP 4096

struct mira_mllp_reader {
    size_t max;      /* longest message kept */
    char *buf;       /* the frame's text so far (up to max, or OVERSIZE_KEEP once over) */
    size_t len, cap;
    size_t total;    /* the frame's length so far */
    bool in_frame;
    bool after_fs;   /* FS seen: the next byte should be CR */
    bool delivered;  /* buf holds a message handed out: clear it at the next call */
    uint64_t skipped;
};

mira_mllp_reader *mira_mllp_reader_new(size_t max_message)
{
    mira_mllp_reader *r = mira_calloc(1, sizeof *r);
    if (r)
        r->max = max_message ? max_message : (size_t)16 << 20;
    return r;
}

void mira_mllp_reader_free(mira_mllp_reader *r)
{
    if (!r)
        return;
    mira_free(r->buf);
    mira_free(r);
}

uint64_t mira_mllp_skipped(const mira_mllp_reader *r)
{
    return r->skipped;
}

bool mira_mllp_in_frame(const mira_mllp_reader *r)
{
    return r->in_frame;
}

/* Append n bytes of the frame's text, keeping at most the limit (or the first bytes of an
 * oversize message). */
static bool keep(mira_mllp_reader *r, const char *p, size_t n, mira_error **err)
{
    size_t room_to = r->total + n > r->max ? OVERSIZE_KEEP : r->max;
    r->total += n;
    if (r->len >= room_to)
        return true;
    if (n > room_to - r->len)
        n = room_to - r->len;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = mira_realloc(r->buf, cap);
        if (!b) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an MLLP frame of %zu bytes", r->total);
            return false;
        }
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return true;
}

static void deliver(mira_mllp_reader *r, mira_mllp_frame *out, bool bad_end)
{
    bool over = r->total > r->max;
    if (over && r->len > OVERSIZE_KEEP)
        r->len = OVERSIZE_KEEP;
    if (r->buf)
        r->buf[r->len] = 0;
    out->data = r->buf ? r->buf : "";
    out->len = r->len;
    out->total = r->total;
    out->oversize = over;
    out->bad_end = bad_end;
    r->in_frame = false;
    r->after_fs = false;
    r->delivered = true;
}

size_t mira_mllp_feed(mira_mllp_reader *r, const void *data, size_t n, mira_mllp_frame *out,
                      mira_error **err)
{
    memset(out, 0, sizeof *out);
    if (r->delivered) {
        r->len = 0;
        r->total = 0;
        r->delivered = false;
    }
    const char *p = data;
    size_t i = 0;
    while (i < n) {
        if (r->after_fs) {
            bool cr = p[i] == CR;
            if (cr)
                i++; /* else the byte is read again, outside the frame */
            deliver(r, out, !cr);
            return i;
        }
        if (!r->in_frame) {
            const char *vt = memchr(p + i, VT, n - i);
            size_t end = vt ? (size_t)(vt - p) : n;
            r->skipped += end - i;
            i = end;
            if (vt) {
                i++;
                r->in_frame = true;
                r->len = r->total = 0;
            }
            continue;
        }
        /* in a frame: up to the next FS or VT */
        size_t j = i;
        while (j < n && p[j] != FS && p[j] != VT)
            j++;
        if (!keep(r, p + i, j - i, err))
            return (size_t)-1;
        i = j;
        if (i == n)
            break;
        if (p[i] == VT) { /* a new frame: what came before it was not a message */
            r->skipped += r->total + 1;
            r->len = r->total = 0;
            i++;
            continue;
        }
        i++; /* FS */
        r->after_fs = true;
    }
    return i;
}

char *mira_mllp_wrap(const char *text, size_t len, size_t *out_len, mira_error **err)
{
    char *f = mira_malloc(len + 3);
    if (!f) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an MLLP frame of %zu bytes", len);
        return NULL;
    }
    f[0] = VT;
    memcpy(f + 1, text, len);
    f[len + 1] = FS;
    f[len + 2] = CR;
    *out_len = len + 3;
    return f;
}
