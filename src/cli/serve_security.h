/* mira serve: TLS and access control settings from mira.json and the command line. */
#ifndef MIRA_CLI_SERVE_SECURITY_H
#define MIRA_CLI_SERVE_SECURITY_H

#include <mira/mira.h>

typedef struct mira_cli_security {
    mira_tls_options tls;
    int tls_port; /* -1: not given */
    bool tls_only;
    bool has_access;
    mira_dimse_access_rule *rules;
    size_t nrules;
    mira_dimse_user *users;
    size_t nusers;
    bool require_user;
    char **strings; /* owned copies of what the config file said */
    size_t nstrings;
} mira_cli_security;

#define MIRA_CLI_SECURITY_HELP                                                                    \
    "  --tls-cert FILE    serve DICOM over TLS too, with this certificate (PEM)\n"               \
    "  --tls-key FILE     its private key (PEM, unencrypted)\n"                                  \
    "  --tls-ca FILE      CA certificates that clients' certificates must chain to\n"            \
    "  --tls-verify-peer  require a client certificate signed by --tls-ca\n"                     \
    "  --tls-port N       TLS port (default 2762; 0: any free port, printed)\n"                  \
    "  --tls-only         no plain TCP listener\n"                                               \
    "  --hash-password    read a password on stdin, print its hash for \"users\", exit\n"

/* The "tls", "accept", "users" and "require_user" members of the config's dimse object d
 * (path for messages). False after printing what is wrong. */
bool mira_cli_security_from_config(mira_cli_security *sec, const mira_json *d, const char *path);
/* The same from the config file ($MIRA_CONFIG, else ./mira.json), if there is one. */
bool mira_cli_security_load(mira_cli_security *sec);
/* An option of MIRA_CLI_SECURITY_HELP at argv[*i]: 1 taken (*i advanced past its value), 0 not
 * one of them, -1 a value is missing. */
int mira_cli_security_option(int argc, char **argv, int *i, mira_cli_security *sec);
/* Fill the server's options; false after printing what is missing. */
bool mira_cli_security_apply(mira_cli_security *sec, mira_dimse_server_options *o);
void mira_cli_security_free(mira_cli_security *sec);
/* mira serve --hash-password: a password from stdin, its hash on stdout. */
int mira_cli_hash_password(void);

#endif
