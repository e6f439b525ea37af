/* mira export: instances matching a query copied to a folder, with a DICOMDIR if asked. */
#include "cli.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira export [options] -o DIR [KEY=VALUE]...\n\n"
            "Copy the stored instances that match the query (keys as for mira find, of any\n"
            "level; no key: everything) into DIR, as they are stored: DIR/<Patient ID>/<Study\n"
            "UID>/<Series UID>/<SOP Instance UID>.dcm, or with --dicomdir as media: files named\n"
            "DICOM/Pnnnnnnn/Snnnnnnn/Ennnnnnn/Innnnnnn and DIR/DICOMDIR indexing them.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  -o, --output DIR   the folder to write (created)\n"
            "  --dicomdir         write a DICOMDIR and DICOM file IDs\n"
            "  --json             one JSON line per instance, then a summary\n"
            "  --no-progress      no progress bar\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 exported, 1 nothing matched or a copy failed, 2 wrong usage\n");
}

typedef struct ctx {
    bool json;
    uint64_t done, failed;
    mira_cli_progress progress;
} ctx;

static void one(void *arg, const char *sop, const char *path, const mira_error *err)
{
    ctx *c = arg;
    c->done++;
    if (err) {
        c->failed++;
        fprintf(stderr, "mira export: %s: %s\n", sop, mira_error_get_message(err));
    }
    if (c->json)
        printf("{\"sop_instance_uid\":\"%s\",\"path\":\"%s\",\"ok\":%s}\n", sop, path,
               err ? "false" : "true");
    mira_cli_progress_update(&c->progress, c->done);
}

int mira_cli_export(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    const char *out = NULL;
    bool dicomdir = false, json = false, progress = true;
    mira_dataset *ident = mira_dataset_new(NULL);
    int rc = MIRA_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira export: %s needs a value\n", argv[i]);
            goto done;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--dicomdir") == 0) {
            dicomdir = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = false;
        } else if (a[0] == '-') {
            fprintf(stderr, "mira export: unknown option '%s'\n", a);
            usage(stderr);
            goto done;
        } else if (!strchr(a, '=') || !mira_cli_add_key(ident, a)) {
            fprintf(stderr, "mira export: '%s' is not KEY=VALUE with a known keyword or tag\n", a);
            goto done;
        }
    }
    if (!out) {
        fprintf(stderr, "mira export: -o DIR is needed\n");
        usage(stderr);
        goto done;
    }
    mira_archive *ar = mira_cli_open_archive("export", &opts, false);
    if (!ar) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    mira_archive_stats st;
    ctx c = {json, 0, 0, {0}};
    mira_cli_progress_init(&c.progress, "export",
                           mira_archive_get_stats(ar, &st, NULL) ? st.instances : 0, progress);
    uint64_t n = 0;
    mira_error *err = NULL;
    bool ok = mira_archive_export(ar, ident, out, dicomdir, one, &c, &n, &err);
    mira_cli_progress_done(&c.progress);
    mira_archive_close(ar);
    if (json)
        printf("{\"summary\":{\"exported\":%llu,\"failed\":%llu,\"dicomdir\":%s}}\n",
               (unsigned long long)n, (unsigned long long)c.failed, dicomdir ? "true" : "false");
    else if (ok)
        printf("%llu instances exported to %s%s\n", (unsigned long long)n, out,
               dicomdir ? " (with a DICOMDIR)" : "");
    if (!ok)
        mira_cli_report("export", err);
    rc = ok && !c.failed ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
done:
    mira_dataset_free(ident);
    return rc;
}
