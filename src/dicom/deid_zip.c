/* De-identified ZIPs: DICOM files through the de-identifier into ZIP entries, as they go. */
#include "mira/deid.h"

#include <archive.h>
#include <archive_entry.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

struct mira_deid_zip {
    mira_deid_context *deid; /* borrowed */
    struct archive *zip;
    mira_deid_zip_write_fn write;
    void *ctx;
    bool closed;
};

static la_ssize_t zip_write(struct archive *a, void *ctx, const void *p, size_t n)
{
    (void)a;
    mira_deid_zip *z = ctx;
    return z->write(z->ctx, p, n) ? (la_ssize_t)n : -1;
}

mira_deid_zip *mira_deid_zip_new(mira_deid_context *deid, mira_deid_zip_write_fn write, void *ctx,
                                 mira_error **err)
{
    mira_deid_zip *z = mira_calloc(1, sizeof *z);
    if (!z) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "starting a ZIP");
        return NULL;
    }
    z->deid = deid;
    z->write = write;
    z->ctx = ctx;
    z->zip = archive_write_new();
    if (!z->zip || archive_write_set_format_zip(z->zip) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(z->zip, 0) != ARCHIVE_OK ||
        archive_write_open(z->zip, z, NULL, zip_write, NULL) != ARCHIVE_OK) {
        mira_error_set(err, MIRA_ERR_NOMEM, "ZIP not started", "libarchive: %s",
                       z->zip ? archive_error_string(z->zip) : "out of memory");
        mira_deid_zip_free(z);
        return NULL;
    }
    return z;
}

/* The trimmed text of a top-level element ("" if absent) into buf. */
static void text_of(const mira_dataset *ds, mira_tag tag, char *buf, size_t cap)
{
    buf[0] = 0;
    mira_element *e = mira_dataset_get(ds, tag);
    char *t = e ? mira_element_get_text(e, NULL) : NULL;
    if (t)
        snprintf(buf, cap, "%s", t);
    mira_free(t);
}

/* A path component from a (de-identified) value: letters, digits, '.', '-', '_'. */
static void component(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = s; *p && o + 1 < cap; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        out[o++] = ok ? c : '_';
    }
    if (!o || strspn(out, ".") == o)
        out[o++] = '_';
    out[o] = 0;
}

bool mira_deid_zip_add_file(mira_deid_zip *z, const char *path, uint64_t *bytes,
                            mira_error **err)
{
    mira_error *e = NULL;
    mira_file *f = mira_file_read(path, NULL, &e);
    uint8_t *data = NULL;
    size_t len = 0;
    bool ok = f && mira_deid_file(f, NULL, z->deid, NULL, &e) &&
              mira_file_write_memory(f, NULL, &data, &len, &e);
    if (!ok) {
        mira_error_set(err, e ? (mira_error_code)mira_error_get_code(e) : MIRA_ERR_NOMEM,
                       "Not exported", "%s: %s", path, e ? mira_error_get_message(e) : "failed");
        mira_error_free(e);
        mira_file_free(f);
        return false;
    }
    const mira_dataset *ds = mira_file_dataset(f);
    char v[4][80], c[4][80], name[400];
    static const mira_tag tags[4] = {0x00100020u, 0x0020000Du, 0x0020000Eu, 0x00080018u};
    for (int i = 0; i < 4; i++) {
        text_of(ds, tags[i], v[i], sizeof v[i]);
        component(v[i], c[i], sizeof c[i]);
    }
    snprintf(name, sizeof name, "%s/%s/%s/%s.dcm", c[0], c[1], c[2], c[3]);
    mira_file_free(f);
    struct archive_entry *entry = archive_entry_new();
    ok = entry != NULL;
    if (ok) {
        archive_entry_set_pathname(entry, name);
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_perm(entry, 0644);
        archive_entry_set_size(entry, (la_int64_t)len);
        archive_entry_set_mtime(entry, time(NULL), 0);
        ok = archive_write_header(z->zip, entry) == ARCHIVE_OK &&
             archive_write_data(z->zip, data, len) == (la_ssize_t)len;
        if (!ok)
            mira_error_set(err, MIRA_ERR_IO, "Not exported", "%s: %s", name,
                           archive_error_string(z->zip));
        archive_entry_free(entry);
    } else {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "exporting %s", path);
    }
    mira_free(data);
    if (ok && bytes)
        *bytes = len;
    return ok;
}

bool mira_deid_zip_finish(mira_deid_zip *z, mira_error **err)
{
    z->closed = true;
    if (archive_write_close(z->zip) != ARCHIVE_OK) {
        mira_error_set(err, MIRA_ERR_IO, "ZIP not finished", "closing the ZIP: %s",
                       archive_error_string(z->zip));
        return false;
    }
    return true;
}

static bool discard(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return true;
}

void mira_deid_zip_free(mira_deid_zip *z)
{
    if (!z)
        return;
    if (z->zip) {
        z->write = discard; /* freeing closes an unfinished ZIP: its end goes nowhere */
        archive_write_free(z->zip);
    }
    mira_free(z);
}
