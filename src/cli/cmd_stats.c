/* mira stats and mira check: what the archive holds, and whether the index and blobs agree. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void stats_usage(FILE *out)
{
    fprintf(out, "usage: mira stats [options]\n\n"
                 "Count the archive's patients, studies, series and instances and their bytes.\n\n"
                 "options:\n" MIRA_ARCHIVE_CLI_HELP "  --json             as a JSON object\n"
                 "  -h, --help         this help\n\n"
                 "exit status: 0 done, 1 the archive cannot be read, 2 wrong usage\n");
}

int mira_cli_stats(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira stats: %s needs a value\n", argv[i]);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(argv[i])) {
            stats_usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "mira stats: unknown argument '%s'\n", argv[i]);
            stats_usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    mira_archive *a = mira_cli_open_archive("stats", &opts, false);
    if (!a)
        return MIRA_EXIT_INPUT;
    mira_archive_stats s;
    mira_error *err = NULL;
    bool ok = mira_archive_get_stats(a, &s, &err);
    if (ok && json) {
        printf("{\"archive\":");
        mira_json_writer *w = mira_json_writer_new(false);
        mira_json_cstring(w, mira_archive_dir(a));
        size_t len;
        char *t = mira_json_writer_finish(w, &len, NULL);
        mira_json_writer_free(w);
        printf("%s,\"index\":\"%s\",\"patients\":%llu,\"studies\":%llu,\"series\":%llu,"
               "\"instances\":%llu,\"bytes\":%llu}\n",
               t ? t : "\"\"", mira_archive_index_kind(a), (unsigned long long)s.patients,
               (unsigned long long)s.studies, (unsigned long long)s.series,
               (unsigned long long)s.instances, (unsigned long long)s.bytes);
        mira_free(t);
    } else if (ok) {
        printf("archive    %s (%s index)\npatients   %llu\nstudies    %llu\nseries     %llu\n"
               "instances  %llu\nbytes      %llu (%.1f MB)\n",
               mira_archive_dir(a), mira_archive_index_kind(a), (unsigned long long)s.patients,
               (unsigned long long)s.studies, (unsigned long long)s.series,
               (unsigned long long)s.instances, (unsigned long long)s.bytes, (double)s.bytes / 1e6);
    }
    mira_archive_close(a);
    if (!ok) {
        mira_cli_report("stats", err);
        return MIRA_EXIT_INPUT;
    }
    return MIRA_EXIT_OK;
}

static void check_usage(FILE *out)
{
    fprintf(out, "usage: mira check [options]\n\n"
                 "Verify that every index row has its blob (of the right size) and every blob its\n"
                 "row, and that the counts of series, studies and patients are right.\n\n"
                 "options:\n" MIRA_ARCHIVE_CLI_HELP
                 "  --deep             also read every blob and compare its checksum\n"
                 "  --repair           fix what is found: rows without blobs are dropped, orphan\n"
                 "                     blobs stored again (or kept in lost+found/), counts redone\n"
                 "  --json             problems and the report as JSON lines\n"
                 "  -h, --help         this help\n\n"
                 "exit status: 0 nothing wrong (or all of it repaired), 1 problems remain, 2 wrong "
                 "usage\n");
}

static void print_problem(void *ctx, mira_check_problem what, const char *subject,
                          const char *detail)
{
    static const char *const names[] = {"missing-blob", "orphan-blob", "bad-blob", "bad-count"};
    bool json = *(bool *)ctx;
    if (json) {
        mira_json_writer *w = mira_json_writer_new(false);
        mira_json_begin_object(w);
        mira_json_key(w, "problem");
        mira_json_cstring(w, names[what]);
        mira_json_key(w, "subject");
        mira_json_cstring(w, subject);
        mira_json_key(w, "detail");
        mira_json_cstring(w, detail);
        mira_json_end_object(w);
        size_t len;
        char *t = mira_json_writer_finish(w, &len, NULL);
        mira_json_writer_free(w);
        if (t)
            printf("%s\n", t);
        mira_free(t);
    } else {
        printf("%-12s %s: %s\n", names[what], subject, detail);
    }
}

int mira_cli_check(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    mira_check_options co = {0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira check: %s needs a value\n", argv[i]);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(argv[i])) {
            check_usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--repair") == 0) {
            co.repair = true;
        } else if (strcmp(argv[i], "--deep") == 0) {
            co.deep = true;
        } else {
            fprintf(stderr, "mira check: unknown argument '%s'\n", argv[i]);
            check_usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    mira_archive *a = mira_cli_open_archive("check", &opts, false);
    if (!a)
        return MIRA_EXIT_INPUT;
    mira_check_report rep;
    mira_error *err = NULL;
    bool ok = mira_archive_check(a, &co, print_problem, &json, &rep, &err);
    mira_archive_close(a);
    if (!ok) {
        mira_cli_report("check", err);
        return MIRA_EXIT_INPUT;
    }
    uint64_t problems = rep.missing_blobs + rep.orphan_blobs + rep.bad_blobs + rep.bad_counts;
    if (json)
        printf("{\"report\":{\"instances\":%llu,\"blobs\":%llu,\"missing_blobs\":%llu,"
               "\"orphan_blobs\":%llu,\"bad_blobs\":%llu,\"bad_counts\":%llu,\"repaired\":%llu}}\n",
               (unsigned long long)rep.instances_checked, (unsigned long long)rep.blobs_checked,
               (unsigned long long)rep.missing_blobs, (unsigned long long)rep.orphan_blobs,
               (unsigned long long)rep.bad_blobs, (unsigned long long)rep.bad_counts,
               (unsigned long long)rep.repaired);
    else
        printf("%llu instances, %llu blobs checked: %llu problems, %llu repaired\n",
               (unsigned long long)rep.instances_checked, (unsigned long long)rep.blobs_checked,
               (unsigned long long)problems, (unsigned long long)rep.repaired);
    return problems > rep.repaired ? MIRA_EXIT_INPUT : MIRA_EXIT_OK;
}
