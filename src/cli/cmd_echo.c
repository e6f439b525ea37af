/* mira echo: Verification SCU (C-ECHO). */
#include "cli.h"
#include "scu_options.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mira echo HOST PORT [--aet AE] [--call AE] [--timeout S] [--tls ...] [--user ...]\n"
                 "Associates with a DICOM peer, sends a C-ECHO-RQ and releases.\n\n"
                 "options:\n"
                 "  --aet AE       our (calling) AE title (default MIRA)\n"
                 "  --call AE      the peer's (called) AE title (default ANY-SCP)\n"
                 "  --timeout S    seconds for connecting and for each answer (default 30)\n"
MIRA_CLI_SCU_HELP
                 "exit status: 0 if the peer answered with status Success, 1 otherwise\n");
}

int mira_cli_echo(int argc, char **argv)
{
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    mira_cli_scu scu = {.sub = "echo"};
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    int rc = MIRA_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = mira_cli_scu_option(&scu, argc, argv, &i);
        if (r < 0)
            goto done;
        if (r > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if ((strcmp(a, "--aet") == 0 || strcmp(a, "--call") == 0) && i + 1 < argc &&
                   strlen(argv[i + 1]) <= 16 && *argv[i + 1]) {
            if (a[2] == 'a')
                o.calling_ae = argv[++i];
            else
                o.called_ae = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            o.timeout_seconds = atoi(argv[++i]);
        } else if (a[0] != '-' && npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "mira echo: unknown option or bad value: %s\n", a);
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
    if (!mira_cli_scu_finish(&scu, &o))
        goto done;
    uint16_t status = 0xFFFF;
    mira_error *err = NULL;
    rc = MIRA_EXIT_INPUT;
    if (!mira_dimse_echo(pos[0], (int)port, &o, &status, &err)) {
        mira_cli_report("echo", err);
        goto done;
    }
    printf("C-ECHO %s:%ld (%s -> %s): status 0x%04X%s\n", pos[0], port, o.calling_ae,
           o.called_ae, status, status == 0 ? " (success)" : "");
    rc = status == 0 ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
done:
    mira_cli_scu_free(&scu);
    return rc;
}
