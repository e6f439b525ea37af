/* mira hl7: read HL7 v2 messages (and batch files): their structure, values by path. */
#include "cli.h"

#include "mira/hl7.h"

#include <errno.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira hl7 parse [--json] FILE...\n"
            "       mira hl7 get FILE PATH...\n"
            "       mira hl7 ack [--code AA|AE|AR] [--text T] [--error-code N] [--location L]\n"
            "                    [--control-id ID] FILE\n\n"
            "Read HL7 v2 messages (versions 2.3 to 2.8, any delimiters, batch files with\n"
            "FHS/BHS; segments ended by CR, LF or CR LF; '-' reads standard input).\n"
            "  parse   print each message's segments and fields, one line a field\n"
            "          (SEG-N or SEG(occurrence)-N, the field as encoded), or with --json one\n"
            "          JSON object a message: {\"segments\": [[name, field...]]}, each field an\n"
            "          array of repetitions of components of subcomponents, unescaped, UTF-8\n"
            "  get     print the value of each PATH in each message of FILE, unescaped and in\n"
            "          UTF-8, one a line: PID-5 (its first component), PID-5.2, PID-3(2).1,\n"
            "          OBX(3)-5, MSH-9.2\n"
            "  ack     print the original-mode acknowledgement of each message (HL7 v2.5 2.9.2):\n"
            "          MSA-1 the code (default AA), MSA-3 the text; for AE and AR an ERR segment\n"
            "          with the error code of HL7 table 0357 (default 207) and the location\n"
            "          (SEG^occurrence^field...)\n\n"
            "options:\n"
            "  --json       JSON output (parse)\n"
            "  -h, --help   this help\n\n"
            "exit status: 0 success, 1 a message could not be read, 2 wrong usage\n");
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mira hl7: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = mira_malloc(cap);
    while (buf) {
        if (n == cap) {
            char *b = cap < (1u << 30) ? mira_realloc(buf, cap * 2) : NULL;
            if (!b) {
                mira_free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "mira hl7: %s: %s\n", path, buf ? "read error" : "too large");
        mira_free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

typedef struct hl7_run {
    const char *path;
    bool json;
    bool get, ack;
    mira_hl7_ack_options ack_opt;
    char **paths;
    int npaths;
    size_t index;
    int status;
    mira_json_writer *w;
} hl7_run;

static void print_message(hl7_run *r, const mira_hl7_message *m)
{
    if (r->json) {
        mira_json_writer *w = mira_json_writer_new(false);
        mira_hl7_to_json(m, w);
        size_t n;
        char *text = w ? mira_json_writer_finish(w, &n, NULL) : NULL;
        if (text) {
            fwrite(text, 1, n, stdout);
            fputc('\n', stdout);
        } else {
            fprintf(stderr, "mira hl7: out of memory\n");
            r->status = 1;
        }
        mira_free(text);
        mira_json_writer_free(w);
        return;
    }
    if (r->index > 1)
        fputc('\n', stdout);
    size_t nseg = mira_hl7_segment_count(m);
    char occ[64][4];
    size_t occn[64] = {0}, kinds = 0;
    for (size_t i = 0; i < nseg; i++) {
        const char *name = mira_hl7_segment_name(m, i);
        size_t k = 0;
        while (k < kinds && memcmp(occ[k], name, 3) != 0)
            k++;
        if (k == kinds && kinds < 64) {
            memcpy(occ[kinds], name, 4);
            kinds++;
        }
        size_t o = k < 64 ? ++occn[k] : 0;
        char seg[32], path[64];
        if (o > 1)
            snprintf(seg, sizeof seg, "%s(%zu)", name, o);
        else
            snprintf(seg, sizeof seg, "%s", name);
        char counted[32];
        snprintf(counted, sizeof counted, "%s(%zu)", name, o ? o : 1);
        size_t nf = mira_hl7_count(m, counted); /* its fields ("PID" alone: how many PIDs) */
        printf("%s\n", seg);
        for (size_t f = 1; f <= nf; f++) {
            snprintf(path, sizeof path, "%s-%zu", seg, f);
            char *v = mira_hl7_get_encoded(m, path, NULL);
            if (v && *v)
                printf("  %-12s %s\n", path, v);
            mira_free(v);
        }
    }
}

static bool on_message(void *ctx, const char *text, size_t len)
{
    hl7_run *r = ctx;
    r->index++;
    mira_error *err = NULL;
    mira_hl7_message *m = mira_hl7_parse(text, len, &err);
    if (!m) {
        fprintf(stderr, "mira hl7: %s: message %zu: %s\n", r->path, r->index,
                mira_error_get_message(err));
        r->status = 1;
        if (r->ack) { /* the answer a receiver gives it: AR, with what was wrong */
            char id[32];
            snprintf(id, sizeof id, "MIRA%zu", r->index);
            mira_hl7_ack_options o = r->ack_opt;
            o.code = o.code && strcmp(o.code, "AA") != 0 ? o.code : "AR";
            o.text = o.text ? o.text : mira_error_get_message(err);
            o.error_code = o.error_code ? o.error_code : "100";
            o.control_id = o.control_id ? o.control_id : id;
            size_t n;
            char *ack = mira_hl7_ack(NULL, text, len, &o, &n, NULL);
            for (size_t i = 0; ack && i < n; i++)
                fputc(ack[i] == '\r' ? '\n' : ack[i], stdout);
            mira_free(ack);
        }
        mira_error_free(err);
        return true;
    }
    if (r->ack) {
        char id[32];
        snprintf(id, sizeof id, "MIRA%zu", r->index);
        mira_hl7_ack_options o = r->ack_opt;
        if (!o.control_id)
            o.control_id = id;
        size_t n;
        char *ack = mira_hl7_ack(m, text, len, &o, &n, &err);
        if (!ack) {
            fprintf(stderr, "mira hl7: %s\n", mira_error_get_message(err));
            mira_error_free(err);
            r->status = 1;
        } else {
            for (size_t i = 0; i < n; i++) /* segments a line */
                fputc(ack[i] == '\r' ? '\n' : ack[i], stdout);
            mira_free(ack);
        }
    } else if (r->get) {
        for (int i = 0; i < r->npaths; i++) {
            char *v = mira_hl7_get(m, r->paths[i], &err);
            if (!v) {
                fprintf(stderr, "mira hl7: %s\n", mira_error_get_message(err));
                mira_error_free(err);
                err = NULL;
                r->status = 2;
                mira_hl7_free(m);
                return false;
            }
            printf("%s\n", v);
            mira_free(v);
        }
    } else {
        print_message(r, m);
    }
    mira_hl7_free(m);
    return true;
}

static int run_file(hl7_run *r, const char *path)
{
    size_t len;
    char *text = read_all(path, &len);
    if (!text)
        return 1;
    r->path = path;
    r->index = 0;
    mira_error *err = NULL;
    size_t count = 0;
    if (!mira_hl7_batch_split(text, len, on_message, r, &count, &err)) {
        fprintf(stderr, "mira hl7: %s: %s\n", path, mira_error_get_message(err));
        mira_error_free(err);
        r->status = r->status ? r->status : 1;
    } else if (count == 0) {
        fprintf(stderr, "mira hl7: %s: no HL7 message (no MSH segment)\n", path);
        r->status = r->status ? r->status : 1;
    }
    mira_free(text);
    return r->status;
}

int mira_cli_hl7(int argc, char **argv)
{
    if (argc < 2 || mira_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    hl7_run r = {0};
    const char *sub = argv[1];
    if (strcmp(sub, "get") == 0) {
        r.get = true;
    } else if (strcmp(sub, "ack") == 0) {
        r.ack = true;
    } else if (strcmp(sub, "parse") != 0) {
        fprintf(stderr, "mira hl7: unknown subcommand '%s' (try mira hl7 --help)\n", sub);
        return 2;
    }
    const char *files[256];
    int nfiles = 0;
    char *paths[256];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0 && !r.get && !r.ack) {
            r.json = true;
        } else if (r.ack && i + 1 < argc &&
                   (strcmp(a, "--code") == 0 || strcmp(a, "--text") == 0 ||
                    strcmp(a, "--error-code") == 0 || strcmp(a, "--location") == 0 ||
                    strcmp(a, "--control-id") == 0)) {
            const char *v = argv[++i];
            if (strcmp(a, "--code") == 0) {
                if (strcmp(v, "AA") != 0 && strcmp(v, "AE") != 0 && strcmp(v, "AR") != 0) {
                    fprintf(stderr, "mira hl7 ack: --code is AA, AE or AR, not '%s'\n", v);
                    return 2;
                }
                r.ack_opt.code = v;
            } else if (strcmp(a, "--text") == 0) {
                r.ack_opt.text = v;
            } else if (strcmp(a, "--error-code") == 0) {
                r.ack_opt.error_code = v;
            } else if (strcmp(a, "--location") == 0) {
                r.ack_opt.location = v;
            } else {
                r.ack_opt.control_id = v;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira hl7: unknown option '%s' (try mira hl7 --help)\n", a);
            return 2;
        } else if (r.get && nfiles == 1) {
            if (r.npaths == 256) {
                fprintf(stderr, "mira hl7: at most 256 paths\n");
                return 2;
            }
            paths[r.npaths++] = argv[i];
        } else {
            if (nfiles == 256) {
                fprintf(stderr, "mira hl7: at most 256 files\n");
                return 2;
            }
            files[nfiles++] = a;
        }
    }
    if (nfiles == 0 || (r.get && r.npaths == 0)) {
        fprintf(stderr, r.get ? "mira hl7 get: a FILE and at least one PATH\n"
                              : "mira hl7 parse: no FILE (try mira hl7 --help)\n");
        return 2;
    }
    r.paths = paths;
    for (int i = 0; i < nfiles; i++) {
        run_file(&r, files[i]);
        if (r.status == 2)
            break;
    }
    return r.status;
}
