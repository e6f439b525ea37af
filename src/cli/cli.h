/* The mira command line: subcommand entry points and shared helpers. Public API only. */
#ifndef MIRA_CLI_H
#define MIRA_CLI_H

#include <mira/mira.h>
#include <stdio.h>

/* Exit codes, the same for every subcommand. */
enum {
    MIRA_EXIT_OK = 0,    /* success */
    MIRA_EXIT_INPUT = 1, /* a problem with the input (unreadable, malformed, not found) */
    MIRA_EXIT_USAGE = 2, /* wrong usage */
};

/* Each subcommand: argv[0] is the subcommand's name. Returns an exit code. */
int mira_cli_dump(int argc, char **argv);
int mira_cli_json(int argc, char **argv);
int mira_cli_tag(int argc, char **argv);
int mira_cli_transcode(int argc, char **argv);
int mira_cli_pixels(int argc, char **argv);
int mira_cli_render(int argc, char **argv);
int mira_cli_convert(int argc, char **argv);

/* Print "mira SUB: message" to stderr for an error, and free it. */
void mira_cli_report(const char *sub, mira_error *err);
/* A transfer syntax UID from a short name (implicit, explicit, big, deflated); else s itself. */
const char *mira_cli_ts_by_name(const char *s);
/* True if argv[i] is -h or --help. */
int mira_cli_is_help(const char *arg);

#endif
