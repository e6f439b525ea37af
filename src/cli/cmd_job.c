/* mira job: list, show and cancel the jobs of an archive (run by mira serve's workers). */
#include "cli.h"

#include <mira/jobs.h>

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira job list [--state STATE] [--limit N] [--json] [options]\n"
            "       mira job show ID [--json] [options]\n"
            "       mira job cancel ID [options]\n"
            "The jobs queued with POST /api/jobs (export, send, check), kept in the archive's\n"
            "index and run by the workers of `mira serve` (--job-workers).\n\n"
            "list: newest first (--state queued, running, done, failed or cancelled; --limit:\n"
            "at most N); --json: one JSON object a line, as GET /api/jobs/{id} answers it.\n"
            "show: one job, with its parameters, progress, result or error.\n"
            "cancel: a queued job is cancelled at once, a running one stops at its next\n"
            "instance; a job that has ended cannot be (exit status 1).\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP);
}

static bool print_json(const mira_job *j)
{
    char *t = mira_job_to_json(j);
    if (t)
        printf("%s\n", t);
    mira_free(t);
    return t != NULL;
}

static bool print_row(void *ctx, const mira_job *j)
{
    bool json = *(bool *)ctx;
    if (json)
        return print_json(j);
    printf("%-6lld %-7s %-10s %llu/%llu  %-24s %s\n", (long long)j->id, j->kind,
           mira_job_state_name(j->state), (unsigned long long)j->progress_done,
           (unsigned long long)j->progress_total, j->created_at ? j->created_at : "",
           j->created_by ? j->created_by : "");
    return true;
}

static void print_job(const mira_job *j)
{
    printf("job        %lld\n", (long long)j->id);
    printf("kind       %s\n", j->kind);
    printf("state      %s%s\n", mira_job_state_name(j->state),
           j->cancel_requested && j->state == MIRA_JOB_RUNNING ? " (cancel requested)" : "");
    printf("params     %s\n", j->params ? j->params : "");
    printf("created    %s by %s\n", j->created_at ? j->created_at : "",
           j->created_by ? j->created_by : "");
    if (j->started_at)
        printf("started    %s (attempt %lld, %s)\n", j->started_at, (long long)j->attempts,
               j->owner ? j->owner : "");
    if (j->finished_at)
        printf("finished   %s\n", j->finished_at);
    printf("progress   %llu/%llu\n", (unsigned long long)j->progress_done,
           (unsigned long long)j->progress_total);
    if (j->result)
        printf("result     %s\n", j->result);
    if (j->error)
        printf("error      %s\n", j->error);
}

static bool parse_id(const char *s, int64_t *id)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 1)
        return false;
    *id = v;
    return true;
}

int mira_cli_job(int argc, char **argv)
{
    if (argc < 2 || mira_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MIRA_EXIT_USAGE : MIRA_EXIT_OK;
    }
    int vi = 0;
    for (int i = 1; i < argc && !vi; i++)
        if (strcmp(argv[i], "list") == 0 || strcmp(argv[i], "show") == 0 ||
            strcmp(argv[i], "cancel") == 0)
            vi = i;
    if (!vi) {
        fprintf(stderr, "mira job: list, show or cancel?\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    const char *verb = argv[vi];
    bool list = strcmp(verb, "list") == 0;
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    mira_job_list_options lo;
    mira_job_list_options_init(&lo);
    bool json = false;
    int64_t id = 0;
    for (int i = 1; i < argc; i++) {
        if (i == vi)
            continue;
        const char *a = argv[i];
        int r = mira_cli_archive_option(argc, argv, &i, &ao);
        if (r < 0) {
            fprintf(stderr, "mira job: bad value for %s\n", a);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        mira_job_state st;
        int64_t n;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0 && strcmp(verb, "cancel") != 0) {
            json = true;
        } else if (list && strcmp(a, "--state") == 0 && i + 1 < argc &&
                   mira_job_state_from_name(argv[i + 1], &st)) {
            lo.state = (int)st;
            i++;
        } else if (list && strcmp(a, "--limit") == 0 && i + 1 < argc && parse_id(argv[i + 1], &n)) {
            lo.limit = (uint64_t)n;
            i++;
        } else if (!list && !id && parse_id(a, &id)) {
            continue;
        } else {
            fprintf(stderr, "mira job %s: unknown option or bad value: %s\n", verb, a);
            return MIRA_EXIT_USAGE;
        }
    }
    if (!list && !id) {
        fprintf(stderr, "mira job %s: which job (its id)?\n", verb);
        return MIRA_EXIT_USAGE;
    }
    mira_archive *a = mira_cli_open_archive("job", &ao, false);
    if (!a)
        return MIRA_EXIT_INPUT;
    bool ok;
    mira_error *err = NULL;
    if (list) {
        ok = mira_job_list(a, &lo, print_row, &json, &err);
    } else if (strcmp(verb, "show") == 0) {
        mira_job *j = mira_job_get(a, id, &err);
        ok = j != NULL;
        if (j && json)
            ok = print_json(j);
        else if (j)
            print_job(j);
        mira_job_free(j);
    } else {
        mira_job_state after;
        ok = mira_job_cancel(a, id, &after, &err);
        if (ok)
            printf("job %lld %s\n", (long long)id,
                   after == MIRA_JOB_CANCELLED ? "cancelled"
                                               : "asked to stop (it stops at its next instance)");
    }
    if (!ok)
        mira_cli_report("job", err);
    mira_archive_close(a);
    return ok ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
}
