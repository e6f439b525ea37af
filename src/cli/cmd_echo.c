/* mira echo: Verification SCU (C-ECHO). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mira echo HOST PORT [--aet AE] [--call AE] [--timeout S] [--tls ...]\n"
                 "Associates with a DICOM peer, sends a C-ECHO-RQ and releases.\n\n"
                 "options:\n"
                 "  --aet AE       our (calling) AE title (default MIRA)\n"
                 "  --call AE      the peer's (called) AE title (default ANY-SCP)\n"
                 "  --timeout S    seconds for connecting and for each answer (default 30)\n"
                 "  --tls          over TLS (1.2 or later, PS3.15 BCP 195 profile); the peer's\n"
                 "                 certificate must chain to --tls-ca (else the system's CAs)\n"
                 "                 and name HOST\n"
                 "  --tls-ca FILE  CA certificates (PEM) for the peer's certificate\n"
                 "  --tls-cert FILE, --tls-key FILE  our certificate and key, for peers\n"
                 "                 that authenticate clients\n"
                 "  --tls-no-verify  accept any certificate from the peer (encryption only)\n"
                 "exit status: 0 if the peer answered with status Success, 1 otherwise\n");
}

int mira_cli_echo(int argc, char **argv)
{
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    mira_tls_options tls = {NULL, NULL, NULL, true};
    bool use_tls = false;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if ((strcmp(a, "--aet") == 0 || strcmp(a, "--call") == 0) && i + 1 < argc &&
                   strlen(argv[i + 1]) <= 16 && *argv[i + 1]) {
            if (a[2] == 'a')
                o.calling_ae = argv[++i];
            else
                o.called_ae = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            o.timeout_seconds = atoi(argv[++i]);
        } else if (strcmp(a, "--tls") == 0 || strcmp(a, "--tls-no-verify") == 0) {
            use_tls = true;
            tls.verify_peer &= a[5] == 0;
        } else if ((strcmp(a, "--tls-ca") == 0 || strcmp(a, "--tls-cert") == 0 ||
                    strcmp(a, "--tls-key") == 0) &&
                   i + 1 < argc) {
            use_tls = true;
            const char **dest = strcmp(a, "--tls-ca") == 0     ? &tls.ca_file
                                : strcmp(a, "--tls-cert") == 0 ? &tls.cert_file
                                                               : &tls.key_file;
            *dest = argv[++i];
        } else if (a[0] != '-' && npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "mira echo: unknown option or bad value: %s\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    char *end = NULL;
    long port = npos == 2 ? strtol(pos[1], &end, 10) : 0;
    if (npos != 2 || *end || port <= 0 || port > 65535) {
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (use_tls)
        o.tls = &tls;
    uint16_t status = 0xFFFF;
    mira_error *err = NULL;
    if (!mira_dimse_echo(pos[0], (int)port, &o, &status, &err)) {
        mira_cli_report("echo", err);
        return MIRA_EXIT_INPUT;
    }
    printf("C-ECHO %s:%ld (%s -> %s): status 0x%04X%s\n", pos[0], port, o.calling_ae,
           o.called_ae, status, status == 0 ? " (success)" : "");
    return status == 0 ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
}
