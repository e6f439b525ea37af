/* mira send: Storage SCU (C-STORE) of files, folders or an archive query. */
#include "cli.h"
#include "scu_options.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXIT_NO_ASSOCIATION = 3 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira send HOST PORT PATH... [options]\n"
            "       mira send HOST PORT --query KEY=VALUE... [--level L] [--archive DIR]\n\n"
            "Sends DICOM instances to a peer with C-STORE: files, folders (recursively; files\n"
            "in them that are not DICOM are skipped), or the stored instances an archive query\n"
            "selects. One association carries them all: a presentation context per SOP class\n"
            "and transfer syntax, proposing the instance's own syntax, Explicit VR LE and\n"
            "Implicit VR LE; an instance is transcoded when the peer accepts only another one.\n\n"
            "options:\n"
            "  --aet AE         our (calling) AE title (default MIRA)\n"
            "  --call AE        the peer's (called) AE title (default ANY-SCP)\n"
            "  --timeout S      seconds for connecting and for each answer (default 30)\n"
            "  --query K=V      select stored instances (keys as for mira find; repeatable;\n"
            "                   --query '' selects everything)\n"
            "  --level L        the level the query matches at: PATIENT, STUDY, SERIES or\n"
            "                   IMAGE (default); every instance under each match is sent\n" MIRA_ARCHIVE_CLI_HELP
            "  --json           one JSON line per instance, then a summary\n"
            "  --no-progress    no progress bar\n"
            "  --storage-negotiation  ask for the peer's storage extended negotiation\n"
            "                   (PS3.4 B.3.1: level of support, digital signatures, element\n"
            "                   coercion) for each SOP class; its answers are reported\n"
            MIRA_CLI_SCU_HELP
            "  -h, --help       this help\n\n"
            "exit status: 0 every instance stored (warnings included), 1 some failed or nothing\n"
            "to send, 2 wrong usage, 3 no association could be established\n");
}

/* ------------------------------------------------------------------ the list of files */

typedef struct list {
    char **v;
    bool *in_folder; /* found by walking a folder (not DICOM there: skipped, not failed) */
    size_t n, cap;
} list;

static bool list_add(list *l, const char *path, bool in_folder)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = mira_realloc(l->v, cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        bool *f = mira_realloc(l->in_folder, cap * sizeof *f);
        if (!f)
            return false;
        l->in_folder = f;
        l->cap = cap;
    }
    char *c = mira_strdup(path);
    if (!c)
        return false;
    l->in_folder[l->n] = in_folder;
    l->v[l->n++] = c;
    return true;
}

static void list_free(list *l)
{
    for (size_t i = 0; i < l->n; i++)
        mira_free(l->v[i]);
    mira_free(l->v);
    mira_free(l->in_folder);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add a file, or the files under a folder (sorted, so the order is the same every time). */
static bool add_path(list *l, const char *path, bool in_folder, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "mira send: %s: no such file or folder\n", path);
        return false;
    }
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? list_add(l, path, in_folder) : true;
    if (depth > 64)
        return true;
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "mira send: %s: cannot read the folder\n", path);
        return false;
    }
    list sub = {0};
    struct dirent *de;
    bool ok = true;
    while (ok && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t n = strlen(path) + strlen(de->d_name) + 2;
        char *p = mira_malloc(n);
        ok = p != NULL;
        if (p) {
            snprintf(p, n, "%s/%s", path, de->d_name);
            ok = list_add(&sub, p, true);
            mira_free(p);
        }
    }
    closedir(d);
    if (sub.n)
        qsort(sub.v, sub.n, sizeof *sub.v, by_name);
    for (size_t i = 0; ok && i < sub.n; i++)
        ok = add_path(l, sub.v[i], true, depth + 1);
    list_free(&sub);
    return ok;
}

/* ------------------------------------------------------------------ the archive query */

typedef struct query_ctx {
    mira_archive *a;
    list *out;
    mira_level level;
    bool failed;
} query_ctx;

static const mira_tag unique_keys[] = {MIRA_TAG(0x0010, 0x0020), MIRA_TAG(0x0020, 0x000D),
                                       MIRA_TAG(0x0020, 0x000E), MIRA_TAG(0x0008, 0x0018)};

static bool add_instance(void *arg, const mira_dataset *match)
{
    query_ctx *q = arg;
    const mira_element *e = mira_dataset_get(match, unique_keys[MIRA_LEVEL_INSTANCE]);
    char *uid = e ? mira_element_get_string(e, 0, NULL) : NULL;
    mira_error *err = NULL;
    char *path = uid ? mira_archive_instance_path(q->a, uid, &err) : NULL;
    if (path) {
        q->failed |= !list_add(q->out, path, false);
        mira_free(path);
    } else if (uid) {
        fprintf(stderr, "mira send: %s: %s\n", uid, mira_error_get_message(err));
    }
    mira_error_free(err);
    mira_free(uid);
    return !q->failed;
}

/* Each entity matched at a higher level: its instances. */
static bool add_entity(void *arg, const mira_dataset *match)
{
    query_ctx *q = arg;
    const mira_element *e = mira_dataset_get(match, unique_keys[q->level]);
    char *key = e ? mira_element_get_string(e, 0, NULL) : NULL;
    if (!key || !*key) {
        mira_free(key);
        return true;
    }
    mira_dataset *ident = mira_dataset_new(NULL);
    mira_find_options fo;
    mira_find_options_init(&fo);
    mira_error *err = NULL;
    bool ok = ident &&
              mira_dataset_set_string(ident, unique_keys[q->level],
                                      q->level == MIRA_LEVEL_PATIENT ? MIRA_VR_LO : MIRA_VR_UI,
                                      key, NULL) &&
              mira_dataset_set_bytes(ident, unique_keys[MIRA_LEVEL_INSTANCE], MIRA_VR_UI, NULL, 0,
                                     NULL) &&
              mira_archive_find(q->a, MIRA_LEVEL_INSTANCE, ident, &fo, add_instance, q, &err);
    if (!ok) {
        fprintf(stderr, "mira send: instances of %s: %s\n", key,
                err ? mira_error_get_message(err) : "out of memory");
        q->failed = true;
    }
    mira_error_free(err);
    mira_dataset_free(ident);
    mira_free(key);
    return ok;
}

static bool query_archive(const mira_archive_cli *ao, mira_dataset *ident, mira_level level,
                          list *out)
{
    mira_archive *a = mira_cli_open_archive("send", ao, false);
    if (!a)
        return false;
    query_ctx q = {a, out, level, false};
    mira_error *err = NULL;
    bool ok = mira_dataset_get(ident, unique_keys[level]) ||
              mira_dataset_set_bytes(ident, unique_keys[level],
                                     level == MIRA_LEVEL_PATIENT ? MIRA_VR_LO : MIRA_VR_UI, NULL,
                                     0, NULL);
    mira_find_options fo;
    mira_find_options_init(&fo);
    ok = ok && mira_archive_find(a, level, ident, &fo,
                                 level == MIRA_LEVEL_INSTANCE ? add_instance : add_entity, &q,
                                 &err);
    if (!ok && err)
        mira_cli_report("send", err);
    else
        mira_error_free(err);
    mira_archive_close(a);
    return ok && !q.failed;
}

/* ------------------------------------------------------------------ sending */

typedef struct send_ctx {
    const list *files;
    bool json;
    uint64_t reported, sent, warnings, failed, skipped, transcoded;
    mira_cli_progress progress;
} send_ctx;

static bool from_folder(const send_ctx *c, const char *path)
{
    for (size_t i = 0; i < c->files->n; i++)
        if (c->files->v[i] == path || strcmp(c->files->v[i], path) == 0)
            return c->files->in_folder[i];
    return false;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void on_report(void *arg, const mira_dimse_send_report *r)
{
    send_ctx *c = arg;
    c->reported++;
    const char *outcome;
    if (!r->readable && from_folder(c, r->path)) {
        c->skipped++;
        outcome = "skipped";
    } else if (r->responded && mira_dimse_store_status_ok(r->status)) {
        bool warn = r->status != 0;
        c->sent++;
        c->warnings += warn;
        c->transcoded += r->transcoded;
        outcome = warn ? "warning" : "sent";
        if (warn && !c->json)
            fprintf(stderr, "mira send: %s: stored with warning 0x%04X%s%s\n", r->path,
                    r->status, *r->reason ? ": " : "", r->reason);
    } else {
        c->failed++;
        outcome = "failed";
        if (!c->json) {
            if (r->responded)
                fprintf(stderr, "mira send: %s: failed with status 0x%04X%s%s\n", r->path,
                        r->status, *r->reason ? ": " : "", r->reason);
            else
                fprintf(stderr, "mira send: %s: not sent: %s\n", r->path, r->reason);
        }
    }
    if (c->json) {
        printf("{\"path\":");
        json_str(r->path);
        printf(",\"sop_instance_uid\":\"%s\",\"sop_class_uid\":\"%s\",\"outcome\":\"%s\"",
               r->sop_instance_uid, r->sop_class_uid, outcome);
        if (r->responded)
            printf(",\"status\":%u", r->status);
        if (*r->transfer_syntax)
            printf(",\"transfer_syntax\":\"%s\",\"transcoded\":%s", r->transfer_syntax,
                   r->transcoded ? "true" : "false");
        if (*r->reason) {
            printf(",\"reason\":");
            json_str(r->reason);
        }
        printf("}\n");
        fflush(stdout);
    }
    mira_cli_progress_update(&c->progress, c->reported);
}

int mira_cli_send(int argc, char **argv)
{
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    mira_cli_scu scu = {.sub = "send"};
    /* the fields are the acceptor's to fill (PS3.4 B.3.1): sent as zeros */
    static const uint8_t storage_info[6];
    const mira_dimse_ext_neg storage_ext = {NULL, storage_info, sizeof storage_info};
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    bool json = false, progress = true, query = false;
    mira_level level = MIRA_LEVEL_INSTANCE;
    list files = {0};
    mira_dataset *ident = mira_dataset_new(NULL);
    int rc = MIRA_EXIT_USAGE;
    if (!ident)
        return MIRA_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = mira_cli_archive_option(argc, argv, &i, &ao);
        if (r < 0) {
            fprintf(stderr, "mira send: bad value for %s\n", a);
            goto done;
        }
        if (r > 0)
            continue;
        if ((r = mira_cli_scu_option(&scu, argc, argv, &i)) < 0)
            goto done;
        if (r > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if ((strcmp(a, "--aet") == 0 || strcmp(a, "--call") == 0) && i + 1 < argc &&
                   strlen(argv[i + 1]) <= 16 && *argv[i + 1]) {
            if (a[2] == 'a')
                o.calling_ae = argv[++i];
            else
                o.called_ae = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            o.timeout_seconds = atoi(argv[++i]);
        } else if (strcmp(a, "--query") == 0 && i + 1 < argc) {
            query = true;
            const char *k = argv[++i];
            if (*k && !mira_cli_add_key(ident, k)) {
                fprintf(stderr, "mira send: '%s' is not KEY=VALUE with a known keyword or tag\n",
                        k);
                goto done;
            }
        } else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
            if (!mira_level_from_name(argv[++i], &level)) {
                fprintf(stderr, "mira send: --level: PATIENT, STUDY, SERIES or IMAGE\n");
                goto done;
            }
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = false;
        } else if (strcmp(a, "--storage-negotiation") == 0) {
            o.ext = &storage_ext;
            o.next = 1;
            scu.ext_sent = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira send: unknown option or bad value: %s\n", a);
            usage(stderr);
            goto done;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else if (!add_path(&files, a, false, 0)) {
            rc = MIRA_EXIT_INPUT;
            goto done;
        }
    }
    char *end = NULL;
    long port = npos == 2 ? strtol(pos[1], &end, 10) : 0;
    if (npos != 2 || *end || port <= 0 || port > 65535 || (!query && files.n == 0 && !ao.dir)) {
        usage(stderr);
        goto done;
    }
    if (!mira_cli_scu_finish(&scu, &o))
        goto done;
    rc = MIRA_EXIT_INPUT;
    if ((query || ao.dir) && !query_archive(&ao, ident, level, &files))
        goto done;
    if (files.n == 0) {
        fprintf(stderr, "mira send: nothing to send\n");
        goto done;
    }
    send_ctx c;
    memset(&c, 0, sizeof c);
    c.files = &files;
    c.json = json;
    mira_cli_progress_init(&c.progress, "send", files.n, progress);
    mira_error *err = NULL;
    bool ok = mira_dimse_send(pos[0], (int)port, &o, (const char *const *)files.v, files.n,
                              on_report, &c, &err);
    mira_cli_progress_done(&c.progress);
    if (!ok) {
        mira_cli_report("send", err);
        rc = EXIT_NO_ASSOCIATION;
        goto done;
    }
    double secs = mira_cli_progress_seconds(&c.progress);
    if (json)
        printf("{\"summary\":{\"sent\":%llu,\"warnings\":%llu,\"failed\":%llu,\"skipped\":%llu,"
               "\"transcoded\":%llu,\"seconds\":%.3f}}\n",
               (unsigned long long)c.sent, (unsigned long long)c.warnings,
               (unsigned long long)c.failed, (unsigned long long)c.skipped,
               (unsigned long long)c.transcoded, secs);
    else
        printf("sent %llu (%llu with warnings, %llu transcoded), failed %llu, skipped %llu not "
               "DICOM, to %s:%ld in %.1f s\n",
               (unsigned long long)c.sent, (unsigned long long)c.warnings,
               (unsigned long long)c.transcoded, (unsigned long long)c.failed,
               (unsigned long long)c.skipped, pos[0], port, secs);
    rc = c.failed || c.sent == 0 ? MIRA_EXIT_INPUT : MIRA_EXIT_OK;
done:
    mira_cli_scu_free(&scu);
    list_free(&files);
    mira_dataset_free(ident);
    return rc;
}
