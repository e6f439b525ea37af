/* mira serve: the peers known by AE title (C-MOVE destinations, Storage Commitment
 * requestors), from mira.json and --peer, with TLS settings from mira.json. */
#ifndef MIRA_CLI_SERVE_PEERS_H
#define MIRA_CLI_SERVE_PEERS_H

#include "cli.h"

#define MIRA_CLI_PEERS_MAX 256
/* AE title and host of each, and its TLS files */
#define MIRA_CLI_PEERS_OWNED (5 * MIRA_CLI_PEERS_MAX)

typedef struct mira_cli_peers {
    mira_dimse_peer v[MIRA_CLI_PEERS_MAX];
    mira_tls_options tls[MIRA_CLI_PEERS_MAX]; /* v[i].tls points here */
    bool cli_tls[MIRA_CLI_PEERS_MAX];          /* --peer ...,tls: the server's TLS files */
    char *owned[MIRA_CLI_PEERS_OWNED];
    size_t n, nowned;
} mira_cli_peers;

#define MIRA_CLI_PEERS_HELP \
    "  --peer AE=HOST:PORT[,tls]  a C-MOVE destination, a Storage Commitment requestor\n" \
    "                     (repeatable; \",tls\": over TLS, with the server's --tls-cert,\n" \
    "                     --tls-key and --tls-ca, the peer verified against --tls-ca;\n" \
    "                     also \"dimse\": {\"peers\":\n" \
    "                     {\"AE\": {\"host\": HOST, \"port\": PORT}}} in the config file,\n" \
    "                     there with \"tls\": true and \"ca\", \"cert\", \"key\",\n" \
    "                     \"verify_peer\" for associations to it over TLS)\n"

/* argv[*i] --peer? 1: taken; 0: not it; -1: a bad value. */
int mira_cli_peer_option(int argc, char **argv, int *i, mira_cli_peers *p);
/* Add the config file's dimse.peers (those --peer did not name) and point o at the list; a
 * --peer with ",tls" takes o->tls's files (set before). False (reported) if an entry is
 * malformed or a TLS peer has no TLS files. */
bool mira_cli_peers_finish(mira_cli_peers *p, mira_dimse_server_options *o);
void mira_cli_peers_free(mira_cli_peers *p);

#endif
