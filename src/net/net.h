/* Generic TCP transport for the network services (DIMSE now, HL7 MLLP later). Internal. */
#ifndef MIRA_NET_NET_H
#define MIRA_NET_NET_H

#include "mira/core.h"

#include <stdatomic.h>

struct ssl_st;

/* A connected stream, plain or TLS (src/net/tls.h); callers only use the functions below,
 * which work the same on both. */
typedef struct mira__conn {
    int fd;
    struct ssl_st *tls; /* the TLS session once mira__tls_accept/_connect succeeded, else NULL */
    char peer[64]; /* "ADDRESS:PORT" of the other end */
    const atomic_bool *stop; /* when it becomes true, waits end with MIRA__IO_STOPPED (may be NULL) */
} mira__conn;

/* Outcomes of a read or write. */
typedef enum mira__io {
    MIRA__IO_OK = 0,
    MIRA__IO_CLOSED = 1,  /* the peer closed the connection (at a message boundary or not) */
    MIRA__IO_TIMEOUT = 2, /* nothing came (or could be sent) in time */
    MIRA__IO_ERROR = 3,   /* a socket error (err is set) */
    MIRA__IO_STOPPED = 4, /* *stop became true */
} mira__io;

/* Listen on host (NULL or "": every address) and port (0: a free one, see *bound_port).
 * Returns the socket, or -1 with MIRA_ERR_IO. */
int mira__tcp_listen(const char *host, int port, int backlog, int *bound_port, mira_error **err);
struct sockaddr;
/* "ADDRESS:PORT" of an IPv4 or IPv6 socket address (an IPv4-mapped IPv6 one as IPv4). */
void mira__sockaddr_describe(const struct sockaddr *sa, char *out, size_t n);
/* Wait up to timeout_ms for a connection; true with *out filled, false on timeout (err
 * unset) or error (err set). */
bool mira__tcp_accept(int listen_fd, int timeout_ms, mira__conn *out, mira_error **err);
/* The same on several listening sockets: *which receives the index in fds of the one that
 * accepted. */
bool mira__tcp_accept_any(const int *fds, size_t nfds, int timeout_ms, size_t *which,
                          mira__conn *out, mira_error **err);
/* Connect to host:port within timeout_ms. out->stop, as the caller set it (out initialised,
 * stop NULL or not), cuts the wait and is kept in the connection. */
bool mira__tcp_connect(const char *host, int port, int timeout_ms, mira__conn *out,
                       mira_error **err);

/* Read exactly n bytes, waiting at most timeout_ms in all (-1: for ever, or until *stop). */
mira__io mira__conn_read(mira__conn *c, void *buf, size_t n, int timeout_ms, mira_error **err);
/* Read what has come, up to n bytes (at least one), waiting at most timeout_ms (-1: for ever,
 * or until *stop) for the first; *got receives how many. */
mira__io mira__conn_read_some(mira__conn *c, void *buf, size_t n, size_t *got, int timeout_ms,
                              mira_error **err);
/* Write all n bytes, waiting at most timeout_ms in all for the peer to take them. */
mira__io mira__conn_write(mira__conn *c, const void *buf, size_t n, int timeout_ms,
                          mira_error **err);
/* Stop sending, then wait up to timeout_ms for the peer to close (reading and dropping what
 * it still sends), so that a last PDU is not lost to a reset. */
void mira__conn_linger(mira__conn *c, int timeout_ms);
void mira__conn_close(mira__conn *c);
/* True if bytes have arrived that are not read yet (decrypted ones too): never waits. */
bool mira__conn_pending(const mira__conn *c);
/* Wait until the socket is ready for events (POLLIN, POLLOUT) or deadline (monotonic ms, -1:
 * none) passes, in slices that look at *stop. MIRA__IO_ERROR leaves errno set. */
mira__io mira__conn_wait(mira__conn *c, short events, int64_t deadline);

/* Monotonic milliseconds. */
int64_t mira__now_ms(void);

#endif
