/* mira cat: the stored bytes of an instance, by SOP Instance UID. */
#include "cli.h"

#include <errno.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mira cat [options] SOP_INSTANCE_UID [-o FILE]\n\n"
                 "Write an instance exactly as the archive stores it (a Part 10 file).\n\n"
                 "options:\n" MIRA_ARCHIVE_CLI_HELP
                 "  -o, --output FILE  write to FILE (default: stdout)\n"
                 "  --path             print the blob's path instead of its bytes\n"
                 "  -h, --help         this help\n\n"
                 "exit status: 0 written, 1 no such instance or unreadable, 2 wrong usage\n");
}

int mira_cli_cat(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    const char *uid = NULL, *out = NULL;
    bool path_only = false;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira cat: %s needs a value\n", argv[i]);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--path") == 0) {
            path_only = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "mira cat: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (!uid) {
            uid = a;
        } else {
            fprintf(stderr, "mira cat: one SOP Instance UID only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!uid) {
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    mira_archive *a = mira_cli_open_archive("cat", &opts, false);
    if (!a)
        return MIRA_EXIT_INPUT;
    mira_error *err = NULL;
    char *path = mira_archive_instance_path(a, uid, &err);
    mira_archive_close(a);
    if (!path) {
        mira_cli_report("cat", err);
        return MIRA_EXIT_INPUT;
    }
    int rc = MIRA_EXIT_OK;
    if (path_only) {
        printf("%s\n", path);
    } else {
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
