/* mira serve: the DICOM server (Verification, Storage, Query/Retrieve, Worklist, MPPS and
 * Storage Commitment SCP) and the HTTP server (QIDO-RS) on the archive. */
#include "cli.h"
#include "serve_security.h"
#include "serve_peers.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira serve [options]\n"
            "Runs the DICOM server: Verification (C-ECHO), Storage (C-STORE of every storage\n"
            "SOP class), Query/Retrieve (C-FIND, C-MOVE, C-GET; Patient and Study Root, with\n"
            "C-CANCEL), Modality Worklist FIND, MPPS (N-CREATE, N-SET) and Storage Commitment\n"
            "(N-ACTION, N-EVENT-REPORT) SCP; each instance received is stored in the archive\n"
            "before it is acknowledged. Stops on SIGINT or SIGTERM. Options override the\n"
            "\"dimse\" object of the config file ($MIRA_CONFIG, else ./mira.json): {\"port\",\n"
            "\"bind\", \"ae_title\",\n"
            "\"calling_ae_titles\": [...], \"transfer_syntaxes\": [...], \"max_associations\",\n"
            "\"max_pdu\", \"artim_seconds\", \"idle_seconds\", \"commit_retry\": [S, ...],\n"
            "\"commit_retry_seconds\", \"tls\": {\"cert\", \"key\", \"ca\",\n"
            "\"verify_peer\", \"port\", \"only\"}, \"accept\": {\"AE\": [\"store\", ...] or\n"
            "{\"permissions\": [...], \"hosts\": [...]}, \"*\": [...]}, \"users\": {\"NAME\":\n"
            "{\"password\": HASH, \"permissions\": [...]}}, \"require_user\"}; and the \"http\"\n"
            "object: {\"port\", \"bind\", \"max_connections\", \"max_results\", \"max_body_bytes\",\n"
            "\"enabled\", \"tls\": true, \"cors\": \"ORIGINS\"}; and the \"hl7\" object: {\"port\",\n"
            "\"bind\", \"tls\": true, \"max_connections\", \"max_message_bytes\"}.\n"
            "The HTTP server answers DICOMweb searches (QIDO-RS) under /dicomweb, to holders\n"
            "of a bearer token ('mira user token', or POST /auth/token; 'mira user --help').\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --duplicates P     keep (default), overwrite or reject re-sent instances\n"
            "  --port N           TCP port (default 11112; 0: any free port, printed)\n"
            "  --bind ADDR        listen on this address only (default: all, IPv4 and IPv6)\n"
            "  --aet AE           our AE title (default MIRA)\n"
            "  --any-called-ae    accept associations whatever AE title they call\n"
            "  --allow AE         accept only these calling AE titles (repeatable)\n"
            "  --accept-ts LIST   transfer syntaxes accepted, preferred first, comma-separated\n"
            "                     (UIDs or implicit, explicit, big, deflated, rle, jpegls, j2k)\n"
            "  --max-associations N  at once (default 32)\n"
            "  --max-pdu N        largest PDU received (default 262144)\n"
            "  --artim S          seconds to wait for association and release PDUs (default 30)\n"
            "  --idle S           seconds an association may stay silent (default 300)\n"
            "  --commit-retry LIST  seconds between the attempts to deliver a storage commitment\n"
            "                     report on new associations, comma-separated, the last one\n"
            "                     repeating (default 5,30,120,600)\n"
            "  --commit-retry-for S  how long after the request (default 86400)\n"
            "  --no-archive       Verification only (and no HTTP server)\n"
            "  --http-port N      HTTP port (default 8080; 0: any free port, printed)\n"
            "  --http-bind ADDR   HTTP address (default: --bind's, else 127.0.0.1)\n"
            "  --http-tls         HTTPS, with the certificate and key of --tls-cert/--tls-key\n"
            "  --http-cors ORIGINS  origins whose pages may read the replies (CORS), comma-\n"
            "                     separated, or * for any (default: none)\n"
            "  --http-max-connections N  at once (default 64)\n"
            "  --http-max-results N  most matches a search returns, and its default limit\n"
            "                     (default 1000)\n"
            "  --http-max-body N  largest STOW-RS request body in bytes (default 0: no limit)\n"
            "  --no-http          no HTTP server\n"
            "  --hl7-port N       receive HL7 v2 messages over MLLP on this port (default: no\n"
            "                     HL7 server; 0: any free port, printed; 2575 is the usual\n"
            "                     one); each message is kept in the archive before its ACK\n"
            "                     ('mira hl7 messages' lists them)\n"
            "  --hl7-bind ADDR    HL7 address (default: --bind's, else every address)\n"
            "  --hl7-tls          MLLP over TLS, with --tls-cert/--tls-key (and --tls-ca,\n"
            "                     --tls-verify-peer for client certificates)\n"
            "  --hl7-max-connections N  at once (default 64)\n"
            "  --hl7-max-message N  largest message in bytes (default 16777216; a longer one\n"
            "                     gets an AR)\n"
            "  --job-workers N    threads running the jobs of POST /api/jobs (export, send to\n"
            "                     a --peer, check; default 1, 0: none here; also \"jobs\":\n"
            "                     {\"workers\": N} in the config file)\n" MIRA_CLI_SECURITY_HELP
            MIRA_CLI_PEERS_HELP "  --quiet            log warnings and errors only\n"
            "Prints \"listening on ADDRESS:PORT\" on stdout once it accepts connections, then\n"
            "\"http listening on ADDRESS:PORT\" (https with --http-tls); logs each association (peer, AE titles, contexts\n"
            "accepted, outcome) and each HTTP request (method, path, parameter names, status,\n"
            "bytes, time) on stderr.\n");
}

static mira_dimse_server *running;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool quiet;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        mira_dimse_server_stop(running);
}

static void log_line(void *ctx, mira_log_level level, const char *msg)
{
    (void)ctx;
    if (quiet && level == MIRA_LOG_INFO)
        return;
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
    static const char *const names[] = {"info", "warning", "error"};
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s mira serve %s: %s\n", when, names[level], msg);
    pthread_mutex_unlock(&log_lock);
}

static void wake_jobs(void *ctx)
{
    mira_job_runner_wake(ctx);
}

/* The "jobs" object of the config file: {"workers": N}; 1 without it, -1 (reported) if bad. */
static long jobs_from_config(void)
{
    const char *path = NULL;
    mira_json *root = mira_cli_load_config(&path);
    mira_json *d = root ? mira_json_get(root, "jobs") : NULL;
    mira_json *v = d && mira_json_get_type(d) == MIRA_JSON_OBJECT ? mira_json_get(d, "workers")
                                                                  : NULL;
    long n = 1;
    if (v) {
        double x = mira_json_get_type(v) == MIRA_JSON_NUMBER ? mira_json_get_number(v) : -1;
        if (x < 0 || x > 64 || x != (double)(long)x) {
            fprintf(stderr, "mira serve: %s: jobs.workers is not a number from 0 to 64\n", path);
            n = -1;
        } else {
            n = (long)x;
        }
    }
    mira_json_free(root);
    return n;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Retry delays of storage commitment reports: up to 32 seconds values. */
typedef struct delays {
    int v[32];
    size_t n;
} delays;

/* "5,30,120" into d; false if it is not such a list (each 1 to 604800). */
static bool parse_delays(const char *csv, delays *d)
{
    d->n = 0;
    const char *p = csv;
    for (;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 7 * 86400 || d->n >= 32)
            return false;
        d->v[d->n++] = (int)v;
        if (!*end)
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
}

/* Up to 64 strings (AE titles, transfer syntaxes). */
typedef struct list {
    const char *v[64];
    size_t n;
    char *owned[64];
    size_t nowned;
} list;

static bool list_add(list *l, const char *s, bool copy)
{
    if (l->n >= 64)
        return false;
    if (copy) {
        char *c = mira_strdup(s);
        if (!c)
            return false;
        l->owned[l->nowned++] = c;
        s = c;
    }
    l->v[l->n++] = s;
    return true;
}

static void list_free(list *l)
{
    for (size_t i = 0; i < l->nowned; i++)
        mira_free(l->owned[i]);
}

static bool add_ts_list(list *l, const char *csv)
{
    char *copy = mira_strdup(csv);
    if (!copy)
        return false;
    bool ok = true;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); ok && tok;
         tok = strtok_r(NULL, ",", &save)) {
        const char *uid = mira_cli_ts_by_name(tok);
        mira_ts_info info;
        ok = mira_ts_lookup(uid, &info) && list_add(l, uid, true);
    }
    mira_free(copy);
    return ok;
}

/* The "http" object of the config file into h (strings copied into strs). */
static bool http_from_config(const mira_json *root, const char *path,
                             mira_web_server_options *h, bool *enabled, bool *tls, list *strs)
{
    mira_json *d = root ? mira_json_get(root, "http") : NULL;
    if (!d || mira_json_get_type(d) != MIRA_JSON_OBJECT)
        return true;
    bool ok = true;
    static const char *const ints[] = {"port", "max_connections", "max_results",
                                       "max_body_bytes"};
    static const double hi[] = {65535, 10000, 1e9, 9e15};
    for (size_t i = 0; i < 4; i++) {
        mira_json *v = mira_json_get(d, ints[i]);
        if (!v)
            continue;
        double n = mira_json_get_type(v) == MIRA_JSON_NUMBER ? mira_json_get_number(v) : -1;
        int lo = i == 0 || i == 3 ? 0 : 1;
        if (n < lo || n > hi[i] || n != (double)(long long)n) {
            fprintf(stderr, "mira serve: %s: http.%s is not a number from %d to %.0f\n", path,
                    ints[i], lo, hi[i]);
            ok = false;
        } else if (i == 0) {
            h->port = (int)n;
        } else if (i == 1) {
            h->max_connections = (int)n;
        } else if (i == 2) {
            h->max_results = (uint64_t)n;
        } else {
            h->max_body_bytes = (uint64_t)n;
        }
    }
    mira_json *v;
    if ((v = mira_json_get(d, "bind")) && mira_json_get_type(v) == MIRA_JSON_STRING &&
        list_add(strs, mira_json_get_string(v, NULL), true))
        h->bind = strs->v[strs->n - 1];
    if ((v = mira_json_get(d, "enabled")))
        *enabled = mira_json_get_type(v) != MIRA_JSON_FALSE;
    if ((v = mira_json_get(d, "tls")))
        *tls = mira_json_get_type(v) == MIRA_JSON_TRUE;
    if ((v = mira_json_get(d, "cors")) && mira_json_get_type(v) == MIRA_JSON_STRING &&
        list_add(strs, mira_json_get_string(v, NULL), true))
        h->cors_origins = strs->v[strs->n - 1];
    return ok;
}

/* The "hl7" object of the config file into h (strings copied into strs); *port -1 without it. */
static bool hl7_from_config(mira_hl7_server_options *h, int *port, list *strs)
{
    const char *path = NULL;
    mira_json *root = mira_cli_load_config(&path);
    mira_json *d = root ? mira_json_get(root, "hl7") : NULL;
    bool ok = true;
    if (d && mira_json_get_type(d) == MIRA_JSON_OBJECT) {
        static const char *const ints[] = {"port", "max_connections", "max_message_bytes"};
        static const double lo[] = {0, 1, 1024}, hi[] = {65535, 10000, 1 << 30};
        for (size_t i = 0; i < 3; i++) {
            mira_json *v = mira_json_get(d, ints[i]);
            if (!v)
                continue;
            double n = mira_json_get_type(v) == MIRA_JSON_NUMBER ? mira_json_get_number(v) : -1;
            if (n < lo[i] || n > hi[i] || n != (double)(long)n) {
                fprintf(stderr, "mira serve: %s: hl7.%s is not a number from %.0f to %.0f\n",
                        path, ints[i], lo[i], hi[i]);
                ok = false;
            } else if (i == 0) {
                *port = (int)n;
            } else if (i == 1) {
                h->max_connections = (int)n;
            } else {
                h->max_message = (size_t)n;
            }
        }
        mira_json *v;
        if ((v = mira_json_get(d, "bind")) && mira_json_get_type(v) == MIRA_JSON_STRING &&
            list_add(strs, mira_json_get_string(v, NULL), true))
            h->bind = strs->v[strs->n - 1];
        if ((v = mira_json_get(d, "tls")))
            h->tls = mira_json_get_type(v) == MIRA_JSON_TRUE;
    }
    mira_json_free(root);
    return ok;
}

/* The "dimse" object of the config file into opt (strings copied into the lists), and the
 * "http" one into h. */
static bool from_config(mira_dimse_server_options *o, list *calling, list *ts, list *strs,
                        int *port, delays *retry, mira_web_server_options *h, bool *http,
                        bool *http_tls)
{
    const char *path = NULL;
    mira_json *root = mira_cli_load_config(&path);
    mira_json *d = root ? mira_json_get(root, "dimse") : NULL;
    bool ok = http_from_config(root, path, h, http, http_tls, strs);
    if (d && mira_json_get_type(d) == MIRA_JSON_OBJECT) {
        static const char *const ints[] = {"port", "max_associations", "max_pdu",
                                           "artim_seconds", "idle_seconds",
                                           "commit_retry_seconds"};
        for (size_t i = 0; i < 6; i++) {
            mira_json *v = mira_json_get(d, ints[i]);
            if (!v)
                continue;
            if (mira_json_get_type(v) != MIRA_JSON_NUMBER) {
                fprintf(stderr, "mira serve: %s: dimse.%s is not a number\n", path, ints[i]);
                ok = false;
                continue;
            }
            double n = mira_json_get_number(v);
            if (i == 0)
                *port = (int)n;
            else if (i == 1)
                o->max_associations = (int)n;
            else if (i == 2)
                o->max_pdu = (uint32_t)n;
            else if (i == 3)
                o->artim_seconds = (int)n;
            else if (i == 4)
                o->idle_seconds = (int)n;
            else if (n < 1 || n > 365 * 86400) {
                fprintf(stderr, "mira serve: %s: dimse.commit_retry_seconds is not 1 to %d\n",
                        path, 365 * 86400);
                ok = false;
            } else
                o->commit_retry_seconds = (int)n;
        }
        mira_json *v;
        if ((v = mira_json_get(d, "commit_retry"))) {
            bool good = mira_json_get_type(v) == MIRA_JSON_ARRAY && mira_json_count(v) > 0 &&
                        mira_json_count(v) <= 32;
            retry->n = 0;
            for (size_t i = 0; good && i < mira_json_count(v); i++) {
                mira_json *x = mira_json_at(v, i);
                double n = mira_json_get_type(x) == MIRA_JSON_NUMBER ? mira_json_get_number(x) : 0;
                good = n >= 1 && n <= 7 * 86400 && n == (int)n;
                if (good)
                    retry->v[retry->n++] = (int)n;
            }
            if (!good) {
                fprintf(stderr, "mira serve: %s: dimse.commit_retry is not a list of 1 to 32 "
                                "delays in seconds (1 to 604800)\n",
                        path);
                retry->n = 0;
                ok = false;
            }
        }
        if ((v = mira_json_get(d, "ae_title")) && mira_json_get_type(v) == MIRA_JSON_STRING &&
            list_add(strs, mira_json_get_string(v, NULL), true))
            o->ae_title = strs->v[strs->n - 1];
        if ((v = mira_json_get(d, "bind")) && mira_json_get_type(v) == MIRA_JSON_STRING &&
            list_add(strs, mira_json_get_string(v, NULL), true))
            o->bind = strs->v[strs->n - 1];
        if ((v = mira_json_get(d, "calling_ae_titles")) && mira_json_get_type(v) == MIRA_JSON_ARRAY)
            for (size_t i = 0; i < mira_json_count(v); i++)
                if (mira_json_get_type(mira_json_at(v, i)) == MIRA_JSON_STRING)
                    ok &= list_add(calling, mira_json_get_string(mira_json_at(v, i), NULL), true);
        if ((v = mira_json_get(d, "transfer_syntaxes")) && mira_json_get_type(v) == MIRA_JSON_ARRAY)
            for (size_t i = 0; i < mira_json_count(v); i++)
                if (mira_json_get_type(mira_json_at(v, i)) == MIRA_JSON_STRING &&
                    !add_ts_list(ts, mira_json_get_string(mira_json_at(v, i), NULL))) {
                    fprintf(stderr, "mira serve: %s: dimse.transfer_syntaxes: '%s' is not a "
                                    "transfer syntax mira knows\n",
                            path, mira_json_get_string(mira_json_at(v, i), NULL));
                    ok = false;
                }
    }
    mira_json_free(root);
    return ok;
}

int mira_cli_serve(int argc, char **argv)
{
    mira_dimse_server_options o;
    mira_dimse_server_options_init(&o);
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    list calling = {0}, ts = {0}, strs = {0}, cli_calling = {0}, cli_ts = {0};
    delays retry = {{0}, 0};
    int port = 11112;
    static mira_cli_peers peers; /* large: not on the stack */
    bool no_archive = false;
    int rc = MIRA_EXIT_USAGE;
    mira_cli_security sec = {.tls_port = -1};
    mira_web_server_options ho;
    mira_web_server_options_init(&ho);
    ho.port = 8080;
    bool http = true, http_tls = false;
    long job_workers = jobs_from_config();
    if (job_workers < 0)
        goto done;
    mira_hl7_server_options h7;
    mira_hl7_server_options_init(&h7);
    int hl7_port = -1;
    if (!hl7_from_config(&h7, &hl7_port, &strs))
        goto done;
    if (!from_config(&o, &calling, &ts, &strs, &port, &retry, &ho, &http, &http_tls) ||
        !mira_cli_security_load(&sec))
        goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int r = mira_cli_archive_option(argc, argv, &i, &ao);
        if (r < 0) {
            fprintf(stderr, "mira serve: bad value for %s\n", a);
            goto done;
        }
        if (r > 0)
            continue;
        if ((r = mira_cli_security_option(argc, argv, &i, &sec)) != 0) {
            if (r > 0)
                continue;
            fprintf(stderr, "mira serve: bad value for %s\n", a);
            goto done;
        }
        if (strcmp(a, "--hash-password") == 0) {
            rc = mira_cli_hash_password();
            goto done;
        }
        if ((r = mira_cli_peer_option(argc, argv, &i, &peers)) != 0) {
            if (r > 0)
                continue;
            fprintf(stderr, "mira serve: --peer takes AE=HOST:PORT or AE=HOST:PORT,tls\n");
            goto done;
        }
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--any-called-ae") == 0) {
            o.check_called_ae = false;
        } else if (strcmp(a, "--no-archive") == 0) {
            no_archive = true;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(a, "--no-http") == 0) {
            http = false;
        } else if (strcmp(a, "--http-tls") == 0) {
            http_tls = true;
        } else if (strcmp(a, "--hl7-tls") == 0) {
            h7.tls = true;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "mira serve: unknown option or missing value: %s\n", a);
            goto done;
        } else if (strcmp(a, "--port") == 0 && parse_int(argv[i + 1], 0, 65535, &v)) {
            port = (int)v;
            i++;
        } else if (strcmp(a, "--bind") == 0) {
            o.bind = argv[++i];
        } else if (strcmp(a, "--http-port") == 0 && parse_int(argv[i + 1], 0, 65535, &v)) {
            ho.port = (int)v;
            http = true;
            i++;
        } else if (strcmp(a, "--hl7-port") == 0 && parse_int(argv[i + 1], 0, 65535, &v)) {
            hl7_port = (int)v;
            i++;
        } else if (strcmp(a, "--hl7-bind") == 0) {
            h7.bind = argv[++i];
        } else if (strcmp(a, "--hl7-max-connections") == 0 &&
                   parse_int(argv[i + 1], 1, 10000, &v)) {
            h7.max_connections = (int)v;
            i++;
        } else if (strcmp(a, "--hl7-max-message") == 0 &&
                   parse_int(argv[i + 1], 1024, 1L << 30, &v)) {
            h7.max_message = (size_t)v;
            i++;
        } else if (strcmp(a, "--http-bind") == 0) {
            ho.bind = argv[++i];
        } else if (strcmp(a, "--http-cors") == 0) {
            ho.cors_origins = argv[++i];

        } else if (strcmp(a, "--http-max-connections") == 0 &&
                   parse_int(argv[i + 1], 1, 10000, &v)) {
            ho.max_connections = (int)v;
            i++;
        } else if (strcmp(a, "--http-max-results") == 0 &&
                   parse_int(argv[i + 1], 1, 1000000000, &v)) {
            ho.max_results = (uint64_t)v;
            i++;
        } else if (strcmp(a, "--job-workers") == 0 && parse_int(argv[i + 1], 0, 64, &v)) {
            job_workers = v;
            i++;
        } else if (strcmp(a, "--http-max-body") == 0 && parse_int(argv[i + 1], 0, LONG_MAX, &v)) {
            ho.max_body_bytes = (uint64_t)v;
            i++;
        } else if (strcmp(a, "--aet") == 0 && strlen(argv[i + 1]) <= 16 && *argv[i + 1]) {
            o.ae_title = argv[++i];
        } else if (strcmp(a, "--allow") == 0 && strlen(argv[i + 1]) <= 16) {
            list_add(&cli_calling, argv[++i], false);
        } else if (strcmp(a, "--accept-ts") == 0) {
            if (!add_ts_list(&cli_ts, argv[++i])) {
                fprintf(stderr, "mira serve: --accept-ts: not transfer syntaxes mira knows: %s\n",
                        argv[i]);
                goto done;
            }
        } else if (strcmp(a, "--max-associations") == 0 &&
                   parse_int(argv[i + 1], 1, 10000, &v)) {
            o.max_associations = (int)v;
            i++;
        } else if (strcmp(a, "--max-pdu") == 0 && parse_int(argv[i + 1], 4096, 16777216, &v)) {
            o.max_pdu = (uint32_t)v;
            i++;
        } else if (strcmp(a, "--artim") == 0 && parse_int(argv[i + 1], 1, 3600, &v)) {
            o.artim_seconds = (int)v;
            i++;
        } else if (strcmp(a, "--idle") == 0 && parse_int(argv[i + 1], 1, 86400, &v)) {
            o.idle_seconds = (int)v;
            i++;
        } else if (strcmp(a, "--commit-retry") == 0) {
            if (!parse_delays(argv[++i], &retry)) {
                fprintf(stderr, "mira serve: --commit-retry takes seconds (1 to 604800), "
                                "comma-separated, e.g. 5,30,120,600: %s\n",
                        argv[i]);
                goto done;
            }
        } else if (strcmp(a, "--commit-retry-for") == 0 &&
                   parse_int(argv[i + 1], 1, 365 * 86400, &v)) {
            o.commit_retry_seconds = (int)v;
            i++;
        } else {
            fprintf(stderr, "mira serve: unknown option or bad value: %s %s\n", a, argv[i + 1]);
            goto done;
        }
    }
    list *cl = cli_calling.n ? &cli_calling : &calling;
    list *tl = cli_ts.n ? &cli_ts : &ts;
    if (cl->n) {
        o.calling_ae_titles = cl->v;
        o.ncalling_ae_titles = cl->n;
    }
    if (tl->n) {
        o.transfer_syntaxes = tl->v;
        o.ntransfer_syntaxes = tl->n;
    }
    o.port = port;
    if (retry.n) {
        o.commit_retry_delays = retry.v;
        o.ncommit_retry_delays = retry.n;
    }
    o.log = log_line;
    if (!mira_cli_security_apply(&sec, &o)) /* first: a --peer over TLS takes its files */
        goto done;
    if (!mira_cli_peers_finish(&peers, &o))
        goto done;
    rc = MIRA_EXIT_INPUT;
    mira_archive *archive = NULL;
    if (!no_archive) {
        archive = mira_cli_open_archive("serve", &ao, true);
        if (!archive)
            goto done;
    }
    o.archive = archive;
    mira_error *err = NULL;
    mira_dimse_server *s = mira_dimse_server_new(&o, &err);
    if (!s) {
        mira_cli_report("serve", err);
        mira_archive_close(archive);
        goto done;
    }
    /* the job workers, before the HTTP server that wakes them */
    mira_job_runner *jobs = NULL;
    const char *destinations[MIRA_CLI_PEERS_MAX];
    for (size_t i = 0; i < o.npeers && i < MIRA_CLI_PEERS_MAX; i++)
        destinations[i] = o.peers[i].ae_title;
    if (archive) {
        mira_job_runner_options jo;
        mira_job_runner_options_init(&jo);
        jo.archive = archive;
        jo.workers = (int)job_workers;
        jo.peers = o.peers;
        jo.npeers = o.npeers;
        jo.calling_ae = o.ae_title;
        jo.log = log_line;
        jobs = mira_job_runner_new(&jo, &err);
        if (!jobs) {
            mira_cli_report("serve", err);
            mira_dimse_server_free(s);
            mira_archive_close(archive);
            goto done;
        }
    }
    mira_web_server *web = NULL;
    if (http && archive) {
        ho.job_queued = wake_jobs;
        ho.job_queued_ctx = jobs;
        ho.job_destinations = destinations;
        ho.njob_destinations = o.npeers < MIRA_CLI_PEERS_MAX ? o.npeers : MIRA_CLI_PEERS_MAX;
        if (!ho.bind)
            ho.bind = o.bind; /* the DIMSE address; with none, loopback (see --help) */
        ho.archive = archive;
        ho.log = log_line;
        if (http_tls && (!sec.tls.cert_file || !sec.tls.key_file)) {
            fprintf(stderr, "mira serve: --http-tls needs --tls-cert and --tls-key (or the "
                            "config's dimse.tls)\n");
            rc = MIRA_EXIT_USAGE;
            mira_job_runner_free(jobs);
            mira_dimse_server_free(s);
            mira_archive_close(archive);
            goto done;
        }
        if (http_tls) {
            ho.tls_cert = sec.tls.cert_file;
            ho.tls_key = sec.tls.key_file;
        }
        web = mira_web_server_new(&ho, &err);
        if (!web) {
            mira_cli_report("serve", err);
            mira_job_runner_free(jobs);
            mira_dimse_server_free(s);
            mira_archive_close(archive);
            goto done;
        }
    }
    mira_hl7_server *hl7 = NULL;
    if (hl7_port >= 0 && archive) {
        h7.archive = archive;
        h7.port = hl7_port;
        if (!h7.bind)
            h7.bind = o.bind;
        h7.log = log_line;
        if (h7.tls && (!sec.tls.cert_file || !sec.tls.key_file)) {
            fprintf(stderr, "mira serve: --hl7-tls needs --tls-cert and --tls-key (or the "
                            "config's dimse.tls)\n");
            rc = MIRA_EXIT_USAGE;
        } else {
            h7.tls_cert = sec.tls.cert_file;
            h7.tls_key = sec.tls.key_file;
            h7.tls_ca = sec.tls.ca_file;
            h7.tls_verify_peer = sec.tls.verify_peer;
            hl7 = mira_hl7_server_new(&h7, &err);
            if (!hl7)
                mira_cli_report("serve", err);
        }
        if (!hl7) {
            mira_web_server_free(web);
            mira_job_runner_free(jobs);
            mira_dimse_server_free(s);
            mira_archive_close(archive);
            goto done;
        }
    }
    running = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mira_dimse_server_port(s) >= 0)
        printf("listening on %s:%d\n", o.bind && *o.bind ? o.bind : "*",
               mira_dimse_server_port(s));
    if (mira_dimse_server_tls_port(s) >= 0)
        printf("listening with TLS on %s:%d\n", o.bind && *o.bind ? o.bind : "*",
               mira_dimse_server_tls_port(s));
    if (web)
        printf("%s listening on %s:%d\n", http_tls ? "https" : "http",
               ho.bind && *ho.bind ? ho.bind : "127.0.0.1",
               mira_web_server_port(web));
    if (hl7)
        printf("hl7 listening%s on %s:%d\n", h7.tls ? " with TLS" : "",
               h7.bind && *h7.bind ? h7.bind : "*", mira_hl7_server_port(hl7));
    fflush(stdout);
    bool ok = mira_dimse_server_run(s, &err);
    running = NULL;
    mira_hl7_server_free(hl7);  /* a message being stored is stored and acknowledged */
    mira_web_server_free(web);   /* no more jobs submitted */
    mira_job_runner_free(jobs); /* a running job goes back to the queue */
    mira_dimse_server_free(s);
    mira_archive_close(archive);
    if (!ok)
        mira_cli_report("serve", err);
    rc = ok ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
done:
    mira_cli_security_free(&sec);
    mira_cli_peers_free(&peers);
    list_free(&calling);
    list_free(&ts);
    list_free(&strs);
    list_free(&cli_calling);
    list_free(&cli_ts);
    return rc;
}
