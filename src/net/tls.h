/* TLS on a mira__conn (OpenSSL): the BCP 195 profile of PS3.15 B.9/B.10. Internal. */
#ifndef MIRA_NET_TLS_H
#define MIRA_NET_TLS_H

#include "mira/tls.h"
#include "net/net.h"

/* A configured TLS side (an OpenSSL context: certificates, CAs, profile), shared by every
 * connection of a server or client; thread-safe once made. */
typedef struct mira__tls mira__tls;

/* Load the certificate, key and CAs of opt (copied: the files are read now). server says which
 * side. MIRA_ERR_ARGUMENT when something required is missing, MIRA_ERR_INVALID when a file
 * cannot be read or the key does not match the certificate (the message names the file). */
mira__tls *mira__tls_new(const mira_tls_options *opt, bool server, mira_error **err);
/* _free(NULL) is a no-op. Not while connections made with it are open. */
void mira__tls_free(mira__tls *t);

/* The server's handshake on an accepted connection, within timeout_ms in all. On success
 * c->tls holds the session (mira__conn_read/_write then go through it); on failure the
 * connection is left as it was (the caller closes it) and err says why (MIRA_ERR_IO: the peer
 * closed or the time ran out; MIRA_ERR_INVALID: not TLS, no common suite, a certificate
 * refused...). */
bool mira__tls_accept(mira__tls *t, mira__conn *c, int timeout_ms, mira_error **err);
/* The client's handshake; host is the name connected to (checked against the server's
 * certificate when verify_peer, and sent as SNI when it is not an address). */
bool mira__tls_connect(mira__tls *t, mira__conn *c, const char *host, int timeout_ms,
                       mira_error **err);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, peer certificate \"CN=...\"" for the log. */
void mira__tls_describe(const mira__conn *c, char *out, size_t n);

/* Used by src/net/tcp.c: the conn functions on a TLS session. */
mira__io mira__tls_read(mira__conn *c, void *buf, size_t n, int64_t deadline, mira_error **err);
mira__io mira__tls_read_some(mira__conn *c, void *buf, size_t n, size_t *got, int64_t deadline,
                              mira_error **err);
mira__io mira__tls_write(mira__conn *c, const void *buf, size_t n, int64_t deadline,
                         mira_error **err);
bool mira__tls_pending(const mira__conn *c);
/* Send close_notify, best effort, without waiting. */
void mira__tls_notify_close(mira__conn *c);
/* Free the session (no-op without one). */
void mira__tls_end(mira__conn *c);

#endif
