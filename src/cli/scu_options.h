/* mira echo, send, qr: the options every SCU command shares (TLS, user identity) and the report
 * of what the peer answered. */
#ifndef MIRA_CLI_SCU_OPTIONS_H
#define MIRA_CLI_SCU_OPTIONS_H

#include "cli.h"

typedef struct mira_cli_scu {
    const char *sub; /* the command's name, for messages */
    mira_tls_options tls;
    bool use_tls;
    mira_dimse_identity_type type; /* NONE: from --user / --password */
    const char *user, *password, *password_file, *identity_file;
    bool response;  /* --request-identity-response */
    bool ext_sent;  /* extended negotiation asked for: its answers are reported */
    char *owned_password;
    uint8_t *owned_identity;
    size_t identity_len;
} mira_cli_scu;

#define MIRA_CLI_SCU_HELP                                                                          \
    "  --tls            over TLS (1.2 or later, PS3.15 BCP 195 profile); the peer's\n"             \
    "                   certificate must chain to --tls-ca (else the system's CAs)\n"              \
    "                   and name HOST\n"                                                           \
    "  --tls-ca FILE    CA certificates (PEM) for the peer's certificate\n"                        \
    "  --tls-cert FILE, --tls-key FILE  our certificate and key, for peers\n"                      \
    "                   that authenticate clients\n"                                               \
    "  --tls-no-verify  accept any certificate from the peer (encryption only)\n"                  \
    "  --user NAME      user identity negotiation (PS3.7 D.3.3.7): a user name\n"                  \
    "  --password P, --password-file F  with its passcode (the file's first line)\n"               \
    "  --identity-type T  username (default), password (with --password), kerberos,\n"            \
    "                   saml or jwt: then --user is the ticket, assertion or token, or\n"         \
    "                   --identity-file F holds it\n"                                              \
    "  --request-identity-response  ask the peer to confirm the identity (reported)\n"

/* argv[*i] one of these options? 1: taken; 0: not it; -1: a bad value (reported). */
int mira_cli_scu_option(mira_cli_scu *s, int argc, char **argv, int *i);
/* Read the files and fill o (TLS, identity, the report of the A-ASSOCIATE-AC). False
 * (reported) on a bad combination or an unreadable file. */
bool mira_cli_scu_finish(mira_cli_scu *s, mira_dimse_scu_options *o);
void mira_cli_scu_free(mira_cli_scu *s);

#endif
