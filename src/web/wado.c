/* WADO-RS (PS3.18 10.4) and WADO-URI (PS3.18 9): instances, metadata, frames, rendered images,
 * thumbnails and bulk data, from the archive. */
#include "web/web_int.h"

#include "mira/dicom.h"
#include "mira/pixel.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Instances are streamed (mira__http_reply.stream): a study of many gigabytes goes out a piece
 * at a time, each file read as it is sent, or transcoded in memory one instance at a time when
 * the client asked for another transfer syntax. What is sent is decided before the first byte:
 * the instances come from one query of the index, and each one's transfer syntax is chosen
 * from the Accept header then (406 if one of them cannot be given in any syntax asked for).
 *
 * Metadata never reads a file: it is the JSON prepared when each instance was stored
 * (mira_instance_metadata_make, kept in the index), joined into one array, with the server's
 * URL of each instance put in front of its BulkDataURIs. Instances stored before that have
 * their metadata made from the file.
 *
 * Frames, rendered images, thumbnails and bulk data concern one instance (a thumbnail of a
 * series or study is that of its middle instance): the file is read, and the reply made in
 * memory.
 */

#define MAX_RANGES 16
#define THUMBNAIL_SIZE 128
#define MAX_FRAMES_BODY ((size_t)1 << 30) /* bytes of frames one reply may hold */

/* ------------------------------------------------------------------ Accept */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    size_t k = strspn(s, " \t");
    if (k)
        memmove(s, s + k, n - k + 1);
}

static void unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        memmove(s, s + 1, n - 2);
        s[n - 2] = 0;
    }
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

size_t mira__accept_parse(const char *accept, mira__media_range *out, size_t max)
{
    size_t n = 0;
    if (!accept || !*accept) {
        if (max) {
            memset(out, 0, sizeof *out);
            snprintf(out->type, sizeof out->type, "*/*");
            out->q = 1;
            return 1;
        }
        return 0;
    }
    for (const char *p = accept; *p && n < max;) {
        /* one range: up to a comma outside quotes */
        size_t len = 0;
        bool quoted = false;
        while (p[len] && (quoted || p[len] != ',')) {
            if (p[len] == '"')
                quoted = !quoted;
            len++;
        }
        char range[512];
        snprintf(range, sizeof range, "%.*s", (int)(len < 511 ? len : 511), p);
        p += len;
        if (*p == ',')
            p++;
        mira__media_range m;
        memset(&m, 0, sizeof m);
        m.q = 1;
        char *save = NULL;
        char *tok = strtok_r(range, ";", &save);
        if (!tok)
            continue;
        trim(tok);
        lower(tok);
        snprintf(m.type, sizeof m.type, "%s", tok);
        while ((tok = strtok_r(NULL, ";", &save))) {
            char *eq = strchr(tok, '=');
            if (!eq)
                continue;
            *eq = 0;
            char *key = tok, *val = eq + 1;
            trim(key);
            lower(key);
            trim(val);
            unquote(val);
            if (strcmp(key, "type") == 0) {
                lower(val);
                snprintf(m.inner, sizeof m.inner, "%s", val);
            } else if (strcmp(key, "transfer-syntax") == 0) {
                snprintf(m.transfer_syntax, sizeof m.transfer_syntax, "%s", val);
            } else if (strcmp(key, "q") == 0) {
                m.q = strtod(val, NULL);
            }
        }
        if (!*m.type || m.q <= 0)
            continue;
        out[n++] = m;
    }
    /* a stable sort by q, best first */
    for (size_t i = 1; i < n; i++) {
        mira__media_range m = out[i];
        size_t j = i;
        while (j > 0 && out[j - 1].q < m.q) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = m;
    }
    return n;
}

/* ------------------------------------------------------------------ the instances asked for */

typedef struct inst {
    char study[65], series[65], sop[65];
    char ts[72];     /* as stored */
    char out_ts[72]; /* as it is sent ("" until chosen) */
    char *path;
    uint64_t size;
    int64_t frames;
    char *metadata; /* prepared, or NULL */
    size_t metadata_len;
} inst;

typedef struct inst_list {
    inst *v;
    size_t n, cap;
    bool failed; /* out of memory */
} inst_list;

static bool take_ref(void *ctx, const mira_instance_ref *ref)
{
    inst_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        inst *v = mira_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->failed = true;
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    inst *x = &l->v[l->n];
    memset(x, 0, sizeof *x);
    snprintf(x->study, sizeof x->study, "%s", ref->study_uid ? ref->study_uid : "");
    snprintf(x->series, sizeof x->series, "%s", ref->series_uid ? ref->series_uid : "");
    snprintf(x->sop, sizeof x->sop, "%s", ref->sop_uid ? ref->sop_uid : "");
    snprintf(x->ts, sizeof x->ts, "%s", ref->transfer_syntax);
    x->path = mira_strdup(ref->path);
    x->size = ref->size;
    x->frames = ref->frames;
    if (ref->metadata) {
        x->metadata = mira_strndup(ref->metadata, ref->metadata_len);
        x->metadata_len = ref->metadata_len;
    }
    if (!x->path || (ref->metadata && !x->metadata)) {
        mira_free(x->path);
        mira_free(x->metadata);
        l->failed = true;
        return false;
    }
    l->n++;
    return true;
}

static void inst_list_free(inst_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mira_free(l->v[i].path);
        mira_free(l->v[i].metadata);
    }
    mira_free(l->v);
    memset(l, 0, sizeof *l);
}

/* Append uid to a '\'-separated list unless it is its last value already. */
static void note_uid(mira__buf *b, const char *uid)
{
    size_t n = strlen(uid);
    if (b->len >= n && memcmp(b->data + b->len - n, uid, n) == 0 &&
        (b->len == n || b->data[b->len - n - 1] == '\\'))
        return;
    if (b->len)
        mira__buf_append(b, "\\", 1);
    mira__buf_append(b, uid, n);
}

/* The instances of the request into l (404 in r if there are none, 500 if the index fails). */
static bool list_instances(mira_archive *a, const mira__wado_request *q, bool metadata,
                           inst_list *l, mira__http_reply *r)
{
    memset(l, 0, sizeof *l);
    if (!a) { /* a check of the request alone (fuzz/fuzz_wado.c): it is valid up to here */
        r->status = 0;
        return false;
    }
    mira_error *err = NULL;
    bool ok = mira_archive_instances(a, q->study, q->level >= MIRA_LEVEL_SERIES ? q->series : NULL,
                                     q->level == MIRA_LEVEL_INSTANCE ? q->sop : NULL, metadata,
                                     take_ref, l, &err);
    if (!ok || l->failed) {
        mira__http_reply_error(r, l->failed ? 503 : 500, "the archive could not list the "
                                                         "instances%s%s",
                               err ? ": " : "", err ? mira_error_get_message(err) : "");
        mira_error_free(err);
        inst_list_free(l);
        return false;
    }
    if (l->n == 0) {
        mira__http_reply_error(r, 404, "no such %s in the archive",
                               q->level == MIRA_LEVEL_STUDY    ? "study"
                               : q->level == MIRA_LEVEL_SERIES ? "series"
                                                               : "instance");
        inst_list_free(l);
        return false;
    }
    for (size_t i = 0; i < l->n; i++) {
        note_uid(&r->studies, l->v[i].study);
        note_uid(&r->series, l->v[i].series);
    }
    return true;
}

/* ------------------------------------------------------------------ transfer syntaxes */

/* True if an instance stored in from can be sent in to. */
static bool can_convert(const char *from, const char *to)
{
    if (strcmp(from, to) == 0)
        return true;
    mira_ts_info a, b;
    if (!mira_ts_lookup(from, &a) || !mira_ts_lookup(to, &b))
        return false;
    if (!a.encapsulated && !b.encapsulated)
        return true;
    if (b.encapsulated)
        return mira_pixels_can_encode(to) && (!a.encapsulated || mira_pixels_can_decode(from));
    return mira_pixels_can_decode(from);
}

/* The media types of compressed frames (PS3.18 Table 8.7.3-2), by transfer syntax. */
static const struct {
    const char *ts, *type;
} frame_types[] = {
    {MIRA_TS_JPEG_BASELINE, "image/jpeg"},   {MIRA_TS_JPEG_EXTENDED, "image/jpeg"},
    {MIRA_TS_JPEG_LOSSLESS, "image/jpeg"},   {MIRA_TS_JPEG_LOSSLESS_SV1, "image/jpeg"},
    {MIRA_TS_JPEGLS_LOSSLESS, "image/jls"},  {MIRA_TS_JPEGLS_NEAR, "image/jls"},
    {MIRA_TS_J2K_LOSSLESS, "image/jp2"},     {MIRA_TS_J2K, "image/jp2"},
    {MIRA_TS_HTJ2K_LOSSLESS, "image/jphc"},  {MIRA_TS_HTJ2K_LOSSLESS_RPCL, "image/jphc"},
    {MIRA_TS_HTJ2K, "image/jphc"},           {MIRA_TS_RLE, "image/dicom-rle"},
};

static const char *frame_type_of(const char *ts)
{
    for (size_t i = 0; i < sizeof frame_types / sizeof frame_types[0]; i++)
        if (strcmp(frame_types[i].ts, ts) == 0)
            return frame_types[i].type;
    return NULL;
}

/* ------------------------------------------------------------------ streaming instances */

typedef struct dicom_stream {
    inst_list list;
    size_t next;   /* the next instance to start */
    size_t sent;   /* parts started */
    mira_deid_context *deid; /* de-identify each (borrowed from the server), or NULL */
    bool single;   /* one application/dicom body, no multipart */
    char boundary[80];
    mira__buf head; /* bytes to send before the current body */
    size_t head_at;
    int fd; /* the current body: a file (as stored) */
    uint64_t left;
    uint8_t *mem; /* or bytes made in memory (transcoded) */
    size_t mem_len, mem_at;
    bool finished; /* the closing delimiter is in head */
    bool sized;    /* the reply's length was declared from each file's size (inst.size) */
} dicom_stream;

static void dicom_stream_free(void *ctx)
{
    dicom_stream *st = ctx;
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    mira_free(st->mem);
    mira__buf_cleanup(&st->head);
    inst_list_free(&st->list);
    mira_free(st);
}

/* Withhold a data set from a researcher whose pixels may show identifying text (mira does not
 * clean pixels): true (and *withheld, the reasons in err) if so. */
static bool withheld(mira_deid_context *deid, const mira_dataset *ds, const char *sop,
                     mira_error **err)
{
    char why[256];
    if (!deid || mira_deid_burned_in_risk(ds, why, sizeof why) < MIRA_DEID_RISK_HIGH)
        return false;
    mira_error_set(err, MIRA_ERR_CONFLICT, "Withheld",
                   "instance %s is withheld from de-identified retrieval: its pixels may show "
                   "identifying text (%s)",
                   sop, why);
    return true;
}

/* Bytes of instance x in x->out_ts, into memory: transcoded, de-identified with deid (NULL:
 * not). Fails with MIRA_ERR_CONFLICT for an instance withheld from de-identified retrieval. */
static bool make_copy(const inst *x, mira_deid_context *deid, uint8_t **out, size_t *len,
                      mira_error **err)
{
    mira_file *f = mira_file_read(x->path, NULL, err);
    bool ok = f && !withheld(deid, mira_file_dataset(f), x->sop, err) &&
              (!deid || mira_deid_file(f, NULL, deid, NULL, err)) &&
              mira_file_transcode(f, x->out_ts, 1, err) &&
              mira_file_write_memory(f, x->out_ts, out, len, err);
    mira_file_free(f);
    return ok;
}

/* Start the body of the next instance (and the part's headers); false on a failure. An
 * instance of a study or series that cannot be transcoded after all (its pixel data does not
 * decode) is sent as it is stored, its part saying in which syntax: the client gets every
 * instance it can, and learns which ones are not in the syntax it asked for. De-identified,
 * one that cannot be made (or is withheld) is left out. */
static bool start_part(dicom_stream *st)
{
    inst *x = &st->list.v[st->next];
    st->head.len = 0;
    st->head_at = 0;
    if (st->deid) {
        while (!st->mem && !make_copy(x, st->deid, &st->mem, &st->mem_len, NULL)) {
            if (++st->next == st->list.n)
                return true; /* nothing more: the closing delimiter comes next */
            x = &st->list.v[st->next];
        }
    } else if (strcmp(x->out_ts, x->ts) != 0 && !st->mem &&
               !make_copy(x, NULL, &st->mem, &st->mem_len, NULL)) {
        snprintf(x->out_ts, sizeof x->out_ts, "%s", x->ts);
    }
    if (!st->single)
        mira__buf_printf(&st->head, "%s--%s\r\nContent-Type: application/dicom; "
                                    "transfer-syntax=%s\r\n\r\n",
                         st->sent ? "\r\n" : "", st->boundary, x->out_ts);
    st->sent++;
    if (!st->mem) {
        st->fd = open(x->path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (st->fd < 0 || fstat(st->fd, &sb) != 0)
            return false;
        if (st->sized && (uint64_t)sb.st_size != x->size)
            return false; /* replaced since the length was declared: cut, not a wrong length */
        st->left = (uint64_t)sb.st_size;
    }
    st->next++;
    return !st->head.failed;
}

static ssize_t dicom_stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    dicom_stream *st = ctx;
    (void)pos;
    size_t w = 0;
    while (w < max) {
        if (st->head_at < st->head.len) {
            size_t k = st->head.len - st->head_at;
            if (k > max - w)
                k = max - w;
            memcpy(buf + w, st->head.data + st->head_at, k);
            st->head_at += k;
            w += k;
            continue;
        }
        if (st->fd >= 0) {
            size_t want = max - w;
            if (want > st->left)
                want = (size_t)st->left;
            ssize_t got = want ? read(st->fd, buf + w, want) : 0;
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0 || (got == 0 && st->left))
                return w ? (ssize_t)w : -2; /* unreadable or shorter than it was: cut */
            w += (size_t)got;
            st->left -= (uint64_t)got;
            if (!st->left) {
                close(st->fd);
                st->fd = -1;
            }
            continue;
        }
        if (st->mem && st->next > 0) { /* (before the first part: made ahead, not yet due) */
            size_t k = st->mem_len - st->mem_at;
            if (k > max - w)
                k = max - w;
            memcpy(buf + w, st->mem + st->mem_at, k);
            st->mem_at += k;
            w += k;
            if (st->mem_at == st->mem_len) {
                mira_free(st->mem);
                st->mem = NULL;
                st->mem_len = st->mem_at = 0;
            }
            continue;
        }
        if (st->finished)
            break;
        if (st->next == st->list.n) {
            st->head.len = 0;
            st->head_at = 0;
            if (!st->single)
                mira__buf_printf(&st->head, "\r\n--%s--\r\n", st->boundary);
            st->finished = true;
            continue;
        }
        if (!start_part(st))
            return w ? (ssize_t)w : -2;
    }
    if (w == 0 && st->finished)
        return -1; /* MHD_CONTENT_READER_END_OF_STREAM */
    return (ssize_t)w;
}

static void make_boundary(char *out, size_t n)
{
    char uid[65];
    mira_uid_generate(uid);
    snprintf(out, n, "mira-%s", uid + 5); /* the random decimal digits */
}

/* A media range admits application/dicom: multipart (of it) or single part. */
static bool admits_dicom(const mira__media_range *m, bool *single)
{
    *single = false;
    if (strcmp(m->type, "*/*") == 0 || strcmp(m->type, "multipart/*") == 0)
        return true;
    if (strcmp(m->type, "multipart/related") == 0)
        return !*m->inner || strcmp(m->inner, "application/dicom") == 0;
    if (strcmp(m->type, "application/dicom") == 0) {
        *single = true;
        return true;
    }
    return false;
}

/* Choose each instance's transfer syntax from the ranges; false (406 in r) if one has none. */
static bool choose_syntaxes(inst_list *l, const mira__media_range *ranges, size_t nr,
                            bool single_ok, bool *single, mira__http_reply *r)
{
    bool any = false;
    *single = false;
    for (size_t i = 0; i < l->n; i++) {
        inst *x = &l->v[i];
        x->out_ts[0] = 0;
        for (size_t k = 0; k < nr && !*x->out_ts; k++) {
            bool one;
            if (!admits_dicom(&ranges[k], &one) || (one && !single_ok))
                continue;
            const char *want = ranges[k].transfer_syntax;
            /* absent: Explicit VR Little Endian (PS3.18 8.7.3.5.2); "*": as stored */
            const char *ts = !*want ? MIRA_TS_EXPLICIT_LE : strcmp(want, "*") == 0 ? x->ts : want;
            if (can_convert(x->ts, ts)) {
                snprintf(x->out_ts, sizeof x->out_ts, "%s", ts);
                if (i == 0)
                    *single = one;
                any = true;
            }
        }
        if (!*x->out_ts) {
            mira__http_reply_error(r, 406, "instance %s (stored in %s) cannot be sent in any "
                                           "transfer syntax the Accept header names",
                                   x->sop, x->ts);
            return false;
        }
    }
    return any;
}

/* The length of the whole reply when it is known before the first byte: every instance sent
 * as stored (its file's size, from stat now; sets inst.size and st->sized) or made in memory
 * ahead (one instance). UINT64_MAX otherwise (de-identified or transcoded parts, a file that
 * cannot be stat'd): chunked. A known length spares the client the chunked decoding, which
 * costs more than the copy in most HTTP clients. */
static uint64_t declared_size(dicom_stream *st)
{
    if (st->deid && !st->mem)
        return UINT64_MAX;
    uint64_t total = 0;
    size_t blen = strlen(st->boundary);
    for (size_t i = 0; i < st->list.n; i++) {
        inst *x = &st->list.v[i];
        uint64_t body;
        if (i == 0 && st->mem) {
            body = st->mem_len;
        } else {
            struct stat sb;
            if (strcmp(x->out_ts, x->ts) != 0 || stat(x->path, &sb) != 0)
                return UINT64_MAX;
            body = x->size = (uint64_t)sb.st_size;
        }
        if (!st->single) /* [CRLF] "--" boundary CRLF "Content-Type: ..." CRLF CRLF */
            total += (i ? 2 : 0) + 2 + blen + 2 +
                     strlen("Content-Type: application/dicom; transfer-syntax=") +
                     strlen(x->out_ts) + 4;
        total += body;
    }
    if (!st->single)
        total += 2 + 2 + blen + 2 + 2; /* CRLF "--" boundary "--" CRLF */
    st->sized = true;
    return total;
}

static void serve_instances(mira_archive *a, const mira__wado_request *q,
                            const mira__media_range *ranges, size_t nr, mira__http_reply *r)
{
    inst_list l;
    if (!list_instances(a, q, false, &l, r))
        return;
    bool single;
    if (!choose_syntaxes(&l, ranges, nr, q->level == MIRA_LEVEL_INSTANCE, &single, r)) {
        if (r->status != 406)
            mira__http_reply_error(r, 406, "a retrieval answers multipart/related; "
                                           "type=\"application/dicom\"");
        inst_list_free(&l);
        return;
    }
    dicom_stream *st = mira_calloc(1, sizeof *st);
    if (!st) {
        inst_list_free(&l);
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    if (l.n == 1 && (q->deid || strcmp(l.v[0].out_ts, l.v[0].ts) != 0)) {
        /* one instance: made before the reply, so that a failure is its answer */
        mira_error *err = NULL;
        if (!make_copy(&l.v[0], q->deid, &st->mem, &st->mem_len, &err)) {
            int code = mira_error_get_code(err);
            if (code == MIRA_ERR_CONFLICT)
                mira__http_reply_error(r, 403, "%s", mira_error_get_message(err));
            else
                mira__http_reply_error(r, code == MIRA_ERR_NOMEM ? 503 : 406,
                                       "instance %s cannot be sent in %s: %s", l.v[0].sop,
                                       l.v[0].out_ts, mira_error_get_message(err));
            mira_error_free(err);
            mira_free(st);
            inst_list_free(&l);
            return;
        }
    }
    st->list = l;
    st->deid = q->deid;
    st->fd = -1;
    st->single = single;
    mira__buf_init(&st->head);
    make_boundary(st->boundary, sizeof st->boundary);
    r->status = 200;
    if (single)
        snprintf(r->ctype, sizeof r->ctype, "application/dicom; transfer-syntax=%s",
                 l.v[0].out_ts);
    else
        snprintf(r->ctype, sizeof r->ctype,
                 "multipart/related; type=\"application/dicom\"; boundary=%s", st->boundary);
    r->content_type = r->ctype;
    r->stream = dicom_stream_read;
    r->stream_free = dicom_stream_free;
    r->stream_ctx = st;
    r->stream_size = declared_size(st);
}

/* ------------------------------------------------------------------ metadata */

static bool admits_json(const mira__media_range *ranges, size_t nr, bool *plain)
{
    for (size_t k = 0; k < nr; k++) {
        const char *t = ranges[k].type;
        if (strcmp(t, "application/dicom+json") == 0 || strcmp(t, "*/*") == 0 ||
            strcmp(t, "application/*") == 0) {
            *plain = false;
            return true;
        }
        if (strcmp(t, "application/json") == 0) {
            *plain = true;
            return true;
        }
    }
    return false;
}

/* Append json to b with each "BulkDataURI":"@/ made absolute: base is the instance's URL. */
static void append_metadata(mira__buf *b, const char *json, size_t len, const char *base)
{
    static const char key[] = "\"BulkDataURI\":\"@/";
    const size_t klen = sizeof key - 1;
    const char *p = json, *end = json + len;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), key, klen);
        if (!hit) {
            mira__buf_append(b, p, (size_t)(end - p));
            break;
        }
        mira__buf_append(b, p, (size_t)(hit - p));
        mira__buf_puts(b, "\"BulkDataURI\":\"");
        mira__buf_puts(b, base);
        mira__buf_puts(b, "/bulkdata/");
        p = hit + klen;
    }
}

static void serve_metadata(mira_archive *a, const mira__wado_request *q,
                           const mira__media_range *ranges, size_t nr, mira__http_reply *r)
{
    bool plain = false;
    if (!admits_json(ranges, nr, &plain)) {
        mira__http_reply_error(r, 406, "metadata is answered as application/dicom+json");
        return;
    }
    /* a series' metadata is kept from an earlier request while the series is unchanged (not
     * a researcher's: theirs is made de-identified each time) */
    char key[1400], token[96] = "";
    bool cached = a && q->cache && !q->deid && q->level == MIRA_LEVEL_SERIES &&
                  mira_archive_version(a, q->study, q->series, token, NULL);
    if (cached) {
        snprintf(key, sizeof key, "%s %s %s", q->base_url, q->study, q->series);
        r->body.len = 0;
        bool gz = false;
        if (mira__md_cache_get(q->cache, key, token, r->gzip_ok, &r->body, &gz)) {
            r->body_gzipped = gz;
            note_uid(&r->studies, q->study); /* for the audit, as list_instances does */
            note_uid(&r->series, q->series);
            r->status = 200;
            r->content_type = plain ? "application/json" : "application/dicom+json";
            return;
        }
        r->body.len = 0;
    }
    inst_list l;
    if (!list_instances(a, q, true, &l, r))
        return;
    mira__buf *b = &r->body;
    b->len = 0;
    mira__buf_append(b, "[", 1);
    char base[1024];
    for (size_t i = 0; i < l.n; i++) {
        inst *x = &l.v[i];
        char *made = NULL;
        const char *json = q->deid ? NULL : x->metadata;
        size_t jlen = x->metadata_len;
        if (!json) {
            /* stored before metadata was prepared, or for a researcher: made from the file
             * (de-identified as the instance would be retrieved; withheld ones left out) */
            mira_file *f = mira_file_read(x->path, NULL, NULL);
            mira_json_options jo = {
                .bulk_threshold = 1024, .bulk_uri = "@", .pixels_bulk = true};
            if (f && q->deid && withheld(q->deid, mira_file_dataset(f), x->sop, NULL)) {
                mira_file_free(f);
                continue;
            }
            bool ok = f && (!q->deid || mira_deid_file(f, NULL, q->deid, NULL, NULL));
            made = ok ? mira_dataset_to_json(mira_file_dataset(f), &jo, NULL) : NULL;
            mira_file_free(f);
            if (!made) {
                mira__http_reply_error(r, 500, "instance %s: its file could not be read",
                                       x->sop);
                inst_list_free(&l);
                return;
            }
            json = made;
            jlen = strlen(made);
        }
        snprintf(base, sizeof base, "%s/studies/%s/series/%s/instances/%s", q->base_url,
                 x->study, x->series, x->sop);
        if (b->len > 1)
            mira__buf_append(b, ",", 1);
        append_metadata(b, json, jlen, base);
        mira_free(made);
    }
    mira__buf_append(b, "]", 1);
    inst_list_free(&l);
    if (b->len == 2) {
        mira__http_reply_error(r, 403, "every instance is withheld from de-identified "
                                       "retrieval: their pixels may show identifying text");
        return;
    }
    if (cached && !b->failed)
        mira__md_cache_put(q->cache, key, token, b->data, b->len);
    r->status = 200;
    r->content_type = plain ? "application/json" : "application/dicom+json";
}

/* ------------------------------------------------------------------ one instance's pixels */

/* The instance of a frames, rendered, thumbnail or bulk data request, read whole. A series or
 * study (thumbnail) stands for its middle instance. */
typedef struct one_inst {
    inst_list l;
    inst *x;
    mira_file *f;
} one_inst;

static void one_free(one_inst *o)
{
    mira_file_free(o->f);
    inst_list_free(&o->l);
}

static bool open_one(mira_archive *a, const mira__wado_request *q, one_inst *o,
                     mira__http_reply *r)
{
    memset(o, 0, sizeof *o);
    if (!list_instances(a, q, false, &o->l, r))
        return false;
    o->x = &o->l.v[o->l.n / 2];
    mira_error *err = NULL;
    o->f = mira_file_read(o->x->path, NULL, &err);
    if (!o->f) {
        mira__http_reply_error(r, 500, "instance %s: its file could not be read: %s", o->x->sop,
                               mira_error_get_message(err));
        mira_error_free(err);
        one_free(o);
        return false;
    }
    if (withheld(q->deid, mira_file_dataset(o->f), o->x->sop, &err) ||
        (q->deid && !mira_deid_file(o->f, NULL, q->deid, NULL, &err))) {
        int code = mira_error_get_code(err);
        mira__http_reply_error(r, code == MIRA_ERR_CONFLICT ? 403 : 500, "%s",
                               mira_error_get_message(err));
        mira_error_free(err);
        one_free(o);
        return false;
    }
    return true;
}

/* Parse a frame list ("1,3,5": 1-based); false with 400 in r. *count of them into out. */
static bool parse_frames(const char *s, uint32_t *out, size_t max, size_t *count,
                         mira__http_reply *r)
{
    *count = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)*p)) {
            mira__http_reply_error(r, 400, "the frame list \"%.64s\" is not numbers separated by "
                                           "commas",
                                   s);
            return false;
        }
        unsigned long v = strtoul(p, &end, 10);
        if (errno || v == 0 || v > UINT32_MAX) {
            mira__http_reply_error(r, 400, "frame numbers start at 1 (\"%.64s\")", s);
            return false;
        }
        if (*count == max) {
            mira__http_reply_error(r, 400, "at most %zu frames at once", max);
            return false;
        }
        out[(*count)++] = (uint32_t)v;
        p = end;
        if (*p == ',') {
            p++;
            if (!*p) {
                mira__http_reply_error(r, 400, "the frame list ends with a comma");
                return false;
            }
        } else if (*p) {
            mira__http_reply_error(r, 400, "the frame list \"%.64s\" is not numbers separated "
                                           "by commas",
                                   s);
            return false;
        }
    }
    if (!*count) {
        mira__http_reply_error(r, 400, "no frame numbers");
        return false;
    }
    return true;
}

/* How frames are sent: uncompressed (decoded or native) or as stored (a codestream). */
static bool choose_frame_form(const mira__media_range *ranges, size_t nr, const char *stored_ts,
                              bool encapsulated, bool *as_stored, const char **type)
{
    const char *stored_type = encapsulated ? frame_type_of(stored_ts) : NULL;
    for (size_t k = 0; k < nr; k++) {
        const mira__media_range *m = &ranges[k];
        const char *t = m->type;
        const char *ts = m->transfer_syntax;
        if (strcmp(t, "multipart/related") == 0)
            t = *m->inner ? m->inner : "application/octet-stream";
        if (strcmp(t, "*/*") == 0 || strcmp(t, "multipart/*") == 0) {
            if (strcmp(ts, "*") == 0 && stored_type) {
                *as_stored = true, *type = stored_type;
                return true;
            }
            *as_stored = false, *type = "application/octet-stream";
            return true;
        }
        if (strcmp(t, "application/octet-stream") == 0) {
            if (strcmp(ts, "*") == 0 && stored_type) {
                *as_stored = true, *type = stored_type;
                return true;
            }
            if (!*ts || strcmp(ts, "*") == 0 || strcmp(ts, MIRA_TS_EXPLICIT_LE) == 0) {
                *as_stored = false, *type = "application/octet-stream";
                return true;
            }
            continue;
        }
        if (stored_type && strcmp(t, stored_type) == 0 &&
            (!*ts || strcmp(ts, "*") == 0 || strcmp(ts, stored_ts) == 0)) {
            *as_stored = true, *type = stored_type;
            return true;
        }
    }
    return false;
}

static void serve_frames(mira_archive *a, const mira__wado_request *q,
                         const mira__media_range *ranges, size_t nr, mira__http_reply *r)
{
    uint32_t frames[1024];
    size_t nf;
    if (!parse_frames(q->frames, frames, sizeof frames / sizeof frames[0], &nf, r))
        return;
    one_inst o;
    if (!open_one(a, q, &o, r))
        return;
    mira_error *err = NULL;
    mira_pixels *px = mira_pixels_open_file(o.f, &err);
    if (!px) {
        bool none = mira_error_get_code(err) == MIRA_ERR_NOT_FOUND;
        mira__http_reply_error(r, none ? 404 : 500, "instance %s: %s", o.x->sop,
                               none ? "it has no pixel data" : mira_error_get_message(err));
        mira_error_free(err);
        one_free(&o);
        return;
    }
    uint32_t have = mira_pixels_stored(px)->frames;
    for (size_t i = 0; i < nf; i++)
        if (frames[i] > have) {
            mira__http_reply_error(r, 404, "no frame %u: instance %s has %u", frames[i], o.x->sop,
                                   have);
            mira_pixels_free(px);
            one_free(&o);
            return;
        }
    bool as_stored = false;
    const char *type = NULL;
    const char *ts = mira_file_transfer_syntax(o.f);
    bool encapsulated = mira_pixels_encapsulated(px);
    if (!choose_frame_form(ranges, nr, ts, encapsulated, &as_stored, &type)) {
        mira__http_reply_error(r, 406, "frames are answered as multipart/related; "
                                       "type=\"application/octet-stream\"%s%s",
                               encapsulated ? " or as stored, " : "",
                               encapsulated ? frame_type_of(ts) ? frame_type_of(ts) : "" : "");
        mira_pixels_free(px);
        one_free(&o);
        return;
    }
    char boundary[80];
    make_boundary(boundary, sizeof boundary);
    const mira_pixel_desc *dd = mira_pixels_decoded(px);
    size_t fbytes = mira_pixel_frame_bytes(dd);
    uint8_t *tmp = NULL;
    mira__buf *b = &r->body;
    b->len = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < nf; i++) {
        const uint8_t *data = NULL;
        size_t len = 0;
        uint8_t *owned = NULL;
        uint32_t f = frames[i] - 1;
        if (as_stored || !encapsulated) {
            /* a codestream, or the native frame's own bytes when it is little-endian */
            ok = mira_pixels_frame_stored(px, f, &data, &len, &owned, &err);
            if (!ok && !as_stored && mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED) {
                mira_error_free(err);
                err = NULL;
                ok = true; /* decoded below */
                data = NULL;
            }
        }
        if (ok && !data) {
            if (!tmp && !(tmp = mira_malloc(fbytes ? fbytes : 1))) {
                mira_error_set(&err, MIRA_ERR_NOMEM, NULL, "a frame");
                ok = false;
            } else {
                ok = mira_pixels_decode_frame(px, f, tmp, fbytes, &err);
                data = tmp;
                len = fbytes;
            }
        }
        if (ok && b->len + len > MAX_FRAMES_BODY) {
            mira_error_set(&err, MIRA_ERR_LIMIT, "Too large", "more than %zu bytes of frames",
                           MAX_FRAMES_BODY);
            ok = false;
        }
        if (ok) {
            mira__buf_printf(b, "%s--%s\r\nContent-Type: %s%s%s\r\n\r\n", i ? "\r\n" : "",
                             boundary, type, as_stored ? "; transfer-syntax=" : "",
                             as_stored ? ts : "");
            mira__buf_append(b, data, len);
        }
        mira_free(owned);
    }
    mira_free(tmp);
    if (ok) {
        mira__buf_printf(b, "\r\n--%s--\r\n", boundary);
        r->status = 200;
        snprintf(r->ctype, sizeof r->ctype, "multipart/related; type=\"%s\"; boundary=%s", type,
                 boundary);
        r->content_type = r->ctype;
    } else {
        int code = mira_error_get_code(err);
        mira__http_reply_error(r, code == MIRA_ERR_LIMIT ? 413 : code == MIRA_ERR_NOMEM ? 503 : 500,
                               "instance %s: %s", o.x->sop, mira_error_get_message(err));
    }
    mira_error_free(err);
    mira_pixels_free(px);
    one_free(&o);
}

/* ------------------------------------------------------------------ rendered and thumbnails */

typedef struct render_params {
    mira_render_options ro;
    uint32_t vw, vh;         /* viewport: fit inside (0: as it is) */
    bool crop;               /* viewport's source region */
    double sx, sy, sw, sh;
    int quality;
} render_params;

/* The value of key in a query string (percent-decoded, owned), NULL if absent; *dup set if
 * the key came twice, *bad for a bad escape. */
static char *query_value(const char *query, const char *key, bool *dup, bool *bad)
{
    char *found = NULL;
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kl = eq ? (size_t)(eq - p) : n;
        mira_error *err = NULL;
        char *k = mira__url_decode(p, kl, true, &err);
        if (!k) {
            *bad = true;
            mira_error_free(err);
        } else if (strlen(k) == klen && strcasecmp(k, key) == 0) {
            if (found)
                *dup = true;
            mira_free(found);
            found = eq ? mira__url_decode(eq + 1, n - kl - 1, true, &err) : mira_strdup("");
            if (!found) {
                *bad = true;
                mira_error_free(err);
            }
        }
        mira_free(k);
        p += n;
        if (*p == '&')
            p++;
    }
    return found;
}

/* Numbers separated by commas into v (at most max); how many, or -1 if one is no number. */
static int parse_numbers(const char *s, double *v, int max, char *word, size_t wcap)
{
    int n = 0;
    const char *p = s;
    if (word)
        *word = 0;
    while (*p) {
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end != p && !errno && n == max)
            return -1;
        if (end == p || errno) {
            /* a word: only as the last item (the VOI function of window=) */
            if (!word)
                return -1;
            size_t k = strcspn(p, ",");
            if (p[k] || k == 0 || k >= wcap)
                return -1;
            memcpy(word, p, k);
            word[k] = 0;
            return n;
        }
        v[n++] = d;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

static bool parse_render(const char *query, bool thumbnail, render_params *rp,
                         mira__http_reply *r)
{
    memset(rp, 0, sizeof *rp);
    mira_render_options_init(&rp->ro);
    rp->quality = 90;
    if (thumbnail)
        rp->vw = rp->vh = THUMBNAIL_SIZE;
    /* every parameter must be one PS3.18 8.3.5 names for rendered resources */
    static const char *const known[] = {"window", "viewport", "quality", "annotation", "charset",
                                        "iccprofile", NULL};
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "&");
        size_t kl = strcspn(p, "=&");
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = kl == strlen(known[i]) && strncasecmp(p, known[i], kl) == 0;
        if (!ok && kl) {
            mira__http_reply_error(r, 400, "unknown parameter \"%.*s\" (rendered resources take "
                                           "window, viewport, quality, annotation, charset and "
                                           "iccprofile)",
                                   (int)(kl < 64 ? kl : 64), p);
            return false;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    bool dup = false, bad = false;
    char *window = query_value(query, "window", &dup, &bad);
    char *viewport = query_value(query, "viewport", &dup, &bad);
    char *quality = query_value(query, "quality", &dup, &bad);
    bool ok = !dup && !bad;
    if (!ok)
        mira__http_reply_error(r, 400, "%s", dup ? "a parameter is given twice"
                                                 : "a bad percent escape in the query");
    if (ok && window) {
        double v[2];
        char fn[32];
        int k = parse_numbers(window, v, 2, fn, sizeof fn);
        if (k != 2 || v[1] <= 0 ||
            (*fn && strcasecmp(fn, "linear") && strcasecmp(fn, "linear-exact") &&
             strcasecmp(fn, "sigmoid"))) {
            mira__http_reply_error(r, 400, "window is center,width[,linear|linear-exact|sigmoid]"
                                           " with a positive width");
            ok = false;
        } else {
            rp->ro.window = MIRA_WINDOW_EXPLICIT;
            rp->ro.center = v[0];
            rp->ro.width = v[1];
            rp->ro.function = !*fn || !strcasecmp(fn, "linear") ? MIRA_VOI_LINEAR
                              : !strcasecmp(fn, "sigmoid")      ? MIRA_VOI_SIGMOID
                                                                : MIRA_VOI_LINEAR_EXACT;
        }
    }
    if (ok && viewport) {
        double v[6];
        int k = parse_numbers(viewport, v, 6, NULL, 0);
        bool good = (k == 2 || k == 6) && v[0] >= 1 && v[1] >= 1 && v[0] <= 16384 &&
                    v[1] <= 16384;
        if (good && k == 6)
            good = v[2] >= 0 && v[3] >= 0 && v[4] > 0 && v[5] > 0;
        if (!good) {
            mira__http_reply_error(r, 400, "viewport is vw,vh[,sx,sy,sw,sh]: a size of 1 to "
                                           "16384 pixels (and a source region)");
            ok = false;
        } else {
            rp->vw = (uint32_t)v[0];
            rp->vh = (uint32_t)v[1];
            if (k == 6) {
                rp->crop = true;
                rp->sx = v[2], rp->sy = v[3], rp->sw = v[4], rp->sh = v[5];
            }
        }
    }
    if (ok && quality) {
        char *end;
        long v = strtol(quality, &end, 10);
        if (end == quality || *end || v < 1 || v > 100) {
            mira__http_reply_error(r, 400, "quality is a number from 1 to 100");
            ok = false;
        } else {
            rp->quality = (int)v;
        }
    }
    mira_free(window);
    mira_free(viewport);
    mira_free(quality);
    return ok;
}

/* The rendered frame cut to the source region (clipped to the image). */
static bool crop(mira_rendered *img, const render_params *rp, mira_error **err)
{
    uint32_t x0 = rp->sx < img->columns ? (uint32_t)rp->sx : img->columns;
    uint32_t y0 = rp->sy < img->rows ? (uint32_t)rp->sy : img->rows;
    double x1d = rp->sx + rp->sw, y1d = rp->sy + rp->sh;
    uint32_t x1 = x1d < img->columns ? (uint32_t)x1d : img->columns;
    uint32_t y1 = y1d < img->rows ? (uint32_t)y1d : img->rows;
    if (x1 <= x0 || y1 <= y0) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad viewport", "the source region is outside "
                                                               "the image");
        return false;
    }
    uint32_t w = x1 - x0, h = y1 - y0;
    int ch = img->channels;
    uint8_t *d = mira_malloc((size_t)w * h * (size_t)ch);
    if (!d) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "cropping");
        return false;
    }
    for (uint32_t y = 0; y < h; y++)
        memcpy(d + (size_t)y * w * ch, img->data + ((size_t)(y0 + y) * img->columns + x0) * ch,
               (size_t)w * ch);
    mira_free(img->data);
    img->data = d;
    img->columns = w;
    img->rows = h;
    return true;
}

/* The image type asked for: "image/jpeg" (the default) or "image/png"; NULL: 406. */
static const char *choose_image(const mira__media_range *ranges, size_t nr)
{
    for (size_t k = 0; k < nr; k++) {
        const char *t = ranges[k].type;
        if (strcmp(t, "image/jpeg") == 0 || strcmp(t, "image/*") == 0 || strcmp(t, "*/*") == 0)
            return "image/jpeg";
        if (strcmp(t, "image/png") == 0)
            return "image/png";
    }
    return NULL;
}

/* Render frame (1-based) of the instance into r as type. */
static void render_into(mira_file *f, const char *sop, uint32_t frame, render_params *rp,
                        const char *type, mira__http_reply *r)
{
    mira_error *err = NULL;
    mira_pixels *px = mira_pixels_open_file(f, &err);
    mira_rendered img = {0}, scaled = {0};
    uint8_t *out = NULL;
    size_t len = 0;
    bool ok = px != NULL;
    if (ok && frame > mira_pixels_stored(px)->frames) {
        mira__http_reply_error(r, 404, "no frame %u: instance %s has %u", frame, sop,
                               mira_pixels_stored(px)->frames);
        mira_pixels_free(px);
        return;
    }
    rp->ro.frame = frame - 1;
    ok = ok && mira_pixels_render(px, &rp->ro, &img, &err);
    if (ok && rp->crop)
        ok = crop(&img, rp, &err);
    mira_rendered *use = &img;
    if (ok && (rp->vw || rp->vh)) {
        ok = mira_rendered_scale(&img, rp->vw, rp->vh, &scaled, &err);
        use = &scaled;
    }
    if (ok)
        ok = strcmp(type, "image/png") == 0 ? mira_png_encode(use, &out, &len, &err)
                                            : mira_jpeg_encode(use, rp->quality, &out, &len, &err);
    if (ok) {
        r->body.len = 0;
        mira__buf_append(&r->body, out, len);
        r->status = 200;
        r->content_type = type;
    } else {
        int code = mira_error_get_code(err);
        mira__http_reply_error(r,
                               code == MIRA_ERR_NOT_FOUND                               ? 404
                               : code == MIRA_ERR_ARGUMENT                              ? 400
                               : code == MIRA_ERR_UNSUPPORTED || code == MIRA_ERR_LIMIT ? 406
                               : code == MIRA_ERR_NOMEM                                 ? 503
                                                                                        : 500,
                               "instance %s: %s", sop,
                               code == MIRA_ERR_NOT_FOUND ? "it has no pixel data"
                                                          : mira_error_get_message(err));
    }
    mira_error_free(err);
    mira_free(out);
    mira_rendered_free(&img);
    mira_rendered_free(&scaled);
    mira_pixels_free(px);
}

static void serve_rendered(mira_archive *a, const mira__wado_request *q,
                           const mira__media_range *ranges, size_t nr, bool thumbnail,
                           mira__http_reply *r)
{
    if (!thumbnail && q->level != MIRA_LEVEL_INSTANCE) {
        mira__http_reply_error(r, 400, "rendered %s are not served: ask for an instance's (or "
                                       "a frame's) rendered image, or the %s's thumbnail",
                               q->level == MIRA_LEVEL_STUDY ? "studies" : "series",
                               q->level == MIRA_LEVEL_STUDY ? "study" : "series");
        return;
    }
    render_params rp;
    if (!parse_render(q->query, thumbnail, &rp, r))
        return;
    const char *type = choose_image(ranges, nr);
    if (!type) {
        mira__http_reply_error(r, 406, "rendered images are image/jpeg or image/png");
        return;
    }
    uint32_t frames[2];
    size_t nf = 1;
    frames[0] = 1;
    if (q->frames && !parse_frames(q->frames, frames, 1, &nf, r)) {
        if (r->status == 400 && strstr((const char *)r->body.data, "at most"))
            mira__http_reply_error(r, 400, "one frame at a time is rendered");
        return;
    }
    one_inst o;
    if (!open_one(a, q, &o, r))
        return;
    /* a multi-frame instance's thumbnail: its middle frame */
    uint32_t frame = frames[0];
    if (thumbnail && !q->frames && o.x->frames > 1)
        frame = (uint32_t)(o.x->frames / 2 + 1);
    render_into(o.f, o.x->sop, frame, &rp, type, r);
    one_free(&o);
}

/* ------------------------------------------------------------------ bulk data */

/* The element a bulk data path names ("7FE00010", "00540016/0/00181072"), or NULL (404). */
static const mira_element *bulk_element(const mira_dataset *ds, const char *path)
{
    const mira_element *e = NULL;
    const char *p = path;
    while (ds && *p) {
        size_t n = strcspn(p, "/");
        if (n != 8)
            return NULL;
        char hex[9];
        memcpy(hex, p, 8);
        hex[8] = 0;
        for (int i = 0; i < 8; i++)
            if (!isxdigit((unsigned char)hex[i]))
                return NULL;
        e = mira_dataset_get(ds, (mira_tag)strtoul(hex, NULL, 16));
        if (!e)
            return NULL;
        p += n;
        if (!*p)
            return e;
        p++; /* an item index, then a tag */
        char *end;
        if (!isdigit((unsigned char)*p))
            return NULL;
        unsigned long item = strtoul(p, &end, 10);
        if (*end != '/' || item >= mira_element_item_count(e))
            return NULL;
        ds = mira_element_item(e, item);
        p = end + 1;
        e = NULL;
    }
    return e;
}

/* A Range header's single range "bytes=a-b", "bytes=a-", "bytes=-n" over len bytes: false if it
 * is not one (ignored: the whole value is sent), *unsatisfiable if outside. */
static bool parse_range(const char *h, uint64_t len, uint64_t *from, uint64_t *to,
                        bool *unsatisfiable)
{
    *unsatisfiable = false;
    if (!h || strncasecmp(h, "bytes=", 6) != 0)
        return false;
    const char *p = h + 6;
    if (strchr(p, ','))
        return false; /* several ranges: answered whole */
    char *end;
    if (*p == '-') {
        if (!isdigit((unsigned char)p[1]))
            return false;
        uint64_t n = strtoull(p + 1, &end, 10);
        if (*end)
            return false;
        if (n == 0 || len == 0) {
            *unsatisfiable = true;
            return true;
        }
        *from = n >= len ? 0 : len - n;
        *to = len - 1;
        return true;
    }
    if (!isdigit((unsigned char)*p))
        return false;
    uint64_t a = strtoull(p, &end, 10);
    if (*end != '-')
        return false;
    p = end + 1;
    uint64_t b = len ? len - 1 : 0;
    if (*p) {
        if (!isdigit((unsigned char)*p))
            return false;
        b = strtoull(p, &end, 10);
        if (*end || b < a)
            return false;
        if (b >= len)
            b = len ? len - 1 : 0;
    }
    if (a >= len) {
        *unsatisfiable = true;
        return true;
    }
    *from = a;
    *to = b;
    return true;
}

static void serve_bulkdata(mira_archive *a, const mira__wado_request *q,
                           const mira__media_range *ranges, size_t nr, mira__http_reply *r)
{
    /* single part (application/octet-stream, where Range applies) or multipart (the default) */
    bool single = false, found = false;
    for (size_t k = 0; k < nr && !found; k++) {
        const mira__media_range *m = &ranges[k];
        if (strcmp(m->type, "application/octet-stream") == 0)
            single = found = true;
        else if (strcmp(m->type, "*/*") == 0 || strcmp(m->type, "multipart/*") == 0 ||
                 (strcmp(m->type, "multipart/related") == 0 &&
                  (!*m->inner || strcmp(m->inner, "application/octet-stream") == 0)))
            found = true;
    }
    if (!found) {
        mira__http_reply_error(r, 406, "bulk data is answered as application/octet-stream or "
                                       "multipart/related; type=\"application/octet-stream\"");
        return;
    }
    one_inst o;
    if (!open_one(a, q, &o, r))
        return;
    mira_ts_info ti;
    const char *ts = mira_file_transfer_syntax(o.f);
    const mira_element *e = bulk_element(mira_file_dataset(o.f), q->bulk);
    size_t len = 0;
    const uint8_t *bytes = e ? mira_element_bytes(e, &len) : NULL;
    uint8_t *swapped = NULL;
    mira_vr evr = e ? mira_element_vr(e) : MIRA_VR_SQ;
    bool binary = evr == MIRA_VR_OB || evr == MIRA_VR_OD || evr == MIRA_VR_OF ||
                  evr == MIRA_VR_OL || evr == MIRA_VR_OV || evr == MIRA_VR_OW ||
                  evr == MIRA_VR_UN;
    if (!e || !binary) {
        /* only binary values are bulk data (the ones metadata gives BulkDataURIs) */
        mira__http_reply_error(r, 404, "instance %s has no bulk data at bulkdata/%.100s",
                               o.x->sop, q->bulk);
    } else if (!bytes && mira_element_is_encapsulated(e)) {
        mira__http_reply_error(r, 406, "the pixel data of instance %s is compressed (%s): ask "
                                       "for its frames",
                               o.x->sop, ts);
    } else {
        /* bulk data is little-endian (PS3.18 8.7.3.3.2): a big-endian value swapped in a copy */
        mira_vr vr = mira_element_vr(e);
        size_t vs = vr == MIRA_VR_AT ? 2 : mira_vr_value_size(vr); /* AT: two 16-bit halves */
        if (mira_ts_lookup(ts, &ti) && ti.big_endian && len && vs > 1) {
            uint8_t *le = mira_malloc(len);
            if (!le) {
                mira__http_reply_error(r, 503, "out of memory");
                one_free(&o);
                return;
            }
            for (size_t i = 0; i + vs <= len; i += vs)
                for (size_t k = 0; k < vs; k++)
                    le[i + k] = bytes[i + vs - 1 - k];
            swapped = le;
            bytes = le;
        }
        uint64_t from = 0, to = len ? len - 1 : 0;
        bool unsat = false;
        bool ranged = single && parse_range(q->range, len, &from, &to, &unsat);
        r->body.len = 0;
        if (ranged && unsat) {
            mira__http_reply_error(r, 416, "the range is outside the %zu bytes of the value", len);
            snprintf(r->ctype2, sizeof r->ctype2, "bytes */%zu", len);
            r->content_range = r->ctype2;
        } else if (single) {
            if (len)
                mira__buf_append(&r->body, bytes + from, (size_t)(to - from + 1));
            r->status = ranged ? 206 : 200;
            r->content_type = "application/octet-stream";
            r->accept_ranges = true;
            if (ranged) {
                snprintf(r->ctype2, sizeof r->ctype2, "bytes %llu-%llu/%zu",
                         (unsigned long long)from, (unsigned long long)to, len);
                r->content_range = r->ctype2;
            }
        } else {
            char boundary[80];
            make_boundary(boundary, sizeof boundary);
            mira__buf_printf(&r->body, "--%s\r\nContent-Type: application/octet-stream\r\n\r\n",
                             boundary);
            mira__buf_append(&r->body, bytes, len);
            mira__buf_printf(&r->body, "\r\n--%s--\r\n", boundary);
            r->status = 200;
            snprintf(r->ctype, sizeof r->ctype,
                     "multipart/related; type=\"application/octet-stream\"; boundary=%s",
                     boundary);
            r->content_type = r->ctype;
        }
    }
    mira_free(swapped);
    one_free(&o);
}

/* ------------------------------------------------------------------ WADO-URI */

static void serve_uri(mira_archive *a, const mira__wado_request *q, mira__http_reply *r)
{
    static const char *const known[] = {
        "requestType",    "studyUID",       "seriesUID",  "objectUID", "contentType",
        "transferSyntax", "frameNumber",    "windowCenter", "windowWidth", "rows",
        "columns",        "imageQuality",   "charset",    "anonymize", "annotation",
        "region",         "presentationUID", "presentationSeriesUID", NULL};
    for (const char *p = q->query; *p;) {
        size_t n = strcspn(p, "&"), kl = strcspn(p, "=&");
        bool ok = kl == 0;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = kl == strlen(known[i]) && strncmp(p, known[i], kl) == 0;
        if (!ok) {
            mira__http_reply_error(r, 400, "unknown WADO-URI parameter \"%.*s\"",
                                   (int)(kl < 64 ? kl : 64), p);
            return;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    bool dup = false, bad = false;
    char *v[18] = {0};
    for (size_t i = 0; known[i]; i++)
        v[i] = query_value(q->query, known[i], &dup, &bad);
    enum { RT, ST, SE, OB, CT, TS, FR, WC, WW, RO, CO, IQ, CS, AN };
    mira__wado_request u = *q;
    u.level = MIRA_LEVEL_INSTANCE;
    u.uri = false;
    u.study = v[ST], u.series = v[SE], u.sop = v[OB];
    if (dup || bad) {
        mira__http_reply_error(r, 400, "%s", dup ? "a parameter is given twice"
                                                 : "a bad percent escape in the query");
    } else if (!v[RT] || strcmp(v[RT], "WADO") != 0) {
        mira__http_reply_error(r, 400, "requestType=WADO is required (PS3.18 9.1.2.1.1)");
    } else if (!v[ST] || !v[SE] || !v[OB] || !mira__uid_valid(v[ST], strlen(v[ST])) ||
               !mira__uid_valid(v[SE], strlen(v[SE])) || !mira__uid_valid(v[OB], strlen(v[OB]))) {
        mira__http_reply_error(r, 400, "studyUID, seriesUID and objectUID are required, and "
                                       "must be UIDs");
    } else if (v[AN] && strcasecmp(v[AN], "yes") == 0) {
        mira__http_reply_error(r, 400, "anonymize=yes is not supported");
    } else {
        /* contentType: a list, the first one served wins (default image/jpeg) */
        const char *ct = v[CT] && *v[CT] ? v[CT] : "image/jpeg";
        char type[64] = "";
        for (const char *p = ct; *p && !*type;) {
            size_t n = strcspn(p, ",");
            char t[64];
            snprintf(t, sizeof t, "%.*s", (int)(n < 63 ? n : 63), p);
            trim(t);
            char *semi = strchr(t, ';');
            if (semi)
                *semi = 0;
            trim(t);
            lower(t);
            if (!strcmp(t, "application/dicom") || !strcmp(t, "image/jpeg") ||
                !strcmp(t, "image/png"))
                snprintf(type, sizeof type, "%s", t);
            p += n;
            if (*p == ',')
                p++;
        }
        if (!*type) {
            mira__http_reply_error(r, 406, "contentType is application/dicom, image/jpeg or "
                                           "image/png");
        } else if (strcmp(type, "application/dicom") == 0) {
            if (v[FR] || v[WC] || v[WW] || v[RO] || v[CO] || v[IQ]) {
                mira__http_reply_error(r, 400, "frameNumber, windowCenter, windowWidth, rows, "
                                               "columns and imageQuality are for images, not "
                                               "application/dicom");
            } else {
                mira__media_range m;
                memset(&m, 0, sizeof m);
                snprintf(m.type, sizeof m.type, "application/dicom");
                /* transferSyntax absent: Explicit VR Little Endian (PS3.18 9.1.2.2.1) */
                snprintf(m.transfer_syntax, sizeof m.transfer_syntax, "%s",
                         v[TS] && *v[TS] ? v[TS] : MIRA_TS_EXPLICIT_LE);
                m.q = 1;
                serve_instances(a, &u, &m, 1, r);
            }
        } else if (v[TS]) {
            mira__http_reply_error(r, 400, "transferSyntax is for application/dicom only");
        } else {
            render_params rp;
            memset(&rp, 0, sizeof rp);
            mira_render_options_init(&rp.ro);
            rp.quality = 90;
            bool ok = true;
            char *end;
            if ((v[WC] != NULL) != (v[WW] != NULL)) {
                mira__http_reply_error(r, 400, "windowCenter and windowWidth go together");
                ok = false;
            } else if (v[WC]) {
                rp.ro.window = MIRA_WINDOW_EXPLICIT;
                rp.ro.center = strtod(v[WC], &end);
                ok = end != v[WC] && !*end;
                rp.ro.width = strtod(v[WW], &end);
                ok = ok && end != v[WW] && !*end && rp.ro.width > 0;
                if (!ok)
                    mira__http_reply_error(r, 400, "windowCenter and windowWidth are numbers "
                                                   "(a positive width)");
            }
            const char *nums[3] = {v[RO], v[CO], v[IQ]};
            long got[3] = {0, 0, 90};
            for (int k = 0; ok && k < 3; k++) {
                if (!nums[k])
                    continue;
                got[k] = strtol(nums[k], &end, 10);
                if (end == nums[k] || *end || got[k] < 1 || got[k] > (k == 2 ? 100 : 16384)) {
                    mira__http_reply_error(r, 400, "rows and columns are 1 to 16384, "
                                                   "imageQuality 1 to 100");
                    ok = false;
                }
            }
            uint32_t frame = 1;
            if (ok && v[FR]) {
                long f = strtol(v[FR], &end, 10);
                if (end == v[FR] || *end || f < 1 || f > (long)UINT32_MAX) {
                    mira__http_reply_error(r, 400, "frameNumber starts at 1");
                    ok = false;
                }
                frame = (uint32_t)f;
            }
            if (ok) {
                rp.vh = (uint32_t)got[0];
                rp.vw = (uint32_t)got[1];
                rp.quality = (int)got[2];
                one_inst o;
                if (open_one(a, &u, &o, r)) {
                    render_into(o.f, o.x->sop, frame, &rp, type, r);
                    one_free(&o);
                }
            }
        }
    }
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        mira_free(v[i]);
}

/* ------------------------------------------------------------------ entry */

void mira__wado_serve(mira_archive *a, const mira__wado_request *q, mira__http_reply *r)
{
    if (q->uri) {
        serve_uri(a, q, r);
        return;
    }
    mira__media_range ranges[MAX_RANGES];
    size_t nr = mira__accept_parse(q->accept, ranges, MAX_RANGES);
    switch (q->kind) {
    case MIRA__WADO_INSTANCES:
        serve_instances(a, q, ranges, nr, r);
        break;
    case MIRA__WADO_METADATA:
        serve_metadata(a, q, ranges, nr, r);
        break;
    case MIRA__WADO_FRAMES:
        serve_frames(a, q, ranges, nr, r);
        break;
    case MIRA__WADO_RENDERED:
        serve_rendered(a, q, ranges, nr, false, r);
        break;
    case MIRA__WADO_THUMBNAIL:
        serve_rendered(a, q, ranges, nr, true, r);
        break;
    case MIRA__WADO_BULKDATA:
        serve_bulkdata(a, q, ranges, nr, r);
        break;
    }
}
