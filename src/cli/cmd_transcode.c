/* mira transcode: rewrite a DICOM file in another transfer syntax, re-encoding its pixels. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira transcode FILE -o OUT [-t UID|NAME] [--threads N]\n\n"
            "Read a DICOM file and write it again as Part 10, in its own transfer syntax or in\n"
            "another one, decoding and re-encoding the pixel data when needed. Targets:\n"
            "  implicit   Implicit VR Little Endian      explicit  Explicit VR Little Endian\n"
            "  big        Explicit VR Big Endian         deflated  Deflated Explicit VR LE\n"
            "  rle        RLE Lossless                   jpegls    JPEG-LS Lossless\n"
            "  j2k        JPEG 2000 (Lossless Only)\n"
            "Compressed sources of every syntax mira decodes can be turned into any of these.\n\n"
            "options:\n"
            "  -o, --output OUT          the file to write (written atomically)\n"
            "  -t, --transfer-syntax TS  a UID or one of the names above\n"
            "  --threads N               frames coded in parallel (default: one per core)\n"
            "  -h, --help                this help\n\n"
            "exit status: 0 written, 1 unreadable input or unsupported conversion, 2 wrong usage\n");
}

int mira_cli_transcode(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *ts = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--transfer-syntax") == 0) &&
                   i + 1 < argc) {
            ts = mira_cli_ts_by_name(argv[++i]);
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 0 || threads > 1024) {
                fprintf(stderr, "mira transcode: --threads takes a number\n");
                return MIRA_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira transcode: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mira transcode: one input file only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "mira transcode: need an input FILE and -o OUT\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (ts && !mira_ts_lookup(ts, NULL)) {
        fprintf(stderr, "mira transcode: '%s' is not a transfer syntax mira knows\n", ts);
        return MIRA_EXIT_USAGE;
    }
    mira_error *err = NULL;
    mira_file *f = mira_file_read(in, NULL, &err);
    if (!f) {
        mira_cli_report("transcode", err);
        return MIRA_EXIT_INPUT;
    }
    for (size_t k = 0; k < mira_file_warning_count(f); k++)
        fprintf(stderr, "mira transcode: %s: warning: %s\n", in, mira_file_warning(f, k));
    bool ok = (!ts || mira_file_transcode(f, ts, threads, &err)) &&
              mira_file_write(f, out, ts, &err);
    mira_file_free(f);
    if (!ok) {
        mira_cli_report("transcode", err);
        return MIRA_EXIT_INPUT;
    }
    return MIRA_EXIT_OK;
}
