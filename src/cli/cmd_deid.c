/* mira deid: files, folders or an archive query de-identified into a folder or a research archive.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: mira deid [options] INPUT... (-o DIR | --to-archive DIR)\n"
        "       mira deid --from-archive [archive options] [KEY=VALUE]... (-o DIR | "
        "--to-archive DIR)\n\n"
        "De-identify DICOM instances with the PS3.15 Annex E Basic Application Level\n"
        "Confidentiality Profile (Table E.1-1) and the options below: identifying attributes\n"
        "are removed, emptied or replaced by dummies, in sequences too; private attributes\n"
        "are removed; every UID is replaced by 2.25.<keyed hash of the UID>, the same in\n"
        "every instance (references stay valid) and in every run with the same secret;\n"
        "Patient Name and Patient ID become a pseudonym. Inputs are files and folders\n"
        "(recursively), or with --from-archive the archive's instances matching the keys\n"
        "(as for mira find; none: all). Output: DIR/<pseudonym>/<Study UID>/<Series UID>/\n"
        "<SOP Instance UID>.dcm, each file written atomically, or stored in the archive DIR.\n"
        "Files that are not DICOM are reported and skipped.\n\n"
        "PIXEL DATA IS NOT CLEANED: mira does not offer the Clean Pixel Data or Clean\n"
        "Recognizable Visual Features options. Text burned into images (ultrasound,\n"
        "secondary captures, screen saves...) stays; --report lists the instances at risk.\n\n"
        "options:\n"
        "  -o, --output DIR        the folder to write (created)\n"
        "  --to-archive DIR        store into this (research) archive instead (created)\n"
        "  --to-index URL          its index (default: sqlite)\n"
        "  --from-archive          read the instances of an archive query\n" MIRA_ARCHIVE_CLI_HELP
        "  --retain-dates full|modified\n"
        "                          keep dates and times, or shift every date of a patient\n"
        "                          by the same number of days (intervals are kept)\n"
        "  --date-shift N          the shift in days (implies modified; default: per\n"
        "                          patient, 1 to 3652 days back, derived from the secret)\n"
        "  --retain-device         keep device identity (serial numbers, station names...)\n"
        "  --retain-institution    keep institution identity\n"
        "  --retain-patient-characteristics  keep sex, age, size, weight, ...\n"
        "  --retain-uids           keep the original UIDs\n"
        "  --retain-safe-private   keep the private attributes listed with --safe-private\n"
        "  --safe-private FILE     lines GGGG,xxEE,CREATOR (mira has no built-in list)\n"
        "  --clean-descriptors     keep descriptions and comments, identifying words removed\n"
        "  --clean-structured-content  keep SR content, identifying words removed\n"
        "  --clean-graphics        keep graphic annotations, their text cleaned (overlay\n"
        "                          bitmaps and curves are removed all the same)\n"
        "  --pseudonym TEMPLATE    the new Patient Name and ID: fixed text, {n} / {n:4} a\n"
        "                          per-patient counter, {hash} / {hash:8} a keyed hash of the\n"
        "                          Patient ID (default ANON-{hash:12})\n"
        "  --secret S              the key of every hash; the same secret gives the same\n"
        "                          UIDs, pseudonyms and shifts (default: random per run)\n"
        "  --secret-file F         the secret, read from a file (a --secret on the command\n"
        "                          line is visible to other users: prefer this)\n"
        "  --uid-root ROOT         root of the new UIDs (default 2.25)\n"
        "  --map FILE              write original -> new patient IDs and UIDs (CSV). It\n"
        "                          RE-IDENTIFIES the data: keep it with the data steward\n"
        "  --report FILE           burned-in annotation risk per instance (JSON lines)\n"
        "  --json                  one JSON line per input, then a summary\n"
        "  --no-progress           no progress bar\n"
        "  -h, --help              this help\n\n"
        "exit status: 0 every input de-identified, 1 some input was not DICOM or failed,\n"
        "2 wrong usage\n");
}

/* ------------------------------------------------------------------ inputs */

typedef struct list {
    char **v;
    size_t n, cap;
} list;

static bool list_add(list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return false;
    l->n++;
    return true;
}

static void list_free(list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool add_path(list *in, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return list_add(in, path); /* a missing file is reported when it is read */
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "mira deid: cannot read %s: %s\n", path, strerror(errno));
        return true;
    }
    list names = {0};
    struct dirent *de;
    bool ok = true;
    while (ok && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            ok = list_add(&names, de->d_name);
    closedir(d);
    if (names.n)
        qsort(names.v, names.n, sizeof *names.v, cmp_str);
    for (size_t i = 0; ok && i < names.n; i++) {
        if (strcasecmp(names.v[i], "DICOMDIR") == 0)
            continue; /* the index of media, not an instance */
        size_t l = strlen(path) + strlen(names.v[i]) + 2;
        char *p = malloc(l);
        if (!p) {
            ok = false;
            break;
        }
        snprintf(p, l, "%s/%s", path, names.v[i]);
        ok = add_path(in, p);
        free(p);
    }
    list_free(&names);
    return ok;
}

/* ------------------------------------------------------------------ small helpers */

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

/* The trimmed text of a top-level string element ("" if absent). */
static void text_of(const mira_dataset *ds, mira_tag tag, char *buf, size_t cap)
{
    buf[0] = 0;
    mira_element *e = mira_dataset_get(ds, tag);
    char *t = e ? mira_element_get_text(e, NULL) : NULL;
    if (t)
        snprintf(buf, cap, "%s", t);
    mira_free(t);
}

/* A path component: letters, digits, '.', '-' and '_' only. */
static void component(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = s; *p && o + 1 < cap; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        out[o++] = ok ? c : '_';
    }
    if (!o || (o == 1 && out[0] == '.') || (o == 2 && out[0] == '.' && out[1] == '.'))
        out[o++] = '_';
    out[o] = 0;
}

static bool mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok)
            return false;
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

/* An output file written whole or not at all: path.tmp.PID, fsync, rename. */
typedef struct atomic_out {
    FILE *f;
    char *path, *tmp;
} atomic_out;

static bool atomic_open(atomic_out *a, const char *path, mode_t mode)
{
    size_t l = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(l);
    a->f = NULL;
    if (!a->path || !a->tmp)
        return false;
    snprintf(a->tmp, l, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || !(a->f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "mira deid: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

static bool atomic_commit(atomic_out *a)
{
    bool ok = a->f && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    if (a->f && fclose(a->f) != 0)
        ok = false;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "mira deid: cannot write %s: %s\n", a->path, strerror(errno));
        unlink(a->tmp);
    }
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return ok;
}

static void atomic_abort(atomic_out *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    a->f = NULL;
    a->path = a->tmp = NULL;
}

static bool read_lines(const char *path, list *out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mira deid: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    char line[1024];
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (*line && *line != '#')
            ok = list_add(out, line);
    }
    fclose(f);
    return ok;
}

static char *read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mira deid: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ------------------------------------------------------------------ the run */

typedef struct run {
    mira_deid_context *ctx;
    const char *outdir;
    mira_archive *dest;
    bool json;
    FILE *report;
    uint64_t written, skipped, failed, at_risk;
    mira_cli_progress progress;
} run;

static void outcome(run *r, const char *input, const char *status, const char *output,
                    const char *sop, const mira_deid_report *rep, const char *reason)
{
    if (!r->json)
        return;
    fputs("{\"input\":", stdout);
    json_string(stdout, input);
    fputs(",\"status\":", stdout);
    json_string(stdout, status);
    if (output) {
        fputs(",\"output\":", stdout);
        json_string(stdout, output);
    }
    if (sop) {
        fputs(",\"sop_instance_uid\":", stdout);
        json_string(stdout, sop);
    }
    if (rep) {
        fputs(",\"pseudonym\":", stdout);
        json_string(stdout, rep->pseudonym);
        printf(",\"risk\":\"%s\",\"date_shift_days\":%d", mira_deid_risk_name(rep->risk),
               (int)rep->date_shift_days);
    }
    if (reason) {
        fputs(",\"reason\":", stdout);
        json_string(stdout, reason);
    }
    fputs("}\n", stdout);
}

static void write_report(run *r, const char *sop, const char *output, const mira_deid_report *rep)
{
    if (rep->risk > MIRA_DEID_RISK_NONE)
        r->at_risk++;
    if (!r->report)
        return;
    fputs("{\"sop_instance_uid\":", r->report);
    json_string(r->report, sop);
    fputs(",\"output\":", r->report);
    json_string(r->report, output);
    fprintf(r->report, ",\"risk\":\"%s\",\"reasons\":[", mira_deid_risk_name(rep->risk));
    const char *p = rep->reasons;
    bool first = true;
    while (*p) {
        const char *end = strstr(p, "; ");
        size_t l = end ? (size_t)(end - p) : strlen(p);
        char one[512];
        snprintf(one, sizeof one, "%.*s", (int)l, p);
        if (!first)
            fputc(',', r->report);
        json_string(r->report, one);
        first = false;
        p += l + (end ? 2 : 0);
    }
    fputs("],\"pixel_data_cleaned\":false}\n", r->report);
}

static void one(run *r, const char *path, const char *label)
{
    mira_error *err = NULL;
    mira_file *f = mira_file_read(path, NULL, &err);
    if (!f) {
        r->failed++;
        char why[1024];
        snprintf(why, sizeof why, "not DICOM or unreadable: %s", mira_error_get_message(err));
        fprintf(stderr, "mira deid: %s: %s (skipped)\n", label, why);
        outcome(r, label, "failed", NULL, NULL, NULL, why);
        mira_error_free(err);
        return;
    }
    char cls[72];
    text_of(mira_file_meta(f), 0x00020002, cls, sizeof cls);
    if (strcmp(cls, "1.2.840.10008.1.3.10") == 0) {
        r->skipped++;
        outcome(r, label, "skipped", NULL, NULL, NULL, "a DICOMDIR (media index), not an instance");
        mira_file_free(f);
        return;
    }
    mira_deid_report rep;
    if (!mira_deid_file(f, NULL, r->ctx, &rep, &err)) {
        r->failed++;
        fprintf(stderr, "mira deid: %s: %s\n", label, mira_error_get_message(err));
        outcome(r, label, "failed", NULL, NULL, NULL, mira_error_get_message(err));
        mira_error_free(err);
        mira_file_free(f);
        return;
    }
    mira_dataset *ds = mira_file_dataset(f);
    char study[72], series[72], sop[72], pid[72];
    text_of(ds, 0x0020000D, study, sizeof study);
    text_of(ds, 0x0020000E, series, sizeof series);
    text_of(ds, 0x00080018, sop, sizeof sop);
    text_of(ds, 0x00100020, pid, sizeof pid);
    char out[8192];
    bool ok;
    if (r->dest) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        mira_store_result res;
        ok = mira_file_write_memory(f, NULL, &bytes, &len, &err) &&
             mira_archive_store_memory(r->dest, bytes, len, &res, &err);
        mira_free(bytes);
        snprintf(out, sizeof out, "%s", mira_archive_dir(r->dest));
    } else {
        char c1[80], c2[80], c3[80], c4[80];
        component(pid, c1, sizeof c1);
        component(study, c2, sizeof c2);
        component(series, c3, sizeof c3);
        component(sop, c4, sizeof c4);
        snprintf(out, sizeof out, "%s/%s/%s/%s", r->outdir, c1, c2, c3);
        ok = mkdirs(out);
        if (!ok)
            mira_error_set(&err, MIRA_ERR_IO, "Cannot create folder", "%s: %s", out,
                           strerror(errno));
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, "/%s.dcm", c4);
        ok = ok && mira_file_write(f, out, NULL, &err);
    }
    if (!ok) {
        r->failed++;
        fprintf(stderr, "mira deid: %s: %s\n", label, mira_error_get_message(err));
        outcome(r, label, "failed", NULL, sop, &rep, mira_error_get_message(err));
        mira_error_free(err);
    } else {
        r->written++;
        outcome(r, label, "written", out, sop, &rep, NULL);
        write_report(r, sop, out, &rep);
    }
    mira_file_free(f);
}

typedef struct sop_list {
    list uids;
} sop_list;

static bool collect_sop(void *arg, const mira_dataset *match)
{
    sop_list *l = arg;
    char uid[72];
    text_of(match, 0x00080018, uid, sizeof uid);
    return !*uid || list_add(&l->uids, uid);
}

static bool map_line(void *arg, const char *kind, const char *orig, const char *repl)
{
    FILE *f = arg;
    csv_field(f, kind);
    fputc(',', f);
    csv_field(f, orig);
    fputc(',', f);
    csv_field(f, repl);
    fputc('\n', f);
    return true;
}

/* The command line, before it is checked. */
typedef struct args {
    const char *outdir, *to_archive, *to_index, *map, *report, *secret, *secret_file, *safe_file,
        *dates, *pseudonym, *uid_root, *shift;
    bool from_archive, retain_device, retain_institution, retain_patient, retain_uids,
        retain_safe_private, clean_descriptors, clean_structured, clean_graphics, json, no_progress;
} args;

int mira_cli_deid(int argc, char **argv)
{
    args ag = {0};
    mira_archive_cli src = {NULL, NULL, -1, NULL};
    mira_deid_options o;
    mira_deid_options_init(&o);
    const char *outdir = NULL, *to_archive = NULL, *to_index = NULL, *map_path = NULL,
               *report_path = NULL, *secret = NULL, *secret_file = NULL, *safe_file = NULL,
               *dates = NULL;
    bool from_archive = false, json = false, progress = true, shift_given = false;
    list inputs = {0}, safe = {0};
    mira_dataset *ident = mira_dataset_new(NULL);
    char *secret_buf = NULL;
    int rc = MIRA_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int ar = mira_cli_archive_option(argc, argv, &i, &src);
        if (ar < 0) {
            fprintf(stderr, "mira deid: %s needs a valid value\n", argv[i]);
            goto done;
        }
        if (ar > 0)
            continue;
        const char *a = argv[i];
        static const struct {
            const char *flag;
            size_t offset;
        } valued[] = {
            {"-o", offsetof(args, outdir)},
            {"--output", offsetof(args, outdir)},
            {"--to-archive", offsetof(args, to_archive)},
            {"--to-index", offsetof(args, to_index)},
            {"--map", offsetof(args, map)},
            {"--report", offsetof(args, report)},
            {"--secret", offsetof(args, secret)},
            {"--secret-file", offsetof(args, secret_file)},
            {"--safe-private", offsetof(args, safe_file)},
            {"--retain-dates", offsetof(args, dates)},
            {"--pseudonym", offsetof(args, pseudonym)},
            {"--uid-root", offsetof(args, uid_root)},
            {"--date-shift", offsetof(args, shift)},
        };
        static const struct {
            const char *flag;
            size_t offset;
        } flags[] = {
            {"--from-archive", offsetof(args, from_archive)},
            {"--retain-device", offsetof(args, retain_device)},
            {"--retain-institution", offsetof(args, retain_institution)},
            {"--retain-patient-characteristics", offsetof(args, retain_patient)},
            {"--retain-uids", offsetof(args, retain_uids)},
            {"--retain-safe-private", offsetof(args, retain_safe_private)},
            {"--clean-descriptors", offsetof(args, clean_descriptors)},
            {"--clean-structured-content", offsetof(args, clean_structured)},
            {"--clean-graphics", offsetof(args, clean_graphics)},
            {"--json", offsetof(args, json)},
            {"--no-progress", offsetof(args, no_progress)},
        };
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        }
        bool taken = false;
        for (size_t k = 0; !taken && k < sizeof valued / sizeof valued[0]; k++) {
            if (strcmp(a, valued[k].flag) != 0)
                continue;
            if (i + 1 >= argc) {
                fprintf(stderr, "mira deid: %s needs a value\n", a);
                goto done;
            }
            *(const char **)((char *)&ag + valued[k].offset) = argv[++i];
            taken = true;
        }
        for (size_t k = 0; !taken && k < sizeof flags / sizeof flags[0]; k++) {
            if (strcmp(a, flags[k].flag) == 0) {
                *(bool *)((char *)&ag + flags[k].offset) = true;
                taken = true;
            }
        }
        if (taken)
            continue;
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira deid: unknown option '%s'\n", a);
            usage(stderr);
            goto done;
        } else if (ag.from_archive && strchr(a, '=')) {
            if (!mira_cli_add_key(ident, a)) {
                fprintf(stderr, "mira deid: '%s' is not KEY=VALUE with a known keyword or tag\n",
                        a);
                goto done;
            }
        } else if (!list_add(&inputs, a)) {
            fprintf(stderr, "mira deid: out of memory\n");
            goto done;
        }
    }
    outdir = ag.outdir;
    to_archive = ag.to_archive;
    to_index = ag.to_index;
    map_path = ag.map;
    report_path = ag.report;
    secret = ag.secret;
    secret_file = ag.secret_file;
    safe_file = ag.safe_file;
    dates = ag.dates;
    from_archive = ag.from_archive;
    json = ag.json;
    progress = !ag.no_progress;
    o.pseudonym = ag.pseudonym;
    o.uid_root = ag.uid_root;
    o.retain_device = ag.retain_device;
    o.retain_institution = ag.retain_institution;
    o.retain_patient_characteristics = ag.retain_patient;
    o.retain_uids = ag.retain_uids;
    o.retain_safe_private = ag.retain_safe_private;
    o.clean_descriptors = ag.clean_descriptors;
    o.clean_structured_content = ag.clean_structured;
    o.clean_graphics = ag.clean_graphics;
    if (ag.shift) {
        char *end;
        long n = strtol(ag.shift, &end, 10);
        if (*end || !*ag.shift || n < -3660000 || n > 3660000) {
            fprintf(stderr, "mira deid: --date-shift takes a number of days\n");
            goto done;
        }
        o.date_shift_fixed = true;
        o.date_shift_days = (int32_t)n;
        shift_given = true;
    }
    if (!!outdir == !!to_archive) {
        fprintf(stderr, "mira deid: give one of -o DIR and --to-archive DIR\n");
        goto done;
    }
    if (from_archive ? inputs.n > 0 : inputs.n == 0) {
        fprintf(stderr, from_archive ? "mira deid: --from-archive takes KEY=VALUE keys, not "
                                       "paths\n"
                                     : "mira deid: nothing to de-identify (give files or "
                                       "folders, or --from-archive)\n");
        goto done;
    }
    if (dates && strcmp(dates, "full") == 0) {
        o.dates = MIRA_DEID_DATES_FULL;
    } else if (dates && strcmp(dates, "modified") == 0) {
        o.dates = MIRA_DEID_DATES_MODIFIED;
    } else if (dates) {
        fprintf(stderr, "mira deid: --retain-dates takes full or modified\n");
        goto done;
    }
    if (shift_given) {
        if (o.dates == MIRA_DEID_DATES_FULL) {
            fprintf(stderr, "mira deid: --date-shift goes with modified dates, not full\n");
            goto done;
        }
        o.dates = MIRA_DEID_DATES_MODIFIED;
    }
    if (secret && secret_file) {
        fprintf(stderr, "mira deid: give --secret or --secret-file, not both\n");
        goto done;
    }
    if (secret_file) {
        size_t len = 0;
        if (!(secret_buf = read_secret(secret_file, &len))) {
            rc = MIRA_EXIT_INPUT;
            goto done;
        }
        secret = secret_buf;
    }
    if (secret) {
        if (!*secret) {
            fprintf(stderr, "mira deid: the secret is empty\n");
            goto done;
        }
        o.secret = secret;
        o.secret_len = strlen(secret);
    }
    if (safe_file) {
        if (!read_lines(safe_file, &safe)) {
            rc = MIRA_EXIT_INPUT;
            goto done;
        }
        o.safe_private = (const char *const *)safe.v;
        o.nsafe_private = safe.n;
    }
    mira_error *err = NULL;
    run r = {0};
    r.ctx = mira_deid_context_new(&o, &err);
    if (!r.ctx) {
        mira_cli_report("deid", err);
        goto done;
    }
    r.json = json;
    r.outdir = outdir;
    rc = MIRA_EXIT_INPUT;
    mira_archive *source = NULL;
    atomic_out report = {0}, map = {0};
    if (outdir) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", outdir);
        if (!mkdirs(tmp)) {
            fprintf(stderr, "mira deid: cannot create %s: %s\n", outdir, strerror(errno));
            goto finish;
        }
    }
    if (to_archive) {
        mira_archive_cli dest = {to_archive, to_index, -1, NULL};
        if (!(r.dest = mira_cli_open_archive("deid", &dest, true)))
            goto finish;
    }
    if (report_path) {
        if (!atomic_open(&report, report_path, 0644))
            goto finish;
        r.report = report.f;
    }
    sop_list sops = {{0}};
    if (from_archive) {
        if (!(source = mira_cli_open_archive("deid", &src, false)))
            goto finish;
        if (!mira_dataset_get(ident, 0x00080018))
            mira_dataset_set_string(ident, 0x00080018, MIRA_VR_UI, "", NULL);
        mira_find_options fo;
        mira_find_options_init(&fo);
        if (!mira_archive_find(source, MIRA_LEVEL_INSTANCE, ident, &fo, collect_sop, &sops, &err)) {
            mira_cli_report("deid", err);
            list_free(&sops.uids);
            goto finish;
        }
    }
    uint64_t total = from_archive ? sops.uids.n : 0;
    list files = {0};
    for (size_t i = 0; !from_archive && i < inputs.n; i++)
        if (!add_path(&files, inputs.v[i])) {
            fprintf(stderr, "mira deid: out of memory listing the inputs\n");
            list_free(&files);
            goto finish;
        }
    if (!from_archive)
        total = files.n;
    mira_cli_progress_init(&r.progress, "deid", total, progress);
    for (size_t i = 0; i < total; i++) {
        if (from_archive) {
            char *path = mira_archive_instance_path(source, sops.uids.v[i], &err);
            char label[96];
            snprintf(label, sizeof label, "archive:%s", sops.uids.v[i]);
            if (!path) {
                r.failed++;
                outcome(&r, label, "failed", NULL, NULL, NULL, mira_error_get_message(err));
                mira_cli_report("deid", err);
                err = NULL;
            } else {
                one(&r, path, label);
            }
            mira_free(path);
        } else {
            one(&r, files.v[i], files.v[i]);
        }
        mira_cli_progress_update(&r.progress, i + 1);
    }
    mira_cli_progress_done(&r.progress);
    list_free(&files);
    list_free(&sops.uids);
    bool outputs_ok = true;
    if (report.f) {
        r.report = NULL;
        outputs_ok = atomic_commit(&report);
    }
    uint64_t mapped = 0;
    if (map_path) {
        if (atomic_open(&map, map_path, 0600)) {
            fputs("kind,original,replacement\n", map.f);
            mira_deid_context_mapping(r.ctx, map_line, map.f);
            outputs_ok = atomic_commit(&map) && outputs_ok;
            mapped = 1;
        } else {
            outputs_ok = false;
        }
    }
    if (json) {
        printf("{\"summary\":{\"inputs\":%llu,\"written\":%llu,\"skipped\":%llu,\"failed\":%llu,"
               "\"burned_in_risk\":%llu,\"pixel_data_cleaned\":false,\"map\":%s}}\n",
               (unsigned long long)total, (unsigned long long)r.written,
               (unsigned long long)r.skipped, (unsigned long long)r.failed,
               (unsigned long long)r.at_risk, mapped ? "true" : "false");
    } else {
        printf("%llu de-identified to %s, %llu skipped, %llu failed; %llu with a burned-in "
               "annotation risk (pixel data is not cleaned%s)\n",
               (unsigned long long)r.written, outdir ? outdir : to_archive,
               (unsigned long long)r.skipped, (unsigned long long)r.failed,
               (unsigned long long)r.at_risk, report_path ? "; see the report" : "");
        if (map_path && mapped)
            fprintf(stderr, "mira deid: %s re-identifies the data: keep it secret\n", map_path);
    }
    rc = !r.failed && outputs_ok ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
finish:
    atomic_abort(&report);
    atomic_abort(&map);
    mira_archive_close(source);
    mira_archive_close(r.dest);
    mira_deid_context_free(r.ctx);
done:
    list_free(&inputs);
    list_free(&safe);
    mira_dataset_free(ident);
    if (secret_buf) {
        memset(secret_buf, 0, strlen(secret_buf));
        free(secret_buf);
    }
    return rc;
}
