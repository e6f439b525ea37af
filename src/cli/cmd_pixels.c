/* mira pixels: decoded stored pixel values to a raw file. */
#include "cli.h"

int mira_cli_pixels(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mira pixels: not built yet\n");
    return MIRA_EXIT_USAGE;
}
