/* mira json: DICOM files as the DICOM JSON model (PS3.18 F.2), and JSON back to DICOM files. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: mira json [--no-pixels] [--pretty] [--bulk-uri URI [--bulk-threshold N]] FILE\n"
        "       mira json --to-dicom IN.json -o OUT.dcm [--transfer-syntax UID]\n\n"
        "Print the data set of a DICOM file (not its file meta information) as the DICOM\n"
        "JSON model, as pydicom's Dataset.to_json_dict() does; or read one instance of the\n"
        "model (IN.json, '-' for standard input) and write it as a Part 10 file.\n\n"
        "options:\n"
        "  --no-pixels               leave out the pixel data: (7FE0,0010), (7FE0,0008),\n"
        "                            (7FE0,0009), at every level\n"
        "  --pretty                  indent the JSON by two spaces\n"
        "  --bulk-uri URI            binary values longer than the threshold become\n"
        "                            \"BulkDataURI\": \"URI/<tag>\" (in items\n"
        "                            \"URI/<seq>/<item>/<tag>\") instead of \"InlineBinary\"\n"
        "  --bulk-threshold N        that threshold in bytes (default 1024)\n"
        "  --to-dicom                convert JSON to DICOM (needs -o)\n"
        "  -o, --output OUT          the file to write (written atomically)\n"
        "  -t, --transfer-syntax TS  of the written file: a UID, or implicit, explicit, big,\n"
        "                            deflated (default explicit; encapsulated pixel data\n"
        "                            needs the UID of its compression)\n"
        "  -h, --help                this help\n\n"
        "Text in the JSON is UTF-8: a data set with non-ASCII text is written with Specific\n"
        "Character Set ISO_IR 192. BulkDataURI values other than data: URIs cannot be fetched.\n\n"
        "exit status: 0 success, 1 unreadable or invalid input, 2 wrong usage\n");
}

/* The whole of a file ("-": standard input) into memory; NULL with a message on failure. */
static char *slurp(const char *path, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mira json: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = mira_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *b = cap > SIZE_MAX / 2 ? NULL : mira_realloc(buf, cap * 2);
        if (!b) {
            mira_free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    bool bad = !buf || ferror(f);
    int saved = errno;
    if (!is_stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "mira json: %s: %s\n", path, buf ? strerror(saved) : "out of memory");
        mira_free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int to_dicom(const char *in, const char *out, const char *ts)
{
    size_t len;
    char *text = slurp(in, &len);
    if (!text)
        return MIRA_EXIT_INPUT;
    mira_error *err = NULL;
    mira_dataset *ds = mira_dataset_from_json(text, len, &err);
    mira_free(text);
    if (!ds) {
        mira_error_prefix(&err, "%s: ", in);
        mira_cli_report("json", err);
        return MIRA_EXIT_INPUT;
    }
    const mira_element *px = mira_dataset_get(ds, MIRA_TAG_PIXEL_DATA);
    if (!ts && px && mira_element_is_encapsulated(px)) {
        fprintf(stderr,
                "mira json: %s: the pixel data is encapsulated (compressed): give the transfer "
                "syntax of its compression with --transfer-syntax UID\n",
                in);
        mira_dataset_free(ds);
        return MIRA_EXIT_USAGE;
    }
    mira_file *f = mira_file_from_dataset(ds, ts ? ts : MIRA_TS_EXPLICIT_LE, &err);
    if (!f) {
        mira_dataset_free(ds);
        mira_error_prefix(&err, "%s: ", in);
        mira_cli_report("json", err);
        return MIRA_EXIT_INPUT;
    }
    bool ok = mira_file_write(f, out, NULL, &err);
    mira_file_free(f);
    if (!ok) {
        mira_error_prefix(&err, "writing %s: ", out);
        mira_cli_report("json", err);
        return MIRA_EXIT_INPUT;
    }
    return MIRA_EXIT_OK;
}

static int to_json(const char *in, const mira_json_options *opt)
{
    mira_error *err = NULL;
    mira_file *f = mira_file_read(in, NULL, &err);
    if (!f) {
        mira_cli_report("json", err);
        return MIRA_EXIT_INPUT;
    }
    for (size_t k = 0; k < mira_file_warning_count(f); k++)
        fprintf(stderr, "mira json: %s: warning: %s\n", in, mira_file_warning(f, k));
    char *json = mira_dataset_to_json(mira_file_dataset(f), opt, &err);
    mira_file_free(f);
    if (!json) {
        mira_error_prefix(&err, "%s: ", in);
        mira_cli_report("json", err);
        return MIRA_EXIT_INPUT;
    }
    fputs(json, stdout);
    fputc('\n', stdout);
    mira_free(json);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mira json: writing the output: %s\n", strerror(errno));
        return MIRA_EXIT_INPUT;
    }
    return MIRA_EXIT_OK;
}

int mira_cli_json(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *ts = NULL;
    bool to_dicom_mode = false;
    mira_json_options opt = {0};
    opt.bulk_threshold = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_arg = i + 1 < argc;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--no-pixels") == 0) {
            opt.no_pixels = true;
        } else if (strcmp(a, "--pretty") == 0) {
            opt.pretty = true;
        } else if (strcmp(a, "--to-dicom") == 0) {
            to_dicom_mode = true;
        } else if (strcmp(a, "--bulk-uri") == 0 && has_arg) {
            opt.bulk_uri = argv[++i];
        } else if (strcmp(a, "--bulk-threshold") == 0 && has_arg) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(argv[++i], &end, 10);
            if (errno || *end || !*argv[i] || argv[i][0] == '-') {
                fprintf(stderr, "mira json: --bulk-threshold wants a number of bytes, not '%s'\n",
                        argv[i]);
                return MIRA_EXIT_USAGE;
            }
            opt.bulk_threshold = (size_t)n;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has_arg) {
            out = argv[++i];
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--transfer-syntax") == 0) && has_arg) {
            ts = mira_cli_ts_by_name(argv[++i]);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira json: unknown option '%s' (or it lacks its argument)\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mira json: one input file only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!in) {
        fprintf(stderr, "mira json: need an input file\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (to_dicom_mode) {
        if (!out) {
            fprintf(stderr, "mira json: --to-dicom needs -o OUT.dcm\n");
            return MIRA_EXIT_USAGE;
        }
        if (opt.no_pixels || opt.pretty || opt.bulk_uri) {
            fprintf(stderr, "mira json: --no-pixels, --pretty and --bulk-uri are for DICOM to "
                            "JSON, not --to-dicom\n");
            return MIRA_EXIT_USAGE;
        }
        if (ts && !mira_ts_lookup(ts, NULL)) {
            fprintf(stderr, "mira json: '%s' is not a transfer syntax mira knows\n", ts);
            return MIRA_EXIT_USAGE;
        }
        return to_dicom(in, out, ts);
    }
    if (out || ts) {
        fprintf(stderr, "mira json: -o and --transfer-syntax go with --to-dicom\n");
        return MIRA_EXIT_USAGE;
    }
    return to_json(in, &opt);
}
