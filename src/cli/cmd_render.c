/* mira render: one frame through the LUT pipeline to an 8-bit PNG. */
#include "cli.h"

int mira_cli_render(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mira render: not built yet\n");
    return MIRA_EXIT_USAGE;
}
