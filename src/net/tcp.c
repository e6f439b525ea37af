/* TCP sockets: listening, connecting, and reads and writes bounded in time. */
#include "net.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A wait is cut in slices this long, so that a stop request is seen soon. */
#define SLICE_MS 200

int64_t mira__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mira__sockaddr_describe(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr)) /* an IPv4 peer of a dual-stack socket */
            inet_ntop(AF_INET, in->sin6_addr.s6_addr + 12, host, sizeof host);
        else
            inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
        port = ntohs(in->sin6_port);
    }
    snprintf(out, n, "%s:%d", host, port);
}

static void tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int mira__tcp_listen(const char *host, int port, int backlog, int *bound_port, mira_error **err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, ps, &hints, &res);
    if (rc != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot listen", "resolving %s: %s",
                       host && *host ? host : "*", gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    /* the wildcard address: IPv6's, dual-stack (IPv4 peers arrive as mapped addresses), so both
     * families reach it; where IPv6 is missing, IPv4's. A named address: IPv4 first. */
    bool wildcard = !host || !*host;
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            int first = wildcard ? AF_INET6 : AF_INET;
            if ((pass == 0) != (ai->ai_family == first))
                continue;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                saved = errno;
                continue;
            }
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (ai->ai_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, wildcard ? &zero : &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
                saved = errno;
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot listen", "listening on %s:%d: %s",
                       host && *host ? host : "*", port, strerror(saved));
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (bound_port && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

bool mira__tcp_accept(int listen_fd, int timeout_ms, mira__conn *out, mira_error **err)
{
    size_t which;
    return mira__tcp_accept_any(&listen_fd, 1, timeout_ms, &which, out, err);
}

bool mira__tcp_accept_any(const int *fds, size_t nfds, int timeout_ms, size_t *which,
                          mira__conn *out, mira_error **err)
{
    struct pollfd p[4];
    if (nfds > 4)
        nfds = 4;
    for (size_t i = 0; i < nfds; i++)
        p[i] = (struct pollfd){fds[i], POLLIN, 0};
    int rc = poll(p, (nfds_t)nfds, timeout_ms);
    if (rc <= 0) {
        if (rc < 0 && errno != EINTR) {
            mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for connections: %s", strerror(errno));
        }
        return false;
    }
    size_t k = 0;
    while (k + 1 < nfds && !(p[k].revents & POLLIN))
        k++;
    *which = k;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept(fds[k], (struct sockaddr *)&ss, &sl);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
            return false;
        /* out of descriptors and the like: report, the caller carries on */
        mira_error_set(err, MIRA_ERR_IO, NULL, "accepting a connection: %s", strerror(errno));
        return false;
    }
    tune(fd);
    memset(out, 0, sizeof *out);
    out->fd = fd;
    mira__sockaddr_describe((struct sockaddr *)&ss, out->peer, sizeof out->peer);
    return true;
}

bool mira__tcp_connect(const char *host, int port, int timeout_ms, mira__conn *out,
                       mira_error **err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot connect", "resolving %s: %s", host,
                       gai_strerror(rc));
        return false;
    }
    int saved = ECONNREFUSED, fd = -1;
    const atomic_bool *stop = out->stop;
    int64_t deadline = timeout_ms < 0 ? -1 : mira__now_ms() + timeout_ms;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        tune(fd);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            saved = errno;
            close(fd);
            fd = -1;
            continue;
        }
        /* in slices, so that a stop request is seen soon */
        mira__conn wait = {.fd = fd, .stop = stop};
        mira__io w = mira__conn_wait(&wait, POLLOUT, deadline);
        int soerr = w == MIRA__IO_ERROR ? errno : 0;
        socklen_t el = sizeof soerr;
        if (w != MIRA__IO_OK || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 ||
            soerr != 0) {
            saved = soerr ? soerr : w == MIRA__IO_STOPPED ? ECANCELED : ETIMEDOUT;
            close(fd);
            fd = -1;
            if (w == MIRA__IO_STOPPED)
                break;
            continue;
        }
        memset(out, 0, sizeof *out);
        out->fd = fd;
        out->stop = stop;
        mira__sockaddr_describe(ai->ai_addr, out->peer, sizeof out->peer);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot connect", "connecting to %s:%d: %s", host, port,
                       strerror(saved));
        return false;
    }
    return true;
}

mira__io mira__conn_wait(mira__conn *c, short events, int64_t deadline)
{
    for (;;) {
        if (c->stop && atomic_load(c->stop))
            return MIRA__IO_STOPPED;
        int slice = SLICE_MS;
        if (deadline >= 0) {
            int64_t left = deadline - mira__now_ms();
            if (left <= 0)
                return MIRA__IO_TIMEOUT;
            if (left < slice)
                slice = (int)left;
        }
        struct pollfd p = {c->fd, events, 0};
        int rc = poll(&p, 1, slice);
        if (rc > 0)
            return MIRA__IO_OK;
        if (rc < 0 && errno != EINTR)
            return MIRA__IO_ERROR;
    }
}

mira__io mira__conn_read(mira__conn *c, void *buf, size_t n, int timeout_ms, mira_error **err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mira__now_ms() + timeout_ms;
    if (c->tls)
        return mira__tls_read(c, buf, n, deadline, err);
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = recv(c->fd, p, n, 0);
        if (got > 0) {
            p += got;
            n -= (size_t)got;
            continue;
        }
        if (got == 0)
            return MIRA__IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return MIRA__IO_CLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            mira_error_set(err, MIRA_ERR_IO, NULL, "reading from %s: %s", c->peer,
                           strerror(errno));
            return MIRA__IO_ERROR;
        }
        mira__io w = mira__conn_wait(c, POLLIN, deadline);
        if (w != MIRA__IO_OK) {
            if (w == MIRA__IO_ERROR)
                mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for %s: %s", c->peer,
                               strerror(errno));
            return w;
        }
    }
    return MIRA__IO_OK;
}

mira__io mira__conn_read_some(mira__conn *c, void *buf, size_t n, size_t *got, int timeout_ms,
                              mira_error **err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mira__now_ms() + timeout_ms;
    *got = 0;
    if (c->tls)
        return mira__tls_read_some(c, buf, n, got, deadline, err);
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r > 0) {
            *got = (size_t)r;
            return MIRA__IO_OK;
        }
        if (r == 0)
            return MIRA__IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return MIRA__IO_CLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            mira_error_set(err, MIRA_ERR_IO, NULL, "reading from %s: %s", c->peer,
                           strerror(errno));
            return MIRA__IO_ERROR;
        }
        mira__io w = mira__conn_wait(c, POLLIN, deadline);
        if (w != MIRA__IO_OK) {
            if (w == MIRA__IO_ERROR)
                mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for %s: %s", c->peer,
                               strerror(errno));
            return w;
        }
    }
}

mira__io mira__conn_write(mira__conn *c, const void *buf, size_t n, int timeout_ms,
                          mira_error **err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mira__now_ms() + timeout_ms;
    if (c->tls)
        return mira__tls_write(c, buf, n, deadline, err);
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t put = send(c->fd, p, n, MSG_NOSIGNAL);
        if (put >= 0) {
            p += put;
            n -= (size_t)put;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET)
            return MIRA__IO_CLOSED;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            mira_error_set(err, MIRA_ERR_IO, NULL, "writing to %s: %s", c->peer, strerror(errno));
            return MIRA__IO_ERROR;
        }
        mira__io w = mira__conn_wait(c, POLLOUT, deadline);
        if (w != MIRA__IO_OK) {
            if (w == MIRA__IO_ERROR)
                mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for %s: %s", c->peer,
                               strerror(errno));
            return w;
        }
    }
    return MIRA__IO_OK;
}

void mira__conn_linger(mira__conn *c, int timeout_ms)
{
    if (c->fd < 0)
        return;
    if (c->tls)
        mira__tls_notify_close(c);
    shutdown(c->fd, SHUT_WR);
    int64_t deadline = mira__now_ms() + timeout_ms;
    uint8_t sink[4096];
    for (;;) {
        ssize_t got = recv(c->fd, sink, sizeof sink, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return;
        if (got > 0)
            continue;
        int64_t left = deadline - mira__now_ms();
        if (left <= 0)
            return;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            return;
    }
}

void mira__conn_close(mira__conn *c)
{
    mira__tls_end(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

bool mira__conn_pending(const mira__conn *c)
{
    if (c->fd < 0)
        return false;
    if (c->tls && mira__tls_pending(c))
        return true;
    struct pollfd p = {c->fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}
