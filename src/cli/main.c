/* mira: the command-line entry point and subcommand dispatch. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"dump", mira_cli_dump, "print the elements of DICOM files as a readable tree (or --json)"},
    {"json", mira_cli_json, "convert DICOM to the DICOM JSON model and back (PS3.18 F.2)"},
    {"transcode", mira_cli_transcode, "rewrite a file in another transfer syntax"},
    {"pixels", mira_cli_pixels, "write decoded pixel values (stored values, little-endian)"},
    {"render", mira_cli_render, "render a frame to PNG (modality LUT, window, presentation)"},
    {"convert", mira_cli_convert, "build a volume from a series and write NIfTI"},
    {"features", mira_cli_features, "radiomics features (IBSI) of a region of an image"},
    {"tag", mira_cli_tag, "look up tags, keywords and UIDs in the data dictionary"},
    {"import", mira_cli_import, "store files, folders, DICOMDIRs and .zip files in the archive"},
    {"find", mira_cli_find, "query the archive (C-FIND matching) at any level"},
    {"stats", mira_cli_stats, "count the archive's patients, studies, series and instances"},
    {"check", mira_cli_check, "verify the index against the blobs (and repair)"},
    {"cat", mira_cli_cat, "write a stored instance (by SOP Instance UID) as it is stored"},
    {"delete", mira_cli_delete, "delete patients, studies, series or instances"},
    {"modify", mira_cli_modify, "change attributes of a patient, study, series or instance"},
    {"merge", mira_cli_merge, "merge a patient into another (its studies move, Patient ID rewritten)"},
    {"history", mira_cli_history, "list the modifications made with mira modify"},
    {"export", mira_cli_export, "copy matching instances to a folder (optionally with a DICOMDIR)"},
    {"deid", mira_cli_deid, "de-identify files or an archive query (PS3.15 Basic Profile)"},
    {"serve", mira_cli_serve, "run the DICOM server (C-ECHO, C-STORE into the archive, C-FIND)"},
    {"echo", mira_cli_echo, "C-ECHO a DICOM peer (Verification SCU)"},
    {"worklist", mira_cli_worklist, "add, list and delete scheduled procedure steps (worklist)"},
    {"send", mira_cli_send, "C-STORE files, folders or an archive query to a DICOM peer"},
    {"qr", mira_cli_qr, "C-FIND, C-MOVE or C-GET a DICOM peer (Query/Retrieve SCU)"},
    {"user", mira_cli_user, "add, list and remove the users of the HTTP server; their tokens"},
    {"hl7", mira_cli_hl7, "HL7 v2 messages: read, send over MLLP, list the ones received"},
    {"patient", mira_cli_patient, "a patient's record: demographics, orders, studies, reports"},
    {"audit", mira_cli_audit, "read the audit log (sign-ins and accesses to patient data)"},
    {"job", mira_cli_job, "list, show and cancel the jobs mira serve runs (export, send, check)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mira [--version] [--help] <command> [<args>]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'mira <command> --help' describes a command.\n"
                 "exit status: 0 success, 1 a problem with the input, 2 wrong usage\n");
}

int mira_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

void mira_cli_print_json(mira_json_writer *w)
{
    size_t len = 0;
    char *text = mira_json_writer_finish(w, &len, NULL);
    if (text) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    }
    mira_free(text);
    mira_json_writer_free(w);
}

const char *mira_cli_ts_by_name(const char *s)
{
    static const struct {
        const char *name, *uid;
    } names[] = {
        {"implicit", MIRA_TS_IMPLICIT_LE},
        {"explicit", MIRA_TS_EXPLICIT_LE},
        {"big", MIRA_TS_EXPLICIT_BE},
        {"deflated", MIRA_TS_DEFLATED_LE},
        {"rle", MIRA_TS_RLE},
        {"jpegls", MIRA_TS_JPEGLS_LOSSLESS},
        {"j2k", MIRA_TS_J2K_LOSSLESS},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].uid;
    return s;
}

void mira_cli_report(const char *sub, mira_error *err)
{
    fprintf(stderr, "mira %s: %s\n", sub, err ? mira_error_get_message(err) : "failed");
    mira_error_free(err);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    if (mira_cli_is_help(argv[1])) {
        usage(stdout);
        return MIRA_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("mira %s\n", mira_version());
        return MIRA_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mira: '%s' is not a command\n\n", argv[1]);
    usage(stderr);
    return MIRA_EXIT_USAGE;
}
