/* mira pixels: decoded stored pixel values of a DICOM image to a raw file. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira pixels FILE -o OUT.raw [--frame N] [--threads N] [--json]\n\n"
            "Decode the pixel data of a DICOM image (any transfer syntax mira decodes) and write\n"
            "the stored values: row by row, samples of a pixel interleaved, little-endian, one\n"
            "byte per sample for 1- and 8-bit data, else Bits Allocated / 8 bytes. Bits above\n"
            "Bits Stored are cleared and signed values sign-extended; 1-bit data comes out as\n"
            "one byte (0 or 1) per pixel; YBR_FULL_422 is expanded to YBR_FULL, and colour JPEG\n"
            "in YCbCr comes out as RGB. No Modality or VOI LUT is applied (see mira render).\n\n"
            "options:\n"
            "  -o, --output OUT   the raw file to write ('-' for stdout)\n"
            "  --frame N          only frame N (1 is the first); default every frame in order\n"
            "  --threads N        frames decoded in parallel (default: one per core)\n"
            "  --json             describe the decoded pixels as JSON on stdout\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 written, 1 unreadable or undecodable input, 2 wrong usage\n");
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

static void print_json(const mira_pixels *px, const char *out, uint64_t written, uint32_t first,
                       uint32_t count)
{
    const mira_pixel_desc *s = mira_pixels_stored(px), *d = mira_pixels_decoded(px);
    mira_json_writer *w = mira_json_writer_new(true);
    mira_json_begin_object(w);
    mira_json_key(w, "transfer_syntax");
    mira_json_cstring(w, mira_pixels_transfer_syntax(px));
    mira_json_key(w, "rows");
    mira_json_uint(w, d->rows);
    mira_json_key(w, "columns");
    mira_json_uint(w, d->columns);
    mira_json_key(w, "frames");
    mira_json_uint(w, d->frames);
    mira_json_key(w, "samples_per_pixel");
    mira_json_uint(w, d->samples);
    mira_json_key(w, "bits_allocated");
    mira_json_uint(w, d->bits_allocated);
    mira_json_key(w, "bits_stored");
    mira_json_uint(w, d->bits_stored);
    mira_json_key(w, "high_bit");
    mira_json_uint(w, d->high_bit);
    mira_json_key(w, "pixel_representation");
    mira_json_uint(w, d->is_signed ? 1 : 0);
    mira_json_key(w, "float");
    mira_json_bool(w, d->is_float);
    mira_json_key(w, "photometric_interpretation");
    mira_json_cstring(w, mira_photometric_name(d->photometric));
    mira_json_key(w, "stored_photometric_interpretation");
    mira_json_cstring(w, mira_photometric_name(s->photometric));
    mira_json_key(w, "stored_planar_configuration");
    mira_json_uint(w, s->planar);
    mira_json_key(w, "bytes_per_sample");
    mira_json_uint(w, mira_pixel_sample_bytes(d));
    mira_json_key(w, "frame_bytes");
    mira_json_uint(w, mira_pixel_frame_bytes(d));
    mira_json_key(w, "first_frame");
    mira_json_uint(w, first + 1);
    mira_json_key(w, "frames_written");
    mira_json_uint(w, count);
    mira_json_key(w, "output");
    mira_json_cstring(w, out);
    mira_json_key(w, "bytes_written");
    mira_json_uint(w, written);
    mira_json_end_object(w);
    size_t len;
    char *text = mira_json_writer_finish(w, &len, NULL);
    if (text) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        mira_free(text);
    }
    mira_json_writer_free(w);
}

int mira_cli_pixels(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    unsigned long frame = 0, threads = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--frame") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], &frame) || frame == 0) {
                fprintf(stderr, "mira pixels: --frame takes a frame number from 1\n");
                return MIRA_EXIT_USAGE;
            }
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], &threads) || threads > 1024) {
                fprintf(stderr, "mira pixels: --threads takes a number\n");
                return MIRA_EXIT_USAGE;
            }
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira pixels: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mira pixels: one input file only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "mira pixels: need an input FILE and -o OUT\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (json && strcmp(out, "-") == 0) {
        fprintf(stderr, "mira pixels: --json prints to stdout, so -o - cannot be used with it\n");
        return MIRA_EXIT_USAGE;
    }
    mira_error *err = NULL;
    mira_file *f = mira_file_read(in, NULL, &err);
    if (!f) {
        mira_cli_report("pixels", err);
        return MIRA_EXIT_INPUT;
    }
    for (size_t k = 0; k < mira_file_warning_count(f); k++)
        fprintf(stderr, "mira pixels: warning: %s: %s\n", in, mira_file_warning(f, k));
    mira_pixels *px = mira_pixels_open_file(f, &err);
    if (!px) {
        mira_error_prefix(&err, "%s: ", in);
        mira_cli_report("pixels", err);
        mira_file_free(f);
        return MIRA_EXIT_INPUT;
    }
    const mira_pixel_desc *d = mira_pixels_decoded(px);
    if (frame > d->frames) {
        fprintf(stderr, "mira pixels: %s has %u frame%s, not %lu\n", in, d->frames,
                d->frames == 1 ? "" : "s", frame);
        mira_pixels_free(px);
        mira_file_free(f);
        return MIRA_EXIT_USAGE;
    }
    size_t fb = mira_pixel_frame_bytes(d);
    uint32_t first = frame ? (uint32_t)frame - 1 : 0;
    uint32_t count = frame ? 1 : d->frames;
    int rc = MIRA_EXIT_INPUT;
    uint8_t *buf = NULL;
    FILE *fp = NULL;
    if ((uint64_t)fb * count > SIZE_MAX / 2 || !(buf = mira_malloc(fb * count))) {
        fprintf(stderr, "mira pixels: %s: %u frames of %zu bytes do not fit in memory\n", in,
                count, fb);
        goto done;
    }
    bool ok = frame ? mira_pixels_decode_frame(px, first, buf, fb, &err)
                    : mira_pixels_decode_all(px, buf, fb * count, (int)threads, &err);
    if (!ok) {
        mira_error_prefix(&err, "%s: ", in);
        mira_cli_report("pixels", err);
        goto done;
    }
    fp = strcmp(out, "-") == 0 ? stdout : fopen(out, "wb");
    if (!fp) {
        fprintf(stderr, "mira pixels: cannot write %s: %s\n", out, strerror(errno));
        goto done;
    }
    if (fwrite(buf, 1, fb * count, fp) != fb * count || fflush(fp) != 0) {
        fprintf(stderr, "mira pixels: writing %s: %s\n", out, strerror(errno));
        goto done;
    }
    if (json)
        print_json(px, out, (uint64_t)fb * count, first, count);
    rc = MIRA_EXIT_OK;
done:
    if (fp && fp != stdout && fclose(fp) != 0 && rc == MIRA_EXIT_OK) {
        fprintf(stderr, "mira pixels: writing %s: %s\n", out, strerror(errno));
        rc = MIRA_EXIT_INPUT;
    }
    mira_free(buf);
    mira_pixels_free(px);
    mira_file_free(f);
    return rc;
}
