/* TLS sessions on mira__conn with OpenSSL, per the BCP 195 profile of PS3.15 B.9/B.10. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct mira__tls {
    SSL_CTX *ctx;
    bool server;
    bool verify_peer;
};

/* PS3.15 B.9 (BCP 195, RFC 9325 4.2) for TLS 1.2: forward secrecy and AEAD only. TLS 1.3
 * keeps OpenSSL's suites (AES-GCM, ChaCha20-Poly1305), all of which RFC 9325 allows. */
static const char TLS12_CIPHERS[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

/* ------------------------------------------------------------------ a socket BIO without
 * SIGPIPE: OpenSSL's own writes with write(), which raises it when the peer has gone, and the
 * library must not kill a program that did not ignore the signal. */

static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    BIO_clear_retry_flags(b);
    ssize_t n = send(BIO_get_fd(b, NULL), data, len, MSG_NOSIGNAL);
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    return 0;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *got)
{
    BIO_clear_retry_flags(b);
    ssize_t n = recv(BIO_get_fd(b, NULL), data, len, 0);
    if (n > 0) {
        *got = (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    else if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_C_SET_FD:
        BIO_set_data(b, (void *)(intptr_t)(*(int *)ptr));
        BIO_set_init(b, 1);
        return 1;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = (int)(intptr_t)BIO_get_data(b);
        return (int)(intptr_t)BIO_get_data(b);
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "mira socket");
    if (m && BIO_meth_set_write_ex(m, bio_write) && BIO_meth_set_read_ex(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* BIO_get_fd goes through ctrl; the data pointer holds the descriptor. */
static BIO *socket_bio(int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_bio_method);
    if (!bio_method)
        return NULL;
    BIO *b = BIO_new(bio_method);
    if (b)
        BIO_set_fd(b, fd, BIO_NOCLOSE);
    return b;
}

/* ------------------------------------------------------------------ errors */

/* The most telling OpenSSL reason queued on this thread (then the queue is emptied). */
static void ssl_reason(const SSL *ssl, char *out, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, n, "%s", r ? r : e ? "unknown OpenSSL error" : "no reason given");
    if (ssl) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            size_t k = strlen(out);
            snprintf(out + k, n - k, " (certificate: %s)", X509_verify_cert_error_string(v));
        }
    }
    ERR_clear_error();
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0; /* an encrypted key fails to load instead of prompting on a terminal */
}

/* ------------------------------------------------------------------ contexts */

mira__tls *mira__tls_new(const mira_tls_options *opt, bool server, mira_error **err)
{
    if (server && (!opt->cert_file || !opt->key_file)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "TLS not configured",
                       "a TLS server needs a certificate and its key");
        return NULL;
    }
    if (server && opt->verify_peer && !opt->ca_file) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "TLS not configured",
                       "verifying clients' certificates needs the CA certificates (ca_file)");
        return NULL;
    }
    if (!opt->cert_file != !opt->key_file) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "TLS not configured",
                       "a certificate needs its key and a key its certificate");
        return NULL;
    }
    mira__tls *t = mira_calloc(1, sizeof *t);
    SSL_CTX *ctx = t ? SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) : NULL;
    if (!ctx) {
        mira_free(t);
        ERR_clear_error();
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a TLS context");
        return NULL;
    }
    t->ctx = ctx;
    t->server = server;
    t->verify_peer = opt->verify_peer;
    char why[300];
    const char *file = NULL;
    /* B.10: never below TLS 1.2 */
    bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
              SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    if (server) {
        ok = ok && SSL_CTX_set_dh_auto(ctx, 1);
        static const unsigned char sid[] = "mira";
        ok = ok && SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    }
    if (!ok) {
        ssl_reason(NULL, why, sizeof why);
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "TLS not available",
                       "setting up the TLS profile: %s", why);
        mira__tls_free(t);
        return NULL;
    }
    if (opt->cert_file) {
        file = opt->cert_file;
        ok = SSL_CTX_use_certificate_chain_file(ctx, file) == 1;
        if (ok) {
            file = opt->key_file;
            ok = SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) == 1 &&
                 SSL_CTX_check_private_key(ctx) == 1;
        }
    }
    if (ok && opt->ca_file) {
        file = opt->ca_file;
        ok = SSL_CTX_load_verify_locations(ctx, file, NULL) == 1;
        if (ok && server) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(file);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
    } else if (ok && !server && opt->verify_peer) {
        file = "the system's CA certificates";
        ok = SSL_CTX_set_default_verify_paths(ctx) == 1;
    }
    if (!ok) {
        ssl_reason(NULL, why, sizeof why);
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot load TLS files", "%s: %s", file, why);
        mira__tls_free(t);
        return NULL;
    }
    if (opt->verify_peer)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return t;
}

void mira__tls_free(mira__tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    mira_free(t);
}

/* ------------------------------------------------------------------ handshakes */

static bool handshake(mira__tls *t, mira__conn *c, SSL *ssl, int timeout_ms, mira_error **err)
{
    int64_t deadline = mira__now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int rc = t->server ? SSL_accept(ssl) : SSL_connect(ssl);
        if (rc == 1) {
            c->tls = ssl;
            return true;
        }
        int e = SSL_get_error(ssl, rc);
        mira__io w;
        if (e == SSL_ERROR_WANT_READ) {
            w = mira__conn_wait(c, POLLIN, deadline);
        } else if (e == SSL_ERROR_WANT_WRITE) {
            w = mira__conn_wait(c, POLLOUT, deadline);
        } else if (e == SSL_ERROR_SSL) {
            char why[300];
            ssl_reason(ssl, why, sizeof why);
            mira_error_set(err, MIRA_ERR_INVALID, "TLS handshake failed",
                           "TLS handshake with %s: %s", c->peer, why);
            SSL_free(ssl);
            return false;
        } else {
            ERR_clear_error();
            mira_error_set(err, MIRA_ERR_IO, "TLS handshake failed",
                           "TLS handshake with %s: the connection closed", c->peer);
            SSL_free(ssl);
            return false;
        }
        if (w != MIRA__IO_OK) {
            mira_error_set(err, MIRA_ERR_IO, "TLS handshake failed", "TLS handshake with %s: %s",
                           c->peer,
                           w == MIRA__IO_TIMEOUT ? "no answer in time"
                           : w == MIRA__IO_STOPPED ? "stopped"
                                                   : strerror(errno));
            SSL_free(ssl);
            return false;
        }
    }
}

static SSL *new_session(mira__tls *t, mira__conn *c, mira_error **err)
{
    SSL *ssl = SSL_new(t->ctx);
    BIO *b = ssl ? socket_bio(c->fd) : NULL;
    if (!b) {
        SSL_free(ssl);
        ERR_clear_error();
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a TLS session");
        return NULL;
    }
    SSL_set_bio(ssl, b, b);
    return ssl;
}

bool mira__tls_accept(mira__tls *t, mira__conn *c, int timeout_ms, mira_error **err)
{
    SSL *ssl = new_session(t, c, err);
    return ssl && handshake(t, c, ssl, timeout_ms, err);
}

bool mira__tls_connect(mira__tls *t, mira__conn *c, const char *host, int timeout_ms,
                       mira_error **err)
{
    SSL *ssl = new_session(t, c, err);
    if (!ssl)
        return false;
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    bool ok = is_ip || SSL_set_tlsext_host_name(ssl, host) == 1;
    if (ok && t->verify_peer)
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
                   : SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        mira_error_set(err, MIRA_ERR_ARGUMENT, "TLS handshake failed",
                       "%s cannot be checked against a certificate", host);
        return false;
    }
    return handshake(t, c, ssl, timeout_ms, err);
}

void mira__tls_describe(const mira__conn *c, char *out, size_t n)
{
    if (!c->tls) {
        snprintf(out, n, "no TLS");
        return;
    }
    char subject[256] = "";
    X509 *peer = SSL_get1_peer_certificate(c->tls);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
        X509_free(peer);
    }
    snprintf(out, n, "%s %s, %s%s%s", SSL_get_version(c->tls), SSL_get_cipher_name(c->tls),
             peer ? "peer certificate \"" : "no peer certificate", subject, peer ? "\"" : "");
}

/* ------------------------------------------------------------------ reading and writing */

/* After an SSL_read/_write that did not complete: wait for what it wants, or say how the
 * connection ended. */
static mira__io retry(mira__conn *c, int rc, int64_t deadline, const char *what,
                      mira_error **err)
{
    int e = SSL_get_error(c->tls, rc);
    short events;
    if (e == SSL_ERROR_WANT_READ) {
        events = POLLIN;
    } else if (e == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
    } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
        /* close_notify, or the socket closed or reset: PDUs carry their length, so a cut is
         * seen by the reader as for plain TCP */
        ERR_clear_error();
        return MIRA__IO_CLOSED;
    } else {
        char why[300];
        ssl_reason(NULL, why, sizeof why);
        mira_error_set(err, MIRA_ERR_IO, NULL, "%s %s: TLS: %s", what, c->peer, why);
        return MIRA__IO_ERROR;
    }
    mira__io w = mira__conn_wait(c, events, deadline);
    if (w == MIRA__IO_ERROR)
        mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for %s: %s", c->peer, strerror(errno));
    return w;
}

mira__io mira__tls_read(mira__conn *c, void *buf, size_t n, int64_t deadline, mira_error **err)
{
    uint8_t *p = buf;
    while (n > 0) {
        size_t got = 0;
        ERR_clear_error();
        int rc = SSL_read_ex(c->tls, p, n, &got);
        if (rc == 1) {
            p += got;
            n -= got;
            continue;
        }
        mira__io io = retry(c, rc, deadline, "reading from", err);
        if (io != MIRA__IO_OK)
            return io;
    }
    return MIRA__IO_OK;
}

mira__io mira__tls_read_some(mira__conn *c, void *buf, size_t n, size_t *got, int64_t deadline,
                              mira_error **err)
{
    for (;;) {
        ERR_clear_error();
        int rc = SSL_read_ex(c->tls, buf, n, got);
        if (rc == 1)
            return MIRA__IO_OK;
        mira__io io = retry(c, rc, deadline, "reading from", err);
        if (io != MIRA__IO_OK)
            return io;
    }
}

mira__io mira__tls_write(mira__conn *c, const void *buf, size_t n, int64_t deadline,
                         mira_error **err)
{
    const uint8_t *p = buf;
    while (n > 0) {
        size_t put = 0;
        ERR_clear_error();
        int rc = SSL_write_ex(c->tls, p, n, &put);
        if (rc == 1) {
            p += put;
            n -= put;
            continue;
        }
        mira__io io = retry(c, rc, deadline, "writing to", err);
        if (io != MIRA__IO_OK)
            return io;
    }
    return MIRA__IO_OK;
}

bool mira__tls_pending(const mira__conn *c)
{
    return c->tls && SSL_pending(c->tls) > 0;
}

void mira__tls_notify_close(mira__conn *c)
{
    if (!c->tls)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(c->tls); /* queues close_notify; a full buffer or dead peer: skipped */
    ERR_clear_error();
}

void mira__tls_end(mira__conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls);
    c->tls = NULL;
    ERR_clear_error();
}
