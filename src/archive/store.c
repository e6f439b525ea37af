/* Storing instances: the header parsed once, the blob written durably, rows committed in groups. */
#include "archive/archive_int.h"
#include "core/fileio.h"

#include "mira/pixel.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The path of one instance (mira_archive_store_*), on the caller's thread:
 *   1. parse the data set (up to the pixel data) and take the indexed attributes;
 *   2. write the bytes to tmp/<process>/<blob name> (O_DIRECT where it can), fdatasync, fsync
 *      of the tmp folder (the new name is durable);
 *   3. queue the record and wait;
 *   4. once its rows are committed, rename the blob into blobs/ (making its folders if they
 *      are new) and return.
 * The committer thread takes everything queued (up to BATCH records): one write transaction
 * with a savepoint per record (a bad record fails alone), COMMIT, and the waiting callers are
 * told. The committer is the one serial part of a store, so everything that can wait in
 * parallel (syncing the tmp folder, the rename and its folders) is done by the storing threads,
 * before they queue or after they are told. Many callers storing at once (an import's workers,
 * several associations) share one commit: the cost of durability is paid per batch, not per
 * file. A killed process leaves nothing acknowledged behind either way: a committed row whose
 * blob is still in tmp is moved into place by the next open (archive.c).
 *
 * Rows are created by the first instance of a patient, study or series; later instances fill
 * in attributes that are still empty, never overwrite them. An instance whose series or study
 * exists already joins it where it is, whatever patient it names (it fills in that patient's
 * attributes only if it names the same Patient ID and issuer).
 */

#define BATCH 256

struct mira__pending {
    mira__pending *next;
    /* input */
    char blob[MIRA__BLOB_NAME_MAX];
    char *tmp_path;
    char checksum[17];
    uint64_t size;
    mira_duplicate_policy policy; /* the archive's, or an overwrite for modifications */
    char *values[128];            /* by key index (mira__keys), owned; NULL when absent */
    char *extra[128];             /* per key: the _ci or _n companion, owned */
    /* sequence items: rows of item values, by mira__item_keys index */
    size_t nitems[4];
    char **items[4];
    /* the instance's WADO-RS metadata (mira_instance_metadata_make), or NULL if it could not
     * be made: it is then made from the file when asked for */
    char *metadata;
    /* output */
    mira_store_result res;
    mira_error *err;
    bool ok, done;
    bool place; /* committed as new or replaced: the storing thread renames the blob */
    /* while place and not yet renamed: in a->placing; superseded: a later commit replaced
     * this blob, so it is unlinked from tmp instead of renamed (both under a->place_lock) */
    mira__pending *place_next;
    bool superseded;
};

/* ------------------------------------------------------------------ SQL built from the keys */

typedef struct level_sql {
    char insert[4096];
    char fill[8192];
    size_t ninsert; /* parameters of insert */
} level_sql;

static level_sql sqls[4];
static char seq_insert[4][1024];
static char overwrite_sql[8192];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static bool stored_key(const mira__key *k)
{
    return k->column && k->kind != MIRA__KEY_COUNT && k->kind != MIRA__KEY_LIST &&
           k->kind != MIRA__KEY_SEQ;
}

static const char *companion(const mira__key *k)
{
    return k->kind == MIRA__KEY_PN ? "_ci" : k->kind == MIRA__KEY_TIME ? "_n" : NULL;
}

static void append(char *dst, size_t cap, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, fmt, a, b ? b : "");
}

static void build_sql(void)
{
    static const char *const parent[4] = {NULL, "patient_pk", "study_pk", "series_pk"};
    for (int l = 0; l < 4; l++) {
        level_sql *s = &sqls[l];
        const char *table = mira__level_table((mira_level)l);
        char cols[3072] = "", marks[1024] = "";
        size_t n = 0;
        s->fill[0] = 0;
        snprintf(s->fill, sizeof s->fill, "UPDATE %s SET ", table);
        for (size_t i = 0; i < mira__key_count; i++) {
            const mira__key *k = &mira__keys[i];
            if ((int)k->level != l || !stored_key(k))
                continue;
            for (int c = 0; c < 2; c++) {
                const char *suffix = c ? companion(k) : "";
                if (!suffix)
                    continue;
                append(cols, sizeof cols, "%s%s, ", k->column, suffix);
                append(marks, sizeof marks, "?, ", "", NULL);
                size_t fl = strlen(s->fill);
                snprintf(s->fill + fl, sizeof s->fill - fl, "%s%s = COALESCE(%s%s, ?), ", k->column,
                         suffix, k->column, suffix);
                n++;
            }
        }
        if (l == MIRA_LEVEL_INSTANCE) {
            snprintf(s->insert, sizeof s->insert,
                     "INSERT INTO instances (%sseries_pk, blob, size_bytes, checksum, received_at)"
                     " VALUES (%s?, ?, ?, ?, ?) RETURNING pk",
                     cols, marks);
        } else if (l == MIRA_LEVEL_PATIENT) {
            /* patient_id and issuer are NOT NULL: '' stands for absent */
            snprintf(s->insert, sizeof s->insert,
                     "INSERT INTO patients (%screated_at, updated_at) VALUES (%s?, ?) RETURNING pk",
                     cols, marks);
        } else {
            snprintf(
                s->insert, sizeof s->insert,
                "INSERT INTO %s (%s%s, created_at, updated_at) VALUES (%s?, ?, ?) RETURNING pk",
                table, cols, parent[l], marks);
        }
        size_t fl = strlen(s->fill);
        snprintf(s->fill + fl, sizeof s->fill - fl, "updated_at = ? WHERE pk = ?");
        s->ninsert = n;
    }
    /* an overwrite sets the instance's attributes (fill would keep the old ones) */
    snprintf(overwrite_sql, sizeof overwrite_sql, "UPDATE instances SET ");
    for (size_t i = 0; i < mira__key_count; i++) {
        const mira__key *k = &mira__keys[i];
        if (k->level != MIRA_LEVEL_INSTANCE || !stored_key(k))
            continue;
        append(overwrite_sql, sizeof overwrite_sql, "%s = ?, ", k->column, NULL);
        if (companion(k))
            append(overwrite_sql, sizeof overwrite_sql, "%s%s = ?, ", k->column, companion(k));
    }
    append(overwrite_sql, sizeof overwrite_sql, "%s",
           "blob = ?, size_bytes = ?, checksum = ?, received_at = ? WHERE sop_uid = ?", NULL);
    for (size_t t = 0; t < mira__seq_table_count; t++) {
        char cols[512] = "", marks[256] = "";
        for (size_t i = 0; i < mira__item_key_count; i++) {
            if (mira__item_keys[i].seq != mira__seq_tables[t].seq)
                continue;
            append(cols, sizeof cols, ", %s", mira__item_keys[i].column, NULL);
            append(marks, sizeof marks, ", ?", "", NULL);
        }
        snprintf(seq_insert[t], sizeof seq_insert[t],
                 "INSERT INTO %s (owner_pk, item%s) VALUES (?, ?%s)", mira__seq_tables[t].table,
                 cols, marks);
    }
}

/* ------------------------------------------------------------------ taking the attributes */

static void pending_free(mira__pending *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < 128; i++) {
        mira_free(p->values[i]);
        mira_free(p->extra[i]);
    }
    for (size_t t = 0; t < 4; t++) {
        for (size_t i = 0; i < p->nitems[t] * mira__item_key_count; i++)
            mira_free(p->items[t][i]);
        mira_free(p->items[t]);
    }
    mira_free(p->tmp_path);
    mira_free(p->metadata);
    mira_error_free(p->err);
    mira_free(p);
}

/* The value of an element as index text (owned; NULL if absent or empty). */
static char *value_text(const mira_element *e, mira__key_kind kind, mira_vr vr)
{
    if (!e || mira_element_length(e) == 0)
        return NULL;
    if (!mira_vr_is_string(mira_element_vr(e))) {
        int64_t v;
        if (!mira_element_get_int(e, 0, &v, NULL))
            return NULL;
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        return mira_strdup(buf);
    }
    char *s = mira_element_get_text(e, NULL);
    if (!s)
        return NULL;
    /* leading spaces are not significant either (trailing ones are gone already) */
    char *p = s;
    while (*p == ' ')
        p++;
    if (p != s)
        memmove(s, p, strlen(p) + 1);
    if (!*s) {
        mira_free(s);
        return NULL;
    }
    if (kind == MIRA__KEY_DATE) {
        char d[9];
        if (mira__date_normalise(s, d))
            memcpy(s, d, 9);
    }
    (void)vr;
    return s;
}

static bool take_values(mira__pending *p, const mira_dataset *ds, mira_error **err)
{
    for (size_t i = 0; i < mira__key_count && i < 128; i++) {
        const mira__key *k = &mira__keys[i];
        if (!stored_key(k))
            continue;
        char *v = value_text(mira_dataset_get(ds, k->tag), k->kind, k->vr);
        p->values[i] = v;
        if (v && k->kind == MIRA__KEY_PN) {
            p->extra[i] = mira__fold_case(v);
        } else if (v && k->kind == MIRA__KEY_TIME) {
            char n[14];
            if (mira__time_normalise(v, '0', n))
                p->extra[i] = mira_strdup(n);
        } else if (v && k->kind == MIRA__KEY_INT) {
            char *end;
            long long x = strtoll(v, &end, 10);
            while (*end == ' ')
                end++;
            if (*end) { /* not an integer: not indexed */
                mira_free(p->values[i]);
                p->values[i] = NULL;
            } else {
                char buf[32];
                snprintf(buf, sizeof buf, "%lld", x);
                mira_free(p->values[i]);
                p->values[i] = mira_strdup(buf);
            }
        }
    }
    for (size_t t = 0; t < mira__seq_table_count; t++) {
        mira_element *seq = mira_dataset_get(ds, mira__seq_tables[t].seq);
        size_t n = seq ? mira_element_item_count(seq) : 0;
        if (n > 64)
            n = 64;
        if (!n)
            continue;
        p->items[t] = mira_calloc(n * mira__item_key_count, sizeof(char *));
        if (!p->items[t]) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "sequence items");
            return false;
        }
        p->nitems[t] = n;
        for (size_t it = 0; it < n; it++) {
            const mira_dataset *item = mira_element_item(seq, it);
            for (size_t j = 0; j < mira__item_key_count; j++) {
                const mira__item_key *ik = &mira__item_keys[j];
                if (ik->seq != mira__seq_tables[t].seq)
                    continue;
                p->items[t][it * mira__item_key_count + j] =
                    value_text(mira_dataset_get(item, ik->tag), ik->kind, ik->vr);
            }
        }
    }
    return true;
}

static const char *value_of(const mira__pending *p, mira_tag tag)
{
    for (size_t i = 0; i < mira__key_count; i++)
        if (mira__keys[i].tag == tag)
            return p->values[i];
    return NULL;
}

static void set_value(mira__pending *p, mira_tag tag, const char *v)
{
    for (size_t i = 0; i < mira__key_count; i++) {
        if (mira__keys[i].tag == tag) {
            mira_free(p->values[i]);
            p->values[i] = v ? mira_strdup(v) : NULL;
        }
    }
}

static bool valid_uid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return false;
    return true;
}

static void copy_uid(char dst[65], const char *s)
{
    snprintf(dst, 65, "%s", s ? s : "");
}

/* ------------------------------------------------------------------ writing the tmp file */

/*
 * The blob goes to the device with O_DIRECT where the file system allows it: no copy into the
 * page cache, which is the largest CPU cost of a store on a busy ingest (the copy into fresh
 * cache pages, then their writeback), and a freshly stored blob is seldom read at once, so
 * the cache is left to what is read. Data at an aligned address (mira_archive_store_file
 * reads into such a buffer) is written in place; other data through an aligned bounce
 * buffer. The last partial block, and everything on a file system without O_DIRECT (tmpfs,
 * some FUSE) or a device that wants another alignment, is written through the page cache.
 * fdatasync follows either way: O_DIRECT neither flushes the device's cache nor makes the
 * file's block allocation and size durable.
 */
#define DIRECT_ALIGN 4096
#define BOUNCE_SIZE (256 * 1024)

static uint8_t *align_up(uint8_t *p)
{
    return p + ((DIRECT_ALIGN - (uintptr_t)p % DIRECT_ALIGN) % DIRECT_ALIGN);
}

/* The whole blob: the aligned bulk with O_DIRECT if fd was opened with it, the rest buffered. */
static bool write_blob(int fd, bool direct, const uint8_t *data, size_t len)
{
    size_t bulk = len - len % DIRECT_ALIGN, done = 0;
    if (direct) {
        uint8_t *raw = NULL, *bounce = NULL;
        bool in_place = (uintptr_t)data % DIRECT_ALIGN == 0;
        if (!in_place) {
            raw = mira_malloc(BOUNCE_SIZE + DIRECT_ALIGN);
            bounce = raw ? align_up(raw) : NULL;
        }
        while (done < bulk && (in_place || bounce)) {
            size_t chunk = bulk - done;
            const uint8_t *src = data + done;
            if (!in_place) {
                chunk = chunk < BOUNCE_SIZE ? chunk : BOUNCE_SIZE;
                memcpy(bounce, src, chunk);
                src = bounce;
            }
            ssize_t w = write(fd, src, chunk);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno == EINVAL)
                break; /* an alignment this device refuses: the rest buffered */
            if (w <= 0) {
                int saved = w == 0 ? EIO : errno;
                mira_free(raw);
                errno = saved;
                return false;
            }
            done += (size_t)w;
            if (done % DIRECT_ALIGN)
                break; /* a short write left an unaligned offset */
        }
        mira_free(raw);
        if (done < len) {
            int flags = fcntl(fd, F_GETFL);
            if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_DIRECT) != 0)
                return false;
        }
    }
    return mira__write_all(fd, data + done, len - done);
}

/* p->tmp_path: tmp/<process>/<blob name>. */
static bool tmp_name(mira_archive *a, mira__pending *p, mira_error **err)
{
    size_t n = strlen(a->tmp) + MIRA__BLOB_NAME_MAX + 2;
    p->tmp_path = mira_malloc(n);
    if (!p->tmp_path) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "storing");
        return false;
    }
    snprintf(p->tmp_path, n, "%s/%s", a->tmp, p->blob);
    return true;
}

/* The tmp folder synced: the names in it are durable. */
static bool sync_tmp_dir(mira_archive *a)
{
    int dfd = open(a->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = dfd >= 0 && fsync(dfd) == 0;
    int saved = errno;
    if (dfd >= 0)
        close(dfd);
    errno = saved;
    return ok;
}

static bool write_tmp(mira_archive *a, mira__pending *p, const void *data, size_t len,
                      mira_error **err)
{
    if (!tmp_name(a, p, err))
        return false;
    /* opened with O_DIRECT at once when there is an aligned bulk (one fcntl fewer per blob);
     * a file system without it (tmpfs...) refuses the open, and the file is made without */
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    bool direct = len >= DIRECT_ALIGN;
    int fd = direct ? open(p->tmp_path, flags | O_DIRECT, 0644) : -1;
    if (fd < 0) {
        direct = false;
        fd = open(p->tmp_path, flags, 0644);
    }
    if (fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot store", "%s: %s", p->tmp_path, strerror(errno));
        return false;
    }
    bool ok = write_blob(fd, direct, data, len) && fdatasync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    /* the new name is durable before any row names it: the folder is synced here, on the
     * storing thread, in parallel with the other stores, rather than once per batch by the
     * committer, whose every wait holds up the whole batch (it was a third of its time) */
    if (ok) {
        ok = sync_tmp_dir(a);
        saved = errno;
    }
    if (!ok) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot store", "%s: %s", p->tmp_path,
                       strerror(saved ? saved : errno));
        unlink(p->tmp_path);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ blobs written as received */

/*
 * A C-STORE data set is written to the tmp folder while it arrives (mira__blob_writer_feed
 * with everything received so far), so that once the last fragment is in only its tail is
 * left to write before fdatasync: the device writes while the network delivers. The file is
 * tmp/<process>/rx-N.part, a name the recovery of a dead process's tmp folder removes (no
 * row names it); it takes its blob name (never replacing a file of that name) only once it is
 * complete and synced, then the folder is synced, as write_tmp does.
 */
#define FEED_STEP (128 * 1024)

struct mira__blob_writer {
    int fd;
    bool direct;
    int error; /* errno of the first failure: the blob is written again by store */
    size_t done; /* bytes written, a multiple of DIRECT_ALIGN */
    char path[];
};

static atomic_uint_fast64_t writer_seq;

mira__blob_writer *mira__blob_writer_new(mira_archive *a)
{
    size_t n = strlen(a->tmp) + 40;
    mira__blob_writer *w = mira_calloc(1, sizeof *w + n);
    if (!w)
        return NULL;
    snprintf(w->path, n, "%s/rx-%llu.part", a->tmp,
             (unsigned long long)atomic_fetch_add(&writer_seq, 1));
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    w->direct = true;
    w->fd = open(w->path, flags | O_DIRECT, 0644);
    if (w->fd < 0) {
        w->direct = false;
        w->fd = open(w->path, flags, 0644);
    }
    if (w->fd < 0) {
        mira_free(w);
        return NULL;
    }
    return w;
}

void mira__blob_writer_feed(mira__blob_writer *w, const uint8_t *data, size_t len)
{
    if (!w || w->error || (uintptr_t)data % DIRECT_ALIGN)
        return;
    size_t upto = len - len % DIRECT_ALIGN;
    if (upto < w->done + FEED_STEP)
        return;
    if (!write_blob(w->fd, w->direct, data + w->done, upto - w->done))
        w->error = errno ? errno : EIO;
    else
        w->done = upto;
}

void mira__blob_writer_free(mira__blob_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->path);
    }
    mira_free(w);
}

/* The rest of the blob into w's file, synced, named p->blob in tmp, the folder synced. */
static bool finish_written(mira_archive *a, mira__pending *p, mira__blob_writer *w,
                           const uint8_t *data, size_t len, mira_error **err)
{
    if (!tmp_name(a, p, err))
        return false;
    bool ok = write_blob(w->fd, w->direct, data + w->done, len - w->done) && fdatasync(w->fd) == 0;
    int saved = errno;
    ok = close(w->fd) == 0 && ok;
    w->fd = -1;
    bool named = false;
    if (ok) {
        /* never over another store's tmp file of the same instance (write_tmp's O_EXCL) */
        named = renameat2(AT_FDCWD, w->path, AT_FDCWD, p->tmp_path, RENAME_NOREPLACE) == 0;
        if (!named && (errno == EINVAL || errno == ENOSYS))
            named = link(w->path, p->tmp_path) == 0;
        saved = errno;
        ok = named;
    }
    unlink(w->path); /* a no-op once renamed */
    if (ok) {
        ok = sync_tmp_dir(a);
        saved = errno;
    }
    if (!ok) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot store", "%s: %s", p->tmp_path,
                       strerror(saved ? saved : EIO));
        if (named)
            unlink(p->tmp_path);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ the committer */

static bool bind_level(mira__pending *p, mira_level level, mira__dbval *params, size_t *n)
{
    for (size_t i = 0; i < mira__key_count; i++) {
        const mira__key *k = &mira__keys[i];
        if (k->level != level || !stored_key(k))
            continue;
        const char *v = p->values[i];
        if (k->tag == 0x00100020 || k->tag == 0x00100021)
            params[(*n)++] = mira__db_text(v ? v : ""); /* NOT NULL columns */
        else if (k->kind == MIRA__KEY_INT && v)
            params[(*n)++] = mira__db_int(strtoll(v, NULL, 10));
        else
            params[(*n)++] = mira__db_opt(v);
        if (companion(k))
            params[(*n)++] = mira__db_opt(p->extra[i]);
    }
    return true;
}

typedef struct row3 {
    bool found;
    int64_t a, b;
    char *s1, *s2;
} row3;

static bool take_row(void *ctx, const mira__dbval *cols, size_t n)
{
    row3 *r = ctx;
    r->found = true;
    if (n > 0)
        r->a = cols[0].type == MIRA__DB_INT ? cols[0].i : 0;
    if (n > 1)
        r->b = cols[1].type == MIRA__DB_INT ? cols[1].i : 0;
    if (n > 2 && cols[2].type == MIRA__DB_TEXT)
        r->s1 = mira_strdup(cols[2].s);
    if (n > 3 && cols[3].type == MIRA__DB_TEXT)
        r->s2 = mira_strdup(cols[3].s);
    return false;
}

static void row_clear(row3 *r)
{
    mira_free(r->s1);
    mira_free(r->s2);
    memset(r, 0, sizeof *r);
}

/* The values of a level's multi-valued keys, one row each in multi_values: all of them for a
 * new (or replaced) row; for an existing one only keys it had no value for yet (the way fill
 * treats the columns). */
static bool sync_multi(mira__db *db, mira__pending *p, mira_level level, int64_t pk, bool fresh,
                       mira_error **err)
{
    for (size_t i = 0; i < mira__key_count; i++) {
        const mira__key *k = &mira__keys[i];
        if (k->level != level || !k->multi || !stored_key(k) || !p->values[i])
            continue;
        mira__dbval own[3] = {mira__db_int(level), mira__db_int(pk), mira__db_int(k->tag)};
        if (!fresh) {
            int64_t have = 0;
            if (!mira__db_query_int(db,
                                    "SELECT count(*) FROM multi_values WHERE owner_level = ?"
                                    " AND owner_pk = ? AND tag = ?",
                                    own, 3, &have, NULL, err))
                return false;
            if (have)
                continue;
        }
        char *all = mira_strdup(p->values[i]);
        if (!all) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "multi-valued attribute");
            return false;
        }
        bool ok = true;
        for (char *v = all, *next; ok && v; v = next) {
            char *bs = strchr(v, '\\');
            next = bs ? bs + 1 : NULL;
            if (bs)
                *bs = 0;
            while (*v == ' ')
                v++;
            size_t l = strlen(v);
            while (l && v[l - 1] == ' ')
                v[--l] = 0;
            if (!*v)
                continue;
            char *ci = k->kind == MIRA__KEY_PN ? mira__fold_case(v) : NULL;
            mira__dbval row[5] = {own[0], own[1], own[2], mira__db_text(v), mira__db_text(ci)};
            ok = db->ops->query(
                db,
                "INSERT INTO multi_values (owner_level, owner_pk, tag, value, value_ci)"
                " VALUES (?, ?, ?, ?, ?)",
                row, 5, NULL, NULL, NULL, err);
            mira_free(ci);
        }
        mira_free(all);
        if (!ok)
            return false;
    }
    return true;
}

static bool refresh_instance_multi(mira__db *db, mira__pending *p, const char *sop,
                                   mira_error **err)
{
    int64_t pk = 0;
    mira__dbval q = mira__db_text(sop);
    if (!mira__db_query_int(db, "SELECT pk FROM instances WHERE sop_uid = ?", &q, 1, &pk, NULL,
                            err))
        return false;
    mira__dbval own[2] = {mira__db_int(MIRA_LEVEL_INSTANCE), mira__db_int(pk)};
    return db->ops->query(db, "DELETE FROM multi_values WHERE owner_level = ? AND owner_pk = ?",
                          own, 2, NULL, NULL, NULL, err) &&
           sync_multi(db, p, MIRA_LEVEL_INSTANCE, pk, true, err);
}

/* Insert a level's row, or fill in the empty attributes of the existing one. */
static bool upsert(mira__db *db, mira__pending *p, mira_level level, int64_t parent,
                   const char *now, int64_t *pk, mira_error **err)
{
    mira__dbval params[160];
    size_t n = 0;
    bind_level(p, level, params, &n);
    if (level != MIRA_LEVEL_PATIENT)
        params[n++] = mira__db_int(parent);
    params[n++] = mira__db_text(now);
    params[n++] = mira__db_text(now);
    row3 r = {0};
    bool ok = mira__db_query(db, sqls[level].insert, params, n, take_row, &r, err);
    *pk = r.a;
    row_clear(&r);
    return ok && sync_multi(db, p, level, *pk, true, err);
}

static bool fill(mira__db *db, mira__pending *p, mira_level level, int64_t pk, const char *now,
                 mira_error **err)
{
    mira__dbval params[160];
    size_t n = 0;
    bind_level(p, level, params, &n);
    params[n++] = mira__db_text(now);
    params[n++] = mira__db_int(pk);
    return db->ops->query(db, sqls[level].fill, params, n, NULL, NULL, NULL, err) &&
           sync_multi(db, p, level, pk, false, err);
}

/* Add v to a '\'-separated sorted list (owned result), or NULL if it is there already. */
static char *list_add(const char *list, const char *v)
{
    if (!v || !*v)
        return NULL;
    size_t vl = strlen(v);
    const char *p = list ? list : "";
    const char *insert_at = NULL;
    while (*p) {
        const char *e = strchr(p, '\\');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        int c = strncmp(p, v, l < vl ? l : vl);
        if (c == 0 && l == vl)
            return NULL;
        if (!insert_at && (c > 0 || (c == 0 && l > vl)))
            insert_at = p;
        if (!e)
            break;
        p = e + 1;
    }
    size_t ll = list ? strlen(list) : 0;
    char *out = mira_malloc(ll + vl + 2);
    if (!out)
        return NULL;
    if (!ll) {
        memcpy(out, v, vl + 1);
    } else if (!insert_at) {
        snprintf(out, ll + vl + 2, "%s\\%s", list, v);
    } else {
        size_t pre = (size_t)(insert_at - list);
        memcpy(out, list, pre);
        memcpy(out + pre, v, vl);
        out[pre + vl] = '\\';
        memcpy(out + pre + vl + 1, insert_at, ll - pre + 1);
    }
    return out;
}

/* The items of sequence table t of a row (a study or series) from the instance. */
static bool insert_table_items(mira__db *db, mira__pending *p, size_t t, int64_t owner,
                               mira_error **err)
{
    for (size_t it = 0; it < p->nitems[t]; it++) {
        mira__dbval params[32];
        size_t n = 0;
        params[n++] = mira__db_int(owner);
        params[n++] = mira__db_int((int64_t)it);
        for (size_t j = 0; j < mira__item_key_count; j++)
            if (mira__item_keys[j].seq == mira__seq_tables[t].seq)
                params[n++] = mira__db_opt(p->items[t][it * mira__item_key_count + j]);
        if (!db->ops->query(db, seq_insert[t], params, n, NULL, NULL, NULL, err))
            return false;
    }
    return true;
}

static bool insert_items(mira__db *db, mira__pending *p, mira_level level, int64_t owner,
                         mira_error **err)
{
    for (size_t t = 0; t < mira__seq_table_count; t++)
        if (mira__seq_tables[t].level == level && !insert_table_items(db, p, t, owner, err))
            return false;
    return true;
}

/* An existing row with no items of a sequence yet takes the instance's (the way fill treats
 * the columns); one that has some keeps them. */
static bool fill_items(mira__db *db, mira__pending *p, mira_level level, int64_t owner,
                       mira_error **err)
{
    for (size_t t = 0; t < mira__seq_table_count; t++) {
        if (mira__seq_tables[t].level != level || !p->nitems[t])
            continue;
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE owner_pk = ?",
                 mira__seq_tables[t].table);
        mira__dbval own = mira__db_int(owner);
        int64_t have = 0;
        if (!mira__db_query_int(db, sql, &own, 1, &have, NULL, err))
            return false;
        if (!have && !insert_table_items(db, p, t, owner, err))
            return false;
    }
    return true;
}

typedef enum outcome { OUT_NEW, OUT_DUPLICATE, OUT_REPLACED, OUT_REFUSED } outcome;

/* The instance's metadata row, new or replacing the one of the blob it replaces (none when it
 * could not be made: the old one goes all the same, it describes another blob). */
static bool put_metadata(mira__db *db, mira__pending *p, const char *sop, mira_error **err)
{
    mira__dbval q[2] = {mira__db_text(p->metadata), mira__db_text(sop)};
    if (!p->metadata)
        return db->ops->query(db,
                              "DELETE FROM instance_metadata WHERE instance_pk ="
                              " (SELECT pk FROM instances WHERE sop_uid = ?)",
                              &q[1], 1, NULL, NULL, NULL, err);
    return db->ops->query(db,
                          "INSERT INTO instance_metadata (instance_pk, json)"
                          " SELECT pk, ? FROM instances WHERE sop_uid = ?"
                          " ON CONFLICT (instance_pk) DO UPDATE SET json = excluded.json",
                          q, 2, NULL, NULL, NULL, err);
}

/* One record's rows, inside the batch transaction (and its own savepoint). */
static bool commit_one(mira_archive *a, mira__db *db, mira__pending *p, const char *now,
                       outcome *out, char **old_blob, mira_error **err)
{
    const char *sop = p->res.sop_instance_uid;
    mira__dbval q = mira__db_text(sop);
    row3 inst = {0};
    if (!mira__db_query(
            db, "SELECT size_bytes, series_pk, checksum, blob FROM instances WHERE sop_uid = ?", &q,
            1, take_row, &inst, err))
        return false;
    bool ok = true;
    if (inst.found) {
        bool identical =
            (uint64_t)inst.a == p->size && inst.s1 && strcmp(inst.s1, p->checksum) == 0;
        if (identical || p->policy == MIRA_DUPLICATE_KEEP) {
            *out = OUT_DUPLICATE;
        } else if (p->policy == MIRA_DUPLICATE_REJECT) {
            *out = OUT_REFUSED;
            mira_error_set(err, MIRA_ERR_CONFLICT, "Duplicate instance",
                           "instance %s is in the archive already with other content "
                           "(duplicate policy: reject)",
                           sop);
            ok = false;
        } else {
            /* overwrite: the row takes the new attributes and blob, the old blob goes */
            *out = OUT_REPLACED;
            mira__dbval params[160];
            size_t n = 0;
            bind_level(p, MIRA_LEVEL_INSTANCE, params, &n);
            params[n++] = mira__db_text(p->blob);
            params[n++] = mira__db_int((int64_t)p->size);
            params[n++] = mira__db_text(p->checksum);
            params[n++] = mira__db_text(now);
            params[n++] = mira__db_text(sop);
            int64_t delta = (int64_t)p->size - inst.a;
            mira__dbval del[2] = {mira__db_text(inst.s2), mira__db_text(inst.s1 ? inst.s1 : "")};
            mira__dbval cnt[3] = {mira__db_int(delta), mira__db_text(now), mira__db_int(inst.b)};
            ok = db->ops->query(db, overwrite_sql, params, n, NULL, NULL, NULL, err) &&
                 db->ops->query(db,
                                "INSERT INTO blob_deletions (blob, checksum) VALUES (?, ?) "
                                "ON CONFLICT (blob) DO NOTHING",
                                del, 2, NULL, NULL, NULL, err) &&
                 db->ops->query(db,
                                "UPDATE series SET size_bytes = size_bytes + ?, updated_at = ? "
                                "WHERE pk = ?",
                                cnt, 3, NULL, NULL, NULL, err) &&
                 refresh_instance_multi(db, p, sop, err) && put_metadata(db, p, sop, err) &&
                 db->ops->query(db,
                                "UPDATE studies SET size_bytes = size_bytes + ?, updated_at = ? "
                                "WHERE pk = (SELECT study_pk FROM series WHERE pk = ?)",
                                cnt, 3, NULL, NULL, NULL, err) &&
                 db->ops->query(db,
                                "UPDATE patients SET size_bytes = size_bytes + ?, updated_at = ? "
                                "WHERE pk = (SELECT patient_pk FROM studies WHERE pk = "
                                "(SELECT study_pk FROM series WHERE pk = ?))",
                                cnt, 3, NULL, NULL, NULL, err);
            if (ok && inst.s2)
                *old_blob = mira_strdup(inst.s2);
        }
        row_clear(&inst);
        return ok;
    }
    row_clear(&inst);

    /* a new instance: find or make its series, study and patient */
    int64_t series_pk = 0, study_pk = 0, patient_pk = 0;
    bool new_series = false, new_study = false, new_patient = false;
    char *modalities = NULL, *sop_classes = NULL;
    row3 r = {0};
    q = mira__db_text(p->res.series_instance_uid);
    ok = mira__db_query(db, "SELECT pk, study_pk FROM series WHERE series_uid = ?", &q, 1, take_row,
                        &r, err);
    if (ok && r.found) {
        series_pk = r.a;
        study_pk = r.b;
    }
    row_clear(&r);
    if (ok && study_pk) {
        mira__dbval sp = mira__db_int(study_pk);
        ok = mira__db_query(
            db, "SELECT pk, patient_pk, modalities, sop_classes FROM studies WHERE pk = ?", &sp, 1,
            take_row, &r, err);
    } else if (ok) {
        q = mira__db_text(p->res.study_instance_uid);
        ok = mira__db_query(
            db, "SELECT pk, patient_pk, modalities, sop_classes FROM studies WHERE study_uid = ?",
            &q, 1, take_row, &r, err);
    }
    if (ok && r.found) {
        study_pk = r.a;
        patient_pk = r.b;
        modalities = r.s1;
        sop_classes = r.s2;
        r.s1 = r.s2 = NULL;
    }
    row_clear(&r);
    if (ok && !patient_pk) {
        const char *pid = value_of(p, 0x00100020), *iss = value_of(p, 0x00100021);
        const char *name = value_of(p, 0x00100010), *birth = value_of(p, 0x00100030),
                   *sex = value_of(p, 0x00100040);
        mira__dbval pq[5] = {mira__db_text(pid ? pid : ""), mira__db_text(iss ? iss : ""),
                             mira__db_text(name ? name : ""), mira__db_text(birth ? birth : ""),
                             mira__db_text(sex ? sex : "")};
        if (pid && *pid)
            ok = mira__db_query(db, "SELECT pk FROM patients WHERE patient_id = ? AND issuer = ?",
                                pq, 2, take_row, &r, err);
        else if (name && *name) /* no Patient ID: the patient of the same name, birth, sex */
            ok = mira__db_query(db,
                                "SELECT pk FROM patients WHERE patient_id = ? AND issuer = ? AND"
                                " patient_name = ? AND COALESCE(birth_date, '') = ? AND"
                                " COALESCE(sex, '') = ? ORDER BY pk LIMIT 1",
                                pq, 5, take_row, &r, err);
        /* (neither an ID nor a name: a patient of its own) */
        if (ok && r.found)
            patient_pk = r.a;
        row_clear(&r);
        if (ok && !patient_pk) {
            ok = upsert(db, p, MIRA_LEVEL_PATIENT, 0, now, &patient_pk, err);
            new_patient = true;
        } else if (ok) {
            ok = fill(db, p, MIRA_LEVEL_PATIENT, patient_pk, now, err);
        }
    } else if (ok) {
        /* the study's patient: the instances that name it fill it in too (one that names
         * another patient joins the study and leaves the patient alone) */
        const char *pid = value_of(p, 0x00100020), *iss = value_of(p, 0x00100021);
        mira__dbval pq[3] = {mira__db_int(patient_pk), mira__db_text(pid ? pid : ""),
                             mira__db_text(iss ? iss : "")};
        ok = mira__db_query(
            db, "SELECT pk FROM patients WHERE pk = ? AND patient_id = ? AND issuer = ?", pq, 3,
            take_row, &r, err);
        bool same = r.found;
        row_clear(&r);
        if (ok && same)
            ok = fill(db, p, MIRA_LEVEL_PATIENT, patient_pk, now, err);
    }
    if (ok && !study_pk) {
        ok = upsert(db, p, MIRA_LEVEL_STUDY, patient_pk, now, &study_pk, err) &&
             insert_items(db, p, MIRA_LEVEL_STUDY, study_pk, err);
        new_study = true;
    } else if (ok && !new_patient) {
        ok = fill(db, p, MIRA_LEVEL_STUDY, study_pk, now, err) &&
             fill_items(db, p, MIRA_LEVEL_STUDY, study_pk, err);
    }
    if (ok && !series_pk) {
        ok = upsert(db, p, MIRA_LEVEL_SERIES, study_pk, now, &series_pk, err) &&
             insert_items(db, p, MIRA_LEVEL_SERIES, series_pk, err);
        new_series = true;
    } else if (ok) {
        ok = fill(db, p, MIRA_LEVEL_SERIES, series_pk, now, err) &&
             fill_items(db, p, MIRA_LEVEL_SERIES, series_pk, err);
    }
    if (ok) {
        mira__dbval params[160];
        size_t n = 0;
        bind_level(p, MIRA_LEVEL_INSTANCE, params, &n);
        params[n++] = mira__db_int(series_pk);
        params[n++] = mira__db_text(p->blob);
        params[n++] = mira__db_int((int64_t)p->size);
        params[n++] = mira__db_text(p->checksum);
        params[n++] = mira__db_text(now);
        row3 ir = {0};
        ok = mira__db_query(db, sqls[MIRA_LEVEL_INSTANCE].insert, params, n, take_row, &ir, err) &&
             sync_multi(db, p, MIRA_LEVEL_INSTANCE, ir.a, true, err) &&
             put_metadata(db, p, p->res.sop_instance_uid, err);
        row_clear(&ir);
    }
    if (ok) {
        char *m = new_series ? list_add(modalities, value_of(p, 0x00080060)) : NULL;
        char *c = list_add(sop_classes, p->res.sop_class_uid);
        mira__dbval su[3] = {mira__db_int((int64_t)p->size), mira__db_text(now),
                             mira__db_int(series_pk)};
        mira__dbval st[7] = {mira__db_int((int64_t)p->size),
                             mira__db_int(new_series),
                             mira__db_text(m),
                             mira__db_text(c),
                             mira__db_text(now),
                             mira__db_int(study_pk)};
        mira__dbval pa[5] = {mira__db_int((int64_t)p->size), mira__db_int(new_series),
                             mira__db_int(new_study), mira__db_text(now), mira__db_int(patient_pk)};
        ok = db->ops->query(db,
                            "UPDATE series SET num_instances = num_instances + 1,"
                            " size_bytes = size_bytes + ?, updated_at = ? WHERE pk = ?",
                            su, 3, NULL, NULL, NULL, err) &&
             db->ops->query(db,
                            "UPDATE studies SET num_instances = num_instances + 1,"
                            " size_bytes = size_bytes + ?, num_series = num_series + ?,"
                            " modalities = COALESCE(?, modalities),"
                            " sop_classes = COALESCE(?, sop_classes), updated_at = ? WHERE pk = ?",
                            st, 6, NULL, NULL, NULL, err) &&
             db->ops->query(db,
                            "UPDATE patients SET num_instances = num_instances + 1,"
                            " size_bytes = size_bytes + ?, num_series = num_series + ?,"
                            " num_studies = num_studies + ?, updated_at = ? WHERE pk = ?",
                            pa, 5, NULL, NULL, NULL, err);
        mira_free(m);
        mira_free(c);
        *out = OUT_NEW;
    }
    mira_free(modalities);
    mira_free(sop_classes);
    return ok;
}

static void commit_batch(mira_archive *a, mira__pending **batch, size_t n)
{
    mira__db *db = a->writer;
    mira_error *err = NULL;
    outcome outs[BATCH];
    char *old_blobs[BATCH];
    memset(old_blobs, 0, sizeof old_blobs);
    char now[32];
    mira__now(now);
    /* the tmp files and their names are durable already (write_tmp) */
    bool ok = db->ops->begin_write(db, &err);
    for (size_t i = 0; ok && i < n; i++) {
        mira__pending *p = batch[i];
        if (!mira__db_exec(db, "SAVEPOINT item", &err)) {
            ok = false;
            break;
        }
        p->ok = commit_one(a, db, p, now, &outs[i], &old_blobs[i], &p->err);
        if (p->ok) {
            ok = mira__db_exec(db, "RELEASE SAVEPOINT item", &err);
        } else {
            outs[i] = OUT_REFUSED;
            ok = mira__db_exec(db, "ROLLBACK TO SAVEPOINT item", &err) &&
                 mira__db_exec(db, "RELEASE SAVEPOINT item", &err);
        }
    }
    bool committing = ok;
    ok = ok && mira__db_commit(db, &err);
    if (!ok) {
        mira__db_rollback(db);
        for (size_t i = 0; i < n; i++) {
            mira__pending *p = batch[i];
            if (p->ok || !p->err) {
                mira_error_free(p->err);
                p->err = NULL;
                mira_error_set(&p->err, err ? mira_error_get_code(err) : MIRA_ERR_IO,
                               "Cannot store", "%s",
                               err ? mira_error_get_message(err) : "the index commit failed");
            }
            p->ok = false;
            /* a COMMIT that failed may have committed all the same (the connection to a
             * PostgreSQL server lost while waiting for its answer): its blobs stay in tmp,
             * where the rows decide at close or at the next open */
            if (!committing)
                unlink(p->tmp_path);
            mira_free(old_blobs[i]);
        }
        mira_error_free(err);
        return;
    }
    /* committed: the storing threads move their blobs into place (store), in parallel;
     * copies not kept go away */
    bool deletions = false;
    for (size_t i = 0; i < n; i++) {
        mira__pending *p = batch[i];
        if (p->ok && (outs[i] == OUT_NEW || outs[i] == OUT_REPLACED)) {
            p->place = true;
            p->res.status = outs[i] == OUT_NEW ? MIRA_STORE_STORED : MIRA_STORE_REPLACED;
            pthread_mutex_lock(&a->place_lock);
            p->place_next = a->placing;
            a->placing = p;
            pthread_mutex_unlock(&a->place_lock);
        } else {
            unlink(p->tmp_path);
            if (p->ok)
                p->res.status = MIRA_STORE_DUPLICATE;
        }
        if (old_blobs[i]) {
            /* the blob replaced may be one an earlier batch committed whose storing thread has
             * not renamed it yet (two versions of an instance in one run): that thread then
             * drops it from tmp instead (a crash before leaves it in tmp without a row, which
             * recovery removes); unlinking it here, before it arrives, would leave it behind
             * in blobs/ with no row naming it */
            pthread_mutex_lock(&a->place_lock);
            for (mira__pending *q = a->placing; q; q = q->place_next)
                if (strcmp(q->blob, old_blobs[i]) == 0)
                    q->superseded = true;
            pthread_mutex_unlock(&a->place_lock);
            char *f = mira__blob_file(a, old_blobs[i]);
            if (f)
                unlink(f);
            mira_free(f);
            deletions = true;
        }
        mira_free(old_blobs[i]);
    }
    if (deletions) {
        (void)mira__archive_finish_deletions(a, db, NULL);
    }
}

static void *committer(void *arg)
{
    mira_archive *a = arg;
    mira__pending *batch[BATCH];
    pthread_mutex_lock(&a->q_lock);
    for (;;) {
        while (!a->q_head && !a->stopping)
            pthread_cond_wait(&a->q_cond, &a->q_lock);
        if (!a->q_head && a->stopping)
            break;
        size_t n = 0;
        while (a->q_head && n < BATCH) {
            batch[n++] = a->q_head;
            a->q_head = a->q_head->next;
            a->q_len--;
        }
        if (!a->q_head)
            a->q_tail = NULL;
        pthread_mutex_unlock(&a->q_lock);
        commit_batch(a, batch, n);
        pthread_mutex_lock(&a->q_lock);
        for (size_t i = 0; i < n; i++)
            batch[i]->done = true;
        pthread_cond_broadcast(&a->done_cond);
    }
    pthread_mutex_unlock(&a->q_lock);
    return NULL;
}

void mira__store_shutdown(mira_archive *a)
{
    pthread_mutex_lock(&a->q_lock);
    bool started = a->committer_started;
    a->stopping = true;
    pthread_cond_broadcast(&a->q_cond);
    pthread_mutex_unlock(&a->q_lock);
    if (started)
        pthread_join(a->committer, NULL);
    a->committer_started = false;
}

/* Queue a record and wait until the committer is done with it. */
static bool submit(mira_archive *a, mira__pending *p, mira_error **err)
{
    pthread_mutex_lock(&a->q_lock);
    if (a->stopping) {
        pthread_mutex_unlock(&a->q_lock);
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Archive closing", "the archive is being closed");
        return false;
    }
    if (!a->committer_started) {
        pthread_once(&sql_once, build_sql);
        if (pthread_create(&a->committer, NULL, committer, a) != 0) {
            pthread_mutex_unlock(&a->q_lock);
            mira_error_set(err, MIRA_ERR_IO, "Cannot store", "cannot start the committer thread");
            return false;
        }
        a->committer_started = true;
    }
    p->next = NULL;
    if (a->q_tail)
        a->q_tail->next = p;
    else
        a->q_head = p;
    a->q_tail = p;
    a->q_len++;
    pthread_cond_signal(&a->q_cond);
    while (!p->done)
        pthread_cond_wait(&a->done_cond, &a->q_lock);
    pthread_mutex_unlock(&a->q_lock);
    return true;
}

/* ------------------------------------------------------------------ the entry points */

static bool store(mira_archive *a, const uint8_t *data, size_t len, const char *what,
                  mira_duplicate_policy policy, mira__blob_writer *pre, mira_store_result *res,
                  mira_error **err)
{
    mira_read_options ro;
    mira_read_options_init(&ro);
    ro.stop_before_pixels = true;
    mira_error *rerr = NULL;
    mira_file *f = mira_file_read_memory(data, len, &ro, false, &rerr);
    if (!f) {
        /* without the Part 10 prefix the reader tried a bare data set: say what the file is */
        bool part10 = len >= 132 && memcmp(data + 128, "DICM", 4) == 0;
        const char *why = rerr ? mira_error_get_message(rerr) : "unreadable";
        if (part10)
            mira_error_set(err, mira_error_get_code(rerr), "Not readable", "%s: %s", what, why);
        else
            mira_error_set(err, MIRA_ERR_INVALID, "Not DICOM",
                           "%s: not a DICOM file (no DICM prefix, and not a bare data set: %s)",
                           what, why);
        mira_error_free(rerr);
        return false;
    }
    mira__pending *p = mira_calloc(1, sizeof *p);
    if (p)
        p->policy = policy;
    if (!p) {
        mira_file_free(f);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "storing %s", what);
        return false;
    }
    const mira_dataset *ds = mira_file_dataset(f);
    bool ok = take_values(p, ds, err);
    const char *sop = value_of(p, 0x00080018), *cls = value_of(p, 0x00080016);
    const char *study = value_of(p, 0x0020000D), *series = value_of(p, 0x0020000E);
    const char *missing = !sop      ? "SOP Instance UID (0008,0018)"
                          : !cls    ? "SOP Class UID (0008,0016)"
                          : !study  ? "Study Instance UID (0020,000D)"
                          : !series ? "Series Instance UID (0020,000E)"
                                    : NULL;
    if (ok && missing) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not storable", "%s: no %s", what, missing);
        ok = false;
    }
    if (ok && (!valid_uid(sop) || !valid_uid(study) || !valid_uid(series))) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not storable",
                       "%s: a UID is not valid (SOP Instance \"%s\", Study \"%s\", Series \"%s\")",
                       what, sop, study, series);
        ok = false;
    }
    /* bytes to store: the file as it came, or Part 10 around a raw data set */
    uint8_t *owned = NULL;
    const uint8_t *bytes = data;
    size_t nbytes = len;
    const char *ts = mira_file_transfer_syntax(f);
    if (ok && !mira_file_has_preamble(f) && !mira_dataset_get(mira_file_meta(f), 0x00020010)) {
        mira_file_free(f);
        ro.stop_before_pixels = false;
        f = mira_file_read_memory(data, len, &ro, false, err);
        ok = f && mira_file_write_memory(f, mira_file_transfer_syntax(f), &owned, &nbytes, err);
        bytes = owned;
        ts = f ? mira_file_transfer_syntax(f) : "";
    }
    if (ok && a->storage_ts && strcmp(a->storage_ts, ts) != 0) {
        /* storage compression: the pixel data re-encoded; what the syntax cannot hold (no
         * pixel data, 32-bit samples for JPEG-LS...) is kept as received, never refused */
        ro.stop_before_pixels = false;
        mira_file *g = mira_file_read_memory(bytes, nbytes, &ro, false, NULL);
        uint8_t *re = NULL;
        size_t rlen = 0;
        bool done = g && mira_dataset_get(mira_file_dataset(g), 0x7FE00010) &&
                    mira_file_transcode(g, a->storage_ts, 0, NULL) &&
                    mira_file_write_memory(g, a->storage_ts, &re, &rlen, NULL);
        mira_file_free(g);
        if (done) {
            mira_free(owned);
            owned = re;
            bytes = re;
            nbytes = rlen;
            ts = a->storage_ts;
        } else {
            mira_free(re);
        }
    }
    if (ok) {
        set_value(p, 0x00083002, ts);
        copy_uid(p->res.sop_instance_uid, sop);
        copy_uid(p->res.sop_class_uid, cls);
        copy_uid(p->res.study_instance_uid, study);
        copy_uid(p->res.series_instance_uid, series);
        copy_uid(p->res.transfer_syntax, ts);
        p->res.size = nbytes;
        p->size = nbytes;
        mira__checksum(bytes, nbytes, p->checksum);
        /* WADO-RS metadata, made here by the storing thread (not the committer): a file whose
         * full data set cannot be read (pixel data broken) is stored without it */
        p->metadata = mira_instance_metadata_make(bytes, nbytes, NULL, NULL);
        mira__blob_name(sop, mira__generation(a), p->blob);
        /* written while received, unless the bytes stored are others (Part 10 added,
         * storage compression) or writing them failed */
        ok = pre && bytes == data && !pre->error ? finish_written(a, p, pre, bytes, nbytes, err)
                                                : write_tmp(a, p, bytes, nbytes, err);
    }
    mira_free(owned);
    mira_file_free(f);
    if (ok)
        ok = submit(a, p, err);
    if (ok && p->place) {
        /* renamed under place_lock, so that a commit replacing this blob either finds it
         * still waiting (and marks it superseded) or finds it in place (and unlinks it) */
        pthread_mutex_lock(&a->place_lock);
        bool placed = true;
        if (p->superseded)
            unlink(p->tmp_path);
        else
            placed = mira__archive_place_blob(a, p->tmp_path, p->blob, &p->err);
        for (mira__pending **q = &a->placing; *q; q = &(*q)->place_next)
            if (*q == p) {
                *q = p->place_next;
                break;
            }
        pthread_mutex_unlock(&a->place_lock);
        /* the row is committed and the blob is safe in tmp: the next open of the archive
         * finishes the move; the caller hears of the failure */
        if (!placed)
            p->ok = false;
    }
    if (ok) {
        ok = p->ok;
        if (!ok && err && p->err) {
            *err = p->err;
            p->err = NULL;
            mira_error_prefix(err, "%s: ", what);
        }
        if (ok && res)
            *res = p->res;
    }
    pending_free(p);
    return ok;
}

bool mira_archive_store_memory(mira_archive *a, const void *data, size_t len,
                               mira_store_result *res, mira_error **err)
{
    return store(a, data, len, "data", a->duplicates, NULL, res, err);
}

bool mira_archive_store_file(mira_archive *a, const char *path, mira_store_result *res,
                             mira_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mira_error_set(err, errno == ENOENT ? MIRA_ERR_NOT_FOUND : MIRA_ERR_IO, "Cannot read",
                       "%s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot read", "%s: not a regular file", path);
        return false;
    }
    size_t len = (size_t)st.st_size;
    /* larger files are mapped, as mira_file_read does: no copy of the input, and the mapping
     * is page-aligned, so the blob is written from the page cache in place (write_blob) */
    if (len >= 64 * 1024) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            (void)madvise(m, len, MADV_SEQUENTIAL);
            bool ok = store(a, m, len, path, a->duplicates, NULL, res, err);
            munmap(m, len);
            return ok;
        }
    }
    /* aligned, so that the blob can be written from it in place (write_blob) */
    uint8_t *raw = mira_malloc(len + DIRECT_ALIGN);
    uint8_t *buf = raw ? align_up(raw) : NULL;
    if (!buf) {
        close(fd);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reading %s (%zu bytes)", path, len);
        return false;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != len) {
        mira_free(raw);
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: read %zu of %zu bytes", path, got,
                       len);
        return false;
    }
    bool ok = store(a, buf, len, path, a->duplicates, NULL, res, err);
    mira_free(raw);
    return ok;
}

bool mira__archive_store_replace(mira_archive *a, const void *data, size_t len, const char *what,
                                 mira_store_result *res, mira_error **err)
{
    return store(a, data, len, what, MIRA_DUPLICATE_OVERWRITE, NULL, res, err);
}

bool mira__archive_store_received(mira_archive *a, const void *data, size_t len,
                                  mira__blob_writer *w, const char *what, mira_store_result *res,
                                  mira_error **err)
{
    bool ok = store(a, data, len, what, a->duplicates, w, res, err);
    mira__blob_writer_free(w);
    return ok;
}
