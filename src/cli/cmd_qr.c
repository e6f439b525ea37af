/* mira qr: Query/Retrieve SCU (C-FIND, C-MOVE, C-GET; Modality Worklist C-FIND). */
#include "cli.h"
#include "scu_options.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_NO_ASSOCIATION = 3, MAX_SOP_CLASSES = 63 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira qr find HOST PORT [-k KEY=VALUE...] [options]\n"
            "       mira qr move HOST PORT --dest AE [-k KEY=VALUE...] [options]\n"
            "       mira qr get HOST PORT (--out DIR | --archive DIR) [-k KEY=VALUE...] [options]\n\n"
            "Query/Retrieve SCU. find sends a C-FIND-RQ and prints each match; move asks the\n"
            "peer to C-STORE what matches to the AE title --dest; get receives it over the same\n"
            "association (C-GET, with SCP role selection for the storage SOP classes).\n\n"
            "options:\n"
            "  --aet AE         our (calling) AE title (default MIRA)\n"
            "  --call AE        the peer's (called) AE title (default ANY-SCP)\n"
            "  --timeout S      seconds for connecting and for each answer (default 30)\n"
            "  --root R         the information model: study (default), patient, or\n"
            "                   worklist (Modality Worklist, find only)\n"
            "  --level L        Query/Retrieve Level: PATIENT, STUDY (default; PATIENT with\n"
            "                   --root patient), SERIES or IMAGE (not sent with worklist)\n"
            "  -k KEY=VALUE     a key of the identifier: a keyword or GGGG,EEEE; an empty\n"
            "                   value asks for it to be returned; SEQUENCE.KEY=VALUE puts the\n"
            "                   key in the sequence's item (repeatable)\n"
            "  --json           find: one DICOM JSON object (PS3.18 F.2) per match and line;\n"
            "                   move, get: one JSON object per response\n"
            "  --limit N        find: send C-CANCEL after N matches\n"
            "  --dest AE        move: the destination AE title (the peer must know it)\n"
            "  --out DIR        get: write each instance received into DIR as\n"
            "                   SOPInstanceUID.dcm (its data set as received)\n"
            "  --archive DIR    get: store each instance received in the archive instead\n"
            "  --sop-class UID  get: a storage SOP class to accept (repeatable; default: the\n"
            "                   common ones, CT, MR, CR, DX, MG, US, SC, NM, PET, RT, XA, SR...)\n"
            "  --no-progress    no progress bar\n"
            "  --relational     find: relational queries; move, get: relational retrieval\n"
            "                   (extended negotiation, PS3.4 C.5.1.1 / C.5.2.1; the peer's\n"
            "                   answer is reported)\n"
            "  --datetime-matching, --fuzzy-matching, --timezone-adjustment  find: ask for\n"
            "                   combined date-time matching, fuzzy semantic matching of person\n"
            "                   names, timezone query adjustment (extended negotiation)\n"
            MIRA_CLI_SCU_HELP            "  -h, --help       this help\n\n"
            "Ctrl-C (SIGINT) during a move or get sends a C-CANCEL-RQ; a second one quits.\n\n"
            "exit status: 0 success (find: final status Success, or cancelled by --limit;\n"
            "move/get: no sub-operation failed), 1 a failure status, failed sub-operations\n"
            "or cancelled,\n"
            "2 wrong usage, 3 no association could be established\n");
}

/* ------------------------------------------------------------------ find */

typedef struct find_ctx {
    const mira_dataset *ident;
    bool json;
    uint64_t matches;
} find_ctx;

static const char *keyword_of(mira_tag tag, char *buf, size_t n)
{
    const mira_dict_entry *d = mira_dict_find(tag);
    if (d && d->keyword && *d->keyword)
        return d->keyword;
    snprintf(buf, n, "(%04X,%04X)", (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF));
    return buf;
}

/* Wide enough for the keyword and for the values a key of its VR usually has. */
static int column_width(const mira_element *e)
{
    char kb[16];
    int w = (int)strlen(keyword_of(mira_element_tag(e), kb, sizeof kb));
    mira_vr vr = mira_element_vr(e);
    int v = vr == MIRA_VR_UI ? 44 : vr == MIRA_VR_PN || vr == MIRA_VR_LO ? 24 : 12;
    return w > v ? w : v;
}

static void print_table_row(const find_ctx *c, const mira_dataset *match)
{
    size_t n = mira_dataset_count(c->ident);
    for (size_t i = 0; i < n; i++) {
        const mira_element *k = mira_dataset_at(c->ident, i);
        const mira_element *e = mira_dataset_get(match, mira_element_tag(k));
        char *v = NULL;
        char items[32] = "";
        if (e && mira_element_vr(e) == MIRA_VR_SQ)
            snprintf(items, sizeof items, "(%zu items)", mira_element_item_count(e));
        else if (e && mira_vr_is_string(mira_element_vr(e)))
            v = mira_element_get_text(e, NULL);
        else if (e)
            snprintf(items, sizeof items, "(%zu values)", mira_element_vm(e));
        const char *s = v ? v : items;
        for (char *p = v; p && *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
        printf("%s%-*s", i ? "  " : "", column_width(k), s);
        mira_free(v);
    }
    putchar('\n');
}

static bool on_match(void *arg, const mira_dataset *match)
{
    find_ctx *c = arg;
    if (c->json) {
        mira_json_options jo = {.no_pixels = true};
        mira_error *err = NULL;
        char *j = mira_dataset_to_json(match, &jo, &err);
        if (!j) {
            mira_cli_report("qr", err);
            return false;
        }
        printf("%s\n", j);
        mira_free(j);
    } else {
        if (c->matches == 0) {
            size_t n = mira_dataset_count(c->ident);
            for (size_t i = 0; i < n; i++) {
                const mira_element *k = mira_dataset_at(c->ident, i);
                char kb[16];
                printf("%s%-*s", i ? "  " : "", column_width(k),
                       keyword_of(mira_element_tag(k), kb, sizeof kb));
            }
            putchar('\n');
        }
        print_table_row(c, match);
    }
    fflush(stdout);
    c->matches++;
    return true;
}

/* ------------------------------------------------------------------ move, get */

typedef struct retrieve_ctx {
    bool json, move;
    mira_cli_progress progress;
    int completed, failed, warning; /* the last response's */
    uint64_t received, kept_failed;
    mira_archive *archive; /* get --archive */
} retrieve_ctx;

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void on_response(void *arg, const mira_dimse_retrieve_status *st)
{
    retrieve_ctx *c = arg;
    if (st->completed >= 0)
        c->completed = st->completed;
    if (st->failed >= 0)
        c->failed = st->failed;
    if (st->warning >= 0)
        c->warning = st->warning;
    int done = (c->completed > 0 ? c->completed : 0) + (c->failed > 0 ? c->failed : 0) +
               (c->warning > 0 ? c->warning : 0);
    if (!st->final && st->remaining >= 0) {
        c->progress.total = (uint64_t)(done + st->remaining);
        mira_cli_progress_update(&c->progress, (uint64_t)done);
    }
    if (!c->json)
        return;
    printf("{\"status\":%u,\"final\":%s", st->status, st->final ? "true" : "false");
    static const char *const names[] = {"remaining", "completed", "failed", "warning"};
    int v[4] = {st->remaining, st->completed, st->failed, st->warning};
    for (int i = 0; i < 4; i++)
        if (v[i] >= 0)
            printf(",\"%s\":%d", names[i], v[i]);
    if (*st->error_comment) {
        printf(",\"error_comment\":");
        json_str(st->error_comment);
    }
    if (st->final) {
        printf(",\"failed_sop_instance_uids\":[");
        const char *p = st->failed_uids;
        for (int first = 1; *p; first = 0) {
            const char *e = strchr(p, '\\');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            printf("%s\"%.*s\"", first ? "" : ",", (int)n, p);
            p += n + (e != NULL);
        }
        printf("]");
        if (!c->move)
            printf(",\"received\":%llu", (unsigned long long)c->received);
    }
    printf("}\n");
    fflush(stdout);
}

static uint16_t on_received(void *arg, const char *path, const char *sop_class,
                            const char *sop_instance, const char *ts)
{
    (void)sop_class;
    (void)ts;
    retrieve_ctx *c = arg;
    if (!c->archive) {
        c->received++;
        return 0x0000;
    }
    mira_error *err = NULL;
    bool ok = mira_archive_store_file(c->archive, path, NULL, &err);
    unlink(path);
    if (!ok) {
        fprintf(stderr, "mira qr: %s: not stored: %s\n", sop_instance,
                mira_error_get_message(err));
        mira_error_free(err);
        c->kept_failed++;
        return 0xA700;
    }
    c->received++;
    return 0x0000;
}

static bool make_dir(const char *d)
{
    struct stat st;
    if (stat(d, &st) == 0)
        return S_ISDIR(st.st_mode);
    return mkdir(d, 0755) == 0;
}

/* ------------------------------------------------------------------ the command */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

int mira_cli_qr(int argc, char **argv)
{
    if (argc < 2 || mira_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MIRA_EXIT_USAGE : MIRA_EXIT_OK;
    }
    const char *op = argv[1];
    bool find = strcmp(op, "find") == 0, move = strcmp(op, "move") == 0,
         get = strcmp(op, "get") == 0;
    if (!find && !move && !get) {
        fprintf(stderr, "mira qr: unknown operation '%s' (find, move or get)\n", op);
        return MIRA_EXIT_USAGE;
    }
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    mira_dimse_qr_options q;
    mira_dimse_qr_options_init(&q);
    mira_cli_scu scu = {.sub = "qr"};
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    bool json = false, progress = true, root_patient = false;
    const char *pos[2] = {NULL, NULL}, *level = NULL, *out = NULL;
    const char *classes[MAX_SOP_CLASSES];
    size_t nclasses = 0;
    int npos = 0, rc = MIRA_EXIT_USAGE;
    char *spool = NULL;
    retrieve_ctx rctx;
    memset(&rctx, 0, sizeof rctx);
    rctx.completed = rctx.failed = rctx.warning = -1;
    mira_dataset *ident = mira_dataset_new(NULL);
    if (!ident)
        return MIRA_EXIT_INPUT;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (get) {
            int r = mira_cli_archive_option(argc, argv, &i, &ao);
            if (r < 0) {
                fprintf(stderr, "mira qr: bad value for %s\n", a);
                goto done;
            }
            if (r > 0)
                continue;
        }
        int taken = mira_cli_scu_option(&scu, argc, argv, &i);
        if (taken < 0)
            goto done;
        if (taken > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--relational") == 0) {
            q.relational = scu.ext_sent = true;
        } else if (find && (strcmp(a, "--datetime-matching") == 0 ||
                            strcmp(a, "--fuzzy-matching") == 0 ||
                            strcmp(a, "--timezone-adjustment") == 0)) {
            bool *flag = a[2] == 'd' ? &q.datetime_matching
                         : a[2] == 'f' ? &q.fuzzy_matching
                                       : &q.timezone_adjustment;
            *flag = scu.ext_sent = true;
        } else if ((strcmp(a, "--aet") == 0 || strcmp(a, "--call") == 0 ||
                    (move && strcmp(a, "--dest") == 0)) &&
                   has && strlen(argv[i + 1]) <= 16 && *argv[i + 1]) {
            if (a[2] == 'a')
                o.calling_ae = argv[++i];
            else if (a[2] == 'c')
                o.called_ae = argv[++i];
            else
                q.move_destination = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && has && atoi(argv[i + 1]) > 0) {
            o.timeout_seconds = atoi(argv[++i]);
        } else if (strcmp(a, "--root") == 0 && has) {
            const char *r = argv[++i];
            if (strcmp(r, "study") == 0) {
                q.root = MIRA_DIMSE_QR_STUDY;
            } else if (strcmp(r, "patient") == 0) {
                q.root = MIRA_DIMSE_QR_PATIENT;
                root_patient = true;
            } else if (strcmp(r, "worklist") == 0 && find) {
                q.root = MIRA_DIMSE_QR_WORKLIST;
            } else {
                fprintf(stderr, "mira qr: --root: patient, study%s\n", find ? " or worklist" : "");
                goto done;
            }
        } else if (strcmp(a, "--level") == 0 && has) {
            mira_level lv;
            level = argv[++i];
            if (!mira_level_from_name(level, &lv)) {
                fprintf(stderr, "mira qr: --level: PATIENT, STUDY, SERIES or IMAGE\n");
                goto done;
            }
            level = mira_level_name(lv);
        } else if ((strcmp(a, "-k") == 0 || strcmp(a, "--key") == 0) && has) {
            const char *k = argv[++i];
            if (!mira_cli_add_key(ident, k)) {
                fprintf(stderr, "mira qr: '%s' is not KEY=VALUE with a known keyword or tag\n",
                        k);
                goto done;
            }
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = false;
        } else if (find && strcmp(a, "--limit") == 0 && has && atoll(argv[i + 1]) > 0) {
            q.limit = (uint64_t)atoll(argv[++i]);
        } else if (get && strcmp(a, "--out") == 0 && has) {
            out = argv[++i];
        } else if (get && strcmp(a, "--sop-class") == 0 && has) {
            if (nclasses == MAX_SOP_CLASSES) {
                fprintf(stderr, "mira qr: at most %d --sop-class\n", MAX_SOP_CLASSES);
                goto done;
            }
            classes[nclasses++] = argv[++i];
        } else if (a[0] != '-' && npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "mira qr %s: unknown option or bad value: %s\n", op, a);
            usage(stderr);
            goto done;
        }
    }
    char *end = NULL;
    long port = npos == 2 ? strtol(pos[1], &end, 10) : 0;
    if (npos != 2 || *end || port <= 0 || port > 65535) {
        usage(stderr);
        goto done;
    }
    if (move && !q.move_destination) {
        fprintf(stderr, "mira qr move: --dest AE is required\n");
        goto done;
    }
    if (get && !out == !ao.dir) {
        fprintf(stderr, "mira qr get: --out DIR or --archive DIR (one of them) is required\n");
        goto done;
    }
    if (!mira_cli_scu_finish(&scu, &o))
        goto done;
    if (nclasses) {
        q.sop_classes = classes;
        q.nsop_classes = nclasses;
    }
    if (q.root != MIRA_DIMSE_QR_WORKLIST &&
        !mira_dataset_get(ident, MIRA_TAG(0x0008, 0x0052)) &&
        !mira_dataset_set_string(ident, MIRA_TAG(0x0008, 0x0052), MIRA_VR_CS,
                                 level ? level : root_patient ? "PATIENT" : "STUDY", NULL)) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    rc = MIRA_EXIT_INPUT;
    uint16_t status = 0xFFFF;
    mira_error *err = NULL;
    bool ok;
    if (find) {
        find_ctx c = {ident, json, 0};
        ok = mira_dimse_find(pos[0], (int)port, &o, &q, ident, on_match, &c, &status, &err);
        if (ok) {
            bool cancelled = status == 0xFE00 && q.limit && c.matches >= q.limit;
            if (!json)
                printf("%llu match%s, status 0x%04X%s\n", (unsigned long long)c.matches,
                       c.matches == 1 ? "" : "es", status,
                       status == 0 ? " (success)" : cancelled ? " (cancelled after --limit)" : "");
            else if (status != 0 && !cancelled)
                fprintf(stderr, "mira qr: C-FIND ended with status 0x%04X\n", status);
            rc = status == 0 || cancelled ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
        }
    } else {
        rctx.json = json;
        rctx.move = move;
        if (get && ao.dir) {
            if (!(rctx.archive = mira_cli_open_archive("qr", &ao, true)))
                goto done;
            const char *dir = mira_archive_dir(rctx.archive);
            size_t n = strlen(dir) + 32;
            spool = mira_malloc(n);
            if (!spool)
                goto done;
            snprintf(spool, n, "%s/qr-get.XXXXXX", dir);
            if (!mkdtemp(spool)) {
                fprintf(stderr, "mira qr: %s: %s\n", spool, strerror(errno));
                mira_free(spool);
                spool = NULL;
                goto done;
            }
            q.out_dir = spool;
        } else if (get) {
            if (!make_dir(out)) {
                fprintf(stderr, "mira qr: %s: cannot make the folder: %s\n", out,
                        strerror(errno));
                goto done;
            }
            q.out_dir = out;
        }
        /* Ctrl-C: a C-CANCEL-RQ (the handler puts the default back: a second one quits) */
        struct sigaction sa, old_sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        sigaction(SIGINT, &sa, &old_sa);
        q.cancel = &interrupted;
        mira_cli_progress_init(&rctx.progress, move ? "move" : "get", 0, progress);
        ok = move ? mira_dimse_move(pos[0], (int)port, &o, &q, ident, on_response, &rctx,
                                    &status, &err)
                  : mira_dimse_get(pos[0], (int)port, &o, &q, ident, on_response, on_received,
                                   &rctx, &status, &err);
        mira_cli_progress_done(&rctx.progress);
        sigaction(SIGINT, &old_sa, NULL);
        if (ok) {
            int failed = rctx.failed > 0 ? rctx.failed : 0;
            if (!json) {
                printf("C-%s: status 0x%04X%s, %d completed, %d failed, %d warnings",
                       move ? "MOVE" : "GET", status,
                       status == 0        ? " (success)"
                       : status == 0xFE00 ? " (cancelled)"
                                          : "",
                       rctx.completed > 0 ? rctx.completed : 0, failed,
                       rctx.warning > 0 ? rctx.warning : 0);
                if (get)
                    printf(", %llu received into %s", (unsigned long long)rctx.received,
                           ao.dir ? mira_archive_dir(rctx.archive) : out);
                printf("\n");
            }
            rc = (status == 0x0000 || status == 0xB000) && failed == 0 && !rctx.kept_failed
                     ? MIRA_EXIT_OK
                     : MIRA_EXIT_INPUT;
            if (rc != MIRA_EXIT_OK && !json)
                fprintf(stderr, "mira qr: the %s did not succeed (status 0x%04X)\n",
                        move ? "C-MOVE" : "C-GET", status);
        }
    }
    if (!ok) {
        mira_error_code code = mira_error_get_code(err);
        if (code == MIRA_ERR_ARGUMENT) {
            rc = MIRA_EXIT_USAGE;
        } else {
            bool answered = rctx.completed >= 0 || rctx.failed >= 0;
            rc = code == MIRA_ERR_CONFLICT || (code == MIRA_ERR_IO && !answered)
                     ? EXIT_NO_ASSOCIATION
                     : MIRA_EXIT_INPUT;
        }
        mira_cli_report("qr", err);
    }
done:
    mira_cli_scu_free(&scu);
    if (spool) {
        rmdir(spool); /* empty: each instance was stored and removed */
        mira_free(spool);
    }
    mira_archive_close(rctx.archive);
    mira_dataset_free(ident);
    return rc;
}
