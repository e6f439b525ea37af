/* mira convert: a series (or one multi-frame object) to a NIfTI volume. */
#include "cli.h"

int mira_cli_convert(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mira convert: not built yet\n");
    return MIRA_EXIT_USAGE;
}
