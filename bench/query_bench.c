/* Query benchmark: study-level C-FIND identifiers through mira_archive_find, each timed, each
 * checked. */
#include <mira/mira.h>

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * usage: query_bench --archive DIR [--index URL] [--truth FILE] [--runs N] [--warmup N]
 *                    [--seconds S] [--limits L,L...] [--shape NAME]
 *
 * --index overrides the archive's configured index (a PostgreSQL connection string whose
 * socket folder changes from run to run).
 * For each query shape and each limit (0 = none; default "0,100"), runs the query --warmup
 * times (default 20), then --runs times (default 200, and no longer than --seconds per shape
 * and limit, default 30), timing each call of mira_archive_find in the process (the archive
 * opened once, as a server holds it). Prints one line per shape and limit:
 *   query shape=S limit=L runs=N matches=M expected=E check=ok median_ms=.. p95_ms=.. ...
 * Answers are checked, so that a fast wrong one cannot pass: the number of matches of every
 * run must be the generator's count from --truth (bench/make_index.py, computed from its
 * records, not by SQL), or that count capped by the limit; in the warm-up runs (or the first
 * run, without warm-up) every match's Patient Name must also match the pattern (fnmatch,
 * case-folded for the case-insensitive shapes), its Study Date lie in the range, its
 * Modalities in Study hold the modality, and matches must come in Study Date order. The timed
 * runs only count the matches, so that the checking is not in the times (a server would spend
 * that time encoding each match instead). Exits 1 if a check failed (never for a time).
 */

typedef struct shape {
    const char *name;
    const char *patient_name;
    int names_ci;           /* mira_find_options.names_case_insensitive */
    const char *study_date; /* a range, or NULL */
    const char *modality;   /* ModalitiesInStudy, or NULL */
} shape;

/* Keep in step with SHAPES in bench/make_index.py. The combined shape uses the archive's
 * default for names (case-insensitive), as a QIDO-RS or C-FIND service would. */
static const shape shapes[] = {
    {"prefix", "SMI*", 0, NULL, NULL},
    {"infix", "*SON*", 0, NULL, NULL},
    {"prefix_ci", "smi*", 1, NULL, NULL},
    {"combined", "SMI*", -1, "20200101-20221231", "CT"},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* The return keys of a study list, as a viewer's worklist asks for them. */
static const struct {
    mira_tag tag;
    mira_vr vr;
} return_keys[] = {
    {0x00080020, MIRA_VR_DA}, {0x00080030, MIRA_VR_TM}, {0x00080050, MIRA_VR_SH},
    {0x00080061, MIRA_VR_CS}, {0x00081030, MIRA_VR_LO}, {0x00100010, MIRA_VR_PN},
    {0x00100020, MIRA_VR_LO}, {0x00100030, MIRA_VR_DA}, {0x00100040, MIRA_VR_CS},
    {0x0020000D, MIRA_VR_UI}, {0x00201206, MIRA_VR_IS}, {0x00201208, MIRA_VR_IS},
};

typedef struct check {
    const shape *s;
    bool verify; /* check every match (else only count them) */
    char lo[9], hi[9];
    unsigned long matches;
    char last_date[9];
    char problem[512];
} check;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *text(const mira_dataset *ds, mira_tag tag)
{
    mira_element *e = mira_dataset_get(ds, tag);
    return e ? mira_element_get_text(e, NULL) : NULL;
}

static void problem(check *c, const char *what, const char *value)
{
    if (!c->problem[0])
        snprintf(c->problem, sizeof c->problem, "match %lu: %s (%s)", c->matches, what,
                 value ? value : "absent");
}

static bool on_match(void *ctx, const mira_dataset *m)
{
    check *c = ctx;
    c->matches++;
    if (!c->verify)
        return true;
    char *name = text(m, 0x00100010), *date = text(m, 0x00080020), *mods = text(m, 0x00080061);
    int flags = c->s->names_ci != 0 ? FNM_CASEFOLD : 0;
    if (!name || fnmatch(c->s->patient_name, name, flags) != 0)
        problem(c, "Patient Name does not match", name);
    if (c->s->study_date && (!date || strcmp(date, c->lo) < 0 || strcmp(date, c->hi) > 0))
        problem(c, "Study Date out of the range", date);
    if (c->s->modality) {
        bool found = false;
        size_t ml = strlen(c->s->modality);
        for (const char *p = mods ? mods : ""; *p;) {
            const char *e = strchr(p, '\\');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            found = found || (l == ml && strncmp(p, c->s->modality, ml) == 0);
            p += l + (e != NULL);
        }
        if (!found)
            problem(c, "Modalities in Study lack the modality", mods);
    }
    /* the archive orders studies by date, absent dates last */
    if (date && *date) {
        if (c->last_date[0] == 'x' || strcmp(date, c->last_date) < 0)
            problem(c, "not in Study Date order", date);
        snprintf(c->last_date, sizeof c->last_date, "%s", date);
    } else {
        snprintf(c->last_date, sizeof c->last_date, "x");
    }
    mira_free(name);
    mira_free(date);
    mira_free(mods);
    return true;
}

static mira_dataset *identifier(const shape *s)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    if (!ds)
        return NULL;
    bool ok = mira_dataset_set_string(ds, 0x00080005, MIRA_VR_CS, "ISO_IR 192", NULL) != NULL;
    for (size_t i = 0; ok && i < sizeof return_keys / sizeof return_keys[0]; i++)
        ok = mira_dataset_set_bytes(ds, return_keys[i].tag, return_keys[i].vr, NULL, 0, NULL) !=
             NULL;
    ok = ok && mira_dataset_set_string(ds, 0x00100010, MIRA_VR_PN, s->patient_name, NULL);
    if (ok && s->study_date)
        ok = mira_dataset_set_string(ds, 0x00080020, MIRA_VR_DA, s->study_date, NULL) != NULL;
    if (ok && s->modality)
        ok = mira_dataset_set_string(ds, 0x00080061, MIRA_VR_CS, s->modality, NULL) != NULL;
    if (!ok) {
        mira_dataset_free(ds);
        return NULL;
    }
    return ds;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long truth_of(const char *path, const char *name)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    char key[64];
    long n, found = -1;
    while (fscanf(f, "%63s %ld", key, &n) == 2)
        if (strcmp(key, name) == 0)
            found = n;
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *index = NULL, *truth = NULL, *only = NULL, *limits_arg = "0,100";
    long runs = 200, warmup = 20;
    double seconds = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "query_bench: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--archive") == 0)
            dir = v;
        else if (strcmp(a, "--index") == 0)
            index = v;
        else if (strcmp(a, "--truth") == 0)
            truth = v;
        else if (strcmp(a, "--runs") == 0)
            runs = strtol(v, NULL, 10);
        else if (strcmp(a, "--warmup") == 0)
            warmup = strtol(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(a, "--limits") == 0)
            limits_arg = v;
        else if (strcmp(a, "--shape") == 0)
            only = v;
        else {
            fprintf(stderr, "query_bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!dir || runs < 1 || runs > 100000 || warmup < 0 || warmup > 100000) {
        fprintf(stderr, "usage: query_bench --archive DIR [--index URL] [--truth FILE] [--runs N]"
                        " [--warmup N] [--seconds S] [--limits L,L...] [--shape NAME]\n");
        return 2;
    }
    unsigned long long limits[8];
    size_t nlimits = 0;
    for (const char *p = limits_arg; *p && nlimits < 8;) {
        char *end;
        limits[nlimits++] = strtoull(p, &end, 10);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }

    mira_archive_options ao;
    mira_archive_options_init(&ao);
    ao.dir = dir;
    ao.index = index;
    mira_error *err = NULL;
    mira_archive *a = mira_archive_open(&ao, &err);
    if (!a) {
        fprintf(stderr, "query_bench: %s\n", mira_error_get_message(err));
        mira_error_free(err);
        return 1;
    }
    double *ms = malloc((size_t)runs * sizeof *ms);
    if (!ms)
        return 1;
    int failed = 0;
    for (size_t si = 0; si < NSHAPES; si++) {
        const shape *s = &shapes[si];
        if (only && strcmp(only, s->name) != 0)
            continue;
        mira_dataset *ident = identifier(s);
        long expected = truth_of(truth, s->name);
        for (size_t li = 0; ident && li < nlimits; li++) {
            mira_find_options fo;
            mira_find_options_init(&fo);
            fo.limit = limits[li];
            fo.names_case_insensitive = s->names_ci;
            check c = {s, false, "", "", 0, "", ""};
            if (s->study_date)
                sscanf(s->study_date, "%8[0-9]-%8[0-9]", c.lo, c.hi);
            long done = 0;
            unsigned long matches = 0;
            char first_problem[512] = "";
            double start = now_ms();
            for (long r = -warmup; r < runs; r++) {
                c.matches = 0;
                c.verify = r < 0 || (warmup == 0 && r == 0);
                c.last_date[0] = 0;
                double t0 = now_ms();
                bool ok = mira_archive_find(a, MIRA_LEVEL_STUDY, ident, &fo, on_match, &c, &err);
                double t1 = now_ms();
                if (!ok) {
                    snprintf(c.problem, sizeof c.problem, "find failed: %s",
                             mira_error_get_message(err));
                    mira_error_free(err);
                    err = NULL;
                }
                if (r == -warmup || (r >= 0 && c.matches != matches))
                    matches = c.matches; /* the first answer; a later different one is wrong */
                if (c.problem[0] && !first_problem[0])
                    snprintf(first_problem, sizeof first_problem, "%s", c.problem);
                if (r >= 0)
                    ms[done++] = t1 - t0;
                if (r >= 0 && t1 - start > seconds * 1e3)
                    break;
            }
            unsigned long want = expected < 0 ? 0
                                 : fo.limit && (unsigned long long)expected > fo.limit
                                     ? (unsigned long)fo.limit
                                     : (unsigned long)expected;
            if (!first_problem[0] && expected >= 0 && matches != want)
                snprintf(first_problem, sizeof first_problem, "%lu matches, the generator has %lu",
                         matches, want);
            qsort(ms, (size_t)done, sizeof *ms, cmp_double);
            double sum = 0;
            for (long i = 0; i < done; i++)
                sum += ms[i];
            long p95 = (long)((double)(done - 1) * 0.95 + 0.5);
            printf("query shape=%s limit=%llu runs=%ld matches=%lu expected=%ld check=%s "
                   "median_ms=%.3f p95_ms=%.3f min_ms=%.3f max_ms=%.3f mean_ms=%.3f\n",
                   s->name, (unsigned long long)fo.limit, done, matches,
                   expected < 0 ? -1L : (long)want, first_problem[0] ? "FAILED" : "ok",
                   done ? (done % 2 ? ms[done / 2] : (ms[done / 2 - 1] + ms[done / 2]) / 2) : 0.0,
                   done ? ms[p95] : 0.0, done ? ms[0] : 0.0, done ? ms[done - 1] : 0.0,
                   done ? sum / (double)done : 0.0);
            if (first_problem[0]) {
                fprintf(stderr, "query_bench: %s, limit %llu: %s\n", s->name,
                        (unsigned long long)fo.limit, first_problem);
                failed = 1;
            }
            fflush(stdout);
        }
        if (!ident) {
            fprintf(stderr, "query_bench: out of memory\n");
            failed = 1;
        }
        mira_dataset_free(ident);
    }
    free(ms);
    mira_archive_close(a);
    return failed;
}
