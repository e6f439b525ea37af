/* The archive: its folder and config, index connections, blob names, recovery after a crash. */
#include "archive/archive_int.h"

#include "core/fileio.h"
#include "mira/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/*
 * Recovery. A store writes its blob under tmp/<process>/ (fsync'd), commits the index rows
 * naming the blob, then renames the blob into blobs/. A process killed between the commit
 * and the rename leaves a committed row whose blob is still in its tmp folder; one killed
 * before the commit leaves a blob no row names. Each process holds an flock on
 * tmp/<process>/lock while it runs, so the next archive open can tell a dead process's
 * folder from a live one's: for each file there, a row naming it means the rename is done
 * now, no row means the file goes. Deleted and replaced blobs are listed in blob_deletions in
 * the transaction that drops their rows and unlinked after it; the list is replayed too.
 */

void mira_archive_options_init(mira_archive_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->duplicates = -1;
}

const char *mira_archive_dir(const mira_archive *a)
{
    return a->dir;
}

const char *mira_archive_index_kind(const mira_archive *a)
{
    return a->postgres ? "postgresql" : "sqlite";
}

mira_duplicate_policy mira_archive_duplicates(const mira_archive *a)
{
    return a->duplicates;
}

/* ------------------------------------------------------------------ small helpers */

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = mira_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool make_dir(const char *path, mira_error **err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return true;
    mira_error_set(err, MIRA_ERR_IO, "Cannot create folder", "%s: %s", path, strerror(errno));
    return false;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = 0;
}

void mira__blob_name(const char *sop_uid, uint64_t generation, char name[MIRA__BLOB_NAME_MAX])
{
    char hex[65];
    sha256_hex(sop_uid, strlen(sop_uid), hex);
    snprintf(name, MIRA__BLOB_NAME_MAX, "%s-%016llx.dcm", hex, (unsigned long long)generation);
}

bool mira__blob_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n != 64 + 1 + 16 + 4 || name[64] != '-' || strcmp(name + n - 4, ".dcm") != 0)
        return false;
    for (size_t i = 0; i < 81; i++) {
        if (i == 64)
            continue;
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

char *mira__blob_file(const mira_archive *a, const char *name)
{
    if (!mira__blob_name_valid(name))
        return NULL;
    size_t n = strlen(a->blobs) + strlen(name) + 16;
    char *p = mira_malloc(n);
    if (p)
        snprintf(p, n, "%s/%.2s/%.2s/%s", a->blobs, name, name + 2, name);
    return p;
}

uint64_t mira__generation(mira_archive *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t c = __atomic_add_fetch(&a->tmp_counter, 1, __ATOMIC_RELAXED);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    /* the time in ns mixed with the process and a counter: unique across processes */
    return XXH3_64bits_withSeed(&c, sizeof c, t ^ ((uint64_t)getpid() << 32));
}

void mira__checksum(const void *data, size_t len, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)XXH3_64bits(data, len));
}

void mira__now(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%06uZ", date, (unsigned)(ts.tv_nsec / 1000 % 1000000));
}

/* ------------------------------------------------------------------ config */

static const char *const dup_names[] = {"keep", "overwrite", "reject"};

static bool read_config(mira_archive *a, const char *path, mira_error **err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read the archive config", "%s: %s", path,
                       strerror(errno));
        return false;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    mira_json *root = mira_json_parse(buf, n, err);
    if (!root) {
        mira_error_prefix(err, "%s: ", path);
        return false;
    }
    bool ok = true;
    mira_json *v;
    if ((v = mira_json_get(root, "index")) && mira_json_get_type(v) == MIRA_JSON_STRING) {
        a->index = mira_strdup(mira_json_get_string(v, NULL));
    }
    if ((v = mira_json_get(root, "duplicates")) && mira_json_get_type(v) == MIRA_JSON_STRING) {
        const char *s = mira_json_get_string(v, NULL);
        bool known = false;
        for (int i = 0; i < 3; i++) {
            if (strcmp(s, dup_names[i]) == 0) {
                a->duplicates = (mira_duplicate_policy)i;
                known = true;
            }
        }
        if (!known) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad archive config",
                           "%s: duplicates is \"%s\" (keep, overwrite or reject)", path, s);
            ok = false;
        }
    }
    if ((v = mira_json_get(root, "storage_transfer_syntax")) &&
        mira_json_get_type(v) == MIRA_JSON_STRING) {
        const char *s = mira_json_get_string(v, NULL);
        if (*s)
            a->storage_ts = mira_strdup(s);
    }
    if ((v = mira_json_get(root, "names_case_insensitive")) &&
        (mira_json_get_type(v) == MIRA_JSON_TRUE || mira_json_get_type(v) == MIRA_JSON_FALSE))
        a->names_ci = mira_json_get_type(v) == MIRA_JSON_TRUE;
    mira_json_free(root);
    return ok;
}

static bool write_config(const mira_archive *a, const char *path, mira_error **err)
{
    mira_json_writer *w = mira_json_writer_new(true);
    mira_json_begin_object(w);
    mira_json_key(w, "version");
    mira_json_int(w, 1);
    mira_json_key(w, "index");
    mira_json_cstring(w, a->index);
    mira_json_key(w, "duplicates");
    mira_json_cstring(w, dup_names[MIRA_DUPLICATE_KEEP]); /* --duplicates is for one run */
    mira_json_key(w, "storage_transfer_syntax");
    mira_json_cstring(w, a->storage_ts ? a->storage_ts : "");
    mira_json_key(w, "names_case_insensitive");
    mira_json_bool(w, a->names_ci);
    mira_json_end_object(w);
    size_t len;
    char *text = mira_json_writer_finish(w, &len, err);
    mira_json_writer_free(w);
    if (!text)
        return false;
    bool ok = mira__write_file_atomic(path, text, len, err);
    mira_free(text);
    return ok;
}

/* ------------------------------------------------------------------ connections */

mira__db *mira__archive_db_open(mira_archive *a, mira_error **err)
{
    if (a->postgres)
        return mira__db_open_postgres(a->index, err);
    return mira__db_open_sqlite(a->index + strlen("sqlite:"), err);
}

mira__db *mira__archive_db_acquire(mira_archive *a, mira_error **err)
{
    pthread_mutex_lock(&a->pool_lock);
    mira__db *db = a->pool_len ? a->pool[--a->pool_len] : NULL;
    pthread_mutex_unlock(&a->pool_lock);
    if (db)
        return db;
    db = mira__archive_db_open(a, err);
    /* PostgreSQL readers plan every statement with its values: after five runs of a prepared
     * statement the server may switch to a generic plan, and a generic plan of "LIKE $1"
     * cannot use an index for a prefix (a study query by patient name became a scan of every
     * patient, twice as slow). The writer keeps generic plans: its statements go by key, and
     * planning each again would cost every store. */
    if (db && a->postgres && !mira__db_exec(db, "SET plan_cache_mode = force_custom_plan", err)) {
        mira__db_close(db);
        return NULL;
    }
    return db;
}

void mira__archive_db_release(mira_archive *a, mira__db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&a->pool_lock);
    if (a->pool_len == a->pool_cap) {
        size_t cap = a->pool_cap ? a->pool_cap * 2 : 8;
        mira__db **p = mira_realloc(a->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&a->pool_lock);
            mira__db_close(db);
            return;
        }
        a->pool = p;
        a->pool_cap = cap;
    }
    a->pool[a->pool_len++] = db;
    pthread_mutex_unlock(&a->pool_lock);
}

bool mira__archive_write_one(mira_archive *a, const char *sql, const mira__dbval *p, size_t n,
                             mira__db_row_fn fn, void *ctx, int64_t *changes, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    bool ok = db->ops->begin_write(db, err) &&
              db->ops->query(db, sql, p, n, fn, ctx, changes, err);
    if (ok)
        ok = mira__db_commit(db, err);
    else
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    return ok;
}

/* ------------------------------------------------------------------ recovery */

typedef struct name_found {
    bool found;
} name_found;

static bool set_found(void *ctx, const mira__dbval *cols, size_t n)
{
    (void)cols;
    (void)n;
    ((name_found *)ctx)->found = true;
    return false;
}

static bool blob_has_row(mira__db *db, const char *name, bool *found, mira_error **err)
{
    name_found nf = {false};
    mira__dbval p = mira__db_text(name);
    if (!mira__db_query(db, "SELECT 1 FROM instances WHERE blob = ?", &p, 1, set_found, &nf, err))
        return false;
    *found = nf.found;
    return true;
}

/* Make the two folder levels above a blob's path (blobs/ab/cd/NAME). */
static bool make_parents(char *dst, mira_error **err)
{
    char *slash = strrchr(dst, '/');
    *slash = 0;
    char *mid = strrchr(dst, '/');
    *mid = 0;
    bool ok = make_dir(dst, err);
    *mid = '/';
    ok = ok && make_dir(dst, err);
    *slash = '/';
    return ok;
}

/* Move a committed blob from tmp into place (making its folders if they are missing). */
static bool place_blob(const mira_archive *a, const char *tmp_path, const char *name,
                       mira_error **err)
{
    char *dst = mira__blob_file(a, name);
    if (!dst) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "placing %s", name);
        return false;
    }
    /* the folders are there already as a rule (an earlier blob made them): try the rename
     * first, one system call, and make them only when it finds them missing */
    bool ok = rename(tmp_path, dst) == 0;
    if (!ok && errno == ENOENT) {
        if (!make_parents(dst, err)) {
            mira_free(dst);
            return false;
        }
        ok = rename(tmp_path, dst) == 0;
    }
    if (!ok)
        mira_error_set(err, MIRA_ERR_IO, "Cannot store", "%s: %s", dst, strerror(errno));
    mira_free(dst);
    return ok;
}

bool mira__archive_place_blob(const mira_archive *a, const char *tmp_path, const char *name,
                              mira_error **err)
{
    return place_blob(a, tmp_path, name, err);
}

/* Recover one dead process's tmp folder. */
static bool recover_dir(mira_archive *a, mira__db *db, const char *path, mira_error **err)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0)
            continue;
        char *f = join(path, de->d_name);
        if (!f) {
            ok = false;
            break;
        }
        bool found = false;
        if (mira__blob_name_valid(de->d_name)) {
            ok = blob_has_row(db, de->d_name, &found, err);
        }
        if (ok && found)
            ok = place_blob(a, f, de->d_name, err);
        else if (ok)
            unlink(f);
        mira_free(f);
    }
    closedir(d);
    if (ok) {
        char *lock = join(path, "lock");
        if (lock)
            unlink(lock);
        mira_free(lock);
        rmdir(path);
    }
    return ok;
}

typedef struct deletion {
    char *blob;
    struct deletion *next;
} deletion;

static bool collect_deletion(void *ctx, const mira__dbval *cols, size_t n)
{
    deletion **head = ctx;
    if (n < 1 || cols[0].type != MIRA__DB_TEXT)
        return true;
    deletion *d = mira_calloc(1, sizeof *d);
    if (!d)
        return false;
    d->blob = mira_strdup(cols[0].s);
    d->next = *head;
    *head = d;
    return true;
}

bool mira__archive_finish_deletions(mira_archive *a, mira__db *db, mira_error **err)
{
    deletion *head = NULL;
    bool ok = mira__db_query(db, "SELECT blob FROM blob_deletions", NULL, 0, collect_deletion,
                             &head, err);
    while (head) {
        deletion *d = head;
        head = d->next;
        if (ok && d->blob) {
            bool found = false;
            ok = blob_has_row(db, d->blob, &found, err);
            if (ok && !found) {
                char *f = mira__blob_file(a, d->blob);
                if (f)
                    unlink(f);
                mira_free(f);
            }
            mira__dbval p = mira__db_text(d->blob);
            ok = ok && db->ops->query(db, "DELETE FROM blob_deletions WHERE blob = ?", &p, 1, NULL,
                                      NULL, NULL, err);
        }
        mira_free(d->blob);
        mira_free(d);
    }
    return ok;
}

/*
 * A PostgreSQL server finishes a COMMIT it has received even when the client that sent it was
 * killed while waiting for the answer: for a few moments after a crash, rows naming blobs in
 * the dead process's tmp folder may still be on their way. Recovery must not look before they
 * land (it would remove a committed blob). Any transaction that writes rows naming blobs holds
 * ROW EXCLUSIVE on instances until it ends, so taking SHARE waits for every one in flight. A
 * transaction that is only idle (its client gone, the server not told yet) never commits; the
 * timeout keeps recovery from waiting for it, or for a long batch of a live writer.
 */
static void await_commits(mira_archive *a, mira__db *db)
{
    if (!a->postgres || !mira__db_exec(db, "BEGIN", NULL))
        return;
    if (mira__db_exec(db, "SET LOCAL lock_timeout = '5s'", NULL) &&
        mira__db_exec(db, "LOCK TABLE instances IN SHARE MODE", NULL) && mira__db_commit(db, NULL))
        return;
    mira__db_rollback(db);
}

bool mira__archive_recover(mira_archive *a, mira__db *db, mira_error **err)
{
    await_commits(a, db);
    char *tmp_root = join(a->dir, "tmp");
    if (!tmp_root) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "recovery");
        return false;
    }
    DIR *d = opendir(tmp_root);
    bool ok = true;
    if (d) {
        struct dirent *de;
        while (ok && (de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *sub = join(tmp_root, de->d_name);
            if (!sub || (a->tmp && strcmp(sub, a->tmp) == 0)) {
                mira_free(sub);
                continue;
            }
            char *lock = join(sub, "lock");
            int fd = lock ? open(lock, O_RDWR | O_CLOEXEC) : -1;
            bool dead;
            if (de->d_name[0] == '.') {
                /* a folder being made (make_tmp_dir): it never holds blobs; one left by a
                 * process that died making it goes once it is a minute old and unlocked.
                 * Never sooner: between its mkdir, the open of its lock file and the flock,
                 * a live process's folder is unlocked for a moment (taking it then made that
                 * process's open fail: two mira commands started at once) */
                struct stat dst;
                dead = stat(sub, &dst) == 0 && time(NULL) - dst.st_mtime > 60 &&
                       (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0);
            } else {
                /* a folder has its lock from birth: without one, its process is gone */
                dead = fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0;
            }
            if (dead)
                ok = recover_dir(a, db, sub, err);
            if (fd >= 0)
                close(fd);
            mira_free(lock);
            mira_free(sub);
        }
        closedir(d);
    }
    mira_free(tmp_root);
    return ok && mira__archive_finish_deletions(a, db, err);
}

/* ------------------------------------------------------------------ open and close */

static bool make_tmp_dir(mira_archive *a, mira_error **err)
{
    char *root = join(a->dir, "tmp");
    if (!root || !make_dir(root, err)) {
        mira_free(root);
        return false;
    }
    /* made as .NAME, locked, then renamed to NAME: a folder recovery may take for a dead
     * process's always has its lock file (and a live one always holds it) */
    char name[64];
    snprintf(name, sizeof name, ".%ld-%016llx", (long)getpid(),
             (unsigned long long)mira__generation(a));
    char *making = join(root, name);
    a->tmp = join(root, name + 1);
    mira_free(root);
    if (!making || !a->tmp || !make_dir(making, err)) {
        mira_free(making);
        return false;
    }
    char *lock = join(making, "lock");
    if (!lock) {
        mira_free(making);
        return false;
    }
    a->tmp_lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    mira_free(lock);
    bool ok = a->tmp_lock >= 0 && flock(a->tmp_lock, LOCK_EX | LOCK_NB) == 0 &&
              rename(making, a->tmp) == 0;
    if (!ok)
        mira_error_set(err, MIRA_ERR_IO, "Cannot lock", "%s/lock: %s", making, strerror(errno));
    mira_free(making);
    return ok;
}

mira_archive *mira_archive_open(const mira_archive_options *opt, mira_error **err)
{
    if (!opt || !opt->dir || !*opt->dir) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "No archive folder", "no archive folder given");
        return NULL;
    }
    mira_archive *a = mira_calloc(1, sizeof *a);
    if (!a) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "opening the archive");
        return NULL;
    }
    a->tmp_lock = -1;
    a->names_ci = true;
    pthread_mutex_init(&a->pool_lock, NULL);
    pthread_mutex_init(&a->q_lock, NULL);
    pthread_mutex_init(&a->place_lock, NULL);
    pthread_mutex_init(&a->audit_lock, NULL);
    pthread_cond_init(&a->audit_cond, NULL);
    pthread_mutex_init(&a->hl7_lock, NULL);
    pthread_cond_init(&a->hl7_cond, NULL);
    pthread_cond_init(&a->q_cond, NULL);
    pthread_cond_init(&a->done_cond, NULL);
    a->dir = mira_strdup(opt->dir);
    size_t dl = a->dir ? strlen(a->dir) : 0;
    while (dl > 1 && a->dir[dl - 1] == '/')
        a->dir[--dl] = 0;
    char *config = a->dir ? join(a->dir, "config.json") : NULL;
    a->blobs = a->dir ? join(a->dir, "blobs") : NULL;
    if (!config || !a->blobs) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "opening the archive");
        goto fail;
    }
    struct stat st;
    bool exists = stat(config, &st) == 0;
    if (!exists && !opt->create) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No archive",
                       "%s is not a mira archive (no config.json); 'mira import' makes one",
                       a->dir);
        goto fail;
    }
    if (exists && !read_config(a, config, err))
        goto fail;
    if (opt->index) {
        mira_free(a->index);
        a->index = mira_strdup(opt->index);
    }
    if (opt->duplicates >= 0 && opt->duplicates <= 2)
        a->duplicates = (mira_duplicate_policy)opt->duplicates;
    if (opt->storage_ts) {
        mira_free(a->storage_ts);
        a->storage_ts = *opt->storage_ts ? mira_strdup(opt->storage_ts) : NULL;
    }
    if (!a->index || strcmp(a->index, "sqlite") == 0) {
        mira_free(a->index);
        size_t n = strlen(a->dir) + 32;
        if ((a->index = mira_malloc(n)))
            snprintf(a->index, n, "sqlite:%s/index.db", a->dir);
    }
    if (!a->index) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "opening the archive");
        goto fail;
    }
    a->postgres = strncmp(a->index, "sqlite:", 7) != 0;
    if (!exists) {
        if (!make_dir(a->dir, err))
            goto fail;
        /* the config records the default index as "sqlite", so the folder can move */
        char *saved = a->index;
        char def[] = "sqlite";
        if (!opt->index || strcmp(opt->index, "sqlite") == 0)
            a->index = def;
        bool ok = write_config(a, config, err);
        a->index = saved;
        if (!ok)
            goto fail;
    }
    if (!make_dir(a->blobs, err) || !make_tmp_dir(a, err))
        goto fail;
    a->writer = mira__archive_db_open(a, err);
    if (!a->writer || !mira__schema_migrate(a->writer, err) ||
        !mira__archive_recover(a, a->writer, err))
        goto fail;
    mira_free(config);
    return a;
fail:
    mira_free(config);
    mira_archive_close(a);
    return NULL;
}

void mira_archive_close(mira_archive *a)
{
    if (!a)
        return;
    mira__store_shutdown(a);
    /* What is left in this process's tmp folder was never committed, except a blob whose move
     * into blobs/ failed after its COMMIT, or whose COMMIT failed with an unknown outcome: the
     * rows decide, as in recovery. If the index cannot tell, the blobs stay for the next open. */
    bool had_index = a->writer != NULL;
    bool resolved = a->tmp && had_index && recover_dir(a, a->writer, a->tmp, NULL);
    mira__db_close(a->writer);
    for (size_t i = 0; i < a->pool_len; i++)
        mira__db_close(a->pool[i]);
    mira_free(a->pool);
    if (a->tmp && !resolved) {
        DIR *d = opendir(a->tmp);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                /* blobs kept keep their lock file too: the next open must see a dead
                 * process's folder, not one starting up */
                if (de->d_name[0] == '.' || (had_index && mira__blob_name_valid(de->d_name)) ||
                    (had_index && strcmp(de->d_name, "lock") == 0))
                    continue;
                char *f = join(a->tmp, de->d_name);
                if (f)
                    unlink(f);
                mira_free(f);
            }
            closedir(d);
        }
        rmdir(a->tmp);
    }
    if (a->tmp_lock >= 0)
        close(a->tmp_lock);
    pthread_mutex_destroy(&a->pool_lock);
    pthread_mutex_destroy(&a->q_lock);
    pthread_mutex_destroy(&a->place_lock);
    pthread_mutex_destroy(&a->audit_lock);
    pthread_cond_destroy(&a->audit_cond);
    pthread_mutex_destroy(&a->hl7_lock);
    pthread_cond_destroy(&a->hl7_cond);
    pthread_cond_destroy(&a->q_cond);
    pthread_cond_destroy(&a->done_cond);
    mira_free(a->dir);
    mira_free(a->blobs);
    mira_free(a->tmp);
    mira_free(a->index);
    mira_free(a->storage_ts);
    mira_free(a);
}

/* ------------------------------------------------------------------ lookups */

typedef struct text_out {
    char *s;
} text_out;

static bool take_text(void *ctx, const mira__dbval *cols, size_t n)
{
    text_out *t = ctx;
    if (n > 0 && cols[0].type == MIRA__DB_TEXT)
        t->s = mira_strdup(cols[0].s);
    return false;
}

char *mira_archive_instance_path(mira_archive *a, const char *sop_instance_uid, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return NULL;
    text_out t = {NULL};
    mira__dbval p = mira__db_text(sop_instance_uid);
    bool ok = mira__db_query(db, "SELECT blob FROM instances WHERE sop_uid = ?", &p, 1, take_text,
                             &t, err);
    mira__archive_db_release(a, db);
    if (!ok)
        return NULL;
    if (!t.s) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such instance", "no instance %s in the archive",
                       sop_instance_uid);
        return NULL;
    }
    char *path = mira__blob_file(a, t.s);
    mira_free(t.s);
    if (!path)
        mira_error_set(err, MIRA_ERR_INVALID, "Bad index row", "instance %s has a bad blob name",
                       sop_instance_uid);
    return path;
}

typedef struct stats_ctx {
    mira_archive_stats *out;
} stats_ctx;

static bool take_stats(void *ctx, const mira__dbval *cols, size_t n)
{
    mira_archive_stats *s = ((stats_ctx *)ctx)->out;
    uint64_t *dst[] = {&s->patients, &s->studies, &s->series, &s->instances, &s->bytes};
    for (size_t i = 0; i < n && i < 5; i++)
        *dst[i] = cols[i].type == MIRA__DB_INT    ? (uint64_t)cols[i].i
                  : cols[i].type == MIRA__DB_TEXT ? strtoull(cols[i].s, NULL, 10)
                                                  : 0;
    return false;
}

bool mira_archive_get_stats(mira_archive *a, mira_archive_stats *out, mira_error **err)
{
    memset(out, 0, sizeof *out);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    stats_ctx c = {out};
    bool ok =
        mira__db_query(db,
                       "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM studies),"
                       " (SELECT count(*) FROM series), (SELECT count(*) FROM instances),"
                       " (SELECT coalesce(sum(size_bytes), 0) FROM instances)",
                       NULL, 0, take_stats, &c, err);
    mira__archive_db_release(a, db);
    return ok;
}
