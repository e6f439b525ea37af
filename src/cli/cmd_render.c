/* mira render: one frame through the LUT pipeline to an 8-bit PNG. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira render FILE -o OUT.png [--frame N] [window options] [--json]\n\n"
            "Render one frame of a DICOM image for display as an 8-bit PNG: the Modality LUT\n"
            "(Rescale Slope/Intercept or Modality LUT Sequence), then the VOI transform (a\n"
            "window or a VOI LUT), then presentation (MONOCHROME1 and an INVERSE Presentation\n"
            "LUT Shape are inverted). Colour images are converted to RGB, PALETTE COLOR\n"
            "through its palette.\n\n"
            "options:\n"
            "  -o, --output OUT.png     the PNG to write (written atomically)\n"
            "  --frame N                the frame to render (1 is the first, the default)\n"
            "  --window C,W             window centre and width in modality units (e.g. HU)\n"
            "  --function F             linear (default), linear-exact or sigmoid, with --window\n"
            "  --file-window N          the file's N-th window (Window Center/Width)\n"
            "  --voi-lut N              the file's N-th VOI LUT\n"
            "  --min-max                the window that spans the frame's values\n"
            "  --full-range             the whole range of possible values (no VOI)\n"
            "  --json                   describe what was written as JSON on stdout\n"
            "  -h, --help               this help\n\n"
            "Without a window option: the file's first window, else its first VOI LUT, else\n"
            "the frame's min-max.\n\n"
            "exit status: 0 written, 1 unreadable input or no such window, 2 wrong usage\n");
}

static bool parse_uint(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_window(const char *s, double *c, double *w)
{
    char *end;
    errno = 0;
    *c = strtod(s, &end);
    if (end == s || *end != ',' || errno)
        return false;
    const char *t = end + 1;
    *w = strtod(t, &end);
    return end != t && !*end && !errno && *w > 0;
}

int mira_cli_render(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    unsigned long frame = 1, n;
    bool json = false;
    int window_options = 0;
    mira_render_options opt;
    mira_render_options_init(&opt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--frame") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], &frame) || frame == 0) {
                fprintf(stderr, "mira render: --frame takes a frame number from 1\n");
                return MIRA_EXIT_USAGE;
            }
        } else if (strcmp(a, "--window") == 0 && i + 1 < argc) {
            if (!parse_window(argv[++i], &opt.center, &opt.width)) {
                fprintf(stderr, "mira render: --window takes CENTER,WIDTH with WIDTH > 0\n");
                return MIRA_EXIT_USAGE;
            }
            opt.window = MIRA_WINDOW_EXPLICIT;
            window_options++;
        } else if (strcmp(a, "--function") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "linear") == 0)
                opt.function = MIRA_VOI_LINEAR;
            else if (strcmp(f, "linear-exact") == 0)
                opt.function = MIRA_VOI_LINEAR_EXACT;
            else if (strcmp(f, "sigmoid") == 0)
                opt.function = MIRA_VOI_SIGMOID;
            else {
                fprintf(stderr, "mira render: --function is linear, linear-exact or sigmoid\n");
                return MIRA_EXIT_USAGE;
            }
        } else if ((strcmp(a, "--file-window") == 0 || strcmp(a, "--voi-lut") == 0) &&
                   i + 1 < argc) {
            if (!parse_uint(argv[++i], &n) || n == 0 || n > 65535) {
                fprintf(stderr, "mira render: %s takes a number from 1\n", a);
                return MIRA_EXIT_USAGE;
            }
            opt.window = a[2] == 'f' ? MIRA_WINDOW_FILE : MIRA_WINDOW_VOI_LUT;
            opt.index = (unsigned)n - 1;
            window_options++;
        } else if (strcmp(a, "--min-max") == 0) {
            opt.window = MIRA_WINDOW_MINMAX;
            window_options++;
        } else if (strcmp(a, "--full-range") == 0) {
            opt.window = MIRA_WINDOW_NONE;
            window_options++;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira render: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mira render: one input file only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "mira render: need an input FILE and -o OUT.png\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (window_options > 1) {
        fprintf(stderr, "mira render: choose one of --window, --file-window, --voi-lut, "
                        "--min-max and --full-range\n");
        return MIRA_EXIT_USAGE;
    }
    mira_error *err = NULL;
    mira_file *f = mira_file_read(in, NULL, &err);
    if (!f) {
        mira_cli_report("render", err);
        return MIRA_EXIT_INPUT;
    }
    for (size_t k = 0; k < mira_file_warning_count(f); k++)
        fprintf(stderr, "mira render: warning: %s: %s\n", in, mira_file_warning(f, k));
    int rc = MIRA_EXIT_INPUT;
    mira_rendered r = {0};
    mira_pixels *px = mira_pixels_open_file(f, &err);
    if (!px)
        goto fail;
    if (frame > mira_pixels_decoded(px)->frames) {
        fprintf(stderr, "mira render: %s has %u frame%s, not %lu\n", in,
                mira_pixels_decoded(px)->frames, mira_pixels_decoded(px)->frames == 1 ? "" : "s",
                frame);
        rc = MIRA_EXIT_USAGE;
        goto done;
    }
    opt.frame = (uint32_t)frame - 1;
    if (!mira_pixels_render(px, &opt, &r, &err) || !mira_png_write(out, &r, &err))
        goto fail;
    if (json) {
        mira_json_writer *w = mira_json_writer_new(true);
        mira_json_begin_object(w);
        mira_json_key(w, "output");
        mira_json_cstring(w, out);
        mira_json_key(w, "frame");
        mira_json_uint(w, frame);
        mira_json_key(w, "rows");
        mira_json_uint(w, r.rows);
        mira_json_key(w, "columns");
        mira_json_uint(w, r.columns);
        mira_json_key(w, "channels");
        mira_json_int(w, r.channels);
        mira_json_end_object(w);
        size_t len;
        char *text = mira_json_writer_finish(w, &len, NULL);
        if (text)
            printf("%s\n", text);
        mira_free(text);
        mira_json_writer_free(w);
    }
    rc = MIRA_EXIT_OK;
    goto done;
fail:
    mira_error_prefix(&err, "%s: ", in);
    mira_cli_report("render", err);
done:
    mira_rendered_free(&r);
    mira_pixels_free(px);
    mira_file_free(f);
    return rc;
}
