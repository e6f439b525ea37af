/* mira TLS: the settings of a secured connection (PS3.15 B.9/B.10, the BCP 195 profile). */
#ifndef MIRA_TLS_H
#define MIRA_TLS_H

#include "mira/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * TLS for a server or a client of mira (DIMSE now; the HL7 and HTTP listeners take the same).
 * Every connection is TLS 1.2 or later with the cipher suites BCP 195 recommends (ECDHE or DHE
 * key exchange, AES-GCM; TLS 1.3's suites), no renegotiation, no compression. Files are PEM;
 * every string is borrowed for the call that takes the options.
 *
 * A server needs cert_file and key_file. verify_peer asks for a client certificate and refuses
 * a connection without one that chains to ca_file (required then).
 * A client presents cert_file/key_file when given (client-certificate authentication).
 * verify_peer checks the server's certificate against ca_file (the system's CAs if NULL) and
 * that it names the host connected to (DNS name or IP address).
 */
typedef struct mira_tls_options {
    const char *cert_file; /* our certificate (chain) */
    const char *key_file;  /* its private key (unencrypted) */
    const char *ca_file;   /* the CA certificates the peer's must chain to */
    bool verify_peer;
} mira_tls_options;

#ifdef __cplusplus
}
#endif
#endif
