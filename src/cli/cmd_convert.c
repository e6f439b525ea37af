/* mira convert: a series (or one multi-frame object) to a NIfTI volume. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mira convert [options] INPUT... -o OUT.nii[.gz]\n\n"
                 "Build a volume from one DICOM series and write it as NIfTI. INPUT is a folder\n"
                 "(searched recursively), the files of one series, or one multi-frame object.\n"
                 "Slices are sorted along the slice normal by Image Position (Patient); the\n"
                 "spacing between slices comes from the positions. Values are modality values\n"
                 "(Rescale Slope/Intercept applied: HU for CT), stored as integers when they are\n"
                 "integers, else as 32-bit floats. Geometry is converted from DICOM's LPS to\n"
                 "NIfTI's RAS; sform and qform are both set. Gantry tilt, uneven spacing and\n"
                 "missing slices are reported as warnings (the volume is not resampled).\n\n"
                 "options:\n"
                 "  -o, --output FILE  the NIfTI file to write (.nii, or .nii.gz to compress)\n"
                 "  --series UID       the series to convert when the input holds several\n"
                 "  --stored           keep the stored values (no Modality LUT)\n"
                 "  --nifti2           write NIfTI-2 (else NIfTI-1 unless a dimension needs 2)\n"
                 "  --threads N        decoding threads (default: one per core)\n"
                 "  --json             print a report (slices, spacing, warnings, dimensions,\n"
                 "                     affine) as JSON on stdout\n"
                 "  -h, --help         this help\n\n"
                 "Warnings go to stderr.\n"
                 "exit status: 0 written, 1 a problem with the input, 2 wrong usage\n");
}

static void json_doubles(mira_json_writer *w, const char *key, const double *v, size_t n)
{
    if (key)
        mira_json_key(w, key);
    mira_json_begin_array(w);
    for (size_t i = 0; i < n; i++)
        mira_json_double(w, v[i] + 0.0); /* no "-0" */
    mira_json_end_array(w);
}

/* The 4x4 affine of the image, LPS or (ras) RAS as NIfTI stores it. */
static void json_affine(mira_json_writer *w, const char *key, const mira_image *img, bool ras)
{
    mira_json_key(w, key);
    mira_json_begin_array(w);
    for (int r = 0; r < 4; r++) {
        double row[4] = {0, 0, 0, r == 3 ? 1 : 0};
        if (r < 3) {
            double sign = ras && r < 2 ? -1 : 1;
            for (int a = 0; a < 3; a++)
                row[a] = sign * img->direction[3 * r + a] * img->spacing[a];
            row[3] = sign * img->origin[r];
        }
        json_doubles(w, NULL, row, 4);
    }
    mira_json_end_array(w);
}

static void json_report(mira_json_writer *w, const mira_series_report *rep)
{
    mira_json_key(w, "slices");
    mira_json_uint(w, rep->slices);
    mira_json_key(w, "multiframe");
    mira_json_bool(w, rep->multiframe);
    mira_json_key(w, "tilted");
    mira_json_bool(w, rep->tilted);
    mira_json_key(w, "tilt_degrees");
    mira_json_double(w, rep->tilt_degrees);
    mira_json_key(w, "uneven");
    mira_json_bool(w, rep->uneven);
    mira_json_key(w, "missing_slices");
    mira_json_bool(w, rep->missing_slices);
    mira_json_key(w, "mixed_orientation");
    mira_json_bool(w, rep->mixed_orientation);
    mira_json_key(w, "min_spacing");
    mira_json_double(w, rep->min_spacing);
    mira_json_key(w, "max_spacing");
    mira_json_double(w, rep->max_spacing);
    mira_json_key(w, "warnings");
    mira_json_begin_array(w);
    for (size_t i = 0; i < rep->warning_count; i++)
        mira_json_cstring(w, rep->warnings[i]);
    mira_json_end_array(w);
}

static bool print_json(mira_json_writer *w)
{
    mira_error *err = NULL;
    size_t len;
    char *doc = mira_json_writer_finish(w, &len, &err);
    if (!doc) {
        mira_cli_report("convert", err);
        return false;
    }
    fwrite(doc, 1, len, stdout);
    fputc('\n', stdout);
    mira_free(doc);
    return true;
}

/* The files among paths that belong to series uid (headers only). */
static const char **filter_series(char **paths, size_t n, const char *uid, size_t *kept)
{
    const char **out = mira_calloc(n ? n : 1, sizeof *out);
    if (!out)
        return NULL;
    mira_read_options ro;
    mira_read_options_init(&ro);
    ro.stop_before_pixels = true;
    *kept = 0;
    for (size_t i = 0; i < n; i++) {
        mira_file *f = mira_file_read(paths[i], &ro, NULL);
        if (!f)
            continue;
        mira_element *e = mira_dataset_get(mira_file_dataset(f), MIRA_TAG(0x0020, 0x000E));
        char *s = e ? mira_element_get_string(e, 0, NULL) : NULL;
        if (s && strcmp(s, uid) == 0)
            out[(*kept)++] = paths[i];
        mira_free(s);
        mira_file_free(f);
    }
    return out;
}

int mira_cli_convert(int argc, char **argv)
{
    const char *output = NULL, *series = NULL;
    bool json = false, nifti2 = false;
    mira_series_options opt;
    mira_series_options_init(&opt);
    char **inputs = calloc((size_t)argc, sizeof *inputs);
    size_t ninputs = 0;
    if (!inputs) {
        fprintf(stderr, "mira convert: out of memory\n");
        return MIRA_EXIT_INPUT;
    }
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (options_done || a[0] != '-' || a[1] == '\0') {
            inputs[ninputs++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (mira_cli_is_help(a)) {
            usage(stdout);
            free(inputs);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has_value) {
            output = argv[++i];
        } else if (strncmp(a, "--output=", 9) == 0) {
            output = a + 9;
        } else if (strcmp(a, "--series") == 0 && has_value) {
            series = argv[++i];
        } else if (strncmp(a, "--series=", 9) == 0) {
            series = a + 9;
        } else if (strcmp(a, "--threads") == 0 && has_value) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 0 || t > 256) {
                fprintf(stderr, "mira convert: --threads wants a number from 0 to 256\n");
                free(inputs);
                return MIRA_EXIT_USAGE;
            }
            opt.threads = (int)t;
        } else if (strcmp(a, "--stored") == 0) {
            opt.stored_values = true;
        } else if (strcmp(a, "--nifti2") == 0) {
            nifti2 = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else {
            bool known = strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                         strcmp(a, "--series") == 0 || strcmp(a, "--threads") == 0;
            if (known)
                fprintf(stderr, "mira convert: %s needs a value\n\n", a);
            else
                fprintf(stderr, "mira convert: unknown option '%s'\n\n", a);
            usage(stderr);
            free(inputs);
            return MIRA_EXIT_USAGE;
        }
    }
    if (ninputs == 0 || !output) {
        fprintf(stderr, "mira convert: %s\n\n",
                ninputs == 0 ? "no input (a folder or DICOM files)" : "no output (-o OUT.nii)");
        usage(stderr);
        free(inputs);
        return MIRA_EXIT_USAGE;
    }
    size_t olen = strlen(output);
    if (!((olen > 4 && strcmp(output + olen - 4, ".nii") == 0) ||
          (olen > 7 && strcmp(output + olen - 7, ".nii.gz") == 0))) {
        fprintf(stderr, "mira convert: the output name must end in .nii or .nii.gz: %s\n", output);
        free(inputs);
        return MIRA_EXIT_USAGE;
    }

    struct stat st;
    bool is_dir = ninputs == 1 && stat(inputs[0], &st) == 0 && S_ISDIR(st.st_mode);
    for (size_t i = 0; !is_dir && i < ninputs; i++) {
        if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(stderr, "mira convert: give one folder, or files: %s is a folder\n", inputs[i]);
            free(inputs);
            return MIRA_EXIT_USAGE;
        }
    }

    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    mira_error *err = NULL;
    mira_image *img = NULL;
    if (is_dir) {
        img = mira_series_load_dir(inputs[0], series, &opt, &rep, &err);
    } else if (series) {
        size_t kept = 0;
        const char **paths = filter_series(inputs, ninputs, series, &kept);
        if (!paths)
            mira_error_set(&err, MIRA_ERR_NOMEM, NULL, "listing the inputs");
        else if (kept == 0)
            mira_error_set(&err, MIRA_ERR_NOT_FOUND, "No such series",
                           "no input file belongs to series %s", series);
        else
            img = mira_series_load(paths, kept, &opt, &rep, &err);
        mira_free(paths);
    } else {
        img = mira_series_load((const char *const *)inputs, ninputs, &opt, &rep, &err);
    }
    free(inputs);

    for (size_t i = 0; i < rep.warning_count; i++)
        fprintf(stderr, "mira convert: warning: %s\n", rep.warnings[i]);
    int status = MIRA_EXIT_OK;
    if (img && !mira_nifti_write(img, output, nifti2, &err)) {
        mira_image_free(img);
        img = NULL;
    }
    mira_json_writer *w = json ? mira_json_writer_new(true) : NULL;
    if (w)
        mira_json_begin_object(w);
    if (!img) {
        if (w) {
            mira_json_key(w, "error");
            mira_json_cstring(w, mira_error_get_message(err));
            json_report(w, &rep);
        }
        mira_cli_report("convert", err);
        status = MIRA_EXIT_INPUT;
    } else if (w) {
        mira_json_key(w, "output");
        mira_json_cstring(w, output);
        size_t dims[3] = {img->size[0], img->size[1], img->size[2]};
        mira_json_key(w, "dims");
        mira_json_begin_array(w);
        for (int a = 0; a < 3; a++)
            mira_json_uint(w, dims[a]);
        mira_json_end_array(w);
        mira_json_key(w, "type");
        mira_json_cstring(w, mira_pixel_type_name(img->type));
        mira_json_key(w, "channels");
        mira_json_int(w, img->channels);
        json_doubles(w, "spacing", img->spacing, 3);
        json_doubles(w, "origin", img->origin, 3);
        json_doubles(w, "direction", img->direction, 9);
        json_affine(w, "affine", img, true);
        json_affine(w, "affine_lps", img, false);
        json_report(w, &rep);
    }
    if (w) {
        mira_json_end_object(w);
        if (!print_json(w))
            status = MIRA_EXIT_INPUT;
        mira_json_writer_free(w);
    }
    mira_series_report_cleanup(&rep);
    mira_image_free(img);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mira convert: cannot write the output\n");
        return MIRA_EXIT_INPUT;
    }
    return status;
}
