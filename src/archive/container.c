/* Storing the entries of a .zip (or another container libarchive reads) without unpacking it. */
#include "archive/archive_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ENTRY_MAX ((int64_t)4 << 30)

static struct archive *open_container(const char *path)
{
    struct archive *ar = archive_read_new();
    if (!ar)
        return NULL;
    archive_read_support_format_all(ar);
    archive_read_support_filter_all(ar);
    if (archive_read_open_filename(ar, path, 1 << 16) != ARCHIVE_OK) {
        archive_read_free(ar);
        return NULL;
    }
    return ar;
}

int64_t mira_container_count(const char *path)
{
    struct archive *ar = open_container(path);
    if (!ar)
        return -1;
    int64_t n = 0;
    struct archive_entry *e;
    while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
        if (archive_entry_filetype(e) == AE_IFREG)
            n++;
        archive_read_data_skip(ar);
    }
    archive_read_free(ar);
    return n;
}

static bool is_dicomdir(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return strcasecmp(base, "DICOMDIR") == 0;
}

bool mira_archive_store_container(mira_archive *a, const char *path, mira_store_entry_fn fn,
                                  void *ctx, mira_error **err)
{
    struct archive *ar = archive_read_new();
    if (!ar) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s", path);
        return false;
    }
    archive_read_support_format_all(ar);
    archive_read_support_filter_all(ar);
    if (archive_read_open_filename(ar, path, 1 << 16) != ARCHIVE_OK) {
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot read container", "%s: %s", path,
                       archive_error_string(ar) ? archive_error_string(ar) : "unreadable");
        archive_read_free(ar);
        return false;
    }
    struct archive_entry *e;
    int rc;
    bool ok = true;
    while ((rc = archive_read_next_header(ar, &e)) == ARCHIVE_OK) {
        if (archive_entry_filetype(e) != AE_IFREG || is_dicomdir(archive_entry_pathname(e)))
            continue;
        size_t nl = strlen(path) + strlen(archive_entry_pathname(e)) + 2;
        char *name = mira_malloc(nl);
        if (!name) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s", path);
            ok = false;
            break;
        }
        snprintf(name, nl, "%s:%s", path, archive_entry_pathname(e));
        mira_error *eerr = NULL;
        mira_store_result res;
        memset(&res, 0, sizeof res);
        int64_t size = archive_entry_size(e);
        uint8_t *buf = NULL;
        size_t got = 0;
        if (size < 0 || size > ENTRY_MAX) {
            mira_error_set(&eerr, MIRA_ERR_LIMIT, "Entry too large",
                           "%s: %lld bytes (at most %lld)", name, (long long)size,
                           (long long)ENTRY_MAX);
        } else if (!(buf = mira_malloc((size_t)size + 1))) {
            mira_error_set(&eerr, MIRA_ERR_NOMEM, NULL, "%s: %lld bytes", name, (long long)size);
        } else {
            while (got < (size_t)size) {
                la_ssize_t r = archive_read_data(ar, buf + got, (size_t)size - got);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            if (got != (size_t)size)
                mira_error_set(&eerr, MIRA_ERR_INVALID, "Cannot read container entry", "%s: %s",
                               name,
                               archive_error_string(ar) ? archive_error_string(ar) : "truncated");
        }
        if (!eerr && !mira_archive_store_memory(a, buf, got, &res, &eerr))
            mira_error_prefix(&eerr, "%s: ", name);
        if (fn)
            fn(ctx, name, &res, eerr);
        mira_error_free(eerr);
        mira_free(buf);
        mira_free(name);
    }
    if (ok && rc != ARCHIVE_EOF) {
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot read container", "%s: %s", path,
                       archive_error_string(ar) ? archive_error_string(ar) : "corrupt");
        ok = false;
    }
    archive_read_free(ar);
    return ok;
}
