/* mira web: the HTTP server of `mira serve` and its DICOMweb services (PS3.18). */
#ifndef MIRA_WEB_H
#define MIRA_WEB_H

#include "mira/archive.h"
#include "mira/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mira_web_server_options {
    const char *bind; /* address to listen on; NULL or "": 127.0.0.1 */
    int port;         /* 0: a free port (see mira_web_server_port) */
    /* What the services answer from (borrowed: must outlive the server; required). */
    mira_archive *archive;
    /* Connections at once (default 64); more are refused when accepted. A thread each. */
    int max_connections;
    /* Memory of one connection, which bounds the request line and headers (default 32768;
     * a request whose headers do not fit is answered 431 and closed). */
    size_t max_header_bytes;
    int idle_seconds; /* a connection silent this long is closed (default 60) */
    /* QIDO-RS: the most matches one response holds, also used when a search gives no limit
     * (default 1000); more are cut, with the Warning header PS3.18 8.3.4.4 names. */
    uint64_t max_results;
    /* STOW-RS: the largest request body taken, in bytes (0, the default: no limit); a larger
     * one is answered 413 (before it is read when its Content-Length says so). */
    uint64_t max_body_bytes;
    /* HTTPS: a certificate and its unencrypted private key (PEM files, read when the server
     * starts); both NULL: plain HTTP. */
    const char *tls_cert, *tls_key;
    /* CORS (for viewers served from elsewhere): the origins allowed, comma-separated
     * ("https://viewer.example.org,http://localhost:3000"), or "*" for any; NULL: none (the
     * browser keeps other origins' pages from reading the replies). */
    const char *cors_origins;
    mira_log_fn log; /* every request, at info level; NULL: nothing is logged */
    void *log_ctx;
    /* Jobs (/api/jobs, include/mira/jobs.h): told when one is queued, so that a worker wakes
     * (NULL: the workers find it when they next look at the queue). */
    void (*job_queued)(void *ctx);
    void *job_queued_ctx;
    /* The AE titles a send job may name as its destination (borrowed: must outlive the
     * server; none: send jobs are refused). */
    const char *const *job_destinations;
    size_t njob_destinations;
} mira_web_server_options;

MIRA_API void mira_web_server_options_init(mira_web_server_options *opt);

typedef struct mira_web_server mira_web_server;

/*
 * Listen and serve, on threads of the server's own, until mira_web_server_free: HTTP/1.1
 * (or HTTPS) with keep-alive, a thread per connection. Routes: DICOMweb under /dicomweb
 * (QIDO-RS, WADO-RS, STOW-RS; WADO-URI at /wado), the REST API under /api/, the web page at /,
 * to holders of a bearer token of the archive's accounts (include/mira/accounts.h; POST
 * /auth/token makes one; GET /health, the page's files, /api/openapi.json and OPTIONS need
 * none; GET /audit is for admins). JSON replies are gzip-compressed for clients that accept
 * it. The options' strings are copied; the archive is borrowed. Fails with MIRA_ERR_IO when
 * the address cannot be listened on or the TLS files cannot be read, MIRA_ERR_ARGUMENT for
 * bad options.
 */
MIRA_API mira_web_server *mira_web_server_new(const mira_web_server_options *opt,
                                              mira_error **err);
/* The port listened on. */
MIRA_API int mira_web_server_port(const mira_web_server *s);
/* Stop listening, close every connection (requests in progress finish first) and free.
 * _free(NULL) is a no-op. */
MIRA_API void mira_web_server_free(mira_web_server *s);

#ifdef __cplusplus
}
#endif

#endif
