/* mira import: files, folders (recursively), DICOMDIRs and .zip files into the archive. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira import [options] PATH...\n\n"
            "Store DICOM instances in the archive: files, folders (recursively), DICOMDIRs (the\n"
            "files they reference) and .zip archives (every entry). Each instance is reported\n"
            "only once its blob and index rows are durable. Files that are not DICOM, or lack\n"
            "their UIDs, are rejected with the reason; nothing already stored is affected.\n"
            "A new archive is created if the folder has none.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --duplicates P     an instance stored already: keep (default), overwrite or\n"
            "                     reject (identical copies are always just duplicates)\n"
            "  --storage-ts TS    store pixel data re-encoded losslessly: rle, jpegls, j2k or a\n"
            "                     UID (\"\" keeps what comes; default: the archive config's\n"
            "                     storage_transfer_syntax, which a new archive records)\n"
            "  --threads N        files stored in parallel (default: 8 per core, from 32 to 64;\n"
            "                     a store mostly waits for the disk)\n"
            "  --json             one JSON object per input as it is decided, then a summary\n"
            "  --no-progress      no progress bar (it is shown only on a terminal anyway)\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 every input stored (or a duplicate), 1 some input rejected or the\n"
            "archive failed, 2 wrong usage\n");
}

/* ------------------------------------------------------------------ the inputs */

typedef struct input {
    char *path;
    bool is_zip;
} input;

typedef struct inputs {
    input *v;
    size_t n, cap;
    uint64_t units; /* files, plus the entries of zips */
    uint64_t skipped;
} inputs;

static bool add_input(inputs *in, const char *path, bool is_zip)
{
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 256;
        input *v = realloc(in->v, cap * sizeof *v);
        if (!v)
            return false;
        in->v = v;
        in->cap = cap;
    }
    in->v[in->n].path = strdup(path);
    in->v[in->n].is_zip = is_zip;
    if (!in->v[in->n].path)
        return false;
    in->n++;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool is_dicomdir_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strcasecmp(base, "DICOMDIR") == 0;
}

static bool add_path(inputs *in, const char *path, bool explicit);

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool walk(inputs *in, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mira import: cannot read %s: %s\n", dir, strerror(errno));
        return true; /* reported; the rest goes on */
    }
    /* sorted, so imports are reproducible */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **v = realloc(names, cap * sizeof *v);
            if (!v)
                break;
            names = v;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(dir) + strlen(names[i]) + 2;
        char *p = malloc(l);
        if (p) {
            snprintf(p, l, "%s/%s", dir, names[i]);
            ok = ok && add_path(in, p, false);
        }
        free(p);
        free(names[i]);
    }
    free(names);
    return ok;
}

/* The files a DICOMDIR references (Referenced File ID, relative to its folder). */
static bool add_dicomdir(inputs *in, const char *path)
{
    mira_error *err = NULL;
    mira_read_options ro;
    mira_read_options_init(&ro);
    mira_file *f = mira_file_read(path, &ro, &err);
    if (!f) {
        mira_cli_report("import", err);
        return true;
    }
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    mira_element *seq = mira_dataset_get(mira_file_dataset(f), 0x00041220);
    size_t items = seq ? mira_element_item_count(seq) : 0;
    bool ok = true;
    for (size_t i = 0; ok && i < items; i++) {
        mira_element *id = mira_dataset_get(mira_element_item(seq, i), 0x00041500);
        if (!id)
            continue;
        char rel[4096] = "";
        for (size_t k = 0; k < mira_element_vm(id); k++) {
            char *part = mira_element_get_string(id, k, NULL);
            if (!part)
                continue;
            size_t l = strlen(rel);
            snprintf(rel + l, sizeof rel - l, "%s%s", l ? "/" : "", part);
            mira_free(part);
        }
        if (!*rel)
            continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        struct stat st;
        if (stat(full, &st) != 0) {
            /* media written on case-insensitive systems: try lower case */
            for (char *p = full + strlen(dir) + 1; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
        }
        ok = add_input(in, full, false);
        in->units++;
    }
    free(dir);
    mira_file_free(f);
    return ok;
}

static bool add_path(inputs *in, const char *path, bool explicit)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        /* a missing input is rejected like a bad file: the import goes on */
        bool ok = add_input(in, path, false);
        in->units++;
        return ok;
    }
    if (S_ISDIR(st.st_mode))
        return walk(in, path);
    if (is_dicomdir_name(path)) {
        if (explicit)
            return add_dicomdir(in, path);
        in->skipped++; /* found while walking: its files are found by the walk too */
        return true;
    }
    if (ends_with(path, ".zip")) {
        int64_t n = mira_container_count(path);
        in->units += n > 0 ? (uint64_t)n : 1;
        return add_input(in, path, true);
    }
    in->units++;
    return add_input(in, path, false);
}

/* ------------------------------------------------------------------ the workers */

typedef struct counts {
    uint64_t stored, duplicate, replaced, rejected, bytes;
} counts;

typedef struct job {
    mira_archive *a;
    inputs *in;
    size_t next;
    pthread_mutex_t lock;
    counts c;
    uint64_t done;
    bool json;
    mira_cli_progress progress;
    char *first_errors[20];
    size_t nerrors;
    bool archive_failed;
} job;

/* "key":"value" (the key is a fixed ASCII name; the value a JSON document of its own) */
static void json_str(const char *key, const char *v)
{
    mira_json_writer *w = mira_json_writer_new(false);
    fprintf(stdout, "\"%s\":", key);
    mira_json_cstring(w, v);
    size_t len;
    char *t = mira_json_writer_finish(w, &len, NULL);
    mira_json_writer_free(w);
    if (t)
        fwrite(t, 1, len, stdout);
    mira_free(t);
}

/* Report one input's outcome (under the lock). */
static void outcome(job *j, const char *path, const mira_store_result *res, const mira_error *err)
{
    pthread_mutex_lock(&j->lock);
    static const char *const names[] = {"stored", "duplicate", "replaced"};
    const char *status = err ? "rejected" : names[res->status];
    if (err) {
        j->c.rejected++;
        if (mira_error_get_code(err) == MIRA_ERR_IO || mira_error_get_code(err) == MIRA_ERR_NOMEM)
            j->archive_failed = true;
        if (j->nerrors < 20) {
            j->first_errors[j->nerrors++] = strdup(mira_error_get_message(err));
        }
    } else if (res->status == MIRA_STORE_STORED) {
        j->c.stored++;
        j->c.bytes += res->size;
    } else if (res->status == MIRA_STORE_REPLACED) {
        j->c.replaced++;
        j->c.bytes += res->size;
    } else {
        j->c.duplicate++;
    }
    j->done++;
    if (j->json) {
        fputc('{', stdout);
        json_str("path", path);
        fputc(',', stdout);
        json_str("status", status);
        if (err) {
            fputc(',', stdout);
            json_str("reason", mira_error_get_message(err));
        } else {
            fputc(',', stdout);
            json_str("sop_instance_uid", res->sop_instance_uid);
            fputc(',', stdout);
            json_str("study_instance_uid", res->study_instance_uid);
            fprintf(stdout, ",\"size\":%llu", (unsigned long long)res->size);
        }
        fputs("}\n", stdout);
        fflush(stdout); /* a line is a promise: the instance is durable */
    }
    mira_cli_progress_update(&j->progress, j->done);
    pthread_mutex_unlock(&j->lock);
}

static void zip_entry(void *ctx, const char *name, const mira_store_result *res,
                      const mira_error *err)
{
    outcome(ctx, name, res, (mira_error *)err);
}

static void import_zip(job *j, const char *path)
{
    mira_error *err = NULL;
    if (!mira_archive_store_container(j->a, path, zip_entry, j, &err)) {
        outcome(j, path, NULL, err);
        mira_error_free(err);
    }
}

static void *worker(void *arg)
{
    job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->next < j->in->n ? j->next++ : SIZE_MAX;
        pthread_mutex_unlock(&j->lock);
        if (i == SIZE_MAX)
            break;
        input *in = &j->in->v[i];
        if (in->is_zip) {
            import_zip(j, in->path);
            continue;
        }
        mira_store_result res;
        mira_error *err = NULL;
        mira_archive_store_file(j->a, in->path, &res, &err);
        outcome(j, in->path, &res, err);
        mira_error_free(err);
    }
    return NULL;
}

int mira_cli_import(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    bool json = false, progress = true;
    long threads = 0;
    inputs in = {0};
    const char **paths = calloc((size_t)argc, sizeof *paths);
    size_t npaths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira import: %s needs a valid value\n", a);
            free(paths);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            free(paths);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = false;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            char *end;
            threads = strtol(argv[++i], &end, 10);
            if (*end || threads < 1 || threads > 256) {
                fprintf(stderr, "mira import: --threads takes a number from 1 to 256\n");
                free(paths);
                return MIRA_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira import: unknown option '%s'\n", a);
            usage(stderr);
            free(paths);
            return MIRA_EXIT_USAGE;
        } else {
            paths[npaths++] = a;
        }
    }
    if (!npaths) {
        fprintf(stderr, "mira import: nothing to import (give files or folders)\n");
        usage(stderr);
        free(paths);
        return MIRA_EXIT_USAGE;
    }
    for (size_t i = 0; i < npaths; i++) {
        if (!add_path(&in, paths[i], true)) {
            fprintf(stderr, "mira import: out of memory listing the inputs\n");
            free(paths);
            return MIRA_EXIT_INPUT;
        }
    }
    free(paths);
    mira_archive *a = mira_cli_open_archive("import", &opts, true);
    if (!a) {
        for (size_t k = 0; k < in.n; k++)
            free(in.v[k].path);
        free(in.v);
        return MIRA_EXIT_INPUT;
    }
    if (!threads) {
        /* a store spends most of its time waiting (its blob's fdatasync, the group commit),
         * not computing: many in flight keep the disk busy, and the more wait for a commit
         * the fewer commits there are (on 2 cores, 32 stored 1.5-2x the files/s of 4) */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? 8 * cores : 32;
        if (threads < 32)
            threads = 32;
        if (threads > 64)
            threads = 64;
    }
    if ((size_t)threads > in.n)
        threads = in.n ? (long)in.n : 1;
    job j = {0};
    j.a = a;
    j.in = &in;
    j.json = json;
    pthread_mutex_init(&j.lock, NULL);
    mira_cli_progress_init(&j.progress, "import", in.units, progress);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    long started = 0;
    for (long t = 0; tids && t < threads; t++)
        if (pthread_create(&tids[t], NULL, worker, &j) == 0)
            started++;
    if (!started)
        worker(&j);
    for (long t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    free(tids);
    mira_cli_progress_done(&j.progress);
    double secs = mira_cli_progress_seconds(&j.progress);
    mira_archive_close(a);

    if (json) {
        printf("{\"summary\":{\"inputs\":%llu,\"stored\":%llu,\"duplicate\":%llu,"
               "\"replaced\":%llu,\"rejected\":%llu,\"skipped\":%llu,\"bytes\":%llu,"
               "\"seconds\":%.3f}}\n",
               (unsigned long long)j.done, (unsigned long long)j.c.stored,
               (unsigned long long)j.c.duplicate, (unsigned long long)j.c.replaced,
               (unsigned long long)j.c.rejected, (unsigned long long)in.skipped,
               (unsigned long long)j.c.bytes, secs);
    } else {
        printf("%llu stored, %llu duplicate, %llu replaced, %llu rejected (%.1f MB in %.1f s, "
               "%.0f/s)\n",
               (unsigned long long)j.c.stored, (unsigned long long)j.c.duplicate,
               (unsigned long long)j.c.replaced, (unsigned long long)j.c.rejected,
               (double)j.c.bytes / 1e6, secs, secs > 0 ? (double)j.done / secs : 0.0);
    }
    for (size_t k = 0; k < j.nerrors; k++) {
        if (!json)
            fprintf(stderr, "mira import: rejected: %s\n", j.first_errors[k]);
        free(j.first_errors[k]);
    }
    if (!json && j.c.rejected > j.nerrors)
        fprintf(stderr, "mira import: ... and %llu more rejected (--json lists every one)\n",
                (unsigned long long)(j.c.rejected - j.nerrors));
    for (size_t k = 0; k < in.n; k++)
        free(in.v[k].path);
    free(in.v);
    pthread_mutex_destroy(&j.lock);
    return j.c.rejected ? MIRA_EXIT_INPUT : MIRA_EXIT_OK;
}
