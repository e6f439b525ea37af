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
int mira_cli_features(int argc, char **argv);
int mira_cli_import(int argc, char **argv);
int mira_cli_find(int argc, char **argv);
int mira_cli_stats(int argc, char **argv);
int mira_cli_check(int argc, char **argv);
int mira_cli_cat(int argc, char **argv);
int mira_cli_delete(int argc, char **argv);
int mira_cli_modify(int argc, char **argv);
int mira_cli_merge(int argc, char **argv);
int mira_cli_history(int argc, char **argv);
int mira_cli_export(int argc, char **argv);
int mira_cli_deid(int argc, char **argv);
int mira_cli_serve(int argc, char **argv);
int mira_cli_echo(int argc, char **argv);
int mira_cli_worklist(int argc, char **argv);
int mira_cli_send(int argc, char **argv);
int mira_cli_qr(int argc, char **argv);
int mira_cli_user(int argc, char **argv);
int mira_cli_job(int argc, char **argv);
int mira_cli_audit(int argc, char **argv);
int mira_cli_patient(int argc, char **argv);
int mira_cli_hl7(int argc, char **argv);

/* Print "mira SUB: message" to stderr for an error, and free it. */
void mira_cli_report(const char *sub, mira_error *err);
/* A transfer syntax UID from a short name (implicit, explicit, big, deflated); else s itself. */
const char *mira_cli_ts_by_name(const char *s);
/* True if argv[i] is -h or --help. */
int mira_cli_is_help(const char *arg);

/* ------------------------------------------------------------------ archive commands */

/* The options every archive command takes (--archive, --index, --duplicates). */
typedef struct mira_archive_cli {
    const char *dir;
    const char *index;
    int duplicates; /* -1: the archive's */
    const char *storage_ts;
} mira_archive_cli;

#define MIRA_ARCHIVE_CLI_HELP                                                                      \
    "  --archive DIR      the archive (default: $MIRA_ARCHIVE, \"archive\" in $MIRA_CONFIG or\n"     \
    "                     ./mira.json, else ./var)\n"                                              \
    "  --index URL        the index: sqlite (default) or a PostgreSQL connection string\n"

/* argv[*i] an archive option? 1: taken (and its value); 0: not one; -1: its value is bad. */
int mira_cli_archive_option(int argc, char **argv, int *i, mira_archive_cli *opts);
/* The config file ($MIRA_CONFIG, else ./mira.json) parsed, or NULL if there is none (or it is
 * not JSON); *path_out (may be NULL) receives its name. Free with mira_json_free. */
mira_json *mira_cli_load_config(const char **path_out);

/* Finish w, print its text and a newline on stdout, and free it. */
void mira_cli_print_json(mira_json_writer *w);
/* The archive folder to use given --archive's value (may be NULL). */
const char *mira_cli_archive_dir(const char *flag);
/* Open the archive, reporting a failure as "mira SUB: ..."; create makes a new one. */
mira_archive *mira_cli_open_archive(const char *sub, const mira_archive_cli *opts, bool create);

/* A keyword or GGGG,EEEE: its tag and dictionary VR. */
bool mira_cli_lookup_tag(const char *name, mira_tag *tag, mira_vr *vr);
/* Add KEY[=VALUE] or SEQUENCE.KEY[=VALUE] (KEY a keyword or GGGG,EEEE) to a query
 * identifier; a bare KEY after KEY=VALUE keeps the value. False if KEY is unknown. */
bool mira_cli_add_key(mira_dataset *ident, const char *arg);

/* A progress bar on stderr (only when stderr is a terminal). */
typedef struct mira_cli_progress {
    const char *what;
    uint64_t total;
    bool enabled;
    double start, last;
} mira_cli_progress;

void mira_cli_progress_init(mira_cli_progress *p, const char *what, uint64_t total, bool enabled);
void mira_cli_progress_update(mira_cli_progress *p, uint64_t done);
void mira_cli_progress_done(mira_cli_progress *p);
double mira_cli_progress_seconds(const mira_cli_progress *p);

#endif
