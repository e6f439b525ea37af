/* mira serve: the peers known by AE title (C-MOVE destinations), from mira.json and --peer. */
#ifndef MIRA_CLI_SERVE_PEERS_H
#define MIRA_CLI_SERVE_PEERS_H

#include "cli.h"

#define MIRA_CLI_PEERS_MAX 256

typedef struct mira_cli_peers {
    mira_dimse_peer v[MIRA_CLI_PEERS_MAX];
    char *owned[2 * MIRA_CLI_PEERS_MAX];
    size_t n, nowned;
} mira_cli_peers;

#define MIRA_CLI_PEERS_HELP                                                                        \
    "  --peer AE=HOST:PORT  a C-MOVE destination (repeatable; also \"dimse\": {\"peers\":\n"       \
    "                     {\"AE\": {\"host\": HOST, \"port\": PORT}}} in the config file)\n"

/* argv[*i] --peer? 1: taken; 0: not it; -1: a bad value. */
int mira_cli_peer_option(int argc, char **argv, int *i, mira_cli_peers *p);
/* Add the config file's dimse.peers (those --peer did not name) and point o at the list.
 * False (reported) if an entry is malformed. */
bool mira_cli_peers_finish(mira_cli_peers *p, mira_dimse_server_options *o);
void mira_cli_peers_free(mira_cli_peers *p);

#endif
