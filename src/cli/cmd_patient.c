/* mira patient: a patient's record (demographics and identifiers from HL7 ADT, orders, studies
 * and reports, linked) from the archive. */
#include "cli.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira patient [--archive DIR] [--index URL] [--issuer I] [--json] ID\n\n"
            "Print the record of the patient with identifier ID (the Patient ID of its studies,\n"
            "or any identifier HL7 ADT messages gave it; a patient merged into another by an\n"
            "A40 gives the survivor's record): demographics and identifiers, orders (worklist\n"
            "entries from HL7 orders or 'mira worklist add', with the study each is linked to),\n"
            "studies (the archive's), reports (each version, with its study). --json prints the\n"
            "record as one JSON document, the same as GET /api/patients/ID.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --issuer I   the identifier's assigning authority (default: any)\n"
            "  --json       the record as JSON\n"
            "  -h, --help   this help\n\n"
            "exit status: 0 printed, 1 nothing is known of the patient or the archive failed,\n"
            "2 wrong usage\n");
}

static const char *str(const mira_json *o, const char *key)
{
    mira_json *v = o ? mira_json_get(o, key) : NULL;
    return v && mira_json_get_type(v) == MIRA_JSON_STRING ? mira_json_get_string(v, NULL) : "";
}

static long long num(const mira_json *o, const char *key)
{
    mira_json *v = o ? mira_json_get(o, key) : NULL;
    return v && mira_json_get_type(v) == MIRA_JSON_NUMBER ? (long long)mira_json_get_number(v)
                                                          : 0;
}

static void print_text(const mira_json *rec)
{
    mira_json *p = mira_json_get(rec, "patient");
    printf("patient %s%s%s  %s  born %s  sex %s\n", str(p, "patient_id"),
           *str(p, "issuer") ? " of " : "", str(p, "issuer"), str(p, "name"),
           *str(p, "birth_date") ? str(p, "birth_date") : "?", *str(p, "sex") ? str(p, "sex") : "?");
    if (*str(p, "address"))
        printf("  address %s\n", str(p, "address"));
    mira_json *ids = mira_json_get(rec, "identifiers");
    for (size_t i = 0; ids && i < mira_json_count(ids); i++) {
        mira_json *x = mira_json_at(ids, i);
        printf("  identifier %s%s%s (%s)\n", str(x, "id"), *str(x, "issuer") ? " of " : "",
               str(x, "issuer"), *str(x, "type") ? str(x, "type") : "-");
    }
    mira_json *o = mira_json_get(rec, "orders");
    printf("orders: %zu\n", o ? mira_json_count(o) : 0);
    for (size_t i = 0; o && i < mira_json_count(o); i++) {
        mira_json *x = mira_json_at(o, i);
        printf("  %s  accession %s  %s  %s %s  %s%s%s\n", str(x, "status"), str(x, "accession"),
               str(x, "procedure"), str(x, "scheduled_date"), str(x, "scheduled_time"),
               str(x, "modality"), *str(x, "linked_study_uid") ? "  study " : "",
               str(x, "linked_study_uid"));
    }
    mira_json *s = mira_json_get(rec, "studies");
    printf("studies: %zu\n", s ? mira_json_count(s) : 0);
    for (size_t i = 0; s && i < mira_json_count(s); i++) {
        mira_json *x = mira_json_at(s, i);
        printf("  %s  %s  accession %s  %s  %s  %lld instances\n", str(x, "study_date"),
               str(x, "study_uid"), str(x, "accession"), str(x, "modalities"),
               str(x, "description"), num(x, "num_instances"));
    }
    mira_json *r = mira_json_get(rec, "reports");
    printf("reports: %zu\n", r ? mira_json_count(r) : 0);
    for (size_t i = 0; r && i < mira_json_count(r); i++) {
        mira_json *x = mira_json_at(r, i);
        printf("  accession %s  version %lld  status %s  %s%s%s\n", str(x, "accession"),
               num(x, "version"), str(x, "status"), str(x, "procedure"),
               *str(x, "study_uid") ? "  study " : "", str(x, "study_uid"));
        const char *t = str(x, "text");
        while (*t) {
            size_t n = strcspn(t, "\n");
            printf("    %.*s\n", (int)n, t);
            t += n + (t[n] == '\n');
        }
    }
}

int mira_cli_patient(int argc, char **argv)
{
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    const char *id = NULL, *issuer = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = mira_cli_archive_option(argc, argv, &i, &ao);
        if (k < 0) {
            fprintf(stderr, "mira patient: bad value for %s\n", a);
            return MIRA_EXIT_USAGE;
        }
        if (k > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--issuer") == 0 && i + 1 < argc) {
            issuer = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira patient: unknown option or missing value: %s\n", a);
            return MIRA_EXIT_USAGE;
        } else if (!id) {
            id = a;
        } else {
            fprintf(stderr, "mira patient: one patient ID only\n");
            return MIRA_EXIT_USAGE;
        }
    }
    if (!id) {
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    mira_archive *archive = mira_cli_open_archive("patient", &ao, false);
    if (!archive)
        return MIRA_EXIT_INPUT;
    mira_error *err = NULL;
    size_t len = 0;
    char *rec = mira_patient_record(archive, id, issuer, &len, &err);
    mira_archive_close(archive);
    if (!rec) {
        mira_cli_report("patient", err);
        return MIRA_EXIT_INPUT;
    }
    if (json) {
        fwrite(rec, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        mira_json *doc = mira_json_parse(rec, len, NULL);
        if (doc)
            print_text(doc);
        mira_json_free(doc);
    }
    mira_free(rec);
    return MIRA_EXIT_OK;
}
