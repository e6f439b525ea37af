/* mira cat: the stored bytes of an instance, by SOP Instance UID. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mira cat [options] SOP_INSTANCE_UID [-o FILE]\n"
                 "       mira cat [options] --path SOP_INSTANCE_UID...\n\n"
                 "Write an instance exactly as the archive stores it (a Part 10 file).\n\n"
                 "options:\n" MIRA_ARCHIVE_CLI_HELP
                 "  -o, --output FILE  write to FILE (default: stdout)\n"
                 "  --path             print the blob's path instead of its bytes; with several\n"
                 "                     UIDs one path a line, in order, stopping at the first\n"
                 "                     UID not found\n"
                 "  -h, --help         this help\n\n"
                 "exit status: 0 written, 1 no such instance or unreadable, 2 wrong usage\n");
}

int mira_cli_cat(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    const char *out = NULL;
    const char **uids = calloc((size_t)argc, sizeof *uids);
    size_t nuids = 0;
    bool path_only = false;
    if (!uids) {
        fprintf(stderr, "mira cat: out of memory\n");
        return MIRA_EXIT_INPUT;
    }
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira cat: %s needs a value\n", argv[i]);
            free(uids);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            free(uids);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--path") == 0) {
            path_only = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "mira cat: unknown option '%s'\n", a);
            usage(stderr);
            free(uids);
            return MIRA_EXIT_USAGE;
        } else {
            uids[nuids++] = a;
        }
    }
    if (!nuids || (nuids > 1 && !path_only)) {
        if (nuids > 1)
            fprintf(stderr, "mira cat: one SOP Instance UID only (several with --path)\n");
        else
            usage(stderr);
        free(uids);
        return MIRA_EXIT_USAGE;
    }
    mira_archive *a = mira_cli_open_archive("cat", &opts, false);
    if (!a) {
        free(uids);
        return MIRA_EXIT_INPUT;
    }
    mira_error *err = NULL;
    int rc = MIRA_EXIT_OK;
    char *path = NULL;
    for (size_t k = 0; path_only && k < nuids; k++) {
        path = mira_archive_instance_path(a, uids[k], &err);
        if (!path)
            break;
        printf("%s\n", path);
        mira_free(path);
        path = NULL;
    }
    if (!path_only)
        path = mira_archive_instance_path(a, uids[0], &err);
    mira_archive_close(a);
    free(uids);
    if (err) {
        mira_cli_report("cat", err);
        return MIRA_EXIT_INPUT;
    }
    if (!path_only) {
        FILE *in = fopen(path, "rb");
        FILE *o = out ? fopen(out, "wb") : stdout;
        if (!in || !o) {
            fprintf(stderr, "mira cat: %s: %s\n", !in ? path : out, strerror(errno));
            rc = MIRA_EXIT_INPUT;
        } else {
            char buf[65536];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, in)) > 0)
                if (fwrite(buf, 1, n, o) != n) {
                    rc = MIRA_EXIT_INPUT;
                    break;
                }
            if (ferror(in) || fflush(o) != 0)
                rc = MIRA_EXIT_INPUT;
        }
        if (in)
            fclose(in);
        if (o && o != stdout)
            fclose(o);
    }
    mira_free(path);
    return rc;
}
