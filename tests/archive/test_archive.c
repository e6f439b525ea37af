/* Tests of the archive's recovery: what a killed process leaves in tmp/, blob deletions, close. */
#include "harness.h"

#include "archive/archive_int.h"
#include "mira/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static char root[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_root(void)
{
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty folder name under the test's root for one archive. */
static const char *archive_dir(const char *name)
{
    static char path[256];
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/mira-test-archive-XXXXXX");
        if (!mkdtemp(root))
            abort();
        atexit(remove_root);
    }
    snprintf(path, sizeof path, "%s/%s", root, name);
    return path;
}

static mira_archive *open_archive(const char *dir)
{
    mira_archive_options o;
    mira_archive_options_init(&o);
    o.dir = dir;
    o.create = true;
    mira_error *err = NULL;
    mira_archive *a = mira_archive_open(&o, &err);
    if (!a)
        fprintf(stderr, "open %s: %s\n", dir, mira_error_get_message(err));
    mira_error_free(err);
    return a;
}

/* A small Part 10 instance (owned, mira_free). */
static uint8_t *make_instance(const char *sop_uid, const char *comment, size_t *len)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    mira_dataset_set_string(ds, 0x00080016, MIRA_VR_UI, "1.2.840.10008.5.1.4.1.1.7", NULL);
    mira_dataset_set_string(ds, 0x00080018, MIRA_VR_UI, sop_uid, NULL);
    mira_dataset_set_string(ds, 0x00080060, MIRA_VR_CS, "OT", NULL);
    mira_dataset_set_string(ds, 0x00100020, MIRA_VR_LO, "RECOVERY", NULL);
    mira_dataset_set_string(ds, 0x0020000D, MIRA_VR_UI, "1.2.826.0.1.3680043.8.498.9.1", NULL);
    mira_dataset_set_string(ds, 0x0020000E, MIRA_VR_UI, "1.2.826.0.1.3680043.8.498.9.1.1", NULL);
    mira_dataset_set_string(ds, 0x00204000, MIRA_VR_LT, comment, NULL);
    mira_file *f = mira_file_from_dataset(ds, "1.2.840.10008.1.2.1", NULL);
    uint8_t *out = NULL;
    if (!f || !mira_file_write_memory(f, NULL, &out, len, NULL))
        abort();
    mira_file_free(f);
    return out;
}

static bool store(mira_archive *a, const char *uid, const char *comment)
{
    size_t len;
    uint8_t *data = make_instance(uid, comment, &len);
    mira_error *err = NULL;
    bool ok = mira_archive_store_memory(a, data, len, NULL, &err);
    mira_error_free(err);
    mira_free(data);
    return ok;
}

static char *instance_path(mira_archive *a, const char *uid)
{
    mira_error *err = NULL;
    char *p = mira_archive_instance_path(a, uid, &err);
    mira_error_free(err);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The two folder levels above a blob file. */
static void make_parents(const char *file)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", file);
    char *last = strrchr(dir, '/');
    *last = 0;
    char *mid = strrchr(dir, '/');
    *mid = 0;
    mkdir(dir, 0755);
    *mid = '/';
    mkdir(dir, 0755);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

/* The problems mira check finds (no repair). */
static uint64_t problems(mira_archive *a)
{
    mira_check_report rep;
    mira_check_options co = {.deep = true};
    mira_error *err = NULL;
    if (!mira_archive_check(a, &co, NULL, NULL, &rep, &err)) {
        fprintf(stderr, "check: %s\n", mira_error_get_message(err));
        mira_error_free(err);
        return 1000;
    }
    return rep.missing_blobs + rep.orphan_blobs + rep.bad_blobs + rep.bad_counts;
}

/* Entries of a folder other than . and .. (-1 if it cannot be read). */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* A folder of a process that is gone, under dir/tmp (with or without its lock file). */
static void dead_folder(const char *dir, const char *name, bool with_lock, char out[512])
{
    snprintf(out, 512, "%s/tmp/%s", dir, name);
    CHECK(mkdir(out, 0755) == 0);
    if (with_lock) {
        char lock[600];
        snprintf(lock, sizeof lock, "%s/lock", out);
        write_file(lock, "");
    }
}

static const char *const UID1 = "1.2.826.0.1.3680043.8.498.9.1.1.1";
static const char *const UID2 = "1.2.826.0.1.3680043.8.498.9.1.1.2";
static const char *const JUNK_NAME =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff-0123456789abcdef.dcm";

/* ------------------------------------------------------------------ tests */

/* Killed after COMMIT, before the rename: the committed blob is moved into place; files no row
 * names (an uncommitted blob, a half-written file) go, and so does the folder. */
TEST(committed_blob_in_dead_folder_is_placed)
{
    const char *dir = archive_dir("placed");
    mira_archive *a = open_archive(dir);
    CHECK(a && store(a, UID1, "one") && store(a, UID2, "two"));
    char *p1 = instance_path(a, UID1);
    CHECK(p1 && exists(p1));
    mira_archive_close(a);

    char dead[512], moved[1024], junk[1024], part[1024];
    dead_folder(dir, "4000000-00000000deadbeef", true, dead);
    snprintf(moved, sizeof moved, "%s/%s", dead, strrchr(p1, '/') + 1);
    snprintf(junk, sizeof junk, "%s/%s", dead, JUNK_NAME);
    snprintf(part, sizeof part, "%s/half-written", dead);
    CHECK(rename(p1, moved) == 0);
    write_file(junk, "not committed");
    write_file(part, "x");

    a = open_archive(dir);
    CHECK(a != NULL);
    CHECK(exists(p1));
    CHECK(!exists(moved) && !exists(junk) && !exists(part) && !exists(dead));
    CHECK_EQ_INT(problems(a), 0);
    mira_archive_close(a);
    mira_free(p1);
}

/* A folder without a lock file is a process that died before making it (folders are made
 * as .NAME, locked and renamed, so a live process's folder always has its lock). */
TEST(folder_without_lock_is_dead)
{
    const char *dir = archive_dir("nolock");
    mira_archive *a = open_archive(dir);
    CHECK(a && store(a, UID1, "one"));
    mira_archive_close(a);
    char dead[512], junk[1024];
    dead_folder(dir, "4000001-00000000deadbeef", false, dead);
    snprintf(junk, sizeof junk, "%s/%s", dead, JUNK_NAME);
    write_file(junk, "not committed");
    a = open_archive(dir);
    CHECK(a != NULL);
    CHECK(!exists(dead));
    CHECK_EQ_INT(problems(a), 0);
    mira_archive_close(a);
}

/* A folder whose lock someone holds belongs to a live process: left alone until it is gone. */
TEST(live_folder_is_left_alone)
{
    const char *dir = archive_dir("live");
    mira_archive *a = open_archive(dir);
    CHECK(a != NULL);
    mira_archive_close(a);
    char live[512], lock[600], junk[1024];
    dead_folder(dir, "4000002-00000000cafebabe", true, live);
    snprintf(lock, sizeof lock, "%s/lock", live);
    snprintf(junk, sizeof junk, "%s/%s", live, JUNK_NAME);
    write_file(junk, "in progress");
    /* flock conflicts between open file descriptions, even in one process */
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    a = open_archive(dir);
    CHECK(a != NULL);
    CHECK(exists(junk));
    mira_archive_close(a);
    close(fd);
    a = open_archive(dir);
    CHECK(!exists(live));
    mira_archive_close(a);
}

/* Deletions listed in blob_deletions are carried out at open, except of a blob a row names. */
TEST(blob_deletions_are_replayed)
{
    const char *dir = archive_dir("deletions");
    mira_archive *a = open_archive(dir);
    CHECK(a && store(a, UID1, "one"));
    char *kept = instance_path(a, UID1);
    /* a replaced blob still on disk, as a kill right after the COMMIT of an overwrite leaves */
    char old_name[MIRA__BLOB_NAME_MAX];
    mira__blob_name(UID2, 42, old_name);
    char *old = mira__blob_file(a, old_name);
    make_parents(old);
    write_file(old, "replaced");
    mira_error *err = NULL;
    mira__db *db = mira__archive_db_acquire(a, &err);
    CHECK(db != NULL);
    mira__dbval del[2] = {mira__db_text(old_name), mira__db_text("0")};
    mira__dbval keep[2] = {mira__db_text(strrchr(kept, '/') + 1), mira__db_text("0")};
    CHECK(db->ops->query(db, "INSERT INTO blob_deletions (blob, checksum) VALUES (?, ?)", del, 2,
                         NULL, NULL, NULL, &err));
    CHECK(db->ops->query(db, "INSERT INTO blob_deletions (blob, checksum) VALUES (?, ?)", keep, 2,
                         NULL, NULL, NULL, &err));
    mira__archive_db_release(a, db);
    mira_error_free(err);
    mira_archive_close(a);

    a = open_archive(dir);
    CHECK(a != NULL);
    CHECK(!exists(old));
    CHECK(exists(kept));
    db = mira__archive_db_acquire(a, NULL);
    int64_t left = -1;
    CHECK(db && mira__db_query_int(db, "SELECT count(*) FROM blob_deletions", NULL, 0, &left, NULL,
                                   NULL));
    CHECK_EQ_INT(left, 0);
    mira__archive_db_release(a, db);
    CHECK_EQ_INT(problems(a), 0);
    mira_archive_close(a);
    mira_free(old);
    mira_free(kept);
}

/* A blob whose row is committed but which could not be moved into blobs/ stays in tmp/ when the
 * archive is closed (the next open finishes the move); close must not take it for junk. */
TEST(close_keeps_a_committed_blob_it_could_not_place)
{
    const char *dir = archive_dir("unplaced");
    mira_archive *a = open_archive(dir);
    CHECK(a != NULL);
    /* a file where the blob's first folder level should be: the rename fails */
    char name[MIRA__BLOB_NAME_MAX];
    mira__blob_name(UID1, 1, name);
    char block[512];
    snprintf(block, sizeof block, "%s/blobs/%.2s", dir, name);
    write_file(block, "in the way");
    CHECK(!store(a, UID1, "one"));
    mira_archive_close(a);
    CHECK(unlink(block) == 0);

    a = open_archive(dir);
    CHECK(a != NULL);
    char *p = instance_path(a, UID1);
    CHECK(p && exists(p));
    CHECK_EQ_INT(problems(a), 0);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    CHECK_EQ_INT(entries(tmp), 1); /* this process's own folder */
    mira_archive_close(a);
    CHECK_EQ_INT(entries(tmp), 0);
    mira_free(p);
}
