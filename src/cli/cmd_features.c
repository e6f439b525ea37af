/* mira features: the radiomics features (IBSI) of a region of an image. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira features [options] IMAGE MASK\n\n"
            "Compute the radiomics features of the region where MASK is non-zero, as the IBSI\n"
            "reference manual defines them, named by the IBSI submission tags (stat_mean,\n"
            "ih_entropy, ivh_v10, loc_peak_glob, cm_joint_max_3D_avg...). IMAGE and MASK are\n"
            "NIfTI files or folders of one DICOM series each, on the same grid. Families:\n"
            "stat (intensity statistics), ih (intensity histogram), ivh (intensity-volume\n"
            "histogram), loc (local intensity), cm (grey level co-occurrence) and rlm (run\n"
            "length) matrices in 2D, 2.5D and 3D, averaged and merged; szm (size zone), dzm\n"
            "(distance zone), ngt (neighbourhood grey tone difference), ngl (neighbouring grey\n"
            "level dependence) in 2D, 2.5D and 3D. Features not defined for the region are\n"
            "NaN (null in JSON).\n\n"
            "options:\n"
            "  --families LIST    comma-separated families (default: all)\n"
            "  --bin-number N     discretise into N bins over the region's range\n"
            "  --bin-size W       discretise into bins of width W from --lower-bound\n"
            "  --lower-bound L    the first bin's lower edge (default: the region's minimum)\n"
            "                     (without either, the values must be grey levels >= 1)\n"
            "  --distance D       co-occurrence neighbour distance (default 1)\n"
            "  --study UID        keep the results for this study of the archive (method\n"
            "                     \"ibsi\": they replace the ones before; the patient record\n"
            "                     shows them, mira hl7 results sends them)\n"
            MIRA_ARCHIVE_CLI_HELP
            "  --json             one JSON object, tag: value\n"
            "  --csv              tag,value lines with a header\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 computed, 1 a problem with the input, 2 wrong usage\n");
}

static mira_image *load(const char *path, mira_error **err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        mira_series_options o;
        mira_series_options_init(&o);
        return mira_series_load_dir(path, NULL, &o, NULL, err);
    }
    return mira_nifti_read(path, err);
}

static bool families_of(const char *list, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"stat", MIRA_FEATURES_STAT}, {"ih", MIRA_FEATURES_IH},
                 {"ivh", MIRA_FEATURES_IVH},   {"loc", MIRA_FEATURES_LOC},
                 {"cm", MIRA_FEATURES_CM},     {"rlm", MIRA_FEATURES_RLM},
                 {"szm", MIRA_FEATURES_SZM},   {"dzm", MIRA_FEATURES_DZM},
                 {"ngt", MIRA_FEATURES_NGT},   {"ngl", MIRA_FEATURES_NGL},
                 {"all", MIRA_FEATURES_ALL}};
    *out = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0) {
                *out |= names[i].bit;
                known = true;
            }
        if (!known)
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return *out != 0;
}

int mira_cli_features(int argc, char **argv)
{
    mira_feature_settings s;
    mira_feature_settings_init(&s);
    const char *paths[2] = {NULL, NULL}, *study = NULL;
    size_t np = 0;
    bool json = false, csv = false;
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    for (int i = 1; i < argc; i++) {
        int k = mira_cli_archive_option(argc, argv, &i, &ao);
        if (k < 0) {
            fprintf(stderr, "mira features: %s needs a value\n", argv[i]);
            return MIRA_EXIT_USAGE;
        }
        if (k > 0)
            continue;
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--study") == 0 && v) {
            study = argv[++i];
        } else if (strcmp(a, "--csv") == 0) {
            csv = true;
        } else if (strcmp(a, "--families") == 0 && v) {
            if (!families_of(v, &s.families)) {
                fprintf(stderr, "mira features: --families takes stat, ih, ivh, loc, cm, rlm, "
                                "szm, dzm, ngt, ngl\n");
                return MIRA_EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--bin-number") == 0 && v) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 65536) {
                fprintf(stderr, "mira features: --bin-number takes 1 to 65536\n");
                return MIRA_EXIT_USAGE;
            }
            s.discretisation = MIRA_DISCRETISE_BIN_NUMBER;
            s.bin_number = (int)n;
            i++;
        } else if ((strcmp(a, "--bin-size") == 0 || strcmp(a, "--lower-bound") == 0) && v) {
            double x = strtod(v, &end);
            if (*end || !isfinite(x) || (a[2] == 'b' && x <= 0)) {
                fprintf(stderr, "mira features: %s takes a number%s\n", a,
                        a[2] == 'b' ? " > 0" : "");
                return MIRA_EXIT_USAGE;
            }
            if (a[2] == 'b') {
                s.discretisation = MIRA_DISCRETISE_BIN_SIZE;
                s.bin_size = x;
            } else {
                s.lower_bound = x;
            }
            i++;
        } else if (strcmp(a, "--distance") == 0 && v) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 64) {
                fprintf(stderr, "mira features: --distance takes 1 to 64\n");
                return MIRA_EXIT_USAGE;
            }
            s.cm_distance = (int)n;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira features: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else if (np < 2) {
            paths[np++] = a;
        } else {
            fprintf(stderr, "mira features: give one IMAGE and one MASK\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (np != 2 || (json && csv)) {
        fprintf(stderr, "mira features: give an IMAGE and a MASK (and --json or --csv)\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    mira_error *err = NULL;
    mira_image *img = load(paths[0], &err), *mask = img ? load(paths[1], &err) : NULL;
    mira_features f = {0};
    int rc = MIRA_EXIT_OK;
    mira_archive *ar = NULL;
    if (!img || !mask || !mira_features_compute(img, mask, &s, &f, &err)) {
        mira_cli_report("features", err);
        rc = MIRA_EXIT_INPUT;
    } else if (study && (!(ar = mira_cli_open_archive("features", &ao, false)) ||
                         !mira_archive_results_put(ar, study, "ibsi", f.v, f.n, &err))) {
        if (ar)
            mira_cli_report("features", err);
        rc = MIRA_EXIT_INPUT;
    } else if (json) {
        mira_json_writer *w = mira_json_writer_new(true);
        mira_json_begin_object(w);
        for (size_t i = 0; i < f.n; i++) {
            mira_json_key(w, f.v[i].tag);
            if (isfinite(f.v[i].value))
                mira_json_double(w, f.v[i].value + 0.0);
            else
                mira_json_null(w);
        }
        mira_json_end_object(w);
        mira_cli_print_json(w);
    } else {
        if (csv)
            printf("tag,value\n");
        for (size_t i = 0; i < f.n; i++)
            printf(csv ? "%s,%.17g\n" : "%-32s %.10g\n", f.v[i].tag, f.v[i].value);
    }
    mira_archive_close(ar);
    mira_features_cleanup(&f);
    mira_image_free(img);
    mira_image_free(mask);
    return rc;
}
