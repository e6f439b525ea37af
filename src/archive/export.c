/* Exporting instances matching a query to a folder, optionally with a DICOMDIR. */
#include "archive/archive_int.h"

#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct item {
    char sop[65], study[65], series[65];
    char patient[130];
} item;

typedef struct items {
    item *v;
    size_t n, cap;
    bool failed;
} items;

static void copy_text(const mira_dataset *ds, mira_tag tag, char *dst, size_t cap)
{
    mira_element *e = mira_dataset_get(ds, tag);
    char *s = e ? mira_element_get_text(e, NULL) : NULL;
    snprintf(dst, cap, "%s", s ? s : "");
    mira_free(s);
}

static bool take(void *ctx, const mira_dataset *m)
{
    items *it = ctx;
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 256;
        item *v = mira_realloc(it->v, cap * sizeof *v);
        if (!v) {
            it->failed = true;
            return false;
        }
        it->v = v;
        it->cap = cap;
    }
    item *x = &it->v[it->n++];
    copy_text(m, 0x00080018, x->sop, sizeof x->sop);
    copy_text(m, 0x0020000D, x->study, sizeof x->study);
    copy_text(m, 0x0020000E, x->series, sizeof x->series);
    copy_text(m, 0x00100020, x->patient, sizeof x->patient);
    return true;
}

/* A path component from an identifier: anything but letters, digits, '.', '-' and '_' is '_'. */
static void safe_name(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        out[n++] = ok ? c : '_';
    }
    if (!n || (n == 1 && out[0] == '.') || (n == 2 && out[0] == '.' && out[1] == '.'))
        out[n++] = '_';
    out[n] = 0;
}

static bool make_dirs(const char *path, mira_error **err)
{
    char *p = mira_strdup(path);
    if (!p) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "export");
        return false;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            mira_error_set(err, MIRA_ERR_IO, "Cannot create folder", "%s: %s", p, strerror(errno));
            mira_free(p);
            return false;
        }
        *s = '/';
    }
    mira_free(p);
    return true;
}

static bool copy_blob(const char *src, const char *dst, mira_error **err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", src, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    size_t len = (size_t)st.st_size, got = 0;
    uint8_t *buf = mira_malloc(len ? len : 1);
    while (buf && got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    bool ok = buf && got == len;
    if (!ok)
        mira_error_set(err, buf ? MIRA_ERR_IO : MIRA_ERR_NOMEM, "Cannot read", "%s", src);
    ok = ok && make_dirs(dst, err) && mira__write_file_atomic(dst, buf, len, err);
    mira_free(buf);
    return ok;
}

/* Sorting items by patient, study, series, then the order the query gave them in. */
static int by_hierarchy(const void *pa, const void *pb, void *ctx)
{
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    const item *a = &((const item *)ctx)[ia], *b = &((const item *)ctx)[ib];
    int c = strcmp(a->patient, b->patient);
    if (!c)
        c = strcmp(a->study, b->study);
    if (!c)
        c = strcmp(a->series, b->series);
    return c ? c : (ia > ib) - (ia < ib);
}

bool mira_archive_export(mira_archive *a, const mira_dataset *identifier, const char *dir,
                         bool dicomdir, mira_export_fn fn, void *ctx, uint64_t *count,
                         mira_error **err)
{
    mira_dataset *q = identifier ? NULL : mira_dataset_new(err);
    const mira_dataset *ident = identifier;
    mira_dataset *copy = NULL;
    bool ok = true;
    /* the query, with the four keys the export needs as return keys */
    copy = mira_dataset_new(err);
    if (!copy) {
        mira_dataset_free(q);
        return false;
    }
    for (size_t i = 0; ident && i < mira_dataset_count(ident); i++) {
        const mira_element *e = mira_dataset_at(ident, i);
        size_t len = 0;
        const uint8_t *b = mira_element_bytes(e, &len);
        if (mira_element_vr(e) == MIRA_VR_SQ)
            continue; /* sequence keys: not supported for export selections */
        ok = ok && mira_dataset_set_bytes(copy, mira_element_tag(e), mira_element_vr(e), b, len,
                                          err) != NULL;
    }
    static const mira_tag needed[] = {0x00080018, 0x0020000D, 0x0020000E, 0x00100020};
    for (size_t i = 0; ok && i < 4; i++)
        if (!mira_dataset_get(copy, needed[i]))
            ok = mira_dataset_set_string(copy, needed[i], i == 3 ? MIRA_VR_LO : MIRA_VR_UI, "",
                                         err) != NULL;
    items it = {0};
    ok = ok && mira_archive_find(a, MIRA_LEVEL_INSTANCE, copy, NULL, take, &it, err);
    if (ok && it.failed) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "export");
        ok = false;
    }
    if (ok && !it.n) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "Nothing to export", "no instance matches");
        ok = false;
    }
    uint64_t written = 0;
    char **rel = ok && dicomdir ? mira_calloc(it.n, sizeof *rel) : NULL;
    if (ok && dicomdir && !rel) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "export");
        ok = false;
    }
    /* DICOMDIR names: each level numbered in order of first appearance under its parent */
    size_t *order = ok ? mira_malloc((it.n + 1) * sizeof *order) : NULL;
    if (ok && !order) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "export");
        ok = false;
    }
    if (ok && dicomdir) {
        for (size_t i = 0; i < it.n; i++)
            order[i] = i;
        qsort_r(order, it.n, sizeof *order, by_hierarchy, it.v);
    }
    unsigned np = 0, ns = 0, ne = 0, ni = 0;
    for (size_t k = 0; ok && k < it.n; k++) {
        size_t i = dicomdir ? order[k] : k;
        item *x = &it.v[i];
        char path[2048];
        if (dicomdir) {
            item *prev = k ? &it.v[order[k - 1]] : NULL;
            if (!prev || strcmp(prev->patient, x->patient) != 0) {
                np++;
                ns = ne = ni = 0;
            }
            if (!prev || strcmp(prev->study, x->study) != 0) {
                ns++;
                ne = ni = 0;
            }
            if (!prev || strcmp(prev->series, x->series) != 0) {
                ne++;
                ni = 0;
            }
            ni++;
            char relpath[64];
            snprintf(relpath, sizeof relpath, "DICOM/P%07u/S%07u/E%07u/I%07u", np % 10000000u,
                     ns % 10000000u, ne % 10000000u, ni % 10000000u);
            rel[k] = mira_strdup(relpath);
            snprintf(path, sizeof path, "%s/%s", dir, relpath);
        } else {
            char p[130], st[70], se[70], so[70];
            safe_name(x->patient, p, sizeof p);
            safe_name(x->study, st, sizeof st);
            safe_name(x->series, se, sizeof se);
            safe_name(x->sop, so, sizeof so);
            snprintf(path, sizeof path, "%s/%s/%s/%s/%s.dcm", dir, p, st, se, so);
        }
        mira_error *e = NULL;
        char *src = mira_archive_instance_path(a, x->sop, &e);
        bool one = src && copy_blob(src, path, &e);
        mira_free(src);
        if (fn)
            fn(ctx, x->sop, path, e);
        if (one) {
            written++;
        } else if (dicomdir) {
            /* a DICOMDIR must not name a file that is not there */
            ok = false;
            if (err && !*err) {
                *err = e;
                e = NULL;
            }
        }
        mira_error_free(e);
    }
    if (ok && dicomdir)
        ok = mira_dicomdir_write(dir, (const char *const *)rel, it.n, "MIRA", err);
    for (size_t i = 0; rel && i < it.n; i++)
        mira_free(rel[i]);
    mira_free(rel);
    mira_free(order);
    mira_free(it.v);
    mira_dataset_free(copy);
    mira_dataset_free(q);
    if (count)
        *count = written;
    return ok;
}
