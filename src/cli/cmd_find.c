/* mira find: query the archive's index with C-FIND matching, as a table or DICOM JSON. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira find [options] [KEY=VALUE | KEY]...\n\n"
            "Search the archive at a level with the matching of PS3.4 C.2.2.2, as a C-FIND SCP\n"
            "would: KEY=VALUE matches (single value, * and ? wild cards, UID lists A\\\\B, date\n"
            "and time ranges 20200101-20201231, \"\" for an empty value), KEY alone or KEY=\n"
            "is returned. KEY is a keyword (PatientName) or a tag (0010,0010); a sequence item\n"
            "key is SEQUENCE.KEY (RequestAttributesSequence.RequestedProcedureID=X). Person\n"
            "names match case-insensitively unless --exact-names.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --level L          patient, study (default), series or instance\n"
            "  --limit N          at most N matches;  --offset N  skip the first N\n"
            "  --exact-names      person names match case-sensitively\n"
            "  --combined-datetime  a date range and its time range (StudyDate and\n"
            "                     StudyTime...) match as one date-time range (PS3.4\n"
            "                     C.2.2.2.5.4): 20200101-20200102 with 2200-0200 is\n"
            "                     2020-01-01 22:00 to 2020-01-02 02:00\n"
            "  --json             the matches as a JSON array of DICOM JSON objects\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 the search ran (even with no match), 1 the archive failed, 2 wrong "
            "usage\n");
}

/* The keys shown when none are asked for, by level. */
static const char *const default_keys[4][10] = {
    {"PatientID", "PatientName", "PatientBirthDate", "PatientSex", "NumberOfPatientRelatedStudies",
     NULL},
    {"PatientID", "PatientName", "StudyDate", "AccessionNumber", "ModalitiesInStudy",
     "StudyDescription", "NumberOfStudyRelatedInstances", "StudyInstanceUID", NULL},
    {"StudyInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
     "NumberOfSeriesRelatedInstances", "SeriesInstanceUID", NULL},
    {"SeriesInstanceUID", "InstanceNumber", "SOPClassUID", "SOPInstanceUID", NULL},
};

typedef struct out_ctx {
    bool json;
    size_t n;
    const mira_dataset *ident;
} out_ctx;

static bool print_match(void *ctx, const mira_dataset *m)
{
    out_ctx *o = ctx;
    if (o->json) {
        mira_json_options jo;
        memset(&jo, 0, sizeof jo);
        char *text = mira_dataset_to_json(m, &jo, NULL);
        if (text) {
            printf("%s%s", o->n ? ",\n" : "", text);
            mira_free(text);
        }
    } else {
        bool first = true;
        for (size_t i = 0; i < mira_dataset_count(o->ident); i++) {
            mira_tag tag = mira_element_tag(mira_dataset_at(o->ident, i));
            if (tag == 0x00080005 || tag == 0x00080052)
                continue;
            mira_element *e = mira_dataset_get(m, tag);
            char *v = NULL;
            if (e && mira_element_vr(e) == MIRA_VR_SQ) {
                char buf[32];
                snprintf(buf, sizeof buf, "(%zu items)", mira_element_item_count(e));
                v = mira_strdup(buf);
            } else if (e && mira_vr_is_string(mira_element_vr(e))) {
                v = mira_element_get_text(e, NULL);
            } else if (e && mira_element_length(e)) {
                int64_t x;
                char buf[32] = "";
                if (mira_element_get_int(e, 0, &x, NULL))
                    snprintf(buf, sizeof buf, "%lld", (long long)x);
                v = mira_strdup(buf);
            }
            printf("%s%s", first ? "" : "\t", v ? v : "");
            mira_free(v);
            first = false;
        }
        putchar('\n');
    }
    o->n++;
    return true;
}

int mira_cli_find(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    mira_find_options fo;
    mira_find_options_init(&fo);
    mira_level level = MIRA_LEVEL_STUDY;
    bool json = false;
    mira_dataset *ident = mira_dataset_new(NULL);
    size_t nkeys = 0;
    int rc = MIRA_EXIT_USAGE;
    /* the values on the command line are UTF-8: without this, text keys would be read in the
     * default repertoire and a non-ASCII value would match nothing */
    if (!ident || !mira_dataset_set_string(ident, 0x00080005, MIRA_VR_CS, "ISO_IR 192", NULL)) {
        fprintf(stderr, "mira find: out of memory\n");
        mira_dataset_free(ident);
        return MIRA_EXIT_INPUT;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira find: %s needs a value\n", a);
            goto done;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--exact-names") == 0) {
            fo.names_case_insensitive = 0;
        } else if (strcmp(a, "--combined-datetime") == 0) {
            fo.combined_datetime = true;
        } else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
            if (!mira_level_from_name(argv[++i], &level)) {
                fprintf(stderr, "mira find: --level is patient, study, series or instance\n");
                goto done;
            }
        } else if ((strcmp(a, "--limit") == 0 || strcmp(a, "--offset") == 0) && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || argv[i][0] == '-') {
                fprintf(stderr, "mira find: %s takes a number\n", a);
                goto done;
            }
            if (a[2] == 'l')
                fo.limit = v;
            else
                fo.offset = v;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mira find: unknown option '%s'\n", a);
            usage(stderr);
            goto done;
        } else {
            if (!mira_cli_add_key(ident, a)) {
                fprintf(stderr,
                        "mira find: '%s' is not KEY, KEY=VALUE or SEQUENCE.KEY=VALUE "
                        "with a known keyword or tag\n",
                        a);
                goto done;
            }
            nkeys++;
        }
    }
    if (!nkeys)
        for (size_t k = 0; default_keys[level][k]; k++)
            mira_cli_add_key(ident, default_keys[level][k]);
    mira_archive *ar = mira_cli_open_archive("find", &opts, false);
    if (!ar) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    out_ctx o = {json, 0, ident};
    if (json) {
        printf("[");
    } else {
        bool first = true;
        for (size_t i = 0; i < mira_dataset_count(ident); i++) {
            mira_tag tag = mira_element_tag(mira_dataset_at(ident, i));
            if (tag == 0x00080005 || tag == 0x00080052) /* not columns (see print_match) */
                continue;
            const mira_dict_entry *de = mira_dict_find(tag);
            printf("%s%s", first ? "" : "\t", de && de->keyword ? de->keyword : "?");
            first = false;
        }
        putchar('\n');
    }
    mira_error *err = NULL;
    bool ok = mira_archive_find(ar, level, ident, &fo, print_match, &o, &err);
    if (json)
        printf("%s]\n", o.n ? "\n" : "");
    mira_archive_close(ar);
    if (!ok) {
        mira_cli_report("find", err);
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    rc = MIRA_EXIT_OK;
done:
    mira_dataset_free(ident);
    return rc;
}
