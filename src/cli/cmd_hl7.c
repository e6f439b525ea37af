/* mira hl7: read HL7 v2 messages (and batch files): their structure, values by path. */
#include "cli.h"

#include "mira/hl7.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira hl7 parse [--json] FILE...\n"
            "       mira hl7 get FILE PATH...\n"
            "       mira hl7 ack [--code AA|AE|AR] [--text T] [--error-code N] [--location L]\n"
            "                    [--control-id ID] FILE\n"
            "       mira hl7 send [--tls ...] [--timeout S] [--json] HOST:PORT FILE...\n"
            "       mira hl7 import [--archive DIR] [--json] FILE...\n"
            "       mira hl7 results [--archive DIR] --study UID [--to APP^FACILITY] [-o OUT]\n"
            "                        RESULTS.json\n"
            "       mira hl7 messages [--archive DIR] [--code AA|AE|AR] [--control-id ID]\n"
            "                    [--after ID] [--limit N] [--text] [--json]\n\n"
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
            "          (SEG^occurrence^field...)\n"
            "  send    send each message of the FILEs over MLLP (HL7 v2.5 Appendix C) to an HL7\n"
            "          receiver such as 'mira serve --hl7-port', one at a time, each waiting\n"
            "          for its ACK; prints a line per message (file, number, MSH-10, MSA-1 and\n"
            "          the text of MSA-3 or ERR-8), or a JSON object per message with --json\n"
            "  import  keep each message of the FILEs in the archive as if it had come over MLLP\n"
            "          (the same checks, repeats of MSH-10 recognised), then act on them (ADT,\n"
            "          orders, reports): for messages exported from another system; prints a\n"
            "          line per message (file, number, MSH-10, the ACK code, why)\n"
            "  results write an ORU^R01 with the analysis results of a study of the archive:\n"
            "          RESULTS.json is 'mira features --json' output (tag: value); PID is the\n"
            "          study's patient, OBR its accession number, ZDS-1 its Study Instance UID,\n"
            "          an OBX per result (NM, the IBSI tag). Send it with 'mira hl7 send':\n"
            "          mira hl7 results --study UID r.json | mira hl7 send HOST:PORT -\n"
            "  messages  list the messages 'mira serve' received and kept (id, time, peer,\n"
            "          MSH-10, type, the ACK code it got and why), oldest first; --text\n"
            "          prints each message too (segments a line), --json one object a message\n"
            "          with its text\n\n"
            "options:\n"
            "  --json       JSON output (parse, send, messages)\n"
            "  --tls        send over TLS; --tls-ca FILE the CA the receiver's certificate must\n"
            "               chain to, --tls-cert/--tls-key FILE ours, --tls-no-verify none\n"
            "  --timeout S  seconds to connect and to wait for each ACK (default 30)\n"
            "  -h, --help   this help\n\n"
            "exit status: 0 success (send: every message answered AA), 1 a message could not\n"
            "be read, was not answered or was answered AE or AR, 2 wrong usage\n");
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

/* ------------------------------------------------------------------ send */

typedef struct send_run {
    mira_hl7_client *c;
    const char *path;
    size_t index;
    bool json;
    int status;
    uint64_t sent, accepted;
    bool broken; /* the connection failed: stop */
} send_run;

/* Members of string values (NULL: null), kv holding key, value pairs. */
static void json_members(mira_json_writer *w, const char *const *kv, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        mira_json_key(w, kv[i]);
        if (kv[i + 1])
            mira_json_cstring(w, kv[i + 1]);
        else
            mira_json_null(w);
    }
}

/* The object w holds, ended and printed as one line. */
static void json_print(mira_json_writer *w)
{
    mira_json_end_object(w);
    mira_cli_print_json(w);
}

static void json_line(const char *const *kv, size_t n)
{
    mira_json_writer *w = mira_json_writer_new(false);
    if (!w)
        return;
    mira_json_begin_object(w);
    json_members(w, kv, n);
    json_print(w);
}

static bool send_one(void *ctx, const char *text, size_t len)
{
    send_run *r = ctx;
    r->index++;
    mira_hl7_message *m = mira_hl7_parse(text, len, NULL);
    char *control = m ? mira_hl7_get(m, "MSH-10", NULL) : NULL;
    mira_hl7_free(m);
    mira_error *err = NULL;
    size_t alen = 0;
    char *ack = mira_hl7_client_send(r->c, text, len, &alen, &err);
    char number[32];
    snprintf(number, sizeof number, "%zu", r->index);
    r->sent++;
    if (!ack) {
        fprintf(stderr, "mira hl7 send: %s: message %zu (%s): %s\n", r->path, r->index,
                control ? control : "?", mira_error_get_message(err));
        mira_error_free(err);
        mira_free(control);
        r->status = 1;
        r->broken = true;
        return false;
    }
    mira_hl7_message *a = mira_hl7_parse(ack, alen, NULL);
    char *code = a ? mira_hl7_get(a, "MSA-1", NULL) : NULL;
    char *about = a ? mira_hl7_get(a, "MSA-2", NULL) : NULL;
    char *why = a ? mira_hl7_get(a, "ERR-8", NULL) : NULL;
    if (why && !*why) {
        mira_free(why);
        why = a ? mira_hl7_get(a, "MSA-3", NULL) : NULL;
    }
    const char *problem = NULL;
    if (!a || !code || !*code)
        problem = "the answer is not an HL7 acknowledgement";
    else if (control && about && strcmp(control, about) != 0)
        problem = "the acknowledgement is for another message (MSA-2)";
    bool ok = !problem && (strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0);
    if (ok)
        r->accepted++;
    else
        r->status = 1;
    if (r->json) {
        const char *kv[] = {"file", r->path, "message", number, "control_id", control,
                            "ack_code", code && *code ? code : NULL, "text",
                            problem ? problem : why && *why ? why : NULL};
        json_line(kv, 10);
    } else {
        printf("%s\tmessage %zu\t%s\t%s%s%s\n", r->path, r->index, control ? control : "?",
               code && *code ? code : "?", problem || (why && *why) ? "\t" : "",
               problem ? problem : why ? why : "");
    }
    fflush(stdout);
    mira_free(code);
    mira_free(about);
    mira_free(why);
    mira_hl7_free(a);
    mira_free(ack);
    mira_free(control);
    return true;
}

static bool host_port(const char *s, char *host, size_t n, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= n)
        return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return false;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') { /* [IPv6]:port */
        h++;
        hl -= 2;
    }
    snprintf(host, n, "%.*s", (int)hl, h);
    *port = (int)p;
    return true;
}

static int cmd_send(int argc, char **argv)
{
    mira_hl7_client_options o = {0};
    send_run r = {0};
    const char *files[256], *target = NULL;
    int nfiles = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            r.json = true;
        } else if (strcmp(a, "--tls") == 0) {
            o.tls = true;
        } else if (strcmp(a, "--tls-no-verify") == 0) {
            o.tls = o.tls_no_verify = true;
        } else if (has && (strcmp(a, "--tls-ca") == 0 || strcmp(a, "--tls-cert") == 0 ||
                           strcmp(a, "--tls-key") == 0)) {
            const char **d = strcmp(a, "--tls-ca") == 0     ? &o.tls_ca
                             : strcmp(a, "--tls-cert") == 0 ? &o.tls_cert
                                                            : &o.tls_key;
            *d = argv[++i];
            o.tls = true;
        } else if (strcmp(a, "--timeout") == 0 && has) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 86400) {
                fprintf(stderr, "mira hl7 send: --timeout takes seconds, 1 to 86400\n");
                return 2;
            }
            o.timeout_ms = (int)t * 1000;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira hl7 send: unknown option or missing value: %s\n", a);
            return 2;
        } else if (!target) {
            target = a;
        } else if (nfiles < 256) {
            files[nfiles++] = a;
        } else {
            fprintf(stderr, "mira hl7 send: at most 256 files\n");
            return 2;
        }
    }
    char host[256];
    if (!target || !host_port(target, host, sizeof host, &o.port)) {
        fprintf(stderr, "mira hl7 send: the receiver is HOST:PORT (try mira hl7 --help)\n");
        return 2;
    }
    if (nfiles == 0) {
        fprintf(stderr, "mira hl7 send: no FILE to send\n");
        return 2;
    }
    o.host = host;
    mira_error *err = NULL;
    r.c = mira_hl7_connect(&o, &err);
    if (!r.c) {
        fprintf(stderr, "mira hl7 send: %s: %s\n", target, mira_error_get_message(err));
        mira_error_free(err);
        return 1;
    }
    for (int i = 0; i < nfiles && !r.broken; i++) {
        size_t len;
        char *text = read_all(files[i], &len);
        if (!text) {
            r.status = 1;
            continue;
        }
        r.path = files[i];
        r.index = 0;
        size_t count = 0;
        if (!mira_hl7_batch_split(text, len, send_one, &r, &count, &err) && !r.broken) {
            fprintf(stderr, "mira hl7 send: %s: %s\n", files[i], mira_error_get_message(err));
            mira_error_free(err);
            err = NULL;
            r.status = 1;
        } else if (count == 0 && !r.broken) {
            fprintf(stderr, "mira hl7 send: %s: no HL7 message (no MSH segment)\n", files[i]);
            r.status = 1;
        }
        mira_free(text);
    }
    mira_hl7_client_close(r.c);
    fprintf(stderr, "mira hl7 send: %llu sent, %llu accepted (AA)\n",
            (unsigned long long)r.sent, (unsigned long long)r.accepted);
    return r.status;
}

/* ------------------------------------------------------------------ import */

typedef struct import_run {
    mira_archive *archive;
    const char *path;
    size_t index;
    bool json;
    int status;
    uint64_t kept, accepted;
} import_run;

static bool import_one(void *ctx, const char *text, size_t len)
{
    import_run *r = ctx;
    r->index++;
    const char *code = "AR";
    size_t alen = 0;
    mira_error *err = NULL;
    char *ack = mira_hl7_receive(r->archive, text, len, false, "import", NULL, NULL, &code,
                                 &alen, &err);
    if (!ack) {
        fprintf(stderr, "mira hl7 import: %s: message %zu: %s\n", r->path, r->index,
                mira_error_get_message(err));
        mira_error_free(err);
        r->status = 1;
        return false;
    }
    mira_hl7_message *a = mira_hl7_parse(ack, alen, NULL);
    char *about = a ? mira_hl7_get(a, "MSA-2", NULL) : NULL;
    char *why = a ? mira_hl7_get(a, "MSA-3", NULL) : NULL;
    r->kept++;
    if (strcmp(code, "AA") == 0)
        r->accepted++;
    else
        r->status = 1;
    char number[32];
    snprintf(number, sizeof number, "%zu", r->index);
    if (r->json) {
        const char *kv[] = {"file", r->path, "message", number, "control_id",
                            about && *about ? about : NULL, "ack_code", code, "text",
                            why && *why ? why : NULL};
        json_line(kv, 10);
    } else {
        printf("%s\tmessage %zu\t%s\t%s%s%s\n", r->path, r->index, about && *about ? about : "?",
               code, why && *why ? "\t" : "", why ? why : "");
    }
    mira_free(about);
    mira_free(why);
    mira_hl7_free(a);
    mira_free(ack);
    return true;
}

static int cmd_import(int argc, char **argv)
{
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    import_run r = {0};
    const char *files[256];
    int nfiles = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int k = mira_cli_archive_option(argc, argv, &i, &ao);
        if (k < 0) {
            fprintf(stderr, "mira hl7 import: bad value for %s\n", a);
            return 2;
        }
        if (k > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            r.json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira hl7 import: unknown option: %s\n", a);
            return 2;
        } else if (nfiles < 256) {
            files[nfiles++] = a;
        } else {
            fprintf(stderr, "mira hl7 import: at most 256 files\n");
            return 2;
        }
    }
    if (!nfiles) {
        fprintf(stderr, "mira hl7 import: no FILE (try mira hl7 --help)\n");
        return 2;
    }
    r.archive = mira_cli_open_archive("hl7 import", &ao, true);
    if (!r.archive)
        return 1;
    mira_error *err = NULL;
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char *text = read_all(files[i], &len);
        if (!text) {
            r.status = 1;
            continue;
        }
        r.path = files[i];
        r.index = 0;
        size_t count = 0;
        if (!mira_hl7_batch_split(text, len, import_one, &r, &count, &err)) {
            fprintf(stderr, "mira hl7 import: %s: %s\n", files[i], mira_error_get_message(err));
            mira_error_free(err);
            err = NULL;
            r.status = 1;
        } else if (count == 0) {
            fprintf(stderr, "mira hl7 import: %s: no HL7 message (no MSH segment)\n", files[i]);
            r.status = 1;
        }
        mira_free(text);
    }
    /* act on them (and on any the archive holds that were not acted on yet) */
    size_t done = 0, total = 0;
    bool ok = true;
    do {
        ok = mira_archive_hl7_apply(r.archive, 1000, &done, &err);
        total += done;
    } while (ok && done == 1000);
    if (!ok) {
        mira_cli_report("hl7 import", err);
        r.status = 1;
    }
    mira_archive_close(r.archive);
    fprintf(stderr, "mira hl7 import: %llu kept, %llu accepted (AA), %zu acted on\n",
            (unsigned long long)r.kept, (unsigned long long)r.accepted, total);
    return r.status;
}

/* ------------------------------------------------------------------ messages */

typedef struct list_run {
    bool json, text;
    uint64_t n;
} list_run;

static bool list_one(void *ctx, const mira_hl7_stored *m)
{
    list_run *r = ctx;
    r->n++;
    if (r->json) {
        mira_json_writer *w = mira_json_writer_new(false);
        if (!w)
            return false;
        mira_json_begin_object(w);
        mira_json_key(w, "id");
        mira_json_int(w, m->id);
        const char *kv[] = {"received_at", m->received_at, "peer", m->peer, "sender", m->sender,
                            "control_id", m->control_id, "message_type", m->message_type,
                            "version", m->version, "ack_code", m->ack_code, "error", m->error,
                            "processed_at", m->processed_at, "process_error", m->process_error};
        json_members(w, kv, sizeof kv / sizeof kv[0]);
        mira_json_key(w, "duplicates");
        mira_json_int(w, m->duplicates);
        mira_json_key(w, "message");
        mira_json_string(w, m->text, m->len);
        json_print(w);
        return true;
    }
    printf("%lld\t%s\t%s\t%s\t%s\t%s%s%s", (long long)m->id, m->received_at ? m->received_at : "",
           m->peer ? m->peer : "", m->control_id ? m->control_id : "-",
           m->message_type ? m->message_type : "-", m->ack_code ? m->ack_code : "?",
           m->error ? "\t" : "", m->error ? m->error : "");
    if (m->duplicates)
        printf("\t(%lld repeats)", (long long)m->duplicates);
    fputc('\n', stdout);
    if (r->text) {
        for (size_t i = 0; i < m->len; i++)
            fputc(m->text[i] == '\r' ? '\n' : m->text[i], stdout);
        if (m->len && m->text[m->len - 1] != '\r' && m->text[m->len - 1] != '\n')
            fputc('\n', stdout);
        fputc('\n', stdout);
    }
    return true;
}

static int cmd_messages(int argc, char **argv)
{
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    mira_hl7_list_options o = {0};
    list_run r = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int k = mira_cli_archive_option(argc, argv, &i, &ao);
        if (k < 0) {
            fprintf(stderr, "mira hl7 messages: bad value for %s\n", a);
            return 2;
        }
        if (k > 0)
            continue;
        bool has = i + 1 < argc;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            r.json = true;
        } else if (strcmp(a, "--text") == 0) {
            r.text = true;
        } else if (strcmp(a, "--code") == 0 && has) {
            o.ack_code = argv[++i];
            if (strcmp(o.ack_code, "AA") != 0 && strcmp(o.ack_code, "AE") != 0 &&
                strcmp(o.ack_code, "AR") != 0) {
                fprintf(stderr, "mira hl7 messages: --code is AA, AE or AR\n");
                return 2;
            }
        } else if (strcmp(a, "--control-id") == 0 && has) {
            o.control_id = argv[++i];
        } else if ((strcmp(a, "--after") == 0 || strcmp(a, "--limit") == 0) && has) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 0) {
                fprintf(stderr, "mira hl7 messages: %s takes a number\n", a);
                return 2;
            }
            if (a[2] == 'a')
                o.after_id = v;
            else
                o.limit = (size_t)v;
        } else {
            fprintf(stderr, "mira hl7 messages: unknown option or missing value: %s\n", a);
            return 2;
        }
    }
    mira_archive *archive = mira_cli_open_archive("hl7 messages", &ao, false);
    if (!archive)
        return 1;
    mira_error *err = NULL;
    bool ok = mira_archive_hl7_list(archive, &o, list_one, &r, &err);
    mira_archive_close(archive);
    if (!ok) {
        mira_cli_report("hl7 messages", err);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ results */

static int cmd_results(int argc, char **argv)
{
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    const char *study = NULL, *to = NULL, *input = NULL, *output = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int k = mira_cli_archive_option(argc, argv, &i, &ao);
        if (k < 0) {
            fprintf(stderr, "mira hl7 results: bad value for %s\n", a);
            return 2;
        }
        if (k > 0)
            continue;
        bool has = i + 1 < argc;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--study") == 0 && has) {
            study = argv[++i];
        } else if (strcmp(a, "--to") == 0 && has) {
            to = argv[++i];
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has) {
            output = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira hl7 results: unknown option or missing value: %s\n", a);
            return 2;
        } else if (!input) {
            input = a;
        } else {
            fprintf(stderr, "mira hl7 results: one RESULTS file\n");
            return 2;
        }
    }
    if (!study) {
        fprintf(stderr, "mira hl7 results: give --study UID (and a RESULTS file, else the "
                        "results kept by mira features --study)\n");
        return 2;
    }
    mira_error *err = NULL;
    mira_json *j = NULL;
    size_t len = 0, n = 0;
    mira_feature *v = NULL;
    mira_features kept = {0};
    int rc = 0;
    if (input) {
        char *text = read_all(input, &len);
        if (!text)
            return 1;
        j = mira_json_parse(text, len, &err);
        mira_free(text);
        if (!j || mira_json_get_type(j) != MIRA_JSON_OBJECT) {
            fprintf(stderr, "mira hl7 results: %s: %s\n", input,
                    j ? "not a JSON object of tag: value (mira features --json)"
                      : mira_error_get_message(err));
            mira_error_free(err);
            mira_json_free(j);
            return 1;
        }
        n = mira_json_count(j);
        v = mira_calloc(n ? n : 1, sizeof *v);
        rc = v ? 0 : 1;
    }
    for (size_t i = 0; input && rc == 0 && i < n; i++) {
        const mira_json *x = mira_json_at(j, i);
        const char *tag = mira_json_key_at(j, i);
        mira_json_type t = mira_json_get_type(x);
        if ((t != MIRA_JSON_NUMBER && t != MIRA_JSON_NULL) || strlen(tag) >= sizeof v[i].tag) {
            fprintf(stderr, "mira hl7 results: %s: \"%s\" is not a number (or null)\n", input,
                    tag);
            rc = 1;
            break;
        }
        snprintf(v[i].tag, sizeof v[i].tag, "%s", tag);
        v[i].value = t == MIRA_JSON_NUMBER ? mira_json_get_number(x) : NAN;
    }
    mira_archive *ar = rc == 0 ? mira_cli_open_archive("hl7 results", &ao, false) : NULL;
    char *msg = NULL;
    if (ar && !input && !mira_archive_results_get(ar, study, NULL, &kept, &err)) {
        mira_cli_report("hl7 results", err);
    } else if (ar && !input && kept.n == 0) {
        fprintf(stderr, "mira hl7 results: no results are kept for study %s (mira features "
                        "--study)\n",
                study);
    } else if (ar) {
        if (!input) { /* the kept ones */
            v = kept.v;
            n = kept.n;
        }
        msg = mira_hl7_results_message(ar, study, v, n, to, &len, &err);
        if (!msg)
            mira_cli_report("hl7 results", err);
    }
    if (msg) {
        FILE *f = output ? fopen(output, "wb") : stdout;
        if (!f || fwrite(msg, 1, len, f) != len || (output && fclose(f) != 0)) {
            fprintf(stderr, "mira hl7 results: %s: %s\n", output ? output : "stdout",
                    strerror(errno));
            msg[0] = 0;
        }
    }
    rc = msg && msg[0] ? 0 : 1;
    mira_free(msg);
    mira_archive_close(ar);
    mira_free(v); /* (the kept ones too, when they were used) */
    if (v != kept.v)
        mira_features_cleanup(&kept);
    mira_json_free(j);
    return rc;
}

int mira_cli_hl7(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "send") == 0)
        return cmd_send(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "messages") == 0)
        return cmd_messages(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "import") == 0)
        return cmd_import(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "results") == 0)
        return cmd_results(argc, argv);
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
